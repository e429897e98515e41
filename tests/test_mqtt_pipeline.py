"""
The whole pipeline with real parts: simulated instruments in real
``twistd instrumentd`` station processes publishing through their MQTT
sinks to a real Mosquitto, and a real ``twistd instrumentd collect``
process archiving; the archive compared with the stations' own JSON-lines
files.

- two stations, one broker, one collector: every sample archived exactly
  once, in order per instrument, the same records as the stations' files;
- faults: the broker killed (SIGKILL) and restarted, a station killed and
  restarted, the collector killed and restarted, all mid-stream: still
  exactly once, and every gap reported along the way closed;
- a station-side Mosquitto bridged to a shore Mosquitto, the shore broker
  down for a while: the station's broker stores, then forwards, and
  nothing is lost;
- ``instrumentctl --broker`` list, get, run and watch against a real
  station, through the bridge.

Every wait is for an event (a log line) or for a condition on the archive
or an API, asked again until it holds within a generous deadline.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from instrumentd.cli.instrumentctl import ExitCode, run
from tests.brokersupport import Broker
from tests.collectorsupport import DEADLINE, CollectorProcess, read_archive
from tests.test_instrumentctl import Capture
from tests.test_station_e2e import _TWISTD, StationProcess, simulated

#: Broker settings for a broker that must not lose what it acknowledged
#: when it is killed: its database saved after every change.  The
#: default (a save every 30 minutes) loses what came since the last save.
DURABLE = "autosave_on_changes true\nautosave_interval 1\nmax_queued_messages 0"


class Station:
    """
    A station process: its configuration, data directory, files and API.

    :param directory: its directory (configuration, data, spool).
    :param name: its name.
    :param broker: the broker its MQTT sink publishes to.
    :param instruments: its instruments' names (simulated SBE 37-SMPs).
    :param remote_commands: whether it takes commands over MQTT.
    """

    def __init__(
        self,
        directory: str,
        name: str,
        broker: str,
        instruments: tuple[str, ...] = ("CTD1",),
        *,
        remote_commands: bool = False,
    ) -> None:
        self.directory = directory
        self.name = name
        self.broker = broker
        self.instruments = instruments
        self.remote_commands = remote_commands
        self.runs: list[StationProcess] = []
        self.url: str | None = None
        os.makedirs(directory, exist_ok=True)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))

    @property
    def process(self) -> StationProcess:
        return self.runs[-1]

    def config(self) -> str:
        instruments = "".join(
            simulated(name, autosample=True, heartbeat=0) for name in self.instruments
        )
        return f"""
[station]
name = "{self.name}"
data_dir = "{self.directory}/data"

[sinks.files]
type = "jsonlines"
flush_interval = 0.1

