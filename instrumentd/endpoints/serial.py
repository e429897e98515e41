"""
The ``serial:`` client endpoint: an instrument on a local serial line.

``clientFromString(reactor, "serial:/dev/ttyUSB0:baudrate=19200:parity=E")``
returns a :class:`SerialEndpoint`. The plugin module
``twisted/plugins/instrumentd_serial.py`` registers the ``serial`` prefix and
calls :func:`parse_serial_endpoint`. Options::

    serial:DEVICE[:baudrate=9600][:bytesize=8][:parity=N][:stopbits=1]
                 [:rtscts=0][:xonxoff=0]

Colons inside ``DEVICE`` are escaped as ``\\:``, as in every endpoint string.
Bad options are refused when the string is parsed. The device is opened only
by :meth:`SerialEndpoint.connect`, so a port agent can wrap the endpoint in
:class:`~twisted.application.internet.ClientService`. A USB adapter that
vanishes is then reopened with backoff once it comes back.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import serial
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectError, ConnectionClosed, NoProtocol
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorFDSet,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.serialport import SerialPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.endpoints._description import one_path_and_options
from instrumentd.interfaces import IBreakableTransport, ISerialLineControl

__all__ = [
    "MAX_BREAK_MS",
    "PTY_BREAK_MARK",
    "STANDARD_BAUDRATES",
    "BreakInProgressError",
    "BreakableSerialPort",
    "SerialAddress",
    "SerialEndpoint",
    "SerialOpenError",
    "SerialSettings",
    "is_pty",
    "parse_serial_endpoint",
]

_T = TypeVar("_T")

#: The rates pyserial calls standard on POSIX: 50 to 4000000 baud.
STANDARD_BAUDRATES: Final[tuple[int, ...]] = tuple(serial.Serial.BAUDRATES)

#: The longest break :meth:`BreakableSerialPort.send_break` will hold, in ms.
MAX_BREAK_MS: Final = 60_000

_BYTESIZES: Final = (5, 6, 7, 8)
_PARITIES: Final[Mapping[str, str]] = {
    "n": serial.PARITY_NONE,
    "none": serial.PARITY_NONE,
    "e": serial.PARITY_EVEN,
    "even": serial.PARITY_EVEN,
    "o": serial.PARITY_ODD,
    "odd": serial.PARITY_ODD,
    "m": serial.PARITY_MARK,
    "mark": serial.PARITY_MARK,
    "s": serial.PARITY_SPACE,
    "space": serial.PARITY_SPACE,
}
_STOPBITS: Final = (1, 1.5, 2)
_FLAGS: Final[Mapping[str, bool]] = {
    "0": False,
    "false": False,
    "no": False,
    "1": True,
    "true": True,
    "yes": True,
}

_BAUDRATE_CHOICES: Final = "a positive integer, one of the standard rates " + ", ".join(
    str(rate) for rate in STANDARD_BAUDRATES
)
_BYTESIZE_CHOICES: Final = "5, 6, 7, 8"
_PARITY_CHOICES: Final = "N, E, O, M, S (or none, even, odd, mark, space; any case)"
_STOPBITS_CHOICES: Final = "1, 1.5, 2"
_FLAG_CHOICES: Final = "0, 1 (or false, true, no, yes; any case)"


def _invalid(option: str, value: object, choices: str) -> ValueError:
    return ValueError(f"serial: {option}={value!r} is not valid; valid: {choices}")


@dataclass(frozen=True)
class SerialSettings:
    """
    The line settings of a serial port, checked when made.

    :ivar baudrate: one of :data:`STANDARD_BAUDRATES`.
    :ivar bytesize: data bits, 5 to 8.
    :ivar parity: pyserial's parity letter: ``N``, ``E``, ``O``, ``M`` or ``S``.
    :ivar stopbits: 1, 1.5 or 2.
    :ivar rtscts: hardware (RTS/CTS) flow control.
    :ivar xonxoff: software (XON/XOFF) flow control.
    :raises ValueError: naming the setting, the bad value and the valid ones.
    """

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = serial.PARITY_NONE
    stopbits: float = 1.0
    rtscts: bool = False
    xonxoff: bool = False

    def __post_init__(self) -> None:
        # Checked here as well as in the string parser so that settings built
        # in code (a driver's defaults, say) fail as early as parsed ones.
        if self.baudrate not in STANDARD_BAUDRATES:
            raise _invalid("baudrate", self.baudrate, _BAUDRATE_CHOICES)
        if self.bytesize not in _BYTESIZES:
            raise _invalid("bytesize", self.bytesize, _BYTESIZE_CHOICES)
        if self.parity not in set(_PARITIES.values()):
            raise _invalid("parity", self.parity, _PARITY_CHOICES)
        if self.stopbits not in _STOPBITS:
            raise _invalid("stopbits", self.stopbits, _STOPBITS_CHOICES)
        for name, flag in (("rtscts", self.rtscts), ("xonxoff", self.xonxoff)):
            if not isinstance(flag, bool):
                raise _invalid(name, flag, "False, True")

    def describe(self) -> str:
        """
        Say the settings the way instrument manuals do.

        :returns: e.g. ``"9600 8N1"``, with ``rtscts``/``xonxoff`` appended
            when they are on.
        """
        stopbits = f"{self.stopbits:g}"
        text = f"{self.baudrate} {self.bytesize}{self.parity}{stopbits}"
        flow = [name for name in ("rtscts", "xonxoff") if getattr(self, name)]
        return " ".join([text, *flow])


@implementer(IAddress)
@dataclass(frozen=True)
class SerialAddress:
    """
    The address of both ends of a serial line: the device path.

    :ivar device: the path the port was opened with.
    """

    device: str


class SerialOpenError(ConnectError):
    """
    The serial device could not be opened or configured.

    A subclass of :class:`~twisted.internet.error.ConnectError`, so
    ``ClientService`` retries it like any failed connection.

    :ivar device: the device path.
    :ivar reason: the operating system's reason, e.g. ``"No such file or
        directory"``.
    """

    def __init__(self, device: str, reason: str) -> None:
        """
        :param device: the device path that could not be opened.
        :param reason: why, in the operating system's words.
        """
        # Twisted's ConnectError is unannotated.
        super().__init__(string=reason)  # type: ignore[no-untyped-call]
        self.device = device
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot open serial device {self.device!r}: {self.reason}"


#: What a break becomes on a pseudo-terminal.  A Linux pty has no break
#: signal: ``tcsendbreak`` and ``TIOCSBRK`` on the slave succeed and nothing
#: at all reaches the master (the pty driver has no ``break_ctl``; packet
#: mode does not report it either).  So on a pty the port writes the bytes
#: a POSIX tty with ``PARMRK`` reads for a received break (``\377 \0
#: \0``), and the simulator's pty front end takes them for one.
PTY_BREAK_MARK: Final = b"\xff\x00\x00"

#: Major device numbers of Unix98 pty slaves (``/dev/pts/N``) on Linux.
_PTY_SLAVE_MAJORS: Final = range(136, 144)


def is_pty(fd: int) -> bool:
    """
    Whether ``fd`` is the slave end of a pseudo-terminal.

    :param fd: an open file descriptor.
    :returns: ``True`` for a Unix98 pty slave.
    """
    try:
        mode = os.fstat(fd)
    except OSError:
        return False
    return stat.S_ISCHR(mode.st_mode) and os.major(mode.st_rdev) in _PTY_SLAVE_MAJORS


class BreakInProgressError(Exception):
    """
    A break was asked for while the port is already holding one.
    """


#: Modem input lines: the ``termios`` bit, and its RFC 2217 MODEMSTATE bit.
_MODEM_BITS: Final = (
    ("TIOCM_CD", 0x80),
    ("TIOCM_RI", 0x40),
    ("TIOCM_DSR", 0x20),
    ("TIOCM_CTS", 0x10),
)


@implementer(IBreakableTransport, ISerialLineControl)
class BreakableSerialPort(SerialPort):
    """
    A Twisted serial port that can send a break without blocking.

    pyserial's own ``send_break`` sleeps for the whole break, which would
    stall every other port of the process; here the break condition is set,
    and cleared again by a delayed call.  On a pseudo-terminal, where a
    break cannot travel, :data:`PTY_BREAK_MARK` is written as well.

    :ivar device: the device path the port was opened with.
    """

    _log = Logger()

    def __init__(
        self,
        protocol: IProtocol,
        device: str,
        reactor: IReactorFDSet,
        settings: SerialSettings | None = None,
        *,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        Open ``device`` and connect ``protocol`` to it.

        :param protocol: the protocol to connect; its ``connectionMade`` runs
            before this returns.
        :param device: path of the serial device.
        :param reactor: the reactor that watches the port's descriptor.
        :param settings: line settings; the defaults are 9600 8N1.
        :param clock: times breaks; the reactor when ``None``.
        :raises SerialOpenError: if the device cannot be opened or
            configured.
        """
        if settings is None:
            settings = SerialSettings()
        self.configured = settings
        self.device = device
        self._clock = clock if clock is not None else IReactorTime(reactor)
        self._break: tuple[IDelayedCall, Deferred[None]] | None = None
        try:
            super().__init__(  # type: ignore[no-untyped-call]
                protocol,
                device,
                reactor,
                baudrate=settings.baudrate,
                bytesize=settings.bytesize,
                parity=settings.parity,
                stopbits=settings.stopbits,
                xonxoff=settings.xonxoff,
                rtscts=settings.rtscts,
            )
        except BaseException:
            # SerialPort opens the device before it calls connectionMade, and
            # registers with the reactor only after; if anything in between
            # raises, nobody else holds the port to close it.
            opened = getattr(self, "_serial", None)
            if opened is not None:
                opened.close()
            raise

    def _serialFactory(self, device: str, **settings: Any) -> Any:
        """
        Open the pyserial port; ``SerialPort.__init__`` calls this (it is
        Twisted's documented hook for replacing ``serial.Serial``).

        Only errors raised here are failures to open the device; doing the
        translation here, rather than around the whole constructor, keeps an
        ``OSError`` from the protocol's ``connectionMade`` from being
        mistaken for one.

        :raises SerialOpenError: if pyserial cannot open or configure it.
        """
        try:
            return serial.Serial(device, **settings)
        except OSError as e:
            # pyserial puts its own prefix and the errno in the message;
            # os.strerror gives the operating system's words alone.
            reason = os.strerror(e.errno) if e.errno else str(e)
            raise SerialOpenError(device, reason) from e

    def getHost(self) -> SerialAddress:
        """
        :returns: the device's address.
        """
        return SerialAddress(self.device)

    def getPeer(self) -> SerialAddress:
        """
        :returns: the device's address; a serial line has one name for both
            ends.
        """
        return SerialAddress(self.device)

    def line_settings(self) -> SerialSettings:
        """
        :returns: the settings in effect, as the driver accepted them.
        """
        port = self._serial
        return SerialSettings(
            baudrate=port.baudrate,
            bytesize=port.bytesize,
            parity=port.parity,
            stopbits=port.stopbits,
            rtscts=bool(port.rtscts),
            xonxoff=bool(port.xonxoff),
        )

    def apply_line_settings(self, settings: SerialSettings) -> SerialSettings:
        """
        Change the line's settings while it is open.

        :param settings: the new settings.
        :returns: the settings in effect afterwards.
        :raises OSError: if the driver refuses; the previous settings are
            put back first (pyserial would otherwise keep believing the
            refused ones).
        """
        port = self._serial
        before = port.get_settings()
        try:
            port.apply_settings(
                {
                    "baudrate": settings.baudrate,
                    "bytesize": settings.bytesize,
                    "parity": settings.parity,
                    "stopbits": settings.stopbits,
                    "rtscts": settings.rtscts,
                    "xonxoff": settings.xonxoff,
                }
            )
        except (OSError, ValueError, serial.SerialException) as e:
            with contextlib.suppress(Exception):
                port.apply_settings(before)
            if isinstance(e, OSError):
                raise
            raise OSError(str(e)) from e
        return self.line_settings()

    def set_control_line(self, name: str, on: bool) -> None:
        """
        Raise or drop ``"dtr"`` or ``"rts"``, or start or end a ``"break"``
        (ending one also ends a timed break from :meth:`send_break`).

        :raises OSError: if the device has no such line.
        :raises ValueError: for any other name.
        """
        if name == "break" and not on and self._break is not None:
            pending = self._clear_break()
            if pending is not None:
                pending[1].errback(
                    ConnectionClosed(f"break on {self.device} ended early")
                )
            return
        attribute = {"dtr": "dtr", "rts": "rts", "break": "break_condition"}.get(name)
        if attribute is None:
            raise ValueError(f"no control line {name!r}; valid: dtr, rts, break")
        setattr(self._serial, attribute, on)

    def modem_lines(self) -> int | None:
        """
        :returns: CD, RI, DSR and CTS as RFC 2217 MODEMSTATE bits, or
            ``None`` if the device has no modem lines (a pty).
        """
        import fcntl
        import struct
        import termios

        try:
            raw = fcntl.ioctl(self._serial.fd, termios.TIOCMGET, struct.pack("I", 0))
        except OSError:
            return None
        lines = struct.unpack("I", raw)[0]
        state = 0
        for name, bit in _MODEM_BITS:
            if lines & getattr(termios, name):
                state |= bit
        return state

    def send_break(self, duration_ms: int) -> Deferred[None]:
        """
        Hold the line in the break condition for ``duration_ms`` ms.

        :param duration_ms: 1 to :data:`MAX_BREAK_MS` milliseconds.
        :returns: a Deferred that fires with ``None`` when the break has
            ended. It fails with
            :class:`~twisted.internet.error.ConnectionClosed` if the port is
            closed or closes during the break, with
            :class:`BreakInProgressError` if a break is already held, and with
            the ``OSError`` if the driver refuses the break. Cancelling it
            ends the break at once.
        :raises ValueError: if the duration is out of range.
        """
        if not 0 < duration_ms <= MAX_BREAK_MS:
            raise ValueError(
                f"break duration {duration_ms!r} ms is out of range; "
                f"valid: 1 to {MAX_BREAK_MS} ms"
            )
        if self.disconnected or self.disconnecting:
            return fail(ConnectionClosed(f"serial port {self.device} is closed"))
        if self._break is not None:
            return fail(
                BreakInProgressError(
                    f"serial port {self.device} is already sending a break"
                )
            )
        try:
            self._serial.break_condition = True
        except OSError:
            return fail()
        if is_pty(self.fileno()):  # type: ignore[no-untyped-call]
            self.write(PTY_BREAK_MARK)  # type: ignore[no-untyped-call]
        ended: Deferred[None] = Deferred(self._cancel_break)
        timer = self._clock.callLater(duration_ms / 1000, self._end_break)
        self._break = (timer, ended)
        self._log.debug(
            "break on {device} for {duration_ms} ms",
            device=self.device,
            duration_ms=duration_ms,
        )
        return ended

    def _clear_break(self) -> tuple[IDelayedCall, Deferred[None]] | None:
        """
        Take the line out of break, forgetting the pending break.

        :returns: the pending break's timer and Deferred, if there was one.
        :raises OSError: if the driver refuses; the break is forgotten anyway.
        """
        pending, self._break = self._break, None
        if pending is not None:
            timer, _ = pending
            if timer.active():
                timer.cancel()
            self._serial.break_condition = False
        return pending

    def _end_break(self) -> None:
        pending, self._break = self._break, None
        if pending is None:
            return
        _, ended = pending
        try:
            self._serial.break_condition = False
        except OSError:
            ended.errback()
            return
        ended.callback(None)

    def _cancel_break(self, ended: Deferred[None]) -> None:
        # The Deferred fails with CancelledError by itself once this returns;
        # a driver error while clearing is logged rather than lost.
        try:
            self._clear_break()
        except OSError:
            self._log.failure("could not end the break on {device}", device=self.device)

    def connectionLost(self, reason: Failure) -> None:
        """
        End any break before the device is closed, then close it.

        :param reason: why the port closed.
        """
        pending = self._break
        # If the driver refuses to clear it, closing the descriptor below ends
        # the break on every driver we know of; the caller still learns the
        # break was cut short.
        with contextlib.suppress(OSError):
            self._clear_break()
        if pending is not None:
            # Before the protocol hears of the loss, so that whoever asked
            # for the break knows its fate by the time the link is down.
            pending[1].errback(
                ConnectionClosed(f"serial port {self.device} closed during a break")
            )
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


