"""
Tests for L{instrumentd.export}: finding series in an archive, reading them
in time order and in chunks, and the CSV export, on files written by the
station's own JSON-lines sink from real driver particles.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.export.archive import Archive, ExportError, parse_time
from instrumentd.export.cli import export
from instrumentd.export.csvfile import write_csv
from instrumentd.export.reading import Counts, read_chunks, survey
from tests.exportsupport import (
    DAY_ONE,
    calibration_particle,
    record,
    sbe37_archive,
    write_lines,
    write_metadata,
    write_sink,
)


def values_of(particle: object) -> dict[str, object]:
    """
    A particle's values by name.
    """
    return {
        v["value_id"]: v["value"]
        for v in particle.to_dict()["values"]  # type: ignore[attr-defined]
    }


def iso(unix: float) -> str:
    return (
        datetime.fromtimestamp(unix, UTC)
        .replace(tzinfo=None)
        .isoformat(timespec="microseconds")
        + "Z"
    )


class Exporting(SynchronousTestCase):
    """
    Runs the command's body in-process, with its output captured.
    """

    def setUp(self) -> None:
        self.archive = os.path.abspath(self.mktemp())
        self.out = os.path.abspath(self.mktemp())

    def run_export(self, *argv: str) -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        status = export([self.archive, *argv, "--output", self.out], stdout, stderr)
        return status, stdout.getvalue(), stderr.getvalue()

    def read_csv(self, name: str) -> list[dict[str, str]]:
        with open(os.path.join(self.out, name), newline="") as f:
            return list(csv.DictReader(f))

    def refused(self, *argv: str) -> str:
        with self.assertRaises(ExportError) as caught:
            self.run_export(*argv)
        return str(caught.exception)


class ArchiveTests(Exporting):
    """
    What an archive holds, and choosing from it.
    """

    def test_stationLayout(self) -> None:
        """
        A station's directory (INSTRUMENT/STREAM/DAY.jsonl, as the sink
        writes it) is found as one series per instrument and stream, its
        day files in order.
        """
        sbe37_archive(self.archive, days=2)
        write_sink(self.archive, "CTD01", [calibration_particle(DAY_ONE)])
        write_sink(self.archive, "CTD02", [calibration_particle(DAY_ONE)])
        archive = Archive(self.archive)
        self.assertEqual(archive.layout, "station")
        self.assertEqual(
            sorted(archive.series),
            [
                (None, "CTD01", "ctdpf_calibration"),
                (None, "CTD01", "ctdpf_sample"),
                (None, "CTD02", "ctdpf_calibration"),
            ],
        )
        days = archive.series[None, "CTD01", "ctdpf_sample"].days
        self.assertEqual([str(d.day) for d in days], ["2026-12-01", "2026-12-02"])

    def test_collectorLayout(self) -> None:
        """
        A collector's directory (STATION/INSTRUMENT/STREAM/DAY.jsonl) is
        found too, each series naming its station.
        """
        sbe37_archive(os.path.join(self.archive, "buoy-7"), days=1)
        sbe37_archive(os.path.join(self.archive, "buoy-8"), days=1)
        archive = Archive(self.archive)
        self.assertEqual(archive.layout, "collector")
        chosen = archive.select(stations=["buoy-8"])
        self.assertEqual([s.label for s in chosen], ["buoy-8/CTD01/ctdpf_sample"])

    def test_unknownNames(self) -> None:
        """
        An instrument, stream or station the archive does not hold is
        refused with its name and the valid choices.
        """
        sbe37_archive(self.archive, days=1)
        archive = Archive(self.archive)
        with self.assertRaises(ExportError) as caught:
            archive.select(instruments=["CTD9"])
        self.assertEqual(
            str(caught.exception),
            "--instrument 'CTD9': no such instrument in the archive (of the "
            "series chosen so far); valid choices: CTD01",
        )
        with self.assertRaises(ExportError) as caught:
            archive.select(streams=["ctd_parsed"])
        self.assertIn("'ctd_parsed'", str(caught.exception))
        self.assertIn("valid choices: ctdpf_sample", str(caught.exception))
        with self.assertRaises(ExportError) as caught:
            archive.select(stations=["buoy-7"])
        self.assertIn("station's archive", str(caught.exception))

    def test_notAnArchive(self) -> None:
        """
        A directory with no day files in either layout is refused, saying
        what was expected.
        """
        os.makedirs(os.path.join(self.archive, "empty"))
        with self.assertRaises(ExportError) as caught:
            Archive(self.archive)
        self.assertIn("INSTRUMENT/STREAM/YYYY-MM-DD.jsonl", str(caught.exception))
        with self.assertRaises(ExportError) as caught:
            Archive(os.path.join(self.archive, "nowhere"))
        self.assertIn("is not a directory", str(caught.exception))

    def test_parseTime(self) -> None:
        """
        Times are ISO 8601 dates or times, UTC unless they say otherwise.
        """
        self.assertEqual(
            parse_time("2026-12-01", "--start"), datetime(2026, 12, 1, tzinfo=UTC)
        )
        self.assertEqual(
            parse_time("2026-12-01T06:30:00Z", "--start"),
            datetime(2026, 12, 1, 6, 30, tzinfo=UTC),
        )
        self.assertEqual(
            parse_time("2026-12-01T07:30+01:00", "--end"),
            datetime(2026, 12, 1, 6, 30, tzinfo=UTC),
        )
        with self.assertRaises(ExportError) as caught:
            parse_time("yesterday", "--start")
        self.assertIn("--start 'yesterday' is not a time", str(caught.exception))


class CSVTests(Exporting):
    """
    The CSV export of files the station's sink wrote.
    """

    def test_sbe37(self) -> None:
        """
        One row per sample: the ISO time, then one column per field headed
        with its units, the values as the particles had them; no QC columns
        when the records carry no flags.
        """
        particles = sbe37_archive(self.archive, days=2, per_day=10)
        status, summary, progress = self.run_export()
        self.assertEqual(status, 0)
        self.assertEqual(progress, "")
        self.assertIn("CTD01/ctdpf_sample: 20 records", summary)
        with open(os.path.join(self.out, "CTD01_ctdpf_sample.csv")) as f:
            header = f.readline().strip().split(",")
        self.assertEqual(header[0], "time")
        self.assertIn("temperature [degree_Celsius]", header)
        self.assertIn("conductivity [S m-1]", header)
        self.assertIn("pressure [dbar]", header)
        self.assertFalse([h for h in header if "_qc_" in h])
        rows = self.read_csv("CTD01_ctdpf_sample.csv")
        self.assertEqual(len(rows), 20)
        for row, particle in zip(rows, particles, strict=True):
            values = values_of(particle)
            self.assertEqual(
                row["time"], iso(DAY_ONE + particles.index(particle) * 8640)
            )
            self.assertEqual(
                float(row["temperature [degree_Celsius]"]), values["temperature"]
            )
            self.assertEqual(float(row["conductivity [S m-1]"]), values["conductivity"])
            self.assertEqual(float(row["pressure [dbar]"]), values["pressure"])
            # A field the instrument did not print is an empty cell.
            self.assertEqual(row["salinity [1]"], "")

    def test_timeRange(self) -> None:
        """
        --start is inclusive and --end exclusive, across day files; times
        with an offset are taken as such.
        """
        sbe37_archive(self.archive, days=3, per_day=24)
        status, _, _ = self.run_export(
            "--start", "2026-12-01T22:00:00Z", "--end", "2026-12-03T03:00+01:00"
        )
        self.assertEqual(status, 0)
        rows = self.read_csv("CTD01_ctdpf_sample.csv")
        self.assertEqual(rows[0]["time"], "2026-12-01T22:00:00.000000Z")
        self.assertEqual(rows[-1]["time"], "2026-12-03T01:00:00.000000Z")
        self.assertEqual(len(rows), 2 + 24 + 2)

    def test_emptyRange(self) -> None:
        """
        A range with no records writes nothing, says so with the days the
        files cover, and ends with status 1.
        """
        sbe37_archive(self.archive, days=1)
        status, summary, _ = self.run_export("--start", "2027-01-01")
        self.assertEqual(status, 1)
        self.assertIn("CTD01/ctdpf_sample: no records from 2027-01-01", summary)
        self.assertIn("its files cover 2026-12-01 to 2026-12-01", summary)
        self.assertFalse(
            os.path.exists(os.path.join(self.out, "CTD01_ctdpf_sample.csv"))
        )

    def test_badRange(self) -> None:
        """
        A start not before the end, or a time that is not one, is refused
        naming the values.
        """
        sbe37_archive(self.archive, days=1)
        self.assertEqual(
            self.refused("--start", "2026-12-02", "--end", "2026-12-01"),
            "--start '2026-12-02' is not before --end '2026-12-01': the range is "
            "empty (--end is exclusive)",
        )
        self.assertIn(
            "--end 'tomorrow' is not a time", self.refused("--end", "tomorrow")
        )

    def test_badFormat(self) -> None:
        """
        An unknown format is refused with the valid ones.
        """
        sbe37_archive(self.archive, days=1)
        self.assertEqual(
            self.refused("--format", "xlsx"),
            "--format 'xlsx' is not a format; valid choices: csv, netcdf",
        )

    def test_selection(self) -> None:
        """
        --instrument and --stream choose the series; each becomes its own
        file; an unknown one is refused with the valid choices.
        """
        sbe37_archive(self.archive, days=1, per_day=4)
        sbe37_archive(self.archive, days=1, per_day=6, instrument="CTD02")
        write_sink(self.archive, "CTD02", [calibration_particle(DAY_ONE)])
        status, _summary, _ = self.run_export(
            "--instrument", "CTD02", "--stream", "ctdpf_sample"
        )
        self.assertEqual(status, 0)
        self.assertEqual(os.listdir(self.out), ["CTD02_ctdpf_sample.csv"])
        self.assertEqual(len(self.read_csv("CTD02_ctdpf_sample.csv")), 6)
        self.assertIn(
            "valid choices: ctdpf_calibration, ctdpf_sample",
            self.refused("-i", "CTD02", "-s", "ctdpf_status"),
        )
        self.assertIn("valid choices: CTD01, CTD02", self.refused("-i", "ctd01"))

    def test_qcFlags(self) -> None:
        """
        Records with QC flags give a column per field and test, the
        aggregate last; a record without them leaves those cells empty.
        """
        folder = os.path.join(self.archive, "CTD01", "ctdpf_sample")
        write_lines(
            os.path.join(folder, "2026-12-01.jsonl"),
            [
                record(
                    DAY_ONE,
                    {"temperature": 10.5, "pressure": 3.0},
                    qc={
                        "temperature": {"gross_range": 1, "spike": 2, "aggregate": 1},
                        "pressure": {"gross_range": 4, "aggregate": 4},
                    },
                ),
                record(
                    DAY_ONE + 1,
                    {"temperature": 40.0, "pressure": 3.1},
                    qc={
                        "temperature": {"gross_range": 3, "spike": 1, "aggregate": 3},
                        "pressure": {"gross_range": 1, "aggregate": 1},
                    },
                ),
                record(DAY_ONE + 2, {"temperature": 11.0, "pressure": 3.2}),
            ],
        )
        self.run_export()
        with open(os.path.join(self.out, "CTD01_ctdpf_sample.csv")) as f:
            lines = f.read().splitlines()
        self.assertEqual(
            lines,
            [
                "time,quality_flag,temperature [degree_Celsius],pressure,"
                "temperature_qc_gross_range,temperature_qc_spike,"
                "temperature_qc_aggregate,pressure_qc_gross_range,"
                "pressure_qc_aggregate",
                "2026-12-01T00:00:00.000000Z,ok,10.5,3.0,1,2,1,4,4",
                "2026-12-01T00:00:01.000000Z,ok,40.0,3.1,3,1,3,1,1",
                "2026-12-01T00:00:02.000000Z,ok,11.0,3.2,,,,,",
            ],
        )

    def test_outOfOrderAndDuplicates(self) -> None:
        """
        A file whose records are not in time order (played back late) is
        exported in time order; a record with the time of the one before is
        left out and counted; a torn line is skipped and counted.
        """
        folder = os.path.join(self.archive, "CTD01", "ctdpf_sample")
        write_lines(
            os.path.join(folder, "2026-12-01.jsonl"),
            [
                record(DAY_ONE + 10, {"temperature": 1.0}),
                record(DAY_ONE + 30, {"temperature": 3.0}),
                '{"record": "instrumentd.sample", "vers',
                record(DAY_ONE + 20, {"temperature": 2.0}),
                record(DAY_ONE + 30, {"temperature": 3.5}),
                record(DAY_ONE + 40, {"temperature": 4.0}),
            ],
        )
        _status, summary, _ = self.run_export()
        rows = self.read_csv("CTD01_ctdpf_sample.csv")
        self.assertEqual(
            [(r["time"][11:19], r["temperature [degree_Celsius]"]) for r in rows],
            [("00:00:10", "1.0"), ("00:00:20", "2.0"), ("00:00:30", "3.0"),
             ("00:00:40", "4.0")],
        )  # fmt: skip
        self.assertIn("4 records -> ", summary)
        self.assertIn("1 left out with the time of the record before", summary)
        self.assertIn("1 unreadable lines skipped", summary)

    def test_qcAmendment(self) -> None:
        """
        A QC amendment (a spike flag known one sample late) is applied to
        the record it names, even across a chunk's end.
        """
        folder = os.path.join(self.archive, "CTD01", "ctdpf_sample")
        lines: list[object] = []
        for i in range(5):
            lines.append(
                record(
                    DAY_ONE + i,
                    {"temperature": float(i)},
                    qc={"temperature": {"spike": 2, "aggregate": 1}},
                )
            )
            if i:
                lines.append(
                    {
                        "record": "instrumentd.qc_amendment",
                        "version": 2,
                        "instrument": "CTD01",
                        "stream": "ctdpf_sample",
                        "time": iso(DAY_ONE + i - 1),
                        "qc": {"temperature": {"spike": 4 if i == 3 else 1,
                                               "aggregate": 4 if i == 3 else 1}},
                    }
                )  # fmt: skip
        write_lines(os.path.join(folder, "2026-12-01.jsonl"), lines)  # type: ignore[arg-type]
        self.run_export("--chunk", "2")
        rows = self.read_csv("CTD01_ctdpf_sample.csv")
        self.assertEqual(
            [r["temperature_qc_spike"] for r in rows], ["1", "1", "4", "1", "2"]
        )
        self.assertEqual(
            [r["temperature_qc_aggregate"] for r in rows], ["1", "1", "4", "1", "1"]
        )

    def test_oldLayout(self) -> None:
        """
        Lines of the layout stations wrote before version 2 (a particle's
        to_dict(): NTP times, values as a list) are read as records.
        """
        particle = calibration_particle(DAY_ONE)
        old = particle.to_dict()
        folder = os.path.join(self.archive, "CTD01", "ctdpf_calibration")
        write_lines(os.path.join(folder, "2026-12-01.jsonl"), [old])
        self.run_export()
        rows = self.read_csv("CTD01_ctdpf_calibration.csv")
        self.assertEqual(rows[0]["time"], "2026-12-01T00:00:00.000000Z")
        self.assertEqual(rows[0]["serial_number"], "2165")
        self.assertEqual(rows[0]["tcaldate"], "08-nov-05")

    def test_chunks(self) -> None:
        """
        Records are read in chunks of the size asked for, and whatever the
        chunk size the file is the same.
        """
        sbe37_archive(self.archive, days=2, per_day=50)
        paths = Archive(self.archive).select()[0].files_between(None, None)
        summary = survey(paths, None, None)
        self.assertEqual(summary.records, 100)
        sizes = [len(c) for c in read_chunks(summary, None, None, 7)]
        self.assertEqual(sum(sizes), 100)
        self.assertLessEqual(max(sizes), 7)
        outputs = []
        for size in (1, 7, 1000):
            out = io.StringIO()
            written = write_csv(out, summary, read_chunks(summary, None, None, size))
            self.assertEqual(written, 100)
            outputs.append(out.getvalue())
        self.assertEqual(outputs[0], outputs[1])
        self.assertEqual(outputs[0], outputs[2])

    def test_countsDuplicates(self) -> None:
        """
        The reading pass counts what it leaves out.
        """
        folder = os.path.join(self.archive, "CTD01", "ctdpf_sample")
        write_lines(
            os.path.join(folder, "2026-12-01.jsonl"),
            [record(DAY_ONE, {"temperature": 1.0})] * 3,
        )
        summary = survey([os.path.join(folder, "2026-12-01.jsonl")], None, None)
        counts = Counts()
        rows = [
            r for c in read_chunks(summary, None, None, 10, counts=counts) for r in c
        ]
        self.assertEqual(len(rows), 1)
        self.assertEqual(counts.duplicates, 2)

    def test_outputFile(self) -> None:
        """
        --output naming a .csv file writes that file when one series is
        chosen, and is refused when more are.
        """
        sbe37_archive(self.archive, days=1, per_day=3)
        write_sink(self.archive, "CTD01", [calibration_particle(DAY_ONE)])
        target = os.path.join(self.archive + "-out", "ctd.csv")
        stdout = io.StringIO()
        os.makedirs(os.path.dirname(target))
        export(
            [self.archive, "-s", "ctdpf_sample", "-o", target], stdout, io.StringIO()
        )
        with open(target) as f:
            self.assertEqual(len(f.read().splitlines()), 4)
        with self.assertRaises(ExportError) as caught:
            export([self.archive, "-o", target], stdout, io.StringIO())
        self.assertIn("names one file, but 2 series are chosen", str(caught.exception))

    def test_list(self) -> None:
        """
        --list shows each series and the days its files cover.
        """
        sbe37_archive(self.archive, days=3, per_day=2)
        status, listing, _ = self.run_export("--list")
        self.assertEqual(status, 0)
        self.assertEqual(
            listing, "CTD01/ctdpf_sample\t2026-12-01 .. 2026-12-03\t3 day files\n"
        )


class IdentityTests(SynchronousTestCase):
    """
    What the export learns of an instrument from its metadata file and its
    records.
    """

    def test_metadataAndRecords(self) -> None:
        """
        The metadata file gives the station, position, driver and the
        calibration dates among the parameters; the serial number comes
        from the last record of another stream (the calibration dump).
        """
        from instrumentd.export.cli import _learn_identity

        directory = self.mktemp()
        sbe37_archive(directory, days=1, per_day=2, metadata=False)
        write_sink(directory, "CTD01", [calibration_particle(DAY_ONE)])
        write_metadata(directory, "CTD01", parameters={"TCALDATE": "01-jan-26"})
        series = Archive(directory).select(streams=["ctdpf_sample"])[0]
        info = series.info()
        self.assertEqual(info.station, "buoy-7")
        assert info.position is not None
        self.assertEqual(
            (info.position.latitude, info.position.longitude), (44.6, -124.3)
        )
        self.assertEqual(info.driver, "seabird_sbe37smp")
        self.assertIsNone(info.serial_number)
        _learn_identity(info, series)
        self.assertEqual(info.serial_number, "2165")
        self.assertEqual(info.firmware_version, "2.6b")
        # The parameters' date is kept; the record's fill in the others.
        self.assertEqual(
            info.calibration_dates,
            {
                "temperature": "01-jan-26",
                "conductivity": "08-nov-05",
                "pressure": "12-aug-05",
                "rtc": "08-nov-05",
            },
        )

    def test_noMetadata(self) -> None:
        """
        Without a metadata file the export still knows the series; a
        metadata file that is not JSON is refused naming it.
        """
        directory = self.mktemp()
        sbe37_archive(directory, days=1, per_day=2, metadata=False)
        series = Archive(directory).select()[0]
        info = series.info()
        self.assertIsNone(info.station)
        self.assertIsNone(info.position)
        with open(os.path.join(directory, "CTD01", "metadata.json"), "w") as f:
            f.write("{not json")
        with self.assertRaises(ExportError) as caught:
            series.info()
        self.assertIn("metadata.json: cannot read it", str(caught.exception))
        self.assertEqual(json.loads("{}"), {})


class CollectorArchiveTests(Exporting):
    """
    A collector's archive, written by the collector's own code from the
    messages stations publish.
    """

    def test_export(self) -> None:
        """
        Each station's series export on their own, named by station; the
        collector's ``station`` and ``seq`` keys do not become columns; its
        ``_events`` folders are not series.
        """
        from instrumentd.collector.archive import Archive as CollectorArchive
        from instrumentd.collector.message import parse_message

        collector = CollectorArchive(self.archive)
        for station in ("buoy-7", "buoy-8"):
            for seq in range(1, 4):
                sample = record(DAY_ONE + seq, {"temperature": 10.0 + seq})
                message = parse_message(
                    f"instrumentd/{station}/CTD01/data/ctdpf_sample",
                    json.dumps(
                        {
                            "station": station,
                            "instrument": "CTD01",
                            "seq": seq,
                            "record": sample,
                        }
                    ).encode(),
                )
                assert message.day is not None
                collector.append(message, message.day)
            event = parse_message(
                f"instrumentd/{station}/CTD01/events/STATE_CHANGE",
                json.dumps(
                    {
                        "station": station,
                        "instrument": "CTD01",
                        "seq": 4,
                        "event": {
                            "type": "STATE_CHANGE",
                            "time": DAY_ONE + 5,
                            "state": "AUTOSAMPLE",
                        },
                    }
                ).encode(),
            )
            assert event.day is not None
            collector.append(event, event.day)
        collector.write()
        collector.close()
        self.assertTrue(
            os.path.isdir(os.path.join(self.archive, "buoy-7", "CTD01", "_events"))
        )
        archive = Archive(self.archive)
        self.assertEqual(archive.layout, "collector")
        self.assertEqual(
            sorted(archive.series),
            [("buoy-7", "CTD01", "ctdpf_sample"), ("buoy-8", "CTD01", "ctdpf_sample")],
        )
        status, summary, _ = self.run_export("--station", "buoy-8")
        self.assertEqual(status, 0)
        self.assertIn("buoy-8/CTD01/ctdpf_sample: 3 records", summary)
        self.assertEqual(os.listdir(self.out), ["buoy-8_CTD01_ctdpf_sample.csv"])
        rows = self.read_csv("buoy-8_CTD01_ctdpf_sample.csv")
        self.assertEqual(
            list(rows[0]), ["time", "quality_flag", "temperature [degree_Celsius]"]
        )
        self.assertEqual(
            [r["temperature [degree_Celsius]"] for r in rows], ["11.0", "12.0", "13.0"]
        )
        self.assertIn(
            "--station 'buoy-9': no such station in the archive; valid choices: "
            "buoy-7, buoy-8",
            self.refused("--station", "buoy-9"),
        )
