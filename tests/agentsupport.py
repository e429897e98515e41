"""
Helpers for tests that run real port agents: a loopback instrument, clients
for the data, sniff, raw and command ports, a client that stops reading, a
datalog reader, and bounded waits.

Everything waits on events (bytes arriving, connections made or lost, a
process exiting) with a timeout; nothing sleeps or polls.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    connectProtocol,
    serverFromString,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IListeningPort, IReadDescriptor
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from instrumentd.datalogfiles import recorded_files
from instrumentd.packet import Packet, PacketParser, PacketType
from instrumentd.portagent.launcher import PortAgentProcess, launch_port_agent
from instrumentd.portagent.lifecycle import ParentWatch

T = TypeVar("T")

#: Seconds any one wait may take before the test fails.
WAIT: float = 15.0

reactor: Any = _global_reactor


def within(d: Deferred[T], what: str, seconds: float = WAIT) -> Deferred[T]:
    """
    Wait for ``d`` at most ``seconds``; then fail the test saying what it
    was waiting for.

    :param d: a cancellable Deferred.
    :param what: what it waits for, for the failure message.
    :param seconds: the limit.
    :returns: ``d``, which fails with ``AssertionError`` on timeout.
    """

    def timed_out(reason: Failure) -> Failure:
        if reason.check(TimeoutError):
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        return reason

    return d.addTimeout(seconds, reactor).addErrback(timed_out)


def elapse(seconds: float) -> Deferred[None]:
    """
    A Deferred that fires after ``seconds``: only for checking that
    something does *not* happen within a stretch of time.
    """
    return deferLater(reactor, seconds, lambda: None)


class Conditions:
    """
    Deferreds that fire when a predicate over received data becomes true.

    Call :meth:`changed` after every change and :meth:`ended` when no more
    can come.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], Deferred[None], str]] = []
        self._ended: str | None = None

    def when(
        self, predicate: Callable[[], bool], what: str, seconds: float = WAIT
    ) -> Deferred[None]:
        """
        Wait until ``predicate()`` is true.

        :param predicate: checked now and after every change.
        :param what: what is waited for, for failure messages.
        :param seconds: the most to wait.
        """
        if predicate():
            return succeed(None)
        if self._ended is not None:
            raise AssertionError(f"{self._ended} while waiting for {what}")

        def cancel(d: Deferred[None]) -> None:
            self._waiting = [w for w in self._waiting if w[1] is not d]

        d: Deferred[None] = Deferred(cancel)
        self._waiting.append((predicate, d, what))
        return within(d, what, seconds)

    def changed(self) -> None:
        """
        Fire the waits whose predicate is now true.
        """
        ready = [w for w in self._waiting if w[0]()]
        if ready:
            self._waiting = [w for w in self._waiting if w not in ready]
            for _, d, _what in ready:
                d.callback(None)

    def ended(self, why: str) -> None:
        """
        Nothing more will change: fail the waits still unsatisfied.
        """
        self.changed()
        self._ended = why
        waiting, self._waiting = self._waiting, []
        for _, d, what in waiting:
            d.errback(AssertionError(f"{why} while waiting for {what}"))


class _Client(Protocol):
    """
    A client connection that can be waited on, and waits for its own close.
    """

    def __init__(self) -> None:
        self.conditions = Conditions()
        self.closed: Deferred[None] = Deferred()
        self.is_closed = False

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.is_closed = True
        self.conditions.ended("the connection closed")
        self.closed.callback(None)

    def disconnect(self) -> Deferred[None]:
        """
        Close the connection; fires once it is closed.
        """
        if self.is_closed:
            return succeed(None)
        assert self.transport is not None
        self.transport.loseConnection()
        return within(_chain(self.closed), "our client connection to close")

    def write(self, data: bytes) -> None:
        """
        Send bytes to the agent.
        """
        assert self.transport is not None
        self.transport.write(data)


