"""
Tests for L{instrumentd.portagent.agent.PortAgent} with a memory reactor:
link state announcements, heartbeats, writes to the instrument, the command
port, and start/stop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import ConnectionDone, ConnectionRefusedError, NoRouteError
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from instrumentd.endpoints.datalog import DatalogEndpoint
from instrumentd.interfaces import IBreakableTransport
from instrumentd.packet import (
    Packet,
    PacketParser,
    PacketType,
    encode_packet,
    unix_to_ntp,
)
from instrumentd.portagent.agent import PortAgent, instrument_endpoint_description
from instrumentd.portagent.command import CommandPort
from instrumentd.portagent.lifecycle import ParentWatch
from instrumentd.portagent.listeners import (
    NOT_SENT_NOTICE,
    READ_ONLY_NOTICE,
    WRITER_NOTICE,
    DataClient,
    RawClient,
)
from instrumentd.portagent.options import PortAgentConfig
from tests.test_portagent_router import MemoryDataLog

START = 1_790_000_000.0  # 2026-09-21, any fixed time will do


def start_running(reactor: MemoryReactorClock) -> None:
    """
    Do what a real reactor does once running: call the callWhenRunning hooks.
    """
    reactor.running = True
    for hook, args, kwargs in reactor.whenRunningHooks:
        hook(*args, **kwargs)


def peer(port: int) -> IPv4Address:
    return IPv4Address("TCP", "127.0.0.1", port)


@implementer(IBreakableTransport)
class BreakableTransport(StringTransport):
    """
    A serial-like transport whose breaks end when the test says.
    """

    def __init__(self) -> None:
        super().__init__()
        self.breaks: list[tuple[int, Deferred[None]]] = []

    def send_break(self, duration_ms: int) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.breaks.append((duration_ms, d))
        return d


class AgentHarness:
    """
    A port agent on a memory reactor, with helpers to work its link.
    """

    def __init__(self, test: SynchronousTestCase, **overrides: Any) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(START)
        self.datalog = MemoryDataLog()
        settings: dict[str, Any] = {
            "name": "TEST01",
            "instrument": "tcp:host=127.0.0.1:port=4001",
            "heartbeat": 0.0,
            "disconnect_grace": 10.0,
            "status_file": os.path.join(test.mktemp() + "-status.json"),
        }
        quiet = overrides.pop("quiet_start", False)
        settings.update(overrides)
        self.config = PortAgentConfig(**settings)
        self.agent = PortAgent(self.config, reactor=self.reactor, datalog=self.datalog)
        self.agent.quiet_start = quiet
        self.agent.startService()
        test.addCleanup(self.stop)
        self.instrument: Protocol | None = None

    def stop(self) -> None:
        if self.agent.running:
            self.agent.stopService()

    def link_up(self, transport: StringTransport | None = None) -> StringTransport:
        factory = self.reactor.tcpClients[-1][2]
        protocol = factory.buildProtocol(None)
        transport = transport or StringTransport()
        protocol.makeConnection(transport)
        self.instrument = protocol
        return transport

    def link_down(self) -> None:
        assert self.instrument is not None
        self.instrument.connectionLost(Failure(ConnectionDone()))
        self.instrument = None

    def data_client(self, port: int = 50000) -> StringTransport:
        transport = StringTransport(peerAddress=peer(port))
        DataClient(self.agent).makeConnection(transport)
        return transport

    def logged(self) -> list[Packet]:
        return PacketParser().feed(b"".join(self.datalog.packets))


def packets(transport: StringTransport) -> list[Packet]:
    return PacketParser().feed(transport.value())


def statuses(items: list[Packet]) -> list[bytes]:
    return [p.payload for p in items if p.type == PacketType.PORT_AGENT_STATUS]


class LinkStateTests(SynchronousTestCase):
    """
    CONNECTED is announced at once; DISCONNECTED only after the grace period.
    """

    def test_connectedAnnounced(self) -> None:
        """
        When the link comes up, data clients and the datalog get CONNECTED.
        """
        h = AgentHarness(self)
        client = h.data_client()
        h.link_up()
        self.assertEqual(statuses(packets(client)), [b"CONNECTED"])
        self.assertEqual(statuses(h.logged()), [b"CONNECTED"])
        self.assertEqual(h.agent.state, "CONNECTED")

    def test_blipNotAnnounced(self) -> None:
        """
        A drop shorter than the grace period is never announced.
        """
        h = AgentHarness(self, disconnect_grace=10.0)
        client = h.data_client()
        h.link_up()
        h.link_down()
        h.reactor.advance(9.9)
        h.link_up()
        h.reactor.advance(60)
        self.assertEqual(statuses(packets(client)), [b"CONNECTED"])
        self.assertEqual(h.agent.stats()["instrument"]["reconnects"], 1)  # type: ignore[index]

    def test_disconnectedAfterGrace(self) -> None:
        """
        A link down for the whole grace period is announced DISCONNECTED
        once, and CONNECTED again when it returns.
        """
        h = AgentHarness(self, disconnect_grace=10.0)
        client = h.data_client()
        h.link_up()
        h.link_down()
        h.reactor.advance(9.5)
        self.assertEqual(statuses(packets(client)), [b"CONNECTED"])
        h.reactor.advance(0.5)
        self.assertEqual(statuses(packets(client)), [b"CONNECTED", b"DISCONNECTED"])
        self.assertEqual(h.agent.state, "DISCONNECTED")
        h.reactor.advance(100)
        h.link_up()
        self.assertEqual(
            statuses(packets(client)), [b"CONNECTED", b"DISCONNECTED", b"CONNECTED"]
        )

    def test_neverConnected(self) -> None:
        """
        An instrument that never answers is announced DISCONNECTED after
        the grace period from start.
        """
        h = AgentHarness(self, disconnect_grace=5.0)
        client = h.data_client()
        h.reactor.advance(5)
        self.assertEqual(statuses(packets(client)), [b"DISCONNECTED"])

    def test_problemTold(self) -> None:
        """
        When DISCONNECTED is announced, a PORT_AGENT_FAULT follows saying
        since when and why; a repeated failure tells nothing more, a new
        reason is told once; get_stats has the same under C{link}.
        """
        h = AgentHarness(self, disconnect_grace=5.0)
        client = h.data_client()

        def refuse(error: Exception) -> None:
            connector = h.reactor.connectors[-1]
            h.reactor.tcpClients[-1][2].clientConnectionFailed(
                connector, Failure(error)
            )

        def faults() -> list[bytes]:
            return [
                p.payload
                for p in packets(client)
                if p.type == PacketType.PORT_AGENT_FAULT
            ]

        refuse(ConnectionRefusedError())
        self.assertEqual(faults(), [])
        h.reactor.advance(5)
        told = b"instrument link down since 2026-09-21T14:13:20Z: connection refused"
        self.assertEqual(faults(), [told])
        for _ in range(3):
            h.reactor.advance(60)
            refuse(ConnectionRefusedError())
        self.assertEqual(faults(), [told])
        h.reactor.advance(60)
        refuse(NoRouteError())
        self.assertEqual(
            faults(),
            [
                told,
                b"instrument link down since 2026-09-21T14:13:20Z: no route to host",
            ],
        )
        link = h.agent.stats()["link"]
        self.assertEqual(
            link,
            {
                "up": False,
                "down_since": START,
                "last_error": "no route to host",
                "last_error_time": h.reactor.seconds(),
                "ended": None,
            },
        )

    def test_zeroGrace(self) -> None:
        """
        With no grace, a drop is announced on the next reactor turn.
        """
        h = AgentHarness(self, disconnect_grace=0.0)
        h.link_up()
        client = h.data_client()
        h.link_down()
        h.reactor.advance(0)
        self.assertEqual(statuses(packets(client)), [b"DISCONNECTED"])

    def test_dataTimestampedAtRead(self) -> None:
        """
        Instrument bytes are recorded with the time they were read.
        """
        h = AgentHarness(self)
        link = h.link_up()
        del link
        h.reactor.advance(2.25)
        assert h.instrument is not None
        h.instrument.dataReceived(b"S>")
        [data] = [p for p in h.logged() if p.type == PacketType.DATA_FROM_INSTRUMENT]
        self.assertEqual(data.payload, b"S>")
        self.assertAlmostEqual(data.unix_time, START + 2.25, places=5)
        self.assertEqual(h.agent.stats()["instrument"]["bytes_in"], 2)  # type: ignore[index]


class ReplayTests(SynchronousTestCase):
    """
    An agent whose instrument is a recording (C{datalog:}) plays it once and
    reports the link as ended, unless asked to loop; C{demo} loops.
    """

    def recording(self, reads: int) -> str:
        """
        A datalog file of C{reads} instrument reads, one a second.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            for i in range(reads):
                f.write(
                    encode_packet(
                        PacketType.DATA_FROM_INSTRUMENT,
                        b"read %d\r\n" % i,
                        *unix_to_ntp(START + i),
                    )
                )
        return path

    def test_playedOnce(self) -> None:
        """
        At the end of the recording the link ends: DISCONNECTED is announced
        at once (there is no grace to give) with a fault saying why, the
        agent does not reconnect, and no read is recorded twice.
        """
        h = AgentHarness(self, instrument=f"datalog:{self.recording(3)}:speed=0")
        client = h.data_client()
        h.reactor.advance(0)
        h.reactor.pump([1] * 600)
        reads = [p for p in h.logged() if p.type == PacketType.DATA_FROM_INSTRUMENT]
        self.assertEqual(
            [p.payload for p in reads], [b"read 0\r\n", b"read 1\r\n", b"read 2\r\n"]
        )
        self.assertEqual(statuses(h.logged()), [b"CONNECTED", b"DISCONNECTED"])
        got = packets(client)
        self.assertEqual(statuses(got), [b"DISCONNECTED"])
        [fault] = [p.payload for p in got if p.type == PacketType.PORT_AGENT_FAULT]
        self.assertRegex(
            fault.decode(),
            r"^instrument link ended at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: end of "
            r"the recording \(played once; loop=true repeats it\); not reconnecting$",
        )
        stats = h.agent.stats()
        self.assertEqual(stats["state"], "DISCONNECTED")
        self.assertFalse(stats["link_up"])
        self.assertEqual(
            stats["link"]["ended"],  # type: ignore[index]
            "end of the recording (played once; loop=true repeats it)",
        )
        self.assertEqual(stats["instrument"]["connects"], 1)  # type: ignore[index]
        self.assertEqual(stats["instrument"]["connect_failures"], 0)  # type: ignore[index]

    def test_loop(self) -> None:
        """
        With C{loop=true} the recording repeats on the same link, which
        stays up.
        """
        h = AgentHarness(
            self, instrument=f"datalog:{self.recording(3)}:speed=1:loop=true"
        )
        client = h.data_client()
        h.reactor.advance(0)
        h.reactor.pump([0.5] * 20)
        reads = [p for p in h.logged() if p.type == PacketType.DATA_FROM_INSTRUMENT]
        self.assertGreater(len(reads), 6)
        self.assertEqual(statuses(h.logged()), [b"CONNECTED"])
        self.assertEqual(statuses(packets(client)), [])
        self.assertIsNone(h.agent.stats()["link"]["ended"])  # type: ignore[index]
        self.assertTrue(h.agent.link.connected)

    def test_demoLoops(self) -> None:
        """
        C{--instrument demo} asks for a loop: after the ten minutes of the
        built-in recording, it plays again without the link dropping.
        """
        endpoint = clientFromString(Clock(), instrument_endpoint_description("demo"))
        assert isinstance(endpoint, DatalogEndpoint)
        self.assertTrue(endpoint.loop)
        h = AgentHarness(self, instrument="demo")
        h.reactor.advance(0)
        h.reactor.pump([5] * 2 * 130)
        reads = [p for p in h.logged() if p.type == PacketType.DATA_FROM_INSTRUMENT]
        self.assertGreater(len(reads), 200)
        self.assertEqual(statuses(h.logged()), [b"CONNECTED"])
        self.assertEqual(h.agent.stats()["instrument"]["connects"], 1)  # type: ignore[index]


