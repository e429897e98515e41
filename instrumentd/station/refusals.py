# -*- test-case-name: tests.test_station_refusals -*-
"""
What an operator is told when a request about an instrument is refused.

The driver refuses a request it cannot take now with an
:class:`~instrumentd.driver.errors.InstrumentStateError` naming the state
machine's input and the inputs valid in its state: ``cannot
execute_resource in state INSTRUMENT_DISCONNECTED; valid here: connect,
disconnect``.  That is right for a driver writer and useless to an
operator, who asked to run ``acquire_status`` and needs to hear that the
instrument cannot be reached, and why.  :func:`explain` rewrites such
errors in the operator's terms:

- while the driver is in a connection state (the instrument cannot be
  worked), a refusal or a connection error becomes an
  :class:`InstrumentUnreachableError` (503 ``INSTRUMENT_CONNECTION``) saying
  what is wrong: ``cannot run a command: the instrument link is down since
  2026-12-07T05:56:52Z: connection refused``;
- in a protocol state, a refusal becomes a :class:`RequestRefusedError`
  (409 ``INSTRUMENT_STATE``) naming what was asked in the API's words and
  the commands valid now, never the machine's own inputs;
- an unknown command (400 ``INSTRUMENT_COMMAND``) lists the commands, not
  the machine's other inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar, Final

from instrumentd.driver.errors import (
    InstrumentCommandError,
    InstrumentConnectionError,
    InstrumentError,
    InstrumentStateError,
)
from instrumentd.driver.events import DriverEvent, ErrorEvent

__all__ = [
    "CONNECTION_STATES",
    "REQUESTS",
    "InstrumentUnreachableError",
    "RequestRefusedError",
    "explain",
    "explain_event",
    "user_commands",
]

#: The states a driver reports while its instrument cannot be worked (the
#: connection machine's states before CONNECTED); any other state is the
#: protocol's, so the instrument is reachable.
CONNECTION_STATES: frozenset[str] = frozenset(
    {"UNCONFIGURED", "DISCONNECTED", "CONNECTING", "INSTRUMENT_DISCONNECTED"}
)

#: Machine inputs that the API offers as requests of their own (not as
#: commands), and what they are called there.  The connection machine's
#: inputs (``execute_resource``, ...) and the standard protocol inputs
#: (``get``, ``set``, ``discover``, ...) are both here.
REQUESTS: Final[Mapping[str, str]] = {
    "execute_resource": "run a command",
    "get_resource": "read parameters",
    "get": "read parameters",
    "set_resource": "change parameters",
    "set": "change parameters",
    "apply_startup": "apply the startup parameters",
    "discover_state": "discover the instrument's state",
    "discover": "discover the instrument's state",
    "start_direct": "enter direct access",
    "execute_direct": "send input in direct access",
    "stop_direct": "leave direct access",
}

#: The order in which other possible requests are offered.
_ALSO_ORDER: Final = (
    "get",
    "set",
    "discover",
    "start_direct",
    "execute_direct",
    "stop_direct",
)


def user_commands(capabilities: Iterable[str]) -> list[str]:
    """
    The commands an operator runs by name (``POST .../commands/NAME``,
    ``instrumentctl run``), out of a protocol's capabilities: the inputs
    the API offers as requests of their own (reading and changing
    parameters, discovery, direct access) are left out.

    :param capabilities: the protocol's capability names.
    :returns: the commands, sorted.
    """
    return sorted(name for name in capabilities if name not in REQUESTS)


class InstrumentUnreachableError(InstrumentConnectionError):
    """
    The instrument cannot be worked now: its link is down, or the station
    cannot reach its port agent.  Nothing was sent.

    :ivar instrument: the instrument's name.
    :ivar state: the driver's state.
    :ivar problem: what is wrong, in words.
    """

    def __init__(self, instrument: str, request: str, state: str, problem: str) -> None:
        """
        :param instrument: the instrument's name.
        :param request: what was asked, in the API's words.
        :param state: the driver's state.
        :param problem: what is wrong, in words.
        """
        self.instrument = instrument
        self.request = request
        self.state = state
        self.problem = problem
        super().__init__(f"cannot {request} on {instrument}: {problem}")

    def details(self) -> dict[str, object]:
        """
        :returns: ``state`` and ``problem``.
        """
        return {"state": self.state, "problem": self.problem}


class RequestRefusedError(InstrumentError):
    """
    A request that the instrument's state does not allow now, said in the
    API's words.

    :ivar state: the instrument's state.
    :ivar request: what was asked (a command's name, or e.g. ``change
        parameters``).
    :ivar command: the command's name, if a command was asked.
    :ivar valid: the commands valid now.
    :ivar also: the other requests possible now (e.g. ``read
        parameters``).
    :ivar problem: what the station is failing to do, or ``None``.
    """

    code: ClassVar[str] = InstrumentStateError.code

    def __init__(
        self,
        state: str,
        request: str,
        command: str | None,
        valid: Iterable[str],
        also: Iterable[str],
        *,
        problem: str | None = None,
    ) -> None:
        """
        :param state: the instrument's state.
        :param request: what was asked, in the API's words.
        :param command: the command's name, if a command was asked.
        :param valid: the commands valid now.
        :param also: the other requests possible now.
        :param problem: what the station is failing to do for this
            instrument, if anything (e.g. discover a silent instrument's
            state).
        """
        self.state = state
        self.problem = problem
        self.request = request
        self.command = command
        self.valid = list(valid)
        self.also = list(also)
        message = f"cannot {request} in state {state}; " + (
            f"commands valid now: {', '.join(self.valid)}"
            if self.valid
            else "no commands are valid now"
        )
        if self.also:
            message += f"; possible now: {', '.join(self.also)}"
        if problem is not None:
            message += f"; what is wrong: {problem}"
        super().__init__(message)

    def details(self) -> dict[str, object]:
        """
        :returns: ``state``, ``request``, ``command`` (when a command was
            asked), ``valid``, ``also`` and ``problem`` (when there is one).
        """
        details: dict[str, object] = {"state": self.state, "request": self.request}
        if self.command is not None:
            details["command"] = self.command
        details["valid"] = list(self.valid)
        details["also"] = list(self.also)
        if self.problem is not None:
            details["problem"] = self.problem
        return details


def _request(input: str) -> tuple[str, str | None]:
    described = REQUESTS.get(input)
    if described is not None:
        return described, None
    return f"run {input}", input


def explain(
    error: InstrumentError,
    *,
    instrument: str,
    state: str,
    problem: str | None,
) -> InstrumentError:
    """
    Rewrite a driver's error in the operator's terms (see the module's
    docstring); other errors are returned as they are.

    :param error: the driver's error.
    :param instrument: the instrument's name.
    :param state: the driver's state now.
    :param problem: what keeps the instrument from working now, in words,
        or ``None``.
    :returns: the error to answer with.
    """
    if isinstance(error, InstrumentStateError):
        if error.state in CONNECTION_STATES or state in CONNECTION_STATES:
            request, _ = _request(error.input)
            return InstrumentUnreachableError(
                instrument,
                request,
                state,
                problem or _unreachable(state),
            )
        request, command = _request(error.input)
        valid = set(error.valid)
        also = [REQUESTS[name] for name in _ALSO_ORDER if name in valid]
        return RequestRefusedError(
            error.state,
            request,
            command,
            user_commands(error.valid),
            also,
            problem=problem,
        )
    if (
        isinstance(error, InstrumentCommandError)
        and error.argument is None
        and set(error.valid) & set(REQUESTS)
    ):
        # An unknown command: list the commands, not every machine input.
        prefix = f"command {error.command}: "
        detail = error.message.removeprefix(prefix).split("; valid: ")[0]
        return InstrumentCommandError(
            error.command, detail, valid=user_commands(error.valid)
        )
    if (
        isinstance(error, InstrumentConnectionError)
        and not isinstance(error, InstrumentUnreachableError)
        and problem is not None
        and state in CONNECTION_STATES
    ):
        # A request under way when the link went down: say why it did.
        return InstrumentUnreachableError(
            instrument, "finish the request", state, problem
        )
    return error


def explain_event(
    event: DriverEvent, *, instrument: str, problem: str | None
) -> DriverEvent:
    """
    An event as the operator should read it: an ``ERROR`` event that
    reports a refusal (a scheduled job skipped in the wrong state) is said
    in the API's words, as :func:`explain` says a refusal; other events are
    returned as they are.

    :param event: the driver's event.
    :param instrument: the instrument's name.
    :param problem: what keeps the instrument from working now, or
        ``None``.
    :returns: the event to show.
    """
    if (
        not isinstance(event, ErrorEvent)
        or event.error_code != InstrumentStateError.code
    ):
        return event
    details = dict(event.details)
    state, input, valid = (
        details.get("state"),
        details.get("input"),
        details.get("valid"),
    )
    if not (
        isinstance(state, str) and isinstance(input, str) and isinstance(valid, list)
    ):
        return event
    refused = InstrumentStateError(state, input, [str(each) for each in valid])
    explained = explain(refused, instrument=instrument, state=state, problem=problem)
    message = event.message.replace(refused.message, explained.message)
    if message == event.message:
        message = explained.message
    for internal in ("input", "valid"):
        details.pop(internal, None)
    details.update(explained.details())
    return ErrorEvent(explained.code, message, details, time=event.time)


def _unreachable(state: str) -> str:
    if state == "INSTRUMENT_DISCONNECTED":
        return "the instrument link is down"
    if state == "CONNECTING":
        return "the station is connecting to its port agent"
    return "the station has not connected to its port agent"
