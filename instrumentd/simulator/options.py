# -*- test-case-name: tests.test_simulator_framework -*-
"""
``twistd instrumentd simulate MODEL``: options and service.

Kept import-light (``twistd --help`` imports it): the model's module is
imported only when the service is made.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from instrumentd.simulator.base import (
    SIMULATOR_MODELS,
    SimulatorSettings,
    UnknownModelError,
    check_simulator,
    make_simulator,
    simulator_class,
)
from instrumentd.simulator.frontends import (
    DEFAULT_LISTEN,
    SimulatorService,
    loopback_by_default,
)

__all__ = ["SimulateOptions", "make_service"]


def _check_endpoint(option: str, description: str) -> str:
    description = loopback_by_default(description)
    try:
        # A reactor with a clock, as real ones have, so that parsing only
        # checks the string and binds nothing.
        serverFromString(MemoryReactorClock(), description)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise usage.UsageError(
            f"--{option}: {description!r} is not a server endpoint: {e}"
        ) from None
    return description


def _integer(option: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise usage.UsageError(f"--{option}: {text!r} is not a whole number") from None
    if value < minimum:
        raise usage.UsageError(f"--{option}: {text!r} must be at least {minimum}")
    return value


class SimulateOptions(usage.Options):
    """
    Options for ``twistd instrumentd simulate MODEL``.

    :ivar model: the model's name, e.g. ``sbe37``.
    """

    synopsis = "Usage: twistd [twistd options] instrumentd simulate MODEL [options]"
    longdesc = (
        "Run a simulated instrument, reachable over TCP (--listen, like a "
        "serial-to-Ethernet device server) and/or a pty serial device "
        "(--pty). Models: " + ", ".join(sorted(SIMULATOR_MODELS)) + ", or "
        "module:Class of a simulator of your own. With "
        "neither --listen nor --pty it listens on " + DEFAULT_LISTEN + "."
    )
    optFlags = [
        ["pty", None, "Serve the instrument on a new pty; its device path is logged."],
        ["no-echo", None, "Do not echo what the instrument is sent."],
    ]
    optParameters = [
        [
            "pty-link",
            None,
            None,
            "Keep a symlink at this path to the pty device (implies --pty).",
        ],
        [
            "serial-number",
            None,
            None,
            "The instrument's serial number (default: the model's).",
        ],
        [
            "time-scale",
            None,
            "1",
            "Run the instrument's clock and timers this many times faster than real time.",
        ],
        [
            "baud",
            None,
            "9600",
            "Pace output at this baud rate, ten bits a byte; 0 sends at once.",
        ],
        ["seed", None, "0", "Seed for the simulated water, noise and garbage."],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["listen"] = []
        self["control"] = []
        self["option"] = {}
        self.model = ""

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse the arguments, the model first: ``sbe37 --listen tcp:4001``.

        :param options: the arguments; ``sys.argv[1:]`` when ``None``.
        :raises usage.UsageError: on any bad argument.
        """
        arguments = list(sys.argv[1:] if options is None else options)
        # usage.Options (getopt) stops at the first positional argument, but
        # the model comes first, as in the command line: move it
        # behind the options.
        if arguments and not arguments[0].startswith("-"):
            arguments = [*arguments[1:], arguments[0]]
        super().parseOptions(arguments)  # type: ignore[no-untyped-call]

    def opt_listen(self, description: str) -> None:
        """
        Serve the instrument on this server endpoint (repeatable), e.g.
        tcp:4001; tcp binds to 127.0.0.1 unless given an interface.
        """
        self["listen"].append(_check_endpoint("listen", description))

    opt_l = opt_listen

    def opt_option(self, assignment: str) -> None:
        """
        A model's own option, NAME=VALUE (repeatable): the variant of the
        instrument to simulate; doc/simulators.md lists each model's.
        """
        name, equals, value = assignment.partition("=")
        if not equals or not name.strip():
            raise usage.UsageError(f"--option: {assignment!r} is not NAME=VALUE")
        self["option"][name.strip().lower()] = value.strip()

    opt_o = opt_option

    def opt_control(self, description: str) -> None:
        """
        Serve the fault-injection control channel on this server endpoint
        (repeatable), e.g. tcp:4002; send "help" for its commands.
        """
        self["control"].append(_check_endpoint("control", description))

    def parseArgs(self, model: str | None = None) -> None:
        """
        :param model: the model to simulate.
        :raises usage.UsageError: if it is missing.
        """
        if model is None:
            raise usage.UsageError(
                "give the model to simulate; models: "
                + ", ".join(sorted(SIMULATOR_MODELS))
            )
        # A module:Class of the user's own keeps its case.
        self.model = model if ":" in model else model.lower()

    def postOptions(self) -> None:
        """
        Check the model and the numbers.

        :raises usage.UsageError: naming the option, the bad value and what
            is valid.
        """
        try:
            simulator_class(self.model)
        except UnknownModelError as e:
            raise usage.UsageError(str(e)) from None
        text = self["time-scale"]
        try:
            scale = float(text)
        except ValueError:
            scale = math.nan
        if not (math.isfinite(scale) and scale > 0):
            raise usage.UsageError(
                f"--time-scale: {text!r} must be a number above 0 (1 is real time)"
            )
        self["time-scale"] = scale
        self["baud"] = _integer("baud", str(self["baud"]), 0)
        self["seed"] = _integer("seed", str(self["seed"]), 0)
        if self["serial-number"] is not None:
            self["serial-number"] = _integer("serial-number", self["serial-number"], 1)
        if self["pty-link"] is not None:
            self["pty"] = True
        if not self["listen"] and not self["pty"]:
            self["listen"] = [DEFAULT_LISTEN]
        try:
            # A bad option of the model's own is refused here, with the
            # others, naming the valid ones.
            check_simulator(self.model, self.settings())
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    def settings(self) -> SimulatorSettings:
        """
        :returns: the simulator settings the options give.
        :raises ValueError: if one is out of range.
        """
        return SimulatorSettings(
            baud=self["baud"],
            echo=not self["no-echo"],
            time_scale=self["time-scale"],
            seed=self["seed"],
            serial_number=self["serial-number"],
            options=dict(self["option"]),
        )


def make_service(
    options: SimulateOptions, reactor: object | None = None
) -> SimulatorService:
    """
    Build the simulator service ``twistd`` runs.

    :param options: parsed :class:`SimulateOptions`.
    :param reactor: the reactor; the global one when ``None``.
    :returns: the service; the instrument starts with it.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    from twisted.internet.interfaces import IReactorTime

    instrument = make_simulator(
        options.model, options.settings(), reactor=IReactorTime(reactor)
    )
    return SimulatorService(
        instrument,
        listen_on=options["listen"],
        pty=options["pty"],
        pty_link=options["pty-link"],
        control=options["control"],
        reactor=reactor,
    )
