# -*- test-case-name: tests.test_sinks -*-
"""
The JSON-lines file sink: a file per instrument, stream and UTC day.

Import it from :mod:`instrumentd.station.sinks`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Final, NamedTuple

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.station._sink import (
    ErrorReport,
    ISink,
    Particle,
    default_reactor,
    sample_time,
    utc_day,
)
from instrumentd.station.record import RecordError, SampleRecord, as_record

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["JsonLinesSink"]

#: Python's write buffer for each file.  A few seconds of a fast stream;
#: what a kill -9 can lose stays bounded by this and one flush interval.
_FILE_BUFFER: Final = 64 * 1024

_UNSAFE_PATH_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


def _path_component(name: str) -> str:
    # Instrument names come from config and stream names from drivers; keep
    # either from reaching outside the sink's directory or making odd names.
    safe = _UNSAFE_PATH_CHARACTERS.sub("_", name)
    if not safe or safe.startswith("."):
        safe = "_" + safe
    return safe


def _ends_torn(path: str) -> bool:
    """
    Whether the file at ``path`` ends part way through a line (a crash while
    writing it).
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except FileNotFoundError:
        return False


class _FileKey(NamedTuple):
    # A tuple, hashed and compared in C: it is looked up on every sample.
    instrument: str
    stream: str
    day: str


#: How many (instrument, stream, day) names a sink keeps made into file
#: keys before it starts afresh (each sample looks its own up).
_KEYS_KEPT: Final = 16384

#: Seconds in a UTC day (Unix time has no leap seconds).
_DAY: Final = 86400

#: NTP seconds beyond any sample time the short way of :meth:`write` takes
#: (the year 5000 or so).
_NTP_FAR: Final = 1e11


@dataclass(slots=True)
class _OpenFile:
    path: str
    handle: BinaryIO
    #: When it was opened, or last flushed lines to its file.
    active: float
    #: Records written since the last flush.
    unflushed: int = 0


