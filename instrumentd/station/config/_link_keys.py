# -*- test-case-name: tests.test_station_config -*-
"""
The keys of an instrument's link: its connection, by type, and its port
agent with the agent's listeners, declared once: see
:mod:`instrumentd.station.config._keys`.
"""

from __future__ import annotations

from typing import Final

from instrumentd.endpoints.serial import STANDARD_BAUDRATES
from instrumentd.portagent.options import (
    CLIENT_BUFFER,
    CLIENT_MEMORY,
    CLIENT_STALL_TIMEOUT,
    DEFAULT_CLIENT_BUFFER,
    DEFAULT_CLIENT_MEMORY,
    DEFAULT_CLIENT_STALL_TIMEOUT,
    DISCONNECT_GRACE,
    HEARTBEAT,
    MAX_RECONNECT_DELAY,
    ROTATE_SIZE,
)
from instrumentd.station.config._specs import (
    _LOOPBACK_ANY,
    _ROTATIONS,
    AGENT_MODES,
    CONNECTION_TYPES,
)
from instrumentd.station.config.schema import REQUIRED, Key, Section, show


def _tokenless(value: object) -> str | None:
    if isinstance(value, list) and all(v in ("data", "sniff") for v in value):
        return None
    return f"must be an array of 'data' and 'sniff', not {show(value)}"


def _simulator_model(value: object) -> str | None:
    from instrumentd.simulator import SIMULATOR_MODELS, simulator_class

    if value in SIMULATOR_MODELS:
        return None
    models = ", ".join(sorted(SIMULATOR_MODELS))
    if isinstance(value, str) and ":" in value:
        try:
            simulator_class(value)
        except ValueError as e:
            return f"{value!r} is not a simulator: {e}"
        return None
    return (
        f"{value!r} is not a simulator; valid choices: {models}, or "
        "module:Class of a simulator of your own"
    )


_CONNECTION_TYPE: Final = Key(
    "type",
    "string",
    "how the instrument is reached",
    default=REQUIRED,
    choices=CONNECTION_TYPES,
    required=f"one of {', '.join(CONNECTION_TYPES)}",
)

#: A connection whose type is not known yet: only its type is checked.
CONNECTION: Final = Section("[instruments.connection]", (_CONNECTION_TYPE,))

