"""
Tests for L{instrumentd.station.service}, L{instrumentd.station.options} and
the station's part of L{instrumentd.tap}: the station assembled from a
config with real parts (the toy instrument on a loopback socket, real port
agents in the reactor and as child processes, the driver, the sinks and
the HTTP API).
"""

from __future__ import annotations

import gc
import io
import json
import os
import signal
from collections.abc import Callable
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from instrumentd import tap
from instrumentd.driver.events import DriverEvent, EventType
from instrumentd.gcfreeze import HELD_THRESHOLD
from instrumentd.station.config import StationConfig, parse_config, parse_toml
from instrumentd.station.demo import DEMO_SOURCE
from instrumentd.station.record import read_record
from instrumentd.station.service import InstrumentSupervisor, StationService
from tests.agentsupport import LineClient, connect, within
from tests.portsupport import refusing_port
from tests.toyinstrument import ToyInstrument

TOY = "tests.toyinstrument:ToyProtocol"


def toy_config(
    data_dir: str,
    instruments: list[str],
    api: str = "tcp:0:interface=127.0.0.1",
    extra: str = "",
) -> StationConfig:
    """
    A station config from instrument tables.

    :param data_dir: the station's data directory.
    :param instruments: the text of each ``[[instruments]]`` table.
    :param api: the API endpoint.
    :param extra: more top-level text.
    """
    text = f'[station]\ndata_dir = "{data_dir}"\n[api]\nlisten = "{api}"\n{extra}\n'
    text += "".join(f"[[instruments]]\n{each}\n" for each in instruments)
    return parse_config(parse_toml(text, "<test>"), "<test>")


def toy_instrument(name: str, port: int, mode: str, autosample: bool = True) -> str:
    """
    The table of a toy instrument on a TCP port, sampling every second.
    """
    return (
        f'name = "{name}"\ndriver = "{TOY}"\nautosample = {str(autosample).lower()}\n'
        f"parameters = {{ INTERVAL = 1 }}\n"
        f'connection = {{ type = "tcp", host = "127.0.0.1", port = {port} }}\n'
        f'port_agent = {{ mode = "{mode}", heartbeat = 1 }}\n'
    )


class _ToyFactory(Factory):
    """
    Serves a fresh toy instrument on each connection, on the real reactor.
    """

    def buildProtocol(self, addr: object) -> Protocol:
        return ToyInstrument(reactor, sleep_after=None)  # type: ignore[arg-type]


