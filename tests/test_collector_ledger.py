"""
Tests for L{instrumentd.collector.ledger}: duplicates by sequence number,
gaps opened with their span and closed by late deliveries, the bound on
open gaps, snapshots, and rebuilding from archived numbers.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.collector.ledger import Gap, Ledger, Stream


def _t(seq: int) -> str:
    return f"2026-12-07T08:00:{seq:02d}.000000Z"


class StreamTests(SynchronousTestCase):
    """
    L{Stream} keeps the numbers seen as merged ranges.
    """

    def test_in_order_is_one_range(self) -> None:
        """
        Numbers in order make one range, however many.
        """
        stream = Stream()
        for seq in range(1, 1001):
            stream.add(seq)
        self.assertEqual(stream.ranges(), [[1, 1000]])

    # The machine is shared: slow generation under load is not a failure.
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.permutations(range(1, 41)).flatmap(
            lambda p: st.sampled_from([p[:k] for k in range(len(p) + 1)])
        )
    )
    def test_any_order(self, numbers: list[int]) -> None:
        """
        In any order, the ranges hold exactly the numbers added, merged.
        """
        stream = Stream()
        for seq in numbers:
            self.assertFalse(stream.has(seq))
            stream.add(seq)
        seen = {n for s, e in stream.ranges() for n in range(s, e + 1)}
        self.assertEqual(seen, set(numbers))
        for (_, end), (start, _) in zip(
            stream.ranges(), stream.ranges()[1:], strict=False
        ):
            self.assertGreater(start, end + 1)


class LedgerTests(SynchronousTestCase):
    """
    L{Ledger.observe} drops duplicates and opens and closes gaps.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.told: list[tuple[int, int, bool]] = []
        self.ledger = Ledger(
            self.clock,
            on_gap=lambda g: self.told.append((g.first, g.last, g.closed is None)),
        )

    def observe(
        self, *numbers: int, station: str = "A", instrument: str = "CTD"
    ) -> list[bool]:
        return [self.ledger.observe(station, instrument, n, _t(n)).new for n in numbers]

    def test_duplicates(self) -> None:
        """
        A number seen before is a duplicate, per station and instrument.
        """
        self.assertEqual(self.observe(1, 2, 3, 2, 1), [True, True, True, False, False])
        self.assertEqual(self.observe(1, instrument="ADCP"), [True])
        self.assertEqual(self.observe(1, station="B"), [True])
        stream = self.ledger.stream("A", "CTD")
        assert stream is not None
        self.assertEqual((stream.received, stream.duplicates), (3, 2))

    def test_gap_opened_with_span(self) -> None:
        """
        A jump ahead opens a gap naming the missing numbers and the times of
        the messages on either side.
        """
        self.observe(1, 2, 3, 7)
        [gap] = self.ledger.open_gaps()
        self.assertEqual(
            (gap.first, gap.last, gap.missing, gap.after, gap.before),
            (4, 6, 3, _t(3), _t(7)),
        )
        self.assertEqual(gap.opened, 1_800_000_000)
        self.assertEqual(self.told, [(4, 6, True)])

    def test_gap_closed_by_late_delivery(self) -> None:
        """
        Late deliveries fill a gap in any order; the last one closes it,
        which is told and remembered with the time it closed.
        """
        self.observe(1, 5, 6)
        self.clock.advance(30)
        self.assertEqual(self.observe(3, 2), [True, True])
        self.assertEqual(self.ledger.open_gaps()[0].missing, 1)
        self.assertEqual(self.observe(4, 3), [True, False])
        self.assertEqual(self.ledger.open_gaps(), [])
        [closed] = self.ledger.closed
        self.assertEqual((closed.first, closed.last, closed.missing), (2, 4, 0))
        self.assertEqual(closed.closed, 1_800_000_030)
        self.assertEqual(self.told, [(2, 4, True), (2, 4, False)])
        self.assertEqual((self.ledger.gaps_opened, self.ledger.gaps_closed), (1, 1))

    def test_below_first_is_no_gap(self) -> None:
        """
        A collector that starts after the station reports no gap for the
        numbers before the first it saw, and takes them if they come.
        """
        self.observe(100, 101)
        self.assertEqual(self.ledger.open_gaps(), [])
        self.assertEqual(self.observe(50, 50), [True, False])
        self.assertEqual(self.ledger.open_gaps(), [])

    def test_bounded(self) -> None:
        """
        Past C{max_open_gaps}, the oldest gap is abandoned: closed, counted
        and told, and its holes forgotten.
        """
        ledger = Ledger(self.clock, max_open_gaps=2, max_closed=2)
        for seq in (1, 3, 5, 7):
            ledger.observe("A", "CTD", seq, None)
        self.assertEqual(
            [(g.first, g.last) for g in ledger.open_gaps()], [(4, 4), (6, 6)]
        )
        [abandoned] = ledger.closed
        self.assertTrue(abandoned.abandoned)
        self.assertEqual(ledger.gaps_abandoned, 1)
        stream = ledger.stream("A", "CTD")
        assert stream is not None
        self.assertEqual(stream.ranges(), [[1, 3], [5, 5], [7, 7]])

    def test_snapshot_restore(self) -> None:
        """
        A snapshot, through JSON, restores the numbers seen, open and closed
        gaps and the counters.
        """
        self.observe(1, 2, 5, 9, 3, 4)
        snapshot = json.loads(json.dumps(self.ledger.snapshot()))
        other = Ledger(self.clock)
        other.restore(snapshot)
        self.assertEqual(other.snapshot(), self.ledger.snapshot())
        self.assertFalse(other.observe("A", "CTD", 5, None).new)
        closed = other.observe("A", "CTD", 8, None).closed
        self.assertIsNone(closed)
        self.assertEqual(other.open_gaps()[0].missing, 2)

    def test_replay(self) -> None:
        """
        Replaying archived numbers out of order (file by file) adds them
        quietly, closes open gaps they fill and opens gaps for holes no
        open gap covers.
        """
        self.observe(1, 2, 6)
        self.told.clear()
        new = self.ledger.replay(
            [("A", "CTD", n, None) for n in (7, 9, 3, 4, 5, 2, 12)]
        )
        self.assertEqual(new, 6)
        self.assertEqual(
            [(g.first, g.last, g.missing) for g in self.ledger.open_gaps()],
            [(8, 8, 1), (10, 11, 2)],
        )
        [closed] = self.ledger.closed
        self.assertEqual((closed.first, closed.last), (3, 5))
        stream = self.ledger.stream("A", "CTD")
        assert stream is not None
        self.assertEqual(stream.duplicates, 0)


class GapTests(SynchronousTestCase):
    """
    L{Gap.to_dict} and L{Gap.from_dict} round-trip.
    """

    def test_round_trip(self) -> None:
        gap = Gap("A", "CTD", 4, 6, "x", "y", 1_800_000_000.5, 2, closed=None)
        data = gap.to_dict()
        self.assertEqual(data["opened"], "2027-01-15T08:00:00.500000+00:00")
        self.assertEqual(data["count"], 3)
        self.assertEqual(Gap.from_dict(data), gap)
