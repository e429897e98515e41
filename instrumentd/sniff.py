# -*- test-case-name: tests.test_sniff -*-
"""
One-line text rendering of packets, for sniff clients and the datalog tool.

A line is ``TIME TYPE PAYLOAD``: the packet's time as UTC ISO 8601 with
microseconds, the packet type's name, and the payload as escaped text in
which printable ASCII stands for itself, ``\\r``, ``\\n``, ``\\t`` and ``\\\\``
are escaped, and every other byte is ``\\xNN``.  A line never contains a raw
newline, so a reader can split on ``\\n``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from instrumentd.packet import PacketType, ntp_to_unix

__all__ = ["escape_payload", "format_utc", "sniff_line"]

_ESCAPES: dict[int, str] = {b: f"\\x{b:02x}" for b in range(256)}
_ESCAPES.update({b: chr(b) for b in range(0x20, 0x7F)})
_ESCAPES.update({0x5C: "\\\\", 0x0D: "\\r", 0x0A: "\\n", 0x09: "\\t"})
_TABLE = str.maketrans({chr(b): text for b, text in _ESCAPES.items()})


def escape_payload(payload: bytes) -> str:
    """
    Render bytes as escaped, single-line text.

    :param payload: any bytes.
    :returns: text with no raw control characters.
    """
    return payload.decode("latin-1").translate(_TABLE)


def format_utc(unix_time: float) -> str:
    """
    Format a Unix time as UTC ISO 8601 with microseconds, e.g.
    ``2016-07-13T00:00:00.500000Z``.
    """
    stamp = datetime.fromtimestamp(unix_time, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sniff_line(packet_type: int, payload: bytes, seconds: int, fraction: int) -> bytes:
    """
    The sniff line for one packet, newline included.

    :param packet_type: the packet type number.
    :param payload: the payload.
    :param seconds: NTP seconds.
    :param fraction: NTP fraction.
    :returns: ASCII bytes ending in ``\\n``.
    """
    try:
        name = PacketType(packet_type).name
    except ValueError:
        name = f"TYPE_{packet_type}"
    when = format_utc(ntp_to_unix(seconds, fraction))
    return f"{when} {name} {escape_payload(payload)}\n".encode("ascii")
