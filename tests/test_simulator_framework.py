"""
Tests for :mod:`instrumentd.simulator`: the instrument clock, the serial
line (pacing), fault injection and its control channel, the front ends, the
``simulate`` subcommand and the seawater formulas.

The synchronous tests use ``Clock`` and in-memory transports.  The real-parts
tests (``TestCase``) serve an SBE 37 simulator on a loopback TCP port, on a
pty opened through our ``serial:`` endpoint, and from a ``twistd`` child
process.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    clientFromString,
    connectProtocol,
)
from twisted.internet.error import (
    CannotListenError,
    ProcessExitedAlready,
    ProcessTerminated,
)
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import (
    MemoryReactorClock,
    StringTransport,
    StringTransportWithDisconnection,
)
from twisted.logger import capturedLogs
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from instrumentd import tap
from instrumentd.instruments.seabird.sbe37smp.simulator import SBE37Simulator
from instrumentd.simulator import (
    DEFAULT_LISTEN,
    SIMULATOR_MODELS,
    FaultControlProtocol,
    InProcessLink,
    InstrumentClock,
    PtySerialDevice,
    SerialLine,
    SimulatedInstrument,
    SimulatorService,
    SimulatorSettings,
    UnknownModelError,
    connect_pump,
    listen,
    loopback_by_default,
    make_simulator,
    simulator_class,
)
from instrumentd.simulator.options import SimulateOptions, make_service
from instrumentd.simulator.seawater import (
    C3515,
    MooringWater,
    check_formulas,
    conductivity_for,
    salinity,
    sound_velocity,
)

#: Every model there is, as refusals list them.
MODELS = ", ".join(sorted(SIMULATOR_MODELS))


class _Echo(SimulatedInstrument):
    """
    The smallest instrument: sends back what it hears.
    """

    model = "echo"

    def data_received(self, data: bytes) -> None:
        """
        Echo.
        """
        self.send(data)


def _line(clock: Clock, baud: int = 0, seed: int = 0) -> tuple[SerialLine, list[bytes]]:
    """
    A serial line on C{clock} whose instrument records what it hears.
    """
    heard: list[bytes] = []
    return SerialLine(clock, heard.append, baud=baud, seed=seed), heard


def _attached(line: SerialLine) -> StringTransport:
    transport = StringTransport()
    line.attach(transport)
    return transport


class InstrumentClockTests(SynchronousTestCase):
    """
    The instrument's clock runs C{scale} times faster than the reactor and
    can be set.
    """

    def test_nowScaled(self) -> None:
        """
        It starts at the given time and runs C{scale} times faster.
        """
        clock = Clock()
        rtc = InstrumentClock(clock, scale=10.0, start=1000.0)
        self.assertEqual(rtc.now(), 1000.0)
        clock.advance(2)
        self.assertEqual(rtc.now(), 1020.0)

    def test_startDefaultsToReactorTime(self) -> None:
        """
        Without a start time it reads the reactor's time.
        """
        clock = Clock()
        clock.advance(500)
        self.assertEqual(InstrumentClock(clock).now(), 500.0)

    def test_set(self) -> None:
        """
        Setting the clock moves it; it runs on from there.
        """
        clock = Clock()
        rtc = InstrumentClock(clock, scale=2.0, start=0.0)
        clock.advance(5)
        rtc.set(100.0)
        clock.advance(1)
        self.assertEqual(rtc.now(), 102.0)

    def test_callLaterScaled(self) -> None:
        """
        Timers are in instrument seconds: 15 s at scale 15 is one reactor
        second.
        """
        clock = Clock()
        rtc = InstrumentClock(clock, scale=15.0)
        fired: list[str] = []
        rtc.call_later(15, fired.append, "x")
        clock.advance(0.99)
        self.assertEqual(fired, [])
        clock.advance(0.01)
        self.assertEqual(fired, ["x"])
        self.assertEqual(rtc.pending(), 0)

    def test_cancelAll(self) -> None:
        """
        C{cancel_all} cancels every pending timer.
        """
        clock = Clock()
        rtc = InstrumentClock(clock)
        for k in range(100):
            call = rtc.call_later(k + 1, lambda: None)
            if k % 2:
                call.cancel()
        self.assertEqual(rtc.pending(), 50)
        rtc.cancel_all()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_badScale(self) -> None:
        """
        A scale that is not a finite number above 0 is refused.
        """
        for bad in (0.0, -1.0, math.inf, math.nan):
            self.assertRaises(ValueError, InstrumentClock, Clock(), bad)


class SimulatorSettingsTests(SynchronousTestCase):
    """
    Settings are checked when made.
    """

    def test_defaults(self) -> None:
        """
        By default: no pacing, echo on, real time.
        """
        settings = SimulatorSettings()
        self.assertEqual(
            (settings.baud, settings.echo, settings.time_scale), (0, True, 1.0)
        )

    def test_refused(self) -> None:
        """
        A negative baud rate, a time scale that is not above 0 and a serial
        number out of range are refused with the valid values.
        """
        cases: list[tuple[dict[str, Any], str]] = [
            ({"baud": -1}, "valid: 0 (no pacing)"),
            ({"time_scale": 0.0}, "greater than 0"),
            ({"time_scale": math.nan}, "greater than 0"),
            ({"serial_number": 0}, "1 to 99999999"),
        ]
        for kwargs, fragment in cases:
            error = self.assertRaises(ValueError, SimulatorSettings, **kwargs)
            self.assertIn(fragment, str(error))


class SerialLineTests(SynchronousTestCase):
    """
    The line delivers output to every attached transport, paced at the
    baud rate.
    """

    def test_unpaced(self) -> None:
        """
        With no baud rate, output leaves at once.
        """
        clock = Clock()
        line, _ = _line(clock)
        transport = _attached(line)
        line.write(b"hello")
        self.assertEqual(transport.value(), b"hello")
        self.assertEqual(line.bytes_sent, 5)

    def test_paced(self) -> None:
        """
        At 9600 baud (ten bits a byte) 96 bytes take 0.1 s: nothing has
        arrived before the first slice has been on the wire, about half
        halfway, and all of it, in order, at the end.
        """
        clock = Clock()
        line, _ = _line(clock, baud=9600)
        transport = _attached(line)
        data = bytes(range(96))
        line.write(data)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(line.queued(), 96)
        clock.pump([0.001] * 50)
        self.assertTrue(36 <= len(transport.value()) <= 54, len(transport.value()))
        clock.pump([0.001] * 70)
        self.assertEqual(transport.value(), data)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_pacedWritesQueue(self) -> None:
        """
        Writes made while earlier output is on the wire follow it.
        """
        clock = Clock()
        line, _ = _line(clock, baud=1200)
        transport = _attached(line)
        line.write(b"first ")
        line.write(b"second")
        clock.pump([0.01] * 20)
        self.assertEqual(transport.value(), b"first second")

    def test_yCable(self) -> None:
        """
        Every attached transport gets every byte; input from any reaches
        the instrument; a detached one gets nothing more.
        """
        line, heard = _line(Clock())
        one, two = _attached(line), _attached(line)
        line.write(b"a")
        line.detach(one)
        line.write(b"b")
        self.assertEqual((one.value(), two.value()), (b"a", b"ab"))
        line.receive(b"x")
        self.assertEqual(heard, [b"x"])
        self.assertEqual(line.bytes_received, 1)
        line.detach(one)

    def test_nobodyListening(self) -> None:
        """
        With nothing attached, output is lost, as on a cable nobody reads.
        """
        line, _ = _line(Clock())
        line.write(b"lost")
        transport = _attached(line)
        self.assertEqual(transport.value(), b"")


class FaultTests(SynchronousTestCase):
    """
    Every fault, injected from code.
    """

    def test_silentUntilCleared(self) -> None:
        """
        A silent line sends nothing (queued output is lost) and hears
        nothing until C{speak_again}.
        """
        clock = Clock()
        line, heard = _line(clock, baud=9600)
        transport = _attached(line)
        line.write(b"queued output")
        line.faults.go_silent()
        line.write(b"more")
        line.receive(b"DS\r\n")
        clock.advance(10)
        self.assertEqual((transport.value(), heard), (b"", []))
        self.assertEqual(line.faults.describe(), "silent")
        line.faults.speak_again()
        line.write(b"back")
        line.receive(b"x")
        clock.advance(1)
        self.assertEqual((transport.value(), heard), (b"back", [b"x"]))

    def test_silentForSeconds(self) -> None:
        """
        A timed silence ends by itself.
        """
        clock = Clock()
        line, _ = _line(clock)
        line.faults.go_silent(2.5)
        clock.advance(2.4)
        self.assertTrue(line.faults.silent)
        clock.advance(0.1)
        self.assertFalse(line.faults.silent)

    def test_slow(self) -> None:
        """
        Slow answers delay each piece of output by the delay, keeping
        order; 0 ends the fault.
        """
        clock = Clock()
        line, _ = _line(clock)
        transport = _attached(line)
        line.faults.answer_slowly(2.0)
        line.write(b"one ")
        clock.advance(1)
        line.write(b"two")
        clock.advance(0.99)
        self.assertEqual(transport.value(), b"")
        clock.advance(0.01)
        self.assertEqual(transport.value(), b"one ")
        clock.advance(1)
        self.assertEqual(transport.value(), b"one two")
        self.assertEqual(line.faults.describe(), "slow 2 s")
        line.faults.answer_slowly(0)
        line.write(b"!")
        self.assertEqual(transport.value(), b"one two!")

    def test_cutLine(self) -> None:
        """
        The next line of output is cut in the middle of its visible text;
        the rest, and what follows, arrive after the hold.  Output with no
        such line passes and leaves the cut armed.
        """
        clock = Clock()
        line, _ = _line(clock)
        transport = _attached(line)
        line.faults.cut_next_line(resume_after=1.5)
        line.write(b"S")
        line.write(b"\r\n")
        self.assertTrue(line.faults.cut_pending)
        line.write(b"\r\n# 12.3456,  3.51234\r\nS>")
        line.write(b" after")
        self.assertEqual(transport.value(), b"S\r\n\r\n# 12.3456")
        self.assertFalse(line.faults.cut_pending)
        clock.advance(1.49)
        self.assertEqual(transport.value(), b"S\r\n\r\n# 12.3456")
        clock.advance(0.01)
        self.assertEqual(transport.value(), b"S\r\n\r\n# 12.3456,  3.51234\r\nS> after")

    def test_cutHoldCountsFromFirstHalf(self) -> None:
        """
        With pacing, the rest of a cut line waits the hold after the first
        half has left, not after the write.
        """
        clock = Clock()
        line, _ = _line(clock, baud=100)  # 10 bytes a second
        transport = _attached(line)
        line.faults.cut_next_line(resume_after=1.0)
        line.write(b"abcdefghij\r\n")  # cut after "abcde"
        clock.pump([0.1] * 15)
        self.assertEqual(transport.value(), b"abcde")
        clock.pump([0.1] * 20)
        self.assertEqual(transport.value(), b"abcdefghij\r\n")

    def test_garbage(self) -> None:
        """
        Garbage is random bytes, the same for the same seed; or the bytes
        given.
        """
        clock = Clock()
        line, _ = _line(clock, seed=3)
        transport = _attached(line)
        sent = line.faults.emit_garbage(16)
        self.assertEqual(len(sent), 16)
        self.assertEqual(transport.value(), sent)
        again, _ = _line(Clock(), seed=3)
        self.assertEqual(again.faults.emit_garbage(16), sent)
        self.assertEqual(line.faults.emit_garbage(data=b"\xff\x00"), b"\xff\x00")
        self.assertRaises(ValueError, line.faults.emit_garbage, -1)

    def test_drop(self) -> None:
        """
        Dropping the link aborts every connection and loses queued output.
        """
        clock = Clock()
        instrument = _Echo(SimulatorSettings(baud=300), reactor=clock)
        link = InProcessLink(instrument)
        link.send(b"hello")
        instrument.faults.drop_link()
        self.assertFalse(link.connected)
        self.assertEqual(instrument.line.transports, ())
        self.assertEqual(instrument.line.queued(), 0)
        clock.advance(1)
        self.assertEqual(link.take(), b"")
        link.reconnect()
        link.send(b"again")
        clock.pump([0.05] * 40)
        self.assertEqual(link.take(), b"again")

    def test_clear(self) -> None:
        """
        C{clear} ends silence, slow answers and a pending cut.
        """
        clock = Clock()
        line, _ = _line(clock)
        line.faults.go_silent(100)
        line.faults.answer_slowly(3)
        line.faults.cut_next_line()
        self.assertEqual(line.faults.describe(), "silent, slow 3 s, cut pending (1 s)")
        line.faults.clear()
        self.assertEqual(line.faults.describe(), "none")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_badArguments(self) -> None:
        """
        Negative or non-numeric durations are refused.
        """
        faults = _line(Clock())[0].faults
        self.assertRaises(ValueError, faults.go_silent, 0)
        self.assertRaises(ValueError, faults.go_silent, math.nan)
        self.assertRaises(ValueError, faults.answer_slowly, -1)
        self.assertRaises(ValueError, faults.cut_next_line, -1)


class FaultControlTests(SynchronousTestCase):
    """
    The control channel drives the same faults, one command a line.
    """

    def setUp(self) -> None:
        """
        A control connection to an echo instrument's faults.
        """
        self.clock = Clock()
        self.instrument = _Echo(reactor=self.clock)
        self.link = InProcessLink(self.instrument)
        self.control = FaultControlProtocol(self.instrument.faults)
        self.transport = StringTransport()
        self.control.makeConnection(self.transport)

    def ask(self, command: bytes) -> str:
        """
        Send a command; return the reply line.
        """
        self.transport.clear()
        self.control.dataReceived(command + b"\r\n")
        reply: bytes = self.transport.value()
        self.assertTrue(reply.endswith(b"\r\n"))
        return reply.decode().strip()

    def test_commands(self) -> None:
        """
        Each command acts and answers OK with the faults in force.
        """
        self.assertEqual(self.ask(b"silent 5"), "OK silent")
        self.assertEqual(self.ask(b"speak"), "OK none")
        self.assertEqual(self.ask(b"SLOW 0.5"), "OK slow 0.5 s")
        self.assertEqual(self.ask(b"cut 2"), "OK slow 0.5 s, cut pending (2 s)")
        self.assertEqual(self.ask(b"status"), "OK slow 0.5 s, cut pending (2 s)")
        self.assertEqual(self.ask(b"clear"), "OK none")
        self.assertEqual(self.ask(b"silent"), "OK silent")
        self.assertEqual(self.ask(b"clear"), "OK none")
        self.assertEqual(self.ask(b"garbage 7"), "OK sent 7 bytes")
        self.assertEqual(len(self.link.take()), 7)
        self.assertIn("drop | garbage", self.ask(b"help"))
        self.assertEqual(self.ask(b"drop"), "OK dropped")
        self.assertFalse(self.link.connected)

    def test_errors(self) -> None:
        """
        An unknown command or a bad argument gets ERROR and a reason.
        """
        self.assertIn("ERROR unknown command 'boom'", self.ask(b"boom"))
        self.assertIn("ERROR slow: give the delay", self.ask(b"slow"))
        self.assertIn("ERROR silent:", self.ask(b"silent -3"))
        self.assertIn("ERROR garbage:", self.ask(b"garbage many"))
        self.assertIn("ERROR cut:", self.ask(b"cut inf"))

    def test_blankLineIgnored(self) -> None:
        """
        An empty line gets no answer.
        """
        self.control.dataReceived(b"\r\n")
        self.assertEqual(self.transport.value(), b"")


class InMemoryFrontEndTests(SynchronousTestCase):
    """
    The in-memory front ends for tests.
    """

    def test_inProcessLink(self) -> None:
        """
        An C{InProcessLink} carries bytes both ways, disconnects and
        reconnects.
        """
        instrument = _Echo(reactor=Clock())
        link = InProcessLink(instrument)
        link.send(b"ping")
        self.assertEqual(link.take(), b"ping")
        self.assertEqual(link.take(), b"")
        link.disconnect()
        self.assertFalse(link.connected)
        self.assertEqual(instrument.line.transports, ())
        link.reconnect()
        self.assertEqual(len(instrument.line.transports), 1)

    def test_connectPump(self) -> None:
        """
        C{connect_pump} connects a host protocol through iosim; the SBE 37
        wakes and prompts when the clock moves and the pump flushes.
        """
        clock = Clock()
        sbe37 = SBE37Simulator(reactor=clock)
        host = _Host()
        pump = connect_pump(sbe37, host, clock)
        host.transport.write(b"\r\n")
        pump.flush()
        clock.advance(0.5)
        pump.flush()
        self.assertEqual(host.received, b"\r\nS>")


class LoopbackTests(SynchronousTestCase):
    """
    TCP front ends bind to loopback unless told otherwise.
    """

    def test_loopbackByDefault(self) -> None:
        """
        C{tcp:PORT} and a bare port gain C{interface=127.0.0.1}; strings
        that name an interface, or are not TCP, are left alone.
        """
        cases = {
            "tcp:4001": "tcp:4001:interface=127.0.0.1",
            "4001": "tcp:4001:interface=127.0.0.1",
            "TCP:port=0": "TCP:port=0:interface=127.0.0.1",
            "tcp6:4001": r"tcp6:4001:interface=\:\:1",
            "tcp:4001:interface=0.0.0.0": "tcp:4001:interface=0.0.0.0",
            "unix:/tmp/sbe37": "unix:/tmp/sbe37",
        }
        for given, expected in cases.items():
            self.assertEqual(loopback_by_default(given), expected)

    def test_listenOnMemoryReactor(self) -> None:
        """
        C{listen} binds through the endpoint string, on loopback.
        """
        memory = MemoryReactorClock()
        instrument = _Echo(reactor=memory)
        listen(instrument, "tcp:4001", memory)
        port, factory, _, interface = memory.tcpServers[0]
        self.assertEqual((port, interface), (4001, "127.0.0.1"))
        self.assertIs(factory.instrument, instrument)


class RegistryTests(SynchronousTestCase):
    """
    Simulators are found by model name.
    """

    def test_known(self) -> None:
        """
        C{sbe37}, in any case, is the SBE 37-SMP simulator.
        """
        self.assertIs(simulator_class("SBE37"), SBE37Simulator)
        made = make_simulator("sbe37", reactor=Clock())
        self.assertIsInstance(made, SBE37Simulator)

    def test_unknown(self) -> None:
        """
        An unknown name is refused, listing the models.
        """
        error = self.assertRaises(UnknownModelError, simulator_class, "sbe99")
        self.assertEqual(
            str(error),
            f"no simulator for model 'sbe99'; models: {MODELS}, or module:Class "
            "of a SimulatedInstrument of your own",
        )

    def test_ownModel(self) -> None:
        """
        A driver writer's own simulator is named C{module:Class}, its case
        kept; a name that is not one says why.
        """
        self.assertIs(
            simulator_class(
                "instrumentd.instruments.seabird.sbe37smp.simulator:SBE37Simulator"
            ),
            SBE37Simulator,
        )
        error = self.assertRaises(UnknownModelError, simulator_class, "os.path:join")
        self.assertIn("'os.path:join' (not a SimulatedInstrument)", str(error))
        error = self.assertRaises(UnknownModelError, simulator_class, "nowhere:X")
        self.assertIn("No module named 'nowhere'", str(error))


class SimulateOptionsTests(SynchronousTestCase):
    """
    ``twistd instrumentd simulate MODEL [options]``.
    """

    def parse(self, *argv: str) -> SimulateOptions:
        """
        Parse C{argv} as the subcommand's arguments.
        """
        options = SimulateOptions()
        options.parseOptions(list(argv))
        return options

    def refused(self, *argv: str) -> str:
        """
        Parse C{argv}, expecting a usage error; return its message.
        """
        return str(self.assertRaises(usage.UsageError, self.parse, *argv))

    def test_registered(self) -> None:
        """
        ``simulate`` is a subcommand of ``twistd instrumentd``.
        """
        options = tap.Options()
        options.parseOptions(["simulate", "sbe37"])
        self.assertIsInstance(options.subOptions, SimulateOptions)

    def test_defaults(self) -> None:
        """
        With only the model: 9600 baud, real time, echo, and a TCP listener
        on loopback port 4001.
        """
        options = self.parse("sbe37")
        self.assertEqual(options.model, "sbe37")
        self.assertEqual(options["listen"], [DEFAULT_LISTEN])
        self.assertEqual(
            options.settings(), SimulatorSettings(baud=9600, time_scale=1.0)
        )

    def test_allOptions(self) -> None:
        """
        Every option reaches the settings and the service.
        """
        options = self.parse(
            "SBE37",
            "--listen", "tcp:0",
            "-l", "unix:/tmp/x.sock",
            "--pty-link", "/tmp/sbe37",
            "--serial-number", "4242",
            "--time-scale", "60",
            "--baud", "0",
            "--seed", "9",
            "--no-echo",
            "--control", "tcp:4002",
        )  # fmt: skip
        self.assertEqual(
            options.settings(),
            SimulatorSettings(
                baud=0, echo=False, time_scale=60.0, seed=9, serial_number=4242
            ),
        )
        self.assertEqual(
            options["listen"], ["tcp:0:interface=127.0.0.1", "unix:/tmp/x.sock"]
        )
        self.assertEqual(options["control"], ["tcp:4002:interface=127.0.0.1"])
        self.assertTrue(options["pty"])

    def test_barePort(self) -> None:
        """
        ``--listen 4001`` is a TCP port on loopback.
        """
        self.assertEqual(
            self.parse("sbe37", "--listen", "4001")["listen"],
            ["tcp:4001:interface=127.0.0.1"],
        )

    def test_ptyOnly(self) -> None:
        """
        ``--pty`` alone makes no TCP listener.
        """
        self.assertEqual(self.parse("sbe37", "--pty")["listen"], [])

    def test_model(self) -> None:
        """
        A missing or unknown model is refused, listing the models.
        """
        self.assertIn(f"give the model to simulate; models: {MODELS}", self.refused())
        self.assertEqual(
            self.refused("ctd9000"),
            f"no simulator for model 'ctd9000'; models: {MODELS}, or module:Class "
            "of a SimulatedInstrument of your own",
        )

    def test_badNumbers(self) -> None:
        """
        A bad time scale, baud rate, serial number or seed is refused,
        naming the option.
        """
        for scale in ("0", "-2", "inf", "nan", "fast"):
            self.assertIn(
                "--time-scale: ", self.refused("sbe37", "--time-scale", scale)
            )
        self.assertIn(
            "must be a number above 0", self.refused("sbe37", "--time-scale", "0")
        )
        self.assertIn(
            "--baud: '-1' must be at least 0", self.refused("sbe37", "--baud", "-1")
        )
        self.assertIn(
            "--baud: 'x' is not a whole number", self.refused("sbe37", "--baud", "x")
        )
        self.assertIn("--serial-number", self.refused("sbe37", "--serial-number", "0"))
        self.assertIn(
            "1 to 99999999", self.refused("sbe37", "--serial-number", "100000000")
        )
        self.assertIn("--seed", self.refused("sbe37", "--seed", "x"))

    def test_badEndpoint(self) -> None:
        """
        A listener that is not a server endpoint string is refused.
        """
        self.assertIn(
            "--listen: 'bogus:1' is not a server endpoint",
            self.refused("sbe37", "--listen", "bogus:1"),
        )
        self.assertIn("--control:", self.refused("sbe37", "--control", "tcp:x"))


class SimulatorServiceTests(SynchronousTestCase):
    """
    The service ``twistd`` runs, on a memory reactor.
    """

    def test_startAndStop(self) -> None:
        """
        Starting binds the listeners and the control channel and logs where;
        stopping closes them and leaves no timer.
        """
        memory = MemoryReactorClock()
        options = SimulateOptions()
        options.parseOptions(["sbe37", "--listen", "tcp:4001", "--control", "tcp:4002"])
        service = make_service(options, reactor=memory)
        self.assertIsInstance(service, SimulatorService)
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(
            [(port, interface) for port, _, _, interface in memory.tcpServers],
            [(4001, "127.0.0.1"), (4002, "127.0.0.1")],
        )
        # A memory reactor's ports say 0.0.0.0 whatever they were given.
        messages = [event["log_format"].format(**event) for event in events]
        self.assertEqual(
            messages,
            [
                "SBE 37-SMP S/N 2165 listening on 0.0.0.0:4001",
                "SBE 37-SMP S/N 2165 fault control channel on 0.0.0.0:4002",
            ],
        )
        self.successResultOf(service.stopService())
        self.assertEqual([c for c in memory.getDelayedCalls() if c.active()], [])


class SeawaterTests(SynchronousTestCase):
    """
    The seawater formulas against UNESCO 1983's check values, and the
    mooring water.
    """

    def test_checkValues(self) -> None:
        """
        PSS-78: S=35 at R=1, T68=15, P=0, and S=40 at the check point;
        Chen-Millero: 1731.995 m/s at S=40, T68=40, 10000 dbar.
        """
        check_formulas()
        self.assertAlmostEqual(salinity(C3515, 15 / 1.00024, 0), 35.0, places=6)
        t90 = 40 / 1.00024
        self.assertAlmostEqual(salinity(1.888091 * C3515, t90, 10000), 40.0, places=5)
        self.assertAlmostEqual(sound_velocity(40, t90, 10000), 1731.995, places=3)

    def test_dryOrNegative(self) -> None:
        """
        A conductivity of zero or below gives a number, not an error.
        """
        self.assertTrue(math.isfinite(salinity(-0.1, 10, 0)))
        self.assertTrue(math.isfinite(sound_velocity(-0.5, 10, 0)))

    def test_conductivityInverts(self) -> None:
        """
        C{conductivity_for} inverts C{salinity}.
        """
        c = conductivity_for(33.9, 11.0, 10.0)
        self.assertAlmostEqual(salinity(c, 11.0, 10.0), 33.9, places=9)

    def test_waterRepeatable(self) -> None:
        """
        The water at a moment is the same every time it is asked for, and
        averaging shrinks the noise.
        """
        water = MooringWater(seed=4)
        self.assertEqual(water.at(1e9), water.at(1e9))
        self.assertEqual(MooringWater(seed=4).at(1e9), water.at(1e9))
        self.assertNotEqual(MooringWater(seed=5).at(1e9), water.at(1e9))
        spread = [water.at(1e9 + k / 1000).temperature for k in range(200)]
        averaged = [water.at(1e9 + k / 1000, 100).temperature for k in range(200)]
        self.assertLess(max(averaged) - min(averaged), max(spread) - min(spread))


class _Host(Protocol):
    """
    The host's side in the real-parts tests: collects what arrives and
    fires Deferreds when a pattern has arrived.

    :ivar received: bytes not yet returned by L{wait_for}.
    :ivar lost: fires when the connection ends.
    """

    def __init__(self) -> None:
        self.received = b""
        self.lost: Deferred[None] = Deferred()
        self._waiting: list[tuple[bytes, int, Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        """
        Collect and check the waiters.
        """
        self.received += data
        self._check()

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        Fire L{lost}.
        """
        self.lost.callback(None)

    def wait_for(self, pattern: bytes, count: int = 1) -> Deferred[bytes]:
        """
        Fire with everything received up to the C{count}th C{pattern}.
        """
        d: Deferred[bytes] = Deferred()
        self._waiting.append((pattern, count, d))
        self._check()
        return d

    def send(
        self, data: bytes, pattern: bytes = b"S>", count: int = 1
    ) -> Deferred[bytes]:
        """
        Send C{data} and wait for C{pattern}.
        """
        self.transport.write(data)
        return self.wait_for(pattern, count)

    def _check(self) -> None:
        while self._waiting:
            pattern, count, d = self._waiting[0]
            if self.received.count(pattern) < count:
                return
            end = 0
            for _ in range(count):
                end = self.received.index(pattern, end) + len(pattern)
            got, self.received = self.received[:end], self.received[end:]
            self._waiting.pop(0)
            d.callback(got)


