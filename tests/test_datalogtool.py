"""
Tests for L{instrumentd.datalogtool}: reading datalog files in chunks, files
cut short by a killed writer, directory order, and the C{instrumentd-datalog}
console tool in-process and as the installed script; and the demo recording
that ships in C{instrumentd/data}.
"""

from __future__ import annotations

import argparse
import errno
import io
import itertools
import os
import re
import sysconfig
from collections.abc import Iterable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import IO, Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from instrumentd.datalogfiles import CutPacket, DatalogFile, datalog_paths
from instrumentd.datalogtool import main, parse_packet_types, parse_utc_time
from instrumentd.packet import (
    HEADER_SIZE,
    PacketType,
    encode_packet,
    ntp_to_unix,
    unix_to_ntp,
)
from instrumentd.sniff import sniff_line

#: 2026-11-24T06:00:00Z.
T0 = 1_795_500_000.0

Record = tuple[PacketType, bytes, float]

RECORDS: list[Record] = [
    (PacketType.PORT_AGENT_STATUS, b"CONNECTED", T0),
    (PacketType.DATA_FROM_INSTRUMENT, b"# 11.0123,  3.81234,   10.101", T0 + 5),
    (PacketType.DATA_FROM_INSTRUMENT, b",  33.9001, 1492.123\r\n", T0 + 5.05),
    (PacketType.DATA_FROM_DRIVER, b"ds\r\n", T0 + 7),
    (PacketType.PORT_AGENT_HEARTBEAT, b"HB", T0 + 60),
    (PacketType.DATA_FROM_INSTRUMENT, b"# 11.0200,  3.81301,   10.090\r\n", T0 + 65),
]


def encode(record: Record) -> bytes:
    """
    Encode one test record as a packet.
    """
    kind, payload, when = record
    return encode_packet(kind, payload, *unix_to_ntp(when))


def sniff(record: Record) -> bytes:
    """
    The sniff line the tool must print for one test record.
    """
    kind, payload, when = record
    return sniff_line(kind, payload, *unix_to_ntp(when))


def write_datalog(path: Path, records: Iterable[Record], tail: bytes = b"") -> bytes:
    """
    Write records as a datalog file, followed by C{tail}; return the bytes.
    """
    data = b"".join(encode(r) for r in records) + tail
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def run(*argv: str) -> tuple[int, bytes, str]:
    """
    Run the tool in-process; return its status, output bytes and error text.
    """
    out = io.BytesIO()
    err = io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


class _ReadRecordingPath(type(Path())):  # type: ignore[misc]
    """
    A path whose opened files record the size of every read.
    """

    reads: list[int]

    def open(self, *args: Any, **kwargs: Any) -> IO[Any]:
        f: IO[Any] = super().open(*args, **kwargs)
        reads = self.reads
        real_read = f.read

        def read(size: int = -1) -> bytes:
            reads.append(size)
            data: bytes = real_read(size)
            return data

        f.read = read  # type: ignore[method-assign]
        return f


