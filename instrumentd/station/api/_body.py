# -*- test-case-name: tests.test_station_api -*-
"""
Reading a request's body as a JSON object, within bounds: JSON the API
cannot use (nested deeper than :data:`MAX_DEPTH`, integers beyond 64 bits,
numbers that are not finite) is a 400 naming the problem, never a 500.
"""

from __future__ import annotations

import json
import math

from twisted.web.server import Request

from instrumentd.station.api._errors import Refusal

__all__ = ["MAX_DEPTH", "MAX_INTEGER", "read_object"]

#: How deeply arrays and objects may nest in a request body.
MAX_DEPTH = 32
#: The largest magnitude of an integer in a request body (64-bit signed).
MAX_INTEGER = 2**63 - 1
#: More digits than this cannot be within :data:`MAX_INTEGER`; checked
#: before converting, since converting thousands of digits is slow (and
#: refused by Python).
_MAX_DIGITS = len(str(MAX_INTEGER))


class _Unusable(ValueError):
    """
    A JSON value the API refuses while decoding.
    """


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS or abs(int(text)) > MAX_INTEGER:
        shown = text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"
        raise _Unusable(
            f"the integer {shown} is out of range; integers must be between "
            f"-{MAX_INTEGER} and {MAX_INTEGER}"
        )
    return int(text)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 24 else f"{text[:12]}..."
        raise _Unusable(f"the number {shown} is too large to be a finite number")
    return value


def _constant(text: str) -> float:
    raise _Unusable(f"{text} is not a JSON number; give a finite number")


def _too_deep(value: object) -> bool:
    # Iterative, so that checking cannot itself run out of stack.
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        each, depth = pending.pop()
        children: list[object]
        if isinstance(each, dict):
            children = list(each.values())
        elif isinstance(each, list):
            children = each
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


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
        JSON object or holds values the API cannot use, naming the problem.
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
        body = json.loads(
            raw, parse_int=_integer, parse_float=_number, parse_constant=_constant
        )
    except UnicodeDecodeError:
        raise Refusal(400, "BAD_JSON", "the request body is not UTF-8 text") from None
    except RecursionError:
        raise Refusal(
            400,
            "BAD_JSON",
            f"the request body nests arrays or objects too deeply; at most "
            f"{MAX_DEPTH} levels",
        ) from None
    except _Unusable as error:
        raise Refusal(400, "BAD_JSON", f"the request body: {error}") from None
    except json.JSONDecodeError as error:
        raise Refusal(
            400,
            "BAD_JSON",
            f"the request body is not valid JSON: {error.msg} at line "
            f"{error.lineno} column {error.colno}",
        ) from None
    if _too_deep(body):
        raise Refusal(
            400,
            "BAD_JSON",
            f"the request body nests arrays or objects too deeply; at most "
            f"{MAX_DEPTH} levels",
        )
    if not isinstance(body, dict):
        raise Refusal(
            400,
            "BAD_JSON",
            f"the request body must be a JSON object ({what}), "
            f"not {type(body).__name__}",
        )
    return body
