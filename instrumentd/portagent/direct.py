# -*- test-case-name: tests.test_portagent_direct -*-
"""
A driver joined to a port agent in its own process:
:class:`DirectAgentConnection`, the
:class:`~instrumentd.interfaces.IInstrumentConnection` of a station's
in-process agent.

A driver usually reaches its agent over two loopback TCP connections (the
data and command ports), which costs four file descriptors, a packet
encoding and parsing, and a few system calls per message.  When the agent
runs in the driver's process, none of that is needed: the agent hands each
message to this connection as it publishes it (after recording it in the
datalog, as for any client), and the driver's bytes and commands go to the
agent by a method call.  So the agent's data and command listeners are
needed only by clients outside the process, and can be off.

What stays the same as through the ports:

- the driver gets what a data client gets: instrument bytes with the time
  the agent read them, status (the link up or down) and faults;
- the driver's bytes are recorded as DATA_FROM_DRIVER, refused at once
  while the agent reports the link down, and dropped with a fault if it
  went down meanwhile;
- a break is a ``break`` command: recorded as PORT_AGENT_COMMAND, refused
  without asking when the link cannot carry one, and its ``ERROR`` is a
  fault to data clients;
- :meth:`DirectAgentConnection.command` answers the command port's
  commands (``get_stats``, ``get_config`` ...) with the same text.

What differs: the agent is reached as soon as it runs (no connect
attempts, no backoff), and its heartbeats are recorded but not watched: an
agent in the same process cannot fall silent while its driver runs.  When
the agent stops, the link state goes all down until it starts again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from instrumentd.connection_config import (
    _MAX_BREAK_MS,
    InstrumentConnectionError,
    _describe,
    _is_int,
)
from instrumentd.connection_states import ConnectionState, require_call
from instrumentd.interfaces import IInstrumentConnection, LinkState
from instrumentd.packet import NTP_ERA, PacketType, make_packet
from instrumentd.portagent.client import (
    DataCallback,
    FaultCallback,
    PortAgentCommandError,
    StateCallback,
)
from instrumentd.portagent.command import answer, fault

if TYPE_CHECKING:
    from instrumentd.portagent.agent import PortAgent

__all__ = ["DIRECT_METHOD", "DirectAgentConnection", "TimedDataCallback"]

#: The ``method`` of a direct connection's configuration.
DIRECT_METHOD: Final = "in_process"

_STATUS: Final = {b"CONNECTED": True, b"DISCONNECTED": False}
# The packet types, read once (an enum member read from its class is a
# Python-level lookup in 3.11, about 900 instructions a message).
_DATA: Final = PacketType.DATA_FROM_INSTRUMENT
_STATUS_TYPE: Final = PacketType.PORT_AGENT_STATUS
_FAULT: Final = PacketType.PORT_AGENT_FAULT
_CONFIG: Final = PacketType.PORT_AGENT_CONFIG

#: Called with instrument bytes and the NTP time (era-relative seconds,
#: :attr:`~instrumentd.packet.Packet.ntp_time`) the agent read them at.
TimedDataCallback = Callable[[bytes, float], object]
_CONFIG_KEYS: Final = frozenset({"method", "name"})


@implementer(IInstrumentConnection)
class DirectAgentConnection:
    """
    An :class:`~instrumentd.interfaces.IInstrumentConnection` to a
    :class:`~instrumentd.portagent.agent.PortAgent` in the same process.

    Its configuration is ``{"method": "in_process", "name": NAME}``; the
    agent is given with :meth:`bind` (the station binds it once the agent
    has started) before :meth:`connect`.

    :ivar agent: the agent bound, or ``None``.
    :ivar link_can_break: whether the agent's instrument link can carry a
        serial break, as its configuration says.
    """

    log = Logger()

    def __init__(self, *, reactor: Any = None) -> None:
        """
        :param reactor: the clock; the global reactor if ``None``.
        """
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self._reactor = reactor
        self._state = ConnectionState.UNCONFIGURED
        self.config: dict[str, object] | None = None
        self.agent: PortAgent | None = None
        self.link_can_break: bool | None = None
        self._link = LinkState()
        self._connecting: Any = None
        self._connect_waiter: Deferred[LinkState] | None = None
        self._on_data: DataCallback | None = None
        self._on_timed: TimedDataCallback | None = None
        self._on_state: StateCallback | None = None
        self._on_fault: FaultCallback | None = None

    def __repr__(self) -> str:
        name = self.config.get("name") if self.config else None
        return f"<DirectAgentConnection {self._state.value} {name or ''}>".replace(
            " >", ">"
        )

    @property
    def state(self) -> str:
        """
        The lifecycle state: ``unconfigured``, ``disconnected``,
        ``connecting`` or ``connected``.
        """
        return self._state.value

    def _require(self, method: str) -> None:
        require_call(self._state, method)

    def bind(self, agent: PortAgent | None) -> None:
        """
        Join the connection to an agent (``None`` lets go of it).  Valid
        while not connected.

        :raises InstrumentConnectionError: while ``connecting`` or
            ``connected``.
        """
        if self._state in (ConnectionState.CONNECTING, ConnectionState.CONNECTED):
            raise InstrumentConnectionError(
                f"bind() is not valid while the connection is {self._state.value}"
            )
        self.agent = agent

    # -- configuration --------------------------------------------------------

    def initialize(self) -> None:
        """
        Forget the configuration: back to ``unconfigured``.
        """
        self._require("initialize")
        self.config = None
        self._state = ConnectionState.UNCONFIGURED

    def configure(self, config: Mapping[str, object]) -> None:
        """
        Check and keep ``{"method": "in_process", "name": NAME}``.

        :raises InstrumentConnectionError: naming the bad key, its value
            and what is valid; nothing changes.
        """
        self._require("configure")
        method = config.get("method")
        if method != DIRECT_METHOD:
            raise InstrumentConnectionError(
                f"method: a direct connection takes {DIRECT_METHOD!r}, not "
                f"{_describe(method)}"
            )
        unknown = sorted(str(key) for key in config if key not in _CONFIG_KEYS)
        if unknown:
            raise InstrumentConnectionError(
                f"{unknown[0]}: unknown key for method {DIRECT_METHOD!r}; valid "
                "keys: method, name"
            )
        name = config.get("name")
        if name is not None and not isinstance(name, str):
            raise InstrumentConnectionError(
                f"name: must be a string, not {_describe(name)}"
            )
        self.config = dict(config)
        self._state = ConnectionState.DISCONNECTED

    # -- connecting -------------------------------------------------------------

    def connect(self) -> Deferred[LinkState]:
        """
        Join the bound agent, on the next reactor turn (as a connection
        over sockets would be, never from inside the caller).

        :returns: a Deferred firing with the link state, or failing with
            :class:`InstrumentConnectionError` if no agent is bound or it
            is not running.
        """
        try:
            self._require("connect")
            agent = self.agent
            if agent is None or not agent.running:
                raise InstrumentConnectionError(
                    "no running port agent is bound to this direct connection"
                    if agent is None
                    else f"the in-process port agent {agent.config.name} is not running"
                )
        except InstrumentConnectionError:
            return fail()
        self._state = ConnectionState.CONNECTING
        waiter: Deferred[LinkState] = Deferred(lambda _: self._abandon())
        self._connect_waiter = waiter
        self._connecting = self._reactor.callLater(0, self._join, agent)
        return waiter

    def _join(self, agent: PortAgent) -> None:
        self._connecting = None
        waiter, self._connect_waiter = self._connect_waiter, None
        if agent.running:
            agent.router.direct.append(self)
            self._learn_config(agent.public_config())
            self._state = ConnectionState.CONNECTED
            # What a port client learns from get_state once both ports are
            # up: the agent's word on its link, announced or not.
            self._set_link(
                LinkState(
                    agent=True, commands=True, instrument=agent.state == "CONNECTED"
                )
            )
            assert waiter is not None
            waiter.callback(self._link)
            return
        self._state = ConnectionState.DISCONNECTED
        assert waiter is not None
        waiter.errback(
            InstrumentConnectionError(
                f"the in-process port agent {agent.config.name} stopped before "
                "the driver joined it"
            )
        )

    def _abandon(self) -> None:
        if self._connecting is not None and self._connecting.active():
            self._connecting.cancel()
        self._connecting = None
        self._connect_waiter = None
        self._state = ConnectionState.DISCONNECTED

    def disconnect(self) -> Deferred[None]:
        """
        Leave the agent (which keeps running: the station stops it).  While
        ``connecting`` the attempt is abandoned (its Deferred fails with
        :class:`~twisted.internet.defer.CancelledError`).

        :returns: a Deferred that has fired.
        """
        if self._state is ConnectionState.CONNECTING:
            assert self._connect_waiter is not None
            self._connect_waiter.cancel()
        elif self._state is ConnectionState.CONNECTED:
            agent = self.agent
            if agent is not None and self in agent.router.direct:
                agent.router.direct.remove(self)
            self._state = ConnectionState.DISCONNECTED
            self._set_link(LinkState())
        return succeed(None)

    def reset(self) -> Deferred[None]:
        """
        Disconnect and forget the configuration: back to ``unconfigured``.
        """

        def forget(_: object) -> None:
            self.config = None
            self._state = ConnectionState.UNCONFIGURED

        return self.disconnect().addCallback(forget)

    # -- the attached protocol ----------------------------------------------------

    def attach(
        self,
        callback: DataCallback,
        on_state: StateCallback | None = None,
        on_fault: FaultCallback | None = None,
    ) -> None:
        """
        Attach a protocol (see
        :meth:`~instrumentd.interfaces.IInstrumentConnection.attach`).

        :raises InstrumentConnectionError: if one is attached already.
        """
        self._check_detached()
        self._on_data, self._on_state, self._on_fault = callback, on_state, on_fault

    def attach_timed(
        self,
        callback: TimedDataCallback,
        on_state: StateCallback | None = None,
        on_fault: FaultCallback | None = None,
    ) -> None:
        """
        Attach a protocol as :meth:`attach` does, but whose data callback
        takes the instrument bytes and their NTP time as a float (what
        :attr:`~instrumentd.packet.Packet.ntp_time` of the packet given to
        :meth:`attach`'s callback says), with no packet made: a driver's
        connection machine reads only that time, once a read.

        :raises InstrumentConnectionError: if one is attached already.
        """
        self._check_detached()
        self._on_timed, self._on_state, self._on_fault = callback, on_state, on_fault

    def _check_detached(self) -> None:
        if self._on_data is not None or self._on_timed is not None:
            raise InstrumentConnectionError(
                "a protocol is already attached to this connection; detach() first"
            )

    def detach(self) -> None:
        """
        Detach the attached protocol, if any.
        """
        self._on_data = self._on_timed = self._on_state = self._on_fault = None

    # -- what the agent hands over (the router's DirectClient) -----------------------

    def message(
        self, packet_type: PacketType, payload: bytes, seconds: int, fraction: int
    ) -> None:
        """
        One message for data clients, from the agent's router.
        """
        if packet_type is _DATA:
            if self._on_timed is not None:
                try:
                    self._on_timed(payload, seconds + fraction / NTP_ERA)
                except Exception:
                    self.log.failure("data callback failed")
            elif self._on_data is not None:
                try:
                    self._on_data(
                        payload, make_packet(packet_type, payload, seconds, fraction)
                    )
                except Exception:
                    self.log.failure("data callback failed")
        elif packet_type is _STATUS_TYPE:
            up = _STATUS.get(payload)
            if up is not None:
                self._set_link(replace(self._link, instrument=up))
        elif packet_type is _FAULT:
            if self._on_fault is not None:
                try:
                    self._on_fault(payload.decode("utf-8", "backslashreplace"))
                except Exception:
                    self.log.failure("fault callback failed")
        elif packet_type is _CONFIG:
            try:
                config = json.loads(payload)
            except ValueError:
                return  # the version text, also sent as a CONFIG packet
            if isinstance(config, dict):
                self._learn_config(config)
        # Heartbeats: recorded by the agent, nothing to watch here.

    def agent_stopped(self) -> None:
        """
        The agent has stopped: all down until it runs again.
        """
        if self._state is ConnectionState.CONNECTED:
            self._set_link(LinkState())

    def _learn_config(self, config: Mapping[str, object]) -> None:
        can_break = config.get("link_can_break")
        if isinstance(can_break, bool):
            self.link_can_break = can_break

    def _set_link(self, link: LinkState) -> None:
        if link == self._link:
            return
        self._link = link
        if self._on_state is not None:
            try:
                self._on_state(link)
            except Exception:
                self.log.failure("link state callback failed")

    # -- talking to the instrument ----------------------------------------------------

    def link_state(self) -> LinkState:
        """
        :returns: the link state while connected; all down otherwise.
        """
        if self._state is ConnectionState.CONNECTED:
            return self._link
        return LinkState()

    def _joined(self) -> PortAgent:
        agent = self.agent
        assert agent is not None
        if not self._link.agent or not agent.running:
            raise InstrumentConnectionError(
                f"the in-process port agent {agent.config.name} is not running"
            )
        return agent

    def send(self, data: bytes) -> None:
        """
        Send bytes to the instrument now, through the agent (which records
        them as DATA_FROM_DRIVER).

        :raises InstrumentConnectionError: at once, if not ``connected``,
            the agent is not running, or it reports the instrument link
            down; nothing is queued.
        """
        self._require("send")
        agent = self._joined()
        if self._link.instrument is False:
            raise InstrumentConnectionError(
                f"the in-process port agent {agent.config.name} reports its "
                f"instrument link DISCONNECTED; {len(data)} bytes not sent"
            )
        agent.to_instrument(bytes(data), "the station's driver")

    def command(self, line: str) -> Deferred[str]:
        """
        Give the agent one command-port command, as its command port would:
        the line is recorded, and an ``ERROR`` is a fault to data clients.

        :param line: e.g. ``"get_stats"`` or ``"break 300"``.
        :returns: a Deferred firing with the reply text, or failing with
            :class:`~instrumentd.portagent.client.PortAgentCommandError`
            (an ``ERROR`` reply) or :class:`InstrumentConnectionError` (the
            agent is not running).
        """
        try:
            if self.agent is None:
                raise InstrumentConnectionError("no port agent is bound")
            agent = self.agent
            if not agent.running:
                raise InstrumentConnectionError(
                    f"the in-process port agent {agent.config.name} is not running"
                )
        except InstrumentConnectionError:
            return fail()
        raw = line.encode("ascii", "backslashreplace")
        agent.router.publish(PacketType.PORT_AGENT_COMMAND, raw)

        def check(reply: str) -> str:
            if reply.startswith("ERROR"):
                fault(agent, reply)
                raise PortAgentCommandError(line, reply)
            return reply

        return answer(agent, raw).addCallback(check)

    def send_break(self, duration_ms: int) -> Deferred[None]:
        """
        Ask the agent for a serial break (its ``break`` command).

        :param duration_ms: 1 to 60000 ms.
        :returns: a Deferred firing when the break has ended, or failing
            with :class:`~instrumentd.portagent.client.PortAgentCommandError`
            carrying the agent's ``ERROR`` text (at once, without asking,
            when the link cannot break), or with
            :class:`InstrumentConnectionError`.
        """
        try:
            self._require("send_break")
            if not (_is_int(duration_ms) and 0 < duration_ms <= _MAX_BREAK_MS):
                raise InstrumentConnectionError(
                    f"send_break: duration_ms must be int, 1-{_MAX_BREAK_MS}; "
                    f"got {_describe(duration_ms)}"
                )
            self._joined()
        except InstrumentConnectionError:
            return fail()
        if self.link_can_break is False:
            return fail(
                PortAgentCommandError(
                    f"break {duration_ms}",
                    "ERROR break: the port agent's instrument link cannot "
                    "send a break (only serial links can)",
                )
            )
        return self.command(f"break {duration_ms}").addCallback(lambda _: None)
