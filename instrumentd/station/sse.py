# -*- test-case-name: tests.test_station_sse -*-
"""
Server-Sent Events: instruments' driver events as a ``text/event-stream``.

Both ends are here:

- :class:`EventStream` serves one client the events of one instrument or
  several: each driver event becomes an SSE message whose ``event:`` is the
  event's type (``SAMPLE``, ``STATE_CHANGE``, ``CONFIG_CHANGE``, ``ERROR``,
  ...) and whose ``data:`` is the event's JSON form plus ``"instrument"``
  (made once per event for every stream, by
  :class:`~instrumentd.station.eventfeed.EventFeed`).  A stream opened while
  an instrument link is down starts with a ``CONNECTION`` event saying since
  when and why.  A comment line is sent when
  the stream has been quiet for a while, so proxies and clients can tell a
  quiet instrument from a dead connection.  A client that cannot keep up is
  given a bounded backlog and then cut off: the instrument never waits for
  it and the station's memory stays bounded.
- :class:`EventStreamParser` reads such a stream incrementally (for
  ``instrumentctl watch`` and the tests).

The format is the WHATWG HTML "server-sent events" one.  We write it
ourselves because it is a few lines each way, and neither Twisted nor a
well-kept Twisted-friendly package provides it.
"""

from __future__ import annotations

import codecs
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from instrumentd.driver.events import EventType
from instrumentd.station.sendbuffer import widen_send_buffer

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from instrumentd.station.eventfeed import EventFeed

__all__ = [
    "CONTENT_TYPE",
    "EventStream",
    "EventStreamParser",
    "ServerSentEvent",
    "format_comment",
    "format_message",
]

_log = Logger()

#: The stream's media type (the format is always UTF-8).
CONTENT_TYPE = b"text/event-stream; charset=utf-8"

#: A stream's backlog grows with the instruments it follows, up to this many:
#: 100,000 events by default, 20 s of a 5,000-instrument station at 1 Hz
#: (20,000, 4 s, cut the 10 watchers of every instrument off on a loaded
#: machine).  The messages are shared by every stream, so streams that lag
#: together hold the same bytes.
BACKLOG_INSTRUMENTS = 100

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

#: Streams following at least this many instruments ask for a wider kernel
#: send buffer (:mod:`instrumentd.station.sendbuffer`: the station sends to
#: a client once a reactor turn, as much as the socket takes, and a
#: station-wide stream of 5,000 instruments is about 4 MB a second, while
#: the turns of a station bringing thousands up last a second or more; the
#: streams fell further behind at each turn until they were cut off).
#: Smaller ones keep the kernel's own sizing, which
#: grows with what they carry (a stream of a thousand instruments is well
#: under a megabyte a second), so a stalled client of a few instruments
#: does not hold megabytes of the kernel's memory.
WIDE_STREAM_INSTRUMENTS = 1000


def format_message(event: str, data: str) -> bytes:
    """
    One SSE message.

    :param event: the message's event name (no line breaks).
    :param data: its data; each of its lines becomes one ``data:`` line, as
        the format requires.
    :returns: the message, ending with the blank line that dispatches it.
    """
    lines = [f"event: {event}"]
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def format_comment(text: str) -> bytes:
    """
    An SSE comment, which clients ignore (used for keep-alives).

    :param text: the comment (no line breaks).
    :returns: the comment line.
    """
    return f": {text}\n\n".encode()


