# -*- test-case-name: tests.test_station_config -*-
"""
The ``[[instruments]]`` tables.
"""

from __future__ import annotations

from collections.abc import Mapping

from instrumentd.station.config._connection import _connection
from instrumentd.station.config._drivers import _check_startup, _driver_factory
from instrumentd.station.config._errors import _Problems
from instrumentd.station.config._port_agent import _port_agent
from instrumentd.station.config._specs import (
    _NAME,
    CONNECTION_TYPES,
    InstrumentSpec,
    PortAgentSpec,
    SinkSpec,
)
from instrumentd.station.config._table import (
    _ABSENT,
    _kind,
    _name_problem,
    _show,
    _Table,
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
