"""
Tests for L{instrumentd.portagent.access} and the port agent's TLS, token
and ``--allow-insecure`` behaviour: unit tests of the token gate on a memory
transport, and real agents with certificates made by the test.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import ssl
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from instrumentd.packet import PacketType
from instrumentd.portagent.access import (
    MAX_TOKEN_LINE,
    REFUSED,
    TOKEN_TIMEOUT,
    TokenGateFactory,
    listener_reach,
    read_token_file,
)
from instrumentd.portagent.client import PortAgentClient
from instrumentd.portagent.options import PortAgentOptions
from tests.agentsupport import (
    ByteClient,
    LineClient,
    PacketClient,
    elapse,
    reactor,
    read_datalog,
    run,
    start_agent,
    start_instrument,
    within,
)
from tests.tlssupport import TestCertificates, escape, make_certificates

TOKEN = b"s3cret-token-0123456789abcdef"


class Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.made = False
        self.lost = False

    def connectionMade(self) -> None:
        self.made = True

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True


class TokenGateTests(SynchronousTestCase):
    """
    The gate in front of a listener's protocol.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.inner: list[Recorder] = []

        def build() -> Recorder:
            self.inner.append(Recorder())
            return self.inner[-1]

        self.factory = TokenGateFactory(
            Factory.forProtocol(build), TOKEN, "raw", self.clock
        )
        self.transport = StringTransport(
            peerAddress=IPv4Address("TCP", "127.0.0.1", 5555)
        )
        self.gate = self.factory.buildProtocol(None)
        self.gate.makeConnection(self.transport)

    def test_rightToken(self) -> None:
        """
        The token line is swallowed; the listener's protocol is connected
        only then and gets what followed it in the same read.
        """
        self.gate.dataReceived(TOKEN[:5])
        self.assertEqual(self.inner, [])
        self.gate.dataReceived(TOKEN[5:] + b"\r\nds\r")
        self.assertEqual(len(self.inner), 1)
        self.assertTrue(self.inner[0].made)
        self.assertEqual(self.inner[0].received, b"ds\r")
        self.gate.dataReceived(b"\xff\n")
        self.assertEqual(self.inner[0].received, b"ds\r\xff\n")
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(TOKEN_TIMEOUT * 2)
        self.assertFalse(self.transport.disconnecting)
        self.gate.connectionLost(None)  # type: ignore[arg-type]
        self.assertTrue(self.inner[0].lost)

    def test_halfClosePassedOn(self) -> None:
        """
        A client that closes its sending side after the token: a
        half-closeable listener protocol (the command port) is told and
        answers before closing; any other is closed; so is a client that
        never finished its token line.
        """

        @implementer(IHalfCloseableProtocol)
        class HalfCloseable(Recorder):
            read_lost = False

            def readConnectionLost(self) -> None:
                self.read_lost = True

            def writeConnectionLost(self) -> None:
                pass

        factory = TokenGateFactory(
            Factory.forProtocol(HalfCloseable), TOKEN, "command", self.clock
        )
        transport = StringTransport()
        gate = factory.buildProtocol(None)
        self.assertTrue(IHalfCloseableProtocol.providedBy(gate))
        gate.makeConnection(transport)
        gate.dataReceived(TOKEN + b"\nget_stats\n")
        gate.readConnectionLost()  # type: ignore[attr-defined]
        inner = gate.inner  # type: ignore[attr-defined]
        self.assertTrue(inner.read_lost)
        self.assertFalse(transport.disconnecting)

        self.gate.dataReceived(TOKEN + b"\n")
        self.gate.readConnectionLost()  # type: ignore[attr-defined]
        self.assertTrue(self.transport.disconnecting)

        transport = StringTransport()
        gate = factory.buildProtocol(None)
        gate.makeConnection(transport)
        gate.dataReceived(TOKEN[:4])
        gate.readConnectionLost()  # type: ignore[attr-defined]
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_wrongToken(self) -> None:
        """
        A wrong token is told so and the connection closed; nothing reaches
        the listener's protocol.
        """
        self.gate.dataReceived(TOKEN[:-1] + b"X\nhello\n")
        self.assertEqual(self.transport.value(), REFUSED)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.inner, [])
        self.assertEqual(self.factory.refused, 1)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_prefixIsNotEnough(self) -> None:
        """
        A line that is only the start of the token is refused.
        """
        self.gate.dataReceived(TOKEN[:8] + b"\n")
        self.assertEqual(self.transport.value(), REFUSED)

    def test_timeout(self) -> None:
        """
        A client that says nothing is refused after the timeout.
        """
        self.clock.advance(TOKEN_TIMEOUT - 0.1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.2)
        self.assertEqual(self.transport.value(), REFUSED)
        self.assertTrue(self.transport.disconnecting)

    def test_tooLong(self) -> None:
        """
        A first line longer than the limit is refused without waiting for
        its end.
        """
        self.gate.dataReceived(b"x" * MAX_TOKEN_LINE)
        self.assertEqual(self.transport.value(), REFUSED)


