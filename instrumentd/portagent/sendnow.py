# -*- test-case-name: tests.test_portagent_sendnow -*-
"""
Send to a TCP connection at once, rather than on the reactor's next turn.

Twisted's TCP transport never sends from ``write``: it appends the bytes to
its buffer, asks the reactor to watch the socket for writing
(``epoll_ctl``), and sends when the next poll says the socket is writable,
then stops watching it (``epoll_ctl`` again).  For a relay of small
messages that is one more turn of the reactor and two more system calls
per message (strace: 6 per relayed message instead of 3).

The client outlets do the same inside their own bookkeeping (see
:mod:`instrumentd.portagent.outlet`: the transport's ``writeSomeData``
when nothing is buffered).  (A 4-client flood with this module
once left two clients one packet short; the likely cause was the
benchmark starting its flood before the agent had accepted them, since
fixed; see ``bench/README.md``.)  The benchmark's source uses it.

:func:`sender_for` returns a ``write`` for a transport.  For a plain
(non-TLS) TCP connection with nothing buffered, it hands the bytes to the
socket there and then; whatever the socket does not take (a full socket
buffer), and everything written while anything is still buffered, goes
through the transport's own ``write``, so the order of the bytes, the
transport's flow control (pausing its producer when its buffer fills) and
its error handling are Twisted's, unchanged.  For any other transport (TLS,
serial, pipes, test doubles), or a Twisted without the attributes this
relies on, it is the transport's own ``write``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import tcp

__all__ = ["sender_for"]

#: The attributes of :class:`twisted.internet.abstract.FileDescriptor` that
#: say whether anything is buffered; a Twisted without them gets the plain
#: ``write``.
_BUFFER_ATTRIBUTES = (
    "dataBuffer",
    "offset",
    "_tempDataLen",
    "_writeDisconnecting",
    "connected",
    "disconnecting",
    "TLS",
)


def sender_for(transport: Any) -> Callable[[bytes], None]:
    """
    A function that writes to ``transport``, at once when it can.

    :param transport: a connected transport.
    :returns: a callable taking the bytes to send, in order.
    """

    def plain_write(data: bytes) -> None:
        # Looked up at each call, as a caller writing to the transport
        # itself would.
        transport.write(data)

    if not isinstance(transport, tcp.Connection) or not all(
        hasattr(transport, name) for name in _BUFFER_ATTRIBUTES
    ):
        return plain_write
    send_some = transport.writeSomeData

    def write_now(data: bytes) -> None:
        t = transport
        if (
            t._tempDataLen
            or t.offset != len(t.dataBuffer)
            or t.TLS
            or not t.connected
            or t.disconnecting
            or t._writeDisconnecting
        ):
            plain_write(data)
            return
        sent = send_some(data)
        if not isinstance(sent, int) or sent < 0:
            # The connection is broken: let the transport find out on its
            # own (its next write attempt fails the same way) and close it
            # as it always does.
            plain_write(data)
        elif sent < len(data):
            plain_write(data[sent:])

    return write_now
