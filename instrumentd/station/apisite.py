# -*- test-case-name: tests.test_station_apisite -*-
"""
The HTTP server in front of the station's API: ``twisted.web``'s ``Site``
with the limits a server that strangers can reach needs.

:class:`APISite` serves any resource tree (the routing layer is not its
business) and adds:

- **Bodies are checked before they are read.**  A request whose
  ``Content-Length`` is over ``max_body`` is answered 413 as soon as its
  headers are in; a chunked body is cut off with a 413 where it passes the
  limit; a request with a body that ``authorize`` refuses (an
  unauthenticated change) is answered 401 before any of its body is read.
  What the client sends after such an answer is discarded unread into
  nothing for at most ``linger`` seconds, so that the client can read the
  answer, then the connection is closed.  Bodies are held in memory
  (they are at most ``max_body``), never in a temporary file.
- **Idle connections end** after ``idle_timeout`` seconds without a byte
  (twisted.web's default is 12 hours); a connection that is being answered
  (an event stream, a command still running) is not idle.
- **At most ``max_connections`` connections are open.**  A connection over
  the cap closes the connection that has been idle longest; only when every
  connection is busy answering is the newcomer answered 503.  A few hundred
  idle sockets cannot lock operators out.
- **No per-request access log** unless ``access_log`` is set.
- **Errors are JSON**: an exception escaping a resource is a JSON 500, not
  twisted.web's HTML page; a request twisted.web cannot parse is a JSON 400,
  not a bare one (or, for a line over 16 KiB, a silent close).

Twisted's ``Request`` writes the body to its ``content`` file as it
arrives (a temporary file over 100 kB) and only then calls ``process()``;
the checks here hook the channel's ``allHeadersReceived``, the one point
where the headers are complete and no byte of the body has been read.
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from instrumentd.station.api._errors import Refusal

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_LINGER",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_CONNECTIONS",
    "SEND_LIMIT",
    "APIChannel",
    "APIRequest",
    "APISite",
    "described_interface",
    "is_local",
    "is_loopback",
]

_log = Logger()

#: The largest request body accepted, in bytes.
DEFAULT_MAX_BODY = 1024 * 1024
#: Seconds a connection may stay silent between requests.
DEFAULT_IDLE_TIMEOUT = 60.0
#: Connections open at once.
DEFAULT_MAX_CONNECTIONS = 100
#: Seconds a refused request's client is given to read the answer.
DEFAULT_LINGER = 2.0

#: A ``Content-Length`` longer than this many digits is over any limit (and
#: over Python's limit for converting text to an int).
_MAX_LENGTH_DIGITS = 18

#: Bytes a connection may send in one turn of the reactor.  Twisted sends at
#: most 128 KiB per connection per turn; a station of thousands of
#: instruments can take seconds over a turn when it is busy, so a megabyte
#: answer (``/api/health`` at 5,000 instruments) took about ten turns, a
#: minute on a loaded machine.  With this, it goes in a turn or two (as much
#: as the socket takes each time).
SEND_LIMIT = 16 * 1024 * 1024

#: How often, at most, the cap being reached is logged.
_CAP_LOG_INTERVAL = 60.0

_JSON = b"application/json; charset=utf-8"


def is_loopback(host: str) -> bool:
    """
    Whether ``host`` names a loopback interface (``127.0.0.0/8``, ``::1``,
    ``localhost``); ``""`` (every interface) and other names are not.

    :param host: an IP address or host name.
    """
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def is_local(address: IAddress) -> bool:
    """
    Whether only this machine can reach a listening port's ``address``: a
    loopback IP address or a UNIX socket.

    :param address: a listening port's address.
    """
    from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

    if isinstance(address, UNIXAddress):
        return True
    if isinstance(address, IPv4Address | IPv6Address):
        return is_loopback(address.host)
    return False


def described_interface(description: str) -> str | None:
    """
    The interface a server endpoint string would listen on, found without
    listening: ``""`` for every interface (``tcp:8700``).

    :param description: a server endpoint string.
    :returns: the interface of a TCP or TLS endpoint; ``None`` for a UNIX
        socket, an endpoint whose address is known only once it listens,
        or a string that is not valid.
    """
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.protocol import Factory
    from twisted.internet.testing import MemoryReactor

    # A memory reactor records where each listener would bind.
    recorder = MemoryReactor()
    try:
        serverFromString(recorder, description).listen(Factory())
    except Exception:
        return None
    for tcp in recorder.tcpServers:
        return str(tcp[3])
    for tls in recorder.sslServers:
        return str(tls[4])
    return None


def _error_bytes(refusal: Refusal) -> bytes:
    return (json.dumps(refusal.body(), indent=2) + "\n").encode("utf-8")


class APIRequest(Request):
    """
    A request whose body is kept in memory and cut off at the site's
    ``max_body``, and whose unexpected failures are answered in JSON.
    """

    channel: APIChannel
    _received = 0
    #: Set when the request was answered before its body was read: the
    #: rest of the body is dropped.
    refused_early = False

    def gotLength(self, length: int | None) -> None:
        # The channel has refused anything over max_body, so memory is the
        # right place: twisted.web would use a temporary file over 100 kB.
        self._body = io.BytesIO()
        self.content = self._body

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused_early:
            return
        channel = self.channel
        self._received += len(data)
        limit = channel.site.max_body
        if self._received > limit:
            # Only a chunked body gets here: a Content-Length over the
            # limit was refused with the headers.
            channel.refuse_early(self, _too_large(limit))
            return
        self._body.write(data)

    def processingFailed(self, reason: Failure) -> Failure:
        _log.failure("Unexpected error answering {uri}", reason, uri=self.uri)
        request: Request = self
        if self.finished or self.startedWriting:
            # Too late for an answer of our own: end what was started.
            if not self.finished:
                request.finish()
            return reason
        _answer_now(
            request,
            Refusal(
                500,
                "INTERNAL_ERROR",
                "the station failed unexpectedly; its log has the details",
            ),
        )
        return reason


def _answer_now(request: Request, refusal: Refusal, *, close: bool = False) -> None:
    """
    Answer ``request`` with the JSON error ``refusal`` and finish it.
    """
    body = _error_bytes(refusal)
    request.setResponseCode(refusal.status)
    for name, value in refusal.headers.items():
        request.setHeader(name, value)
    request.setHeader(b"content-type", _JSON)
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"content-length", b"%d" % len(body))
    if close:
        request.setHeader(b"connection", b"close")
    request.write(body)
    request.finish()


def _too_large(limit: int) -> Refusal:
    return Refusal(
        413,
        "BODY_TOO_LARGE",
        f"the request body is over {limit} bytes, the most this station accepts",
        limit=limit,
    )


class APIChannel(HTTPChannel):
    """
    An HTTP connection of an :class:`APISite`: checks each request when its
    headers are in, before its body is read; tells the site when it is busy
    answering and when it is idle; discards what follows a request it
    refused.

    :ivar discarding: whether a request was refused early, so what arrives
        now is dropped unread until the connection closes.
    :ivar busy: whether a request is being answered.
    """

    site: APISite
    requestFactory = APIRequest
    discarding = False
    busy = False
    _linger: IDelayedCall | None = None

    def __init__(self) -> None:
        HTTPChannel.__init__(self)

    def connectionMade(self) -> None:
        HTTPChannel.connectionMade(self)
        # An instance attribute overrides the transport class's (see
        # SEND_LIMIT); a transport without one (a test's) is left alone.
        transport = self.transport
        if getattr(transport, "SEND_LIMIT", SEND_LIMIT) < SEND_LIMIT:
            transport.SEND_LIMIT = SEND_LIMIT  # type: ignore[union-attr]
        self.site.connection_made(self)

    def dataReceived(self, data: bytes) -> None:
        if self.discarding:
            return
        self.site.connection_active(self)
        HTTPChannel.dataReceived(self, data)

    def rawDataReceived(self, data: bytes) -> None:
        if self.discarding:
            return
        HTTPChannel.rawDataReceived(self, data)

    def headerReceived(self, line: bytes) -> bool:
        name, colon, value = line.partition(b":")
        value = value.strip(b" \t")
        if (
            colon
            and name.strip().lower() == b"content-length"
            and value.isdigit()
            and len(value) > _MAX_LENGTH_DIGITS
        ):
            # twisted.web would fail converting thousands of digits to an
            # int (an unhandled error); any such length is over the limit.
            line = b"Content-Length: " + b"9" * _MAX_LENGTH_DIGITS
        return bool(HTTPChannel.headerReceived(self, line))

    def allHeadersReceived(self) -> None:
        request = cast("APIRequest", self.requests[-1])
        # What requestReceived would set, so the checks (and an early
        # answer) can see them; requestReceived sets them again.
        request.method = self._command
        request.uri = self._path
        request.clientproto = self._version
        request.path = self._path.split(b"?", 1)[0]
        refusal = self.site.check_headers(request, self.length)
        if refusal is None:
            HTTPChannel.allHeadersReceived(self)
            return
        # No "100 Continue": the client need not send the body at all.
        request.gotLength(self.length)
        self.refuse_early(request, refusal)

    def _respondToBadRequestAndDisconnect(self) -> None:
        # twisted.web answers a request it cannot parse (a bad request
        # line or header, headers over 16 KiB, bad chunking) with a bare
        # 400; the API's clients get its JSON error, and the connection
        # ends as before.
        body = _error_bytes(
            Refusal(
                400,
                "BAD_REQUEST",
                "the request is not valid HTTP (request line, headers or "
                "chunked body), or its headers are over 16 KiB",
            )
        )
        transport: Any = self.transport
        transport.write(
            b"HTTP/1.1 400 Bad Request\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body) + body
        )
        HTTPChannel.loseConnection(self)

    def lineLengthExceeded(self, line: bytes) -> None:
        # A line over 16 KiB: LineReceiver would close without a word.
        self._respondToBadRequestAndDisconnect()

    def refuse_early(self, request: APIRequest, refusal: Refusal) -> None:
        """
        Answer ``request`` with ``refusal`` before its body has been read,
        and close the connection once the client has had time to read it.

        :param request: the request, its body unread.
        :param refusal: the JSON error to answer with.
        """
        request.refused_early = True
        self.discarding = True
        self.persistent = False
        self.site.bodies_refused += 1
        _answer_now(request, refusal, close=True)

    def allContentReceived(self) -> None:
        if self.discarding:
            return
        self.busy = True
        HTTPChannel.allContentReceived(self)

    def requestDone(self, request: Any) -> None:
        self.busy = False
        HTTPChannel.requestDone(self, request)
        self.site.connection_active(self)

    def loseConnection(self) -> None:
        if not self.discarding or self.transport is None:
            HTTPChannel.loseConnection(self)
            return
        # Closing now, with the body still arriving, would make the kernel
        # reset the connection and the client might never read the answer:
        # close our side once the answer is sent, drop what comes in, and
        # end it for good after the linger time.
        producer: Any = self._networkProducer
        producer.unregisterProducer()
        HTTPChannel.setTimeout(self, None)
        transport: Any = self.transport
        if hasattr(transport, "loseWriteConnection"):
            transport.loseWriteConnection()
        else:
            transport.loseConnection()
        self._linger = self.site.reactor.callLater(
            self.site.linger, transport.abortConnection
        )

    def timeoutConnection(self) -> None:
        # twisted.web logs each one at info; for an API that strangers can
        # reach that is noise, so it is counted instead.
        self.site.connections_timed_out += 1
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def evict(self) -> None:
        """
        Close this idle connection to make room for a new one.
        """
        HTTPChannel.setTimeout(self, None)
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        self.site.connection_lost(self)
        HTTPChannel.connectionLost(self, reason)


class _Overloaded(Protocol):
    """
    The answer to a connection over the cap when no connection can be
    closed for it: 503 and close.

    :param site: the site, which counts it until it is gone.
    """

    def __init__(self, site: APISite) -> None:
        self.site = site

    def connectionMade(self) -> None:
        body = _error_bytes(
            Refusal(
                503,
                "TOO_MANY_CONNECTIONS",
                "the station is answering as many connections as it allows; "
                "try again shortly",
            )
        )
        assert self.transport is not None
        self.site.connection_made(self)
        self.transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"Retry-After: 1\r\n"
            b"Connection: close\r\n\r\n" % len(body) + body
        )
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.site.connection_lost(self)


class APISite(Site):
    """
    ``twisted.web``'s ``Site`` with body limits checked before bodies are
    read, an idle timeout, a connection cap and no access log by default.

    :param resource: the root resource (the API's routing).
    :param max_body: the largest request body accepted, in bytes.
    :param authorize: called with each request that has a body, its headers
        in and its body unread; raises
        :class:`~instrumentd.station.api._errors.Refusal` to refuse it
        (e.g. an unauthenticated change).  ``None`` accepts every one.
    :param idle_timeout: seconds without a byte after which a connection
        that is not being answered is closed.
    :param max_connections: connections open at once.
    :param linger: seconds the client of a request refused early has to
        read the answer while what it still sends is discarded.
    :param access_log: whether each request is logged.
    :param reactor: for timers; the global reactor if ``None``.
    :raises ValueError: for a limit that is not a finite positive number
        (``linger`` may be 0).

    :ivar connections_refused: connections answered 503 at the cap.
    :ivar connections_evicted: idle connections closed at the cap.
    :ivar connections_timed_out: connections closed for being idle.
    :ivar bodies_refused: requests answered before their body was read.
    """

    requestFactory = APIRequest
    displayTracebacks = False
    # No "Starting factory" lines: the station's banner says where it is.
    noisy = False

    def __init__(
        self,
        resource: IResource,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        authorize: Callable[[Request], None] | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        linger: float = DEFAULT_LINGER,
        access_log: bool = False,
        reactor: IReactorTime | None = None,
    ) -> None:
        for name, value, least in (
            ("max_body", max_body, 1),
            ("idle_timeout", idle_timeout, 0.001),
            ("max_connections", max_connections, 1),
            ("linger", linger, 0),
        ):
            if isinstance(value, bool) or not value >= least or value == float("inf"):
                raise ValueError(
                    f"APISite {name}={value!r} is out of range; valid: a finite "
                    f"number, at least {least}"
                )
        Site.__init__(self, resource, timeout=idle_timeout, reactor=reactor)
        self.max_body = max_body
        self.authorize = authorize
        self.max_connections = max_connections
        self.linger = linger
        self.access_log = access_log
        # Connections within the cap, the one idle longest first.
        self._open: OrderedDict[APIChannel, None] = OrderedDict()
        # Every connection not yet lost, evicted and refused ones included.
        self._live: set[Protocol] = set()
        self._closed_waiters: list[Deferred[None]] = []
        self._cap_logged: float | None = None
        self.connections_refused = 0
        self.connections_evicted = 0
        self.connections_timed_out = 0
        self.bodies_refused = 0

    @property
    def open_connections(self) -> int:
        """
        The connections open now.
        """
        return len(self._open)

    def buildProtocol(self, addr: IAddress | None) -> Any:
        if len(self._open) >= self.max_connections and not self._evict_one():
            self.connections_refused += 1
            self._log_cap()
            overloaded = _Overloaded(self)
            overloaded.factory = self
            return overloaded
        # What Site.buildProtocol does, without twisted.web's wrapper that
        # can switch to HTTP/2 (which needs TLS, which the API does not
        # offer), so that the channel is ours.
        channel = APIChannel()
        channel.factory = self
        channel.site = self
        channel.requestFactory = self.requestFactory
        # TimeoutMixin declares these narrower than twisted.web sets them.
        timing: Any = channel
        timing.timeOut = self.timeOut
        timing.callLater = self.reactor.callLater
        return channel

    def _evict_one(self) -> bool:
        for channel in self._open:
            if not channel.busy:
                del self._open[channel]
                self.connections_evicted += 1
                self._log_cap()
                channel.evict()
                return True
        return False

    def _log_cap(self) -> None:
        now = self.reactor.seconds()
        if self._cap_logged is not None and now - self._cap_logged < _CAP_LOG_INTERVAL:
            return
        self._cap_logged = now
        _log.warn(
            "The API has reached its limit of {limit} connections "
            "(api.max_connections): idle ones are being closed for new ones "
            "({evicted} so far), and newcomers refused when none is idle "
            "({refused} so far)",
            limit=self.max_connections,
            evicted=self.connections_evicted,
            refused=self.connections_refused,
        )

    def connection_made(self, channel: Protocol) -> None:
        """
        Count a new connection (the most recently active).
        """
        self._live.add(channel)
        if isinstance(channel, APIChannel):
            self._open[channel] = None

    def connection_active(self, channel: APIChannel) -> None:
        """
        Note that ``channel`` has just received bytes or finished an
        answer: it is now the last to be closed for a newcomer.
        """
        if channel in self._open:
            self._open.move_to_end(channel)

    def connection_lost(self, channel: Protocol) -> None:
        """
        Forget a closed connection.
        """
        if isinstance(channel, APIChannel):
            self._open.pop(channel, None)
        self._live.discard(channel)
        if not self._live:
            waiters, self._closed_waiters = self._closed_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def close_connections(self) -> Deferred[None]:
        """
        Abort every connection (when the station stops).

        :returns: a Deferred that fires once every connection is gone.
        """
        done: Deferred[None] = Deferred()
        if not self._live:
            done.callback(None)
            return done
        self._closed_waiters.append(done)
        for each in list(self._live):
            transport: Any = each.transport
            if transport is not None:
                transport.abortConnection()
        return done

    def check_headers(self, request: Request, length: int | None) -> Refusal | None:
        """
        Check a request whose headers are in and whose body is unread.

        :param request: the request (method, path and headers set).
        :param length: its ``Content-Length``; ``None`` for a chunked
            body, 0 for none.
        :returns: the refusal to answer with at once, or ``None`` to read
            the body and answer it as usual.
        """
        if length == 0:
            # No body to protect: the resource answers as usual.
            return None
        if self.authorize is not None:
            try:
                self.authorize(request)
            except Refusal as refusal:
                return refusal
        if length is not None and length > self.max_body:
            return _too_large(self.max_body)
        return None

    def log(self, request: Any) -> None:
        if self.access_log:
            super().log(request)
