"""
The ``qc`` table of a station's instrument: parsed from TOML, defaults
applied and tightened, every mistake named.
"""

from __future__ import annotations

import tomllib

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.instruments.aanderaa.optode.particles import OptodeSample
from instrumentd.instruments.seabird.sbe37smp.particles import SBE37SampleParticle
from instrumentd.instruments.teledyne.workhorse.particles import (
    VelocityBeamParticle,
    VelocityEarthParticle,
)
from instrumentd.qc import DEFAULTS, QartodFlag, QCConfigError, parse_qc

STATION = """
[[instruments]]
name = "ctd1"

[instruments.qc.ctdpf_sample.temperature]
gross_range = { suspect_span = [4, 22] }
spike = { suspect_threshold = 0.5, fail_threshold = 2.0 }
flat_line = { suspect_threshold = 3600, fail_threshold = 7200, tolerance = 0.0005 }

[instruments.qc.ctdpf_sample.temperature.climatology]
depth = 30
spans = [
  { tspan = [1, 3], period = "month", vspan = [6, 12] },
  { tspan = [4, 9], period = "month", vspan = [8, 18], fspan = [2, 25], zspan = [0, 50] },
]

[instruments.qc.ctdpf_sample.conductivity]
gross_range = false

[instruments.qc.ctdpf_sample.time]
fail_span = [2020-01-01T00:00:00Z, 2100-01-01]
"""

PARTICLES = {
    p.stream_name: p
    for p in (
        SBE37SampleParticle,
        OptodeSample,
        VelocityEarthParticle,
        VelocityBeamParticle,
    )
}
STREAMS = {name: tuple(p.fields) for name, p in PARTICLES.items()}


def qc_table(text: str = STATION) -> object:
    return tomllib.loads(text)["instruments"][0]["qc"]


class StationTable(SynchronousTestCase):
    def test_from_toml(self) -> None:
        """
        A station's TOML gives evaluators: the defaults for streams it does
        not name, its own tests merged over the defaults for those it does.
        """
        specs = parse_qc(qc_table())
        self.assertEqual(set(specs), set(DEFAULTS))
        ctd = specs["ctdpf_sample"]
        self.assertEqual(
            set(ctd.fields["temperature"]),
            {"gross_range", "spike", "flat_line", "climatology"},
        )
        # Tightened: the station's suspect span over the default fail span.
        self.assertEqual(
            ctd.fields["temperature"]["gross_range"],
            {"fail_span": [-5, 35], "suspect_span": [4, 22]},
        )
        # Switched off: conductivity had only the gross range test.
        self.assertNotIn("conductivity", ctd.fields)
        self.assertIn("pressure", ctd.fields)

    def test_evaluates(self) -> None:
        qc = parse_qc(qc_table())["ctdpf_sample"].evaluator(now=lambda: 2e9)
        # 2024-07-01T00:00:00Z: July, the second climatology span.
        step = qc.push(1719792000.0, {"temperature": 23.0, "pressure": -3.0})
        flags = step.current["temperature"].flags
        self.assertEqual(flags["gross_range"], QartodFlag.SUSPECT)
        self.assertEqual(flags["climatology"], QartodFlag.SUSPECT)
        self.assertEqual(flags["time"], QartodFlag.PASS)
        self.assertEqual(flags["spike"], QartodFlag.NOT_EVALUATED)
        self.assertEqual(step.current["pressure"].aggregate, QartodFlag.FAIL)
        before = qc.push(1500000000.0, {"temperature": 10.0})
        self.assertEqual(before.current["temperature"].flags["time"], QartodFlag.FAIL)

    def test_depth_from_pressure(self) -> None:
        """
        ``depth_field`` reads each sample's depth from another field: the
        span for 0-50 m applies to a sample at 30 dbar, not to one at 80.
        """
        table = {
            "ctdpf_sample": {
                "temperature": {
                    "climatology": {
                        "depth_field": "pressure",
                        "spans": [
                            {
                                "tspan": [1, 12],
                                "period": "month",
                                "vspan": [8, 18],
                                "zspan": [0, 50],
                            }
                        ],
                    }
                }
            }
        }
        qc = parse_qc(table)["ctdpf_sample"].evaluator()
        shallow = qc.push(1.7e9, {"temperature": 20.0, "pressure": 30.0})
        deep = qc.push(1.7e9 + 1, {"temperature": 20.0, "pressure": 80.0})
        none = qc.push(1.7e9 + 2, {"temperature": 20.0})
        flags = [
            s.current["temperature"].flags["climatology"] for s in (shallow, deep, none)
        ]
        self.assertEqual(
            flags,
            [QartodFlag.SUSPECT, QartodFlag.NOT_EVALUATED, QartodFlag.NOT_EVALUATED],
        )

    def test_defaults_off(self) -> None:
        specs = parse_qc({"ctdpf_sample": {"defaults": False}})
        self.assertNotIn("ctdpf_sample", specs)
        self.assertIn("dosta_sample", specs)
        self.assertEqual(parse_qc({}, defaults={}), {})

    def test_streams_restrict(self) -> None:
        """
        Given the driver's streams, defaults for other drivers' streams are
        left out.
        """
        specs = parse_qc({}, streams={"ctdpf_sample": STREAMS["ctdpf_sample"]})
        self.assertEqual(set(specs), {"ctdpf_sample"})


