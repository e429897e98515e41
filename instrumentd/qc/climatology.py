"""
The climatology test: seasonal expected ranges, checked against the
sample's time (and the instrument's depth when the spans give depths).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from instrumentd.qc.base import Span
from instrumentd.qc.flags import QartodFlag
from instrumentd.qc.gross_range import outside

__all__ = ["PERIODS", "ClimatologySpan", "ClimatologyTest"]


def _week(when: datetime) -> int:
    return when.isocalendar().week


#: The periods a span's times can be given in, as pandas names the
#: timestamp's fields (ioos_qc reads them from a pandas Timestamp):
#: ``dayofweek`` is 0 for Monday, ``week`` the ISO week.
PERIODS: Final[dict[str, Callable[[datetime], int]]] = {
    "year": lambda when: when.year,
    "quarter": lambda when: (when.month - 1) // 3 + 1,
    "month": lambda when: when.month,
    "week": _week,
    "weekofyear": _week,
    "day": lambda when: when.day,
    "dayofyear": lambda when: when.timetuple().tm_yday,
    "dayofweek": lambda when: when.weekday(),
    "hour": lambda when: when.hour,
}


@dataclass(frozen=True)
class ClimatologySpan:
    """
    One season's expected values.

    :ivar tspan: the season, inclusive at both ends: in ``period`` units
        (months 1-12, days of the year...) when ``period`` is set, else
        seconds since 1970-01-01 UTC.
    :ivar vspan: values outside are suspect.
    :ivar fspan: values outside fail (optional).
    :ivar zspan: depths, metres positive down, the span applies to
        (optional: without it, every depth).
    :ivar period: the unit of ``tspan``, one of :data:`PERIODS`, or ``None``.
    """

    tspan: Span
    vspan: Span
    fspan: Span | None = None
    zspan: Span | None = None
    period: str | None = None


class ClimatologyTest:
    """
    QARTOD climatology test (ioos_qc ``climatology_test``), one sample at a
    time; it needs no history.  Samples no span covers are not evaluated;
    where spans overlap, the last one that covers the sample decides.  A
    missing value is missing; an infinite one is missing unless a span
    covers it, which then fails it (as in ioos_qc).

    :param spans: the seasons, in order.
    :param depth: the instrument's depth, metres positive down, or ``None``
        when unknown (spans with a ``zspan`` then never apply); or a
        function giving the depth of the sample being tested (read from
        another field of the sample).
    """

    name = "climatology"
    lag = 0

    def __init__(
        self,
        spans: Sequence[ClimatologySpan],
        depth: float | Callable[[], float | None] | None,
    ) -> None:
        self.spans = tuple(spans)
        self.depth = depth

    def _covers(
        self, span: ClimatologySpan, time: float, when: datetime, depth: float | None
    ) -> bool:
        if span.zspan is not None and (depth is None or outside(depth, span.zspan)):
            return False
        at = time if span.period is None else PERIODS[span.period](when)
        return not outside(at, span.tspan)

    def step(self, time: float, value: float | None) -> QartodFlag:
        """
        :returns: this sample's flag.
        """
        if value is None:
            return QartodFlag.MISSING
        when = datetime.fromtimestamp(time, UTC)
        flag = QartodFlag.NOT_EVALUATED if math.isfinite(value) else QartodFlag.MISSING
        depth = self.depth() if callable(self.depth) else self.depth
        if depth is not None and not math.isfinite(depth):
            depth = None
        for span in self.spans:
            if not self._covers(span, time, when, depth):
                continue
            if span.fspan is not None and outside(value, span.fspan):
                flag = QartodFlag.FAIL
            elif outside(value, span.vspan):
                flag = QartodFlag.SUSPECT
            else:
                flag = QartodFlag.PASS
        return flag

    def finish(self) -> None:
        """
        :returns: nothing: no flag is ever owed.
        """
        return None
