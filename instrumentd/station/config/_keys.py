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

from typing import Final

from instrumentd.station.apisite import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_CONNECTIONS,
)
from instrumentd.station.config._collector import COLLECTOR
from instrumentd.station.config._link_keys import (
    CONNECTION,
    CONNECTIONS,
    LISTENERS,
    PORT_AGENT,
)
from instrumentd.station.config._sink_keys import SINK, SINKS
from instrumentd.station.config._specs import (
    _NAME,
    CONNECTION_TYPES,
    DEFAULT_API,
    DEFAULT_DATA_DIR,
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_STARTUP_WINDOW,
)
from instrumentd.station.config.schema import REQUIRED, Key, Section, show

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


def _names(value: object) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return None
    return f"must be an array of sink names, not {show(value)}"


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
