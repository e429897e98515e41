"""
Tests for the ``instrumentd-export`` command as a user runs it: a child
process, with its output on pipes (no progress bar) or on a pseudo-terminal
(a progress bar), and its errors; and the progress bar itself.
"""

from __future__ import annotations

import io
import os
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from instrumentd.export.progress import Progress
from tests.exportsupport import sbe37_archive

_EXPORT = "from instrumentd.export.cli import main; main()"


class _Collect(ProcessProtocol):
    """
    Everything a child writes (on a pty, stdout and stderr are one), and
    its exit status.
    """

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[int] = Deferred()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        if isinstance(value, ProcessDone):
            self.ended.callback(0)
        elif isinstance(value, ProcessTerminated):
            self.ended.callback(int(value.exitCode or -1))
        else:
            self.ended.errback(reason)


class CommandTests(TestCase):
    """
    The console script in a child process.
    """

    def setUp(self) -> None:
        self.archive = os.path.abspath(self.mktemp())
        self.out = os.path.abspath(self.mktemp())
        sbe37_archive(self.archive, days=3, per_day=200)

    async def run_command(self, *argv: str) -> tuple[str, str, int]:
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-c", _EXPORT, *argv],
            env=dict(os.environ),
            reactor=reactor,
        )
        return out.decode(), err.decode(), code

    async def test_quietWhenNotATerminal(self) -> None:
        """
        With its output on pipes the command draws no progress bar: stderr
        stays empty, stdout has one line per file written.
        """
        out, err, code = await self.run_command(self.archive, "-o", self.out)
        self.assertEqual(code, 0)
        self.assertEqual(err, "")
        self.assertEqual(
            out,
            f"CTD01/ctdpf_sample: 600 records -> "
            f"{os.path.join(self.out, 'CTD01_ctdpf_sample.csv')}\n",
        )

    async def test_progressOnATerminal(self) -> None:
        """
        On a terminal the command draws a progress bar (redrawn in place
        with carriage returns) that reaches 100 % and the records written.
        """
        collect = _Collect()
        reactor.spawnProcess(  # type: ignore[attr-defined]
            collect,
            sys.executable,
            [sys.executable, "-c", _EXPORT, self.archive, "-o", self.out],
            env=dict(os.environ),
            usePTY=True,
        )
        code = await collect.ended
        text = collect.output.decode()
        self.assertEqual(code, 0, text)
        self.assertIn("\rCTD01/ctdpf_sample (survey) [", text)
        self.assertIn("100%  600 records", text)
        self.assertIn("CTD01/ctdpf_sample: 600 records -> ", text)

    async def test_forcedProgress(self) -> None:
        """
        --progress draws the bar even on a pipe; --no-progress never does.
        """
        _, err, code = await self.run_command(
            self.archive, "-o", self.out, "--progress"
        )
        self.assertEqual(code, 0)
        self.assertIn("100%  600 records", err)

    async def test_errors(self) -> None:
        """
        A bad request ends with status 2 and one line naming the value and
        the valid choices.
        """
        out, err, code = await self.run_command(self.archive, "-i", "CTD9")
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertEqual(
            err,
            "instrumentd-export: --instrument 'CTD9': no such instrument in the "
            "archive (of the series chosen so far); valid choices: CTD01\n",
        )
        _, err, code = await self.run_command(self.archive, "--format", "excel")
        self.assertEqual(code, 2)
        self.assertIn("valid choices: csv, netcdf", err)


class ProgressTests(SynchronousTestCase):
    """
    The progress bar.
    """

    def test_disabled(self) -> None:
        """
        A bar that is not enabled writes nothing at all.
        """
        out = io.StringIO()
        bar = Progress(out, 100, enabled=False)
        bar.advance(50)
        bar.count(5)
        bar.finish()
        self.assertEqual(out.getvalue(), "")

    def test_notATerminal(self) -> None:
        """
        For a stream that is not a terminal the bar is off unless forced.
        """
        self.assertFalse(Progress.for_stream(io.StringIO(), 10).enabled)
        self.assertTrue(Progress.for_stream(io.StringIO(), 10, force=True).enabled)

    def test_redrawInterval(self) -> None:
        """
        The bar is redrawn at most every 0.2 s, in place, and ends its line
        when finished.
        """
        now = [0.0]
        out = io.StringIO()
        bar = Progress(out, 200, enabled=True, clock=lambda: now[0])
        bar.label = "CTD01"
        bar.advance(50)
        bar.advance(50)
        now[0] = 0.1
        bar.advance(10)
        self.assertEqual(out.getvalue().count("\r"), 1)
        now[0] = 0.3
        bar.count(1234)
        bar.advance(90)
        bar.finish()
        lines = out.getvalue().split("\r")
        self.assertEqual(lines[1], f"CTD01 [{'=' * 7}{' ' * 23}]  25%  0 records")
        self.assertEqual(lines[-1], f"CTD01 [{'=' * 30}] 100%  1,234 records\n")
