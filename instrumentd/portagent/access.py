# -*- test-case-name: tests.test_portagent_access -*-
"""
Who may use a port agent's listeners: the shared token, and the rule that a
listener reachable from the network is protected by TLS or a token unless
the operator says otherwise.

With ``--token-file``, a client's first line on a gated listener must be the
token (the file's first line, surrounding whitespace removed), ending in
``\\n`` or ``\\r\\n``.  Nothing is sent to the client, and nothing it sends
reaches the instrument, before that.  A right token is not answered; the
connection simply becomes the listener's usual protocol, and whatever
followed the token line in the same read is handed to it.  A wrong token, a
first line longer than :data:`MAX_TOKEN_LINE`, or no line within
:data:`TOKEN_TIMEOUT` seconds gets :data:`REFUSED` and the connection is
closed.  The comparison takes the same time whatever the line holds
(:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Final

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTime,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = [
    "MAX_TOKEN_LINE",
    "REFUSED",
    "TOKEN_TIMEOUT",
    "ListenerReach",
    "TokenGate",
    "TokenGateFactory",
    "listener_reach",
    "read_token_file",
]

#: The longest first line read while waiting for the token, newline included.
MAX_TOKEN_LINE: Final = 1024
#: Seconds a client has to present the token.
TOKEN_TIMEOUT: Final = 30.0
#: The one line a refused client is sent before the connection closes.
REFUSED: Final = b"ERROR token refused\r\n"

#: Fewer characters than this is too easy to guess.
MIN_TOKEN_LENGTH: Final = 16


def read_token_file(path: str) -> bytes:
    """
    Read the shared token: the first line of ``path``, without surrounding
    whitespace.

    :param path: the token file.
    :returns: the token.
    :raises ValueError: naming the file and what is wrong with it (missing,
        unreadable, empty, too short, too long, not printable ASCII).
    """
    try:
        with open(path, "rb") as f:
            first = f.readline(MAX_TOKEN_LINE + 1)
    except OSError as e:
        raise ValueError(f"{path!r}: cannot read the token file: {e.strerror}") from e
    token = first.strip()
    if len(first) > MAX_TOKEN_LINE:
        raise ValueError(
            f"{path!r}: the token is longer than {MAX_TOKEN_LINE - 2} characters"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"{path!r}: the token must be at least {MIN_TOKEN_LENGTH} characters "
            f"on the file's first line (got {len(token)}); e.g. "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if not all(0x21 <= b <= 0x7E for b in token):
        raise ValueError(f"{path!r}: the token must be printable ASCII without spaces")
    return token


@implementer(IHalfCloseableProtocol)
class TokenGate(Protocol):
    """
    Hold a new connection until its first line is the token, then hand the
    transport to the listener's own protocol.

    A client that closes its sending side is passed on to a listener
    protocol that can still answer then (the command port answers every
    command it received); any other connection is closed.
    """

    log = Logger()

    def __init__(self, factory: TokenGateFactory, addr: IAddress | None) -> None:
        self._factory = factory
        self._addr = addr
        self._buffer = b""
        self._timer: IDelayedCall | None = None
        self._refused = False
        self.inner: Protocol | None = None

    def connectionMade(self) -> None:
        self._timer = self._factory.clock.callLater(
            self._factory.timeout, self._refuse, "no token line in time"
        )

    def dataReceived(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.dataReceived(data)
            return
        if self._refused:
            return
        self._buffer += data
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) >= MAX_TOKEN_LINE:
                self._refuse("first line too long")
            return
        if end + 1 > MAX_TOKEN_LINE:
            self._refuse("first line too long")
            return
        line, rest = self._buffer[:end], self._buffer[end + 1 :]
        self._buffer = b""
        if line.endswith(b"\r"):
            line = line[:-1]
        # Constant time whatever the line holds, so timing tells an attacker
        # nothing about how much of a guess was right.
        if not hmac.compare_digest(line, self._factory.token):
            self._refuse("wrong token")
            return
        self._cancel_timer()
        inner = self._factory.wrapped.buildProtocol(self._addr)
        if inner is None:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.inner = inner  # type: ignore[assignment]
        inner.makeConnection(self.transport)  # type: ignore[arg-type]
        if rest:
            inner.dataReceived(rest)

    def _refuse(self, why: str) -> None:
        self._cancel_timer()
        if self._refused or self.transport is None:
            return
        self._refused = True
        self._buffer = b""
        peer = self.transport.getPeer()
        self.log.warn(
            "{kind} client {peer} refused: {why}",
            kind=self._factory.kind,
            peer=_describe(peer),
            why=why,
        )
        self._factory.refused += 1
        self.transport.write(REFUSED)
        self.transport.loseConnection()

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_timer()
        if self.inner is not None:
            self.inner.connectionLost(reason)

    def readConnectionLost(self) -> None:
        """
        The client will send nothing more: tell a half-closeable listener
        protocol, or close the connection as Twisted would without the gate.
        """
        inner = self.inner
        if inner is not None and IHalfCloseableProtocol.providedBy(inner):
            inner.readConnectionLost()
        elif self.transport is not None:
            self._cancel_timer()
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """
        Passed on to a half-closeable listener protocol.
        """
        inner = self.inner
        if inner is not None and IHalfCloseableProtocol.providedBy(inner):
            inner.writeConnectionLost()


def _describe(address: IAddress) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"{host}:{port}"
    return str(getattr(address, "name", None) or type(address).__name__)


class TokenGateFactory(Factory):
    """
    Wraps a listener's factory so every connection must present the token
    first.

    :ivar token: the shared token.
    :ivar kind: the listener kind, for logs.
    :ivar refused: connections refused so far.
    """

    noisy = False

    def __init__(
        self,
        wrapped: Factory,
        token: bytes,
        kind: str,
        clock: IReactorTime,
        timeout: float = TOKEN_TIMEOUT,
    ) -> None:
        """
        :param wrapped: builds the listener's own protocol once a client is
            let in.
        :param token: the shared token.
        :param kind: the listener kind, for logs.
        :param clock: times the wait for the token.
        :param timeout: seconds a client has to send the token line.
        """
        self.wrapped = wrapped
        self.token = token
        self.kind = kind
        self.clock = clock
        self.timeout = timeout
        self.refused = 0

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        return TokenGate(self, addr)


@dataclass(frozen=True)
class ListenerReach:
    """
    Where a server endpoint string listens, as far as access goes.

    :ivar local: only this machine can connect (loopback or a UNIX socket).
    :ivar encrypted: TLS is on (``ssl:``, ``mtls:``).
    :ivar where: a short description, e.g. ``0.0.0.0:4101``.
    """

    local: bool
    encrypted: bool
    where: str


def _is_loopback(interface: str) -> bool:
    try:
        return ipaddress.ip_address(interface.split("%", 1)[0]).is_loopback
    except ValueError:
        # A host name: the resolver decides; treat it as reachable.
        return interface == "localhost"


def listener_reach(description: str) -> ListenerReach:
    """
    Find out where a server endpoint string would listen, by listening on a
    memory reactor (nothing is bound).

    :param description: a server endpoint string.
    :returns: where it listens.
    :raises ValueError: if the string does not parse.
    """
    reactor = MemoryReactorClock()
    try:
        serverFromString(reactor, description).listen(Factory())
    except Exception as e:
        raise ValueError(f"{description!r}: {e}") from None
    if reactor.unixServers:
        return ListenerReach(True, False, str(reactor.unixServers[0][0]))
    if reactor.sslServers:
        port, _, _, _, interface = reactor.sslServers[0]
        return ListenerReach(
            _is_loopback(interface), True, f"{interface or '0.0.0.0'}:{port}"
        )
    if reactor.tcpServers:
        port, _, _, interface = reactor.tcpServers[0]
        return ListenerReach(
            _is_loopback(interface), False, f"{interface or '0.0.0.0'}:{port}"
        )
    # An endpoint type we cannot see into (a plugin's): assume the worst.
    return ListenerReach(False, False, description)
