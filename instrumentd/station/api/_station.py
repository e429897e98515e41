# -*- test-case-name: tests.test_station_api -*-
"""
The resources about the whole station: the index, health, metrics and the
list of instruments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from instrumentd.station import metrics
from instrumentd.station.api._answer import write_json
from instrumentd.station.api._errors import refusal_for
from instrumentd.station.api._instrument import Instrument
from instrumentd.station.api._operations import unknown_instrument
from instrumentd.station.api._resource import JSONResource, NotFound

if TYPE_CHECKING:
    from instrumentd.station.api._root import StationAPI

__all__ = ["ENDPOINTS", "Health", "Index", "Instruments", "Metrics"]

#: The endpoints, as ``GET /api`` lists them.
ENDPOINTS = [
    "GET /api/health",
    "GET /api/instruments",
    "GET /api/instruments/{name}",
    "GET /api/instruments/{name}/parameters[?names=A,B]",
    "PATCH /api/instruments/{name}/parameters",
    "GET /api/instruments/{name}/commands",
    "POST /api/instruments/{name}/commands/{command}",
    "POST /api/instruments/{name}/discover",
    "POST /api/instruments/{name}/direct-access",
    "POST /api/instruments/{name}/direct-access/input",
    "DELETE /api/instruments/{name}/direct-access",
    "GET /api/instruments/{name}/events[?types=SAMPLE,STATE_CHANGE,...]",
    "GET /api/instruments/{name}/port-agent",
    "GET /api/events[?instrument=A&instrument=B&type=SAMPLE&type=ERROR...]",
    "GET /metrics",
]


class Index(JSONResource):
    """
    ``/api``: what is here.
    """

    methods = ("GET",)

    def render_GET(self, request: Request) -> bytes:
        api = self.api
        return write_json(
            request,
            200,
            {
                "name": "instrumentd",
                "version": api.station_version,
                "instruments": list(api.station.instruments),
                "endpoints": ENDPOINTS,
            },
        )


class Health(JSONResource):
    """
    ``/api/health``.
    """

    methods = ("GET",)

    def render_GET(self, request: Request) -> bytes:
        return write_json(request, 200, self.api.station.health())


class Metrics(JSONResource):
    """
    ``/metrics``: the Prometheus text format.
    """

    methods = ("GET",)

    def render_GET(self, request: Request) -> int:
        gone: list[Failure] = []
        request.notifyFinish().addErrback(gone.append)

        def answer(text: str) -> None:
            if gone or request.finished:
                return
            # apisite imports the API's error mapping: import it here.
            from instrumentd.station.apisite import APISite

            site = getattr(request, "site", None)
            if isinstance(site, APISite):
                text += metrics.format_families(metrics.api_families(site))
            request.setHeader(b"content-type", metrics.CONTENT_TYPE)
            request.write(text.encode("utf-8"))
            request.finish()

        def failed(reason: Failure) -> None:
            refusal = refusal_for(reason, None)
            if not (gone or request.finished):
                request.write(write_json(request, refusal.status, refusal.body()))
                request.finish()

        metrics.collect(self.api.station, self.api.metrics_timeout).addCallbacks(
            answer, failed
        )
        return NOT_DONE_YET


class Instruments(JSONResource):
    """
    ``/api/instruments`` and, below it, each instrument.
    """

    methods = ("GET",)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"" and not request.postpath:
            return self
        name = path.decode("utf-8", "replace")
        instrument = self.api.station.instruments.get(name)
        if instrument is None:
            return UnknownInstrument(self.api, name)
        return Instrument(self.api, instrument)

    def render_GET(self, request: Request) -> bytes:
        return write_json(
            request,
            200,
            {
                "instruments": [
                    each.summary() for each in self.api.station.instruments.values()
                ]
            },
        )


class UnknownInstrument(NotFound):
    """
    ``/api/instruments/{name}/...`` for a name the station does not have.

    :param api: the API's root.
    :param name: the name asked for.
    """

    def __init__(self, api: StationAPI, name: str) -> None:
        super().__init__(api)
        self.name = name

    def render(self, request: Request) -> bytes:
        known = list(self.api.station.instruments)
        return write_json(request, 404, unknown_instrument(self.name, known).body())
