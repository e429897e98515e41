# -*- test-case-name: tests.test_datalog_endpoint -*-
"""
The ``datalog:`` client endpoint: an instrument played back from a recording.

``clientFromString(reactor, "datalog:ctd.datalog:speed=10")`` returns a
:class:`DatalogEndpoint`.  Connecting it gives the protocol a
:class:`DatalogReplayTransport`, which delivers the bytes the instrument sent
(the ``DATA_FROM_INSTRUMENT`` payloads of the port-agent datalog files) with
the pacing they were recorded at.  By default the recording is played once
and the connection then closes for good (:class:`~instrumentd.endpoints.LinkEnded`),
so reprocessing a recording never delivers its data twice; with ``loop=true``
it starts again from the beginning, on the same connection, for ever.  A port
agent, a driver or a test can then run against a real instrument's output
with no instrument.  The plugin module ``twisted/plugins/instrumentd_datalog.py``
registers the prefix.  Options::

    datalog:FILE[,FILE...][:speed=1][:maxgap=60][:loop=false]

- ``FILE``: a datalog file, or a directory meaning every datalog below it
  (``*.datalog``, and OOI's archives ``<refdes>.datalog.YYYY_MM_DD``) in
  recording order (see :func:`instrumentd.datalogfiles.datalog_paths`).
  Several are played one after the other.  A relative path is relative to the
  working directory when the string is parsed.  Colons in a path are escaped
  as ``\\:``, as in every endpoint string; a path cannot contain a comma.
- ``speed``: how many times faster than recorded; ``0`` is as fast as
  possible (still yielding to the reactor every :data:`YIELD_BYTES`).
- ``maxgap``: the longest wait, in recorded seconds, between two deliveries.
  A recording that spans an outage (the instrument was off for an hour) would
  otherwise stall a replay for that long; 60 s by default.  A recorded time
  that goes backwards (files out of order, a clock step) is no wait at all.
- ``loop``: ``true`` (or ``1``, ``yes``) to repeat the recording for ever;
  the next pass begins one average interval of the pass after its last
  delivery.  ``false`` by default: one pass, then the link ends.

Anything the protocol writes is discarded, since a recording cannot answer,
and is counted in :attr:`DatalogReplayTransport.bytes_discarded`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import (
    ConnectError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    NoProtocol,
)
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.datalogfiles import DatalogFile, datalog_paths
from instrumentd.endpoints import LinkEnded
from instrumentd.endpoints._description import flag, one_path_and_options
from instrumentd.packet import HEADER_SIZE, Packet, PacketType

__all__ = [
    "DEFAULT_MAX_GAP",
    "READ_SIZE",
    "YIELD_BYTES",
    "DatalogAddress",
    "DatalogEndpoint",
    "DatalogReplayTransport",
    "parse_datalog_endpoint",
]

#: The longest wait between deliveries, in recorded seconds, unless
#: ``maxgap`` says otherwise.
DEFAULT_MAX_GAP: Final = 60.0

#: Bytes of recording handled in one reactor turn before the replay yields
#: (``callLater(0)``), so a huge file at ``speed=0`` cannot freeze the process.
YIELD_BYTES: Final = 64 * 1024

#: Bytes read from a datalog file at a time.
READ_SIZE: Final = 64 * 1024

_OPTION_NAMES: Final = ("speed", "maxgap", "loop")

#: The wait, in recorded seconds, before a looped recording of a single read
#: starts again (a recording of several reads waits their average interval).
SINGLE_READ_LOOP_GAP: Final = 1.0


@implementer(IAddress)
@dataclass(frozen=True)
class DatalogAddress:
    """
    The address of both ends of a replay: the recording.

    :ivar paths: the files or directories played, as absolute paths.
    """

    paths: tuple[str, ...]


@implementer(ITransport, IPushProducer)
class DatalogReplayTransport:
    """
    A transport that delivers a recorded instrument byte stream to a protocol.

    Each ``DATA_FROM_INSTRUMENT`` packet of the files is one ``dataReceived``
    call, at the recorded time since the first such packet divided by the
    speed.  Pausing (:meth:`pauseProducing`) stops the recording's clock as
    well as its delivery, so a resumed replay keeps its recorded pacing.
    At the end of the files the protocol gets ``connectionLost`` with
    :class:`~instrumentd.endpoints.LinkEnded` (a
    :class:`~twisted.internet.error.ConnectionDone`), unless the replay
    loops: then the files are played again from the start.  A looping
    recording that has no instrument data ends all the same.

    :ivar connected: whether the protocol is still connected.
    :ivar disconnecting: whether :meth:`loseConnection` or
        :meth:`abortConnection` was called and the loss is not yet delivered.
    :ivar paused: whether delivery is paused.
    :ivar packets_delivered: ``dataReceived`` calls made.
    :ivar passes: times the whole recording has been played.
    :ivar bytes_delivered: bytes given to ``dataReceived``.
    :ivar bytes_discarded: bytes the protocol wrote, all thrown away.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        protocol: IProtocol,
        files: Sequence[Path],
        address: DatalogAddress,
        *,
        speed: float = 1.0,
        max_gap: float = DEFAULT_MAX_GAP,
        loop: bool = False,
    ) -> None:
        """
        :param reactor: times the deliveries.
        :param protocol: receives the recording.
        :param files: the datalog files, in the order to play them.
        :param address: what :meth:`getHost` and :meth:`getPeer` return.
        :param speed: how many times faster than recorded; 0 is as fast as
            possible.
        :param max_gap: the longest wait between deliveries, recorded seconds.
        :param loop: whether to play the files again and again.
        """
        self.connected = False
        self.disconnecting = False
        self.paused = False
        self.packets_delivered = 0
        self.bytes_delivered = 0
        self.bytes_discarded = 0
        self.passes = 0
        self._reactor = reactor
        self._protocol = protocol
        self._files = tuple(files)
        self._address = address
        self._speed = speed
        self._max_gap = max_gap
        self._loop = loop
        self._packets = self._recorded_packets()
        self._call: IDelayedCall | None = None
        # The recording's clock: reactor time of recorded offset 0, moved on
        # by every pause; the recorded offset of the upcoming packet.
        self._origin = 0.0
        self._paused_at = 0.0
        self._offset = 0.0
        self._last_time: float | None = None
        self._upcoming: Packet | None = None
        self._exhausted = False
        # This pass's deliveries and the recorded offset of its first, to
        # space a looped pass from the one before.
        self._pass_reads = 0
        self._pass_start = 0.0

    def start(self) -> None:
        """
        Connect the protocol (``makeConnection``) and begin the replay on the
        next reactor turn.

        :raises Exception: whatever the protocol's ``connectionMade`` raised;
            the replay is then stopped.
        """
        self.connected = True
        self._origin = self._reactor.seconds()
        try:
            self._protocol.makeConnection(self)
        except BaseException:
            self.connected = False
            self._packets.close()
            raise
        self._log.info(
            "replaying {files} at speed {speed}",
            files=self._address.paths,
            speed=self._speed,
        )
        if not self.paused and not self.disconnecting:
            self._schedule(0)

    # ITransport

    def write(self, data: bytes) -> None:
        """
        Discard ``data``: a recording cannot answer.  Counted in
        :attr:`bytes_discarded`.

        :raises TypeError: if ``data`` is not bytes, as a real transport would.
        """
        if not isinstance(data, bytes):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        self.bytes_discarded += len(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """
        Discard every item of ``data``, as :meth:`write` does.
        """
        for item in data:
            self.write(item)

    def loseConnection(self) -> None:
        """
        Stop the replay now; the protocol's ``connectionLost`` follows on the
        next reactor turn with :class:`~twisted.internet.error.ConnectionDone`,
        as from a real transport.  No other delayed call is left behind.
        """
        self._stop(Failure(ConnectionDone("replay stopped")))

    def abortConnection(self) -> None:
        """
        As :meth:`loseConnection`, but the reason is
        :class:`~twisted.internet.error.ConnectionAborted`.
        """
        self._stop(Failure(ConnectionAborted()))

    def getPeer(self) -> DatalogAddress:
        """
        :returns: the recording's address.
        """
        return self._address

    def getHost(self) -> DatalogAddress:
        """
        :returns: the recording's address (there is no local end to name).
        """
        return self._address

    # IPushProducer

    def pauseProducing(self) -> None:
        """
        Stop delivering, and stop the recording's clock, until
        :meth:`resumeProducing`.
        """
        if self.paused or not self.connected:
            return
        self.paused = True
        self._paused_at = self._reactor.seconds()
        self._cancel()

    def resumeProducing(self) -> None:
        """
        Go on delivering where :meth:`pauseProducing` stopped, with the time
        left before the next delivery that there was when it paused.
        """
        if not self.paused:
            return
        self.paused = False
        if not self.connected or self.disconnecting:
            return
        self._origin += self._reactor.seconds() - self._paused_at
        self._schedule(0)

    def stopProducing(self) -> None:
        """
        Stop for good: the same as :meth:`loseConnection`.
        """
        self.loseConnection()

    # The replay

    def _recorded_packets(self) -> Generator[Packet, None, None]:
        for path in self._files:
            datalog = DatalogFile(path, chunk_size=READ_SIZE)
            yield from datalog.packets()
            counters = datalog.counters
            if counters.junk_bytes or counters.bad_packets:
                self._log.warn(
                    "{path}: skipped {junk} junk bytes and {bad} bad packets",
                    path=str(path),
                    junk=counters.junk_bytes,
                    bad=counters.bad_packets,
                )
            if datalog.cut is not None:
                self._log.warn(
                    "{path}: last packet cut short {cut}; ignored",
                    path=str(path),
                    cut=datalog.cut.describe(),
                )

    def _schedule(self, delay: float) -> None:
        self._call = self._reactor.callLater(delay, self._step)

    def _cancel(self) -> None:
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _stop(self, reason: Failure) -> None:
        if not self.connected or self.disconnecting:
            return
        self.disconnecting = True
        self._cancel()
        self._packets.close()
        # Like a TCP transport, tell the protocol on the next turn, never
        # from inside its own call to loseConnection.
        self._reactor.callLater(0, self._lost, reason)

    def _lost(self, reason: Failure) -> None:
        if not self.connected:
            return
        self.connected = False
        self.disconnecting = False
        self._cancel()
        self._packets.close()
        self._log.info(
            "replay of {files} ended: {packets} reads, {delivered} bytes "
            "delivered, {discarded} bytes written and discarded",
            files=self._address.paths,
            packets=self.packets_delivered,
            delivered=self.bytes_delivered,
            discarded=self.bytes_discarded,
        )
        self._protocol.connectionLost(reason)

    def _read_ahead(self, budget: int) -> int:
        """
        Read up to the next instrument packet, into ``_upcoming``, or until
        ``budget`` bytes of other packets have gone by, or to the end of the
        recording (then ``_exhausted``).

        :returns: the bytes of recording read.
        """
        size = 0
        for packet in self._packets:
            size += HEADER_SIZE + len(packet.payload)
            if packet.type is PacketType.DATA_FROM_INSTRUMENT:
                when = packet.unix_time
                if self._last_time is not None:
                    gap = when - self._last_time
                    self._offset += min(max(gap, 0.0), self._max_gap)
                self._last_time = when
                self._upcoming = packet
                return size
            if size >= budget:
                return size
        self._exhausted = True
        return size

    def _end_reason(self) -> str:
        if self._loop:
            return "end of the recording: it has no instrument data to repeat"
        return "end of the recording (played once; loop=true repeats it)"

    def _start_pass(self) -> None:
        """
        Play the files again, the first read of the new pass one average
        interval of the last pass after its last read.
        """
        span = self._offset - self._pass_start
        gap = (
            span / (self._pass_reads - 1)
            if self._pass_reads > 1
            else SINGLE_READ_LOOP_GAP
        )
        self._offset += min(gap, self._max_gap)
        self._last_time = None
        self._pass_reads = 0
        self._exhausted = False
        self._packets.close()
        self._packets = self._recorded_packets()

    def _step(self) -> None:
        self._call = None
        budget = YIELD_BYTES
        while self.connected and not self.disconnecting and not self.paused:
            if self._upcoming is None:
                if self._exhausted:
                    self.passes += 1
                    if not (self._loop and self._pass_reads):
                        self._lost(Failure(LinkEnded(self._end_reason())))
                        return
                    self._start_pass()
                if budget <= 0:
                    self._schedule(0)
                    return
                try:
                    budget -= self._read_ahead(budget)
                except OSError as e:
                    self._log.error("replay failed: {error}", error=e)
                    self._lost(Failure(ConnectionLost(f"cannot read: {e}")))
                    return
                continue
            if self._speed:
                wait = self._origin + self._offset / self._speed
                wait -= self._reactor.seconds()
                if wait > 0:
                    self._schedule(wait)
                    return
            payload = self._upcoming.payload
            self._upcoming = None
            if not self._pass_reads:
                self._pass_start = self._offset
            self._pass_reads += 1
            self.packets_delivered += 1
            self.bytes_delivered += len(payload)
            self._protocol.dataReceived(payload)


@implementer(IStreamClientEndpoint)
class DatalogEndpoint:
    """
    A client endpoint that replays recorded instrument output.

    :ivar paths: the files and directories to play, absolute.
    :ivar speed: how many times faster than recorded; 0 is as fast as
        possible.
    :ivar max_gap: the longest wait between deliveries, recorded seconds.
    :ivar loop: whether a replay repeats the recording for ever, rather than
        playing it once and ending.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        paths: Sequence[str | os.PathLike[str]],
        *,
        speed: float = 1.0,
        max_gap: float = DEFAULT_MAX_GAP,
        loop: bool = False,
    ) -> None:
        """
        :param reactor: times the replay.
        :param paths: datalog files, or directories of them; a relative path
            is taken relative to the current working directory, now.
        :param speed: how many times faster than recorded, >= 0; 0 is as fast
            as possible.
        :param max_gap: the longest wait between deliveries in recorded
            seconds, > 0 (may be infinite).
        :param loop: repeat the recording for ever, rather than play it once
            and end the connection with :class:`~instrumentd.endpoints.LinkEnded`.
        :raises ValueError: if there is no path, or ``speed`` or ``max_gap``
            is out of range.
        """
        if not paths:
            raise ValueError("datalog: no file to replay")
        if not (math.isfinite(speed) and speed >= 0):
            raise ValueError(
                f"datalog: speed must be a finite number >= 0, not {speed!r}"
            )
        if math.isnan(max_gap) or max_gap <= 0:
            raise ValueError(f"datalog: maxgap must be > 0 seconds, not {max_gap!r}")
        self.paths = tuple(Path(p).absolute() for p in paths)
        self.speed = speed
        self.max_gap = max_gap
        self.loop = loop
        self._reactor = reactor

    def __repr__(self) -> str:
        files = ",".join(str(p) for p in self.paths)
        loop = " loop" if self.loop else ""
        return f"<DatalogEndpoint {files} speed={self.speed:g}{loop}>"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Connect a new protocol to a replay of the recording.

        The files are looked up now (a directory may have gained files since
        the string was parsed) and read as the replay goes.  Nothing is
        delivered before the returned Deferred has fired.  Never raises.

        :param protocolFactory: builds the protocol, given a
            :class:`DatalogAddress`.
        :returns: a Deferred that fires with the connected protocol, whose
            transport is a :class:`DatalogReplayTransport`; or fails with
            :class:`~twisted.internet.error.ConnectError` if a file is
            missing, with :class:`TypeError` if the reactor has no clock, with :class:`~twisted.internet.error.NoProtocol` if the
            factory returns ``None``, or with whatever ``connectionMade``
            raised.
        """
        address = DatalogAddress(tuple(str(p) for p in self.paths))
        try:
            if not IReactorTime.providedBy(self._reactor):
                raise TypeError(f"datalog: {self._reactor!r} cannot schedule calls")
            files = [f for p in self.paths for f in datalog_paths(p)]
            for path in files:
                if not path.is_file():
                    raise ConnectError(string=f"datalog: no such file: {path}")
            if not files:
                raise ConnectError(string="datalog: no datalog files to replay")
            protocol = protocolFactory.buildProtocol(address)
            if protocol is None:
                raise NoProtocol()
            transport = DatalogReplayTransport(
                self._reactor,
                protocol,
                files,
                address,
                speed=self.speed,
                max_gap=self.max_gap,
                loop=self.loop,
            )
            transport.start()
        except Exception:
            return fail()
        return succeed(protocol)


def _number(options: Mapping[str, str], name: str, default: float) -> float:
    if name not in options:
        return default
    text = options[name]
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"datalog: {name} must be a number, not {text!r}") from None


