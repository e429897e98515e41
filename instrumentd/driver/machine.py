# -*- test-case-name: tests.test_connection_machine,tests.test_protocol -*-
"""
What every driver state machine shares: the table of inputs valid in each
state, refusals as :class:`~instrumentd.driver.errors.InstrumentStateError`,
following state changes, and the ``.dot`` diagram.

The driver's machines are Automat ``TypeMachineBuilder`` machines.  Automat
answers an input that has no transition in the current state with
:class:`automat.NoTransition`, which names neither what *would* have been
valid nor anything a caller can act on.  :class:`MachineTable` reads the
machine's own definition once and turns such a refusal into an
:class:`~instrumentd.driver.errors.InstrumentStateError` naming the state and
the inputs valid there, so the table can never drift from the machine.

Inputs whose names start with ``_`` are *reports*: the machine's own
collaborators tell it something happened (a reply arrived, the agent was
lost).  They are part of the machine and of its diagram, but never offered to
callers, so :meth:`MachineTable.valid_inputs` leaves them out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, Protocol, cast

from automat import NoTransition, TypeMachine

from instrumentd.driver.errors import InstrumentStateError

__all__ = [
    "MachineTable",
    "StateWatcher",
    "after_transition",
    "dot_source",
    "follow_states",
    "in_transition",
]


class _Named(Protocol):
    name: str


class _Transitioner(Protocol):
    def setTrace(self, tracer: Callable[[Any, str, Any], None] | None) -> None: ...


#: Called with (previous state, input, new state) names on every transition
#: that changes state.
StateWatcher = Callable[[str, str, str], None]


def _transitions(
    factory: TypeMachine[Any, Any],
) -> frozenset[tuple[_Named, str, _Named, object]]:
    # The automaton is the machine's definition: the same object Automat
    # consults on every input, so what we compute here cannot disagree with
    # what the machine does.
    automaton = factory.__automat_automaton__
    return cast(
        "frozenset[tuple[_Named, str, _Named, object]]", automaton.allTransitions()
    )


#: Inputs that only report on a machine (every state answers them); they
#: are not actions and are never offered as valid inputs.
QUERIES: Final = frozenset({"status"})


class MachineTable:
    """
    What a built machine accepts in each of its states, read from its
    definition.

    :param factory: the built machine (what ``TypeMachineBuilder.build()``
        returned).
    """

    def __init__(self, factory: TypeMachine[Any, Any]) -> None:
        accepted: dict[str, set[str]] = {}
        targets: dict[tuple[str, str], str] = {}
        for old, symbol, new, _outputs in _transitions(factory):
            accepted.setdefault(old.name, set()).add(symbol)
            accepted.setdefault(new.name, set())
            targets[old.name, symbol] = new.name
        self._accepted = {
            state: frozenset(symbols) for state, symbols in accepted.items()
        }
        self._targets = targets
        self.initial: str = cast(
            "_Named", factory.__automat_automaton__.initialState
        ).name
        self._valid: dict[str, tuple[str, ...]] = {}
        self._every_valid: tuple[str, ...] | None = None

    @classmethod
    def of(cls, factory: TypeMachine[Any, Any]) -> MachineTable:
        """
        The table of a built machine, read once and shared by everyone who
        asks (a table never changes).

        :param factory: the built machine.
        :returns: its table.
        """
        table = _TABLES.get(factory)
        if table is None:
            table = _TABLES[factory] = cls(factory)
        return table

    @property
    def states(self) -> list[str]:
        """
        The machine's state names, sorted.
        """
        return sorted(self._accepted)

    def accepts(self, state: str, input: str) -> bool:
        """
        :param state: a state name.
        :param input: an input name (a report's too).
        :returns: whether the machine has a transition for ``input`` in
            ``state``.
        """
        return input in self._accepted.get(state, frozenset())

    def valid_inputs(self, state: str) -> list[str]:
        """
        The inputs a caller may give in ``state``: reports (names starting
        with ``_``) and the ``status`` query every state answers are left
        out, so a refusal lists only what could be asked for instead.

        :param state: a state name.
        :returns: the input names, sorted.
        """
        valid = self._valid.get(state)
        if valid is None:
            valid = self._valid[state] = tuple(
                sorted(
                    symbol
                    for symbol in self._accepted.get(state, frozenset())
                    if not symbol.startswith("_") and symbol not in QUERIES
                )
            )
        return list(valid)

    def every_valid_input(self) -> list[str]:
        """
        The inputs a caller may give in some state (as
        :meth:`valid_inputs`), sorted.

        :returns: the input names.
        """
        every = self._every_valid
        if every is None:
            names: set[str] = set()
            for state in self._accepted:
                names.update(self.valid_inputs(state))
            every = self._every_valid = tuple(sorted(names))
        return list(every)

    def target(self, state: str, input: str) -> str | None:
        """
        :returns: the state ``input`` leads to from ``state``, or ``None``
            if it is not accepted there.
        """
        return self._targets.get((state, input))

    def refusal(self, state: str, input: str) -> InstrumentStateError:
        """
        The error for ``input`` given in ``state``, where it is not valid.

        :param state: the current state's name.
        :param input: the refused input's name.
        :returns: an error naming both and the inputs valid in ``state``.
        """
        return InstrumentStateError(state, input, self.valid_inputs(state))

    def require(self, state: str, input: str) -> None:
        """
        Refuse ``input`` unless it is valid in ``state``.

        :raises InstrumentStateError: if it is not.
        """
        if not self.accepts(state, input):
            raise self.refusal(state, input)

    @contextmanager
    def refusals(self) -> Iterator[None]:
        """
        A context in which Automat's :class:`automat.NoTransition` (raised
        before any behaviour runs, so nothing has changed) becomes an
        :class:`InstrumentStateError`.
        """
        try:
            yield
        except NoTransition as refused:
            state = cast("_Named", refused.state).name
            raise self.refusal(state, str(refused.symbol)) from None


#: MachineTable.of's tables, by machine.
_TABLES: dict[TypeMachine[Any, Any], MachineTable] = {}


def follow_states(machine: object, watcher: StateWatcher) -> None:
    """
    Call ``watcher`` on every transition of ``machine`` that changes state.

    Automat has no public hook for this; the typed machine keeps its
    transitioner on ``__automat_transitioner__`` (the same object Automat's
    own tracing uses).  The watcher runs *during* the transition, before the
    transition's behaviour: it must not call the machine's value-returning
    inputs (Automat forbids re-entry); to act once the transition is over,
    use :func:`after_transition`.

    :param machine: an instance made by a built ``TypeMachine``.
    :param watcher: called with (previous, input, new) state names.
    """
    transitioner = cast(
        "_Transitioner",
        machine.__automat_transitioner__,  # type: ignore[attr-defined]
    )

    def trace(old: _Named, symbol: str, new: _Named) -> None:
        if old.name != new.name:
            watcher(old.name, symbol, new.name)

    transitioner.setTrace(trace)


def after_transition(machine: object, action: Callable[[], None]) -> None:
    """
    Run ``action`` once the machine's current input has finished, or now if
    no input is under way.

    A listener told of a state change may well call the machine back (ask
    its capabilities, run a command).  Inside a transition Automat refuses
    that for inputs that return a value, so announcements wait until the
    input is over.  Automat runs the ``None``-returning inputs called during
    a transition from a list it keeps on ``__automat_postponed__``, once the
    transition has finished and outside it; ``action`` joins that list, so
    it runs in order with them.

    :param machine: an instance made by a built ``TypeMachine``.
    :param action: what to run.
    """
    postponed = cast(
        "list[Callable[[], None]] | None",
        getattr(machine, "__automat_postponed__", None),
    )
    if postponed is None:
        action()
    else:
        postponed.append(action)


def in_transition(machine: object) -> bool:
    """
    Whether one of the machine's inputs is under way: its behaviour, or
    something it called (a listener, a Deferred's callbacks), is running.
    An input that returns a value cannot be given then (Automat refuses
    re-entry); wait with :func:`after_transition`.

    :param machine: an instance made by a built ``TypeMachine``.
    :returns: ``True`` inside a transition.
    """
    return getattr(machine, "__automat_postponed__", None) is not None


def run_as_input(
    machine: object, action: Callable[..., object], *arguments: object
) -> None:
    """
    Run ``action`` as the machine runs an input's behaviour, without the
    input's dispatch: inputs given meanwhile are treated as inside a
    transition (those returning ``None`` postponed until ``action`` is
    over, those returning a value refused), and the postponed ones run
    after it, in order.  For a loop transition taken very often (a data
    report in a steady state) whose behaviour is known: the caller checks
    the state and :func:`in_transition` first.

    :param machine: an instance made by a built ``TypeMachine``, not in a
        transition.
    :param action: the behaviour, called with ``arguments``.
    :param arguments: its arguments.
    """
    # As Automat's implementation of an input does around its outputs.
    postponed: list[Callable[[], None]] = []
    machine.__automat_postponed__ = postponed  # type: ignore[attr-defined]
    try:
        action(*arguments)
    finally:
        machine.__automat_postponed__ = None  # type: ignore[attr-defined]
    while postponed:
        postponed.pop(0)()


_TRANSITION_ID = re.compile(r"\bt\d+\b")


def dot_source(factory: TypeMachine[Any, Any]) -> str:
    """
    The machine's diagram as graphviz ``dot`` text, from Automat's
    ``asDigraph()``, in a stable order.

    Automat walks the machine's states and transitions out of ``frozenset``
    objects, whose order changes from one Python process to the next; so
    that a committed diagram can be compared with a fresh one, the states
    and transitions are sorted and the transitions renumbered.

    :param factory: the built machine.
    :returns: the ``dot`` source.
    """
    digraph = factory.asDigraph()
    body = list(digraph.body)
    # Automat writes one line per state, then three lines per transition: a
    # label node ``tN [...]`` and the edges into and out of it.
    first = next(
        (i for i, line in enumerate(body) if _TRANSITION_ID.match(line.strip())),
        len(body),
    )
    states, rest = sorted(body[:first]), body[first:]
    groups = [rest[i : i + 3] for i in range(0, len(rest), 3)]
    # By the state the transition leaves, then its input and outputs.
    groups.sort(
        key=lambda lines: [_TRANSITION_ID.sub("t", lines[i]) for i in (1, 0, 2)]
    )
    digraph.body[:] = states
    for number, lines in enumerate(groups):
        digraph.body.extend(_TRANSITION_ID.sub(f"t{number}", line) for line in lines)
    return str(digraph.source)
