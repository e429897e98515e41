# -*- test-case-name: tests.test_engine -*-
"""
How a driver declares an instrument's dialogue: its commands
(:class:`Command`, built with :func:`text_command`), the replies they get
(:class:`Reply`) and how to wake it (:class:`Wakeup`).  The
:class:`~instrumentd.driver.engine.CommandEngine` runs them; see
:mod:`instrumentd.driver.engine`, which re-exports all of these.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "DEFAULT_TIMEOUT",
    "Command",
    "Reply",
    "Wakeup",
    "keep_reply",
    "text_command",
]

T = TypeVar("T")

#: Seconds a command waits for its reply unless it says otherwise.
DEFAULT_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class Reply:
    """
    What the instrument sent in answer to a command.

    :ivar command: the command's name.
    :ivar data: the bytes read from the moment the command was sent up to
        and including what ended the reply (echo included).
    :ivar prompt: the prompt that ended the reply, or ``None``.
    :ivar match: the regex match that ended the reply, or ``None``.
    """

    command: str
    data: bytes
    prompt: bytes | None = None
    match: re.Match[bytes] | None = None

    @property
    def text(self) -> str:
        """
        :attr:`data` as text (Latin-1, so every byte maps to a character).
        """
        return self.data.decode("latin-1")

    @property
    def body(self) -> str:
        """
        :attr:`text` without the prompt that ended it, stripped of leading
        and trailing white space.
        """
        data = self.data
        if self.prompt is not None and data.endswith(self.prompt):
            data = data[: -len(self.prompt)]
        return data.decode("latin-1").strip()


def keep_reply(reply: Reply) -> Reply:
    """
    The parser for a command whose caller wants the :class:`Reply` itself.

    :param reply: the reply.
    :returns: ``reply``.
    """
    return reply


def text_command(template: str, newline: str = "\r\n") -> Callable[..., bytes]:
    """
    A command builder for line-oriented instruments.

    :param template: the command text; ``{name}`` fields are filled from
        the command's keyword arguments with :meth:`str.format`.
    :param newline: what ends the line.
    :returns: a builder taking the command's keyword arguments and returning
        the bytes to send (ASCII).
    """

    def build(**arguments: object) -> bytes:
        return (template.format(**arguments) + newline).encode("ascii")

    return build


@dataclass(frozen=True, kw_only=True)
class Command(Generic[T]):
    """
    One instrument command, declared once.

    :ivar name: the command's name, used in errors and logs.
    :ivar build: called with the command's keyword arguments; returns the
        bytes to send (see :func:`text_command`).
    :ivar parse: turns the :class:`Reply` into the command's result (use
        :func:`keep_reply` for the reply itself); it may raise an
        :class:`~instrumentd.driver.errors.InstrumentProtocolError` for a
        reply it cannot understand.
    :ivar prompts: prompts that end the reply, any of them; empty for the
        engine's prompts.  Longer prompts are looked for first, so ``"S>"``
        cannot match inside ``"AS>"``.
    :ivar regex: a pattern whose match ends the reply, instead of a prompt.
    :ivar holds: a pattern the reply must hold before the prompt that ends
        it (a status dump's record), or ``None``.  A prompt before a match
        is not this command's: it is a late answer to something sent
        earlier (a wake-up that answered after its try had timed out, on a
        slow link), and taking it as the reply would leave the real reply
        to be read as the next command's.  So prompts before a match are
        passed over, and the reply ends at the first prompt after one; a
        reply with the instrument's refusal mark (the engine's ``error``)
        ends at its prompt as usual.  Only with prompts, not with
        :attr:`regex` (a regex already says what the reply holds).
    :ivar timeout: seconds to wait for the reply.
    :ivar expects_reply: ``False`` for a fire-and-forget command: the result
        is ``parse`` of an empty reply as soon as the bytes are written.
    :ivar wake: whether the engine may wake the instrument before sending.
    :ivar write_delay: seconds between characters for this command;
        ``None`` for the engine's.
    """

    name: str
    build: Callable[..., bytes]
    parse: Callable[[Reply], T]
    prompts: tuple[bytes, ...] = ()
    regex: re.Pattern[bytes] | None = None
    holds: re.Pattern[bytes] | None = None
    timeout: float = DEFAULT_TIMEOUT
    expects_reply: bool = True
    wake: bool = True
    write_delay: float | None = None

    def __post_init__(self) -> None:
        if self.prompts and self.regex is not None:
            raise ValueError(
                f"command {self.name}: a reply ends with a prompt or a regex, not both"
            )
        if self.holds is not None and self.regex is not None:
            raise ValueError(
                f"command {self.name}: holds applies to a reply ended by a "
                "prompt, not by a regex"
            )
        if self.timeout <= 0:
            raise ValueError(f"command {self.name}: timeout must be > 0")


@dataclass(frozen=True, kw_only=True)
class Wakeup:
    """
    How to wake an instrument that may be asleep.

    :ivar data: the bytes to send (often a newline, or a break character);
        with :attr:`break_ms`, what to send instead where the link cannot
        carry a break (empty: nothing, the wake-up fails).
    :ivar break_ms: wake with a serial break held this many milliseconds
        (through the connection's ``send_break``: the port agent's
        ``break``), or ``None`` to send :attr:`data`.
    :ivar prompts: what shows it is awake; empty for the engine's prompts.
    :ivar regex: a pattern whose match shows it is awake, instead of a
        prompt (a wake-up banner that a bare prompt inside binary data
        cannot be mistaken for).
    :ivar timeout: seconds to wait for a prompt after each try.
    :ivar tries: how many times to send ``data`` before giving up.
    :ivar sleep_after: seconds without input after which the instrument
        goes to sleep; ``None`` if it is woken only after a timeout (and
        before the first command).
    :ivar may_be_silent: the instrument may wake without a word (its
        wake-up indicator can be turned off, as an Aanderaa optode's
        ``!``), and it loses the characters that woke it.  A try that
        hears no prompt within ``timeout`` is then taken as having woken
        it, and a command that gets no reply is sent again after a new
        wake-up, up to ``tries`` times in all: the instrument may have
        fallen asleep sooner than the driver thought (its sleep time is a
        setting an operator can shorten), and the command itself was lost
        waking it.
    """

    data: bytes = b""
    break_ms: int | None = None
    prompts: tuple[bytes, ...] = ()
    regex: re.Pattern[bytes] | None = None
    timeout: float = 1.0
    tries: int = 3
    sleep_after: float | None = None
    may_be_silent: bool = False

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise ValueError("a wake-up needs at least one try")
        if self.timeout <= 0:
            raise ValueError("a wake-up timeout must be > 0")
        if not self.data and self.break_ms is None:
            raise ValueError("a wake-up needs data, a break (break_ms) or both")
        if self.break_ms is not None and not 0 < self.break_ms <= 60000:
            raise ValueError(
                f"break_ms {self.break_ms!r} is out of range; valid: 1 to 60000"
            )
        if self.prompts and self.regex is not None:
            raise ValueError("a wake-up ends with a prompt or a regex, not both")
