# -*- test-case-name: tests.test_instrumentctl -*-
"""
The one-shot commands of ``instrumentctl``: ``list``, ``status``, ``get``,
``set`` and ``run``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote

from instrumentd.cli._client import StationClient, instrument_path
from instrumentd.cli._exit import Exit, ExitCode
from instrumentd.cli._format import (
    Output,
    cell,
    format_table,
    format_time,
    result_text,
    sample_time,
    sample_values,
)
from instrumentd.station.refusals import user_commands

__all__ = ["COMMANDS", "parse_assignments", "parse_value"]


def parse_value(text: str) -> object:
    """
    A value from the command line: JSON if it parses as JSON (``10``,
    ``true``, ``"10"``, ``[1, 2]``), else the text itself.

    :param text: the text after ``=``.
    :returns: the value.
    """
    try:
        return cast(object, json.loads(text))
    except ValueError:
        return text


def parse_assignments(items: Sequence[str]) -> dict[str, object]:
    """
    ``NAME=VALUE`` items as a dict.

    :param items: the items.
    :returns: name → value (see :func:`parse_value`).
    :raises Exit: USAGE, naming an item without ``=`` or a name.
    """
    values: dict[str, object] = {}
    for item in items:
        name, equals, text = item.partition("=")
        if not equals or not name:
            raise Exit(ExitCode.USAGE, f"expected NAME=VALUE, not {item!r}")
        values[name] = parse_value(text)
    return values


async def _list(
    station: StationClient, options: argparse.Namespace, out: Output
) -> int:
    body = await station.request("GET", "/api/instruments")
    if out.as_json:
        out.json(body)
        return ExitCode.OK
    instruments = body.get("instruments", [])
    if not instruments:
        out.write("no instruments\n")
        return ExitCode.OK
    out.write(
        format_table(
            ["NAME", "STATE", "CONNECTED", "SAMPLES", "LATEST SAMPLE", "PROBLEM"],
            [
                [
                    each.get("name"),
                    each.get("state"),
                    "yes" if each.get("connected") else "no",
                    each.get("samples", 0),
                    format_time(each.get("latest_sample_time")),
                    each.get("problem") or "-",
                ]
                for each in instruments
            ],
        )
    )
    return ExitCode.OK


async def _status(
    station: StationClient, options: argparse.Namespace, out: Output
) -> int:
    body = await station.request("GET", instrument_path(options.name))
    if out.as_json:
        out.json(body)
        return ExitCode.OK
    problem = await _problem(station, options.name)
    driver = (body.get("metadata") or {}).get("driver") or {}
    capabilities = body.get("capabilities") or {}
    counters = body.get("counters") or {}
    port_agent = body.get("port_agent")
    lines = [
        f"{body.get('name')}: {body.get('state')}"
        + ("" if body.get("connected") else " (not connected)"),
    ]
    if problem:
        lines.append(f"problem:    {problem}")
    if driver:
        lines.append(
            f"driver:     {driver.get('name', '?')} {driver.get('version', '')}"
        )
    commands = user_commands(capabilities.get("commands") or [])
    lines.append(f"commands:   {', '.join(commands) or 'none now'}")
    lines.append(
        f"samples:    {counters.get('samples', 0)}, errors: {counters.get('errors', 0)}"
    )
    latest = body.get("latest_sample")
    if latest:
        values = ", ".join(
            f"{k}={cell(v)}" for k, v in sample_values(latest, units=True)
        )
        lines.append(f"latest:     {format_time(sample_time(latest))} {values}")
    error = body.get("latest_error")
    if error:
        lines.append(
            f"last error: {format_time(error.get('time'))} {error.get('message')}"
        )
    if isinstance(port_agent, Mapping):
        parts = [f"pid {port_agent['pid']}"] if "pid" in port_agent else []
        ports = port_agent.get("ports")
        if isinstance(ports, Mapping):
            parts.extend(f"{kind} {cell(port)}" for kind, port in ports.items())
        lines.append(f"port agent: {', '.join(parts) or cell(port_agent)}")
    out.write("\n".join(lines) + "\n")
    parameters = body.get("parameters") or {}
    if parameters:
        out.write(
            "\n" + format_table(["PARAMETER", "VALUE"], sorted(parameters.items()))
        )
    return ExitCode.OK


async def _problem(station: StationClient, name: str) -> str | None:
    # The list says what is wrong with each instrument.
    listed = await station.request("GET", "/api/instruments")
    for each in listed.get("instruments") or []:
        if isinstance(each, Mapping) and each.get("name") == name:
            problem = each.get("problem")
            return problem if isinstance(problem, str) else None
    return None


async def _get(station: StationClient, options: argparse.Namespace, out: Output) -> int:
    params = {"names": ",".join(options.parameters)} if options.parameters else None
    body = await station.request(
        "GET", instrument_path(options.name) + "/parameters", params=params
    )
    if out.as_json:
        out.json(body)
        return ExitCode.OK
    out.write(format_table(["PARAMETER", "VALUE"], list(body["parameters"].items())))
    return ExitCode.OK


async def _set(station: StationClient, options: argparse.Namespace, out: Output) -> int:
    values = parse_assignments(options.assignments)
    body = await station.request(
        "PATCH", instrument_path(options.name) + "/parameters", values
    )
    if out.as_json:
        out.json(body)
        return ExitCode.OK
    changed = body.get("changed") or {}
    if not changed:
        out.write("nothing changed: the instrument already had these values\n")
    else:
        out.write(format_table(["CHANGED", "VALUE"], list(changed.items())))
    return ExitCode.OK


async def _run(station: StationClient, options: argparse.Namespace, out: Output) -> int:
    if options.instrument_command is None:
        return await _which_commands(station, options.name)
    arguments = parse_assignments(options.assignments)
    path = (
        instrument_path(options.name)
        + "/commands/"
        + quote(options.instrument_command, safe="")
    )
    body = await station.request("POST", path, arguments)
    if out.as_json:
        out.json(body)
        return ExitCode.OK
    out.write(f"{body.get('command')}: done; state now {body.get('state')}\n")
    out.write(result_text(body.get("result")))
    return ExitCode.OK


async def _which_commands(station: StationClient, name: str) -> int:
    """
    ``run NAME`` without a command: say which commands there are, and
    which are valid now.
    """
    body = await station.request("GET", instrument_path(name) + "/commands")
    declared = body.get("commands")
    every = user_commands(declared if isinstance(declared, Mapping) else [])
    now = user_commands(body.get("available") or [])
    every = every or now
    if not every:
        raise Exit(ExitCode.USAGE, f"run needs a COMMAND; {name} has no commands")
    state = body.get("state")
    raise Exit(
        ExitCode.USAGE,
        f"run needs a COMMAND; {name}'s commands: {', '.join(every)}\n"
        f"valid now (in state {state}): {', '.join(now) or 'none'}\n"
        f"e.g. instrumentctl run {name} {(now or every)[0]}",
    )


COMMANDS: dict[str, Callable[[StationClient, argparse.Namespace, Output], Any]] = {
    "list": _list,
    "status": _status,
    "get": _get,
    "set": _set,
    "run": _run,
}
