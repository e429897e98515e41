# -*- test-case-name: tests.test_optode_simulator -*-
"""
The simulated optode's properties: what ``Get``, ``Set`` and ``Get All``
work on, with each one's type, the passkey level it needs and its default.

Names, types and levels follow ``doc/specs/aanderaa-4831-optode.md``
(FW3); where the spec is unsure the choice is marked "choice" below and in
``doc/simulators.md``.  Values print as the spec's real replies do: BOOL as
``Yes``/``No``, settings such as Interval in decimals (``5.000``), and
coefficient arrays in exponential form (``1.000000E+00``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

__all__ = [
    "COMM_TIMEOUTS",
    "PROPERTIES",
    "Level",
    "Property",
    "PropertyError",
    "by_name",
]


class Level(IntEnum):
    """
    Who may set a property: the passkey level it needs.
    """

    FREE = 0
    LOW = 1
    HIGH = 1000
    READ_ONLY = 1_000_000


class PropertyError(Exception):
    """
    A ``Set`` the sensor refuses; the text follows the ``*`` of its error
    line.
    """


#: Comm TimeOut choices and their seconds (``None``: never sleeps).
COMM_TIMEOUTS: Final[dict[str, float | None]] = {
    "Always On": None,
    "10 s": 10.0,
    "20 s": 20.0,
    "30 s": 30.0,
    "1 min": 60.0,
    "2 min": 120.0,
    "5 min": 300.0,
    "10 min": 600.0,
}

Value = bool | float | int | str | tuple[float, ...] | tuple[int, ...]


def _bool(texts: Sequence[str]) -> bool:
    (text,) = texts
    if text.lower() in ("yes", "no"):
        return text.lower() == "yes"
    raise PropertyError("ERROR ARGUMENT")


def _float(low: float, high: float) -> Callable[[Sequence[str]], float]:
    def read(texts: Sequence[str]) -> float:
        (text,) = texts
        try:
            value = float(text)
        except ValueError:
            raise PropertyError("ERROR ARGUMENT") from None
        if not low <= value <= high:
            raise PropertyError("ERROR ARGUMENT OUT OF RANGE")
        return value

    return read


def _choice(*choices: str) -> Callable[[Sequence[str]], str]:
    def read(texts: Sequence[str]) -> str:
        text = ",".join(texts)
        # ENUM values are case-sensitive (the spec's AiCaP / AICAP rule).
        if text not in choices:
            raise PropertyError("ERROR ARGUMENT")
        return text

    return read


def _floats(count: int) -> Callable[[Sequence[str]], tuple[float, ...]]:
    def read(texts: Sequence[str]) -> tuple[float, ...]:
        if len(texts) != count:
            raise PropertyError("ERROR ARGUMENT COUNT")
        try:
            return tuple(float(text) for text in texts)
        except ValueError:
            raise PropertyError("ERROR ARGUMENT") from None

    return read


def _text(texts: Sequence[str]) -> str:
    return ",".join(texts)


@dataclass(frozen=True)
class Property:
    """
    One property of the sensor.

    :ivar name: as printed (``Enable Polled Mode``); matched without regard
        to case on input.
    :ivar level: the passkey level a ``Set`` needs.
    :ivar default: the value at the factory.
    :ivar read: turns a ``Set``'s arguments into a value, or raises
        :class:`PropertyError`; ``None`` for read-only properties.
    :ivar exponential: print numbers as ``%E`` (coefficient arrays).
    """

    name: str
    level: Level
    default: Value
    read: Callable[[Sequence[str]], Value] | None = None
    exponential: bool = False

    def format(self, value: Value) -> list[str]:
        """
        :param value: the property's value.
        :returns: the printed values, one per TAB-separated column.
        """
        items: Sequence[object] = value if isinstance(value, tuple) else (value,)
        out: list[str] = []
        for item in items:
            if isinstance(item, bool):
                out.append("Yes" if item else "No")
            elif isinstance(item, float):
                out.append(f"{item:E}" if self.exponential else f"{item:.3f}")
            else:
                out.append(str(item))
        return out


_FOIL_A: Final = (
    -3.176837e-06, -6.413872e-06, 1.743939e-03, -1.904569e-01, 7.106918e-04,
    -5.010922e-07, 1.056089e01, -6.135393e-02, 1.165880e-04, -3.871131e-07,
    -3.042181e02, 2.469668e00, -7.050199e-03, -2.616267e-05,
)  # fmt: skip
_FOIL_B: Final = (
    9.131562e-07, 3.768247e03, -4.024900e01, 1.506045e-01, 1.097636e-03,
    -1.384983e-05, -3.184898e-07, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
)  # fmt: skip
_DEG_T: Final = (1, 0, 0, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5,
                 0, 0, 0, 0, 0, 0, 0)  # fmt: skip
_DEG_O: Final = (4, 5, 4, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
                 0, 0, 0, 0, 0, 0, 0)  # fmt: skip
_SVU: Final = (3.046782e-03, 1.293621e-04, 2.499496e-06, 2.340326e02,
               -3.365579e-01, -5.374688e01, 4.557863e00)  # fmt: skip

_L, _H, _RO = Level.LOW, Level.HIGH, Level.READ_ONLY

#: Every property, in ``Get All`` order (the spec's constructed dump).
#: Levels: Interval and the Enable… output switches need passkey 1 (choice:
#: the spec's DUNE evidence), the rest of the settings 1000.
PROPERTIES: Final[tuple[Property, ...]] = (
    Property("Product Name", _RO, "Optode"),
    Property("Product Number", _RO, "4831"),
    Property("Serial Number", _RO, 0),
    Property("SW ID", _RO, 1940031),
    Property("SW Version", _RO, (4, 9, 1)),
    Property("Interval", _L, 5.0, _float(1.0, 86_400.0)),
    Property(
        "Mode",
        _H,
        "Smart Sensor Terminal",
        _choice(
            "AiCaP",
            "Smart Sensor Terminal",
            "AADI Real-Time",
            "Smart Sensor Terminal FW2",
        ),
    ),
    Property("Enable Sleep", _L, True, _bool),
    Property("Enable Polled Mode", _L, False, _bool),
    Property("Enable Text", _L, False, _bool),
    Property("Enable Decimalformat", _L, True, _bool),
    Property("Enable Temperature", _L, True, _bool),
    Property("Enable AirSaturation", _L, True, _bool),
    Property("Enable Rawdata", _L, True, _bool),
    Property("Enable HumidityComp", _H, True, _bool),
    Property("Salinity", _H, 0.0, _float(0.0, 45.0), exponential=True),
    Property("Baudrate", _H, "9600", _choice("4800", "9600", "57600", "115200")),
    Property("Flow Control", _H, "Xon/Xoff", _choice("None", "Xon/Xoff")),
    Property("Enable Comm Indicator", _H, True, _bool),
    Property("Comm TimeOut", _H, "1 min", _choice(*COMM_TIMEOUTS)),
    Property("Location", _L, "", _text),
    Property("PhaseCoef", _H, (0.0, 1.0, 0.0, 0.0), _floats(4), exponential=True),
    Property("FoilID", _H, "1207M", _text),
    Property("FoilCoefA", _H, _FOIL_A, _floats(14), exponential=True),
    Property("FoilCoefB", _H, _FOIL_B, _floats(14), exponential=True),
    Property("FoilPolyDegT", _RO, _DEG_T),
    Property("FoilPolyDegO", _RO, _DEG_O),
    Property("ConcCoef", _H, (0.0, 1.0), _floats(2), exponential=True),
    Property("NomAirPress", _H, 1013.25, _float(500, 1100), exponential=True),
    Property("NomAirMix", _H, 0.20946, _float(0, 1), exponential=True),
    Property("CalDataSat", _H, (31.12, 9.91), _floats(2), exponential=True),
    Property("CalDataAPress", _H, 939.141, _float(500, 1100), exponential=True),
    Property("CalDataZero", _H, 19.996, _float(0, 90), exponential=True),
    Property("SVUFoilCoef", _H, _SVU, _floats(7), exponential=True),
)

_BY_NAME: Final = {prop.name.lower(): prop for prop in PROPERTIES}


def by_name(name: str) -> Property | None:
    """
    :param name: a property's name, in any case, spaces as printed.
    :returns: the property, or ``None`` if the sensor has none by that name.
    """
    return _BY_NAME.get(" ".join(name.split()).lower())
