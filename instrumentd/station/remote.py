# -*- test-case-name: tests.test_mqtt_remote -*-
"""
Commands across hosts: MQTT 5 requests to the station's instruments,
answered on the request's Response Topic with its Correlation Data.

A request is a QoS 1 message on ``instrumentd/{station}/{instrument}/cmd``
(or ``instrumentd/{station}/cmd`` for ``list``) whose payload is a JSON
object::

    {"op": "get", "names": ["INTERVAL"]}          names optional: all
    {"op": "set", "parameters": {"INTERVAL": 10}}
    {"op": "run", "command": "START_AUTOSAMPLE", "arguments": {}}
    {"op": "discover"}
    {"op": "list"}

with the MQTT 5 properties Response Topic (required: a request that has
none cannot be answered and is dropped, logged), Correlation Data (echoed)
and Message Expiry Interval (required).  The answer is
``{"ok": true, "result": <the HTTP API's body>}`` or ``{"ok": false,
"error": {"status": <the HTTP status>, "code", "message", ...}}`` with the
HTTP API's statuses, codes and words
(:mod:`instrumentd.station.api._operations` does both).

Changes (set, run, discover) take the instrument's turn, one at a time, in
arrival order, with the HTTP API's own requests.  **An expired request is
never run**: the broker drops a request whose expiry passes before it is
delivered, and the station checks it again when its turn comes (it may
have waited behind others) and refuses it then (``408 EXPIRED``).  The
station refuses every request (``403 REMOTE_COMMANDS_DISABLED``) unless
its MQTT sink has ``remote_commands = true``; who may publish requests at
all is for the broker's authentication and ACLs.

**A request is carried out at most once** per (Response Topic,
Correlation Data) within its expiry.  The station acknowledges a request
when it arrives; if that PUBACK is lost (the link drops), the broker
delivers the request again on the next session.  The station remembers
each request with Correlation Data (and its payload) until its expiry
passes (at most :data:`REMEMBERED` of them, the oldest forgotten first)
and answers a delivery it has seen with the first answer again, once that
answer is known, without carrying it out.  A request without Correlation
Data is carried out each time it is delivered; the memory is the
process's, so a request redelivered after the station restarted is
carried out again.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from instrumentd.mqtt import Message, MessageProperties, MQTTClient
from instrumentd.mqtt.topics import command_topic, parse_topic, station_command_topic
from instrumentd.station.api._errors import Refusal, refusal_for
from instrumentd.station.api._operations import (
    discover,
    read_parameters,
    run_command,
    set_parameters,
    unknown_instrument,
)

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from instrumentd.station.instrument import StationInstrument

__all__ = ["OPERATIONS", "RemoteCommands"]

_log = Logger()

#: The operations a request may ask for.
OPERATIONS: Final = ("get", "set", "run", "discover", "list")

#: Answers expire after this long at the broker, seconds: a requester that
#: has gone does not get them on its next session.
RESPONSE_EXPIRY: Final = 300

#: Requests remembered at most, to answer a redelivery without carrying
#: it out again; past this the oldest is forgotten first.
REMEMBERED: Final = 4096


@dataclass
class _Seen:
    """
    A request carried out (or being carried out), remembered until its
    expiry for the deliveries of it that follow.

    :ivar payload: the request's payload: a different request that reuses
        the Correlation Data is not a redelivery.
    :ivar deadline: when the request expires (reactor seconds).
    :ivar answer: the answer once known.
    :ivar waiting: the properties of redeliveries that came before it.
    """

    payload: bytes
    deadline: float
    answer: dict[str, object] | None = None
    waiting: list[MessageProperties] = field(default_factory=list)


class RemoteCommands:
    """
    Answers MQTT 5 requests to the instruments it serves.

    :param client: the MQTT client.
    :param station: the station's name.
    :param enabled: whether requests are carried out; when not, each is
        answered 403.
    :param clock: the reactor's clock (its ``seconds()`` must be the one
        :attr:`instrumentd.mqtt.Message.received` is stamped with).
    :ivar answered: requests answered.
    :ivar expired: requests refused because they expired before their
        turn.
    :ivar redelivered: deliveries of a request already carried out (or
        being carried out), answered with its answer and not carried out
        again.
    :ivar forgotten: requests forgotten before their expiry because
        :data:`REMEMBERED` others came after them.
    """

    def __init__(
        self,
        client: MQTTClient,
        station: str,
        *,
        enabled: bool,
        clock: IReactorTime,
    ) -> None:
        self._client = client
        self.station = station
        self.enabled = enabled
        self._clock = clock
        self.instruments: dict[str, StationInstrument] = {}
        self.answered = 0
        self.expired = 0
        self.ran = 0
        self.redelivered = 0
        self.forgotten = 0
        self._seen: OrderedDict[tuple[str, bytes], _Seen] = OrderedDict()
        self._stop = client.on_message(self._received)
        client.subscribe(f"{command_topic(station, '+')}", 1)
        client.subscribe(station_command_topic(station), 1)

    def add(self, instrument: StationInstrument) -> None:
        """
        Answer requests to this instrument.
        """
        self.instruments[instrument.name] = instrument

    def stop(self) -> None:
        """
        Stop taking requests.
        """
        self._stop()

    # -- a request ------------------------------------------------------------

    def _received(self, message: Message) -> None:
        parts = parse_topic(message.topic)
        if parts is None or parts.kind != "cmd" or parts.station != self.station:
            return
        properties = message.properties
        if not properties.response_topic:
            _log.warn(
                "A request on {topic} has no Response Topic; it cannot be "
                "answered and is dropped",
                topic=message.topic,
            )
            return
        key = _key(properties)
        if key is not None and self._redelivered(key, message):
            return
        seen = self._remember(key, message) if key is not None else None
        answering = maybeDeferred(self._carry_out, parts.instrument, message)
        answering.addCallbacks(
            lambda result: {"ok": True, "result": result},
            lambda reason: self._error(reason, parts.instrument),
        )
        answering.addCallback(self._settle, properties, seen)

    def _redelivered(self, key: tuple[str, bytes], message: Message) -> bool:
        """
        Answer a delivery of a request already carried out (or being
        carried out) with its first answer.

        :returns: whether ``message`` is such a delivery (then it is dealt
            with: answered now, or once the first answer is known).
        """
        now = self._clock.seconds()
        # Memories go with their request's expiry: by then the broker does
        # not deliver it again (its copies expire with it).
        for old, entry in list(self._seen.items()):
            if entry.deadline <= now:
                del self._seen[old]
        seen = self._seen.get(key)
        if seen is None or seen.payload != message.payload:
            return False
        self.redelivered += 1
        _log.info(
            "A request on {topic} was delivered again (its PUBACK was lost); "
            "answering it with its first answer, not carrying it out again",
            topic=message.topic,
        )
        if seen.answer is not None:
            self._answer(seen.answer, message.properties)
        else:
            seen.waiting.append(message.properties)
        return True

    def _remember(self, key: tuple[str, bytes], message: Message) -> _Seen:
        """
        Remember a request until its expiry, at most :data:`REMEMBERED`
        of them.
        """
        while len(self._seen) >= REMEMBERED:
            (topic, _), _seen = self._seen.popitem(last=False)
            self.forgotten += 1
            _log.warn(
                "More than {count} requests within their expiry: the oldest "
                "(answered on {topic}) is forgotten, and would be carried "
                "out again if it were delivered again",
                count=REMEMBERED,
                topic=topic,
            )
        expiry = message.properties.message_expiry_interval
        assert expiry is not None
        seen = _Seen(message.payload, message.received + expiry)
        # A different request reusing the key replaces the memory.
        self._seen.pop(key, None)
        self._seen[key] = seen
        return seen

    def _settle(
        self,
        body: dict[str, object],
        properties: MessageProperties,
        seen: _Seen | None,
    ) -> None:
        if seen is not None:
            seen.answer = body
            waiting, seen.waiting = seen.waiting, []
            for each in waiting:
                self._answer(body, each)
        self._answer(body, properties)

    def _carry_out(self, name: str | None, message: Message) -> Deferred[Any] | Any:
        if not self.enabled:
            raise Refusal(
                403,
                "REMOTE_COMMANDS_DISABLED",
                f"station {self.station} does not take commands over MQTT; set "
                "remote_commands = true in its MQTT sink to allow them",
            )
        expiry = message.properties.message_expiry_interval
        if expiry is None:
            raise Refusal(
                400,
                "BAD_REQUEST",
                "a request must carry a Message Expiry Interval (MQTT 5), so "
                "that it is never carried out later than its sender meant",
            )
        deadline = message.received + expiry
        guard = self._guard(deadline, expiry)
        guard()
        request = _request(message.payload)
        op = request.get("op")
        if op == "list":
            return {
                "station": self.station,
                "instruments": [each.summary() for each in self.instruments.values()],
            }
        if name is None:
            raise Refusal(
                400,
                "BAD_REQUEST",
                f"the station's own topic takes only 'list'; send {op!r} to "
                f"{command_topic(self.station, '<instrument>')}",
            )
        instrument = self.instruments.get(name)
        if instrument is None:
            raise unknown_instrument(name, list(self.instruments))
        self.ran += 1
        if op == "get":
            return read_parameters(instrument, _names(request.get("names")))
        if op == "set":
            return set_parameters(
                instrument, _object(request, "parameters"), guard=guard
            )
        if op == "run":
            command = request.get("command")
            if not isinstance(command, str) or not command:
                raise Refusal(
                    400,
                    "BAD_REQUEST",
                    'a run request names its command: {"op": "run", "command": '
                    '"START_AUTOSAMPLE", "arguments": {...}}',
                )
            return run_command(
                instrument,
                command,
                _object(request, "arguments", required=False),
                guard=guard,
            )
        if op == "discover":
            return discover(instrument, guard=guard)
        self.ran -= 1
        raise Refusal(
            400,
            "BAD_REQUEST",
            f"unknown op {op!r}; valid: {', '.join(OPERATIONS)}",
            valid=list(OPERATIONS),
        )

    def _guard(self, deadline: float, expiry: int) -> Callable[[], None]:
        def guard() -> None:
            if self._clock.seconds() >= deadline:
                self.expired += 1
                raise Refusal(
                    408,
                    "EXPIRED",
                    f"the request expired (its Message Expiry Interval was "
                    f"{expiry} s) before its turn came; it was not carried out",
                )

        return guard

    def _error(self, reason: Failure, name: str | None) -> dict[str, object]:
        instrument = self.instruments.get(name) if name is not None else None
        refusal = refusal_for(reason, instrument if instrument is not None else name)
        error = refusal.body()["error"]
        assert isinstance(error, dict)
        return {"ok": False, "error": {"status": refusal.status, **error}}

    def _answer(self, body: dict[str, object], properties: MessageProperties) -> None:
        assert properties.response_topic is not None
        self.answered += 1
        payload = json.dumps(body, separators=(",", ":"), default=str).encode()
        published = self._client.publish(
            properties.response_topic,
            payload,
            qos=1,
            properties=MessageProperties(
                correlation_data=properties.correlation_data,
                content_type="application/json",
                message_expiry_interval=RESPONSE_EXPIRY,
            ),
        )
        published.addErrback(
            lambda reason: _log.warn(
                "Could not answer a request on {topic}: {error}",
                topic=properties.response_topic,
                error=reason.getErrorMessage(),
            )
        )


def _key(properties: MessageProperties) -> tuple[str, bytes] | None:
    """
    What tells a request's deliveries apart from other requests: its
    Response Topic and Correlation Data; ``None`` for a request that has
    no Correlation Data (nothing tells its deliveries apart) or no expiry
    (refused anyway).
    """
    correlation = properties.correlation_data
    topic = properties.response_topic
    if not correlation or topic is None or properties.message_expiry_interval is None:
        return None
    return (topic, correlation)


def _request(payload: bytes) -> Mapping[str, Any]:
    try:
        request = json.loads(payload)
    except ValueError as e:
        raise Refusal(400, "BAD_REQUEST", f"the request is not JSON: {e}") from e
    if not isinstance(request, dict):
        raise Refusal(
            400,
            "BAD_REQUEST",
            f'the request must be a JSON object such as {{"op": "get"}}, not '
            f"{type(request).__name__}",
        )
    return request


def _names(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise Refusal(
        400, "BAD_REQUEST", f"names must be an array of parameter names, not {value!r}"
    )


def _object(
    request: Mapping[str, Any], key: str, *, required: bool = True
) -> dict[str, Any]:
    value = request.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise Refusal(
            400,
            "BAD_REQUEST",
            f"{key} must be a JSON object, not {json.dumps(value)}",
        )
    return value
