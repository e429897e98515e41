# -*- test-case-name: tests.test_plugin -*-
"""
``twistd instrumentd``: options and service construction.

With no subcommand, ``twistd instrumentd`` runs the station (from
``--config FILE``, or the built-in demo without it).  The subcommands run
one part on its own: ``port-agent`` and ``simulate``; ``collect`` runs
the shore collector (:mod:`instrumentd.collector`).  Their modules are
imported only when used, so ``twistd --help`` stays fast.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    globalLogPublisher,
)
from twisted.python import usage
from zope.interface import provider

from instrumentd import __version__
from instrumentd.collector.options import CollectOptions
from instrumentd.portagent.options import PortAgentOptions
from instrumentd.simulator.options import SimulateOptions
from instrumentd.station.options import StationOptions


class Options(StationOptions):
    """
    Options for ``twistd instrumentd``: the station's own (see
    :class:`~instrumentd.station.options.StationOptions`), or a subcommand.
    """

    synopsis = "[--config FILE] [--api ENDPOINT] [--check] | SUBCOMMAND [options]"
    longdesc = (
        "Operate scientific instruments. Without a subcommand, run the "
        "station: port agents, drivers, sinks and the HTTP API from --config "
        "FILE, or a demo station (a simulated SBE 37-SMP) without it. "
        "Subcommands: port-agent holds one instrument's link, logs every byte "
        "and shares it with many clients; simulate runs a simulated instrument; "
        "collect archives stations' data from an MQTT broker."
    )
    subCommands: list[list[object]] = [
        ["port-agent", None, PortAgentOptions, "Run a port agent for one instrument."],
        ["simulate", None, SimulateOptions, "Run a simulated instrument."],
        [
            "collect",
            None,
            CollectOptions,
            "Archive stations' data from an MQTT broker (the shore collector).",
        ],
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


class ProcessService(MultiService):
    """
    The root of a ``twistd instrumentd`` process: what concerns the process
    rather than any one part (which may also run inside another program).

    - SIGHUP (a closed terminal, a supervisor's hang-up) shuts down in order,
      flushing datalogs and sinks and stopping child agents, rather than
      killing the process outright.
    - After an orderly shutdown on SIGTERM, SIGINT or SIGHUP the process
      exits 0.  twistd would re-raise the signal on itself once the reactor
      stops, so a process that flushed everything would end exactly like one
      killed before it could; whoever started it could not tell the two
      apart.  If stopping failed, the signal is left, and the exit says so.
    - A part that cannot start (a port already in use) is one clear line
      in the log (the part's own, or ``cannot start: ...``) and exit status
      1, without a traceback: the reason is all an operator needs.

    :param service: the part this process runs.
    :param reactor: the reactor; the global one if ``None``.
    """

    log = Logger()

    def __init__(self, service: IService, reactor: Any = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor = reactor
        service.setServiceParent(self)

    def startService(self) -> None:
        # Before the parts start: their own when-running hooks announce that
        # they are ready (a status file), and whoever reads it may send
        # SIGHUP at once, so the handler must be in place first.
        self._reactor.callWhenRunning(signal.signal, signal.SIGHUP, self._hangup)
        said: list[LogEvent] = []

        @provider(ILogObserver)
        def critical(event: LogEvent) -> None:
            if event.get("log_level") is LogLevel.critical:
                said.append(event)

        globalLogPublisher.addObserver(critical)
        try:
            super().startService()  # type: ignore[no-untyped-call]
        except Exception as error:
            if not said:
                self.log.critical("cannot start: {reason}", reason=_reason(error))
            _without_traceback(error)
            raise
        finally:
            globalLogPublisher.removeObserver(critical)

    def _hangup(self, signum: int, frame: object) -> None:
        # callFromThread wakes the reactor from a signal handler safely.
        self._reactor.callFromThread(self._reactor.stop)

    def stopService(self) -> Deferred[None]:
        def orderly(results: list[tuple[bool, object]]) -> None:
            failures = [r for ok, r in results if not ok]
            for failure in failures:
                self.log.failure("while stopping", failure)  # type: ignore[arg-type]
            if not failures and getattr(self._reactor, "_exitSignal", None) in (
                signal.SIGTERM,
                signal.SIGINT,
            ):
                self._reactor._exitSignal = None

        # MultiService waits for every part with a DeferredList, which
        # succeeds whatever the parts did: look at each result.
        stopped: Deferred[list[tuple[bool, object]]] = super().stopService()  # type: ignore[no-untyped-call]
        return stopped.addCallback(orderly)


def _reason(error: BaseException) -> str:
    return str(error).strip() or type(error).__name__


def _without_traceback(error: BaseException) -> None:
    """
    Let ``error`` end the process (twistd re-raises it after removing its
    pidfile, and the exit status is 1) without Python printing its
    traceback, which twistd would copy into the log: it has been logged in
    one line already.
    """
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if value is not error:
            previous(kind, value, tb)

    sys.excepthook = hook


def makeService(options: Options) -> IService:
    """
    Build the service for the chosen subcommand, or the station.

    :param options: parsed :class:`Options`.
    :returns: the root service.
    """
    if options.subCommand is None:
        from instrumentd.reactor import install_if_unchosen

        # Before anything imports the default reactor; twistd's --reactor
        # wins.  A station's in-process agents read every instrument's
        # bytes: each read skips the legacy log context, as an agent's does.
        install_if_unchosen()
        from instrumentd.station.service import StationService

        assert options.station_config is not None
        return ProcessService(StationService(options.station_config, demo=options.demo))
    if options.subCommand == "port-agent":
        from instrumentd.reactor import install_if_unchosen

        # Before anything imports the default reactor; twistd's --reactor wins.
        install_if_unchosen()
        from twisted.internet import reactor

        from instrumentd.portagent.agent import PortAgent
        from instrumentd.portagent.tuning import tune_agent_process

        sub = options.subOptions
        assert isinstance(sub, PortAgentOptions)
        config = sub.config()
        # Once running, with start-up done (before the agent says it is
        # ready: that too waits for the reactor to run).
        reactor.callWhenRunning(tune_agent_process, config.sched_slice)
        return ProcessService(PortAgent(config))
    if options.subCommand == "simulate":
        from instrumentd.simulator.options import make_service

        assert isinstance(options.subOptions, SimulateOptions)
        return ProcessService(make_service(options.subOptions))
    if options.subCommand == "collect":
        from instrumentd.collector.service import CollectorService

        sub = options.subOptions
        assert isinstance(sub, CollectOptions) and sub.collector_config is not None
        return ProcessService(CollectorService(sub.collector_config))
    raise usage.UsageError(f"unknown subcommand {options.subCommand!r}")
