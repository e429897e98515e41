"""
Real-process tests of a port agent on a serial line: the instrument is the
master side of a pty pair, the agent (a real ``twistd`` child) opens the
slave through the ``serial:`` endpoint.  Also twistd's own ``--pidfile``.
"""

from __future__ import annotations

import os
import signal
import sys
import tty
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from instrumentd.packet import PacketType
from tests.agentsupport import (
    Conditions,
    PacketClient,
    connect,
    payloads,
    reactor,
    read_datalog,
    run,
    start_agent,
    within,
)


@implementer(IReadDescriptor)
class PtyInstrument:
    """
    The instrument end of a serial line: the master side of a pty whose
    slave is reached through a symlink, so it can be unplugged and plugged
    back in at the same device path.

    :ivar received: every byte the agent wrote to the line.
    """

    def __init__(self, link: str) -> None:
        self.link = link
        self.received = bytearray()
        self.conditions = Conditions()
        self._master = -1
        self._slave = -1

    def plug_in(self) -> None:
        """
        Create a new pty and point the device path at it.
        """
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        if os.path.lexists(self.link):
            os.unlink(self.link)
        os.symlink(os.ttyname(self._slave), self.link)
        reactor.addReader(self)

    def unplug(self) -> None:
        """
        Remove the device: close the pty and the device path.
        """
        if self._master >= 0:
            reactor.removeReader(self)
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1
        if os.path.lexists(self.link):
            os.unlink(self.link)

    def send(self, data: bytes) -> None:
        """
        Send bytes down the line to the agent.
        """
        os.write(self._master, data)

    def wait_for_received(self, data: bytes) -> Deferred[None]:
        """
        Wait until ``data`` has reached the instrument.
        """
        return self.conditions.when(
            lambda: data in self.received, f"{data!r} to reach the pty instrument"
        )

    def fileno(self) -> int:
        return self._master

    def doRead(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.received += data
        self.conditions.changed()

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "PtyInstrument"


class SerialAgentTests(TestCase):
    """
    A port agent on a serial line.
    """

    def test_ptyInstrument(self) -> None:
        """
        An agent started while the device is absent keeps trying; when the
        device appears it opens it and says CONNECTED; bytes flow both ways
        between the serial instrument and a data client and are recorded;
        when the device vanishes the agent says DISCONNECTED, and when it
        returns at the same path the agent reopens it, says CONNECTED, and
        data flows again, all of it in the datalog.
        """

        async def go() -> None:
            link = os.path.abspath(self.mktemp())
            instrument = PtyInstrument(link)
            self.addCleanup(instrument.unplug)
            datalog = os.path.abspath(self.mktemp())
            agent = await start_agent(
                self,
                f"serial:{link}:baudrate=9600",
                datalog_dir=datalog,
                heartbeat=0,
                disconnect_grace=0.3,
                max_reconnect_delay=0.5,
            )
            client = await connect(self, agent.ports["data"], PacketClient())

            def connected(count: int) -> Deferred[None]:
                def enough() -> bool:
                    statuses = client.of_type(PacketType.PORT_AGENT_STATUS)
                    return [p.payload for p in statuses].count(b"CONNECTED") >= count

                return client.conditions.when(enough, f"CONNECTED number {count}")

            instrument.plug_in()
            await connected(1)
            first = b"SBE37-SMP V 2.6 SERIAL NO. 2165\r\nS>"
            instrument.send(first)
            await client.wait_for_data(len(first))
            client.write(b"DS\r\n")
            await instrument.wait_for_received(b"DS\r\n")

            instrument.unplug()
            await client.wait_for_packet(
                PacketType.PORT_AGENT_STATUS, lambda p: p.payload == b"DISCONNECTED"
            )
            instrument.plug_in()
            await connected(2)
            second = b"# 12.3456,  3.51234,   10.123\r\n"
            instrument.send(second)
            await client.wait_for_data(len(first) + len(second))
            self.assertEqual(bytes(client.instrument_data), first + second)
            await within(agent.stop(), "the agent to stop")
            logged = read_datalog(datalog)
            self.assertEqual(
                payloads(logged, PacketType.DATA_FROM_INSTRUMENT), first + second
            )
            self.assertEqual(payloads(logged, PacketType.DATA_FROM_DRIVER), b"DS\r\n")
            statuses = [
                p.payload for p in logged if p.type is PacketType.PORT_AGENT_STATUS
            ]
            # A DISCONNECTED may come first: the device was absent at start.
            self.assertEqual(
                statuses[-3:], [b"CONNECTED", b"DISCONNECTED", b"CONNECTED"]
            )
            self.assertIn(len(statuses), (3, 4))

        return run(go())


class _Twistd(ProcessProtocol):
    def __init__(self) -> None:
        self.output = bytearray()
        self.conditions = Conditions()
        self.ended: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        self.conditions.changed()

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        code: Any = getattr(reason.value, "exitCode", None)
        self.conditions.changed()
        self.ended.callback(code)


class PidfileTests(TestCase):
    """
    twistd's own --pidfile keeps working for a port agent.
    """

    def test_pidfile(self) -> None:
        """
        The pidfile holds the agent's pid while it runs and is removed when
        it exits on SIGTERM with status 0.
        """

        async def go() -> None:
            pidfile = os.path.abspath(self.mktemp())
            datalog = os.path.abspath(self.mktemp())
            process = _Twistd()
            argv = [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "-n",
                f"--pidfile={pidfile}",
                "instrumentd",
                "port-agent",
                "--name",
                "PIDFILE01",
                "--instrument",
                "tcp:host=127.0.0.1:port=9",
                "--datalog-dir",
                datalog,
            ]
            transport = reactor.spawnProcess(
                process, sys.executable, argv, env=os.environ
            )
            try:
                await process.conditions.when(
                    lambda: b"port agent PIDFILE01 ready" in process.output,
                    "the agent to be ready",
                )
                with open(pidfile) as f:
                    self.assertEqual(int(f.read()), transport.pid)
            finally:
                if transport.pid is not None:
                    os.kill(transport.pid, signal.SIGTERM)
            code = await within(process.ended, "the agent to exit")
            self.assertEqual(code, 0, process.output.decode(errors="replace")[-2000:])
            self.assertFalse(os.path.exists(pidfile))

        return run(go())
