"""
Unit tests for :mod:`instrumentd.station.registry` with a scripted driver,
a clock and a stand-in for the MQTT client (``tests.test_mqtt_station_e2e``
runs it with a real broker and station).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.events import ConfigChangeEvent, StateChangeEvent
from instrumentd.mqtt import MQTTClient
from instrumentd.station.instrument import StationInstrument
from instrumentd.station.registry import Registry, offline_will
from tests.apisupport import FakeDriver


class ConnectionStandIn:
    """
    An open session that records what is published on it.
    """

    open = True

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any], bool]] = []

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, **kwargs: Any
    ) -> Deferred[None]:
        self.published.append((topic, json.loads(payload), retain))
        return succeed(None)


class ClientStandIn:
    """
    What the registry uses of an :class:`MQTTClient`.
    """

    def __init__(self) -> None:
        self.connection: ConnectionStandIn | None = None
        self.connected: list[Callable[[Any], object]] = []
        self.disconnected: list[Callable[[], object]] = []

    def on_connected(self, listener: Callable[[Any], object]) -> Callable[[], None]:
        self.connected.append(listener)
        return lambda: self.connected.remove(listener)

    def on_disconnected(self, listener: Callable[[], object]) -> Callable[[], None]:
        self.disconnected.append(listener)
        return lambda: self.disconnected.remove(listener)

    def connect(self) -> ConnectionStandIn:
        self.connection = ConnectionStandIn()
        for listener in list(self.connected):
            listener(self.connection)
        return self.connection


class RegistryTests(SynchronousTestCase):
    """
    Status and meta, retained, current.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1796630400)
        self.driver = FakeDriver(self.clock)
        self.instrument = StationInstrument(
            "CTD1", cast(Any, self.driver), clock=self.clock
        )
        self.client = ClientStandIn()
        self.registry = Registry(
            cast(MQTTClient, self.client), "buoy1", clock=self.clock
        )
        self.registry.add(self.instrument, "pkg.mod:Driver")

    def test_will(self) -> None:
        """
        The will marks the station offline, retained, QoS 1.
        """
        will = offline_will("buoy1")
        self.assertEqual(will.topic, "instrumentd/buoy1/status")
        self.assertEqual(
            json.loads(will.payload),
            {"station": "buoy1", "online": False, "since": None},
        )
        self.assertEqual((will.qos, will.retain), (1, True))

    def test_online_and_meta(self) -> None:
        """
        A session says the station is online and describes each
        instrument, retained.
        """
        connection = self.client.connect()
        self.clock.advance(0)
        topics = [(topic, retain) for topic, _, retain in connection.published]
        self.assertEqual(
            topics,
            [("instrumentd/buoy1/status", True), ("instrumentd/buoy1/CTD1/meta", True)],
        )
        status = connection.published[0][1]
        self.assertEqual(
            status,
            {
                "station": "buoy1",
                "online": True,
                "since": "2026-12-07T08:00:00.000000Z",
            },
        )
        meta = connection.published[1][1]
        self.assertEqual(meta["state"], "COMMAND")
        self.assertEqual(
            meta["driver"], {"name": "fake", "version": None, "class": "pkg.mod:Driver"}
        )
        self.assertEqual(meta["updated"], "2026-12-07T08:00:00.000000Z")

    def test_changes(self) -> None:
        """
        A change of state is published again, once for events that come
        together; an event that changes nothing publishes nothing.
        """
        connection = self.client.connect()
        self.clock.advance(0)
        del connection.published[:]
        self.driver.events.publish(ConfigChangeEvent({"INTERVAL": 5}, time=1.0))
        self.clock.advance(0)
        self.assertEqual(connection.published, [])
        self.driver.state = "AUTOSAMPLE"
        self.driver.events.publish(StateChangeEvent("AUTOSAMPLE", time=2.0))
        self.driver.events.publish(ConfigChangeEvent({"INTERVAL": 5}, time=2.0))
        self.clock.advance(0)
        self.assertEqual(len(connection.published), 1)
        self.assertEqual(connection.published[0][1]["state"], "AUTOSAMPLE")

    def test_not_connected(self) -> None:
        """
        Without a session nothing is published; the next session
        describes everything afresh.
        """
        self.driver.state = "AUTOSAMPLE"
        self.driver.events.publish(StateChangeEvent("AUTOSAMPLE", time=2.0))
        self.clock.advance(0)
        connection = self.client.connect()
        self.clock.advance(0)
        self.assertEqual(connection.published[-1][1]["state"], "AUTOSAMPLE")

    def test_stop(self) -> None:
        """
        An orderly stop says offline, with the time, retained.
        """
        connection = self.client.connect()
        self.clock.advance(5)
        done = self.registry.stop()
        self.successResultOf(done)
        topic, status, retain = connection.published[-1]
        self.assertEqual((topic, retain), ("instrumentd/buoy1/status", True))
        self.assertEqual(
            status,
            {
                "station": "buoy1",
                "online": False,
                "since": "2026-12-07T08:00:05.000000Z",
            },
        )

    def test_archiveMetadata(self) -> None:
        """
        Meta carries what a collector needs for the archive's
        ``metadata.json``: the parameters' values (published again when
        one changes), and no model for a driver not known, nor a position
        when none is configured.
        """
        self.driver.parameters = {"SERIAL_NUMBER": "2165", "TCALDATE": "08-nov-05"}
        connection = self.client.connect()
        self.clock.advance(0)
        meta = connection.published[-1][1]
        self.assertEqual(
            meta["parameter_values"], {"SERIAL_NUMBER": "2165", "TCALDATE": "08-nov-05"}
        )
        self.assertNotIn("model", meta)
        self.assertNotIn("position", meta)
        self.driver.parameters = {"SERIAL_NUMBER": "2165", "TCALDATE": "01-dec-26"}
        self.driver.events.publish(ConfigChangeEvent({"TCALDATE": "x"}, time=2.0))
        self.clock.advance(0)
        self.assertEqual(
            connection.published[-1][1]["parameter_values"]["TCALDATE"], "01-dec-26"
        )

    def test_positionAndModel(self) -> None:
        """
        A station's configured position, and the model of a driver known,
        are in meta.
        """
        client = ClientStandIn()
        registry = Registry(
            cast(MQTTClient, client),
            "buoy1",
            clock=self.clock,
            position={"latitude": 44.6, "longitude": -124.3},
        )
        self.driver.get_config_metadata = lambda: {  # type: ignore[method-assign]
            "driver": {"name": "seabird_sbe37smp", "version": "1.0"}
        }
        registry.add(self.instrument)
        connection = client.connect()
        self.clock.advance(0)
        meta = connection.published[-1][1]
        self.assertEqual(meta["position"], {"latitude": 44.6, "longitude": -124.3})
        self.assertEqual(meta["model"], "Sea-Bird SBE 37-SMP MicroCAT")