class DatalogFileTests(SynchronousTestCase):
    """
    L{DatalogFile} reads every packet in bounded chunks and describes a file
    whose last packet is cut short.
    """

    def setUp(self) -> None:
        self.path = Path(self.mktemp())

    def test_allPackets(self) -> None:
        """
        Every packet comes out in order with its type, payload and time, even
        when packets straddle chunk boundaries.
        """
        write_datalog(self.path, RECORDS)
        datalog = DatalogFile(self.path, chunk_size=7)
        packets = list(datalog.packets())
        self.assertEqual(
            [(p.type, p.payload, p.unix_time) for p in packets],
            [(k, d, ntp_to_unix(*unix_to_ntp(t))) for k, d, t in RECORDS],
        )
        self.assertIsNone(datalog.cut)
        self.assertEqual(datalog.counters.packets, len(RECORDS))
        self.assertEqual(datalog.bytes_read, self.path.stat().st_size)

    def test_strPath(self) -> None:
        """
        A C{str} path works, as the docs show (C{DatalogFile("x.datalog")}),
        and C{path} is then a L{Path}.
        """
        write_datalog(self.path, RECORDS)
        datalog = DatalogFile(str(self.path))
        self.assertEqual(datalog.path, self.path)
        self.assertIsInstance(datalog.path, Path)
        self.assertEqual(len(list(datalog.packets())), len(RECORDS))
        self.assertEqual(datalog.bytes_read, self.path.stat().st_size)

    def test_readsInChunks(self) -> None:
        """
        The file is read C{chunk_size} bytes at a time, never whole: a
        multi-gigabyte datalog must not have to fit in memory.
        """
        write_datalog(self.path, RECORDS * 20)
        path = _ReadRecordingPath(self.path)
        path.reads = []
        packets = list(DatalogFile(path, chunk_size=100).packets())
        self.assertEqual(len(packets), len(RECORDS) * 20)
        self.assertGreater(len(path.reads), 10)
        self.assertEqual(set(path.reads), {100})

    def test_cutPacket(self) -> None:
        """
        A last packet cut short by a killed writer is not delivered; C{cut}
        gives the offset where it starts, the bytes present and the length
        its header promised.
        """
        whole = write_datalog(self.path, RECORDS)
        last = encode(RECORDS[-1])
        self.path.write_bytes(whole[:-10])
        datalog = DatalogFile(self.path, chunk_size=16)
        packets = list(datalog.packets())
        self.assertEqual(len(packets), len(RECORDS) - 1)
        self.assertEqual(
            datalog.cut,
            CutPacket(len(whole) - len(last), len(last) - 10, len(last)),
        )
        self.assertEqual(datalog.counters.bad_packets, 0)

    def test_cutHeader(self) -> None:
        """
        When even the header is incomplete, the expected length is unknown.
        """
        whole = write_datalog(self.path, RECORDS)
        last = encode(RECORDS[-1])
        start = len(whole) - len(last)
        self.path.write_bytes(whole[: start + 5])
        datalog = DatalogFile(self.path)
        self.assertEqual(len(list(datalog.packets())), len(RECORDS) - 1)
        self.assertEqual(datalog.cut, CutPacket(start, 5, None))
        self.assertIn("5 bytes present", CutPacket(start, 5, None).describe())

    def test_corruptLengthNearEnd(self) -> None:
        """
        A packet whose length field is corrupt and points past the end of the
        file is a bad packet, not a cut one: the good packets after it are
        still delivered, as they would be in mid-file.
        """
        first = encode(RECORDS[1])
        damaged = bytearray(first)
        damaged[4:6] = (4000).to_bytes(2, "big")
        write_datalog(self.path, RECORDS[2:], tail=b"")
        rest = self.path.read_bytes()
        self.path.write_bytes(bytes(damaged) + rest)
        datalog = DatalogFile(self.path, chunk_size=10)
        packets = list(datalog.packets())
        self.assertEqual([p.payload for p in packets], [r[1] for r in RECORDS[2:]])
        self.assertIsNone(datalog.cut)
        self.assertEqual(datalog.counters.bad_checksum, 1)
        self.assertEqual(datalog.counters.junk_bytes, len(first) - 1)

    @settings(max_examples=150, deadline=None)
    @given(
        payloads=st.lists(st.binary(max_size=40), min_size=1, max_size=6),
        cut_fraction=st.floats(min_value=0, max_value=1),
        chunk_size=st.integers(min_value=1, max_value=64),
    )
    def test_anyCutAnyChunking(
        self, payloads: list[bytes], cut_fraction: float, chunk_size: int
    ) -> None:
        """
        However the file is cut and chunked, the packets before the cut come
        out and the cut packet is described exactly.
        """
        packets = [
            encode_packet(PacketType.DATA_FROM_INSTRUMENT, p, 3_900_000_000, i)
            for i, p in enumerate(payloads)
        ]
        whole = b"".join(packets)
        cut_at = int(len(whole) * cut_fraction)
        path = Path(self.mktemp())
        path.write_bytes(whole[:cut_at])
        datalog = DatalogFile(path, chunk_size=chunk_size)
        got = [p.encode() for p in datalog.packets()]
        starts = [sum(len(p) for p in packets[:i]) for i in range(len(packets) + 1)]
        complete = [
            p for p, end in zip(packets, starts[1:], strict=True) if end <= cut_at
        ]
        self.assertEqual(got, complete)
        if cut_at in starts:
            self.assertIsNone(datalog.cut)
        else:
            start = max(s for s in starts if s < cut_at)
            present = cut_at - start
            expected = (
                len(packets[starts.index(start)]) if present >= HEADER_SIZE else None
            )
            self.assertEqual(datalog.cut, CutPacket(start, present, expected))

    def test_missingFile(self) -> None:
        """
        A file that cannot be opened raises L{OSError} from the iteration.
        """
        datalog = DatalogFile(self.path)
        self.assertRaises(FileNotFoundError, list, datalog.packets())


