# -*- test-case-name: tests.test_simulator_framework -*-
"""
The simulator framework: what every simulated instrument is made of.

A simulated instrument is a :class:`SimulatedInstrument`: a model of the
instrument's state and its dialogue, living as long as the simulator does.
It talks through a :class:`SerialLine`, its end of the serial cable, which
paces output at the baud rate and applies injected faults.  Connections
come and go (a TCP client, a pty, an in-memory transport in a test): each
is an :class:`InstrumentProtocol` attached to the line, so an instrument
keeps logging while nobody is connected, as a real one does.

The instrument's notion of time is an :class:`InstrumentClock`: its real-time
clock, which can be set, and which runs ``time_scale`` times faster than the
reactor, with timers scaled to match.
"""

from __future__ import annotations

import importlib
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final

from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from instrumentd.simulator.faults import Faults

__all__ = [
    "SIMULATOR_MODELS",
    "InstrumentClock",
    "InstrumentFactory",
    "InstrumentProtocol",
    "SerialLine",
    "SimulatedInstrument",
    "SimulatorSettings",
    "UnknownModelError",
    "check_simulator",
    "make_simulator",
    "simulator_class",
]

#: Bits on the wire per byte: start bit, 8 data bits, stop bit (8N1).
BITS_PER_BYTE: Final = 10


@dataclass(frozen=True)
class SimulatorSettings:
    """
    How a simulator runs, whatever the instrument.

    :ivar baud: pace output at this many baud (ten bits a byte); 0 sends
        everything at once.
    :ivar echo: whether the instrument echoes what it is sent (where the
        instrument echoes at all).
    :ivar time_scale: how much faster than the reactor the instrument's
        clock and timers run; 60 makes a minute pass in a second.
    :ivar seed: makes measured values, noise and garbage repeatable.
    :ivar start_time: the instrument clock's reading at start, POSIX
        seconds; ``None`` takes the reactor's ``seconds()``.
    :ivar serial_number: the instrument's serial number; ``None`` for the
        model's default.
    :ivar options: the model's own options (``--option NAME=VALUE``): the
        variant of the instrument to simulate, as each model documents in
        :attr:`SimulatedInstrument.option_help`.
    :raises ValueError: naming the bad setting and the valid values.
    """

    baud: int = 0
    echo: bool = True
    time_scale: float = 1.0
    seed: int = 0
    start_time: float | None = None
    serial_number: int | None = None
    options: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.baud, int) or self.baud < 0:
            raise ValueError(
                f"baud {self.baud!r} is not valid; valid: 0 (no pacing) or a "
                "positive number of bits per second"
            )
        if not math.isfinite(self.time_scale) or self.time_scale <= 0:
            raise ValueError(
                f"time scale {self.time_scale!r} is not valid; valid: a finite "
                "number greater than 0 (1 is real time)"
            )
        if self.serial_number is not None and not 0 < self.serial_number < 10**8:
            raise ValueError(
                f"serial number {self.serial_number!r} is not valid; valid: 1 "
                "to 99999999"
            )


