"""
Tests for L{instrumentd.station.metrics}: C{GET /metrics}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from instrumentd.driver.events import (
    ErrorEvent,
)
from instrumentd.station import metrics
from tests.apisupport import APITestCase, ToyStation


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