@implementer(ISink)
class JsonLinesSink:
    """
    Appends each sample's record (version 2, ``doc/data.md``) as one line
    of JSON to a file per instrument, stream and UTC day::

        <directory>/<instrument>/<stream>/<YYYY-MM-DD>.jsonl

    The day is the UTC date of the record's **sample time** (its
    ``ntp_time``: the particle's preferred timestamp), so a file holds
    exactly one day's samples even when they arrive late (played-back
    datalogs, buffered instruments).  Only a record timed NTP 0 (a particle
    made with no clock) is dated by when the sink received it; those are
    counted in ``reception_dated``.  Files thus rotate at UTC midnight of sample time:
    the first record of a new day opens that day's file, and files of past
    days are closed once they have been idle for a flush interval.  A file
    of today that takes nothing for ``idle_close`` seconds (the status and
    calibration records a driver writes once at start-up) is closed too, so
    that a station holds one file per sampling stream, not one per stream
    ever written.

    A line is the record's compact JSON, the same bytes every other
    consumer of the sample gets (:attr:`SampleRecord.json
    <instrumentd.station.record.SampleRecord.json>`).  Files are opened in
    append mode, so a restart adds to the day's file; a line torn by a
    crash is ended with a newline before anything is appended after it.
    Characters other than letters, digits, ``.``, ``_`` and ``-`` in the
    instrument and stream names become ``_``.  A mapping that is no record
    (see :func:`~instrumentd.station.record.read_record`) is dropped,
    counted in ``invalid`` and logged.

    Writes are buffered and flushed within ``flush_interval`` (a timer runs
    only while there is something to flush).  At most ``max_open_files``
    files are open; the least recently used is closed to open another.
    An ``OSError`` drops the particle(s) concerned, is counted and logged
    (once a minute at most), and the file is opened afresh for the next one.

    :param directory: the top directory; created as needed.
    :param reactor: the clock for the flush timer and reception times;
        ``None`` for the global reactor.
    :param flush_interval: the longest a record stays in memory, seconds.
    :param max_open_files: the most files open at once.
    :param idle_close: seconds a file may take nothing before it is
        closed (the next record opens it again).
    """

    def __init__(
        self,
        directory: str,
        *,
        reactor: IReactorTime | None = None,
        flush_interval: float = 1.0,
        max_open_files: int = 64,
        idle_close: float = 60.0,
    ) -> None:
        if max_open_files < 1:
            raise ValueError(f"max_open_files must be positive, not {max_open_files}")
        if idle_close <= 0:
            raise ValueError(f"idle_close must be positive, not {idle_close}")
        self._idle_close = idle_close
        self.directory = directory
        self._reactor = default_reactor() if reactor is None else reactor
        self._flush_interval = flush_interval
        self._max_open_files = max_open_files
        self._files: OrderedDict[_FileKey, _OpenFile] = OrderedDict()
        # Every sample names its file: the names made safe, and the day of
        # its time, are made once and kept rather than again each time.
        self._keys: dict[tuple[str, str, str], _FileKey] = {}
        self._days: dict[int, str] = {}
        # Folders made (or found) already.
        self._folders: set[str] = set()
        self._flush_call: IDelayedCall | None = None
        self._closed: Deferred[None] | None = None
        self._errors = ErrorReport(self._reactor, f"JSON-lines sink {directory}")
        #: Particles written to a file (possibly still in its buffer).
        self.records = 0
        #: Bytes of those lines.
        self.bytes = 0
        #: Particles lost to errors or written after close, at most.
        self.dropped = 0
        #: I/O errors.
        self.errors = 0
        #: Files opened, in all.
        self.files_opened = 0
        #: Particles dated by reception because they had no timestamp.
        self.reception_dated = 0
        #: Mappings dropped because they were no record.
        self.invalid = 0

    def write(self, instrument: str, particle: Particle) -> None:
        """
        Append one particle to its file.  See :meth:`ISink.write`.
        """
        if self._closed is not None:
            self.dropped += 1
            return
        now: float | None = None
        if particle.__class__ is SampleRecord:
            # What a station gives, written out: the record's time and
            # stream read from its dict, its day from those kept, its file
            # from those open (each sample of thousands of instruments).
            record = particle
            data = record.to_dict()
            ntp = data["ntp_time"]
            # (Not NaN, infinite, 0 or before 1970: the long way's.)
            if ntp.__class__ is float and NTP_UNIX_OFFSET < ntp < _NTP_FAR:
                unix = ntp - NTP_UNIX_OFFSET
                number = int(unix // _DAY)
                day = (
                    self._days.get(number)
                    if 1.0 <= unix - number * _DAY <= _DAY - 1.0
                    else None
                )
                if day is not None:
                    stream: str = data["stream"]  # type: ignore[assignment]
                    names = (instrument, stream, day)
                    key = self._keys.get(names)
                    if key is not None:
                        file = self._files.get(key)
                        if file is not None:
                            self._files.move_to_end(key)
                            self._append(key, file, record.json + b"\n")
                            return
        if isinstance(particle, SampleRecord):
            record = particle
        else:
            now = self._reactor.seconds()
            try:
                record = as_record(instrument, particle, received=now)
            except RecordError as error:
                self.dropped += 1
                self.invalid += 1
                self._errors.report(f"{instrument}: {error}; the sample is dropped")
                return
        when = record.unix_time
        day = None if when is None else self._day(when)
        if day is None or (
            # A mapping with no timestamp was timed by ``received``.
            record is not particle
            and isinstance(particle, Mapping)
            and sample_time(particle) is None
        ):
            self.reception_dated += 1
            # The same time as the record was dated by, if it was.
            day = utc_day(self._reactor.seconds() if now is None else now)
            assert day is not None
        names = (instrument, record.stream, day)
        key = self._keys.get(names)
        if key is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            key = self._keys[names] = _FileKey(
                _path_component(instrument), _path_component(record.stream), day
            )
        file = self._file_for(key)
        if file is None:
            self.dropped += 1
            return
        self._append(key, file, record.json + b"\n")

    def _append(self, key: _FileKey, file: _OpenFile, line: bytes) -> None:
        try:
            file.handle.write(line)
        except OSError as error:
            self.dropped += 1
            self._fail(key, "writing", error)
            return
        file.unflushed += 1
        self.records += 1
        self.bytes += len(line)
        if self._flush_call is None:
            # One timer per batch of unflushed writes: none while idle.
            self._flush_call = self._reactor.callLater(
                self._flush_interval, self._flush_due
            )

    def _day(self, when: float) -> str | None:
        """
        :func:`utc_day` of ``when``, kept for each day.
        """
        try:
            number = int(when // _DAY)
        except (OverflowError, ValueError):
            return None
        if not 1.0 <= when - number * _DAY <= _DAY - 1.0:
            # Near midnight, the day is whatever utc_day's rounding says.
            return utc_day(when)
        day = self._days.get(number)
        if day is None:
            day = utc_day(when)
            if day is not None:
                if len(self._days) >= 64:
                    self._days.clear()
                self._days[number] = day
        return day

    def _file_for(self, key: _FileKey) -> _OpenFile | None:
        file = self._files.get(key)
        if file is not None:
            self._files.move_to_end(key)
            return file
        while len(self._files) >= self._max_open_files:
            oldest = next(iter(self._files))
            self._close_file(oldest)
        folder = os.path.join(self.directory, key.instrument, key.stream)
        path = os.path.join(folder, f"{key.day}.jsonl")
        try:
            handle = self._open(folder, path)
        except OSError as error:
            self._fail(key, "opening", error, path)
            return None
        try:
            # Only a file that has lines can end part way through one: a
            # new file (each instrument's first of each stream and day)
            # needs no second open to read its last byte.
            torn = os.fstat(handle.fileno()).st_size > 0 and _ends_torn(path)
        except OSError:
            torn = False
        if torn:
            # Start on a fresh line, so the torn one stays a single bad line
            # that readers skip and the next record stays readable.
            handle.write(b"\n")
        file = self._files[key] = _OpenFile(path, handle, self._reactor.seconds())
        self.files_opened += 1
        return file

    def _open(self, folder: str, path: str) -> BinaryIO:
        """
        Open ``path`` to append to, making its folder first unless it was
        made (or found) before: a makedirs that finds the folder costs a
        lookup and a failed mkdir each time a file is opened there.
        """
        if folder in self._folders:
            try:
                # Kept open across many writes; closed by _close_file.
                return open(path, "ab", buffering=_FILE_BUFFER)
            except FileNotFoundError:
                # The folder was removed since: make it again.
                self._folders.discard(folder)
        os.makedirs(folder, exist_ok=True)
        handle = open(path, "ab", buffering=_FILE_BUFFER)  # noqa: SIM115
        if len(self._folders) >= _KEYS_KEPT:
            self._folders.clear()
        self._folders.add(folder)
        return handle

    def _fail(
        self, key: _FileKey, action: str, error: OSError, path: str | None = None
    ) -> None:
        self.errors += 1
        file = self._files.pop(key, None)
        if file is not None:
            # Its buffer cannot be trusted to reach the disk now; closing
            # releases the descriptor even if it cannot.
            self.dropped += file.unflushed
            path = file.path
            with contextlib.suppress(OSError):
                file.handle.close()
        self._errors.report(f"{action} {path}: {error}; the particle is dropped")

    def _flush_file(self, key: _FileKey, file: _OpenFile) -> None:
        if not file.unflushed:
            return
        try:
            file.handle.flush()
        except OSError as error:
            # Counted as written but now in doubt: report them as dropped.
            self.dropped += file.unflushed
            file.unflushed = 0
            self._fail(key, "flushing", error)
            return
        file.unflushed = 0
        # Lines reached the file again: an earlier error is no longer the
        # case (last_failure keeps it).
        errors = self._errors
        if errors.last is not None:
            errors.clear()

    def _close_file(self, key: _FileKey) -> None:
        file = self._files[key]
        self._flush_file(key, file)
        file = self._files.pop(key, file)
        try:
            file.handle.close()
        except OSError as error:
            self.errors += 1
            self._errors.report(f"closing {file.path}: {error}")

    def _flush_due(self) -> None:
        self._flush_call = None
        now = self._reactor.seconds()
        today = utc_day(now)
        idle_since = now - self._idle_close
        for key, file in list(self._files.items()):
            if file.unflushed:
                self._flush_file(key, file)
                file.active = now
            elif (today is not None and key.day < today) or file.active <= idle_since:
                # A past day's file that took nothing during the last
                # interval: that day is done; or a stream that has gone
                # quiet.  A late record reopens it.
                self._close_file(key)

    def flush(self) -> Deferred[None]:
        """
        Write all buffered lines to their files now.  See :meth:`ISink.flush`.
        """
        if self._flush_call is not None:
            self._flush_call.cancel()
            self._flush_call = None
        for key, file in list(self._files.items()):
            self._flush_file(key, file)
        return succeed(None)

    def close(self) -> Deferred[None]:
        """
        Flush and close every file.  See :meth:`ISink.close`.
        """
        if self._closed is None:
            self.flush()
            for key in list(self._files):
                self._close_file(key)
            self._closed = succeed(None)
        return self._closed

    def stats(self) -> dict[str, object]:
        """
        See :meth:`ISink.stats`.

        :returns: ``records``, ``bytes``, ``dropped``, ``errors``,
            ``open_files``, ``files_opened``, ``reception_dated``,
            ``invalid``,
            ``last_error`` (text while it is still the case, else ``None``)
            and ``last_failure`` (``{"message", "time"}`` of the last error
            ever, or ``None``).
        """
        return {
            "records": self.records,
            "bytes": self.bytes,
            "dropped": self.dropped,
            "errors": self.errors,
            "open_files": len(self._files),
            "files_opened": self.files_opened,
            "reception_dated": self.reception_dated,
            "invalid": self.invalid,
            "last_error": self._errors.last,
            "last_failure": self._errors.last_failure,
        }
