"""
End to end, with real parts: a simulated SBE 37 in a real ``twistd
instrumentd`` station process with a configured position, publishing
through its MQTT sink to a real Mosquitto, a real ``twistd instrumentd
collect`` process archiving, and ``instrumentd-export`` run on the
collector's archive: the netCDF file names the instrument's model, serial
number and calibration dates and the station and its position (from the
``metadata.json`` the collector keeps from the station's retained meta),
and passes the IOOS compliance checker's CF and ACDD checks.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

from instrumentd.export.cli import export
from tests.collectorsupport import read_archive
from tests.exportsupport import check_compliance
from tests.test_mqtt_pipeline import PipelineTestCase, Station, data_lines, until


class LocatedStation(Station):
    """
    A pipeline station whose ``[station]`` table gives its position.
    """

    def config(self) -> str:
        return (
            super()
            .config()
            .replace(
                f'name = "{self.name}"\n',
                f'name = "{self.name}"\n'
                "position = { latitude = 44.6, longitude = -124.3 }\n",
                1,
            )
        )


class CollectorExportTests(PipelineTestCase):
    """
    Station → broker → collector → ``instrumentd-export``.
    """

    async def test_exportCarriesMetadata(self) -> None:
        """
        The collector keeps ``STATION/INSTRUMENT/metadata.json`` from the
        station's retained meta, and the netCDF export of its archive
        carries the model, serial number, calibration dates, station and
        position, and is compliant.
        """
        broker = await self.broker("broker")
        collector = await self.collector(broker)
        station = LocatedStation(
            os.path.join(self.directory, "buoy1"), "buoy1", broker.url, ("CTD1",)
        )
        self.stations.append(station)
        self.addCleanup(station.signal, "TERM")
        await station.start()
        # Samples of the stream exported: the status and calibration
        # records the driver writes at start-up are archived first, and on
        # a loaded machine four archived records could all be those.

        def sampled() -> bool:
            lines = data_lines(read_archive(collector.archive), "buoy1", "CTD1")
            return sum(line["stream"] == "ctdpf_sample" for line in lines) >= 4

        await until(
            sampled,
            "4 ctdpf_sample records archived",
            lambda: collector.output[-3000:] + self.log(),
        )
        path = os.path.join(collector.archive, "buoy1", "CTD1", "metadata.json")

        def described() -> bool:
            try:
                with open(path) as f:
                    document = json.load(f)
            except (OSError, ValueError):
                return False
            return "TCALDATE" in document.get("parameters", {})

        await until(
            described,
            f"{path} with the parameters' values",
            lambda: collector.output[-3000:] + self.log(),
        )
        await self.drained(collector, station)
        with open(path) as f:
            metadata: dict[str, Any] = json.load(f)
        self.assertEqual(metadata["record"], "instrumentd.instrument_metadata")
        self.assertEqual(
            metadata["station"],
            {"name": "buoy1", "position": {"latitude": 44.6, "longitude": -124.3}},
        )
        self.assertEqual(metadata["driver"]["name"], "seabird_sbe37smp")

        out = os.path.join(self.directory, "exports")
        stdout, stderr = io.StringIO(), io.StringIO()
        status = export(
            [collector.archive, "-s", "ctdpf_sample", "-f", "netcdf", "-o", out],
            stdout,
            stderr,
        )
        self.assertEqual(status, 0, stdout.getvalue() + stderr.getvalue())
        [name] = os.listdir(out)
        import netCDF4

        samples = data_lines(read_archive(collector.archive), "buoy1", "CTD1")
        with netCDF4.Dataset(os.path.join(out, name)) as ds:
            self.assertEqual(
                len(ds.dimensions["time"]),
                sum(1 for s in samples if s["stream"] == "ctdpf_sample"),
            )
            self.assertEqual(ds.platform, "buoy1")
            self.assertEqual(float(ds.variables["latitude"][...]), 44.6)
            self.assertEqual(float(ds.variables["longitude"][...]), -124.3)
            self.assertEqual(ds.instrument_model, "Sea-Bird SBE 37-SMP MicroCAT")
            self.assertRegex(ds.instrument_serial_number, r"^\d+$")
            self.assertEqual(
                ds.instrument_calibration_date_temperature,
                metadata["parameters"]["TCALDATE"],
            )
        found = check_compliance(os.path.join(out, name))
        self.assertEqual(found["cf:1.11"][3], [], "CF errors")
        self.assertEqual(
            [m for m in found["acdd"][3] if "standard_name" not in m],
            [],
            "ACDD highly recommended",
        )
