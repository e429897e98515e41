# -*- test-case-name: tests.test_collector_archive -*-
"""
The collector's archive: the station's JSON-lines layout, one level
deeper::

    <directory>/<station>/<instrument>/<stream>/<YYYY-MM-DD>.jsonl

Lines are buffered in memory by :meth:`Archive.append` and reach their
files in :meth:`Archive.write`, which the collector calls before it
acknowledges the messages: a message the broker considers delivered is in
the file (and on the disk too, with ``fsync``).  Each file gets one
``write(2)`` per batch, in append mode, so collectors of one group that
share a directory do not interleave parts of lines.

:func:`scan` reads the sequence numbers back, for rebuilding the ledger
after a restart.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Final

from twisted.logger import Logger

from instrumentd.collector.message import Message
from instrumentd.station._jsonlines import _ends_torn, _path_component

__all__ = ["Archive", "ArchiveLine", "scan"]

#: Files kept open by default.
DEFAULT_MAX_OPEN_FILES: Final = 64

_log = Logger()


@dataclass(slots=True)
class _File:
    fd: int
    #: Lines waiting for the next write.
    pending: list[bytes] = field(default_factory=list)
    #: Bytes in the file once pending lines are written.
    size: int = 0


class Archive:
    """
    Writes messages to the archive's files.

    :param directory: the archive's top directory; created as needed.
    :param max_open_files: the most files open at once (the least recently
        used is closed to open another).
    :param fsync: whether :meth:`write` also forces each file to the disk
        before returning.
    """

    def __init__(
        self,
        directory: str,
        *,
        max_open_files: int = DEFAULT_MAX_OPEN_FILES,
        fsync: bool = False,
    ) -> None:
        if max_open_files < 1:
            raise ValueError(f"max_open_files must be positive, not {max_open_files}")
        self.directory = directory
        self._max_open_files = max_open_files
        self._fsync = fsync
        self._files: OrderedDict[str, _File] = OrderedDict()
        #: Lines and bytes written, files opened, in all.
        self.lines = 0
        self.bytes = 0
        self.files_opened = 0

    def relative_path(self, message: Message, day: str) -> str:
        """
        :param message: a message.
        :param day: its file's day.
        :returns: its file, relative to the archive's directory.
        """
        return os.path.join(
            _path_component(message.station),
            _path_component(message.instrument),
            _path_component(message.stream),
            f"{day}.jsonl",
        )

    def append(self, message: Message, day: str) -> None:
        """
        Queue a message's line for the next :meth:`write`.

        :param message: the message.
        :param day: the day of its file (``message.day``, or the day it was
            received when it has none).
        :raises OSError: if its file cannot be opened.
        """
        path = self.relative_path(message, day)
        file = self._files.get(path)
        if file is None:
            file = self._open(path)
        else:
            self._files.move_to_end(path)
        file.pending.append(message.line)

    def _open(self, path: str) -> _File:
        while len(self._files) >= self._max_open_files:
            oldest = next(iter(self._files))
            if self._files[oldest].pending:
                # Never close a file with lines still to write: the bound
                # holds between batches.
                break
            self._close(oldest)
        full = os.path.join(self.directory, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        torn = _ends_torn(full)
        fd = os.open(full, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        file = self._files[path] = _File(fd, size=os.fstat(fd).st_size)
        if torn:
            # A line cut short by a crash stays one bad line that readers
            # skip, and the next record starts on a line of its own.
            file.pending.append(b"\n")
        self.files_opened += 1
        return file

    def _close(self, path: str) -> None:
        file = self._files.pop(path)
        with contextlib.suppress(OSError):
            os.close(file.fd)

    def write(self) -> None:
        """
        Write every queued line to its file (and force it to the disk with
        ``fsync``).

        :raises OSError: if a file cannot be written; every queued line is
            then dropped (the caller must not acknowledge them) and the
            files involved are closed, to be opened afresh.
        """
        failed: OSError | None = None
        for path, file in list(self._files.items()):
            if not file.pending:
                continue
            data = b"".join(file.pending)
            count = len(file.pending) - (file.pending[0] == b"\n")
            file.pending.clear()
            if failed is not None:
                continue
            try:
                view = memoryview(data)
                while view:
                    written = os.write(file.fd, view)
                    view = view[written:]
                if self._fsync:
                    os.fsync(file.fd)
            except OSError as error:
                failed = error
                error.filename = os.path.join(self.directory, path)
                self._close(path)
                continue
            file.size += len(data)
            self.lines += count
            self.bytes += len(data)
        if failed is not None:
            raise failed

    def positions(self) -> dict[str, int]:
        """
        :returns: the size of each open file once its queued lines are
            written (call after :meth:`write`), by relative path.
        """
        return {path: file.size for path, file in self._files.items()}

    def open_files(self) -> int:
        """
        :returns: how many files are open.
        """
        return len(self._files)

    def close(self) -> None:
        """
        Close every file (write first: queued lines are dropped).
        """
        for path in list(self._files):
            self._close(path)


@dataclass(frozen=True, slots=True)
class ArchiveLine:
    """
    What :func:`scan` reads of one archived line.
    """

    station: str
    instrument: str
    seq: int
    time: str | None


def _line_time(line: Mapping[str, object]) -> str | None:
    time = line.get("time")
    if isinstance(time, str):
        return time
    if isinstance(time, int | float) and not isinstance(time, bool):
        from instrumentd.station._sink import iso_time

        return iso_time(float(time))
    return None


def scan(
    directory: str, *, since: float | None = None, offsets: Mapping[str, int] = {}
) -> Iterator[ArchiveLine]:
    """
    Read the station, instrument and sequence number of archived lines.

    :param directory: the archive's top directory.
    :param since: read only files changed at or after this time (Unix
        seconds) or listed in ``offsets``; ``None`` reads every file.
    :param offsets: where to start reading in given files (by relative
        path): what a checkpoint already accounts for.
    :returns: the lines, file by file in name order.  Lines that are not
        JSON objects with ``station``, ``instrument`` and ``seq`` (a line
        torn by a crash) are skipped.
    """
    if not os.path.isdir(directory):
        return
    for root, dirs, files in os.walk(directory):
        # The collector's own files (.collector) are not the archive's.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(".jsonl"):
                continue
            full = os.path.join(root, name)
            path = os.path.relpath(full, directory)
            start = offsets.get(path)
            try:
                if start is None:
                    if since is not None and os.stat(full).st_mtime < since:
                        continue
                    start = 0
                f = open(full, "rb")  # noqa: SIM115
            except OSError as e:
                _log.warn(
                    "cannot read {path} of the archive: {error}", path=full, error=e
                )
                continue
            with f:
                if start > os.fstat(f.fileno()).st_size:
                    start = 0
                f.seek(start)
                yield from _read_lines(f, path)


def _read_lines(f: BinaryIO, path: str) -> Iterator[ArchiveLine]:
    parts = path.split(os.sep)
    for raw in f:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict):
            continue
        station = line.get("station")
        instrument = line.get("instrument", parts[1] if len(parts) > 1 else None)
        seq = line.get("seq")
        if (
            isinstance(station, str)
            and isinstance(instrument, str)
            and isinstance(seq, int)
            and not isinstance(seq, bool)
        ):
            yield ArchiveLine(station, instrument, seq, _line_time(line))
