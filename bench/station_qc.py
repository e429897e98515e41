"""
What real-time QC costs the station: the scale benchmark's station (many
simulated SBE 37-SMPs at 1 Hz, simulators and port agents in the
station, as ``station_scale.py`` first measured it) run with QC off, with the driver's default ranges
(what a station gets by configuring nothing), and with a full
configuration (gross range, spike, rate of change and flat line on
temperature, conductivity and salinity, the pressure range).  The three
stations run side by side and are measured over the same window, so that
the load other processes put on the machine falls on all three alike; the
round is repeated.

For each run: the station's CPU as a share of one core over the window,
the samples it produced per second, and the CPU per sample.  The
difference between the QC rows and the "off" row of the same round is
what QC costs; issue 11 allows 10 % of the station's figures.

A second table measures the station's own QC path in this process, with
no I/O around it: each SBE 37 particle made into its record and flagged by
the instrument's :class:`~instrumentd.station.quality.InstrumentQC` (with
the spike test, one record held back at a time), as the station does for
every sample, against making the record alone (and its JSON, once).  That
is the QC cost per sample without the noise of a shared machine (the least
of five alternating rounds).

Run by hand on Linux (it is not a test)::

    python bench/station_qc.py [--count 300] [--rounds 2] [--window 30]
    python bench/station_qc.py --rounds 0     # the in-process table alone

Prints tables; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, task
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

_TWISTD = (
    "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"
)
_URL = re.compile(r"API listening on (http://\S+)/api")
_RUNNING = re.compile(r"(SIM-\d+): running, AUTOSAMPLE")
_SAMPLES = re.compile(r'^instrumentd_samples_total\{instrument="[^"]+"\} (\S+)$', re.M)
DRIVER = "instrumentd.instruments.seabird.sbe37smp.driver:SBE37Protocol"


def station_config(count: int, data_dir: str) -> str:
    """
    A station of ``count`` simulated SBE 37s sampling at 1 Hz (time scale
    5, INTERVAL 5 s), simulators and port agents in the station.
    """
    lines = [
        f'[station]\ndata_dir = "{data_dir}"\n',
        '[api]\nlisten = "tcp:0:interface=127.0.0.1"\n',
    ]
    for number in range(count):
        lines.append(
            f"""
[[instruments]]
name = "SIM-{number:03d}"
driver = "{DRIVER}"
autosample = true
parameters = {{ INTERVAL = 5 }}
connection = {{ type = "simulator", model = "sbe37", time_scale = 5, seed = {number} }}
[instruments.port_agent]
mode = "in-process"
listeners = {{ sniff = "none", raw = "none" }}
"""
        )
    return "".join(lines)


class Station(ProcessProtocol):
    """
    A station under test: its URL, and when all its instruments run.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.output: list[str] = []
        self._pending = ""
        self.running: set[str] = set()
        self.url: defer.Deferred[str] = defer.Deferred()
        self.all_running: defer.Deferred[None] = defer.Deferred()
        self.ended: defer.Deferred[int] = defer.Deferred()
        self.pid = 0

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.pid = self.transport.pid

    def outReceived(self, data: bytes) -> None:
        self._pending += data.decode("utf-8", "replace")
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if len(self.output) < 200 or "rror" in line:
                self.output.append(line)
            found = _URL.search(line)
            if found is not None and not self.url.called:
                self.url.callback(found.group(1))
            running = _RUNNING.search(line)
            if running is not None:
                self.running.add(running.group(1))
                if len(self.running) == self.count and not self.all_running.called:
                    self.all_running.callback(None)

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        code = 0 if isinstance(value, ProcessDone) else -1
        if isinstance(value, ProcessTerminated):
            code = value.exitCode if value.exitCode is not None else -value.signal
        for waiting in (self.url, self.all_running):
            if not waiting.called:
                waiting.errback(
                    RuntimeError(
                        f"the station ended ({code}):\n" + "\n".join(self.output[-40:])
                    )
                )
        self.ended.callback(code)


def cpu_seconds(pid: int) -> float:
    """
    User plus system CPU time of a process, seconds.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid: int) -> float:
    """
    Resident memory of a process, MiB.
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def samples_total(url: str) -> float:
    """
    The station's samples so far, summed over its instruments.
    """
    import treq

    response = await treq.get(url + "/metrics")
    text = await response.text()
    return sum(float(value) for value in _SAMPLES.findall(text))


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
    reactor: Any, count: int, window: float, settle: float, startup: float = 300.0
) -> dict[str, dict[str, float]]:
    """
    Run one station per variant side by side, and measure them over the
    same window, as ``station_scale.measure`` measures one: whatever else
    loads the machine then loads all of them alike.
    """
    directories = {v: tempfile.mkdtemp(prefix=f"instrumentd-qc-{v}-") for v in VARIANTS}
    stations: dict[str, Station] = {}
    try:
        for variant, directory in directories.items():
            path = os.path.join(directory, "station.toml")
            with open(path, "w") as f:
                f.write(config(count, os.path.join(directory, "data"), variant))
            station = stations[variant] = Station(count)
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
        urls = {v: await s.url for v, s in stations.items()}
        for variant, station in stations.items():
            # On a loaded machine an instrument may take long to come up:
            # measure anyway after a while, and say so.
            waiting = station.all_running
            waiting.addTimeout(startup, reactor)
            try:
                await waiting
            except defer.TimeoutError:
                print(
                    f"{variant}: {len(station.running)} of {count} instruments "
                    f"running after {startup:g} s; measuring anyway",
                    flush=True,
                )
        await task.deferLater(reactor, settle, lambda: None)
        before = {
            v: (cpu_seconds(s.pid), await samples_total(urls[v]))
            for v, s in stations.items()
        }
        wall_before = time.monotonic()
        await task.deferLater(reactor, window, lambda: None)
        after = {
            v: (cpu_seconds(s.pid), await samples_total(urls[v]))
            for v, s in stations.items()
        }
        wall = time.monotonic() - wall_before
        rows: dict[str, dict[str, float]] = {}
        for variant, station in stations.items():
            cpu = after[variant][0] - before[variant][0]
            samples = after[variant][1] - before[variant][1]
            rows[variant] = {
                "cpu": 100 * cpu / wall,
                "rate": samples / wall,
                "per_sample": 1e6 * cpu / samples if samples else float("nan"),
                "rss": rss_mib(station.pid),
            }
        return rows
    finally:
        for station in stations.values():
            if station.transport is not None and not station.ended.called:
                station.transport.signalProcess("TERM")
        for station in stations.values():
            await station.ended
        for directory in directories.values():
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

    # The least of five rounds, the three alternating: the least is the
    # one other work on the machine disturbed least.
    best: dict[str | None, float] = {}
    for _ in range(5):
        for variant in (None, "defaults", "full"):
            micros = run(variant)
            best[variant] = min(best.get(variant, micros), micros)
    return [
        ("record alone (QC off)", best[None]),
        ("record + default ranges", best["defaults"]),
        ("record + full configuration", best["full"]),
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
    if not rounds:
        return
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
        measured = await measure(reactor, count, window, settle)
        for variant, row in measured.items():
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
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of stations (0: in process only)"
    )
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
