# -*- test-case-name: tests.test_station_api -*-
"""
Writing the API's JSON answers, now or when a Deferred fires.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from instrumentd.driver._json import to_jsonable
from instrumentd.station.api._errors import Refusal, refusal_for

if TYPE_CHECKING:
    from instrumentd.station.instrument import StationInstrument

__all__ = ["JSON", "answer_later", "encode", "refuse", "write_json"]

_log = Logger()

#: The content type of every JSON answer.
JSON = b"application/json; charset=utf-8"


def encode(body: object) -> bytes:
    """
    A JSON answer's bytes.

    :param body: what to answer, made JSON-able by ``to_jsonable``.
    :returns: indented JSON and a newline, UTF-8.
    """
    return (json.dumps(to_jsonable(body), indent=2) + "\n").encode("utf-8")


def write_json(request: Request, status: int, body: object) -> bytes:
    """
    Set a JSON answer's status and headers.

    :param request: the request to answer.
    :param status: the HTTP status.
    :param body: what to answer.
    :returns: the body's bytes, for ``render`` to return or to write.
    """
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON)
    request.setHeader(b"cache-control", b"no-store")
    return encode(body)


def refuse(request: Request, refusal: Refusal) -> bytes:
    """
    Set the status and headers of a JSON error.

    :param request: the request to answer.
    :param refusal: the error.
    :returns: the body's bytes.
    """
    for name, value in refusal.headers.items():
        request.setHeader(name, value)
    return write_json(request, refusal.status, refusal.body())


def answer_later(
    request: Request,
    work: Deferred[tuple[int, object]],
    instrument: StationInstrument | str | None,
) -> int:
    """
    Answer ``request`` when ``work`` fires with ``(status, body)``, or with
    the JSON error for its failure; if the client has gone by then, the
    answer is dropped.

    :param request: the request to answer.
    :param work: what the answer waits for.
    :param instrument: the instrument the request is about (or its name),
        if any.
    :returns: ``NOT_DONE_YET``, for ``render``.
    """
    gone: list[Failure] = []
    # notifyFinish fails only if the connection is lost before finish().
    request.notifyFinish().addErrback(gone.append)

    def answer(result: tuple[int, object]) -> None:
        if gone or request.finished:
            return
        status, body = result
        request.write(write_json(request, status, body))
        request.finish()

    def failed(reason: Failure) -> None:
        refusal = refusal_for(reason, instrument)
        if gone or request.finished:
            return
        request.write(refuse(request, refusal))
        request.finish()

    work.addCallbacks(answer, failed).addErrback(
        lambda reason: _log.failure("Failed to write an answer", reason)
    )
    return NOT_DONE_YET