class HeartbeatTests(SynchronousTestCase):
    """
    Heartbeats go to data clients at the set interval.
    """

    def test_interval(self) -> None:
        """
        Heartbeats come every interval with payload HB; 0 turns them off.
        """
        h = AgentHarness(self, heartbeat=2.0)
        client = h.data_client()
        h.reactor.advance(2)
        h.reactor.advance(2)
        beats = [
            p for p in packets(client) if p.type == PacketType.PORT_AGENT_HEARTBEAT
        ]
        self.assertEqual([p.payload for p in beats], [b"HB", b"HB"])
        h.agent.set_heartbeat_interval(0)
        h.reactor.advance(10)
        self.assertEqual(
            len(
                [
                    p
                    for p in packets(client)
                    if p.type == PacketType.PORT_AGENT_HEARTBEAT
                ]
            ),
            2,
        )


class ToInstrumentTests(SynchronousTestCase):
    """
    Bytes from clients go to the instrument and are recorded.
    """

    def test_dataClientWrites(self) -> None:
        """
        What a data client sends reaches the instrument and is recorded as
        DATA_FROM_DRIVER, but not echoed to data clients.
        """
        h = AgentHarness(self)
        link = h.link_up()
        transport = StringTransport(peerAddress=peer(1))
        client = DataClient(h.agent)
        client.makeConnection(transport)
        client.dataReceived(b"DS\r\n")
        self.assertEqual(link.value(), b"DS\r\n")
        driver = [p for p in h.logged() if p.type == PacketType.DATA_FROM_DRIVER]
        self.assertEqual([p.payload for p in driver], [b"DS\r\n"])
        self.assertNotIn(
            PacketType.DATA_FROM_DRIVER, [p.type for p in packets(transport)]
        )

    def test_linkDown(self) -> None:
        """
        Bytes sent while the link is down are dropped, counted, and a fault
        tells data clients who lost what.
        """
        h = AgentHarness(self)
        transport = StringTransport(peerAddress=peer(7))
        client = DataClient(h.agent)
        client.makeConnection(transport)
        client.dataReceived(b"TS\r\n")
        faults = [
            p.payload
            for p in packets(transport)
            if p.type == PacketType.PORT_AGENT_FAULT
        ]
        self.assertEqual(len(faults), 1)
        self.assertIn(b"4 bytes from data client 127.0.0.1:7 not sent", faults[0])
        self.assertEqual(h.agent.stats()["instrument"]["bytes_not_sent"], 4)  # type: ignore[index]

    def test_rawWriterToldWhenNotSent(self) -> None:
        """
        The raw writer is told when what it typed could not be sent.
        """
        h = AgentHarness(self)
        transport = StringTransport(peerAddress=peer(3))
        writer = RawClient(h.agent)
        writer.makeConnection(transport)
        writer.dataReceived(b"DS\r\n")
        self.assertEqual(transport.value(), NOT_SENT_NOTICE)

    def test_backlogged(self) -> None:
        """
        Bytes sent while the instrument's line is backed up are dropped,
        counted, and a fault says so, instead of growing memory.
        """
        h = AgentHarness(self)
        link = h.link_up()
        link.producer.pauseProducing()
        transport = StringTransport(peerAddress=peer(8))
        client = DataClient(h.agent)
        client.makeConnection(transport)
        client.dataReceived(b"x" * 100)
        faults = [
            p.payload
            for p in packets(transport)
            if p.type == PacketType.PORT_AGENT_FAULT
        ]
        self.assertEqual(len(faults), 1)
        self.assertIn(b"backed up", faults[0])
        self.assertIn(b"100 bytes from data client 127.0.0.1:8 not sent", faults[0])
        self.assertEqual(link.value(), b"")
        self.assertEqual(h.agent.stats()["instrument"]["bytes_not_sent"], 100)  # type: ignore[index]

    def test_rawWriterAndReaders(self) -> None:
        """
        The first raw client writes; later ones are told they are read-only
        and are ignored until the writer leaves, when the next is told it
        has the line.
        """
        h = AgentHarness(self)
        link = h.link_up()
        t1, t2 = (
            StringTransport(peerAddress=peer(1)),
            StringTransport(peerAddress=peer(2)),
        )
        first, second = RawClient(h.agent), RawClient(h.agent)
        first.makeConnection(t1)
        second.makeConnection(t2)
        self.assertEqual(t1.value(), b"")
        self.assertEqual(t2.value(), READ_ONLY_NOTICE)
        second.dataReceived(b"ignored")
        first.dataReceived(b"wake\r\n")
        self.assertEqual(link.value(), b"wake\r\n")
        first.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(t2.value(), READ_ONLY_NOTICE + WRITER_NOTICE)
        second.dataReceived(b"DS\r\n")
        self.assertEqual(link.value(), b"wake\r\nDS\r\n")
        assert h.instrument is not None
        h.instrument.dataReceived(b"S>")
        self.assertTrue(t2.value().endswith(b"S>"))


