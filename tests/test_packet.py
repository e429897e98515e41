"""
Tests for L{instrumentd.packet}: the spec's conformance vectors, splitting,
NTP time across the 2036 rollover, and the incremental parser under
arbitrary chunking, junk and corruption.
"""

from __future__ import annotations

import calendar
import dataclasses
import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from instrumentd import packet
from instrumentd.packet import (
    HEADER_SIZE,
    MAX_PACKET_SIZE,
    MAX_PAYLOAD_SIZE,
    SYNC,
    Packet,
    PacketParser,
    PacketType,
    encode_packet,
    frame_read,
    make_packet,
    ntp_to_unix,
    unix_to_ntp,
    xor_checksum,
    xor_checksum_python,
)

VECTORS = [
    (
        PacketType.DATA_FROM_DRIVER,
        b"ad",
        1,
        0x80000000,
        0x00D0,
        "a39d7a02001200d000000001800000006164",
    ),
    (
        PacketType.PORT_AGENT_HEARTBEAT,
        b"HB",
        0xDB300300,
        0x80000000,
        0x003D,
        "a39d7a090012003ddb300300800000004842",
    ),
    (
        PacketType.PORT_AGENT_STATUS,
        b"CONNECTED",
        0xDB300300,
        0x80000000,
        0x006E,
        "a39d7a040019006edb30030080000000434f4e4e4543544544",
    ),
]


def naive_xor(data: bytes) -> int:
    value = 0
    for b in data:
        value ^= b
    return value


def whole_fold_xor(data: bytes | bytearray | memoryview) -> int:
    """
    The checksum as it was first written: the whole buffer as one integer,
    halved until one byte is left.  Kept as a second reference.
    """
    n = len(data)
    if n == 0:
        return 0
    value = int.from_bytes(data, "big")
    while n > 1:
        half = n // 2
        bits = 8 * half
        value = (value >> bits) ^ (value & ((1 << bits) - 1))
        n -= half
    return value


class ChecksumTests(SynchronousTestCase):
    """
    L{xor_checksum} equals the byte-by-byte XOR for any input.
    """

    @given(st.binary(max_size=3000))
    def test_matchesNaive(self, data: bytes) -> None:
        """
        The folding checksum agrees with a per-byte loop.
        """
        self.assertEqual(xor_checksum(data), naive_xor(data))

    def test_large(self) -> None:
        """
        A maximum-size payload folds correctly.
        """
        data = bytes(range(256)) * 255 + b"\x07" * 239
        self.assertEqual(xor_checksum(data), naive_xor(data))

    @settings(max_examples=300, deadline=None)
    @given(
        st.integers(min_value=0, max_value=3 * MAX_PACKET_SIZE),
        st.integers(min_value=0, max_value=15),
        st.integers(min_value=0, max_value=2**32 - 1),
        st.sampled_from(["bytes", "bytearray", "memoryview"]),
    )
    def test_anyLengthAndAlignment(
        self, length: int, offset: int, seed: int, kind: str
    ) -> None:
        """
        For any length up to three maximum packets, at any start offset
        within a buffer (so words are not 8-byte aligned), and for bytes,
        bytearrays and memoryviews alike, the checksum is bit for bit the
        per-byte XOR and the whole-buffer fold it replaced.
        """
        raw = random.Random(seed).randbytes(offset + length)
        data: bytes | bytearray | memoryview
        if kind == "bytes":
            data = raw[offset:]
        elif kind == "bytearray":
            data = bytearray(raw)[offset:]
        else:
            data = memoryview(raw)[offset:]
        expected = naive_xor(raw[offset:])
        self.assertEqual(whole_fold_xor(data), expected)
        self.assertEqual(xor_checksum(data), expected)
        self.assertEqual(xor_checksum_python(data), expected)

    def test_lengthsAroundWords(self) -> None:
        """
        Lengths at and either side of multiples of the word the checksum
        reads at a time, where a short last word must still be counted.
        """
        rng = random.Random(18)
        for words in range(5):
            for delta in (-2, -1, 0, 1, 2):
                length = max(0, words * 8192 + delta)
                data = rng.randbytes(length)
                self.assertEqual(xor_checksum(data), naive_xor(data), length)
                self.assertEqual(xor_checksum_python(data), naive_xor(data), length)

    def test_lengthsAroundLanes(self) -> None:
        """
        Lengths at and either side of multiples of the eight bytes the C
        checksum reads at a time, at every alignment: the tail bytes after
        the last whole word still count.
        """
        rng = random.Random(8)
        raw = rng.randbytes(80)
        for offset in range(8):
            for length in range(70):
                data = memoryview(raw)[offset : offset + length]
                self.assertEqual(
                    xor_checksum(data), naive_xor(bytes(data)), (offset, length)
                )

    def test_nonContiguousView(self) -> None:
        """
        A view that is not contiguous (every other byte) is folded too: the
        C checksum cannot take it, so the pure-Python fold does.
        """
        raw = random.Random(5).randbytes(20_001)
        view = memoryview(raw)[::2]
        self.assertEqual(xor_checksum(view), naive_xor(raw[::2]))

    def test_acceleratorAgrees(self) -> None:
        """
        Where the C checksum was built, it is what L{xor_checksum} uses, and
        it rejects what is not a buffer as the Python fold does.
        """
        if packet._xor_bytes is None:
            raise SkipTest("instrumentd._xorfold was not built here")
        data = random.Random(9).randbytes(65_519)
        self.assertEqual(packet._xor_bytes(data), naive_xor(data))
        self.assertRaises(TypeError, packet._xor_bytes, "text")
        self.assertRaises(TypeError, xor_checksum_python, "text")

    def test_bufferStaysResizable(self) -> None:
        """
        The checksum holds no view of a bytearray after it returns, so the
        parser can still cut consumed bytes off its buffer.
        """
        buf = bytearray(random.Random(3).randbytes(40_000))
        with memoryview(buf) as view:
            xor_checksum(view[:30_000])
        xor_checksum(buf)
        del buf[:10]
        self.assertEqual(len(buf), 39_990)


