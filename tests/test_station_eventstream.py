"""
Tests for C{GET /api/events}, the station-wide event stream
(L{instrumentd.station.api._events}), and the feeds that make each event's
message once for every stream (L{instrumentd.station.eventfeed}): real HTTP
over loopback to an L{APISite} serving three instruments.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, TestCase

from instrumentd.driver.events import (
    ErrorEvent,
    EventBus,
    SampleEvent,
    StateChangeEvent,
)
from instrumentd.station import sendbuffer, sse
from instrumentd.station.api import StationAPI
from instrumentd.station.apisite import APISite
from instrumentd.station.instrument import LinkReport, Station, StationInstrument
from instrumentd.station.sse import EventStream, EventStreamParser, ServerSentEvent
from tests.agentsupport import reactor, within
from tests.apisupport import FakeDriver, FakeParticle

NAMES = ("ctd1", "ctd2", "optode")


class CountingParticle(FakeParticle):
    """
    A particle that counts how often it is turned into a dict.
    """

    made = 0

    def to_dict(self) -> dict[str, object]:
        CountingParticle.made += 1
        return super().to_dict()


class StreamClient(Protocol):
    """
    A client of one event stream over a real socket: collects the answer's
    head, and parses its body as Server-Sent Events (the body is chunked;
    this reads the chunks' framing too).

    :ivar events: the events so far.
    :ivar comments: the comments so far.
    :ivar closed: fires when the connection ends.
    """

    def __init__(self) -> None:
        self.head = b""
        self.body = b""
        self._buffer = b""
        self._in_body = False
        self.events: list[ServerSentEvent] = []
        self.comments: list[str] = []
        self.parser = EventStreamParser(self._event, self.comments.append)
        self.closed: Deferred[None] = Deferred()
        self.answered: Deferred[None] = Deferred()
        self._waiting: list[tuple[int, Deferred[None]]] = []
        self._waiting_comment: list[tuple[str, Deferred[None]]] = []

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if not self._in_body:
            head, found, rest = self._buffer.partition(b"\r\n\r\n")
            if not found:
                return
            self.head, self._buffer, self._in_body = head, rest, True
            self.answered.callback(None)
        self._unchunk()

    def _unchunk(self) -> None:
        if b"chunked" not in self.head.lower():
            self.body += self._buffer
            self._buffer = b""
            return
        while True:
            size_line, found, rest = self._buffer.partition(b"\r\n")
            if not found:
                return
            size = int(size_line.split(b";")[0], 16)
            if len(rest) < size + 2:
                return
            chunk, self._buffer = rest[:size], rest[size + 2 :]
            self.body += chunk
            self.parser.feed(chunk)
            for text, waiter in list(self._waiting_comment):
                if any(text in each for each in self.comments):
                    self._waiting_comment.remove((text, waiter))
                    waiter.callback(None)

    def _event(self, event: ServerSentEvent) -> None:
        self.events.append(event)
        for count, waiter in list(self._waiting):
            if len(self.events) >= count:
                self._waiting.remove((count, waiter))
                waiter.callback(None)

    def wait_events(self, count: int) -> Deferred[None]:
        """
        Fire once C{count} events have arrived.
        """
        if len(self.events) >= count:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiting.append((count, waiter))
        return waiter

    def wait_comment(self, text: str) -> Deferred[None]:
        """
        Fire once a comment containing C{text} has arrived.
        """
        if any(text in each for each in self.comments):
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiting_comment.append((text, waiter))
        return waiter

    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def header(self, name: bytes) -> list[bytes]:
        return [
            line.split(b":", 1)[1].strip()
            for line in self.head.split(b"\r\n")[1:]
            if line.split(b":", 1)[0].strip().lower() == name
        ]

    def json(self) -> Any:
        return json.loads(self.body)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed.callback(None)


class StationStreamCase(TestCase):
    """
    An L{APISite} serving a station of three fake instruments on a loopback
    port.
    """

    timeout = 120

    def serve(self, **api_options: Any) -> None:
        self.drivers = {name: FakeDriver(state="AUTOSAMPLE") for name in NAMES}
        self.instruments = {
            name: StationInstrument(name, driver, clock=reactor)
            for name, driver in self.drivers.items()
        }
        station = Station(self.instruments.values(), clock=reactor)
        self.api = StationAPI(station, clock=reactor, **api_options)
        self.addCleanup(self.api.close)
        site = APISite(self.api, authorize=self.api.authorize, reactor=reactor)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(site.close_connections)
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        #: Each client's stream, the station's side.
        self.api_stream: dict[StreamClient, EventStream] = {}

    async def open(
        self, path: str, method: str = "GET", *, close: bool = False
    ) -> StreamClient:
        """
        Send one request on a new connection; wait for the answer's head.

        :param close: ask the server to close the connection after the
            answer (for answers that are not streams).
        """
        client = StreamClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        await within(connectProtocol(endpoint, client), "connecting")
        self.addCleanup(_abort, client)
        assert client.transport is not None
        before = set(self.api.streams)
        extra = "Connection: close\r\n" if close else ""
        client.transport.write(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode("ascii")
        )
        await within(client.answered, f"the answer to {path}")
        for stream in set(self.api.streams) - before:
            self.api_stream[client] = stream
        if close:
            await within(client.closed, f"the whole answer to {path}")
        return client

    async def hang_up(self, client: StreamClient) -> None:
        """
        Close C{client}'s connection; wait until the station has ended its
        stream.
        """
        stream = self.api_stream[client]
        finished = stream.request.notifyFinish()
        finished.addErrback(lambda _: None)
        assert client.transport is not None
        client.transport.loseConnection()
        await within(finished, "the station to end the stream")

    async def refused(self, path: str) -> dict[str, Any]:
        """
        Ask for C{path}; assert the answer is a JSON 400; return its error.
        """
        client = await self.open(path, close=True)
        self.assertEqual(client.status(), 400, client.body)
        self.assertEqual(
            client.header(b"content-type"), [b"application/json; charset=utf-8"]
        )
        error: dict[str, Any] = client.json()["error"]
        self.assertEqual(error["code"], "BAD_REQUEST")
        return error

    def sample(self, name: str, **values: object) -> None:
        self.drivers[name].sample(**values)

    def publish(self, name: str, event: Any) -> None:
        self.drivers[name].events.publish(event)


def _abort(client: Protocol) -> None:
    transport: Any = client.transport
    if transport is not None and transport.connected:
        transport.abortConnection()


def _data(event: ServerSentEvent) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(event.data)
    return data


class StationEventStreamTests(StationStreamCase):
    """
    C{GET /api/events} over real HTTP.
    """

    async def test_everyInstrumentInterleaved(self) -> None:
        """
        Without filters the stream carries every instrument's events, in
        the order they happened, each naming its instrument; it opens with
        a comment saying what it carries.
        """
        self.serve()
        client = await self.open("/api/events")
        self.assertEqual(client.status(), 200)
        self.assertEqual(
            client.header(b"content-type"), [b"text/event-stream; charset=utf-8"]
        )
        order = ["ctd1", "optode", "ctd2", "ctd1", "ctd2", "optode", "optode"]
        for n, name in enumerate(order):
            self.sample(name, n=n)
        self.publish("ctd2", StateChangeEvent("COMMAND", "AUTOSAMPLE", time=1.0))
        await within(client.wait_events(len(order) + 1), "every event")
        self.assertEqual(client.comments[0], "events of all 3 instruments")
        got = [(_data(e)["instrument"], e.event) for e in client.events]
        self.assertEqual(
            got,
            [(name, "SAMPLE") for name in order] + [("ctd2", "STATE_CHANGE")],
        )
        samples = client.events[: len(order)]
        values = [_data(e)["record"]["values"]["n"] for e in samples]
        self.assertEqual(values, list(range(len(order))))
        self.assertEqual(
            {self.instruments[name].streams for name in NAMES}, {1}, "counted"
        )

    async def test_filters(self) -> None:
        """
        C{?instrument=} and C{?type=}, repeated or with commas, limit the
        stream to those instruments and types.
        """
        self.serve()
        repeated = await self.open(
            "/api/events?instrument=ctd1&instrument=optode"
            "&type=SAMPLE&type=state_change"
        )
        commas = await self.open("/api/events?instruments=ctd1,optode&types=SAMPLE")
        one = await self.open("/api/events?instrument=ctd2")
        errors = await self.open("/api/events?type=ERROR")
        for name in NAMES:
            self.sample(name, who=name)
            self.publish(name, StateChangeEvent("COMMAND", "AUTOSAMPLE", time=1.0))
            self.publish(name, ErrorEvent("E", f"bad {name}", time=2.0))
        await within(repeated.wait_events(4), "the filtered events")
        await within(commas.wait_events(2), "the sample events")
        await within(one.wait_events(3), "ctd2's events")
        await within(errors.wait_events(3), "the errors")

        def seen(client: StreamClient) -> list[tuple[str, str]]:
            return [(_data(e)["instrument"], e.event) for e in client.events]

        self.assertEqual(
            seen(repeated),
            [
                ("ctd1", "SAMPLE"),
                ("ctd1", "STATE_CHANGE"),
                ("optode", "SAMPLE"),
                ("optode", "STATE_CHANGE"),
            ],
        )
        self.assertEqual(seen(commas), [("ctd1", "SAMPLE"), ("optode", "SAMPLE")])
        self.assertEqual(
            seen(one),
            [("ctd2", "SAMPLE"), ("ctd2", "STATE_CHANGE"), ("ctd2", "ERROR")],
        )
        self.assertEqual(seen(errors), [(name, "ERROR") for name in NAMES])
        self.assertEqual(repeated.comments[0], "events of instruments ctd1, optode")
        self.assertEqual(one.comments[0], "events of instrument ctd2")
        self.assertEqual(self.instruments["ctd1"].streams, 3)
        self.assertEqual(self.instruments["ctd2"].streams, 2)

    async def test_badFilters(self) -> None:
        """
        An unknown instrument, event type or query parameter is a JSON 400
        naming it and the valid choices; no stream is opened.
        """
        self.serve()
        error = await self.refused("/api/events?instrument=ctd1&instrument=ctd9")
        self.assertIn("unknown instrument ctd9", error["message"])
        self.assertIn("ctd1, ctd2, optode", error["message"])
        self.assertEqual(error["unknown"], ["ctd9"])
        self.assertEqual(error["known"], list(NAMES))
        error = await self.refused("/api/events?type=SAMPLE,SAMPLES")
        self.assertIn("unknown event type SAMPLES", error["message"])
        self.assertIn("STATE_CHANGE", error["known"])
        self.assertEqual(error["unknown"], ["SAMPLES"])
        error = await self.refused(f"/api/events?{quote('instrumnet')}=ctd1")
        self.assertIn("unknown query parameter instrumnet", error["message"])
        self.assertIn("instrument", error["known"])
        self.assertEqual(self.api.streams, set())
        self.assertEqual({self.instruments[n].streams for n in NAMES}, {0})

    async def test_linkDown(self) -> None:
        """
        A stream opened while an instrument's link is down starts with a
        C{CONNECTION} event of that instrument saying since when and why
        (unless the filter leaves C{CONNECTION} out).
        """
        self.serve()
        self.drivers["ctd2"].state = "INSTRUMENT_DISCONNECTED"
        self.instruments["ctd2"].link = LinkReport(1796623354.0, "connection refused")
        everything = await self.open("/api/events")
        samples = await self.open("/api/events?type=SAMPLE")
        self.sample("ctd1", n=1)
        await within(everything.wait_events(2), "the link event and a sample")
        await within(samples.wait_events(1), "a sample")
        first = everything.events[0]
        self.assertEqual(first.event, "CONNECTION")
        self.assertEqual(_data(first)["instrument"], "ctd2")
        self.assertEqual(
            _data(first)["reason"],
            "the instrument link is down since 2026-12-07T06:02:34Z: "
            "connection refused",
        )
        self.assertEqual([e.event for e in samples.events], ["SAMPLE"])

    async def test_keepAliveAndHead(self) -> None:
        """
        A quiet station stream gets keep-alive comments; C{HEAD} answers
        the stream's headers without opening one.
        """
        self.serve(keepalive=0.2)
        client = await self.open("/api/events")
        await within(client.wait_comment("keep-alive"), "a keep-alive")
        head = await self.open("/api/events", "HEAD")
        self.assertEqual(head.status(), 200)
        self.assertEqual(
            head.header(b"content-type"), [b"text/event-stream; charset=utf-8"]
        )
        self.assertEqual(len(self.api.streams), 1)

    async def test_streamCap(self) -> None:
        """
        Station-wide and per-instrument streams share the cap on streams:
        over it, either is refused 503 C{TOO_MANY_STREAMS}; once one ends,
        a new one opens.
        """
        self.serve(max_streams=2)
        first = await self.open("/api/events")
        await self.open("/api/instruments/ctd1/events")
        refused = await self.open("/api/events?instrument=ctd2", close=True)
        self.assertEqual(refused.status(), 503)
        self.assertEqual(refused.json()["error"]["code"], "TOO_MANY_STREAMS")
        self.assertEqual(refused.header(b"retry-after"), [b"10"])
        await self.hang_up(first)
        again = await self.open("/api/events")
        self.assertEqual(again.status(), 200)
        self.assertEqual({self.instruments[n].streams for n in NAMES}, {1, 2})

    async def test_sendBuffer(self) -> None:
        """
        The socket of an event stream that follows at least
        L{sse.WIDE_STREAM_INSTRUMENTS} instruments has a kernel send buffer
        of L{sendbuffer.SEND_BUFFER} (as much as the system allows): the station
        sends to a client once a reactor turn, as much as the socket takes.
        A stream of fewer keeps the kernel's own, smaller, sizing.
        """
        try:
            with open("/proc/sys/net/core/wmem_max") as f:
                most = int(f.read())
        except OSError:
            raise SkipTest("no /proc/sys/net/core/wmem_max (not Linux)") from None
        self.patch(sse, "WIDE_STREAM_INSTRUMENTS", len(NAMES))
        self.serve()
        wide = await self.open("/api/events")
        narrow = await self.open("/api/events?instrument=ctd1")

        def send_buffer(client: StreamClient) -> int:
            handle = self.api_stream[client].request.channel.transport.getHandle()
            size: int = handle.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            return size

        # Linux doubles what it is asked for, within its maximum.
        self.assertGreaterEqual(
            send_buffer(wide), 2 * min(sendbuffer.SEND_BUFFER, most)
        )
        self.assertLess(send_buffer(narrow), 2 * min(sendbuffer.SEND_BUFFER, most))

    async def test_slowReader(self) -> None:
        """
        A client that stops reading is held at most C{max_backlog} events
        for each instrument it follows, then cut off and counted for every instrument it followed; the
        station and a client that keeps reading are not held back.
        """
        self.serve(max_backlog=8)
        slow = await self.open("/api/events")
        fast = await self.open("/api/events?instrument=ctd1")
        stream = self.api_stream[slow]
        assert slow.transport is not None
        slow.transport.pauseProducing()
        big = "x" * 65536
        sent = 0
        # The kernel's buffers take a few MB before the station sees the
        # client is not reading; give each event time to reach the fast one.
        while not stream.ended and sent < 2000:
            self.sample("ctd1", text=big, n=sent)
            sent += 1
            await within(fast.wait_events(sent), "the fast client's event")
            self.assertLessEqual(len(stream._backlog), 8 * len(NAMES))
        self.assertTrue(stream.ended, f"not cut off after {sent} events")
        # A client that does not read cannot see its connection end either.
        slow.transport.resumeProducing()
        await within(slow.closed, "the slow client to be cut off")
        self.assertEqual(
            {self.instruments[n].streams_cut_off for n in NAMES}, {1}, "counted"
        )
        self.assertEqual(self.instruments["ctd2"].streams, 0)
        self.assertEqual(self.instruments["ctd1"].streams, 1)
        self.sample("ctd1", n=sent)
        await within(fast.wait_events(sent + 1), "an event after the cut-off")
        self.assertEqual(len(self.api.streams), 1)


class SerialisationTests(StationStreamCase):
    """
    Each event is made into its message once, however many streams carry
    it.
    """

    async def test_oncePerEvent(self) -> None:
        """
        With six streams of an instrument (station-wide and its own), a
        sample's particle is turned into a dict once in all, when the
        station makes its record, and the record encoded once; every stream
        gets the same bytes.
        """
        self.serve()
        clients = [await self.open("/api/events") for _ in range(3)]
        clients += [await self.open("/api/instruments/ctd1/events") for _ in range(2)]
        clients.append(await self.open("/api/events?instrument=ctd1&type=SAMPLE"))
        CountingParticle.made = 0
        bus: EventBus = self.drivers["ctd1"].events
        bus.publish(SampleEvent(CountingParticle(n=1), time=bus.now()))
        for client in clients:
            await within(client.wait_events(1), "the sample")
        self.assertEqual(CountingParticle.made, 1)
        latest = self.instruments["ctd1"]._latest_sample
        assert latest is not None
        self.assertEqual(latest.record.encodings, 1)
        self.assertEqual(len({client.events[0] for client in clients}), 1)
        self.assertEqual(self.api.feeds[self.instruments["ctd1"]].messages, 1)

    async def test_unfollowWhenNoneLeft(self) -> None:
        """
        A feed leaves its instrument's bus when its last stream ends.
        """
        self.serve()
        bus = self.instruments["optode"]
        before = bus.listener_count
        clients = [await self.open("/api/events") for _ in range(2)]
        self.assertEqual(bus.listener_count, before + 1)
        for client in clients:
            await self.hang_up(client)
        self.assertEqual(self.api.streams, set())
        self.assertEqual(bus.listener_count, before)
