"""
The chain of real parts that a driver's end-to-end tests run: a simulator
in the test process on the real reactor (on loopback TCP or a pty serial
device), a real port agent process in front of it, and the driver through
L{PortAgentConnection}; and a L{Watcher} of the driver's events.

The simulator runs in the test process so that tests inject its faults
and look at its state directly.  Every wait is on an event, with a limit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from instrumentd.connection import PortAgentConnection
from instrumentd.driver.driver import InstrumentDriver
from instrumentd.driver.events import (
    ConnectionEvent,
    DirectAccessEvent,
    DriverEvent,
    EventBus,
    SampleEvent,
)
from instrumentd.driver.protocol import InstrumentProtocol
from instrumentd.simulator import PtySerialDevice, SimulatedInstrument, listen
from instrumentd.testing import port_agent_for
from tests.agentsupport import Conditions, reactor


class Watcher:
    """
    Collects a driver's events and fires Deferreds when a condition on
    them (or on the driver) becomes true.
    """

    def __init__(self, driver: InstrumentDriver, events: EventBus) -> None:
        self.driver = driver
        self.seen: list[DriverEvent] = []
        self.conditions = Conditions()
        events.subscribe(self._event)

    def _event(self, event: DriverEvent) -> None:
        self.seen.append(event)
        self.conditions.changed()

    def until(self, predicate: Callable[[], bool], what: str) -> Deferred[None]:
        """
        Wait until C{predicate()} holds, checked after every event.
        """
        return self.conditions.when(predicate, what)

    def state(self, state: str) -> Deferred[None]:
        """
        Wait until the driver is in C{state}.
        """
        return self.until(
            lambda: self.driver.get_resource_state() == state, f"state {state}"
        )

    def particles(self, stream: str) -> list[Any]:
        """
        The particles published on C{stream} so far.
        """
        return [
            event.particle
            for event in self.seen
            if isinstance(event, SampleEvent) and event.particle.stream_name == stream  # type: ignore[attr-defined]
        ]

    def count(self, stream: str, count: int) -> Deferred[None]:
        """
        Wait until C{count} particles in all have been published on
        C{stream}.
        """
        return self.until(
            lambda: len(self.particles(stream)) >= count,
            f"{count} {stream} particles",
        )

    def direct_access_output(self) -> bytes:
        """
        What the instrument has said in direct access.
        """
        return b"".join(e.data for e in self.seen if isinstance(e, DirectAccessEvent))

    def connection_states(self) -> list[str]:
        """
        The connection states announced, in order.
        """
        return [e.state for e in self.seen if isinstance(e, ConnectionEvent)]


@dataclass
class Chain:
    """
    Simulator, port agent and driver, joined.
    """

    instrument: SimulatedInstrument
    agent: Any
    driver: InstrumentDriver
    watcher: Watcher

    async def run(self, command: str, **arguments: object) -> Any:
        """
        Run a driver command and return its result.
        """
        return await self.driver.execute_resource(command, **arguments)


def values(particle: Any) -> dict[str, object]:
    """
    A particle's values as a dict.
    """
    return {entry["value_id"]: entry["value"] for entry in particle.values}


async def start_chain(
    test: TestCase,
    instrument: SimulatedInstrument,
    protocol: type[InstrumentProtocol[Any]],
    front: str = "tcp",
    *,
    before_connect: Callable[[], object] | None = None,
) -> Chain:
    """
    Put C{instrument} on C{front} (C{"tcp"} or C{"pty"}), a port agent in
    front of it and a driver with C{protocol} through the agent, and
    connect.  Everything is taken down when the test ends.

    @param before_connect: called once the agent runs, just before the
        driver connects.
    """
    test.addCleanup(instrument.stop)
    if front == "tcp":
        port = await listen(instrument, "tcp:0", reactor)
        test.addCleanup(port.stopListening)
        where = f"tcp:host=127.0.0.1:port={port.getHost().port}"
    else:
        link = os.path.abspath(test.mktemp())
        device = PtySerialDevice(instrument, reactor, link=link, reopen_after=0.1)
        device.open()
        test.addCleanup(device.close)
        where = f"serial:{link}:baudrate=9600"
    # No grace: the driver hears of a dropped link at once.
    agent = await port_agent_for(
        test, where, heartbeat=0, disconnect_grace=0, max_reconnect_delay=0.2
    )
    driver = InstrumentDriver(PortAgentConnection(), protocol)
    watcher = Watcher(driver, driver.events)
    driver.configure(
        {
            "method": "port_agent",
            "host": "127.0.0.1",
            "data_port": agent.ports["data"],
            "command_port": agent.ports["command"],
        }
    )
    if before_connect is not None:
        before_connect()
    await driver.connect()
    test.addCleanup(driver.disconnect)
    return Chain(instrument, agent, driver, watcher)
