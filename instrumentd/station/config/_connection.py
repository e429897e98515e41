# -*- test-case-name: tests.test_station_config -*-
"""
An instrument's ``connection`` table, of each type: checked against the
type's declared keys (:data:`~instrumentd.station.config._keys.CONNECTIONS`)
and turned into the port agent's instrument link.
"""

from __future__ import annotations

from typing import Any

from instrumentd.station.config._keys import CONNECTIONS
from instrumentd.station.config._specs import (
    ConnectionSpec,
    ExistingAgent,
    SimulatorSpec,
)
from instrumentd.station.config._table import Table


def _escape(text: str) -> str:
    # Endpoint strings split on ':' and '='; a backslash escapes them.
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def _connection(table: Table) -> ConnectionSpec | None:
    kind = table.read("type")
    section = CONNECTIONS.get(kind) if kind is not None else None
    if section is None:
        # Without a type it is not known which keys belong; still check
        # those given, so fixing the type brings no new problems.
        table.read_untyped(list(CONNECTIONS.values()))
        return None
    typed = Table(table.data, table.path, table.problems, section)
    before = len(table.problems)
    values = typed.read_all()
    typed.done()
    if len(table.problems) > before:
        return None
    return _BUILDERS[kind](typed, values)


def _tcp(table: Table, values: dict[str, Any]) -> ConnectionSpec:
    return ConnectionSpec(
        "tcp", endpoint=f"tcp:host={_escape(values['host'])}:port={values['port']}"
    )


def _serial(table: Table, values: dict[str, Any]) -> ConnectionSpec:
    stopbits = values["stopbits"]
    flow = values["flow"]
    endpoint = (
        f"serial:{_escape(values['device'])}:baudrate={values['baudrate']}"
        f":bytesize={values['bytesize']}"
        # Every parity's name and letter start with the letter.
        f":parity={values['parity'][0].upper()}"
        f":stopbits={int(stopbits) if stopbits != 1.5 else 1.5}"
        f":rtscts={int(flow == 'rtscts')}:xonxoff={int(flow == 'xonxoff')}"
    )
    return ConnectionSpec("serial", endpoint=endpoint)


def _option_text(value: object) -> str:
    # Simulator options are text, as on the command line; TOML's booleans
    # become the yes/no an instrument's own settings use.
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _simulator(table: Table, values: dict[str, Any]) -> ConnectionSpec | None:
    from instrumentd.simulator import (
        SIMULATOR_MODELS,
        SimulatorSettings,
        check_simulator,
    )

    options = values.get("options") or {}
    try:
        settings = SimulatorSettings(
            baud=values["baud"],
            echo=values["echo"],
            time_scale=values["time_scale"],
            seed=values["seed"],
            serial_number=values["serial_number"],
            options={
                str(name).lower(): _option_text(value)
                for name, value in options.items()
            },
        )
        model = values["model"]
        if model in SIMULATOR_MODELS or ":" in str(model):  # else reported
            check_simulator(model, settings)
    except ValueError as e:
        # A bound the declarations missed, or an option the model does not
        # have or cannot take (the model's own message names it).
        table.bad("options" if options else "type", str(e))
        return None
    return ConnectionSpec(
        "simulator",
        simulator=SimulatorSpec(values["model"], settings, listen=values["listen"]),
    )


def _endpoint(table: Table, values: dict[str, Any]) -> ConnectionSpec:
    return ConnectionSpec("endpoint", endpoint=values["endpoint"])


def _existing_agent(table: Table, values: dict[str, Any]) -> ConnectionSpec:
    return ConnectionSpec(
        "port_agent",
        existing_agent=ExistingAgent(
            values["host"],
            values["data_port"],
            values["command_port"],
            token_file=values["token_file"],
            tokenless_data=values["tokenless_data"],
        ),
    )


_BUILDERS = {
    "tcp": _tcp,
    "serial": _serial,
    "simulator": _simulator,
    "endpoint": _endpoint,
    "port_agent": _existing_agent,
}
