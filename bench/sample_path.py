"""
The driver side of a station's sample, counted: from the read of an SBE 37
sample line on the in-process port agent's instrument socket to the
``SampleEvent`` reaching the driver's event bus subscribers.

One process holds what a station holds for one instrument with an
in-process agent: a real :class:`~instrumentd.portagent.agent.PortAgent`
(datalog on, listeners off, heartbeats off) joined to an SBE 37
:class:`~instrumentd.driver.driver.InstrumentDriver` by a
:class:`~instrumentd.portagent.direct.DirectAgentConnection`, its bus
subscribed as a station's supervisor subscribes it (a listener of every
event, and two of a few types).  The driver is brought up against an
in-process SBE 37 simulator and set logging (``start_autosample``, with
the longest interval, so the simulator itself stays quiet); then the
simulator's end of the TCP connection is taken away from the reactor and
the harness writes the sample lines itself, one ``send`` a sample, turning
the reactor until the sample event has reached the bus.  Each round: the
poll, the read, framing, checksum, the datalog append, the driver's
connection machine, chunker, particle and event.  The datalog's flush
falls due once a second, as in a station.

Run plainly it prints CPU µs per sample.  ``--instructions`` runs itself
twice under ``valgrind --tool=callgrind`` (``--small`` and ``--large``
samples), counting only the samples' loop (the bring-up's reactor turns
depend on the machine's load), and prints the difference in instructions
divided by the difference in samples, so the loop's start and end cancel
out.  ``--reactor`` chooses the
reactor (``instrumentd``: the one ``twistd instrumentd`` installs;
``epoll``: Twisted's own); ``--against DIR`` compares with an older
``instrumentd`` first on ``PYTHONPATH``, in the same run.  Prints tables;
nothing is asserted.

    python bench/sample_path.py --instructions --small 200 --large 1200
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
import time
from typing import Any

from _costrun import (
    add_instruction_options,
    callgrind,
    child_argv,
    cpu_table,
    install_tree_reactor,
    instructions_table,
    side_env,
    sides,
)

#: Distinct sample lines written in turn (made before the counted part, the
#: same number in every run, so making them cancels out too).
_LINES = 64


def _install(choice: str) -> None:
    if choice == "epoll":
        from twisted.internet import epollreactor

        epollreactor.install()
        return
    install_tree_reactor()


def run(count: int, warmup: int) -> float:
    """
    Bring one driver up, then pass ``warmup`` and ``count`` samples; CPU
    seconds of the latter.
    """
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred, ensureDeferred

    from instrumentd.driver.driver import InstrumentDriver
    from instrumentd.driver.events import EventType, SampleEvent, StateChangeEvent
    from instrumentd.instruments.seabird.sbe37smp.driver import SBE37Protocol
    from instrumentd.portagent.agent import PortAgent
    from instrumentd.portagent.direct import DirectAgentConnection
    from instrumentd.portagent.options import LISTENER_KINDS, PortAgentConfig
    from instrumentd.simulator import SimulatorSettings, listen, make_simulator

    iterate: Any = reactor.iterate

    def wait(d: Deferred[Any]) -> Any:
        result: list[Any] = []
        d.addBoth(result.append)
        while not result:
            iterate(0.05)
        return result[0]

    simulator: Any = make_simulator("sbe37", SimulatorSettings(seed=1), reactor=reactor)
    port = wait(ensureDeferred(listen(simulator, "tcp:0", reactor)))
    workdir = tempfile.mkdtemp(prefix="sample-path-")
    config = PortAgentConfig(
        name="PATH01",
        instrument=f"tcp:host=127.0.0.1:port={port.getHost().port}",
        listeners=dict.fromkeys(LISTENER_KINDS, ()),
        heartbeat=0,
        datalog_dir=workdir,
    )
    agent = PortAgent(config, reactor=reactor)
    agent.startService()
    connection = DirectAgentConnection(reactor=reactor)
    driver = InstrumentDriver(connection, SBE37Protocol, clock=reactor)
    driver.set_init_params({"parameters": {"INTERVAL": 32767}})
    driver.configure({"method": "in_process", "name": "PATH01"})
    connection.bind(agent)
    samples = 0
    logging: Deferred[None] = Deferred()

    def every(event: object) -> None:
        nonlocal samples
        if isinstance(event, SampleEvent):
            samples += 1

    def states(event: object) -> None:
        if (
            isinstance(event, StateChangeEvent)
            and event.state == "AUTOSAMPLE"
            and not logging.called
        ):
            logging.callback(None)

    # As a station's supervisor and instrument subscribe.
    driver.events.subscribe(every)
    driver.events.subscribe(states, [EventType.STATE_CHANGE])
    driver.events.subscribe(lambda event: None, [EventType.CONNECTION, EventType.ERROR])
    started = False

    def command(event: object) -> None:
        nonlocal started
        if (
            isinstance(event, StateChangeEvent)
            and event.state == "COMMAND"
            and not started
        ):
            started = True
            driver.execute_resource("start_autosample")

    driver.events.subscribe(command, [EventType.STATE_CHANGE])
    wait(driver.connect())
    wait(logging)
    # The simulator's first logged sample, then its end of the link is the
    # harness's.
    while samples < 1:
        iterate(0.05)
    (transport,) = simulator.line._transports
    reactor.removeReader(transport)
    reactor.removeWriter(transport)
    sock = transport.socket
    sock.setblocking(True)
    lines = [
        f"{simulator.firmware.realtime_mark}"
        f"{simulator.format_sample(simulator.measure(1.9e9 + k))}\r\n".encode()
        for k in range(_LINES)
    ]

    def one(line: bytes) -> None:
        want = samples + 1
        sock.sendall(line)
        while samples < want:
            iterate(0.1)

    def step(_: None, k: int) -> None:
        one(lines[k % _LINES])

    for k in range(warmup):
        one(lines[k % _LINES])
    t0 = time.process_time()
    # Under callgrind only what runs inside this reduce is counted (see
    # instructions()): the samples, not the bring-up, whose reactor turns
    # while it waits depend on the machine's load.
    functools.reduce(step, range(count), None)
    cpu = time.process_time() - t0
    shutil.rmtree(workdir, ignore_errors=True)
    return cpu


def _child(count: int, warmup: int, reactor: str) -> list[str]:
    return child_argv(__file__, count=count, warmup=warmup, reactor=reactor)


def instructions(count: int, warmup: int, reactor: str, against: str | None) -> int:
    # Only what runs inside run()'s reduce is counted; one hash seed: dicts
    # and sets probe the same way in every run.
    return callgrind(
        _child(count, warmup, reactor),
        side_env(against, PYTHONHASHSEED="0"),
        toggle="functools_reduce",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--reactor", choices=("instrumentd", "epoll"), default="instrumentd"
    )
    parser.add_argument("--repeats", type=int, default=3)
    add_instruction_options(parser, 200, 1200)
    args = parser.parse_args()
    if args.child:
        _install(args.reactor)
        cpu = run(args.count, args.warmup)
        print(f"{cpu / args.count * 1e6:.2f}")
        return
    versions = sides([args.against] if args.against else [])
    if args.instructions:
        print(f"reactor: {args.reactor}")
        instructions_table(
            "sample",
            versions,
            lambda n, tree: instructions(n, 50, args.reactor, tree),
            args.small,
            args.large,
        )
        return
    print(f"reactor: {args.reactor}; load {os.getloadavg()[0]:.2f}")
    cpu_table(
        "sample", versions, _child(args.count, args.warmup, args.reactor), args.repeats
    )


if __name__ == "__main__":
    main()
