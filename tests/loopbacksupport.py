"""
Helpers for tests on real loopback TCP connections: a server-side protocol
that reports when it is made and lost, a client that collects what it is
sent, and a test case that makes such connections.
"""

from __future__ import annotations

import select
import socket
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

#: Generous: on a loaded machine the kernel still hands loopback bytes over
#: in far less, and a failure waits this long only once.
WAIT = 10.0


class Accepted(Protocol):
    def __init__(self, made: defer.Deferred[Any], lost: defer.Deferred[Any]) -> None:
        self.made = made
        self.lost = lost

    def connectionMade(self) -> None:
        self.made.callback(self)

    def connectionLost(self, reason: Any = None) -> None:
        if not self.lost.called:
            self.lost.callback(None)


class Collector(Protocol):
    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.data = bytearray()
        self.made: defer.Deferred[None] = defer.Deferred()
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if len(self.data) >= self.wanted and not self.done.called:
            self.done.callback(bytes(self.data))


class LoopbackTestCase(TestCase):
    """
    Makes a server-side TCP transport on loopback, with a plain socket or
    a L{Collector} at the other end; C{self.lost} fires when the server's
    side is lost.
    """

    async def _listen(self) -> tuple[int, defer.Deferred[Any]]:
        made: defer.Deferred[Any] = defer.Deferred()
        self.lost: defer.Deferred[Any] = defer.Deferred()
        lost = self.lost
        port = reactor.listenTCP(  # type: ignore[attr-defined]
            0,
            Factory.forProtocol(lambda: Accepted(made, lost)),
            interface="127.0.0.1",
        )
        self.addCleanup(port.stopListening)
        return port.getHost().port, made

    async def accepted_with_plain_client(self) -> tuple[Any, socket.socket]:
        """
        :returns: the server's transport and the client's blocking socket.
        """
        number, made = await self._listen()
        client = socket.create_connection(("127.0.0.1", number))
        self.addCleanup(client.close)
        server = await made
        self.addCleanup(server.transport.loseConnection)
        return server.transport, client

    async def accepted_with_collector(self, wanted: int) -> tuple[Any, Collector]:
        """
        :returns: the server's transport and the connected L{Collector}
            waiting for C{wanted} bytes.
        """
        number, made = await self._listen()
        collector = Collector(wanted)
        await TCP4ClientEndpoint(reactor, "127.0.0.1", number).connect(
            Factory.forProtocol(lambda: collector)
        )
        server = await made
        self.addCleanup(server.transport.loseConnection)
        await collector.made
        return server.transport, collector

    def readable(self, sock: socket.socket) -> bool:
        """
        Whether C{sock} has bytes within L{WAIT} seconds.  Blocks the
        reactor on purpose: what is sent "now" must arrive without it
        turning.
        """
        ready, _, _ = select.select([sock], [], [], WAIT)
        return bool(ready)
