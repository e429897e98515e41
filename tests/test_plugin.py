"""
Tests for the ``twistd instrumentd`` plugin and its options.
"""

from __future__ import annotations

import signal

from twisted.application.service import IServiceMaker, Service
from twisted.internet.defer import fail
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin, getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from instrumentd import tap


class PluginTests(SynchronousTestCase):
    """
    The plugin is discoverable and well-formed.
    """

    def test_discoverable(self) -> None:
        """
        C{getPlugins(IServiceMaker)} finds the C{instrumentd} tap, which
        provides both C{IPlugin} and C{IServiceMaker}.
        """
        makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
        self.assertIn("instrumentd", makers)
        maker = makers["instrumentd"]
        self.assertTrue(verifyObject(IPlugin, maker))
        self.assertTrue(verifyObject(IServiceMaker, maker))
        self.assertIs(maker.options, tap.Options)

    def test_subcommands(self) -> None:
        """
        The options list the port-agent and simulate subcommands.
        """
        names = [c[0] for c in tap.Options.subCommands]
        self.assertIn("port-agent", names)
        self.assertIn("simulate", names)

    def test_noSubcommandIsTheStation(self) -> None:
        """
        Without a subcommand the options are the station's: the built-in
        demo without --config.
        """
        options = tap.Options()
        options.parseOptions([])
        self.assertIsNone(options.subCommand)

    def test_stationOptionsNotForSubcommands(self) -> None:
        """
        Station options given with a subcommand are refused, naming them.
        """
        e = self.assertRaises(
            usage.UsageError,
            tap.Options().parseOptions,
            ["--api", "tcp:0", "port-agent", "--name", "X", "--instrument", "demo"],
        )
        self.assertIn("--api", str(e))
        self.assertIn("port-agent", str(e))


class ProcessServiceTests(SynchronousTestCase):
    """
    L{tap.ProcessService}: what concerns a whole twistd instrumentd process.
    """

    def make(self) -> tuple[tap.ProcessService, MemoryReactorClock, Service]:
        reactor = MemoryReactorClock()
        part = Service()
        return tap.ProcessService(part, reactor=reactor), reactor, part

    def test_orderlyStopExitsZero(self) -> None:
        """
        After an orderly stop asked for by SIGTERM or SIGINT, the signal
        is cleared so that twistd exits 0 instead of re-raising it.
        """
        for signum in (signal.SIGTERM, signal.SIGINT):
            root, reactor, part = self.make()
            root.startService()
            reactor._exitSignal = signum  # type: ignore[attr-defined]
            self.successResultOf(root.stopService())
            self.assertFalse(part.running)
            self.assertIsNone(reactor._exitSignal)  # type: ignore[attr-defined]

    def test_failedStopKeepsSignal(self) -> None:
        """
        If stopping fails, the signal is left, so the exit status says so.
        """
        root, reactor, part = self.make()
        part.stopService = lambda: fail(RuntimeError("datalog"))  # type: ignore[method-assign]
        root.startService()
        reactor._exitSignal = signal.SIGTERM  # type: ignore[attr-defined]
        self.successResultOf(root.stopService())
        self.assertEqual(reactor._exitSignal, signal.SIGTERM)  # type: ignore[attr-defined]
        self.assertGreaterEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_hangupHandlerFirst(self) -> None:
        """
        The SIGHUP handler is installed before the parts' own when-running
        hooks (which announce readiness), so a hang-up sent on readiness is
        handled.
        """
        reactor = MemoryReactorClock()
        part = Service()
        part.startService = lambda: reactor.callWhenRunning(lambda: None)  # type: ignore[method-assign]
        tap.ProcessService(part, reactor=reactor).startService()
        first, args, _ = reactor.whenRunningHooks[0]
        self.assertEqual((first, args[0]), (signal.signal, signal.SIGHUP))

    def test_hangupStops(self) -> None:
        """
        Once running, SIGHUP stops the reactor (an orderly shutdown).
        """
        self.addCleanup(signal.signal, signal.SIGHUP, signal.getsignal(signal.SIGHUP))
        root, reactor, _part = self.make()
        reactor.callFromThread = lambda f, *a: f(*a)  # type: ignore[attr-defined]
        root.startService()
        reactor.running = True
        for hook, args, kwargs in reactor.whenRunningHooks:
            hook(*args, **kwargs)
        handler = signal.getsignal(signal.SIGHUP)
        assert callable(handler)
        handler(signal.SIGHUP, None)
        self.assertTrue(reactor.hasStopped)
