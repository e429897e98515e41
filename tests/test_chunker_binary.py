"""
Tests for binary record framing in L{instrumentd.driver.chunker}: a length
field, a header check before waiting, a checksum, and a banner that marks a
record abandoned part-way.

The records here are a small made-up format shaped like RDI PD0: C{7f 7f},
a little-endian length counting everything but the 2-byte checksum, a
block count that must be 1..8, payload, and the 16-bit sum of the bytes
before it.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.chunker import Chunker, additive_checksum, length_sieve

BANNER = re.compile(rb"\[BREAK Wakeup")


def record(payload: bytes, blocks: int = 1) -> bytes:
    body = b"\x7f\x7f" + (6 + len(payload)).to_bytes(2, "little")
    body += bytes([0, blocks]) + payload
    return body + (sum(body) % 65536).to_bytes(2, "little")


def header(candidate: bytes) -> bool | None:
    if len(candidate) < 6:
        return None
    return 1 <= candidate[5] <= 8


def sieve(**options: object) -> object:
    settings: dict[str, object] = {
        "length_offset": 2,
        "byteorder": "little",
        "length_adjust": 2,
        "min_length": 8,
        "max_length": 4096,
        "verify": additive_checksum(),
        "check_header": header,
        "cut_by": BANNER,
    }
    settings.update(options)
    return length_sieve(b"\x7f\x7f", **settings)  # type: ignore[arg-type]


class AdditiveChecksumTests(SynchronousTestCase):
    """
    L{additive_checksum}.
    """

    def test_verifies(self) -> None:
        """
        A record whose last two bytes are the little-endian sum of the
        others verifies; one byte changed, it does not.
        """
        verify = additive_checksum()
        good = record(b"\x01\x02\xff" * 50)
        self.assertTrue(verify(good))
        self.assertFalse(verify(good[:10] + b"\x00" + good[11:]))
        self.assertFalse(verify(b"\x01"))

    def test_bigEndianFourBytes(self) -> None:
        """
        Size and byte order are the caller's.
        """
        verify = additive_checksum(size=4, byteorder="big")
        self.assertTrue(verify(b"\xff\xff" + (510).to_bytes(4, "big")))


class HeaderCheckTests(SynchronousTestCase):
    """
    A false sync with a huge claimed length does not hold back good records.
    """

    def test_falseSyncDoesNotHoldBack(self) -> None:
        """
        C{7f 7f} followed by a claim of 4000 bytes and an impossible block
        count is rejected at once; the good record after it comes out
        without waiting for 4000 bytes.
        """
        chunker = Chunker(sieve())  # type: ignore[arg-type]
        false = b"\x7f\x7f\xa0\x0f\x00\x63"
        good = record(b"abc")
        chunker.add_chunk(false + good, 1.0)
        self.assertEqual([r.data for r in chunker.take_records()], [good])

    def test_withoutCheckItWaits(self) -> None:
        """
        Without the header check, the same false sync holds the good record
        back (what the check is for).
        """
        chunker = Chunker(sieve(check_header=None))  # type: ignore[arg-type]
        chunker.add_chunk(b"\x7f\x7f\xa0\x0f\x00\x63" + record(b"abc"), 1.0)
        self.assertEqual(chunker.take_records(), [])

    def test_headerWaitsForBytes(self) -> None:
        """
        A header not complete yet (C{None}) holds the candidate until it is.
        """
        chunker = Chunker(sieve())  # type: ignore[arg-type]
        good = record(b"xyz")
        chunker.add_chunk(good[:5], 1.0)
        self.assertEqual(chunker.take_records(), [])
        chunker.add_chunk(good[5:], 2.0)
        self.assertEqual([r.data for r in chunker.take_records()], [good])


class CutRecordTests(SynchronousTestCase):
    """
    A record cut short by a break, then the banner.
    """

    def test_bannerEndsCutRecord(self) -> None:
        """
        A record cut off by the banner is dropped as soon as the banner is
        seen, and a text record after it is not held back by the cut one's
        claimed length.
        """
        text = re.compile(rb"Instrument S/N:[^>]*>")
        chunker = Chunker([sieve(), text])  # type: ignore[list-item]
        cut = record(b"\x00" * 300)[:40]
        reply = b"\r\n[BREAK Wakeup A]\r\n>PS0\r\nInstrument S/N:  18444\r\n>"
        chunker.add_chunk(cut + reply, 1.0)
        self.assertEqual(
            [r.data for r in chunker.take_records()],
            [b"Instrument S/N:  18444\r\n>"],
        )

    @settings(deadline=None)
    @given(
        st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=6),
        st.lists(st.integers(1, 200), max_size=8),
        st.data(),
    )
    def test_anyChunking(
        self, payloads: list[bytes], cuts: list[int], data: st.DataObject
    ) -> None:
        """
        Whole records with junk (text, cut records followed by a banner)
        between them, delivered in any chunks: exactly the whole records
        come out, in order.
        """
        stream = b""
        wanted = []
        for payload in payloads:
            junk = data.draw(
                st.sampled_from(
                    [
                        b"",
                        b"\r\n>",
                        b"\x7f",
                        record(payload + b"!")[: max(1, len(payload) // 2)]
                        + b"\r\n[BREAK Wakeup A]\r\n>",
                    ]
                )
            )
            stream += junk
            whole = record(payload)
            wanted.append(whole)
            stream += whole
        chunker = Chunker(sieve())  # type: ignore[arg-type]
        position = 0
        for size in [*cuts, len(stream)]:
            chunker.add_chunk(stream[position : position + size], 1.0)
            position += size
        got = [r.data for r in chunker.take_records()]
        self.assertEqual(got, wanted)
        self.assertTrue(chunker.counters.accounted(chunker.buffered))


class NoiseHookTests(SynchronousTestCase):
    """
    C{on_noise}: each run of noise, once, so a driver can count damaged
    records.
    """

    def test_eachRunOnce(self) -> None:
        """
        A cut record and a record with a bad checksum, each followed by a
        good one, reach C{on_noise} once each however the stream is cut;
        what L{Chunker.clear} drops does too.
        """
        seen: list[bytes] = []
        chunker = Chunker(sieve(), on_noise=seen.append)  # type: ignore[arg-type]
        bad = bytearray(record(b"bad"))
        bad[-1] ^= 0xFF
        cut = record(b"cut" * 20)[:30] + b"\r\n[BREAK Wakeup A]\r\n>"
        stream = cut + record(b"one") + bytes(bad) + record(b"two") + b"tail"
        for index in range(len(stream)):
            chunker.add_chunk(stream[index : index + 1], 1.0)
        self.assertEqual(len(chunker.take_records()), 2)
        self.assertEqual(seen, [cut, bytes(bad)])
        chunker.clear()
        self.assertEqual(seen[-1], b"tail")
        self.assertTrue(chunker.counters.accounted(chunker.buffered))
