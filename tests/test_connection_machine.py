"""
Tests for L{instrumentd.driver.connection_machine} and
L{instrumentd.driver.machine}: the connection states, refusals that name
the valid inputs, the data buffer, link changes, and the committed
diagrams.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from automat import NoTransition
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from instrumentd.driver import connection_machine
from instrumentd.driver.connection_machine import (
    ConnectionCore,
    ConnectionInputs,
    ConnectionMachine,
    ConnectionTable,
)
from instrumentd.driver.errors import (
    InstrumentConnectionError,
    InstrumentStateError,
)
from instrumentd.driver.events import ConnectionEvent, ErrorEvent, EventBus
from instrumentd.driver.machine import dot_source
from instrumentd.driver.protocol import StandardProtocolMachine
from instrumentd.interfaces import IInstrumentConnection, IInstrumentProtocol, LinkState
from tests.toyinstrument import ToyConnection, ToyLine, ToyProtocol

UP = LinkState(agent=True, commands=True, instrument=True)
INSTRUMENT_DOWN = LinkState(agent=True, commands=True, instrument=False)
AGENT_LOST = LinkState()

DIAGRAMS = Path(__file__).resolve().parent.parent / "doc" / "state-machines"


class Bench:
    """
    A connection machine over a toy connection.
    """

    def __init__(self) -> None:
        self.line = ToyLine()
        self.clock = self.line.clock
        self.connection = ToyConnection(self.line)
        self.events = EventBus(self.clock)
        self.seen: list[Any] = []
        self.events.subscribe(self.seen.append)
        self.protocols: list[ToyProtocol] = []
        self.core = ConnectionCore(self.connection, self.build, self.events)
        self.machine: ConnectionInputs = ConnectionMachine(self.core)
        self.core.start(self.machine)

    def build(self, send: Any) -> ToyProtocol:
        protocol = ToyProtocol(send, self.events, clock=self.clock)
        self.protocols.append(protocol)
        return protocol

    def connection_states(self) -> list[str]:
        return [e.state for e in self.seen if isinstance(e, ConnectionEvent)]

    def to_connected(self) -> None:
        self.machine.configure({"method": "toy"})
        self.machine.connect()


class ConnectionStateTests(SynchronousTestCase):
    """
    The connection lifecycle.
    """

    def test_starts_unconfigured(self) -> None:
        """
        A new machine is UNCONFIGURED; C{status} answers in every state.
        """
        bench = Bench()
        self.assertEqual(bench.machine.status(), "UNCONFIGURED")
        for state in ConnectionTable.states:
            self.assertTrue(ConnectionTable.accepts(state, "status"))
            # A query, not an action: never offered after a refusal.
            self.assertNotIn("status", ConnectionTable.valid_inputs(state))

    def test_configure(self) -> None:
        """
        A good configuration moves to DISCONNECTED and is announced; a bad
        one raises the connection's error and changes nothing.
        """
        bench = Bench()
        self.assertRaises(
            InstrumentConnectionError, bench.machine.configure, {"method": "x"}
        )
        self.assertEqual(bench.machine.status(), "UNCONFIGURED")
        self.assertEqual(bench.seen, [])
        bench.machine.configure({"method": "toy"})
        self.assertEqual(bench.machine.status(), "DISCONNECTED")
        [event] = bench.seen
        self.assertEqual((event.state, event.reason), ("DISCONNECTED", "configured"))
        # Reconfiguring while DISCONNECTED is allowed; a bad one keeps it.
        self.assertRaises(
            InstrumentConnectionError, bench.machine.configure, {"method": "x"}
        )
        self.assertEqual(bench.machine.status(), "DISCONNECTED")

    def test_initialize(self) -> None:
        """
        C{initialize} forgets the configuration: back to UNCONFIGURED.
        """
        bench = Bench()
        bench.machine.configure({"method": "toy"})
        bench.machine.initialize()
        self.assertEqual(bench.machine.status(), "UNCONFIGURED")
        self.assertIsNone(bench.connection.config)

    def test_connect(self) -> None:
        """
        Connecting with the instrument link up goes through CONNECTING and
        INSTRUMENT_DISCONNECTED to CONNECTED, where the protocol starts.
        """
        bench = Bench()
        bench.machine.configure({"method": "toy"})
        self.successResultOf(bench.machine.connect())
        self.assertEqual(bench.machine.status(), "CONNECTED")
        self.assertEqual(
            bench.connection_states(),
            ["DISCONNECTED", "CONNECTING", "INSTRUMENT_DISCONNECTED", "CONNECTED"],
        )
        [protocol] = bench.protocols
        self.assertIs(bench.core.protocol, protocol)
        self.assertEqual(protocol.state, "UNKNOWN")
        verifyObject(IInstrumentProtocol, protocol)
        verifyObject(IInstrumentConnection, bench.connection)

    def test_instrumentLinkDown(self) -> None:
        """
        With the agent reached but the instrument link down, the machine
        waits in INSTRUMENT_DISCONNECTED; the link coming up connects it.
        """
        bench = Bench()
        bench.connection.link_on_connect = INSTRUMENT_DOWN
        bench.to_connected()
        self.assertEqual(bench.machine.status(), "INSTRUMENT_DISCONNECTED")
        self.assertEqual(bench.protocols, [])
        bench.connection.set_link(UP)
        self.assertEqual(bench.machine.status(), "CONNECTED")
        self.assertEqual(len(bench.protocols), 1)

    def test_connectLater(self) -> None:
        """
        C{connect}'s Deferred fires only once the agent is reached; asking
        again while CONNECTING waits for the same.
        """
        bench = Bench()
        bench.connection.connect_result = Deferred()
        bench.machine.configure({"method": "toy"})
        first = bench.machine.connect()
        second = bench.machine.connect()
        self.assertEqual(bench.machine.status(), "CONNECTING")
        self.assertNoResult(first)
        bench.connection.link = UP
        bench.connection.connect_result.callback(UP)
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual(bench.machine.status(), "CONNECTED")

    def test_statesWhileConnecting(self) -> None:
        """
        Link states the connection reports while its C{connect} is under
        way (a port agent client reports the agent, and the instrument link,
        before its command port is up and the connection can send) do not
        move the machine: the protocol starts once C{connect} has fired.
        """
        bench = Bench()
        bench.connection.connect_result = Deferred()
        bench.machine.configure({"method": "toy"})
        result = bench.machine.connect()
        bench.connection.set_link(UP)
        self.assertEqual(bench.machine.status(), "CONNECTING")
        self.assertEqual(bench.protocols, [])
        self.assertNoResult(result)
        bench.connection.connect_result.callback(UP)
        self.successResultOf(result)
        self.assertEqual(bench.machine.status(), "CONNECTED")
        self.assertEqual(len(bench.protocols), 1)
        # Once connected, the connection's reports are acted on again.
        bench.connection.set_link(INSTRUMENT_DOWN)
        self.assertEqual(bench.machine.status(), "INSTRUMENT_DISCONNECTED")

    def test_connectFails(self) -> None:
        """
        When the agent cannot be reached, C{connect} fails with the reason
        and the machine is DISCONNECTED again.
        """
        bench = Bench()
        bench.connection.connect_result = Deferred()
        bench.machine.configure({"method": "toy"})
        result = bench.machine.connect()
        bench.connection.connect_result.errback(
            InstrumentConnectionError("agent refused")
        )
        self.failureResultOf(result, InstrumentConnectionError)
        self.assertEqual(bench.machine.status(), "DISCONNECTED")

    def test_disconnectWhileConnecting(self) -> None:
        """
        Disconnecting while CONNECTING fails the pending connect.
        """
        bench = Bench()
        bench.connection.connect_result = Deferred()
        bench.machine.configure({"method": "toy"})
        result = bench.machine.connect()
        self.successResultOf(bench.machine.disconnect())
        self.failureResultOf(result, InstrumentConnectionError)
        self.assertEqual(bench.machine.status(), "DISCONNECTED")
        # A late outcome of the abandoned connect changes nothing.
        bench.connection.connect_result.errback(InstrumentConnectionError("late"))
        self.assertEqual(bench.machine.status(), "DISCONNECTED")

    def test_disconnect(self) -> None:
        """
        Disconnecting from CONNECTED stops the protocol: its pending command
        fails with a connection error.  Disconnecting again does nothing.
        """
        bench = Bench()
        bench.to_connected()
        pending = bench.machine.discover_state()
        self.successResultOf(bench.machine.disconnect())
        self.assertEqual(bench.machine.status(), "DISCONNECTED")
        error = self.failureResultOf(pending, InstrumentConnectionError).value
        self.assertIn("disconnected", error.message)
        self.assertIsNone(bench.core.protocol)
        self.successResultOf(bench.machine.disconnect())

    def test_instrumentLost(self) -> None:
        """
        The instrument link going down stops the protocol (pending commands
        fail) and goes to INSTRUMENT_DISCONNECTED; coming back up starts a
        new protocol.
        """
        bench = Bench()
        bench.to_connected()
        pending = bench.machine.discover_state()
        bench.connection.set_link(INSTRUMENT_DOWN)
        self.assertEqual(bench.machine.status(), "INSTRUMENT_DISCONNECTED")
        self.failureResultOf(pending, InstrumentConnectionError)
        bench.connection.set_link(UP)
        self.assertEqual(bench.machine.status(), "CONNECTED")
        self.assertEqual(len(bench.protocols), 2)

    def test_agentLost(self) -> None:
        """
        Losing the agent goes to CONNECTING (the connection reconnects by
        itself) and stops the protocol; the agent's return reconnects.
        """
        bench = Bench()
        bench.to_connected()
        pending = bench.machine.discover_state()
        bench.connection.set_link(AGENT_LOST)
        self.assertEqual(bench.machine.status(), "CONNECTING")
        self.failureResultOf(pending, InstrumentConnectionError)
        bench.connection.set_link(UP)
        self.assertEqual(bench.machine.status(), "CONNECTED")
        self.assertEqual(
            bench.connection_states()[-3:],
            ["CONNECTING", "INSTRUMENT_DISCONNECTED", "CONNECTED"],
        )

    def test_fault(self) -> None:
        """
        A fault the agent reports is published as an error event.
        """
        bench = Bench()
        bench.to_connected()
        bench.connection.fault("write to instrument failed")
        [event] = [e for e in bench.seen if isinstance(e, ErrorEvent)]
        self.assertEqual(event.error_code, "INSTRUMENT_CONNECTION")
        self.assertIn("write to instrument failed", event.message)

    def test_forwarded(self) -> None:
        """
        The driver's requests reach the protocol while CONNECTED.
        """
        bench = Bench()
        bench.to_connected()
        result = bench.machine.discover_state()
        bench.line.flush()
        self.assertEqual(self.successResultOf(result), "COMMAND")
        status = bench.machine.execute_resource("acquire_status", {})
        bench.line.flush()
        self.assertEqual(self.successResultOf(status)["interval"], "5")


class BufferTests(SynchronousTestCase):
    """
    Instrument data that arrives before the protocol exists.
    """

    def test_replayedOnConnected(self) -> None:
        """
        Bytes arriving in INSTRUMENT_DISCONNECTED are kept and handed to the
        protocol, in order, when it starts.
        """
        bench = Bench()
        bench.connection.link_on_connect = INSTRUMENT_DOWN
        bench.to_connected()
        bench.line.toy.emit(b"#T=1.0000 P=")
        bench.line.flush()
        bench.line.toy.emit(b"2.0000\r\n")
        bench.line.flush()
        self.assertEqual(bench.core.buffered, 20)
        samples: list[Any] = []
        bench.events.subscribe(samples.append, [ErrorEvent.event_type.SAMPLE])
        bench.connection.set_link(UP)
        [sample] = samples
        self.assertEqual(sample.particle.value("temperature"), 1.0)
        self.assertEqual(bench.core.buffered, 0)

    def test_bounded(self) -> None:
        """
        The buffer keeps at most C{BUFFER_LIMIT} bytes, dropping (and
        counting) the oldest.
        """
        self.patch(connection_machine, "BUFFER_LIMIT", 10)
        bench = Bench()
        bench.connection.link_on_connect = INSTRUMENT_DOWN
        bench.to_connected()
        for _ in range(4):
            bench.line.toy.emit(b"abcd")
            bench.line.flush()
        self.assertEqual(bench.core.buffered, 8)
        self.assertEqual(bench.core.dropped, 8)

    def test_droppedWhenDisconnected(self) -> None:
        """
        Bytes that arrive while DISCONNECTED are dropped and counted.
        """
        bench = Bench()
        bench.to_connected()
        bench.machine.disconnect()
        bench.core._data(b"late", _packet(b"late"))
        self.assertEqual(bench.core.dropped, 4)


class DataPathTests(SynchronousTestCase):
    """
    Data in CONNECTED goes straight to the protocol, as the machine's
    ``_data_received`` would take it there.
    """

    def transitions(self, bench: Bench) -> list[str]:
        # The inputs the machine dispatches from now on.
        transitioner = bench.machine.__automat_transitioner__  # type: ignore[attr-defined]
        dispatched: list[str] = []
        original = transitioner.transition

        def transition(input: str) -> Any:
            dispatched.append(input)
            return original(input)

        self.patch(transitioner, "transition", transition)
        return dispatched

    def test_noDispatch(self) -> None:
        """
        A data packet in CONNECTED reaches the protocol without a dispatch
        through the machine's transitions; elsewhere it goes through them.
        """
        bench = Bench()
        bench.to_connected()
        dispatched = self.transitions(bench)
        bench.core._data(b"#T=1.0000 P=2.0000\r\n", _packet(b""))
        samples = [e for e in bench.seen if e.event_type.value == "SAMPLE"]
        self.assertEqual(len(samples), 1)
        self.assertEqual(dispatched, [])
        bench.connection.set_link(INSTRUMENT_DOWN)
        bench.core._data(b"#T=1.0000 P=2.0000\r\n", _packet(b""))
        self.assertEqual(dispatched, ["_instrument_down", "_data_received"])
        self.assertEqual(bench.core.buffered, 20)

    def test_reportsDuringDataWait(self) -> None:
        """
        A link change reported while the protocol takes a packet (a
        listener of its samples causes it) is acted on once the packet is
        taken, as for any input: every sample in the packet is published,
        and a value-returning input is refused meanwhile.
        """
        bench = Bench()
        bench.to_connected()
        seen: list[tuple[str, object]] = []

        def listener(event: Any) -> None:
            if event.event_type.value != "SAMPLE":
                return
            if not seen:
                bench.connection.set_link(INSTRUMENT_DOWN)
                try:
                    bench.machine.status()
                except RuntimeError as error:
                    seen.append(("refused", type(error)))
            seen.append((bench.core.state, event.particle.value("temperature")))

        bench.events.subscribe(listener)
        bench.core._data(b"#T=1.0000 P=2.0000\r\n#T=3.0000 P=2.0000\r\n", _packet(b""))
        self.assertEqual(
            seen,
            [("refused", RuntimeError), ("CONNECTED", 1.0), ("CONNECTED", 3.0)],
        )
        self.assertEqual(bench.core.state, "INSTRUMENT_DISCONNECTED")


def _packet(data: bytes) -> Any:
    from instrumentd.packet import Packet, PacketType

    return Packet(PacketType.DATA_FROM_INSTRUMENT, data)


class RefusalTests(SynchronousTestCase):
    """
    Inputs not valid in the current state.
    """

    PUBLIC = [
        ("initialize", ()),
        ("configure", ({"method": "toy"},)),
        ("connect", ()),
        ("disconnect", ()),
        ("discover_state", ()),
        ("get_resource", (["ALL"],)),
        ("set_resource", ({}, False)),
        ("execute_resource", ("acquire_status", {})),
        ("start_direct", ()),
        ("execute_direct", (b"x",)),
        ("stop_direct", ()),
    ]

    def test_refusalNamesValidInputs(self) -> None:
        """
        In every state, every public input the state does not accept is
        refused with an L{InstrumentStateError} naming the state and the
        inputs valid there (never a bare C{NoTransition}), and the state
        does not change.
        """
        for setup in ["UNCONFIGURED", "DISCONNECTED", "CONNECTING", "CONNECTED"]:
            bench = Bench()
            if setup != "UNCONFIGURED":
                bench.machine.configure({"method": "toy"})
            if setup == "CONNECTING":
                bench.connection.connect_result = Deferred()
                bench.machine.connect()
            if setup == "CONNECTED":
                bench.machine.connect()
            self.assertEqual(bench.machine.status(), setup)
            for name, arguments in self.PUBLIC:
                if ConnectionTable.accepts(setup, name):
                    continue
                with (
                    self.assertRaises(InstrumentStateError) as caught,
                    ConnectionTable.refusals(),
                ):
                    getattr(bench.machine, name)(*arguments)
                error = caught.exception
                self.assertEqual(error.state, setup)
                self.assertEqual(error.input, name)
                self.assertEqual(list(error.valid), ConnectionTable.valid_inputs(setup))
                self.assertEqual(bench.machine.status(), setup)

    def test_withoutTranslation(self) -> None:
        """
        Automat itself raises C{NoTransition}: the translation is needed.
        """
        bench = Bench()
        self.assertRaises(NoTransition, bench.machine.connect)

    def test_reportsNotListed(self) -> None:
        """
        Reports (inputs starting with C{_}) are never listed as valid.
        """
        for state in ConnectionTable.states:
            for name in ConnectionTable.valid_inputs(state):
                self.assertFalse(name.startswith("_"))
        self.assertTrue(ConnectionTable.accepts("CONNECTING", "_agent_reached"))

    def test_table(self) -> None:
        """
        The table reads the machine's transitions.
        """
        self.assertEqual(ConnectionTable.initial, "UNCONFIGURED")
        self.assertEqual(
            ConnectionTable.target("INSTRUMENT_DISCONNECTED", "_instrument_up"),
            "CONNECTED",
        )
        self.assertIsNone(ConnectionTable.target("UNCONFIGURED", "connect"))
        self.assertEqual(
            ConnectionTable.valid_inputs("DISCONNECTED"),
            ["configure", "connect", "disconnect", "initialize"],
        )


class ListenerTests(SynchronousTestCase):
    """
    Announcements and listeners that call back.
    """

    def test_listenerMayCallBack(self) -> None:
        """
        A listener may call the machine back from a state-change event: the
        event is published once its transition is over, so the machine is
        in the announced state.
        """
        bench = Bench()
        answers: list[str] = []

        def listener(event: object) -> None:
            if isinstance(event, ConnectionEvent):
                answers.append(bench.machine.status())

        bench.events.subscribe(listener)
        bench.to_connected()
        self.assertEqual(answers, bench.connection_states())
        self.assertEqual(len(answers), 4)

    def test_noTimeoutAfterStop(self) -> None:
        """
        A stopped protocol leaves no command timer behind.
        """
        bench = Bench()
        bench.to_connected()
        result = bench.machine.execute_resource("discover", {})
        bench.machine.disconnect()
        self.failureResultOf(result, InstrumentConnectionError)
        names = {call.func.__name__ for call in bench.clock.getDelayedCalls()}
        self.assertNotIn("_timed_out", names)


class DiagramTests(SynchronousTestCase):
    """
    The committed state machine diagrams.
    """

    if importlib.util.find_spec("graphviz") is None:
        # Automat draws with the graphviz package (automat[visualize]); the
        # project's test extras must install it for these to run.
        skip = "the graphviz package is not installed"

    def load_generator(self) -> Any:
        spec = importlib.util.spec_from_file_location(
            "generate_diagrams", DIAGRAMS / "generate.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def test_diagramsCurrent(self) -> None:
        """
        Every committed C{.dot} file is what the machines draw now; run
        C{python doc/state-machines/generate.py} after changing a machine.
        """
        generator = self.load_generator()
        for name, source in generator.diagrams().items():
            committed = (DIAGRAMS / name).read_text(encoding="utf-8")
            self.assertEqual(
                committed,
                source,
                f"{name} is out of date: run doc/state-machines/generate.py",
            )

    def test_stableOrder(self) -> None:
        """
        The diagram text does not depend on set order: states and
        transitions are sorted.
        """
        source = dot_source(ConnectionMachine)
        self.assertEqual(source, dot_source(ConnectionMachine))
        states = [
            line.split()[0] for line in source.splitlines() if "shape=ellipse" in line
        ]
        self.assertEqual(states, sorted(states))
        self.assertIn("UNKNOWN", dot_source(StandardProtocolMachine))

    def test_generatorWrites(self) -> None:
        """
        The generator writes one file per machine.
        """
        generator = self.load_generator()
        target = Path(self.mktemp())
        target.mkdir()
        self.assertEqual(generator.main(target), 0)
        self.assertEqual(
            sorted(p.name for p in target.iterdir()),
            [
                "connection.dot",
                "optode.dot",
                "protocol.dot",
                "sbe37smp.dot",
                "workhorse.dot",
            ],
        )


class TimedToyConnection(ToyConnection):
    """
    A toy connection that can also give each read's time without a packet,
    as an in-process agent's connection does.
    """

    timed: Any = None

    def attach_timed(
        self, callback: Any, on_state: Any = None, on_fault: Any = None
    ) -> None:
        self.timed = callback
        ToyConnection.attach(
            self,
            lambda data, packet: callback(data, packet.ntp_time),
            on_state,
            on_fault,
        )


class TimedDataTests(SynchronousTestCase):
    """
    A connection whose type has C{attach_timed} is attached through it.
    """

    def test_attachedTimed(self) -> None:
        """
        The machine attaches its timed data callback; bytes given to it
        reach the protocol with their time, as through a packet.
        """
        bench = Bench()
        connection = TimedToyConnection(bench.line)
        bench.connection = connection
        bench.core = ConnectionCore(connection, bench.build, bench.events)
        bench.machine = ConnectionMachine(bench.core)
        bench.core.start(bench.machine)
        self.assertIsNotNone(connection.timed)
        bench.to_connected()
        self.assertEqual(bench.machine.status(), "CONNECTED")
        connection.timed(b"#T=1.0000 P=2.0000\r\n", 5.25)
        [sample] = [e for e in bench.seen if e.event_type.value == "SAMPLE"]
        self.assertEqual(sample.particle.port_timestamp, 5.25)
