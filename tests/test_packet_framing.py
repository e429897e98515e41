"""
Tests for L{instrumentd._framing}, the packet's framing in C: it encodes a
packet and converts a time to NTP exactly as the Python code of
L{instrumentd.packet} does, on the same input, at the limits, and leaves
everything else to that code; and the Python code serves alone where the
extension was not built.
"""

from __future__ import annotations

import math
import random
import struct
from functools import partial
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from instrumentd import packet
from instrumentd.packet import (
    MAX_PAYLOAD_SIZE,
    NTP_UNIX_OFFSET,
    PacketType,
    encode_packet,
    encode_packet_python,
    ntp_clock,
    ntp_now,
    unix_to_ntp,
    xor_checksum,
)

try:
    from instrumentd import _framing
except ImportError:  # pragma: no cover - built wherever there is a compiler
    _framing = None  # type: ignore[assignment]


def _needs_c() -> Any:
    if _framing is None:  # pragma: no cover - built wherever there is a compiler
        raise SkipTest("instrumentd._framing was not built here")
    return _framing


#: Payloads at and around the sizes that matter: empty, the eight bytes the
#: checksum folds at a time, bytes that look like a header, every byte
#: value, and the largest payload a packet carries.
def _payloads() -> list[bytes]:
    rng = random.Random(18)
    out = [b"", b"\x00", b"\xff", b"\xa3\x9d\x7a" * 6, bytes(range(256))]
    out += [rng.randbytes(n) for n in (*range(1, 40), 63, 64, 65, 1000, 4096)]
    out += [rng.randbytes(MAX_PAYLOAD_SIZE), b"\xff" * MAX_PAYLOAD_SIZE]
    return out


class EncodeAgreesTests(SynchronousTestCase):
    """
    The C encoder gives the Python encoder's bytes for every plain input,
    and C{None} for anything else, which L{encode_packet} then hands to the
    Python encoder (its bytes, or its error).
    """

    def test_payloads(self) -> None:
        """
        Every payload size up to the largest, with header-like and 0xFF
        bytes, encodes to the same bytes, whose checksum verifies.
        """
        c = _needs_c()
        for payload in _payloads():
            want = encode_packet_python(1, payload, 0xDB300300, 0x80000000)
            got = c.encode_packet(1, payload, 0xDB300300, 0x80000000)
            self.assertEqual(got, want, len(payload))
            self.assertEqual(xor_checksum(got), 0)
            self.assertEqual(encode_packet(1, payload, 0xDB300300, 0x80000000), want)

    def test_typesAndTimes(self) -> None:
        """
        Every type 0-255 (an L{PacketType} or a plain int), and seconds at
        and past the 32-bit limits (negative ones, huge ones: reduced
        modulo 2**32 as Python reduces them), with fractions at the limits.
        """
        c = _needs_c()
        seconds = [0, 1, 2**31, 2**32 - 1, 2**32, 2**32 + 5, -1, -(2**40) - 3]
        seconds += [2**64 + 7, 2**100 + 9, -(2**100), True]
        for ptype in [*range(256), *PacketType]:
            for secs in seconds:
                for frac in (0, 1, 2**31, 2**32 - 1):
                    want = encode_packet_python(ptype, b"xy", secs, frac)
                    self.assertEqual(
                        c.encode_packet(ptype, b"xy", secs, frac),
                        want,
                        (ptype, secs, frac),
                    )

    def test_unusualLeftToPython(self) -> None:
        """
        A payload too long, not of type C{bytes}, a type or fraction out of
        range or not an int: the C encoder returns C{None}, and
        L{encode_packet} gives what the Python encoder gives, its error
        too.
        """
        c = _needs_c()

        class Bytes(bytes):
            pass

        for payload in (bytearray(b"abc"), memoryview(b"abc"), Bytes(b"abc")):
            self.assertIsNone(c.encode_packet(1, payload, 0, 0))
            self.assertEqual(
                encode_packet(1, payload, 5, 6),  # type: ignore[arg-type]
                encode_packet_python(1, payload, 5, 6),  # type: ignore[arg-type]
            )
        too_long = b"x" * (MAX_PAYLOAD_SIZE + 1)
        self.assertIsNone(c.encode_packet(1, too_long, 0, 0))
        error = self.assertRaises(ValueError, encode_packet, 1, too_long, 0, 0)
        self.assertIn("65520 bytes exceeds the packet maximum", str(error))
        for args in [
            (256, b"", 0, 0),
            (-1, b"", 0, 0),
            (2**70, b"", 0, 0),
            (1, b"", 0, 2**32),
            (1, b"", 0, -1),
            (1, b"", 0, 2**70),
            (1, b"", 0.5, 0),
            (1.0, b"", 0, 0),
            (1, b"", 0, 0.0),
        ]:
            self.assertIsNone(c.encode_packet(*args), args)
            with self.assertRaises(struct.error):
                encode_packet(*args)
            with self.assertRaises(struct.error):
                encode_packet_python(*args)

    def test_arguments(self) -> None:
        """
        The C encoder takes exactly four arguments.
        """
        c = _needs_c()
        self.assertRaises(TypeError, c.encode_packet, 1, b"", 0)
        self.assertRaises(TypeError, c.encode_packet, 1, b"", 0, 0, 0)


