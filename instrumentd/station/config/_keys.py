# -*- test-case-name: tests.test_station_config -*-
"""
Every key of the station's configuration, declared once: type, bounds,
choices, default and documentation.  The checker reads tables against
these sections and ``doc/station.md``'s reference is generated from them
(``python -m instrumentd.station.config.reference``).

Bounds say what is sensible, not only what is possible: a heartbeat every
nanosecond or a simulator a googol times faster than real time would be
accepted by the code that uses them and would make the station useless.
A port agent's settings take the bounds its own options have
(:mod:`instrumentd.portagent.options`), so the two never disagree.
"""

from __future__ import annotations

import re
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
from instrumentd.station._sink import DEFAULT_BATCH_SIZE
from instrumentd.station.apisite import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_CONNECTIONS,
)
from instrumentd.station.config._collector import COLLECTOR
from instrumentd.station.config._specs import (
    _LOOPBACK_ANY,
    _NAME,
    _ROTATIONS,
    AGENT_MODES,
    CONNECTION_TYPES,
    DEFAULT_API,
    DEFAULT_DATA_DIR,
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_STARTUP_WINDOW,
    MAX_OPEN_FILES,
    SINK_TYPES,
)
from instrumentd.station.config.schema import REQUIRED, Key, Section, show
from instrumentd.station.spool import DEFAULT_MAX_BYTES

__all__ = [
    "API",
    "CONNECTION",
    "CONNECTIONS",
    "INSTRUMENT",
    "LISTENERS",
    "PORT_AGENT",
    "QC_FIELD",
    "QC_STREAM",
    "SCHEDULE",
    "SECTIONS",
    "SINK",
    "SINKS",
    "STATION",
    "TOP",
    "name_problem",
]

_HOUR: Final = 3600.0


def name_problem(value: object) -> str | None:
    """
    The problem of an instrument or sink name, or ``None``.
    """
    if isinstance(value, str) and _NAME.match(value):
        return None
    return (
        f"{value!r} is not a valid name: 1-128 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit (names are used in file names and URLs)"
    )


def _http_url(value: object) -> str | None:
    if isinstance(value, str) and re.match(r"^https?://[^/\s]+", value):
        return None
    return f"{value!r} is not an http:// or https:// URL"


def _broker_address(value: object) -> str | None:
    from instrumentd.mqtt import address_problem

    return address_problem(value)


def _names(value: object) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return None
    return f"must be an array of sink names, not {show(value)}"


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


#: The top level of the document.
TOP: Final = Section(
    "(top level)",
    (
        Key("station", "table", "the station as a whole"),
        Key("api", "table", "the HTTP API"),
        Key("sinks", "table", "where samples go, by sink name"),
        Key("instruments", "array", "the instruments", type_doc="array of tables"),
    ),
)

STATION: Final = Section(
    "[station]",
    (
        Key(
            "data_dir",
            "string",
            "the default home of everything the station writes: "
            "`<data_dir>/samples` (JSON-lines sink), `<data_dir>/datalog` (port "
            "agent datalogs), `<data_dir>/spool/<sink>` (HTTP sink spools), "
            "`<data_dir>/logs/port-agent-<name>.log` (child agents' logs). "
            "`--data-dir` overrides it",
            default=DEFAULT_DATA_DIR,
        ),
        Key(
            "startup_window",
            "integer",
            "how many instruments are brought up at once: the next starts "
            "as soon as one is running (or has failed, or has taken "
            "`startup_timeout`), so a large station's first instruments "
            "sample within seconds and the others follow",
            default=DEFAULT_STARTUP_WINDOW,
            minimum=1,
            maximum=100_000,
        ),
        Key(
            "startup_timeout",
            "number",
            "seconds after which an instrument still coming up (an "
            "unreachable one, say) no longer holds up the next",
            default=DEFAULT_STARTUP_TIMEOUT,
            minimum=0.1,
            maximum=_HOUR,
            unit="seconds",
        ),
        Key(
            "name",
            "string",
            "the station's name: exports (`instrumentd-export`) name the "
            "station with it, and it is written to each instrument's "
            "`metadata.json` beside its sample files",
            check=name_problem,
        ),
        Key(
            "position",
            "table",
            "where the station is: `{ latitude = 47.6, longitude = -122.3 }`, "
            "degrees north and east; written to each instrument's "
            "`metadata.json` for the exports' coordinates",
        ),
    ),
)

