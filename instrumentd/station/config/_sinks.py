# -*- test-case-name: tests.test_station_config -*-
"""
The ``[sinks.NAME]`` tables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from instrumentd.station.config._keys import SINK, SINKS, name_problem
from instrumentd.station.config._specs import SinkSpec
from instrumentd.station.config._table import Table
from instrumentd.station.config.schema import kind_of, show

__all__ = ["Sinks", "case_clash"]


@dataclass(frozen=True)
class Sinks:
    """
    The sinks a configuration defines.

    :ivar specs: the usable ones, by name.
    :ivar names: every name defined, usable or not, so an instrument that
        names a sink with problems is not told the sink does not exist.
        ``None`` when the sinks table itself was refused.
    """

    specs: dict[str, SinkSpec]
    names: tuple[str, ...] | None


def case_clash(name: str, other: str, where: str) -> str:
    """
    The problem of a name that differs from another only in case.

    :param name: the name.
    :param other: the name it clashes with.
    :param where: the key path of the other.
    """
    return (
        f"{name!r} differs from {other!r} ({where}) only in case; names must "
        "differ in more than case (they name files and directories, and some "
        "file systems do not tell case apart)"
    )


def _sinks(top: Table, data_dir: str) -> Sinks:
    if not top.has("sinks"):
        files = SinkSpec(
            name="files", type="jsonlines", directory=os.path.join(data_dir, "samples")
        )
        return Sinks({"files": files}, ("files",))
    given = top.read("sinks")
    if given is None:
        return Sinks({}, None)
    specs: dict[str, SinkSpec] = {}
    spools: dict[str, str] = {}
    folded: dict[str, str] = {}
    for name, entry in given.items():
        path = top.key(f"sinks.{name}")
        problem = name_problem(name)
        if problem is not None:
            top.problems.add(path, problem)
        elif name.lower() in folded:
            other = folded[name.lower()]
            top.problems.add(path, case_clash(name, other, f"sinks.{other}"))
        else:
            folded[name.lower()] = name
        if not isinstance(entry, dict):
            top.problems.add(
                path, f"must be a table, not {kind_of(entry)} ({show(entry)})"
            )
            continue
        before = len(top.problems)
        sink = Table(entry, path, top.problems, SINK)
        values = _sink(sink, name, data_dir)
        if values is None:
            continue
        spool = values.get("spool_dir")
        if spool is not None:
            where = os.path.abspath(spool)
            if where in spools:
                sink.bad(
                    "spool_dir",
                    f"{spool!r} is also the spool of sink {spools[where]!r}; each "
                    "HTTP or MQTT sink needs its own",
                )
            else:
                spools[where] = name
        if len(top.problems) == before:
            specs[name] = SinkSpec(name=name, **values)
    return Sinks(specs, tuple(given))


def _sink(sink: Table, name: str, data_dir: str) -> dict[str, Any] | None:
    kind = sink.read("type")
    section = SINKS.get(kind) if kind is not None else None
    if section is None:
        sink.read_untyped(list(SINKS.values()))
        return None
    typed = Table(sink.data, sink.path, sink.problems, section)
    values = {k: v for k, v in typed.read_all().items() if k not in ("type",)}
    typed.done()
    values["type"] = kind
    if kind == "jsonlines":
        if values["directory"] is None:
            values["directory"] = os.path.join(data_dir, "samples")
    elif kind == "http":
        if values["spool_dir"] is None and not typed.has("spool_dir"):
            values["spool_dir"] = os.path.join(data_dir, "spool", name)
        values["headers"] = _headers(typed, values["headers"])
    elif kind == "mqtt":
        if values["spool_dir"] is None and not typed.has("spool_dir"):
            values["spool_dir"] = os.path.join(data_dir, "spool", name)
        _check_mqtt(typed, values)
    return values


def _check_mqtt(sink: Table, values: dict[str, Any]) -> None:
    """
    What an MQTT sink's keys must agree on, and the files it names: they
    must be readable now, so a typo fails ``--check``, not the first
    connection.  The password file's content is never read into the
    configuration (nor shown).
    """
    if values.get("password_file") is not None and values.get("username") is None:
        sink.bad(
            "password_file",
            "is set but username is not; give the user name the password is for",
        )
    if values.get("key_file") is not None and values.get("cert_file") is None:
        sink.bad("key_file", "is set but cert_file is not")
    broker = values.get("broker")
    if isinstance(broker, str) and not broker.startswith("mqtts://"):
        for key in ("ca_file", "cert_file", "key_file"):
            if values.get(key) is not None:
                sink.bad(key, f"is for TLS, but broker {broker!r} is not mqtts://")
    for key in ("password_file", "ca_file", "cert_file", "key_file"):
        path = values.get(key)
        if isinstance(path, str) and not os.access(path, os.R_OK):
            why = "does not exist" if not os.path.exists(path) else "cannot be read"
            sink.bad(key, f"{path!r} {why}")


def _headers(sink: Table, given: Mapping[str, Any] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for header, value in (given or {}).items():
        if not isinstance(value, str):
            sink.bad(
                f"headers.{header}",
                f"must be a string, not {kind_of(value)} ({show(value)})",
            )
        else:
            headers[header] = value
    return headers
