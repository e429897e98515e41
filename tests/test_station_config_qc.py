"""
An instrument's ``qc`` table in the station configuration: the drivers'
default ranges by default, tightened or turned off; every mistake named
with its key path, value and the valid choices, alongside every other
problem of the file.
"""

from __future__ import annotations

from instrumentd.qc import DEFAULTS
from tests.test_station_config import GOOD, ConfigCheckTests

SBE37 = "instrumentd.instruments.seabird.sbe37smp.driver:SBE37Protocol"
CTD = f"""
[[instruments]]
name = "ctd1"
driver = "{SBE37}"
connection = {{ type = "simulator", model = "sbe37" }}
"""


class QCConfigTests(ConfigCheckTests):
    def test_defaults(self) -> None:
        """
        With no qc table, the driver's streams get the shipped default
        ranges, and only its streams.
        """
        [ctd] = self.load(CTD).instruments
        self.assertEqual(list(ctd.qc), ["ctdpf_sample"])
        spec = ctd.qc["ctdpf_sample"]
        self.assertEqual(
            spec.fields["temperature"]["gross_range"],
            DEFAULTS["ctdpf_sample"]["temperature"]["gross_range"],
        )
        self.assertFalse(spec.lagging)

    def test_no_streams_declared(self) -> None:
        """
        A driver whose streams have no default ranges has no QC.
        """
        [toy] = self.load(GOOD).instruments
        self.assertEqual(toy.qc, {})

    def test_tighten(self) -> None:
        [ctd] = self.load(
            CTD
            + """
[instruments.qc.ctdpf_sample]
hold = 30
[instruments.qc.ctdpf_sample.temperature]
gross_range = { fail_span = [0, 20], suspect_span = [2, 18] }
spike = { suspect_threshold = 0.5 }
[instruments.qc.ctdpf_sample.conductivity]
gross_range = false
"""
        ).instruments
        spec = ctd.qc["ctdpf_sample"]
        self.assertEqual(
            spec.fields["temperature"]["gross_range"]["fail_span"], [0, 20]
        )
        self.assertIn("spike", spec.fields["temperature"])
        self.assertNotIn("conductivity", spec.fields)
        self.assertIn("pressure", spec.fields)
        self.assertTrue(spec.lagging)
        self.assertEqual(spec.hold, 30)

    def test_narrowed_fail_span(self) -> None:
        """
        A fail span narrowed alone cuts the default suspect span to it (or
        drops it when none of it is left).
        """
        [ctd] = self.load(
            CTD
            + """
[instruments.qc.ctdpf_sample]
temperature = { gross_range = { fail_span = [0, 20] } }
pressure = { gross_range = { fail_span = [0, 350], suspect_span = [1, 300] } }
"""
        ).instruments
        fields = ctd.qc["ctdpf_sample"].fields
        self.assertEqual(
            fields["temperature"]["gross_range"],
            {"fail_span": [0, 20], "suspect_span": [0.0, 20.0]},
        )
        self.assertEqual(
            fields["pressure"]["gross_range"],
            {"fail_span": [0, 350], "suspect_span": [1, 300]},
        )
        [ctd] = self.load(
            CTD + "qc = { ctdpf_sample = { temperature = { gross_range = "
            "{ fail_span = [36, 40] } } } }\n"
        ).instruments
        self.assertEqual(
            ctd.qc["ctdpf_sample"].fields["temperature"]["gross_range"],
            {"fail_span": [36, 40]},
        )

    def test_defaults_off(self) -> None:
        [ctd] = self.load(
            CTD
            + """
[instruments.qc.ctdpf_sample]
defaults = false
temperature = { gross_range = { fail_span = [0, 20] } }
"""
        ).instruments
        self.assertEqual(list(ctd.qc["ctdpf_sample"].fields), ["temperature"])

    def test_stream_off(self) -> None:
        [ctd] = self.load(CTD + "qc = { ctdpf_sample = false }\n").instruments
        self.assertEqual(ctd.qc, {})

    def test_unknown_stream(self) -> None:
        self.assertProblem(
            CTD + "qc = { ctdpf = { temperature = { spike = false } } }\n",
            "instruments[0].qc.ctdpf",
            "no such stream",
            "ctdpf_calibration, ctdpf_sample, ctdpf_status",
        )

    def test_unknown_field(self) -> None:
        self.assertProblem(
            CTD + "qc = { ctdpf_sample = { temp = { spike = false } } }\n",
            "instruments[0].qc.ctdpf_sample.temp",
            "no such field in stream ctdpf_sample",
            "conductivity, instrument_time, pressure",
        )

    def test_unknown_test(self) -> None:
        self.assertProblem(
            CTD + "qc = { ctdpf_sample = { temperature = { gross = false } } }\n",
            "instruments[0].qc.ctdpf_sample.temperature.gross",
            "unknown test",
            "climatology, flat_line, gross_range, rate_of_change, spike",
        )

    def test_bad_value(self) -> None:
        self.assertProblem(
            CTD
            + """
[instruments.qc.ctdpf_sample.temperature]
spike = { suspect_threshold = 0.5, method = "mean" }
""",
            "instruments[0].qc.ctdpf_sample.temperature.spike.method",
            "'mean' is not one of average, differential",
        )

    def test_bad_span(self) -> None:
        self.assertProblem(
            CTD
            + """
[instruments.qc.ctdpf_sample.temperature]
gross_range = { fail_span = [0, 10], suspect_span = [-1, 5] }
""",
            "instruments[0].qc.ctdpf_sample.temperature.gross_range",
            "suspect_span [-1.0, 5.0] is not within fail_span [0.0, 10.0]",
        )

    def test_bad_hold(self) -> None:
        self.assertProblem(
            CTD + "qc = { ctdpf_sample = { hold = 0 } }\n",
            "instruments[0].qc.ctdpf_sample.hold",
            "0 is not a number greater than 0",
        )
        self.assertProblem(
            CTD + "qc = { ctdpf_sample = { hold = 1e9 } }\n",
            "instruments[0].qc.ctdpf_sample.hold",
            "at most 31622400 seconds",
        )

    def test_not_a_table(self) -> None:
        self.assertProblem(CTD + 'qc = "off"\n', "instruments[0].qc", "must be a table")

    def test_with_other_problems(self) -> None:
        """
        A qc mistake is reported alongside the file's other problems.
        """
        found = self.problems(
            CTD.replace('model = "sbe37"', 'model = "sbe99"')
            + "qc = { ctdpf_sample = { temp = {} } }\n"
        )
        self.assertIn("instruments[0].qc.ctdpf_sample.temp", found)
        self.assertIn("instruments[0].connection.model", found)
