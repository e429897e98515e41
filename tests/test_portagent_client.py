"""
Tests for L{instrumentd.portagent.client}: packets in, bytes out, the
command port, heartbeat watching and reconnection — in memory with a
L{FakePortAgent} and a L{Clock}, and for real against a launched agent.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from instrumentd.interfaces import LinkState
from instrumentd.packet import Packet, PacketType, encode_packet
from instrumentd.portagent.client import (
    PortAgentClient,
    PortAgentCommandError,
    PortAgentCommandTimeout,
    PortAgentError,
    PortAgentNotConnected,
)
from instrumentd.testing import (
    FakePortAgent,
    client_for,
    port_agent_for,
    tcp_instrument_for,
)


class Recorder:
    """
    Collects what a client hands to its attached protocol.
    """

    def __init__(self) -> None:
        self.data: list[tuple[bytes, Packet]] = []
        self.states: list[LinkState] = []
        self.faults: list[str] = []

    def attach_to(self, client: PortAgentClient) -> None:
        client.attach(
            lambda data, packet: self.data.append((data, packet)),
            self.states.append,
            self.faults.append,
        )

    @property
    def payloads(self) -> bytes:
        return b"".join(data for data, _ in self.data)


def connected(
    test: SynchronousTestCase, **options: Any
) -> tuple[FakePortAgent, PortAgentClient, Recorder]:
    """
    A fake agent and a client connected to it, with what the client hands
    on recorded.
    """
    agent_options = {
        k: options.pop(k)
        for k in ("heartbeat", "instrument_connected", "breakable")
        if k in options
    }
    agent = FakePortAgent(**agent_options)
    client = agent.client(**options)
    recorder = Recorder()
    recorder.attach_to(client)
    test.successResultOf(client.connect())
    return agent, client, recorder


@implementer(IStreamClientEndpoint)
class StringEndpoint:
    """
    An endpoint connecting each protocol to a new L{StringTransport}, so a
    test can feed it bytes by hand and read what it wrote.
    """

    def __init__(self) -> None:
        self.protocols: list[Any] = []

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        protocol = protocolFactory.buildProtocol(None)
        assert protocol is not None
        protocol.makeConnection(StringTransport())
        self.protocols.append(protocol)
        return succeed(protocol)


@implementer(IStreamClientEndpoint)
class LaterFailingEndpoint:
    """
    An endpoint whose connection attempts are refused a second later.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        d: Deferred[IProtocol] = Deferred()
        self.clock.callLater(1, d.errback, ConnectionRefusedError())
        return d


