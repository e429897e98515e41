# -*- test-case-name: tests.test_export -*-
"""
Reading one series of records in time order, in chunks, with memory
bounded whatever the time range.

An export reads a series twice.  :func:`survey` goes through it first and
keeps only a summary (:class:`Survey`): the fields seen, their kinds,
array lengths, units and standard names, the QC tests, the number of
records and whether each file is in time order.  The writers need that
before their first row: a CSV header, netCDF variables and their types.
:func:`read_chunks` then reads the records again, in time order, a chunk
at a time.

Files are in time order when a station writes them live.  A file that is
not (records played back late, a clock stepped back) is read through an
index of its lines' times and offsets, one day's index at most in memory.
A record whose time is not after the one before it (the same sample
written twice) is left out and counted, so the times an export writes
strictly increase, as a CF time coordinate must.

QC amendments (``instrumentd.qc_amendment``: a spike flag known one
sample late) are applied to the record they amend while it is still in
the chunk being built; :data:`AMENDMENT_LAG` records are held back at the
end of each chunk for that.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from instrumentd.export.archive import ExportError
from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.station.record import read_record

__all__ = [
    "AMENDMENT_LAG",
    "FieldInfo",
    "Row",
    "Survey",
    "iso_time",
    "read_chunks",
    "survey",
]

#: One decoder for every line (``json.loads`` makes its checks per call).
_decode: Final = json.JSONDecoder().decode

#: Intervals between records kept for :attr:`Survey.resolution`.
_INTERVALS: Final = 1000

#: Records held back at the end of each chunk, so that an amendment
#: written after a later record still finds the record it amends.
AMENDMENT_LAG: Final = 8

_SAMPLE: Final = "instrumentd.sample"
_AMENDMENT: Final = "instrumentd.qc_amendment"


def iso_time(unix_time: float) -> str:
    """
    :param unix_time: Unix seconds.
    :returns: ISO 8601 UTC with microseconds and ``Z``, as records write it.
    """
    return (
        datetime.fromtimestamp(unix_time, UTC)
        .replace(tzinfo=None)
        .isoformat(timespec="microseconds")
        + "Z"
    )


class Row:
    """
    One sample record, as the writers take it.

    :ivar time: Unix seconds.
    :ivar iso: the ISO 8601 UTC time, as the record gives it.
    :ivar values: field name to value.
    :ivar qc: field name to test name to flag, or ``None``.
    :ivar quality_flag: the driver's quality flag, or ``None``.
    """

    __slots__ = ("iso", "qc", "quality_flag", "time", "values")

    def __init__(
        self,
        time: float,
        iso: str,
        values: dict[str, object],
        qc: dict[str, dict[str, int]] | None,
        quality_flag: str | None,
    ) -> None:
        self.time = time
        self.iso = iso
        self.values = values
        self.qc = qc
        self.quality_flag = quality_flag


def _record(document: object) -> dict[str, object]:
    """
    A line's record: a sample record as version 2 (an old particle line
    converted, see :func:`~instrumentd.station.record.read_record`), or a
    QC amendment as it is.

    :raises ValueError: if it is neither.
    """
    if (
        isinstance(document, dict)
        and document.get("record") == _AMENDMENT
        and document.get("version") == 2
    ):
        return document
    return read_record(document)


def _unix_time(record: Mapping[str, object]) -> float:
    ntp = record.get("ntp_time")
    if isinstance(ntp, int | float) and not isinstance(ntp, bool):
        return float(ntp) - NTP_UNIX_OFFSET
    text = record.get("time")
    if isinstance(text, str):
        return datetime.fromisoformat(text).timestamp()
    raise ValueError("a record with no time")


@dataclass
class FieldInfo:
    """
    What the survey learned of one field.

    :ivar name: its name in the records.
    :ivar kinds: the kinds of its scalar values, or of its arrays'
        elements: ``bool``, ``int``, ``float``, ``text``.
    :ivar length: the longest array seen, or ``None`` for a scalar.
    :ivar units: from the records or the driver's metadata; ``None`` if
        neither says.
    :ivar standard_name: the CF standard name, or ``None``.
    :ivar long_name: a description, or ``None``.
    """

    name: str
    kinds: set[str] = field(default_factory=set)
    length: int | None = None
    units: str | None = None
    standard_name: str | None = None
    long_name: str | None = None
    types: set[type] = field(default_factory=set, repr=False)

    @property
    def kind(self) -> str:
        """
        :returns: the one kind its values can all be written as: ``text``
            if any is text, else ``float`` if any is a float, else ``int``
            if any is an int, else ``bool`` (or ``float`` for a field whose
            values were all missing).
        """
        for kind in ("text", "float", "int", "bool"):
            if kind in self.kinds:
                if kind == "bool" and len(self.kinds) > 1:
                    continue
                return kind
        return "float"


#: The kind of each type a JSON value can have; ``None`` is no value.
_KINDS: Final[dict[type, str | None]] = {
    type(None): None,
    bool: "bool",
    int: "int",
    float: "float",
    str: "text",
}


@dataclass
class FileSurvey:
    """
    One file, as the survey found it.

    :ivar path: the file.
    :ivar ordered: whether its records in range come in strictly
        increasing time, after those of the files before it.
    """

    path: str
    ordered: bool = True


@dataclass
class Survey:
    """
    A series summed up, for the writers.

    :ivar fields: every field seen in range, in the order first seen.
    :ivar qc: field to its QC tests (a dict used as an ordered set), in
        the order first seen.
    :ivar records: sample records in range (before duplicates are left out).
    :ivar first: the earliest time in range, Unix seconds, or ``None``.
    :ivar last: the latest.
    :ivar files: the files read, in order.
    :ivar unreadable: lines that are not records (a line torn by a crash).
    :ivar quality_flags: whether any record carries a driver quality flag.
    :ivar intervals: the first intervals between records in time order.
    """

    fields: dict[str, FieldInfo] = field(default_factory=dict)
    qc: dict[str, dict[str, None]] = field(default_factory=dict)
    records: int = 0
    first: float | None = None
    last: float | None = None
    files: list[FileSurvey] = field(default_factory=list)
    unreadable: int = 0
    quality_flags: bool = False
    intervals: list[float] = field(default_factory=list, repr=False)

    @property
    def resolution(self) -> float | None:
        """
        :returns: the typical time between records, seconds: the median of
            the first intervals; ``None`` for fewer than two records.
        """
        if not self.intervals:
            return None
        return statistics.median(self.intervals)

    def describe(self, streams: Mapping[str, Mapping[str, object]]) -> None:
        """
        Fill in units, standard names and descriptions the records did not
        carry from the driver's metadata for the stream.

        :param streams: field name to ``units``/``standard_name``/
            ``long_name``.
        """
        for name, info in self.fields.items():
            described = streams.get(name)
            if not isinstance(described, Mapping):
                continue
            for attribute in ("units", "standard_name", "long_name"):
                value = described.get(attribute)
                if getattr(info, attribute) is None and isinstance(value, str):
                    setattr(info, attribute, value)


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    """
    A file's lines and their offsets.

    :raises ExportError: if it cannot be read.
    """
    try:
        with open(path, "rb") as f:
            offset = 0
            for line in f:
                yield offset, line
                offset += len(line)
    except OSError as error:
        raise ExportError(f"{path}: cannot read it: {error}") from None


def survey(
    paths: list[str],
    start: float | None,
    end: float | None,
    *,
    progress: Callable[[int], None] | None = None,
) -> Survey:
    """
    Go through a series' files once and sum it up.

    :param paths: its day files, oldest first.
    :param start: the first Unix time wanted, or ``None``.
    :param end: the first Unix time not wanted, or ``None``.
    :param progress: called with the bytes of each line read.
    :returns: the summary.
    """
    result = Survey()
    fields = result.fields
    latest = float("-inf")
    low = float("-inf") if start is None else start
    high = float("inf") if end is None else end
    for path in paths:
        file = FileSurvey(path)
        result.files.append(file)
        for _, line in _lines(path):
            if progress is not None:
                progress(len(line))
            try:
                record = _record(_decode(line.decode("utf-8", "replace")))
                when = _unix_time(record)
            except ValueError:
                result.unreadable += 1
                continue
            if not low <= when < high:
                continue
            qc = record.get("qc")
            if isinstance(qc, dict):
                for name, tests in qc.items():
                    if isinstance(tests, dict):
                        known = result.qc.setdefault(name, {})
                        if not tests.keys() <= known.keys():
                            known.update(dict.fromkeys(tests))
            if record.get("record") != _SAMPLE:
                continue
            result.records += 1
            if when <= latest:
                file.ordered = False
            else:
                if len(result.intervals) < _INTERVALS and latest > float("-inf"):
                    result.intervals.append(when - latest)
                latest = when
            if result.first is None or when < result.first:
                result.first = when
            if result.last is None or when > result.last:
                result.last = when
            if record.get("quality_flag") is not None:
                result.quality_flags = True
            values = record.get("values")
            if not isinstance(values, dict):
                continue
            units = record.get("units")
            names = record.get("standard_names")
            for name, value in values.items():
                info = fields.get(name)
                if info is None:
                    info = fields[name] = FieldInfo(name)
                    if isinstance(units, dict) and isinstance(units.get(name), str):
                        info.units = units[name]
                    if isinstance(names, dict) and isinstance(names.get(name), str):
                        info.standard_name = names[name]
                # Kinds are learned once per Python type: the set
                # difference keeps the common case (no new type) in C.
                if value.__class__ is list:
                    if info.length is None or len(value) > info.length:
                        info.length = len(value)
                    new: set[type] = set(map(type, value)) - info.types
                else:
                    new = set() if type(value) in info.types else {type(value)}
                for each in new:
                    info.types.add(each)
                    kind = _KINDS.get(each, "text")
                    if kind is not None:
                        info.kinds.add(kind)
    return result


def _row(record: Mapping[str, object], when: float) -> Row:
    values = record.get("values")
    qc = record.get("qc")
    flag = record.get("quality_flag")
    iso = record.get("time")
    return Row(
        when,
        iso if isinstance(iso, str) else iso_time(when),
        values if isinstance(values, dict) else {},
        qc if isinstance(qc, dict) else None,
        flag if isinstance(flag, str) else None,
    )


def _amend(recent: Mapping[float, Row], record: Mapping[str, object]) -> bool:
    """
    Apply a QC amendment to the record it names, if still held.
    """
    try:
        when = _unix_time(record)
    except ValueError:
        return False
    row = recent.get(when)
    qc = record.get("qc")
    if row is None or not isinstance(qc, dict):
        return False
    merged = {name: dict(tests) for name, tests in (row.qc or {}).items()}
    for name, tests in qc.items():
        if isinstance(tests, dict):
            merged.setdefault(name, {}).update(tests)
    row.qc = merged
    return True


def _in_order(
    file: FileSurvey, low: float, high: float
) -> Iterator[tuple[int, dict[str, object], float]]:
    """
    A file's records in range, with their line lengths, in time order.
    """
    if file.ordered:
        for _, line in _lines(file.path):
            try:
                record = _record(_decode(line.decode("utf-8", "replace")))
                when = _unix_time(record)
            except ValueError:
                yield len(line), {}, float("nan")
                continue
            yield len(line), record, when
        return
    # Out of order: sort an index of (time, offset) and read by offset.  A
    # day's index is the most this holds.
    index: list[tuple[float, int, int]] = []
    for offset, line in _lines(file.path):
        try:
            when = _unix_time(_record(_decode(line.decode("utf-8", "replace"))))
        except ValueError:
            continue
        if low <= when < high:
            index.append((when, offset, len(line)))
    index.sort()
    with open(file.path, "rb") as f:
        for when, offset, length in index:
            f.seek(offset)
            line = f.readline()
            yield length, _record(_decode(line.decode("utf-8", "replace"))), when


@dataclass
class Counts:
    """
    What the reading pass left out.

    :ivar duplicates: sample records whose time was not after the one
        before (written twice, or a clock stepped back).
    :ivar amendments_unmatched: QC amendments whose record was not found.
    """

    duplicates: int = 0
    amendments_unmatched: int = 0


def read_chunks(
    summary: Survey,
    start: float | None,
    end: float | None,
    size: int,
    *,
    counts: Counts | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[list[Row]]:
    """
    The series' records in range, in strictly increasing time, a chunk at
    a time.

    :param summary: the series' survey (for its files and their order).
    :param start: the first Unix time wanted, or ``None``.
    :param end: the first Unix time not wanted, or ``None``.
    :param size: records per chunk (the last may be shorter).
    :param counts: where to count what is left out.
    :param progress: called with the bytes of each line read.
    :returns: lists of :class:`Row`.
    """
    if counts is None:
        counts = Counts()
    low = float("-inf") if start is None else start
    high = float("inf") if end is None else end
    latest = float("-inf")
    pending: list[Row] = []
    recent: dict[float, Row] = {}
    for file in summary.files:
        for length, record, when in _in_order(file, low, high):
            if progress is not None:
                progress(length)
            if not low <= when < high:
                continue
            if record.get("record") != _SAMPLE:
                if not _amend(recent, record):
                    counts.amendments_unmatched += 1
                continue
            if when <= latest:
                counts.duplicates += 1
                continue
            latest = when
            row = _row(record, when)
            pending.append(row)
            recent[when] = row
            if len(pending) >= size + AMENDMENT_LAG:
                ready, pending = pending[:size], pending[size:]
                for each in ready:
                    recent.pop(each.time, None)
                yield ready
    for first in range(0, len(pending), size):
        yield pending[first : first + size]


#: How far from its end a file is read for its last record.
_TAIL: Final = 256 * 1024


def last_values(folder: str) -> dict[str, object]:
    """
    The values of the last sample record of a stream: the last readable
    line of its newest day file.

    :param folder: the stream's folder.
    :returns: its values, or ``{}`` if there are none.
    """
    days = sorted(name for name in os.listdir(folder) if name.endswith(".jsonl"))
    for name in reversed(days):
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _TAIL))
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            try:
                record = _record(_decode(line.decode("utf-8", "replace")))
            except ValueError:
                continue
            values = record.get("values")
            if record.get("record") == _SAMPLE and isinstance(values, dict):
                return values
    return {}


def file_bytes(paths: list[str]) -> int:
    """
    :returns: the files' total size, for progress.
    """
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += os.path.getsize(path)
    return total
