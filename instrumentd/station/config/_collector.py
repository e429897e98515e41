# -*- test-case-name: tests.test_collector_config -*-
"""
The shore collector's configuration: a TOML file with one ``[collector]``
table, read and checked like the station's (every problem at once, each
naming the key, the value and what is valid), for ``twistd instrumentd
collect --config FILE``; the command line's ``--broker``, ``--data-dir``
and ``--api`` override the file's keys.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from instrumentd.station.config._errors import ConfigError, Problems
from instrumentd.station.config._specs import _NAME
from instrumentd.station.config._table import Table
from instrumentd.station.config.schema import Key, Section, show

__all__ = [
    "COLLECTOR",
    "COLLECTOR_TOP",
    "DEFAULT_COLLECTOR_API",
    "DEFAULT_COLLECTOR_DATA_DIR",
    "DEFAULT_GROUP",
    "CollectorConfig",
    "load_collector_config",
    "parse_collector_config",
]

#: Where the collector's HTTP API listens unless told.
DEFAULT_COLLECTOR_API: Final = "tcp:8710:interface=127.0.0.1"

#: Where the archive goes unless told.
DEFAULT_COLLECTOR_DATA_DIR: Final = "instrumentd-archive"

#: No shared subscription unless a group is named (see the ``group`` key).
DEFAULT_GROUP: Final = None

_DAY: Final = 86400


def _broker_problem(value: object) -> str | None:
    from instrumentd.mqtt import address_problem

    return address_problem(value)


def _group_problem(value: object) -> str | None:
    # A topic level of a shared subscription's filter: no wildcards, no /.
    if isinstance(value, str) and value and not any(c in value for c in "/+#"):
        return None
    return f"{value!r} is not a group name: it may not be empty or hold '/', '+' or '#'"


def _stations_problem(value: object) -> str | None:
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, str) and (v == "+" or _NAME.match(v)) for v in value)
    ):
        return None
    return (
        f'must be a non-empty array of station names, or ["+"] for every '
        f"station, not {show(value)}"
    )


#: The top level of a collector's file.
COLLECTOR_TOP: Final = Section(
    "(collector file)",
    (Key("collector", "table", "the collector"),),
)

COLLECTOR: Final = Section(
    "[collector]",
    (
        Key(
            "broker",
            "string",
            "the MQTT broker: `mqtt://HOST[:PORT]`, `mqtts://HOST[:PORT]` (TLS, "
            "the host name checked against its certificate) or a Twisted "
            "client endpoint string. `--broker` overrides it",
            default=None,
            default_doc="required (here or `--broker`)",
            check=_broker_problem,
        ),
        Key(
            "data_dir",
            "string",
            "the archive: `<data_dir>/<station>/<instrument>/<stream>/"
            "<YYYY-MM-DD>.jsonl`, and the collector's checkpoint in "
            "`<data_dir>/.collector/`. `--data-dir` overrides it",
            default=DEFAULT_COLLECTOR_DATA_DIR,
        ),
        Key(
            "api",
            "server endpoint",
            "server endpoint string of the collector's HTTP API (status, gaps, "
            "`/metrics`; it only reads). `--api` overrides it",
            default=DEFAULT_COLLECTOR_API,
        ),
        Key(
            "stations",
            "array",
            'the stations to collect, by name; `["+"]` for every station',
            default=("+",),
            default_doc='`["+"]`',
            type_doc="array of strings",
            check=_stations_problem,
        ),
        Key(
            "group",
            "string",
            "share the stations' messages with the other collectors of this "
            "group: the subscriptions become shared ones "
            "(`$share/<group>/instrumentd/...`), each message delivered to one "
            "collector of the group. Without it, this collector takes every "
            "message. Mosquitto 2.0 does not restore shared subscriptions when "
            "it restarts: what stations publish between the broker's restart "
            "and the collectors' return is lost to the group (and reported as "
            "gaps), so run one collector per broker without a group unless the "
            "load needs more",
            default=DEFAULT_GROUP,
            default_doc="none (every message to this collector)",
            check=_group_problem,
        ),
        Key(
            "events",
            "boolean",
            "archive the instruments' events too (in `<instrument>/_events/`)",
            default=True,
        ),
        Key(
            "client_id",
            "string",
            "the MQTT client id; the broker keeps this collector's session "
            "(its queued messages) under it, so it must stay the same across "
            "restarts and differ between collectors",
            default=None,
            default_doc="`instrumentd-collector-<host name>`",
        ),
        Key("username", "string", "the MQTT user name"),
        Key(
            "password_file",
            "string",
            "a file holding the MQTT password (read at each connection; never "
            "in the configuration itself)",
        ),
        Key(
            "ca_file",
            "string",
            "PEM certificates the broker's must chain to (`mqtts://`)",
        ),
        Key("cert_file", "string", "a PEM client certificate, for brokers that ask"),
        Key("key_file", "string", "its PEM private key"),
        Key(
            "keepalive",
            "integer",
            "seconds between pings when idle",
            default=30,
            minimum=5,
            maximum=3600,
            unit="seconds",
        ),
        Key(
            "session_expiry",
            "integer",
            "how long the broker keeps the collector's session and queues its "
            "messages while it is away; the broker's own limits "
            "(`max_queued_messages`, `persistent_client_expiration`) apply too",
            default=7 * _DAY,
            minimum=60,
            maximum=4294967294,
            unit="seconds",
        ),
        Key(
            "fsync",
            "boolean",
            "force each batch to the disk before acknowledging it (survives a "
            "power cut, costs a disk flush per batch)",
            default=False,
        ),
        Key(
            "checkpoint_interval",
            "number",
            "seconds between checkpoints of the sequence numbers seen",
            default=5.0,
            minimum=0.1,
            maximum=3600.0,
            unit="seconds",
        ),
        Key(
            "max_open_files",
            "integer",
            "archive files open at once",
            default=64,
            minimum=1,
            maximum=4096,
        ),
        Key(
            "max_open_gaps",
            "integer",
            "open gaps kept per instrument; past it the oldest is abandoned "
            "(logged, counted, reported closed with `abandoned`)",
            default=1000,
            minimum=1,
            maximum=1000000,
        ),
        Key(
            "max_closed_gaps",
            "integer",
            "closed gaps remembered for the report",
            default=1000,
            minimum=0,
            maximum=1000000,
        ),
    ),
    "The shore collector (`twistd instrumentd collect --config FILE`): a file "
    "of its own holding this one table.",
)


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """
    A checked collector configuration.

    :ivar source: where it came from.
    :ivar broker: the broker's address.
    :ivar data_dir: the archive's directory.
    :ivar api: the HTTP API's server endpoint.
    :ivar stations: the stations' names (``+`` for all).
    :ivar group: the shared subscription's group, or ``None`` for none.
    :ivar events: whether events are archived.
    :ivar client_id: the MQTT client id.
    :ivar username: the MQTT user name, or ``None``.
    :ivar password_file: the password's file, or ``None``.
    :ivar ca_file: the broker's CA certificates, or ``None``.
    :ivar cert_file: the client certificate, or ``None``.
    :ivar key_file: its key, or ``None``.
    :ivar keepalive: seconds.
    :ivar session_expiry: seconds.
    :ivar fsync: whether batches are forced to disk.
    :ivar checkpoint_interval: seconds.
    :ivar max_open_files: archive files open at once.
    :ivar max_open_gaps: open gaps per instrument.
    :ivar max_closed_gaps: closed gaps remembered.
    """

    source: str
    broker: str
    data_dir: str = DEFAULT_COLLECTOR_DATA_DIR
    api: str = DEFAULT_COLLECTOR_API
    stations: tuple[str, ...] = ("+",)
    group: str | None = DEFAULT_GROUP
    events: bool = True
    client_id: str = ""
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive: int = 30
    session_expiry: int = 7 * _DAY
    fsync: bool = False
    checkpoint_interval: float = 5.0
    max_open_files: int = 64
    max_open_gaps: int = 1000
    max_closed_gaps: int = 1000

    def topic_filters(self) -> list[str]:
        """
        :returns: the subscriptions' filters: data (and events) of each
            station, shared ones with a group.
        """
        kinds = ["data", "events"] if self.events else ["data"]
        share = f"$share/{self.group}/" if self.group else ""
        return [
            f"{share}instrumentd/{station}/+/{kind}/+"
            for station in self.stations
            for kind in kinds
        ]

    def meta_filters(self) -> list[str]:
        """
        :returns: the subscriptions' filters of each station's instruments'
            retained meta, for the archive's ``metadata.json``.  Never
            shared: a broker sends retained messages to plain
            subscriptions only (MQTT 5, 4.8.2), and every collector of a
            group keeps the files.
        """
        return [f"instrumentd/{station}/+/meta" for station in self.stations]


def default_client_id() -> str:
    """
    :returns: ``instrumentd-collector-<host name>``.
    """
    return f"instrumentd-collector-{socket.gethostname()}"


def load_collector_config(
    path: str | None,
    *,
    broker: str | None = None,
    data_dir: str | None = None,
    api: str | None = None,
) -> CollectorConfig:
    """
    Read and check a collector configuration file (or none: the command
    line's values and the defaults).

    :param path: the TOML file, or ``None``.
    :param broker: overrides ``collector.broker`` (``--broker``).
    :param data_dir: overrides ``collector.data_dir`` (``--data-dir``).
    :param api: overrides ``collector.api`` (``--api``).
    :returns: the checked configuration.
    :raises ConfigError: listing every problem.
    """
    from instrumentd.station.config._parse import read_toml_file

    if path is None:
        return parse_collector_config(
            {}, "(command line)", broker=broker, data_dir=data_dir, api=api
        )
    return parse_collector_config(
        read_toml_file(path), path, broker=broker, data_dir=data_dir, api=api
    )


def parse_collector_config(
    data: Mapping[str, Any],
    source: str,
    *,
    broker: str | None = None,
    data_dir: str | None = None,
    api: str | None = None,
) -> CollectorConfig:
    """
    Check a parsed collector configuration.

    :param data: the parsed TOML document.
    :param source: where it came from, for messages.
    :param broker: overrides ``collector.broker``.
    :param data_dir: overrides ``collector.data_dir``.
    :param api: overrides ``collector.api``.
    :returns: the checked configuration.
    :raises ConfigError: listing every problem.
    """
    problems = Problems()
    top = Table(data, "", problems, COLLECTOR_TOP)
    table = top.table("collector", COLLECTOR)
    settings = table.read_all()
    table.done()
    top.done()
    for flag, name, value in (
        ("--broker", "broker", broker),
        ("--data-dir", "data_dir", data_dir),
        ("--api", "api", api),
    ):
        if value is None:
            continue
        verdict = COLLECTOR[name].check_value(value)
        if verdict.problem is not None:
            problems.add(flag, verdict.problem)
        settings[name] = value
    if settings["broker"] is None and not table.has("broker") and broker is None:
        problems.add(
            "collector.broker",
            "missing: the MQTT broker to collect from (or give --broker)",
        )
    for name in ("password_file", "ca_file", "cert_file", "key_file"):
        path = settings[name]
        if path is not None and not os.access(path, os.R_OK):
            table.bad(name, f"cannot read the file {path!r}")
    if problems.found:
        raise ConfigError(source, problems.found)
    return CollectorConfig(
        source=source,
        broker=settings["broker"],
        data_dir=settings["data_dir"],
        api=settings["api"],
        stations=tuple(settings["stations"]),
        group=settings["group"],
        events=settings["events"],
        client_id=settings["client_id"] or default_client_id(),
        username=settings["username"],
        password_file=settings["password_file"],
        ca_file=settings["ca_file"],
        cert_file=settings["cert_file"],
        key_file=settings["key_file"],
        keepalive=settings["keepalive"],
        session_expiry=settings["session_expiry"],
        fsync=settings["fsync"],
        checkpoint_interval=settings["checkpoint_interval"],
        max_open_files=settings["max_open_files"],
        max_open_gaps=settings["max_open_gaps"],
        max_closed_gaps=settings["max_closed_gaps"],
    )
