# -*- test-case-name: tests.test_spool -*-
"""
A disk spool: an append-only queue of JSON records that survives restarts.

The HTTP sink (:class:`instrumentd.station.sinks.HttpSink`) writes every
particle here before it tries to send it, and marks records delivered only
after the endpoint has accepted them.  So an outage of any length costs disk,
not memory, and a restarted station resumes where the last one stopped.

Layout of a spool directory::

    <directory>/state.json                 {"source": "<hex id>", "delivered": <seq>}
    <directory>/lock                       held while a spool is open
    <directory>/<first seq, 20 digits>.jsonl   segments, one record per line

Every record is one line of compact JSON starting with its sequence number,
``{"seq": 17, ...}``.  Sequence numbers start at 1, increase by one per
record and are never reused, even across restarts and after delivered
segments have been deleted.  ``source`` is a random id made when the spool is
first created; ``(source, seq)`` names a record uniquely.

Each record is written to the file with one ``write`` system call and no
buffer in this process, so a record that :meth:`Spool.append` accepted is in
the operating system's hands and survives the station being killed.  (It is
not ``fsync``\\ ed: a power cut can still lose the last few seconds.)  A run
never appends to a segment an earlier run left: it starts a new one, so a
line torn by a crash stays alone at the end of its segment, where the reader
skips it and counts it in :attr:`Spool.corrupt`.

The delivery cursor (``delivered`` in ``state.json``) is replaced atomically
(written to a temporary file, then renamed) on each :meth:`Spool.commit`.
Segments all of whose records are delivered are deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, Final

from twisted.python.lockfile import FilesystemLock

from instrumentd.driver._json import dumps

__all__ = ["Spool", "SpoolEntry", "SpoolInUseError"]

#: Where the delivery cursor and the spool's id are kept.
STATE_FILE: Final = "state.json"

#: Held (a symlink naming the holder's pid) while a spool is open.
LOCK_FILE: Final = "lock"

#: Segment files end with this; their name is their first record's seq.
_SEGMENT_SUFFIX: Final = ".jsonl"


class SpoolInUseError(Exception):
    """
    The spool directory is open in another :class:`Spool`.
    """


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """
    One record read back from a spool.

    :ivar seq: its sequence number.
    :ivar line: its JSON text exactly as stored, without the newline.
    """

    seq: int
    line: bytes


@dataclass(slots=True)
class _Segment:
    """
    One segment file: its first record's seq, its path and its size.
    """

    first_seq: int
    path: str
    size: int


@dataclass(slots=True)
class _Writer:
    """
    The segment being appended to and its open descriptor.
    """

    fd: int
    segment: _Segment


class Spool:
    """
    An append-only, on-disk FIFO of JSON records with a persisted delivery
    cursor.

    Use: :meth:`append` records; :meth:`read` the next ones not yet read
    (this moves only an in-memory read position); once they are safely
    delivered, :meth:`commit` their last seq (this moves the persisted
    cursor).  After a restart, reading starts again after the committed
    cursor, so records read but not committed are read again.

    All methods do blocking file I/O on small local files; they are meant to
    be called from the reactor thread, as the port agent's datalog is.

    :param directory: the spool directory; created if missing.
    :param segment_bytes: start a new segment file once the current one
        reaches this size, so delivered data can be deleted while the spool
        is in use.
    :raises OSError: if the directory or its state cannot be created or
        read.
    :raises ValueError: if ``state.json`` exists but is not a spool state.
    :raises SpoolInUseError: if another spool, in this process or another
        live one, has the directory open.
    """

    def __init__(self, directory: str, *, segment_bytes: int = 1 << 20) -> None:
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be positive, not {segment_bytes}")
        self.directory = directory
        self._segment_bytes = segment_bytes
        os.makedirs(directory, exist_ok=True)
        # Two writers on one spool would interleave seqs and delete each
        # other's segments; a stale lock of a dead process is taken over.
        self._lock = FilesystemLock(os.path.join(directory, LOCK_FILE))
        if not self._lock.lock():
            raise SpoolInUseError(
                f"the spool {directory} is in use by another sink "
                f"(its lock {self._lock.name} is held)"
            )
        try:
            self._open()
        except BaseException:
            self._lock.unlock()
            raise

    def _open(self) -> None:
        self._state_path = os.path.join(self.directory, STATE_FILE)
        #: The spool's id, for receivers to tell spools apart.
        self.source: str
        #: The seq of the last record committed as delivered (0 for none).
        self.delivered: int
        self.source, self.delivered = self._load_state()
        #: Lines that could not be read back (torn by a crash, or not JSON
        #: records); they are skipped.
        self.corrupt = 0
        self._segments: list[_Segment] = self._scan_segments()
        #: The seq of the last record appended (0 for none).
        self.last_seq = max(self.delivered, self._last_stored_seq())
        self._read_seq = self.delivered
        self._writer: _Writer | None = None
        self._reader: BinaryIO | None = None
        self._reader_segment: _Segment | None = None
        self._closed = False
        self._discard_delivered()

    # -- state ------------------------------------------------------------

    def _load_state(self) -> tuple[str, int]:
        try:
            with open(self._state_path, "rb") as f:
                text = f.read()
        except FileNotFoundError:
            source = uuid.uuid4().hex
            self._save_state(source, 0)
            return source, 0
        try:
            state = json.loads(text)
            source, delivered = state["source"], state["delivered"]
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(
                f"{self._state_path}: not a spool state ({error!r}); move it "
                f"away to start the spool afresh"
            ) from error
        if not isinstance(source, str) or type(delivered) is not int or delivered < 0:
            raise ValueError(
                f"{self._state_path}: not a spool state (source {source!r}, "
                f"delivered {delivered!r})"
            )
        return source, delivered

    def _save_state(self, source: str, delivered: int) -> None:
        # Write-then-rename, so a crash leaves the old cursor or the new one,
        # never half of one.
        temporary = self._state_path + ".tmp"
        with open(temporary, "wb") as f:
            f.write(dumps({"source": source, "delivered": delivered}).encode())
        os.replace(temporary, self._state_path)

    # -- segments ---------------------------------------------------------

    def _scan_segments(self) -> list[_Segment]:
        segments = []
        for name in os.listdir(self.directory):
            stem, suffix = os.path.splitext(name)
            if suffix != _SEGMENT_SUFFIX or not stem.isdigit():
                continue
            path = os.path.join(self.directory, name)
            segments.append(_Segment(int(stem), path, os.path.getsize(path)))
        segments.sort(key=lambda segment: segment.first_seq)
        return segments

    def _last_stored_seq(self) -> int:
        # The newest segment with a readable record holds the highest seq;
        # segments that hold only torn or corrupt lines are passed over.
        for segment in reversed(self._segments):
            last = 0
            with open(segment.path, "rb") as f:
                for line in f:
                    seq = _parse_seq(line)
                    if seq is not None:
                        last = max(last, seq)
            if last:
                return last
        return 0

    def _open_writer(self, first_seq: int) -> _Writer:
        path = os.path.join(self.directory, f"{first_seq:020d}{_SEGMENT_SUFFIX}")
        # O_APPEND without buffering: each record is one write(2) at the end
        # of the file.  The name can exist only if an earlier segment of that
        # name never took a whole record; its torn tail is ended first so the
        # next record starts on a line of its own.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                self._write_all(fd, b"\n")
                size += 1
        except OSError:
            os.close(fd)
            raise
        for segment in self._segments:
            if segment.path == path:
                segment.size = size
                break
        else:
            segment = _Segment(first_seq, path, size)
            self._segments.append(segment)
        return _Writer(fd, segment)

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write: {written} of {len(data)} bytes")

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(OSError):
                os.close(writer.fd)

    # -- the queue --------------------------------------------------------

    @property
    def pending(self) -> int:
        """
        How many records are stored but not yet committed as delivered.
        """
        return self.last_seq - self.delivered

    @property
    def unread(self) -> int:
        """
        How many records are stored but not yet handed out by :meth:`read`.
        """
        return self.last_seq - self._read_seq

    @property
    def disk_bytes(self) -> int:
        """
        The size of all segment files, bytes.
        """
        return sum(segment.size for segment in self._segments)

    def append(self, fields: Mapping[str, object]) -> int:
        """
        Store one record: ``{"seq": <next seq>, **fields}`` as one line.

        :param fields: the record's content (JSON-ready, or convertible by
            :func:`instrumentd.driver._json.to_jsonable`); must not contain
            ``"seq"``.
        :returns: the record's seq.
        :raises OSError: if it could not be written whole.  The seq is not
            used, the current segment is abandoned (any torn line in it is
            skipped on reading) and the next record starts a new one.
        :raises RuntimeError: if the spool is closed.
        """
        if self._closed:
            raise RuntimeError("the spool is closed")
        seq = self.last_seq + 1
        line = dumps({"seq": seq, **fields}).encode("utf-8") + b"\n"
        writer = self._writer
        if writer is not None and writer.segment.size >= self._segment_bytes:
            self._close_writer()
            writer = None
        if writer is None:
            writer = self._writer = self._open_writer(seq)
        try:
            self._write_all(writer.fd, line)
        except OSError:
            self._close_writer()
            raise
        writer.segment.size += len(line)
        self.last_seq = seq
        return seq

    def read(self, limit: int) -> list[SpoolEntry]:
        """
        The next records after those already read, oldest first, at most
        ``limit`` of them.  Moves the read position past them (in memory
        only; see :meth:`commit`).

        :param limit: the most records to return.
        :returns: the records; empty when all stored records have been read.
        :raises OSError: if a segment cannot be read; the read position is
            left after the last record returned by an earlier call.
        """
        entries: list[SpoolEntry] = []
        while len(entries) < limit and self._read_seq < self.last_seq:
            if self._reader is None and not self._open_reader(None):
                break
            assert self._reader is not None
            line = self._reader.readline()
            if not line:
                if not self._open_reader(self._reader_segment):
                    # Nothing more to read: whatever seqs were not found were
                    # lost to a crash or an error; stop counting them unread.
                    self._read_seq = self.last_seq
                    break
                continue
            seq = _parse_seq(line)
            if seq is None:
                self.corrupt += 1
                continue
            if seq <= self._read_seq:
                continue
            entries.append(SpoolEntry(seq, line.rstrip(b"\n")))
            self._read_seq = seq
        return entries

    def _open_reader(self, after: _Segment | None) -> bool:
        """
        Open the segment to read next: the one after ``after``, or, for
        ``None``, the last one that can hold the record after the read
        position.  Lines at or before the read position are skipped as they
        are read, so starting at a segment's beginning is always right.

        :returns: ``False`` if there is no such segment.
        """
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        candidates = self._segments
        if after is None:
            wanted = self._read_seq + 1
            starts = [s for s in candidates if s.first_seq <= wanted]
            segment = starts[-1] if starts else (candidates[0] if candidates else None)
        else:
            later = [s for s in candidates if s.first_seq > after.first_seq]
            segment = later[0] if later else None
        self._reader_segment = segment
        if segment is None:
            return False
        # Kept open across reads; closed on moving on, deleting or closing.
        self._reader = open(segment.path, "rb")  # noqa: SIM115
        return True

    def commit(self, seq: int) -> None:
        """
        Record that every record up to and including ``seq`` is delivered,
        persist that, and delete segments that hold only delivered records.

        :param seq: the last delivered seq.
        :raises OSError: if the state cannot be saved (the cursor stays
            moved in memory; a restart would resend from the old one).
        """
        if seq <= self.delivered:
            return
        self.delivered = seq
        self._read_seq = max(self._read_seq, seq)
        self._save_state(self.source, seq)
        self._discard_delivered()

    def _discard_delivered(self) -> None:
        # A segment is all delivered when the next one starts at or before
        # the record after the cursor.  The segment being written is kept.
        while len(self._segments) > 1 and (
            self._segments[1].first_seq <= self.delivered + 1
        ):
            self._delete(self._segments[0])
        if self._segments and self._writer is None and self.delivered >= self.last_seq:
            # Nothing undelivered and nothing being written: drop the rest.
            for segment in list(self._segments):
                self._delete(segment)

    def _delete(self, segment: _Segment) -> None:
        if segment is self._reader_segment and self._reader is not None:
            self._reader.close()
            self._reader = None
            self._reader_segment = None
        self._segments.remove(segment)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(segment.path)

    def close(self) -> None:
        """
        Close the files; delete the segments if everything was delivered.
        Calling it again does nothing.

        :raises OSError: if a delivered segment cannot be deleted.
        """
        if self._closed:
            return
        self._closed = True
        self._close_writer()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        try:
            self._discard_delivered()
        finally:
            self._lock.unlock()


def _parse_seq(line: bytes) -> int | None:
    """
    The seq of one stored line, or ``None`` if it is not a whole record.
    """
    if not line.endswith(b"\n"):
        # Torn by a crash or a failed write.
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    seq = record.get("seq") if isinstance(record, dict) else None
    return seq if type(seq) is int and seq > 0 else None
