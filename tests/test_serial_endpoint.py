"""
Tests for :mod:`instrumentd.endpoints.serial` and its ``serial:`` plugin.

The parsing tests are synchronous. The rest open real pty pairs with the real
reactor: the pty's slave plays the serial device and its master plays the
instrument.
"""

from __future__ import annotations

import os
from typing import Any, cast

import serial
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import fdesc, reactor
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import CancelledError, Deferred, DeferredQueue, succeed
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import ConnectError, ConnectionClosed, NoProtocol
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.plugin import IPlugin, getPlugins
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from instrumentd.endpoints.serial import (
    STANDARD_BAUDRATES,
    BreakableSerialPort,
    BreakInProgressError,
    SerialAddress,
    SerialEndpoint,
    SerialOpenError,
    SerialSettings,
)
from instrumentd.interfaces import IBreakableTransport


def _parse(description: str) -> SerialEndpoint:
    endpoint = clientFromString(MemoryReactor(), description)
    assert isinstance(endpoint, SerialEndpoint)
    return endpoint


class SerialPluginTests(SynchronousTestCase):
    """
    The ``serial`` prefix is registered through a Twisted plugin.
    """

    def test_discoverable(self) -> None:
        """
        ``getPlugins`` finds one parser for the ``serial`` prefix, and it
        provides both plugin interfaces.
        """
        parsers = [
            p
            for p in getPlugins(IStreamClientEndpointStringParserWithReactor)
            if p.prefix == "serial"
        ]
        self.assertEqual(len(parsers), 1)
        self.assertTrue(verifyObject(IPlugin, parsers[0]))
        self.assertTrue(
            verifyObject(IStreamClientEndpointStringParserWithReactor, parsers[0])
        )

    def test_clientFromString(self) -> None:
        """
        ``clientFromString`` turns a ``serial:`` string into a
        ``SerialEndpoint`` for that device, which is a client endpoint.
        """
        endpoint = clientFromString(MemoryReactor(), "serial:/dev/ttyUSB0")
        self.assertIsInstance(endpoint, SerialEndpoint)
        self.assertTrue(verifyObject(IStreamClientEndpoint, endpoint))
        self.assertEqual(endpoint.device, "/dev/ttyUSB0")

    def test_prefixCaseInsensitive(self) -> None:
        """
        Like Twisted's own prefixes, ``SERIAL:`` works as well as
        ``serial:``.
        """
        self.assertEqual(_parse("SERIAL:/dev/ttyS0").device, "/dev/ttyS0")


