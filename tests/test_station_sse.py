"""
Tests for L{instrumentd.station.sse}: the API's Server-Sent Events stream
and its parser.
"""

from __future__ import annotations

import json
from typing import Any

import treq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from instrumentd.driver.events import (
    ErrorEvent,
    StateChangeEvent,
)
from instrumentd.station.eventfeed import EventFeeds
from instrumentd.station.instrument import StationInstrument
from instrumentd.station.sse import (
    EventStream,
    EventStreamParser,
    ServerSentEvent,
    format_comment,
    format_message,
)
from tests.apisupport import APITestCase, FakeDriver, ToyStation, raw_request


class EventStreamTests(APITestCase):
    """
    C{GET .../events}: Server-Sent Events.
    """

    def open(
        self, station: ToyStation, path: str = "/api/instruments/fake/events"
    ) -> tuple[Any, list[bytes], list[ServerSentEvent], Deferred[None]]:
        """
        Open a stream; return the response, the raw chunks, the parsed
        events, and the Deferred that fires when the body ends.
        """
        requested = station.request("GET", path)
        station.settle()
        response = self.successResultOf(requested)
        chunks: list[bytes] = []
        events: list[ServerSentEvent] = []
        parser = EventStreamParser(events.append)

        def collect(data: bytes) -> None:
            if getattr(self, "hang_up", False):
                raise ConnectionAbortedError("the client hangs up")
            chunks.append(data)
            parser.feed(data)

        done = treq.collect(response, collect)
        return response, chunks, events, done

    def test_framing(self) -> None:
        """
        The stream is C{text/event-stream}; it opens with a comment, and
        each event arrives as C{event:} and C{data:} lines (the event's JSON
        with the instrument's name) ending in a blank line.
        """
        station = self.station()
        response, chunks, events, done = self.open(station)
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"),
            ["text/event-stream; charset=utf-8"],
        )
        self.assertEqual(b"".join(chunks), b": events of instrument fake\n\n")
        station.fake.sample(temperature=20.5)
        station.fake.events.publish(
            StateChangeEvent("AUTOSAMPLE", "COMMAND", time=station.clock.seconds())
        )
        station.settle()
        text = b"".join(chunks).decode()
        self.assertIn(
            '\n\nevent: SAMPLE\ndata: {"instrument":"fake","type":"SAMPLE"', text
        )
        self.assertTrue(text.endswith("\n\n"))
        self.assertEqual([e.event for e in events], ["SAMPLE", "STATE_CHANGE"])
        sample = json.loads(events[0].data)
        self.assertEqual(sample["record"]["values"]["temperature"], 20.5)
        self.assertEqual(sample["record"]["instrument"], "fake")
        self.assertEqual(json.loads(events[1].data)["state"], "AUTOSAMPLE")
        self.assertNoResult(done)
        station.api.close()
        station.settle()
        self.successResultOf(done)

    def test_toySamples(self) -> None:
        """
        Autosample lines from the toy arrive as SAMPLE events, and config
        changes and errors as theirs.
        """
        station = self.station()
        _, _, events, _ = self.open(station, "/api/instruments/toy/events")
        self.ask(station, "PATCH", "/api/instruments/toy/parameters", {"INTERVAL": 2})
        self.ask(station, "POST", "/api/instruments/toy/commands/start_autosample")
        station.line.run(4.5)
        station.driver.events.publish(
            ErrorEvent("INSTRUMENT_PROTOCOL", "junk", time=station.clock.seconds())
        )
        station.settle()
        kinds = [event.event for event in events]
        self.assertIn("CONFIG_CHANGE", kinds)
        self.assertIn("STATE_CHANGE", kinds)
        self.assertEqual(kinds.count("SAMPLE"), 2)
        self.assertEqual(kinds[-1], "ERROR")
        self.assertEqual(station.toy_instrument.samples, 2)
        station.api.close()

    def test_keepAlive(self) -> None:
        """
        After C{keepalive} seconds without an event, a comment is sent; an
        event postpones it.
        """
        station = self.station(keepalive=10.0)
        _, chunks, _, _ = self.open(station)
        chunks.clear()
        station.clock.advance(9)
        station.fake.sample(t=1)
        station.clock.advance(9)
        station.settle()
        self.assertNotIn(b": keep-alive\n\n", b"".join(chunks))
        station.clock.advance(1)
        station.settle()
        self.assertTrue(b"".join(chunks).endswith(b": keep-alive\n\n"))
        station.api.close()

    def test_coalesce(self) -> None:
        """
        With C{stream_coalesce}, the events of an interval are written
        together, in order, once it has passed; closing the stream writes
        those waiting first.
        """
        station = self.station(stream_coalesce=0.1)
        _, chunks, events, done = self.open(station)
        chunks.clear()
        for number in range(3):
            station.fake.sample(t=number)
        station.settle()
        self.assertEqual(chunks, [])
        station.clock.advance(0.1)
        station.settle()
        self.assertEqual(len(chunks), 1)
        self.assertEqual(
            [json.loads(e.data)["record"]["values"]["t"] for e in events],
            [0, 1, 2],
        )
        station.fake.sample(t=3)
        station.api.close()
        station.settle()
        self.successResultOf(done)
        self.assertEqual(len(events), 4)

    def test_disconnectUnsubscribes(self) -> None:
        """
        When the client goes away the stream unsubscribes from the bus and
        its keep-alive timer is cancelled.
        """
        station = self.station()
        listeners = station.fake_instrument.listener_count
        calls = len(station.clock.getDelayedCalls())
        _, _, _, done = self.open(station)
        self.assertEqual(station.fake_instrument.listener_count, listeners + 1)
        self.assertEqual(station.fake_instrument.streams, 1)
        self.assertEqual(len(station.clock.getDelayedCalls()), calls + 1)
        self.hang_up = True
        station.fake.sample(t=1)
        station.settle()
        self.failureResultOf(done, ConnectionAbortedError)
        self.assertEqual(station.fake_instrument.listener_count, listeners)
        self.assertEqual(station.fake_instrument.streams, 0)
        self.assertEqual(len(station.clock.getDelayedCalls()), calls)
        self.assertEqual(station.api.streams, set())

    def test_types(self) -> None:
        """
        C{?types=} limits the stream to those event types; an unknown type
        is a 400 listing the known ones.
        """
        station = self.station()
        _, _, events, _ = self.open(station, "/api/instruments/fake/events?types=error")
        station.fake.sample(t=1)
        station.fake.events.publish(ErrorEvent("E", "bad", time=1.0))
        station.settle()
        self.assertEqual([event.event for event in events], ["ERROR"])
        error = self.assertError(
            self.ask(station, "GET", "/api/instruments/fake/events?types=SAMPLES"),
            400,
            "BAD_REQUEST",
        )
        self.assertIn("SAMPLE", error["known"])
        station.api.close()

    def test_slowClientCutOff(self) -> None:
        """
        While the client's connection is full, events are held up to
        C{max_backlog}; then the client is cut off and counted, and the
        instrument is not held back.  Held events are sent once it drains.
        """
        station = self.station(max_backlog=3)
        channel, transport = raw_request(
            Site(station.api),
            b"GET /api/instruments/fake/events HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        self.assertIn(b"text/event-stream", transport.value())
        transport.producer.pauseProducing()
        transport.clear()
        for each in range(3):
            station.fake.sample(n=each)
        self.assertEqual(transport.value(), b"")
        transport.producer.resumeProducing()
        self.assertEqual(transport.value().count(b"event: SAMPLE"), 3)
        transport.producer.pauseProducing()
        for each in range(4):
            station.fake.sample(n=each)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(station.fake_instrument.streams_cut_off, 1)
        self.assertEqual(station.fake.events.listener_count, 1)
        channel.connectionLost(Failure(ConnectionError("aborted")))
        self.assertEqual(station.fake_instrument.streams, 0)

    def test_backlogPerInstrument(self) -> None:
        """
        A stream of several instruments holds C{max_backlog} events for
        each of them: a station-wide stream carries many times the events
        of one instrument's.
        """
        station = self.station(max_backlog=3)
        followed = 2  # toy and fake
        channel, transport = raw_request(
            Site(station.api), b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        transport.producer.pauseProducing()
        for each in range(3 * followed):
            station.fake.sample(n=each)
        self.assertFalse(transport.disconnecting)
        station.fake.sample(n=99)
        self.assertTrue(transport.disconnecting)
        channel.connectionLost(Failure(ConnectionError("aborted")))


class EventStreamParserTests(SynchronousTestCase):
    """
    L{EventStreamParser} and the writers it reads.
    """

    def test_fields(self) -> None:
        """
        Messages are dispatched on a blank line, with multi-line data,
        ids, comments and the default event name.
        """
        events: list[ServerSentEvent] = []
        comments: list[str] = []
        parser = EventStreamParser(events.append, comments.append)
        parser.feed(
            b"\xef\xbb\xbf: hello\n"
            b"data: one\ndata: two\n\n"
            b"event: X\r\nid: 7\r\ndata:no space\r\nretry: 5\r\n\r\n"
            b"event: empty\n\n"
        )
        self.assertEqual(
            events,
            [
                ServerSentEvent("message", "one\ntwo"),
                ServerSentEvent("X", "no space", "7"),
            ],
        )
        self.assertEqual(comments, ["hello"])

    def test_writers(self) -> None:
        """
        L{format_message} splits data over C{data:} lines, which the parser
        joins again.
        """
        events: list[ServerSentEvent] = []
        parser = EventStreamParser(events.append)
        parser.feed(format_comment("hi") + format_message("E", "a\nb\r\nc"))
        self.assertEqual(events, [ServerSentEvent("E", "a\nb\nc")])

    # The machine running the suite may be busy: slow generation is not a
    # fault of the parser.
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.tuples(
                st.text("ABCxyz_", min_size=1, max_size=8),
                st.text(max_size=30).filter(lambda t: "\r" not in t),
            ),
            max_size=5,
        ),
        st.data(),
        st.sampled_from([b"\n", b"\r\n", b"\r"]),
    )
    def test_anyChunking(
        self, messages: list[tuple[str, str]], data: st.DataObject, newline: bytes
    ) -> None:
        """
        However the stream is cut into pieces (even inside a UTF-8
        character or a CRLF), and whichever line break it uses, the same
        messages come out.
        """
        stream = b"".join(
            format_comment("k") + format_message(name, text) for name, text in messages
        ).replace(b"\n", newline)
        cuts = sorted(
            data.draw(st.lists(st.integers(0, len(stream)), max_size=10), "cuts")
        )
        events: list[ServerSentEvent] = []
        parser = EventStreamParser(events.append)
        start = 0
        for cut in [*cuts, len(stream)]:
            parser.feed(stream[start:cut])
            start = cut
        expected = [
            ServerSentEvent(name, "\n".join(text.replace("\r", "").split("\n")))
            for name, text in messages
        ]
        self.assertEqual(events, expected)