class EncodeTests(SynchronousTestCase):
    """
    Encoding reproduces the spec's vectors bit for bit.
    """

    def test_vectors(self) -> None:
        """
        P1, P2 and P3 encode to the published bytes and checksums.
        """
        for ptype, payload, secs, frac, checksum, hexed in VECTORS:
            encoded = encode_packet(ptype, payload, secs, frac)
            self.assertEqual(encoded.hex(), hexed)
            self.assertEqual(struct.unpack(">H", encoded[6:8])[0], checksum)
            self.assertEqual(xor_checksum(encoded), 0)

    def test_vectorsParse(self) -> None:
        """
        The vectors parse back to the packets they came from.
        """
        stream = b"".join(bytes.fromhex(v[5]) for v in VECTORS)
        packets = PacketParser().feed(stream)
        self.assertEqual(
            packets, [Packet(PacketType(v[0]), v[1], v[2], v[3]) for v in VECTORS]
        )
        self.assertEqual(packets[0].ntp_time, 1.5)

    def test_lengthIsTotal(self) -> None:
        """
        The length field counts the header too; an empty payload is 16.
        """
        encoded = encode_packet(PacketType.PORT_AGENT_STATUS, b"", 0, 0)
        self.assertEqual(len(encoded), HEADER_SIZE)
        self.assertEqual(struct.unpack(">H", encoded[4:6])[0], HEADER_SIZE)

    def test_tooLong(self) -> None:
        """
        One packet cannot carry more than 65519 bytes; the error says so.
        """
        e = self.assertRaises(
            ValueError, encode_packet, 1, b"x" * (MAX_PAYLOAD_SIZE + 1), 0, 0
        )
        self.assertIn("65519", str(e))

    def test_maximumPayload(self) -> None:
        """
        A 65519-byte payload fits in one packet of length 65535.
        """
        payload = bytes(range(256)) * 255 + b"\xa3\x9d\x7a" * 79 + b"zz"
        self.assertEqual(len(payload), MAX_PAYLOAD_SIZE)
        encoded = encode_packet(1, payload, 5, 6)
        self.assertEqual(encoded[4:6], b"\xff\xff")
        self.assertEqual(
            PacketParser().feed(encoded), [Packet(PacketType(1), payload, 5, 6)]
        )


class FrameReadTests(SynchronousTestCase):
    """
    A long read is split into packets that share one timestamp.
    """

    def test_split(self) -> None:
        """
        150000 bytes become three packets, the same time on each, and the
        payloads concatenate to the read.
        """
        data = bytes(i % 251 for i in range(150000))
        packets = PacketParser().feed(b"".join(frame_read(1, data, 77, 99)))
        self.assertEqual([len(p.payload) for p in packets], [65519, 65519, 18962])
        self.assertEqual({(p.seconds, p.fraction) for p in packets}, {(77, 99)})
        self.assertEqual(b"".join(p.payload for p in packets), data)

    def test_exact(self) -> None:
        """
        A read of exactly one packet's capacity is not split.
        """
        self.assertEqual(len(list(frame_read(1, b"x" * MAX_PAYLOAD_SIZE, 0, 0))), 1)

    def test_empty(self) -> None:
        """
        An empty payload still gives one (empty) packet.
        """
        self.assertEqual(list(frame_read(4, b"", 0, 0)), [encode_packet(4, b"", 0, 0)])


