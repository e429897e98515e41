"""
Tests for :class:`instrumentd.station.sinks.MqttSink` against a real
Mosquitto: spooled first, delivered in order with a per-instrument seq
that carries on across a restart of the sink, held while the broker is
away or refuses, and counted.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.python import log
from twisted.trial.unittest import TestCase

from instrumentd.driver.events import StateChangeEvent
from instrumentd.mqtt import BrokerSettings, Message, MQTTClient
from instrumentd.station.sinks import MqttSink
from tests.brokersupport import Broker
from tests.test_mqtt_client import Inbox

TIMEOUT = 60


def particle(n: int) -> dict[str, object]:
    """
    An old-layout particle dict (converted to a record by the sink).
    """
    return {
        "pkt_format_id": "JSON_Data",
        "pkt_version": 1,
        "stream_name": "toy_sample",
        "preferred_timestamp": "port_timestamp",
        "port_timestamp": 3974284800.0 + n,
        "quality_flag": "ok",
        "values": [{"value_id": "n", "value": n}],
    }


def payloads(messages: list[Message], kind: str = "/data/") -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in messages if kind in m.topic]


class MqttSinkTests(TestCase):
    """
    The sink with a real broker.
    """

    timeout = TIMEOUT

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.spool_dir = os.path.join(self.directory, "spool")

    def broker(self, **kwargs: Any) -> Broker:
        broker = Broker(os.path.join(self.directory, "broker"), **kwargs)
        self.addCleanup(broker.kill)
        self.addCleanup(lambda: log.msg("broker log (end):\n" + broker.log()[-4000:]))
        return broker

    def sink(self, broker: Broker, **settings: Any) -> MqttSink:
        sink = MqttSink(
            BrokerSettings(address=broker.url, client_id="station", **settings),
            station="buoy1",
            spool_dir=self.spool_dir,
            reactor=reactor,
            retry_policy=lambda failures: 0.2,
        )
        self.addCleanup(sink.close)
        return sink

    async def watcher(self, broker: Broker, **settings: Any) -> Inbox:
        client = MQTTClient(
            BrokerSettings(address=broker.url, client_id="watcher", **settings),
            reactor=reactor,
            retry_policy=lambda failures: 0.2,
        )
        inbox = Inbox()
        client.on_message(inbox)
        client.subscribe("instrumentd/#", 1)
        client.startService()
        self.addCleanup(client.stopService)
        await client.when_connected()
        return inbox

    async def test_seq_per_instrument_across_restarts(self) -> None:
        """
        Each instrument has its own seq, from 1, shared by data and events;
        a new sink on the same spool carries on from the last seq, even
        once everything was delivered and the spool's segments are gone.
        """
        broker = self.broker()
        await broker.start()
        inbox = await self.watcher(broker)
        sink = self.sink(broker)
        sink.write("A", particle(1))
        sink.write_event("A", StateChangeEvent("COMMAND", time=1.0))
        sink.write("B", particle(2))
        sink.write("A", particle(3))
        first = sink
        await self.until(lambda: first.stats()["delivered"] == 4)
        await sink.close()
        sink = self.sink(broker)
        sink.write("A", particle(4))
        sink.write("B", particle(5))
        await inbox.wait(lambda messages: len(payloads(messages)) >= 5)
        ours = [
            m for m in inbox.messages if "/data/" in m.topic or "/events/" in m.topic
        ]
        got = [(m.topic, json.loads(m.payload)["seq"]) for m in ours]
        # In order per instrument (instruments are independent).
        self.assertEqual(
            [entry for entry in got if "/A/" in entry[0]],
            [
                ("instrumentd/buoy1/A/data/toy_sample", 1),
                ("instrumentd/buoy1/A/events/STATE_CHANGE", 2),
                ("instrumentd/buoy1/A/data/toy_sample", 3),
                ("instrumentd/buoy1/A/data/toy_sample", 4),
            ],
        )
        self.assertEqual(
            [entry for entry in got if "/B/" in entry[0]],
            [
                ("instrumentd/buoy1/B/data/toy_sample", 1),
                ("instrumentd/buoy1/B/data/toy_sample", 2),
            ],
        )
        event = json.loads(
            ours[
                [t for t, _ in got].index("instrumentd/buoy1/A/events/STATE_CHANGE")
            ].payload
        )
        self.assertEqual(
            (event["station"], event["instrument"], event["event"]["type"]),
            ("buoy1", "A", "STATE_CHANGE"),
        )
        record = json.loads(ours[0].payload)["record"]
        self.assertEqual(record["version"], 2)
        self.assertEqual(record["values"], {"n": 1})
        # The broker's PUBACK may come after the watcher has the message.
        await self.until(lambda: sink.stats()["instruments"]["A"]["delivered_seq"] == 4)
        self.assertEqual(sink.stats()["instruments"]["A"]["last_seq"], 4)

    async def test_broker_away(self) -> None:
        """
        With no broker, messages wait in the spool (counted as queued);
        once it is up, they go in order.
        """
        # The test's client has a session the broker keeps (persistence,
        # an orderly stop), so it gets what is published while it is away.
        broker = self.broker(persistence=True)
        await broker.start()
        inbox = await self.watcher(broker, clean_start=False, session_expiry=600)
        await broker.stop()
        sink = self.sink(broker)
        for n in range(200):
            sink.write("A", particle(n))
        stats = sink.stats()
        self.assertEqual(
            (stats["written"], stats["queued"], stats["delivered"]), (200, 200, 0)
        )
        self.assertIs(stats["connected"], False)
        await broker.start()
        await inbox.wait(lambda messages: len(payloads(messages)) >= 200)
        self.assertEqual(
            [p["seq"] for p in payloads(inbox.messages)], list(range(1, 201))
        )
        done: Deferred[None] = Deferred()

        def check() -> None:
            if sink.stats()["delivered"] == 200:
                done.callback(None)
            else:
                reactor.callLater(0.05, check)

        check()
        await done
        self.assertEqual(sink.stats()["queued"], 0)

    async def test_refused_kept_and_retried(self) -> None:
        """
        Publications the ACL refuses are counted and kept, and delivered,
        in order, once the ACL allows them.
        """
        password_file = os.path.join(self.directory, "pw")
        with open(password_file, "w") as f:
            f.write("pw")
        # The watcher's session (and its subscription) outlives the
        # broker's restart: the sink, reconnecting first, may deliver before
        # the watcher has subscribed again, and a clean session would miss
        # those messages.
        broker = self.broker(
            persistence=True,
            users={"station": "pw", "watcher": "pw"},
            acl="user station\ntopic write instrumentd/buoy1/A/events/#\n"
            "user watcher\ntopic read instrumentd/#\n",
        )
        await broker.start()
        inbox = await self.watcher(
            broker,
            username="watcher",
            password_file=password_file,
            clean_start=False,
            session_expiry=600,
        )
        sink = self.sink(broker, username="station", password_file=password_file)
        for n in range(3):
            sink.write("A", particle(n))
        refused: Deferred[None] = Deferred()

        def check() -> None:
            if sink.stats()["refused"] >= 2:
                refused.callback(None)
            else:
                reactor.callLater(0.05, check)

        check()
        await refused
        self.assertEqual(sink.stats()["delivered"], 0)
        self.assertIn("Not authorized", str(sink.stats()["last_failure"]))
        self.assertNotIn("pw", json.dumps(sink.stats()).replace(password_file, ""))
        broker.acl = "user station\ntopic write instrumentd/#\nuser watcher\ntopic read instrumentd/#\n"
        await broker.restart()
        await inbox.wait(lambda messages: len(payloads(messages)) >= 3)
        self.assertEqual([p["seq"] for p in payloads(inbox.messages)][:3], [1, 2, 3])
        self.flushLoggedErrors()
        await deferLater(reactor, 0, lambda: None)

    async def test_resends_unacknowledged(self) -> None:
        """
        Messages published but not acknowledged when the session is lost
        are published again on the next session: the broker is paused
        (SIGSTOP: no PUBACK comes), killed and restarted; every message
        ends up acknowledged and the spool empty.
        """
        broker = self.broker()
        await broker.start()
        sink = self.sink(broker)
        await sink.client.when_connected()
        sink.write("A", particle(0))
        await self.until(lambda: sink.stats()["delivered"] == 1)
        assert broker.process is not None and broker.process.pid is not None
        os.kill(broker.process.pid, signal.SIGSTOP)
        for n in range(1, 6):
            sink.write("A", particle(n))
        self.assertEqual(sink.stats()["in_flight"], 5)
        lost: Deferred[None] = Deferred()
        sink.client.on_disconnected(lambda: lost.called or lost.callback(None))
        await broker.kill()
        await lost
        await broker.start()
        await self.until(lambda: sink.stats()["delivered"] == 6)
        stats = sink.stats()
        self.assertEqual((stats["queued"], stats["in_flight"]), (0, 0))
        self.assertEqual(stats["instruments"]["A"], {"last_seq": 6, "delivered_seq": 6})

    async def until(self, condition: Any) -> None:
        """
        Wait until ``condition()`` is true, looking every 50 ms (the sink's
        counters have no event of their own).
        """
        while not condition():
            await deferLater(reactor, 0.05, lambda: None)

    async def test_in_flight_bounded_across_instruments(self) -> None:
        """
        However many instruments write, no more messages than the
        connection's in-flight limit wait for a PUBACK at once (paho walks
        its whole queue on each one); every instrument gets its turn and
        everything is delivered, in order per instrument.
        """
        broker = self.broker()
        await broker.start()
        inbox = await self.watcher(broker)
        sink = self.sink(broker, max_inflight=20)
        await sink.client.when_connected()
        most = 0
        for n in range(50):
            for instrument in range(10):
                sink.write(f"I{instrument}", particle(n))
                most = max(most, int(sink.stats()["in_flight"]))  # type: ignore[call-overload]
        self.assertEqual(most, 20)
        await self.until(lambda: sink.stats()["delivered"] == 500)
        await inbox.wait(lambda messages: len(payloads(messages)) >= 500)
        for instrument in range(10):
            numbers = [
                json.loads(m.payload)["seq"]
                for m in inbox.messages
                if f"/I{instrument}/data/" in m.topic
            ]
            self.assertEqual(numbers, list(range(1, 51)))

    async def test_bound(self) -> None:
        """
        At the spool's bound the oldest undelivered messages go: counted,
        warned about (in the stats and the log, once), and their seqs are
        missing when delivery resumes; the newest arrive in order.
        """
        from twisted.logger import globalLogPublisher

        logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            from twisted.logger import formatEvent

            logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        broker = self.broker(persistence=True)
        await broker.start()
        inbox = await self.watcher(broker, clean_start=False, session_expiry=600)
        await broker.stop()
        sink = MqttSink(
            BrokerSettings(address=broker.url, client_id="station"),
            station="buoy1",
            spool_dir=self.spool_dir,
            max_bytes=8192,
            reactor=reactor,
            retry_policy=lambda failures: 0.2,
        )
        self.addCleanup(sink.close)
        for n in range(200):
            sink.write("A", particle(n))
        stats = sink.stats()
        self.assertGreater(stats["dropped"], 0)
        self.assertEqual(stats["dropped"], stats["evicted"])
        self.assertIs(stats["spool_at_bound"], True)
        self.assertIn("at its bound of 8192 bytes", stats["warnings"][0])
        self.assertEqual(sum("is at its bound" in line for line in logged), 1)
        dropped = stats["dropped"]
        await broker.start()
        await inbox.wait(
            lambda messages: any(p["seq"] == 200 for p in payloads(messages))
        )
        numbers = [p["seq"] for p in payloads(inbox.messages)]
        self.assertEqual(numbers, list(range(dropped + 1, 201)))
        await self.until(lambda: not sink.stats()["spool_at_bound"])
        self.assertEqual(sum("back under its bound" in line for line in logged), 1)

    async def test_backlog_of_a_silent_instrument(self) -> None:
        """
        A spool left with undelivered messages is delivered by the next
        sink on the directory even if its instrument writes nothing more.
        """
        broker = self.broker(persistence=True)
        await broker.start()
        inbox = await self.watcher(broker, clean_start=False, session_expiry=600)
        await broker.stop()
        sink = self.sink(broker)
        for n in range(5):
            sink.write("quiet", particle(n))
        await sink.close()
        self.sink(broker)
        await broker.start()
        await inbox.wait(lambda messages: len(payloads(messages)) >= 5)
        self.assertEqual([p["seq"] for p in payloads(inbox.messages)], [1, 2, 3, 4, 5])
