"""
Tests for L{instrumentd.station.sinks.HttpSink} when things go wrong in the
field: the spool at its bound, a spool that cannot be written, a full disk
(a real tmpfs when the test runs as root, else a fault-injecting layer; see
L{tests.smalldisk}) with a real loopback receiver, and receivers that close
the connection after every answer, as HTTP/1.0 servers do; and what the
station's health and metrics say of it.
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, LoopingCall
from twisted.logger import LogLevel, capturedLogs, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from instrumentd.station.api import StationAPI
from instrumentd.station.service import SupervisedStation
from instrumentd.station.sinks import HttpSink, default_retry_policy
from tests.sinksupport import (
    URL,
    ClosingReceiver,
    Endpoint,
    PythonReceiver,
    Receiver,
    no_jitter,
    particle,
)
from tests.smalldisk import SmallDisk


def value(item: Any) -> Any:
    """
    The number a L{particle} carries, from a particle as a receiver got it.
    """
    return item["record"]["values"]["n"]


def sink_logs(events: list[Any]) -> list[tuple[LogLevel, str]]:
    """
    The level and format of every event the HTTP sink logged.
    """
    return [
        (e["log_level"], e["log_format"])
        for e in events
        if "HTTP sink" in str(e.get("log_format"))
    ]


class HttpSinkBoundTests(SynchronousTestCase):
    """
    At its bound the spool drops the oldest undelivered particles; the sink
    counts them and warns while it is at the bound.
    """

    def make_sink(self, endpoint: Endpoint, **kwargs: Any) -> tuple[HttpSink, Clock]:
        """
        A sink on a clock posting to C{endpoint}; closed when the test ends.
        """
        clock = Clock()
        sink = HttpSink(
            URL,
            spool_dir=self.mktemp(),
            reactor=clock,
            treq_client=StubTreq(endpoint),
            retry_policy=default_retry_policy(jitter=no_jitter),
            **kwargs,
        )
        self.addCleanup(sink.close)
        return sink, clock

    def test_dropsOldestAndWarns(self) -> None:
        """
        During an outage the spool stays within C{max_bytes}: the oldest
        particles go, counted in C{dropped} and C{evicted}, with one
        warning in the log and one in C{warnings} until delivery has
        drained the spool.  The batch in flight is still delivered; the
        receiver sees the gap in seqs; every particle is either delivered
        or counted.
        """
        endpoint = Endpoint(503, 503, 503)
        with capturedLogs() as events:
            sink, clock = self.make_sink(endpoint, batch_size=10, max_bytes=8192)
            for number in range(200):
                sink.write("ctd1", particle(number))
            during = sink.stats()
            for delay in (1, 2, 4, 1):
                clock.advance(delay)
        after = sink.stats()

        self.assertLessEqual(during["spooled_bytes"], 8192)
        self.assertIs(during["spool_at_bound"], True)
        self.assertEqual(during["spool_max_bytes"], 8192)
        self.assertGreater(during["evicted"], 100)
        self.assertEqual(during["dropped"], during["evicted"])
        (warning,) = during["warnings"]
        self.assertIn("at its bound of 8192 bytes since 1970-01-01T00:00:00", warning)
        self.assertIn(f"({during['evicted']} so far)", warning)

        self.assertEqual((after["queued"], after["spool_at_bound"]), (0, False))
        self.assertEqual(after["warnings"], [])
        seqs = [seq for body in endpoint.seqs()[3:] for seq in body]
        self.assertEqual(seqs[:10], list(range(1, 11)))
        self.assertEqual(seqs[10:], list(range(seqs[10], 201)))
        self.assertEqual(seqs[10] - 11, after["evicted"])
        self.assertEqual(after["delivered"] + after["evicted"], 200)
        logs = sink_logs(events)
        self.assertEqual(
            [(level, text.split(";")[0][:40]) for level, text in logs],
            [
                (LogLevel.warn, "HTTP sink {url}: {reason}"),
                (LogLevel.warn, "HTTP sink {url}: the spool {directory} i"),
                (LogLevel.info, "HTTP sink {url}: delivering again after "),
                (LogLevel.info, "HTTP sink {url}: the spool has drained t"),
            ],
        )

    def test_remindsWhileAtBound(self) -> None:
        """
        While the spool stays at its bound, the log says again, at most
        once a minute, how many more particles were dropped.
        """
        endpoint = Endpoint(*([503] * 20))
        sink, clock = self.make_sink(endpoint, batch_size=10, max_bytes=8192)
        written = 0

        def until_evicted() -> int:
            nonlocal written
            before = sink.stats()["evicted"]
            while sink.stats()["evicted"] == before:
                sink.write("ctd1", particle(written))
                written += 1
            evicted: int = sink.stats()["evicted"]
            return evicted

        with capturedLogs() as events:
            while not sink.stats()["spool_at_bound"]:
                sink.write("ctd1", particle(written))
                written += 1
            first = sink.stats()["evicted"]
            clock.advance(30)
            until_evicted()
            early = [e for e in events if "still at" in str(e.get("log_format"))]
            clock.advance(31)
            last = until_evicted()
        reminders = [e for e in events if "still at" in str(e.get("log_format"))]
        self.assertEqual(early, [])
        (reminder,) = reminders
        self.assertEqual(reminder["log_level"], LogLevel.warn)
        self.assertEqual((reminder["count"], reminder["evicted"]), (last - first, last))

    def test_unsentBatchCountedAtClose(self) -> None:
        """
        A batch in flight whose segment was deleted at the bound, and that
        is still unsent when the sink closes, is counted as dropped: the
        next run cannot send it.
        """
        endpoint = Endpoint(503)
        sink, _ = self.make_sink(endpoint, batch_size=10, max_bytes=8192)
        for number in range(200):
            sink.write("ctd1", particle(number))
        evicted = sink.stats()["evicted"]
        self.successResultOf(sink.close())
        stats = sink.stats()
        self.assertEqual(stats["evicted"], evicted + 10)
        self.assertEqual(stats["dropped"], stats["evicted"])
        self.assertEqual(stats["queued"] + stats["evicted"], 200)

    def test_spoolNotWritable(self) -> None:
        """
        While the spool cannot be written, new particles are dropped and
        counted, C{warnings} says so and since when, and C{last_error}
        gives the reason; the first particle spooled again ends it, with a
        line in the log.
        """
        endpoint = Endpoint()
        sink, clock = self.make_sink(endpoint, batch_size=1)
        clock.advance(60)

        def full(fd: int, data: bytes) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        with capturedLogs() as events:
            self.patch(sink._spool, "_write_all", full)
            for number in range(3):
                sink.write("ctd1", particle(number))
            during = sink.stats()
            del sink._spool._write_all
            sink.write("ctd1", particle(3))
        after = sink.stats()
        (warning,) = during["warnings"]
        self.assertIn("cannot be written since 1970-01-01T00:01:00", warning)
        self.assertIn("(3 so far)", warning)
        self.assertIn("No space left on device", warning)
        self.assertIn("No space left on device", str(during["last_error"]))
        self.assertEqual(during["dropped"], 3)
        self.assertEqual((after["warnings"], after["last_error"]), ([], None))
        self.assertIn("No space left", after["last_failure"]["message"])
        self.assertEqual(endpoint.seqs(), [[1]])
        self.assertEqual([level for level, _ in sink_logs(events)], [LogLevel.info])
        self.assertEqual(
            len([e for e in events if e["log_level"] == LogLevel.error]), 1
        )


class StationShowsSinkTests(SynchronousTestCase):
    """
    The station's C{/api/health} and C{/metrics} show what the HTTP sink's
    spool is doing.
    """

    def test_healthAndMetrics(self) -> None:
        """
        While the spool is at its bound, C{/api/health} is C{degraded} with
        the sink's warning, and C{/metrics} has the spool's bytes, its
        bound, and the particles dropped; once drained, the warning goes.
        """
        endpoint = Endpoint(503)
        clock = Clock()
        sink = HttpSink(
            URL,
            spool_dir=self.mktemp(),
            reactor=clock,
            treq_client=StubTreq(endpoint),
            retry_policy=default_retry_policy(jitter=no_jitter),
            batch_size=10,
            max_bytes=8192,
        )
        self.addCleanup(sink.close)
        station = SupervisedStation([], {"ingest": sink}, clock=clock)
        api = StubTreq(StationAPI(station, clock=clock))

        def get(path: str) -> tuple[int, bytes]:
            requested = api.get("http://station.example" + path)
            api.flush()
            response = self.successResultOf(requested)
            return response.code, self.successResultOf(response.content())

        for number in range(200):
            sink.write("ctd1", particle(number))
        code, body = get("/api/health")
        health = json.loads(body)
        self.assertEqual((code, health["status"]), (200, "degraded"))
        (warning,) = health["warnings"]
        self.assertTrue(warning.startswith("sink ingest: the spool "), warning)
        self.assertIn("at its bound of 8192 bytes", warning)
        self.assertEqual(
            health["sinks"]["ingest"]["warnings"], [warning[len("sink ingest: ") :]]
        )

        code, body = get("/metrics")
        metrics = body.decode()
        stats = sink.stats()
        for line in [
            f'instrumentd_sink_spool_bytes{{sink="ingest"}} {stats["spooled_bytes"]}',
            'instrumentd_sink_spool_max_bytes{sink="ingest"} 8192',
            'instrumentd_sink_spool_at_bound{sink="ingest"} 1',
            f'instrumentd_sink_dropped_particles_total{{sink="ingest"}} {stats["dropped"]}',
            f'instrumentd_sink_evicted_particles_total{{sink="ingest"}} {stats["evicted"]}',
            "# TYPE instrumentd_sink_dropped_particles_total counter",
        ]:
            self.assertIn(line, metrics.splitlines())
        self.assertGreater(stats["dropped"], 0)

        clock.advance(1)
        clock.advance(1)
        health = json.loads(get("/api/health")[1])
        self.assertEqual((health["status"], health["warnings"]), ("ok", []))
        self.assertIn(
            'instrumentd_sink_spool_at_bound{sink="ingest"} 0',
            get("/metrics")[1].decode().splitlines(),
        )


class HttpSinkFullDiskTests(TestCase):
    """
    L{HttpSink} with its spool on a disk that fills up, against a real
    twisted.web receiver on loopback.  The disk is a real 256 KiB tmpfs when
    the test runs as root, else a fault-injecting layer (L{SmallDisk}).
    """

    timeout = 120

    @defer.inlineCallbacks
    def test_recoversByItself(self) -> Any:
        """
        The receiver is down and the spool fills the disk: new particles
        are dropped and counted.  When the receiver is back, delivery frees
        the disk and particles are spooled and delivered again with nothing
        done by hand.  Every particle is delivered exactly once and in
        order, or counted as dropped; a restart sends nothing again.
        """
        from twisted.internet import reactor

        disk = SmallDisk(self, 256 * 1024)
        spool_dir = os.path.join(disk.path, "spool")
        receiver = Receiver()
        yield Deferred.fromCoroutine(receiver.up())
        yield Deferred.fromCoroutine(receiver.down())
        self.addCleanup(lambda: Deferred.fromCoroutine(receiver.down()))

        def make_sink() -> HttpSink:
            sink = HttpSink(
                receiver.url,
                spool_dir=spool_dir,
                batch_size=20,
                batch_interval=0.01,
                timeout=10.0,
                retry_policy=lambda failures: 0.05,
                segment_bytes=16 * 1024,
                max_bytes=None,
                reactor=reactor,
            )
            self.addCleanup(sink.close)
            return sink

        sink = make_sink()
        emitted = 0

        def emit() -> None:
            nonlocal emitted
            sink.write("ctd1", particle(emitted))
            emitted += 1

        while sink.stats()["dropped"] < 10 and emitted < 100_000:
            emit()
        full = sink.stats()
        self.assertGreater(full["last_seq"], 300, disk.kind)
        self.assertGreater(full["spooled_bytes"], 128 * 1024)
        # The spool writes many particles at once, so one failed write
        # drops all of them.
        self.assertGreaterEqual(full["dropped"], 10)
        self.assertIn("cannot be written", full["warnings"][0])

        yield Deferred.fromCoroutine(receiver.up())
        emitter = LoopingCall(emit)
        emitter.start(0.005)
        self.addCleanup(lambda: emitter.running and emitter.stop())
        # Particles written after the disk filled arrive: spooling resumed.
        yield receiver.wait_for(full["last_seq"] + 100, timeout=60)
        emitter.stop()
        yield sink.flush()
        spooled = sink.stats()["last_seq"]
        yield receiver.wait_for(spooled, timeout=60)
        yield sink.close()

        stats = sink.stats()
        self.assertEqual(
            [p["seq"] for p in receiver.particles], list(range(1, spooled + 1))
        )
        values = [value(p) for p in receiver.particles]
        self.assertEqual(values, sorted(values))
        self.assertEqual(
            (stats["delivered"], stats["queued"], stats["warnings"]),
            (spooled, 0, []),
        )
        self.assertEqual(stats["delivered"] + stats["dropped"], emitted)
        self.assertIsNone(stats["last_error"])

        # A restart on the same spool sends only what is new: anything sent
        # again would arrive before it, as order is kept.
        again = make_sink()
        self.assertEqual(again.stats()["queued"], 0)
        again.write("ctd1", particle(emitted))
        yield again.flush()
        yield receiver.wait_for(spooled + 1, timeout=60)
        yield again.close()
        self.assertEqual(
            [p["seq"] for p in receiver.particles], list(range(1, spooled + 2))
        )
        self.assertEqual(value(receiver.particles[-1]), emitted)


class HttpSinkClosingReceiverTests(TestCase):
    """
    L{HttpSink} against a real receiver that closes the connection after
    every answer without saying so, as an HTTP/1.0 server does.
    """

    timeout = 120

    @defer.inlineCallbacks
    def test_postedAgainAtOnce(self) -> Any:
        """
        A POST that fails because the server had closed the kept-alive
        connection goes again at once on a new connection, not after the
        retry delay (60 s here, longer than the test waits); the server
        sees each batch once, and every particle arrives once, in order.
        """
        from twisted.internet import reactor

        receiver = ClosingReceiver()
        yield Deferred.fromCoroutine(receiver.up())
        self.addCleanup(lambda: Deferred.fromCoroutine(receiver.down()))
        sink = HttpSink(
            receiver.url,
            spool_dir=self.mktemp(),
            batch_size=10,
            max_batch_size=10,
            batch_interval=0.01,
            retry_policy=lambda failures: 60.0,
            reactor=reactor,
        )
        self.addCleanup(sink.close)
        for number in range(200):
            sink.write(f"ctd{number % 2}", particle(number))
        yield receiver.wait_for(200, timeout=30)
        yield sink.close()

        self.assertEqual([p["seq"] for p in receiver.particles], list(range(1, 201)))
        self.assertEqual([value(p) for p in receiver.particles], list(range(200)))
        self.assertEqual(receiver.requests, 20)
        stats = sink.stats()
        self.assertEqual((stats["delivered"], stats["retries"]), (200, 0))
        self.assertGreater(stats["reconnects"], 0)
        # The POSTs that failed went out on the closed connections.
        self.assertEqual(receiver.connections, 20)
        self.assertIsNone(stats["last_error"])

    @defer.inlineCallbacks
    def test_pythonHttpServer(self) -> Any:
        """
        Against Python's own C{http.server} in a child process (HTTP/1.0,
        closes after every answer), batches go one after another with no
        retry delay, each taken once, in order.
        """
        from twisted.internet import reactor

        receiver = PythonReceiver()
        yield Deferred.fromCoroutine(receiver.start())
        self.addCleanup(lambda: Deferred.fromCoroutine(receiver.stop()))
        sink = HttpSink(
            receiver.url,
            spool_dir=self.mktemp(),
            batch_size=10,
            max_batch_size=10,
            batch_interval=0.01,
            retry_policy=lambda failures: 60.0,
            reactor=reactor,
        )
        self.addCleanup(sink.close)
        for number in range(100):
            sink.write("ctd1", particle(number))
        yield receiver.wait_for(100)
        yield sink.close()
        self.assertEqual(
            receiver.batches, [list(range(n, n + 10)) for n in range(1, 101, 10)]
        )
        stats = sink.stats()
        self.assertEqual((stats["delivered"], stats["retries"]), (100, 0))
        self.assertGreater(stats["reconnects"], 0)

    @defer.inlineCallbacks
    def test_newConnectionWaitsForRetry(self) -> Any:
        """
        A POST that fails on a new connection (the server closes without an
        answer) waits for the retry policy: the sink does not spin.
        """
        from twisted.internet import reactor

        receiver = ClosingReceiver(answer=False)
        yield Deferred.fromCoroutine(receiver.up())
        self.addCleanup(lambda: Deferred.fromCoroutine(receiver.down()))

        failed: Deferred[None] = Deferred()

        def observe(event: dict[str, Any]) -> None:
            # In a later turn: the sink logs before it arms its retry.
            if "spooling and retrying" in str(event.get("log_format")):
                reactor.callLater(0, failed.callback, None)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        sink = HttpSink(
            receiver.url,
            spool_dir=self.mktemp(),
            batch_size=1,
            retry_policy=lambda failures: 60.0,
            reactor=reactor,
        )
        self.addCleanup(sink.close)
        sink.write("ctd1", particle(1))
        yield failed.addTimeout(30, reactor)
        stats = sink.stats()
        yield sink.close()
        self.assertEqual((receiver.requests, receiver.connections), (1, 1))
        self.assertEqual((stats["retries"], stats["reconnects"]), (1, 0))
        self.assertIs(stats["endpoint_up"], False)