class TimeTests(SynchronousTestCase):
    """
    NTP time both ways, across the 2036 era rollover.
    """

    def test_vectorTime(self) -> None:
        """
        P2's time is 2016-07-13T00:00:00.5Z.
        """
        expected = calendar.timegm((2016, 7, 13, 0, 0, 0)) + 0.5
        self.assertEqual(ntp_to_unix(0xDB300300, 0x80000000), expected)
        self.assertEqual(unix_to_ntp(expected), (0xDB300300, 0x80000000))

    def test_notUnixSeconds(self) -> None:
        """
        The seconds field is NTP, not Unix: the epoch is 1900.
        """
        self.assertEqual(unix_to_ntp(0.0), (2208988800, 0))

    def test_fractionIsBinary(self) -> None:
        """
        The fraction is in units of 2**-32 s, not decimal digits.
        """
        self.assertEqual(unix_to_ntp(0.25)[1], 1 << 30)
        self.assertEqual(ntp_to_unix(2208988800, 1 << 30), 0.25)

    def test_eraWrap(self) -> None:
        """
        2036-02-07T06:28:16Z encodes as seconds 0 of era 1 and decodes back;
        times on either side of it round-trip.
        """
        wrap = calendar.timegm((2036, 2, 7, 6, 28, 16))
        self.assertEqual(unix_to_ntp(wrap), (0, 0))
        for t in (wrap - 1.5, wrap, wrap + 0.5, wrap + 86400 * 365 * 50):
            secs, frac = unix_to_ntp(t)
            self.assertLess(abs(ntp_to_unix(secs, frac) - t), 1e-6)

    def test_explicitEra(self) -> None:
        """
        An explicit era overrides the RFC 4330 window.
        """
        self.assertEqual(ntp_to_unix(1, 1 << 31, era=0), 1.5 - 2208988800)

    @given(st.floats(min_value=-60 * 365 * 86400, max_value=4e9, allow_nan=False))
    def test_roundTrip(self, t: float) -> None:
        """
        Any time from 1910 to 2096 encodes into the 32-bit fields, and every
        time in the RFC 4330 window round-trips to within a microsecond.
        """
        secs, frac = unix_to_ntp(t)
        self.assertTrue(0 <= secs < 1 << 32 and 0 <= frac < 1 << 32)
        if t >= -(0x7FFFFFFF - 2208988800):  # inside the RFC 4330 window
            self.assertLess(abs(ntp_to_unix(secs, frac) - t), 1e-6)


