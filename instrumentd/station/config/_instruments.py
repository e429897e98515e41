# -*- test-case-name: tests.test_station_config -*-
"""
The ``[[instruments]]`` tables.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from instrumentd.station.config._connection import _connection
from instrumentd.station.config._drivers import _check_startup, _driver_factory
from instrumentd.station.config._keys import CONNECTION, INSTRUMENT, PORT_AGENT
from instrumentd.station.config._port_agent import _port_agent
from instrumentd.station.config._qc import _qc, driver_streams
from instrumentd.station.config._schedules import _schedules
from instrumentd.station.config._sinks import Sinks, case_clash
from instrumentd.station.config._specs import InstrumentSpec, PortAgentSpec
from instrumentd.station.config._table import ABSENT, Table
from instrumentd.station.config.schema import kind_of, show


def _instruments(top: Table, data_dir: str, sinks: Sinks) -> list[InstrumentSpec]:
    given = top.raw("instruments")
    if given is ABSENT:
        top.bad(
            "instruments",
            "missing: the station needs at least one [[instruments]] table",
        )
        return []
    if not isinstance(given, list):
        top.bad(
            "instruments",
            f"must be an array of tables ([[instruments]]), not {kind_of(given)}",
        )
        return []
    if not given:
        top.bad("instruments", "empty: the station needs at least one instrument")
    problems = top.problems
    found: list[InstrumentSpec] = []
    # A station of thousands of instruments has a handful of distinct
    # drivers and startup configurations: each is tried once, not once per
    # instrument (that took 6 ms an instrument, 30 s for 5,000).
    checked: _Checked = {}
    names: dict[str, int] = {}
    folded: dict[str, int] = {}
    for index, entry in enumerate(given):
        path = f"instruments[{index}]"
        if not isinstance(entry, dict):
            problems.add(path, f"must be a table, not {kind_of(entry)} ({show(entry)})")
            continue
        table = Table(entry, path, problems, INSTRUMENT)
        before = len(problems)
        spec = _instrument(table, data_dir, sinks, checked)
        table.done()
        name = entry.get("name")
        if isinstance(name, str):
            if name in names:
                table.bad(
                    "name",
                    f"{name!r} is already the name of instruments[{names[name]}]",
                )
            elif name.lower() in folded:
                other = folded[name.lower()]
                table.bad(
                    "name",
                    case_clash(name, given[other]["name"], f"instruments[{other}]"),
                )
            else:
                names[name] = index
                folded[name.lower()] = index
        if spec is not None and len(problems) == before:
            found.append(spec)
    return found


#: Startup configurations found good, by what was tried: the driver's
#: streams; and QC tables found good: what they give.
_Checked = dict[str, "Mapping[str, Collection[str]] | None"]


def _check_key(
    driver_path: str,
    parameters: Mapping[str, object],
    schedules: Mapping[str, object],
    autosample: bool,
) -> str | None:
    """
    What a driver check depends on, as one string; ``None`` if it cannot
    be told apart reliably (then the check is not shared).
    """
    try:
        return json.dumps(
            [driver_path, parameters, schedules, autosample],
            sort_keys=True,
            default=_unshareable,
        )
    except (TypeError, ValueError):
        return None


def _unshareable(value: Any) -> object:
    raise TypeError(f"not JSON: {type(value).__name__}")


def _instrument(
    table: Table, data_dir: str, sinks: Sinks, checked: _Checked | None = None
) -> InstrumentSpec | None:
    before = len(table.problems)
    values = table.read_all()
    name, driver_path = values["name"], values["driver"]
    make_driver = _driver_factory(table, driver_path) if driver_path else None

    connection = None
    if values["connection"] is not None:
        connection = _connection(
            table.table("connection", CONNECTION, values["connection"])
        )

    agent: PortAgentSpec | None = None
    if connection is not None and connection.type == "port_agent":
        if table.has("port_agent"):
            table.bad(
                "port_agent",
                "does not apply: connection.type = 'port_agent' attaches to an "
                "agent that runs on its own; the station starts none",
            )
    else:
        agent = _port_agent(
            table.table("port_agent", PORT_AGENT, values["port_agent"]),
            name or "instrument",
            data_dir,
        )

    parameters = values["parameters"]
    schedules = values["schedules"]
    chosen = _instrument_sinks(table, values["sinks"], sinks)
    jobs = _schedules(table, schedules or {})
    streams = None
    if make_driver is not None:
        key = _check_key(
            str(driver_path), parameters or {}, jobs, bool(values["autosample"])
        )
        if checked is not None and key is not None and key in checked:
            streams = checked[key]
        else:
            before_check = len(table.problems)
            driver = _check_startup(
                table,
                str(driver_path),
                make_driver,
                parameters or {},
                jobs,
                autosample=bool(values["autosample"]),
            )
            if driver is not None:
                streams = driver_streams(driver)
                if (
                    checked is not None
                    and key is not None
                    and len(table.problems) == before_check
                ):
                    # Only a good check is shared: a bad one's problems are
                    # noted under each instrument's own key path.
                    checked[key] = streams
    # With no qc table the shipped default ranges of the driver's streams
    # apply; a driver that does not declare its streams has none.
    qc: dict[str, Any] = {}
    if table.has("qc") or streams is not None:
        qc_key = _check_key("qc", {"streams": streams}, {"qc": values["qc"]}, False)
        if checked is not None and qc_key is not None and qc_key in checked:
            qc = checked[qc_key]  # type: ignore[assignment]
        else:
            before_qc = len(table.problems)
            qc = _qc(table, values["qc"], streams)
            if (
                checked is not None
                and qc_key is not None
                and len(table.problems) == before_qc
            ):
                checked[qc_key] = qc  # type: ignore[assignment]
    if len(table.problems) > before or connection is None or chosen is None:
        return None
    if make_driver is None or (connection.type != "port_agent" and agent is None):
        return None
    return InstrumentSpec(
        name=name,
        driver=str(driver_path),
        make_driver=make_driver,
        connection=connection,
        port_agent=agent,
        parameters=parameters or {},
        schedules=schedules or {},
        autosample=values["autosample"],
        sinks=chosen,
        qc=qc,
    )


def _instrument_sinks(
    table: Table, given: object, sinks: Sinks
) -> tuple[str, ...] | None:
    if not table.has("sinks"):
        return tuple(sinks.specs)
    if not isinstance(given, list):
        return None
    if sinks.names is None:
        # The sinks table was refused: there is nothing to compare with.
        return None
    unknown = [s for s in given if s not in sinks.names]
    if unknown:
        defined = ", ".join(sinks.names) or "none (add [sinks.NAME] tables)"
        table.bad(
            "sinks",
            f"no sink named {', '.join(repr(s) for s in unknown)}; defined sinks: "
            f"{defined}",
        )
        return None
    return tuple(dict.fromkeys(given))
