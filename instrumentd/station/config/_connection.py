# -*- test-case-name: tests.test_station_config -*-
"""
An instrument's ``connection`` table, of each type.
"""

from __future__ import annotations

from typing import Final

from instrumentd.station.config._specs import (
    _LOOPBACK_ANY,
    CONNECTION_TYPES,
    ConnectionSpec,
    ExistingAgent,
    SimulatorSpec,
)
from instrumentd.station.config._table import (
    _ABSENT,
    _check_client,
    _check_server,
    _Table,
)


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
