# -*- test-case-name: tests.test_optode_driver -*-
"""
What an Aanderaa optode prints, as records and particles: sample lines
(stream ``dosta_sample``) and the ``Get All`` dump (``dosta_status``).

A sample line comes in two forms (``doc/specs/aanderaa-4831-optode.md``):
with ``Enable Text`` on, every value follows its name and unit
(``MEASUREMENT<TAB>4831<TAB>379<TAB>O2Concentration[uM]<TAB>354.255…``);
off, only the values follow product and serial, and which they are is told
by how many there are, as the fields switched on give them.  Framework 2's
round brackets (``O2Concentration(uM)``) are read too.  A line may begin
right after the sensor's ``!``, ``%`` or ``?`` (its wake and sleep marks) or
after noise, so a record starts at the product number, never inside a
``Get`` reply, where a TAB precedes it.
"""

from __future__ import annotations

import re
from typing import ClassVar, Final

from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.particles import ParticleField, RegexDataParticle

__all__ = ["SAMPLE", "SIEVES", "STATUS", "OptodeSample", "OptodeStatus"]

_NUMBER: Final = rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
#: A sample line, either form, to its CR LF.
SAMPLE: Final = re.compile(
    rb"(?<![^\n!%?\x11\x13])(?:MEASUREMENT\t)?(?P<product_number>\d{4}[A-Z]?)\t"
    rb"(?P<serial_number>\d+)(?P<fields>(?:(?:\t[A-Za-z0-9]+[\[(][^\t\r\n]*[\])])?"
    rb"\t" + _NUMBER + rb")+)\t?\r\n"
)
#: The ``Get All`` dump, first property to last.
STATUS: Final = re.compile(
    rb"Product Name\t[^\r\n]*\r\n(?:[^\r\n]*\r\n)*?SVUFoilCoef\t[^\r\n]*\r\n"
)
SIEVES: Final = (SAMPLE, STATUS)

_O2: Final = "mole_concentration_of_dissolved_molecular_oxygen_in_sea_water"
_SAT: Final = "fractional_saturation_of_oxygen_in_sea_water"
_TEMP: Final = "temperature_of_sensor_for_oxygen_in_sea_water"
#: Printed name (before its unit) to value id, units and CF standard name.
_OUTPUT: Final = {
    "O2Concentration": ("oxygen_concentration", "umol L-1", _O2),
    "AirSaturation": ("oxygen_saturation", "percent", _SAT),
    "Temperature": ("optode_temperature", "degree_Celsius", _TEMP),
    "CalPhase": ("calibrated_phase", "degree", None),
    "TCPhase": ("temp_compensated_phase", "degree", None),
    "C1RPh": ("blue_phase", "degree", None),
    "C2RPh": ("red_phase", "degree", None),
    "C1Amp": ("blue_amplitude", "mV", None),
    "C2Amp": ("red_amplitude", "mV", None),
    "RawTemp": ("raw_temperature", "mV", None),
}
_IDS: Final = tuple(value_id for value_id, _, _ in _OUTPUT.values())
#: Text off: the values there are, by count (the spec's real lines: 10 with
#: everything on, 9 without air saturation).
_BY_COUNT: Final = {
    10: _IDS,
    9: (_IDS[0], *_IDS[2:]),
    8: (_IDS[0], *_IDS[3:]),
    3: _IDS[:3],
    2: (_IDS[0], _IDS[2]),
    1: _IDS[:1],
}


class OptodeSample(RegexDataParticle):
    """
    One sample (stream ``dosta_sample``): ``product_number``,
    ``serial_number``, then the measured values the sensor had switched on,
    named as OOI's DOSTA streams name them; those it left out are ``None``.
    """

    stream_name: ClassVar[str] = "dosta_sample"
    pattern = SAMPLE
    fields = {
        "product_number": ParticleField("", None, "product number"),
        "serial_number": ParticleField("", None, "serial number"),
        **{
            value_id: ParticleField(units, standard, printed)
            for printed, (value_id, units, standard) in _OUTPUT.items()
        },
    }

    @classmethod
    def value_ids(cls) -> tuple[str, ...]:
        """
        :returns: product and serial number, then every measured value.
        """
        return ("product_number", "serial_number", *_IDS)

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        match = SAMPLE.search(raw)
        if match is None:
            return super()._build_values(raw)
        columns = match.group("fields").decode("ascii").strip("\t").split("\t")
        if len(columns) > 1 and not _is_number(columns[0]):
            names = [re.split(r"[\[(]", name)[0] for name in columns[::2]]
            found: dict[str, object] = {
                _OUTPUT[name][0]: float(v)
                for name, v in zip(names, columns[1::2], strict=True)
                if name in _OUTPUT
            }
        else:
            ids = _BY_COUNT.get(len(columns))
            if ids is None:
                raise InstrumentProtocolError(
                    f"{self.stream_name}: {len(columns)} values without names "
                    f"cannot be told apart: {raw[:120]!r}"
                )
            found = dict(zip(ids, map(float, columns), strict=True))
        found["product_number"] = match.group("product_number").decode()
        found["serial_number"] = match.group("serial_number").decode()
        return [{"value_id": key, "value": found.get(key)} for key in self.value_ids()]


def _is_number(text: str) -> bool:
    return re.fullmatch(_NUMBER.decode(), text) is not None


def _property_id(name: str) -> str:
    return "_".join(name.lower().split())


#: Settings and identity in the dump, by their printed names.
STATUS_PROPERTIES: Final = (
    "Product Name", "Product Number", "Serial Number", "SW Version", "Interval",
    "Mode", "Enable Sleep", "Enable Polled Mode", "Enable Text",
    "Enable Decimalformat", "Enable Temperature", "Enable AirSaturation",
    "Enable Rawdata", "Salinity", "Comm TimeOut", "PhaseCoef", "FoilID",
)  # fmt: skip


class OptodeStatus(RegexDataParticle):
    """
    The ``Get All`` dump (stream ``dosta_status``): one value per property
    line, named in lower case with ``_`` for spaces (``enable_polled_mode``);
    several values (``phasecoef``, ``sw_version``) as a list; ``Yes``/``No``
    as booleans, numbers as floats, the rest as text.
    """

    stream_name: ClassVar[str] = "dosta_status"
    pattern = STATUS
    fields = {
        _property_id(name): ParticleField(
            "s" if name == "Interval" else "1" if name == "Salinity" else "",
            None,
            name,
        )
        for name in STATUS_PROPERTIES
    }

    @classmethod
    def value_ids(cls) -> tuple[str, ...]:
        """
        :returns: the properties described in :attr:`fields`.
        """
        return tuple(cls.fields)

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        values: list[dict[str, object]] = []
        for line in raw.decode("latin-1").splitlines():
            name, *columns = [column.strip() for column in line.split("\t")]
            value_id = _property_id(name)
            if value_id in self.fields and len(columns) >= 3:
                items = [_value(text) for text in columns[2:]]
                values.append(
                    {
                        "value_id": value_id,
                        "value": items[0] if len(items) == 1 else items,
                    }
                )
        return values


def _value(text: str) -> object:
    if text in ("Yes", "No"):
        return text == "Yes"
    return float(text) if _is_number(text) else text
