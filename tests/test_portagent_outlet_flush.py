"""
Tests for L{instrumentd.portagent.outlet.ClientOutlet} on real loopback TCP
connections: a message sent to an idle client is in its socket before the
reactor turns again, and Twisted's buffering, ordering, producer pausing
and error handling still hold around that.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import defer, reactor

from instrumentd.portagent.outlet import ClientOutlet, ClientQueues
from tests.loopbacksupport import LoopbackTestCase


class OutletFlushTests(LoopbackTestCase):
    """
    A server-side TCP transport with a L{ClientOutlet}, as the agent's
    listeners make them.
    """

    def _outlet(self, transport: Any, limit: int = 1 << 30) -> ClientOutlet:
        self.cut: list[tuple[str, int]] = []
        outlet = ClientOutlet(
            transport,
            limit,
            "test",
            lambda o, why, n: self.cut.append((why, n)),
            queues=ClientQueues(),
        )
        self.addCleanup(outlet.close)
        return outlet

    @defer.inlineCallbacks
    def test_sentBeforeReactorTurns(self) -> Any:
        """
        A message sent to an idle client is in the client's socket before
        control returns to the reactor, and nothing stays buffered.
        """
        transport, client = yield defer.ensureDeferred(
            self.accepted_with_plain_client()
        )
        outlet = self._outlet(transport)
        outlet.send(b"hello")
        outlet.send(b" world")
        self.assertTrue(self.readable(client))
        received = b""
        while len(received) < 11 and self.readable(client):
            received += client.recv(100)
        self.assertEqual(received, b"hello world")
        self.assertEqual((transport._tempDataLen, transport.dataBuffer), (0, b""))

    @defer.inlineCallbacks
    def test_idleSendNotWatched(self) -> Any:
        """
        A message the socket takes whole is not handed to the reactor: the
        transport never asks it to watch the socket for writing (two
        C{epoll_ctl} calls a message), yet the client gets every byte.
        """
        transport, client = yield defer.ensureDeferred(
            self.accepted_with_plain_client()
        )
        outlet = self._outlet(transport)
        watched: list[None] = []
        start = transport.startWriting

        def counting() -> None:
            watched.append(None)
            start()

        self.patch(transport, "startWriting", counting)
        messages = [b"%02d" % i + b"x" * 62 for i in range(20)]
        for message in messages:
            outlet.send(message)
        received = b""
        while len(received) < 64 * 20 and self.readable(client):
            received += client.recv(4096)
        self.assertEqual(received, b"".join(messages))
        self.assertEqual(watched, [])
        self.assertEqual(outlet.bytes_sent, 64 * 20)

    @defer.inlineCallbacks
    def test_orderKeptPastFullSocket(self) -> Any:
        """
        More than the socket takes while the client is not reading: the
        rest waits in the transport, the transport pauses the outlet, later
        messages queue in the outlet, and once the client reads it gets
        every byte in order; nothing is cut off.
        """
        chunks = [bytes([i % 251]) * (17 + 997 * (i % 67)) for i in range(600)]
        total = sum(map(len, chunks))
        transport, collector = yield defer.ensureDeferred(
            self.accepted_with_collector(total)
        )
        outlet = self._outlet(transport)
        # The client does not read until everything has been sent, so its
        # socket fills and the transport must buffer and pause the outlet.
        collector.transport.pauseProducing()
        for chunk in chunks:
            outlet.send(chunk)
        self.assertIsNotNone(
            outlet.paused_since, "the socket took everything; the test needs more"
        )
        self.assertGreater(outlet.queued, 0)
        collector.transport.resumeProducing()
        received = yield collector.done
        self.assertEqual(received, b"".join(chunks))
        self.assertEqual((outlet.queued, outlet.bytes_sent, self.cut), (0, total, []))
        # Idle again: the next message goes out at once.
        collector.wanted += 3
        collector.done = defer.Deferred()
        outlet.send(b"end")
        self.assertEqual((transport._tempDataLen, transport.dataBuffer), (0, b""))
        received = yield collector.done
        self.assertEqual(received[-3:], b"end")

    @defer.inlineCallbacks
    def test_partialSendsInterleaved(self) -> Any:
        """
        Packets as the agent sends them (one near 64 KiB, then a short
        one), to a client reading in small pieces: the socket keeps taking
        part of a packet, and every byte still arrives in order.
        """
        chunks = []
        for i in range(300):
            chunks.append(bytes([i % 256]) * 65519)
            chunks.append(bytes([(i + 128) % 256]) * 17)
        total = sum(map(len, chunks))
        transport, collector = yield defer.ensureDeferred(
            self.accepted_with_collector(total)
        )
        outlet = self._outlet(transport)
        pending = list(chunks)

        def feed() -> None:
            # A few packets a turn, as reads from the instrument come.
            for _ in range(6):
                if pending:
                    outlet.send(pending.pop(0))
            if pending:
                reactor.callLater(0, feed)  # type: ignore[attr-defined]

        feed()
        received = yield collector.done
        self.assertEqual(received, b"".join(chunks))
        self.assertEqual(self.cut, [])

    @defer.inlineCallbacks
    def test_clientResetMidFlush(self) -> Any:
        """
        A client that resets its connection: sending to it never raises,
        and the connection is closed as Twisted always closes it.
        """
        transport, client = yield defer.ensureDeferred(
            self.accepted_with_plain_client()
        )
        outlet = self._outlet(transport)
        outlet.send(b"first")
        self.assertTrue(self.readable(client))
        # A reset, not a close: the next sends fail.
        client.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        client.close()
        for _ in range(5):
            outlet.send(b"x" * 70000)
        yield self.lost
        self.assertFalse(transport.connected)

    @defer.inlineCallbacks
    def test_closingConnectionFinishes(self) -> Any:
        """
        A message sent after the agent asked to close a client's connection
        (a clean close, with bytes still buffered) is not flushed around
        the close: the connection still ends once the buffer is sent.
        """
        chunks = [b"a" * 200000, b"b" * 10]
        transport, collector = yield defer.ensureDeferred(
            self.accepted_with_collector(200000)
        )
        outlet = self._outlet(transport)
        outlet.send(chunks[0])
        transport.loseConnection()
        outlet.send(chunks[1])
        yield self.lost
        self.assertFalse(transport.connected)
        received = yield collector.done
        self.assertEqual(received[:200000], chunks[0])
