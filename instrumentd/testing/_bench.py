# -*- test-case-name: tests.test_optode_driver,tests.test_sbe37_driver -*-
"""
A driver and its simulator on one clock: the deterministic bench every
driver's tests start from (see :mod:`instrumentd.testing`).

::

    class SampleTests(SynchronousTestCase):
        def test_sample(self) -> None:
            bench = DriverBench(MyProtocol, MySimulator(SimulatorSettings(),
                                                        reactor=clock))
            bench.connect()                      # discovered: COMMAND
            values = bench.result(bench.driver.execute_resource("acquire_sample"))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.driver.driver import InstrumentDriver
from instrumentd.driver.errors import InstrumentConnectionError
from instrumentd.driver.events import DriverEvent, SampleEvent
from instrumentd.driver.particles import DataParticle
from instrumentd.interfaces import IInstrumentConnection, LinkState
from instrumentd.packet import Packet, PacketType, unix_to_ntp
from instrumentd.portagent.client import PortAgentCommandError
from instrumentd.simulator.frontends import connect_pump

if TYPE_CHECKING:
    from twisted.internet.task import Clock

    from instrumentd.driver.protocol import InstrumentProtocol
    from instrumentd.simulator.base import SimulatedInstrument

__all__ = ["DriverBench", "SimulatorConnection", "undeclared_fields"]

T = TypeVar("T")


class _AgentEnd(Protocol):
    """
    The port agent's end of the line to the simulator.
    """

    def __init__(self, connection: SimulatorConnection) -> None:
        self.connection = connection

    def dataReceived(self, data: bytes) -> None:
        """
        Bytes from the instrument.
        """
        self.connection._from_instrument(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        The line dropped.
        """
        self.connection._line_lost(self)


@implementer(IInstrumentConnection)
class SimulatorConnection:
    """
    An :class:`~instrumentd.interfaces.IInstrumentConnection` to a simulated
    instrument in memory (``twisted.test.iosim``), with the port agent's link
    state: the bytes the instrument sends are stamped with the clock's time,
    a line the simulator drops reports the instrument link down, and
    :meth:`plug_in` joins a new line (the agent reconnecting).  Breaks reach
    the simulator as they would through a port agent on a serial line.

    Configure it with ``{"method": "simulator"}``.

    :ivar sent: every write of the driver, in order.
    :ivar breaks: the duration of every break sent, in milliseconds.
    :ivar can_break: ``False`` makes the connection refuse breaks, as a
        port agent does on a TCP link.
    """

    def __init__(self, instrument: SimulatedInstrument, clock: Clock) -> None:
        """
        :param instrument: the simulator.
        :param clock: the clock the simulator runs on.
        """
        self.instrument = instrument
        self.clock = clock
        self.state = "unconfigured"
        self.link = LinkState()
        self.sent: list[bytes] = []
        self.breaks: list[int] = []
        self.can_break = True
        self._end: _AgentEnd | None = None
        self._pump: Any = None
        self._data: Callable[[bytes, Packet], object] | None = None
        self._on_state: Callable[[LinkState], object] | None = None

    def initialize(self) -> None:
        """
        Forget the configuration.
        """
        self.state = "unconfigured"

    def configure(self, config: Any) -> None:
        """
        :param config: ``{"method": "simulator"}``.
        :raises InstrumentConnectionError: for any other method.
        """
        if config.get("method") != "simulator":
            raise InstrumentConnectionError(
                f"method: {config.get('method')!r} is not valid; valid: 'simulator'"
            )
        self.state = "disconnected"

    def connect(self) -> Deferred[LinkState]:
        """
        Join the line; the link is up at once.
        """
        self.state = "connected"
        self._join()
        self.link = LinkState(agent=True, commands=True, instrument=True)
        return succeed(self.link)

    def disconnect(self) -> Deferred[None]:
        """
        Drop the line.
        """
        self.state = "disconnected"
        self.link = LinkState()
        if self._end is not None and self._end.transport is not None:
            self._end.transport.loseConnection()
        self.flush()
        return succeed(None)

    def reset(self) -> Deferred[None]:
        """
        Forget the configuration.
        """
        self.initialize()
        return succeed(None)

    def attach(
        self,
        callback: Callable[[bytes, Packet], object],
        on_state: Callable[[LinkState], object] | None = None,
        on_fault: Callable[[str], object] | None = None,
    ) -> None:
        """
        Deliver the instrument's bytes and link changes to the driver.
        """
        self._data, self._on_state = callback, on_state

    def detach(self) -> None:
        """
        Deliver nothing more.
        """
        self._data = self._on_state = None

    def send(self, data: bytes) -> None:
        """
        Bytes to the instrument.

        :raises InstrumentConnectionError: if the link is down.
        """
        if not self.link.ready or self._end is None or self._end.transport is None:
            raise InstrumentConnectionError("the instrument link is down")
        self.sent.append(data)
        self._end.transport.write(data)

    def send_break(self, duration_ms: int) -> Deferred[None]:
        """
        A serial break, heard by the simulator's line; refused (as a port
        agent refuses on a TCP link) unless :attr:`can_break`.
        """
        if not self.can_break:
            return fail(
                PortAgentCommandError(
                    f"break {duration_ms}",
                    "ERROR break: the instrument link cannot send a break "
                    "(only serial links can)",
                )
            )
        self.breaks.append(duration_ms)
        # Bytes the driver wrote before the break reach the line first.
        self.flush()
        self.instrument.line.receive_break()
        return succeed(None)

    def link_state(self) -> LinkState:
        """
        :returns: the link as it is.
        """
        return self.link

    def plug_in(self) -> None:
        """
        The agent reaches the instrument again, on a new line.
        """
        self._join()
        self._set_link(LinkState(agent=True, commands=True, instrument=True))

    def flush(self) -> None:
        """
        Move the bytes both ways.
        """
        if self._pump is not None:
            self._pump.flush()

    def _join(self) -> None:
        self._end = _AgentEnd(self)
        self._pump = connect_pump(self.instrument, self._end, self.clock)

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
            if self.state == "connected":
                self._set_link(LinkState(agent=True, commands=True, instrument=False))


