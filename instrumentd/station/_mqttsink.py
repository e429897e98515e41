# -*- test-case-name: tests.test_mqttsink -*-
"""
The MQTT sink: every sample and every event of the instruments it serves,
published with QoS 1 to an MQTT 5 broker, through a disk spool per
instrument so that nothing is lost while the broker is away.

Import it from :mod:`instrumentd.station.sinks`.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.driver._json import dumps
from instrumentd.driver.events import DriverEvent, EventType
from instrumentd.mqtt import (
    BrokerSettings,
    MQTTClient,
    MQTTConnection,
    PublishRefusedError,
    default_backoff,
)
from instrumentd.mqtt.topics import data_topic, events_topic
from instrumentd.station._sink import (
    ErrorReport,
    IEventSink,
    ISink,
    Particle,
    default_reactor,
)
from instrumentd.station.record import RecordError, as_record
from instrumentd.station.registry import Registry, offline_will
from instrumentd.station.remote import RemoteCommands
from instrumentd.station.spool import DEFAULT_MAX_BYTES, STATE_FILE, Spool

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from instrumentd.station.instrument import StationInstrument

__all__ = ["MqttSink"]

_log = Logger()

#: Messages of one instrument published and not yet acknowledged, at most.
DEFAULT_WINDOW: Final = 100


@dataclass(slots=True)
class _Sent:
    """
    A spooled message published and waiting for its PUBACK.
    """

    seq: int
    topic: str
    payload: bytes
    acked: bool = False


class _Outbox:
    """
    One instrument's spool and what of it is on its way to the broker.

    :ivar sent: published, oldest first, not yet all acknowledged; the
        spool's cursor is moved past a prefix once all of it is.
    """

    def __init__(self, instrument: str, spool: Spool) -> None:
        self.instrument = instrument
        self.spool = spool
        self.sent: deque[_Sent] = deque()
        self.blocked_until: float = 0.0
        self.refusals = 0
        self.warned_at_bound = False

    def note_bound(self) -> None:
        """
        Log when the spool reaches its bound (the oldest undelivered go)
        and when it is back under it, once each time.
        """
        at_bound = self.spool.at_bound
        if at_bound == self.warned_at_bound:
            return
        self.warned_at_bound = at_bound
        if at_bound:
            _log.warn(
                "MQTT sink: the spool {directory} of {instrument} is at its bound "
                "of {max_bytes} bytes: the oldest undelivered messages are dropped",
                directory=self.spool.directory,
                instrument=self.instrument,
                max_bytes=self.spool.max_bytes,
            )
        else:
            _log.info(
                "MQTT sink: the spool of {instrument} is back under its bound",
                instrument=self.instrument,
            )


def _topic_of(station: str, instrument: str, line: bytes) -> str:
    """
    The topic of a spooled message, from its content.
    """
    message = json.loads(line)
    record = message.get("record")
    if isinstance(record, dict):
        return data_topic(station, instrument, str(record.get("stream")))
    event = message.get("event") or {}
    return events_topic(station, instrument, str(event.get("type")))


@implementer(ISink, IEventSink)
class MqttSink:
    """
    Publishes samples and events to an MQTT broker, QoS 1, in order per
    instrument, without losing any while the broker or the station is down.

    **Spool first.**  :meth:`write` and :meth:`write_event` append the
    message, as it will be published, to the instrument's
    :class:`~instrumentd.station.spool.Spool` in ``<spool_dir>/<instrument>``
    and return.  The spool's sequence number is the message's ``seq``:
    one counter per instrument for data and events, from 1, never reused
    (it survives restarts and kill -9 with the spool).  Messages are read
    back and published in order, up to ``window`` at a time per
    instrument; the spool's cursor moves past a message only once it and
    every one before it are acknowledged (PUBACK).  When the session is
    lost, what was not acknowledged is published again, in order, on the
    next one; after a restart, everything after the cursor is.  So every
    message reaches the broker at least once, and ``(station, instrument,
    seq)`` lets a receiver drop the copies.

    Payloads (``doc/multi-host.md``): ``{"seq", "station", "instrument",
    "record": <sample record v2>}`` on ``instrumentd/{station}/
    {instrument}/data/{stream}``; ``{"seq", "station", "instrument",
    "event": <event>}`` on ``.../events/{type}``.

    :param settings: how to reach the broker.
    :param station: the station's name, in every topic and payload.
    :param spool_dir: the spools' directory.
    :param max_bytes: the most disk each instrument's spool may take; at
        the bound the oldest undelivered messages go (counted; the seq gap
        shows them).
    :param window: messages of one instrument in flight at most.
    :param registry: publish the retained registry (status with a last
        will, each instrument's meta) of the instruments given to
        :meth:`serve`.
    :param position: the station's ``{"latitude", "longitude"}`` for the
        registry, or ``None``.
    :param remote_commands: carry out MQTT 5 requests to them (else each
        is answered 403).
    :param reactor: the reactor; the global one if ``None``.
    :param retry_policy: reconnect delays, and the delay before publishing
        again a message the broker refused.
    :ivar client: the MQTT client, started with the sink.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        station: str,
        spool_dir: str,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        window: int = DEFAULT_WINDOW,
        registry: bool = True,
        position: Mapping[str, float] | None = None,
        remote_commands: bool = False,
        reactor: Any = None,
        retry_policy: Callable[[int], float] | None = None,
    ) -> None:
        self._reactor: IReactorTime = default_reactor() if reactor is None else reactor
        self.station = station
        self.settings = settings
        self.spool_dir = spool_dir
        self._max_bytes = max_bytes
        self._window = window
        # paho walks its whole queue of outgoing messages on every PUBACK,
        # so the sink hands it no more than the connection's in-flight
        # limit at a time, across instruments; instruments held back by
        # it wait their turn here, in order.
        self._max_in_flight = settings.max_inflight
        self._in_flight = 0
        self._starved: deque[_Outbox] = deque()
        os.makedirs(spool_dir, exist_ok=True)
        self._outboxes: dict[str, _Outbox] = {}
        self._errors = ErrorReport(self._reactor, f"MQTT sink {settings.address}")
        self._station_json = json.dumps(station)
        self._closed: Deferred[None] | None = None
        self._retry_call: IDelayedCall | None = None
        self._retry_policy = retry_policy or default_backoff()
        self.client = MQTTClient(
            settings,
            reactor=self._reactor,
            will=offline_will(station) if registry else None,
            retry_policy=retry_policy,
        )
        #: The retained registry, or ``None``.  Made before the sink listens
        #: for sessions, so that a new session says "online" before the
        #: backlog goes out.
        self.registry = (
            Registry(self.client, station, clock=self._reactor, position=position)
            if registry
            else None
        )
        self.client.on_connected(self._connected)
        #: The MQTT 5 requests' answerer.
        self.commands = RemoteCommands(
            self.client, station, enabled=remote_commands, clock=self._reactor
        )
        #: Messages spooled.
        self.written = 0
        #: Messages the broker acknowledged.
        self.delivered = 0
        #: Messages lost: not spooled (disk trouble, not a record) or
        #: evicted at a spool's bound.
        self.dropped = 0
        #: Publications refused by the broker (an ACL), retried later.
        self.refused = 0
        # Spools a previous run left: their backlog goes out even if their
        # instrument has nothing new to say (it may be unreachable now, or
        # gone from the configuration).
        for name in sorted(os.listdir(spool_dir)):
            if os.path.isfile(os.path.join(spool_dir, name, STATE_FILE)):
                try:
                    self.outbox(name)
                except (OSError, ValueError) as e:
                    self._errors.report(f"cannot open the spool of {name}: {e}")
        self.client.startService()

    def serve(
        self, instrument: StationInstrument, driver_path: str | None = None
    ) -> None:
        """
        Describe an instrument in the registry and answer requests to it.
        (Its samples and events come through
        :func:`~instrumentd.station.sinks.connect_sink`.)

        :param instrument: the instrument.
        :param driver_path: its driver's import path, as configured.
        """
        if self.registry is not None:
            self.registry.add(instrument, driver_path)
        self.commands.add(instrument)

    # -- taking messages -------------------------------------------------------

    def outbox(self, instrument: str) -> _Outbox:
        """
        The instrument's spool and deliveries, opened on first use.

        :raises OSError: if its spool cannot be opened.
        """
        outbox = self._outboxes.get(instrument)
        if outbox is None:
            spool = Spool(
                os.path.join(self.spool_dir, instrument), max_bytes=self._max_bytes
            )
            outbox = self._outboxes[instrument] = _Outbox(instrument, spool)
        return outbox

    def write(self, instrument: str, particle: Particle) -> None:
        """
        Spool one sample for publication.  See :meth:`ISink.write`.
        """
        try:
            record = as_record(instrument, particle)
        except RecordError as e:
            self.dropped += 1
            self._errors.report(f"a sample of {instrument} is not a record: {e}")
            return
        body = b"".join(
            (
                b'{"station":',
                self._station_json.encode(),
                b',"instrument":',
                json.dumps(instrument).encode(),
                b',"record":',
                record.json,
                b"}",
            )
        )
        self._spool(instrument, body)

    def write_event(self, instrument: str, event: DriverEvent) -> None:
        """
        Spool one event for publication.  See :meth:`IEventSink.write_event`.
        """
        if event.event_type is EventType.SAMPLE:
            return
        body = dumps(
            {
                "station": self.station,
                "instrument": instrument,
                "event": event.to_dict(),
            }
        ).encode("utf-8")
        self._spool(instrument, body)

    def _spool(self, instrument: str, body: bytes) -> None:
        if self._closed is not None:
            self.dropped += 1
            return
        try:
            outbox = self.outbox(instrument)
            evicted = outbox.spool.evicted
            outbox.spool.append_encoded(body)
        except OSError as e:
            self.dropped += 1
            self._errors.report(f"cannot spool a message of {instrument}: {e}")
            return
        if outbox.spool.evicted != evicted:
            self.dropped += outbox.spool.evicted - evicted
            outbox.note_bound()
        self.written += 1
        self._send(outbox)

    # -- delivering them ------------------------------------------------------------

    def _connected(self, connection: MQTTConnection) -> None:
        # A new session: what the last one left unacknowledged goes first.
        for outbox in self._outboxes.values():
            for sent in outbox.sent:
                if not sent.acked:
                    self._publish(outbox, sent, connection)
            self._send(outbox)

    def _send(self, outbox: _Outbox) -> None:
        connection = self.client.connection
        if connection is None or not connection.open or self._closed is not None:
            return
        if outbox.blocked_until > self._reactor.seconds():
            return
        room = self._window - len(outbox.sent)
        if room <= 0:
            return
        shared = self._max_in_flight - self._in_flight
        if shared <= 0:
            if outbox.spool.unread and outbox not in self._starved:
                self._starved.append(outbox)
            return
        room = min(room, shared)
        try:
            entries = outbox.spool.read(room)
        except OSError as e:
            self._errors.report(f"cannot read the spool of {outbox.instrument}: {e}")
            return
        for entry in entries:
            try:
                topic = _topic_of(self.station, outbox.instrument, entry.line)
            except ValueError:
                self.dropped += 1
                continue
            sent = _Sent(entry.seq, topic, entry.line)
            outbox.sent.append(sent)
            self._in_flight += 1
            self._publish(outbox, sent, connection)
        if (
            outbox.spool.unread
            and self._in_flight >= self._max_in_flight
            and outbox not in self._starved
        ):
            self._starved.append(outbox)

    def _publish(
        self, outbox: _Outbox, sent: _Sent, connection: MQTTConnection
    ) -> None:
        publishing = connection.publish(sent.topic, sent.payload, qos=1)

        def acknowledged(_: None) -> None:
            if sent.acked:
                return
            sent.acked = True
            self.delivered += 1
            outbox.refusals = 0
            self._errors.clear()
            self._commit(outbox)

        def failed(reason: Failure) -> None:
            if reason.check(PublishRefusedError):
                self.refused += 1
                outbox.refusals += 1
                self._errors.report(str(reason.value))
                self._refused_later(outbox, sent, connection)
            # Otherwise the session is gone: the next one publishes again
            # every message not acknowledged.

        publishing.addCallbacks(acknowledged, failed)

    def _refused_later(
        self, outbox: _Outbox, sent: _Sent, connection: MQTTConnection
    ) -> None:
        # The broker said no (an ACL): try that message again later rather
        # than drop it, so a configuration mistake costs delay, not data;
        # the cursor cannot pass it meanwhile.
        delay = self._retry_policy(outbox.refusals)
        outbox.blocked_until = self._reactor.seconds() + delay

        def again() -> None:
            outbox.blocked_until = 0.0
            if connection.open and not sent.acked:
                self._publish(outbox, sent, connection)
            self._send(outbox)

        self._reactor.callLater(delay, again)

    def _commit(self, outbox: _Outbox) -> None:
        last = None
        while outbox.sent and outbox.sent[0].acked:
            last = outbox.sent.popleft().seq
            self._in_flight -= 1
        if last is None:
            return
        try:
            outbox.spool.commit(last)
        except OSError as e:
            self._errors.report(
                f"cannot record the delivery of {outbox.instrument}'s messages: {e}"
            )
        if outbox.warned_at_bound:
            outbox.note_bound()
        while self._starved and self._in_flight < self._max_in_flight:
            self._send(self._starved.popleft())
        self._send(outbox)

    # -- ISink ---------------------------------------------------------------------

    def flush(self) -> Deferred[None]:
        """
        Everything written is in the spool already; start sending.  See
        :meth:`ISink.flush`.
        """
        for outbox in self._outboxes.values():
            self._send(outbox)
        return succeed(None)

    def close(self) -> Deferred[None]:
        """
        Disconnect from the broker and close the spools; what was not
        acknowledged stays spooled for the next start.  See
        :meth:`ISink.close`.
        """
        if self._closed is not None:
            return self._closed

        def close_spools(result: object) -> None:
            for outbox in self._outboxes.values():
                try:
                    outbox.spool.close()
                except OSError as e:
                    _log.error(
                        "closing the spool of {i}: {e}", i=outbox.instrument, e=e
                    )

        stopping: Deferred[Any] = Deferred()
        self._closed = stopping
        self.commands.stop()
        offline = self.registry.stop() if self.registry is not None else succeed(None)
        done = offline.addBoth(lambda _: self.client.stopService())
        done.addBoth(close_spools).addBoth(lambda _: stopping.callback(None))
        return stopping

    def stats(self) -> dict[str, object]:
        """
        See :meth:`ISink.stats`.

        :returns: ``broker`` (address and client id, never the password),
            ``connected``, ``connections``; ``written`` (spooled),
            ``delivered`` (acknowledged), ``queued`` (spooled, not
            acknowledged), ``in_flight``, ``refused``, ``dropped``, ``evicted``,
            ``spooled_bytes``, ``spool_at_bound``; per
            instrument ``last_seq`` and ``delivered_seq``; ``last_error``,
            ``last_failure`` and ``warnings``.
        """
        client = self.client.stats()
        return {
            "broker": client["broker"],
            "connected": client["connected"],
            "connections": client["connections"],
            "broker_error": client["last_error"],
            "written": self.written,
            "delivered": self.delivered,
            "queued": sum(o.spool.pending for o in self._outboxes.values()),
            "in_flight": sum(len(o.sent) for o in self._outboxes.values()),
            "refused": self.refused,
            "dropped": self.dropped,
            "evicted": sum(o.spool.evicted for o in self._outboxes.values()),
            "spooled_bytes": sum(o.spool.disk_bytes for o in self._outboxes.values()),
            "spool_at_bound": any(o.spool.at_bound for o in self._outboxes.values()),
            "instruments": {
                name: {
                    "last_seq": o.spool.last_seq,
                    "delivered_seq": o.spool.delivered,
                }
                for name, o in sorted(self._outboxes.items())
            },
            "last_error": self._errors.last,
            "last_failure": self._errors.last_failure,
            "warnings": self.warnings(),
        }

    def warnings(self) -> list[str]:
        """
        What is losing messages now.

        :returns: a sentence per spool at its bound.
        """
        return [
            f"the spool {o.spool.directory} is at its bound of "
            f"{o.spool.max_bytes} bytes: the oldest undelivered messages are dropped"
            for o in self._outboxes.values()
            if o.spool.at_bound
        ]
