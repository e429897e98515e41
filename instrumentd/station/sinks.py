# -*- test-case-name: tests.test_sinks -*-
"""
Sinks: where the station sends the particles its drivers produce.

Every sink provides :class:`ISink`: :meth:`~ISink.write` takes one
sample (its :class:`~instrumentd.station.record.SampleRecord`, as the
station gives it, or a :class:`~instrumentd.driver.particles.DataParticle`,
or the dict form of either) and never blocks on the network nor raises for
I/O trouble: trouble is counted in :meth:`~ISink.stats` and logged.  What a
sink stores or sends is the sample record, version 2 (``doc/data.md``).

- :class:`JsonLinesSink`: one JSON-lines file per instrument, stream and
  UTC day of the sample.
- :class:`HttpSink`: POSTs batches to an ingest URL, spooling to disk first
  so that an outage costs no memory and loses nothing until the spool's
  bound (``max_bytes``) is reached; then the oldest go, counted.
- :class:`MqttSink`: publishes samples and events to an MQTT 5 broker,
  QoS 1, through a disk spool per instrument, with a per-instrument
  sequence number that survives restarts.
- :class:`MemorySink`: keeps what it is given, for tests and demos.

:func:`connect_sink` feeds a sink from a station instrument (or a
driver's :class:`~instrumentd.driver.events.EventBus`).  See
``doc/sinks.md``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol, cast

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from instrumentd.driver.events import DriverEvent, EventType, SampleEvent
from instrumentd.station._httpsink import HTTPPoster, HttpSink, default_retry_policy
from instrumentd.station._jsonlines import JsonLinesSink
from instrumentd.station._mqttsink import MqttSink
from instrumentd.station._sink import (
    IEventSink,
    ISink,
    Particle,
    ParticleLike,
    sample_time,
)
from instrumentd.station.record import RecordError, as_record

__all__ = [
    "HTTPPoster",
    "HttpSink",
    "IEventSink",
    "ISink",
    "JsonLinesSink",
    "MemorySink",
    "MqttSink",
    "Particle",
    "ParticleLike",
    "connect_sink",
    "default_retry_policy",
    "sample_time",
]


class EventSource(Protocol):
    """
    What :func:`connect_sink` subscribes to: a
    :class:`~instrumentd.station.instrument.StationInstrument` (its samples
    are records already) or a driver's
    :class:`~instrumentd.driver.events.EventBus`.
    """

    def subscribe(
        self,
        listener: Callable[[DriverEvent], object],
        types: Iterable[EventType] | None = None,
    ) -> Callable[[], None]:
        """
        :returns: a callable that unsubscribes.
        """


def connect_sink(bus: EventSource, instrument: str, sink: ISink) -> Callable[[], None]:
    """
    Write every sample published on ``bus`` (as a
    :class:`~instrumentd.driver.events.SampleEvent`) to ``sink``; to a sink
    that also provides :class:`IEventSink`, every other event too, in the
    order they were published.

    :param bus: a station instrument, or a driver's event bus.
    :param instrument: the instrument's name, passed to :meth:`ISink.write`.
    :param sink: the sink.
    :returns: a callable that stops it.
    """
    if IEventSink.providedBy(sink):
        events = cast("IEventSink", sink)

        def each(event: DriverEvent) -> None:
            if isinstance(event, SampleEvent):
                sink.write(instrument, event.particle)
            else:
                events.write_event(instrument, event)

        return bus.subscribe(each)

    def sample(event: DriverEvent) -> None:
        assert isinstance(event, SampleEvent)
        sink.write(instrument, event.particle)

    return bus.subscribe(sample, types=[EventType.SAMPLE])


@implementer(ISink)
class MemorySink:
    """
    A sink that keeps what it is given, for tests and demos.

    :param max_records: keep only this many of the newest records (the
        older ones are dropped and counted); ``None`` keeps all.
    :ivar records: ``(instrument, record dict)`` pairs, oldest first (the
        records' own dicts, version 2: read them, do not change them).
    """

    def __init__(self, max_records: int | None = None) -> None:
        self.records: deque[tuple[str, dict[str, object]]] = deque(maxlen=max_records)
        self.written = 0
        self.dropped = 0
        self.invalid = 0
        self.closed = False
        self._waiters: list[tuple[int, Deferred[None]]] = []

    def write(self, instrument: str, particle: Particle) -> None:
        """
        Keep one sample's record.  See :meth:`ISink.write`.
        """
        if self.closed:
            self.dropped += 1
            return
        try:
            record = as_record(instrument, particle).to_dict()
        except RecordError:
            self.dropped += 1
            self.invalid += 1
            return
        if self.records.maxlen is not None and len(self.records) == self.records.maxlen:
            self.dropped += 1
        self.records.append((instrument, record))
        self.written += 1
        ready = [waiter for waiter in self._waiters if waiter[0] <= self.written]
        for waiter in ready:
            self._waiters.remove(waiter)
            waiter[1].callback(None)

    def particles(self, instrument: str | None = None) -> list[dict[str, object]]:
        """
        The records kept, oldest first.

        :param instrument: only those from this instrument; ``None`` for all.
        :returns: their dict forms (version 2).
        """
        return [
            particle
            for name, particle in self.records
            if instrument is None or name == instrument
        ]

    def wait_for(self, count: int) -> Deferred[None]:
        """
        Wait until ``count`` particles have been written in all.

        :param count: the number of writes to wait for.
        :returns: a Deferred that fires then (at once if already so).
        """
        if self.written >= count:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append((count, waiter))
        return waiter

    def flush(self) -> Deferred[None]:
        """
        Nothing to do.  See :meth:`ISink.flush`.
        """
        return succeed(None)

    def close(self) -> Deferred[None]:
        """
        Stop taking particles.  See :meth:`ISink.close`.
        """
        self.closed = True
        return succeed(None)

    def stats(self) -> dict[str, object]:
        """
        See :meth:`ISink.stats`.

        :returns: ``written``, ``kept``, ``dropped``, ``invalid`` (mappings
            that were no record) and ``closed``.
        """
        return {
            "written": self.written,
            "kept": len(self.records),
            "dropped": self.dropped,
            "invalid": self.invalid,
            "closed": self.closed,
        }
