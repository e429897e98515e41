"""
Tests for L{instrumentd.collector.metadata}: the collector keeps each
instrument's C{metadata.json} in its archive from the stations' retained
meta messages, in the station's document format, written atomically and
only when it changed, and C{instrumentd-export} reads it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.collector.core import Collector
from instrumentd.export.archive import Position, read_metadata

#: 2026-12-07T08:00:00Z.
T0 = 1796630400.0


def meta(**changes: Any) -> dict[str, Any]:
    """
    A meta payload as a station's registry publishes it.
    """
    payload: dict[str, Any] = {
        "station": "buoy1",
        "instrument": "CTD01",
        "state": "AUTOSAMPLE",
        "connected": True,
        "capabilities": {"commands": [], "parameters": ["INTERVAL"]},
        "parameters": {"INTERVAL": {"type": "int", "units": "s"}},
        "commands": {},
        "streams": {
            "ctdpf_sample": {
                "temperature": {
                    "units": "degree_Celsius",
                    "standard_name": "sea_water_temperature",
                }
            }
        },
        "port_agent": {"mode": "child"},
        "driver": {"name": "seabird_sbe37smp", "version": "1.2", "class": "x:Y"},
        "parameter_values": {
            "INTERVAL": 10,
            "serial_number": "2165",
            "TCALDATE": "08-nov-05",
        },
        "model": "Sea-Bird SBE 37-SMP MicroCAT",
        "position": {"latitude": 44.6, "longitude": -124.3},
        "updated": "2026-12-07T08:00:00.000000Z",
    }
    payload.update(changes)
    return payload


TOPIC = "instrumentd/buoy1/CTD01/meta"


class CollectorMetadataTests(SynchronousTestCase):
    """
    Meta messages in, C{metadata.json} out.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        self.clock = Clock()
        self.clock.advance(T0)
        self.collector = Collector(self.directory, self.clock)
        self.collector.start()
        self.acks: list[str] = []
        self.path = os.path.join(self.directory, "buoy1", "CTD01", "metadata.json")

    def receive(self, payload: Any, topic: str = TOPIC) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.collector.receive(topic, body, lambda: self.acks.append(topic))

    def read(self) -> dict[str, Any]:
        with open(self.path) as f:
            document: dict[str, Any] = json.load(f)
        return document

    def test_document(self) -> None:
        """
        A meta message is acknowledged at once and written as the station's
        document, version 1, which the export reads for the model, serial
        number, calibration dates, station and position.
        """
        self.receive(meta())
        self.assertEqual(self.acks, [TOPIC])
        self.assertEqual(
            self.read(),
            {
                "record": "instrumentd.instrument_metadata",
                "version": 1,
                "station": {
                    "name": "buoy1",
                    "position": {"latitude": 44.6, "longitude": -124.3},
                },
                "instrument": {
                    "name": "CTD01",
                    "model": "Sea-Bird SBE 37-SMP MicroCAT",
                },
                "driver": {"name": "seabird_sbe37smp", "version": "1.2"},
                "parameters": {
                    "INTERVAL": 10,
                    "serial_number": "2165",
                    "TCALDATE": "08-nov-05",
                },
                "streams": meta()["streams"],
                "updated": "2026-12-07T08:00:00Z",
            },
        )
        info = read_metadata(self.path)
        self.assertEqual(info.station, "buoy1")
        self.assertEqual(info.position, Position(44.6, -124.3))
        self.assertEqual(info.model, "Sea-Bird SBE 37-SMP MicroCAT")
        self.assertEqual(info.serial_number, "2165")
        self.assertEqual(info.calibration_dates, {"temperature": "08-nov-05"})
        self.assertEqual(self.collector.archived, 0)
        self.assertEqual(self.collector.rejected, 0)

    def test_onlyWhenChanged(self) -> None:
        """
        The same description again (a new session's meta, another
        C{updated}, another state) leaves the file alone; a new parameter
        value rewrites it, whole (no temporary file left).
        """
        self.receive(meta())
        before = self.read()
        self.clock.advance(60)
        self.receive(meta(state="COMMAND", updated="2026-12-07T08:01:00.000000Z"))
        self.assertEqual(self.read(), before)
        self.assertEqual(self.collector.metadata.written, 1)
        values = dict(meta()["parameter_values"], TCALDATE="01-dec-26")
        self.receive(meta(parameter_values=values))
        after = self.read()
        self.assertEqual(after["parameters"]["TCALDATE"], "01-dec-26")
        self.assertEqual(after["updated"], "2026-12-07T08:01:00Z")
        self.assertEqual(self.collector.metadata.written, 2)
        self.assertEqual(os.listdir(os.path.dirname(self.path)), ["metadata.json"])

    def test_restart(self) -> None:
        """
        A collector started again on the archive is sent the retained meta
        again: the file, unchanged, is not rewritten.
        """
        self.receive(meta())
        before = self.read()
        self.clock.advance(3600)
        again = Collector(self.directory, self.clock)
        again.start()
        again.receive(TOPIC, json.dumps(meta()).encode(), lambda: None)
        self.assertEqual(self.read(), before)
        self.assertEqual(again.metadata.written, 0)

    def test_olderStation(self) -> None:
        """
        Meta from a station that does not send the parameters' values, the
        model or a position still gives a document: the station's name,
        the driver (its model known from its name) and the streams.
        """
        older = meta()
        for key in ("parameter_values", "model", "position"):
            del older[key]
        self.receive(older)
        document = self.read()
        self.assertEqual(document["station"], {"name": "buoy1"})
        self.assertEqual(document["parameters"], {})
        self.assertEqual(
            document["instrument"]["model"], "Sea-Bird SBE 37-SMP MicroCAT"
        )
        self.assertEqual(document["streams"], older["streams"])

    def test_refused(self) -> None:
        """
        Meta whose payload is not JSON, or names another instrument than
        its topic, is acknowledged, counted as rejected and not written; an
        empty retained message (one being cleared) leaves the file.
        """
        self.receive(b"{not json")
        self.receive(meta(instrument="CTD02"))
        self.assertEqual(self.collector.rejected, 2)
        self.assertFalse(os.path.exists(self.path))
        self.receive(meta())
        self.receive(b"")
        self.assertTrue(os.path.exists(self.path))
        self.assertEqual(len(self.acks), 4)
        self.assertEqual(self.collector.rejected, 2)