async def _disconnect(host: _Host) -> None:
    if not host.lost.called:
        host.transport.loseConnection()
    await host.lost


class TcpFrontEndTests(TestCase):
    """
    An SBE 37 on a real loopback TCP port.
    """

    timeout = 20

    async def serve(self, **settings: Any) -> tuple[SBE37Simulator, IListeningPort]:
        """
        Serve an SBE 37 on an ephemeral loopback port until the test ends.
        """
        sbe37 = SBE37Simulator(SimulatorSettings(**settings), reactor=reactor)
        self.addCleanup(sbe37.stop)
        port = await listen(sbe37, "tcp:0", reactor)
        self.addCleanup(port.stopListening)
        return sbe37, port

    async def connect(self, port: IListeningPort) -> _Host:
        """
        Connect a host to the port; disconnect it when the test ends.
        """
        host = _Host()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        await connectProtocol(endpoint, host)
        self.addCleanup(lambda: Deferred.fromCoroutine(_disconnect(host)))
        return host

    async def test_statusAndSamples(self) -> None:
        """
        Over TCP on loopback: wake, DS, and samples at the scaled interval.
        """
        sbe37, port = await self.serve(time_scale=50.0)
        self.assertEqual(port.getHost().host, "127.0.0.1")
        host = await self.connect(port)
        self.assertEqual(await host.send(b"\r\n"), b"\r\nS>")
        status = await host.send(b"DS\r\n")
        self.assertIn(b"SBE37-SMP V 2.6 SERIAL NO. 2165", status)
        self.assertIn(b"\r\nnot logging: received stop command\r\n", status)
        await host.send(b"INTERVAL=5\r\n")
        await host.send(b"STARTNOW\r\n")
        samples = await host.wait_for(b"\r\n", count=3)
        self.assertEqual(samples.count(b"#"), 3)
        await host.send(b"STOP\r\n")
        self.assertFalse(sbe37.logging)

    async def test_dropAndReconnect(self) -> None:
        """
        A dropped link closes the host's connection; the listener stays, and
        a new connection finds the instrument still logging.
        """
        sbe37, port = await self.serve(time_scale=50.0)
        host = await self.connect(port)
        await host.send(b"\r\n")
        await host.send(b"STARTNOW\r\n")
        sbe37.faults.drop_link()
        await host.lost
        again = await self.connect(port)
        await again.wait_for(b"#")
        self.assertTrue(sbe37.logging)

    async def test_baudPacing(self) -> None:
        """
        At 9600 baud a status dump (about 500 bytes) takes about half a
        second to arrive, in more than one piece.
        """
        _, port = await self.serve(baud=9600, time_scale=100.0)
        host = await self.connect(port)
        await host.send(b"\r\n")
        chunks: list[bytes] = []
        original = host.dataReceived

        def counting(data: bytes) -> None:
            chunks.append(data)
            original(data)

        host.dataReceived = counting  # type: ignore[method-assign]
        started = reactor.seconds()
        status = await host.send(b"DS\r\n")
        elapsed = reactor.seconds() - started
        self.assertGreater(elapsed, len(status) * 10 / 9600 * 0.9)
        self.assertGreater(len(chunks), 5)

    async def test_busyPortFailsStart(self) -> None:
        """
        A service whose port is taken fails to start with the reason.
        """
        _, port = await self.serve()
        options = SimulateOptions()
        options.parseOptions(["sbe37", "--listen", f"tcp:{port.getHost().port}"])
        service = make_service(options, reactor=reactor)
        self.assertRaises(CannotListenError, service.startService)