class DatalogFilesTests(SynchronousTestCase):
    """
    L{datalog_paths} expands a directory into its datalogs in recording
    order.
    """

    def test_recordingOrder(self) -> None:
        """
        Files sort by directory then name, and a C{-N} suffix comes after
        the unsuffixed name, in numeric order; other files are ignored.
        """
        root = Path(self.mktemp())
        names = [
            "2026/11/23/CTD_20261123T000000Z.datalog",
            "2026/11/24/CTD_20261124T000000Z.datalog",
            "2026/11/24/CTD_20261124T000000Z-1.datalog",
            "2026/11/24/CTD_20261124T000000Z-2.datalog",
            "2026/11/24/CTD_20261124T000000Z-10.datalog",
            "2026/11/24/CTD_20261124T060000Z.datalog",
        ]
        for name in reversed(names):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(b"")
        (root / "2026/11/24/notes.txt").write_text("not a datalog")
        self.assertEqual(datalog_paths(root), [root / n for n in names])

    def test_fileIsItself(self) -> None:
        """
        A file argument is returned as is, whatever its name, and so is a
        path that does not exist (opening it reports the error).
        """
        path = Path(self.mktemp())
        self.assertEqual(datalog_paths(path), [path])
        path.write_bytes(b"")
        self.assertEqual(datalog_paths(str(path)), [path])


def ooi_archive(root: Path, refdes: str = "CE01ISSM-MFD37-03-CTDBPC000") -> list[Path]:
    """
    OOI's port-agent layout under C{root}, with a day in each of three
    archive files and today's file in C{CURRENT}; return the files in the
    order they were recorded.  The days straddle a month, and the 9th
    sorts after the 10th as text.
    """
    files = [
        root / f"ARCHIVE/{refdes}/2016/09/{refdes}.datalog.2016_09_30",
        root / f"ARCHIVE/{refdes}/2016/10/{refdes}.datalog.2016_10_09",
        root / f"ARCHIVE/{refdes}/2016/10/{refdes}.datalog.2016_10_10",
        root / f"CURRENT/{refdes}.datalog",
    ]
    for path, record in zip(files, RECORDS, strict=False):
        write_datalog(path, [record])
    # OOI's ASCII logs are not datalogs.
    ascii_log = root / f"DISCARD/{refdes}/2016/10/{refdes}.log.2016_10_10"
    ascii_log.parent.mkdir(parents=True)
    ascii_log.write_text("3677356800.5000 :    PA_HEARTBEAT :  CRC OK : 'HB'\n")
    return files


