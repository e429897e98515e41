# -*- test-case-name: tests.test_station_sse -*-
"""
One instrument's events as Server-Sent Events messages, made once per event
for every stream that carries them.

A station with many event streams would otherwise turn each event into a
dict, a JSON text and an SSE message once per stream (issue 18 measured
that cost).  :class:`EventFeed` subscribes to its instrument once, while at
least one stream follows it, and hands each stream that wants an event the
same bytes.  The per-instrument stream and the station-wide stream both
read from the feeds :class:`EventFeeds` keeps, one per instrument.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from twisted.logger import Logger

from instrumentd.driver._json import dumps
from instrumentd.driver.events import DriverEvent, EventType
from instrumentd.station.record import RecordEvent
from instrumentd.station.sse import format_message

if TYPE_CHECKING:
    from instrumentd.station.instrument import StationInstrument
    from instrumentd.station.sse import Coalescer

__all__ = ["EventFeed", "EventFeeds", "MessageReader", "event_message"]

_log = Logger()

#: What a stream gives a feed: called with each SSE message it wants.
MessageReader = Callable[[bytes], object]

_SAMPLE = EventType.SAMPLE
#: A sample's SSE message before its JSON, and every message after it.
_SAMPLE_BEFORE = b"event: SAMPLE\ndata: "
_AFTER = b"\n\n"


def event_message(instrument: str, event: DriverEvent) -> bytes:
    """
    An event as an SSE message: ``event:`` is its type, ``data:`` its JSON
    form with ``"instrument"`` first.  A sample's record is spliced in as
    the bytes it was encoded to once for every consumer.

    :param instrument: the instrument's name.
    :param event: the event, as the API presents it.
    :returns: the message.
    """
    if isinstance(event, RecordEvent):
        # Compact JSON has no line breaks, so it is one data: line.
        if event.event_type is _SAMPLE:
            # Made in one join with the JSON.
            return event.message_json(instrument, before=_SAMPLE_BEFORE, after=_AFTER)
        kind = event.event_type.value.encode("ascii")
        return event.message_json(
            instrument, before=b"event: " + kind + b"\ndata: ", after=_AFTER
        )
    data = {"instrument": instrument, **event.to_dict()}
    return format_message(event.event_type.value, dumps(data))


class _Follower:
    """
    One stream following a feed: where its messages go, and which types it
    wants (``None`` for all).
    """

    __slots__ = ("coalescer", "reader", "types")

    def __init__(
        self,
        reader: MessageReader,
        types: frozenset[EventType] | None,
        coalescer: Coalescer | None,
    ) -> None:
        self.reader = reader
        self.types = types
        self.coalescer = coalescer


class EventFeed:
    """
    One instrument's events, each made into its SSE message once, for every
    stream that follows the instrument.

    :param instrument: whose events.

    :ivar messages: messages made so far (one per event some stream
        wanted, however many streams took it).
    """

    def __init__(self, instrument: StationInstrument) -> None:
        self.instrument = instrument
        self._followers: tuple[_Follower, ...] = ()
        # The readers of every follower, when none of them picks types (a
        # watcher of everything): each event goes to them without a look
        # at each follower's types.  None while some follower picks.
        self._readers: tuple[MessageReader, ...] | None = ()
        # The coalescers of the followers that have one, each once.
        self._coalescers: tuple[Coalescer, ...] = ()
        self._unsubscribe: Callable[[], None] | None = None
        self.messages = 0

    @property
    def followers(self) -> int:
        """
        How many streams follow this feed now.
        """
        return len(self._followers)

    def follow(
        self,
        reader: MessageReader,
        types: Iterable[EventType] | None = None,
        coalescer: Coalescer | None = None,
    ) -> Callable[[], None]:
        """
        Give ``reader`` the message of each event of the instrument from now
        on.

        :param reader: called with each message.
        :param types: only events of these types; ``None`` for all.
        :param coalescer: woken after each event handed out (the reader
            only keeps the message, for the coalescer to write), or
            ``None``.
        :returns: a callable that stops it; calling it again does nothing.
        """
        follower = _Follower(
            reader, None if types is None else frozenset(types), coalescer
        )
        self._set_followers((*self._followers, follower))
        if self._unsubscribe is None:
            # One subscription for every stream: the bus, and the
            # instrument's presentation of each event, are run once.
            self._unsubscribe = self.instrument.subscribe(self._event)

        def unfollow() -> None:
            if follower not in self._followers:
                return
            self._set_followers(tuple(f for f in self._followers if f is not follower))
            if not self._followers and self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

        return unfollow

    def _set_followers(self, followers: tuple[_Follower, ...]) -> None:
        self._followers = followers
        self._readers = (
            tuple(f.reader for f in followers)
            if all(f.types is None for f in followers)
            else None
        )
        self._coalescers = tuple(
            {f.coalescer: None for f in followers if f.coalescer is not None}
        )

    def message(self, event: DriverEvent) -> bytes:
        """
        The SSE message of one of this instrument's events.

        :param event: the event, as the API presents it.
        :returns: the message.
        """
        return event_message(self.instrument.name, event)

    def _event(self, event: DriverEvent) -> None:
        readers = self._readers
        if readers is not None:
            # Every follower takes every event (the tuple is replaced,
            # never changed, as below).
            if not readers:
                return
            if event.__class__ is RecordEvent and event.event_type is _SAMPLE:
                # A sample (once a second per instrument): event_message's
                # work, written out.
                shared = event.message_json(
                    self.instrument.name, before=_SAMPLE_BEFORE, after=_AFTER
                )
            else:
                shared = self.message(event)
            self.messages += 1
            for reader in readers:
                try:
                    reader(shared)
                except Exception:
                    _log.failure(
                        "Event stream of {instrument} failed to take an event",
                        instrument=self.instrument.name,
                    )
            for coalescer in self._coalescers:
                # Once an interval: its streams keep the messages meanwhile.
                if coalescer.call is None:
                    coalescer.wake()
            return
        message: bytes | None = None
        kind = event.event_type
        # The tuple is replaced, never changed, when streams come and go, so
        # a stream that ends while this event is handed out cannot upset it.
        for follower in self._followers:
            if follower.types is not None and kind not in follower.types:
                continue
            if message is None:
                message = self.message(event)
                self.messages += 1
            try:
                follower.reader(message)
            except Exception:
                # One stream's trouble must not cost the others the event.
                _log.failure(
                    "Event stream of {instrument} failed to take an event",
                    instrument=self.instrument.name,
                )
        if message is not None:
            for coalescer in self._coalescers:
                if coalescer.call is None:
                    coalescer.wake()


class EventFeeds:
    """
    The feeds of a station's instruments, made when a stream first follows
    an instrument.
    """

    def __init__(self) -> None:
        self._feeds: dict[str, EventFeed] = {}

    def __getitem__(self, instrument: StationInstrument) -> EventFeed:
        """
        The feed of ``instrument``.

        :param instrument: the instrument.
        :returns: its feed.
        """
        feed = self._feeds.get(instrument.name)
        if feed is None or feed.instrument is not instrument:
            feed = self._feeds[instrument.name] = EventFeed(instrument)
        return feed
