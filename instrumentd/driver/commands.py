# -*- test-case-name: tests.test_command_dictionary -*-
"""
The command dictionary: what an instrument's commands are, for people and
for programs.

Each command a driver offers (``acquire_sample``, ``start_autosample``,
``set_clock``) is declared once as a :class:`CommandSpec`: its display name
and description, how long a client should wait for it, its arguments
(type, whether required, units, range) and what it returns.  The
:class:`CommandDictionary` checks a call's arguments before anything is
sent, with an :class:`~instrumentd.driver.errors.InstrumentCommandError`
naming the command and the argument at fault, and exports JSON-ready
metadata with the key names of OOI command metadata.

Whether a command is valid in the current state is the protocol machine's
business, not the dictionary's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from instrumentd.driver._declarations import Declarations
from instrumentd.driver._json import DescribedOnce
from instrumentd.driver._values import (
    ParameterType,
    ValueRefused,
    check_value,
    value_range,
)
from instrumentd.driver.errors import InstrumentCommandError

__all__ = ["CommandArgument", "CommandDictionary", "CommandSpec"]


@dataclass(frozen=True, kw_only=True)
class CommandArgument(DescribedOnce):
    """
    One argument of a command.

    :ivar name: the keyword name.
    :ivar type: the value's type (the same types and conversions as
        parameters, see :class:`~instrumentd.driver.parameters.Parameter`).
    :ivar required: whether a call must give it.
    :ivar default: the value of an optional argument not given.
    :ivar units: the units, or ``None``.
    :ivar minimum: the smallest value allowed, or ``None``.
    :ivar maximum: the largest value allowed, or ``None``.
    :ivar allowed_values: the only values allowed, or ``None``.
    :ivar display_name: a name for people; defaults to :attr:`name`.
    :ivar description: what it means.
    """

    name: str
    type: ParameterType
    required: bool = True
    default: object = None
    units: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    allowed_values: Sequence[object] | None = None
    display_name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)
        if self.allowed_values is not None:
            object.__setattr__(self, "allowed_values", tuple(self.allowed_values))
        if self.type is ParameterType.ENUM and not self.allowed_values:
            raise ValueError(f"argument {self.name}: an enum needs allowed_values")

    def check(self, command: str, value: object) -> object:
        """
        Check one value given for this argument.

        :param command: the command's name, for the error.
        :param value: the value given.
        :returns: the value converted to :attr:`type`.
        :raises InstrumentCommandError: naming the command and argument.
        """
        try:
            return check_value(
                self.type,
                value,
                minimum=self.minimum,
                maximum=self.maximum,
                allowed_values=self.allowed_values,
                units=self.units,
            )
        except ValueRefused as refused:
            raise InstrumentCommandError(
                command, refused.detail, argument=self.name
            ) from None

    def metadata(self) -> dict[str, object]:
        """
        The argument in a JSON-ready form.

        :returns: ``required``, ``display_name``, ``description``, ``range``
            and a ``value`` block with ``type``, ``units``, ``default`` (the
            caller's own copy).
        """
        return super().metadata()

    def _describe(self) -> dict[str, object]:
        allowed = value_range(self.allowed_values, self.minimum, self.maximum)
        return {
            "required": self.required,
            "display_name": self.display_name,
            "description": self.description,
            "range": allowed,
            "value": {
                "type": self.type,
                "units": self.units,
                "default": self.default,
            },
        }


@dataclass(frozen=True, kw_only=True)
class CommandSpec(DescribedOnce):
    """
    The declaration of one command.

    :ivar name: the command's name, as callers give it.
    :ivar display_name: a name for people; defaults to :attr:`name`.
    :ivar description: what it does.
    :ivar timeout: seconds a client should allow for it to finish.
    :ivar arguments: its arguments, in order.
    :ivar return_type: the type of its result, or ``None`` if it returns
        nothing useful.
    :ivar return_units: the units of its result, or ``None``.
    :ivar return_description: what its result is.
    """

    name: str
    display_name: str = ""
    description: str = ""
    timeout: float = 10.0
    arguments: Sequence[CommandArgument] = ()
    return_type: ParameterType | None = None
    return_units: str | None = None
    return_description: str = ""

    def __post_init__(self) -> None:
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)
        arguments = tuple(self.arguments)
        names = [argument.name for argument in arguments]
        if len(set(names)) != len(names):
            raise ValueError(f"command {self.name}: an argument is declared twice")
        object.__setattr__(self, "arguments", arguments)
        if self.timeout <= 0:
            raise ValueError(f"command {self.name}: timeout must be > 0")

    def validate_args(self, kwargs: Mapping[str, object]) -> dict[str, object]:
        """
        Check a call's arguments before anything is sent.

        :param kwargs: argument name to value, as the caller gave them.
        :returns: every argument's value, converted to its type, with
            defaults filled in for optional arguments not given (those
            without a default are left out).
        :raises InstrumentCommandError: naming the command and the first
            argument that is unknown (listing the valid ones), missing, of
            the wrong type, or out of range.
        """
        known = {argument.name: argument for argument in self.arguments}
        for name in kwargs:
            if name not in known:
                raise InstrumentCommandError(
                    self.name,
                    "unknown argument"
                    + ("" if known else "; this command takes no arguments"),
                    argument=name,
                    valid=list(known),
                )
        checked: dict[str, object] = {}
        for argument in self.arguments:
            if argument.name in kwargs:
                checked[argument.name] = argument.check(
                    self.name, kwargs[argument.name]
                )
            elif argument.required:
                raise InstrumentCommandError(
                    self.name, "is required but was not given", argument=argument.name
                )
            elif argument.default is not None:
                checked[argument.name] = argument.default
        return checked

    def metadata(self) -> dict[str, object]:
        """
        The command in a JSON-ready form, with the key names of OOI command
        metadata.

        :returns: ``display_name``, ``description``, ``timeout``,
            ``arguments`` (name to :meth:`CommandArgument.metadata`) and
            ``return`` (``type``, ``units``, ``description``); the caller's
            own copy.
        """
        return super().metadata()

    def _describe(self) -> dict[str, object]:
        return {
            "display_name": self.display_name,
            "description": self.description,
            "timeout": self.timeout,
            "arguments": {
                argument.name: argument.shared_metadata() for argument in self.arguments
            },
            "return": {
                "type": self.return_type,
                "units": self.return_units,
                "description": self.return_description,
            },
        }


class CommandDictionary(Declarations[CommandSpec]):
    """
    An instrument's commands, in declaration order.
    """

    kind = "command"

    def add(self, command: CommandSpec) -> CommandSpec:
        """
        Declare a command.

        :param command: the declaration.
        :returns: ``command``.
        :raises ValueError: if a command of that name exists.
        """
        return self._declare(command)

    def describe(
        self,
        inputs: type[object],
        name: str,
        display_name: str = "",
        timeout: float = 10.0,
        result: str = "",
    ) -> CommandSpec:
        """
        Declare a command whose description is its input's docstring (the
        machine's inputs ``Protocol`` documents each command once).

        :param inputs: the inputs ``Protocol``.
        :param name: the command, an input of ``inputs``.
        :param display_name: a name for people.
        :param timeout: seconds a client should allow.
        :param result: what it returns.
        :returns: the declaration.
        """
        # The same declaration for every protocol of a class (and its
        # metadata made once): a CommandSpec is frozen, so sharing is safe.
        # The timeout's type is part of the key (15 and 15.0 describe
        # differently in JSON).
        key = (inputs, name, display_name, type(timeout), timeout, result)
        spec = _DESCRIBED.get(key)
        if spec is None:
            doc = getattr(inputs, name).__doc__ or ""
            spec = _DESCRIBED[key] = CommandSpec(
                name=name,
                display_name=display_name,
                description=" ".join(doc.split()),
                timeout=timeout,
                return_description=result,
            )
        return self.add(spec)

    def command(self, name: str) -> CommandSpec:
        """
        One command's declaration.

        :param name: its name.
        :returns: the declaration.
        :raises InstrumentCommandError: for an unknown command, listing the
            known ones.
        """
        try:
            return self._declared[name]
        except KeyError:
            raise InstrumentCommandError.unknown(name, self._declared) from None

    def validate(self, name: str, kwargs: Mapping[str, object]) -> dict[str, object]:
        """
        Check a call: the command exists and its arguments are good.

        :param name: the command.
        :param kwargs: its arguments.
        :returns: the arguments as :meth:`CommandSpec.validate_args` returns
            them.
        :raises InstrumentCommandError: naming what is wrong.
        """
        return self.command(name).validate_args(kwargs)

    def metadata(self) -> dict[str, dict[str, object]]:
        """
        Every command's declaration, JSON-ready, for the ``commands`` block
        of a driver's configuration metadata.

        :returns: name to :meth:`CommandSpec.metadata`.
        """
        return {name: spec.metadata() for name, spec in self._declared.items()}


#: CommandDictionary.describe's declarations, by what it was given.
_DESCRIBED: dict[tuple[object, ...], CommandSpec] = {}