class InstrumentClock:
    """
    An instrument's real-time clock: settable, and running ``scale`` times
    faster than the reactor.

    Its reading is ``start + (reactor.seconds() - t0) * scale``; setting it
    moves ``start`` and ``t0``.  Timers are in instrument seconds and are
    scheduled on the reactor divided by the scale.  Every timer is tracked so
    that :meth:`cancel_all` leaves no delayed call behind.

    :ivar scale: instrument seconds per reactor second.
    """

    def __init__(
        self, reactor: IReactorTime, scale: float = 1.0, start: float | None = None
    ) -> None:
        """
        :param reactor: provides the reactor's time and timers.
        :param scale: instrument seconds per reactor second, above 0.
        :param start: the clock's first reading, POSIX seconds; the
            reactor's ``seconds()`` when ``None``.
        """
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"time scale {scale!r} must be a finite number above 0")
        self.scale = scale
        self._reactor = reactor
        self._t0 = reactor.seconds()
        self._start = self._t0 if start is None else start
        self._calls: set[IDelayedCall] = set()

    def now(self) -> float:
        """
        :returns: the instrument's time, POSIX seconds.
        """
        return self._start + (self._reactor.seconds() - self._t0) * self.scale

    def set(self, when: float) -> None:
        """
        Set the clock; it runs on from there.  Pending timers keep their
        reactor deadlines (a real instrument's interval timers do not jump
        when its calendar is changed either).

        :param when: the new reading, POSIX seconds.
        """
        self._t0 = self._reactor.seconds()
        self._start = when

    def reactor_delay(self, seconds: float) -> float:
        """
        :param seconds: a duration on the instrument's clock.
        :returns: the same duration in reactor seconds.
        """
        return max(seconds, 0.0) / self.scale

    def call_later(
        self, seconds: float, f: Callable[..., object], *args: object
    ) -> IDelayedCall:
        """
        Call ``f(*args)`` after ``seconds`` of instrument time.

        :param seconds: instrument seconds; negative means now.
        :param f: what to call.
        :param args: its arguments.
        :returns: the reactor's delayed call, which may be cancelled.
        """
        call: IDelayedCall

        def fire() -> None:
            self._calls.discard(call)
            f(*args)

        if len(self._calls) > 64:
            # Cancelled calls are only dropped here, not on cancel().
            self._calls = {c for c in self._calls if c.active()}
        call = self._reactor.callLater(self.reactor_delay(seconds), fire)
        self._calls.add(call)
        return call

    def cancel_all(self) -> None:
        """
        Cancel every timer still pending.
        """
        calls, self._calls = self._calls, set()
        for call in calls:
            if call.active():
                call.cancel()

    def pending(self) -> int:
        """
        :returns: how many timers are still pending.
        """
        return sum(1 for call in self._calls if call.active())


class _Output:
    """
    One piece of output waiting on the line.

    :ivar data: bytes still to send.
    :ivar not_before: reactor time before which it may not start.
    :ivar hold: once it reaches the head of the queue, wait this long more
        (the second half of a cut line waits after the first half is sent).
    """

    __slots__ = ("data", "hold", "not_before")

    def __init__(self, data: bytes, not_before: float, hold: float = 0.0) -> None:
        self.data = data
        self.not_before = not_before
        self.hold = hold


def _cut_point(data: bytes) -> int | None:
    """
    Where to cut ``data`` for a cut-line fault: the middle of its first
    line with at least two visible characters.

    :returns: the index, or ``None`` if there is no such line.
    """
    offset = 0
    for line in data.splitlines(keepends=True):
        visible = len(line.rstrip(b"\r\n"))
        if visible >= 2:
            return offset + visible // 2
        offset += len(line)
    return None


