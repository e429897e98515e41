"""
Tests for L{instrumentd.driver.errors}: one hierarchy, stable codes, and
messages that name what went wrong and what would have been valid.
"""

from __future__ import annotations

import json
import re

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver import errors
from instrumentd.driver.errors import (
    InstrumentCommandError,
    InstrumentConnectionError,
    InstrumentError,
    InstrumentParameterError,
    InstrumentProtocolError,
    InstrumentStateError,
    InstrumentTimeoutError,
    ParameterRule,
    describe_awaited,
)


class HierarchyTests(SynchronousTestCase):
    """
    Every error is an L{InstrumentError} with its own stable code.
    """

    def test_codes(self) -> None:
        """
        Each class has the documented code; scripts and the HTTP API rely
        on these strings not changing.
        """
        self.assertEqual(
            {
                InstrumentError: "INSTRUMENT_ERROR",
                InstrumentConnectionError: "INSTRUMENT_CONNECTION",
                InstrumentStateError: "INSTRUMENT_STATE",
                InstrumentTimeoutError: "INSTRUMENT_TIMEOUT",
                InstrumentParameterError: "INSTRUMENT_PARAMETER",
                InstrumentProtocolError: "INSTRUMENT_PROTOCOL",
                InstrumentCommandError: "INSTRUMENT_COMMAND",
            },
            {cls: cls.code for cls in _all_error_classes()},
        )

    def test_allSubclassInstrumentError(self) -> None:
        """
        Catching L{InstrumentError} catches every driver error.
        """
        for cls in _all_error_classes():
            self.assertTrue(issubclass(cls, InstrumentError), cls)
        self.assertIsInstance(InstrumentConnectionError("link down"), InstrumentError)

    def test_messageIsStr(self) -> None:
        """
        C{str()} of an error is its message alone, and C{message} keeps it.
        """
        error = InstrumentProtocolError("instrument answered '?CMD'")
        self.assertEqual("instrument answered '?CMD'", str(error))
        self.assertEqual("instrument answered '?CMD'", error.message)

    def test_toDictIsJSON(self) -> None:
        """
        C{to_dict} gives code, message and details, all JSON-serialisable.
        """
        error = InstrumentConnectionError("port agent not reachable")
        self.assertEqual(
            {"code": "INSTRUMENT_CONNECTION", "message": "port agent not reachable"},
            error.to_dict(),
        )
        json.dumps(InstrumentStateError("A", "b", ["c"]).to_dict())
        json.dumps(InstrumentTimeoutError("ds", re.compile(b"S>"), 1).to_dict())


def _all_error_classes() -> list[type[InstrumentError]]:
    return [
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), Exception)
    ]


class InstrumentStateErrorTests(SynchronousTestCase):
    """
    Tests for L{InstrumentStateError}.
    """

    def test_message(self) -> None:
        """
        The message says what cannot be done, in which state, and what can.
        """
        error = InstrumentStateError(
            "AUTOSAMPLE", "acquire_status", ("stop_autosample", "get")
        )
        self.assertEqual(
            "cannot acquire_status in state AUTOSAMPLE; "
            "valid here: stop_autosample, get",
            str(error),
        )

    def test_attributes(self) -> None:
        """
        State, input and valid inputs (as a tuple) are kept for programs.
        """
        error = InstrumentStateError("UNCONFIGURED", "connect", iter(["configure"]))
        self.assertEqual(
            ("UNCONFIGURED", "connect", ("configure",)),
            (error.state, error.input, error.valid),
        )
        self.assertEqual(
            {
                "code": "INSTRUMENT_STATE",
                "message": error.message,
                "state": "UNCONFIGURED",
                "input": "connect",
                "valid": ["configure"],
            },
            error.to_dict(),
        )

    def test_noValidInputs(self) -> None:
        """
        A state that accepts nothing says so instead of ending in a blank.
        """
        self.assertEqual(
            "cannot go in state DEAD; valid here: none",
            str(InstrumentStateError("DEAD", "go", ())),
        )


class InstrumentTimeoutErrorTests(SynchronousTestCase):
    """
    Tests for L{InstrumentTimeoutError} and L{describe_awaited}.
    """

    def test_prompts(self) -> None:
        """
        Prompts are listed with control characters visible, with the
        command and the timeout.
        """
        error = InstrumentTimeoutError("ds", [b"S>", "<Executed/>\r\n"], 10.0)
        self.assertEqual(
            "no reply to ds within 10 s; waited for 'S>' or '<Executed/>\\r\\n'",
            str(error),
        )
        self.assertEqual(("'S>'", "'<Executed/>\\r\\n'"), error.awaited)
        self.assertEqual(("ds", 10.0), (error.command, error.timeout))

    def test_regex(self) -> None:
        """
        A regex is described as one, by its pattern.
        """
        error = InstrumentTimeoutError("wakeup", re.compile(rb"S>\s*$"), 0.5)
        self.assertEqual(
            "no reply to wakeup within 0.5 s; waited for regex b'S>\\\\s*$'",
            str(error),
        )

    def test_singlePrompt(self) -> None:
        """
        One prompt given as a string is one description, not one per
        character.
        """
        self.assertEqual(("'S>'",), describe_awaited("S>"))

    def test_details(self) -> None:
        """
        C{to_dict} carries command, awaited (a list) and timeout.
        """
        self.assertEqual(
            {
                "code": "INSTRUMENT_TIMEOUT",
                "message": "no reply to ts within 2 s; waited for 'S>'",
                "command": "ts",
                "awaited": ["'S>'"],
                "timeout": 2,
            },
            InstrumentTimeoutError("ts", b"S>", 2).to_dict(),
        )


class InstrumentParameterErrorTests(SynchronousTestCase):
    """
    Tests for L{InstrumentParameterError}.
    """

    def test_namesParameterAndRule(self) -> None:
        """
        The message names the parameter; the rule is kept as its string
        value for programs.
        """
        error = InstrumentParameterError(
            "INTERVAL", ParameterRule.RANGE, "32768 is above the maximum 32767"
        )
        self.assertEqual(
            "parameter INTERVAL: 32768 is above the maximum 32767", str(error)
        )
        self.assertEqual(("INTERVAL", "range"), (error.parameter, error.rule))
        self.assertEqual(
            {"parameter": "INTERVAL", "rule": "range"},
            {k: v for k, v in error.to_dict().items() if k in ("parameter", "rule")},
        )


class InstrumentCommandErrorTests(SynchronousTestCase):
    """
    Tests for L{InstrumentCommandError}.
    """

    def test_unknown(self) -> None:
        """
        An unknown command is named and the known ones are listed, sorted.
        """
        error = InstrumentCommandError.unknown("strat", ["stop", "start"])
        self.assertEqual(
            "command strat: unknown command; valid: start, stop", str(error)
        )
        self.assertEqual(("start", "stop"), error.valid)

    def test_argument(self) -> None:
        """
        A bad argument is named along with its command.
        """
        error = InstrumentCommandError(
            "set_clock", "is required", argument="time", valid=()
        )
        self.assertEqual("command set_clock, argument time: is required", str(error))
        self.assertEqual(
            {
                "code": "INSTRUMENT_COMMAND",
                "message": str(error),
                "command": "set_clock",
                "argument": "time",
                "valid": [],
            },
            error.to_dict(),
        )
