"""
Tests for L{instrumentd.portagent.rfc2217.session} and
L{instrumentd.portagent.rfc2217.comport}: a telnet-level client on a memory
transport against an agent on a memory reactor.  Negotiation edge cases,
COM-PORT-OPTION answers, sharing and arbitration, purge, flow control and
the token.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from instrumentd.endpoints.serial import SerialSettings
from instrumentd.interfaces import ISerialLineControl
from instrumentd.packet import PacketType
from instrumentd.portagent.listeners import (
    READ_ONLY_NOTICE as RAW_READ_ONLY_NOTICE,
)
from instrumentd.portagent.listeners import RawClient
from instrumentd.portagent.rfc2217.environ import NEW_ENVIRON, parse_variables
from instrumentd.portagent.rfc2217.line import SerialLine
from instrumentd.portagent.rfc2217.session import (
    MODEM_POLL_INTERVAL,
    READ_ONLY_NOTICE,
    WRITER_NOTICE,
    RFC2217Factory,
    RFC2217Session,
)
from instrumentd.portagent.rfc2217.telnet import (
    BINARY,
    COM_PORT_OPTION,
    DO,
    DONT,
    IAC,
    SGA,
    WILL,
    WONT,
    TelnetDecoder,
    subnegotiation,
)
from tests.test_portagent_agent import AgentHarness, packets

TOKEN = b"rfc2217-token-0123456789"


def peer(port: int) -> IPv4Address:
    return IPv4Address("TCP", "127.0.0.1", port)


class Client:
    """
    The client end: decodes what the session sends.
    """

    def __init__(self, session: RFC2217Session, port: int) -> None:
        self.session = session
        self.transport = StringTransport(peerAddress=peer(port))
        self.data = bytearray()
        self.negotiations: list[tuple[int, int]] = []
        self.answers: list[tuple[int, bytes]] = []
        self._seen = 0
        self.decoder = TelnetDecoder(
            self.data.extend,
            lambda v, o: self.negotiations.append((v, o)),
            lambda o, p: self.answers.append((p[0], p[1:])) if o == 44 else None,
        )
        session.makeConnection(self.transport)
        self.read()

    def read(self) -> None:
        value = self.transport.value()
        self.decoder.feed(value[self._seen :])
        self._seen = len(value)

    def send(self, data: bytes, one_byte_at_a_time: bool = False) -> None:
        if one_byte_at_a_time:
            for i in range(len(data)):
                self.session.dataReceived(data[i : i + 1])
        else:
            self.session.dataReceived(data)
        self.read()

    def command(self, command: int, value: bytes, split: bool = False) -> bytes:
        """
        Send a COM-PORT-OPTION command; return the answer's value.
        """
        before = len(self.answers)
        self.send(subnegotiation(COM_PORT_OPTION, bytes([command]) + value), split)
        answers = [a for a in self.answers[before:] if a[0] == command + 100]
        assert answers, f"no answer to {command} in {self.answers[before:]}"
        return answers[-1][1]

    def close(self) -> None:
        self.session.connectionLost(Failure(ConnectionDone()))


def harness(
    test: SynchronousTestCase, **overrides: Any
) -> tuple[AgentHarness, RFC2217Factory]:
    h = AgentHarness(test, **overrides)
    return h, RFC2217Factory(h.agent, None, h.reactor)


def connect(factory: RFC2217Factory, port: int) -> Client:
    session = factory.buildProtocol(peer(port))
    assert isinstance(session, RFC2217Session)
    return Client(session, port)


def commands(h: AgentHarness) -> list[str]:
    return [
        p.payload.decode()
        for p in h.logged()
        if p.type is PacketType.PORT_AGENT_COMMAND
    ]


class NegotiationTests(SynchronousTestCase):
    """
    Telnet negotiation, as a client sees it.
    """

    def test_openingAndRefusals(self) -> None:
        """
        The server offers BINARY both ways and SGA; it refuses ECHO, NAWS
        and TTYPE once each, agrees to COM-PORT-OPTION both ways, and tells
        the client the modem lines as soon as it does.
        """
        _h, factory = harness(self)
        c = connect(factory, 1)
        self.assertEqual(c.negotiations, [(WILL, BINARY), (DO, BINARY), (WILL, SGA)])
        c.negotiations.clear()
        c.send(bytes([IAC, DO, 1, IAC, WILL, 31, IAC, DO, 24, IAC, DONT, 1]))
        self.assertEqual(c.negotiations, [(WONT, 1), (DONT, 31), (WONT, 24)])
        c.negotiations.clear()
        c.send(bytes([IAC, WILL, COM_PORT_OPTION, IAC, DO, COM_PORT_OPTION]))
        self.assertEqual(
            c.negotiations, [(DO, COM_PORT_OPTION), (WILL, COM_PORT_OPTION)]
        )
        self.assertEqual(c.answers, [(107, b"\x00")])
        # The client agreeing to our offers is not answered again.
        c.negotiations.clear()
        c.send(bytes([IAC, DO, BINARY, IAC, WILL, BINARY, IAC, DO, SGA]))
        self.assertEqual(c.negotiations, [])

    def test_subnegotiationSplitAcrossReads(self) -> None:
        """
        A COM-PORT-OPTION command that arrives one byte per read, with a
        doubled IAC in its value, is answered once, exactly.
        """
        _h, factory = harness(self)
        c = connect(factory, 1)
        c.send(bytes([IAC, WILL, COM_PORT_OPTION]))
        self.assertEqual(c.command(11, b"\xff", split=True), b"\xff")
        self.assertEqual(c.session.comport.modemstate_mask, 255)
        self.assertEqual(c.command(11, b"\x30", split=True), b"\x30")
        self.assertEqual(
            c.command(1, struct.pack("!I", 19200), split=True),
            struct.pack("!I", 19200),
        )

    def test_dataAndIAC(self) -> None:
        """
        Instrument bytes reach the client with IAC doubled; the client's
        doubled IAC reaches the instrument as one byte and is recorded
        unescaped as DATA_FROM_DRIVER.
        """
        h, factory = harness(self)
        link = h.link_up()
        c = connect(factory, 1)
        assert h.instrument is not None
        h.instrument.dataReceived(b"\x7f\x7f\xff\x00\xff")
        c.read()
        self.assertEqual(bytes(c.data), b"\x7f\x7f\xff\x00\xff")
        self.assertIn(b"\x7f\x7f\xff\xff\x00\xff\xff", c.transport.value())
        c.send(b"A\xff\xffB")
        self.assertEqual(link.value(), b"A\xffB")
        driver = [
            p.payload for p in h.logged() if p.type is PacketType.DATA_FROM_DRIVER
        ]
        self.assertEqual(driver, [b"A\xffB"])


class ComPortTests(SynchronousTestCase):
    """
    COM-PORT-OPTION commands on a link that is not a serial line: answered
    with what was asked, recorded as not applied.
    """

    def setUp(self) -> None:
        self.h, factory = harness(self)
        self.c = connect(factory, 1)
        self.c.send(bytes([IAC, WILL, COM_PORT_OPTION]))

    def test_settings(self) -> None:
        c = self.c
        self.assertEqual(
            c.command(1, struct.pack("!I", 19200)), struct.pack("!I", 19200)
        )
        self.assertEqual(c.command(1, b"\0\0\0\0"), struct.pack("!I", 19200))
        self.assertEqual(c.command(2, b"\x07"), b"\x07")
        self.assertEqual(c.command(3, b"\x03"), b"\x03")  # even
        self.assertEqual(c.command(4, b"\x02"), b"\x02")
        self.assertEqual(c.command(4, b"\x03"), b"\x03")  # 1.5
        self.assertEqual(c.command(3, b"\x00"), b"\x03")
        # A rate that is not a standard one is refused: the answer is the
        # rate in effect.
        self.assertEqual(
            c.command(1, struct.pack("!I", 12345)), struct.pack("!I", 19200)
        )
        self.assertEqual(c.command(3, b"\x09"), b"\x03")
        text = "\n".join(commands(self.h))
        self.assertIn("rfc2217 127.0.0.1:1: set baudrate 19200: not applied", text)
        self.assertIn("set baudrate 12345: refused", text)

    def test_control(self) -> None:
        c = self.c
        for asked, answer in [
            (8, 8),
            (9, 9),
            (7, 9),
            (11, 11),
            (12, 12),
            (10, 12),
            (5, 5),
            (4, 5),
            (6, 6),
            (2, 2),
            (0, 2),
            (13, 15),
            (3, 3),
            (16, 16),
            (1, 1),
            (17, 1),
            (18, 14),
        ]:
            self.assertEqual(c.command(5, bytes([asked])), bytes([answer]), asked)

    def test_notifyMasksSignaturePurge(self) -> None:
        c = self.c
        self.assertEqual(c.command(7, b""), b"\x00")
        self.assertEqual(c.command(6, b""), b"\x00")
        self.assertEqual(c.command(10, b"\x10"), b"\x10")
        signature = c.command(0, b"")
        self.assertTrue(signature.startswith(b"instrumentd "), signature)
        self.assertTrue(signature.endswith(b" TEST01"), signature)
        before = len(c.answers)
        c.send(subnegotiation(COM_PORT_OPTION, b"\x00SeatermV2"))
        self.assertEqual(c.answers[before:], [])
        self.assertEqual(c.session.comport.client_signature, b"SeatermV2")
        for which in (1, 2, 3):
            self.assertEqual(c.command(12, bytes([which])), bytes([which]))


class SharingTests(SynchronousTestCase):
    """
    One writer at a time, one rule for raw clients and RFC 2217 sessions;
    a session keeps data clients off the line while it holds it.
    """

    def test_secondSessionReadOnly(self) -> None:
        h, factory = harness(self)
        link = h.link_up()
        first, second = connect(factory, 1), connect(factory, 2)
        for c in (first, second):
            c.send(bytes([IAC, WILL, COM_PORT_OPTION]))
        self.assertNotIn(READ_ONLY_NOTICE, bytes(first.data))
        self.assertIn(READ_ONLY_NOTICE, bytes(second.data))
        self.assertIn((108, b""), second.answers)
        # The read-only one may not change the line: the answer is the
        # rate in effect.
        self.assertEqual(
            first.command(1, struct.pack("!I", 4800)), struct.pack("!I", 4800)
        )
        self.assertEqual(
            second.command(1, struct.pack("!I", 19200)), struct.pack("!I", 4800)
        )
        second.send(b"ignored")
        first.send(b"ds\r")
        self.assertEqual(link.value(), b"ds\r")
        first.close()
        second.read()
        self.assertIn(WRITER_NOTICE, bytes(second.data))
        self.assertIn((109, b""), second.answers)
        second.send(b"ts\r")
        self.assertEqual(link.value(), b"ds\rts\r")
        text = "\n".join(commands(h))
        self.assertIn(
            "rfc2217 127.0.0.1:2: set baudrate 19200: not changed: another "
            "client has the instrument line",
            text,
        )
        self.assertIn("rfc2217 127.0.0.1:1: session ended; line restored", text)

    def test_rawClientFirst(self) -> None:
        """
        A raw writer that came first keeps the line; the session waits.
        """
        h, factory = harness(self)
        link = h.link_up()
        raw_transport = StringTransport(peerAddress=peer(9))
        raw = RawClient(h.agent)
        raw.makeConnection(raw_transport)
        c = connect(factory, 1)
        self.assertIn(READ_ONLY_NOTICE, bytes(c.data))
        c.send(b"nope")
        raw.dataReceived(b"ok\r")
        self.assertEqual(link.value(), b"ok\r")
        raw.connectionLost(Failure(ConnectionDone()))
        c.send(b"mine\r")
        self.assertEqual(link.value(), b"ok\rmine\r")
        # And a raw client that comes now is read-only.
        late = StringTransport(peerAddress=peer(10))
        RawClient(h.agent).makeConnection(late)
        self.assertEqual(late.value(), RAW_READ_ONLY_NOTICE)

    def test_dataClientsWaitForSession(self) -> None:
        """
        While a session holds the line, a data client's bytes are not sent;
        data clients are told who holds it, and told when it is released.
        """
        h, factory = harness(self)
        link = h.link_up()
        driver = h.data_client(5)
        c = connect(factory, 1)
        from instrumentd.portagent.listeners import DataClient

        client = DataClient(h.agent)
        client.makeConnection(StringTransport(peerAddress=peer(6)))
        client.dataReceived(b"ts\r")
        self.assertEqual(link.value(), b"")
        faults = [
            p.payload.decode()
            for p in packets(driver)
            if p.type is PacketType.PORT_AGENT_FAULT
        ]
        self.assertIn(
            "RFC 2217 client 127.0.0.1:1 holds the instrument line", faults[0]
        )
        self.assertIn(
            "the instrument line is held by RFC 2217 client 127.0.0.1:1: 3 bytes "
            "from data client 127.0.0.1:6 not sent",
            faults[1],
        )
        c.close()
        client.dataReceived(b"ts\r")
        self.assertEqual(link.value(), b"ts\r")
        faults = [
            p.payload.decode()
            for p in packets(driver)
            if p.type is PacketType.PORT_AGENT_FAULT
        ]
        self.assertIn(
            "RFC 2217 client 127.0.0.1:1 released the instrument line", faults[2]
        )


class PurgeAndFlowTests(SynchronousTestCase):
    """
    PURGE-DATA and FLOWCONTROL-SUSPEND/RESUME touch one session only.
    """

    def test_purgeOwnViewOnly(self) -> None:
        h, factory = harness(self)
        h.link_up()
        raw_transport = StringTransport(peerAddress=peer(9))
        RawClient(h.agent).makeConnection(raw_transport)
        c = connect(factory, 1)
        c.send(bytes([IAC, WILL, COM_PORT_OPTION]))
        assert c.session.outlet is not None
        c.session.outlet.pauseProducing()  # the client's socket is full
        assert h.instrument is not None
        h.instrument.dataReceived(b"queued")
        self.assertEqual(c.session.outlet.queued, 6)
        c.session.outlet.resumeProducing()
        c.read()
        self.assertTrue(bytes(c.data).endswith(b"queued"))
        c.session.outlet.pauseProducing()
        h.instrument.dataReceived(b"dropped")
        c.session.comport.handle(b"\x0c\x01")
        c.session.outlet.resumeProducing()
        c.read()
        self.assertNotIn(b"dropped", bytes(c.data))
        self.assertIn((112, b"\x01"), c.answers)
        self.assertTrue(raw_transport.value().endswith(b"queueddropped"))
        instrument = b"".join(
            p.payload for p in h.logged() if p.type is PacketType.DATA_FROM_INSTRUMENT
        )
        self.assertEqual(instrument, b"queueddropped")

    def test_suspendResume(self) -> None:
        h, factory = harness(self)
        h.link_up()
        c = connect(factory, 1)
        c.send(subnegotiation(COM_PORT_OPTION, b"\x08"))
        assert h.instrument is not None
        h.instrument.dataReceived(b"held")
        c.read()
        self.assertNotIn(b"held", bytes(c.data))
        c.send(subnegotiation(COM_PORT_OPTION, b"\x09"))
        self.assertTrue(bytes(c.data).endswith(b"held"))


class TokenTests(SynchronousTestCase):
    """
    With a token, the session's first data line must be it.
    """

    def test_token(self) -> None:
        h, factory = harness(self)
        factory.token = TOKEN
        link = h.link_up()
        c = connect(factory, 1)
        c.send(bytes([IAC, WILL, COM_PORT_OPTION]))
        # Before the token: negotiation works, nothing changes, no data.
        self.assertEqual(
            c.command(1, struct.pack("!I", 19200)), struct.pack("!I", 9600)
        )
        assert h.instrument is not None
        h.instrument.dataReceived(b"secret data")
        c.read()
        self.assertNotIn(b"secret", bytes(c.data))
        c.send(TOKEN[:4])
        c.send(TOKEN[4:] + b"\r\nds\r")
        self.assertEqual(link.value(), b"ds\r")
        self.assertEqual(
            c.command(1, struct.pack("!I", 19200)), struct.pack("!I", 19200)
        )
        everything = b"".join(p.payload for p in h.logged())
        self.assertNotIn(TOKEN, everything)

    def test_tokenAsEnvironmentVariable(self) -> None:
        """
        A client that agrees to NEW-ENVIRON is asked for the user variable
        TOKEN and is let in when it sends the right one (escapes undone);
        a wrong one is refused.  Without a token the option is refused.
        """
        for given, right in ((TOKEN, True), (b"\x02\x00wrong", False)):
            h, factory = harness(self)
            factory.token = TOKEN
            link = h.link_up()
            c = connect(factory, 1)
            self.assertIn((DO, NEW_ENVIRON), c.negotiations)
            c.send(bytes([IAC, WILL, NEW_ENVIRON]))
            self.assertIn(
                subnegotiation(NEW_ENVIRON, b"\x01\x03TOKEN"), c.transport.value()
            )
            escaped = given.replace(b"\x02", b"\x02\x02").replace(b"\x00", b"\x02\x00")
            c.send(
                subnegotiation(
                    NEW_ENVIRON, b"\x00\x00USER\x01bob\x03TOKEN\x01" + escaped
                )
            )
            if right:
                c.send(b"ds\r")
                self.assertEqual(link.value(), b"ds\r")
            else:
                self.assertTrue(
                    c.transport.value().endswith(b"ERROR token refused\r\n")
                )
                self.assertTrue(c.transport.disconnecting)
        _h, factory = harness(self)
        c = connect(factory, 1)
        c.send(bytes([IAC, WILL, NEW_ENVIRON]))
        self.assertIn((DONT, NEW_ENVIRON), c.negotiations)

    def test_environParsing(self) -> None:
        self.assertEqual(
            parse_variables(
                b"\x02\x00USER\x01me\x03TOK\x02\x03EN\x01v\x02\x01\x03EMPTY"
            ),
            {b"USER": b"me", b"TOK\x03EN": b"v\x01", b"EMPTY": None},
        )
        self.assertIsNone(parse_variables(b"\x01\x03TOKEN"))

    def test_wrongToken(self) -> None:
        h, factory = harness(self)
        factory.token = TOKEN
        h.link_up()
        c = connect(factory, 1)
        c.send(b"guess\r\n")
        self.assertTrue(c.transport.value().endswith(b"ERROR token refused\r\n"))
        self.assertTrue(c.transport.disconnecting)


@implementer(ISerialLineControl)
class FakeSerialPort:
    """
    A serial port whose driver refuses what the test says.
    """

    def __init__(self) -> None:
        self.configured = SerialSettings(baudrate=9600)
        self.settings = self.configured
        self.refuse_settings = False
        self.lines: dict[str, bool] = {}
        self.has_modem_lines = True
        self.modem = 0

    def line_settings(self) -> SerialSettings:
        return self.settings

    def apply_line_settings(self, settings: SerialSettings) -> SerialSettings:
        if self.refuse_settings:
            raise OSError(22, "Invalid argument")
        self.settings = settings
        return settings

    def set_control_line(self, name: str, on: bool) -> None:
        if name != "break" and not self.has_modem_lines:
            raise OSError(25, "Inappropriate ioctl for device")
        self.lines[name] = on

    def modem_lines(self) -> int | None:
        return self.modem if self.has_modem_lines else None


class SerialLineTests(SynchronousTestCase):
    """
    The real line: changes applied, refusals answered with what is in
    effect, the line restored when the session that changed it ends, and
    modem line changes notified.
    """

    def setUp(self) -> None:
        self.port = FakeSerialPort()
        self.connected = True
        self.h, self.factory = harness(self)
        self.factory.line = SerialLine(lambda: self.port if self.connected else None)
        self.h.link_up()

    def test_linkDown(self) -> None:
        """
        While the link is down a change is refused, and the answer is the
        line as it last was.
        """
        c = connect(self.factory, 1)
        c.send(bytes([IAC, WILL, COM_PORT_OPTION]))
        c.command(1, struct.pack("!I", 4800))
        self.connected = False
        self.assertEqual(
            c.command(1, struct.pack("!I", 19200)), struct.pack("!I", 4800)
        )
        self.assertIn(
            "set baudrate 19200: refused: the instrument link is down",
            "\n".join(commands(self.h)),
        )
        c.close()
        self.assertIn(
            "session ended; line not restored: the instrument link is down",
            "\n".join(commands(self.h)),
        )

    def test_appliedRefusedRestored(self) -> None:
        c = connect(self.factory, 1)
        c.send(bytes([IAC, WILL, COM_PORT_OPTION]))
        self.assertEqual(
            c.command(1, struct.pack("!I", 19200)), struct.pack("!I", 19200)
        )
        self.assertEqual(self.port.settings.baudrate, 19200)
        self.port.refuse_settings = True
        self.assertEqual(c.command(3, b"\x03"), b"\x01")  # asked even, got none
        self.port.refuse_settings = False
        self.assertEqual(c.command(5, b"\x09"), b"\x09")
        self.assertEqual(self.port.lines["dtr"], False)
        c.close()
        self.assertEqual(self.port.settings, self.port.configured)
        self.assertEqual(self.port.lines, {"dtr": True, "rts": True, "break": False})
        text = "\n".join(commands(self.h))
        self.assertIn("set baudrate 19200: applied", text)
        self.assertIn(
            "set parity E: refused: the device refused: Invalid argument; line "
            "stays 19200 8N1",
            text,
        )
        self.assertIn(
            "session ended; line restored to 9600 8N1, DTR on, RTS on: applied", text
        )

    def test_noModemLines(self) -> None:
        """
        DTR and RTS on a device without them are acknowledged as asked, and
        noted as not applied.
        """
        self.port.has_modem_lines = False
        c = connect(self.factory, 1)
        c.send(bytes([IAC, WILL, COM_PORT_OPTION]))
        self.assertEqual(c.command(5, b"\x09"), b"\x09")
        self.assertEqual(c.command(5, b"\x07"), b"\x09")
        self.assertIn(
            "set DTR off: not applied: the device has no DTR line",
            "\n".join(commands(self.h)),
        )

    def test_modemNotifications(self) -> None:
        """
        Changes of the modem input lines are sent, with delta bits, as the
        mask allows.
        """
        c = connect(self.factory, 1)
        c.send(bytes([IAC, WILL, COM_PORT_OPTION]))
        self.assertEqual(c.answers, [(107, b"\x00")])
        self.port.modem = 0x30  # DSR and CTS up
        self.h.reactor.advance(MODEM_POLL_INTERVAL)
        c.read()
        self.assertEqual(c.answers[-1], (107, bytes([0x30 | 0x02 | 0x01])))
        c.command(11, b"\x80")  # only CD
        self.port.modem = 0x20
        self.h.reactor.advance(MODEM_POLL_INTERVAL)
        c.read()
        self.assertEqual(c.answers[-1], (111, b"\x80"))
        self.port.modem = 0xA0
        self.h.reactor.advance(MODEM_POLL_INTERVAL)
        c.read()
        self.assertEqual(c.answers[-1], (107, b"\x80"))
        c.close()
        self.assertEqual(self.h.reactor.getDelayedCalls(), [])
