"""
Tests for L{instrumentd.station.archive_metadata}: the station keeps each
instrument's ``metadata.json`` beside its sample files, with the
``[station]`` name and position; and, end to end, a real station with a
simulated SBE 37 whose archive ``instrumentd-export`` turns into CSV and a
compliant netCDF file carrying what the station knew.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from instrumentd.driver.events import ConfigChangeEvent, EventBus
from instrumentd.station.archive_metadata import (
    HeldWrites,
    InstrumentMetadataFile,
    MetadataWriter,
)
from instrumentd.station.config import ConfigError, parse_config, parse_toml
from instrumentd.station.sse import EventStreamParser, ServerSentEvent
from tests.exportsupport import check_compliance
from tests.test_station_e2e import _TWISTD, StationProcess, simulated

_EXPORT = "from instrumentd.export.cli import main; main()"


class _Driver:
    """
    The two things the metadata file asks of a driver.
    """

    def __init__(self) -> None:
        self.parameters: dict[str, object] = {"INTERVAL": 10, "TCALDATE": "08-nov-05"}

    def get_config_metadata(self) -> dict[str, object]:
        return {
            "driver": {"name": "seabird_sbe37smp", "version": "1.0", "states": []},
            "commands": {},
            "parameters": {},
            "streams": {"ctdpf_sample": {"temperature": {"units": "degree_Celsius"}}},
        }

    def get_cached_config(self) -> dict[str, object]:
        return dict(self.parameters)


class MetadataFileTests(SynchronousTestCase):
    """
    L{InstrumentMetadataFile} writes the document and keeps it current.
    """

    def setUp(self) -> None:
        self.directory = self.mktemp()
        self.clock = Clock()
        self.clock.advance(1796083200)
        self.bus = EventBus(self.clock)
        self.driver = _Driver()
        self.file = InstrumentMetadataFile(
            self.directory,
            "CTD01",
            self.driver,  # type: ignore[arg-type]
            self.bus,
            station="buoy-7",
            position={"latitude": 44.6, "longitude": -124.3},
            clock=self.clock.seconds,
        )

    def read(self) -> dict[str, Any]:
        with open(os.path.join(self.directory, "CTD01", "metadata.json")) as f:
            document: dict[str, Any] = json.load(f)
        return document

    def test_written(self) -> None:
        """
        Started, it writes the station's name and position, the model, the
        driver, the parameter values and the streams' fields.
        """
        self.file.start()
        document = self.read()
        self.assertEqual(document["record"], "instrumentd.instrument_metadata")
        self.assertEqual(
            document["station"],
            {"name": "buoy-7", "position": {"latitude": 44.6, "longitude": -124.3}},
        )
        self.assertEqual(
            document["instrument"],
            {"name": "CTD01", "model": "Sea-Bird SBE 37-SMP MicroCAT"},
        )
        self.assertEqual(
            document["driver"], {"name": "seabird_sbe37smp", "version": "1.0"}
        )
        self.assertEqual(document["parameters"]["TCALDATE"], "08-nov-05")
        self.assertEqual(
            document["streams"]["ctdpf_sample"]["temperature"]["units"],
            "degree_Celsius",
        )
        self.assertEqual(document["updated"], "2026-12-01T00:00:00Z")

    def test_keptCurrent(self) -> None:
        """
        A configuration change that changes the document rewrites it; one
        that does not leaves it; stopped, it follows the driver no more.
        """
        stop = self.file.start()
        self.assertEqual(self.file.writes, 1)
        self.bus.publish(ConfigChangeEvent(time=1.0, changes={"INTERVAL": 10}))
        self.assertEqual(self.file.writes, 1)
        self.driver.parameters["TCALDATE"] = "01-jan-26"
        self.bus.publish(ConfigChangeEvent(time=2.0, changes={"TCALDATE": "01-jan-26"}))
        self.assertEqual(self.file.writes, 2)
        self.assertEqual(self.read()["parameters"]["TCALDATE"], "01-jan-26")
        stop()
        self.driver.parameters["INTERVAL"] = 20
        self.bus.publish(ConfigChangeEvent(time=3.0, changes={"INTERVAL": 20}))
        self.assertEqual(self.file.writes, 2)

    def test_changesCoalesced(self) -> None:
        """
        Given C{later}, the first document and the changes of its first
        second are written as one, a second after the start (an instrument's
        discovery changes its state several times), and later changes of a
        second as one, a second after the first of them; stopped, nothing
        waiting is written.
        """
        stop = self.file.start(later=self.clock.callLater)
        for value in ("01-jan-26", "02-jan-26", "03-jan-26"):
            self.driver.parameters["TCALDATE"] = value
            self.bus.publish(ConfigChangeEvent(time=1.0, changes={"TCALDATE": value}))
        self.assertEqual(self.file.writes, 0)
        self.clock.advance(1.0)
        self.assertEqual(self.file.writes, 1)
        self.assertEqual(self.read()["parameters"]["TCALDATE"], "03-jan-26")
        self.driver.parameters["TCALDATE"] = "05-jan-26"
        self.bus.publish(ConfigChangeEvent(time=1.5, changes={"TCALDATE": "y"}))
        self.driver.parameters["TCALDATE"] = "06-jan-26"
        self.bus.publish(ConfigChangeEvent(time=1.6, changes={"TCALDATE": "z"}))
        self.assertEqual(self.file.writes, 1)
        self.clock.advance(1.0)
        self.assertEqual(self.file.writes, 2)
        self.assertEqual(self.read()["parameters"]["TCALDATE"], "06-jan-26")
        self.driver.parameters["TCALDATE"] = "04-jan-26"
        self.bus.publish(ConfigChangeEvent(time=2.0, changes={"TCALDATE": "x"}))
        stop()
        self.clock.advance(1.0)
        self.assertEqual(self.file.writes, 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_pendingWrittenOnStop(self) -> None:
        """
        Stopped with C{True} (the station stopping), what was waiting is
        written at once; nothing waiting, nothing is.
        """
        stop = self.file.start(later=self.clock.callLater, delay=10.0)
        self.assertEqual(self.file.writes, 0)
        stop(True)
        self.assertEqual(self.file.writes, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        stop(True)
        self.assertEqual(self.file.writes, 1)

    def test_cannotWrite(self) -> None:
        """
        A file that cannot be written is logged once, never raised, and
        written when it can be again.
        """
        os.makedirs(self.directory)
        with open(os.path.join(self.directory, "CTD01"), "w") as f:
            f.write("in the way")
        self.file.start()
        self.assertFalse(self.file.update())
        self.assertEqual(len(self.flushLoggedErrors()), 0)
        os.remove(os.path.join(self.directory, "CTD01"))
        self.assertTrue(self.file.update())
        self.assertEqual(self.read()["station"]["name"], "buoy-7")


class DriverDescribedOnceTests(SynchronousTestCase):
    """
    A station's metadata file takes the driver's name, version and streams
    from its protocol class, made once a class, not from the driver's
    whole metadata each time; the file's bytes are the same.
    """

    def setUp(self) -> None:
        from instrumentd.driver.driver import InstrumentDriver
        from instrumentd.instruments.seabird.sbe37smp.driver import SBE37Protocol
        from instrumentd.portagent.direct import DirectAgentConnection

        self.clock = Clock()
        self.clock.advance(1796083200)
        self.directory = self.mktemp()

        def driver(protocol: type[SBE37Protocol] = SBE37Protocol) -> Any:
            made = InstrumentDriver(
                DirectAgentConnection(reactor=self.clock), protocol, clock=self.clock
            )
            asked = made.asked = []  # type: ignore[attr-defined]
            whole = made.get_config_metadata

            def get_config_metadata() -> dict[str, object]:
                asked.append(True)
                return whole()

            made.get_config_metadata = get_config_metadata  # type: ignore[method-assign]
            return made

        self.driver = driver

    def file(self, name: str, driver: Any) -> InstrumentMetadataFile:
        return InstrumentMetadataFile(
            self.directory,
            name,
            driver,
            EventBus(self.clock),
            station="buoy-7",
            position={"latitude": 44.6, "longitude": -124.3},
            clock=self.clock.seconds,
        )

    def test_sameBytes(self) -> None:
        """
        The file is byte for byte what the driver's whole metadata makes,
        and the driver's metadata is not asked for it, nor for the next
        instrument's.
        """
        from instrumentd.station.archive_metadata import metadata_document

        first, second = self.driver(), self.driver()
        self.file("CTD01", first).update()
        self.file("CTD02", second).update()
        self.assertEqual((first.asked, second.asked), ([], []))
        expected = os.path.join(self.mktemp(), "metadata.json")
        MetadataWriter(expected, self.clock.seconds).update(
            metadata_document(
                "CTD01",
                self.driver(),
                station="buoy-7",
                position={"latitude": 44.6, "longitude": -124.3},
            )
        )
        with open(expected, "rb") as f:
            want = f.read()
        with open(os.path.join(self.directory, "CTD01", "metadata.json"), "rb") as f:
            self.assertEqual(f.read(), want)
        self.assertIn(b'"ctdpf_sample"', want)

    def test_ownMetadata(self) -> None:
        """
        A protocol that describes itself its own way is asked, each time.
        """
        from instrumentd.instruments.seabird.sbe37smp.driver import SBE37Protocol

        class Own(SBE37Protocol):
            def metadata(self) -> dict[str, object]:
                described = super().metadata()
                described["streams"] = {"own": {}}
                return described

        driver = self.driver(Own)
        self.file("CTD01", driver).update()
        self.assertEqual(driver.asked, [True])
        with open(os.path.join(self.directory, "CTD01", "metadata.json")) as f:
            self.assertEqual(json.load(f)["streams"], {"own": {}})


class HeldWritesTests(SynchronousTestCase):
    """
    L{HeldWrites} holds the metadata files' writes while a station's
    instruments come up, and writes them, a few a turn, once released.
    """

    def setUp(self) -> None:
        self.directory = self.mktemp()
        self.clock = Clock()
        self.clock.advance(1796083200)
        self.hold = HeldWrites(self.clock, per_turn=2)
        self.drivers: list[_Driver] = []
        self.buses: list[EventBus] = []
        self.files: list[InstrumentMetadataFile] = []
        self.stops = []
        for number in range(5):
            driver, bus = _Driver(), EventBus(self.clock)
            file = InstrumentMetadataFile(
                self.directory,
                f"CTD{number}",
                driver,  # type: ignore[arg-type]
                bus,
                clock=self.clock.seconds,
            )
            self.drivers.append(driver)
            self.buses.append(bus)
            self.files.append(file)
            self.stops.append(
                file.start(later=self.clock.callLater, delay=10.0, hold=self.hold)
            )

    def written(self) -> list[int]:
        return [file.writes for file in self.files]

    def read(self, number: int) -> dict[str, Any]:
        with open(os.path.join(self.directory, f"CTD{number}", "metadata.json")) as f:
            document: dict[str, Any] = json.load(f)
        return document

    def test_heldThenWrittenInTurns(self) -> None:
        """
        While held, nothing is written, not even a folder, and no timer
        waits; released, the files are written C{per_turn} in this turn and
        the rest in the next turns, each with what its driver says when it
        is written.
        """
        self.clock.advance(30.0)
        self.drivers[4].parameters["TCALDATE"] = "01-jan-26"
        self.buses[4].publish(ConfigChangeEvent(time=1.0, changes={"TCALDATE": "x"}))
        self.assertEqual(self.written(), [0] * 5)
        self.assertEqual(self.hold.held, 5)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(os.path.exists(self.directory))
        self.hold.release()
        self.assertEqual(self.written(), [1, 1, 0, 0, 0])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0)
        self.assertEqual(self.written(), [1] * 5)
        self.assertEqual((self.hold.held, self.hold.written), (0, 5))
        self.assertEqual(self.read(4)["parameters"]["TCALDATE"], "01-jan-26")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_notHeldOnceReleased(self) -> None:
        """
        Once released, a change is written C{delay} after it, as without a
        hold.
        """
        self.hold.release()
        self.clock.advance(0)
        self.assertEqual(self.written(), [1] * 5)
        self.drivers[0].parameters["TCALDATE"] = "01-jan-26"
        self.buses[0].publish(ConfigChangeEvent(time=1.0, changes={"TCALDATE": "x"}))
        self.assertEqual(self.hold.held, 0)
        self.clock.advance(9.0)
        self.assertEqual(self.written(), [1] * 5)
        self.clock.advance(1.0)
        self.assertEqual(self.written(), [2, 1, 1, 1, 1])

    def test_heldWrittenOnStop(self) -> None:
        """
        A station stopping before start-up is over writes what is held
        (C{stop(True)}); a file stopped otherwise is dropped from the hold,
        and the hold, stopped, writes nothing more.
        """
        self.stops[0](True)
        self.stops[1]()
        self.assertEqual(self.written(), [1, 0, 0, 0, 0])
        self.assertEqual(self.read(0)["instrument"]["name"], "CTD0")
        self.assertEqual(self.hold.held, 3)
        self.hold.release()
        self.hold.stop()
        self.clock.advance(0)
        self.assertEqual(self.written(), [1, 0, 1, 1, 0])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class MetadataWriterTests(SynchronousTestCase):
    """
    L{MetadataWriter} writes the document as C{json.dump} with C{indent=1}
    writes it, and only when it changed.
    """

    document: dict[str, object] = {
        "record": "instrumentd.instrument_metadata",
        "version": 1,
        "station": {"name": "buoy-7", "position": {"latitude": 44.6}},
        "driver": {},
        "parameters": {"TCALDATE": "08-nov-05", "PTCA": [1.5e-05, -2, True, None]},
        "streams": {"ctdpf_sample": {"t": {"units": "\u00b0C", "range": (0, 35)}}},
        "empty": [],
    }

    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "CTD01", "metadata.json")
        self.writer = MetadataWriter(self.path, lambda: 1796083200.0)

    def test_indented(self) -> None:
        """
        The file holds what C{json.dump(document, f, indent=1)} writes, with
        C{updated} last, and a newline; a second writer of a document with
        the same parts writes them the same.
        """
        expected = (
            json.dumps(dict(self.document, updated="2026-12-01T00:00:00Z"), indent=1)
            + "\n"
        )
        self.assertTrue(self.writer.update(self.document))
        with open(self.path, encoding="utf-8") as f:
            self.assertEqual(f.read(), expected)
        other = MetadataWriter(self.path + "2", lambda: 1796083200.0)
        self.assertTrue(other.update(self.document))
        with open(self.path + "2", encoding="utf-8") as f:
            self.assertEqual(f.read(), expected)

    def test_unchanged(self) -> None:
        """
        A document equal to the one written last, or (to a new writer) to
        the one on disk, tuples read back as lists, is not written again;
        a changed one is.
        """
        self.assertTrue(self.writer.update(self.document))
        self.assertFalse(self.writer.update(dict(self.document)))
        again = MetadataWriter(self.path, lambda: 1796090000.0)
        self.assertFalse(again.update(self.document))
        changed = dict(self.document, parameters={"TCALDATE": "01-jan-26"})
        self.assertTrue(again.update(changed))
        with open(self.path, encoding="utf-8") as f:
            self.assertEqual(json.load(f)["parameters"], {"TCALDATE": "01-jan-26"})
        self.assertEqual((self.writer.writes, again.writes), (1, 1))


class StationConfigTests(SynchronousTestCase):
    """
    The ``[station]`` name and position.
    """

    def test_parsed(self) -> None:
        config = parse_config(
            parse_toml(
                '[station]\nname = "buoy-7"\n'
                "position = { latitude = 44.6, longitude = -124.3 }\n"
                + simulated("ctd1", autosample=False),
                "station.toml",
            ),
            "station.toml",
        )
        self.assertEqual(config.name, "buoy-7")
        self.assertEqual(config.position, {"latitude": 44.6, "longitude": -124.3})
        plain = parse_config(
            parse_toml(simulated("ctd1", autosample=False), "station.toml"),
            "station.toml",
        )
        self.assertIsNone(plain.position)
        self.assertIsNone(plain.name)

    def test_refused(self) -> None:
        """
        A latitude out of range, a missing longitude and a bad name are
        refused naming the key and the value.
        """
        with self.assertRaises(ConfigError) as caught:
            parse_config(
                parse_toml(
                    '[station]\nname = "a b"\nposition = { latitude = 91 }\n',
                    "station.toml",
                ),
                "station.toml",
            )
        text = str(caught.exception)
        self.assertIn("station.name: 'a b' is not a valid name", text)
        self.assertIn("station.position.latitude: 91 is out of range", text)
        self.assertIn("station.position.longitude", text)


class StationExportTests(TestCase):
    """
    A real station process with a simulated SBE 37, then its archive
    exported with the real command.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, pool=pool)
        self.addCleanup(pool.closeCachedConnections)

    def start_station(self, config: str) -> StationProcess:
        path = os.path.join(self.directory, "station.toml")
        with open(path, "w") as f:
            f.write(config)
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
            path,
            "--api",
            "tcp:0:interface=127.0.0.1",
        ]
        reactor.spawnProcess(  # type: ignore[attr-defined]
            station, sys.executable, argv, env=dict(os.environ), path=self.directory
        )

        async def stop() -> None:
            if station.exit_code is None:
                station.transport.signalProcess("TERM")  # type: ignore[union-attr]
                await station.ended

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        return station

    async def samples(self, url: str, count: int) -> None:
        """
        Read the instrument's event stream until ``count`` samples of its
        sample stream have come.
        """
        from treq.client import HTTPClient

        got: Deferred[None] = Deferred()
        seen = [0]

        def event(each: ServerSentEvent) -> None:
            if each.event == "SAMPLE" and "ctdpf_sample" in each.data:
                seen[0] += 1
                if seen[0] >= count and not got.called:
                    got.callback(None)

        http = HTTPClient(self.agent)
        response = await http.get(
            f"{url}/api/instruments/ctd1/events?types=SAMPLE", unbuffered=True
        )
        streaming = response.collect(EventStreamParser(event).feed)
        await got
        response.original._transport.loseConnection()  # type: ignore[attr-defined]
        await streaming.addErrback(lambda _: None)

    async def export(self, *argv: str) -> str:
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-c", _EXPORT, *argv],
            env=dict(os.environ),
            reactor=reactor,
        )
        self.assertEqual((code, err), (0, b""), out)
        return out.decode()

    async def test_writtenAfterStartup(self) -> None:
        """
        A station writes its instruments' metadata files once every
        instrument has been brought up, and says so; each file says what
        discovery found.
        """
        data = os.path.join(self.directory, "data")
        station = self.start_station(
            f'[station]\ndata_dir = "{data}"\nname = "buoy-7"\n'
            + "".join(
                simulated(f"ctd{number}", autosample=True, heartbeat=0)
                for number in range(2)
            )
        )
        await station.wait_for(r"all 2 instruments brought up in")
        await station.wait_for(
            r"metadata.json of 2 instruments written, held while they came up"
        )
        output = station.output
        self.assertLess(
            output.index("all 2 instruments brought up in"),
            output.index("metadata.json of 2 instruments written"),
        )
        for name in ("ctd0", "ctd1"):
            with open(os.path.join(data, "samples", name, "metadata.json")) as f:
                metadata = json.load(f)
            self.assertEqual(metadata["instrument"]["name"], name)
            self.assertIn("TCALDATE", metadata["parameters"])

    async def test_stationToExport(self) -> None:
        """
        The station writes the samples and the instrument's metadata file;
        the export of its archive has the samples in CSV and in a netCDF
        file that names the station, its position, the SBE 37's model,
        serial number (from its calibration dump) and calibration dates
        (from its parameters), and that the compliance checker passes.
        """
        data = os.path.join(self.directory, "data")
        station = self.start_station(
            f'[station]\ndata_dir = "{data}"\nname = "buoy-7"\n'
            "position = { latitude = 44.6, longitude = -124.3 }\n"
            + simulated("ctd1", autosample=True, heartbeat=0)
        )
        url = await station.url
        await station.wait_for("ctd1: running, AUTOSAMPLE")
        await self.samples(url, 4)
        station.transport.signalProcess("TERM")  # type: ignore[union-attr]
        await station.ended

        samples = os.path.join(data, "samples")
        with open(os.path.join(samples, "ctd1", "metadata.json")) as f:
            metadata = json.load(f)
        self.assertEqual(metadata["station"]["name"], "buoy-7")
        self.assertEqual(metadata["driver"]["name"], "seabird_sbe37smp")
        self.assertIn("TCALDATE", metadata["parameters"])
        self.assertEqual(
            metadata["streams"]["ctdpf_sample"]["temperature"]["units"],
            "degree_Celsius",
        )

        out = os.path.join(self.directory, "exports")
        said = await self.export(samples, "-s", "ctdpf_sample", "-o", out)
        self.assertIn("ctd1/ctdpf_sample: ", said)
        with open(os.path.join(out, "ctd1_ctdpf_sample.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertGreaterEqual(len(rows), 4)
        self.assertTrue(all(r["time"].endswith("Z") for r in rows))
        self.assertTrue(all(float(r["temperature [degree_Celsius]"]) for r in rows))

        await self.export(samples, "-s", "ctdpf_sample", "-f", "netcdf", "-o", out)
        import netCDF4

        path = os.path.join(out, "ctd1_ctdpf_sample.nc")
        with netCDF4.Dataset(path) as ds:
            self.assertEqual(len(ds.dimensions["time"]), len(rows))
            self.assertEqual(ds.platform, "buoy-7")
            self.assertEqual(float(ds.variables["latitude"][...]), 44.6)
            self.assertEqual(ds.instrument_model, "Sea-Bird SBE 37-SMP MicroCAT")
            self.assertRegex(ds.instrument_serial_number, r"^\d+$")
            self.assertEqual(
                ds.instrument_calibration_date_temperature,
                metadata["parameters"]["TCALDATE"],
            )
            self.assertEqual(
                [float(v) for v in ds.variables["temperature"][:]],
                [float(r["temperature [degree_Celsius]"]) for r in rows],
            )
        found = check_compliance(path)
        self.assertEqual(found["cf:1.11"][3], [])
        self.assertEqual([m for m in found["acdd"][3] if "standard_name" not in m], [])
