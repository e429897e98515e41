"""
Tests for L{instrumentd.station.spool}: order, the delivery cursor,
restarts, segments, torn lines.
"""

from __future__ import annotations

import json
import os

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.station.spool import Spool, SpoolInUseError


class SpoolTests(SynchronousTestCase):
    """
    L{Spool} is an ordered disk queue whose delivery cursor survives
    restarts.
    """

    def test_order(self) -> None:
        """
        Records come back in order with consecutive seqs, in batches of at
        most the limit.
        """
        spool = Spool(self.mktemp())
        self.addCleanup(spool.close)
        for number in range(5):
            self.assertEqual(spool.append({"n": number}), number + 1)
        first = spool.read(3)
        self.assertEqual([entry.seq for entry in first], [1, 2, 3])
        self.assertEqual(json.loads(first[0].line), {"seq": 1, "n": 0})
        self.assertEqual([entry.seq for entry in spool.read(3)], [4, 5])
        self.assertEqual(spool.read(3), [])
        self.assertEqual((spool.pending, spool.unread), (5, 0))

    def test_restart(self) -> None:
        """
        A new spool on the same directory reads from the first record not
        committed, and carries on numbering after the last one stored.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        for number in range(5):
            spool.append({"n": number})
        spool.read(4)
        spool.commit(2)
        spool.close()
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual(again.source, spool.source)
        self.assertEqual([entry.seq for entry in again.read(10)], [3, 4, 5])
        self.assertEqual(again.append({"n": 5}), 6)

    def test_segmentsDeleted(self) -> None:
        """
        Segments are rotated by size and deleted once all their records are
        delivered; seqs are never reused even when nothing is left on disk.
        """
        directory = self.mktemp()
        spool = Spool(directory, segment_bytes=20)
        for number in range(6):
            spool.append({"n": number})
        segments = [name for name in os.listdir(directory) if name.endswith(".jsonl")]
        self.assertGreater(len(segments), 2)
        entries = spool.read(6)
        spool.commit(entries[-1].seq)
        remaining = [name for name in os.listdir(directory) if name.endswith(".jsonl")]
        self.assertEqual(len(remaining), 1)
        spool.close()
        self.assertEqual(os.listdir(directory), ["state.json"])
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual(again.append({"n": 6}), 7)

    def test_tornLineSkipped(self) -> None:
        """
        A line torn by a crash at the end of a segment is skipped and
        counted; the next run writes a new segment after it.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        spool.append({"n": 0})
        spool.append({"n": 1})
        spool.close()
        (segment,) = [n for n in os.listdir(directory) if n.endswith(".jsonl")]
        with open(os.path.join(directory, segment), "ab") as f:
            f.write(b'{"seq":3,"n"')
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual(again.append({"n": 2}), 3)
        self.assertEqual(
            [json.loads(entry.line)["n"] for entry in again.read(10)], [0, 1, 2]
        )
        self.assertEqual(again.corrupt, 1)

    def test_badState(self) -> None:
        """
        A state file that is not a spool's is refused with its path named.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "state.json"), "w") as f:
            f.write("[1, 2]")
        error = self.assertRaises(ValueError, Spool, directory)
        self.assertIn("state.json", str(error))
        self.assertFalse(os.path.lexists(os.path.join(directory, "lock")))

    def test_inUse(self) -> None:
        """
        A second spool cannot open a directory that one has open; once that
        one is closed, it can.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        error = self.assertRaises(SpoolInUseError, Spool, directory)
        self.assertIn(directory, str(error))
        spool.close()
        Spool(directory).close()
