"""
Tests for L{instrumentd.station.refusals}: a driver's refusals said in the
operator's terms.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.connection_machine import ConnectionTable
from instrumentd.driver.errors import (
    InstrumentCommandError,
    InstrumentConnectionError,
    InstrumentStateError,
    InstrumentTimeoutError,
)
from instrumentd.driver.events import ErrorEvent, EventBus, SampleEvent
from instrumentd.driver.machine import MachineTable
from instrumentd.instruments.seabird.sbe37smp.driver import SBE37Protocol
from instrumentd.station.instrument import StationInstrument
from instrumentd.station.refusals import (
    CONNECTION_STATES,
    REQUESTS,
    InstrumentUnreachableError,
    RequestRefusedError,
    explain,
    explain_event,
    user_commands,
)
from tests.apisupport import FakeDriver, FakeParticle

LINK_DOWN = "the instrument link is down since 2026-12-07T05:56:52Z: connection refused"


class ExplainTests(SynchronousTestCase):
    """
    L{explain} rewrites refusals so no machine input reaches an operator.
    """

    def test_linkDown(self) -> None:
        """
        A refusal by the connection machine while the link is down is an
        L{InstrumentUnreachableError} (INSTRUMENT_CONNECTION) saying why,
        not a list of the connection machine's inputs.
        """
        for input, request in [
            ("execute_resource", "run a command"),
            ("get_resource", "read parameters"),
            ("set_resource", "change parameters"),
            ("discover_state", "discover the instrument's state"),
            ("start_direct", "enter direct access"),
        ]:
            refusal = ConnectionTable.refusal("INSTRUMENT_DISCONNECTED", input)
            error = explain(
                refusal,
                instrument="ctd1",
                state="INSTRUMENT_DISCONNECTED",
                problem=LINK_DOWN,
            )
            self.assertIsInstance(error, InstrumentUnreachableError)
            self.assertEqual(error.code, "INSTRUMENT_CONNECTION")
            self.assertEqual(error.message, f"cannot {request} on ctd1: {LINK_DOWN}")
            self.assertEqual(
                error.details(),
                {"state": "INSTRUMENT_DISCONNECTED", "problem": LINK_DOWN},
            )

    def test_agentUnreachable(self) -> None:
        """
        Without a known problem, the state says what is wrong.
        """
        for state, problem in [
            ("INSTRUMENT_DISCONNECTED", "the instrument link is down"),
            ("CONNECTING", "the station is connecting to its port agent"),
            ("DISCONNECTED", "the station has not connected to its port agent"),
        ]:
            error = explain(
                ConnectionTable.refusal(state, "execute_resource"),
                instrument="ctd1",
                state=state,
                problem=None,
            )
            self.assertEqual(error.message, f"cannot run a command on ctd1: {problem}")

    def test_droppedMidRequest(self) -> None:
        """
        A request that failed because the link went down under it says why
        the link is down.
        """
        error = explain(
            InstrumentConnectionError(
                "the port agent's link to the instrument is down"
            ),
            instrument="ctd1",
            state="INSTRUMENT_DISCONNECTED",
            problem=LINK_DOWN,
        )
        self.assertEqual(error.code, "INSTRUMENT_CONNECTION")
        self.assertIn(LINK_DOWN, error.message)

    def test_protocolRefusals(self) -> None:
        """
        In every state of a real protocol, a refusal of any of its inputs
        names the request in the API's words and lists only commands as
        valid: no machine input appears in the message or the details.
        """
        table = MachineTable(SBE37Protocol.machine_factory)
        # Inputs that are plain words (get, set, discover, connect) may
        # appear as words; the others may not appear at all.
        internal = {
            name
            for name in set(REQUESTS) | set(ConnectionTable.valid_inputs("CONNECTED"))
            if "_" in name
        }
        inputs = {name for state in table.states for name in table.valid_inputs(state)}
        checked = 0
        for state in table.states:
            for input in sorted(inputs - set(table.valid_inputs(state))):
                error = explain(
                    table.refusal(state, input),
                    instrument="ctd1",
                    state=state,
                    problem=None,
                )
                self.assertIsInstance(error, RequestRefusedError)
                self.assertEqual(error.code, "INSTRUMENT_STATE")
                details = error.details()
                self.assertNotIn("input", details)
                words = set(
                    error.message.replace(",", " ").replace(";", " ").split()
                ) | set(map(str, details["valid"]))  # type: ignore[call-overload]
                self.assertEqual(words & internal, set(), error.message)
                self.assertEqual(
                    set(details["valid"]) & set(REQUESTS),  # type: ignore[call-overload]
                    set(),
                )
                checked += 1
        self.assertGreater(checked, 10)

    def test_setInAutosample(self) -> None:
        """
        Changing parameters while autosampling: the commands valid now, and
        that parameters can be read.
        """
        table = MachineTable(SBE37Protocol.machine_factory)
        error = explain(
            table.refusal("AUTOSAMPLE", "set"),
            instrument="ctd1",
            state="AUTOSAMPLE",
            problem=None,
        )
        self.assertEqual(
            error.message,
            "cannot change parameters in state AUTOSAMPLE; commands valid now: "
            "acquire_calibration, acquire_sample, acquire_status, clock_sync, "
            "stop_autosample; possible now: read parameters",
        )
        self.assertEqual(
            error.details(),
            {
                "state": "AUTOSAMPLE",
                "request": "change parameters",
                "valid": [
                    "acquire_calibration",
                    "acquire_sample",
                    "acquire_status",
                    "clock_sync",
                    "stop_autosample",
                ],
                "also": ["read parameters"],
            },
        )

    def test_commandRefused(self) -> None:
        """
        A command refused names the command.
        """
        table = MachineTable(SBE37Protocol.machine_factory)
        error = explain(
            table.refusal("AUTOSAMPLE", "start_autosample"),
            instrument="ctd1",
            state="AUTOSAMPLE",
            problem=None,
        )
        self.assertTrue(
            error.message.startswith(
                "cannot run start_autosample in state AUTOSAMPLE; commands valid now:"
            )
        )
        self.assertEqual(error.details()["command"], "start_autosample")

    def test_silentInstrument(self) -> None:
        """
        A refusal while the station keeps failing to work the instrument
        (a silent one, stuck in UNKNOWN) says what is wrong.
        """
        table = MachineTable(SBE37Protocol.machine_factory)
        trouble = "discovering the instrument's state: no reply within 2 s"
        error = explain(
            table.refusal("UNKNOWN", "acquire_status"),
            instrument="ctd1",
            state="UNKNOWN",
            problem=trouble,
        )
        self.assertEqual(
            error.message,
            "cannot run acquire_status in state UNKNOWN; no commands are valid "
            "now; possible now: discover the instrument's state; what is wrong: "
            + trouble,
        )
        self.assertEqual(error.details()["problem"], trouble)

    def test_unknownCommand(self) -> None:
        """
        An unknown command lists the commands, not the other inputs of the
        protocol.
        """
        known = ["acquire_sample", "get", "set", "start_direct", "discover", "stop"]
        error = explain(
            InstrumentCommandError.unknown("fly", known),
            instrument="ctd1",
            state="COMMAND",
            problem=None,
        )
        self.assertEqual(
            error.message, "command fly: unknown command; valid: acquire_sample, stop"
        )
        self.assertEqual(error.details()["valid"], ["acquire_sample", "stop"])
        bad = InstrumentCommandError("ts", "bad", argument="n", valid=["count"])
        self.assertIs(
            explain(bad, instrument="ctd1", state="COMMAND", problem=None), bad
        )

    def test_otherErrors(self) -> None:
        """
        Other errors are left as they are.
        """
        timeout = InstrumentTimeoutError("ts", b"S>", 5)
        self.assertIs(
            explain(timeout, instrument="x", state="COMMAND", problem=None), timeout
        )
        state = InstrumentStateError("COMMAND", "ts", [])
        self.assertIsInstance(
            explain(state, instrument="x", state="COMMAND", problem=None),
            RequestRefusedError,
        )

    def test_userCommands(self) -> None:
        """
        L{user_commands} leaves out the requests the API offers on their
        own.
        """
        self.assertEqual(
            user_commands(
                ["set", "get", "acquire_sample", "start_direct", "clock_sync"]
            ),
            ["acquire_sample", "clock_sync"],
        )
        self.assertIn("INSTRUMENT_DISCONNECTED", CONNECTION_STATES)


class ExplainEventTests(SynchronousTestCase):
    """
    Events reach operators (event streams, counters) in their terms too.
    """

    def skipped(self) -> ErrorEvent:
        # What the scheduler publishes for a job skipped in the wrong state.
        refused = MachineTable(SBE37Protocol.machine_factory).refusal(
            "COMMAND", "acquire_sample"
        )
        refused = InstrumentStateError("AUTOSAMPLE", "set", refused.valid)
        return ErrorEvent(
            refused.code,
            f"scheduled job sync skipped: {refused.message}",
            {"job": "sync", "input": "set", "skipped": True, **refused.details()},
            time=5.0,
        )

    def test_skippedJob(self) -> None:
        """
        A scheduled job skipped in the wrong state is said in the API's
        words, its job and time kept.
        """
        event = explain_event(self.skipped(), instrument="ctd1", problem=None)
        assert isinstance(event, ErrorEvent)
        self.assertEqual(event.time, 5.0)
        self.assertEqual(event.error_code, "INSTRUMENT_STATE")
        self.assertTrue(
            event.message.startswith(
                "scheduled job sync skipped: cannot change parameters in state "
                "AUTOSAMPLE; commands valid now: "
            ),
            event.message,
        )
        self.assertNotIn("input", event.details)
        self.assertEqual(event.details["job"], "sync")
        self.assertEqual(event.details["request"], "change parameters")

    def test_otherEvents(self) -> None:
        """
        Other events pass unchanged.
        """
        sample = SampleEvent(FakeParticle(t=1), time=1.0)
        self.assertIs(explain_event(sample, instrument="x", problem=None), sample)
        other = ErrorEvent("INSTRUMENT_TIMEOUT", "late", time=1.0)
        self.assertIs(explain_event(other, instrument="x", problem=None), other)

    def test_subscribers(self) -> None:
        """
        A L{StationInstrument}'s subscribers (the event streams) and its
        latest error get the explained event.
        """
        driver = FakeDriver(state="AUTOSAMPLE")
        driver.events = EventBus(Clock())
        instrument = StationInstrument("ctd1", driver)
        seen: list[object] = []
        instrument.subscribe(seen.append)
        driver.events.publish(self.skipped())
        [event] = seen
        assert isinstance(event, ErrorEvent)
        self.assertIn("cannot change parameters", event.message)
        assert instrument.latest_error is not None
        self.assertIn(
            "cannot change parameters", str(instrument.latest_error["message"])
        )
