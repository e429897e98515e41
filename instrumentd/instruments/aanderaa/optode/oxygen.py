# -*- test-case-name: tests.test_optode_simulator -*-
"""
Dissolved oxygen as an Aanderaa optode sees it: the water's oxygen, and the
optical phases and voltages the sensor reads.

The simulator needs values that hang together as real ones do
(``doc/specs/aanderaa-4831-optode.md``, "Relations in real data"):

- O2 concentration (µM) = air saturation / 100 * 44.659 * C*(T, S), where
  C* is the Garcia & Gordon (1992) oxygen solubility in ml/l
  (:func:`solubility`); checked against real lines in the tests;
- TCPhase = C1RPh - C2RPh exactly; CalPhase is the PhaseCoef polynomial of
  TCPhase;
- the phase falls as oxygen rises (luminescence quenching: a Stern-Volmer
  shape, :func:`phase_for`), amplitudes near 700 to 800 mV, and the
  thermistor's bridge voltage falls with temperature.

The water itself is :class:`~instrumentd.simulator.seawater.MooringWater`
(temperature and salinity) with an oxygen saturation that wanders slowly
around 95 % with a daily cycle (photosynthesis by day).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from instrumentd.simulator.seawater import MooringWater

__all__ = ["OptodeReading", "OxygenWater", "phase_for", "solubility"]

#: ml of O2 per µmol: 1 ml/l = 44.659 µmol/l (the spec's factor).
UMOL_PER_ML: Final = 44.659

_A: Final = (2.00856, 3.22400, 3.99063, 4.80299, 0.978188, 1.71069)
_B: Final = (-6.24097e-3, -6.93498e-3, -6.90358e-3, -4.29155e-3)
_C0: Final = -3.11680e-7
_DAY: Final = 86_400.0


def solubility(temperature: float, salinity: float = 0.0) -> float:
    """
    Oxygen solubility at one atmosphere of moist air (Garcia & Gordon 1992,
    the fit to Benson & Krause), in ml/l.

    :param temperature: deg C.
    :param salinity: practical salinity.
    :returns: C*, ml/l.
    """
    ts = math.log((298.15 - temperature) / (273.15 + temperature))
    powers = [ts**n for n in range(6)]
    log_c = sum(a * p for a, p in zip(_A, powers, strict=True))
    log_c += salinity * sum(b * p for b, p in zip(_B, powers, strict=False))
    log_c += _C0 * salinity**2
    return math.exp(log_c)


def concentration(saturation: float, temperature: float, salinity: float) -> float:
    """
    :param saturation: air saturation, percent.
    :param temperature: deg C.
    :param salinity: practical salinity (the optode's Salinity setting).
    :returns: O2 concentration, µmol/l.
    """
    return saturation / 100 * UMOL_PER_ML * solubility(temperature, salinity)


def phase_for(saturation: float, temperature: float) -> float:
    """
    A temperature-compensated phase (TCPhase, degrees) for an air
    saturation: a Stern-Volmer quenching curve, near 33° at 95 % and 8 °C
    as in the spec's real lines, lower with more oxygen and warmer water.

    :param saturation: percent.
    :param temperature: deg C.
    :returns: degrees.
    """
    return 12.0 + 36.0 / (1.0 + 0.0075 * saturation) - 0.1 * (temperature - 7.66)


@dataclass(frozen=True)
class OptodeReading:
    """
    One measurement, every value the optode can output.
    """

    o2: float
    saturation: float
    temperature: float
    cal_phase: float
    tc_phase: float
    c1_phase: float
    c2_phase: float
    c1_amplitude: float
    c2_amplitude: float
    raw_temperature: float


class OxygenWater:
    """
    The water an optode on a mooring measures, as a pure function of time.

    :ivar water: temperature and salinity.
    """

    def __init__(self, seed: int = 0) -> None:
        """
        :param seed: chooses the periods, phases and noise.
        """
        self._seed = seed
        self.water = MooringWater(seed=seed)
        rng = random.Random(f"oxygen:{seed}")
        self._terms = [
            (2.5, rng.uniform(2400, 3600), rng.uniform(0, 2 * math.pi)),
            (0.6, rng.uniform(300, 500), rng.uniform(0, 2 * math.pi)),
            (3.0, _DAY, rng.uniform(0, 2 * math.pi)),
        ]

    def measure(
        self, when: float, salinity_setting: float, phase_coef: Sequence[float]
    ) -> OptodeReading:
        """
        What the optode reads at a moment.

        :param when: POSIX time (the instrument's clock).
        :param salinity_setting: the optode's Salinity property: its
            concentration is computed for that salinity, not the water's
            (as on the real sensor).
        :param phase_coef: PhaseCoef, CalPhase = P0 + P1·T + P2·T² + P3·T³.
        :returns: the reading.
        """
        noise = random.Random(f"optode:{self._seed}:{when:.6f}")
        temperature = self.water.at(when).temperature - 3.4
        saturation = 95.0 + sum(
            a * math.sin(2 * math.pi * when / period + phase)
            for a, period, phase in self._terms
        )
        saturation += noise.gauss(0, 0.004)
        tc_phase = phase_for(saturation, temperature)
        c2_phase = 8.4 + noise.gauss(0, 0.002)
        cal_phase = sum(c * tc_phase**n for n, c in enumerate(phase_coef))
        return OptodeReading(
            o2=concentration(saturation, temperature, salinity_setting),
            saturation=saturation,
            temperature=temperature,
            cal_phase=cal_phase,
            tc_phase=tc_phase,
            c1_phase=tc_phase + c2_phase,
            c2_phase=c2_phase,
            c1_amplitude=738.5 + noise.gauss(0, 0.1),
            c2_amplitude=797.0 + noise.gauss(0, 0.5),
            raw_temperature=600.0 - 19.8 * temperature,
        )
