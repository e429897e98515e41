"""
Tests for L{instrumentd.station.sinks}: sample times, the memory sink,
feeding a sink from an event bus, and JSON-lines files (layout, sample-time
dating, UTC rotation, flush timer, open-file bound, errors).  The spool and
the HTTP sink are tested in C{tests.test_spool} and C{tests.test_httpsink}.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from instrumentd.driver.events import EventBus, SampleEvent, StateChangeEvent
from instrumentd.driver.particles import DataParticle
from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.station.record import SampleRecorder, build_record, read_record
from instrumentd.station.sinks import (
    ISink,
    JsonLinesSink,
    MemorySink,
    connect_sink,
    sample_time,
)
from tests.sinksupport import particle, read_json_lines, read_lines, record, utc


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

    def test_record(self) -> None:
        """
        A record (version 2) is timed by its C{ntp_time}, whatever its other
        timestamps; one timed NTP 0 has no sample time.
        """
        converted = record(1, "2026-11-24T12:00:00")
        converted["port_timestamp"] = utc("2026-01-01T00:00:00") + NTP_UNIX_OFFSET
        self.assertEqual(sample_time(converted), utc("2026-11-24T12:00:00"))
        self.assertIsNone(sample_time(dict(converted, ntp_time=0.0)))

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
        Particles and dicts are kept as their records (version 2), in order,
        per instrument.
        """
        sink = MemorySink()
        sink.write("ctd1", particle(1))
        sink.write("ctd2", CountParticle(b"7", driver_timestamp=1.0))
        self.assertEqual(sink.particles("ctd1"), [record(1)])
        self.assertEqual(sink.particles("ctd2")[0]["values"], {"count": 7})
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
            [{"n": 1}, {"n": 2}],
        )
        self.successResultOf(sink.close())
        sink.write("ctd1", particle(4))
        self.assertEqual(
            sink.stats(),
            {"written": 3, "kept": 2, "dropped": 2, "invalid": 0, "closed": True},
        )

    def test_invalid(self) -> None:
        """
        A mapping that is no record is dropped and counted, not raised.
        """
        sink = MemorySink()
        sink.write("ctd1", {"record": "something else"})
        self.assertEqual(
            (sink.stats()["invalid"], sink.stats()["dropped"], len(sink.records)),
            (1, 1, 0),
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
        self.assertEqual(
            list(sink.records), [("ctd1", dict(build_record("ctd1", one)))]
        )


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
        Each sample is its record (version 2) as one compact JSON line in
        C{<dir>/<instrument>/<stream>/<YYYY-MM-DD>.jsonl}; an old particle
        dict is converted, a DataParticle built into its record.
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
        self.assertEqual(read_json_lines(path), [record(1), record(2)])
        self.assertNotIn(b" ", read_lines(path)[0])
        self.assertEqual(
            read_json_lines(
                os.path.join(directory, "ctd2", "count", "2026-11-24.jsonl")
            ),
            [json.loads(build_record("ctd2", counted).json)],
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
            [record(1, "2026-11-24T23:59:59.5")],
        )
        self.assertEqual(
            [
                p["values"]["n"]
                for p in read_json_lines(os.path.join(folder, "2026-11-25.jsonl"))
            ],
            [2, 3],
        )

    def test_daysAndNamesKept(self) -> None:
        """
        Each sample goes to its own day's file however samples of many days
        (more than the sink keeps the names of), of several streams and
        within a second of midnight, are interleaved.
        """
        sink, _, directory = self.make_sink("2026-11-24T12:00:00", max_open_files=4)
        start = datetime(2026, 11, 24, tzinfo=UTC)
        times = []
        for day in range(70):
            for when in ("12:00:00", "00:00:00", "23:59:59.999999", "00:00:00.5"):
                times.append(f"{(start + timedelta(days=day)).date()}T{when}")
        times += times[:8]
        for number, when in enumerate(times):
            sink.write("ctd1", particle(number, when))
            other = {**record(number, when), "stream": "other"}
            sink.write("ctd1", SampleRecorder("ctd1").record(other))
        self.successResultOf(sink.close())
        for stream in ("ctd_parsed", "other"):
            folder = os.path.join(directory, "ctd1", stream)
            found = {}
            for name in os.listdir(folder):
                for line in read_json_lines(os.path.join(folder, name)):
                    found[line["values"]["n"]] = name
            self.assertEqual(
                found,
                {number: when[:10] + ".jsonl" for number, when in enumerate(times)},
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
            [
                read_record(
                    {"values": []},
                    instrument="ctd1",
                    received=utc("2026-11-25T03:00:00"),
                )
            ],
        )
        self.assertEqual(sink.stats()["reception_dated"], 1)

    def test_invalidDropped(self) -> None:
        """
        A mapping that is no record (junk, a record of a version this
        station cannot read) is dropped, counted and logged, not raised.
        """
        sink, _, directory = self.make_sink()
        with capturedLogs() as events:
            sink.write("ctd1", {"record": "instrumentd.sample", "version": 9})
        self.assertEqual((sink.stats()["invalid"], sink.stats()["dropped"]), (1, 1))
        self.assertFalse(os.path.exists(directory))
        self.assertIn("version 9", formatEvent(events[0]))

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

    def test_quietFileClosed(self) -> None:
        """
        A file of today that takes nothing for C{idle_close} seconds (a
        driver's start-up status record) is closed while the busy one stays
        open; its next record opens it again, appending.
        """
        sink, clock, directory = self.make_sink(idle_close=3.0)
        status = dict(particle(0), stream_name="ctd_status")
        sink.write("ctd1", status)
        for number in range(1, 5):
            sink.write("ctd1", particle(number))
            clock.advance(1.0)
            expected = 2 if number < 4 else 1
            self.assertEqual(sink.stats()["open_files"], expected, number)
        sink.write("ctd1", status)
        self.assertEqual(sink.stats()["open_files"], 2)
        self.successResultOf(sink.close())
        path = os.path.join(directory, "ctd1", "ctd_status", "2026-11-24.jsonl")
        self.assertEqual(len(read_lines(path)), 2)
        self.assertRaises(ValueError, JsonLinesSink, directory, idle_close=0)

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
                p["values"]["n"]
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
        self.assertEqual(json.loads(lines[2]), record(1))

    def test_newFileNotReadBack(self) -> None:
        """
        A new file (each instrument's first of each stream and day) is not
        opened a second time to see whether it ends in a torn line; one with
        lines is.
        """
        from instrumentd.station import _jsonlines

        looked: list[str] = []
        self.patch(_jsonlines, "_ends_torn", looked.append)
        sink, _clock, directory = self.make_sink(max_open_files=1)
        sink.write("ctd1", particle(1))
        self.assertEqual(looked, [])
        self.successResultOf(sink.flush())
        sink.write("ctd2", particle(2))
        sink.write("ctd1", particle(3))
        self.assertEqual(
            looked, [os.path.join(directory, "ctd1", "ctd_parsed", "2026-11-24.jsonl")]
        )

    def test_folderRemoved(self) -> None:
        """
        A folder removed while the sink runs is made again when a file is
        next opened in it, and nothing is dropped.
        """
        sink, _, directory = self.make_sink(max_open_files=1)
        sink.write("ctd1", particle(1))
        sink.write("ctd2", particle(2))
        shutil.rmtree(os.path.join(directory, "ctd1"))
        sink.write("ctd1", particle(3))
        self.successResultOf(sink.close())
        self.assertEqual(sink.stats()["dropped"], 0)
        self.assertEqual(
            read_json_lines(
                os.path.join(directory, "ctd1", "ctd_parsed", "2026-11-24.jsonl")
            ),
            [record(3)],
        )

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

    def test_errorClearsOnRecovery(self) -> None:
        """
        Once lines reach a file again, C{last_error} is cleared and
        C{last_failure} keeps the error with its time.
        """
        if not os.path.exists("/dev/full"):
            self.skipTest("needs /dev/full")
        sink, clock, directory = self.make_sink()
        folder = os.path.join(directory, "ctd1", "ctd_parsed")
        os.makedirs(folder)
        full = os.path.join(folder, "2026-11-24.jsonl")
        os.symlink("/dev/full", full)
        with capturedLogs():
            sink.write("ctd1", particle(1))
            clock.advance(1.0)
        self.assertIn("flushing", str(sink.stats()["last_error"]))
        os.remove(full)
        sink.write("ctd1", particle(2))
        clock.advance(1.0)
        stats = sink.stats()
        self.assertIsNone(stats["last_error"])
        failure: Any = stats["last_failure"]
        self.assertIn("flushing", failure["message"])
        self.assertEqual(failure["time"], "2026-11-24T12:00:01+00:00")

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
