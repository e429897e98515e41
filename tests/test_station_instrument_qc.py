"""
QC wired into the station's instrument, on a Clock: each sample's record
carries its flags for every follower (event streams, sinks, the API's
latest sample), a stream with a spike test is held back one sample, and
``/metrics`` counts the flags.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.events import DriverEvent, EventType, SampleEvent
from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.qc import parse_qc
from instrumentd.station.instrument import Station, StationInstrument
from instrumentd.station.metrics import format_families, station_families
from instrumentd.station.record import RecordEvent
from tests.apisupport import FakeDriver

START = 1_800_000_000.0


class Particle:
    """
    A sample in the record's own layout, as a particle's ``to_dict()``.
    """

    def __init__(self, stream: str, when: float, **values: object) -> None:
        self.stream = stream
        self.when = when
        self.values = values

    def to_dict(self) -> dict[str, object]:
        return {
            "record": "instrumentd.sample",
            "version": 2,
            "stream": self.stream,
            "time": "2027-01-15T08:00:00.000000Z",
            "ntp_time": self.when + NTP_UNIX_OFFSET,
            "values": dict(self.values),
        }


RANGE = {"gross_range": {"fail_span": [0, 30]}}
SPIKE = {"spike": {"suspect_threshold": 1.0, "fail_threshold": 5.0}}


class WiringTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.driver = FakeDriver(self.clock, state="AUTOSAMPLE")

    def instrument(self, table: dict[str, Any]) -> StationInstrument:
        instrument = StationInstrument(
            "ctd1",
            self.driver,
            clock=self.clock,
            qc=parse_qc(table, defaults={}),
        )
        self.addCleanup(instrument.close)
        return instrument

    def follow(self, instrument: StationInstrument) -> list[dict[str, Any]]:
        """
        :returns: the records the instrument's followers get, as they come.
        """
        got: list[dict[str, Any]] = []

        def event(each: DriverEvent) -> None:
            assert isinstance(each, RecordEvent)
            got.append(dict(each.record))

        instrument.subscribe(event, [EventType.SAMPLE])
        return got

    def sample(self, stream: str = "s", **values: object) -> None:
        self.clock.advance(1)
        self.driver.events.publish(
            SampleEvent(Particle(stream, self.clock.seconds(), **values), time=0)
        )

    def test_flags_on_every_record(self) -> None:
        """
        Each record carries its flags as its qc; a stream without QC has
        none; the API's latest sample has them too.
        """
        instrument = self.instrument({"s": {"t": RANGE}})
        got = self.follow(instrument)
        self.sample(t=10.0, c=3.0)
        self.sample(t=40.0, c=3.0)
        self.sample("status", t=99.0)
        self.assertEqual(
            [r.get("qc") for r in got],
            [
                {"t": {"gross_range": 1, "aggregate": 1}},
                {"t": {"gross_range": 4, "aggregate": 4}},
                None,
            ],
        )
        self.sample(t=50.0)
        latest = instrument.latest_record
        assert latest is not None
        self.assertEqual(latest["qc"], {"t": {"gross_range": 4, "aggregate": 4}})
        self.assertEqual(instrument.samples, 4)

    def test_spike_held_one_sample(self) -> None:
        """
        With a spike test a record reaches its followers when the next
        sample has come, its spike flag final; closing the instrument lets
        the last one go.
        """
        instrument = self.instrument({"s": {"t": {**RANGE, **SPIKE}}})
        got = self.follow(instrument)
        for value in (10.0, 10.0, 20.0, 10.0):
            self.sample(t=value)
        self.assertEqual(len(got), 3)
        self.assertEqual([r["qc"]["t"]["spike"] for r in got], [2, 3, 4])
        self.assertEqual([r["values"]["t"] for r in got], [10.0, 10.0, 20.0])
        self.assertEqual(instrument.samples, 3)
        instrument.flush()
        self.assertEqual(len(got), 4)
        self.assertEqual(got[-1]["qc"]["t"]["spike"], 2)

    def test_hold_runs_out(self) -> None:
        instrument = self.instrument({"s": {"t": SPIKE}})
        got = self.follow(instrument)
        self.sample(t=10.0)
        self.sample(t=10.0)
        self.assertEqual(len(got), 1)
        self.clock.advance(2)
        self.assertEqual(len(got), 2)

    def test_metrics(self) -> None:
        """
        /metrics counts each field's flags per instrument and stream, and
        the records held.
        """
        instrument = self.instrument({"s": {"t": RANGE, "u": {**RANGE, **SPIKE}}})
        for value in (10.0, 40.0, 41.0):
            self.sample(t=value, u=1.0)
        text = format_families(
            station_families(Station([instrument], clock=self.clock))
        )
        self.assertIn(
            'instrumentd_qc_samples_total{instrument="ctd1",stream="s",field="t",'
            'flag="fail"} 1\n',
            text,
        )
        self.assertIn(
            'instrumentd_qc_samples_total{instrument="ctd1",stream="s",field="t",'
            'flag="pass"} 1\n',
            text,
        )
        self.assertIn('instrumentd_qc_held_samples{instrument="ctd1"} 1\n', text)
        self.assertIn("# TYPE instrumentd_qc_samples_total counter\n", text)

    def test_no_qc(self) -> None:
        """
        Without QC nothing is held and no record carries qc.
        """
        instrument = StationInstrument("ctd1", self.driver, clock=self.clock)
        self.addCleanup(instrument.close)
        got = self.follow(instrument)
        self.sample(t=10.0)
        self.assertIsNone(instrument.quality)
        self.assertNotIn("qc", got[0])
