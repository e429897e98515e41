"""
Tests for L{instrumentd.portagent.datalog}: file layout and naming, UTC
rotation by day, hour and size, name collisions, flushing, error handling,
and a property that no byte is ever lost, duplicated or split.
"""

from __future__ import annotations

import errno
import itertools
import os
import shutil
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from instrumentd.interfaces import IDataLog
from instrumentd.packet import (
    MAX_PAYLOAD_SIZE,
    PacketParser,
    PacketType,
    encode_packet,
    unix_to_ntp,
)
from instrumentd.portagent import datalog
from instrumentd.portagent.datalog import DataLog, datalog_files

NAME = "CE01ISSM-MFD37-03-CTDBPC000"


def utc(text: str) -> float:
    """
    Unix time of an ISO 8601 UTC time without zone, e.g.
    ``2026-11-24T23:59:59.5``.
    """
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def packet(payload: bytes, when: float = 0.0) -> bytes:
    """
    An encoded instrument-data packet stamped ``when`` (Unix time).
    """
    seconds, fraction = unix_to_ntp(when)
    return encode_packet(PacketType.DATA_FROM_INSTRUMENT, payload, seconds, fraction)


def read(path: str) -> bytes:
    """
    The bytes on disk at ``path``, read through a separate file object.
    """
    with open(path, "rb") as f:
        return f.read()


class Disk:
    """
    A pretend disk: how many more bytes the files on it may take.
    """

    def __init__(self, room: int) -> None:
        self.room = room


class FaultyFile:
    """
    A fault-injecting file object: a real file that takes only as many
    bytes as its L{Disk} has room for, like a file on a file system that
    fills up (a short write, then C{ENOSPC}).
    """

    def __init__(self, real: datalog.RawFile, disk: Disk) -> None:
        self.real = real
        self.disk = disk
        self.length = 0

    def write(self, data: memoryview) -> int:
        count = min(len(data), self.disk.room)
        if not count:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.real.write(data[:count])
        assert written == count
        self.disk.room -= count
        self.length += count
        return count

    def truncate(self, size: int) -> int:
        self.disk.room += self.length - size
        self.length = size
        return self.real.truncate(size)

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        self.real.close()


def expected_path(directory: str, stamp: str, suffix: str = "") -> str:
    """
    Where the contract says a file opened at ``stamp`` (YYYYMMDDTHHMMSS)
    must be.
    """
    return os.path.join(
        directory, stamp[:4], stamp[4:6], stamp[6:8], f"{NAME}_{stamp}Z{suffix}.datalog"
    )


