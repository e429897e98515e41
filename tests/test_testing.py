"""
Tests for L{instrumentd.testing}, the helpers shipped for driver writers:
the in-memory L{FakePortAgent}, the loopback L{TCPInstrument}, and the
fixtures that launch real agents and clean up after a test.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError, maybeDeferred
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import AccumulatingProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from instrumentd.packet import (
    MAX_PAYLOAD_SIZE,
    Packet,
    PacketParser,
    PacketType,
    encode_packet,
    unix_to_ntp,
)
from instrumentd.testing import (
    FakePortAgent,
    client_for,
    port_agent_for,
    tcp_instrument_for,
)


class Recording(Protocol):
    """
    Records bytes and the connection's end, and how deeply deliveries to
    it nest.
    """

    def __init__(self) -> None:
        self.received = b""
        self.lost: Failure | None = None
        self.depth = 0
        self.max_depth = 0

    def dataReceived(self, data: bytes) -> None:
        self.depth += 1
        self.max_depth = max(self.max_depth, self.depth)
        self.received += data
        self.depth -= 1

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.lost = reason

    def packets(self) -> list[Packet]:
        return PacketParser().feed(self.received)


def connect(test: SynchronousTestCase, endpoint: IStreamClientEndpoint) -> Any:
    """
    Connect a L{Recording} protocol to an endpoint.
    """
    return test.successResultOf(
        endpoint.connect(Factory.forProtocol(Recording))  # type: ignore[arg-type]
    )


class FakePortAgentTests(SynchronousTestCase):
    """
    L{FakePortAgent}: chosen bytes, chosen times, a scripted command port.
    """

    def test_endpoints(self) -> None:
        """
        Its endpoints are stream client endpoints, also found by port.
        """
        agent = FakePortAgent()
        self.assertTrue(verifyObject(IStreamClientEndpoint, agent.data_endpoint))
        self.assertTrue(verifyObject(IStreamClientEndpoint, agent.command_endpoint))
        self.assertIs(agent.endpoint_for("any", agent.data_port), agent.data_endpoint)
        self.assertIs(
            agent.endpoint_for("any", agent.command_port), agent.command_endpoint
        )
        self.assertRaises(KeyError, agent.endpoint_for, "any", 1)

    def test_deliverWithTimestamps(self) -> None:
        """
        C{deliver} sends DATA_FROM_INSTRUMENT packets stamped with the time
        given (Unix time or NTP fields), or with the clock's time.
        """
        clock = Clock()
        clock.advance(1_700_000_000.5)
        agent = FakePortAgent(clock)
        protocol = connect(self, agent.data_endpoint)
        sent = agent.deliver(b"a", at=1_600_000_000.25)
        agent.deliver(b"b", seconds=7, fraction=9)
        agent.deliver(b"c")
        self.assertEqual(
            sent,
            encode_packet(
                PacketType.DATA_FROM_INSTRUMENT, b"a", *unix_to_ntp(1_600_000_000.25)
            ),
        )
        a, b, c = protocol.packets()
        self.assertEqual((a.payload, a.unix_time), (b"a", 1_600_000_000.25))
        self.assertEqual((b.payload, b.seconds, b.fraction), (b"b", 7, 9))
        self.assertEqual((c.payload, c.unix_time), (b"c", 1_700_000_000.5))
        self.assertEqual({p.type for p in (a, b, c)}, {PacketType.DATA_FROM_INSTRUMENT})

    def test_oversizeSplit(self) -> None:
        """
        A delivery longer than one packet carries is split, as the real
        agent splits a long read.
        """
        agent = FakePortAgent()
        protocol = connect(self, agent.data_endpoint)
        agent.deliver(b"x" * (MAX_PAYLOAD_SIZE + 1))
        self.assertEqual(
            [len(p.payload) for p in protocol.packets()], [MAX_PAYLOAD_SIZE, 1]
        )

    def test_sendBytesAsIs(self) -> None:
        """
        C{send_bytes} sends junk or hand-made packets unchanged to every
        data client.
        """
        agent = FakePortAgent()
        one, two = (
            connect(self, agent.data_endpoint),
            connect(self, agent.data_endpoint),
        )
        agent.send_bytes(b"\x00junk")
        self.assertEqual((one.received, two.received), (b"\x00junk", b"\x00junk"))
        self.assertEqual(agent.data_clients, 2)

    def test_statusFaultHeartbeat(self) -> None:
        """
        Status, fault and heartbeat packets are sent as the real agent sends
        them; heartbeats also by themselves on the clock.
        """
        agent = FakePortAgent(heartbeat=2)
        protocol = connect(self, agent.data_endpoint)
        agent.set_instrument_connected(False)
        agent.fault("oops")
        agent.clock.pump([2, 2])
        self.assertEqual(
            [(p.type, p.payload) for p in protocol.packets()],
            [
                (PacketType.PORT_AGENT_STATUS, b"DISCONNECTED"),
                (PacketType.PORT_AGENT_FAULT, b"oops"),
                (PacketType.PORT_AGENT_HEARTBEAT, b"HB"),
                (PacketType.PORT_AGENT_HEARTBEAT, b"HB"),
            ],
        )

    def test_bytesFromDriver(self) -> None:
        """
        What a data client sends is recorded as sent to the instrument and
        echoed to data clients as DATA_FROM_DRIVER; with the instrument link
        down it is refused with a fault instead.
        """
        agent = FakePortAgent()
        protocol = connect(self, agent.data_endpoint)
        protocol.transport.write(b"TS\r\n")
        self.assertEqual(agent.received, b"TS\r\n")
        agent.set_instrument_connected(False)
        protocol.transport.write(b"DS\r\n")
        self.assertEqual(agent.received, b"TS\r\n")
        self.assertEqual(
            [(p.type, p.payload) for p in protocol.packets()],
            [
                (PacketType.DATA_FROM_DRIVER, b"TS\r\n"),
                (PacketType.PORT_AGENT_STATUS, b"DISCONNECTED"),
                (
                    PacketType.PORT_AGENT_FAULT,
                    b"instrument link is down: 4 bytes from a data client not sent",
                ),
            ],
        )

    def test_commandPort(self) -> None:
        """
        The command port answers each line with one line, as the real one
        does, and records the commands.
        """
        agent = FakePortAgent(name="CTD", version="9.9")
        protocol = connect(self, agent.command_endpoint)
        for line in [b"ping", b"get_state", b"get_version", b"bogus", b"break 10"]:
            protocol.transport.write(line + b"\n")
        agent.breakable = True
        protocol.transport.write(b"break 10\n")
        agent.replies["ping"] = "ERROR no"
        protocol.transport.write(b"ping\n")
        self.assertEqual(
            protocol.received.decode().splitlines(),
            [
                "pong CTD 9.9",
                "CONNECTED",
                "9.9",
                "ERROR unknown command 'bogus'; valid commands: get_state, "
                "get_config, get_version, get_stats, ping, break [MS], "
                "heartbeat_interval SECONDS, rotate, help",
                "ERROR break: the instrument link tcp:host=fake:port=1 cannot "
                "send a break (only serial links can)",
                "OK break 10 ms",
                "ERROR no",
            ],
        )
        self.assertEqual(agent.commands[0], "ping")
        self.assertEqual(len(agent.commands), 7)

    def test_refusalsAreFaults(self) -> None:
        """
        As from the real agent, every ERROR reply also reaches data clients
        as a PORT_AGENT_FAULT, and C{get_config} carries OOI's keys.
        """
        agent = FakePortAgent(name="CTD")
        data = connect(self, agent.data_endpoint)
        commands = connect(self, agent.command_endpoint)
        commands.transport.write(b"bogus\nbreak 10\nget_config\n")
        packets = data.packets()
        faults = [p.payload for p in packets if p.type is PacketType.PORT_AGENT_FAULT]
        self.assertEqual(len(faults), 2)
        self.assertTrue(faults[0].startswith(b"command port: unknown command 'bogus'"))
        self.assertEqual(
            faults[1],
            b"command port: break: the instrument link tcp:host=fake:port=1 "
            b"cannot send a break (only serial links can)",
        )
        [config] = [p for p in packets if p.type is PacketType.PORT_AGENT_CONFIG]
        self.assertEqual(json.loads(config.payload)["refdes"], "CTD")

    def test_hang(self) -> None:
        """
        A hung agent keeps connections open but answers nothing and sends
        no heartbeats; C{start} brings it back.
        """
        agent = FakePortAgent(heartbeat=1)
        data = connect(self, agent.data_endpoint)
        commands = connect(self, agent.command_endpoint)
        agent.hang()
        commands.transport.write(b"ping\n")
        agent.clock.advance(10)
        self.assertEqual((data.received, commands.received), (b"", b""))
        self.assertIsNone(data.lost)
        agent.start()
        agent.clock.advance(1)
        self.assertEqual(len(data.packets()), 1)

    def test_stopAndStart(self) -> None:
        """
        A stopped agent closes its connections and refuses new ones until
        started again.
        """
        agent = FakePortAgent()
        protocol = connect(self, agent.data_endpoint)
        agent.stop()
        assert protocol.lost is not None
        self.assertTrue(protocol.lost.check(ConnectionDone))
        self.assertEqual(agent.data_clients, 0)
        self.failureResultOf(
            agent.data_endpoint.connect(Factory.forProtocol(Recording)),  # type: ignore[arg-type]
            ConnectionRefusedError,
        )
        agent.start()
        connect(self, agent.data_endpoint)
        self.assertEqual(agent.connections["data"], 2)

    def test_deliveriesNeverNest(self) -> None:
        """
        A reply written while a protocol is handling a delivery reaches its
        peer after that delivery returns, never inside it.
        """
        agent = FakePortAgent()

        class Asker(Recording):
            def dataReceived(self, data: bytes) -> None:
                super().dataReceived(data)
                if data.count(b"\n") == 1 and data.startswith(b"pong"):
                    # Answering a reply at once must not recurse into us.
                    self.depth += 1
                    self.transport.write(b"get_state\n")  # type: ignore[union-attr]
                    self.depth -= 1

        protocol = self.successResultOf(
            agent.command_endpoint.connect(Factory.forProtocol(Asker))  # type: ignore[arg-type]
        )
        protocol.transport.write(b"ping\n")
        self.assertEqual(
            protocol.received, b"pong fake-instrument 0.0-fake\nCONNECTED\n"
        )
        self.assertEqual(protocol.max_depth, 1)

    def test_client(self) -> None:
        """
        C{client} gives a client of this agent on its clock, reconnecting
        after exactly 1, 2, 4 ... seconds.
        """
        agent = FakePortAgent()
        client = agent.client(heartbeat_interval=0)
        self.assertTrue(self.successResultOf(client.connect()).ready)
        agent.stop()
        agent.start()
        agent.clock.advance(0.999)
        self.assertFalse(client.state.agent)
        agent.clock.advance(0.001)
        self.assertTrue(client.state.agent)


def within(d: Deferred[Any], what: str, seconds: float = 15.0) -> Deferred[Any]:
    """
    Fail with a message saying what was awaited if C{d} takes longer than
    C{seconds}.
    """
    from twisted.internet import reactor

    def timed_out(reason: Failure) -> Any:
        if reason.check(TimeoutError):
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        return reason

    return d.addTimeout(seconds, reactor).addErrback(timed_out)


class CleanupRecorder:
    """
    Stands in for a test case given to a fixture, so a test can run the
    fixture's cleanups itself and check what they did.
    """

    def __init__(self, test: TestCase) -> None:
        self.test = test
        self.cleanups: list[Any] = []

    def mktemp(self) -> str:
        return self.test.mktemp()

    def addCleanup(self, f: Any, *args: Any) -> None:
        self.cleanups.append((f, args))

    async def run_cleanups(self) -> None:
        while self.cleanups:
            f, args = self.cleanups.pop()
            await maybeDeferred(f, *args)


class FixtureTests(TestCase):
    """
    The fixtures that run real agents and instruments for a test.
    """

    async def test_tcpInstrument(self) -> None:
        """
        A L{TCPInstrument} records what it receives, sends what it is told,
        and refuses a second client while one is connected.
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        instrument = await tcp_instrument_for(self)
        self.assertEqual(
            instrument.endpoint, f"tcp:host=127.0.0.1:port={instrument.port}"
        )
        self.assertRaises(RuntimeError, instrument.send, b"x")
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", instrument.port)
        client = AccumulatingProtocol()
        client.closedDeferred = Deferred()
        await connectProtocol(endpoint, client)
        await within(instrument.wait_connected(), "the connection")
        client.transport.write(b"TS\r\n")  # type: ignore[union-attr]
        self.assertIn(b"TS", await within(instrument.wait_for(b"TS\r\n"), "TS"))
        second = AccumulatingProtocol()
        second.closedDeferred = Deferred()
        await connectProtocol(endpoint, second)
        await within(second.closedDeferred, "the second client refused")
        self.assertEqual(instrument.connections, 1)
        instrument.send(b"S>")
        await instrument.disconnect()
        await within(client.closedDeferred, "the first client dropped")
        self.assertEqual(client.data, b"S>")
        self.assertFalse(instrument.connected)

    async def test_portAgentFor(self) -> None:
        """
        C{port_agent_for} launches an agent in front of an instrument, with
        its datalog in the test's temporary directory, and registers a
        cleanup that stops it; C{client_for} gives a connected client and
        registers its disconnect.
        """
        instrument = await tcp_instrument_for(self)
        fixture = CleanupRecorder(self)
        handle = await port_agent_for(
            fixture,  # type: ignore[arg-type]
            instrument.endpoint,
            name="CTD-fixture",
            heartbeat=1,
        )
        self.addCleanup(handle.stop)
        client = await client_for(fixture, handle)  # type: ignore[arg-type]
        self.assertTrue((await client.ping()).startswith("pong CTD-fixture "))
        config = await client.get_config()
        self.assertTrue(os.path.isabs(config["datalog_dir"]), config)
        self.assertTrue(os.path.isdir(config["datalog_dir"]), config)
        self.assertEqual(len(fixture.cleanups), 2)
        await within(Deferred.fromCoroutine(fixture.run_cleanups()), "cleanups")
        self.assertFalse(client.state.agent)
        self.assertEqual(handle.exit_status, 0)
        with self.assertRaises(ProcessLookupError):
            os.kill(handle.pid, 0)
