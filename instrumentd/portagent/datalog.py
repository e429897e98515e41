# -*- test-case-name: tests.test_datalog -*-
"""
The port agent's always-on binary datalog, rotated on UTC boundaries.

Every packet a port agent handles is appended, already encoded, to a file
that is a plain concatenation of packets (see ``doc/packet.md``).  Files are
written directly at their final place and never renamed::

    <directory>/<YYYY>/<MM>/<DD>/<name>_<YYYYMMDD>T<HHMMSS>Z.datalog

where the date and time are the UTC time the file was opened.  A file whose
name is already taken (a restart, or a size rotation, within the same second)
gets ``-1``, ``-2``, ... before ``.datalog``; an existing file is never
appended to or overwritten.  Because ``-`` sorts before ``.``, plain name
order is *not* write order: use :func:`datalog_files` to list a datalog.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from bisect import bisect_right
from collections.abc import Callable
from typing import Final, Protocol, cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from instrumentd.datalogfiles import recorded_files
from instrumentd.interfaces import IDataLog
from instrumentd.portagent.flushgroup import flush_group

__all__ = ["ROTATE_PERIODS", "DataLog", "datalog_files"]

#: The time rotation policies and their period in seconds.  UTC has no leap
#: seconds in POSIX time, so every day is exactly 86400 s and the boundaries
#: are plain multiples of the period.
ROTATE_PERIODS: Final[dict[str, int | None]] = {
    "daily": 86_400,
    "hourly": 3_600,
    "none": None,
}

#: The write buffer.  Packets are up to 64 KiB; a few of them per system
#: call keeps the syscall rate low at tens of MB/s, and what a kill -9 can
#: lose stays bounded by this plus one flush interval.
_BUFFER_SIZE: Final = 256 * 1024

#: Every this many bytes written to a file, the datalog tells the kernel it
#: will not read back what it wrote (``posix_fadvise`` ``DONTNEED``).  The
#: first advice over a range starts its writeback; the next one, a step
#: later, drops its now clean pages.  Without it a stream of hundreds of
#: MB/s fills the page cache, and every write then pays for reclaiming
#: pages: measured here, 3 GB written cost 5-7 s of CPU without it and
#: about 1-1.7 s with it; the agent then relays about 1.7 times as fast
#: (``bench/README.md``).  Large enough that a slow
#: instrument advises rarely (every few hours at 1 kB/s).
_ADVISE_STEP: Final = 8 * 1024 * 1024

#: After an error, the next attempt waits this long (seconds), doubling
#: after each failed attempt up to :data:`_RETRY_MAX`: a full disk costs one
#: failed write every few seconds, not one per packet, and recording resumes
#: within :data:`_RETRY_MAX` of space being freed.
_RETRY_INITIAL: Final = 1.0
_RETRY_MAX: Final = 8.0

#: After the first error is logged, further errors are summed into at most
#: one message per this many seconds.
_ERROR_LOG_INTERVAL: Final = 60.0

#: Give up looking for a free ``-N`` name after this many taken ones, so a
#: misbehaving filesystem cannot hang the reactor in a loop.
_MAX_SUFFIX: Final = 100_000


class RawFile(Protocol):
    """
    What the datalog needs of an open file: an unbuffered binary file such
    as :class:`io.FileIO`, whose ``write`` says how many bytes it took.
    """

    def write(self, data: memoryview, /) -> int | None: ...

    def truncate(self, size: int, /) -> int: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


def _open_exclusive(path: str) -> RawFile:
    """
    Create ``path`` and open it for unbuffered binary writing.

    ``O_EXCL`` makes the kernel refuse a name that exists, so a
    file left by an earlier run can never be appended to or truncated.
    Unbuffered, because the datalog keeps its own buffer: it must know
    exactly which bytes reached the file when a write fails.

    :param path: the file to create.
    :returns: the open file.
    :raises FileExistsError: if ``path`` exists.
    :raises OSError: if it cannot be created.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
    # O_APPEND: after a failed write is cut back with truncate, the next
    # write lands at the new end, not at the old file position.
    return open(fd, "ab", buffering=0)


