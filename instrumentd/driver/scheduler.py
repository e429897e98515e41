# -*- test-case-name: tests.test_scheduler -*-
"""
Periodic jobs that fire protocol inputs: acquire status hourly, sync the
clock daily.

A protocol offers jobs by name, each firing one of its inputs (see
:attr:`~instrumentd.driver.protocol.InstrumentProtocol.scheduled_jobs`); the
startup config switches them on and says when::

    {"scheduler": {
        "acquire_status": {"interval": 3600},
        "clock_sync": {"cron": "0 0 * * *"},
    }}

The OOI form, ``{"trigger": {"type": "interval", "hours": 1}}`` or
``{"trigger": {"type": "cron", "minute": "0", "hour": "0"}}``, is accepted
too.  Cron times are UTC.

A job that is not valid in the protocol's current state (status in direct
access, say) is skipped: an
:class:`~instrumentd.driver.events.ErrorEvent` says so, and nothing is
raised.  A job that fails (a timeout) is reported the same way; one that
succeeds publishes its result as a
:class:`~instrumentd.driver.events.ResultEvent`.  Either way the job runs
again at its next time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from instrumentd.driver.errors import (
    InstrumentError,
    InstrumentParameterError,
    InstrumentStateError,
    ParameterRule,
)
from instrumentd.driver.events import ErrorEvent, EventBus, ResultEvent

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["CronSchedule", "ScheduledJob", "Scheduler", "parse_jobs"]

_log = Logger()

#: Fires a protocol input by name with keyword arguments; raises
#: :class:`InstrumentStateError` at once if the input is not valid now.
FireInput = Callable[..., object]

_INTERVAL_UNITS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60}
_INTERVAL_UNITS["seconds"] = 1
_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


@dataclass(frozen=True)
class CronSchedule:
    """
    A cron-like schedule in UTC: five fields (minute, hour, day of month,
    month, day of week with 0 = Sunday), each ``*``, ``*/n``, a number, a
    range ``a-b`` (optionally ``a-b/n``) or a comma-separated list of those.

    Written here rather than taken from a package: the project has no
    scheduling dependency, this subset is what instrument jobs use, and it
    must run on the injected clock.

    :ivar fields: the allowed values of each field.
    :ivar text: the expression as given.
    """

    fields: tuple[frozenset[int], ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """
        :param text: e.g. ``"0 * * * *"`` (hourly, on the hour).
        :returns: the schedule.
        :raises ValueError: naming the field that is wrong.
        """
        parts = text.split()
        if len(parts) != len(_CRON_FIELDS):
            raise ValueError(
                f"a cron expression has 5 fields "
                f"({' '.join(_CRON_FIELDS)}), not {len(parts)}: {text!r}"
            )
        return cls(
            tuple(
                _cron_field(name, part, low, high)
                for name, part, (low, high) in zip(
                    _CRON_FIELDS, parts, _CRON_RANGES, strict=True
                )
            ),
            text,
        )

    def next_after(self, now: float) -> float:
        """
        :param now: Unix seconds.
        :returns: the first matching minute strictly after ``now``, in Unix
            seconds.
        :raises ValueError: if nothing matches within four years (``31 2 *
            * *``).
        """
        minutes, hours, days, months, weekdays = self.fields
        start = (int(now) // 60 + 1) * 60
        day = start - start % 86400
        for _ in range(4 * 366):
            when = time.gmtime(day)
            month, mday, wday = when.tm_mon, when.tm_mday, when.tm_wday
            # time.gmtime counts weekdays from Monday = 0; cron from Sunday.
            if mday in days and month in months and (wday + 1) % 7 in weekdays:
                for hour in sorted(hours):
                    for minute in sorted(minutes):
                        at = day + hour * 3600 + minute * 60
                        if at >= start:
                            return float(at)
            day += 86400
        raise ValueError(f"cron expression {self.text!r} never matches")


def _cron_field(name: str, text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        spec, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if spec == "*":
                first, last = low, high
            elif "-" in spec:
                first_text, last_text = spec.split("-", 1)
                first, last = int(first_text), int(last_text)
            else:
                first = last = int(spec)
        except ValueError:
            raise ValueError(f"cron {name} field {text!r} is not understood") from None
        if step < 1 or not low <= first <= last <= high:
            raise ValueError(f"cron {name} field {text!r} is out of range {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class ScheduledJob:
    """
    One job switched on by the startup config.

    :ivar name: the job's name, as the protocol offers it.
    :ivar input: the protocol input it fires.
    :ivar interval: seconds between runs, or ``None``.
    :ivar cron: a cron schedule, or ``None``.
    :ivar arguments: keyword arguments for the input.
    """

    name: str
    input: str
    interval: float | None = None
    cron: CronSchedule | None = None
    arguments: Mapping[str, object] = field(default_factory=dict)


def _bad(job: str, key: str, detail: str) -> InstrumentParameterError:
    return InstrumentParameterError(
        f"scheduler.{job}.{key}", ParameterRule.TYPE, detail
    )


def _interval(job: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _bad(job, key, f"must be a number of seconds > 0, not {value!r}")
    return float(value)


def parse_jobs(
    config: Mapping[str, object], offered: Mapping[str, str]
) -> list[ScheduledJob]:
    """
    Read the ``scheduler`` section of a startup config.

    :param config: job name → trigger (see the module's documentation).
    :param offered: the jobs the protocol offers: job name → input name.
    :returns: the jobs, in the config's order.
    :raises InstrumentParameterError: naming the job and key that are wrong
        (an unknown job lists the ones offered).
    """
    jobs: list[ScheduledJob] = []
    for name, spec in config.items():
        if name not in offered:
            raise InstrumentParameterError(
                f"scheduler.{name}",
                ParameterRule.UNKNOWN,
                f"no such job; offered: {', '.join(sorted(offered)) or 'none'}",
            )
        if not isinstance(spec, Mapping):
            raise _bad(name, "trigger", f"must be a mapping, not {spec!r}")
        arguments = spec.get("arguments", {})
        if not isinstance(arguments, Mapping):
            raise _bad(name, "arguments", f"must be a mapping, not {arguments!r}")
        interval: float | None = None
        cron: CronSchedule | None = None
        trigger = spec.get("trigger")
        if isinstance(trigger, Mapping):
            kind = trigger.get("type")
            if kind == "interval":
                total = 0.0
                for unit, seconds in _INTERVAL_UNITS.items():
                    if unit in trigger:
                        total += seconds * _interval(name, unit, trigger[unit])
                interval = _interval(name, "trigger", total)
            elif kind == "cron":
                text = " ".join(str(trigger.get(each, "*")) for each in _CRON_FIELDS)
                cron = _cron(name, text)
            else:
                raise _bad(
                    name, "trigger.type", f"must be interval or cron, not {kind!r}"
                )
        elif "interval" in spec:
            interval = _interval(name, "interval", spec["interval"])
        elif "cron" in spec:
            text = spec["cron"]
            if not isinstance(text, str):
                raise _bad(name, "cron", f"must be text, not {text!r}")
            cron = _cron(name, text)
        else:
            raise _bad(name, "trigger", "needs an interval, a cron or a trigger")
        jobs.append(
            ScheduledJob(
                name,
                offered[name],
                interval=interval,
                cron=cron,
                arguments=dict(cast("Mapping[str, object]", arguments)),
            )
        )
    return jobs


def _cron(job: str, text: str) -> CronSchedule:
    try:
        return CronSchedule.parse(text)
    except ValueError as error:
        raise _bad(job, "cron", str(error)) from None


class Scheduler:
    """
    Runs scheduled jobs against a protocol.

    :param fire: fires a protocol input: called with the input's name and
        its keyword arguments; returns its result (or a Deferred of it), and
        raises :class:`InstrumentStateError` if the input is not valid now.
    :param events: where skips, failures and results are published.
    :param clock: the reactor's clock, or ``None`` for the global reactor.
    """

    def __init__(
        self,
        fire: FireInput,
        events: EventBus,
        *,
        clock: IReactorTime | None = None,
    ) -> None:
        self._fire = fire
        self._events = events
        self._clock = clock
        self._jobs: list[ScheduledJob] = []
        self._loops: list[LoopingCall] = []
        self._calls: dict[str, IDelayedCall] = {}
        self.running = False
        #: Job name → how many times it was skipped.
        self.skipped: dict[str, int] = {}
        #: Job name → how many times it ran (whatever the outcome).
        self.runs: dict[str, int] = {}

    @property
    def clock(self) -> IReactorTime:
        """
        The clock in use.
        """
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = cast("IReactorTime", reactor)
        return self._clock

    @property
    def jobs(self) -> list[ScheduledJob]:
        """
        The configured jobs.
        """
        return list(self._jobs)

    def configure(self, jobs: Iterable[ScheduledJob]) -> None:
        """
        Replace the jobs (restarting them if running).

        :param jobs: the jobs, e.g. from :func:`parse_jobs`.
        """
        running = self.running
        self.stop()
        self._jobs = list(jobs)
        if running:
            self.start()

    def start(self) -> None:
        """
        Start every job: the first run is one interval (or the next cron
        time) from now.
        """
        if self.running:
            return
        self.running = True
        for job in self._jobs:
            if job.interval is not None:
                loop = LoopingCall(self.run_job, job)
                loop.clock = self.clock
                loop.start(job.interval, now=False)
                self._loops.append(loop)
            elif job.cron is not None:
                self._schedule_cron(job)

    def stop(self) -> None:
        """
        Stop every job; nothing is left scheduled.
        """
        self.running = False
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        for call in self._calls.values():
            if call.active():
                call.cancel()
        self._calls.clear()

    def _schedule_cron(self, job: ScheduledJob) -> None:
        assert job.cron is not None
        now = self.clock.seconds()
        delay = job.cron.next_after(now) - now

        def due() -> None:
            # Whatever the job does, it comes round again.
            self._schedule_cron(job)
            self.run_job(job)

        self._calls[job.name] = self.clock.callLater(delay, due)

    def run_job(self, job: ScheduledJob) -> Deferred[None]:
        """
        Run one job now.

        :param job: the job.
        :returns: a Deferred that fires (never fails) when the job is done
            or skipped.
        """
        self.runs[job.name] = self.runs.get(job.name, 0) + 1
        outcome: Deferred[object] = maybeDeferred(
            self._fire, job.input, **job.arguments
        )

        def succeeded(result: object) -> None:
            self._events.publish(
                ResultEvent(job.input, result, time=self._events.now())
            )

        def failed(reason: Failure) -> None:
            error = reason.value
            if isinstance(error, InstrumentStateError):
                self.skipped[job.name] = self.skipped.get(job.name, 0) + 1
                _log.info(
                    "Scheduled job {job} skipped in state {state}",
                    job=job.name,
                    state=error.state,
                )
                what = f"scheduled job {job.name} skipped: {error.message}"
            else:
                _log.info(
                    "Scheduled job {job} failed: {error}", job=job.name, error=error
                )
                what = f"scheduled job {job.name} failed: {error}"
            details: dict[str, object] = {
                "job": job.name,
                "input": job.input,
                "skipped": isinstance(error, InstrumentStateError),
            }
            code = "INSTRUMENT_ERROR"
            if isinstance(error, InstrumentError):
                details.update(error.details())
                code = error.code
            self._events.publish(
                ErrorEvent(code, what, details, time=self._events.now())
            )

        return outcome.addCallbacks(succeeded, failed)
