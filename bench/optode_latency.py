"""
Aanderaa optode driver benchmark: command latency through the whole chain,
and sample parsing throughput.

Latency: the optode simulator in this process on loopback TCP with no baud
pacing, its receiver always on (``Comm TimeOut`` ``Always On``) and in
polled mode, a real ``twistd instrumentd port-agent`` child process in front
of it, and the driver through ``PortAgentConnection``.  Each operation runs
``--runs`` times, timed from the driver call to its result:

- ``acquire_status``: ``Get All`` (about 2 KB), the status particle, the
  settings recorded;
- ``acquire_sample``: ``Do Sample``; the sensor measures for 1.2 s of its
  own time, so the simulator runs at ``--time-scale`` (100: 12 ms);
- ``set INTERVAL``: the passkey, the ``Set``, ``Save`` and the read-back
  ``Get All``, alternating between two values.

Throughput: sample lines (both output forms) through the chunker into
``dosta_sample`` particles, and through the protocol's ``got_data``.

Run by hand (it is not a test): ``python bench/optode_latency.py``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from typing import Any

from _driverchain import (
    Operation,
    got_data_rate,
    print_latency,
    print_rates,
    time_operations,
)
from twisted.internet import defer, task

from instrumentd.driver.chunker import Chunker
from instrumentd.instruments.aanderaa.optode import OptodeProtocol, OptodeSample
from instrumentd.instruments.aanderaa.optode.particles import SIEVES
from instrumentd.instruments.aanderaa.optode.simulator import OptodeSimulator
from instrumentd.simulator import SimulatorSettings

#: The p99 the driver issue sets for a command's round trip, in ms.
FLOOR_MS = 50.0


def sample_lines(count: int, text: bool) -> list[bytes]:
    """
    ``count`` sample lines, every field on, varying.
    """
    lines = []
    for k in range(count):
        values = [
            350 + k % 97 / 10, 95 + k % 13 / 10, 7 + k % 11 / 100, 32.9, 32.9,
            41.3, 8.4, 738.5, 797.6, 448.6,
        ]  # fmt: skip
        names = ("O2Concentration[uM]", "AirSaturation[%]", "Temperature[Deg.C]",
                 "CalPhase[Deg]", "TCPhase[Deg]", "C1RPh[Deg]", "C2RPh[Deg]",
                 "C1Amp[mV]", "C2Amp[mV]", "RawTemp[mV]")  # fmt: skip
        columns = (
            ["MEASUREMENT", "4831", "379"]
            + [f"{n}\t{v:.3f}" for n, v in zip(names, values, strict=True)]
            if text
            else ["4831", "379"] + [f"{v:.3f}" for v in values]
        )
        lines.append(("\t".join(columns) + "\r\n").encode("ascii"))
    return lines


def throughput(count: int) -> list[tuple[str, float]]:
    """
    Samples per second, on one core, for each form and way of feeding.
    """
    results: list[tuple[str, float]] = []
    for form, text in (("values only", False), ("with names", True)):
        lines = sample_lines(count, text)
        started = time.process_time()
        chunker = Chunker(SIEVES)
        made = 0
        for line in lines:
            chunker.add_chunk(line, 3.9e9)
            for record in chunker.take_records():
                OptodeSample(record.data, port_timestamp=3.9e9, driver_timestamp=0.0)
                made += 1
        elapsed = time.process_time() - started
        assert made == count, (made, count)
        results.append((f"chunker+particle, {form}", count / elapsed))
    lines = sample_lines(count, False)
    results.append(
        ("protocol.got_data, values only", got_data_rate(OptodeProtocol, lines))
    )
    return results


async def main(reactor: Any, args: argparse.Namespace) -> None:
    """
    Run both parts and print the tables.
    """
    optode = OptodeSimulator(
        SimulatorSettings(
            time_scale=args.time_scale,
            options={"comm_timeout": "Always On", "enable_polled_mode": "yes"},
        ),
        reactor=reactor,
    )
    operations: list[Operation] = [
        ("acquire_status", lambda d, k: d.execute_resource("acquire_status")),
        ("acquire_sample", lambda d, k: d.execute_resource("acquire_sample")),
        ("set INTERVAL", lambda d, k: d.set_resource({"INTERVAL": 20.0 + k % 2})),
    ]
    workdir = tempfile.mkdtemp(prefix="instrumentd-optode-bench-")
    try:
        times = await time_operations(
            reactor, optode, OptodeProtocol, operations, runs=args.runs, workdir=workdir
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_latency(
        "Optode command latency, simulator (no baud pacing, time scale "
        f"{args.time_scale:g}) -> port agent process -> driver, {args.runs} runs each",
        times,
        FLOOR_MS,
    )
    rates = throughput(args.samples)
    print_rates(args.samples, rates)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per operation")
    parser.add_argument("--samples", type=int, default=20000, help="lines to parse")
    parser.add_argument(
        "--time-scale", type=float, default=100.0, help="the simulator's time scale"
    )
    arguments = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