class DataTests(SynchronousTestCase):
    """
    Packets from the data port.
    """

    def test_connectReportsLinkState(self) -> None:
        """
        C{connect} fires once both ports are connected, with the link state
        the agent reports, learning its heartbeat period on the way.
        """
        agent = FakePortAgent(heartbeat=5)
        client = agent.client()
        state = self.successResultOf(client.connect())
        self.assertEqual(state, LinkState(agent=True, commands=True, instrument=True))
        self.assertTrue(state.ready)
        self.assertEqual(agent.commands, ["get_config", "get_state"])
        self.assertEqual(client.heartbeat_interval, 5)

    def test_connectWithInstrumentDown(self) -> None:
        """
        An agent whose instrument link is down is reachable but not ready.
        """
        _, client, _ = connected(self, instrument_connected=False)
        self.assertEqual(
            client.state, LinkState(agent=True, commands=True, instrument=False)
        )
        self.assertFalse(client.state.ready)

    def test_dataWithTimestamp(self) -> None:
        """
        Each DATA_FROM_INSTRUMENT payload goes to the callback with the
        packet that carried it, and so with the agent's NTP timestamp.
        """
        agent, _, recorder = connected(self)
        agent.deliver(b"#12.5,3.1\r\n", seconds=0xDB300300, fraction=0x80000000)
        agent.deliver(b"S>", at=1_700_000_000.25)
        [(data1, packet1), (data2, packet2)] = recorder.data
        self.assertEqual(data1, b"#12.5,3.1\r\n")
        self.assertEqual((packet1.seconds, packet1.fraction), (0xDB300300, 0x80000000))
        self.assertEqual(packet1.type, PacketType.DATA_FROM_INSTRUMENT)
        self.assertEqual(data2, b"S>")
        self.assertEqual(packet2.unix_time, 1_700_000_000.25)

    def test_otherPacketsAreNotData(self) -> None:
        """
        Heartbeats, config and DATA_FROM_DRIVER echoes are not handed on as
        instrument data.
        """
        agent, client, recorder = connected(self)
        agent.heartbeat()
        agent.send_packet(PacketType.DATA_FROM_DRIVER, b"TS\r\n")
        agent.send_packet(PacketType.PORT_AGENT_CONFIG, b"0.1.0")
        agent.send_packet(PacketType.UNKNOWN, b"?")
        self.assertEqual(recorder.data, [])
        self.assertEqual(client.counters.packets, 4 + 2)  # plus connect's

    def test_junkAndCorruptPacketsSkippedAndCounted(self) -> None:
        """
        Junk before, between and inside packets, a bad checksum and a bad
        length are skipped and counted; the good packets around them arrive.
        """
        agent, client, recorder = connected(self)
        before = client.counters.packets
        good = encode_packet(PacketType.DATA_FROM_INSTRUMENT, b"good", 1, 0)
        corrupt = bytearray(
            encode_packet(PacketType.DATA_FROM_INSTRUMENT, b"bad!", 1, 0)
        )
        corrupt[-1] ^= 0xFF
        short = bytearray(good)
        short[4:6] = (3).to_bytes(2, "big")  # length below the header size
        agent.send_bytes(b"noise" + good + bytes(corrupt) + b"\x00\xa3" + bytes(short))
        agent.send_bytes(good)
        self.assertEqual(recorder.payloads, b"goodgood")
        counters = client.counters
        self.assertEqual(counters.packets - before, 2)
        self.assertEqual(counters.bad_checksum, 1)
        self.assertEqual(counters.bad_length, 1)
        self.assertGreater(counters.junk_bytes, len(b"noise"))

    @settings(max_examples=50, deadline=None)
    @given(
        payloads=st.lists(st.binary(min_size=0, max_size=40), max_size=8),
        junk=st.binary(max_size=20).filter(lambda b: b"\xa3" not in b),
        cuts=st.lists(st.integers(min_value=1, max_value=25), max_size=30),
    )
    def test_anyChunking(
        self, payloads: list[bytes], junk: bytes, cuts: list[int]
    ) -> None:
        """
        Whatever the chunking of the stream and junk before it, every
        payload arrives once, in order.
        """
        agent, _, recorder = connected(self)
        stream = junk + b"".join(
            encode_packet(PacketType.DATA_FROM_INSTRUMENT, p, 7, 0) for p in payloads
        )
        for size in [*cuts, len(stream)]:
            chunk, stream = stream[:size], stream[size:]
            agent.send_bytes(chunk)
        self.assertEqual([d for d, _ in recorder.data], payloads)

    def test_partialPacketDroppedOnReconnect(self) -> None:
        """
        Half a packet before a lost connection is not glued to the bytes of
        the next connection.
        """
        agent, client, recorder = connected(self)
        packet = encode_packet(PacketType.DATA_FROM_INSTRUMENT, b"cut", 1, 0)
        agent.send_bytes(packet[:10])
        agent.stop()
        agent.start()
        agent.clock.advance(1)
        self.assertTrue(client.state.agent)
        agent.deliver(b"whole")
        self.assertEqual(recorder.payloads, b"whole")

    def test_statusPackets(self) -> None:
        """
        CONNECTED and DISCONNECTED status packets turn the instrument link
        up and down, and each change is announced once.
        """
        agent, client, recorder = connected(self)
        recorder.states.clear()
        agent.set_instrument_connected(False)
        agent.set_instrument_connected(False)
        agent.set_instrument_connected(True)
        self.assertEqual([s.instrument for s in recorder.states], [False, True])
        self.assertEqual(client.state.instrument, True)

    def test_unknownStatusIgnored(self) -> None:
        """
        A status text other than CONNECTED or DISCONNECTED changes nothing.
        """
        agent, client, recorder = connected(self)
        recorder.states.clear()
        agent.send_packet(PacketType.PORT_AGENT_STATUS, b"BOOTING")
        self.assertEqual(recorder.states, [])
        self.assertTrue(client.state.instrument)

    def test_fault(self) -> None:
        """
        A PORT_AGENT_FAULT packet's text goes to the fault callback.
        """
        agent, _, recorder = connected(self)
        agent.fault("instrument link is down: 4 bytes not sent")
        self.assertEqual(recorder.faults, ["instrument link is down: 4 bytes not sent"])

    def test_callbackErrorsAreLogged(self) -> None:
        """
        A data callback that raises is logged and the client carries on.
        """
        agent = FakePortAgent()
        client = agent.client()
        seen: list[bytes] = []

        def explode(data: bytes, packet: Packet) -> None:
            seen.append(data)
            raise ZeroDivisionError("driver bug")

        client.attach(explode)
        self.successResultOf(client.connect())
        agent.deliver(b"one")
        agent.deliver(b"two")
        self.assertEqual(seen, [b"one", b"two"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_attachTwice(self) -> None:
        """
        Only one protocol is attached at a time; detach makes room.
        """
        client = FakePortAgent().client()
        client.attach(lambda d, p: None)
        error = self.assertRaises(PortAgentError, client.attach, lambda d, p: None)
        self.assertIn("already attached", str(error))
        client.detach()
        client.attach(lambda d, p: None)

    def test_detachStopsDelivery(self) -> None:
        """
        After detach, bytes are no longer handed on.
        """
        agent, client, recorder = connected(self)
        client.detach()
        agent.deliver(b"unseen")
        self.assertEqual(recorder.data, [])


class SendTests(SynchronousTestCase):
    """
    Bytes to the instrument.
    """

    def test_send(self) -> None:
        """
        C{send} writes to the instrument through the data port.
        """
        agent, client, _ = connected(self)
        client.send(b"TS\r\n")
        client.send(b"DS\r\n")
        self.assertEqual(agent.received, b"TS\r\nDS\r\n")

    def test_sendBeforeConnect(self) -> None:
        """
        C{send} before C{connect} fails at once and sends nothing.
        """
        agent = FakePortAgent()
        client = agent.client(description="agent X")
        error = self.assertRaises(PortAgentNotConnected, client.send, b"TS\r\n")
        self.assertEqual(str(error), "the agent X is not connected; 4 bytes not sent")
        self.assertEqual(agent.received, b"")

    def test_sendAfterAgentLost(self) -> None:
        """
        C{send} after the agent went away fails at once; nothing is queued
        to go out when it comes back.
        """
        agent, client, _ = connected(self, description="agent X")
        agent.stop()
        self.assertEqual(client.state, LinkState())
        error = self.assertRaises(PortAgentNotConnected, client.send, b"TS\r\n")
        self.assertEqual(str(error), "the agent X is not connected; 4 bytes not sent")
        agent.start()
        agent.clock.advance(1)
        self.assertTrue(client.state.ready)
        self.assertEqual(agent.received, b"")

    def test_sendWithInstrumentDown(self) -> None:
        """
        C{send} fails at once while the agent reports the instrument link
        down, since the agent would drop the bytes.
        """
        agent, client, _ = connected(self, description="agent X")
        agent.set_instrument_connected(False)
        error = self.assertRaises(PortAgentNotConnected, client.send, b"TS")
        self.assertEqual(
            str(error),
            "the agent X reports its instrument link DISCONNECTED; 2 bytes not sent",
        )


class CommandTests(SynchronousTestCase):
    """
    The command port.
    """

    def test_parsedReplies(self) -> None:
        """
        Each command fires with its reply: text, or decoded JSON for
        get_config and get_stats.
        """
        _, client, _ = connected(self)
        self.assertEqual(
            self.successResultOf(client.ping()), "pong fake-instrument 0.0-fake"
        )
        self.assertEqual(self.successResultOf(client.get_state()), "CONNECTED")
        self.assertEqual(self.successResultOf(client.get_version()), "0.0-fake")
        config = self.successResultOf(client.get_config())
        self.assertEqual(config["name"], "fake-instrument")
        stats = self.successResultOf(client.get_stats())
        self.assertEqual(stats["state"], "CONNECTED")

    def test_errorReply(self) -> None:
        """
        An ERROR reply fails the command with L{PortAgentCommandError}
        carrying the agent's text.
        """
        _, client, _ = connected(self)
        failure = self.failureResultOf(client.send_break(300), PortAgentCommandError)
        self.assertEqual(failure.value.command, "break 300")
        self.assertEqual(
            failure.value.reply,
            "ERROR break: the instrument link tcp:host=fake:port=1 cannot send a "
            "break (only serial links can)",
        )
        self.assertEqual(str(failure.value), failure.value.reply)

    def test_break(self) -> None:
        """
        A break on a link that can send one fires with the agent's OK.
        """
        agent, client, _ = connected(self, breakable=True)
        self.assertEqual(
            self.successResultOf(client.send_break(300)), "OK break 300 ms"
        )
        self.assertEqual(agent.commands[-1], "break 300")

    def test_notJSON(self) -> None:
        """
        A get_stats reply that is not a JSON object fails clearly.
        """
        agent, client, _ = connected(self)
        agent.replies["get_stats"] = "[1, 2]"
        failure = self.failureResultOf(client.get_stats(), PortAgentError)
        self.assertEqual(
            str(failure.value), "get_stats: the reply is not a JSON object: '[1, 2]'"
        )

    def test_commandWhileDisconnected(self) -> None:
        """
        A command while the command port is down fails at once.
        """
        client = FakePortAgent().client(description="agent X")
        failure = self.failureResultOf(client.ping(), PortAgentNotConnected)
        self.assertEqual(
            str(failure.value),
            "the agent X command port is not connected; 'ping' not sent",
        )

    def test_badCommandLine(self) -> None:
        """
        A command line with a line break (or not ASCII) is refused.
        """
        _, client, _ = connected(self)
        failure = self.failureResultOf(client.command("ping\nrotate"), ValueError)
        self.assertEqual(
            str(failure.value),
            "a command is one line of ASCII text, not 'ping\\nrotate'",
        )

    def _stringClient(self, **options: Any) -> tuple[PortAgentClient, Any, Clock]:
        clock = Clock()
        data, commands = StringEndpoint(), StringEndpoint()
        client = PortAgentClient(
            data, commands, clock=clock, heartbeat_interval=0, **options
        )
        client.connect()
        [protocol] = commands.protocols
        # connect's get_config (what the agent's link can do) and get_state
        protocol.dataReceived(b'{"link_can_break": false}\nCONNECTED\n')
        protocol.transport.clear()
        return client, protocol, clock

    def test_repliesInOrder(self) -> None:
        """
        Replies are matched to commands in the order they were sent, however
        they are chunked.
        """
        client, protocol, _ = self._stringClient()
        ping = client.ping()
        stats = client.get_stats()
        state = client.get_state()
        self.assertEqual(protocol.transport.value(), b"ping\nget_stats\nget_state\n")
        for chunk in (b"pong a 1\r", b'\n{"x": 1}\nDISCON', b"NECTED\n"):
            protocol.dataReceived(chunk)
        self.assertEqual(self.successResultOf(ping), "pong a 1")
        self.assertEqual(self.successResultOf(stats), {"x": 1})
        self.assertEqual(self.successResultOf(state), "DISCONNECTED")

    def test_timeout(self) -> None:
        """
        A command not answered within the timeout fails with
        L{PortAgentCommandTimeout}; its late reply is dropped rather than
        taken for the next command's.
        """
        client, protocol, clock = self._stringClient(command_timeout=5)
        ping = client.ping()
        clock.advance(4.9)
        self.assertNoResult(ping)
        clock.advance(0.1)
        failure = self.failureResultOf(ping, PortAgentCommandTimeout)
        self.assertEqual(
            str(failure.value), "the port agent did not answer 'ping' within 5 s"
        )
        version = client.get_version()
        protocol.dataReceived(b"pong late\n0.1.0\n")
        self.assertEqual(self.successResultOf(version), "0.1.0")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_breakTimeoutIncludesDuration(self) -> None:
        """
        A break's reply is awaited for the break's duration on top of the
        command timeout.
        """
        client, _, clock = self._stringClient(command_timeout=5)
        d = client.send_break(2000)
        clock.advance(6.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        self.failureResultOf(d, PortAgentCommandTimeout)

    def test_cancel(self) -> None:
        """
        A cancelled command stops its timer and its reply is dropped.
        """
        client, protocol, clock = self._stringClient(command_timeout=5)
        ping = client.ping()
        ping.cancel()
        self.failureResultOf(ping, CancelledError)
        self.assertEqual(clock.getDelayedCalls(), [])
        state = client.get_state()
        protocol.dataReceived(b"pong\nCONNECTED\n")
        self.assertEqual(self.successResultOf(state), "CONNECTED")

    def test_pendingFailOnConnectionLost(self) -> None:
        """
        Commands waiting when the command connection is lost fail with
        L{PortAgentNotConnected}.
        """
        agent, client, _ = connected(self)
        agent.answering = False
        ping = client.ping()
        agent.stop()
        failure = self.failureResultOf(ping, PortAgentNotConnected)
        self.assertIn("before the reply to 'ping'", str(failure.value))


class HeartbeatTests(SynchronousTestCase):
    """
    Watching the agent's heartbeats, and reconnecting.
    """

    def test_heartbeatsKeepAgentAlive(self) -> None:
        """
        While heartbeats arrive, the agent stays reachable however long.
        """
        agent, client, _ = connected(self, heartbeat=1)
        agent.clock.pump([1] * 100)
        self.assertTrue(client.state.ready)
        self.assertEqual(client.agent_losses, 0)

    def test_lossDetectedAndReconnected(self) -> None:
        """
        When nothing arrives for C{missed_heartbeats} intervals the agent is
        declared lost, both connections are dropped, and the client
        reconnects with backoff once the agent is back.
        """
        agent, client, recorder = connected(self, heartbeat=1, missed_heartbeats=3)
        clock = agent.clock
        recorder.states.clear()
        clock.advance(1)
        agent.hang()
        clock.advance(2.9)
        self.assertTrue(client.state.agent)
        clock.advance(0.1)
        self.assertEqual(client.agent_losses, 1)
        self.assertEqual(recorder.states, [LinkState()])
        self.assertEqual((agent.data_clients, agent.command_clients), (0, 0))
        # The agent stays away for a while: attempts after 1, 2 and 4 s fail.
        agent.stop()
        clock.pump([1, 2, 4])
        self.assertEqual(agent.connections, {"data": 1, "command": 1})
        agent.start()
        clock.advance(8)
        self.assertEqual(agent.connections, {"data": 2, "command": 2})
        self.assertTrue(client.state.ready)
        self.assertEqual(recorder.states[-1], LinkState(True, True, True))
        clock.pump([1] * 10)
        self.assertEqual(client.agent_losses, 1)

    def test_noRetryNotices(self) -> None:
        """
        Reconnecting to an agent that stays away logs no line per retry
        (ClientService's "Scheduling retry 1 to connect ..." notices).
        """
        agent, client, _ = connected(self, heartbeat=1, missed_heartbeats=3)
        clock = agent.clock
        with capturedLogs() as events:
            agent.hang()
            clock.advance(3)
            agent.stop()
            clock.pump([1] * 30)
        self.assertEqual(client.agent_losses, 1)
        self.assertEqual(
            [e for e in events if "Scheduling retry" in e.get("log_format", "")], []
        )

    def test_anyBytesCount(self) -> None:
        """
        Data keeps an agent alive as well as heartbeats do.
        """
        agent, client, _ = connected(self, heartbeat_interval=1)
        for _ in range(10):
            agent.clock.advance(2)
            agent.deliver(b"x")
        self.assertTrue(client.state.agent)

    def test_heartbeatOff(self) -> None:
        """
        With a heartbeat interval of 0, silence is not a loss.
        """
        agent, client, _ = connected(self, heartbeat_interval=0)
        agent.clock.advance(10_000)
        self.assertTrue(client.state.agent)
        self.assertEqual(agent.clock.getDelayedCalls(), [])

    def test_heartbeatChanged(self) -> None:
        """
        C{set_heartbeat_interval} changes the agent's period and the one
        watched.
        """
        agent, client, _ = connected(self, heartbeat=1)
        self.assertEqual(
            self.successResultOf(client.set_heartbeat_interval(5)),
            "OK heartbeat_interval 5",
        )
        self.assertEqual(client.heartbeat_interval, 5)
        agent.clock.pump([1] * 60)
        self.assertEqual(client.agent_losses, 0)

    def test_agentGoneIsImmediate(self) -> None:
        """
        A closed connection is noticed at once, without waiting for missed
        heartbeats.
        """
        agent, client, _ = connected(self, heartbeat=10)
        agent.stop()
        self.assertEqual(client.state, LinkState())
        self.assertEqual(client.agent_losses, 0)


class ConnectTests(SynchronousTestCase):
    """
    Connecting and disconnecting.
    """

    def test_unreachable(self) -> None:
        """
        C{connect} to an agent that is not there fails, and stops trying.
        """
        agent = FakePortAgent()
        agent.stop()
        client = agent.client(description="agent X")
        failure = self.failureResultOf(client.connect(), PortAgentNotConnected)
        self.assertEqual(
            str(failure.value),
            "cannot reach the agent X: Connection was refused by other side: "
            "fake port agent fake-instrument is down.",
        )
        self.assertEqual(agent.clock.getDelayedCalls(), [])

    def test_keepTrying(self) -> None:
        """
        With C{fail_after_failures=None}, C{connect} waits for the agent.
        """
        agent = FakePortAgent()
        agent.stop()
        client = agent.client()
        d = client.connect(fail_after_failures=None)
        agent.clock.advance(1)
        self.assertNoResult(d)
        agent.start()
        agent.clock.advance(2)
        self.assertTrue(self.successResultOf(d).ready)

    def test_disconnectLeavesNothing(self) -> None:
        """
        C{disconnect} closes both connections and leaves no timers.
        """
        agent, client, _ = connected(self, heartbeat_interval=1)
        self.successResultOf(client.disconnect())
        self.assertEqual((agent.data_clients, agent.command_clients), (0, 0))
        self.assertEqual(client.state, LinkState())
        self.assertEqual(agent.clock.getDelayedCalls(), [])
        self.assertRaises(PortAgentNotConnected, client.send, b"x")

    def test_unreachableLater(self) -> None:
        """
        A connection attempt that fails later (as a real one does) fails
        C{connect} and stops both services cleanly, although the failure is
        reported from inside L{ClientService}'s own state machine, which
        refuses to be stopped from there.
        """
        clock = Clock()
        endpoint = LaterFailingEndpoint(clock)
        client = PortAgentClient(endpoint, endpoint, clock=clock)
        d = client.connect()
        clock.advance(1)
        failure = self.failureResultOf(d, PortAgentNotConnected)
        self.assertIn("Connection was refused", str(failure.value))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_connectTwice(self) -> None:
        """
        C{connect} while connected is refused.
        """
        _, client, _ = connected(self)
        self.failureResultOf(client.connect(), PortAgentError)

    def test_reconnectAfterDisconnect(self) -> None:
        """
        A disconnected client can connect again.
        """
        agent, client, _ = connected(self)
        self.successResultOf(client.disconnect())
        self.assertTrue(self.successResultOf(client.connect()).ready)
        self.assertEqual(agent.connections, {"data": 2, "command": 2})


def within(d: Deferred[Any], what: str, seconds: float = 15.0) -> Deferred[Any]:
    """
    Fail with a message saying what was awaited if C{d} takes longer than
    C{seconds}.
    """
    from twisted.internet import reactor

    def timed_out(reason: Any) -> Any:
        if reason.check(defer.TimeoutError):
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        return reason

    return d.addTimeout(seconds, reactor).addErrback(timed_out)


class Watch:
    """
    Records what a live client hands on, with Deferreds for what a test
    waits for.
    """

    def __init__(self, client: PortAgentClient) -> None:
        self.client = client
        self.data = b""
        self.states: list[LinkState] = []
        self._waiting: list[tuple[Any, Deferred[None]]] = []
        client.attach(self._data, self._state)

    def _data(self, data: bytes, packet: Packet) -> None:
        self.data += data
        self._check()

    def _state(self, state: LinkState) -> None:
        self.states.append(state)
        self._check()

    def _check(self) -> None:
        still = []
        for test, d in self._waiting:
            if test(self):
                d.callback(None)
            else:
                still.append((test, d))
        self._waiting = still

    def until(self, test: Any, what: str) -> Deferred[None]:
        """
        Wait until C{test(self)} holds.
        """
        if test(self):
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append((test, d))
        return within(d, what)


class LiveTests(TestCase):
    """
    The client against real port agent processes in front of a loopback
    TCP instrument.
    """

    async def test_realAgent(self) -> None:
        """
        Data flows both ways, get_state, get_stats, get_config and ping
        answer, and a break on a TCP link fails with the agent's ERROR text.
        """
        instrument = await tcp_instrument_for(self)
        handle = await port_agent_for(self, instrument.endpoint, heartbeat=0.5)
        client = await client_for(self, handle)
        watch = Watch(client)
        await within(instrument.wait_connected(), "the agent to reach the instrument")
        await watch.until(lambda w: w.client.state.ready, "the link to be up")
        self.assertEqual(client.heartbeat_interval, 0.5)

        instrument.send(b"#20.1234, 3.5678, 12.345\r\n")
        await watch.until(lambda w: w.data.endswith(b"\r\n"), "instrument bytes")
        self.assertEqual(watch.data, b"#20.1234, 3.5678, 12.345\r\n")
        client.send(b"TS\r\n")
        await within(instrument.wait_for(b"TS\r\n"), "bytes at the instrument")

        self.assertEqual(await client.get_state(), "CONNECTED")
        stats = await client.get_stats()
        self.assertEqual(stats["instrument"]["bytes_in"], 26)
        self.assertEqual(stats["instrument"]["bytes_out"], 4)
        config = await client.get_config()
        self.assertEqual(config["name"], "test-instrument")
        self.assertTrue((await client.ping()).startswith("pong test-instrument "))
        with self.assertRaises(PortAgentCommandError) as caught:
            await client.send_break(100)
        self.assertEqual(
            caught.exception.reply,
            f"ERROR break: the instrument link {instrument.endpoint} cannot send "
            "a break (only serial links can)",
        )
        self.assertEqual(client.counters.bad_packets, 0)

    async def test_instrumentLinkDown(self) -> None:
        """
        When the instrument drops the agent's connection, the agent's
        DISCONNECTED status reaches the client, and sending fails at once.
        """
        instrument = await tcp_instrument_for(self)
        handle = await port_agent_for(
            self, instrument.endpoint, heartbeat=0.5, disconnect_grace=0
        )
        client = await client_for(self, handle)
        watch = Watch(client)
        await watch.until(lambda w: w.client.state.ready, "the link to be up")
        await instrument.stop()
        await watch.until(
            lambda w: w.client.state.instrument is False, "DISCONNECTED status"
        )
        self.assertRaises(PortAgentNotConnected, client.send, b"TS\r\n")

    async def test_hungAgentDetectedAndBack(self) -> None:
        """
        An agent process that stops (SIGSTOP) is declared lost after the
        missed heartbeats; once it runs again (SIGCONT) the client is back.
        """
        instrument = await tcp_instrument_for(self)
        handle = await port_agent_for(self, instrument.endpoint, heartbeat=0.2)
        client = await client_for(
            self, handle, missed_heartbeats=3, retry_policy=lambda attempt: 0.2
        )
        watch = Watch(client)
        await watch.until(lambda w: w.client.state.ready, "the link to be up")
        # SIGSTOP and SIGCONT by number: the launcher's signal() takes only
        # the names Twisted's signalProcess knows (TERM, KILL, INT).
        os.kill(handle.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, handle.pid, signal.SIGCONT)
        await watch.until(lambda w: not w.client.state.agent, "the agent lost")
        self.assertEqual(client.agent_losses, 1)
        os.kill(handle.pid, signal.SIGCONT)
        await watch.until(lambda w: w.client.state.ready, "the agent back")
        instrument.send(b"after\r\n")
        await watch.until(lambda w: b"after\r\n" in w.data, "bytes after recovery")

    async def test_stopLeavesNothing(self) -> None:
        """
        Once stopped, the agent process is gone and its ports are closed;
        the client notices at once.
        """
        instrument = await tcp_instrument_for(self)
        handle = await port_agent_for(self, instrument.endpoint)
        client = await client_for(self, handle, retry_policy=lambda attempt: 60.0)
        watch = Watch(client)
        status = await within(handle.stop(), "the agent to exit")
        self.assertEqual(status, 0)
        with self.assertRaises(ProcessLookupError):
            os.kill(handle.pid, 0)
        await watch.until(lambda w: not w.client.state.agent, "the loss noticed")
        probe = PortAgentClient.for_address(
            "127.0.0.1", handle.ports["data"], handle.ports["command"]
        )
        with self.assertRaises(PortAgentNotConnected):
            await probe.connect()