POSITION: Final = Section(
    "[station.position]",
    (
        Key(
            "latitude",
            "number",
            "degrees north (WGS 84)",
            default=REQUIRED,
            minimum=-90.0,
            maximum=90.0,
            unit="degrees",
        ),
        Key(
            "longitude",
            "number",
            "degrees east (WGS 84)",
            default=REQUIRED,
            minimum=-180.0,
            maximum=180.0,
            unit="degrees",
        ),
    ),
)

API: Final = Section(
    "[api]",
    (
        Key(
            "listen",
            "server endpoint",
            "server endpoint string of the API (any Twisted endpoint: "
            "`tcp:8700:interface=0.0.0.0` to expose it, "
            "`unix:/run/instrumentd/api.sock`, `ssl:...`). Beyond loopback it "
            "needs `token_file`, or `open = true`. `--api` overrides it",
            default=DEFAULT_API,
        ),
        Key(
            "token_file",
            "string",
            "a file holding the API token (one word; white space around it is "
            "ignored). When set, every `POST`, `PATCH`, `PUT` and `DELETE` must "
            "send `Authorization: Bearer <token>` (401 otherwise); reading needs "
            "no token. `--token-file` overrides it",
        ),
        Key(
            "open",
            "boolean",
            "whether the API may listen beyond loopback with no `token_file`: "
            "without it, a station whose API would be reachable from other "
            "machines with no token refuses to start. `--api-open` sets it",
            default=False,
        ),
        Key(
            "idle_timeout",
            "number",
            "how long a connection may stay silent between requests before "
            "it is closed (a connection being answered, such as an event "
            "stream, is not idle)",
            default=DEFAULT_IDLE_TIMEOUT,
            minimum=1.0,
            maximum=24 * _HOUR,
            unit="seconds",
        ),
        Key(
            "max_connections",
            "integer",
            "the most connections open at once; over it, a new connection "
            "closes the one idle longest, and is answered 503 only when "
            "every connection is being answered",
            default=DEFAULT_MAX_CONNECTIONS,
            minimum=1,
            maximum=10000,
        ),
        Key(
            "max_body",
            "size",
            "the largest request body accepted; a larger one is answered 413 "
            "from its `Content-Length`, before it is read",
            default=DEFAULT_MAX_BODY,
            minimum=1024,
            maximum=64 * 1024 * 1024,
        ),
        Key(
            "access_log",
            "boolean",
            "log a line for every request. `--access-log` sets it",
            default=False,
        ),
    ),
)

_SINK_TYPE: Final = Key(
    "type",
    "string",
    "`jsonlines`, `http` or `mqtt`",
    default=REQUIRED,
    choices=SINK_TYPES,
    required=f"the kind of sink, one of {', '.join(SINK_TYPES)}",
)

