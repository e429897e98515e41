"""
End-to-end tests of the SBE 37-SMP driver with real parts: the simulator
in this process on the real reactor, over loopback TCP or a pty serial
device, a real port agent process in front of it, and the driver reaching
the agent through L{PortAgentConnection}.

The simulator runs here rather than as a C{twistd} child so that the tests
inject faults (dropping the link) and look at its state directly.  Its
clock runs ten times faster than real time, so an INTERVAL of 5 s passes in
half a second.  Every wait is on an event (a driver event, a state), with
a limit; nothing sleeps or polls.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from twisted.trial.unittest import TestCase

from instrumentd.driver.particles import ntp_from_unix
from instrumentd.instruments.seabird.sbe37smp import SBE37Protocol
from instrumentd.instruments.seabird.sbe37smp.driver import WAKEUP
from instrumentd.instruments.seabird.sbe37smp.simulator import Mode, SBE37Simulator
from instrumentd.simulator import SimulatorSettings
from tests import drivere2e
from tests.agentsupport import reactor
from tests.drivere2e import start_chain, values

#: Instrument seconds per real second.
TIME_SCALE = 10.0


@dataclass
class Chain(drivere2e.Chain):
    """
    The SBE 37 chain, and whether the simulator slept when the driver
    connected.
    """

    was_asleep: bool = False

    @property
    def sbe37(self) -> SBE37Simulator:
        """
        The simulator.
        """
        assert isinstance(self.instrument, SBE37Simulator)
        return self.instrument


class _Base(TestCase):
    """
    Builds the chain for a test and takes it down afterwards.
    """

    timeout = 30

    async def chain(
        self,
        front: str = "tcp",
        *,
        baud: int = 0,
        options: dict[str, str] | None = None,
    ) -> Chain:
        """
        Start a simulator on C{front} (C{"tcp"} or C{"pty"}) with the model
        C{options}, a port agent in front of it and a driver through the
        agent, and wait until the driver has discovered the instrument.
        """
        sbe37 = SBE37Simulator(
            SimulatorSettings(time_scale=TIME_SCALE, baud=baud, options=options or {}),
            reactor=reactor,
        )
        asleep: list[bool] = []
        chain = await start_chain(
            self,
            sbe37,
            SBE37Protocol,
            front,
            before_connect=lambda: asleep.append(sbe37.mode is Mode.ASLEEP),
        )
        await chain.watcher.state("COMMAND")
        return Chain(sbe37, chain.agent, chain.driver, chain.watcher, asleep[0])


class CapabilityTests(_Base):
    """
    Every capability through the whole chain.
    """

    async def every_capability(self, chain: Chain) -> None:
        """
        Status, calibration, sample, get, set, startup values, clock sync,
        autosample; each checked against the simulator.
        """
        sbe37, driver, watcher = chain.sbe37, chain.driver, chain.watcher
        self.assertTrue(chain.was_asleep)
        self.assertIs(sbe37.mode, Mode.COMMAND)

        status = await chain.run("acquire_status")
        self.assertEqual(status["serial_number"], "2165")
        self.assertIs(status["logging"], False)
        await watcher.until(
            lambda: len(watcher.particles("ctdpf_status")) >= 1, "a status particle"
        )

        calibration = await chain.run("acquire_calibration")
        self.assertEqual(calibration["ta0"], sbe37.calibration.ta0)
        await watcher.until(
            lambda: len(watcher.particles("ctdpf_calibration")) >= 2,
            "calibration particles",
        )

        sample = await chain.run("acquire_sample")
        await watcher.count("ctdpf_sample", 1)
        [particle] = watcher.particles("ctdpf_sample")
        self.assertEqual(values(particle), sample)
        self.assertIsNotNone(particle.internal_timestamp)
        self.assertLess(abs(particle.port_timestamp - ntp_from_unix(time.time())), 5)

        everything = await driver.get_resource("ALL")
        self.assertEqual(everything["INTERVAL"], sbe37.setup.interval)
        self.assertEqual(everything["CG"], sbe37.calibration.cg)

        wanted = {
            "INTERVAL": 30,
            "NAVG": 2,
            "SAMPLENUM": 5,
            "TXREALTIME": False,
            "OUTPUTSAL": False,
            "OUTPUTSV": False,
            "STORETIME": False,
            "SYNCMODE": True,
            "SYNCWAIT": 60,
            "REFPRESS": 100.5,
        }
        self.assertEqual(await driver.set_resource(wanted), wanted)
        self.assertEqual(await driver.get_resource(list(wanted)), wanted)
        self.assertEqual(sbe37.setup.interval, 30)
        self.assertEqual(sbe37.samplenum, 5)
        self.assertTrue(sbe37.setup.syncmode)
        # The startup values put back what the driver needs.
        await driver.apply_startup_params()
        self.assertEqual(
            (sbe37.setup.interval, sbe37.setup.txrealtime, sbe37.setup.syncmode),
            (15, True, False),
        )
        await driver.set_resource({"INTERVAL": 5})

        synced = await chain.run("clock_sync")
        self.assertLess(abs(sbe37.clock.now() - time.time()), 2)
        self.assertTrue(synced.endswith("+00:00"))

        await chain.run("start_autosample")
        self.assertEqual(driver.get_resource_state(), "AUTOSAMPLE")
        self.assertTrue(sbe37.logging)
        await watcher.count("ctdpf_sample", 3)
        logging = await chain.run("acquire_status")
        self.assertIs(logging["logging"], True)
        await chain.run("stop_autosample")
        self.assertEqual(driver.get_resource_state(), "COMMAND")
        self.assertFalse(sbe37.logging)

    async def test_overTcp(self) -> None:
        """
        Simulator on loopback TCP, as behind a serial device server.
        """
        await self.every_capability(await self.chain("tcp"))

    async def test_overPty(self) -> None:
        """
        Simulator on a pty serial device (output paced at 115200 baud),
        opened by the agent as a serial port.
        """
        await self.every_capability(await self.chain("pty", baud=115200))


class VariantTests(_Base):
    """
    A firmware 3.0h instrument without a pressure sensor, through the whole
    chain.
    """

    async def test_firmware30NoPressure(self) -> None:
        """
        Discovered from 3.0h's dumps; the missing pressure sensor learnt
        from DC; the interval set and the clock synchronised with 3.0h's
        commands (C{SampleInterval=}, C{DateTime=}, which it takes where
        2.6's it would refuse); polled and logged samples (no C{#}) read
        without pressure.
        """
        chain = await self.chain(options={"firmware": "3.0h", "pressure_sensor": "no"})
        status = await chain.run("acquire_status")
        self.assertEqual(status["firmware_version"], "3.0h")
        self.assertEqual(status["reference_pressure"], 0.0)
        sample = await chain.run("acquire_sample")
        self.assertIsNone(sample["pressure"])
        self.assertIsNotNone(sample["sound_velocity"])
        changed = await chain.driver.set_resource({"INTERVAL": 5})
        self.assertEqual(changed, {"INTERVAL": 5})
        synced = await chain.run("clock_sync")
        self.assertRegex(str(synced), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
        await chain.run("start_autosample")
        await chain.watcher.count("ctdpf_sample", 3)
        logged = [values(p) for p in chain.watcher.particles("ctdpf_sample")]
        self.assertEqual([v["pressure"] for v in logged], [None] * len(logged))
        await chain.run("stop_autosample")


class AutosampleTests(_Base):
    """
    Autosample at the set interval.
    """

    async def test_particlesAtInterval(self) -> None:
        """
        With INTERVAL 5, sample particles come 5 instrument seconds apart
        (half a second apart at this time scale), each with its instrument
        time and the agent's timestamp.
        """
        chain = await self.chain()
        await chain.driver.set_resource({"INTERVAL": 5})
        await chain.run("start_autosample")
        await chain.watcher.count("ctdpf_sample", 5)
        samples = chain.watcher.particles("ctdpf_sample")[:5]
        internal = [p.internal_timestamp for p in samples]
        self.assertEqual([b - a for a, b in itertools.pairwise(internal)], [5.0] * 4)
        ports = [p.port_timestamp for p in samples]
        self.assertEqual(ports, sorted(ports))
        # Four intervals cannot pass in less than four half seconds (less
        # the timer's and the line's jitter).
        self.assertGreater(ports[-1] - ports[0], 1.8)
        await chain.run("stop_autosample")


class LinkTests(_Base):
    """
    The simulator dropping the link.
    """

    async def drop_and_return(self, chain: Chain) -> None:
        """
        Logging, the link drops: the driver goes to INSTRUMENT_DISCONNECTED;
        the agent reconnects; the driver rediscovers AUTOSAMPLE by itself
        and samples flow again.
        """
        watcher = chain.watcher
        await chain.driver.set_resource({"INTERVAL": 5})
        await chain.run("start_autosample")
        await watcher.count("ctdpf_sample", 1)
        chain.sbe37.faults.drop_link()
        await watcher.state("INSTRUMENT_DISCONNECTED")
        await watcher.state("AUTOSAMPLE")
        before = len(watcher.particles("ctdpf_sample"))
        await watcher.count("ctdpf_sample", before + 2)
        self.assertEqual(
            watcher.connection_states()[-2:], ["INSTRUMENT_DISCONNECTED", "CONNECTED"]
        )
        await chain.run("stop_autosample")
        self.assertFalse(chain.sbe37.logging)

    async def test_tcpDrop(self) -> None:
        """
        Over TCP: the simulator closes the connection, the agent reconnects.
        """
        await self.drop_and_return(await self.chain("tcp"))

    async def test_ptyHangUp(self) -> None:
        """
        Over a pty: the device hangs up like an unplugged adapter and comes
        back at the same path, which the agent opens again.
        """
        await self.drop_and_return(await self.chain("pty"))


class DirectAccessTests(_Base):
    """
    Direct access through the chain.
    """

    async def test_intervalRestored(self) -> None:
        """
        An operator's INTERVAL=30 reaches the instrument (its echo and
        prompt come back as direct-access events); leaving direct access
        restores the interval.
        """
        chain = await self.chain()
        watcher = chain.watcher
        await chain.driver.start_direct()
        await chain.driver.execute_direct(b"INTERVAL=30\r\n")
        await watcher.until(
            lambda: b"INTERVAL=30\r\n\r\nS>" in watcher.direct_access_output(),
            "the echo and prompt",
        )
        self.assertEqual(chain.sbe37.setup.interval, 30)
        self.assertEqual(await chain.driver.stop_direct(), "COMMAND")
        self.assertEqual(chain.sbe37.setup.interval, 15)
        self.assertEqual(
            await chain.driver.get_resource(["INTERVAL"]), {"INTERVAL": 15}
        )


class WakeTests(_Base):
    """
    A sleeping instrument woken before a command.
    """

    async def test_wokenBeforeCommands(self) -> None:
        """
        The simulator starts asleep and is woken for the first command; put
        to sleep again by an operator (QS), it is woken when direct access
        ends, before the driver's next command.
        """
        chain = await self.chain()
        self.assertTrue(chain.was_asleep)
        protocol = chain.driver.protocol
        assert protocol is not None
        self.assertGreaterEqual(protocol.engine.wake_attempts, 1)
        await chain.driver.start_direct()
        await chain.driver.execute_direct(b"QS\r\n")
        await chain.watcher.until(
            lambda: chain.sbe37.mode is Mode.ASLEEP, "the instrument to sleep"
        )
        woken = protocol.engine.wake_attempts
        self.assertEqual(await chain.driver.stop_direct(), "COMMAND")
        self.assertGreater(protocol.engine.wake_attempts, woken)
        self.assertIs(chain.sbe37.mode, Mode.COMMAND)
        status = await chain.run("acquire_status")
        self.assertIs(status["logging"], False)

    async def test_lateWakeAnswerNotTakenForStatus(self) -> None:
        """
        An instrument whose every answer arrives later than the wake-up's
        timeout (a starved simulator process, a slow link): the first try's
        prompt arrives after the second try went, and ends that try; the
        second try's prompt then arrives after C{DS} went.  Discovery
        passes that prompt over and reads C{DS}'s own reply, rather than
        failing with "no ctdpf_status record" on every retry.
        """
        delay = WAKEUP.timeout + 0.5
        sbe37 = SBE37Simulator(
            SimulatorSettings(time_scale=TIME_SCALE), reactor=reactor
        )
        chain = await start_chain(
            self,
            sbe37,
            SBE37Protocol,
            "tcp",
            before_connect=lambda: sbe37.faults.answer_slowly(delay),
        )
        driver = chain.driver
        # Each exchange takes the delay: longer than the usual wait.
        await chain.watcher.conditions.when(
            lambda: driver.get_resource_state() == "COMMAND", "state COMMAND", 60
        )
        protocol = driver.protocol
        assert protocol is not None
        # The late prompt was there to be mistaken: more than one try.
        self.assertGreaterEqual(protocol.engine.wake_attempts, 2)

    test_lateWakeAnswerNotTakenForStatus.timeout = 90  # type: ignore[attr-defined]
