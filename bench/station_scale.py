"""
Station scale benchmark: one station process with N simulated SBE 37-SMPs
sampling at 1 Hz, measured the way users run it.

- The simulators run in processes of their own (``python -m
  instrumentd.simulator.fleet``: many simulators on one reactor, each on
  its own TCP port; ``--per-fleet`` per process), reached over TCP as real
  instruments would be.
- Port agents: ``--agents direct`` (in-process, joined to the driver
  directly, every listener off: the scale mode), ``in-process`` (in-process
  with sniff and raw off and the data and command listeners on, which is
  all the version before the direct join could do), or ``child`` (a
  process per agent, the default mode of the product).
- Consumers, each in a process of its own so that counting costs the
  station nothing (``bench/_scale_consumers.py``): the JSON-lines sink
  (always), an HTTP sink posting to a receiver process (``--sink``), and
  ``--watchers`` event-stream watchers following every instrument (one
  ``/api/events`` each, or one stream per instrument with ``--streams
  instrument``, as the version before ``/api/events`` needed).
- ``--against DIR`` runs each measurement a second time with the
  ``instrumentd`` package of DIR first on ``PYTHONPATH`` (a ``git worktree``
  of an older commit), in the same run, alternating.
- ``--against-no-qc`` runs each measurement a second time with this
  version and the SBE 37's default QC ranges off (label ``no-qc``), in the
  same run, alternating (QC on first in odd repeats, off first in even
  ones): what QC costs the station.

For each run it waits until every instrument has logged that it is
running (or ``--startup-limit`` passes), lets it settle, then measures over
``--window`` seconds:

- **CPU µs/sample**: the station process's CPU time (user + system, from
  ``/proc``) over the samples its drivers produced (``/api/instruments``);
- **core %**: the same CPU time as a share of one core;
- **delivered %**: what reached each consumer in the window over what the
  drivers produced: files (the JSON-lines sink's records), the HTTP sink's
  receiver, and the least and most of the watchers;
- **fds/instr**: the station's open file descriptors (``/proc/PID/fd``)
  over N; **RSS kB/instr**: its resident memory over N (with child agents,
  also each agent process's);
- **first s / all s**: from the station's start to the first instrument
  running (its first sample follows within a second) and to the last.
- **start CPU ms/instr**: the station's CPU from its start to the last
  instrument running, over N (those already up sample meanwhile): what
  start-up at scale is bound by.
- with ``--gc-probe PREFIX``, the station's garbage collections until
  the last instrument runs, timed by generation in the station process
  (``bench/_gcprobe``): how many full collections, their CPU seconds and
  the longest pause, and the young generations' seconds.

Each run's directory (the station's datalogs, sample files...) is made
under ``--directory`` (the system's temporary directory by default) and
removed when all runs are done.  Before each run the benchmark times a file
creation there (**file µs**: 400 empty files, this process's CPU each),
since a station coming up makes about eight an instrument and what one
costs moves with the disk's recent past: on this kind of machine (ext4
without a journal) the kernel skips, one by one, the free inodes of a
block group freed in the last minutes, and creating a file in a folder
whose group had 5,000 files removed cost 100 to 600 us for about six
minutes afterwards, against 12 to 25 us otherwise.  A run's 45,000 files
removed so slowed the next runs' start-ups, and the tests' and other
benchmarks' temporary files slow them too.  ``--directory /dev/shm``
(tmpfs) takes the disk out of the figures.

Repeats (``--repeats``) give min / median / max.  Run by hand on Linux (it
is not a test)::

    python bench/station_scale.py --counts 500 --watchers 10 --sink \\
        --against /tmp/old --repeats 3
    python bench/station_scale.py --counts 5000 --watchers 10 --sink

Prints tables; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from signal import SIGKILL, SIGTERM
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
DRIVER = "instrumentd.instruments.seabird.sbe37smp.driver:SBE37Protocol"
_CONSUMERS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "_scale_consumers.py"
)
_GC_PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_gcprobe")


# -- child processes -------------------------------------------------------------------


class Child(ProcessProtocol):
    """
    A child process that speaks lines of JSON: its first line, then one
    answer per question written to its standard input.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.first: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._answers: list[defer.Deferred[dict[str, Any]]] = []
        self._buffer = b""
        self._err = b""
        self.pid = 0

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.pid = self.transport.pid

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            value = json.loads(line)
            if not self.first.called:
                self.first.callback(value)
            elif self._answers:
                self._answers.pop(0).callback(value)

    def errReceived(self, data: bytes) -> None:
        self._err = (self._err + data)[-4000:]

    def ask(self) -> defer.Deferred[dict[str, Any]]:
        answer: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._answers.append(answer)
        assert self.transport is not None
        self.transport.write(b"?\n")
        return answer

    def processEnded(self, reason: Failure) -> None:
        if not self.first.called:
            self.first.errback(
                RuntimeError(f"{self.name} ended: {self._err.decode(errors='replace')}")
            )
        self.ended.callback(None)

    async def stop(self, reactor: Any) -> None:
        if self.ended.called:
            return
        assert self.transport is not None
        self.transport.closeStdin()
        timer = reactor.callLater(20, self.transport.signalProcess, "KILL")
        await self.ended
        if timer.active():
            timer.cancel()


