"""
HTTP sink benchmark: can the sink keep up with a station's samples?

A real ``twisted.web`` receiver runs in a child process (this script with
``--serve``): it counts the records of each POST and answers after
``--delay-ms`` (a distant or busy ingest service).  In this process an
``HttpSink`` is fed SBE 37 sample records (version 2, built once before
the clock starts, as a station hands them over) at ``--rate`` per second
for ``--seconds``, from a timer ticking 100 times a second, as a station's
instruments would.  Each case reports:

- **delivered/s**: records the receiver acknowledged per second of the
  feed, up to the end of the feed;
- **lag s**: how long after the last write the receiver had everything
  (0 means the sink kept up);
- **CPU µs/record**: this process's CPU time per record (the sink's write
  into the spool, reading back, the POSTs), minus the feed loop's own cost
  measured without a sink;
- **most queued**: the largest backlog in the spool, records.

Cases: ``batch_size`` x receiver delay, each ``--repeats``
times, min / median / max.  Run by hand (it is not a test):
``python bench/httpsink_rate.py [--rate 5000] [--seconds 10] [--repeats 3]
[--turn 2]``.

``--turn S`` feeds as a station whose core is full does: every turn of
the reactor lasts ``S`` seconds (busy), each writing the records due since
the last, as a station of 5,000 instruments did with turns of 1 to 5 s.
The sink can move on only between turns.
Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, task
from twisted.internet.protocol import ProcessProtocol

from instrumentd.station.sinks import HttpSink

TICKS = 100


def serve(delay: float) -> None:
    """
    The receiver (child process): POSTs anywhere, counted; prints its
    port, then the running total after every POST.
    """
    from twisted.internet import reactor
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET, Site

    total = [0]

    class Ingest(Resource):
        isLeaf = True

        def render_POST(self, request: Any) -> Any:
            body = json.loads(request.content.read())
            total[0] += len(body.get("records", body.get("particles", [])))
            sys.stdout.write(f"{total[0]}\n")
            sys.stdout.flush()
            if delay <= 0:
                return b"{}"

            def answer() -> None:
                request.write(b"{}")
                request.finish()

            reactor.callLater(delay, answer)  # type: ignore[attr-defined]
            return NOT_DONE_YET

    port = reactor.listenTCP(0, Site(Ingest()), interface="127.0.0.1")  # type: ignore[attr-defined]
    sys.stdout.write(f"port {port.getHost().port}\n")
    sys.stdout.flush()
    reactor.run()  # type: ignore[attr-defined]


class Receiver(ProcessProtocol):
    """
    The receiver's process, seen from here: its port and running total.
    """

    def __init__(self) -> None:
        self.port: defer.Deferred[int] = defer.Deferred()
        self.total = 0
        self.target = 0
        self.done: defer.Deferred[float] | None = None
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._partial = b""

    def expect(self, total: int) -> defer.Deferred[float]:
        self.target = total
        self.done = defer.Deferred()
        if self.total >= total:
            self.done.callback(time.perf_counter())
        return self.done

    def outReceived(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(b"port "):
                self.port.callback(int(line.split()[1]))
            else:
                self.total = int(line)
                done = self.done
                if done is not None and not done.called and self.total >= self.target:
                    done.callback(time.perf_counter())

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


def make_records(count: int) -> list[Any]:
    """
    ``count`` SBE 37 sample records, built the way a station builds them.
    """
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from driver_parse import sample_lines
    from twisted.internet.task import Clock

    from instrumentd.instruments.seabird.sbe37smp import SBE37SampleParticle
    from instrumentd.station.record import build_record

    clock = Clock()
    lines = sample_lines(min(count, 20_000))
    particles = [
        SBE37SampleParticle(line, port_timestamp=3.9e9 + k, clock=clock)
        for k, line in enumerate(lines)
    ]
    return [
        build_record(f"ctd{k % 500}", particles[k % len(particles)])
        for k in range(count)
    ]


async def feed(
    reactor: Any,
    sink: Any,
    records: list[Any],
    rate: int,
    seconds: float,
    *,
    turn: float = 0.0,
) -> int:
    """
    Write ``rate`` records a second for ``seconds``; the most queued.  With
    ``turn``, every turn of the reactor holds it (busy) for ``turn``
    seconds and writes the records due since the last.
    """
    total = round(rate * seconds)
    state = {"next": 0, "queued": 0}
    began = time.perf_counter()

    def tick() -> None:
        start = state["next"]
        if turn:
            due = min(total, round(rate * (time.perf_counter() - began)))
        else:
            due = min(total, start + rate // TICKS)
        for record in records[start:due]:
            if sink is not None:
                sink.write(record["instrument"], record)
        state["next"] = due
        if turn:
            until = time.perf_counter() + turn
            while time.perf_counter() < until:
                pass
        if sink is not None:
            state["queued"] = max(state["queued"], sink.queued)
        if due >= total:
            loop.stop()

    loop = task.LoopingCall(tick)
    loop.clock = reactor
    # With turn, a call at every turn of the reactor, so that each lasts
    # ``turn``: a station whose core is full.
    await loop.start(0.0 if turn else 1.0 / TICKS)
    return state["queued"]


async def run_case(
    reactor: Any,
    receiver: Receiver,
    *,
    port: int,
    records: list[Any],
    args: argparse.Namespace,
    batch: int,
    feed_cpu: float,
) -> dict[str, float]:
    spool = tempfile.mkdtemp(prefix="sink-rate-")
    sink = HttpSink(
        f"http://127.0.0.1:{port}/ingest",
        spool_dir=spool,
        batch_interval=0.05,
        retry_policy=lambda failures: 0.05,
        batch_size=batch,
        reactor=reactor,
    )
    try:
        total = len(records)
        arrived = receiver.expect(receiver.total + total)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        queued = await feed(
            reactor, sink, records, args.rate, args.seconds, turn=args.turn
        )
        fed = time.perf_counter()
        got_by_end = receiver.total - (receiver.target - total)
        end = await arrived
        cpu = time.process_time() - cpu0
        return {
            "rate": got_by_end / (fed - t0),
            "lag": max(0.0, end - fed),
            "cpu": max(0.0, cpu - feed_cpu) / total * 1e6,
            "queued": queued,
        }
    finally:
        await sink.close()
        shutil.rmtree(spool, ignore_errors=True)


def spread(values: list[float], digits: int = 0) -> str:
    return (
        f"{min(values):,.{digits}f} / {statistics.median(values):,.{digits}f} / "
        f"{max(values):,.{digits}f}"
    )


async def main(reactor: Any, args: argparse.Namespace) -> None:
    records = make_records(int(args.rate * args.seconds))
    # The feed loop's own cost, without a sink.
    cpu0 = time.process_time()
    await feed(reactor, None, records, args.rate, args.seconds, turn=args.turn)
    feed_cpu = time.process_time() - cpu0
    rows = []
    for delay in args.delays:
        receiver = Receiver()
        process = reactor.spawnProcess(
            receiver,
            sys.executable,
            [sys.executable, os.path.abspath(__file__), "--serve", str(delay / 1000)],
            env=os.environ,
        )
        port = await receiver.port
        try:
            for batch in args.batches:
                results = [
                    await run_case(
                        reactor,
                        receiver,
                        port=port,
                        records=records,
                        args=args,
                        batch=batch,
                        feed_cpu=feed_cpu,
                    )
                    for _ in range(args.repeats)
                ]
                rows.append((delay, batch, results))
        finally:
            process.signalProcess("TERM")
            await receiver.ended
    if args.turn:
        print(f"\nevery reactor turn {args.turn:g} s long (busy)")
    print(
        f"\nHTTP sink fed {args.rate:,} records/s for {args.seconds:g} s "
        f"(SBE 37 records v2), receiver in a child process; {args.repeats} "
        "repeats, min / median / max"
    )
    print(
        f"{'delay ms':>8} {'batch':>6} {'delivered/s':>24} "
        f"{'lag s':>20} {'CPU µs/record':>20} {'most queued':>22}"
    )
    for delay, batch, results in rows:
        print(
            f"{delay:>8g} {batch:>6} "
            f"{spread([r['rate'] for r in results]):>24} "
            f"{spread([r['lag'] for r in results], 2):>20} "
            f"{spread([r['cpu'] for r in results], 1):>20} "
            f"{spread([r['queued'] for r in results]):>22}"
        )
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--turn",
        type=float,
        default=0.0,
        help="seconds every reactor turn lasts (busy); 0 for 100 ticks/s",
    )
    parser.add_argument(
        "--delays",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.0, 50.0],
        help="receiver delays to try, ms, comma-separated",
    )
    parser.add_argument(
        "--batches",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 1000],
        help="batch sizes to try, comma-separated",
    )
    arguments = parser.parse_args()
    if arguments.serve is not None:
        serve(arguments.serve)
    else:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
