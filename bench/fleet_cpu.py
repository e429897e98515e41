"""
Fleet simulator cost: the CPU of one ``python -m instrumentd.simulator.fleet``
process with N simulated SBE 37-SMPs logging at 1 Hz (``INTERVAL=5`` at
time scale 5, as ``bench/station_scale.py`` runs them), so that one can say
whether the simulators of a 5,000-instrument run fit the machine's other
core.

This process plays the station's part as cheaply as it can: one TCP
connection per simulator that wakes it, sets the interval, starts logging
and then only counts sample lines.  After ``--settle`` seconds it measures
the fleet process's CPU (user + system, from ``/proc``) over ``--window``
seconds and prints, per count:

- **samples/s** the fleet sent (lines counted here);
- **CPU µs/sample** and **core %** of the fleet process, and how much of
  that CPU was the kernel's (**system %**: mostly the loopback TCP sends);
- **RSS kB/instr** of the fleet process.

Run by hand on Linux (not a test)::

    python bench/fleet_cpu.py --counts 1000 5000 [--window 20] [--repeats 3]
        [--against /work/wt/base-4295ad1] [--slot SECONDS]

``--against DIR`` runs a second fleet from another checkout's
``instrumentd`` (``DIR`` first on ``PYTHONPATH``), alternating with this
one's, a row each; ``--slot`` is passed to this checkout's fleet (0 gives
each simulator its own reactor timer).

Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

from twisted.internet import defer, task
from twisted.internet.protocol import ClientFactory, ProcessProtocol, Protocol
from twisted.python.failure import Failure

_SAMPLE_START = b"# "


class FleetProcess(ProcessProtocol):
    """
    The fleet: its first line (the ports), and its end.
    """

    def __init__(self) -> None:
        self.first: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._buffer = b""
        self.pid = 0

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.pid = self.transport.pid

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        if b"\n" in self._buffer and not self.first.called:
            line = self._buffer.split(b"\n", 1)[0]
            self.first.callback(json.loads(line))

    def errReceived(self, data: bytes) -> None:
        sys.stderr.write(data.decode("utf-8", "replace"))

    def processEnded(self, reason: Failure) -> None:
        if not self.first.called:
            self.first.errback(reason)
        self.ended.callback(None)


class Logger(Protocol):
    """
    One simulator's client: wake, ``INTERVAL=5``, ``STARTNOW``, then count
    sample lines.
    """

    def __init__(self, counts: list[int], logging: defer.Deferred[None]) -> None:
        self._counts = counts
        self._logging = logging
        self._step = 0
        self._buffer = b""

    def connectionMade(self) -> None:
        self._send(b"\r\n")

    def _send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        if self._step >= 3:
            self._counts[0] += data.count(b"\n" + _SAMPLE_START) + data.startswith(
                _SAMPLE_START
            )
            return
        self._buffer += data
        if not self._buffer.endswith(b"S>"):
            return
        self._buffer = b""
        self._step += 1
        if self._step == 1:
            self._send(b"INTERVAL=5\r\n")
        elif self._step == 2:
            self._send(b"STARTNOW\r\n")
        else:
            self._logging.callback(None)


class Loggers(ClientFactory):
    def __init__(self, counts: list[int]) -> None:
        self.counts = counts
        self.logging: list[defer.Deferred[None]] = []

    def buildProtocol(self, addr: object) -> Logger:
        started: defer.Deferred[None] = defer.Deferred()
        self.logging.append(started)
        return Logger(self.counts, started)


def cpu_seconds(pid: int) -> float:
    return sum(user_system_seconds(pid))


def user_system_seconds(pid: int) -> tuple[float, float]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def measure(
    reactor: Any, count: int, args: argparse.Namespace, against: str | None = None
) -> dict[str, float]:
    fleet = FleetProcess()
    argv = [
        sys.executable,
        "-m",
        "instrumentd.simulator.fleet",
        "--count",
        str(count),
        "--time-scale",
        "5",
    ]
    env = dict(os.environ)
    if against is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [against, *filter(None, [env.get("PYTHONPATH")])]
        )
    elif args.slot is not None:
        argv += ["--slot", str(args.slot)]
    # The other checkout's fleet runs in its directory: a child's working
    # directory comes first on its path, before PYTHONPATH.
    reactor.spawnProcess(fleet, sys.executable, argv, env=env, path=against)
    try:
        ports = (await fleet.first)["ports"]
        counts = [0]
        factory = Loggers(counts)
        for port in ports:
            reactor.connectTCP("127.0.0.1", port, factory)
        await defer.gatherResults(factory.logging)
        await task.deferLater(reactor, args.settle, lambda: None)
        system0 = user_system_seconds(fleet.pid)[1]
        cpu0, n0, t0 = cpu_seconds(fleet.pid), counts[0], time.monotonic()
        profiler = None
        if args.profile:
            from twisted.internet.utils import getProcessOutputAndValue

            profiler = getProcessOutputAndValue(
                args.py_spy,
                [
                    "record",
                    "-f",
                    "raw",
                    "-o",
                    f"{args.profile}-{'against' if against else 'this'}-{count}.txt",
                    "-d",
                    str(int(args.window)),
                    "-p",
                    str(fleet.pid),
                    "-r",
                    "50",
                ],
                env=dict(os.environ),
            )
        await task.deferLater(reactor, args.window, lambda: None)
        if profiler is not None:
            await profiler
        cpu1, n1, t1 = cpu_seconds(fleet.pid), counts[0], time.monotonic()
        system = user_system_seconds(fleet.pid)[1] - system0
        samples = n1 - n0
        return {
            "count": count,
            "rate": samples / (t1 - t0),
            "cpu_us": 1e6 * (cpu1 - cpu0) / samples if samples else float("nan"),
            "core": 100 * (cpu1 - cpu0) / (t1 - t0),
            "system": 100 * system / (cpu1 - cpu0) if cpu1 > cpu0 else float("nan"),
            "rss": rss_kib(fleet.pid) / count,
        }
    finally:
        if fleet.transport is not None and not fleet.ended.called:
            fleet.transport.signalProcess("TERM")
            await fleet.ended


def _three(values: list[float]) -> str:
    return " / ".join(
        f"{v:,.1f}" for v in (min(values), statistics.median(values), max(values))
    )


async def main(reactor: Any, args: argparse.Namespace) -> None:
    print(f"load average: {os.getloadavg()}")
    print(
        "| instruments | fleet | samples/s | fleet CPU µs/sample | fleet core % "
        "| of it system % | RSS kB/instr |"
    )
    print("|---|---|---|---|---|---|---|")
    versions: list[tuple[str, str | None]] = [("this", None)]
    if args.against:
        versions.append((args.against, args.against))
    for count in args.counts:
        rows: dict[str, list[dict[str, float]]] = {name: [] for name, _ in versions}
        for _ in range(args.repeats):
            for name, path in versions:
                rows[name].append(await measure(reactor, count, args, path))
        for name, _ in versions:
            print(
                f"| {count} | {name} | "
                + " | ".join(
                    _three([row[key] for row in rows[name]])
                    for key in ("rate", "cpu_us", "core", "system", "rss")
                )
                + " |",
                flush=True,
            )
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--against", help="also run the fleet of this checkout (alternating)"
    )
    parser.add_argument(
        "--slot", type=float, help="this checkout's fleet's --slot (seconds)"
    )
    parser.add_argument(
        "--profile", help="py-spy the fleet into PREFIX-{this,against}-COUNT.txt"
    )
    parser.add_argument(
        "--py-spy",
        default=os.path.join(os.path.dirname(sys.executable), "py-spy"),
        help="the py-spy to use",
    )
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, parser.parse_args())))
