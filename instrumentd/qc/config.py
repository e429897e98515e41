"""
From a station's ``qc`` table to evaluators.

The table is what an instrument's ``qc = {...}`` holds in the station TOML:
one table per stream, in it one table per field, in that one table per
test::

    [instruments.qc.ctdpf_sample.temperature]
    gross_range = { fail_span = [-5, 45], suspect_span = [0, 30] }
    spike = { suspect_threshold = 0.5, fail_threshold = 2.0 }
    flat_line = { suspect_threshold = 3600, fail_threshold = 7200, tolerance = 0.0005 }

Four keys of a stream table are not fields: ``defaults`` (false: do not
start from :data:`instrumentd.qc.defaults.DEFAULTS` for this stream),
``hold`` (the longest a sample waits for the next one when the stream has
a spike test, seconds), ``location`` and ``time`` (the whole-sample
tests).  A test set to ``false`` is switched off (to drop a default); a
test table given for a field that has defaults replaces those keys it
names (a default ``suspect_span`` is cut to a ``fail_span`` given without
one); a stream set to ``false`` has no QC at all.

Every mistake is a :class:`QCConfigError` naming the key, the value and
what would be valid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Final

from instrumentd.qc.base import FieldTest, Span, StreamTest
from instrumentd.qc.climatology import PERIODS, ClimatologySpan, ClimatologyTest
from instrumentd.qc.defaults import DEFAULTS
from instrumentd.qc.flags import as_number
from instrumentd.qc.flat_line import FlatLineTest
from instrumentd.qc.gross_range import GrossRangeTest
from instrumentd.qc.position import LocationTest, TimeTest
from instrumentd.qc.rate_of_change import RateOfChangeTest
from instrumentd.qc.spike import METHODS, SpikeTest
from instrumentd.qc.stream import CurrentSample, FieldQC, StreamQC

__all__ = ["FIELD_TESTS", "QCConfigError", "StreamQCSpec", "parse_qc"]

Table = Mapping[str, object]


class QCConfigError(ValueError):
    """
    A ``qc`` table that cannot be used; the message names the key.
    """


def _fail(key: str, value: object, expected: str) -> QCConfigError:
    return QCConfigError(f"{key}: {value!r} is not {expected}")


def _table(key: str, value: object) -> Table:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _fail(key, value, "a table")
    return value


def _keys(
    key: str, table: Table, required: Collection[str], optional: Collection[str]
) -> None:
    valid = sorted({*required, *optional})
    for name in table:
        if name not in valid:
            raise QCConfigError(
                f"{key}.{name}: unknown key; valid keys: {', '.join(valid)}"
            )
    for name in required:
        if name not in table:
            raise QCConfigError(
                f"{key}: {name} is required; valid keys: {', '.join(valid)}"
            )


def _number(key: str, value: object, *, positive: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
    ):
        raise _fail(key, value, "a finite number")
    if positive and value <= 0:
        raise _fail(key, value, "a number greater than 0")
    return float(value)


def _optional(
    key: str, table: Table, name: str, *, positive: bool = False
) -> float | None:
    value = table.get(name)
    return None if value is None else _number(f"{key}.{name}", value, positive=positive)


def _span(
    key: str, value: object, read: Callable[[str, object], float] = _number
) -> Span:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise _fail(key, value, "a pair [low, high]")
    low, high = sorted(read(f"{key}[{i}]", item) for i, item in enumerate(value))
    return (low, high)


def _instant(key: str, value: object) -> float:
    # TOML dates and datetimes arrive as such; strings in ISO 8601 and
    # numbers (seconds since 1970 UTC) are accepted too.  A datetime
    # without a zone is UTC: stations keep UTC.
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _fail(key, value, "an ISO 8601 date or time") from None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(key, value)
    raise _fail(key, value, "a date, a date and time, or seconds since 1970 UTC")


def _gross_range(key: str, table: Table, current: CurrentSample) -> FieldTest:
    _keys(key, table, ["fail_span"], ["suspect_span"])
    fail = _span(f"{key}.fail_span", table["fail_span"])
    suspect = table.get("suspect_span")
    try:
        return GrossRangeTest(
            fail, None if suspect is None else _span(f"{key}.suspect_span", suspect)
        )
    except ValueError as e:
        raise QCConfigError(f"{key}: {e}") from None


def _climatology_span(key: str, value: object) -> ClimatologySpan:
    table = _table(key, value)
    _keys(key, table, ["tspan", "vspan"], ["fspan", "zspan", "period"])
    period = table.get("period")
    if period is not None and period not in PERIODS:
        raise _fail(f"{key}.period", period, f"one of {', '.join(PERIODS)}")
    read = _number if period is not None else _instant
    fspan, zspan = table.get("fspan"), table.get("zspan")
    return ClimatologySpan(
        tspan=_span(f"{key}.tspan", table["tspan"], read),
        vspan=_span(f"{key}.vspan", table["vspan"]),
        fspan=None if fspan is None else _span(f"{key}.fspan", fspan),
        zspan=None if zspan is None else _span(f"{key}.zspan", zspan),
        period=None if period is None else str(period),
    )


def _climatology(key: str, table: Table, current: CurrentSample) -> FieldTest:
    _keys(key, table, ["spans"], ["depth", "depth_field"])
    field = table.get("depth_field")
    if field is not None and not isinstance(field, str):
        raise _fail(f"{key}.depth_field", field, "a field name")
    if field is not None and "depth" in table:
        raise QCConfigError(f"{key}: give depth or depth_field, not both")
    spans = table["spans"]
    if not isinstance(spans, Sequence) or isinstance(spans, str) or not spans:
        raise _fail(f"{key}.spans", spans, "a non-empty list of tables")
    return ClimatologyTest(
        [_climatology_span(f"{key}.spans[{i}]", s) for i, s in enumerate(spans)],
        _optional(key, table, "depth")
        if field is None
        else lambda: as_number(current.values.get(field)),
    )


def _spike(key: str, table: Table, current: CurrentSample) -> FieldTest:
    _keys(key, table, [], ["suspect_threshold", "fail_threshold", "method"])
    suspect = _optional(key, table, "suspect_threshold", positive=True)
    fail = _optional(key, table, "fail_threshold", positive=True)
    if suspect is None and fail is None:
        raise QCConfigError(
            f"{key}: give suspect_threshold, fail_threshold or both (field units)"
        )
    method = table.get("method", "average")
    if method not in METHODS:
        raise _fail(f"{key}.method", method, f"one of {', '.join(METHODS)}")
    return SpikeTest(suspect, fail, str(method))


def _rate_of_change(key: str, table: Table, current: CurrentSample) -> FieldTest:
    _keys(key, table, ["threshold"], ["fail_threshold"])
    return RateOfChangeTest(
        _number(f"{key}.threshold", table["threshold"], positive=True),
        _optional(key, table, "fail_threshold", positive=True),
    )


def _flat_line(key: str, table: Table, current: CurrentSample) -> FieldTest:
    required = ["suspect_threshold", "fail_threshold", "tolerance"]
    _keys(key, table, required, ["interval"])
    suspect, fail, tolerance = (
        _number(f"{key}.{name}", table[name], positive=True) for name in required
    )
    return FlatLineTest(
        suspect, fail, tolerance, _optional(key, table, "interval", positive=True)
    )


#: The tests a field can have, by their key.
FIELD_TESTS: Final[dict[str, Callable[[str, Table, CurrentSample], FieldTest]]] = {
    "gross_range": _gross_range,
    "climatology": _climatology,
    "spike": _spike,
    "rate_of_change": _rate_of_change,
    "flat_line": _flat_line,
}

_STREAM_KEYS: Final = ("defaults", "hold", "location", "time")

#: The longest ``hold``: a year, as the station's other intervals.
_MAX_HOLD: Final = 366 * 86400.0


@dataclass(frozen=True)
class StreamQCSpec:
    """
    A stream's parsed QC configuration; each :meth:`evaluator` starts
    afresh.

    :ivar stream: the stream's name.
    :ivar fields: field name to its tests' tables, checked.
    :ivar location: the location test's table, checked, or ``None``.
    :ivar time: the time test's table, checked, or ``None``.
    :ivar hold: the longest a sample may wait for the next one, for the
        spike test, in seconds; ``None``: twice the interval between the
        last two samples.
    """

    stream: str
    fields: Mapping[str, Mapping[str, Table]]
    location: Table | None
    time: Table | None
    hold: float | None = None

    @property
    def lagging(self) -> bool:
        """
        Whether a test of this stream flags a sample only once the next
        one has come (the spike test).
        """
        return any("spike" in tests for tests in self.fields.values())

    def evaluator(self, now: Callable[[], float] | None = None) -> StreamQC:
        """
        A new evaluator, with no history.

        :param now: the station clock for the time test (the reactor's
            ``seconds``); the system clock when ``None``.
        """
        key = f"qc.{self.stream}"
        current = CurrentSample()

        def make(field: str) -> Callable[[], FieldQC]:
            tables = self.fields[field]
            return lambda: FieldQC(
                [
                    FIELD_TESTS[t](f"{key}.{field}.{t}", tables[t], current)
                    for t in tables
                ]
            )

        stream_tests: list[StreamTest] = []
        if self.time is not None:
            if now is None:
                import time as _time

                now = _time.time
            fail_span = self.time.get("fail_span")
            stream_tests.append(
                TimeTest(
                    now,
                    None
                    if fail_span is None
                    else _span(f"{key}.time.fail_span", fail_span, _instant),
                )
            )
        if self.location is not None:
            stream_tests.append(
                LocationTest(
                    str(self.location["lat"]),
                    str(self.location["lon"]),
                    _optional(
                        f"{key}.location", self.location, "range_max", positive=True
                    ),
                )
            )
        return StreamQC(
            {name: make(name) for name in self.fields}, stream_tests, current
        )


def _merge(key: str, base: Mapping[str, object], override: Table) -> dict[str, Table]:
    tests: dict[str, Table] = {
        name: _table(f"{key}.{name}", t) for name, t in base.items()
    }
    for name, value in override.items():
        if name not in FIELD_TESTS:
            raise QCConfigError(
                f"{key}.{name}: unknown test; valid tests: {', '.join(sorted(FIELD_TESTS))}"
            )
        if value is False:
            tests.pop(name, None)
        else:
            given = _table(f"{key}.{name}", value)
            tests[name] = _narrowed({**tests.get(name, {}), **given}, given)
    return tests


def _pair(value: object) -> tuple[float, float] | None:
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
    ):
        low, high = sorted(float(v) for v in value)
        return (low, high)
    return None


def _narrowed(merged: Table, given: Table) -> Table:
    """
    A default suspect span kept under a fail span the station narrowed:
    cut to the new fail span (dropped if none of it is left), so that
    tightening ``fail_span`` alone does what it says.
    """
    if "fail_span" not in given or "suspect_span" in given:
        return merged
    fail, suspect = _pair(merged.get("fail_span")), _pair(merged.get("suspect_span"))
    if fail is None or suspect is None:
        return merged
    low, high = max(fail[0], suspect[0]), min(fail[1], suspect[1])
    kept = {k: v for k, v in merged.items() if k != "suspect_span"}
    if low <= high:
        kept["suspect_span"] = [low, high]
    return kept


def _stream(
    stream: str,
    table: Table,
    base: Mapping[str, Mapping[str, object]],
    fields: Collection[str] | None,
) -> StreamQCSpec:
    key = f"qc.{stream}"
    hold = _optional(key, table, "hold", positive=True)
    if hold is not None and hold > _MAX_HOLD:
        raise _fail(f"{key}.hold", table["hold"], f"at most {int(_MAX_HOLD)} seconds")
    use_defaults = table.get("defaults", True)
    if not isinstance(use_defaults, bool):
        raise _fail(f"{key}.defaults", use_defaults, "true or false")
    merged: dict[str, dict[str, Table]] = {}
    if use_defaults:
        for name, tests in base.items():
            merged[name] = _merge(f"{key}.{name}", _table(f"{key}.{name}", tests), {})
    for name, value in table.items():
        if name in _STREAM_KEYS:
            continue
        if fields is not None and name not in fields:
            raise QCConfigError(
                f"{key}.{name}: no such field in stream {stream}; fields: {', '.join(sorted(fields))}"
            )
        merged[name] = _merge(
            f"{key}.{name}", merged.get(name, {}), _table(f"{key}.{name}", value)
        )
    for name, tests in merged.items():
        for test, params in tests.items():
            # Build once now so every mistake surfaces at configuration time.
            FIELD_TESTS[test](f"{key}.{name}.{test}", params, CurrentSample())
            depth_field = params.get("depth_field")
            if (
                fields is not None
                and depth_field is not None
                and depth_field not in fields
            ):
                raise QCConfigError(
                    f"{key}.{name}.{test}.depth_field: {depth_field!r} is no field of "
                    f"stream {stream}; fields: {', '.join(sorted(fields))}"
                )
    location = time_table = None
    if "location" in table:
        location = _table(f"{key}.location", table["location"])
        _keys(f"{key}.location", location, ["lat", "lon"], ["range_max"])
        for axis in ("lat", "lon"):
            if not isinstance(location[axis], str):
                raise _fail(f"{key}.location.{axis}", location[axis], "a field name")
        _optional(f"{key}.location", location, "range_max", positive=True)
    if "time" in table:
        time_table = _table(f"{key}.time", table["time"])
        _keys(f"{key}.time", time_table, [], ["fail_span"])
        if "fail_span" in time_table:
            _span(f"{key}.time.fail_span", time_table["fail_span"], _instant)
    return StreamQCSpec(
        stream, {n: t for n, t in merged.items() if t}, location, time_table, hold
    )


def parse_qc(
    table: object,
    *,
    defaults: Mapping[str, Mapping[str, Mapping[str, object]]] = DEFAULTS,
    streams: Mapping[str, Collection[str]] | None = None,
) -> dict[str, StreamQCSpec]:
    """
    Check an instrument's ``qc`` table and prepare its evaluators.

    :param table: the ``qc`` table (``{}`` or absent: the defaults alone);
        a stream in it set to ``false`` has no QC.
    :param defaults: stream to field to test tables to start from.
    :param streams: the driver's streams and their fields, to check the
        names against; ``None`` not to check.
    :returns: stream name to its parsed configuration, for every stream
        with at least one test (configured or default).
    :raises QCConfigError: naming the key, the value and the valid choices.
    """
    given = _table("qc", table)
    names = list(dict.fromkeys([*defaults, *given]))
    if streams is not None:
        for name in given:
            if name not in streams:
                raise QCConfigError(
                    f"qc.{name}: no such stream; streams: {', '.join(sorted(streams))}"
                )
        names = [n for n in names if n in streams]
    specs: dict[str, StreamQCSpec] = {}
    for name in names:
        if given.get(name) is False:
            continue
        spec = _stream(
            name,
            _table(f"qc.{name}", given.get(name, {})),
            defaults.get(name, {}),
            None if streams is None else streams[name],
        )
        if spec.fields or spec.location is not None or spec.time is not None:
            specs[name] = spec
    return specs