class CommandPortTests(SynchronousTestCase):
    """
    The command port answers every line with exactly one line.
    """

    def setUp(self) -> None:
        self.h = AgentHarness(self)
        self.transport = StringTransport(peerAddress=peer(9))
        self.port = CommandPort(self.h.agent)
        self.port.makeConnection(self.transport)

    def send(self, line: bytes) -> list[bytes]:
        self.transport.clear()
        self.port.dataReceived(line)
        return self.transport.value().splitlines()

    def test_getState(self) -> None:
        """
        get_state answers the state, and data clients get it as a status
        packet.
        """
        client = self.h.data_client()
        self.h.link_up()
        self.assertEqual(self.send(b"get_state\r\n"), [b"CONNECTED"])
        self.assertEqual(statuses(packets(client)), [b"CONNECTED", b"CONNECTED"])

    def test_getConfig(self) -> None:
        """
        get_config answers one line of JSON, sent to data clients as a
        config packet too.
        """
        client = self.h.data_client()
        [line] = self.send(b"get_config\n")
        config = json.loads(line)
        self.assertEqual(config["name"], "TEST01")
        self.assertEqual(
            set(config["ports"]), {"data", "command", "sniff", "raw", "da"}
        )
        self.assertIn("version", config)
        self.assertIn(PacketType.PORT_AGENT_CONFIG, [p.type for p in packets(client)])

    def test_getConfigOOIKeys(self) -> None:
        """
        get_config also carries the keys OOI's port agent sent: C{refdes},
        C{type}, C{instaddr}, C{instport}, C{host}, and the raw port as
        C{ports["da"]} (direct access).
        """
        [line] = self.send(b"get_config\n")
        config = json.loads(line)
        self.assertEqual(config["refdes"], "TEST01")
        self.assertEqual(config["type"], "tcp")
        self.assertEqual(config["instaddr"], "127.0.0.1")
        self.assertEqual(config["instport"], 4001)
        self.assertEqual(config["ports"]["da"], config["ports"]["raw"])
        self.assertIsInstance(config["ports"]["da"], int)
        self.assertIn("host", config)

    def test_getConfigSaysWhetherLinkBreaks(self) -> None:
        """
        get_config says whether the instrument link can carry a serial
        break: only a serial line can, so a driver need not ask for one it
        would be refused.
        """
        [line] = self.send(b"get_config\n")
        self.assertIs(json.loads(line)["link_can_break"], False)
        serial = PortAgent(
            PortAgentConfig(name="S", instrument="serial:/dev/ttyUSB0:baudrate=9600"),
            reactor=MemoryReactorClock(),
            datalog=MemoryDataLog(),
        )
        self.assertIs(serial.public_config()["link_can_break"], True)

    def test_getStats(self) -> None:
        """
        get_stats answers one line of JSON with the counters.
        """
        [line] = self.send(b"get_stats\n")
        stats = json.loads(line)
        for key in (
            "instrument",
            "clients",
            "bytes_dropped",
            "slow_clients_cut_off",
            "datalog",
        ):
            self.assertIn(key, stats)
        self.assertEqual(stats["datalog"]["file"], "memory")

    def test_pingVersionHelp(self) -> None:
        """
        ping, get_version and help answer one line each.
        """
        self.assertEqual(len(self.send(b"ping\n")), 1)
        self.assertTrue(self.send(b"ping\n")[0].startswith(b"pong TEST01"))
        self.assertEqual(self.send(b"get_version\n"), [self.h.agent.version.encode()])
        [help_line] = self.send(b"help\n")
        for name in (b"get_state", b"break", b"heartbeat_interval", b"rotate"):
            self.assertIn(name, help_line)

    def test_everyLineRecorded(self) -> None:
        """
        Every line, even a bad one, is recorded as PORT_AGENT_COMMAND.
        """
        self.send(b"ping\nbogus\n\n")
        commands = [
            p.payload
            for p in self.h.logged()
            if p.type == PacketType.PORT_AGENT_COMMAND
        ]
        self.assertEqual(commands, [b"ping", b"bogus", b""])

    def test_errors(self) -> None:
        """
        Blank, unknown and malformed lines get one ERROR line naming the
        problem and listing valid commands; the connection stays open.
        """
        [blank] = self.send(b"\r\n")
        self.assertTrue(blank.startswith(b"ERROR empty command"))
        self.assertIn(b"valid commands: get_state", blank)
        [unknown] = self.send(b"reboot now\n")
        self.assertTrue(unknown.startswith(b"ERROR unknown command 'reboot'"))
        [extra] = self.send(b"ping please\n")
        self.assertIn(b"ERROR ping takes at most 0", extra)
        [bad] = self.send(b"break abc\n")
        self.assertIn(b"ERROR break: 'abc' is not a whole number", bad)
        [range_] = self.send(b"break 0\n")
        self.assertIn(b"out of range", range_)
        [hb] = self.send(b"heartbeat_interval -2\n")
        self.assertTrue(hb.startswith(b"ERROR heartbeat_interval"))
        [binary] = self.send(b"\xff\xfe\n")
        self.assertTrue(binary.startswith(b"ERROR command line is not ASCII"))
        self.assertFalse(self.transport.disconnecting)

    def test_argumentErrorsListCommands(self) -> None:
        """
        Malformed arguments get the command's usage and the valid commands,
        like any malformed line.
        """
        for line in (b"break abc\n", b"heartbeat_interval x\n", b"ping twice\n"):
            [reply] = self.send(line)
            self.assertTrue(reply.startswith(b"ERROR"), reply)
            self.assertIn(b"usage: ", reply)
            self.assertIn(b"valid commands: get_state", reply)

    def test_backpressure(self) -> None:
        """
        When the client does not read its replies, the transport pauses the
        command port: no more lines are handled (nor read) until it drains,
        and then they all are, in order.
        """
        self.assertIs(self.transport.producer, self.port)
        self.transport.clear()
        self.port.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")
        self.port.dataReceived(b"ping\nget_state\n")
        self.assertEqual(self.transport.value(), b"")
        self.port.resumeProducing()
        lines = self.transport.value().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].startswith(b"pong"))
        self.assertEqual(lines[1], b"DISCONNECTED")

    def test_commandClientsCounted(self) -> None:
        """
        get_stats counts command-port clients too.
        """
        [line] = self.send(b"get_stats\n")
        stats = json.loads(line)
        self.assertEqual(stats["clients"]["command"], 1)
        self.assertEqual(stats["clients_served"]["command"], 1)

    def test_breakOnTcp(self) -> None:
        """
        break on a link that cannot break says so.
        """
        self.h.link_up()
        [line] = self.send(b"break 100\n")
        self.assertTrue(line.startswith(b"ERROR break:"))
        self.assertIn(b"cannot send a break", line)

    def test_breakWhileDown(self) -> None:
        """
        break with the link down says the link is down.
        """
        [line] = self.send(b"break\n")
        self.assertIn(b"is down", line)

    def test_breakRepliesInOrder(self) -> None:
        """
        A break replies when it has ended, and a later command's reply
        waits behind it.
        """
        link = BreakableTransport()
        self.h.link_up(link)
        self.assertEqual(self.send(b"break 300\nping\n"), [])
        [(duration, done)] = link.breaks
        self.assertEqual(duration, 300)
        done.callback(None)
        lines = self.transport.value().splitlines()
        self.assertEqual(lines[0], b"OK break 300 ms")
        self.assertTrue(lines[1].startswith(b"pong"))

    def test_heartbeatInterval(self) -> None:
        """
        heartbeat_interval changes the heartbeat period.
        """
        client = self.h.data_client()
        self.assertEqual(
            self.send(b"heartbeat_interval 2.5\n"), [b"OK heartbeat_interval 2.5"]
        )
        self.h.reactor.advance(2.5)
        self.h.reactor.advance(2.5)
        beats = [
            p for p in packets(client) if p.type == PacketType.PORT_AGENT_HEARTBEAT
        ]
        self.assertEqual(len(beats), 2)

    def test_heartbeatIntervalBounded(self) -> None:
        """
        heartbeat_interval refuses a period outside its range (a tiny one
        would make thousands of heartbeats a second), naming the value and
        the range, and leaves the period as it was.
        """
        for value in (b"1e-9", b"0.01", b"86401", b"inf", b"nan"):
            [reply] = self.send(b"heartbeat_interval " + value + b"\n")
            self.assertTrue(
                reply.startswith(b"ERROR heartbeat_interval: '" + value + b"' is "),
                reply,
            )
            self.assertIn(b"valid: 0 (off), or 0.1 to 86400 seconds", reply)
        self.assertEqual(self.h.agent.heartbeat_interval, 0.0)
        self.assertEqual(
            self.send(b"heartbeat_interval 0.1\n"), [b"OK heartbeat_interval 0.1"]
        )

    def test_rotate(self) -> None:
        """
        rotate rotates the datalog and says which file it closed.
        """
        self.assertEqual(self.send(b"rotate\n"), [b"OK rotated memory"])

    def test_halfCloseAnswersEverything(self) -> None:
        """
        A client that closes its sending side after its commands gets a
        reply to each, a last line without a line end included, and only
        then is the connection closed.
        """
        self.assertTrue(IHalfCloseableProtocol.providedBy(self.port))
        self.port.dataReceived(b"ping\r\nget_state\nget_version")
        self.assertFalse(self.transport.disconnecting)
        self.port.readConnectionLost()
        lines = self.transport.value().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[0].startswith(b"pong TEST01"))
        self.assertEqual(lines[1:], [b"DISCONNECTED", self.h.agent.version.encode()])
        self.assertTrue(self.transport.disconnecting)
        self.assertIsNone(self.transport.producer)

    def test_halfCloseWaitsForSlowReplies(self) -> None:
        """
        After a half-close, the connection stays open until a slow reply (a
        break) and the replies behind it have been written, and a client
        paused for not reading is answered once it drains.
        """
        link = BreakableTransport()
        self.h.link_up(link)
        self.port.dataReceived(b"break 300\nping\n")
        self.port.readConnectionLost()
        self.assertFalse(self.transport.disconnecting)
        [(_duration, done)] = link.breaks
        done.callback(None)
        lines = self.transport.value().splitlines()
        self.assertEqual(lines[0], b"OK break 300 ms")
        self.assertTrue(lines[1].startswith(b"pong"))
        self.assertTrue(self.transport.disconnecting)

    def test_halfCloseWhilePaused(self) -> None:
        """
        Lines held back while the transport paused the port are answered
        when it resumes, and only then is the connection closed.
        """
        self.port.pauseProducing()
        self.port.dataReceived(b"ping\nget_state\n")
        self.port.readConnectionLost()
        self.assertEqual(self.transport.value(), b"")
        self.assertFalse(self.transport.disconnecting)
        self.port.resumeProducing()
        self.assertEqual(len(self.transport.value().splitlines()), 2)
        self.assertTrue(self.transport.disconnecting)

    def test_tooLong(self) -> None:
        """
        An absurdly long line gets an ERROR and the connection is closed.
        """
        self.port.dataReceived(b"x" * 5000)
        self.assertIn(b"ERROR command line longer", self.transport.value())
        self.assertTrue(self.transport.disconnecting)


