# -*- test-case-name: tests.test_simulator_fleet -*-
"""
Timers for thousands of simulators on one reactor: one reactor timer for
them all, firing at most once a time slot.

A fleet of simulated instruments logging at 1 Hz keeps a timer per
instrument.  On the reactor that is thousands of delayed calls in Twisted's
heap, each ordered by a Python comparison, and a reactor turn (a poll, the
timers, the writes) for nearly every sample, since their phases are spread
over the second.  :class:`SlottedTimers` keeps the simulators' timers in a
heap of its own, ordered by tuples, and holds one reactor timer, set for
the end of the slot the earliest of them falls in: every timer due in a
slot runs in one reactor turn, in order of time, as the reactor would have
run them.  A timer never runs early; it runs at most one slot late.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

__all__ = ["SlottedTimers"]


@implementer(IDelayedCall)
class _SlotCall:
    """
    One timer of a :class:`SlottedTimers`.
    """

    __slots__ = ("_args", "_f", "_kwargs", "_owner", "_state", "key", "time")

    def __init__(
        self,
        owner: SlottedTimers,
        time: float,
        f: Callable[..., object],
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> None:
        self._owner = owner
        self.time = time
        self._f = f
        self._args = args
        self._kwargs = kwargs
        # 0 pending, 1 called, 2 cancelled.
        self._state = 0
        #: The sequence number of its entry in the heap (a reset makes a
        #: new entry; the old one is then skipped).
        self.key = 0

    def getTime(self) -> float:
        return self.time

    def active(self) -> bool:
        return self._state == 0

    def _check_pending(self) -> None:
        if self._state == 1:
            raise AlreadyCalled()
        if self._state == 2:
            raise AlreadyCancelled()

    def cancel(self) -> None:
        self._check_pending()
        self._state = 2
        self._owner._cancelled()

    def reset(self, secondsFromNow: float) -> None:
        self._move(self._owner.seconds() + secondsFromNow)

    def delay(self, secondsLater: float) -> None:
        self._move(self.time + secondsLater)

    def _move(self, when: float) -> None:
        self._check_pending()
        self.time = when
        self._owner._push(self)

    def run(self) -> None:
        self._state = 1
        f, args, kwargs = self._f, self._args, self._kwargs
        self._f = self._args = self._kwargs = None  # type: ignore[assignment]
        f(*args, **kwargs)


@implementer(IReactorTime)
class SlottedTimers:
    """
    :class:`~twisted.internet.interfaces.IReactorTime` for many simulators:
    their timers, run in slots of ``slot`` seconds by one timer of the
    reactor.

    :ivar slot: the slot, reactor seconds.
    :ivar turns: how many times the reactor timer has fired.
    """

    _log = Logger()

    def __init__(self, reactor: IReactorTime, slot: float = 0.01) -> None:
        """
        :param reactor: the reactor whose time and timer this uses.
        :param slot: how long a slot is, seconds, above 0: a timer runs at
            most this late.
        :raises ValueError: for a slot that is not a positive number.
        """
        if not (math.isfinite(slot) and slot > 0):
            raise ValueError(
                f"slot {slot!r} is not valid; valid: a number of seconds above 0"
            )
        self._reactor = reactor
        self.slot = slot
        self._heap: list[tuple[float, int, _SlotCall]] = []
        self._sequence = 0
        self._stale = 0
        # The reactor timer, and the time it is set for.
        self._timer: IDelayedCall | None = None
        self._timer_at = math.inf
        self._firing = False
        self.turns = 0

    def seconds(self) -> float:
        """
        :returns: the reactor's time.
        """
        return self._reactor.seconds()

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kw: object
    ) -> IDelayedCall:
        """
        Call ``callable(*args, **kw)`` ``delay`` seconds from now, at the end
        of the slot that time falls in.

        :returns: a delayed call, which may be cancelled or reset.
        """
        call = _SlotCall(self, self._reactor.seconds() + delay, callable, args, kw)
        self._push(call)
        return call

    def getDelayedCalls(self) -> list[IDelayedCall]:
        """
        :returns: the timers still pending.
        """
        return [
            call for _, key, call in self._heap if call.key == key and call.active()
        ]

    def stop(self) -> None:
        """
        Cancel every timer pending, and the reactor's.
        """
        heap, self._heap = self._heap, []
        for _, key, call in heap:
            if call.key == key and call.active():
                call._state = 2
        self._stale = 0
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf

    def _push(self, call: _SlotCall) -> None:
        if call.key:
            # A reset: its old entry stays in the heap, skipped.
            self._stale += 1
        self._sequence += 1
        call.key = self._sequence
        heapq.heappush(self._heap, (call.time, self._sequence, call))
        self._arm(call.time)

    def _cancelled(self) -> None:
        self._stale += 1
        if self._stale > 64 and self._stale > len(self._heap) // 2:
            # Cancelled timers (an instrument's idle timer, at each command)
            # are dropped here rather than one by one.
            self._heap = [
                entry
                for entry in self._heap
                if entry[2].key == entry[1] and entry[2].active()
            ]
            heapq.heapify(self._heap)
            self._stale = 0

    def _arm(self, when: float) -> None:
        # The end of the slot ``when`` falls in: every timer of that slot
        # shares it.  Never before ``when`` (rounding).
        at = max(math.ceil(when / self.slot) * self.slot, when)
        if self._firing:
            # A timer set by a timer for now runs in a later reactor turn,
            # as a delayed call set by a delayed call does.
            at = max(at, self._reactor.seconds() + self.slot * 1e-3)
        if at >= self._timer_at:
            return
        self._timer_at = at
        delay = max(at - self._reactor.seconds(), 0.0)
        if self._timer is not None and self._timer.active():
            self._timer.reset(delay)
        else:
            self._timer = self._reactor.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self.turns += 1
        now = self._reactor.seconds()
        heap = self._heap
        due = []
        # Only what is due now: a timer set by one of these for now runs
        # at the next slot, as the reactor runs a new timer next turn.
        while heap and heap[0][0] <= now:
            _, key, call = heapq.heappop(heap)
            if call.key == key and call.active():
                due.append(call)
            else:
                self._stale -= 1
        self._firing = True
        try:
            for call in due:
                if not call.active():  # cancelled by one before it
                    continue
                try:
                    call.run()
                except Exception:
                    self._log.failure("Unhandled error in a simulator's timer")
            if heap:
                self._arm(heap[0][0])
        finally:
            self._firing = False
