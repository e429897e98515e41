"""
Tests for L{instrumentd.driver.events}: typed immutable events, their JSON
form, and delivery by L{EventBus}.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from instrumentd.driver.errors import InstrumentStateError
from instrumentd.driver.events import (
    ConfigChangeEvent,
    ConnectionEvent,
    DirectAccessEvent,
    DriverEvent,
    ErrorEvent,
    EventBus,
    EventType,
    IDriverEventListener,
    ResultEvent,
    SampleEvent,
    StateChangeEvent,
    sample_event,
)


class FakeParticle:
    """
    Just enough of a particle for a sample event.
    """

    def to_dict(self) -> dict[str, object]:
        return {"stream_name": "ctd_parsed", "values": []}


class EventTests(SynchronousTestCase):
    """
    Each event type has its type, time, fields and JSON form.
    """

    def test_stateChange(self) -> None:
        """
        A state change carries the new and previous states.
        """
        event = StateChangeEvent("COMMAND", "UNKNOWN", time=12.5)
        self.assertEqual(EventType.STATE_CHANGE, event.event_type)
        self.assertEqual(
            {
                "type": "STATE_CHANGE",
                "time": 12.5,
                "state": "COMMAND",
                "previous": "UNKNOWN",
            },
            json.loads(event.to_json()),
        )

    def test_eventTypes(self) -> None:
        """
        Every event class announces its own L{EventType}.
        """
        self.assertEqual(
            [
                EventType.STATE_CHANGE,
                EventType.CONFIG_CHANGE,
                EventType.SAMPLE,
                EventType.ERROR,
                EventType.RESULT,
                EventType.DIRECT_ACCESS,
                EventType.CONNECTION,
            ],
            [
                StateChangeEvent("A", time=0).event_type,
                ConfigChangeEvent({}, time=0).event_type,
                SampleEvent(FakeParticle(), time=0).event_type,
                ErrorEvent("X", "y", time=0).event_type,
                ResultEvent("c", time=0).event_type,
                DirectAccessEvent(b"", time=0).event_type,
                ConnectionEvent("CONNECTED", time=0).event_type,
            ],
        )

    def test_frozen(self) -> None:
        """
        Events cannot be changed after they are made.
        """
        event = ConnectionEvent("CONNECTED", "agent up", time=1)
        self.assertRaises(
            dataclasses.FrozenInstanceError, setattr, event, "state", "DISCONNECTED"
        )

    def test_configChangeCopied(self) -> None:
        """
        A config change copies its dict and shows it read-only, so neither
        the publisher nor a listener can alter what others receive.
        """
        changes = {"INTERVAL": 10}
        event = ConfigChangeEvent(changes, time=3)
        changes["INTERVAL"] = 20
        self.assertEqual({"INTERVAL": 10}, dict(event.changes))
        with self.assertRaises(TypeError):
            event.changes["INTERVAL"] = 30  # type: ignore[index]
        self.assertEqual(
            {"type": "CONFIG_CHANGE", "time": 3, "changes": {"INTERVAL": 10}},
            event.to_dict(),
        )

    def test_sample(self) -> None:
        """
        A sample event's JSON holds the particle's dict.
        """
        self.assertEqual(
            {
                "type": "SAMPLE",
                "time": 4,
                "particle": {"stream_name": "ctd_parsed", "values": []},
            },
            SampleEvent(FakeParticle(), time=4).to_dict(),
        )

    def test_errorFromError(self) -> None:
        """
        An error event built from an L{InstrumentError} keeps its code,
        message and details.
        """
        error = InstrumentStateError("AUTOSAMPLE", "ds", ["stop"])
        event = ErrorEvent.from_error(error, time=5)
        self.assertEqual(
            {
                "type": "ERROR",
                "time": 5,
                "error_code": "INSTRUMENT_STATE",
                "message": "cannot ds in state AUTOSAMPLE; valid here: stop",
                "details": {"state": "AUTOSAMPLE", "input": "ds", "valid": ["stop"]},
            },
            event.to_dict(),
        )

    def test_resultJSON(self) -> None:
        """
        Command results of kinds JSON lacks (datetimes, enums, tuples) are
        still encoded.
        """
        result = {
            "clock": datetime(2013, 2, 5, 19, 16, 59, tzinfo=UTC),
            "type": EventType.SAMPLE,
            "pair": (1, 2),
        }
        self.assertEqual(
            {
                "type": "RESULT",
                "time": 6,
                "command": "get_clock",
                "result": {
                    "clock": "2013-02-05T19:16:59+00:00",
                    "type": "SAMPLE",
                    "pair": [1, 2],
                },
            },
            json.loads(ResultEvent("get_clock", result, time=6).to_json()),
        )

    def test_directAccess(self) -> None:
        """
        Direct-access bytes are given exactly (base64) and readably (text
        with escapes).
        """
        self.assertEqual(
            {
                "type": "DIRECT_ACCESS",
                "time": 7,
                "data": "Uz7/DQo=",
                "text": "S>\\xff\r\n",
            },
            DirectAccessEvent(b"S>\xff\r\n", time=7).to_dict(),
        )


@implementer(IDriverEventListener)
class RecordingListener:
    """
    An interface-providing listener that records what it receives.
    """

    def __init__(self) -> None:
        self.events: list[DriverEvent] = []

    def event_received(self, event: DriverEvent) -> None:
        self.events.append(event)


class EventBusTests(SynchronousTestCase):
    """
    Tests for L{EventBus}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.bus = EventBus(self.clock)

    def test_now(self) -> None:
        """
        Event times come from the injected clock.
        """
        self.clock.advance(1234.5)
        self.assertEqual(1234.5, self.bus.now())

    def test_callableListener(self) -> None:
        """
        A callable listener receives every published event, in order.
        """
        received: list[DriverEvent] = []
        self.bus.subscribe(received.append)
        first = StateChangeEvent("COMMAND", time=self.bus.now())
        second = ConnectionEvent("CONNECTED", time=self.bus.now())
        self.bus.publish(first)
        self.bus.publish(second)
        self.assertEqual([first, second], received)

    def test_interfaceListener(self) -> None:
        """
        An object providing L{IDriverEventListener} is called through
        C{event_received}.
        """
        listener = RecordingListener()
        self.assertTrue(verifyObject(IDriverEventListener, listener))
        self.bus.subscribe(listener)
        event = ResultEvent("ds", "ok", time=0)
        self.bus.publish(event)
        self.assertEqual([event], listener.events)

    def test_notAListener(self) -> None:
        """
        Subscribing something that can receive no event fails at once.
        """
        self.assertRaises(TypeError, self.bus.subscribe, object())
        self.assertEqual(0, self.bus.listener_count)

    def test_unsubscribe(self) -> None:
        """
        After unsubscribing a listener receives nothing; unsubscribing
        again is harmless.
        """
        received: list[DriverEvent] = []
        unsubscribe = self.bus.subscribe(received.append)
        self.assertEqual(1, self.bus.listener_count)
        unsubscribe()
        unsubscribe()
        self.bus.publish(StateChangeEvent("COMMAND", time=0))
        self.assertEqual([], received)
        self.assertEqual(0, self.bus.listener_count)

    def test_typeFilter(self) -> None:
        """
        A listener subscribed for some event types gets only those.
        """
        received: list[DriverEvent] = []
        self.bus.subscribe(received.append, types=[EventType.SAMPLE])
        sample = SampleEvent(FakeParticle(), time=0)
        self.bus.publish(StateChangeEvent("COMMAND", time=0))
        self.bus.publish(sample)
        self.assertEqual([sample], received)

    def test_raisingListener(self) -> None:
        """
        A listener that raises is logged with its traceback; listeners after
        it still get the event and the publisher sees no exception.
        """

        def broken(event: DriverEvent) -> None:
            raise ZeroDivisionError("listener bug")

        received: list[DriverEvent] = []
        self.bus.subscribe(broken)
        self.bus.subscribe(received.append)
        event = StateChangeEvent("COMMAND", time=0)
        self.bus.publish(event)
        self.assertEqual([event], received)
        self.assertEqual(1, len(self.flushLoggedErrors(ZeroDivisionError)))

    def test_publishFromListener(self) -> None:
        """
        An event published by a listener during delivery is delivered after
        the current one has reached everybody, so all listeners see the
        same order.
        """
        first = StateChangeEvent("COMMAND", time=0)
        follow_up = ConfigChangeEvent({"INTERVAL": 5}, time=0)
        seen_a: list[DriverEvent] = []
        seen_b: list[DriverEvent] = []

        def a(event: DriverEvent) -> None:
            seen_a.append(event)
            if event is first:
                self.bus.publish(follow_up)

        self.bus.subscribe(a)
        self.bus.subscribe(seen_b.append)
        self.bus.publish(first)
        self.assertEqual([first, follow_up], seen_a)
        self.assertEqual([first, follow_up], seen_b)

    def test_unsubscribeDuringDelivery(self) -> None:
        """
        A listener removed by an earlier listener during delivery does not
        receive that event.
        """
        received: list[DriverEvent] = []
        unsubscribe_later = None

        def remover(event: DriverEvent) -> None:
            assert unsubscribe_later is not None
            unsubscribe_later()

        self.bus.subscribe(remover)
        unsubscribe_later = self.bus.subscribe(received.append)
        self.bus.publish(StateChangeEvent("COMMAND", time=0))
        self.assertEqual([], received)

    def test_subscribeBetweenEvents(self) -> None:
        """
        A listener subscribed after events of a type were delivered gets
        the next one of that type, after the earlier listeners; one
        subscribed during a delivery gets the events after it, not that
        one; one unsubscribed and subscribed again gets them again.
        """
        order: list[str] = []
        samples = [SampleEvent(FakeParticle(), time=k) for k in range(4)]
        late: list[str] = []

        def first(event: DriverEvent) -> None:
            order.append("first")
            if event is samples[1]:
                self.bus.subscribe(lambda event: late.append("during"))

        self.bus.subscribe(first, types=[EventType.SAMPLE])
        self.bus.subscribe(
            lambda event: order.append("states"), [EventType.STATE_CHANGE]
        )
        self.bus.publish(samples[0])
        unsubscribe = self.bus.subscribe(lambda event: order.append("second"))
        self.bus.publish(samples[1])
        unsubscribe()
        self.bus.publish(samples[2])
        self.bus.subscribe(lambda event: order.append("third"), [EventType.SAMPLE])
        self.bus.publish(samples[3])
        self.assertEqual(["first", "first", "second", "first", "first", "third"], order)
        self.assertEqual(["during", "during"], late)


class SampleEventTests(SynchronousTestCase):
    """
    L{sample_event} makes what the dataclass's constructor makes.
    """

    def test_same(self) -> None:
        """
        Equal to C{SampleEvent(particle, time=time)}: type, fields, JSON;
        frozen all the same.
        """
        particle = object()
        made = sample_event(particle, 12.5)  # type: ignore[arg-type]
        expected = SampleEvent(particle, time=12.5)  # type: ignore[arg-type]
        self.assertIs(type(made), SampleEvent)
        self.assertEqual(made, expected)
        self.assertEqual(repr(made), repr(expected))
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, made, "time", 1.0)
