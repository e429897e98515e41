# -*- test-case-name: tests.test_plugin -*-
"""
``twistd instrumentd``: options and service construction.

Each part of instrumentd is a subcommand (``port-agent`` today).  The
subcommand modules are imported only when used, so ``twistd --help`` stays
fast.
"""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage

from instrumentd import __version__
from instrumentd.portagent.options import PortAgentOptions
from instrumentd.simulator.options import SimulateOptions


class Options(usage.Options):
    """
    Options for ``twistd instrumentd``.
    """

    synopsis = "SUBCOMMAND [options]"
    longdesc = (
        "Operate scientific instruments. Subcommands: port-agent holds one "
        "instrument's link, logs every byte and shares it with many clients."
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
            raise usage.UsageError(
                "a subcommand is required: "
                + ", ".join(str(command[0]) for command in self.subCommands)
            )


def _stop_on_hangup() -> None:
    """
    Make SIGHUP (a closed terminal, a supervisor's hang-up) shut a port
    agent down in order, flushing its datalog, rather than kill it outright.
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
    Build the service for the chosen subcommand.

    :param options: parsed :class:`Options`.
    :returns: the root service.
    """
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
