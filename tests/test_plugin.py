"""
Tests for the ``twistd instrumentd`` plugin and its options.
"""

from __future__ import annotations

from twisted.application.service import IServiceMaker
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
