"""
Set commands by firmware generation (:mod:`instrumentd.driver.setcommands`).
"""

from __future__ import annotations

from enum import Enum

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.errors import InstrumentParameterError, ParameterRule
from instrumentd.driver.setcommands import SetCommands

SETTERS = SetCommands(
    ("2.x", "3.0 on"),
    {
        "INTERVAL": ("INTERVAL", "SampleInterval"),
        "NAVG": ("NAVG", None),
        "TX": ("TXREALTIME", "TxRealTime"),
        "REFPRESS": ("REFPRESS", "ReferencePressure"),
    },
    decimals=3,
)


class Mode(Enum):
    FAST = "F"


class SetCommandsTests(SynchronousTestCase):
    """
    The table writes each generation's command.
    """

    def test_byGeneration(self) -> None:
        """
        Each generation's name; yes and no, floats with their decimals,
        enum members by value.
        """
        self.assertEqual(SETTERS.command("INTERVAL", 30, "2.x"), "INTERVAL=30")
        self.assertEqual(SETTERS.command("INTERVAL", 30, "3.0 on"), "SampleInterval=30")
        self.assertEqual(SETTERS.command("TX", False, "3.0 on"), "TxRealTime=N")
        self.assertEqual(SETTERS.command("TX", True, "2.x"), "TXREALTIME=Y")
        self.assertEqual(SETTERS.command("REFPRESS", 1.5, "2.x"), "REFPRESS=1.500")
        custom = SetCommands(
            ("one",), {"MODE": ("mode",)}, template="set {command} {value}"
        )
        self.assertEqual(custom.command("MODE", Mode.FAST, "one"), "set mode F")
        self.assertEqual(custom.write_value(0.25), "0.25")

    def test_lacking(self) -> None:
        """
        A generation's missing settings, with why (naming the version when
        given).
        """
        self.assertEqual(SETTERS.lacking("2.x"), {})
        self.assertEqual(
            SETTERS.lacking("3.0 on", "3.0h"),
            {"NAVG": "firmware 3.0h has no such setting"},
        )

    def test_unsupported(self) -> None:
        """
        A setting the generation lacks: rule ``unsupported``, naming the
        firmware.
        """
        with self.assertRaises(InstrumentParameterError) as caught:
            SETTERS.command("NAVG", 2, "3.0 on", "3.0h")
        self.assertEqual(caught.exception.rule, ParameterRule.UNSUPPORTED)
        self.assertIn("3.0h", str(caught.exception))

    def test_unknownParameter(self) -> None:
        """
        A parameter without a command: rule ``unknown``, listing those with
        one.
        """
        with self.assertRaises(InstrumentParameterError) as caught:
            SETTERS.command("SPEED", 2, "2.x")
        self.assertEqual(caught.exception.rule, ParameterRule.UNKNOWN)
        self.assertIn("INTERVAL, NAVG, TX, REFPRESS", str(caught.exception))

    def test_unknownGeneration(self) -> None:
        """
        A generation not in the table is refused, listing the known ones.
        """
        for call in (
            lambda: SETTERS.command("INTERVAL", 1, "4.x"),
            lambda: SETTERS.lacking("4.x"),
        ):
            with self.assertRaises(ValueError) as caught:
                call()
            self.assertIn("'4.x' is unknown; known: 2.x, 3.0 on", str(caught.exception))

    def test_badTable(self) -> None:
        """
        A parameter without one command per generation is refused, named.
        """
        with self.assertRaises(ValueError) as caught:
            SetCommands(("a", "b"), {"X": ("x",)})
        self.assertIn(
            "parameter X: 1 command(s) for 2 generations", str(caught.exception)
        )
