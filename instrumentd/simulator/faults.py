# -*- test-case-name: tests.test_simulator_framework -*-
"""
Fault injection for simulated instruments, from code or over a small
control channel.

Every simulated instrument's serial line has a :class:`Faults`: drop the
link, emit garbage, go silent, answer slowly, cut a line in the middle.
Fault times are reactor seconds, not instrument seconds: they model the
link, whose timeouts a driver measures in real time, whatever the
instrument's time scale.

:class:`FaultControlProtocol` offers the same over a line-based TCP control
channel (``twistd instrumentd simulate ... --control tcp:4002``), for
people poking at a driver by hand::

    drop | garbage [BYTES] | silent [SECONDS] | speak | slow SECONDS |
    cut [SECONDS] | clear | status | help
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Final, Protocol

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

__all__ = ["FaultControlFactory", "FaultControlProtocol", "Faults"]


class _Line(Protocol):
    """
    What :class:`Faults` needs of the line it acts on (a
    :class:`~instrumentd.simulator.base.SerialLine`).
    """

    def drop(self) -> None: ...
    def write(self, data: bytes) -> None: ...
    def discard_output(self) -> None: ...


class Faults:
    """
    The faults injected into one serial line, and the means to inject them.

    :ivar silent: the line neither sends nor hears anything.
    :ivar reply_delay: seconds every piece of output waits before it
        starts to leave; 0 for none.
    :ivar cut_pending: the next output line will be cut in two.
    """

    _log = Logger()

    def __init__(self, line: _Line, reactor: IReactorTime, *, seed: int = 0) -> None:
        """
        :param line: the line the faults act on.
        :param reactor: times silences.
        :param seed: makes garbage repeatable.
        """
        self._line = line
        self._reactor = reactor
        self._rng = random.Random(f"garbage:{seed}")
        self.silent = False
        self.reply_delay = 0.0
        self.cut_pending = False
        self._cut_hold = 0.0
        self._silence: IDelayedCall | None = None

    def drop_link(self) -> None:
        """
        Drop every connection to the instrument now, losing output not yet
        sent.  A TCP listener stays up, so a host can reconnect; a pty
        front end hangs up and opens a new pty (see
        :class:`~instrumentd.simulator.frontends.PtySerialDevice`).
        """
        self._log.info("fault: dropping the link")
        self._line.drop()

    def emit_garbage(self, size: int = 32, data: bytes | None = None) -> bytes:
        """
        Send line noise, after any output already queued.

        :param size: how many random bytes, when ``data`` is not given.
        :param data: the exact bytes to send instead.
        :returns: the bytes sent.
        :raises ValueError: if ``size`` is negative.
        """
        if data is None:
            if size < 0:
                raise ValueError(f"garbage size {size!r} must be 0 or more")
            data = self._rng.randbytes(size)
        self._log.info("fault: {size} bytes of garbage", size=len(data))
        self._line.write(data)
        return data

    def go_silent(self, seconds: float | None = None) -> None:
        """
        Go silent: send nothing (queued output is lost) and ignore whatever
        arrives, until :meth:`speak_again` or for ``seconds``.  The
        instrument itself runs on (a logging instrument keeps logging).

        :param seconds: how long, in reactor seconds; ``None`` until
            cleared.
        :raises ValueError: if ``seconds`` is not a positive number.
        """
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"silence {seconds!r} must be a number of seconds above 0")
        self._cancel_silence()
        self.silent = True
        self._line.discard_output()
        if seconds is not None:
            self._silence = self._reactor.callLater(seconds, self.speak_again)
        self._log.info(
            "fault: silent {how}",
            how="until cleared" if seconds is None else f"for {seconds:g} s",
        )

    def speak_again(self) -> None:
        """
        End a silence.
        """
        self._cancel_silence()
        self.silent = False

    def answer_slowly(self, delay: float) -> None:
        """
        Delay every piece of output (replies, echoes, samples) by ``delay``
        seconds before it starts to leave; order is kept.

        :param delay: reactor seconds; 0 ends the fault.
        :raises ValueError: if ``delay`` is negative or not a number.
        """
        if not (math.isfinite(delay) and delay >= 0):
            raise ValueError(f"reply delay {delay!r} must be 0 or more seconds")
        self.reply_delay = float(delay)

    def cut_next_line(self, resume_after: float = 1.0) -> None:
        """
        Cut the next line of output in the middle: the first half leaves at
        once, the rest (and everything after it) ``resume_after`` seconds
        after the first half has left.

        A line is a run ending in LF with at least two characters before
        its CR LF; output without one (echoes, prompts) passes and the cut
        stays armed.

        :param resume_after: reactor seconds.
        :raises ValueError: if ``resume_after`` is negative.
        """
        if not (math.isfinite(resume_after) and resume_after >= 0):
            raise ValueError(f"resume delay {resume_after!r} must be 0 or more seconds")
        self.cut_pending = True
        self._cut_hold = float(resume_after)

    def take_cut(self) -> float:
        """
        Disarm the cut; the line calls this when it cuts.

        :returns: how long the rest of the line waits.
        """
        self.cut_pending = False
        return self._cut_hold

    def clear(self) -> None:
        """
        End every lasting fault: silence, slow answers and a pending cut.
        """
        self.speak_again()
        self.reply_delay = 0.0
        self.cut_pending = False

    def describe(self) -> str:
        """
        :returns: the faults in force, e.g. ``"silent, slow 2 s"``, or
            ``"none"``.
        """
        parts = []
        if self.silent:
            parts.append("silent")
        if self.reply_delay:
            parts.append(f"slow {self.reply_delay:g} s")
        if self.cut_pending:
            parts.append(f"cut pending ({self._cut_hold:g} s)")
        return ", ".join(parts) or "none"

    def _cancel_silence(self) -> None:
        if self._silence is not None and self._silence.active():
            self._silence.cancel()
        self._silence = None


_HELP: Final = (
    "commands: drop | garbage [BYTES] | silent [SECONDS] | speak | "
    "slow SECONDS | cut [SECONDS] | clear | status | help"
)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


class FaultControlProtocol(LineOnlyReceiver):
    """
    The fault control channel: one command a line, one reply a line,
    ``OK ...`` or ``ERROR ...``.  See the module docstring for the commands.
    """

    delimiter = b"\n"

    def __init__(self, faults: Faults) -> None:
        """
        :param faults: the faults it controls.
        """
        self.faults = faults

    def lineReceived(self, line: bytes) -> None:
        """
        Run one command and answer it.

        :param line: the command, ASCII, CR LF or LF ended.
        """
        words = line.decode("ascii", "replace").strip().lower().split()
        if not words:
            return
        command, arguments = words[0], words[1:]
        action = self._commands().get(command)
        if action is None:
            self._reply(f"ERROR unknown command {command!r}; {_HELP}")
            return
        try:
            self._reply("OK " + action(arguments))
        except (ValueError, TypeError, IndexError) as e:
            self._reply(f"ERROR {command}: {e}")

    def _reply(self, text: str) -> None:
        self.sendLine(text.encode("ascii", "replace").rstrip() + b"\r")  # type: ignore[no-untyped-call]

    def _commands(self) -> dict[str, Callable[[list[str]], str]]:
        faults = self.faults

        def drop(_: list[str]) -> str:
            faults.drop_link()
            return "dropped"

        def garbage(args: list[str]) -> str:
            sent = faults.emit_garbage(int(args[0]) if args else 32)
            return f"sent {len(sent)} bytes"

        def silent(args: list[str]) -> str:
            faults.go_silent(_number(args[0]) if args else None)
            return faults.describe()

        def speak(_: list[str]) -> str:
            faults.speak_again()
            return faults.describe()

        def slow(args: list[str]) -> str:
            if not args:
                raise ValueError("give the delay in seconds (0 ends it)")
            faults.answer_slowly(_number(args[0]))
            return faults.describe()

        def cut(args: list[str]) -> str:
            faults.cut_next_line(_number(args[0]) if args else 1.0)
            return faults.describe()

        def clear(_: list[str]) -> str:
            faults.clear()
            return faults.describe()

        def status(_: list[str]) -> str:
            return faults.describe()

        def help_(_: list[str]) -> str:
            return _HELP

        return {
            "drop": drop,
            "garbage": garbage,
            "silent": silent,
            "speak": speak,
            "slow": slow,
            "cut": cut,
            "clear": clear,
            "status": status,
            "help": help_,
        }


class FaultControlFactory(Factory):
    """
    Builds :class:`FaultControlProtocol` connections for one instrument's
    faults.
    """

    noisy = False

    def __init__(self, faults: Faults) -> None:
        """
        :param faults: the faults every connection controls.
        """
        self.faults = faults

    def buildProtocol(self, addr: IAddress | None) -> FaultControlProtocol:
        """
        :param addr: the peer's address.
        :returns: a new control connection.
        """
        return FaultControlProtocol(self.faults)
