"""
Workhorse ADCP driver benchmark: command round trips through the whole
chain, and PD0 ensemble parsing throughput.

Latency: the Workhorse simulator in this process on loopback TCP with no
baud pacing, a real ``twistd instrumentd port-agent`` child process in
front of it, and the driver through ``PortAgentConnection``.  Each
operation runs ``--runs`` times, timed from the driver call to its result:

- ``acquire_status``: ``PS0`` and its particle;
- ``get WN``: a get that reads every parameter (28 ``?`` queries in one
  write; ``WN`` is made stale before each run);
- ``set WN``: ``WNn`` and the read-back, alternating between two values.

Throughput, on one core, for ensembles of 30 and 100 cells (4 beams, every
profile block): ``pd0.decode`` alone; the chunker with the Workhorse sieves
plus the velocity particle, in chunks of one ensemble and of 4 KiB; and the
protocol's ``got_data`` (chunker, decode, particles, sample events).

Run by hand (it is not a test): ``python bench/workhorse_latency.py``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from typing import Any

from _driverchain import Operation, print_latency, time_operations
from twisted.internet import defer, task
from twisted.internet.task import Clock

from instrumentd.driver.chunker import Chunker
from instrumentd.driver.events import EventBus
from instrumentd.instruments.teledyne.workhorse import pd0
from instrumentd.instruments.teledyne.workhorse.driver import WorkhorseProtocol
from instrumentd.instruments.teledyne.workhorse.particles import (
    SIEVES,
    VelocityBeamParticle,
)
from instrumentd.instruments.teledyne.workhorse.simulator import WorkhorseSimulator
from instrumentd.simulator import SimulatorSettings

FLOOR_MS = 50.0


def ensembles(count: int, cells: int) -> list[bytes]:
    """
    ``count`` simulated ensembles of ``cells`` cells, a minute apart.
    """
    adcp = WorkhorseSimulator(SimulatorSettings(), reactor=Clock(), awake=True)
    adcp.setup.set("WN", str(cells))
    out = []
    for number in range(count):
        adcp.ensemble_number = number + 1
        out.append(pd0.encode(adcp.build_ensemble(1.7e9 + 60 * number)))
    adcp.stop()
    return out


def throughput(count: int, cells: int) -> list[tuple[str, float]]:
    """
    Ensembles per second, on one core, for each way of feeding the parser.
    """
    records = ensembles(count, cells)
    stream = b"".join(records)
    blocks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    results: list[tuple[str, float]] = []

    started = time.process_time()
    for record in records:
        pd0.decode(record)
    results.append(("pd0.decode", count / (time.process_time() - started)))

    for label, chunks in (("chunker+particle, 1 ensemble/chunk", records),
                          ("chunker+particle, 4 KiB chunks", blocks)):  # fmt: skip
        chunker = Chunker(SIEVES)
        made = 0
        started = time.process_time()
        for chunk in chunks:
            chunker.add_chunk(chunk, 3.9e9)
            for found in chunker.take_records():
                VelocityBeamParticle(found.data, driver_timestamp=0.0)
                made += 1
        elapsed = time.process_time() - started
        assert made == count, (made, count)
        results.append((label, count / elapsed))

    clock = Clock()
    events = EventBus(clock)
    # Count, don't keep: thousands of retained particles with their arrays
    # would make the garbage collector's passes the thing measured.
    published = [0]
    events.subscribe(lambda event: published.__setitem__(0, published[0] + 1))
    core = WorkhorseProtocol(lambda data: None, events, clock=clock)
    started = time.process_time()
    for record in records:
        core.got_data(record, 3.9e9)
    elapsed = time.process_time() - started
    assert core.ensembles == count, core.ensembles
    results.append(("protocol.got_data, 1 ensemble/chunk", count / elapsed))
    return results


async def latency(reactor: Any, runs: int, workdir: str) -> dict[str, list[float]]:
    """
    Time each operation ``runs`` times through simulator, agent and driver.
    """
    adcp = WorkhorseSimulator(
        SimulatorSettings(baud=0), reactor=reactor, awake=True, self_deploy_after=1e9
    )

    def get_wn(driver: Any, k: int) -> defer.Deferred[Any]:
        protocol = driver.protocol
        protocol.parameters._readings["WN"].time = None  # stale: read again
        return driver.get_resource(["WN"])  # type: ignore[no-any-return]

    operations: list[Operation] = [
        ("acquire_status", lambda d, k: d.execute_resource("acquire_status")),
        ("get WN", get_wn),
        ("set WN", lambda d, k: d.set_resource({"WN": 30 + k % 2})),
    ]
    return await time_operations(
        reactor, adcp, WorkhorseProtocol, operations, runs=runs, workdir=workdir
    )


async def main(reactor: Any, args: argparse.Namespace) -> None:
    """
    Run both parts and print the tables.
    """
    workdir = tempfile.mkdtemp(prefix="instrumentd-workhorse-bench-")
    try:
        times = await latency(reactor, args.runs, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_latency(
        "Workhorse command round trip, simulator (no baud pacing) -> port agent "
        f"process -> driver, {args.runs} runs each",
        times,
        FLOOR_MS,
    )
    for cells in (30, 100):
        rates = throughput(args.ensembles, cells)
        size = len(ensembles(1, cells)[0])
        print(f"\nPD0 parsing, one core, {args.ensembles} ensembles of {cells} cells "
              f"({size} bytes)")  # fmt: skip
        print(f"{'path':<38} {'ensembles/s':>12}")
        for label, rate in rates:
            print(f"{label:<38} {rate:>12,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per operation")
    parser.add_argument(
        "--ensembles", type=int, default=2000, help="ensembles to parse"
    )
    arguments = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
