# -*- test-case-name: tests.test_collector_api -*-
"""
The collector's HTTP API: it only reads.

- ``GET /api``: the collector's status: the broker, the archive's counts,
  and per station and instrument the highest sequence number, messages
  archived, duplicates dropped and gaps open.
- ``GET /api/gaps``: ``{"open": [...], "closed": [...]}``, each gap with
  its station, instrument, first and last missing sequence numbers, how
  many are still missing, the times of the messages on either side
  (``after``, ``before``), and when it was opened and closed.
  ``?station=NAME`` and ``?instrument=NAME`` narrow it.
- ``GET /metrics``: the same in the Prometheus text format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.web.resource import Resource
from twisted.web.server import Request

from instrumentd.station.api._answer import write_json
from instrumentd.station.metrics import CONTENT_TYPE, MetricFamily, format_families

if TYPE_CHECKING:
    from instrumentd.collector.core import Collector
    from instrumentd.collector.ledger import Gap

__all__ = ["collector_families", "collector_resource", "collector_status"]

#: What tells the broker's state: ``{"connected": bool, "connections": int,
#: ...}`` (an MQTT client's ``stats()``).
BrokerStats = Callable[[], dict[str, object]]


def collector_status(collector: Collector, broker: BrokerStats) -> dict[str, object]:
    """
    :param collector: the collector.
    :param broker: its MQTT client's stats.
    :returns: ``GET /api``'s answer.
    """
    stations: dict[str, dict[str, object]] = {}
    for (station, instrument), stream in collector.ledger.streams():
        stations.setdefault(station, {})[instrument] = {
            "highest_seq": stream.highest,
            "last_time": stream.last_time,
            "received": stream.received,
            "duplicates": stream.duplicates,
            "open_gaps": len(stream.gaps),
            "missing": sum(g.missing for g in stream.gaps),
        }
    archive = collector.archive
    return {
        "collector": "instrumentd",
        "broker": broker(),
        "archive": {
            "directory": collector.directory,
            "lines": archive.lines,
            "bytes": archive.bytes,
            "open_files": archive.open_files(),
            "files_opened": archive.files_opened,
            "last_error": collector.last_error(),
        },
        "archived": collector.archived,
        "duplicates": collector.duplicates,
        "rejected": collector.rejected,
        "write_errors": collector.write_errors,
        "recovered": collector.recovered,
        "gaps": {
            "open": len(collector.ledger.open_gaps()),
            "opened": collector.ledger.gaps_opened,
            "closed": collector.ledger.gaps_closed,
            "abandoned": collector.ledger.gaps_abandoned,
        },
        "stations": stations,
    }


def _matches(gap: Gap, station: str | None, instrument: str | None) -> bool:
    return (station is None or gap.station == station) and (
        instrument is None or gap.instrument == instrument
    )


def collector_families(collector: Collector, broker: BrokerStats) -> list[MetricFamily]:
    """
    :param collector: the collector.
    :param broker: its MQTT client's stats.
    :returns: the collector's metrics.
    """
    prefix = "instrumentd_collector_"
    archived = MetricFamily(
        prefix + "messages_total", "counter", "Messages archived, per instrument."
    )
    duplicates = MetricFamily(
        prefix + "duplicates_total",
        "counter",
        "Messages dropped as already archived, per instrument.",
    )
    highest = MetricFamily(
        prefix + "highest_seq", "gauge", "The highest sequence number archived."
    )
    open_gaps = MetricFamily(
        prefix + "gaps_open", "gauge", "Gaps in the sequence numbers still open."
    )
    missing = MetricFamily(
        prefix + "missing", "gauge", "Messages missing in the open gaps."
    )
    for (station, instrument), stream in collector.ledger.streams():
        labels = {"station": station, "instrument": instrument}
        archived.add(stream.received, **labels)
        duplicates.add(stream.duplicates, **labels)
        highest.add(stream.highest, **labels)
        open_gaps.add(len(stream.gaps), **labels)
        missing.add(sum(g.missing for g in stream.gaps), **labels)
    ledger = collector.ledger
    stats = broker()

    def single(name: str, kind: str, text: str, value: float) -> MetricFamily:
        family = MetricFamily(prefix + name, kind, text)
        family.add(value)
        return family

    return [
        archived,
        duplicates,
        highest,
        open_gaps,
        missing,
        single("gaps_opened_total", "counter", "Gaps opened.", ledger.gaps_opened),
        single(
            "gaps_closed_total",
            "counter",
            "Gaps closed by late deliveries.",
            ledger.gaps_closed,
        ),
        single(
            "gaps_abandoned_total",
            "counter",
            "Gaps given up at the max_open_gaps bound.",
            ledger.gaps_abandoned,
        ),
        single(
            "rejected_total",
            "counter",
            "Malformed messages refused.",
            collector.rejected,
        ),
        single(
            "write_errors_total",
            "counter",
            "Batches the archive could not write (not acknowledged).",
            collector.write_errors,
        ),
        single(
            "archive_bytes_total",
            "counter",
            "Bytes written to the archive.",
            collector.archive.bytes,
        ),
        single(
            "broker_connected",
            "gauge",
            "1 while connected to the broker.",
            1 if stats.get("connected") else 0,
        ),
        single(
            "broker_connections_total",
            "counter",
            "Sessions established with the broker.",
            float(stats.get("connections", 0) or 0),  # type: ignore[arg-type]
        ),
    ]


class _Status(Resource):
    isLeaf = True

    def __init__(self, collector: Collector, broker: BrokerStats) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._collector = collector
        self._broker = broker

    def render_GET(self, request: Request) -> bytes:
        return write_json(request, 200, collector_status(self._collector, self._broker))


class _Gaps(Resource):
    isLeaf = True

    def __init__(self, collector: Collector) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._collector = collector

    def render_GET(self, request: Request) -> bytes:
        args: dict[bytes, list[bytes]] = request.args or {}

        def arg(name: bytes) -> str | None:
            values = args.get(name)
            return values[0].decode("utf-8", "replace") if values else None

        station, instrument = arg(b"station"), arg(b"instrument")
        ledger = self._collector.ledger
        body: dict[str, Any] = {
            "open": [
                g.to_dict()
                for g in ledger.open_gaps()
                if _matches(g, station, instrument)
            ],
            "closed": [
                g.to_dict() for g in ledger.closed if _matches(g, station, instrument)
            ],
        }
        return write_json(request, 200, body)


class _Metrics(Resource):
    isLeaf = True

    def __init__(self, collector: Collector, broker: BrokerStats) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._collector = collector
        self._broker = broker

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE)
        text = format_families(collector_families(self._collector, self._broker))
        return text.encode("utf-8")


def collector_resource(collector: Collector, broker: BrokerStats) -> Resource:
    """
    :param collector: the collector.
    :param broker: its MQTT client's stats.
    :returns: the API's root resource.
    """
    root = Resource()
    api = _Status(collector, broker)
    root.putChild(b"api", _ApiRoot(api, _Gaps(collector)))
    root.putChild(b"metrics", _Metrics(collector, broker))
    return root


class _ApiRoot(Resource):
    def __init__(self, status: _Status, gaps: Resource) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._status = status
        self.putChild(b"gaps", gaps)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self._status
        return super().getChild(path, request)  # type: ignore[no-untyped-call,no-any-return]

    def render_GET(self, request: Request) -> bytes:
        return self._status.render_GET(request)
