# -*- test-case-name: tests.test_station_direct -*-
"""
Many simulated instruments in one light process, each on its own TCP
port: what a station under test reaches as separate instruments, without
a process (and its tens of MiB) per instrument.

::

    python -m instrumentd.simulator.fleet --model sbe37 --count 1000 \\
        --time-scale 5 --first-seed 0

Once every simulator listens it prints one line of JSON on standard
output, ``{"ports": [PORT, ...], "pid": PID}`` (in the order of the seeds),
and runs until it is sent SIGTERM or SIGINT, or its standard input
closes (so it never outlives the process that started it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Protocol
from twisted.internet.stdio import StandardIO
from twisted.python.failure import Failure

from instrumentd.gcfreeze import freeze_startup_objects
from instrumentd.simulator.base import (
    SimulatedInstrument,
    SimulatorSettings,
    make_simulator,
)
from instrumentd.simulator.frontends import listen

__all__ = ["Fleet", "main"]


class Fleet:
    """
    ``count`` simulated instruments of one model on one reactor, each
    listening on a TCP port of its own.

    :ivar instruments: the simulators, by seed order.
    :ivar ports: their listening ports, once :meth:`start` has fired.
    """

    def __init__(
        self,
        model: str,
        count: int,
        *,
        reactor: Any,
        time_scale: float = 1.0,
        first_seed: int = 0,
        interface: str = "127.0.0.1",
    ) -> None:
        """
        :param model: the simulator model, e.g. ``"sbe37"``.
        :param count: how many.
        :param reactor: the reactor.
        :param time_scale: every simulator's time scale.
        :param first_seed: the first one's seed; the next ones count up.
        :param interface: where they listen.
        :raises ValueError: for a count below 1, or bad settings.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        self._reactor = reactor
        self._interface = interface
        self.instruments: list[SimulatedInstrument] = [
            make_simulator(
                model,
                SimulatorSettings(time_scale=time_scale, seed=first_seed + number),
                reactor=reactor,
            )
            for number in range(count)
        ]
        self.ports: list[IListeningPort] = []

    async def start(self) -> list[int]:
        """
        Listen for every simulator.

        :returns: the port numbers, in seed order.
        """
        description = f"tcp:0:interface={self._interface}"
        listening: list[Deferred[IListeningPort]] = [
            listen(instrument, description, self._reactor)
            for instrument in self.instruments
        ]
        self.ports = await gatherResults(listening, consumeErrors=True)
        return [port.getHost().port for port in self.ports]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """
        Stop listening and stop every simulator.
        """
        for port in self.ports:
            await port.stopListening()  # type: ignore[misc]
        for instrument in self.instruments:
            instrument.stop()


class _Parent(Protocol):
    """
    Standard input: its end is the parent's.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._reactor.running:
            self._reactor.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """
    Run a fleet until stopped (see the module docstring).
    """
    parser = argparse.ArgumentParser(
        prog="python -m instrumentd.simulator.fleet", description=__doc__
    )
    parser.add_argument("--model", default="sbe37")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--interface", default="127.0.0.1")
    options = parser.parse_args(argv)
    from twisted.internet import reactor

    try:
        fleet = Fleet(
            options.model,
            options.count,
            reactor=reactor,
            time_scale=options.time_scale,
            first_seed=options.first_seed,
            interface=options.interface,
        )
    except ValueError as e:
        parser.error(str(e))

    def started(ports: list[int]) -> None:
        # Thousands of simulators are made once and kept: out of the
        # collector's full walks (see instrumentd.gcfreeze).
        freeze_startup_objects()
        sys.stdout.write(json.dumps({"ports": ports, "pid": os.getpid()}) + "\n")
        sys.stdout.flush()
        StandardIO(_Parent(reactor), reactor=reactor)

    def failed(reason: Failure) -> None:
        sys.stderr.write(f"fleet: {reason.getErrorMessage()}\n")
        reactor.stop()

    reactor.callWhenRunning(
        lambda: Deferred.fromCoroutine(fleet.start()).addCallbacks(started, failed)
    )
    reactor.run()


if __name__ == "__main__":  # pragma: no cover
    main()
