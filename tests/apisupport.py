"""
Helpers for the station API tests: a scripted fake driver, a station of
two instruments asked in memory with C{treq.testing.StubTreq}, and raw
requests to a C{Site}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site
from zope.interface import implementer

from instrumentd.driver.driver import InstrumentDriver
from instrumentd.driver.events import (
    EventBus,
    SampleEvent,
)
from instrumentd.interfaces import IInstrumentDriver
from instrumentd.station.api import StationAPI
from instrumentd.station.instrument import (
    Station,
    StationInstrument,
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
