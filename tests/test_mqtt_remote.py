"""
Unit tests for :mod:`instrumentd.station.remote`: requests as messages,
answers as publications, with a scripted driver and a clock, so that
waiting in the instrument's turn and expiring can be stepped exactly.
(``tests.test_mqtt_station_e2e`` runs them through a real broker and
station.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.mqtt import Message, MessageProperties, MQTTClient
from instrumentd.station.instrument import StationInstrument
from instrumentd.station.remote import RemoteCommands
from tests.apisupport import FakeDriver


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
