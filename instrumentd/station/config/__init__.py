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
nothing is started.  Every problem is found in one pass: a bad key never
hides another, and each startup parameter and schedule is tried on its
own.

Every key is declared once, in :mod:`~instrumentd.station.config._keys`,
with a :class:`~instrumentd.station.config.schema.Key` giving its type,
bounds, choices, default and documentation; the checker reads each table
against its :class:`~instrumentd.station.config.schema.Section`, and the
key reference in ``doc/station.md`` is generated from the same
declarations.  The modules:

- :mod:`~instrumentd.station.config.schema`: how a key is declared and
  checked;
- ``_keys``: the declarations;
- ``_table``: reading one table against its section, into the problems;
- ``_parse``: the file, ``[station]`` and ``[api]``;
- ``_sinks``, ``_instruments``, ``_connection``, ``_port_agent``,
  ``_drivers``: each section's checks beyond single keys, and the specs
  built from it;
- ``_specs``: the checked configuration the station runs from;
- ``_collector``: the shore collector's own file, ``[collector]``;
- ``_errors``: :class:`ConfigError`.
"""

from __future__ import annotations

from instrumentd.station.config._collector import (
    CollectorConfig,
    load_collector_config,
    parse_collector_config,
)
from instrumentd.station.config._errors import ConfigError
from instrumentd.station.config._keys import SECTIONS
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
    "SECTIONS",
    "SINK_TYPES",
    "CollectorConfig",
    "ConfigError",
    "ConnectionSpec",
    "DriverFactory",
    "ExistingAgent",
    "InstrumentSpec",
    "PortAgentSpec",
    "SimulatorSpec",
    "SinkSpec",
    "StationConfig",
    "load_collector_config",
    "load_config",
    "parse_collector_config",
    "parse_config",
    "parse_toml",
]
