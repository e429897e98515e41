"""
Tests for L{instrumentd.station.sinks} and L{instrumentd.station.spool}:
JSON-lines files (layout, sample-time dating, UTC rotation, flush timer,
open-file bound, errors), the disk spool (order, cursor, restart, torn
lines), the HTTP sink against scripted endpoints on a L{Clock} (batching,
order, backoff, rejection, timeouts, restart), and the HTTP sink against a
real local twisted.web receiver that goes down and comes back.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock, LoopingCall
from twisted.logger import LogLevel, capturedLogs, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface.verify import verifyObject

from instrumentd.driver.events import EventBus, SampleEvent, StateChangeEvent
from instrumentd.driver.particles import DataParticle
from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.station.sinks import (
    HttpSink,
    ISink,
    JsonLinesSink,
    MemorySink,
    connect_sink,
    default_retry_policy,
    sample_time,
)
from instrumentd.station.spool import Spool, SpoolInUseError

URL = "http://ingest.example/particles"


def utc(text: str) -> float:
    """
    Unix time of an ISO 8601 UTC time without zone, e.g.
    ``2026-11-24T23:59:59.5``.
    """
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def particle(number: int, when: str = "2026-11-24T12:00:00") -> dict[str, object]:
    """
    A particle's dict form: stream ``ctd_parsed``, sampled at ``when``
    (UTC) by its port timestamp, with one value ``n`` = ``number``.
    """
    return {
        "pkt_format_id": "JSON_Data",
        "pkt_version": 1,
        "stream_name": "ctd_parsed",
        "port_timestamp": utc(when) + NTP_UNIX_OFFSET,
        "driver_timestamp": utc(when) + NTP_UNIX_OFFSET + 0.5,
        "preferred_timestamp": "port_timestamp",
        "quality_flag": "ok",
        "values": [{"value_id": "n", "value": number}],
    }


def read_lines(path: str) -> list[bytes]:
    """
    The lines of the file at ``path``, without their newlines.
    """
    with open(path, "rb") as f:
        return f.read().splitlines()


def read_json_lines(path: str) -> list[Any]:
    """
    The JSON objects in the JSON-lines file at ``path``.
    """
    return [json.loads(line) for line in read_lines(path)]


class CountParticle(DataParticle):
    """
    A particle whose one value is the record's text as a number.
    """

    stream_name = "count"

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        return [{"value_id": "count", "value": int(raw)}]


class SampleTimeTests(SynchronousTestCase):
    """
    L{sample_time} reads a particle's preferred timestamp with the same
    fallback rule as L{DataParticle}.
    """

    def test_preferred(self) -> None:
        """
        The timestamp named by C{preferred_timestamp} is used, converted
        from NTP to Unix time.
        """
        record = particle(1, "2026-11-24T12:00:00")
        record["internal_timestamp"] = utc("2026-01-01T00:00:00") + NTP_UNIX_OFFSET
        self.assertEqual(sample_time(record), utc("2026-11-24T12:00:00"))

    def test_fallback(self) -> None:
        """
        When the preferred timestamp is absent or 0, the internal one comes
        first, then the port one, then the driver one.
        """
        ntp = NTP_UNIX_OFFSET
        self.assertEqual(
            sample_time(
                {
                    "preferred_timestamp": "port_timestamp",
                    "port_timestamp": 0,
                    "internal_timestamp": ntp + 5,
                    "driver_timestamp": ntp + 9,
                }
            ),
            5,
        )
        self.assertEqual(
            sample_time(
                {"preferred_timestamp": "internal_timestamp", "port_timestamp": ntp + 7}
            ),
            7,
        )
        self.assertEqual(sample_time({"driver_timestamp": ntp + 9}), 9)

    def test_none(self) -> None:
        """
        A particle without a usable timestamp has no sample time; text and
        booleans are not timestamps.
        """
        self.assertIsNone(sample_time({}))
        self.assertIsNone(
            sample_time({"port_timestamp": "soon", "driver_timestamp": True})
        )


class MemorySinkTests(SynchronousTestCase):
    """
    L{MemorySink} keeps particles for tests and demos.
    """

    def test_interface(self) -> None:
        """
        It provides L{ISink}.
        """
        self.assertTrue(verifyObject(ISink, MemorySink()))

    def test_keeps(self) -> None:
        """
        Particles and dicts are kept as dicts, in order, per instrument.
        """
        sink = MemorySink()
        sink.write("ctd1", particle(1))
        sink.write("ctd2", CountParticle(b"7", driver_timestamp=1.0))
        self.assertEqual(sink.particles("ctd1"), [particle(1)])
        self.assertEqual(
            sink.particles("ctd2")[0]["values"], [{"value_id": "count", "value": 7}]
        )
        self.assertEqual(len(sink.particles()), 2)

    def test_waitFor(self) -> None:
        """
        L{MemorySink.wait_for} fires once that many particles were written.
        """
        sink = MemorySink()
        waiting = sink.wait_for(2)
        sink.write("ctd1", particle(1))
        self.assertNoResult(waiting)
        sink.write("ctd1", particle(2))
        self.successResultOf(waiting)
        self.successResultOf(sink.wait_for(1))

    def test_bounded(self) -> None:
        """
        With C{max_records}, only the newest are kept and the rest counted
        as dropped; after close, writes are dropped.
        """
        sink = MemorySink(max_records=2)
        for number in range(3):
            sink.write("ctd1", particle(number))
        self.assertEqual(
            [p["values"] for p in sink.particles()],
            [particle(1)["values"], particle(2)["values"]],
        )
        self.successResultOf(sink.close())
        sink.write("ctd1", particle(4))
        self.assertEqual(
            sink.stats(), {"written": 3, "kept": 2, "dropped": 2, "closed": True}
        )


class ConnectSinkTests(SynchronousTestCase):
    """
    L{connect_sink} feeds a sink from a driver's event bus.
    """

    def test_samples(self) -> None:
        """
        Sample events' particles reach the sink under the instrument's name;
        other events do not; after unsubscribing nothing does.
        """
        bus = EventBus(Clock())
        sink = MemorySink()
        stop = connect_sink(bus, "ctd1", sink)
        one = CountParticle(b"1", driver_timestamp=1.0)
        bus.publish(SampleEvent(one, time=1.0))
        bus.publish(StateChangeEvent("COMMAND", time=2.0))
        stop()
        bus.publish(SampleEvent(CountParticle(b"2", driver_timestamp=1.0), time=3.0))
        self.assertEqual(list(sink.records), [("ctd1", one.to_dict())])


class JsonLinesSinkTests(SynchronousTestCase):
    """
    L{JsonLinesSink} writes one file per instrument, stream and UTC day of
    the sample, buffered and flushed on a timer.
    """

    def make_sink(
        self, start: str = "2026-11-24T12:00:00", **kwargs: Any
    ) -> tuple[JsonLinesSink, Clock, str]:
        """
        A sink in a new directory on a clock set to C{start}; closed when
        the test ends.
        """
        clock = Clock()
        clock.advance(utc(start))
        directory = self.mktemp()
        sink = JsonLinesSink(directory, reactor=clock, **kwargs)
        self.addCleanup(sink.close)
        return sink, clock, directory

    def test_interface(self) -> None:
        """
        It provides L{ISink}.
        """
        sink, _, _ = self.make_sink()
        self.assertTrue(verifyObject(ISink, sink))

    def test_layout(self) -> None:
        """
        Each particle is one compact JSON line in
        C{<dir>/<instrument>/<stream>/<YYYY-MM-DD>.jsonl}; a DataParticle is
        written as its C{to_dict()}.
        """
        sink, _, directory = self.make_sink()
        counted = CountParticle(
            b"5", port_timestamp=utc("2026-11-24T08:00:00") + NTP_UNIX_OFFSET
        )
        sink.write("ctd1", particle(1))
        sink.write("ctd1", particle(2))
        sink.write("ctd2", counted)
        self.successResultOf(sink.flush())
        path = os.path.join(directory, "ctd1", "ctd_parsed", "2026-11-24.jsonl")
        self.assertEqual(read_json_lines(path), [particle(1), particle(2)])
        self.assertNotIn(b" ", read_lines(path)[0])
        self.assertEqual(
            read_json_lines(
                os.path.join(directory, "ctd2", "count", "2026-11-24.jsonl")
            ),
            [counted.to_dict()],
        )
        stats = sink.stats()
        self.assertEqual(
            (stats["records"], stats["files_opened"], stats["errors"]), (3, 2, 0)
        )
        self.assertEqual(
            stats["bytes"],
            sum(
                os.path.getsize(os.path.join(directory, *p))
                for p in [
                    ("ctd1", "ctd_parsed", "2026-11-24.jsonl"),
                    ("ctd2", "count", "2026-11-24.jsonl"),
                ]
            ),
        )

    def test_flushTimer(self) -> None:
        """
        Lines are buffered for at most C{flush_interval}; the timer runs only
        while something is waiting to be flushed.
        """
        sink, clock, directory = self.make_sink(flush_interval=1.0)
        self.assertEqual(clock.getDelayedCalls(), [])
        sink.write("ctd1", particle(1))
        path = os.path.join(directory, "ctd1", "ctd_parsed", "2026-11-24.jsonl")
        self.assertEqual(read_lines(path), [])
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        sink.write("ctd1", particle(2))
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(0.99)
        self.assertEqual(read_lines(path), [])
        clock.advance(0.01)
        self.assertEqual(len(read_lines(path)), 2)
        clock.advance(1.0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_dailyRotation(self) -> None:
        """
        Across UTC midnight the first record of the new day opens a new
        file; each file holds its own day's samples.
        """
        sink, clock, directory = self.make_sink("2026-11-24T23:59:59")
        sink.write("ctd1", particle(1, "2026-11-24T23:59:59.5"))
        clock.advance(1.0)
        sink.write("ctd1", particle(2, "2026-11-25T00:00:00.25"))
        sink.write("ctd1", particle(3, "2026-11-25T00:00:00.75"))
        self.successResultOf(sink.close())
        folder = os.path.join(directory, "ctd1", "ctd_parsed")
        self.assertEqual(
            sorted(os.listdir(folder)), ["2026-11-24.jsonl", "2026-11-25.jsonl"]
        )
        self.assertEqual(
            read_json_lines(os.path.join(folder, "2026-11-24.jsonl")),
            [particle(1, "2026-11-24T23:59:59.5")],
        )
        self.assertEqual(
            [
                p["values"][0]["value"]
                for p in read_json_lines(os.path.join(folder, "2026-11-25.jsonl"))
            ],
            [2, 3],
        )

    def test_sampleTimeNotReception(self) -> None:
        """
        A late particle goes to the file of the day it was sampled, not the
        day it arrived.
        """
        sink, _, directory = self.make_sink("2026-11-25T00:00:05")
        sink.write("ctd1", particle(1, "2026-11-24T23:59:58"))
        self.successResultOf(sink.flush())
        self.assertEqual(
            os.listdir(os.path.join(directory, "ctd1", "ctd_parsed")),
            ["2026-11-24.jsonl"],
        )
        self.assertEqual(sink.stats()["reception_dated"], 0)

    def test_receptionTimeWithoutTimestamp(self) -> None:
        """
        A particle with no timestamp is dated by reception, and counted; one
        without a stream name goes to the stream C{unknown}.
        """
        sink, _, directory = self.make_sink("2026-11-25T03:00:00")
        sink.write("ctd1", {"values": []})
        self.successResultOf(sink.flush())
        self.assertEqual(
            read_json_lines(
                os.path.join(directory, "ctd1", "unknown", "2026-11-25.jsonl")
            ),
            [{"values": []}],
        )
        self.assertEqual(sink.stats()["reception_dated"], 1)

    def test_pastDayClosedWhenIdle(self) -> None:
        """
        Once a new day has begun, the previous day's file is closed after a
        flush interval in which it took nothing.
        """
        sink, clock, _ = self.make_sink("2026-11-24T23:59:59.5")
        sink.write("ctd1", particle(1, "2026-11-24T23:59:59.5"))
        clock.advance(1.0)
        self.assertEqual(sink.stats()["open_files"], 1)
        sink.write("ctd1", particle(2, "2026-11-25T00:00:00.5"))
        self.assertEqual(sink.stats()["open_files"], 2)
        clock.advance(1.0)
        self.assertEqual(sink.stats()["open_files"], 1)

    def test_openFileBound(self) -> None:
        """
        No more than C{max_open_files} files are open; the least recently
        used is flushed and closed, and reopened in append mode when needed.
        """
        sink, _, directory = self.make_sink(max_open_files=2)
        for number, instrument in enumerate(["a", "b", "c", "a", "c", "b"]):
            sink.write(instrument, particle(number))
            self.assertLessEqual(sink.stats()["open_files"], 2)
        self.successResultOf(sink.close())
        self.assertEqual(sink.stats()["files_opened"], 5)
        found = {
            name: [
                p["values"][0]["value"]
                for p in read_json_lines(
                    os.path.join(directory, name, "ctd_parsed", "2026-11-24.jsonl")
                )
            ]
            for name in "abc"
        }
        self.assertEqual(found, {"a": [0, 3], "b": [1, 5], "c": [2, 4]})

    def test_appendAfterTornLine(self) -> None:
        """
        A restart appends to the day's file; a line torn by a crash is ended
        first, so the next record is whole on its own line.
        """
        sink, _, directory = self.make_sink()
        folder = os.path.join(directory, "ctd1", "ctd_parsed")
        os.makedirs(folder)
        path = os.path.join(folder, "2026-11-24.jsonl")
        with open(path, "wb") as f:
            f.write(json.dumps(particle(0)).encode() + b'\n{"stream_na')
        sink.write("ctd1", particle(1))
        self.successResultOf(sink.flush())
        lines = read_lines(path)
        self.assertEqual(lines[1], b'{"stream_na')
        self.assertEqual(json.loads(lines[2]), particle(1))

    def test_unsafeNames(self) -> None:
        """
        Instrument and stream names cannot lead outside the directory.
        """
        sink, _, directory = self.make_sink()
        record = particle(1)
        record["stream_name"] = "../../etc"
        sink.write("../up", record)
        self.successResultOf(sink.flush())
        self.assertEqual(os.listdir(directory), ["_.._up"])
        self.assertEqual(os.listdir(os.path.join(directory, "_.._up")), ["_.._.._etc"])

    def test_openErrorCounted(self) -> None:
        """
        A file that cannot be opened drops the particle, counts and logs the
        error, and does not raise; more errors within a minute are counted
        but not logged again.
        """
        sink, _, directory = self.make_sink()
        os.makedirs(directory)
        with open(os.path.join(directory, "ctd1"), "w"):
            pass
        with capturedLogs() as events:
            sink.write("ctd1", particle(1))
            sink.write("ctd1", particle(2))
            sink.write("ctd2", particle(3))
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("ctd1", formatEvent(errors[0]))
        stats = sink.stats()
        self.assertEqual(
            (stats["errors"], stats["dropped"], stats["records"]), (2, 2, 1)
        )
        self.assertIn("opening", str(stats["last_error"]))

    def test_flushErrorCounted(self) -> None:
        """
        A write that fails on flush (a full disk: C{/dev/full}) counts the
        buffered particles as dropped and the error, without raising.
        """
        if not os.path.exists("/dev/full"):
            self.skipTest("needs /dev/full")
        sink, clock, directory = self.make_sink()
        folder = os.path.join(directory, "ctd1", "ctd_parsed")
        os.makedirs(folder)
        os.symlink("/dev/full", os.path.join(folder, "2026-11-24.jsonl"))
        with capturedLogs() as events:
            sink.write("ctd1", particle(1))
            sink.write("ctd1", particle(2))
            clock.advance(1.0)
        self.assertEqual(
            len([e for e in events if e["log_level"] == LogLevel.error]), 1
        )
        stats = sink.stats()
        self.assertEqual(
            (stats["errors"], stats["dropped"], stats["open_files"]), (1, 2, 0)
        )

    def test_writeAfterClose(self) -> None:
        """
        After close, writes are dropped and counted, and no file is opened.
        """
        sink, clock, _ = self.make_sink()
        self.successResultOf(sink.close())
        sink.write("ctd1", particle(1))
        self.assertEqual(sink.stats()["dropped"], 1)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertIs(self.successResultOf(sink.close()), None)


class SpoolTests(SynchronousTestCase):
    """
    L{Spool} is an ordered disk queue whose delivery cursor survives
    restarts.
    """

    def test_order(self) -> None:
        """
        Records come back in order with consecutive seqs, in batches of at
        most the limit.
        """
        spool = Spool(self.mktemp())
        self.addCleanup(spool.close)
        for number in range(5):
            self.assertEqual(spool.append({"n": number}), number + 1)
        first = spool.read(3)
        self.assertEqual([entry.seq for entry in first], [1, 2, 3])
        self.assertEqual(json.loads(first[0].line), {"seq": 1, "n": 0})
        self.assertEqual([entry.seq for entry in spool.read(3)], [4, 5])
        self.assertEqual(spool.read(3), [])
        self.assertEqual((spool.pending, spool.unread), (5, 0))

    def test_restart(self) -> None:
        """
        A new spool on the same directory reads from the first record not
        committed, and carries on numbering after the last one stored.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        for number in range(5):
            spool.append({"n": number})
        spool.read(4)
        spool.commit(2)
        spool.close()
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual(again.source, spool.source)
        self.assertEqual([entry.seq for entry in again.read(10)], [3, 4, 5])
        self.assertEqual(again.append({"n": 5}), 6)

    def test_segmentsDeleted(self) -> None:
        """
        Segments are rotated by size and deleted once all their records are
        delivered; seqs are never reused even when nothing is left on disk.
        """
        directory = self.mktemp()
        spool = Spool(directory, segment_bytes=20)
        for number in range(6):
            spool.append({"n": number})
        segments = [name for name in os.listdir(directory) if name.endswith(".jsonl")]
        self.assertGreater(len(segments), 2)
        entries = spool.read(6)
        spool.commit(entries[-1].seq)
        remaining = [name for name in os.listdir(directory) if name.endswith(".jsonl")]
        self.assertEqual(len(remaining), 1)
        spool.close()
        self.assertEqual(os.listdir(directory), ["state.json"])
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual(again.append({"n": 6}), 7)

    def test_tornLineSkipped(self) -> None:
        """
        A line torn by a crash at the end of a segment is skipped and
        counted; the next run writes a new segment after it.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        spool.append({"n": 0})
        spool.append({"n": 1})
        spool.close()
        (segment,) = [n for n in os.listdir(directory) if n.endswith(".jsonl")]
        with open(os.path.join(directory, segment), "ab") as f:
            f.write(b'{"seq":3,"n"')
        again = Spool(directory)
        self.addCleanup(again.close)
        self.assertEqual(again.append({"n": 2}), 3)
        self.assertEqual(
            [json.loads(entry.line)["n"] for entry in again.read(10)], [0, 1, 2]
        )
        self.assertEqual(again.corrupt, 1)

    def test_badState(self) -> None:
        """
        A state file that is not a spool's is refused with its path named.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "state.json"), "w") as f:
            f.write("[1, 2]")
        error = self.assertRaises(ValueError, Spool, directory)
        self.assertIn("state.json", str(error))
        self.assertFalse(os.path.lexists(os.path.join(directory, "lock")))

    def test_inUse(self) -> None:
        """
        A second spool cannot open a directory that one has open; once that
        one is closed, it can.
        """
        directory = self.mktemp()
        spool = Spool(directory)
        error = self.assertRaises(SpoolInUseError, Spool, directory)
        self.assertIn(directory, str(error))
        spool.close()
        Spool(directory).close()


