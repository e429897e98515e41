"""
Tests for L{instrumentd.simulator.solve}: inverting an increasing function
as bisection did, in fewer evaluations.
"""

from __future__ import annotations

import math

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.instruments.seabird.sbe37smp.calibration import Calibration
from instrumentd.simulator.seawater import conductivity_for, salinity
from instrumentd.simulator.solve import invert_increasing


class InvertTests(SynchronousTestCase):
    """
    L{invert_increasing} finds the argument within the tolerance.
    """

    def test_cubic(self) -> None:
        """
        A cubic's root, to the tolerance, in far fewer evaluations than
        bisection's 40.
        """
        calls = []

        def cube(x: float) -> float:
            calls.append(x)
            return x**3 + x

        x = invert_increasing(cube, 10.0, 0.0, 7.0, 1e-10)
        self.assertAlmostEqual(x**3 + x, 10.0, places=8)
        self.assertLess(len(calls), 20)

    def test_outsideRange(self) -> None:
        """
        A target the function does not reach over the bracket gives the
        nearer end.
        """
        self.assertEqual(invert_increasing(math.exp, 0.5, 0.0, 1.0, 1e-9), 0.0)
        self.assertEqual(invert_increasing(math.exp, 10.0, 0.0, 1.0, 1e-9), 1.0)

    def test_flatStretch(self) -> None:
        """
        A function flat over part of the bracket still converges inside it.
        """
        x = invert_increasing(lambda v: max(v, 2.0), 3.0, 0.0, 10.0, 1e-9)
        self.assertAlmostEqual(x, 3.0, places=8)

    def test_conductivity(self) -> None:
        """
        The conductivity for a salinity gives that salinity back, far more
        closely than an instrument prints it.
        """
        for target, t90, pressure in ((33.9, 11.0, 10.0), (35.0, 15.0, 0.0)):
            c = conductivity_for(target, t90, pressure)
            self.assertAlmostEqual(salinity(c, t90, pressure), target, places=8)

    def test_calibrationInverses(self) -> None:
        """
        The raw readings the simulated sensors give convert back to the
        values they were made from.
        """
        calibration = Calibration()
        counts = calibration.temperature_counts(11.25)
        self.assertAlmostEqual(calibration.temperature(counts), 11.25, places=9)
        hz = calibration.conductivity_frequency(3.9, 11.25, 10.0)
        self.assertAlmostEqual(calibration.conductivity(hz, 11.25, 10.0), 3.9, places=9)