class Station(ProcessProtocol):
    """
    The station under test: its output, its URL, and its instruments
    running.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.output: list[str] = []
        self._pending = ""
        self.running: set[str] = set()
        self.first_running: float | None = None
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
            if (
                len(self.output) < 200
                or "Traceback" in line
                or "rror" in line
                or "cut off" in line
                or "brought up in" in line
                or "held back" in line
            ):
                self.output.append(line)
            if "brought up in" in line or "start-up held back" in line:
                print("  " + line[:300], file=sys.stderr, flush=True)
            found = _URL.search(line)
            if found is not None and not self.url.called:
                self.url.callback(found.group(1))
            running = _RUNNING.search(line)
            if running is not None:
                if self.first_running is None:
                    self.first_running = time.monotonic()
                self.running.add(running.group(1))
                if len(self.running) == self.count and not self.all_running.called:
                    self.all_running.callback(time.monotonic())

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        code = 0 if isinstance(value, ProcessDone) else -1
        if isinstance(value, ProcessTerminated):
            code = value.exitCode if value.exitCode is not None else -value.signal
        if not self.url.called:
            self.url.errback(
                RuntimeError(
                    f"the station ended ({code}):\n" + "\n".join(self.output[-40:])
                )
            )
        self.ended.callback(code)


#: Every child process started (the station, the fleets, the consumers),
#: for :func:`stop_children`.
_CHILDREN: list[Child | Station] = []


def spawn(
    reactor: Any,
    child: Child | Station,
    argv: list[str],
    env: dict[str, str],
    path: str | None = None,
) -> None:
    reactor.spawnProcess(
        child, sys.executable, [sys.executable, *argv], env=env, path=path
    )
    _CHILDREN.append(child)


def spawn_fleet(reactor: Any, name: str, count: int, first_seed: int = 0) -> Child:
    """
    Start a simulator fleet process of ``count`` SBE 37s at five times our
    time, seeds counting up from ``first_seed``, with this process's
    environment; its first line names their ports.
    """
    fleet = Child(name)
    argv = ["-m", "instrumentd.simulator.fleet", "--count", str(count)]
    argv += ["--time-scale", "5"]
    # (an older tree's fleet may not know --first-seed; it starts at 0)
    argv += ["--first-seed", str(first_seed)] if first_seed else []
    spawn(reactor, fleet, argv, dict(os.environ))
    return fleet


def descendants(pid: int) -> list[int]:
    """
    The processes ``pid`` started, and theirs, deepest first.
    """
    found = []
    for child in children_of(pid):
        found += descendants(child)
        found.append(child)
    return found


async def stop_children(reactor: Any, grace: float = 15.0) -> None:
    """
    Stop every child process still running, and whatever each started:
    SIGTERM, then SIGKILL to what is left after ``grace`` seconds.  Run
    before the reactor shuts down (see :func:`main`), so that an
    interrupted run (Ctrl-C, SIGTERM, an error) leaves no station, fleet
    or consumer behind; after a run that ended normally there is none.
    """
    running = [child for child in _CHILDREN if not child.ended.called and child.pid]
    if not running:
        return
    pids = []
    for child in running:
        pids += descendants(child.pid)
        pids.append(child.pid)
    print(
        f"  stopping {len(running)} child processes ({len(pids)} with theirs)",
        file=sys.stderr,
        flush=True,
    )

    def send(signal: int) -> None:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal)

    send(SIGTERM)
    ended = defer.DeferredList([child.ended for child in running])
    timer = reactor.callLater(grace, send, SIGKILL)
    await ended
    if timer.active():
        timer.cancel()
    # What the children started is not ours to wait for: kill what is left.
    send(SIGKILL)
    remove_left()


# -- /proc -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """
    User plus system CPU time of a process, seconds.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """
    Resident memory of a process, KiB.
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children_of(pid: int) -> list[int]:
    """
    The processes whose parent is ``pid``.
    """
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# -- the station's own counters -------------------------------------------------------


async def get(url: str) -> bytes:
    import treq

    response = await treq.get(url, timeout=300)
    return await response.content()


async def counters(url: str) -> tuple[float, float]:
    """
    The samples the drivers produced, and the records the JSON-lines sink
    wrote.
    """
    # The list of instruments, not /metrics: at 5,000 instruments /metrics
    # asks every agent for its counters, and is slow.
    listed = json.loads(await get(url + "/api/instruments"))
    produced = float(sum(each.get("samples", 0) for each in listed["instruments"]))
    health = json.loads(await get(url + "/api/health"))
    files = float(health.get("sinks", {}).get("files", {}).get("records", 0))
    return produced, files


def read_gc_probe(path: str) -> dict[str, Any]:
    """
    What the station's collector did so far (``--gc-probe``, see
    ``bench/_gcprobe``): full collections, their CPU seconds and the
    longest, and the young generations' seconds.
    """
    full: list[float] = []
    young = [0.0, 0.0]
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            fields = line.split()
            if fields[0] == "F":
                full.append(float(fields[2]))
            elif fields[0] == "T":
                young = [float(fields[3]), float(fields[5])]
    return {
        "gc_full": len(full),
        "gc_full_s": sum(full),
        "gc_longest": max(full, default=0.0),
        "gc_young_s": sum(young),
    }


async def report_not_running(url: str, running: set[str]) -> None:
    """
    Say which instruments were not running when start-up's limit passed,
    and what the station says of them (at most ten).
    """
    listed = json.loads(await get(url + "/api/instruments"))
    behind = [each for each in listed["instruments"] if each["name"] not in running]
    print(f"  {len(behind)} not running:", file=sys.stderr, flush=True)
    for each in behind[:10]:
        print(f"    {json.dumps(each)[:600]}", file=sys.stderr, flush=True)


# -- one run -----------------------------------------------------------------------------


@dataclass
class Options:
    count: int
    agents: str
    watchers: int
    streams: str
    sink: bool
    window: float
    settle: float
    per_fleet: int
    startup_limit: float
    tick: float = 10.0
    pythonpath: str | None = None
    label: str = "this"
    profile: str | None = None
    profile_rate: int = 50
    qc: bool = True
    gc_probe: str | None = None
    directory: str | None = None


def station_config(
    options: Options,
    ports: Sequence[int],
    data_dir: str,
    receiver: int | None,
    new: bool,
) -> str:
    lines = [f'[station]\ndata_dir = "{data_dir}"\n']
    if new and options.agents == "direct":
        # Let the start-up window keep the reactor responsive; the rest as
        # the product's defaults.
        pass
    lines.append('[api]\nlisten = "tcp:0:interface=127.0.0.1"\n')
    lines.append('[sinks.files]\ntype = "jsonlines"\n')
    sinks = '["files"]'
    if receiver is not None:
        lines.append(
            f'[sinks.ingest]\ntype = "http"\nurl = "http://127.0.0.1:{receiver}/ingest"\n'
        )
        sinks = '["files", "ingest"]'
    if options.agents == "direct":
        agent = (
            'mode = "in-process"\nlisteners = { data = "none", command = "none", '
            'sniff = "none", raw = "none" }\n'
        )
    elif options.agents == "in-process":
        agent = 'mode = "in-process"\nlisteners = { sniff = "none", raw = "none" }\n'
    else:
        agent = 'mode = "child"\n'
    # The SBE 37's default QC ranges apply unless turned off (an older
    # version has no qc key at all).
    qc = "" if options.qc or not new else "qc = { ctdpf_sample = false }\n"
    for number, port in enumerate(ports):
        lines.append(
            f"""
