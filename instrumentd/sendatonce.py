# -*- test-case-name: tests.test_portagent_outlet_flush,tests.test_simulator_fleet -*-
"""
Sending to an idle TCP connection's socket at once.

Twisted's TCP ``write`` only buffers: it asks the reactor to watch the
socket for writing, sends on the reactor's next turn, and stops watching
again, two ``epoll_ctl`` calls and a turn for bytes the socket would have
taken whole.  :func:`send_at_once` sends to the socket itself when nothing
waits in the transport's buffer and the connection is open, as the
transport's own sending step would (without its slice of a memoryview and
its retry of a send a signal interrupts, which Python does itself).
Otherwise, and for what the socket does not take, the bytes go through the
transport's ``write``: the order of the bytes, the reactor's buffering,
producers' pausing and the handling of a broken connection stay
Twisted's.

A port agent's outlet sends each packet to an idle client so, and a
simulator fleet each sample line.  It reads the buffer state of Twisted's
:class:`twisted.internet.tcp.Connection` (private attributes, checked by
the tests of both); :func:`can_send_at_once` says whether a transport is
one.
"""

from __future__ import annotations

from twisted.internet.tcp import Connection

__all__ = ["can_send_at_once", "send_at_once"]


def can_send_at_once(transport: object) -> bool:
    """
    :param transport: a connection's transport.
    :returns: whether :func:`send_at_once` may be given it (a plain TCP
        connection of Twisted's posix reactors).
    """
    return isinstance(transport, Connection)


def send_at_once(transport: Connection, data: bytes) -> None:
    """
    Send ``data`` on ``transport``, to its socket at once if nothing waits.

    :param transport: a plain TCP connection (see :func:`can_send_at_once`).
    :param data: the bytes.
    """
    t = transport
    if (
        t._tempDataLen
        or t.offset != len(t.dataBuffer)
        or not t.connected
        or t.disconnecting
        or t._writeDisconnecting
        or t._writeDisconnected
        or t.TLS
    ):
        # Bytes already wait (the socket was full) or the connection is
        # closing: the reactor sends them, and these behind them.
        t.write(data)
        return
    try:
        sent = t.socket.send(data)
    except OSError:
        # The socket is full or the connection broken: buffered, the reactor
        # sends it, or meets the same error on its next turn and closes the
        # connection as it always does.
        t.write(data)
        return
    if sent < len(data):
        t.write(data[sent:])
