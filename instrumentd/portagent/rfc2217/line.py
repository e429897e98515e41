# -*- test-case-name: tests.test_rfc2217_comport -*-
"""
The line an RFC 2217 session changes: the real serial line of a ``serial:``
link, or, on any other link, a nominal line that only remembers.

Both answer with the state in effect after each request, which is what the
session acknowledges.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from instrumentd.endpoints.serial import SerialSettings
from instrumentd.interfaces import ISerialLineControl

__all__ = [
    "FLOW_MODES",
    "LineRefused",
    "LineState",
    "NominalLine",
    "SerialLine",
    "describe_state",
]

#: Flow control modes: none, XON/XOFF, RTS/CTS.
FLOW_MODES: Final = ("none", "xonxoff", "rtscts")


class LineRefused(Exception):
    """
    The line could not be changed as asked; the message says why.  The line
    is as it was.
    """


@dataclass(frozen=True)
class LineState:
    """
    Everything an RFC 2217 client can set on a line.

    :ivar settings: baud rate, data bits, parity, stop bits, flow control.
    :ivar dtr: DTR raised.
    :ivar rts: RTS raised.
    :ivar breaking: the line held in break.
    """

    settings: SerialSettings
    dtr: bool = True
    rts: bool = True
    breaking: bool = False

    @property
    def flow(self) -> str:
        """
        ``none``, ``xonxoff`` or ``rtscts``.
        """
        if self.settings.rtscts:
            return "rtscts"
        return "xonxoff" if self.settings.xonxoff else "none"


def describe_state(state: LineState) -> str:
    """
    Say a line state the way operators do: ``9600 8N1, DTR on, RTS on``.
    """
    text = state.settings.describe()
    text += f", DTR {'on' if state.dtr else 'off'}, RTS {'on' if state.rts else 'off'}"
    if state.breaking:
        text += ", break on"
    return text


def _with(state: LineState, setting: str, value: Any) -> LineState:
    if setting in ("dtr", "rts", "breaking"):
        return dataclasses.replace(state, **{setting: value})
    if setting == "flow":
        return dataclasses.replace(
            state,
            settings=dataclasses.replace(
                state.settings, rtscts=value == "rtscts", xonxoff=value == "xonxoff"
            ),
        )
    try:
        settings = dataclasses.replace(state.settings, **{setting: value})
    except ValueError as e:
        raise LineRefused(str(e)) from None
    return dataclasses.replace(state, settings=settings)


class NominalLine:
    """
    A line that cannot be changed (a TCP link to a device server, a
    recording): every request is remembered and acknowledged as asked, and
    the note says it was not applied.

    :ivar state: what the session was told is in effect.
    :ivar why: why nothing is applied, for the record.
    """

    def __init__(self, state: LineState, why: str) -> None:
        self.state = state
        self.initial = state
        self.why = why

    def current(self) -> LineState:
        """
        :returns: the state the session was told is in effect.
        """
        return self.state

    def change(self, setting: str, value: Any) -> tuple[LineState, str]:
        """
        Remember a change.

        :param setting: a :class:`SerialSettings` field, ``flow``, ``dtr``,
            ``rts`` or ``breaking``.
        :returns: the new state and ``"not applied: WHY"``.
        :raises LineRefused: if the value is not valid at all.
        """
        self.state = _with(self.state, setting, value)
        return self.state, f"not applied: {self.why}"

    def restore(self) -> tuple[LineState, str]:
        """
        Forget the session's changes.
        """
        self.state = self.initial
        return self.state, f"not applied: {self.why}"

    def modem_lines(self) -> int | None:
        """
        :returns: ``None``: a nominal line has no modem lines to read.
        """
        return None


class SerialLine:
    """
    The real serial line of the agent's ``serial:`` link.

    Settings and break go to the device; a refusal leaves the line as it
    was.  DTR and RTS go to the device too, but a device with no such line
    (a pty; some USB adapters) keeps them as nominal states, acknowledged
    and noted as not applied, so that clients that insist on setting them
    (pyserial does, on open) still work.
    """

    def __init__(self, transport: Callable[[], ISerialLineControl | None]) -> None:
        """
        :param transport: returns the link's transport now (it changes when
            the link reconnects), or ``None`` while the link is down.
        """
        self._transport = transport
        self._controls = {"dtr": True, "rts": True, "breaking": False}
        # What the line last had, for answers while the link is down.
        self._last = SerialSettings()

    def _port(self) -> ISerialLineControl:
        port = self._transport()
        if port is None:
            raise LineRefused("the instrument link is down")
        return port

    def current(self) -> LineState:
        """
        :returns: the line's state now (as it last was while the link is
            down).
        """
        port = self._transport()
        if port is not None:
            self._last = port.line_settings()
        return LineState(self._last, **self._controls)

    def change(self, setting: str, value: Any) -> tuple[LineState, str]:
        """
        Apply a change to the device.

        :returns: the state in effect afterwards and a note: ``applied``, or
            ``not applied: ...`` for a control line the device lacks.
        :raises LineRefused: if the device refuses; the line is as it was.
        """
        port = self._port()
        before = self.current()
        if setting in ("dtr", "rts", "breaking"):
            name = "break" if setting == "breaking" else setting
            try:
                port.set_control_line(name, value)
            except OSError as e:
                if setting == "breaking":
                    raise LineRefused(f"the device refused: {e.strerror or e}") from e
                self._controls[setting] = value
                return self.current(), (
                    f"not applied: the device has no {setting.upper()} line "
                    f"({e.strerror or e})"
                )
            self._controls[setting] = value
            return self.current(), "applied"
        wanted = _with(before, setting, value).settings
        try:
            port.apply_line_settings(wanted)
        except OSError as e:
            raise LineRefused(f"the device refused: {e.strerror or e}") from e
        return self.current(), "applied"

    def restore(self) -> tuple[LineState, str]:
        """
        Put the line back as the agent opened it: its configured settings,
        DTR and RTS raised, no break.
        """
        port = self._port()
        notes = []
        try:
            port.apply_line_settings(port.configured)
        except OSError as e:
            notes.append(f"settings not restored: {e.strerror or e}")
        for name, on in (("break", False), ("dtr", True), ("rts", True)):
            # A pty has no DTR or RTS: nothing to put back.
            with contextlib.suppress(OSError):
                port.set_control_line(name, on)
        self._controls = {"dtr": True, "rts": True, "breaking": False}
        return self.current(), "; ".join(notes) or "applied"

    def modem_lines(self) -> int | None:
        """
        :returns: CD, RI, DSR, CTS as RFC 2217 bits, or ``None``.
        """
        port = self._transport()
        return None if port is None else port.modem_lines()