class TokenFileTests(SynchronousTestCase):
    """
    L{read_token_file}.
    """

    def write(self, content: bytes) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(content)
        return path

    def test_firstLineStripped(self) -> None:
        self.assertEqual(read_token_file(self.write(b"  " + TOKEN + b" \nx\n")), TOKEN)

    def test_problems(self) -> None:
        for content, fragment in [
            (b"", "at least 16"),
            (b"short\n", "at least 16"),
            (b"has a space in it ok\n", "printable ASCII without spaces"),
            (b"x" * 2000, "longer than"),
        ]:
            path = self.write(content)
            e = self.assertRaises(ValueError, read_token_file, path)
            self.assertIn(fragment, str(e))
            self.assertIn(repr(path), str(e))
        e = self.assertRaises(ValueError, read_token_file, "/nonexistent/token")
        self.assertIn("cannot read the token file", str(e))


class ReachTests(SynchronousTestCase):
    """
    L{listener_reach} tells loopback from the network, and TLS from plain.
    """

    def test_reach(self) -> None:
        certs = make_certificates(self.mktemp())
        tls = (
            f"privateKey={escape(certs.server_key)}:certKey={escape(certs.server_cert)}"
        )
        for description, local, encrypted in [
            ("tcp:0:interface=127.0.0.1", True, False),
            ("tcp:0:interface=127.0.0.5", True, False),
            ("tcp6:0:interface=\\:\\:1", True, False),
            ("tcp:0", False, False),
            ("tcp:0:interface=10.1.2.3", False, False),
            ("tcp6:0", False, False),
            ("unix:/tmp/x.sock", True, False),
            (f"ssl:0:{tls}", False, True),
            (f"ssl:0:interface=127.0.0.1:{tls}", True, True),
            (f"mtls:0:{tls}:caCerts={escape(certs.ca)}", False, True),
        ]:
            reach = listener_reach(description)
            self.assertEqual(
                (reach.local, reach.encrypted), (local, encrypted), description
            )


BASE = ["--name", "T1", "--instrument", "tcp:host=127.0.0.1:port=4001"]


class AccessOptionsTests(SynchronousTestCase):
    """
    ``--token-file``, ``--tokenless`` and ``--allow-insecure``.
    """

    def setUp(self) -> None:
        self.token_file = self.mktemp()
        with open(self.token_file, "wb") as f:
            f.write(TOKEN + b"\n")

    def parse(self, *extra: str) -> PortAgentOptions:
        options = PortAgentOptions()
        options.parseOptions([*BASE, *extra])
        return options

    def refused(self, *extra: str) -> str:
        return str(self.assertRaises(usage.UsageError, self.parse, *extra))

    def test_beyondLoopbackNeedsSomething(self) -> None:
        """
        A plain listener on every interface is refused, naming the option,
        the endpoint and the ways out; TLS, a token or --allow-insecure each
        let it start.
        """
        text = self.refused("--raw-port", "tcp:0")
        for fragment in ("--raw-port", "'tcp:0'", "0.0.0.0:0", "--allow-insecure"):
            self.assertIn(fragment, text)
        config = self.parse("--raw-port", "tcp:0", "--allow-insecure").config()
        self.assertTrue(config.allow_insecure)
        config = self.parse("--raw-port", "tcp:0", "--token-file", self.token_file)
        self.assertTrue(config.config().gated("raw"))
        certs = make_certificates(self.mktemp())
        self.parse(
            "--raw-port",
            f"ssl:0:privateKey={escape(certs.server_key)}:"
            f"certKey={escape(certs.server_cert)}",
        )

    def test_tokenless(self) -> None:
        """
        --tokenless takes data or sniff only, needs a token file, and a
        tokenless listener beyond loopback still needs TLS or
        --allow-insecure.
        """
        config = self.parse(
            "--token-file", self.token_file, "--tokenless", "data"
        ).config()
        self.assertFalse(config.gated("data"))
        self.assertTrue(config.gated("sniff"))
        self.assertTrue(config.gated("command"))
        self.assertIn("command, raw and RFC 2217", self.refused("--tokenless", "raw"))
        self.assertIn("only meaningful", self.refused("--tokenless", "data"))
        text = self.refused(
            "--token-file",
            self.token_file,
            "--tokenless",
            "sniff",
            "--sniff-port",
            "tcp:0",
        )
        self.assertIn("--sniff-port", text)

    def test_rfc2217Port(self) -> None:
        """
        The RFC 2217 listener is off unless given, and is held to the same
        rule as the others.
        """
        self.assertEqual(self.parse().config().listeners["rfc2217"], ())
        config = self.parse("--rfc2217-port", "tcp:0:interface=127.0.0.1").config()
        self.assertEqual(config.listeners["rfc2217"], ("tcp:0:interface=127.0.0.1",))
        self.assertIn("--rfc2217-port", self.refused("--rfc2217-port", "tcp:0"))
        config = self.parse(
            "--rfc2217-port", "tcp:0", "--token-file", self.token_file
        ).config()
        self.assertTrue(config.gated("rfc2217"))

    def test_badTokenFile(self) -> None:
        self.assertIn("--token-file", self.refused("--token-file", "/nonexistent"))

    def test_publicConfig(self) -> None:
        """
        get_config says where the token is, never what it is.
        """
        public = self.parse("--token-file", self.token_file).config().public()
        self.assertEqual(public["token_file"], self.token_file)
        self.assertNotIn(TOKEN.decode(), repr(public))


