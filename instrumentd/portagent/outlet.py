# -*- test-case-name: tests.test_portagent_router -*-
"""
A bounded, never-blocking sender for one client connection.

The port agent must never be held back by a client.  Each client's transport
gets a :class:`ClientOutlet` registered as its streaming producer: while the
transport keeps up, data goes straight to it; when the transport's own buffer
fills (the kernel socket buffer is full because the client stopped reading),
the transport pauses the outlet and data queues here instead.  When the
queue passes the client's limit, the client is cut off and its queue freed,
so the agent's memory stays bounded whatever clients do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.interfaces import IPushProducer, ITransport
from zope.interface import implementer

__all__ = ["ClientOutlet"]


@implementer(IPushProducer)
class ClientOutlet:
    """
    Send bytes to one client without ever blocking the sender.

    Unsent data held for the client is at most ``limit`` bytes here plus what
    the transport buffers before it pauses us (about 64 KiB plus one write).

    :ivar label: who the client is, for logs and faults.
    :ivar kind: the listener kind (``data``, ``sniff``, ``raw``).
    :ivar limit: bytes that may queue before the client is cut off.
    :ivar queued: bytes queued now.
    :ivar bytes_sent: bytes handed to the transport.
    :ivar cut_off: whether the client was cut off for falling behind.
    """

    def __init__(
        self,
        transport: ITransport,
        limit: int,
        label: str,
        on_overflow: Callable[[ClientOutlet, int], None],
        kind: str = "data",
    ) -> None:
        """
        :param transport: the client's transport; it must accept producers
            (every TCP and UNIX transport does).
        :param limit: the most bytes to queue while the transport is paused.
        :param label: names the client in logs and faults.
        :param on_overflow: called with this outlet and the bytes dropped when
            the client is cut off.
        :param kind: the listener kind the client came in on.
        """
        self.kind = kind
        self.transport = transport
        self.limit = limit
        self.label = label
        self.queued = 0
        self.bytes_sent = 0
        self.cut_off = False
        self._on_overflow = on_overflow
        self._queue: deque[bytes] = deque()
        self._paused = False
        self._held = False
        self._closed = False
        transport.registerProducer(self, True)  # type: ignore[attr-defined]

    def send(self, data: bytes) -> None:
        """
        Send ``data`` now, or queue it if the client is not keeping up.
        """
        if self._closed:
            return
        if not self._paused and not self._held and not self._queue:
            self.bytes_sent += len(data)
            self.transport.write(data)
            return
        self._queue.append(data)
        self.queued += len(data)
        if self.queued > self.limit:
            self._cut_off()

    def purge(self) -> int:
        """
        Throw away what is queued for the client and not yet sent (its own
        view only: nobody else's data is touched).

        :returns: the bytes thrown away.
        """
        dropped = self.queued
        self._queue.clear()
        self.queued = 0
        return dropped

    def hold(self) -> None:
        """
        Queue everything from now on, as if the transport were full, until
        :meth:`release` (the client asked us to stop sending).  The limit
        still applies: a client that holds too long is cut off.
        """
        self._held = True

    def release(self) -> None:
        """
        End a :meth:`hold` and send what queued meanwhile.
        """
        if self._held:
            self._held = False
            if not self._paused:
                self.resumeProducing()

    def close(self) -> None:
        """
        Forget the client (its connection is gone): drop the queue and
        unregister from the transport.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self.queued = 0
        self.transport.unregisterProducer()  # type: ignore[attr-defined]

    def _cut_off(self) -> None:
        dropped = self.queued
        self.cut_off = True
        self.close()
        self.transport.abortConnection()  # type: ignore[attr-defined]
        self._on_overflow(self, dropped)

    # IPushProducer: the transport drives these.

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: queue from now on.
        """
        self._paused = True

    def resumeProducing(self) -> None:
        """
        The transport drained: hand it queued data until it pauses us again.
        """
        self._paused = False
        queue = self._queue
        while queue and not self._paused and not self._held and not self._closed:
            data = queue.popleft()
            self.queued -= len(data)
            self.bytes_sent += len(data)
            self.transport.write(data)

    def stopProducing(self) -> None:
        """
        The connection is closing.
        """
        self._closed = True
        self._queue.clear()
        self.queued = 0
