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

from instrumentd.station.config._errors import ConfigError
from instrumentd.station.config._parse import load_config, parse_config, parse_toml
from instrumentd.station.config._specs import (
    AGENT_MODES,
    CONNECTION_TYPES,
    DEFAULT_API,
    DEFAULT_DATA_DIR,
    SINK_TYPES,
    ConnectionSpec,
    DriverFactory,
    ExistingAgent,
    InstrumentSpec,
    PortAgentSpec,
    SimulatorSpec,
    SinkSpec,
    StationConfig,
)

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