class TapTests(SynchronousTestCase):
    """
    ``twistd instrumentd`` with no subcommand is the station.
    """

    def write(self, text: str) -> str:
        """
        Write a config file.
        """
        path = self.mktemp() + ".toml"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_noSubcommandIsTheDemo(self) -> None:
        """
        Without a subcommand or --config, the options hold the demo
        station's config.
        """
        options = tap.Options()
        options.parseOptions([])
        assert options.station_config is not None
        self.assertTrue(options.demo)
        self.assertEqual(options.station_config.source, DEMO_SOURCE)

    def test_config(self) -> None:
        """
        --config reads the file; --api, --data-dir and --token-file override
        it.
        """
        token = self.write("t0ken\n")
        path = self.write(f"[[instruments]]\n{toy_instrument('toy1', 4001, 'child')}")
        options = tap.Options()
        options.parseOptions(
            [
                "--config",
                path,
                "--api",
                "tcp:0:interface=127.0.0.1",
                "--data-dir",
                "/srv/x",
                "--token-file",
                token,
            ]
        )
        config = options.station_config
        assert config is not None
        self.assertFalse(options.demo)
        self.assertEqual(config.source, path)
        self.assertEqual(config.api, "tcp:0:interface=127.0.0.1")
        self.assertEqual(config.data_dir, "/srv/x")
        self.assertEqual(config.token, "t0ken")

    def test_badConfig(self) -> None:
        """
        A bad config ends option parsing with status 1 and every problem
        on stderr, each naming the file, the key path and the problem, so
        twistd starts nothing; it is not a usage error, after which twistd
        would print its usage text first.
        """
        path = self.write("[[instruments]]\nname = 'x'\n")
        options = tap.Options()
        options.stderr = io.StringIO()
        error = self.assertRaises(SystemExit, options.parseOptions, ["--config", path])
        self.assertEqual(error.code, 1)
        written = options.stderr.getvalue()
        self.assertIn(f"{path}: instruments[0].driver: missing", written)
        self.assertIn(f"{path}: instruments[0].connection: missing", written)

    def test_check(self) -> None:
        """
        --check of a good config says so on stdout and exits 0 from option
        parsing, before twistd could start anything.
        """
        path = self.write(f"[[instruments]]\n{toy_instrument('toy1', 4001, 'child')}")
        options = tap.Options()
        options.stdout = io.StringIO()
        error = self.assertRaises(
            SystemExit, options.parseOptions, ["--config", path, "--check"]
        )
        self.assertEqual(error.code, 0)
        self.assertIn("the station configuration is good", options.stdout.getvalue())

    def test_stationOptionsWithSubcommand(self) -> None:
        """
        Station options before a subcommand are refused: they would be
        silently ignored.
        """
        error = self.assertRaises(
            usage.UsageError,
            tap.Options().parseOptions,
            ["--api", "tcp:0", "simulate", "sbe37"],
        )
        self.assertIn("--api", str(error))
        self.assertIn("simulate", str(error))

    def test_subcommandsStillWork(self) -> None:
        """
        The port-agent and simulate subcommands parse as before, without
        loading any station config.
        """
        options = tap.Options()
        options.parseOptions(["port-agent", "--name", "x", "--instrument", "demo"])
        self.assertEqual(options.subCommand, "port-agent")
        self.assertIsNone(options.station_config)
        options = tap.Options()
        options.parseOptions(["simulate", "sbe37"])
        self.assertEqual(options.subCommand, "simulate")

    def test_makeService(self) -> None:
        """
        makeService builds the station from the checked config.
        """
        # makeService arranges for SIGHUP to stop the station in order; put
        # this process's handler back afterwards.
        self.addCleanup(signal.signal, signal.SIGHUP, signal.getsignal(signal.SIGHUP))
        options = tap.Options()
        options.parseOptions([])
        root = tap.makeService(options)
        assert isinstance(root, tap.ProcessService)
        [service] = list(root)
        assert isinstance(service, StationService)
        self.assertIs(service.config, options.station_config)
        self.assertTrue(service.demo)


class BannerTests(SynchronousTestCase):
    """
    What the station prints once it has started.
    """

    def test_banner(self) -> None:
        """
        The banner says what runs, where samples go, the API's URL, and how
        to talk to it with instrumentctl and curl.
        """
        config = toy_config(
            "/srv/d", [toy_instrument("toy1", 4001, "in-process")], api=DEMO_API
        )
        service = StationService(config, reactor=MemoryReactorClock())
        service.url = "http://127.0.0.1:8700"
        text = "\n".join(service.banner())
        self.assertIn("1 instrument from <test>", text)
        self.assertIn(
            "toy1: tcp:host=127.0.0.1:port=4001 -> port agent (in-process, datalog "
            "/srv/d/datalog) -> driver ToyProtocol, autosample; samples to "
            "/srv/d/samples/toy1/",
            text,
        )
        self.assertIn("API listening on http://127.0.0.1:8700/api", text)
        self.assertIn("\nWeb page: http://127.0.0.1:8700/\n", text)
        self.assertIn("  instrumentctl list\n", text)
        self.assertIn("  instrumentctl watch toy1\n", text)
        self.assertIn("curl http://127.0.0.1:8700/api/instruments\n", text)
        self.assertIn("curl -N http://127.0.0.1:8700/api/instruments/toy1/events", text)
        self.assertIn("curl -N http://127.0.0.1:8700/api/events", text)

    def test_bannerOtherURLAndToken(self) -> None:
        """
        On another URL, instrumentctl is told it; with a token, the banner
        says where it is and how to send it.
        """
        token_file = self.mktemp()
        with open(token_file, "w") as f:
            f.write("tok\n")
        config = toy_config(
            "/srv/d",
            [toy_instrument("toy1", 4001, "in-process")],
            extra=f'token_file = "{token_file}"',
        )
        service = StationService(config, reactor=MemoryReactorClock())
        service.url = "http://127.0.0.1:9999"
        text = "\n".join(service.banner())
        self.assertIn(
            f"instrumentctl --url http://127.0.0.1:9999 --token-file {token_file} list",
            text,
        )
        self.assertIn(f"changes need the token in {token_file}", text)
        self.assertIn('-H "Authorization: Bearer $TOKEN"', text)


