"""
The spike test: a sample far from both its neighbours.

It needs the sample after, so in a stream it flags each sample one sample
late (``lag`` 1): the flag returned when sample *n* arrives is sample
*n-1*'s, and it equals ioos_qc's whole-series flag for that sample.  The
first sample has no neighbour before and the last none after: both are not
evaluated, as in ioos_qc.
"""

from __future__ import annotations

from typing import Final

from instrumentd.qc.flags import QartodFlag, finite

__all__ = ["METHODS", "SpikeTest"]

#: ``average``: how far the sample is from the mean of its neighbours (the
#: QARTOD manuals' test); ``differential``: the smaller of its steps from
#: each neighbour, counted only when the two steps go opposite ways.
METHODS: Final = ("average", "differential")


class SpikeTest:
    """
    QARTOD spike test (ioos_qc ``spike_test``), streaming, one sample late.
    It keeps the two samples before the newest.

    :param suspect_threshold: a spike larger than this (in the field's
        units) is suspect; ``None`` for no suspect level.
    :param fail_threshold: larger than this fails; ``None`` for none.
    :param method: one of :data:`METHODS`.
    """

    name = "spike"
    lag = 1

    def __init__(
        self,
        suspect_threshold: float | None,
        fail_threshold: float | None,
        method: str = "average",
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {METHODS}")
        self.suspect_threshold = suspect_threshold
        self.fail_threshold = fail_threshold
        self.method = method
        self._seen = 0
        self._before: float | None = None
        self._middle: float | None = None

    def _size(self, before: float, middle: float, after: float) -> float:
        if self.method == "average":
            return abs(middle - (before + after) / 2)
        rise, fall = middle - before, after - middle
        return min(abs(rise), abs(fall)) if rise * fall < 0 else 0.0

    def step(self, time: float, value: float | None) -> QartodFlag | None:
        """
        :returns: the flag of the sample before this one, ``None`` on the
            first sample.
        """
        value = finite(value)
        self._seen += 1
        before, middle = self._before, self._middle
        self._before, self._middle = middle, value
        if self._seen == 1:
            return None
        if middle is None:
            return QartodFlag.MISSING
        if before is None or value is None:
            # A neighbour missing, or none yet: the second sample's
            # "before" is the unset None.
            return QartodFlag.NOT_EVALUATED
        size = self._size(before, middle, value)
        if self.fail_threshold is not None and size > self.fail_threshold:
            return QartodFlag.FAIL
        if self.suspect_threshold is not None and size > self.suspect_threshold:
            return QartodFlag.SUSPECT
        return QartodFlag.PASS

    def finish(self) -> QartodFlag | None:
        """
        :returns: the last sample's flag (not evaluated, or missing), or
            ``None`` if no sample came.
        """
        if self._seen == 0:
            return None
        return QartodFlag.MISSING if self._middle is None else QartodFlag.NOT_EVALUATED
