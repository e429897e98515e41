"""
Station scale benchmark: one station process with many simulated SBE
37-SMPs, each sampling at 1 Hz, with in-process port agents and simulators.

For each instrument count (50, 200 and 500 by default) it writes a station
config, starts ``twistd -n instrumentd --config ...`` as a child process,
waits until the station has logged every instrument as running (an event:
the log line, not a timer), lets it settle, then measures over a fixed
window:

- the station's CPU time (user + system, from ``/proc/PID/stat``) as a share
  of one core;
- its resident memory at the end (``VmRSS``) and its peak (``VmHWM``);
- the samples its drivers produced in the window (from ``/metrics``), to
  show the instruments really sampled at 1 Hz;
- that it started no child process.

Every sample goes through the real chain: simulator → TCP → port agent
(datalog written) → TCP → driver (chunker, particles) → JSON-lines sink
(files written) and the API's counters.  The simulators run at time scale 5
with INTERVAL 5 s (the SBE 37's smallest), so each samples once a real
second.

Floor: 200 instruments at 1 Hz under half of one core.

Run by hand on Linux (it is not a test)::

    python bench/station_scale.py [--counts 50 200 500] [--window 30]

Prints a table; nothing is asserted.
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
    A station of ``count`` simulated SBE 37s sampling at 1 Hz.
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
    The station under test: its output, its URL, and the instruments it
    has reported running.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.output: list[str] = []
        self._pending = ""
        self.running: set[str] = set()
        self.url: defer.Deferred[str] = defer.Deferred()
        self.all_running: defer.Deferred[float] = defer.Deferred()
        self.ended: defer.Deferred[int] = defer.Deferred()
        self.pid = 0

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.pid = self.transport.pid

    def outReceived(self, data: bytes) -> None:
        self._pending += data.decode("utf-8", "replace")
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self.output.append(line)
            found = _URL.search(line)
            if found is not None and not self.url.called:
                self.url.callback(found.group(1))
            running = _RUNNING.search(line)
            if running is not None:
                self.running.add(running.group(1))
                if len(self.running) == self.count and not self.all_running.called:
                    self.all_running.callback(time.monotonic())

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


def memory(pid: int) -> tuple[float, float]:
    """
    Resident and peak resident memory of a process, MiB.
    """
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def children(pid: int) -> int:
    """
    How many processes have ``pid`` as parent.
    """
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            count += int(fields[1]) == pid
    return count


async def samples_total(url: str) -> float:
    """
    The station's samples so far, summed over its instruments.
    """
    import treq

    response = await treq.get(url + "/metrics")
    text = await response.text()
    return sum(float(value) for value in _SAMPLES.findall(text))


async def measure(
    reactor: Any, count: int, window: float, settle: float
) -> dict[str, float]:
    """
    Run one station of ``count`` instruments and measure it.
    """
    directory = tempfile.mkdtemp(prefix=f"instrumentd-scale-{count}-")
    try:
        path = os.path.join(directory, "station.toml")
        with open(path, "w") as f:
            f.write(station_config(count, os.path.join(directory, "data")))
        station = Station(count)
        started = time.monotonic()
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
            up = await station.all_running
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
            rss, peak = memory(station.pid)
            extra = children(station.pid)
        finally:
            if station.transport is not None and not station.ended.called:
                station.transport.signalProcess("TERM")
            await station.ended
        return {
            "count": count,
            "startup": up - started,
            "cpu": 100 * (cpu_after - cpu_before) / wall,
            "rate": (samples_after - samples_before) / wall,
            "rss": rss,
            "peak": peak,
            "children": extra,
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def main(reactor: Any, counts: list[int], window: float, settle: float) -> None:
    print(
        f"station scale: simulated SBE 37s at 1 Hz, in-process agents; "
        f"window {window:g} s after {settle:g} s settling; {os.cpu_count()} cores"
    )
    header = (
        f"{'instruments':>11} {'start s':>8} {'samples/s':>10} "
        f"{'CPU % core':>10} {'RSS MiB':>8} {'peak MiB':>9} {'children':>8}"
    )
    print(header)
    print("-" * len(header))
    for count in counts:
        row = await measure(reactor, count, window, settle)
        print(
            f"{row['count']:>11d} {row['startup']:>8.1f} {row['rate']:>10.1f} "
            f"{row['cpu']:>10.1f} {row['rss']:>8.0f} {row['peak']:>9.0f} "
            f"{row['children']:>8d}",
            flush=True,
        )
    print("floor: 200 instruments at 1 Hz under 50 % of one core")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds after start-up, unmeasured"
    )
    options = parser.parse_args()
    task.react(
        lambda reactor: defer.Deferred.fromCoroutine(
            main(reactor, options.counts, options.window, options.settle)
        )
    )
