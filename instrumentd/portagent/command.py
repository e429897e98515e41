# -*- test-case-name: tests.test_portagent_command -*-
"""
The command port: one command per line in, exactly one reply line out.

Lines end in ``\\n`` or ``\\r\\n``.  Every line received is recorded as a
PORT_AGENT_COMMAND packet.  A reply is the command's result (plain text, or
one line of JSON for ``get_config`` and ``get_stats``); anything wrong gets a
line starting ``ERROR`` that says what and lists the valid commands, and the
connection stays open.  Every ``ERROR`` also goes to data clients as a
PORT_AGENT_FAULT packet (``command port: <what>``): OOI drivers send their
commands and close the connection without reading it, and learn of a command
the agent does not know, or a ``break`` it cannot send, only that way.  Replies come back in the order the commands were
sent, even when a command (``break``) takes time.

A client may close its sending side once it has sent its commands (``printf
'get_stats\\n' | nc -N HOST PORT``): every command received is still answered,
a last line without a line end included, and only then is the connection
closed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IAddress, IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.packet import PacketType
from instrumentd.portagent.options import HEARTBEAT

if TYPE_CHECKING:
    from instrumentd.portagent.agent import PortAgent

__all__ = [
    "COMMANDS",
    "CommandError",
    "CommandPort",
    "CommandPortFactory",
    "CommandUsageError",
    "answer",
    "fault",
]

_log = Logger()

DEFAULT_BREAK_MS = 250
MAX_BREAK_MS = 60_000


class CommandError(Exception):
    """
    A command could not be carried out; the message says why, for the
    ``ERROR`` reply.
    """


class CommandUsageError(CommandError):
    """
    A command's arguments were malformed; the reply adds the command's usage
    and the valid commands.
    """


@dataclass(frozen=True)
class Command:
    """
    One command of the command port.

    :ivar name: what the client types.
    :ivar usage: the name with its arguments, for help and errors.
    :ivar summary: one line saying what it does.
    :ivar run: carries it out; returns the reply text or a Deferred of it.
    :ivar max_args: how many arguments it takes at most.
    """

    name: str
    usage: str
    summary: str
    run: Callable[[PortAgent, list[str]], str | Deferred[str]]
    max_args: int = 0


def _get_state(agent: PortAgent, args: list[str]) -> str:
    agent.router.publish(PacketType.PORT_AGENT_STATUS, agent.state.encode())
    return agent.state


def _get_config(agent: PortAgent, args: list[str]) -> str:
    text = json.dumps(agent.public_config(), sort_keys=True)
    agent.router.publish(PacketType.PORT_AGENT_CONFIG, text.encode())
    return text


def _get_version(agent: PortAgent, args: list[str]) -> str:
    agent.router.publish(PacketType.PORT_AGENT_CONFIG, agent.version.encode())
    return agent.version


def _ping(agent: PortAgent, args: list[str]) -> str:
    return f"pong {agent.config.name} {agent.version}"


def _get_stats(agent: PortAgent, args: list[str]) -> str:
    return json.dumps(agent.stats(), sort_keys=True)


def _break(agent: PortAgent, args: list[str]) -> Deferred[str]:
    duration = DEFAULT_BREAK_MS
    if args:
        try:
            duration = int(args[0])
        except ValueError:
            raise CommandUsageError(
                f"break: {args[0]!r} is not a whole number of milliseconds"
            ) from None
        if not 0 < duration <= MAX_BREAK_MS:
            raise CommandUsageError(
                f"break: {duration} ms is out of range 1..{MAX_BREAK_MS}"
            )

    def done(_: object) -> str:
        return f"OK break {duration} ms"

    def failed(reason: Failure) -> str:
        raise CommandError(f"break: {reason.getErrorMessage()}")

    return agent.send_break(duration).addCallbacks(done, failed)


def _heartbeat_interval(agent: PortAgent, args: list[str]) -> str:
    if not args:
        raise CommandUsageError(
            "heartbeat_interval needs a number of seconds; valid: "
            f"{HEARTBEAT.describe()}"
        )
    try:
        seconds = HEARTBEAT.seconds(args[0])
    except ValueError as e:
        raise CommandUsageError(f"heartbeat_interval: {e}") from None
    agent.set_heartbeat_interval(seconds)
    return f"OK heartbeat_interval {seconds:g}"


def _rotate(agent: PortAgent, args: list[str]) -> str:
    closed = agent.datalog.rotate()
    return f"OK rotated {closed}"


def _help(agent: PortAgent, args: list[str]) -> str:
    return "commands: " + "; ".join(
        f"{c.usage} - {c.summary}" for c in COMMANDS.values()
    )


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        Command("get_state", "get_state", "CONNECTED or DISCONNECTED", _get_state),
        Command("get_config", "get_config", "the configuration as JSON", _get_config),
        Command("get_version", "get_version", "the agent's version", _get_version),
        Command("get_stats", "get_stats", "counters as JSON", _get_stats),
        Command("ping", "ping", "answers pong", _ping),
        Command(
            "break", "break [MS]", "send a serial break (default 250 ms)", _break, 1
        ),
        Command(
            "heartbeat_interval",
            "heartbeat_interval SECONDS",
            "set the heartbeat period (0 is off)",
            _heartbeat_interval,
            1,
        ),
        Command("rotate", "rotate", "rotate the datalog now", _rotate),
        Command("help", "help", "this list", _help),
    ]
}


ERROR = "ERROR "


def fault(agent: PortAgent, reply: str) -> None:
    """
    Tell the agent's data clients of an ``ERROR`` reply, as a
    PORT_AGENT_FAULT (``command port: <what>``).
    """
    # Data clients hear of a refused command too (see the module docstring).
    agent.router.publish(
        PacketType.PORT_AGENT_FAULT,
        f"command port: {reply.removeprefix(ERROR)}".encode(
            "utf-8", "backslashreplace"
        ),
    )


def _valid() -> str:
    return "valid commands: " + ", ".join(c.usage for c in COMMANDS.values())


def answer(agent: PortAgent, line: bytes) -> Deferred[str]:
    """
    Carry out one command line (without its line end) and give its reply:
    the result, or a line starting ``ERROR`` that says what is wrong.  The
    caller records the line and tells data clients of an ``ERROR`` (see
    :func:`fault`), as the command port does.

    :param agent: the agent the command is for.
    :param line: the command line.
    :returns: a Deferred firing with the reply text; it never fails.
    """
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return succeed(f"ERROR command line is not ASCII: {line!r}; {_valid()}")
    words = text.split()
    if not words:
        return succeed(f"ERROR empty command line; {_valid()}")
    name, args = words[0], words[1:]
    command = COMMANDS.get(name)
    if command is None:
        return succeed(f"ERROR unknown command {name!r}; {_valid()}")
    if len(args) > command.max_args:
        return succeed(
            f"ERROR {name} takes at most {command.max_args} argument(s), "
            f"got {len(args)}; usage: {command.usage}; {_valid()}"
        )

    def failed(reason: Failure) -> str:
        if reason.check(CommandUsageError):
            return (
                f"ERROR {reason.getErrorMessage()}; usage: {command.usage}; {_valid()}"
            )
        if reason.check(CommandError):
            return f"ERROR {reason.getErrorMessage()}"
        _log.failure("command {line!r} failed", reason, line=text)
        return f"ERROR {name} failed: {reason.getErrorMessage()}"

    try:
        result = command.run(agent, args)
    except Exception:
        return fail().addErrback(failed)
    if isinstance(result, Deferred):
        return result.addErrback(failed)
    return succeed(result)


@implementer(IHalfCloseableProtocol)
class CommandPort(LineReceiver):
    """
    One connection to the command port.

    The connection is its own transport's producer: when a client sends
    commands faster than it reads the replies, the transport pauses it, which
    stops both handling lines and reading more, so what the agent holds for a
    client stays bounded (TCP pushes back on the client).

    It is half-closeable: a client that shuts down its sending side is still
    answered every command it sent before the agent closes the connection.
    Without this, Twisted would treat the end of input as the end of the
    connection and throw away the replies not yet written.
    """

    delimiter = b"\n"
    MAX_LENGTH = 4096
    log = Logger()

    def __init__(self, agent: PortAgent) -> None:
        self.agent = agent
        self._last: Deferred[None] = succeed(None)
        self._input_ended = False
        self._finishing = False

    def connectionMade(self) -> None:
        self.agent.command_clients += 1
        self.agent.router.counters.clients_served["command"] = (
            self.agent.router.counters.clients_served.get("command", 0) + 1
        )
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.agent.command_clients -= 1

    # IHalfCloseableProtocol

    def readConnectionLost(self) -> None:
        """
        The client will send nothing more: answer what it sent, then close.
        """
        self._input_ended = True
        self._finish()

    def writeConnectionLost(self) -> None:
        """
        Not used: the agent never closes only its sending side.
        """

    def resumeProducing(self) -> None:
        super().resumeProducing()  # type: ignore[no-untyped-call]
        # Lines held back while paused have now been handled.
        self._finish()

    def _finish(self) -> None:
        """
        Once input has ended and every line held is handled, close the
        connection after the last reply is written.
        """
        if not self._input_ended or self._finishing or self.paused:
            return
        self._finishing = True
        rest = self.clearLineBuffer()  # type: ignore[no-untyped-call]
        if rest:
            # A last command sent without a line end is still a command.
            self.lineReceived(rest)
        self._last.addCallback(self._close)

    def _close(self, _: object) -> None:
        transport = self.transport
        if transport is None:
            return
        # A registered producer keeps the transport open after
        # loseConnection (it would be resumed instead of closed).
        transport.unregisterProducer()  # type: ignore[attr-defined]
        transport.loseConnection()

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self.agent.router.publish(PacketType.PORT_AGENT_COMMAND, line)
        # Chain every reply after the previous one, so a slow command (a
        # break) cannot let a later reply overtake it.
        reply = self._run(line)
        self._last = self._last.addCallback(lambda _: reply).addCallback(self._reply)

    def _run(self, line: bytes) -> Deferred[str]:
        return answer(self.agent, line)

    def _reply(self, text: str) -> None:
        if text.startswith(ERROR):
            fault(self.agent, text)
        if self.transport is not None:
            self.sendLine(  # type: ignore[no-untyped-call]
                text.encode("utf-8", "backslashreplace").replace(b"\n", b" ")
            )

    def lineLengthExceeded(self, line: bytes) -> None:
        text = f"ERROR command line longer than {self.MAX_LENGTH} bytes"
        fault(self.agent, text)
        self.sendLine(text.encode())  # type: ignore[no-untyped-call]
        self.transport.loseConnection()  # type: ignore[union-attr]


class CommandPortFactory(Factory):
    """
    Builds command-port connections for an agent.
    """

    noisy = False

    def __init__(self, agent: PortAgent) -> None:
        self.agent = agent

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        return CommandPort(self.agent)
