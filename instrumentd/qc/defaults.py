"""
Default QC ranges of the instruments we drive, from their specifications.

Keyed by stream, then field, then test, in the same shape as a station's
``qc`` table (see :mod:`instrumentd.qc.config`), which starts from these
and may tighten any of them (or switch one off with ``false``).  Fail spans
are the sensors' measurement ranges: a value outside cannot be a
measurement.  Suspect spans, where given, are the typical ocean ranges of
our instrument notes; a station should set its own from local knowledge.
Ranges marked "recalled" come from the makers' datasheets as remembered,
not a document at hand: a station that has the datasheet should check
them.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULTS"]

Tests = dict[str, dict[str, object]]


def _range(
    fail: tuple[float, float], suspect: tuple[float, float] | None = None
) -> Tests:
    table: dict[str, object] = {"fail_span": list(fail)}
    if suspect is not None:
        table["suspect_span"] = list(suspect)
    return {"gross_range": table}


#: Workhorse velocities are mm/s: the sensor's maximum is ±20 m/s, its
#: default range ±5 m/s (recalled, Workhorse datasheet).
_VELOCITY: Final = _range((-20000, 20000), (-5000, 5000))
#: Per-cell quality counts: correlation and echo intensity are bytes,
#: percent good a percentage.
_COUNT: Final = _range((0, 255))
_PERCENT: Final = _range((0, 100))

#: stream -> field -> test -> parameters.
DEFAULTS: Final[dict[str, dict[str, Tests]]] = {
    # Sea-Bird SBE 37-SM/SMP MicroCAT: measurement ranges -5..45 °C,
    # 0..7 S/m, pressure 0 to the sensor's full scale (7000 m the largest;
    # a station sets its own sensor's, from the calibration sheet's psia
    # range) (recalled, SBE 37 datasheet).  Typical ocean ranges from
    # doc/specs/sbe37-smp.md.  Salinity is computed: PSS-78 holds for 2..42.
    "ctdpf_sample": {
        "temperature": _range((-5, 45), (-2, 35)),
        "conductivity": _range((0, 7)),
        "pressure": _range((0, 7000)),
        "salinity": _range((2, 42)),
    },
    # Aanderaa 4831 optode: 0..2000 µM, 0..200 % saturation, -5..40 °C
    # (recalled, 4831 datasheet); typical ranges from
    # doc/specs/aanderaa-4831-optode.md.
    "dosta_sample": {
        "oxygen_concentration": _range((0, 2000), (0, 500)),
        "oxygen_saturation": _range((0, 200), (0, 120)),
        "optode_temperature": _range((-5, 40), (-2, 35)),
    },
    # Teledyne RDI Workhorse, per cell.
    "adcp_velocity_earth": {
        "eastward_velocity": _VELOCITY,
        "northward_velocity": _VELOCITY,
        "upward_velocity": _VELOCITY,
        "error_velocity": _VELOCITY,
        **{f"correlation_magnitude_beam{b}": _COUNT for b in range(1, 5)},
        **{f"echo_intensity_beam{b}": _COUNT for b in range(1, 5)},
        "percent_good_3beam": _PERCENT,
        "percent_transforms_reject": _PERCENT,
        "percent_bad_beams": _PERCENT,
        "percent_good_4beam": _PERCENT,
    },
    "adcp_velocity_beam": {
        **{f"beam_{b}_velocity": _VELOCITY for b in range(1, 5)},
        **{f"correlation_magnitude_beam{b}": _COUNT for b in range(1, 5)},
        **{f"echo_intensity_beam{b}": _COUNT for b in range(1, 5)},
        **{f"percent_good_beam{b}": _PERCENT for b in range(1, 5)},
    },
}