class SerialLine:
    """
    The instrument's end of its serial cable.

    Output is queued and leaves at the baud rate (ten bits a byte), in small
    slices timed with ``callLater``, so a host sees bytes arrive as it
    would from a real line; with ``baud=0`` it leaves at once.  Every
    attached transport gets every byte (like a Y-cable); bytes from any of
    them reach the instrument.  With nothing attached, output is lost, as
    on a real cable nobody listens to.

    Injected faults are in :attr:`faults`.

    :ivar faults: the fault injector for this line.
    :ivar bytes_sent: bytes delivered to transports (counted once per
        byte, however many transports there are).
    :ivar bytes_received: bytes received from transports.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        receiver: Callable[[bytes], None],
        *,
        baud: int = 0,
        seed: int = 0,
        break_receiver: Callable[[], None] | None = None,
    ) -> None:
        """
        :param reactor: times the pacing and the faults.
        :param receiver: called with bytes from the host.
        :param break_receiver: called when the host sends a serial break;
            ``None`` ignores breaks.
        :param baud: bits per second; 0 for no pacing.
        :param seed: makes injected garbage repeatable.
        """
        self._reactor = reactor
        self._receiver = receiver
        self._break_receiver = break_receiver
        self.baud = baud
        # About 10 ms of line time per slice: small enough to look like a
        # serial port's trickle, large enough not to flood the reactor.
        self._slice = max(1, baud // (BITS_PER_BYTE * 100)) if baud else 0
        self._queue: deque[_Output] = deque()
        self._timer: IDelayedCall | None = None
        # Bytes of the slice on the wire now (taken from the queue, not yet
        # delivered).
        self._in_flight = 0
        self._transports: list[ITransport] = []
        self.bytes_sent = 0
        self.bytes_received = 0
        #: Breaks the hosts sent.
        self.breaks_received = 0
        self.faults = Faults(self, reactor, seed=seed)

    @property
    def transports(self) -> tuple[ITransport, ...]:
        """
        The transports attached now.
        """
        return tuple(self._transports)

    def attach(self, transport: ITransport) -> None:
        """
        Connect a host to the line.

        :param transport: where output goes from now on.
        """
        self._transports.append(transport)

    def detach(self, transport: ITransport) -> None:
        """
        Disconnect a host; nothing happens if it was not attached.

        :param transport: the transport to forget.
        """
        if transport in self._transports:
            self._transports.remove(transport)

    def receive(self, data: bytes) -> None:
        """
        Bytes from a host.  A silent line (see :meth:`Faults.go_silent`)
        hears nothing.

        :param data: the bytes.
        """
        if self.faults.silent:
            return
        self.bytes_received += len(data)
        self._receiver(data)

    def receive_break(self) -> None:
        """
        A serial break from a host (a pty front end sees one as
        :data:`~instrumentd.endpoints.serial.PTY_BREAK_MARK`).  A silent
        line hears nothing.
        """
        self.breaks_received += 1
        if self.faults.silent or self._break_receiver is None:
            return
        self._break_receiver()

    def write(self, data: bytes) -> None:
        """
        Queue output from the instrument.

        :param data: the bytes; discarded while the line is silent.
        """
        if not data or self.faults.silent:
            return
        not_before = self._reactor.seconds() + self.faults.reply_delay
        if self.faults.cut_pending:
            cut = _cut_point(data)
            if cut is not None:
                hold = self.faults.take_cut()
                self._queue.append(_Output(data[:cut], not_before))
                self._queue.append(_Output(data[cut:], not_before, hold))
                self._pump()
                return
        self._queue.append(_Output(data, not_before))
        self._pump()

    def queued(self) -> int:
        """
        :returns: bytes waiting to leave, counting those on the wire.
        """
        return self._in_flight + sum(len(output.data) for output in self._queue)

    def discard_output(self) -> None:
        """
        Forget output not yet sent.
        """
        self._queue.clear()
        self._in_flight = 0
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def drop(self) -> None:
        """
        Drop every connection at once, without sending queued output.
        """
        self.discard_output()
        for transport in list(self._transports):
            abort = getattr(transport, "abortConnection", None)
            if abort is not None:
                abort()
            else:
                transport.loseConnection()

    def close(self) -> None:
        """
        Stop the line's timers (pacing and faults); queued output is lost.
        """
        self.discard_output()
        self.faults.clear()

    def _pump(self) -> None:
        if self._timer is not None:
            return
        while self._queue:
            head = self._queue[0]
            now = self._reactor.seconds()
            if head.hold:
                head.not_before = max(head.not_before, now + head.hold)
                head.hold = 0.0
            if head.not_before > now:
                self._timer = self._reactor.callLater(
                    head.not_before - now, self._resume
                )
                return
            if not self.baud:
                self._queue.popleft()
                self._deliver(head.data)
                continue
            piece, head.data = head.data[: self._slice], head.data[self._slice :]
            if not head.data:
                self._queue.popleft()
            self._in_flight = len(piece)
            self._timer = self._reactor.callLater(
                len(piece) * BITS_PER_BYTE / self.baud, self._land, piece
            )
            return

    def _resume(self) -> None:
        self._timer = None
        self._pump()

    def _land(self, piece: bytes) -> None:
        # A byte arrives when its stop bit has been sent, so a slice is
        # delivered at the end of its time on the wire.
        self._timer = None
        self._in_flight = 0
        self._deliver(piece)
        self._pump()

    def _deliver(self, data: bytes) -> None:
        self.bytes_sent += len(data)
        for transport in list(self._transports):
            transport.write(data)


class SimulatedInstrument:
    """
    Base class of simulated instruments.

    A subclass models the instrument's state and implements
    :meth:`data_received`, writing replies with :meth:`send` and scheduling
    its own behaviour with :attr:`clock` (instrument time).

    :cvar model: the name of the model, as ``twistd instrumentd simulate``
        takes it.
    :ivar settings: the settings it runs with.
    :ivar reactor: the reactor (or ``Clock``) it runs on.
    :ivar clock: its real-time clock and timers.
    :ivar line: its serial line.
    :ivar faults: the line's fault injector.
    """

    model: ClassVar[str] = "instrument"
    #: The model's own options (:attr:`SimulatorSettings.options`): name to
    #: what it selects.
    option_help: ClassVar[Mapping[str, str]] = {}
    _log = Logger()

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        :param settings: how to run; the defaults when ``None``.
        :param reactor: the reactor or ``Clock``; the global reactor when
            ``None``.
        """
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = IReactorTime(global_reactor)
        self.settings = settings if settings is not None else SimulatorSettings()
        unknown = sorted(set(self.settings.options) - set(self.option_help))
        if unknown:
            raise ValueError(
                f"{self.model} has no option {unknown[0]!r}; options: "
                + (", ".join(sorted(self.option_help)) or "none")
            )
        self.reactor = reactor
        self.clock = InstrumentClock(
            reactor, self.settings.time_scale, self.settings.start_time
        )
        self.line = SerialLine(
            reactor,
            self.data_received,
            baud=self.settings.baud,
            seed=self.settings.seed,
            break_receiver=self.break_received,
        )
        self.faults = self.line.faults

    def describe(self) -> str:
        """
        :returns: a short description for logs, e.g. ``"SBE 37-SMP S/N
            2165"``.
        """
        return self.model

    def send(self, data: bytes) -> None:
        """
        Send bytes to the host, through the line (pacing and faults).

        :param data: the bytes.
        """
        self.line.write(data)

    def data_received(self, data: bytes) -> None:
        """
        Bytes from the host.  Subclasses implement the dialogue here.

        :param data: the bytes.
        """
        raise NotImplementedError

    def break_received(self) -> None:
        """
        A serial break from the host.  Instruments that react to one (an
        RDI ADCP wakes and stops pinging) override this; by default it is
        ignored, as most instruments' UARTs do.
        """

    def build_protocol(self) -> InstrumentProtocol:
        """
        :returns: a new protocol for one connection to this instrument.
        """
        return InstrumentProtocol(self)

    def factory(self) -> InstrumentFactory:
        """
        :returns: a factory whose protocols all connect to this instrument.
        """
        return InstrumentFactory(self)

    def stop(self) -> None:
        """
        Power off: cancel every timer of the instrument and its line.  Open
        connections are left to their owners.
        """
        self.clock.cancel_all()
        self.line.close()


