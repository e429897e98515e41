"""
Tests for L{instrumentd.connection}: every configuration key's checks, the
connection's lifecycle in memory (a L{FakePortAgent} and a fake launcher),
and the real thing: agents launched in front of a loopback TCP instrument.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    fail,
    succeed,
)
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from instrumentd.connection import (
    CONFIG_KEYS,
    InstrumentConnectionError,
    PortAgentConnection,
    validate_config,
)
from instrumentd.interfaces import IInstrumentConnection, LinkState
from instrumentd.packet import Packet
from instrumentd.portagent.client import PortAgentCommandError
from instrumentd.testing import (
    FakePortAgent,
    client_for,
    port_agent_for,
    tcp_instrument_for,
)

ETHERNET = {"method": "ethernet", "device_addr": "10.0.0.5", "device_port": 4001}
SERIAL = {"method": "serial", "device": "/dev/ttyUSB0", "baudrate": 9600}
PORT_AGENT = {
    "method": "port_agent",
    "host": "127.0.0.1",
    "data_port": 4001,
    "command_port": 4002,
}


class ConfigTests(SynchronousTestCase):
    """
    L{validate_config}: every bad key is named with what was expected.
    """

    def check(self, config: object, key: str | None, message: str) -> None:
        """
        C{config} is refused with C{message}, naming C{key}.
        """
        error = self.assertRaises(InstrumentConnectionError, validate_config, config)
        self.assertEqual(str(error), message)
        self.assertEqual(error.key, key)

    def test_driverError(self) -> None:
        """
        The error is the driver framework's connection error, so a driver
        catches one class; its structured form names the key.
        """
        from instrumentd.driver.errors import InstrumentConnectionError as Driver

        error = self.assertRaises(Driver, validate_config, {"method": "usb"})
        self.assertEqual(
            error.to_dict(),
            {
                "code": "INSTRUMENT_CONNECTION",
                "message": "connection config: unknown method 'usb'; valid "
                "methods: ethernet, serial, port_agent",
                "key": "method",
            },
        )

    def test_notAMapping(self) -> None:
        """
        A config that is not a mapping is refused.
        """
        self.check(
            [("method", "serial")],
            None,
            "connection config must be a mapping (dict), got list [('method', 'serial')]",
        )

    def test_missingMethod(self) -> None:
        """
        A config without a method is refused, listing the methods.
        """
        self.check(
            {"device": "/dev/ttyS0"},
            "method",
            "connection config: missing key 'method': expected str, one of "
            "ethernet, serial, port_agent",
        )

    def test_unknownMethod(self) -> None:
        """
        An unknown method is named, with the valid ones.
        """
        self.check(
            {"method": "usb"},
            "method",
            "connection config: unknown method 'usb'; valid methods: "
            "ethernet, serial, port_agent",
        )

    def test_methodNotStr(self) -> None:
        """
        A method that is not a str is refused with its type.
        """
        self.check(
            {"method": 1},
            "method",
            "connection config: key 'method' must be str, one of ethernet, "
            "serial, port_agent; got int 1",
        )

    def test_unknownKeys(self) -> None:
        """
        Unknown keys (including another method's) are all named, with the
        method's valid keys.
        """
        self.check(
            {**ETHERNET, "baud": 9600, "device": "/dev/ttyS0"},
            "baud",
            "connection config: unknown keys 'baud', 'device' for method "
            "'ethernet'; valid keys: method, device_addr, device_port, name, "
            "datalog_dir, heartbeat, missed_heartbeats, command_timeout, "
            "launch_timeout, data_listener, command_listener, sniff_listener, "
            "raw_listener, token_file",
        )
        self.check(
            {**PORT_AGENT, "datalog_dir": "/data"},
            "datalog_dir",
            "connection config: unknown key 'datalog_dir' for method "
            "'port_agent'; valid keys: method, host, data_port, command_port, "
            "name, heartbeat, missed_heartbeats, command_timeout, token_file, "
            "tokenless_data",
        )

    def test_missingKeys(self) -> None:
        """
        Each required key of each method is named when missing, with the
        type expected.
        """
        expected = {
            "device_addr": "expected str (host name or address of the serial "
            "device server)",
            "device_port": "expected int (TCP port of the instrument on the "
            "device server, 1-65535)",
            "device": "expected str (path of the serial device, e.g. /dev/ttyUSB0)",
            "baudrate": "expected int (line speed, a standard rate such as 9600 "
            "or 19200)",
            "host": "expected str (host name or address of the running port agent)",
            "data_port": "expected int (the agent's data port, 1-65535)",
            "command_port": "expected int (the agent's command port, 1-65535)",
        }
        for base in (ETHERNET, SERIAL, PORT_AGENT):
            for key in base:
                if key == "method":
                    continue
                config = {k: v for k, v in base.items() if k != key}
                self.check(
                    config,
                    key,
                    f"connection config: missing key {key!r} for method "
                    f"{base['method']!r}: {expected[key]}",
                )

    def test_badValues(self) -> None:
        """
        Each key with a value of the wrong type, or out of range, is named
        with the type and the values expected, and the value given.
        """
        cases: list[tuple[dict[str, object], str, object]] = [
            (ETHERNET, "device_addr", ""),
            (ETHERNET, "device_port", "4001"),
            (ETHERNET, "device_port", 70000),
            (ETHERNET, "device_port", True),
            (SERIAL, "device", None),
            (SERIAL, "baudrate", 12345),
            (SERIAL, "baudrate", 9600.0),
            (SERIAL, "bytesize", 9),
            (SERIAL, "parity", "X"),
            (SERIAL, "stopbits", 3),
            (SERIAL, "flow", "dsrdtr"),
            (PORT_AGENT, "host", 5),
            (PORT_AGENT, "data_port", 0),
            (PORT_AGENT, "command_port", "4002"),
            (ETHERNET, "name", "a b"),
            (ETHERNET, "datalog_dir", 3),
            (ETHERNET, "heartbeat", -1),
            (ETHERNET, "heartbeat", float("nan")),
            (PORT_AGENT, "missed_heartbeats", 0),
            (PORT_AGENT, "command_timeout", 0),
            (SERIAL, "launch_timeout", "30"),
            (ETHERNET, "data_listener", 4001),
            (ETHERNET, "command_listener", "none"),
            (ETHERNET, "sniff_listener", ""),
            (ETHERNET, "raw_listener", None),
            (ETHERNET, "token_file", 7),
            (PORT_AGENT, "tokenless_data", "yes"),
        ]
        meaning = {key.name: (key.expected, key.meaning) for key in CONFIG_KEYS}
        checked = set()
        for base, key, value in cases:
            expected, what = meaning[key]
            # The message shows the value's type and repr.
            shown = f"{type(value).__name__} {value!r}"
            self.check(
                {**base, key: value},
                key,
                f"connection config: key {key!r} must be {expected} ({what}); "
                f"got {shown}",
            )
            checked.add(key)
        self.assertEqual(checked, set(meaning), "every key has a bad-value case")

    def test_tokenFile(self) -> None:
        """
        A token file that cannot be used is refused, naming the key and the
        file; a good one is kept.
        """
        missing = self.mktemp()
        error = self.assertRaises(
            InstrumentConnectionError,
            validate_config,
            {**PORT_AGENT, "token_file": missing},
        )
        self.assertIn("key 'token_file'", str(error))
        self.assertIn(repr(missing), str(error))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("0123456789abcdef0123\n")
        config = validate_config(
            {**PORT_AGENT, "token_file": path, "tokenless_data": True}
        )
        self.assertEqual((config.token_file, config.tokenless_data), (path, True))

    def test_badValueMessages(self) -> None:
        """
        Spot checks of whole messages, as a person reads them.
        """
        self.check(
            {**ETHERNET, "device_port": "4001"},
            "device_port",
            "connection config: key 'device_port' must be int (TCP port of the "
            "instrument on the device server, 1-65535); got str '4001'",
        )
        self.check(
            {**SERIAL, "flow": "dsrdtr"},
            "flow",
            "connection config: key 'flow' must be str (flow control: none, "
            "rtscts or xonxoff; default none); got str 'dsrdtr'",
        )

    def test_badListenerSaysWhy(self) -> None:
        """
        A listener endpoint that does not parse is refused with the
        parser's reason.
        """
        self.check(
            {**ETHERNET, "data_listener": "tcp:notaport"},
            "data_listener",
            "connection config: key 'data_listener' must be str (server "
            "endpoint of the launched agent's data port; default "
            "tcp:0:interface=127.0.0.1); got str 'tcp:notaport': "
            "'tcp:notaport': invalid literal for int() with base 10: 'notaport'",
        )

    def test_ethernet(self) -> None:
        """
        An ethernet config becomes a TCP instrument endpoint for a launched
        agent, with the defaults filled in.
        """
        config = validate_config({**ETHERNET, "heartbeat": 2, "name": "CTD-01"})
        self.assertTrue(config.launches)
        self.assertEqual(config.instrument, "tcp:host=10.0.0.5:port=4001")
        self.assertEqual(config.name, "CTD-01")
        self.assertEqual(config.heartbeat, 2.0)
        self.assertEqual(
            (config.missed_heartbeats, config.command_timeout, config.launch_timeout),
            (3, 10.0, 30.0),
        )

    def test_ethernetIPv6(self) -> None:
        """
        Colons in an IPv6 device address are escaped in the endpoint string.
        """
        config = validate_config({**ETHERNET, "device_addr": "fd00::5"})
        self.assertEqual(config.instrument, "tcp:host=fd00\\:\\:5:port=4001")

    def test_serial(self) -> None:
        """
        A serial config becomes a serial: endpoint for a launched agent,
        with 8N1 and no flow control by default.
        """
        config = validate_config(SERIAL)
        self.assertEqual(
            config.instrument,
            "serial:/dev/ttyUSB0:baudrate=9600:bytesize=8:parity=N:stopbits=1"
            ":rtscts=0:xonxoff=0",
        )
        config = validate_config(
            {
                **SERIAL,
                "device": "/dev/serial/by-id/usb-FTDI:1",
                "bytesize": 7,
                "parity": "even",
                "stopbits": 1.5,
                "flow": "rtscts",
            }
        )
        self.assertEqual(
            config.instrument,
            "serial:/dev/serial/by-id/usb-FTDI\\:1:baudrate=9600:bytesize=7"
            ":parity=E:stopbits=1.5:rtscts=1:xonxoff=0",
        )
        config = validate_config({**SERIAL, "flow": "xonxoff", "stopbits": 2.0})
        self.assertTrue(config.instrument.endswith(":stopbits=2:rtscts=0:xonxoff=1"))  # type: ignore[union-attr]

    def test_serialEndpointParses(self) -> None:
        """
        The serial: endpoint built is one the agent's endpoint parser takes.
        """
        from instrumentd.portagent.options import check_client_endpoint

        config = validate_config(
            {**SERIAL, "parity": "O", "stopbits": 2, "flow": "xonxoff"}
        )
        assert config.instrument is not None
        check_client_endpoint(config.instrument)

    def test_portAgent(self) -> None:
        """
        A port_agent config launches nothing.
        """
        config = validate_config(PORT_AGENT)
        self.assertFalse(config.launches)
        self.assertIsNone(config.instrument)
        self.assertEqual(
            (config.host, config.data_port, config.command_port),
            ("127.0.0.1", 4001, 4002),
        )
        self.assertIsNone(config.heartbeat)


class FakeAgentProcess:
    """
    Stands in for a launched port agent process, in front of a
    L{FakePortAgent}.
    """

    def __init__(self, agent: FakePortAgent) -> None:
        self.agent = agent
        self.pid = 4242
        self.ports = {"data": agent.data_port, "command": agent.command_port}
        self.ended: Deferred[int] = Deferred()
        self.stops = 0

    def stop(self) -> Deferred[int]:
        self.stops += 1
        self.agent.stop()
        if not self.ended.called:
            self.ended.callback(0)
        return succeed(0)


class FakeLauncher:
    """
    Records launches and hands out L{FakeAgentProcess}es.
    """

    def __init__(self, agent: FakePortAgent) -> None:
        self.agent = agent
        self.calls: list[dict[str, Any]] = []
        self.processes: list[FakeAgentProcess] = []
        self.result: Deferred[FakeAgentProcess] | None = None

    def __call__(self, **options: Any) -> Deferred[FakeAgentProcess]:
        self.calls.append(options)
        if self.result is not None:
            return self.result
        process = FakeAgentProcess(self.agent)
        self.processes.append(process)
        return succeed(process)


class Attached:
    """
    What a connection hands to its attached protocol.
    """

    def __init__(self, connection: PortAgentConnection) -> None:
        self.data: list[tuple[bytes, Packet]] = []
        self.states: list[LinkState] = []
        self.faults: list[str] = []
        connection.attach(
            lambda d, p: self.data.append((d, p)),
            self.states.append,
            self.faults.append,
        )


class ConnectionTests(SynchronousTestCase):
    """
    L{PortAgentConnection} in memory.
    """

    def setUp(self) -> None:
        self.agent = FakePortAgent(heartbeat=1)
        self.launcher = FakeLauncher(self.agent)
        self.connection = PortAgentConnection(
            reactor=self.agent.clock,
            launcher=self.launcher,
            endpoint_for=self.agent.endpoint_for,
            retry_policy=lambda attempt: 1.0,
        )
        self.attached = Attached(self.connection)

    def test_interface(self) -> None:
        """
        L{PortAgentConnection} provides L{IInstrumentConnection}.
        """
        self.assertTrue(verifyObject(IInstrumentConnection, self.connection))
        self.assertTrue(verifyObject(IInstrumentConnection, PortAgentConnection()))

    def test_lifecycle(self) -> None:
        """
        configure, connect, disconnect and initialize move through the
        states in order.
        """
        c = self.connection
        self.assertEqual(c.state, "unconfigured")
        c.configure(PORT_AGENT)
        self.assertEqual(c.state, "disconnected")
        d = c.connect()
        self.assertEqual(
            self.successResultOf(d),
            LinkState(agent=True, commands=True, instrument=True),
        )
        self.assertEqual(c.state, "connected")
        self.successResultOf(c.disconnect())
        self.assertEqual(c.state, "disconnected")
        c.initialize()
        self.assertEqual(c.state, "unconfigured")
        self.assertIsNone(c.config)

    def test_badConfigChangesNothing(self) -> None:
        """
        A bad config is refused and the previous one is kept.
        """
        c = self.connection
        c.configure(PORT_AGENT)
        self.assertRaises(InstrumentConnectionError, c.configure, {"method": "usb"})
        self.assertEqual(c.state, "disconnected")
        assert c.config is not None
        self.assertEqual(c.config.method, "port_agent")

    def test_invalidInState(self) -> None:
        """
        A method called where it makes no sense is refused with the state
        and the methods valid there.
        """
        c = self.connection
        failure = self.failureResultOf(c.connect(), InstrumentConnectionError)
        self.assertEqual(
            str(failure.value),
            "connect() is not valid while the connection is unconfigured; valid "
            "now: initialize(), configure(), disconnect(), attach(), detach(), "
            "link_state(), reset()",
        )
        error = self.assertRaises(InstrumentConnectionError, c.send, b"x")
        self.assertEqual(
            str(error),
            "send() is not valid while the connection is unconfigured; valid now: "
            "initialize(), configure(), disconnect(), attach(), detach(), "
            "link_state(), reset()",
        )
        c.configure(PORT_AGENT)
        self.successResultOf(c.connect())
        error = self.assertRaises(InstrumentConnectionError, c.configure, PORT_AGENT)
        self.assertEqual(
            str(error),
            "configure() is not valid while the connection is connected; valid "
            "now: disconnect(), send(), send_break(), attach(), detach(), "
            "link_state(), reset()",
        )
        self.assertRaises(InstrumentConnectionError, c.initialize)
        self.failureResultOf(c.connect(), InstrumentConnectionError)

    def test_portAgentDataBothWays(self) -> None:
        """
        Attached to a running agent, instrument bytes arrive with their
        timestamps and sent bytes reach the instrument.
        """
        c = self.connection
        c.configure(PORT_AGENT)
        self.successResultOf(c.connect())
        self.assertEqual(self.launcher.calls, [])
        self.agent.deliver(b"S>", seconds=3_900_000_000, fraction=1 << 31)
        [(data, packet)] = self.attached.data
        self.assertEqual(data, b"S>")
        self.assertEqual(packet.ntp_time, 3_900_000_000.5)
        c.send(b"DS\r\n")
        self.assertEqual(self.agent.received, b"DS\r\n")

    def test_portAgentDisconnectLeavesAgentRunning(self) -> None:
        """
        Disconnecting from an agent it did not launch leaves it running.
        """
        c = self.connection
        c.configure(PORT_AGENT)
        self.successResultOf(c.connect())
        self.successResultOf(c.disconnect())
        self.assertTrue(self.agent.reachable)
        self.assertEqual((self.agent.data_clients, self.agent.command_clients), (0, 0))
        self.assertEqual(self.attached.states[-1], LinkState())

    def test_stateAndFaults(self) -> None:
        """
        Link state changes and faults reach the attached protocol, and
        C{link_state} answers.
        """
        c = self.connection
        c.configure(PORT_AGENT)
        self.successResultOf(c.connect())
        self.agent.set_instrument_connected(False)
        self.assertEqual(self.attached.states[-1].instrument, False)
        self.assertEqual(c.link_state(), LinkState(True, True, False))
        self.agent.fault("datalog write failed")
        self.assertEqual(self.attached.faults, ["datalog write failed"])
        error = self.assertRaises(InstrumentConnectionError, c.send, b"TS")
        self.assertIn("reports its instrument link DISCONNECTED", str(error))

    def test_agentLostAndBack(self) -> None:
        """
        A silent agent is reported lost; when it answers again it is
        reported back, and the connection stays connected throughout.
        """
        c = self.connection
        c.configure({**PORT_AGENT, "missed_heartbeats": 2})
        self.successResultOf(c.connect())
        self.agent.hang()
        self.agent.clock.advance(2)
        self.assertEqual(c.link_state(), LinkState())
        self.assertEqual(c.state, "connected")
        self.assertRaises(InstrumentConnectionError, c.send, b"TS")
        self.agent.start()
        self.agent.clock.advance(1)
        self.assertTrue(c.link_state().ready)

    def test_attachTwice(self) -> None:
        """
        One protocol at a time.
        """
        error = self.assertRaises(
            InstrumentConnectionError, self.connection.attach, lambda d, p: None
        )
        self.assertEqual(
            str(error),
            "a protocol is already attached to this connection; detach() first",
        )
        self.connection.detach()
        self.connection.attach(lambda d, p: None)

    def test_detach(self) -> None:
        """
        After detach, bytes are not handed on.
        """
        c = self.connection
        c.configure(PORT_AGENT)
        self.successResultOf(c.connect())
        c.detach()
        self.agent.deliver(b"x")
        self.assertEqual(self.attached.data, [])

    def test_breakError(self) -> None:
        """
        A break on a TCP link fails with the agent's ERROR text.
        """
        c = self.connection
        c.configure(PORT_AGENT)
        self.successResultOf(c.connect())
        failure = self.failureResultOf(c.send_break(250), PortAgentCommandError)
        self.assertTrue(failure.value.reply.startswith("ERROR break: "))

    def test_break(self) -> None:
        """
        A break on a link that can send one fires with C{None}.
        """
        self.agent.breakable = True
        c = self.connection
        c.configure(PORT_AGENT)
        self.successResultOf(c.connect())
        self.assertIsNone(self.successResultOf(c.send_break(250)))
        self.assertEqual(self.agent.commands[-1], "break 250")

    def test_breakDuration(self) -> None:
        """
        A break duration out of range is refused before anything is sent.
        """
        c = self.connection
        c.configure(PORT_AGENT)
        self.successResultOf(c.connect())
        for bad in (0, 60_001, 1.5):
            failure = self.failureResultOf(c.send_break(bad), InstrumentConnectionError)  # type: ignore[arg-type]
            self.assertEqual(
                str(failure.value),
                "send_break: duration_ms must be int, 1-60000; got "
                f"{type(bad).__name__} {bad!r}",
            )
        self.assertNotIn("break", " ".join(self.agent.commands))

    def test_unreachableAgent(self) -> None:
        """
        C{connect} to an agent that is not there fails and the connection
        is disconnected again, with nothing left running.
        """
        self.agent.stop()
        c = self.connection
        c.configure(PORT_AGENT)
        failure = self.failureResultOf(c.connect(), InstrumentConnectionError)
        self.assertIn(
            "cannot reach the port agent of instrument at 127.0.0.1", str(failure.value)
        )
        self.assertEqual(c.state, "disconnected")
        self.assertIsNone(c.client)

    def test_ethernetLaunches(self) -> None:
        """
        An ethernet connection launches an agent for the device server's
        port, attaches to it, and stops it on disconnect.
        """
        c = self.connection
        c.configure(
            {
                **ETHERNET,
                "name": "CTD-01",
                "heartbeat": 1,
                "datalog_dir": "/data/CTD-01",
                "sniff_listener": "none",
                "launch_timeout": 5,
            }
        )
        self.successResultOf(c.connect())
        [call] = self.launcher.calls
        self.assertEqual(
            call,
            {
                "name": "CTD-01",
                "instrument": "tcp:host=10.0.0.5:port=4001",
                "datalog_dir": "/data/CTD-01",
                "heartbeat": 1.0,
                "data_port": None,
                "command_port": None,
                "sniff_port": "none",
                "raw_port": None,
                "reactor": self.agent.clock,
                "timeout": 5.0,
            },
        )
        [process] = self.launcher.processes
        self.assertIs(c.agent, process)
        self.successResultOf(c.disconnect())
        self.assertEqual(process.stops, 1)
        self.assertIsNone(c.agent)
        self.assertEqual(self.attached.faults, [])

    def test_listenerInterfaces(self) -> None:
        """
        Each port of a launched agent is reached on the interface its
        listener is bound to.
        """
        asked: list[tuple[str, int | str]] = []

        def endpoint_for(host: str, port: int | str) -> Any:
            asked.append((host, port))
            return self.agent.endpoint_for(host, port)

        c = PortAgentConnection(
            reactor=self.agent.clock, launcher=self.launcher, endpoint_for=endpoint_for
        )
        c.configure(
            {
                **ETHERNET,
                "data_listener": "tcp:0:interface=127.0.0.2",
                "command_listener": "tcp:0:interface=0.0.0.0",
            }
        )
        self.successResultOf(c.connect())
        self.assertEqual(
            asked,
            [
                ("127.0.0.2", self.agent.data_port),
                ("127.0.0.1", self.agent.command_port),
            ],
        )

    def test_serialLaunches(self) -> None:
        """
        A serial connection launches an agent with a serial: endpoint.
        """
        c = self.connection
        c.configure({**SERIAL, "flow": "rtscts"})
        self.successResultOf(c.connect())
        self.assertEqual(
            self.launcher.calls[0]["instrument"],
            "serial:/dev/ttyUSB0:baudrate=9600:bytesize=8:parity=N:stopbits=1"
            ":rtscts=1:xonxoff=0",
        )

    def test_launchFails(self) -> None:
        """
        A failed launch fails C{connect} with the launcher's reason.
        """
        from instrumentd.portagent.launcher import PortAgentLaunchError

        self.launcher.result = fail(
            PortAgentLaunchError(1, "twistd: bad option", "exited before it was ready")
        )
        c = self.connection
        c.configure(SERIAL)
        failure = self.failureResultOf(c.connect(), InstrumentConnectionError)
        self.assertTrue(
            str(failure.value).startswith(
                "could not launch a port agent for serial:/dev/ttyUSB0:"
            ),
            str(failure.value),
        )
        self.assertIsInstance(failure.value.__cause__, PortAgentLaunchError)
        self.assertEqual(c.state, "disconnected")

    def test_attachFailsAfterLaunch(self) -> None:
        """
        If the launched agent cannot be reached, it is stopped again.
        """
        self.agent.stop()
        c = self.connection
        c.configure(ETHERNET)
        self.failureResultOf(c.connect(), InstrumentConnectionError)
        [process] = self.launcher.processes
        self.assertEqual(process.stops, 1)
        self.assertIsNone(c.agent)

    def test_agentExits(self) -> None:
        """
        A launched agent that exits on its own is reported as a fault.
        """
        c = self.connection
        c.configure(ETHERNET)
        self.successResultOf(c.connect())
        [process] = self.launcher.processes
        process.ended.callback(9)
        self.assertEqual(
            self.attached.faults,
            [
                "the port agent process 4242 has ended (exit code 9); its "
                "instrument is out of reach until disconnect() and connect()"
            ],
        )
        self.flushLoggedErrors()

    def test_disconnectWhileConnecting(self) -> None:
        """
        C{disconnect} while a launch is under way abandons it.
        """
        self.launcher.result = Deferred()
        c = self.connection
        c.configure(ETHERNET)
        connecting = c.connect()
        self.assertEqual(c.state, "connecting")
        stopped = c.disconnect()
        self.successResultOf(stopped)
        self.failureResultOf(connecting, CancelledError)
        self.assertEqual(c.state, "disconnected")

    def test_disconnectIsIdempotent(self) -> None:
        """
        C{disconnect} when not connected does nothing; two at once both
        fire when the first is done.
        """
        c = self.connection
        self.successResultOf(c.disconnect())
        c.configure(ETHERNET)
        self.successResultOf(c.connect())
        first, second = c.disconnect(), c.disconnect()
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual(self.launcher.processes[0].stops, 1)

    def test_reset(self) -> None:
        """
        C{reset} disconnects, stops a launched agent and forgets the config;
        the protocol stays attached.
        """
        c = self.connection
        c.configure(ETHERNET)
        self.successResultOf(c.connect())
        self.successResultOf(c.reset())
        self.assertEqual(c.state, "unconfigured")
        self.assertIsNone(c.config)
        self.assertEqual(self.launcher.processes[0].stops, 1)
        self.assertRaises(InstrumentConnectionError, c.attach, lambda d, p: None)

    def test_noTimersLeft(self) -> None:
        """
        After disconnect the clock holds only the fake agent's heartbeat.
        """
        c = self.connection
        c.configure(PORT_AGENT)
        self.successResultOf(c.connect())
        self.successResultOf(c.disconnect())
        self.assertEqual(len(self.agent.clock.getDelayedCalls()), 1)


class ListenerHostTests(SynchronousTestCase):
    """
    Where a launched agent's listeners are reached.
    """

    def test_hosts(self) -> None:
        """
        Loopback by default and for wildcards; the interface otherwise.
        """
        from instrumentd.connection import _listener_host

        self.assertEqual(_listener_host(None), "127.0.0.1")
        self.assertEqual(_listener_host("tcp:0"), "127.0.0.1")
        self.assertEqual(_listener_host("tcp:0:interface=0.0.0.0"), "127.0.0.1")
        self.assertEqual(_listener_host("tcp:4001:interface=10.1.2.3"), "10.1.2.3")
        self.assertEqual(_listener_host("tcp6:0:interface=\\:\\:"), "::1")
        self.assertEqual(_listener_host("tcp6:0:interface=fd00\\:\\:7"), "fd00::7")


def within(d: Deferred[Any], what: str, seconds: float = 15.0) -> Deferred[Any]:
    """
    Fail with a message saying what was awaited if C{d} takes longer than
    C{seconds}.
    """
    from twisted.internet import reactor

    def timed_out(reason: Any) -> Any:
        if reason.check(TimeoutError):
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        return reason

    return d.addTimeout(seconds, reactor).addErrback(timed_out)


class LiveAttached(Attached):
    """
    L{Attached}, with Deferreds for what a live test waits for.
    """

    def __init__(self, connection: PortAgentConnection) -> None:
        super().__init__(connection)
        self.connection = connection
        self._waiting: list[tuple[Any, Deferred[None]]] = []
        connection.detach()
        connection.attach(self._data, self._state, self._fault)

    def _fault(self, text: str) -> None:
        self.faults.append(text)
        self._check()

    def _data(self, data: bytes, packet: Packet) -> None:
        self.data.append((data, packet))
        self._check()

    def _state(self, state: LinkState) -> None:
        self.states.append(state)
        self._check()

    def _check(self) -> None:
        waiting, self._waiting = self._waiting, []
        for test, d in waiting:
            if test():
                d.callback(None)
            else:
                self._waiting.append((test, d))

    def until(self, test: Any, what: str) -> Deferred[None]:
        """
        Wait until C{test()} holds.
        """
        if test():
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append((test, d))
        return within(d, what)

    @property
    def payloads(self) -> bytes:
        return b"".join(data for data, _ in self.data)


class LiveTests(TestCase):
    """
    L{PortAgentConnection} with real port agent processes in front of a
    loopback TCP instrument.
    """

    async def exchange(
        self, connection: PortAgentConnection, attached: LiveAttached, instrument: Any
    ) -> None:
        """
        Bytes go both ways through the connection.
        """
        await attached.until(lambda: connection.link_state().ready, "the link up")
        instrument.send(b"S>")
        await attached.until(lambda: attached.payloads == b"S>", "instrument bytes")
        connection.send(b"DS\r\n")
        await within(instrument.wait_for(b"DS\r\n"), "bytes at the instrument")

    async def test_ethernet(self) -> None:
        """
        An ethernet connection launches an agent for the device server,
        talks through it, and stops it on disconnect: no process is left.
        """
        instrument = await tcp_instrument_for(self)
        connection = PortAgentConnection(retry_policy=lambda attempt: 0.2)
        attached = LiveAttached(connection)
        self.addCleanup(connection.disconnect)
        connection.configure(
            {
                "method": "ethernet",
                "device_addr": "127.0.0.1",
                "device_port": instrument.port,
                "name": "CTD-live",
                "datalog_dir": self.mktemp(),
                "heartbeat": 0.5,
            }
        )
        await within(connection.connect(), "connect")
        agent = connection.agent
        await self.exchange(connection, attached, instrument)
        # The agent said its TCP link cannot break: the connection refuses
        # without asking, so the agent faults nobody.
        self.assertIs(connection.client.link_can_break, False)  # type: ignore[union-attr]
        with self.assertRaises(PortAgentCommandError) as caught:
            await connection.send_break(100)
        self.assertEqual(
            caught.exception.reply,
            "ERROR break: the port agent's instrument link cannot send a break "
            "(only serial links can)",
        )
        # A refused command the agent does get also reaches the data port as
        # a fault, for OOI drivers that never read the command connection.
        assert connection.client is not None
        with self.assertRaises(PortAgentCommandError) as asked:
            await connection.client.send_break(100)
        await attached.until(lambda: bool(attached.faults), "the break fault")
        await within(connection.disconnect(), "disconnect")
        self.assertEqual(agent.exit_status, 0)
        with self.assertRaises(ProcessLookupError):
            os.kill(agent.pid, 0)
        self.assertEqual(connection.state, "disconnected")
        self.assertEqual(
            attached.faults,
            [asked.exception.reply.replace("ERROR ", "command port: ", 1)],
        )

    async def test_portAgent(self) -> None:
        """
        A port_agent connection attaches to a running agent and leaves it
        running when it disconnects.
        """
        instrument = await tcp_instrument_for(self)
        handle = await port_agent_for(self, instrument.endpoint, heartbeat=0.5)
        connection = PortAgentConnection()
        attached = LiveAttached(connection)
        self.addCleanup(connection.disconnect)
        connection.configure(
            {
                "method": "port_agent",
                "host": "127.0.0.1",
                "data_port": handle.ports["data"],
                "command_port": handle.ports["command"],
            }
        )
        state = await within(connection.connect(), "connect")
        self.assertTrue(state.agent and state.commands)
        self.assertIsNone(connection.agent)
        await self.exchange(connection, attached, instrument)
        await within(connection.disconnect(), "disconnect")
        self.assertIsNone(handle.exit_status)
        client = await client_for(self, handle)
        self.assertTrue((await client.ping()).startswith("pong test-instrument "))

    async def test_serialDeviceMissing(self) -> None:
        """
        A serial connection to a device that is not there connects to its
        agent, which reports the instrument link down; sending fails at once.
        """
        connection = PortAgentConnection()
        attached = LiveAttached(connection)
        self.addCleanup(connection.disconnect)
        connection.configure(
            {
                "method": "serial",
                "device": "/dev/instrumentd-no-such-device",
                "baudrate": 9600,
                "datalog_dir": self.mktemp(),
            }
        )
        state = await within(connection.connect(), "connect")
        self.assertEqual((state.agent, state.commands), (True, True))
        await attached.until(
            lambda: connection.link_state().instrument is False, "DISCONNECTED"
        )
        self.assertRaises(InstrumentConnectionError, connection.send, b"x")

    async def test_launchFails(self) -> None:
        """
        When the agent cannot start (its data port is taken), C{connect}
        fails with the launcher's reason and nothing is left running.
        """
        taken = await tcp_instrument_for(self)
        connection = PortAgentConnection()
        self.addCleanup(connection.disconnect)
        connection.configure(
            {
                "method": "ethernet",
                "device_addr": "127.0.0.1",
                "device_port": taken.port,
                "datalog_dir": self.mktemp(),
                "data_listener": f"tcp:{taken.port}:interface=127.0.0.1",
            }
        )
        with self.assertRaises(InstrumentConnectionError) as caught:
            await within(connection.connect(), "connect to fail")
        message = str(caught.exception)
        self.assertTrue(
            message.startswith(
                "could not launch a port agent for tcp:host=127.0.0.1:port="
            ),
            message,
        )
        self.assertIn("Address already in use", message)
        self.assertEqual(connection.state, "disconnected")
        self.assertIsNone(connection.agent)


class DocTests(SynchronousTestCase):
    """
    C{doc/connections.md} stays true to the code.
    """

    def setUp(self) -> None:
        path = os.path.join(os.path.dirname(__file__), "..", "doc", "connections.md")
        with open(path, encoding="utf-8") as f:
            self.doc = f.read()

    def test_everyKeyInTable(self) -> None:
        """
        Every configuration key has a row in the table naming its type,
        its methods and whether it is required.
        """
        rows = {
            cells[0].strip("` "): [c.strip() for c in cells[1:4]]
            for line in self.doc.splitlines()
            if line.startswith("| `")
            for cells in [line.strip("|").split("|")]
        }
        for key in CONFIG_KEYS:
            methods = "all" if len(key.methods) == 3 else ", ".join(key.methods)
            required = "yes" if key.required else ""
            self.assertEqual(
                rows.get(key.name), [key.expected, methods, required], key.name
            )

    def test_interfaceMethodsDocumented(self) -> None:
        """
        Every method of L{IInstrumentConnection} is in the contract table.
        """
        for name in IInstrumentConnection.names():
            self.assertIn(f"| `{name}", self.doc, name)

    def test_errorExamples(self) -> None:
        """
        The example error messages are the ones the code gives.
        """
        for config in (
            {"method": "usb"},
            {"method": "ethernet", "device_port": 4001},
            {**ETHERNET, "device_port": "4001"},
            {**SERIAL, "baud": 9600},
        ):
            error = self.assertRaises(
                InstrumentConnectionError, validate_config, config
            )
            self.assertIn(str(error), self.doc)
