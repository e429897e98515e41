# -*- test-case-name: tests.test_station_config -*-
"""
Reading a station configuration: the file, the TOML, and the
``[station]`` and ``[api]`` tables; the rest is checked by its section's module.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from instrumentd.station.apisite import described_interface, is_loopback
from instrumentd.station.config._errors import ConfigError, Problems
from instrumentd.station.config._instruments import _instruments
from instrumentd.station.config._keys import API, POSITION, STATION, TOP
from instrumentd.station.config._sinks import _sinks
from instrumentd.station.config._specs import DEFAULT_DATA_DIR, StationConfig
from instrumentd.station.config._table import Table


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


def read_toml_file(path: str) -> dict[str, Any]:
    """
    Read a TOML configuration file.

    :param path: the file.
    :returns: the parsed document.
    :raises ConfigError: for a file that cannot be read, is not UTF-8 text,
        or is not TOML.
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
    return parse_toml(text, path)


def load_config(
    path: str,
    *,
    api: str | None = None,
    token_file: str | None = None,
    data_dir: str | None = None,
    api_open: bool | None = None,
    access_log: bool | None = None,
) -> StationConfig:
    """
    Read and check a station configuration file.

    :param path: the TOML file.
    :param api: overrides ``api.listen`` (``--api``).
    :param token_file: overrides ``api.token_file`` (``--token-file``).
    :param data_dir: overrides ``station.data_dir`` (``--data-dir``).
    :param api_open: overrides ``api.open`` (``--api-open``).
    :param access_log: overrides ``api.access_log`` (``--access-log``).
    :returns: the checked configuration.
    :raises ConfigError: for a file that cannot be read, is not TOML, or
        has problems (all of them listed).
    """
    return parse_config(
        read_toml_file(path),
        path,
        api=api,
        token_file=token_file,
        data_dir=data_dir,
        api_open=api_open,
        access_log=access_log,
    )


def parse_config(
    data: Mapping[str, Any],
    source: str,
    *,
    api: str | None = None,
    token_file: str | None = None,
    data_dir: str | None = None,
    api_open: bool | None = None,
    access_log: bool | None = None,
) -> StationConfig:
    """
    Check a parsed station configuration.

    :param data: the parsed TOML document.
    :param source: where it came from, for messages.
    :param api: overrides ``api.listen``.
    :param token_file: overrides ``api.token_file``.
    :param data_dir: overrides ``station.data_dir``.
    :param api_open: overrides ``api.open``.
    :param access_log: overrides ``api.access_log``.
    :returns: the checked configuration.
    :raises ConfigError: listing every problem.
    """
    problems = Problems()
    top = Table(data, "", problems, TOP)

    station = top.table("station", STATION)
    station_settings = station.read_all()
    configured_data_dir = station_settings["data_dir"] or DEFAULT_DATA_DIR
    station_name = station_settings["name"]
    position = None
    if station.has("position"):
        position_table = station.table(
            "position", POSITION, station_settings["position"]
        )
        position = position_table.read_all()
        position_table.done()
        if None in position.values():
            position = None
    station.done()
    if data_dir is not None:
        configured_data_dir = data_dir

    api_table = top.table("api", API)
    settings = api_table.read_all()
    api_table.done()
    listen = settings["listen"]
    if api is not None:
        verdict = API["listen"].check_value(api)
        if verdict.problem is not None:
            api_table.bad("--api", verdict.problem)
        listen = api
    configured_token_file = settings["token_file"]
    token_key = "token_file"
    if token_file is not None:
        configured_token_file, token_key = token_file, "--token-file"
    token = (
        _read_token(api_table, token_key, configured_token_file)
        if configured_token_file is not None
        else None
    )

    configured_open = settings["open"] if api_open is None else api_open
    if token is None and configured_token_file is None and not configured_open:
        interface = described_interface(listen)
        if interface is not None and not is_loopback(interface):
            where = repr(interface) if interface else "every interface"
            api_table.bad(
                "--api" if api is not None else "listen",
                f"{listen!r} listens on {where}, beyond loopback, with no "
                "token: anyone who can reach it could change the instruments; "
                "set api.token_file, listen on 127.0.0.1, or say it is meant "
                "to be open with api.open = true (--api-open)",
            )
    sinks = _sinks(top, configured_data_dir)
    # Said even when the sink has problems of its own, so that one run
    # reports everything.
    given = data.get("sinks")
    mqtt = [
        name
        for name, entry in (given.items() if isinstance(given, dict) else ())
        if isinstance(entry, dict) and entry.get("type") == "mqtt"
    ]
    if mqtt and station_name is None:
        problems.add(
            f"{top.key('sinks')}.{mqtt[0]}",
            'an MQTT sink needs the station\'s name, [station] name = "..." '
            "(its topics are instrumentd/<station>/...)",
        )
    instruments = _instruments(top, configured_data_dir, sinks)
    top.done()
    if problems.found:
        raise ConfigError(source, problems.found)
    return StationConfig(
        source=source,
        data_dir=configured_data_dir,
        api=listen,
        token=token,
        token_file=configured_token_file,
        api_open=configured_open,
        api_idle_timeout=settings["idle_timeout"],
        api_max_connections=settings["max_connections"],
        api_max_body=settings["max_body"],
        api_access_log=settings["access_log"] if access_log is None else access_log,
        sinks=sinks.specs,
        instruments=tuple(instruments),
        startup_window=station_settings["startup_window"],
        startup_timeout=station_settings["startup_timeout"],
        name=station_name,
        position=position,
    )


def _read_token(table: Table, name: str, path: str) -> str | None:
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
