"""
MQTT pipeline benchmark: samples from one station through a Mosquitto
broker to the shore collector, until they are in the collector's archive.

- The station side is the station's own MQTT sink
  (:class:`~instrumentd.station.sinks.MqttSink`: disk spool, QoS 1
  publications, ``window`` in flight per instrument) in this process, fed
  sample records version 2 of a CTD (about 450 bytes of JSON).
- The broker is a real ``mosquitto`` (Debian's 2.0), a child process on
  loopback with the settings printed below the tables.
- The collector is a real ``twistd instrumentd collect`` process; its
  archive file is followed with inotify (no polling), so a sample counts
  as arrived when its line is in the archive.

Three figures:

1. **throughput**: N samples written to the sink as fast as it takes them
   (1,000 per reactor turn), timed from the first write until the last
   line is in the archive: samples per second end to end;
2. **latency at a rate** (default 1,000 samples/s for 10 s): for each
   sample, the time from its write to the sink until its line is in the
   archive: p50, p99, max;
3. **collector CPU** during (2): CPU seconds of the collector process per
   second of the run, i.e. the share of a core it needs for that rate.

Run by hand (not a test): ``python bench/mqtt_pipeline.py [--samples
20000] [--rate 1000] [--seconds 10] [--durable]``.  Prints tables; asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.inotify import IN_CLOSE_WRITE, IN_CREATE, IN_MODIFY, INotify
from twisted.python.filepath import FilePath

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from instrumentd.mqtt import BrokerSettings
from instrumentd.station.sinks import MqttSink
from tests.brokersupport import Broker
from tests.collectorsupport import CollectorProcess

#: Broker settings for --durable: the database saved after every change
#: (a broker killed loses nothing it acknowledged), at a cost.
DURABLE = "autosave_on_changes true\nautosave_interval 1"

#: Always: no bound on a client's queue (the default, 1,000 messages,
#: drops QoS 1 messages for a collector that is away).
QUEUE = "max_queued_messages 0"

INSTRUMENT = "CTD01"


def record(number: int, sent: float) -> dict[str, Any]:
    """
    A CTD sample record, version 2; ``sent`` rides in its values.
    """
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sent))
    return {
        "record": "instrumentd.sample",
        "version": 2,
        "instrument": INSTRUMENT,
        "stream": "ctdpf_sample",
        "time": f"{stamp}.{int(sent % 1 * 1e6):06d}Z",
        "ntp_time": sent + 2208988800.0,
        "time_source": "driver_timestamp",
        "driver_timestamp": sent + 2208988800.0,
        "quality_flag": "ok",
        "values": {
            "temperature": 10.1234 + number % 7,
            "conductivity": 3.91234,
            "pressure": 10.123,
            "salinity": 34.5678,
            "sound_velocity": 1498.765,
            "number": number,
            "sent": sent,
        },
        "units": {
            "temperature": "degree_Celsius",
            "conductivity": "S m-1",
            "pressure": "dbar",
            "salinity": "1e-3",
            "sound_velocity": "m s-1",
        },
        "standard_names": {"temperature": "sea_water_temperature"},
    }


class ArchiveFollower:
    """
    Follows the collector's archive with inotify: each new line's
    ``number`` and the time it was read.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.arrived: dict[int, float] = {}
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}
        self._waiting: tuple[int, defer.Deferred[None]] | None = None
        self.notifier = INotify()
        self.notifier.startReading()
        self.notifier.watch(
            FilePath(directory),
            mask=IN_MODIFY | IN_CREATE | IN_CLOSE_WRITE,
            autoAdd=True,
            recursive=True,
            callbacks=[self._changed],
        )

    def _changed(self, watch: Any, path: FilePath[Any], mask: int) -> None:
        now = time.monotonic()
        name = os.fsdecode(path.path)
        if not name.endswith(".jsonl") or "/." in name:
            return
        offset = self._offsets.get(name, 0)
        try:
            with open(name, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return
        self._offsets[name] = offset + len(data)
        data = self._partial.pop(name, b"") + data
        *lines, rest = data.split(b"\n")
        if rest:
            self._partial[name] = rest
        for line in lines:
            if line:
                self.arrived[json.loads(line)["values"]["number"]] = now
        if self._waiting is not None and len(self.arrived) >= self._waiting[0]:
            waiting = self._waiting[1]
            self._waiting = None
            waiting.callback(None)

    def until(self, count: int) -> defer.Deferred[None]:
        """
        :returns: a Deferred firing once ``count`` lines have arrived.
        """
        waiting: defer.Deferred[None] = defer.Deferred()
        if len(self.arrived) >= count:
            waiting.callback(None)
        else:
            self._waiting = (count, waiting)
        return waiting


def cpu_seconds(pid: int) -> float:
    """
    User and system CPU seconds of a process so far (Linux /proc).
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main(options: argparse.Namespace) -> None:
    work = tempfile.mkdtemp(prefix="instrumentd-mqtt-bench-")
    extra = QUEUE + ("\n" + DURABLE if options.durable else "")
    if options.inflight is not None:
        extra += f"\nmax_inflight_messages {options.inflight}"
    broker = Broker(os.path.join(work, "broker"), persistence=True, extra=extra)
    collector: CollectorProcess | None = None
    sink: MqttSink | None = None
    try:
        await broker.start()
        collector = CollectorProcess(os.path.join(work, "shore"), broker.url)
        await collector.start()
        collector_pid = collector.process.pid
        assert collector_pid is not None
        follower = ArchiveFollower(collector.archive)
        sink = MqttSink(
            BrokerSettings(broker.url, client_id="bench-station"),
            station="bench",
            spool_dir=os.path.join(work, "spool"),
            registry=False,
            reactor=reactor,
            **({"window": options.window} if options.window else {}),
        )
        await sink.client.when_connected()
        rows = []

        # 1. Throughput.
        total = options.samples
        cpu_start = cpu_seconds(collector_pid)
        own_start = time.process_time()
        broker_pid = broker.process.pid if broker.process is not None else None
        broker_start = cpu_seconds(broker_pid) if broker_pid else 0.0
        start = time.monotonic()
        for first in range(0, total, 1000):
            for number in range(first, min(first + 1000, total)):
                sink.write(INSTRUMENT, record(number, time.time()))
            await task.deferLater(reactor, 0, lambda: None)
        fed = time.monotonic() - start
        await follower.until(total)
        elapsed = time.monotonic() - start
        busy = cpu_seconds(collector_pid) - cpu_start
        own = time.process_time() - own_start
        brokered = (cpu_seconds(broker_pid) - broker_start) if broker_pid else 0.0
        rows.append(
            (
                "throughput",
                f"{total} samples: {total / elapsed:,.0f} samples/s end to end "
                f"(written to the sink in {fed:.2f} s, archived after {elapsed:.2f} s; "
                f"cores meanwhile: collector {busy / elapsed:.2f}, broker "
                f"{brokered / elapsed:.2f}, station sink (this process) "
                f"{own / elapsed:.2f})",
            )
        )

        # 2. and 3. Latency and collector CPU at a rate.
        rate, seconds = options.rate, options.seconds
        base = total
        count = int(rate * seconds)
        sent: dict[int, float] = {}
        tick = 0.01
        per_tick = max(1, round(rate * tick))
        cpu_before = cpu_seconds(collector_pid)
        wall_before = time.monotonic()
        number = base
        next_tick = time.monotonic()
        while number < base + count:
            for _ in range(per_tick):
                if number >= base + count:
                    break
                sent[number] = time.monotonic()
                sink.write(INSTRUMENT, record(number, time.time()))
                number += 1
            next_tick += tick
            await task.deferLater(
                reactor, max(0.0, next_tick - time.monotonic()), lambda: None
            )
        await follower.until(base + count)
        wall = time.monotonic() - wall_before
        cpu = cpu_seconds(collector_pid) - cpu_before
        latencies = [
            (follower.arrived[n] - sent[n]) * 1000 for n in range(base, base + count)
        ]
        rows.append(
            (
                f"latency at {rate:,.0f}/s",
                f"{count} samples over {seconds:g} s: p50 {percentile(latencies, 0.5):.1f} ms, "
                f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms",
            )
        )
        rows.append(
            (
                "collector CPU",
                f"{cpu / wall:.3f} of a core at {count / wall:,.0f} samples/s "
                f"({cpu / wall * 1000 / (count / wall):.3f} of a core per 1,000 samples/s)",
            )
        )
        status = await collector.get()
        rows.append(
            (
                "collector",
                f"archived {status['archived']}, duplicates {status['duplicates']}, "
                f"open gaps {status['gaps']['open']}",
            )
        )
        width = max(len(name) for name, _ in rows)
        print(f"{'figure'.ljust(width)}  value")
        for name, value in rows:
            print(f"{name.ljust(width)}  {value}")
        print()
        print("broker settings (mosquitto.conf):")
        with open(os.path.join(broker.directory, "mosquitto.conf")) as f:
            for line in f:
                if not line.startswith(("log_", "connection_messages", "user ")):
                    print(f"  {line.rstrip()}")
        print(
            "station MQTT sink: window per instrument "
            f"{sink._window}, QoS 1; collector: manual acknowledgement after "
            "each batch is written, fsync off"
        )
    finally:
        if sink is not None:
            await sink.close()
        if collector is not None:
            await collector.stop()
        await broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--durable",
        action="store_true",
        help="the broker saves its database after every change",
    )
    parser.add_argument(
        "--inflight",
        type=int,
        help="the broker's max_inflight_messages (QoS 1 messages sent to a "
        "client and not yet acknowledged; Mosquitto's default is 20)",
    )
    parser.add_argument(
        "--window",
        type=int,
        help="the station MQTT sink's window (messages in flight per instrument)",
    )
    options = parser.parse_args()
    task.react(lambda _: defer.Deferred.fromCoroutine(main(options)))
