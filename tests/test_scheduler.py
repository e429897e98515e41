"""
Tests for L{instrumentd.driver.scheduler}: jobs from the startup config,
run on an injected clock; jobs not valid now are skipped with an event.
"""

from __future__ import annotations

import calendar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.errors import (
    InstrumentParameterError,
    InstrumentStateError,
    InstrumentTimeoutError,
)
from instrumentd.driver.events import DriverEvent, ErrorEvent, EventBus, ResultEvent
from instrumentd.driver.scheduler import CronSchedule, Scheduler, parse_jobs

OFFERED = {"acquire_status": "acquire_status", "clock_sync": "sync_clock"}


class Protocol:
    """
    Stands in for a protocol: fires inputs, valid only in COMMAND.
    """

    def __init__(self) -> None:
        self.state = "COMMAND"
        self.fired: list[tuple[str, dict[str, object]]] = []
        self.outcome: Deferred[object] | None = None

    def fire(self, input: str, **arguments: object) -> Deferred[object]:
        if self.state != "COMMAND":
            raise InstrumentStateError(self.state, input, ["stop_direct"])
        self.fired.append((input, arguments))
        if self.outcome is not None:
            return self.outcome
        return succeed(f"{input} done")


def make(
    config: dict[str, object],
) -> tuple[Scheduler, Protocol, Clock, list[DriverEvent]]:
    clock = Clock()
    events = EventBus(clock)
    seen: list[DriverEvent] = []
    events.subscribe(seen.append)
    protocol = Protocol()
    scheduler = Scheduler(protocol.fire, events, clock=clock)
    scheduler.configure(parse_jobs(config, OFFERED))
    return scheduler, protocol, clock, seen


class IntervalTests(SynchronousTestCase):
    """
    Jobs that run every so many seconds.
    """

    def test_runsEveryInterval(self) -> None:
        """
        A job fires its input once per interval, starting one interval
        after start, and publishes each result.
        """
        scheduler, protocol, clock, seen = make(
            {"acquire_status": {"interval": 3600, "arguments": {"full": True}}}
        )
        scheduler.start()
        clock.advance(3599)
        self.assertEqual(protocol.fired, [])
        clock.advance(1)
        self.assertEqual(protocol.fired, [("acquire_status", {"full": True})])
        clock.advance(3600)
        self.assertEqual(len(protocol.fired), 2)
        results = [e for e in seen if isinstance(e, ResultEvent)]
        self.assertEqual(results[0].command, "acquire_status")
        self.assertEqual(results[0].result, "acquire_status done")

    def test_skippedWhenInvalid(self) -> None:
        """
        A job whose input is not valid in the current state is skipped with
        an error event naming the job and the state; it runs again next
        time.
        """
        scheduler, protocol, clock, seen = make({"acquire_status": {"interval": 60}})
        scheduler.start()
        protocol.state = "DIRECT_ACCESS"
        clock.advance(60)
        self.assertEqual(protocol.fired, [])
        [event] = [e for e in seen if isinstance(e, ErrorEvent)]
        self.assertEqual(event.error_code, "INSTRUMENT_STATE")
        self.assertEqual(event.details["job"], "acquire_status")
        self.assertEqual(event.details["state"], "DIRECT_ACCESS")
        self.assertTrue(event.details["skipped"])
        self.assertEqual(scheduler.skipped, {"acquire_status": 1})
        protocol.state = "COMMAND"
        clock.advance(60)
        self.assertEqual(len(protocol.fired), 1)

    def test_failureReported(self) -> None:
        """
        A job that fails is reported as an error event, and keeps running.
        """
        scheduler, protocol, clock, seen = make({"acquire_status": {"interval": 60}})
        protocol.outcome = fail(InstrumentTimeoutError("acquire_status", b"S>", 5))
        scheduler.start()
        clock.advance(60)
        [event] = [e for e in seen if isinstance(e, ErrorEvent)]
        self.assertEqual(event.error_code, "INSTRUMENT_TIMEOUT")
        self.assertFalse(event.details["skipped"])
        protocol.outcome = None
        clock.advance(60)
        self.assertEqual(len(protocol.fired), 2)

    def test_stop(self) -> None:
        """
        Stopping leaves nothing scheduled.
        """
        scheduler, _, clock, _ = make(
            {"acquire_status": {"interval": 60}, "clock_sync": {"cron": "0 0 * * *"}}
        )
        scheduler.start()
        self.assertEqual(len(clock.getDelayedCalls()), 2)
        scheduler.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_ooiTrigger(self) -> None:
        """
        The OOI form of an interval trigger is accepted.
        """
        [job] = parse_jobs(
            {
                "acquire_status": {
                    "trigger": {"type": "interval", "hours": 1, "minutes": 1}
                }
            },
            OFFERED,
        )
        self.assertEqual(job.interval, 3660)


