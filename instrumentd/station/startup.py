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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["StartupQueue"]

_log = Logger()

#: Starts one instrument; the Deferred fires when it has settled.
Starter = Callable[[], "Deferred[Any]"]


class StartupQueue:
    """
    Runs starters at most ``window`` at a time.

    :ivar started: how many starters have been run.
    :ivar settled: how many of them have settled (or timed out).
    :ivar timed_out: how many were let go by the timeout.
    """

    def __init__(self, clock: IReactorTime, *, window: int, timeout: float) -> None:
        """
        :param clock: for the timeout.
        :param window: how many may be coming up at once, at least 1.
        :param timeout: seconds after which one that has not settled no
            longer holds up the others.
        :raises ValueError: for a window below 1 or a timeout not above 0.
        """
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._clock = clock
        self._window = window
        self._timeout = timeout
        self._waiting: deque[Starter] = deque()
        self._running = 0
        self._stopped = False
        self._all_settled: list[Deferred[None]] = []
        self.started = 0
        self.settled = 0
        self.timed_out = 0

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
        self._check_done()

    def _fill(self) -> None:
        while self._waiting and self._running < self._window and not self._stopped:
            starter = self._waiting.popleft()
            self._running += 1
            self.started += 1
            self._run(starter)

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
