# -*- test-case-name: tests.test_station_record -*-
"""
The sample record, version 2: what the station's files, API, event streams
and sinks carry for every sample (``doc/data.md``, "The record").

A driver publishes a :class:`~instrumentd.driver.particles.DataParticle`;
the station turns it into a :class:`SampleRecord` **once**, in
:meth:`SampleRecorder.record`, and every consumer reuses that record and its
compact JSON bytes (:attr:`SampleRecord.json`), encoded once however many
files, sinks and event streams take it::

    {"record": "instrumentd.sample", "version": 2, "instrument": "CTD01",
     "stream": "ctdpf_sbe37_sample",
     "time": "2026-12-07T08:00:00.123456Z", "ntp_time": 3974284800.123456,
     "time_source": "internal_timestamp",
     "port_timestamp": 3974284800.2, "internal_timestamp": 3974284800.123456,
     "driver_timestamp": 3974284800.25, "quality_flag": "ok",
     "values": {"temperature": 10.1234, "pressure": 10.1},
     "units": {"temperature": "degree_Celsius", "pressure": "dbar"},
     "standard_names": {"temperature": "sea_water_temperature"},
     "qc": {"temperature": {"gross_range": 1, "aggregate": 1}}}

:func:`read_record` reads a record back from its JSON form: version 2 as it
is, and the particle layout stations wrote before (``to_dict()``: NTP
timestamps, ``values`` as a list of ``{value_id, value, units}``) converted
to version 2.  Anything else is a :class:`RecordError` that says what it
found.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import orjson

from instrumentd.driver._json import to_jsonable
from instrumentd.driver.events import EventType, SampleEvent
from instrumentd.driver.particles import DataParticle, ParticleField, TimestampName
from instrumentd.packet import NTP_UNIX_OFFSET

__all__ = [
    "RECORD_KIND",
    "RECORD_VERSION",
    "EncodedQC",
    "QCHook",
    "RecordError",
    "RecordEvent",
    "SampleRecord",
    "SampleRecorder",
    "as_record",
    "build_record",
    "iso_from_ntp",
    "read_record",
]

#: The ``"record"`` of every sample record.
RECORD_KIND: Final = "instrumentd.sample"

#: The ``"version"`` this module writes and reads.  It changes when a key
#: is removed or changes meaning; keys added later do not change it
#: (readers ignore keys they do not know).
RECORD_VERSION: Final = 2

#: The timestamps a record may carry, in the order of the fallback rule
#: after the preferred one (as :class:`~instrumentd.driver.particles.DataParticle`
#: applies it).
_FALLBACK: Final = ("internal_timestamp", "port_timestamp", "driver_timestamp")

_NTP_EPOCH: Final = datetime(1900, 1, 1, tzinfo=UTC)

#: DataParticle's ``preferred_timestamp``, the fallback rule that
#: build_record reads the short way (a class that redefines it is asked).
_PREFERRED: Final = DataParticle.__dict__["preferred_timestamp"]

#: Enum members read once: read from their class, each costs a call of
#: EnumType.__getattr__ (Python 3.11), and these are read for every sample.
_PORT: Final = TimestampName.PORT
_INTERNAL: Final = TimestampName.INTERNAL
_DRIVER: Final = TimestampName.DRIVER
_SAMPLE: Final = EventType.SAMPLE

#: Value types that are JSON-ready as they are (not their subclasses: an
#: IntEnum is written as its value by ``to_jsonable``).
_PLAIN: Final = frozenset({float, int, str, bool, type(None)})


class RecordError(ValueError):
    """
    A mapping is not a sample record this version of instrumentd can read;
    the message says what was found.
    """


def iso_from_ntp(ntp: float) -> str | None:
    """
    NTP seconds as ISO 8601 UTC text with microseconds and a ``Z``.

    The whole seconds and the fraction are converted apart, so the
    microseconds are those of the NTP number (a Unix float of today's
    magnitude would lose some on the way).  The text of recent whole
    seconds is kept: a station of thousands of instruments dates thousands
    of samples within each second.

    :param ntp: seconds since 1900-01-01T00:00:00Z.
    :returns: e.g. ``2026-12-07T08:00:00.123456Z``; ``None`` for a time no
        date can hold (infinite, not a number, beyond year 9999).
    """
    if not math.isfinite(ntp):
        return None
    whole = math.floor(ntp)
    micros = round((ntp - whole) * 1_000_000)
    if micros == 1_000_000:
        # A fraction within half a microsecond of the next second.
        whole += 1
        micros = 0
    seconds = _SECONDS_TEXT.get(whole)
    if seconds is None:
        seconds = _seconds_text(whole)
        if seconds is None:
            return None
    return f"{seconds}.{micros:06d}Z"


#: Whole NTP second → its ISO text to the second, for recent seconds.
_SECONDS_TEXT: dict[int, str] = {}

#: How many seconds' texts are kept (samples of many instruments' own
#: clocks, or played back, spread over a few seconds; a datalog's over
#: many, which then miss at no more cost than without the cache).
_SECONDS_KEPT: Final = 64


def _seconds_text(whole: int) -> str | None:
    try:
        when = _NTP_EPOCH + timedelta(seconds=whole)
    except OverflowError:
        return None
    if not 1 <= when.year <= 9999:
        return None
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if len(_SECONDS_TEXT) >= _SECONDS_KEPT:
        _SECONDS_TEXT.clear()
    _SECONDS_TEXT[whole] = text
    return text


def _present(value: object) -> bool:
    # None and 0 are "no time" (0 is how OOI port agents and datalog
    # playback say it); a bool or text is not a time either.
    kind = type(value)
    if kind is float:
        # What drivers make: checked first, without building a union type.
        return value != 0
    if value is None:
        return False
    return isinstance(value, int | float) and not isinstance(value, bool) and value != 0


def _encode(data: Mapping[str, object]) -> bytes:
    # The data is JSON-ready already (built by this module), so it is
    # encoded once, without a conversion pass before it.  orjson makes the
    # same compact JSON as the standard encoder about ten times faster
    # (issue 18: it was a tenth of the station's CPU per sample), except
    # that it writes characters beyond ASCII as UTF-8 rather than escapes
    # and a float that is no number (NaN, infinite) as null, not as the
    # NaN that JSON has no word for.  What it cannot encode (an integer
    # beyond 64 bits) the standard encoder does.
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":")).encode("utf-8")


class EncodedQC(dict[str, dict[str, int | list[int]]]):
    """
    A record's ``qc``, JSON-ready, with its compact JSON made once: the
    station's QC makes one for each combination of flags it meets and
    attaches the same one to every record that has it (sample after sample
    all pass), so that neither the flags nor their JSON are made anew.
    Read it, never change it: records share it.

    :param qc: the flags, JSON-ready (plain ints in dicts and lists).
    :ivar json: ``qc`` as compact JSON, as in the record's own.
    """

    __slots__ = ("json",)

    def __init__(self, qc: Mapping[str, dict[str, int | list[int]]]) -> None:
        super().__init__(qc)
        self.json = _encode(self)


class SampleRecord(Mapping[str, object]):
    """
    One sample's record (version 2), read-only, with its compact JSON made
    once, on first use, and kept.

    It is a mapping of the record's keys (``record["values"]``), and has a
    ``to_dict()``, so code written for particles and their dict form takes
    it.  Do not change what it holds: every consumer shares it.

    :param data: the record's keys, JSON-ready, in the order of
        ``doc/data.md`` (:func:`build_record` and :func:`read_record` make
        them).
    :ivar encodings: how many times the JSON has been made (0 or 1; a
        test and a benchmark count it).
    """

    __slots__ = ("_data", "_json", "_qc_json", "encodings")

    def __init__(self, data: dict[str, object]) -> None:
        self._data = data
        self._json: bytes | None = None
        # The attached qc's JSON when made already (EncodedQC).
        self._qc_json: bytes | None = None
        self.encodings = 0

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return (
            f"<SampleRecord {self._data.get('instrument')}/{self.stream} "
            f"at {self._data.get('time')}>"
        )

    @property
    def json(self) -> bytes:
        """
        The record as compact JSON (UTF-8), made on first use and kept.
        """
        encoded = self._json
        if encoded is None:
            qc_json = self._qc_json
            if qc_json is None:
                encoded = _encode(self._data)
            else:
                # The qc's JSON is made already: the rest is encoded and
                # the qc joined as the last key, where attach_qc put it.
                data = self._data
                qc = data.pop("qc")
                try:
                    head = _encode(data)
                finally:
                    data["qc"] = qc
                encoded = b"".join((head[:-1], b',"qc":', qc_json, b"}"))
            self._json = encoded
            self.encodings += 1
        return encoded

    @property
    def instrument(self) -> str | None:
        """
        The instrument's name (``None`` in a converted old record whose
        reader did not name it).
        """
        value = self._data.get("instrument")
        return value if isinstance(value, str) else None

    @property
    def stream(self) -> str:
        """
        The stream's name.
        """
        return str(self._data["stream"])

    @property
    def ntp_time(self) -> float:
        """
        The sample time, NTP seconds.
        """
        value = self._data["ntp_time"]
        assert isinstance(value, int | float)
        return float(value)

    @property
    def unix_time(self) -> float | None:
        """
        The sample time, Unix seconds; ``None`` when it is NTP 0 (a
        particle made with no time at all).
        """
        value = self._data["ntp_time"]
        # A float, as build_record makes it: read without ntp_time's checks.
        ntp = value if value.__class__ is float else self.ntp_time
        return ntp - NTP_UNIX_OFFSET if ntp else None

    @property
    def sample_values(self) -> Mapping[str, object]:
        """
        The values, name to value (``record["values"]``; ``values()`` is the
        mapping's own method).
        """
        values = self._data["values"]
        assert isinstance(values, dict)
        return values

    @property
    def qc(self) -> Mapping[str, object] | None:
        """
        The QC flags attached, or ``None``.
        """
        qc = self._data.get("qc")
        return qc if isinstance(qc, dict) else None

    def attach_qc(self, qc: Mapping[str, object], *, ready: bool = False) -> None:
        """
        Attach QC flags (``{field: {test: flag, ..., "aggregate": flag}}``)
        as ``"qc"``.  Only before the JSON is made: after that every
        consumer may hold the bytes, and they would disagree.

        :param qc: the flags (ints or :class:`~enum.IntEnum` members).
        :param ready: the flags are JSON-ready already (plain ints in dicts
            and lists, as the station's QC makes them): kept as given,
            without a conversion pass (it would cost more than the tests);
            an :class:`EncodedQC`'s JSON is reused in the record's.
        :raises RuntimeError: if the JSON has been made already.
        """
        if self._json is not None:
            raise RuntimeError(
                f"QC flags attached to {self!r} after its JSON was made; "
                f"attach them in the recorder's qc hook"
            )
        data = self._data
        # Last, as doc/data.md lists it (and as the JSON is joined).
        data.pop("qc", None)
        data["qc"] = qc if ready else to_jsonable(qc)
        self._qc_json = qc.json if ready and isinstance(qc, EncodedQC) else None

    def to_dict(self) -> dict[str, object]:
        """
        The record's keys as a dict.

        :returns: the record's own dict: read it, do not change it (copy it
            first).
        """
        return self._data


#: The station's QC hook: called with each new record before its JSON is
#: made; returns the ``qc`` to attach (``{field: {test: flag, ...,
#: "aggregate": flag}}``), or ``None`` for none.
QCHook = Callable[[SampleRecord], "Mapping[str, object] | None"]


def build_record(instrument: str, particle: DataParticle) -> SampleRecord:
    """
    A particle's version 2 record.

    The time is the particle's preferred timestamp after its fallback rule
    (the preferred one if present, then the first present of internal,
    port and driver; a timestamp is absent when ``None`` or ``0``); a
    timestamp no date can hold is passed over the same way.  Absent port
    and internal timestamps are left out.  ``units`` and
    ``standard_names`` hold only values the particle's ``fields`` give them
    for (units ``""`` means none).

    :param instrument: the instrument's name.
    :param particle: a :class:`~instrumentd.driver.particles.DataParticle`.
    :returns: the record (its JSON not made yet).
    :raises RecordError: if no timestamp of the particle is a date.
    """
    port = particle.port_timestamp
    internal = particle.internal_timestamp
    driver = particle.driver_timestamp
    ntp: float | None = None
    if particle.__class__.preferred_timestamp is _PREFERRED:
        # DataParticle's fallback rule starts from the timestamp the
        # particle prefers, and stops there when it is present (not None,
        # not 0): read so without the rule's calls (this runs for every
        # sample), which only a preferred timestamp absent needs.
        preferred = particle._preferred
        if preferred is _PORT:
            ntp = port
        elif preferred is _INTERNAL:
            ntp = internal
        elif preferred is _DRIVER:
            ntp = driver
        if ntp is None or ntp == 0:
            preferred = particle.preferred_timestamp
            ntp = None
    else:
        preferred = particle.preferred_timestamp
    # A StrEnum member's value (its ``value`` is a Python-level descriptor,
    # ``_value_`` a plain attribute).
    source: str = getattr(preferred, "_value_", preferred)
    if ntp is None:
        if source == "port_timestamp":
            ntp = port
        elif source == "internal_timestamp":
            ntp = internal
        elif source == "driver_timestamp":
            ntp = driver
    # The preferred timestamp, a float as drivers make them, nearly always
    # is a date: the fallback rule is asked only when it is not.
    text = iso_from_ntp(ntp) if type(ntp) is float and ntp != 0 else None
    if text is None:
        stamps: dict[str, float | None] = {
            "port_timestamp": port,
            "internal_timestamp": internal,
            "driver_timestamp": driver,
        }
        source, ntp, text = _choose_time(stamps, source)
        assert ntp is not None
        if text is None:
            raise RecordError(
                f"particle {particle!r} of {instrument} has no timestamp that is "
                f"a date: {stamps}"
            )
    data: dict[str, object] = {
        "record": RECORD_KIND,
        "version": RECORD_VERSION,
        "instrument": instrument,
        "stream": particle.stream_name,
        "time": text,
        "ntp_time": ntp,
        "time_source": source,
    }
    # _present() for the floats drivers make, without its call.
    if port.__class__ is float:
        if port:
            data["port_timestamp"] = port
    elif _present(port):
        data["port_timestamp"] = port
    if internal.__class__ is float:
        if internal:
            data["internal_timestamp"] = internal
    elif _present(internal):
        data["internal_timestamp"] = internal
    data["driver_timestamp"] = driver
    flag = particle.quality_flag
    data["quality_flag"] = getattr(flag, "_value_", flag)
    # Pairs, so that a particle keeping its values as ids and values need
    # not make one dict per value for this.
    values: dict[str, object] = dict(particle.value_items())
    # Most values are plain numbers and text, JSON-ready as they are: the
    # types are checked in C, and the few others converted.
    if not _PLAIN.issuperset(map(type, values.values())):
        for name, value in values.items():
            kind = type(value)
            if kind is datetime:
                # An instrument's clock: what to_jsonable makes of it,
                # without its round of type checks.
                values[name] = _clock_text(cast("datetime", value))
            elif kind not in _PLAIN:
                values[name] = to_jsonable(value)
    units, standard_names = _layout(particle.fields, values)
    data["values"] = values
    # Copies: a record's dicts are its own, whoever reads them.
    data["units"] = units.copy()
    data["standard_names"] = standard_names.copy()
    return SampleRecord(data)


#: Recent UTC datetimes (an instrument's clock in its samples) → their
#: ISO text: thousands of instruments' clocks show the same few seconds.
_CLOCK_TEXT: dict[datetime, str] = {}


def _clock_text(value: datetime) -> str:
    """
    ``value.isoformat()``, kept for recent UTC times.
    """
    if value.tzinfo is not UTC:
        # Equal datetimes of other zones may print differently: not kept.
        return value.isoformat()
    text = _CLOCK_TEXT.get(value)
    if text is None:
        text = value.isoformat()
        if len(_CLOCK_TEXT) >= _SECONDS_KEPT:
            _CLOCK_TEXT.clear()
        _CLOCK_TEXT[value] = text
    return text


#: (id of a particle class's ``fields``, value names) → the fields (so the
#: id cannot be another's), and the record's ``units`` and
#: ``standard_names`` for those values.  A stream's samples have the same
#: values sample after sample.
_LAYOUTS: dict[
    tuple[int, tuple[str, ...]],
    tuple[Mapping[str, ParticleField], dict[str, str], dict[str, str]],
] = {}

#: How many layouts are kept before starting afresh.
_LAYOUTS_KEPT: Final = 1024


def _layout(
    fields: Mapping[str, ParticleField], values: Mapping[str, object]
) -> tuple[dict[str, str], dict[str, str]]:
    """
    The ``units`` and ``standard_names`` of a record with ``values``, from
    its particle's ``fields``, made once per layout (read them, never
    change them).
    """
    key = (id(fields), tuple(values))
    made = _LAYOUTS.get(key)
    if made is not None and made[0] is fields:
        return made[1], made[2]
    units: dict[str, str] = {}
    standard_names: dict[str, str] = {}
    for name in values:
        field = fields.get(name)
        if field is None:
            continue
        if field.units:
            units[name] = field.units
        if field.standard_name:
            standard_names[name] = field.standard_name
    if len(_LAYOUTS) >= _LAYOUTS_KEPT:
        _LAYOUTS.clear()
    _LAYOUTS[key] = (fields, units, standard_names)
    return units, standard_names


def _choose_time(
    stamps: Mapping[str, object], preferred: str
) -> tuple[str, float, str | None]:
    """
    The fallback rule: which timestamp times the sample, its value and its
    ISO text; the driver timestamp with ``None`` text when none is a date.
    """
    names = (preferred, *_FALLBACK) if preferred in _FALLBACK else _FALLBACK
    for name in names:
        value = stamps.get(name)
        if _present(value):
            assert isinstance(value, int | float)
            text = iso_from_ntp(float(value))
            if text is not None:
                return name, value, text
    driver = stamps.get("driver_timestamp")
    if isinstance(driver, int | float) and not isinstance(driver, bool):
        # Every particle has a driver timestamp; 0 is a particle made with
        # no clock at all, dated 1900-01-01 (sinks date it by reception).
        return "driver_timestamp", driver, iso_from_ntp(float(driver))
    return "driver_timestamp", 0.0, None


# -- reading ----------------------------------------------------------------------


def read_record(
    mapping: object, *, instrument: str | None = None, received: float | None = None
) -> dict[str, object]:
    """
    A sample record as version 2, from its JSON form.

    - Version 2 (``"record": "instrumentd.sample"``, ``"version": 2``) is
      checked and returned as a copy, with every key it has (keys added
      later, and a collector's ``station`` and ``seq``, are kept).
    - The layout stations wrote before (a particle's ``to_dict()``: a
      ``values`` list and ``pkt_format_id``, no ``version``) is converted:
      the time from its preferred timestamp by the fallback rule, values
      and their units from the list (it had no standard names, so
      ``standard_names`` is empty).  A missing ``stream_name`` is the
      stream ``unknown``, as the JSON-lines sink filed it.

    :param mapping: the decoded JSON.
    :param instrument: the instrument's name, for an old record (it did not
        carry one; its file's path does).  A version 2 record keeps its
        own.
    :param received: for an old record with no timestamp that is a date:
        the Unix time it was received, which becomes its driver timestamp
        and time; ``None`` makes such a record an error.
    :returns: the record, version 2.
    :raises RecordError: for anything else, naming what it found.
    """
    if not isinstance(mapping, Mapping):
        raise RecordError(
            f"a sample record is a JSON object, not {type(mapping).__name__} "
            f"{_excerpt(mapping)}"
        )
    kind = mapping.get("record")
    version = mapping.get("version")
    if kind is None and version is None and "values" in mapping:
        return _convert_particle(mapping, instrument, received)
    if kind != RECORD_KIND:
        raise RecordError(
            f"not a sample record: record = {kind!r} (expected {RECORD_KIND!r}, "
            f"or an old particle with pkt_format_id and a values list) in "
            f"{_excerpt(mapping)}"
        )
    if version != RECORD_VERSION:
        raise RecordError(
            f"sample record version {version!r} cannot be read: this "
            f"instrumentd reads version {RECORD_VERSION} (and old particles) "
            f"in {_excerpt(mapping)}"
        )
    return _checked_v2(mapping)


def _checked_v2(mapping: Mapping[str, object]) -> dict[str, object]:
    record = {str(key): value for key, value in mapping.items()}
    for key, kinds in (
        ("stream", str),
        ("time", str),
        ("ntp_time", int | float),
        ("values", Mapping),
    ):
        value = record.get(key)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise RecordError(
                f"sample record version 2 has {key} = {value!r}, expected "
                f"{_kind_name(key)}, in {_excerpt(mapping)}"
            )
    for key in ("units", "standard_names"):
        value = record.setdefault(key, {})
        if not isinstance(value, Mapping):
            raise RecordError(
                f"sample record version 2 has {key} = {value!r}, expected an "
                f"object of name to text, in {_excerpt(mapping)}"
            )
    return record


def _kind_name(key: str) -> str:
    return {
        "stream": "text",
        "time": "ISO 8601 text",
        "ntp_time": "a number",
        "values": "an object of name to value",
    }[key]


def _convert_particle(
    mapping: Mapping[str, object], instrument: str | None, received: float | None
) -> dict[str, object]:
    entries = mapping["values"]
    if not isinstance(entries, list):
        raise RecordError(
            f"old particle has values = {_excerpt(entries)}, expected a list of "
            f"{{value_id, value}}"
        )
    stream = mapping.get("stream_name", "unknown")
    if not isinstance(stream, str):
        raise RecordError(
            f"old particle has stream_name = {stream!r}, expected text, in "
            f"{_excerpt(mapping)}"
        )
    values: dict[str, object] = {}
    units: dict[str, object] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("value_id"), str):
            raise RecordError(
                f"old particle has a value {_excerpt(entry)}, expected "
                f"{{value_id, value}}"
            )
        name = entry["value_id"]
        values[name] = entry.get("value")
        unit = entry.get("units")
        if isinstance(unit, str) and unit:
            units[name] = unit
    preferred = mapping.get("preferred_timestamp")
    stamps = dict(mapping)
    source, ntp, text = _choose_time(
        stamps, preferred if isinstance(preferred, str) else ""
    )
    if text is None and received is not None:
        stamps["driver_timestamp"] = received + NTP_UNIX_OFFSET
        source, ntp, text = _choose_time(stamps, "driver_timestamp")
    if text is None:
        raise RecordError(
            f"old particle has no timestamp that is a date (port, internal, "
            f"driver) in {_excerpt(mapping)}"
        )
    record: dict[str, object] = {"record": RECORD_KIND, "version": RECORD_VERSION}
    if instrument is not None:
        record["instrument"] = instrument
    record.update(stream=stream, time=text, ntp_time=ntp, time_source=source)
    for name in ("port_timestamp", "internal_timestamp"):
        if _present(stamps.get(name)):
            record[name] = stamps[name]
    driver = stamps.get("driver_timestamp")
    if isinstance(driver, int | float) and not isinstance(driver, bool):
        record["driver_timestamp"] = driver
    record["quality_flag"] = mapping.get("quality_flag", "ok")
    record.update(values=values, units=units, standard_names={})
    return record


def _excerpt(value: object) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), default=repr)
    except ValueError:
        text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def as_record(
    instrument: str, particle: object, *, received: float | None = None
) -> SampleRecord:
    """
    What a sink was given, as a record: a :class:`SampleRecord` as it is
    (its bytes reused); a particle built into one; a mapping read by
    :func:`read_record` (an old particle's ``to_dict()`` form is converted;
    a version 2 mapping without ``instrument`` gets ``instrument``).

    :param instrument: the instrument's name, as the sink was told it.
    :param particle: a record, a particle, or a mapping.
    :param received: see :func:`read_record`.
    :returns: the record.
    :raises RecordError: for a mapping that is no record.
    """
    if isinstance(particle, SampleRecord):
        return particle
    if isinstance(particle, DataParticle):
        # Before the Mapping check, which is an ABC's and slower: a
        # station's particles are nearly all DataParticles.
        return build_record(instrument, particle)
    if isinstance(particle, Mapping):
        data = read_record(particle, instrument=instrument, received=received)
        data.setdefault("instrument", instrument)
        return SampleRecord(data)
    to_dict = getattr(particle, "to_dict", None)
    if callable(to_dict):
        return as_record(instrument, to_dict(), received=received)
    raise RecordError(f"not a particle or a record: {particle!r}")


# -- the station's one step ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordEvent(SampleEvent):
    """
    A ``SAMPLE`` event as the station presents it: its particle is the
    :class:`SampleRecord`, and its JSON form carries it as ``"record"``
    (``{"type": "SAMPLE", "time": <Unix seconds of the event>, "record":
    {...}}``).
    """

    @property
    def record(self) -> SampleRecord:
        """
        The sample's record.
        """
        particle = self.particle
        assert isinstance(particle, SampleRecord)
        return particle

    def to_dict(self) -> dict[str, object]:
        """
        :returns: ``type``, ``time`` and ``record`` (the record's own dict:
            read it, do not change it).
        """
        return {
            "type": self.event_type.value,
            "time": self.time,
            "record": self.record.to_dict(),
        }

    def message_json(
        self, instrument: str, *, before: bytes = b"", after: bytes = b""
    ) -> bytes:
        """
        The event's JSON with ``"instrument"`` first, as event streams send
        it, with the record's bytes spliced in rather than encoded again.

        :param instrument: the instrument's name.
        :param before: bytes to put before the JSON, joined with it at
            once (an SSE message's ``event:`` line and ``data:``).
        :param after: bytes to put after it.
        :returns: compact JSON, UTF-8, between ``before`` and ``after``.
        """
        time = self.time
        kind = self.event_type
        # self.record without its property call and check.
        record: bytes = self.particle.json  # type: ignore[attr-defined]
        if time.__class__ is float and kind is _SAMPLE:
            # The common case: the encoded head up to the time made once
            # per instrument, and the time encoded alone (orjson writes a
            # float alone as it does in an object).
            head = _SAMPLE_HEADS.get(instrument)
            if head is None:
                head = _sample_head(instrument)
            return b"".join(
                (before, head, orjson.dumps(time), b',"record":', record, b"}", after)
            )
        encoded = _encode({"instrument": instrument, "type": kind.value, "time": time})
        return b"".join((before, encoded[:-1], b',"record":', record, b"}", after))


#: Each instrument's ``{"instrument":...,"type":"SAMPLE","time":`` for
#: :meth:`RecordEvent.message_json`.
_SAMPLE_HEADS: dict[str, bytes] = {}


def _sample_head(instrument: str) -> bytes:
    encoded = _encode({"instrument": instrument, "type": EventType.SAMPLE.value})
    head = encoded[:-1] + b',"time":'
    if len(_SAMPLE_HEADS) >= _KEYS_KEPT:
        _SAMPLE_HEADS.clear()
    _SAMPLE_HEADS[instrument] = head
    return head


#: How many instruments' heads are kept before starting afresh.
_KEYS_KEPT: Final = 16384


_new_event = object.__new__
_set_particle = cast("Any", SampleEvent).particle.__set__
_set_time = cast("Any", SampleEvent).time.__set__


class SampleRecorder:
    """
    The station's one step from particle to record, for one instrument:
    every sample the instrument's driver publishes passes here once
    (:class:`~instrumentd.station.instrument.StationInstrument` calls
    :meth:`present`), and files, sinks, event streams and the API get what
    it made.

    :param instrument: the instrument's name.
    :param qc: the QC hook (see :data:`QCHook`), or ``None``; may be set
        later through :attr:`qc`.

    :ivar qc: the QC hook, or ``None``.
    :ivar records: records made so far.
    """

    def __init__(self, instrument: str, qc: QCHook | None = None) -> None:
        self.instrument = instrument
        self.qc = qc
        self.records = 0

    def record(
        self, particle: object, *, received: float | None = None
    ) -> SampleRecord:
        """
        A particle's record, with QC flags attached when the hook gives
        some.

        :param particle: a particle (or a record, or a mapping, as
            :func:`as_record` takes).
        :param received: Unix time to date a particle by that has no
            timestamp (only a particle that is not a
            :class:`~instrumentd.driver.particles.DataParticle` can lack one).
        :returns: the record.
        :raises RecordError: see :func:`as_record`.
        """
        record = as_record(self.instrument, particle, received=received)
        hook = self.qc
        if hook is not None:
            qc = hook(record)
            if qc is not None:
                record.attach_qc(qc)
        self.records += 1
        return record

    def present(self, event: SampleEvent) -> RecordEvent:
        """
        A driver's ``SAMPLE`` event as the station presents it.

        :param event: the event (its particle a particle).
        :returns: the same event with the particle's record.
        """
        if isinstance(event, RecordEvent):
            return event
        time = event.time
        particle = event.particle
        if self.qc is None and isinstance(particle, DataParticle):
            # What record() does for a driver's particle, without its and
            # as_record()'s calls (the station's QC is not a hook).
            record = build_record(self.instrument, particle)
            self.records += 1
        else:
            record = self.record(particle, received=time)
        # RecordEvent(record, time=time), without the frozen dataclass's
        # __init__ (one per sample): its fields set through their slots.
        presented: RecordEvent = _new_event(RecordEvent)
        _set_particle(presented, record)
        _set_time(presented, time)
        return presented
