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
declaration.  Every pattern ends at a line end, and a dump at what follows
its last line (the blank line and prompt that end every reply), so a record
cut short in transit is never taken for a whole one: the chunker waits for
the rest.

Firmware generations and optional sensors print different dumps
(``doc/instruments/sbe37smp.md`` lists the layouts and their sources), so a
dump is read line by line against a table of every line kind known
(:data:`STATUS_LINES`, :data:`CALIBRATION_LINES`): a value whose line is
absent is ``None``, a line of no known kind is skipped.  A sample may lack
its pressure column (no pressure sensor): :class:`SBE37DrySampleParticle`
reads those, and the driver picks it once the calibration dump has shown no
pressure section, since ``T, C, x.xxx`` cannot say by itself whether its
third value is pressure or sound velocity.

A sample's columns are a table (:mod:`instrumentd.driver.columns`), its
times and conductivities read by the framework's readers
(:mod:`instrumentd.driver.readers`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

from instrumentd.driver.chunker import Sieve
from instrumentd.driver.columns import Column, ColumnParticle
from instrumentd.driver.dumps import DumpParticle, DumpReader, Keyed, Line
from instrumentd.driver.particles import ParticleField
from instrumentd.driver.readers import scaled_by_decimals, time_reader, yes_unless

__all__ = [
    "CALIBRATION_IDS",
    "CALIBRATION_LINES",
    "CALIBRATION_PATTERN",
    "CALIBRATION_SIEVE",
    "CALIBRATION_TEXT",
    "SIEVES",
    "STATUS_LINES",
    "STATUS_PATTERN",
    "STATUS_SIEVE",
    "SBE37CalibrationParticle",
    "SBE37DrySampleParticle",
    "SBE37SampleParticle",
    "SBE37StatusParticle",
    "read_conductivity",
    "read_instrument_time",
    "said_yes",
]

#: The instrument's clock as it prints it (see read_instrument_time).
_read_time: Final = time_reader(
    r"\s*(?P<day>\d{1,2}) (?P<month>[A-Za-z]{3}) (?P<year>\d{4}),?\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2}):(?P<second>\d{2})\s*",
    example="05 Feb 2013, 19:16:59",
)
#: What comes before ``HH:MM:SS`` in times read before (``05 Feb 2013, ``)
#: to their date: a sample a second prints the same all day.  Bounded,
#: whatever text arrives: emptied when full.
_DATES: Final[dict[str, tuple[int, int, int]]] = {}
_DATES_KEPT: Final = 64
#: The last time read that ended in ``HH:MM:SS``: its text without the
#: seconds and the start of its minute (59 samples a minute in 60 share it).
_MINUTE: Final[list[Any]] = [None, None]
_SECONDS: Final = tuple(timedelta(seconds=second) for second in range(60))


def read_instrument_time(text: str) -> datetime:
    """
    The instrument's clock as it prints it: ``05 Feb 2013, 19:16:59`` in a
    sample, ``05 Feb 2013  19:11:43`` in the status dump, in English
    whatever the host's locale.  The instrument keeps UTC (the driver's
    clock sync sets it so).

    :param text: the time as printed.
    :returns: an aware UTC :class:`~datetime.datetime`.
    :raises ValueError: for text that is not such a time.
    """
    # The same minute as the time read last needs only its seconds read;
    # a time ending in a two-digit hour whose date part was read before
    # (every sample but the first of a day) needs only its clock read.
    # Each shortcut applies only where the general reader would read the
    # text the same way (the part remembered was read by it, the rest is
    # decimal digits of the same width); anything else goes through the
    # general reader.
    seconds = text[-2:]
    if text[:-2] == _MINUTE[0] and seconds.isdecimal():
        second = int(seconds)
        if second < 60:
            return _MINUTE[1] + _SECONDS[second]  # type: ignore[no-any-return]
    clock = text[-8:]
    if clock[2:3] != ":" or clock[5:6] != ":":
        return _read_time(text)
    hour, minute = clock[:2], clock[3:5]
    digits = hour.isdecimal() and minute.isdecimal() and seconds.isdecimal()
    date = _DATES.get(text[:-8]) if digits else None
    when: datetime | None = None
    if date is not None:
        try:
            when = datetime(*date, int(hour), int(minute), int(seconds), 0, UTC)
        except ValueError:
            when = None
    if when is None:
        when = _read_time(text)
        if digits:
            if len(_DATES) >= _DATES_KEPT:
                _DATES.clear()
            _DATES[text[:-8]] = (when.year, when.month, when.day)
    if digits:
        _MINUTE[:] = (text[:-2], when - _SECONDS[when.second])
    return when


#: A conductivity in S/m, whichever unit the instrument printed it in
#: (firmware 5's ``SetCondUnits=``): its decimals say which, S/m
#: ``c.ccccc``, mS/cm ``cc.cccc``, µS/cm ``ccccc.c`` (every earlier firmware
#: prints S/m).
read_conductivity: Final = scaled_by_decimals({5: 0, 4: -1, 1: -4})

_CONDUCTIVITY: Final = r"-?\d+\.(?:\d{5}|\d{4}|\d)"
_TIME: Final = r"\d{1,2} [A-Za-z]{3} \d{4}, *\d{1,2}:\d\d:\d\d"
_F = ParticleField


class SBE37SampleParticle(ColumnParticle):
    """
    One FORMAT=1 sample line (stream ``ctdpf_sample``).

    Values, in order: ``temperature`` (ITS-90 deg C), ``conductivity``
    (S/m; from firmware 5 also printed in mS/cm or µS/cm, told by its
    decimals), ``pressure`` (dbar; ``None`` without a pressure sensor),
    ``salinity`` (psu, ``None`` unless OUTPUTSAL), ``sound_velocity`` (m/s,
    ``None`` unless OUTPUTSV), ``specific_conductivity`` (S/m, ``None``
    unless the firmware prints it, firmware 5's OutputSC=Y), ``instrument_time``
    (the instrument's clock, ``None`` unless STORETIME), ``sample_number``
    (``None`` unless the instrument prints it, firmware 5's TxSampleNum=Y).

    Specific conductivity is read in S/m or µS/cm; in mS/cm it has
    salinity's four decimals, so a line without salinity could not tell
    them apart, and it is not read.  The instrument prints salinity with
    four decimals and sound velocity with three, so a line with only one
    of them says which it is.  Column widths differ by firmware (2.6 prints
    conductivity 9 wide, 3.0h 8, firmware 5 temperature 7), so any spacing
    is read.  A line starts with ``#`` (while logging, firmware 2.x; it may
    follow a prompt or a character of echo on the same line) or at a line
    start (``TS``, and while logging from firmware 3): a number run in from
    the middle of some other text is not a sample.

    The instrument time, when present, is the internal timestamp; the port
    timestamp is when the port agent read the line's first byte.  The
    preferred timestamp stays the port timestamp: the agent's clock is
    disciplined, the instrument's real-time clock drifts between clock
    syncs.
    """

    stream_name: ClassVar[str] = "ctdpf_sample"
    start = r"(?:#|(?<![^\n>])) *"
    separator = r", *"
    columns = (
        Column("temperature", r"-?\d+\.\d+", float,
               _F("degree_Celsius", "sea_water_temperature", "temperature (ITS-90)")),
        Column("conductivity", _CONDUCTIVITY, read_conductivity,
               _F("S m-1", "sea_water_electrical_conductivity", "conductivity")),
        Column("pressure", r"-?\d+\.\d{3}", float,
               _F("dbar", "sea_water_pressure", "pressure")),
        Column("salinity", r"-?\d+\.\d{4}", float,
               _F("1", "sea_water_practical_salinity", "practical salinity (PSS-78)"),
               optional=True),
        Column("sound_velocity", r"-?\d+\.\d{3}", float,
               _F("m s-1", "speed_of_sound_in_sea_water", "sound velocity (Chen-Millero)"),
               optional=True),
        Column("specific_conductivity", r"-?\d+\.(?:\d{5}|\d)", read_conductivity,
               _F("S m-1", None, "specific conductivity (at 25 deg C)"), optional=True),
        Column("instrument_time", _TIME, read_instrument_time,
               _F("", None, "the instrument's clock, UTC"), optional=True),
        Column("sample_number", r"\d+", int,
               _F("1", None, "sample number in memory"), optional=True),
    )  # fmt: skip
    internal_time_value: ClassVar[str | None] = "instrument_time"


class SBE37DrySampleParticle(SBE37SampleParticle):
    """
    A sample from an instrument without a pressure sensor: no pressure
    column, so its ``pressure`` is always ``None``.
    """

    absent = frozenset({"pressure"})


#: Whether a status line says yes: both generations' words, "do not
#: transmit real-time data" (2.x) and "transmit real-time = no" (3.0h);
#: "serial sync mode disabled"; "internal pump not installed".
said_yes: Final = yes_unless(("do not ",), ("= no", "disabled", "not installed"))


def _dump(header: bytes) -> bytes:
    # A header, then lines up to the blank line and prompt that end the
    # reply (or 3.0h's "<Executed/>"); a '#' sample printed meanwhile is not
    # part of it.
    return header + rb"(?:(?![#<]|S>)[^\r\n]+\r\n)*"


_DUMP_END: Final = rb"(?=\r\n|S>|<)"

_Read = Callable[[str], object] | None
#: The status values: units, description, how to read the text.
_STATUS: Final[dict[str, tuple[str, str, _Read]]] = {
    "firmware_version": ("", "firmware version", None),
    "serial_number": ("", "serial number", None),
    "date_time": ("", "the instrument's clock, UTC", read_instrument_time),
    "main_battery_voltage": ("V", "main battery voltage", float),
    "lithium_battery_voltage": ("V", "back-up lithium cell voltage", float),
    "logging_status": ("", "logging line as printed", None),
    "logging": ("", "logging", lambda text: text == "logging"),
    "sample_interval": ("s", "sample interval", int),
    "sample_number": ("1", "samples in memory", int),
    "memory_free": ("1", "samples of memory free", int),
    "data_format": ("", "sample format", None),
    "tx_realtime": ("", "transmit real-time data", said_yes),
    "output_salinity": ("", "output salinity", said_yes),
    "output_sound_velocity": ("", "output sound velocity", said_yes),
    "store_time": ("", "store time with each sample", said_yes),
    "number_of_samples_to_average": ("1", "samples averaged", int),
    "ad_cycles_to_average": ("1", "A/D cycles averaged", int),
    "reference_pressure": ("dbar", "reference pressure", float),
    "serial_sync_mode": ("", "serial sync mode", said_yes),
    "serial_sync_wait": ("s", "wait after serial sync", int),
    "pump_installed": ("", "internal pump installed", said_yes),
    "temperature": ("degree_Celsius", "housing temperature", float),
    "low_battery": ("", "low battery warning", bool),
}

_DO_NOT = r"(?:do not )?"
#: Every kind of status line known: 2.6 (the spec's), 2.6b and 2.3 (real
#: SMs' upload headers), 3.0h (a real session) and firmware 5 (the
#: manual's first lines).  Where firmware words a setting differently
#: ("do not transmit real-time data", 2.x; "transmit real-time = no",
#: 3.0h), one line kind takes both.
STATUS_LINES: Final = DumpReader(
    Line(
        r"SBE ?37\S*(?: V)? +v?(?P<firmware_version>\d\S*) +SERIAL NO\. *"
        r"(?P<serial_number>\d+) +(?P<date_time>\d{1,2} [A-Za-z]{3} \d{4} "
        r"+\d{1,2}:\d\d:\d\d)"
    ),
    Line(
        r"vMain = *(?P<main_battery_voltage>[\d.]+), "
        r"vLith = *(?P<lithium_battery_voltage>[\d.]+)"
    ),
    Line(
        r"(?P<logging_status>(?P<logging>not logging|logging not started|"
        r"logging)\b.*)"
    ),
    Line(r"sample interval = (?P<sample_interval>\d+) seconds"),
    Line(r"samplenumber = (?P<sample_number>\d+), free = (?P<memory_free>\d+)"),
    Line(r"data format = (?P<data_format>.+)"),
    Line(rf"(?P<tx_realtime>{_DO_NOT}transmit real-time(?: data| = \w+))"),
    Line(rf"(?P<output_salinity>{_DO_NOT}output salinity with each sample)"),
    Line(
        rf"(?P<output_sound_velocity>{_DO_NOT}output sound velocity with each sample)"
    ),
    Line(rf"(?P<store_time>{_DO_NOT}store time with each sample)"),
    Line(r"number of samples to average = (?P<number_of_samples_to_average>\d+)"),
    Line(r"A/D cycles to average = (?P<ad_cycles_to_average>\d+)"),
    Line(r"reference pressure = (?P<reference_pressure>-?\d+(?:\.\d+)?) db"),
    Line(r"(?P<serial_sync_mode>(?:serial )?sync mode(?: enabled| disabled| = \w+))"),
    Line(r"wait time after serial sync sampling = (?P<serial_sync_wait>\d+) seconds"),
    Line(
        r"(?P<pump_installed>internal pump (?:is )?(?:not )?installed|"
        r"pump installed = \w+)"
    ),
    Line(r"temperature = (?P<temperature>-?\d+(?:\.\d+)?) deg C"),
    Line(r"(?P<low_battery>WARNING: LOW BATTERY VOLTAGE!!)"),
    read={name: read for name, (_, _, read) in _STATUS.items() if read},
)

#: The status dump (``DS``): its header line (firmware, serial number,
#: clock) and every line after it.
STATUS_PATTERN: Final = re.compile(_dump(rb"SBE ?37[^\r\n]*SERIAL NO\.[^\r\n]*\r\n"))

#: The status dump as a record: complete only once what follows its last
#: line has begun.
STATUS_SIEVE: Final = re.compile(STATUS_PATTERN.pattern + _DUMP_END)


class SBE37StatusParticle(DumpParticle):
    """
    The status dump (stream ``ctdpf_status``), whatever the firmware.

    Values, in order (``None`` when the firmware does not print it):
    ``firmware_version``, ``serial_number``, ``date_time`` (the
    instrument's clock; also the internal timestamp),
    ``main_battery_voltage``, ``lithium_battery_voltage`` (V),
    ``logging_status`` (the logging line as printed), ``logging`` (bool),
    ``sample_interval`` (s), ``sample_number``, ``memory_free`` (samples),
    ``data_format``, ``tx_realtime``, ``output_salinity``,
    ``output_sound_velocity``, ``store_time`` (bools),
    ``number_of_samples_to_average``, ``ad_cycles_to_average``,
    ``reference_pressure`` (dbar), ``serial_sync_mode`` (bool),
    ``serial_sync_wait`` (s), ``pump_installed`` (bool), ``temperature``
    (deg C, the housing's), ``low_battery`` (bool; false unless the warning
    line is there).
    """

    stream_name: ClassVar[str] = "ctdpf_status"
    pattern = STATUS_PATTERN
    reader = STATUS_LINES
    defaults: ClassVar[Mapping[str, object]] = {"low_battery": False}
    internal_time_value: ClassVar[str | None] = "date_time"
    fields = {
        name: ParticleField(u, None, what) for name, (u, what, _) in _STATUS.items()
    }


#: The calibration's values, in the order dumps print them.
CALIBRATION_IDS: Final = (
    "firmware_version", "serial_number", "tcaldate", "ta0", "ta1", "ta2", "ta3",
    "ccaldate", "cg", "ch", "ci", "cj", "cpcor", "ctcor", "wbotc",
    "pressure_serial_number", "pressure_range", "pcaldate", "pa0", "pa1", "pa2",
    "ptca0", "ptca1", "ptca2", "ptcb0", "ptcb1", "ptcb2", "ptempa0", "ptempa1",
    "ptempa2", "poffset", "rcaldate", "rtca0", "rtca1", "rtca2",
)  # fmt: skip
#: Those of them that are text: identifiers and dates.
CALIBRATION_TEXT: Final = frozenset((
    "firmware_version", "serial_number", "pressure_serial_number",
    "tcaldate", "ccaldate", "pcaldate", "rcaldate",
))  # fmt: skip

#: Every kind of calibration line known: the header (2.x ``SBE37-SM V
#: 2.6b  2165``, 3.0h ``SBE37SM-RS232 V 3.0h  6962``), a section with its
#: date (3.0h's pressure line has no colon), a coefficient.  Coefficients
#: are named as their setters, in lower case: the conductivity letters
#: ``G``..``J`` are ``cg``..``cj``, and 2.x prints PTCB0..2 as PTCSB0..2.
CALIBRATION_LINES: Final = DumpReader(
    Line(r"SBE ?37\S* V +(?P<firmware_version>\S+) +(?P<serial_number>\d+)"),
    Keyed(
        r"(?P<key>temperature|conductivity|rtc): +(?P<value>\S+)",
        names={
            "temperature": "tcaldate",
            "conductivity": "ccaldate",
            "rtc": "rcaldate",
        },
    ),
    Line(
        r"pressure S/N (?P<pressure_serial_number>\d+), range = "
        r"(?P<pressure_range>[\d.]+) psia:? +(?P<pcaldate>\S+)"
    ),
    Keyed(
        r" +(?P<key>\w+) = (?P<value>\S+)",
        names={
            **{letter: f"c{letter.lower()}" for letter in "GHIJ"},
            **{f"PTCSB{k}": f"ptcb{k}" for k in range(3)},
        },
    ),
    read={name: float for name in CALIBRATION_IDS if name not in CALIBRATION_TEXT},
    ids=CALIBRATION_IDS,
)

#: The calibration dump (``DC``): its header, a temperature section, and
#: every line after them.
CALIBRATION_PATTERN: Final = re.compile(
    _dump(rb"SBE ?37\S* V +\S+ +\d+ *\r\ntemperature: [^\r\n]*\r\n")
)
CALIBRATION_SIEVE: Final = re.compile(CALIBRATION_PATTERN.pattern + _DUMP_END)


class SBE37CalibrationParticle(DumpParticle):
    """
    The calibration dump (stream ``ctdpf_calibration``), whatever the
    firmware and sensors.

    Values, in order, each named as its parameter in lower case (``None``
    when the dump has no such line: no pressure section without a pressure
    sensor, no ``rtc`` section and ``ptempa0..2`` only from 3.0h):
    ``firmware_version``, ``serial_number``, ``tcaldate``,
    ``ta0``..``ta3``, ``ccaldate``, ``cg``, ``ch``, ``ci``, ``cj``,
    ``cpcor``, ``ctcor``, ``wbotc``, ``pressure_serial_number``,
    ``pressure_range`` (psia), ``pcaldate``, ``pa0``..``pa2``,
    ``ptca0``..``ptca2``, ``ptcb0``..``ptcb2``, ``ptempa0``..``ptempa2``,
    ``poffset``, ``rcaldate``, ``rtca0``..``rtca2``.  Calibration dates
    are text as printed (``08-nov-05``, ``15-May-09``); coefficients are
    floats.
    """

    stream_name: ClassVar[str] = "ctdpf_calibration"
    pattern = CALIBRATION_PATTERN
    reader = CALIBRATION_LINES
    # Coefficients are in the units of Sea-Bird's calibration equations
    # (each term its own); dates and identifiers are text.
    fields = {
        name: ParticleField(
            "psi" if name == "pressure_range" else "",
            None,
            "calibration date"
            if name.endswith("caldate")
            else name.replace("_", " ")
            if name in CALIBRATION_TEXT or name == "pressure_range"
            else f"calibration coefficient {name.upper()}",
        )
        for name in CALIBRATION_IDS
    }


#: What a sample record is, with or without pressure: which values its
#: columns are is the particles' business.  Each part that repeats or may
#: be missing is possessive (``*+``, ``++``, ``?+``): none of them can
#: take what a later part needs (a number's digits stop at its point, a
#: column at its comma, a time has a space where a number has a point), so
#: the pattern matches exactly what its backtracking form does, without
#: the backtracking (a sample line is scanned on every read).
SAMPLE_SIEVE: Final = re.compile(
    rb"(?:#|(?<![^\n>])) *+-?\d++\.\d++(?:, *+-?\d++\.\d++)++"
    rb"(?:, *+\d{1,2} [A-Za-z]{3} \d{4}, *+\d{1,2}:\d\d:\d\d)?+(?:, *+\d++)?+\r\n"
)

#: The chunker's sieves: what a record is.
SIEVES: Final[tuple[Sieve, ...]] = (SAMPLE_SIEVE, STATUS_SIEVE, CALIBRATION_SIEVE)
