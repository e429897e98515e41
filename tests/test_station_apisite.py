"""
Tests for L{instrumentd.station.apisite}: the HTTP server in front of the
station's API, over real loopback sockets (and one child process with a
low limit on open files): bodies refused before they are read, idle
connections closed, a cap on connections that idle sockets cannot use to
lock operators out, no access log by default, JSON for unexpected errors;
and the station refusing to serve an open API beyond loopback.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

import treq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import ProcessProtocol, Protocol, connectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from instrumentd.station.api import StationAPI
from instrumentd.station.apisite import (
    SEND_LIMIT,
    APISite,
    described_interface,
    is_local,
)
from instrumentd.station.instrument import Station, StationInstrument
from instrumentd.station.service import (
    APIExposedError,
    StationService,
    describe_address,
)
from tests.agentsupport import reactor, within
from tests.apisupport import FakeDriver
from tests.test_station_service import toy_config, toy_instrument

TOKEN = "s3cret"
COMMAND = b"POST /api/instruments/fake/commands/acquire_sample HTTP/1.1\r\nHost: x\r\n"
GIB = 1024**3


class RawClient(Protocol):
    """
    A client that sends what it is told and collects what comes back.

    :ivar received: everything received.
    :ivar closed: fires with the reason when the connection ends.
    :ivar answered: fires once a whole header block has arrived.
    """

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self.answered: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"\r\n\r\n" in self.received and not self.answered.called:
            self.answered.callback(self.received)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        self.closed.callback(None)

    def status(self) -> int:
        """
        The status of the (first) answer.
        """
        return int(self.received.split(b" ", 2)[1])

    def error(self) -> dict[str, Any]:
        """
        The JSON error of the (first) answer.
        """
        body = self.received.split(b"\r\n\r\n", 1)[1]
        error: dict[str, Any] = json.loads(body)["error"]
        return error


class _Hold(Resource):
    """
    ``GET /hold`` is answered only when the test says so; anything else is
    ``ok``.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Request] = []
        self.arrived: list[Deferred[None]] = []

    def render_GET(self, request: Request) -> bytes | int:
        if request.path == b"/boom":
            raise ZeroDivisionError("boom")
        if request.path != b"/hold":
            return b"ok"
        self.held.append(request)
        waiters, self.arrived = self.arrived, []
        for waiter in waiters:
            waiter.callback(None)
        return NOT_DONE_YET

    def wait_held(self, count: int) -> Deferred[None]:
        """
        Fire once ``count`` requests are held.
        """
        if len(self.held) >= count:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self.arrived.append(waiter)
        return waiter.addCallback(lambda _: self.wait_held(count))

    def release(self) -> None:
        for request in self.held:
            if not request.finished and not request._disconnected:
                request.write(b"done")
                request.finish()
        self.held = []


class _SiteCase(TestCase):
    """
    Serve an L{APISite} on a loopback port for the test, and connect raw
    clients to it.
    """

    timeout = 60

    def serve(self, site: APISite) -> int:
        """
        Listen with C{site}; the test's cleanup stops it and waits for its
        connections to close.

        :returns: the port number.
        """
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(site.close_connections)
        self.addCleanup(port.stopListening)
        self.site = site
        number: int = port.getHost().port
        self.port = number
        return number

    def serve_api(
        self, token: str | None = TOKEN, max_streams: int = 64, **options: Any
    ) -> FakeDriver:
        """
        Serve the API of one fake instrument, C{fake}, with C{token}.

        :returns: its driver.
        """
        driver = FakeDriver(state="COMMAND")
        station = Station(
            [StationInstrument("fake", driver, clock=reactor)], clock=reactor
        )
        api = StationAPI(station, token=token, clock=reactor, max_streams=max_streams)
        self.addCleanup(api.close)
        self.api = api
        self.serve(APISite(api, authorize=api.authorize, reactor=reactor, **options))
        return driver

    async def connect(self, data: bytes = b"") -> RawClient:
        """
        Connect a raw client and send C{data}.
        """
        client = RawClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        await within(connectProtocol(endpoint, client), "connecting")
        self.addCleanup(_abort, client)
        if data:
            assert client.transport is not None
            client.transport.write(data)
        return client

    async def answer(self, data: bytes) -> RawClient:
        """
        Send C{data} on a new connection; wait until the server closes it.
        """
        client = await self.connect(data)
        await within(client.closed, "the server to answer and close")
        return client

    def http(self) -> treq.client.HTTPClient:
        pool = HTTPConnectionPool(reactor, persistent=False)
        return treq.client.HTTPClient(Agent(reactor, pool=pool))


