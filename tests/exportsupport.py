"""
Archives for the export tests, written by the station's own JSON-lines sink
from real driver particles (an SBE 37-SMP's samples, a Workhorse ADCP's
ensembles from its simulator), and a compliance-checker runner.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from twisted.internet.task import Clock

from instrumentd.driver.particles import ntp_from_unix
from instrumentd.instruments.seabird.sbe37smp.particles import (
    SBE37CalibrationParticle,
    SBE37SampleParticle,
)
from instrumentd.instruments.seabird.sbe37smp.simulator import SBE37Simulator
from instrumentd.station.sinks import JsonLinesSink

#: 2026-12-01T00:00:00Z.
DAY_ONE = datetime(2026, 12, 1, tzinfo=UTC).timestamp()

SBE37_STREAMS = {
    "ctdpf_sample": SBE37SampleParticle.field_metadata(),
}


def sbe37_sample(when: float, n: int) -> SBE37SampleParticle:
    """
    A sample line as the instrument prints it, made into the driver's
    particle with the port agent's timestamp ``when`` (Unix seconds).
    """
    temperature = 10 + 2 * math.sin(n / 40)
    conductivity = 3.5 + 0.1 * math.cos(n / 30)
    pressure = 10 + (n % 7) / 1000
    raw = f"# {temperature:8.4f}, {conductivity:8.5f}, {pressure:8.3f}\r\n".encode()
    return SBE37SampleParticle(
        raw, port_timestamp=ntp_from_unix(when), driver_timestamp=ntp_from_unix(when)
    )


def write_sink(directory: str, instrument: str, particles: Iterable[Any]) -> None:
    """
    Write particles (or records) through a real :class:`JsonLinesSink`.
    """
    sink = JsonLinesSink(directory, reactor=Clock())
    for particle in particles:
        sink.write(instrument, particle)
    sink.close()


def sbe37_archive(
    directory: str,
    *,
    days: int = 3,
    per_day: int = 24,
    instrument: str = "CTD01",
    metadata: bool = True,
) -> list[SBE37SampleParticle]:
    """
    An SBE 37's samples every ``86400 / per_day`` seconds for ``days``
    days from :data:`DAY_ONE`, written by the sink, and (if ``metadata``) a
    ``metadata.json`` as the station writes it.

    :returns: the particles, in time order.
    """
    step = 86400 / per_day
    particles = [sbe37_sample(DAY_ONE + i * step, i) for i in range(days * per_day)]
    write_sink(directory, instrument, particles)
    if metadata:
        write_metadata(directory, instrument)
    return particles


def calibration_particle(when: float) -> SBE37CalibrationParticle:
    """
    The calibration dump (``DC``) the SBE 37 simulator prints, as the
    driver's particle: its serial number and calibration dates.
    """
    simulator = SBE37Simulator(reactor=Clock())
    lines = simulator.firmware.calibration(
        simulator.calibration, simulator.serial_number, simulator.pressure_sensor
    )
    raw = ("".join(f"{line}\r\n" for line in lines) + "\r\nS>").encode("ascii")
    return SBE37CalibrationParticle(raw, port_timestamp=ntp_from_unix(when))


def write_metadata(
    directory: str,
    instrument: str,
    *,
    station: str | None = "buoy-7",
    position: Mapping[str, float] | None = None,
    located: bool = True,
    streams: Mapping[str, object] | None = None,
    parameters: Mapping[str, object] | None = None,
    driver: str = "seabird_sbe37smp",
    model: str | None = "Sea-Bird SBE 37-SMP MicroCAT",
) -> None:
    """
    An instrument's ``metadata.json``, in the station's layout.
    """
    where = dict(position or {"latitude": 44.6, "longitude": -124.3})
    document = {
        "record": "instrumentd.instrument_metadata",
        "version": 1,
        "station": {"name": station, "position": where}
        if located
        else {"name": station},
        "instrument": {"name": instrument, "model": model},
        "driver": {"name": driver, "version": "1.0"},
        "parameters": dict(
            parameters
            if parameters is not None
            else {"INTERVAL": 3600, "TCALDATE": "08-nov-05", "CCALDATE": "09-nov-05"}
        ),
        "streams": dict(streams if streams is not None else SBE37_STREAMS),
    }
    folder = os.path.join(directory, instrument)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metadata.json"), "w") as f:
        json.dump(document, f)


def record(
    when: float,
    values: Mapping[str, object],
    *,
    instrument: str = "CTD01",
    stream: str = "ctdpf_sample",
    qc: Mapping[str, Mapping[str, int]] | None = None,
    units: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """
    A sample record, version 2, as ``doc/data.md`` describes it.
    """
    result: dict[str, object] = {
        "record": "instrumentd.sample",
        "version": 2,
        "instrument": instrument,
        "stream": stream,
        "time": datetime.fromtimestamp(when, UTC)
        .replace(tzinfo=None)
        .isoformat(timespec="microseconds")
        + "Z",
        "ntp_time": ntp_from_unix(when),
        "time_source": "port_timestamp",
        "port_timestamp": ntp_from_unix(when),
        "driver_timestamp": ntp_from_unix(when),
        "quality_flag": "ok",
        "values": dict(values),
        "units": dict(units or {"temperature": "degree_Celsius"}),
        "standard_names": {"temperature": "sea_water_temperature"},
    }
    if qc is not None:
        result["qc"] = {name: dict(tests) for name, tests in qc.items()}
    return result


def write_lines(path: str, records: Iterable[Mapping[str, object] | str]) -> None:
    """
    Write records (or raw text lines) to a JSON-lines file as they are.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for each in records:
            f.write((each if isinstance(each, str) else json.dumps(each)) + "\n")


def check_compliance(path: str) -> dict[str, dict[int, list[str]]]:
    """
    Run the IOOS compliance checker's newest CF (1.11) and ACDD checks on a
    file.

    :returns: checker name to priority (3 high, 2 medium, 1 low) to the
        messages of the checks that failed.
    """
    # It prints which standard name table it uses; keep the test output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        from compliance_checker.runner import CheckSuite

        suite = CheckSuite()
        suite.load_all_available_checkers()
        dataset = suite.load_dataset(path)
        try:
            results = suite.run_all(dataset, ["cf:1.11", "acdd"], skip_checks=[])
        finally:
            dataset.close()
    found: dict[str, dict[int, list[str]]] = {}
    for name, (groups, errors) in results.items():
        failed = found.setdefault(name, {3: [], 2: [], 1: []})
        if errors:
            failed[3].extend(f"checker error: {e}" for e in errors)
        for result in groups:
            value = result.value
            ok = value if isinstance(value, bool) else value[0] >= value[1]
            if not ok:
                failed[result.weight].append(f"{result.name}: {'; '.join(result.msgs)}")
    return found
