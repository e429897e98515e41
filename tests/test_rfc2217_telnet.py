"""
Tests for L{instrumentd.portagent.rfc2217.telnet}: the decoder under any
chunking, IAC escaping, and option negotiation that never loops.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.portagent.rfc2217.telnet import (
    BINARY,
    COM_PORT_OPTION,
    DO,
    DONT,
    IAC,
    SB,
    SE,
    SGA,
    WILL,
    WONT,
    OptionNegotiator,
    TelnetDecoder,
    escape,
    subnegotiation,
)

NOP = 241


class Collector:
    def __init__(self) -> None:
        self.data = bytearray()
        self.events: list[tuple[object, ...]] = []
        self.decoder = TelnetDecoder(
            self.on_data, self.on_negotiation, self.on_sub, self.on_command
        )

    def on_data(self, data: bytes) -> None:
        self.data += data
        self.events.append(("data", len(self.data)))

    def on_negotiation(self, verb: int, option: int) -> None:
        self.events.append(("neg", verb, option, len(self.data)))

    def on_sub(self, option: int, payload: bytes) -> None:
        self.events.append(("sb", option, payload, len(self.data)))

    def on_command(self, command: int) -> None:
        self.events.append(("cmd", command, len(self.data)))

    def significant(self) -> list[tuple[object, ...]]:
        return [e for e in self.events if e[0] != "data"]


#: A stream with every kind of element, 0xFF in data and in a payload.
STREAM = (
    b"ab"
    + bytes([IAC, IAC])
    + b"c"
    + bytes([IAC, WILL, COM_PORT_OPTION])
    + subnegotiation(COM_PORT_OPTION, b"\x01\x00\x00\xff\xff")
    + bytes([IAC, NOP])
    + b"\r\n\x00"
    + bytes([IAC, DO, BINARY])
)
EXPECTED_DATA = b"ab\xffc\r\n\x00"
EXPECTED_EVENTS = [
    ("neg", WILL, COM_PORT_OPTION, 4),
    ("sb", COM_PORT_OPTION, b"\x01\x00\x00\xff\xff", 4),
    ("cmd", NOP, 4),
    ("neg", DO, BINARY, 7),
]


class DecoderTests(SynchronousTestCase):
    """
    L{TelnetDecoder}.
    """

    def test_whole(self) -> None:
        c = Collector()
        c.decoder.feed(STREAM)
        self.assertEqual(bytes(c.data), EXPECTED_DATA)
        self.assertEqual(c.significant(), EXPECTED_EVENTS)

    def test_byteByByte(self) -> None:
        """
        Fed one byte at a time (every command and subnegotiation split at
        every point), the result is the same.
        """
        c = Collector()
        for i in range(len(STREAM)):
            c.decoder.feed(STREAM[i : i + 1])
        self.assertEqual(bytes(c.data), EXPECTED_DATA)
        self.assertEqual(c.significant(), EXPECTED_EVENTS)

    @given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=30))
    def test_dataRoundTrip(self, data: bytes, cuts: list[int]) -> None:
        """
        Any data, escaped, then cut anywhere, decodes to itself.
        """
        wire = escape(data)
        c = Collector()
        i = 0
        for n in cuts:
            c.decoder.feed(wire[i : i + n])
            i += n
        c.decoder.feed(wire[i:])
        self.assertEqual(bytes(c.data), data)
        self.assertEqual(c.significant(), [])

    def test_missingSE(self) -> None:
        """
        A subnegotiation cut short by another command ends there; the
        command is still seen.
        """
        c = Collector()
        c.decoder.feed(bytes([IAC, SB, COM_PORT_OPTION, 1, IAC, WILL, SGA]) + b"x")
        self.assertEqual(c.significant(), [("neg", WILL, SGA, 0)])
        self.assertEqual(bytes(c.data), b"x")

    def test_escape(self) -> None:
        self.assertEqual(escape(b"\xff\x00\xff\xff"), b"\xff\xff\x00" + b"\xff" * 4)
        self.assertEqual(
            subnegotiation(44, b"\x6f\xff"),
            bytes([IAC, SB, 44, 0x6F, IAC, IAC, IAC, SE]),
        )


class NegotiatorTests(SynchronousTestCase):
    """
    L{OptionNegotiator}.
    """

    def setUp(self) -> None:
        self.sent = bytearray()
        self.changes: list[tuple[str, int, bool]] = []
        self.n = OptionNegotiator(
            self.sent.extend,
            accept_us={BINARY, COM_PORT_OPTION},
            accept_him={BINARY, COM_PORT_OPTION},
            on_change=lambda *c: self.changes.append(c),
        )

    def take(self) -> bytes:
        out = bytes(self.sent)
        self.sent.clear()
        return out

    def test_refused(self) -> None:
        """
        Options we do not do are refused once; a refusal of an option that
        is off is not answered (no loop).
        """
        self.n.received(DO, 1)  # ECHO
        self.assertEqual(self.take(), bytes([IAC, WONT, 1]))
        self.n.received(WILL, 31)  # NAWS
        self.assertEqual(self.take(), bytes([IAC, DONT, 31]))
        self.n.received(DONT, 1)
        self.n.received(WONT, 31)
        self.assertEqual(self.take(), b"")
        self.assertEqual(self.changes, [])

    def test_accepted(self) -> None:
        """
        A request for an option we do is agreed to once; repeating it gets
        no answer; turning it off is acknowledged once.
        """
        self.n.received(WILL, COM_PORT_OPTION)
        self.assertEqual(self.take(), bytes([IAC, DO, COM_PORT_OPTION]))
        self.n.received(WILL, COM_PORT_OPTION)
        self.assertEqual(self.take(), b"")
        self.assertTrue(self.n.enabled("him", COM_PORT_OPTION))
        self.n.received(WONT, COM_PORT_OPTION)
        self.assertEqual(self.take(), bytes([IAC, DONT, COM_PORT_OPTION]))
        self.assertEqual(
            self.changes,
            [("him", COM_PORT_OPTION, True), ("him", COM_PORT_OPTION, False)],
        )

    def test_ourOffer(self) -> None:
        """
        Our own offer is not answered again when the peer agrees, and a
        refusal of it is not answered either.
        """
        self.n.offer(BINARY)
        self.n.request(BINARY)
        self.assertEqual(self.take(), bytes([IAC, WILL, BINARY, IAC, DO, BINARY]))
        self.n.received(DO, BINARY)
        self.n.received(WONT, BINARY)
        self.assertEqual(self.take(), b"")
        self.assertTrue(self.n.enabled("us", BINARY))
        self.assertFalse(self.n.enabled("him", BINARY))
