"""
Port agent benchmark: where each relayed message's latency goes, and what
the agent was doing when a message was slow.

``portagent_throughput.py --only latency`` gives each path's p50 and p99;
this runs the same relay (a real ``twistd instrumentd port-agent`` process,
datalog on, 1,000 messages a second of 64 bytes, paced by this process)
with ``bench/_latprobe`` on the agent's ``PYTHONPATH``, which stamps every
message inside the agent (see that module).  This process stamps when the
source's bytes went to the socket and when the client received them, so
each message's latency splits into stages:

- ``source``: the source's stamp to its ``send`` (this process's own
  Twisted write, the same for socat);
- ``wake``: that send to the agent's poll returning;
- ``to read``: the poll returning to the read reaching the agent;
- ``to send``: framing, the datalog, the outlet;
- ``send``: the ``send`` to the client's socket;
- ``after``: the send's end to the agent's next poll (the rest of its turn);
- ``receipt``: the send's end to the client's ``dataReceived``.

For the slowest messages (``--worst``) it says how many had a garbage
collection, a run of the agent's timers over 3 µs or a datalog write-out
within the 2 ms before their send, in how many separate episodes they came
(messages at most 5 apart are one), and whether the agent and this process
ran on the same CPU; and how the collector's generation-0 count moved over
the run (0 means the relay path leaves nothing for it).  socat's latency,
split into ``source`` and the rest, follows each repeat.  Prints tables;
nothing is asserted.  Run it as ``python bench/portagent_latency_stages.py
[--repeats 3] [--worst 100] [--no-socat]``; under ``chrt -f 10`` every
process of the run is real-time, shielded from the rest of a shared
machine's load (the agent keeps the policy).
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import json
import os
import statistics
import tempfile
import time
from typing import Any

import portagent_throughput as relay  # this script's directory: bench/
from twisted.internet import defer, task, tcp

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_latprobe")
_cpu = ctypes.CDLL(None).sched_getcpu
#: When the source's bytes of each stamp went to the socket, and when and on
#: which CPU the client received them.
SENT: dict[int, int] = {}
RECEIVED: dict[int, tuple[int, int]] = {}

_write_some = tcp.Connection.writeSomeData


def _stamped_write(self: Any, data: Any) -> Any:
    at = time.monotonic_ns()
    written = _write_some(self, data)
    if bytes(data[:1]) == b"L":
        SENT[int(bytes(data[1:20]))] = at
    return written


def _receipts(latencies: list[float]) -> Any:
    partial = bytearray()

    def on_payload(payload: bytes, received: int) -> None:
        cpu = _cpu()
        partial.extend(payload)
        *lines, rest = bytes(partial).split(b"\n")
        partial[:] = rest
        for line in lines:
            if line.startswith(b"L"):
                RECEIVED[int(line[1:20])] = (received, cpu)

    return on_payload


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


STAGES = ("source", "wake", "to read", "to send", "send", "after", "receipt", "total")


def agent_rows(probe: dict[str, Any]) -> list[dict[str, Any]]:
    """
    One row per message the agent relayed and the client received: its
    stages in µs and what is needed to place it.
    """
    turns = [t[0] for t in probe["turns"]]
    rows = []
    for stamp, _in, out, read, cpu, gen0, send, sent in probe["messages"]:
        if stamp not in RECEIVED or stamp not in SENT:
            continue
        received, client_cpu = RECEIVED[stamp]
        source = SENT[stamp]
        after = bisect.bisect_left(turns, sent)
        rows.append(
            {
                "stamp": stamp,
                "source": (source - stamp) / 1e3,
                "wake": (out - source) / 1e3,
                "to read": (read - out) / 1e3,
                "to send": (send - read) / 1e3,
                "send": (sent - send) / 1e3,
                "after": (turns[after] - sent) / 1e3 if after < len(turns) else 0.0,
                "receipt": (received - sent) / 1e3,
                "total": (received - stamp) / 1e3,
                "same_cpu": cpu == client_cpu,
                "gen0": gen0,
                "from": source - 2_000_000,
                "to": sent,
            }
        )
    return rows


def episodes(indices: list[int], gap: int = 5) -> int:
    """
    How many runs of messages at most ``gap`` apart ``indices`` make.
    """
    count, last = 0, None
    for i in sorted(indices):
        if last is None or i - last > gap:
            count += 1
        last = i
    return count


def report_agent(repeat: int, probe: dict[str, Any], worst_count: int) -> None:
    rows = agent_rows(probe)
    if not rows:
        print(f"repeat {repeat}: no message matched (was the probe loaded?)")
        return
    for index, row in enumerate(sorted(rows, key=lambda r: r["stamp"])):
        row["index"] = index
    rows.sort(key=lambda r: r["total"])
    worst = rows[-worst_count:]
    print(f"\nrepeat {repeat}: agent, {len(rows)} messages, µs")
    print(f"{'stage':>9} {'p50':>8} {'p90':>8} {'p99':>8} {'worst':>8}")
    for stage in STAGES:
        values = [r[stage] for r in rows]
        print(
            f"{stage:>9} {pct(values, 50):8.1f} {pct(values, 90):8.1f} "
            f"{pct(values, 99):8.1f} {statistics.median(r[stage] for r in worst):8.1f}"
        )
    print(f"('worst': the median over the {len(worst)} slowest messages)")

    def near(events: list[list[int]], row: dict[str, Any]) -> bool:
        return any(e[0] <= row["to"] and e[1] >= row["from"] for e in events)

    starts = [[c[0], c[0]] for c in probe["collections"] if c[1]]
    first = min(r["from"] for r in rows)
    last = max(r["to"] for r in rows)
    during = [c for c in starts if first <= c[0] <= last]
    gen0 = [r["gen0"] for r in sorted(rows, key=lambda r: r["stamp"])]
    print(
        f"slowest {len(worst)}: with a collection {sum(near(starts, r) for r in worst)}, "
        f"timers over 3 µs {sum(near(probe['timers'], r) for r in worst)}, a datalog "
        f"write-out {sum(near(probe['writes'], r) for r in worst)} (2 ms before the "
        f"send); in {episodes([r['index'] for r in worst])} episodes; agent and client "
        f"on one CPU {sum(r['same_cpu'] for r in worst)} (all messages "
        f"{sum(r['same_cpu'] for r in rows)} of {len(rows)})"
    )
    writes = [round((w[1] - w[0]) / 1e3) for w in probe["writes"]]
    print(
        f"collections while relaying {len(during)}; generation-0 count "
        f"{gen0[0]} -> {gen0[-1]} over the run; datalog write-outs µs {writes}"
    )


def report_socat(repeat: int) -> None:
    rows = [
        ((SENT[s] - s) / 1e3, (RECEIVED[s][0] - SENT[s]) / 1e3)
        for s in RECEIVED
        if s in SENT
    ]
    source = [a for a, _ in rows]
    rest = [b for _, b in rows]
    total = [a + b for a, b in rows]
    print(
        f"repeat {repeat}: socat, {len(rows)} messages, µs p50 / p99: source "
        f"{pct(source, 50):.1f} / {pct(source, 99):.1f}, send to receipt "
        f"{pct(rest, 50):.1f} / {pct(rest, 99):.1f}, total {pct(total, 50):.1f} / "
        f"{pct(total, 99):.1f}"
    )


async def main(reactor: Any, args: argparse.Namespace) -> None:
    tcp.Connection.writeSomeData = _stamped_write  # type: ignore[method-assign]
    relay._line_latency = _receipts  # type: ignore[assignment]
    workdir = tempfile.mkdtemp(prefix="instrumentd-stages-")
    for repeat in range(args.repeats):
        SENT.clear()
        RECEIVED.clear()
        out = os.path.join(workdir, f"probe-{repeat}.json")
        saved = dict(os.environ)
        os.environ["INSTRUMENTD_LATENCY_PROBE"] = out
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (PROBE, saved.get("PYTHONPATH", "")) if p
        )
        try:
            await relay.latency_run(reactor, args.rate, args.seconds, workdir)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        with open(out) as f:
            report_agent(repeat, json.load(f), args.worst)
        if not args.no_socat:
            SENT.clear()
            RECEIVED.clear()
            await relay.socat_latency_run(reactor, args.rate, args.seconds)
            report_socat(repeat)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="messages/s")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--worst", type=int, default=100, help="how many slowest messages to place"
    )
    parser.add_argument("--no-socat", action="store_true")
    arguments = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