class _DataLogTestMixin(SynchronousTestCase):
    """
    Builds a L{DataLog} on a L{Clock} in a fresh directory.
    """

    def make_log(
        self, start: str | float, **kwargs: object
    ) -> tuple[DataLog, Clock, str]:
        """
        A datalog in a new directory, its clock set to ``start``; closed
        when the test ends.
        """
        clock = Clock()
        clock.advance(utc(start) if isinstance(start, str) else start)
        directory = self.mktemp()
        log = DataLog(directory, NAME, reactor=clock, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(log.close)
        return log, clock, directory


class DataLogLayoutTests(_DataLogTestMixin):
    """
    Where files go, what they are called and what they hold.
    """

    def test_provides(self) -> None:
        """
        L{DataLog} provides L{IDataLog}, before and after it opens a file.
        """
        log, _clock, _directory = self.make_log(0)
        self.assertTrue(verifyObject(IDataLog, log))
        log.open()
        self.assertTrue(verifyObject(IDataLog, log))

    def test_openCreatesUtcPath(self) -> None:
        """
        C{open} creates C{<dir>/YYYY/MM/DD/<name>_YYYYMMDDTHHMMSSZ.datalog}
        stamped with the UTC second it was opened in.
        """
        log, _clock, directory = self.make_log("2026-11-24T13:05:09.75")
        self.assertEqual(log.path, "")
        log.open()
        path = expected_path(directory, "20261124T130509")
        self.assertEqual(log.path, path)
        self.assertTrue(os.path.isfile(path))
        self.assertEqual((log.size, log.files_opened), (0, 1))

    def test_folderMadeOnce(self) -> None:
        """
        A day's folder is made once in a process, not again by every
        datalog that opens a file in it; one removed since is made again
        and the file opened in it.
        """
        made: list[str] = []
        real = os.makedirs

        def makedirs(path: str, exist_ok: bool = False) -> None:
            # The day's folder only, not its parents (made by recursion).
            if path.endswith("24"):
                made.append(path)
            real(path, exist_ok=exist_ok)

        self.patch(os, "makedirs", makedirs)
        self.patch(datalog, "_FOLDERS", set())
        log, _clock, directory = self.make_log("2026-11-24T13:05:09")
        log.open()
        other = DataLog(directory, "OTHER01", reactor=_clock)
        self.addCleanup(other.close)
        other.open()
        folder = os.path.join(directory, "2026", "11", "24")
        self.assertEqual(made, [folder])
        other.close()
        shutil.rmtree(folder)
        again = DataLog(directory, "AGAIN01", reactor=_clock)
        self.addCleanup(again.close)
        again.open()
        self.assertEqual(made, [folder, folder])
        self.assertTrue(os.path.isfile(again.path))
        self.assertEqual(again.write_errors, 0)

    def test_openTwiceKeepsFile(self) -> None:
        """
        A second C{open} keeps writing the same file.
        """
        log, clock, _directory = self.make_log("2026-11-24T13:05:09")
        log.open()
        first = log.path
        clock.advance(5)
        log.open()
        self.assertEqual((log.path, log.files_opened), (first, 1))

    def test_writeOpensLazily(self) -> None:
        """
        C{write} without C{open} opens the file, stamped at that write.
        """
        log, clock, directory = self.make_log("2026-11-24T13:05:09")
        clock.advance(2)
        log.write(packet(b"x"))
        self.assertEqual(log.path, expected_path(directory, "20261124T130511"))

    def test_contentsArePackets(self) -> None:
        """
        The file is exactly the concatenation of the packets written;
        C{size} counts them, buffered bytes included, and C{bytes_written}
        those handed to the operating system.
        """
        log, clock, _directory = self.make_log("2026-11-24T13:05:09")
        log.open()
        packets = [
            packet(b"", clock.seconds()),
            packet(b"#23.4721, 0.00012, 1.432\r\n", clock.seconds()),
            packet(b"\xa3\x9d\x7a" * 100, clock.seconds()),
            packet(bytes(range(256)) * 255 + b"\x00" * 239, clock.seconds()),
        ]
        for p in packets:
            log.write(p)
        total = sum(map(len, packets))
        self.assertEqual(
            (log.size, log.bytes_written + log.bytes_buffered), (total, total)
        )
        log.flush()
        self.assertEqual((log.bytes_written, log.bytes_buffered), (total, 0))
        path = log.path
        log.close()
        self.assertEqual(read(path), b"".join(packets))

    def test_nameCollisionsGetSuffixes(self) -> None:
        """
        A file opened in a second that already has one gets C{-1}, then
        C{-2}; the earlier files are neither appended to nor overwritten.
        """
        log, clock, directory = self.make_log("2026-11-24T13:05:09.1")
        taken = expected_path(directory, "20261124T130509")
        os.makedirs(os.path.dirname(taken))
        with open(taken, "wb") as f:
            f.write(b"from an earlier run")
        log.write(b"one")
        clock.advance(0.5)
        self.assertEqual(
            log.rotate(), expected_path(directory, "20261124T130509", "-1")
        )
        log.write(b"two")
        self.assertEqual(log.path, expected_path(directory, "20261124T130509", "-2"))
        second = DataLog(directory, NAME, reactor=clock)
        second.write(b"three")
        second.close()
        log.close()
        self.assertEqual(read(taken), b"from an earlier run")
        self.assertEqual(
            [read(p) for p in datalog_files(directory, NAME)],
            [b"from an earlier run", b"one", b"two", b"three"],
        )

    def test_datalogFilesOrder(self) -> None:
        """
        L{datalog_files} lists files by stamp, then by suffix as a number,
        across directories, and ignores other files; plain name order
        would put C{Z-1} before C{Z} and C{-10} before C{-2}.
        """
        directory = self.mktemp()
        names = [
            ("20261124T235959", ""),
            ("20261124T235959", "-1"),
            ("20261124T235959", "-2"),
            ("20261124T235959", "-10"),
            ("20261125T000000", ""),
            ("20270101T000000", ""),
        ]
        paths = [expected_path(directory, stamp, suffix) for stamp, suffix in names]
        for path in reversed(paths):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "wb").close()
        for other in (f"{NAME}X_20261124T235959Z.datalog", f"{NAME}_notes.txt"):
            open(os.path.join(os.path.dirname(paths[0]), other), "wb").close()
        self.assertEqual(datalog_files(directory, NAME), paths)
        self.assertNotEqual(sorted(paths), paths)
        self.assertEqual(datalog_files(directory + "-missing", NAME), [])

    def test_invalidArguments(self) -> None:
        """
        An unknown policy, a negative size, a non-positive flush interval
        or a name with a path in it are refused.
        """
        clock = Clock()
        for kwargs in [
            {"rotate": "weekly"},
            {"rotate_size": -1},
            {"flush_interval": 0.0},
        ]:
            with self.assertRaises(ValueError):
                DataLog("d", NAME, reactor=clock, **kwargs)  # type: ignore[arg-type]
        for name in ["", ".", "..", "a/b"]:
            with self.assertRaises(ValueError):
                DataLog("d", name, reactor=clock)

    def test_defaultReactor(self) -> None:
        """
        Without a reactor the global one is used (imported only then).
        """
        from twisted.internet import reactor

        log = DataLog(self.mktemp(), NAME)
        self.assertIs(log._clock, reactor)
        log.close()


