"""
End-to-end tests of the Aanderaa optode driver with real parts: the optode
simulator in this process on the real reactor, over loopback TCP or a pty
serial device, a real port agent process in front of it, and the driver
reaching the agent through L{PortAgentConnection} (L{tests.drivere2e}).

The simulator's clock runs ten times faster than real time, so a 2 s
Interval passes in a fifth of a second.  Every wait is on an event.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from instrumentd.instruments.aanderaa.optode import OptodeProtocol
from instrumentd.instruments.aanderaa.optode.simulator import OptodeSimulator
from instrumentd.simulator import SimulatorSettings
from tests.agentsupport import reactor
from tests.drivere2e import Chain, start_chain, values

TIME_SCALE = 10.0


class _Base(TestCase):
    timeout = 40

    async def chain(
        self, front: str = "tcp", until: str = "COMMAND", **options: str
    ) -> Chain:
        """
        An optode on C{front}, an agent and the driver, discovered.
        """
        optode = OptodeSimulator(
            SimulatorSettings(time_scale=TIME_SCALE, options=options),
            reactor=reactor,
        )
        chain = await start_chain(self, optode, OptodeProtocol, front)
        await chain.watcher.state(until)
        return chain


class CapabilityTests(_Base):
    """
    Every capability through the whole chain.
    """

    async def every_capability(self, chain: Chain) -> None:
        """
        Status, a polled sample, get, set (with the passkey), interval
        sampling started and stopped; each checked against the simulator.
        """
        optode, driver, watcher = chain.instrument, chain.driver, chain.watcher
        assert isinstance(optode, OptodeSimulator)
        status = await chain.run("acquire_status")
        self.assertEqual(status["serial_number"], 379.0)
        sample = await chain.run("acquire_sample")
        await watcher.until(
            lambda: values(watcher.particles("dosta_sample")[-1]) == sample,
            "the polled sample's particle",
        )
        self.assertEqual(await driver.get_resource(["INTERVAL"]), {"INTERVAL": 5.0})
        wanted = {"INTERVAL": 2.0, "ENABLE_POLLED_MODE": False, "SALINITY": 34.5}
        self.assertEqual(await driver.set_resource(wanted), wanted)
        self.assertEqual(optode.saved["Interval"], 2.0)
        self.assertEqual(optode.values["Salinity"], 34.5)
        await chain.run("start_autosample")
        self.assertTrue(optode.sampling)
        before = len(watcher.particles("dosta_sample"))
        await watcher.count("dosta_sample", before + 3)
        await chain.run("stop_autosample")
        self.assertFalse(optode.sampling)
        self.assertEqual(driver.get_resource_state(), "COMMAND")

    async def test_overTcp(self) -> None:
        """
        Simulator on loopback TCP, as behind a serial device server.
        """
        await self.every_capability(await self.chain("tcp", enable_polled_mode="yes"))

    async def test_overPty(self) -> None:
        """
        Simulator on a pty serial device, opened by the agent as a serial
        port.
        """
        await self.every_capability(await self.chain("pty", enable_polled_mode="yes"))


class LinkTests(_Base):
    """
    The link dropping while the optode samples.
    """

    async def test_dropAndReturn(self) -> None:
        """
        The link drops: the driver goes to INSTRUMENT_DISCONNECTED; the agent
        reconnects; the driver finds the sensor sampling by itself and
        samples flow again.
        """
        chain = await self.chain("pty", "AUTOSAMPLE", interval="2")
        watcher = chain.watcher
        chain.instrument.faults.drop_link()
        await watcher.state("INSTRUMENT_DISCONNECTED")
        await watcher.state("AUTOSAMPLE")
        before = len(watcher.particles("dosta_sample"))
        await watcher.count("dosta_sample", before + 2)


class WakeTests(_Base):
    """
    A sleeping sensor, woken through the chain.
    """

    async def test_asleepWithoutIndicator(self) -> None:
        """
        A sensor whose receiver slept (and says nothing when woken) is woken
        and answers.
        """
        chain = await self.chain(
            "tcp", enable_polled_mode="yes", enable_comm_indicator="no"
        )
        optode = chain.instrument
        assert isinstance(optode, OptodeSimulator)
        optode.fall_asleep()
        status = await chain.run("acquire_status")
        self.assertEqual(status["mode"], "Smart Sensor Terminal")
        self.assertTrue(optode.awake)


class DirectAccessTests(_Base):
    """
    Direct access through the chain.
    """

    async def test_intervalRestored(self) -> None:
        """
        An operator's Interval change reaches the sensor (its replies come
        back as direct-access events); leaving direct access sets it back.
        """
        chain = await self.chain("tcp", enable_polled_mode="yes")
        optode, watcher = chain.instrument, chain.watcher
        assert isinstance(optode, OptodeSimulator)
        await chain.driver.start_direct()
        await chain.driver.execute_direct(b"Set Passkey(1)\r\nSet Interval(60)\r\n")
        await watcher.until(
            lambda: watcher.direct_access_output().count(b"#\r\n") >= 2,
            "two acknowledgements",
        )
        self.assertEqual(optode.values["Interval"], 60.0)
        self.assertEqual(await chain.driver.stop_direct(), "COMMAND")
        self.assertEqual(optode.values["Interval"], 5.0)
