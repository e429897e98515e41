# -*- test-case-name: tests.test_connection -*-
"""
How a driver reaches its instrument: :class:`PortAgentConnection`, the
:class:`~instrumentd.interfaces.IInstrumentConnection` that goes through a
port agent, and the checking of its configuration.

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

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.driver.errors import (
    InstrumentConnectionError as _DriverConnectionError,
)
from instrumentd.interfaces import IInstrumentConnection, LinkState
from instrumentd.packet import Packet
from instrumentd.portagent.client import (
    DataCallback,
    FaultCallback,
    PortAgentClient,
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

#: The connection methods.
METHODS: Final = ("ethernet", "serial", "port_agent")
_LAUNCHING: Final = ("ethernet", "serial")

#: The agent's rule for names (they become file names): see
#: ``instrumentd.portagent.options``.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

_PARITIES: Final = {
    "none": "N",
    "even": "E",
    "odd": "O",
    "mark": "M",
    "space": "S",
    "n": "N",
    "e": "E",
    "o": "O",
    "m": "M",
    "s": "S",
}
_FLOWS: Final = ("none", "rtscts", "xonxoff")
_MAX_BREAK_MS: Final = 60_000


class InstrumentConnectionError(_DriverConnectionError):
    """
    A connection could not be configured or made, or was used in a state
    where the call makes no sense.  The message says what and why.

    It is the driver framework's
    :class:`~instrumentd.driver.errors.InstrumentConnectionError` (same
    ``code``), so a driver catches one class whatever layer raised it; this
    one also names the configuration key at fault.

    :ivar key: the configuration key at fault, if the problem is one.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        """
        :param message: what is wrong, for a person.
        :param key: the configuration key at fault, if any.
        """
        super().__init__(message)
        self.key = key

    def details(self) -> dict[str, object]:
        """
        :returns: ``{"key": ...}`` when a configuration key is at fault.
        """
        return {} if self.key is None else {"key": self.key}


# -- configuration -------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _tcp_port(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= 65535


def _baudrate(value: Any) -> bool:
    # The rates the serial: endpoint accepts, from pyserial.
    from instrumentd.endpoints.serial import STANDARD_BAUDRATES

    return _is_int(value) and value in STANDARD_BAUDRATES


def _text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _endpoint_problem(value: Any) -> str | None:
    if not _text(value):
        return None
    from instrumentd.portagent.options import check_server_endpoint

    try:
        check_server_endpoint(value)
    except ValueError as e:
        return str(e)
    return None


def _server_endpoint(value: Any) -> bool:
    return _text(value) and _endpoint_problem(value) is None


def _optional_listener(value: Any) -> bool:
    return value == "none" or _server_endpoint(value)


@dataclass(frozen=True)
class ConfigKey:
    """
    One key of a connection configuration.

    :ivar name: the key.
    :ivar expected: the type expected, as named in error messages.
    :ivar meaning: what it is and which values are valid, for errors and
        docs.
    :ivar methods: the methods that take it.
    :ivar required: the methods that need it.
    :ivar valid: whether a value is acceptable (type and range).
    """

    name: str
    expected: str
    meaning: str
    methods: tuple[str, ...]
    required: tuple[str, ...] = ()
    valid: Callable[[Any], bool] = field(default=_text, repr=False)


