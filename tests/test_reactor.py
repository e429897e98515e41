"""
Tests for L{instrumentd.reactor}: instrumentd's epoll reactor
dispatches a plain read without the legacy log context, everything else as
Twisted does, and agent and station processes install it unless told
otherwise.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from twisted.internet import abstract, error, main
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableDescriptor
from twisted.internet.utils import getProcessOutput
from twisted.python import log
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from instrumentd import reactor as agent_reactor
from instrumentd.portagent.launcher import launch_port_agent
from tests.test_station_e2e import _TWISTD, StationProcess

if agent_reactor.InstrumentdReactor is None:  # pragma: no cover - not Linux
    skip = "instrumentd's reactor needs epoll"


class _Reader(abstract.FileDescriptor):
    """
    One end of a socket pair, read (or written) by the reactor under test.
    """

    def __init__(self, sock: socket.socket, reactor: Any, fail: bool = False) -> None:
        super().__init__(reactor)
        self.sock = sock
        self.fail = fail
        self.reads: list[bytes] = []
        self.lost: list[Any] = []
        self.writes = 0
        self.connected = 1

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> object:
        if self.fail:
            raise RuntimeError("a protocol's bug")
        data = self.sock.recv(4096)
        if not data:
            return main.CONNECTION_DONE
        self.reads.append(data)
        return None

    def doWrite(self) -> object:
        # Nothing to write: once is enough.
        self.writes += 1
        if self.fail:
            raise RuntimeError("a protocol's bug")
        self.reactor.removeWriter(self)
        return None

    def connectionLost(self, reason: Any) -> None:
        self.lost.append(reason)
        self.connected = 0


class DispatchTests(SynchronousTestCase):
    """
    A fresh L{InstrumentdReactor}, not running: each test turns it by hand.
    """

    def setUp(self) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.addCleanup(self.ours.close)
        self.addCleanup(self.theirs.close)
        # Cleaned up first: the reactor lets go of the sockets before they close.
        self.reactor = agent_reactor.InstrumentdReactor()
        self.addCleanup(self._close_reactor)
        self.logged: list[object] = []
        original = log.callWithLogger

        def counting(logger: object, func: Any, *args: Any, **kw: Any) -> Any:
            self.logged.append(logger)
            return original(logger, func, *args, **kw)

        self.patch(log, "callWithLogger", counting)

    def _close_reactor(self) -> None:
        self.reactor.removeAll()
        for reader in list(self.reactor._internalReaders):
            self.reactor.removeReader(reader)
            reader.connectionLost(None)
        self.reactor._poller.close()

    def test_plainReadWithoutLogContext(self) -> None:
        """
        A socket that is only readable is read, without the legacy log's
        per-event context.
        """
        reader = _Reader(self.ours, self.reactor)
        self.reactor.addReader(reader)
        self.theirs.sendall(b"hello")
        self.reactor.doIteration(5)
        self.assertEqual(reader.reads, [b"hello"])
        self.assertEqual(self.logged, [])

    def test_plainWriteWithoutLogContext(self) -> None:
        """
        A socket that is only writable is written, without the legacy log's
        per-event context.
        """
        writer = _Reader(self.ours, self.reactor)
        self.reactor.addWriter(writer)
        self.reactor.doIteration(5)
        self.assertEqual(writer.writes, 1)
        self.assertEqual(self.logged, [])

    def test_errorInWriteDisconnects(self) -> None:
        """
        An exception from a write is logged and ends that connection, as in
        Twisted's own reactor.
        """
        writer = _Reader(self.ours, self.reactor, fail=True)
        self.reactor.addWriter(writer)
        self.reactor.doIteration(5)
        self.assertEqual(len(writer.lost), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_endOfStreamDisconnects(self) -> None:
        """
        The end of the stream still ends the connection, with Twisted's own
        reason.
        """
        reader = _Reader(self.ours, self.reactor)
        self.reactor.addReader(reader)
        self.theirs.shutdown(socket.SHUT_WR)
        self.reactor.doIteration(5)
        self.assertEqual(len(reader.lost), 1)
        self.assertTrue(reader.lost[0].check(main.CONNECTION_DONE.__class__))

    def test_errorInReadDisconnects(self) -> None:
        """
        An exception from a read is logged and ends that connection, as in
        Twisted's own reactor.
        """
        reader = _Reader(self.ours, self.reactor, fail=True)
        self.reactor.addReader(reader)
        self.theirs.sendall(b"x")
        self.reactor.doIteration(5)
        self.assertEqual(len(reader.lost), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_lostDescriptorDisconnects(self) -> None:
        """
        A connection whose descriptor is gone (its C{fileno} is -1 when its
        event comes) is not read, and ends with Twisted's reason for it.
        """

        class _Lost(_Reader):
            gone = False

            def fileno(self) -> int:
                return -1 if self.gone else super().fileno()

        reader = _Lost(self.ours, self.reactor)
        self.reactor.addReader(reader)
        reader.gone = True
        self.theirs.sendall(b"x")
        self.reactor.doIteration(5)
        self.assertEqual(reader.reads, [])
        self.assertEqual(len(reader.lost), 1)
        self.assertTrue(reader.lost[0].check(error.ConnectionFdescWentAway))

    def test_halfCloseFromRead(self) -> None:
        """
        The end of the stream met by a read of a half-closeable connection
        closes only its reading side (C{readConnectionLost}), as in
        Twisted's own reactor.
        """

        @implementer(IHalfCloseableDescriptor)
        class _Half(_Reader):
            def readConnectionLost(self, reason: Any) -> None:
                self.half = reason

        reader = _Half(self.ours, self.reactor)
        self.reactor.addReader(reader)
        self.theirs.shutdown(socket.SHUT_WR)
        self.reactor.doIteration(5)
        self.assertEqual(reader.lost, [])
        self.assertTrue(reader.half.check(main.CONNECTION_DONE.__class__))

    def test_errorInDisconnectLogged(self) -> None:
        """
        An exception that escapes Twisted's own handling of a read (here
        from the connection's C{connectionLost}) is logged, and the reactor
        turns on.
        """

        class _Failing(_Reader):
            def connectionLost(self, reason: Any) -> None:
                super().connectionLost(reason)
                raise RuntimeError("a bug in connectionLost")

        reader = _Failing(self.ours, self.reactor)
        self.reactor.addReader(reader)
        self.theirs.shutdown(socket.SHUT_WR)
        self.reactor.doIteration(5)
        self.assertEqual(len(reader.lost), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_hangUpTakesTheUsualWay(self) -> None:
        """
        An event that is not a plain read (here a hang-up beside the end of
        the stream) goes through the log context as in Twisted's reactor.
        """
        reader = _Reader(self.ours, self.reactor)
        self.reactor.addReader(reader)
        self.theirs.close()
        self.reactor.doIteration(5)
        self.assertEqual(self.logged, [reader])
        self.assertEqual(len(reader.lost), 1)


#: Prints whether the agent's reactor was installed and which reactor
#: Twisted then uses; ``poll`` as the first argument installs Twisted's poll
#: reactor first, as ``twistd --reactor=poll`` would.
_CHOOSE = """
import sys
if sys.argv[1:] == ["poll"]:
    from twisted.internet import pollreactor
    pollreactor.install()
