"""
Unit tests for :mod:`instrumentd.station.remote`: requests as messages,
answers as publications, with a scripted driver and a clock, so that
waiting in the instrument's turn and expiring can be stepped exactly.
(``tests.test_mqtt_station_e2e`` runs them through a real broker and
station.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from instrumentd.mqtt import BrokerSettings, Message, MessageProperties, MQTTClient
from instrumentd.station.instrument import StationInstrument
from instrumentd.station.remote import RemoteCommands
from tests.apisupport import FakeDriver
from tests.brokersupport import Broker


class ClientStandIn:
    """
    What :class:`RemoteCommands` uses of an :class:`MQTTClient`: the
    messages it is given, and what it publishes.
    """

    def __init__(self) -> None:
        self.listeners: list[Callable[[Message], object]] = []
        self.subscriptions: list[str] = []
        self.published: list[tuple[str, bytes, MessageProperties | None]] = []

    def on_message(self, listener: Callable[[Message], object]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def subscribe(self, topic_filter: str, qos: int = 1) -> Deferred[None]:
        self.subscriptions.append(topic_filter)
        return succeed(None)

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: MessageProperties | None = None,
    ) -> Deferred[None]:
        self.published.append((topic, payload, properties))
        return succeed(None)


class RemoteCommandTests(SynchronousTestCase):
    """
    Requests carried out, refused and expired.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.driver = FakeDriver(self.clock)
        self.instrument = StationInstrument(
            "CTD1", cast(Any, self.driver), clock=self.clock
        )
        self.client = ClientStandIn()

    def commands(self, enabled: bool = True) -> RemoteCommands:
        commands = RemoteCommands(
            cast(MQTTClient, self.client), "buoy1", enabled=enabled, clock=self.clock
        )
        commands.add(self.instrument)
        return commands

    def send(
        self,
        request: object,
        *,
        correlation: bytes = b"1",
        expiry: int | None = 60,
        topic: str = "instrumentd/buoy1/CTD1/cmd",
    ) -> None:
        message = Message(
            topic,
            json.dumps(request).encode(),
            qos=1,
            properties=MessageProperties(
                response_topic="replies/op",
                correlation_data=correlation,
                message_expiry_interval=expiry,
            ),
            received=self.clock.seconds(),
        )
        for listener in list(self.client.listeners):
            listener(message)

    def answers(self) -> dict[bytes, Any]:
        found = {}
        for topic, payload, properties in self.client.published:
            self.assertEqual(topic, "replies/op")
            assert properties is not None and properties.correlation_data is not None
            found[properties.correlation_data] = json.loads(payload)
        return found

    def test_subscribes(self) -> None:
        """
        The station's request topics are subscribed to.
        """
        self.commands()
        self.assertEqual(
            self.client.subscriptions,
            ["instrumentd/buoy1/+/cmd", "instrumentd/buoy1/cmd"],
        )

    def test_get(self) -> None:
        """
        A get is answered with the HTTP API's body, with the request's
        correlation data.
        """
        self.commands()
        self.driver.answers["get_resource"] = {"INTERVAL": 5}
        self.send({"op": "get", "names": ["INTERVAL"]}, correlation=b"\x00abc")
        self.assertEqual(
            self.answers(),
            {
                b"\x00abc": {
                    "ok": True,
                    "result": {"instrument": "CTD1", "parameters": {"INTERVAL": 5}},
                }
            },
        )
        self.assertEqual(self.driver.calls, [("get_resource", (["INTERVAL"],), {})])

    def test_expired_in_turn(self) -> None:
        """
        A change that waits its turn behind a slow one past its expiry is
        refused when its turn comes (408 EXPIRED) and never reaches the
        driver; one whose expiry has not passed is carried out.
        """
        self.commands()
        slow: Deferred[object] = Deferred()
        self.driver.answers["execute_resource"] = lambda *a, **k: slow
        self.driver.answers["set_resource"] = {"INTERVAL": 9}
        self.send({"op": "run", "command": "acquire_sample"}, correlation=b"slow")
        self.send(
            {"op": "set", "parameters": {"INTERVAL": 9}}, correlation=b"late", expiry=5
        )
        self.send(
            {"op": "set", "parameters": {"INTERVAL": 9}},
            correlation=b"patient",
            expiry=60,
        )
        self.clock.advance(10)
        slow.callback("done")
        self.clock.advance(0)
        self.clock.advance(0)
        answers = self.answers()
        self.assertEqual(answers[b"slow"]["ok"], True)
        self.assertEqual(answers[b"late"]["ok"], False)
        self.assertEqual(answers[b"late"]["error"]["status"], 408)
        self.assertEqual(answers[b"late"]["error"]["code"], "EXPIRED")
        self.assertEqual(answers[b"patient"]["ok"], True)
        self.assertEqual(
            [call[0] for call in self.driver.calls],
            ["execute_resource", "set_resource"],
        )

    def test_expired_on_arrival(self) -> None:
        """
        A request whose expiry is 0 is refused at once.
        """
        self.commands()
        self.send({"op": "get"}, expiry=0)
        self.assertEqual(self.answers()[b"1"]["error"]["code"], "EXPIRED")
        self.assertEqual(self.driver.calls, [])

    def test_disabled(self) -> None:
        """
        Not enabled: 403, and the driver is not asked anything.
        """
        self.commands(enabled=False)
        self.send({"op": "set", "parameters": {"INTERVAL": 9}})
        error = self.answers()[b"1"]["error"]
        self.assertEqual(
            (error["status"], error["code"]), (403, "REMOTE_COMMANDS_DISABLED")
        )
        self.assertEqual(self.driver.calls, [])

    def test_bad_requests(self) -> None:
        """
        Bad requests are answered 400 with what is wrong; an unknown
        instrument 404 naming the known ones; no Response Topic: dropped.
        """
        self.commands()
        self.send("not an object", correlation=b"a")
        self.send({"op": "fly"}, correlation=b"b")
        self.send({"op": "get"}, correlation=b"c", expiry=None)
        self.send({"op": "set", "parameters": {}}, correlation=b"d")
        self.send({"op": "run"}, correlation=b"e")
        self.send({"op": "get"}, correlation=b"f", topic="instrumentd/buoy1/NOPE/cmd")
        self.send({"op": "get"}, correlation=b"g", topic="instrumentd/buoy1/cmd")
        answers = self.answers()
        self.assertIn("JSON object", answers[b"a"]["error"]["message"])
        self.assertIn(
            "valid: get, set, run, discover, list", answers[b"b"]["error"]["message"]
        )
        self.assertIn("Message Expiry Interval", answers[b"c"]["error"]["message"])
        self.assertIn("at least one parameter", answers[b"d"]["error"]["message"])
        self.assertIn("names its command", answers[b"e"]["error"]["message"])
        self.assertEqual(answers[b"f"]["error"]["status"], 404)
        self.assertEqual(answers[b"f"]["error"]["known"], ["CTD1"])
        self.assertIn("takes only 'list'", answers[b"g"]["error"]["message"])
        for key in b"abcdeg":
            self.assertEqual(answers[bytes([key])]["error"]["status"], 400)
        self.assertEqual(self.driver.calls, [])
        before = len(self.client.published)
        message = Message("instrumentd/buoy1/CTD1/cmd", b'{"op": "get"}', qos=1)
        for listener in self.client.listeners:
            listener(message)
        self.assertEqual(len(self.client.published), before)
        self.flushLoggedErrors()

    def test_list(self) -> None:
        """
        list, on the station's topic, gives each instrument in brief.
        """
        self.commands()
        self.send({"op": "list"}, topic="instrumentd/buoy1/cmd")
        result = self.answers()[b"1"]["result"]
        self.assertEqual(result["station"], "buoy1")
        self.assertEqual([i["name"] for i in result["instruments"]], ["CTD1"])

    def test_other_station(self) -> None:
        """
        Requests to another station's topics are not answered.
        """
        self.commands()
        self.send({"op": "get"}, topic="instrumentd/buoy2/CTD1/cmd")
        self.assertEqual(self.client.published, [])


