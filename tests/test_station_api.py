"""
Tests for L{instrumentd.station.api} and L{instrumentd.station.instrument}:
the station's HTTP JSON API driven in memory with C{treq.testing.StubTreq}
against the toy instrument's driver (and a scripted fake driver for the
error paths), plus one test over a real loopback socket.
"""

from __future__ import annotations

import json
from typing import Any

import treq
from twisted.internet import defer
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site
from zope.interface.verify import verifyObject

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
    StateChangeEvent,
)
from instrumentd.interfaces import IInstrumentDriver
from instrumentd.station.api import StationAPI
from instrumentd.station.instrument import (
    InstrumentBusyError,
    Station,
    StationInstrument,
)
from instrumentd.station.sse import (
    EventStreamParser,
    ServerSentEvent,
)
from tests.apisupport import BASE, APITestCase, FakeDriver, raw_request


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
            {
                "state": "INSTRUMENT_DISCONNECTED",
                "connected": False,
                "problem": "the instrument link is down",
            },
        )

    def test_index(self) -> None:
        """
        C{GET /api} lists the instruments and the endpoints (C{/} is the
        web page: L{tests.test_station_web}).
        """
        station = self.station()
        for path in ["/api", "/api/"]:
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

    def test_undecodableJSON(self) -> None:
        """
        JSON the API cannot use is a JSON 400 naming the problem, and
        reaches no driver: nesting thousands deep, or deeper than 32
        levels; integers of thousands of digits, or beyond 64 bits; NaN,
        Infinity, and numbers too large to be finite.
        """
        station = self.station()
        path = "/api/instruments/fake/parameters"
        cases = [
            (b'{"A": ' + b"[" * 5000 + b"]" * 5000 + b"}", "too deeply"),
            (b'{"A": ' + b"[" * 33 + b"]" * 33 + b"}", "at most 32 levels"),
            (b'{"A": ' + b"7" * 5000 + b"}", "(5000 digits) is out of range"),
            (b'{"A": -9223372036854775809}', "out of range"),
            (b'{"A": NaN}', "NaN is not a JSON number"),
            (b'{"A": -Infinity}', "-Infinity is not a JSON number"),
            (b'{"A": 1e999}', "1e999 is too large"),
        ]
        for body, message in cases:
            error = self.assertError(
                self.ask(station, "PATCH", path, data=body), 400, "BAD_JSON"
            )
            self.assertIn(message, error["message"])
        self.assertEqual(station.fake.calls, [])
        station.fake.answers["set_resource"] = lambda values: values
        status, body = self.ask(
            station,
            "PATCH",
            path,
            data=b'{"A": 9223372036854775807, "B": [[[1]]], "C": -1.5e300}',
        )
        self.assertEqual(status, 200, body)

    def test_commandArgumentNamedCommand(self) -> None:
        """
        An argument named C{command} is a 400, not a failure of the
        driver's call.
        """
        station = self.station()
        error = self.assertError(
            self.ask(
                station,
                "POST",
                "/api/instruments/fake/commands/acquire_sample",
                {"command": "x"},
            ),
            400,
            "BAD_REQUEST",
        )
        self.assertIn("'command'", error["message"])
        self.assertEqual(station.fake.calls, [])

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
        self.assertEqual(error["command"], "stop_autosample")
        self.assertIn("acquire_sample", error["valid"])
        self.assertIn("acquire_sample", error["message"])
        self.assertNotIn("input", error)

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
            if isinstance(error, InstrumentStateError):
                # Said in the API's words (see tests.test_station_refusals).
                self.assertEqual(
                    found["message"],
                    "cannot run ts in state AUTOSAMPLE; commands valid now: stop",
                )
            else:
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
        self.assertEqual(instrument.latest_sample["record"]["values"]["t"], 2)
        self.assertEqual(instrument.latest_record, instrument.latest_sample["record"])
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