[sinks.mqtt]
type = "mqtt"
broker = "{self.broker}"
keepalive = 5
remote_commands = {str(self.remote_commands).lower()}
{instruments}
"""

    async def start(self) -> None:
        """
        Start a run; return once its API listens.
        """
        path = os.path.join(self.directory, "station.toml")
        with open(path, "w") as f:
            f.write(self.config())
        run_ = StationProcess()
        self.runs.append(run_)
        argv = [
            sys.executable,
            "-u",
            "-c",
            _TWISTD,
            "-n",
            "--pidfile=",
            "instrumentd",
            "--config",
            path,
            "--api",
            "tcp:0:interface=127.0.0.1",
        ]
        reactor.spawnProcess(  # type: ignore[attr-defined]
            run_, sys.executable, argv, env=dict(os.environ), path=self.directory
        )
        self.url = await run_.url

    async def signal(self, name: str) -> None:
        """
        Send the current run a signal and wait for it to end.
        """
        run_ = self.process
        if run_.exit_code is None:
            run_.transport.signalProcess(name)  # type: ignore[union-attr]
            await run_.ended

    async def stop_sampling(self) -> None:
        """
        Stop every instrument's autosampling, through the station's API.
        """
        for instrument in self.instruments:
            url = f"{self.url}/api/instruments/{instrument}/commands/stop_autosample"
            response = await self.http.post(url, data=b"{}")
            text = await response.text()
            assert response.code == 200, f"{url}: {response.code} {text}"

    def records(self, *, strict: bool = False) -> dict[str, list[dict[str, Any]]]:
        """
        The station's own JSON-lines files: each instrument's records, in
        file order (days in order).

        :param strict: fail on a line that is not JSON; otherwise skip it
            (a file being written while it is read).
        """
        found: dict[str, list[dict[str, Any]]] = {}
        top = os.path.join(self.directory, "data", "samples")
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(".jsonl"):
                    continue
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    for line in f:
                        if not line.endswith("\n"):
                            continue
                        try:
                            record = json.loads(line)
                        except ValueError:
                            if strict:
                                raise
                            continue
                        found.setdefault(record["instrument"], []).append(record)
        return found


def data_lines(
    archive: dict[tuple[str, str], list[dict[str, Any]]], station: str, instrument: str
) -> list[dict[str, Any]]:
    """
    An instrument's archived samples (not its events), in archive order.
    """
    return [
        line
        for line in archive.get((station, instrument), [])
        if line.get("record") == "instrumentd.sample"
    ]


def without_keys(line: dict[str, Any]) -> dict[str, Any]:
    """
    An archived record without the two keys the archive adds.
    """
    return {k: v for k, v in line.items() if k not in ("station", "seq")}


async def until(
    condition: Callable[[], bool], what: str, log: Callable[[], str]
) -> None:
    """
    Check ``condition`` until it holds, within :data:`DEADLINE` (doubled:
    whole stations start and stop meanwhile).
    """
    start = reactor.seconds()  # type: ignore[attr-defined]
    while not condition():
        if reactor.seconds() - start > 2 * DEADLINE:  # type: ignore[attr-defined]
            raise AssertionError(f"never: {what}\n{log()[-8000:]}")
        await deferLater(reactor, 0.2, lambda: None)


class PipelineTestCase(TestCase):
    """
    Brokers, stations and a collector, each stopped when the test ends.
    """

    timeout = 600

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.stations: list[Station] = []
        self.brokers: list[Broker] = []

    async def broker(self, name: str, extra: str = DURABLE) -> Broker:
        broker = Broker(
            os.path.join(self.directory, name), persistence=True, extra=extra
        )
        self.brokers.append(broker)
        self.addCleanup(broker.kill)
        await broker.start()
        return broker

    async def collector(self, broker: Broker) -> CollectorProcess:
        collector = CollectorProcess(os.path.join(self.directory, "shore"), broker.url)
        self.addCleanup(collector.stop)
        await collector.start()
        return collector

    async def station(
        self, name: str, broker: Broker, *instruments: str, **kwargs: Any
    ) -> Station:
        station = Station(
            os.path.join(self.directory, name), name, broker.url, instruments, **kwargs
        )
        self.stations.append(station)
        self.addCleanup(station.signal, "TERM")
        await station.start()
        return station

    def log(self) -> str:
        parts = [
            f"--- {s.name}:\n" + s.process.output[-3000:]
            for s in self.stations
            if s.runs
        ]
        parts += [
            f"--- broker {b.directory}:\n" + "\n".join(b.log().splitlines()[-40:])
            for b in self.brokers
        ]
        return "\n".join(parts)

    async def archived(
        self, collector: CollectorProcess, station: Station, count: int
    ) -> None:
        """
        Wait until every instrument of ``station`` has ``count`` samples in
        the archive.
        """

        def enough() -> bool:
            archive = read_archive(collector.archive)
            return all(
                len(data_lines(archive, station.name, each)) >= count
                for each in station.instruments
            )

        await until(
            enough,
            f"{count} samples of each of {station.name}'s instruments archived",
            lambda: collector.output[-3000:] + self.log(),
        )

    async def drained(
        self, collector: CollectorProcess, station: Station, *, superset: bool = False
    ) -> None:
        """
        Stop sampling, and wait until the archive holds as many samples of
        each instrument as the station's own files, and they as many as
        the archive: the station's files are flushed on a timer, so a
        sample may be archived before it is in its file.

        :param superset: the archive may hold more (samples the station's
            files lost when it was killed).
        """
        await station.stop_sampling()

        def complete() -> bool:
            archive = read_archive(collector.archive)
            own = station.records()
            for each in station.instruments:
                archived = len(data_lines(archive, station.name, each))
                mine = len(own.get(each, []))
                if archived < mine or (archived > mine and not superset):
                    return False
            return True

        await until(
            complete,
            f"everything of {station.name} archived",
            lambda: collector.output[-3000:] + self.log(),
        )
        # Events that follow the last sample (the state change) too.
        await collector.until(lambda gaps: not gaps["open"], "/gaps", "no open gap")

    def assert_exactly_once(
        self, collector: CollectorProcess, station: Station, *, superset: bool = False
    ) -> None:
        """
        Every number from 1 to the highest is archived once (samples and
        events together); each stream's samples are in the archive in the
        order they were taken, the same records as in the station's own
        file of that stream.

        :param superset: the archive may hold samples the station's files
            lost (a station killed before it flushed its files).
        """
        archive = read_archive(collector.archive)
        own = station.records(strict=True)
        for instrument in station.instruments:
            where = f"{station.name}/{instrument}"
            lines = archive[(station.name, instrument)]
            numbers = sorted(line["seq"] for line in lines)
            self.assertEqual(
                numbers, list(range(1, len(numbers) + 1)), f"{where}: numbers"
            )
            samples = data_lines(archive, station.name, instrument)
            streams = sorted({line["stream"] for line in samples})
            self.assertIn("ctdpf_sample", streams)
            for stream in streams:
                archived = [line for line in samples if line["stream"] == stream]
                self.assertEqual(
                    [line["seq"] for line in archived],
                    sorted(line["seq"] for line in archived),
                    f"{where} {stream}: out of order",
                )
                mine = [without_keys(line) for line in archived]
                expected = [r for r in own[instrument] if r["stream"] == stream]
                if superset:
                    missing = [r for r in expected if r not in mine]
                    self.assertEqual(missing, [], f"{where} {stream}: not archived")
                else:
                    self.assertEqual(mine, expected, f"{where} {stream}")


class PipelineTests(PipelineTestCase):
    """
    Stations → broker → collector.
    """

    async def test_two_stations_exactly_once(self) -> None:
        """
        Two stations (three instruments) publish to one broker; the
        collector's archive holds every sample of each exactly once, in
        order, the same records as in the stations' own files.
        """
        broker = await self.broker("broker")
        collector = await self.collector(broker)
        one = await self.station("buoy1", broker, "CTD1", "CTD2")
        two = await self.station("buoy2", broker, "CTD1")
        await self.archived(collector, one, 6)
        await self.archived(collector, two, 6)
        await self.drained(collector, one)
        await self.drained(collector, two)
        self.assert_exactly_once(collector, one)
        self.assert_exactly_once(collector, two)
        status = await collector.get()
        self.assertEqual(sorted(status["stations"]), ["buoy1", "buoy2"])
        self.assertEqual(status["gaps"]["open"], 0)

    async def test_faults(self) -> None:
        """
        Mid-stream, the broker is killed and restarted, the station is
        killed and restarted, and the collector is killed and restarted:
        every sample is still archived exactly once, and every gap the
        collector reported was closed.
        """
        broker = await self.broker("broker")
        collector = await self.collector(broker)
        station = await self.station("buoy1", broker, "CTD1")
        await self.archived(collector, station, 4)

        await broker.kill()
        # Samples taken while there is no broker wait in the station's spool.
        count = len(station.records().get("CTD1", []))
        await until(
            lambda: len(station.records().get("CTD1", [])) >= count + 3,
            "samples while the broker is down",
            self.log,
        )
        await broker.start()
        await self.archived(collector, station, count + 3)

        await station.signal("KILL")
        await station.start()
        count = len(station.records().get("CTD1", []))
        await self.archived(collector, station, count + 3)

        await collector.kill()
        count = len(station.records().get("CTD1", []))
        await until(
            lambda: len(station.records().get("CTD1", [])) >= count + 3,
            "samples while the collector is down",
            self.log,
        )
        await collector.start()
        await self.archived(collector, station, count + 3)

        await self.drained(collector, station, superset=True)
        # The station's file may have lost what it had not flushed when it
        # was killed; the archive has those from the station's spool.
        self.assert_exactly_once(collector, station, superset=True)
        gaps = await collector.get("/gaps")
        self.assertEqual(gaps["open"], [])
        self.assertTrue(all(not gap["abandoned"] for gap in gaps["closed"]))


class BridgeTests(PipelineTestCase):
    """
    A station-side broker bridged to the shore broker.
    """

    def bridge(self, shore: Broker) -> str:
        """
        The station broker's bridge to ``shore``: the tested part of
        ``doc/examples/mosquitto-station.conf`` as it is, with this test's
        shore address, and the database saved after every change.
        """
        example = os.path.join(
            os.path.dirname(__file__), "..", "doc", "examples", "mosquitto-station.conf"
        )
        with open(example) as f:
            text = f.read()
        begin = text.index("# BEGIN bridge")
        end = text.index("# END bridge")
        return (
            f"{DURABLE}\nconnection shore\naddress 127.0.0.1:{shore.port}\n"
            + text[begin:end]
        )

    async def test_store_and_forward(self) -> None:
        """
        The shore broker stops for a while: the station's broker keeps what
        the station sends, and forwards it when the shore comes back;
        nothing is lost and nothing archived twice.
        """
        shore = await self.broker("shore")
        collector = await self.collector(shore)
        local = await self.broker("local", self.bridge(shore))
        station = await self.station("buoy1", local, "CTD1")
        await self.archived(collector, station, 4)
        await shore.stop()
        count = len(station.records().get("CTD1", []))
        await until(
            lambda: len(station.records().get("CTD1", [])) >= count + 6,
            "samples while the shore is cut off",
            self.log,
        )
        await shore.start()
        await self.archived(collector, station, count + 6)
        await self.drained(collector, station)
        self.assert_exactly_once(collector, station)

    async def test_instrumentctl(self) -> None:
        """
        Through the shore broker and the bridge, instrumentctl --broker
        lists the station's instruments, reads a parameter, runs a command
        and watches samples arrive.
        """
        shore = await self.broker("shore")
        local = await self.broker("local", self.bridge(shore))
        station = await self.station("buoy1", local, "CTD1", remote_commands=True)
        await station.process.wait_for(r"CTD1.*(AUTOSAMPLE|STREAMING)")

        async def ctl(*argv: str, **kwargs: Any) -> tuple[int, str, str]:
            out = kwargs.pop("stdout", None) or Capture()
            err = kwargs.pop("stderr", None) or Capture()
            code = await run(
                reactor,
                ["--broker", shore.url, "--timeout", "60", *argv],
                stdout=out,
                stderr=err,
                environ={},
                **kwargs,
            )
            return code, out.getvalue(), err.getvalue()

        async def listed() -> bool:
            code, out, _ = await ctl("list")
            return code == ExitCode.OK and "buoy1/CTD1" in out

        start = reactor.seconds()  # type: ignore[attr-defined]
        while not await listed():
            self.assertLess(reactor.seconds() - start, 2 * DEADLINE, self.log())  # type: ignore[attr-defined]
            await deferLater(reactor, 0.5, lambda: None)
        code, out, err = await ctl("get", "buoy1/CTD1", "INTERVAL")
        self.assertEqual((code, err), (ExitCode.OK, ""), out)
        self.assertEqual(out.split(), ["PARAMETER", "VALUE", "INTERVAL", "5"])
        code, out, err = await ctl("run", "buoy1/CTD1", "nope")
        self.assertEqual(code, ExitCode.API_ERROR, out + err)
        interrupted: Deferred[None] = Deferred()
        out_, err_ = Capture(), Capture()
        watching = Deferred.fromCoroutine(
            ctl(
                "watch", "buoy1/CTD1", stdout=out_, stderr=err_, interrupted=interrupted
            )
        )
        await out_.wait_for("TEMPERATURE")
        interrupted.callback(None)
        code, out, _ = await watching
        self.assertEqual(code, ExitCode.OK)
        self.assertIn("ctdpf_sample:", out)
