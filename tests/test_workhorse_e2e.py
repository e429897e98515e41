"""
End-to-end tests of the Workhorse driver with real parts: the simulator in
this process on the real reactor, over loopback TCP or a pty serial device,
a real port agent process in front of it, and the driver reaching the agent
through L{PortAgentConnection}.

Over TCP the agent cannot send a break (it says so), and the driver falls
back to the soft break C{===}; over a pty the agent's break reaches the
simulator as a break (L{instrumentd.endpoints.serial.PTY_BREAK_MARK}).  The
simulator's clock runs ten times faster than real time.  Every wait is on an
event, with a limit.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.trial.unittest import TestCase

from instrumentd.driver.events import DirectAccessEvent
from instrumentd.instruments.teledyne.workhorse.driver import WorkhorseProtocol
from instrumentd.instruments.teledyne.workhorse.simulator import (
    Mode,
    WorkhorseSimulator,
)
from instrumentd.simulator import SimulatorSettings
from tests.agentsupport import reactor
from tests.drivere2e import Chain as BaseChain
from tests.drivere2e import start_chain, values

TIME_SCALE = 10.0


class Chain(BaseChain):
    """
    The Workhorse chain.
    """

    @property
    def adcp(self) -> WorkhorseSimulator:
        assert isinstance(self.instrument, WorkhorseSimulator)
        return self.instrument

    def ensembles(self) -> list[Any]:
        return self.watcher.particles("adcp_velocity_beam")


class _Base(TestCase):
    timeout = 60

    async def chain(
        self, front: str = "tcp", *, baud: int = 0, awake: bool = False
    ) -> Chain:
        """
        The simulator on C{front}, an agent, the driver; wait for COMMAND.
        """
        adcp = WorkhorseSimulator(
            SimulatorSettings(time_scale=TIME_SCALE, baud=baud),
            reactor=reactor,
            awake=awake,
        )
        chain = await start_chain(self, adcp, WorkhorseProtocol, front)
        await chain.watcher.state("COMMAND")
        return Chain(chain.instrument, chain.agent, chain.driver, chain.watcher)


class CapabilityTests(_Base):
    """
    Every capability through the whole chain.
    """

    async def every_capability(self, chain: Chain) -> None:
        adcp, driver, watcher = chain.adcp, chain.driver, chain.watcher
        # It was asleep: woken by a break (or ===), startup values applied.
        self.assertGreaterEqual(adcp.breaks, 1)
        self.assertEqual(adcp.setup["WN"], "100")

        status = await chain.run("acquire_status")
        self.assertEqual(status["serial_number"], adcp.serial_number)
        await watcher.until(
            lambda: len(watcher.particles("adcp_system_configuration")) == 1, "PS0"
        )
        tests = await chain.run("run_test_200")
        self.assertEqual(tests["transmit_test"], "0 ... PASS")

        sample = await chain.run("acquire_sample")
        await watcher.until(lambda: len(chain.ensembles()) == 1, "an ensemble")
        [particle] = chain.ensembles()
        self.assertEqual(values(particle), sample)
        self.assertEqual(len(sample["beam_3_velocity"]), 100)
        self.assertEqual(adcp.setup["CF"], "11110")

        wanted = {"WN": 40, "EA": -500, "EX": "00101", "TE": "00:00:02.00"}
        self.assertEqual(await driver.set_resource(wanted), wanted)
        self.assertEqual(await driver.get_resource(list(wanted)), wanted)
        self.assertEqual(adcp.setup["EA"], "-00500")

        synced = await chain.run("clock_sync")
        self.assertTrue(synced.endswith("+00:00"))
        self.assertLess(abs(adcp.clock.now() - time.time()), 2)

        await chain.run("start_autosample")
        self.assertIs(adcp.mode, Mode.PINGING)
        await watcher.until(lambda: len(chain.ensembles()) >= 3, "3 ensembles")
        await chain.run("stop_autosample")
        self.assertIs(adcp.mode, Mode.COMMAND)
        self.assertEqual(driver.get_resource_state(), "COMMAND")
        protocol = driver.protocol
        assert isinstance(protocol, WorkhorseProtocol)
        self.assertEqual(protocol.bad_ensembles, 0)

    async def test_overTcp(self) -> None:
        """
        Over TCP: the agent refuses breaks, the driver sends C{===}.
        """
        chain = await self.chain("tcp")
        await self.every_capability(chain)
        protocol = chain.driver.protocol
        assert isinstance(protocol, WorkhorseProtocol)
        self.assertTrue(protocol.engine.break_refused)
        self.assertEqual(chain.adcp.line.breaks_received, 0)

    async def test_overPty(self) -> None:
        """
        Over a pty (115200 baud): real breaks through the agent.
        """
        chain = await self.chain("pty", baud=115200)
        await self.every_capability(chain)
        protocol = chain.driver.protocol
        assert isinstance(protocol, WorkhorseProtocol)
        self.assertFalse(protocol.engine.break_refused)
        self.assertGreaterEqual(chain.adcp.line.breaks_received, 2)


class WakeTests(_Base):
    """
    A sleeping instrument woken by a serial break.
    """

    async def test_breakWakesSleeper(self) -> None:
        """
        Put to sleep with CZ in direct access, it is woken by the agent's
        break when direct access ends, and answers.
        """
        chain = await self.chain("pty")
        breaks = chain.adcp.line.breaks_received
        await chain.driver.start_direct()
        await chain.driver.execute_direct(b"CZ\r\n")
        await chain.watcher.until(lambda: chain.adcp.mode is Mode.ASLEEP, "sleep")
        self.assertEqual(await chain.driver.stop_direct(), "COMMAND")
        self.assertGreater(chain.adcp.line.breaks_received, breaks)
        status = await chain.run("acquire_status")
        self.assertEqual(status["frequency"], 76800)


class LinkTests(_Base):
    """
    The link drops while pinging and comes back.
    """

    async def drop_and_return(self, chain: Chain) -> None:
        watcher = chain.watcher
        await chain.driver.set_resource({"TE": "00:00:02.00", "WN": 20})
        await chain.run("start_autosample")
        await watcher.until(lambda: len(chain.ensembles()) >= 1, "an ensemble")
        breaks = chain.adcp.breaks
        chain.adcp.faults.drop_link()
        await watcher.state("INSTRUMENT_DISCONNECTED")
        await watcher.state("AUTOSAMPLE")
        before = len(chain.ensembles())
        await watcher.until(lambda: len(chain.ensembles()) >= before + 2, "more")
        # Found pinging by its ensembles: no break was needed.
        self.assertEqual(chain.adcp.breaks, breaks)
        await chain.run("stop_autosample")
        self.assertIs(chain.adcp.mode, Mode.COMMAND)

    async def test_tcpDrop(self) -> None:
        """
        Over TCP.
        """
        await self.drop_and_return(await self.chain("tcp"))

    async def test_ptyHangUp(self) -> None:
        """
        Over a pty that hangs up and comes back.
        """
        await self.drop_and_return(await self.chain("pty"))


class DirectAccessTests(_Base):
    """
    Direct access through the chain.
    """

    async def test_parameterRestored(self) -> None:
        """
        An operator's WN60 reaches the instrument (echo and prompt come back
        as direct-access events); leaving direct access restores WN.
        """
        chain = await self.chain("tcp", awake=True)
        watcher = chain.watcher
        await chain.driver.start_direct()
        await chain.driver.execute_direct(b"WN60\r\n")
        await watcher.until(
            lambda: (
                b"WN60\r\n>"
                in b"".join(
                    e.data for e in watcher.seen if isinstance(e, DirectAccessEvent)
                )
            ),
            "the echo and prompt",
        )
        self.assertEqual(chain.adcp.setup["WN"], "060")
        self.assertEqual(await chain.driver.stop_direct(), "COMMAND")
        self.assertEqual(chain.adcp.setup["WN"], "100")
        self.assertEqual(await chain.driver.get_resource(["WN"]), {"WN": 100})
