"""
A real station process whose in-process port agents are joined to their
drivers directly (no loopback sockets) with every listener off, reaching
simulated SBE 37s in a process of their own: samples, commands and the
port agent's info over the API, and how many file descriptors each
instrument costs.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests import test_station_e2e as e2e
from tests.agentsupport import within
from tests.fleetsupport import (
    descriptor_kinds,
    open_descriptors,
    open_files,
    samples_from_all,
    start_fleet,
)
from tests.test_station_e2e import DRIVER, StationProcess

#: Seconds for a station of several instruments to come up on a loaded
#: machine.
UP = 120.0


def instruments(
    ports: list[int], *, listeners: str, autosample: bool = True, first: int = 0
) -> str:
    """
    ``[[instruments]]`` tables for simulators on ``ports``: in-process
    agents with these listeners, heartbeats off.
    """
    return "".join(
        f"""
[[instruments]]
name = "ctd{first + number}"
driver = "{DRIVER}"
autosample = {str(autosample).lower()}
parameters = {{ INTERVAL = 5 }}
connection = {{ type = "tcp", host = "127.0.0.1", port = {port} }}
[instruments.port_agent]
mode = "in-process"
heartbeat = 0
listeners = {listeners}
"""
        for number, port in enumerate(ports)
    )


_OFF = '{ data = "none", command = "none", sniff = "none", raw = "none" }'


class _Settled:
    """
    The station's descriptors, counted in five rounds once it holds one
    JSON-lines file per instrument: the least of the counts, so that a
    descriptor open for a moment (an instrument's metadata.json being
    written) is not counted.

    A round ends when every instrument has delivered a sample since the
    last count, so the counts are a sampling interval apart.  Counting at
    each of five samples, as before, did not spread them: a loaded station
    sends many samples in one write, and the five counts were made in the
    same instant, each seeing the same passing descriptor.
    """

    def __init__(self, pid: int, instruments: set[str]) -> None:
        self.pid = pid
        self.instruments = instruments
        self.counts: list[int] = []
        #: What was open at the least count, by kind.
        self.kinds: dict[str, int] = {}
        self._round: set[str] = set()

    def __call__(self, instrument: str) -> bool:
        self._round.add(instrument)
        if self._round >= self.instruments and (
            open_files(self.pid, ".jsonl") == len(self.instruments)
        ):
            self._round = set()
            kinds = descriptor_kinds(self.pid)
            count = open_descriptors(self.pid)
            if not self.counts or count < min(self.counts):
                self.kinds = kinds
            self.counts.append(count)
        return len(self.counts) >= 5


class DirectStationTests(TestCase):
    """
    Stations of in-process agents with listeners off.
    """

    setUp = e2e.StationEndToEndTests.setUp
    start_station = e2e.StationEndToEndTests.start_station
    request = e2e.StationEndToEndTests.request

    async def up(self, config: str, count: int) -> tuple[StationProcess, str]:
        station = self.start_station(config)
        url = await within(station.url, "the API", UP)
        for number in range(count):
            await within(
                station.wait_for(rf"ctd{number}: running, (AUTOSAMPLE|COMMAND)"),
                f"ctd{number} running",
                UP,
            )
        return station, url

    async def test_listenersOff(self) -> None:
        """
        With every listener off the driver still gets its samples and runs
        commands through the agent, which records them in its datalog; the
        API says the driver is joined directly, every port is ``None``, and
        the agent has no client on any port.
        """
        [sampling, idle] = await start_fleet(self, 2)
        station, url = await self.up(
            instruments([sampling], listeners=_OFF)
            + instruments([idle], listeners=_OFF, autosample=False, first=1),
            2,
        )
        await samples_from_all(self.http, url, {"ctd0"})
        api = url + "/api/instruments"
        result = await self.request("POST", api + "/ctd1/commands/acquire_sample")
        self.assertIn("temperature", str(result["result"]))

        info = await self.request("GET", api + "/ctd1/port-agent")
        agent = info["port_agent"]
        self.assertEqual(agent["mode"], "in-process")
        self.assertEqual(agent["driver_link"], "direct")
        self.assertEqual(agent["pid"], station.pid)
        self.assertTrue(agent["running"])
        self.assertEqual(
            agent["ports"], {"data": None, "command": None, "sniff": None, "raw": None}
        )
        stats = info["stats"]
        self.assertEqual(stats["clients"]["data"], 0)
        self.assertEqual(stats["clients"]["command"], 0)
        self.assertEqual(stats["clients"]["direct"], 1)
        self.assertTrue(stats["link_up"])
        # The driver's command went through the agent: counted and logged.
        self.assertGreater(stats["instrument"]["bytes_out"], 0)
        self.assertGreater(stats["packets_by_type"]["DATA_FROM_DRIVER"], 0)
        # Each agent's link was still coming up when its driver joined it:
        # that is no warning (and no "up again" after it).
        self.assertNotIn("the instrument link is down since", station.output)
        self.assertNotIn("the instrument link is up again", station.output)
        # The agents' start is the station's line, with the datalog file;
        # their own lines, which name no instrument, are not there.
        self.assertRegex(
            station.output,
            r"ctd0: port agent \(in-process, pid \d+\) ready: no listeners; "
            r"datalog in \S+/ctd0_\d{8}T\d{6}Z\.datalog",
        )
        self.assertNotIn("port agent ctd0 ready", station.output)
        self.assertNotIn("instrument link up", station.output)
        self.assertNotIn("instrument link CONNECTED", station.output)

    async def test_descriptorsPerInstrument(self) -> None:
        """
        A station of in-process agents with listeners off holds at most
        three file descriptors per sampling instrument (its link, its
        datalog, its JSON-lines file): counted in /proc for stations of 2
        and of 10 instruments, once the start-up status and calibration
        files have been closed as idle.
        """
        ports = await start_fleet(self, 12)
        counts = {}
        kinds = {}
        for chosen in (ports[:2], ports[2:]):
            station, url = await self.up(
                '[sinks.files]\ntype = "jsonlines"\nidle_close = 0.5\n'
                + instruments(chosen, listeners=_OFF),
                len(chosen),
            )
            pid = station.pid
            assert pid is not None
            names = {f"ctd{number}" for number in range(len(chosen))}
            await samples_from_all(
                self.http, url, names, until=(settled := _Settled(pid, names))
            )
            counts[len(chosen)] = min(settled.counts)
            kinds[len(chosen)] = settled.kinds
            station.transport.signalProcess("TERM")  # type: ignore[union-attr]
            await within(station.ended, "the station to stop", UP)
        per_instrument = (counts[10] - counts[2]) / 8
        self.assertLessEqual(per_instrument, 3.0, (counts, kinds))
