"""
Sample record benchmark: the station's CPU per sample from the driver's
``SampleEvent`` to every consumer, in one process, without sockets.

One station instrument (``StationInstrument`` over a driver's bus) feeds
what a station feeds: a JSON-lines sink, an HTTP sink (its spool on disk,
its POSTs answered 200 at once without any HTTP, so
that only the station's work is counted; ``--http stub`` answers them by
``treq.testing.StubTreq``, a treq client and a Twisted web server in this
process, as before), and ``--streams`` event streams,
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

The instrument runs the real-time QC a station runs for an SBE 37 by
default (the shipped defaults: the gross range test of four fields);
``--no-qc`` runs none.  Event streams are the station's own
(:class:`~instrumentd.station.sse.EventStream`, coalescing as the station
does, over a request that counts what it is given and keeps nothing).
The clock runs as a station's reactor would: its turn ends every
``--per-turn`` samples (timers due at once run: the spool's write), and
it moves on a second every ``--per-second`` samples (the flush, batch and
coalescing timers; the stub HTTP server answers then).

``--instructions`` runs itself twice under ``valgrind --tool=callgrind``
(``--small`` and ``--large`` samples, both pre-building the particles of
the larger run) and prints the difference in instructions divided by the
difference in samples, so start-up cancels out; with ``--against DIR``
(an older ``instrumentd`` first on ``PYTHONPATH``) it does the same for
that version in the same run.  Instruction counts do not move with the
machine's load.

Run by hand (it is not a test): ``python bench/sample_record.py``.
Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from typing import Any

from _costrun import (
    add_instruction_options,
    callgrind,
    child_argv,
    instructions_table,
    side_env,
    sides,
)
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

import instrumentd
from instrumentd.driver.events import EventBus, SampleEvent
from instrumentd.instruments.seabird.sbe37smp.particles import SBE37SampleParticle
from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.station.eventfeed import EventFeeds
from instrumentd.station.instrument import StationInstrument
from instrumentd.station.sinks import HttpSink, JsonLinesSink, connect_sink
from instrumentd.station.sse import EventStream

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


class _Answer:
    """
    A 200 answer with an empty JSON body, as a treq response gives it.
    """

    code = 200
    headers = Headers()

    def content(self) -> Deferred[bytes]:
        return succeed(b"{}")


class _Endpoint:
    """
    The HTTP sink's client, answering every POST with 200 at once (as
    ``StubTreq`` does), with no HTTP at all: only the station's own work is
    counted (the spool, the batches, the body, the answer's handling), not
    a client's request, a server's parsing of it and an in-memory
    connection between them, as with ``StubTreq`` (``--http stub``).
    """

    def post(self, url: str, data: bytes, headers: object) -> Deferred[_Answer]:
        return succeed(_Answer())

    def flush(self) -> None:
        pass


class _Request:
    """
    What an event stream asks of its request: it counts what it is given.
    """

    channel = None

    def __init__(self) -> None:
        self.written = 0
        self._finished: Deferred[None] = Deferred()

    def setResponseCode(self, code: int) -> None:
        pass

    def setHeader(self, name: bytes, value: bytes) -> None:
        pass

    def notifyFinish(self) -> Deferred[None]:
        return self._finished

    def registerProducer(self, producer: object, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def finish(self) -> None:
        pass


def _qc_specs() -> Any:
    try:
        from instrumentd.qc import parse_qc
    except ImportError:
        return None
    # As a station parses an SBE 37's qc table when it has none: the
    # defaults.
    return parse_qc({})


def run(
    samples: int,
    streams: int,
    consumers: str = "all",
    per_second: int = 1,
    *,
    qc: bool = True,
    per_turn: int = 10,
    prebuild: int = 0,
    http: str = "direct",
) -> float:
    """
    :param prebuild: make this many particles at least (the callgrind runs
        make as many each, so that making them cancels out).
    :param http: ``direct`` for the sink's POSTs answered without HTTP
        (:class:`_Endpoint`), ``stub`` for ``StubTreq`` (a treq client and
        a Twisted web server over an in-memory connection).
    :returns: CPU seconds per sample.
    """
    clock = Clock()
    clock.advance(1796630400.0)
    driver = _Driver(clock)
    specs = _qc_specs() if qc else None
    extra: dict[str, Any] = {} if specs is None else {"qc": specs}
    instrument = StationInstrument("CTD01", driver, driver.events, clock=clock, **extra)  # type: ignore[arg-type]
    # A station connects sinks to the instrument (records) where it can; an
    # older version to the driver's bus (particles).
    source: Any = instrument if hasattr(instrument, "recorder") else driver.events
    with tempfile.TemporaryDirectory() as directory:
        files = JsonLinesSink(os.path.join(directory, "samples"), reactor=clock)
        stub: Any = StubTreq(_Ingest()) if http == "stub" else _Endpoint()
        http = HttpSink(
            "http://ingest.example/",
            spool_dir=os.path.join(directory, "spool"),
            reactor=clock,
            treq_client=stub,
            batch_size=100,
        )
        if consumers in ("all", "files"):
            connect_sink(source, "CTD01", files)
        if consumers in ("all", "http"):
            connect_sink(source, "CTD01", http)
        feeds = EventFeeds()
        watchers = [_Request() for _ in range(streams)]
        opened = [
            EventStream(request, [feeds[instrument]], clock, coalesce=0.1)
            for request in watchers
        ]
        for stream in opened:
            stream.start()
        start = clock.seconds() + NTP_UNIX_OFFSET
        particles = [
            SBE37SampleParticle(
                LINE,
                port_timestamp=start + n / per_second,
                driver_timestamp=start + n / per_second + 0.001,
            )
            for n in range(max(samples, prebuild))
        ]
        events = [
            SampleEvent(particle, time=clock.seconds() + n / per_second)
            for n, particle in enumerate(particles)
        ][:samples]
        publish = driver.events.publish
        before = time.process_time()
        for n, event in enumerate(events, 1):
            publish(event)
            if not n % per_turn:
                clock.advance(0)
            if not n % per_second:
                clock.advance(1)
                with contextlib.suppress(Exception):
                    stub.flush()
        files.flush()
        http.flush()
        elapsed = time.process_time() - before
        for stream in opened:
            stream.close()
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
    parser.add_argument(
        "--no-qc",
        dest="qc",
        action="store_false",
        help="no real-time QC (a station runs the defaults for an SBE 37)",
    )
    parser.add_argument(
        "--per-turn",
        type=int,
        default=10,
        help="samples in each turn of the reactor",
    )
    parser.add_argument(
        "--http",
        choices=["direct", "stub"],
        default="direct",
        help="the HTTP sink's POSTs answered without HTTP (direct: the "
        "station's work alone), or by treq's StubTreq (a client and a web "
        "server in this process)",
    )
    add_instruction_options(parser, 1000, 3000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prebuild", type=int, default=0, help=argparse.SUPPRESS)
    options = parser.parse_args()

    def once(samples: int) -> float:
        return run(
            samples,
            options.streams,
            options.consumers,
            options.per_second,
            qc=options.qc,
            per_turn=options.per_turn,
            prebuild=options.prebuild,
            http=options.http,
        )

    if options.child:
        once(options.samples)
        return
    if options.instructions:
        print(
            f"{options.consumers} consumers, {options.streams} streams, "
            f"qc {'on' if options.qc else 'off'}, {options.per_second} a second, "
            f"{options.per_turn} a turn, HTTP {options.http}"
        )
        instructions_table(
            "sample",
            sides([options.against] if options.against else []),
            lambda samples, tree: _instructions(options, samples, tree),
            options.small,
            options.large,
        )
        return
    figures = [once(options.samples) for _ in range(options.repeats)]
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


def _instructions(
    options: argparse.Namespace, samples: int, against: str | None
) -> int:
    """
    Instructions of a child run of ``samples`` samples under callgrind.
    """
    command = child_argv(
        __file__,
        samples=samples,
        prebuild=options.large,
        streams=options.streams,
        consumers=options.consumers,
        per_second=options.per_second,
        per_turn=options.per_turn,
        http=options.http,
    )
    command += [] if options.qc else ["--no-qc"]
    # The same hashes each run (str hashes order sets and move dicts'
    # probes): the instruction counts then repeat more closely.
    return callgrind(command, side_env(against, PYTHONHASHSEED="0"))


if __name__ == "__main__":
    main()