class RedeliveryTests(SynchronousTestCase):
    """
    A request delivered again (its PUBACK lost) is answered again with its
    first answer, and carried out once.
    """

    setUp = RemoteCommandTests.setUp
    commands = RemoteCommandTests.commands
    send = RemoteCommandTests.send

    def bodies(self) -> list[tuple[bytes, Any]]:
        """
        Every answer published, in order, with its correlation data.
        """
        found = []
        for _topic, payload, properties in self.client.published:
            assert properties is not None and properties.correlation_data is not None
            found.append((properties.correlation_data, json.loads(payload)))
        return found

    def test_after_its_answer(self) -> None:
        """
        A run delivered again after it was answered: the same answer
        again, and the driver asked once.
        """
        commands = self.commands()
        self.driver.answers["execute_resource"] = "done"
        request = {"op": "run", "command": "acquire_sample"}
        self.send(request, correlation=b"r1")
        self.clock.advance(5)
        self.send(request, correlation=b"r1")
        bodies = self.bodies()
        self.assertEqual(len(bodies), 2)
        self.assertEqual(bodies[0], bodies[1])
        self.assertEqual(bodies[0][1]["ok"], True)
        self.assertEqual([call[0] for call in self.driver.calls], ["execute_resource"])
        self.assertEqual(commands.redelivered, 1)

    def test_while_carried_out(self) -> None:
        """
        A set delivered again while it is being carried out: answered
        (twice) once the first delivery's answer is known; the driver is
        asked once.
        """
        self.commands()
        slow: Deferred[object] = Deferred()
        self.driver.answers["set_resource"] = lambda *a, **k: slow
        request = {"op": "set", "parameters": {"INTERVAL": 9}}
        self.send(request, correlation=b"s1")
        self.send(request, correlation=b"s1")
        self.assertEqual(self.bodies(), [])
        slow.callback({"INTERVAL": 9})
        self.clock.advance(0)
        bodies = self.bodies()
        self.assertEqual(len(bodies), 2)
        self.assertEqual(bodies[0], bodies[1])
        self.assertEqual([call[0] for call in self.driver.calls], ["set_resource"])

    def test_other_requests(self) -> None:
        """
        Another correlation, another payload with the same correlation,
        and a request with no Correlation Data are each carried out.
        """
        self.commands()
        self.driver.answers["execute_resource"] = "done"
        self.send({"op": "run", "command": "acquire_sample"}, correlation=b"a")
        self.send({"op": "run", "command": "acquire_sample"}, correlation=b"b")
        self.send({"op": "run", "command": "start_autosample"}, correlation=b"b")
        self.send({"op": "run", "command": "acquire_sample"}, correlation=b"")
        self.send({"op": "run", "command": "acquire_sample"}, correlation=b"")
        self.assertEqual(len(self.driver.calls), 5)

    def test_memory_goes_with_the_expiry(self) -> None:
        """
        Past its expiry a request is forgotten (the broker delivers it no
        more); the memory holds at most REMEMBERED requests, oldest
        forgotten first.
        """
        from instrumentd.station import remote

        commands = self.commands()
        self.driver.answers["execute_resource"] = "done"
        request = {"op": "run", "command": "acquire_sample"}
        self.send(request, correlation=b"x", expiry=10)
        self.clock.advance(10)
        self.send(request, correlation=b"x", expiry=10)
        self.assertEqual(len(self.driver.calls), 2)
        self.clock.advance(10)
        self.patch(remote, "REMEMBERED", 3)
        for n in range(4):
            self.send(request, correlation=b"n%d" % n)
        self.assertEqual(commands.forgotten, 1)
        self.send(request, correlation=b"n3")
        self.send(request, correlation=b"n0")
        self.assertEqual(len(self.driver.calls), 2 + 4 + 1)
        self.assertLessEqual(len(commands._seen), 3)


