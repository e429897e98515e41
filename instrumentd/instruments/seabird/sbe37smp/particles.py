# -*- test-case-name: tests.test_sbe37_driver -*-
"""
What the SBE 37-SMP prints, as records and data particles.

Three kinds of record come out of a MicroCAT, and each becomes a particle:

- a **sample** line (``TS``, or ``#``-prefixed while logging), stream
  ``ctdpf_sample``: :class:`SBE37SampleParticle`;
- the **status** dump (``DS``), stream ``ctdpf_status``:
  :class:`SBE37StatusParticle`;
- the **calibration** dump (``DC``), stream ``ctdpf_calibration``:
  :class:`SBE37CalibrationParticle`.

Each particle's pattern is also the chunker's sieve for its record
(:data:`SIEVES`), so what makes a record and what a particle reads are one
declaration.  Every pattern ends at a line end (and the status dump at the
line after its last), so a record cut short in transit is never taken for a
whole one: the chunker waits for the rest.

The instrument prints times as ``05 Feb 2013, 19:16:59`` in English whatever
the host's locale, so months are read from a table here rather than with
``strptime``'s locale-dependent ``%b``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import ClassVar, Final

from instrumentd.driver.chunker import Sieve
from instrumentd.driver.particles import ParticleField, RegexDataParticle

__all__ = [
    "CALIBRATION_PATTERN",
    "SAMPLE_PATTERN",
    "SIEVES",
    "STATUS_PATTERN",
    "STATUS_SIEVE",
    "SBE37CalibrationParticle",
    "SBE37SampleParticle",
    "SBE37StatusParticle",
    "read_instrument_time",
]

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun",
         "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}  # fmt: skip

_TIME = re.compile(
    r"^\s*(\d{1,2}) ([A-Za-z]{3}) (\d{4}),?\s+(\d{1,2}):(\d{2}):(\d{2})\s*$"
)


def read_instrument_time(text: str) -> datetime:
    """
    Read a time as the instrument prints it: ``05 Feb 2013, 19:16:59`` in a
    sample, ``05 Feb 2013  19:11:43`` in the status dump.  The instrument
    keeps UTC (the driver's clock sync sets it so).

    :param text: the text.
    :returns: an aware UTC datetime.
    :raises ValueError: if it is not such a time.
    """
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time like '05 Feb 2013, 19:16:59'")
    day, month_name, year, hour, minute, second = match.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None:
        raise ValueError(f"{month_name!r} is not a month")
    return datetime(
        int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=UTC
    )


def _yes_unless_do_not(text: str) -> bool:
    # "transmit real-time data" / "do not transmit real-time data": the
    # group holds "do not " or nothing.
    return text == ""


_NUMBER: Final = rb"-?\d+\.\d+"

#: A FORMAT=1 sample line: temperature (deg C), conductivity (S/m),
#: pressure (dbar), then salinity (psu) if OUTPUTSAL, sound velocity (m/s)
#: if OUTPUTSV, then the date and time if STORETIME, and CR LF.
#:
#: The instrument prints salinity with four decimals and sound velocity
#: with three, so a line with only one of them says which it is.  A line
#: starts with ``#`` (while logging; it may follow a prompt or a character
#: of echo on the same line) or at a line start (``TS``): a number run in
#: from the middle of some other text is not a sample.
SAMPLE_PATTERN: Final = re.compile(
    rb"(?:#|(?<![^\n>]))"
    rb" *(?P<temperature>" + _NUMBER + rb"),"
    rb" *(?P<conductivity>" + _NUMBER + rb"),"
    rb" *(?P<pressure>" + _NUMBER + rb")"
    rb"(?:, *(?P<salinity>-?\d+\.\d{4}))?"
    rb"(?:, *(?P<sound_velocity>-?\d+\.\d{3}))?"
    rb"(?:, *(?P<instrument_time>\d{1,2} [A-Za-z]{3} \d{4}, *\d{1,2}:\d\d:\d\d))?"
    rb"\r\n"
)


class SBE37SampleParticle(RegexDataParticle):
    """
    One sample (stream ``ctdpf_sample``).

    Values, in order: ``temperature`` (ITS-90 deg C), ``conductivity``
    (S/m), ``pressure`` (dbar), ``salinity`` (psu, ``None`` unless
    OUTPUTSAL), ``sound_velocity`` (m/s, ``None`` unless OUTPUTSV),
    ``instrument_time`` (the instrument's clock, ``None`` unless STORETIME).

    The instrument time, when present, is the internal timestamp; the port
    timestamp is when the port agent read the line's first byte.  The
    preferred timestamp stays the port timestamp: the agent's clock is
    disciplined, the instrument's real-time clock drifts between clock
    syncs.
    """

    stream_name: ClassVar[str] = "ctdpf_sample"
    pattern = SAMPLE_PATTERN
    converters = {
        "temperature": float,
        "conductivity": float,
        "pressure": float,
        "salinity": float,
        "sound_velocity": float,
        "instrument_time": read_instrument_time,
    }
    internal_time_value: ClassVar[str | None] = "instrument_time"
    fields = {
        "temperature": ParticleField(
            "degree_Celsius", "sea_water_temperature", "temperature (ITS-90)"
        ),
        "conductivity": ParticleField(
            "S m-1", "sea_water_electrical_conductivity", "conductivity"
        ),
        "pressure": ParticleField("dbar", "sea_water_pressure", "pressure"),
        "salinity": ParticleField(
            "1", "sea_water_practical_salinity", "practical salinity (PSS-78)"
        ),
        "sound_velocity": ParticleField(
            "m s-1", "speed_of_sound_in_sea_water", "sound velocity (Chen-Millero)"
        ),
        "instrument_time": ParticleField("", None, "the instrument's clock, UTC"),
    }


_STATUS_BODY: Final = (
    rb"SBE37-SMP V (?P<firmware_version>\S+) +SERIAL NO\. (?P<serial_number>\d+)"
    rb" +(?P<date_time>\d{1,2} [A-Za-z]{3} \d{4} +\d{1,2}:\d\d:\d\d) *\r\n"
    rb"(?P<logging_status>(?P<logging>(?:not )?logging)[^\r\n]*)\r\n"
    rb"sample interval = (?P<sample_interval>\d+) seconds\r\n"
    rb"samplenumber = (?P<sample_number>\d+), free = (?P<memory_free>\d+)\r\n"
    rb"(?P<tx_realtime>(?:do not )?)transmit real-time data\r\n"
    rb"(?P<output_salinity>(?:do not )?)output salinity with each sample\r\n"
    rb"(?P<output_sound_velocity>(?:do not )?)output sound velocity with each sample\r\n"
    rb"(?P<store_time>(?:do not )?)store time with each sample\r\n"
    rb"number of samples to average = (?P<number_of_samples_to_average>\d+)\r\n"
    rb"reference pressure = (?P<reference_pressure>-?\d+(?:\.\d+)?) db\r\n"
    rb"serial sync mode (?P<serial_sync_mode>enabled|disabled)\r\n"
    rb"wait time after serial sync sampling = (?P<serial_sync_wait>\d+) seconds\r\n"
    rb"internal pump is (?P<pump_installed>installed|not installed)\r\n"
    rb"temperature = (?P<temperature>-?\d+(?:\.\d+)?) deg C\r\n"
    rb"(?P<low_battery>(?:WARNING: LOW BATTERY VOLTAGE!!\r\n)?)"
)

#: The status dump (``DS``), one item a line.
STATUS_PATTERN: Final = re.compile(_STATUS_BODY)

#: The status dump as a record: complete only once what follows its last
#: line has begun (the CR LF and prompt that end every reply), since an
#: optional low-battery warning may come after the temperature line.
STATUS_SIEVE: Final = re.compile(_STATUS_BODY + rb"(?=\r\n|S>)")


class SBE37StatusParticle(RegexDataParticle):
    """
    The status dump (stream ``ctdpf_status``).

    Values, in order: ``firmware_version``, ``serial_number``,
    ``date_time`` (the instrument's clock; also the internal timestamp),
    ``logging_status`` (the second line as printed), ``logging`` (bool),
    ``sample_interval`` (s), ``sample_number``, ``memory_free`` (samples),
    ``tx_realtime``, ``output_salinity``, ``output_sound_velocity``,
    ``store_time`` (bools), ``number_of_samples_to_average``,
    ``reference_pressure`` (dbar), ``serial_sync_mode`` (bool),
    ``serial_sync_wait`` (s), ``pump_installed`` (bool), ``temperature``
    (deg C, the housing's), ``low_battery`` (bool).
    """

    stream_name: ClassVar[str] = "ctdpf_status"
    pattern = STATUS_PATTERN
    converters = {
        "date_time": read_instrument_time,
        "logging": lambda text: text == "logging",
        "sample_interval": int,
        "sample_number": int,
        "memory_free": int,
        "tx_realtime": _yes_unless_do_not,
        "output_salinity": _yes_unless_do_not,
        "output_sound_velocity": _yes_unless_do_not,
        "store_time": _yes_unless_do_not,
        "number_of_samples_to_average": int,
        "reference_pressure": float,
        "serial_sync_mode": lambda text: text == "enabled",
        "serial_sync_wait": int,
        "pump_installed": lambda text: text == "installed",
        "temperature": float,
        "low_battery": bool,
    }
    internal_time_value: ClassVar[str | None] = "date_time"
    fields = {
        "firmware_version": ParticleField("", None, "firmware version"),
        "serial_number": ParticleField("", None, "serial number"),
        "date_time": ParticleField("", None, "the instrument's clock, UTC"),
        "logging_status": ParticleField("", None, "logging line as printed"),
        "logging": ParticleField("", None, "logging"),
        "sample_interval": ParticleField("s", None, "sample interval"),
        "sample_number": ParticleField("1", None, "samples in memory"),
        "memory_free": ParticleField("1", None, "samples of memory free"),
        "tx_realtime": ParticleField("", None, "transmit real-time data"),
        "output_salinity": ParticleField("", None, "output salinity"),
        "output_sound_velocity": ParticleField("", None, "output sound velocity"),
        "store_time": ParticleField("", None, "store time with each sample"),
        "number_of_samples_to_average": ParticleField("1", None, "samples averaged"),
        "reference_pressure": ParticleField("dbar", None, "reference pressure"),
        "serial_sync_mode": ParticleField("", None, "serial sync mode"),
        "serial_sync_wait": ParticleField("s", None, "wait after serial sync"),
        "pump_installed": ParticleField("", None, "internal pump installed"),
        "temperature": ParticleField("degree_Celsius", None, "housing temperature"),
        "low_battery": ParticleField("", None, "low battery warning"),
    }


_COEFFICIENT: Final = rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"


def _coefficients(*pairs: tuple[bytes, bytes]) -> bytes:
    return b"".join(
        rb" +" + printed + rb" = (?P<" + group + rb">" + _COEFFICIENT + rb")\r\n"
        for printed, group in pairs
    )


#: The calibration dump (``DC``); it ends with the ``RTCA2`` line.  The
#: pressure coefficients printed ``PTCSB0..2`` are the instrument's
#: ``PTCB0..2`` (their setters' names).
CALIBRATION_PATTERN: Final = re.compile(
    rb"SBE37-SM V (?P<firmware_version>\S+) +(?P<serial_number>\d+) *\r\n"
    rb"temperature: +(?P<tcaldate>\S+)\r\n"
    + _coefficients(
        (b"TA0", b"ta0"), (b"TA1", b"ta1"), (b"TA2", b"ta2"), (b"TA3", b"ta3")
    )
    + rb"conductivity: +(?P<ccaldate>\S+)\r\n"
    + _coefficients(
        (b"G", b"cg"),
        (b"H", b"ch"),
        (b"I", b"ci"),
        (b"J", b"cj"),
        (b"CPCOR", b"cpcor"),
        (b"CTCOR", b"ctcor"),
        (b"WBOTC", b"wbotc"),
    )
    + rb"pressure S/N (?P<pressure_serial_number>\d+),"
    rb" range = (?P<pressure_range>"
    + _COEFFICIENT
    + rb") psia: +(?P<pcaldate>\S+)\r\n"
    + _coefficients(
        (b"PA0", b"pa0"),
        (b"PA1", b"pa1"),
        (b"PA2", b"pa2"),
        (b"PTCA0", b"ptca0"),
        (b"PTCA1", b"ptca1"),
        (b"PTCA2", b"ptca2"),
        (b"PTCSB0", b"ptcb0"),
        (b"PTCSB1", b"ptcb1"),
        (b"PTCSB2", b"ptcb2"),
        (b"POFFSET", b"poffset"),
    )
    + rb"rtc: +(?P<rcaldate>\S+)\r\n"
    + _coefficients((b"RTCA0", b"rtca0"), (b"RTCA1", b"rtca1"), (b"RTCA2", b"rtca2"))
)

#: What in the calibration dump is text: identifiers and dates.
_CALIBRATION_TEXT: Final = frozenset(
    {
        "firmware_version",
        "serial_number",
        "pressure_serial_number",
        "tcaldate",
        "ccaldate",
        "pcaldate",
        "rcaldate",
    }
)


class SBE37CalibrationParticle(RegexDataParticle):
    """
    The calibration dump (stream ``ctdpf_calibration``).

    Values, in order: ``firmware_version``, ``serial_number``, then the
    calibration in the dump's order, each named as its parameter in lower
    case: ``tcaldate``, ``ta0``..``ta3``, ``ccaldate``, ``cg``, ``ch``,
    ``ci``, ``cj``, ``cpcor``, ``ctcor``, ``wbotc``,
    ``pressure_serial_number``, ``pressure_range`` (psia), ``pcaldate``,
    ``pa0``..``pa2``, ``ptca0``..``ptca2``, ``ptcb0``..``ptcb2``,
    ``poffset``, ``rcaldate``, ``rtca0``..``rtca2``.  Calibration dates are
    text as printed (``08-nov-05``); coefficients are floats.
    """

    stream_name: ClassVar[str] = "ctdpf_calibration"
    pattern = CALIBRATION_PATTERN
    converters = {
        name: float
        for name in CALIBRATION_PATTERN.groupindex
        if name not in _CALIBRATION_TEXT
    }
    # Coefficients are in the units of Sea-Bird's calibration equations
    # (each term its own); dates and identifiers are text.
    fields = {
        name: ParticleField(
            "psi" if name == "pressure_range" else "",
            None,
            "calibration date"
            if name.endswith("caldate")
            else name.replace("_", " ")
            if name in _CALIBRATION_TEXT or name == "pressure_range"
            else f"calibration coefficient {name.upper()}",
        )
        for name in CALIBRATION_PATTERN.groupindex
    }


#: The chunker's sieves: what a record is.
SIEVES: Final[tuple[Sieve, ...]] = (SAMPLE_PATTERN, STATUS_SIEVE, CALIBRATION_PATTERN)
