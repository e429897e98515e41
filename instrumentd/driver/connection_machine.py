# -*- test-case-name: tests.test_connection_machine -*-
"""
The driver's connection state machine: from no configuration to a running
instrument protocol.

::

    UNCONFIGURED --configure--> DISCONNECTED --connect--> CONNECTING
        --agent reached--> INSTRUMENT_DISCONNECTED --instrument link up-->
        CONNECTED

- **UNCONFIGURED**: no connection configuration.
- **DISCONNECTED**: configured, not connected.
- **CONNECTING**: the connection is reaching the port agent (first
  connect, or reconnecting by itself after the agent was lost).  Not in the
  OOI machine, whose connect blocked a thread until the agent answered.
- **INSTRUMENT_DISCONNECTED**: the agent is reachable but its link to the
  instrument is down.
- **CONNECTED**: the instrument link is up; the instrument protocol exists
  and gets the instrument's bytes.  The driver's requests (discover, get,
  set, execute, direct access) are inputs valid only here.

The protocol is built on entering CONNECTED and stopped on leaving it
(instrument link down, agent lost, disconnect), so pending commands fail at
once with an :class:`~instrumentd.driver.errors.InstrumentConnectionError`.
Instrument bytes that arrive while no protocol exists yet (between reaching
the agent and the link coming up) are buffered, up to
:data:`BUFFER_LIMIT` bytes (oldest dropped and counted), and replayed into
the protocol when it starts: the OOI driver lost them (its issue 10844).

Inputs whose names start with ``_`` are reports from the connection (see
:mod:`instrumentd.driver.machine`).  Every state change is announced as a
:class:`~instrumentd.driver.events.ConnectionEvent`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from automat import TypeMachine, TypeMachineBuilder
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from instrumentd.driver.errors import InstrumentConnectionError
from instrumentd.driver.events import ConnectionEvent, ErrorEvent, EventBus
from instrumentd.driver.machine import (
    MachineTable,
    after_transition,
    follow_states,
    run_as_input,
)
from instrumentd.interfaces import IInstrumentConnection, IInstrumentProtocol, LinkState
from instrumentd.packet import Packet

__all__ = [
    "BUFFER_LIMIT",
    "ConnectionCore",
    "ConnectionInputs",
    "ConnectionMachine",
    "ConnectionTable",
    "ProtocolFactory",
    "build_connection_machine",
]

#: Bytes of instrument data kept while no protocol exists to take them.
BUFFER_LIMIT = 65536

#: Builds the instrument protocol once the instrument link is up; called
#: with the function that sends bytes to the instrument.
ProtocolFactory = Callable[[Callable[[bytes], None]], IInstrumentProtocol]

_REASONS = {
    "_configured": "configured",
    "initialize": "initialized",
    "connect": "connect requested",
    "_agent_reached": "port agent reached",
    "_connect_failed": "could not reach the port agent",
    "_agent_lost": "port agent lost; reconnecting",
    "_instrument_up": "instrument link up",
    "_instrument_down": "instrument link down",
    "disconnect": "disconnect requested",
}


class ConnectionInputs(Protocol):
    """
    The connection machine's inputs.
    """

    def status(self) -> str:
        """
        :returns: the current state's name.
        """

    def initialize(self) -> None:
        """
        Forget the configuration.
        """

    def configure(self, config: Mapping[str, object]) -> None:
        """
        Check and keep a connection configuration; a bad one raises
        :class:`InstrumentConnectionError` and changes nothing.
        """

    def connect(self) -> Deferred[None]:
        """
        Reach the port agent.

        :returns: a Deferred firing once the agent is reachable, or failing
            if it cannot be reached (or the connection is dropped first).
        """

    def disconnect(self) -> Deferred[None]:
        """
        Stop the protocol, if any, and close the connection.
        """

    def discover_state(self) -> Deferred[str]:
        """
        Forwarded to the protocol's ``discover``.
        """

    def get_resource(self, names: list[str]) -> Deferred[dict[str, object]]:
        """
        Forwarded to the protocol's ``get``.
        """

    def set_resource(
        self, values: Mapping[str, object], startup: bool
    ) -> Deferred[dict[str, object]]:
        """
        Forwarded to the protocol's ``set``.
        """

    def execute_resource(
        self, command: str, arguments: Mapping[str, object]
    ) -> Deferred[object]:
        """
        Forwarded to the protocol's ``execute``.
        """

    def start_direct(self) -> Deferred[None]:
        """
        Forwarded to the protocol's ``start_direct``.
        """

    def execute_direct(self, data: bytes) -> Deferred[None]:
        """
        Forwarded to the protocol's ``execute_direct``.
        """

    def stop_direct(self) -> Deferred[str]:
        """
        Forwarded to the protocol's ``stop_direct``.
        """

    def _configured(self) -> None:
        """
        Report: the connection accepted the configuration.
        """

    def _agent_reached(self) -> None:
        """
        Report: the port agent is reachable.
        """

    def _connect_failed(self, reason: Failure) -> None:
        """
        Report: the port agent could not be reached.
        """

    def _agent_lost(self) -> None:
        """
        Report: the port agent stopped answering; the connection reconnects
        by itself.
        """

    def _instrument_up(self) -> None:
        """
        Report: the agent's link to the instrument is up.
        """

    def _instrument_down(self) -> None:
        """
        Report: the agent's link to the instrument is down.
        """

    def _data_received(self, data: bytes, timestamp: float) -> None:
        """
        Report: bytes from the instrument, read at ``timestamp`` (NTP).
        """


class ConnectionCore:
    """
    What the connection machine works on: the connection, the protocol
    while there is one, the buffer, and the event bus.

    :param connection: how the instrument is reached.
    :param build_protocol: builds the protocol on entering CONNECTED.
    :param events: where connection events are published.
    """

    def __init__(
        self,
        connection: IInstrumentConnection,
        build_protocol: ProtocolFactory,
        events: EventBus,
    ) -> None:
        self.connection = connection
        self.build_protocol = build_protocol
        self.events = events
        self.machine: ConnectionInputs | None = None
        self.state = ""
        self.protocol: IInstrumentProtocol | None = None
        #: The last protocol, kept after it stopped for its cached values.
        self.last_protocol: IInstrumentProtocol | None = None
        self.buffer: deque[tuple[bytes, float]] = deque()
        self.buffered = 0
        #: Bytes dropped: arrived while unconfigured or disconnected, or
        #: pushed out of the full buffer.
        self.dropped = 0
        #: The connection's last word on the link.
        self.link = LinkState()
        self._connecting: list[Deferred[None]] = []
        self._changes: list[tuple[str, str, str]] = []
        # The connect() under way, if any: until it fires, the link states
        # the connection reports are not acted on (see _on_link).
        self._connect_attempt: object | None = None

    # Wiring.

    def start(self, machine: ConnectionInputs) -> None:
        """
        Bind to the machine made for this core, follow its states and
        attach to the connection.
        """
        self.machine = machine
        self.state = ConnectionTable.initial
        follow_states(machine, self._state_changed)
        # A connection that can give each read's time without a packet (an
        # in-process agent's) is asked to: the time is all the machine
        # reads of it.  Looked up on the type: a test double's attributes
        # are not methods it has.
        attach_timed = getattr(type(self.connection), "attach_timed", None)
        if attach_timed is not None:
            attach_timed(self.connection, self._data_at, self._on_link, self._fault)
        else:
            self.connection.attach(self._data, self._on_link, self._fault)

    def _state_changed(self, previous: str, input: str, state: str) -> None:
        self.state = state
        self._changes.append((previous, input, state))
        # Published once the transition is over, so listeners may call the
        # machine back.
        after_transition(self.machine, self.announce)

    def announce(self) -> None:
        """
        Publish a :class:`ConnectionEvent` for each state change not yet
        published.
        """
        changes, self._changes = self._changes, []
        for _previous, input, state in changes:
            self.events.publish(
                ConnectionEvent(
                    state, _REASONS.get(input, input), time=self.events.now()
                )
            )

    def report(self, input: str, *arguments: object) -> None:
        """
        Give the machine a report if it means something in the current
        state; otherwise drop it (a late notification from a connection
        that was dropped, a repeated "link up").

        :param input: the report's name, e.g. ``"_agent_lost"``.
        """
        if not ConnectionTable.accepts(self.state, input):
            # Nothing to tell anyone (an operator's log has no use for
            # machine inputs).
            return
        getattr(self.machine, input)(*arguments)

    # What the connection tells us.

    def _data(self, data: bytes, packet: Packet) -> None:
        self._data_at(data, packet.ntp_time)

    def _data_at(self, data: bytes, timestamp: float) -> None:
        protocol = self.protocol
        machine = self.machine
        if (
            self.state == "CONNECTED"
            and protocol is not None
            and getattr(machine, "__automat_postponed__", None) is None
        ):
            # Every data packet, in the steady state: what the machine's
            # CONNECTED ``_data_received`` does (``deliver``), run as the
            # machine runs an input, without the dispatch through its
            # transition table.
            run_as_input(machine, protocol.got_data, data, timestamp)
            return
        self.report("_data_received", data, timestamp)

    def _on_link(self, link: LinkState) -> None:
        # A connection may report states while its connect() is still under
        # way: a port agent client says the agent is reached, and the
        # instrument link up, before its command port is connected and the
        # connection can send.  Acting on them would start the protocol
        # (and let listeners of CONNECTED send) too early, so the state
        # connect() fires with is taken instead.
        if self._connect_attempt is not None:
            return
        self._link_changed(link)

    def _link_changed(self, link: LinkState) -> None:
        previous, self.link = self.link, link
        if link.agent and not previous.agent:
            self.report("_agent_reached")
        if previous.instrument is True and link.instrument is not True:
            self.report("_instrument_down")
        if previous.agent and not link.agent:
            self.report("_agent_lost")
        if link.agent and link.instrument is True and previous.instrument is not True:
            self.report("_instrument_up")

    def _fault(self, text: str) -> None:
        error = InstrumentConnectionError(f"port agent fault: {text}")
        self.events.publish(ErrorEvent.from_error(error, time=self.events.now()))

    # Behaviour helpers.

    def begin_connecting(self) -> Deferred[None]:
        """
        Ask the connection to connect, reporting the outcome to the
        machine.

        :returns: a Deferred firing once the agent is reached.
        """
        self.link = LinkState()
        waiter = self.when_connected()
        attempt = self._connect_attempt = object()
        started = self.connection.connect()

        def settled() -> None:
            if self._connect_attempt is attempt:
                self._connect_attempt = None

        def reached(link: LinkState) -> None:
            settled()
            self._link_changed(link)

        def failed(reason: Failure) -> None:
            settled()
            self.report("_connect_failed", reason)

        started.addCallbacks(reached, failed)
        return waiter

    def when_connected(self) -> Deferred[None]:
        """
        :returns: a Deferred firing when the agent is next reached.
        """
        waiter: Deferred[None] = Deferred()
        self._connecting.append(waiter)
        return waiter

    def connected(self) -> None:
        """
        Fire the Deferreds waiting for the agent to be reached.
        """
        waiters, self._connecting = self._connecting, []
        for waiter in waiters:
            waiter.callback(None)

    def not_connected(self, reason: Failure) -> None:
        """
        Fail the Deferreds waiting for the agent to be reached.
        """
        waiters, self._connecting = self._connecting, []
        for waiter in waiters:
            waiter.errback(reason)

    def buffer_data(self, data: bytes, timestamp: float) -> None:
        """
        Keep bytes for the protocol to come, dropping the oldest past
        :data:`BUFFER_LIMIT`.
        """
        self.buffer.append((data, timestamp))
        self.buffered += len(data)
        while self.buffered > BUFFER_LIMIT:
            old, _ = self.buffer.popleft()
            self.buffered -= len(old)
            self.dropped += len(old)

    def drop_data(self, data: bytes) -> None:
        """
        Count bytes nobody can take.
        """
        self.dropped += len(data)

    def start_protocol(self) -> None:
        """
        Build and start the protocol, then replay the buffered bytes.
        """
        protocol = self.build_protocol(self.connection.send)
        self.protocol = self.last_protocol = protocol
        protocol.start()
        buffered, self.buffer = self.buffer, deque()
        self.buffered = 0
        for data, timestamp in buffered:
            protocol.got_data(data, timestamp)

    def stop_protocol(self, why: str) -> None:
        """
        Stop the protocol: its pending commands fail with an
        :class:`InstrumentConnectionError` saying ``why``.
        """
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.stop(InstrumentConnectionError(why))

    def close(self) -> Deferred[None]:
        """
        Disconnect the connection; the buffer is dropped.
        """
        self.dropped += self.buffered
        self.buffer.clear()
        self.buffered = 0
        self.link = LinkState()
        self._connect_attempt = None
        self.not_connected(
            Failure(
                InstrumentConnectionError("disconnected before the agent was reached")
            )
        )
        return self.connection.disconnect()

    def require_protocol(self) -> IInstrumentProtocol:
        """
        :returns: the running protocol.
        """
        assert self.protocol is not None, "CONNECTED without a protocol"
        return self.protocol


def build_connection_machine() -> TypeMachine[ConnectionInputs, ConnectionCore]:
    """
    Build the connection machine (done once, at import).

    :returns: the machine factory, called with a :class:`ConnectionCore`.
    """
    builder = TypeMachineBuilder(ConnectionInputs, ConnectionCore)
    unconfigured = builder.state("UNCONFIGURED")
    disconnected = builder.state("DISCONNECTED")
    connecting = builder.state("CONNECTING")
    instrument_disconnected = builder.state("INSTRUMENT_DISCONNECTED")
    connected = builder.state("CONNECTED")
    everywhere = (
        unconfigured,
        disconnected,
        connecting,
        instrument_disconnected,
        connected,
    )

    for state in everywhere:
        state.upon(ConnectionInputs.status).loop().returns(state.name)

    # Configuring.  The connection checks the configuration in the
    # behaviour; only if it is accepted does ``_configured`` (queued by
    # Automat until ``configure`` returns) move the machine on, so a bad
    # configuration changes nothing.
    for state in (unconfigured, disconnected):

        @state.upon(ConnectionInputs.configure).loop()
        def configure(
            machine: ConnectionInputs,
            core: ConnectionCore,
            config: Mapping[str, object],
        ) -> None:
            core.connection.configure(config)
            machine._configured()

    unconfigured.upon(ConnectionInputs._configured).to(disconnected).returns(None)
    disconnected.upon(ConnectionInputs._configured).loop().returns(None)
    unconfigured.upon(ConnectionInputs.initialize).loop().returns(None)

    @disconnected.upon(ConnectionInputs.initialize).to(unconfigured)
    def initialize(machine: ConnectionInputs, core: ConnectionCore) -> None:
        core.connection.initialize()

    for state in (unconfigured, disconnected):

        @state.upon(ConnectionInputs.disconnect).loop()
        def already(machine: ConnectionInputs, core: ConnectionCore) -> Deferred[None]:
            return succeed(None)

        @state.upon(ConnectionInputs._data_received).loop()
        def drop(
            machine: ConnectionInputs,
            core: ConnectionCore,
            data: bytes,
            timestamp: float,
        ) -> None:
            core.drop_data(data)

    # Connecting.
    @disconnected.upon(ConnectionInputs.connect).to(connecting)
    def connect(machine: ConnectionInputs, core: ConnectionCore) -> Deferred[None]:
        return core.begin_connecting()

    @connecting.upon(ConnectionInputs.connect).loop()
    def also_connect(machine: ConnectionInputs, core: ConnectionCore) -> Deferred[None]:
        return core.when_connected()

    @connecting.upon(ConnectionInputs._agent_reached).to(instrument_disconnected)
    def reached(machine: ConnectionInputs, core: ConnectionCore) -> None:
        core.connected()
        # The link may have come up while this transition was under way (a
        # report then is dropped as not valid in CONNECTING): catch up.
        if core.link.instrument is True:
            machine._instrument_up()

    @connecting.upon(ConnectionInputs._connect_failed).to(disconnected)
    def unreachable(
        machine: ConnectionInputs, core: ConnectionCore, reason: Failure
    ) -> None:
        core.not_connected(reason)

    for state in (instrument_disconnected, connected):

        @state.upon(ConnectionInputs.connect).loop()
        def connected_already(
            machine: ConnectionInputs, core: ConnectionCore
        ) -> Deferred[None]:
            return succeed(None)

    # Data before the protocol exists waits in the buffer.
    for state in (connecting, instrument_disconnected):

        @state.upon(ConnectionInputs._data_received).loop()
        def keep(
            machine: ConnectionInputs,
            core: ConnectionCore,
            data: bytes,
            timestamp: float,
        ) -> None:
            core.buffer_data(data, timestamp)

    @connected.upon(ConnectionInputs._data_received).loop()
    def deliver(
        machine: ConnectionInputs, core: ConnectionCore, data: bytes, timestamp: float
    ) -> None:
        core.require_protocol().got_data(data, timestamp)

    # The instrument link.
    @instrument_disconnected.upon(ConnectionInputs._instrument_up).to(connected)
    def link_up(machine: ConnectionInputs, core: ConnectionCore) -> None:
        core.start_protocol()

    @connected.upon(ConnectionInputs._instrument_down).to(instrument_disconnected)
    def link_down(machine: ConnectionInputs, core: ConnectionCore) -> None:
        core.stop_protocol("the port agent's link to the instrument is down")

    # Losing the agent: the connection reconnects by itself.
    instrument_disconnected.upon(ConnectionInputs._agent_lost).to(connecting).returns(
        None
    )

    @connected.upon(ConnectionInputs._agent_lost).to(connecting)
    def agent_lost(machine: ConnectionInputs, core: ConnectionCore) -> None:
        core.stop_protocol("the port agent was lost")

    # Disconnecting.
    for state in (connecting, instrument_disconnected):

        @state.upon(ConnectionInputs.disconnect).to(disconnected)
        def disconnect(
            machine: ConnectionInputs, core: ConnectionCore
        ) -> Deferred[None]:
            return core.close()

    @connected.upon(ConnectionInputs.disconnect).to(disconnected)
    def disconnect_connected(
        machine: ConnectionInputs, core: ConnectionCore
    ) -> Deferred[None]:
        core.stop_protocol("the driver disconnected")
        return core.close()

    # The driver's requests, forwarded to the protocol.
    @connected.upon(ConnectionInputs.discover_state).loop()
    def discover_state(
        machine: ConnectionInputs, core: ConnectionCore
    ) -> Deferred[str]:
        return core.require_protocol().discover()

    @connected.upon(ConnectionInputs.get_resource).loop()
    def get_resource(
        machine: ConnectionInputs, core: ConnectionCore, names: list[str]
    ) -> Deferred[dict[str, object]]:
        return core.require_protocol().get(names)

    @connected.upon(ConnectionInputs.set_resource).loop()
    def set_resource(
        machine: ConnectionInputs,
        core: ConnectionCore,
        values: Mapping[str, object],
        startup: bool,
    ) -> Deferred[dict[str, object]]:
        return core.require_protocol().set(values, startup)

    @connected.upon(ConnectionInputs.execute_resource).loop()
    def execute_resource(
        machine: ConnectionInputs,
        core: ConnectionCore,
        command: str,
        arguments: Mapping[str, object],
    ) -> Deferred[object]:
        return core.require_protocol().execute(command, **arguments)

    @connected.upon(ConnectionInputs.start_direct).loop()
    def start_direct(machine: ConnectionInputs, core: ConnectionCore) -> Deferred[None]:
        return core.require_protocol().start_direct()

    @connected.upon(ConnectionInputs.execute_direct).loop()
    def execute_direct(
        machine: ConnectionInputs, core: ConnectionCore, data: bytes
    ) -> Deferred[None]:
        return core.require_protocol().execute_direct(data)

    @connected.upon(ConnectionInputs.stop_direct).loop()
    def stop_direct(machine: ConnectionInputs, core: ConnectionCore) -> Deferred[str]:
        return core.require_protocol().stop_direct()

    return builder.build()


#: The built connection machine: ``ConnectionMachine(core)`` makes one.
ConnectionMachine = build_connection_machine()

#: What the connection machine accepts in each state.
ConnectionTable = MachineTable(ConnectionMachine)