class DataLogRotationTests(_DataLogTestMixin):
    """
    Rotation on UTC day and hour boundaries, by size, and by command.
    """

    def test_dailyAtUtcMidnight(self) -> None:
        """
        With daily rotation, packets up to midnight UTC stay in the day's
        file and the boundary timer starts the next day's file at
        00:00:00Z, which gets the packets after it.
        """
        log, clock, directory = self.make_log("2026-11-24T23:59:59.5")
        before = packet(b"before", clock.seconds())
        log.write(before)
        # Binary fractions, so the sum lands exactly on midnight.
        clock.advance(0.25 + 0.125 + 0.0625)
        log.write(before)
        first = expected_path(directory, "20261124T235959")
        self.assertEqual(log.path, first)
        clock.advance(0.0625)
        second = expected_path(directory, "20261125T000000")
        self.assertEqual(log.path, second)
        self.assertEqual(read(first), before * 2)
        after = packet(b"after", clock.seconds())
        log.write(after)
        log.close()
        self.assertEqual(read(second), after)
        self.assertEqual(log.files_opened, 2)

    def test_writeAfterBoundaryRotatesFirst(self) -> None:
        """
        A write at or after the boundary goes to a new file even if the
        boundary timer has not run yet (a busy reactor runs it late), and
        the stale timer then does not rotate again.
        """
        log, clock, directory = self.make_log("2026-11-24T23:59:59.5")
        log.write(b"old")
        clock.rightNow = utc("2026-11-25T00:00:00")  # time passes, no calls run
        log.write(b"new")
        second = expected_path(directory, "20261125T000000")
        self.assertEqual(log.path, second)
        clock.advance(0)
        self.assertEqual((log.path, log.files_opened), (second, 2))
        log.close()
        self.assertEqual(read(expected_path(directory, "20261124T235959")), b"old")
        self.assertEqual(read(second), b"new")

    def test_idleLogRotatesAtBoundary(self) -> None:
        """
        With no writes at all, the timer closes the day's file at midnight
        (its data flushed), opens the next, and arms the next midnight.
        """
        log, clock, directory = self.make_log("2026-11-24T12:00:00")
        log.write(b"noon")
        clock.advance(12 * 3600)
        self.assertEqual(read(expected_path(directory, "20261124T120000")), b"noon")
        self.assertEqual(log.path, expected_path(directory, "20261125T000000"))
        clock.advance(24 * 3600)
        self.assertEqual(log.path, expected_path(directory, "20261126T000000"))
        self.assertEqual(
            [call.getTime() for call in clock.getDelayedCalls()],
            [utc("2026-11-27T00:00:00")],
        )

    def test_hourly(self) -> None:
        """
        With hourly rotation a new file starts at every top of the hour
        UTC.
        """
        log, clock, directory = self.make_log("2026-11-24T22:59:58", rotate="hourly")
        log.write(b"a")
        clock.advance(2)
        log.write(b"b")
        clock.advance(3599.5)
        log.write(b"c")
        clock.advance(0.5)
        log.write(b"d")
        log.close()
        self.assertEqual(
            [(p, read(p)) for p in datalog_files(directory, NAME)],
            [
                (expected_path(directory, "20261124T225958"), b"a"),
                (expected_path(directory, "20261124T230000"), b"bc"),
                (expected_path(directory, "20261125T000000"), b"d"),
            ],
        )

    def test_noTimeRotation(self) -> None:
        """
        With C{rotate="none"} one file takes every packet, for days, and no
        boundary timer is armed.
        """
        log, clock, directory = self.make_log("2026-11-24T23:59:59", rotate="none")
        for _ in range(3):
            log.write(b"day")
            clock.advance(86400)
        self.assertEqual(clock.getDelayedCalls(), [])
        log.close()
        self.assertEqual(
            [read(p) for p in datalog_files(directory, NAME)], [b"day" * 3]
        )

    def test_eraWrapDay(self) -> None:
        """
        Rotation through 2036-02-07, the day the NTP seconds field wraps at
        06:28:16Z, and into the next day works: the file names follow UTC,
        the packets (whose NTP seconds wrapped to small numbers) are kept
        as they are.
        """
        log, clock, directory = self.make_log("2036-02-07T06:28:15.5")
        packets = []
        for _ in range(3):
            packets.append(packet(b"wrap", clock.seconds()))
            log.write(packets[-1])
            clock.advance(0.5)
        parsed = PacketParser().feed(b"".join(packets))
        self.assertEqual([p.seconds for p in parsed], [0xFFFFFFFF, 0, 0])
        clock.advance(utc("2036-02-07T23:59:59.5") - clock.seconds())
        log.write(packet(b"late", clock.seconds()))
        clock.advance(0.5)
        log.write(packet(b"next", clock.seconds()))
        log.close()
        files = datalog_files(directory, NAME)
        self.assertEqual(
            files,
            [
                expected_path(directory, "20360207T062815"),
                expected_path(directory, "20360208T000000"),
            ],
        )
        payloads = [[p.payload for p in PacketParser().feed(read(f))] for f in files]
        self.assertEqual(payloads, [[b"wrap"] * 3 + [b"late"], [b"next"]])

    def test_sizeRotationNeverSplits(self) -> None:
        """
        A packet that would take the file past C{rotate_size} starts a new
        file; one that fits exactly does not; one larger than the limit
        gets a fresh file of its own.
        """
        log, clock, directory = self.make_log(
            "2026-11-24T13:05:09", rotate_size=100, rotate="none"
        )
        p40 = packet(b"x" * 24)
        p20 = packet(b"y" * 4)
        big = packet(b"z" * 200)
        for p in (p40, p40, p20, p40, big, p20):
            log.write(p)
            clock.advance(0.125)
        log.close()
        files = datalog_files(directory, NAME)
        self.assertEqual([read(f) for f in files], [p40 + p40 + p20, p40, big, p20])
        self.assertEqual(
            files,
            [
                expected_path(directory, "20261124T130509"),
                expected_path(directory, "20261124T130509", "-1"),
                expected_path(directory, "20261124T130509", "-2"),
                expected_path(directory, "20261124T130509", "-3"),
            ],
        )

    def test_manualRotate(self) -> None:
        """
        C{rotate} closes the current file, returns its path, and opens a
        new one at once; with no file open it opens one and returns C{""}.
        """
        log, clock, directory = self.make_log("2026-11-24T13:05:09")
        self.assertEqual(log.rotate(), "")
        first = expected_path(directory, "20261124T130509")
        self.assertEqual(log.path, first)
        log.write(b"first")
        clock.advance(3)
        self.assertEqual(log.rotate(), first)
        self.assertEqual(read(first), b"first")
        self.assertEqual(log.path, expected_path(directory, "20261124T130512"))
        self.assertEqual(log.size, 0)


