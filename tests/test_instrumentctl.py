"""
Tests for L{instrumentd.cli.instrumentctl}: the CLI run in-process against
a real station API on a loopback port (a real C{Site} serving
L{StationAPI} over fake drivers), once as the installed console script in a
child process, and against a closed port.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site

from instrumentd.cli.instrumentctl import (
    ExitCode,
    format_table,
    parse_assignments,
    parse_value,
    run,
)
from instrumentd.driver.errors import InstrumentStateError
from instrumentd.driver.events import (
    ConnectionEvent,
    ErrorEvent,
    EventBus,
    SampleEvent,
    StateChangeEvent,
)
from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.station.api import StationAPI
from instrumentd.station.instrument import LinkReport, Station, StationInstrument
from tests.apisupport import FakeDriver, FakeParticle
from tests.portsupport import refusing_port


class StatusParticle(FakeParticle):
    """
    A particle of another stream, as a status dump is.
    """

    stream_name = "fake_status"


class Capture(io.StringIO):
    """
    A text stream that can say when something has been written to it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._waiting: list[tuple[str, Deferred[None]]] = []

    def write(self, text: str) -> int:
        written = super().write(text)
        for wanted, waiter in list(self._waiting):
            if wanted in self.getvalue():
                self._waiting.remove((wanted, waiter))
                waiter.callback(None)
        return written

    def wait_for(self, wanted: str) -> Deferred[None]:
        """
        :returns: a Deferred firing once C{wanted} has been written.
        """
        waiter: Deferred[None] = Deferred()
        if wanted in self.getvalue():
            waiter.callback(None)
        else:
            self._waiting.append((wanted, waiter))
        return waiter