class PtyFrontEndTests(TestCase):
    """
    An SBE 37 on a real pty, opened through our ``serial:`` endpoint.
    """

    timeout = 20

    async def open_serial(self, device: str) -> _Host:
        """
        Open C{device} with C{serial:}; close it when the test ends.
        """
        host = _Host()
        await connectProtocol(clientFromString(reactor, "serial:" + device), host)
        self.addCleanup(lambda: Deferred.fromCoroutine(_disconnect(host)))
        return host

    def pty(self, sbe37: SBE37Simulator, **kwargs: Any) -> PtySerialDevice:
        """
        A pty front end, closed when the test ends.
        """
        device = PtySerialDevice(sbe37, reactor, **kwargs)
        self.addCleanup(device.close)
        return device

    async def test_statusAndSamples(self) -> None:
        """
        Through ``serial:`` on the pty slave: wake, DS, and samples; the
        link points at the device while open and is removed on close.
        """
        sbe37 = SBE37Simulator(SimulatorSettings(time_scale=50.0), reactor=reactor)
        self.addCleanup(sbe37.stop)
        link = self.mktemp()
        device = self.pty(sbe37, link=link)
        path = device.open()
        self.assertTrue(path.startswith("/dev/"))
        self.assertEqual(os.readlink(link), path)
        host = await self.open_serial(path)
        self.assertEqual(await host.send(b"\r\n"), b"\r\nS>")
        status = await host.send(b"DS\r\n")
        self.assertIn(b"\r\nsample interval = 15 seconds\r\n", status)
        await host.send(b"INTERVAL=5\r\n")
        await host.send(b"STARTNOW\r\n")
        samples = await host.wait_for(b"\r\n", count=2)
        self.assertEqual(samples.count(b"#"), 2)
        await _disconnect(host)
        device.close()
        self.assertFalse(os.path.lexists(link))

    async def test_dropReopens(self) -> None:
        """
        Dropping the link hangs up the pty like an unplugged adapter: the
        host's port closes, a new pty appears, and the link follows it.
        """
        sbe37 = SBE37Simulator(SimulatorSettings(time_scale=50.0), reactor=reactor)
        self.addCleanup(sbe37.stop)
        link = self.mktemp()
        opened: list[Deferred[str]] = [Deferred(), Deferred()]
        device = self.pty(
            sbe37,
            link=link,
            reopen_after=0.05,
            on_open=lambda path: opened.pop(0).callback(path),
        )
        reopened = opened[1]
        device.open()
        host = await self.open_serial(link)
        await host.send(b"\r\n")
        sbe37.faults.drop_link()
        await host.lost
        path = await reopened
        self.assertEqual(os.readlink(link), path)
        again = await self.open_serial(link)
        self.assertTrue((await again.send(b"\r\n")).endswith(b"\r\nS>"))

    def test_linkMustBeSymlink(self) -> None:
        """
        A ``--pty-link`` path that is a real file is not replaced.
        """
        sbe37 = SBE37Simulator(reactor=reactor)
        self.addCleanup(sbe37.stop)
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("precious")
        device = self.pty(sbe37, link=path)
        self.assertRaises(FileExistsError, device.open)
        with open(path) as f:
            self.assertEqual(f.read(), "precious")


