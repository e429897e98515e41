"""
Tests for ``instrumentctl --broker`` (L{instrumentd.cli._broker}) against a
real Mosquitto broker and a stand-in station made of an MQTT client that
publishes the retained registry and answers requests as a station's
``RemoteCommands`` does (CONTRACTS §2): list, get, set, run and watch, with
the same output as over HTTP, errors with the station's status and
message, an offline station's instruments from its retained messages, and
an unreachable broker.

A real station process answering through the broker is in
``tests.test_mqtt_pipeline``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.trial.unittest import TestCase

from instrumentd.cli.instrumentctl import ExitCode, run
from instrumentd.mqtt import BrokerSettings, Message, MessageProperties, MQTTClient
from tests.brokersupport import Broker
from tests.portsupport import refusing_port
from tests.test_instrumentctl import Capture
from tests.tlssupport import make_certificates

_META = {
    "station": "S1",
    "instrument": "CTD",
    "state": "COMMAND",
    "connected": True,
    "capabilities": {"commands": ["ACQUIRE_SAMPLE", "START_AUTOSAMPLE"]},
    "commands": {"ACQUIRE_SAMPLE": {}, "START_AUTOSAMPLE": {}, "CLOCK_SYNC": {}},
}


class StandInStation:
    """
    What a station with remote commands does on the broker, made by hand.

    :ivar requests: the requests received, decoded.
    """

    def __init__(self, broker: Broker) -> None:
        self.client = MQTTClient(
            BrokerSettings(broker.url, client_id="stand-in-S1"), reactor=reactor
        )
        self.requests: list[dict[str, Any]] = []
        # Answers published and not yet acknowledged by the broker.  The
        # requester has its answer before the broker's PUBACK reaches us,
        # so a test can end first; stopping then would fail these (an
        # unhandled error, logged in whichever test the garbage collector
        # runs in).
        self._answering: set[Deferred[None]] = set()
        self.client.on_message(self._request)
        self.client.subscribe("instrumentd/S1/+/cmd", 1)
        self.client.subscribe("instrumentd/S1/cmd", 1)

    async def start(self) -> None:
        self.client.startService()
        await self.client.when_connected()
        for topic, body in (
            ("instrumentd/S1/status", {"station": "S1", "online": True, "since": "x"}),
            ("instrumentd/S1/CTD/meta", _META),
            (
                "instrumentd/S2/status",
                {"station": "S2", "online": False, "since": "2026-12-07T01:00:00Z"},
            ),
            (
                "instrumentd/S2/ADCP/meta",
                {**_META, "station": "S2", "state": "STREAMING"},
            ),
        ):
            await self.client.publish(topic, json.dumps(body).encode(), retain=True)

    async def stop(self) -> None:
        """
        Stop once every answer is acknowledged.
        """
        if self._answering:
            await DeferredList(list(self._answering))
        await self.client.stopService()

    def _request(self, message: Message) -> None:
        request = json.loads(message.payload)
        self.requests.append(request)
        op = request.get("op")
        if op == "list":
            answer: dict[str, Any] = {
                "ok": True,
                "result": {
                    "station": "S1",
                    "instruments": [
                        {
                            "name": "CTD",
                            "state": "COMMAND",
                            "connected": True,
                            "samples": 12,
                            "latest_sample_time": None,
                            "problem": None,
                        }
                    ],
                },
            }
        elif op == "get":
            answer = {
                "ok": True,
                "result": {"parameters": {"INTERVAL": 5, "OUTPUT_SAL": True}},
            }
        elif op == "set" and "NOPE" in request["parameters"]:
            answer = {
                "ok": False,
                "error": {
                    "status": 400,
                    "code": "BAD_PARAMETER",
                    "message": "no parameter NOPE",
                },
            }
        elif op == "run":
            answer = {
                "ok": True,
                "result": {
                    "command": request["command"],
                    "state": "COMMAND",
                    "result": None,
                },
            }
        else:
            return  # no answer: the requester's timeout
        properties = message.properties
        assert properties.response_topic is not None
        answering = self.client.publish(
            properties.response_topic,
            json.dumps(answer).encode(),
            properties=MessageProperties(correlation_data=properties.correlation_data),
        )
        self._answering.add(answering)

        def done(result: object) -> object:
            self._answering.discard(answering)
            return result

        answering.addBoth(done)


class BrokerCommandTests(TestCase):
    """
    instrumentctl's verbs through a broker.
    """

    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]
        directory = os.path.abspath(self.mktemp())
        self.broker = Broker(directory)
        await self.broker.start()
        self.addCleanup(self.broker.stop)
        self.station = StandInStation(self.broker)
        await self.station.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(self.station.stop()))

    async def ctl(
        self,
        *argv: str,
        interrupted: Deferred[None] | None = None,
        stdout: Capture | None = None,
        stderr: Capture | None = None,
    ) -> tuple[int, str, str]:
        out = stdout if stdout is not None else Capture()
        err = stderr if stderr is not None else Capture()
        code = await run(
            reactor,
            ["--broker", self.broker.url, "--timeout", "30", *argv],
            stdout=out,
            stderr=err,
            environ={},
            interrupted=interrupted,
        )
        return code, out.getvalue(), err.getvalue()

    async def test_list(self) -> None:
        """
        C{list} shows every station's instruments as STATION/INSTRUMENT:
        an online station's from its answer, an offline one's from its
        retained messages, with why.
        """
        code, out, err = await self.ctl("list")
        self.assertEqual((code, err), (ExitCode.OK, ""))
        lines = out.splitlines()
        self.assertEqual(
            lines[0].split(),
            ["NAME", "STATE", "CONNECTED", "SAMPLES", "LATEST", "SAMPLE", "PROBLEM"],
        )
        self.assertEqual(lines[1].split()[:4], ["S1/CTD", "COMMAND", "yes", "12"])
        self.assertIn("S2/ADCP", lines[2])
        self.assertIn("station offline since 2026-12-07T01:00:00Z", lines[2])
        self.assertEqual(self.station.requests, [{"op": "list"}])

    async def test_get_set_run(self) -> None:
        """
        C{get}, C{set} and C{run} send the station's requests and print its
        answers as over HTTP; a refusal exits 1 with the station's message.
        """
        code, out, err = await self.ctl("get", "S1/CTD", "INTERVAL", "OUTPUT_SAL")
        self.assertEqual((code, err), (ExitCode.OK, ""))
        self.assertEqual(
            out.split(), ["PARAMETER", "VALUE", "INTERVAL", "5", "OUTPUT_SAL", "true"]
        )
        code, out, err = await self.ctl("set", "S1/CTD", "NOPE=1")
        self.assertEqual(code, ExitCode.API_ERROR)
        self.assertIn("error: no parameter NOPE", err)
        code, out, err = await self.ctl("run", "S1/CTD", "ACQUIRE_SAMPLE")
        self.assertEqual((code, err), (ExitCode.OK, ""))
        self.assertIn("ACQUIRE_SAMPLE: done; state now COMMAND", out)
        self.assertEqual(
            self.station.requests,
            [
                {"op": "get", "names": ["INTERVAL", "OUTPUT_SAL"]},
                {"op": "set", "parameters": {"NOPE": 1}},
                {"op": "run", "command": "ACQUIRE_SAMPLE", "arguments": {}},
            ],
        )

    async def test_run_lists_commands(self) -> None:
        """
        C{run NAME} alone says the commands, from the retained description.
        """
        code, _, err = await self.ctl("run", "S1/CTD")
        self.assertEqual(code, ExitCode.USAGE)
        self.assertIn("ACQUIRE_SAMPLE, CLOCK_SYNC, START_AUTOSAMPLE", err)
        self.assertIn(
            "valid now (in state COMMAND): ACQUIRE_SAMPLE, START_AUTOSAMPLE", err
        )

    async def test_names(self) -> None:
        """
        An instrument without its station is a usage error saying how to
        name it.
        """
        code, _, err = await self.ctl("get", "CTD")
        self.assertEqual(code, ExitCode.USAGE)
        self.assertIn("STATION/INSTRUMENT", err)

    async def test_no_answer(self) -> None:
        """
        A request nobody answers ends with UNREACHABLE after the timeout.
        """
        code, _, err = await self.ctl("--timeout", "1", "get", "S9/CTD")
        self.assertEqual(code, ExitCode.UNREACHABLE)
        self.assertIn("no answer from station S9", err)

    async def test_watch(self) -> None:
        """
        C{watch} shows samples and events from the data and events topics
        as over HTTP, naming the instruments.
        """
        interrupted: Deferred[None] = Deferred()
        out, err = Capture(), Capture()
        watching = Deferred.fromCoroutine(
            self.ctl("watch", interrupted=interrupted, stdout=out, stderr=err)
        )
        # Said once its subscriptions are made.
        await err.wait_for("watching every instrument")
        record = {
            "record": "instrumentd.sample",
            "version": 2,
            "instrument": "CTD",
            "stream": "ctd_sample",
            "time": "2026-12-07T08:00:00.000000Z",
            "ntp_time": 3974284800.0,
            "values": {"temperature": 10.5},
        }
        event = {
            "type": "STATE_CHANGE",
            "time": 1796630400.0,
            "state": "AUTOSAMPLE",
            "previous": "COMMAND",
        }
        for topic, body in (
            ("instrumentd/S1/CTD/events/STATE_CHANGE", {"seq": 1, "event": event}),
            ("instrumentd/S1/CTD/data/ctd_sample", {"seq": 2, "record": record}),
        ):
            payload = {"station": "S1", "instrument": "CTD", **body}
            await self.station.client.publish(topic, json.dumps(payload).encode())
        await out.wait_for("10.5")
        interrupted.callback(None)
        code, text, _ = await watching
        self.assertEqual(code, ExitCode.OK)
        self.assertIn("S1/CTD state COMMAND -> AUTOSAMPLE", text)
        self.assertIn("S1/CTD ctd_sample:", text)
        self.assertIn("TEMPERATURE", text)


class UnreachableBrokerTests(TestCase):
    """
    A broker that is not there.
    """

    async def test_unreachable(self) -> None:
        """
        No broker at the address: UNREACHABLE after the timeout, with the
        reason.
        """
        err = Capture()
        code = await run(
            reactor,
            [
                "--broker",
                f"mqtt://127.0.0.1:{refusing_port(self)}",
                "--timeout",
                "2",
                "list",
            ],
            stdout=Capture(),
            stderr=err,
            environ={},
        )
        self.assertEqual(code, ExitCode.UNREACHABLE)
        self.assertIn("cannot reach the broker", err.getvalue())


class SecureBrokerTests(TestCase):
    """
    instrumentctl --broker with TLS and a user whose password is in a file.
    """

    timeout = 120

    async def test_tls_and_password(self) -> None:
        """
        Over mqtts:// with --broker-ca, --broker-username and
        --broker-password-file, C{list} works; with a wrong password it is
        UNREACHABLE, saying the broker refused, and nothing is logged as a
        failure; an unreadable password file is a usage error.
        """
        directory = os.path.abspath(self.mktemp())
        certificates = make_certificates(os.path.join(directory, "certs"))
        broker = Broker(
            os.path.join(directory, "broker"),
            users={"operator": "s3cret", "S1": "station"},
            certificates=certificates,
        )
        await broker.start()
        self.addCleanup(broker.stop)
        password = os.path.join(directory, "password")
        with open(password, "w") as f:
            f.write("s3cret\n")
        station = MQTTClient(
            BrokerSettings(
                broker.url,
                client_id="stand-in-S1",
                username="S1",
                password_file=_file(directory, "station-password", "station"),
            ),
            reactor=reactor,
        )
        station.startService()
        self.addCleanup(station.stopService)
        await station.when_connected()
        await station.publish(
            "instrumentd/S1/CTD/meta", json.dumps(_META).encode(), retain=True
        )
        await station.publish(
            "instrumentd/S1/status",
            json.dumps({"station": "S1", "online": False, "since": None}).encode(),
            retain=True,
        )

        async def ctl(*argv: str) -> tuple[int, str, str]:
            out, err = Capture(), Capture()
            code = await run(
                reactor,
                [
                    "--broker",
                    broker.tls_url,
                    "--broker-ca",
                    certificates.ca,
                    "--broker-username",
                    "operator",
                    "--timeout",
                    "5",
                    *argv,
                ],
                stdout=out,
                stderr=err,
                environ={},
            )
            return code, out.getvalue(), err.getvalue()

        code, out, err = await ctl("--broker-password-file", password, "list")
        self.assertEqual((code, err), (ExitCode.OK, ""))
        self.assertIn("S1/CTD", out)
        self.assertIn("station offline", out)
        wrong = _file(directory, "wrong-password", "guess")
        code, out, err = await ctl("--broker-password-file", wrong, "list")
        self.assertEqual(code, ExitCode.UNREACHABLE, err)
        self.assertIn("cannot reach the broker", err)
        self.assertIn("refused the connection: Not authorized", err)
        # The refusal is a line in the log, not a traceback: nothing was
        # logged as a failure (ClientService's NoTransition was, when a
        # refused TLS connection closed after its attempt had ended).
        self.assertEqual(self.flushLoggedErrors(), [])
        code, out, err = await ctl("--broker-password-file", "/nonexistent", "list")
        self.assertEqual(code, ExitCode.USAGE)
        self.assertIn("--broker-password-file: cannot read the file", err)


def _file(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text + "\n")
    return path
