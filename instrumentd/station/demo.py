# -*- test-case-name: tests.test_station_config -*-
"""
The demo station that ``twistd -n instrumentd`` runs when it is given no
configuration: a small simulated mooring inside the station (a Sea-Bird
SBE 37-SMP CTD, an Aanderaa 4831 oxygen optode and a Teledyne RDI Workhorse
ADCP), a port agent for each,
their drivers autosampling, samples written as JSON lines under
``./instrumentd-data``, and the HTTP API on loopback.

It is an ordinary configuration (:data:`DEMO_CONFIG`), checked like any
file, so ``doc/station.md`` can show it as a starting point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from instrumentd.station.config import StationConfig

__all__ = ["DEMO_CONFIG", "DEMO_SOURCE", "demo_config"]

#: What messages call the demo's configuration, in place of a file name.
DEMO_SOURCE: Final = "<built-in demo>"

#: The demo station's configuration.
DEMO_CONFIG: Final = """\
# The built-in demo station of `twistd -n instrumentd`.

[station]
data_dir = "instrumentd-data"

[api]
listen = "tcp:8700:interface=127.0.0.1"

[sinks.files]
type = "jsonlines"
# <data_dir>/samples/<instrument>/<stream>/<YYYY-MM-DD>.jsonl

[[instruments]]
name = "SBE37-DEMO"
driver = "instrumentd.instruments.seabird.sbe37smp.driver:SBE37Protocol"
autosample = true
parameters = { INTERVAL = 5 }

[instruments.connection]
type = "simulator"
model = "sbe37"

[instruments.port_agent]
mode = "child"

[[instruments]]
name = "OPTODE-DEMO"
driver = "instrumentd.instruments.aanderaa.optode.driver:OptodeProtocol"
autosample = true

[instruments.connection]
type = "simulator"
model = "optode"

[instruments.port_agent]
mode = "child"

[[instruments]]
name = "ADCP-DEMO"
driver = "instrumentd.instruments.teledyne.workhorse.driver:WorkhorseProtocol"
autosample = true
# An ensemble of 30 cells every 10 s, in earth coordinates.
parameters = { TE = "00:00:10.00", WN = 30, EX = "11111" }

[instruments.connection]
type = "simulator"
model = "workhorse"

[instruments.port_agent]
mode = "child"
"""


def demo_config(
    *,
    api: str | None = None,
    token_file: str | None = None,
    data_dir: str | None = None,
    api_open: bool | None = None,
    access_log: bool | None = None,
) -> StationConfig:
    """
    The demo station's checked configuration.

    :param api: overrides the API endpoint (``--api``).
    :param token_file: a token file to require (``--token-file``).
    :param data_dir: overrides where data goes (``--data-dir``).
    :param api_open: allows an API beyond loopback without a token
        (``--api-open``).
    :param access_log: logs each API request (``--access-log``).
    :returns: the configuration.
    :raises instrumentd.station.config.ConfigError: if an override is bad.
    """
    from instrumentd.station.config import parse_config, parse_toml

    return parse_config(
        parse_toml(DEMO_CONFIG, DEMO_SOURCE),
        DEMO_SOURCE,
        api=api,
        token_file=token_file,
        data_dir=data_dir,
        api_open=api_open,
        access_log=access_log,
    )
