# -*- test-case-name: tests.test_rfc2217_session -*-
"""
The telnet NEW-ENVIRON option (RFC 1572), only as far as the token needs it:
ask the client for a user variable, and read the variables it sends.

A telnet client that can send environment variables (``telnet`` with
``environ define TOKEN ...`` and ``environ export TOKEN``) gives the token
this way; clients that cannot refuse the option and send it as their first
line of data instead.
"""

from __future__ import annotations

from typing import Final

__all__ = ["NEW_ENVIRON", "TOKEN_VARIABLE", "parse_variables", "send_request"]

NEW_ENVIRON: Final = 39
IS: Final = 0
SEND: Final = 1
INFO: Final = 2
VAR: Final = 0
VALUE: Final = 1
ESC: Final = 2
USERVAR: Final = 3

#: The user variable that carries the token.
TOKEN_VARIABLE: Final = b"TOKEN"

_SPECIAL: Final = (VAR, VALUE, ESC, USERVAR)


def _escape(text: bytes) -> bytes:
    out = bytearray()
    for byte in text:
        if byte in _SPECIAL:
            out.append(ESC)
        out.append(byte)
    return bytes(out)


def send_request(name: bytes = TOKEN_VARIABLE) -> bytes:
    """
    The payload (after the option byte) asking for one user variable.
    """
    return bytes([SEND, USERVAR]) + _escape(name)


def parse_variables(payload: bytes) -> dict[bytes, bytes | None] | None:
    """
    The variables of an IS or INFO subnegotiation.

    :param payload: what followed the option byte.
    :returns: variable names (VAR and USERVAR alike) to values (``None``
        for a variable sent without one), or ``None`` if the payload is not
        IS or INFO.
    """
    if not payload or payload[0] not in (IS, INFO):
        return None
    variables: dict[bytes, bytes | None] = {}
    name: bytearray | None = None
    value: bytearray | None = None
    i = 1
    while i < len(payload):
        byte = payload[i]
        i += 1
        if byte == ESC and i < len(payload):
            byte = payload[i]
            i += 1
            target = value if value is not None else name
            if target is not None:
                target.append(byte)
            continue
        if byte in (VAR, USERVAR):
            if name is not None:
                variables[bytes(name)] = None if value is None else bytes(value)
            name, value = bytearray(), None
        elif byte == VALUE:
            if name is not None:
                value = bytearray()
        else:
            target = value if value is not None else name
            if target is not None:
                target.append(byte)
    if name is not None:
        variables[bytes(name)] = None if value is None else bytes(value)
    return variables
