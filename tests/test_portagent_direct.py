"""
Tests for L{instrumentd.portagent.direct.DirectAgentConnection}: a driver's
connection to a port agent in its own process, on a memory reactor.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from instrumentd.connection import InstrumentConnectionError
from instrumentd.interfaces import IInstrumentConnection, LinkState
from instrumentd.packet import Packet, PacketType, ntp_to_unix
from instrumentd.portagent.client import PortAgentCommandError
from instrumentd.portagent.direct import DirectAgentConnection
from tests.test_portagent_agent import START, AgentHarness, BreakableTransport


class Recorder:
    """
    What the attached protocol was told.
    """

    def __init__(self) -> None:
        self.data: list[tuple[bytes, Packet]] = []
        self.states: list[LinkState] = []
        self.faults: list[str] = []

    def attach(self, connection: DirectAgentConnection) -> None:
        connection.attach(
            lambda data, packet: self.data.append((data, packet)),
            self.states.append,
            self.faults.append,
        )


class DirectTests(SynchronousTestCase):
    """
    A direct connection joined to a real agent on a memory reactor.
    """

    def setUp(self) -> None:
        self.h = AgentHarness(self)
        self.connection = DirectAgentConnection(reactor=self.h.reactor)
        self.seen = Recorder()
        self.seen.attach(self.connection)

    def connect(self, **agent: Any) -> LinkState:
        self.connection.configure({"method": "in_process", "name": "TEST01"})
        self.connection.bind(self.h.agent)
        connecting = self.connection.connect()
        self.assertNoResult(connecting)
        self.assertEqual(self.connection.state, "connecting")
        self.h.reactor.advance(0)
        return self.successResultOf(connecting)

    def logged(self, kind: PacketType) -> list[bytes]:
        return [p.payload for p in self.h.logged() if p.type == kind]

    def test_interface(self) -> None:
        """
        It provides IInstrumentConnection.
        """
        self.assertTrue(verifyObject(IInstrumentConnection, self.connection))

    def test_configure(self) -> None:
        """
        Its configuration is the in_process method and a name; anything
        else is refused naming the key, and nothing changes.
        """
        with self.assertRaises(InstrumentConnectionError) as caught:
            self.connection.configure({"method": "port_agent"})
        self.assertIn("'in_process'", str(caught.exception))
        self.assertIn("'port_agent'", str(caught.exception))
        with self.assertRaises(InstrumentConnectionError) as caught:
            self.connection.configure({"method": "in_process", "host": "x"})
        self.assertIn("host: unknown key", str(caught.exception))
        self.assertEqual(self.connection.state, "unconfigured")
        with self.assertRaises(InstrumentConnectionError) as caught:
            self.connection.send(b"x")
        self.assertIn("valid now: initialize(), configure()", str(caught.exception))

    def test_connectNeedsRunningAgent(self) -> None:
        """
        connect() fails, saying why, with no agent bound or one stopped.
        """
        self.connection.configure({"method": "in_process"})
        failure = self.failureResultOf(
            self.connection.connect(), InstrumentConnectionError
        )
        self.assertIn("no running port agent", failure.getErrorMessage())
        self.h.agent.stopService()
        self.connection.bind(self.h.agent)
        failure = self.failureResultOf(
            self.connection.connect(), InstrumentConnectionError
        )
        self.assertIn("not running", failure.getErrorMessage())
        self.assertEqual(self.connection.state, "disconnected")

    def test_connectedLinkDown(self) -> None:
        """
        Joined before the link is up: the agent is reached, the instrument
        link is down (the agent's word, as get_state would give it).
        """
        state = self.connect()
        self.assertEqual(state, LinkState(True, True, False))
        self.assertEqual(self.connection.link_state(), state)
        self.assertEqual(self.h.agent.stats()["clients"]["direct"], 1)  # type: ignore[index]

    def test_dataAndStatus(self) -> None:
        """
        The link's coming up is told as a state; the instrument's bytes
        arrive with the time the agent read them, already in the datalog.
        """
        self.connect()
        self.h.link_up()
        self.assertEqual(self.seen.states[-1], LinkState(True, True, True))
        self.h.reactor.advance(2.5)
        assert self.h.instrument is not None
        self.h.instrument.dataReceived(b"t 10.1\r\n")
        [(data, packet)] = self.seen.data
        self.assertEqual(data, b"t 10.1\r\n")
        self.assertEqual(packet.type, PacketType.DATA_FROM_INSTRUMENT)
        self.assertAlmostEqual(packet.unix_time, START + 2.5, places=5)
        self.assertAlmostEqual(
            ntp_to_unix(packet.seconds, packet.fraction), START + 2.5, places=5
        )
        self.assertEqual(self.logged(PacketType.DATA_FROM_INSTRUMENT), [data])
        # Down for the grace period: announced, and told.
        self.h.link_down()
        self.h.reactor.advance(10)
        self.assertEqual(self.seen.states[-1], LinkState(True, True, False))
        self.assertEqual(len(self.seen.faults), 1)

    def test_timedData(self) -> None:
        """
        A protocol attached with attach_timed gets each read's bytes with
        the packet's NTP time as a float, the very float the packet given
        to attach's callback says; status and faults as attach's; only one
        protocol at a time.
        """
        timed = DirectAgentConnection(reactor=self.h.reactor)
        got: list[tuple[bytes, float]] = []
        states: list[LinkState] = []
        timed.attach_timed(lambda data, when: got.append((data, when)), states.append)
        with self.assertRaises(InstrumentConnectionError):
            timed.attach(lambda data, packet: None)
        timed.configure({"method": "in_process", "name": "TEST02"})
        timed.bind(self.h.agent)
        self.connect()
        timed.connect()
        self.h.reactor.advance(0)
        self.h.link_up()
        self.assertEqual(states[-1], LinkState(True, True, True))
        self.h.reactor.advance(2.123456789)
        assert self.h.instrument is not None
        self.h.instrument.dataReceived(b"t 10.1\r\n")
        [(_data, packet)] = self.seen.data
        self.assertEqual(got, [(b"t 10.1\r\n", packet.ntp_time)])
        self.assertIs(type(got[0][1]), float)
        timed.detach()
        timed.attach(lambda data, packet: None)

    def test_send(self) -> None:
        """
        The driver's bytes reach the instrument and are recorded as
        DATA_FROM_DRIVER; with the link reported down they are refused at
        once, as through a data port.
        """
        self.connect()
        with self.assertRaises(InstrumentConnectionError) as caught:
            self.connection.send(b"TS\r\n")
        self.assertIn("DISCONNECTED; 4 bytes not sent", str(caught.exception))
        link = self.h.link_up()
        self.connection.send(b"TS\r\n")
        self.assertEqual(link.value(), b"TS\r\n")
        self.assertEqual(self.logged(PacketType.DATA_FROM_DRIVER), [b"TS\r\n"])
        self.assertEqual(self.h.agent.stats()["instrument"]["bytes_out"], 4)  # type: ignore[index]

    def test_sentWhileLinkDrops(self) -> None:
        """
        Bytes sent in the grace period after the link dropped are dropped
        by the agent, which tells the driver with a fault.
        """
        self.connect()
        self.h.link_up()
        self.h.link_down()
        self.connection.send(b"TS\r\n")
        [fault] = self.seen.faults
        self.assertIn("4 bytes from the station's driver not sent", fault)

    def test_breakRefusedOnTcp(self) -> None:
        """
        A break on a link that cannot carry one fails at once with the
        agent's text, without asking (nothing recorded).
        """
        self.connect()
        self.h.link_up()
        failure = self.failureResultOf(
            self.connection.send_break(300), PortAgentCommandError
        )
        self.assertIn("cannot send a break", failure.getErrorMessage())
        self.assertEqual(self.logged(PacketType.PORT_AGENT_COMMAND), [])
        self.failureResultOf(self.connection.send_break(0), InstrumentConnectionError)

    def test_break(self) -> None:
        """
        A break on a link that can carry one is the agent's break command:
        recorded, and fired when the break has ended.
        """
        self.connect()
        link = BreakableTransport()
        self.h.link_up(link)
        # This agent's link is TCP to a memory reactor; say it is serial.
        self.connection.link_can_break = True
        done = self.connection.send_break(300)
        [(duration, ended)] = link.breaks
        self.assertEqual(duration, 300)
        self.assertNoResult(done)
        ended.callback(None)
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(self.logged(PacketType.PORT_AGENT_COMMAND), [b"break 300"])

    def test_breakFailsWithFault(self) -> None:
        """
        A break the link refuses fails with the agent's ERROR, which data
        clients hear as a fault, as from the command port.
        """
        self.connect()
        self.connection.link_can_break = True
        failure = self.failureResultOf(
            self.connection.send_break(100), PortAgentCommandError
        )
        self.assertIn("ERROR break:", failure.getErrorMessage())
        self.assertTrue(any("command port: break" in f for f in self.seen.faults))

    def test_commands(self) -> None:
        """
        command() answers as the command port does.
        """
        self.connect()
        stats = json.loads(self.successResultOf(self.connection.command("get_stats")))
        self.assertEqual(stats["name"], "TEST01")
        self.failureResultOf(self.connection.command("nope"), PortAgentCommandError)
        self.assertEqual(
            self.logged(PacketType.PORT_AGENT_COMMAND), [b"get_stats", b"nope"]
        )

    def test_disconnect(self) -> None:
        """
        Disconnecting leaves the agent running and takes nothing more from
        it; the state is told all down.
        """
        self.connect()
        self.h.link_up()
        self.successResultOf(self.connection.disconnect())
        self.assertEqual(self.connection.state, "disconnected")
        self.assertEqual(self.seen.states[-1], LinkState())
        self.assertEqual(self.h.agent.router.direct, [])
        assert self.h.instrument is not None
        self.h.instrument.dataReceived(b"late")
        self.assertEqual(self.seen.data, [])
        self.assertTrue(self.h.agent.running)

    def test_disconnectWhileConnecting(self) -> None:
        """
        Disconnecting before the join abandons it.
        """
        self.connection.configure({"method": "in_process"})
        self.connection.bind(self.h.agent)
        connecting = self.connection.connect()
        self.successResultOf(self.connection.disconnect())
        self.failureResultOf(connecting)
        self.h.reactor.advance(0)
        self.assertEqual(self.connection.state, "disconnected")
        self.assertEqual(self.h.agent.router.direct, [])

    def test_agentStops(self) -> None:
        """
        When the agent stops, the state goes all down; sending then fails.
        """
        self.connect()
        self.h.link_up(StringTransport())
        self.h.agent.stopService()
        self.assertEqual(self.seen.states[-1], LinkState())
        with self.assertRaises(InstrumentConnectionError):
            self.connection.send(b"x")

    def test_bindWhileConnected(self) -> None:
        """
        The agent cannot be changed under a connected driver.
        """
        self.connect()
        with self.assertRaises(InstrumentConnectionError):
            self.connection.bind(None)
