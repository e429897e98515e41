"""
Tests for L{instrumentd.driver.chunker}: complete records only, whatever the
chunking; noise and overflow dropped and counted; first-byte timestamps;
binary records.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import re
from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.chunker import (
    Chunker,
    Record,
    Sieve,
    length_sieve,
    regex_sieve,
)
from instrumentd.instruments.seabird.sbe37smp.particles import SIEVES as SBE37_SIEVES

# An SBE 37 sample line, anchored at its end so a cut line is not a record.
SAMPLE_LINE = re.compile(
    rb"#\s*-?\d+\.\d+,\s*-?\d+\.\d+,\s*-?\d+\.\d+"
    rb"(?:,\s*-?\d+\.\d+,\s*-?\d+\.\d+,\s*\d+ \w+ \d{4}, \d\d:\d\d:\d\d)?\r\n"
)
SAMPLE = b"# 12.3456,  3.51234,   10.123,  33.9876, 1497.432, 05 Feb 2013, 19:16:59\r\n"

# A toy line record for property tests: '#', numbers, CR LF.
LINE = re.compile(rb"#\d+(?:,\d+)*\r\n")

SYNC = b"\xfa\xf5"


def _xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def binary_record(payload: bytes) -> bytes:
    """
    A toy binary record: sync, one length byte (the whole record's length),
    payload, and a checksum byte making the XOR of the record zero.
    """
    body = SYNC + bytes([len(payload) + 4]) + payload
    return body + bytes([_xor(body)])


BINARY = length_sieve(
    SYNC,
    length_offset=2,
    length_size=1,
    min_length=4,
    max_length=255,
    verify=lambda record: _xor(record) == 0,
)


def _feed(chunker: Chunker, stream: bytes, cuts: list[int]) -> list[int]:
    """
    Add C{stream} cut at C{cuts}, chunk I{i} stamped C{float(i)}.

    @return: the offset at which each chunk starts.
    """
    bounds = sorted({0, *cuts, len(stream)})
    starts = []
    for index, (start, end) in enumerate(itertools.pairwise(bounds)):
        starts.append(start)
        chunker.add_chunk(stream[start:end], float(index))
    return starts


def _chunk_index(starts: list[int], offset: int) -> int:
    return max(i for i, start in enumerate(starts) if start <= offset)


class ChunkerTests(SynchronousTestCase):
    """
    Tests for L{Chunker} with regex sieves.
    """

    def test_wholeRecord(self) -> None:
        """
        A complete record in one chunk is handed out with the chunk's time.
        """
        chunker = Chunker(SAMPLE_LINE)
        chunker.add_chunk(SAMPLE, 3569253419.5)
        self.assertEqual(Record(3569253419.5, SAMPLE), chunker.get_next_data())
        self.assertIsNone(chunker.get_next_data())

    def test_lineCutShortInTransit(self) -> None:
        """
        A sample line cut short is not a record; when the rest arrives, the
        whole line is handed out with the time of its first byte.
        """
        chunker = Chunker(SAMPLE_LINE)
        chunker.add_chunk(b"# 12.3456,  3.51234,   10.1", 1.0)
        self.assertIsNone(chunker.get_next_data())
        self.assertEqual(27, chunker.buffered)
        chunker.add_chunk(b"23,  33.9876, 1497.432, 05 Feb 2013, 19:16:59\r\n", 2.0)
        self.assertEqual([Record(1.0, SAMPLE)], chunker.take_records())
        self.assertEqual(0, chunker.buffered)

    def test_noiseDroppedAndCounted(self) -> None:
        """
        Bytes before a record that are in no record (a prompt, an echo) are
        dropped and counted as noise.
        """
        chunker = Chunker(LINE)
        chunker.add_chunk(b"S>ts\r\n#1,2\r\nS>#3\r\n", 1.0)
        self.assertEqual(
            [Record(1.0, b"#1,2\r\n"), Record(1.0, b"#3\r\n")],
            chunker.take_records(),
        )
        self.assertEqual(8, chunker.counters.noise_bytes)
        self.assertEqual(2, chunker.counters.records)
        self.assertEqual(10, chunker.counters.record_bytes)

    def test_trailingBytesWait(self) -> None:
        """
        Bytes after the last record wait (they may start the next record)
        and are not counted as noise until a later record shows they were.
        """
        chunker = Chunker(LINE)
        chunker.add_chunk(b"#1\r\nS>", 1.0)
        self.assertEqual(2, chunker.buffered)
        self.assertEqual(0, chunker.counters.noise_bytes)
        chunker.add_chunk(b"#2\r\n", 2.0)
        self.assertEqual(2, chunker.counters.noise_bytes)
        self.assertEqual(
            [b"#1\r\n", b"#2\r\n"], [r.data for r in chunker.take_records()]
        )

    def test_firstByteTimestamp(self) -> None:
        """
        A record spread over several chunks has the time of the chunk
        holding its first byte; records that start in the same chunk share
        its time.
        """
        chunker = Chunker(LINE)
        chunker.add_chunk(b"xx#1", 1.0)
        chunker.add_chunk(b"0", 2.0)
        chunker.add_chunk(b"\r\n#2\r\n#", 3.0)
        chunker.add_chunk(b"3\r\n", 4.0)
        self.assertEqual(
            [Record(1.0, b"#10\r\n"), Record(3.0, b"#2\r\n"), Record(3.0, b"#3\r\n")],
            chunker.take_records(),
        )

    def test_longestAtSameStartWins(self) -> None:
        """
        Of two records starting at the same byte the longer wins (no
        C{SBE37-SM} record out of C{SBE37-SMP}); the loser is counted.
        """
        chunker = Chunker([re.compile(rb"SBE37-SM"), re.compile(rb"SBE37-SMP\r\n")])
        chunker.add_chunk(b"SBE37-SMP\r\n", 1.0)
        self.assertEqual([b"SBE37-SMP\r\n"], [r.data for r in chunker.take_records()])
        self.assertEqual(1, chunker.counters.overlaps)

    def test_firstStartWins(self) -> None:
        """
        Of two overlapping records the one starting first wins.
        """
        chunker = Chunker([re.compile(rb"bcd"), re.compile(rb"abc")])
        chunker.add_chunk(b"abcd", 1.0)
        self.assertEqual([b"abc"], [r.data for r in chunker.take_records()])
        self.assertEqual((1, 1), (chunker.counters.overlaps, chunker.buffered))

    def test_callableSieve(self) -> None:
        """
        A callable sieve returns record spans itself.
        """

        def fixed_size(buffer: bytes) -> list[tuple[int, int | None]]:
            return [(i, i + 3) for i in range(0, len(buffer) - 2, 3)]

        chunker = Chunker(fixed_size)
        chunker.add_chunk(b"abcde", 1.0)
        chunker.add_chunk(b"f", 2.0)
        self.assertEqual(
            [Record(1.0, b"abc"), Record(1.0, b"def")], chunker.take_records()
        )

    def test_badSpan(self) -> None:
        """
        A sieve returning a span outside the buffer is a programming error,
        reported at once rather than losing bytes.
        """
        chunker = Chunker(lambda buffer: [(0, len(buffer) + 1)])
        self.assertRaises(ValueError, chunker.add_chunk, b"abc", 1.0)

    def test_overflow(self) -> None:
        """
        Waiting bytes beyond C{max_buffer} are dropped, oldest first, and
        counted; the buffer never grows beyond the bound.
        """
        chunker = Chunker(LINE, max_buffer=10)
        chunker.add_chunk(b"0123456789abcde", 1.0)
        chunker.add_chunk(b"#12345", 2.0)
        self.assertEqual(10, chunker.buffered)
        self.assertEqual(11, chunker.counters.overflow_bytes)
        chunker.add_chunk(b"\r\n", 3.0)
        self.assertEqual([Record(2.0, b"#12345\r\n")], chunker.take_records())
        self.assertEqual(4, chunker.counters.noise_bytes)
        self.assertTrue(chunker.counters.accounted(chunker.buffered))

    def test_chunkLongerThanBuffer(self) -> None:
        """
        A chunk longer than C{max_buffer} is taken in pieces: its records
        are all found and the buffer stays bounded.
        """
        chunker = Chunker(LINE, max_buffer=16)
        records = [b"#%d\r\n" % i for i in range(100)]
        chunker.add_chunk(b"".join(records), 1.0)
        self.assertEqual(records, [r.data for r in chunker.take_records()])
        self.assertLessEqual(chunker.buffered, 16)

    def test_clear(self) -> None:
        """
        C{clear} drops a waiting fragment, counting it as noise, so a
        restarted stream does not glue to it.
        """
        chunker = Chunker(LINE)
        chunker.add_chunk(b"#12", 1.0)
        chunker.clear()
        chunker.add_chunk(b"3\r\n#4\r\n", 2.0)
        self.assertEqual([Record(2.0, b"#4\r\n")], chunker.take_records())
        self.assertEqual(6, chunker.counters.noise_bytes)

    def test_arguments(self) -> None:
        """
        A chunker needs a sieve and a positive bound, and its patterns must
        be bytes patterns.
        """
        self.assertRaises(ValueError, Chunker, [])
        self.assertRaises(ValueError, Chunker, LINE, max_buffer=0)
        self.assertRaises(TypeError, regex_sieve, re.compile("#.*"))

    def test_emptyMatchesIgnored(self) -> None:
        """
        A pattern that matches the empty string yields no empty records.
        """
        chunker = Chunker(re.compile(rb"x*"))
        chunker.add_chunk(b"abxxc", 1.0)
        self.assertEqual([b"xx"], [r.data for r in chunker.take_records()])

    def test_bufferChunksGiveBytesRecords(self) -> None:
        """
        A chunk given as a C{bytearray} or C{memoryview} (changed by its
        owner afterwards) gives C{bytes} records of what it held when
        added.
        """
        chunker = Chunker(SAMPLE_LINE)
        for kind in (bytearray, memoryview):
            held = bytearray(SAMPLE)
            chunker.add_chunk(kind(held), 1.0)  # type: ignore[arg-type]
            held[:] = b"x" * len(held)
            (record,) = chunker.take_records()
            self.assertIs(type(record.data), bytes)
            self.assertEqual(record.data, SAMPLE)

    def test_severalPatternsInOneSieve(self) -> None:
        """
        One L{regex_sieve} of several patterns finds the records of each,
        and the chunker orders them by position.
        """
        chunker = Chunker(regex_sieve(re.compile(rb"#\d+\r\n"), re.compile(rb"S>")))
        chunker.add_chunk(b"S>#12\r\nS>#3\r\n", 1.0)
        self.assertEqual(
            [b"S>", b"#12\r\n", b"S>", b"#3\r\n"],
            [r.data for r in chunker.take_records()],
        )


class LengthSieveTests(SynchronousTestCase):
    """
    Tests for binary records with L{length_sieve}.
    """

    def test_fragments(self) -> None:
        """
        A binary record arriving in pieces is handed out once complete.
        """
        record = binary_record(b"\x00\x01\r\n\x02")
        chunker = Chunker(BINARY)
        chunker.add_chunk(record[:2], 1.0)
        chunker.add_chunk(record[2:6], 2.0)
        self.assertEqual([], chunker.take_records())
        chunker.add_chunk(record[6:], 3.0)
        self.assertEqual([Record(1.0, record)], chunker.take_records())

    def test_falseSyncSkipped(self) -> None:
        """
        Sync bytes in noise whose checksum fails, or whose length is
        implausible, are not records.
        """
        record = binary_record(b"data")
        bad_checksum = record[:-1] + bytes([record[-1] ^ 0xFF])
        too_short = SYNC + b"\x02"
        chunker = Chunker(BINARY)
        chunker.add_chunk(bad_checksum + too_short + record, 1.0)
        self.assertEqual([record], [r.data for r in chunker.take_records()])
        self.assertEqual(len(bad_checksum) + 3, chunker.counters.noise_bytes)

    def test_syncInPayloadHeldBack(self) -> None:
        """
        While a binary record is incomplete, nothing inside it is taken for
        a record: not a complete binary record in its payload, nor a text
        line another sieve would accept.
        """
        inner = binary_record(b"in")
        outer = binary_record(b"\x00" + inner + b"#1\r\n" + b"tail")
        chunker = Chunker([BINARY, LINE])
        chunker.add_chunk(outer[:-3], 1.0)
        self.assertEqual([], chunker.take_records())
        chunker.add_chunk(outer[-3:], 2.0)
        self.assertEqual([Record(1.0, outer)], chunker.take_records())
        self.assertEqual(0, chunker.counters.noise_bytes)

    def test_headerIncompleteHeldBack(self) -> None:
        """
        A record whose length field has not arrived yet is held as started
        too: its type byte is not taken for a one-byte record.
        """
        typed = length_sieve(
            SYNC,
            length_offset=3,
            length_size=1,
            max_length=255,
            verify=lambda record: _xor(record) == 0,
        )
        body = SYNC + b"!" + b"\x07" + b"ab"
        record = body + bytes([_xor(body)])
        chunker = Chunker([typed, re.compile(rb"!")])
        chunker.add_chunk(record[:3], 1.0)
        self.assertEqual([], chunker.take_records())
        chunker.add_chunk(record[3:], 2.0)
        self.assertEqual([Record(1.0, record)], chunker.take_records())

    def test_recordsBeforeIncompleteOne(self) -> None:
        """
        Records before an incomplete binary record are handed out at once.
        """
        first = binary_record(b"one")
        second = binary_record(b"two")
        chunker = Chunker(BINARY)
        chunker.add_chunk(first + second[:3], 1.0)
        self.assertEqual([Record(1.0, first)], chunker.take_records())

    def test_littleEndianAdjustedLength(self) -> None:
        """
        The length field can be little-endian and count part of the record
        only.
        """
        sieve = length_sieve(
            b"\xa5",
            length_offset=1,
            length_size=2,
            byteorder="little",
            length_adjust=3,
            max_length=100,
        )
        record = b"\xa5\x04\x00" + b"abcd"
        chunker = Chunker(sieve)
        chunker.add_chunk(record + b"\xa5\x04", 1.0)
        self.assertEqual([record], [r.data for r in chunker.take_records()])


_line_records = st.lists(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=5).map(
        lambda numbers: b"#" + b",".join(b"%d" % n for n in numbers) + b"\r\n"
    ),
    max_size=12,
)
# Noise never contains '#' or CR, so it can neither start nor end a line.
_line_noise = st.binary(max_size=12).map(
    lambda data: data.replace(b"#", b"x").replace(b"\r", b"y")
)
# Binary noise never contains the first sync byte.
_binary_noise = st.binary(max_size=12).map(lambda data: data.replace(SYNC[:1], b"z"))
_binary_records = st.lists(st.binary(max_size=40).map(binary_record), max_size=10)


@st.composite
def _streams(
    draw: st.DrawFn,
    records: st.SearchStrategy[list[bytes]],
    noise: st.SearchStrategy[bytes],
) -> tuple[bytes, list[tuple[int, bytes]], list[int], int]:
    """
    Records with noise between, the offset of each record, cut points, and
    the length of the noise after the last record.
    """
    stream = b""
    placed = []
    for record in draw(records):
        stream += draw(noise)
        placed.append((len(stream), record))
        stream += record
    tail = draw(noise)
    stream += tail
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=30))
    return stream, placed, cuts, len(tail)


class ChunkerPropertyTests(SynchronousTestCase):
    """
    Property tests: whatever the chunking and noise, the same records.
    """

    def _check(
        self,
        chunker: Chunker,
        stream: bytes,
        placed: list[tuple[int, bytes]],
        cuts: list[int],
        tail: int,
    ) -> None:
        starts = _feed(chunker, stream, cuts)
        expected = [
            Record(float(_chunk_index(starts, offset)), record)
            for offset, record in placed
        ]
        self.assertEqual(expected, chunker.take_records())
        counters = chunker.counters
        self.assertEqual(len(stream), counters.bytes_added)
        self.assertEqual(tail, chunker.buffered)
        self.assertEqual(
            len(stream) - sum(len(r) for _, r in placed) - tail, counters.noise_bytes
        )
        self.assertTrue(counters.accounted(chunker.buffered))

    @settings(max_examples=300, deadline=None)
    @given(_streams(_line_records, _line_noise))
    def test_lines(
        self, drawn: tuple[bytes, list[tuple[int, bytes]], list[int], int]
    ) -> None:
        """
        Text lines with noise between, cut anywhere, come out whole, in
        order, each with the time of its first byte's chunk.
        """
        self._check(Chunker(LINE), *drawn)

    @settings(max_examples=300, deadline=None)
    @given(_streams(_binary_records, _binary_noise))
    def test_binary(
        self, drawn: tuple[bytes, list[tuple[int, bytes]], list[int], int]
    ) -> None:
        """
        Binary records (whose payloads may hold sync bytes) with noise
        between, cut anywhere, come out whole, in order, each with the time
        of its first byte's chunk.
        """
        self._check(Chunker(BINARY), *drawn)


class _ReferenceChunker(Chunker):
    """
    The chunker as it sifted before sieves that give ordered spans skipped
    the sort, counters were summed per chunk, patterns were scanned
    without their sieve functions and a chunk met with nothing waiting was
    sifted without copying it: every chunk appended to the buffer, every
    span sorted, each counted as it is met.
    """

    def _add(self, data: bytes, timestamp: float) -> None:
        if not data:
            return
        if not self._chunk_times or self._chunk_times[-1] != timestamp:
            self._chunk_starts.append(self._base + len(self._buffer))
            self._chunk_times.append(timestamp)
        self._buffer += data
        self.counters.bytes_added += len(data)
        self._reference_sift()
        excess = len(self._buffer) - self._max_buffer
        if excess > 0:
            del self._buffer[:excess]
            self._base += excess
            self.counters.overflow_bytes += excess
        self._forget_chunks()

    def _reference_sift(self) -> None:
        buffer = bytes(self._buffer)
        complete: list[tuple[int, int]] = []
        started = len(buffer)
        for sieve in self._sieves:
            for start, end in sieve(buffer):
                if end is None:
                    started = min(started, start)
                else:
                    complete.append((start, end))
        if not complete:
            return
        complete.sort(key=lambda span: (span[0], -span[1]))
        counters = self.counters
        cut = 0
        for start, end in complete:
            if start >= started:
                break
            if start < cut:
                counters.overlaps += 1
                continue
            counters.noise_bytes += start - cut
            if start > cut and self._on_noise is not None:
                self._on_noise(buffer[cut:start])
            counters.records += 1
            counters.record_bytes += end - start
            at = bisect.bisect_right(self._chunk_starts, self._base + start) - 1
            self._records.append(Record(self._chunk_times[at], buffer[start:end]))
            cut = end
        if cut:
            del self._buffer[:cut]
            self._base += cut


def _started_at_bang(buffer: bytes) -> list[tuple[int, int | None]]:
    # A callable sieve: "!" starts a record that "!!" completes; spans out
    # of order on purpose.
    spans: list[tuple[int, int | None]] = []
    for match in re.finditer(rb"!(?:!|$)", buffer):
        spans.append((match.start(), match.end() if match.group() == b"!!" else None))
    return spans[::-1]


#: Sieve sets: the SBE 37's (one ordered sieve giving nearly all records),
#: patterns whose matches overlap or start together (the longest wins), a
#: multi-pattern regex sieve, a callable that holds records back, and
#: patterns that match empty text.
_SIEVE_SETS = (
    SBE37_SIEVES,
    (re.compile(rb"SBE37-SMP\r\n"), re.compile(rb"SBE37-SM"), re.compile(rb"37-S")),
    (regex_sieve(re.compile(rb"a+b"), re.compile(rb"ab+")), re.compile(rb"[^!]b\r\n")),
    (re.compile(rb"#[^\r\n!]*\r\n"), _started_at_bang),
    # Patterns that also match empty text (empty matches are no records):
    # a record may follow an empty match at the same byte.
    (re.compile(rb"(?:!!)*b?"), re.compile(rb"|a*\r\n|S")),
)

_JUNKY = st.lists(
    st.sampled_from(
        [
            b"#10.1234, 3.51234, 10.100, 05 Feb 2013, 19:16:59\r\n",
            b"# 10.1, 3.5\r\n",
            b"S>",
            b"SBE37-SMP\r\n",
            b"SBE37-SM",
            b"aabb\r\n",
            b"!",
            b"!!",
            b"\r\n",
        ]
    )
    | st.binary(max_size=8),
    max_size=40,
).map(b"".join)


def _sifted(
    kind: type[Chunker],
    sieves: tuple[Sieve, ...],
    stream: bytes,
    cuts: list[int],
    max_buffer: int,
    *,
    taking: bool = False,
) -> object:
    # Everything a chunker of ``kind`` hands out for the stream cut at
    # ``cuts``: records per chunk, noise with the counters as they were
    # then, the counters at the end.
    seen: list[object] = []

    def noise(data: bytes) -> None:
        seen.append((data, dataclasses.astuple(chunker.counters)))

    chunker = kind(sieves, max_buffer=max_buffer, on_noise=noise)
    edges = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    for number, (start, end) in enumerate(itertools.pairwise(edges)):
        if taking:
            # As a protocol's got_data takes them.
            record = chunker.add_record_chunk(stream[start:end], float(number // 2))
            if record is not None:
                seen.append([Record(float(number // 2), record)])
                continue
        else:
            chunker.add_chunk(stream[start:end], float(number // 2))
        seen.append(chunker.take_records())
    chunker.clear()
    return seen, dataclasses.astuple(chunker.counters)


#: A sieve set, a stream of records and junk, where it is cut into chunks,
#: and a buffer bound: the cases both sifting property tests draw.
_SIFTED_STREAMS = given(
    st.sampled_from(range(len(_SIEVE_SETS))),
    _JUNKY,
    st.lists(st.integers(0, 400), max_size=20),
    st.sampled_from([16, 64, 4096]),
)


class SiftEquivalenceTests(SynchronousTestCase):
    """
    The chunker finds what the reference sifting finds: the same records
    with the same times, the same noise handed out, the same counters seen
    by the noise callback and at the end.
    """

    @settings(max_examples=300, deadline=None)
    @_SIFTED_STREAMS
    def test_same(
        self, which: int, stream: bytes, cuts: list[int], max_buffer: int
    ) -> None:
        """
        Any stream of records and junk, chunked anywhere, bounded or not.
        """
        outcomes = [
            _sifted(kind, _SIEVE_SETS[which], stream, cuts, max_buffer)
            for kind in (Chunker, _ReferenceChunker)
        ]
        self.assertEqual(outcomes[0], outcomes[1])

    @settings(max_examples=300, deadline=None)
    @_SIFTED_STREAMS
    def test_recordChunk(
        self, which: int, stream: bytes, cuts: list[int], max_buffer: int
    ) -> None:
        """
        add_record_chunk, with take_records when it gives no record, hands
        out what add_chunk and take_records do: the same records with the
        same times, noise and counters.
        """
        taken = _sifted(
            Chunker, _SIEVE_SETS[which], stream, cuts, max_buffer, taking=True
        )
        self.assertEqual(
            taken, _sifted(Chunker, _SIEVE_SETS[which], stream, cuts, max_buffer)
        )

    def test_recordChunkReturned(self) -> None:
        """
        A chunk that is one whole record, met with nothing waiting, comes
        back from add_record_chunk (noise before it handed out as noise);
        nothing is queued.
        """
        noise: list[bytes] = []
        chunker = Chunker(SBE37_SIEVES, on_noise=noise.append)
        line = b"#10.1234, 3.51234, 10.100, 05 Feb 2013, 19:16:59\r\n"
        self.assertIs(chunker.add_record_chunk(line, 1.0), line)
        self.assertEqual(chunker.add_record_chunk(b"S>" + line, 2.0), line)
        self.assertEqual(noise, [b"S>"])
        self.assertEqual(chunker.take_records(), [])
        self.assertIsNone(chunker.add_record_chunk(line[:10], 3.0))
        self.assertIsNone(chunker.add_record_chunk(line[10:], 4.0))
        self.assertEqual(chunker.take_records(), [Record(3.0, line)])
        self.assertEqual(chunker.counters.records, 3)
        self.assertTrue(chunker.counters.accounted(chunker.buffered))
