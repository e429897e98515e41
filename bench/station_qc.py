"""
What real-time QC costs the station: the scale benchmark's station (many
simulated SBE 37-SMPs at 1 Hz, in-process port agents; see
``station_scale.py``) run with QC off, with the driver's default ranges
(what a station gets by configuring nothing), and with a full
configuration (gross range, spike, rate of change and flat line on
temperature, conductivity and salinity, the pressure range), one after the
other and repeated, so that the machine's load drifts through all three.

For each run: the station's CPU as a share of one core over the window,
the samples it produced per second, and the CPU per sample.  The
difference between the QC rows and the "off" row of the same round is
what QC costs; issue 11 allows 10 % of the station's figures.

A second table measures the station's own QC path in this process, with
no I/O around it: each SBE 37 particle made into its record and flagged by
the instrument's :class:`~instrumentd.station.quality.InstrumentQC` (with
the spike test, one record held back at a time), as the station does for
every sample, against making the record alone.  That is the QC cost per
sample without the noise of a shared machine.

Run by hand on Linux (it is not a test)::

    python bench/station_qc.py [--count 300] [--rounds 2] [--window 30]

Prints tables; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from station_scale import (
    _TWISTD,
    Station,
    cpu_seconds,
    memory,
    samples_total,
    station_config,
)

#: What each variant adds to every instrument's table.
VARIANTS: dict[str, str] = {
    "off": "[instruments.qc]\nctdpf_sample = false\n",
    "defaults": "",
    "full": """
