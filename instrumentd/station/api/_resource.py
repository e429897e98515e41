# -*- test-case-name: tests.test_station_api -*-
"""
The bases of the API's resources: JSON errors for unknown routes,
unsupported methods and missing tokens, and the base of the resources
about one instrument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Request

from instrumentd.station.api._answer import answer_later, refuse, write_json
from instrumentd.station.api._auth import MUTATING_METHODS
from instrumentd.station.api._errors import Refusal
from instrumentd.station.instrument import StationInstrument

if TYPE_CHECKING:
    from instrumentd.station.api._root import StationAPI

__all__ = ["InstrumentPart", "JSONResource", "NotFound", "path_of"]


def path_of(request: Request) -> str:
    """
    The request's path, as text for messages.
    """
    return request.path.decode("utf-8", "replace")


class JSONResource(Resource):
    """
    The base of the API's resources: JSON errors for unknown routes (404),
    unsupported methods (405, with ``Allow``) and missing tokens (401);
    :class:`Refusal` raised by a handler becomes its JSON error.

    :param api: the API's root, with what the resources share.
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
        return NotFound(self.api)

    def render(self, request: Request) -> bytes | int:
        method = request.method.decode("ascii", "replace")
        allowed = list(self.methods)
        if "GET" in allowed:
            allowed.append("HEAD")
        if method not in allowed:
            request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
            return write_json(
                request,
                405,
                Refusal(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"{method} is not allowed on {path_of(request)}; "
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
        except Refusal as refusal:
            return refuse(request, refusal)


class NotFound(JSONResource):
    """
    Any path the API does not have.
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self

    def render(self, request: Request) -> bytes:
        return write_json(
            request,
            404,
            Refusal(
                404,
                "NOT_FOUND",
                f"there is no {path_of(request)} here; GET /api lists the endpoints",
            ).body(),
        )


class InstrumentPart(JSONResource):
    """
    A resource about one instrument.

    :param api: the API's root.
    :param instrument: the instrument.
    """

    def __init__(self, api: StationAPI, instrument: StationInstrument) -> None:
        super().__init__(api)
        self.instrument = instrument

    def later(self, request: Request, work: Deferred[tuple[int, object]]) -> int:
        """
        Answer when ``work`` fires with ``(status, body)``.
        """
        return answer_later(request, work, self.instrument)

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
