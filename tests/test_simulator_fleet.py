"""
Tests for the simulator fleet's cheap paths: its simulators' timers in
slots (:mod:`instrumentd.simulator.timeslots`), and writes sent at once
(:class:`instrumentd.simulator.fleet.SendAtOnce`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from instrumentd.instruments.seabird.sbe37smp.simulator import SBE37Simulator
from instrumentd.simulator.base import SimulatorSettings
from instrumentd.simulator.fleet import Fleet, SendAtOnce
from instrumentd.simulator.frontends import InProcessLink
from instrumentd.simulator.timeslots import SlottedTimers
from tests.agentsupport import within

#: A logged sample line of the default SBE 37 (firmware 2.6).
_SAMPLE = re.compile(
    rb"^# [ \d.-]+,[ \d.-]+,[ \d.-]+,[ \d.-]+,[ \d.-]+, \d\d \w{3} \d{4}, [\d:]{8}\r$"
)


class ModelValuesTests(TestCase):
    """
    The SBE 37's sample model, made cheaper for fleets, gives the same
    floats as before.
    """

    def test_same_values(self) -> None:
        """
        Samples of six seeds, at times off the second and with 1 to 3
        readings averaged: the lines printed, the raw readings and the
        water, digested, are what the model gave before its speed-up (main
        at 8b5473b, where the solvers and the noise were last changed).
        """
        lines = []
        for seed in range(6):
            sbe37 = SBE37Simulator(SimulatorSettings(seed=seed), reactor=Clock())
            for k in range(50):
                when = 1_700_000_000.0 + seed * 7.123 + k * 5.0 + (k % 7) * 0.1234567
                reading = sbe37.measure(when, 1 + k % 3)
                lines.append(sbe37.format_sample(reading))
                lines.append(
                    repr(
                        (
                            reading.temperature_counts,
                            reading.conductivity_hz,
                            reading.pressure_counts,
                        )
                    )
                )
                lines.append(repr(sbe37.water.at(when, 1 + k % 3)))
        self.assertEqual(
            lines[0],
            " 10.9518,  3.79497,    9.556,  33.9519, 1492.096, 14 Nov 2023, 22:13:20",
        )
        self.assertEqual(
            hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            "8e0035225753d30a3294a172a297a4c64abe6d2dccc71a1695527e097e7bd1f4",
        )


class SlottedTimersTests(TestCase):
    """
    L{SlottedTimers} runs many timers with one of the reactor's.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.timers = SlottedTimers(self.clock, 0.01)
        self.ran: list[tuple[str, float]] = []

    def record(self, name: str) -> None:
        self.ran.append((name, self.clock.seconds()))

    def run_for(self, seconds: float, step: float = 0.001) -> None:
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def test_one_reactor_timer(self) -> None:
        """
        However many timers are pending, the reactor holds one, for the end
        of the earliest one's slot.
        """
        for k in range(100):
            self.timers.callLater(0.5 + k * 0.0137, self.record, str(k))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertAlmostEqual(self.clock.getDelayedCalls()[0].getTime(), 1000.5)
        self.assertEqual(len(self.timers.getDelayedCalls()), 100)

    def test_never_early_at_most_a_slot_late(self) -> None:
        """
        Each timer runs at or after its time, less than a slot after it,
        and in order of time; those of one slot run in one reactor turn.
        """
        wanted = {}
        for k in range(200):
            delay = (k * 0.0073) % 1.3
            wanted[str(k)] = 1000.0 + delay
            self.timers.callLater(delay, self.record, str(k))
        self.run_for(1.5)
        self.assertEqual(len(self.ran), 200)
        for name, when in self.ran:
            self.assertGreaterEqual(when, wanted[name] - 1e-9)
            self.assertLess(when, wanted[name] + 0.01 + 1e-9)
        self.assertEqual(
            [name for name, _ in self.ran],
            sorted(wanted, key=lambda name: (wanted[name], int(name))),
        )
        self.assertLessEqual(self.timers.turns, 131)

    def test_cancel_reset_delay(self) -> None:
        """
        A timer can be cancelled, reset and delayed, as a reactor's delayed
        call can; a cancelled one never runs.
        """
        cancelled = self.timers.callLater(0.1, self.record, "cancelled")
        reset = self.timers.callLater(0.1, self.record, "reset")
        delayed = self.timers.callLater(0.1, self.record, "delayed")
        cancelled.cancel()
        reset.reset(0.3)
        delayed.delay(0.1)
        self.assertFalse(cancelled.active())
        self.assertAlmostEqual(reset.getTime(), 1000.3)
        self.assertAlmostEqual(delayed.getTime(), 1000.2)
        self.assertEqual(
            sorted(self.timers.getDelayedCalls(), key=lambda call: call.getTime()),
            [delayed, reset],
        )
        self.run_for(0.5)
        self.assertEqual([name for name, _ in self.ran], ["delayed", "reset"])
        self.assertFalse(reset.active())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_many_cancelled(self) -> None:
        """
        Cancelled timers (an instrument's idle timer, at each command) do
        not pile up.
        """
        for _ in range(10_000):
            self.timers.callLater(100, self.record, "idle").cancel()
        self.assertLess(len(self.timers._heap), 200)

    def test_timer_set_by_timer(self) -> None:
        """
        A timer set by a timer for now runs in a later reactor turn, as on
        the reactor.
        """

        def first() -> None:
            self.record("first")
            self.timers.callLater(0, self.record, "second")

        self.timers.callLater(0.005, first)
        self.clock.advance(0.01)
        self.assertEqual(self.timers.turns, 1)
        self.assertEqual([name for name, _ in self.ran], ["first"])
        self.clock.advance(0.01)
        self.assertEqual(self.timers.turns, 2)
        self.assertEqual([name for name, _ in self.ran], ["first", "second"])

    def test_stop(self) -> None:
        """
        Stopping cancels every timer and the reactor's.
        """
        call = self.timers.callLater(0.5, self.record, "never")
        self.timers.stop()
        self.assertFalse(call.active())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.run_for(1)
        self.assertEqual(self.ran, [])

    def test_error_logged(self) -> None:
        """
        A timer that raises is logged, and the others of its slot run.
        """

        def fail() -> None:
            raise ZeroDivisionError()

        self.timers.callLater(0.001, fail)
        self.timers.callLater(0.002, self.record, "after")
        self.clock.advance(0.01)
        self.assertEqual([name for name, _ in self.ran], ["after"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_bad_slot(self) -> None:
        """
        A slot that is not a positive number is refused, naming it.
        """
        for bad in (0.0, -1.0, float("nan")):
            with self.assertRaises(ValueError) as e:
                SlottedTimers(self.clock, bad)
            self.assertIn(f"slot {bad!r} is not valid", str(e.exception))


class FleetTimingTests(TestCase):
    """
    A fleet's simulators, sharing one reactor timer, each keep their own
    schedule and print what a lone simulator prints.
    """

    def test_own_phase_one_timer_same_lines(self) -> None:
        """
        Five instruments started at different moments each print a sample
        a second, at their own phase (never early, less than a slot late),
        with one reactor timer between them; each prints the lines a lone
        simulator with its seed prints.
        """
        clock = Clock()
        clock.advance(1_700_000_000.0)
        fleet = Fleet("sbe37", 5, reactor=clock, time_scale=5, first_seed=7)
        links = [InProcessLink(sbe37) for sbe37 in fleet.instruments]
        lone_clock = Clock()
        lone_clock.advance(1_700_000_000.0)
        lones = [
            SBE37Simulator(
                SimulatorSettings(time_scale=5, seed=7 + k), reactor=lone_clock
            )
            for k in range(5)
        ]
        lone_links = [InProcessLink(sbe37) for sbe37 in lones]
        arrivals: list[list[float]] = [[] for _ in links]
        lines: list[bytes] = [b"" for _ in links]

        def step(seconds: float) -> None:
            for _ in range(round(seconds / 0.001)):
                clock.advance(0.001)
                lone_clock.advance(0.001)
                self.assertLessEqual(len(clock.getDelayedCalls()), 1)
                for k, link in enumerate(links):
                    data = link.take()
                    if data.startswith(b"# "):
                        arrivals[k].append(clock.seconds())
                        lines[k] += data

        started = []
        for k in range(5):
            # Spread over the second: 0.137 s apart.
            step(0.137)
            for link in (links[k], lone_links[k]):
                # Wake, INTERVAL=5 (1 s at time scale 5), STARTNOW.
                link.send(b"\r\n")
            step(0.15)
            for link in (links[k], lone_links[k]):
                link.send(b"INTERVAL=5\r\n")
                link.send(b"STARTNOW\r\n")
                link.take()
            started.append(clock.seconds())
        step(10)
        # Each logging instrument has a timer pending (and an idle one):
        # the reactor has one.
        assert fleet.timers is not None
        self.assertGreaterEqual(len(fleet.timers.getDelayedCalls()), 5)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        for k in range(5):
            # The first sample 1 instrument second (0.2 s) after STARTNOW.
            due = [started[k] + 0.2 + n for n in range(len(arrivals[k]))]
            self.assertGreaterEqual(len(arrivals[k]), 9)
            for when, wanted in zip(arrivals[k], due, strict=True):
                self.assertGreaterEqual(when, wanted - 1e-6)
                self.assertLess(when, wanted + 0.01 + 0.001 + 1e-6)
            lone = lone_links[k].take()
            self.assertEqual(lines[k], lone[: len(lines[k])])
            for line in lines[k].split(b"\n")[:-1]:
                self.assertRegex(line, _SAMPLE)

    def test_slot_zero(self) -> None:
        """
        With a slot of 0, each simulator has the reactor's timers, as a
        lone simulator has.
        """
        clock = Clock()
        fleet = Fleet("sbe37", 3, reactor=clock, slot=0)
        self.assertIsNone(fleet.timers)
        for sbe37 in fleet.instruments:
            self.assertIs(sbe37.reactor, clock)
        with self.assertRaises(ValueError) as e:
            Fleet("sbe37", 3, reactor=clock, slot=-1)
        self.assertIn("slot -1 is not valid", str(e.exception))


class _Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.wanted = 0
        self.got: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if len(self.data) >= self.wanted and not self.got.called:
            self.got.callback(self.data)


class SendAtOnceTests(TestCase):
    """
    L{SendAtOnce} sends a write at once when nothing waits in the
    transport's buffer, and through the buffer otherwise.
    """

    async def connected(self) -> tuple[Any, _Collect]:
        server: Deferred[Protocol] = Deferred()

        class Server(Protocol):
            def connectionMade(self) -> None:
                server.callback(self)

        port = reactor.listenTCP(  # type: ignore[attr-defined]
            0, Factory.forProtocol(Server), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        client = _Collect()
        factory = ClientFactory()
        factory.protocol = lambda: client  # type: ignore[assignment]
        reactor.connectTCP(  # type: ignore[attr-defined]
            "127.0.0.1", port.getHost().port, factory
        )
        protocol = await within(server, "the connection", 30)
        self.addCleanup(protocol.transport.loseConnection)  # type: ignore[union-attr]

        def close() -> None:
            if client.transport is not None:
                client.transport.loseConnection()

        self.addCleanup(close)
        return protocol.transport, client

    async def test_sent_at_once(self) -> None:
        """
        A write with nothing buffered leaves at once: the transport is not
        registered for writing, and the peer receives it.
        """
        transport, client = await self.connected()
        wrapped = SendAtOnce.wrap(transport)
        self.assertIsInstance(wrapped, SendAtOnce)
        client.wanted = 5
        wrapped.write(b"hello")
        self.assertNotIn(transport, reactor.getWriters())  # type: ignore[attr-defined]
        self.assertEqual(await within(client.got, "the bytes", 30), b"hello")

    async def test_order_kept(self) -> None:
        """
        With bytes waiting in the buffer, a write goes after them.
        """
        transport, client = await self.connected()
        wrapped = SendAtOnce.wrap(transport)
        client.wanted = 6
        transport.write(b"abc")
        wrapped.write(b"def")
        self.assertIn(transport, reactor.getWriters())  # type: ignore[attr-defined]
        self.assertEqual(await within(client.got, "the bytes", 30), b"abcdef")

    def test_other_transport(self) -> None:
        """
        A transport that does not keep Twisted's TCP buffer is used as it is.
        """
        from twisted.internet.testing import StringTransport

        transport = StringTransport()
        self.assertIs(SendAtOnce.wrap(transport), transport)


class _Logger(Protocol):
    """
    Wakes an SBE 37, starts it logging once a second and waits for two
    samples.
    """

    def __init__(self) -> None:
        self.data = b""
        self.made: Deferred[None] = Deferred()
        self.two: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        if (
            not self.data.endswith(b"S>")
            and data.endswith(b"S>")
            and b"#" not in self.data
        ):
            assert self.transport is not None
            if b"INTERVAL" not in self.data:
                self.transport.write(b"INTERVAL=5\r\nSTARTNOW\r\n")
        self.data += data
        if self.data.count(b"\n# ") >= 2 and not self.two.called:
            self.two.callback(None)


class FleetLinesTests(TestCase):
    """
    A fleet on the reactor serves its instruments over TCP, their lines
    sent at once.
    """

    async def test_logging_over_tcp(self) -> None:
        """
        Three instruments of a fleet, woken and logging over TCP, each send
        sample lines, through a L{SendAtOnce}.
        """
        fleet = Fleet("sbe37", 3, reactor=reactor, time_scale=5)
        ports = await Deferred.fromCoroutine(fleet.start())
        self.addCleanup(lambda: Deferred.fromCoroutine(fleet.stop()))
        clients = []
        for port in ports:
            client = _Logger()
            factory = ClientFactory()
            factory.protocol = lambda client=client: client  # type: ignore[assignment,misc]
            reactor.connectTCP("127.0.0.1", port, factory)  # type: ignore[attr-defined]
            clients.append(client)
            self.addCleanup(
                lambda client=client: (
                    client.transport  # type: ignore[misc]
                    and client.transport.loseConnection()
                )
            )
        for client in clients:
            await within(client.made, "the connection", 30)
            assert client.transport is not None
            client.transport.write(b"\r\n")
        for client in clients:
            await within(client.two, "two samples", 60)
        for k, client in enumerate(clients):
            self.assertIsInstance(fleet.instruments[k].line.transports[0], SendAtOnce)
            samples = [
                line for line in client.data.split(b"\n") if line.startswith(b"# ")
            ]
            self.assertGreaterEqual(len(samples), 2)
            for line in samples:
                self.assertRegex(line, _SAMPLE)
