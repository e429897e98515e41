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
from twisted.web.server import NOT_DONE_YET, Request

from instrumentd.driver.events import EventType
from instrumentd.station import sse
from instrumentd.station.api._answer import write_json
from instrumentd.station.api._control import Commands, Discover, Parameters
from instrumentd.station.api._direct import DirectAccess
from instrumentd.station.api._errors import Refusal
from instrumentd.station.api._resource import InstrumentPart
from instrumentd.station.instrument import StationInstrument
from instrumentd.station.sse import EventStream

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
        types = _event_types(request)
        if len(self.api.streams) >= self.api.max_streams:
            raise Refusal(
                503,
                "TOO_MANY_STREAMS",
                f"this station already serves {self.api.max_streams} event "
                "streams, the most it allows; try again later",
                {b"retry-after": b"10"},
                limit=self.api.max_streams,
            )
        if request.method == b"HEAD":
            request.setHeader(b"content-type", sse.CONTENT_TYPE)
            return b""
        stream = EventStream(
            request,
            self.instrument,
            self.api.clock,
            types=types,
            keepalive=self.api.keepalive,
            max_backlog=self.api.max_backlog,
            on_end=self.api.streams.discard,
        )
        self.api.streams.add(stream)
        stream.start()
        return NOT_DONE_YET


def _event_types(request: Request) -> list[EventType] | None:
    wanted: list[str] = []
    for value in (request.args or {}).get(b"types", []):
        wanted.extend(
            name.strip().upper() for name in value.decode("utf-8", "replace").split(",")
        )
    wanted = [name for name in wanted if name]
    if not wanted:
        return None
    known = [each.value for each in EventType]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise Refusal(
            400,
            "BAD_REQUEST",
            f"unknown event type {', '.join(unknown)}; known: {', '.join(known)}",
            known=known,
        )
    return [EventType(name) for name in wanted]


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
