"""
The station's CPU to bring an instrument up, in one station process: N
simulated SBE 37s in a fleet process of their own, a receiver process for
the HTTP sink (``--sink``), and the station itself in this process, built
from the same configuration as ``station_scale.py``'s (in-process agents
with every listener off, JSON-lines files, QC on unless ``--no-qc``),
logging to a file as ``twistd`` would.  From the station's start until
every instrument has settled (the start-up queue's own signal; all must be
running): the station's process CPU milliseconds per instrument, the
driver's share and the station's own (supervisors, instruments, QC,
sinks, agents, the start-up queue, log lines) together.

Only this process is timed, so the figure is the station's alone; under
``valgrind --tool=callgrind`` (``--json``, two counts, the difference over
their difference) it is a count of instructions that the machine's load
does not change.  The simulators sample every ``--interval`` seconds of
their time (5 a second of ours): a large interval keeps samples out of
the count.

    python bench/station_startup.py [--count 200] [--repeats 3] \\
        [--against DIR ...] [--sink] [--no-qc] [--interval SECONDS] \\
        [--profile FILE] [--keep-log FILE]

Also reported: the station's share of a core and whether it had work all
the time (running, or ready to run while other processes held the cores:
``/proc/self/schedstat``), the simulators' share, how many instruments
were running when the start-up queue settled, how often starts were held
back for a late reactor, steps retried (a command's timeout, say: each a
second discovery), and the log's lines.  Files made during start-up cost
far more right after many were removed (see ``station_scale.py``): under
callgrind the kernel's share is not counted, so the counts do not move
with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from _costrun import json_runs, sides, spread_table

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)


async def bring_up(reactor: Any, args: argparse.Namespace) -> dict[str, float]:
    from station_scale import (
        Child,
        Options,
        cpu_seconds,
        spawn,
        spawn_fleet,
        station_config,
    )
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from instrumentd.station.config import parse_config, parse_toml
    from instrumentd.station.service import StationService

    directory = tempfile.mkdtemp(prefix="instrumentd-startup-")
    children: list[Child] = []
    try:
        fleet = spawn_fleet(reactor, "fleet", args.count)
        children.append(fleet)
        ports = (await fleet.first)["ports"]
        receiver_port = None
        if args.sink:
            receiver = Child("receiver")
            spawn(
                reactor,
                receiver,
                [os.path.join(HERE, "_scale_consumers.py"), "receiver"],
                dict(os.environ),
            )
            children.append(receiver)
            receiver_port = (await receiver.first)["port"]
        options = Options(
            count=args.count,
            agents="direct",
            watchers=0,
            streams="station",
            sink=args.sink,
            window=1,
            settle=1,
            per_fleet=args.count,
            startup_limit=300,
            qc=args.qc,
        )
        text = station_config(
            options, ports, os.path.join(directory, "data"), receiver_port, True
        )
        text = text.replace("INTERVAL = 5 }", f"INTERVAL = {args.interval} }}")
        config = parse_config(parse_toml(text, "bench"), "bench")
        log = open(os.path.join(directory, "station.log"), "a")  # noqa: SIM115
        globalLogBeginner.beginLoggingTo(
            [textFileLogObserver(log)], redirectStandardIO=False
        )
        profiler = None
        if args.profile:
            import cProfile

            # CPU time, not wall time: the machine is shared.
            profiler = cProfile.Profile(time.process_time)
        station = StationService(config, reactor=reactor)
        fleet0 = cpu_seconds(fleet.pid)
        waited0 = _run_queue_wait()
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        station.startService()
        assert station.startup is not None
        await station.startup.when_all_settled()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        cpu1 = time.process_time()
        wall1 = time.perf_counter()
        fleet1 = cpu_seconds(fleet.pid)
        waited1 = _run_queue_wait()
        running = sum(s.phase == "running" for s in station.supervisors.values())
        startup = station.startup
        await station.stopService()
        log.close()
        lines = retries = 0
        with open(os.path.join(directory, "station.log")) as f:
            for line in f:
                lines += 1
                # A failed step (a command's timeout, say) is tried again:
                # a second discovery.
                retries += "; retrying in " in line
        return {
            "up_ms": (cpu1 - cpu0) * 1000 / args.count,
            "up_wall_s": wall1 - wall0,
            # Shares of a core until all settled: is the station the
            # bottleneck, or the simulators?
            "station_core": (cpu1 - cpu0) / (wall1 - wall0),
            "fleet_core": (fleet1 - fleet0) / (wall1 - wall0),
            # Running or ready to run (waiting for a core other processes
            # held): near 1, the station had work all the time, whatever
            # share of the core it was given.
            "station_busy": (cpu1 - cpu0 + waited1 - waited0) / (wall1 - wall0),
            "running": running,
            "timed_out": startup.timed_out,
            # (an older version's queue holds nothing back)
            "held_back": getattr(startup, "held_back", 0),
            "log_lines": lines,
            "retries": retries,
        }
    finally:
        for child in children:
            child.transport.closeStdin()  # type: ignore[attr-defined]
            child.transport.signalProcess("TERM")  # type: ignore[attr-defined]
        if args.keep_log and os.path.exists(os.path.join(directory, "station.log")):
            shutil.copy(os.path.join(directory, "station.log"), args.keep_log)
        shutil.rmtree(directory, ignore_errors=True)


def _run_queue_wait() -> float:
    """
    Seconds this process's threads have waited, ready to run, for a core
    (``/proc/self/schedstat``; 0 where there is none).
    """
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def run_here(args: argparse.Namespace) -> None:
    from twisted.internet import defer, task

    async def main(reactor: Any) -> None:
        print(json.dumps(await bring_up(reactor, args)))

    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))


def child_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, __file__, "--json", "--count", str(args.count)]
    argv += ["--interval", str(args.interval)]
    argv += ["--sink"] if args.sink else []
    argv += [] if args.qc else ["--no-qc"]
    argv += ["--keep-log", args.keep_log] if args.keep_log else []
    return argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--against", action="append", default=[])
    parser.add_argument("--sink", action="store_true", help="an HTTP sink too")
    parser.add_argument("--no-qc", dest="qc", action="store_false")
    parser.add_argument(
        "--interval",
        type=int,
        default=5,
        help="the simulators' INTERVAL (5: a sample a second)",
    )
    parser.add_argument("--profile", help="cProfile stats of the start-up")
    parser.add_argument("--keep-log", help="copy the station's log here")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json or args.profile:
        run_here(args)
        return
    argv = child_argv(args)
    rows = json_runs(argv, sides(args.against, TREE), args.repeats)
    print(
        f"{args.count} SBE 37s brought up by a station; load {os.getloadavg()[0]:.2f}"
    )
    spread_table(
        rows,
        (
            ("up_ms", "station CPU ms/instrument"),
            ("up_wall_s", "all settled, wall s"),
            ("station_core", "station's share of a core"),
            ("fleet_core", "simulators' share of a core"),
            ("station_busy", "station running or ready"),
            ("running", "running when settled"),
            ("log_lines", "log lines"),
            ("retries", "steps retried"),
            ("held_back", "starts held back"),
        ),
        30,
    )


if __name__ == "__main__":
    main()
