"""
Make ``instrumentd/data/sbe37smp-demo.datalog``, the built-in recording that
``twistd instrumentd port-agent --instrument demo`` replays.

About ten minutes of a Sea-Bird SBE 37-SMP MicroCAT autosampling at
``INTERVAL=5`` with ``OUTPUTSAL=Y``, ``OUTPUTSV=Y`` and ``STORETIME=Y``, as a
port agent on its 9600-baud serial line would have recorded it: a
``PORT_AGENT_STATUS`` ``CONNECTED`` packet, then one ``DATA_FROM_INSTRUMENT``
packet per read (some sample lines arrive in two reads, as a serial port
delivers them), and a ``PORT_AGENT_HEARTBEAT`` every minute.

The water is made up but behaves: temperature (ITS-90) near 11 deg C and
salinity near 33.9 psu drift smoothly with a weak T-S relation, pressure
near 10 dbar rises slowly with the tide and moves with surface waves.  The
conductivity printed is the one that gives that salinity (PSS-78 inverted),
and salinity and sound velocity are computed from the printed values the way
the instrument does: PSS-78 and Chen-Millero (UNESCO 1983), from
:mod:`instrumentd.simulator.seawater`.  So the printed
columns agree with each other to their last digit.

Deterministic: a fixed seed and a fixed start time, so running it again
writes the same bytes (``--check`` compares).  Run by hand:
``python bench/make_demo_datalog.py``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from instrumentd.packet import PacketType, encode_packet, unix_to_ntp
from instrumentd.simulator.seawater import (
    check_formulas,
    conductivity_for,
    salinity,
    sound_velocity,
)

DEFAULT_OUTPUT = (
    Path(__file__).resolve().parent.parent
    / "instrumentd"
    / "data"
    / "sbe37smp-demo.datalog"
)

SEED = 37
#: When the port agent connected to the instrument.
START = datetime(2026, 3, 14, 9, 0, 0, tzinfo=UTC).timestamp()
INTERVAL = 5
SAMPLES = 120
HEARTBEAT = 60.0
#: The instrument's real-time clock runs this far behind UTC.
CLOCK_LAG = 1.6
#: From the start of a sample to the first byte of its line: pump, measure.
ACQUISITION = 2.1
#: Seconds per byte at 9600 baud, 8N1 (ten bits a byte).
BYTE_TIME = 10 / 9600
#: Share of sample lines that arrive in two reads.
SPLIT_SHARE = 0.25

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip


class _Smooth:
    """
    A first-order autoregressive wander: smooth, random, and bounded.
    """

    def __init__(self, rng: random.Random, step: float, keep: float = 0.95) -> None:
        self._rng = rng
        self._step = step
        self._keep = keep
        self.value = 0.0

    def next(self) -> float:
        self.value = self._keep * self.value + self._rng.gauss(0, self._step)
        return self.value


def _sample_line(t90: float, c: float, p: float, when: float) -> bytes:
    t90, c, p = round(t90, 4), round(c, 5), round(p, 3)
    s = salinity(c, t90, p)
    v = sound_velocity(s, t90, p)
    stamp = datetime.fromtimestamp(when, UTC)
    date = f"{stamp.day:02d} {_MONTHS[stamp.month - 1]} {stamp.year}"
    line = (
        f"# {t90:7.4f}, {c:8.5f}, {p:8.3f}, {s:8.4f}, {v:8.3f}, "
        f"{date}, {stamp:%H:%M:%S}\r\n"
    )
    return line.encode("ascii")


def _reads(rng: random.Random) -> Iterator[tuple[float, int, bytes]]:
    """
    Every read the port agent made, and its other packets, as
    ``(agent time, packet type, payload)``.
    """
    yield START, PacketType.PORT_AGENT_STATUS, b"CONNECTED"
    heartbeats = [START + HEARTBEAT * (i + 1) for i in range(10)]
    for when in heartbeats:
        yield when, PacketType.PORT_AGENT_HEARTBEAT, b"HB"
    temperature = _Smooth(rng, 0.004)
    salt = _Smooth(rng, 0.0015)
    phases = [rng.uniform(0, 2 * math.pi) for _ in range(2)]
    # The instrument's first sample of the recording: it was already logging.
    first = math.floor(START - CLOCK_LAG) + 3
    for k in range(SAMPLES):
        instrument_time = first + INTERVAL * k
        t = instrument_time - START  # seconds into the recording
        t90 = (
            11.0
            + 0.45 * math.sin(2 * math.pi * t / 1400 + 0.7)
            + 0.12 * math.sin(2 * math.pi * t / 310 + 2.1)
            + temperature.next()
        )
        s = 33.92 + 0.03 * math.sin(2 * math.pi * t / 900 + 1.3)
        s += -0.02 * (t90 - 11.0) + salt.next()
        p = (
            10.05
            + 0.04 * t / 600
            + 0.09 * math.sin(2 * math.pi * t / 7.3 + phases[0])
            + 0.05 * math.sin(2 * math.pi * t / 11.9 + phases[1])
            + rng.gauss(0, 0.002)
        )
        c = conductivity_for(s, t90, p)
        line = _sample_line(t90, c, p, instrument_time)
        sent = instrument_time + CLOCK_LAG + ACQUISITION + rng.uniform(0, 0.03)
        pieces = [line]
        if rng.random() < SPLIT_SHARE:
            cut = rng.randint(10, len(line) - 10)
            pieces = [line[:cut], line[cut:]]
        arrived = 0
        for piece in pieces:
            # A read completes a little after its last byte arrives.
            arrived += len(piece)
            when = sent + arrived * BYTE_TIME + rng.uniform(0.001, 0.004)
            yield when, PacketType.DATA_FROM_INSTRUMENT, piece


def make_recording() -> bytes:
    """
    The recording, as datalog bytes.
    """
    check_formulas()
    rng = random.Random(SEED)
    reads = sorted(_reads(rng), key=lambda read: read[0])
    return b"".join(
        encode_packet(kind, payload, *unix_to_ntp(when))
        for when, kind, payload in reads
    )


def main(argv: list[str] | None = None) -> int:
    """
    Write the recording, or with ``--check`` compare it with the file.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the file differs from what would be written",
    )
    options = parser.parse_args(argv)
    data = make_recording()
    if options.check:
        same = options.output.exists() and options.output.read_bytes() == data
        print(f"{options.output}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_bytes(data)
    print(f"wrote {options.output}: {len(data)} bytes, {SAMPLES} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