class LifecycleTests(SynchronousTestCase):
    """
    Start and stop.
    """

    def test_statusFile(self) -> None:
        """
        Once listening, the status file holds pid, name, version and ports;
        stopping removes it and closes every client.
        """
        h = AgentHarness(self)
        path = h.config.status_file
        assert path is not None
        start_running(h.reactor)
        with open(path) as f:
            status = json.load(f)
        self.assertEqual(status["pid"], os.getpid())
        self.assertEqual(status["name"], "TEST01")
        self.assertEqual(set(status["ports"]), {"data", "command", "sniff", "raw"})
        client = h.data_client()
        h.agent.stopService()
        self.assertFalse(os.path.exists(path))
        self.assertTrue(client.disconnecting)

    def test_statusFileOnceRunning(self) -> None:
        """
        The status file is written only once the reactor runs: twistd starts
        services before reactor.run() installs its signal handlers, and a
        launcher that sees the file may send SIGTERM at once.
        """
        h = AgentHarness(self)
        path = h.config.status_file
        assert path is not None
        self.assertFalse(os.path.exists(path))
        start_running(h.reactor)
        self.assertTrue(os.path.exists(path))

    def test_configRecordedAtStart(self) -> None:
        """
        The datalog starts with the agent's configuration, for provenance,
        bound ports included.
        """
        h = AgentHarness(self)
        first = h.logged()[0]
        self.assertEqual(first.type, PacketType.PORT_AGENT_CONFIG)
        config = json.loads(first.payload)
        self.assertEqual(config["name"], "TEST01")
        self.assertEqual(
            set(config["ports"]), {"data", "command", "sniff", "raw", "da"}
        )
        self.assertNotIn(None, config["ports"].values())

    def test_parentGoneBeforeStart(self) -> None:
        """
        A --parent-pid that has already exited stops the agent as soon as
        the reactor runs (stopping before then would be refused).
        """
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        h = AgentHarness(self, parent_pid=child.pid)
        self.assertFalse(h.reactor.hasStopped)
        start_running(h.reactor)
        self.assertTrue(h.reactor.hasStopped)

    def test_listenFailureRaises(self) -> None:
        """
        A listener that cannot bind makes startService raise, so twistd
        exits non-zero with the reason.
        """
        reactor = MemoryReactorClock()

        def refuse(*args: object, **kwargs: object) -> None:
            raise OSError(98, "Address already in use")

        reactor.listenTCP = refuse  # type: ignore[method-assign]
        config = PortAgentConfig(name="X", instrument="tcp:host=127.0.0.1:port=1")
        datalog = MemoryDataLog()
        opened: list[bool] = []
        datalog.open = lambda: opened.append(True)  # type: ignore[method-assign]
        agent = PortAgent(config, reactor=reactor, datalog=datalog)
        self.assertRaises(OSError, agent.startService)
        self.assertFalse(agent.running)
        self.assertEqual(opened, [], "no datalog file for an agent that never ran")
        self.flushLoggedErrors()


