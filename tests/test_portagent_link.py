"""
Tests for L{instrumentd.portagent.link.InstrumentLink}: reconnecting with
capped backoff, and logging failed attempts without flooding the log.
"""

from __future__ import annotations

import socket

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from instrumentd.endpoints import LinkEnded
from instrumentd.packet import MAX_PAYLOAD_SIZE
from instrumentd.portagent.link import (
    KEEPALIVE_IDLE,
    BreakNotSupported,
    InstrumentLink,
    LinkBacklogged,
    LinkDown,
    capped_backoff,
    enable_keepalive,
    read_straight,
    read_whole_packets,
)


@implementer(IStreamClientEndpoint)
class ScriptedEndpoint:
    """
    An endpoint that refuses until told to accept, and records attempts.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.accepting = False
        self.attempts: list[float] = []
        self.transport: StringTransport | None = None
        self.protocol: IProtocol | None = None

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        self.attempts.append(self.clock.seconds())
        if not self.accepting:
            return fail(ConnectionRefusedError("no instrument here"))
        protocol = protocolFactory.buildProtocol(None)
        assert protocol is not None
        self.transport = StringTransport()
        self.protocol = protocol
        protocol.makeConnection(self.transport)
        return Deferred.fromCoroutine(_value(protocol))


async def _value(protocol: IProtocol) -> IProtocol:
    return protocol


class LinkTests(SynchronousTestCase):
    """
    The link reconnects forever, with backoff capped at the maximum delay.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = ScriptedEndpoint(self.clock)
        self.events: list[str] = []
        self.data: list[bytes] = []
        self.link = InstrumentLink(
            self.endpoint,
            "tcp:host=127.0.0.1:port=4001",
            on_data=self.data.append,
            on_up=lambda: self.events.append("up"),
            on_down=lambda reason: self.events.append("down"),
            on_attempt_failed=lambda reason: self.events.append("failed: " + reason),
            max_delay=8.0,
            clock=self.clock,
            failure_log_interval=60.0,
        )

    def tearDown(self) -> None:
        self.link.stop()

    def test_backoffCapped(self) -> None:
        """
        Attempts back off exponentially but never wait longer than the cap.
        """
        with capturedLogs():
            self.link.start()
            for _ in range(2000):
                self.clock.advance(0.1)
        gaps = [
            b - a
            for a, b in zip(
                self.endpoint.attempts, self.endpoint.attempts[1:], strict=False
            )
        ]
        self.assertGreater(len(gaps), 15)
        # Exponential growth at first, then the cap, which jitter never
        # exceeds (it takes up to a fifth off instead).
        self.assertLess(gaps[0], 3.0)
        self.assertGreater(gaps[4], gaps[0] * 2)
        self.assertLessEqual(max(gaps), 8.0 + 0.15)
        self.assertGreaterEqual(min(gaps[8:]), 0.8 * 8.0 - 0.15)

    def test_failureReasonReported(self) -> None:
        """
        Each failed attempt is reported with its reason.
        """
        with capturedLogs():
            self.link.start()
        self.assertEqual(len(self.events), 1)
        self.assertIn("connection refused", self.events[0])

    def test_failuresRateLimited(self) -> None:
        """
        Identical failures are logged once per interval, with a count of
        those that were not; the first success says how many there were.
        """
        with capturedLogs() as events:
            self.link.start()
            for _ in range(20):
                self.clock.advance(8)
            self.endpoint.accepting = True
            self.clock.advance(8)
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        attempts = len(self.endpoint.attempts) - 1
        self.assertGreater(attempts, 10)
        self.assertLessEqual(len(warnings), 1 + (20 * 8) // 60 + 1)
        self.assertIn("connection refused", warnings[0]["reason"])
        later = [e for e in warnings[1:] if e.get("suffix")]
        self.assertTrue(later)
        self.assertIn("similar failures not logged", later[0]["suffix"])
        infos = [e for e in events if "before it came up" in e.get("log_format", "")]
        self.assertEqual(len(infos), 1)
        self.assertEqual(self.events[-1], "up")

    def test_noRetryNotices(self) -> None:
        """
        ClientService's own per-retry notice is not logged.
        """
        with capturedLogs() as events:
            self.link.start()
            self.clock.advance(10)
        self.assertFalse(
            [e for e in events if "Scheduling retry" in e.get("log_format", "")]
        )

    def test_problemReported(self) -> None:
        """
        The link says since when it is down and why, in words: from the
        start while it never came up, cleared while up, and from the drop
        when it goes down again, keeping the last reason.
        """
        self.clock.advance(1_796_000_000)
        started = self.clock.seconds()
        with capturedLogs():
            self.link.start()
        self.assertEqual(
            self.link.problem(),
            "instrument link down since 2026-11-30T00:53:20Z: connection refused",
        )
        self.assertEqual(
            self.link.report(),
            {
                "up": False,
                "down_since": started,
                "last_error": "connection refused",
                "last_error_time": started,
                "ended": None,
            },
        )
        self.endpoint.accepting = True
        with capturedLogs():
            self.clock.advance(10)
        self.assertTrue(self.link.connected)
        self.assertIsNone(self.link.problem())
        self.assertEqual(self.link.report()["down_since"], None)
        self.assertEqual(self.link.report()["last_error"], "connection refused")
        self.clock.advance(5)
        assert self.endpoint.transport is not None
        with capturedLogs():
            self.endpoint.transport.loseConnection()
            self.link._protocol.connectionLost(  # type: ignore[union-attr]
                Failure(ConnectionDone())
            )
        self.assertEqual(
            self.link.problem(),
            "instrument link down since 2026-11-30T00:53:35Z: the other side "
            "closed the connection",
        )

    def test_dataAndWrite(self) -> None:
        """
        Bytes read are handed on; writes go to the instrument while up and
        raise L{LinkDown} while down.
        """
        self.assertRaises(LinkDown, self.link.write, b"x")
        self.endpoint.accepting = True
        with capturedLogs():
            self.link.start()
        self.assertTrue(self.link.connected)
        self.link.write(b"DS\r\n")
        assert self.endpoint.transport is not None
        self.assertEqual(self.endpoint.transport.value(), b"DS\r\n")

    def test_backloggedInstrument(self) -> None:
        """
        While the instrument's send buffer is full, writes are refused with
        L{LinkBacklogged} rather than queued without bound; once it drains,
        writes go through again.
        """
        self.endpoint.accepting = True
        with capturedLogs():
            self.link.start()
        transport = self.endpoint.transport
        assert transport is not None
        self.assertTrue(transport.streaming)
        transport.producer.pauseProducing()
        error = self.assertRaises(LinkBacklogged, self.link.write, b"slow")
        self.assertIn("backed up", str(error))
        transport.producer.resumeProducing()
        self.link.write(b"ok")
        self.assertEqual(transport.value(), b"ok")

    def test_droppedLinkReconnects(self) -> None:
        """
        A connection that closes cleanly is an ordinary drop: reported as
        down and connected again.
        """
        self.endpoint.accepting = True
        with capturedLogs():
            self.link.start()
            assert self.endpoint.protocol is not None
            self.endpoint.protocol.connectionLost(Failure(ConnectionDone()))
            self.clock.advance(10)
        self.assertEqual(self.events, ["up", "down", "up"])
        self.assertIsNone(self.link.ended)

    def test_endedLinkNotReconnected(self) -> None:
        """
        A transport that ends with L{LinkEnded} (a recording played to its
        end) is not reconnected: the link reports that it ended, and why,
        through C{on_ended} rather than C{on_down}, and logs it.
        """
        ended: list[str] = []
        link = InstrumentLink(
            self.endpoint,
            "datalog:ctd.datalog",
            on_data=self.data.append,
            on_up=lambda: self.events.append("up"),
            on_down=lambda reason: self.events.append("down"),
            on_ended=ended.append,
            clock=self.clock,
        )
        self.endpoint.accepting = True
        with capturedLogs() as events:
            link.start()
            assert self.endpoint.protocol is not None
            self.endpoint.protocol.connectionLost(
                Failure(LinkEnded("end of the recording"))
            )
            self.clock.advance(3600)
        self.assertEqual(self.events, ["up"])
        self.assertEqual(ended, ["end of the recording"])
        self.assertEqual(link.ended, "end of the recording")
        self.assertEqual(len(self.endpoint.attempts), 1)
        self.assertFalse(link.connected)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIn(
            "instrument link ended: datalog:ctd.datalog: end of the recording; "
            "not reconnecting",
            [e["log_format"].format(**e) for e in events if "reason" in e],
        )
        # Stopping it afterwards (the agent shutting down) is harmless.
        self.successResultOf(link.stop())

    def test_breakNotSupported(self) -> None:
        """
        A link whose transport cannot break says so.
        """
        self.endpoint.accepting = True
        with capturedLogs():
            self.link.start()
        failure = self.failureResultOf(self.link.send_break(100))
        self.assertIsInstance(failure.value, BreakNotSupported)
        self.assertIn("only serial links can", str(failure.value))


class CappedBackoffTests(SynchronousTestCase):
    """
    L{capped_backoff} never waits longer than its cap.
    """

    def test_cap(self) -> None:
        """
        Whatever the jitter, no delay exceeds the cap, and jitter only
        shortens a delay, by at most a fifth.
        """
        for jitter in (0.0, 0.5, 0.999):
            policy = capped_backoff(60.0, jitter=lambda j=jitter: j)
            delays = [policy(n) for n in range(1, 40)]
            self.assertLessEqual(max(delays), 60.0)
            self.assertGreaterEqual(delays[-1], 60.0 * 0.8)
            self.assertEqual(delays, sorted(delays))


class KeepaliveTests(TestCase):
    """
    TCP instrument links probe a silent peer, so a device server that
    vanishes without closing is noticed in about a minute.
    """

    def test_tcpLinkKeepalive(self) -> None:
        """
        A real TCP link has SO_KEEPALIVE on, with short probe timers.
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
        from twisted.internet.protocol import Factory, Protocol

        async def go() -> None:
            port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
                Factory.forProtocol(Protocol)
            )
            self.addCleanup(port.stopListening)
            up: Deferred[None] = Deferred()
            link = InstrumentLink(
                TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
                "tcp",
                on_data=lambda data: None,
                # Resume on the next turn: not from inside ClientService.
                on_up=lambda: reactor.callLater(0, up.callback, None),
                on_down=lambda reason: None,
                clock=reactor,
            )
            link.start()
            self.addCleanup(link.stop)
            await up
            sock = link.transport.getHandle()  # type: ignore[union-attr]
            self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1)
            self.assertEqual(
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), KEEPALIVE_IDLE
            )

        return Deferred.fromCoroutine(go())

    def test_notTcp(self) -> None:
        """
        Other transports (serial lines, replays) are left alone.
        """
        self.assertFalse(enable_keepalive(StringTransport()))


class _Flood(Protocol):
    """
    A device server that writes a whole recording at once on connection.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data

    def connectionMade(self) -> None:
        self.transport.write(self.data)  # type: ignore[union-attr]


class ReadSizeTests(TestCase):
    """
    A read from the instrument fits one packet, so a busy link is framed
    as one packet per read rather than a full one and a 17-byte one.
    """

    def test_tcpReadsFitOnePacket(self) -> None:
        """
        A real TCP link that has megabytes waiting reads them at most
        65,519 bytes at a time, in order and complete.
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
        from twisted.internet.protocol import Factory

        sent = bytes(range(256)) * (4 * 1024 + 3)  # 1 MiB and a bit

        async def go() -> None:
            port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
                Factory.forProtocol(lambda: _Flood(sent))
            )
            self.addCleanup(port.stopListening)
            reads: list[bytes] = []
            done: Deferred[None] = Deferred()

            def on_data(data: bytes) -> None:
                reads.append(data)
                if sum(map(len, reads)) >= len(sent) and not done.called:
                    done.callback(None)

            link = InstrumentLink(
                TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
                "tcp",
                on_data=on_data,
                on_up=lambda: None,
                on_down=lambda reason: None,
                clock=reactor,
            )
            link.start()
            self.addCleanup(link.stop)
            await done
            self.assertEqual(b"".join(reads), sent)
            self.assertLessEqual(max(map(len, reads)), MAX_PAYLOAD_SIZE)
            self.assertEqual(
                link.transport.bufferSize,  # type: ignore[union-attr]
                MAX_PAYLOAD_SIZE,
            )

        return Deferred.fromCoroutine(go())

    def test_smallerReadsLeftAlone(self) -> None:
        """
        A transport that reads less than a packet at a time, or has no read
        size, is not changed.
        """
        small = StringTransport()
        small.bufferSize = 8192  # type: ignore[attr-defined]
        self.assertFalse(read_whole_packets(small))
        self.assertEqual(small.bufferSize, 8192)  # type: ignore[attr-defined]
        self.assertFalse(read_whole_packets(StringTransport()))


class _Closing(Protocol):
    """
    A device server that writes its data, then closes the connection.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data

    def connectionMade(self) -> None:
        self.transport.write(self.data)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class ReadStraightTests(TestCase):
    """
    A plain TCP link hands its reads straight to the link, past the
    endpoint's and ClientService's protocol wrappers; the end of the
    stream still goes through them, so the link reconnects as before.
    """

    def test_readsPastWrappers(self) -> None:
        """
        Every byte of a real TCP link reaches ``on_data`` in order, and the
        endpoint's wrapping protocol sees none of the reads; when the
        device server closes, the link goes down and connects again.
        """
        from twisted.internet import endpoints, reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
        from twisted.internet.protocol import Factory

        wrapped_reads: list[bytes] = []
        original = endpoints._WrappingProtocol.dataReceived

        def counting(wrapper: object, data: bytes) -> None:
            wrapped_reads.append(data)
            original(wrapper, data)  # type: ignore[arg-type]

        self.patch(endpoints._WrappingProtocol, "dataReceived", counting)
        sent = bytes(range(256)) * 64

        async def go() -> None:
            port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
                Factory.forProtocol(lambda: _Closing(sent))
            )
            self.addCleanup(port.stopListening)
            reads: list[bytes] = []
            ups: list[Deferred[None]] = [Deferred(), Deferred()]
            downs: list[str] = []

            def on_up() -> None:
                # Resume on the next turn: not from inside ClientService.
                ready = next(d for d in ups if not d.called)
                reactor.callLater(0, ready.callback, None)

            link = InstrumentLink(
                TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
                "tcp",
                on_data=reads.append,
                on_up=on_up,
                on_down=downs.append,
                clock=reactor,
                max_delay=0.1,
            )
            link.start()
            self.addCleanup(link.stop)
            await ups[0]
            await ups[1]
            self.assertEqual(b"".join(reads)[: len(sent)], sent)
            self.assertEqual(wrapped_reads, [])
            self.assertTrue(downs)

        return Deferred.fromCoroutine(go())

    def test_otherTransportsLeftAlone(self) -> None:
        """
        A transport that is not a plain TCP connection is not changed.
        """
        transport = StringTransport()
        self.assertFalse(read_straight(transport, lambda data: None))
        self.assertFalse(hasattr(transport, "_dataReceived"))
