# -*- test-case-name: tests.test_workhorse_simulator -*-
"""
The ocean a simulated Workhorse looks at: a sheared, tidal current profile,
the mooring's heading, pitch and roll, the water temperature, and what the
echoes look like with range.

Everything is a smooth function of time plus a little seeded noise, so
consecutive ensembles differ the way real ones do and a test can predict
their range of values.  The profile: an M2 tidal ellipse (12.42 h) over a
mean flow, strongest near the surface and decaying with depth, veering
with depth; the instrument sits on the bottom looking up (a mooring's
ADCP), so cell 1 is deepest.  Cells beyond the acoustic range (past the
surface, or past ``range_m``) have no velocity.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

__all__ = ["Attitude", "Ocean", "Profile"]

_M2: Final = 12.42 * 3600.0
_DAY: Final = 86400.0
BAD: Final = -32768


@dataclass(frozen=True)
class Attitude:
    """
    The instrument's attitude and temperature, in the PD0 units.

    :ivar heading: 0.01 degree, 0-35999.
    :ivar pitch: 0.01 degree.
    :ivar roll: 0.01 degree.
    :ivar temperature: 0.01 degree Celsius.
    :ivar pressure: decapascal.
    """

    heading: int
    pitch: int
    roll: int
    temperature: int
    pressure: int


@dataclass(frozen=True)
class Profile:
    """
    One ensemble's profile, ``[cell][beam]``.
    """

    velocity: list[list[int]]
    correlation: list[list[int]]
    echo_intensity: list[list[int]]
    percent_good: list[list[int]]


class Ocean:
    """
    The water column over a bottom-mounted, upward-looking ADCP.

    :param seed: makes the noise repeatable.
    :param depth_m: water depth over the transducer, metres.
    :param range_m: the acoustic range, metres.
    """

    def __init__(
        self, seed: int = 0, depth_m: float = 120.0, range_m: float = 90.0
    ) -> None:
        self._random = random.Random(seed)
        self.depth_m = depth_m
        self.range_m = range_m

    def current(self, height_m: float, when: float) -> tuple[float, float, float]:
        """
        The current at ``height_m`` above the transducer, m/s east, north
        and up.

        :param height_m: metres above the transducer.
        :param when: POSIX seconds.
        :returns: ``(east, north, up)``.
        """
        phase = 2 * math.pi * when / _M2
        # Strongest near the surface, a third of that near the bottom.
        shear = 0.35 + 0.65 * min(height_m / self.depth_m, 1.0)
        veer = math.radians(25.0) * (1.0 - height_m / self.depth_m)
        along = 0.45 * math.cos(phase) * shear
        across = 0.12 * math.sin(phase) * shear
        east = 0.08 + along * math.cos(veer) - across * math.sin(veer)
        north = 0.03 + along * math.sin(veer) + across * math.cos(veer)
        up = 0.004 * math.sin(2 * phase)
        return east, north, up

    def attitude(self, when: float) -> Attitude:
        """
        Heading swinging with the tide, small pitch and roll, a diurnal
        temperature and the pressure of the water column.

        :param when: POSIX seconds.
        """
        noise = self._random.gauss
        phase = 2 * math.pi * when / _M2
        heading = (4500 + 1500 * math.sin(phase) + noise(0, 20)) % 36000
        temperature = 1050 + 40 * math.sin(2 * math.pi * when / _DAY) + noise(0, 2)
        return Attitude(
            heading=round(heading) % 36000,
            pitch=round(150 + 60 * math.sin(phase * 3) + noise(0, 10)),
            roll=round(-200 + 50 * math.cos(phase * 2) + noise(0, 10)),
            temperature=round(temperature),
            pressure=round(self.depth_m * 1000 + 30 * math.sin(phase)),
        )

    def profile(
        self,
        when: float,
        *,
        cells: int,
        cell_m: float,
        first_m: float,
        heading_deg: float,
        earth: bool,
        beam_angle: float = 20.0,
    ) -> Profile:
        """
        One ensemble's velocity, correlation, echo intensity and percent
        good.

        :param when: POSIX seconds.
        :param cells: number of depth cells.
        :param cell_m: cell size, metres.
        :param first_m: range to the middle of cell 1, metres.
        :param heading_deg: the instrument's heading, to rotate into beams.
        :param earth: earth coordinates (east, north, up, error); else
            along-beam velocities.
        :param beam_angle: the beams' angle from the vertical, degrees.
        """
        noise = self._random.gauss
        sin_b = math.sin(math.radians(beam_angle))
        cos_b = math.cos(math.radians(beam_angle))
        turn = math.radians(heading_deg)
        velocity: list[list[int]] = []
        correlation: list[list[int]] = []
        echo: list[list[int]] = []
        good: list[list[int]] = []
        reach = min(self.range_m, self.depth_m * cos_b)
        for cell in range(cells):
            height = first_m + cell * cell_m
            fading = max(0.0, 1.0 - height / max(reach, 1.0))
            echo.append(
                [
                    max(20, min(255, round(40 + 120 * fading + noise(0, 3))))
                    for _ in range(4)
                ]
            )
            if height > reach:
                velocity.append([BAD] * 4)
                correlation.append([max(0, round(10 + noise(0, 4))) for _ in range(4)])
                good.append([0, 0, 100, 0] if earth else [0] * 4)
                continue
            correlation.append(
                [
                    max(0, min(255, round(70 + 60 * fading + noise(0, 4))))
                    for _ in range(4)
                ]
            )
            east, north, up = self.current(height, when)
            jitter = [noise(0, 0.01) for _ in range(4)]
            if earth:
                row = [east + jitter[0], north + jitter[1], up + jitter[2], jitter[3]]
                good.append([0, 0, 0, 100])
            else:
                # Into the instrument's frame (heading only), then onto the
                # four Janus beams; positive toward the transducer.
                x = east * math.cos(turn) - north * math.sin(turn)
                y = east * math.sin(turn) + north * math.cos(turn)
                row = [
                    -(x * sin_b + up * cos_b) + jitter[0],
                    -(-x * sin_b + up * cos_b) + jitter[1],
                    -(y * sin_b + up * cos_b) + jitter[2],
                    -(-y * sin_b + up * cos_b) + jitter[3],
                ]
                good.append([100, 100, 100, 100])
            velocity.append([round(value * 1000) for value in row])
        return Profile(velocity, correlation, echo, good)