class DataLogFlushTests(_DataLogTestMixin):
    """
    When buffered bytes reach the operating system, and closing.
    """

    def test_flushTimer(self) -> None:
        """
        Written bytes stay buffered until C{flush_interval} after the first
        unflushed write, then reach the file; no timer runs while idle.
        """
        log, clock, _directory = self.make_log(
            "2026-11-24T13:05:09", rotate="none", flush_interval=1.0
        )
        log.write(b"first")
        clock.advance(0.5)
        log.write(b"second")
        self.assertEqual(read(log.path), b"")
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(0.5)
        self.assertEqual(read(log.path), b"firstsecond")
        self.assertEqual(clock.getDelayedCalls(), [])
        log.write(b"third")
        clock.advance(0.75)
        self.assertEqual(read(log.path), b"firstsecond")
        clock.advance(0.25)
        self.assertEqual(read(log.path), b"firstsecondthird")

    def test_oneTimerForMany(self) -> None:
        """
        Datalogs on one clock with one flush interval share one timer, so a
        station of thousands of agents does not file a timer per sample;
        each is still flushed within the interval of its first unflushed
        write, and a datalog that flushed or closed leaves the timer to the
        others.
        """
        log, clock, directory = self.make_log(
            "2026-11-24T13:05:09", rotate="none", flush_interval=1.0
        )
        others = []
        for number in range(3):
            other = DataLog(
                os.path.join(directory, str(number)),
                NAME,
                reactor=clock,
                rotate="none",
                flush_interval=1.0,
            )
            self.addCleanup(other.close)
            others.append(other)
        log.write(b"first")
        clock.advance(0.5)
        for other in others:
            other.write(b"other")
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        paths = [other.path for other in others]
        others[0].flush()
        others[1].close()
        clock.advance(0.5)
        self.assertEqual(read(log.path), b"first")
        self.assertEqual([read(path) for path in paths], [b"other"] * 3)
        self.assertEqual(clock.getDelayedCalls(), [])
        log.close()
        others[2].close()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_explicitFlush(self) -> None:
        """
        C{flush} pushes the buffer out at once and cancels the timer.
        """
        log, clock, _directory = self.make_log("2026-11-24T13:05:09", rotate="none")
        log.write(b"data")
        log.flush()
        self.assertEqual(read(log.path), b"data")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_closeFlushesAndCancelsCalls(self) -> None:
        """
        C{close} writes out the buffer, leaves no delayed call behind,
        clears C{path}, and may be called again.
        """
        log, clock, _directory = self.make_log("2026-11-24T13:05:09")
        log.write(b"data")
        path = log.path
        self.assertEqual(len(clock.getDelayedCalls()), 2)
        log.close()
        self.assertEqual(read(path), b"data")
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(log.path, "")
        log.close()

    def test_closeFsyncsAfterFlush(self) -> None:
        """
        C{close} fsyncs the file, after its buffer has reached the file, so
        the bytes survive a power cut.
        """
        log, _clock, _directory = self.make_log("2026-11-24T13:05:09")
        log.write(b"data")
        path = log.path
        synced: list[bytes] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(read(path))
            real_fsync(fd)

        self.patch(datalog.os, "fsync", fsync)
        log.close()
        self.assertEqual(synced, [b"data"])

    def test_useAfterCloseRaises(self) -> None:
        """
        Writing, opening or rotating a closed datalog is a programming
        error and says so.
        """
        log, _clock, _directory = self.make_log("2026-11-24T13:05:09")
        log.close()
        for call in (lambda: log.write(b"x"), log.open, log.rotate):
            error = self.assertRaises(RuntimeError, call)
            self.assertIn("closed", str(error))


