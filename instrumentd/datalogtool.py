# -*- test-case-name: tests.test_datalogtool -*-
"""
Reading binary datalogs, and the ``instrumentd-datalog`` console tool.

A port agent records every packet it handles in datalog files: a plain
concatenation of encoded packets, laid out as
``<dir>/<YYYY>/<MM>/<DD>/<name>_<YYYYMMDD>T<HHMMSS>Z.datalog`` with ``-1``,
``-2``... before ``.datalog`` when a name is taken; OOI's archive layout
(``<refdes>.datalog.YYYY_MM_DD``) is read too.  :class:`DatalogFile` is read
with :mod:`instrumentd.datalogfiles`.

The tool prints one sniff line per packet (the format of
:func:`instrumentd.sniff.sniff_line`), extracts the instrument byte stream
(``--extract``), or summarises files (``--summary``), filtered by packet type
and time::

    instrumentd-datalog datalog/2026/11/24
    instrumentd-datalog --type PORT_AGENT_STATUS --since 2026-11-24T06:00:00Z FILE
    instrumentd-datalog --extract -o stream.bin datalog/
    instrumentd-datalog --summary datalog/

Exit status: 0 when everything was read (a cut-short last packet is only a
warning), 1 when a file could not be read or written, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO, Final, NoReturn, TextIO

from instrumentd.datalogfiles import (
    CutPacket,
    DatalogFile,
    datalog_paths,
    recorded_files,
)
from instrumentd.packet import (
    Packet,
    PacketType,
    ParserCounters,
)
from instrumentd.sniff import format_utc, sniff_line

__all__ = [
    "OOI_TYPE_NAMES",
    "main",
    "parse_packet_types",
    "parse_utc_time",
]

_PROG: Final = "instrumentd-datalog"


#: The names OOI's Python port agent (``FROM_INSTRUMENT``, ``PA_STATUS``...)
#: and its driver client (``HEARTBEAT``) give the types whose names differ
#: from ours; the numbers are the same.  The C++ agent's names are not here:
#: it numbered types 6 and 7 differently (see ``doc/packet.md``).
OOI_TYPE_NAMES: Final[dict[str, PacketType]] = {
    "FROM_INSTRUMENT": PacketType.DATA_FROM_INSTRUMENT,
    "FROM_DRIVER": PacketType.DATA_FROM_DRIVER,
    "PA_COMMAND": PacketType.PORT_AGENT_COMMAND,
    "PA_STATUS": PacketType.PORT_AGENT_STATUS,
    "PA_FAULT": PacketType.PORT_AGENT_FAULT,
    "PA_CONFIG": PacketType.PORT_AGENT_CONFIG,
    "PA_HEARTBEAT": PacketType.PORT_AGENT_HEARTBEAT,
    "HEARTBEAT": PacketType.PORT_AGENT_HEARTBEAT,
}


def _type_names() -> str:
    ours = ", ".join(f"{t.name} ({t.value})" for t in PacketType)
    return f"{ours}; OOI's names {', '.join(OOI_TYPE_NAMES)} are also accepted"


def _packet_type(word: str) -> PacketType:
    if word.isdigit():
        return PacketType(int(word))
    name = word.upper()
    if name in OOI_TYPE_NAMES:
        return OOI_TYPE_NAMES[name]
    return PacketType[name]


def parse_packet_types(text: str) -> set[PacketType]:
    """
    Parse packet types named on the command line: names in any case, or
    numbers, separated by commas (``data_from_instrument,4``).  OOI's names
    (:data:`OOI_TYPE_NAMES`: ``FROM_INSTRUMENT``, ``PA_STATUS``...) are
    accepted too.

    :param text: the option value.
    :returns: the types.
    :raises argparse.ArgumentTypeError: naming the bad item and listing the
        valid names.
    """
    types: set[PacketType] = set()
    for item in text.split(","):
        word = item.strip()
        try:
            types.add(_packet_type(word))
        except (KeyError, ValueError):
            raise argparse.ArgumentTypeError(
                f"unknown packet type {word!r}; valid types are {_type_names()}"
            ) from None
    return types


def parse_utc_time(text: str) -> float:
    """
    Parse an ISO 8601 time or date as Unix time.  A time without a zone is
    UTC; a date alone is midnight UTC at its start.

    :param text: e.g. ``2026-11-24T06:00:00Z``, ``2026-11-24T06:00``,
        ``2026-11-24``.
    :returns: seconds since 1970-01-01T00:00:00Z.
    :raises argparse.ArgumentTypeError: if the text is not such a time.
    """
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: expected ISO 8601 UTC such as "
            "2026-11-24T06:00:00Z, or a date such as 2026-11-24"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


class _UsageError(Exception):
    pass


class _ArgumentParser(argparse.ArgumentParser):
    # argparse prints and exits on a usage error; main() must return the
    # status instead and write to the stream it was given.
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _argument_parser() -> _ArgumentParser:
    parser = _ArgumentParser(
        prog=_PROG,
        description=(
            "Read port-agent datalog files: print one sniff line per packet "
            "(the default), extract the instrument byte stream, or summarise."
        ),
        epilog=(
            "Times are UTC; --since is inclusive and --until exclusive, so "
            "--since 2026-11-24 --until 2026-11-25 is that day. Exit status: "
            "0 read everything (a packet cut short at the end of a file is a "
            "warning), 1 something could not be read or written, 2 usage error."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="FILE",
        help=(
            "datalog file, or directory meaning every datalog below it in "
            "recording order: *.datalog, and OOI's <refdes>.datalog.YYYY_MM_DD"
        ),
    )
    parser.add_argument(
        "-t",
        "--type",
        dest="types",
        action="append",
        type=parse_packet_types,
        metavar="NAME",
        help=(
            "only packets of this type: a name such as DATA_FROM_INSTRUMENT (any "
            "case; OOI's names such as FROM_INSTRUMENT and PA_STATUS too) or a "
            "number; repeatable or comma-separated. With --extract, "
            "the types whose payloads are extracted (default DATA_FROM_INSTRUMENT)"
        ),
    )
    parser.add_argument(
        "-n",
        "--name",
        metavar="NAME",
        help=(
            "in directories, only the datalog of this instrument (its reference "
            "designator), for a directory that several agents share"
        ),
    )
    parser.add_argument(
        "--since",
        type=parse_utc_time,
        metavar="TIME",
        help="only packets at or after TIME (ISO 8601 UTC, e.g. 2026-11-24T06:00:00Z, or a date)",
    )
    parser.add_argument(
        "--until",
        type=parse_utc_time,
        metavar="TIME",
        help="only packets before TIME",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "-x",
        "--extract",
        action="store_true",
        help="write the instrument byte stream (concatenated payloads) as raw bytes",
    )
    mode.add_argument(
        "-s",
        "--summary",
        action="store_true",
        help="per file: packets and payload bytes per type, first and last time, junk and bad packets",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE instead of standard output",
    )
    return parser


@dataclass
class _TypeTally:
    packets: int = 0
    payload_bytes: int = 0


@dataclass
class _Summary:
    """
    What ``--summary`` reports for one file, or for all of them.
    """

    label: str
    size: int = 0
    files: int = 0
    by_type: dict[PacketType, _TypeTally] = field(default_factory=dict)
    first: float | None = None
    last: float | None = None
    counters: ParserCounters = field(default_factory=ParserCounters)
    cut: list[CutPacket] = field(default_factory=list)

    def count(self, packet: Packet, when: float) -> None:
        tally = self.by_type.setdefault(packet.type, _TypeTally())
        tally.packets += 1
        tally.payload_bytes += len(packet.payload)
        self.first = when if self.first is None else min(self.first, when)
        self.last = when if self.last is None else max(self.last, when)

    def add(self, other: _Summary) -> None:
        self.size += other.size
        self.files += other.files
        for kind, tally in other.by_type.items():
            mine = self.by_type.setdefault(kind, _TypeTally())
            mine.packets += tally.packets
            mine.payload_bytes += tally.payload_bytes
        for when in (other.first, other.last):
            if when is not None:
                self.first = when if self.first is None else min(self.first, when)
                self.last = when if self.last is None else max(self.last, when)
        self.counters.add(other.counters)
        self.cut.extend(other.cut)

    def render(self, filtered: bool) -> str:
        def item(label: str, value: object) -> str:
            return f"  {label + ':':<18}{value}"

        selected = sum(t.packets for t in self.by_type.values())
        lines = [self.label, item("file bytes", self.size)]
        if self.files != 1:
            lines.append(item("files", self.files))
        span = ""
        if self.first is not None and self.last is not None:
            span = f" (first {format_utc(self.first)}, last {format_utc(self.last)})"
        lines.append(
            item("packets selected" if filtered else "packets", f"{selected}{span}")
        )
        for kind in sorted(self.by_type):
            tally = self.by_type[kind]
            lines.append(
                f"    {kind.name:<24}{tally.packets:>10} packets"
                f"{tally.payload_bytes:>14} payload bytes"
            )
        counters = self.counters
        lines.append(item("junk bytes", counters.junk_bytes))
        lines.append(
            item(
                "bad packets",
                f"{counters.bad_packets} (bad length {counters.bad_length}, "
                f"bad checksum {counters.bad_checksum}, "
                f"unknown type {counters.bad_type})",
            )
        )
        if not self.cut:
            cut = "no"
        elif self.files == 1:
            cut = self.cut[0].describe()
        else:
            cut = f"{len(self.cut)} files"
        lines.append(item("cut short", cut))
        return "\n".join(lines) + "\n"


@dataclass
class _Selection:
    types: frozenset[PacketType] | None
    since: float | None
    until: float | None

    @property
    def filtered(self) -> bool:
        return not (self.types is None and self.since is None and self.until is None)

    def select(self, packet: Packet) -> float | None:
        """
        The packet's Unix time if it is selected, else ``None``.
        """
        if self.types is not None and packet.type not in self.types:
            return None
        when = packet.unix_time
        if self.since is not None and when < self.since:
            return None
        if self.until is not None and when >= self.until:
            return None
        return when


def _warn(stderr: TextIO, message: str) -> None:
    stderr.write(f"{_PROG}: warning: {message}\n")


def _report_damage(stderr: TextIO, datalog: DatalogFile) -> None:
    counters = datalog.counters
    if counters.junk_bytes:
        _warn(stderr, f"{datalog.path}: {counters.junk_bytes} junk bytes skipped")
    if counters.bad_packets:
        _warn(
            stderr,
            f"{datalog.path}: {counters.bad_packets} bad packets rejected (bad "
            f"length {counters.bad_length}, bad checksum {counters.bad_checksum}, "
            f"unknown type {counters.bad_type})",
        )
    if datalog.cut is not None:
        _warn(
            stderr,
            f"{datalog.path}: last packet cut short {datalog.cut.describe()}; "
            "it is ignored",
        )


def _selection(options: argparse.Namespace) -> _Selection:
    types: set[PacketType] | None = None
    if options.types:
        types = set().union(*options.types)
    elif options.extract:
        types = {PacketType.DATA_FROM_INSTRUMENT}
    return _Selection(
        None if types is None else frozenset(types), options.since, options.until
    )


class _ReadError(Exception):
    # Output errors are OSErrors too; this tells a file that could not be
    # read (report it, go on) from output that could not be written (stop).
    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _reading(packets: Iterator[Packet]) -> Iterator[Packet]:
    try:
        yield from packets
    except OSError as e:
        raise _ReadError(e) from e


def _run(
    options: argparse.Namespace, selection: _Selection, out: BinaryIO, stderr: TextIO
) -> tuple[int, list[_Summary]]:
    """
    Read every file, writing lines or the stream to ``out``; return the exit
    status and, for ``--summary``, the per-file summaries.
    """
    status = 0
    summaries: list[_Summary] = []
    for argument in options.paths:
        if options.name and os.path.isdir(argument):
            files = recorded_files(argument, options.name)
        else:
            files = datalog_paths(argument)
        if not files:
            what = (
                f"{options.name}'s datalog"
                if options.name
                else "datalog (*.datalog, *.datalog.YYYY_MM_DD)"
            )
            stderr.write(f"{_PROG}: {argument}: no {what} files in this directory\n")
            status = 1
        for path in files:
            datalog = DatalogFile(path)
            summary = _Summary(str(path), files=1)
            try:
                for packet in _reading(datalog.packets()):
                    when = selection.select(packet)
                    if when is None:
                        continue
                    if options.summary:
                        summary.count(packet, when)
                    elif options.extract:
                        out.write(packet.payload)
                    else:
                        out.write(
                            sniff_line(
                                packet.type,
                                packet.payload,
                                packet.seconds,
                                packet.fraction,
                            )
                        )
            except _ReadError as read_error:
                e = read_error.error
                stderr.write(f"{_PROG}: cannot read {path}: {e.strerror or e}\n")
                status = 1
                continue
            _report_damage(stderr, datalog)
            summary.size = datalog.bytes_read
            summary.counters = datalog.counters
            if datalog.cut is not None:
                summary.cut.append(datalog.cut)
            summaries.append(summary)
    return status, summaries


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: BinaryIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """
    Run ``instrumentd-datalog``.

    :param argv: the arguments after the program name; ``None`` for
        ``sys.argv[1:]``.
    :param stdout: where output goes (bytes); ``None`` for standard output.
    :param stderr: where warnings and errors go; ``None`` for standard error.
    :returns: the exit status: 0 everything read, 1 something could not be
        read or written, 2 usage error.
    """
    err = sys.stderr if stderr is None else stderr
    parser = _argument_parser()
    try:
        options = parser.parse_args(argv)
    except _UsageError as e:
        err.write(parser.format_usage())
        err.write(f"{_PROG}: error: {e}\n")
        return 2
    except SystemExit as e:  # --help, after printing it
        return e.code if isinstance(e.code, int) else 0
    if (
        options.since is not None
        and options.until is not None
        and options.since >= options.until
    ):
        err.write(parser.format_usage())
        err.write(f"{_PROG}: error: --since must be before --until\n")
        return 2

    out: BinaryIO = sys.stdout.buffer if stdout is None else stdout
    target: BinaryIO | None = None
    if options.output is not None:
        try:
            target = open(options.output, "wb")  # noqa: SIM115 -- closed below
        except OSError as e:
            err.write(f"{_PROG}: cannot write {options.output}: {e.strerror or e}\n")
            return 1
        out = target
    try:
        selection = _selection(options)
        status, summaries = _run(options, selection, out, err)
        if options.summary:
            _write_summaries(out, summaries, selection.filtered)
        out.flush()
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as cat does.
        _silence_stdout(out)
        return 1
    except OSError as e:
        err.write(f"{_PROG}: cannot write output: {e.strerror or e}\n")
        return 1
    finally:
        if target is not None:
            target.close()
    return status


def _write_summaries(
    out: BinaryIO, summaries: Iterable[_Summary], filtered: bool
) -> None:
    total = _Summary("TOTAL")
    count = 0
    for summary in summaries:
        out.write(summary.render(filtered).encode())
        total.add(summary)
        count += 1
    if count > 1:
        total.label = f"TOTAL of {count} files"
        out.write(total.render(filtered).encode())


def _silence_stdout(out: BinaryIO) -> None:
    # Python flushes stdout again at exit and would report the broken pipe;
    # point the descriptor at /dev/null so that flush succeeds silently.
    if out is getattr(sys.stdout, "buffer", None):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())