#: Folders made (or found) by a datalog of this process: an in-process
#: agent's day folder is every other's, and a makedirs that finds it costs a
#: lookup and a failed mkdir at each agent's start.
_FOLDERS: set[str] = set()


def _make_folder(path: str) -> None:
    """
    Make ``path`` and its parents as needed, and remember it in
    :data:`_FOLDERS`.
    """
    _FOLDERS.discard(path)
    os.makedirs(path, exist_ok=True)
    if len(_FOLDERS) >= 4096:
        _FOLDERS.clear()
    _FOLDERS.add(path)


def _drop_cached(fd: int, start: int, length: int) -> None:
    """
    Advise the kernel that bytes ``start`` to ``start + length`` of the
    file will not be read back: it starts writing back the dirty ones and
    drops the clean ones from the page cache.  Advice only: nothing is
    raised, and where the call does not exist nothing is done.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, start, length, os.POSIX_FADV_DONTNEED)


def _file_name(name: str, stamp: str, suffix: int) -> str:
    return f"{name}_{stamp}Z{f'-{suffix}' if suffix else ''}.datalog"


def datalog_files(directory: str, name: str) -> list[str]:
    """
    List the files of one datalog in the order they were written.

    :param directory: the datalog's top directory.
    :param name: the datalog's name (the instrument's reference designator).
    :returns: the paths, oldest first; empty if there are none.
    """
    return [str(p) for p in recorded_files(directory, name)]


@implementer(IDataLog)
class DataLog:
    """
    An append-only binary record of packets, rotated by UTC time and size.

    Written here rather than with :class:`twisted.python.logfile.LogFile`
    or ``DailyLogFile``: those rename the live file when they rotate (ours
    are written at their final name), rotate on local time, silently skip a
    rotation whose target exists or is not writable, and raise on write
    errors, while the instrument reader must never be stopped by the datalog.

    Time rotation is eager: a timer closes the file at the UTC boundary and
    opens the next one at once, even if no packet arrives, so no file spans
    a boundary, every file is closed on time, and each period of a running
    agent has a file (an empty one if the instrument was silent).  A write
    that finds the boundary passed before the timer ran rotates too.  A
    rotated file is flushed and closed; only :meth:`close` also fsyncs, so
    frequent size rotations do not stall the reactor on the disk.

    Errors (a full disk, a missing permission) never raise out of
    :meth:`write`, :meth:`rotate`, :meth:`flush`, :meth:`open` or
    :meth:`close`.  Every byte is accounted for: a packet is either in a
    file whole, still buffered, or counted in :attr:`bytes_dropped`.  When a
    write fails part-way, the file is cut back to the end of its last whole
    packet, so it stays a plain concatenation of packets, and everything
    after that point is counted as dropped.  The error is counted in
    :attr:`write_errors` and logged (the first at once, then at most one
    summary a minute), and packets are dropped and counted until the next
    attempt, which waits 1 s, then 2 s, 4 s, up to 8 s while errors go on.
    The attempt writes to the same file again, so a full disk does not make
    a new empty file at every attempt; only a file that could not be
    created, could not be cut back, or was deleted meanwhile is replaced.

    :ivar path: the file currently written, or ``""`` when none is open
        (before the first open, after an error that lost the file, after
        :meth:`close`).
    :ivar size: bytes in the current file, buffered ones included.
    :ivar files_opened: files created so far.
    :ivar bytes_written: bytes handed to the operating system, all files:
        whole packets only.
    :ivar bytes_buffered: bytes held in the datalog's own buffer now.
    :ivar bytes_dropped: bytes of packets that could not be recorded because
        of an error.  Every packet given to :meth:`write` is counted in
        exactly one of ``bytes_written``, ``bytes_buffered`` and this.
    :ivar write_errors: operating-system errors met so far (opening,
        writing, flushing or closing a file).
    :ivar failing: whether the last attempt to record failed.
    """

    log = Logger()

    def __init__(
        self,
        directory: str,
        name: str,
        *,
        rotate: str = "daily",
        rotate_size: int = 0,
        flush_interval: float = 1.0,
        reactor: IReactorTime | None = None,
        on_trouble: Callable[[str], None] | None = None,
    ) -> None:
        """
        :param directory: the top directory; created as needed.
        :param name: the datalog's name, the start of every file name.
        :param rotate: ``"daily"``, ``"hourly"`` or ``"none"``; boundaries
            are in UTC.
        :param rotate_size: start a new file rather than let one grow past
            this many bytes; 0 is no size limit.
        :param flush_interval: the longest time, in seconds, written bytes
            stay in the buffer.
        :param reactor: the clock for timestamps and timers; ``None`` for
            the global reactor.
        :param on_trouble: called (from the reactor, never from inside a
            datalog method) with a sentence for operators when recording
            starts failing and when it works again.
        :raises ValueError: for an unknown policy, a negative size, a
            non-positive flush interval, or a name that is not a plain file
            name.
        """
        if rotate not in ROTATE_PERIODS:
            raise ValueError(
                f"rotate must be one of {', '.join(ROTATE_PERIODS)}, not {rotate!r}"
            )
        if rotate_size < 0:
            raise ValueError(f"rotate_size must be >= 0, not {rotate_size}")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be > 0, not {flush_interval}")
        if not name or name in (".", "..") or "/" in name or os.sep in name:
            raise ValueError(f"datalog name must be a plain file name: {name!r}")
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = cast(IReactorTime, global_reactor)
        self._clock: IReactorTime = reactor
        self._directory = directory
        self._name = name
        self._period = ROTATE_PERIODS[rotate]
        self._rotate_size = rotate_size
        self._flush_interval = flush_interval
        self._on_trouble = on_trouble

        self.path = ""
        self.size = 0
        self.files_opened = 0
        self.bytes_written = 0
        self.bytes_dropped = 0
        self.write_errors = 0
        self.failing = False

        self._file: RawFile | None = None
        # Bytes of the current file that reached the operating system.
        self._on_disk = 0
        # The page-cache advice, in the current file: the next advice
        # covers _advise_from to _on_disk, and is due when _on_disk reaches
        # _advise_at; the last one ended at _advised_to.
        self._advise_from = self._advised_to = 0
        self._advise_at = _ADVISE_STEP
        # Our own write buffer, and where each packet in it ends, so that a
        # write that fails part-way can be cut back to a packet boundary.
        self._buffer = bytearray()
        self._ends: list[int] = []
        self._closed = False
        self._boundary: float | None = None
        self._boundary_call: IDelayedCall | None = None
        # One timer for every datalog of this clock and interval (a station
        # of thousands of agents would otherwise file a timer per sample).
        self._flush_group = flush_group(reactor, flush_interval)
        self._flush_waiting = False
        self._retry_at = float("-inf")
        self._retry_delay = _RETRY_INITIAL
        # Whether the write under way is the attempt after an error.
        self._attempting = False
        # The stamp of the last file opened and the next suffix to try for
        # it, so size rotations within one second do not probe every taken
        # name again.
        self._last_stamp = ""
        self._next_suffix = 0
        # Error reporting: errors before _quiet_until are only counted, and
        # summed up by _summary_call.
        self._quiet_until = float("-inf")
        self._suppressed = 0
        self._last_error = ""
        self._summary_call: IDelayedCall | None = None

    @property
    def bytes_buffered(self) -> int:
        """
        Bytes waiting in the datalog's buffer.
        """
        return len(self._buffer)

    def open(self) -> None:
        """
        Open the first file now, if none is open (call it when the agent
        starts; :meth:`write` also opens lazily).  An error is logged and
        counted, not raised.

        :raises RuntimeError: if the datalog was closed.
        """
        self._check_open("open")
        if self._file is None:
            self._open_file(self._clock.seconds())

    def write(self, packet: bytes) -> None:
        """
        Append one encoded packet.

        It goes to a new file first if the current one was opened before
        the last UTC boundary, or if it would take the file past
        ``rotate_size`` (a packet is never split; a larger one gets a fresh
        file of its own).  It is buffered and flushed within
        ``flush_interval``.  While recording fails, packets are dropped and
        counted until the next attempt is due; the packet that finds it due
        is written at once, as the attempt.  Errors are logged and counted,
        not raised.

        :param packet: one encoded packet.
        :raises RuntimeError: if the datalog was closed.
        """
        if self._closed:
            self._check_open("write")
        now = self._clock.seconds()
        size = len(packet)
        if self.failing and (now < self._retry_at or not self._start_attempt(now)):
            self.bytes_dropped += size
            return
        file = self._file
        if file is not None and (
            (self._boundary is not None and now >= self._boundary)
            or (
                self._rotate_size and self.size and self.size + size > self._rotate_size
            )
        ):
            self._close_file()
            file = self._open_file(now)
        elif file is None:
            file = self._open_file(now)
        if file is None or self.failing:
            # No file, or writing out the last one's buffer just failed.
            self.bytes_dropped += size
            return
        buffer = self._buffer
        buffer += packet
        end = len(buffer)
        self._ends.append(end)
        self.size += size
        if end >= _BUFFER_SIZE or self._attempting:
            self._write_out()
        elif not self._flush_waiting:
            # One join per batch of unflushed writes: none while idle, and
            # none per packet.
            self._flush_waiting = True
            self._flush_group.join(self, self._flush_due)

    def rotate(self) -> str:
        """
        Close the current file now and open a new one (the command port's
        ``rotate``).  This also retries at once after an error.

        :returns: the path of the file closed, or ``""`` if none was open.
        :raises RuntimeError: if the datalog was closed.
        """
        self._check_open("rotate")
        closed = self._close_file()
        if self._open_file(self._clock.seconds()) is not None and self.failing:
            # Retry at once: the next packet is the attempt.
            self._retry_at = float("-inf")
        return closed

    def flush(self) -> None:
        """
        Push buffered bytes to the operating system (not to the disk: see
        :meth:`close`).  Errors are logged and counted, not raised.
        """
        self._cancel_flush()
        if self._file is not None and self._buffer:
            self._write_out()

    def close(self, sync: bool = True) -> None:
        """
        Flush, fsync and close the current file, and cancel every timer.
        Later writes raise :class:`RuntimeError`; closing again does
        nothing.  Errors are logged and counted, not raised.

        :param sync: fsync the file; ``False`` where the caller syncs the
            file system once for many datalogs (a station stopping
            thousands of in-process agents: one fsync each took 3 to 4 ms
            of its reactor, most of a minute at 5,000).
        """
        if self._closed:
            return
        self._close_file(sync=sync)
        self._closed = True
        if self._summary_call is not None:
            self._summary_call.cancel()
            self._summary_call = None
            self._log_summary()

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise RuntimeError(f"cannot {action} datalog {self._name!r}: it is closed")

    def _start_attempt(self, now: float) -> bool:
        """
        The next attempt after an error is due: make sure there is a file to
        write to (the same one, unless it is gone), so that the caller's
        packet can be the attempt.

        :returns: whether there is a file to try.
        """
        self.failing, self._attempting = False, True
        file = self._file
        if file is not None:
            try:
                gone = os.fstat(file.fileno()).st_nlink == 0
            except OSError:
                gone = True
            if gone:
                # Someone deleted it (to free space, say): writing on would
                # fill an invisible file that holds its space until closed.
                self._abandon()
                file = None
        if file is None:
            file = self._open_file(now)
        return file is not None

    def _write_out(self) -> None:
        """
        Hand the buffer to the operating system.  If that fails part-way,
        cut the file back to its last whole packet, count everything after
        it as dropped, and report the error.
        """
        file = self._file
        buffer = self._buffer
        if file is None or not buffer:
            return
        done = 0
        error: OSError | None = None
        with memoryview(buffer) as view:
            try:
                while done < len(buffer):
                    count = file.write(view[done:])
                    if not count:
                        # Taking nothing without an error is a full disk in
                        # all but name.
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    done += count
            except OSError as e:
                error = e
        whole = done
        if error is not None and done:
            # Where the last packet wholly written ends.
            index = bisect_right(self._ends, done)
            whole = self._ends[index - 1] if index else 0
        self._on_disk += whole
        self.bytes_written += whole
        self.bytes_dropped += len(buffer) - whole
        self._buffer = bytearray()
        self._ends = []
        self.size = self._on_disk
        if error is None:
            if self._attempting:
                self._recovered()
            if self._on_disk >= self._advise_at:
                self._advise(file)
            return
        cut_back = True
        if done != whole:
            try:
                file.truncate(self._on_disk)
            except OSError:
                cut_back = False
        self._fail("writing", error)
        if not cut_back:
            # Part of a packet stays at the end of this file: never write
            # after it, or a reader would find junk mid-file.  The next
            # attempt opens a new file.
            self._abandon()

    def _advise(self, file: RawFile) -> None:
        """
        Tell the kernel the file's bytes written so far, from where the
        last advice started, will not be read back (see
        :data:`_ADVISE_STEP`): the previous step's pages, written back
        since, are dropped, and this step's start their writeback.
        """
        start, end = self._advise_from, self._on_disk
        _drop_cached(file.fileno(), start, end - start)
        # The next advice starts where this one's new bytes did.
        self._advise_from, self._advised_to = self._advised_to, end
        self._advise_at = end + _ADVISE_STEP

    def _recovered(self) -> None:
        self._attempting = False
        self._retry_delay = _RETRY_INITIAL
        self.log.info(
            "Datalog {name} recording again in {path} after {errors} errors; "
            "{dropped} bytes dropped in all",
            name=self._name,
            path=self.path,
            errors=self.write_errors,
            dropped=self.bytes_dropped,
        )
        self._tell(
            f"datalog recording again in {self.path}; {self.bytes_dropped} bytes of "
            "packets could not be recorded since the agent started "
            "(get_stats datalog.bytes_dropped)"
        )

    def _tell(self, message: str) -> None:
        if self._on_trouble is not None:
            # Never from inside a datalog method: the callback may well
            # publish a packet, which would write to this datalog.
            self._clock.callLater(0, self._told, message)

    def _told(self, message: str) -> None:
        if self._on_trouble is not None and not self._closed:
            self._on_trouble(message)

    def _open_file(self, now: float) -> RawFile | None:
        """
        Create the file for time ``now`` and arm the boundary timer.

        :returns: the file, or ``None`` after an error (logged and counted).
        """
        whole = int(now // 1)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(whole))
        parent = os.path.join(self._directory, stamp[:4], stamp[4:6], stamp[6:8])
        if stamp != self._last_stamp:
            self._last_stamp, self._next_suffix = stamp, 0
        path = os.path.join(parent, _file_name(self._name, stamp, self._next_suffix))
        try:
            made = parent not in _FOLDERS
            if made:
                _make_folder(parent)
            while True:
                try:
                    file = _open_exclusive(path)
                    break
                except FileNotFoundError:
                    if made:
                        raise
                    # Removed since it was made: make it again, once.
                    made = True
                    _make_folder(parent)
                except FileExistsError:
                    # Never append to or overwrite an earlier file, and never
                    # skip the rotation: take the next free suffix.
                    if self._next_suffix >= _MAX_SUFFIX:
                        raise
                    self._next_suffix += 1
                    path = os.path.join(
                        parent, _file_name(self._name, stamp, self._next_suffix)
                    )
        except OSError as error:
            self._fail("opening", error, path)
            return None
        self._next_suffix += 1
        self._file = file
        self.path = path
        self.size = 0
        self._on_disk = 0
        self._advise_from = self._advised_to = 0
        self._advise_at = _ADVISE_STEP
        self.files_opened += 1
        if self._period is not None:
            self._boundary = float((whole // self._period + 1) * self._period)
            self._boundary_call = self._clock.callLater(
                self._boundary - now, self._boundary_due
            )
        return file

    def _close_file(self, sync: bool = False) -> str:
        """
        Write out the buffer, close the current file, if any, and cancel its
        timers.

        :param sync: also fsync it, so it survives a power cut.
        :returns: the path closed, or ``""``.
        """
        self._cancel_flush()
        self._write_out()
        self._cancel_boundary()
        file, path = self._file, self.path
        self._file = None
        self.path = ""
        self.size = self._on_disk = 0
        if file is None:
            return ""
        try:
            try:
                if sync:
                    os.fsync(file.fileno())
            finally:
                file.close()
        except OSError as error:
            self._fail("closing", error, path)
        return path

    def _abandon(self) -> None:
        """
        Give up the current file (nothing is buffered for it) without
        writing to it again.
        """
        self._cancel_flush()
        self._cancel_boundary()
        file = self._file
        self._file = None
        self.path = ""
        self.size = self._on_disk = 0
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def _cancel_boundary(self) -> None:
        if self._boundary_call is not None:
            if self._boundary_call.active():
                self._boundary_call.cancel()
            self._boundary_call = None
        self._boundary = None

    def _cancel_flush(self) -> None:
        if self._flush_waiting:
            self._flush_waiting = False
            self._flush_group.leave(self)

    def _flush_due(self) -> None:
        self._flush_waiting = False
        self.flush()

    def _boundary_due(self) -> None:
        self._boundary_call = None
        self._close_file()
        self._open_file(self._clock.seconds())

    def _fail(self, action: str, error: OSError, path: str | None = None) -> None:
        """
        Count and report an error and hold off the next attempt: 1 s after
        the first error, twice as long after each failed attempt, at most
        :data:`_RETRY_MAX`.  The file is kept for that attempt.
        """
        path = self.path if path is None else path
        self.write_errors += 1
        now = self._clock.seconds()
        if self._attempting:
            self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)
        elif not self.failing:
            self._tell(
                f"datalog cannot record: error {action} {path}: {error}; packets "
                "are dropped and counted (get_stats datalog.bytes_dropped) until "
                "it can"
            )
        self._attempting = False
        self.failing = True
        self._retry_at = now + self._retry_delay
        self._cancel_flush()
        self._last_error = f"{action} {path}: {error}"
        if now >= self._quiet_until:
            self.log.error(
                "Datalog {name} error {action} {path}: {error}; packets are "
                "dropped and counted until the next attempt",
                name=self._name,
                action=action,
                path=path,
                error=str(error),
                errno=error.errno,
            )
            self._quiet_until = now + _ERROR_LOG_INTERVAL
            return
        self._suppressed += 1
        if self._summary_call is None and not self._closed:
            self._summary_call = self._clock.callLater(
                self._quiet_until - now, self._summary_due
            )

    def _summary_due(self) -> None:
        self._summary_call = None
        self._log_summary()
        self._quiet_until = self._clock.seconds() + _ERROR_LOG_INTERVAL

    def _log_summary(self) -> None:
        if self._suppressed:
            self.log.error(
                "Datalog {name}: {count} more errors; the last one {last}",
                name=self._name,
                count=self._suppressed,
                last=self._last_error,
            )
            self._suppressed = 0
