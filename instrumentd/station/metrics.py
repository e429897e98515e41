# -*- test-case-name: tests.test_station_metrics -*-
"""
The station's metrics in the Prometheus text exposition format (0.0.4).

Per instrument: its state, the samples, errors and state changes its driver
announced, its queued requests and event streams, its samples by QARTOD
flag per stream and field, and, when its port agent can be asked, the
agent's byte and packet counters.  Per sink: particles
delivered, dropped and deleted at the spool's bound, retries, the spool's
size and bound.  Every family has its ``# HELP`` and ``# TYPE`` lines;
counters end in ``_total``.

We format the text ourselves rather than add ``prometheus_client``: the
format is a few lines, and the values already live in
:class:`~instrumentd.station.instrument.StationInstrument` counters rather
than in registered metric objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, gatherResults

from instrumentd.qc.flags import QartodFlag
from instrumentd.station.quality import FLAG_NAMES

if TYPE_CHECKING:
    from instrumentd.station._sink import ISink
    from instrumentd.station.apisite import APISite
    from instrumentd.station.instrument import Station

__all__ = [
    "CONTENT_TYPE",
    "MetricFamily",
    "api_families",
    "collect",
    "format_families",
]

#: The media type Prometheus expects for the text format.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


@dataclass(slots=True)
class MetricFamily:
    """
    One metric and its samples.

    :ivar name: the metric's name, e.g. ``instrumentd_samples_total``.
    :ivar type: ``counter``, ``gauge`` or ``untyped``.
    :ivar help: one line saying what it counts.
    :ivar samples: ``(labels, value)`` pairs.
    """

    name: str
    type: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        """
        Add one sample.

        :param value: its value.
        :param labels: its labels.
        """
        self.samples.append((labels, value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def format_families(families: Iterable[MetricFamily]) -> str:
    """
    Write metric families in the text exposition format.

    :param families: the families, in the order to write them.
    :returns: the text, ending with a newline.
    """
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for labels, value in family.samples:
            if labels:
                text = ",".join(
                    f'{key}="{_escape_label(item)}"' for key, item in labels.items()
                )
                lines.append(f"{family.name}{{{text}}} {_number(value)}")
            else:
                lines.append(f"{family.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _stat(stats: Mapping[str, Any], *path: str) -> float | None:
    found: Any = stats
    for key in path:
        if not isinstance(found, Mapping) or key not in found:
            return None
        found = found[key]
    if isinstance(found, bool) or not isinstance(found, int | float):
        return None
    return float(found)


# (metric name, help, path in the port agent's get_stats answer).
_AGENT_COUNTERS = [
    (
        "instrumentd_port_agent_bytes_received_total",
        "Bytes the port agent read from the instrument.",
        ("instrument", "bytes_in"),
    ),
    (
        "instrumentd_port_agent_bytes_sent_total",
        "Bytes the port agent wrote to the instrument.",
        ("instrument", "bytes_out"),
    ),
    (
        "instrumentd_port_agent_packets_total",
        "Packets the port agent handled (and recorded in its datalog).",
        ("packets",),
    ),
    (
        "instrumentd_port_agent_bytes_dropped_total",
        "Bytes the port agent threw away for clients too slow to take them.",
        ("bytes_dropped",),
    ),
    (
        "instrumentd_port_agent_datalog_bytes_dropped_total",
        "Bytes the port agent could not write to its datalog.",
        ("datalog", "bytes_dropped"),
    ),
]


def station_families(station: Station) -> list[MetricFamily]:
    """
    The station's metric families from what its instruments know now
    (their port agent counters as last fetched).

    :param station: the station.
    :returns: the families.
    """
    instruments = list(station.instruments.values())
    count = MetricFamily(
        "instrumentd_instruments", "gauge", "Instruments in the station."
    )
    count.add(len(instruments))
    state = MetricFamily(
        "instrumentd_state",
        "gauge",
        "1 for the state each instrument's driver is in now.",
    )
    connected = MetricFamily(
        "instrumentd_connected",
        "gauge",
        "1 if the instrument can be worked now (its driver is past connecting).",
    )
    samples = MetricFamily(
        "instrumentd_samples_total",
        "counter",
        "Samples (data particles) the instrument's driver produced.",
    )
    by_stream = MetricFamily(
        "instrumentd_stream_samples_total",
        "counter",
        "Samples the instrument's driver produced, by particle stream.",
    )
    latest = MetricFamily(
        "instrumentd_latest_sample_timestamp_seconds",
        "gauge",
        "When the instrument's latest sample was announced (Unix seconds).",
    )
    errors = MetricFamily(
        "instrumentd_errors_total",
        "counter",
        "Errors the instrument's driver announced.",
    )
    changes = MetricFamily(
        "instrumentd_state_changes_total",
        "counter",
        "State changes the instrument's driver announced.",
    )
    queued = MetricFamily(
        "instrumentd_queued_requests",
        "gauge",
        "Requests that change the instrument, running or waiting their turn.",
    )
    streams = MetricFamily(
        "instrumentd_event_streams",
        "gauge",
        "Open event streams carrying the instrument's events (its own "
        "GET .../events and GET /api/events).",
    )
    cut_off = MetricFamily(
        "instrumentd_event_streams_cut_off_total",
        "counter",
        "Event streams closed because their client fell too far behind.",
    )
    agent_up = MetricFamily(
        "instrumentd_port_agent_up",
        "gauge",
        "1 if the instrument's port agent answered for its counters.",
    )
    agent = [MetricFamily(name, "counter", text) for name, text, _ in _AGENT_COUNTERS]
    qc_samples = MetricFamily(
        "instrumentd_qc_samples_total",
        "counter",
        "Samples by the aggregate QARTOD flag of one field (pass, not_evaluated, "
        "suspect, fail, missing; the worst element of an array field), counted "
        "as each sample's record goes on.",
    )
    qc_held = MetricFamily(
        "instrumentd_qc_held_samples",
        "gauge",
        "Sample records held back for the next sample of their stream, whose "
        "spike test needs it.",
    )

    for each in instruments:
        name = each.name
        state.add(1, instrument=name, state=each.state)
        connected.add(1 if each.connected else 0, instrument=name)
        samples.add(each.samples, instrument=name)
        for stream, number in sorted(each.samples_by_stream.items()):
            by_stream.add(number, instrument=name, stream=stream)
        if each.latest_sample is not None:
            when = each.latest_sample.get("time")
            if isinstance(when, int | float):
                latest.add(when, instrument=name)
        errors.add(each.errors, instrument=name)
        changes.add(each.state_changes, instrument=name)
        queued.add(each.queued, instrument=name)
        streams.add(each.streams, instrument=name)
        cut_off.add(each.streams_cut_off, instrument=name)
        stats = each.port_agent_stats
        if each.port_agent is not None or stats is not None:
            agent_up.add(1 if stats is not None else 0, instrument=name)
        if stats is not None:
            for family, (_, _, path) in zip(agent, _AGENT_COUNTERS, strict=True):
                value = _stat(stats, *path)
                if value is not None:
                    family.add(value, instrument=name)
        quality = each.quality
        if quality is not None:
            qc_held.add(quality.held, instrument=name)
            for (stream, field_name, flag), number in sorted(quality.counts.items()):
                qc_samples.add(
                    number,
                    instrument=name,
                    stream=stream,
                    field=field_name,
                    flag=FLAG_NAMES.get(QartodFlag(flag), str(flag)),
                )
    return [
        count,
        state,
        connected,
        samples,
        by_stream,
        latest,
        errors,
        changes,
        queued,
        streams,
        cut_off,
        agent_up,
        *agent,
        qc_samples,
        qc_held,
        *sink_families(_sink_stats(station)),
    ]


def _sink_stats(station: Station) -> dict[str, Mapping[str, Any]]:
    # The station service's station has sinks; a bare Station has none.
    sinks = cast("Mapping[str, ISink]", getattr(station, "sinks", {}))
    return {name: sink.stats() for name, sink in sinks.items()}


# (metric name, type, help, key in a sink's stats()).
_SINK_VALUES = [
    (
        "instrumentd_sink_delivered_particles_total",
        "counter",
        "Particles the sink's endpoint accepted.",
        "delivered",
    ),
    (
        "instrumentd_sink_dropped_particles_total",
        "counter",
        "Particles the sink lost: not storable or spoolable, deleted at the "
        "spool's bound, or written after close.",
        "dropped",
    ),
    (
        "instrumentd_sink_evicted_particles_total",
        "counter",
        "Undelivered particles deleted to keep the spool within its bound.",
        "evicted",
    ),
    (
        "instrumentd_sink_retries_total",
        "counter",
        "Failed delivery attempts (each one retried).",
        "retries",
    ),
    (
        "instrumentd_sink_reconnects_total",
        "counter",
        "POSTs sent again at once because the server had closed the "
        "kept-alive connection.",
        "reconnects",
    ),
    (
        "instrumentd_sink_queued_particles",
        "gauge",
        "Particles spooled and not yet delivered.",
        "queued",
    ),
    (
        "instrumentd_sink_spool_bytes",
        "gauge",
        "Bytes the sink's spool segments take on disk.",
        "spooled_bytes",
    ),
    (
        "instrumentd_sink_spool_max_bytes",
        "gauge",
        "The most bytes the sink's spool may take.",
        "spool_max_bytes",
    ),
]


def sink_families(sinks: Mapping[str, Mapping[str, Any]]) -> list[MetricFamily]:
    """
    The sinks' metric families, from their :meth:`~ISink.stats`; a sink
    has a sample in each family whose value its stats have.

    :param sinks: each sink's stats, by name.
    :returns: the families.
    """
    families = [MetricFamily(name, kind, text) for name, kind, text, _ in _SINK_VALUES]
    at_bound = MetricFamily(
        "instrumentd_sink_spool_at_bound",
        "gauge",
        "1 while the sink's spool is at its bound and dropping the oldest particles.",
    )
    for name, stats in sinks.items():
        for family, (_, _, _, key) in zip(families, _SINK_VALUES, strict=True):
            value = _stat(stats, key)
            if value is not None:
                family.add(value, sink=name)
        if isinstance(stats.get("spool_at_bound"), bool):
            at_bound.add(1 if stats["spool_at_bound"] else 0, sink=name)
    return [*families, at_bound]


def collect(station: Station, timeout: float = 2.0) -> Deferred[str]:
    """
    Ask every port agent for its counters (at once, each for at most
    ``timeout`` seconds), then write the station's metrics.

    :param station: the station.
    :param timeout: seconds to wait for each port agent.
    :returns: a Deferred firing with the exposition text; it never fails
        because an agent is silent (that agent is reported down).
    """
    fetches = [
        instrument.refresh_port_agent_stats(timeout)
        for instrument in station.instruments.values()
    ]

    def write(_: object) -> str:
        return format_families(station_families(station))

    return gatherResults(fetches).addCallback(write)


def api_families(site: APISite) -> list[MetricFamily]:
    """
    The API server's own families: its open connections, and what its
    guards refused (a stranger filling the connections, large or
    unauthenticated bodies), so an operator sees an attack or a
    misbehaving client, not only its effects.

    :param site: the API's site.
    :returns: the families.
    """
    open_now = MetricFamily(
        "instrumentd_api_connections", "gauge", "API connections open now."
    )
    open_now.add(site.open_connections)
    families = [open_now]
    for name, text, value in (
        (
            "instrumentd_api_connections_refused_total",
            "API connections refused because every connection was busy.",
            site.connections_refused,
        ),
        (
            "instrumentd_api_connections_evicted_total",
            "Idle API connections closed to make room for a new one.",
            site.connections_evicted,
        ),
        (
            "instrumentd_api_connections_timed_out_total",
            "API connections closed after staying idle too long.",
            site.connections_timed_out,
        ),
        (
            "instrumentd_api_bodies_refused_total",
            "Request bodies refused before they were read (too large, or "
            "a change without the token).",
            site.bodies_refused,
        ),
    ):
        family = MetricFamily(name, "counter", text)
        family.add(value)
        families.append(family)
    return families
