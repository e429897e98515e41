# -*- test-case-name: tests.test_station_config -*-
"""
The checked station configuration: what the checker gives the station.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from instrumentd.portagent.options import (
    DEFAULT_CLIENT_BUFFER,
    DEFAULT_CLIENT_MEMORY,
    DEFAULT_CLIENT_STALL_TIMEOUT,
)
from instrumentd.station._sink import DEFAULT_BATCH_SIZE
from instrumentd.station.spool import DEFAULT_MAX_BYTES

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from instrumentd.driver.events import EventBus
    from instrumentd.interfaces import IInstrumentConnection, IInstrumentDriver
    from instrumentd.portagent.options import PortAgentConfig
    from instrumentd.qc import StreamQCSpec
    from instrumentd.simulator import SimulatorSettings


#: Where the API listens unless the config or ``--api`` says otherwise.
DEFAULT_API: Final = "tcp:8700:interface=127.0.0.1"

#: Where data goes unless the config or ``--data-dir`` says otherwise.
DEFAULT_DATA_DIR: Final = "instrumentd-data"

#: How an instrument is reached.
CONNECTION_TYPES: Final = ("tcp", "serial", "simulator", "endpoint", "port_agent")

#: Where an instrument's port agent runs.
AGENT_MODES: Final = ("child", "in-process")

#: The kinds of sink.
SINK_TYPES: Final = ("jsonlines", "http", "mqtt")
#: Instruments brought up at once, by default.
DEFAULT_STARTUP_WINDOW: Final = 200
#: Seconds an instrument coming up may hold up the next, by default.
DEFAULT_STARTUP_TIMEOUT: Final = 30.0
#: The most files a JSON-lines sink may be told to keep open: the open-file
#: limit of a station host is often 20,000, and each instrument holds a
#: link and a datalog too.
MAX_OPEN_FILES: Final = 16384

#: Loopback on a free port: where a simulator serves by default.
_LOOPBACK_ANY: Final = "tcp:0:interface=127.0.0.1"

_ROTATIONS: Final = ("daily", "hourly", "none")
# Names become file and directory names (datalogs, sample files) and URL
# path segments: the port agent's rule.
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

#: Builds an instrument's driver: ``(connection, events, clock)``.
DriverFactory = Callable[
    ["IInstrumentConnection", "EventBus", "IReactorTime"], "IInstrumentDriver"
]


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
    :ivar token_file: its token file, or ``None``.
    :ivar tokenless_data: whether its data port takes no token.
    """

    host: str
    data_port: int
    command_port: int
    token_file: str | None = None
    tokenless_data: bool = False


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
    :ivar client_memory: bytes all clients together may have queued.
    :ivar client_stall_timeout: seconds a client may take nothing while
        data waits for it.
    :ivar heartbeat: seconds between heartbeats; 0 is off.
    :ivar disconnect_grace: seconds before a down link is announced.
    :ivar max_reconnect_delay: cap of the instrument link's backoff.
    :ivar launch_timeout: seconds a child agent has to get ready.
    :ivar log_file: where a child agent logs.
    :ivar token_file: the agent's token file, or ``None``.
    :ivar tokenless: listener kinds that take no token.
    :ivar allow_insecure: allow listeners beyond loopback with neither TLS
        nor a token.
    """

    mode: str
    listeners: Mapping[str, tuple[str, ...]]
    datalog_dir: str
    rotate: str = "daily"
    rotate_size: int = 0
    client_buffer: int = DEFAULT_CLIENT_BUFFER
    client_memory: int = DEFAULT_CLIENT_MEMORY
    client_stall_timeout: float = DEFAULT_CLIENT_STALL_TIMEOUT
    heartbeat: float = 10.0
    disconnect_grace: float = 10.0
    max_reconnect_delay: float = 60.0
    launch_timeout: float = 30.0
    log_file: str | None = None
    token_file: str | None = None
    tokenless: tuple[str, ...] = ()
    allow_insecure: bool = False

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
            client_memory=self.client_memory,
            client_stall_timeout=self.client_stall_timeout,
            token_file=self.token_file,
            tokenless=frozenset(self.tokenless),
            allow_insecure=self.allow_insecure,
        )


@dataclass(frozen=True)
class SinkSpec:
    """
    A sink: where particles go.

    :ivar name: its name in the config (instruments refer to it).
    :ivar type: one of :data:`SINK_TYPES`.
    :ivar directory: ``jsonlines``: the top directory.
    :ivar flush_interval: ``jsonlines``: seconds a record may wait.
    :ivar max_open_files: ``jsonlines``: the most files open; ``None``
        sizes it to the instruments (see :meth:`open_files_for`).
    :ivar idle_close: ``jsonlines``: seconds a file may take nothing
        before it is closed.
    :ivar url: ``http``: where to POST.
    :ivar spool_dir: ``http``: its spool.
    :ivar batch_size: ``http``: particles waiting that send a POST (a sink that fell behind sends up to ten times as many).
    :ivar batch_interval: ``http``: seconds a batch may wait to fill.
    :ivar timeout: ``http``: seconds to wait for an answer.
    :ivar max_bytes: ``http``: the most bytes its spool may take.
    :ivar headers: ``http``: extra request headers.
    :ivar broker: ``mqtt``: the broker's address.
    :ivar client_id: ``mqtt``: the MQTT client id.
    :ivar username: ``mqtt``: the MQTT user name.
    :ivar password_file: ``mqtt``: the file holding the password (the
        password itself is never in the config).
    :ivar ca_file: ``mqtt``: the CA certificates for ``mqtts://``.
    :ivar cert_file: ``mqtt``: a client certificate.
    :ivar key_file: ``mqtt``: its key.
    :ivar keepalive: ``mqtt``: seconds between pings when idle.
    :ivar session_expiry: ``mqtt``: seconds the broker keeps the session.
    :ivar window: ``mqtt``: messages per instrument in flight at most.
    :ivar registry: ``mqtt``: publish the retained registry (status, meta).
    :ivar remote_commands: ``mqtt``: answer MQTT 5 requests.
    """

    name: str
    type: str
    directory: str | None = None
    flush_interval: float = 1.0
    max_open_files: int | None = None
    idle_close: float = 60.0
    url: str | None = None
    spool_dir: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_interval: float = 1.0
    timeout: float = 10.0
    max_bytes: int = DEFAULT_MAX_BYTES
    headers: Mapping[str, str] = field(default_factory=dict)
    broker: str | None = None
    client_id: str | None = None
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive: int = 30
    session_expiry: int = 0
    window: int = 100
    registry: bool = True
    remote_commands: bool = False

    def open_files_for(self, instruments: int) -> int:
        """
        How many files a JSON-lines sink keeps open: as configured, or one
        per instrument writing to it and 64 more (for the streams a driver
        writes now and then), so a file is not closed and reopened at each
        record however many instruments there are.

        :param instruments: how many instruments write to this sink.
        """
        if self.max_open_files is not None:
            return self.max_open_files
        return min(MAX_OPEN_FILES, instruments + 64)


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
    :ivar qc: stream name to its real-time QC (configured, or the
        driver's default ranges); a stream not in it has none.
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
    qc: Mapping[str, StreamQCSpec] = field(default_factory=dict)

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
    :ivar api_open: whether the API may listen beyond loopback without a
        token (``api.open``).
    :ivar api_idle_timeout: seconds an idle API connection is kept.
    :ivar api_max_connections: API connections open at once.
    :ivar api_max_body: the largest request body the API accepts.
    :ivar api_access_log: whether each API request is logged.
    :ivar startup_window: instruments brought up at once.
    :ivar startup_timeout: seconds an instrument coming up may hold up
        the next.
    :ivar name: the station's name (``station.name``), or ``None``.
    :ivar position: ``{"latitude", "longitude"}`` in degrees
        (``station.position``), or ``None``.
    """

    source: str
    data_dir: str
    api: str
    token: str | None
    token_file: str | None
    sinks: Mapping[str, SinkSpec]
    instruments: tuple[InstrumentSpec, ...]
    api_open: bool = False
    api_idle_timeout: float = 60.0
    api_max_connections: int = 100
    api_max_body: int = 1024 * 1024
    api_access_log: bool = False
    startup_window: int = DEFAULT_STARTUP_WINDOW
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    name: str | None = None
    position: Mapping[str, float] | None = None
