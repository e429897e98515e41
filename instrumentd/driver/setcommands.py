# -*- test-case-name: tests.test_driver_setcommands -*-
"""
Set commands whose names differ by firmware generation, declared as data.

An instrument's firmware is often rewritten between generations, and its
settings' commands renamed with it (an SBE 37's ``INTERVAL=`` became
``SampleInterval=``), or dropped.  A driver declares a :class:`SetCommands`
table: the generations, and for each parameter its command in each (``None``
where that generation has no such setting).  The table writes the command
for a value (:meth:`SetCommands.command`) and says which parameters a
generation lacks, with why (:meth:`SetCommands.lacking`, for
:meth:`~instrumentd.driver.parameters.ParameterDictionary.set_unsupported`).

Example::

    SETTERS = SetCommands(
        ("2.x", "3.0 on"),
        {"INTERVAL": ("INTERVAL", "SampleInterval"), "NAVG": ("NAVG", None)},
        yes="Y", no="N", decimals=3,
    )
    SETTERS.command("INTERVAL", 30, "3.0 on")  # "SampleInterval=30"
    SETTERS.lacking("3.0 on", "3.0h")  # {"NAVG": "firmware 3.0h has no such setting"}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum

from instrumentd.driver.errors import InstrumentParameterError, ParameterRule

__all__ = ["SetCommands"]


class SetCommands:
    """
    Each parameter's set command by firmware generation.

    :param generations: the generations' names, in the order of each
        parameter's commands.
    :param names: parameter to its command in each generation (``None``: no
        such setting there).
    :param template: how a command is written, with ``{command}`` and
        ``{value}``.
    :param yes: how a true value is written.
    :param no: how a false value is written.
    :param decimals: decimals a float is written with; ``None`` for
        Python's shortest form.
    :raises ValueError: if a parameter does not give one command per
        generation.
    """

    def __init__(
        self,
        generations: Sequence[str],
        names: Mapping[str, Sequence[str | None]],
        *,
        template: str = "{command}={value}",
        yes: str = "Y",
        no: str = "N",
        decimals: int | None = None,
    ) -> None:
        for name, commands in names.items():
            if len(commands) != len(generations):
                raise ValueError(
                    f"parameter {name}: {len(commands)} command(s) for "
                    f"{len(generations)} generations ({', '.join(generations)})"
                )
        self.generations = tuple(generations)
        self.names = {name: tuple(commands) for name, commands in names.items()}
        self.template = template
        self.yes = yes
        self.no = no
        self.decimals = decimals

    def _index(self, generation: str) -> int:
        try:
            return self.generations.index(generation)
        except ValueError:
            raise ValueError(
                f"generation {generation!r} is unknown; "
                f"known: {', '.join(self.generations)}"
            ) from None

    def write_value(self, value: object) -> str:
        """
        A value as a set command writes it.

        :param value: the value (checked already).
        :returns: ``yes``/``no`` for a bool, a float with ``decimals``, an
            enum member's value, else ``str(value)``.
        """
        if isinstance(value, bool):
            return self.yes if value else self.no
        if isinstance(value, float) and self.decimals is not None:
            return f"{value:.{self.decimals}f}"
        if isinstance(value, Enum):
            return str(value.value)
        return str(value)

    def command(
        self, name: str, value: object, generation: str, version: str | None = None
    ) -> str:
        """
        The command that sets a parameter to a value.

        :param name: the parameter.
        :param value: its value (checked already).
        :param generation: the instrument's generation.
        :param version: its firmware version, for the error (the generation
            if not given).
        :returns: e.g. ``"SampleInterval=30"``.
        :raises InstrumentParameterError: rule ``unknown`` for a parameter
            not in the table (listing those that are), ``unsupported`` for
            one the generation lacks.
        :raises ValueError: for an unknown generation.
        """
        index = self._index(generation)
        commands = self.names.get(name)
        if commands is None:
            raise InstrumentParameterError(
                name,
                ParameterRule.UNKNOWN,
                f"has no set command; those with one: {', '.join(self.names)}",
            )
        command = commands[index]
        if command is None:
            raise InstrumentParameterError(
                name, ParameterRule.UNSUPPORTED, f"firmware {version or generation}"
            )
        return self.template.format(command=command, value=self.write_value(value))

    def lacking(self, generation: str, version: str | None = None) -> dict[str, str]:
        """
        The parameters a generation has no command for, and why.

        :param generation: the instrument's generation.
        :param version: its firmware version, for the reason (the
            generation if not given).
        :returns: parameter to ``"firmware VERSION has no such setting"``.
        :raises ValueError: for an unknown generation.
        """
        index = self._index(generation)
        return {
            name: f"firmware {version or generation} has no such setting"
            for name, commands in self.names.items()
            if commands[index] is None
        }