class _Request:
    """
    What an event stream asks of its request, keeping what it is given.
    """

    channel = None

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.finished: Deferred[None] = Deferred()
        self.lost = False

    def setResponseCode(self, code: int) -> None:
        pass

    def setHeader(self, name: bytes, value: bytes) -> None:
        pass

    def notifyFinish(self) -> Deferred[None]:
        return self.finished

    def registerProducer(self, producer: object, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def finish(self) -> None:
        pass

    def loseConnection(self) -> None:
        self.lost = True

    def getClientAddress(self) -> object:
        return "client"

    def errors(self) -> list[str]:
        """
        The error codes of the ERROR events written, in order.
        """
        events: list[ServerSentEvent] = []
        EventStreamParser(events.append).feed(b"".join(self.chunks))
        return [json.loads(e.data)["error_code"] for e in events if e.event == "ERROR"]


class CoalescingStreamTests(SynchronousTestCase):
    """
    Coalescing event streams: the feeds append each message to the
    streams' lists, and one L{Coalescer} per clock and interval writes
    them.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.driver = FakeDriver(self.clock)
        self.instrument = StationInstrument(
            "ctd", self.driver, self.driver.events, clock=self.clock
        )
        self.feeds = EventFeeds()

    def stream(self, **options: Any) -> tuple[EventStream, _Request]:
        request = _Request()
        stream = EventStream(
            request,  # type: ignore[arg-type]
            [self.feeds[self.instrument]],
            self.clock,
            coalesce=0.1,
            **options,
        )
        stream.start()
        request.chunks.clear()
        self.addCleanup(stream.close)
        return stream, request

    def error(self, code: str) -> None:
        self.driver.events.publish(ErrorEvent(code, "bad", time=1.0))

    def test_oneTimerForAll(self) -> None:
        """
        The streams of one clock and interval are written together at the
        interval's end, by one timer, each message in one write per stream.
        """
        streams = [self.stream() for _ in range(3)]
        calls = len(self.clock.getDelayedCalls())
        for code in ("A", "B"):
            self.error(code)
        self.assertEqual(len(self.clock.getDelayedCalls()), calls + 1)
        self.assertEqual([stream.sent for stream, _ in streams], [2, 2, 2])
        self.assertEqual([request.chunks for _, request in streams], [[], [], []])
        self.clock.advance(0.1)
        for _, request in streams:
            self.assertEqual(len(request.chunks), 1)
            self.assertEqual(request.errors(), ["A", "B"])

    def test_heldInOrder(self) -> None:
        """
        A stream whose connection fills holds the interval's messages,
        those before it filled too; once it drains it has every message in
        order, whenever in the interval it drains.
        """
        stream, request = self.stream()
        self.error("A")
        stream.pauseProducing()
        self.error("B")
        self.clock.advance(0.1)
        self.assertEqual(request.chunks, [])
        self.error("C")
        stream.resumeProducing()
        self.error("D")
        stream.pauseProducing()
        self.error("E")
        stream.resumeProducing()
        self.clock.advance(0.1)
        self.assertEqual(request.errors(), ["A", "B", "C", "D", "E"])

    def test_cutOff(self) -> None:
        """
        A stream holding more than C{max_backlog} messages at an interval's
        end is cut off; the others go on.
        """
        slow, request = self.stream(max_backlog=2)
        _, other = self.stream()
        slow.pauseProducing()
        for code in "ABC":
            self.error(code)
        self.clock.advance(0.1)
        self.assertTrue(slow.ended)
        self.assertTrue(request.lost)
        self.assertEqual(self.instrument.streams_cut_off, 1)
        self.error("D")
        self.clock.advance(0.1)
        self.assertEqual(other.errors(), ["A", "B", "C", "D"])
