# -*- test-case-name: tests.test_station_api -*-
"""
The station's HTTP JSON API, as a tree of ``twisted.web`` resources.

:class:`StationAPI` is the root resource; the station service serves it
with ``twisted.web.server.Site`` on its API endpoint (loopback by default)::

    GET    /api                                  the endpoints
    GET    /api/health                           the station's health
    GET    /api/instruments                      every instrument, with its state
    GET    /api/instruments/{name}               state, capabilities, metadata, parameters
    GET    /api/instruments/{name}/parameters    read parameters (?names=A,B)
    PATCH  /api/instruments/{name}/parameters    set parameters ({"NAME": value, ...})
    GET    /api/instruments/{name}/commands      the commands and those valid now
    POST   /api/instruments/{name}/commands/{c}  run a command ({"arg": value, ...})
    POST   /api/instruments/{name}/discover      discover the instrument's state
    POST   /api/instruments/{name}/direct-access enter direct access
    POST   /api/instruments/{name}/direct-access/input  send bytes in direct access
    DELETE /api/instruments/{name}/direct-access leave direct access
    GET    /api/instruments/{name}/events        Server-Sent Events (?types=SAMPLE,...)
    GET    /api/instruments/{name}/port-agent    its port agent: ports, pid, counters
    GET    /metrics                              Prometheus text format

Every answer but ``/metrics`` and the event stream is JSON.  An error is
``{"error": {"code": ..., "message": ..., ...details}}`` with a status that
says what kind of error it is (see :data:`STATUS_BY_CODE`); the message is
written for the person who will read it.

When a token is configured, every request that can change something
(``POST``, ``PATCH``, ``PUT``, ``DELETE``) must carry it as
``Authorization: Bearer <token>``.  Requests that change one instrument are
applied one at a time, in arrival order
(:meth:`~instrumentd.station.instrument.StationInstrument.exclusive`).  A
request whose client goes away before the answer is ready is still carried
out; only its answer is dropped.  See ``doc/api.md``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from instrumentd import __version__
from instrumentd.driver._json import to_jsonable
from instrumentd.driver.errors import (
    InstrumentCommandError,
    InstrumentConnectionError,
    InstrumentError,
    InstrumentParameterError,
    InstrumentProtocolError,
    InstrumentStateError,
    InstrumentTimeoutError,
)
from instrumentd.driver.events import EventType
from instrumentd.station import metrics, sse
from instrumentd.station.instrument import (
    InstrumentBusyError,
    Station,
    StationInstrument,
)
from instrumentd.station.sse import EventStream

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = ["MUTATING_METHODS", "STATUS_BY_CODE", "StationAPI", "status_for"]

_log = Logger()

#: Methods that can change something, and so need the token when one is set.
MUTATING_METHODS = frozenset({b"POST", b"PATCH", b"PUT", b"DELETE"})

#: The HTTP status for each driver error code; other InstrumentErrors are
#: 500.
STATUS_BY_CODE: Mapping[str, int] = {
    InstrumentStateError.code: 409,
    InstrumentTimeoutError.code: 504,
    InstrumentParameterError.code: 400,
    InstrumentCommandError.code: 400,
    InstrumentConnectionError.code: 503,
    InstrumentBusyError.code: 503,
    # The instrument answered with something the driver could not use: the
    # fault is upstream of the station, as for a proxy's bad gateway.
    InstrumentProtocolError.code: 502,
}

_JSON = b"application/json; charset=utf-8"

_ENDPOINTS = [
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
    "GET /metrics",
]


def status_for(error: InstrumentError) -> int:
    """
    The HTTP status that reports a driver error.

    :param error: the error.
    :returns: its status from :data:`STATUS_BY_CODE`, else 500.
    """
    return STATUS_BY_CODE.get(error.code, 500)


class _Refusal(Exception):
    """
    A request the API refuses: raised by a handler, answered as a JSON
    error.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[bytes, bytes] | None = None,
        **details: object,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


def _encode(body: object) -> bytes:
    return (json.dumps(to_jsonable(body), indent=2) + "\n").encode("utf-8")