class DataLogPageCacheTests(_DataLogTestMixin):
    """
    A datalog tells the kernel it will not read back what it wrote, a step
    at a time, so a fast stream does not fill the page cache (which made
    every write pay for reclaiming pages).
    """

    def record_advice(self) -> list[tuple[str, int, int, int]]:
        """
        Replace the advice with a recorder of C{(path, start, end, bytes
        in the file then)}.
        """
        advised: list[tuple[str, int, int, int]] = []

        def advise(fd: int, start: int, length: int) -> None:
            path = os.readlink(f"/proc/self/fd/{fd}")
            advised.append((path, start, start + length, os.fstat(fd).st_size))

        self.patch(datalog, "_drop_cached", advise)
        return advised

    def test_everyByteAdvisedTwiceAfterWriting(self) -> None:
        """
        Every step of written bytes, the bytes written are advised, never
        bytes not yet written; each range is advised a second time a step
        later (the first advice starts its writeback, the second drops the
        pages it wrote back); and the file is still every packet, in order.
        """
        advised = self.record_advice()
        log, clock, _directory = self.make_log("2026-11-24T13:05:09", rotate="none")
        offered = [
            packet(bytes([i % 251]) * (MAX_PAYLOAD_SIZE - i), clock.seconds())
            for i in range(500)
        ]
        for p in offered:
            log.write(p)
        path = log.path
        log.close()
        total = sum(map(len, offered))
        self.assertEqual(read(path), b"".join(offered))
        step = datalog._ADVISE_STEP
        self.assertGreaterEqual(len(advised), total // step - 1)
        covered: dict[int, int] = {}
        for advice_path, start, end, size in advised:
            self.assertEqual(os.path.realpath(advice_path), os.path.realpath(path))
            self.assertLessEqual(end, size)
            self.assertLess(start, end)
            for block in range(start // 4096, end // 4096):
                covered[block] = covered.get(block, 0) + 1
        # Everything before the last advice but one was advised twice.
        settled = advised[-2][2] // 4096
        self.assertEqual(
            [b for b in range(settled) if covered.get(b, 0) < 2],
            [],
        )
        # The advice comes about once a step, not once a write.
        ends = [end for _path, _start, end, _size in advised]
        self.assertTrue(all(b - a >= step for a, b in itertools.pairwise(ends)))

    def test_newFileStartsOver(self) -> None:
        """
        After a size rotation the advice counts from the new file's start:
        the first advice of each file starts at 0 and covers that file only.
        """
        advised = self.record_advice()
        step = datalog._ADVISE_STEP
        log, clock, directory = self.make_log(
            "2026-11-24T13:05:09", rotate="none", rotate_size=3 * step
        )
        chunk = packet(b"x" * MAX_PAYLOAD_SIZE, clock.seconds())
        for _ in range(8 * step // len(chunk)):
            log.write(chunk)
        log.close()
        files = datalog_files(directory, NAME)
        self.assertGreater(len(files), 2)
        firsts: dict[str, int] = {}
        for advice_path, start, end, size in advised:
            firsts.setdefault(os.path.realpath(advice_path), start)
            self.assertLessEqual(end, size)
        self.assertEqual(set(firsts.values()), {0})
        self.assertGreaterEqual(len(firsts), 2)


class DataLogErrorTests(_DataLogTestMixin):
    """
    Operating-system errors are counted and logged, never raised.
    """

    def blocked_directory(self) -> str:
        """
        A datalog directory that cannot be created, even by root: its
        parent is a regular file.
        """
        parent = self.mktemp()
        with open(parent, "wb"):
            pass
        return os.path.join(parent, "datalog")

    def full_disk(self, room: int = 0) -> Disk:
        """
        Make every file the datalog opens a fault-injecting file object on
        a pretend disk with C{room} bytes free.
        """
        disk = Disk(room)
        real_open = datalog._open_exclusive
        self.patch(
            datalog, "_open_exclusive", lambda path: FaultyFile(real_open(path), disk)
        )
        return disk

    def test_openErrorCountedAndLogged(self) -> None:
        """
        A directory that cannot be created does not raise out of C{open} or
        C{write}: the error is logged with its path and counted, the packet
        is counted as dropped, and no file is open.
        """
        clock = Clock()
        clock.advance(utc("2026-11-24T13:05:09"))
        directory = self.blocked_directory()
        log = DataLog(directory, NAME, reactor=clock)
        self.addCleanup(log.close)
        with capturedLogs() as events:
            log.open()
            clock.advance(1)
            log.write(b"12345")
        self.assertEqual((log.write_errors, log.bytes_dropped, log.path), (2, 5, ""))
        self.assertEqual(log.files_opened, 0)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["log_level"], LogLevel.error)
        self.assertEqual(events[0]["action"], "opening")
        self.assertIn(directory, events[0]["path"])

    def test_retryOncePerSecondThenRecover(self) -> None:
        """
        After an error a fresh file is tried at most once a second; when
        the cause is gone the next write opens one, records the packet,
        and the recovery is logged.
        """
        clock = Clock()
        clock.advance(utc("2026-11-24T13:05:09"))
        parent = self.mktemp()
        with open(parent, "wb"):
            pass
        directory = os.path.join(parent, "datalog")
        log = DataLog(directory, NAME, reactor=clock)
        self.addCleanup(log.close)
        with capturedLogs() as events:
            log.write(b"lost")
            clock.advance(0.5)
            log.write(b"lost")
            self.assertEqual((log.write_errors, log.bytes_dropped), (1, 8))
            os.remove(parent)
            log.write(b"lost")
            clock.advance(0.5)
            log.write(b"kept")
        self.assertEqual((log.write_errors, log.bytes_dropped), (1, 12))
        self.assertEqual(log.path, expected_path(directory, "20261124T130510"))
        self.assertEqual(events[-1]["log_level"], LogLevel.info)
        self.assertEqual(events[-1]["path"], log.path)
        path = log.path
        log.close()
        self.assertEqual(read(path), b"kept")

    def test_errorLogRateLimited(self) -> None:
        """
        The first error is logged at once; the next ones in the following
        minute are summed into one message with their count, sent at the
        end of that minute; C{close} sends a pending summary at once and
        leaves no timer.
        """
        clock = Clock()
        clock.advance(utc("2026-11-24T13:05:09"))
        log = DataLog(self.blocked_directory(), NAME, reactor=clock)
        with capturedLogs() as events:
            for _ in range(59):
                log.write(b"x")
                clock.advance(1)
            # Attempts at 0, 1, 3, 7, 15, then every 8 s: 23 ... 55.
            self.assertEqual(log.write_errors, 10)
            self.assertEqual(len(events), 1)
            clock.advance(1)
            self.assertEqual(len(events), 2)
            self.assertEqual(events[1]["count"], 9)
            self.assertIn("opening", events[1]["last"])
            clock.advance(3)
            log.write(b"x")  # the attempt due at 63, within a minute: held back
            self.assertEqual(len(events), 2)
            log.close()
        self.assertEqual(len(events), 3)
        self.assertEqual(events[2]["count"], 1)
        self.assertEqual(log.write_errors, 11)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_writeErrorKeepsFile(self) -> None:
        """
        (Fault-injecting file object.)  A write the disk refuses does not
        raise: the buffered packets are dropped and counted, the error is
        counted and logged, the flush timer is cancelled, and the file is
        kept for the next attempt.
        """
        self.full_disk(room=0)
        log, clock, _directory = self.make_log("2026-11-24T13:05:09", rotate="none")
        big = packet(b"x" * MAX_PAYLOAD_SIZE)
        with capturedLogs() as events:
            for _ in range(5):
                log.write(big)
        self.assertEqual((log.write_errors, log.bytes_dropped), (1, 5 * len(big)))
        self.assertEqual((log.size, log.bytes_written, log.bytes_buffered), (0, 0, 0))
        self.assertNotEqual(log.path, "")
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual([e["action"] for e in events], ["writing"])

    def test_flushErrorFromTimer(self) -> None:
        """
        (Fault-injecting file object.)  A flush the disk refuses, run by
        the flush timer, does not raise out of the timer; it is counted, and
        so are the bytes it could not write.
        """
        self.full_disk(room=0)
        log, clock, _directory = self.make_log("2026-11-24T13:05:09")
        log.write(b"small")
        with capturedLogs() as events:
            clock.advance(1)
        self.assertEqual((log.write_errors, log.bytes_dropped), (1, 5))
        self.assertEqual([e["action"] for e in events], ["writing"])

    def test_closeErrorNotRaised(self) -> None:
        """
        (Fault-injecting file object.)  C{close} with buffered bytes the
        disk refuses counts the error and the bytes instead of raising.
        """
        self.full_disk(room=0)
        log, clock, _directory = self.make_log("2026-11-24T13:05:09")
        log.write(b"small")
        with capturedLogs() as events:
            log.close()
        self.assertEqual((log.write_errors, log.bytes_dropped), (1, 5))
        self.assertEqual([e["action"] for e in events], ["writing"])
        self.assertEqual(clock.getDelayedCalls(), [])


class DataLogFullDiskTests(_DataLogTestMixin):
    """
    On a full disk every byte is accounted for, the file stays whole
    packets, attempts back off on the same file, and recording resumes by
    itself.  These use a fault-injecting file object on a pretend disk; the
    same behaviour on a real full tmpfs is tested against a real agent
    process in L{tests.test_portagent_integration.DatalogFullDiskTests}.
    """

    def setUp(self) -> None:
        disk = Disk(0)
        real_open = datalog._open_exclusive
        self.patch(
            datalog, "_open_exclusive", lambda path: FaultyFile(real_open(path), disk)
        )
        self.disk = disk

    def test_everyByteAccounted(self) -> None:
        """
        A write that fills the disk part-way through a packet: the file is
        cut back to the last whole packet, and the bytes written plus the
        bytes dropped are exactly the bytes of every packet given (the
        buffer thrown away is counted, not only the packets after it).
        """
        self.disk.room = 10_000
        log, clock, _directory = self.make_log("2026-11-24T13:05:09", rotate="none")
        offered = []
        for i in range(40):
            offered.append(packet(bytes([i]) * (100 + 37 * i), clock.seconds()))
            log.write(offered[-1])
            clock.advance(0.3)
        path = log.path
        log.close()
        total = sum(map(len, offered))
        data = read(path)
        self.assertEqual(len(data), log.bytes_written)
        self.assertEqual(log.bytes_written + log.bytes_dropped, total)
        self.assertGreater(log.bytes_dropped, 0)
        # Whole packets only: the file is a prefix of what was offered,
        # packet for packet.
        count = len(PacketParser().feed(data))
        self.assertEqual(data, b"".join(offered[:count]))

    def test_backOffOnSameFileThenRecover(self) -> None:
        """
        While the disk stays full, attempts come after 1, 2, 4, then every
        8 s, each on the same file: no new file is made.  Once there is
        room, the next attempt records its packet in that same file, the
        recovery is logged, and the next error starts over at 1 s.
        """
        log, clock, directory = self.make_log("2026-11-24T13:05:09", rotate="none")
        log.open()
        path = log.path
        with capturedLogs() as events:
            for _ in range(120):
                log.write(packet(b"lost", clock.seconds()))
                clock.advance(0.5)
            # Attempts at 0, 1, 3, 7, 15, 23, ... 55.
            self.assertEqual(log.write_errors, 10)
            self.assertEqual(datalog_files(directory, NAME), [path])
            self.assertEqual(log.files_opened, 1)
            self.disk.room = 1 << 20
            kept = packet(b"kept", clock.seconds())
            while log.failing:
                log.write(kept)
                clock.advance(0.5)
        self.assertEqual(log.path, path)
        self.assertEqual(events[-1]["log_level"], LogLevel.info)
        self.assertIn("recording again", events[-1]["log_format"])
        self.assertEqual(log.write_errors, 10)
        log.flush()
        self.assertEqual(read(path), kept)
        self.disk.room = 0
        log.write(kept)
        log.flush()
        self.assertEqual(log.write_errors, 11)
        clock.advance(1)
        self.disk.room = 1 << 20
        log.write(kept)
        self.assertFalse(log.failing)
        self.assertEqual(read(path), kept * 2)

    def test_deletedFileReplaced(self) -> None:
        """
        A file deleted while the disk is full (to free space) is not
        written on: the next attempt opens a new one.
        """
        log, clock, directory = self.make_log("2026-11-24T13:05:09", rotate="none")
        log.write(packet(b"lost"))
        log.flush()
        self.assertTrue(log.failing)
        old = log.path
        os.remove(old)
        self.disk.room = 1 << 20
        clock.advance(1)
        log.write(packet(b"kept"))
        self.assertFalse(log.failing)
        self.assertNotEqual(log.path, old)
        self.assertEqual(datalog_files(directory, NAME), [log.path])

    def test_troubleAnnounced(self) -> None:
        """
        C{on_trouble} hears when recording fails and when it works again,
        from the reactor, not from inside the datalog's own methods.
        """
        heard: list[str] = []
        clock = Clock()
        clock.advance(utc("2026-11-24T13:05:09"))
        log = DataLog(self.mktemp(), NAME, reactor=clock, on_trouble=heard.append)
        self.addCleanup(log.close)
        log.write(packet(b"lost"))
        log.flush()
        self.assertEqual(heard, [])
        clock.advance(0)
        [failed] = heard
        self.assertIn("datalog cannot record: error writing", failed)
        self.assertIn("No space left on device", failed)
        self.disk.room = 1 << 20
        clock.advance(1)
        log.write(packet(b"kept"))
        clock.advance(0)
        self.assertIn("datalog recording again in", heard[1])
        self.assertIn(f"{len(packet(b'lost'))} bytes", heard[1])


_operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.binary(max_size=300)),
        st.tuples(
            st.just("advance"),
            st.one_of(
                st.sampled_from([0.0, 0.5, 1.0, 59.0, 1800.0, 3600.0, 86400.0]),
                st.floats(min_value=0, max_value=5000),
            ),
        ),
        st.tuples(st.just("rotate"), st.none()),
        st.tuples(st.just("restart"), st.none()),
    ),
    max_size=40,
)


