# -*- test-case-name: tests.test_rfc2217_comport -*-
"""
RFC 2217's COM-PORT-OPTION commands: decoding a client's command, changing
the line (or not), and the answer.

Every client command 0-12 is answered as the RFC asks, with the command
number plus 100 and the value *in effect afterwards*: the value asked for
when the line took it, the line's own value when it refused or when the
session may not change it.  A value of 0 asks for the value in effect.
FLOWCONTROL-SUSPEND and -RESUME are notifications and get no answer; a
signature sent by the client is kept, an empty one asks for ours.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final, Protocol

from instrumentd.portagent.rfc2217.line import (
    LineRefused,
    LineState,
    describe_state,
)
from instrumentd.portagent.rfc2217.telnet import COM_PORT_OPTION, subnegotiation

__all__ = [
    "FLOWCONTROL_RESUME",
    "FLOWCONTROL_SUSPEND",
    "NOTIFY_LINESTATE",
    "NOTIFY_MODEMSTATE",
    "PURGE_DATA",
    "SERVER",
    "SET_BAUDRATE",
    "SET_CONTROL",
    "SET_DATASIZE",
    "SET_LINESTATE_MASK",
    "SET_MODEMSTATE_MASK",
    "SET_PARITY",
    "SET_STOPSIZE",
    "SIGNATURE",
    "ComPort",
    "LineBackend",
]

SIGNATURE: Final = 0
SET_BAUDRATE: Final = 1
SET_DATASIZE: Final = 2
SET_PARITY: Final = 3
SET_STOPSIZE: Final = 4
SET_CONTROL: Final = 5
NOTIFY_LINESTATE: Final = 6
NOTIFY_MODEMSTATE: Final = 7
FLOWCONTROL_SUSPEND: Final = 8
FLOWCONTROL_RESUME: Final = 9
SET_LINESTATE_MASK: Final = 10
SET_MODEMSTATE_MASK: Final = 11
PURGE_DATA: Final = 12
#: A server's answer to command N is N + SERVER.
SERVER: Final = 100

PARITIES: Final = {1: "N", 2: "O", 3: "E", 4: "M", 5: "S"}
_PARITY_CODES: Final = {v: k for k, v in PARITIES.items()}
STOPSIZES: Final = {1: 1.0, 2: 2.0, 3: 1.5}
_STOPSIZE_CODES: Final = {v: k for k, v in STOPSIZES.items()}

# SET-CONTROL values.
_FLOW_OUT: Final = {1: "none", 2: "xonxoff", 3: "rtscts"}
_FLOW_IN: Final = {14: "none", 15: "xonxoff", 16: "rtscts"}
_FLOW_OUT_CODES: Final = {v: k for k, v in _FLOW_OUT.items()}
_FLOW_IN_CODES: Final = {v: k for k, v in _FLOW_IN.items()}
#: control value -> (setting, value); queries are separate.
_SWITCHES: Final = {
    5: ("breaking", True),
    6: ("breaking", False),
    8: ("dtr", True),
    9: ("dtr", False),
    11: ("rts", True),
    12: ("rts", False),
}
_QUERIES: Final = {0: "flow", 4: "breaking", 7: "dtr", 10: "rts", 13: "flow-in"}

#: Modem state delta bits, by the state bit they follow.
_DELTAS: Final = ((0x10, 0x01), (0x20, 0x02), (0x80, 0x08))
_RI: Final = 0x40
_TRAILING_RI: Final = 0x04


class LineBackend(Protocol):
    """
    What :class:`ComPort` needs of a line (see
    :mod:`instrumentd.portagent.rfc2217.line`).
    """

    def current(self) -> LineState: ...

    def change(self, setting: str, value: Any) -> tuple[LineState, str]: ...

    def modem_lines(self) -> int | None: ...


def _control_answer(state: LineState, asked: int) -> int:
    """
    The SET-CONTROL value that states what is in effect for the aspect
    ``asked`` was about.
    """
    if asked in (0, 1, 2, 3, 17, 19):
        return _FLOW_OUT_CODES[state.flow]
    if asked in (13, 14, 15, 16, 18):
        return _FLOW_IN_CODES[state.flow]
    if asked in (4, 5, 6):
        return 5 if state.breaking else 6
    if asked in (7, 8, 9):
        return 8 if state.dtr else 9
    return 11 if state.rts else 12


class ComPort:
    """
    One session's COM-PORT-OPTION state: its masks, the client's signature,
    the last modem state it was told, and the handling of its commands.

    :ivar linestate_mask: SET-LINESTATE-MASK (RFC default 0).
    :ivar modemstate_mask: SET-MODEMSTATE-MASK (RFC default 255).
    :ivar client_signature: what the client said it is, if it did.
    :ivar changed: whether this session has changed the line.
    """

    def __init__(
        self,
        line: LineBackend,
        *,
        signature: bytes,
        send: Callable[[bytes], None],
        record: Callable[[str], None],
        may_change: Callable[[], str | None],
        on_purge: Callable[[int], None],
        on_flow: Callable[[bool], None],
    ) -> None:
        """
        :param line: the line to change.
        :param signature: our answer to a signature request.
        :param send: writes telnet bytes to the client.
        :param record: records one PORT_AGENT_COMMAND text.
        :param may_change: ``None`` if this session may change the line
            now, else why not.
        :param on_purge: called with the PURGE-DATA value (1 receive, 2
            transmit, 3 both).
        :param on_flow: called with ``False`` when the client asks us to
            suspend sending, ``True`` to resume.
        """
        self.line = line
        self.signature = signature
        self._send = send
        self._record = record
        self._may_change = may_change
        self._on_purge = on_purge
        self._on_flow = on_flow
        self.linestate_mask = 0
        self.modemstate_mask = 255
        self.client_signature: bytes | None = None
        self.changed = False
        self._last_modem: int | None = None

    def answer(self, command: int, value: bytes) -> None:
        """
        Send the server's answer to ``command``.
        """
        self._send(subnegotiation(COM_PORT_OPTION, bytes([command + SERVER]) + value))

    def handle(self, payload: bytes) -> None:
        """
        Carry out one COM-PORT-OPTION subnegotiation from the client.

        :param payload: what followed the option byte: the command, then its
            value.
        """
        if not payload:
            return
        command, value = payload[0], payload[1:]
        if command == SIGNATURE:
            if value:
                self.client_signature = value
            else:
                self.answer(SIGNATURE, self.signature)
        elif command == SET_BAUDRATE:
            self._baudrate(value)
        elif command in (SET_DATASIZE, SET_PARITY, SET_STOPSIZE):
            self._byte_setting(command, value[:1])
        elif command == SET_CONTROL:
            self._control(value[0] if value else 0)
        elif command == NOTIFY_LINESTATE:
            # Line errors are not visible through the serial driver: the
            # state in effect is "nothing to report".
            self.answer(NOTIFY_LINESTATE, bytes([0 & self.linestate_mask]))
        elif command == NOTIFY_MODEMSTATE:
            state = self.line.modem_lines() or 0
            self._last_modem = state
            self.answer(NOTIFY_MODEMSTATE, bytes([state & self.modemstate_mask]))
        elif command in (FLOWCONTROL_SUSPEND, FLOWCONTROL_RESUME):
            self._on_flow(command == FLOWCONTROL_RESUME)
        elif command == SET_LINESTATE_MASK:
            self.linestate_mask = value[0] if value else 0
            self.answer(SET_LINESTATE_MASK, bytes([self.linestate_mask]))
        elif command == SET_MODEMSTATE_MASK:
            self.modemstate_mask = value[0] if value else 0
            self.answer(SET_MODEMSTATE_MASK, bytes([self.modemstate_mask]))
        elif command == PURGE_DATA:
            which = value[0] if value else 0
            if which in (1, 2, 3):
                self._on_purge(which)
            self.answer(PURGE_DATA, bytes([which]))

    def notify_modem(self, force: bool = False) -> None:
        """
        Tell the client the modem lines if they changed since it was last
        told (with the RFC's delta bits), or always if ``force``.  A line
        with no modem lines reads as all off.
        """
        state = self.line.modem_lines() or 0
        last = self._last_modem
        if not force and last == state:
            return
        value = state
        if last is not None:
            for bit, delta in _DELTAS:
                if (state ^ last) & bit:
                    value |= delta
            if last & _RI and not state & _RI:
                value |= _TRAILING_RI
        self._last_modem = state
        masked = value & self.modemstate_mask
        if masked or force:
            self.answer(NOTIFY_MODEMSTATE, bytes([masked]))

    # -- settings --------------------------------------------------------

    def _change(self, setting: str, value: Any, shown: str) -> LineState:
        """
        Change the line if this session may; record what happened.

        :returns: the state in effect afterwards.
        """
        refusal = self._may_change()
        if refusal is not None:
            self._record(f"{shown}: not changed: {refusal}")
            return self.line.current()
        try:
            state, note = self.line.change(setting, value)
        except LineRefused as e:
            state = self.line.current()
            self._record(f"{shown}: refused: {e}; line stays {describe_state(state)}")
            return state
        self.changed = True
        self._record(f"{shown}: {note}")
        return state

    def _baudrate(self, value: bytes) -> None:
        if len(value) != 4:
            value = b"\0\0\0\0"
        (baud,) = struct.unpack("!I", value)
        if baud:
            state = self._change("baudrate", baud, f"set baudrate {baud}")
        else:
            state = self.line.current()
        self.answer(SET_BAUDRATE, struct.pack("!I", state.settings.baudrate))

    def _byte_setting(self, command: int, value: bytes) -> None:
        code = value[0] if value else 0
        if code:
            if command == SET_DATASIZE:
                self._change("bytesize", code, f"set datasize {code}")
            elif command == SET_PARITY:
                parity = PARITIES.get(code)
                if parity is None:
                    self._record(f"set parity {code}: refused: not a parity code 1-5")
                else:
                    self._change("parity", parity, f"set parity {parity}")
            else:
                stop = STOPSIZES.get(code)
                if stop is None:
                    self._record(f"set stopsize {code}: refused: not a stop size 1-3")
                else:
                    self._change("stopbits", stop, f"set stopsize {stop:g}")
        settings = self.line.current().settings
        if command == SET_DATASIZE:
            answer = settings.bytesize
        elif command == SET_PARITY:
            answer = _PARITY_CODES[settings.parity]
        else:
            answer = _STOPSIZE_CODES[float(settings.stopbits)]
        self.answer(command, bytes([answer]))

    def _control(self, code: int) -> None:
        if code in _SWITCHES:
            setting, on = _SWITCHES[code]
            name = "break" if setting == "breaking" else setting.upper()
            self._change(setting, on, f"set {name} {'on' if on else 'off'}")
        elif code in _FLOW_OUT or code in _FLOW_IN:
            mode = _FLOW_OUT.get(code) or _FLOW_IN[code]
            self._change("flow", mode, f"set flow control {mode}")
        elif code not in _QUERIES:
            # DCD, DTR and DSR flow control (17-19) and unknown values: not
            # supported; the answer states the flow control in effect.
            self._record(f"set control {code}: refused: not supported")
        self.answer(SET_CONTROL, bytes([_control_answer(self.line.current(), code)]))
