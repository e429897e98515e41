# -*- test-case-name: tests.test_testing -*-
"""
Port-agent doubles and launchers for tests (see :mod:`instrumentd.testing`).

- :class:`FakePortAgent`: an in-memory port agent.  It delivers the bytes
  you choose, with the timestamps you choose, to a
  :class:`~instrumentd.portagent.client.PortAgentClient` (or anything else
  that connects to its endpoints), answers the command port, and can vanish,
  hang and come back.  No sockets, no processes, no real time: drive it with
  a :class:`~twisted.internet.task.Clock` in a ``SynchronousTestCase``.
- :func:`port_agent_for`: launch a real port agent process in front of an
  instrument (a simulator, a device server, a test server) for one test,
  and stop it when the test ends.
- :func:`tcp_instrument_for`: a TCP server on loopback that plays the
  instrument in integration tests: it records what it is sent and sends
  what you tell it to.
- :func:`client_for`: a connected client of a launched agent, disconnected
  when the test ends.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import (
    IAddress,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock, LoopingCall
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.packet import PacketType, encode_packet, frame_read, unix_to_ntp
from instrumentd.portagent.client import PortAgentClient

if TYPE_CHECKING:
    from twisted.trial.unittest import SynchronousTestCase

__all__ = [
    "FakePortAgent",
    "TCPInstrument",
    "client_for",
    "port_agent_for",
    "tcp_instrument_for",
]


class _Wire:
    """
    Delivers everything written on the fake agent's connections in order,
    one delivery at a time: bytes written while a protocol is handling a
    delivery are delivered after it returns, never inside it.
    """

    def __init__(self) -> None:
        self._queue: deque[Callable[[], None]] = deque()
        self._busy = False

    def deliver(self, action: Callable[[], None]) -> None:
        self._queue.append(action)
        if self._busy:
            return
        self._busy = True
        try:
            while self._queue:
                self._queue.popleft()()
        finally:
            self._busy = False


class _Transport(StringTransport):
    """
    One end of an in-memory connection.  What is written reaches the other
    end's protocol at once (see :class:`_Wire`); closing either end closes
    both.  ``value()`` holds everything this end wrote.
    """

    def __init__(self, wire: _Wire) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._wire = wire
        self.peer: _Transport | None = None
        self.protocol: IProtocol | None = None
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed or self.disconnecting:
            return
        super().write(data)  # type: ignore[no-untyped-call]
        peer = self.peer
        if peer is not None and peer.protocol is not None:
            protocol = peer.protocol
            self._wire.deliver(lambda: protocol.dataReceived(data))

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self._close(ConnectionDone("connection closed cleanly"))

    def abortConnection(self) -> None:
        self._close(ConnectionLost("connection aborted"))

    def _close(self, reason: Exception) -> None:
        if self.closed:
            return
        self.disconnecting = True
        for end in (self, self.peer):
            if end is not None and not end.closed:
                end.closed = True
                end.disconnecting = True
                if end.protocol is not None:
                    self._wire.deliver(_lose(end.protocol, reason))


def _lose(protocol: IProtocol, reason: Exception) -> Callable[[], None]:
    def lose() -> None:
        protocol.connectionLost(Failure(reason))

    return lose


@implementer(IStreamClientEndpoint)
class _FakeEndpoint:
    def __init__(self, agent: FakePortAgent, kind: str) -> None:
        self._agent = agent
        self._kind = kind

    def __repr__(self) -> str:
        return f"<fake port agent {self._agent.name} {self._kind} port>"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        return self._agent._accept(self._kind, protocolFactory)


class _DataServer(Protocol):
    def __init__(self, agent: FakePortAgent) -> None:
        self._agent = agent

    def dataReceived(self, data: bytes) -> None:
        self._agent._from_driver(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._agent._forget(self.transport)


class _CommandServer(LineOnlyReceiver):
    delimiter = b"\n"

    def __init__(self, agent: FakePortAgent) -> None:
        self._agent = agent

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._agent._forget(self.transport)

    def lineReceived(self, line: bytes) -> None:
        self._agent._on_command(self, line.rstrip(b"\r").decode("ascii", "replace"))

    def reply(self, text: str) -> None:
        self.sendLine(text.encode())  # type: ignore[no-untyped-call]


class FakePortAgent:
    """
    An in-memory port agent for deterministic driver tests.

    Connect a client to :attr:`data_endpoint` and :attr:`command_endpoint`
    (or use :meth:`client`), then script the agent::

        agent = FakePortAgent()
        client = agent.client(heartbeat_interval=10)
        client.attach(received.append ...)
        self.successResultOf(client.connect())
        agent.deliver(b"#25.3,1.2\\r\\n", at=1_700_000_000.25)
        client.send(b"TS\\r\\n")
        self.assertEqual(agent.received, b"TS\\r\\n")

    Writes are delivered at once, in order (a reply written while a
    protocol is still handling a delivery waits until it returns).

    The command port answers like the real agent: ``get_state``,
    ``get_config``, ``get_version``, ``get_stats``, ``ping``, ``break``,
    ``heartbeat_interval``, ``rotate``, ``help``; anything else gets an
    ``ERROR`` line, and, as from the real agent, every ``ERROR`` is also a
    PORT_AGENT_FAULT (``command port: ...``) to data clients.  Put an entry
    in :attr:`replies` to answer a command differently.

    :ivar clock: the clock for timestamps and heartbeats.
    :ivar name: the agent's name, as in ``ping`` and ``get_config``.
    :ivar data_port: a made-up port number for the data port.
    :ivar command_port: a made-up port number for the command port.
    :ivar received: every byte data clients sent to the instrument.
    :ivar commands: every command line received, in order.
    :ivar replies: reply lines to use instead of the built-in ones, by
        command name (the first word of the line).
    :ivar instrument_connected: the instrument link state it reports.
    :ivar breakable: whether ``break`` succeeds (a serial link) or fails
        with the real agent's error text for a TCP link.
    :ivar answering: whether the command port answers; lines received
        while not answering are never answered.
    :ivar reachable: whether connections are accepted.
    :ivar connections: how many connections were accepted, by port kind.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        name: str = "fake-instrument",
        heartbeat: float = 0.0,
        instrument_connected: bool = True,
        breakable: bool = False,
        version: str = "0.0-fake",
    ) -> None:
        """
        :param clock: the clock; a new :class:`~twisted.internet.task.Clock`
            if ``None``.
        :param name: the agent's name.
        :param heartbeat: seconds between heartbeats sent on the data port
            (driven by ``clock``); 0 sends none.
        :param instrument_connected: the initial instrument link state.
        :param breakable: whether ``break`` succeeds.
        :param version: what ``get_version`` answers.
        """
        self.clock = clock if clock is not None else Clock()
        self.name = name
        self.version = version
        self.data_port = 4001
        self.command_port = 4002
        self.received = b""
        self.commands: list[str] = []
        self.replies: dict[str, str] = {}
        self.instrument_connected = instrument_connected
        self.breakable = breakable
        self.answering = True
        self.reachable = True
        self.connections = {"data": 0, "command": 0}
        self.data_endpoint: IStreamClientEndpoint = _FakeEndpoint(self, "data")
        self.command_endpoint: IStreamClientEndpoint = _FakeEndpoint(self, "command")
        self._wire = _Wire()
        self._data_ends: list[_Transport] = []
        self._command_ends: list[_Transport] = []
        self._heartbeat = heartbeat
        self._heartbeats: LoopingCall | None = None
        self._start_heartbeats()

    # -- wiring ---------------------------------------------------------------

    def endpoint_for(self, host: str, port: int | str) -> IStreamClientEndpoint:
        """
        The endpoint of :attr:`data_port` or :attr:`command_port`, for code
        that connects by host and port (any host is accepted).

        :param host: ignored.
        :param port: :attr:`data_port` or :attr:`command_port`.
        :returns: the matching endpoint.
        :raises KeyError: for any other port.
        """
        return {
            self.data_port: self.data_endpoint,
            self.command_port: self.command_endpoint,
        }[port]  # type: ignore[index]

    def client(self, **options: Any) -> PortAgentClient:
        """
        A :class:`~instrumentd.portagent.client.PortAgentClient` of this
        agent on its clock, reconnecting after exactly 1, 2, 4 ... seconds
        (no jitter) unless ``retry_policy`` is given.

        :param options: keyword arguments for the client.
        :returns: an unconnected client.
        """
        options.setdefault("clock", self.clock)
        options.setdefault("retry_policy", lambda attempt: float(2 ** (attempt - 1)))
        options.setdefault("description", f"fake port agent {self.name}")
        return PortAgentClient(self.data_endpoint, self.command_endpoint, **options)

    @property
    def data_clients(self) -> int:
        """
        How many data clients are connected now.
        """
        return len(self._data_ends)

    @property
    def command_clients(self) -> int:
        """
        How many command clients are connected now.
        """
        return len(self._command_ends)

    def _accept(self, kind: str, factory: IProtocolFactory) -> Deferred[IProtocol]:
        if not self.reachable:
            return fail(ConnectionRefusedError(f"fake port agent {self.name} is down"))
        client = factory.buildProtocol(_FakeAddress(kind))
        if client is None:
            return fail(ConnectionRefusedError("the factory built no protocol"))
        server: Protocol = _DataServer(self) if kind == "data" else _CommandServer(self)
        client_end, server_end = _Transport(self._wire), _Transport(self._wire)
        client_end.peer, server_end.peer = server_end, client_end
        client_end.protocol, server_end.protocol = client, server
        (self._data_ends if kind == "data" else self._command_ends).append(server_end)
        self.connections[kind] += 1
        server.makeConnection(server_end)
        client.makeConnection(client_end)
        return succeed(client)

    def _forget(self, transport: object) -> None:
        for ends in (self._data_ends, self._command_ends):
            if transport in ends:
                ends.remove(transport)

    # -- what the agent sends --------------------------------------------------

    def _timestamp(self, at: float | None) -> tuple[int, int]:
        return unix_to_ntp(self.clock.seconds() if at is None else at)

    def send_packet(
        self,
        packet_type: PacketType,
        payload: bytes,
        *,
        at: float | None = None,
        seconds: int | None = None,
        fraction: int = 0,
    ) -> bytes:
        """
        Send one packet to every data client.

        :param packet_type: its type.
        :param payload: its payload (split into several packets if longer
            than one can carry).
        :param at: its timestamp as a Unix time; the clock's time if neither
            this nor ``seconds`` is given.
        :param seconds: its NTP seconds, exactly (with ``fraction``).
        :param fraction: its NTP fraction, with ``seconds``.
        :returns: the bytes sent.
        """
        if seconds is None:
            seconds, fraction = self._timestamp(at)
        data = b"".join(frame_read(packet_type, payload, seconds, fraction))
        self.send_bytes(data)
        return data

    def deliver(
        self,
        data: bytes,
        *,
        at: float | None = None,
        seconds: int | None = None,
        fraction: int = 0,
    ) -> bytes:
        """
        Send bytes "read from the instrument" (DATA_FROM_INSTRUMENT) to
        every data client.

        :param data: the bytes.
        :param at: their timestamp as a Unix time; the clock's time if
            neither this nor ``seconds`` is given.
        :param seconds: their NTP seconds, exactly (with ``fraction``).
        :param fraction: their NTP fraction, with ``seconds``.
        :returns: the packet bytes sent.
        """
        return self.send_packet(
            PacketType.DATA_FROM_INSTRUMENT,
            data,
            at=at,
            seconds=seconds,
            fraction=fraction,
        )

    def send_bytes(self, data: bytes) -> None:
        """
        Send bytes as they are to every data client: junk, a corrupt or
        partial packet, or packets built by hand.

        :param data: the bytes.
        """
        for end in list(self._data_ends):
            end.write(data)

    def set_instrument_connected(self, connected: bool) -> None:
        """
        Change the instrument link state and announce it with a status
        packet, as the real agent does.

        :param connected: the new state.
        """
        self.instrument_connected = connected
        self._publish_state()

    def fault(self, text: str) -> None:
        """
        Send a PORT_AGENT_FAULT packet.

        :param text: the fault text.
        """
        self.send_packet(PacketType.PORT_AGENT_FAULT, text.encode())

    def heartbeat(self) -> None:
        """
        Send one heartbeat packet now.
        """
        self.send_packet(PacketType.PORT_AGENT_HEARTBEAT, b"HB")

    def _publish_state(self) -> None:
        self.send_packet(PacketType.PORT_AGENT_STATUS, self._state().encode())

    def _state(self) -> str:
        return "CONNECTED" if self.instrument_connected else "DISCONNECTED"

    def _start_heartbeats(self) -> None:
        if self._heartbeat > 0 and self._heartbeats is None:
            self._heartbeats = LoopingCall(self.heartbeat)
            self._heartbeats.clock = self.clock
            self._heartbeats.start(self._heartbeat, now=False)

    def _stop_heartbeats(self) -> None:
        if self._heartbeats is not None and self._heartbeats.running:
            self._heartbeats.stop()
        self._heartbeats = None

    # -- failures -------------------------------------------------------------

    def stop(self) -> None:
        """
        Behave like an agent whose process has ended: close every
        connection, stop heartbeats, refuse new connections.
        """
        self.reachable = False
        self._stop_heartbeats()
        for end in [*self._data_ends, *self._command_ends]:
            end.loseConnection()

    def start(self) -> None:
        """
        Come back after :meth:`stop` or :meth:`hang`: accept connections,
        answer commands and send heartbeats again.
        """
        self.reachable = True
        self.answering = True
        self._start_heartbeats()

    def hang(self) -> None:
        """
        Behave like a hung agent, or one behind a cut cable: connections
        stay open, but nothing is sent and commands are not answered.
        """
        self.answering = False
        self._stop_heartbeats()

    # -- what the agent receives ------------------------------------------------

    def _from_driver(self, data: bytes) -> None:
        if not self.instrument_connected:
            self.fault(
                f"instrument link is down: {len(data)} bytes from a data client not sent"
            )
            return
        self.received += data
        seconds, fraction = self._timestamp(None)
        self.send_bytes(
            encode_packet(PacketType.DATA_FROM_DRIVER, data, seconds, fraction)
        )

    def _on_command(self, server: _CommandServer, line: str) -> None:
        self.commands.append(line)
        if not self.answering:
            return
        reply = self.reply_to(line)
        if reply.startswith("ERROR "):
            # As the real agent: data clients hear of a refused command too.
            self.fault("command port: " + reply.removeprefix("ERROR "))
        server.reply(reply)

    def reply_to(self, line: str) -> str:
        """
        The reply to one command line (see :attr:`replies`).

        :param line: the command line.
        :returns: the reply line.
        """
        words = line.split()
        name = words[0] if words else ""
        if name in self.replies:
            return self.replies[name]
        args = words[1:]
        if name == "get_state":
            self._publish_state()
            return self._state()
        if name == "get_config":
            text = json.dumps(self.config(), sort_keys=True)
            self.send_packet(PacketType.PORT_AGENT_CONFIG, text.encode())
            return text
        if name == "get_version":
            return self.version
        if name == "get_stats":
            return json.dumps(
                {
                    "name": self.name,
                    "state": self._state(),
                    "link_up": self.instrument_connected,
                    "instrument": {"bytes_out": len(self.received)},
                },
                sort_keys=True,
            )
        if name == "ping":
            return f"pong {self.name} {self.version}"
        if name == "break":
            ms = args[0] if args else "250"
            if not self.breakable:
                return (
                    "ERROR break: the instrument link tcp:host=fake:port=1 cannot "
                    "send a break (only serial links can)"
                )
            return f"OK break {ms} ms"
        if name == "heartbeat_interval" and args:
            self._heartbeat = float(args[0])
            self._stop_heartbeats()
            self._start_heartbeats()
            return f"OK heartbeat_interval {self._heartbeat:g}"
        if name == "rotate":
            return f"OK rotated {self.name}.datalog"
        if name == "help":
            return "commands: get_state; get_config; get_version; get_stats; ping; break [MS]"
        return f"ERROR unknown command {name!r}; valid commands: get_state, get_config, get_version, get_stats, ping, break [MS], heartbeat_interval SECONDS, rotate, help"

    def config(self) -> dict[str, object]:
        """
        What ``get_config`` answers, decoded.
        """
        return {
            "name": self.name,
            "instrument": "tcp:host=fake:port=1",
            "heartbeat": self._heartbeat,
            "ports": {
                "data": self.data_port,
                "command": self.command_port,
                "da": None,
            },
            "version": self.version,
            # What OOI's agent sent, as the real agent does (no raw port here).
            "refdes": self.name,
            "type": "tcp",
            "instaddr": "fake",
            "instport": 1,
            "host": None,
        }


