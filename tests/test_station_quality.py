"""
The station's per-instrument QC on a Clock: flags as each sample arrives,
records of a stream with a spike test held back one sample (and no
longer than the hold), counters of released flags.
"""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.qc import parse_qc
from instrumentd.station import quality
from instrumentd.station.quality import InstrumentQC, QCFlags, sample_flag
from instrumentd.station.record import EncodedQC
from tests.qcsupport import BASE

RANGE = {"gross_range": {"fail_span": [0, 30], "suspect_span": [2, 25]}}
SPIKE = {**RANGE, "spike": {"suspect_threshold": 1.0, "fail_threshold": 5.0}}


def make(
    table: dict[str, object], clock: Clock
) -> tuple[InstrumentQC[int], list[tuple[int, QCFlags | None]]]:
    released: list[tuple[int, QCFlags | None]] = []
    specs = parse_qc(table, defaults={})
    qc: InstrumentQC[int] = InstrumentQC(
        "ctd1",
        specs,
        clock=clock,
        release=lambda item, flags: released.append((item, flags)),
    )
    return qc, released


class Immediate(SynchronousTestCase):
    """
    Without a spike test every record goes on at once with its flags.
    """

    def test_flags_at_once(self) -> None:
        clock = Clock()
        qc, released = make({"s": {"t": RANGE}}, clock)
        qc.submit("s", BASE, {"t": 10.0}, 1)
        qc.submit("s", BASE + 1, {"t": 40.0}, 2)
        qc.submit("s", BASE + 2, {"t": 1.0, "other": 3}, 3)
        qc.submit("s", BASE + 3, {}, 4)
        self.assertEqual(
            released,
            [
                (1, {"t": {"gross_range": 1, "aggregate": 1}}),
                (2, {"t": {"gross_range": 4, "aggregate": 4}}),
                (3, {"t": {"gross_range": 3, "aggregate": 3}}),
                (4, {"t": {"gross_range": 9, "aggregate": 9}}),
            ],
        )
        self.assertEqual(qc.held, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stream_without_qc(self) -> None:
        """
        A stream with no QC configured passes through, with no flags.
        """
        qc, released = make({"s": {"t": RANGE}}, Clock())
        qc.submit("status", BASE, {"t": 99.0}, 7)
        self.assertEqual(released, [(7, None)])
        self.assertEqual(qc.counts, {})

    def test_counts(self) -> None:
        """
        Each released sample counts once per field, under its aggregate.
        """
        qc, _ = make({"s": {"t": RANGE, "c": RANGE}}, Clock())
        for i, (t, c) in enumerate([(10, 10), (40, 10), (41, 1), (10, None)]):
            qc.submit("s", BASE + i, {"t": t, "c": c}, i)
        self.assertEqual(
            qc.counts,
            {
                ("s", "t", 1): 2,
                ("s", "t", 4): 2,
                ("s", "c", 1): 2,
                ("s", "c", 3): 1,
                ("s", "c", 9): 1,
            },
        )

    def test_array_field(self) -> None:
        """
        An array field's flags are lists, one per element; it counts under
        the worst element's aggregate.
        """
        qc, released = make({"s": {"v": RANGE}}, Clock())
        qc.submit("s", BASE, {"v": [10, 40, None]}, 1)
        self.assertEqual(
            released,
            [(1, {"v": {"gross_range": [1, 4, 9], "aggregate": [1, 4, 9]}})],
        )
        self.assertEqual(qc.counts, {("s", "v", 4): 1})

    def test_time_test_uses_the_clock(self) -> None:
        """
        The time test compares sample times with the station's clock.
        """
        clock = Clock()
        clock.advance(BASE + 100)
        qc, released = make({"s": {"t": RANGE, "time": {}}}, clock)
        qc.submit("s", BASE, {"t": 10}, 1)
        qc.submit("s", BASE + 200, {"t": 10}, 2)
        self.assertEqual(
            [flags["t"]["aggregate"] for _, flags in released if flags], [1, 4]
        )


class Held(SynchronousTestCase):
    """
    With a spike test, each record but a stream's first waits for the
    next sample, so that it goes on with its final spike flag.
    """

    def test_held_one_sample(self) -> None:
        clock = Clock()
        qc, released = make({"s": {"t": SPIKE}}, clock)
        values = [10.0, 10.0, 20.0, 10.0, 10.5, 10.0]
        for i, v in enumerate(values):
            clock.advance(1)
            qc.submit("s", BASE + i, {"t": v}, i)
        # The first goes at once (no neighbour before: its spike flag is
        # final, 2); each later one when the next comes; the last waits.
        self.assertEqual([item for item, _ in released], [0, 1, 2, 3, 4])
        self.assertEqual(qc.held, 1)
        spikes = [flags["t"]["spike"] for _, flags in released if flags]
        # The average method: a neighbour of a spike is half as far.
        self.assertEqual(spikes, [2, 3, 4, 4, 1])
        aggregates = [flags["t"]["aggregate"] for _, flags in released if flags]
        self.assertEqual(aggregates, [1, 3, 4, 4, 1])

    def test_same_as_whole_series(self) -> None:
        """
        What the station releases equals the evaluator's final flags over
        the whole series, but for the last sample, released by
        :meth:`flush`.
        """
        clock = Clock()
        table = {"s": {"t": SPIKE}}
        qc, released = make(table, clock)
        values = [10, 11, None, 12, 30, 12, 12.5, 3, 12, 11, 11, float("nan"), 10]
        for i, v in enumerate(values):
            clock.advance(1)
            qc.submit("s", BASE + i, {"t": v}, i)
        qc.flush()
        reference = parse_qc(table, defaults={})["s"].evaluator()
        final = []
        for i, v in enumerate(values):
            step = reference.push(BASE + i, {"t": v})
            if "t" in step.amended:
                final.append(step.amended["t"])
        last = reference.finish()["t"]
        assert not isinstance(last, list)
        final.append(last)
        got = [flags["t"] for _, flags in released if flags]
        self.assertEqual(
            got,
            [
                {
                    **{k: int(v) for k, v in r.flags.items()},
                    "aggregate": int(r.aggregate),
                }
                for r in final
                if not isinstance(r, list)
            ],
        )
        self.assertEqual([item for item, _ in released], list(range(len(values))))

    def test_hold_runs_out(self) -> None:
        """
        A held record goes on, its spike flag 2, after twice the interval
        between the last two samples; the next sample's late flag for it
        is then dropped.
        """
        clock = Clock()
        qc, released = make({"s": {"t": SPIKE}}, clock)
        qc.submit("s", BASE, {"t": 10.0}, 0)
        clock.advance(5)
        qc.submit("s", BASE + 5, {"t": 20.0}, 1)
        clock.advance(9.9)
        self.assertEqual(len(released), 1)
        clock.advance(0.1)
        self.assertEqual(len(released), 2)
        self.assertEqual(
            released[1], (1, {"t": {"gross_range": 1, "spike": 2, "aggregate": 1}})
        )
        clock.advance(1)
        qc.submit("s", BASE + 20, {"t": 10.0}, 2)
        self.assertEqual([item for item, _ in released], [0, 1])
        self.assertEqual(qc.held, 1)

    def test_configured_hold(self) -> None:
        clock = Clock()
        qc, released = make({"s": {"hold": 3, "t": SPIKE}}, clock)
        qc.submit("s", BASE, {"t": 10.0}, 0)
        clock.advance(100)
        qc.submit("s", BASE + 100, {"t": 10.0}, 1)
        clock.advance(2.9)
        self.assertEqual(len(released), 1)
        clock.advance(0.1)
        self.assertEqual(len(released), 2)

    def test_shortest_hold(self) -> None:
        """
        Samples in a burst are held at least a second.
        """
        clock = Clock()
        qc, released = make({"s": {"t": SPIKE}}, clock)
        qc.submit("s", BASE, {"t": 10.0}, 0)
        qc.submit("s", BASE + 1, {"t": 10.0}, 1)
        clock.advance(0.99)
        self.assertEqual(len(released), 1)
        clock.advance(0.01)
        self.assertEqual(len(released), 2)

    def test_flush(self) -> None:
        clock = Clock()
        qc, released = make({"s": {"t": SPIKE}, "u": {"t": SPIKE}}, clock)
        for i in range(2):
            clock.advance(1)
            qc.submit("s", BASE + i, {"t": 10.0}, i)
            qc.submit("u", BASE + i, {"t": 10.0}, 10 + i)
        self.assertEqual(qc.held, 2)
        qc.flush()
        self.assertEqual(qc.held, 0)
        self.assertEqual(sorted(item for item, _ in released), [0, 1, 10, 11])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_streams_apart(self) -> None:
        """
        A sample of one stream does not release another stream's record.
        """
        clock = Clock()
        qc, released = make({"s": {"t": SPIKE}, "u": {"t": RANGE}}, clock)
        qc.submit("s", BASE, {"t": 10.0}, 0)
        clock.advance(1)
        qc.submit("s", BASE + 1, {"t": 10.0}, 1)
        qc.submit("u", BASE + 1, {"t": 10.0}, 2)
        self.assertEqual([item for item, _ in released], [0, 2])


class Faults(SynchronousTestCase):
    def test_fault_costs_no_sample(self) -> None:
        """
        A fault in an evaluator is logged and the sample goes on without
        flags, whichever way the stream goes (its flags known at once, or
        a spike test's one sample late).
        """
        from instrumentd.qc.stream import StreamQC

        def broken(self: object, time: float, values: object) -> None:
            raise ZeroDivisionError("a bug")

        for method, tests in (("push_known", RANGE), ("push", SPIKE)):
            qc, released = make({"s": {"t": tests}}, Clock())
            self.patch(StreamQC, method, broken)
            qc.submit("s", BASE, {"t": 10.0}, 1)
            self.assertEqual(released, [(1, None)])
            self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class SampleFlag(SynchronousTestCase):
    def test_brief(self) -> None:
        self.assertEqual(
            sample_flag(
                {
                    "t": {"gross_range": 4, "aggregate": 4},
                    "c": {"aggregate": 3},
                    "p": {"aggregate": 1},
                    "v": {"aggregate": [1, 3, 9]},
                }
            ),
            (4, [("t", 4), ("c", 3), ("v", 3)]),
        )
        self.assertEqual(sample_flag({"p": {"aggregate": 1}}), (1, []))
        self.assertEqual(sample_flag({}), (2, []))


class Shared(SynchronousTestCase):
    """
    A stream without a lagging test makes each combination of flags into a
    record's ``qc`` once, its JSON included, and shares it.
    """

    def test_same_flags_same_qc(self) -> None:
        qc, released = make({"s": {"t": RANGE, "c": RANGE}}, Clock())
        for i, t in enumerate([10.0, 11.0, 40.0, 12.0]):
            qc.submit("s", BASE + i, {"t": t, "c": 10.0}, i)
        flags = [f for _, f in released]
        self.assertIs(flags[0], flags[1])
        self.assertIs(flags[0], flags[3])
        self.assertIsNot(flags[0], flags[2])
        self.assertIsInstance(flags[0], EncodedQC)
        assert isinstance(flags[2], EncodedQC)
        self.assertEqual(
            json.loads(flags[2].json),
            {
                "t": {"gross_range": 4, "aggregate": 4},
                "c": {"gross_range": 1, "aggregate": 1},
            },
        )
        self.assertEqual(
            qc.counts, {("s", "t", 1): 3, ("s", "t", 4): 1, ("s", "c", 1): 4}
        )

    def test_rare_combinations_made_apart(self) -> None:
        """
        Beyond the combinations a stream keeps, a sample's flags are made
        for it alone: the same flags and counts.
        """
        self.patch(quality, "_COMBINATIONS", 1)
        qc, released = make({"s": {"t": RANGE}}, Clock())
        values = [10.0, 40.0, 40.0, 1.0, 10.0, None]
        for i, t in enumerate(values):
            qc.submit("s", BASE + i, {"t": t}, i)
        self.assertEqual(
            [f["t"]["aggregate"] for _, f in released if f is not None],
            [1, 4, 4, 3, 1, 9],
        )
        self.assertIsNot(released[1][1], released[2][1])
        self.assertIs(released[0][1], released[4][1])
        self.assertEqual(
            qc.counts,
            {("s", "t", 1): 2, ("s", "t", 4): 2, ("s", "t", 3): 1, ("s", "t", 9): 1},
        )

    def test_counts_both_ways(self) -> None:
        """
        Counts add up over a held stream and a shared one.
        """
        qc, _ = make({"s": {"t": RANGE}, "h": {"t": SPIKE}}, Clock())
        for i in range(3):
            qc.submit("s", BASE + i, {"t": 10.0}, i)
            qc.submit("h", BASE + i, {"t": 10.0}, i)
        qc.flush()
        self.assertEqual(qc.counts, {("s", "t", 1): 3, ("h", "t", 1): 3})