DEMO_API = "tcp:8700:interface=127.0.0.1"


class StationServiceTests(TestCase):
    """
    The station with real parts.
    """

    def setUp(self) -> None:
        self.data_dir = os.path.abspath(self.mktemp())
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        self.addCleanup(pool.closeCachedConnections)

    async def toy_port(self) -> int:
        """
        Serve toy instruments on a loopback port for this test.

        :returns: the port number.
        """
        port: IListeningPort = await serverFromString(
            reactor, "tcp:0:interface=127.0.0.1"
        ).listen(_ToyFactory())
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)  # type: ignore[attr-defined]

    async def start_two_in_process(self) -> StationService:
        """
        Start a station of two toy instruments with in-process agents.

        :returns: the station.
        """
        port = await self.toy_port()
        return self.start(
            toy_config(
                self.data_dir,
                [
                    toy_instrument("toy1", port, "in-process"),
                    toy_instrument("toy2", port, "in-process"),
                ],
            )
        )

    def start(
        self, config: StationConfig, retry_policy: Callable[[int], float] | None = None
    ) -> StationService:
        """
        Start a station that is stopped when the test ends.
        """
        service = StationService(
            config, reactor=reactor, retry_policy=retry_policy or (lambda n: 0.1)
        )
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def events(
        self, supervisor: InstrumentSupervisor, kind: EventType, count: int
    ) -> Deferred[list[DriverEvent]]:
        """
        Wait for ``count`` events of a kind from an instrument's driver.
        """
        seen: list[DriverEvent] = []
        done: Deferred[list[DriverEvent]] = Deferred()

        def event(each: DriverEvent) -> None:
            seen.append(each)
            if len(seen) == count:
                unsubscribe()
                done.callback(seen)

        unsubscribe = supervisor.events.subscribe(event, [kind])
        return done

    async def get(self, service: StationService, path: str) -> Any:
        """
        GET a path of the station's API.

        :returns: the JSON answer.
        """
        assert service.url is not None
        response = await self.http.get(service.url + path)
        self.assertEqual(response.code, 200)
        return json.loads(await response.text())

    async def test_inProcessDatalogsSyncedOnce(self) -> None:
        """
        Stopping, the station syncs the file system once for the datalogs
        of all its in-process agents instead of an fsync each (3 to 4 ms of
        its reactor each: most of a minute for 5,000 instruments); the
        datalogs are closed with everything written.
        """
        service = await self.start_two_in_process()
        for name in ("toy1", "toy2"):
            await self.events(service.supervisors[name], EventType.SAMPLE, 1)
        datalogs = [
            supervisor.agent_service.datalog
            for supervisor in service.supervisors.values()
            if supervisor.agent_service is not None
        ]
        self.assertEqual(len(datalogs), 2)
        paths = [datalog.path for datalog in datalogs]
        fsynced: list[str] = []
        synced: list[None] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            fsynced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        self.patch(os, "fsync", fsync)
        self.patch(os, "sync", lambda: synced.append(None))
        await service.stopService()
        self.assertEqual([path for path in fsynced if path in paths], [])
        self.assertEqual(len(synced), 1)
        for path in paths:
            self.assertGreater(os.path.getsize(path), 0)

    async def test_inProcessAgent(self) -> None:
        """
        An instrument with an in-process port agent comes up, is discovered
        and set autosampling; its samples reach the JSON-lines sink, the
        datalog records its bytes, and the API shows it running.
        """
        port = await self.toy_port()
        service = self.start(
            toy_config(self.data_dir, [toy_instrument("toy1", port, "in-process")])
        )
        supervisor = service.supervisors["toy1"]
        await self.events(supervisor, EventType.SAMPLE, 2)
        self.assertEqual(supervisor.driver.get_resource_state(), "AUTOSAMPLE")
        self.assertIsNotNone(supervisor.agent_service)
        self.assertIsNone(supervisor.agent_process)

        listed = await self.get(service, "/api/instruments")
        [toy] = listed["instruments"]
        self.assertEqual((toy["name"], toy["state"]), ("toy1", "AUTOSAMPLE"))
        self.assertGreaterEqual(toy["samples"], 2)
        health = await self.get(service, "/api/health")
        self.assertEqual(health["status"], "ok")
        self.assertEqual(health["instruments"]["toy1"]["station"]["phase"], "running")
        agent = await self.get(service, "/api/instruments/toy1/port-agent")
        self.assertEqual(agent["port_agent"]["mode"], "in-process")
        self.assertEqual(agent["port_agent"]["pid"], os.getpid())
        self.assertGreater(agent["stats"]["instrument"]["bytes_in"], 0)

        await service.sinks["files"].flush()
        samples_dir = os.path.join(self.data_dir, "samples", "toy1", "toy_sample")
        [day] = os.listdir(samples_dir)
        with open(os.path.join(samples_dir, day)) as f:
            lines = [json.loads(line) for line in f]
        self.assertGreaterEqual(len(lines), 2)
        # Each line is the sample's record, version 2 (doc/data.md).
        first = lines[0]
        self.assertEqual(
            (first["record"], first["version"], first["instrument"], first["stream"]),
            ("instrumentd.sample", 2, "toy1", "toy_sample"),
        )
        self.assertRegex(first["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertEqual(set(first["values"]), {"temperature", "pressure"})
        self.assertEqual(
            first["units"], {"temperature": "degree_Celsius", "pressure": "dbar"}
        )
        self.assertEqual(
            first["standard_names"],
            {"temperature": "sea_water_temperature", "pressure": "sea_water_pressure"},
        )
        self.assertEqual(read_record(first), first)
        # The API's latest sample is the same record.
        toy_detail = await self.get(service, "/api/instruments/toy1")
        latest = toy_detail["latest_sample"]["record"]
        self.assertEqual(
            {key: latest[key] for key in ("record", "version", "instrument", "units")},
            {key: first[key] for key in ("record", "version", "instrument", "units")},
        )
        self.assertTrue(os.listdir(os.path.join(self.data_dir, "datalog")))

    async def test_childAgent(self) -> None:
        """
        By default the port agent is a child process; stopping the station
        stops it.
        """
        port = await self.toy_port()
        instrument = toy_instrument("toy1", port, "child").replace(
            "heartbeat = 1 }",
            "heartbeat = 1, client_buffer = '8MiB', client_memory = '32MiB', "
            "client_stall_timeout = 7 }",
        )
        service = self.start(toy_config(self.data_dir, [instrument]))
        supervisor = service.supervisors["toy1"]
        await self.events(supervisor, EventType.SAMPLE, 1)
        process = supervisor.agent_process
        assert process is not None
        self.assertNotEqual(process.pid, os.getpid())
        # The station's client policy reaches the child agent.
        ports = supervisor.port_agent_info()["ports"]
        assert isinstance(ports, dict)
        command = await connect(self, ports["command"], LineClient())
        config = json.loads(await command.ask("get_config"))
        self.assertEqual(
            (config["client_memory"], config["client_stall_timeout"]), (32 << 20, 7.0)
        )
        agent = await self.get(service, "/api/instruments/toy1/port-agent")
        self.assertEqual(agent["port_agent"]["pid"], process.pid)
        self.assertEqual(agent["port_agent"]["mode"], "child")
        self.assertTrue(
            os.path.exists(os.path.join(self.data_dir, "logs", "port-agent-toy1.log"))
        )
        await service.stopService()
        self.assertIsNotNone(process.exit_status)
        self.assertEqual(supervisor.phase, "stopped")

    async def test_agentsWithToken(self) -> None:
        """
        Port agents the station runs with a token file and an RFC 2217 port,
        child and in-process: the station's driver passes the token and
        samples flow; a client without it is refused.
        """
        token_file = os.path.abspath(self.mktemp())
        with open(token_file, "w") as f:
            f.write("station-token-0123456789\n")
        port = await self.toy_port()
        instruments = [
            toy_instrument(name, port, mode).replace(
                "heartbeat = 1 }",
                f'heartbeat = 1, token_file = "{token_file}", listeners = '
                '{ rfc2217 = "tcp:0:interface=127.0.0.1" } }',
            )
            for name, mode in (("toy1", "child"), ("toy2", "in-process"))
        ]
        service = self.start(toy_config(self.data_dir, instruments))
        for name in ("toy1", "toy2"):
            supervisor = service.supervisors[name]
            await within(
                self.events(supervisor, EventType.SAMPLE, 1), f"a sample from {name}"
            )
            ports = supervisor.port_agent_info()["ports"]
            assert isinstance(ports, dict)
            self.assertIsInstance(ports["rfc2217"], int)
            command = await connect(self, ports["command"], LineClient())
            command.write(b"wrong\n")
            await within(command.closed, "a client without the token to be refused")
            self.assertEqual(command.lines, ["ERROR token refused\r"])

    async def test_childAgentRestarted(self) -> None:
        """
        A child port agent that dies is started again, the driver is
        pointed at its new ports, and samples flow again.
        """
        port = await self.toy_port()
        service = self.start(
            toy_config(self.data_dir, [toy_instrument("toy1", port, "child")])
        )
        supervisor = service.supervisors["toy1"]
        await self.events(supervisor, EventType.SAMPLE, 1)
        first = supervisor.agent_process
        assert first is not None
        first.signal("KILL")
        await first.ended
        # The instrument is discovered afresh once the new agent's link is
        # up: a new protocol announces UNKNOWN, then samples come again.
        await self.events(supervisor, EventType.SAMPLE, 1)
        second = supervisor.agent_process
        assert second is not None
        self.assertNotEqual(second.pid, first.pid)
        self.assertIn(f"pid {first.pid}", str(supervisor.last_error))

    async def test_oneFailingInstrument(self) -> None:
        """
        An instrument that cannot be reached is retried with its reason in
        the API's health, while the others run.
        """
        port = await self.toy_port()
        # A port agent that is not there: a port reserved but not listening.
        dead_port = refusing_port(self)
        retried: Deferred[None] = Deferred()

        def policy(failures: int) -> float:
            if failures == 2 and not retried.called:
                retried.callback(None)
            return 0.05

        dead = (
            f'name = "dead"\ndriver = "{TOY}"\nconnection = {{ type = "port_agent", '
            f"data_port = {dead_port}, command_port = {dead_port} }}\n"
        )
        service = self.start(
            toy_config(
                self.data_dir, [dead, toy_instrument("toy1", port, "in-process")]
            ),
            retry_policy=policy,
        )
        await self.events(service.supervisors["toy1"], EventType.SAMPLE, 1)
        await retried
        health = await self.get(service, "/api/health")
        self.assertEqual(health["status"], "degraded")
        self.assertEqual(health["instruments"]["toy1"]["state"], "AUTOSAMPLE")
        station = health["instruments"]["dead"]["station"]
        self.assertGreaterEqual(station["failures"], 2)
        self.assertIn("connecting the driver to the port agent", station["last_error"])
        problem = health["instruments"]["dead"]["problem"]
        self.assertIn("connecting the driver to the port agent", problem)
        listed = await self.get(service, "/api/instruments")
        states = {each["name"]: each["state"] for each in listed["instruments"]}
        # Retried every 50 ms, it is between attempts or in one.
        self.assertIn(states["dead"], ("DISCONNECTED", "CONNECTING"))
        # A command is refused saying so, in the operator's terms.
        assert service.url is not None
        response = await self.http.post(
            service.url + "/api/instruments/dead/commands/acquire_sample"
        )
        self.assertEqual(response.code, 503)
        error = json.loads(await response.text())["error"]
        self.assertEqual(error["code"], "INSTRUMENT_CONNECTION")
        self.assertIn("connecting the driver to the port agent", error["message"])
        self.assertNotIn("execute_resource", error["message"])

    async def test_httpSink(self) -> None:
        """
        An HTTP sink in the config POSTs the instrument's samples to its
        URL: here a real twisted.web receiver on loopback.
        """
        received: list[dict[str, Any]] = []
        arrived: Deferred[None] = Deferred()

        class Receiver(Resource):
            isLeaf = True

            def render_POST(self, request: Request) -> bytes:
                assert request.content is not None
                received.append(json.loads(request.content.read()))
                if not arrived.called:
                    arrived.callback(None)
                return b"{}"

        site = Site(Receiver())
        listening = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            site
        )
        self.addCleanup(listening.stopListening)
        ingest = f"http://127.0.0.1:{listening.getHost().port}/ingest"  # type: ignore[attr-defined]
        port = await self.toy_port()
        service = self.start(
            toy_config(
                self.data_dir,
                [toy_instrument("toy1", port, "in-process")],
                extra=f'[sinks.ingest]\ntype = "http"\nurl = "{ingest}"\n'
                "batch_interval = 0.1\nmax_bytes = '2MiB'\n",
            )
        )
        self.assertEqual(list(service.sinks), ["ingest"])
        self.assertEqual(service.sinks["ingest"].stats()["spool_max_bytes"], 2 << 20)
        await arrived
        [batch] = received[:1]
        first = batch["records"][0]
        self.assertEqual(first["instrument"], "toy1")
        record = first["record"]
        self.assertEqual(
            (record["record"], record["version"], record["instrument"]),
            ("instrumentd.sample", 2, "toy1"),
        )
        self.assertEqual(record["stream"], "toy_sample")
        self.assertEqual(record["units"]["temperature"], "degree_Celsius")
        self.assertTrue(os.path.isdir(os.path.join(self.data_dir, "spool", "ingest")))

    async def test_noAutosample(self) -> None:
        """
        Without autosample the instrument is discovered and left in command
        mode.
        """
        port = await self.toy_port()
        service = self.start(
            toy_config(
                self.data_dir,
                [toy_instrument("toy1", port, "in-process", autosample=False)],
            )
        )
        supervisor = service.supervisors["toy1"]
        changes = await self.events(supervisor, EventType.STATE_CHANGE, 2)
        self.assertEqual(
            [getattr(each, "state", None) for each in changes], ["UNKNOWN", "COMMAND"]
        )

    async def test_apiCannotBind(self) -> None:
        """
        If the API's port is taken, the start fails and nothing is left
        running: no agent started, the sinks closed.
        """
        taken = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            Factory.forProtocol(Protocol)
        )
        self.addCleanup(taken.stopListening)
        number = taken.getHost().port  # type: ignore[attr-defined]
        config = toy_config(
            self.data_dir,
            [toy_instrument("toy1", 4001, "in-process")],
            api=f"tcp:{number}:interface=127.0.0.1",
        )
        threshold = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *threshold)
        service = StationService(config, reactor=reactor)
        self.assertRaises(CannotListenError, service.startService)
        self.flushLoggedErrors()
        self.assertFalse(service.running)
        self.assertEqual(service.supervisors, {})
        self.assertEqual(service.sinks, {})
        # Nor are the collector's full collections left held.
        self.assertEqual(gc.get_threshold(), threshold)

    async def test_fullCollectionsHeldWhileStarting(self) -> None:
        """
        While its instruments come up the station keeps the garbage
        collector's full collections off (each would walk the whole
        growing heap); once all are up it collects once, freezes what
        start-up made, and the collector's thresholds are as before.
        """
        threshold = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *threshold)
        service = await self.start_two_in_process()
        self.assertEqual(gc.get_threshold(), (*threshold[:2], HELD_THRESHOLD))
        assert service.startup is not None
        with capturedLogs() as events:
            await service.startup.when_all_settled()
        self.assertEqual(gc.get_threshold(), threshold)
        (said,) = [formatEvent(e) for e in events if "instruments brought up" in str(e)]
        self.assertRegex(said, r"; 0 full garbage collections\); \d+ start-up objects")

    async def test_fullCollectionsBackWhenStoppedStarting(self) -> None:
        """
        A station stopped before its instruments are all up lets the
        collector's full collections run again.
        """
        threshold = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *threshold)
        port = await self.toy_port()
        service = self.start(
            toy_config(self.data_dir, [toy_instrument("toy1", port, "in-process")])
        )
        self.assertEqual(gc.get_threshold()[2], HELD_THRESHOLD)
        await service.stopService()
        self.assertEqual(gc.get_threshold(), threshold)