class ParentWatchTests(SynchronousTestCase):
    """
    L{ParentWatch} without pidfds (a plain clock) checks once a second.
    """

    def test_goneProcess(self) -> None:
        """
        A process that has exited is noticed on the first check.
        """
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        clock = Clock()
        fired: list[bool] = []
        watch = ParentWatch(child.pid, lambda: fired.append(True), clock)
        watch.start()
        self.assertEqual(fired, [True])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_liveProcess(self) -> None:
        """
        A live process is checked every interval and not reported.
        """
        clock = Clock()
        fired: list[bool] = []
        watch = ParentWatch(os.getpid(), lambda: fired.append(True), clock)
        watch.start()
        clock.advance(5)
        self.assertEqual(fired, [])
        watch.stop()
        self.assertEqual(clock.getDelayedCalls(), [])


class FrozenCountTests(SynchronousTestCase):
    """
    ``process.gc_frozen_objects`` in the statistics.
    """

    def test_neverWalked(self) -> None:
        """
        The count is the one made as the objects were frozen: asking the
        statistics never walks the frozen objects (a station asks each of
        thousands of agents while its link comes up, and a walk of a
        million frozen objects costs milliseconds).
        """
        import gc

        from instrumentd import gcfreeze

        def walk() -> int:
            raise AssertionError("the frozen objects were walked")

        self.patch(gc, "get_freeze_count", walk)
        self.patch(gcfreeze, "_frozen", [1234])
        one, two = AgentHarness(self), AgentHarness(self)
        process = [h.agent.stats()["process"] for h in (one, two)]
        self.assertEqual({p["gc_frozen_objects"] for p in process}, {1234})  # type: ignore[index]


