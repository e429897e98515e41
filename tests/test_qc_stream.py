"""
The per-stream evaluator: every test of every field at once, one sample at
a time, agreeing with ioos_qc run over the whole series; the spike test's
one-sample lag; array fields; bounded memory.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.qc import FieldResult, QartodFlag, StreamQC, parse_qc
from instrumentd.qc.flat_line import FlatLineTest
from instrumentd.qc.stream import FieldQC
from tests.qcsupport import BASE, as_datetimes, as_floats

try:
    import numpy as np
    from ioos_qc import qartod
except ImportError:  # pragma: no cover - the test extra installs it
    qartod = None
    _SKIP: str | None = "ioos_qc is not installed: pip install -e '.[test]'"
else:
    _SKIP = None

#: One field with every field test that has history.
CONFIG = {
    "gross_range": {"fail_span": [0, 40], "suspect_span": [2, 30]},
    "spike": {"suspect_threshold": 1.0, "fail_threshold": 5.0},
    "rate_of_change": {"threshold": 0.02, "fail_threshold": 0.1},
    "flat_line": {"suspect_threshold": 180, "fail_threshold": 300, "tolerance": 0.01},
}
VALUE = st.one_of(
    st.none(),
    st.just(math.nan),
    st.sampled_from([0.0, 10.0, 10.0, 10.001, 12.0, 35.0, 45.0]),
    st.floats(-5, 45, allow_nan=False),
)


def evaluator(config=CONFIG, **stream: object) -> StreamQC:
    specs = parse_qc({"s": {"defaults": False, "x": config, **stream}}, defaults={})
    return specs["s"].evaluator(now=lambda: float(BASE + 10**6))


def run(qc: StreamQC, times, values, field="x"):
    """
    :returns: the immediate and the final results of every sample.
    """
    current: list[FieldResult] = []
    final: list[FieldResult] = []
    for t, v in zip(times, values, strict=True):
        step = qc.push(t, {field: v})
        current.append(step.current[field])
        if field in step.amended:
            final.append(step.amended[field])
        if step.current[field].final:
            final.append(step.current[field])
    final.extend(r for r in [qc.finish().get(field)] if r is not None)
    return current, final


def reference(times, values) -> dict[str, list[int]]:
    inp, tinp = as_floats(values), as_datetimes(times)
    c = CONFIG
    flags = {
        "gross_range": qartod.gross_range_test(inp, **c["gross_range"]),
        "spike": qartod.spike_test(inp, **c["spike"]),
        "rate_of_change": qartod.rate_of_change_test(inp, tinp, **c["rate_of_change"]),
        "flat_line": qartod.flat_line_test(inp, tinp, **c["flat_line"]),
    }
    out = {k: [int(f) for f in np.ma.getdata(v)] for k, v in flags.items()}
    out["aggregate"] = [
        int(f) for f in np.ma.getdata(qartod.qartod_compare(list(flags.values())))
    ]
    return out


class StreamAgreement(SynchronousTestCase):
    skip = _SKIP

    @settings(max_examples=200, deadline=None)
    @given(st.lists(VALUE, min_size=3, max_size=60))
    def test_final_flags_are_ioos_qc(self, values) -> None:
        """
        Every sample's final flags, each test's and the aggregate, are
        ioos_qc's on the whole series.
        """
        times = [float(BASE + 60 * i) for i in range(len(values))]
        _, final = run(evaluator(), times, values)
        expected = reference(times, values)
        self.assertEqual([r.time for r in final], times)
        for name, flags in expected.items():
            if name == "aggregate":
                ours = [int(r.aggregate) for r in final]
            else:
                ours = [int(r.flags[name]) for r in final]
            self.assertEqual(ours, flags, name)
        self.assertTrue(all(r.final for r in final))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(VALUE, min_size=3, max_size=60))
    def test_immediate_flags_lack_only_the_spike(self, values) -> None:
        """
        The flags published as a sample arrives are ioos_qc's for every
        test but the spike test, which is not evaluated yet (missing for a
        missing value); the aggregate is over those.  The spike flag comes
        with the next sample, as an amendment.
        """
        times = [float(BASE + 60 * i) for i in range(len(values))]
        qc = evaluator()
        expected = reference(times, values)
        pending = [9 if v is None or math.isnan(v) else 2 for v in values]
        for i, (t, v) in enumerate(zip(times, values, strict=True)):
            step = qc.push(t, {"x": v})
            now = step.current["x"]
            self.assertFalse(now.final)
            self.assertEqual(now.time, t)
            self.assertEqual(int(now.flags["spike"]), pending[i])
            for name in ("gross_range", "rate_of_change", "flat_line"):
                self.assertEqual(int(now.flags[name]), expected[name][i], name)
            partial = qartod.qartod_compare(
                [
                    np.array([expected[n][i]])
                    for n in ("gross_range", "rate_of_change", "flat_line")
                ]
                + [np.array([pending[i]])]
            )
            self.assertEqual(int(now.aggregate), int(partial[0]))
            if i == 0:
                self.assertEqual(step.amended, {})
            else:
                late = step.amended["x"]
                self.assertEqual(late.time, times[i - 1])
                self.assertEqual(int(late.flags["spike"]), expected["spike"][i - 1])
                self.assertEqual(int(late.aggregate), expected["aggregate"][i - 1])


class StreamBehaviour(SynchronousTestCase):
    def test_no_lag_without_spike(self) -> None:
        """
        Without a spike test every result is final at once and nothing is
        amended.
        """
        qc = evaluator({"gross_range": {"fail_span": [0, 10]}})
        step = qc.push(BASE, {"x": 11})
        self.assertTrue(step.current["x"].final)
        self.assertEqual(step.current["x"].aggregate, QartodFlag.FAIL)
        self.assertEqual(qc.push(BASE + 1, {"x": 5}).amended, {})
        self.assertEqual(qc.finish(), {})

    def test_absent_field_is_missing(self) -> None:
        qc = evaluator({"gross_range": {"fail_span": [0, 10]}})
        step = qc.push(BASE, {"other": 3})
        self.assertEqual(step.current["x"].flags, {"gross_range": QartodFlag.MISSING})
        self.assertEqual(step.current["x"].aggregate, QartodFlag.MISSING)

    def test_text_value_is_missing(self) -> None:
        qc = evaluator({"gross_range": {"fail_span": [0, 10]}})
        step = qc.push(BASE, {"x": "12.5"})
        self.assertEqual(step.current["x"].aggregate, QartodFlag.MISSING)

    def test_array_field_cells_independent(self) -> None:
        """
        An array field (velocity per cell) is tested cell by cell, each
        cell with its own history, as if each were its own series; a
        sample without the field makes every cell missing.
        """
        rows = [
            [1.0, 100.0, 5.0],
            [1.0, 0.0, 5.0],
            [9.0, 100.0, None],
            None,
            [1.0, 3.0, 5.0],
        ]
        times = [float(BASE + 60 * i) for i in range(len(rows))]
        qc = evaluator()
        finals: list[list[FieldResult]] = []
        for t, row in zip(times, rows, strict=True):
            step = qc.push(t, {"x": row})
            self.assertEqual(len(step.current["x"]), 3)
            if "x" in step.amended:
                finals.append(step.amended["x"])
        finals.append(qc.finish()["x"])
        self.assertEqual(len(finals), len(rows))
        for cell in range(3):
            series = [None if row is None else row[cell] for row in rows]
            _, alone = run(evaluator(), times, series)
            self.assertEqual(
                [dict(r[cell].flags) for r in finals], [dict(r.flags) for r in alone]
            )
        self.assertEqual(finals[1][1].flags["spike"], QartodFlag.FAIL)
        self.assertEqual(finals[3][0].aggregate, QartodFlag.MISSING)

    def test_stream_tests_join_every_field(self) -> None:
        """
        The time and location tests flag the whole sample: their flags are
        in every field's flags and aggregate.
        """
        specs = parse_qc(
            {
                "s": {
                    "defaults": False,
                    "x": {"gross_range": {"fail_span": [0, 10]}},
                    "y": {"gross_range": {"fail_span": [0, 10]}},
                    "location": {"lat": "lat", "lon": "lon"},
                    "time": {},
                }
            },
            defaults={},
        )
        qc = specs["s"].evaluator(now=lambda: float(BASE))
        good = qc.push(BASE - 1, {"x": 1, "y": 2, "lat": 45.0, "lon": -124.0})
        self.assertEqual(good.current["x"].aggregate, QartodFlag.PASS)
        late = qc.push(BASE + 5, {"x": 1, "y": 2, "lat": 45.0, "lon": -124.0})
        lost = qc.push(BASE - 1, {"x": 1, "y": 2, "lat": 95.0, "lon": -124.0})
        for field in ("x", "y"):
            self.assertEqual(late.current[field].flags["time"], QartodFlag.FAIL)
            self.assertEqual(late.current[field].aggregate, QartodFlag.FAIL)
            self.assertEqual(lost.current[field].flags["location"], QartodFlag.FAIL)
            self.assertEqual(lost.current[field].flags["time"], QartodFlag.PASS)

    def test_flat_line_memory_bounded(self) -> None:
        """
        The flat-line window keeps at most its own length of values, and
        the interval history its fixed size, however long the stream.
        """
        test = FlatLineTest(600, 1200, 0.01)
        qc = FieldQC([test])
        for i in range(20000):
            qc.push(float(BASE + i), float(i % 37), {})
        window = 1200 + 1
        self.assertLessEqual(len(test._fail._low), window)
        self.assertLessEqual(len(test._fail._high), window)
        self.assertLessEqual(len(test._intervals), 15)
        # Values that keep rising fill the minimum queue: still bounded.
        for i in range(5000):
            qc.push(float(BASE + 20000 + i), float(i), {})
        self.assertLessEqual(len(test._fail._low), window)


#: Every test that knows its flag at once, on two fields, the climatology
#: reading the depth from a third.
KNOWN_AT_ONCE = {
    "x": {
        "gross_range": {"fail_span": [0, 40], "suspect_span": [2, 30]},
        "rate_of_change": {"threshold": 0.02, "fail_threshold": 0.1},
        "flat_line": {
            "suspect_threshold": 180,
            "fail_threshold": 300,
            "tolerance": 0.01,
        },
        "climatology": {
            "depth_field": "p",
            "spans": [
                {
                    "tspan": [1, 12],
                    "period": "month",
                    "zspan": [0, 50],
                    "vspan": [5, 25],
                }
            ],
        },
    },
    "y": {"gross_range": {"fail_span": [0, 10]}},
}
ANY_VALUE = st.one_of(
    VALUE,
    st.just(math.inf),
    st.just(-math.inf),
    st.integers(-5, 45),
    st.just(True),
    st.just("12.5"),
)
FIELD_VALUES = st.dictionaries(st.sampled_from(["x", "y", "p"]), ANY_VALUE)


class ShortWay(SynchronousTestCase):
    """
    ``push_known``, the way a stream whose flags are all known at once
    goes, flags every sample as ``push`` does.
    """

    @settings(max_examples=200, deadline=None)
    @given(st.lists(FIELD_VALUES, min_size=1, max_size=40))
    def test_same_as_push(self, samples) -> None:
        """
        The same flags, test by test and field by field, and the same
        results from them, as the long way on the same series; both keep
        the same history (a series alternating between the two ways
        agrees too).
        """
        specs = parse_qc({"s": {"defaults": False, **KNOWN_AT_ONCE}}, defaults={})
        long, short, mixed = (specs["s"].evaluator() for _ in range(3))
        for i, values in enumerate(samples):
            t = float(BASE + 60 * i)
            expected = long.push(t, values).current
            known = short.push_known(t, values)
            self.assertIsNotNone(known)
            assert known is not None
            self.assertEqual(short.results(t, known), expected)
            if i % 2:
                self.assertEqual(mixed.push(t, values).current, expected)
            else:
                got = mixed.push_known(t, values)
                assert got is not None
                self.assertEqual(mixed.results(t, got), expected)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(FIELD_VALUES, min_size=1, max_size=40))
    def test_ranges_only_same_as_push(self, samples) -> None:
        """
        A stream of range tests alone (as the shipped defaults are) goes
        the short way too: a sample whose values all lie within every
        span passes without a test being asked, and any other sample is
        flagged as ``push`` flags it.
        """
        specs = parse_qc(
            {
                "s": {
                    "defaults": False,
                    "x": {
                        "gross_range": {"fail_span": [0, 40], "suspect_span": [2, 30]}
                    },
                    "y": {"gross_range": {"fail_span": [0, 10]}},
                    "p": {"gross_range": {"fail_span": [-5, 45]}},
                }
            },
            defaults={},
        )
        long, short = (specs["s"].evaluator() for _ in range(2))
        for i, values in enumerate(samples):
            t = float(BASE + 60 * i)
            expected = long.push(t, values).current
            known = short.push_known(t, values)
            assert known is not None
            self.assertEqual(short.results(t, known), expected)
        every = {"x": 10.0, "y": 10.0, "p": -5.0}
        self.assertEqual(
            short.push_known(BASE, every), (QartodFlag.PASS,) * 3, "the spans' ends"
        )

    def test_flags_in_order(self) -> None:
        specs = parse_qc(
            {
                "s": {
                    "defaults": False,
                    "x": {"gross_range": {"fail_span": [0, 10]}},
                    "y": {
                        "gross_range": {"fail_span": [0, 10], "suspect_span": [1, 9]}
                    },
                }
            },
            defaults={},
        )
        qc = specs["s"].evaluator()
        F = QartodFlag
        self.assertEqual(
            qc.push_known(BASE, {"x": 11.0, "y": 0.5}), (F.FAIL, F.SUSPECT)
        )
        self.assertEqual(
            qc.push_known(BASE + 1, {"y": math.nan}), (F.MISSING, F.MISSING)
        )

    def test_long_way_only(self) -> None:
        """
        A stream with a lagging test or a test of the whole sample, or a
        sample with an array, goes the long way: ``push_known`` returns
        ``None`` having tested nothing.
        """
        self.assertIsNone(evaluator().push_known(BASE, {"x": 1.0}))
        timed = evaluator({"gross_range": {"fail_span": [0, 10]}}, time={})
        self.assertIsNone(timed.push_known(BASE, {"x": 1.0}))
        roc = {"rate_of_change": {"threshold": 0.02}}
        qc, untouched = evaluator(roc), evaluator(roc)
        for each in (qc, untouched):
            self.assertEqual(each.push_known(BASE, {"x": 1.0}), (QartodFlag.PASS,))
        self.assertIsNone(qc.push_known(BASE + 60, {"x": [1.0, 2.0]}))
        # Nothing was tested: the history is the same as an evaluator's
        # that never saw that sample.
        for t, v in ((BASE + 120, 1.5), (BASE + 180, 100.0)):
            self.assertEqual(
                qc.push_known(t, {"x": v}), untouched.push_known(t, {"x": v})
            )
        # Once the long way has taken an array, it keeps it.
        qc.push(BASE + 240, {"x": [1.0, 2.0]})
        self.assertIsNone(qc.push_known(BASE + 300, {"x": 1.0}))