[instruments.qc.ctdpf_sample.temperature]
spike = { suspect_threshold = 0.5, fail_threshold = 2.0 }
rate_of_change = { threshold = 0.05, fail_threshold = 0.5 }
flat_line = { suspect_threshold = 3600, fail_threshold = 7200, tolerance = 0.0005 }
[instruments.qc.ctdpf_sample.conductivity]
spike = { suspect_threshold = 0.05, fail_threshold = 0.2 }
rate_of_change = { threshold = 0.005, fail_threshold = 0.05 }
flat_line = { suspect_threshold = 3600, fail_threshold = 7200, tolerance = 0.00005 }
[instruments.qc.ctdpf_sample.salinity]
spike = { suspect_threshold = 0.1, fail_threshold = 0.5 }
rate_of_change = { threshold = 0.01, fail_threshold = 0.1 }
flat_line = { suspect_threshold = 3600, fail_threshold = 7200, tolerance = 0.0005 }
""",
}


def config(count: int, data_dir: str, variant: str) -> str:
    """
    The scale benchmark's station with ``variant``'s QC on every
    instrument.
    """
    text = station_config(count, data_dir)
    return text.replace(
        "[instruments.port_agent]", VARIANTS[variant] + "[instruments.port_agent]"
    )


async def measure(
    reactor: Any, count: int, variant: str, window: float, settle: float
) -> dict[str, float]:
    """
    Run one station and measure it, as ``station_scale.measure`` does.
    """
    directory = tempfile.mkdtemp(prefix=f"instrumentd-qc-{variant}-")
    try:
        path = os.path.join(directory, "station.toml")
        with open(path, "w") as f:
            f.write(config(count, os.path.join(directory, "data"), variant))
        station = Station(count)
        reactor.spawnProcess(
            station,
            sys.executable,
            [
                sys.executable,
                "-c",
                _TWISTD,
                "-n",
                "--pidfile=",
                "instrumentd",
                "--config",
                path,
            ],
            env=dict(os.environ),
            path=directory,
        )
        try:
            url = await station.url
            await station.all_running
            await task.deferLater(reactor, settle, lambda: None)
            cpu_before, samples_before = (
                cpu_seconds(station.pid),
                await samples_total(url),
            )
            wall_before = time.monotonic()
            await task.deferLater(reactor, window, lambda: None)
            cpu_after, samples_after = (
                cpu_seconds(station.pid),
                await samples_total(url),
            )
            wall = time.monotonic() - wall_before
            rss, _ = memory(station.pid)
        finally:
            if station.transport is not None and not station.ended.called:
                station.transport.signalProcess("TERM")
            await station.ended
        cpu = cpu_after - cpu_before
        samples = samples_after - samples_before
        return {
            "cpu": 100 * cpu / wall,
            "rate": samples / wall,
            "per_sample": 1e6 * cpu / samples if samples else float("nan"),
            "rss": rss,
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def in_process(samples: int) -> list[tuple[str, float]]:
    """
    Microseconds of CPU per sample of the station's record-and-QC path.
    """
    import tomllib

    from twisted.internet.task import Clock

    from instrumentd.driver.events import SampleEvent
    from instrumentd.instruments.seabird.sbe37smp.particles import (
        SBE37SampleParticle,
    )
    from instrumentd.qc import parse_qc
    from instrumentd.station.quality import InstrumentQC, QCFlags
    from instrumentd.station.record import SampleRecord, SampleRecorder

    # What the simulated SBE 37 prints: T, C, P, salinity, sound velocity.
    lines = [
        f"# {11 + (i % 97) * 0.001:8.4f}, {3.9 + (i % 89) * 0.0001:8.5f},"
        f" {10 + (i % 7) * 0.01:8.3f}, {33.9 + (i % 5) * 0.001:8.4f},"
        f" {1490 + (i % 3) * 0.01:8.3f}\r\n".encode()
        for i in range(samples)
    ]
    clock = Clock()
    particles = [
        SBE37SampleParticle(
            line,
            port_timestamp=3_980_000_000.0 + i,
            driver_timestamp=3_980_000_000.1 + i,
        )
        for i, line in enumerate(lines)
    ]
    events = [SampleEvent(p, time=1_771_000_000.0 + i) for i, p in enumerate(particles)]

    def run(variant: str | None) -> float:
        recorder = SampleRecorder("CTD")
        made = 0

        def release(record: SampleRecord, flags: QCFlags | None) -> None:
            # As the station: flags attached, then the JSON made once.
            nonlocal made
            if flags is not None:
                record.attach_qc(flags, ready=True)
            made += len(record.json)

        qc: InstrumentQC[SampleRecord] | None = None
        if variant is not None:
            table = tomllib.loads(
                "[x]\n" + VARIANTS[variant].replace("instruments.", "x.")
            )
            specs = parse_qc(table["x"].get("qc", {}))
            qc = InstrumentQC("CTD", specs, clock=clock, release=release)
        started = time.process_time()
        for event in events:
            record = recorder.present(event).record
            if qc is None:
                release(record, None)
            else:
                unix = record.unix_time or 0.0
                qc.submit(record.stream, unix, record.sample_values, record)
            clock.advance(1)
        return 1e6 * (time.process_time() - started) / len(events)

    base = run(None)
    return [
        ("record alone (QC off)", base),
        ("record + default ranges", run("defaults")),
        ("record + full configuration", run("full")),
    ]


async def main(
    reactor: Any, *, count: int, rounds: int, window: float, settle: float, samples: int
) -> None:
    print(f"station QC cost, in process: {samples} SBE 37 samples")
    rows = in_process(samples)
    base = rows[0][1]
    print(f"{'path':<30} {'µs/sample':>10} {'QC µs':>8}")
    for name, micros in rows:
        print(f"{name:<30} {micros:>10.1f} {micros - base:>8.1f}")
    print()
    print(
        f"station QC cost: {count} simulated SBE 37s at 1 Hz, in-process agents; "
        f"window {window:g} s after {settle:g} s; {os.cpu_count()} cores"
    )
    header = (
        f"{'round':>5} {'qc':>9} {'samples/s':>10} {'CPU % core':>10} "
        f"{'µs/sample':>10} {'RSS MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    rows: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    for number in range(1, rounds + 1):
        for variant in VARIANTS:
            row = await measure(reactor, count, variant, window, settle)
            rows[variant].append(row)
            print(
                f"{number:>5d} {variant:>9} {row['rate']:>10.1f} {row['cpu']:>10.1f} "
                f"{row['per_sample']:>10.0f} {row['rss']:>8.0f}",
                flush=True,
            )
    print()
    print("mean over the rounds; change against QC off")
    base = rows["off"]
    base_cpu = sum(r["cpu"] for r in base) / len(base)
    base_each = sum(r["per_sample"] for r in base) / len(base)
    for variant, measured in rows.items():
        cpu = sum(r["cpu"] for r in measured) / len(measured)
        each = sum(r["per_sample"] for r in measured) / len(measured)
        print(
            f"{variant:>9}: CPU {cpu:5.1f} % of a core ({cpu - base_cpu:+.1f}, "
            f"{100 * (cpu - base_cpu) / base_cpu:+.0f} %), {each:4.0f} µs a sample "
            f"({100 * (each - base_each) / base_each:+.0f} %)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds after start-up, unmeasured"
    )
    parser.add_argument(
        "--samples", type=int, default=20000, help="samples of the in-process table"
    )
    options = parser.parse_args()
    task.react(
        lambda reactor: defer.Deferred.fromCoroutine(
            main(
                reactor,
                count=options.count,
                rounds=options.rounds,
                window=options.window,
                settle=options.settle,
                samples=options.samples,
            )
        )
    )
