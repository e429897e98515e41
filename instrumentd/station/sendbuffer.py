# -*- test-case-name: tests.test_station_eventstream,tests.test_httpsink_sendbuffer -*-
"""
A wider kernel send buffer for the station's connections that carry a
lot while its reactor's turns are long.

Twisted writes a connection's buffered bytes once a reactor turn, as much
as the socket takes then.  A station bringing thousands of instruments up,
or carrying them near the limit of its core, has turns of a second or
more, so what such a connection carries is about its kernel send buffer a
turn: on loopback about 4.5 MiB with the kernel's own sizing, about 9 MiB
with :data:`SEND_BUFFER` (``bench/send_per_turn.py``).  A station-wide
event stream of 5,000 instruments carries about 4 MB a second, and the
HTTP sink about as much in its POSTs.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Final

__all__ = ["SEND_BUFFER", "widen_send_buffer"]

#: The kernel send buffer asked for, bytes.  Linux grants twice what it is
#: asked for, up to twice ``net.core.wmem_max``; asking turns the kernel's
#: own sizing off for that socket.
SEND_BUFFER: Final = 4 * 1024 * 1024


def widen_send_buffer(transport: object, size: int = SEND_BUFFER) -> bool:
    """
    Ask for a kernel send buffer of ``size`` bytes on a TCP transport's
    socket.

    :param transport: a connection's transport; one without a socket (a
        test's) is left alone.
    :param size: bytes.
    :returns: whether it was asked (the system may grant less).
    """
    handle = getattr(transport, "getHandle", lambda: None)()
    if not isinstance(handle, socket.socket):
        return False
    with contextlib.suppress(OSError):
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        return True
    return False
