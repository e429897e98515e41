# -*- test-case-name: tests.test_portagent_client -*-
"""
The driver's side of a port agent: a client for its data and command ports.

A :class:`PortAgentClient` keeps two connections to one agent, each a
:class:`~twisted.application.internet.ClientService` that reconnects with
exponential backoff and jitter:

- the **data port** carries packets.  They are parsed with
  :class:`~instrumentd.packet.PacketParser` (checksums verified, junk and
  corrupt packets skipped and counted); instrument bytes go to the attached
  callback with the packet that carried them, ``CONNECTED`` /
  ``DISCONNECTED`` status packets become link state changes, and faults
  become fault notifications.  Bytes written go to the instrument.
- the **command port** takes one command line and gives one reply line.
  Replies come back in order, so each command waits in a queue for the next
  line; each has its own timeout.

The agent sends heartbeats on the data port.  When nothing at all has
arrived for ``missed_heartbeats`` heartbeat intervals, the agent is declared
lost: both connections are dropped and re-made with backoff, and the
attached protocol is told.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from instrumentd.interfaces import LinkState
from instrumentd.packet import Packet, PacketParser, PacketType, ParserCounters
from instrumentd.portagent.link import QuietClientService

__all__ = [
    "DataCallback",
    "FaultCallback",
    "PortAgentClient",
    "PortAgentCommandError",
    "PortAgentCommandTimeout",
    "PortAgentError",
    "PortAgentNotConnected",
    "StateCallback",
    "agent_endpoint",
]

#: Called with each instrument payload and the packet that carried it.
DataCallback = Callable[[bytes, Packet], object]
#: Called with the new link state whenever it changes.
StateCallback = Callable[[LinkState], object]
#: Called with the text of each fault the agent reports.
FaultCallback = Callable[[str], object]

_STATUS = {b"CONNECTED": True, b"DISCONNECTED": False}


class PortAgentError(Exception):
    """
    Something went wrong between this client and its port agent.
    """


class PortAgentNotConnected(PortAgentError):
    """
    The port agent (or, for :meth:`PortAgentClient.send`, the instrument
    behind it) is not connected, so the request was not sent.
    """


class PortAgentCommandError(PortAgentError):
    """
    The agent answered a command with an ``ERROR`` line.

    :ivar command: the command line sent.
    :ivar reply: the agent's reply, starting ``ERROR``.
    """

    def __init__(self, command: str, reply: str) -> None:
        """
        :param command: the command line sent.
        :param reply: the agent's ``ERROR`` line.
        """
        super().__init__(reply)
        self.command = command
        self.reply = reply


class PortAgentCommandTimeout(PortAgentError):
    """
    The agent did not answer a command in time.

    :ivar command: the command line sent.
    :ivar timeout: how long it waited, in seconds.
    """

    def __init__(self, command: str, timeout: float) -> None:
        """
        :param command: the command line sent.
        :param timeout: how long it waited, in seconds.
        """
        super().__init__(
            f"the port agent did not answer {command!r} within {timeout:g} s"
        )
        self.command = command
        self.timeout = timeout


def agent_endpoint(reactor: Any, host: str, port: int | str) -> IStreamClientEndpoint:
    """
    The client endpoint of one of an agent's listeners.

    :param reactor: the reactor to connect with.
    :param host: the agent's host name or address (ignored for UNIX sockets).
    :param port: a TCP port number, or the path of a UNIX socket.
    :returns: an endpoint to connect to it.
    """
    from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint

    if isinstance(port, str):
        return UNIXClientEndpoint(reactor, port)
    return HostnameEndpoint(reactor, host, port)


@dataclass
class _PendingCommand:
    line: str
    deferred: Deferred[str]
    timer: IDelayedCall | None = None
    # A command that timed out or was cancelled keeps its place in the queue
    # so that its late reply, if any, is not taken as the next command's.
    abandoned: bool = False


class _CommandProtocol(LineOnlyReceiver):
    """
    One connection to the command port: lines out, reply lines matched to
    them in order.
    """

    delimiter = b"\n"
    # get_stats of a busy agent is one long JSON line.
    MAX_LENGTH = 1 << 20
    log = Logger()

    def __init__(self, client: PortAgentClient) -> None:
        self._client = client
        self._pending: deque[_PendingCommand] = deque()

    def connectionMade(self) -> None:
        self._client._present_token(self.transport, "command")
        self._client._command_connected(self)

    def run(self, line: str, timeout: float) -> Deferred[str]:
        """
        Send one command line.

        :returns: a Deferred firing with the reply line (without its line
            end), or failing with :class:`PortAgentCommandTimeout` or
            :class:`PortAgentNotConnected`.
        """

        def cancel(_: Deferred[str]) -> None:
            self._abandon(entry)

        entry = _PendingCommand(line, Deferred(cancel))
        if timeout > 0:
            entry.timer = self._client._clock.callLater(timeout, self._expire, entry)
        # Queue before writing: a transport may deliver the reply at once.
        self._pending.append(entry)
        self.sendLine(line.encode("ascii"))  # type: ignore[no-untyped-call]
        return entry.deferred

    def _abandon(self, entry: _PendingCommand) -> None:
        entry.abandoned = True
        if entry.timer is not None and entry.timer.active():
            entry.timer.cancel()
        entry.timer = None

    def _expire(self, entry: _PendingCommand) -> None:
        entry.timer = None
        self._abandon(entry)
        timeout = self._client.command_timeout_for(entry.line)
        entry.deferred.errback(PortAgentCommandTimeout(entry.line, timeout))

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not self._pending:
            self.log.warn("unexpected line from the command port: {line!r}", line=line)
            return
        entry = self._pending.popleft()
        if entry.abandoned:
            self.log.info(
                "late reply to {command!r} dropped: {line!r}",
                command=entry.line,
                line=line,
            )
            return
        self._abandon(entry)
        entry.deferred.callback(line.decode("utf-8", "backslashreplace"))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        pending, self._pending = self._pending, deque()
        for entry in pending:
            if not entry.abandoned:
                self._abandon(entry)
                entry.deferred.errback(
                    PortAgentNotConnected(
                        f"the command port connection was lost before the reply "
                        f"to {entry.line!r}: {reason.getErrorMessage()}"
                    )
                )
        self._client._command_lost(self)


class _DataProtocol(Protocol):
    """
    One connection to the data port.
    """

    def __init__(self, client: PortAgentClient) -> None:
        self._client = client
        # A new parser per connection: a packet cut short by a lost
        # connection must not be glued to the next connection's bytes.  The
        # counters are the client's, so they survive reconnects.
        self.parser = PacketParser(counters=client.counters)

    def connectionMade(self) -> None:
        self._client._present_token(self.transport, "data")
        self._client._data_connected(self)

    def dataReceived(self, data: bytes) -> None:
        self._client._data_received(self, data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._client._data_lost(self, reason)


class _ClientFactory(Factory):
    noisy = False

    def __init__(
        self,
        client: PortAgentClient,
        protocol: type[_DataProtocol] | type[_CommandProtocol],
    ) -> None:
        self._client = client
        self._protocol = protocol

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        return self._protocol(self._client)


class PortAgentClient:
    """
    A client of one port agent's data and command ports.

    Make one with endpoints (or with :meth:`for_address`), :meth:`attach` a
    callback, then :meth:`connect`.  It reconnects by itself until
    :meth:`disconnect`.

    :ivar counters: what the packet parser has seen (good packets, junk
        bytes, bad checksums and lengths); kept across reconnects.
    :ivar agent_losses: how many times the agent was declared lost because
        its heartbeats stopped.
    :ivar missed_heartbeats: how many heartbeat intervals of silence make
        the agent count as lost.
    :ivar command_timeout: seconds to wait for a command's reply.
    """

    log = Logger()

    def __init__(
        self,
        data_endpoint: IStreamClientEndpoint,
        command_endpoint: IStreamClientEndpoint,
        *,
        clock: IReactorTime | None = None,
        heartbeat_interval: float | None = None,
        missed_heartbeats: int = 3,
        command_timeout: float = 10.0,
        retry_policy: Callable[[int], float] | None = None,
        description: str = "port agent",
        token: bytes | None = None,
        token_on_data: bool = True,
    ) -> None:
        """
        :param data_endpoint: where the agent's data port is.
        :param command_endpoint: where the agent's command port is.
        :param clock: for timeouts, heartbeat watching and reconnect delays;
            the global reactor if ``None``.
        :param heartbeat_interval: the agent's heartbeat period in seconds;
            ``None`` asks the agent (``get_config``) on every connect; 0
            turns heartbeat watching off.
        :param missed_heartbeats: heartbeat intervals of silence after which
            the agent is declared lost.
        :param command_timeout: seconds to wait for each command's reply; 0
            waits for ever.
        :param retry_policy: seconds to wait before reconnect attempt N
            (from 1); exponential backoff from 1 s to 30 s with up to 1 s of
            jitter if ``None``.
        :param description: how log lines and errors name this agent.
        :param token: the agent's shared token (its ``--token-file``), sent
            as the first line of every connection; ``None`` if it has none.
        :param token_on_data: whether the data port takes the token too
            (``False`` if the agent was given ``--tokenless data``).
        :raises ValueError: if ``missed_heartbeats`` < 1 or a time is < 0.
        """
        if missed_heartbeats < 1:
            raise ValueError(
                f"missed_heartbeats must be at least 1, not {missed_heartbeats}"
            )
        if command_timeout < 0 or (heartbeat_interval or 0) < 0:
            raise ValueError("command_timeout and heartbeat_interval must be >= 0")
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self._clock = clock
        self.description = description
        self._token = token
        self._token_on_data = token_on_data
        self.counters = ParserCounters()
        self.agent_losses = 0
        self.missed_heartbeats = missed_heartbeats
        self.command_timeout = command_timeout
        self._heartbeat_given = heartbeat_interval
        self._heartbeat_learned: float | None = None
        #: Whether the agent's instrument link can carry a serial break, as
        #: the agent's configuration says; ``None`` until it has said.
        self.link_can_break: bool | None = None
        if retry_policy is None:
            retry_policy = backoffPolicy(
                initialDelay=0.5, maxDelay=30.0, factor=2.0, jitter=random.random
            )
        self._retry_policy = retry_policy
        self._data_endpoint = data_endpoint
        self._command_endpoint = command_endpoint
        self._services: tuple[ClientService, ClientService] | None = None
        self._data: _DataProtocol | None = None
        self._commands: _CommandProtocol | None = None
        self._watchdog: IDelayedCall | None = None
        self._state = LinkState()
        self._running = False
        self._refreshing: Deferred[None] | None = None
        self._on_data: DataCallback | None = None
        self._on_state: StateCallback | None = None
        self._on_fault: FaultCallback | None = None

    def _present_token(self, transport: object, kind: str) -> None:
        if self._token is None or (kind == "data" and not self._token_on_data):
            return
        # Before anything else on the connection: the agent reads its first
        # line as the token (see instrumentd.portagent.access).
        transport.write(self._token + b"\n")  # type: ignore[attr-defined]

    @classmethod
    def for_address(
        cls,
        host: str,
        data_port: int | str,
        command_port: int | str,
        *,
        reactor: Any = None,
        **options: Any,
    ) -> PortAgentClient:
        """
        A client of the agent listening at ``host``.

        :param host: the agent's host name or address.
        :param data_port: its data port number (or UNIX socket path).
        :param command_port: its command port number (or UNIX socket path).
        :param reactor: the reactor; the global one if ``None``.
        :param options: the keyword arguments of the constructor.
        :returns: an unconnected client.
        """
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        options.setdefault("clock", reactor)
        options.setdefault(
            "description",
            f"port agent at {host} data {data_port} command {command_port}",
        )
        return cls(
            agent_endpoint(reactor, host, data_port),
            agent_endpoint(reactor, host, command_port),
            **options,
        )

    # -- what the attached protocol sees -------------------------------------

    @property
    def state(self) -> LinkState:
        """
        The current link state.
        """
        return self._state

    @property
    def heartbeat_interval(self) -> float | None:
        """
        The heartbeat period watched, in seconds: as given, or as learned
        from the agent; ``None`` while unknown, 0 when not watched.
        """
        if self._heartbeat_given is not None:
            return self._heartbeat_given
        return self._heartbeat_learned

    def attach(
        self,
        on_data: DataCallback,
        on_state: StateCallback | None = None,
        on_fault: FaultCallback | None = None,
    ) -> None:
        """
        Give instrument bytes and notifications to these callbacks.

        A callback that raises is logged; the client carries on.

        :param on_data: called with each DATA_FROM_INSTRUMENT payload and
            its packet.
        :param on_state: called with the new :class:`LinkState` on each
            change.
        :param on_fault: called with the text of each PORT_AGENT_FAULT.
        :raises PortAgentError: if callbacks are attached already.
        """
        if self._on_data is not None:
            raise PortAgentError(
                f"a protocol is already attached to {self.description}; detach() first"
            )
        self._on_data, self._on_state, self._on_fault = on_data, on_state, on_fault

    def detach(self) -> None:
        """
        Stop giving bytes and notifications to the attached callbacks.
        """
        self._on_data = self._on_state = self._on_fault = None

    # -- connecting ---------------------------------------------------------

    def connect(self, fail_after_failures: int | None = 1) -> Deferred[LinkState]:
        """
        Connect to both ports, and keep reconnecting after losses until
        :meth:`disconnect`.

        :param fail_after_failures: fail (and stop trying) after this many
            failed attempts on either port; ``None`` keeps trying for ever.
        :returns: a Deferred firing with the :class:`LinkState` once both
            ports are connected and the agent has said how its instrument
            link is, or failing with :class:`PortAgentNotConnected`.
        """
        if self._running:
            return fail(PortAgentError(f"{self.description}: connect() called twice"))
        self._running = True
        # New services each time: a stopped ClientService refuses to wait
        # for a connection even after it is started again.
        services = (
            QuietClientService(
                self._data_endpoint,
                _ClientFactory(self, _DataProtocol),
                retryPolicy=self._retry_policy,
                clock=self._clock,
            ),
            QuietClientService(
                self._command_endpoint,
                _ClientFactory(self, _CommandProtocol),
                retryPolicy=self._retry_policy,
                clock=self._clock,
            ),
        )
        self._services = services
        # Ask before starting: an endpoint may fail at once, and a failure
        # before anyone waits is not counted for them.
        both = gatherResults(
            [service.whenConnected(fail_after_failures) for service in services],
            consumeErrors=True,
        )
        for service in services:
            service.startService()

        def connected(_: object) -> Deferred[None]:
            return self._refreshing if self._refreshing is not None else succeed(None)

        def unreachable(reason: Failure) -> Deferred[LinkState]:
            cause = getattr(reason.value, "subFailure", reason)
            why = cause.getErrorMessage() or type(cause.value).__name__

            def raise_(_: object) -> LinkState:
                raise PortAgentNotConnected(
                    f"cannot reach the {self.description}: {why}"
                )

            return self.disconnect().addCallback(raise_)

        return (
            both.addCallback(connected)
            .addCallback(lambda _: self._state)
            .addErrback(unreachable)
        )

    def disconnect(self) -> Deferred[None]:
        """
        Close both connections and stop reconnecting.  Pending commands
        fail with :class:`PortAgentNotConnected`.

        :returns: a Deferred firing once both connections are closed.
        """
        self._running = False
        self._stop_watchdog()
        services, self._services = self._services, None
        if services is None:
            return succeed(None)
        stopped = gatherResults(
            [self._stop_service(service) for service in services], consumeErrors=True
        )
        return stopped.addCallback(lambda _: None)

    def _stop_service(self, service: ClientService) -> Deferred[None]:
        try:
            return service.stopService()
        except RuntimeError as e:
            if "reentrant" not in str(e):
                raise
        # ClientService's state machine refuses to be stopped from inside
        # one of its own transitions: a connection that failed (or was made)
        # at once fires its waiters there, and a waiter may disconnect.
        # Stop it as soon as that transition is over.
        stopped: Deferred[None] = Deferred()
        self._clock.callLater(0, lambda: service.stopService().chainDeferred(stopped))
        return stopped

    # -- sending ------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """
        Write bytes to the instrument through the agent.

        :param data: the bytes.
        :raises PortAgentNotConnected: at once, if the data port is not
            connected or the agent reports the instrument link down; nothing
            is queued for later.
        """
        if self._data is None or self._data.transport is None:
            raise PortAgentNotConnected(
                f"the {self.description} is not connected; {len(data)} bytes not sent"
            )
        if self._state.instrument is False:
            raise PortAgentNotConnected(
                f"the {self.description} reports its instrument link DISCONNECTED; "
                f"{len(data)} bytes not sent"
            )
        self._data.transport.write(data)

    def command(self, line: str, timeout: float | None = None) -> Deferred[str]:
        """
        Send one command line to the command port.

        :param line: the command and its arguments, e.g. ``"break 300"``.
        :param timeout: seconds to wait for the reply; the client's
            ``command_timeout`` if ``None``.
        :returns: a Deferred firing with the reply text, or failing with
            :class:`PortAgentCommandError` (an ``ERROR`` reply),
            :class:`PortAgentCommandTimeout` or
            :class:`PortAgentNotConnected` (not sent).
        """
        if not line.isascii() or "\n" in line or "\r" in line:
            return fail(
                ValueError(f"a command is one line of ASCII text, not {line!r}")
            )
        if self._commands is None:
            return fail(
                PortAgentNotConnected(
                    f"the {self.description} command port is not connected; "
                    f"{line!r} not sent"
                )
            )
        if timeout is None:
            timeout = self.command_timeout_for(line)

        def check(reply: str) -> str:
            if reply.startswith("ERROR"):
                raise PortAgentCommandError(line, reply)
            return reply

        return self._commands.run(line, timeout).addCallback(check)

    def command_timeout_for(self, line: str) -> float:
        """
        How long to wait for the reply to a command line: the command
        timeout, plus the duration of a break.

        :param line: the command line.
        :returns: seconds; 0 means for ever.
        """
        words = line.split()
        if self.command_timeout and words and words[0] == "break" and len(words) > 1:
            try:
                return self.command_timeout + int(words[1]) / 1000
            except ValueError:
                pass
        return self.command_timeout

    def get_state(self) -> Deferred[str]:
        """
        :returns: a Deferred firing with ``CONNECTED`` or ``DISCONNECTED``
            (the agent's instrument link).
        """
        return self.command("get_state").addCallback(self._update_instrument)

    def get_config(self) -> Deferred[dict[str, Any]]:
        """
        :returns: a Deferred firing with the agent's configuration, decoded
            from JSON.
        """
        return self.command("get_config").addCallback(_json_object, "get_config")

    def get_stats(self) -> Deferred[dict[str, Any]]:
        """
        :returns: a Deferred firing with the agent's counters, decoded from
            JSON.
        """
        return self.command("get_stats").addCallback(_json_object, "get_stats")

    def get_version(self) -> Deferred[str]:
        """
        :returns: a Deferred firing with the agent's version text.
        """
        return self.command("get_version")

    def ping(self) -> Deferred[str]:
        """
        :returns: a Deferred firing with the agent's ``pong NAME VERSION``.
        """
        return self.command("ping")

    def send_break(self, duration_ms: int = 250) -> Deferred[str]:
        """
        Ask the agent to send a serial break.

        :param duration_ms: how long to hold it, in milliseconds.
        :returns: a Deferred firing with the agent's ``OK`` reply once the
            break has ended, or failing with :class:`PortAgentCommandError`
            carrying the agent's ``ERROR`` text (e.g. on a TCP link).
        """
        return self.command(f"break {int(duration_ms)}")

    def set_heartbeat_interval(self, seconds: float) -> Deferred[str]:
        """
        Change the agent's heartbeat period, and watch for the new one.

        :param seconds: the new period; 0 turns heartbeats (and watching) off.
        :returns: a Deferred firing with the agent's ``OK`` reply.
        """

        def changed(reply: str) -> str:
            if self._heartbeat_given is not None:
                self._heartbeat_given = seconds
            else:
                self._heartbeat_learned = seconds
            self._arm_watchdog()
            return reply

        return self.command(f"heartbeat_interval {seconds:g}").addCallback(changed)

    # -- events from the connections ------------------------------------------

    def _set_state(self, **changes: Any) -> None:
        new = replace(self._state, **changes)
        if new == self._state:
            return
        self._state = new
        if self._on_state is not None:
            try:
                self._on_state(new)
            except Exception:
                self.log.failure("link state callback failed")

    def _data_connected(self, protocol: _DataProtocol) -> None:
        self._data = protocol
        self.log.info(
            "connected to the data port of the {agent}", agent=self.description
        )
        self._set_state(agent=True)
        self._arm_watchdog()
        self._refresh()

    def _data_received(self, protocol: _DataProtocol, data: bytes) -> None:
        if protocol is not self._data:
            return
        self._arm_watchdog()
        for packet in protocol.parser.feed(data):
            self._packet(packet)
            if protocol is not self._data:
                return  # a callback disconnected us

    def _packet(self, packet: Packet) -> None:
        kind = packet.type
        if kind == PacketType.DATA_FROM_INSTRUMENT:
            if self._on_data is not None:
                try:
                    self._on_data(packet.payload, packet)
                except Exception:
                    self.log.failure("data callback failed")
        elif kind == PacketType.PORT_AGENT_STATUS:
            up = _STATUS.get(packet.payload)
            if up is None:
                self.log.warn(
                    "unknown status from the {agent}: {status!r}",
                    agent=self.description,
                    status=packet.payload,
                )
            else:
                self._set_state(instrument=up)
        elif kind == PacketType.PORT_AGENT_FAULT:
            text = packet.payload.decode("utf-8", "backslashreplace")
            self.log.warn(
                "fault from the {agent}: {fault}", agent=self.description, fault=text
            )
            if self._on_fault is not None:
                try:
                    self._on_fault(text)
                except Exception:
                    self.log.failure("fault callback failed")
        elif kind == PacketType.PORT_AGENT_CONFIG:
            self._config_packet(packet.payload)

    def _config_packet(self, payload: bytes) -> None:
        # The agent publishes its config at start and on get_config; keep
        # its heartbeat period if we were not told one.
        try:
            config = json.loads(payload)
        except ValueError:
            return  # the version text, also sent as a CONFIG packet
        if isinstance(config, dict):
            self._learn_heartbeat(config)
            self._learn_link(config)

    def _learn_link(self, config: dict[str, Any]) -> None:
        can_break = config.get("link_can_break")
        if isinstance(can_break, bool):
            self.link_can_break = can_break

    def _learn_heartbeat(self, config: dict[str, Any]) -> None:
        heartbeat = config.get("heartbeat")
        if (
            self._heartbeat_given is None
            and isinstance(heartbeat, int | float)
            and not isinstance(heartbeat, bool)
            and heartbeat >= 0
            and heartbeat != self._heartbeat_learned
        ):
            self._heartbeat_learned = float(heartbeat)
            self._arm_watchdog()

    def _data_lost(self, protocol: _DataProtocol, reason: Failure) -> None:
        if protocol is not self._data:
            return
        self._data = None
        self._stop_watchdog()
        if self._running:
            self.log.info(
                "lost the data port of the {agent}: {reason}",
                agent=self.description,
                reason=reason.getErrorMessage(),
            )
        # Status packets come only on the data port: without it the
        # instrument link's state is unknown.
        self._set_state(agent=False, instrument=None)

    def _command_connected(self, protocol: _CommandProtocol) -> None:
        self._commands = protocol
        self._set_state(commands=True)
        self._refresh()

    def _command_lost(self, protocol: _CommandProtocol) -> None:
        if protocol is self._commands:
            self._commands = None
            self._set_state(commands=False)

    def _refresh(self) -> None:
        """
        Once both ports are up, ask the agent for its heartbeat period (if
        not told) and its instrument link state, which a newly connected
        data client is otherwise not told until it changes.
        """
        if self._data is None or self._commands is None:
            return

        def then_state(_: object) -> Deferred[str]:
            return self.get_state()

        def learn(config: dict[str, Any]) -> None:
            self._learn_heartbeat(config)
            self._learn_link(config)

        d: Deferred[Any] = self.get_config().addCallback(learn)

        def failed(reason: Failure) -> None:
            self.log.info(
                "could not ask the {agent} for its state: {reason}",
                agent=self.description,
                reason=reason.getErrorMessage(),
            )

        def done(_: object) -> None:
            if self._refreshing is refreshing:
                self._refreshing = None

        refreshing: Deferred[None] = (
            d.addCallback(then_state).addCallback(lambda _: None).addErrback(failed)
        )
        self._refreshing = refreshing
        refreshing.addCallback(done)

    def _update_instrument(self, reply: str) -> str:
        up = _STATUS.get(reply.encode("ascii", "replace"))
        if up is not None and self._data is not None:
            self._set_state(instrument=up)
        return reply

    # -- heartbeat watching ---------------------------------------------------

    def _arm_watchdog(self) -> None:
        interval = self.heartbeat_interval
        if not interval or self._data is None:
            self._stop_watchdog()
            return
        timeout = interval * self.missed_heartbeats
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.reset(timeout)
        else:
            self._watchdog = self._clock.callLater(timeout, self._agent_silent)

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None

    def _agent_silent(self) -> None:
        self._watchdog = None
        interval = self.heartbeat_interval or 0
        self.agent_losses += 1
        self.log.warn(
            "nothing from the {agent} for {seconds:g} s ({missed} heartbeat "
            "intervals): declaring it lost and reconnecting",
            agent=self.description,
            seconds=interval * self.missed_heartbeats,
            missed=self.missed_heartbeats,
        )
        data, commands = self._data, self._commands
        self._data = self._commands = None
        self._set_state(agent=False, commands=False, instrument=None)
        # Drop both connections: a silent agent (hung, or a cable cut with
        # no RST) does not answer commands either.  ClientService makes new
        # ones with backoff.
        for protocol in (data, commands):
            if protocol is not None and protocol.transport is not None:
                _abort(protocol.transport)


def _abort(transport: Any) -> None:
    # abortConnection does not wait for unsent data to drain to a peer that
    # may never read it; not every transport has it.
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


def _json_object(reply: str, command: str) -> dict[str, Any]:
    try:
        value = json.loads(reply)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise PortAgentError(
            f"{command}: the reply is not a JSON object: {reply[:200]!r}"
        )
    return value
