"""
Tests for L{instrumentd.newdriver}: a new driver from the template passes
its own tests against its own simulator, as written.
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from instrumentd.newdriver import main, write_skeleton
from tests.agentsupport import reactor


class TemplateRunsTests(TestCase):
    """
    The generated package, run as its writer would run it.
    """

    timeout = 120

    async def test_testsPass(self) -> None:
        """
        The generated tests pass against the generated simulator, in a
        child process, from the directory the package was written to; the
        simulator runs under C{twistd instrumentd simulate module:Class}
        checks.
        """
        directory = Path(self.mktemp())
        directory.mkdir()
        write_skeleton("acme_ctd9", directory, "Acme CTD-9")
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(directory.resolve()), *sys.path]
        )
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-m", "twisted.trial", "acme_ctd9"],
            env=environment,
            path=str(directory),
            reactor=reactor,
        )
        self.assertEqual(code, 0, (out + err).decode()[-3000:])
        self.assertIn(b"PASSED (successes=5)", out)
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            [
                "-c",
                "from instrumentd.simulator.options import SimulateOptions;"
                "o = SimulateOptions();"
                "o.parseOptions(['acme_ctd9.simulator:AcmeCtd9Simulator']);"
                "print(o.model)",
            ],
            env=environment,
            path=str(directory),
            reactor=reactor,
        )
        self.assertEqual(code, 0, err.decode())
        self.assertEqual(out.strip(), b"acme_ctd9.simulator:AcmeCtd9Simulator")


class CommandTests(SynchronousTestCase):
    """
    The command's refusals.
    """

    def test_written(self) -> None:
        """
        The package has a driver, a simulator and tests, named after it.
        """
        directory = Path(self.mktemp())
        directory.mkdir()
        with redirect_stdout(io.StringIO()) as said:
            self.assertEqual(main(["acme_ctd9", "--dir", str(directory)]), 0)
        self.assertIn("python -m twisted.trial acme_ctd9", said.getvalue())
        written = sorted(
            str(path.relative_to(directory)) for path in directory.rglob("*.py")
        )
        self.assertEqual(
            written,
            [
                "acme_ctd9/__init__.py",
                "acme_ctd9/driver.py",
                "acme_ctd9/simulator.py",
                "acme_ctd9/test/__init__.py",
                "acme_ctd9/test/test_driver.py",
            ],
        )
        driver = (directory / "acme_ctd9" / "driver.py").read_text()
        self.assertIn("class AcmeCtd9Protocol(", driver)
        self.assertNotIn("@", driver.replace("@_states", ""))

    def test_badName(self) -> None:
        """
        A name that is not a package name is refused, saying what is valid.
        """
        directory = Path(self.mktemp())
        error = self.assertRaises(ValueError, write_skeleton, "Acme-CTD", directory)
        self.assertIn("lower-case letters, digits and _", str(error))
        self.assertRaises(ValueError, write_skeleton, "class", directory)

    def test_noOverwrite(self) -> None:
        """
        An existing package is never overwritten.
        """
        directory = Path(self.mktemp())
        (directory / "acme_ctd9").mkdir(parents=True)
        with redirect_stderr(io.StringIO()) as said:
            self.assertEqual(main(["acme_ctd9", "--dir", str(directory)]), 2)
        self.assertIn("exists; choose another name or directory", said.getvalue())