class BrokerRedeliveryTests(TestCase):
    """
    Through a real Mosquitto: a request whose PUBACK never reached the
    broker is delivered again on the station's next session.
    """

    timeout = 120

    async def test_puback_lost(self) -> None:
        """
        The station's session is persistent and it never acknowledges the
        request (manual acknowledgement, never given: the PUBACK lost);
        its connection drops and comes back, and Mosquitto delivers the
        request again.  The requester gets the same answer twice; the
        driver ran the command once.
        """
        broker = Broker(os.path.abspath(self.mktemp()))
        self.addCleanup(broker.kill)
        await broker.start()
        driver = FakeDriver(cast(Clock, reactor))
        driver.answers["execute_resource"] = "done"
        instrument = StationInstrument(
            "CTD1", cast(Any, driver), clock=cast(Clock, reactor)
        )
        station = MQTTClient(
            BrokerSettings(
                broker.url,
                client_id="station-buoy1",
                clean_start=False,
                session_expiry=300,
                manual_ack=True,
            ),
            reactor=reactor,
            retry_policy=lambda failures: 0.2,
        )
        commands = RemoteCommands(station, "buoy1", enabled=True, clock=reactor)
        commands.add(instrument)
        station.startService()
        self.addCleanup(station.stopService)
        await station.when_connected()
        requester = MQTTClient(
            BrokerSettings(broker.url, client_id="requester"), reactor=reactor
        )
        answers: list[Message] = []
        got: list[tuple[int, Deferred[None]]] = []

        def received(message: Message) -> None:
            answers.append(message)
            for count, waiting in list(got):
                if len(answers) >= count and not waiting.called:
                    waiting.callback(None)

        def answered(count: int) -> Deferred[None]:
            waiting: Deferred[None] = Deferred()
            got.append((count, waiting))
            if len(answers) >= count:
                waiting.callback(None)
            return waiting

        requester.on_message(received)
        requester.startService()
        self.addCleanup(requester.stopService)
        await requester.when_connected()
        await requester.subscribe("replies/op", 1)
        await requester.publish(
            "instrumentd/buoy1/CTD1/cmd",
            b'{"op": "run", "command": "acquire_sample"}',
            properties=MessageProperties(
                response_topic="replies/op",
                correlation_data=b"once",
                message_expiry_interval=120,
            ),
        )
        await answered(1)
        first = station.connection
        assert first is not None and first.transport is not None
        first.transport.abortConnection()  # type: ignore[attr-defined]
        await answered(2)
        self.assertEqual(answers[0].payload, answers[1].payload)
        self.assertEqual(answers[1].properties.correlation_data, b"once")
        self.assertEqual(json.loads(answers[0].payload)["ok"], True)
        self.assertEqual([call[0] for call in driver.calls], ["execute_resource"])
        self.assertEqual(commands.redelivered, 1)
