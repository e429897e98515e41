"""
pyserial's own ``rfc2217://`` client against a real port agent (a ``twistd``
child) whose instrument is a simulator on a pty: open, change the baud rate
and parity (the pty's real settings change), send and receive binary data
with 0xFF bytes, break, modem lines, close (the line is put back), all of it
byte-exact against the datalog.

pyserial's client blocks, so each of its calls runs in a reactor thread;
only this test does that, never library code.
"""

from __future__ import annotations

import os
import termios
from collections.abc import Callable
from typing import Any, TypeVar

import serial
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from instrumentd.packet import PacketType
from instrumentd.simulator.base import SimulatedInstrument, SimulatorSettings
from instrumentd.simulator.frontends import PtySerialDevice
from tests.agentsupport import (
    ByteClient,
    Conditions,
    LineClient,
    connect,
    elapse,
    payloads,
    reactor,
    read_datalog,
    run,
    start_agent,
    start_instrument,
    within,
)

T = TypeVar("T")

#: A binary record full of the byte telnet escapes, like an ADCP's PD0.
ENSEMBLE = b"\x7f\x7f" + bytes(range(256)) + b"\xff\xff\xff\x00\xff\r\n"
#: Binary bytes an operator's software sends.
TO_INSTRUMENT = b"bin\xff\x00\xff\xff\xfe\xfdend\r"


class BinaryInstrument(SimulatedInstrument):
    """
    An instrument that answers ``pd0`` with :data:`ENSEMBLE` and keeps
    everything it is sent.
    """

    model = "binary-test"

    def __init__(self, settings: SimulatorSettings | None = None, **kw: Any) -> None:
        super().__init__(settings, **kw)
        self.received = bytearray()
        self.conditions = Conditions()

    def data_received(self, data: bytes) -> None:
        self.received += data
        if self.received.endswith(b"pd0\r"):
            self.send(ENSEMBLE)
        self.conditions.changed()


def in_thread(f: Callable[..., T], *args: Any) -> Any:
    """
    Run one blocking pyserial call in a reactor thread, with a timeout.
    """
    return within(deferToThread(f, *args), f"pyserial {getattr(f, '__name__', f)}")


def pty_settings(path: str) -> tuple[int, int]:
    """
    The pty's speed and c_cflag, as the kernel has them.
    """
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        attributes = termios.tcgetattr(fd)
    finally:
        os.close(fd)
    return attributes[5], attributes[2]


class PyserialClientTests(TestCase):
    """
    pyserial's RFC 2217 client, unmodified and without ``ign_set_control``.
    """

    def test_session(self) -> None:
        async def go() -> None:
            instrument = BinaryInstrument(reactor=reactor)
            device = PtySerialDevice(instrument, reactor)
            path = device.open()
            self.addCleanup(device.close)
            datalog = os.path.abspath(self.mktemp())
            agent = await start_agent(
                self,
                f"serial:{path}:baudrate=9600",
                datalog_dir=datalog,
                heartbeat=0,
                rfc2217_port="tcp:0:interface=127.0.0.1",
            )
            sniff = await connect(self, agent.ports["sniff"], LineClient())
            url = f"rfc2217://127.0.0.1:{agent.ports['rfc2217']}"

            def open_port() -> serial.Serial:
                return serial.serial_for_url(url, baudrate=9600, timeout=10)

            port = await in_thread(open_port)
            self.addCleanup(lambda: port.close() if port.is_open else None)
            self.assertEqual(pty_settings(path)[0], termios.B9600)

            # Baud rate and parity change the real line.
            await in_thread(setattr, port, "baudrate", 19200)
            self.assertEqual(pty_settings(path)[0], termios.B19200)
            await in_thread(setattr, port, "parity", serial.PARITY_ODD)
            self.assertTrue(pty_settings(path)[1] & termios.PARODD)

            # Binary both ways, 0xFF included.
            await in_thread(port.write, b"pd0\r")
            received = await in_thread(port.read, len(ENSEMBLE))
            self.assertEqual(received, ENSEMBLE)
            await in_thread(port.write, TO_INSTRUMENT)
            await instrument.conditions.when(
                lambda: instrument.received.endswith(TO_INSTRUMENT),
                "the binary bytes to reach the instrument",
            )
            self.assertEqual(bytes(instrument.received), b"pd0\r" + TO_INSTRUMENT)

            # Break on and off, each acknowledged.
            await in_thread(setattr, port, "break_condition", True)
            await in_thread(setattr, port, "break_condition", False)

            # Modem lines: DTR and RTS are acknowledged (a pty has none, so
            # they are kept as nominal states); the input lines come from
            # the agent's notifications (a pty's read as off).
            await in_thread(setattr, port, "dtr", False)
            await in_thread(setattr, port, "rts", False)
            for line in ("cts", "dsr", "ri", "cd"):
                self.assertFalse(await in_thread(getattr, port, line), line)
            await in_thread(setattr, port, "dtr", True)

            # Closing gives the line back as the agent opened it.
            await in_thread(port.close)
            await sniff.wait_for_line(
                lambda text: "session ended; line restored" in text,
                "the session's end in the sniff stream",
            )
            speed, cflag = pty_settings(path)
            self.assertEqual(speed, termios.B9600)
            self.assertFalse(cflag & termios.PARODD)

            await within(agent.stop(), "the agent to stop")
            packets = read_datalog(datalog)
            self.assertEqual(
                payloads(packets, PacketType.DATA_FROM_DRIVER), b"pd0\r" + TO_INSTRUMENT
            )
            self.assertEqual(
                payloads(packets, PacketType.DATA_FROM_INSTRUMENT), ENSEMBLE
            )
            commands = [
                p.payload.decode()
                for p in packets
                if p.type is PacketType.PORT_AGENT_COMMAND
            ]
            text = "\n".join(commands)
            for expected in (
                "set baudrate 19200: applied",
                "set parity O: applied",
                "set break on: applied",
                "set break off: applied",
                "set DTR off: not applied: the device has no DTR line",
                "session ended; line restored to 9600 8N1",
            ):
                self.assertIn(expected, text)

        return run(go())


