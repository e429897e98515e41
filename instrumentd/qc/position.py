"""
Sanity tests of a whole sample: its position and its time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from instrumentd.qc.base import Span
from instrumentd.qc.flags import QartodFlag, as_number
from instrumentd.qc.gross_range import outside

__all__ = ["EARTH_RADIUS", "LocationTest", "TimeTest", "haversine"]

#: Metres; the sphere ioos_qc's default distance (by way of gsw) uses.
EARTH_RADIUS: Final = 6371e3


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """
    :returns: great-circle distance in metres between two points given in
        degrees, on a sphere of :data:`EARTH_RADIUS`.
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dlat, dlon = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dlat / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlon / 2) ** 2
    return EARTH_RADIUS * 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a))


class LocationTest:
    """
    QARTOD location test (ioos_qc ``location_test``), for streams that carry
    their own position: a latitude beyond ±90° or longitude beyond ±180°
    fails, one of the two missing fails, both missing is missing, and
    (optionally) a move of more than ``range_max`` metres since the sample
    before is suspect.

    :param lat_field: the field holding latitude, degrees north.
    :param lon_field: the field holding longitude, degrees east.
    :param range_max: metres, or ``None`` not to check moves.
    """

    name = "location"

    def __init__(self, lat_field: str, lon_field: str, range_max: float | None) -> None:
        self.lat_field = lat_field
        self.lon_field = lon_field
        self.range_max = range_max
        self._last: tuple[float | None, float | None] | None = None

    def step(self, time: float, values: dict[str, object]) -> QartodFlag:
        """
        :returns: this sample's flag.
        """
        lat = as_number(values.get(self.lat_field))
        lon = as_number(values.get(self.lon_field))
        last, self._last = self._last, (lat, lon)
        if lat is None and lon is None:
            return QartodFlag.MISSING
        if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
            return QartodFlag.FAIL
        if (
            self.range_max is not None
            and last is not None
            and last[0] is not None
            and last[1] is not None
            and haversine(last[0], last[1], lat, lon) > self.range_max
        ):
            return QartodFlag.SUSPECT
        return QartodFlag.PASS


class TimeTest:
    """
    The time sanity test (ioos_qc ``impossible_date_test``): a sample time
    in the future of the station's clock fails, and so does one outside
    ``fail_span`` when given.

    :param now: the station clock, seconds since 1970-01-01 UTC (the
        reactor's ``seconds``).
    :param fail_span: earliest and latest acceptable times, seconds since
        1970-01-01 UTC, or ``None``.
    """

    name = "time"

    def __init__(self, now: Callable[[], float], fail_span: Span | None) -> None:
        self.now = now
        self.fail_span = fail_span

    def step(self, time: float, values: dict[str, object]) -> QartodFlag:
        """
        :returns: this sample's flag.
        """
        if not math.isfinite(time):
            return QartodFlag.MISSING
        if time > self.now() or (
            self.fail_span is not None and outside(time, self.fail_span)
        ):
            return QartodFlag.FAIL
        return QartodFlag.PASS
