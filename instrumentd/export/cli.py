# -*- test-case-name: tests.test_export_cli -*-
"""
``instrumentd-export``: write a station's (or a collector's) archived
records as CSV or CF netCDF files.

::

    instrumentd-export /var/lib/instrumentd/samples --instrument CTD01 \\
        --stream ctdpf_sample --start 2026-12-01 --end 2026-12-08 \\
        --format netcdf --output exports/

Each series (one instrument's stream, of one station) becomes one file,
``[STATION_]INSTRUMENT_STREAM.csv`` or ``.nc`` in the output directory, or
the file named by ``--output`` when one series is chosen.  See
``doc/data.md`` ("Export").
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import IO, Final

from instrumentd import __version__
from instrumentd.export.archive import (
    Archive,
    ExportError,
    InstrumentInfo,
    Series,
    parse_time,
)
from instrumentd.export.reading import Counts, file_bytes, read_chunks, survey

__all__ = ["FORMATS", "main"]

#: Output formats and their file suffixes.
FORMATS: Final = {"csv": ".csv", "netcdf": ".nc"}

#: Records per chunk read and written; what an export holds in memory.
DEFAULT_CHUNK: Final = 10_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instrumentd-export",
        description=(
            "Export archived sample records as CSV or CF netCDF: one file per "
            "instrument and stream."
        ),
    )
    parser.add_argument(
        "archive",
        help="the station's JSON-lines directory (<data_dir>/samples) or a "
        "collector's data directory",
    )
    parser.add_argument(
        "-i",
        "--instrument",
        action="append",
        default=[],
        metavar="NAME",
        help="an instrument to export (repeat for more; default: all)",
    )
    parser.add_argument(
        "-s",
        "--stream",
        action="append",
        default=[],
        metavar="NAME",
        help="a stream to export (repeat for more; default: all)",
    )
    parser.add_argument(
        "--station",
        action="append",
        default=[],
        metavar="NAME",
        help="a station to export, in a collector's archive (repeat for more; "
        "default: all)",
    )
    parser.add_argument(
        "--start",
        metavar="TIME",
        help="the first time to export, ISO 8601 (2026-12-01, "
        "2026-12-01T06:00:00Z); UTC unless an offset is given (default: the "
        "beginning)",
    )
    parser.add_argument(
        "--end",
        metavar="TIME",
        help="the first time not to export (exclusive), as --start (default: the end)",
    )
    parser.add_argument(
        "-f",
        "--format",
        default="csv",
        metavar="FORMAT",
        help=f"output format: {', '.join(FORMATS)} (default: csv)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=".",
        metavar="PATH",
        help="the output directory (created if needed), or the output file "
        "when one series is exported (default: the current directory)",
    )
    parser.add_argument(
        "-a",
        "--attribute",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a netCDF global attribute to add or override (creator_name, "
        "institution, license, naming_authority, ...); repeat for more",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=DEFAULT_CHUNK,
        metavar="N",
        help=f"records read and written at a time (default: {DEFAULT_CHUNK})",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="draw a progress bar on stderr even when it is not a terminal",
    )
    progress.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="never draw a progress bar (default: only on a terminal)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the archive's series and the days they cover, and exit",
    )
    parser.add_argument("--version", action="version", version=__version__)
    return parser


def _attributes(given: Sequence[str]) -> dict[str, str]:
    attributes = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExportError(
                f"--attribute {item!r} is not KEY=VALUE (e.g. "
                "--attribute creator_name='Jane Doe')"
            )
        attributes[key.strip()] = value
    return attributes


def _output_path(output: str, series: Series, count: int, suffix: str) -> str:
    if os.path.splitext(output)[1].lower() in (".csv", ".nc") and not os.path.isdir(
        output
    ):
        if count > 1:
            raise ExportError(
                f"--output {output!r} names one file, but {count} series are "
                "chosen; give a directory, or choose one instrument and stream"
            )
        return output
    prefix = f"{series.station}_" if series.station else ""
    return os.path.join(output, f"{prefix}{series.instrument}_{series.stream}{suffix}")


def _listing(archive: Archive, out: IO[str]) -> None:
    for series in archive.series.values():
        first, last = series.days[0].day, series.days[-1].day
        out.write(
            f"{series.label}\t{first} .. {last}\t{len(series.days)} day file"
            f"{'' if len(series.days) == 1 else 's'}\n"
        )


def export(argv: Sequence[str], stdout: IO[str], stderr: IO[str]) -> int:
    """
    Run an export.

    :param argv: the arguments, without the program name.
    :param stdout: where the summary goes.
    :param stderr: where the progress bar goes.
    :returns: the exit status: 0 if something was written, 1 if the range
        held no records.
    :raises ExportError: for a bad request.
    :raises SystemExit: for arguments argparse refuses.
    """
    from instrumentd.export.progress import Progress

    options = _parser().parse_args(argv)
    if options.format not in FORMATS:
        raise ExportError(
            f"--format {options.format!r} is not a format; valid choices: "
            f"{', '.join(FORMATS)}"
        )
    if options.chunk < 1:
        raise ExportError(f"--chunk {options.chunk} must be at least 1")
    start = parse_time(options.start, "--start") if options.start else None
    end = parse_time(options.end, "--end") if options.end else None
    if start is not None and end is not None and start >= end:
        raise ExportError(
            f"--start {options.start!r} is not before --end {options.end!r}: "
            "the range is empty (--end is exclusive)"
        )
    attributes = _attributes(options.attribute)
    archive = Archive(options.archive)
    if options.list:
        _listing(archive, stdout)
        return 0
    chosen = archive.select(
        stations=options.station,
        instruments=options.instrument,
        streams=options.stream,
    )
    if options.format == "netcdf":
        from instrumentd.export.netcdf import require_netcdf4

        require_netcdf4()
    suffix = FORMATS[options.format]
    outputs = [_output_path(options.output, s, len(chosen), suffix) for s in chosen]
    low = start.timestamp() if start is not None else None
    high = end.timestamp() if end is not None else None
    files = {s.label: s.files_between(start, end) for s in chosen}
    # Each file is read twice: the survey, then the export.
    bar = Progress.for_stream(
        stderr,
        2 * file_bytes([p for paths in files.values() for p in paths]),
        force=options.progress,
    )
    wrote = 0
    try:
        for series, path in zip(chosen, outputs, strict=True):
            bar.label = f"{series.label} (survey)"
            summary = survey(files[series.label], low, high, progress=bar.advance)
            if not summary.records:
                bar.finish()
                stdout.write(
                    f"{series.label}: no records{_range_text(start, end)}; "
                    f"its files cover {series.days[0].day} to {series.days[-1].day}\n"
                )
                continue
            info = series.info()
            summary.describe(info.streams.get(series.stream, {}))
            _learn_identity(info, series)
            counts = Counts()
            chunks = read_chunks(
                summary, low, high, options.chunk, counts=counts, progress=bar.advance
            )
            bar.label = series.label
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            if options.format == "csv":
                from instrumentd.export.csvfile import write_csv

                try:
                    with open(path, "w", newline="", encoding="utf-8") as out:
                        written = write_csv(out, summary, chunks, progress=bar.count)
                except OSError as error:
                    raise ExportError(f"{path}: cannot write it: {error}") from None
            else:
                from instrumentd.export.netcdf import write_netcdf

                written = write_netcdf(
                    path,
                    series,
                    info,
                    summary,
                    chunks,
                    attributes=attributes,
                    progress=bar.count,
                )
            bar.finish()
            wrote += 1
            notes = []
            if counts.duplicates:
                notes.append(
                    f"{counts.duplicates} left out with the time of the record before"
                )
            if summary.unreadable:
                notes.append(f"{summary.unreadable} unreadable lines skipped")
            note = f" ({'; '.join(notes)})" if notes else ""
            stdout.write(f"{series.label}: {written} records -> {path}{note}\n")
    finally:
        bar.finish()
    return 0 if wrote else 1


def _range_text(start: datetime | None, end: datetime | None) -> str:
    if start is None and end is None:
        return ""
    return (
        f" from {start.isoformat() if start else 'the beginning'}"
        f" to {end.isoformat() if end else 'the end'}"
    )


def _learn_identity(info: InstrumentInfo, series: Series) -> None:
    """
    Fill the instrument's identity (serial number, calibration dates) that
    its metadata file did not give from the last record of the stream and
    of each of the instrument's other streams (an SBE 37's status and
    calibration records say them; an ADCP's ensembles carry its serial
    number).
    """
    from instrumentd.export.reading import last_values

    for folder in [series.folder, *series.sibling_folders()]:
        values = last_values(folder)
        if values:
            info.learn(values)


def main(argv: Sequence[str] | None = None) -> None:
    """
    The console script.

    :param argv: the arguments; ``None`` for ``sys.argv[1:]``.
    """
    try:
        status = export(sys.argv[1:] if argv is None else argv, sys.stdout, sys.stderr)
    except ExportError as error:
        sys.stderr.write(f"instrumentd-export: {error}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("\ninstrumentd-export: interrupted\n")
        sys.exit(130)
    sys.exit(status)