class CronTests(SynchronousTestCase):
    """
    Cron-like schedules.
    """

    def test_nextAfter(self) -> None:
        """
        The next time is the first matching minute after now, in UTC.
        """
        now = calendar.timegm((2026, 11, 24, 10, 30, 15))
        hourly = CronSchedule.parse("0 * * * *")
        self.assertEqual(
            hourly.next_after(now), calendar.timegm((2026, 11, 24, 11, 0, 0))
        )
        daily = CronSchedule.parse("15 2 * * *")
        self.assertEqual(
            daily.next_after(now), calendar.timegm((2026, 11, 25, 2, 15, 0))
        )
        # 2026-11-29 is a Sunday.
        sundays = CronSchedule.parse("0 12 * * 0")
        self.assertEqual(
            sundays.next_after(now), calendar.timegm((2026, 11, 29, 12, 0, 0))
        )
        steps = CronSchedule.parse("*/20 8-9 * * 1-5")
        self.assertEqual(
            steps.next_after(now), calendar.timegm((2026, 11, 25, 8, 0, 0))
        )

    def test_runsAtCronTimes(self) -> None:
        """
        A cron job fires at each matching time on the clock.
        """
        scheduler, protocol, clock, _ = make({"clock_sync": {"cron": "0 * * * *"}})
        clock.advance(calendar.timegm((2026, 11, 24, 10, 59, 0)))
        scheduler.start()
        clock.advance(59)
        self.assertEqual(protocol.fired, [])
        clock.advance(1)
        self.assertEqual(protocol.fired, [("sync_clock", {})])
        clock.advance(3600)
        self.assertEqual(len(protocol.fired), 2)

    def test_badCron(self) -> None:
        """
        A cron expression that is wrong is refused naming the job and the
        field.
        """
        for text in ["0 * * *", "61 * * * *", "x * * * *", "*/0 * * * *"]:
            error = self.assertRaises(
                InstrumentParameterError,
                parse_jobs,
                {"clock_sync": {"cron": text}},
                OFFERED,
            )
            self.assertEqual(error.parameter, "scheduler.clock_sync.cron")

    def test_neverMatches(self) -> None:
        """
        A schedule that never matches says so.
        """
        self.assertRaises(ValueError, CronSchedule.parse("0 0 31 2 *").next_after, 0.0)


class ConfigTests(SynchronousTestCase):
    """
    Reading the scheduler section of a startup config.
    """

    def test_unknownJob(self) -> None:
        """
        A job the protocol does not offer is refused, listing those it
        does.
        """
        error = self.assertRaises(
            InstrumentParameterError, parse_jobs, {"dance": {"interval": 1}}, OFFERED
        )
        self.assertIn("acquire_status, clock_sync", error.message)

    def test_badInterval(self) -> None:
        """
        Intervals must be positive numbers of seconds.
        """
        for value in [0, -1, "1h", True]:
            error = self.assertRaises(
                InstrumentParameterError,
                parse_jobs,
                {"acquire_status": {"interval": value}},
                OFFERED,
            )
            self.assertEqual(error.parameter, "scheduler.acquire_status.interval")

    def test_noTrigger(self) -> None:
        """
        A job with no trigger, or a trigger of an unknown type, is refused.
        """
        self.assertRaises(
            InstrumentParameterError, parse_jobs, {"acquire_status": {}}, OFFERED
        )
        self.assertRaises(
            InstrumentParameterError,
            parse_jobs,
            {"acquire_status": {"trigger": {"type": "absolute"}}},
            OFFERED,
        )

    def test_reconfigureWhileRunning(self) -> None:
        """
        Configuring new jobs while running replaces the old ones.
        """
        scheduler, protocol, clock, _ = make({"acquire_status": {"interval": 60}})
        scheduler.start()
        scheduler.configure(parse_jobs({"clock_sync": {"interval": 10}}, OFFERED))
        clock.advance(60)
        self.assertEqual({input for input, _ in protocol.fired}, {"sync_clock"})
