# -*- test-case-name: tests.test_station_startup -*-
"""
Bringing many instruments up a window at a time: :class:`StartupQueue`.

Starting every instrument at once makes a large station useless for its
first minute: thousands of agents connect, thousands of drivers discover
their instruments, all in the same reactor turns, and none samples until
nearly all are through.  The queue keeps at most ``window`` instruments
coming up at a time; each one that settles (runs, or fails and waits to
retry, or takes longer than the timeout) lets the next start.  So the first
instruments sample within seconds, and the rest follow as fast as the
station can take them.

"As fast as the station can take them" is measured, not assumed: while
instruments wait to start, a heartbeat timer checks how late the reactor
runs it.  A station whose reactor falls more than ``max_lag`` seconds
behind (it is handling more data than its share of a core allows: every
instrument already up samples, and each one coming up costs milliseconds
of discovery) starts no more until a heartbeat is on time again.  Without
this, on a loaded machine, each turn of the reactor took longer as more
instruments came up, every exchange of those coming up took a turn, they
timed out, the timeout let more start, and the station sank under them:
at 5,000 instruments, 2,000 running, its API unanswered for minutes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["DEFAULT_MAX_LAG", "HEARTBEAT", "StartupQueue"]

#: Seconds late the reactor may run a timer before no more instruments
#: start.
DEFAULT_MAX_LAG = 1.0
#: Seconds between the heartbeats that measure it.
HEARTBEAT = 0.5
#: Seconds between the log lines that say starts are held back.
REPORT_EVERY = 30.0

_log = Logger()

#: Starts one instrument; the Deferred fires when it has settled.
Starter = Callable[[], "Deferred[Any]"]


class StartupQueue:
    """
    Runs starters at most ``window`` at a time.

    :ivar started: how many starters have been run.
    :ivar settled: how many of them have settled (or timed out).
    :ivar timed_out: how many were let go by the timeout.
    :ivar held_back: how many heartbeats found the reactor late and held
        the next starts back.
    :ivar lag: how late the last heartbeat ran, seconds.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        window: int,
        timeout: float,
        max_lag: float | None = DEFAULT_MAX_LAG,
    ) -> None:
        """
        :param clock: for the timeout.
        :param window: how many may be coming up at once, at least 1.
        :param timeout: seconds after which one that has not settled no
            longer holds up the others.
        :param max_lag: seconds late a heartbeat may run before starts are
            held back; ``None`` never holds them back.
        :raises ValueError: for a window below 1, a timeout not above 0 or
            a ``max_lag`` below 0.
        """
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if max_lag is not None and max_lag < 0:
            raise ValueError(f"max_lag must be 0 or more, not {max_lag}")
        self._clock = clock
        self._window = window
        self._timeout = timeout
        self._max_lag = max_lag
        self._lagging = False
        self._heartbeat: IDelayedCall | None = None
        self._reported: float | None = None
        self._waiting: deque[Starter] = deque()
        self._running = 0
        self._stopped = False
        self._all_settled: list[Deferred[None]] = []
        self.started = 0
        self.settled = 0
        self.timed_out = 0
        self.held_back = 0
        self.lag = 0.0

    @property
    def waiting(self) -> int:
        """
        How many starters have not been run yet.
        """
        return len(self._waiting)

    def add(self, starters: Iterable[Starter]) -> None:
        """
        Queue starters, and run as many as the window allows now.
        """
        self._waiting.extend(starters)
        self._fill()

    def when_all_settled(self) -> Deferred[None]:
        """
        :returns: a Deferred firing once every starter queued has been run
            and has settled (or timed out), or the queue was stopped.
        """
        waiter: Deferred[None] = Deferred()
        self._all_settled.append(waiter)
        self._check_done()
        return waiter

    def stop(self) -> None:
        """
        Run no more starters (the station is stopping).
        """
        self._stopped = True
        self._waiting.clear()
        self._stop_heartbeat()
        self._check_done()

    def _fill(self) -> None:
        while (
            self._waiting
            and self._running < self._window
            and not self._stopped
            and not self._lagging
        ):
            starter = self._waiting.popleft()
            self._running += 1
            self.started += 1
            self._run(starter)
        if self._waiting and not self._stopped:
            self._start_heartbeat()
        else:
            self._stop_heartbeat()

    # The heartbeat: runs only while starters wait.

    def _start_heartbeat(self) -> None:
        if self._max_lag is None or self._heartbeat is not None:
            return
        due = self._clock.seconds() + HEARTBEAT
        self._heartbeat = self._clock.callLater(HEARTBEAT, self._beat, due)

    def _stop_heartbeat(self) -> None:
        beat, self._heartbeat = self._heartbeat, None
        self._lagging = False
        if beat is not None and beat.active():
            beat.cancel()

    def _beat(self, due: float) -> None:
        self._heartbeat = None
        assert self._max_lag is not None
        self.lag = max(self._clock.seconds() - due, 0.0)
        self._lagging = self.lag > self._max_lag
        if self._lagging:
            self.held_back += 1
            now = self._clock.seconds()
            if self._reported is None or now - self._reported >= REPORT_EVERY:
                # An operator whose station stays behind (more instruments
                # than its core carries) hears why the rest do not start.
                self._reported = now
                _log.info(
                    "start-up held back: the reactor runs {lag:.1f} s late; "
                    "{running} instruments coming up, {waiting} waiting",
                    lag=self.lag,
                    running=self._running,
                    waiting=len(self._waiting),
                )
        # Starts what the window allows, or (lagging) none, and beats again
        # while starters wait.
        self._fill()

    def _run(self, starter: Starter) -> None:
        done = False
        timer: IDelayedCall | None = None

        def release(timed_out: bool) -> None:
            nonlocal done
            if done:
                return
            done = True
            if timer is not None and timer.active():
                timer.cancel()
            self._running -= 1
            self.settled += 1
            self.timed_out += timed_out
            self._fill()
            self._check_done()

        timer = self._clock.callLater(self._timeout, release, True)
        try:
            settling = starter()
        except Exception:
            _log.failure("starting an instrument failed")
            release(False)
            return

        def settled(result: object) -> object:
            release(False)
            return result

        settling.addBoth(settled).addErrback(
            lambda reason: _log.failure("an instrument's start failed", reason)
        )

    def _check_done(self) -> None:
        if self._running or (self._waiting and not self._stopped):
            return
        waiters, self._all_settled = self._all_settled, []
        for waiter in waiters:
            waiter.callback(None)
