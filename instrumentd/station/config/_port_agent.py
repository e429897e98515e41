# -*- test-case-name: tests.test_station_config -*-
"""
An instrument's ``port_agent`` table and its listeners.
"""

from __future__ import annotations

import os
from typing import Any

from instrumentd.station.config._keys import LISTENERS
from instrumentd.station.config._specs import PortAgentSpec
from instrumentd.station.config._table import Table


def _port_agent(table: Table, name: str, data_dir: str) -> PortAgentSpec | None:
    before = len(table.problems)
    values = table.read_all()
    table.done()
    listeners_table = table.table("listeners", LISTENERS, values.pop("listeners"))
    listeners = listeners_table.read_all()
    listeners_table.done()
    for kind in ("data", "command"):
        given = listeners[kind]
        if given is None:
            continue
        if values["mode"] == "in-process":
            # The station's driver is joined to an in-process agent
            # directly: these listeners serve only clients outside, and
            # may be off or of any endpoint type.
            continue
        # The station's driver reaches a child agent through its first data
        # and command listeners, over TCP.
        if not given:
            listeners_table.bad(
                kind,
                f'"none": the {kind} listener of a child-process agent cannot be '
                "off: the station's driver connects to it; valid: a server "
                'endpoint string or an array of them (with mode = "in-process" '
                "the driver is joined directly and it may be off)",
            )
        elif given[0].split(":", 1)[0].lower() not in ("tcp", "tcp6"):
            listeners_table.bad(
                kind,
                f"the first {kind} listener must be TCP (tcp:PORT...), not "
                f"{given[0]!r}: the station's driver connects to it over TCP",
            )
    _check_access(table, listeners_table, values, listeners)
    if values["mode"] == "in-process" and table.has("log_file"):
        table.bad(
            "log_file",
            "does not apply to an in-process agent: it logs to the station's log",
        )
    memory, buffer = values["client_memory"], values["client_buffer"]
    if isinstance(memory, int) and isinstance(buffer, int) and memory < buffer:
        table.bad(
            "client_memory",
            f"{memory} bytes is less than client_buffer ({buffer} bytes); "
            "valid: at least client_buffer",
        )
    if len(table.problems) > before:
        return None
    if values["datalog_dir"] is None:
        values["datalog_dir"] = os.path.join(data_dir, "datalog")
    if values["log_file"] is None:
        values["log_file"] = os.path.join(data_dir, "logs", f"port-agent-{name}.log")
    values["tokenless"] = tuple(values["tokenless"])
    return PortAgentSpec(listeners=listeners, **values)


def _check_access(
    table: Table,
    listeners_table: Table,
    values: dict[str, Any],
    listeners: dict[str, Any],
) -> None:
    """
    The port agent's own rules: a readable token file, and no listener
    beyond loopback with neither TLS nor a token unless ``allow_insecure``.
    """
    from instrumentd.portagent.access import listener_reach, read_token_file

    token_file = values["token_file"]
    if token_file is not None:
        try:
            read_token_file(token_file)
        except ValueError as e:
            table.bad("token_file", str(e))
    elif values["tokenless"]:
        table.bad("tokenless", "only meaningful with token_file")
    if values["allow_insecure"]:
        return
    for kind, descriptions in listeners.items():
        gated = token_file is not None and kind not in values["tokenless"]
        for description in descriptions or ():
            try:
                reach = listener_reach(description)
            except ValueError:
                continue  # refused already as not an endpoint
            if not (reach.local or reach.encrypted or gated):
                listeners_table.bad(
                    kind,
                    f"{description!r} listens beyond loopback ({reach.where}) with "
                    "neither TLS nor a token; use an ssl: or mtls: endpoint, "
                    "token_file, a loopback interface, or allow_insecure = true",
                )