@implementer(IStreamClientEndpoint)
class SerialEndpoint:
    """
    A client endpoint that opens a local serial device.

    :ivar device: path of the serial device.
    :ivar settings: the line settings it is opened with.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: IReactorFDSet,
        device: str,
        settings: SerialSettings | None = None,
        *,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        :param reactor: the reactor that will watch the port's descriptor.
        :param device: path of the serial device.
        :param settings: line settings; the defaults are 9600 8N1.
        :param clock: times breaks on the ports; the reactor when ``None``.
        :raises ValueError: if ``device`` is empty.
        """
        if not device:
            raise ValueError("serial: missing device path")
        self.device = device
        self.settings = settings if settings is not None else SerialSettings()
        self._reactor = reactor
        self._clock = clock

    def __repr__(self) -> str:
        return f"<SerialEndpoint {self.device} {self.settings.describe()}>"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Open the device and connect a new protocol to it.

        Never raises: every failure is delivered through the Deferred.

        :param protocolFactory: builds the protocol, given a
            :class:`SerialAddress`.
        :returns: a Deferred that fires with the connected protocol, whose
            transport is a :class:`BreakableSerialPort`; or fails with
            :class:`SerialOpenError` if the device cannot be opened, with
            :class:`~twisted.internet.error.NoProtocol` if the factory
            returns ``None``, or with whatever ``connectionMade`` raised.
        """
        try:
            protocol = protocolFactory.buildProtocol(SerialAddress(self.device))
            if protocol is None:
                raise NoProtocol()
            BreakableSerialPort(
                protocol,
                self.device,
                self._reactor,
                self.settings,
                clock=self._clock,
            )
        except SerialOpenError:
            # Not logged here: the link that asked reports it, once.
            return fail()
        except Exception:
            return fail()
        self._log.info(
            "opened serial device {device} ({settings})",
            device=self.device,
            settings=self.settings.describe(),
        )
        return succeed(protocol)


def _option(
    options: Mapping[str, str],
    name: str,
    parse: Callable[[str], _T],
    default: _T,
) -> _T:
    return parse(options[name]) if name in options else default


def _parse_baudrate(text: str) -> int:
    try:
        rate = int(text)
    except ValueError:
        raise _invalid("baudrate", text, _BAUDRATE_CHOICES) from None
    if rate not in STANDARD_BAUDRATES:
        raise _invalid("baudrate", text, _BAUDRATE_CHOICES)
    return rate


def _parse_bytesize(text: str) -> int:
    if text.strip() not in {str(size) for size in _BYTESIZES}:
        raise _invalid("bytesize", text, _BYTESIZE_CHOICES)
    return int(text)


def _parse_parity(text: str) -> str:
    try:
        return _PARITIES[text.strip().lower()]
    except KeyError:
        raise _invalid("parity", text, _PARITY_CHOICES) from None


def _parse_stopbits(text: str) -> float:
    choices = {"1": 1, "1.5": 1.5, "2": 2}
    try:
        return choices[text.strip()]
    except KeyError:
        raise _invalid("stopbits", text, _STOPBITS_CHOICES) from None


def _flag_parser(name: str) -> Callable[[str], bool]:
    def parse(text: str) -> bool:
        try:
            return _FLAGS[text.strip().lower()]
        except KeyError:
            raise _invalid(name, text, _FLAG_CHOICES) from None

    return parse


_OPTION_NAMES: Final = (
    "baudrate",
    "bytesize",
    "parity",
    "stopbits",
    "rtscts",
    "xonxoff",
)


def parse_serial_endpoint(
    reactor: object, *args: object, **kwargs: object
) -> SerialEndpoint:
    """
    Make a :class:`SerialEndpoint` from the parts of a ``serial:`` string.

    :param reactor: the reactor given to ``clientFromString``; it must
        provide :class:`~twisted.internet.interfaces.IReactorFDSet`.
    :param args: the positional parts after ``serial:``; exactly one, the
        device path.
    :param kwargs: the ``key=value`` parts: any of ``baudrate``,
        ``bytesize``, ``parity``, ``stopbits``, ``rtscts`` and ``xonxoff``.
    :returns: an endpoint that opens the device when asked to connect; the
        device is not touched here.
    :raises ValueError: naming the option, the bad value and the valid
        choices, or the missing device path.
    :raises TypeError: if the reactor cannot watch file descriptors.
    """
    fdset = IReactorFDSet(reactor, None)
    if fdset is None:
        raise TypeError(f"serial: {reactor!r} cannot watch file descriptors")
    device, options = one_path_and_options(
        "serial",
        args,
        kwargs,
        what="device path",
        example="serial:/dev/ttyUSB0:baudrate=9600",
        valid_options=_OPTION_NAMES,
    )
    settings = SerialSettings(
        baudrate=_option(options, "baudrate", _parse_baudrate, 9600),
        bytesize=_option(options, "bytesize", _parse_bytesize, 8),
        parity=_option(options, "parity", _parse_parity, serial.PARITY_NONE),
        stopbits=_option(options, "stopbits", _parse_stopbits, 1.0),
        rtscts=_option(options, "rtscts", _flag_parser("rtscts"), False),
        xonxoff=_option(options, "xonxoff", _flag_parser("xonxoff"), False),
    )
    return SerialEndpoint(fdset, device, settings)
