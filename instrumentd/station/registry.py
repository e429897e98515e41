# -*- test-case-name: tests.test_mqtt_registry -*-
"""
The station's registry on the broker: retained messages that say which
stations are online and what their instruments are, so anyone with access
to the broker finds every instrument without a discovery service of its
own.

- ``instrumentd/{station}/status``, retained: ``{"station", "online":
  true, "since"}`` each time a session with the broker starts; the
  session's last will is ``{"station", "online": false, "since": null}``
  (the broker publishes it when it loses the station without a goodbye:
  a crash, a kill -9, a cut link; it cannot know since when), and an
  orderly stop publishes ``online: false`` with the time first.
- ``instrumentd/{station}/{instrument}/meta``, retained: state,
  capabilities, parameters' metadata, commands, streams, port-agent
  endpoints, driver name and version; the instrument's model, its
  parameters' values and the station's position (what a collector needs
  for the archive's ``metadata.json``); published when a session starts
  and again when a state, configuration or link change alters it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from instrumentd.driver._json import dumps, to_jsonable
from instrumentd.driver.events import DriverEvent, EventType
from instrumentd.mqtt import MQTTClient, MQTTConnection, Will
from instrumentd.mqtt.topics import meta_topic, status_topic
from instrumentd.station.archive_metadata import model_of

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from instrumentd.station.instrument import StationInstrument

__all__ = ["Registry", "instrument_meta", "offline_will"]

_log = Logger()

#: The longest an orderly stop waits for the broker to take the offline
#: status.
OFFLINE_TIMEOUT: Final = 5.0

#: Events after which an instrument's description may have changed.
_CHANGES: Final = (
    EventType.STATE_CHANGE,
    EventType.CONFIG_CHANGE,
    EventType.CONNECTION,
)


def _iso(unix_time: float) -> str:
    return (
        datetime.fromtimestamp(unix_time, UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def status_payload(station: str, online: bool, since: float | None) -> bytes:
    """
    The status message.

    :param station: the station's name.
    :param online: whether it is online.
    :param since: since when (Unix seconds), or ``None`` if unknown.
    """
    return json.dumps(
        {
            "station": station,
            "online": online,
            "since": None if since is None else _iso(since),
        },
        separators=(",", ":"),
    ).encode()


def offline_will(station: str) -> Will:
    """
    The last will that marks the station offline, retained.

    :param station: the station's name.
    """
    return Will(status_topic(station), status_payload(station, False, None), 1, True)


def instrument_meta(
    station: str,
    instrument: StationInstrument,
    *,
    driver_path: str | None = None,
    position: Mapping[str, float] | None = None,
) -> dict[str, object]:
    """
    What ``.../meta`` says of an instrument now.

    :param station: the station's name.
    :param instrument: the instrument.
    :param driver_path: the driver's import path as configured.
    :param position: the station's ``{"latitude", "longitude"}``, or
        ``None`` if not configured.
    :returns: ``station``, ``instrument``, ``state``, ``connected``,
        ``capabilities``, ``parameters`` (their metadata), ``commands``,
        ``streams``, ``port_agent`` (mode, host, ports by listener kind,
        pid, running), ``driver`` (``name``, ``version``, ``class``),
        ``parameter_values`` (the driver's cached values), ``model`` (when
        the driver's instrument is known) and ``position`` (when
        configured).
    """
    driver = instrument.driver
    metadata = driver.get_config_metadata()
    about = metadata.get("driver")
    described: dict[str, object] = {}
    if isinstance(about, Mapping):
        described = {key: about.get(key) for key in ("name", "version")}
    if driver_path is not None:
        described["class"] = driver_path
    document: dict[str, object] = {
        "station": station,
        "instrument": instrument.name,
        "state": instrument.state,
        "connected": instrument.connected,
        "capabilities": driver.get_resource_capabilities(),
        "parameters": metadata.get("parameters", {}),
        "commands": metadata.get("commands", {}),
        "streams": metadata.get("streams", {}),
        "port_agent": instrument.port_agent,
        "driver": described,
        "parameter_values": driver.get_cached_config(),
    }
    model = model_of(described.get("name"))
    if model is not None:
        document["model"] = model
    if position is not None:
        document["position"] = dict(position)
    result = to_jsonable(document)
    assert isinstance(result, dict)
    return result


class Registry:
    """
    Keeps the station's retained status and its instruments' descriptions
    current on the broker the client is connected to.

    :param client: the MQTT client (its will should be
        :func:`offline_will`).
    :param station: the station's name.
    :param clock: the reactor's clock.
    :param position: the station's ``{"latitude", "longitude"}``, or
        ``None`` if not configured.
    """

    def __init__(
        self,
        client: MQTTClient,
        station: str,
        *,
        clock: IReactorTime,
        position: Mapping[str, float] | None = None,
    ) -> None:
        self._client = client
        self.station = station
        self.position = position
        self._clock = clock
        self._instruments: dict[str, tuple[StationInstrument, str | None]] = {}
        self._published: dict[str, dict[str, object]] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self._pending: set[str] = set()
        self._call: IDelayedCall | None = None
        self._stopped = False
        #: Meta messages published.
        self.meta_published = 0
        self._unsubscribe.append(client.on_connected(self._online))
        self._unsubscribe.append(client.on_disconnected(self._published.clear))

    def add(
        self, instrument: StationInstrument, driver_path: str | None = None
    ) -> None:
        """
        Describe an instrument, now (if connected) and on every change.

        :param instrument: the instrument.
        :param driver_path: its driver's import path, as configured.
        """
        self._instruments[instrument.name] = (instrument, driver_path)

        def changed(event: DriverEvent) -> None:
            self._changed(instrument.name)

        self._unsubscribe.append(instrument.bus.subscribe(changed, types=_CHANGES))
        self._changed(instrument.name)

    def _online(self, connection: MQTTConnection) -> None:
        self._published.clear()
        status = status_payload(self.station, True, self._clock.seconds())
        connection.publish(status_topic(self.station), status, retain=True).addErrback(
            self._failed, "status"
        )
        for name in self._instruments:
            self._changed(name)

    def _changed(self, name: str) -> None:
        # Several events arrive together (a state change and the
        # configuration it brings): describe the instrument once, after
        # them.
        self._pending.add(name)
        if self._call is None and not self._stopped:
            self._call = self._clock.callLater(0, self._publish_pending)

    def _publish_pending(self) -> None:
        self._call = None
        pending, self._pending = self._pending, set()
        connection = self._client.connection
        if connection is None or not connection.open:
            return
        for name in sorted(pending):
            instrument, driver_path = self._instruments[name]
            try:
                document = instrument_meta(
                    self.station,
                    instrument,
                    driver_path=driver_path,
                    position=self.position,
                )
            except Exception:
                _log.failure(
                    "Describing {instrument} for the registry", instrument=name
                )
                continue
            if self._published.get(name) == document:
                continue
            self._published[name] = document
            payload = dict(document, updated=_iso(self._clock.seconds()))
            self.meta_published += 1
            connection.publish(
                meta_topic(self.station, name),
                dumps(payload).encode("utf-8"),
                retain=True,
            ).addErrback(self._failed, name)

    def _failed(self, reason: Any, what: str) -> None:
        # A session lost meanwhile republishes everything on the next one.
        self._published.pop(what, None)
        _log.warn(
            "The registry could not publish {what}: {error}",
            what=what,
            error=reason.getErrorMessage(),
        )

    def stop(self) -> Deferred[None]:
        """
        Say the station is going offline (retained), and stop following
        the instruments.

        :returns: a Deferred firing once the broker took it, or at once if
            not connected, or after :data:`OFFLINE_TIMEOUT` seconds.
        """
        self._stopped = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        connection = self._client.connection
        if connection is None or not connection.open:
            return succeed(None)
        done: Deferred[None] = Deferred()
        published = connection.publish(
            status_topic(self.station),
            status_payload(self.station, False, self._clock.seconds()),
            retain=True,
        )

        def give_up() -> None:
            if not done.called:
                done.callback(None)

        timeout = self._clock.callLater(OFFLINE_TIMEOUT, give_up)

        def finished(result: object) -> None:
            if timeout.active():
                timeout.cancel()
            if not done.called:
                done.callback(None)

        published.addBoth(finished)
        return done
