"""
Tests for the netCDF export (L{instrumentd.export.netcdf}): CF 1.11
timeSeries files with ACDD attributes, QARTOD flags as ancillary variables,
an ADCP's per-cell arrays along a cell dimension, read back with netCDF4
and xarray against the CSV, and judged by the IOOS compliance checker.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.particles import ntp_from_unix
from instrumentd.export.archive import ExportError
from instrumentd.export.cli import export
from instrumentd.instruments.teledyne.workhorse import pd0
from instrumentd.instruments.teledyne.workhorse.particles import (
    ConfigParticle,
    VelocityEarthParticle,
)
from instrumentd.instruments.teledyne.workhorse.simulator import WorkhorseSimulator
from instrumentd.simulator import SimulatorSettings
from tests.exportsupport import (
    DAY_ONE,
    calibration_particle,
    check_compliance,
    record,
    sbe37_archive,
    write_lines,
    write_metadata,
    write_sink,
)

#: What the checker may leave: ACDD asks every data variable for a CF
#: standard name, which fields such as a sample number or an ADCP's echo
#: intensity do not have.
_NO_STANDARD_NAME = "missing the following attributes:: standard_name"


def adcp_ensembles(count: int, cells: int = 12) -> list[bytes]:
    """
    ``count`` PD0 ensembles a minute apart from the Workhorse simulator's
    own encoder.
    """
    adcp = WorkhorseSimulator(SimulatorSettings(seed=7), reactor=Clock(), awake=True)
    adcp.setup.set("WN", str(cells))
    ensembles = []
    for number in range(count):
        adcp.ensemble_number = number + 1
        ensembles.append(pd0.encode(adcp.build_ensemble(DAY_ONE + 60 * number)))
    adcp.stop()
    return ensembles


def adcp_particles(count: int, cells: int = 12) -> list[VelocityEarthParticle]:
    """
    ``count`` ensembles made into the driver's velocity particles.
    """
    return [
        VelocityEarthParticle(raw, port_timestamp=None)
        for raw in adcp_ensembles(count, cells)
    ]


class NetCDFExporting(SynchronousTestCase):
    """
    Exports to netCDF and reads the files back.
    """

    def setUp(self) -> None:
        self.archive = os.path.abspath(self.mktemp())
        self.out = os.path.abspath(self.mktemp())

    def run_export(self, *argv: str) -> str:
        stdout = io.StringIO()
        status = export(
            [self.archive, *argv, "--output", self.out], stdout, io.StringIO()
        )
        self.assertEqual(status, 0, stdout.getvalue())
        return stdout.getvalue()

    def open(self, name: str) -> Any:
        import netCDF4

        dataset = netCDF4.Dataset(os.path.join(self.out, name))
        self.addCleanup(dataset.close)
        return dataset

    def assertCompliant(self, name: str) -> dict[str, dict[int, list[str]]]:
        """
        The checker's CF 1.11 check finds no error (high priority) nor
        warning, and its ACDD 1.3 check nothing highly recommended missing
        but the standard names CF does not have.
        """
        found = check_compliance(os.path.join(self.out, name))
        self.assertEqual(found["cf:1.11"][3], [], "CF errors")
        self.assertEqual(found["cf:1.11"][2], [], "CF warnings")
        acdd = [m for m in found["acdd"][3] if not m.endswith(_NO_STANDARD_NAME)]
        self.assertEqual(acdd, [], "ACDD highly recommended")
        return found


class SBE37NetCDFTests(NetCDFExporting):
    """
    An SBE 37's samples as a CF timeSeries.
    """

    def test_structure(self) -> None:
        """
        A timeSeries with an unlimited time dimension, the station's id and
        position, a variable per field with its units and standard name,
        and the ACDD attributes from the instrument's metadata: model,
        serial number, calibration dates, station and position.
        """
        particles = sbe37_archive(self.archive, days=2, per_day=12)
        write_sink(self.archive, "CTD01", [calibration_particle(DAY_ONE)])
        self.run_export("--stream", "ctdpf_sample", "--format", "netcdf")
        ds = self.open("CTD01_ctdpf_sample.nc")
        self.assertTrue(ds.dimensions["time"].isunlimited())
        self.assertEqual(len(ds.dimensions["time"]), 24)
        self.assertEqual(ds.featureType, "timeSeries")
        self.assertEqual(ds.Conventions, "CF-1.11, ACDD-1.3")
        self.assertEqual(ds.variables["station"][:].tobytes().decode(), "buoy-7_CTD01")
        self.assertEqual(ds.variables["station"].cf_role, "timeseries_id")
        self.assertEqual(float(ds.variables["latitude"][...]), 44.6)
        self.assertEqual(float(ds.variables["longitude"][...]), -124.3)
        self.assertEqual(ds.geospatial_lat_min, 44.6)
        time = ds.variables["time"]
        self.assertEqual(time.units, "seconds since 1970-01-01T00:00:00Z")
        self.assertEqual(list(time[:2]), [DAY_ONE, DAY_ONE + 7200])
        temperature = ds.variables["temperature"]
        self.assertEqual(temperature.units, "degree_Celsius")
        self.assertEqual(temperature.standard_name, "sea_water_temperature")
        self.assertEqual(temperature.calibration_date, "08-nov-05")
        self.assertEqual(
            list(temperature[:]),
            [p.to_dict()["values"][0]["value"] for p in particles],
        )
        self.assertEqual(ds.instrument_serial_number, "2165")
        self.assertEqual(ds.instrument_model, "Sea-Bird SBE 37-SMP MicroCAT")
        self.assertEqual(ds.instrument_calibration_date_temperature, "08-nov-05")
        self.assertEqual(ds.instrument_calibration_date_pressure, "12-aug-05")
        self.assertEqual(ds.platform, "buoy-7")
        self.assertEqual(ds.time_coverage_start, "2026-12-01T00:00:00.000000Z")
        self.assertEqual(ds.time_coverage_end, "2026-12-02T22:00:00.000000Z")
        self.assertEqual(ds.time_coverage_resolution, "PT7200S")
        instrument = ds.variables["instrument"]
        self.assertEqual(instrument.serial_number, "2165")
        self.assertEqual(temperature.instrument, "instrument")
        self.assertNotIn("temperature_qc_aggregate", ds.variables)
        self.assertFalse(hasattr(temperature, "ancillary_variables"))

    def test_compliance(self) -> None:
        """
        The IOOS compliance checker's CF 1.11 and ACDD checks find no
        errors in an export of an SBE 37 with QC flags.
        """
        folder = os.path.join(self.archive, "CTD01", "ctdpf_sample")
        write_lines(
            os.path.join(folder, "2026-12-01.jsonl"),
            [
                record(
                    DAY_ONE + i,
                    {"temperature": 10 + i / 10, "pressure": 5.0, "sample_number": i},
                    units={
                        "temperature": "degree_Celsius",
                        "pressure": "dbar",
                        "sample_number": "1",
                    },
                    qc={"temperature": {"gross_range": 1, "spike": 2, "aggregate": 1}},
                )
                for i in range(20)
            ],
        )
        write_metadata(self.archive, "CTD01")
        self.run_export("--format", "netcdf", "-a", "license=CC-BY-4.0")
        found = self.assertCompliant("CTD01_ctdpf_sample.nc")
        self.assertEqual(
            list(found["acdd"][3]),
            [f'variable "sample_number" {_NO_STANDARD_NAME}'],
        )
        ds = self.open("CTD01_ctdpf_sample.nc")
        self.assertEqual(ds.license, "CC-BY-4.0")

    def test_noPosition(self) -> None:
        """
        Without a configured position the coordinates are there, missing,
        and the file is still compliant.
        """
        sbe37_archive(self.archive, days=1, per_day=4, metadata=False)
        write_metadata(self.archive, "CTD01", station=None, located=False)
        self.run_export("--format", "netcdf")
        ds = self.open("CTD01_ctdpf_sample.nc")
        self.assertTrue(ds.variables["latitude"][...].mask)
        self.assertFalse(hasattr(ds, "geospatial_lat_min"))
        self.assertEqual(ds.variables["station"][:].tobytes().decode(), "CTD01")
        self.assertCompliant("CTD01_ctdpf_sample.nc")

    def test_qcFlags(self) -> None:
        """
        Each field's QC flags are byte variables named in its
        ancillary_variables, with the QARTOD flag_values and flag_meanings
        and CF's QARTOD standard names; a record without flags has them
        missing.
        """
        folder = os.path.join(self.archive, "CTD01", "ctdpf_sample")
        write_lines(
            os.path.join(folder, "2026-12-01.jsonl"),
            [
                record(
                    DAY_ONE,
                    {"temperature": 10.0},
                    qc={
                        "temperature": {
                            "gross_range": 4,
                            "flat_line": 3,
                            "aggregate": 4,
                        }
                    },
                ),
                record(DAY_ONE + 1, {"temperature": 10.1}),
            ],
        )
        self.run_export("--format", "netcdf")
        ds = self.open("CTD01_ctdpf_sample.nc")
        temperature = ds.variables["temperature"]
        self.assertEqual(
            temperature.ancillary_variables,
            "temperature_qc_gross_range temperature_qc_flat_line "
            "temperature_qc_aggregate",
        )
        aggregate = ds.variables["temperature_qc_aggregate"]
        self.assertEqual(list(aggregate.flag_values), [1, 2, 3, 4, 9])
        self.assertEqual(
            aggregate.flag_meanings, "pass not_evaluated suspect fail missing"
        )
        self.assertEqual(aggregate.standard_name, "aggregate_quality_flag")
        self.assertEqual(
            ds.variables["temperature_qc_flat_line"].standard_name,
            "flat_line_test_quality_flag",
        )
        self.assertEqual(aggregate.dtype.str, "|i1")
        self.assertEqual(int(aggregate[0]), 4)
        self.assertTrue(aggregate[:].mask[1])
        self.assertCompliant("CTD01_ctdpf_sample.nc")

    def test_sameAsCSV(self) -> None:
        """
        netCDF4 and xarray read back from the netCDF file the times, values
        and flags the CSV export of the same series holds.
        """
        import numpy as np
        import xarray

        folder = os.path.join(self.archive, "CTD01", "ctdpf_sample")
        write_lines(
            os.path.join(folder, "2026-12-01.jsonl"),
            [
                record(
                    DAY_ONE + 0.25 * i,
                    {"temperature": 10 + i / 7, "pressure": None if i == 3 else 2.5},
                    qc={
                        "temperature": {
                            "gross_range": 1 + (i % 2) * 2,
                            "aggregate": 1 + (i % 2) * 2,
                        }
                    },
                )
                for i in range(50)
            ],
        )
        self.run_export("--format", "netcdf", "--chunk", "8")
        self.run_export("--format", "csv")
        with open(os.path.join(self.out, "CTD01_ctdpf_sample.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        dataset = xarray.open_dataset(os.path.join(self.out, "CTD01_ctdpf_sample.nc"))
        self.addCleanup(dataset.close)
        # xarray decodes seconds to nanoseconds by float arithmetic (0.25 s
        # becomes 0.249999999 s): compare to the microsecond.
        nanoseconds = dataset["time"].values.astype("datetime64[ns]").astype("int64")
        micros = ((nanoseconds + 500) // 1000).astype("datetime64[us]")
        times = [np.datetime_as_string(t, unit="us") + "Z" for t in micros]
        self.assertEqual(times, [r["time"] for r in rows])
        self.assertEqual(
            [float(v) for v in dataset["temperature"].values],
            [float(r["temperature [degree_Celsius]"]) for r in rows],
        )
        pressure = dataset["pressure"].values
        self.assertTrue(np.isnan(pressure[3]))
        self.assertEqual(rows[3]["pressure"], "")
        self.assertEqual(
            [int(v) for v in dataset["temperature_qc_gross_range"].values],
            [int(r["temperature_qc_gross_range"]) for r in rows],
        )
        ds = self.open("CTD01_ctdpf_sample.nc")
        self.assertEqual(
            [float(t) for t in ds.variables["time"][:]],
            [DAY_ONE + 0.25 * i for i in range(50)],
        )

    def test_missingNetCDF4(self) -> None:
        """
        Without netCDF4 installed, a netCDF export is refused with how to
        install it, before anything is written; CSV still works.
        """
        sbe37_archive(self.archive, days=1, per_day=2)
        # None in sys.modules: the import fails as if it were not installed.
        import netCDF4

        sys.modules["netCDF4"] = None  # type: ignore[assignment]
        self.addCleanup(sys.modules.__setitem__, "netCDF4", netCDF4)
        with self.assertRaises(ExportError) as caught:
            self.run_export("--format", "netcdf")
        self.assertIn("pip install 'instrumentd[netcdf]'", str(caught.exception))
        self.assertFalse(os.path.exists(self.out))
        self.run_export("--format", "csv")


class WorkhorseNetCDFTests(NetCDFExporting):
    """
    A Workhorse ADCP's ensembles: per-cell arrays along a cell dimension.
    """

    def setUp(self) -> None:
        super().setUp()
        self.particles = adcp_particles(5, cells=12)
        write_sink(self.archive, "ADCP01", self.particles)
        write_metadata(
            self.archive,
            "ADCP01",
            driver="teledyne_workhorse",
            model="Teledyne RD Instruments Workhorse ADCP",
            streams={"adcp_velocity_earth": VelocityEarthParticle.field_metadata()},
            parameters={},
        )

    def test_cells(self) -> None:
        """
        Each per-cell array is a (time, cell) variable holding the
        ensemble's values ("no data" missing), with the cell number and the
        cell's distance from the transducer as coordinates; the scalars
        stay (time); the ensembles' serial number names the instrument.
        """
        import numpy as np

        self.run_export("--format", "netcdf")
        ds = self.open("ADCP01_adcp_velocity_earth.nc")
        self.assertEqual(len(ds.dimensions["cell"]), 12)
        east = ds.variables["eastward_velocity"]
        self.assertEqual(east.dimensions, ("time", "cell"))
        self.assertEqual(east.units, "mm s-1")
        self.assertEqual(east.standard_name, "eastward_sea_water_velocity")
        self.assertIn("cell_distance", east.coordinates)
        data = east[:]
        for row, particle in enumerate(self.particles):
            expected = {
                v["value_id"]: v["value"] for v in particle.to_dict()["values"]
            }["eastward_velocity"]
            got = [None if np.ma.is_masked(v) else float(v) for v in data[row]]
            self.assertEqual(got, [None if v is None else float(v) for v in expected])
        values = {
            v["value_id"]: v["value"] for v in self.particles[0].to_dict()["values"]
        }
        self.assertEqual(list(ds.variables["cell"][:]), list(range(1, 13)))
        distance = ds.variables["cell_distance"]
        self.assertEqual(distance.units, "m")
        self.assertAlmostEqual(
            float(distance[0]),
            values["bin_1_distance"] / 100,  # type: ignore[operator]
        )
        self.assertAlmostEqual(
            float(distance[1] - distance[0]),
            values["cell_length"] / 100,  # type: ignore[operator]
        )
        self.assertEqual(ds.variables["heading"].dimensions, ("time",))
        self.assertEqual(ds.instrument_serial_number, str(values["serial_number"]))
        self.assertCompliant("ADCP01_adcp_velocity_earth.nc")

    def test_noCellDepths(self) -> None:
        """
        Without the instrument's configuration (which way its beams face)
        there are no cell depths, and the file stays a timeSeries.
        """
        self.run_export("--format", "netcdf")
        ds = self.open("ADCP01_adcp_velocity_earth.nc")
        self.assertNotIn("cell_depth", ds.variables)
        self.assertEqual(ds.featureType, "timeSeries")

    def test_cellDepths(self) -> None:
        """
        With the instrument's configuration record in the archive (its
        fixed leader: the simulator's beams face up), each ensemble's cells
        have depths, the transducer's depth less their distance; the file
        is then a timeSeriesProfile, and compliant.
        """
        raw = adcp_ensembles(1)[0]
        write_sink(
            self.archive,
            "ADCP01",
            [ConfigParticle(raw, port_timestamp=ntp_from_unix(DAY_ONE))],
        )
        self.run_export("--stream", "adcp_velocity_earth", "--format", "netcdf")
        ds = self.open("ADCP01_adcp_velocity_earth.nc")
        self.assertEqual(ds.featureType, "timeSeriesProfile")
        depth = ds.variables["cell_depth"]
        self.assertEqual(depth.dimensions, ("time", "cell"))
        self.assertEqual((depth.standard_name, depth.positive), ("depth", "down"))
        self.assertIn("cell_depth", ds.variables["eastward_velocity"].coordinates)
        values = {
            v["value_id"]: v["value"] for v in self.particles[1].to_dict()["values"]
        }
        transducer = float(values["transducer_depth"])  # type: ignore[arg-type]
        distance = ds.variables["cell_distance"][:]
        self.assertEqual(
            [round(float(d), 6) for d in depth[1]],
            [round(transducer - float(d), 6) for d in distance],
        )
        self.assertCompliant("ADCP01_adcp_velocity_earth.nc")

    def test_cellsAsCSV(self) -> None:
        """
        In CSV a per-cell array is one column per cell, numbered from 1,
        each headed with the units.
        """
        self.run_export("--format", "csv")
        with open(
            os.path.join(self.out, "ADCP01_adcp_velocity_earth.csv"), newline=""
        ) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 5)
        values = {
            v["value_id"]: v["value"] for v in self.particles[2].to_dict()["values"]
        }
        east = values["eastward_velocity"]
        assert isinstance(east, list)
        self.assertEqual(
            [rows[2][f"eastward_velocity_{i} [mm s-1]"] for i in range(1, 13)],
            ["" if v is None else str(v) for v in east],
        )
        self.assertNotIn("eastward_velocity_13 [mm s-1]", rows[2])
