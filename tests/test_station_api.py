"""
Tests for L{instrumentd.station.api}, L{instrumentd.station.instrument},
L{instrumentd.station.sse} and L{instrumentd.station.metrics}: the station's
HTTP JSON API driven in memory with C{treq.testing.StubTreq} against the toy
instrument's driver (and a scripted fake driver for the error paths), plus
one test over a real loopback socket.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import treq
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from instrumentd.driver.driver import InstrumentDriver
from instrumentd.driver.errors import (
    InstrumentCommandError,
    InstrumentConnectionError,
    InstrumentParameterError,
    InstrumentProtocolError,
    InstrumentStateError,
    InstrumentTimeoutError,
    ParameterRule,
)
from instrumentd.driver.events import (
    ConfigChangeEvent,
    DriverEvent,
    ErrorEvent,
    EventBus,
    SampleEvent,
    StateChangeEvent,
)
from instrumentd.interfaces import IInstrumentDriver
from instrumentd.station import metrics
from instrumentd.station.api import StationAPI
from instrumentd.station.instrument import (
    InstrumentBusyError,
    Station,
    StationInstrument,
)
from instrumentd.station.sse import (
    EventStreamParser,
    ServerSentEvent,
    format_comment,
    format_message,
)
from tests.toyinstrument import ToyConnection, ToyLine, ToyProtocol

BASE = "http://station.invalid"


class FakeParticle:
    """
    A particle for sample events, with just what they need.
    """

    stream_name = "fake_sample"

    def __init__(self, **values: object) -> None:
        self.values = values

    def to_dict(self) -> dict[str, object]:
        return {
            "stream_name": self.stream_name,
            "values": [{"value_id": k, "value": v} for k, v in self.values.items()],
        }


@implementer(IInstrumentDriver)
class FakeDriver:
    """
    An L{IInstrumentDriver} whose answers the test scripts: each request
    method answers from C{answers[name]} (a value, an exception, or a
    callable of the arguments returning either or a Deferred) and is
    recorded in C{calls}.
    """

    def __init__(self, clock: Clock | None = None, state: str = "COMMAND") -> None:
        self.events = EventBus(clock if clock is not None else Clock())
        self.state = state
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}
        self.parameters: dict[str, object] = {"INTERVAL": 5, "UNITS": "C"}

    def _answer(self, name: str, *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.calls.append((name, args, kwargs))
        answer = self.answers.get(name)
        if callable(answer):
            answer = answer(*args, **kwargs)
        if isinstance(answer, Deferred):
            return answer
        if isinstance(answer, BaseException):
            return fail(answer)
        return succeed(answer)

    def initialize(self) -> None:
        self.state = "UNCONFIGURED"

    def configure(self, comms_config: Mapping[str, object]) -> None:
        self.state = "DISCONNECTED"

    def connect(self) -> Deferred[None]:
        return self._answer("connect")

    def disconnect(self) -> Deferred[None]:
        return self._answer("disconnect")

    def discover_state(self) -> Deferred[str]:
        return self._answer("discover_state")

    def get_resource_state(self) -> str:
        return self.state

    def get_resource_capabilities(self) -> dict[str, list[str]]:
        return {"commands": ["acquire_sample", "start_autosample"], "parameters": []}

    def get_resource(self, names: list[str] | str) -> Deferred[dict[str, object]]:
        return self._answer("get_resource", names)

    def set_resource(
        self, values: Mapping[str, object], startup: bool = False
    ) -> Deferred[dict[str, object]]:
        return self._answer("set_resource", dict(values))

    def execute_resource(self, command: str, **kwargs: object) -> Deferred[object]:
        return self._answer("execute_resource", command, **kwargs)

    def start_direct(self) -> Deferred[None]:
        return self._answer("start_direct")

    def execute_direct(self, data: bytes) -> Deferred[None]:
        return self._answer("execute_direct", data)

    def stop_direct(self) -> Deferred[str]:
        return self._answer("stop_direct")

    def set_init_params(self, config: Mapping[str, object]) -> None:
        pass

    def apply_startup_params(self) -> Deferred[dict[str, object]]:
        return self._answer("apply_startup_params")

    def get_cached_config(self) -> dict[str, object]:
        return dict(self.parameters)

    def get_config_metadata(self) -> dict[str, object]:
        return {"driver": {"name": "fake"}, "commands": {}, "parameters": {}}

    def sample(self, **values: object) -> None:
        """
        Publish a sample event.
        """
        self.events.publish(SampleEvent(FakeParticle(**values), time=self.events.now()))


class ToyStation:
    """
    A station of two instruments on one clock: C{toy}, the toy instrument
    behind a real L{InstrumentDriver} (in COMMAND), and C{fake}, a
    L{FakeDriver}; the API over it, and a C{StubTreq} to ask it.
    """

    def __init__(self, token: str | None = None, **api_options: Any) -> None:
        from treq.testing import StubTreq

        self.line = ToyLine()
        self.clock = self.line.clock
        self.toy = self.line.toy
        self.driver = InstrumentDriver(
            ToyConnection(self.line), ToyProtocol, clock=self.clock
        )
        self.fake = FakeDriver(self.clock)
        self.stats: dict[str, Any] = {
            "instrument": {"bytes_in": 1200, "bytes_out": 40},
            "packets": 31,
            "bytes_dropped": 0,
            "datalog": {"bytes_dropped": 0},
        }
        self.toy_instrument = StationInstrument(
            "toy",
            self.driver,
            port_agent={"pid": 4321, "ports": {"data": 4001, "command": 4002}},
            stats_source=lambda: self.stats,
            clock=self.clock,
        )
        self.fake_instrument = StationInstrument(
            "fake", self.fake, self.fake.events, clock=self.clock
        )
        self.station = Station(
            [self.toy_instrument, self.fake_instrument], clock=self.clock
        )
        self.api = StationAPI(
            self.station, token=token, clock=self.clock, **api_options
        )
        self.http = StubTreq(self.api)
        self.driver.configure({"method": "toy"})
        self.driver.connect()
        self.driver.discover_state()
        self.line.flush()
        assert self.driver.get_resource_state() == "COMMAND"

    def settle(self) -> None:
        """
        Move bytes to and from the toy, and the HTTP traffic, until both
        are quiet.
        """
        for _ in range(3):
            self.clock.advance(0)
            self.line.flush()
            self.http.flush()

    def request(
        self, method: str, path: str, body: object = None, **kwargs: Any
    ) -> Deferred[Any]:
        """
        Start a request; the test settles and takes the result.
        """
        if body is not None:
            kwargs["json"] = body
        return self.http.request(method, BASE + path, **kwargs)


class APITestCase(SynchronousTestCase):
    """
    Helpers for asking a L{ToyStation}.
    """

    def station(self, token: str | None = None, **options: Any) -> ToyStation:
        return ToyStation(token, **options)

    def answer(self, station: ToyStation, requested: Deferred[Any]) -> tuple[int, Any]:
        """
        Settle, then the response's status and JSON body.
        """
        station.settle()
        response = self.successResultOf(requested)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"),
            ["application/json; charset=utf-8"],
        )
        body = self.successResultOf(response.json())
        return response.code, body

    def ask(
        self,
        station: ToyStation,
        method: str,
        path: str,
        body: object = None,
        **kw: Any,
    ) -> tuple[int, Any]:
        """
        Make a request and return its status and JSON body.
        """
        return self.answer(station, station.request(method, path, body, **kw))

    def assertError(
        self, answer: tuple[int, Any], status: int, code: str
    ) -> dict[str, Any]:
        """
        Assert an answer is the JSON error C{code} with C{status}; return
        the error object.
        """
        self.assertEqual(answer[0], status, answer[1])
        error: dict[str, Any] = answer[1]["error"]
        self.assertEqual(error["code"], code)
        self.assertIsInstance(error["message"], str)
        return error


class ReadTests(APITestCase):
    """
    Reading the station: the list, one instrument, parameters, commands,
    health, the index.
    """

    def test_listInstruments(self) -> None:
        """
        C{GET /api/instruments} lists every instrument with its state.
        """
        station = self.station()
        status, body = self.ask(station, "GET", "/api/instruments")
        self.assertEqual(status, 200)
        self.assertEqual(
            [(each["name"], each["state"]) for each in body["instruments"]],
            [("toy", "COMMAND"), ("fake", "COMMAND")],
        )
        self.assertEqual(body["instruments"][0]["samples"], 0)

    def test_trailingSlash(self) -> None:
        """
        A trailing slash names the same resource.
        """
        station = self.station()
        self.assertEqual(self.ask(station, "GET", "/api/instruments/")[0], 200)
        self.assertEqual(self.ask(station, "GET", "/api/instruments/toy/")[0], 200)

    def test_instrument(self) -> None:
        """
        C{GET /api/instruments/{name}} gives the state, capabilities,
        metadata and cached parameters.
        """
        station = self.station()
        status, body = self.ask(station, "GET", "/api/instruments/toy")
        self.assertEqual(status, 200)
        self.assertEqual(body["name"], "toy")
        self.assertEqual(body["state"], "COMMAND")
        self.assertTrue(body["connected"])
        self.assertIn("acquire_status", body["capabilities"]["commands"])
        self.assertEqual(body["metadata"]["driver"]["name"], "toy")
        self.assertEqual(body["parameters"]["INTERVAL"], 5)
        self.assertEqual(body["port_agent"]["ports"]["data"], 4001)
        self.assertEqual(body["counters"]["samples"], 0)

    def test_getParameters(self) -> None:
        """
        C{GET .../parameters} reads every parameter from the instrument,
        or those named in C{?names=} (comma-separated or repeated).
        """
        station = self.station()
        status, body = self.ask(station, "GET", "/api/instruments/toy/parameters")
        self.assertEqual(status, 200)
        self.assertEqual(
            body["parameters"],
            {"INTERVAL": 5, "UNITS": "C", "ECHO": True, "SERIAL": "1234"},
        )
        status, body = self.ask(
            station, "GET", "/api/instruments/toy/parameters?names=UNITS,INTERVAL"
        )
        self.assertEqual(body["parameters"], {"UNITS": "C", "INTERVAL": 5})
        status, body = self.ask(
            station, "GET", "/api/instruments/toy/parameters?names=UNITS&names=SERIAL"
        )
        self.assertEqual(body["parameters"], {"UNITS": "C", "SERIAL": "1234"})

    def test_listCommands(self) -> None:
        """
        C{GET .../commands} lists the commands valid now and every
        command's metadata.
        """
        station = self.station()
        status, body = self.ask(station, "GET", "/api/instruments/toy/commands")
        self.assertEqual(status, 200)
        self.assertIn("acquire_sample", body["available"])
        self.assertNotIn("stop_autosample", body["available"])
        self.assertIn("stop_autosample", body["commands"])

    def test_health(self) -> None:
        """
        C{GET /api/health} is "ok" while every instrument is connected and
        "degraded" otherwise, naming each instrument's state.
        """
        station = self.station()
        status, body = self.ask(station, "GET", "/api/health")
        self.assertEqual((status, body["status"]), (200, "ok"))
        station.fake.state = "INSTRUMENT_DISCONNECTED"
        status, body = self.ask(station, "GET", "/api/health")
        self.assertEqual((status, body["status"]), (200, "degraded"))
        self.assertEqual(
            body["instruments"]["fake"],
            {"state": "INSTRUMENT_DISCONNECTED", "connected": False},
        )

    def test_index(self) -> None:
        """
        C{GET /} and C{GET /api} list the instruments and the endpoints.
        """
        station = self.station()
        for path in ["/", "/api"]:
            status, body = self.ask(station, "GET", path)
            self.assertEqual(status, 200)
            self.assertEqual(body["instruments"], ["toy", "fake"])
            self.assertIn("GET /metrics", body["endpoints"])

    def test_head(self) -> None:
        """
        HEAD is answered as GET, without a body.
        """
        station = self.station()
        requested = station.request("HEAD", "/api/instruments")
        station.settle()
        response = self.successResultOf(requested)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.successResultOf(response.content()), b"")


class RoutingErrorTests(APITestCase):
    """
    Unknown instruments and routes, and unsupported methods.
    """

    def test_unknownInstrument(self) -> None:
        """
        An unknown instrument is a 404 listing the known names, at any
        depth below it.
        """
        station = self.station()
        for method, path in [
            ("GET", "/api/instruments/ctd9"),
            ("PATCH", "/api/instruments/ctd9/parameters"),
        ]:
            error = self.assertError(
                self.ask(station, method, path, {}), 404, "UNKNOWN_INSTRUMENT"
            )
            self.assertEqual(error["known"], ["toy", "fake"])
            self.assertIn("'ctd9'", error["message"])
            self.assertIn("toy, fake", error["message"])

    def test_unknownRoute(self) -> None:
        """
        A path the API does not have is a JSON 404 pointing to C{/api}.
        """
        station = self.station()
        for path in [
            "/nope",
            "/api/nope",
            "/api/instruments/toy/nope",
            "/api/instruments/toy/parameters/INTERVAL",
            "/metrics/x",
        ]:
            error = self.assertError(self.ask(station, "GET", path), 404, "NOT_FOUND")
            self.assertIn("GET /api", error["message"])

    def test_wrongMethod(self) -> None:
        """
        An unsupported method is a JSON 405 with an C{Allow} header.
        """
        station = self.station()
        for method, path, allowed in [
            ("DELETE", "/api/instruments", "GET, HEAD"),
            ("PUT", "/api/instruments/toy/parameters", "GET, PATCH, HEAD"),
            ("GET", "/api/instruments/toy/commands/acquire_sample", "POST"),
            ("GET", "/api/instruments/toy/direct-access", "POST, DELETE"),
            ("POST", "/metrics", "GET, HEAD"),
        ]:
            requested = station.request(method, path)
            station.settle()
            response = self.successResultOf(requested)
            self.assertEqual(response.code, 405, path)
            self.assertEqual(response.headers.getRawHeaders("allow"), [allowed])
            body = self.successResultOf(response.json())
            self.assertEqual(body["error"]["code"], "METHOD_NOT_ALLOWED")
            self.assertIn(method, body["error"]["message"])


class ChangeTests(APITestCase):
    """
    Setting parameters, running commands, discovery and direct access.
    """

    def test_patchParameters(self) -> None:
        """
        C{PATCH .../parameters} sets values on the instrument and answers
        with what changed and the parameters now.
        """
        station = self.station()
        status, body = self.ask(
            station, "PATCH", "/api/instruments/toy/parameters", {"INTERVAL": 9}
        )
        self.assertEqual(status, 200)
        self.assertEqual(body["changed"], {"INTERVAL": 9})
        self.assertEqual(body["parameters"]["INTERVAL"], 9)
        self.assertEqual(station.toy.settings["interval"], "9")

    def test_patchInvalidParameter(self) -> None:
        """
        An invalid value is a 400 naming the parameter and the rule broken,
        and nothing is set.
        """
        station = self.station()
        error = self.assertError(
            self.ask(
                station, "PATCH", "/api/instruments/toy/parameters", {"INTERVAL": 0}
            ),
            400,
            "INSTRUMENT_PARAMETER",
        )
        self.assertEqual(error["parameter"], "INTERVAL")
        self.assertEqual(error["rule"], ParameterRule.RANGE)
        self.assertEqual(error["instrument"], "toy")
        error = self.assertError(
            self.ask(
                station, "PATCH", "/api/instruments/toy/parameters", {"SERIAL": "9"}
            ),
            400,
            "INSTRUMENT_PARAMETER",
        )
        self.assertEqual(error["rule"], ParameterRule.READ_ONLY)
        self.assertEqual(station.toy.settings["interval"], "5")

    def test_badBody(self) -> None:
        """
        A body that is not a JSON object is a 400 naming the problem.
        """
        station = self.station()
        path = "/api/instruments/toy/parameters"
        error = self.assertError(
            self.ask(station, "PATCH", path, data=b'{"INTERVAL": }'), 400, "BAD_JSON"
        )
        self.assertIn("not valid JSON", error["message"])
        self.assertIn("line 1 column 14", error["message"])
        error = self.assertError(
            self.ask(station, "PATCH", path, [1, 2]), 400, "BAD_JSON"
        )
        self.assertIn("must be a JSON object", error["message"])
        error = self.assertError(self.ask(station, "PATCH", path), 400, "BAD_REQUEST")
        self.assertIn("empty", error["message"])
        self.assertError(self.ask(station, "PATCH", path, {}), 400, "BAD_REQUEST")
        error = self.assertError(
            self.ask(
                station, "POST", "/api/instruments/toy/commands/acquire_sample", "x"
            ),
            400,
            "BAD_JSON",
        )

    def test_bodyTooLarge(self) -> None:
        """
        A body over the limit is a 413.
        """
        station = self.station(max_body=100)
        self.assertError(
            self.ask(
                station,
                "PATCH",
                "/api/instruments/toy/parameters",
                {"UNITS": "C" * 200},
            ),
            413,
            "BODY_TOO_LARGE",
        )

    def test_runCommand(self) -> None:
        """
        C{POST .../commands/{command}} runs it with the body's arguments
        and answers with its result and the state after.
        """
        station = self.station()
        status, body = self.ask(
            station, "POST", "/api/instruments/toy/commands/acquire_sample"
        )
        self.assertEqual(status, 200)
        self.assertEqual(body["result"], {"temperature": 21.5, "pressure": 10.12})
        self.assertEqual(
            (body["command"], body["state"]), ("acquire_sample", "COMMAND")
        )
        status, body = self.ask(
            station, "POST", "/api/instruments/toy/commands/take_samples", {"count": 2}
        )
        self.assertEqual(status, 200)
        self.assertEqual(len(body["result"]), 2)
        status, body = self.ask(
            station, "POST", "/api/instruments/toy/commands/start_autosample"
        )
        self.assertEqual((status, body["state"]), (200, "AUTOSAMPLE"))

    def test_commandNotAllowedNow(self) -> None:
        """
        A command not valid in the current state is a 409 naming the state
        and the valid commands.
        """
        station = self.station()
        error = self.assertError(
            self.ask(station, "POST", "/api/instruments/toy/commands/stop_autosample"),
            409,
            "INSTRUMENT_STATE",
        )
        self.assertEqual(error["state"], "COMMAND")
        self.assertEqual(error["input"], "stop_autosample")
        self.assertIn("acquire_sample", error["valid"])
        self.assertIn("acquire_sample", error["message"])

    def test_commandRefused(self) -> None:
        """
        An unknown command or a bad argument is a 400 saying what is valid.
        """
        station = self.station()
        error = self.assertError(
            self.ask(station, "POST", "/api/instruments/toy/commands/fly"),
            400,
            "INSTRUMENT_COMMAND",
        )
        self.assertIn("acquire_sample", error["valid"])
        error = self.assertError(
            self.ask(
                station,
                "POST",
                "/api/instruments/toy/commands/take_samples",
                {"count": 99},
            ),
            400,
            "INSTRUMENT_COMMAND",
        )
        self.assertEqual(error["argument"], "count")

    def test_commandTimeout(self) -> None:
        """
        An instrument that does not answer is a 504 saying what the command
        waited for and how long.
        """
        station = self.station()
        station.toy.hanging = True
        requested = station.request(
            "POST", "/api/instruments/toy/commands/acquire_status"
        )
        station.line.run(30, step=0.5)
        error = self.assertError(
            self.answer(station, requested), 504, "INSTRUMENT_TIMEOUT"
        )
        self.assertIn("timeout", error)
        self.assertIn("no reply", error["message"])

    def test_driverErrorStatuses(self) -> None:
        """
        Each kind of driver error has its status: connection 503, protocol
        502, timeout 504, state 409, parameter and command 400.
        """
        station = self.station()
        path = "/api/instruments/fake/commands/acquire_sample"
        for error, status in [
            (InstrumentConnectionError("the port agent is not reachable"), 503),
            (InstrumentProtocolError("the instrument said ?CMD"), 502),
            (InstrumentTimeoutError("ts", b"S>", 5), 504),
            (InstrumentStateError("AUTOSAMPLE", "ts", ["stop"]), 409),
            (InstrumentParameterError("X", "range", "too big"), 400),
            (InstrumentCommandError("ts", "bad"), 400),
        ]:
            station.fake.answers["execute_resource"] = error
            found = self.assertError(
                self.ask(station, "POST", path), status, error.code
            )
            self.assertEqual(found["message"], error.message)

    def test_unexpectedError(self) -> None:
        """
        A failure that is not a driver error is a 500 that points to the
        log, and is logged.
        """
        station = self.station()
        station.fake.answers["execute_resource"] = ZeroDivisionError("oops")
        error = self.assertError(
            self.ask(station, "POST", "/api/instruments/fake/commands/x"),
            500,
            "INTERNAL_ERROR",
        )
        self.assertIn("ZeroDivisionError", error["message"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_discover(self) -> None:
        """
        C{POST .../discover} discovers the instrument's state.
        """
        station = self.station()
        station.driver.disconnect()
        station.driver.connect()
        self.assertEqual(station.driver.get_resource_state(), "UNKNOWN")
        status, body = self.ask(station, "POST", "/api/instruments/toy/discover")
        self.assertEqual((status, body["state"]), (200, "COMMAND"))

    def test_directAccess(self) -> None:
        """
        C{POST .../direct-access} enters direct access, C{.../input} sends
        bytes, and C{DELETE} leaves it, restoring parameters.
        """
        station = self.station()
        path = "/api/instruments/toy/direct-access"
        status, body = self.ask(station, "POST", path)
        self.assertEqual((status, body["state"]), (200, "DIRECT_ACCESS"))
        status, body = self.ask(
            station, "POST", path + "/input", {"text": "set units=F\r\n"}
        )
        self.assertEqual((status, body["sent"]), (200, 13))
        self.assertEqual(station.toy.settings["units"], "F")
        status, body = self.ask(station, "POST", path + "/input", {"data": "DQo="})
        self.assertEqual((status, body["sent"]), (200, 2))
        status, body = self.ask(station, "DELETE", path)
        self.assertEqual((status, body["state"]), (200, "COMMAND"))
        self.assertEqual(station.toy.settings["units"], "C")

    def test_directInputRefused(self) -> None:
        """
        Direct-access input must be text or base64 data, and is refused
        (409) outside direct access.
        """
        station = self.station()
        path = "/api/instruments/toy/direct-access/input"
        self.assertError(
            self.ask(station, "POST", path, {"bytes": 1}), 400, "BAD_REQUEST"
        )
        error = self.assertError(
            self.ask(station, "POST", path, {"data": "%%%"}), 400, "BAD_REQUEST"
        )
        self.assertIn("base64", error["message"])
        self.assertError(
            self.ask(station, "POST", path, {"text": "ds\r\n"}), 409, "INSTRUMENT_STATE"
        )


class TokenTests(APITestCase):
    """
    With a token configured, changing requests need it.
    """

    def test_tokenRequired(self) -> None:
        """
        A changing request without the token, or with a wrong one, is a 401
        with a challenge and changes nothing; reading needs no token.
        """
        station = self.station(token="s3cret")
        for method, path, body in [
            ("PATCH", "/api/instruments/fake/parameters", {"INTERVAL": 1}),
            ("POST", "/api/instruments/fake/commands/acquire_sample", None),
            ("POST", "/api/instruments/fake/discover", None),
            ("POST", "/api/instruments/fake/direct-access", None),
            ("DELETE", "/api/instruments/fake/direct-access", None),
        ]:
            requested = station.request(method, path, body)
            station.settle()
            response = self.successResultOf(requested)
            self.assertEqual(response.code, 401)
            self.assertEqual(
                response.headers.getRawHeaders("www-authenticate"),
                ['Bearer realm="instrumentd"'],
            )
            error = self.successResultOf(response.json())["error"]
            self.assertEqual(error["code"], "UNAUTHORIZED")
            self.assertIn("Authorization: Bearer", error["message"])
            error = self.assertError(
                self.ask(
                    station, method, path, body, headers={"Authorization": "Bearer no"}
                ),
                401,
                "UNAUTHORIZED",
            )
            self.assertIn("not this station's token", error["message"])
        self.assertEqual(station.fake.calls, [])
        self.assertEqual(self.ask(station, "GET", "/api/instruments/fake")[0], 200)

    def test_tokenAccepted(self) -> None:
        """
        The right token, as a Bearer credential (scheme in any case), lets
        the change through.
        """
        station = self.station(token="s3cret")
        station.fake.answers["execute_resource"] = 42
        for header in ["Bearer s3cret", "bearer s3cret"]:
            status, body = self.ask(
                station,
                "POST",
                "/api/instruments/fake/commands/acquire_sample",
                headers={"Authorization": header},
            )
            self.assertEqual((status, body["result"]), (200, 42))

    def test_noToken(self) -> None:
        """
        Without a configured token, changes need none.
        """
        station = self.station()
        status, _ = self.ask(station, "POST", "/api/instruments/fake/discover")
        self.assertEqual(status, 200)


class SerialisationTests(APITestCase):
    """
    Changes to one instrument are applied one at a time, in order.
    """

    def test_oneAtATime(self) -> None:
        """
        A second change waits until the first has finished; the answers
        come in order; a read is not held up.
        """
        station = self.station()
        pending: list[Deferred[dict[str, object]]] = []

        def set_resource(values: dict[str, object]) -> Deferred[dict[str, object]]:
            pending.append(Deferred())
            return pending[-1]

        station.fake.answers["set_resource"] = set_resource
        path = "/api/instruments/fake/parameters"
        first = station.request("PATCH", path, {"INTERVAL": 7})
        second = station.request("PATCH", path, {"INTERVAL": 8})
        station.settle()
        self.assertEqual([call[1] for call in station.fake.calls], [({"INTERVAL": 7},)])
        self.assertEqual(station.fake_instrument.queued, 2)
        status, _ = self.ask(station, "GET", "/api/instruments/fake")
        self.assertEqual(status, 200)
        self.assertNoResult(first)
        pending[0].callback({"INTERVAL": 7})
        self.assertEqual(self.answer(station, first)[1]["changed"], {"INTERVAL": 7})
        self.assertEqual(
            [call[1] for call in station.fake.calls],
            [({"INTERVAL": 7},), ({"INTERVAL": 8},)],
        )
        self.assertNoResult(second)
        pending[1].callback({"INTERVAL": 8})
        self.assertEqual(self.answer(station, second)[1]["changed"], {"INTERVAL": 8})
        self.assertEqual(station.fake_instrument.queued, 0)

    def test_failureReleasesTurn(self) -> None:
        """
        A change that fails lets the next one run.
        """
        station = self.station()
        path = "/api/instruments/fake/commands/x"
        station.fake.answers["execute_resource"] = InstrumentStateError("A", "x", [])
        first = station.request("POST", path)
        station.settle()
        station.fake.answers["execute_resource"] = "done"
        second = station.request("POST", path)
        self.assertEqual(self.answer(station, first)[0], 409)
        self.assertEqual(self.answer(station, second)[1]["result"], "done")

    def test_toyInOrder(self) -> None:
        """
        Two PATCHes of the toy's interval reach the instrument in the order
        they were sent, and the last one wins.
        """
        station = self.station()
        path = "/api/instruments/toy/parameters"
        first = station.request("PATCH", path, {"INTERVAL": 7})
        second = station.request("PATCH", path, {"INTERVAL": 8})
        self.assertEqual(self.answer(station, first)[0], 200)
        self.assertEqual(self.answer(station, second)[0], 200)
        sets = [line for line in station.toy.commands if line.startswith(b"set")]
        self.assertEqual(sets, [b"set interval=7", b"set interval=8"])
        self.assertEqual(station.toy.settings["interval"], "8")

    def test_busy(self) -> None:
        """
        Past C{max_queued} waiting changes, more are refused with a 503 and
        C{Retry-After}, and nothing is done for them.
        """
        station = self.station()
        station.fake_instrument.max_queued = 1
        station.fake.answers["execute_resource"] = lambda *a, **k: Deferred()
        path = "/api/instruments/fake/commands/acquire_sample"
        station.request("POST", path)
        requested = station.request("POST", path)
        station.settle()
        response = self.successResultOf(requested)
        self.assertEqual(response.code, 503)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])
        error = self.successResultOf(response.json())["error"]
        self.assertEqual(error["code"], InstrumentBusyError.code)
        self.assertEqual(len(station.fake.calls), 1)


def raw_request(site: Site, data: bytes) -> tuple[Any, StringTransport]:
    """
    Feed one raw HTTP request to a fresh connection of C{site}.

    :returns: the channel and its transport.
    """
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(data)
    return channel, transport


class ClientGoneTests(APITestCase):
    """
    A client that goes away before its answer is ready.
    """

    def test_goneMidRequest(self) -> None:
        """
        The change is still made, the answer is not written, and nothing is
        logged as an error.
        """
        station = self.station()
        answer: Deferred[object] = Deferred()
        station.fake.answers["execute_resource"] = answer
        channel, transport = raw_request(
            Site(station.api),
            b"POST /api/instruments/fake/commands/acquire_sample HTTP/1.1\r\n"
            b"Host: x\r\nContent-Length: 0\r\n\r\n",
        )
        self.assertEqual(len(station.fake.calls), 1)
        channel.connectionLost(Failure(ConnectionError("gone")))
        transport.clear()
        answer.callback("late")
        self.assertEqual(transport.value(), b"")
        self.assertEqual(station.fake_instrument.queued, 0)


class EventStreamTests(APITestCase):
    """
    C{GET .../events}: Server-Sent Events.
    """

    def open(
        self, station: ToyStation, path: str = "/api/instruments/fake/events"
    ) -> tuple[Any, list[bytes], list[ServerSentEvent], Deferred[None]]:
        """
        Open a stream; return the response, the raw chunks, the parsed
        events, and the Deferred that fires when the body ends.
        """
        requested = station.request("GET", path)
        station.settle()
        response = self.successResultOf(requested)
        chunks: list[bytes] = []
        events: list[ServerSentEvent] = []
        parser = EventStreamParser(events.append)

        def collect(data: bytes) -> None:
            if getattr(self, "hang_up", False):
                raise ConnectionAbortedError("the client hangs up")
            chunks.append(data)
            parser.feed(data)

        done = treq.collect(response, collect)
        return response, chunks, events, done

    def test_framing(self) -> None:
        """
        The stream is C{text/event-stream}; it opens with a comment, and
        each event arrives as C{event:} and C{data:} lines (the event's JSON
        with the instrument's name) ending in a blank line.
        """
        station = self.station()
        response, chunks, events, done = self.open(station)
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"),
            ["text/event-stream; charset=utf-8"],
        )
        self.assertEqual(b"".join(chunks), b": events of instrument fake\n\n")
        station.fake.sample(temperature=20.5)
        station.fake.events.publish(
            StateChangeEvent("AUTOSAMPLE", "COMMAND", time=station.clock.seconds())
        )
        station.settle()
        text = b"".join(chunks).decode()
        self.assertIn(
            '\n\nevent: SAMPLE\ndata: {"instrument":"fake","type":"SAMPLE"', text
        )
        self.assertTrue(text.endswith("\n\n"))
        self.assertEqual([e.event for e in events], ["SAMPLE", "STATE_CHANGE"])
        sample = json.loads(events[0].data)
        self.assertEqual(sample["particle"]["values"][0]["value"], 20.5)
        self.assertEqual(json.loads(events[1].data)["state"], "AUTOSAMPLE")
        self.assertNoResult(done)
        station.api.close()
        station.settle()
        self.successResultOf(done)

    def test_toySamples(self) -> None:
        """
        Autosample lines from the toy arrive as SAMPLE events, and config
        changes and errors as theirs.
        """
        station = self.station()
        _, _, events, _ = self.open(station, "/api/instruments/toy/events")
        self.ask(station, "PATCH", "/api/instruments/toy/parameters", {"INTERVAL": 2})
        self.ask(station, "POST", "/api/instruments/toy/commands/start_autosample")
        station.line.run(4.5)
        station.driver.events.publish(
            ErrorEvent("INSTRUMENT_PROTOCOL", "junk", time=station.clock.seconds())
        )
        station.settle()
        kinds = [event.event for event in events]
        self.assertIn("CONFIG_CHANGE", kinds)
        self.assertIn("STATE_CHANGE", kinds)
        self.assertEqual(kinds.count("SAMPLE"), 2)
        self.assertEqual(kinds[-1], "ERROR")
        self.assertEqual(station.toy_instrument.samples, 2)
        station.api.close()

    def test_keepAlive(self) -> None:
        """
        After C{keepalive} seconds without an event, a comment is sent; an
        event postpones it.
        """
        station = self.station(keepalive=10.0)
        _, chunks, _, _ = self.open(station)
        chunks.clear()
        station.clock.advance(9)
        station.fake.sample(t=1)
        station.clock.advance(9)
        station.settle()
        self.assertNotIn(b": keep-alive\n\n", b"".join(chunks))
        station.clock.advance(1)
        station.settle()
        self.assertTrue(b"".join(chunks).endswith(b": keep-alive\n\n"))
        station.api.close()

    def test_disconnectUnsubscribes(self) -> None:
        """
        When the client goes away the stream unsubscribes from the bus and
        its keep-alive timer is cancelled.
        """
        station = self.station()
        listeners = station.fake.events.listener_count
        calls = len(station.clock.getDelayedCalls())
        _, _, _, done = self.open(station)
        self.assertEqual(station.fake.events.listener_count, listeners + 1)
        self.assertEqual(station.fake_instrument.streams, 1)
        self.assertEqual(len(station.clock.getDelayedCalls()), calls + 1)
        self.hang_up = True
        station.fake.sample(t=1)
        station.settle()
        self.failureResultOf(done, ConnectionAbortedError)
        self.assertEqual(station.fake.events.listener_count, listeners)
        self.assertEqual(station.fake_instrument.streams, 0)
        self.assertEqual(len(station.clock.getDelayedCalls()), calls)
        self.assertEqual(station.api.streams, set())

    def test_types(self) -> None:
        """
        C{?types=} limits the stream to those event types; an unknown type
        is a 400 listing the known ones.
        """
        station = self.station()
        _, _, events, _ = self.open(station, "/api/instruments/fake/events?types=error")
        station.fake.sample(t=1)
        station.fake.events.publish(ErrorEvent("E", "bad", time=1.0))
        station.settle()
        self.assertEqual([event.event for event in events], ["ERROR"])
        error = self.assertError(
            self.ask(station, "GET", "/api/instruments/fake/events?types=SAMPLES"),
            400,
            "BAD_REQUEST",
        )
        self.assertIn("SAMPLE", error["known"])
        station.api.close()

    def test_slowClientCutOff(self) -> None:
        """
        While the client's connection is full, events are held up to
        C{max_backlog}; then the client is cut off and counted, and the
        instrument is not held back.  Held events are sent once it drains.
        """
        station = self.station(max_backlog=3)
        channel, transport = raw_request(
            Site(station.api),
            b"GET /api/instruments/fake/events HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        self.assertIn(b"text/event-stream", transport.value())
        transport.producer.pauseProducing()
        transport.clear()
        for each in range(3):
            station.fake.sample(n=each)
        self.assertEqual(transport.value(), b"")
        transport.producer.resumeProducing()
        self.assertEqual(transport.value().count(b"event: SAMPLE"), 3)
        transport.producer.pauseProducing()
        for each in range(4):
            station.fake.sample(n=each)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(station.fake_instrument.streams_cut_off, 1)
        self.assertEqual(station.fake.events.listener_count, 1)
        channel.connectionLost(Failure(ConnectionError("aborted")))
        self.assertEqual(station.fake_instrument.streams, 0)


class EventStreamParserTests(SynchronousTestCase):
    """
    L{EventStreamParser} and the writers it reads.
    """

    def test_fields(self) -> None:
        """
        Messages are dispatched on a blank line, with multi-line data,
        ids, comments and the default event name.
        """
        events: list[ServerSentEvent] = []
        comments: list[str] = []
        parser = EventStreamParser(events.append, comments.append)
        parser.feed(
            b"\xef\xbb\xbf: hello\n"
            b"data: one\ndata: two\n\n"
            b"event: X\r\nid: 7\r\ndata:no space\r\nretry: 5\r\n\r\n"
            b"event: empty\n\n"
        )
        self.assertEqual(
            events,
            [
                ServerSentEvent("message", "one\ntwo"),
                ServerSentEvent("X", "no space", "7"),
            ],
        )
        self.assertEqual(comments, ["hello"])

    def test_writers(self) -> None:
        """
        L{format_message} splits data over C{data:} lines, which the parser
        joins again.
        """
        events: list[ServerSentEvent] = []
        parser = EventStreamParser(events.append)
        parser.feed(format_comment("hi") + format_message("E", "a\nb\r\nc"))
        self.assertEqual(events, [ServerSentEvent("E", "a\nb\nc")])

    @given(
        st.lists(
            st.tuples(
                st.text("ABCxyz_", min_size=1, max_size=8),
                st.text(max_size=30).filter(lambda t: "\r" not in t),
            ),
            max_size=5,
        ),
        st.data(),
        st.sampled_from([b"\n", b"\r\n", b"\r"]),
    )
    def test_anyChunking(
        self, messages: list[tuple[str, str]], data: st.DataObject, newline: bytes
    ) -> None:
        """
        However the stream is cut into pieces (even inside a UTF-8
        character or a CRLF), and whichever line break it uses, the same
        messages come out.
        """
        stream = b"".join(
            format_comment("k") + format_message(name, text) for name, text in messages
        ).replace(b"\n", newline)
        cuts = sorted(
            data.draw(st.lists(st.integers(0, len(stream)), max_size=10), "cuts")
        )
        events: list[ServerSentEvent] = []
        parser = EventStreamParser(events.append)
        start = 0
        for cut in [*cuts, len(stream)]:
            parser.feed(stream[start:cut])
            start = cut
        expected = [
            ServerSentEvent(name, "\n".join(text.replace("\r", "").split("\n")))
            for name, text in messages
        ]
        self.assertEqual(events, expected)


class MetricsTests(APITestCase):
    """
    C{GET /metrics}.
    """

    def scrape(self, station: ToyStation) -> tuple[Any, str]:
        requested = station.request("GET", "/metrics")
        station.settle()
        response = self.successResultOf(requested)
        return response, self.successResultOf(response.text())

    def test_exposition(self) -> None:
        """
        The metrics are in the Prometheus text format, with HELP and TYPE
        lines, per-instrument samples, errors, states and the port agent's
        bytes and packets.
        """
        station = self.station()
        station.fake.sample(t=1)
        station.fake.sample(t=2)
        station.fake.events.publish(ErrorEvent("E", "bad", time=1.0))
        response, text = self.scrape(station)
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"),
            ["text/plain; version=0.0.4; charset=utf-8"],
        )
        lines = text.splitlines()
        for line in [
            "# HELP instrumentd_samples_total Samples (data particles) the "
            "instrument's driver produced.",
            "# TYPE instrumentd_samples_total counter",
            'instrumentd_samples_total{instrument="fake"} 2',
            'instrumentd_samples_total{instrument="toy"} 0',
            'instrumentd_stream_samples_total{instrument="fake",stream="fake_sample"} 2',
            'instrumentd_errors_total{instrument="fake"} 1',
            'instrumentd_state{instrument="toy",state="COMMAND"} 1',
            'instrumentd_connected{instrument="toy"} 1',
            "# TYPE instrumentd_state gauge",
            'instrumentd_port_agent_up{instrument="toy"} 1',
            'instrumentd_port_agent_bytes_received_total{instrument="toy"} 1200',
            'instrumentd_port_agent_bytes_sent_total{instrument="toy"} 40',
            'instrumentd_port_agent_packets_total{instrument="toy"} 31',
            "instrumentd_instruments 2",
        ]:
            self.assertIn(line, lines)
        self.assertNotIn('instrumentd_port_agent_up{instrument="fake"}', text)
        for line in lines:
            if not line.startswith("#"):
                name = line.split("{")[0].split(" ")[0]
                self.assertIn(f"# TYPE {name} ", text)

    def test_silentPortAgent(self) -> None:
        """
        A port agent that does not answer delays the scrape by at most the
        timeout, and is reported down.
        """
        station = self.station(metrics_timeout=2.0)
        silent: Deferred[dict[str, Any]] = Deferred()
        station.toy_instrument._stats_source = lambda: silent
        requested = station.request("GET", "/metrics")
        station.settle()
        self.assertNoResult(requested)
        station.clock.advance(2)
        station.settle()
        text = self.successResultOf(self.successResultOf(requested).text())
        self.assertIn('instrumentd_port_agent_up{instrument="toy"} 0', text)
        self.assertNotIn("instrumentd_port_agent_packets_total{", text)

    def test_format(self) -> None:
        """
        Label values are escaped, and numbers written as Prometheus reads
        them.
        """
        family = metrics.MetricFamily("x_total", "counter", "What\nit counts.")
        family.add(3.0, instrument='a"b\\c\nd')
        family.add(0.5)
        family.add(float("inf"), instrument="i")
        self.assertEqual(
            metrics.format_families([family]),
            "# HELP x_total What\\nit counts.\n"
            "# TYPE x_total counter\n"
            'x_total{instrument="a\\"b\\\\c\\nd"} 3\n'
            "x_total 0.5\n"
            'x_total{instrument="i"} +Inf\n',
        )


class PortAgentTests(APITestCase):
    """
    C{GET .../port-agent}.
    """

    def test_portAgent(self) -> None:
        """
        It gives the agent's ports and pid, and its counters.
        """
        station = self.station()
        status, body = self.ask(station, "GET", "/api/instruments/toy/port-agent")
        self.assertEqual(status, 200)
        self.assertEqual(
            body["port_agent"], {"pid": 4321, "ports": {"data": 4001, "command": 4002}}
        )
        self.assertEqual(body["stats"]["packets"], 31)

    def test_changingInfo(self) -> None:
        """
        The information may be a callable, asked each time (a restarted
        agent has a new pid); a failing stats source gives C{null} stats.
        """
        station = self.station()
        pids = iter([10, 11])
        station.toy_instrument._port_agent = lambda: {"pid": next(pids)}
        station.toy_instrument._stats_source = lambda: fail(ConnectionError("down"))
        self.assertEqual(
            self.ask(station, "GET", "/api/instruments/toy/port-agent")[1][
                "port_agent"
            ],
            {"pid": 10},
        )
        body = self.ask(station, "GET", "/api/instruments/toy/port-agent")[1]
        self.assertEqual((body["port_agent"], body["stats"]), ({"pid": 11}, None))

    def test_noPortAgent(self) -> None:
        """
        An instrument without a port agent is a 404 saying so.
        """
        station = self.station()
        self.assertError(
            self.ask(station, "GET", "/api/instruments/fake/port-agent"),
            404,
            "NO_PORT_AGENT",
        )


class StationInstrumentTests(SynchronousTestCase):
    """
    L{StationInstrument} and L{Station} themselves.
    """

    def test_counters(self) -> None:
        """
        It counts samples (by stream), errors (by code), state and config
        changes, keeps the latest sample, and stops counting once closed.
        """
        driver = FakeDriver()
        instrument = StationInstrument("x", driver)
        self.assertIs(instrument.bus, driver.events)
        driver.sample(t=1)
        driver.sample(t=2)
        events: list[DriverEvent] = [
            ErrorEvent("E1", "bad", time=1.0),
            StateChangeEvent("A", time=2.0),
            ConfigChangeEvent({"X": 1}, time=3.0),
        ]
        for event in events:
            driver.events.publish(event)
        self.assertEqual(
            instrument.counters(),
            {
                "samples": 2,
                "samples_by_stream": {"fake_sample": 2},
                "errors": 1,
                "errors_by_code": {"E1": 1},
                "state_changes": 1,
                "config_changes": 1,
                "queued_requests": 0,
                "event_streams": 0,
                "event_streams_cut_off": 0,
            },
        )
        assert instrument.latest_sample is not None
        self.assertEqual(instrument.latest_sample["particle"]["values"][0]["value"], 2)
        instrument.close()
        driver.sample(t=3)
        self.assertEqual(instrument.samples, 2)
        self.assertEqual(driver.events.listener_count, 0)

    def test_exclusiveSynchronous(self) -> None:
        """
        A request that returns a plain value or raises works too, and
        releases the turn.
        """
        instrument = StationInstrument("x", FakeDriver())
        self.assertEqual(self.successResultOf(instrument.exclusive(lambda: 3)), 3)
        self.failureResultOf(instrument.exclusive(lambda: 1 / 0), ZeroDivisionError)
        self.assertEqual(instrument.queued, 0)
        self.assertEqual(self.successResultOf(instrument.exclusive(lambda: 4)), 4)

    def test_duplicateNames(self) -> None:
        """
        Two instruments of one name are refused.
        """
        clock = Clock()
        one = StationInstrument("x", FakeDriver(clock))
        two = StationInstrument("x", FakeDriver(clock))
        self.assertRaises(ValueError, Station, [one, two], clock=clock)

    def test_mappingStation(self) -> None:
        """
        The API also takes a plain mapping of name to instrument.
        """
        from treq.testing import StubTreq

        clock = Clock()
        api = StationAPI({"x": StationInstrument("x", FakeDriver(clock))}, clock=clock)
        http = StubTreq(api)
        response = self.successResultOf(http.get(BASE + "/api/instruments"))
        body = self.successResultOf(response.json())
        self.assertEqual(body["instruments"][0]["name"], "x")

    def test_fakeDriver(self) -> None:
        """
        The test's fake driver provides L{IInstrumentDriver}.
        """
        verifyObject(IInstrumentDriver, FakeDriver())


class RealSocketTests(TestCase):
    """
    The API served by a real C{Site} on a loopback port, asked with treq.
    """

    @defer.inlineCallbacks
    def test_overLoopback(self) -> Any:
        """
        Real GETs work, and an event stream read incrementally receives a
        published event, then ends when the API closes its streams.
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import serverFromString
        from twisted.web.client import Agent, HTTPConnectionPool

        driver = FakeDriver(state="COMMAND")
        driver.events = EventBus(reactor)
        instrument = StationInstrument("ctd", driver, clock=reactor)
        listeners = driver.events.listener_count
        api = StationAPI(
            Station([instrument], clock=reactor),
            clock=reactor,
        )
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            Site(api)
        )
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}"
        pool = HTTPConnectionPool(reactor, persistent=False)
        http = treq.client.HTTPClient(Agent(reactor, pool=pool))

        response = yield http.get(url + "/api/instruments")
        self.assertEqual(response.code, 200)
        body = yield response.json()
        self.assertEqual(body["instruments"][0]["name"], "ctd")

        response = yield http.get(url + "/api/instruments/ctd/events", unbuffered=True)
        self.assertEqual(response.code, 200)
        opened: Deferred[None] = Deferred()
        arrived: Deferred[ServerSentEvent] = Deferred()

        def on_event(event: ServerSentEvent) -> None:
            if not arrived.called:
                arrived.callback(event)

        parser = EventStreamParser(
            on_event, lambda text: None if opened.called else opened.callback(None)
        )
        ended = treq.collect(response, parser.feed)
        yield opened
        driver.sample(temperature=12.25)
        event = yield arrived
        self.assertEqual(event.event, "SAMPLE")
        self.assertEqual(json.loads(event.data)["instrument"], "ctd")
        api.close()
        yield ended
        self.assertEqual(driver.events.listener_count, listeners)
