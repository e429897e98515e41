# -*- test-case-name: tests.test_portagent_lifecycle -*-
"""
What a port agent does for the program that launched it: an atomically
written status file, and exiting when the launcher dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable

from twisted.internet.interfaces import IReactorFDSet, IReactorTime, IReadDescriptor
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["ParentWatch", "remove_status_file", "write_status_file"]


def write_status_file(path: str, status: dict[str, object]) -> None:
    """
    Write ``status`` as one JSON object to ``path`` atomically: readers see
    either no file or the whole file, never a partial one.

    :param path: where to write.
    :param status: JSON-ready data.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".status-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(status, f, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def remove_status_file(path: str) -> None:
    """
    Remove the status file, if it is there.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@implementer(IReadDescriptor)
class _PidFD:
    """
    A pidfd: readable once the process it refers to has exited.
    """

    def __init__(self, fd: int, on_exit: Callable[[], None]) -> None:
        self._fd = fd
        self._on_exit = on_exit

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        self._on_exit()

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "ParentWatch"


class ParentWatch:
    """
    Call a function soon after a given process exits.

    On Linux this waits on a pidfd, so it is told the moment the process
    exits with no polling at all.  Elsewhere (or if the pidfd cannot be
    opened) it checks once a second whether the process still exists.
    """

    log = Logger()

    def __init__(
        self,
        pid: int,
        on_exit: Callable[[], None],
        reactor: IReactorTime,
        interval: float = 1.0,
    ) -> None:
        """
        :param pid: the process to watch.
        :param on_exit: called once when it has exited.
        :param reactor: the reactor (a file-descriptor reactor for pidfds).
        :param interval: seconds between checks where pidfds are missing.
        """
        self._pid = pid
        self._on_exit = on_exit
        self._reactor = reactor
        self._interval = interval
        self._reader: _PidFD | None = None
        self._loop: LoopingCall | None = None
        self._fired = False

    def start(self) -> None:
        """
        Start watching; if the process is already gone, call back at once
        (on the next reactor turn).
        """
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None and IReactorFDSet.providedBy(self._reactor):
            try:
                fd = pidfd_open(self._pid)
            except OSError:
                fd = -1
            if fd >= 0:
                self._reader = _PidFD(fd, self._exited)
                self._reactor.addReader(self._reader)
                return
        self._loop = LoopingCall(self._check)
        self._loop.clock = self._reactor
        self._loop.start(self._interval, now=True)

    def stop(self) -> None:
        """
        Stop watching.
        """
        if self._reader is not None:
            self._reactor.removeReader(self._reader)  # type: ignore[attr-defined]
            os.close(self._reader.fileno())
            self._reader = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _check(self) -> None:
        try:
            os.kill(self._pid, 0)
        except ProcessLookupError:
            self._exited()
        except PermissionError:
            pass  # it exists, owned by someone else

    def _exited(self) -> None:
        if self._fired:
            return
        self._fired = True
        self.stop()
        self.log.info("parent process {pid} has exited", pid=self._pid)
        self._on_exit()
