# -*- test-case-name: tests.test_workhorse_driver -*-
"""
What the Workhorse sends, as records and particles.

- **PD0 ensembles** (binary, :mod:`.pd0`): one velocity particle each,
  ``adcp_velocity_earth`` or ``adcp_velocity_beam`` after the coordinate
  system the ensemble says it is in, with per-cell arrays per beam
  (velocity, correlation, echo intensity, percent good) and the leader
  fields that vary; ``adcp_config`` (the fixed leader) and
  ``adcp_engineering`` (the variable leader's housekeeping) whenever they
  change.
- **PS0** text: ``adcp_system_configuration``.
- **PT200** text: ``adcp_test_results``.

Velocities are mm/s, ``None`` where the instrument says "no data"
(-32768); angles in degrees; the internal timestamp is the ensemble's clock
(the Y2K copy, to the hundredth).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from instrumentd.driver.chunker import Sieve
from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.particles import DataParticle, ParticleField, RegexDataParticle
from instrumentd.instruments.teledyne.workhorse import pd0

__all__ = [
    "PS0_PATTERN",
    "PT200_PATTERN",
    "SIEVES",
    "ConfigParticle",
    "EngineeringParticle",
    "EnsembleParticle",
    "SystemConfigurationParticle",
    "TestResultsParticle",
    "VelocityBeamParticle",
    "VelocityEarthParticle",
    "is_earth",
]

_F = ParticleField
_COUNT: Final = _F("1")
_DEG: Final = _F("degree")


def is_earth(fixed: Mapping[str, Any]) -> bool:
    """
    Whether the fixed leader says earth coordinates (EX type ``11``).
    """
    return (int(fixed["coordinate_transform"]) >> 3) & 3 == 3


def _velocities(ensemble: pd0.Ensemble, beam: int) -> list[int | None]:
    bad = pd0.BAD_VELOCITY
    return [None if v == bad else v for v in ensemble.column("velocity", beam)]


def _ensemble_time(variable: Mapping[str, Any]) -> float:
    century, year, month, day, hour, minute, second, hundredths = variable["y2k_rtc"]
    when = datetime(century * 100 + year, month, day, hour, minute, second, tzinfo=UTC)
    return float(when.timestamp() + hundredths / 100)


class EnsembleParticle(DataParticle):
    """
    Base of the particles made from one PD0 ensemble; decodes it once.

    :ivar ensemble: the decoded ensemble.
    """

    #: Which coordinate system this kind of particle is for.
    earth: ClassVar[bool] = True
    #: The four per-beam velocity names.
    velocity_names: ClassVar[tuple[str, str, str, str]]
    #: The four per-beam percent-good names.
    percent_good_names: ClassVar[tuple[str, str, str, str]]

    def __init__(
        self, raw: bytes, *, ensemble: pd0.Ensemble | None = None, **kwargs: object
    ) -> None:
        """
        :param raw: the ensemble's bytes.
        :param ensemble: the ensemble decoded already, if it is.
        :param kwargs: as for :class:`DataParticle`.
        """
        try:
            self.ensemble = ensemble if ensemble is not None else pd0.decode(raw)
        except pd0.PD0Error as error:
            raise InstrumentProtocolError(f"{self.stream_name}: {error}") from None
        super().__init__(raw, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def matches(cls, raw: bytes) -> bool:
        """
        A whole, good ensemble in this class's coordinate system.
        """
        if not raw.startswith(pd0.SYNC):
            return False
        try:
            return is_earth(pd0.decode(raw).fixed) == cls.earth
        except pd0.PD0Error:
            return False

    @classmethod
    def value_ids(cls) -> tuple[str, ...]:
        """
        :returns: the values every particle of this kind carries.
        """
        return (
            *_LEADER_VALUES,
            *cls.velocity_names,
            *_PROFILE_VALUES,
            *cls.percent_good_names,
        )

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        ensemble = self.ensemble
        fixed, variable = ensemble.fixed, ensemble.variable
        self.set_internal_timestamp(unix=_ensemble_time(variable))
        number = int(variable["ensemble_number"]) + 65536 * int(
            variable["ensemble_number_msb"]
        )
        values: dict[str, object] = {
            "ensemble_number": number,
            "ensemble_time": datetime.fromtimestamp(
                _ensemble_time(variable), UTC
            ).isoformat(),
            "serial_number": fixed["serial_number"],
            "num_cells": fixed["num_cells"],
            "cell_length": fixed["depth_cell_length"],
            "bin_1_distance": fixed["bin_1_distance"],
            "heading": int(variable["heading"]) / 100,
            "pitch": int(variable["pitch"]) / 100,
            "roll": int(variable["roll"]) / 100,
            "temperature": int(variable["temperature"]) / 100,
            "salinity": variable["salinity"],
            "speed_of_sound": variable["speed_of_sound"],
            "transducer_depth": int(variable["depth_of_transducer"]) / 10,
            "pressure": int(variable["pressure"]) / 1000,
            "pressure_variance": int(variable["pressure_variance"]) / 1000,
        }
        for beam, name in enumerate(self.velocity_names):
            values[name] = _velocities(ensemble, beam)
        for beam in range(4):
            values[f"correlation_magnitude_beam{beam + 1}"] = ensemble.column(
                "correlation", beam
            )
            values[f"echo_intensity_beam{beam + 1}"] = ensemble.column(
                "echo_intensity", beam
            )
        for beam, name in enumerate(self.percent_good_names):
            values[name] = ensemble.column("percent_good", beam)
        return [{"value_id": key, "value": value} for key, value in values.items()]


_LEADER_VALUES: Final = (
    "ensemble_number", "ensemble_time", "serial_number", "num_cells", "cell_length",
    "bin_1_distance", "heading", "pitch", "roll", "temperature", "salinity",
    "speed_of_sound", "transducer_depth", "pressure", "pressure_variance",
)  # fmt: skip
_PROFILE_VALUES: Final = tuple(
    f"{kind}_beam{beam}"
    for beam in range(1, 5)
    for kind in ("correlation_magnitude", "echo_intensity")
)

_LEADER_FIELDS: Final = {
    "ensemble_number": _F("1", long_name="ensemble number since the deployment began"),
    "ensemble_time": _F("", long_name="instrument clock at the first ping, ISO 8601"),
    "serial_number": _F("", long_name="instrument serial number"),
    "num_cells": _F("1", long_name="number of depth cells"),
    "cell_length": _F("cm", long_name="depth cell length"),
    "bin_1_distance": _F("cm", long_name="distance to the middle of cell 1"),
    "heading": _F("degree", "platform_orientation", "heading"),
    "pitch": _F("degree", "platform_pitch", "pitch"),
    "roll": _F("degree", "platform_roll", "roll"),
    "temperature": _F(
        "degree_Celsius", "sea_water_temperature", "temperature at the transducer"
    ),
    "salinity": _F("1e-3", "sea_water_salinity", "salinity used"),
    "speed_of_sound": _F("m s-1", "speed_of_sound_in_sea_water", "speed of sound used"),
    "transducer_depth": _F("m", "depth", "transducer depth"),
    "pressure": _F("dbar", "sea_water_pressure", "pressure"),
    "pressure_variance": _F("dbar", long_name="pressure variance over the ensemble"),
}
_PROFILE_FIELDS: Final = {
    **{f"correlation_magnitude_beam{b}": _F("1", long_name=f"correlation magnitude per cell, beam {b} (0-255)") for b in range(1, 5)},
    **{f"echo_intensity_beam{b}": _F("1", long_name=f"echo intensity per cell, beam {b} (counts, about 0.45 dB each)") for b in range(1, 5)},
}  # fmt: skip


class VelocityEarthParticle(EnsembleParticle):
    """
    An ensemble in earth coordinates.
    """

    stream_name: ClassVar[str] = "adcp_velocity_earth"
    earth = True
    velocity_names = (
        "eastward_velocity",
        "northward_velocity",
        "upward_velocity",
        "error_velocity",
    )
    percent_good_names = (
        "percent_good_3beam",
        "percent_transforms_reject",
        "percent_bad_beams",
        "percent_good_4beam",
    )
    fields: ClassVar[Mapping[str, ParticleField]] = {
        **_LEADER_FIELDS,
        "eastward_velocity": _F("mm s-1", "eastward_sea_water_velocity", "eastward velocity per cell"),
        "northward_velocity": _F("mm s-1", "northward_sea_water_velocity", "northward velocity per cell"),
        "upward_velocity": _F("mm s-1", "upward_sea_water_velocity", "upward velocity per cell"),
        "error_velocity": _F("mm s-1", long_name="error velocity per cell"),
        **_PROFILE_FIELDS,
        "percent_good_3beam": _F("percent", long_name="pings with 3-beam solutions, per cell"),
        "percent_transforms_reject": _F("percent", long_name="pings rejected by the error velocity threshold, per cell"),
        "percent_bad_beams": _F("percent", long_name="pings with more than one beam bad, per cell"),
        "percent_good_4beam": _F("percent", long_name="pings with 4-beam solutions, per cell"),
    }  # fmt: skip


class VelocityBeamParticle(EnsembleParticle):
    """
    An ensemble in beam coordinates.
    """

    stream_name: ClassVar[str] = "adcp_velocity_beam"
    earth = False
    velocity_names = (
        "beam_1_velocity",
        "beam_2_velocity",
        "beam_3_velocity",
        "beam_4_velocity",
    )
    percent_good_names = (
        "percent_good_beam1",
        "percent_good_beam2",
        "percent_good_beam3",
        "percent_good_beam4",
    )
    fields: ClassVar[Mapping[str, ParticleField]] = {
        **_LEADER_FIELDS,
        **{f"beam_{b}_velocity": _F("mm s-1", long_name=f"velocity along beam {b} per cell, toward the transducer positive") for b in range(1, 5)},
        **_PROFILE_FIELDS,
        **{f"percent_good_beam{b}": _F("percent", long_name=f"good pings per cell, beam {b}") for b in range(1, 5)},
    }  # fmt: skip


class ConfigParticle(EnsembleParticle):
    """
    The fixed leader: how the instrument is set up (published when it
    changes).
    """

    stream_name: ClassVar[str] = "adcp_config"
    fields: ClassVar[Mapping[str, ParticleField]] = {
        "serial_number": _F("", long_name="instrument serial number"),
        "firmware_version": _F("", long_name="CPU firmware version"),
        "system_configuration": _F("", long_name="system configuration bits"),
        "num_beams": _COUNT,
        "num_cells": _COUNT,
        "pings_per_ensemble": _COUNT,
        "depth_cell_length": _F("cm"),
        "blank_after_transmit": _F("cm"),
        "profiling_mode": _F(""),
        "low_correlation_threshold": _COUNT,
        "percent_good_minimum": _F("percent"),
        "error_velocity_maximum": _F("mm s-1"),
        "time_per_ping": _F("s"),
        "coordinate_transform": _F("", long_name="EX bits"),
        "heading_alignment": _DEG,
        "heading_bias": _DEG,
        "sensor_source": _F("", long_name="EZ bits"),
        "sensors_available": _F("", long_name="EZ bits"),
        "bin_1_distance": _F("cm"),
        "transmit_pulse_length": _F("cm"),
        "false_target_threshold": _COUNT,
        "system_bandwidth": _F(""),
        "system_power": _COUNT,
        "beam_angle": _DEG,
    }

    @classmethod
    def matches(cls, raw: bytes) -> bool:
        """
        Never picked by the default record handling: the protocol publishes
        it when the fixed leader changes.
        """
        return False

    @classmethod
    def value_ids(cls) -> tuple[str, ...]:
        """
        :returns: the fixed-leader values.
        """
        return tuple(cls.fields)

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        fixed = self.ensemble.fixed
        self.set_internal_timestamp(unix=_ensemble_time(self.ensemble.variable))
        values = {name: fixed.get(name) for name in self.fields}
        values["firmware_version"] = (
            f"{fixed['firmware_version']}.{fixed['firmware_revision']}"
        )
        values["time_per_ping"] = (
            int(fixed["ping_minutes"]) * 60
            + int(fixed["ping_seconds"])
            + int(fixed["ping_hundredths"]) / 100
        )
        for name in ("heading_alignment", "heading_bias"):
            values[name] = int(fixed[name]) / 100
        return [{"value_id": key, "value": value} for key, value in values.items()]


class EngineeringParticle(ConfigParticle):
    """
    The variable leader's housekeeping: self-test, error status, ADC
    channels (published when it changes).
    """

    stream_name: ClassVar[str] = "adcp_engineering"
    fields: ClassVar[Mapping[str, ParticleField]] = {
        "bit_result": _F("", long_name="built-in test result bits (0 is good)"),
        "error_status_word": _F("", long_name="error status word bits"),
        "adc_channels": _F("1", long_name="ADC: transmit current, voltage, ambient temperature, pressure +, pressure -, attitude temperature, attitude, contamination"),
        "heading_stdev": _DEG,
        "pitch_stdev": _F("0.1 degree"),
        "roll_stdev": _F("0.1 degree"),
    }  # fmt: skip

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        variable = self.ensemble.variable
        self.set_internal_timestamp(unix=_ensemble_time(variable))
        values = {name: variable.get(name) for name in self.fields}
        values["adc_channels"] = list(variable["adc"])
        return [{"value_id": key, "value": value} for key, value in values.items()]


def _float(text: str) -> float:
    return float(text)


#: ``PS0``: from ``Instrument S/N`` to the end of its last line.
_PS0: Final = (
    rb"Instrument S/N: +(?P<serial_number>\d+)\r\n"
    rb" *Frequency: +(?P<frequency>\d+) HZ\r\n"
    rb" *Configuration: +(?P<configuration>[^\r\n]*)\r\n"
    rb" *Match Layer: +(?P<match_layer>\d+)\r\n"
    rb" *Beam Angle: +(?P<beam_angle>\d+) DEGREES\r\n"
    rb" *Beam Pattern: +(?P<beam_pattern>\w+)\r\n"
    rb" *Orientation: +(?P<orientation>\w+)\r\n"
    rb" *Sensor\(s\): +(?P<sensors>[^\r\n]*?) *\r\n"
    rb"(?:Pressure Sens Coefficients:\r\n"
    rb" *c3 = (?P<pressure_c3>\S+)\r\n *c2 = (?P<pressure_c2>\S+)\r\n"
    rb" *c1 = (?P<pressure_c1>\S+)\r\n *Offset = (?P<pressure_offset>\S+)\r\n)?"
    rb"[^>]*?CPU Firmware: +(?P<cpu_firmware>\S+)"
    rb"[^>]*\r\n"
)
#: ``PT200``: from ``Ambient  Temperature`` to the RSSI test's result line.
_PT200: Final = (
    rb"Ambient +Temperature = +(?P<ambient_temperature>-?[\d.]+) Degrees C\r\n"
    rb" *Attitude Temperature = +(?P<attitude_temperature>-?[\d.]+) Degrees C\r\n"
    rb" *Internal Moisture += (?P<internal_moisture>\w+)\r\n"
    rb"[^>]*?Receive Test Results = \$(?P<receive_test>\w+ \.\.\. \w+)\r\n"
    rb"[^>]*?IXMT += +(?P<transmit_current>[\d.]+) Amps"
    rb"[^>]*?VXMT += +(?P<transmit_voltage>[\d.]+) Volts"
    rb"[^>]*?Z += +(?P<transmit_impedance>[\d.]+) Ohms\r\n"
    rb"Transmit Test Results = \$(?P<transmit_test>\w+ \.\.\. \w+)\r\n"
    rb"[^>]*?Electronics Test Results = \$(?P<electronics_test>\w+)\r\n"
    rb"[^>]*?RSSI Time Constant:[^>]*?\r\nresult +(?P<rssi_results>[A-Z ]+?) *\r\n"
)
PS0_PATTERN: Final = re.compile(_PS0)
PT200_PATTERN: Final = re.compile(_PT200)


class SystemConfigurationParticle(RegexDataParticle):
    """
    ``PS0``: the instrument's hardware and firmware.
    """

    stream_name: ClassVar[str] = "adcp_system_configuration"
    pattern = PS0_PATTERN
    converters = {
        "serial_number": int,
        "frequency": int,
        "match_layer": int,
        "beam_angle": int,
        "pressure_c3": _float,
        "pressure_c2": _float,
        "pressure_c1": _float,
        "pressure_offset": _float,
    }
    fields: ClassVar[Mapping[str, ParticleField]] = {
        "serial_number": _F("", long_name="instrument serial number"),
        "frequency": _F("Hz", long_name="transducer frequency"),
        "configuration": _F(""),
        "match_layer": _F(""),
        "beam_angle": _DEG,
        "beam_pattern": _F(""),
        "orientation": _F(""),
        "sensors": _F("", long_name="sensors fitted"),
        "pressure_c3": _F("1", long_name="pressure sensor coefficient c3"),
        "pressure_c2": _F("1", long_name="pressure sensor coefficient c2"),
        "pressure_c1": _F("1", long_name="pressure sensor coefficient c1"),
        "pressure_offset": _F("1", long_name="pressure sensor offset"),
        "cpu_firmware": _F("", long_name="CPU firmware version"),
    }


class TestResultsParticle(RegexDataParticle):
    """
    ``PT200``: the built-in tests.
    """

    stream_name: ClassVar[str] = "adcp_test_results"
    pattern = PT200_PATTERN
    converters = {
        "ambient_temperature": _float,
        "attitude_temperature": _float,
        "transmit_current": _float,
        "transmit_voltage": _float,
        "transmit_impedance": _float,
        "rssi_results": str.split,
    }
    fields: ClassVar[Mapping[str, ParticleField]] = {
        "ambient_temperature": _F("degree_Celsius", long_name="ambient temperature"),
        "attitude_temperature": _F("degree_Celsius", long_name="attitude sensor temperature"),
        "internal_moisture": _F("", long_name="internal moisture, hex counts"),
        "receive_test": _F("", long_name="receive path test: code ... PASS/FAIL"),
        "transmit_current": _F("A", long_name="transmit current, rms"),
        "transmit_voltage": _F("V", long_name="transmit voltage, rms"),
        "transmit_impedance": _F("ohm", long_name="transducer impedance"),
        "transmit_test": _F("", long_name="transmit path test: code ... PASS/FAIL"),
        "electronics_test": _F("", long_name="electronics wrap-around test code"),
        "rssi_results": _F("", long_name="RSSI time constant test per beam"),
    }  # fmt: skip


#: The chunker's sieves: ensembles, and the two text dumps, each complete
#: only once the prompt after it has come (a dump cut short is never a
#: record).
SIEVES: Final[tuple[Sieve, ...]] = (
    pd0.ensemble_sieve(),
    re.compile(_PS0 + rb"(?=>)"),
    re.compile(_PT200 + rb"(?=>)"),
)
