# -*- test-case-name: tests.test_station_config -*-
"""
The keys of each sink type (``[[sinks]]``), declared once: see
:mod:`instrumentd.station.config._keys`.
"""

from __future__ import annotations

import re
from typing import Final

from instrumentd.station._sink import DEFAULT_BATCH_SIZE
from instrumentd.station.config._specs import (
    MAX_OPEN_FILES,
    SINK_TYPES,
)
from instrumentd.station.config.schema import REQUIRED, Key, Section
from instrumentd.station.spool import DEFAULT_MAX_BYTES

_HOUR: Final = 3600.0


def _http_url(value: object) -> str | None:
    if isinstance(value, str) and re.match(r"^https?://[^/\s]+", value):
        return None
    return f"{value!r} is not an http:// or https:// URL"


def _broker_address(value: object) -> str | None:
    from instrumentd.mqtt import address_problem

    return address_problem(value)


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
                "how many records waiting send a POST at once; a sink that fell "
                "behind sends up to ten times as many a POST to catch up, one "
                "POST in flight at a time (a receiver that answers 413 to those "
                "gets this many a POST from then on; see doc/sinks.md)",
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
