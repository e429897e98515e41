"""
Tests for L{instrumentd.portagent.flushgroup}: one timer flushing many
buffers within their interval.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.portagent.flushgroup import FlushGroup, flush_group


class FlushGroupTests(SynchronousTestCase):
    """
    L{FlushGroup} on a L{Clock}.
    """

    def test_oneTimer(self) -> None:
        """
        Members that join within an interval are flushed together, once
        each, by the timer the first one armed; a member that left is not.
        """
        clock = Clock()
        group = FlushGroup(clock, 1.0)
        flushed: list[str] = []
        group.join("a", lambda: flushed.append("a"))
        clock.advance(0.25)
        group.join("b", lambda: flushed.append("b"))
        group.join("a", lambda: flushed.append("a"))
        group.join("c", lambda: flushed.append("c"))
        group.leave("c")
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(0.75)
        self.assertEqual(flushed, ["a", "b"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_lastLeaves(self) -> None:
        """
        The timer is cancelled when the last member leaves.
        """
        clock = Clock()
        group = FlushGroup(clock, 1.0)
        group.join("a", lambda: None)
        group.leave("a")
        group.leave("a")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_faultyMember(self) -> None:
        """
        A member whose flush raises is logged; the others are flushed.
        """
        clock = Clock()
        group = FlushGroup(clock, 1.0)
        flushed: list[str] = []

        def broken() -> None:
            raise RuntimeError("broken")

        group.join("a", broken)
        group.join("b", lambda: flushed.append("b"))
        clock.advance(1)
        self.assertEqual(flushed, ["b"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_shared(self) -> None:
        """
        L{flush_group} gives one group per clock and interval.
        """
        clock, other = Clock(), Clock()
        self.assertIs(flush_group(clock, 1.0), flush_group(clock, 1.0))
        self.assertIsNot(flush_group(clock, 1.0), flush_group(clock, 2.0))
        self.assertIsNot(flush_group(clock, 1.0), flush_group(other, 1.0))