@implementer(IAddress)
class _FakeAddress:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<fake port agent {self.kind} port>"


class _InstrumentProtocol(Protocol):
    def __init__(self, instrument: TCPInstrument) -> None:
        self._instrument = instrument

    def connectionMade(self) -> None:
        self._instrument._connected(self)

    def dataReceived(self, data: bytes) -> None:
        self._instrument._received(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._instrument._lost(self)


class TCPInstrument:
    """
    A TCP server on loopback that plays an instrument (or a serial device
    server) in integration tests: point a port agent at :attr:`endpoint`.

    Waiting is event driven: :meth:`wait_for` and :meth:`wait_connected`
    return Deferreds fired by the bytes or the connection arriving.

    :ivar port: the TCP port it listens on.
    :ivar endpoint: the client endpoint string of that port, for a port
        agent's ``instrument``.
    :ivar received: every byte received, over all connections.
    :ivar connections: how many connections it has accepted.
    """

    def __init__(self) -> None:
        self.port = 0
        self.endpoint = ""
        self.received = b""
        self.connections = 0
        self._protocol: _InstrumentProtocol | None = None
        self._listening: Any = None
        self._waiting_bytes: list[tuple[bytes, Deferred[bytes]]] = []
        self._waiting_connection: list[Deferred[None]] = []
        self._waiting_close: list[Deferred[None]] = []

    @property
    def connected(self) -> bool:
        """
        Whether a client (the agent) is connected now.
        """
        return self._protocol is not None

    def send(self, data: bytes) -> None:
        """
        Send bytes to the connected client, as an instrument would.

        :param data: the bytes.
        :raises RuntimeError: if nothing is connected.
        """
        if self._protocol is None or self._protocol.transport is None:
            raise RuntimeError("no port agent is connected to the test instrument")
        self._protocol.transport.write(data)

    def wait_for(self, data: bytes) -> Deferred[bytes]:
        """
        :param data: bytes to wait for.
        :returns: a Deferred firing with everything received so far, once
            ``data`` is among it.
        """
        if data in self.received:
            return succeed(self.received)
        waiting: Deferred[bytes] = Deferred()
        self._waiting_bytes.append((data, waiting))
        return waiting

    def wait_connected(self) -> Deferred[None]:
        """
        :returns: a Deferred firing once a client is connected.
        """
        if self._protocol is not None:
            return succeed(None)
        waiting: Deferred[None] = Deferred()
        self._waiting_connection.append(waiting)
        return waiting

    def disconnect(self) -> Deferred[None]:
        """
        Drop the connected client, as an instrument that is unplugged.

        :returns: a Deferred firing once the connection is closed.
        """
        if self._protocol is None or self._protocol.transport is None:
            return succeed(None)
        waiting: Deferred[None] = Deferred()
        self._waiting_close.append(waiting)
        self._protocol.transport.loseConnection()
        return waiting

    async def stop(self) -> None:
        """
        Stop listening and drop the connected client.
        """
        if self._listening is not None:
            listening, self._listening = self._listening, None
            await listening.stopListening()
        await self.disconnect()

    def _connected(self, protocol: _InstrumentProtocol) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            # One instrument, one line: like a device server in exclusive
            # mode, refuse a second client.
            protocol.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._protocol = protocol
        self.connections += 1
        waiting, self._waiting_connection = self._waiting_connection, []
        for d in waiting:
            d.callback(None)

    def _received(self, data: bytes) -> None:
        self.received += data
        still = []
        for wanted, d in self._waiting_bytes:
            if wanted in self.received:
                d.callback(self.received)
            else:
                still.append((wanted, d))
        self._waiting_bytes = still

    def _lost(self, protocol: _InstrumentProtocol) -> None:
        if protocol is self._protocol:
            self._protocol = None
            waiting, self._waiting_close = self._waiting_close, []
            for d in waiting:
                d.callback(None)


async def tcp_instrument_for(
    test_case: SynchronousTestCase, reactor: Any = None
) -> TCPInstrument:
    """
    Start a :class:`TCPInstrument` on 127.0.0.1 for one test; it is stopped
    when the test ends.

    :param test_case: the running test (a ``trial.unittest.TestCase``).
    :param reactor: the reactor; the global one if ``None``.
    :returns: the listening instrument.
    """
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.protocol import Factory

    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    instrument = TCPInstrument()
    factory = Factory.forProtocol(lambda: _InstrumentProtocol(instrument))
    factory.noisy = False
    listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        factory
    )
    instrument._listening = listening
    instrument.port = listening.getHost().port
    instrument.endpoint = f"tcp:host=127.0.0.1:port={instrument.port}"
    test_case.addCleanup(lambda: Deferred.fromCoroutine(instrument.stop()))
    return instrument


