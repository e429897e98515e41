# -*- test-case-name: tests.test_station_api -*-
"""
The operations on one instrument that both the HTTP API and remote
commands over MQTT (:mod:`instrumentd.station.remote`) carry out: read and
set parameters, run a command, discover the state.  Each checks its input
(raising :class:`~instrumentd.station.api._errors.Refusal` with the same
words over either path), applies a change in the instrument's turn
(:meth:`~instrumentd.station.instrument.StationInstrument.exclusive`: one
at a time, in arrival order) and gives the answer's body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred

from instrumentd.station.api._errors import Refusal
from instrumentd.station.instrument import StationInstrument

__all__ = [
    "Guard",
    "discover",
    "read_parameters",
    "run_command",
    "set_parameters",
    "unknown_instrument",
]

#: Called when a change's turn comes, before it is applied; raises
#: :class:`Refusal` to refuse it then (a remote request that expired while
#: it waited).
Guard = Callable[[], None]


def _in_turn(
    instrument: StationInstrument,
    change: Callable[[], Deferred[Any]],
    guard: Guard | None,
) -> Deferred[Any]:
    def run() -> Deferred[Any]:
        if guard is not None:
            guard()
        return change()

    return instrument.exclusive(run)


def unknown_instrument(name: str, known: list[str]) -> Refusal:
    """
    The refusal of a name the station does not have.

    :param name: the name asked for.
    :param known: the station's instruments.
    """
    return Refusal(
        404,
        "UNKNOWN_INSTRUMENT",
        f"there is no instrument {name!r} in this station; "
        f"known: {', '.join(known) or 'none'}",
        instrument=name,
        known=known,
    )


def read_parameters(
    instrument: StationInstrument, names: list[str]
) -> Deferred[dict[str, object]]:
    """
    Read parameters.

    :param instrument: the instrument.
    :param names: the parameters; empty for all.
    :returns: ``{"instrument", "parameters"}``.
    """
    name = instrument.name
    read = instrument.driver.get_resource(names or "ALL")
    return read.addCallback(lambda values: {"instrument": name, "parameters": values})


def set_parameters(
    instrument: StationInstrument,
    values: Mapping[str, object],
    *,
    guard: Guard | None = None,
) -> Deferred[dict[str, object]]:
    """
    Set parameters, in the instrument's turn.

    :param instrument: the instrument.
    :param values: new values by parameter name.
    :param guard: see :data:`Guard`.
    :returns: ``{"instrument", "changed", "parameters"}``.
    :raises Refusal: for no values at all.
    """
    if not values:
        raise Refusal(
            400,
            "BAD_REQUEST",
            'give at least one parameter to set, e.g. {"INTERVAL": 10}',
        )

    def answer(changed: dict[str, object]) -> dict[str, object]:
        return {
            "instrument": instrument.name,
            "changed": changed,
            "parameters": instrument.driver.get_cached_config(),
        }

    given = dict(values)
    return _in_turn(
        instrument, lambda: instrument.driver.set_resource(given), guard
    ).addCallback(answer)


def run_command(
    instrument: StationInstrument,
    command: str,
    arguments: Mapping[str, object],
    *,
    guard: Guard | None = None,
) -> Deferred[dict[str, object]]:
    """
    Run a command, in the instrument's turn.

    :param instrument: the instrument.
    :param command: the command's name.
    :param arguments: its arguments.
    :param guard: see :data:`Guard`.
    :returns: ``{"instrument", "command", "result", "state"}``.
    :raises Refusal: for an argument named ``command``.
    """
    if "command" in arguments:
        # execute_resource(command, **arguments) takes the command's
        # name as "command": no command can have an argument so named.
        raise Refusal(
            400,
            "BAD_REQUEST",
            "no command takes an argument named 'command'; the command's "
            "name is in the path",
        )
    given = dict(arguments)

    def answer(result: object) -> dict[str, object]:
        return {
            "instrument": instrument.name,
            "command": command,
            "result": result,
            "state": instrument.state,
        }

    return _in_turn(
        instrument,
        lambda: instrument.driver.execute_resource(command, **given),
        guard,
    ).addCallback(answer)


def discover(
    instrument: StationInstrument, *, guard: Guard | None = None
) -> Deferred[dict[str, object]]:
    """
    Discover the instrument's state, in its turn.

    :param instrument: the instrument.
    :param guard: see :data:`Guard`.
    :returns: ``{"instrument", "state"}``.
    """
    return _in_turn(instrument, instrument.driver.discover_state, guard).addCallback(
        lambda state: {"instrument": instrument.name, "state": state}
    )
