"""
Sink benchmark: particles per second through the station's sinks.

- ``JsonLinesSink``: particles of 10 instruments written to files, timed
  until all are flushed and closed.
- ``HttpSink``: particles written while a loopback twisted.web receiver is
  up, timed until the receiver has them all ("live"); and particles written
  while the receiver is down, timed from its return until it has them all
  ("replay", i.e. draining the disk spool).

Particles are the dict form of a typical CTD sample (about 500 bytes of
JSON).  Writes are fed in slices of 1000 so the reactor also runs between
them, as it does in a station.

Run by hand (it is not a test): ``python bench/sink_throughput.py``.
Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from twisted.internet import defer, task
from twisted.internet.endpoints import serverFromString
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Site

from instrumentd.packet import NTP_UNIX_OFFSET
from instrumentd.station.sinks import HttpSink, JsonLinesSink

SLICE = 1000


def make_particle(number: int) -> dict[str, object]:
    """
    A CTD-like particle's dict form, one per second from 2026-11-24.
    """
    when = 1795478400.0 + number + NTP_UNIX_OFFSET
    return {
        "pkt_format_id": "JSON_Data",
        "pkt_version": 1,
        "stream_name": "ctd_parsed",
        "port_timestamp": when,
        "internal_timestamp": when - 0.1,
        "driver_timestamp": when + 0.05,
        "preferred_timestamp": "port_timestamp",
        "quality_flag": "ok",
        "values": [
            {"value_id": "temperature", "value": 12.3456 + number % 7},
            {"value_id": "conductivity", "value": 4.12345},
            {"value_id": "pressure", "value": 102.345},
            {"value_id": "salinity", "value": 34.5678},
            {"value_id": "sound_velocity", "value": 1498.765},
            {"value_id": "date_time", "value": "24 Nov 2026 12:00:00"},
        ],
    }


def feed(sink: Any, particles: list[dict[str, object]]) -> Iterator[None]:
    """
    Write the particles to the sink, yielding to the reactor every slice.
    """
    for index, particle in enumerate(particles):
        sink.write(f"ctd{index % 10}", particle)
        if index % SLICE == SLICE - 1:
            yield None


class Receiver(Resource):
    """
    Counts the particles POSTed to it and fires a Deferred at a target.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.target = 0
        self.done: defer.Deferred[None] = defer.Deferred()

    def expect(self, total: int) -> defer.Deferred[None]:
        """
        Wait for ``total`` particles in all.
        """
        self.target = total
        self.done = defer.Deferred()
        return self.done

    def render_POST(self, request: Any) -> bytes:
        """
        Count the batch.
        """
        body = json.loads(request.content.read())
        # "records" since the sample record (version 2); "particles" before.
        self.count += len(body.get("records", body.get("particles", [])))
        if self.count >= self.target and not self.done.called:
            self.done.callback(None)
        return b"{}"


class TrackingSite(Site):
    """
    A site that can close its open connections, as a server going down does.
    """

    # Plain HTTP/1.1 channels (not the HTTP/2-negotiating wrapper), so
    # their transports can be reached.
    protocol = HTTPChannel

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource)
        self.channels: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        """
        Remember each connection.
        """
        channel = super().buildProtocol(addr)
        self.channels.append(channel)
        return channel

    def close_connections(self) -> None:
        """
        Close every connection (stopListening alone leaves them open).
        """
        for channel in self.channels:
            if channel.transport is not None:
                channel.transport.loseConnection()
        self.channels.clear()


async def bench_files(reactor: Any, total: int) -> tuple[float, int]:
    """
    Seconds to write ``total`` particles to files, and the bytes written.
    """
    directory = tempfile.mkdtemp(prefix="sink-bench-")
    try:
        sink = JsonLinesSink(directory, reactor=reactor)
        particles = [make_particle(n) for n in range(total)]
        start = time.perf_counter()
        await task.cooperate(feed(sink, particles)).whenDone()
        await sink.close()
        elapsed = time.perf_counter() - start
        return elapsed, int(sink.stats()["bytes"])  # type: ignore[call-overload]
    finally:
        shutil.rmtree(directory)


async def bench_http(
    reactor: Any, total: int, batch_size: int
) -> tuple[float, float, float]:
    """
    Seconds for ``total`` particles live, seconds to spool them with the
    receiver down, and seconds to replay them once it is back.
    """
    receiver = Receiver()
    site = TrackingSite(receiver)
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
    number = port.getHost().port
    spool = tempfile.mkdtemp(prefix="sink-bench-spool-")
    sink = HttpSink(
        f"http://127.0.0.1:{number}/ingest",
        spool_dir=spool,
        batch_size=batch_size,
        batch_interval=0.05,
        retry_policy=lambda failures: 0.05,
        reactor=reactor,
    )
    try:
        particles = [make_particle(n) for n in range(total)]
        arrived = receiver.expect(total)
        start = time.perf_counter()
        await task.cooperate(feed(sink, particles)).whenDone()
        await arrived
        live = time.perf_counter() - start

        await port.stopListening()
        site.close_connections()
        start = time.perf_counter()
        await task.cooperate(feed(sink, particles)).whenDone()
        spooled = time.perf_counter() - start
        arrived = receiver.expect(2 * total)
        port = await serverFromString(
            reactor, f"tcp:{number}:interface=127.0.0.1"
        ).listen(site)
        start = time.perf_counter()
        await arrived
        replay = time.perf_counter() - start
        return live, spooled, replay
    finally:
        await sink.close()
        await defer.maybeDeferred(port.stopListening)
        shutil.rmtree(spool)


async def main(reactor: Any, total: int) -> None:
    """
    Run each case and print the table.
    """
    rows: list[tuple[str, str, str]] = []
    elapsed, size = await bench_files(reactor, total)
    rows.append(
        (
            "JsonLinesSink, 10 instruments",
            f"{total / elapsed:,.0f}",
            f"{size / elapsed / 1e6:.1f} MB/s of JSON lines",
        )
    )
    for batch_size in (100, 1000):
        live, spooled, replay = await bench_http(reactor, total, batch_size)
        rows.append(
            (
                f"HttpSink live, batch {batch_size}",
                f"{total / live:,.0f}",
                "write to receipt",
            )
        )
        rows.append(
            (
                f"HttpSink receiver down, batch {batch_size}",
                f"{total / spooled:,.0f}",
                "write() into the disk spool only",
            )
        )
        rows.append(
            (
                f"HttpSink replay, batch {batch_size}",
                f"{total / replay:,.0f}",
                "receiver back until it has all (incl. <= 50 ms retry wait)",
            )
        )
    width = max(len(row[0]) for row in rows)
    print(f"\n{total:,} particles each, CPU count {os.cpu_count()}\n")
    print(f"{'case':<{width}}  {'particles/s':>12}  note")
    print(f"{'-' * width}  {'-' * 12}  ----")
    for case, rate, note in rows:
        print(f"{case:<{width}}  {rate:>12}  {note}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--particles", type=int, default=50_000)
    arguments = parser.parse_args()
    task.react(
        lambda reactor: defer.Deferred.fromCoroutine(main(reactor, arguments.particles))
    )
