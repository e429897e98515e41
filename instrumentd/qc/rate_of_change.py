"""
The rate of change test: the change from the sample before, per second.
"""

from __future__ import annotations

import math

from instrumentd.qc.flags import QartodFlag

__all__ = ["RateOfChangeTest"]


class RateOfChangeTest:
    """
    QARTOD rate of change test (ioos_qc ``rate_of_change_test``), one sample
    at a time; it keeps the sample before.

    As in ioos_qc, the first sample, and a sample after a missing one,
    pass (there is no rate to judge); a sample at the same time as the one
    before with a different value, or after an infinite one, has an
    infinite rate; an infinite value itself is missing.  Unlike ioos_qc,
    which cuts the time step to whole seconds (so sub-second steps divide by
    zero), the step is the exact difference of the times.

    :param threshold: a rate above this (field units per second) is
        suspect.
    :param fail_threshold: above this fails; ``None`` for no fail level.
    """

    name = "rate_of_change"
    lag = 0

    def __init__(self, threshold: float, fail_threshold: float | None = None) -> None:
        self.threshold = threshold
        self.fail_threshold = fail_threshold
        self._time: float | None = None
        self._value: float | None = None

    def step(self, time: float, value: float | None) -> QartodFlag:
        """
        :returns: this sample's flag.
        """
        last_time, last = self._time, self._value
        self._time, self._value = time, value
        if value is None or not math.isfinite(value):
            return QartodFlag.MISSING
        if last is None or last_time is None or value == last:
            return QartodFlag.PASS
        elapsed = abs(time - last_time)
        rate = abs(value - last) / elapsed if elapsed else float("inf")
        if self.fail_threshold is not None and rate > self.fail_threshold:
            return QartodFlag.FAIL
        if rate > self.threshold:
            return QartodFlag.SUSPECT
        return QartodFlag.PASS

    def finish(self) -> None:
        """
        :returns: nothing: no flag is ever owed.
        """
        return None