#: Every key of a connection configuration, in the order they are checked.
CONFIG_KEYS: Final[tuple[ConfigKey, ...]] = (
    ConfigKey(
        "device_addr",
        "str",
        "host name or address of the serial device server",
        ("ethernet",),
        ("ethernet",),
    ),
    ConfigKey(
        "device_port",
        "int",
        "TCP port of the instrument on the device server, 1-65535",
        ("ethernet",),
        ("ethernet",),
        _tcp_port,
    ),
    ConfigKey(
        "device",
        "str",
        "path of the serial device, e.g. /dev/ttyUSB0",
        ("serial",),
        ("serial",),
    ),
    ConfigKey(
        "baudrate",
        "int",
        "line speed, a standard rate such as 9600 or 19200",
        ("serial",),
        ("serial",),
        _baudrate,
    ),
    ConfigKey(
        "bytesize",
        "int",
        "data bits: 5, 6, 7 or 8; default 8",
        ("serial",),
        valid=lambda v: _is_int(v) and v in (5, 6, 7, 8),
    ),
    ConfigKey(
        "parity",
        "str",
        "none, even, odd, mark or space, or N, E, O, M, S; default none",
        ("serial",),
        valid=lambda v: isinstance(v, str) and v.lower() in _PARITIES,
    ),
    ConfigKey(
        "stopbits",
        "number",
        "1, 1.5 or 2; default 1",
        ("serial",),
        valid=lambda v: _is_number(v) and v in (1, 1.5, 2),
    ),
    ConfigKey(
        "flow",
        "str",
        "flow control: none, rtscts or xonxoff; default none",
        ("serial",),
        valid=lambda v: v in _FLOWS,
    ),
    ConfigKey(
        "host",
        "str",
        "host name or address of the running port agent",
        ("port_agent",),
        ("port_agent",),
    ),
    ConfigKey(
        "data_port",
        "int",
        "the agent's data port, 1-65535",
        ("port_agent",),
        ("port_agent",),
        _tcp_port,
    ),
    ConfigKey(
        "command_port",
        "int",
        "the agent's command port, 1-65535",
        ("port_agent",),
        ("port_agent",),
        _tcp_port,
    ),
    ConfigKey(
        "name",
        "str",
        "the instrument's reference designator: 1-128 letters, digits, '.', "
        "'_' or '-'; default 'instrument'",
        METHODS,
        valid=lambda v: isinstance(v, str) and _NAME.match(v) is not None,
    ),
    ConfigKey(
        "datalog_dir",
        "str",
        "directory of the launched agent's datalog; default ./datalog",
        _LAUNCHING,
    ),
    ConfigKey(
        "heartbeat",
        "number",
        "seconds between the agent's heartbeats, >= 0, 0 is off; default 10 "
        "for a launched agent, asked of a running one",
        METHODS,
        valid=lambda v: _is_number(v) and v >= 0,
    ),
    ConfigKey(
        "missed_heartbeats",
        "int",
        "heartbeat intervals of silence after which the agent is declared "
        "lost, >= 1; default 3",
        METHODS,
        valid=lambda v: _is_int(v) and v >= 1,
    ),
    ConfigKey(
        "command_timeout",
        "number",
        "seconds to wait for the agent's reply to a command, > 0; default 10",
        METHODS,
        valid=lambda v: _is_number(v) and v > 0,
    ),
    ConfigKey(
        "launch_timeout",
        "number",
        "seconds to wait for a launched agent to be ready, > 0; default 30",
        _LAUNCHING,
        valid=lambda v: _is_number(v) and v > 0,
    ),
    ConfigKey(
        "data_listener",
        "str",
        "server endpoint of the launched agent's data port; default "
        "tcp:0:interface=127.0.0.1",
        _LAUNCHING,
        valid=_server_endpoint,
    ),
    ConfigKey(
        "command_listener",
        "str",
        "server endpoint of the launched agent's command port; default "
        "tcp:0:interface=127.0.0.1",
        _LAUNCHING,
        valid=_server_endpoint,
    ),
    ConfigKey(
        "sniff_listener",
        "str",
        "server endpoint of the launched agent's sniff port, or none; "
        "default tcp:0:interface=127.0.0.1",
        _LAUNCHING,
        valid=_optional_listener,
    ),
    ConfigKey(
        "raw_listener",
        "str",
        "server endpoint of the launched agent's raw port, or none; "
        "default tcp:0:interface=127.0.0.1",
        _LAUNCHING,
        valid=_optional_listener,
    ),
    ConfigKey(
        "token_file",
        "str",
        "a file whose first line is the agent's token (its --token-file); it "
        "is sent first on the data and command connections, and a launched "
        "agent is started with it",
        METHODS,
    ),
    ConfigKey(
        "tokenless_data",
        "bool",
        "the running agent takes no token on its data port (--tokenless "
        "data); default false",
        ("port_agent",),
        valid=lambda v: isinstance(v, bool),
    ),
)

_MISSING: Final = object()


