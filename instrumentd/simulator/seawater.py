# -*- test-case-name: tests.test_simulator_framework -*-
"""
Seawater for simulated instruments: the standard formulas a CTD's firmware
uses, and a deterministic model of the water at a mooring.

The formulas are the ones Sea-Bird's instruments print with: practical
salinity PSS-78 and the Chen and Millero (1977) sound velocity, both as
given in UNESCO technical paper 44 (1983).  They are written here rather
than taken from ``gsw`` (TEOS-10), which installs cleanly but computes
sound speed with the TEOS-10 equation of state; a simulator must print what
the instrument prints, and ``gsw`` would also bring numpy into every
install for the sake of two formulas.  Both are checked against the
standard check values in the tests and by :func:`check_formulas`.

:class:`MooringWater` is the water a simulated instrument measures:
temperature, salinity and pressure that vary smoothly and plausibly with
time, as a pure function of time and a seed, so a simulator can produce any
past sample again and tests are repeatable.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

from instrumentd.simulator.solve import invert_increasing

__all__ = [
    "C3515",
    "MooringWater",
    "WaterSample",
    "check_formulas",
    "conductivity_for",
    "salinity",
    "sound_velocity",
]

#: Conductivity of seawater at S=35, T68=15 deg C, P=0, in S/m.
C3515: Final = 4.2914

# PSS-78 (UNESCO 1983).  Temperatures in these formulas are IPTS-68.
_A: Final = (0.0080, -0.1692, 25.3851, 14.0941, -7.0261, 2.7081)
_B: Final = (0.0005, -0.0056, -0.0066, -0.0375, 0.0636, -0.0144)
_K: Final = 0.0162
_RT: Final = (0.6766097, 2.00564e-2, 1.104259e-4, -6.9698e-7, 1.0031e-9)
_E: Final = (2.070e-5, -6.370e-10, 3.989e-15)
_D: Final = (3.426e-2, 4.464e-4, 4.215e-1, -3.107e-3)


def _t68(t90: float) -> float:
    return t90 * 1.00024


def _poly(coefficients: tuple[float, ...], x: float) -> float:
    # Horner's rule: a fleet of thousands of simulators evaluates this
    # several times a sample (conductivity_for).
    result = 0.0
    for c in reversed(coefficients):
        result = result * x + c
    return result


def salinity(conductivity: float, t90: float, pressure: float) -> float:
    """
    Practical salinity (PSS-78).

    :param conductivity: in S/m.
    :param t90: temperature, ITS-90 deg C.
    :param pressure: sea pressure, dbar.
    :returns: practical salinity (psu); 0 for a conductivity of 0 or less
        (a sensor in air), as an instrument prints it.
    """
    t = _t68(t90)
    r = conductivity / C3515
    rt_t = _poly(_RT, t)
    rp = 1 + pressure * _poly(_E, pressure) / (
        1 + _D[0] * t + _D[1] * t * t + (_D[2] + _D[3] * t) * r
    )
    # max(): a miscalibrated or dry sensor reads at or below zero, and an
    # instrument prints a number rather than failing.
    root = math.sqrt(max(r / (rp * rt_t), 0.0))
    delta = (t - 15) / (1 + _K * (t - 15))
    return _poly(_A, root) + delta * _poly(_B, root)


def conductivity_for(target: float, t90: float, pressure: float) -> float:
    """
    The conductivity at which :func:`salinity` is ``target``.

    Salinity rises with conductivity, so the answer is found in 0..7 S/m
    (:func:`~instrumentd.simulator.solve.invert_increasing`) to within
    1e-10 S/m, far below the 1e-6 S/m an instrument prints.

    :param target: practical salinity, psu.
    :param t90: temperature, ITS-90 deg C.
    :param pressure: sea pressure, dbar.
    :returns: conductivity in S/m.
    """
    # salinity(c, t90, pressure) for this temperature and pressure, with
    # what does not depend on c worked out once: the same operations in
    # the same order, so the same floats (a fleet of thousands of
    # simulators solves this once a sample, about ten evaluations).
    t = _t68(t90)
    rt_t = _poly(_RT, t)
    pressure_term = pressure * _poly(_E, pressure)
    d_fixed = 1 + _D[0] * t + _D[1] * t * t
    d_r = _D[2] + _D[3] * t
    delta = (t - 15) / (1 + _K * (t - 15))
    a0, a1, a2, a3, a4, a5 = _A
    b0, b1, b2, b3, b4, b5 = _B
    sqrt = math.sqrt

    def salinity_here(conductivity: float) -> float:
        r = conductivity / C3515
        rp = 1 + pressure_term / (d_fixed + d_r * r)
        x = sqrt(max(r / (rp * rt_t), 0.0))
        return (((((a5 * x + a4) * x + a3) * x + a2) * x + a1) * x + a0) + delta * (
            ((((b5 * x + b4) * x + b3) * x + b2) * x + b1) * x + b0
        )

    return invert_increasing(salinity_here, target, 0.0, 7.0, 1e-10)


def sound_velocity(s: float, t90: float, pressure: float) -> float:
    """
    Sound velocity in seawater, Chen and Millero (UNESCO 1983).

    :param s: practical salinity, psu.
    :param t90: temperature, ITS-90 deg C.
    :param pressure: sea pressure, dbar.
    :returns: sound velocity in m/s.
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
    # max(): as in salinity(), a dry sensor must not stop the instrument.
    return cw + (a + b * math.sqrt(max(s, 0.0)) + d * s) * s