def _chain(d: Deferred[None]) -> Deferred[None]:
    """
    A new Deferred firing when ``d`` does, without touching ``d``'s result.
    """
    out: Deferred[None] = Deferred()

    def fire(result: object) -> object:
        if not out.called:
            out.callback(None)
        return result

    d.addBoth(fire)
    return out


class PacketClient(_Client):
    """
    A data-port client: parses packets and keeps every one.

    :ivar packets: every packet received, in order.
    :ivar instrument_data: the payloads of DATA_FROM_INSTRUMENT packets.
    """

    def __init__(self) -> None:
        super().__init__()
        self.parser = PacketParser()
        self.packets: list[Packet] = []
        self.instrument_data = bytearray()

    def dataReceived(self, data: bytes) -> None:
        for packet in self.parser.feed(data):
            self.packets.append(packet)
            if packet.type is PacketType.DATA_FROM_INSTRUMENT:
                self.instrument_data += packet.payload
        self.conditions.changed()

    def of_type(self, packet_type: PacketType) -> list[Packet]:
        """
        The packets of one type received so far.
        """
        return [p for p in self.packets if p.type is packet_type]

    def wait_for_data(self, count: int) -> Deferred[None]:
        """
        Wait until ``count`` bytes of instrument data have arrived.
        """
        return self.conditions.when(
            lambda: len(self.instrument_data) >= count,
            f"{count} bytes of instrument data on a data client",
        )

    def wait_for_packet(
        self, packet_type: PacketType, match: Callable[[Packet], bool] = lambda p: True
    ) -> Deferred[None]:
        """
        Wait for a packet of a type for which ``match`` is true.
        """
        return self.conditions.when(
            lambda: any(p.type is packet_type and match(p) for p in self.packets),
            f"a {packet_type.name} packet on a data client",
        )

    def wait_for_count(self, packet_type: PacketType, count: int) -> Deferred[None]:
        """
        Wait until ``count`` packets of a type have arrived.
        """
        return self.conditions.when(
            lambda: len(self.of_type(packet_type)) >= count,
            f"{count} {packet_type.name} packets on a data client",
        )


class ByteClient(_Client):
    """
    A raw-port client: keeps every byte.
    """

    def __init__(self) -> None:
        super().__init__()
        self.received = bytearray()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self.conditions.changed()

    def wait_for_bytes(self, data: bytes, what: str = "") -> Deferred[None]:
        """
        Wait until ``data`` has appeared in what was received.
        """
        return self.conditions.when(
            lambda: data in self.received, what or f"{data!r} on a raw client"
        )


