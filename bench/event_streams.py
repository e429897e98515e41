"""
Event stream benchmark: the station's CPU per event with N event-stream
clients.

A station API (``StationAPI`` behind ``APISite``) of one instrument is
served on a loopback port in this process; N clients, each a child process
that reads its stream and throws it away, follow it; then samples (a
typical CTD particle, about 900 bytes as an SSE message) are published in
slices, each slice once every client has read the previous one, so that no
client falls behind.  The figure is this process's CPU time (user +
system, i.e. the station's alone: the clients are other processes) per
event, divided also per event and client.

``--instruments M`` serves M instruments, samples published to each in
turn, and each client follows all of them: with ``--endpoint instrument``
on M connections of ``/api/instruments/{name}/events``, with ``--endpoint
station`` on one of ``/api/events`` (only on versions that have it; the
default there).  To compare with an older version, run this script with that
version's package first on ``PYTHONPATH``.

Run by hand (it is not a test): ``python bench/event_streams.py``.
Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

from twisted.internet import defer, task
from twisted.internet.protocol import ProcessProtocol
from zope.interface import implementer

from instrumentd.driver.events import EventBus, SampleEvent
from instrumentd.interfaces import IInstrumentDriver
from instrumentd.station.api import StationAPI
from instrumentd.station.apisite import APISite
from instrumentd.station.instrument import Station, StationInstrument

SLICE = 200

#: A child that reads one event stream, and says how many events it read
#: after each slice's last one (the line ``n``).
READER = r"""
import selectors, socket, sys
port, slice_, paths = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
chooser = selectors.DefaultSelector()
tails = {}
for path in paths:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    chooser.register(s, selectors.EVENT_READ)
    tails[s] = b""
events = 0
sys.stdout.write("open\n"); sys.stdout.flush()
while tails:
    for key, _ in chooser.select():
        s = key.fileobj
        data = s.recv(1 << 20)
        if not data:
            chooser.unregister(s)
            del tails[s]
            continue
        text = tails[s] + data
        found = text.count(b"\nevent: SAMPLE")
        tails[s] = text[-16:]
        if found:
            before = events
            events += found
            if events // slice_ != before // slice_:
                sys.stdout.write(f"{events}\n"); sys.stdout.flush()
