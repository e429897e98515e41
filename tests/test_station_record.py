"""
Tests for L{instrumentd.station.record}: the sample record, version 2, its
one serialisation, and reading it back (old particles converted, anything
else refused by name).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.events import EventType, SampleEvent
from instrumentd.driver.particles import DataParticle, ParticleField
from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.station.eventfeed import EventFeeds
from instrumentd.station.instrument import StationInstrument
from instrumentd.station.record import (
    RECORD_KIND,
    RECORD_VERSION,
    EncodedQC,
    RecordError,
    RecordEvent,
    SampleRecord,
    SampleRecorder,
    as_record,
    build_record,
    iso_from_ntp,
    read_record,
)
from instrumentd.station.sinks import HttpSink, JsonLinesSink, MemorySink, connect_sink
from tests.apisupport import FakeDriver
from tests.sinksupport import URL, Endpoint

#: 2026-12-07T08:00:00Z in NTP seconds.
NTP_0800 = 1796630400.0 + NTP_UNIX_OFFSET


class CTDParticle(DataParticle):
    """
    A particle whose values are given to it: temperature (units and a
    standard name), conductivity (units), a dimensionless salinity, a text
    value without units, a profile (an array), and a value with no field.
    """

    stream_name = "ctd_sample"
    fields = {
        "temperature": ParticleField(
            "degree_Celsius", standard_name="sea_water_temperature"
        ),
        "conductivity": ParticleField("S m-1"),
        "salinity": ParticleField("1", standard_name="sea_water_practical_salinity"),
        "serial": ParticleField(""),
        "velocity": ParticleField("m s-1"),
    }

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        return [
            {"value_id": "temperature", "value": 10.1234},
            {"value_id": "conductivity", "value": 3.9},
            {"value_id": "salinity", "value": 33.9},
            {"value_id": "serial", "value": "0123"},
            {"value_id": "velocity", "value": (0.1, -0.2, None)},
            {"value_id": "undeclared", "value": 7},
        ]


def ctd(**timestamps: object) -> CTDParticle:
    return CTDParticle(b"raw", **timestamps)  # type: ignore[arg-type]


class BuildTests(SynchronousTestCase):
    """
    L{build_record} makes the version 2 layout of CONTRACTS/doc/data.md.
    """

    def test_layout(self) -> None:
        """
        Every key, in order: the time as ISO 8601 UTC with microseconds and
        the same instant in NTP seconds, the preferred timestamp as
        C{time_source}, flat values, units and standard names.
        """
        particle = ctd(
            port_timestamp=NTP_0800 + 0.2,
            internal_timestamp=NTP_0800 + 0.123456,
            driver_timestamp=NTP_0800 + 0.25,
            preferred_timestamp="internal_timestamp",
        )
        record = build_record("CTD01", particle)
        self.assertEqual(
            list(record),
            [
                "record",
                "version",
                "instrument",
                "stream",
                "time",
                "ntp_time",
                "time_source",
                "port_timestamp",
                "internal_timestamp",
                "driver_timestamp",
                "quality_flag",
                "values",
                "units",
                "standard_names",
            ],
        )
        self.assertEqual(record["record"], "instrumentd.sample")
        self.assertEqual(record["version"], 2)
        self.assertEqual(record["instrument"], "CTD01")
        self.assertEqual(record["stream"], "ctd_sample")
        self.assertEqual(record["time"], "2026-12-07T08:00:00.123456Z")
        self.assertEqual(record["ntp_time"], NTP_0800 + 0.123456)
        self.assertEqual(record["time_source"], "internal_timestamp")
        self.assertEqual(record["quality_flag"], "ok")
        self.assertEqual(
            record["values"],
            {
                "temperature": 10.1234,
                "conductivity": 3.9,
                "salinity": 33.9,
                "serial": "0123",
                "velocity": [0.1, -0.2, None],
                "undeclared": 7,
            },
        )
        self.assertEqual(
            json.loads(record.json)["values"]["velocity"], [0.1, -0.2, None]
        )
        self.assertAlmostEqual(record.unix_time or 0, 1796630400.123456, places=5)

    def test_unitsAndStandardNamesOnlyWhereDeclared(self) -> None:
        """
        C{units} lists the values whose field has units (not C{""}, nor a
        value without a field); C{standard_names} those with a standard name.
        """
        record = build_record("CTD01", ctd(driver_timestamp=NTP_0800))
        self.assertEqual(
            record["units"],
            {
                "temperature": "degree_Celsius",
                "conductivity": "S m-1",
                "salinity": "1",
                "velocity": "m s-1",
            },
        )
        self.assertEqual(
            record["standard_names"],
            {
                "temperature": "sea_water_temperature",
                "salinity": "sea_water_practical_salinity",
            },
        )

    def test_fallback(self) -> None:
        """
        A preferred timestamp that is absent gives way to the internal one,
        then the port one, then the driver one.
        """
        cases = [
            ({"port_timestamp": NTP_0800 + 1}, "port_timestamp", NTP_0800 + 1),
            (
                {"port_timestamp": None, "internal_timestamp": NTP_0800 + 2},
                "internal_timestamp",
                NTP_0800 + 2,
            ),
            ({"port_timestamp": 0.0}, "driver_timestamp", NTP_0800 + 3),
        ]
        for stamps, source, ntp in cases:
            record = build_record("CTD01", ctd(driver_timestamp=NTP_0800 + 3, **stamps))
            self.assertEqual((record["time_source"], record["ntp_time"]), (source, ntp))

    def test_absentTimestampsLeftOut(self) -> None:
        """
        Absent port and internal timestamps (C{None} or C{0}) are not keys of
        the record; the driver timestamp always is.
        """
        record = build_record(
            "CTD01", ctd(port_timestamp=0.0, driver_timestamp=NTP_0800)
        )
        self.assertNotIn("port_timestamp", record)
        self.assertNotIn("internal_timestamp", record)
        self.assertEqual(record["driver_timestamp"], NTP_0800)
        self.assertEqual(record["time"], "2026-12-07T08:00:00.000000Z")

    def test_noClock(self) -> None:
        """
        A particle made with driver timestamp 0 and no other is dated
        1900-01-01 (NTP 0); its Unix time is C{None}, so sinks date it by
        reception.
        """
        record = build_record("CTD01", ctd(driver_timestamp=0.0))
        self.assertEqual(record["time"], "1900-01-01T00:00:00.000000Z")
        self.assertIsNone(record.unix_time)

    def test_isoFromNtp(self) -> None:
        """
        The microseconds are those of the NTP number; a time no date holds
        is C{None}.
        """
        self.assertEqual(
            iso_from_ntp(NTP_0800 + 0.999999), "2026-12-07T08:00:00.999999Z"
        )
        self.assertEqual(
            iso_from_ntp(NTP_0800 + 0.9999996), "2026-12-07T08:00:01.000000Z"
        )
        self.assertIsNone(iso_from_ntp(float("inf")))
        self.assertIsNone(iso_from_ntp(1e12))

    def test_isoFromNtpKeptSeconds(self) -> None:
        """
        The text of a second is kept for the samples after it; it is that
        second's text whatever second came before, over more seconds than
        are kept, and after a time no date holds.
        """
        expected = {}
        for offset in range(0, 200, 7):
            when = datetime(2026, 12, 7, 8, 0, tzinfo=UTC) + timedelta(seconds=offset)
            expected[offset] = when.strftime("%Y-%m-%dT%H:%M:%S")
        for _ in range(2):
            for offset, text in expected.items():
                self.assertEqual(
                    iso_from_ntp(NTP_0800 + offset + 0.25), text + ".250000Z"
                )
                self.assertEqual(
                    iso_from_ntp(NTP_0800 + offset - 0.0000001), text + ".000000Z"
                )
                self.assertIsNone(iso_from_ntp(1e12))
        self.assertEqual(iso_from_ntp(0.0), "1900-01-01T00:00:00.000000Z")


class SerialisationTests(SynchronousTestCase):
    """
    The record is encoded once, and the bytes kept.
    """

    def test_encodedOnce(self) -> None:
        """
        L{SampleRecord.json} is made on first use and reused after.
        """
        record = build_record("CTD01", ctd(driver_timestamp=NTP_0800))
        self.assertEqual(record.encodings, 0)
        first = record.json
        self.assertIs(record.json, first)
        self.assertEqual(record.encodings, 1)
        self.assertEqual(json.loads(first), dict(record))
        self.assertNotIn(b'", "', first)
        self.assertNotIn(b'": ', first)

    def test_encodedValues(self) -> None:
        """
        Values are encoded as JSON readers take them: text beyond ASCII as
        UTF-8, a float that is no number as C{null} (JSON has no NaN), an
        integer beyond 64 bits as its digits.
        """
        record = SampleRecorder("CTD01").record(
            {
                "record": "instrumentd.sample",
                "version": 2,
                "stream": "s",
                "time": "2026-12-07T08:00:00.000000Z",
                "ntp_time": NTP_0800,
                "values": {"name": "Jökull", "bad": float("nan"), "up": float("inf")},
            }
        )
        self.assertIn('"name":"Jökull"'.encode(), record.json)
        self.assertEqual(
            json.loads(record.json)["values"],
            {"name": "Jökull", "bad": None, "up": None},
        )
        big = SampleRecorder("CTD01").record(
            {
                "record": "instrumentd.sample",
                "version": 2,
                "stream": "s",
                "time": "2026-12-07T08:00:00.000000Z",
                "ntp_time": NTP_0800,
                "values": {"count": 2**70},
            }
        )
        self.assertEqual(json.loads(big.json)["values"], {"count": 2**70})

    def test_qcHook(self) -> None:
        """
        The recorder's hook sees the record before it is encoded, and what
        it returns is attached as C{qc}.
        """
        seen: list[Mapping[str, object]] = []

        def hook(record: SampleRecord) -> Mapping[str, object] | None:
            seen.append(record.sample_values)
            self.assertEqual(record.encodings, 0)
            return {"temperature": {"gross_range": 1, "aggregate": 1}}

        recorder = SampleRecorder("CTD01", qc=hook)
        record = recorder.record(ctd(driver_timestamp=NTP_0800))
        self.assertEqual(seen[0]["temperature"], 10.1234)
        self.assertEqual(
            json.loads(record.json)["qc"],
            {"temperature": {"gross_range": 1, "aggregate": 1}},
        )
        self.assertEqual(list(record)[-1], "qc")

    def test_noQc(self) -> None:
        """
        Without a hook, or when it returns C{None}, there is no C{qc} key.
        """
        self.assertNotIn("qc", SampleRecorder("a").record(ctd(driver_timestamp=1.0)))
        quiet = SampleRecorder("a", qc=lambda record: None)
        self.assertNotIn("qc", quiet.record(ctd(driver_timestamp=1.0)))

    def test_encodedQcJoined(self) -> None:
        """
        An L{EncodedQC}'s JSON, made once, is joined to the record's: the
        same bytes as the record encoded whole, C{qc} its last key, read
        back as it was; the mapping is shared as given.
        """
        flags = {
            "temperature": {"gross_range": 1, "aggregate": 1},
            "pressure": {"gross_range": 4, "aggregate": 4},
        }
        plain = build_record("CTD01", ctd(driver_timestamp=NTP_0800))
        plain.attach_qc(flags, ready=True)
        shared = EncodedQC(flags)
        self.assertEqual(shared.json, json.dumps(flags, separators=(",", ":")).encode())
        for _ in range(2):
            record = build_record("CTD01", ctd(driver_timestamp=NTP_0800))
            record.attach_qc(shared, ready=True)
            self.assertIs(record.qc, shared)
            self.assertEqual(record.json, plain.json)
            self.assertEqual(list(record)[-1], "qc")
            self.assertEqual(read_record(json.loads(record.json)), dict(record))
            self.assertEqual(record.encodings, 1)

    def test_qcLast(self) -> None:
        """
        Flags attached again replace the first, still as the last key.
        """
        record = build_record("CTD01", ctd(driver_timestamp=NTP_0800))
        record.attach_qc(EncodedQC({"t": {"aggregate": 4}}), ready=True)
        record.attach_qc({"t": {"aggregate": 1}})
        self.assertEqual(json.loads(record.json)["qc"], {"t": {"aggregate": 1}})
        self.assertEqual(list(json.loads(record.json))[-1], "qc")

    def test_qcAfterEncodingRefused(self) -> None:
        """
        Flags attached after the bytes were made would disagree with them:
        refused.
        """
        record = build_record("CTD01", ctd(driver_timestamp=NTP_0800))
        self.assertTrue(record.json)
        self.assertRaises(RuntimeError, record.attach_qc, {"t": {"aggregate": 1}})

    def test_event(self) -> None:
        """
        The recorder presents a C{SAMPLE} event as a L{RecordEvent}: its
        JSON carries C{record}, and its stream message splices the record's
        bytes without encoding them again.
        """
        recorder = SampleRecorder("CTD01")
        event = recorder.present(
            SampleEvent(ctd(driver_timestamp=NTP_0800), time=1796630400.5)
        )
        self.assertIsInstance(event, RecordEvent)
        self.assertIs(recorder.present(event), event)
        message = json.loads(event.message_json("CTD01"))
        self.assertEqual(list(message), ["instrument", "type", "time", "record"])
        self.assertEqual(message["record"], json.loads(event.record.json))
        event.message_json("CTD01")
        self.assertEqual(event.record.encodings, 1)
        self.assertEqual(event.to_dict()["record"], dict(event.record))

    def test_particleWithoutTimestamps(self) -> None:
        """
        A particle that is only a C{to_dict()} with no timestamp is dated by
        the event's time.
        """

        class Bare:
            def to_dict(self) -> dict[str, object]:
                return {"stream_name": "s", "values": [{"value_id": "n", "value": 1}]}

        event = SampleRecorder("x").present(SampleEvent(Bare(), time=1796630400.0))
        self.assertEqual(event.record["time"], "2026-12-07T08:00:00.000000Z")
        self.assertEqual(event.record["time_source"], "driver_timestamp")


def old_particle() -> dict[str, object]:
    """
    A particle's C{to_dict()} form as stations wrote it before version 2.
    """
    return {
        "pkt_format_id": "JSON_Data",
        "pkt_version": 1,
        "stream_name": "ctdpf_sample",
        "port_timestamp": NTP_0800 + 0.5,
        "internal_timestamp": NTP_0800,
        "driver_timestamp": NTP_0800 + 0.75,
        "preferred_timestamp": "port_timestamp",
        "quality_flag": "ok",
        "values": [
            {"value_id": "temperature", "value": 10.46, "units": "degree_Celsius"},
            {"value_id": "instrument_time", "value": "2026-12-07T08:00:00+00:00"},
            {"value_id": "raw", "value": "AAE=", "binary": True},
        ],
    }


class ReadTests(SynchronousTestCase):
    """
    L{read_record} reads version 2, converts the old particle layout, and
    refuses anything else, naming what it found.
    """

    def test_version2(self) -> None:
        """
        A version 2 record comes back equal, with keys it does not know (a
        collector's C{station} and C{seq}) kept.
        """
        record = dict(build_record("CTD01", ctd(driver_timestamp=NTP_0800)))
        record.update(station="ship", seq=41)
        self.assertEqual(read_record(json.loads(json.dumps(record))), record)

    def test_convertsOld(self) -> None:
        """
        An old particle becomes version 2: its preferred timestamp as the
        time, flat values, units from its list, no standard names.
        """
        record = read_record(old_particle(), instrument="CTD01")
        self.assertEqual(
            record,
            {
                "record": RECORD_KIND,
                "version": RECORD_VERSION,
                "instrument": "CTD01",
                "stream": "ctdpf_sample",
                "time": "2026-12-07T08:00:00.500000Z",
                "ntp_time": NTP_0800 + 0.5,
                "time_source": "port_timestamp",
                "port_timestamp": NTP_0800 + 0.5,
                "internal_timestamp": NTP_0800,
                "driver_timestamp": NTP_0800 + 0.75,
                "quality_flag": "ok",
                "values": {
                    "temperature": 10.46,
                    "instrument_time": "2026-12-07T08:00:00+00:00",
                    "raw": "AAE=",
                },
                "units": {"temperature": "degree_Celsius"},
                "standard_names": {},
            },
        )
        self.assertNotIn("instrument", read_record(old_particle()))

    def test_oldFallback(self) -> None:
        """
        An old particle whose preferred timestamp is absent falls back as a
        particle does.
        """
        old = old_particle()
        del old["port_timestamp"]
        record = read_record(old)
        self.assertEqual(record["time_source"], "internal_timestamp")
        self.assertEqual(record["time"], "2026-12-07T08:00:00.000000Z")

    def test_buildAndConvertAgree(self) -> None:
        """
        A particle's record and the conversion of its old C{to_dict()} form
        agree, but for the standard names the old form did not carry.
        """
        particle = ctd(port_timestamp=NTP_0800 + 0.2, driver_timestamp=NTP_0800 + 1)
        built = json.loads(build_record("CTD01", particle).json)
        converted = read_record(
            json.loads(json.dumps(particle.to_dict())), instrument="CTD01"
        )
        del built["standard_names"]
        del converted["standard_names"]
        self.assertEqual(converted, built)

    def assertRefused(self, found: object, *named: str) -> None:
        with self.assertRaises(RecordError) as caught:
            read_record(found)
        for text in named:
            self.assertIn(text, str(caught.exception))

    def test_junk(self) -> None:
        """
        Anything else is a L{RecordError} that names what it found.
        """
        self.assertRefused([1, 2], "JSON object", "list", "[1,2]")
        self.assertRefused("text", "str")
        self.assertRefused(
            {"record": "instrumentd.qc_thing", "version": 2}, "'instrumentd.qc_thing'"
        )
        self.assertRefused({"a": 1}, "record = None", '{"a":1}')
        self.assertRefused(
            {"record": "instrumentd.sample", "version": 3}, "version 3", "version 2"
        )
        self.assertRefused(
            {"record": "instrumentd.sample", "version": 2, "stream": "s"},
            "time = None",
        )
        self.assertRefused({"values": "no"}, "values", '"no"')
        self.assertRefused({"values": [{"value": 1}]}, "value_id", '{"value":1}')
        self.assertRefused({"values": []}, "no timestamp")

    def test_asRecord(self) -> None:
        """
        L{as_record} takes a record as it is, builds a particle's, and reads a
        mapping, giving a version 2 mapping its instrument if it lacks one.
        """
        record = build_record("CTD01", ctd(driver_timestamp=NTP_0800))
        self.assertIs(as_record("CTD01", record), record)
        self.assertEqual(
            dict(as_record("CTD01", ctd(driver_timestamp=NTP_0800))), dict(record)
        )
        anonymous = dict(record)
        del anonymous["instrument"]
        self.assertEqual(as_record("CTD01", anonymous)["instrument"], "CTD01")
        self.assertEqual(as_record("CTD01", old_particle())["instrument"], "CTD01")
        self.assertRaises(RecordError, as_record, "CTD01", object())


class OneSerialisationTests(SynchronousTestCase):
    """
    Issue 18: a sample is encoded once however many consumers take it.
    """

    def test_everyConsumerSharesTheBytes(self) -> None:
        """
        One sample through a station instrument reaches a JSON-lines file,
        an HTTP sink's spool and POST, a memory sink, two event streams and
        the API's latest sample; its record is made once and encoded once,
        and the file line, the spool line and the event message hold the
        same bytes.
        """
        clock = Clock()
        driver = FakeDriver()
        instrument = StationInstrument("CTD01", driver, clock=clock)
        directory = self.mktemp()
        files = JsonLinesSink(directory, reactor=clock)
        endpoint = Endpoint()
        spool_dir = self.mktemp()
        http = HttpSink(
            URL, spool_dir=spool_dir, reactor=clock, treq_client=StubTreq(endpoint)
        )
        memory = MemorySink()
        for sink in (files, http, memory):
            connect_sink(instrument, "CTD01", sink)
        feed = EventFeeds()[instrument]
        messages: list[bytes] = []
        feed.follow(messages.append)
        feed.follow(messages.append, [EventType.SAMPLE])
        made: list[SampleRecord] = []

        def qc(record: SampleRecord) -> None:
            made.append(record)

        instrument.recorder.qc = qc
        # Every JSON encoding of anything holding the record, however made.
        encodings: list[str] = []
        encode = json.dumps

        def counting(value: object, **kwargs: Any) -> str:
            text = encode(value, **kwargs)
            if '"instrumentd.sample"' in text:
                encodings.append(text)
            return text

        self.patch(json, "dumps", counting)
        fast = orjson.dumps

        def counting_fast(value: object, *args: Any, **kwargs: Any) -> bytes:
            data = fast(value, *args, **kwargs)
            if b'"instrumentd.sample"' in data:
                encodings.append(data.decode("utf-8"))
            return data

        self.patch(orjson, "dumps", counting_fast)

        driver.events.publish(
            SampleEvent(
                ctd(port_timestamp=NTP_0800, driver_timestamp=NTP_0800 + 0.5),
                time=1796630400.5,
            )
        )
        [record] = made
        self.assertEqual(record.encodings, 1)
        # The HTTP sink's spool is written at the end of the reactor's turn.
        clock.advance(0)
        [segment] = [n for n in os.listdir(spool_dir) if n.endswith(".jsonl")]
        with open(os.path.join(spool_dir, segment), "rb") as f:
            self.assertIn(b'"record":' + record.json + b"}\n", f.read())
        self.successResultOf(files.close())
        clock.advance(1.0)
        self.successResultOf(http.close())

        path = os.path.join(directory, "CTD01", "ctd_sample", "2026-12-07.jsonl")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), record.json + b"\n")
        self.assertEqual(len(messages), 2)
        self.assertIs(messages[0], messages[1])
        self.assertIn(b',"record":' + record.json + b"}\n\n", messages[0])
        self.assertEqual(endpoint.bodies[0]["records"][0]["record"], dict(record))
        self.assertIs(memory.particles()[0], record.to_dict())
        latest = instrument.latest_sample
        assert latest is not None
        self.assertIs(latest["record"], record.to_dict())
        self.assertEqual(record.encodings, 1)
        self.assertEqual(len(encodings), 1)
        self.assertEqual(instrument.recorder.records, 1)
