"""
Tests for L{instrumentd.station.spool}: order, the delivery cursor,
restarts, segments, torn lines, the cursor written in place, the bound, and
a full disk (a real tmpfs as root, else a fault-injecting layer; see
L{tests.smalldisk}).
"""

from __future__ import annotations

import errno
import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.station import spool as spool_module
from instrumentd.station.spool import Spool, SpoolFullError, SpoolInUseError
from tests.smalldisk import SmallDisk


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

    def test_appendEncoded(self) -> None:
        """
        A record given as JSON bytes is stored with its seq first and its
        members as they were; seqs are shared with L{Spool.append}.  A body
        that is not one JSON object on one line is refused, using no seq.
        """
        spool = Spool(self.mktemp())
        self.addCleanup(spool.close)
        self.assertEqual(spool.append_encoded(b'{"a":{"b":[1,2]}}'), 1)
        self.assertEqual(spool.append_encoded(b"{}"), 2)
        self.assertEqual(spool.append({"n": 3}), 3)
        for bad in (b"[1]", b'{"a":1}\n{"b":2}', b""):
            self.assertRaises(ValueError, spool.append_encoded, bad)
        lines = [entry.line for entry in spool.read(10)]
        self.assertEqual(
            lines, [b'{"seq":1,"a":{"b":[1,2]}}', b'{"seq":2}', b'{"seq":3,"n":3}']
        )
        self.assertEqual(spool.append_encoded(b'{"x":1}'), 4)

    def test_appendMembers(self) -> None:
        """
        A record given as the members of a JSON object, in parts, is stored
        with its seq first and its members as they were; seqs are shared
        with L{Spool.append}.  Parts that hold a line break, or no member,
        are refused, using no seq.
        """
        spool = Spool(self.mktemp())
        self.addCleanup(spool.close)
        self.assertEqual(spool.append_members(b'"i":"x","r":', b'{"b":[1,2]}'), 1)
        self.assertEqual(spool.append({"n": 2}), 2)
        for bad in ((b'"a":1\n', b'"b":2'), (), (b"",)):
            self.assertRaises(ValueError, spool.append_members, *bad)
        lines = [entry.line for entry in spool.read(10)]
        self.assertEqual(
            lines, [b'{"seq":1,"i":"x","r":{"b":[1,2]}}', b'{"seq":2,"n":2}']
        )
        self.assertEqual(spool.append_members(b'"x":1'), 3)

    def test_shortWrites(self) -> None:
        """
        A line the system writes in pieces is stored whole; a write that
        takes nothing fails with an C{OSError} that says so, and the record
        after it is stored whole.
        """
        spool = Spool(self.mktemp())
        self.addCleanup(spool.close)
        write = os.write
        taken: list[int] = []

        def piecemeal(fd: int, data: bytes) -> int:
            written = write(fd, bytes(data[:7]))
            taken.append(written)
            return written

        self.patch(spool_module.os, "write", piecemeal)
        self.assertEqual(spool.append_encoded(b'{"a":"%s"}' % (b"x" * 30)), 1)
        self.assertGreater(len(taken), 1)
        self.patch(spool_module.os, "write", lambda fd, data: 0)
        error = self.assertRaises(OSError, spool.append_encoded, b'{"b":2}')
        self.assertIn("short write: 0 of", str(error))
        self.patch(spool_module.os, "write", write)
        self.assertEqual(spool.append_encoded(b'{"c":3}'), 2)
        lines = [entry.line for entry in spool.read(10)]
        self.assertEqual(
            lines, [b'{"seq":1,"a":"%s"}' % (b"x" * 30), b'{"seq":2,"c":3}']
        )

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
        self.assertEqual(sorted(os.listdir(directory)), ["cursor", "state.json"])
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


def crash(spool: Spool) -> None:
    """
    Leave C{spool} as a killed process would: its files as they are (no
    final save of C{state.json}), its descriptors closed, its lock free.
    """
    spool._close_writer()
    if spool._reader is not None:
        spool._reader.close()
    cursor = getattr(spool, "_cursor_fd", None)
    if cursor is not None:
        os.close(cursor)
    spool._closed = True
    spool._lock.unlock()