class OOILayoutTests(SynchronousTestCase):
    """
    OOI's port agent archived its datalogs as
    C{ARCHIVE/<refdes>/<YYYY>/<MM>/<refdes>.datalog.<YYYY>_<MM>_<DD>}
    beside C{CURRENT/<refdes>.datalog}, and before mid-2016 as unpadded
    C{<refdes>.datalog.<Y>_<M>_<D>} beside the current file: a directory of
    either is read in recording order.
    """

    def test_archiveLayout(self) -> None:
        """
        Every archive file and the current file are found, oldest first;
        the ASCII logs are not.
        """
        root = Path(self.mktemp())
        files = ooi_archive(root)
        self.assertEqual(datalog_paths(root), files)

    def test_unpaddedLayout(self) -> None:
        """
        The older flat layout sorts by date, not text, with the file still
        being written last.
        """
        root = Path(self.mktemp())
        root.mkdir()
        names = [
            "RS01-CTD.datalog.2016_6_9",
            "RS01-CTD.datalog.2016_6_10",
            "RS01-CTD.datalog.2016_7_1",
            "RS01-CTD.datalog",
        ]
        for name in names:
            (root / name).write_bytes(b"")
        (root / "RS01-CTD.datalog.bak").write_bytes(b"")
        self.assertEqual(datalog_paths(root), [root / n for n in names])

    def test_tool(self) -> None:
        """
        C{instrumentd-datalog DIR} prints the packets of an OOI archive in
        recording order, and C{--name} picks one reference designator's files.
        """
        root = Path(self.mktemp())
        ooi_archive(root)
        write_datalog(root / "ARCHIVE/OTHER/2016/10/OTHER.datalog.2016_10_01", RECORDS)
        expected = b"".join(sniff(r) for r in RECORDS[:4])
        status, out, err = run("-n", "CE01ISSM-MFD37-03-CTDBPC000", str(root))
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, expected)
        status, out, _ = run(str(root / "ARCHIVE/CE01ISSM-MFD37-03-CTDBPC000"))
        self.assertEqual(out, b"".join(sniff(r) for r in RECORDS[:3]))

    def test_typeNames(self) -> None:
        """
        C{--type} takes OOI's names for the types (the Python agent's
        C{FROM_INSTRUMENT}, C{PA_STATUS}..., the driver client's
        C{HEARTBEAT}) in any case.
        """
        path = Path(self.mktemp())
        write_datalog(path, RECORDS)
        status, out, err = run("--type", "pa_status,HEARTBEAT", str(path))
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, sniff(RECORDS[0]) + sniff(RECORDS[4]))
        status, out, _ = run("-x", "-t", "FROM_DRIVER", str(path))
        self.assertEqual(out, b"ds\r\n")
        self.assertEqual(
            parse_packet_types(
                "FROM_INSTRUMENT,FROM_DRIVER,PA_COMMAND,PA_STATUS,PA_FAULT,"
                "PA_CONFIG,PA_HEARTBEAT,DIGI_CMD,DIGI_RSP,PICKLED_FROM_INSTRUMENT"
            ),
            set(PacketType) - {PacketType.UNKNOWN},
        )
        e = self.assertRaises(
            argparse.ArgumentTypeError, parse_packet_types, "INSTRUMENT_COMMAND"
        )
        self.assertIn("OOI's names FROM_INSTRUMENT, FROM_DRIVER", str(e))


class ParseTests(SynchronousTestCase):
    """
    The option value parsers.
    """

    def test_typeNames(self) -> None:
        """
        Types are names in any case or numbers, comma-separated.
        """
        self.assertEqual(
            parse_packet_types("data_from_instrument,4, Port_Agent_Heartbeat"),
            {
                PacketType.DATA_FROM_INSTRUMENT,
                PacketType.PORT_AGENT_STATUS,
                PacketType.PORT_AGENT_HEARTBEAT,
            },
        )

    def test_badType(self) -> None:
        """
        An unknown name or number is an error that lists the valid names.
        """
        for text in ("DATA", "11", "-1"):
            e = self.assertRaises(argparse.ArgumentTypeError, parse_packet_types, text)
            self.assertIn(repr(text), str(e))
            self.assertIn("DATA_FROM_INSTRUMENT (1)", str(e))
            self.assertIn("PORT_AGENT_HEARTBEAT (9)", str(e))

    def test_times(self) -> None:
        """
        ISO 8601 times are UTC unless they say otherwise; a date is midnight
        UTC.
        """
        self.assertEqual(parse_utc_time("2026-11-24T06:00:00Z"), T0)
        self.assertEqual(parse_utc_time("2026-11-24T06:00:00"), T0)
        self.assertEqual(parse_utc_time("2026-11-24T07:00:00+01:00"), T0)
        self.assertEqual(parse_utc_time("2026-11-24T06:00:00.5Z"), T0 + 0.5)
        self.assertEqual(parse_utc_time("2026-11-24"), T0 - 6 * 3600)

    def test_badTime(self) -> None:
        """
        Anything else is an error that quotes the value.
        """
        e = self.assertRaises(argparse.ArgumentTypeError, parse_utc_time, "noon")
        self.assertIn("'noon'", str(e))


