# -*- test-case-name: tests.test_plugin -*-
"""
``twistd instrumentd``: options and service construction.

With no subcommand, ``twistd instrumentd`` runs the station (from
``--config FILE``, or the built-in demo without it).  The subcommands run
one part on its own: ``port-agent`` and ``simulate``.  Their modules are
imported only when used, so ``twistd --help`` stays fast.
"""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage

from instrumentd import __version__
from instrumentd.portagent.options import PortAgentOptions
from instrumentd.simulator.options import SimulateOptions
from instrumentd.station.options import StationOptions


class Options(StationOptions):
    """
    Options for ``twistd instrumentd``: the station's own (see
    :class:`~instrumentd.station.options.StationOptions`), or a subcommand.
    """

    synopsis = "[--config FILE] [--api ENDPOINT] | SUBCOMMAND [options]"
    longdesc = (
        "Operate scientific instruments. Without a subcommand, run the "
        "station: port agents, drivers, sinks and the HTTP API from --config "
        "FILE, or a demo station (a simulated SBE 37-SMP) without it. "
        "Subcommands: port-agent holds one instrument's link, logs every byte "
        "and shares it with many clients; simulate runs a simulated instrument."
    )
    subCommands: list[list[object]] = [
        ["port-agent", None, PortAgentOptions, "Run a port agent for one instrument."],
        ["simulate", None, SimulateOptions, "Run a simulated instrument."],
    ]

    def opt_version(self) -> None:
        """
        Print the instrumentd version and exit.
        """
        print(f"instrumentd {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            self.load_station()
            return
        given = self.station_options_given()
        if given:
            raise usage.UsageError(
                f"{', '.join(given)}: station options, which run the station "
                f"(no subcommand); the {self.subCommand} subcommand does not "
                "take them"
            )


def _stop_on_hangup() -> None:
    """
    Make SIGHUP (a closed terminal, a supervisor's hang-up) shut a port
    agent or the station down in order, flushing datalogs and sinks and
    stopping child agents, rather than kill it outright.
    The handler is installed once the reactor runs, like twistd's own.
    """
    import signal

    from twisted.internet import reactor
    from twisted.internet.interfaces import IReactorFromThreads

    def hangup(signum: int, frame: object) -> None:
        # callFromThread wakes the reactor from a signal handler safely.
        IReactorFromThreads(reactor).callFromThread(reactor.stop)

    reactor.callWhenRunning(signal.signal, signal.SIGHUP, hangup)


def makeService(options: Options) -> IService:
    """
    Build the service for the chosen subcommand, or the station.

    :param options: parsed :class:`Options`.
    :returns: the root service.
    """
    if options.subCommand is None:
        from instrumentd.station.service import StationService

        assert options.station_config is not None
        _stop_on_hangup()
        return StationService(options.station_config, demo=options.demo)
    if options.subCommand == "port-agent":
        from instrumentd.portagent.agent import PortAgent

        sub = options.subOptions
        assert isinstance(sub, PortAgentOptions)
        _stop_on_hangup()
        return PortAgent(sub.config())
    if options.subCommand == "simulate":
        from instrumentd.simulator.options import make_service

        assert isinstance(options.subOptions, SimulateOptions)
        return make_service(options.subOptions)
    raise usage.UsageError(f"unknown subcommand {options.subCommand!r}")