def tls_endpoint(
    certs: TestCertificates, port: Any, client_certificate: bool | str = False
) -> Any:
    with open(certs.ca, "rb") as f:
        authority = ssl.Certificate.loadPEM(f.read())
    identity = None
    if client_certificate:
        cert, key = (
            (certs.stranger_cert, certs.stranger_key)
            if client_certificate == "stranger"
            else (certs.client_cert, certs.client_key)
        )
        with open(cert, "rb") as c, open(key, "rb") as k:
            identity = ssl.PrivateCertificate.loadPEM(c.read() + k.read())
    options = ssl.optionsForClientTLS(
        "localhost", trustRoot=authority, clientCertificate=identity
    )
    return wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", port))


async def tls_connect(test: TestCase, endpoint: Any, client: Any) -> Any:
    await within(connectProtocol(endpoint, client), "a TLS connection")
    test.addCleanup(client.disconnect)
    return client


class InsecureLogTests(SynchronousTestCase):
    """
    An agent allowed to listen insecurely says so in its log.
    """

    def test_warned(self) -> None:
        from twisted.logger import globalLogPublisher

        from tests.test_portagent_agent import AgentHarness

        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        AgentHarness(
            self,
            listeners={
                "data": ("tcp:0:interface=127.0.0.1",),
                "command": ("tcp:0",),
                "sniff": (),
                "raw": (),
            },
            allow_insecure=True,
        )
        warnings = [
            e for e in events if "reachable beyond loopback" in e.get("log_format", "")
        ]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["kind"], "command")
        self.assertIn("--allow-insecure", warnings[0]["log_format"])


async def clients_admitted(command: LineClient, wanted: dict[str, int]) -> None:
    """
    Ask the agent's command port for its clients until at least C{wanted}
    of each kind are connected (a test's wait, bounded by the caller).
    """
    while True:
        stats = json.loads(await command.ask("get_stats"))
        clients = stats["clients"]
        if all(clients.get(kind, 0) >= n for kind, n in wanted.items()):
            return
        await elapse(0.05)


