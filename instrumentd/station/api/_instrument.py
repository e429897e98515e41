# -*- test-case-name: tests.test_station_api -*-
"""
``/api/instruments/{name}``: one instrument, its event stream and its port
agent; the parts below it that change it are in
:mod:`~instrumentd.station.api._control` and
:mod:`~instrumentd.station.api._direct`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.web.resource import Resource
from twisted.web.server import Request

from instrumentd.station.api._answer import write_json
from instrumentd.station.api._control import Commands, Discover, Parameters
from instrumentd.station.api._direct import DirectAccess
from instrumentd.station.api._errors import Refusal
from instrumentd.station.api._events import event_types, open_stream
from instrumentd.station.api._resource import InstrumentPart
from instrumentd.station.instrument import StationInstrument

if TYPE_CHECKING:
    from instrumentd.station.api._root import StationAPI

__all__ = ["Events", "Instrument", "PortAgent"]


class Instrument(InstrumentPart):
    """
    ``/api/instruments/{name}``.
    """

    methods = ("GET",)

    def getChild(self, path: bytes, request: Request) -> Resource:
        parts: dict[bytes, Callable[[StationAPI, StationInstrument], Resource]] = {
            b"parameters": Parameters,
            b"commands": Commands,
            b"discover": Discover,
            b"direct-access": DirectAccess,
            b"events": Events,
            b"port-agent": PortAgent,
        }
        part = parts.get(path)
        if part is not None:
            return part(self.api, self.instrument)
        return super().getChild(path, request)

    def render_GET(self, request: Request) -> bytes:
        instrument = self.instrument
        driver = instrument.driver
        return write_json(
            request,
            200,
            {
                "name": instrument.name,
                "state": instrument.state,
                "connected": instrument.connected,
                "capabilities": driver.get_resource_capabilities(),
                "metadata": driver.get_config_metadata(),
                "parameters": driver.get_cached_config(),
                "port_agent": instrument.port_agent,
                "latest_sample": instrument.latest_sample,
                "latest_error": instrument.latest_error,
                "counters": instrument.counters(),
            },
        )


class Events(InstrumentPart):
    """
    ``/api/instruments/{name}/events``: Server-Sent Events.
    """

    methods = ("GET",)

    def render_GET(self, request: Request) -> bytes | int:
        types = event_types(request)
        return open_stream(self.api, request, [self.instrument], types)


class PortAgent(InstrumentPart):
    """
    ``/api/instruments/{name}/port-agent``.
    """

    methods = ("GET",)

    def render_GET(self, request: Request) -> int:
        instrument = self.instrument
        info = instrument.port_agent
        if info is None:
            raise Refusal(
                404,
                "NO_PORT_AGENT",
                f"instrument {instrument.name} has no port agent",
                instrument=instrument.name,
            )

        def answer(stats: Mapping[str, Any] | None) -> tuple[int, object]:
            return 200, {
                "instrument": instrument.name,
                "port_agent": info,
                "stats": stats,
            }

        fetched = instrument.refresh_port_agent_stats(self.api.metrics_timeout)
        return self.later(request, fetched.addCallback(answer))
