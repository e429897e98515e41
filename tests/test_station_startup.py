"""
Tests for L{instrumentd.station.startup.StartupQueue} on a Clock, and for a
real station bringing its instruments up a window at a time.
"""

from __future__ import annotations

import re

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from instrumentd.station.startup import (
    DEFAULT_MAX_LAG,
    HEARTBEAT,
    REPORT_EVERY,
    StartupQueue,
)
from tests import test_station_e2e as e2e
from tests.agentsupport import within


class Instruments:
    """
    Starters that record their order and settle when the test says.
    """

    def __init__(self, count: int) -> None:
        self.started: list[int] = []
        self.settling: dict[int, Deferred[None]] = {}
        self.starters = [self._starter(number) for number in range(count)]

    def _starter(self, number: int) -> object:
        def start() -> Deferred[None]:
            self.started.append(number)
            self.settling[number] = Deferred()
            return self.settling[number]

        return start

    def settle(self, number: int) -> None:
        self.settling[number].callback(None)


class StartupQueueTests(SynchronousTestCase):
    """
    At most a window of instruments come up at once, in order.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        # A Clock advanced by seconds at once is a late reactor: the
        # heartbeat is tested on its own.
        self.queue = StartupQueue(self.clock, window=2, timeout=30, max_lag=None)
        self.instruments = Instruments(5)
        self.queue.add(self.instruments.starters)  # type: ignore[arg-type]
        self.done = self.queue.when_all_settled()

    def test_heldBackWhileLate(self) -> None:
        """
        While starters wait, a heartbeat that runs more than C{max_lag}
        late (the reactor is behind) holds back the next starts, even with
        room in the window; a heartbeat on time lets them go.
        """
        self.clock = Clock()
        self.queue = StartupQueue(self.clock, window=2, timeout=30)
        self.instruments = Instruments(5)
        self.queue.add(self.instruments.starters)  # type: ignore[arg-type]
        self.instruments.settle(0)
        self.assertEqual(self.instruments.started, [0, 1, 2])
        # The reactor is a second and a half late for the heartbeat.
        self.clock.advance(HEARTBEAT + DEFAULT_MAX_LAG + 0.5)
        self.assertEqual(self.queue.held_back, 1)
        self.instruments.settle(1)
        self.instruments.settle(2)
        self.assertEqual(self.instruments.started, [0, 1, 2])
        # On time again: the window fills.
        self.clock.advance(HEARTBEAT)
        self.assertEqual(self.instruments.started, [0, 1, 2, 3, 4])
        self.assertEqual(self.queue.held_back, 1)
        # Nothing waits: no heartbeat is left behind, only the timeouts
        # of the two still coming up.
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)

    def test_heldBackLogged(self) -> None:
        """
        Starts held back are logged, at most once in C{REPORT_EVERY}
        seconds, with the lag and how many wait.
        """
        self.clock = Clock()
        queue = StartupQueue(self.clock, window=1, timeout=1000)
        queue.add(Instruments(3).starters)  # type: ignore[arg-type]
        with capturedLogs() as events:
            for _ in range(3):
                self.clock.advance(HEARTBEAT + DEFAULT_MAX_LAG + 1)
            self.clock.advance(REPORT_EVERY)
        lines = [
            formatEvent(event) for event in events if "held back" in formatEvent(event)
        ]
        self.assertEqual(len(lines), 2)
        self.assertIn("2 waiting", lines[0])
        self.assertEqual(queue.held_back, 4)

    def test_noLagCheck(self) -> None:
        """
        With C{max_lag=None} a late reactor holds nothing back, and no
        heartbeat runs.
        """
        self.clock.advance(10)
        self.instruments.settle(0)
        self.assertEqual(self.instruments.started, [0, 1, 2])
        self.assertEqual(self.queue.held_back, 0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)

    def test_window(self) -> None:
        """
        The first two start at once; each one that settles starts the
        next, in the order given; all settled fires when the last has.
        """
        self.assertEqual(self.instruments.started, [0, 1])
        self.assertEqual(self.queue.waiting, 3)
        self.instruments.settle(1)
        self.assertEqual(self.instruments.started, [0, 1, 2])
        self.instruments.settle(0)
        self.instruments.settle(2)
        self.assertEqual(self.instruments.started, [0, 1, 2, 3, 4])
        self.assertNoResult(self.done)
        self.instruments.settle(4)
        self.instruments.settle(3)
        self.successResultOf(self.done)
        self.assertEqual((self.queue.settled, self.queue.timed_out), (5, 0))

    def test_timeout(self) -> None:
        """
        One that does not settle within the timeout no longer holds up the
        next; settling later changes nothing.
        """
        self.clock.advance(29)
        self.assertEqual(self.instruments.started, [0, 1])
        self.clock.advance(1)
        self.assertEqual(self.instruments.started, [0, 1, 2, 3])
        self.assertEqual(self.queue.timed_out, 2)
        self.instruments.settle(0)
        self.assertEqual(self.instruments.started, [0, 1, 2, 3])
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)

    def test_failures(self) -> None:
        """
        A starter that raises, or whose Deferred fails, is logged and lets
        the next start.
        """

        def broken() -> Deferred[None]:
            raise RuntimeError("broken")

        queue = StartupQueue(self.clock, window=1, timeout=30)
        later = Instruments(1)
        with capturedLogs() as events:
            queue.add([broken, lambda: fail(RuntimeError("failed")), *later.starters])  # type: ignore[list-item]
        self.assertEqual(later.started, [0])
        errors = [e for e in events if e["log_level"] == LogLevel.critical]
        self.assertEqual(len(errors), 2)
        self.flushLoggedErrors(RuntimeError)

    def test_stop(self) -> None:
        """
        Once stopped, nothing more starts, and all settled fires when those
        started have settled.
        """
        self.queue.stop()
        self.assertNoResult(self.done)
        self.instruments.settle(0)
        self.instruments.settle(1)
        self.successResultOf(self.done)
        self.assertEqual(self.instruments.started, [0, 1])

    def test_bad(self) -> None:
        """
        The window and timeout are checked.
        """
        self.assertRaises(ValueError, StartupQueue, self.clock, window=0, timeout=1)
        self.assertRaises(ValueError, StartupQueue, self.clock, window=1, timeout=0)


class ProgressiveStationTests(TestCase):
    """
    A real station with a window of one brings its instruments up one
    after the other.
    """

    setUp = e2e.StationEndToEndTests.setUp
    start_station = e2e.StationEndToEndTests.start_station

    async def test_oneAfterTheOther(self) -> None:
        """
        With ``startup_window = 1`` the second instrument's port agent is
        started only once the first runs, and so on; the station says when
        all are up.
        """
        station = self.start_station(
            "startup_window = 1\n"
            + "".join(
                e2e.simulated(f"ctd{number}", autosample=True, heartbeat=0)
                for number in range(3)
            )
        )
        await within(
            station.wait_for(r"all 3 instruments brought up in"), "all up", 120
        )
        # What start-up made is frozen out of garbage collection.
        frozen = re.search(r"; (\d+) start-up objects frozen", station.output)
        assert frozen is not None, station.output[-2000:]
        self.assertGreater(int(frozen.group(1)), 1000)
        lines = [
            line
            for line in station.output.splitlines()
            if re.search(r"ctd\d: (port agent \(|running, )", line)
        ]
        steps = [
            ("agent" if "port agent (" in line else "running")
            + re.search(r"ctd(\d)", line).group(1)  # type: ignore[union-attr]
            for line in lines
        ]
        self.assertEqual(
            steps,
            ["agent0", "running0", "agent1", "running1", "agent2", "running2"],
        )
