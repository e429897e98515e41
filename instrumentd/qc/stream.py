"""
The per-stream evaluator: every configured test on every configured field,
one sample at a time, in bounded memory.

A sample's flags are known at once for every test but the spike test,
which needs the next sample.  So :meth:`StreamQC.push` returns two things:

- ``current``: the new sample's flags, with the spike test (when
  configured) ``NOT_EVALUATED`` (or ``MISSING`` for a missing value) and the
  aggregate over what is known; ``final`` is false when a spike flag is
  still owed;
- ``amended``: the sample before, final: its spike flag filled in and its
  aggregate recomputed.

A consumer that publishes at once uses ``current`` and may publish the
amendment; one that can wait one sample uses only final results, which
equal ioos_qc's flags on the whole series.  :meth:`StreamQC.finish` gives
the last sample's final flags when the stream ends.

A stream whose every flag is known at once (no spike test, no test of the
whole sample, scalar fields: the shipped defaults) also has a short way,
:meth:`StreamQC.push_known`: it returns only the flags, as one tuple, which
a consumer that sees the same few tuples sample after sample (all pass)
can look up rather than build each sample's results anew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from math import isnan
from typing import NamedTuple, cast

from instrumentd.qc.base import FieldTest, Span, StreamTest
from instrumentd.qc.flags import QartodFlag, aggregate, as_number

__all__ = [
    "CurrentSample",
    "FieldQC",
    "FieldResult",
    "FieldStep",
    "Known",
    "StreamQC",
    "StreamStep",
]


_PASS = QartodFlag.PASS


class CurrentSample:
    """
    The sample being tested, for a test of one field that reads another
    (the climatology test's depth from the pressure field).

    :ivar values: the sample's values by field name.
    """

    def __init__(self) -> None:
        self.values: Mapping[str, object] = {}


# FieldResult and FieldStep are made for every field of every sample: named
# tuples cost a third of what frozen dataclasses do to make.


class FieldResult(NamedTuple):
    """
    One field's flags for one sample.

    :ivar time: the sample's time, seconds since 1970-01-01 UTC.
    :ivar flags: each test's flag, by test name.
    :ivar aggregate: the combined flag (see :func:`~instrumentd.qc.aggregate`).
    :ivar final: false while a lagging test still owes its flag.
    """

    time: float
    flags: Mapping[str, QartodFlag]
    aggregate: QartodFlag
    final: bool


class FieldStep(NamedTuple):
    """
    What one sample produced for one field.

    :ivar current: the new sample's result.
    :ivar amended: the sample before, now final; ``None`` when nothing was
        owed.
    """

    current: FieldResult
    amended: FieldResult | None = None


def _result(time: float, flags: dict[str, QartodFlag], final: bool) -> FieldResult:
    return FieldResult(time, flags, aggregate(flags.values()), final)


class FieldQC:
    """
    The tests of one field (or one element of an array field).

    :param tests: the tests, in the order their flags are listed.
    """

    def __init__(self, tests: Sequence[FieldTest]) -> None:
        self.tests = tuple(tests)
        self._lagging = tuple(test for test in self.tests if test.lag)
        self._pending: FieldResult | None = None

    def push(
        self, time: float, value: float | None, shared: Mapping[str, QartodFlag]
    ) -> FieldStep:
        """
        Test the next sample.

        :param time: its time, seconds since 1970-01-01 UTC.
        :param value: its value, ``None`` when missing.
        :param shared: flags of the whole-sample tests, joined to this
            field's.
        :returns: this sample's result and the amended one before it.
        """
        if not self._lagging:
            # Every flag known at once (the shipped defaults): the short way.
            # A test without lag always answers.
            known = cast(
                "dict[str, QartodFlag]",
                {test.name: test.step(time, value) for test in self.tests},
            )
            if shared:
                known.update(shared)
            return FieldStep(FieldResult(time, known, aggregate(known.values()), True))
        flags: dict[str, QartodFlag] = {}
        late: dict[str, QartodFlag] = {}
        for test in self.tests:
            flag = test.step(time, value)
            if test.lag:
                if flag is not None:
                    late[test.name] = flag
                flags[test.name] = (
                    QartodFlag.MISSING if value is None else QartodFlag.NOT_EVALUATED
                )
            else:
                assert flag is not None  # a test without lag always answers
                flags[test.name] = flag
        flags.update(shared)
        current = _result(time, flags, not self._lagging)
        amended = self._amend(late)
        self._pending = current if self._lagging else None
        return FieldStep(current, amended)

    def _amend(self, late: Mapping[str, QartodFlag]) -> FieldResult | None:
        if self._pending is None:
            return None
        flags = {**self._pending.flags, **late}
        return _result(self._pending.time, flags, True)

    def finish(self) -> FieldResult | None:
        """
        End of the stream.

        :returns: the last sample's final result if it was owed, else
            ``None``.
        """
        late: dict[str, QartodFlag] = {}
        for test in self._lagging:
            flag = test.finish()
            if flag is not None:
                late[test.name] = flag
        amended = self._amend(late)
        self._pending = None
        return amended


#: A sample's flags from :meth:`StreamQC.push_known`: every test's flag of
#: every field, fields in the order of :attr:`StreamQC.fields`, each
#: field's tests in their order.
Known = tuple[QartodFlag, ...]


@dataclass(frozen=True)
class StreamStep:
    """
    What one sample produced for a stream.

    :ivar current: each configured field's result for the new sample (a
        list for an array field).
    :ivar amended: the fields whose result for the sample before became
        final on this one.
    """

    current: dict[str, FieldResult | list[FieldResult]] = field(default_factory=dict)
    amended: dict[str, FieldResult | list[FieldResult]] = field(default_factory=dict)


class StreamQC:
    """
    Every configured test of one instrument stream.

    :param fields: for each field, a function making a fresh
        :class:`FieldQC` (called once for a scalar field, once per element
        the first time an array field has that many).
    :param stream_tests: tests of the whole sample (time, location), whose
        flags join every field's.
    :param current: updated with each sample before any test runs, for the
        tests that read other fields.
    """

    def __init__(
        self,
        fields: Mapping[str, Callable[[], FieldQC]],
        stream_tests: Sequence[StreamTest] = (),
        current: CurrentSample | None = None,
    ) -> None:
        self._current = CurrentSample() if current is None else current
        self._factories = dict(fields)
        self._stream_tests = tuple(stream_tests)
        self._scalar: dict[str, FieldQC] = {}
        self._array: dict[str, list[FieldQC]] = {}
        # The short way's plan (see push_known): made on its first use;
        # None before, False when this stream cannot take it.
        self._plan: _Plan | bool | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """
        :returns: the names of the fields tested.
        """
        return tuple(self._factories)

    def push(self, time: float, values: Mapping[str, object]) -> StreamStep:
        """
        Test the next sample.

        :param time: its time, seconds since 1970-01-01 UTC.
        :param values: its values by field name; a field absent or ``None``
            is missing; a list is an array field, each element tested on its
            own.
        :returns: the new sample's results and the amended previous ones.
        """
        sample = values
        self._current.values = sample
        shared = (
            {test.name: test.step(time, dict(sample)) for test in self._stream_tests}
            if self._stream_tests
            else {}
        )
        step = StreamStep()
        for name, make in self._factories.items():
            value = sample.get(name)
            if name in self._array and not isinstance(value, list | tuple):
                # An array field missing altogether: every cell is missing.
                value = [None] * len(self._array[name])
            if isinstance(value, list | tuple):
                cells = self._array.setdefault(name, [])
                cells.extend(make() for _ in range(len(value) - len(cells)))
                steps = [
                    qc.push(time, as_number(item), shared)
                    for qc, item in zip(cells, value, strict=False)
                ]
                step.current[name] = [s.current for s in steps]
                late = [s.amended for s in steps if s.amended is not None]
                if late:
                    step.amended[name] = late
            else:
                qc = self._scalar.get(name)
                if qc is None:
                    qc = self._scalar[name] = make()
                one = qc.push(time, as_number(value), shared)
                step.current[name] = one.current
                if one.amended is not None:
                    step.amended[name] = one.amended
        return step

    def _make_plan(self) -> _Plan | bool:
        if self._stream_tests or self._array:
            return False
        names = tuple(self._factories)
        steps: list[tuple[int, FieldTest, float | None, float | None]] = []
        layout: list[tuple[str, tuple[str, ...]]] = []
        for index, name in enumerate(names):
            qc = self._scalar.get(name)
            if qc is None:
                qc = self._scalar[name] = self._factories[name]()
            if qc._lagging:
                return False
            for test in qc.tests:
                span: Span | None = getattr(test, "pass_span", None)
                low, high = (None, None) if span is None else span
                steps.append((index, test, low, high))
            layout.append((name, tuple(test.name for test in qc.tests)))
        # Every test passes what lies in its span, whatever came before:
        # a sample whose every value lies in all its field's spans passes
        # everything, known without asking any test.
        passing: list[tuple[str, float, float]] | None = []
        for index, name in enumerate(names):
            spans = [(low, high) for i, _, low, high in steps if i == index]
            if not spans or any(low is None or high is None for low, high in spans):
                passing = None
                break
            assert passing is not None
            passing.append(
                (
                    name,
                    max(cast("float", low) for low, _ in spans),
                    min(cast("float", high) for _, high in spans),
                )
            )
        return _Plan(
            names,
            tuple(steps),
            tuple(layout),
            None if passing is None else tuple(passing),
            (_PASS,) * len(steps),
        )

    def push_known(self, time: float, values: Mapping[str, object]) -> Known | None:
        """
        Test the next sample the short way, when every flag is known at
        once: the same tests, history and flags as :meth:`push`, returned
        as one tuple (see :data:`Known` and :meth:`results`).

        :param time: its time, seconds since 1970-01-01 UTC.
        :param values: its values by field name, as for :meth:`push`.
        :returns: the flags; ``None``, having tested nothing, when this
            stream or sample cannot go the short way (a test that lags or
            tests the whole sample, an array field): use :meth:`push`.
        """
        plan = self._plan
        if plan is None:
            plan = self._plan = self._make_plan()
        if plan is False or self._array:
            return None
        assert isinstance(plan, _Plan)
        get = values.get
        passing = plan.passing
        if passing is not None:
            for name, bottom, top in passing:
                value = get(name)
                # (NaN compares false: missing, the long way below.)
                if value.__class__ is not float or not bottom <= value <= top:
                    break
            else:
                # Every test passes every value (what the samples of a
                # healthy instrument nearly all do).
                self._current.values = values
                return plan.all_pass
        numbers: list[float | None] = []
        for name in plan.names:
            value = get(name)
            if value.__class__ is float:
                # The common case, as as_number reads it: NaN is missing.
                numbers.append(None if isnan(value) else value)
            elif isinstance(value, list | tuple):
                # An array field: the long way, which knows them.
                return None
            else:
                numbers.append(as_number(value))
        self._current.values = values
        flags: list[QartodFlag | None] = []
        append = flags.append
        for i, test, low, high in plan.steps:
            number = numbers[i]
            if (
                low is not None
                and high is not None
                and number is not None
                and low <= number <= high
            ):
                # Within the span a test without history passes: its flag
                # without the call.
                append(_PASS)
            else:
                append(test.step(time, number))
        return tuple(flags)  # type: ignore[arg-type]

    def results(self, time: float, known: Known) -> dict[str, FieldResult]:
        """
        What :meth:`push` would have returned as ``current`` for a sample
        that :meth:`push_known` flagged.

        :param time: the sample's time.
        :param known: its flags from :meth:`push_known`.
        :returns: each field's result (final).
        """
        plan = self._plan
        assert isinstance(plan, _Plan), "results() after push_known() only"
        out: dict[str, FieldResult] = {}
        at = 0
        for name, tests in plan.layout:
            flags = dict(zip(tests, known[at : at + len(tests)], strict=True))
            at += len(tests)
            out[name] = FieldResult(time, flags, aggregate(flags.values()), True)
        return out

    def finish(self) -> dict[str, FieldResult | list[FieldResult]]:
        """
        End of the stream.

        :returns: the last sample's final results still owed, by field.
        """
        owed: dict[str, FieldResult | list[FieldResult]] = {}
        for name, qc in self._scalar.items():
            result = qc.finish()
            if result is not None:
                owed[name] = result
        for name, cells in self._array.items():
            results = [r for r in (c.finish() for c in cells) if r is not None]
            if results:
                owed[name] = results
        return owed


class _Plan(NamedTuple):
    """
    How :meth:`StreamQC.push_known` goes: the fields it reads, each test
    with the index of its field and the span of values it passes without
    being asked (its ``pass_span``, low and high; ``None`` for a test that
    must see every value), each field's test names; and when every test
    has a span, each field with the span its every test passes (``None``
    otherwise), and the flags of a sample within them all.
    """

    names: tuple[str, ...]
    steps: tuple[tuple[int, FieldTest, float | None, float | None], ...]
    layout: tuple[tuple[str, tuple[str, ...]], ...]
    passing: tuple[tuple[str, float, float], ...] | None
    all_pass: Known
