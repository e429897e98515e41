"""
Ready-made commands for line-oriented instruments
(:mod:`instrumentd.driver.textcommands`), run by a real
:class:`~instrumentd.driver.engine.CommandEngine` on a clock.
"""

from __future__ import annotations

import re
from typing import ClassVar

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.engine import CommandEngine, Reply
from instrumentd.driver.errors import InstrumentProtocolError, InstrumentTimeoutError
from instrumentd.driver.particles import RegexDataParticle
from instrumentd.driver.textcommands import line_command, record_command


class Status(RegexDataParticle):
    stream_name: ClassVar[str] = "toy_status"
    pattern = re.compile(rb"interval = (?P<interval>\d+)\r\n")
    converters = {"interval": int}


class Engine:
    """
    An engine whose writes are kept, on a clock.
    """

    def __init__(self) -> None:
        self.clock = Clock()
        self.sent: list[bytes] = []
        self.engine = CommandEngine(
            self.sent.append,
            prompts=(b"S>",),
            clock=self.clock,
            error=re.compile(rb"\?cmd"),
        )


class LineCommandTests(SynchronousTestCase):
    """
    A line of text, sent as given and named by it.
    """

    def test_sentAsGiven(self) -> None:
        """
        The text is sent with CR LF, braces and all; the result is ``None``
        and the name is the text.
        """
        bench = Engine()
        command = line_command("NAME={x}")
        done = bench.engine.execute(command)
        self.assertEqual(bench.sent, [b"NAME={x}\r\n"])
        bench.engine.data_received(b"NAME={x}\r\nS>")
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(command.name, "NAME={x}")

    def test_parseRegexNewline(self) -> None:
        """
        A parser, a regex ending the reply and another line end.
        """
        bench = Engine()
        command = line_command(
            "Get", parse=Reply.body.fget, regex=re.compile(rb"#\n"), newline="\n"
        )
        done = bench.engine.execute(command)
        self.assertEqual(bench.sent, [b"Get\n"])
        bench.engine.data_received(b"value 3 #\n")
        self.assertEqual(self.successResultOf(done), "value 3 #")

    def test_timeout(self) -> None:
        """
        No reply within the command's timeout fails it, naming it.
        """
        bench = Engine()
        done = bench.engine.execute(line_command("STOP", timeout=5.0))
        bench.clock.advance(5.0)
        error = self.failureResultOf(done, InstrumentTimeoutError).value
        self.assertIn("STOP", str(error))

    def test_refused(self) -> None:
        """
        A refusal fails the command, named by its text.
        """
        bench = Engine()
        done = bench.engine.execute(line_command("INTERVAL=3"))
        bench.engine.data_received(b"?cmd S>")
        error = self.failureResultOf(done, InstrumentProtocolError).value
        self.assertIn("INTERVAL=3", str(error))

    def test_expect(self) -> None:
        """
        A reply holding what ``expect`` names is the command's; one without
        it fails the command, naming it and what was missing.
        """
        bench = Engine()
        done = bench.engine.execute(line_command("STARTNOW", expect=b"start now"))
        bench.engine.data_received(b"STARTNOW\r\nstart now\r\nS>")
        self.assertIsNone(self.successResultOf(done))
        done = bench.engine.execute(line_command("STARTNOW", expect=b"start now"))
        bench.engine.data_received(b"STARTNOW\r\nS>")
        error = self.failureResultOf(done, InstrumentProtocolError).value
        self.assertIn("STARTNOW: no 'start now' in the reply", str(error))

    def test_notOneLine(self) -> None:
        """
        Text with a line end, or not ASCII, is refused at once.
        """
        for text in ("DS\r\nTS", "A\nB", "TEMP=20°"):
            with self.assertRaises(ValueError) as caught:
                line_command(text)
            self.assertIn(repr(text), str(caught.exception))


class RecordCommandTests(SynchronousTestCase):
    """
    A command whose reply holds a record: its result is the values.
    """

    def test_values(self) -> None:
        """
        The first record of the kind in the reply gives the values.
        """
        bench = Engine()
        done = bench.engine.execute(record_command("DS", Status, timeout=3.0))
        self.assertEqual(bench.sent, [b"DS\r\n"])
        bench.engine.data_received(b"DS\r\ninterval = 15\r\ninterval = 20\r\nS>")
        self.assertEqual(self.successResultOf(done), {"interval": 15})

    def test_noRecord(self) -> None:
        """
        A prompt without such a record before it does not end the reply
        (it is a late answer to something sent earlier); with no record by
        the timeout the command fails with a timeout naming it.
        """
        bench = Engine()
        done = bench.engine.execute(record_command("DS", Status, timeout=3.0))
        bench.engine.data_received(b"DS\r\nsomething else\r\nS>")
        self.assertNoResult(done)
        bench.clock.advance(3.0)
        error = self.failureResultOf(done, InstrumentTimeoutError).value
        self.assertIn("DS", str(error))

    def test_strayPromptPassedOver(self) -> None:
        """
        A prompt that arrives before the record (a wake-up's, late) is
        passed over: the reply is the one holding the record.
        """
        bench = Engine()
        done = bench.engine.execute(record_command("DS", Status, timeout=3.0))
        bench.engine.data_received(b"\r\n\r\nS>")
        self.assertNoResult(done)
        bench.engine.data_received(b"DS\r\ninterval = 15\r\nS>")
        self.assertEqual(self.successResultOf(done), {"interval": 15})

    def test_refusedRecord(self) -> None:
        """
        A refused record command fails at once with the refusal.
        """
        bench = Engine()
        done = bench.engine.execute(record_command("DS", Status, timeout=3.0))
        bench.engine.data_received(b"DS\r\n?cmd S>")
        error = self.failureResultOf(done, InstrumentProtocolError).value
        self.assertIn("?cmd", str(error))
