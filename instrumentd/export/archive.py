# -*- test-case-name: tests.test_export -*-
"""
What an archive of sample records holds, and the series a user picks from
it.

Two layouts are read, told apart by their depth::

    DIR/INSTRUMENT/STREAM/YYYY-MM-DD.jsonl            a station's files
    DIR/STATION/INSTRUMENT/STREAM/YYYY-MM-DD.jsonl    a collector's archive

Next to the streams, ``INSTRUMENT/metadata.json`` (written by the station,
see :mod:`instrumentd.station.archive_metadata`, or in a collector's
archive by the collector from the station's retained meta, see
:mod:`instrumentd.collector.metadata`) says what the instrument is: its driver, parameter values (calibration dates among them), the units
and standard names of each stream's fields, and the station's name and
position.  An archive without it still exports, with less metadata.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

__all__ = [
    "METADATA_FILE",
    "Archive",
    "ExportError",
    "InstrumentInfo",
    "Series",
    "parse_time",
]

#: The name of an instrument's metadata file, next to its stream folders.
METADATA_FILE: Final = "metadata.json"

_DAY_FILE: Final = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")

#: Parameter and field names that say which unit of a model this is, or
#: when its sensors were calibrated (the SBE 37's ``TCALDATE``, its
#: calibration record's ``tcaldate``).
_SERIAL: Final = re.compile(r"^serial_?(number|no)$", re.IGNORECASE)
_CALDATE: Final = re.compile(r"^(\w*?)_?cal(ibration)?_?date$", re.IGNORECASE)
_FIRMWARE: Final = re.compile(r"^firmware_?version$", re.IGNORECASE)


class ExportError(Exception):
    """
    A request the archive cannot satisfy, or a file it cannot read; the
    message names the value and, where there are some, the valid choices.
    """


def _choices(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "(none)"


def parse_time(text: str, what: str) -> datetime:
    """
    Read a time given on the command line: an ISO 8601 date
    (``2026-12-01``, midnight UTC) or date and time (``2026-12-01T06:00``,
    ``2026-12-01T06:00:00Z``, ``2026-12-01 06:00+01:00``); a time with no
    offset is UTC.

    :param text: the text.
    :param what: the option, for the error (``--start``).
    :returns: an aware UTC datetime.
    :raises ExportError: naming the option and the text.
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ExportError(
            f"{what} {text!r} is not a time; give an ISO 8601 date or time, "
            "e.g. 2026-12-01 or 2026-12-01T06:00:00Z (UTC unless an offset is given)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


@dataclass(frozen=True)
class Position:
    """
    Where an instrument is, when configured.

    :ivar latitude: degrees north.
    :ivar longitude: degrees east.
    :ivar depth: metres below the sea surface, or ``None``.
    """

    latitude: float
    longitude: float
    depth: float | None = None


@dataclass
class InstrumentInfo:
    """
    What is known about an instrument, from its ``metadata.json`` and its
    records: the file's facts first, then those read from records.

    :ivar station: the station's name, or ``None``.
    :ivar position: where it is, or ``None``.
    :ivar driver: the driver's name (``seabird_sbe37smp``), or ``None``.
    :ivar driver_version: the driver's version, or ``None``.
    :ivar model: the instrument model, or ``None``.
    :ivar serial_number: or ``None``.
    :ivar firmware_version: or ``None``.
    :ivar calibration_dates: sensor (``temperature``, or the parameter's
        name) to the date as the instrument gives it.
    :ivar beams_facing: an ADCP's beams, ``"up"`` or ``"down"``, or ``None``.
    :ivar parameters: the driver's parameter values.
    :ivar streams: stream to field to ``units``/``standard_name``/
        ``long_name``.
    """

    station: str | None = None
    position: Position | None = None
    driver: str | None = None
    driver_version: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    calibration_dates: dict[str, str] = field(default_factory=dict)
    beams_facing: str | None = None
    parameters: dict[str, object] = field(default_factory=dict)
    streams: dict[str, dict[str, dict[str, object]]] = field(default_factory=dict)

    def learn(self, values: Mapping[str, object]) -> None:
        """
        Take the identity an instrument gives in its parameters or records:
        serial number, firmware version, calibration dates.  What is known
        already is kept, so call it with the most trusted source first.

        :param values: parameter values, or a record's values.
        """
        for name, value in values.items():
            if value is None or value == "" or isinstance(value, list | dict):
                continue
            if name == "system_configuration" and isinstance(value, int):
                # A Workhorse's PD0 fixed leader: bit 7 set for beams
                # facing up.
                if self.beams_facing is None:
                    self.beams_facing = "up" if value & 0x80 else "down"
            elif _SERIAL.match(name):
                if self.serial_number is None:
                    self.serial_number = str(value)
            elif _FIRMWARE.match(name):
                if self.firmware_version is None:
                    self.firmware_version = str(value)
            else:
                match = _CALDATE.match(name)
                if match:
                    sensor = (match.group(1) or name).lower()
                    sensor = _SENSOR_LETTERS.get(sensor, sensor)
                    self.calibration_dates.setdefault(sensor, str(value))


#: The SBE 37 names its calibration dates by the sensor's initial.
_SENSOR_LETTERS: Final = {
    "t": "temperature",
    "c": "conductivity",
    "p": "pressure",
    "r": "rtc",
}


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def read_metadata(path: str) -> InstrumentInfo:
    """
    Read an instrument's ``metadata.json``.

    :param path: the file.
    :returns: what it says; an empty :class:`InstrumentInfo` if there is no
        such file.
    :raises ExportError: if the file is there but is not such a document.
    """
    info = InstrumentInfo()
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except FileNotFoundError:
        return info
    except (OSError, ValueError) as error:
        raise ExportError(f"{path}: cannot read it: {error}") from None
    if not isinstance(document, dict):
        raise ExportError(f"{path}: not a metadata document (a JSON object)")
    station = document.get("station")
    if isinstance(station, dict):
        name = station.get("name")
        info.station = name if isinstance(name, str) and name else None
        info.position = _position(station.get("position"))
    instrument = document.get("instrument")
    if isinstance(instrument, dict):
        model = instrument.get("model")
        info.model = model if isinstance(model, str) and model else None
        position = _position(instrument.get("position"))
        if position is not None:
            info.position = position
        depth = _number(instrument.get("depth"))
        if depth is not None and info.position is not None:
            info.position = Position(
                info.position.latitude, info.position.longitude, depth
            )
    driver = document.get("driver")
    if isinstance(driver, dict):
        name = driver.get("name")
        version = driver.get("version")
        info.driver = str(name) if name else None
        info.driver_version = str(version) if version else None
    parameters = document.get("parameters")
    if isinstance(parameters, dict):
        info.parameters = dict(parameters)
        info.learn(parameters)
    streams = document.get("streams")
    if isinstance(streams, dict):
        info.streams = {
            str(stream): {
                str(name): dict(described)
                for name, described in fields.items()
                if isinstance(described, dict)
            }
            for stream, fields in streams.items()
            if isinstance(fields, dict)
        }
    if info.model is None and info.driver:
        info.model = info.driver
    return info


def _position(given: object) -> Position | None:
    if not isinstance(given, dict):
        return None
    latitude = _number(given.get("latitude"))
    longitude = _number(given.get("longitude"))
    if latitude is None or longitude is None:
        return None
    return Position(latitude, longitude, _number(given.get("depth")))


@dataclass(frozen=True)
class DayFile:
    """
    One day's file of a stream.

    :ivar day: its UTC date.
    :ivar path: where it is.
    """

    day: date
    path: str


@dataclass
class Series:
    """
    One stream of one instrument (of one station, in a collector's
    archive): what one export file holds.

    :ivar station: the station's folder in a collector's archive, else
        ``None``.
    :ivar instrument: the instrument's folder name.
    :ivar stream: the stream's folder name.
    :ivar folder: the stream's folder.
    :ivar days: its day files, oldest first.
    """

    station: str | None
    instrument: str
    stream: str
    folder: str
    days: list[DayFile]

    @property
    def instrument_folder(self) -> str:
        """
        :returns: the folder holding the instrument's streams and metadata.
        """
        return os.path.dirname(self.folder)

    @property
    def label(self) -> str:
        """
        :returns: ``[STATION/]INSTRUMENT/STREAM``, for messages.
        """
        parts = [self.station] if self.station else []
        return "/".join([*parts, self.instrument, self.stream])

    def files_between(self, start: datetime | None, end: datetime | None) -> list[str]:
        """
        The files that may hold records in ``[start, end)``: each file holds
        the samples of one UTC day.

        :param start: the first time wanted, or ``None``.
        :param end: the first time not wanted, or ``None``.
        :returns: their paths, oldest first.
        """
        first = start.date() if start is not None else date.min
        last = (end - timedelta(microseconds=1)).date() if end is not None else date.max
        return [day.path for day in self.days if first <= day.day <= last]

    def info(self) -> InstrumentInfo:
        """
        What the instrument's ``metadata.json`` says; see
        :func:`read_metadata`.  In a collector's archive the station's
        folder names the station when the file does not.
        """
        info = read_metadata(os.path.join(self.instrument_folder, METADATA_FILE))
        if info.station is None:
            info.station = self.station
        return info

    def sibling_folders(self) -> list[str]:
        """
        :returns: the instrument's other streams' folders.
        """
        parent = self.instrument_folder
        return [
            os.path.join(parent, name)
            for name in sorted(os.listdir(parent))
            if name != self.stream and os.path.isdir(os.path.join(parent, name))
        ]


def _day_files(folder: str) -> list[DayFile]:
    days = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        match = _DAY_FILE.match(name)
        if match is None:
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        days.append(DayFile(day, os.path.join(folder, name)))
    days.sort(key=lambda each: each.day)
    return days


def _subfolders(folder: str) -> list[str]:
    try:
        return sorted(
            name
            for name in os.listdir(folder)
            if not name.startswith(".") and os.path.isdir(os.path.join(folder, name))
        )
    except OSError:
        return []


def _streams_of(folder: str) -> dict[str, list[DayFile]]:
    """
    An instrument folder's streams: subfolders holding day files, but for
    those whose name starts with ``_`` (a collector's ``_events``: events,
    not sample records).
    """
    streams = {}
    for name in _subfolders(folder):
        if name.startswith("_"):
            continue
        days = _day_files(os.path.join(folder, name))
        if days:
            streams[name] = days
    return streams


class Archive:
    """
    An archive's series, found by walking its folders once.

    :param directory: the station's JSON-lines directory (its
        ``<data_dir>/samples``) or a collector's data directory.
    :raises ExportError: if it is not a directory, or holds no day files
        in either layout.
    :ivar layout: ``"station"`` or ``"collector"``.
    :ivar series: every series, by ``(station, instrument, stream)``.
    """

    def __init__(self, directory: str) -> None:
        if not os.path.isdir(directory):
            raise ExportError(f"archive {directory!r} is not a directory")
        self.directory = directory
        self.series: dict[tuple[str | None, str, str], Series] = {}
        for instrument in _subfolders(directory):
            folder = os.path.join(directory, instrument)
            for stream, days in _streams_of(folder).items():
                self.series[None, instrument, stream] = Series(
                    None, instrument, stream, os.path.join(folder, stream), days
                )
        self.layout = "station"
        if self.series:
            return
        self.layout = "collector"
        for station in _subfolders(directory):
            for instrument in _subfolders(os.path.join(directory, station)):
                folder = os.path.join(directory, station, instrument)
                for stream, days in _streams_of(folder).items():
                    self.series[station, instrument, stream] = Series(
                        station, instrument, stream, os.path.join(folder, stream), days
                    )
        if not self.series:
            raise ExportError(
                f"archive {directory!r} holds no sample files: expected "
                "INSTRUMENT/STREAM/YYYY-MM-DD.jsonl (a station's) or "
                "STATION/INSTRUMENT/STREAM/YYYY-MM-DD.jsonl (a collector's)"
            )

    def select(
        self,
        *,
        stations: Sequence[str] = (),
        instruments: Sequence[str] = (),
        streams: Sequence[str] = (),
    ) -> list[Series]:
        """
        The series a user asked for; an empty list of names means all.

        :param stations: station names (a collector's archive only).
        :param instruments: instrument names.
        :param streams: stream names.
        :returns: the matching series, in order.
        :raises ExportError: for a name the archive does not hold, naming
            it and the names it does hold; or for a combination that
            matches nothing.
        """
        chosen = list(self.series.values())
        if stations:
            if self.layout == "station":
                raise ExportError(
                    f"--station {stations[0]!r}: {self.directory!r} is a station's "
                    "archive (INSTRUMENT/STREAM/...), with no station folders; "
                    "leave --station out"
                )
            chosen = self._narrow(chosen, "station", "--station", stations)
        if instruments:
            chosen = self._narrow(chosen, "instrument", "--instrument", instruments)
        if streams:
            chosen = self._narrow(chosen, "stream", "--stream", streams)
        if not chosen:
            raise ExportError(
                "no series matches: "
                + "; ".join(
                    f"{option} {', '.join(names)}"
                    for option, names in (
                        ("--station", stations),
                        ("--instrument", instruments),
                        ("--stream", streams),
                    )
                    if names
                )
                + "; the archive holds: "
                + ", ".join(series.label for series in self.series.values())
            )
        return chosen

    @staticmethod
    def _narrow(
        chosen: list[Series], attribute: str, option: str, names: Sequence[str]
    ) -> list[Series]:
        available = {getattr(series, attribute) for series in chosen}
        for name in names:
            if name not in available:
                raise ExportError(
                    f"{option} {name!r}: no such {attribute} in the archive"
                    f"{'' if attribute == 'station' else ' (of the series chosen so far)'}; "
                    f"valid choices: {_choices(available)}"
                )
        return [series for series in chosen if getattr(series, attribute) in names]
