# -*- test-case-name: tests.test_station_api -*-
"""
The API's token: requests that can change something must carry it.
"""

from __future__ import annotations

import hmac

from twisted.web.iweb import IRequest

from instrumentd.station.api._errors import Refusal

__all__ = ["MUTATING_METHODS", "check_token"]

#: Methods that can change something, and so need the token when one is set.
MUTATING_METHODS = frozenset({b"POST", b"PATCH", b"PUT", b"DELETE"})

_CHALLENGE = {b"www-authenticate": b'Bearer realm="instrumentd"'}


def check_token(request: IRequest, token: bytes | None) -> None:
    """
    Refuse a request without the configured token.

    :param request: the request, with its headers.
    :param token: the station's token; ``None`` accepts every request.
    :raises Refusal: 401, saying how to send it.
    """
    if token is None:
        return
    header = request.getHeader(b"authorization")
    scheme, _, given = (header or b"").partition(b" ")
    if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token):
        return
    if header is None:
        raise Refusal(
            401,
            "UNAUTHORIZED",
            "this station needs a token for changes: send "
            "'Authorization: Bearer <token>' (instrumentctl --token, "
            "--token-file or INSTRUMENTD_TOKEN)",
            _CHALLENGE,
        )
    raise Refusal(
        401,
        "UNAUTHORIZED",
        "the token given is not this station's token (check the station's token file)",
        _CHALLENGE,
    )
