# -*- test-case-name: tests.test_connection -*-
"""
The configuration of a :class:`~instrumentd.connection.PortAgentConnection`:
every key (:data:`CONFIG_KEYS`), the checked result
(:class:`ConnectionConfig`) and :func:`validate_config`, which checks a
configuration dict whole before anything starts.  ``doc/connections.md``
explains the keys; :mod:`instrumentd.connection` re-exports these names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from instrumentd.driver.errors import (
    InstrumentConnectionError as _DriverConnectionError,
)

__all__ = [
    "CONFIG_KEYS",
    "METHODS",
    "ConfigKey",
    "ConnectionConfig",
    "InstrumentConnectionError",
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
