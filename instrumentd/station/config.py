# -*- test-case-name: tests.test_station_config -*-
"""
The station's configuration: a TOML file read with :mod:`tomllib`, checked
in full before anything starts.

::

    [station]
    data_dir = "instrumentd-data"

    [api]
    listen = "tcp:8700:interface=127.0.0.1"
    token_file = "/etc/instrumentd/token"

    [sinks.files]
    type = "jsonlines"

    [[instruments]]
    name = "CTD-01"
    driver = "instrumentd.instruments.seabird.sbe37smp.driver:SBE37Protocol"
    autosample = true
    parameters = { INTERVAL = 15 }
    schedules = { acquire_status = { interval = 3600 } }
    connection = { type = "tcp", host = "10.0.0.5", port = 4001 }
    port_agent = { mode = "child", rotate = "daily" }

:func:`load_config` reads a file and :func:`parse_config` a parsed mapping;
both give a :class:`StationConfig` or raise :class:`ConfigError`, which
lists every problem found, each with the file, the key path
(``instruments[2].connection.port``) and what is wrong, with the valid
choices where there is a list of them.  Checking imports every driver
class, parses every endpoint string, builds each driver's startup
configuration against its parameter dictionary and reads the token file;
nothing is started.  ``doc/station.md`` describes every key.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from instrumentd.driver.events import EventBus
    from instrumentd.interfaces import IInstrumentConnection, IInstrumentDriver
    from instrumentd.portagent.options import PortAgentConfig
    from instrumentd.simulator import SimulatorSettings

__all__ = [
    "AGENT_MODES",
    "CONNECTION_TYPES",
    "DEFAULT_API",
    "DEFAULT_DATA_DIR",
    "SINK_TYPES",
    "ConfigError",
    "ConnectionSpec",
    "DriverFactory",
    "ExistingAgent",
    "InstrumentSpec",
    "PortAgentSpec",
    "SimulatorSpec",
    "SinkSpec",
    "StationConfig",
    "load_config",
    "parse_config",
    "parse_toml",
]

#: Where the API listens unless the config or ``--api`` says otherwise.
DEFAULT_API: Final = "tcp:8700:interface=127.0.0.1"

#: Where data goes unless the config or ``--data-dir`` says otherwise.
DEFAULT_DATA_DIR: Final = "instrumentd-data"

#: How an instrument is reached.
CONNECTION_TYPES: Final = ("tcp", "serial", "simulator", "endpoint", "port_agent")

#: Where an instrument's port agent runs.
AGENT_MODES: Final = ("child", "in-process")

#: The kinds of sink.
SINK_TYPES: Final = ("jsonlines", "http")

#: Loopback on a free port: where a simulator serves by default.
_LOOPBACK_ANY: Final = "tcp:0:interface=127.0.0.1"

_LISTENER_KINDS: Final = ("data", "command", "sniff", "raw")
_ROTATIONS: Final = ("daily", "hourly", "none")
# Names become file and directory names (datalogs, sample files) and URL
# path segments: the port agent's rule.
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

#: Builds an instrument's driver: ``(connection, events, clock)``.
DriverFactory = Callable[
    ["IInstrumentConnection", "EventBus", "IReactorTime"], "IInstrumentDriver"
]


class ConfigError(ValueError):
    """
    A station configuration that cannot be used; nothing was started.

    :ivar source: the file (or ``<demo>``, ``<string>``).
    :ivar problems: ``(key path, problem)`` pairs, in the order found.
    """

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        """
        :param source: the file the configuration came from.
        :param problems: ``(key path, problem)`` pairs; at least one.
        """
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {key}: {problem}" for key, problem in self.problems]
        count = len(lines)
        heading = (
            f"{source}: the station configuration has {count} problems; "
            "nothing was started:\n"
            if count > 1
            else ""
        )
        super().__init__(heading + "\n".join(lines))


# -- the checked configuration ---------------------------------------------------


@dataclass(frozen=True)
class SimulatorSpec:
    """
    A simulated instrument run inside the station.

    :ivar model: the simulator's model name (``sbe37``).
    :ivar settings: how it runs (time scale, baud, seed...).
    :ivar listen: the server endpoint it is served on for its port agent.
    """

    model: str
    settings: SimulatorSettings
    listen: str = _LOOPBACK_ANY


@dataclass(frozen=True)
class ExistingAgent:
    """
    A port agent that runs on its own (``connection.type = "port_agent"``).

    :ivar host: where it is.
    :ivar data_port: its data port.
    :ivar command_port: its command port.
    """

    host: str
    data_port: int
    command_port: int


@dataclass(frozen=True)
class ConnectionSpec:
    """
    How an instrument is reached.

    :ivar type: one of :data:`CONNECTION_TYPES`.
    :ivar endpoint: the client endpoint string the port agent opens; for a
        simulator it is known only once the simulator listens (``None``
        here), and an existing port agent has none.
    :ivar simulator: the simulator to run, for ``simulator``.
    :ivar existing_agent: the agent to attach to, for ``port_agent``.
    """

    type: str
    endpoint: str | None = None
    simulator: SimulatorSpec | None = None
    existing_agent: ExistingAgent | None = None


@dataclass(frozen=True)
class PortAgentSpec:
    """
    The port agent the station runs for an instrument.

    :ivar mode: ``child`` (a process of its own, whose datalog carries on
        through station restarts) or ``in-process`` (a service in the
        station's reactor).
    :ivar listeners: server endpoint strings by listener kind; an empty
        tuple turns a listener off.
    :ivar datalog_dir: the datalog directory.
    :ivar rotate: ``daily``, ``hourly`` or ``none``.
    :ivar rotate_size: bytes; 0 is off.
    :ivar client_buffer: bytes a client may have queued.
    :ivar heartbeat: seconds between heartbeats; 0 is off.
    :ivar disconnect_grace: seconds before a down link is announced.
    :ivar max_reconnect_delay: cap of the instrument link's backoff.
    :ivar launch_timeout: seconds a child agent has to get ready.
    :ivar log_file: where a child agent logs.
    """

    mode: str
    listeners: Mapping[str, tuple[str, ...]]
    datalog_dir: str
    rotate: str = "daily"
    rotate_size: int = 0
    client_buffer: int = 4 << 20
    heartbeat: float = 10.0
    disconnect_grace: float = 10.0
    max_reconnect_delay: float = 60.0
    launch_timeout: float = 30.0
    log_file: str | None = None

    def agent_config(self, name: str, instrument: str) -> PortAgentConfig:
        """
        The configuration of an in-process agent.

        :param name: the instrument's name.
        :param instrument: the client endpoint of its link.
        :returns: a :class:`~instrumentd.portagent.options.PortAgentConfig`.
        """
        from instrumentd.portagent.options import PortAgentConfig

        return PortAgentConfig(
            name=name,
            instrument=instrument,
            listeners=dict(self.listeners),
            heartbeat=self.heartbeat,
            disconnect_grace=self.disconnect_grace,
            max_reconnect_delay=self.max_reconnect_delay,
            datalog_dir=self.datalog_dir,
            rotate=self.rotate,
            rotate_size=self.rotate_size,
            client_buffer=self.client_buffer,
        )


@dataclass(frozen=True)
class SinkSpec:
    """
    A sink: where particles go.

    :ivar name: its name in the config (instruments refer to it).
    :ivar type: one of :data:`SINK_TYPES`.
    :ivar directory: ``jsonlines``: the top directory.
    :ivar flush_interval: ``jsonlines``: seconds a record may wait.
    :ivar max_open_files: ``jsonlines``: the most files open.
    :ivar url: ``http``: where to POST.
    :ivar spool_dir: ``http``: its spool.
    :ivar batch_size: ``http``: particles per POST at most.
    :ivar batch_interval: ``http``: seconds a batch may wait to fill.
    :ivar timeout: ``http``: seconds to wait for an answer.
    :ivar headers: ``http``: extra request headers.
    """

    name: str
    type: str
    directory: str | None = None
    flush_interval: float = 1.0
    max_open_files: int = 64
    url: str | None = None
    spool_dir: str | None = None
    batch_size: int = 100
    batch_interval: float = 1.0
    timeout: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InstrumentSpec:
    """
    One instrument of the station.

    :ivar name: its name: unique, used in URLs and file names.
    :ivar driver: the import path of its driver class, as written.
    :ivar make_driver: builds the driver.
    :ivar connection: how the instrument is reached.
    :ivar port_agent: the agent the station runs for it, or ``None`` for
        an existing agent.
    :ivar parameters: startup parameter values.
    :ivar schedules: scheduled jobs (the driver's ``scheduler`` config).
    :ivar autosample: whether to start autosampling when the instrument
        is found in command mode after (re)connecting.
    :ivar sinks: the names of the sinks its samples go to.
    """

    name: str
    driver: str
    make_driver: DriverFactory = field(repr=False, compare=False)
    connection: ConnectionSpec
    port_agent: PortAgentSpec | None
    parameters: Mapping[str, object] = field(default_factory=dict)
    schedules: Mapping[str, object] = field(default_factory=dict)
    autosample: bool = False
    sinks: tuple[str, ...] = ()

    def init_params(self) -> dict[str, object]:
        """
        The driver's startup configuration.

        :returns: ``{"parameters": ..., "scheduler": ...}``.
        """
        return {"parameters": dict(self.parameters), "scheduler": dict(self.schedules)}


@dataclass(frozen=True)
class StationConfig:
    """
    A checked station configuration.

    :ivar source: where it came from (a file name, or ``<demo>``).
    :ivar data_dir: the default home of datalogs, sample files, spools
        and agent logs.
    :ivar api: the API's server endpoint string.
    :ivar token: the API token, or ``None`` for none.
    :ivar token_file: where the token was read from.
    :ivar sinks: by name.
    :ivar instruments: in the config's order.
    """

    source: str
    data_dir: str
    api: str
    token: str | None
    token_file: str | None
    sinks: Mapping[str, SinkSpec]
    instruments: tuple[InstrumentSpec, ...]


# -- reading --------------------------------------------------------------------------


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """
    Parse TOML text.

    :param text: the text.
    :param source: its name, for the error.
    :returns: the parsed document.
    :raises ConfigError: for text that is not TOML, with the line and
        column.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, [("(file)", f"not valid TOML: {e}")]) from None


def load_config(
    path: str,
    *,
    api: str | None = None,
    token_file: str | None = None,
    data_dir: str | None = None,
) -> StationConfig:
    """
    Read and check a station configuration file.

    :param path: the TOML file.
    :param api: overrides ``api.listen`` (``--api``).
    :param token_file: overrides ``api.token_file`` (``--token-file``).
    :param data_dir: overrides ``station.data_dir`` (``--data-dir``).
    :returns: the checked configuration.
    :raises ConfigError: for a file that cannot be read, is not TOML, or
        has problems (all of them listed).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(path, [("(file)", f"cannot read it: {e.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            path, [("(file)", f"not UTF-8 text (byte {e.start})")]
        ) from None
    return parse_config(
        parse_toml(text, path),
        path,
        api=api,
        token_file=token_file,
        data_dir=data_dir,
    )


T = TypeVar("T")


class _Problems:
    """
    Collects problems, so one run reports every one of them.
    """

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, key: str, problem: str) -> None:
        self.found.append((key, problem))


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_ABSENT: Final = object()


class _Table:
    """
    One TOML table being read: each read names the key path, and
    :meth:`done` reports the keys nobody read, with the valid ones.
    """

    def __init__(self, data: Mapping[str, Any], path: str, problems: _Problems) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self._known: list[str] = []

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str) -> Any:
        if name not in self._known:
            self._known.append(name)
        return self.data.get(name, _ABSENT)

    def bad(self, name: str, problem: str) -> None:
        self.problems.add(self.key(name), problem)

    def string(
        self,
        name: str,
        default: T,
        *,
        choices: Sequence[str] | None = None,
        required: str | None = None,
    ) -> str | T:
        value = self._get(name)
        if value is _ABSENT:
            if required is not None:
                self.bad(name, f"missing: {required}")
            return default
        if not isinstance(value, str):
            self.bad(name, f"must be a string, not {_kind(value)} ({_show(value)})")
            return default
        if choices is not None and value not in choices:
            self.bad(
                name, f"{value!r} is not valid; valid choices: {', '.join(choices)}"
            )
            return default
        if not value.strip():
            self.bad(name, "must not be empty")
            return default
        return value

    def integer(
        self,
        name: str,
        default: T,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        required: str | None = None,
    ) -> int | T:
        value = self._get(name)
        if value is _ABSENT:
            if required is not None:
                self.bad(name, f"missing: {required}")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(name, f"must be an integer, not {_kind(value)} ({_show(value)})")
            return default
        if (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum
        ):
            self.bad(
                name, f"{value} is out of range; valid: {_range(minimum, maximum)}"
            )
            return default
        return value

    def number(
        self,
        name: str,
        default: T,
        *,
        minimum: float | None = None,
        above: float | None = None,
    ) -> float | T:
        value = self._get(name)
        if value is _ABSENT:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.bad(name, f"must be a number, not {_kind(value)} ({_show(value)})")
            return default
        number = float(value)
        if not math.isfinite(number):
            self.bad(name, f"{value} is not a finite number")
            return default
        if minimum is not None and number < minimum:
            self.bad(name, f"{value} is too small; valid: at least {minimum:g}")
            return default
        if above is not None and number <= above:
            self.bad(name, f"{value} is too small; valid: more than {above:g}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is _ABSENT:
            return default
        if not isinstance(value, bool):
            self.bad(
                name,
                f"must be true or false, not {_kind(value)} ({_show(value)})",
            )
            return default
        return value

    def size(self, name: str, default: int, *, minimum: int = 0) -> int:
        from instrumentd.portagent.options import parse_size

        value = self._get(name)
        if value is _ABSENT:
            return default
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.bad(
                name,
                f'must be a size: bytes or text like "4MiB", not {_kind(value)}',
            )
            return default
        try:
            size = value if isinstance(value, int) else parse_size(value)
        except ValueError as e:
            self.bad(name, str(e))
            return default
        if size < minimum:
            self.bad(
                name, f"{_show(value)} is too small; valid: at least {minimum} bytes"
            )
            return default
        return size

    def table(self, name: str, *, required: str | None = None) -> _Table | None:
        value = self._get(name)
        if value is _ABSENT:
            if required is not None:
                self.bad(name, f"missing: {required}")
            return None
        if not isinstance(value, dict):
            self.bad(name, f"must be a table, not {_kind(value)} ({_show(value)})")
            return None
        return _Table(value, self.key(name), self.problems)

    def raw_table(self, name: str) -> dict[str, Any] | None:
        value = self._get(name)
        if value is _ABSENT:
            return {}
        if not isinstance(value, dict):
            self.bad(name, f"must be a table, not {_kind(value)} ({_show(value)})")
            return None
        return value

    def raw(self, name: str) -> Any:
        return self._get(name)

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self._known]
        for name in unknown:
            close = _closest(name, self._known)
            hint = f" (did you mean {close!r}?)" if close else ""
            self.bad(
                name,
                f"unknown key{hint}; valid keys here: {', '.join(self._known)}",
            )


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{minimum} to {maximum}"
    if minimum is not None:
        return f"at least {minimum}"
    return f"at most {maximum}"


def _closest(name: str, known: Sequence[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    return found[0] if found else None


def _check_server(table: _Table, name: str, description: str) -> bool:
    from instrumentd.portagent.options import check_server_endpoint

    try:
        check_server_endpoint(description)
    except ValueError as e:
        table.bad(name, f"not a server endpoint string: {e}")
        return False
    return True


def _check_client(table: _Table, name: str, description: str) -> bool:
    from instrumentd.portagent.options import check_client_endpoint

    try:
        check_client_endpoint(description)
    except ValueError as e:
        table.bad(name, f"not a client endpoint string: {e}")
        return False
    return True


def parse_config(
    data: Mapping[str, Any],
    source: str,
    *,
    api: str | None = None,
    token_file: str | None = None,
    data_dir: str | None = None,
) -> StationConfig:
    """
    Check a parsed station configuration.

    :param data: the parsed TOML document.
    :param source: where it came from, for messages.
    :param api: overrides ``api.listen``.
    :param token_file: overrides ``api.token_file``.
    :param data_dir: overrides ``station.data_dir``.
    :returns: the checked configuration.
    :raises ConfigError: listing every problem.
    """
    problems = _Problems()
    top = _Table(data, "", problems)

    station = top.table("station") or _Table({}, "station", problems)
    configured_data_dir = station.string("data_dir", DEFAULT_DATA_DIR)
    station.done()
    if data_dir is not None:
        configured_data_dir = data_dir

    api_table = top.table("api") or _Table({}, "api", problems)
    listen = api_table.string("listen", DEFAULT_API)
    configured_token_file = api_table.string("token_file", None)
    api_table.done()
    if api is not None:
        listen, listen_key = api, "--api"
    else:
        listen_key = "listen"
    _check_server(api_table, listen_key, listen)
    if token_file is not None:
        configured_token_file, token_key = token_file, "--token-file"
    else:
        token_key = "token_file"
    token = (
        _read_token(api_table, token_key, configured_token_file)
        if configured_token_file is not None
        else None
    )

    sinks = _sinks(top, configured_data_dir, problems)
    instruments = _instruments(top, configured_data_dir, sinks, problems)
    top.done()
    if problems.found:
        raise ConfigError(source, problems.found)
    return StationConfig(
        source=source,
        data_dir=configured_data_dir,
        api=listen,
        token=token,
        token_file=configured_token_file,
        sinks=sinks,
        instruments=tuple(instruments),
    )


def _read_token(table: _Table, name: str, path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as e:
        table.bad(name, f"cannot read the token file {path!r}: {e.strerror}")
        return None
    except UnicodeDecodeError:
        table.bad(name, f"the token file {path!r} is not UTF-8 text")
        return None
    if not token:
        table.bad(name, f"the token file {path!r} is empty")
        return None
    if any(c.isspace() for c in token):
        table.bad(
            name,
            f"the token in {path!r} contains white space; a token is one word "
            "(an HTTP Authorization header cannot carry it otherwise)",
        )
        return None
    return token


# -- sinks -----------------------------------------------------------------------------


def _sinks(top: _Table, data_dir: str, problems: _Problems) -> dict[str, SinkSpec]:
    if not top.has("sinks"):
        top.raw("sinks")
        return {
            "files": SinkSpec(
                name="files",
                type="jsonlines",
                directory=os.path.join(data_dir, "samples"),
            )
        }
    table = top.table("sinks")
    if table is None:
        return {}
    sinks: dict[str, SinkSpec] = {}
    spools: dict[str, str] = {}
    for name in list(table.data):
        sink = table.table(name)
        if sink is None:
            continue
        if not _NAME.match(name):
            table.bad(name, _name_problem(name))
        spec = _sink(sink, name, data_dir)
        sink.done()
        if spec is None:
            continue
        if spec.spool_dir is not None:
            where = os.path.abspath(spec.spool_dir)
            if where in spools:
                sink.bad(
                    "spool_dir",
                    f"{spec.spool_dir!r} is also the spool of sink "
                    f"{spools[where]!r}; each HTTP sink needs its own",
                )
                continue
            spools[where] = name
        sinks[name] = spec
    return sinks


def _sink(sink: _Table, name: str, data_dir: str) -> SinkSpec | None:
    kind = sink.string(
        "type",
        None,
        choices=SINK_TYPES,
        required=f"the kind of sink, one of {', '.join(SINK_TYPES)}",
    )
    if kind == "jsonlines":
        return SinkSpec(
            name=name,
            type=kind,
            directory=sink.string("directory", os.path.join(data_dir, "samples")),
            flush_interval=sink.number("flush_interval", 1.0, above=0),
            max_open_files=sink.integer("max_open_files", 64, minimum=1),
        )
    if kind == "http":
        url = sink.string("url", None, required="the URL to POST particles to")
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            sink.bad("url", f"{url!r} is not an http:// or https:// URL")
            url = None
        headers: dict[str, str] = {}
        given = sink.raw_table("headers")
        for header, value in (given or {}).items():
            if not isinstance(value, str):
                sink.bad(f"headers.{header}", f"must be a string, not {_kind(value)}")
            else:
                headers[header] = value
        spec = SinkSpec(
            name=name,
            type=kind,
            url=url,
            spool_dir=sink.string("spool_dir", os.path.join(data_dir, "spool", name)),
            batch_size=sink.integer("batch_size", 100, minimum=1),
            batch_interval=sink.number("batch_interval", 1.0, above=0),
            timeout=sink.number("timeout", 10.0, above=0),
            headers=headers,
        )
        return spec if url is not None else None
    return None


# -- instruments ---------------------------------------------------------------------


def _name_problem(name: str) -> str:
    return (
        f"{name!r} is not a valid name: 1-128 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit (names are used in file names and URLs)"
    )


def _instruments(
    top: _Table, data_dir: str, sinks: Mapping[str, SinkSpec], problems: _Problems
) -> list[InstrumentSpec]:
    given = top.raw("instruments")
    if given is _ABSENT:
        top.bad(
            "instruments",
            "missing: the station needs at least one [[instruments]] table",
        )
        return []
    if not isinstance(given, list):
        top.bad(
            "instruments",
            f"must be an array of tables ([[instruments]]), not {_kind(given)}",
        )
        return []
    if not given:
        top.bad("instruments", "empty: the station needs at least one instrument")
    found: list[InstrumentSpec] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(given):
        path = f"instruments[{index}]"
        if not isinstance(entry, dict):
            problems.add(path, f"must be a table, not {_kind(entry)}")
            continue
        table = _Table(entry, path, problems)
        before = len(problems.found)
        spec = _instrument(table, data_dir, sinks)
        table.done()
        name = entry.get("name")
        if isinstance(name, str):
            if name in names:
                table.bad(
                    "name",
                    f"{name!r} is already the name of instruments[{names[name]}]",
                )
            else:
                names[name] = index
        if spec is not None and len(problems.found) == before:
            found.append(spec)
    return found


def _instrument(
    table: _Table, data_dir: str, sinks: Mapping[str, SinkSpec]
) -> InstrumentSpec | None:
    name = table.string("name", None, required="the instrument's name")
    if name is not None and not _NAME.match(name):
        table.bad("name", _name_problem(name))
        name = None
    driver_path = table.string(
        "driver",
        None,
        required="the import path of the driver class, e.g. "
        "'instrumentd.instruments.seabird.sbe37smp.driver:SBE37Protocol'",
    )
    make_driver = _driver_factory(table, driver_path) if driver_path else None

    connection_table = table.table(
        "connection",
        required=f"how the instrument is reached: a table with type = one of "
        f"{', '.join(CONNECTION_TYPES)}",
    )
    connection = None
    if connection_table is not None:
        connection = _connection(connection_table)
        connection_table.done()

    agent_table = table.table("port_agent")
    agent: PortAgentSpec | None = None
    if connection is not None and connection.type == "port_agent":
        if agent_table is not None:
            table.bad(
                "port_agent",
                "does not apply: connection.type = 'port_agent' attaches to an "
                "agent that runs on its own; the station starts none",
            )
    else:
        agent = _port_agent(
            agent_table or _Table({}, table.key("port_agent"), table.problems),
            name or "instrument",
            data_dir,
        )
        if agent_table is not None:
            agent_table.done()

    parameters = table.raw_table("parameters")
    schedules = table.raw_table("schedules")
    autosample = table.boolean("autosample", False)
    chosen = _instrument_sinks(table, sinks)
    if make_driver is not None and parameters is not None and schedules is not None:
        _check_startup(
            table,
            str(driver_path),
            make_driver,
            {"parameters": parameters, "scheduler": schedules},
            autosample,
        )

    if (
        name is None
        or make_driver is None
        or connection is None
        or parameters is None
        or schedules is None
        or chosen is None
    ):
        return None
    if connection.type != "port_agent" and agent is None:
        return None
    return InstrumentSpec(
        name=name,
        driver=str(driver_path),
        make_driver=make_driver,
        connection=connection,
        port_agent=agent,
        parameters=parameters,
        schedules=schedules,
        autosample=autosample,
        sinks=chosen,
    )


def _instrument_sinks(
    table: _Table, sinks: Mapping[str, SinkSpec]
) -> tuple[str, ...] | None:
    given = table.raw("sinks")
    if given is _ABSENT:
        return tuple(sinks)
    if not isinstance(given, list) or not all(isinstance(s, str) for s in given):
        table.bad("sinks", f"must be an array of sink names, not {_show(given)}")
        return None
    unknown = [s for s in given if s not in sinks]
    if unknown:
        defined = ", ".join(sinks) or "none (add [sinks.NAME] tables)"
        table.bad(
            "sinks",
            f"no sink named {', '.join(repr(s) for s in unknown)}; defined sinks: "
            f"{defined}",
        )
        return None
    return tuple(dict.fromkeys(given))


def _connection(table: _Table) -> ConnectionSpec | None:
    kind = table.string(
        "type",
        None,
        choices=CONNECTION_TYPES,
        required=f"one of {', '.join(CONNECTION_TYPES)}",
    )
    if kind == "tcp":
        host = table.string(
            "host", None, required="host name or address of the device server"
        )
        port = table.integer(
            "port",
            None,
            minimum=1,
            maximum=65535,
            required="TCP port of the instrument on the device server",
        )
        if host is None or port is None:
            return None
        escaped = host.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")
        return ConnectionSpec("tcp", endpoint=f"tcp:host={escaped}:port={port}")
    if kind == "serial":
        return _serial(table)
    if kind == "simulator":
        return _simulator(table)
    if kind == "endpoint":
        endpoint = table.string(
            "endpoint",
            None,
            required="a client endpoint string, e.g. 'datalog:FILE:speed=1' or "
            "'tcp:host=H:port=P'",
        )
        if endpoint is None or not _check_client(table, "endpoint", endpoint):
            return None
        return ConnectionSpec("endpoint", endpoint=endpoint)
    if kind == "port_agent":
        host = table.string("host", "127.0.0.1")
        data_port = table.integer(
            "data_port",
            None,
            minimum=1,
            maximum=65535,
            required="the agent's data port",
        )
        command_port = table.integer(
            "command_port",
            None,
            minimum=1,
            maximum=65535,
            required="the agent's command port",
        )
        if host is None or data_port is None or command_port is None:
            return None
        return ConnectionSpec(
            "port_agent", existing_agent=ExistingAgent(host, data_port, command_port)
        )
    return None


_SERIAL_KEYS: Final = ("device", "baudrate", "bytesize", "parity", "stopbits", "flow")


def _serial(table: _Table) -> ConnectionSpec | None:
    from instrumentd.connection import InstrumentConnectionError, validate_config

    # The driver side already checks serial settings and builds the
    # endpoint string from them; use it rather than a second copy of the
    # rules, and point its error at our key.
    given: dict[str, object] = {"method": "serial"}
    for key in _SERIAL_KEYS:
        value = table.raw(key)
        if value is not _ABSENT:
            given[key] = value
    try:
        checked = validate_config(given)
    except InstrumentConnectionError as e:
        key = e.key or "type"
        message = str(e).removeprefix("connection config: ")
        message = message.replace(" for method 'serial'", "")
        table.bad(key, message)
        return None
    return ConnectionSpec("serial", endpoint=checked.instrument)


def _simulator(table: _Table) -> ConnectionSpec | None:
    from instrumentd.simulator import (
        SIMULATOR_MODELS,
        SimulatorSettings,
        UnknownModelError,
        simulator_class,
    )

    models = ", ".join(sorted(SIMULATOR_MODELS))
    model = table.string(
        "model", None, required=f"the simulated instrument, one of {models}"
    )
    if model is not None:
        try:
            simulator_class(model)
        except UnknownModelError:
            table.bad("model", f"{model!r} is not a simulator; valid choices: {models}")
            model = None
    time_scale = table.number("time_scale", 1.0, above=0)
    baud = table.integer("baud", 0, minimum=0)
    echo = table.boolean("echo", True)
    seed = table.integer("seed", 0)
    serial_number = table.integer("serial_number", None, minimum=1, maximum=99999999)
    listen: str | None = table.string("listen", _LOOPBACK_ANY)
    if listen is not None and not _check_server(table, "listen", listen):
        listen = None
    if model is None or listen is None:
        return None
    try:
        settings = SimulatorSettings(
            baud=baud,
            echo=echo,
            time_scale=time_scale,
            seed=seed,
            serial_number=serial_number,
        )
    except ValueError as e:
        table.bad("type", str(e))
        return None
    return ConnectionSpec(
        "simulator", simulator=SimulatorSpec(model, settings, listen=listen)
    )


def _port_agent(table: _Table, name: str, data_dir: str) -> PortAgentSpec | None:
    from instrumentd.portagent.options import DEFAULT_LISTENER, MIN_CLIENT_BUFFER

    mode = table.string("mode", "child", choices=AGENT_MODES)
    listeners: dict[str, tuple[str, ...]] = dict.fromkeys(
        _LISTENER_KINDS, (DEFAULT_LISTENER,)
    )
    given = table.table("listeners")
    if given is not None:
        for kind in _LISTENER_KINDS:
            value = given.raw(kind)
            if value is _ABSENT:
                continue
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(
                isinstance(v, str) for v in values
            ):
                given.bad(
                    kind,
                    "must be a server endpoint string, an array of them, or 'none'",
                )
                continue
            kept = [v for v in values if v != "none"]
            if all(_check_server(given, kind, v) for v in kept):
                listeners[kind] = tuple(kept)
        given.done()
    for kind in ("data", "command"):
        # The station's driver reaches the agent through the first data and
        # command listeners, over TCP.
        where = given or table
        key = kind if given is not None else "listeners"
        if not listeners[kind]:
            where.bad(
                key, f"the {kind} listener cannot be off: the driver connects to it"
            )
        elif listeners[kind][0].split(":", 1)[0].lower() not in ("tcp", "tcp6"):
            where.bad(
                key,
                f"the first {kind} listener must be TCP (tcp:PORT...), not "
                f"{listeners[kind][0]!r}: the station's driver connects to it "
                "over TCP",
            )
    spec = PortAgentSpec(
        mode=str(mode),
        listeners=listeners,
        datalog_dir=str(table.string("datalog_dir", os.path.join(data_dir, "datalog"))),
        rotate=str(table.string("rotate", "daily", choices=_ROTATIONS)),
        rotate_size=table.size("rotate_size", 0),
        client_buffer=table.size("client_buffer", 4 << 20, minimum=MIN_CLIENT_BUFFER),
        heartbeat=table.number("heartbeat", 10.0, minimum=0),
        disconnect_grace=table.number("disconnect_grace", 10.0, minimum=0),
        max_reconnect_delay=table.number("max_reconnect_delay", 60.0, above=0),
        launch_timeout=table.number("launch_timeout", 30.0, above=0),
        log_file=table.string(
            "log_file", os.path.join(data_dir, "logs", f"port-agent-{name}.log")
        ),
    )
    if spec.mode == "in-process" and table.has("log_file"):
        table.bad(
            "log_file",
            "does not apply to an in-process agent: it logs to the station's log",
        )
    return spec


# -- drivers --------------------------------------------------------------------------


def _import(path: str) -> object:
    """
    Import ``module:attribute`` or ``module.attribute``.

    :raises ValueError: saying what could not be found.
    """
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(
            f"{path!r} is not an import path; write 'package.module:ClassName'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {module_name!r}: {e}") from None
    except Exception as e:
        raise ValueError(
            f"importing module {module_name!r} failed: {type(e).__name__}: {e}"
        ) from None
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no {attribute!r}") from None
    return found


def _driver_factory(table: _Table, path: str) -> DriverFactory | None:
    from instrumentd.driver.driver import InstrumentDriver
    from instrumentd.driver.protocol import InstrumentProtocol
    from instrumentd.interfaces import IInstrumentDriver

    try:
        found = _import(path)
    except ValueError as e:
        table.bad("driver", str(e))
        return None
    if isinstance(found, type) and issubclass(found, InstrumentProtocol):
        protocol_class = found

        def wrap(
            connection: IInstrumentConnection, events: EventBus, clock: IReactorTime
        ) -> IInstrumentDriver:
            return InstrumentDriver(
                connection, protocol_class, events=events, clock=clock
            )

        return wrap
    if isinstance(found, type) and IInstrumentDriver.implementedBy(found):
        driver_class = found
        try:
            inspect.signature(driver_class).bind(None, events=None, clock=None)
        except TypeError:
            table.bad(
                "driver",
                f"{path!r} cannot be built as Driver(connection, events=..., "
                "clock=...), which the station needs",
            )
            return None
        except ValueError:
            # No signature to inspect (a C type): try it when building.
            pass

        def build(
            connection: IInstrumentConnection, events: EventBus, clock: IReactorTime
        ) -> IInstrumentDriver:
            # implementedBy says what it provides, not how it is built;
            # the signature was checked above.
            make: Callable[..., IInstrumentDriver] = driver_class
            return make(connection, events=events, clock=clock)

        return build
    table.bad(
        "driver",
        f"{path!r} is {_describe_object(found)}, not a driver class: give an "
        "InstrumentProtocol subclass (the station wraps it in an "
        "InstrumentDriver) or a class implementing IInstrumentDriver",
    )
    return None


def _describe_object(found: object) -> str:
    if isinstance(found, type):
        return f"the class {found.__module__}.{found.__qualname__}"
    return f"a {type(found).__name__}"


def _check_startup(
    table: _Table,
    driver_path: str,
    make_driver: DriverFactory,
    init_params: Mapping[str, object],
    autosample: bool,
) -> None:
    """
    Try the startup parameters, schedules and autosample against a driver
    that is built and never connected, so a typo fails now rather than
    when the instrument comes up.
    """
    from twisted.internet.testing import MemoryReactorClock

    from instrumentd.connection import PortAgentConnection
    from instrumentd.driver.errors import InstrumentError, InstrumentParameterError
    from instrumentd.driver.events import EventBus

    clock = MemoryReactorClock()
    try:
        driver = make_driver(PortAgentConnection(reactor=clock), EventBus(clock), clock)
    except Exception as e:
        table.bad(
            "driver",
            f"building {driver_path!r} failed: {type(e).__name__}: {e}",
        )
        return
    try:
        driver.set_init_params(init_params)
    except InstrumentParameterError as e:
        where = e.parameter
        if where.startswith("scheduler."):
            key = "schedules." + where.removeprefix("scheduler.")
        elif where in ("parameters", "scheduler"):
            key = "parameters"
        else:
            key = f"parameters.{where}"
        message = e.message.removeprefix(f"parameter {where}: ")
        table.bad(key, message)
    except InstrumentError as e:
        table.bad("parameters", e.message)
    if autosample:
        metadata = driver.get_config_metadata()
        commands = metadata.get("commands")
        if isinstance(commands, Mapping) and "start_autosample" not in commands:
            table.bad(
                "autosample",
                f"the driver {driver_path!r} has no start_autosample command; "
                f"its commands: {', '.join(sorted(commands))}",
            )