def _write_json(request: Request, status: int, body: object) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", _JSON)
    request.setHeader(b"cache-control", b"no-store")
    return _encode(body)


def _refusal_for(reason: Failure, instrument: str | None) -> _Refusal:
    """
    Turn a failed request into the JSON error to answer with.
    """
    error = reason.value
    if isinstance(error, _Refusal):
        return error
    if isinstance(error, InstrumentError):
        details = error.to_dict()
        details.pop("code", None)
        details.pop("message", None)
        if instrument is not None:
            details.setdefault("instrument", instrument)
        headers = (
            {b"retry-after": b"1"} if isinstance(error, InstrumentBusyError) else {}
        )
        return _Refusal(
            status_for(error), error.code, error.message, headers, **details
        )
    _log.failure(
        "Unexpected error answering a request about {instrument}",
        reason,
        instrument=instrument,
    )
    return _Refusal(
        500,
        "INTERNAL_ERROR",
        f"the station failed unexpectedly ({type(error).__name__}: {error}); "
        f"its log has the details",
    )


def _answer_later(
    request: Request, work: Deferred[tuple[int, object]], instrument: str | None
) -> int:
    """
    Answer ``request`` when ``work`` fires with ``(status, body)``, or with
    the JSON error for its failure; if the client has gone by then, the
    answer is dropped.

    :returns: ``NOT_DONE_YET``, for ``render``.
    """
    gone: list[Failure] = []
    # notifyFinish fails only if the connection is lost before finish().
    request.notifyFinish().addErrback(gone.append)

    def answer(result: tuple[int, object]) -> None:
        if gone or request.finished:
            return
        status, body = result
        request.write(_write_json(request, status, body))
        request.finish()

    def refuse(reason: Failure) -> None:
        refusal = _refusal_for(reason, instrument)
        if gone or request.finished:
            return
        for name, value in refusal.headers.items():
            request.setHeader(name, value)
        request.write(_write_json(request, refusal.status, refusal.body()))
        request.finish()

    work.addCallbacks(answer, refuse).addErrback(
        lambda reason: _log.failure("Failed to write an answer", reason)
    )
    return NOT_DONE_YET


class _JSONResource(Resource):
    """
    The base of the API's resources: JSON errors for unknown routes (404),
    unsupported methods (405, with ``Allow``) and missing tokens (401);
    ``_Refusal`` raised by a handler becomes its JSON error.
    """

    #: The methods this resource answers, besides HEAD (answered as GET).
    methods: ClassVar[tuple[str, ...]] = ()

    def __init__(self, api: StationAPI) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.api = api

    def getChild(self, path: bytes, request: Request) -> Resource:
        # "/api/instruments/" is "/api/instruments".
        if path == b"" and not request.postpath:
            return self
        return _NotFound(self.api)

    def render(self, request: Request) -> bytes | int:
        method = request.method.decode("ascii", "replace")
        allowed = list(self.methods)
        if "GET" in allowed:
            allowed.append("HEAD")
        if method not in allowed:
            request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
            return _write_json(
                request,
                405,
                _Refusal(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"{method} is not allowed on {_path(request)}; "
                    f"allowed: {', '.join(allowed)}",
                    allowed=allowed,
                ).body(),
            )
        try:
            if request.method in MUTATING_METHODS:
                self.api.check_token(request)
            handler: Callable[[Request], bytes | int] = getattr(
                self, f"render_{'GET' if method == 'HEAD' else method}"
            )
            return handler(request)
        except _Refusal as refusal:
            for name, value in refusal.headers.items():
                request.setHeader(name, value)
            return _write_json(request, refusal.status, refusal.body())


def _path(request: Request) -> str:
    return request.path.decode("utf-8", "replace")


