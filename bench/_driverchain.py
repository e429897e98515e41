"""
What the driver benchmarks share: a simulator on loopback TCP, a real
``twistd instrumentd port-agent`` child process in front of it, a driver
through ``PortAgentConnection``, and a timed loop of driver operations.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer

from instrumentd.connection import PortAgentConnection
from instrumentd.driver.driver import InstrumentDriver
from instrumentd.driver.events import StateChangeEvent
from instrumentd.portagent.launcher import launch_port_agent
from instrumentd.simulator import SimulatedInstrument, listen

Operation = tuple[str, Callable[[InstrumentDriver, int], "defer.Deferred[Any]"]]


def pct(values: list[float], p: float) -> float:
    """
    The ``p``th percentile (nearest rank) of ``values``.
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def time_operations(
    reactor: Any,
    instrument: SimulatedInstrument,
    protocol: type[Any],
    operations: Sequence[Operation],
    *,
    runs: int,
    workdir: str,
    ready_state: str = "COMMAND",
) -> dict[str, list[float]]:
    """
    Time each operation ``runs`` times (after five unmeasured ones) through
    simulator, agent and driver, one after the other, from the driver call
    to its result, in milliseconds.
    """
    port = await listen(instrument, "tcp:0", reactor)
    agent = await launch_port_agent(
        name="BENCH",
        instrument=f"tcp:host=127.0.0.1:port={port.getHost().port}",  # type: ignore[attr-defined]
        datalog_dir=workdir,
        heartbeat=0,
        reactor=reactor,
    )
    driver = InstrumentDriver(PortAgentConnection(reactor=reactor), protocol)
    ready: defer.Deferred[None] = defer.Deferred()

    def watch(event: object) -> None:
        if (
            isinstance(event, StateChangeEvent)
            and event.state == ready_state
            and not ready.called
        ):
            ready.callback(None)

    driver.events.subscribe(watch)
    driver.configure(
        {
            "method": "port_agent",
            "host": "127.0.0.1",
            "data_port": agent.ports["data"],
            "command_port": agent.ports["command"],
        }
    )
    times: dict[str, list[float]] = {}
    try:
        await driver.connect()
        await ready
        for name, operation in operations:
            # A few unmeasured runs first: imports, caches, TCP windows.
            for k in range(5):
                await operation(driver, k)
            measured = times[name] = []
            for k in range(runs):
                started = time.perf_counter()
                await operation(driver, k)
                measured.append((time.perf_counter() - started) * 1000)
    finally:
        await driver.disconnect()
        await agent.stop()
        stopped = port.stopListening()
        if stopped is not None:
            await stopped
        instrument.stop()
    return times


def print_latency(title: str, times: dict[str, list[float]], floor_ms: float) -> None:
    """
    Print p50, p99, max and mean per operation, and whether p99 is under
    the floor.
    """
    print(f"\n{title} (ms)")
    print(f"{'operation':<18} {'p50':>7} {'p99':>7} {'max':>7} {'mean':>7}  floor")
    for name, measured in times.items():
        p99 = pct(measured, 99)
        print(
            f"{name:<18} {pct(measured, 50):>7.2f} {p99:>7.2f} {max(measured):>7.2f} "
            f"{statistics.fmean(measured):>7.2f}  "
            f"{'ok' if p99 < floor_ms else 'OVER'} (p99 < {floor_ms:g})"
        )


def got_data_rate(protocol: type[Any], lines: Sequence[bytes]) -> float:
    """
    Samples per second, on one core, through a protocol's ``got_data``
    (chunker, particle and the published sample event), one line a chunk.

    :raises AssertionError: unless every line became one sample.
    """
    from twisted.internet.task import Clock

    from instrumentd.driver.events import EventBus

    clock = Clock()
    events = EventBus(clock)
    published: list[object] = []
    events.subscribe(published.append)
    core = protocol(lambda data: None, events, clock=clock)
    started = time.process_time()
    for line in lines:
        core.got_data(line, 3.9e9)
    elapsed = time.process_time() - started
    assert len(published) == len(lines), len(published)
    return len(lines) / elapsed


def print_rates(count: int, rates: Sequence[tuple[str, float]]) -> None:
    """
    Print a parsing-throughput table and the machine it ran on.
    """
    print(f"\nSample parsing throughput, one core, {count} samples")
    print(f"{'path':<34} {'samples/s':>12}")
    for label, rate in rates:
        print(f"{label:<34} {rate:>12,.0f}")
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
