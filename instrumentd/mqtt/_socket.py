# -*- test-case-name: tests.test_mqtt_socket -*-
"""
The socket paho-mqtt reads and writes, backed by a Twisted transport.

paho's client opens its own socket and connects it, and does its TLS
handshake, blocking the caller (``socket.create_connection`` and
``do_handshake`` with a timeout).  In a reactor that would stall every
instrument for as long as a broker takes to answer.  So the connection is
Twisted's (any client endpoint: TCP with name resolution, TLS, UNIX
sockets; reconnected by :class:`~twisted.application.internet.ClientService`)
and paho is handed this object in its place: ``recv`` gives the bytes the
transport received so far and raises :exc:`BlockingIOError` when there are
none, as a non-blocking socket does; ``send`` hands bytes to the transport.
paho's external-loop calls (``loop_read``, ``loop_write``, ``loop_misc``)
then work on it exactly as on a socket the reactor watches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from twisted.internet.interfaces import ITransport

__all__ = ["TransportSocket"]

#: Received bytes already read are dropped from the buffer once there are
#: this many, so the buffer does not grow with a long connection.
_COMPACT_AT: Final = 64 * 1024


class TransportSocket:
    """
    A non-blocking socket's ``recv``/``send``/``close`` over a Twisted
    transport.

    :param transport: the connection's transport.
    """

    def __init__(self, transport: ITransport) -> None:
        self._transport = transport
        self._received = bytearray()
        self._read = 0
        self._lost = False
        self.closed = False

    def feed(self, data: bytes) -> None:
        """
        Keep bytes the transport received, for :meth:`recv`.

        :param data: the bytes.
        """
        if self._read >= _COMPACT_AT:
            del self._received[: self._read]
            self._read = 0
        self._received += data

    def lost(self) -> None:
        """
        The connection is gone: once the buffer is read, :meth:`recv` gives
        ``b""`` (end of stream), as a socket does.
        """
        self._lost = True

    @property
    def buffered(self) -> int:
        """
        How many received bytes have not been read yet.
        """
        return len(self._received) - self._read

    def recv(self, size: int) -> bytes:
        """
        Up to ``size`` received bytes.

        :raises BlockingIOError: when none are waiting and the connection
            is still open.
        """
        if self.buffered:
            end = min(self._read + size, len(self._received))
            chunk = bytes(self._received[self._read : end])
            self._read = end
            return chunk
        if self._lost or self.closed:
            return b""
        raise BlockingIOError("no data yet")

    def send(self, data: bytes | bytearray) -> int:
        """
        Hand bytes to the transport (it buffers what the network cannot take
        yet), so all of them are always taken.

        :raises BrokenPipeError: once the connection is closed.
        """
        if self._lost or self.closed:
            raise BrokenPipeError("the connection to the broker is closed")
        self._transport.write(bytes(data))
        return len(data)

    def close(self) -> None:
        """
        Close the connection (after what was sent is written).
        """
        if not self.closed:
            self.closed = True
            self._transport.loseConnection()

    def fileno(self) -> int:
        """
        There is no descriptor of ours: the transport has it.

        :returns: -1.
        """
        return -1

    def setblocking(self, flag: bool) -> None:
        """
        Always non-blocking; paho sets it so, and nothing needs doing.
        """

    def settimeout(self, timeout: float | None) -> None:
        """
        Timeouts are the reactor's (keepalive through ``loop_misc``).
        """
