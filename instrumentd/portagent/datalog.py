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
import os
import time
from typing import BinaryIO, Final, cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from instrumentd.datalogfiles import recorded_files
from instrumentd.interfaces import IDataLog

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

#: After an error, a fresh file is tried at most this often (seconds), so a
#: full disk costs one failed open per second, not one per packet.
_RETRY_INTERVAL: Final = 1.0

#: After the first error is logged, further errors are summed into at most
#: one message per this many seconds.
_ERROR_LOG_INTERVAL: Final = 60.0

#: Give up looking for a free ``-N`` name after this many taken ones, so a
#: misbehaving filesystem cannot hang the reactor in a loop.
_MAX_SUFFIX: Final = 100_000


def _open_exclusive(path: str) -> BinaryIO:
    """
    Create ``path`` and open it for buffered binary writing.

    Mode ``x`` (``O_EXCL``) makes the kernel refuse a name that exists, so a
    file left by an earlier run can never be appended to or truncated.

    :param path: the file to create.
    :returns: the open file.
    :raises FileExistsError: if ``path`` exists.
    :raises OSError: if it cannot be created.
    """
    return open(path, "xb", buffering=_BUFFER_SIZE)


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
    :meth:`close`: the file is abandoned, the error is counted in
    :attr:`write_errors` and logged (the first at once, then at most one
    summary a minute), packets are dropped and counted in
    :attr:`bytes_dropped`, and a later write tries a fresh file, at most once
    a second.

    :ivar path: the file currently written, or ``""`` when none is open
        (before the first open, after an error, after :meth:`close`).
    :ivar size: bytes written to the current file, buffered ones included.
    :ivar files_opened: files created so far.
    :ivar bytes_written: bytes accepted into files so far, all files.
    :ivar bytes_dropped: bytes of packets that could not be recorded because
        of an error.
    :ivar write_errors: operating-system errors met so far (opening,
        writing, flushing or closing a file).
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

        self.path = ""
        self.size = 0
        self.files_opened = 0
        self.bytes_written = 0
        self.bytes_dropped = 0
        self.write_errors = 0

        self._file: BinaryIO | None = None
        self._closed = False
        self._boundary: float | None = None
        self._boundary_call: IDelayedCall | None = None
        self._flush_call: IDelayedCall | None = None
        self._retry_at = float("-inf")
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
        self._failing = False

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
        ``flush_interval``.  Errors are logged and counted, not raised.

        :param packet: one encoded packet.
        :raises RuntimeError: if the datalog was closed.
        """
        self._check_open("write")
        now = self._clock.seconds()
        size = len(packet)
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
            file = None if now < self._retry_at else self._open_file(now)
        if file is None:
            self.bytes_dropped += size
            return
        try:
            file.write(packet)
        except OSError as error:
            self.bytes_dropped += size
            self._fail("writing", error)
            return
        self.size += size
        self.bytes_written += size
        if self._flush_call is None:
            # One timer per batch of unflushed writes: none while idle, and
            # none per packet.
            self._flush_call = self._clock.callLater(
                self._flush_interval, self._flush_due
            )

    def rotate(self) -> str:
        """
        Close the current file now and open a new one (the command port's
        ``rotate``).  This also retries at once after an error.

        :returns: the path of the file closed, or ``""`` if none was open.
        :raises RuntimeError: if the datalog was closed.
        """
        self._check_open("rotate")
        closed = self._close_file()
        self._open_file(self._clock.seconds())
        return closed

    def flush(self) -> None:
        """
        Push buffered bytes to the operating system (not to the disk: see
        :meth:`close`).  Errors are logged and counted, not raised.
        """
        self._cancel_flush()
        if self._file is None:
            return
        try:
            self._file.flush()
        except OSError as error:
            self._fail("flushing", error)

    def close(self) -> None:
        """
        Flush, fsync and close the current file, and cancel every timer.
        Later writes raise :class:`RuntimeError`; closing again does
        nothing.  Errors are logged and counted, not raised.
        """
        if self._closed:
            return
        self._close_file(sync=True)
        self._closed = True
        if self._summary_call is not None:
            self._summary_call.cancel()
            self._summary_call = None
            self._log_summary()

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise RuntimeError(f"cannot {action} datalog {self._name!r}: it is closed")

    def _open_file(self, now: float) -> BinaryIO | None:
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
            os.makedirs(parent, exist_ok=True)
            while True:
                try:
                    file = _open_exclusive(path)
                    break
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
        self.files_opened += 1
        if self._failing:
            self._failing = False
            self.log.info(
                "Datalog {name} recording again in {path} after {errors} errors",
                name=self._name,
                path=path,
                errors=self.write_errors,
            )
        if self._period is not None:
            self._boundary = float((whole // self._period + 1) * self._period)
            self._boundary_call = self._clock.callLater(
                self._boundary - now, self._boundary_due
            )
        return file

    def _close_file(self, sync: bool = False) -> str:
        """
        Close the current file, if any, and cancel its timers.

        :param sync: also fsync it, so it survives a power cut.
        :returns: the path closed, or ``""``.
        """
        self._cancel_flush()
        if self._boundary_call is not None:
            if self._boundary_call.active():
                self._boundary_call.cancel()
            self._boundary_call = None
        self._boundary = None
        file, path = self._file, self.path
        self._file = None
        self.path = ""
        self.size = 0
        if file is None:
            return ""
        try:
            try:
                if sync:
                    file.flush()
                    os.fsync(file.fileno())
            finally:
                file.close()
        except OSError as error:
            self._fail("closing", error, path)
        return path

    def _cancel_flush(self) -> None:
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None

    def _flush_due(self) -> None:
        self._flush_call = None
        self.flush()

    def _boundary_due(self) -> None:
        self._boundary_call = None
        self._close_file()
        self._open_file(self._clock.seconds())

    def _fail(self, action: str, error: OSError, path: str | None = None) -> None:
        """
        Count and report an error, abandon the current file, and hold off
        the next attempt for :data:`_RETRY_INTERVAL`.
        """
        path = self.path if path is None else path
        self.write_errors += 1
        self._failing = True
        file, self._file = self._file, None
        if file is not None:
            # Whatever is still buffered cannot be trusted to reach the
            # file; closing releases the descriptor even if it cannot.
            with contextlib.suppress(OSError):
                file.close()
        self._close_file()
        now = self._clock.seconds()
        self._retry_at = now + _RETRY_INTERVAL
        self._last_error = f"{action} {path}: {error}"
        if now >= self._quiet_until:
            self.log.error(
                "Datalog {name} error {action} {path}: {error}; packets are "
                "dropped until a new file opens",
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