packet_strategy = st.builds(
    Packet,
    st.sampled_from(list(PacketType)),
    st.binary(max_size=300) | st.just(SYNC * 5),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
junk_strategy = st.binary(max_size=40).map(lambda b: b.replace(b"\xa3", b"\x00"))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in [*points, len(data)]:
        pieces.append(data[last:p])
        last = p
    return pieces


class ParserTests(SynchronousTestCase):
    """
    The incremental parser.
    """

    @settings(max_examples=200)
    @given(
        st.lists(st.tuples(packet_strategy, junk_strategy), max_size=12),
        st.lists(st.integers(0, 10**6), max_size=30),
    )
    def test_anyChunking(
        self, items: list[tuple[Packet, bytes]], cuts: list[int]
    ) -> None:
        """
        Any packet sequence with junk between packets, cut into any chunks,
        parses back to the same packets, and the junk is counted.
        """
        stream = b"".join(junk + p.encode() for p, junk in items)
        parser = PacketParser()
        out: list[Packet] = []
        for piece in chunked(stream, cuts):
            out.extend(parser.feed(piece))
        self.assertEqual(out, [p for p, _ in items])
        self.assertEqual(parser.counters.junk_bytes, sum(len(j) for _, j in items))
        self.assertEqual(parser.counters.bad_packets, 0)

    @settings(max_examples=200)
    @given(
        st.lists(packet_strategy, min_size=1, max_size=8),
        st.data(),
    )
    def test_corruption(self, packets: list[Packet], data: st.DataObject) -> None:
        """
        Flipping a byte in one packet loses at most that packet, never
        raises, and is counted; every intact packet is still delivered.
        """
        victim = data.draw(st.integers(0, len(packets) - 1))
        encoded = [p.encode() for p in packets]
        where = data.draw(st.integers(3, len(encoded[victim]) - 1))
        flip = data.draw(st.integers(1, 255))
        broken = bytearray(encoded[victim])
        broken[where] ^= flip
        encoded[victim] = bytes(broken)
        parser = PacketParser()
        out: list[Packet] = []
        for byte_at_a_time in (
            b"".join(encoded)[i : i + 1] for i in range(sum(map(len, encoded)))
        ):
            out.extend(parser.feed(byte_at_a_time))
        # Flushing: a corrupt length may leave the parser waiting for bytes
        # that never come; a following packet stream releases it.
        tail = [Packet(PacketType.PORT_AGENT_HEARTBEAT, b"HB", 1, 2)] * 5
        tail_bytes = b"".join(p.encode() for p in tail) + b"\x00" * 65536
        out.extend(parser.feed(tail_bytes))
        intact = [p for i, p in enumerate(packets) if i != victim]
        remaining = [p for p in out if p not in tail or p in packets]
        for p in intact:
            self.assertIn(p, remaining)
        self.assertTrue(
            parser.counters.bad_packets + parser.counters.junk_bytes > 0
            or packets[victim] not in out
        )

    def test_falseSyncInPayload(self) -> None:
        """
        Sync bytes inside a payload do not derail the parser.
        """
        inner = encode_packet(1, b"inner", 3, 4)
        outer = Packet(PacketType.DATA_FROM_INSTRUMENT, SYNC + inner + SYNC, 1, 2)
        self.assertEqual(PacketParser().feed(outer.encode()), [outer])

    def test_badChecksumResync(self) -> None:
        """
        A packet with a bad checksum is skipped and counted, and the next
        good packet is found.
        """
        bad = bytearray(encode_packet(1, b"payload", 1, 2))
        bad[-1] ^= 0x40
        good = encode_packet(1, b"next", 1, 2)
        parser = PacketParser()
        self.assertEqual(
            parser.feed(bytes(bad) + good), [Packet(PacketType(1), b"next", 1, 2)]
        )
        self.assertEqual(parser.counters.bad_checksum, 1)

    def test_checksumHighByte(self) -> None:
        """
        A checksum field with a non-zero high byte is rejected even if the
        XOR happens to be 0.
        """
        bad = bytearray(encode_packet(1, b"x", 0, 0))
        bad[6] ^= 0x55
        bad[16] ^= 0x55
        parser = PacketParser()
        self.assertEqual(parser.feed(bytes(bad)), [])
        self.assertEqual(parser.counters.bad_checksum, 1)

    def test_badLength(self) -> None:
        """
        A header whose length is below 16 is skipped and counted.
        """
        bad = bytearray(encode_packet(1, b"abc", 0, 0))
        bad[4:6] = b"\x00\x05"
        good = encode_packet(4, b"OK", 0, 0)
        parser = PacketParser()
        self.assertEqual(
            parser.feed(bytes(bad) + good), [Packet(PacketType(4), b"OK", 0, 0)]
        )
        self.assertEqual(parser.counters.bad_length, 1)

    def test_unknownType(self) -> None:
        """
        A verified packet of an undefined type is skipped whole and counted.
        """
        odd = encode_packet(42, SYNC + b"zz", 0, 0)
        good = encode_packet(4, b"OK", 0, 0)
        parser = PacketParser()
        self.assertEqual(parser.feed(odd + good), [Packet(PacketType(4), b"OK", 0, 0)])
        self.assertEqual(parser.counters.bad_type, 1)
        self.assertEqual(parser.counters.junk_bytes, 0)

    def test_partialSyncKept(self) -> None:
        """
        A chunk ending in the first bytes of a sync pattern keeps them.
        """
        parser = PacketParser()
        packet = encode_packet(1, b"z", 0, 0)
        self.assertEqual(parser.feed(b"junk" + packet[:2]), [])
        self.assertEqual(parser.pending, 2)
        self.assertEqual(parser.feed(packet[2:]), [Packet(PacketType(1), b"z", 0, 0)])
        self.assertEqual(parser.counters.junk_bytes, 4)


class MakePacketTests(SynchronousTestCase):
    """
    L{make_packet} makes what the dataclass's constructor makes.
    """

    def test_same(self) -> None:
        """
        Equal, the same repr and wire form, hashable alike, and frozen.
        """
        made = make_packet(PacketType.DATA_FROM_INSTRUMENT, b"abc", 7, 1 << 31)
        expected = Packet(PacketType.DATA_FROM_INSTRUMENT, b"abc", 7, 1 << 31)
        self.assertIs(type(made), Packet)
        self.assertEqual(made, expected)
        self.assertEqual(repr(made), repr(expected))
        self.assertEqual(hash(made), hash(expected))
        self.assertEqual(made.encode(), expected.encode())
        self.assertEqual(made.ntp_time, 7.5)
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, made, "seconds", 1)