@implementer(IPushProducer)
class EventStream:
    """
    One client's stream of the events of one instrument or several.

    Made by the API for ``GET /api/instruments/{name}/events`` (one feed)
    and ``GET /api/events`` (the feeds of the instruments asked for); it
    ends when the client goes away, when :meth:`close` is called (the
    station is stopping), or when the client falls too far behind.  Each
    followed instrument counts it in its ``streams`` while it is open.

    :param request: the client's request; the stream writes its response.
    :param feeds: the feeds of the instruments whose events to send.
    :param clock: for the keep-alive timer.
    :param types: only events of these types; ``None`` for all.
    :param keepalive: seconds of silence after which a comment is sent.
    :param max_backlog: events held, per instrument followed (up to
        :data:`BACKLOG_INSTRUMENTS` of them), for a client whose connection
        is full; one more and it is cut off.  A stream of every instrument
        of a large station carries thousands of events a second, and would
        otherwise be cut off by a pause of a fraction of a second.
    :param on_end: called with this stream once it has ended, however.
    :param title: what the stream carries, for its opening comment and the
        log (``instrument NAME`` by default, for one feed).
    :param coalesce: seconds messages may wait to be written together; 0
        writes each at once.  A stream of thousands of instruments' events
        costs one write (a chunk, a system call) per interval instead of
        one per event.  Coalescing streams take their messages straight
        into a list (the feed appends each to it, with no call of the
        stream's per message), and the streams of one clock and interval
        are written together by one :class:`Coalescer`; a stream whose
        connection is full holds what it has at the end of the interval.
    """

    def __init__(
        self,
        request: Request,
        feeds: Sequence[EventFeed],
        clock: IReactorTime,
        *,
        types: Iterable[EventType] | None = None,
        keepalive: float = 15.0,
        max_backlog: int = 1000,
        on_end: Callable[[EventStream], object] | None = None,
        title: str | None = None,
        coalesce: float = 0.0,
    ) -> None:
        self.request = request
        self._coalesce = coalesce
        #: Messages waiting for the end of the interval: the feeds append
        #: to this very list (it is cleared, never replaced).
        self._pending: list[bytes] = []
        self._coalescer: Coalescer | None = None
        self.feeds = tuple(feeds)
        self.instruments = tuple(feed.instrument for feed in self.feeds)
        self._clock = clock
        self._types = None if types is None else frozenset(types)
        self.keepalive = keepalive
        self.max_backlog = max_backlog * min(len(self.feeds), BACKLOG_INSTRUMENTS) or (
            max_backlog
        )
        self._on_end = on_end
        if title is None:
            title = ", ".join(f"instrument {each.name}" for each in self.instruments)
        self.title = title
        self._backlog: deque[bytes] = deque()
        self._paused = False
        self._ended = False
        self._timer: IDelayedCall | None = None
        self._unfollow: list[Callable[[], None]] = []
        # Messages written or held so far, those pending not yet counted.
        self._sent = 0

    def start(self) -> None:
        """
        Send the response headers and start streaming.
        """
        request = self.request
        request.setResponseCode(200)
        request.setHeader(b"content-type", CONTENT_TYPE)
        request.setHeader(b"cache-control", b"no-store")
        # Buffering proxies (nginx) would otherwise hold events back.
        request.setHeader(b"x-accel-buffering", b"no")
        request.notifyFinish().addBoth(self._finished)
        request.registerProducer(self, True)
        if len(self.feeds) >= WIDE_STREAM_INSTRUMENTS:
            widen_send_buffer(getattr(request.channel, "transport", None))
        reader: Callable[[bytes], object] = self._message
        if self._coalesce > 0:
            self._coalescer = Coalescer.of(self._clock, self._coalesce)
            self._coalescer.add(self)
            # The feeds give each message straight to the list: no call of
            # this stream's per message (issue 18: ten streams of each
            # instrument cost a quarter of the station's work per sample).
            reader = self._pending.append
        for feed in self.feeds:
            feed.instrument.streams += 1
            self._unfollow.append(feed.follow(reader, self._types, self._coalescer))
        # Writing at once sends the headers, so the client knows the stream
        # is open before the first event.
        self._write(format_comment(f"events of {self.title}"))
        # A link that went down before the client came: say so, and why,
        # rather than leave the client to wonder at the silence.
        for feed in self.feeds:
            link = feed.instrument.link_event()
            if link is not None and (
                self._types is None or link.event_type in self._types
            ):
                self._message(feed.message(link))

    def close(self) -> None:
        """
        End the stream from the station's side (the response is finished).
        """
        if self._ended:
            return
        self._flush()
        self._end()
        self.request.unregisterProducer()
        self.request.finish()

    @property
    def sent(self) -> int:
        """
        Messages written, held or waiting so far, keep-alives excepted.
        """
        return self._sent + len(self._pending)

    # Messages in, each made once by its feed for every stream.

    def _message(self, message: bytes) -> None:
        if self._ended:
            return
        coalescer = self._coalescer
        if coalescer is not None:
            # What the feeds do for a coalescing stream.
            self._pending.append(message)
            coalescer.wake()
            return
        self._sent += 1
        if self._paused:
            if len(self._backlog) >= self.max_backlog:
                self._cut_off()
            else:
                self._backlog.append(message)
            return
        self._write(message)

    def _flush(self) -> None:
        pending = self._pending
        if not pending or self._ended:
            return
        self._sent += len(pending)
        if self._paused:
            # Held with what the connection could not take before, after
            # it, so that the client has them in order; past the bound, the
            # client is cut off.
            self._backlog.extend(pending)
            pending.clear()
            if len(self._backlog) > self.max_backlog:
                self._cut_off()
            return
        data = b"".join(pending)
        pending.clear()
        self._write(data)

    def _write(self, data: bytes) -> None:
        if self._ended:
            return
        self.request.write(data)
        self._schedule_keepalive()

    def _schedule_keepalive(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.keepalive)
        else:
            self._timer = self._clock.callLater(self.keepalive, self._keep_alive)

    def _keep_alive(self) -> None:
        self._timer = None
        if not self._paused:
            self._write(format_comment("keep-alive"))
        else:
            self._schedule_keepalive()

    def _cut_off(self) -> None:
        _log.warn(
            "Event stream of {title} to {client} cut off: the client "
            "fell {backlog} events behind",
            title=self.title,
            client=_client(self.request),
            backlog=len(self._backlog),
        )
        for instrument in self.instruments:
            instrument.streams_cut_off += 1
        self._end()
        transport = getattr(self.request.channel, "transport", None)
        abort = getattr(transport, "abortConnection", None)
        if callable(abort):
            # Not loseConnection: that would wait for the client to read
            # what is already buffered, which it is not doing.
            abort()
        else:
            self.request.loseConnection()

    # IPushProducer: the connection tells us when its buffer is full.

    def pauseProducing(self) -> None:
        """
        The client's connection is full: hold events in the backlog.
        """
        self._paused = True

    def resumeProducing(self) -> None:
        """
        The client's connection has drained: send the backlog.
        """
        self._paused = False
        if self._backlog and not self._ended:
            # One write for all of it: a stream of thousands of instruments
            # may hold thousands of events, and a chunk each would cost a
            # system call each.
            held = b"".join(self._backlog)
            self._backlog.clear()
            self._write(held)

    def stopProducing(self) -> None:
        """
        The connection is going away.
        """
        self._end()

    # Ending.

    def _finished(self, result: Failure | None) -> None:
        # notifyFinish fires on our own finish() and fails when the client
        # disconnects; either way nothing more may be written.
        self._end()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._backlog.clear()
        for unfollow in self._unfollow:
            unfollow()
        self._unfollow = []
        self._pending.clear()
        if self._coalescer is not None:
            self._coalescer.remove(self)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        for instrument in self.instruments:
            instrument.streams -= 1
        if self._on_end is not None:
            self._on_end(self)

    @property
    def ended(self) -> bool:
        """
        Whether the stream has ended.
        """
        return self._ended


