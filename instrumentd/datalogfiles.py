# -*- test-case-name: tests.test_datalogtool -*-
"""
Reading binary datalogs.

A port agent records every packet it handles in datalog files: a plain
concatenation of encoded packets, laid out as
``<dir>/<YYYY>/<MM>/<DD>/<name>_<YYYYMMDD>T<HHMMSS>Z.datalog`` with ``-1``,
``-2``... before ``.datalog`` when a name is taken.  OOI's own port agent
kept the same packets in ``CURRENT/<refdes>.datalog`` and archived each UTC
day as ``ARCHIVE/<refdes>/<YYYY>/<MM>/<refdes>.datalog.<YYYY>_<MM>_<DD>``
(before mid-2016: ``<refdes>.datalog.<Y>_<M>_<D>``, unpadded, beside the
current file); those files are found and ordered too.  :class:`DatalogFile`
reads one such file in bounded chunks and reports a packet cut short at its
end (the agent was killed while writing); :func:`datalog_paths` expands a
directory into its files in recording order, and :func:`recorded_files`
lists one instrument's files.  The writer is
:class:`instrumentd.portagent.datalog.DataLog`; the readers are the
``instrumentd-datalog`` tool and the ``datalog:`` replay endpoint.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from instrumentd.packet import (
    HEADER_SIZE,
    SYNC,
    Packet,
    PacketParser,
    ParserCounters,
)

__all__ = [
    "CHUNK_SIZE",
    "CutPacket",
    "DatalogFile",
    "datalog_paths",
    "datalog_sort_key",
    "is_datalog_name",
    "recorded_files",
]

#: Bytes read from a file at a time: large enough to be fast, small enough
#: that a multi-gigabyte datalog never has to fit in memory.
CHUNK_SIZE: Final = 1 << 20

_LENGTH = struct.Struct(">H")
# The writer's names: <name>_<YYYYMMDD>T<HHMMSS>Z[-N].datalog.
_SUFFIXED = re.compile(r"^(?P<stem>.*?)(?:-(?P<n>\d+))?\.datalog$")
# OOI's daily archives: <refdes>.datalog.<YYYY>_<MM>_<DD>, and before mid-2016
# the same without zero padding (Twisted's DailyLogFile suffix).
_OOI_ARCHIVE = re.compile(
    r"^(?P<stem>.+)\.datalog\.(?P<y>\d{4})_(?P<m>\d{1,2})_(?P<d>\d{1,2})$"
)


@dataclass(frozen=True)
class CutPacket:
    """
    The incomplete packet at the end of a datalog file, typically left by a
    writer that was killed mid-write.

    :ivar offset: byte offset in the file where the incomplete packet starts.
    :ivar present: bytes of it that are in the file.
    :ivar expected: its total length according to its header, or ``None``
        when even the header is incomplete.
    """

    offset: int
    present: int
    expected: int | None

    def describe(self) -> str:
        """
        Say what is missing, e.g. ``at byte 1234: 20 of 86 bytes present``.
        """
        if self.expected is None:
            return (
                f"at byte {self.offset}: {self.present} bytes present, "
                f"fewer than the {HEADER_SIZE}-byte header"
            )
        return f"at byte {self.offset}: {self.present} of {self.expected} bytes present"


@dataclass(init=False)
class DatalogFile:
    """
    One datalog file, read incrementally.

    Iterate over :meth:`packets` once; while it runs, and after, the
    attributes describe what was read.

    :ivar path: the file.
    :ivar chunk_size: bytes read at a time.
    :ivar counters: the parser's counts: good packets, junk bytes, rejected
        packets.
    :ivar bytes_read: bytes read from the file so far.
    :ivar cut: the incomplete packet at the end of the file, once the end
        has been reached and if there is one.
    """

    path: Path
    chunk_size: int
    counters: ParserCounters
    bytes_read: int
    cut: CutPacket | None

    def __init__(
        self, path: str | os.PathLike[str], chunk_size: int = CHUNK_SIZE
    ) -> None:
        """
        :param path: the file: a ``str`` (``DatalogFile("ctd.datalog")``) or
            any path-like.
        :param chunk_size: bytes read at a time.
        """
        self.path = path if isinstance(path, Path) else Path(path)
        self.chunk_size = chunk_size
        self.counters = ParserCounters()
        self.bytes_read = 0
        self.cut = None

    def packets(self) -> Iterator[Packet]:
        """
        The good packets of the file, in order, read ``chunk_size`` bytes at
        a time.

        :raises OSError: if the file cannot be opened or read (raised from
            the iteration, not from this call).
        """
        parser = PacketParser(counters=self.counters)
        with self.path.open("rb") as f:
            while chunk := f.read(self.chunk_size):
                self.bytes_read += len(chunk)
                yield from parser.feed(chunk)
            if parser.pending:
                # Re-read the held bytes rather than reach into the parser:
                # at most one packet's worth, from a file that is still open.
                offset = self.bytes_read - parser.pending
                f.seek(offset)
                yield from self._finish(f.read(parser.pending), offset)

    def _finish(self, tail: bytes, offset: int) -> Iterator[Packet]:
        """
        Account for the bytes still held at the end of the file.

        A header whose length runs past the end of the file is either a packet
        cut short or a corrupt length field.  In mid-file the parser finds out
        by waiting for the length and failing the checksum; at the end it never
        can, so look for good packets after that sync instead, as it would.
        """
        while tail:
            expected = None
            if len(tail) >= HEADER_SIZE and tail.startswith(SYNC):
                expected = _LENGTH.unpack_from(tail, 4)[0]
                rescue = PacketParser()
                found = rescue.feed(tail[1:])
                if found:
                    self.counters.bad_checksum += 1
                    self.counters.add(rescue.counters)
                    yield from found
                    consumed = len(tail) - rescue.pending
                    offset += consumed
                    tail = tail[consumed:]
                    continue
            self.cut = CutPacket(offset, len(tail), expected)
            return


def datalog_sort_key(path: Path) -> tuple[tuple[str, ...], str, tuple[int, ...]]:
    """
    The recording order of datalog files: by directory, then by name, with a
    numeric ``-N`` suffix after the unsuffixed file and in numeric order
    (``x.datalog``, ``x-1.datalog``, ``x-2.datalog``, ``x-10.datalog``), which
    plain string order gets wrong.  OOI's daily archives
    (``x.datalog.2016_7_9``) sort by their date, before the file still being
    written (``x.datalog``) in the same directory; in OOI's later layout
    ``ARCHIVE/`` sorts before ``CURRENT/`` by name.

    :param path: a datalog file path.
    :returns: a sort key.
    """
    archive = _OOI_ARCHIVE.match(path.name)
    if archive is not None:
        day = (int(archive["y"]), int(archive["m"]), int(archive["d"]))
        return path.parent.parts, archive["stem"], (-1, *day)
    match = _SUFFIXED.match(path.name)
    if match is None:
        return path.parent.parts, path.name, (0, 0)
    return path.parent.parts, match["stem"], (0, int(match["n"] or 0))


def is_datalog_name(name: str) -> bool:
    """
    Whether a file name is one a directory of datalogs is searched for:
    ``*.datalog`` (ours, and OOI's current file) or OOI's daily archive
    ``*.datalog.YYYY_MM_DD``.

    :param name: a file name, without its directory.
    """
    return name.endswith(".datalog") or _OOI_ARCHIVE.match(name) is not None


def datalog_paths(path: str | os.PathLike[str]) -> list[Path]:
    """
    The files a path names: a file is itself (whatever its name); a directory
    is every datalog file below it (see :func:`is_datalog_name`), in
    :func:`datalog_sort_key` order.

    :param path: a file or directory.
    :returns: the files; empty for a directory with none.  A path that does
        not exist is returned as is, so that opening it reports the error.
    """
    p = Path(path)
    if not p.is_dir():
        return [p]
    found = (
        f for f in p.rglob("*.datalog*") if is_datalog_name(f.name) and f.is_file()
    )
    return sorted(found, key=datalog_sort_key)


def recorded_files(directory: str | os.PathLike[str], name: str) -> list[Path]:
    """
    The files of one instrument's datalog under ``directory``, oldest first:
    ours (``<name>_<YYYYMMDD>T<HHMMSS>Z[-N].datalog``) and OOI's
    (``<name>.datalog``, ``<name>.datalog.<YYYY>_<MM>_<DD>``).

    :param directory: the datalog's top directory.
    :param name: the datalog's name (the instrument's reference designator).
    :returns: the paths; empty if there are none.
    """
    pattern = re.compile(
        re.escape(name)
        + r"(?:_\d{8}T\d{6}Z(?:-[1-9]\d*)?\.datalog|\.datalog(?:\.\d{4}_\d{1,2}_\d{1,2})?)\Z"
    )
    if not Path(directory).is_dir():
        return []
    return [p for p in datalog_paths(directory) if pattern.match(p.name)]
