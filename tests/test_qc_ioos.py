"""
Our streaming QARTOD tests against the reference, ioos_qc: the same series
and configuration give the same flags, sample by sample.

ioos_qc works on whole arrays; we feed the same values one at a time and
collect each sample's final flag.  Hypothesis draws the series, with
missing values (``None``, NaN, infinities), repeated values and values on
the span edges; named tests pin the edge cases ioos_qc's users reported.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Sequence

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.qc.climatology import ClimatologySpan, ClimatologyTest
from instrumentd.qc.flags import QartodFlag, aggregate
from instrumentd.qc.flat_line import FlatLineTest
from instrumentd.qc.gross_range import GrossRangeTest
from instrumentd.qc.position import LocationTest, TimeTest
from instrumentd.qc.rate_of_change import RateOfChangeTest
from instrumentd.qc.spike import SpikeTest
from tests.qcsupport import BASE, as_datetimes, as_floats, stream_flags

try:
    import numpy as np
    from ioos_qc import qartod
except ImportError:  # pragma: no cover - the test extra installs it
    qartod = None
    _SKIP: str | None = "ioos_qc is not installed: pip install -e '.[test]'"
else:
    _SKIP = None

#: Values with every kind of missing, repeats and round numbers that sit
#: on span edges.
VALUE = st.one_of(
    st.none(),
    st.just(math.nan),
    st.sampled_from([math.inf, -math.inf]),
    st.sampled_from([-10.0, -5.0, 0.0, 1.0, 2.0, 5.0, 10.0, 12.5, 20.0]),
    st.floats(-30, 30, allow_nan=False),
)
SERIES = st.lists(VALUE, min_size=1, max_size=60)
THRESHOLD = st.one_of(st.none(), st.floats(0.01, 20))
EXAMPLES = settings(max_examples=300, deadline=None)


def regular(n: int, step: int = 60) -> list[float]:
    return [float(BASE + i * step) for i in range(n)]


def ioos(flags: object) -> list[int]:
    return [int(f) for f in np.ma.getdata(flags)]


class _Reference(SynchronousTestCase):
    skip = _SKIP


class GrossRangeAgreement(_Reference):
    @EXAMPLES
    @given(
        SERIES,
        st.tuples(st.floats(-20, 0), st.floats(0, 20)),
        st.one_of(st.none(), st.tuples(st.floats(0, 1), st.floats(0, 1))),
    )
    def test_same_flags(self, values, fail, shrink) -> None:
        suspect = None
        if shrink is not None:
            low = fail[0] + (fail[1] - fail[0]) * min(shrink) / 2
            high = fail[1] - (fail[1] - fail[0]) * (1 - max(shrink)) / 2
            suspect = (low, max(low, high))
        ours = stream_flags(GrossRangeTest(fail, suspect), regular(len(values)), values)
        theirs = qartod.gross_range_test(
            inp=as_floats(values), fail_span=fail, suspect_span=suspect
        )
        self.assertEqual(ours, ioos(theirs))

    def test_span_edges_pass(self) -> None:
        values = [0.0, 10.0, -0.001, 10.001, 2.0, 8.0, 1.999, None, math.nan]
        ours = stream_flags(
            GrossRangeTest((0, 10), (2, 8)), regular(len(values)), values
        )
        theirs = ioos(qartod.gross_range_test(as_floats(values), (0, 10), (2, 8)))
        self.assertEqual(ours, theirs)
        self.assertEqual(ours, [3, 3, 4, 4, 1, 1, 3, 9, 9])


def _span_strategy(period: str | None) -> st.SearchStrategy[ClimatologySpan]:
    if period == "month":
        tspan = st.tuples(st.integers(1, 12), st.integers(1, 12))
    elif period == "dayofyear":
        tspan = st.tuples(st.integers(1, 366), st.integers(1, 366))
    else:
        tspan = st.tuples(
            st.integers(BASE - 86400 * 30, BASE + 86400 * 400),
            st.integers(BASE - 86400 * 30, BASE + 86400 * 400),
        )
    pair = st.tuples(st.floats(-20, 20), st.floats(-20, 20)).map(sorted)
    return st.builds(
        lambda t, v, f, z: ClimatologySpan(
            tuple(sorted(t)),
            tuple(v),
            None if f is None else tuple(f),
            None if z is None else tuple(z),
            period,
        ),
        tspan,
        pair,
        st.one_of(st.none(), pair),
        st.one_of(st.none(), st.tuples(st.floats(0, 50), st.floats(50, 200))),
    )


def _as_ioos(span: ClimatologySpan) -> dict[str, object]:
    tspan: Sequence[object] = span.tspan
    if span.period is None:
        tspan = [np.datetime64(int(t), "s") for t in span.tspan]
    return {
        "tspan": tspan,
        "vspan": span.vspan,
        "fspan": span.fspan,
        "zspan": span.zspan,
        "period": span.period,
    }


class ClimatologyAgreement(_Reference):
    @EXAMPLES
    @given(
        st.sampled_from([None, "month", "dayofyear"]).flatmap(
            lambda p: st.lists(_span_strategy(p), min_size=1, max_size=4)
        ),
        st.lists(
            st.tuples(st.integers(BASE - 86400 * 60, BASE + 86400 * 420), VALUE),
            min_size=1,
            max_size=40,
        ),
        st.one_of(st.none(), st.floats(0, 200)),
    )
    def test_same_flags(self, spans, samples, depth) -> None:
        times = [float(t) for t, _ in samples]
        values = [v for _, v in samples]
        ours = stream_flags(ClimatologyTest(spans, depth), times, values)
        theirs = qartod.climatology_test(
            config=[_as_ioos(s) for s in spans],
            inp=as_floats(values),
            tinp=as_datetimes(times),
            zinp=np.full(len(values), np.nan if depth is None else depth),
        )
        # A value that is not a finite number is where we differ (see
        # test_missing_value_is_missing): compare the others.
        bad = [v is None or not math.isfinite(v) for v in values]
        self.assertEqual(
            [f for f, b in zip(ours, bad, strict=True) if not b],
            [f for f, b in zip(ioos(theirs), bad, strict=True) if not b],
        )
        for flag, value in zip(ours, values, strict=True):
            if value is None or math.isnan(value):
                self.assertEqual(flag, 9)
            elif math.isinf(value):
                self.assertIn(flag, (3, 4, 9))

    @EXAMPLES
    @given(
        st.lists(
            st.one_of(_span_strategy("month"), _span_strategy(None)),
            min_size=1,
            max_size=4,
        ),
        st.lists(
            st.tuples(
                st.integers(BASE - 86400 * 60, BASE + 86400 * 420),
                VALUE,
                st.one_of(st.none(), st.just(math.nan), st.floats(0, 250)),
            ),
            min_size=1,
            max_size=40,
        ),
    )
    def test_depth_per_sample(self, spans, samples) -> None:
        """
        Depth read from another field of each sample (``depth_field``), as
        ioos_qc's per-sample ``zinp``.  A missing depth leaves out the spans
        that give depths (as ioos_qc's code means to: "only test non-masked
        values"; its masked arithmetic lets some through, see
        test_missing_depth): such samples are compared only when no span
        gives depths.
        """
        times = [float(t) for t, _, _ in samples]
        values = [v for _, v, _ in samples]
        depths = [z for _, _, z in samples]
        now: list[float | None] = [None]
        test = ClimatologyTest(spans, lambda: now[0])
        ours = []
        for t, v, z in zip(times, values, depths, strict=True):
            now[0] = None if z is None or math.isnan(z) else z
            ours.extend(stream_flags(test, [t], [v])[:1])
        theirs = ioos(
            qartod.climatology_test(
                config=[_as_ioos(s) for s in spans],
                inp=as_floats(values),
                tinp=as_datetimes(times),
                zinp=as_floats(depths),
            )
        )
        zspans = any(s.zspan is not None for s in spans)
        bad = [
            v is None
            or not math.isfinite(v)
            or (zspans and (z is None or math.isnan(z)))
            for v, z in zip(values, depths, strict=True)
        ]
        self.assertEqual(
            [f for f, b in zip(ours, bad, strict=True) if not b],
            [f for f, b in zip(theirs, bad, strict=True) if not b],
        )

    def test_missing_depth(self) -> None:
        """
        Where we differ on purpose: a sample without a depth is not in a
        span limited to depths, so not evaluated; ioos_qc 3.0 applies the
        span to it when another sample of the series has a depth.
        """
        span = ClimatologySpan((1, 12), (0, 0), None, (0, 50), "month")
        values, depths = [None, -10.0], [0.0, None]
        times = [float(BASE), float(BASE)]
        now: list[float | None] = [None]
        test = ClimatologyTest([span], lambda: now[0])
        ours = []
        for t, v, z in zip(times, values, depths, strict=True):
            now[0] = z
            ours.extend(stream_flags(test, [t], [v]))
        theirs = ioos(
            qartod.climatology_test(
                [_as_ioos(span)],
                as_floats(values),
                as_datetimes(times),
                as_floats(depths),
            )
        )
        self.assertEqual(ours, [9, 2])
        # (ioos_qc passes the missing value too: test_missing_value_is_missing.)
        self.assertEqual(theirs, [1, 3])

    def test_missing_value_is_missing(self) -> None:
        """
        Where we differ on purpose: ioos_qc 3.0 flags a missing value, and
        an infinite one, PASS when a span covers it (its masks do not reach
        the final comparison); here a missing value is missing and an
        infinite one outside the span, as its gross range test has it.
        """
        span = ClimatologySpan((1, 12), (10, 20), (0, 30), (0, 100), "month")
        values = [15.0, None, 25.0, math.inf]
        times = regular(4)
        ours = stream_flags(ClimatologyTest([span], 50.0), times, values)
        theirs = ioos(
            qartod.climatology_test(
                [_as_ioos(span)],
                as_floats(values),
                as_datetimes(times),
                np.full(4, 50.0),
            )
        )
        self.assertEqual(ours, [1, 9, 3, 4])
        self.assertEqual(theirs, [1, 1, 3, 1])


class SpikeAgreement(_Reference):
    @EXAMPLES
    @given(
        SERIES,
        THRESHOLD,
        THRESHOLD,
        st.sampled_from(["average", "differential"]),
    )
    def test_same_flags(self, values, suspect, fail, method) -> None:
        ours = stream_flags(
            SpikeTest(suspect, fail, method), regular(len(values)), values
        )
        theirs = qartod.spike_test(
            inp=as_floats(values),
            suspect_threshold=suspect,
            fail_threshold=fail,
            method=method,
        )
        self.assertEqual(ours, ioos(theirs))

    def test_first_and_last_not_evaluated(self) -> None:
        """
        ioos/ioos_qc#34: the first and last samples have one neighbour
        only.
        """
        values = [100.0, 0.0, 100.0, 0.0, 100.0]
        ours = stream_flags(SpikeTest(1, 10), regular(5), values)
        self.assertEqual(ours, ioos(qartod.spike_test(as_floats(values), 1, 10)))
        self.assertEqual(ours, [2, 4, 4, 4, 2])

    def test_missing_neighbour(self) -> None:
        """
        ioos/ioos_qc#62, #106: a sample next to a missing one is not
        evaluated, the missing one is missing.
        """
        values = [101.0, 102.0, None, 104.0, 105.0]
        ours = stream_flags(SpikeTest(1, 10), regular(5), values)
        self.assertEqual(ours, ioos(qartod.spike_test(as_floats(values), 1, 10)))
        self.assertEqual(ours, [2, 2, 9, 2, 2])


class RateOfChangeAgreement(_Reference):
    @EXAMPLES
    @given(
        st.lists(st.tuples(st.integers(1, 3600), VALUE), min_size=1, max_size=60),
        st.floats(0.0001, 1),
        st.one_of(st.none(), st.floats(0.0001, 2)),
    )
    def test_same_flags(self, samples, threshold, fail) -> None:
        """
        Irregular steps too, in whole seconds (ioos_qc cuts steps to whole
        seconds; we do not).
        """
        times, t = [], float(BASE)
        for step, _ in samples:
            t += step
            times.append(t)
        values = [v for _, v in samples]
        ours = stream_flags(RateOfChangeTest(threshold, fail), times, values)
        theirs = qartod.rate_of_change_test(
            inp=as_floats(values),
            tinp=as_datetimes(times),
            threshold=threshold,
            fail_threshold=fail,
        )
        self.assertEqual(ours, ioos(theirs))

    def test_after_missing_passes(self) -> None:
        """
        The first sample, and the one after a missing sample, have no rate:
        they pass in ioos_qc, and so here.
        """
        values = [0.0, None, 100.0, 100.5]
        ours = stream_flags(RateOfChangeTest(0.01), regular(4), values)
        theirs = ioos(
            qartod.rate_of_change_test(
                as_floats(values), as_datetimes(regular(4)), 0.01
            )
        )
        self.assertEqual(ours, theirs)
        self.assertEqual(ours, [1, 9, 1, 1])


#: Flat-line values: few distinct ones, so flat runs happen.
FLAT_VALUE = st.one_of(
    st.none(),
    st.just(math.nan),
    st.just(math.inf),
    st.sampled_from([1.0, 1.0001, 1.002, 1.5, 2.0]),
)


class FlatLineAgreement(_Reference):
    @EXAMPLES
    @given(
        st.lists(FLAT_VALUE, min_size=3, max_size=80),
        st.integers(1, 600),
        st.integers(1, 20),
        st.integers(0, 20),
        st.sampled_from([0.0005, 0.005, 0.5]),
    )
    def test_same_flags(self, values, step, suspect, extra, tolerance) -> None:
        """
        Regular series (at least three samples: ioos_qc passes shorter
        ones whole, a stream cannot know it is short); thresholds a whole
        number of seconds from one sample to twenty steps long.
        """
        times = regular(len(values), step)
        suspect_s, fail_s = suspect * step, (suspect + extra) * step
        ours = stream_flags(FlatLineTest(suspect_s, fail_s, tolerance), times, values)
        theirs = qartod.flat_line_test(
            inp=as_floats(values),
            tinp=as_datetimes(times),
            suspect_threshold=suspect_s,
            fail_threshold=fail_s,
            tolerance=tolerance,
        )
        self.assertEqual(ours, ioos(theirs))

    def test_missing_in_window(self) -> None:
        """
        ioos/ioos_qc#68 and #6: missing values inside the window are left
        out, so a window with one value left in it counts as flat.
        """
        values = [1.0, 2.0, None, None, None, 1.0, None, 5.0, 5.0, None, 5.0]
        times = regular(len(values))
        ours = stream_flags(FlatLineTest(120, 240, 0.01), times, values)
        theirs = ioos(
            qartod.flat_line_test(
                as_floats(values), as_datetimes(times), 120, 240, 0.01
            )
        )
        self.assertEqual(ours, theirs)
        self.assertEqual(ours, [1, 1, 9, 9, 9, 3, 9, 1, 3, 9, 4])

    def test_first_samples_pass(self) -> None:
        """
        ioos/ioos_qc#6, #11: a flat line from the very start passes until
        its window is full.
        """
        values = [3.0] * 8
        times = regular(8)
        ours = stream_flags(FlatLineTest(180, 300, 0.01), times, values)
        theirs = ioos(
            qartod.flat_line_test(
                as_floats(values), as_datetimes(times), 180, 300, 0.01
            )
        )
        self.assertEqual(ours, theirs)
        self.assertEqual(ours, [1, 1, 1, 3, 3, 4, 4, 4])

    def test_configured_interval_matches_irregular_median(self) -> None:
        """
        ioos_qc counts the window in the whole series' median interval; a
        stream given that interval gets the same flags on an irregular
        series.
        """
        steps = [60, 60, 61, 59, 60, 120, 60, 60, 30, 60, 60, 60]
        times = [float(BASE)]
        for s in steps:
            times.append(times[-1] + s)
        values = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0]
        ours = stream_flags(FlatLineTest(120, 240, 0.01, interval=60), times, values)
        theirs = ioos(
            qartod.flat_line_test(
                as_floats(values), as_datetimes(times), 120, 240, 0.01
            )
        )
        self.assertEqual(ours, theirs)


#: Positions: in range, out of range, missing.
LAT = st.one_of(st.none(), st.sampled_from([91.0, -95.0]), st.floats(-90, 90))
LON = st.one_of(st.none(), st.sampled_from([181.0, -200.0]), st.floats(-180, 180))


class LocationAgreement(_Reference):
    @EXAMPLES
    @given(st.lists(st.tuples(LAT, LON), min_size=2, max_size=30))
    def test_bounds(self, points) -> None:
        test = LocationTest("lat", "lon", None)
        ours = [int(test.step(0.0, {"lat": a, "lon": o})) for a, o in points]
        theirs = qartod.location_test(
            lon=as_floats([o for _, o in points]), lat=as_floats([a for a, _ in points])
        )
        self.assertEqual(ours, ioos(theirs))

    @EXAMPLES
    @given(
        st.lists(
            st.tuples(st.floats(-80, 80), st.floats(-179, 179)), min_size=2, max_size=30
        ),
        st.floats(10, 5e6),
    )
    def test_range_max(self, points, range_max) -> None:
        """
        Moves between successive positions, by haversine distance (ioos_qc
        computes it with gsw; a test dependency too).
        """
        test = LocationTest("lat", "lon", range_max)
        lats = [a for a, _ in points]
        lons = [o for _, o in points]
        ours = [int(test.step(0.0, {"lat": a, "lon": o})) for a, o in points]
        # Distances within a micrometre of the limit could round either way.
        import gsw

        d = gsw.distance(np.array(lons), np.array(lats))
        assume(all(abs(x - range_max) > 1e-6 for x in d))
        theirs = qartod.location_test(
            lon=as_floats(lons), lat=as_floats(lats), range_max=range_max
        )
        self.assertEqual(ours, ioos(theirs))

    def test_missing_with_range_max(self) -> None:
        """
        Where we differ on purpose: with ``range_max``, ioos_qc 3.0 measures
        moves to and from a missing coordinate (masked values reach gsw as
        fill values), so the half-missing positions and the next one come
        out SUSPECT.  Here a half-missing position fails, as ioos_qc's
        location test does without ``range_max``, and a move is measured
        only from a whole position.
        """
        lat = [10.0, None, 10.5, 10.5, 11.0]
        lon = [20.0, 20.0, None, 20.0, 20.0]
        test = LocationTest("lat", "lon", 1000)
        ours = [
            int(test.step(0.0, {"lat": a, "lon": o}))
            for a, o in zip(lat, lon, strict=True)
        ]
        theirs = ioos(
            qartod.location_test(lon=as_floats(lon), lat=as_floats(lat), range_max=1000)
        )
        self.assertEqual(ours, [1, 4, 4, 1, 3])
        self.assertEqual(theirs, [1, 3, 3, 3, 3])
        without = ioos(qartod.location_test(lon=as_floats(lon), lat=as_floats(lat)))
        self.assertEqual(ours[:3], without[:3])


class TimeAgreement(_Reference):
    @EXAMPLES
    @given(
        st.lists(
            st.one_of(
                st.just(math.nan),
                st.integers(0, int(_time.time()) + 86400 * 365 * 50),
            ),
            min_size=1,
            max_size=30,
        ),
        st.one_of(
            st.none(),
            st.tuples(st.integers(0, 2_000_000_000), st.integers(0, 2_000_000_000)).map(
                sorted
            ),
        ),
    )
    def test_same_flags(self, times, span) -> None:
        test = TimeTest(_time.time, None if span is None else tuple(span))
        ours = [int(test.step(float(t), {})) for t in times]
        tinp = np.array(
            [
                np.datetime64("NaT") if math.isnan(t) else np.datetime64(t, "s")
                for t in times
            ],
            dtype="datetime64[ns]",
        )
        fail_span = (
            None
            if span is None
            else (np.datetime64(span[0], "s"), np.datetime64(span[1], "s"))
        )
        theirs = qartod.impossible_date_test(tinp=tinp, fail_span=fail_span)
        self.assertEqual(ours, ioos(theirs))


class AggregateAgreement(_Reference):
    @EXAMPLES
    @given(
        st.integers(1, 20).flatmap(
            lambda n: st.lists(
                st.lists(st.sampled_from([1, 2, 3, 4, 9]), min_size=n, max_size=n),
                min_size=1,
                max_size=6,
            )
        )
    )
    def test_same_flags(self, vectors) -> None:
        ours = [
            int(aggregate(QartodFlag(v[i]) for v in vectors))
            for i in range(len(vectors[0]))
        ]
        theirs = qartod.qartod_compare([np.array(v) for v in vectors])
        self.assertEqual(ours, ioos(theirs))