#: Unix times at the edges of the conversion: whole seconds and their
#: neighbours, the NTP era's end (2036), the Unix and NTP epochs and before
#: them, fractions that round up to a whole second, the largest floats
#: still converted in C.
def _times() -> list[float]:
    era_end = float(2**32 - NTP_UNIX_OFFSET)
    edges = [0.0, -0.0, 0.5, 1.0, 1.5, 1e-300, 5e-324, -1e-20, -0.5, -1.0]
    edges += [1_800_000_000.0, 1_800_000_000.999_999_9, era_end, era_end - 1e-6]
    edges += [float(-NTP_UNIX_OFFSET), float(-NTP_UNIX_OFFSET) - 0.25]
    edges += [2.0**52 + 0.5, 2.0**53 - 1, -(2.0**53) + 1, 1e15 + 0.125]
    edges += [math.nextafter(1.0, 0.0), math.nextafter(-1.0, 0.0)]
    edges += [math.nextafter(era_end, 0.0), math.nextafter(2.0**31, math.inf)]
    rng = random.Random(37)
    edges += [rng.uniform(0, 4e9) for _ in range(2000)]
    edges += [rng.uniform(-4e9, 0) for _ in range(500)]
    edges += [rng.uniform(-1, 1) for _ in range(500)]
    return edges


class NtpAgreesTests(SynchronousTestCase):
    """
    The C conversion of a time to NTP gives L{unix_to_ntp}'s seconds and
    fraction, and hands it what is not a plain float within 2**53 s.
    """

    def test_times(self) -> None:
        """
        Every time of L{_times} converts as L{unix_to_ntp} converts it.
        """
        c = _needs_c()

        def never(t: float) -> tuple[int, int]:
            raise AssertionError(f"{t!r} went to the fallback")

        for t in _times():
            self.assertEqual(c.ntp_of(t, never), unix_to_ntp(t), repr(t))

    def test_unusualLeftToPython(self) -> None:
        """
        Ints, float subclasses, floats of 2**53 and more, infinities and
        NaN go to the fallback, whose answer or error is the result.
        """
        c = _needs_c()

        class Seconds(float):
            pass

        for t in [5, 2**80, Seconds(1.5), 2.0**53, -(2.0**53), 1e300]:
            self.assertEqual(c.ntp_of(t, unix_to_ntp), unix_to_ntp(t), repr(t))
            self.assertEqual(c.ntp_of(t, lambda _: (1, 2)), (1, 2))
        for bad in (math.inf, -math.inf, math.nan):
            with self.assertRaises((OverflowError, ValueError)):
                unix_to_ntp(bad)
            with self.assertRaises((OverflowError, ValueError)):
                c.ntp_of(bad, unix_to_ntp)


class NtpClockTests(SynchronousTestCase):
    """
    L{ntp_clock} reads its clock as NTP: what L{ntp_now} gives, with the C
    clock or without it.
    """

    def check(self) -> None:
        clock = Clock()
        now = ntp_clock(clock)
        for t in [0.0, 1_800_000_000.25, -0.000_000_1, 2.0**60, 1234.999_999_999]:
            clock.rightNow = t
            self.assertEqual(now(), ntp_now(clock), repr(t))
        clock.rightNow = 7  # an int, as a clock might give
        self.assertEqual(now(), ntp_now(clock))

    def test_c(self) -> None:
        """
        Where the extension was built, the clock is the C one, and agrees.
        """
        c = _needs_c()
        self.assertIsInstance(ntp_clock(Clock()), c.NtpClock)
        self.check()

    def test_python(self) -> None:
        """
        Without the extension, the clock is L{ntp_now} of the clock.
        """
        self.patch(packet, "_NtpClock", None)
        now = ntp_clock(Clock())
        self.assertIsInstance(now, partial)
        self.check()

    def test_errors(self) -> None:
        """
        The C clock takes no arguments, needs callables, and passes on the
        clock's own error.
        """
        c = _needs_c()

        def broken() -> float:
            raise RuntimeError("no time")

        now = c.NtpClock(broken, unix_to_ntp)
        self.assertRaises(RuntimeError, now)
        self.assertRaises(TypeError, c.NtpClock(Clock().seconds, unix_to_ntp), 1)
        self.assertRaises(TypeError, c.NtpClock, 1, unix_to_ntp)
        self.assertRaises(TypeError, c.NtpClock, Clock().seconds)


class PythonEncoderTests(SynchronousTestCase):
    """
    Without the extension, L{encode_packet} is the Python encoder alone.
    """

    def test_withoutExtension(self) -> None:
        """
        With no C encoder, every payload of L{_payloads} encodes as the
        Python encoder does, and a payload too long is still an error.
        """
        self.patch(packet, "encode_packet_c", None)
        for payload in _payloads():
            self.assertEqual(
                encode_packet(4, payload, 3, 9), encode_packet_python(4, payload, 3, 9)
            )
        self.assertRaises(
            ValueError, encode_packet, 1, b"x" * (MAX_PAYLOAD_SIZE + 1), 0, 0
        )
