"""
Tests for L{instrumentd.portagent.sendnow}: bytes reach the socket before
the reactor's next turn, in order, and everything else is Twisted's own
``write``.  Real loopback TCP connections.
"""

from __future__ import annotations

import select
import socket
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from instrumentd.portagent.sendnow import sender_for
from tests.loopbacksupport import WAIT, Accepted, Collector


class SendNowTests(TestCase):
    """
    A server-side TCP transport, written to through L{sender_for}.
    """

    async def _accepted_with_plain_client(self) -> tuple[Any, socket.socket]:
        made: defer.Deferred[Any] = defer.Deferred()
        self.lost: defer.Deferred[Any] = defer.Deferred()
        port = reactor.listenTCP(  # type: ignore[attr-defined]
            0,
            Factory.forProtocol(lambda: Accepted(made, self.lost)),
            interface="127.0.0.1",
        )
        self.addCleanup(port.stopListening)
        client = socket.create_connection(("127.0.0.1", port.getHost().port))
        self.addCleanup(client.close)
        server = await made
        self.addCleanup(server.transport.loseConnection)
        return server.transport, client

    def _readable(self, sock: socket.socket) -> bool:
        # Blocks the reactor on purpose: what is sent "now" must arrive
        # without it turning.
        ready, _, _ = select.select([sock], [], [], WAIT)
        return bool(ready)

    @defer.inlineCallbacks
    def test_sentBeforeReactorTurns(self) -> Any:
        """
        Bytes written to an idle TCP connection are in the peer's socket
        before control returns to the reactor.
        """
        transport, client = yield defer.ensureDeferred(
            self._accepted_with_plain_client()
        )
        sender_for(transport)(b"hello")
        self.assertTrue(self._readable(client))
        self.assertEqual(client.recv(100), b"hello")

    @defer.inlineCallbacks
    def test_orderKeptPastFullSocket(self) -> Any:
        """
        More than the socket takes: the rest waits in the transport, and
        later writes queue behind it; the peer gets every byte in order.
        """
        made: defer.Deferred[Any] = defer.Deferred()
        lost: defer.Deferred[Any] = defer.Deferred()
        port = reactor.listenTCP(  # type: ignore[attr-defined]
            0, Factory.forProtocol(lambda: Accepted(made, lost)), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        chunks = [bytes([i % 251]) * (1000 + 997 * i) for i in range(200)]
        total = sum(map(len, chunks))
        collector = Collector(total)
        yield TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            Factory.forProtocol(lambda: collector)
        )
        server = yield made
        self.addCleanup(server.transport.loseConnection)
        yield collector.made
        # The reading side is paused until everything has been written, so
        # the socket fills and the transport must buffer.
        collector.transport.pauseProducing()
        write = sender_for(server.transport)
        for chunk in chunks:
            write(chunk)
        self.assertTrue(
            server.transport._tempDataLen or server.transport.dataBuffer,
            "the socket took everything; the test needs more bytes",
        )
        collector.transport.resumeProducing()
        received = yield collector.done
        self.assertEqual(received, b"".join(chunks))

    @defer.inlineCallbacks
    def test_brokenConnectionClosed(self) -> Any:
        """
        Writing to a connection the peer has reset closes it as Twisted
        always does (the write cannot raise).
        """
        transport, client = yield defer.ensureDeferred(
            self._accepted_with_plain_client()
        )
        write = sender_for(transport)
        # A reset, not a close: the next send fails.
        client.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        client.close()
        for _ in range(3):
            write(b"x" * 1000)
        yield self.lost
        self.assertFalse(transport.connected)

    def test_otherTransportsPlainWrite(self) -> None:
        """
        Anything but a plain TCP connection gets its own ``write``.
        """
        transport = StringTransport()
        write = sender_for(transport)
        write(b"abc")
        self.assertEqual(transport.value(), b"abc")
