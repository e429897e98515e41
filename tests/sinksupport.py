"""
Helpers for the sink tests: particles, a scripted ingest endpoint for
L{StubTreq}, an HTTP client that fails on cue, and a real loopback ingest
receiver (twisted.web) that can go down and come back, and one that closes
the connection after every answer, as HTTP/1.0 servers do, and Python's own
C{http.server} as a receiver in a child process.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import ProcessProtocol
from twisted.protocols.basic import LineReceiver
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.station.record import read_record

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


def record(
    number: int, when: str = "2026-11-24T12:00:00", instrument: str = "ctd1"
) -> dict[str, object]:
    """
    The sample record (version 2) a sink makes of C{particle(number, when)}
    written for C{instrument}.
    """
    return read_record(particle(number, when), instrument=instrument)


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
        return [[p["seq"] for p in body["records"]] for body in self.bodies]


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
        #: How many records each POST carried, in order.
        self.batch_sizes: list[int] = []
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
        records = json.loads(request.content.read())["records"]
        self.batch_sizes.append(len(records))
        self.particles.extend(records)
        for waiter in list(self._waiters):
            if len(self.particles) >= waiter[0]:
                self._waiters.remove(waiter)
                self.reactor.callLater(0, waiter[1].callback, None)
        return b"{}"

    def wait_for(self, count: int, timeout: float = 10) -> Deferred[None]:
        """
        Fire when C{count} particles have arrived, or fail after
        C{timeout} seconds.
        """
        waiter: Deferred[None] = Deferred()
        if len(self.particles) >= count:
            waiter.callback(None)
        else:
            self._waiters.append((count, waiter))
        return waiter.addTimeout(timeout, self.reactor)

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


class _OneRequest(LineReceiver):
    """
    One connection to a L{ClosingReceiver}: read one request, answer it
    (or not) and close, as an HTTP/1.0 server does.
    """

    delimiter = b"\r\n"

    def __init__(self, receiver: ClosingReceiver) -> None:
        self.receiver = receiver
        self.length = 0
        self.head: list[bytes] = []
        self.body = b""

    def connectionMade(self) -> None:
        """
        Count the connection.
        """
        self.receiver.connections += 1

    def lineReceived(self, line: bytes) -> None:
        """
        Collect the head; at its end, read the body by its length.
        """
        if line:
            self.head.append(line)
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                self.length = int(value)
            return
        self.setRawMode()
        if not self.length:
            self.rawDataReceived(b"")

    def rawDataReceived(self, data: bytes) -> None:
        """
        Collect the body; once whole, hand it to the receiver.
        """
        self.body += data
        if len(self.body) < self.length or self.transport is None:
            return
        answer = self.receiver.request(self.body)
        if answer:
            self.transport.write(
                b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\n\r\n{}"
            )
        self.transport.loseConnection()
        self.transport = None


class ClosingReceiver:
    """
    A real ingest endpoint on loopback that answers like an HTTP/1.0 server
    (Python's C{http.server} by default): C{HTTP/1.0 200}, without a
    C{Connection} header, and closes the connection after every answer.
    With C{answer=False} it closes without answering at all.
    """

    def __init__(self, *, answer: bool = True) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.answer = answer
        self.particles: list[Any] = []
        self.requests = 0
        self.connections = 0
        self._waiters: list[tuple[int, Deferred[None]]] = []
        self.port: Any = None

    def request(self, body: bytes) -> bool:
        """
        Count one request and, if answering, record its particles.

        :returns: whether to answer.
        """
        self.requests += 1
        if self.answer:
            self.particles.extend(json.loads(body)["records"])
            for waiter in list(self._waiters):
                if len(self.particles) >= waiter[0]:
                    self._waiters.remove(waiter)
                    self.reactor.callLater(0, waiter[1].callback, None)
        return self.answer

    def wait_for(self, count: int, timeout: float = 30) -> Deferred[None]:
        """
        Fire when C{count} particles have arrived, or fail after
        C{timeout} seconds.
        """
        waiter: Deferred[None] = Deferred()
        if len(self.particles) >= count:
            waiter.callback(None)
        else:
            self._waiters.append((count, waiter))
        return waiter.addTimeout(timeout, self.reactor)

    async def up(self) -> None:
        """
        Listen on a free loopback port.
        """
        from twisted.internet.endpoints import serverFromString
        from twisted.internet.protocol import Factory

        endpoint = serverFromString(self.reactor, "tcp:0:interface=127.0.0.1")
        self.port = await endpoint.listen(
            Factory.forProtocol(lambda: _OneRequest(self))
        )

    async def down(self) -> None:
        """
        Stop listening.
        """
        if self.port is not None:
            port, self.port = self.port, None
            await port.stopListening()

    @property
    def url(self) -> str:
        """
        Where to POST.
        """
        return f"http://127.0.0.1:{self.port.getHost().port}/ingest"


#: A receiver in Python's standard library, as people write one: an
#: ``http.server`` handler, which speaks HTTP/1.0 and closes the connection
#: after every answer.  It prints its port, then each batch's seqs.
_PYTHON_RECEIVER = """
import http.server, json, sys

class Ingest(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        seqs = [p["seq"] for p in json.loads(body)["records"]]
        sys.stdout.write(json.dumps(seqs) + "\\n")
        sys.stdout.flush()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Ingest)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class PythonReceiver(ProcessProtocol):
    """
    Python's own C{http.server} as an ingest receiver, in a child process.

    :ivar batches: the seqs of each POST it took, in order.
    """

    def __init__(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.batches: list[list[int]] = []
        self.port: int | None = None
        self._buffer = b""
        self._listening: Deferred[None] = Deferred()
        self._ended: Deferred[None] = Deferred()
        self._waiters: list[tuple[int, Deferred[None]]] = []

    async def start(self) -> None:
        """
        Start it and wait until it listens.
        """
        import sys

        self.reactor.spawnProcess(
            self,
            sys.executable,
            [sys.executable, "-c", _PYTHON_RECEIVER],
            env=None,
        )
        await self._listening.addTimeout(30, self.reactor)

    async def stop(self) -> None:
        """
        Stop it and wait until it has ended.
        """
        if not self._ended.called and self.transport is not None:
            self.transport.signalProcess("TERM")
        await self._ended.addTimeout(30, self.reactor)

    def outReceived(self, data: bytes) -> None:
        """
        Read its port, then batches, a line each.
        """
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if self.port is None:
                self.port = int(line)
                self._listening.callback(None)
            else:
                self.batches.append(json.loads(line))
        count = sum(len(batch) for batch in self.batches)
        for waiter in [w for w in self._waiters if w[0] <= count]:
            self._waiters.remove(waiter)
            waiter[1].callback(None)

    def processEnded(self, reason: Any) -> None:
        """
        Tell L{stop}.
        """
        self._ended.callback(None)

    def wait_for(self, count: int, timeout: float = 30) -> Deferred[None]:
        """
        Fire when it has taken C{count} particles, or fail after
        C{timeout} seconds.
        """
        waiter: Deferred[None] = Deferred()
        if sum(len(batch) for batch in self.batches) >= count:
            waiter.callback(None)
        else:
            self._waiters.append((count, waiter))
        return waiter.addTimeout(timeout, self.reactor)

    @property
    def url(self) -> str:
        """
        Where to POST.
        """
        return f"http://127.0.0.1:{self.port}/ingest"