#: A sink's keys by its type.
SINKS: Final = {
    "jsonlines": Section(
        '[sinks.NAME] type = "jsonlines"',
        (
            _SINK_TYPE,
            Key(
                "directory",
                "string",
                "files `<directory>/<instrument>/<stream>/<YYYY-MM-DD>.jsonl`, by "
                "the sample's UTC date",
                default_doc="`<data_dir>/samples`",
            ),
            Key(
                "flush_interval",
                "number",
                "the longest a line waits in memory",
                default=1.0,
                minimum=0.01,
                maximum=_HOUR,
                unit="seconds",
            ),
            Key(
                "max_open_files",
                "integer",
                "the most files open at once; past it the least recently used "
                "is closed (and reopened for its next line)",
                default_doc="64, or one per instrument writing to the sink and "
                "64 more, whichever is more",
                minimum=1,
                maximum=MAX_OPEN_FILES,
            ),
            Key(
                "idle_close",
                "number",
                "seconds a file may take nothing before it is closed (a "
                "driver's start-up status and calibration records, a stream "
                "that went quiet); its next line opens it again",
                default=60.0,
                minimum=0.1,
                maximum=_HOUR,
                unit="seconds",
            ),
        ),
        "JSON lines in daily files.",
    ),
    "http": Section(
        '[sinks.NAME] type = "http"',
        (
            _SINK_TYPE,
            Key(
                "url",
                "string",
                "where to POST batches (`http://` or `https://`)",
                default=REQUIRED,
                required="the URL to POST particles to",
                check=_http_url,
            ),
            Key(
                "spool_dir",
                "string",
                "the spool every particle is written to before it is sent; one "
                "sink per directory",
                default_doc="`<data_dir>/spool/<NAME>`",
            ),
            Key(
                "batch_size",
                "integer",
                "the most records per POST; one POST is in flight at a time, so "
                "this over the receiver's answer time is the most records a "
                "second the sink can deliver",
                default=DEFAULT_BATCH_SIZE,
                minimum=1,
                maximum=10000,
            ),
            Key(
                "batch_interval",
                "number",
                "the longest a particle waits for its batch to fill",
                default=1.0,
                minimum=0.01,
                maximum=_HOUR,
                unit="seconds",
            ),
            Key(
                "timeout",
                "number",
                "the longest to wait for an answer",
                default=10.0,
                minimum=0.1,
                maximum=_HOUR,
                unit="seconds",
            ),
            Key(
                "max_bytes",
                "size",
                "the most disk the spool may take; at the bound the oldest "
                "undelivered particles are dropped, counted and warned about "
                "(see [sinks.md](sinks.md#at-the-bound-the-oldest-go))",
                default=DEFAULT_MAX_BYTES,
                default_doc='`"1GiB"`',
                minimum=64 << 10,
                maximum=1 << 50,
            ),
            Key(
                "headers",
                "table",
                'extra request headers, e.g. `{ Authorization = "Bearer ..." }`',
                type_doc="table of strings",
                default_doc="none",
            ),
        ),
        "An HTTP ingest endpoint, behind a disk spool.",
    ),
    "mqtt": Section(
        '[sinks.NAME] type = "mqtt"',
        (
            _SINK_TYPE,
            Key(
                "broker",
                "string",
                "the MQTT 5 broker: `mqtt://HOST[:PORT]` (1883), "
                "`mqtts://HOST[:PORT]` (TLS, 8883; the host name is checked "
                "against the broker's certificate), or a Twisted client endpoint "
                "string (`unix:path=...`). Needs `[station] name`",
                default=REQUIRED,
                required="the broker's address, e.g. mqtt://127.0.0.1:1883",
                check=_broker_address,
            ),
            Key(
                "client_id",
                "string",
                "the MQTT client id; the broker lets one connection hold it",
                default_doc="`instrumentd-<station>-<NAME>`",
            ),
            Key("username", "string", "the MQTT user name", default_doc="none"),
            Key(
                "password_file",
                "string",
                "a file holding the password (white space around it ignored); "
                "read at each connection, never shown. Needs `username`",
                default_doc="none",
            ),
            Key(
                "ca_file",
                "string",
                "PEM certificates the broker's must chain to (`mqtts://`)",
                default_doc="the system's trust store",
            ),
            Key(
                "cert_file",
                "string",
                "a PEM client certificate, for brokers that ask for one",
                default_doc="none",
            ),
            Key("key_file", "string", "its PEM private key", default_doc="none"),
            Key(
                "keepalive",
                "integer",
                "seconds between pings when idle; the broker publishes the "
                "station's last will (offline) after 1.5 times this with no word",
                default=30,
                minimum=5,
                maximum=3600,
                unit="seconds",
            ),
            Key(
                "session_expiry",
                "integer",
                "seconds the broker keeps the station's session (its "
                "subscriptions and the requests sent to it) while the station is "
                "away; requests still unexpired are carried out when it is back. "
                "0: a new session at each connection",
                default=0,
                minimum=0,
                maximum=30 * 24 * 3600,
                unit="seconds",
            ),
            Key(
                "spool_dir",
                "string",
                "the spools every message is written to before it is sent, "
                "`<spool_dir>/<instrument>/`; one sink per directory",
                default_doc="`<data_dir>/spool/<NAME>`",
            ),
            Key(
                "max_bytes",
                "size",
                "the most disk each instrument's spool may take; at the bound "
                "the oldest undelivered messages are dropped, counted and "
                "warned about (their `seq` numbers are then missing)",
                default=DEFAULT_MAX_BYTES,
                default_doc='`"1GiB"`',
                minimum=64 << 10,
                maximum=1 << 50,
            ),
            Key(
                "window",
                "integer",
                "messages of one instrument published and not yet acknowledged, "
                "at most",
                default=100,
                minimum=1,
                maximum=10000,
            ),
            Key(
                "registry",
                "boolean",
                "publish the retained registry: `instrumentd/<station>/status` "
                "(online; the last will says offline) and each instrument's "
                "`.../meta`",
                default=True,
            ),
            Key(
                "remote_commands",
                "boolean",
                "answer MQTT 5 requests on `instrumentd/<station>/<instrument>/cmd` "
                "(get, set, run, discover, list); who may send them is the "
                "broker's ACL (see [multi-host.md](multi-host.md#commands))",
                default=False,
            ),
        ),
        "An MQTT 5 broker: samples and events with QoS 1, behind a disk "
        "spool per instrument; the registry; remote commands "
        "([multi-host.md](multi-host.md)).",
    ),
}

