"""
Default QC ranges of the instruments we drive, from their specifications.

Keyed by stream, then field, then test, in the same shape as a station's
``qc`` table (see :mod:`instrumentd.qc.config`), which starts from these
and may tighten any of them (or switch one off with ``false``).  Fail spans
are the sensors' measurement ranges: a value outside cannot be a
measurement.  Suspect spans, where given, are the typical ocean ranges of
our instrument notes; a station should set its own from local knowledge.

Each range says where it comes from.  "Checked" ranges were found in a
published specification (the source is named); ranges marked "not
verified" are the makers' datasheet figures as remembered, which no
document at hand confirmed: a station that has the datasheet should check
them and tighten them to its own sensor.
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
#: default range ±5 m/s (not verified: the Workhorse datasheet's figures
#: as remembered; the manuals at hand confirm only the unit, mm/s, and the
#: bad-value marker -32768, which the driver reports as missing).
_VELOCITY: Final = _range((-20000, 20000), (-5000, 5000))
#: Per-cell quality counts: correlation and echo intensity are bytes,
#: percent good a percentage.
_COUNT: Final = _range((0, 255))
_PERCENT: Final = _range((0, 100))

#: stream -> field -> test -> parameters.
DEFAULTS: Final[dict[str, dict[str, Tests]]] = {
    # Sea-Bird SBE 37-SM/SMP MicroCAT, checked: conductivity 0..7 S/m and
    # temperature -5..35 °C (Sea-Bird's SBE 37-SM specification as an
    # instrument record quotes it: "range: 0 to 7 S/m", "range: -5 to
    # 35°C"; -5..+35 °C is also the range given for the current SBE
    # 37-SMP-ODO).  Pressure: the optional strain-gauge sensor comes in
    # eight ranges "to a maximum depth of 7000 meters" (Sea-Bird's SBE 37-SM
    # product page), so 0..7000 dbar is the widest; a station sets its own
    # sensor's full scale (the calibration sheet's psia range).  Typical
    # ocean temperatures from doc/specs/sbe37-smp.md.  Salinity is
    # computed: PSS-78 is defined for 2..42.
    "ctdpf_sample": {
        "temperature": _range((-5, 35), (-2, 35)),
        "conductivity": _range((0, 7)),
        "pressure": _range((0, 7000)),
        "salinity": _range((2, 42)),
    },
    # Aanderaa 4831 optode: 0..2000 µM, 0..200 % saturation, -5..40 °C
    # (not verified: the 4831 datasheet's figures as remembered; the
    # operating manual TD 269 at hand confirms the units, µM and % air
    # saturation at 1013.25 hPa, but not the ranges); typical ranges from
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
