"""
MQTT sink benchmark: how fast one station's
:class:`~instrumentd.station.sinks.MqttSink` gets sample records through
its spools to a real Mosquitto on loopback (acknowledged, QoS 1), and what
it costs.

Two kinds of rows:

- **burst**: ``--records`` records written at once, spread over 1, 10 or
  100 instruments; the time until the broker has acknowledged the last
  one gives records per second, and the process CPU time per record (this
  process: the sink, its spools, paho, the reactor; the broker is another
  process).
- **paced**: records written at a steady rate (1,000/s over 10
  instruments) for ``--seconds``; the latency from ``write()`` to the
  broker's PUBACK, p50 and p99, and CPU per record.

The broker is Debian's ``mosquitto`` started for the run (no persistence,
default limits, ``max_inflight_messages`` 20 towards subscribers, no
subscriber here), with the sink's spools on the disk the benchmark runs on
(``--dir``; the default is a temporary directory).

Run by hand (it is not a test): ``python bench/mqttsink_rate.py``.
Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import LoopingCall, deferLater

from instrumentd.mqtt import BrokerSettings
from instrumentd.station.record import SampleRecord, as_record
from instrumentd.station.sinks import MqttSink

MOSQUITTO = "/usr/sbin/mosquitto"


def record(instrument: str, n: int) -> SampleRecord:
    """
    A CTD-like record, encoded once as the station does.
    """
    return as_record(
        instrument,
        {
            "pkt_format_id": "JSON_Data",
            "pkt_version": 1,
            "stream_name": "ctdpf_sbe37_sample",
            "preferred_timestamp": "port_timestamp",
            "port_timestamp": 3974284800.0 + n,
            "quality_flag": "ok",
            "values": [
                {"value_id": "temperature", "value": 10.1234 + n * 1e-4},
                {"value_id": "conductivity", "value": 3.9},
                {"value_id": "pressure", "value": 10.1},
            ],
        },
    )


def start_broker(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = os.path.join(directory, "mosquitto.conf")
    with open(config, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        if os.getuid() == 0:
            f.write("user root\n")
    broker = subprocess.Popen(
        [MOSQUITTO, "-c", config], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    assert broker.stderr is not None
    for line in broker.stderr:
        if b" running" in line:
            break
    return broker, port


async def until(condition: Any) -> None:
    while not condition():
        await deferLater(reactor, 0.002, lambda: None)


def make_sink(port: int, spool: str) -> MqttSink:
    shutil.rmtree(spool, ignore_errors=True)
    return MqttSink(
        BrokerSettings(address=f"mqtt://127.0.0.1:{port}", client_id="bench"),
        station="bench",
        spool_dir=spool,
        registry=False,
        reactor=reactor,
    )


async def burst(
    port: int, spool: str, records: int, instruments: int
) -> dict[str, Any]:
    sink = make_sink(port, spool)
    await sink.client.when_connected()
    names = [f"I{i:03d}" for i in range(instruments)]
    prepared = [record(names[n % instruments], n) for n in range(records)]
    cpu, wall = time.process_time(), time.perf_counter()
    for n, each in enumerate(prepared):
        sink.write(names[n % instruments], each)
    await until(lambda: sink.delivered >= records)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await sink.close()
    return {
        "row": f"burst {records} / {instruments} instr.",
        "rate": records / wall,
        "cpu_us": cpu / records * 1e6,
        "p50": None,
        "p99": None,
    }


async def paced(
    port: int, spool: str, rate: int, seconds: float, instruments: int
) -> dict[str, Any]:
    sink = make_sink(port, spool)
    await sink.client.when_connected()
    names = [f"I{i:03d}" for i in range(instruments)]
    written: dict[tuple[str, int], float] = {}
    latencies: list[float] = []
    count = 0
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    # Latency: write() to PUBACK, seen as the instrument's delivered seq.
    delivered = dict.fromkeys(names, 0)

    def check() -> None:
        now = time.perf_counter()
        for name in names:
            outbox = sink._outboxes.get(name)
            if outbox is None:
                continue
            done = outbox.spool.delivered
            for seq in range(delivered[name] + 1, done + 1):
                latencies.append(now - written.pop((name, seq)))
            delivered[name] = done

    def feed() -> None:
        nonlocal count
        for _ in range(per_tick):
            name = names[count % instruments]
            sink.write(name, record(name, count))
            seq = sink._outboxes[name].spool.last_seq
            written[(name, seq)] = time.perf_counter()
            count += 1
        check()

    checker = LoopingCall(check)
    checker.start(0.001)
    cpu = time.process_time()
    feeder = LoopingCall(feed)
    feeder.start(tick)
    await deferLater(reactor, seconds, lambda: None)
    feeder.stop()
    await until(lambda: sink.delivered >= count)
    cpu = time.process_time() - cpu
    check()
    checker.stop()
    await sink.close()
    latencies.sort()
    return {
        "row": f"paced {rate}/s / {instruments} instr.",
        "rate": count / seconds,
        "cpu_us": cpu / count * 1e6,
        "p50": statistics.median(latencies) * 1e3,
        "p99": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


async def main(options: argparse.Namespace) -> None:
    directory = options.dir or tempfile.mkdtemp(prefix="mqttsink-bench-")
    broker, port = start_broker(directory)
    spool = os.path.join(directory, "spool")
    rows = []
    try:
        for instruments in (1, 10, 100):
            rows.append(await burst(port, spool, options.records, instruments))
        rows.append(await paced(port, spool, 1000, options.seconds, 10))
    finally:
        broker.terminate()
        broker.wait()
        if not options.dir:
            shutil.rmtree(directory, ignore_errors=True)
    print(
        f"{'run':32} {'records/s':>10} {'CPU µs/rec':>11} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for row in rows:
        p50 = "" if row["p50"] is None else f"{row['p50']:.2f}"
        p99 = "" if row["p99"] is None else f"{row['p99']:.2f}"
        print(
            f"{row['row']:32} {row['rate']:10.0f} {row['cpu_us']:11.0f} {p50:>8} {p99:>8}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--dir", help="where the broker's files and the spools go")
    options = parser.parse_args()

    def run() -> Deferred[None]:
        done = ensureDeferred(main(options))
        done.addErrback(lambda failure: failure.printTraceback())
        done.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]
        return done

    reactor.callWhenRunning(run)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