#: A sink whose type is not known yet: only its type is checked.
SINK: Final = Section("[sinks.NAME]", (_SINK_TYPE,))

INSTRUMENT: Final = Section(
    "[[instruments]]",
    (
        Key(
            "name",
            "string",
            "unique, also without regard to case; 1-128 letters, digits, `.`, "
            "`_`, `-`, starting with a letter or digit (it names URLs, datalog "
            "and sample files)",
            default=REQUIRED,
            required="the instrument's name",
            check=name_problem,
        ),
        Key(
            "driver",
            "string",
            "import path of the driver class: `package.module:Class` (or "
            "`package.module.Class`). An `InstrumentProtocol` subclass (e.g. "
            "`instrumentd.instruments.seabird.sbe37smp.driver:SBE37Protocol`) is "
            "wrapped in an `InstrumentDriver`; a class implementing "
            "`IInstrumentDriver` is built as `Class(connection, events=bus, "
            "clock=reactor)`",
            default=REQUIRED,
            required="the import path of the driver class, e.g. "
            "'instrumentd.instruments.seabird.sbe37smp.driver:SBE37Protocol'",
        ),
        Key(
            "autosample",
            "boolean",
            "start autosample when the instrument is found in COMMAND after its "
            "link comes (back) up",
            default=False,
        ),
        Key(
            "parameters",
            "table",
            "startup parameter values, e.g. `{ INTERVAL = 15 }`; each is checked "
            "against the driver's parameter dictionary (names, types, ranges; "
            "read-only ones refused) and applied when the instrument is first "
            "found in command mode",
            default_doc="none",
        ),
        Key(
            "schedules",
            "table",
            "scheduled jobs: job name → `{ interval = SECONDS }`, `{ cron = "
            '"M H DoM Mon DoW" }` (UTC), or the OOI `{ trigger = {...} }` form; '
            "optional `arguments = {...}`. The jobs a driver offers are its "
            "`scheduled_jobs` (SBE 37: `acquire_sample`, `acquire_status`, "
            "`acquire_calibration`, `clock_sync`)",
            default_doc="none",
        ),
        Key(
            "sinks",
            "array",
            "the sinks its samples go to; `[]` for none",
            type_doc="array of sink names",
            check=_names,
            default_doc="every sink",
        ),
        Key(
            "connection",
            "table",
            "how the instrument is reached (below)",
            default=REQUIRED,
            required="how the instrument is reached: a table with type = one of "
            f"{', '.join(CONNECTION_TYPES)}",
        ),
        Key(
            "port_agent",
            "table",
            'its port agent (below); not allowed with `connection.type = "port_agent"`',
            default_doc="child agent, defaults",
        ),
        Key(
            "qc",
            "table",
            "real-time QARTOD quality control: stream → field → test (below; "
            "`doc/data.md`, Quality control). Stream and field names are checked "
            "against the driver's; `STREAM = false` turns a stream's QC off",
            default_doc="the driver's default sensor ranges",
        ),
    ),
    "One table per instrument, in an array.",
)

