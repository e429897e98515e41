# -*- test-case-name: tests.test_protocol -*-
"""
The states every instrument protocol machine has, and the inputs they
share: :class:`ProtocolState`, :class:`ProtocolInputs` and
:func:`standard_states`, which declares UNKNOWN, COMMAND, AUTOSAMPLE and
DIRECT_ACCESS with their shared transitions (discover, get, set, startup
parameters, direct access) on an instrument's ``TypeMachineBuilder``.
:mod:`instrumentd.driver.protocol` explains the pattern and re-exports all
of these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred, fail, succeed

from instrumentd.driver.errors import InstrumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    # Automat does not export the type of its states; only annotations
    # name it.
    from automat._typed import TypedState

    from instrumentd.driver.dialogue import Command
    from instrumentd.driver.engine import InstrumentSession
    from instrumentd.driver.protocol import InstrumentProtocol

__all__ = [
    "InputsT",
    "ProtocolInputs",
    "ProtocolState",
    "StandardStates",
    "autosample_inputs",
    "every_state",
    "loop_inputs",
    "standard_states",
]


class ProtocolState(StrEnum):
    """
    The states every protocol machine has.
    """

    UNKNOWN = "UNKNOWN"
    COMMAND = "COMMAND"
    AUTOSAMPLE = "AUTOSAMPLE"
    DIRECT_ACCESS = "DIRECT_ACCESS"


class ProtocolInputs(Protocol):
    """
    The inputs every protocol machine has; an instrument's inputs
    ``Protocol`` extends this one.
    """

    def status(self) -> str:
        """
        :returns: the current state's name.
        """

    def discover(self) -> Deferred[str]:
        """
        Ask the instrument what it is doing (valid in UNKNOWN).

        :returns: a Deferred firing with the state found.
        """

    def get(self, names: list[str]) -> Deferred[dict[str, object]]:
        """
        Read parameters (``["ALL"]`` for all); in COMMAND, stale values are
        read from the instrument first.
        """

    def set(
        self, values: Mapping[str, object], startup: bool = False
    ) -> Deferred[dict[str, object]]:
        """
        Change parameters (valid in COMMAND); checked before anything is
        sent.

        :returns: a Deferred firing with the parameters that really changed.
        """

    def apply_startup(self) -> Deferred[dict[str, object]]:
        """
        Set the startup values of the startup parameters (valid in
        COMMAND).
        """

    def start_direct(self) -> Deferred[None]:
        """
        Enter direct access (valid in COMMAND), saving the direct-access
        parameters.
        """

    def execute_direct(self, data: bytes) -> Deferred[None]:
        """
        Write bytes straight to the instrument (valid in DIRECT_ACCESS).
        """

    def stop_direct(self) -> Deferred[str]:
        """
        Leave direct access: rediscover, and restore the direct-access
        parameters that changed.
        """

    def _in_command(self) -> None:
        """
        Report: the instrument is in command mode.
        """

    def _in_autosample(self) -> None:
        """
        Report: the instrument is sampling on its own.
        """

    def _unknown(self) -> None:
        """
        Report: what the instrument is doing is no longer known.
        """


InputsT = TypeVar("InputsT", bound=ProtocolInputs)
CoreT = TypeVar("CoreT", bound="InstrumentProtocol[Any]")


@dataclass(frozen=True)
class StandardStates(Generic[InputsT, CoreT]):
    """
    The four states every protocol machine has, for the instrument to add
    its own transitions to.
    """

    unknown: TypedState[InputsT, CoreT]
    command: TypedState[InputsT, CoreT]
    autosample: TypedState[InputsT, CoreT]
    direct_access: TypedState[InputsT, CoreT]


def standard_states(
    builder: TypeMachineBuilder[InputsT, CoreT],
) -> StandardStates[InputsT, CoreT]:
    """
    Declare UNKNOWN (the initial state), COMMAND, AUTOSAMPLE and
    DIRECT_ACCESS on ``builder`` with their shared transitions:

    - every state: ``status``; ``_unknown`` leads to UNKNOWN;
    - UNKNOWN: ``discover`` (via :meth:`InstrumentProtocol.discover_state`);
    - COMMAND: ``get`` (refreshing stale values), ``set``,
      ``apply_startup``, ``start_direct``;
    - AUTOSAMPLE: ``get`` (cached values only);
    - DIRECT_ACCESS: ``execute_direct``, ``stop_direct``;
    - the reports ``_in_command`` and ``_in_autosample`` lead to COMMAND and
      AUTOSAMPLE from every state.

    Call it before declaring any other state, so that UNKNOWN is the
    initial one; give each state of your own :func:`every_state`.

    :param builder: the instrument's machine builder.
    :returns: the states.
    """
    unknown = builder.state(ProtocolState.UNKNOWN.value)
    command = builder.state(ProtocolState.COMMAND.value)
    autosample = builder.state(ProtocolState.AUTOSAMPLE.value)
    direct_access = builder.state(ProtocolState.DIRECT_ACCESS.value)
    states = StandardStates(unknown, command, autosample, direct_access)
    for state in (unknown, command, autosample, direct_access):
        every_state(state, states)

    @unknown.upon(ProtocolInputs.discover).loop()
    def discover(
        machine: ProtocolInputs, core: InstrumentProtocol[Any]
    ) -> Deferred[str]:
        return core.rediscover(machine, "discover")

    @command.upon(ProtocolInputs.get).loop()
    def get_fresh(
        machine: ProtocolInputs, core: InstrumentProtocol[Any], names: list[str]
    ) -> Deferred[dict[str, object]]:
        return core.read_parameters(names, refresh=True)

    @autosample.upon(ProtocolInputs.get).loop()
    def get_cached(
        machine: ProtocolInputs, core: InstrumentProtocol[Any], names: list[str]
    ) -> Deferred[dict[str, object]]:
        return core.read_parameters(names, refresh=False)

    @command.upon(ProtocolInputs.set).loop()
    def set_parameters(
        machine: ProtocolInputs,
        core: InstrumentProtocol[Any],
        values: Mapping[str, object],
        startup: bool = False,
    ) -> Deferred[dict[str, object]]:
        return core.change_parameters(values, startup)

    @command.upon(ProtocolInputs.apply_startup).loop()
    def apply_startup(
        machine: ProtocolInputs, core: InstrumentProtocol[Any]
    ) -> Deferred[dict[str, object]]:
        try:
            values = core.parameters.startup_values()
        except InstrumentError:
            return fail()
        return core.change_parameters(values, True, input="apply_startup")

    @command.upon(ProtocolInputs.start_direct).to(direct_access)
    def start_direct(
        machine: ProtocolInputs, core: InstrumentProtocol[Any]
    ) -> Deferred[None]:
        core.save_direct_access()
        return succeed(None)

    @direct_access.upon(ProtocolInputs.execute_direct).loop()
    def execute_direct(
        machine: ProtocolInputs, core: InstrumentProtocol[Any], data: bytes
    ) -> Deferred[None]:
        return core.engine.write_direct(data)

    @direct_access.upon(ProtocolInputs.stop_direct).loop()
    def stop_direct(
        machine: ProtocolInputs, core: InstrumentProtocol[Any]
    ) -> Deferred[str]:
        return core.rediscover(machine, "stop_direct")

    return states


def every_state(
    state: TypedState[InputsT, CoreT], states: StandardStates[InputsT, CoreT]
) -> None:
    """
    Give a state what every protocol state has: ``status``, and the
    reports ``_in_command``,
    ``_in_autosample`` and ``_unknown`` leading to COMMAND, AUTOSAMPLE and
    UNKNOWN (a loop where the state is that one already).

    :param state: one of the instrument's own states.
    :param states: the standard states.
    """
    state.upon(ProtocolInputs.status).loop().returns(state.name)

    for report, target in (
        (ProtocolInputs._in_command, states.command),
        (ProtocolInputs._in_autosample, states.autosample),
        (ProtocolInputs._unknown, states.unknown),
    ):
        if target is state:
            state.upon(report).loop().returns(None)
        else:
            state.upon(report).to(target).returns(None)


def autosample_inputs(
    states: StandardStates[InputsT, CoreT],
    start_input: Callable[..., Deferred[None]],
    stop_input: Callable[..., Deferred[None]],
    start: Command[Any],
    stop: Command[Any],
) -> None:
    """
    Give the machine the usual way in and out of autosample: in COMMAND,
    ``start_input`` sends ``start`` and, once it is accepted, the machine
    is in AUTOSAMPLE; in AUTOSAMPLE, ``stop_input`` sends ``stop``, applies
    what waits for command mode (startup values, direct-access restores:
    :meth:`~instrumentd.driver.protocol.InstrumentProtocol.settle_in_command`)
    and the machine is in COMMAND.

    :param states: the standard states.
    :param start_input: the inputs ``Protocol``'s ``start_autosample``.
    :param stop_input: its ``stop_autosample``.
    :param start: the instrument's command that starts sampling.
    :param stop: the one that stops it.
    """
    start_name, stop_name = start_input.__name__, stop_input.__name__

    @states.command.upon(start_input).loop()
    def start_autosample(machine: ProtocolInputs, core: CoreT) -> Deferred[None]:
        return core.run(start_name, start).addCallback(
            lambda _: machine._in_autosample()
        )

    @states.autosample.upon(stop_input).loop()
    def stop_autosample(machine: ProtocolInputs, core: CoreT) -> Deferred[None]:
        async def work(session: InstrumentSession) -> None:
            await session.run(stop)
            await core.settle_in_command(session)

        return core.hold(stop_name, work).addCallback(lambda _: machine._in_command())


def loop_inputs(
    states: Iterable[TypedState[InputsT, CoreT]], *inputs: Callable[..., object]
) -> None:
    """
    Give each of ``states`` the ``inputs`` whose work is the protocol's
    method of the same name: the machine stays in its state and the input
    returns what the method returns (a Deferred), its arguments passed on.
    The behaviour is named as the method, so diagrams say what runs.

    Example: ``loop_inputs((states.command, states.autosample),
    MyInputs.acquire_status)`` runs ``MyProtocol.acquire_status(self)`` in
    COMMAND and in AUTOSAMPLE.

    :param states: the states the inputs are valid in.
    :param inputs: inputs of the machine's inputs ``Protocol``.
    :raises ValueError: for an input whose name is private (a report).
    """
    for input in inputs:
        name = input.__name__
        if name.startswith("_"):
            raise ValueError(f"{name} is a report, not an input for a method")
        behaviour = _method_behaviour(name)
        for state in states:
            state.upon(input).loop()(behaviour)


def _method_behaviour(name: str) -> Callable[..., object]:
    def behaviour(machine: object, core: object, *args: Any, **kwargs: Any) -> object:
        return getattr(core, name)(*args, **kwargs)

    behaviour.__name__ = behaviour.__qualname__ = name
    return behaviour