def check_formulas() -> None:
    """
    Check both formulas against UNESCO 1983's check values: PSS-78 gives
    S=40 at R=1.888091, T68=40 deg C, 10000 dbar; Chen-Millero gives
    1731.995 m/s at S=40, T68=40 deg C, 10000 dbar.

    :raises AssertionError: if either is off.
    """
    t90 = 40 / 1.00024
    s = salinity(1.888091 * C3515, t90, 10000)
    v = sound_velocity(40, t90, 10000)
    if abs(s - 40) > 5e-6 or abs(v - 1731.995) > 5e-4:
        raise AssertionError(f"formula check failed: S={s:.6f}, SV={v:.4f}")


@dataclass(frozen=True)
class WaterSample:
    """
    The water at one moment.

    :ivar temperature: ITS-90 deg C.
    :ivar conductivity: S/m, consistent with the salinity (PSS-78).
    :ivar pressure: sea pressure, dbar.
    :ivar salinity: practical salinity, psu.
    """

    temperature: float
    conductivity: float
    pressure: float
    salinity: float


#: 2 pi, as ``2 * math.pi`` works it out (exactly twice pi's float).
_TAU: Final = 2 * math.pi
#: M2 tide and a day, in seconds.
_M2: Final = 44_714.16
_DAY: Final = 86_400.0


class MooringWater:
    """
    The water around an instrument on a mooring, as a pure function of time.

    Temperature near 11 deg C and salinity near 33.9 psu wander smoothly
    (sums of slow sinusoids with seeded periods and phases, plus a daily
    and a tidal signal) with a weak T-S relation; pressure sits at
    ``depth`` and moves with the M2 tide and with surface waves.
    Conductivity is the one that gives that salinity.  A small sensor noise
    is added, itself a function of the seed and the time, so asking twice
    for the same moment gives the same answer.

    :ivar depth: mean sea pressure at the instrument, dbar.
    """

    def __init__(self, seed: int = 0, depth: float = 10.0) -> None:
        """
        :param seed: chooses the periods, phases and noise.
        :param depth: mean sea pressure at the instrument, dbar.
        """
        self._seed = seed
        self.depth = depth
        self._noise = random.Random()
        rng = random.Random(f"mooring-water:{seed}")
        # (amplitude, period, phase) terms; periods are incommensurate so
        # the signal never visibly repeats.
        self._temperature = [
            (0.45, rng.uniform(1200, 1600), rng.uniform(0, 2 * math.pi)),
            (0.12, rng.uniform(280, 340), rng.uniform(0, 2 * math.pi)),
            (0.03, rng.uniform(60, 90), rng.uniform(0, 2 * math.pi)),
            (0.30, _DAY, rng.uniform(0, 2 * math.pi)),
            (0.60, _M2, rng.uniform(0, 2 * math.pi)),
        ]
        self._salinity = [
            (0.03, rng.uniform(800, 1000), rng.uniform(0, 2 * math.pi)),
            (0.01, rng.uniform(150, 200), rng.uniform(0, 2 * math.pi)),
        ]
        self._pressure = [
            (0.5, _M2, rng.uniform(0, 2 * math.pi)),
            (0.09, rng.uniform(6.5, 8.0), rng.uniform(0, 2 * math.pi)),
            (0.05, rng.uniform(10.0, 13.0), rng.uniform(0, 2 * math.pi)),
        ]

    @staticmethod
    def _wave(terms: list[tuple[float, float, float]], t: float) -> float:
        # sum() of a list rather than of a generator: the same additions,
        # in the same order, in half the time.
        sin = math.sin
        return sum([a * sin(_TAU * t / period + phase) for a, period, phase in terms])

    def at(self, when: float, averaged: int = 1) -> WaterSample:
        """
        The water at a moment, as a sensor would measure it.

        :param when: POSIX time (the instrument's clock).
        :param averaged: how many readings the instrument averages; the
            noise shrinks with its square root.
        :returns: the sample.
        """
        # Reseeding one generator is what random.Random(text) does, less
        # making a generator: the same numbers.
        noise = self._noise
        noise.seed(f"{self._seed}:{when:.6f}")
        spread = 1 / math.sqrt(max(averaged, 1))
        temperature = 11.0 + self._wave(self._temperature, when)
        s = 33.92 + self._wave(self._salinity, when) - 0.02 * (temperature - 11.0)
        pressure = max(self.depth + self._wave(self._pressure, when), 0.0)
        temperature += noise.gauss(0, 0.0003) * spread
        pressure = max(pressure + noise.gauss(0, 0.002) * spread, 0.0)
        conductivity = conductivity_for(s, temperature, pressure)
        conductivity += noise.gauss(0, 0.00002) * spread
        return WaterSample(temperature, conductivity, pressure, s)