class TrackingSite(Site):
    """
    A C{Site} that can wait until every connection it accepted has closed,
    so tests end with no connection left open.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed: list[Deferred[None]] = []

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        closed: Deferred[None] = Deferred()
        self.closed.append(closed)
        lost = channel.connectionLost

        def connectionLost(reason: Any) -> None:
            lost(reason)
            closed.callback(None)

        channel.connectionLost = connectionLost
        return channel

    def all_closed(self) -> Deferred[Any]:
        """
        :returns: a Deferred firing once every connection has closed.
        """
        return gatherResults(list(self.closed))


class StationFixture:
    """
    A station API of one fake instrument, C{ctd}, on a loopback port; and
    of more fake instruments, C{others}, when asked.
    """

    def __init__(self, token: str | None = None, others: Sequence[str] = ()) -> None:
        self.driver = FakeDriver(state="AUTOSAMPLE")
        self.driver.events = EventBus(reactor)
        self.driver.parameters = {"INTERVAL": 5, "UNITS": "C", "SERIAL": "1234"}
        self.driver.answers["get_resource"] = lambda names: (
            dict(self.driver.parameters)
            if names == "ALL"
            else {name: self.driver.parameters[name] for name in names}
        )
        self.driver.answers["set_resource"] = lambda values: values
        self.instrument = StationInstrument(
            "ctd",
            self.driver,
            port_agent={"pid": 99, "ports": {"data": 4001, "command": 4002}},
            clock=reactor,
        )
        #: The drivers of C{others}, by name.
        self.others: dict[str, FakeDriver] = {}
        instruments = [self.instrument]
        for name in others:
            driver = self.others[name] = FakeDriver(state="AUTOSAMPLE")
            driver.events = EventBus(reactor)
            instruments.append(StationInstrument(name, driver, clock=reactor))
        self.api = StationAPI(
            Station(instruments, clock=reactor), token=token, clock=reactor
        )
        self.site = TrackingSite(self.api)
        self.url = ""

    @defer.inlineCallbacks
    def start(self, case: TestCase) -> Any:
        """
        Listen, and clean up after C{case}.
        """
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            self.site
        )
        self.url = f"http://127.0.0.1:{port.getHost().port}"

        @defer.inlineCallbacks
        def stop() -> Any:
            self.api.close()
            yield self.site.all_closed()
            yield port.stopListening()

        case.addCleanup(stop)


class InstrumentctlTestCase(TestCase):
    """
    Helpers: a station, and running the CLI against it.
    """

    token: str | None = None
    #: More instruments than C{ctd}.
    others: Sequence[str] = ()

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.station = StationFixture(self.token, self.others)
        yield self.station.start(self)

    @defer.inlineCallbacks
    def ctl(
        self,
        *argv: str,
        environ: Mapping[str, str] | None = None,
        url: bool = True,
        interrupted: Deferred[None] | None = None,
        stdout: Capture | None = None,
        stderr: Capture | None = None,
    ) -> Any:
        """
        Run instrumentctl with C{argv} (and C{--url} of the station).

        :returns: a Deferred firing with (exit status, stdout, stderr).
        """
        out = stdout if stdout is not None else Capture()
        err = stderr if stderr is not None else Capture()
        arguments = ["--url", self.station.url, *argv] if url else list(argv)
        code = yield Deferred.fromCoroutine(
            run(
                reactor,
                arguments,
                stdout=out,
                stderr=err,
                environ=environ if environ is not None else {},
                interrupted=interrupted,
            )
        )
        return code, out.getvalue(), err.getvalue()


class ReadTests(InstrumentctlTestCase):
    """
    list, status and get.
    """

    @defer.inlineCallbacks
    def test_list(self) -> Any:
        """
        C{list} prints an aligned table of the instruments.
        """
        code, out, err = yield self.ctl("list")
        self.assertEqual((code, err), (ExitCode.OK, ""))
        self.assertEqual(
            out,
            "NAME  STATE       CONNECTED  SAMPLES  LATEST SAMPLE  PROBLEM\n"
            "ctd   AUTOSAMPLE  yes        0        -              -\n",
        )

    @defer.inlineCallbacks
    def test_problemShown(self) -> Any:
        """
        C{list} and C{status} say what keeps an instrument from working.
        """
        self.station.driver.state = "INSTRUMENT_DISCONNECTED"
        self.station.instrument.link = LinkReport(1_796_000_000, "connection refused")
        problem = (
            "the instrument link is down since 2026-11-30T00:53:20Z: connection refused"
        )
        code, out, err = yield self.ctl("list")
        self.assertEqual((code, err), (ExitCode.OK, ""))
        self.assertEqual(out.splitlines()[1].split("  ")[-1], problem)
        code, out, err = yield self.ctl("status", "ctd")
        self.assertEqual((code, err), (ExitCode.OK, ""))
        self.assertIn(f"\nproblem:    {problem}\n", out)

    @defer.inlineCallbacks
    def test_listJSON(self) -> Any:
        """
        C{--json} prints the API's JSON, before or after the subcommand.
        """
        for argv in [("--json", "list"), ("list", "--json")]:
            code, out, _ = yield self.ctl(*argv)
            self.assertEqual(code, ExitCode.OK)
            self.assertEqual(json.loads(out)["instruments"][0]["name"], "ctd")

    @defer.inlineCallbacks
    def test_status(self) -> Any:
        """
        C{status NAME} shows the state, commands, counters, port agent and
        cached parameters.
        """
        self.station.driver.sample(temperature=12.5)
        code, out, _ = yield self.ctl("status", "ctd")
        self.assertEqual(code, ExitCode.OK)
        self.assertIn("ctd: AUTOSAMPLE\n", out)
        self.assertIn("commands:   acquire_sample, start_autosample\n", out)
        self.assertIn("samples:    1, errors: 0\n", out)
        self.assertIn("temperature=12.5", out)
        self.assertIn("port agent: pid 99, data 4001, command 4002\n", out)
        self.assertIn(
            "PARAMETER  VALUE\nINTERVAL   5\nSERIAL     1234\nUNITS      C\n", out
        )

    @defer.inlineCallbacks
    def test_statusRecord(self) -> Any:
        """
        The latest sample in C{status NAME} is read from its record (version
        2): the time it was taken and each value with its units.
        """
        taken = 1796630400.25 + NTP_UNIX_OFFSET

        class Described:
            def to_dict(self) -> dict[str, object]:
                return {
                    "pkt_format_id": "JSON_Data",
                    "stream_name": "ctd_sample",
                    "internal_timestamp": taken,
                    "driver_timestamp": taken + 9,
                    "preferred_timestamp": "internal_timestamp",
                    "values": [
                        {"value_id": "temperature", "value": 12.5, "units": "degree_C"},
                        {"value_id": "serial", "value": "0042"},
                    ],
                }

        events = self.station.driver.events
        events.publish(SampleEvent(Described(), time=events.now()))
        code, out, _ = yield self.ctl("status", "ctd")
        self.assertEqual(code, ExitCode.OK)
        self.assertIn(
            "latest:     2026-12-07T08:00:00.250Z temperature=12.5 degree_C, "
            "serial=0042\n",
            out,
        )

    @defer.inlineCallbacks
    def test_get(self) -> Any:
        """
        C{get NAME PARAM...} reads the named parameters (all without any).
        """
        code, out, _ = yield self.ctl("get", "ctd", "UNITS", "INTERVAL")
        self.assertEqual(code, ExitCode.OK)
        self.assertEqual(out, "PARAMETER  VALUE\nUNITS      C\nINTERVAL   5\n")
        self.assertEqual(self.station.driver.calls[-1][1], (["UNITS", "INTERVAL"],))
        code, out, _ = yield self.ctl("get", "ctd", "--json")
        self.assertEqual(json.loads(out)["parameters"]["SERIAL"], "1234")
        self.assertEqual(self.station.driver.calls[-1][1], ("ALL",))


class ChangeTests(InstrumentctlTestCase):
    """
    set and run.
    """

    @defer.inlineCallbacks
    def test_set(self) -> Any:
        """
        C{set NAME PARAM=VALUE...} sends values parsed as JSON where they
        parse, else as text, and shows what changed.
        """
        code, out, _ = yield self.ctl(
            "set", "ctd", "INTERVAL=10", "UNITS=F", "ECHO=true", 'SERIAL="77"'
        )
        self.assertEqual(code, ExitCode.OK)
        self.assertEqual(
            self.station.driver.calls[-1][1],
            ({"INTERVAL": 10, "UNITS": "F", "ECHO": True, "SERIAL": "77"},),
        )
        self.assertIn("CHANGED   VALUE\nINTERVAL  10\nUNITS     F\n", out)

    @defer.inlineCallbacks
    def test_run(self) -> Any:
        """
        C{run NAME COMMAND ARG=VALUE...} runs the command with its
        arguments and shows its result: a list of records as a table.
        """
        self.station.driver.answers["execute_resource"] = lambda command, **kw: (
            [{"temperature": 12.5, "pressure": 1.0}] * kw["count"]
        )
        code, out, _ = yield self.ctl("run", "ctd", "take_samples", "count=2")
        self.assertEqual(code, ExitCode.OK)
        self.assertEqual(
            self.station.driver.calls[-1][1:], (("take_samples",), {"count": 2})
        )
        self.assertEqual(
            out,
            "take_samples: done; state now AUTOSAMPLE\n"
            "temperature  pressure\n12.5         1.0\n12.5         1.0\n",
        )

    @defer.inlineCallbacks
    def test_runWithoutCommand(self) -> Any:
        """
        C{run NAME} without a command says which commands there are and
        which are valid now, and exits 2; nothing is run.
        """
        code, out, err = yield self.ctl("run", "ctd")
        self.assertEqual((code, out), (ExitCode.USAGE, ""))
        self.assertEqual(
            err,
            "instrumentctl: run needs a COMMAND; ctd's commands: acquire_sample, "
            "start_autosample\n"
            "valid now (in state AUTOSAMPLE): acquire_sample, start_autosample\n"
            "e.g. instrumentctl run ctd acquire_sample\n",
        )
        self.assertNotIn(
            "execute_resource", [call[0] for call in self.station.driver.calls]
        )

    @defer.inlineCallbacks
    def test_apiError(self) -> Any:
        """
        A refusal exits 1 with the station's message on stderr (and its
        JSON on stdout with C{--json}).
        """
        self.station.driver.answers["execute_resource"] = InstrumentStateError(
            "AUTOSAMPLE", "acquire_status", ["stop_autosample"]
        )
        code, out, err = yield self.ctl("run", "ctd", "acquire_status")
        self.assertEqual(code, ExitCode.API_ERROR)
        self.assertEqual(out, "")
        self.assertEqual(
            err,
            "error: cannot run acquire_status in state AUTOSAMPLE; "
            "commands valid now: stop_autosample\n",
        )
        code, out, err = yield self.ctl("--json", "run", "ctd", "acquire_status")
        self.assertEqual(code, ExitCode.API_ERROR)
        self.assertEqual(json.loads(out)["error"]["valid"], ["stop_autosample"])

    @defer.inlineCallbacks
    def test_timeout(self) -> Any:
        """
        A station that does not answer within C{--timeout} exits 3, saying
        the change may still be made.
        """
        self.station.driver.answers["execute_resource"] = lambda command: Deferred()
        code, out, err = yield self.ctl("--timeout", "0.1", "run", "ctd", "x")
        self.assertEqual((code, out), (ExitCode.UNREACHABLE, ""))
        self.assertIn("no answer from the station at", err)
        self.assertIn("within 0.1 s (a change may still be carried out)", err)

    @defer.inlineCallbacks
    def test_unknownInstrument(self) -> Any:
        """
        An unknown instrument exits 1 naming the known ones.
        """
        code, _, err = yield self.ctl("status", "ctd9")
        self.assertEqual(code, ExitCode.API_ERROR)
        self.assertIn("no instrument 'ctd9'", err)
        self.assertIn("known: ctd", err)

    @defer.inlineCallbacks
    def test_usage(self) -> Any:
        """
        A bad command line exits 2 with a message, contacting nothing.
        """
        for argv, wanted in [
            (("set", "ctd", "INTERVAL"), "expected NAME=VALUE, not 'INTERVAL'"),
            (("set", "ctd"), "the following arguments are required"),
            (("fly",), "invalid choice: 'fly'"),
            ((), "the following arguments are required: COMMAND"),
            (("--url", "ftp://x", "list"), "--url must be an http"),
        ]:
            code, out, err = yield self.ctl(*argv, url=False)
            self.assertEqual(code, ExitCode.USAGE, argv)
            self.assertIn(wanted, err)
            self.assertEqual(out, "")
        self.assertEqual(self.station.driver.calls, [])

    @defer.inlineCallbacks
    def test_help(self) -> Any:
        """
        C{--help} prints the usage and the exit statuses, and exits 0.
        """
        code, out, _ = yield self.ctl("--help", url=False)
        self.assertEqual(code, ExitCode.OK)
        self.assertIn("usage: instrumentctl", out)
        self.assertIn("4 a token is needed", out)

    @defer.inlineCallbacks
    def test_urlFromEnvironment(self) -> Any:
        """
        Without C{--url}, C{INSTRUMENTD_URL} says where the station is.
        """
        code, out, _ = yield self.ctl(
            "list", url=False, environ={"INSTRUMENTD_URL": self.station.url}
        )
        self.assertEqual(code, ExitCode.OK)
        self.assertIn("ctd", out)


class TokenTests(InstrumentctlTestCase):
    """
    A station with a token.
    """

    token = "s3cret"

    @defer.inlineCallbacks
    def test_tokenNeeded(self) -> Any:
        """
        A change without the token, or with a wrong one, exits 4 with the
        station's explanation; reading needs none.
        """
        code, _, err = yield self.ctl("set", "ctd", "INTERVAL=3")
        self.assertEqual(code, ExitCode.AUTH)
        self.assertIn("needs a token", err)
        code, _, err = yield self.ctl("--token", "nope", "set", "ctd", "INTERVAL=3")
        self.assertEqual(code, ExitCode.AUTH)
        self.assertIn("not this station's token", err)
        code, _, _ = yield self.ctl("list")
        self.assertEqual(code, ExitCode.OK)
        self.assertEqual(
            [call for call in self.station.driver.calls if call[0] == "set_resource"],
            [],
        )

    @defer.inlineCallbacks
    def test_tokenSources(self) -> Any:
        """
        The token comes from C{--token}, C{--token-file} or
        C{INSTRUMENTD_TOKEN}; an unreadable token file exits 2.
        """
        path = FilePath(self.mktemp())
        path.setContent(b"s3cret\n")
        for argv, environ in [
            (("--token", "s3cret"), {}),
            (("--token-file", path.path), {}),
            ((), {"INSTRUMENTD_TOKEN": "s3cret"}),
        ]:
            code, _, err = yield self.ctl(
                *argv, "set", "ctd", "INTERVAL=3", environ=environ
            )
            self.assertEqual((code, err), (ExitCode.OK, ""))
        code, _, err = yield self.ctl("--token-file", path.path + ".missing", "list")
        self.assertEqual(code, ExitCode.USAGE)
        self.assertIn("cannot read the token file", err)


class WatchTests(InstrumentctlTestCase):
    """
    watch.
    """

    @defer.inlineCallbacks
    def test_watch(self) -> Any:
        """
        C{watch NAME} prints samples as rows under a header as they arrive,
        state changes between them, and exits 0 when interrupted.
        """
        out, err = Capture(), Capture()
        interrupted: Deferred[None] = Deferred()
        running = self.ctl(
            "watch", "ctd", interrupted=interrupted, stdout=out, stderr=err
        )
        # Said once the stream is open.
        yield err.wait_for("watching")
        self.station.driver.sample(temperature=12.5, pressure=1.25)
        self.station.driver.events.publish(
            StateChangeEvent("COMMAND", "AUTOSAMPLE", time=1e9)
        )
        self.station.driver.sample(temperature=12.625, pressure=1.25)
        yield out.wait_for("12.625")
        interrupted.callback(None)
        code, text, said = yield running
        self.assertEqual(code, ExitCode.OK)
        self.assertEqual(said, "watching ctd; Ctrl-C to stop\n")
        lines = text.splitlines()
        self.assertEqual(lines[0], "fake_sample:")
        self.assertRegex(lines[1], r"^TIME +TEMPERATURE +PRESSURE$")
        self.assertRegex(lines[2], r"^\d{4}-\d\d-\d\dT[\d:.]+Z  12\.5 +1\.25$")
        self.assertEqual(
            lines[3], "-- 2001-09-09T01:46:40.000Z state AUTOSAMPLE -> COMMAND"
        )
        self.assertEqual(lines[2].index("1.25"), lines[4].index("1.25"))

    @defer.inlineCallbacks
    def test_watchStreams(self) -> Any:
        """
        Each particle stream has its own table: a status dump between two
        samples does not become the samples' header, and the samples' table
        takes up again (title and header) after it.
        """
        out, err = Capture(), Capture()
        interrupted: Deferred[None] = Deferred()
        running = self.ctl(
            "watch", "ctd", interrupted=interrupted, stdout=out, stderr=err
        )
        yield err.wait_for("watching")
        events = self.station.driver.events
        self.station.driver.sample(temperature=12.5, pressure=1.25)
        events.publish(SampleEvent(StatusParticle(serial="1234", vmain=13.1), time=1e9))
        self.station.driver.sample(temperature=12.625, pressure=1.5)
        yield out.wait_for("12.625")
        interrupted.callback(None)
        code, text, _ = yield running
        self.assertEqual(code, ExitCode.OK)
        lines = text.splitlines()
        self.assertEqual(lines[0], "fake_sample:")
        self.assertRegex(lines[1], r"^TIME +TEMPERATURE +PRESSURE$")
        self.assertEqual(lines[3], "fake_status:")
        self.assertRegex(lines[4], r"^TIME +SERIAL +VMAIN$")
        self.assertRegex(lines[5], r"^2001-09-09T01:46:40.000Z +1234 +13.1$")
        self.assertEqual(lines[6:8], lines[0:2])
        self.assertRegex(lines[8], r"Z +12\.625 +1\.5$")
        self.assertEqual(len(lines), 9)

    @defer.inlineCallbacks
    def test_watchLink(self) -> Any:
        """
        The instrument link going down (with why and since when) and up
        shows as lines; nothing shows as None or null.
        """
        out, err = Capture(), Capture()
        interrupted: Deferred[None] = Deferred()
        running = self.ctl(
            "watch", "ctd", interrupted=interrupted, stdout=out, stderr=err
        )
        yield err.wait_for("watching")
        events = self.station.driver.events
        events.publish(
            ConnectionEvent("INSTRUMENT_DISCONNECTED", "instrument link down", time=1e9)
        )
        events.publish(
            ErrorEvent(
                "INSTRUMENT_CONNECTION",
                "port agent fault: instrument link down since "
                "2001-09-09T01:46:40Z: connection refused",
                time=1e9 + 10,
            )
        )
        events.publish(
            ConnectionEvent("CONNECTED", "instrument link up", time=1e9 + 20)
        )
        events.publish(StateChangeEvent("UNKNOWN", None, time=1e9 + 20))
        self.station.driver.sample(temperature=None, pressure=1.5)
        yield out.wait_for("1.5")
        interrupted.callback(None)
        code, text, _ = yield running
        self.assertEqual(code, ExitCode.OK)
        self.assertEqual(
            text.splitlines()[:4],
            [
                "-- 2001-09-09T01:46:40.000Z link down",
                "-- 2001-09-09T01:46:50.000Z link down since 2001-09-09T01:46:40Z: "
                "connection refused",
                "-- 2001-09-09T01:47:00.000Z link up",
                "-- 2001-09-09T01:47:00.000Z state UNKNOWN",
            ],
        )
        self.assertRegex(text.splitlines()[-1], r"Z +- +1\.5$")
        self.assertNotIn("None", text)
        self.assertNotIn("null", text)

    @defer.inlineCallbacks
    def test_watchReaderGone(self) -> Any:
        """
        When the reader of C{watch}'s output goes away (C{| head}), it ends
        quietly with status 0: a real process whose standard output pipe
        the test closes while samples keep coming.
        """
        script = shutil.which("instrumentctl", path=os.path.dirname(sys.executable))
        if script is None:
            self.skipTest("instrumentctl is not installed next to this Python")
        watcher = _Watcher()
        process = reactor.spawnProcess(
            watcher,
            script,
            [script, "--url", self.station.url, "watch", "ctd"],
            env={"PATH": os.environ.get("PATH", "")},
        )
        yield watcher.err.wait_for("watching ctd")
        samples = LoopingCall(self.station.driver.sample, temperature=7.5)
        samples.start(0.02)
        self.addCleanup(lambda: samples.running and samples.stop())
        yield watcher.out.wait_for("7.5")
        # As head does once it has its lines: close the pipe's reading end.
        process.closeChildFD(1)
        code = yield watcher.ended
        self.assertEqual(code, ExitCode.OK)
        self.assertEqual(watcher.err.getvalue(), "watching ctd; Ctrl-C to stop\n")

    @defer.inlineCallbacks
    def test_watchJSON(self) -> Any:
        """
        With C{--json}, C{watch} prints one JSON event per line.
        """
        out, err = Capture(), Capture()
        interrupted: Deferred[None] = Deferred()
        running = self.ctl(
            "--json", "watch", "ctd", interrupted=interrupted, stdout=out, stderr=err
        )
        yield err.wait_for("watching")
        self.station.driver.sample(temperature=3.5)
        yield out.wait_for("\n")
        interrupted.callback(None)
        code, text, _ = yield running
        self.assertEqual(code, ExitCode.OK)
        event = json.loads(text.splitlines()[0])
        self.assertEqual((event["type"], event["instrument"]), ("SAMPLE", "ctd"))

    @defer.inlineCallbacks
    def test_streamClosed(self) -> Any:
        """
        When the station ends the stream, C{watch} says so and exits 3.
        """
        err = Capture()
        running = self.ctl("watch", "ctd", stderr=err)
        yield err.wait_for("watching")
        self.station.api.close()
        code, _, err = yield running
        self.assertEqual(code, ExitCode.UNREACHABLE)
        self.assertIn("closed the event stream", err)

    @defer.inlineCallbacks
    def test_watchUnknown(self) -> Any:
        """
        Watching an unknown instrument exits 1 with the station's message.
        """
        code, _, err = yield self.ctl("watch", "nope")
        self.assertEqual(code, ExitCode.API_ERROR)
        self.assertIn("no instrument 'nope'", err)


class WatchSeveralTests(InstrumentctlTestCase):
    """
    watch of several instruments, or of all, on the station's one stream.
    """

    others = ("optode", "adcp")

    @defer.inlineCallbacks
    def test_watchAll(self) -> Any:
        """
        C{watch} without a name shows every instrument's events on one
        connection: each instrument's samples in a table of its own titled
        with its name, other events naming their instrument.
        """
        out, err = Capture(), Capture()
        interrupted: Deferred[None] = Deferred()
        running = self.ctl("watch", interrupted=interrupted, stdout=out, stderr=err)
        yield err.wait_for("watching")
        self.assertEqual(len(self.station.api.streams), 1)
        self.station.driver.sample(temperature=12.5)
        self.station.others["optode"].sample(oxygen=250.5)
        self.station.others["adcp"].events.publish(
            StateChangeEvent("COMMAND", "AUTOSAMPLE", time=1e9)
        )
        self.station.driver.sample(temperature=12.625)
        yield out.wait_for("12.625")
        interrupted.callback(None)
        code, text, said = yield running
        self.assertEqual(code, ExitCode.OK)
        self.assertEqual(said, "watching every instrument; Ctrl-C to stop\n")
        lines = text.splitlines()
        self.assertEqual(lines[0], "ctd fake_sample:")
        self.assertRegex(lines[1], r"^TIME +TEMPERATURE$")
        self.assertRegex(lines[2], r"Z +12\.5$")
        self.assertEqual(lines[3], "optode fake_sample:")
        self.assertRegex(lines[4], r"^TIME +OXYGEN$")
        self.assertRegex(lines[5], r"Z +250\.5$")
        self.assertEqual(
            lines[6], "-- 2001-09-09T01:46:40.000Z adcp state AUTOSAMPLE -> COMMAND"
        )
        self.assertEqual(lines[7], "ctd fake_sample:")
        self.assertRegex(lines[9], r"Z +12\.625$")

    @defer.inlineCallbacks
    def test_watchSeveral(self) -> Any:
        """
        C{watch A B} shows those two only, on one connection.
        """
        out, err = Capture(), Capture()
        interrupted: Deferred[None] = Deferred()
        running = self.ctl(
            "watch", "adcp", "ctd", interrupted=interrupted, stdout=out, stderr=err
        )
        yield err.wait_for("watching")
        self.assertEqual(len(self.station.api.streams), 1)
        self.station.others["optode"].sample(oxygen=250.5)
        self.station.others["adcp"].sample(speed=0.25)
        self.station.driver.sample(temperature=12.5)
        yield out.wait_for("12.5")
        interrupted.callback(None)
        code, text, said = yield running
        self.assertEqual(code, ExitCode.OK)
        self.assertEqual(said, "watching adcp, ctd; Ctrl-C to stop\n")
        titles = [line for line in text.splitlines() if line.endswith(":")]
        self.assertEqual(titles, ["adcp fake_sample:", "ctd fake_sample:"])
        self.assertNotIn("250.5", text)

    @defer.inlineCallbacks
    def test_watchSeveralJSON(self) -> Any:
        """
        With C{--json}, each line is one event naming its instrument.
        """
        out, err = Capture(), Capture()
        interrupted: Deferred[None] = Deferred()
        running = self.ctl(
            "--json", "watch", interrupted=interrupted, stdout=out, stderr=err
        )
        yield err.wait_for("watching")
        self.station.others["optode"].sample(oxygen=250.5)
        self.station.driver.sample(temperature=3.5)
        # The record's times hold digits too: wait for the value itself.
        yield out.wait_for('"temperature":3.5')
        interrupted.callback(None)
        _, text, _ = yield running
        events = [json.loads(line) for line in text.splitlines()]
        self.assertEqual([e["instrument"] for e in events], ["optode", "ctd"])

    @defer.inlineCallbacks
    def test_watchSeveralUnknown(self) -> Any:
        """
        An unknown name among several exits 1 with the station's message,
        which names it and the instruments there are.
        """
        code, _, err = yield self.ctl("watch", "ctd", "nope")
        self.assertEqual(code, ExitCode.API_ERROR)
        self.assertIn("unknown instrument nope; known: ctd, optode, adcp", err)


class UnreachableTests(TestCase):
    """
    A station that is not there.
    """

    @defer.inlineCallbacks
    def test_closedPort(self) -> Any:
        """
        A closed port exits 3 with a message saying what to check.
        """
        # Reserved, never listening: a port freed after listening could be
        # taken by another test's server under trial -j2.
        url = f"http://127.0.0.1:{refusing_port(self)}"
        out, err = Capture(), Capture()
        code = yield Deferred.fromCoroutine(
            run(reactor, ["--url", url, "list"], stdout=out, stderr=err, environ={})
        )
        self.assertEqual(code, ExitCode.UNREACHABLE)
        self.assertEqual(out.getvalue(), "")
        self.assertEqual(
            err.getvalue(),
            f"instrumentctl: cannot reach the station at {url}: connection refused "
            f"— is `twistd -n instrumentd` running?\n",
        )


class ConsoleScriptTests(InstrumentctlTestCase):
    """
    The installed C{instrumentctl} console script, as a real process.
    """

    @defer.inlineCallbacks
    def test_consoleScript(self) -> Any:
        """
        The script lists the station's instruments as JSON and exits 0;
        asked for an unknown instrument, it exits 1.
        """
        script = shutil.which("instrumentctl", path=os.path.dirname(sys.executable))
        if script is None:
            self.skipTest("instrumentctl is not installed next to this Python")
        environ = {
            "PATH": os.environ.get("PATH", ""),
            "INSTRUMENTD_URL": self.station.url,
        }
        out, err, code = yield getProcessOutputAndValue(
            script, ["--json", "list"], env=environ, reactor=reactor
        )
        self.assertEqual((code, err), (0, b""))
        self.assertEqual(json.loads(out)["instruments"][0]["name"], "ctd")
        out, err, code = yield getProcessOutputAndValue(
            script, ["status", "nope"], env=environ, reactor=reactor
        )
        self.assertEqual(code, ExitCode.API_ERROR)
        self.assertIn(b"no instrument 'nope'", err)


class _Watcher(ProcessProtocol):
    """
    A child's output, collected in L{Capture}s (so a test can wait for some
    text), and a Deferred for its exit status.
    """

    def __init__(self) -> None:
        self.out = Capture()
        self.err = Capture()
        self.ended: Deferred[int | None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out.write(data.decode("utf-8", "replace"))

    def errReceived(self, data: bytes) -> None:
        self.err.write(data.decode("utf-8", "replace"))

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value.exitCode)


class ConsoleScriptInterruptTests(InstrumentctlTestCase):
    """
    Ctrl-C in the console script.
    """

    @defer.inlineCallbacks
    def test_watchInterrupted(self) -> Any:
        """
        C{watch}, sent SIGINT as Ctrl-C does, stops and exits 0 after
        printing what arrived.
        """
        script = shutil.which("instrumentctl", path=os.path.dirname(sys.executable))
        if script is None:
            self.skipTest("instrumentctl is not installed next to this Python")
        watcher = _Watcher()
        process = reactor.spawnProcess(
            watcher,
            script,
            [script, "--url", self.station.url, "watch", "ctd"],
            env={"PATH": os.environ.get("PATH", "")},
        )
        yield watcher.err.wait_for("watching ctd")
        self.station.driver.sample(temperature=7.5)
        yield watcher.out.wait_for("7.5")
        process.signalProcess("INT")
        code = yield watcher.ended
        self.assertEqual(code, ExitCode.OK)
        self.assertIn("TEMPERATURE", watcher.out.getvalue())
        self.assertEqual(watcher.err.getvalue(), "watching ctd; Ctrl-C to stop\n")

    @defer.inlineCallbacks
    def test_commandInterrupted(self) -> Any:
        """
        Any other command, interrupted before the station answers, exits
        130 (so a script can tell it from success).
        """
        script = shutil.which("instrumentctl", path=os.path.dirname(sys.executable))
        if script is None:
            self.skipTest("instrumentctl is not installed next to this Python")
        started: Deferred[None] = Deferred()

        def execute_resource(command: str) -> Deferred[object]:
            started.callback(None)
            return Deferred()

        self.station.driver.answers["execute_resource"] = execute_resource
        watcher = _Watcher()
        process = reactor.spawnProcess(
            watcher,
            script,
            [script, "--url", self.station.url, "run", "ctd", "acquire_status"],
            env={"PATH": os.environ.get("PATH", "")},
        )
        yield started
        process.signalProcess("INT")
        code = yield watcher.ended
        self.assertEqual(code, ExitCode.INTERRUPTED)
        self.assertEqual(watcher.out.getvalue(), "")
        self.assertIn("interrupted before the station answered", watcher.err.getvalue())


class FormattingTests(SynchronousTestCase):
    """
    Values and tables.
    """

    def test_parseValue(self) -> None:
        """
        Values are JSON when they parse as JSON, else text.
        """
        self.assertEqual(
            [
                parse_value(text)
                for text in ["10", "1.5", "true", '"10"', "[1]", "F", ""]
            ],
            [10, 1.5, True, "10", [1], "F", ""],
        )
        self.assertEqual(parse_assignments(["A=x=y"]), {"A": "x=y"})

    def test_formatTable(self) -> None:
        """
        Columns are padded to their widest cell with no trailing spaces;
        values that are not text are shown as JSON, nothing as C{-}.
        """
        self.assertEqual(
            format_table(["A", "LONGER"], [["xyz", 1], ["w", None]]),
            "A    LONGER\nxyz  1\nw    -\n",
        )
