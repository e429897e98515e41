# -*- test-case-name: tests.test_station_config -*-
"""
The ``[sinks.NAME]`` tables.
"""

from __future__ import annotations

import os
import re

from instrumentd.station.config._errors import _Problems
from instrumentd.station.config._specs import (
    _NAME,
    SINK_TYPES,
    SinkSpec,
)
from instrumentd.station.config._table import (
    _kind,
    _name_problem,
    _Table,
)


def _sinks(top: _Table, data_dir: str, problems: _Problems) -> dict[str, SinkSpec]:
    if not top.has("sinks"):
        top.raw("sinks")
        return {
            "files": SinkSpec(
                name="files",
                type="jsonlines",
                directory=os.path.join(data_dir, "samples"),
            )
        }
    table = top.table("sinks")
    if table is None:
        return {}
    sinks: dict[str, SinkSpec] = {}
    spools: dict[str, str] = {}
    for name in list(table.data):
        sink = table.table(name)
        if sink is None:
            continue
        if not _NAME.match(name):
            table.bad(name, _name_problem(name))
        spec = _sink(sink, name, data_dir)
        sink.done()
        if spec is None:
            continue
        if spec.spool_dir is not None:
            where = os.path.abspath(spec.spool_dir)
            if where in spools:
                sink.bad(
                    "spool_dir",
                    f"{spec.spool_dir!r} is also the spool of sink "
                    f"{spools[where]!r}; each HTTP sink needs its own",
                )
                continue
            spools[where] = name
        sinks[name] = spec
    return sinks


def _sink(sink: _Table, name: str, data_dir: str) -> SinkSpec | None:
    kind = sink.string(
        "type",
        None,
        choices=SINK_TYPES,
        required=f"the kind of sink, one of {', '.join(SINK_TYPES)}",
    )
    if kind == "jsonlines":
        return SinkSpec(
            name=name,
            type=kind,
            directory=sink.string("directory", os.path.join(data_dir, "samples")),
            flush_interval=sink.number("flush_interval", 1.0, above=0),
            max_open_files=sink.integer("max_open_files", 64, minimum=1),
        )
    if kind == "http":
        url = sink.string("url", None, required="the URL to POST particles to")
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            sink.bad("url", f"{url!r} is not an http:// or https:// URL")
            url = None
        headers: dict[str, str] = {}
        given = sink.raw_table("headers")
        for header, value in (given or {}).items():
            if not isinstance(value, str):
                sink.bad(f"headers.{header}", f"must be a string, not {_kind(value)}")
            else:
                headers[header] = value
        spec = SinkSpec(
            name=name,
            type=kind,
            url=url,
            spool_dir=sink.string("spool_dir", os.path.join(data_dir, "spool", name)),
            batch_size=sink.integer("batch_size", 100, minimum=1),
            batch_interval=sink.number("batch_interval", 1.0, above=0),
            timeout=sink.number("timeout", 10.0, above=0),
            headers=headers,
        )
        return spec if url is not None else None
    return None
