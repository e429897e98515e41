"""
Helpers for the sink tests: particles, a scripted ingest endpoint for
L{StubTreq}, an HTTP client that fails on cue, and a real loopback ingest
receiver (twisted.web) that can go down and come back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from instrumentd.packet import NTP_UNIX_OFFSET

URL = "http://ingest.example/particles"


def utc(text: str) -> float:
    """
    Unix time of an ISO 8601 UTC time without zone, e.g.
    ``2026-11-24T23:59:59.5``.
    """
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def particle(number: int, when: str = "2026-11-24T12:00:00") -> dict[str, object]:
    """
    A particle's dict form: stream ``ctd_parsed``, sampled at ``when``
    (UTC) by its port timestamp, with one value ``n`` = ``number``.
    """
    return {
        "pkt_format_id": "JSON_Data",
        "pkt_version": 1,
        "stream_name": "ctd_parsed",
        "port_timestamp": utc(when) + NTP_UNIX_OFFSET,
        "driver_timestamp": utc(when) + NTP_UNIX_OFFSET + 0.5,
        "preferred_timestamp": "port_timestamp",
        "quality_flag": "ok",
        "values": [{"value_id": "n", "value": number}],
    }


def read_lines(path: str) -> list[bytes]:
    """
    The lines of the file at ``path``, without their newlines.
    """
    with open(path, "rb") as f:
        return f.read().splitlines()


def read_json_lines(path: str) -> list[Any]:
    """
    The JSON objects in the JSON-lines file at ``path``.
    """
    return [json.loads(line) for line in read_lines(path)]


class Endpoint(Resource):
    """
    A scripted ingest endpoint for L{StubTreq}: answers each POST with the
    next of C{codes} (200 when they run out; C{None} never answers) and
    keeps each body it was sent.
    """

    isLeaf = True

    def __init__(
        self, *codes: int | None, headers: dict[bytes, bytes] | None = None
    ) -> None:
        super().__init__()
        self.codes = list(codes)
        self.headers = headers or {}
        self.bodies: list[Any] = []
        self.hanging: list[Request] = []
        self.requests: list[Request] = []

    def render_POST(self, request: Request) -> bytes | int:
        """
        Keep the body and answer as scripted.
        """
        assert request.content is not None
        self.bodies.append(json.loads(request.content.read()))
        self.requests.append(request)
        code = self.codes.pop(0) if self.codes else 200
        if code is None:
            self.hanging.append(request)
            return NOT_DONE_YET
        request.setResponseCode(code)
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return b'{"error": "scripted"}' if code >= 300 else b"{}"

    def seqs(self) -> list[list[int]]:
        """
        The seqs of each body received, a list per POST.
        """
        return [[p["seq"] for p in body["particles"]] for body in self.bodies]


class FailingClient:
    """
    An HTTP client whose POSTs fail to connect C{failures} times and then
    go to a L{StubTreq}.
    """

    def __init__(self, failures: int, endpoint: Endpoint) -> None:
        self.failures = failures
        self.stub = StubTreq(endpoint)

    def post(self, url: str, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """
        Fail, or post.
        """
        if self.failures:
            self.failures -= 1
            return fail(ConnectionRefusedError("scripted"))
        result: Deferred[Any] = self.stub.post(url, *args, **kwargs)
        return result


def no_jitter() -> float:
    """
    Jitter of zero, so delays are exact.
    """
    return 0.0


class _Channel(HTTPChannel):
    """
    An HTTP connection that its L{Receiver} can see and close.
    """

    receiver: Receiver

    def connectionMade(self) -> None:
        """
        Register with the receiver.
        """
        super().connectionMade()
        self.receiver.channels.add(self)

    def connectionLost(self, reason: Any) -> None:
        """
        Deregister, and tell anyone waiting for all to close.
        """
        super().connectionLost(reason)
        self.receiver.channels.discard(self)
        if not self.receiver.channels:
            waiters, self.receiver.closed_waiters = self.receiver.closed_waiters, []
            for waiter in waiters:
                waiter.callback(None)


class Receiver(Resource):
    """
    A real ingest endpoint on loopback that records every particle POSTed
    to it, and can go down (stop listening, close its connections
    gracefully) and come back on the same port.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.particles: list[Any] = []
        self.channels: set[_Channel] = set()
        self.closed_waiters: list[Deferred[None]] = []
        self._waiters: list[tuple[int, Deferred[None]]] = []
        receiver = self

        class Channel(_Channel):
            pass

        Channel.receiver = receiver
        self.site = Site(self)
        self.site.protocol = Channel
        self.port: Any = None
        self.port_number = 0

    def render_POST(self, request: Request) -> bytes:
        """
        Record the particles, wake waiters (in a later turn, so the answer
        goes out first), answer 200.
        """
        assert request.content is not None
        self.particles.extend(json.loads(request.content.read())["particles"])
        for waiter in list(self._waiters):
            if len(self.particles) >= waiter[0]:
                self._waiters.remove(waiter)
                self.reactor.callLater(0, waiter[1].callback, None)
        return b"{}"

    def wait_for(self, count: int) -> Deferred[None]:
        """
        Fire when C{count} particles have arrived, or fail after 10 s.
        """
        waiter: Deferred[None] = Deferred()
        if len(self.particles) >= count:
            waiter.callback(None)
        else:
            self._waiters.append((count, waiter))
        return waiter.addTimeout(10, self.reactor)

    async def up(self) -> None:
        """
        Listen: on a free port the first time, on the same port after.
        """
        from twisted.internet.endpoints import serverFromString

        endpoint = serverFromString(
            self.reactor, f"tcp:{self.port_number}:interface=127.0.0.1"
        )
        self.port = await endpoint.listen(self.site)
        self.port_number = self.port.getHost().port

    async def down(self) -> None:
        """
        Stop listening and close every connection once its answer is
        written, as a server shutting down does.
        """
        if self.port is not None:
            port, self.port = self.port, None
            await port.stopListening()
        if self.channels:
            closed: Deferred[None] = Deferred()
            self.closed_waiters.append(closed)
            for channel in list(self.channels):
                assert channel.transport is not None
                channel.transport.loseConnection()
            await closed.addTimeout(10, self.reactor)

    @property
    def url(self) -> str:
        """
        Where to POST.
        """
        return f"http://127.0.0.1:{self.port_number}/ingest"