class MainTests(SynchronousTestCase):
    """
    The C{instrumentd-datalog} tool, run in-process.
    """

    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.path = self.dir / "2026/11/24/CTD_20261124T060000Z.datalog"
        write_datalog(self.path, RECORDS)

    def test_sniffLines(self) -> None:
        """
        By default every packet is one line, exactly as L{sniff_line} renders
        it.
        """
        status, out, err = run(str(self.path))
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, b"".join(sniff(r) for r in RECORDS))

    def test_directory(self) -> None:
        """
        A directory means every datalog below it, in recording order.
        """
        later = self.dir / "2026/11/24/CTD_20261124T060000Z-1.datalog"
        write_datalog(later, RECORDS[:1])
        status, out, _ = run(str(self.dir))
        self.assertEqual(status, 0)
        self.assertEqual(out, b"".join(sniff(r) for r in [*RECORDS, RECORDS[0]]))

    def test_name(self) -> None:
        """
        C{--name} keeps, in a directory several agents share, only that
        instrument's datalog.
        """
        other = self.dir / "2026/11/24/ADCP_20261124T050000Z.datalog"
        write_datalog(other, RECORDS[4:])
        status, out, _ = run(str(self.dir))
        self.assertEqual(out, b"".join(sniff(r) for r in [*RECORDS[4:], *RECORDS]))
        status, out, _ = run("--name", "CTD", str(self.dir))
        self.assertEqual(status, 0)
        self.assertEqual(out, b"".join(sniff(r) for r in RECORDS))
        status, _, err = run("-n", "FLUOROMETER", str(self.dir))
        self.assertEqual(status, 1)
        self.assertIn("no FLUOROMETER's datalog files", err)

    def test_severalFiles(self) -> None:
        """
        Files given one by one are read in the order given.
        """
        other = self.dir / "other.datalog"
        write_datalog(other, RECORDS[4:])
        status, out, _ = run(str(other), str(self.path))
        self.assertEqual(status, 0)
        self.assertEqual(out, b"".join(sniff(r) for r in [*RECORDS[4:], *RECORDS]))

    def test_type(self) -> None:
        """
        C{--type} selects packets by type name or number, repeatably.
        """
        status, out, _ = run("--type", "port_agent_status", "-t", "9", str(self.path))
        self.assertEqual(status, 0)
        self.assertEqual(out, sniff(RECORDS[0]) + sniff(RECORDS[4]))

    def test_badType(self) -> None:
        """
        An unknown type is a usage error listing the valid names.
        """
        status, out, err = run("--type", "SAMPLES", str(self.path))
        self.assertEqual((status, out), (2, b""))
        self.assertIn("'SAMPLES'", err)
        self.assertIn("DATA_FROM_INSTRUMENT", err)
        self.assertIn("usage:", err)

    def test_timeWindow(self) -> None:
        """
        C{--since} is inclusive and C{--until} exclusive.
        """
        status, out, _ = run(
            "--since",
            "2026-11-24T06:00:05Z",
            "--until",
            "2026-11-24T06:01:00Z",
            str(self.path),
        )
        self.assertEqual(status, 0)
        self.assertEqual(out, b"".join(sniff(r) for r in RECORDS[1:4]))

    def test_dateWindow(self) -> None:
        """
        Dates select whole UTC days.
        """
        status, out, _ = run("--since", "2026-11-25", str(self.path))
        self.assertEqual((status, out), (0, b""))
        status, out, _ = run(
            "--since", "2026-11-24", "--until", "2026-11-25", str(self.path)
        )
        self.assertEqual(len(out.splitlines()), len(RECORDS))

    def test_badTime(self) -> None:
        """
        A bad time is a usage error naming the option and the value.
        """
        for option in ("--since", "--until"):
            status, out, err = run(option, "2026-13-01", str(self.path))
            self.assertEqual((status, out), (2, b""))
            self.assertIn(f"argument {option}: invalid time '2026-13-01'", err)

    def test_emptyWindow(self) -> None:
        """
        C{--since} at or after C{--until} is a usage error.
        """
        status, _, err = run(
            "--since", "2026-11-25", "--until", "2026-11-24", str(self.path)
        )
        self.assertEqual(status, 2)
        self.assertIn("--since must be before --until", err)

    def test_extract(self) -> None:
        """
        C{--extract} writes the instrument byte stream: the payloads of the
        C{DATA_FROM_INSTRUMENT} packets, concatenated, nothing else.
        """
        status, out, _ = run("--extract", str(self.path))
        self.assertEqual(status, 0)
        self.assertEqual(
            out,
            b"# 11.0123,  3.81234,   10.101,  33.9001, 1492.123\r\n"
            b"# 11.0200,  3.81301,   10.090\r\n",
        )

    def test_extractWindow(self) -> None:
        """
        C{--extract} combines with the time filter.
        """
        status, out, _ = run("-x", "--since", "2026-11-24T06:00:30Z", str(self.path))
        self.assertEqual((status, out), (0, b"# 11.0200,  3.81301,   10.090\r\n"))

    def test_extractDriverStream(self) -> None:
        """
        With C{--type}, C{--extract} writes the payloads of those types.
        """
        status, out, _ = run("-x", "-t", "DATA_FROM_DRIVER", str(self.path))
        self.assertEqual((status, out), (0, b"ds\r\n"))

    def test_output(self) -> None:
        """
        C{-o} writes to a file instead of standard output.
        """
        target = self.dir / "stream.bin"
        status, out, _ = run("-x", "-o", str(target), str(self.path))
        self.assertEqual((status, out), (0, b""))
        self.assertEqual(target.read_bytes()[:11], b"# 11.0123, ")
        self.assertEqual(target.read_bytes(), run("-x", str(self.path))[1])

    def test_outputUnwritable(self) -> None:
        """
        An output file that cannot be created is reported, status 1.
        """
        status, _, err = run("-o", str(self.dir), str(self.path))
        self.assertEqual(status, 1)
        self.assertIn(f"cannot write {self.dir}", err)

    def test_outputFails(self) -> None:
        """
        Output that cannot be written (a full disk) stops the tool with status
        1 and a message that blames the output, not the datalog.
        """

        class Full(io.BytesIO):
            def write(self, data: Any) -> int:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        err = io.StringIO()
        status = main([str(self.path)], stdout=Full(), stderr=err)
        self.assertEqual(status, 1)
        self.assertEqual(
            err.getvalue(),
            f"instrumentd-datalog: cannot write output: {os.strerror(errno.ENOSPC)}\n",
        )

    def test_readerGone(self) -> None:
        """
        When the reader of the output goes away (C{| head}), the tool stops
        quietly with status 1.
        """

        class Closed(io.BytesIO):
            def write(self, data: Any) -> int:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        err = io.StringIO()
        status = main([str(self.path)], stdout=Closed(), stderr=err)
        self.assertEqual((status, err.getvalue()), (1, ""))

    def test_summary(self) -> None:
        """
        C{--summary} gives per file the packets and payload bytes per type,
        the first and last time, and the damage; then a total.
        """
        cut = self.dir / "cut.datalog"
        whole = write_datalog(cut, RECORDS[:2])
        cut.write_bytes(b"xyz" + whole[:-3])
        status, out, _ = run("--summary", str(self.path), str(cut))
        self.assertEqual(status, 0)
        first, rest = out.decode().split(f"\n{cut}\n")
        second, total = rest.split("TOTAL of 2 files")
        self.assertRegex(
            first,
            r"packets: +6 \(first 2026-11-24T06:00:00.000000Z, "
            r"last 2026-11-24T06:01:05.000000Z\)",
        )
        self.assertRegex(first, r"DATA_FROM_INSTRUMENT +3 packets +82 payload bytes")
        self.assertRegex(first, r"PORT_AGENT_HEARTBEAT +1 packets +2 payload bytes")
        self.assertRegex(first, r"junk bytes: +0\n")
        self.assertRegex(first, r"cut short: +no$")
        self.assertRegex(second, r"junk bytes: +3\n")
        size = len(encode(RECORDS[1]))
        self.assertRegex(
            second, rf"cut short: +at byte 28: {size - 3} of {size} bytes present\n"
        )
        self.assertRegex(total, r"packets: +7 ")
        self.assertRegex(total, r"files: +2\n")

    def test_summaryFiltered(self) -> None:
        """
        The summary counts only the selected packets, and says so.
        """
        status, out, _ = run("-s", "-t", "DATA_FROM_INSTRUMENT", str(self.path))
        self.assertEqual(status, 0)
        self.assertRegex(out, rb"packets selected: +3 ")
        self.assertNotIn(b"PORT_AGENT_STATUS", out)

    def test_extractOrSummary(self) -> None:
        """
        C{--extract} and C{--summary} exclude each other.
        """
        status, _, err = run("-x", "-s", str(self.path))
        self.assertEqual(status, 2)
        self.assertIn("not allowed with", err)

    def test_cutFile(self) -> None:
        """
        A file whose last packet was cut short by a killed writer gives a
        warning naming the file, the offset and the bytes present of those
        expected; the next file is still read and the status is 0.
        """
        whole = write_datalog(self.path, RECORDS)
        self.path.write_bytes(whole[:-4])
        other = self.dir / "next.datalog"
        write_datalog(other, RECORDS[:1])
        status, out, err = run(str(self.path), str(other))
        self.assertEqual(status, 0)
        last = len(encode(RECORDS[-1]))
        self.assertEqual(
            err,
            f"instrumentd-datalog: warning: {self.path}: last packet cut short "
            f"at byte {len(whole) - last}: {last - 4} of {last} bytes present; "
            "it is ignored\n",
        )
        self.assertEqual(out, b"".join(sniff(r) for r in [*RECORDS[:-1], RECORDS[0]]))

    def test_damageReported(self) -> None:
        """
        Junk bytes and rejected packets are reported per file on standard
        error; the good packets are still printed.
        """
        bad = bytearray(encode(RECORDS[0]))
        bad[-1] ^= 0xFF
        data = b"noise" + bytes(bad) + encode(RECORDS[1])
        self.path.write_bytes(data)
        status, out, err = run(str(self.path))
        self.assertEqual((status, out), (0, sniff(RECORDS[1])))
        self.assertIn(f"{self.path}: ", err)
        self.assertIn("bad checksum 1", err)
        self.assertIn("1 bad packets rejected", err)
        self.assertIn("junk bytes skipped", err)

    def test_missingFile(self) -> None:
        """
        A file that cannot be read is reported, the others are still read,
        and the status is 1.
        """
        missing = self.dir / "missing.datalog"
        status, out, err = run(str(missing), str(self.path))
        self.assertEqual(status, 1)
        self.assertEqual(
            err,
            f"instrumentd-datalog: cannot read {missing}: No such file or directory\n",
        )
        self.assertEqual(out, b"".join(sniff(r) for r in RECORDS))

    def test_emptyDirectory(self) -> None:
        """
        A directory with no datalog in it is reported, status 1.
        """
        empty = Path(self.mktemp())
        empty.mkdir()
        status, _, err = run(str(empty))
        self.assertEqual(status, 1)
        self.assertIn(
            f"{empty}: no datalog (*.datalog, *.datalog.YYYY_MM_DD) files", err
        )

    def test_noArguments(self) -> None:
        """
        At least one file is required.
        """
        status, _, err = run()
        self.assertEqual(status, 2)
        self.assertIn("required: FILE", err)