_full_disk_operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.binary(max_size=3000)),
        st.tuples(st.just("advance"), st.sampled_from([0.1, 0.5, 1.0, 4.0, 9.0])),
        st.tuples(st.just("room"), st.integers(min_value=0, max_value=20_000)),
        st.tuples(st.just("flush"), st.none()),
        st.tuples(st.just("rotate"), st.none()),
    ),
    max_size=60,
)


class DataLogFullDiskPropertyTests(_DataLogTestMixin):
    """
    (Fault-injecting file object.)  Whatever the disk does, every byte is
    either in a file, whole, or counted as dropped.
    """

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(operations=_full_disk_operations, rotate_size=st.sampled_from([0, 4096]))
    def test_writtenPlusDroppedIsOffered(
        self, operations: list[tuple[str, object]], rotate_size: int
    ) -> None:
        """
        For any writes interleaved with the disk filling and emptying,
        flushes, rotations and time passing, after C{close}: the files hold
        C{bytes_written} bytes, whole packets only, in the order written;
        and C{bytes_written + bytes_dropped} is every byte offered.
        """
        disk = Disk(0)
        real_open = datalog._open_exclusive
        self.patch(
            datalog, "_open_exclusive", lambda path: FaultyFile(real_open(path), disk)
        )
        clock = Clock()
        clock.advance(utc("2026-11-24T13:05:09"))
        directory = self.mktemp()
        log = DataLog(
            directory, NAME, rotate="none", rotate_size=rotate_size, reactor=clock
        )
        offered: list[bytes] = []
        for op, arg in operations:
            if op == "write":
                assert isinstance(arg, bytes)
                offered.append(packet(arg, clock.seconds()))
                log.write(offered[-1])
            elif op == "advance":
                assert isinstance(arg, float)
                clock.advance(arg)
            elif op == "room":
                assert isinstance(arg, int)
                disk.room = arg
            elif op == "flush":
                log.flush()
            else:
                log.rotate()
        log.close()
        data = b"".join(read(f) for f in datalog_files(directory, NAME))
        self.assertEqual(len(data), log.bytes_written)
        self.assertEqual(log.bytes_written + log.bytes_dropped, sum(map(len, offered)))
        parser = PacketParser()
        recorded = [p.encode() for p in parser.feed(data)]
        self.assertEqual((parser.pending, parser.counters.junk_bytes), (0, 0))
        # In order: the recorded packets are a subsequence of those offered.
        remaining = iter(offered)
        self.assertTrue(all(any(r == o for o in remaining) for r in recorded))


