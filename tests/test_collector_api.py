"""
Tests for L{instrumentd.collector.api}: the status, the gap report (open
and closed, with spans) and the Prometheus metrics.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import getChildForRequest
from twisted.web.test.requesthelper import DummyRequest

from instrumentd.collector.api import collector_resource
from instrumentd.collector.core import Collector
from tests.test_collector_core import data


def _broker() -> dict[str, object]:
    return {"broker": "mqtt://x as c", "connected": True, "connections": 2}


class CollectorAPITests(SynchronousTestCase):
    """
    The API tells what was archived and which gaps are open or closed.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.collector = Collector(self.mktemp(), self.clock)
        self.collector.start()
        self.root = collector_resource(self.collector, _broker)

    def feed(self, *numbers: int, station: str = "A") -> None:
        for seq in numbers:
            self.collector.receive(*data(seq, station=station), lambda: None)
        self.clock.advance(0)

    def get(self, path: str, **args: str) -> tuple[bytes, DummyRequest]:
        request = DummyRequest([p.encode() for p in path.strip("/").split("/")])
        request.args = {k.encode(): [v.encode()] for k, v in args.items()}
        resource = getChildForRequest(self.root, request)
        body = resource.render(request)
        assert isinstance(body, bytes)
        return body, request

    def json(self, path: str, **args: str) -> Any:
        body, request = self.get(path, **args)
        self.assertEqual(request.responseCode or 200, 200)
        return json.loads(body)

    def test_gaps(self) -> None:
        """
        C{/api/gaps} lists an open gap with its span, then, once late
        deliveries fill it, as closed; C{station} narrows it.
        """
        self.feed(1, 2, 6)
        self.feed(1, station="B")
        [gap] = self.json("/api/gaps")["open"]
        self.assertEqual(
            {k: gap[k] for k in ("station", "instrument", "first", "last", "missing")},
            {"station": "A", "instrument": "CTD", "first": 3, "last": 5, "missing": 3},
        )
        self.assertEqual(gap["after"], "2026-12-07T08:00:02.000000Z")
        self.assertEqual(gap["before"], "2026-12-07T08:00:06.000000Z")
        self.assertIsNone(gap["closed"])
        self.assertEqual(
            self.json("/api/gaps", station="B"), {"open": [], "closed": []}
        )
        self.clock.advance(60)
        self.feed(5, 3, 4)
        report = self.json("/api/gaps")
        self.assertEqual(report["open"], [])
        [closed] = report["closed"]
        self.assertEqual((closed["first"], closed["missing"]), (3, 0))
        self.assertEqual(closed["closed_unix"], 1_800_000_060)

    def test_status(self) -> None:
        """
        C{/api} has the counts per station and instrument and the broker's
        state.
        """
        self.feed(1, 2, 2, 4)
        status = self.json("/api")
        self.assertEqual(status["archived"], 3)
        self.assertEqual(status["duplicates"], 1)
        self.assertEqual(status["broker"]["connected"], True)
        self.assertEqual(
            status["stations"]["A"]["CTD"],
            {
                "highest_seq": 4,
                "last_time": "2026-12-07T08:00:04.000000Z",
                "received": 3,
                "duplicates": 1,
                "open_gaps": 1,
                "missing": 1,
            },
        )
        self.assertEqual(status["gaps"]["open"], 1)

    def test_metrics(self) -> None:
        """
        C{/metrics} has the per-instrument counters and gap gauges in the
        Prometheus format.
        """
        self.feed(1, 3)
        body, request = self.get("/metrics")
        text = body.decode()
        for line in (
            'instrumentd_collector_messages_total{station="A",instrument="CTD"} 2',
            'instrumentd_collector_gaps_open{station="A",instrument="CTD"} 1',
            'instrumentd_collector_missing{station="A",instrument="CTD"} 1',
            'instrumentd_collector_highest_seq{station="A",instrument="CTD"} 3',
            "instrumentd_collector_gaps_opened_total 1",
            "instrumentd_collector_broker_connected 1",
            "# TYPE instrumentd_collector_gaps_closed_total counter",
        ):
            self.assertIn(line, text.splitlines())
        self.assertEqual(
            request.responseHeaders.getRawHeaders(b"content-type"),
            [b"text/plain; version=0.0.4; charset=utf-8"],
        )
