"""
Tests for L{instrumentd.portagent.sendnow}: bytes reach the socket before
the reactor's next turn, in order, and everything else is Twisted's own
``write``.  Real loopback TCP connections.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import defer
from twisted.internet.testing import StringTransport

from instrumentd.portagent.sendnow import sender_for
from tests.loopbacksupport import LoopbackTestCase


class SendNowTests(LoopbackTestCase):
    """
    A server-side TCP transport, written to through L{sender_for}.
    """

    @defer.inlineCallbacks
    def test_sentBeforeReactorTurns(self) -> Any:
        """
        Bytes written to an idle TCP connection are in the peer's socket
        before control returns to the reactor.
        """
        transport, client = yield defer.ensureDeferred(
            self.accepted_with_plain_client()
        )
        sender_for(transport)(b"hello")
        self.assertTrue(self.readable(client))
        self.assertEqual(client.recv(100), b"hello")

    @defer.inlineCallbacks
    def test_orderKeptPastFullSocket(self) -> Any:
        """
        More than the socket takes: the rest waits in the transport, and
        later writes queue behind it; the peer gets every byte in order.
        """
        chunks = [bytes([i % 251]) * (1000 + 997 * i) for i in range(200)]
        total = sum(map(len, chunks))
        transport, collector = yield defer.ensureDeferred(
            self.accepted_with_collector(total)
        )
        # The reading side is paused until everything has been written, so
        # the socket fills and the transport must buffer.
        collector.transport.pauseProducing()
        write = sender_for(transport)
        for chunk in chunks:
            write(chunk)
        self.assertTrue(
            transport._tempDataLen or transport.dataBuffer,
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
            self.accepted_with_plain_client()
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
