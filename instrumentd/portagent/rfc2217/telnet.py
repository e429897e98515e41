# -*- test-case-name: tests.test_rfc2217_telnet -*-
"""
The telnet layer of an RFC 2217 session: an incremental decoder that
separates data from commands, IAC escaping, and option negotiation.

``twisted.conch.telnet.Telnet`` is not used: it applies the network virtual
terminal's end-of-line rules to the data stream (CR NUL becomes CR, CR LF
becomes LF), which would change an instrument's binary data and its CR LF
line ends.  A serial port server must pass every data byte unchanged, with
only IAC doubled, so this decoder does exactly that and no more.  It keeps
its state between reads, so a command or subnegotiation split anywhere
across reads is decoded as if it had come in one piece.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BINARY",
    "COM_PORT_OPTION",
    "DO",
    "DONT",
    "IAC",
    "SB",
    "SE",
    "SGA",
    "WILL",
    "WONT",
    "OptionNegotiator",
    "TelnetDecoder",
    "escape",
    "subnegotiation",
]

IAC: Final = 255
DONT: Final = 254
DO: Final = 253
WONT: Final = 252
WILL: Final = 251
SB: Final = 250
SE: Final = 240

BINARY: Final = 0
ECHO: Final = 1
SGA: Final = 3
COM_PORT_OPTION: Final = 44

#: The longest subnegotiation kept; longer ones are cut (RFC 2217's longest
#: is a signature, which clients keep short).
MAX_SUBNEGOTIATION: Final = 1024

_IAC_BYTE: Final = bytes([IAC])
_IAC_IAC: Final = bytes([IAC, IAC])


def escape(data: bytes) -> bytes:
    """
    Double every IAC (0xFF) byte, as telnet requires of data.
    """
    return data.replace(_IAC_BYTE, _IAC_IAC)


def subnegotiation(option: int, payload: bytes) -> bytes:
    """
    ``IAC SB option payload IAC SE``, with IAC in the payload doubled.
    """
    return bytes([IAC, SB, option]) + escape(payload) + bytes([IAC, SE])


# Decoder states.
_DATA, _IAC, _VERB, _SB, _SB_IAC = range(5)


class TelnetDecoder:
    """
    Split a telnet byte stream into data, negotiation, subnegotiation and
    other commands, across reads.

    :ivar on_data: called with runs of data bytes (IAC IAC already undone).
    :ivar on_negotiation: called with (verb, option) for DO/DONT/WILL/WONT.
    :ivar on_subnegotiation: called with (option, payload) for each
        complete ``IAC SB ... IAC SE``.
    :ivar on_command: called with the byte of any other command (NOP, BRK,
        AYT, ...).
    """

    def __init__(
        self,
        on_data: Callable[[bytes], None],
        on_negotiation: Callable[[int, int], None],
        on_subnegotiation: Callable[[int, bytes], None],
        on_command: Callable[[int], None] = lambda command: None,
    ) -> None:
        self.on_data = on_data
        self.on_negotiation = on_negotiation
        self.on_subnegotiation = on_subnegotiation
        self.on_command = on_command
        self._state = _DATA
        self._verb = 0
        self._sb = bytearray()

    def feed(self, data: bytes) -> None:
        """
        Decode one read.
        """
        i = 0
        n = len(data)
        while i < n:
            state = self._state
            if state == _DATA:
                # The common case: a run of plain data up to the next IAC,
                # passed on in one slice.
                j = data.find(_IAC_BYTE, i)
                if j < 0:
                    self.on_data(data[i:])
                    return
                if j > i:
                    self.on_data(data[i:j])
                self._state = _IAC
                i = j + 1
                continue
            byte = data[i]
            i += 1
            if state == _IAC:
                if byte == IAC:
                    self._state = _DATA
                    self.on_data(_IAC_BYTE)
                elif byte in (DO, DONT, WILL, WONT):
                    self._verb = byte
                    self._state = _VERB
                elif byte == SB:
                    self._sb.clear()
                    self._state = _SB
                else:
                    # SE outside a subnegotiation is a command like any other.
                    self._state = _DATA
                    self.on_command(byte)
            elif state == _VERB:
                self._state = _DATA
                self.on_negotiation(self._verb, byte)
            elif state == _SB:
                if byte == IAC:
                    self._state = _SB_IAC
                elif len(self._sb) < MAX_SUBNEGOTIATION:
                    self._sb.append(byte)
            elif byte == IAC:  # in _SB_IAC: a doubled IAC in the payload
                self._state = _SB
                if len(self._sb) < MAX_SUBNEGOTIATION:
                    self._sb.append(IAC)
            elif byte == SE:
                self._state = _DATA
                payload = bytes(self._sb)
                self._sb.clear()
                if payload:
                    self.on_subnegotiation(payload[0], payload[1:])
            else:
                # IAC <command> inside SB: the peer forgot IAC SE.  End the
                # subnegotiation there, as most telnets do, and treat the
                # byte as the command it is.
                self._sb.clear()
                self._state = _DATA
                self.feed(bytes([IAC, byte]))


# Option states (RFC 1143, without the queue bits: we never change our
# mind about an option while a request is in flight).
NO, YES, WANTNO, WANTYES = "NO", "YES", "WANTNO", "WANTYES"

_REPLY_FOR = {WILL: (DO, DONT), WONT: (DO, DONT), DO: (WILL, WONT), DONT: (WILL, WONT)}


@dataclass
class _Side:
    state: str = NO


class OptionNegotiator:
    """
    Telnet option negotiation by RFC 1143's rules, so that no exchange loops.

    "Us" options are ones this end performs (the peer sends DO/DONT, we
    WILL/WONT); "him" options are ones the peer performs.

    :ivar us: the state of each of our options.
    :ivar him: the state of each of the peer's options.
    """

    def __init__(
        self,
        send: Callable[[bytes], None],
        accept_us: Iterable[int],
        accept_him: Iterable[int],
        on_change: Callable[[str, int, bool], None] = lambda side, option, on: None,
    ) -> None:
        """
        :param send: writes negotiation bytes to the peer.
        :param accept_us: options we agree to perform when asked (DO).
        :param accept_him: options we agree the peer performs (WILL).
        :param on_change: called with ("us" or "him", option, enabled) when
            an option is enabled or disabled.
        """
        self._send = send
        self._accept_us = frozenset(accept_us)
        self._accept_him = frozenset(accept_him)
        self._on_change = on_change
        self.us: dict[int, _Side] = {}
        self.him: dict[int, _Side] = {}

    def enabled(self, side: str, option: int) -> bool:
        """
        Whether an option is on, on ``"us"`` or ``"him"``.
        """
        table = self.us if side == "us" else self.him
        return option in table and table[option].state == YES

    def offer(self, option: int) -> None:
        """
        Ask to perform an option ourselves (send WILL).
        """
        side = self.us.setdefault(option, _Side())
        if side.state == NO:
            side.state = WANTYES
            self._send(bytes([IAC, WILL, option]))

    def request(self, option: int) -> None:
        """
        Ask the peer to perform an option (send DO).
        """
        side = self.him.setdefault(option, _Side())
        if side.state == NO:
            side.state = WANTYES
            self._send(bytes([IAC, DO, option]))

    def received(self, verb: int, option: int) -> None:
        """
        Handle DO, DONT, WILL or WONT from the peer.
        """
        if verb in (WILL, WONT):
            table, accept, name = self.him, self._accept_him, "him"
        else:
            table, accept, name = self.us, self._accept_us, "us"
        yes, no = _REPLY_FOR[verb]
        side = table.setdefault(option, _Side())
        if verb in (WILL, DO):
            if side.state == NO:
                if option in accept:
                    side.state = YES
                    self._send(bytes([IAC, yes, option]))
                    self._on_change(name, option, True)
                else:
                    self._send(bytes([IAC, no, option]))
            elif side.state == WANTYES:
                side.state = YES
                self._on_change(name, option, True)
            elif side.state == WANTNO:
                # The peer answered our refusal with a yes: RFC 1143 calls
                # this an error; take it as a no, say nothing more.
                side.state = NO
        elif side.state == YES:
            side.state = NO
            self._send(bytes([IAC, no, option]))
            self._on_change(name, option, False)
        elif side.state in (WANTYES, WANTNO):
            side.state = NO
