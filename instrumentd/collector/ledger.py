# -*- test-case-name: tests.test_collector_ledger -*-
"""
What the collector has archived, per (station, instrument): the sequence
numbers seen, as ranges, and the gaps among them.

A station numbers every message of an instrument (data and events share
one counter) from 1, never reusing or skipping a number
(``doc/multi-host.md``).  So a number seen twice is a duplicate, and a
number that jumps ahead of the highest seen opens a **gap**: the numbers in
between are missing.  A gap keeps the span it was opened with and counts
the numbers still missing in it; late deliveries (a bridge that was down,
a collector of the same group that comes back with messages queued for
it) fill it, and it is **closed** when none is missing.

Memory is bounded: the numbers seen are kept as ranges (one range for an
instrument delivered in order), so it grows only with the holes; at most
``max_open_gaps`` gaps are open per instrument (the oldest is abandoned
beyond that: its holes are forgotten, so a late delivery into it is taken
as a duplicate, and it is counted and logged) and the ``max_closed``
most recently closed gaps are remembered for the report.

Numbers below the first one seen for an instrument (a collector started
after the station, whose earlier messages it never had) are not a gap:
they are accepted if they come, and not reported if they do not.

The ledger is pure logic on an injected clock; the service persists it
(:meth:`Ledger.snapshot` / :meth:`Ledger.restore`) so that duplicates are
dropped across restarts too.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from instrumentd.station._sink import iso_time

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = ["DEFAULT_MAX_CLOSED", "DEFAULT_MAX_OPEN_GAPS", "Gap", "Ledger", "Stream"]

#: Open gaps kept per instrument before the oldest is abandoned.
DEFAULT_MAX_OPEN_GAPS = 1000

#: Closed gaps remembered for the report.
DEFAULT_MAX_CLOSED = 1000


@dataclass(slots=True)
class Gap:
    """
    A run of sequence numbers that did not arrive in order.

    :ivar station: the station's name.
    :ivar instrument: the instrument's name.
    :ivar first: the first missing number.
    :ivar last: the last missing number.
    :ivar after: the time of the message just before the gap (``first -
        1``), ISO 8601, or ``None`` if it had none.
    :ivar before: the time of the message that revealed it (``last + 1``),
        ISO 8601, or ``None``.
    :ivar opened: when the collector saw it, Unix seconds.
    :ivar missing: how many of its numbers are still missing.
    :ivar closed: when its last missing number arrived (or it was
        abandoned), Unix seconds, or ``None`` while open.
    :ivar abandoned: whether it was closed by the ``max_open_gaps`` bound
        rather than filled.
    """

    station: str
    instrument: str
    first: int
    last: int
    after: str | None
    before: str | None
    opened: float
    missing: int
    closed: float | None = None
    abandoned: bool = False

    def to_dict(self) -> dict[str, object]:
        """
        :returns: the gap as the API and the checkpoint show it.
        """
        return {
            "station": self.station,
            "instrument": self.instrument,
            "first": self.first,
            "last": self.last,
            "count": self.last - self.first + 1,
            "missing": self.missing,
            "after": self.after,
            "before": self.before,
            "opened": iso_time(self.opened),
            "opened_unix": self.opened,
            "closed": None if self.closed is None else iso_time(self.closed),
            "closed_unix": self.closed,
            "abandoned": self.abandoned,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gap:
        """
        :param data: what :meth:`to_dict` returned.
        :returns: the gap.
        """
        return cls(
            station=str(data["station"]),
            instrument=str(data["instrument"]),
            first=int(data["first"]),
            last=int(data["last"]),
            after=data.get("after"),
            before=data.get("before"),
            opened=float(data["opened_unix"]),
            missing=int(data["missing"]),
            closed=None
            if data.get("closed_unix") is None
            else float(data["closed_unix"]),
            abandoned=bool(data.get("abandoned", False)),
        )


@dataclass(slots=True)
class Stream:
    """
    The sequence numbers seen from one (station, instrument).

    :ivar starts: the first number of each range, sorted.
    :ivar ends: the last number of each range (``ends[i] >= starts[i]``,
        ``starts[i + 1] > ends[i] + 1``).
    :ivar last_time: the time of the highest number seen, ISO 8601.
    :ivar gaps: the open gaps, oldest first.
    :ivar received: messages accepted.
    :ivar duplicates: messages dropped as already seen.
    """

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    last_time: str | None = None
    gaps: list[Gap] = field(default_factory=list)
    received: int = 0
    duplicates: int = 0

    @property
    def highest(self) -> int:
        """
        The highest number seen, 0 for none.
        """
        return self.ends[-1] if self.ends else 0

    def has(self, seq: int) -> bool:
        """
        :returns: whether ``seq`` has been seen.
        """
        i = bisect.bisect_right(self.starts, seq) - 1
        return i >= 0 and seq <= self.ends[i]

    def add(self, seq: int) -> None:
        """
        Record ``seq`` as seen (it must not have been), merging ranges.
        """
        starts, ends = self.starts, self.ends
        i = bisect.bisect_right(starts, seq)
        # The common case, in order: extend the last range.
        joins_left = i > 0 and ends[i - 1] == seq - 1
        joins_right = i < len(starts) and starts[i] == seq + 1
        if joins_left and joins_right:
            ends[i - 1] = ends[i]
            del starts[i], ends[i]
        elif joins_left:
            ends[i - 1] = seq
        elif joins_right:
            starts[i] = seq
        else:
            starts.insert(i, seq)
            ends.insert(i, seq)

    def forget(self, first: int, last: int) -> None:
        """
        Mark every number from ``first`` to ``last`` as seen (an abandoned
        gap), so that its holes no longer take memory.
        """
        for seq in range(first, last + 1):
            if not self.has(seq):
                self.add(seq)

    def ranges(self) -> list[list[int]]:
        """
        :returns: ``[[first, last], ...]`` of the numbers seen.
        """
        return [[s, e] for s, e in zip(self.starts, self.ends, strict=True)]


@dataclass(frozen=True, slots=True)
class Verdict:
    """
    What the ledger made of one message.

    :ivar new: whether it is new (to be archived) rather than a duplicate.
    :ivar opened: the gap it revealed, if any.
    :ivar closed: the gap it closed, if any.
    """

    new: bool
    opened: Gap | None = None
    closed: Gap | None = None


class Ledger:
    """
    The sequence numbers and gaps of every (station, instrument) seen.

    :param clock: the time for gaps' ``opened`` and ``closed``.
    :param max_open_gaps: open gaps per instrument before the oldest is
        abandoned.
    :param max_closed: closed gaps remembered.
    :param on_gap: called with each gap opened, closed or abandoned (for
        the log).
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        *,
        max_open_gaps: int = DEFAULT_MAX_OPEN_GAPS,
        max_closed: int = DEFAULT_MAX_CLOSED,
        on_gap: Callable[[Gap], None] | None = None,
    ) -> None:
        if max_open_gaps < 1:
            raise ValueError(f"max_open_gaps must be positive, not {max_open_gaps}")
        self._clock = clock
        self._max_open_gaps = max_open_gaps
        self._streams: dict[tuple[str, str], Stream] = {}
        self.closed: deque[Gap] = deque(maxlen=max_closed)
        self._on_gap = on_gap
        #: Gaps opened, closed and abandoned, in all (for the metrics).
        self.gaps_opened = 0
        self.gaps_closed = 0
        self.gaps_abandoned = 0

    def stream(self, station: str, instrument: str) -> Stream | None:
        """
        :returns: what has been seen from this instrument, or ``None``.
        """
        return self._streams.get((station, instrument))

    def streams(self) -> Iterator[tuple[tuple[str, str], Stream]]:
        """
        :returns: ``((station, instrument), stream)`` pairs, sorted.
        """
        return iter(sorted(self._streams.items()))

    def is_duplicate(self, station: str, instrument: str, seq: int) -> bool:
        """
        :returns: whether this message has been seen already.
        """
        stream = self._streams.get((station, instrument))
        return stream is not None and stream.has(seq)

    def count_duplicate(self, station: str, instrument: str) -> None:
        """
        Count a duplicate found before :meth:`observe` (one still waiting
        to be written).
        """
        key = (station, instrument)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = Stream()
        stream.duplicates += 1

    def observe(
        self, station: str, instrument: str, seq: int, time: str | None
    ) -> Verdict:
        """
        Account for one message.

        :param station: its station.
        :param instrument: its instrument.
        :param seq: its sequence number (1 or more).
        :param time: its time, ISO 8601, for the span of a gap it reveals.
        :returns: whether it is new, and the gap it opened or closed.
        """
        key = (station, instrument)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = Stream()
        if stream.has(seq):
            stream.duplicates += 1
            return Verdict(new=False)
        stream.received += 1
        highest = stream.highest
        stream.add(seq)
        if not highest or seq == highest + 1:
            stream.last_time = time
            return Verdict(new=True)
        if seq > highest:
            gap = Gap(
                station,
                instrument,
                highest + 1,
                seq - 1,
                after=stream.last_time,
                before=time,
                opened=self._clock.seconds(),
                missing=seq - highest - 1,
            )
            stream.last_time = time
            stream.gaps.append(gap)
            self.gaps_opened += 1
            self._tell(gap)
            if len(stream.gaps) > self._max_open_gaps:
                self._abandon(stream, stream.gaps.pop(0))
            return Verdict(new=True, opened=gap)
        # A late one: it fills a gap (or lies below the first number seen).
        for i, gap in enumerate(stream.gaps):
            if gap.first <= seq <= gap.last:
                gap.missing -= 1
                if gap.missing == 0:
                    del stream.gaps[i]
                    gap.closed = self._clock.seconds()
                    self.closed.append(gap)
                    self.gaps_closed += 1
                    self._tell(gap)
                    return Verdict(new=True, closed=gap)
                break
        return Verdict(new=True)

    def _abandon(self, stream: Stream, gap: Gap) -> None:
        stream.forget(gap.first, gap.last)
        gap.closed = self._clock.seconds()
        gap.abandoned = True
        self.closed.append(gap)
        self.gaps_abandoned += 1
        self._tell(gap)

    def _tell(self, gap: Gap) -> None:
        if self._on_gap is not None:
            self._on_gap(gap)

    def open_gaps(self) -> list[Gap]:
        """
        :returns: every open gap, by station and instrument, oldest first.
        """
        return [gap for _, stream in self.streams() for gap in stream.gaps]

    def snapshot(self) -> dict[str, object]:
        """
        :returns: the ledger as JSON-ready data, for :meth:`restore`.
        """
        return {
            "streams": [
                {
                    "station": station,
                    "instrument": instrument,
                    "ranges": stream.ranges(),
                    "last_time": stream.last_time,
                    "received": stream.received,
                    "duplicates": stream.duplicates,
                    "gaps": [gap.to_dict() for gap in stream.gaps],
                }
                for (station, instrument), stream in self.streams()
            ],
            "closed": [gap.to_dict() for gap in self.closed],
            "gaps_opened": self.gaps_opened,
            "gaps_closed": self.gaps_closed,
            "gaps_abandoned": self.gaps_abandoned,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """
        Take the state :meth:`snapshot` returned, replacing this one's.

        :param data: the snapshot.
        :raises KeyError, TypeError, ValueError: for a snapshot that is not one.
        """
        streams: dict[tuple[str, str], Stream] = {}
        for each in data["streams"]:
            ranges = [(int(s), int(e)) for s, e in each["ranges"]]
            stream = Stream(
                starts=[s for s, _ in ranges],
                ends=[e for _, e in ranges],
                last_time=each.get("last_time"),
                gaps=[Gap.from_dict(g) for g in each.get("gaps", [])],
                received=int(each.get("received", 0)),
                duplicates=int(each.get("duplicates", 0)),
            )
            streams[(str(each["station"]), str(each["instrument"]))] = stream
        self._streams = streams
        self.closed.clear()
        self.closed.extend(Gap.from_dict(g) for g in data.get("closed", []))
        self.gaps_opened = int(data.get("gaps_opened", 0))
        self.gaps_closed = int(data.get("gaps_closed", 0))
        self.gaps_abandoned = int(data.get("gaps_abandoned", 0))

    def replay(self, seen: Iterable[tuple[str, str, int, str | None]]) -> int:
        """
        Account for messages found in the archive but not in the restored
        snapshot (written after it was taken).

        Files are read one stream at a time, not in sequence order, so the
        numbers are added without opening gaps one by one; the gaps are
        worked out once at the end: open gaps are filled from what was
        found (and closed when full), and a hole no open gap covers
        becomes a gap of its own (its times unknown).

        :param seen: ``(station, instrument, seq, time)`` of each.
        :returns: how many were new to the ledger.
        """
        new = 0
        touched: set[tuple[str, str]] = set()
        for station, instrument, seq, time in seen:
            key = (station, instrument)
            stream = self._streams.get(key)
            if stream is None:
                stream = self._streams[key] = Stream()
            if stream.has(seq):
                # Parts of files already in the snapshot may be read again:
                # they are not duplicates that arrived.
                continue
            if seq > stream.highest:
                stream.last_time = time
            stream.add(seq)
            stream.received += 1
            touched.add(key)
            new += 1
        for key in sorted(touched):
            self._reconcile(key, self._streams[key])
        return new

    def _reconcile(self, key: tuple[str, str], stream: Stream) -> None:
        holes = [
            (stream.ends[i] + 1, stream.starts[i + 1] - 1)
            for i in range(len(stream.starts) - 1)
        ]
        still_open: list[Gap] = []
        for gap in stream.gaps:
            gap.missing = sum(
                min(last, gap.last) - max(first, gap.first) + 1
                for first, last in holes
                if first <= gap.last and last >= gap.first
            )
            if gap.missing:
                still_open.append(gap)
            else:
                gap.closed = self._clock.seconds()
                self.closed.append(gap)
                self.gaps_closed += 1
                self._tell(gap)
        for first, last in holes:
            if not any(g.first <= first and last <= g.last for g in still_open):
                gap = Gap(
                    key[0],
                    key[1],
                    first,
                    last,
                    after=None,
                    before=None,
                    opened=self._clock.seconds(),
                    missing=last - first + 1,
                )
                still_open.append(gap)
                self.gaps_opened += 1
                self._tell(gap)
        still_open.sort(key=lambda g: g.first)
        stream.gaps = still_open
        while len(stream.gaps) > self._max_open_gaps:
            self._abandon(stream, stream.gaps.pop(0))