#: A connection's keys by its type.
CONNECTIONS: Final = {
    "tcp": Section(
        '[instruments.connection] type = "tcp"',
        (
            _CONNECTION_TYPE,
            Key(
                "host",
                "string",
                "host name or address of the device server",
                default=REQUIRED,
            ),
            Key(
                "port",
                "integer",
                "TCP port of the instrument on the device server",
                default=REQUIRED,
                minimum=1,
                maximum=65535,
            ),
        ),
        "A serial-to-Ethernet device server, or a simulator elsewhere: the "
        "port agent's instrument link is `tcp:host=HOST:port=PORT`.",
    ),
    "serial": Section(
        '[instruments.connection] type = "serial"',
        (
            _CONNECTION_TYPE,
            Key(
                "device",
                "string",
                "path of the serial device, e.g. `/dev/ttyUSB0`",
                default=REQUIRED,
            ),
            Key(
                "baudrate",
                "integer",
                "line speed, a standard rate",
                default=REQUIRED,
                choices=STANDARD_BAUDRATES,
            ),
            Key("bytesize", "integer", "data bits", default=8, choices=(5, 6, 7, 8)),
            Key(
                "parity",
                "string",
                "parity, by name or letter, in any case",
                default="none",
                choices=(
                    "none",
                    "even",
                    "odd",
                    "mark",
                    "space",
                    "N",
                    "E",
                    "O",
                    "M",
                    "S",
                ),
                fold_case=True,
            ),
            Key("stopbits", "number", "stop bits", default=1, choices=(1, 1.5, 2)),
            Key(
                "flow",
                "string",
                "flow control",
                default="none",
                choices=("none", "rtscts", "xonxoff"),
            ),
        ),
        "A serial line: the port agent's link is `serial:DEVICE:baudrate=...`, "
        "reopened by the agent when a USB adapter comes back.",
    ),
    "simulator": Section(
        '[instruments.connection] type = "simulator"',
        (
            _CONNECTION_TYPE,
            Key(
                "model",
                "string",
                "the simulated instrument: a model of "
                "[`simulators.md`](simulators.md), e.g. `sbe37`",
                default=REQUIRED,
                required="the simulated instrument, e.g. 'sbe37'",
                check=_simulator_model,
            ),
            Key(
                "time_scale",
                "number",
                "the instrument's clock and timers run this much faster than real time",
                default=1.0,
                minimum=0.001,
                maximum=1000,
            ),
            Key(
                "seed",
                "integer",
                "seed of the simulated measurements",
                default=0,
                minimum=0,
                maximum=2**32 - 1,
            ),
            Key(
                "serial_number",
                "integer",
                "the instrument's serial number",
                default_doc="the model's",
                minimum=1,
                maximum=99999999,
            ),
            Key(
                "baud",
                "integer",
                "pace the simulator's output at this line speed (0: no pacing)",
                default=0,
                off=0,
                minimum=50,
                maximum=4000000,
            ),
            Key("echo", "boolean", "echo what it is sent", default=True),
            Key(
                "options",
                "table",
                "the model's own options, the variant to simulate (as "
                "`simulate --option NAME=VALUE`), e.g. "
                "`{ enable_polled_mode = true }` for an optode; "
                "[`simulators.md`](simulators.md) lists each model's",
                default_doc="none",
            ),
            Key(
                "listen",
                "server endpoint",
                "where the simulator is served for its port agent",
                default=_LOOPBACK_ANY,
            ),
        ),
        "A simulator run inside the station; the agent connects to it.",
    ),
    "endpoint": Section(
        '[instruments.connection] type = "endpoint"',
        (
            _CONNECTION_TYPE,
            Key(
                "endpoint",
                "client endpoint",
                "any client endpoint string: the port agent's instrument link, "
                "e.g. `datalog:FILE:speed=1` to replay a recording once "
                "(`datalog:FILE:loop=true` repeats it), or `demo` (which loops)",
                default=REQUIRED,
                required="a client endpoint string, e.g. 'datalog:FILE:speed=1' "
                "or 'tcp:host=H:port=P'",
            ),
        ),
        "Any client endpoint string as the instrument link.",
    ),
    "port_agent": Section(
        '[instruments.connection] type = "port_agent"',
        (
            _CONNECTION_TYPE,
            Key(
                "host",
                "string",
                "where the agent runs",
                default="127.0.0.1",
            ),
            Key(
                "data_port",
                "integer",
                "the agent's data port",
                default=REQUIRED,
                minimum=1,
                maximum=65535,
            ),
            Key(
                "command_port",
                "integer",
                "the agent's command port",
                default=REQUIRED,
                minimum=1,
                maximum=65535,
            ),
            Key(
                "token_file",
                "string",
                "the agent's token file (its `--token-file`): the driver sends "
                "the token first on its data and command connections",
            ),
            Key(
                "tokenless_data",
                "boolean",
                "the agent was started with `--tokenless data`",
                default=False,
            ),
        ),
        "A port agent that already runs (systemd, another host, another "
        "station): the station attaches its driver to it and never starts or "
        "stops it.",
    ),
}

