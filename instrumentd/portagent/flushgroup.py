# -*- test-case-name: tests.test_flushgroup -*-
"""
One timer for many buffers that each promise a flush within an interval.

A station of thousands of in-process agents has a datalog each, and each
instrument's samples arrive about once a second: a timer per datalog per
flush interval is a timer per sample.  Each costs several microseconds to
make, file in the reactor's heap and fire, and thousands of them make every
other timer slower to file.  A :class:`FlushGroup` holds one timer for all
the buffers of one clock and interval: a buffer that takes its first bytes
joins, and the timer, armed by the first to join, flushes every member.  A
member joined at or after the timer was armed, so it is flushed within the
interval, as promised; sometimes sooner.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["FlushGroup", "flush_group"]

_log = Logger()


class FlushGroup:
    """
    Buffers flushed together by one timer.

    :param clock: the clock whose timer it is.
    :param interval: the longest a member waits for its flush, seconds.
    """

    def __init__(self, clock: IReactorTime, interval: float) -> None:
        # Weakly: the registry below is keyed weakly by the clock, and a
        # value holding its key would keep every test's clock alive.  The
        # members hold the clock themselves while they need the group.
        self._clock = weakref.ref(clock)
        self.interval = interval
        # Insertion-ordered, so members are flushed in the order they
        # joined; keyed by the member so joining twice is one flush.
        self._members: dict[object, Callable[[], None]] = {}
        self._call: IDelayedCall | None = None

    def __len__(self) -> int:
        return len(self._members)

    def join(self, member: object, flush: Callable[[], None]) -> None:
        """
        Have ``flush`` called within the interval (once, however often the
        member joins before then).

        :param member: the buffer; the key for :meth:`leave`.
        :param flush: called with no arguments to flush it.
        """
        self._members[member] = flush
        if self._call is None:
            clock = self._clock()
            assert clock is not None, "a member outlived its clock"
            self._call = clock.callLater(self.interval, self._due)

    def leave(self, member: object) -> None:
        """
        Forget ``member`` (it flushed by itself, or closed); the timer is
        cancelled once no member is left.

        :param member: as given to :meth:`join`.
        """
        if self._members.pop(member, None) is not None and not self._members:
            call, self._call = self._call, None
            if call is not None and call.active():
                call.cancel()

    def _due(self) -> None:
        self._call = None
        members, self._members = self._members, {}
        for flush in members.values():
            try:
                flush()
            except Exception:
                # One buffer's fault must not keep the others' bytes back.
                _log.failure("flushing a buffer failed")


_groups: weakref.WeakKeyDictionary[object, dict[float, FlushGroup]] = (
    weakref.WeakKeyDictionary()
)


def flush_group(clock: IReactorTime, interval: float) -> FlushGroup:
    """
    The group shared by every buffer of ``clock`` with ``interval``.

    :param clock: the clock (a reactor, or a test's ``Clock``).
    :param interval: the flush interval, seconds.
    :returns: the group, made on first use and forgotten with the clock.
    """
    by_interval = _groups.get(clock)
    if by_interval is None:
        by_interval = _groups[clock] = {}
    group = by_interval.get(interval)
    if group is None:
        group = by_interval[interval] = FlushGroup(clock, interval)
    return group
