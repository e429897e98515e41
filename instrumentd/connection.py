# -*- test-case-name: tests.test_connection -*-
"""
How a driver reaches its instrument: :class:`PortAgentConnection`, the
:class:`~instrumentd.interfaces.IInstrumentConnection` that goes through a
port agent.  Its configuration is checked by
:mod:`instrumentd.connection_config`, whose names are re-exported here.

A connection configuration is a dict (from code or a config file) whose
``method`` says how::

    {"method": "ethernet", "device_addr": "10.0.0.5", "device_port": 4001}
    {"method": "serial", "device": "/dev/ttyUSB0", "baudrate": 9600}
    {"method": "port_agent", "host": "127.0.0.1", "data_port": 4001,
     "command_port": 4002}

``ethernet`` and ``serial`` launch a port agent process for the instrument
when the connection connects, and stop it when it disconnects;
``port_agent`` attaches to an agent that already runs and leaves it running.
:data:`CONFIG_KEYS` lists every key; ``doc/connections.md`` explains them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.connection_config import (
    _MAX_BREAK_MS,
    CONFIG_KEYS,
    METHODS,
    ConfigKey,
    ConnectionConfig,
    InstrumentConnectionError,
    _describe,
    _is_int,
    validate_config,
)
from instrumentd.connection_states import ConnectionState, require_call
from instrumentd.interfaces import IInstrumentConnection, LinkState
from instrumentd.packet import Packet
from instrumentd.portagent.client import (
    DataCallback,
    FaultCallback,
    PortAgentClient,
    PortAgentCommandError,
    PortAgentError,
    StateCallback,
    agent_endpoint,
)

__all__ = [
    "CONFIG_KEYS",
    "METHODS",
    "ConfigKey",
    "ConnectionConfig",
    "InstrumentConnectionError",
    "PortAgentConnection",
    "validate_config",
]


def _listener_host(description: str | None) -> str:
    """
    Where to reach a listener bound with ``description``: its interface,
    or loopback for the default and for wildcard addresses.
    """
    if description:
        match = re.search(r"(?:^|:)interface=((?:\\.|[^:])*)", description)
        if match:
            interface = re.sub(r"\\(.)", r"\1", match.group(1))
            if interface not in ("", "0.0.0.0", "::"):
                return interface
            if interface == "::":
                return "::1"
    return "127.0.0.1"


# -- the connection ----------------------------------------------------------------


#: Launches an agent: the keyword arguments of
#: :func:`instrumentd.portagent.launcher.launch_port_agent`, returning a
#: Deferred of its handle (``.ports``, ``.stop()``, ``.ended``).
Launcher = Callable[..., "Deferred[Any]"]
#: Makes the client endpoint of an agent's port from a host and a port
#: number (or UNIX socket path).
EndpointFactory = Callable[[str, "int | str"], IStreamClientEndpoint]


def _launch_port_agent(**options: Any) -> Deferred[Any]:
    from instrumentd.portagent.launcher import launch_port_agent

    return launch_port_agent(**options)


@implementer(IInstrumentConnection)
class PortAgentConnection:
    """
    An :class:`~instrumentd.interfaces.IInstrumentConnection` through a port
    agent, launched or already running.

    :ivar config: the checked configuration, or ``None`` while
        unconfigured.
    :ivar client: the port agent client while connecting or connected.
    :ivar agent: the handle of the agent this connection launched, while
        it runs.
    """

    log = Logger()

    def __init__(
        self,
        *,
        reactor: Any = None,
        launcher: Launcher | None = None,
        endpoint_for: EndpointFactory | None = None,
        retry_policy: Callable[[int], float] | None = None,
    ) -> None:
        """
        :param reactor: the reactor (or, with ``launcher`` and
            ``endpoint_for`` given, any clock); the global one if ``None``.
        :param launcher: launches agents; :func:`~instrumentd.portagent.
            launcher.launch_port_agent` if ``None``.
        :param endpoint_for: makes the endpoints of an agent's ports;
            TCP (or UNIX) endpoints on ``reactor`` if ``None``.
        :param retry_policy: the client's reconnect policy (see
            :class:`~instrumentd.portagent.client.PortAgentClient`).
        """
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self._reactor = reactor
        self._launcher = launcher or _launch_port_agent
        self._endpoint_for: EndpointFactory = endpoint_for or (
            lambda host, port: agent_endpoint(reactor, host, port)
        )
        self._retry_policy = retry_policy
        self._state = ConnectionState.UNCONFIGURED
        self.config: ConnectionConfig | None = None
        self.client: PortAgentClient | None = None
        self.agent: Any = None
        self._connecting: Deferred[LinkState] | None = None
        self._stop_waiters: list[Deferred[None]] = []
        self._on_data: DataCallback | None = None
        self._on_state: StateCallback | None = None
        self._on_fault: FaultCallback | None = None

    def __repr__(self) -> str:
        what = self.config.instrument or self.config.host if self.config else None
        return f"<PortAgentConnection {self._state.value} {what or ''}>".replace(
            " >", ">"
        )

    @property
    def state(self) -> str:
        """
        The lifecycle state: ``unconfigured``, ``disconnected``,
        ``connecting``, ``connected`` or ``disconnecting``.
        """
        return self._state.value

    def _require(self, method: str) -> None:
        require_call(self._state, method)

    # -- configuration ---------------------------------------------------------

    def initialize(self) -> None:
        """
        Forget the configuration: back to ``unconfigured``.

        :raises InstrumentConnectionError: unless ``unconfigured`` or
            ``disconnected``.
        """
        self._require("initialize")
        self.config = None
        self._state = ConnectionState.UNCONFIGURED

    def configure(self, config: Mapping[str, object]) -> None:
        """
        Check and keep a configuration (see :func:`validate_config`).

        :param config: the configuration.
        :raises InstrumentConnectionError: naming the problem; nothing
            changes.
        """
        self._require("configure")
        self.config = validate_config(config)
        self._state = ConnectionState.DISCONNECTED

    # -- connecting ----------------------------------------------------------------

    def connect(self) -> Deferred[LinkState]:
        """
        Launch an agent (``ethernet``, ``serial``) or find the running one
        (``port_agent``), and connect to it.

        :returns: a Deferred firing with the link state once connected, or
            failing with :class:`InstrumentConnectionError` after stopping
            anything it started.
        """
        try:
            self._require("connect")
        except InstrumentConnectionError:
            return fail()
        assert self.config is not None
        self._state = ConnectionState.CONNECTING
        connecting = Deferred.fromCoroutine(self._connect(self.config))
        self._connecting = connecting
        return connecting

    async def _connect(self, config: ConnectionConfig) -> LinkState:
        try:
            if config.launches:
                data, command = await self._launch(config)
            else:
                assert config.host is not None
                assert config.data_port is not None
                assert config.command_port is not None
                data = (config.host, config.data_port)
                command = (config.host, config.command_port)
            token = None
            if config.token_file is not None:
                from instrumentd.portagent.access import read_token_file

                try:
                    token = read_token_file(config.token_file)
                except ValueError as e:
                    raise InstrumentConnectionError(str(e)) from e
            client = PortAgentClient(
                self._endpoint_for(*data),
                self._endpoint_for(*command),
                clock=self._reactor,
                heartbeat_interval=config.heartbeat,
                missed_heartbeats=config.missed_heartbeats,
                command_timeout=config.command_timeout,
                retry_policy=self._retry_policy,
                description=f"port agent of {config.name} at {data[0]} data "
                f"{data[1]} command {command[1]}",
                token=token,
                token_on_data=not config.tokenless_data,
            )
            client.attach(self._data, self._state_changed, self._fault)
            self.client = client
            try:
                state: LinkState = await client.connect()
            except PortAgentError as e:
                raise InstrumentConnectionError(str(e)) from e
        except BaseException:
            failure = None
            try:
                await self._stop_everything()
            except Exception:
                failure = Failure()
            self._state = ConnectionState.DISCONNECTED
            self._connecting = None
            self._stopped(failure)
            raise
        self._state = ConnectionState.CONNECTED
        self._connecting = None
        return state

    async def _launch(
        self, config: ConnectionConfig
    ) -> tuple[tuple[str, int | str], tuple[str, int | str]]:
        from instrumentd.portagent.launcher import PortAgentLaunchError

        listeners = config.listeners
        extra: dict[str, object] = {}
        if config.token_file is not None:
            extra["token_file"] = config.token_file
        try:
            agent = await self._launcher(
                name=config.name,
                instrument=config.instrument,
                datalog_dir=config.datalog_dir,
                heartbeat=config.heartbeat,
                data_port=listeners.get("data"),
                command_port=listeners.get("command"),
                sniff_port=listeners.get("sniff"),
                raw_port=listeners.get("raw"),
                reactor=self._reactor,
                timeout=config.launch_timeout,
                **extra,
            )
        except PortAgentLaunchError as e:
            raise InstrumentConnectionError(
                f"could not launch a port agent for {config.instrument}: {e}"
            ) from e
        self.agent = agent
        agent.ended.addCallback(self._agent_ended, agent)
        # Each port is reached where its listener is bound.
        return (
            (_listener_host(listeners.get("data")), agent.ports["data"]),
            (_listener_host(listeners.get("command")), agent.ports["command"]),
        )

    def _agent_ended(self, status: int, agent: Any) -> int:
        if agent is self.agent and self._state is ConnectionState.CONNECTED:
            from instrumentd.portagent.launcher import describe_exit

            text = (
                f"the port agent process {agent.pid} has ended ({describe_exit(status)}); "
                "its instrument is out of reach until disconnect() and connect()"
            )
            self.log.error("{text}", text=text)
            self._fault(text)
        return status

    async def _stop_everything(self) -> None:
        client, self.client = self.client, None
        agent, self.agent = self.agent, None
        if client is not None:
            await client.disconnect()
        if agent is not None:
            await agent.stop()

    def disconnect(self) -> Deferred[None]:
        """
        Disconnect from the agent, and stop it if this connection launched
        it; does nothing while ``unconfigured`` or ``disconnected``.  While
        ``connecting``, the attempt is abandoned (its Deferred fails with
        :class:`~twisted.internet.defer.CancelledError`).

        :returns: a Deferred firing once everything has stopped.
        """
        state = self._state
        if state in (ConnectionState.UNCONFIGURED, ConnectionState.DISCONNECTED):
            return succeed(None)
        stopped: Deferred[None] = Deferred()
        self._stop_waiters.append(stopped)
        if state is ConnectionState.CONNECTING:
            assert self._connecting is not None
            # _connect stops what it started, then tells the waiters.
            self._connecting.cancel()
        elif state is ConnectionState.CONNECTED:
            self._state = ConnectionState.DISCONNECTING
            Deferred.fromCoroutine(self._disconnect())
        return stopped

    async def _disconnect(self) -> None:
        failure = None
        try:
            await self._stop_everything()
        except Exception:
            failure = Failure()
        self._state = ConnectionState.DISCONNECTED
        self._stopped(failure)

    def _stopped(self, failure: Failure | None = None) -> None:
        waiters, self._stop_waiters = self._stop_waiters, []
        for waiter in waiters:
            if failure is None:
                waiter.callback(None)
            else:
                waiter.errback(failure)

    def reset(self) -> Deferred[None]:
        """
        Disconnect (stopping a launched agent) and forget the configuration:
        back to ``unconfigured`` from any state.

        :returns: a Deferred firing once everything has stopped.
        """

        def forget(_: object) -> None:
            self.config = None
            self._state = ConnectionState.UNCONFIGURED

        return self.disconnect().addCallback(forget)

    # -- the attached protocol ----------------------------------------------------------

    def attach(
        self,
        callback: DataCallback,
        on_state: StateCallback | None = None,
        on_fault: FaultCallback | None = None,
    ) -> None:
        """
        Attach a protocol (see
        :meth:`~instrumentd.interfaces.IInstrumentConnection.attach`).

        :param callback: called with instrument bytes and their packet.
        :param on_state: called with each new :class:`LinkState`.
        :param on_fault: called with each fault text.
        :raises InstrumentConnectionError: if one is attached already.
        """
        if self._on_data is not None:
            raise InstrumentConnectionError(
                "a protocol is already attached to this connection; detach() first"
            )
        self._on_data, self._on_state, self._on_fault = callback, on_state, on_fault

    def detach(self) -> None:
        """
        Detach the attached protocol, if any.
        """
        self._on_data = self._on_state = self._on_fault = None

    def _data(self, data: bytes, packet: Packet) -> None:
        if self._on_data is not None:
            self._on_data(data, packet)

    def _state_changed(self, state: LinkState) -> None:
        if self._on_state is not None:
            self._on_state(state)

    def _fault(self, text: str) -> None:
        if self._on_fault is not None:
            self._on_fault(text)

    # -- talking to the instrument ----------------------------------------------------------

    def link_state(self) -> LinkState:
        """
        :returns: the client's link state while connected; all down
            otherwise.
        """
        if self._state is ConnectionState.CONNECTED and self.client is not None:
            return self.client.state
        return LinkState()

    def send(self, data: bytes) -> None:
        """
        Send bytes to the instrument now.

        :param data: the bytes.
        :raises InstrumentConnectionError: at once, if not ``connected``,
            the agent is not reachable, or the instrument link is down.
        """
        self._require("send")
        assert self.client is not None
        try:
            self.client.send(data)
        except PortAgentError as e:
            raise InstrumentConnectionError(str(e)) from e

    def send_break(self, duration_ms: int) -> Deferred[None]:
        """
        Ask the agent for a serial break.

        :param duration_ms: 1 to 60000 ms.
        :returns: a Deferred firing when the break has ended, or failing
            with :class:`~instrumentd.portagent.client.PortAgentCommandError`
            carrying the agent's ``ERROR`` text (at once, without asking,
            when the agent has said its link cannot break), or with
            :class:`InstrumentConnectionError`.
        """
        try:
            self._require("send_break")
            if not (_is_int(duration_ms) and 0 < duration_ms <= _MAX_BREAK_MS):
                raise InstrumentConnectionError(
                    f"send_break: duration_ms must be int, 1-{_MAX_BREAK_MS}; "
                    f"got {_describe(duration_ms)}"
                )
        except InstrumentConnectionError:
            return fail()
        assert self.client is not None
        if self.client.link_can_break is False:
            # The agent said its link cannot break: refuse here, as it would,
            # rather than make it refuse (and fault every data client).
            return fail(
                PortAgentCommandError(
                    f"break {duration_ms}",
                    "ERROR break: the port agent's instrument link cannot "
                    "send a break (only serial links can)",
                )
            )
        return self.client.send_break(duration_ms).addCallback(lambda _: None)
