# -*- test-case-name: tests.test_portagent_link -*-
"""
The instrument link: one connection to the instrument, kept up forever.

The link is a :class:`twisted.application.internet.ClientService` over any
client endpoint (TCP to a device server, ``serial:`` to a serial line,
``datalog:`` to a recording).  It reconnects with exponential backoff and
jitter capped at a maximum delay, so a device server that reboots or a USB
serial adapter that is unplugged and plugged back in is picked up again
without anyone's help.  Failed attempts are logged with their reason, but
rate-limited, so an instrument that stays away for a week does not fill the
disk with identical lines.  The link remembers since when it is down and the
last reason, in words for the operator (:meth:`InstrumentLink.report`).  A link whose
transport says it has ended for good (:class:`~instrumentd.endpoints.LinkEnded`:
a recording played to its end) is not reconnected.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import error
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.main import CONNECTION_DONE
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.tcp import Connection
from twisted.logger import ILogObserver, LogEvent, Logger, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer, provider

from instrumentd.endpoints import LinkEnded
from instrumentd.interfaces import IBreakableTransport
from instrumentd.packet import MAX_PAYLOAD_SIZE

__all__ = [
    "BreakNotSupported",
    "InstrumentLink",
    "LinkBacklogged",
    "LinkDown",
    "QuietClientService",
    "capped_backoff",
    "describe_failure",
    "enable_keepalive",
    "utc_text",
]


class LinkDown(Exception):
    """
    The instrument link is not connected.
    """


class LinkBacklogged(LinkDown):
    """
    The instrument is not taking bytes as fast as clients send them: the
    link's send buffer is full, so more would only grow memory.
    """


class BreakNotSupported(Exception):
    """
    The instrument link cannot send a serial break (e.g. a TCP link).
    """


#: TCP keepalive on instrument links: first probe after this many idle
#: seconds, then one every KEEPALIVE_INTERVAL, and the link is declared dead
#: after KEEPALIVE_COUNT unanswered probes (about a minute in all).
KEEPALIVE_IDLE: Final = 30
KEEPALIVE_INTERVAL: Final = 10
KEEPALIVE_COUNT: Final = 3


def enable_keepalive(transport: object) -> bool:
    """
    Turn on TCP keepalive, with short timers, if ``transport`` is a TCP
    connection.  A device server that loses power or network never closes
    its connection; without keepalive the link would look up for hours
    (the kernel default is two) while no byte can arrive.

    :returns: whether keepalive was enabled.
    """
    get_handle = getattr(transport, "getHandle", None)
    sock = get_handle() if get_handle is not None else None
    if not isinstance(sock, socket.socket) or sock.family not in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        return False
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    return True


def read_whole_packets(transport: object) -> bool:
    """
    Make each read from ``transport`` small enough to be framed as one packet.

    Twisted's TCP and Unix-socket transports read up to ``bufferSize`` bytes
    at a time, 64 KiB: 17 bytes more than a packet carries, so a busy link
    was framed as a packet of 65,519 bytes and one of 17, each with its own
    header, checksum, datalog record and send.  Reading at most a packet's
    payload at a time frames every read as one packet; the bytes, and their
    order, are the same.  Transports that read less (serial lines, TLS,
    recordings) are left alone.

    :returns: whether the read size was lowered.
    """
    size = getattr(transport, "bufferSize", None)
    if not isinstance(size, int) or size <= MAX_PAYLOAD_SIZE:
        return False
    transport.bufferSize = MAX_PAYLOAD_SIZE  # type: ignore[attr-defined]
    return True


def read_straight(transport: object, receive: Callable[[bytes], object]) -> bool:
    """
    Hand each read of a plain TCP ``transport`` straight to ``receive``.

    A link's connection reaches its protocol through two wrappers, the
    endpoint's and :class:`ClientService`'s (which finds the protocol's
    ``dataReceived`` through ``__getattr__`` on every read); a port agent
    relaying small messages as they come spends a part of each one's
    latency there.  A plain TCP connection hands what it reads to its
    private ``_dataReceived``; this replaces that one step, for this
    connection only.  An empty read still ends the connection as Twisted's
    own step ends it, through the wrappers, so reconnecting is unchanged.
    Other transports (serial lines, TLS, recordings) are left alone.

    :returns: whether the reads now go straight to ``receive``.
    """
    if not isinstance(transport, Connection) or not callable(
        getattr(transport, "_dataReceived", None)
    ):
        return False

    def _dataReceived(data: bytes | None) -> error.ConnectionDone | None:
        if not data:
            return CONNECTION_DONE
        receive(data)
        return None

    transport._dataReceived = _dataReceived  # type: ignore[method-assign]
    return True


#: What the usual failures of a link are called for an operator; Twisted's
#: own messages ("Connection was refused by other side.") are longer and
#: say less.
_FAILURE_TEXTS: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (error.ConnectionRefusedError, "connection refused"),
    (error.TCPTimedOutError, "connection timed out"),
    (error.TimeoutError, "no answer to the connection attempt (timed out)"),
    (error.NoRouteError, "no route to host"),
    (error.ConnectionDone, "the other side closed the connection"),
    (error.ConnectionLost, "the connection was lost"),
)


def describe_failure(reason: Failure) -> str:
    """
    Why a link attempt failed or a link dropped, in a few words.

    :param reason: the failure.
    :returns: e.g. ``"connection refused"``, or the error's own message.
    """
    for kind, text in _FAILURE_TEXTS:
        if reason.check(kind):
            return text
    return reason.getErrorMessage() or reason.type.__name__  # type: ignore[union-attr]


def utc_text(seconds: float) -> str:
    """
    A time as operators read it in logs and messages.

    :param seconds: Unix seconds.
    :returns: ISO 8601 UTC to the second, e.g. ``2026-12-07T05:56:52Z``.
    """
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@implementer(IPushProducer)
class _WriteGate:
    """
    Registered as the link transport's producer, so the transport tells us
    when its send buffer is full (a 9600-baud line drains ~1 KB/s).
    """

    paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.paused = False


class _LinkProtocol(Protocol):
    def __init__(self, link: InstrumentLink) -> None:
        self._link = link

    gate: _WriteGate | None = None

    def connectionMade(self) -> None:
        enable_keepalive(self.transport)
        read_whole_packets(self.transport)
        consumer = IConsumer(self.transport, None)
        if consumer is not None:
            self.gate = _WriteGate()
            consumer.registerProducer(self.gate, True)
        # Each read goes straight to the link's receiver: past the wrappers
        # for plain TCP, and one call fewer than this protocol's own
        # dataReceived for the rest.
        self.dataReceived = self._link.on_data  # type: ignore[method-assign, assignment]
        read_straight(self.transport, self._link.on_data)
        self._link._connected(self)

    def dataReceived(self, data: bytes) -> None:
        self._link.on_data(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._link._disconnected(self, reason)


class _LinkFactory(Factory):
    noisy = False

    def __init__(self, link: InstrumentLink) -> None:
        self._link = link

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        return _LinkProtocol(self._link)


@implementer(IStreamClientEndpoint)
class _ObservedEndpoint:
    """
    An endpoint that reports each failed connection attempt.
    """

    def __init__(
        self, wrapped: IStreamClientEndpoint, on_failure: Callable[[Failure], None]
    ) -> None:
        self._wrapped = wrapped
        self._on_failure = on_failure

    def __repr__(self) -> str:
        return repr(self._wrapped)

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        try:
            d = self._wrapped.connect(protocolFactory)
        except Exception:
            d = fail()

        def failed(reason: Failure) -> Failure:
            self._on_failure(reason)
            return reason

        return d.addErrback(failed)


@provider(ILogObserver)
def _without_retry_notices(event: LogEvent) -> None:
    # ClientService logs every scheduled retry ("Scheduling retry 1 to
    # connect ..."); an instrument that is away for a week would fill the
    # log.  Our own failure warning is rate-limited and says the same, so
    # drop these and pass the rest on.
    if str(event.get("log_format", "")).startswith("Scheduling retry"):
        return
    globalLogPublisher(event)


class QuietClientService(ClientService):
    """
    A :class:`ClientService` that does not log each retry it schedules:
    its users report failures themselves, once.
    """

    # ClientService reads its logger from this class attribute.
    _log = Logger(observer=_without_retry_notices)


class _ReconnectingLink(QuietClientService):
    pass


def capped_backoff(
    max_delay: float, jitter: Callable[[], float] = random.random
) -> Callable[[int], float]:
    """
    Twisted's exponential backoff, with jitter that takes up to a fifth off
    each delay rather than adding to it, so ``max_delay`` is a true cap while
    agents that lost one device server together still retry apart.

    :param max_delay: the longest wait between attempts, seconds.
    :param jitter: returns a number in [0, 1).
    :returns: a retry policy for :class:`ClientService`.
    """
    curve = backoffPolicy(maxDelay=max_delay, jitter=lambda: 0)

    def policy(attempt: int) -> float:
        return float(curve(attempt)) * (1.0 - 0.2 * jitter())

    return policy


class InstrumentLink:
    """
    Keep a connection to the instrument and report what happens on it.

    :ivar on_data: called with each chunk of bytes read.
    :ivar connected: whether the link is up now.
    :ivar down_since: when the link went down (or was started, if it has
        never been up), Unix seconds; ``None`` while it is up.
    :ivar last_error: the last failed attempt's or drop's reason, in words
        (see :func:`describe_failure`), or ``None``.
    :ivar last_error_time: when that was, Unix seconds, or ``None``.
    :ivar ended: why the link ended for good, or ``None`` while it is kept up.
    """

    log = Logger()

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        description: str,
        *,
        on_data: Callable[[bytes], None],
        on_up: Callable[[], None],
        on_down: Callable[[str], None],
        on_attempt_failed: Callable[[str], None] = lambda reason: None,
        on_ended: Callable[[str], None] | None = None,
        max_delay: float = 60.0,
        clock: IReactorTime,
        failure_log_interval: float = 60.0,
    ) -> None:
        """
        :param endpoint: how to reach the instrument.
        :param description: the endpoint string, for logs.
        :param on_data: called with each chunk read.
        :param on_up: called when the link comes up.
        :param on_down: called with a reason when an established link drops.
        :param on_attempt_failed: called with a reason for each failed attempt.
        :param on_ended: called with the reason, instead of ``on_down``, when
            the link ends for good (:class:`~instrumentd.endpoints.LinkEnded`);
            ``on_down`` is called if this is ``None``.
        :param max_delay: cap of the reconnect backoff, seconds.
        :param clock: the reactor's clock.
        :param failure_log_interval: at most one log line per this many
            seconds for repeated identical failures.
        """
        self.on_data = on_data
        self._on_up = on_up
        self._on_down = on_down
        self._on_attempt_failed = on_attempt_failed
        self._on_ended = on_ended
        self.ended: str | None = None
        self._description = description
        self._clock = clock
        self._failure_log_interval = failure_log_interval
        self._protocol: _LinkProtocol | None = None
        self._last_failure: tuple[str, float] | None = None
        self._suppressed = 0
        self.down_since: float | None = clock.seconds()
        self._first_up = True
        #: Whether the link's first coming up goes unlogged (an agent in a
        #: station's process: the station logs its instrument running);
        #: every later change is logged.
        self.quiet_first_up = False
        self.last_error: str | None = None
        self.last_error_time: float | None = None
        self._service = _ReconnectingLink(
            _ObservedEndpoint(endpoint, self._attempt_failed),
            _LinkFactory(self),
            retryPolicy=capped_backoff(max_delay),
            clock=clock,
        )

    @property
    def connected(self) -> bool:
        """
        Whether the link is up now.
        """
        return self._protocol is not None

    @property
    def transport(self) -> ITransport | None:
        """
        The current transport, or ``None`` when the link is down.
        """
        return None if self._protocol is None else self._protocol.transport

    def report(self) -> dict[str, object]:
        """
        The link's state for ``get_stats``, JSON-ready.

        :returns: ``up``, ``down_since`` (Unix seconds, or ``None`` while
            up), ``last_error`` and ``last_error_time`` (the last reason it
            failed or dropped, kept after it came back), and ``ended`` (why
            it ended for good, or ``None`` while it is kept up).
        """
        return {
            "up": self.connected,
            "down_since": self.down_since,
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
            "ended": self.ended,
        }

    def problem(self) -> str | None:
        """
        What is wrong with the link, for an operator.

        :returns: ``"instrument link down since 2026-12-07T05:56:52Z:
            connection refused"``, ``"instrument link ended at ...: end of
            the recording ...; not reconnecting"``, or ``None`` while it is
            up.
        """
        if self.down_since is None:
            return None
        if self.ended is not None:
            return (
                f"instrument link ended at {utc_text(self.down_since)}: "
                f"{self.ended}; not reconnecting"
            )
        text = f"instrument link down since {utc_text(self.down_since)}"
        if self.last_error is not None:
            text += f": {self.last_error}"
        return text

    def start(self) -> None:
        """
        Start connecting (and reconnecting, forever).
        """
        if self._protocol is None:
            self.down_since = self._clock.seconds()
        self._service.startService()

    def stop(self) -> Deferred[None]:
        """
        Disconnect and stop reconnecting.

        :returns: a Deferred that fires when the link is closed.
        """
        return self._service.stopService()

    def write(self, data: bytes) -> None:
        """
        Write to the instrument.

        :raises LinkDown: if the link is not up.
        :raises LinkBacklogged: if the instrument is not taking bytes as fast
            as they are sent (its send buffer is full).
        """
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            raise LinkDown(f"instrument link to {self._description} is down")
        if protocol.gate is not None and protocol.gate.paused:
            raise LinkBacklogged(
                f"instrument link to {self._description} is backed up: the "
                "instrument is not taking bytes as fast as they are sent"
            )
        protocol.transport.write(data)

    def send_break(self, duration_ms: int) -> Deferred[None]:
        """
        Send a serial break.

        :returns: a Deferred firing when the break has ended, or failing with
            :class:`LinkDown` or :class:`BreakNotSupported`.
        """
        transport = self.transport
        if transport is None:
            return fail(LinkDown(f"instrument link to {self._description} is down"))
        if not IBreakableTransport.providedBy(transport):
            return fail(
                BreakNotSupported(
                    f"the instrument link {self._description} cannot send a break "
                    "(only serial links can)"
                )
            )
        try:
            return IBreakableTransport(transport).send_break(duration_ms)
        except Exception:
            return fail()

    def _connected(self, protocol: _LinkProtocol) -> None:
        self._protocol = protocol
        if self._suppressed:
            self.log.info(
                "{count} more failed attempts to reach {endpoint} before it came up",
                count=self._suppressed,
                endpoint=self._description,
            )
        self._suppressed = 0
        self._last_failure = None
        self.down_since = None
        if not (self.quiet_first_up and self._first_up):
            self.log.info("instrument link up: {endpoint}", endpoint=self._description)
        self._first_up = False
        self._on_up()

    def _disconnected(self, protocol: _LinkProtocol, reason: Failure) -> None:
        if protocol is not self._protocol:
            return
        self._protocol = None
        if reason.check(LinkEnded):
            self._end(reason.getErrorMessage())
            return
        text = describe_failure(reason)
        self.down_since = self.last_error_time = self._clock.seconds()
        self.last_error = text
        self.log.info(
            "instrument link down: {endpoint}: {reason}",
            endpoint=self._description,
            reason=text,
        )
        self._on_down(text)

    def _end(self, text: str) -> None:
        # Stopping now, while the connection is being lost, leaves the
        # ClientService stopped without ever scheduling a retry.
        self.ended = text
        self.down_since = self.last_error_time = self._clock.seconds()
        self.last_error = text
        self._service.stopService()
        self.log.info(
            "instrument link ended: {endpoint}: {reason}; not reconnecting",
            endpoint=self._description,
            reason=text,
        )
        (self._on_ended or self._on_down)(text)

    def _attempt_failed(self, reason: Failure) -> None:
        text = describe_failure(reason)
        now = self._clock.seconds()
        self.last_error, self.last_error_time = text, now
        self._on_attempt_failed(text)
        last = self._last_failure
        if (
            last is not None
            and last[0] == text
            and now - last[1] < self._failure_log_interval
        ):
            self._suppressed += 1
            return
        suffix = (
            f" ({self._suppressed} similar failures not logged)"
            if self._suppressed
            else ""
        )
        self._suppressed = 0
        self._last_failure = (text, now)
        self.log.warn(
            "cannot reach instrument at {endpoint}: {reason}{suffix}; retrying with backoff",
            endpoint=self._description,
            reason=text,
            suffix=suffix,
        )