class ConsoleScriptTests(TestCase):
    """
    The installed C{instrumentd-datalog} console script.
    """

    async def test_runs(self) -> None:
        """
        The script declared in C{pyproject.toml} runs as a real process, prints
        the sniff lines on standard output, and exits 0.
        """
        path = Path(self.mktemp())
        write_datalog(path, RECORDS)
        script = Path(sysconfig.get_path("scripts")) / "instrumentd-datalog"
        self.assertTrue(
            script.exists(), f"{script} missing: run pip install -e . first"
        )
        out, err, code = await getProcessOutputAndValue(
            str(script), [str(path)], env=dict(os.environ)
        )
        self.assertEqual((code, err), (0, b""))
        self.assertEqual(out, b"".join(sniff(r) for r in RECORDS))


SAMPLE_LINE = re.compile(
    rb"^# (?P<t>[ \d.-]{7}), (?P<c>[ \d.]{8}), (?P<p>[ \d.]{8}), "
    rb"(?P<s>[ \d.]{8}), (?P<sv>[ \d.]{8}), "
    rb"(?P<date>\d\d (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}, "
    rb"\d\d:\d\d:\d\d)$"
)


class DemoRecordingTests(SynchronousTestCase):
    """
    The SBE 37-SMP recording shipped for C{--instrument demo}.
    """

    def setUp(self) -> None:
        resource = resources.files("instrumentd") / "data" / "sbe37smp-demo.datalog"
        self.path = Path(str(resource))
        self.datalog = DatalogFile(self.path)
        self.packets = list(self.datalog.packets())
        self.stream = b"".join(
            p.payload for p in self.packets if p.type is PacketType.DATA_FROM_INSTRUMENT
        )

    def test_parsesCleanly(self) -> None:
        """
        The file is small, and holds only good packets: no junk, no rejected
        packet, nothing cut short.
        """
        self.assertLess(self.path.stat().st_size, 100_000)
        self.assertEqual(self.datalog.counters.junk_bytes, 0)
        self.assertEqual(self.datalog.counters.bad_packets, 0)
        self.assertIsNone(self.datalog.cut)

    def test_agentRecording(self) -> None:
        """
        It starts with the agent's C{CONNECTED} status, has heartbeats, and
        its packet times never go backwards.
        """
        first = self.packets[0]
        self.assertEqual(
            (first.type, first.payload), (PacketType.PORT_AGENT_STATUS, b"CONNECTED")
        )
        kinds = {p.type for p in self.packets}
        self.assertIn(PacketType.PORT_AGENT_HEARTBEAT, kinds)
        times = [p.unix_time for p in self.packets]
        self.assertEqual(times, sorted(times))

    def test_samples(self) -> None:
        """
        The instrument stream is more than 100 complete sample lines in the
        SBE 37-SMP format with salinity, sound velocity and time, every 5 s,
        with plausible values; some lines arrive in two reads.
        """
        self.assertTrue(self.stream.endswith(b"\r\n"))
        lines = self.stream[:-2].split(b"\r\n")
        self.assertGreater(len(lines), 100)
        samples = []
        for line in lines:
            match = SAMPLE_LINE.match(line)
            self.assertIsNotNone(match, line)
            assert match is not None
            samples.append(match)
        for name, low, high in [
            ("t", 10, 12),
            ("c", 3.4, 4.2),
            ("p", 9, 11),
            ("s", 33, 35),
            ("sv", 1480, 1510),
        ]:
            values = [float(m[name]) for m in samples]
            self.assertTrue(all(low < v < high for v in values), (name, values))
        stamps = [
            datetime.strptime(m["date"].decode(), "%d %b %Y, %H:%M:%S") for m in samples
        ]
        steps = {(b - a).total_seconds() for a, b in itertools.pairwise(stamps)}
        self.assertEqual(steps, {5.0})
        split = [
            p
            for p in self.packets
            if p.type is PacketType.DATA_FROM_INSTRUMENT
            and not p.payload.endswith(b"\r\n")
        ]
        self.assertGreater(len(split), 0)

    def test_agentUsesIt(self) -> None:
        """
        The port agent's C{demo} instrument is this file.
        """
        from instrumentd.portagent.options import demo_recording

        self.assertEqual(demo_recording(), self.path.resolve())