class Coalescer:
    """
    Writes what the coalescing event streams of one clock and interval
    have waiting, together, an interval after the first message since the
    last time; nothing runs while they have none.

    Made and shared through :meth:`of`; the feeds that give the streams
    their messages :meth:`wake` it (looking at :attr:`call` first: a
    message costs no call while the interval runs).

    :param clock: the clock of the interval.
    :param interval: seconds.
    :ivar call: the end of the interval running, or ``None``.
    """

    __slots__ = ("_clock", "_interval", "_key", "_streams", "call")

    #: (the clock's id, interval) → the coalescer of the streams open
    #: (forgotten with its last stream, so the id cannot be another's).
    _shared: ClassVar[dict[tuple[int, float], Coalescer]] = {}

    def __init__(self, clock: IReactorTime, interval: float) -> None:
        self._clock = clock
        self._interval = interval
        self._key = (id(clock), interval)
        # An ordered set: streams are written in the order they opened.
        self._streams: dict[EventStream, None] = {}
        self.call: IDelayedCall | None = None

    @classmethod
    def of(cls, clock: IReactorTime, interval: float) -> Coalescer:
        """
        The coalescer of ``clock`` and ``interval``, shared by the streams
        that have them.
        """
        coalescer = cls._shared.get((id(clock), interval))
        if coalescer is None or coalescer._clock is not clock:
            coalescer = cls._shared[(id(clock), interval)] = cls(clock, interval)
        return coalescer

    def add(self, stream: EventStream) -> None:
        """
        Write ``stream``'s messages from now on.
        """
        self._streams[stream] = None

    def remove(self, stream: EventStream) -> None:
        """
        Stop writing ``stream``'s messages (it has ended).
        """
        self._streams.pop(stream, None)
        if not self._streams:
            if self.call is not None and self.call.active():
                self.call.cancel()
            self.call = None
            if self._shared.get(self._key) is self:
                del self._shared[self._key]

    def wake(self) -> None:
        """
        A stream has a message waiting: end the interval in ``interval``
        seconds, unless it is running already.
        """
        if self.call is None:
            self.call = self._clock.callLater(self._interval, self._due)

    def _due(self) -> None:
        self.call = None
        # A copy: a stream written to may end (its client gone).
        for stream in list(self._streams):
            stream._flush()


