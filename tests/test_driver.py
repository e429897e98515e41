"""
Tests for L{instrumentd.driver.driver}: the driver API end to end, over a
toy connection to the toy instrument.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from instrumentd.driver.driver import InstrumentDriver
from instrumentd.driver.errors import (
    InstrumentCommandError,
    InstrumentConnectionError,
    InstrumentError,
    InstrumentParameterError,
    InstrumentStateError,
)
from instrumentd.driver.events import (
    ConnectionEvent,
    DirectAccessEvent,
    DriverEvent,
    SampleEvent,
)
from instrumentd.interfaces import IInstrumentDriver, LinkState
from tests.toyinstrument import ToyConnection, ToyLine, ToyProtocol


class Bench:
    """
    A driver for the toy instrument, with its events collected.
    """

    def __init__(self) -> None:
        self.line = ToyLine()
        self.toy = self.line.toy
        self.connection = ToyConnection(self.line)
        self.driver = InstrumentDriver(
            self.connection, ToyProtocol, clock=self.line.clock
        )
        self.seen: list[DriverEvent] = []
        self.driver.events.subscribe(self.seen.append)

    def flush(self) -> None:
        self.line.flush()

    def connected(self) -> None:
        self.driver.configure({"method": "toy"})
        self.driver.connect()

    def in_command(self) -> None:
        self.connected()
        result = self.driver.discover_state()
        self.flush()
        assert self.driver.get_resource_state() == "COMMAND", result


class ChainingTests(SynchronousTestCase):
    """
    A driver may be called again from a callback of a Deferred it returned.
    """

    def test_setFromSetCallback(self) -> None:
        """
        A set chained from the previous set's result runs, rather than
        failing because a machine was still inside the first one's input.
        """
        bench = Bench()
        bench.in_command()
        first = bench.driver.set_resource({"INTERVAL": 9})
        second = first.addCallback(
            lambda _: bench.driver.set_resource({"INTERVAL": 11})
        )
        for _ in range(20):
            bench.flush()
            bench.line.clock.advance(0.1)
        self.assertEqual(self.successResultOf(second), {"INTERVAL": 11})

    def test_fromEventListener(self) -> None:
        """
        A listener of an event the protocol publishes while the instrument's
        bytes are being delivered (a sample) may call the driver: the call
        waits until the machines' inputs are over, then runs.
        """
        bench = Bench()
        bench.in_command()
        results: list[Deferred[object]] = []

        def listener(event: DriverEvent) -> None:
            if isinstance(event, SampleEvent):
                results.append(bench.driver.execute_resource("identify"))

        bench.driver.events.subscribe(listener)
        bench.toy.emit(b"#T=1.0000 P=2.0000\r\n")
        bench.flush()
        [result] = results
        self.assertEqual(self.successResultOf(result), "TOY-1 SN 1234")

    def test_failuresStillFail(self) -> None:
        """
        Results handed over after the machines settle keep their failures.
        """
        bench = Bench()
        bench.in_command()
        self.failureResultOf(
            bench.driver.set_resource({"NO_SUCH_PARAMETER": 1}), InstrumentError
        )


class LifecycleTests(SynchronousTestCase):
    """
    From configuration to disconnection.
    """

    def test_interface(self) -> None:
        """
        The driver provides L{IInstrumentDriver}.
        """
        verifyObject(IInstrumentDriver, Bench().driver)

    def test_resourceState(self) -> None:
        """
        The resource state is the connection state until CONNECTED, then
        the protocol state.
        """
        bench = Bench()
        driver = bench.driver
        self.assertEqual(driver.get_resource_state(), "UNCONFIGURED")
        driver.configure({"method": "toy"})
        self.assertEqual(driver.get_resource_state(), "DISCONNECTED")
        self.successResultOf(driver.connect())
        self.assertEqual(driver.connection_state, "CONNECTED")
        self.assertEqual(driver.get_resource_state(), "UNKNOWN")
        result = driver.discover_state()
        bench.flush()
        self.assertEqual(self.successResultOf(result), "COMMAND")
        self.assertEqual(driver.get_resource_state(), "COMMAND")
        self.successResultOf(driver.disconnect())
        self.assertEqual(driver.get_resource_state(), "DISCONNECTED")
        driver.initialize()
        self.assertEqual(driver.get_resource_state(), "UNCONFIGURED")

    def test_badConfiguration(self) -> None:
        """
        A bad connection configuration raises the connection's error.
        """
        bench = Bench()
        self.assertRaises(
            InstrumentConnectionError, bench.driver.configure, {"method": "telepathy"}
        )
        self.assertEqual(bench.driver.get_resource_state(), "UNCONFIGURED")

    def test_refusedBeforeConnected(self) -> None:
        """
        Requests for the instrument before CONNECTED fail with an
        L{InstrumentStateError} naming the connection state and what is
        valid there; synchronous inputs raise it.
        """
        bench = Bench()
        for request in [
            bench.driver.discover_state,
            bench.driver.get_resource,
            lambda: bench.driver.execute_resource("acquire_status"),
            bench.driver.start_direct,
            bench.driver.connect,
        ]:
            error = self.failureResultOf(request(), InstrumentStateError).value
            self.assertEqual(error.state, "UNCONFIGURED")
            self.assertIn("configure", error.valid)
        bench.connected()
        with self.assertRaises(InstrumentStateError) as caught:
            bench.driver.initialize()
        self.assertEqual(caught.exception.state, "CONNECTED")

    def test_refusedByProtocol(self) -> None:
        """
        While CONNECTED, a command not valid in the protocol state fails
        naming the protocol state.
        """
        bench = Bench()
        bench.connected()
        error = self.failureResultOf(
            bench.driver.set_resource({"INTERVAL": 3}), InstrumentStateError
        ).value
        self.assertEqual((error.state, error.input), ("UNKNOWN", "set"))
        self.failureResultOf(
            bench.driver.execute_resource("fly"), InstrumentCommandError
        )

    def test_capabilities(self) -> None:
        """
        The capabilities are the commands and parameters valid now, and
        the connection inputs valid now.
        """
        bench = Bench()
        self.assertEqual(
            bench.driver.get_resource_capabilities(),
            {
                "commands": [],
                "parameters": [],
                "connection": ["configure", "disconnect", "initialize"],
            },
        )
        bench.in_command()
        capabilities = bench.driver.get_resource_capabilities()
        self.assertIn("acquire_status", capabilities["commands"])
        self.assertEqual(
            capabilities["parameters"], ["INTERVAL", "UNITS", "ECHO", "SERIAL"]
        )

    def test_linkDownAndBack(self) -> None:
        """
        The instrument link going down is a connection event and a new
        protocol (UNKNOWN) when it comes back.
        """
        bench = Bench()
        bench.in_command()
        bench.connection.set_link(LinkState(agent=True, commands=True))
        self.assertEqual(bench.driver.get_resource_state(), "INSTRUMENT_DISCONNECTED")
        bench.connection.set_link(LinkState(agent=True, commands=True, instrument=True))
        self.assertEqual(bench.driver.get_resource_state(), "UNKNOWN")
        reasons = [e.reason for e in bench.seen if isinstance(e, ConnectionEvent)]
        self.assertIn("instrument link down", reasons)


class ResourceTests(SynchronousTestCase):
    """
    Parameters and commands through the driver.
    """

    def test_getSetExecute(self) -> None:
        """
        get, set and execute reach the instrument.
        """
        bench = Bench()
        bench.in_command()
        values = bench.driver.get_resource("ALL")
        self.assertEqual(self.successResultOf(values)["INTERVAL"], 5)
        one = bench.driver.get_resource(["UNITS"])
        self.assertEqual(self.successResultOf(one), {"UNITS": "C"})
        changed = bench.driver.set_resource({"INTERVAL": 9})
        bench.flush()
        self.assertEqual(self.successResultOf(changed), {"INTERVAL": 9})
        self.assertEqual(bench.toy.settings["interval"], "9")
        sample = bench.driver.execute_resource("acquire_sample")
        bench.flush()
        self.assertEqual(self.successResultOf(sample)["temperature"], 21.5)
        self.assertEqual(bench.driver.get_cached_config()["INTERVAL"], 9)

    def test_directAccess(self) -> None:
        """
        Direct access through the driver: passthrough, events, restore.
        """
        bench = Bench()
        bench.in_command()
        self.successResultOf(bench.driver.start_direct())
        bench.driver.execute_direct(b"set units=F\r\n")
        bench.flush()
        self.assertTrue(any(isinstance(e, DirectAccessEvent) for e in bench.seen))
        result = bench.driver.stop_direct()
        bench.flush()
        self.assertEqual(self.successResultOf(result), "COMMAND")
        self.assertEqual(bench.toy.settings["units"], "C")


class ConfigurationTests(SynchronousTestCase):
    """
    The startup configuration and metadata.
    """

    def test_initParams(self) -> None:
        """
        Startup values given before connecting are applied when the
        instrument is first found in command mode; apply_startup_params
        applies them again.
        """
        bench = Bench()
        bench.driver.set_init_params({"parameters": {"INTERVAL": 15}})
        bench.in_command()
        self.assertEqual(bench.toy.settings["interval"], "15")
        bench.toy.commands.clear()
        bench.toy.settings["interval"] = "2"
        result = bench.driver.apply_startup_params()
        bench.flush()
        self.successResultOf(result)
        self.assertEqual(bench.toy.settings["interval"], "15")

    def test_startupOnceNotPerLink(self) -> None:
        """
        Startup values are applied when the instrument is first found in
        command mode, not again each time the link comes back (an
        operator's change since then stands); a new startup configuration
        is applied on the next discovery, and a link lost before the first
        application leaves them pending.
        """
        down = LinkState(agent=True, commands=True)
        up = LinkState(agent=True, commands=True, instrument=True)
        bench = Bench()
        bench.driver.set_init_params({"parameters": {"INTERVAL": 15}})
        bench.connected()
        bench.connection.set_link(down)  # lost before command mode
        bench.connection.set_link(up)
        result = bench.driver.discover_state()
        bench.flush()
        self.successResultOf(result)
        self.assertEqual(bench.toy.settings["interval"], "15")

        bench.toy.settings["interval"] = "7"  # the operator's change
        bench.connection.set_link(down)
        bench.connection.set_link(up)
        result = bench.driver.discover_state()
        bench.flush()
        self.successResultOf(result)
        self.assertEqual(bench.toy.settings["interval"], "7")

        bench.driver.set_init_params({"parameters": {"INTERVAL": 20}})
        bench.connection.set_link(down)
        bench.connection.set_link(up)
        result = bench.driver.discover_state()
        bench.flush()
        self.successResultOf(result)
        self.assertEqual(bench.toy.settings["interval"], "20")

    def test_initParamsWhileConnected(self) -> None:
        """
        A startup configuration given while connected reaches the running
        protocol (its scheduled jobs start).
        """
        bench = Bench()
        bench.in_command()
        bench.driver.set_init_params(
            {"scheduler": {"acquire_status": {"interval": 60}}}
        )
        protocol = bench.driver.protocol
        assert protocol is not None
        self.assertEqual(
            [job.name for job in protocol.scheduler.jobs], ["acquire_status"]
        )

    def test_badInitParams(self) -> None:
        """
        A bad startup configuration is refused and nothing is kept.
        """
        bench = Bench()
        for config in [
            {"parameters": {"SERIAL": "1"}},
            {"scheduler": {"dance": {"interval": 1}}},
        ]:
            self.assertRaises(
                InstrumentParameterError, bench.driver.set_init_params, config
            )
        bench.in_command()
        protocol = bench.driver.protocol
        assert protocol is not None
        self.assertEqual(protocol.scheduler.jobs, [])

    def test_metadata(self) -> None:
        """
        The metadata is JSON-ready, with driver, commands and parameters,
        whether or not the instrument is connected.
        """
        bench = Bench()
        metadata: Any = bench.driver.get_config_metadata()
        self.assertEqual(
            sorted(metadata), ["commands", "driver", "parameters", "streams"]
        )
        json.dumps(metadata)
        self.assertIn("acquire_status", metadata["commands"])
        self.assertEqual(metadata["parameters"]["INTERVAL"]["value"]["units"], "s")
        bench.in_command()
        self.assertEqual(bench.driver.get_config_metadata(), metadata)

    def test_oneDetachedProtocol(self) -> None:
        """
        While no protocol runs, startup configurations are checked and
        metadata described by one protocol, made once, whatever an earlier
        check left in it: a bad configuration after a good one is refused,
        a good one after a bad one taken.  Once a protocol runs it answers,
        and the detached one is let go.
        """
        made: list[ToyProtocol] = []

        class Counted(ToyProtocol):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                made.append(self)

        bench = Bench()
        driver = InstrumentDriver(bench.connection, Counted, clock=bench.line.clock)
        metadata = driver.get_config_metadata()
        driver.set_init_params({"parameters": {"INTERVAL": 30}})
        self.assertRaises(
            InstrumentParameterError,
            driver.set_init_params,
            {"parameters": {"SERIAL": "1"}},
        )
        driver.set_init_params({"scheduler": {"acquire_status": {"interval": 60}}})
        self.assertEqual(driver.get_config_metadata(), metadata)
        self.assertEqual(len(made), 1)
        driver.configure({"method": "toy"})
        driver.connect()
        self.assertEqual(len(made), 2)
        self.assertIs(driver.protocol, made[1])
        self.assertIsNone(driver._detached_protocol)
        self.assertEqual(driver.get_config_metadata(), metadata)
        self.assertEqual(len(made), 2)

    def test_acceptedOnce(self) -> None:
        """
        A startup configuration its protocol class has accepted is not
        checked again by another driver of the class (no protocol is built
        for it: a station has thousands of drivers, each configured alike),
        and is applied all the same; a bad one is refused every time, and a
        different one is checked.
        """
        made: list[ToyProtocol] = []

        class Counted(ToyProtocol):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                made.append(self)

        def driver() -> tuple[Bench, InstrumentDriver]:
            bench = Bench()
            return bench, InstrumentDriver(
                bench.connection, Counted, clock=bench.line.clock
            )

        config = {"parameters": {"INTERVAL": 30}}
        first = driver()[1]
        first.set_init_params(config)
        self.assertEqual(len(made), 1)
        _bench, second = driver()
        second.set_init_params({"parameters": {"INTERVAL": 30}})
        self.assertEqual(len(made), 1)
        for _ in range(2):
            self.assertRaises(
                InstrumentParameterError,
                second.set_init_params,
                {"parameters": {"SERIAL": "1"}},
            )
        self.assertEqual(len(made), 2)
        second.set_init_params({"parameters": {"INTERVAL": 45}})
        second.set_init_params(config)
        self.assertEqual(len(made), 2)
        second.configure({"method": "toy"})
        second.connect()
        self.assertEqual(len(made), 3)
        self.assertEqual(made[2].parameters.init_values(), {"INTERVAL": 30})

    def test_cachedConfigBeforeConnect(self) -> None:
        """
        Before any protocol ran there is no cached configuration; after
        disconnecting, the last one is kept.
        """
        bench = Bench()
        self.assertEqual(bench.driver.get_cached_config(), {})
        bench.in_command()
        bench.driver.disconnect()
        self.assertEqual(bench.driver.get_cached_config()["SERIAL"], "1234")


class PortAgentConnectionTests(SynchronousTestCase):
    """
    The driver over the real port-agent connection, attached to an
    in-memory port agent: the two sides agree on the contract.
    """

    def setUp(self) -> None:
        from instrumentd.connection import PortAgentConnection
        from instrumentd.testing import FakePortAgent

        self.agent = FakePortAgent()
        self.connection = PortAgentConnection(
            reactor=self.agent.clock, endpoint_for=self.agent.endpoint_for
        )
        self.driver = InstrumentDriver(
            self.connection, ToyProtocol, clock=self.agent.clock
        )
        self.seen: list[DriverEvent] = []
        self.driver.events.subscribe(self.seen.append)
        self.driver.configure(
            {
                "method": "port_agent",
                "host": "127.0.0.1",
                "data_port": self.agent.data_port,
                "command_port": self.agent.command_port,
            }
        )

    def tearDown(self) -> None:
        self.driver.disconnect()

    def test_discoverAndSample(self) -> None:
        """
        Commands go out through the agent; replies and samples come back
        with the agent's timestamps.
        """
        self.successResultOf(self.driver.connect())
        self.assertEqual(self.driver.get_resource_state(), "UNKNOWN")
        result = self.driver.discover_state()
        self.assertEqual(self.agent.received, b"\r\n")
        self.agent.deliver(b"T>")
        self.assertEqual(self.agent.received, b"\r\nds\r\n")
        dump = (
            b"TOY-1 SN 77 status\r\ninterval = 5\r\nunits = C\r\n"
            b"echo = yes\r\nlogging = no\r\nT>"
        )
        self.agent.deliver(dump)
        self.agent.deliver(dump)
        self.assertEqual(self.successResultOf(result), "COMMAND")
        self.agent.deliver(b"#T=3.2500 P=1.0000\r\n", at=1_700_000_000.0)
        [sample] = [e for e in self.seen if e.event_type == "SAMPLE"]
        particle: Any = sample.particle
        self.assertEqual(particle.value("temperature"), 3.25)
        self.assertEqual(particle.port_timestamp, 1_700_000_000.0 + 2208988800)

    def test_instrumentLinkFollowed(self) -> None:
        """
        The agent's instrument link state drives the connection machine.
        """
        self.agent.instrument_connected = False
        self.successResultOf(self.driver.connect())
        self.assertEqual(self.driver.get_resource_state(), "INSTRUMENT_DISCONNECTED")
        self.agent.set_instrument_connected(True)
        self.assertEqual(self.driver.get_resource_state(), "UNKNOWN")
        self.agent.set_instrument_connected(False)
        self.assertEqual(self.driver.get_resource_state(), "INSTRUMENT_DISCONNECTED")
