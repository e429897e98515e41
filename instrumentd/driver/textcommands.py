# -*- test-case-name: tests.test_driver_textcommands -*-
"""
Ready-made commands for line-oriented instruments, so a driver declares
each in one line instead of a :class:`~instrumentd.driver.dialogue.Command`
with its builder and parser:

- :func:`line_command`: a line of text (``STOP``, ``INTERVAL=30``), named
  by its text so that a refusal says what was refused;
- :func:`record_command`: a command whose reply holds a record of a
  particle's kind (a status dump, a polled sample); its result is the
  record's values.  Its reply ends at the first prompt after the record
  (a prompt before it is a late answer to something sent earlier, such as
  a wake-up on a slow link), so a reply without one fails the command at
  its timeout.

Example::

    STOP = line_command("STOP")
    DS = record_command("DS", StatusParticle, timeout=10.0)

    await session.run(line_command(f"INTERVAL={value}"))
    status = await session.run(DS)  # {"sample_interval": 15, ...}

Whether the instrument refused a command is the protocol's ``error``
pattern's business (the engine checks every reply), not these commands'.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar, overload

from instrumentd.driver.dialogue import DEFAULT_TIMEOUT, Command, Reply
from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.particles import RegexDataParticle, particle_values

__all__ = ["line_command", "record_command"]

T = TypeVar("T")


def _nothing(reply: Reply) -> None:
    return None


@overload
def line_command(
    text: str,
    *,
    timeout: float = ...,
    regex: re.Pattern[bytes] | None = ...,
    newline: str = ...,
    expect: bytes | None = ...,
    holds: re.Pattern[bytes] | None = ...,
) -> Command[None]: ...


@overload
def line_command(
    text: str,
    *,
    parse: Callable[[Reply], T],
    timeout: float = ...,
    regex: re.Pattern[bytes] | None = ...,
    newline: str = ...,
    expect: bytes | None = ...,
    holds: re.Pattern[bytes] | None = ...,
) -> Command[T]: ...


def line_command(
    text: str,
    *,
    parse: Callable[[Reply], object] = _nothing,
    timeout: float = DEFAULT_TIMEOUT,
    regex: re.Pattern[bytes] | None = None,
    newline: str = "\r\n",
    expect: bytes | None = None,
    holds: re.Pattern[bytes] | None = None,
) -> Command[Any]:
    """
    A command that sends one line of text as given (braces and all: it is
    not a template) and is named by it.

    :param text: the line, without its end (``"SampleInterval=30"``).
    :param parse: turns the reply into the result; by default the result
        is ``None``.
    :param timeout: seconds to wait for the reply.
    :param regex: a pattern whose match ends the reply, instead of the
        engine's prompts.
    :param newline: what ends the line.
    :param expect: bytes the reply must hold (an acknowledgement such as
        ``b"start now"``); a reply without them fails the command with an
        :class:`~instrumentd.driver.errors.InstrumentProtocolError` naming
        it and quoting the reply.
    :param holds: a pattern the reply must hold before the prompt that ends
        it; prompts before a match are late answers to earlier bytes and
        are passed over (:attr:`~instrumentd.driver.dialogue.Command.holds`).
    :returns: the command.
    :raises ValueError: if the text is not ASCII or holds a line end (it
        would be two commands).
    """
    if not text.isascii() or "\r" in text or "\n" in text:
        raise ValueError(
            f"command text {text!r} must be one line of ASCII, without its line end"
        )
    data = (text + newline).encode("ascii")
    if expect is not None:
        parse = _expecting(text, expect, parse)
    return Command(
        name=text,
        build=lambda: data,
        parse=parse,
        timeout=timeout,
        regex=regex,
        holds=holds,
    )


def _expecting(
    text: str, expect: bytes, parse: Callable[[Reply], object]
) -> Callable[[Reply], object]:
    def checked(reply: Reply) -> object:
        if expect not in reply.data:
            raise InstrumentProtocolError(
                f"{text}: no {expect.decode('latin-1')!r} in the reply: "
                f"{reply.body[:200]!r}"
            )
        return parse(reply)

    return checked


def record_command(
    text: str,
    particle: type[RegexDataParticle],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    regex: re.Pattern[bytes] | None = None,
) -> Command[dict[str, object]]:
    """
    A command whose reply holds a record of ``particle``'s kind; its result
    is the first such record's values, ``{value_id: value}`` (the chunker
    publishes the particle itself from the same bytes).

    :param text: the command's line, without its end.
    :param particle: the kind of record the reply holds.
    :param timeout: seconds to wait for the reply.
    :param regex: a pattern whose match ends the reply, instead of the
        engine's prompts.
    :returns: the command.
    :raises InstrumentProtocolError: (from the command) naming the command
        and quoting the reply, when the record cannot be read (or, for a
        ``regex`` or a ``str`` pattern, the reply holds no such record).
    :raises InstrumentTimeoutError: (from the command) when no reply holding
        such a record (or a refusal) came in time.
    """

    def values(reply: Reply) -> dict[str, object]:
        try:
            return particle_values(particle, reply.data)
        except InstrumentProtocolError as error:
            raise InstrumentProtocolError(f"{text}: {error}") from error

    # The reply ends at the first prompt after the record: a prompt before
    # it is a late answer to something sent earlier (a wake-up on a slow
    # link), not this command's reply.  A str pattern (matched on decoded
    # text) cannot look at the bytes, so such a record is not waited for.
    pattern = particle.pattern
    holds = pattern if regex is None and isinstance(pattern.pattern, bytes) else None
    return line_command(
        text,
        parse=values,
        timeout=timeout,
        regex=regex,
        holds=holds,
    )
