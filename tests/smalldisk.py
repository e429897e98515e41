"""
A small disk for tests of what happens when it fills up.

As root (as CI runs) it is a real file system: a ``tmpfs`` of the size
asked for, mounted on a fresh directory and unmounted when the test ends.
Otherwise, or where mounting is not allowed, it is an ordinary directory
and the spool module's file I/O goes through a fault-injecting layer for
the test: ``os.write``/``os.pwrite`` and files opened for writing refuse
(``ENOSPC``, after a short write as the kernel does) whatever would take the
directory's files past the size.  Overwriting bytes a file already has needs
no room, as on a file system that writes in place.  :attr:`SmallDisk.kind`
says which one a test got; ``INSTRUMENTD_TEST_NO_TMPFS=1`` in the
environment asks for the fault-injecting one even as root.
"""

from __future__ import annotations

import builtins
import errno
import os
import subprocess
from typing import IO, Any

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.station import spool as spool_module


def _no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class SmallDisk:
    """
    A directory on a file system of ``size`` bytes.

    :param case: the test; cleanups are added to it.
    :param size: the file system's size, bytes (a multiple of 4096).
    :ivar path: the directory.
    :ivar kind: ``"tmpfs"`` or ``"fault-injecting"``.
    """

    def __init__(self, case: SynchronousTestCase, size: int) -> None:
        self.path = os.path.abspath(case.mktemp())
        self.size = size
        os.makedirs(self.path)
        self.kind = "fault-injecting"
        if os.geteuid() == 0 and not os.environ.get("INSTRUMENTD_TEST_NO_TMPFS"):
            mounted = subprocess.run(
                [
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    f"size={size},mode=0755",
                    "tmpfs",
                    self.path,
                ],
                capture_output=True,
                check=False,
            )
            if mounted.returncode == 0:
                self.kind = "tmpfs"
                # Lazy: a file a failed test left open must not keep the
                # mount (and fail every later cleanup).
                case.addCleanup(subprocess.run, ["umount", "-l", self.path], check=True)
                return
        case.patch(spool_module, "os", _QuotaOS(self))
        spool_module.open = self._open  # type: ignore[attr-defined]
        case.addCleanup(delattr, spool_module, "open")

    def used(self) -> int:
        """
        The bytes its files take (the fault-injecting kind's measure).
        """
        total = 0
        for top, _, names in os.walk(self.path):
            for name in names:
                path = os.path.join(top, name)
                if not os.path.islink(path):
                    total += os.path.getsize(path)
        return total

    def free(self) -> int:
        """
        The bytes still free on the fault-injecting kind.
        """
        return self.size - self.used()

    def fill(self, name: str = "filler") -> str:
        """
        Fill the disk with a file of its own, as another program would.

        :returns: the file's path; delete it to free the space.
        """
        path = os.path.join(self.path, name)
        with builtins.open(path, "wb", buffering=0) as f:
            if self.kind == "tmpfs":
                block = b"\0" * 4096
                try:
                    while f.write(block):
                        pass
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
            else:
                f.write(b"\0" * max(0, self.free()))
        return path

    def _open(self, file: str, mode: str = "r", *args: Any, **kwargs: Any) -> IO[Any]:
        handle = builtins.open(file, mode, *args, **kwargs)  # noqa: SIM115
        if any(flag in mode for flag in "wax+"):
            return _QuotaFile(handle, self)  # type: ignore[return-value]
        return handle


class _QuotaOS:
    """
    The :mod:`os` module, with writes that stop at the disk's size.
    """

    def __init__(self, disk: SmallDisk) -> None:
        self._disk = disk

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        room = self._disk.free()
        if room <= 0:
            raise _no_space()
        return os.write(fd, data[:room])

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        size = os.fstat(fd).st_size
        growth = offset + len(data) - size
        if growth <= 0:
            return os.pwrite(fd, data, offset)
        allowed = size + self._disk.free() - offset
        if allowed <= 0:
            raise _no_space()
        return os.pwrite(fd, data[:allowed], offset)


class _QuotaFile:
    """
    A file opened for writing whose writes stop at the disk's size.
    """

    def __init__(self, handle: IO[Any], disk: SmallDisk) -> None:
        self._handle = handle
        self._disk = disk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _QuotaFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def write(self, data: bytes) -> int:
        room = self._disk.free()
        if room < len(data):
            if room > 0:
                self._handle.write(data[:room])
            raise _no_space()
        written: int = self._handle.write(data)
        return written