def parse_datalog_endpoint(
    reactor: object, *args: object, **kwargs: object
) -> DatalogEndpoint:
    """
    Make a :class:`DatalogEndpoint` from the parts of a ``datalog:`` string.

    Every file is checked here, so that a configuration naming a missing file
    is refused when it is loaded rather than when the agent connects.

    :param reactor: the reactor given to ``clientFromString``; it must
        provide :class:`~twisted.internet.interfaces.IReactorTime` when the
        endpoint connects.
    :param args: the positional parts after ``datalog:``; exactly one, a
        comma-separated list of files and directories.
    :param kwargs: the ``key=value`` parts: ``speed``, ``maxgap`` and
        ``loop``.
    :returns: an endpoint that starts a replay each time it connects.
    :raises ValueError: naming a missing file, a directory with no datalog,
        a bad value, or an unknown option (listing the valid ones).
    """
    files, options = one_path_and_options(
        "datalog",
        args,
        kwargs,
        what="FILE[,FILE...] part",
        example=(
            "datalog:ctd.datalog:speed=1 or datalog:a.datalog,b.datalog:loop=true"
        ),
        valid_options=_OPTION_NAMES,
        missing="file",
    )
    paths = []
    for name in files.split(","):
        if not name:
            raise ValueError(f"datalog: empty file name in {files!r}")
        path = Path(name).absolute()
        if path.is_dir():
            if not datalog_paths(path):
                raise ValueError(
                    f"datalog: no datalog files (*.datalog, or OOI's "
                    f"*.datalog.YYYY_MM_DD) in {str(path)!r}"
                )
        elif not path.is_file():
            raise ValueError(f"datalog: no such file: {str(path)!r}")
        elif not os.access(path, os.R_OK):
            raise ValueError(f"datalog: cannot read {str(path)!r}")
        paths.append(path)
    speed = _number(options, "speed", 1.0)
    if not (math.isfinite(speed) and speed >= 0):
        raise ValueError(
            f"datalog: speed must be a finite number >= 0 (0 is as fast as "
            f"possible), not {options['speed']!r}"
        )
    max_gap = _number(options, "maxgap", DEFAULT_MAX_GAP)
    if math.isnan(max_gap) or max_gap <= 0:
        raise ValueError(
            f"datalog: maxgap must be a number of seconds > 0, not "
            f"{options['maxgap']!r}"
        )
    loop = flag("datalog", "loop", options["loop"]) if "loop" in options else False
    # Not checked for a clock here: configuration checks parse with a
    # MemoryReactor, which has none.  connect() checks.
    return DatalogEndpoint(
        cast(IReactorTime, reactor), paths, speed=speed, max_gap=max_gap, loop=loop
    )
