"""
The gross range test: values outside what the sensor can report fail,
values outside what the operator expects here are suspect.
"""

from __future__ import annotations

from instrumentd.qc.base import Span
from instrumentd.qc.flags import QartodFlag

__all__ = ["GrossRangeTest", "outside"]


def outside(value: float, span: Span) -> bool:
    """
    :returns: whether ``value`` lies outside the closed interval ``span``.
    """
    return value < span[0] or value > span[1]


class GrossRangeTest:
    """
    QARTOD gross range test (ioos_qc ``gross_range_test``), one sample at a
    time; it needs no history.

    :param fail_span: the sensor's range: values outside fail.
    :param suspect_span: the range expected in this place, within
        ``fail_span``: values outside it (but inside the sensor's) are
        suspect.  Optional.
    :raises ValueError: if ``suspect_span`` is not within ``fail_span``.
    """

    name = "gross_range"
    lag = 0

    def __init__(self, fail_span: Span, suspect_span: Span | None = None) -> None:
        self.fail_span: Span = (min(fail_span), max(fail_span))
        self.suspect_span: Span | None = (
            None if suspect_span is None else (min(suspect_span), max(suspect_span))
        )
        if self.suspect_span is not None and (
            self.suspect_span[0] < self.fail_span[0]
            or self.suspect_span[1] > self.fail_span[1]
        ):
            raise ValueError(
                f"suspect_span {list(self.suspect_span)} is not within "
                f"fail_span {list(self.fail_span)}"
            )

    @property
    def pass_span(self) -> Span:
        """
        The closed interval of values this test passes, whatever came
        before (it keeps no history): the suspect span if given, else the
        fail span.  An evaluator may flag a value inside it
        :attr:`~instrumentd.qc.QartodFlag.PASS` without calling
        :meth:`step`.
        """
        return self.fail_span if self.suspect_span is None else self.suspect_span

    def step(self, time: float, value: float | None) -> QartodFlag:
        """
        :returns: this sample's flag.
        """
        if value is None:
            return QartodFlag.MISSING
        # outside() written out: this runs for every field of every sample.
        low, high = self.fail_span
        if value < low or value > high:
            return QartodFlag.FAIL
        suspect = self.suspect_span
        if suspect is not None and (value < suspect[0] or value > suspect[1]):
            return QartodFlag.SUSPECT
        return QartodFlag.PASS

    def finish(self) -> None:
        """
        :returns: nothing: no flag is ever owed.
        """
        return None
