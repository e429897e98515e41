"""
Tests for L{instrumentd.station.sinks.HttpSink}: against scripted endpoints
on a L{Clock} (batching, order, backoff, rejection, timeouts, restart), and
with its default treq client against a real local twisted.web receiver that
goes down and comes back.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, LoopingCall
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent, globalLogPublisher
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from instrumentd.station import sendbuffer
from instrumentd.station.record import as_record
from instrumentd.station.sinks import (
    HttpSink,
    ISink,
    default_retry_policy,
)
from instrumentd.station.spool import Spool
from tests.sinksupport import (
    URL,
    Endpoint,
    FailingClient,
    Receiver,
    no_jitter,
    particle,
    read_json_lines,
    record,
)


class HttpSinkTests(SynchronousTestCase):
    """
    L{HttpSink} on a L{Clock}, against scripted endpoints.
    """

    def make_sink(
        self,
        client: Any,
        *,
        spool_dir: str | None = None,
        clock: Clock | None = None,
        **kwargs: Any,
    ) -> tuple[HttpSink, Clock, str]:
        """
        A sink posting through C{client} (an L{Endpoint} is wrapped in a
        L{StubTreq}), on a clock, spooling to a new directory unless one is
        given; closed when the test ends.
        """
        clock = Clock() if clock is None else clock
        spool_dir = self.mktemp() if spool_dir is None else spool_dir
        if isinstance(client, Endpoint):
            client = StubTreq(client)
        kwargs.setdefault("retry_policy", default_retry_policy(jitter=no_jitter))
        sink = HttpSink(
            URL, spool_dir=spool_dir, reactor=clock, treq_client=client, **kwargs
        )
        self.addCleanup(sink.close)
        return sink, clock, spool_dir

    def test_interface(self) -> None:
        """
        It provides L{ISink}, and its stats are JSON-ready.
        """
        sink, _, _ = self.make_sink(Endpoint())
        self.assertTrue(verifyObject(ISink, sink))
        self.assertEqual(json.loads(json.dumps(sink.stats()))["queued"], 0)

    def test_batches(self) -> None:
        """
        A batch goes as soon as C{batch_size} particles wait, or
        C{batch_interval} after the first of fewer; the body names the
        spool, the batch and each particle's seq and instrument.
        """
        endpoint = Endpoint()
        sink, clock, _ = self.make_sink(endpoint, batch_size=3, batch_interval=1.0)
        for number in range(7):
            sink.write("ctd1" if number % 2 else "ctd2", particle(number))
        self.assertEqual(endpoint.seqs(), [[1, 2, 3], [4, 5, 6]])
        first = endpoint.bodies[0]
        self.assertEqual(first["source"], sink._spool.source)
        self.assertEqual(first["batch"], 1)
        self.assertEqual(
            first["records"][1],
            {"seq": 2, "instrument": "ctd1", "record": record(1)},
        )
        clock.advance(0.99)
        self.assertEqual(len(endpoint.bodies), 2)
        clock.advance(0.01)
        self.assertEqual(endpoint.seqs(), [[1, 2, 3], [4, 5, 6], [7]])
        stats = sink.stats()
        self.assertEqual(
            (
                stats["delivered"],
                stats["batches_delivered"],
                stats["queued"],
                stats["endpoint_up"],
            ),
            (7, 3, 0, True),
        )
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_catchUpBatches(self) -> None:
        """
        When more than C{batch_size} particles wait (the endpoint was down,
        or slower than they came), the next POSTs take up to
        C{max_batch_size} each, one at a time and in order.
        """
        endpoint = Endpoint(503)
        sink, clock, _ = self.make_sink(endpoint, batch_size=3, max_batch_size=6)
        for number in range(13):
            sink.write("ctd1", particle(number))
        self.assertEqual(endpoint.seqs(), [[1, 2, 3]])
        clock.advance(1)
        self.assertEqual(
            endpoint.seqs(),
            [[1, 2, 3], [1, 2, 3], [4, 5, 6, 7, 8, 9], [10, 11, 12, 13]],
        )
        self.assertEqual((sink.stats()["delivered"], sink.stats()["queued"]), (13, 0))

    def test_catchUpDefault(self) -> None:
        """
        By default a catch-up POST takes up to ten times C{batch_size}; a
        C{max_batch_size} below C{batch_size} is refused, naming both.
        """
        endpoint = Endpoint(503)
        sink, clock, _ = self.make_sink(endpoint, batch_size=2)
        for number in range(30):
            sink.write("ctd1", particle(number))
        clock.advance(1)
        self.assertEqual([len(seqs) for seqs in endpoint.seqs()], [2, 2, 20, 8])
        error = self.assertRaises(
            ValueError,
            HttpSink,
            URL,
            spool_dir=self.mktemp(),
            batch_size=10,
            max_batch_size=5,
            reactor=Clock(),
            treq_client=StubTreq(Endpoint()),
        )
        self.assertIn(
            "max_batch_size must be at least batch_size (10), not 5", str(error)
        )

    def test_catchUpTooLarge(self) -> None:
        """
        A receiver that answers 413 to a catch-up batch gets it again in
        batches of C{batch_size}, and no larger ones after; nothing is
        rejected or lost.
        """
        endpoint = Endpoint(503, 200, 413)
        sink, clock, _ = self.make_sink(endpoint, batch_size=3)
        for number in range(13):
            sink.write("ctd1", particle(number))
        with capturedLogs() as events:
            clock.advance(1)
            clock.advance(0)
        self.assertEqual(
            endpoint.seqs(),
            [
                [1, 2, 3],
                [1, 2, 3],
                list(range(4, 14)),
                [4, 5, 6],
                [7, 8, 9],
                [10, 11, 12],
            ],
        )
        self.assertIn("too large", " ".join(formatEvent(e) for e in events))
        for number in range(13, 20):
            sink.write("ctd1", particle(number))
        self.assertEqual(endpoint.seqs()[6:], [[13, 14, 15], [16, 17, 18]])
        clock.advance(1)
        stats = sink.stats()
        self.assertEqual(
            (stats["delivered"], stats["rejected"], stats["queued"]), (20, 0, 0)
        )
        self.assertEqual(endpoint.seqs()[-1], [19, 20])

    def test_headers(self) -> None:
        """
        Configured headers go with every POST, and the body is JSON.
        """
        endpoint = Endpoint()
        sink, _, _ = self.make_sink(
            endpoint, batch_size=1, headers={"Authorization": "Bearer s3cret"}
        )
        sink.write("ctd1", particle(1))
        headers = endpoint.requests[0].requestHeaders
        self.assertEqual(headers.getRawHeaders("authorization"), ["Bearer s3cret"])
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/json"])

    def test_flushSendsPartialBatch(self) -> None:
        """
        L{HttpSink.flush} sends waiting particles without waiting for the
        batch to fill.
        """
        endpoint = Endpoint()
        sink, _, _ = self.make_sink(endpoint, batch_size=10)
        sink.write("ctd1", particle(1))
        self.assertEqual(endpoint.bodies, [])
        self.successResultOf(sink.flush())
        self.assertEqual(endpoint.seqs(), [[1]])

    def test_retryBackoff(self) -> None:
        """
        On 503 the same batch is retried after 1 s, then 2 s, ...;
        particles written meanwhile wait in the spool and follow in order
        once the endpoint answers.  The outage is logged once when it starts
        and once when it ends.
        """
        endpoint = Endpoint(503, 503, 503)
        with capturedLogs() as events:
            sink, clock, _ = self.make_sink(endpoint, batch_size=2, max_batch_size=2)
            sink.write("ctd1", particle(1))
            sink.write("ctd1", particle(2))
            self.assertEqual(endpoint.seqs(), [[1, 2]])
            self.assertIs(sink.stats()["endpoint_up"], False)
            for number in range(3, 8):
                sink.write("ctd1", particle(number))
            self.assertEqual(sink.stats()["in_flight"], 2)
            clock.advance(0.99)
            self.assertEqual(len(endpoint.bodies), 1)
            clock.advance(0.01)
            self.assertEqual(len(endpoint.bodies), 2)
            clock.advance(1.99)
            self.assertEqual(len(endpoint.bodies), 2)
            clock.advance(0.01)
            self.assertEqual(len(endpoint.bodies), 3)
            clock.advance(4.0)
        self.assertEqual(endpoint.seqs(), [[1, 2]] * 4 + [[3, 4], [5, 6]])
        clock.advance(1.0)
        self.assertEqual(endpoint.seqs()[-1], [7])
        stats = sink.stats()
        self.assertEqual(
            (stats["retries"], stats["delivered"], stats["endpoint_up"]), (3, 7, True)
        )
        self.assertEqual(
            [e["log_level"] for e in events if "HTTP sink" in e["log_format"]],
            [LogLevel.warn, LogLevel.info],
        )

    def test_lastErrorClearedOnRecovery(self) -> None:
        """
        C{last_error} says what is wrong while it is wrong and is C{None}
        once a batch is delivered again; C{last_failure} keeps the last
        error with its time.
        """
        endpoint = Endpoint(503, 503)
        sink, clock, _ = self.make_sink(endpoint, batch_size=1)
        self.assertEqual(
            (sink.stats()["last_error"], sink.stats()["last_failure"]), (None, None)
        )
        clock.advance(100)
        sink.write("ctd1", particle(1))
        self.assertIn("HTTP 503", str(sink.stats()["last_error"]))
        clock.advance(1)
        during = sink.stats()
        self.assertIn("HTTP 503", str(during["last_error"]))
        self.assertEqual(
            during["last_failure"],
            {"message": during["last_error"], "time": "1970-01-01T00:01:41+00:00"},
        )
        clock.advance(2)
        stats = sink.stats()
        self.assertEqual((stats["delivered"], stats["endpoint_up"]), (1, True))
        self.assertIsNone(stats["last_error"])
        self.assertEqual(stats["last_failure"], during["last_failure"])
        json.dumps(stats)

    def test_backoffCapped(self) -> None:
        """
        The default policy doubles from 1 s and stops growing at 60 s.
        """
        policy = default_retry_policy(jitter=no_jitter)
        self.assertEqual([policy(n) for n in range(1, 9)], [1, 2, 4, 8, 16, 32, 60, 60])
        jittered = default_retry_policy()
        self.assertTrue(1.0 <= jittered(1) < 2.0)

    def test_connectionErrors(self) -> None:
        """
        A connection error is retried like a 5xx.
        """
        endpoint = Endpoint()
        sink, clock, _ = self.make_sink(FailingClient(2, endpoint), batch_size=1)
        sink.write("ctd1", particle(1))
        self.assertEqual(sink.stats()["endpoint_up"], False)
        self.assertIn("ConnectionRefusedError", str(sink.stats()["last_error"]))
        clock.advance(1.0)
        clock.advance(2.0)
        self.assertEqual(endpoint.seqs(), [[1]])
        self.assertEqual(sink.stats()["retries"], 2)

    def test_retryAfter(self) -> None:
        """
        A 429's C{Retry-After} seconds are waited when longer than the
        backoff.
        """
        endpoint = Endpoint(429, headers={b"Retry-After": b"30"})
        sink, clock, _ = self.make_sink(endpoint, batch_size=1)
        sink.write("ctd1", particle(1))
        clock.advance(29.9)
        self.assertEqual(len(endpoint.bodies), 1)
        clock.advance(0.1)
        self.assertEqual(len(endpoint.bodies), 2)
        self.assertEqual(sink.stats()["delivered"], 1)

    def test_timeout(self) -> None:
        """
        A POST with no answer within C{timeout} is abandoned and retried.
        """
        endpoint = Endpoint(None)
        sink, clock, _ = self.make_sink(endpoint, batch_size=1, timeout=10.0)
        sink.write("ctd1", particle(1))
        clock.advance(9.9)
        self.assertEqual(sink.stats()["retries"], 0)
        clock.advance(0.1)
        self.assertEqual(sink.stats()["retries"], 1)
        self.assertIn("no answer within 10.0 s", str(sink.stats()["last_error"]))
        clock.advance(1.0)
        self.assertEqual(endpoint.seqs(), [[1], [1]])
        self.assertEqual(sink.stats()["delivered"], 1)

    def test_permanentRejection(self) -> None:
        """
        A 400 is not retried: the batch is logged, counted, kept in
        C{rejected/} with the answer, and the next batch goes on.
        """
        endpoint = Endpoint(400)
        with capturedLogs() as events:
            sink, clock, spool_dir = self.make_sink(endpoint, batch_size=2)
            for number in range(4):
                sink.write("ctd1", particle(number))
        self.assertEqual(endpoint.seqs(), [[1, 2], [3, 4]])
        self.assertEqual(clock.getDelayedCalls(), [])
        stats = sink.stats()
        self.assertEqual(
            (stats["rejected"], stats["delivered"], stats["retries"], stats["queued"]),
            (2, 2, 0, 0),
        )
        (kept,) = read_json_lines(
            os.path.join(spool_dir, "rejected", "1970-01-01.jsonl")
        )
        self.assertEqual(kept["status"], 400)
        self.assertIn("scripted", kept["response"])
        self.assertEqual(kept["payload"], endpoint.bodies[0])
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("rejected particles 1-2", formatEvent(errors[0]))

    def test_retryableClientErrors(self) -> None:
        """
        408 and 429 are retried, not rejected.
        """
        endpoint = Endpoint(408, 429)
        sink, clock, _ = self.make_sink(endpoint, batch_size=1)
        sink.write("ctd1", particle(1))
        clock.advance(1.0)
        clock.advance(2.0)
        self.assertEqual(endpoint.seqs(), [[1], [1], [1]])
        self.assertEqual((sink.stats()["rejected"], sink.stats()["delivered"]), (0, 1))

    def test_restartResumes(self) -> None:
        """
        A sink stopped during an outage leaves its particles in the spool;
        a new sink on the same spool sends the rest, in order, once.
        """
        down = Endpoint(*([503] * 20))
        sink, clock, spool_dir = self.make_sink(down, batch_size=2, max_batch_size=2)
        for number in range(5):
            sink.write("ctd1", particle(number))
        clock.advance(1.0)
        self.successResultOf(sink.close())
        self.assertEqual(down.seqs(), [[1, 2], [1, 2]])
        sink.write("ctd1", particle(99))
        self.assertEqual(sink.stats()["dropped"], 1)

        up = Endpoint()
        again, clock, _ = self.make_sink(
            up, spool_dir=spool_dir, batch_size=2, max_batch_size=2
        )
        self.assertEqual(up.seqs(), [])
        clock.advance(0)
        self.assertEqual(up.seqs(), [[1, 2], [3, 4]])
        clock.advance(1.0)
        again.write("ctd1", particle(5))
        clock.advance(1.0)
        self.assertEqual(up.seqs(), [[1, 2], [3, 4], [5], [6]])
        self.assertEqual(
            [p["record"]["values"]["n"] for body in up.bodies for p in body["records"]],
            [0, 1, 2, 3, 4, 5],
        )

    def test_oldSpoolConverted(self) -> None:
        """
        A spool left by a version before records (particles in the old
        layout under C{"particle"}) is still delivered: each entry is sent as
        its record, version 2, with its seq; one that is no particle is sent
        as stored rather than lost; what this version spools follows.
        """
        spool_dir = self.mktemp()
        old = Spool(spool_dir)
        old.append({"instrument": "ctd1", "particle": particle(1)})
        old.append({"instrument": "ctd2", "particle": {"junk": True}})
        old.append({"instrument": "ctd1", "particle": particle(2)})
        old.close()
        up = Endpoint()
        sink, clock, _ = self.make_sink(up, spool_dir=spool_dir, batch_size=10)
        sink.write("ctd1", particle(3))
        clock.advance(1.0)
        [body] = up.bodies
        self.assertEqual(
            body["records"],
            [
                {"seq": 1, "instrument": "ctd1", "record": record(1)},
                {"seq": 2, "instrument": "ctd2", "particle": {"junk": True}},
                {"seq": 3, "instrument": "ctd1", "record": record(2)},
                {"seq": 4, "instrument": "ctd1", "record": record(3)},
            ],
        )
        self.assertEqual(sink.stats()["delivered"], 4)

    def test_recordBytesSpliced(self) -> None:
        """
        The spool holds the record's bytes as they were encoded, and the
        batch carries them unchanged: the record is encoded once.
        """
        up = Endpoint()
        sink, clock, spool_dir = self.make_sink(up)
        record_ = as_record("ctd1", particle(1))
        sink.write("ctd1", record_)
        # Written at the end of the reactor's turn.
        clock.advance(0)
        [segment] = [name for name in os.listdir(spool_dir) if name.endswith(".jsonl")]
        with open(os.path.join(spool_dir, segment), "rb") as f:
            self.assertIn(b'"record":' + record_.json + b"}\n", f.read())
        clock.advance(1.0)
        self.assertEqual(up.bodies[0]["records"][0]["record"], json.loads(record_.json))
        self.assertEqual(record_.encodings, 1)

    def test_invalidDropped(self) -> None:
        """
        A mapping that is no record is dropped, counted in C{invalid} and
        C{dropped}, and logged; nothing is spooled.
        """
        sink, _, _ = self.make_sink(Endpoint())
        with capturedLogs() as events:
            sink.write("ctd1", {"record": "instrumentd.sample", "version": 7})
        stats = sink.stats()
        self.assertEqual(
            (stats["invalid"], stats["dropped"], stats["last_seq"]), (1, 1, 0)
        )
        self.assertIn("version 7", formatEvent(events[0]))

    def test_restartAfterDelivery(self) -> None:
        """
        What was delivered before a restart is not sent again.
        """
        endpoint = Endpoint()
        sink, _, spool_dir = self.make_sink(endpoint, batch_size=2)
        for number in range(4):
            sink.write("ctd1", particle(number))
        self.successResultOf(sink.close())
        again, _, _ = self.make_sink(endpoint, spool_dir=spool_dir, batch_size=2)
        again.write("ctd1", particle(4))
        again.write("ctd1", particle(5))
        self.assertEqual(endpoint.seqs(), [[1, 2], [3, 4], [5, 6]])

    def test_memoryBounded(self) -> None:
        """
        However long the outage, the sink holds one batch; the rest is on
        disk, and the disk is cleared once it is delivered.
        """
        endpoint = Endpoint(*([503] * 3))
        sink, clock, _ = self.make_sink(endpoint, batch_size=10, segment_bytes=4096)
        for number in range(2000):
            sink.write("ctd1", particle(number))
        stats = sink.stats()
        self.assertEqual((stats["in_flight"], stats["queued"]), (10, 2000))
        self.assertGreater(stats["spooled_bytes"], 2000 * 200)
        for delay in (1, 2, 4):
            clock.advance(delay)
        stats = sink.stats()
        self.assertEqual(
            (stats["delivered"], stats["queued"], stats["in_flight"]), (2000, 0, 0)
        )
        self.assertLess(stats["spooled_bytes"], 4096 + 400)
        self.assertEqual(
            [s for body in endpoint.seqs()[3:] for s in body], list(range(1, 2001))
        )

    def test_spoolWrittenOnceATurn(self) -> None:
        """
        The particles a sink takes in one turn of the reactor reach the
        spool's file with one write, at the end of the turn; a batch due
        in the turn writes them first, so nothing is sent that is not in the
        file.
        """
        endpoint = Endpoint()
        sink, clock, _ = self.make_sink(endpoint, batch_size=1000)
        writes: list[int] = []
        write_all = sink._spool._write_all

        def counting(fd: int, data: bytes) -> None:
            writes.append(data.count(b"\n"))
            write_all(fd, data)

        self.patch(sink._spool, "_write_all", counting)
        for number in range(50):
            sink.write("ctd1", particle(number))
        self.assertEqual(writes, [])
        clock.advance(0)
        self.assertEqual(writes, [50])
        for number in range(50, 1000):
            sink.write("ctd1", particle(number))
        self.assertEqual(sum(writes), 1000)
        self.assertEqual(endpoint.seqs(), [list(range(1, 1001))])
        self.assertLess(len(writes), 20)

    def test_spoolErrorDropsAndCounts(self) -> None:
        """
        A particle that cannot be spooled is dropped, counted and logged;
        write does not raise, and the next particle is spooled.
        """
        endpoint = Endpoint()
        sink, _, _ = self.make_sink(endpoint, batch_size=1)

        def full(fd: int, data: bytes) -> None:
            raise OSError(28, "No space left on device")

        with capturedLogs() as events:
            self.patch(sink._spool, "_write_all", full)
            sink.write("ctd1", particle(1))
        del sink._spool._write_all
        sink.write("ctd1", particle(2))
        self.assertEqual(
            len([e for e in events if e["log_level"] == LogLevel.error]), 1
        )
        self.assertEqual(sink.stats()["dropped"], 1)
        self.assertEqual(endpoint.seqs(), [[1]])
        self.assertEqual(endpoint.bodies[0]["records"][0]["record"], record(2))

    def test_closeWaitsForAnswer(self) -> None:
        """
        Close waits for the POST in flight, so a delivered batch is recorded
        as delivered, and sends nothing more.
        """
        endpoint = Endpoint(None)
        stub = StubTreq(endpoint)
        sink, clock, _ = self.make_sink(stub, batch_size=1)
        sink.write("ctd1", particle(1))
        sink.write("ctd1", particle(2))
        closing = sink.close()
        self.assertNoResult(closing)
        (request,) = endpoint.hanging
        request.write(b"{}")
        request.finish()
        stub.flush()
        self.successResultOf(closing)
        self.assertEqual((sink.stats()["delivered"], sink.stats()["queued"]), (1, 1))
        self.assertEqual(len(endpoint.bodies), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_bodyWrittenWhole(self) -> None:
        """
        With its default client, the sink hands a batch's whole body to the
        connection as the request starts, not 64 kB per step of the global
        cooperator (treq's default for bytes), which a station busy with
        thousands of instruments ran once per long reactor turn: each POST
        then took many turns and the sink starved.  Here the global
        reactor never runs, so nothing of the body would be written.  And
        the connection sends the whole body in one write event, where
        Twisted's default sends 128 kB a turn.
        """
        reactor = MemoryReactorClock()
        sink = HttpSink(
            "http://127.0.0.1:8080/ingest",
            spool_dir=self.mktemp(),
            reactor=reactor,
            batch_size=1000,
        )
        self.addCleanup(sink.close)
        for n in range(1000):
            sink.write("ctd1", particle(n))
        (connect,) = reactor.tcpClients
        protocol = connect[2].buildProtocol(None)
        transport = StringTransport()
        # A TCP transport's default: the most one turn's write event sends.
        transport.SEND_LIMIT = 128 * 1024  # type: ignore[attr-defined]
        protocol.makeConnection(transport)
        # Sent in one write event, not 128 kB a reactor turn.
        self.assertGreaterEqual(transport.SEND_LIMIT, 16 << 20)  # type: ignore[attr-defined]
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertGreater(len(body), 1 << 17)
        self.assertIn(f"Content-Length: {len(body)}".encode(), head)
        document = json.loads(body)
        self.assertEqual(
            [entry["seq"] for entry in document["records"]], list(range(1, 1001))
        )
        self.assertEqual(sink.stats()["in_flight"], 1000)


class HttpSinkReceiverTests(TestCase):
    """
    L{HttpSink} with its default treq client against a real twisted.web
    receiver on loopback.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_outage(self) -> Any:
        """
        Particles keep flowing while the receiver goes down and comes back;
        every particle arrives exactly once and in order.
        """
        from twisted.internet import reactor

        receiver = Receiver()
        yield Deferred.fromCoroutine(receiver.up())
        self.addCleanup(lambda: Deferred.fromCoroutine(receiver.down()))

        # The sink logs the start of an outage once; that is the event to
        # wait for before bringing the receiver back.
        noticed: Deferred[None] = Deferred()

        def observe(event: dict[str, Any]) -> None:
            text = str(event.get("log_format"))
            if "spooling and retrying" in text and not noticed.called:
                noticed.callback(None)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

        sink = HttpSink(
            receiver.url,
            spool_dir=self.mktemp(),
            batch_size=10,
            batch_interval=0.02,
            timeout=5.0,
            retry_policy=lambda failures: 0.05,
            reactor=reactor,
        )
        self.addCleanup(sink.close)

        emitted = 0
        marks: list[tuple[int, Deferred[None]]] = []

        def emit() -> None:
            nonlocal emitted
            sink.write(f"ctd{emitted % 3}", particle(emitted))
            emitted += 1
            for mark in [m for m in marks if m[0] <= emitted]:
                marks.remove(mark)
                mark[1].callback(None)

        def emitted_at_least(count: int) -> Deferred[None]:
            reached: Deferred[None] = Deferred()
            marks.append((count, reached))
            return reached.addTimeout(10, reactor)

        emitter = LoopingCall(emit)
        emitter.start(0.002)
        self.addCleanup(lambda: emitter.running and emitter.stop())

        yield receiver.wait_for(100)
        yield Deferred.fromCoroutine(receiver.down())
        yield noticed.addTimeout(10, reactor)
        yield emitted_at_least(emitted + 50)
        during_outage = sink.stats()
        yield Deferred.fromCoroutine(receiver.up())
        yield emitted_at_least(emitted + 50)
        emitter.stop()
        total = emitted
        yield sink.flush()
        yield receiver.wait_for(total)
        yield sink.close()

        self.assertIs(during_outage["endpoint_up"], False)
        self.assertGreater(during_outage["queued"], 50)
        self.assertEqual(
            [p["seq"] for p in receiver.particles], list(range(1, total + 1))
        )
        self.assertEqual(
            [(p["instrument"], p["record"]["values"]["n"]) for p in receiver.particles],
            [(f"ctd{n % 3}", n) for n in range(total)],
        )
        stats = sink.stats()
        self.assertEqual(
            (
                stats["delivered"],
                stats["queued"],
                stats["dropped"],
                stats["endpoint_up"],
            ),
            (total, 0, 0, True),
        )

    @defer.inlineCallbacks
    def test_sendBuffer(self) -> Any:
        """
        The sink's connection to its receiver has a kernel send buffer of
        L{sendbuffer.SEND_BUFFER} (as much as the system allows): a batch
        goes out in as few turns of a busy station's reactor as it can.
        """
        from twisted.internet import reactor

        try:
            with open("/proc/sys/net/core/wmem_max") as f:
                most = int(f.read())
        except OSError:
            raise SkipTest("no /proc/sys/net/core/wmem_max (not Linux)") from None
        receiver = Receiver()
        yield Deferred.fromCoroutine(receiver.up())
        self.addCleanup(lambda: Deferred.fromCoroutine(receiver.down()))
        sink = HttpSink(
            receiver.url,
            spool_dir=self.mktemp(),
            batch_size=1,
            batch_interval=0.01,
            reactor=reactor,
        )
        self.addCleanup(sink.close)
        handed_out: list[Any] = []
        get_connection = sink._pool.getConnection

        def note(key: Any, endpoint: Any) -> Deferred[Any]:
            return get_connection(key, endpoint).addCallback(
                lambda connection: handed_out.append(connection) or connection
            )

        sink._pool.getConnection = note  # type: ignore[method-assign]
        sink.write("ctd0", particle(0))
        yield receiver.wait_for(1)
        [connection] = handed_out
        handle = connection.transport.getHandle()
        self.assertGreaterEqual(
            handle.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
            # Linux doubles what it is asked for, within its maximum.
            2 * min(sendbuffer.SEND_BUFFER, most),
        )

    @defer.inlineCallbacks
    def test_backlogInLargeBatches(self) -> Any:
        """
        A backlog goes out in catch-up batches, one POST at a time: of
        2,500 records spooled while the receiver was down, the first 1,000
        (the batch that failed) go again, then the 1,500 behind them in one
        POST, every record once and in order.
        """
        from twisted.internet import reactor

        receiver = Receiver()
        yield Deferred.fromCoroutine(receiver.up())
        self.addCleanup(lambda: Deferred.fromCoroutine(receiver.down()))
        yield Deferred.fromCoroutine(receiver.down())
        sink = HttpSink(
            receiver.url,
            spool_dir=self.mktemp(),
            timeout=5.0,
            retry_policy=lambda failures: 0.05,
            reactor=reactor,
        )
        self.addCleanup(sink.close)
        total = 2500
        for n in range(total):
            sink.write(f"ctd{n % 7}", particle(n))
        yield Deferred.fromCoroutine(receiver.up())
        yield sink.flush()
        yield receiver.wait_for(total, timeout=30)
        yield sink.close()
        self.assertEqual(receiver.batch_sizes, [1000, 1500])
        self.assertEqual(
            [p["seq"] for p in receiver.particles], list(range(1, total + 1))
        )
        self.assertEqual(
            [(p["instrument"], p["record"]["values"]["n"]) for p in receiver.particles],
            [(f"ctd{n % 7}", n) for n in range(total)],
        )
        self.assertEqual(
            (sink.stats()["delivered"], sink.stats()["queued"]), (total, 0)
        )
