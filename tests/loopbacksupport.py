"""
Helpers for tests on real loopback TCP connections: a server-side protocol
that reports when it is made and lost, and a client that collects what it
is sent.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Protocol

#: Generous: on a loaded machine the kernel still hands loopback bytes over
#: in far less, and a failure waits this long only once.
WAIT = 10.0


class Accepted(Protocol):
    def __init__(self, made: defer.Deferred[Any], lost: defer.Deferred[Any]) -> None:
        self.made = made
        self.lost = lost

    def connectionMade(self) -> None:
        self.made.callback(self)

    def connectionLost(self, reason: Any = None) -> None:
        if not self.lost.called:
            self.lost.callback(None)


class Collector(Protocol):
    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.data = bytearray()
        self.made: defer.Deferred[None] = defer.Deferred()
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if len(self.data) >= self.wanted and not self.done.called:
            self.done.callback(bytes(self.data))
