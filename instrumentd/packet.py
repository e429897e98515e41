# -*- test-case-name: tests.test_packet -*-
"""
The port-agent packet: types, encoding, NTP time and an incremental parser.

Every chunk of bytes read from an instrument, and every status, fault,
heartbeat and configuration message of a port agent, travels as a packet: a
16-byte big-endian header followed by an opaque payload.  The same format is
used on a port agent's data port and in its binary datalog, and it is bit for
bit the format of the OOI port agent, so existing clients interoperate.  See
``doc/packet.md`` for the layout.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from functools import partial
from typing import Any, Final, Protocol, cast

__all__ = [
    "HEADER_SIZE",
    "MAX_PACKET_SIZE",
    "MAX_PAYLOAD_SIZE",
    "NTP_ERA",
    "NTP_UNIX_OFFSET",
    "SYNC",
    "Packet",
    "PacketParser",
    "PacketType",
    "ParserCounters",
    "encode_packet",
    "encode_packet_c",
    "encode_packet_python",
    "frame_read",
    "make_packet",
    "ntp_clock",
    "ntp_now",
    "ntp_to_unix",
    "unix_to_ntp",
    "xor_checksum",
    "xor_checksum_python",
]

SYNC: Final = b"\xa3\x9d\x7a"
HEADER_SIZE: Final = 16
MAX_PACKET_SIZE: Final = 0xFFFF
MAX_PAYLOAD_SIZE: Final = MAX_PACKET_SIZE - HEADER_SIZE

#: Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
NTP_UNIX_OFFSET: Final = 2_208_988_800

#: One NTP era in seconds, and the unit of the fraction (2**-32 s).
NTP_ERA: Final = 1 << 32

_HEADER = struct.Struct(">3sBHHII")


class PacketType(IntEnum):
    """
    The packet types, numbered as the Python OOI port agent and the current
    OOI driver client number them.
    """

    UNKNOWN = 0
    DATA_FROM_INSTRUMENT = 1
    DATA_FROM_DRIVER = 2
    PORT_AGENT_COMMAND = 3
    PORT_AGENT_STATUS = 4
    PORT_AGENT_FAULT = 5
    PORT_AGENT_CONFIG = 6
    DIGI_CMD = 7
    DIGI_RSP = 8
    PORT_AGENT_HEARTBEAT = 9
    PICKLED_FROM_INSTRUMENT = 10


_xor_bytes: Callable[[bytes | bytearray | memoryview], int] | None
try:
    from instrumentd._xorfold import xor_bytes as _xor_bytes
except ImportError:  # pragma: no cover - built wherever there is a compiler
    _xor_bytes = None

_NtpClock: (
    Callable[
        [Callable[[], float], Callable[[float], tuple[int, int]]],
        Callable[[], tuple[int, int]],
    ]
    | None
)
#: The C encoder of one packet (:mod:`instrumentd._framing`), or ``None``
#: where it was not built.  It gives what :func:`encode_packet` gives for
#: the plain case (a ``bytes`` payload within one packet, a type of 0-255,
#: a fraction within 32 bits) and ``None`` for anything else, which the
#: Python code then encodes, or rejects with its own error.
encode_packet_c: Callable[[int, bytes, int, int], bytes | None] | None
try:
    from instrumentd._framing import NtpClock as _NtpClock
    from instrumentd._framing import encode_packet as encode_packet_c
except ImportError:  # pragma: no cover - built wherever there is a compiler
    _NtpClock = None
    encode_packet_c = None

#: Bytes turned into one integer at a time by :func:`xor_checksum_python`.  Big
#: enough that the loop runs a handful of times per 64 KiB, small enough
#: that the fold of the last word is cheap; measured best of 2-16 KiB.
_XOR_WORD: Final = 8192


def _fold(value: int, n: int) -> int:
    # XOR the n bytes of ``value`` together by halving it each round.
    while n > 1:
        half = n // 2
        bits = 8 * half
        value = (value >> bits) ^ (value & ((1 << bits) - 1))
        n -= half
    return value


def xor_checksum(data: bytes | bytearray | memoryview) -> int:
    """
    XOR every byte of ``data`` together.

    This is the C accelerator ``instrumentd._xorfold`` where it was built
    (installing builds it when a C compiler is present: a few microseconds
    per 64 KiB), and otherwise :func:`xor_checksum_python`, which gives the
    same answer for every buffer.

    :param data: the bytes to fold (any object with the buffer protocol).
    :returns: the 8-bit XOR of all bytes (0 for empty input).
    """
    if _xor_bytes is not None:
        try:
            return _xor_bytes(data)
        except BufferError:
            # A non-contiguous view: the fold below reads any buffer.
            pass
    return xor_checksum_python(data)


def xor_checksum_python(data: bytes | bytearray | memoryview) -> int:
    """
    XOR every byte of ``data`` together, in pure Python.

    XOR does not care where a byte sits, so the buffer is read as integers
    of :data:`_XOR_WORD` bytes that are XORed into one, and only that one is
    folded down to a byte by halving.  Every step is a C big-integer
    operation; turning the bytes into integers is most of the cost, and the
    shifts and masks of folding the whole buffer are avoided (about 1.4
    times faster on 64 KiB than folding it all; ``bench/checksum.py``).

    :param data: the bytes to fold (any object with the buffer protocol).
    :returns: the 8-bit XOR of all bytes (0 for empty input).
    """
    n = len(data)
    if n <= _XOR_WORD:
        return _fold(int.from_bytes(data, "little"), n)
    from_bytes = int.from_bytes
    word = _XOR_WORD
    value = 0
    with memoryview(data) as view:
        for start in range(0, n, word):
            value ^= from_bytes(view[start : start + word], "little")
    return _fold(value, word)


def unix_to_ntp(unix_time: float) -> tuple[int, int]:
    """
    Convert a Unix time to the NTP seconds and fraction of a packet header.

    The seconds are taken modulo 2**32, so times after the NTP era rollover
    (2036-02-07T06:28:16Z) encode into era 1 instead of failing.

    :param unix_time: seconds since 1970-01-01T00:00:00Z.
    :returns: ``(seconds, fraction)``; fraction in units of 2**-32 s.
    """
    whole = int(unix_time // 1)
    fraction = int((unix_time - whole) * NTP_ERA)
    if fraction >= NTP_ERA:  # float rounding at the very top of a second
        whole, fraction = whole + 1, 0
    return (whole + NTP_UNIX_OFFSET) % NTP_ERA, fraction


def ntp_to_unix(seconds: int, fraction: int, era: int | None = None) -> float:
    """
    Convert NTP header seconds and fraction to a Unix time.

    The 32-bit seconds field does not say which NTP era it belongs to.  With
    ``era=None`` the RFC 4330 rule applies: a value with its top bit set is in
    era 0 (1968-2036), one without it is in era 1 (2036-2104).  That decodes
    every time from 1968 to 2104 correctly, across the 2036 rollover, with no
    clock needed.

    :param seconds: the header's seconds field.
    :param fraction: the header's fraction field, units of 2**-32 s.
    :param era: the NTP era to decode in, or ``None`` for the RFC 4330 window.
    :returns: seconds since 1970-01-01T00:00:00Z.
    """
    if era is None:
        era = 0 if seconds & 0x8000_0000 else 1
    return era * NTP_ERA + seconds + fraction / NTP_ERA - NTP_UNIX_OFFSET


class _Clock(Protocol):
    def seconds(self) -> float: ...


def ntp_now(clock: _Clock | None = None) -> tuple[int, int]:
    """
    The current time as NTP ``(seconds, fraction)``.

    :param clock: an object with ``seconds()`` (such as a reactor or a
        :class:`twisted.internet.task.Clock`), or ``None`` for the system
        clock.
    """
    return unix_to_ntp(time.time() if clock is None else clock.seconds())


def ntp_clock(clock: _Clock) -> Callable[[], tuple[int, int]]:
    """
    A clock's time as NTP: ``ntp_clock(reactor)()`` is
    ``ntp_now(reactor)``.

    Where :mod:`instrumentd._framing` was built this is one C call that
    reads ``clock.seconds()`` and converts a float time as
    :func:`unix_to_ntp` does (any other time it hands to
    :func:`unix_to_ntp` itself); a port agent takes the time of every read
    so.

    :param clock: an object with ``seconds()`` (a reactor, a
        :class:`twisted.internet.task.Clock`).
    :returns: a callable of no arguments returning ``(seconds, fraction)``.
    """
    if _NtpClock is not None:
        return _NtpClock(clock.seconds, unix_to_ntp)
    return partial(ntp_now, clock)


@dataclass(frozen=True, slots=True)
class Packet:
    """
    One port-agent packet.

    :ivar type: the packet type.
    :ivar payload: the payload bytes (at most :data:`MAX_PAYLOAD_SIZE`).
    :ivar seconds: NTP seconds since 1900, modulo 2**32.
    :ivar fraction: NTP fraction of a second, units of 2**-32 s.
    """

    type: PacketType
    payload: bytes
    seconds: int = 0
    fraction: int = 0

    @property
    def ntp_time(self) -> float:
        """
        The timestamp as NTP seconds (era-relative), e.g. ``1.5``.
        """
        return self.seconds + self.fraction / NTP_ERA

    @property
    def unix_time(self) -> float:
        """
        The timestamp as Unix seconds (see :func:`ntp_to_unix` for the era).
        """
        return ntp_to_unix(self.seconds, self.fraction)

    def encode(self) -> bytes:
        """
        The packet on the wire: header with checksum, then payload.

        :raises ValueError: if the payload is too long for one packet.
        """
        return encode_packet(self.type, self.payload, self.seconds, self.fraction)


_new_packet = object.__new__
# The slots' descriptors: setting through them is what the frozen
# dataclass's __init__ does (object.__setattr__), without its checks.
_set_type = cast("Any", Packet).type.__set__
_set_payload = cast("Any", Packet).payload.__set__
_set_seconds = cast("Any", Packet).seconds.__set__
_set_fraction = cast("Any", Packet).fraction.__set__


def make_packet(
    packet_type: PacketType, payload: bytes, seconds: int, fraction: int
) -> Packet:
    """
    ``Packet(packet_type, payload, seconds, fraction)``, made without the
    frozen dataclass's ``__init__``: one per instrument read on the way to
    an in-process driver.

    :param packet_type: the packet type.
    :param payload: the payload.
    :param seconds: NTP seconds.
    :param fraction: NTP fraction.
    :returns: the packet.
    """
    packet: Packet = _new_packet(Packet)
    _set_type(packet, packet_type)
    _set_payload(packet, payload)
    _set_seconds(packet, seconds)
    _set_fraction(packet, fraction)
    return packet


def encode_packet(
    packet_type: int, payload: bytes, seconds: int, fraction: int
) -> bytes:
    """
    Encode one packet.

    :param packet_type: a :class:`PacketType` value.
    :param payload: at most :data:`MAX_PAYLOAD_SIZE` bytes.
    :param seconds: NTP seconds (reduced modulo 2**32).
    :param fraction: NTP fraction, 0 <= fraction < 2**32.
    :returns: the packet bytes.
    :raises ValueError: if the payload is too long.
    """
    if encode_packet_c is not None:
        # The plain case in one C call; None for anything else.
        packet = encode_packet_c(packet_type, payload, seconds, fraction)
        if packet is not None:
            return packet
    return encode_packet_python(packet_type, payload, seconds, fraction)


def encode_packet_python(
    packet_type: int, payload: bytes, seconds: int, fraction: int
) -> bytes:
    """
    :func:`encode_packet` in pure Python: what the C encoder must match,
    and what encodes where it was not built.

    :raises ValueError: if the payload is too long.
    """
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise ValueError(
            f"payload of {len(payload)} bytes exceeds the packet maximum of "
            f"{MAX_PAYLOAD_SIZE}; use frame_read() to split it"
        )
    length = HEADER_SIZE + len(payload)
    header = _HEADER.pack(SYNC, packet_type, length, 0, seconds % NTP_ERA, fraction)
    if _xor_bytes is not None and payload.__class__ is bytes:
        # The C fold itself: a packet a read, so the wrapper's frames count.
        checksum = _xor_bytes(header) ^ _xor_bytes(payload)
    else:
        checksum = xor_checksum(header) ^ xor_checksum(payload)
    return header[:6] + checksum.to_bytes(2, "big") + header[8:] + payload


def frame_read(
    packet_type: int, data: bytes, seconds: int, fraction: int
) -> Iterator[bytes]:
    """
    Frame one read as packets, splitting it if it is longer than one packet
    can carry; every packet carries the same timestamp.

    :param packet_type: a :class:`PacketType` value.
    :param data: the bytes read; empty data gives one empty packet.
    :param seconds: NTP seconds of the read.
    :param fraction: NTP fraction of the read.
    :returns: an iterator of encoded packets.
    """
    if len(data) <= MAX_PAYLOAD_SIZE:
        yield encode_packet(packet_type, data, seconds, fraction)
        return
    view = memoryview(data)
    for start in range(0, len(data), MAX_PAYLOAD_SIZE):
        yield encode_packet(
            packet_type,
            bytes(view[start : start + MAX_PAYLOAD_SIZE]),
            seconds,
            fraction,
        )


@dataclass
class ParserCounters:
    """
    What a :class:`PacketParser` has seen besides good packets.

    :ivar packets: good packets delivered.
    :ivar junk_bytes: bytes skipped while looking for a sync pattern.
    :ivar bad_length: headers with a length below the header size.
    :ivar bad_checksum: packets whose checksum did not verify.
    :ivar bad_type: packets of a type number this format does not define.
    """

    packets: int = 0
    junk_bytes: int = 0
    bad_length: int = 0
    bad_checksum: int = 0
    bad_type: int = 0

    def add(self, other: ParserCounters) -> None:
        """
        Add another parser's counts to these (e.g. totals over files).
        """
        self.packets += other.packets
        self.junk_bytes += other.junk_bytes
        self.bad_length += other.bad_length
        self.bad_checksum += other.bad_checksum
        self.bad_type += other.bad_type

    @property
    def bad_packets(self) -> int:
        """
        All rejected packets, whatever the reason.
        """
        return self.bad_length + self.bad_checksum + self.bad_type


@dataclass
class PacketParser:
    """
    An incremental parser for a stream of packets.

    Feed it byte chunks of any size with :meth:`feed`; it returns the complete
    packets they finish.  It searches for the sync bytes, skipping and counting
    junk before them; it waits for the whole packet; it verifies every
    checksum.  A header with a length below 16, an unknown type or a bad
    checksum is counted and skipped by advancing one byte past that sync, so
    the parser resynchronises and a sync pattern inside a payload cannot
    derail it.  It never raises on bad input.

    :ivar counters: what was seen besides good packets.
    """

    counters: ParserCounters = field(default_factory=ParserCounters)
    _buffer: bytearray = field(default_factory=bytearray, repr=False)

    @property
    def pending(self) -> int:
        """
        Bytes held while waiting for the rest of a packet.
        """
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet]:
        """
        Add bytes and return every packet they complete, in order.

        :param data: the next chunk of the stream.
        :returns: the complete, verified packets.
        """
        buf = self._buffer
        buf += data
        out: list[Packet] = []
        counters = self.counters
        while True:
            start = buf.find(SYNC)
            if start < 0:
                # Keep a tail that could be the start of a sync pattern.
                keep = (
                    2 if buf.endswith(SYNC[:2]) else 1 if buf.endswith(SYNC[:1]) else 0
                )
                dropped = len(buf) - keep
                if dropped:
                    counters.junk_bytes += dropped
                    del buf[:dropped]
                return out
            if start:
                counters.junk_bytes += start
                del buf[:start]
            if len(buf) < HEADER_SIZE:
                return out
            _sync, ptype, length, _ck, seconds, fraction = _HEADER.unpack_from(buf)
            if length < HEADER_SIZE:
                counters.bad_length += 1
                del buf[:1]
                continue
            if len(buf) < length:
                return out
            view = memoryview(buf)[:length]
            valid = view[6] == 0 and xor_checksum(view) == 0
            view.release()
            if not valid:
                counters.bad_checksum += 1
                del buf[:1]
                continue
            try:
                kind = PacketType(ptype)
            except ValueError:
                # The checksum verified, so the length is trustworthy: skip
                # the whole packet rather than hunting inside its payload.
                counters.bad_type += 1
                del buf[:length]
                continue
            out.append(Packet(kind, bytes(buf[HEADER_SIZE:length]), seconds, fraction))
            counters.packets += 1
            del buf[:length]
