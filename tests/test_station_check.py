"""
Real ``twistd instrumentd`` processes: ``--check`` checks and exits,
starting nothing; a bad configuration is reported with every problem and
without twistd's usage text; the shipped examples run as they are.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from instrumentd import tap
from instrumentd.station.config import load_config
from tests.test_station_e2e import _TWISTD, StationProcess

EXAMPLES = Path(__file__).resolve().parent.parent / "doc" / "examples"
LAPTOP = EXAMPLES / "laptop.toml"
UNIT = EXAMPLES / "instrumentd-station.service"

#: Much longer than a check takes, even on a loaded machine; a process
#: still running then is killed and the test fails.
_DEADLINE = 90.0

GOOD = """
[[instruments]]
name = "toy1"
driver = "tests.toyinstrument:ToyProtocol"
connection = { type = "tcp", host = "127.0.0.1", port = 4001 }
"""

#: Three problems in three places, one behind another in the old checker.
BAD = """
[api]
listen = "tpc:8700"

[[instruments]]
name = "toy1"
driver = "tests.toyinstrument:ToyProtocol"
parameters = { INTERVAL = 0, NOPE = 1 }
connection = { type = "serial", device = "/dev/x", baudrate = 9601, parity = "Q" }
"""


class _Finished(ProcessProtocol):
    """
    A process run to its end: what it wrote on each stream and how it
    ended.
    """

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: Deferred[int] = Deferred()
        self._deadline = reactor.callLater(  # type: ignore[attr-defined]
            _DEADLINE, self._overdue
        )

    def _overdue(self) -> None:
        assert self.transport is not None
        self.transport.signalProcess("KILL")

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        overdue = not self._deadline.active()
        if not overdue:
            self._deadline.cancel()
        value = reason.value
        if overdue:
            code = -9
        elif isinstance(value, ProcessDone):
            code = 0
        elif isinstance(value, ProcessTerminated) and value.exitCode is not None:
            code = value.exitCode
        else:
            code = -1
        self.ended.callback(code)


class CheckProcessTests(TestCase):
    """
    ``twistd instrumentd ... --check``, and a bad configuration, in real
    processes.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def write(self, text: str) -> str:
        """
        Write a configuration file.

        :returns: its path.
        """
        path = os.path.join(self.directory, "station.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    async def twistd(self, *args: str, daemon: bool = False) -> tuple[int, str, str]:
        """
        Run ``twistd [-n --pidfile=] instrumentd ARGS`` in the test's
        directory to its end.

        :param daemon: leave out ``-n --pidfile=``, so a process that did
            start a station would daemonize and write ``twistd.pid``.
        :returns: its exit status, stdout and stderr.
        """
        front = [] if daemon else ["-n", "--pidfile="]
        argv = [sys.executable, "-u", "-c", _TWISTD, *front, "instrumentd", *args]
        finished = _Finished()
        reactor.spawnProcess(  # type: ignore[attr-defined]
            finished, sys.executable, argv, env=dict(os.environ), path=self.directory
        )
        code = await finished.ended
        return code, finished.out.decode(), finished.err.decode()

    def assertNothingStarted(self, *outputs: str) -> None:
        """
        No station started: no API, no data directory, no pid file.
        """
        for output in outputs:
            self.assertNotIn("API listening", output)
            self.assertNotIn("port agent", output)
        self.assertEqual(
            sorted(os.listdir(self.directory)),
            ["station.toml"],
            "something was written",
        )

    async def test_checkGood(self) -> None:
        """
        --check of a good configuration says so on stdout and exits 0,
        starting nothing, not even as a daemon.
        """
        path = self.write(GOOD)
        code, out, err = await self.twistd("--config", path, "--check", daemon=True)
        self.assertEqual(code, 0, out + err)
        self.assertEqual(
            out,
            f"{path}: the station configuration is good: 1 instrument (toy1), "
            "1 sink, API on tcp:8700:interface=127.0.0.1; nothing was started\n",
        )
        self.assertEqual(err, "")
        self.assertNothingStarted(out, err)

    async def test_checkBad(self) -> None:
        """
        --check of a bad configuration exits 1 with every problem on
        stderr, one a line, and nothing else: no usage text.
        """
        path = self.write(BAD)
        code, out, err = await self.twistd("--config", path, "--check", daemon=True)
        self.assertEqual(code, 1, out + err)
        self.assertEqual(out, "")
        self.assertEqual(
            err.splitlines(),
            [
                f"{path}: the station configuration has 5 problems; nothing was "
                "started:",
                f"{path}: api.listen: not a server endpoint string: 'tpc:8700': "
                "unknown endpoint type 'tpc'; known types: " + _known_types(err),
                f"{path}: instruments[0].connection.baudrate: 9601 is not valid; "
                "valid choices: " + _baudrates(),
                f"{path}: instruments[0].connection.parity: 'Q' is not valid; "
                "valid choices: none, even, odd, mark, space, N, E, O, M, S",
                f"{path}: instruments[0].parameters.INTERVAL: 0 is below the "
                "minimum 1 s",
                f"{path}: instruments[0].parameters.NOPE: unknown parameter; "
                "known: INTERVAL, UNITS, ECHO, SERIAL",
            ],
        )
        self.assertNothingStarted(out, err)

    async def test_badConfigWithoutCheck(self) -> None:
        """
        Starting on a bad configuration prints the problems without
        twistd's usage text before them, and exits 1.
        """
        path = self.write(BAD)
        code, out, err = await self.twistd("--config", path)
        self.assertEqual(code, 1, out + err)
        self.assertNotIn("Usage:", out + err)
        self.assertNotIn("--nodaemon", out + err)
        self.assertEqual(out, "")
        self.assertIn("5 problems; nothing was started", err)
        self.assertEqual(len(err.splitlines()), 6)
        self.assertNothingStarted(out, err)

    async def test_checkTheExamples(self) -> None:
        """
        The shipped examples pass --check.
        """
        for example in ("laptop.toml", "station.toml"):
            self.write("")
            code, out, err = await self.twistd(
                "--config", str(EXAMPLES / example), "--check"
            )
            self.assertEqual(code, 0, f"{example}: {out}{err}")
            self.assertIn("the station configuration is good", out)

    async def test_checkWithSubcommand(self) -> None:
        """
        --check belongs to the station: a subcommand refuses it.
        """
        self.write("")
        code, out, err = await self.twistd("--check", "simulate", "sbe37")
        self.assertEqual(code, 1)
        self.assertIn("--check", out + err)
        self.assertIn("simulate", out + err)


def _known_types(err: str) -> str:
    # The endpoint types installed depend on the plugins present: take
    # the list as printed, and check only that it holds tcp.
    found = re.search(r"known types: (.*)", err)
    assert found is not None, err
    assert "tcp" in found.group(1), found.group(1)
    return found.group(1)


def _baudrates() -> str:
    from instrumentd.endpoints.serial import STANDARD_BAUDRATES

    return ", ".join(str(rate) for rate in STANDARD_BAUDRATES)


class LaptopExampleTests(TestCase):
    """
    ``doc/examples/laptop.toml`` runs as it is: a real station process on
    it (only its API port and data directory moved, from the command
    line) brings every instrument up.
    """

    async def test_runs(self) -> None:
        """
        Every instrument of the example is running and autosampling, and
        the API answers for each.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = load_config(str(LAPTOP))
        names = [spec.name for spec in config.instruments]
        station = StationProcess()
        argv = [
            sys.executable,
            "-u",
            "-c",
            _TWISTD,
            "-n",
            "--pidfile=",
            "instrumentd",
            "--config",
            str(LAPTOP),
            "--api",
            "tcp:0:interface=127.0.0.1",
            "--data-dir",
            os.path.join(directory, "data"),
        ]
        reactor.spawnProcess(  # type: ignore[attr-defined]
            station, sys.executable, argv, env=dict(os.environ), path=directory
        )

        async def stop() -> None:
            if station.exit_code is None:
                station.transport.signalProcess("TERM")  # type: ignore[union-attr]
                await station.ended

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        url = await station.url
        for name in names:
            await station.wait_for(re.escape(name) + r": running, AUTOSAMPLE")
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        http = HTTPClient(Agent(reactor, pool=pool))
        response = await http.get(url + "/api/instruments")
        self.assertEqual(response.code, 200)
        listed = await response.json()
        self.assertEqual(
            sorted(entry["name"] for entry in listed["instruments"]), sorted(names)
        )
        # Everything it wrote is under the data directory given.
        self.assertEqual(sorted(os.listdir(directory)), ["data"])
        await stop()
        self.assertEqual(station.exit_code, 0, station.output[-3000:])


class SystemdUnitTests(SynchronousTestCase):
    """
    ``doc/examples/instrumentd-station.service``.
    """

    def test_execStart(self) -> None:
        """
        The unit runs the station from the project's virtual environment,
        in the foreground without a pid file, with arguments the station
        takes.
        """
        text = UNIT.read_text()
        [line] = [x for x in text.splitlines() if x.startswith("ExecStart=")]
        argv = shlex.split(line.removeprefix("ExecStart="))
        self.assertEqual(argv[0], "/opt/instrumentd/venv/bin/twistd")
        self.assertEqual(argv[1:4], ["-n", "--pidfile=", "instrumentd"])
        rest = argv[4:]
        self.assertEqual(rest, ["--config", "/etc/instrumentd/station.toml"])
        # The same arguments, on an example file, are what the station
        # parses.
        options = tap.Options()
        options.parseOptions(["--config", str(LAPTOP)])
        self.assertIsNotNone(options.station_config)
        self.assertIn("KillMode=mixed", text)