class Defaults(SynchronousTestCase):
    def test_fields_exist(self) -> None:
        """
        Every default names a real stream and field of its driver, and
        parses.
        """
        for stream, fields in DEFAULTS.items():
            self.assertIn(stream, STREAMS)
            for name in fields:
                self.assertIn(name, STREAMS[stream], f"{stream}.{name}")
        parse_qc({}, streams=STREAMS)

    def test_real_samples_pass(self) -> None:
        """
        Samples from the instruments' documents pass their defaults.
        """
        samples = {
            "ctdpf_sample": {
                "temperature": 12.3456,
                "conductivity": 3.51234,
                "pressure": 10.123,
                "salinity": 33.9876,
            },
            "dosta_sample": {
                "oxygen_concentration": 354.25,
                "oxygen_saturation": 94.962,
                "optode_temperature": 7.658,
            },
            "adcp_velocity_earth": {
                "eastward_velocity": [383, -58, None],
                "northward_velocity": [314, -137, None],
                "percent_good_4beam": [100, 0, 0],
            },
        }
        specs = parse_qc({})
        for stream, values in samples.items():
            step = specs[stream].evaluator().push(1.7e9, values)
            for name in values:
                results = step.current[name]
                for r in results if isinstance(results, list) else [results]:
                    self.assertIn(
                        r.aggregate, (QartodFlag.PASS, QartodFlag.MISSING), name
                    )


class Mistakes(SynchronousTestCase):
    def check(self, table: object, *words: str, **kw: object) -> None:
        with self.assertRaises(QCConfigError) as caught:
            parse_qc(table, defaults={}, **kw)
        for word in words:
            self.assertIn(word, str(caught.exception))

    def test_unknown_test(self) -> None:
        self.check(
            {"s": {"x": {"gross": {}}}},
            "qc.s.x.gross",
            "unknown test",
            "gross_range, rate_of_change, spike",
        )

    def test_unknown_key(self) -> None:
        self.check(
            {"s": {"x": {"gross_range": {"fail_span": [0, 1], "fial": 3}}}},
            "qc.s.x.gross_range.fial",
            "valid keys: fail_span, suspect_span",
        )

    def test_required(self) -> None:
        self.check(
            {"s": {"x": {"rate_of_change": {}}}},
            "qc.s.x.rate_of_change",
            "threshold is required",
        )

    def test_bad_span(self) -> None:
        self.check(
            {"s": {"x": {"gross_range": {"fail_span": [0]}}}},
            "qc.s.x.gross_range.fail_span",
            "[0]",
            "a pair [low, high]",
        )
        self.check(
            {"s": {"x": {"gross_range": {"fail_span": [0, "ten"]}}}},
            "qc.s.x.gross_range.fail_span[1]",
            "'ten'",
            "finite number",
        )

    def test_suspect_outside_fail(self) -> None:
        self.check(
            {
                "s": {
                    "x": {
                        "gross_range": {"fail_span": [0, 10], "suspect_span": [-1, 5]}
                    }
                }
            },
            "qc.s.x.gross_range",
            "not within fail_span [0.0, 10.0]",
        )

    def test_method(self) -> None:
        self.check(
            {"s": {"x": {"spike": {"suspect_threshold": 1, "method": "mean"}}}},
            "qc.s.x.spike.method",
            "'mean'",
            "average, differential",
        )

    def test_spike_needs_a_threshold(self) -> None:
        self.check({"s": {"x": {"spike": {}}}}, "qc.s.x.spike", "suspect_threshold")

    def test_tolerance_positive(self) -> None:
        self.check(
            {
                "s": {
                    "x": {
                        "flat_line": {
                            "suspect_threshold": 60,
                            "fail_threshold": 120,
                            "tolerance": 0,
                        }
                    }
                }
            },
            "qc.s.x.flat_line.tolerance",
            "greater than 0",
        )

    def test_period(self) -> None:
        self.check(
            {
                "s": {
                    "x": {
                        "climatology": {
                            "spans": [
                                {"tspan": [1, 2], "vspan": [0, 1], "period": "season"}
                            ]
                        }
                    }
                }
            },
            "qc.s.x.climatology.spans[0].period",
            "'season'",
            "month",
            "dayofyear",
        )

    def test_date(self) -> None:
        self.check(
            {"s": {"time": {"fail_span": ["yesterday", "2030-01-01"]}}},
            "qc.s.time.fail_span[0]",
            "'yesterday'",
            "ISO 8601",
        )

    def test_defaults_flag(self) -> None:
        self.check({"s": {"defaults": "no"}}, "qc.s.defaults", "'no'", "true or false")

    def test_not_a_table(self) -> None:
        self.check({"s": {"x": 3}}, "qc.s.x", "3", "a table")
        self.check([], "qc", "a table")

    def test_unknown_stream_and_field(self) -> None:
        self.check(
            {"ctd_sample": {}},
            "qc.ctd_sample",
            "no such stream",
            "ctdpf_sample",
            streams=STREAMS,
        )
        self.check(
            {"ctdpf_sample": {"temp": {}}},
            "qc.ctdpf_sample.temp",
            "no such field",
            "temperature",
            streams=STREAMS,
        )

    def test_depth_field(self) -> None:
        spans = [{"tspan": [1, 12], "period": "month", "vspan": [0, 1]}]
        self.check(
            {
                "s": {
                    "x": {
                        "climatology": {"spans": spans, "depth": 3, "depth_field": "p"}
                    }
                }
            },
            "qc.s.x.climatology",
            "depth or depth_field, not both",
        )
        self.check(
            {
                "ctdpf_sample": {
                    "temperature": {
                        "climatology": {"spans": spans, "depth_field": "depth"}
                    }
                }
            },
            "qc.ctdpf_sample.temperature.climatology.depth_field",
            "'depth'",
            "pressure",
            streams=STREAMS,
        )

    def test_location_fields(self) -> None:
        self.check(
            {"s": {"location": {"lat": "lat"}}}, "qc.s.location", "lon is required"
        )
        self.check(
            {"s": {"location": {"lat": 45, "lon": "lon"}}},
            "qc.s.location.lat",
            "a field name",
        )
