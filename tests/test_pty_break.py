"""
A serial break across a pty: the host's L{BreakableSerialPort} on the
slave, a simulated instrument on the master.

A Linux pty carries no break (C{tcsendbreak} on the slave is a no-op seen
nowhere), so the port writes L{PTY_BREAK_MARK} and the simulator's pty front
end turns it back into a break.  Real pty, real reactor.
"""

from __future__ import annotations

import os
import termios

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from instrumentd.endpoints.serial import PTY_BREAK_MARK, BreakableSerialPort, is_pty
from instrumentd.simulator import PtySerialDevice, SimulatedInstrument
from tests.agentsupport import reactor


class Listener(SimulatedInstrument):
    """
    An instrument that records what reaches it, breaks included.
    """

    def __init__(self) -> None:
        super().__init__(reactor=reactor)
        self.heard: list[bytes | None] = []
        self.waiting: list[tuple[int, Deferred[None]]] = []

    def data_received(self, data: bytes) -> None:
        self.heard.append(data)
        self._check()

    def break_received(self) -> None:
        self.heard.append(None)
        self._check()

    def text(self) -> bytes:
        return b"".join(b"<BREAK>" if item is None else item for item in self.heard)

    def until(self, count: int) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        self.waiting.append((count, done))
        self._check()
        return done

    def _check(self) -> None:
        breaks = self.heard.count(None)
        for item in list(self.waiting):
            if breaks >= item[0]:
                self.waiting.remove(item)
                item[1].callback(None)


class PtyBreakTests(TestCase):
    """
    Breaks from a host serial port reach a simulator on a pty.
    """

    timeout = 10

    def test_tcsendbreakIsLostOnAPty(self) -> None:
        """
        The reason for the mark: on a pty, C{tcsendbreak} on the slave
        succeeds and the master reads nothing.
        """
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        os.set_blocking(master, False)
        termios.tcsendbreak(slave, 0)
        self.assertRaises(BlockingIOError, os.read, master, 10)
        self.assertTrue(is_pty(slave))
        self.assertFalse(is_pty(master))

    async def test_breakCrossesThePty(self) -> None:
        """
        Bytes, a break, more bytes: the instrument hears them in that order,
        and the break as a break, not as bytes.
        """
        instrument = Listener()
        device = PtySerialDevice(instrument, reactor)
        path = device.open()
        self.addCleanup(device.close)
        port = BreakableSerialPort(Protocol(), path, reactor)
        self.addCleanup(port.loseConnection)
        port.write(b"CS\r")
        await port.send_break(20)
        port.write(b"PS0\r")
        await port.send_break(20)
        await instrument.until(2)
        self.assertEqual(instrument.line.breaks_received, 2)
        self.assertTrue(instrument.text().startswith(b"CS\r<BREAK>PS0\r<BREAK>"))
        self.assertNotIn(PTY_BREAK_MARK, b"".join(x for x in instrument.heard if x))

    def test_markCutByReads(self) -> None:
        """
        A mark split across reads is still one break, and bytes that only
        look like its start are passed on once the next read shows they
        are not one.
        """
        from instrumentd.simulator.frontends import _PtyProtocol

        instrument = Listener()
        protocol = _PtyProtocol(instrument, None)  # type: ignore[arg-type]
        for piece in (b"a\xff", b"\x00", b"\x00b\xff", b"\x01c"):
            protocol.dataReceived(piece)
        self.assertEqual(instrument.text(), b"a<BREAK>b\xff\x01c")