def segment_bytes(directory: str) -> int:
    """
    The size of the spool's segment files on disk.
    """
    return sum(
        os.path.getsize(os.path.join(directory, name))
        for name in segment_names(directory)
    )


def segment_names(directory: str) -> list[str]:
    """
    The spool's segment files, oldest first.
    """
    return sorted(name for name in os.listdir(directory) if name.endswith(".jsonl"))


def _seq_by_decoding(line: bytes) -> int | None:
    """
    A stored line's seq the slow, sure way: the whole line decoded.
    """
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    seq = record.get("seq") if isinstance(record, dict) else None
    return seq if type(seq) is int and seq > 0 else None


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


class SpoolSeqTests(SynchronousTestCase):
    """
    Reading back, a line's seq is read from its start instead of decoding
    the whole record; it must say exactly what decoding says for every line
    a spool writes, and refuse what a crash or a power cut leaves.
    """

    @settings(max_examples=200, deadline=None)
    @given(
        fields=st.dictionaries(
            st.text(max_size=8).filter(lambda k: k != "seq"), _json_values, max_size=4
        ),
        seq=st.integers(1, 10**15),
        encoded=st.booleans(),
        cut=st.integers(0, 10**6),
        zeros=st.integers(1, 64),
    )
    def test_sameAsDecoding(
        self,
        fields: dict[str, object],
        seq: int,
        encoded: bool,
        cut: int,
        zeros: int,
    ) -> None:
        """
        For lines as C{append} and C{append_encoded} write them: the seq,
        as decoding finds it; for any torn prefix, and for the line with a
        run of zeros in it (a power cut's unwritten blocks), C{None}, as
        decoding says.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        self.addCleanup(spool.close)
        spool.last_seq = seq - 1
        if encoded:
            spool.append_encoded(json.dumps(fields, separators=(",", ":")).encode())
        else:
            spool.append(fields)
        (entry,) = spool.read(1)
        line = entry.line + b"\n"
        parse = spool_module._parse_seq
        self.assertEqual(parse(line), seq)
        self.assertEqual(parse(line), _seq_by_decoding(line))
        torn = line[: cut % len(line)]
        self.assertIsNone(parse(torn))
        start = cut % len(line)
        zeroed = line[:start] + b"\0" * zeros + line[start + zeros :]
        if not zeroed.endswith(b"\n"):
            zeroed += b"}\n"
        self.assertIsNone(parse(zeroed))
        self.assertIsNone(_seq_by_decoding(zeroed))

    def test_notSeqFirst(self) -> None:
        """
        A line whose seq is not first (written by hand, or by another
        program) is still read, by decoding it; a seq that is no positive
        integer is refused.
        """
        parse = spool_module._parse_seq
        self.assertEqual(parse(b'{"n":1,"seq":7}\n'), 7)
        for line in (
            b'{"seq":0,"n":1}\n',
            b'{"seq":-3}\n',
            b'{"seq":07,"n":1}\n',
            b'{"seq":"7"}\n',
            b'{"seq":1_0}\n',
            b'{"seq": 5}\n',
            b'{"seq":5.0}\n',
        ):
            self.assertEqual(parse(line), _seq_by_decoding(line), line)


class SpoolCursorTests(SynchronousTestCase):
    """
    The delivery cursor is overwritten in place, in two checked slots, so
    that a commit needs no new space and a torn write loses at most the
    latest commit.
    """

    def test_survivesCrash(self) -> None:
        """
        A commit is on disk at once: a spool reopened after a crash (no
        close) reads from the first record after it.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        for number in range(5):
            spool.append({"n": number})
        spool.read(5)
        spool.commit(3)
        crash(spool)
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual([entry.seq for entry in again.read(10)], [4, 5])

    def test_overwrittenInPlace(self) -> None:
        """
        Commits rewrite the same two slots of the same file: its size and
        inode never change.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        self.addCleanup(spool.close)
        path = os.path.join(directory, "cursor")
        before = os.stat(path)
        for number in range(4):
            spool.append({"n": number})
            spool.read(1)
            spool.commit(number + 1)
        after = os.stat(path)
        self.assertEqual((after.st_ino, after.st_size), (before.st_ino, 64))

    def test_tornSlot(self) -> None:
        """
        A slot spoiled by a torn write is ignored: the other one still
        holds the commit before it.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        for number in range(5):
            spool.append({"n": number})
        spool.read(5)
        spool.commit(2)
        spool.commit(4)
        crash(spool)
        path = os.path.join(directory, "cursor")
        with open(path, "rb") as f:
            slots = f.read()
        newest = 0 if slots[:32].startswith(b"%020d" % 4) else 32
        with open(path, "r+b") as f:
            f.seek(newest + 5)
            f.write(b"9")
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual([entry.seq for entry in again.read(10)], [3, 4, 5])

    def test_stateOfEarlierVersion(self) -> None:
        """
        A spool made before the cursor file existed keeps its cursor in
        C{state.json}; it is honoured.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        for number in range(4):
            spool.append({"n": number})
        crash(spool)
        os.unlink(os.path.join(directory, "cursor"))
        with open(os.path.join(directory, "state.json"), "w") as f:
            json.dump({"source": spool.source, "delivered": 2}, f)
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual([entry.seq for entry in again.read(10)], [3, 4])

    def test_segmentsDeletedBeforeCursor(self) -> None:
        """
        A commit deletes the segments it completes before it writes the
        cursor; if the cursor cannot be written, the deleted records are
        still never read again.
        """
        directory = self.mktemp()
        spool = Spool(directory, segment_bytes=20)
        for number in range(6):
            spool.append({"n": number})
        spool.read(6)

        def broken() -> None:
            raise OSError(5, "Input/output error")

        self.patch(spool, "_save_cursor", broken)
        self.assertRaises(OSError, spool.commit, 4)
        self.assertEqual(segment_names(directory), [f"{5:020d}.jsonl"])
        crash(spool)
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual([entry.seq for entry in again.read(10)], [5, 6])
        self.assertEqual(again.pending, 2)


class SpoolBoundTests(SynchronousTestCase):
    """
    With C{max_bytes}, the oldest segments are deleted to make room, and
    what was lost is counted.
    """

    def test_dropsOldest(self) -> None:
        """
        The segments never take more than the bound; the oldest records go,
        a segment at a time, counted in C{evicted}; reading carries on with
        the oldest still there, and seqs show the gap.
        """
        directory = self.mktemp()
        spool = Spool(directory, max_bytes=1000)
        self.addCleanup(spool.close)
        sizes = []
        for number in range(100):
            spool.append({"n": number, "pad": "x" * 20})
            sizes.append(spool.disk_bytes)
        self.assertLessEqual(max(sizes), 1000)
        self.assertEqual(spool.disk_bytes, segment_bytes(directory))
        self.assertTrue(spool.at_bound)
        seqs = [entry.seq for entry in spool.read(1000)]
        self.assertEqual(seqs, list(range(seqs[0], 101)))
        self.assertEqual(spool.evicted, seqs[0] - 1)
        self.assertGreater(spool.evicted, 50)
        self.assertEqual(spool.pending, len(seqs))

    def test_readRecordsNotCounted(self) -> None:
        """
        Records already read (a batch in flight) are not counted as
        evicted when their segment goes; unread ones are.
        """
        spool = Spool(self.mktemp(), max_bytes=800)
        self.addCleanup(spool.close)
        spool.append({"n": 0, "pad": "x" * 20})
        first_segment_end = None
        while spool.evicted == 0 and first_segment_end is None:
            spool.append({"n": 1, "pad": "x" * 20})
            if len(segment_names(spool.directory)) > 1:
                first_segment_end = spool.last_seq - 1
        assert first_segment_end is not None
        in_flight = spool.read(2)
        while not spool.at_bound:
            spool.append({"n": 2, "pad": "x" * 20})
        self.assertEqual(spool.evicted, first_segment_end - len(in_flight))
        self.assertEqual(spool.delivered, first_segment_end)

    def test_drainClearsBound(self) -> None:
        """
        At the bound from the first eviction until delivery has drained the
        segments to half the bound.
        """
        spool = Spool(self.mktemp(), max_bytes=1000)
        self.addCleanup(spool.close)
        while not spool.at_bound:
            spool.append({"pad": "x" * 20})
        entries = spool.read(1000)
        spool.commit(entries[len(entries) // 4].seq)
        self.assertTrue(spool.at_bound)
        spool.commit(entries[-1].seq)
        self.assertFalse(spool.at_bound)

    def test_recordLargerThanBound(self) -> None:
        """
        A record larger than the whole bound is refused without deleting
        anything.
        """
        spool = Spool(self.mktemp(), max_bytes=100)
        self.addCleanup(spool.close)
        spool.append({"n": 1})
        error = self.assertRaises(SpoolFullError, spool.append, {"pad": "x" * 200})
        self.assertIn("bound of 100 bytes", str(error))
        self.assertEqual((spool.evicted, spool.pending), (0, 1))

    def test_cursorMovesPastEvicted(self) -> None:
        """
        After a restart, the records deleted at the bound are not waited
        for: the spool reads on from the oldest one left.
        """
        directory = self.mktemp()
        spool = Spool(directory, max_bytes=1000)
        for number in range(100):
            spool.append({"n": number, "pad": "x" * 20})
        first = spool.evicted + 1
        crash(spool)
        again = Spool(directory, max_bytes=1000)
        self.addCleanup(again.close)
        self.assertEqual(again.pending, 101 - first)
        self.assertEqual(again.read(1)[0].seq, first)


class SpoolFullDiskTests(SynchronousTestCase):
    """
    On a full disk the spool refuses new records but still commits, frees
    delivered segments, and takes records again once there is room.  The
    disk is a real tmpfs when the test runs as root, else a fault-injecting
    layer (L{tests.smalldisk}).
    """

    def full_spool(self, **kwargs: int) -> tuple[Spool, SmallDisk]:
        """
        A spool on a 64 KiB disk, filled by itself until a record is
        refused.
        """
        disk = SmallDisk(self, 64 * 1024)
        spool = Spool(os.path.join(disk.path, "spool"), **kwargs)
        self.addCleanup(lambda: spool._closed or spool.close())
        with self.assertRaises(OSError) as caught:
            for number in range(10_000):
                spool.append({"n": number, "pad": "x" * 100})
        self.assertEqual(caught.exception.errno, errno.ENOSPC)
        return spool, disk

    def test_commitOnFullDisk(self) -> None:
        """
        With the disk full and nothing freed (one segment, part
        delivered), a commit still persists the cursor: a restart does not
        read the delivered records again.
        """
        spool, disk = self.full_spool(segment_bytes=1 << 30)
        stored = spool.last_seq
        self.assertGreater(stored, 100)
        self.assertEqual(len(segment_names(spool.directory)), 1)
        spool.read(10)
        spool.commit(10)
        crash(spool)
        again = Spool(spool.directory)
        self.addCleanup(again.close)
        self.assertEqual(again.read(1)[0].seq, 11, disk.kind)
        self.assertEqual(again.pending, stored - 10)
        self.assertEqual(again.corrupt, 0)

    def test_closeOnFullDisk(self) -> None:
        """
        Closing on a full disk cannot refresh C{state.json}; it leaves no
        half-written temporary file behind, and the cursor still holds.
        """
        spool, disk = self.full_spool(segment_bytes=1 << 30)
        spool.read(10)
        spool.commit(10)
        spool.close()
        self.assertNotIn("state.json.tmp", os.listdir(spool.directory), disk.kind)
        again = Spool(spool.directory)
        self.addCleanup(again.close)
        self.assertEqual(again.read(1)[0].seq, 11)

    def test_deliveryFreesDisk(self) -> None:
        """
        Once everything stored is delivered, the commit deletes the
        segments, and records are taken again, numbered on.
        """
        spool, disk = self.full_spool(segment_bytes=8192)
        stored = spool.last_seq
        entries = spool.read(stored)
        self.assertEqual(len(entries), stored)
        spool.commit(stored)
        self.assertEqual(segment_names(spool.directory), [])
        self.assertEqual(spool.disk_bytes, 0)
        self.assertEqual(spool.append({"n": "after"}), stored + 1, disk.kind)
        crash(spool)
        again = Spool(spool.directory)
        self.addCleanup(again.close)
        self.assertEqual([entry.seq for entry in again.read(10)], [stored + 1])

    def test_spaceFreedByOthers(self) -> None:
        """
        When another program fills the disk, records are refused until it
        frees space, then taken again with no step by hand.
        """
        disk = SmallDisk(self, 64 * 1024)
        spool = Spool(os.path.join(disk.path, "spool"))
        self.addCleanup(spool.close)
        spool.append({"n": 0})
        filler = disk.fill()
        with self.assertRaises(OSError):
            # The last block of the segment may still take a few.
            for number in range(1, 1000):
                spool.append({"n": number, "pad": "x" * 100})
        stored = spool.last_seq
        self.assertLess(stored, 100)
        self.assertEqual(spool.disk_bytes, segment_bytes(spool.directory))
        self.assertRaises(OSError, spool.append, {"n": "refused"})
        os.unlink(filler)
        self.assertEqual(spool.append({"n": "after"}), stored + 1)
        self.assertEqual(
            [json.loads(e.line)["n"] for e in spool.read(1000)],
            [*range(stored), "after"],
        )
        self.assertEqual(spool.corrupt, 0)


def _segment_lines(directory: str) -> list[bytes]:
    """
    Every line in the spool's segment files, in seq order.
    """
    lines: list[bytes] = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".jsonl"):
            with open(os.path.join(directory, name), "rb") as f:
                lines.extend(f.read().splitlines())
    return lines


class SpoolBufferTests(SynchronousTestCase):
    """
    With C{buffer_bytes}, records wait in memory for one write of many;
    and the reader takes records appended since it caught up from memory.
    """

    def make_spool(self, **kwargs: int) -> tuple[Spool, str, list[int]]:
        """
        A spool in a new directory whose writes are counted (their sizes).
        """
        directory = self.mktemp()
        spool = Spool(directory, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(spool.close)
        writes: list[int] = []
        write_all = spool._write_all

        def counting(fd: int, data: bytes) -> None:
            writes.append(len(data))
            write_all(fd, data)

        self.patch(spool, "_write_all", counting)
        return spool, directory, writes

    def count_reader_opens(self, spool: Spool) -> list[object]:
        """
        :returns: a list that gets the position of each file the spool's
            reader opens.
        """
        opened: list[object] = []
        open_reader = spool._open_reader

        def counting(after: object) -> bool:
            opened.append(after)
            return open_reader(after)  # type: ignore[arg-type]

        self.patch(spool, "_open_reader", counting)
        return opened

    def test_oneWriteForMany(self) -> None:
        """
        Appended records are counted at once but written by
        L{Spool.write_pending}, all with one write.
        """
        spool, directory, writes = self.make_spool(buffer_bytes=1 << 16)
        for number in range(100):
            spool.append({"n": number})
        self.assertEqual((writes, spool.last_seq, spool.unread), ([], 100, 100))
        self.assertEqual(_segment_lines(directory), [])
        spool.write_pending()
        spool.write_pending()
        self.assertEqual(len(writes), 1)
        self.assertEqual(
            [json.loads(line)["n"] for line in _segment_lines(directory)],
            list(range(100)),
        )

    def test_bufferFull(self) -> None:
        """
        A record that would take the buffer past C{buffer_bytes} writes
        the records waiting first.
        """
        spool, directory, writes = self.make_spool(buffer_bytes=100)
        for number in range(10):
            spool.append({"n": number})
        self.assertTrue(writes)
        self.assertTrue(all(size <= 100 for size in writes))
        spool.write_pending()
        self.assertEqual(len(_segment_lines(directory)), 10)

    def test_readWritesFirst(self) -> None:
        """
        Nothing is read (to be sent) before it is in the file.
        """
        spool, directory, writes = self.make_spool(buffer_bytes=1 << 16)
        spool.append({"n": 1})
        spool.append({"n": 2})
        self.assertEqual([entry.seq for entry in spool.read(10)], [1, 2])
        self.assertEqual(len(writes), 1)
        self.assertEqual(len(_segment_lines(directory)), 2)

    def test_writeFailureLosesPending(self) -> None:
        """
        Records whose write fails are lost, counted in C{lost}; their seqs
        go to the next records, and no torn line is left.
        """
        spool, directory, _ = self.make_spool(buffer_bytes=1 << 16)
        spool.append({"n": 1})
        spool.write_pending()
        spool.append({"n": 2})
        spool.append({"n": 3})

        def full(fd: int, data: bytes) -> None:
            os.write(fd, data[:5])
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(spool, "_write_all", full)
        self.assertRaises(OSError, spool.write_pending)
        self.assertEqual((spool.lost, spool.last_seq, spool.unread), (2, 1, 1))
        del spool._write_all
        self.assertEqual(spool.append({"n": 4}), 2)
        self.assertEqual(
            [(entry.seq, json.loads(entry.line)["n"]) for entry in spool.read(10)],
            [(1, 1), (2, 4)],
        )
        self.assertEqual(
            [json.loads(line)["n"] for line in _segment_lines(directory)], [1, 4]
        )

    def test_closeWrites(self) -> None:
        """
        Closing writes what waits; a new spool on the directory reads it.
        """
        directory = self.mktemp()
        spool = Spool(directory, buffer_bytes=1 << 16)
        for number in range(3):
            spool.append({"n": number})
        spool.close()
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual([entry.seq for entry in again.read(10)], [1, 2, 3])

    def test_tailFromMemory(self) -> None:
        """
        A reader that keeps up takes new records from memory, not from the
        files; one that fell further behind than the memory holds reads the
        files, and both give every record once, in order.
        """
        spool, _, _ = self.make_spool(segment_bytes=300, tail_bytes=1 << 20)
        opened = self.count_reader_opens(spool)
        seqs: list[int] = []
        for number in range(20):
            spool.append({"n": number})
            if number % 3 == 0:
                seqs.extend(entry.seq for entry in spool.read(2))
        seqs.extend(entry.seq for entry in spool.read(100))
        self.assertEqual(seqs, list(range(1, 21)))
        self.assertEqual(opened, [])

        spool._tail_limit = 100
        for number in range(20, 40):
            spool.append({"n": number})
        read = [entry.seq for entry in spool.read(7)]
        read += [entry.seq for entry in spool.read(100)]
        self.assertEqual(read, list(range(21, 41)))
        self.assertTrue(opened)
        del opened[:]
        spool.append({"n": 40})
        self.assertEqual([entry.seq for entry in spool.read(5)], [41])
        self.assertEqual(opened, [])

    def test_tailAfterCommitAndEviction(self) -> None:
        """
        Records the cursor moved past (committed, or deleted at the bound)
        are not read from memory either.
        """
        spool, _, _ = self.make_spool(tail_bytes=1 << 20)
        for number in range(5):
            spool.append({"n": number})
        spool.commit(3)
        self.assertEqual([entry.seq for entry in spool.read(10)], [4, 5])

        bounded, _, _ = self.make_spool(
            max_bytes=800, segment_bytes=100, tail_bytes=1 << 20
        )
        for number in range(60):
            bounded.append({"n": number})
        read = [entry.seq for entry in bounded.read(100)]
        self.assertEqual(read, list(range(read[0], 61)))
        self.assertGreater(read[0], 1)
        self.assertEqual(bounded.evicted, read[0] - 1)

    def test_noTailByDefault(self) -> None:
        """
        Without C{tail_bytes} nothing is kept in memory for the reader
        (the MQTT sink keeps a spool per instrument, and a broker outage
        would otherwise fill memory with every spool's tail): every record
        is read back from the files.
        """
        spool, _, _ = self.make_spool()
        opened = self.count_reader_opens(spool)
        spool.read(10)
        for number in range(5):
            spool.append({"n": number})
        self.assertIsNone(spool._tail)
        self.assertEqual([entry.seq for entry in spool.read(10)], [1, 2, 3, 4, 5])
        self.assertTrue(opened)