class QuietStartTests(SynchronousTestCase):
    """
    An agent whose start its owner logs (a station's in-process agent).
    """

    def lines(self, **overrides: Any) -> list[str]:
        """
        The agent's log lines while it starts, its link comes up, drops
        for longer than the grace period and comes back.
        """
        with capturedLogs() as events:
            h = AgentHarness(self, disconnect_grace=10.0, **overrides)
            h.reactor.run()
            h.link_up()
            h.link_down()
            h.reactor.advance(10.0)
            h.link_up()
        return [formatEvent(event) for event in events]

    def test_quiet(self) -> None:
        """
        Quiet, the agent's start and its link's first coming up are no
        lines; the link's later drop and return are, as ever.
        """
        loud = self.lines()
        quiet = self.lines(quiet_start=True)
        self.assertTrue(any("port agent TEST01 ready" in line for line in loud))
        self.assertEqual(
            [line for line in loud if "ready" not in line][2:], quiet, loud
        )
        self.assertEqual(
            quiet,
            [
                "instrument link down: tcp:host=127.0.0.1:port=4001: "
                "the other side closed the connection",
                "instrument link DISCONNECTED",
                "instrument link up: tcp:host=127.0.0.1:port=4001",
                "instrument link CONNECTED",
            ],
        )


class CheapStartTests(SynchronousTestCase):
    """
    What an agent makes as it starts, for a station starting thousands: no
    listener factory for a kind that does not listen, and a plain TCP
    instrument's endpoint without the endpoint parser.
    """

    def test_plainTCP(self) -> None:
        """
        C{tcp:host=H:port=P} becomes the C{TCP4ClientEndpoint} that
        C{clientFromString} makes of it (same host, port, timeout and bind
        address), without calling it; anything else is parsed by it.
        """
        from twisted.internet.endpoints import TCP4ClientEndpoint

        from instrumentd.portagent import agent

        reactor = MemoryReactorClock()
        parsed: list[str] = []

        def counting(reactor: Any, description: str) -> Any:
            parsed.append(description)
            return clientFromString(reactor, description)

        self.patch(agent, "clientFromString", counting)
        for description in (
            "tcp:host=127.0.0.1:port=4001",
            "tcp:host=ctd-7.example.org:port=65535",
        ):
            made = agent.instrument_endpoint(reactor, description)
            want = clientFromString(reactor, description)
            assert isinstance(made, TCP4ClientEndpoint)
            assert isinstance(want, TCP4ClientEndpoint)
            self.assertEqual(
                (made._host, made._port, made._timeout, made._bindAddress),
                (want._host, want._port, want._timeout, want._bindAddress),
            )
        self.assertEqual(parsed, [])
        timed = agent.instrument_endpoint(
            reactor, "tcp:host=127.0.0.1:port=1:timeout=5"
        )
        assert isinstance(timed, TCP4ClientEndpoint)
        self.assertEqual(timed._timeout, 5)
        self.assertEqual(parsed, ["tcp:host=127.0.0.1:port=1:timeout=5"])

    def test_noFactoryWithoutListener(self) -> None:
        """
        An agent whose listeners are all off makes none of their factories.
        """
        from instrumentd.portagent import agent
        from instrumentd.portagent.options import LISTENER_KINDS

        made: list[str] = []
        for name in ("ListenerFactory", "CommandPortFactory", "RFC2217Factory"):
            real = getattr(agent, name)

            def counting(*args: Any, _name: str = name, _real: Any = real) -> Any:
                made.append(_name)
                return _real(*args)

            self.patch(agent, name, counting)
        config = PortAgentConfig(
            name="ctd1",
            instrument="tcp:host=127.0.0.1:port=4001",
            listeners=dict.fromkeys(LISTENER_KINDS, ()),
            heartbeat=0,
            datalog_dir=self.mktemp(),
        )
        port_agent = PortAgent(config, reactor=MemoryReactorClock())
        port_agent.startService()
        self.addCleanup(port_agent.stopService)
        self.assertEqual(made, [])
        self.assertEqual(port_agent.port_numbers(), dict.fromkeys(LISTENER_KINDS))
