"""
Tests for L{instrumentd.driver.commands}: command declarations, argument
checks that name the command and argument, and metadata.
"""

from __future__ import annotations

import json
from datetime import datetime

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.commands import (
    CommandArgument,
    CommandDictionary,
    CommandSpec,
)
from instrumentd.driver.errors import InstrumentCommandError
from instrumentd.driver.parameters import ParameterType


def make_commands() -> CommandDictionary:
    """
    A small command set like a CTD's.
    """
    commands = CommandDictionary()
    commands.add(
        CommandSpec(
            name="acquire_sample",
            display_name="Acquire sample",
            description="Take one sample now.",
            timeout=45,
        )
    )
    commands.add(
        CommandSpec(
            name="set_clock",
            description="Set the instrument clock.",
            arguments=[
                CommandArgument(
                    name="time",
                    type=ParameterType.DATETIME,
                    description="The new time, UTC.",
                ),
                CommandArgument(
                    name="tolerance",
                    type=ParameterType.FLOAT,
                    required=False,
                    default=1.0,
                    units="s",
                    minimum=0,
                    maximum=60,
                ),
                CommandArgument(
                    name="mode",
                    type=ParameterType.ENUM,
                    required=False,
                    allowed_values=["utc", "local"],
                ),
            ],
            return_type=ParameterType.DATETIME,
            return_description="The instrument's clock after setting.",
        )
    )
    return commands


class CommandSpecTests(SynchronousTestCase):
    """
    Tests for L{CommandSpec} declarations.
    """

    def test_defaults(self) -> None:
        """
        The display name defaults to the name and the timeout to 10 s.
        """
        spec = CommandSpec(name="stop_autosample")
        self.assertEqual(("stop_autosample", 10.0), (spec.display_name, spec.timeout))

    def test_badDeclarations(self) -> None:
        """
        An argument declared twice, a timeout that is not positive and an
        enum argument without allowed values are refused when declared, as
        is a command declared twice.
        """
        argument = CommandArgument(name="n", type=ParameterType.INT)
        self.assertRaises(
            ValueError, CommandSpec, name="x", arguments=[argument, argument]
        )
        self.assertRaises(ValueError, CommandSpec, name="x", timeout=0)
        self.assertRaises(
            ValueError, CommandArgument, name="m", type=ParameterType.ENUM
        )
        commands = make_commands()
        self.assertRaises(ValueError, commands.add, CommandSpec(name="set_clock"))


class ValidateArgsTests(SynchronousTestCase):
    """
    Tests for argument validation.
    """

    def setUp(self) -> None:
        self.commands = make_commands()

    def test_converted(self) -> None:
        """
        Good arguments come back in their types, with defaults filled in
        for optional ones not given.
        """
        self.assertEqual(
            {"time": datetime(2013, 2, 5, 19, 16, 59), "tolerance": 1.0},
            self.commands.validate("set_clock", {"time": "2013-02-05T19:16:59"}),
        )
        self.assertEqual(
            {"time": datetime(2013, 2, 5), "tolerance": 5.0, "mode": "utc"},
            self.commands.validate(
                "set_clock",
                {"time": datetime(2013, 2, 5), "tolerance": 5, "mode": "utc"},
            ),
        )
        self.assertEqual({}, self.commands.validate("acquire_sample", {}))

    def test_unknownCommand(self) -> None:
        """
        An unknown command is named, with the known ones listed.
        """
        error = self.assertRaises(
            InstrumentCommandError, self.commands.validate, "acquire", {}
        )
        self.assertEqual(
            "command acquire: unknown command; valid: acquire_sample, set_clock",
            str(error),
        )

    def test_unknownArgument(self) -> None:
        """
        An unknown argument is named, with the command's arguments listed.
        """
        error = self.assertRaises(
            InstrumentCommandError,
            self.commands.validate,
            "set_clock",
            {"time": "2013-02-05T00:00:00", "tz": "UTC"},
        )
        self.assertEqual(("set_clock", "tz"), (error.command, error.argument))
        self.assertEqual(("time", "tolerance", "mode"), error.valid)

    def test_argumentToCommandWithout(self) -> None:
        """
        An argument to a command that takes none says so.
        """
        error = self.assertRaises(
            InstrumentCommandError,
            self.commands.validate,
            "acquire_sample",
            {"count": 2},
        )
        self.assertIn("takes no arguments", str(error))

    def test_missing(self) -> None:
        """
        A required argument not given is named.
        """
        error = self.assertRaises(
            InstrumentCommandError, self.commands.validate, "set_clock", {}
        )
        self.assertEqual(
            "command set_clock, argument time: is required but was not given",
            str(error),
        )

    def test_wrongType(self) -> None:
        """
        A value of the wrong type is refused, naming the argument.
        """
        error = self.assertRaises(
            InstrumentCommandError,
            self.commands.validate,
            "set_clock",
            {"time": "yesterday"},
        )
        self.assertEqual("time", error.argument)
        self.assertIn("expected type datetime", str(error))

    def test_range(self) -> None:
        """
        A value out of range is refused, with the bound and units.
        """
        error = self.assertRaises(
            InstrumentCommandError,
            self.commands.validate,
            "set_clock",
            {"time": "2013-02-05T00:00:00", "tolerance": 61},
        )
        self.assertEqual(
            "command set_clock, argument tolerance: 61.0 is above the maximum 60 s",
            str(error),
        )

    def test_allowedValues(self) -> None:
        """
        A value not allowed is refused, listing those allowed.
        """
        error = self.assertRaises(
            InstrumentCommandError,
            self.commands.validate,
            "set_clock",
            {"time": "2013-02-05T00:00:00", "mode": "gps"},
        )
        self.assertIn("'utc', 'local'", str(error))


class CommandDictionaryTests(SynchronousTestCase):
    """
    Tests for L{CommandDictionary} lookups and metadata.
    """

    def test_contents(self) -> None:
        """
        The dictionary lists, counts and finds its commands.
        """
        commands = make_commands()
        self.assertEqual(["acquire_sample", "set_clock"], commands.names())
        self.assertEqual(2, len(commands))
        self.assertIn("set_clock", commands)
        self.assertEqual(45, commands.command("acquire_sample").timeout)
        self.assertEqual(commands.names(), [spec.name for spec in commands])

    def test_metadata(self) -> None:
        """
        Each command is exported JSON-ready with the OOI metadata keys.
        """
        metadata = make_commands().metadata()
        self.assertEqual(
            {
                "display_name": "set_clock",
                "description": "Set the instrument clock.",
                "timeout": 10.0,
                "arguments": {
                    "time": {
                        "required": True,
                        "display_name": "time",
                        "description": "The new time, UTC.",
                        "range": None,
                        "value": {"type": "datetime", "units": None, "default": None},
                    },
                    "tolerance": {
                        "required": False,
                        "display_name": "tolerance",
                        "description": "",
                        "range": [0, 60],
                        "value": {"type": "float", "units": "s", "default": 1.0},
                    },
                    "mode": {
                        "required": False,
                        "display_name": "mode",
                        "description": "",
                        "range": ["utc", "local"],
                        "value": {"type": "enum", "units": None, "default": None},
                    },
                },
                "return": {
                    "type": "datetime",
                    "units": None,
                    "description": "The instrument's clock after setting.",
                },
            },
            metadata["set_clock"],
        )
        self.assertEqual(
            {"type": None, "units": None, "description": ""},
            metadata["acquire_sample"]["return"],
        )
        json.dumps(metadata)
