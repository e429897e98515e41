"""
The flat line test: a sensor stuck on one value.

As in ioos_qc, sample *n* is flat for a threshold of *T* seconds when the
values of samples *n-k* .. *n*, with *k* = floor(*T* / interval), all lie
within less than ``tolerance`` of each other; missing values in that window
are left out (so a window where every value but one is missing counts as
flat, as ioos_qc's users have seen: ioos/ioos_qc#68), and the first *k*
samples, whose window is not full yet, pass.

The sample interval is where streaming must differ: ioos_qc takes the
median interval of the whole series (cut to whole seconds); a stream
cannot, so it uses the configured ``interval`` or else the median of the
last :data:`INTERVALS_KEPT` intervals.  For a regularly sampled stream the
two are the same.  The window's minimum and maximum are kept in monotonic
queues, so each sample costs O(1) whatever the window length.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Final

from instrumentd.qc.flags import QartodFlag, finite

__all__ = ["INTERVALS_KEPT", "FlatLineTest", "WindowRange"]

#: How many recent sample intervals the median interval is taken over.
INTERVALS_KEPT: Final = 15


class WindowRange:
    """
    Minimum and maximum of the values among the last few sample positions,
    missing values left out, each in amortised O(1).
    """

    def __init__(self) -> None:
        # (position, value) with values increasing / decreasing: the front
        # is the window's minimum / maximum.
        self._low: deque[tuple[int, float]] = deque()
        self._high: deque[tuple[int, float]] = deque()

    def push(self, position: int, value: float | None) -> None:
        """
        Add the value at ``position`` (positions increase by one a sample).
        """
        if value is None:
            return
        while self._low and self._low[-1][1] >= value:
            self._low.pop()
        self._low.append((position, value))
        while self._high and self._high[-1][1] <= value:
            self._high.pop()
        self._high.append((position, value))

    def spread(self, first: int) -> float | None:
        """
        :param first: the oldest position still in the window; older ones
            are forgotten.
        :returns: maximum minus minimum over the window, ``None`` when every
            value in it is missing.
        """
        for queue in (self._low, self._high):
            while queue and queue[0][0] < first:
                queue.popleft()
        if not self._low:
            return None
        return self._high[0][1] - self._low[0][1]


class FlatLineTest:
    """
    QARTOD flat line test (ioos_qc ``flat_line_test``), streaming; it keeps
    the window's extremes and the last few intervals.

    :param suspect_threshold: seconds of flat values before suspect.
    :param fail_threshold: seconds of flat values before fail.
    :param tolerance: values closer together than this are the same (a
        tolerance of 0 never flags, as in ioos_qc).
    :param interval: the stream's sample interval in seconds, or ``None``
        to take it from the samples' times.
    """

    name = "flat_line"
    lag = 0

    def __init__(
        self,
        suspect_threshold: float,
        fail_threshold: float,
        tolerance: float,
        interval: float | None = None,
    ) -> None:
        self.suspect_threshold = suspect_threshold
        self.fail_threshold = fail_threshold
        self.tolerance = tolerance
        self.interval = interval
        self._position = -1
        self._time: float | None = None
        self._intervals: deque[float] = deque(maxlen=INTERVALS_KEPT)
        self._suspect = WindowRange()
        self._fail = WindowRange()

    def _current_interval(self) -> float | None:
        if self.interval is not None:
            return self.interval
        if not self._intervals:
            return None
        return statistics.median(self._intervals)

    def _flat(self, window: WindowRange, threshold: float, interval: float) -> bool:
        # ioos_qc: int(int(threshold) / interval) samples before this one.
        if interval <= 0:
            # Repeated timestamps (ioos/glider-dac#371): no interval to
            # count the window in; ioos_qc divides by zero here.
            return False
        back = math.floor(int(threshold) / interval)
        if self._position < back:
            # The window is not full yet: as ioos_qc, pass.
            return False
        spread = window.spread(self._position - back)
        return spread is not None and spread < self.tolerance

    def step(self, time: float, value: float | None) -> QartodFlag:
        """
        :returns: this sample's flag.
        """
        value = finite(value)
        self._position += 1
        if self._time is not None:
            self._intervals.append(abs(time - self._time))
        self._time = time
        self._suspect.push(self._position, value)
        self._fail.push(self._position, value)
        interval = self._current_interval()
        fail = interval is not None and self._flat(
            self._fail, self.fail_threshold, interval
        )
        suspect = interval is not None and self._flat(
            self._suspect, self.suspect_threshold, interval
        )
        if value is None:
            return QartodFlag.MISSING
        if fail:
            return QartodFlag.FAIL
        if suspect:
            return QartodFlag.SUSPECT
        return QartodFlag.PASS

    def finish(self) -> None:
        """
        :returns: nothing: no flag is ever owed.
        """
        return None
