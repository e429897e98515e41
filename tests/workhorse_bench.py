"""
The Workhorse driver and simulator on one C{Clock}, for deterministic
tests: an L{IInstrumentConnection} that joins them through C{iosim},
stamps what arrives as a port agent would, and sends breaks to the
simulator's line (or refuses them, as an agent does on a TCP link).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.driver.driver import InstrumentDriver
from instrumentd.driver.errors import InstrumentConnectionError
from instrumentd.driver.events import DriverEvent, SampleEvent
from instrumentd.instruments.teledyne.workhorse.driver import WorkhorseProtocol
from instrumentd.instruments.teledyne.workhorse.simulator import WorkhorseSimulator
from instrumentd.interfaces import IInstrumentConnection, LinkState
from instrumentd.packet import Packet, PacketType, unix_to_ntp
from instrumentd.simulator import SimulatorSettings, connect_pump

T = TypeVar("T")

#: The instrument's clock at start, and the host's (a quarter second past).
INSTRUMENT_START = datetime(2013, 3, 15, 21, 33, 2, tzinfo=UTC).timestamp()
HOST_START = 1_700_000_000.25


class _AgentEnd(Protocol):
    def __init__(self, connection: SimulatorConnection) -> None:
        self.connection = connection

    def dataReceived(self, data: bytes) -> None:
        self.connection._from_instrument(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connection._line_lost(self)


@implementer(IInstrumentConnection)
class SimulatorConnection:
    """
    The agent's side of a line to the simulated Workhorse.

    @ivar breaks: whether the line carries breaks (a serial line) or not
        (TCP: the agent refuses).
    """

    def __init__(self, instrument: WorkhorseSimulator, clock: Clock) -> None:
        self.instrument = instrument
        self.clock = clock
        self.breaks = True
        self.link = LinkState()
        self.sent: list[bytes] = []
        self._end: _AgentEnd | None = None
        self._pump: Any = None
        self._data: Callable[[bytes, Packet], object] | None = None
        self._on_state: Callable[[LinkState], object] | None = None

    def initialize(self) -> None:
        pass

    def configure(self, config: Any) -> None:
        pass

    def connect(self) -> Deferred[LinkState]:
        self._join()
        self.link = LinkState(agent=True, commands=True, instrument=True)
        return succeed(self.link)

    def disconnect(self) -> Deferred[None]:
        self.link = LinkState()
        if self._end is not None and self._end.transport is not None:
            self._end.transport.loseConnection()
        self.flush()
        return succeed(None)

    def reset(self) -> Deferred[None]:
        return succeed(None)

    def attach(
        self,
        callback: Callable[[bytes, Packet], object],
        on_state: Callable[[LinkState], object] | None = None,
        on_fault: Callable[[str], object] | None = None,
    ) -> None:
        self._data, self._on_state = callback, on_state

    def detach(self) -> None:
        self._data = self._on_state = None

    def send(self, data: bytes) -> None:
        if not self.link.ready or self._end is None or self._end.transport is None:
            raise InstrumentConnectionError("the instrument link is down")
        self.sent.append(data)
        self._end.transport.write(data)

    def send_break(self, duration_ms: int) -> Deferred[None]:
        if not self.breaks:
            return fail(RuntimeError("the instrument link cannot send a break"))
        self.sent.append(b"<BREAK>")
        self.flush()
        self.instrument.line.receive_break()
        return succeed(None)

    def link_state(self) -> LinkState:
        return self.link

    def _join(self) -> None:
        self._end = _AgentEnd(self)
        self._pump = connect_pump(self.instrument, self._end, self.clock)

    def plug_in(self) -> None:
        """
        The agent reaches the instrument again.
        """
        self._join()
        self._set_link(LinkState(agent=True, commands=True, instrument=True))

    def flush(self) -> None:
        if self._pump is not None:
            self._pump.flush()

    def _set_link(self, link: LinkState) -> None:
        self.link = link
        if self._on_state is not None:
            self._on_state(link)

    def _from_instrument(self, data: bytes) -> None:
        packet = Packet(
            PacketType.DATA_FROM_INSTRUMENT, data, *unix_to_ntp(self.clock.seconds())
        )
        if self._data is not None:
            self._data(data, packet)

    def _line_lost(self, end: _AgentEnd) -> None:
        if end is self._end:
            self._end = None
            self._set_link(LinkState(agent=True, commands=True, instrument=False))


class Bench:
    """
    A driver and a simulated Workhorse on one clock, events collected.
    """

    def __init__(
        self,
        *,
        awake: bool = False,
        init_config: dict[str, object] | None = None,
        **settings: Any,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(HOST_START)
        options: dict[str, Any] = {"start_time": INSTRUMENT_START}
        options.update(settings)
        self.adcp = WorkhorseSimulator(
            SimulatorSettings(**options), reactor=self.clock, awake=awake
        )
        self.connection = SimulatorConnection(self.adcp, self.clock)
        self.driver = InstrumentDriver(
            self.connection, WorkhorseProtocol, clock=self.clock
        )
        self.seen: list[DriverEvent] = []
        self.driver.events.subscribe(self.seen.append)
        if init_config is not None:
            self.driver.set_init_params(init_config)
        self.driver.configure({"method": "simulator"})

    @property
    def state(self) -> str:
        return self.driver.get_resource_state()

    @property
    def protocol(self) -> WorkhorseProtocol:
        protocol = self.driver.protocol
        assert isinstance(protocol, WorkhorseProtocol)
        return protocol

    def connect(self, until: str = "COMMAND") -> None:
        self.driver.connect()
        self.run_until(lambda: self.state == until, 30)

    def flush(self) -> None:
        self.connection.flush()

    def run(self, seconds: float, step: float = 0.05) -> None:
        self.flush()
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            self.flush()

    def run_until(self, done: Callable[[], bool], limit: float) -> None:
        self.flush()
        waited = 0.0
        while not done():
            if waited >= limit:
                raise AssertionError(f"not done after {limit} s")
            self.clock.advance(0.05)
            self.flush()
            waited += 0.05

    def wait(self, d: Deferred[T], limit: float = 60.0) -> Deferred[T]:
        self.run_until(lambda: d.called, limit)
        return d

    def particles(self, stream: str) -> list[Any]:
        return [
            event.particle
            for event in self.seen
            if isinstance(event, SampleEvent) and event.particle.stream_name == stream  # type: ignore[attr-defined]
        ]


def values(particle: Any) -> dict[str, object]:
    """
    A particle's values as a dict.
    """
    return {entry["value_id"]: entry["value"] for entry in particle.values}