class AgentAccessTests(TestCase):
    """
    Real agents behind TLS and a token.
    """

    def setUp(self) -> None:
        self.certs = make_certificates(os.path.abspath(self.mktemp()))
        self.token_file = os.path.abspath(self.mktemp())
        with open(self.token_file, "wb") as f:
            f.write(TOKEN + b"\n")
        self.tls = (
            f"ssl:0:interface=127.0.0.1:privateKey={escape(self.certs.server_key)}"
            f":certKey={escape(self.certs.server_cert)}"
        )

    def test_tlsEveryListenerWithToken(self) -> None:
        """
        Every listener speaks TLS with the test's certificate; each client
        sends the token first and then works as usual; the token is never
        sent to the instrument or recorded; a wrong token is refused.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            datalog = os.path.abspath(self.mktemp())
            agent = await start_agent(
                self,
                instrument,
                datalog_dir=datalog,
                heartbeat=0,
                data_port=self.tls,
                command_port=self.tls,
                sniff_port=self.tls,
                raw_port=self.tls,
                rfc2217_port=self.tls,
                token_file=self.token_file,
            )
            ports = agent.ports
            command = await tls_connect(
                self, tls_endpoint(self.certs, ports["command"]), LineClient()
            )
            command.write(TOKEN + b"\n")
            self.assertEqual(await command.ask("ping"), f"pong TEST01 {_version()}")
            data = await tls_connect(
                self, tls_endpoint(self.certs, ports["data"]), PacketClient()
            )
            data.write(TOKEN + b"\r\n")
            sniff = await tls_connect(
                self, tls_endpoint(self.certs, ports["sniff"]), LineClient()
            )
            sniff.write(TOKEN + b"\n")
            raw = await tls_connect(
                self, tls_endpoint(self.certs, ports["raw"]), ByteClient()
            )
            raw.write(TOKEN + b"\n")
            rfc2217 = await tls_connect(
                self, tls_endpoint(self.certs, ports["rfc2217"]), ByteClient()
            )
            # The telnet opening comes at once; the token is the first line
            # of data inside the session.
            await rfc2217.wait_for_bytes(b"\xff\xfb\x00", "the telnet opening")
            rfc2217.write(TOKEN + b"\r\n")
            await instrument.wait_for_connection()
            # Each client's token crosses its own TLS connection: until the
            # agent has taken the sniff client's, a line sent by the raw
            # client may be sniffed before anyone is there to see it.
            await within(
                Deferred.fromCoroutine(
                    clients_admitted(command, {"data": 1, "sniff": 1, "raw": 1})
                ),
                "the data, sniff and raw clients to be admitted",
            )
            raw.write(b"ds\r")
            await instrument.wait_for_received(b"ds\r")
            await within(
                sniff.wait_for_line(
                    lambda line: "DATA_FROM_DRIVER ds" in line, "sniff"
                ),
                "a sniffed line",
            )
            instrument.send(b"S>\xff")
            await data.wait_for_data(3)
            await raw.wait_for_bytes(b"S>\xff")
            await rfc2217.wait_for_bytes(b"S>\xff\xff", "escaped data over TLS")
            self.assertEqual(bytes(instrument.received), b"ds\r")

            wrong = await tls_connect(
                self, tls_endpoint(self.certs, ports["command"]), LineClient()
            )
            wrong.write(b"not-the-token-at-all\nping\n")
            await within(wrong.closed, "the refused client to be closed")
            self.assertEqual(wrong.lines, ["ERROR token refused\r"])

            plain = await tls_connect(
                self,
                TCP4ClientEndpoint(reactor, "127.0.0.1", ports["raw"]),
                ByteClient(),
            )
            plain.write(TOKEN + b"\nxx")
            await within(plain.closed, "a plain client on a TLS port to be dropped")
            self.assertNotIn(b"xx", bytes(instrument.received))

            await agent.stop()
            packets = read_datalog(datalog)
            everything = b"".join(p.payload for p in packets)
            self.assertNotIn(TOKEN, everything)
            self.assertEqual(
                b"".join(
                    p.payload for p in packets if p.type is PacketType.DATA_FROM_DRIVER
                ),
                b"ds\r",
            )

        return run(go())

    def test_clientCertificateRequired(self) -> None:
        """
        An ``mtls:`` listener lets in a client whose certificate the given
        authority signed, and no other.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            mtls = (
                f"mtls:0:interface=127.0.0.1:privateKey={escape(self.certs.server_key)}"
                f":certKey={escape(self.certs.server_cert)}"
                f":caCerts={escape(self.certs.ca)}"
            )
            agent = await start_agent(self, instrument, heartbeat=0, command_port=mtls)
            port = agent.ports["command"]
            good = await tls_connect(
                self, tls_endpoint(self.certs, port, True), LineClient()
            )
            self.assertTrue((await good.ask("ping")).startswith("pong TEST01"))
            for who in (False, "stranger"):
                bad = LineClient()
                try:
                    await tls_connect(self, tls_endpoint(self.certs, port, who), bad)
                except Exception:
                    continue
                bad.write(b"ping\n")
                await within(bad.closed, f"the agent to drop a client ({who})")
                self.assertEqual(bad.lines, [])

        return run(go())

    def test_portAgentClientPassesToken(self) -> None:
        """
        L{PortAgentClient} given the token connects to a gated agent, and
        gets its data; with --tokenless data it sends it on the command port
        only.
        """

        async def go() -> None:
            for tokenless in ((), ("data",)):
                instrument = await start_instrument(self)
                agent = await start_agent(
                    self,
                    instrument,
                    heartbeat=0,
                    token_file=self.token_file,
                    tokenless=tokenless,
                )
                client = PortAgentClient.for_address(
                    "127.0.0.1",
                    agent.ports["data"],  # type: ignore[arg-type]
                    agent.ports["command"],  # type: ignore[arg-type]
                    reactor=reactor,
                    token=TOKEN,
                    token_on_data=not tokenless,
                )
                client.attach(lambda data, packet: None)
                await within(client.connect(), "the client to connect")
                self.addCleanup(client.disconnect)
                self.assertTrue(
                    (await within(client.command("ping"), "ping")).startswith("pong")
                )
                client.send(b"ts\r")
                await instrument.wait_for_received(b"ts\r")
                self.assertEqual(bytes(instrument.received), b"ts\r")
                await client.disconnect()

        return run(go())


def _version() -> str:
    from instrumentd import __version__

    return __version__
