# -*- test-case-name: tests.test_driver_errors -*-
"""
The errors a driver raises, as one hierarchy.

Every error carries a stable machine-readable :attr:`~InstrumentError.code`
(for the HTTP API, events and scripts to branch on) and a message a person
can act on: it names the thing that went wrong and, where there is a choice,
what would have been valid.  :meth:`InstrumentError.to_dict` gives the same
facts in a JSON-ready form.

The OOI framework surfaced most of these as generic exceptions whose text
had to be parsed; here each kind of failure has its own class and fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import ClassVar

__all__ = [
    "InstrumentCommandError",
    "InstrumentConnectionError",
    "InstrumentError",
    "InstrumentParameterError",
    "InstrumentProtocolError",
    "InstrumentStateError",
    "InstrumentTimeoutError",
    "ParameterRule",
    "describe_awaited",
]


def _names(names: Iterable[str]) -> str:
    """
    Join names for a message, saying so when there are none.
    """
    joined = ", ".join(names)
    return joined if joined else "none"


class InstrumentError(Exception):
    """
    The base of every error a driver raises about its instrument.

    :ivar code: a stable machine-readable code, such as
        ``"INSTRUMENT_TIMEOUT"``; each subclass has its own.
    :ivar message: the human-readable explanation.
    """

    code: ClassVar[str] = "INSTRUMENT_ERROR"

    def __init__(self, message: str) -> None:
        """
        :param message: what went wrong, in words a person can act on.
        """
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, object]:
        """
        The structured facts of this error beyond its code and message.

        :returns: a JSON-ready dict; empty for the base class.
        """
        return {}

    def to_dict(self) -> dict[str, object]:
        """
        The error in a JSON-ready form.

        :returns: ``{"code": ..., "message": ...}`` plus :meth:`details`.
        """
        return {"code": self.code, "message": self.message, **self.details()}

    def __str__(self) -> str:
        return self.message


class InstrumentConnectionError(InstrumentError):
    """
    The instrument cannot be reached: the port agent is down or unreachable,
    the instrument link is down, or the connection is not configured.
    """

    code: ClassVar[str] = "INSTRUMENT_CONNECTION"


class InstrumentStateError(InstrumentError):
    """
    An input (a command, a connection step) is not valid in the current
    state of a state machine.  Nothing was changed or sent.

    :ivar state: the state the machine was in.
    :ivar input: the input that was refused.
    :ivar valid: the inputs that are valid in that state.
    """

    code: ClassVar[str] = "INSTRUMENT_STATE"

    def __init__(self, state: str, input: str, valid: Iterable[str]) -> None:
        """
        :param state: the current state's name, e.g. ``"AUTOSAMPLE"``.
        :param input: the refused input's name, e.g. ``"acquire_status"``.
        :param valid: the names of the inputs valid in ``state``.
        """
        self.state = state
        self.input = input
        self.valid: tuple[str, ...] = tuple(valid)
        super().__init__(
            f"cannot {input} in state {state}; valid here: {_names(self.valid)}"
        )

    def details(self) -> dict[str, object]:
        """
        :returns: ``state``, ``input`` and ``valid`` (a list).
        """
        return {"state": self.state, "input": self.input, "valid": list(self.valid)}


def describe_awaited(
    awaited: str | bytes | re.Pattern[str] | re.Pattern[bytes] | Iterable[str | bytes],
) -> tuple[str, ...]:
    """
    Turn what a command waited for into readable descriptions.

    :param awaited: one prompt, a compiled regex, or several prompts.
    :returns: one description per prompt (its ``repr``), or a single
        ``"regex ..."`` description for a pattern.
    """
    if isinstance(awaited, re.Pattern):
        return (f"regex {awaited.pattern!r}",)
    if isinstance(awaited, str | bytes):
        return (_prompt_text(awaited),)
    return tuple(_prompt_text(prompt) for prompt in awaited)


def _prompt_text(prompt: str | bytes) -> str:
    """
    Show a prompt with its control characters visible (``'S>\\r\\n'``).
    """
    if isinstance(prompt, bytes):
        prompt = prompt.decode("latin-1")
    return repr(prompt)


class InstrumentTimeoutError(InstrumentError):
    """
    The instrument did not answer in time.

    :ivar command: the command (or wake-up) that was waiting.
    :ivar awaited: what it waited for, as readable descriptions (see
        :func:`describe_awaited`).
    :ivar timeout: how long it waited, in seconds.
    """

    code: ClassVar[str] = "INSTRUMENT_TIMEOUT"

    def __init__(
        self,
        command: str,
        awaited: str
        | bytes
        | re.Pattern[str]
        | re.Pattern[bytes]
        | Iterable[str | bytes],
        timeout: float,
    ) -> None:
        """
        :param command: the name of the command that timed out.
        :param awaited: the prompt(s) or regex that would have ended its
            reply.
        :param timeout: the seconds it waited.
        """
        self.command = command
        self.awaited = describe_awaited(awaited)
        self.timeout = timeout
        super().__init__(
            f"no reply to {command} within {timeout:g} s; "
            f"waited for {' or '.join(self.awaited) or 'nothing'}"
        )

    def details(self) -> dict[str, object]:
        """
        :returns: ``command``, ``awaited`` (a list) and ``timeout``.
        """
        return {
            "command": self.command,
            "awaited": list(self.awaited),
            "timeout": self.timeout,
        }


class ParameterRule(StrEnum):
    """
    The rules a parameter value can break; the ``rule`` of an
    :class:`InstrumentParameterError`.
    """

    #: The parameter is not in the dictionary.
    UNKNOWN = "unknown"
    #: The parameter can never be set.
    READ_ONLY = "read_only"
    #: The parameter can be set only while applying the startup config.
    IMMUTABLE = "immutable"
    #: The value is not of (and cannot be read as) the parameter's type.
    TYPE = "type"
    #: The value is outside the parameter's range.
    RANGE = "range"
    #: The value is not one of the parameter's allowed values.
    ALLOWED_VALUES = "allowed_values"
    #: A startup parameter has neither an init nor a default value.
    REQUIRED = "required"
    #: An init (startup config) value was given for a parameter that is not
    #: applied at startup, so it would be silently ignored.
    NOT_STARTUP = "not_startup"
    #: This instrument (its firmware, its fit) has no such setting.
    UNSUPPORTED = "unsupported"


class InstrumentParameterError(InstrumentError):
    """
    A parameter value was refused; nothing was set.

    :ivar parameter: the parameter's name.
    :ivar rule: the rule that was broken (a :class:`ParameterRule` value).
    """

    code: ClassVar[str] = "INSTRUMENT_PARAMETER"

    def __init__(self, parameter: str, rule: str, detail: str) -> None:
        """
        :param parameter: the parameter's name.
        :param rule: the rule broken, usually a :class:`ParameterRule`.
        :param detail: what was wrong and what would be accepted.
        """
        self.parameter = parameter
        self.rule = str(rule)
        super().__init__(f"parameter {parameter}: {detail}")

    def details(self) -> dict[str, object]:
        """
        :returns: ``parameter`` and ``rule``.
        """
        return {"parameter": self.parameter, "rule": self.rule}


class InstrumentProtocolError(InstrumentError):
    """
    The instrument said something the driver could not understand, or
    answered a command with an error of its own.
    """

    code: ClassVar[str] = "INSTRUMENT_PROTOCOL"


class InstrumentCommandError(InstrumentError):
    """
    A command was refused before anything was sent: it is unknown, or its
    arguments are wrong.

    :ivar command: the command's name.
    :ivar argument: the argument at fault, or ``None``.
    :ivar valid: the valid names in context: the known commands for an
        unknown command, the known arguments for an unknown argument.
    """

    code: ClassVar[str] = "INSTRUMENT_COMMAND"

    def __init__(
        self,
        command: str,
        detail: str,
        *,
        argument: str | None = None,
        valid: Iterable[str] = (),
    ) -> None:
        """
        :param command: the command's name.
        :param detail: what is wrong, e.g. ``"unknown command"``.
        :param argument: the argument at fault, if any.
        :param valid: valid names to list in the message, if any.
        """
        self.command = command
        self.argument = argument
        self.valid: tuple[str, ...] = tuple(valid)
        where = f"command {command}" + (
            f", argument {argument}" if argument is not None else ""
        )
        message = f"{where}: {detail}"
        if self.valid:
            message += f"; valid: {_names(self.valid)}"
        super().__init__(message)

    @classmethod
    def unknown(cls, command: str, known: Iterable[str]) -> InstrumentCommandError:
        """
        The error for a command that does not exist.

        :param command: the name asked for.
        :param known: the commands that do exist.
        :returns: an error listing the known commands.
        """
        return cls(command, "unknown command", valid=sorted(known))

    def details(self) -> dict[str, object]:
        """
        :returns: ``command``, ``argument`` and ``valid`` (a list).
        """
        return {
            "command": self.command,
            "argument": self.argument,
            "valid": list(self.valid),
        }
