# -*- test-case-name: tests.test_sbe37_driver -*-
"""
The SBE 37-SMP's parameters: what the driver reads from ``DS`` and ``DC``
and what it may set.

The user settings (:data:`SETTINGS`) are read from the status dump and set
with the instrument's own ``NAME=value`` commands.  The calibration
(:data:`CALIBRATION`) is read from the calibration dump and is read-only:
coefficients come from a calibration lab, not from an operator's console.

Ranges are the instrument's (the spec's): INTERVAL 5..32767, NAVG
1..32767, SYNCWAIT 0..120.  The spec gives none for REFPRESS; the driver
takes 0..10000 dbar (the ocean's deepest), and SAMPLENUM is only kept
non-negative, since the memory's size depends on the instrument (it refuses
what it cannot hold, and the driver reports that refusal).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from instrumentd.driver.parameters import (
    Parameter,
    ParameterDictionary,
    ParameterType,
    Visibility,
)
from instrumentd.instruments.seabird.sbe37smp.particles import said_yes

__all__ = [
    "CALIBRATION",
    "DIRECT_ACCESS",
    "SETTINGS",
    "STARTUP",
    "declare_parameters",
]


def _line(pattern: str) -> re.Pattern[str]:
    # Dump items are one a line; anchor each so "temperature = " (the
    # housing's, in DS) never reads as "temperature:" (a DC section).
    return re.compile(pattern, re.MULTILINE)


def _flag_format(name: str) -> Callable[[object], str]:
    def write(value: object) -> str:
        return f"{name}={'Y' if value else 'N'}"

    return write


def _refpress_format(value: object) -> str:
    assert isinstance(value, float)
    return f"REFPRESS={value:.3f}"


def _flag(
    name: str,
    text: str,
    description: str,
    *,
    default: bool | None,
    display_name: str = "",
) -> Parameter:
    return Parameter(
        name=name,
        type=ParameterType.BOOL,
        startup=default is not None,
        direct_access=True,
        default_value=default,
        description=description,
        value_description="Y or N on the instrument; true or false here",
        # The line's words: "do not transmit real-time data" (2.x),
        # "transmit real-time = no" (3.0h).
        pattern=_line(rf"^((?:do not )?{text})"),
        converter=said_yes,
        format=_flag_format(name),
        display_name=display_name,
    )


def _settings() -> tuple[Parameter, ...]:
    return (
        Parameter(
            name="INTERVAL",
            type=ParameterType.INT,
            startup=True,
            direct_access=True,
            default_value=15,
            minimum=5,
            maximum=32767,
            units="s",
            display_name="Sample interval",
            description="Seconds between samples while logging (autosample).",
            pattern=_line(r"^sample interval = (\d+) seconds"),
            format="INTERVAL={value}",
        ),
        Parameter(
            name="NAVG",
            type=ParameterType.INT,
            startup=True,
            direct_access=True,
            default_value=1,
            minimum=1,
            maximum=32767,
            display_name="Samples to average",
            description="Measurements averaged into each sample.",
            pattern=_line(r"^number of samples to average = (\d+)"),
            format="NAVG={value}",
        ),
        Parameter(
            name="SAMPLENUM",
            type=ParameterType.INT,
            minimum=0,
            display_name="Sample number",
            description=(
                "Samples stored in memory. Setting it lower forgets the "
                "later samples; it grows by itself while logging."
            ),
            pattern=_line(r"^samplenumber = (\d+),"),
            format="SAMPLENUM={value}",
            # It counts samples while the instrument logs, so a get in
            # command mode always reads it afresh.
            expiration=0,
        ),
        _flag(
            "TXREALTIME",
            r"transmit real-time(?: data| = \w+)",
            "Print each sample while logging; without it autosample makes no "
            "particles.",
            default=True,
        ),
        _flag(
            "OUTPUTSAL",
            "output salinity with each sample",
            "Add salinity (psu) to each sample.",
            default=True,
        ),
        _flag(
            "OUTPUTSV",
            "output sound velocity with each sample",
            "Add sound velocity (m/s) to each sample.",
            default=True,
        ),
        _flag(
            "STORETIME",
            "store time with each sample",
            "Add the instrument's date and time to each sample (its internal "
            "timestamp).",
            default=True,
        ),
        _flag(
            "SYNCMODE",
            r"(?:serial )?sync mode(?: enabled| disabled| = \w+)",
            "Take a sample whenever a byte wakes the instrument; off by "
            "default, since the driver's wake-up would then take samples.",
            default=False,
            display_name="Serial sync mode",
        ),
        Parameter(
            name="SYNCWAIT",
            type=ParameterType.INT,
            direct_access=True,
            minimum=0,
            maximum=120,
            units="s",
            display_name="Serial sync wait",
            description="Seconds the instrument waits after a serial sync sample.",
            pattern=_line(r"^wait time after serial sync sampling = (\d+) seconds"),
            format="SYNCWAIT={value}",
        ),
        Parameter(
            name="REFPRESS",
            type=ParameterType.FLOAT,
            direct_access=True,
            minimum=0.0,
            maximum=10000.0,
            units="dbar",
            display_name="Reference pressure",
            description=(
                "Pressure used for salinity and sound velocity when the "
                "instrument has no pressure sensor."
            ),
            pattern=_line(r"^reference pressure = (-?\d+(?:\.\d+)?) db"),
            format=_refpress_format,
        ),
    )


def _calibration() -> tuple[Parameter, ...]:
    def date(name: str, section: str, what: str) -> Parameter:
        return Parameter(
            name=name,
            type=ParameterType.STRING,
            visibility=Visibility.READ_ONLY,
            display_name=f"{what} calibration date",
            description=f"When the {what.lower()} sensor was calibrated (dd-mon-yy).",
            # "pressure S/N 4955, range = 10847.1964958 psia:  12-aug-05";
            # 3.0h: "... range = 508 psia  04-May-09".
            pattern=_line(rf"^{section}\b[^\r\n]*?(?:: +| psia +)(\S+)\s*$"),
        )

    def coefficient(name: str, printed: str, what: str) -> Parameter:
        return Parameter(
            name=name,
            type=ParameterType.FLOAT,
            visibility=Visibility.READ_ONLY,
            display_name=f"{what} coefficient {printed}",
            description=f"{what} calibration coefficient {printed}.",
            # 3.0h prints PTCB0..2 by their setters' names.
            pattern=_line(rf"^ +(?:{printed}|{name}) = (\S+)"),
        )

    return (
        date("TCALDATE", "temperature", "Temperature"),
        *(coefficient(f"TA{k}", f"TA{k}", "Temperature") for k in range(4)),
        date("CCALDATE", "conductivity", "Conductivity"),
        *(
            coefficient(name, printed, "Conductivity")
            for name, printed in (
                ("CG", "G"),
                ("CH", "H"),
                ("CI", "I"),
                ("CJ", "J"),
                ("CPCOR", "CPCOR"),
                ("CTCOR", "CTCOR"),
                ("WBOTC", "WBOTC"),
            )
        ),
        date("PCALDATE", "pressure", "Pressure"),
        *(coefficient(f"PA{k}", f"PA{k}", "Pressure") for k in range(3)),
        *(coefficient(f"PTCA{k}", f"PTCA{k}", "Pressure") for k in range(3)),
        # Set as PTCB0..2, printed as PTCSB0..2.
        *(coefficient(f"PTCB{k}", f"PTCSB{k}", "Pressure") for k in range(3)),
        *(coefficient(f"PTEMPA{k}", f"PTEMPA{k}", "Pressure") for k in range(3)),
        coefficient("POFFSET", "POFFSET", "Pressure"),
        date("RCALDATE", "rtc", "RTC"),
        *(coefficient(f"RTCA{k}", f"RTCA{k}", "Real-time clock") for k in range(3)),
    )


_SETTINGS: Final = _settings()
_CALIBRATION: Final = _calibration()

#: The user settings, read from ``DS``, in the order the driver sets them.
SETTINGS: Final[tuple[str, ...]] = tuple(p.name for p in _SETTINGS)
#: The calibration, read from ``DC``; read-only.
CALIBRATION: Final[tuple[str, ...]] = tuple(p.name for p in _CALIBRATION)
#: Set from the startup configuration (or their defaults) after connecting.
STARTUP: Final[tuple[str, ...]] = tuple(p.name for p in _SETTINGS if p.startup)
#: Restored when direct access ends, if an operator changed them.
DIRECT_ACCESS: Final[tuple[str, ...]] = tuple(
    p.name for p in _SETTINGS if p.direct_access
)


def declare_parameters(parameters: ParameterDictionary) -> None:
    """
    Declare every SBE 37-SMP parameter.

    :param parameters: the protocol's dictionary.
    """
    for parameter in (*_SETTINGS, *_CALIBRATION):
        parameters.add(parameter)