[[instruments]]
name = "SIM-{number:04d}"
driver = "{DRIVER}"
autosample = true
sinks = {sinks}
parameters = {{ INTERVAL = 5 }}
{qc}connection = {{ type = "tcp", host = "127.0.0.1", port = {port} }}
[instruments.port_agent]
{agent}"""
        )
    return "".join(lines)


#: Files :func:`creation_cost` makes to time a creation.
CREATION_PROBE = 400
_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY


def creation_cost(directory: str, count: int = CREATION_PROBE) -> float:
    """
    What creating a file costs in ``directory`` now: ``count`` empty files
    made in a folder of their own there (kept until the run's directory is
    removed, so that the probe frees no inode itself), microseconds of this
    process's CPU each.  A station coming up makes about eight an
    instrument; see this module's text for why the figure moves from run
    to run on this kind of machine.
    """
    folder = os.path.join(directory, "creation-probe")
    os.mkdir(folder)
    started = time.process_time()
    for number in range(count):
        os.close(os.open(os.path.join(folder, str(number)), _CREATE, 0o644))
    return (time.process_time() - started) / count * 1e6


async def measure(reactor: Any, options: Options) -> dict[str, Any]:
    directory = tempfile.mkdtemp(
        prefix=f"instrumentd-scale-{options.count}-", dir=options.directory
    )
    # Removed at the end, not before the next run: see remove_left.
    _LEFT.append(directory)
    creation_us = creation_cost(directory)
    env = dict(os.environ)
    if options.pythonpath:
        env["PYTHONPATH"] = options.pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    probe = None
    if options.gc_probe:
        # The station's collections, timed by generation (bench/_gcprobe).
        probe = f"{options.gc_probe}-{options.label}-{options.count}-{os.getpid()}"
        probe += f"-{int(time.time())}.txt"
        env["PYTHONPATH"] = _GC_PROBE + os.pathsep + env.get("PYTHONPATH", "")
        env["INSTRUMENTD_GC_PROBE"] = probe
    helpers: list[Child] = []
    station: Station | None = None
    row: dict[str, Any] | None = None
    stopped = math.nan
    try:
        # Simulators: a few light processes (always this version's).
        fleets = []
        for first in range(0, options.count, options.per_fleet):
            fleet = spawn_fleet(
                reactor,
                f"fleet{len(fleets) + 1}",
                min(options.per_fleet, options.count - first),
                first,
            )
            helpers.append(fleet)
            fleets.append(fleet)
        ports: list[int] = []
        for fleet in fleets:
            ports += (await fleet.first)["ports"]
        receiver_port = None
        receiver = None
        if options.sink:
            receiver = Child("receiver")
            spawn(reactor, receiver, [_CONSUMERS, "receiver"], dict(os.environ))
            helpers.append(receiver)
            receiver_port = (await receiver.first)["port"]
        path = os.path.join(directory, "station.toml")
        with open(path, "w") as f:
            f.write(
                station_config(
                    options,
                    ports,
                    os.path.join(directory, "data"),
                    receiver_port,
                    options.pythonpath is None,
                )
            )
        station = Station(options.count)
        load_at_start = os.getloadavg()[0]
        started = time.monotonic()
        started_wall = time.time()
        spawn(
            reactor,
            station,
            ["-c", _TWISTD, "-n", "--pidfile=", "instrumentd", "--config", path],
            env,
            directory,
        )
        url = await station.url
        print(f"  station {station.pid} at {url}", file=sys.stderr, flush=True)
        watchers = None
        if options.watchers:
            if options.streams == "station":
                paths = ["/api/events?type=SAMPLE"]
            else:
                paths = [
                    f"/api/instruments/SIM-{n:04d}/events?types=SAMPLE"
                    for n in range(options.count)
                ]
            watchers = Child("watchers")
            spawn(
                reactor,
                watchers,
                [_CONSUMERS, "watchers", url, str(options.watchers), *paths],
                dict(os.environ),
            )
            helpers.append(watchers)
            await watchers.first
        limit = reactor.callLater(
            options.startup_limit,
            lambda: station.all_running.called or station.all_running.callback(None),
        )

        progression: list[tuple[float, int]] = []

        def progress() -> None:
            elapsed = time.monotonic() - started
            progression.append((elapsed, len(station.running)))
            print(
                f"  {elapsed:.0f} s: {len(station.running)} "
                f"running, station CPU {cpu_seconds(station.pid):.0f} s, "
                f"load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
                flush=True,
            )

        ticker = task.LoopingCall(progress)
        ticker.clock = reactor
        ticker.start(options.tick, now=False)
        up = await station.all_running
        # The station's CPU while its instruments came up (those already
        # running sample meanwhile): what start-up at scale is bound by.
        startup_cpu = cpu_seconds(station.pid)
        collector = read_gc_probe(probe) if probe else None
        ticker.stop()
        progression.append((time.monotonic() - started, len(station.running)))
        if limit.active():
            limit.cancel()
        all_up = (up - started) if up is not None else math.nan
        if up is None:
            await report_not_running(url, station.running)
        first_up = (station.first_running or math.nan) - started
        await task.deferLater(reactor, options.settle, lambda: None)

        async def snapshot() -> dict[str, Any]:
            asked = time.monotonic()
            produced, files = await counters(url)
            answered = time.monotonic() - asked
            taken = {
                "api": answered,
                "cpu": cpu_seconds(station.pid),
                "produced": produced,
                "files": files,
                "wall": time.monotonic(),
            }
            if receiver is not None:
                taken["sink"] = (await receiver.ask())["particles"]
            if watchers is not None:
                answer = await watchers.ask()
                if answer["connected"] < options.watchers:
                    print(
                        f"  only {answer['connected']} watchers connected",
                        file=sys.stderr,
                        flush=True,
                    )
                taken["watchers"] = answer["samples"]
                taken["first_sample"] = answer["first"]
            return taken

        for line in station.output:
            if "cut off" in line:
                print("  " + line[:300], file=sys.stderr, flush=True)
        before = await snapshot()
        helper_cpu = {helper.pid: cpu_seconds(helper.pid) for helper in helpers}
        profiler = None
        if options.profile:
            # py-spy (pip install py-spy) samples the station from outside.
            from twisted.internet.utils import getProcessOutputAndValue

            profiler = getProcessOutputAndValue(
                os.path.join(os.path.dirname(sys.executable), "py-spy"),
                [
                    "record",
                    "-f",
                    "raw",
                    "-o",
                    options.profile,
                    "-d",
                    str(int(options.window)),
                    "-p",
                    str(station.pid),
                    "-r",
                    str(options.profile_rate),
                ],
                env=dict(os.environ),
            )
        await task.deferLater(reactor, options.window, lambda: None)
        after = await snapshot()
        if profiler is not None:
            await profiler
        agents = children_of(station.pid)
        agent_rss = [rss_kib(pid) for pid in agents]
        station_rss = rss_kib(station.pid)
        fds = descriptors(station.pid)
        helpers_core = {
            helper.name: 100
            * (cpu_seconds(helper.pid) - helper_cpu[helper.pid])
            / (after["wall"] - before["wall"])
            for helper in helpers
            if helper.pid in helper_cpu
        }
        cpu = after["cpu"] - before["cpu"]
        produced = after["produced"] - before["produced"]
        wall = after["wall"] - before["wall"]
        row = {
            "label": options.label,
            "count": options.count,
            "running": len(station.running),
            "first": first_up,
            "all": all_up,
            "start_ms": 1e3 * startup_cpu / options.count,
            "creation_us": creation_us,
            "rate": produced / wall,
            "cpu_us": 1e6 * cpu / produced if produced else math.nan,
            "core": 100 * cpu / wall,
            "files": 100 * (after["files"] - before["files"]) / produced
            if produced
            else math.nan,
            "fds": fds / options.count,
            "rss": station_rss / options.count,
            "agents": len(agents),
            "agent_rss": statistics.mean(agent_rss) if agent_rss else 0,
            "api": max(before["api"], after["api"]),
            "load": load_at_start,
            "progression": progression,
            "helpers_core": helpers_core,
        }
        if collector is not None:
            row.update(collector)
        if receiver is not None:
            row["sink"] = 100 * (after["sink"] - before["sink"]) / produced
        if watchers is not None:
            got = [
                a - b
                for a, b in zip(after["watchers"], before["watchers"], strict=True)
            ]
            row["watch_min"] = 100 * min(got) / produced
            row["watch_max"] = 100 * max(got) / produced
            if after.get("first_sample"):
                row["first_sample"] = after["first_sample"] - started_wall
        return row
    except BaseException:
        if station is not None:
            print("\n".join(station.output[-30:]), file=sys.stderr)
        raise
    finally:
        if (
            station is not None
            and station.transport is not None
            and not station.ended.called
        ):
            stopping = time.monotonic()
            with contextlib.suppress(Exception):
                station.transport.signalProcess("TERM")
            killer = reactor.callLater(120, station.transport.signalProcess, "KILL")
            await station.ended
            stopped = time.monotonic() - stopping
            if killer.active():
                killer.cancel()
        if station is not None and row is not None:
            row["stop"] = stopped
        for helper in helpers:
            await helper.stop(reactor)


#: The runs' directories, removed when all runs are done.
_LEFT: list[str] = []


def remove_left() -> None:
    """
    Remove every run's directory.
    """
    for directory in _LEFT:
        shutil.rmtree(directory, ignore_errors=True)
    _LEFT.clear()


# -- the tables -------------------------------------------------------------------------

_COLUMNS = [
    ("label", "version", "{:>8}"),
    ("count", "instr", "{:>6d}"),
    ("running", "running", "{:>7d}"),
    ("first", "first s", "{:>7.1f}"),
    ("all", "all s", "{:>6.1f}"),
    ("start_ms", "start CPU ms/instr", "{:>18.1f}"),
    ("creation_us", "file µs", "{:>7.0f}"),
    ("rate", "samples/s", "{:>9.0f}"),
    ("cpu_us", "CPU µs/sample", "{:>13.0f}"),
    ("core", "core %", "{:>6.1f}"),
    ("files", "files %", "{:>7.1f}"),
    ("sink", "sink %", "{:>6.1f}"),
    ("watch_min", "watch min %", "{:>11.1f}"),
    ("watch_max", "watch max %", "{:>11.1f}"),
    ("fds", "fds/instr", "{:>9.2f}"),
    ("rss", "RSS kB/instr", "{:>12.0f}"),
    ("agents", "agents", "{:>6d}"),
    ("agent_rss", "agent RSS kB", "{:>12.0f}"),
    ("first_sample", "1st sample s", "{:>12.1f}"),
    ("api", "API s", "{:>5.1f}"),
    ("stop", "stop s", "{:>6.1f}"),
    ("load", "load", "{:>5.1f}"),
]


def print_row(row: dict[str, Any]) -> None:
    cells = []
    for key, title, form in _COLUMNS:
        value = row.get(key)
        width = len(title)
        cells.append(" " * width if value is None else form.format(value).rjust(width))
    print(" ".join(cells), flush=True)


def print_details(row: dict[str, Any]) -> None:
    """
    What does not fit the table: instruments running over time, and the
    CPU of the helper processes (were the simulators or the consumers
    starved?).
    """
    steps = ", ".join(f"{t:.0f} s {n}" for t, n in row.get("progression", []))
    print(f"    running over time: {steps}", flush=True)
    if "gc_full" in row:
        print(
            f"    collector until all were up: {row['gc_full']} full collections, "
            f"{row['gc_full_s']:.1f} s (longest {row['gc_longest']:.2f} s); "
            f"young generations {row['gc_young_s']:.1f} s",
            flush=True,
        )
    helpers = row.get("helpers_core") or {}
    if helpers:
        shares = ", ".join(f"{name} {core:.0f} %" for name, core in helpers.items())
        print(f"    helpers' core % in the window: {shares}", flush=True)


def print_header() -> None:
    header = " ".join(title for _, title, _ in _COLUMNS)
    print(header)
    print("-" * len(header), flush=True)


def summarise(rows: list[dict[str, Any]]) -> None:
    print("\nmin / median / max over repeats:")
    keys = [
        "first",
        "all",
        "start_ms",
        "creation_us",
        "gc_full_s",
        "cpu_us",
        "core",
        "files",
        "sink",
        "watch_min",
        "fds",
        "rss",
        "agent_rss",
        "first_sample",
        "api",
        "stop",
        "load",
    ]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["label"], row["count"]), []).append(row)
    for (label, count), group in groups.items():
        parts = []
        for key in keys:
            values = [
                r[key]
                for r in group
                if r.get(key) is not None
                and not (isinstance(r[key], float) and math.isnan(r[key]))
            ]
            if values:
                parts.append(
                    f"{key} {min(values):.4g}/{statistics.median(values):.4g}/"
                    f"{max(values):.4g}"
                )
        print(f"  {label} {count}: " + "; ".join(parts))
    labels = sorted({label for label, _ in groups})
    if len(labels) == 2 and "this" in labels:
        other = labels[0] if labels[0] != "this" else labels[1]
        for count in sorted({c for _, c in groups}):
            for key, what in (
                ("cpu_us", "CPU per sample"),
                ("core", "core %"),
                ("rss", "RSS per instrument"),
            ):
                a = [r[key] for r in groups.get(("this", count), [])]
                b = [r[key] for r in groups.get((other, count), [])]
                if a and b:
                    print(
                        f"  {what}, this / {other}, {count} instruments: "
                        f"{statistics.median(a) / statistics.median(b):.3f} (medians)"
                    )


async def main(reactor: Any, args: argparse.Namespace) -> None:
    print(
        f"station scale: simulated SBE 37s at 1 Hz in fleet processes of "
        f"{args.per_fleet}; agents {args.agents}; {args.watchers} watchers "
        f"({args.streams} streams); HTTP sink {'on' if args.sink else 'off'}; window "
        f"{args.window:g} s after {args.settle:g} s; {os.cpu_count()} cores; "
        f"Python {sys.version.split()[0]}"
    )
    print_header()
    rows = []
    for count in args.counts:
        for repeat in range(args.repeats):
            versions = [("this", None, args.agents, args.streams)]
            if args.against:
                versions.append(
                    ("against", args.against, args.against_agents, args.against_streams)
                )
            elif args.against_no_qc:
                versions.append(("no-qc", None, args.agents, args.streams))
                if repeat % 2:
                    # ABBA: a run right after another's teardown may fare
                    # worse; each side goes first as often.
                    versions.reverse()
            for label, pythonpath, agents, streams in versions:
                options = Options(
                    count=count,
                    agents=agents,
                    watchers=args.watchers,
                    streams=streams,
                    sink=args.sink,
                    window=args.window,
                    settle=args.settle,
                    per_fleet=args.per_fleet,
                    startup_limit=args.startup_limit,
                    tick=args.tick,
                    pythonpath=pythonpath,
                    label=label,
                    profile=args.profile and f"{args.profile}-{label}-{count}.txt",
                    profile_rate=args.profile_rate,
                    qc=not args.no_qc and label != "no-qc",
                    gc_probe=args.gc_probe,
                    directory=args.directory,
                )
                row = await measure(reactor, options)
                rows.append(row)
                print_row(row)
                print_details(row)
    summarise(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[500])
    parser.add_argument(
        "--agents", choices=("direct", "in-process", "child"), default="direct"
    )
    parser.add_argument("--watchers", type=int, default=0)
    parser.add_argument(
        "--streams", choices=("station", "instrument"), default="station"
    )
    parser.add_argument("--sink", action="store_true", help="an HTTP sink too")
    parser.add_argument(
        "--no-qc",
        action="store_true",
        help="turn the SBE 37's default QC ranges off (this version only)",
    )
    parser.add_argument(
        "--against-no-qc",
        action="store_true",
        help="alternate with this version with QC off (label no-qc)",
    )
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--per-fleet", type=int, default=2000)
    parser.add_argument("--startup-limit", type=float, default=180.0)
    parser.add_argument(
        "--tick", type=float, default=10.0, help="seconds between progress lines"
    )
    parser.add_argument("--profile", help="py-spy the station into PREFIX-*.txt")
    parser.add_argument(
        "--gc-probe",
        metavar="PREFIX",
        help="time the station's garbage collections into PREFIX-*.txt",
    )
    parser.add_argument(
        "--profile-rate", type=int, default=50, help="py-spy samples per second"
    )
    parser.add_argument(
        "--directory",
        help="where each run's directory goes (default: the system's temporary "
        "directory); /dev/shm takes the disk's file creations out",
    )
    parser.add_argument("--against", help="a directory with an older instrumentd/")
    parser.add_argument(
        "--against-agents",
        default="in-process",
        choices=("direct", "in-process", "child"),
    )
    parser.add_argument(
        "--against-streams", default="instrument", choices=("station", "instrument")
    )

    args = parser.parse_args()

    async def run(reactor: Any) -> None:
        # Ctrl-C or SIGTERM stops the reactor without finishing the run: its
        # child processes are stopped before it shuts down.
        reactor.addSystemEventTrigger(
            "before",
            "shutdown",
            lambda: defer.Deferred.fromCoroutine(stop_children(reactor)),
        )
        try:
            await main(reactor, args)
        except GeneratorExit:
            # An interrupted run, closed as the interpreter exits: its
            # children and files went before the reactor stopped.
            raise
        finally:
            remove_left()

    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor)))
