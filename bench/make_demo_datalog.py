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
the instrument does: PSS-78 and Chen-Millero (UNESCO 1983).  So the printed
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

# PSS-78 (UNESCO 1983).  Temperatures in these formulas are IPTS-68.
_C3515 = 4.2914  # S/m, conductivity of seawater at S=35, T68=15, P=0
_A = (0.0080, -0.1692, 25.3851, 14.0941, -7.0261, 2.7081)
_B = (0.0005, -0.0056, -0.0066, -0.0375, 0.0636, -0.0144)
_K = 0.0162
_RT = (0.6766097, 2.00564e-2, 1.104259e-4, -6.9698e-7, 1.0031e-9)
_E = (2.070e-5, -6.370e-10, 3.989e-15)
_D = (3.426e-2, 4.464e-4, 4.215e-1, -3.107e-3)


def _t68(t90: float) -> float:
    return t90 * 1.00024


def _poly(coefficients: tuple[float, ...], x: float) -> float:
    return sum(c * x**i for i, c in enumerate(coefficients))


def salinity(conductivity: float, t90: float, pressure: float) -> float:
    """
    Practical salinity (PSS-78) from conductivity (S/m), temperature
    (ITS-90 deg C) and pressure (dbar).
    """
    t = _t68(t90)
    r = conductivity / _C3515
    rt_t = _poly(_RT, t)
    rp = 1 + pressure * _poly(_E, pressure) / (
        1 + _D[0] * t + _D[1] * t * t + (_D[2] + _D[3] * t) * r
    )
    root = math.sqrt(r / (rp * rt_t))
    delta = (t - 15) / (1 + _K * (t - 15))
    return _poly(_A, root) + delta * _poly(_B, root)


def conductivity_for(target: float, t90: float, pressure: float) -> float:
    """
    The conductivity (S/m) at which :func:`salinity` is ``target``;
    salinity rises with conductivity, so bisection is enough.
    """
    low, high = 0.0, 7.0
    for _ in range(60):
        middle = (low + high) / 2
        if salinity(middle, t90, pressure) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def sound_velocity(s: float, t90: float, pressure: float) -> float:
    """
    Sound velocity (m/s) in seawater, Chen and Millero (UNESCO 1983), from
    practical salinity, temperature (ITS-90 deg C) and pressure (dbar).
    """
    t = _t68(t90)
    p = pressure / 10  # bar
    c00 = (((3.1464e-9 * t - 1.47800e-6) * t + 3.3420e-4) * t - 5.80852e-2) * t
    c00 = (c00 + 5.03711) * t + 1402.388
    c01 = (((-6.1185e-10 * t + 1.3621e-7) * t - 8.1788e-6) * t + 6.8982e-4) * t
    c01 += 0.153563
    c02 = (((1.0405e-12 * t - 2.5335e-10) * t + 2.5974e-8) * t - 1.7107e-6) * t
    c02 += 3.1260e-5
    c03 = (-2.3643e-12 * t + 3.8504e-10) * t - 9.7729e-9
    cw = ((c03 * p + c02) * p + c01) * p + c00
    a0 = (((-3.21e-8 * t + 2.006e-6) * t + 7.164e-5) * t - 1.262e-2) * t + 1.389
    a1 = (((-2.0122e-10 * t + 1.0507e-8) * t - 6.4885e-8) * t - 1.2580e-5) * t
    a1 += 9.4742e-5
    a2 = ((7.988e-12 * t - 1.6002e-10) * t + 9.1041e-9) * t - 3.9064e-7
    a3 = (-3.389e-13 * t + 6.649e-12) * t + 1.100e-10
    a = ((a3 * p + a2) * p + a1) * p + a0
    b = -1.922e-2 - 4.42e-5 * t + (7.3637e-5 + 1.7945e-7 * t) * p
    d = 1.727e-3 - 7.9836e-6 * p
    return cw + (a + b * math.sqrt(s) + d * s) * s


def _check_formulas() -> None:
    # The standard check values: PSS-78 S=40 at R=1.888091, T68=40, 10000
    # dbar; Chen-Millero 1731.995 m/s at S=40, T68=40, 10000 dbar.
    t90 = 40 / 1.00024
    s = salinity(1.888091 * _C3515, t90, 10000)
    v = sound_velocity(40, t90, 10000)
    if abs(s - 40) > 5e-6 or abs(v - 1731.995) > 5e-4:
        raise AssertionError(f"formula check failed: S={s:.6f}, SV={v:.4f}")


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
    _check_formulas()
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