def _client(request: Request) -> str:
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    port = getattr(peer, "port", None)
    return f"{host}:{port}" if host is not None else str(peer)


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """
    One message read from an event stream.

    :ivar event: its event name (``"message"`` when the stream gave none).
    :ivar data: its data, lines joined with ``"\\n"``.
    :ivar id: its id, or ``None``.
    """

    event: str
    data: str
    id: str | None = None


class EventStreamParser:
    """
    Read an event stream in whatever pieces it arrives in.

    :param on_event: called with each complete message.
    :param on_comment: called with each comment's text (keep-alives), if
        given.
    """

    def __init__(
        self,
        on_event: Callable[[ServerSentEvent], object],
        on_comment: Callable[[str], object] | None = None,
    ) -> None:
        self._on_event = on_event
        self._on_comment = on_comment
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._text = ""
        self._started = False
        self._after_cr = False
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, data: bytes) -> None:
        """
        Take the next piece of the stream.

        :param data: bytes as they arrived; may split lines or characters.
        """
        text = self._decoder.decode(data)
        if not text:
            return
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._after_cr:
            # The previous piece ended with a CR, taken as a line break at
            # once; an LF now is the rest of that CRLF, not a blank line.
            self._after_cr = False
            text = text.removeprefix("\n")
        self._after_cr = text.endswith("\r")
        lines = _LINE_BREAK.split(self._text + text)
        # The last piece has no line break yet.
        self._text = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: str) -> None:
        if not line:
            self._dispatch()
            return
        if line.startswith(":"):
            if self._on_comment is not None:
                self._on_comment(line[1:].removeprefix(" "))
            return
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self._id = value
        # "retry" and unknown fields are ignored, as the format says.

    def _dispatch(self) -> None:
        if self._data:
            event = ServerSentEvent(
                self._event or "message", "\n".join(self._data), self._id
            )
            self._on_event(event)
        self._event = ""
        self._data = []