class DataLogPropertyTests(_DataLogTestMixin):
    """
    Whatever happens, the datalog is the packets written, whole.
    """

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        operations=_operations,
        rotate=st.sampled_from(["daily", "hourly", "none"]),
        rotate_size=st.sampled_from([0, 16, 64, 400, 4096]),
        start=st.floats(min_value=-4000, max_value=4000),
    )
    def test_filesConcatenateToPackets(
        self,
        operations: list[tuple[str, object]],
        rotate: str,
        rotate_size: int,
        start: float,
    ) -> None:
        """
        For any writes interleaved with clock advances, manual rotations
        and restarts near a UTC midnight, the files listed in write order
        concatenate to the packets written; each parses into whole packets
        only; each lies in its UTC day's directory; and a file passes
        C{rotate_size} only when it holds a single packet.
        """
        clock = Clock()
        clock.advance(utc("2026-11-25T00:00:00") + start)
        directory = self.mktemp()

        def new_log() -> DataLog:
            return DataLog(
                directory,
                NAME,
                rotate=rotate,
                rotate_size=rotate_size,
                reactor=clock,
            )

        log = new_log()
        log.open()
        written = []
        for op, arg in operations:
            if op == "write":
                assert isinstance(arg, bytes)
                written.append(packet(arg, clock.seconds()))
                log.write(written[-1])
            elif op == "advance":
                assert isinstance(arg, float)
                clock.advance(arg)
            elif op == "rotate":
                log.rotate()
            else:
                log.close()
                log = new_log()
        log.close()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(log.write_errors, 0)

        files = datalog_files(directory, NAME)
        contents = [read(f) for f in files]
        self.assertEqual(b"".join(contents), b"".join(written))
        for path, data in zip(files, contents, strict=True):
            parser = PacketParser()
            packets = parser.feed(data)
            self.assertEqual(b"".join(p.encode() for p in packets), data)
            self.assertEqual(parser.pending, 0)
            self.assertEqual(parser.counters.junk_bytes, 0)
            stamp = os.path.basename(path)[len(NAME) + 1 :][:15]
            self.assertEqual(
                os.path.dirname(path),
                os.path.join(directory, stamp[:4], stamp[4:6], stamp[6:8]),
            )
            if rotate_size and len(data) > rotate_size:
                self.assertEqual(len(packets), 1)
