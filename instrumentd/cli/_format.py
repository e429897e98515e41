# -*- test-case-name: tests.test_instrumentctl -*-
"""
How ``instrumentctl`` shows things to people: aligned tables, times,
sample values, command results.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from twisted.internet.defer import Deferred

__all__ = [
    "Output",
    "cell",
    "format_table",
    "format_time",
    "result_text",
    "sample_record",
    "sample_time",
    "sample_values",
]


def cell(value: object) -> str:
    """
    A value as a table shows it: text as it is, nothing as ``-``, anything
    else as JSON.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return "-"
    return json.dumps(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """
    An aligned table: columns padded to their widest cell, two spaces
    apart, no trailing spaces.

    :param headers: the column titles.
    :param rows: the rows; non-text values are shown as JSON.
    :returns: the lines, each ending in a newline.
    """
    cells = [list(headers), *([cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        + "\n"
        for row in cells
    )


def format_time(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    moment = datetime.fromtimestamp(value, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Output:
    """
    Where results go.

    A reader that goes away (``instrumentctl watch ctd1 | head``) is not an
    error: writing stops quietly and :attr:`closed` fires.

    :ivar closed: fires when the reader of ``out`` has gone.
    """

    def __init__(self, out: IO[str], err: IO[str], as_json: bool) -> None:
        self.out = out
        self.err = err
        self.as_json = as_json
        self.closed: Deferred[None] = Deferred()

    def write(self, text: str) -> None:
        if self.closed.called:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        # Python flushes stdout again at exit and would complain there:
        # point it at /dev/null, as nothing more can be shown anyway.
        try:
            fileno = self.out.fileno()
        except (AttributeError, OSError, ValueError):
            pass
        else:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fileno)
            os.close(null)
        self.closed.callback(None)

    def json(self, value: object) -> None:
        self.write(json.dumps(value, indent=2) + "\n")

    def note(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()


def sample_record(sample: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """
    The record (version 2) of a ``SAMPLE`` event's JSON form, or ``None``
    when it has none that can be read.  A station of an older version sends
    ``"particle"`` in the old layout: it is converted.
    """
    if not sample:
        return None
    from instrumentd.station.record import RecordError, read_record

    found = sample.get("record", sample.get("particle"))
    try:
        return read_record(found, instrument=sample.get("instrument"))
    except RecordError:
        return None


def sample_time(sample: Mapping[str, Any] | None) -> object:
    """
    When a sample was taken (its record's time), Unix seconds; the event's
    time when its record cannot be read.
    """
    from instrumentd.packet import NTP_UNIX_OFFSET

    record = sample_record(sample)
    ntp = None if record is None else record.get("ntp_time")
    if isinstance(ntp, int | float) and ntp:
        return ntp - NTP_UNIX_OFFSET
    return None if sample is None else sample.get("time")


def sample_values(
    sample: Mapping[str, Any] | None, *, units: bool = False
) -> list[tuple[str, object]]:
    """
    A ``SAMPLE`` event's values, in order.

    :param sample: the event's JSON form.
    :param units: give each value with its units as text (``10.2
        degree_Celsius``), where the record has units for it (other than
        ``"1"``, dimensionless).
    :returns: (name, value) pairs.
    """
    record = sample_record(sample)
    values = None if record is None else record.get("values")
    if not isinstance(values, Mapping):
        return []
    if not units:
        return [(str(name), value) for name, value in values.items()]
    assert record is not None
    known = record.get("units")
    known = known if isinstance(known, Mapping) else {}
    # "1" (dimensionless) says nothing to a reader, and a missing value has
    # no units to show.
    return [
        (
            str(name),
            f"{cell(value)} {known[name]}"
            if value is not None and known.get(name) not in (None, "", "1")
            else value,
        )
        for name, value in values.items()
    ]


def result_text(result: object) -> str:
    if result is None:
        return ""
    if isinstance(result, Mapping) and all(
        not isinstance(v, Mapping | list) for v in result.values()
    ):
        return format_table(["NAME", "VALUE"], list(result.items()))
    if (
        isinstance(result, list)
        and result
        and all(isinstance(row, Mapping) for row in result)
    ):
        headers = list(dict.fromkeys(key for row in result for key in row))
        return format_table(
            headers, [[row.get(h, "") for h in headers] for row in result]
        )
    if isinstance(result, str):
        return result.rstrip("\n") + "\n"
    return json.dumps(result, indent=2) + "\n"
