# -*- test-case-name: tests.test_spool -*-
"""
A disk spool: an append-only queue of JSON records that survives restarts.

The HTTP sink (:class:`instrumentd.station.sinks.HttpSink`) writes every
particle here before it tries to send it, and marks records delivered only
after the endpoint has accepted them.  So an outage costs disk, not memory
(up to the spool's bound), and a restarted station resumes where the last
one stopped.

Layout of a spool directory::

    <directory>/state.json                 {"source": "<hex id>", "delivered": <seq>}
    <directory>/cursor                     the delivery cursor, overwritten in place
    <directory>/lock                       held while a spool is open
    <directory>/<first seq, 20 digits>.jsonl   segments, one record per line

Every record is one line of compact JSON starting with its sequence number,
``{"seq": 17, ...}``.  Sequence numbers start at 1, increase by one per
record and are never reused, even across restarts and after delivered
segments have been deleted.  ``source`` is a random id made when the spool is
first created; ``(source, seq)`` names a record uniquely.

Each record is written to the file with one ``write`` system call and no
buffer in this process, so a record that :meth:`Spool.append` accepted is in
the operating system's hands and survives the station being killed.  With
``buffer_bytes`` (the HTTP sink's spool), records wait in memory for
:meth:`Spool.write_pending`, which writes many with one system call (the
sink calls it at the end of each turn of its reactor), and are always
written before :meth:`Spool.read` returns them.  With ``tail_bytes``,
records appended since the reader caught up are also kept in memory, up to
that many bytes, so the reader takes them from there rather than read the
file back.  (It is
not ``fsync``\\ ed: a power cut can still lose the last few seconds.)  A run
never appends to a segment an earlier run left: it starts a new one, so a
line torn by a crash stays alone at the end of its segment, where the reader
skips it and counts it in :attr:`Spool.corrupt`.  A write the disk could take
only part of is cut back off, so a full disk leaves no torn line.

**The cursor survives a full disk.**  The delivery cursor is kept in
``cursor``: two fixed-size slots, each the seq and its CRC-32, written in
turn with one ``pwrite`` over bytes the file already has.  Overwriting
allocates nothing on file systems that write in place (ext4, XFS, tmpfs), so
a commit cannot fail for want of space, and a write torn by a power cut
spoils one slot only: the other still holds the previous cursor.  A commit
deletes the segments it completes *before* it writes the cursor, so it frees
space first; a deleted segment is never read again, so its records are not
sent again even if the cursor could not be written.  ``state.json`` is
written when the spool is created and, best effort, when it is closed; its
``delivered`` is read too, for spools made before ``cursor`` existed.

**The spool is bounded.**  With ``max_bytes``, an append that would take
the segments past it first deletes the oldest segments, delivered or not,
and counts their unread records in :attr:`Spool.evicted`.  The cursor moves
past what was deleted (it then means "delivered or given up"), so sequence
numbers show the gap to the receiver.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, Final, NamedTuple

from twisted.python.lockfile import FilesystemLock

from instrumentd.driver._json import dumps

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Spool",
    "SpoolEntry",
    "SpoolFullError",
    "SpoolInUseError",
]

#: Where the delivery cursor and the spool's id are kept.
STATE_FILE: Final = "state.json"

#: Held (a symlink naming the holder's pid) while a spool is open.
LOCK_FILE: Final = "lock"

#: The delivery cursor: two slots of :data:`_SLOT_BYTES`, overwritten in place.
CURSOR_FILE: Final = "cursor"

#: One cursor slot: ``<seq, 20 digits> <CRC-32 of the digits, 8 hex>``,
#: padded with spaces, ending with a newline.
_SLOT_BYTES: Final = 32

#: The bound :class:`~instrumentd.station.sinks.HttpSink` and the station's
#: configuration give a spool unless told otherwise: days of a station of a
#: dozen instruments sampling every second.
DEFAULT_MAX_BYTES: Final = 1 << 30

#: With a bound, segments are at most this fraction of it, so making room
#: never throws away more than an eighth of the spool at once.
_SEGMENTS_PER_BOUND: Final = 8

#: Segment files end with this; their name is their first record's seq.
_SEGMENT_SUFFIX: Final = ".jsonl"


class SpoolInUseError(Exception):
    """
    The spool directory is open in another :class:`Spool`.
    """


class SpoolFullError(OSError):
    """
    A record is larger than the spool's whole bound, so no room can be made
    for it.
    """


class SpoolEntry(NamedTuple):
    """
    One record read back from a spool (a named tuple: one is made for every
    record a sink sends, and a tuple is made at a fraction of the cost of a
    frozen dataclass).

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
        is in use.  With ``max_bytes``, at most an eighth of it.
    :param max_bytes: the most bytes the segments may take; the oldest are
        deleted to make room (see the module's description).  ``None`` for
        no bound.
    :param buffer_bytes: 0 (the default) to write each record with a
        ``write`` of its own as it is appended.  Otherwise appended records
        wait in memory until :meth:`write_pending` (which the owner calls
        once a turn of its reactor), until :meth:`read` or :meth:`close`,
        or until this many bytes wait: one ``write`` for many records.
    :param tail_bytes: 0 (the default) to read every record back from the
        files.  Otherwise records appended since the reader last caught up
        are also kept in memory, up to this many bytes, and read from there
        (a reader that fell further behind reads the files).
    :raises OSError: if the directory or its state cannot be created or
        read.
    :raises ValueError: if ``state.json`` exists but is not a spool state,
        or a size is not positive.
    :raises SpoolInUseError: if another spool, in this process or another
        live one, has the directory open.
    """

    def __init__(
        self,
        directory: str,
        *,
        segment_bytes: int = 1 << 20,
        max_bytes: int | None = None,
        buffer_bytes: int = 0,
        tail_bytes: int = 0,
    ) -> None:
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be positive, not {segment_bytes}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.directory = directory
        #: The most bytes the segments may take, or ``None``.
        self.max_bytes = max_bytes
        if max_bytes is not None:
            segment_bytes = min(segment_bytes, max(1, max_bytes // _SEGMENTS_PER_BOUND))
        self._segment_bytes = segment_bytes
        self._buffer_bytes = buffer_bytes
        self._tail_limit = tail_bytes
        #: Records appended but not yet written, all for the current
        #: segment, and their size.  Counted in the segment's size, the
        #: spool's bytes and ``last_seq`` already.
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        #: Records appended (with a buffer) whose write failed, so they were
        #: lost; see :meth:`write_pending`.
        self.lost = 0
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
        self._cursor_path = os.path.join(self.directory, CURSOR_FILE)
        #: The spool's id, for receivers to tell spools apart.
        self.source: str
        #: The seq of the last record committed as delivered, or given up
        #: to make room (0 for none).
        self.delivered: int
        self.source, self.delivered = self._load_state()
        self._cursor_fd: int | None = None
        self._cursor_slot = 0
        self.delivered = max(self.delivered, self._load_cursor())
        #: Lines that could not be read back (torn by a crash, or not JSON
        #: records); they are skipped.
        self.corrupt = 0
        #: Records deleted unread to keep within ``max_bytes``.
        self.evicted = 0
        #: ``True`` from the first time room had to be made until the
        #: segments have drained to half of ``max_bytes``.
        self.at_bound = False
        self._segments: list[_Segment] = self._scan_segments()
        # Kept as a running total: the bound checks it on every append.
        self._bytes = sum(segment.size for segment in self._segments)
        #: The seq of the last record appended (0 for none).
        self.last_seq = max(self.delivered, self._last_stored_seq())
        if self._segments:
            # Records before the first segment can never be read again:
            # delivered, given up, or deleted by a commit whose cursor was
            # never written.
            self.delivered = max(self.delivered, self._segments[0].first_seq - 1)
        self._read_seq = self.delivered
        self._writer: _Writer | None = None
        self._reader: BinaryIO | None = None
        self._reader_segment: _Segment | None = None
        #: The records appended since the reader last caught up, while they
        #: fit in ``tail_bytes``; ``None`` when the reader must go to
        #: the files.  ``_tail_start`` is the first not yet read.
        self._tail: list[SpoolEntry] | None = None
        if self._tail_limit and self.unread == 0:
            self._tail = []
        self._tail_start = 0
        self._tail_bytes = 0
        self._closed = False
        self._discard_delivered()
        # Made now, while there is likely room, so that commits later only
        # overwrite it; if it cannot be made yet, a commit tries again.
        with contextlib.suppress(OSError):
            self._open_cursor()

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

    def _load_cursor(self) -> int:
        """
        The cursor in ``cursor``: the higher of its valid slots; 0 if it is
        missing or has none.  The next write goes to the other slot.
        """
        try:
            with open(self._cursor_path, "rb") as f:
                data = f.read(2 * _SLOT_BYTES)
        except FileNotFoundError:
            return 0
        best, best_slot = 0, 1
        for slot in range(2):
            seq = _parse_slot(data[slot * _SLOT_BYTES : (slot + 1) * _SLOT_BYTES])
            if seq is not None and seq >= best:
                best, best_slot = seq, slot
        self._cursor_slot = 1 - best_slot
        return best

    def _open_cursor(self) -> int:
        """
        The open cursor file, made (both slots holding the cursor) if need
        be.
        """
        if self._cursor_fd is not None:
            return self._cursor_fd
        fd = os.open(self._cursor_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < 2 * _SLOT_BYTES:
                both = _format_slot(self.delivered) * 2
                if os.pwrite(fd, both, 0) != len(both):
                    raise OSError(errno.ENOSPC, "short write", self._cursor_path)
        except OSError:
            os.close(fd)
            raise
        self._cursor_fd = fd
        return fd

    def _save_cursor(self) -> None:
        # Alternate slots: a write torn by a power cut leaves the other one,
        # which holds the cursor before this one.
        fd = self._open_cursor()
        slot = _format_slot(self.delivered)
        written = os.pwrite(fd, slot, self._cursor_slot * _SLOT_BYTES)
        if written != len(slot):
            raise OSError(errno.ENOSPC, "short write", self._cursor_path)
        self._cursor_slot = 1 - self._cursor_slot

    def _save_state(self, source: str, delivered: int) -> None:
        # Write-then-rename, so a crash leaves the old cursor or the new one,
        # never half of one.
        temporary = self._state_path + ".tmp"
        try:
            with open(temporary, "wb") as f:
                f.write(dumps({"source": source, "delivered": delivered}).encode())
            os.replace(temporary, self._state_path)
        except OSError:
            # On a full disk: leave no half-written file taking space.
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

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
                self._bytes += size - segment.size
                segment.size = size
                break
        else:
            segment = _Segment(first_seq, path, size)
            self._segments.append(segment)
            self._bytes += size
        return _Writer(fd, segment)

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        written = os.write(fd, data)
        if written == len(data):
            return
        # A short write is what a filling disk does first; writing the rest
        # then fails with the reason (ENOSPC).
        if written <= 0:
            raise OSError(f"short write: 0 of {len(data)} bytes")
        view = memoryview(data)[written:]
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(
                    f"short write: {len(data) - len(view)} of {len(data)} bytes"
                )
            view = view[written:]

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
    def buffered_bytes(self) -> int:
        """
        Bytes of records appended and waiting for :meth:`write_pending`.
        """
        return self._pending_bytes

    @property
    def disk_bytes(self) -> int:
        """
        The size of all segment files, bytes.
        """
        return self._bytes

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
        return self._store(seq, dumps({"seq": seq, **fields}).encode("utf-8"))

    def append_encoded(self, body: bytes) -> int:
        """
        Store one record whose content is already JSON: the line is
        ``{"seq": <next seq>, ...body's members}``, so a record encoded once
        (a sample record's bytes) is not encoded again.

        :param body: a compact JSON object, UTF-8, on one line, without
            ``"seq"``.
        :returns: the record's seq.
        :raises ValueError: if ``body`` is not ``{...}`` on one line.
        :raises OSError: as :meth:`append`.
        :raises RuntimeError: if the spool is closed.
        """
        if self._closed:
            raise RuntimeError("the spool is closed")
        if not (body.startswith(b"{") and body.endswith(b"}")) or b"\n" in body:
            raise ValueError("append_encoded takes one JSON object on one line")
        seq = self.last_seq + 1
        rest = body[1:] if body == b"{}" or body[1:2] == b"}" else b"," + body[1:]
        return self._store(seq, b'{"seq":%d%s' % (seq, rest))

    def append_members(self, *parts: bytes) -> int:
        """
        Store one record whose members are already JSON: the line is
        ``{"seq": <next seq>,`` then ``parts`` joined, then ``}``, made in
        one join (a sample record's bytes spliced in as they are, without
        the copies :meth:`append_encoded` makes).

        :param parts: together, the members of a compact JSON object
            (``"instrument":"ctd1","record":{...}``), without ``"seq"``,
            at least one member, UTF-8, on one line.
        :returns: the record's seq.
        :raises ValueError: if the line would hold a line break, or there
            is no member.
        :raises OSError: as :meth:`append`.
        :raises RuntimeError: if the spool is closed.
        """
        if self._closed:
            raise RuntimeError("the spool is closed")
        seq = self.last_seq + 1
        line = b"".join((b'{"seq":%d,' % seq, *parts, b"}"))
        if b"\n" in line or line.endswith(b",}"):
            raise ValueError(
                "append_members takes the members of one JSON object on one line"
            )
        return self._store(seq, line)

    def _store(self, seq: int, line: bytes) -> int:
        """
        Write (or, with a buffer, queue) one record's line, given without
        its newline, as record ``seq``.  The same bytes are queued and kept
        for the reader: no copy of the line is made here (the newlines are
        joined in as the buffer is written).

        :raises OSError: if it could not be stored.  Records queued before
            it whose write failed meanwhile are counted in :attr:`lost`.
        """
        size = len(line) + 1
        if self._pending and (
            self._pending_bytes + size > self._buffer_bytes
            or (self.max_bytes is not None and self._bytes + size > self.max_bytes)
        ):
            # Full buffer; or room must be made, which may delete the
            # segment the queued records belong to.
            self.write_pending()
        max_bytes = self.max_bytes
        if max_bytes is not None and (
            size > max_bytes or self._bytes + size > max_bytes
        ):
            # Only then is there something for _make_room to do (or to
            # refuse): not on every record.
            self._make_room(size)
        writer = self._writer
        if writer is not None and writer.segment.size >= self._segment_bytes:
            self.write_pending()
            self._close_writer()
            writer = None
        if writer is None:
            writer = self._writer = self._open_writer(seq)
        if self._buffer_bytes:
            self._pending.append(line)
            self._pending_bytes += size
        else:
            try:
                self._write_all(writer.fd, line + b"\n")
            except OSError:
                # A full disk may have taken part of the line: cut it off
                # (that needs no space), so no torn line is left to skip.
                with contextlib.suppress(OSError):
                    os.ftruncate(writer.fd, writer.segment.size)
                self._close_writer()
                raise
        writer.segment.size += size
        self._bytes += size
        self.last_seq = seq
        tail = self._tail
        if tail is not None:
            if self._tail_bytes + size > self._tail_limit:
                # The reader fell far behind: it reads the files instead.
                self._tail = None
            else:
                tail.append(SpoolEntry(seq, line))
                self._tail_bytes += size
        return seq

    def write_pending(self) -> None:
        """
        Write the records waiting in the buffer, with one ``write``.  Does
        nothing without a buffer or with nothing waiting.

        :raises OSError: if they could not be written whole.  They are
            lost: counted in :attr:`lost`, their seqs unused (the next
            record takes the first of them), and the segment is abandoned
            as :meth:`append` describes.
        """
        pending = self._pending
        if not pending:
            return
        writer = self._writer
        assert writer is not None, "records queued without a segment"
        count = len(pending)
        # The lines are queued without their newlines: an empty last one
        # makes the join end with one.
        pending.append(b"")
        data = b"\n".join(pending)
        self._pending = []
        self._pending_bytes = 0
        try:
            self._write_all(writer.fd, data)
        except OSError:
            before = writer.segment.size - len(data)
            with contextlib.suppress(OSError):
                os.ftruncate(writer.fd, before)
            self._close_writer()
            writer.segment.size = before
            self._bytes -= len(data)
            self.last_seq -= count
            self.lost += count
            tail = self._tail
            while tail and tail[-1].seq > self.last_seq:
                self._tail_bytes -= len(tail.pop().line) + 1
            raise

    def _make_room(self, needed: int) -> None:
        """
        Delete the oldest segments until ``needed`` more bytes fit within
        ``max_bytes``; move the cursor past them.

        :raises SpoolFullError: if ``needed`` alone is more than the bound.
        """
        assert self.max_bytes is not None
        if needed > self.max_bytes:
            raise SpoolFullError(
                errno.EFBIG,
                f"a record of {needed} bytes is larger than the spool's bound "
                f"of {self.max_bytes} bytes",
            )
        moved = False
        while self._segments and self._bytes + needed > self.max_bytes:
            oldest = self._segments[0]
            if self._writer is not None and self._writer.segment is oldest:
                self._close_writer()
            last = (
                self._segments[1].first_seq - 1
                if len(self._segments) > 1
                else self.last_seq
            )
            unread = last - max(self._read_seq, oldest.first_seq - 1)
            self._delete(oldest)
            self.at_bound = True
            self.evicted += max(0, unread)
            self._read_seq = max(self._read_seq, last)
            if last > self.delivered:
                self.delivered = last
                moved = True
        if moved:
            # Best effort: the segments are gone, so even the old cursor
            # cannot make their records be read again.
            with contextlib.suppress(OSError):
                self._save_cursor()

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
        # Nothing goes out that is not in the file first.
        self.write_pending()
        if self._tail is not None:
            return self._read_tail(limit)
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
        if self._read_seq >= self.last_seq and self._tail_limit:
            # Caught up: what comes next is kept in memory for the reader.
            self._start_tail()
        return entries

    def _start_tail(self) -> None:
        self._tail = []
        self._tail_start = self._tail_bytes = 0
        if self._reader is not None:
            # Reading the files again (after the tail overflowed) starts
            # from the segment of the read position, skipping what was read.
            self._reader.close()
            self._reader = None
            self._reader_segment = None

    def _read_tail(self, limit: int) -> list[SpoolEntry]:
        tail = self._tail
        assert tail is not None
        start, end = self._tail_start, len(tail)
        read_seq = self._read_seq
        # Commits and evictions may have moved the read position past some.
        while start < end and tail[start].seq <= read_seq:
            self._tail_bytes -= len(tail[start].line) + 1
            start += 1
        entries = tail[start : start + limit]
        if entries:
            self._read_seq = entries[-1].seq
            self._tail_bytes -= sum(len(entry.line) for entry in entries) + len(entries)
            start += len(entries)
        if start >= end:
            tail.clear()
            self._tail_start = self._tail_bytes = 0
        elif start > 4096:
            del tail[:start]
            self._tail_start = 0
        else:
            self._tail_start = start
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

        Segments are deleted first, so that a full disk gets its space back
        before the cursor is written; then the cursor is overwritten in
        place, which needs no new space.

        :param seq: the last delivered seq.
        :raises OSError: if the cursor cannot be written (it stays moved in
            memory; a restart would resend the delivered records that are
            still in a segment), or a delivered segment cannot be deleted.
        """
        if seq <= self.delivered:
            return
        self.delivered = seq
        self._read_seq = max(self._read_seq, seq)
        try:
            self._discard_delivered()
        finally:
            self._save_cursor()
        if self.at_bound and self.max_bytes is not None:
            self.at_bound = self.disk_bytes > self.max_bytes // 2

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
        self._bytes -= segment.size
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
        # Lost records are counted in ``lost``; the owner writes the buffer
        # itself first to hear of it.
        with contextlib.suppress(OSError):
            self.write_pending()
        self._close_writer()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        try:
            self._discard_delivered()
        finally:
            if self._cursor_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._cursor_fd)
                self._cursor_fd = None
            # Keep state.json's cursor current for readers of the layout
            # (and earlier versions); the cursor file is what counts.
            with contextlib.suppress(OSError):
                self._save_state(self.source, self.delivered)
            self._lock.unlock()


def _parse_seq(line: bytes) -> int | None:
    """
    The seq of one stored line, or ``None`` if it is not a whole record.
    """
    if not line.endswith(b"\n"):
        # Torn by a crash or a failed write.
        return None
    if line.startswith(b'{"seq":') and line.endswith(b"}\n") and b"\0" not in line:
        # Every line this spool writes starts with its seq: read that
        # rather than decode the whole record, on every line sent.  A power
        # cut can leave blocks of zeros in a file; they are never in a line
        # written whole, so such a line is still refused.
        end = line.find(b",", 7)
        digits = line[7 : end if end >= 0 else -2]
        if digits.isdigit() and not digits.startswith(b"0"):
            return int(digits)
    try:
        record = json.loads(line)
    except ValueError:
        return None
    seq = record.get("seq") if isinstance(record, dict) else None
    return seq if type(seq) is int and seq > 0 else None


def _format_slot(seq: int) -> bytes:
    digits = f"{seq:020d}".encode()
    text = b"%s %08x" % (digits, zlib.crc32(digits))
    return text.ljust(_SLOT_BYTES - 1) + b"\n"


def _parse_slot(data: bytes) -> int | None:
    """
    The seq in one cursor slot, or ``None`` if it is not a whole, intact
    slot.
    """
    fields = data.split()
    if len(data) != _SLOT_BYTES or len(fields) != 2:
        return None
    digits, crc = fields
    if not digits.isdigit() or crc != b"%08x" % zlib.crc32(digits):
        return None
    return int(digits)
