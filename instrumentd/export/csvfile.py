# -*- test-case-name: tests.test_export -*-
"""
The CSV export: one row per sample record.

Columns, in order:

- ``time``: ISO 8601 UTC with microseconds and ``Z``, as in the record;
- ``quality_flag``: the driver's flag (``ok``, ``checksum_failed``...),
  when the records carry one;
- one column per field, headed ``name [units]`` (``name`` alone for a
  field without units); an array field (an ADCP's per-cell velocities)
  gives one column per element, ``name_1 [units]``, ``name_2 [units]``...;
- when the records carry QC flags, ``name_qc_TEST`` for each field's tests
  and ``name_qc_aggregate`` last (QARTOD: 1 pass, 2 not evaluated,
  3 suspect, 4 fail, 9 missing).

An empty cell is a missing value.  Numbers are written as Python writes
them (the shortest text that reads back as the same float); true/false as
``true``/``false``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from typing import IO

from instrumentd.export.reading import Row, Survey

__all__ = ["columns", "qc_columns", "write_csv"]


def _header(name: str, units: str | None) -> str:
    return f"{name} [{units}]" if units else name


def qc_columns(summary: Survey) -> list[tuple[str, str]]:
    """
    The QC flag columns: ``(field, test)`` pairs, each field's aggregate
    last.

    :param summary: the series' survey.
    """
    pairs: list[tuple[str, str]] = []
    for name, tests in summary.qc.items():
        ordered = [t for t in tests if t != "aggregate"]
        if "aggregate" in tests:
            ordered.append("aggregate")
        pairs.extend((name, test) for test in ordered)
    return pairs


def columns(summary: Survey) -> list[str]:
    """
    The header row.

    :param summary: the series' survey.
    """
    header = ["time"]
    if summary.quality_flags:
        header.append("quality_flag")
    for info in summary.fields.values():
        if info.length is None:
            header.append(_header(info.name, info.units))
        else:
            header.extend(
                _header(f"{info.name}_{i}", info.units)
                for i in range(1, info.length + 1)
            )
    header.extend(f"{name}_qc_{test}" for name, test in qc_columns(summary))
    return header


def _cell(value: object) -> object:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return value


def write_csv(
    out: IO[str],
    summary: Survey,
    chunks: Iterable[list[Row]],
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """
    Write a series as CSV.

    :param out: a text file opened with ``newline=""``.
    :param summary: the series' survey.
    :param chunks: its records, as :func:`~instrumentd.export.reading.read_chunks`
        gives them.
    :param progress: called with the records of each chunk written.
    :returns: the records written.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns(summary))
    fields = [(info.name, info.length) for info in summary.fields.values()]
    flags = qc_columns(summary)
    quality = summary.quality_flags
    written = 0
    for chunk in chunks:
        rows = []
        for row in chunk:
            cells: list[object] = [row.iso]
            if quality:
                cells.append(row.quality_flag or "")
            values = row.values
            for name, length in fields:
                value = values.get(name)
                if length is None:
                    cells.append(_cell(value))
                else:
                    items = value if isinstance(value, list) else []
                    cells.extend(_cell(v) for v in items[:length])
                    cells.extend([""] * (length - min(len(items), length)))
            qc = row.qc or {}
            for name, test in flags:
                flag = qc.get(name, {}).get(test)
                cells.append("" if flag is None else flag)
            rows.append(cells)
        writer.writerows(rows)
        written += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return written