QC_STREAM: Final = Section(
    "[instruments.qc.STREAM]",
    (
        Key(
            "FIELD",
            "table",
            "the tests of one field of the stream (below), e.g. `temperature`",
        ),
        Key(
            "defaults",
            "boolean",
            "start from the driver's default ranges "
            "(`instrumentd/qc/defaults.py`); `false`: only what is configured here",
            default=True,
        ),
        Key(
            "hold",
            "number",
            "with a spike test, each sample is held back until the next one "
            "arrives (the test needs both neighbours); after this many seconds "
            "without one it goes on with its spike flag 2 (not evaluated)",
            default_doc="twice the interval between the last two samples",
            above=0,
            maximum=366 * 86400.0,
            unit="seconds",
        ),
        Key(
            "location",
            "table",
            'the location test: `{ lat = "FIELD", lon = "FIELD", range_max = METRES }`',
        ),
        Key(
            "time",
            "table",
            "the time test: a sample time later than the station clock fails; "
            "`{ fail_span = [EARLIEST, LATEST] }` (TOML dates or times) narrows it",
        ),
    ),
    "One table per stream the driver publishes (SBE 37: `ctdpf_sample`); "
    "its fields' tests and the whole-sample tests. Flags: 1 pass, 2 not "
    "evaluated, 3 suspect, 4 fail, 9 missing.",
)

QC_FIELD: Final = Section(
    "[instruments.qc.STREAM.FIELD]",
    (
        Key(
            "gross_range",
            "table",
            "`{ fail_span = [LOW, HIGH], suspect_span = [LOW, HIGH] }`: outside "
            "`fail_span` (the sensor's range) fails, outside `suspect_span` is "
            "suspect",
            type_doc="table or false",
            default_doc="the driver's sensor range",
        ),
        Key(
            "climatology",
            "table",
            "`{ spans = [{ tspan, vspan, fspan, zspan, period }, ...] }` and "
            "`depth` or `depth_field`: seasonal expected ranges",
            type_doc="table or false",
        ),
        Key(
            "spike",
            "table",
            "`{ suspect_threshold, fail_threshold, method }`: distance from the "
            "neighbours' mean (field units); one sample late (see `hold`)",
            type_doc="table or false",
        ),
        Key(
            "rate_of_change",
            "table",
            "`{ threshold, fail_threshold }`: change per second since the "
            "sample before",
            type_doc="table or false",
        ),
        Key(
            "flat_line",
            "table",
            "`{ suspect_threshold, fail_threshold, tolerance, interval }`: "
            "values within `tolerance` for so many seconds",
            type_doc="table or false",
        ),
    ),
    "A field's tests; `false` switches a default test off. Every mistake "
    "names the key, the value and the valid choices.",
)

#: The shortest and longest interval of a scheduled job: a job is an
#: exchange with the instrument, and a year is as far as one plans.
_DAY: Final = 86400.0

SCHEDULE: Final = Section(
    "[instruments.schedules.JOB]",
    (
        Key(
            "interval",
            "number",
            "run the job every so many seconds",
            minimum=1,
            maximum=366 * _DAY,
            unit="seconds",
        ),
        Key(
            "cron",
            "string",
            'run the job at the times of a cron line, `"M H DoM Mon DoW"`, in UTC',
        ),
        Key(
            "trigger",
            "table",
            'the OOI form: `{ type = "interval", hours = 1 }` (`weeks`, `days`, '
            "`hours`, `minutes`, `seconds`; the total has the bounds of "
            '`interval`) or `{ type = "cron", minute = "0", hour = "0" }`',
        ),
        Key("arguments", "table", "keyword arguments of the job's command"),
    ),
    "A job the driver offers (its `scheduled_jobs`), switched on: give one of "
    "`interval`, `cron` or `trigger`. The driver checks the job's name, the "
    "cron line and the arguments.",
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


#: Every section, in the order the reference lists them.
SECTIONS: Final = (
    STATION,
    POSITION,
    API,
    *SINKS.values(),
    INSTRUMENT,
    QC_STREAM,
    QC_FIELD,
    SCHEDULE,
    *CONNECTIONS.values(),
    PORT_AGENT,
    LISTENERS,
    COLLECTOR,
)