class SerialOptionTests(SynchronousTestCase):
    """
    ``serial:`` strings are parsed into ``SerialSettings``, and every bad
    option is refused at parse time with a message that names the option,
    the bad value and the valid choices.
    """

    def assertRefused(self, description: str, *fragments: str) -> None:
        """
        Parsing C{description} raises C{ValueError} containing every one of
        C{fragments}.
        """
        error = self.assertRaises(ValueError, _parse, description)
        for fragment in fragments:
            self.assertIn(fragment, str(error))

    def test_defaults(self) -> None:
        """
        Without options the port is 9600 8N1 with no flow control.
        """
        settings = _parse("serial:/dev/ttyUSB0").settings
        self.assertEqual(settings, SerialSettings())
        self.assertEqual(
            (
                settings.baudrate,
                settings.bytesize,
                settings.parity,
                settings.stopbits,
                settings.rtscts,
                settings.xonxoff,
            ),
            (9600, 8, "N", 1, False, False),
        )
        self.assertEqual(settings.describe(), "9600 8N1")

    def test_allOptions(self) -> None:
        """
        Every option is read and converted to what pyserial takes.
        """
        endpoint = _parse(
            "serial:/dev/ttyUSB0:baudrate=19200:bytesize=7:parity=e"
            ":stopbits=2:rtscts=1:xonxoff=yes"
        )
        self.assertEqual(
            endpoint.settings,
            SerialSettings(
                baudrate=19200,
                bytesize=7,
                parity=serial.PARITY_EVEN,
                stopbits=serial.STOPBITS_TWO,
                rtscts=True,
                xonxoff=True,
            ),
        )
        self.assertEqual(endpoint.settings.describe(), "19200 7E2 rtscts xonxoff")

    def test_everyStandardBaudrate(self) -> None:
        """
        Every standard rate from 50 to 4000000 baud is accepted.
        """
        self.assertEqual(STANDARD_BAUDRATES[0], 50)
        self.assertEqual(STANDARD_BAUDRATES[-1], 4_000_000)
        for rate in STANDARD_BAUDRATES:
            settings = _parse(f"serial:/dev/ttyS0:baudrate={rate}").settings
            self.assertEqual(settings.baudrate, rate)

    def test_parityLettersAndWords(self) -> None:
        """
        Parity is a letter or a word, in any case.
        """
        for letter, word in [
            ("N", "none"),
            ("E", "even"),
            ("O", "odd"),
            ("M", "mark"),
            ("S", "space"),
        ]:
            for text in (letter, letter.lower(), word, word.upper()):
                settings = _parse(f"serial:/dev/ttyS0:parity={text}").settings
                self.assertEqual(settings.parity, letter)

    def test_stopbits(self) -> None:
        """
        Stop bits are 1, 1.5 or 2.
        """
        for text, value in [("1", 1), ("1.5", 1.5), ("2", 2)]:
            settings = _parse(f"serial:/dev/ttyS0:stopbits={text}").settings
            self.assertEqual(settings.stopbits, value)

    def test_flagWords(self) -> None:
        """
        ``rtscts`` and ``xonxoff`` take 0/1, false/true and no/yes in any
        case.
        """
        for option in ("rtscts", "xonxoff"):
            for text, value in [
                ("0", False),
                ("1", True),
                ("false", False),
                ("True", True),
                ("NO", False),
                ("yes", True),
            ]:
                settings = _parse(f"serial:/dev/ttyS0:{option}={text}").settings
                self.assertEqual(getattr(settings, option), value)

    def test_escapedColonInDevice(self) -> None:
        """
        A device path with colons, escaped as in any endpoint string, is
        kept whole.
        """
        endpoint = _parse(
            r"serial:/dev/serial/by-path/pci-0000\:00\:14.0-usb-0\:2\:1.0"
            ":baudrate=115200"
        )
        self.assertEqual(
            endpoint.device, "/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0"
        )
        self.assertEqual(endpoint.settings.baudrate, 115200)

    def test_deviceNotTouchedAtParseTime(self) -> None:
        """
        Parsing a string for a device that does not exist succeeds: the
        device is opened only on connect, so configuration can be checked
        before the instrument is plugged in.
        """
        self.assertEqual(
            _parse("serial:/nonexistent/ttyUSB9").device, "/nonexistent/ttyUSB9"
        )

    def test_unknownOption(self) -> None:
        """
        An unknown option is refused, and the valid ones are listed.
        """
        self.assertRefused(
            "serial:/dev/ttyS0:baud=9600",
            "'baud'",
            "baudrate, bytesize, parity, stopbits, rtscts, xonxoff",
        )

    def test_missingDevice(self) -> None:
        """
        A ``serial:`` string without a device path is refused.
        """
        for description in ("serial:", "serial", "serial:baudrate=9600"):
            self.assertRefused(description, "missing device path")

    def test_unescapedColon(self) -> None:
        """
        Two positional parts, as an unescaped colon in a path gives, are
        refused with a hint to escape it.
        """
        self.assertRefused(
            "serial:/dev/a:b", "one device path", "'/dev/a'", "'b'", r"\:"
        )

    def test_baudrateNotInteger(self) -> None:
        """
        A baud rate that is not an integer is refused.
        """
        self.assertRefused(
            "serial:/dev/ttyS0:baudrate=fast", "baudrate", "'fast'", "9600, 19200"
        )

    def test_baudrateNotPositive(self) -> None:
        """
        A baud rate of zero or less is refused.
        """
        for text in ("0", "-9600"):
            self.assertRefused(
                f"serial:/dev/ttyS0:baudrate={text}",
                "baudrate",
                repr(text),
                "positive integer",
                "50, 75",
            )

    def test_baudrateNotStandard(self) -> None:
        """
        A rate that is not one of the standard rates is refused, and the
        message lists them up to 4000000.
        """
        self.assertRefused(
            "serial:/dev/ttyS0:baudrate=12345",
            "baudrate",
            "'12345'",
            "50, 75",
            "4000000",
        )

    def test_bytesize(self) -> None:
        """
        A byte size other than 5 to 8 is refused.
        """
        for text in ("4", "9", "eight"):
            self.assertRefused(
                f"serial:/dev/ttyS0:bytesize={text}",
                "bytesize",
                repr(text),
                "5, 6, 7, 8",
            )

    def test_parity(self) -> None:
        """
        An unknown parity is refused, and the letters and words are listed.
        """
        self.assertRefused(
            "serial:/dev/ttyS0:parity=X",
            "parity",
            "'X'",
            "N, E, O, M, S",
            "none, even, odd, mark, space",
        )

    def test_stopbitsInvalid(self) -> None:
        """
        Stop bits other than 1, 1.5 and 2 are refused.
        """
        for text in ("0", "3", "one"):
            self.assertRefused(
                f"serial:/dev/ttyS0:stopbits={text}",
                "stopbits",
                repr(text),
                "1, 1.5, 2",
            )

    def test_flagsInvalid(self) -> None:
        """
        ``rtscts`` and ``xonxoff`` refuse anything but the boolean words.
        """
        for option in ("rtscts", "xonxoff"):
            self.assertRefused(
                f"serial:/dev/ttyS0:{option}=2",
                option,
                "'2'",
                "0, 1",
                "false, true, no, yes",
            )

    def test_settingsCheckedInCode(self) -> None:
        """
        ``SerialSettings`` built in code are checked as well.
        """
        cases: list[tuple[dict[str, Any], str]] = [
            ({"baudrate": 12345}, "baudrate=12345"),
            ({"bytesize": 9}, "bytesize=9"),
            ({"parity": "X"}, "parity='X'"),
            ({"stopbits": 3}, "stopbits=3"),
            ({"rtscts": 1}, "rtscts=1"),
        ]
        for kwargs, fragment in cases:
            error = self.assertRaises(ValueError, SerialSettings, **kwargs)
            self.assertIn(fragment, str(error))

    def test_reactorMustWatchDescriptors(self) -> None:
        """
        A reactor that cannot watch file descriptors is refused at parse
        time.
        """
        error = self.assertRaises(
            TypeError, clientFromString, Clock(), "serial:/dev/ttyS0"
        )
        self.assertIn("cannot watch file descriptors", str(error))