@dataclass(frozen=True)
class ConnectionConfig:
    """
    A checked connection configuration (see :func:`validate_config`).

    :ivar method: ``ethernet``, ``serial`` or ``port_agent``.
    :ivar name: the instrument's reference designator.
    :ivar instrument: the client endpoint string a launched agent opens, or
        ``None`` for ``port_agent``.
    :ivar host: where the agent is, for ``port_agent``.
    :ivar data_port: the agent's data port, for ``port_agent``.
    :ivar command_port: the agent's command port, for ``port_agent``.
    :ivar datalog_dir: a launched agent's datalog directory.
    :ivar heartbeat: the agent's heartbeat period; ``None`` for its default
        (launched) or to ask it (``port_agent``).
    :ivar missed_heartbeats: heartbeat intervals of silence that mean the
        agent is lost.
    :ivar command_timeout: seconds to wait for a command's reply.
    :ivar launch_timeout: seconds to wait for a launched agent.
    :ivar listeners: a launched agent's listener endpoints by kind
        (``data``, ``command``, ``sniff``, ``raw``); kinds not given take
        the agent's default.
    :ivar token_file: the agent's token file, or ``None``.
    :ivar tokenless_data: whether the agent's data port takes no token.
    """

    method: str
    name: str = "instrument"
    instrument: str | None = None
    host: str | None = None
    data_port: int | None = None
    command_port: int | None = None
    datalog_dir: str | None = None
    heartbeat: float | None = None
    missed_heartbeats: int = 3
    command_timeout: float = 10.0
    launch_timeout: float = 30.0
    listeners: Mapping[str, str] = field(default_factory=dict)
    token_file: str | None = None
    tokenless_data: bool = False

    @property
    def launches(self) -> bool:
        """
        Whether connecting launches a port agent (``ethernet``, ``serial``).
        """
        return self.method in _LAUNCHING


def _escape(text: str) -> str:
    # Endpoint strings split on ':' and '='; a backslash escapes them.
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def validate_config(config: object) -> ConnectionConfig:
    """
    Check a connection configuration and turn it into a
    :class:`ConnectionConfig`.  Nothing is started.

    :param config: a mapping with a ``method`` key and that method's keys
        (see :data:`CONFIG_KEYS`).
    :returns: the checked configuration.
    :raises InstrumentConnectionError: naming the first problem found: a
        config that is not a mapping, a missing or unknown method, unknown
        keys (with the valid ones), missing keys, or a value of the wrong
        type or out of range (with the type and values expected).
    """
    if not isinstance(config, Mapping):
        raise InstrumentConnectionError(
            f"connection config must be a mapping (dict), got {_describe(config)}"
        )
    methods = ", ".join(METHODS)
    if "method" not in config:
        raise InstrumentConnectionError(
            f"connection config: missing key 'method': expected str, one of {methods}",
            "method",
        )
    method = config["method"]
    if isinstance(method, str) and method not in METHODS:
        raise InstrumentConnectionError(
            f"connection config: unknown method {method!r}; valid methods: {methods}",
            "method",
        )
    if method not in METHODS:
        raise InstrumentConnectionError(
            f"connection config: key 'method' must be str, one of {methods}; "
            f"got {_describe(method)}",
            "method",
        )
    valid = ["method"] + [key.name for key in CONFIG_KEYS if method in key.methods]
    unknown = sorted(
        (repr(k) for k in config if k not in valid),
    )
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise InstrumentConnectionError(
            f"connection config: unknown key{plural} {', '.join(unknown)} for "
            f"method {method!r}; valid keys: {', '.join(valid)}",
            str(next(k for k in config if k not in valid)),
        )
    for key in CONFIG_KEYS:
        if method in key.required and key.name not in config:
            raise InstrumentConnectionError(
                f"connection config: missing key {key.name!r} for method "
                f"{method!r}: expected {key.expected} ({key.meaning})",
                key.name,
            )
    for key in CONFIG_KEYS:
        value = config.get(key.name, _MISSING)
        if value is not _MISSING and not key.valid(value):
            detail = ""
            if key.name.endswith("_listener") and value != "none":
                problem = _endpoint_problem(value)
                detail = f": {problem}" if problem else ""
            raise InstrumentConnectionError(
                f"connection config: key {key.name!r} must be {key.expected} "
                f"({key.meaning}); got {_describe(value)}{detail}",
                key.name,
            )
    get = config.get
    if "token_file" in config:
        from instrumentd.portagent.access import read_token_file

        try:
            read_token_file(str(config["token_file"]))
        except ValueError as e:
            raise InstrumentConnectionError(
                f"connection config: key 'token_file': {e}", "token_file"
            ) from None
    listeners = {
        kind: str(config[f"{kind}_listener"])
        for kind in ("data", "command", "sniff", "raw")
        if f"{kind}_listener" in config
    }
    instrument = None
    if method == "ethernet":
        instrument = (
            f"tcp:host={_escape(config['device_addr'])}:port={get('device_port')}"
        )
    elif method == "serial":
        flow = get("flow", "none")
        stopbits = get("stopbits", 1)
        instrument = (
            f"serial:{_escape(config['device'])}:baudrate={get('baudrate')}"
            f":bytesize={get('bytesize', 8)}"
            f":parity={_PARITIES[get('parity', 'none').lower()]}"
            f":stopbits={int(stopbits) if stopbits != 1.5 else 1.5}"
            f":rtscts={int(flow == 'rtscts')}:xonxoff={int(flow == 'xonxoff')}"
        )
    heartbeat = get("heartbeat")
    return ConnectionConfig(
        method=method,
        name=get("name", "instrument"),
        instrument=instrument,
        host=get("host"),
        data_port=get("data_port"),
        command_port=get("command_port"),
        datalog_dir=get("datalog_dir"),
        heartbeat=None if heartbeat is None else float(heartbeat),
        missed_heartbeats=get("missed_heartbeats", 3),
        command_timeout=float(get("command_timeout", 10.0)),
        launch_timeout=float(get("launch_timeout", 30.0)),
        listeners=listeners,
        token_file=get("token_file"),
        tokenless_data=bool(get("tokenless_data", False)),
    )


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


