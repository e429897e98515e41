# -*- test-case-name: tests.test_instrumentctl_broker -*-
"""
``instrumentctl --broker mqtt://HOST:PORT``: the stations' instruments
through an MQTT broker rather than one station's HTTP API.

Instruments are named ``STATION/INSTRUMENT``.  Requests are the stations'
MQTT 5 requests (``doc/multi-host.md``, "Commands"): a QoS 1 message on
``instrumentd/{station}/{instrument}/cmd`` (``instrumentd/{station}/cmd``
for ``list``) with this client's Response Topic
(``replies/{user}/{client id}``, or ``replies/{client id}`` without a
user name), a Correlation Data of its own and a
Message Expiry Interval of ``--timeout``; the answer's ``result`` is the
HTTP API's body, so the commands and their output are the same as over
HTTP.  :class:`BrokerStation` stands in for
:class:`~instrumentd.cli._client.StationClient`: it takes the HTTP API's
requests and carries each out as the request that does the same.

Which stations there are, whether they are online and what their
instruments can do come from the stations' retained messages
(``instrumentd/{station}/status`` and ``.../meta``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

from twisted.internet.defer import Deferred

from instrumentd.cli._exit import APIError, Exit, ExitCode

if TYPE_CHECKING:
    import argparse

    from instrumentd.cli._format import Output
    from instrumentd.mqtt import Message, MQTTClient

__all__ = ["BrokerClient", "BrokerStation", "broker_watch", "split_name"]

#: The first topic level of answers (what the documented ACL lets stations
#: write and operators read).
REPLY_ROOT: Final = "replies"

_INSTRUMENTS: Final = "/api/instruments"


def split_name(name: str) -> tuple[str, str]:
    """
    :param name: ``STATION/INSTRUMENT``.
    :returns: the station and the instrument.
    :raises Exit: USAGE, for a name without a station.
    """
    station, slash, instrument = name.partition("/")
    if not slash or not station or not instrument or "/" in instrument:
        raise Exit(
            ExitCode.USAGE,
            f"through a broker an instrument is named STATION/INSTRUMENT, not "
            f"{name!r} (instrumentctl --broker ... list shows them)",
        )
    return station, instrument


class BrokerClient:
    """
    A session with the broker for one ``instrumentctl`` command.

    :param reactor: the reactor.
    :param client: the MQTT client (not started).
    :param timeout: how long to wait for the broker and for each answer.
    """

    def __init__(self, reactor: Any, client: MQTTClient, timeout: float) -> None:
        self.reactor = reactor
        self.client = client
        self.timeout = timeout
        # replies/<user>/<client id>: an ACL can give each operator its own
        # replies/<user>/# (doc/multi-host.md, Security).
        user = client.settings.username
        self.reply_topic = "/".join(
            [REPLY_ROOT, *([user] if user else []), client.settings.client_id]
        )
        self._waiting: dict[bytes, Deferred[Any]] = {}
        self._listeners: list[Any] = []
        self._counter = 0
        client.on_message(self._received)
        client.subscribe(self.reply_topic, 1)

    @property
    def url(self) -> str:
        """
        The broker's address, for messages.
        """
        return self.client.settings.address

    def on_message(self, listener: Any) -> None:
        """
        Also give every message received to ``listener``.
        """
        self._listeners.append(listener)

    async def connect(self) -> None:
        """
        Start the session.

        :raises Exit: UNREACHABLE when there is none within the timeout.
        """
        self.client.startService()
        connected = self.client.when_connected()
        timer = self.reactor.callLater(self.timeout, connected.cancel)
        try:
            await connected
        except Exception:
            error = self.client.last_error or "no answer"
            raise Exit(
                ExitCode.UNREACHABLE,
                f"cannot reach the broker at {self.url} within {self.timeout:g} s: "
                f"{error}",
            ) from None
        finally:
            if timer.active():
                timer.cancel()

    async def close(self) -> None:
        """
        End the session.
        """
        if self.client.running:
            await self.client.stopService()

    def _received(self, message: Message) -> None:
        if message.topic == self.reply_topic:
            key = message.properties.correlation_data
            waiting = self._waiting.pop(key, None) if key is not None else None
            if waiting is not None:
                waiting.callback(message.payload)
            return
        for listener in list(self._listeners):
            listener(message)

    def _correlation(self) -> bytes:
        self._counter += 1
        return f"{self._counter}-{os.urandom(6).hex()}".encode()

    def _expect(self, key: bytes) -> Deferred[Any]:
        # Registered before the request is sent: its answer may come back
        # before the broker's acknowledgement of the request does.
        waiting: Deferred[Any] = Deferred()
        self._waiting[key] = waiting
        return waiting

    async def _wait(self, key: bytes, waiting: Deferred[Any], what: str) -> bytes:
        timer = self.reactor.callLater(self.timeout, waiting.cancel)
        try:
            payload: bytes = await waiting
        except Exception:
            self._waiting.pop(key, None)
            raise Exit(
                ExitCode.UNREACHABLE,
                f"no answer from {what} through the broker at {self.url} within "
                f"{self.timeout:g} s (a change may still be carried out, until "
                f"the request expires); --timeout waits longer",
            ) from None
        finally:
            if timer.active():
                timer.cancel()
        return payload

    async def sync(self) -> None:
        """
        Return once every message the broker had for this session's
        subscriptions so far has arrived (retained ones included): the
        broker sends a client's messages in order, so a message sent to
        ourselves now comes after them.
        """
        from instrumentd.mqtt import MessageProperties

        key = b"sync-" + self._correlation()
        waiting = self._expect(key)
        await self.client.publish(
            self.reply_topic,
            b"{}",
            qos=1,
            properties=MessageProperties(correlation_data=key),
        )
        await self._wait(key, waiting, "the broker itself")

    async def subscribe(self, *filters: str) -> None:
        """
        Subscribe now, and return once the subscriptions are made.
        """
        for each in filters:
            await self.client.subscribe(each, 1)

    async def request(
        self, station: str, instrument: str | None, body: Mapping[str, object]
    ) -> Any:
        """
        One request, and its answer's result.

        :param station: the station.
        :param instrument: the instrument, or ``None`` for the station.
        :param body: the request (``{"op": ..., ...}``).
        :returns: the answer's ``result``.
        :raises APIError: for an error answer (its status and message).
        :raises Exit: UNREACHABLE without an answer in time.
        """
        from instrumentd.mqtt import MessageProperties
        from instrumentd.mqtt.topics import ROOT, command_topic

        topic = (
            f"{ROOT}/{station}/cmd"
            if instrument is None
            else command_topic(station, instrument)
        )
        key = self._correlation()
        what = f"station {station}"
        waiting = self._expect(key)
        await self.client.publish(
            topic,
            json.dumps(body).encode(),
            qos=1,
            properties=MessageProperties(
                response_topic=self.reply_topic,
                correlation_data=key,
                message_expiry_interval=max(1, math.ceil(self.timeout)),
                content_type="application/json",
            ),
        )
        payload = await self._wait(key, waiting, what)
        try:
            answer = json.loads(payload)
        except ValueError:
            raise APIError(
                502, f"{what} answered with something that is not JSON", None
            ) from None
        if not isinstance(answer, dict):
            raise APIError(502, f"{what} answered with {type(answer).__name__}", None)
        if answer.get("ok"):
            return answer.get("result")
        error = answer.get("error")
        status = error.get("status", 500) if isinstance(error, dict) else 500
        message = error.get("message") if isinstance(error, dict) else None
        raise APIError(
            int(status),
            str(message or f"{what} refused the request"),
            {"error": error} if isinstance(error, dict) else answer,
        )

    async def registry(
        self,
    ) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
        """
        What the stations' retained messages say now.

        :returns: each station's status, and each instrument's description,
            by ``(station, instrument)``.
        """
        from instrumentd.mqtt.topics import parse_topic

        statuses: dict[str, dict[str, Any]] = {}
        metas: dict[tuple[str, str], dict[str, Any]] = {}

        def take(message: Message) -> None:
            parts = parse_topic(message.topic)
            if parts is None or not message.payload:
                return
            try:
                body = json.loads(message.payload)
            except ValueError:
                return
            if not isinstance(body, dict):
                return
            if parts.kind == "status":
                statuses[parts.station] = body
            elif parts.kind == "meta" and parts.instrument is not None:
                metas[(parts.station, parts.instrument)] = body

        self.on_message(take)
        await self.subscribe("instrumentd/+/status", "instrumentd/+/+/meta")
        await self.sync()
        self._listeners.remove(take)
        return statuses, metas


class BrokerStation:
    """
    The HTTP API's requests that ``instrumentctl``'s commands make, carried
    out through the broker.

    :param broker: the session.
    """

    def __init__(self, broker: BrokerClient) -> None:
        self.broker = broker
        self.url = broker.url

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, object] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """
        What ``StationClient.request`` answers, through the broker.

        :raises Exit: USAGE for what has no request over MQTT.
        """
        if path == _INSTRUMENTS and method == "GET":
            return await self._list()
        if not path.startswith(_INSTRUMENTS + "/"):
            raise Exit(ExitCode.USAGE, f"{method} {path} has no MQTT request")
        quoted, _, rest = path[len(_INSTRUMENTS) + 1 :].partition("/")
        name = unquote(quoted)
        station, instrument = split_name(name)
        if rest == "parameters" and method == "GET":
            names = (params or {}).get("names")
            request: dict[str, object] = {"op": "get"}
            if names:
                request["names"] = names.split(",")
            return await self.broker.request(station, instrument, request)
        if rest == "parameters" and method == "PATCH":
            return await self.broker.request(
                station, instrument, {"op": "set", "parameters": dict(body or {})}
            )
        if rest.startswith("commands/") and method == "POST":
            command = unquote(rest[len("commands/") :])
            return await self.broker.request(
                station,
                instrument,
                {"op": "run", "command": command, "arguments": dict(body or {})},
            )
        if rest == "commands" and method == "GET":
            meta = await self._meta(station, instrument)
            capabilities = meta.get("capabilities") or {}
            return {
                "state": meta.get("state"),
                "available": capabilities.get("commands", [])
                if isinstance(capabilities, Mapping)
                else [],
                "commands": meta.get("commands") or {},
            }
        if rest == "" and method == "GET":
            raise Exit(
                ExitCode.USAGE,
                "status is not available through the broker; list, get, set, "
                f"run and watch are (instrumentctl --broker ... get {name})",
            )
        raise Exit(ExitCode.USAGE, f"{method} {path} has no MQTT request")

    async def _meta(self, station: str, instrument: str) -> dict[str, Any]:
        _, metas = await self.broker.registry()
        meta = metas.get((station, instrument))
        if meta is None:
            known = sorted(f"{s}/{i}" for s, i in metas)
            raise APIError(
                404,
                f"no instrument {station}/{instrument} is known to the broker; "
                f"known: {', '.join(known) or 'none'}",
                None,
            )
        return meta

    async def _list(self) -> dict[str, object]:
        statuses, metas = await self.broker.registry()
        stations = sorted(set(statuses) | {s for s, _ in metas})
        listed: list[dict[str, object]] = []
        for station in stations:
            status = statuses.get(station, {})
            answer: Any = None
            if status.get("online"):
                try:
                    answer = await self.broker.request(station, None, {"op": "list"})
                except (Exit, APIError):
                    # Said in the list, with the others' instruments.
                    answer = None
            if isinstance(answer, Mapping) and isinstance(
                answer.get("instruments"), list
            ):
                for each in answer["instruments"]:
                    if isinstance(each, Mapping):
                        listed.append(
                            {
                                **each,
                                "name": f"{station}/{each.get('name')}",
                                "station": station,
                            }
                        )
                continue
            # Offline (or not answering): what its retained messages say.
            since = status.get("since")
            why = (
                f"station offline since {since}"
                if status.get("online") is False and since
                else "station offline"
                if status.get("online") is False
                else "station not answering"
            )
            for (owner, instrument), meta in sorted(metas.items()):
                if owner != station:
                    continue
                listed.append(
                    {
                        "name": f"{station}/{instrument}",
                        "station": station,
                        "state": meta.get("state"),
                        "connected": False,
                        "samples": None,
                        "latest_sample_time": None,
                        "problem": why,
                    }
                )
        return {"instruments": listed}


def _as_event(message: Message) -> tuple[str, str] | None:
    """
    A data or events message as the event stream's event name and data,
    for :class:`~instrumentd.cli._watch.SampleTable`; ``None`` for
    anything else.
    """
    from instrumentd.mqtt.topics import parse_topic

    parts = parse_topic(message.topic)
    if parts is None or parts.kind not in ("data", "events"):
        return None
    try:
        body = json.loads(message.payload)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    who = f"{parts.station}/{parts.instrument}"
    if parts.kind == "data":
        record = body.get("record")
        if not isinstance(record, dict):
            return None
        sample = {"type": "SAMPLE", "instrument": who, "record": record}
        return "SAMPLE", json.dumps(sample)
    event = body.get("event")
    if not isinstance(event, dict):
        return None
    kind = str(event.get("type") or parts.name)
    return kind, json.dumps({**event, "instrument": who})


async def broker_watch(
    broker: BrokerClient,
    options: argparse.Namespace,
    out: Output,
    interrupted: Deferred[None],
) -> int:
    """
    ``watch`` through the broker: the named instruments' (every
    instrument's) data and events topics, shown as over HTTP.

    :returns: the exit status.
    """
    from twisted.internet.defer import race

    from instrumentd.cli._watch import WATCHED_TYPES, SampleTable
    from instrumentd.station.sse import ServerSentEvent

    names: list[str] = list(dict.fromkeys(options.names))
    pairs = [split_name(name) for name in names] or [("+", "+")]
    table = SampleTable(out, several=len(names) != 1)
    wanted = set(WATCHED_TYPES.split(","))

    def show(message: Message) -> None:
        found = _as_event(message)
        if found is None or found[0] not in wanted:
            return
        if out.as_json:
            # The station's own message, one a line.
            out.write(message.payload.decode("utf-8", "replace") + "\n")
            return
        table.event(ServerSentEvent(found[0], found[1]))

    broker.on_message(show)
    await broker.subscribe(
        *(
            f"instrumentd/{station}/{instrument}/{kind}/+"
            for station, instrument in pairs
            for kind in ("data", "events")
        )
    )
    what = ", ".join(names) if names else "every instrument of every station"
    out.note(f"watching {what} through {broker.url}; Ctrl-C to stop")
    await race([interrupted, out.closed])
    return ExitCode.OK
