# -*- test-case-name: tests.test_sinks -*-
"""
What every sink shares: the :class:`ISink` contract, what a particle may
be, its sample time, and error reporting that does not flood the log.

Import these from :mod:`instrumentd.station.sinks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Protocol, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import Interface

from instrumentd.packet import NTP_UNIX_OFFSET

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from instrumentd.driver.events import DriverEvent

__all__ = ["IEventSink", "ISink", "Particle", "ParticleLike", "sample_time"]

_log = Logger()

#: After an error is logged, more of the same kind are only counted, and
#: summed up in at most one message per this many seconds.
ERROR_LOG_INTERVAL: Final = 60.0

#: The most records per POST by default.  One request is in flight at a
#: time (so batches arrive in order), so the rate a sink can deliver is
#: about ``batch_size`` over the time a POST takes to be answered: with
#: 1,000 a sink keeps up with 5,000 samples a second from a receiver that
#: takes 50 ms to answer, where 100 fell seconds behind
#: (``bench/httpsink_rate.py``).
#: A quiet station still sends every ``batch_interval``, so its latency
#: does not change.
DEFAULT_BATCH_SIZE: Final = 1000

#: By default a POST of a sink that fell behind takes up to this many times
#: ``batch_size`` records.  A sink moves on one POST per turn of the reactor
#: at best; a station of 5,000 instruments whose turns last a second or two
#: then needs 5,000 to 10,000 records a POST to keep up.
CATCH_UP_FACTOR: Final = 10


class ParticleLike(Protocol):
    """
    Anything with a JSON-ready ``to_dict()``, as a
    :class:`~instrumentd.driver.particles.DataParticle` and a
    :class:`~instrumentd.station.record.SampleRecord` have.
    """

    def to_dict(self) -> dict[str, object]:
        """
        :returns: the particle as JSON-ready data.
        """


#: What a sink accepts: a :class:`~instrumentd.station.record.SampleRecord`
#: (the station gives these), a particle, or a mapping: a record (version 2)
#: or a particle's ``to_dict()`` form, converted by
#: :func:`~instrumentd.station.record.read_record`.
Particle = Mapping[str, object] | ParticleLike


class ISink(Interface):
    """
    A destination for particles.

    A sink is used from the reactor thread.  It must not hold up the driver
    that produced the particle: :meth:`write` returns at once, and I/O
    trouble is counted and logged, never raised.
    """

    def write(instrument: str, particle: Particle) -> None:
        """
        Take one sample.

        :param instrument: the name of the instrument it came from.
        :param particle: its record, a particle, or the dict form of either
            (see :data:`Particle`); what the sink stores or sends is the
            record (version 2).
        """

    def flush() -> Deferred[None]:
        """
        Make everything written so far as safe as this sink makes it: in the
        file, or in the spool, and start sending what is waiting.

        :returns: a Deferred that fires when that is done.  It does not wait
            for a remote endpoint to accept anything.
        """

    def close() -> Deferred[None]:
        """
        Flush, and release files, timers and connections.  Writes after this
        are dropped and counted.  Calling it again returns the same result.

        :returns: a Deferred that fires when the sink has stopped.
        """

    def stats() -> dict[str, object]:
        """
        Counters and state for the station's status and metrics.

        :returns: a JSON-ready dict.
        """


class IEventSink(Interface):
    """
    A sink that also takes an instrument's driver events other than
    samples (state and configuration changes, errors, results, the link's
    news); :func:`~instrumentd.station.sinks.connect_sink` feeds them to
    :meth:`write_event` in the order the driver published them, samples
    and events alike.
    """

    def write_event(instrument: str, event: DriverEvent) -> None:
        """
        Take one event.  Like :meth:`ISink.write`: returns at once, never
        raises for I/O trouble.

        :param instrument: the instrument's name.
        :param event: the event (never a ``SAMPLE``).
        """


def sample_time(particle: Mapping[str, object]) -> float | None:
    """
    When a sample was taken.

    A record (version 2) says it in ``ntp_time``.  A particle's
    ``to_dict()`` form by its preferred timestamp: the timestamp named by
    ``preferred_timestamp`` if present; then, as in
    :class:`~instrumentd.driver.particles.DataParticle`, the first present
    of ``internal_timestamp``, ``port_timestamp`` and ``driver_timestamp``.
    A timestamp is absent when missing, ``None``, ``0`` or not a number.

    :param particle: a record, or a particle's ``to_dict()`` form (NTP
        timestamps).
    :returns: Unix seconds, or ``None`` if it has no timestamp.
    """
    if "ntp_time" in particle:
        names = ["ntp_time"]
    else:
        preferred = particle.get("preferred_timestamp")
        names = ["internal_timestamp", "port_timestamp", "driver_timestamp"]
        if isinstance(preferred, str):
            names.insert(0, preferred)
    for name in names:
        value = particle.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value:
            return float(value) - NTP_UNIX_OFFSET
    return None


def utc_day(unix_time: float) -> str | None:
    """
    The UTC date of a time, as file names use it.

    :param unix_time: Unix seconds.
    :returns: ``YYYY-MM-DD``, or ``None`` for a time no date can hold.
    """
    try:
        return datetime.fromtimestamp(unix_time, UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        # A timestamp outside what a date can hold: a broken clock.
        return None


class ErrorReport:
    """
    Logs the first error at once and, for the next
    :data:`ERROR_LOG_INTERVAL` seconds, only counts the rest, so a full
    disk or a dead endpoint gives at most a line a minute, not one per
    particle.

    :attr:`last` is the error that is still the case, for a sink's health:
    the sink calls :meth:`clear` once things work again.
    :attr:`last_failure` keeps the last error and its time after that.

    :param clock: where the time comes from.
    :param what: the sink, as the start of each message.
    """

    def __init__(self, clock: IReactorTime, what: str) -> None:
        self._clock = clock
        self._what = what
        self._quiet_until = float("-inf")
        self._suppressed = 0
        #: The last error's text while it is still the case, else ``None``.
        self.last: str | None = None
        #: The last error ever reported, ``{"message": ..., "time": <ISO 8601
        #: UTC>}``, or ``None``.
        self.last_failure: dict[str, str] | None = None

    def report(self, message: str) -> None:
        """
        Count one error: log it, or only remember it if one was logged less
        than :data:`ERROR_LOG_INTERVAL` seconds ago (the next message says
        how many were not logged).

        :param message: what went wrong, for a person.
        """
        self.last = message
        now = self._clock.seconds()
        self.last_failure = {"message": message, "time": iso_time(now)}
        if now < self._quiet_until:
            self._suppressed += 1
            return
        more = (
            f" ({self._suppressed} more errors since the last report)"
            if self._suppressed
            else ""
        )
        _log.error("{what}: {error}{more}", what=self._what, error=message, more=more)
        self._suppressed = 0
        self._quiet_until = now + ERROR_LOG_INTERVAL

    def note(self, message: str) -> None:
        """
        Remember an error without logging it (the caller logs in its own
        way).

        :param message: what went wrong, for a person.
        """
        self.last = message
        self.last_failure = {
            "message": message,
            "time": iso_time(self._clock.seconds()),
        }

    def clear(self) -> None:
        """
        Things work again: :attr:`last` becomes ``None``
        (:attr:`last_failure` stays).
        """
        self.last = None


def iso_time(unix_time: float) -> str:
    """
    A time as ISO 8601 UTC text, for health and stats.

    :param unix_time: Unix seconds.
    :returns: e.g. ``2026-11-24T12:00:00.250000+00:00``; the number itself
        for a time no date can hold.
    """
    try:
        return datetime.fromtimestamp(unix_time, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return str(unix_time)


def default_reactor() -> IReactorTime:
    """
    The global reactor, imported only when a sink is made without one.

    :returns: the reactor.
    """
    from twisted.internet import reactor

    return cast("IReactorTime", reactor)
