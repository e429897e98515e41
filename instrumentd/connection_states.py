# -*- test-case-name: tests.test_connection -*-
"""
The lifecycle of an :class:`~instrumentd.interfaces.IInstrumentConnection`
and which of its calls are valid in each state, shared by the TCP/serial
connection (:mod:`instrumentd.connection`) and the in-process one
(:mod:`instrumentd.portagent.direct`), so both refuse a call out of turn
in the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Final

from instrumentd.connection_config import InstrumentConnectionError

__all__ = ["ConnectionState", "require_call"]


class ConnectionState(Enum):
    """
    Where a connection is in its lifecycle.
    """

    UNCONFIGURED = "unconfigured"
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"


_ANYWHERE: Final = ("attach", "detach", "link_state", "reset")
_VALID: Final[Mapping[ConnectionState, tuple[str, ...]]] = {
    ConnectionState.UNCONFIGURED: (
        "initialize",
        "configure",
        "disconnect",
        *_ANYWHERE,
    ),
    ConnectionState.DISCONNECTED: (
        "initialize",
        "configure",
        "connect",
        "disconnect",
        *_ANYWHERE,
    ),
    ConnectionState.CONNECTING: ("disconnect", *_ANYWHERE),
    ConnectionState.CONNECTED: ("disconnect", "send", "send_break", *_ANYWHERE),
    ConnectionState.DISCONNECTING: ("disconnect", *_ANYWHERE),
}


def require_call(state: ConnectionState, method: str) -> None:
    """
    Refuse a call that is not valid in ``state``.

    :param state: the connection's state.
    :param method: the name of the call.
    :raises InstrumentConnectionError: naming the state and the calls valid
        in it.
    """
    valid = _VALID[state]
    if method not in valid:
        raise InstrumentConnectionError(
            f"{method}() is not valid while the connection is "
            f"{state.value}; valid now: " + ", ".join(f"{name}()" for name in valid)
        )
