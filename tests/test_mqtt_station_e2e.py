"""
End-to-end tests of the station's MQTT side: real ``twistd instrumentd``
processes with simulated SBE 37s, a real Mosquitto
(:mod:`tests.brokersupport`), and a test client subscribed to the topics.

- the sink delivers every sample, in order, with ``seq``, the same records
  as the station's own files;
- the broker killed and restarted mid-stream, then the station kill -9'd
  and restarted: nothing lost, nothing out of order, ``seq`` carries on;
- the retained registry (status, meta) and the last will;
- commands: a round trip, the HTTP API's errors, refused when not enabled,
  an expired request never run;
- the password never shown.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.python import log
from twisted.trial.unittest import TestCase

from instrumentd.mqtt import BrokerSettings, Message, MessageProperties, MQTTClient
from instrumentd.mqtt.topics import (
    command_topic,
    meta_topic,
    parse_topic,
    station_command_topic,
    status_topic,
)
from instrumentd.station.record import read_record
from tests import test_station_e2e as station_e2e
from tests.brokersupport import Broker
from tests.test_mqtt_client import Inbox
from tests.test_station_e2e import simulated
from tests.tlssupport import make_certificates

STATION = "buoy1"

#: Generous: real processes on a shared machine.
TIMEOUT = 240


def mqtt_sink(broker: Broker, **keys: object) -> str:
    """
    A ``[sinks.mqtt]`` table for ``broker``, with a JSON-lines sink beside
    it (the station's own files, to compare with).
    """
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
    return f"""
[sinks.files]
type = "jsonlines"
flush_interval = 0.1

[sinks.mqtt]
type = "mqtt"
broker = "{broker.url}"
keepalive = 5
{extra}
"""


def seqs(messages: list[Message]) -> list[int]:
    """
    The ``seq`` of each data and events message, in arrival order.
    """
    found = []
    for message in messages:
        parts = parse_topic(message.topic)
        if parts is not None and parts.kind in ("data", "events"):
            found.append(json.loads(message.payload)["seq"])
    return found


def first_copies(messages: list[Message]) -> list[dict[str, Any]]:
    """
    The data and events payloads, each ``seq`` once (the first copy), in
    arrival order.
    """
    seen: set[int] = set()
    kept = []
    for message in messages:
        parts = parse_topic(message.topic)
        if parts is None or parts.kind not in ("data", "events"):
            continue
        payload = json.loads(message.payload)
        if payload["seq"] not in seen:
            seen.add(payload["seq"])
            kept.append(payload)
    return kept


class MQTTStationTests(TestCase):
    """
    A station publishing to a real broker.
    """

    timeout = TIMEOUT

    # The station process and HTTP requests as the station's own
    # end-to-end tests make them.
    start_station = station_e2e.StationEndToEndTests.start_station
    request = station_e2e.StationEndToEndTests.request

    def setUp(self) -> None:
        station_e2e.StationEndToEndTests.setUp(self)  # type: ignore[arg-type]
        self.broker = Broker(os.path.join(self.directory, "broker"))
        self.addCleanup(self.broker.kill)
        self.addCleanup(
            lambda: log.msg("broker log (end):\n" + self.broker.log()[-4000:])
        )

    def station_config(self, sink: str, *, autosample: bool = True) -> str:
        return f'name = "{STATION}"\n{sink}' + simulated(
            "CTD1", autosample=autosample, heartbeat=0
        )

    def watcher(
        self, client_id: str = "watcher", **settings: Any
    ) -> tuple[MQTTClient, Inbox]:
        """
        A test client subscribed to everything under ``instrumentd/``.
        """
        client = MQTTClient(
            BrokerSettings(address=self.broker.url, client_id=client_id, **settings),
            reactor=reactor,
            retry_policy=lambda failures: 0.2,
        )
        inbox = Inbox()
        client.on_message(inbox)
        client.subscribe("instrumentd/#", 1)
        client.startService()
        self.addCleanup(client.stopService)
        return client, inbox

    async def test_every_sample_in_order(self) -> None:
        """
        Every sample the station records reaches the broker once, in
        order, numbered 1, 2, 3, ... with the station's and the
        instrument's names, as the same record as in the station's own
        files; events share the numbering.
        """
        await self.broker.start()
        client, inbox = self.watcher()
        await client.when_connected()
        station = self.start_station(self.station_config(mqtt_sink(self.broker)))
        await station.url

        def enough(messages: list[Message]) -> bool:
            return sum("/data/" in m.topic for m in messages) >= 8

        await inbox.wait(enough)
        station.transport.signalProcess("TERM")  # type: ignore[union-attr]
        await station.ended

        # An orderly stop says so, with the time, before it disconnects;
        # it comes after every message the station published before it.
        def offline(messages: list[Message]) -> bool:
            return any(
                m.topic == status_topic(STATION)
                and json.loads(m.payload)["online"] is False
                for m in messages
            )

        await inbox.wait(offline)
        status = json.loads(inbox.on(status_topic(STATION))[-1].payload)
        self.assertIs(status["online"], False)
        self.assertIsNotNone(status["since"])
        numbers = seqs(inbox.messages)
        self.assertEqual(numbers, list(range(1, len(numbers) + 1)))
        payloads = first_copies(inbox.messages)
        data = [p for p in payloads if "record" in p]
        events = [p for p in payloads if "event" in p]
        self.assertTrue(events, "no events published")
        self.assertIn("STATE_CHANGE", {e["event"]["type"] for e in events})
        for payload in payloads:
            self.assertEqual(payload["station"], STATION)
            self.assertEqual(payload["instrument"], "CTD1")
        record = data[0]["record"]
        self.assertEqual(record["record"], "instrumentd.sample")
        self.assertEqual(record["version"], 2)
        self.assertIn("temperature", json.dumps(record["values"]).lower())
        # The station's own files hold the same records, in the same order.
        files = self.file_records()
        self.assertTrue(files)

        def essence(record: dict[str, Any]) -> tuple[object, ...]:
            return (record["stream"], record["ntp_time"], record["values"])

        published = [essence(p["record"]) for p in data]
        self.assertEqual(published, [essence(r) for r in files])
        # The topic names the stream.
        first = next(m for m in inbox.messages if "/data/" in m.topic)
        self.assertEqual(
            first.topic, f"instrumentd/{STATION}/CTD1/data/{record['stream']}"
        )

    def file_records(self) -> list[dict[str, Any]]:
        """
        The records of CTD1 in the station's JSON-lines files, in order.
        """
        top = os.path.join(self.directory, "data", "samples", "CTD1")
        records = []
        for stream in sorted(os.listdir(top)):
            folder = os.path.join(top, stream)
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                with open(os.path.join(folder, name)) as f:
                    records += [
                        read_record(json.loads(line)) for line in f if line.strip()
                    ]
        records.sort(key=lambda r: float(r["ntp_time"]))  # type: ignore[arg-type]
        return records

    async def test_outages(self) -> None:
        """
        The broker is killed mid-stream and restarted; then the station is
        killed (-9) mid-stream and restarted.  Every seq from 1 to the
        last arrives, at least once; the first copies come in order; the
        restarted station carries on the numbering.
        """
        await self.broker.start()
        client, inbox = self.watcher()
        await client.when_connected()
        config = self.station_config(mqtt_sink(self.broker))
        station = self.start_station(config)
        url = await station.url

        def data_count(n: int) -> Callable[[list[Message]], bool]:
            return lambda messages: sum("/data/" in m.topic for m in messages) >= n

        await inbox.wait(data_count(4))

        # The broker dies with the station paused, so that everything the
        # broker acknowledged has reached the test's client first (a
        # sentinel published after it arrives after it); messages the
        # station spools meanwhile are its to deliver later.
        os.kill(station.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        sentinel = "instrumentd/test/sentinel"
        await client.publish(sentinel, b"1")
        await inbox.wait(lambda messages: any(m.topic == sentinel for m in messages))
        lost: Deferred[None] = Deferred()
        unsubscribe = client.on_disconnected(lambda: lost.callback(None))
        await self.broker.kill()
        await lost
        unsubscribe()
        os.kill(station.pid, signal.SIGCONT)  # type: ignore[arg-type]
        # The station samples on with no broker: its spool keeps them.
        before = sum("/data/" in m.topic for m in inbox.messages)
        await station.wait_for("Lost the MQTT broker")
        await self.spooled(url, 3)
        # The broker comes back while the station is paused, so that the
        # test's client has subscribed again before the station sends (the
        # broker keeps no messages for a subscription it does not have).
        os.kill(station.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        back = client.when_connected()
        await self.broker.start()
        await back
        await client.subscribe("instrumentd/#", 1)
        os.kill(station.pid, signal.SIGCONT)  # type: ignore[arg-type]
        await inbox.wait(data_count(before + 6))

        # Now the station dies, and comes back on the same spool.
        os.kill(station.pid, signal.SIGKILL)  # type: ignore[arg-type]
        await station.ended
        last_before_kill = max(seqs(inbox.messages))
        again = self.start_station(config)
        await again.url
        now = len(seqs(inbox.messages))
        await inbox.wait(lambda messages: len(seqs(messages)) >= now + 8)
        again.transport.signalProcess("TERM")  # type: ignore[union-attr]
        await again.ended

        numbers = seqs(inbox.messages)
        self.assertEqual(sorted(set(numbers)), list(range(1, max(numbers) + 1)))
        firsts = [p["seq"] for p in first_copies(inbox.messages)]
        self.assertEqual(firsts, sorted(firsts))
        self.assertGreater(max(numbers), last_before_kill)

    async def spooled(self, url: str, count: int) -> None:
        """
        Wait until the station's MQTT sink has at least ``count`` messages
        spooled and not delivered, asking its health.
        """
        while True:
            health = await self.request("GET", f"{url}/api/health")
            if health["sinks"]["mqtt"]["queued"] >= count:
                return
            await deferLater(reactor, 0.2, lambda: None)

    async def test_registry_and_will(self) -> None:
        """
        The station's status is retained online, each instrument's meta is
        retained with its state, capabilities, parameters, streams, port
        agent and driver, and published again when the state changes; a
        kill -9 makes the broker publish the will: offline.
        """
        await self.broker.start()
        station = self.start_station(
            self.station_config(mqtt_sink(self.broker), autosample=False)
        )
        url = await station.url
        await station.wait_for("Connected to the MQTT broker")
        # A client that comes later gets the retained messages.
        _client, inbox = self.watcher()

        def described(messages: list[Message]) -> bool:
            return any(
                m.topic == meta_topic(STATION, "CTD1")
                and json.loads(m.payload)["state"] == "COMMAND"
                for m in messages
            ) and any(m.topic == status_topic(STATION) for m in messages)

        await inbox.wait(described)
        status = json.loads(inbox.on(status_topic(STATION))[0].payload)
        self.assertEqual(status["station"], STATION)
        self.assertIs(status["online"], True)
        # Retained: a client that subscribes now is sent both at once.
        _late, retained = self.watcher("late")
        await retained.wait(
            lambda messages: (
                {m.topic for m in messages if m.retain}
                >= {status_topic(STATION), meta_topic(STATION, "CTD1")}
            )
        )
        meta = json.loads(inbox.on(meta_topic(STATION, "CTD1"))[-1].payload)
        self.assertEqual(meta["instrument"], "CTD1")
        self.assertIn("INTERVAL", meta["parameters"])
        self.assertIn("commands", meta["capabilities"])
        self.assertTrue(meta["streams"])
        self.assertEqual(meta["driver"]["class"].split(":")[-1], "SBE37Protocol")
        self.assertTrue(meta["driver"].get("name"))
        self.assertIn("ports", meta["port_agent"])

        # A change of state is published again, retained.
        await self.request(
            "POST",
            f"{url}/api/instruments/CTD1/commands/start_autosample",
            {},
            token=None,
        )

        def autosampling(messages: list[Message]) -> bool:
            return any(
                m.topic == meta_topic(STATION, "CTD1")
                and json.loads(m.payload)["state"] == "AUTOSAMPLE"
                for m in messages
            )

        await inbox.wait(autosampling)

        os.kill(station.pid, signal.SIGKILL)  # type: ignore[arg-type]
        await station.ended

        def offline(messages: list[Message]) -> bool:
            return any(
                m.topic == status_topic(STATION)
                and json.loads(m.payload)["online"] is False
                for m in messages
            )

        await inbox.wait(offline)
        self.assertEqual(
            json.loads(inbox.on(status_topic(STATION))[-1].payload),
            {"station": STATION, "online": False, "since": None},
        )

    async def ask(
        self,
        client: MQTTClient,
        inbox: Inbox,
        topic: str,
        request: dict[str, Any],
        *,
        expiry: int | None = 60,
        wait: bool = True,
    ) -> Any:
        """
        Send one request and wait for its answer.
        """
        self._asked = getattr(self, "_asked", 0) + 1
        correlation = f"req-{self._asked}".encode()
        reply_topic = "replies/test"
        await client.publish(
            topic,
            json.dumps(request).encode(),
            properties=MessageProperties(
                response_topic=reply_topic,
                correlation_data=correlation,
                message_expiry_interval=expiry,
            ),
        )
        if not wait:
            return correlation

        def answered(messages: list[Message]) -> bool:
            return any(m.properties.correlation_data == correlation for m in messages)

        await inbox.wait(answered)
        answer = next(
            m for m in inbox.messages if m.properties.correlation_data == correlation
        )
        self.assertEqual(answer.topic, reply_topic)
        return json.loads(answer.payload)

    async def commanding_station(
        self, enabled: bool, **keys: object
    ) -> tuple[Any, MQTTClient, Inbox]:
        await self.broker.start()
        station = self.start_station(
            self.station_config(
                mqtt_sink(self.broker, remote_commands=enabled, **keys),
                autosample=False,
            )
        )
        url = await station.url
        await station.wait_for("Connected to the MQTT broker")
        await station.wait_for("CTD1: running, COMMAND")
        client = MQTTClient(
            BrokerSettings(address=self.broker.url, client_id="operator"),
            reactor=reactor,
        )
        inbox = Inbox()
        client.on_message(inbox)
        client.subscribe("replies/#", 1)
        client.startService()
        self.addCleanup(client.stopService)
        await client.when_connected()
        await client.subscribe("replies/#", 1)
        return (station, url), client, inbox

    async def test_commands(self) -> None:
        """
        get, set, run, discover and list over MQTT 5 request/response; a
        bad request has the HTTP API's status, code and words.
        """
        (_station, url), client, inbox = await self.commanding_station(True)
        topic = command_topic(STATION, "CTD1")
        answer = await self.ask(
            client, inbox, topic, {"op": "get", "names": ["INTERVAL"]}
        )
        self.assertEqual(
            answer,
            {
                "ok": True,
                "result": {"instrument": "CTD1", "parameters": {"INTERVAL": 5}},
            },
        )
        answer = await self.ask(
            client, inbox, topic, {"op": "set", "parameters": {"INTERVAL": 7}}
        )
        self.assertIs(answer["ok"], True)
        self.assertEqual(answer["result"]["parameters"]["INTERVAL"], 7)
        # Discover is for an instrument in an unknown state: refused now,
        # with the HTTP API's own answer.
        answer = await self.ask(client, inbox, topic, {"op": "discover"})
        over_http = await self.request(
            "POST", f"{url}/api/instruments/CTD1/discover", token=None, expected=409
        )
        self.assertEqual(
            answer, {"ok": False, "error": {"status": 409, **over_http["error"]}}
        )
        answer = await self.ask(
            client, inbox, topic, {"op": "run", "command": "acquire_sample"}
        )
        self.assertIs(answer["ok"], True, answer)
        answer = await self.ask(
            client, inbox, station_command_topic(STATION), {"op": "list"}
        )
        self.assertEqual([i["name"] for i in answer["result"]["instruments"]], ["CTD1"])

        # The same refusal as over HTTP.
        bad = {"INTERVAL": "often"}
        over_http = await self.request(
            "PATCH",
            f"{url}/api/instruments/CTD1/parameters",
            bad,
            token=None,
            expected=400,
        )
        answer = await self.ask(client, inbox, topic, {"op": "set", "parameters": bad})
        self.assertEqual(answer["ok"], False)
        self.assertEqual(answer["error"]["status"], 400)
        self.assertEqual(answer["error"]["message"], over_http["error"]["message"])
        self.assertEqual(answer["error"]["code"], over_http["error"]["code"])
        answer = await self.ask(
            client, inbox, command_topic(STATION, "NOPE"), {"op": "get"}
        )
        self.assertEqual(answer["error"]["status"], 404)
        self.assertEqual(answer["error"]["code"], "UNKNOWN_INSTRUMENT")
        answer = await self.ask(client, inbox, topic, {"op": "fly"})
        self.assertEqual(answer["error"]["status"], 400)
        self.assertIn(
            "valid: get, set, run, discover, list", answer["error"]["message"]
        )
        answer = await self.ask(client, inbox, topic, {"op": "get"}, expiry=None)
        self.assertIn("Message Expiry Interval", answer["error"]["message"])

    async def test_commands_disabled(self) -> None:
        """
        Without ``remote_commands = true`` every request is refused (403)
        and nothing is changed.
        """
        (_station, url), client, inbox = await self.commanding_station(False)
        topic = command_topic(STATION, "CTD1")
        answer = await self.ask(
            client, inbox, topic, {"op": "set", "parameters": {"INTERVAL": 9}}
        )
        self.assertEqual(answer["ok"], False)
        self.assertEqual(answer["error"]["status"], 403)
        self.assertEqual(answer["error"]["code"], "REMOTE_COMMANDS_DISABLED")
        read = await self.request(
            "GET", f"{url}/api/instruments/CTD1/parameters?names=INTERVAL"
        )
        self.assertEqual(read["parameters"]["INTERVAL"], 5)

    async def test_expired_never_run(self) -> None:
        """
        A request that expires while the station is away is never run:
        with a persistent session the broker keeps the requests sent
        meanwhile, drops the expired one, and the station carries out only
        the one still valid when it is back.
        """
        (station, url), client, inbox = await self.commanding_station(
            True, session_expiry=3600, client_id="station-buoy1"
        )
        station.transport.signalProcess("TERM")  # type: ignore[union-attr]
        await station.ended
        topic = command_topic(STATION, "CTD1")
        expired = await self.ask(
            client,
            inbox,
            topic,
            {"op": "set", "parameters": {"INTERVAL": 8}},
            expiry=1,
            wait=False,
        )
        # The expiry is a span of real time: let it pass.
        await deferLater(reactor, 2.5, lambda: None)
        valid = await self.ask(
            client,
            inbox,
            topic,
            {"op": "set", "parameters": {"INTERVAL": 6}},
            expiry=600,
            wait=False,
        )
        again = self.start_station(
            self.station_config(
                mqtt_sink(
                    self.broker,
                    remote_commands=True,
                    session_expiry=3600,
                    client_id="station-buoy1",
                ),
                autosample=False,
            )
        )
        url = await again.url

        def answered(messages: list[Message]) -> bool:
            return any(m.properties.correlation_data == valid for m in messages)

        await inbox.wait(answered)
        self.assertEqual(
            [m for m in inbox.messages if m.properties.correlation_data == expired], []
        )
        read = await self.request(
            "GET", f"{url}/api/instruments/CTD1/parameters?names=INTERVAL"
        )
        # The startup value, then the valid request's: never the expired one's.
        self.assertEqual(read["parameters"]["INTERVAL"], 6)
        self.assertNotIn("INTERVAL': 8", again.output)

    async def test_password_never_shown(self) -> None:
        """
        Over TLS (the broker's certificate checked against the CA file),
        with a user and a password file, the station connects; the password
        is in no log line, no API answer, no command line.
        """
        password = "pw-9f3c1d-secret"
        certificates = make_certificates(os.path.join(self.directory, "certs"))
        self.broker = Broker(
            os.path.join(self.directory, "broker-auth"),
            users={"buoy1": password},
            certificates=certificates,
        )
        self.addCleanup(self.broker.kill)
        await self.broker.start()
        password_file = os.path.join(self.directory, "mqtt-password")
        with open(password_file, "w") as f:
            f.write(password + "\n")
        sink = mqtt_sink(
            self.broker,
            username="buoy1",
            password_file=password_file,
            ca_file=certificates.ca,
        ).replace(self.broker.url, self.broker.tls_url)
        station = self.start_station(self.station_config(sink, autosample=False))
        url = await station.url
        await station.wait_for("Connected to the MQTT broker")
        answers = []
        for path in ("/api/health", "/api/instruments/CTD1", "/api", "/metrics"):
            response = await self.http.get(f"{url}{path}")
            answers.append(await response.text())
        with open(f"/proc/{station.pid}/cmdline", "rb") as f:
            command_line = f.read().decode(errors="replace")
        for text in [*answers, station.output, command_line]:
            self.assertNotIn(password, text)
        health = json.loads(answers[0])
        self.assertIs(health["sinks"]["mqtt"]["connected"], True)
        self.assertIn("buoy1", health["sinks"]["mqtt"]["broker"])
        self.assertIn(self.broker.tls_url, health["sinks"]["mqtt"]["broker"])


def documented_acl() -> str:
    """
    The Mosquitto ACL file of ``doc/multi-host.md`` (its Security section),
    as written there.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "doc", "multi-host.md")) as f:
        text = f.read()
    start = text.index("```\n# Each station (user name = station name)") + 4
    return text[start : text.index("```", start)]


