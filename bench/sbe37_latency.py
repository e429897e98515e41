"""
SBE 37-SMP driver benchmark: command latency through the whole chain, and
sample parsing throughput.

Latency: the SBE 37 simulator in this process on loopback TCP with no baud
pacing, a real ``twistd instrumentd port-agent`` child process in front of
it, and the driver reaching the agent through ``PortAgentConnection``.  Each
operation runs ``--runs`` times, one after the other, timed from the driver
call to its result:

- ``acquire_status``: ``DS``, the status particle, the settings recorded;
- ``get SAMPLENUM``: a get that reads the instrument (``DS``);
- ``set INTERVAL``: ``INTERVAL=n`` and the read-back ``DS``, alternating
  between two values so that every set changes something.

Throughput: sample lines through the chunker with the SBE 37's sieves and
into ``ctdpf_sample`` particles, on one core, in chunks of one line and of
4 KiB; and the same through the protocol's ``got_data`` (chunker, particle
and the published sample event).

Run by hand (it is not a test): ``python bench/sbe37_latency.py``.  Prints a
table; the floor the issue sets is a p99 under 50 ms for each command.
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
from instrumentd.instruments.seabird.sbe37smp import (
    SBE37Protocol,
    SBE37SampleParticle,
)
from instrumentd.instruments.seabird.sbe37smp.particles import SIEVES
from instrumentd.instruments.seabird.sbe37smp.simulator import SBE37Simulator
from instrumentd.simulator import SimulatorSettings

#: The p99 the issue asks every command to stay under, in milliseconds.
FLOOR_MS = 50.0


def sample_lines(count: int) -> list[bytes]:
    """
    ``count`` logged sample lines with every optional field, varying.
    """
    return [
        (
            f"#{10 + (k % 997) / 1000:8.4f},{3.5 + (k % 89) / 10000:9.5f},"
            f"{10 + (k % 71) / 100:9.3f},{33.9 + (k % 13) / 10000:9.4f},"
            f"{1497 + (k % 7) / 100:9.3f}, 05 Feb 2013, "
            f"{k // 3600 % 24:02d}:{k // 60 % 60:02d}:{k % 60:02d}\r\n"
        ).encode("ascii")
        for k in range(count)
    ]


def throughput(count: int) -> list[tuple[str, float]]:
    """
    Samples per second, on one core, for each way of feeding the parser.
    """
    lines = sample_lines(count)
    stream = b"".join(lines)
    blocks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    results: list[tuple[str, float]] = []

    def chunker_and_particles(chunks: list[bytes]) -> int:
        chunker = Chunker(SIEVES)
        made = 0
        for chunk in chunks:
            chunker.add_chunk(chunk, 3.9e9)
            for record in chunker.take_records():
                SBE37SampleParticle(
                    record.data, port_timestamp=record.timestamp, driver_timestamp=0.0
                )
                made += 1
        return made

    for label, chunks in (("chunker+particle, 1 line/chunk", lines),
                          ("chunker+particle, 4 KiB chunks", blocks)):  # fmt: skip
        started = time.process_time()
        made = chunker_and_particles(chunks)
        elapsed = time.process_time() - started
        assert made == count, (made, count)
        results.append((label, count / elapsed))

    results.append(
        ("protocol.got_data, 1 line/chunk", got_data_rate(SBE37Protocol, lines))
    )
    return results


async def latency(reactor: Any, runs: int, workdir: str) -> dict[str, list[float]]:
    """
    Time each operation ``runs`` times through simulator, agent and driver.
    """
    sbe37 = SBE37Simulator(SimulatorSettings(baud=0), reactor=reactor, awake=True)
    operations: list[Operation] = [
        ("acquire_status", lambda d, k: d.execute_resource("acquire_status")),
        ("get SAMPLENUM", lambda d, k: d.get_resource(["SAMPLENUM"])),
        ("set INTERVAL", lambda d, k: d.set_resource({"INTERVAL": 20 + k % 2})),
    ]
    return await time_operations(
        reactor, sbe37, SBE37Protocol, operations, runs=runs, workdir=workdir
    )


async def main(reactor: Any, args: argparse.Namespace) -> None:
    """
    Run both parts and print the tables.
    """
    workdir = tempfile.mkdtemp(prefix="instrumentd-sbe37-bench-")
    try:
        times = await latency(reactor, args.runs, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rates = throughput(args.samples)

    print_latency(
        "SBE 37-SMP command latency, simulator (no baud pacing) -> port agent "
        f"process -> driver, {args.runs} runs each",
        times,
        FLOOR_MS,
    )
    print_rates(args.samples, rates)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per operation")
    parser.add_argument(
        "--samples", type=int, default=20000, help="sample lines to parse"
    )
    arguments = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
