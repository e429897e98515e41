# -*- test-case-name: tests.test_httpsink -*-
"""
The HTTP sink's client side: what it needs of an HTTP client
(:class:`HTTPPoster`), the connection pool that tells a reused connection
from a new one and lets a batch go out in one write event, the request
body handed over whole, and which failures never reached the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol
from weakref import WeakSet

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.python.failure import Failure
from twisted.web.client import (
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseNeverReceived,
)
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from instrumentd.station.sendbuffer import widen_send_buffer

if TYPE_CHECKING:
    from collections.abc import Hashable

    from twisted.internet.interfaces import IStreamClientEndpoint
    from twisted.web._newclient import HTTP11ClientProtocol

__all__ = ["ConnectionPool", "HTTPPoster", "WholeBody", "never_reached_server"]


#: The most one write event sends on the sink's connection, bytes.  Twisted
#: sends at most 128 kB per reactor turn (``FileDescriptor.SEND_LIMIT``); a
#: batch of a thousand records (about 600 kB) then takes five turns, and a
#: station busy with thousands of instruments has turns of up to a second.
#: The socket takes what it can; the rest waits for the next turn.
_SEND_LIMIT: Final = 16 << 20


class HTTPPoster(Protocol):
    """
    What :class:`HttpSink` needs of an HTTP client: ``post`` as
    :class:`treq.client.HTTPClient` and :class:`treq.testing.StubTreq` have.
    """

    def post(self, url: str, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """
        :returns: a Deferred firing with a treq response.
        """


class ConnectionPool(HTTPConnectionPool):
    """
    A persistent connection pool that tells whether the connection it last
    handed out had carried a request before.

    A server may close a kept-alive connection at any moment (an HTTP/1.0
    server closes after every answer without saying so); a request written
    to it before the close is seen fails without having reached the server.
    Twisted retries such a request only for idempotent methods without a
    body, so the sink retries its POST itself, and needs to know that the
    connection was a reused one: a request that fails on a new connection
    waits for the retry policy instead, so a server that closes every
    connection at once cannot make the sink spin.
    """

    # Twisted's own retry never applies to a POST; keep connections
    # unwrapped so that "handed out before" can be told.
    retryAutomatically = False

    def __init__(self, reactor: Any) -> None:
        super().__init__(reactor, persistent=True)  # type: ignore[no-untyped-call]
        self._handed_out: WeakSet[HTTP11ClientProtocol] = WeakSet()
        #: Whether the last connection handed out had been handed out
        #: before; ``False`` until one is.
        self.last_reused = False

    def getConnection(
        self, key: Hashable, endpoint: IStreamClientEndpoint
    ) -> Deferred[HTTP11ClientProtocol]:
        """
        Hand out a connection, noting whether it is a reused one.  See
        :meth:`HTTPConnectionPool.getConnection`.
        """
        self.last_reused = False

        def note(connection: HTTP11ClientProtocol) -> HTTP11ClientProtocol:
            self.last_reused = connection in self._handed_out
            self._handed_out.add(connection)
            transport = connection.transport
            if not self.last_reused:
                # A batch goes out in as few turns as the socket allows:
                # what a turn sends is about the kernel's send buffer.
                widen_send_buffer(transport)
            if getattr(transport, "SEND_LIMIT", _SEND_LIMIT) < _SEND_LIMIT:
                # Per connection: the rest of the station keeps the default.
                transport.SEND_LIMIT = _SEND_LIMIT  # type: ignore[union-attr]
            return connection

        return super().getConnection(key, endpoint).addCallback(note)


def never_reached_server(failure: Failure) -> bool:
    """
    Whether a failed request died with its connection before any answer
    came, and not because it was cancelled (our timeout).
    """
    error = failure.value
    # (RequestNotSent cannot happen here: the pool hands out no connection
    # it knows is closed.)
    if not isinstance(error, ResponseNeverReceived | RequestTransmissionFailed):
        return False
    reasons = getattr(error, "reasons", None) or []
    return not any(reason.check(CancelledError) for reason in reasons)


@implementer(IBodyProducer)
class WholeBody:
    """
    A request body handed to the connection in one write.

    By default treq wraps bytes in a ``FileBodyProducer``, which writes
    64 kB per step of the global cooperator, at most one step per reactor
    turn, and waits for the transport to drain between steps: a batch of
    a thousand records took ten turns or more to go out.  A station busy
    with thousands of instruments has long turns, so a POST took seconds
    (past ``timeout`` at worst, then retried with backoff) and the sink
    delivered a few percent of the samples while the station's core was
    not even full.  Here the transport takes the whole body at once and
    writes it as fast as the socket drains; memory still holds one batch.
    """

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """
        Write the whole body.

        :returns: a Deferred that has fired.
        """
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        """
        Nothing to pause: everything is written.
        """

    def resumeProducing(self) -> None:
        """
        Nothing to resume.
        """

    def stopProducing(self) -> None:
        """
        Nothing to stop.
        """