async def port_agent_for(
    test_case: SynchronousTestCase,
    instrument: str,
    *,
    name: str = "test-instrument",
    datalog_dir: str | None = None,
    reactor: Any = None,
    **options: Any,
) -> Any:
    """
    Launch a real port agent process in front of ``instrument`` for one
    test; it is stopped (and waited for) when the test ends.

    :param test_case: the running test (a ``trial.unittest.TestCase``).
    :param instrument: the agent's instrument endpoint, e.g.
        ``tcp:host=127.0.0.1:port=4001`` (a simulator or
        :class:`TCPInstrument`), ``serial:/dev/pts/5:baudrate=9600``.
    :param name: the agent's name.
    :param datalog_dir: where it writes its datalog; a fresh directory
        under the test's temporary directory if ``None``.
    :param reactor: the reactor; the global one if ``None``.
    :param options: other keyword arguments of
        :func:`~instrumentd.portagent.launcher.launch_port_agent` (e.g.
        ``heartbeat=1``).
    :returns: the launched agent's handle (``.pid``, ``.ports``,
        ``.stop()``, ``.ended``).
    """
    from instrumentd.portagent.launcher import launch_port_agent

    if datalog_dir is None:
        # Absolute, so the agent's config and stats name it unambiguously.
        datalog_dir = os.path.abspath(test_case.mktemp())
    handle = await launch_port_agent(
        name=name,
        instrument=instrument,
        datalog_dir=datalog_dir,
        reactor=reactor,
        **options,
    )
    test_case.addCleanup(handle.stop)
    return handle


async def client_for(
    test_case: SynchronousTestCase,
    handle: Any,
    *,
    reactor: Any = None,
    **options: Any,
) -> PortAgentClient:
    """
    A :class:`~instrumentd.portagent.client.PortAgentClient` connected to a
    launched agent (see :func:`port_agent_for`), disconnected when the test
    ends.

    :param test_case: the running test.
    :param handle: the launched agent's handle.
    :param reactor: the reactor; the global one if ``None``.
    :param options: keyword arguments for the client.
    :returns: the connected client.
    """
    client = PortAgentClient.for_address(
        "127.0.0.1",
        handle.ports["data"],
        handle.ports["command"],
        reactor=reactor,
        **options,
    )
    test_case.addCleanup(client.disconnect)
    await client.connect()
    return client