class _State(Enum):
    UNCONFIGURED = "unconfigured"
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"


_ANYWHERE: Final = ("attach", "detach", "link_state", "reset")
_VALID: Final[Mapping[_State, tuple[str, ...]]] = {
    _State.UNCONFIGURED: ("initialize", "configure", "disconnect", *_ANYWHERE),
    _State.DISCONNECTED: (
        "initialize",
        "configure",
        "connect",
        "disconnect",
        *_ANYWHERE,
    ),
    _State.CONNECTING: ("disconnect", *_ANYWHERE),
    _State.CONNECTED: ("disconnect", "send", "send_break", *_ANYWHERE),
    _State.DISCONNECTING: ("disconnect", *_ANYWHERE),
}


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
        self._state = _State.UNCONFIGURED
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
        valid = _VALID[self._state]
        if method not in valid:
            raise InstrumentConnectionError(
                f"{method}() is not valid while the connection is "
                f"{self._state.value}; valid now: "
                + ", ".join(f"{name}()" for name in valid)
            )

    # -- configuration ---------------------------------------------------------

    def initialize(self) -> None:
        """
        Forget the configuration: back to ``unconfigured``.

        :raises InstrumentConnectionError: unless ``unconfigured`` or
            ``disconnected``.
        """
        self._require("initialize")
        self.config = None
        self._state = _State.UNCONFIGURED

    def configure(self, config: Mapping[str, object]) -> None:
        """
        Check and keep a configuration (see :func:`validate_config`).

        :param config: the configuration.
        :raises InstrumentConnectionError: naming the problem; nothing
            changes.
        """
        self._require("configure")
        self.config = validate_config(config)
        self._state = _State.DISCONNECTED

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
        self._state = _State.CONNECTING
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
            self._state = _State.DISCONNECTED
            self._connecting = None
            self._stopped(failure)
            raise
        self._state = _State.CONNECTED
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
        if agent is self.agent and self._state is _State.CONNECTED:
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
        if state in (_State.UNCONFIGURED, _State.DISCONNECTED):
            return succeed(None)
        stopped: Deferred[None] = Deferred()
        self._stop_waiters.append(stopped)
        if state is _State.CONNECTING:
            assert self._connecting is not None
            # _connect stops what it started, then tells the waiters.
            self._connecting.cancel()
        elif state is _State.CONNECTED:
            self._state = _State.DISCONNECTING
            Deferred.fromCoroutine(self._disconnect())
        return stopped

    async def _disconnect(self) -> None:
        failure = None
        try:
            await self._stop_everything()
        except Exception:
            failure = Failure()
        self._state = _State.DISCONNECTED
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
            self._state = _State.UNCONFIGURED

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
        if self._state is _State.CONNECTED and self.client is not None:
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
            carrying the agent's ``ERROR`` text, or with
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
        return self.client.send_break(duration_ms).addCallback(lambda _: None)
