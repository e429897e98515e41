# -*- test-case-name: tests.test_station_config -*-
"""
An instrument's ``port_agent`` table.
"""

from __future__ import annotations

import os

from instrumentd.station.config._specs import (
    _LISTENER_KINDS,
    _ROTATIONS,
    AGENT_MODES,
    PortAgentSpec,
)
from instrumentd.station.config._table import (
    _ABSENT,
    _check_server,
    _Table,
)


def _port_agent(table: _Table, name: str, data_dir: str) -> PortAgentSpec | None:
    from instrumentd.portagent.options import DEFAULT_LISTENER, MIN_CLIENT_BUFFER

    mode = table.string("mode", "child", choices=AGENT_MODES)
    listeners: dict[str, tuple[str, ...]] = dict.fromkeys(
        _LISTENER_KINDS, (DEFAULT_LISTENER,)
    )
    given = table.table("listeners")
    if given is not None:
        for kind in _LISTENER_KINDS:
            value = given.raw(kind)
            if value is _ABSENT:
                continue
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(
                isinstance(v, str) for v in values
            ):
                given.bad(
                    kind,
                    "must be a server endpoint string, an array of them, or 'none'",
                )
                continue
            kept = [v for v in values if v != "none"]
            if all(_check_server(given, kind, v) for v in kept):
                listeners[kind] = tuple(kept)
        given.done()
    for kind in ("data", "command"):
        # The station's driver reaches the agent through the first data and
        # command listeners, over TCP.
        where = given or table
        key = kind if given is not None else "listeners"
        if not listeners[kind]:
            where.bad(
                key, f"the {kind} listener cannot be off: the driver connects to it"
            )
        elif listeners[kind][0].split(":", 1)[0].lower() not in ("tcp", "tcp6"):
            where.bad(
                key,
                f"the first {kind} listener must be TCP (tcp:PORT...), not "
                f"{listeners[kind][0]!r}: the station's driver connects to it "
                "over TCP",
            )
    spec = PortAgentSpec(
        mode=str(mode),
        listeners=listeners,
        datalog_dir=str(table.string("datalog_dir", os.path.join(data_dir, "datalog"))),
        rotate=str(table.string("rotate", "daily", choices=_ROTATIONS)),
        rotate_size=table.size("rotate_size", 0),
        client_buffer=table.size("client_buffer", 4 << 20, minimum=MIN_CLIENT_BUFFER),
        heartbeat=table.number("heartbeat", 10.0, minimum=0),
        disconnect_grace=table.number("disconnect_grace", 10.0, minimum=0),
        max_reconnect_delay=table.number("max_reconnect_delay", 60.0, above=0),
        launch_timeout=table.number("launch_timeout", 30.0, above=0),
        log_file=table.string(
            "log_file", os.path.join(data_dir, "logs", f"port-agent-{name}.log")
        ),
    )
    if spec.mode == "in-process" and table.has("log_file"):
        table.bad(
            "log_file",
            "does not apply to an in-process agent: it logs to the station's log",
        )
    return spec