class LineClient(LineOnlyReceiver, _Client):
    """
    A command-port or sniff-port client: keeps every line.

    :ivar lines: every line received, decoded, without its newline.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self) -> None:
        _Client.__init__(self)
        self.lines: list[str] = []
        self._asked = 0

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line.decode("utf-8", "replace"))
        self.conditions.changed()

    def wait_for_lines(self, count: int) -> Deferred[None]:
        """
        Wait until ``count`` lines have arrived.
        """
        return self.conditions.when(lambda: len(self.lines) >= count, f"{count} lines")

    def wait_for_line(self, match: Callable[[str], bool], what: str) -> Deferred[None]:
        """
        Wait for a line for which ``match`` is true.
        """
        return self.conditions.when(lambda: any(map(match, self.lines)), what)

    def ask(self, command: str) -> Deferred[str]:
        """
        Send one command line and wait for its reply, assuming (as the
        command port promises) one reply line per command line.
        """
        index = self._asked
        self._asked += 1
        self.sendLine(command.encode())  # type: ignore[no-untyped-call]
        d = self.conditions.when(
            lambda: len(self.lines) > index, f"the reply to {command!r}"
        )
        return d.addCallback(lambda _: self.lines[index])


async def connect(test: TestCase, port: int | str | None, client: T) -> T:
    """
    Connect ``client`` (a :class:`_Client`) to ``127.0.0.1:port``; it is
    disconnected when the test ends.
    """
    assert isinstance(port, int), f"no TCP port: {port!r}"
    assert isinstance(client, _Client)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    await within(connectProtocol(endpoint, client), f"a connection to port {port}")
    test.addCleanup(client.disconnect)
    return client


class StalledClient:
    """
    A data client that never reads, with a small receive buffer, so the
    agent's sends to it back up.

    :ivar label: its address as the agent names it, ``host:port``.
    """

    def __init__(self, port: int | str | None) -> None:
        assert isinstance(port, int)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.connect(("127.0.0.1", port))
        self.socket.setblocking(False)
        host, local_port = self.socket.getsockname()
        self.label = f"{host}:{local_port}"

    def send(self, data: bytes) -> None:
        """
        Send a few bytes to the agent (they go to the instrument).
        """
        self.socket.send(data)

    def close(self) -> None:
        """
        Close the socket (if :meth:`wait_closed` has not taken it).
        """
        if self.socket.fileno() >= 0:
            self.socket.close()

    def wait_closed(self) -> Deferred[None]:
        """
        Start reading (draining what is queued) and wait until the agent's
        end has closed the connection.
        """
        drain = _Drain(self.socket)
        reactor.addReader(drain)
        return within(_chain(drain.closed), "the agent to cut off a stalled client")


@implementer(IReadDescriptor)
class _Drain:
    """
    Reads and discards everything from a socket until it is closed or reset,
    then closes it.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self.closed: Deferred[None] = Deferred()

    def fileno(self) -> int:
        return self._socket.fileno()

    def logPrefix(self) -> str:
        return "StalledClient"

    def doRead(self) -> None:
        while True:
            try:
                data = self._socket.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""  # reset by the agent: closed all the same
            if not data:
                self.connectionLost(Failure(ConnectionDone()))
                return

    def connectionLost(self, reason: Failure) -> None:
        reactor.removeReader(self)
        self._socket.close()
        if not self.closed.called:
            self.closed.callback(None)


class InstrumentProtocol(Protocol):
    """
    One connection from the agent to the test instrument.
    """

    def __init__(self, server: InstrumentServer) -> None:
        self.server = server
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.server.connections.append(self)
        self.server.current = self
        self.server.conditions.changed()

    def dataReceived(self, data: bytes) -> None:
        self.server.received += data
        self.server.conditions.changed()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.server.current is self:
            self.server.current = None
        self.closed.callback(None)


class InstrumentServer:
    """
    A pretend instrument on a loopback TCP port that the agent connects to:
    the test makes it send bytes, drop the connection, refuse connections
    for a while, and accept again.

    :ivar sent: every byte sent to the agent, over all connections.
    :ivar received: every byte the agent wrote to it.
    :ivar connections: every connection the agent made, in order.
    """

    def __init__(self) -> None:
        self.sent = bytearray()
        self.received = bytearray()
        self.connections: list[InstrumentProtocol] = []
        self.current: InstrumentProtocol | None = None
        self.conditions = Conditions()
        self.port = 0
        self._listening: IListeningPort | None = None

    @property
    def endpoint(self) -> str:
        """
        The client endpoint string the agent should use.
        """
        return f"tcp:host=127.0.0.1:port={self.port}"

    async def listen(self) -> None:
        """
        Accept connections (on the same port as before, after the first).
        """
        factory = Factory.forProtocol(lambda: InstrumentProtocol(self))
        factory.noisy = False
        self._listening = await serverFromString(
            reactor, f"tcp:{self.port}:interface=127.0.0.1"
        ).listen(factory)
        self.port = self._listening.getHost().port  # type: ignore[union-attr]

    async def stop_listening(self) -> None:
        """
        Refuse new connections until :meth:`listen` is called again.
        """
        if self._listening is not None:
            port, self._listening = self._listening, None
            await port.stopListening()  # type: ignore[misc]

    def wait_for_connection(self, count: int = 1) -> Deferred[InstrumentProtocol]:
        """
        Wait until the agent has made ``count`` connections in all; fires
        with the latest.
        """
        d = self.conditions.when(
            lambda: len(self.connections) >= count and self.current is not None,
            f"connection number {count} from the agent to the instrument",
        )
        return d.addCallback(lambda _: self.connections[-1])

    def wait_for_received(self, data: bytes) -> Deferred[None]:
        """
        Wait until ``data`` has reached the instrument.
        """
        return self.conditions.when(
            lambda: data in self.received, f"{data!r} to reach the instrument"
        )

    def send(self, data: bytes) -> None:
        """
        Send bytes to the agent on the current connection.
        """
        assert self.current is not None, "the agent is not connected"
        assert self.current.transport is not None
        self.current.transport.write(data)
        self.sent += data

    def drop(self) -> Deferred[None]:
        """
        Close the current connection cleanly (what was sent is delivered);
        fires once it is closed.
        """
        assert self.current is not None, "the agent is not connected"
        protocol = self.current
        assert protocol.transport is not None
        protocol.transport.loseConnection()
        return within(_chain(protocol.closed), "the instrument connection to close")

    async def close(self) -> None:
        """
        Stop listening and close every connection (test cleanup).
        """
        await self.stop_listening()
        for protocol in self.connections:
            if not protocol.closed.called and protocol.transport is not None:
                protocol.transport.loseConnection()
                await within(
                    _chain(protocol.closed), "an instrument connection to close"
                )