class Endpoint(Resource):
    """
    A scripted ingest endpoint for L{StubTreq}: answers each POST with the
    next of C{codes} (200 when they run out; C{None} never answers) and
    keeps each body it was sent.
    """

    isLeaf = True

    def __init__(
        self, *codes: int | None, headers: dict[bytes, bytes] | None = None
    ) -> None:
        super().__init__()
        self.codes = list(codes)
        self.headers = headers or {}
        self.bodies: list[Any] = []
        self.hanging: list[Request] = []
        self.requests: list[Request] = []

    def render_POST(self, request: Request) -> bytes | int:
        """
        Keep the body and answer as scripted.
        """
        assert request.content is not None
        self.bodies.append(json.loads(request.content.read()))
        self.requests.append(request)
        code = self.codes.pop(0) if self.codes else 200
        if code is None:
            self.hanging.append(request)
            return NOT_DONE_YET
        request.setResponseCode(code)
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return b'{"error": "scripted"}' if code >= 300 else b"{}"

    def seqs(self) -> list[list[int]]:
        """
        The seqs of each body received, a list per POST.
        """
        return [[p["seq"] for p in body["particles"]] for body in self.bodies]


class FailingClient:
    """
    An HTTP client whose POSTs fail to connect C{failures} times and then
    go to a L{StubTreq}.
    """

    def __init__(self, failures: int, endpoint: Endpoint) -> None:
        self.failures = failures
        self.stub = StubTreq(endpoint)

    def post(self, url: str, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """
        Fail, or post.
        """
        if self.failures:
            self.failures -= 1
            return fail(ConnectionRefusedError("scripted"))
        result: Deferred[Any] = self.stub.post(url, *args, **kwargs)
        return result


def no_jitter() -> float:
    """
    Jitter of zero, so delays are exact.
    """
    return 0.0


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
            first["particles"][1],
            {"seq": 2, "instrument": "ctd1", "particle": particle(1)},
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
            sink, clock, _ = self.make_sink(endpoint, batch_size=2)
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
        self.assertIn("HTTP 503", str(stats["last_error"]))
        self.assertEqual(
            [e["log_level"] for e in events if "HTTP sink" in e["log_format"]],
            [LogLevel.warn, LogLevel.info],
        )

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
        sink, clock, spool_dir = self.make_sink(down, batch_size=2)
        for number in range(5):
            sink.write("ctd1", particle(number))
        clock.advance(1.0)
        self.successResultOf(sink.close())
        self.assertEqual(down.seqs(), [[1, 2], [1, 2]])
        sink.write("ctd1", particle(99))
        self.assertEqual(sink.stats()["dropped"], 1)

        up = Endpoint()
        again, clock, _ = self.make_sink(up, spool_dir=spool_dir, batch_size=2)
        self.assertEqual(up.seqs(), [])
        clock.advance(0)
        self.assertEqual(up.seqs(), [[1, 2], [3, 4]])
        clock.advance(1.0)
        again.write("ctd1", particle(5))
        clock.advance(1.0)
        self.assertEqual(up.seqs(), [[1, 2], [3, 4], [5], [6]])
        self.assertEqual(
            [
                p["particle"]["values"][0]["value"]
                for body in up.bodies
                for p in body["particles"]
            ],
            [0, 1, 2, 3, 4, 5],
        )

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
        self.assertEqual(endpoint.bodies[0]["particles"][0]["particle"], particle(2))

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


class _Channel(HTTPChannel):
    """
    An HTTP connection that its L{Receiver} can see and close.
    """

    receiver: Receiver

    def connectionMade(self) -> None:
        """
        Register with the receiver.
        """
        super().connectionMade()
        self.receiver.channels.add(self)

    def connectionLost(self, reason: Any) -> None:
        """
        Deregister, and tell anyone waiting for all to close.
        """
        super().connectionLost(reason)
        self.receiver.channels.discard(self)
        if not self.receiver.channels:
            waiters, self.receiver.closed_waiters = self.receiver.closed_waiters, []
            for waiter in waiters:
                waiter.callback(None)


class Receiver(Resource):
    """
    A real ingest endpoint on loopback that records every particle POSTed
    to it, and can go down (stop listening, close its connections
    gracefully) and come back on the same port.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.particles: list[Any] = []
        self.channels: set[_Channel] = set()
        self.closed_waiters: list[Deferred[None]] = []
        self._waiters: list[tuple[int, Deferred[None]]] = []
        receiver = self

        class Channel(_Channel):
            pass

        Channel.receiver = receiver
        self.site = Site(self)
        self.site.protocol = Channel
        self.port: Any = None
        self.port_number = 0

    def render_POST(self, request: Request) -> bytes:
        """
        Record the particles, wake waiters (in a later turn, so the answer
        goes out first), answer 200.
        """
        assert request.content is not None
        self.particles.extend(json.loads(request.content.read())["particles"])
        for waiter in list(self._waiters):
            if len(self.particles) >= waiter[0]:
                self._waiters.remove(waiter)
                self.reactor.callLater(0, waiter[1].callback, None)
        return b"{}"

    def wait_for(self, count: int) -> Deferred[None]:
        """
        Fire when C{count} particles have arrived, or fail after 10 s.
        """
        waiter: Deferred[None] = Deferred()
        if len(self.particles) >= count:
            waiter.callback(None)
        else:
            self._waiters.append((count, waiter))
        return waiter.addTimeout(10, self.reactor)

    async def up(self) -> None:
        """
        Listen: on a free port the first time, on the same port after.
        """
        from twisted.internet.endpoints import serverFromString

        endpoint = serverFromString(
            self.reactor, f"tcp:{self.port_number}:interface=127.0.0.1"
        )
        self.port = await endpoint.listen(self.site)
        self.port_number = self.port.getHost().port

    async def down(self) -> None:
        """
        Stop listening and close every connection once its answer is
        written, as a server shutting down does.
        """
        if self.port is not None:
            port, self.port = self.port, None
            await port.stopListening()
        if self.channels:
            closed: Deferred[None] = Deferred()
            self.closed_waiters.append(closed)
            for channel in list(self.channels):
                assert channel.transport is not None
                channel.transport.loseConnection()
            await closed.addTimeout(10, self.reactor)

    @property
    def url(self) -> str:
        """
        Where to POST.
        """
        return f"http://127.0.0.1:{self.port_number}/ingest"


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
            [
                (p["instrument"], p["particle"]["values"][0]["value"])
                for p in receiver.particles
            ],
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
