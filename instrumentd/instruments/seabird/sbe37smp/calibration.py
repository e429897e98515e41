# -*- test-case-name: tests.test_sbe37_simulator -*-
"""
The simulated SBE 37's sensors: its calibration coefficients and Sea-Bird's
equations that turn raw readings into engineering units and back, and one
raw reading as the sensors give it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from instrumentd.simulator.solve import invert_increasing

__all__ = ["Calibration", "RawReading"]

_KELVIN: Final = 273.15
#: dbar per psi.
_DBAR_PER_PSI: Final = 0.689476
_ATMOSPHERE_PSI: Final = 14.7


@dataclass
class Calibration:
    """
    The calibration coefficients, as ``DC`` prints them and the calibration
    setters change them.  The defaults are the spec's example.
    """

    tcaldate: str = "08-nov-05"
    ta0: float = -2.572242e-04
    ta1: float = 3.138936e-04
    ta2: float = -9.717158e-06
    ta3: float = 2.138735e-07
    ccaldate: str = "08-nov-05"
    cg: float = -9.870930e-01
    ch: float = 1.417895e-01
    ci: float = 1.334915e-04
    cj: float = 3.339261e-05
    cpcor: float = 9.570000e-08
    ctcor: float = 3.250000e-06
    wbotc: float = 1.202400e-05
    pressure_serial: int = 4955
    pressure_range: str = "10847.1964958"
    pcaldate: str = "12-aug-05"
    pa0: float = 5.916199e00
    pa1: float = 4.851819e-01
    pa2: float = 4.596432e-07
    ptca0: float = 2.762492e02
    ptca1: float = 6.603433e-01
    ptca2: float = 5.756490e-03
    ptcb0: float = 2.461450e01
    ptcb1: float = -9.000000e-04
    ptcb2: float = 0.000000e00
    # The strain gauge's temperature coefficients: firmware 3.0h prints
    # them (these are its capture's values); the equations here read the
    # gauge's temperature from the water directly.
    ptempa0: float = -6.912989e01
    ptempa1: float = 5.083005e-02
    ptempa2: float = -5.488727e-07
    poffset: float = 0.000000e00
    rcaldate: str = "08-nov-05"
    rtca0: float = 9.999862e-01
    rtca1: float = 1.686132e-06
    rtca2: float = -3.022745e-08

    # The sensors' equations, Sea-Bird's forms: a thermistor's
    # Steinhart-Hart-like polynomial in ln(counts), a conductivity cell's
    # frequency polynomial with thermal and pressure corrections, and a
    # strain gauge's temperature-compensated quadratic.

    def temperature(self, counts: float) -> float:
        """
        :param counts: thermistor counts.
        :returns: ITS-90 deg C.
        """
        ln = math.log(max(counts, 1.0))
        k = self.ta0 + ln * (self.ta1 + ln * (self.ta2 + ln * self.ta3))
        return 1 / k - _KELVIN if k else math.inf

    def temperature_counts(self, t90: float) -> float:
        """
        :param t90: ITS-90 deg C.
        :returns: the thermistor counts that give it (solved on ln).
        """
        ta0, ta1, ta2, ta3 = self.ta0, self.ta1, self.ta2, self.ta3
        ln = invert_increasing(
            lambda x: ta0 + x * (ta1 + x * (ta2 + x * ta3)),
            1 / (t90 + _KELVIN),
            1.0,
            40.0,
            1e-14,
        )
        return math.exp(ln)

    def conductivity(self, hz: float, t90: float, pressure: float) -> float:
        """
        :param hz: cell frequency.
        :param t90: temperature, deg C.
        :param pressure: dbar.
        :returns: S/m.
        """
        f = hz * math.sqrt(max(1 + self.wbotc * t90, 0.0)) / 1000
        c = self.cg + f * f * (self.ch + f * (self.ci + f * self.cj))
        return c / (1 + self.ctcor * t90 + self.cpcor * pressure)

    def conductivity_frequency(self, c: float, t90: float, pressure: float) -> float:
        """
        :param c: S/m.
        :param t90: temperature, deg C.
        :param pressure: dbar.
        :returns: the cell frequency (Hz) that gives it, to 1e-6 Hz.
        """
        # conductivity(hz, t90, pressure) with what does not depend on hz
        # worked out once: the same operations in the same order, so the
        # same floats, in a third of the time (a fleet of thousands of
        # simulators solves this once a sample).
        root = math.sqrt(max(1 + self.wbotc * t90, 0.0))
        cg, ch, ci, cj = self.cg, self.ch, self.ci, self.cj
        correction = 1 + self.ctcor * t90 + self.cpcor * pressure

        def conductivity_here(hz: float) -> float:
            f = hz * root / 1000
            return (cg + f * f * (ch + f * (ci + f * cj))) / correction

        return invert_increasing(conductivity_here, c, 0.0, 30_000.0, 1e-6)

    def pressure(self, counts: float, t90: float) -> float:
        """
        :param counts: strain-gauge counts.
        :param t90: the gauge's temperature, deg C.
        :returns: sea pressure, dbar.
        """
        x = counts - self.ptca0 - self.ptca1 * t90 - self.ptca2 * t90 * t90
        n = x * self.ptcb0 / (self.ptcb0 + self.ptcb1 * t90 + self.ptcb2 * t90 * t90)
        psia = self.pa0 + self.pa1 * n + self.pa2 * n * n
        return (psia - _ATMOSPHERE_PSI) * _DBAR_PER_PSI + self.poffset

    def pressure_counts(self, pressure: float, t90: float) -> float:
        """
        :param pressure: sea pressure, dbar.
        :param t90: the gauge's temperature, deg C.
        :returns: the strain-gauge counts that give it.
        """
        psia = (pressure - self.poffset) / _DBAR_PER_PSI + _ATMOSPHERE_PSI
        if self.pa2:
            n = (
                -self.pa1 + math.sqrt(self.pa1**2 - 4 * self.pa2 * (self.pa0 - psia))
            ) / (2 * self.pa2)
        else:
            n = (psia - self.pa0) / self.pa1
        x = n * (self.ptcb0 + self.ptcb1 * t90 + self.ptcb2 * t90 * t90) / self.ptcb0
        return x + self.ptca0 + self.ptca1 * t90 + self.ptca2 * t90 * t90


@dataclass(frozen=True)
class RawReading:
    """
    One measurement as the sensors give it.

    :ivar time: instrument time of the measurement, POSIX seconds.
    :ivar temperature_counts: thermistor counts.
    :ivar conductivity_hz: conductivity cell frequency.
    :ivar pressure_counts: strain-gauge counts.
    :ivar with_time: whether the time is stored and printed with it.
    """

    time: float
    temperature_counts: float
    conductivity_hz: float
    pressure_counts: float
    with_time: bool
