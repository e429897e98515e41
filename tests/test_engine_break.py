"""
Tests for the engine's break-based wake-up (a L{Wakeup} with C{break_ms})
and its error mark, the two things an RDI ADCP needs that a line-oriented
C{S>} instrument does not.
"""

from __future__ import annotations

import re

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.engine import Command, CommandEngine, Wakeup, text_command
from instrumentd.driver.errors import (
    InstrumentConnectionError,
    InstrumentProtocolError,
    InstrumentTimeoutError,
)

BANNER = re.compile(rb"\[(?:BREAK|ALARM) Wakeup[^>]*>")
WAKEUP = Wakeup(break_ms=300, data=b"===", regex=BANNER, timeout=2.0, tries=2)
QUERY = Command(name="WN?", build=text_command("WN?"), parse=lambda r: r.body)


class Breaks:
    """
    The connection's C{send_break}: records each break; refuses them all
    if C{refuse}, as a port agent does on a TCP link.
    """

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.sent: list[int] = []

    def __call__(self, duration_ms: int) -> Deferred[None]:
        if self.refuse:
            return fail(RuntimeError("the instrument link cannot send a break"))
        self.sent.append(duration_ms)
        return succeed(None)


def make(
    breaks: Breaks | None, wakeup: Wakeup = WAKEUP
) -> tuple[CommandEngine, list[bytes], Clock]:
    clock = Clock()
    written: list[bytes] = []
    engine = CommandEngine(
        written.append,
        prompts=[b"\r\n>"],
        wakeup=wakeup,
        clock=clock,
        send_break=breaks,
        error=re.compile(rb"ERR \d{3}:"),
    )
    return engine, written, clock


class BreakWakeupTests(SynchronousTestCase):
    """
    Waking with a serial break.
    """

    def test_breakThenBanner(self) -> None:
        """
        The first command is preceded by a break of C{break_ms}, and sent
        once the banner has arrived; no soft break is written.
        """
        breaks = Breaks()
        engine, written, _clock = make(breaks)
        result = engine.execute(QUERY)
        self.assertEqual(breaks.sent, [300])
        self.assertEqual(written, [])
        engine.data_received(b"\r\n[BREAK Wakeup A]\r\nWorkHorse Broadband")
        self.assertEqual(written, [])
        engine.data_received(b" ADCP Version 50.40\r\n>")
        self.assertEqual(written, [b"WN?\r\n"])
        engine.data_received(b"WN?\r\nWN 030 ------ Number of depth cells\r\n>")
        self.assertIn("WN 030", self.successResultOf(result))
        self.assertEqual(engine.breaks_sent, 1)

    def test_promptInBinaryIsNotTheBanner(self) -> None:
        """
        A bare prompt in the bytes before the banner (a cut binary record
        may hold C{\\r\\n>}) does not end the wake-up: only the banner does.
        """
        engine, written, _clock = make(Breaks())
        engine.execute(QUERY)
        engine.data_received(b"\x7f\x7f\x10\x02\r\n>\x00\x01")
        self.assertEqual(written, [])
        engine.data_received(b"\r\n[BREAK Wakeup A]\r\nAll Rights Reserved.\r\n>")
        self.assertEqual(written, [b"WN?\r\n"])

    def test_fallBackToSoftBreak(self) -> None:
        """
        Where the connection refuses a break, the wake-up's data (a soft
        break) is sent instead, and later wake-ups do not ask again.
        """
        breaks = Breaks(refuse=True)
        engine, written, _clock = make(breaks)
        engine.execute(QUERY)
        self.assertEqual(written, [b"==="])
        self.assertTrue(engine.break_refused)
        engine.data_received(b"\r\n[BREAK Wakeup A]\r\n>")
        engine.data_received(b"WN?\r\nWN 030 ---- cells\r\n>")
        engine.suspect_asleep()
        breaks.refuse = False
        engine.execute(QUERY)
        self.assertEqual(breaks.sent, [])
        self.assertEqual(written[-1], b"===")

    def test_noBreakNoData(self) -> None:
        """
        A wake-up that needs a break fails the command on a connection that
        has none, naming why; nothing is written.
        """
        engine, written, _clock = make(None, Wakeup(break_ms=300, regex=BANNER))
        failure = self.failureResultOf(engine.execute(QUERY))
        failure.trap(InstrumentConnectionError)
        self.assertIn("break", str(failure.value))
        self.assertEqual(written, [])

    def test_triesBreakAgain(self) -> None:
        """
        An unanswered break is tried again; after the last try the command
        fails naming the wake-up.
        """
        breaks = Breaks()
        engine, _written, clock = make(breaks)
        result = engine.execute(QUERY)
        clock.advance(2.0)
        self.assertEqual(breaks.sent, [300, 300])
        clock.advance(2.0)
        failure = self.failureResultOf(result)
        failure.trap(InstrumentTimeoutError)
        self.assertIn("wake-up for WN?", str(failure.value))

    def test_wakeupNeedsSomething(self) -> None:
        """
        A wake-up with neither data nor a break, or with an impossible
        break length, is refused when declared.
        """
        self.assertRaises(ValueError, Wakeup)
        self.assertRaises(ValueError, Wakeup, break_ms=0)
        self.assertRaises(ValueError, Wakeup, data=b"x", prompts=(b">",), regex=BANNER)


class ErrorMarkTests(SynchronousTestCase):
    """
    The engine's error pattern.
    """

    def test_refusedQuotesTheLine(self) -> None:
        """
        A reply with an C{ERR nnn:} line fails its command with the line.
        """
        engine, _written, _clock = make(None, Wakeup(data=b"\r\n"))
        engine._suspect_asleep = False
        result = engine.execute(
            Command(name="WN300", build=text_command("WN300"), parse=lambda r: None)
        )
        engine.data_received(b"WN300\r\nERR 045: PARAMETER OUT OF BOUNDS\r\n>")
        failure = self.failureResultOf(result)
        failure.trap(InstrumentProtocolError)
        self.assertEqual(
            str(failure.value),
            "the instrument refused WN300: ERR 045: PARAMETER OUT OF BOUNDS",
        )

    def test_acceptedPasses(self) -> None:
        """
        A reply without the mark is parsed as usual.
        """
        engine, _written, _clock = make(None, Wakeup(data=b"\r\n"))
        engine._suspect_asleep = False
        result = engine.execute(QUERY)
        engine.data_received(b"WN?\r\nWN 030 ---- cells\r\n>")
        self.assertIn("WN 030", self.successResultOf(result))