async def start_instrument(test: TestCase) -> InstrumentServer:
    """
    A listening :class:`InstrumentServer`, closed when the test ends.
    """
    server = InstrumentServer()
    await server.listen()
    test.addCleanup(lambda: Deferred.fromCoroutine(server.close()))
    return server


async def start_agent(
    test: TestCase, instrument: InstrumentServer | str, **options: Any
) -> PortAgentProcess:
    """
    Launch a port agent (a real ``twistd`` child) named ``TEST01``; it is
    stopped, and must exit 0, when the test ends.

    :param instrument: the server, or an endpoint string.
    :param options: more keyword arguments for
        :func:`~instrumentd.portagent.launcher.launch_port_agent` (give
        ``datalog_dir``: a fresh temporary directory by default).
    """
    options.setdefault("name", "TEST01")
    options.setdefault("datalog_dir", os.path.abspath(test.mktemp()))
    options.setdefault("timeout", WAIT)
    endpoint = instrument if isinstance(instrument, str) else instrument.endpoint
    agent = await launch_port_agent(instrument=endpoint, reactor=reactor, **options)

    async def stop() -> None:
        status = await within(agent.stop(), f"{agent!r} to stop")
        test.assertEqual(status, 0, agent.stdout_tail[-3000:])

    test.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return agent


def read_datalog(directory: str, name: str = "TEST01") -> list[Packet]:
    """
    Every packet of a datalog, in the order written; the files must hold
    nothing but whole, valid packets.
    """
    files = recorded_files(directory, name)
    assert files, f"no datalog files under {directory}"
    parser = PacketParser()
    packets: list[Packet] = []
    for path in files:
        with open(path, "rb") as f:
            packets += parser.feed(f.read())
    counters = parser.counters
    assert counters.bad_packets == 0 and counters.junk_bytes == 0, counters
    assert parser.pending == 0, f"{parser.pending} bytes of a partial packet"
    return packets


def payloads(packets: list[Packet], packet_type: PacketType) -> bytes:
    """
    The concatenated payloads of the packets of one type.
    """
    return b"".join(p.payload for p in packets if p.type is packet_type)


def process_exit(pid: int, what: str, seconds: float = WAIT) -> Deferred[None]:
    """
    Fire when a process that is not our child exits (a pidfd on Linux).
    """
    d: Deferred[None] = Deferred(lambda _: watch.stop())
    watch = ParentWatch(pid, lambda: d.callback(None), reactor)
    watch.start()
    return within(d, what, seconds)


def run(coroutine: Coroutine[Any, Any, T]) -> Deferred[T]:
    """
    Run a coroutine as a Deferred (for trial test methods).
    """
    return Deferred.fromCoroutine(coroutine)