"""


class Particle:
    """
    A CTD-like particle.
    """

    stream_name = "ctdpf_sample"

    def __init__(self, number: int) -> None:
        self.number = number

    def to_dict(self) -> dict[str, object]:
        when = 4005615215.0 + self.number
        return {
            "pkt_format_id": "JSON_Data",
            "pkt_version": 1,
            "stream_name": self.stream_name,
            "port_timestamp": when,
            "internal_timestamp": when - 1,
            "driver_timestamp": when + 0.0004,
            "preferred_timestamp": "port_timestamp",
            "quality_flag": "ok",
            "values": [
                {
                    "value_id": "temperature",
                    "value": 10.7715,
                    "units": "degree_Celsius",
                },
                {"value_id": "conductivity", "value": 3.77181, "units": "S m-1"},
                {"value_id": "pressure", "value": 9.545, "units": "dbar"},
                {"value_id": "salinity", "value": 33.8877, "units": "1"},
                {"value_id": "sound_velocity", "value": 1491.384, "units": "m s-1"},
                {"value_id": "instrument_time", "value": "2026-12-07T06:53:34+00:00"},
            ],
        }


@implementer(IInstrumentDriver)
class QuietDriver:
    """
    Just enough of a driver for the station to present its events.
    """

    def __init__(self, bus: EventBus) -> None:
        self.events = bus

    def get_resource_state(self) -> str:
        return "AUTOSAMPLE"

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


class Reader(ProcessProtocol):
    def __init__(self) -> None:
        self.counts: list[int] = []
        self.waiting: list[tuple[int, defer.Deferred[None]]] = []
        self.opened: defer.Deferred[None] = defer.Deferred()
        self.buffer = b""

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line == b"open":
                self.opened.callback(None)
            else:
                self.counts.append(int(line))
        for count, waiter in list(self.waiting):
            if self.counts and self.counts[-1] >= count:
                self.waiting.remove((count, waiter))
                waiter.callback(None)

    def wait(self, count: int) -> defer.Deferred[None]:
        waiter: defer.Deferred[None] = defer.Deferred()
        if self.counts and self.counts[-1] >= count:
            waiter.callback(None)
        else:
            self.waiting.append((count, waiter))
        return waiter


async def run_once(
    reactor: Any,
    clients: int,
    instruments: int,
    events: int,
    endpoint: str,
    *,
    coalesce: float = 0.0,
) -> tuple[float, int]:
    buses = [EventBus(reactor) for _ in range(instruments)]
    followed = [
        StationInstrument(f"ctd{n}", QuietDriver(bus), bus, clock=reactor)
        for n, bus in enumerate(buses)
    ]
    api = StationAPI(Station(followed, clock=reactor), clock=reactor)
    if coalesce:
        # As the station sets it (versions before 9fff350 have none).
        api.stream_coalesce = coalesce
    streams = clients * (1 if endpoint == "station" else instruments)
    site = APISite(
        api, authorize=api.authorize, reactor=reactor, max_connections=streams + 10
    )
    api.max_streams = streams + 10
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    if endpoint == "station":
        paths = ["/api/events"]
    else:
        paths = [f"/api/instruments/ctd{n}/events" for n in range(instruments)]
    readers = []
    for _ in range(clients):
        reader = Reader()
        argv = [sys.executable, "-c", READER, str(port.getHost().port), str(SLICE)]
        reactor.spawnProcess(reader, sys.executable, argv + paths, env=os.environ)
        readers.append(reader)
    await defer.gatherResults([r.opened for r in readers])
    while len(api.streams) < streams:
        await task.deferLater(reactor, 0.01, lambda: None)
    started = time.process_time()
    published = 0
    while published < events:
        for _ in range(SLICE):
            bus = buses[published % instruments]
            bus.publish(SampleEvent(Particle(published), time=reactor.seconds()))
            published += 1
        await defer.gatherResults([r.wait(published) for r in readers])
    cpu = time.process_time() - started
    cut_off = sum(each.streams_cut_off for each in followed)
    api.close()
    for reader in readers:
        if reader.transport is not None:
            reader.transport.signalProcess("KILL")
    await site.close_connections()
    await port.stopListening()
    return cpu, cut_off


async def main(reactor: Any) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,10,50")
    parser.add_argument(
        "--instruments",
        type=int,
        default=1,
        help="instruments, each client following all (samples round-robin)",
    )
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--endpoint", choices=["instrument", "station"], default=None)
    parser.add_argument(
        "--coalesce",
        type=float,
        default=0.0,
        help="seconds a stream's messages wait to be written together "
        "(the station's is 0.1; 0 writes each event at once)",
    )
    options = parser.parse_args()
    endpoint = options.endpoint
    if endpoint is None:
        endpoint = "station" if _has_station_stream() else "instrument"
    print(
        f"endpoint: {endpoint}; {options.instruments} instruments; "
        f"{options.events} events; {options.repeats} runs; "
        f"coalesce {options.coalesce} s"
    )
    print(
        f"{'clients':>7}  {'µs/event min':>12}  {'median':>8}  {'max':>8}  "
        f"{'µs/event/client':>15}  cut off"
    )
    for clients in [int(n) for n in options.clients.split(",")]:
        figures = []
        cut = 0
        for _ in range(options.repeats):
            cpu, cut_off = await run_once(
                reactor,
                clients,
                options.instruments,
                options.events,
                endpoint,
                coalesce=options.coalesce,
            )
            figures.append(cpu / options.events * 1e6)
            cut += cut_off
        median = statistics.median(figures)
        print(
            f"{clients:>7}  {min(figures):>12.1f}  {median:>8.1f}  "
            f"{max(figures):>8.1f}  {median / clients:>15.1f}  {cut}"
        )


def _has_station_stream() -> bool:
    try:
        import instrumentd.station.api._events  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
