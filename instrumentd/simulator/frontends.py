# -*- test-case-name: tests.test_simulator_framework -*-
"""
Front ends: the ways a host reaches a simulated instrument.

- :func:`listen`: a TCP (or any stream server endpoint) listener, like a
  serial-to-Ethernet device server.  ``tcp:PORT`` binds to loopback unless
  the string names an interface.
- :class:`PtySerialDevice`: a pseudo-terminal pair; the host opens the
  slave device as a serial port (``serial:/dev/pts/N``), optionally through
  a stable symlink.
- :class:`InProcessLink` and :func:`connect_pump`: in memory, for tests
  with a :class:`~twisted.internet.task.Clock`.

:class:`SimulatorService` runs an instrument behind any of these under
``twistd``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from twisted.application.service import Service
from twisted.internet import main
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    FirstError,
    gatherResults,
    maybeDeferred,
)
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IListeningPort,
    IProtocol,
    IReactorFDSet,
    IReactorTime,
)
from twisted.internet.protocol import connectionDone
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.endpoints.serial import PTY_BREAK_MARK
from instrumentd.simulator.base import InstrumentProtocol, SimulatedInstrument
from instrumentd.simulator.faults import FaultControlFactory

if TYPE_CHECKING:
    from twisted.test.iosim import IOPump

__all__ = [
    "DEFAULT_LISTEN",
    "InProcessLink",
    "PtyAddress",
    "PtySerialDevice",
    "SimulatorService",
    "connect_pump",
    "listen",
    "loopback_by_default",
]

#: Where ``simulate`` listens when given no front end: the port the OOI
#: simulators used, on loopback.
DEFAULT_LISTEN: Final = "tcp:4001:interface=127.0.0.1"

_TCP: Final = re.compile(r"^tcp6?:", re.IGNORECASE)


def loopback_by_default(description: str) -> str:
    """
    Make a server endpoint string bind to loopback unless it says otherwise.

    :param description: e.g. ``"tcp:4001"``, ``"4001"`` or
        ``"unix:/tmp/sbe37.sock"``.
    :returns: ``"tcp:4001:interface=127.0.0.1"`` for the first two (``::1``
        for ``tcp6``); other strings, or strings naming an interface, as
        they are.
    """
    if description.isdigit():
        description = f"tcp:{description}"
    if _TCP.match(description) and "interface=" not in description:
        loopback = r"\:\:1" if description.lower().startswith("tcp6") else "127.0.0.1"
        return f"{description}:interface={loopback}"
    return description


def listen(
    instrument: SimulatedInstrument, description: str, reactor: object
) -> Deferred[IListeningPort]:
    """
    Serve an instrument on a server endpoint.

    :param instrument: the instrument.
    :param description: a server endpoint string, loopback by default (see
        :func:`loopback_by_default`).
    :param reactor: the reactor to listen with.
    :returns: a Deferred that fires with the listening port.
    :raises ValueError: if the string is not a valid endpoint.
    """
    endpoint = serverFromString(reactor, loopback_by_default(description))
    listening: Deferred[IListeningPort] = endpoint.listen(instrument.factory())
    return listening


def describe_address(address: IAddress) -> str:
    """
    :param address: a listening port's address.
    :returns: ``host:port`` for IP addresses, the path for others.
    """
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"{host}:{port}"
    return str(getattr(address, "name", address))


@implementer(IAddress)
@dataclass(frozen=True)
class PtyAddress:
    """
    The address of a simulated serial line: the slave device's path.

    :ivar device: e.g. ``/dev/pts/7``.
    """

    device: str


class _PtyMaster(FileDescriptor):
    """
    The master side of a pty as a transport, read and written through the
    reactor.

    Written by hand because Twisted has no pty transport that is not a
    child process's terminal.  Like a serial line without flow control, it
    loses bytes nobody reads: when the pty's buffer is full (no host has
    the device open, or it does not read) further output is dropped and
    counted in ``lost`` instead of piling up in memory.
    """

    def __init__(
        self, fd: int, protocol: IProtocol, device: str, reactor: IReactorFDSet
    ) -> None:
        super().__init__(reactor)
        self._fd = fd
        self.device = device
        self.protocol = protocol
        self.lost = 0
        os.set_blocking(fd, False)
        self.connected = 1
        protocol.makeConnection(self)
        self.startReading()  # type: ignore[no-untyped-call]

    def fileno(self) -> int:
        return self._fd

    def getHost(self) -> PtyAddress:
        return PtyAddress(self.device)

    def getPeer(self) -> PtyAddress:
        return PtyAddress(self.device)

    def doRead(self) -> object:
        try:
            data = os.read(self._fd, 8192)
        except BlockingIOError:
            return None
        except OSError:
            return main.CONNECTION_LOST
        if not data:
            return main.CONNECTION_DONE
        self.protocol.dataReceived(data)
        return None

    def writeSomeData(self, data: bytes) -> int | BaseException:
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            self.lost += len(data)
            return len(data)
        except OSError as e:
            if e.errno == errno.EINTR:
                return 0
            return main.CONNECTION_LOST

    def abortConnection(self) -> None:
        """
        Hang up at once, without writing what is buffered.
        """
        if self.connected and not self.disconnected:
            self.stopReading()  # type: ignore[no-untyped-call]
            self.stopWriting()  # type: ignore[no-untyped-call]
            self.connectionLost(Failure(main.CONNECTION_DONE))

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self.protocol.connectionLost(reason)


class _PtyProtocol(InstrumentProtocol):
    """
    The instrument's side of a pty.  A break cannot cross a pty, so the
    host's serial port writes :data:`~instrumentd.endpoints.serial.PTY_BREAK_MARK`
    (what a ``PARMRK`` tty reads for a break) instead; here each mark is
    taken out of the bytes and given to the line as a break, wherever the
    reads happen to cut it.
    """

    def __init__(
        self, instrument: SimulatedInstrument, device: PtySerialDevice
    ) -> None:
        super().__init__(instrument)
        self._device = device
        self._pending = b""

    def dataReceived(self, data: bytes) -> None:
        """
        Pass the host's bytes to the instrument, breaks as breaks.

        :param data: the bytes.
        """
        data = self._pending + data
        self._pending = b""
        line = self.instrument.line
        while True:
            at = data.find(PTY_BREAK_MARK)
            if at < 0:
                break
            if at:
                line.receive(data[:at])
            line.receive_break()
            data = data[at + len(PTY_BREAK_MARK) :]
        # Keep a tail that may be the start of a mark cut by the read.
        for size in range(len(PTY_BREAK_MARK) - 1, 0, -1):
            if data.endswith(PTY_BREAK_MARK[:size]):
                data, self._pending = data[:-size], data[-size:]
                break
        if data:
            line.receive(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self._device._hung_up()


class PtySerialDevice:
    """
    A simulated instrument on a pseudo-terminal, for hosts that open serial
    devices.

    :meth:`open` makes a pty pair: the simulator serves the master, the
    host opens the slave (:attr:`device_path`), e.g. with
    ``clientFromString(reactor, "serial:" + device_path)``.  The slave is
    put in raw mode and kept open here, so its settings hold and the host
    may open and close it as often as it likes.

    Dropping the link (:meth:`~instrumentd.simulator.faults.Faults.drop_link`)
    hangs the pty up, as unplugging a USB serial adapter does: the host's
    port closes, and ``reopen_after`` seconds later a new pty appears
    (usually under a new name; :attr:`link` follows it).

    :ivar device_path: the slave device to open, or ``None`` while closed.
    :ivar link: a symlink kept pointing at the device, or ``None``.
    :ivar reopen_after: reactor seconds between a hang-up and the new pty.
    """

    _log = Logger()

    def __init__(
        self,
        instrument: SimulatedInstrument,
        reactor: IReactorFDSet,
        *,
        link: str | None = None,
        reopen_after: float = 1.0,
        clock: IReactorTime | None = None,
        on_open: Callable[[str], object] | None = None,
    ) -> None:
        """
        :param instrument: the instrument to serve.
        :param reactor: watches the master's descriptor.
        :param link: a path to keep as a symlink to the device.
        :param reopen_after: seconds from a hang-up to the new pty.
        :param clock: times the reopening; the reactor if ``None``.
        :param on_open: called with the device path each time a pty is made.
        """
        self.instrument = instrument
        self.link = link
        self.reopen_after = reopen_after
        self.device_path: str | None = None
        self._reactor = reactor
        self._clock = clock if clock is not None else IReactorTime(reactor)
        self._on_open = on_open
        self._master: _PtyMaster | None = None
        self._slave: int | None = None
        self._reopen: IDelayedCall | None = None
        self._closing = False

    def open(self) -> str:
        """
        Make the pty and start serving it.

        :returns: the slave device's path.
        :raises FileExistsError: if :attr:`link` exists and is not a
            symlink.
        :raises OSError: if no pty can be made.
        """
        if (
            self.link is not None
            and os.path.lexists(self.link)
            and not os.path.islink(self.link)
        ):
            raise FileExistsError(
                f"--pty-link {self.link!r} exists and is not a symlink; "
                "refusing to replace it"
            )
        self._closing = False
        master, slave = os.openpty()
        try:
            # Raw, no echo: otherwise the line discipline would echo the
            # simulator's own output back to it and rewrite CR and LF.
            tty.setraw(slave)
            path = os.ttyname(slave)
            if self.link is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.link)
                os.symlink(path, self.link)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self._slave = slave
        self.device_path = path
        self._master = _PtyMaster(
            master, _PtyProtocol(self.instrument, self), path, self._reactor
        )
        self._log.info(
            "{instrument} on pty serial device {device}{also}",
            instrument=self.instrument.describe(),
            device=path,
            also=f" (link {self.link})" if self.link else "",
        )
        if self._on_open is not None:
            self._on_open(path)
        return path

    @property
    def lost(self) -> int:
        """
        Bytes the pty dropped because nobody read them, since it was made.
        """
        return self._master.lost if self._master is not None else 0

    def close(self) -> None:
        """
        Hang up and remove the pty and the link; no reopening.
        """
        self._closing = True
        if self._reopen is not None and self._reopen.active():
            self._reopen.cancel()
        self._reopen = None
        if self._master is not None:
            self._master.abortConnection()
        self._release()
        if self.link is not None and os.path.islink(self.link):
            os.unlink(self.link)

    def _release(self) -> None:
        self._master = None
        if self._slave is not None:
            with contextlib.suppress(OSError):
                os.close(self._slave)
        self._slave = None
        self.device_path = None

    def _hung_up(self) -> None:
        self._release()
        if self._closing:
            return
        self._log.info(
            "pty hung up; a new one in {seconds:g} s", seconds=self.reopen_after
        )
        self._reopen = self._clock.callLater(self.reopen_after, self._reopen_now)

    def _reopen_now(self) -> None:
        self._reopen = None
        try:
            self.open()
        except OSError:
            self._log.failure("could not make a new pty")


class InProcessLink:
    """
    The host's end of an in-memory line to an instrument, for tests.

    Bytes the instrument sends collect in :attr:`transport`; :meth:`take`
    returns them.  Drive time with the ``Clock`` the instrument was made
    with::

        clock = Clock()
        sbe37 = SBE37Simulator(SimulatorSettings(), reactor=clock)
        link = InProcessLink(sbe37)
        link.send(b"\\r\\n")
        clock.advance(1)
        assert link.take().endswith(b"S>")

    :ivar instrument: the instrument.
    :ivar transport: the in-memory transport of the current connection.
    :ivar protocol: the instrument-side protocol of the current connection.
    """

    def __init__(self, instrument: SimulatedInstrument) -> None:
        """
        Connect to the instrument.

        :param instrument: the instrument.
        """
        self.instrument = instrument
        self.transport, self.protocol = self._connect()

    @property
    def connected(self) -> bool:
        """
        Whether the connection is up (a dropped link takes it down).
        """
        return bool(self.transport.connected)

    def reconnect(self) -> None:
        """
        Connect again with a new transport, as a host does after a drop.
        """
        if self.connected:
            self.disconnect()
        self.transport, self.protocol = self._connect()

    def _connect(self) -> tuple[StringTransportWithDisconnection, InstrumentProtocol]:
        transport = StringTransportWithDisconnection()
        protocol = self.instrument.build_protocol()
        transport.protocol = protocol
        protocol.makeConnection(transport)  # type: ignore[no-untyped-call]
        return transport, protocol

    def send(self, data: bytes) -> None:
        """
        Send bytes to the instrument, as if typed on the line.

        :param data: the bytes.
        """
        self.protocol.dataReceived(data)

    def take(self) -> bytes:
        """
        :returns: what the instrument sent since the last call.
        """
        data: bytes = self.transport.value()
        self.transport.clear()
        return data

    def disconnect(self) -> None:
        """
        Close the connection from the host's side.
        """
        self.transport.loseConnection()


def connect_pump(
    instrument: SimulatedInstrument,
    host: IProtocol,
    clock: object | None = None,
) -> IOPump:
    """
    Connect a host protocol (a driver, say) to an instrument in memory with
    :mod:`twisted.test.iosim`.

    :param instrument: the instrument.
    :param host: the host's protocol.
    :param clock: a ``Clock`` that ``pump.flush()`` nudges (``advance(0)``);
        pass the instrument's own to keep one time line.
    :returns: the pump; call ``pump.flush()`` after sending or advancing
        time to move bytes both ways.
    """
    from twisted.test import iosim

    server = instrument.build_protocol()
    pump: IOPump = iosim.connect(
        server,
        iosim.makeFakeServer(server),
        host,
        iosim.makeFakeClient(host),
        clock=clock,
    )
    return pump


class SimulatorService(Service):
    """
    Runs a simulated instrument behind its front ends under ``twistd``.

    On start it binds every listener, makes the pty and the control
    channel, and logs where each is (``listening on 127.0.0.1:4001``).
    A listener that cannot bind makes start fail with the reason, so
    ``twistd`` exits non-zero.

    :ivar instrument: the instrument.
    :ivar ports: the listening ports, once started.
    :ivar control_ports: the fault control channels' ports.
    :ivar pty: the pty front end, if asked for.
    """

    _log = Logger()

    def __init__(
        self,
        instrument: SimulatedInstrument,
        *,
        listen_on: Sequence[str] = (),
        pty: bool = False,
        pty_link: str | None = None,
        control: Sequence[str] = (),
        reactor: object | None = None,
    ) -> None:
        """
        :param instrument: the instrument.
        :param listen_on: server endpoint strings to serve it on.
        :param pty: serve it on a pty too.
        :param pty_link: keep this symlink to the pty device (implies
            ``pty``).
        :param control: server endpoint strings for the fault control
            channel.
        :param reactor: the reactor; the global one if ``None``.
        """
        self.instrument = instrument
        self.listen_on = tuple(listen_on)
        self.control = tuple(control)
        self.pty: PtySerialDevice | None = None
        self._want_pty = pty or pty_link is not None
        self._pty_link = pty_link
        self._reactor = reactor
        self.ports: list[IListeningPort] = []
        self.control_ports: list[IListeningPort] = []

    def _the_reactor(self) -> object:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    def startService(self) -> None:
        """
        Start every front end.

        :raises Exception: the first listener's or the pty's error; nothing
            is left running.
        """
        super().startService()  # type: ignore[no-untyped-call]
        reactor = self._the_reactor()
        pending: list[Deferred[None]] = []
        for description in self.listen_on:
            d = listen(self.instrument, description, reactor)
            pending.append(d.addCallback(self._listening, self.ports, "listening on"))
        factory = FaultControlFactory(self.instrument.faults)
        for description in self.control:
            d = serverFromString(reactor, loopback_by_default(description)).listen(
                factory
            )
            pending.append(
                d.addCallback(
                    self._listening, self.control_ports, "fault control channel on"
                )
            )
        failures: list[Failure] = []
        DeferredList(pending, fireOnOneErrback=True, consumeErrors=True).addErrback(
            failures.append
        )
        if failures:
            # TCP and UNIX listeners bind at once: report a busy port to
            # twistd now, so it exits non-zero with the reason.
            self.stopService()
            first = failures[0].value
            assert isinstance(first, FirstError)
            first.subFailure.raiseException()
        if self._want_pty:
            assert IReactorFDSet.providedBy(reactor)
            self.pty = PtySerialDevice(self.instrument, reactor, link=self._pty_link)
            try:
                self.pty.open()
            except BaseException:
                self.stopService()
                raise

    def _listening(
        self, port: IListeningPort, ports: list[IListeningPort], what: str
    ) -> None:
        ports.append(port)
        self._log.info(
            "{instrument} {what} {address}",
            instrument=self.instrument.describe(),
            what=what,
            address=describe_address(port.getHost()),
        )

    def stopService(self) -> Deferred[list[object]]:
        """
        Stop every front end and power the instrument off.

        :returns: a Deferred that fires when the ports are closed.
        """
        super().stopService()  # type: ignore[no-untyped-call]
        if self.pty is not None:
            self.pty.close()
            self.pty = None
        ports, self.ports = self.ports + self.control_ports, []
        self.control_ports = []
        self.instrument.stop()
        return gatherResults([maybeDeferred(port.stopListening) for port in ports])