class _ByteSink:
    """
    Collects bytes and fires Deferreds once an expected run of bytes has
    arrived.
    """

    def __init__(self) -> None:
        self.data = b""
        self._waiting: list[tuple[bytes, Deferred[bytes]]] = []

    def add(self, data: bytes) -> None:
        """
        Record C{data}, firing the waiters it completes.
        """
        self.data += data
        waiting, self._waiting = self._waiting, []
        for expected, d in waiting:
            if expected in self.data:
                d.callback(self.data)
            else:
                self._waiting.append((expected, d))

    def wait_for(self, expected: bytes) -> Deferred[bytes]:
        """
        :returns: a Deferred firing with all the bytes so far once
            C{expected} is among them.
        """
        if expected in self.data:
            return succeed(self.data)
        d: Deferred[bytes] = Deferred()
        self._waiting.append((expected, d))
        return d


class _Instrument(Protocol):
    """
    The protocol on the serial port; it records what it reads and when the
    port closes.
    """

    def __init__(self) -> None:
        self.received = _ByteSink()
        self.reason: Failure | None = None
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received.add(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        self.lost.callback(None)


class _PtyMaster(FileDescriptor):
    """
    The instrument's end of a pty pair, read through the reactor.
    """

    def __init__(self, fd: int) -> None:
        super().__init__(reactor)
        self._fd = fd
        self.received = _ByteSink()
        fdesc.setNonBlocking(fd)

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> object:
        return fdesc.readFromFD(self._fd, self.received.add)

    def writeSomeData(self, data: bytes) -> int | BaseException:
        written: int | BaseException = fdesc.writeToFD(self._fd, data)
        return written


class _Pty:
    """
    A pty pair for one test: C{device} is the slave's path, C{master}
    reads and writes the other end. Closed by the test's cleanup.

    The test keeps its own slave descriptor open so the master never sees a
    hang-up while the port under test is closed between connections.
    """

    def __init__(self, test: TestCase) -> None:
        self._master_fd, self._slave_fd = os.openpty()
        self.device = os.ttyname(self._slave_fd)
        self.master = _PtyMaster(self._master_fd)
        self.master.startReading()
        self._open = True
        test.addCleanup(self.close)

    def write(self, data: bytes) -> None:
        """
        Send C{data} to the device side, as the instrument would.
        """
        os.write(self._master_fd, data)

    def unplug(self) -> None:
        """
        Close the master, as when a USB adapter is pulled out.
        """
        self.close()

    def close(self) -> None:
        """
        Close both ends, once.
        """
        if self._open:
            self._open = False
            self.master.stopReading()
            self.master.stopWriting()
            os.close(self._master_fd)
            os.close(self._slave_fd)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _connect(
    test: TestCase, device: str, *, clock: Clock | None = None
) -> tuple[_Instrument, BreakableSerialPort]:
    """
    Connect an C{_Instrument} to C{device} through a C{SerialEndpoint}; the
    test's cleanup closes the port and waits for it to close.
    """
    endpoint = SerialEndpoint(reactor, device, clock=clock)
    protocol = cast(
        _Instrument, await endpoint.connect(Factory.forProtocol(_Instrument))
    )
    test.assertIsInstance(protocol.transport, BreakableSerialPort)
    transport = cast(BreakableSerialPort, protocol.transport)

    def close() -> Deferred[None]:
        if not transport.disconnected:
            transport.loseConnection()
        return protocol.lost

    test.addCleanup(close)
    return protocol, transport


class SerialEndpointTests(TestCase):
    """
    ``SerialEndpoint`` against real pty pairs and the real reactor.
    """

    timeout = 10

    async def test_bytesFlowBothWays(self) -> None:
        """
        Bytes from the instrument reach the protocol, and bytes the protocol
        writes reach the instrument, unchanged (raw mode, no echo).
        """
        pty = _Pty(self)
        protocol, transport = await _connect(self, pty.device)
        pty.write(b"ts\r\n\x00\xff")
        self.assertEqual(
            await protocol.received.wait_for(b"ts\r\n\x00\xff"), b"ts\r\n\x00\xff"
        )
        transport.write(b"#ds\r\x13\x11")
        self.assertEqual(await pty.master.received.wait_for(b"\x11"), b"#ds\r\x13\x11")

    async def test_clientFromStringConnects(self) -> None:
        """
        An endpoint parsed from a ``serial:`` string with the real reactor
        opens the device with the settings asked for.
        """
        pty = _Pty(self)
        endpoint = clientFromString(reactor, f"serial:{pty.device}:baudrate=19200")
        protocol = cast(
            _Instrument, await endpoint.connect(Factory.forProtocol(_Instrument))
        )
        self.assertIsInstance(protocol.transport, BreakableSerialPort)
        transport = cast(BreakableSerialPort, protocol.transport)
        self.addCleanup(lambda: protocol.lost)
        self.addCleanup(transport.loseConnection)
        self.assertEqual(transport.device, pty.device)
        self.assertEqual(transport._serial.baudrate, 19200)

    async def test_transportInterfaces(self) -> None:
        """
        The transport provides ``IBreakableTransport``, and its address is
        the device.
        """
        pty = _Pty(self)
        _, transport = await _connect(self, pty.device)
        self.assertTrue(verifyObject(IBreakableTransport, transport))
        self.assertEqual(transport.getPeer(), SerialAddress(pty.device))
        self.assertEqual(transport.getHost(), SerialAddress(pty.device))

    async def test_missingDevice(self) -> None:
        """
        Connecting to a device that does not exist fails the Deferred, not
        the call, with a ``ConnectError`` naming the device and the reason.
        """
        device = os.path.join(os.path.abspath(self.mktemp()), "ttyUSB9")
        endpoint = SerialEndpoint(reactor, device)
        d = endpoint.connect(Factory.forProtocol(_Instrument))
        error = cast(SerialOpenError, await self.assertFailure(d, SerialOpenError))
        self.assertIsInstance(error, ConnectError)
        self.assertEqual(error.device, device)
        self.assertIn(device, str(error))
        self.assertIn("No such file or directory", str(error))

    async def test_notATerminal(self) -> None:
        """
        A path that is not a terminal fails with the reason, and leaves no
        descriptor open.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "wb"):
            pass
        before = _open_fds()
        d = SerialEndpoint(reactor, path).connect(Factory.forProtocol(_Instrument))
        error = cast(SerialOpenError, await self.assertFailure(d, SerialOpenError))
        self.assertIn(path, str(error))
        self.assertIn("Inappropriate ioctl", str(error))
        self.assertEqual(_open_fds(), before)

    async def test_factoryRefuses(self) -> None:
        """
        A factory that builds no protocol fails the Deferred with
        ``NoProtocol`` and the device is never opened.
        """
        pty = _Pty(self)

        class Refusing(Factory):
            def buildProtocol(self, addr: object) -> None:
                return None

        before = _open_fds()
        d = SerialEndpoint(reactor, pty.device).connect(Refusing())
        await self.assertFailure(d, NoProtocol)
        self.assertEqual(_open_fds(), before)

    async def test_connectionMadeRaises(self) -> None:
        """
        If the protocol's ``connectionMade`` raises, the Deferred fails with
        that error and the device is closed again.
        """
        pty = _Pty(self)

        class Broken(Protocol):
            def connectionMade(self) -> None:
                raise ZeroDivisionError("broken driver")

        before = _open_fds()
        d = SerialEndpoint(reactor, pty.device).connect(Factory.forProtocol(Broken))
        await self.assertFailure(d, ZeroDivisionError)
        self.assertEqual(_open_fds(), before)

    async def test_unplugLosesConnection(self) -> None:
        """
        Closing the pty master, as pulling out a USB adapter does, delivers
        ``connectionLost`` to the protocol.
        """
        pty = _Pty(self)
        protocol, transport = await _connect(self, pty.device)
        pty.unplug()
        await protocol.lost
        assert protocol.reason is not None
        self.assertIsInstance(protocol.reason.value, ConnectionClosed)
        self.assertTrue(transport.disconnected)


@implementer(IStreamClientEndpoint)
class _RecordingEndpoint:
    """
    Wraps an endpoint and queues the outcome of every connection attempt,
    so a test can wait for the next one.
    """

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self._endpoint = endpoint
        self.attempts: DeferredQueue[tuple[str, object]] = DeferredQueue()

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        d = self._endpoint.connect(factory)

        # The serial endpoint answers synchronously, from inside
        # ClientService's state machine; a test woken there could not call
        # the service (Automat refuses re-entry), so outcomes are queued on
        # the next reactor turn.
        def connected(protocol: IProtocol) -> IProtocol:
            reactor.callLater(0, self.attempts.put, ("connected", protocol))
            return protocol

        def failed(reason: Failure) -> Failure:
            reactor.callLater(0, self.attempts.put, ("failed", reason.value))
            return reason

        return d.addCallbacks(connected, failed)


class ClientServiceTests(TestCase):
    """
    ``ClientService`` around a ``SerialEndpoint`` reopens a device that
    went away once it comes back.
    """

    timeout = 10

    async def test_reconnectsWhenDeviceReturns(self) -> None:
        """
        The device path is a symlink to a pty slave. After an unplug the
        link is gone and a reconnect attempt fails naming it; once the link
        points at a new pty the service reconnects and bytes flow again.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        link = os.path.join(directory, "ttyUSB0")
        first = _Pty(self)
        os.symlink(first.device, link)

        recording = _RecordingEndpoint(SerialEndpoint(reactor, link))
        service = ClientService(
            recording,
            Factory.forProtocol(_Instrument),
            retryPolicy=backoffPolicy(
                initialDelay=0.05, maxDelay=0.2, jitter=lambda: 0
            ),
            clock=reactor,
        )
        service.startService()
        self.addCleanup(service.stopService)

        outcome, _ = await recording.attempts.get()
        self.assertEqual(outcome, "connected")
        protocol = await service.whenConnected()
        assert isinstance(protocol, _Instrument)
        first.write(b"S>")
        await protocol.received.wait_for(b"S>")

        os.remove(link)
        first.unplug()
        await protocol.lost
        outcome, error = await recording.attempts.get()
        self.assertEqual(outcome, "failed")
        self.assertIsInstance(error, SerialOpenError)
        self.assertIn(link, str(error))

        second = _Pty(self)
        os.symlink(second.device, link)
        outcome, _ = await recording.attempts.get()
        while outcome == "failed":
            # An attempt may have started before the link came back.
            outcome, _ = await recording.attempts.get()
        self.assertEqual(outcome, "connected")
        current = await service.whenConnected()
        assert isinstance(current, _Instrument)
        self.assertIsNot(current, protocol)

        second.write(b"24.5\r\n")
        await current.received.wait_for(b"24.5\r\n")
        assert current.transport is not None
        current.transport.write(b"ts\r")
        await second.master.received.wait_for(b"ts\r")


class SendBreakTests(TestCase):
    """
    ``BreakableSerialPort.send_break`` holds the break with a delayed call,
    never by blocking.
    """

    timeout = 10

    async def _port(self, clock: Clock | None = None) -> BreakableSerialPort:
        pty = _Pty(self)
        _, transport = await _connect(self, pty.device, clock=clock)
        return transport

    async def test_breakTogglesWithoutBlocking(self) -> None:
        """
        ``send_break`` sets the break condition and returns at once; the
        condition is cleared, and the Deferred fires, only when the clock
        reaches the duration.
        """
        clock = Clock()
        port = await self._port(clock)
        d = port.send_break(250)
        self.assertTrue(port._serial.break_condition)
        self.assertNoResult(d)
        clock.advance(0.249)
        self.assertTrue(port._serial.break_condition)
        self.assertNoResult(d)
        clock.advance(0.001)
        self.assertFalse(port._serial.break_condition)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_breakRealReactor(self) -> None:
        """
        With the real reactor as the clock, the break ends by itself.
        """
        port = await self._port()
        d = port.send_break(20)
        self.assertTrue(port._serial.break_condition)
        await d
        self.assertFalse(port._serial.break_condition)

    async def test_durationOutOfRange(self) -> None:
        """
        Durations of zero or less, or over a minute, are refused; a minute
        is accepted.
        """
        clock = Clock()
        port = await self._port(clock)
        for duration in (0, -5, 60_001):
            error = self.assertRaises(ValueError, port.send_break, duration)
            self.assertIn(str(duration), str(error))
            self.assertIn("1 to 60000 ms", str(error))
        self.assertFalse(port._serial.break_condition)
        d = port.send_break(60_000)
        clock.advance(60)
        self.assertIsNone(self.successResultOf(d))

    async def test_breakInProgress(self) -> None:
        """
        A second break while one is held fails; the first is unaffected.
        """
        clock = Clock()
        port = await self._port(clock)
        first = port.send_break(100)
        self.failureResultOf(port.send_break(100), BreakInProgressError)
        clock.advance(0.1)
        self.assertIsNone(self.successResultOf(first))

    async def test_cancelEndsBreak(self) -> None:
        """
        Cancelling the Deferred ends the break at once.
        """
        clock = Clock()
        port = await self._port(clock)
        d = port.send_break(1000)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertFalse(port._serial.break_condition)
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_breakOnClosedPort(self) -> None:
        """
        A break on a port that has closed fails cleanly.
        """
        pty = _Pty(self)
        protocol, port = await _connect(self, pty.device)
        port.loseConnection()
        await protocol.lost
        failure = self.failureResultOf(port.send_break(100), ConnectionClosed)
        self.assertIn(pty.device, str(failure.value))

    async def test_closeDuringBreak(self) -> None:
        """
        Closing the port during a break clears it, cancels its timer and
        fails the break's Deferred.
        """
        clock = Clock()
        pty = _Pty(self)
        protocol, port = await _connect(self, pty.device, clock=clock)
        d = port.send_break(1000)
        serial_port = port._serial
        port.loseConnection()
        await protocol.lost
        self.failureResultOf(d, ConnectionClosed)
        self.assertFalse(serial_port.break_condition)
        self.assertFalse(serial_port.is_open)
        self.assertEqual(clock.getDelayedCalls(), [])