class _NotFound(_JSONResource):
    """
    Any path the API does not have.
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self

    def render(self, request: Request) -> bytes:
        return _write_json(
            request,
            404,
            _Refusal(
                404,
                "NOT_FOUND",
                f"there is no {_path(request)} here; GET /api lists the endpoints",
            ).body(),
        )


def _index(api: StationAPI) -> dict[str, object]:
    return {
        "name": "instrumentd",
        "version": api.station_version,
        "instruments": list(api.station.instruments),
        "endpoints": _ENDPOINTS,
    }


class _Index(_JSONResource):
    """
    ``/`` and ``/api``: what is here.
    """

    methods = ("GET",)

    def render_GET(self, request: Request) -> bytes:
        return _write_json(request, 200, _index(self.api))


class _Health(_JSONResource):
    """
    ``/api/health``.
    """

    methods = ("GET",)

    def render_GET(self, request: Request) -> bytes:
        return _write_json(request, 200, self.api.station.health())


class _Metrics(_JSONResource):
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
            request.setHeader(b"content-type", metrics.CONTENT_TYPE)
            request.write(text.encode("utf-8"))
            request.finish()

        def failed(reason: Failure) -> None:
            refusal = _refusal_for(reason, None)
            if not (gone or request.finished):
                request.write(_write_json(request, refusal.status, refusal.body()))
                request.finish()

        metrics.collect(self.api.station, self.api.metrics_timeout).addCallbacks(
            answer, failed
        )
        return NOT_DONE_YET


class _Instruments(_JSONResource):
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
            return _UnknownInstrument(self.api, name)
        return _Instrument(self.api, instrument)

    def render_GET(self, request: Request) -> bytes:
        return _write_json(
            request,
            200,
            {
                "instruments": [
                    each.summary() for each in self.api.station.instruments.values()
                ]
            },
        )


class _UnknownInstrument(_NotFound):
    """
    ``/api/instruments/{name}/...`` for a name the station does not have.
    """

    def __init__(self, api: StationAPI, name: str) -> None:
        super().__init__(api)
        self.name = name

    def render(self, request: Request) -> bytes:
        known = list(self.api.station.instruments)
        return _write_json(
            request,
            404,
            _Refusal(
                404,
                "UNKNOWN_INSTRUMENT",
                f"there is no instrument {self.name!r} in this station; "
                f"known: {', '.join(known) or 'none'}",
                instrument=self.name,
                known=known,
            ).body(),
        )


class _InstrumentPart(_JSONResource):
    """
    A resource about one instrument.
    """

    def __init__(self, api: StationAPI, instrument: StationInstrument) -> None:
        super().__init__(api)
        self.instrument = instrument

    def later(self, request: Request, work: Deferred[tuple[int, object]]) -> int:
        return _answer_later(request, work, self.instrument.name)

    def changing(
        self,
        request: Request,
        change: Callable[[], Deferred[Any]],
        answer: Callable[[Any], tuple[int, object]],
    ) -> int:
        """
        Apply ``change`` in this instrument's turn, then answer with
        ``answer(result)``.
        """
        work = self.instrument.exclusive(change)
        return self.later(request, work.addCallback(answer))


class _Instrument(_InstrumentPart):
    """
    ``/api/instruments/{name}``.
    """

    methods = ("GET",)

    def getChild(self, path: bytes, request: Request) -> Resource:
        parts: dict[bytes, Callable[[StationAPI, StationInstrument], Resource]] = {
            b"parameters": _Parameters,
            b"commands": _Commands,
            b"discover": _Discover,
            b"direct-access": _DirectAccess,
            b"events": _Events,
            b"port-agent": _PortAgent,
        }
        part = parts.get(path)
        if part is not None:
            return part(self.api, self.instrument)
        return super().getChild(path, request)

    def render_GET(self, request: Request) -> bytes:
        instrument = self.instrument
        driver = instrument.driver
        return _write_json(
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


def _names(request: Request) -> list[str]:
    names: list[str] = []
    for value in (request.args or {}).get(b"names", []):
        names.extend(
            name.strip() for name in value.decode("utf-8", "replace").split(",")
        )
    return [name for name in names if name]


class _Parameters(_InstrumentPart):
    """
    ``/api/instruments/{name}/parameters``.
    """

    methods = ("GET", "PATCH")

    def render_GET(self, request: Request) -> int:
        names = _names(request)
        name = self.instrument.name
        read = self.instrument.driver.get_resource(names or "ALL")
        return self.later(
            request,
            read.addCallback(
                lambda values: (200, {"instrument": name, "parameters": values})
            ),
        )

    def render_PATCH(self, request: Request) -> int:
        values = self.api.read_object(request, "parameters and their new values")
        if not values:
            raise _Refusal(
                400,
                "BAD_REQUEST",
                'give at least one parameter to set, e.g. {"INTERVAL": 10}',
            )
        instrument = self.instrument

        def answer(changed: dict[str, object]) -> tuple[int, object]:
            return 200, {
                "instrument": instrument.name,
                "changed": changed,
                "parameters": instrument.driver.get_cached_config(),
            }

        return self.changing(
            request, lambda: instrument.driver.set_resource(values), answer
        )


class _Commands(_InstrumentPart):
    """
    ``/api/instruments/{name}/commands``: the commands, and below it each
    one.
    """

    methods = ("GET",)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"" and not request.postpath:
            return self
        return _Command(self.api, self.instrument, path.decode("utf-8", "replace"))

    def render_GET(self, request: Request) -> bytes:
        driver = self.instrument.driver
        metadata = driver.get_config_metadata()
        return _write_json(
            request,
            200,
            {
                "instrument": self.instrument.name,
                "state": self.instrument.state,
                "available": driver.get_resource_capabilities().get("commands", []),
                "commands": metadata.get("commands", {}),
            },
        )


class _Command(_InstrumentPart):
    """
    ``/api/instruments/{name}/commands/{command}``.
    """

    methods = ("POST",)

    def __init__(
        self, api: StationAPI, instrument: StationInstrument, command: str
    ) -> None:
        super().__init__(api, instrument)
        self.command = command

    def render_POST(self, request: Request) -> int:
        arguments = self.api.read_object(
            request, "the command's arguments", required=False
        )
        instrument = self.instrument
        command = self.command

        def answer(result: object) -> tuple[int, object]:
            return 200, {
                "instrument": instrument.name,
                "command": command,
                "result": result,
                "state": instrument.state,
            }

        return self.changing(
            request,
            lambda: instrument.driver.execute_resource(command, **arguments),
            answer,
        )


class _Discover(_InstrumentPart):
    """
    ``/api/instruments/{name}/discover``.
    """

    methods = ("POST",)

    def render_POST(self, request: Request) -> int:
        self.api.read_object(request, "nothing", required=False)
        instrument = self.instrument
        return self.changing(
            request,
            instrument.driver.discover_state,
            lambda state: (200, {"instrument": instrument.name, "state": state}),
        )


class _DirectAccess(_InstrumentPart):
    """
    ``/api/instruments/{name}/direct-access``: enter (POST) and leave
    (DELETE); ``.../input`` sends bytes.
    """

    methods = ("POST", "DELETE")

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"input":
            return _DirectInput(self.api, self.instrument)
        return super().getChild(path, request)

    def render_POST(self, request: Request) -> int:
        self.api.read_object(request, "nothing", required=False)
        instrument = self.instrument
        return self.changing(
            request,
            instrument.driver.start_direct,
            lambda _: (200, {"instrument": instrument.name, "state": instrument.state}),
        )

    def render_DELETE(self, request: Request) -> int:
        instrument = self.instrument
        return self.changing(
            request,
            instrument.driver.stop_direct,
            lambda state: (200, {"instrument": instrument.name, "state": state}),
        )


class _DirectInput(_InstrumentPart):
    """
    ``/api/instruments/{name}/direct-access/input``: bytes for the
    instrument, as ``{"text": "..."}`` (sent as UTF-8) or
    ``{"data": "<base64>"}``.  What the instrument answers arrives on the
    event stream as ``DIRECT_ACCESS`` events.
    """

    methods = ("POST",)

    def render_POST(self, request: Request) -> int:
        body = self.api.read_object(request, '{"text": ...} or {"data": base64}')
        text, encoded = body.get("text"), body.get("data")
        if isinstance(text, str) and encoded is None:
            data = text.encode("utf-8")
        elif isinstance(encoded, str) and text is None:
            try:
                data = base64.b64decode(encoded, validate=True)
            except binascii.Error as error:
                raise _Refusal(
                    400, "BAD_REQUEST", f"data is not valid base64: {error}"
                ) from None
        else:
            raise _Refusal(
                400,
                "BAD_REQUEST",
                'give the bytes for the instrument as {"text": "..."} or '
                '{"data": "<base64>"}',
            )
        instrument = self.instrument
        return self.changing(
            request,
            lambda: instrument.driver.execute_direct(data),
            lambda _: (200, {"instrument": instrument.name, "sent": len(data)}),
        )


class _Events(_InstrumentPart):
    """
    ``/api/instruments/{name}/events``: Server-Sent Events.
    """

    methods = ("GET",)

    def render_GET(self, request: Request) -> bytes | int:
        types = _event_types(request)
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
        raise _Refusal(
            400,
            "BAD_REQUEST",
            f"unknown event type {', '.join(unknown)}; known: {', '.join(known)}",
            known=known,
        )
    return [EventType(name) for name in wanted]


class _PortAgent(_InstrumentPart):
    """
    ``/api/instruments/{name}/port-agent``.
    """

    methods = ("GET",)

    def render_GET(self, request: Request) -> int:
        instrument = self.instrument
        info = instrument.port_agent
        if info is None:
            raise _Refusal(
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
    :param metrics_timeout: seconds to wait for a port agent's counters.

    :ivar streams: the open event streams.
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
        metrics_timeout: float = 2.0,
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
        self.metrics_timeout = metrics_timeout
        self.streams: set[EventStream] = set()
        api = _Index(self)
        api.putChild(b"instruments", _Instruments(self))
        api.putChild(b"health", _Health(self))
        self.putChild(b"api", api)
        self.putChild(b"metrics", _Metrics(self))
        self._index = _Index(self)

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
            return self._index
        return _NotFound(self)

    def render(self, request: Request) -> bytes | int:
        # Reached only for a request with no path at all.
        return self._index.render(request)

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

        :raises _Refusal: 401, saying how to send it.
        """
        if self._token is None:
            return
        header = request.getHeader(b"authorization")
        scheme, _, given = (header or b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(
            given.strip(), self._token
        ):
            return
        challenge = {b"www-authenticate": b'Bearer realm="instrumentd"'}
        if header is None:
            raise _Refusal(
                401,
                "UNAUTHORIZED",
                "this station needs a token for changes: send "
                "'Authorization: Bearer <token>' (instrumentctl --token, "
                "--token-file or INSTRUMENTD_TOKEN)",
                challenge,
            )
        raise _Refusal(
            401,
            "UNAUTHORIZED",
            "the token given is not this station's token (check the "
            "station's token file)",
            challenge,
        )

    def read_object(
        self, request: Request, what: str, *, required: bool = True
    ) -> dict[str, object]:
        """
        Read a request's body as a JSON object.

        :param request: the request.
        :param what: what the object should hold, for the error message.
        :param required: whether an empty body is refused (else it is
            ``{}``).
        :returns: the object.
        :raises _Refusal: 413 for a body too large, 400 for one that is not
            a JSON object, naming the problem.
        """
        content = request.content
        raw = content.read(self.max_body + 1) if content is not None else b""
        if len(raw) > self.max_body:
            raise _Refusal(
                413,
                "BODY_TOO_LARGE",
                f"the request body is over {self.max_body} bytes",
            )
        if not raw.strip():
            if required:
                raise _Refusal(
                    400,
                    "BAD_REQUEST",
                    f"the request body is empty; send a JSON object: {what}",
                )
            return {}
        try:
            body = json.loads(raw)
        except UnicodeDecodeError:
            raise _Refusal(
                400, "BAD_JSON", "the request body is not UTF-8 text"
            ) from None
        except json.JSONDecodeError as error:
            raise _Refusal(
                400,
                "BAD_JSON",
                f"the request body is not valid JSON: {error.msg} at line "
                f"{error.lineno} column {error.colno}",
            ) from None
        if not isinstance(body, dict):
            raise _Refusal(
                400,
                "BAD_JSON",
                f"the request body must be a JSON object ({what}), "
                f"not {type(body).__name__}",
            )
        return body
