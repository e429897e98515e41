"""
Driver parsing benchmark: SBE 37 samples per second through a real
protocol's ``got_data`` on one core.

The SBE 37-SMP protocol (chunker with the driver's sieves, particle,
published sample event: everything a driver does with the bytes a port
agent hands it) is fed a stream of logged sample lines, in chunks of one
line (a 1 Hz instrument: one read per line) and of 4 KiB (a backlog or a
fast instrument: many lines per read, lines cut across reads).  Each case
is run ``--repeats`` times on fresh protocols, alternating, and the table
gives min / median / max of the samples per second, on CPU time of this
process.

To compare with an older version, put its ``instrumentd`` first on
``PYTHONPATH`` (see ``bench/README.md``).  Run by hand (it is not a test):
``python bench/driver_parse.py [--samples 30000] [--repeats 5]``.  Prints a
table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence

from twisted.internet.task import Clock

from instrumentd.driver.events import EventBus, EventType
from instrumentd.instruments.seabird.sbe37smp import SBE37Protocol


def sample_lines(count: int) -> list[bytes]:
    """
    ``count`` logged sample lines with every optional field, varying.
    """
    return [
        (
            f"#{10 + (k % 997) / 1000:8.4f},{3.5 + (k % 89) / 10000:9.5f},"
            f"{10 + (k % 71) / 100:9.3f},{33.9 + (k % 13) / 10000:9.4f},"
            f"{1497 + (k % 7) / 100:9.3f}, 05 Feb 2013, "
            f"{k // 3600 % 24:02d}:{k // 60 % 60:02d}:{k % 60:02d}\r\n"
        ).encode("ascii")
        for k in range(count)
    ]


def in_blocks(lines: Sequence[bytes], size: int) -> list[bytes]:
    """
    The lines as one stream cut every ``size`` bytes.
    """
    stream = b"".join(lines)
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def got_data_rate(chunks: Sequence[bytes], expected: int) -> float:
    """
    Samples per second of CPU time through a new SBE 37 protocol's
    ``got_data``.

    :raises AssertionError: unless every line became one published sample.
    """
    clock = Clock()
    events = EventBus(clock)
    # Counted, not kept: a station hands each sample on and lets it go, and
    # keeping 30,000 particles alive would time the garbage collector.
    samples = [0]

    def count(event: object) -> None:
        samples[0] += 1

    events.subscribe(count, types=[EventType.SAMPLE])
    protocol = SBE37Protocol(lambda data: None, events, clock=clock)
    got_data = protocol.got_data
    started = time.process_time()
    for chunk in chunks:
        got_data(chunk, 3.9e9)
    elapsed = time.process_time() - started
    assert samples[0] == expected, (samples[0], expected)
    return expected / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    lines = sample_lines(args.samples)
    cases = {
        "got_data, 1 line a chunk": lines,
        "got_data, 4 KiB chunks": in_blocks(lines, 4096),
    }
    rates: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(args.repeats):
        for case, chunks in cases.items():
            rates[case].append(got_data_rate(chunks, len(lines)))
    print(
        f"\nSBE 37 samples parsed per second of CPU, one core, {args.samples:,} "
        f"samples, {args.repeats} repeats: min / median / max"
    )
    print(f"{'path':<28} {'samples/s':>30}")
    for case, values in rates.items():
        text = (
            f"{min(values):,.0f} / {statistics.median(values):,.0f} / "
            f"{max(values):,.0f}"
        )
        print(f"{case:<28} {text:>30}")
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
