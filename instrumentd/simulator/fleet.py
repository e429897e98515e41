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

The simulators are the same as ``twistd instrumentd simulate`` runs, and
print the same lines; two things make thousands of them cheap in one
process.  Their timers share one reactor timer (:class:`~instrumentd.simulator.timeslots.SlottedTimers`):
everything due in a slot of ``--slot`` seconds (10 ms) runs in one reactor
turn, at most a slot late, each instrument keeping its own schedule.  And
what they write goes to the socket at once when nothing is waiting in
the transport's buffer (:class:`SendAtOnce`), rather than on the next
reactor turn with the socket registered for writing and unregistered
again around it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.stdio import StandardIO
from twisted.python.failure import Failure

from instrumentd.gcfreeze import freeze_startup_objects
from instrumentd.sendatonce import can_send_at_once, send_at_once
from instrumentd.simulator.base import (
    InstrumentFactory,
    InstrumentProtocol,
    SimulatedInstrument,
    SimulatorSettings,
    make_simulator,
)
from instrumentd.simulator.frontends import loopback_by_default
from instrumentd.simulator.timeslots import SlottedTimers

__all__ = ["Fleet", "SendAtOnce", "main"]

#: The fleet's time slot when none is given, seconds.
DEFAULT_SLOT = 0.01


class SendAtOnce:
    """
    A TCP transport whose writes go to the socket at once when nothing
    waits in the transport's buffer; otherwise (and for what the socket
    does not take) through the transport's own :meth:`write`, so the order
    is kept.

    Twisted's ``write`` buffers the bytes, registers the socket for
    writing, sends on the next reactor turn and unregisters it: two
    ``epoll_ctl`` calls and a reactor turn per sample, for a line that the
    socket takes whole (see :mod:`instrumentd.sendatonce`, which the port
    agent's outlets use too; :meth:`wrap` uses it only for a plain TCP
    connection of Twisted's).

    :ivar transport: the transport.
    """

    __slots__ = ("transport",)

    def __init__(self, transport: Any) -> None:
        """
        :param transport: a TCP transport of Twisted's (see :meth:`wrap`).
        """
        self.transport = transport

    @classmethod
    def wrap(cls, transport: Any) -> Any:
        """
        :param transport: a connection's transport.
        :returns: a :class:`SendAtOnce` for it, or the transport itself
            if it does not keep its buffer as Twisted's TCP transports do.
        """
        if can_send_at_once(transport):
            return cls(transport)
        return transport

    def write(self, data: bytes) -> None:
        """
        Send ``data``, at once if nothing is waiting
        (:func:`~instrumentd.sendatonce.send_at_once`).

        :param data: the bytes.
        """
        send_at_once(self.transport, data)

    def writeSequence(self, data: list[bytes]) -> None:
        """
        :param data: bytes to send, in order.
        """
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """
        Close once what is buffered has been sent.
        """
        self.transport.loseConnection()

    def abortConnection(self) -> None:
        """
        Close at once.
        """
        self.transport.abortConnection()

    def getPeer(self) -> IAddress:
        """
        :returns: the peer's address.
        """
        peer: IAddress = self.transport.getPeer()
        return peer

    def getHost(self) -> IAddress:
        """
        :returns: this end's address.
        """
        host: IAddress = self.transport.getHost()
        return host


class _FleetProtocol(InstrumentProtocol):
    """
    A connection to one of a fleet's instruments: its line writes through
    a :class:`SendAtOnce`.
    """

    _attached: Any = None

    def connectionMade(self) -> None:
        self._attached = SendAtOnce.wrap(self.transport)
        self.instrument.line.attach(self._attached)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._attached is not None:
            self.instrument.line.detach(self._attached)


class _FleetFactory(InstrumentFactory):
    def buildProtocol(self, addr: IAddress | None) -> InstrumentProtocol:
        return _FleetProtocol(self.instrument)


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
        slot: float = DEFAULT_SLOT,
    ) -> None:
        """
        :param model: the simulator model, e.g. ``"sbe37"``.
        :param count: how many.
        :param reactor: the reactor.
        :param time_scale: every simulator's time scale.
        :param first_seed: the first one's seed; the next ones count up.
        :param interface: where they listen.
        :param slot: the simulators' timers run in slots of this many
            seconds, by one reactor timer (:class:`SlottedTimers`); 0 gives
            each its own reactor timer, as a lone simulator has.
        :raises ValueError: for a count below 1, or bad settings.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if not slot >= 0:
            raise ValueError(
                f"slot {slot!r} is not valid; valid: 0 (the reactor's timers) "
                "or a number of seconds above 0"
            )
        self._reactor = reactor
        self._interface = interface
        #: The simulators' timers, or ``None`` for the reactor's.
        self.timers = SlottedTimers(reactor, slot) if slot else None
        clock: IReactorTime = self.timers if self.timers is not None else reactor
        self.instruments: list[SimulatedInstrument] = [
            make_simulator(
                model,
                SimulatorSettings(time_scale=time_scale, seed=first_seed + number),
                reactor=clock,
            )
            for number in range(count)
        ]
        self.ports: list[IListeningPort] = []

    async def start(self) -> list[int]:
        """
        Listen for every simulator.

        :returns: the port numbers, in seed order.
        """
        description = loopback_by_default(f"tcp:0:interface={self._interface}")
        listening: list[Deferred[IListeningPort]] = [
            serverFromString(self._reactor, description).listen(
                _FleetFactory(instrument)
            )
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
        if self.timers is not None:
            self.timers.stop()


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
    parser.add_argument(
        "--slot",
        type=float,
        default=DEFAULT_SLOT,
        help="seconds: the simulators' timers run in slots this long, by one "
        "reactor timer (0: a reactor timer each)",
    )
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
            slot=options.slot,
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