class _Twistd(ProcessProtocol):
    """
    A ``twistd`` child: fires L{bound} with the port its log names.
    """

    def __init__(self) -> None:
        self.output = b""
        self.bound: Deferred[int] = Deferred()
        self.ended: Deferred[BaseException] = Deferred()

    def outReceived(self, data: bytes) -> None:
        """
        Look for the bound port in the log.
        """
        self.output += data
        match = re.search(rb"listening on 127\.0\.0\.1:(\d+)", self.output)
        if match and not self.bound.called:
            self.bound.callback(int(match.group(1)))

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        """
        Fire L{ended} (and L{bound}, with the failure, if it never bound).
        """
        if not self.bound.called:
            self.bound.errback(reason)
        # The exception, not the Failure: a Failure would errback.
        self.ended.callback(reason.value)


class TwistdTests(TestCase):
    """
    ``twistd -n instrumentd simulate sbe37`` as a child process.
    """

    timeout = 60

    async def test_simulate(self) -> None:
        """
        The simulator logs its bound port, answers DS there, and ends on
        SIGTERM (twistd's usual way: re-raising the signal once stopped).
        """
        child = _Twistd()
        argv = [
            sys.executable, "-u", "-P", "-c",
            "import sys; sys.argv[0] = 'twistd'; "
            "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", "instrumentd", "simulate", "sbe37",
            "--listen", "tcp:0:interface=127.0.0.1",
            "--baud", "0", "--time-scale", "10", "--serial-number", "4711",
        ]  # fmt: skip
        process = reactor.spawnProcess(child, sys.executable, argv, env=os.environ)
        try:
            port = await child.bound
            host = _Host()
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
            await connectProtocol(endpoint, host)
            await host.send(b"\r\n")
            status = await host.send(b"DS\r\n")
            self.assertIn(b"SERIAL NO. 4711", status)
            await _disconnect(host)
        finally:
            with contextlib.suppress(ProcessExitedAlready):
                process.signalProcess(signal.SIGTERM)
        reason = await child.ended
        if isinstance(reason, ProcessTerminated):
            self.assertEqual(reason.signal, signal.SIGTERM, child.output)
        self.assertIn(b"Server Shut Down.", child.output)


