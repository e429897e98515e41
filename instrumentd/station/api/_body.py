# -*- test-case-name: tests.test_station_api -*-
"""
Reading a request's body as a JSON object.
"""

from __future__ import annotations

import json

from twisted.web.server import Request

from instrumentd.station.api._errors import Refusal

__all__ = ["read_object"]


def read_object(
    request: Request, what: str, max_body: int, *, required: bool = True
) -> dict[str, object]:
    """
    Read a request's body as a JSON object.

    :param request: the request.
    :param what: what the object should hold, for the error message.
    :param max_body: the largest body accepted, in bytes.
    :param required: whether an empty body is refused (else it is ``{}``).
    :returns: the object.
    :raises Refusal: 413 for a body too large, 400 for one that is not a
        JSON object, naming the problem.
    """
    content = request.content
    raw = content.read(max_body + 1) if content is not None else b""
    if len(raw) > max_body:
        raise Refusal(
            413,
            "BODY_TOO_LARGE",
            f"the request body is over {max_body} bytes",
        )
    if not raw.strip():
        if required:
            raise Refusal(
                400,
                "BAD_REQUEST",
                f"the request body is empty; send a JSON object: {what}",
            )
        return {}
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise Refusal(400, "BAD_JSON", "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise Refusal(
            400,
            "BAD_JSON",
            f"the request body is not valid JSON: {error.msg} at line "
            f"{error.lineno} column {error.colno}",
        ) from None
    if not isinstance(body, dict):
        raise Refusal(
            400,
            "BAD_JSON",
            f"the request body must be a JSON object ({what}), "
            f"not {type(body).__name__}",
        )
    return body