class InstrumentProtocol(Protocol):
    """
    One connection to a simulated instrument: attaches its transport to the
    instrument's line while connected.

    :ivar instrument: the instrument it connects to.
    """

    def __init__(self, instrument: SimulatedInstrument) -> None:
        """
        :param instrument: the instrument.
        """
        self.instrument = instrument

    def connectionMade(self) -> None:
        """
        Attach to the instrument's line.
        """
        assert self.transport is not None
        self.instrument.line.attach(self.transport)

    def dataReceived(self, data: bytes) -> None:
        """
        Pass the host's bytes to the instrument.

        :param data: the bytes.
        """
        self.instrument.line.receive(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Detach from the line.

        :param reason: why the connection ended.
        """
        if self.transport is not None:
            self.instrument.line.detach(self.transport)


class InstrumentFactory(Factory):
    """
    Builds an :class:`InstrumentProtocol` per connection, all to one
    instrument.

    :ivar instrument: the instrument.
    """

    # The service logs where it listens; "Starting factory" adds nothing.
    noisy = False

    def __init__(self, instrument: SimulatedInstrument) -> None:
        """
        :param instrument: the instrument every connection reaches.
        """
        self.instrument = instrument

    def buildProtocol(self, addr: IAddress | None) -> InstrumentProtocol:
        """
        :param addr: the peer's address (unused: every peer is the host).
        :returns: a new :class:`InstrumentProtocol`.
        """
        return self.instrument.build_protocol()


#: Simulated models by the name ``simulate`` takes, as ``module:Class``;
#: imported only when chosen so that ``twistd --help`` stays fast.
SIMULATOR_MODELS: Final[Mapping[str, str]] = {
    "sbe37": "instrumentd.instruments.seabird.sbe37smp.simulator:SBE37Simulator",
    "optode": "instrumentd.instruments.aanderaa.optode.simulator:OptodeSimulator",
    "workhorse": "instrumentd.instruments.teledyne.workhorse.simulator:WorkhorseSimulator",
}


class UnknownModelError(ValueError):
    """
    No simulator has that name.

    :ivar name: the name asked for.
    """

    def __init__(self, name: str, why: str = "") -> None:
        """
        :param name: the name asked for.
        :param why: what was wrong with a ``module:Class`` name.
        """
        super().__init__(
            f"no simulator for model {name!r}{why}; models: "
            + ", ".join(sorted(SIMULATOR_MODELS))
            + ", or module:Class of a SimulatedInstrument of your own"
        )
        self.name = name


def simulator_class(name: str) -> type[SimulatedInstrument]:
    """
    Find a simulated model by name: one of :data:`SIMULATOR_MODELS`
    (case-insensitive), or ``package.module:Class`` naming a
    :class:`SimulatedInstrument` of a driver writer's own.

    :param name: e.g. ``"sbe37"`` or ``"acme_ctd9.simulator:CTD9Simulator"``.
    :returns: its class.
    :raises UnknownModelError: listing the models there are.
    """
    where = SIMULATOR_MODELS.get(name.lower())
    if where is None:
        if ":" not in name:
            raise UnknownModelError(name)
        where = name
    module, _, attribute = where.partition(":")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as e:
        raise UnknownModelError(name, f" ({e})") from None
    if not (isinstance(found, type) and issubclass(found, SimulatedInstrument)):
        raise UnknownModelError(name, " (not a SimulatedInstrument)")
    return found


def make_simulator(
    name: str,
    settings: SimulatorSettings | None = None,
    *,
    reactor: IReactorTime | None = None,
) -> SimulatedInstrument:
    """
    Make a simulated instrument by model name.

    :param name: e.g. ``"sbe37"``.
    :param settings: how to run it.
    :param reactor: the reactor or ``Clock``; the global reactor if ``None``.
    :returns: the instrument, not connected to anything yet.
    :raises UnknownModelError: listing the models there are.
    """
    return simulator_class(name)(settings, reactor=reactor)


def check_simulator(name: str, settings: SimulatorSettings) -> None:
    """
    Check that a model runs with these settings, its own options included,
    by making it once on a stopped clock: what ``simulate`` and a station's
    configuration do before starting anything.

    :param name: the model.
    :param settings: the settings.
    :raises ValueError: naming the bad setting or option and the valid ones
        (:class:`UnknownModelError` for an unknown model).
    """
    from twisted.internet.task import Clock

    make_simulator(name, settings, reactor=Clock()).stop()
