# -*- test-case-name: tests.test_chunker -*-
"""
Splitting an instrument's byte stream into records.

Bytes arrive from the port agent in chunks that have nothing to do with the
instrument's records: a sample line may be cut in two, a status dump may
arrive in ten pieces, and prompts, echoes and line noise sit between
records.  A :class:`Chunker` collects the chunks and hands out complete
records only, each stamped with the port-agent time of its first byte.

What a record is, the driver writer says with **sieves**.  A sieve looks at
the whole buffered text and returns where the complete records in it are:

- a compiled ``bytes`` regular expression: each match is a record (see
  :func:`regex_sieve`); anchor the end of each record (``\\r\\n``) so that a
  line cut short in transit is not taken for a whole one;
- or a callable ``(buffer: bytes) -> iterable of (start, end)``.  A callable
  may also return ``(start, None)`` to say "a record starts here but is not
  complete yet" (see :func:`length_sieve` for binary records); no record at
  or after ``start`` is handed out until it is resolved.

Binary records that carry their length and a checksum (RDI PD0 ensembles,
``7f 7f``, a little-endian length, blocks, a 16-bit sum) need no code of
the driver's own: :func:`length_sieve` with :func:`additive_checksum` as
``verify``, a ``check_header`` that rejects false syncs before waiting for
their claimed length, and ``cut_by`` for what the instrument prints when it
abandons a record (a wake-up banner).  Text replies and binary records mix
in one stream: give the chunker both kinds of sieve.

The rules, after each chunk:

- Records are the spans the sieves found.  Where spans overlap, the one
  that starts first wins, and of spans starting at the same byte the longest
  (so ``SBE37-SMP`` beats ``SBE37-SM``); the losers are counted in
  :attr:`ChunkerCounters.overlaps`.
- Bytes before the end of the last record handed out that are in no record
  are **noise** (prompts, echoes, garbage): records do not overlap, so no
  later record can contain them.  They are dropped and counted.
- Bytes after the last record wait: they may be the start of the next one.
- The buffer is bounded (``max_buffer``): when the waiting bytes exceed it,
  the oldest are dropped and counted as overflow, whatever arrives.

So every byte added is, at any time, in exactly one of: a record handed
out, noise, overflow, or the buffer (:meth:`ChunkerCounters.accounted`).

The work per chunk is a scan of the waiting bytes by every sieve, so it
grows with ``max_buffer``; keep it a few times the longest record.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "Chunker",
    "ChunkerCounters",
    "Record",
    "Sieve",
    "SieveFunction",
    "additive_checksum",
    "length_sieve",
    "regex_sieve",
]

#: The default bound on waiting bytes: several of the longest records of
#: common instruments (status dumps, ADCP ensembles), small enough that
#: rescanning it on every chunk stays cheap.
DEFAULT_MAX_BUFFER = 16384

#: A sieve function: the buffer in, record spans out; ``(start, None)``
#: marks a record that has started but is not complete.
SieveFunction = Callable[[bytes], Iterable[tuple[int, int | None]]]

#: What a :class:`Chunker` accepts as a sieve.
Sieve = re.Pattern[bytes] | SieveFunction


class Record(NamedTuple):
    """
    One complete record.

    :ivar timestamp: the port-agent timestamp (NTP seconds) of the chunk
        that carried the record's first byte.
    :ivar data: the record's bytes.
    """

    timestamp: float
    data: bytes


@dataclass
class ChunkerCounters:
    """
    Where the bytes given to a :class:`Chunker` went.

    :ivar bytes_added: all bytes added.
    :ivar records: records found.
    :ivar record_bytes: bytes in those records.
    :ivar noise_bytes: bytes dropped as noise (in no record).
    :ivar overflow_bytes: bytes dropped because the buffer was full.
    :ivar overlaps: spans dropped because they overlapped a record.
    """

    bytes_added: int = 0
    records: int = 0
    record_bytes: int = 0
    noise_bytes: int = 0
    overflow_bytes: int = 0
    overlaps: int = 0

    def accounted(self, buffered: int) -> bool:
        """
        Check that every byte added is a record byte, noise, overflow or
        still buffered.

        :param buffered: the bytes the chunker holds now.
        :returns: ``True`` if the sums agree.
        """
        return self.bytes_added == (
            self.record_bytes + self.noise_bytes + self.overflow_bytes + buffered
        )


def regex_sieve(*patterns: re.Pattern[bytes]) -> SieveFunction:
    """
    A sieve for which every match of any of ``patterns`` is a record.

    :param patterns: compiled ``bytes`` patterns.  A pattern that can
        match an incomplete record (an optional tail, no end anchor) makes
        the chunker hand out truncated records; one that can match very
        long spans (``.*`` with DOTALL) swallows the records after it.
    :returns: the sieve.
    :raises TypeError: for a ``str`` pattern: the stream is bytes.
    """
    for pattern in patterns:
        if not isinstance(pattern.pattern, bytes):
            raise TypeError(f"sieve pattern {pattern.pattern!r} must be bytes")

    if len(patterns) == 1:
        (only,) = patterns

        def one(buffer: bytes) -> list[tuple[int, int | None]]:
            # The usual case (the chunker makes one sieve per pattern),
            # without the nested loop.
            return [
                span for span in map(_span, only.finditer(buffer)) if span[1] > span[0]
            ]

        return one

    def sieve(buffer: bytes) -> list[tuple[int, int | None]]:
        return [
            span
            for pattern in patterns
            for span in map(_span, pattern.finditer(buffer))
            if span[1] > span[0]
        ]

    return sieve


#: A match's ``(start, end)``.
_span = re.Match.span


def length_sieve(
    sync: bytes,
    *,
    length_offset: int,
    length_size: int = 2,
    byteorder: Literal["big", "little"] = "big",
    length_adjust: int = 0,
    min_length: int | None = None,
    max_length: int,
    verify: Callable[[bytes], bool] | None = None,
    check_header: Callable[[bytes], bool | None] | None = None,
    cut_by: re.Pattern[bytes] | None = None,
) -> SieveFunction:
    """
    A sieve for binary records that start with sync bytes and carry their
    own length, such as ``sync, type, length, payload, checksum``.

    The buffer is scanned from the start.  At each occurrence of ``sync``:
    once the length field is there, the record's length is read; a length
    outside ``min_length..max_length``, or a complete record that
    ``verify`` rejects, is a false sync and the scan resumes one byte on;
    a good complete record is a record and the scan resumes after it.  The
    first candidate that is not complete yet is reported as started, which
    holds back every later record until it completes or proves false, so a
    sync pattern inside its payload can never be taken for a record.

    :param sync: the bytes every record starts with.
    :param length_offset: where the length field starts in the record.
    :param length_size: the length field's size in bytes.
    :param byteorder: ``"big"`` or ``"little"``.
    :param length_adjust: added to the field's value to give the whole
        record's length (e.g. the header size, if the field counts the
        payload only).
    :param min_length: the smallest plausible whole length; by default the
        end of the length field.
    :param max_length: the largest plausible whole length; keep it below
        the chunker's ``max_buffer``.
    :param verify: called with a complete candidate record; ``False`` means
        it is corrupt or a false sync (check its checksum here).
    :param check_header: called with the bytes from the sync on (as many
        as have arrived, up to the claimed length) *before* waiting for the
        rest: ``False`` proves a false sync (the scan resumes one byte on),
        ``None`` asks for more bytes, ``True`` accepts the header.  Binary
        data often holds the sync bytes by chance, and the two bytes after
        such a false sync can claim a length of kilobytes: without this
        check every good record behind it waits until that many bytes have
        arrived.
    :param cut_by: a pattern the instrument prints when it abandons a record
        part-way (a wake-up banner after a break).  Found inside a
        candidate's span, it proves the candidate was cut short: the scan
        resumes one byte on at once, instead of waiting for the claimed
        length to fill with what follows.
    :returns: the sieve.
    """
    header = length_offset + length_size
    smallest = header if min_length is None else max(min_length, header)

    def sieve(buffer: bytes) -> list[tuple[int, int | None]]:
        spans: list[tuple[int, int | None]] = []
        position = buffer.find(sync)
        while position >= 0:
            if len(buffer) - position < header:
                spans.append((position, None))
                break
            field = buffer[position + length_offset : position + header]
            length = int.from_bytes(field, byteorder) + length_adjust
            if not smallest <= length <= max_length:
                position = buffer.find(sync, position + 1)
                continue
            end = position + length
            candidate = buffer[position : min(end, len(buffer))]
            if check_header is not None:
                plausible = check_header(candidate)
                if plausible is False:
                    position = buffer.find(sync, position + 1)
                    continue
                if plausible is None:
                    spans.append((position, None))
                    break
            if cut_by is not None and cut_by.search(candidate) is not None:
                position = buffer.find(sync, position + 1)
                continue
            if end > len(buffer):
                spans.append((position, None))
                break
            if verify is not None and not verify(buffer[position:end]):
                position = buffer.find(sync, position + 1)
                continue
            spans.append((position, end))
            position = buffer.find(sync, end)
        return spans

    return sieve


def additive_checksum(
    *, size: int = 2, byteorder: Literal["big", "little"] = "little"
) -> Callable[[bytes], bool]:
    """
    A ``verify`` for :func:`length_sieve`: the record ends with the sum of
    all its other bytes, modulo ``2 ** (8 * size)``, as an unsigned
    integer of ``size`` bytes (the RDI PD0 checksum, and many others).

    :param size: the checksum's size in bytes.
    :param byteorder: ``"big"`` or ``"little"``.
    :returns: a function of a complete record that says whether its
        checksum verifies.
    """
    modulus = 1 << (8 * size)

    def verify(record: bytes) -> bool:
        if len(record) <= size:
            return False
        stored = int.from_bytes(record[-size:], byteorder)
        return sum(memoryview(record)[:-size]) % modulus == stored

    return verify


class Chunker:
    """
    Collects byte chunks and hands out the complete records in them (see
    the module documentation for the rules).

    Typical use in a protocol::

        self._chunker.add_chunk(data, packet.ntp_time)
        while (record := self._chunker.get_next_data()) is not None:
            self._got_record(record.data, record.timestamp)

    :param sieves: one sieve or several.
    :param max_buffer: the most bytes held while waiting for the rest of a
        record; > 0.
    :param on_noise: called with each run of bytes dropped as noise, once
        (a driver counts the damaged binary records among them: a record
        with a bad checksum, or cut short, always ends up in noise).
    :ivar counters: where the bytes went.
    """

    def __init__(
        self,
        sieves: Sieve | Iterable[Sieve],
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        on_noise: Callable[[bytes], object] | None = None,
    ) -> None:
        if max_buffer <= 0:
            raise ValueError(f"max_buffer must be > 0, not {max_buffer}")
        if isinstance(sieves, re.Pattern) or callable(sieves):
            sieves = [sieves]
        sieves = list(sieves)
        self._sieves: list[SieveFunction] = [
            regex_sieve(sieve) if isinstance(sieve, re.Pattern) else sieve
            for sieve in sieves
        ]
        if not self._sieves:
            raise ValueError("a chunker needs at least one sieve")
        # Which sieves give their spans in order and without overlaps (one
        # pattern's matches do): spans from such a sieve alone need no sort.
        self._ordered = [isinstance(sieve, re.Pattern) for sieve in sieves]
        # A pattern given as a sieve is scanned in _sift itself (its
        # matches, without a sieve function's call and list per chunk).
        self._patterns: list[re.Pattern[bytes] | None] = [
            sieve if isinstance(sieve, re.Pattern) else None for sieve in sieves
        ]
        # With patterns only (the usual case), a chunk holding one record
        # is taken by _one_record.
        self._searches: tuple[Callable[[bytes], re.Match[bytes] | None], ...] | None = (
            tuple(pattern.search for pattern in self._patterns if pattern is not None)
            if all(pattern is not None for pattern in self._patterns)
            else None
        )
        self._max_buffer = max_buffer
        self._on_noise = on_noise
        self._buffer = bytearray()
        # Stream offset of the buffer's first byte, and the stream offset
        # and timestamp at which each chunk still in the buffer began: the
        # record's time is the time of the chunk holding its first byte.
        self._base = 0
        self._chunk_starts: list[int] = []
        self._chunk_times: list[float] = []
        self._records: deque[Record] = deque()
        self.counters = ChunkerCounters()

    @property
    def buffered(self) -> int:
        """
        Bytes held while waiting for the rest of a record.
        """
        return len(self._buffer)

    @property
    def max_buffer(self) -> int:
        """
        The most bytes held while waiting.
        """
        return self._max_buffer

    def add_chunk(self, data: bytes, timestamp: float) -> None:
        """
        Add the next chunk of the stream and find the records it completes.

        A chunk longer than ``max_buffer`` is taken in ``max_buffer``
        pieces, so memory and scanning stay bounded whatever arrives.

        :param data: the bytes, in stream order.
        :param timestamp: when the port agent read them (NTP seconds).
        """
        size = len(data)
        searches = self._searches
        if (
            searches is not None
            and not self._buffer
            and type(data) is bytes
            and 0 < size <= self._max_buffer
            and self._one_record(data, size, timestamp, searches, True)
        ):
            return
        if size <= self._max_buffer:
            # The usual case: one piece, and no copy of a bytes chunk.
            self._add(data if type(data) is bytes else bytes(data), timestamp)
            return
        view = memoryview(data)
        for start in range(0, len(data), self._max_buffer):
            self._add(bytes(view[start : start + self._max_buffer]), timestamp)

    def add_record_chunk(self, data: bytes, timestamp: float) -> bytes | None:
        """
        :meth:`add_chunk`, except that a chunk that completes exactly one
        record and leaves nothing waiting (a line a read, met with nothing
        waiting and no record untaken) gives that record's bytes here
        instead of queuing it: what :meth:`take_records` would then give
        as the only record, with ``timestamp`` as its time, counted the
        same way.

        :param data: the bytes, in stream order.
        :param timestamp: when the port agent read them (NTP seconds).
        :returns: the record's bytes, or ``None`` when the chunk was added
            as :meth:`add_chunk` adds it (take its records from
            :meth:`take_records`).
        """
        size = len(data)
        searches = self._searches
        if (
            searches is not None
            and not self._buffer
            and not self._records
            and type(data) is bytes
            and 0 < size <= self._max_buffer
        ):
            taken = self._one_record(data, size, timestamp, searches, False)
            if taken is True:
                return None
            if taken is not False:
                return taken
            # What add_chunk does once _one_record has declined.
            self._add(data, timestamp)
            return None
        self.add_chunk(data, timestamp)
        return None

    def _one_record(
        self,
        data: bytes,
        size: int,
        timestamp: float,
        searches: tuple[Callable[[bytes], re.Match[bytes] | None], ...],
        queue: bool,
    ) -> bool | bytes:
        # A chunk met with nothing waiting and sieves that are all
        # patterns (a line a read): if one sieve finds one record ending
        # the chunk and the others none, or none finds anything, take it
        # here, as _add would; otherwise say so (False) and let _add sift.
        # The record is queued (True) or, unless ``queue``, returned.
        found: re.Match[bytes] | None = None
        for search in searches:
            match = search(data)
            if match is not None:
                if found is not None:
                    return False
                found = match
        counters = self.counters
        if found is None:
            # No record: all of it waits.
            counters.bytes_added += size
            self._chunk_starts.append(self._base)
            self._chunk_times.append(timestamp)
            self._buffer += data
            return True
        start, end = found.span()
        if end != size or start == end:
            return False
        # The record ends the chunk: after it only an empty match, no
        # record, could follow.
        counters.bytes_added += size
        if start:
            counters.noise_bytes += start
            if self._on_noise is not None:
                self._on_noise(data[:start])
        counters.records += 1
        counters.record_bytes += end - start
        self._base += size
        if not queue:
            return data[start:]
        self._records.append(tuple.__new__(Record, (timestamp, data[start:])))
        return True

    def get_next_data(self) -> Record | None:
        """
        Take the oldest complete record not yet taken.

        :returns: a :class:`Record` (a ``(timestamp, data)`` tuple), or
            ``None`` if there is none.
        """
        return self._records.popleft() if self._records else None

    def take_records(self) -> list[Record]:
        """
        Take every complete record not yet taken, oldest first.

        :returns: the records.
        """
        if not self._records:
            return []
        records = list(self._records)
        self._records.clear()
        return records

    def clear(self) -> None:
        """
        Drop the waiting bytes, counting them as noise; for when the stream
        is known to restart (a new connection).  Records found already are
        kept.
        """
        self.counters.noise_bytes += len(self._buffer)
        if self._buffer and self._on_noise is not None:
            self._on_noise(bytes(self._buffer))
        self._base += len(self._buffer)
        self._buffer.clear()
        self._chunk_starts.clear()
        self._chunk_times.clear()

    def _add(self, data: bytes, timestamp: float) -> None:
        if not data:
            return
        self.counters.bytes_added += len(data)
        buffer = self._buffer
        if not buffer:
            # Nothing waiting (a 1 Hz instrument's line per read): the
            # chunk itself is sifted, and only what follows its last record
            # is kept.  Nothing waiting means no chunk is remembered either
            # (see _forget_chunks).
            cut = self._sift(data, timestamp)
            if cut < len(data):
                self._chunk_starts.append(self._base)
                self._chunk_times.append(timestamp)
                buffer += memoryview(data)[cut:]
            self._base += cut
            # A chunk is at most max_buffer long (add_chunk), so what
            # is kept of it cannot overflow.
            return
        if self._chunk_times[-1] != timestamp:
            self._chunk_starts.append(self._base + len(buffer))
            self._chunk_times.append(timestamp)
        buffer += data
        # One chunk remembered: every record has its time.
        cut = self._sift(
            bytes(buffer), timestamp if len(self._chunk_times) == 1 else None
        )
        if cut:
            del buffer[:cut]
            self._base += cut
        excess = len(buffer) - self._max_buffer
        if excess > 0:
            del buffer[:excess]
            self._base += excess
            self.counters.overflow_bytes += excess
        self._forget_chunks()

    def _sift(self, buffer: bytes, timestamp: float | None) -> int:
        # Find the records in ``buffer`` (the waiting bytes), hand them
        # out, count the noise between them; return how many bytes from
        # the start are done with (the end of the last record).
        # ``timestamp`` is every record's time when the bytes are all from
        # one chunk; None to look each up.
        size = len(buffer)
        complete: list[tuple[int, int]] = []
        started = size
        # How many sieves gave complete spans, and whether all those came
        # in order (see _ordered).
        giving = 0
        in_order = True
        for sieve, pattern in zip(self._sieves, self._patterns, strict=True):
            if pattern is not None:
                # The matches finditer would give, by searches (cheaper
                # than its iterator when there is no match, the usual
                # case for all sieves but one): after a match the next
                # search starts at its end, as finditer's does.
                match = pattern.search(buffer)
                if match is None:
                    continue
                before = len(complete)
                while True:
                    at, upto = match.span()
                    if upto == at:
                        # An empty match: finditer's rule for the next one
                        # (not empty at the same place) is its own.
                        for match in pattern.finditer(buffer, at):
                            at, upto = match.span()
                            if upto > at:
                                complete.append((at, upto))
                        break
                    complete.append((at, upto))
                    if upto == size:
                        # Only an empty match, no record, can follow.
                        break
                    found = pattern.search(buffer, upto)
                    if found is None:
                        break
                    match = found
                if len(complete) > before:
                    giving += 1
                continue
            before = len(complete)
            for start, end in sieve(buffer):
                if end is None:
                    if not 0 <= start < size:
                        _check_span(sieve, buffer, start, start + 1)
                    started = min(started, start)
                else:
                    if not 0 <= start < end <= size:
                        _check_span(sieve, buffer, start, end)
                    complete.append((start, end))
            if len(complete) > before:
                giving += 1
                in_order = False
        if not complete:
            return 0
        if len(complete) == 1 and started == size:
            # One record (a line a read): no order, no overlap to find.
            start, end = complete[0]
            counters = self.counters
            if start:
                counters.noise_bytes += start
                if self._on_noise is not None:
                    self._on_noise(buffer[:start])
            counters.records += 1
            counters.record_bytes += end - start
            self._records.append(
                tuple.__new__(
                    Record,
                    (
                        timestamp if timestamp is not None else self._time_at(start),
                        buffer[start:end],
                    ),
                )
            )
            return end
        if not (giving == 1 and in_order):
            complete.sort(key=_first_and_longest)
        return self._hand_out(buffer, complete, started, timestamp)

    def _time_at(self, offset: int) -> float:
        # The time of the chunk holding the buffer's byte at ``offset``.
        starts = self._chunk_starts
        return self._chunk_times[bisect_right(starts, self._base + offset) - 1]

    def _hand_out(
        self,
        buffer: bytes,
        complete: list[tuple[int, int]],
        started: int,
        timestamp: float | None,
    ) -> int:
        # The records among the spans (in order of start, longest first),
        # the noise between them, the overlaps; returns the end of the last
        # record.
        counters = self.counters
        on_noise = self._on_noise
        append = self._records.append
        new_record = tuple.__new__
        base = self._base
        chunk_starts = self._chunk_starts
        chunk_times = self._chunk_times
        cut = 0
        records = record_bytes = noise_bytes = overlaps = 0
        for start, end in complete:
            if start >= started:
                break
            if start < cut:
                overlaps += 1
                continue
            if start > cut:
                noise_bytes += start - cut
                if on_noise is not None:
                    # Counted so far, as the callback may look.
                    counters.records += records
                    counters.record_bytes += record_bytes
                    counters.noise_bytes += noise_bytes
                    counters.overlaps += overlaps
                    records = record_bytes = noise_bytes = overlaps = 0
                    on_noise(buffer[cut:start])
            records += 1
            record_bytes += end - start
            # A Record, made without its class's Python __new__.
            append(
                new_record(
                    Record,
                    (
                        # The time of the chunk holding the record's first
                        # byte.
                        timestamp
                        if timestamp is not None
                        else chunk_times[bisect_right(chunk_starts, base + start) - 1],
                        buffer[start:end],
                    ),
                )
            )
            cut = end
        counters.records += records
        counters.record_bytes += record_bytes
        counters.noise_bytes += noise_bytes
        counters.overlaps += overlaps
        return cut

    def _forget_chunks(self) -> None:
        # Keep the chunk holding the buffer's first byte and those after it.
        if not self._buffer:
            self._chunk_starts.clear()
            self._chunk_times.clear()
            return
        first = bisect_right(self._chunk_starts, self._base) - 1
        if first > 0:
            del self._chunk_starts[:first]
            del self._chunk_times[:first]


def _first_and_longest(span: tuple[int, int]) -> tuple[int, int]:
    # Spans in order of start, and of those starting at the same byte the
    # longest first.
    return span[0], -span[1]


def _check_span(sieve: object, buffer: Sequence[int], start: int, end: int) -> None:
    # A sieve bug would otherwise surface as lost or duplicated bytes.
    if not 0 <= start < end <= len(buffer):
        raise ValueError(
            f"sieve {sieve!r} returned span ({start}, {end}) outside a "
            f"buffer of {len(buffer)} bytes"
        )