class DriverBench:
    """
    A driver and a simulated instrument on one clock, with the driver's
    events collected.  Time passes only when the bench lets it (in small
    steps, moving the bytes after each), so every test is repeatable.

    :ivar clock: the clock both run on.
    :ivar instrument: the simulator.
    :ivar connection: the :class:`SimulatorConnection` between them.
    :ivar driver: the driver.
    :ivar protocol_class: the driver's protocol class.
    :ivar seen: every event the driver published, in order.
    """

    def __init__(
        self,
        protocol: type[InstrumentProtocol[Any]],
        instrument: SimulatedInstrument,
        clock: Clock,
        *,
        init_config: dict[str, object] | None = None,
    ) -> None:
        """
        :param protocol: the driver's protocol class.
        :param instrument: the simulator, running on ``clock``.
        :param clock: the clock.
        :param init_config: the driver's startup configuration, if any.
        """
        self.clock = clock
        self.instrument = instrument
        self.protocol_class = protocol
        self.connection = SimulatorConnection(instrument, clock)
        self.driver = InstrumentDriver(self.connection, protocol, clock=clock)
        self.seen: list[DriverEvent] = []
        self.driver.events.subscribe(self.seen.append)
        if init_config is not None:
            self.driver.set_init_params(init_config)
        self.driver.configure({"method": "simulator"})

    @property
    def state(self) -> str:
        """
        The driver's resource state.
        """
        return self.driver.get_resource_state()

    @property
    def protocol(self) -> Any:
        """
        The running protocol, an instance of the bench's protocol class (the
        driver makes a new one each time the link comes up).

        :raises AssertionError: while there is none (the link is down).
        """
        protocol = self.driver.protocol
        assert isinstance(protocol, self.protocol_class), protocol
        return protocol

    def connect(self, until: str = "COMMAND", limit: float = 30.0) -> None:
        """
        Connect, and let time pass until the driver is in state ``until``.

        :raises AssertionError: if it is not within ``limit`` seconds.
        """
        self.driver.connect()
        self.run_until(lambda: self.state == until, limit)

    def flush(self) -> None:
        """
        Move the bytes.
        """
        self.connection.flush()

    def run(self, seconds: float, step: float = 0.05) -> None:
        """
        Let ``seconds`` pass in steps, moving the bytes after each.
        """
        self.flush()
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            self.flush()

    def run_until(
        self, done: Callable[[], bool], limit: float, step: float = 0.05
    ) -> None:
        """
        Let time pass until ``done()``.

        :raises AssertionError: if it is not done within ``limit`` seconds.
        """
        self.flush()
        waited = 0.0
        while not done():
            if waited >= limit:
                raise AssertionError(f"not done after {limit} s (state {self.state})")
            self.clock.advance(step)
            self.flush()
            waited += step

    def wait(self, d: Deferred[T], limit: float = 30.0) -> Deferred[T]:
        """
        Let time pass until ``d`` has a result.

        :returns: ``d``, fired.
        """
        self.run_until(lambda: d.called, limit)
        return d

    def result(self, d: Deferred[T], limit: float = 30.0) -> T:
        """
        Let time pass until ``d`` has fired, and return its result.

        :raises Exception: what ``d`` failed with.
        """
        self.wait(d, limit)
        outcome: list[T] = []
        failures: list[Failure] = []
        d.addCallbacks(outcome.append, failures.append)
        if failures:
            failures[0].raiseException()
        return outcome[0]

    def of_type(self, kind: type[T]) -> list[T]:
        """
        The events seen of one kind.
        """
        return [event for event in self.seen if isinstance(event, kind)]

    def particles(self, stream: str) -> list[DataParticle]:
        """
        The particles published on one stream, in order.
        """
        return [
            particle
            for event in self.of_type(SampleEvent)
            if isinstance(particle := event.particle, DataParticle)
            and particle.stream_name == stream
        ]

    def sent_text(self) -> bytes:
        """
        Everything the driver has written to the instrument.
        """
        return b"".join(self.connection.sent)

    def close(self) -> None:
        """
        Disconnect and power the simulator off, leaving no timer behind.
        """
        self.driver.disconnect()
        self.instrument.stop()


def undeclared_fields(protocol_class: type[InstrumentProtocol[Any]]) -> list[str]:
    """
    The values a protocol's particles carry that have no
    :class:`~instrumentd.driver.particles.ParticleField` (units, standard
    name), as ``stream.value`` strings; empty when every value is
    described.  A driver's tests assert that it is empty, so a value added
    to a pattern without its units fails at once::

        self.assertEqual(undeclared_fields(MyProtocol), [])

    :param protocol_class: the protocol.
    :returns: the undescribed values, sorted.
    """
    missing: list[str] = []
    for particle_class in (
        *protocol_class.particles,
        *protocol_class.published_particles,
    ):
        for value_id in particle_class.value_ids() or ():
            if value_id not in particle_class.fields:
                missing.append(f"{particle_class.stream_name}.{value_id}")
    return sorted(missing)
