"""
``instrumentctl watch`` shows each sample's QC flags in brief: the worst
aggregate flag, and the fields that fail or are suspect.
"""

from __future__ import annotations

import io
import json

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.cli._format import Output
from instrumentd.cli._watch import SampleTable, qc_cell
from instrumentd.station.sse import ServerSentEvent


def sample(values: dict[str, object], qc: dict[str, object] | None) -> ServerSentEvent:
    record: dict[str, object] = {
        "record": "instrumentd.sample",
        "version": 2,
        "instrument": "ctd1",
        "stream": "ctdpf_sample",
        "time": "2026-12-07T08:00:00.000000Z",
        "ntp_time": 3_974_284_800.0,
        "values": values,
    }
    if qc is not None:
        record["qc"] = qc
    data = {"instrument": "ctd1", "type": "SAMPLE", "time": 1.8e9, "record": record}
    return ServerSentEvent("SAMPLE", json.dumps(data))


class QCCellTests(SynchronousTestCase):
    def test_words(self) -> None:
        def cell(qc: dict[str, object]) -> str | None:
            return qc_cell({"record": {"qc": qc}})

        self.assertEqual(cell({"t": {"aggregate": 1}, "c": {"aggregate": 1}}), "pass")
        self.assertEqual(cell({"t": {"aggregate": 2}}), "-")
        self.assertEqual(cell({"t": {"aggregate": 9}}), "missing")
        self.assertEqual(
            cell({"t": {"aggregate": 4}, "p": {"aggregate": 4}, "c": {"aggregate": 1}}),
            "FAIL p,t",
        )
        self.assertEqual(
            cell({"t": {"aggregate": 4}, "s": {"aggregate": 3}}), "FAIL t SUSPECT s"
        )
        self.assertEqual(cell({"v": {"aggregate": [1, 3, 1]}}), "SUSPECT v")
        self.assertIsNone(qc_cell({"record": {"values": {}}}))
        self.assertIsNone(qc_cell({"particle": {}}))


class TableTests(SynchronousTestCase):
    def test_qc_column(self) -> None:
        """
        A stream whose samples carry flags has a QC column, last.
        """
        out = io.StringIO()
        table = SampleTable(Output(out, io.StringIO(), as_json=False))
        table.event(
            sample(
                {"temperature": 12.5, "pressure": 10.0},
                {"temperature": {"gross_range": 1, "aggregate": 1}},
            )
        )
        table.event(
            sample(
                {"temperature": 45.5, "pressure": 10.0},
                {"temperature": {"gross_range": 4, "aggregate": 4}},
            )
        )
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], "ctdpf_sample:")
        self.assertRegex(lines[1], r"^TIME +TEMPERATURE +PRESSURE +QC$")
        self.assertRegex(lines[2], r"12\.5 +10\.0 +pass$")
        self.assertRegex(lines[3], r"45\.5 +10\.0 +FAIL temperature$")
        self.assertEqual(lines[2].index("pass"), lines[3].index("FAIL"))

    def test_no_qc(self) -> None:
        """
        Without flags there is no QC column.
        """
        out = io.StringIO()
        table = SampleTable(Output(out, io.StringIO(), as_json=False))
        table.event(sample({"temperature": 12.5}, None))
        self.assertNotIn("QC", out.getvalue())
