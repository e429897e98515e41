# -*- test-case-name: tests.test_station_api -*-
"""
:class:`StationAPI`, the root of the API's resources and what they share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from twisted.web.resource import Resource
from twisted.web.server import Request

from instrumentd import __version__
from instrumentd.station.api._auth import MUTATING_METHODS, check_token
from instrumentd.station.api._body import read_object
from instrumentd.station.api._events import StationEvents
from instrumentd.station.api._page import Page, static_files
from instrumentd.station.api._resource import NotFound
from instrumentd.station.api._station import Health, Index, Instruments, Metrics
from instrumentd.station.eventfeed import EventFeeds
from instrumentd.station.instrument import Station, StationInstrument
from instrumentd.station.sse import EventStream

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = ["StationAPI"]


class StationAPI(Resource):
    """
    The root of the station's HTTP API; serve it with
    ``twisted.web.server.Site``.

    :param station: the instruments (a :class:`Station`, or a mapping of
        name to :class:`StationInstrument`).
    :param token: when given, requests that change something must carry it
        as ``Authorization: Bearer <token>``.
    :param clock: for event stream keep-alives; ``None`` for the global
        reactor.
    :param keepalive: seconds of silence after which an event stream gets
        a keep-alive comment.
    :param max_backlog: events held for an event stream client that cannot
        keep up, before it is cut off.
    :param max_body: the largest request body accepted, in bytes.
    :param max_streams: event streams open at once; more are refused with
        503, so that streams (which never end by themselves, and need no
        token) cannot take every connection the server allows.
    :param metrics_timeout: seconds to wait for a port agent's counters.
    :param stream_coalesce: seconds an event stream's messages may wait to
        be written together (see :class:`~instrumentd.station.sse.
        EventStream`); 0 writes each at once.

    :ivar streams: the open event streams.
    :ivar feeds: the instruments' events as stream messages, each made once
        for every stream.
    """

    def __init__(
        self,
        station: Station | Mapping[str, StationInstrument],
        *,
        token: str | None = None,
        clock: IReactorTime | None = None,
        keepalive: float = 15.0,
        max_backlog: int = 1000,
        max_body: int = 1024 * 1024,
        max_streams: int = 64,
        metrics_timeout: float = 2.0,
        stream_coalesce: float = 0.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not isinstance(station, Station):
            station = Station(station.values(), clock=clock)
        self.station = station
        self._token = token.encode("utf-8") if token else None
        self._clock = clock
        self.keepalive = keepalive
        self.max_backlog = max_backlog
        self.max_body = max_body
        self.max_streams = max_streams
        self.metrics_timeout = metrics_timeout
        self.stream_coalesce = stream_coalesce
        self.streams: set[EventStream] = set()
        self.feeds = EventFeeds()
        api = Index(self)
        api.putChild(b"instruments", Instruments(self))
        api.putChild(b"events", StationEvents(self))
        api.putChild(b"health", Health(self))
        self.putChild(b"api", api)
        self.putChild(b"metrics", Metrics(self))
        self.putChild(b"static", static_files(self))
        self._page = Page(self)

    @property
    def clock(self) -> IReactorTime:
        """
        The clock for timers.
        """
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = cast("IReactorTime", reactor)
        return self._clock

    @property
    def station_version(self) -> str:
        """
        The version the station reports.
        """
        return getattr(self.station, "version", __version__)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"" and not request.postpath:
            # "/" is the web page; the JSON index is "/api".
            return self._page
        return NotFound(self)

    def render(self, request: Request) -> bytes | int:
        # Reached only for a request with no path at all.
        return self._page.render(request)

    def close(self) -> None:
        """
        End every open event stream (when the station stops): their
        responses are finished, so clients see the stream end.
        """
        for stream in list(self.streams):
            stream.close()

    # Shared by the resources.

    def check_token(self, request: Request) -> None:
        """
        Refuse a request without the configured token.

        :raises Refusal: 401, saying how to send it.
        """
        check_token(request, self._token)

    def authorize(self, request: Request) -> None:
        """
        Refuse a change without the token, from its headers alone: the
        server in front of the API (:class:`~instrumentd.station.apisite.APISite`)
        calls this before it reads a request's body.

        :param request: a request whose headers are in.
        :raises Refusal: 401, as :meth:`check_token`.
        """
        if request.method in MUTATING_METHODS:
            self.check_token(request)

    def read_object(
        self, request: Request, what: str, *, required: bool = True
    ) -> dict[str, object]:
        """
        Read a request's body as a JSON object, at most ``max_body`` bytes.

        :param request: the request.
        :param what: what the object should hold, for the error message.
        :param required: whether an empty body is refused (else it is
            ``{}``).
        :returns: the object.
        :raises Refusal: 413 for a body too large, 400 for one that is not
            a JSON object, naming the problem.
        """
        return read_object(request, what, self.max_body, required=required)