class PyserialTokenTests(TestCase):
    """
    pyserial's client with an agent that takes a token: it refuses
    NEW-ENVIRON, opens with the line's settings, sends the token as its
    first line, and may then change the line.
    """

    def test_token(self) -> None:
        async def go() -> None:
            token = b"pyserial-token-0123456789"
            token_file = os.path.abspath(self.mktemp())
            with open(token_file, "wb") as f:
                f.write(token + b"\n")
            instrument = BinaryInstrument(reactor=reactor)
            device = PtySerialDevice(instrument, reactor)
            path = device.open()
            self.addCleanup(device.close)
            agent = await start_agent(
                self,
                f"serial:{path}:baudrate=9600",
                heartbeat=0,
                rfc2217_port="tcp:0:interface=127.0.0.1",
                token_file=token_file,
            )
            url = f"rfc2217://127.0.0.1:{agent.ports['rfc2217']}"
            port = await in_thread(
                lambda: serial.serial_for_url(url, baudrate=9600, timeout=10)
            )
            self.addCleanup(lambda: port.close() if port.is_open else None)
            # Before the token nothing changes: the answer is the line's rate.
            with self.assertRaises(ValueError):
                await in_thread(setattr, port, "baudrate", 19200)
            self.assertEqual(pty_settings(path)[0], termios.B9600)
            await in_thread(port.write, token + b"\r\n")
            await in_thread(setattr, port, "baudrate", 19200)
            self.assertEqual(pty_settings(path)[0], termios.B19200)
            await in_thread(port.write, b"pd0\r")
            self.assertEqual(await in_thread(port.read, len(ENSEMBLE)), ENSEMBLE)
            await in_thread(port.close)

        return run(go())


class TelnetClientTests(TestCase):
    """
    A telnet-level client over a real socket, against an agent whose
    instrument is a TCP device server: refused options, a subnegotiation
    split across reads, and settings acknowledged but not applied.
    """

    def test_negotiationOverSocket(self) -> None:
        async def go() -> None:
            instrument = await start_instrument(self)
            datalog = os.path.abspath(self.mktemp())
            agent = await start_agent(
                self,
                instrument,
                datalog_dir=datalog,
                heartbeat=0,
                rfc2217_port="tcp:0:interface=127.0.0.1",
            )
            client = await connect(self, agent.ports["rfc2217"], ByteClient())
            opening = bytes([255, 251, 0, 255, 253, 0, 255, 251, 3])
            await client.wait_for_bytes(opening, "the server's opening offers")
            # ECHO and NAWS refused, COM-PORT-OPTION agreed and the modem
            # state sent at once.
            client.write(bytes([255, 253, 1, 255, 251, 31, 255, 251, 44]))
            await client.wait_for_bytes(
                bytes([255, 252, 1, 255, 254, 31, 255, 253, 44])
                + bytes([255, 250, 44, 107, 0, 255, 240]),
                "refusals, agreement and a modem state",
            )
            # SET-BAUDRATE 19200 in two reads: no answer to half a command.
            command = bytes([255, 250, 44, 1, 0, 0, 0x4B, 0, 255, 240])
            client.write(command[:5])
            seen = len(client.received)
            await elapse(0.3)
            self.assertEqual(len(client.received), seen)
            client.write(command[5:])
            await client.wait_for_bytes(
                bytes([255, 250, 44, 101, 0, 0, 0x4B, 0, 255, 240]),
                "the baud rate answer",
            )
            instrument.send(b"\xff\x00\xff")
            await client.wait_for_bytes(b"\xff\xff\x00\xff\xff", "escaped data")
            await within(client.disconnect(), "the client to leave")
            await within(agent.stop(), "the agent to stop")
            text = "\n".join(
                p.payload.decode()
                for p in read_datalog(datalog)
                if p.type is PacketType.PORT_AGENT_COMMAND
            )
            self.assertIn("set baudrate 19200: not applied: the instrument link", text)

        return run(go())