from instrumentd.reactor import install_if_unchosen
installed = install_if_unchosen()
from twisted.internet import reactor
print(installed, type(reactor).__name__)
"""


class InstalledTests(TestCase):
    """
    A port agent process runs on L{InstrumentdReactor} unless a reactor was
    chosen for it.
    """

    def test_agentProcess(self) -> None:
        """
        A real agent process's log names the agent's reactor.
        """
        from twisted.internet import reactor

        async def go() -> None:
            with socket.socket() as closed:
                closed.bind(("127.0.0.1", 0))
                port = closed.getsockname()[1]
            agent = await launch_port_agent(
                name="REACTOR01",
                instrument=f"tcp:host=127.0.0.1:port={port}",
                datalog_dir=self.mktemp(),
                heartbeat=0,
                reactor=reactor,
            )
            await agent.stop()
            self.assertIn(
                "reactor class: instrumentd.reactor.InstrumentdReactor",
                agent.stdout_tail,
            )

        return Deferred.fromCoroutine(go())

    def _choose(self, *args: str) -> Deferred[bytes]:
        from twisted.internet import reactor

        return getProcessOutput(
            sys.executable,
            ["-c", _CHOOSE, *args],
            env=dict(os.environ),
            reactor=reactor,
        )

    def test_installedWhenUnchosen(self) -> None:
        """
        With no reactor installed yet, the agent's is.
        """
        return self._choose().addCallback(
            self.assertEqual, b"True InstrumentdReactor\n"
        )

    def test_chosenReactorKept(self) -> None:
        """
        A reactor installed before (twistd's ``--reactor``) is kept.
        """
        return self._choose("poll").addCallback(
            self.assertEqual, b"False PollReactor\n"
        )


class StationInstalledTests(TestCase):
    """
    A station process (``twistd instrumentd``) runs on
    L{InstrumentdReactor} too, unless twistd was given a reactor.
    """

    async def run_station(self, *twistd: str) -> str:
        """
        Run a station without instruments until its API listens, then stop
        it.

        :param twistd: twistd's own options, before ``instrumentd``.
        :returns: what it logged.
        """
        from twisted.internet import reactor

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        station = StationProcess()
        argv = [sys.executable, "-u", "-c", _TWISTD, "-n", "--pidfile=", *twistd]
        reactor.spawnProcess(  # type: ignore[attr-defined]
            station,
            sys.executable,
            [*argv, "instrumentd", "--api", "tcp:0:interface=127.0.0.1"],
            env=dict(os.environ),
            path=directory,
        )

        async def stop() -> None:
            if station.exit_code is None:
                station.transport.signalProcess("KILL")  # type: ignore[union-attr]
                await station.ended

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        await station.url
        station.transport.signalProcess("TERM")  # type: ignore[union-attr]
        self.assertEqual(await station.ended, 0, station.output)
        return station.output

    async def test_stationProcess(self) -> None:
        """
        A real station process's log names instrumentd's reactor.
        """
        output = await self.run_station()
        self.assertIn("reactor class: instrumentd.reactor.InstrumentdReactor", output)

    async def test_chosenReactorKept(self) -> None:
        """
        A station started with twistd's ``--reactor`` runs on that one.
        """
        output = await self.run_station("--reactor=poll")
        self.assertIn("reactor class: twisted.internet.pollreactor.PollReactor", output)