def _abort(client: Protocol) -> None:
    transport: Any = client.transport
    if transport is not None and transport.connected:
        transport.abortConnection()


class BodyLimitTests(_SiteCase):
    """
    Bodies are checked from their headers, before any of them is read.
    """

    def setUp(self) -> None:
        self.temporary_files: list[object] = []
        made = tempfile.TemporaryFile

        def recording(*args: Any, **kwargs: Any) -> Any:
            self.temporary_files.append(args)
            return made(*args, **kwargs)

        # twisted.web keeps bodies over 100 kB in a temporary file.
        self.patch(tempfile, "TemporaryFile", recording)

    async def test_unauthenticatedHugeBody(self) -> None:
        """
        The headers of a 1 GiB change without a token are answered 401 at
        once: the client sends no byte of the body, nothing reaches the
        instrument, and no temporary file is made.
        """
        driver = self.serve_api()
        client = await self.answer(COMMAND + b"Content-Length: %d\r\n\r\n" % GIB)
        self.assertEqual(client.status(), 401)
        self.assertEqual(client.error()["code"], "UNAUTHORIZED")
        self.assertIn(b"connection: close", client.received.lower())
        self.assertEqual(driver.calls, [])
        self.assertEqual(self.temporary_files, [])
        self.assertEqual(self.site.bodies_refused, 1)

    async def test_refusalsInMetrics(self) -> None:
        """
        What the guards refused is in C{/metrics}, with the connections
        open, so an operator sees a stranger's attempts.
        """
        self.serve_api()
        await self.answer(COMMAND + b"Content-Length: %d\r\n\r\n" % GIB)
        client = await self.answer(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        text = client.received.decode()
        self.assertIn("\ninstrumentd_api_bodies_refused_total 1\n", text)
        self.assertIn("\ninstrumentd_api_connections_refused_total 0\n", text)
        self.assertIn("# TYPE instrumentd_api_connections gauge", text)

    async def test_bodySentAnyway(self) -> None:
        """
        A client that sends its body without waiting still reads the 401:
        what it sends is dropped unread, never stored.
        """
        driver = self.serve_api()
        client = await self.connect(
            COMMAND + b"Content-Length: %d\r\n\r\n" % GIB + b"x" * (512 * 1024)
        )
        await within(client.answered, "the answer")
        self.assertEqual(client.status(), 401)
        assert client.transport is not None
        client.transport.write(b"y" * (512 * 1024))
        await within(client.closed, "the server to close")
        self.assertEqual(driver.calls, [])
        self.assertEqual(self.temporary_files, [])

    async def test_expectContinue(self) -> None:
        """
        A client that asks whether to send the body (C{Expect:
        100-continue}) is told no: the 401 comes instead of C{100
        Continue}.
        """
        self.serve_api()
        client = await self.answer(
            COMMAND + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % GIB
        )
        self.assertTrue(client.received.startswith(b"HTTP/1.1 401 "), client.received)

    async def test_tooLargeWithToken(self) -> None:
        """
        With the token, a C{Content-Length} over the limit is answered 413
        before the body is read.
        """
        driver = self.serve_api(max_body=4096)
        client = await self.answer(
            COMMAND
            + b"Authorization: Bearer s3cret\r\nContent-Length: %d\r\n\r\n" % GIB
        )
        self.assertEqual(client.status(), 413)
        error = client.error()
        self.assertEqual(error["code"], "BODY_TOO_LARGE")
        self.assertEqual(error["limit"], 4096)
        self.assertEqual(driver.calls, [])
        self.assertEqual(self.temporary_files, [])

    async def test_lengthOfThousandsOfDigits(self) -> None:
        """
        A C{Content-Length} of thousands of digits is a 413, not an
        unhandled error.
        """
        self.serve_api()
        client = await self.answer(
            COMMAND
            + b"Authorization: Bearer s3cret\r\nContent-Length: "
            + b"9" * 5000
            + b"\r\n\r\n"
        )
        self.assertEqual(client.status(), 413)

    async def test_chunkedCutOff(self) -> None:
        """
        A chunked body is answered 413 where it passes the limit, before
        the client has finished it.
        """
        driver = self.serve_api(max_body=4096)
        chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
        client = await self.connect(
            COMMAND
            + b"Authorization: Bearer s3cret\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunk * 5
        )
        await within(client.answered, "the answer")
        self.assertEqual(client.status(), 413)
        await within(client.closed, "the server to close")
        self.assertEqual(driver.calls, [])

    async def test_unauthenticatedChunked(self) -> None:
        """
        A chunked change without a token is refused with its headers.
        """
        driver = self.serve_api()
        client = await self.answer(COMMAND + b"Transfer-Encoding: chunked\r\n\r\n")
        self.assertEqual(client.status(), 401)
        self.assertEqual(driver.calls, [])

    async def test_withinLimit(self) -> None:
        """
        A change with the token and a body within the limit is carried out,
        its body read; an empty change without a token is still answered
        401 by the API.
        """
        driver = self.serve_api(max_body=4096)
        body = json.dumps({"count": 3}).encode()
        client = await self.answer(
            COMMAND + b"Authorization: Bearer s3cret\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        self.assertEqual(client.status(), 200)
        self.assertEqual(
            driver.calls, [("execute_resource", ("acquire_sample",), {"count": 3})]
        )
        client = await self.answer(
            COMMAND + b"Connection: close\r\nContent-Length: 0\r\n\r\n"
        )
        self.assertEqual(client.status(), 401)
        self.assertEqual(len(driver.calls), 1)

    async def test_readsWithBodyAllowed(self) -> None:
        """
        Without a token configured, a change with a body within the limit is
        carried out.
        """
        driver = self.serve_api(token=None)
        client = await self.answer(
            COMMAND + b"Connection: close\r\nContent-Length: 2\r\n\r\n{}"
        )
        self.assertEqual(client.status(), 200)
        self.assertEqual(len(driver.calls), 1)


class _Big(Resource):
    """
    Answers C{size} bytes, and keeps the channels it answered on.
    """

    isLeaf = True

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.channels: list[Any] = []

    def render_GET(self, request: Request) -> bytes:
        self.channels.append(request.channel)
        return b"x" * self.size


class BigAnswerTests(_SiteCase):
    """
    A big answer (C{/api/health} of thousands of instruments) is not
    held to twisted.web's 128 KiB a connection per turn of the reactor.
    """

    async def test_sentInFewTurns(self) -> None:
        """
        Each API connection may send up to L{SEND_LIMIT} bytes in a turn of
        the reactor rather than Twisted's 128 KiB, so a megabyte answer does
        not take ten turns (each of them seconds long on a busy station of
        thousands of instruments); the answer arrives whole.
        """
        size = 3 * 1024 * 1024
        big = _Big(size)
        self.serve(APISite(big, reactor=reactor))
        client = await self.answer(
            b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        self.assertEqual(client.status(), 200)
        self.assertTrue(client.received.endswith(b"x" * 1000))
        self.assertGreaterEqual(len(client.received), size)
        [channel] = big.channels
        self.assertGreaterEqual(channel.transport.SEND_LIMIT, SEND_LIMIT)
        self.assertGreater(SEND_LIMIT, size)


class ErrorTests(_SiteCase):
    """
    What the server answers when a resource fails.
    """

    async def test_unexpectedErrorIsJSON(self) -> None:
        """
        An exception escaping a resource is a JSON 500, not twisted.web's
        HTML page, and is logged.
        """
        self.serve(APISite(_Hold(), reactor=reactor))
        client = await self.answer(
            b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        self.assertEqual(client.status(), 500)
        self.assertIn(b"application/json", client.received)
        self.assertEqual(client.error()["code"], "INTERNAL_ERROR")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    async def test_badHTTPIsJSON(self) -> None:
        """
        A request twisted.web cannot parse (a bad request line, a bad
        header, headers over 16 KiB) gets a JSON 400, and the connection
        closes.
        """
        self.serve_api()
        for request in [
            b"NONSENSE\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-Big: " + b"x" * 17000 + b"\r\n\r\n",
        ]:
            client = await self.answer(request)
            self.assertEqual(client.status(), 400, request[:20])
            self.assertEqual(client.error()["code"], "BAD_REQUEST")


class ConnectionTests(_SiteCase):
    """
    Idle connections end; a cap on connections closes idle ones first.
    """

    async def test_idleTimeout(self) -> None:
        """
        A connection that sends nothing, or stops in the middle of its
        request, is closed after C{idle_timeout} seconds, without a log
        line; one that is being answered is not.
        """
        hold = _Hold()
        self.serve(APISite(hold, idle_timeout=0.5, reactor=reactor))
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        busy = await self.connect(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        await within(hold.wait_held(1), "the request to be held")
        silent = await self.connect()
        halfway = await self.connect(b"GET /hold HTTP/1.1\r\nHo")
        await within(silent.closed, "the idle connection to be closed")
        await within(halfway.closed, "the half-sent request to be closed")
        self.assertFalse(busy.closed.called)
        self.assertEqual(self.site.connections_timed_out, 2)
        self.assertEqual(
            [formatEvent(e) for e in events if "Timing out" in formatEvent(e)], []
        )
        hold.release()
        await within(busy.answered, "the held answer")

    async def test_evictIdleFirst(self) -> None:
        """
        At the cap, a newcomer closes the connection idle longest, never
        one being answered; when every connection is being answered, the
        newcomer is answered 503.
        """
        hold = _Hold()
        self.serve(APISite(hold, max_connections=2, reactor=reactor))
        busy = await self.connect(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        await within(hold.wait_held(1), "the first request to be held")
        idle = await self.connect()
        newcomer = await self.connect(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        await within(idle.closed, "the idle connection to be closed")
        await within(hold.wait_held(2), "the newcomer's request to be held")
        self.assertFalse(busy.closed.called)
        self.assertEqual(self.site.connections_evicted, 1)
        refused = await self.answer(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(refused.status(), 503)
        self.assertEqual(refused.error()["code"], "TOO_MANY_CONNECTIONS")
        self.assertEqual(self.site.connections_refused, 1)
        self.assertFalse(newcomer.closed.called)
        hold.release()
        await within(busy.answered, "the first answer")
        await within(newcomer.answered, "the newcomer's answer")
        self.flushLoggedErrors()

    async def test_streamsLeaveRoom(self) -> None:
        """
        Event streams (which need no token and never end by themselves)
        cannot take every connection: over C{max_streams} a stream is
        refused with 503, and a request still gets its answer.
        """
        self.serve_api(max_connections=4, max_streams=3)
        request = b"GET /api/instruments/fake/events HTTP/1.1\r\nHost: x\r\n\r\n"
        streams = []
        for _ in range(3):
            stream = await self.connect(request)
            await within(stream.answered, "a stream to open")
            self.assertTrue(stream.received.startswith(b"HTTP/1.1 200 "))
            streams.append(stream)
        refused = await self.connect(
            request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        )
        await within(refused.closed, "the fourth stream's answer")
        self.assertEqual(refused.status(), 503)
        self.assertEqual(refused.error()["code"], "TOO_MANY_STREAMS")
        response = await within(
            self.http().get(f"http://127.0.0.1:{self.port}/api/health"), "health"
        )
        self.assertEqual(response.code, 200)
        await within(response.json(), "the body")
        self.assertFalse(any(each.closed.called for each in streams))

    async def test_hundredsOfIdleSockets(self) -> None:
        """
        Three hundred idle sockets to an API capped at 50 connections leave
        at most 50 open, and a request still gets its answer.
        """
        self.serve_api(max_connections=50)
        idle = [await self.connect() for _ in range(300)]
        self.assertLessEqual(self.site.open_connections, 50)
        response = await within(
            self.http().get(f"http://127.0.0.1:{self.port}/api/health"), "health"
        )
        self.assertEqual(response.code, 200)
        await within(response.json(), "the body")
        self.assertGreaterEqual(self.site.connections_evicted, 250)
        self.assertLessEqual(sum(1 for each in idle if not each.closed.called), 50)
        self.flushLoggedErrors()


class _Child(ProcessProtocol):
    """
    The API server child: fires C{listening} with its port, C{ended} when
    it exits.
    """

    def __init__(self) -> None:
        self.output = b""
        self.listening: Deferred[int] = Deferred()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if not self.listening.called and b"\n" in self.output:
            line = self.output.split(b"\n", 1)[0]
            self.listening.callback(int(line.split()[1]))

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


class FileLimitTests(_SiteCase):
    """
    The cap keeps a server with few file descriptors reachable.
    """

    async def test_idleSocketsCannotExhaustFiles(self) -> None:
        """
        An API process allowed 128 open files, sent 300 idle sockets, still
        answers a request: idle connections are closed for newcomers, so it
        never runs out of descriptors and stops accepting (with
        C{--plain}, twisted.web's own Site, this request never gets an
        answer).
        """
        child = _Child()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
        argv = [
            sys.executable,
            "-m",
            "tests.apisiteserver",
            "--nofile",
            "128",
            "--max-connections",
            "50",
        ]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        process = reactor.spawnProcess(child, sys.executable, argv, env=env, path=root)

        def stop() -> Deferred[None]:
            if process.pid is not None:
                process.signalProcess("KILL")
            return child.ended

        self.addCleanup(stop)
        self.port = await within(child.listening, "the child to listen")
        for _ in range(300):
            await self.connect()
        response = await within(
            self.http().get(f"http://127.0.0.1:{self.port}/api/health"),
            "an answer from the child with 300 idle sockets open",
        )
        self.assertEqual(response.code, 200)
        await within(response.json(), "the body")


class AccessLogTests(_SiteCase):
    """
    One line per request only when asked.
    """

    async def logged(self, access_log: bool) -> list[str]:
        events: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            events.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.serve_api(access_log=access_log)
        response = await within(
            self.http().get(f"http://127.0.0.1:{self.port}/api/health"), "health"
        )
        await within(response.json(), "the body")
        return [each for each in events if '"GET /api/health HTTP/1.1" 200' in each]

    async def test_noAccessLogByDefault(self) -> None:
        """
        By default a request leaves no line in the log.
        """
        self.assertEqual(await self.logged(False), [])

    async def test_accessLog(self) -> None:
        """
        With C{access_log}, each request is a line.
        """
        self.assertEqual(len(await self.logged(True)), 1)


class SiteArgumentTests(SynchronousTestCase):
    """
    L{APISite} refuses limits that make no sense.
    """

    def test_bounds(self) -> None:
        """
        Zero, negative, NaN or infinite limits are a C{ValueError} naming the
        argument and its value.
        """
        for name, value in [
            ("max_body", 0),
            ("idle_timeout", 0.0),
            ("idle_timeout", float("nan")),
            ("idle_timeout", float("inf")),
            ("max_connections", -1),
            ("linger", -1.0),
        ]:
            error = self.assertRaises(
                ValueError,
                APISite,
                _Hold(),
                reactor=MemoryReactorClock(),
                **{name: value},
            )
            self.assertIn(f"{name}={value!r}", str(error))
        APISite(_Hold(), linger=0, reactor=MemoryReactorClock())


class ExposureTests(SynchronousTestCase):
    """
    An API reachable beyond loopback needs a token or an explicit
    C{api.open}.
    """

    def service(self, api: str, extra: str = "") -> StationService:
        config = toy_config(
            self.mktemp(),
            [toy_instrument("toy1", 4001, "in-process")],
            api=api,
            extra=extra,
        )
        return StationService(config, reactor=MemoryReactorClock())

    def test_refusedWithoutToken(self) -> None:
        """
        A configuration whose API would listen beyond loopback with no
        token is refused, saying why and how to allow it; from the file or
        from C{--api}.
        """
        from instrumentd.station.config import ConfigError

        for listen, where in [
            ("tcp:8700", "every interface"),
            ("tcp:8700:interface=0.0.0.0", "'0.0.0.0'"),
            ("tcp6:8700:interface=\\\\:\\\\:", "'::'"),
            ("tcp:8700:interface=192.168.1.5", "'192.168.1.5'"),
        ]:
            error = self.assertRaises(ConfigError, self.service, listen)
            [(key, problem)] = error.problems
            self.assertEqual(key, "api.listen")
            self.assertIn(
                f"listens on {where}, beyond loopback, with no token", problem
            )
            self.assertIn("api.open = true (--api-open)", problem)
        from instrumentd.station.config import parse_config, parse_toml

        text = "[[instruments]]\n" + toy_instrument("toy1", 4001, "in-process")
        error = self.assertRaises(
            ConfigError,
            parse_config,
            parse_toml(text, "<test>"),
            "<test>",
            api="tcp:8700",
        )
        self.assertEqual(error.problems[0][0], "api.--api")
        config = parse_config(
            parse_toml(text, "<test>"), "<test>", api="tcp:8700", api_open=True
        )
        self.assertTrue(config.api_open)

    def test_localListeners(self) -> None:
        """
        Loopback addresses, C{localhost} and UNIX sockets need no token.
        """
        for listen in (
            "tcp:0:interface=127.0.0.1",
            "tcp:0:interface=127.0.0.2",
            "tcp:0:interface=localhost",
            "tcp6:0:interface=\\\\:\\\\:1",
            "unix:/run/instrumentd/api.sock",
        ):
            self.assertFalse(self.service(listen).config.api_open, listen)

    def test_refusedWhenBound(self) -> None:
        """
        An API that turns out to listen beyond loopback once bound, with no
        token, stops the start: the station exits with the reason (a
        C{SystemExit}, not a traceback) and leaves nothing listening.  (A
        memory reactor reports every IPv4 listener as bound to 0.0.0.0.)
        """
        service = self.service("tcp:8700:interface=127.0.0.1")
        error = self.assertRaises(APIExposedError, service.startService)
        self.assertIsInstance(error, SystemExit)
        self.assertIn("0.0.0.0:8700", str(error))
        self.assertIn("api.open", str(error))
        self.assertFalse(service.running)
        self.assertIsNone(service.api_port)
        self.assertEqual(service.supervisors, {})

    def test_open(self) -> None:
        """
        With C{api.open = true} it starts, and the banner says where it
        really listens and that it is open.
        """
        service = self.service("tcp:8700", "open = true")
        service.startService()
        self.addCleanup(service.stopService)
        text = "\n".join(service.banner())
        self.assertIn(
            "API listening on 0.0.0.0:8700 (every IPv4 interface), here "
            "http://127.0.0.1:8700/api",
            text,
        )
        self.assertIn("open to anyone who can reach it", text)

    def test_token(self) -> None:
        """
        With a token it starts.
        """
        token_file = self.mktemp()
        with open(token_file, "w") as f:
            f.write("tok\n")
        service = self.service("tcp:8700", f'token_file = "{token_file}"')
        service.startService()
        self.addCleanup(service.stopService)
        self.assertIsNotNone(service.api_port)
        self.assertNotIn("open to anyone", "\n".join(service.banner()))
        site = service.api_site
        assert site is not None
        config = service.config
        self.assertEqual(
            (site.max_body, site.max_connections, site.timeOut, site.access_log),
            (
                config.api_max_body,
                config.api_max_connections,
                config.api_idle_timeout,
                config.api_access_log,
            ),
        )

    def test_loopback(self) -> None:
        """
        On loopback it starts without a token.
        """
        service = self.service("tcp6:8700:interface=\\\\:\\\\:1")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertIn(
            "API listening on http://[::1]:8700/api", "\n".join(service.banner())
        )

    def test_isLocal(self) -> None:
        """
        Loopback addresses (any of 127/8, ::1) and UNIX sockets are local;
        others are not.
        """
        from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

        self.assertTrue(is_local(IPv4Address("TCP", "127.0.0.2", 1)))
        self.assertTrue(is_local(IPv6Address("TCP", "::1", 1)))
        self.assertTrue(is_local(UNIXAddress(b"/run/instrumentd.sock")))
        self.assertFalse(is_local(IPv6Address("TCP", "fe80::1%lo", 1)))
        self.assertFalse(is_local(IPv4Address("TCP", "0.0.0.0", 1)))
        self.assertFalse(is_local(IPv4Address("TCP", "192.168.1.5", 1)))
        self.assertFalse(is_local(IPv6Address("TCP", "::", 1)))
        self.assertEqual(
            describe_address(IPv6Address("TCP", "::", 80)), "[::]:80 (every interface)"
        )
        self.assertEqual(described_interface("tcp:8700"), "")
        self.assertEqual(described_interface("tcp:8700:interface=10.0.0.1"), "10.0.0.1")
        self.assertIsNone(described_interface("unix:/tmp/x.sock"))
        self.assertIsNone(described_interface("nonsense:1"))


class APIConfigTests(SynchronousTestCase):
    """
    The C{[api]} keys for the server, and their command-line overrides.
    """

    def config(self, api_keys: str) -> Any:
        from instrumentd.station.config import parse_config, parse_toml

        text = f"[api]\n{api_keys}\n[[instruments]]\n"
        text += toy_instrument("toy1", 4001, "in-process")
        return parse_config(parse_toml(text, "<test>"), "<test>")

    def test_defaults(self) -> None:
        """
        Not open, 60 s idle timeout, 100 connections, 1 MiB bodies, no
        access log.
        """
        config = self.config("")
        self.assertEqual(
            (
                config.api_open,
                config.api_idle_timeout,
                config.api_max_connections,
                config.api_max_body,
                config.api_access_log,
            ),
            (False, 60.0, 100, 1024 * 1024, False),
        )

    def test_given(self) -> None:
        """
        Each key is read; sizes take units.
        """
        config = self.config(
            "open = true\nidle_timeout = 30\nmax_connections = 20\n"
            'max_body = "2MiB"\naccess_log = true'
        )
        self.assertEqual(
            (
                config.api_open,
                config.api_idle_timeout,
                config.api_max_connections,
                config.api_max_body,
                config.api_access_log,
            ),
            (True, 30.0, 20, 2 * 1024 * 1024, True),
        )

    def test_bounds(self) -> None:
        """
        Values out of bounds are each reported, with the valid range, in
        one pass.
        """
        from instrumentd.station.config import ConfigError

        for keys, key, message in [
            ("idle_timeout = 0", "idle_timeout", "valid: 1 to 86400 seconds"),
            ("idle_timeout = 1e9", "idle_timeout", "valid: 1 to 86400 seconds"),
            ("idle_timeout = nan", "idle_timeout", "not a finite number"),
            ("max_connections = 0", "max_connections", "valid: 1 to 10000"),
            ("max_connections = 1000000", "max_connections", "valid: 1 to 10000"),
            ('max_body = "1GiB"', "max_body", "valid: 1 KiB to 64 MiB"),
            ("max_body = 10", "max_body", "valid: 1 KiB to 64 MiB"),
            ('open = "yes"', "open", "true or false"),
        ]:
            error = self.assertRaises(ConfigError, self.config, keys)
            [(where, problem)] = error.problems
            self.assertEqual(where, f"api.{key}", keys)
            self.assertIn(message, problem, keys)
        error = self.assertRaises(
            ConfigError, self.config, "idle_timeout = 0\nmax_connections = 0"
        )
        self.assertEqual(len(error.problems), 2)

    def test_commandLine(self) -> None:
        """
        C{--api-open} and C{--access-log} override the file; the
        subcommands refuse them.
        """
        from twisted.python import usage

        from instrumentd import tap

        options = tap.Options()
        options.parseOptions(["--api-open", "--access-log"])
        assert options.station_config is not None
        self.assertTrue(options.station_config.api_open)
        self.assertTrue(options.station_config.api_access_log)
        options = tap.Options()
        options.parseOptions([])
        assert options.station_config is not None
        self.assertFalse(options.station_config.api_open)
        self.assertRaises(
            usage.UsageError,
            tap.Options().parseOptions,
            ["--api-open", "simulate", "sbe37"],
        )