PORT_AGENT: Final = Section(
    "[instruments.port_agent]",
    (
        Key(
            "mode",
            "string",
            "`child` (a process of its own) or `in-process` (in the station's reactor)",
            default="child",
            choices=AGENT_MODES,
        ),
        Key(
            "listeners",
            "table",
            "`data`, `command`, `sniff`, `raw`, `rfc2217` (below)",
            default_doc="the first four on `tcp:0:interface=127.0.0.1`; `rfc2217` off",
        ),
        Key(
            "datalog_dir",
            "string",
            "the datalog directory (files under `YYYY/MM/DD/`)",
            default_doc="`<data_dir>/datalog`",
        ),
        Key(
            "rotate",
            "string",
            "datalog rotation in UTC",
            default="daily",
            choices=_ROTATIONS,
        ),
        Key(
            "rotate_size",
            "size",
            'also rotate past this size: bytes, or `"100MiB"`, `"512k"`, `"1G"`',
            default=0,
            off=0,
            minimum=ROTATE_SIZE.minimum,
            maximum=ROTATE_SIZE.maximum,
        ),
        Key(
            "client_buffer",
            "size",
            "bytes one client may have queued before it is cut off",
            default=DEFAULT_CLIENT_BUFFER,
            default_doc='`"64MiB"`',
            minimum=CLIENT_BUFFER.minimum,
            maximum=CLIENT_BUFFER.maximum,
        ),
        Key(
            "client_memory",
            "size",
            "bytes all clients together may have queued; past it the client "
            "furthest behind is cut off (the bound on the agent's queues); at "
            "least `client_buffer`",
            default=DEFAULT_CLIENT_MEMORY,
            default_doc='`"256MiB"`',
            minimum=CLIENT_MEMORY.minimum,
            maximum=CLIENT_MEMORY.maximum,
        ),
        Key(
            "client_stall_timeout",
            "number",
            "seconds a client may take nothing while data waits for it before "
            "it is cut off",
            default=DEFAULT_CLIENT_STALL_TIMEOUT,
            unit="seconds",
            minimum=CLIENT_STALL_TIMEOUT.minimum,
            maximum=CLIENT_STALL_TIMEOUT.maximum,
        ),
        Key(
            "heartbeat",
            "number",
            "seconds between heartbeats to data clients; the driver declares "
            "the agent lost after three silent intervals",
            default=10.0,
            off=0,
            minimum=HEARTBEAT.minimum,
            maximum=HEARTBEAT.maximum,
            unit="seconds",
        ),
        Key(
            "disconnect_grace",
            "number",
            "how long the instrument link must stay down before DISCONNECTED is "
            "announced",
            default=10.0,
            minimum=DISCONNECT_GRACE.minimum,
            maximum=DISCONNECT_GRACE.maximum,
            unit="seconds",
        ),
        Key(
            "max_reconnect_delay",
            "number",
            "cap of the instrument link's reconnect backoff",
            default=60.0,
            minimum=MAX_RECONNECT_DELAY.minimum,
            maximum=MAX_RECONNECT_DELAY.maximum,
            unit="seconds",
        ),
        Key(
            "launch_timeout",
            "number",
            "child: how long the agent has to get ready",
            default=30.0,
            minimum=1,
            maximum=600,
            unit="seconds",
        ),
        Key(
            "log_file",
            "string",
            "child: the agent's log (twistd rotates it at 1 MB). An in-process "
            "agent logs to the station's log, so this is refused for it",
            default_doc="`<data_dir>/logs/port-agent-<name>.log`",
        ),
        Key(
            "token_file",
            "string",
            "a file whose first line is the agent's token: clients of its "
            "command, raw and RFC 2217 ports (and data and sniff, unless "
            "`tokenless`) must send it first; the station's driver does",
        ),
        Key(
            "tokenless",
            "array",
            'listeners that take no token: `["data"]`, `["sniff"]` or both',
            default=(),
            default_doc="`[]`",
            check=_tokenless,
        ),
        Key(
            "allow_insecure",
            "boolean",
            "start listeners reachable beyond loopback with neither TLS nor a "
            "token (otherwise such a listener is refused)",
            default=False,
        ),
    ),
)

_LISTENER_DOC: Final = 'a server endpoint string, an array of them, or `"none"` (off)'

LISTENERS: Final = Section(
    "[instruments.port_agent.listeners]",
    (
        *(
            Key(
                kind,
                "server endpoints",
                f"{what}: {_LISTENER_DOC}",
                default=(_LOOPBACK_ANY,),
                default_doc="`tcp:0:interface=127.0.0.1`",
            )
            for kind, what in (
                (
                    "data",
                    "packets to drivers; for a child agent it cannot be off and "
                    "the first must be TCP",
                ),
                (
                    "command",
                    "the command port; for a child agent it cannot be off and the "
                    "first must be TCP",
                ),
                ("sniff", "a readable text view"),
                ("raw", "the instrument's bytes both ways (an operator's terminal)"),
            )
        ),
        Key(
            "rfc2217",
            "server endpoints",
            "an RFC 2217 serial port server for instrument makers' software "
            f"(see `port-agent.md`): {_LISTENER_DOC}",
            default=(),
            default_doc="off",
        ),
    ),
    "The agent's listeners. The station's driver connects to a child agent's "
    "first data and command listeners, over TCP; it is joined to an "
    "in-process agent directly, so all of that agent's listeners serve only "
    'clients outside the station and may be `"none"` (see "File descriptors '
    'and density").',
)
