# -*- test-case-name: tests.test_station_quality -*-
"""
The station's real-time quality control: one QARTOD evaluator
(:class:`~instrumentd.qc.StreamQC`) per instrument and stream, fed each
sample as it arrives, its flags attached to the sample's record.

A stream whose configuration has a spike test is flagged one sample late
(the test needs the sample after).  The station **holds each record of
such a stream back** until the next sample of the stream has come, so
that every record it writes, serves and sends carries its final flags,
the same everywhere and the same as the reference implementation's on
the whole series; nothing is amended afterwards.  A held record goes on
without waiting longer than the stream's ``hold`` (by default twice the
interval between its last two samples), with its spike flag 2 (not
evaluated), and when the instrument is taken out of service.  A stream
without a spike test (the shipped defaults have none) is not held: its
records go on at once.  ``doc/data.md`` ("Quality control") says why.

:class:`InstrumentQC` does not know what a record is: the station gives
it each sample's stream, time and values with an opaque item (the record
being made), and it calls ``release(item, qc)`` when the item's flags are
final, in the order the samples of a stream came.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from twisted.logger import Logger

from instrumentd.qc.flags import QartodFlag, aggregate
from instrumentd.qc.stream import FieldResult, Known, StreamQC
from instrumentd.station.record import EncodedQC

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from instrumentd.qc import StreamQCSpec

__all__ = ["FLAG_NAMES", "InstrumentQC", "QCFlags", "flags_dict", "sample_flag"]

T = TypeVar("T")

#: A record's ``qc``: field → test → flag (and ``aggregate``); a list of
#: flags per test for an array field, one per element.
QCFlags = dict[str, dict[str, int | list[int]]]

#: How the metrics and ``instrumentctl watch`` name each flag.
FLAG_NAMES: Final = {
    QartodFlag.PASS: "pass",
    QartodFlag.NOT_EVALUATED: "not_evaluated",
    QartodFlag.SUSPECT: "suspect",
    QartodFlag.FAIL: "fail",
    QartodFlag.MISSING: "missing",
}

#: How many combinations of flags each stream keeps made (see
#: :class:`_Combination`); beyond, a rare combination is made for its
#: sample alone.  Samples mostly all pass, or have the same field or two
#: out of range for a while.
_COMBINATIONS: Final = 256

#: The shortest default hold, seconds: samples that come in a burst (a
#: backlog after a link came back) should not each give up on the next.
_MIN_HOLD: Final = 1.0

Results = dict[str, FieldResult | list[FieldResult]]

_log = Logger()


def _field_flags(result: FieldResult | list[FieldResult]) -> dict[str, int | list[int]]:
    if isinstance(result, FieldResult):
        flags: dict[str, int | list[int]] = {
            name: int(flag) for name, flag in result.flags.items()
        }
        flags["aggregate"] = int(result.aggregate)
        return flags
    names = list(result[0].flags) if result else []
    columns: dict[str, int | list[int]] = {
        name: [int(cell.flags.get(name, QartodFlag.MISSING)) for cell in result]
        for name in names
    }
    columns["aggregate"] = [int(cell.aggregate) for cell in result]
    return columns


def flags_dict(results: Mapping[str, FieldResult | list[FieldResult]]) -> QCFlags:
    """
    Flags as a record carries them.

    :param results: each field's result (a list for an array field).
    :returns: field → test → flag, with ``aggregate``; an array field's
        flags are lists, one per element.
    """
    return {name: _field_flags(result) for name, result in results.items()}


def _worst(result: FieldResult | list[FieldResult]) -> QartodFlag:
    if isinstance(result, FieldResult):
        return result.aggregate
    return aggregate(cell.aggregate for cell in result)


def sample_flag(qc: Mapping[str, object]) -> tuple[int, list[tuple[str, int]]]:
    """
    A record's flags in brief: the aggregate over every field, and the
    fields that are suspect or fail.

    :param qc: a record's ``qc``.
    :returns: the worst flag (QARTOD precedence; 2 when there is none) and
        the fields whose aggregate is 3 or 4 (for an array field, its worst
        element's) with that flag, worst first, then by name.
    """
    each: dict[str, QartodFlag] = {}
    for name, tests in qc.items():
        value = tests.get("aggregate") if isinstance(tests, Mapping) else None
        cells = value if isinstance(value, list) else [value]
        flags = [
            QartodFlag(v)
            for v in cells
            if isinstance(v, int) and v in QartodFlag._value2member_map_
        ]
        each[name] = aggregate(flags) if flags else QartodFlag.NOT_EVALUATED
    worst = aggregate(each.values()) if each else QartodFlag.NOT_EVALUATED
    bad = sorted(
        (
            (n, int(f))
            for n, f in each.items()
            if f in (QartodFlag.SUSPECT, QartodFlag.FAIL)
        ),
        key=lambda pair: (-pair[1], pair[0]),
    )
    return int(worst), bad


class _Combination:
    """
    One combination of flags a stream's samples have had, made once: the
    record's ``qc`` (with its JSON) shared by every sample that has it, and
    how many released samples had it, for the counts.
    """

    __slots__ = ("count", "qc", "worst")

    def __init__(self, results: Mapping[str, FieldResult]) -> None:
        self.qc = EncodedQC(flags_dict(results))
        #: Each field's aggregate, for the counts.
        self.worst = tuple((name, int(r.aggregate)) for name, r in results.items())
        self.count = 0


@dataclass
class _Held(Generic[T]):
    item: T
    results: Results


class _Stream(Generic[T]):
    """
    One stream's evaluator and the record it holds back.
    """

    def __init__(self, spec: StreamQCSpec, qc: StreamQC) -> None:
        self.spec = spec
        self.qc = qc
        self.lagging = spec.lagging
        self.held: _Held[T] | None = None
        self.last_arrival: float | None = None
        # Combinations of flags met so far (when every flag is known at
        # once: see StreamQC.push_known).
        self.known: dict[Known, _Combination] = {}
        # One timer per stream, moved on (reset) for each record held
        # rather than made anew: a sample a second per instrument.
        self.timer: IDelayedCall | None = None


class InstrumentQC(Generic[T]):
    """
    One instrument's real-time QC.

    :param instrument: its name (for the counters' owner to label them).
    :param specs: stream → its checked QC configuration (an instrument
        spec's ``qc``); a stream not in it passes through unflagged.
    :param clock: the station's clock, for holding records back and for
        the time test.
    :param release: called with each item and its flags once they are
        final (``None`` for a stream without QC), in the order each
        stream's samples came.

    A stream whose every flag is known at once (no spike test; the shipped
    defaults) is released at once, and each combination of flags it meets
    is made into the record's ``qc`` once (an
    :class:`~instrumentd.station.record.EncodedQC`, JSON included) and
    shared by every record with the same flags.
    """

    def __init__(
        self,
        instrument: str,
        specs: Mapping[str, StreamQCSpec],
        *,
        clock: IReactorTime,
        release: Callable[[T, QCFlags | None], object],
    ) -> None:
        self.instrument = instrument
        self.specs = dict(specs)
        self._clock = clock
        self._release = release
        self._streams: dict[str, _Stream[T]] = {}
        # Counted sample by sample (a held stream, a rare combination);
        # the shared combinations keep their own count.
        self._counts: dict[tuple[str, str, int], int] = {}

    def __repr__(self) -> str:
        return f"<InstrumentQC {self.instrument} {sorted(self.specs)}>"

    @property
    def counts(self) -> dict[tuple[str, str, int], int]:
        """
        ``(stream, field, flag)`` → how many released samples had that
        field's aggregate flag (the worst over an array field's elements).
        """
        counts = dict(self._counts)
        for stream, each in self._streams.items():
            for combination in each.known.values():
                if not combination.count:
                    continue
                for name, flag in combination.worst:
                    key = (stream, name, flag)
                    counts[key] = counts.get(key, 0) + combination.count
        return counts

    @property
    def held(self) -> int:
        """
        How many records are held back now (one per stream at most).
        """
        return sum(1 for s in self._streams.values() if s.held is not None)

    def _stream(self, name: str) -> _Stream[T] | None:
        stream = self._streams.get(name)
        if stream is None:
            spec = self.specs.get(name)
            if spec is None:
                return None
            stream = self._streams[name] = _Stream(
                spec, spec.evaluator(now=self._clock.seconds)
            )
        return stream

    def submit(
        self, stream: str, time: float, values: Mapping[str, object], item: T
    ) -> None:
        """
        Flag the next sample of ``stream``.

        Its item is released now, or (for a stream with a spike test) when
        the next sample comes or the hold runs out; the item held before
        it is released first, with its final flags.

        :param stream: the sample's stream.
        :param time: its time, seconds since 1970-01-01 UTC.
        :param values: its values by field name.
        :param item: what to hand to ``release`` with its flags.
        """
        each = self._streams.get(stream)
        if each is None:
            each = self._stream(stream)
            if each is None:
                self._release(item, None)
                return
        try:
            known = None if each.lagging else each.qc.push_known(time, values)
            if known is not None:
                combination = each.known.get(known)
                if combination is None:
                    combination = self._combination(stream, each, time, known)
                combination.count += 1
                self._release(item, combination.qc)
                return
            step = each.qc.push(time, values)
        except Exception:
            # A fault in QC must not cost the sample: it goes on unflagged.
            _log.failure(
                "QC of {instrument} stream {stream} failed; the sample goes on "
                "without flags",
                instrument=self.instrument,
                stream=stream,
            )
            self._release(item, None)
            return
        now = self._clock.seconds()
        previous, each.last_arrival = each.last_arrival, now
        held = each.held
        if held is not None:
            # The sample before: its lagging flags are now known.
            each.held = None
            self._emit(stream, held.item, {**held.results, **step.amended})
        if not each.lagging or previous is None:
            # Nothing lags, or this is the stream's first sample here: a
            # first sample has no neighbour before, so its spike flag is
            # final already (not evaluated).
            self._emit(stream, item, step.current)
            return
        hold = each.spec.hold
        if hold is None:
            hold = max(_MIN_HOLD, 2 * (now - previous))
        each.held = _Held(item, step.current)
        timer = each.timer
        if timer is not None and timer.active():
            timer.reset(hold)
        else:
            each.timer = self._clock.callLater(hold, self._expire, each, stream)

    def _combination(
        self, stream: str, each: _Stream[T], time: float, known: Known
    ) -> _Combination:
        combination = _Combination(each.qc.results(time, known))
        if len(each.known) < _COMBINATIONS:
            each.known[known] = combination
        else:
            # Made for this sample alone: counted here, not by the caller.
            counts = self._counts
            for name, flag in combination.worst:
                key = (stream, name, flag)
                counts[key] = counts.get(key, 0) + 1
        return combination

    def _expire(self, each: _Stream[T], stream: str) -> None:
        each.timer = None
        held = each.held
        if held is None:
            return
        each.held = None
        # Released as it is: its spike flag stays 2 (not evaluated).  The
        # next sample's amendment of it is then ignored (nothing is held).
        self._emit(stream, held.item, held.results)

    def _emit(self, stream: str, item: T, results: Results) -> None:
        # Once per sample per field: one pass makes the record's flags and
        # counts them.  The flags stay QartodFlag members, which are ints
        # (JSON writes them as numbers).
        counts = self._counts
        qc: QCFlags = {}
        for name, result in results.items():
            if isinstance(result, FieldResult):
                worst = result.aggregate
                flags: dict[str, int | list[int]] = dict(result.flags)
                flags["aggregate"] = worst
            else:
                worst = _worst(result)
                flags = _field_flags(result)
            qc[name] = flags
            key = (stream, name, int(worst))
            counts[key] = counts.get(key, 0) + 1
        self._release(item, qc)

    def flush(self) -> None:
        """
        Release every held record now, as it is (its spike flag 2): the
        instrument is being taken out of service.  The evaluators keep
        their history.
        """
        for name, each in self._streams.items():
            timer, each.timer = each.timer, None
            if timer is not None and timer.active():
                timer.cancel()
            held = each.held
            if held is None:
                continue
            each.held = None
            self._emit(name, held.item, held.results)
