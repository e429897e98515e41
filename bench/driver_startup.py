"""
The driver's share of bringing an instrument up, in one process: N SBE 37
simulators on loopback TCP, an in-process port agent for each (listeners
off, as a station's ``direct`` agents) joined to its driver by a
``DirectAgentConnection``, and the driver brought up as a station brings
it: startup configuration (``INTERVAL``), connect, discovery (wake-up,
``DS``, ``DC``, the startup value set and read back), ``start_autosample``,
up to the first sample.  Then the driver's metadata, as a station asks for
it (``get_config_metadata``), timed on its own.

Reported: process CPU milliseconds per instrument for the bring-up (the
simulators' and agents' share included: the same in every version), and
microseconds per ``get_config_metadata`` call.  ``--against DIR`` runs the
same in a child process with ``DIR`` (a tree holding ``instrumentd/``)
first on ``PYTHONPATH``, alternating with this tree, ``--repeats`` times.
``--profile FILE`` writes cProfile stats of one bring-up.

    python bench/driver_startup.py --count 200 --repeats 3 \\
        --against /work/wt/base-4295ad1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

from _costrun import json_runs, sides, spread_table

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)


async def bring_up(
    reactor: Any, count: int, workdir: str, calls: int = 5
) -> dict[str, float]:
    from twisted.internet import defer

    from instrumentd.driver.driver import InstrumentDriver
    from instrumentd.driver.events import SampleEvent, StateChangeEvent
    from instrumentd.instruments.seabird.sbe37smp.driver import SBE37Protocol
    from instrumentd.portagent.agent import PortAgent
    from instrumentd.portagent.direct import DirectAgentConnection
    from instrumentd.portagent.options import LISTENER_KINDS, PortAgentConfig
    from instrumentd.simulator import SimulatorSettings, listen, make_simulator

    ports = []
    simulators = []
    for number in range(count):
        simulator = make_simulator(
            "sbe37", SimulatorSettings(seed=number), reactor=reactor
        )
        simulators.append(simulator)
        ports.append(await listen(simulator, "tcp:0", reactor))

    drivers: list[InstrumentDriver] = []
    agents: list[PortAgent] = []
    sampled: list[defer.Deferred[None]] = []

    def follow(driver: InstrumentDriver) -> defer.Deferred[None]:
        done: defer.Deferred[None] = defer.Deferred()
        started = False

        def watch(event: object) -> None:
            nonlocal started
            if isinstance(event, StateChangeEvent) and event.state == "COMMAND":
                if not started:
                    started = True
                    driver.execute_resource("start_autosample")
            elif (
                isinstance(event, SampleEvent)
                and not done.called
                and event.particle.stream_name == "ctdpf_sample"
            ):
                done.callback(None)

        driver.events.subscribe(watch)
        return done

    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for number, port in enumerate(ports):
        name = f"SIM-{number:04d}"
        config = PortAgentConfig(
            name=name,
            instrument=f"tcp:host=127.0.0.1:port={port.getHost().port}",
            listeners=dict.fromkeys(LISTENER_KINDS, ()),
            heartbeat=0,
            datalog_dir=os.path.join(workdir, name),
        )
        agent = PortAgent(config, reactor=reactor)
        agent.startService()
        agents.append(agent)
        connection = DirectAgentConnection(reactor=reactor)
        driver = InstrumentDriver(connection, SBE37Protocol, clock=reactor)
        driver.set_init_params({"parameters": {"INTERVAL": 5}})
        driver.configure({"method": "in_process", "name": name})
        connection.bind(agent)
        sampled.append(follow(driver))
        drivers.append(driver)
        driver.connect()
    await defer.gatherResults(sampled)
    cpu1 = time.process_time()
    wall1 = time.perf_counter()

    for _ in range(calls):
        for driver in drivers:
            driver.get_config_metadata()
    cpu2 = time.process_time()

    for driver in drivers:
        await driver.disconnect()
    for agent in agents:
        await agent.stopService()
    for port in ports:
        await port.stopListening()
    for simulator in simulators:
        simulator.stop()
    return {
        "up_ms": (cpu1 - cpu0) * 1000 / count,
        "up_wall_s": wall1 - wall0,
        "metadata_us": (cpu2 - cpu1) * 1e6 / (count * calls) if calls else 0.0,
    }


def run_here(count: int, profile: str | None, calls: int = 5) -> None:
    """
    Bring ``count`` drivers up here and print the figures as JSON (react
    exits the process).
    """
    from twisted.internet import defer, task

    result: dict[str, float] = {}

    async def main(reactor: Any) -> None:
        with tempfile.TemporaryDirectory() as workdir:
            if profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
                result.update(await bring_up(reactor, count, workdir, calls))
                profiler.disable()
                profiler.dump_stats(profile)
            else:
                result.update(await bring_up(reactor, count, workdir, calls))
        print(json.dumps(result))

    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--against", action="append", default=[])
    parser.add_argument("--profile")
    parser.add_argument(
        "--metadata-calls",
        type=int,
        default=5,
        help="get_config_metadata calls per driver after bring-up (0 for none, "
        "as under callgrind)",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json or args.profile:
        run_here(args.count, args.profile, args.metadata_calls)
        return
    argv = [sys.executable, __file__, "--count", str(args.count), "--json"]
    rows = json_runs(argv, sides(args.against, TREE), args.repeats)
    print(
        f"{args.count} SBE 37 drivers brought up in one process; load {os.getloadavg()[0]:.2f}"
    )
    spread_table(
        rows,
        (
            ("up_ms", "bring-up CPU ms/instrument"),
            ("up_wall_s", "bring-up wall s (all)"),
            ("metadata_us", "get_config_metadata us"),
        ),
        26,
    )


if __name__ == "__main__":
    main()