class EchoFactoryTests(SynchronousTestCase):
    """
    Every connection an instrument's factory builds reaches that
    instrument.
    """

    def test_factory(self) -> None:
        """
        Two protocols from one factory share the instrument's line.
        """
        instrument = _Echo(reactor=Clock())
        factory: Factory = instrument.factory()
        first, second = factory.buildProtocol(None), factory.buildProtocol(None)
        assert first is not None and second is not None
        one, two = (
            StringTransportWithDisconnection(),
            StringTransportWithDisconnection(),
        )
        one.protocol, two.protocol = first, second
        first.makeConnection(one)
        second.makeConnection(two)
        first.dataReceived(b"hi")
        self.assertEqual((one.value(), two.value()), (b"hi", b"hi"))


class ModelOptionTests(SynchronousTestCase):
    """
    A model's own options (C{--option NAME=VALUE}): the variant to simulate.
    """

    def test_parsed(self) -> None:
        """
        C{--option} is repeatable and reaches the settings, names folded to
        lower case.
        """
        options = SimulateOptions()
        options.parseOptions(
            ["optode", "--option", "Enable_Text=yes", "-o", "interval=2"]
        )
        self.assertEqual(
            options.settings().options, {"enable_text": "yes", "interval": "2"}
        )

    def test_unknownRefused(self) -> None:
        """
        An option the model does not have is refused, listing the model's
        options.
        """
        options = SimulateOptions()
        error = self.assertRaises(
            usage.UsageError, options.parseOptions, ["sbe37", "--option", "colour=red"]
        )
        self.assertIn("sbe37 has no option 'colour'", str(error))

    def test_badValueRefused(self) -> None:
        """
        A value the model cannot take is refused when the options are
        parsed, naming it.
        """
        options = SimulateOptions()
        error = self.assertRaises(
            usage.UsageError, options.parseOptions, ["optode", "-o", "interval=fast"]
        )
        self.assertIn("interval='fast'", str(error))

    def test_notAssignment(self) -> None:
        """
        An option without C{=} is refused.
        """
        options = SimulateOptions()
        error = self.assertRaises(
            usage.UsageError, options.parseOptions, ["optode", "--option", "polled"]
        )
        self.assertIn("is not NAME=VALUE", str(error))