class DocumentedACLTests(TestCase):
    """
    The ACL example of ``doc/multi-host.md`` with a real station.
    """

    timeout = TIMEOUT
    start_station = station_e2e.StationEndToEndTests.start_station
    request = station_e2e.StationEndToEndTests.request

    def setUp(self) -> None:
        station_e2e.StationEndToEndTests.setUp(self)  # type: ignore[arg-type]

    def client(self, broker: Broker, user: str) -> tuple[MQTTClient, Inbox]:
        password_file = os.path.join(self.directory, f"{user}.pw")
        with open(password_file, "w") as f:
            f.write(f"{user}-pw")
        client = MQTTClient(
            BrokerSettings(
                address=broker.url,
                client_id=user,
                username=user,
                password_file=password_file,
            ),
            reactor=reactor,
            retry_policy=lambda failures: 0.2,
        )
        inbox = Inbox()
        client.on_message(inbox)
        client.startService()
        self.addCleanup(client.stopService)
        return client, inbox

    async def test_documented_acl(self) -> None:
        """
        With the documented ACL: the station publishes its data and
        registry and answers an operator's request; the collector reads
        what it publishes; the operator cannot publish data in a station's name, and
        another station cannot either.
        """
        users = {
            name: f"{name}-pw" for name in ("buoy1", "buoy2", "operator", "collector")
        }
        broker = Broker(
            os.path.join(self.directory, "broker"), users=users, acl=documented_acl()
        )
        self.addCleanup(broker.kill)
        await broker.start()
        collector, collected = self.client(broker, "collector")
        collector.subscribe("instrumentd/#", 1)
        operator, answers = self.client(broker, "operator")
        operator.subscribe("replies/#", 1)
        await collector.when_connected()
        await operator.when_connected()
        with open(os.path.join(self.directory, "buoy1.pw"), "w") as f:
            f.write("buoy1-pw")
        station = self.start_station(
            f'name = "{STATION}"\n'
            + mqtt_sink(
                broker,
                username="buoy1",
                password_file=os.path.join(self.directory, "buoy1.pw"),
                remote_commands=True,
            )
            + simulated("CTD1", autosample=False, heartbeat=0)
        )
        await station.url
        await station.wait_for("CTD1: running, COMMAND")
        await station.wait_for("Connected to the MQTT broker")
        await collected.wait(
            lambda messages: (
                any("/data/" in m.topic for m in messages)
                and any(m.topic == status_topic(STATION) for m in messages)
                and any(m.topic == meta_topic(STATION, "CTD1") for m in messages)
            )
        )
        await operator.publish(
            command_topic(STATION, "CTD1"),
            b'{"op": "get", "names": ["INTERVAL"]}',
            properties=MessageProperties(
                response_topic="replies/operator/1",
                correlation_data=b"1",
                message_expiry_interval=60,
            ),
        )
        await answers.wait(lambda messages: len(messages) >= 1)
        answer = json.loads(answers.messages[0].payload)
        self.assertEqual(
            answer.get("result", {}).get("parameters"), {"INTERVAL": 5}, answer
        )
        forged = f"instrumentd/{STATION}/CTD1/data/x"
        from instrumentd.mqtt import PublishRefusedError

        await self.assertFailure(operator.publish(forged, b"{}"), PublishRefusedError)
        other, _ = self.client(broker, "buoy2")
        await other.when_connected()
        await self.assertFailure(other.publish(forged, b"{}"), PublishRefusedError)
        await other.publish("instrumentd/buoy2/CTD9/data/x", b"{}")
