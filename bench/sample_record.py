"""
Sample record benchmark: the station's CPU per sample from the driver's
``SampleEvent`` to every consumer, in one process, without sockets.

One station instrument (``StationInstrument`` over a driver's bus) feeds
what a station feeds: a JSON-lines sink, an HTTP sink (its spool on disk,
its POSTs answered at once by ``treq.testing.StubTreq``), and ``--streams``
event streams (``EventFeed`` followers that keep the message and drop it),
and keeps the latest sample for the API.  Pre-built SBE 37 sample
particles (``SBE37SampleParticle``) are published one by one; the figure is
the process's CPU time (user + system) per sample, over ``--samples``
samples, min/median/max of ``--repeats`` runs.

It measures issue 11/18's change: each sample made into its record once
and encoded once for every consumer, against the old path (the particle's
``to_dict()`` and a JSON encoding per consumer).  To compare with an older
version, run this script with that version's package first on
``PYTHONPATH`` (the script uses only what both versions have).

``--consumers files|http|none`` feeds only the JSON-lines sink, only the
HTTP sink, or neither (the record made and kept as the latest sample: the
record step alone).  ``--per-second 500`` dates the samples as a station of
500 instruments at 1 Hz would (500 within each second) rather than one a
second.

Run by hand (it is not a test): ``python bench/sample_record.py``.
Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.web.resource import Resource

import instrumentd
from instrumentd.driver.events import EventBus, SampleEvent
from instrumentd.instruments.seabird.sbe37smp.particles import SBE37SampleParticle
from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.station.eventfeed import EventFeeds
from instrumentd.station.instrument import StationInstrument
from instrumentd.station.sinks import HttpSink, JsonLinesSink, connect_sink

LINE = b"# 10.5920,  3.76026,    9.716,  33.9385, 1490.813, 07 Dec 2026, 08:30:16\r\n"


class _Driver:
    """
    Just what a ``StationInstrument`` asks of a driver here.
    """

    def __init__(self, clock: Clock) -> None:
        self.events = EventBus(clock)

    def get_resource_state(self) -> str:
        return "AUTOSAMPLE"


class _Ingest(Resource):
    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        return b"{}"


def run(
    samples: int, streams: int, consumers: str = "all", per_second: int = 1
) -> float:
    """
    :returns: CPU seconds per sample.
    """
    clock = Clock()
    clock.advance(1796630400.0)
    driver = _Driver(clock)
    instrument = StationInstrument("CTD01", driver, driver.events, clock=clock)  # type: ignore[arg-type]
    # A station connects sinks to the instrument (records) where it can; an
    # older version to the driver's bus (particles).
    source: Any = instrument if hasattr(instrument, "recorder") else driver.events
    with tempfile.TemporaryDirectory() as directory:
        files = JsonLinesSink(os.path.join(directory, "samples"), reactor=clock)
        http = HttpSink(
            "http://ingest.example/",
            spool_dir=os.path.join(directory, "spool"),
            reactor=clock,
            treq_client=StubTreq(_Ingest()),
            batch_size=100,
        )
        if consumers in ("all", "files"):
            connect_sink(source, "CTD01", files)
        if consumers in ("all", "http"):
            connect_sink(source, "CTD01", http)
        feed = EventFeeds()[instrument]
        kept: list[bytes] = []
        for _ in range(streams):
            feed.follow(kept.append)
        start = clock.seconds() + NTP_UNIX_OFFSET
        particles = [
            SBE37SampleParticle(
                LINE,
                port_timestamp=start + n / per_second,
                driver_timestamp=start + n / per_second + 0.001,
            )
            for n in range(samples)
        ]
        events = [
            SampleEvent(particle, time=clock.seconds() + n)
            for n, particle in enumerate(particles)
        ]
        before = time.process_time()
        for event in events:
            driver.events.publish(event)
            if len(kept) > 1000:
                kept.clear()
        files.flush()
        http.flush()
        elapsed = time.process_time() - before
        files.close()
        http.close()
    return elapsed / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--consumers",
        choices=["all", "files", "http", "none"],
        default="all",
        help="the sinks fed: both, the JSON-lines sink, the HTTP sink, or "
        "none (the record made and kept as the latest sample only)",
    )
    parser.add_argument(
        "--per-second",
        type=int,
        default=1,
        help="samples within each second of sample time (500: a station of "
        "500 instruments at 1 Hz, whose samples share each second)",
    )
    options = parser.parse_args()
    figures = [
        run(options.samples, options.streams, options.consumers, options.per_second)
        for _ in range(options.repeats)
    ]
    micro = [each * 1e6 for each in figures]
    print(
        f"instrumentd {instrumentd.__version__} from {os.path.dirname(instrumentd.__file__)}"
    )
    print(
        f"{'samples':>8} {'streams':>8} {'consumers':>9} {'µs/sample min':>14} "
        f"{'median':>8} {'max':>8}"
    )
    print(
        f"{options.samples:>8} {options.streams:>8} {options.consumers:>9} "
        f"{min(micro):>14.1f} "
        f"{statistics.median(micro):>8.1f} {max(micro):>8.1f}"
    )


if __name__ == "__main__":
    main()
