# -*- test-case-name: tests.test_driver_particles -*-
"""
Data particles: one structured, timestamped record of instrument data.

A particle is what a driver publishes for each sample (as a ``SAMPLE``
event).  Its JSON form keeps the field names of the OOI particle so that
existing consumers read it::

    {"pkt_format_id": "JSON_Data", "pkt_version": 1,
     "stream_name": "ctd_parsed",
     "port_timestamp": 3569253419.25, "internal_timestamp": 3569253419.0,
     "driver_timestamp": 3569253419.5,
     "preferred_timestamp": "port_timestamp",
     "quality_flag": "ok",
     "values": [{"value_id": "temperature", "value": 12.3456,
                 "units": "degree_Celsius"}, ...]}

All timestamps are NTP: float seconds since 1900-01-01T00:00:00Z (Unix time
plus :data:`instrumentd.packet.NTP_UNIX_OFFSET`).

A driver writer declares one subclass per record kind: set
:attr:`DataParticle.stream_name` and implement
:meth:`DataParticle._build_values`, or, for records a regular expression
can read, subclass :class:`RegexDataParticle` and declare the pattern and
converters only.  Each value is described once, in
:attr:`DataParticle.fields`: its units (UDUNITS text, ``"1"`` for a
dimensionless number, ``""`` for text) and, where the CF conventions define
one, its standard name.  The descriptions travel with the driver's metadata
(:meth:`DataParticle.field_metadata`), so files and APIs can say what each
number means without the instrument's manual.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from instrumentd.driver._json import copy_jsonable, dumps, to_jsonable
from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.regex_plan import _group_converter, _plan, _Reading
from instrumentd.packet import NTP_UNIX_OFFSET, Packet

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = [
    "DataParticle",
    "ParticleField",
    "QualityFlag",
    "RawDataParticle",
    "RegexDataParticle",
    "TimestampName",
    "ntp_from_unix",
    "particle_values",
]


def ntp_from_unix(unix_time: float) -> float:
    """
    Convert Unix seconds to NTP seconds (since 1900) as a float.

    :param unix_time: seconds since 1970-01-01T00:00:00Z.
    :returns: seconds since 1900-01-01T00:00:00Z.
    """
    return unix_time + NTP_UNIX_OFFSET


class QualityFlag(StrEnum):
    """
    How far a particle's values can be trusted.
    """

    #: Checked and good (the default).
    OK = "ok"
    #: Not checked.
    NOT_EVALUATED = "not_evaluated"
    #: Possibly wrong; use with care.
    SUSPECT = "suspect"
    #: Known bad.
    FAILED = "failed"
    #: The record's own checksum did not verify.
    CHECKSUM_FAILED = "checksum_failed"
    #: A value is outside what the instrument can measure.
    OUT_OF_RANGE = "out_of_range"


class TimestampName(StrEnum):
    """
    The names of a particle's timestamps; a particle's preferred timestamp
    is one of these.
    """

    #: When the port agent read the record's first byte.
    PORT = "port_timestamp"
    #: The time the instrument wrote inside the record.
    INTERNAL = "internal_timestamp"
    #: When the driver built the particle.
    DRIVER = "driver_timestamp"


@dataclass(frozen=True, slots=True)
class ParticleField:
    """
    What one value of a particle is: its units and, where the CF conventions
    define one, its standard name.

    :ivar units: UDUNITS text (``"degree_Celsius"``, ``"S m-1"``, ``"dbar"``,
        ``"umol L-1"``); ``"1"`` for a dimensionless number; ``""`` for a
        value without units (text, counts of nothing physical, flags).
    :ivar standard_name: the CF standard name, or ``None`` where none fits.
    :ivar long_name: a human description, or ``None``.
    """

    units: str
    standard_name: str | None = None
    long_name: str | None = None

    def metadata(self) -> dict[str, object]:
        """
        :returns: ``{"units": ...}`` plus ``standard_name`` and ``long_name``
            where given, JSON-ready.
        """
        result: dict[str, object] = {"units": self.units}
        if self.standard_name is not None:
            result["standard_name"] = self.standard_name
        if self.long_name is not None:
            result["long_name"] = self.long_name
        return result


class _Clock(Protocol):
    def seconds(self) -> float: ...


class DataParticle:
    """
    One record of instrument data, with its timestamps and quality.

    Subclasses set :attr:`stream_name` and implement :meth:`_build_values`;
    the values are built once, when the particle is made.

    **Preferred timestamp.**  A particle names the timestamp consumers
    should trust (:attr:`preferred_timestamp`, default ``port_timestamp``).
    If the named timestamp is absent, the first present of
    ``internal_timestamp``, ``port_timestamp`` and ``driver_timestamp``
    (which every particle has) is used instead.  A timestamp is absent when
    it is ``None`` or ``0`` (the OOI port agent's "no time", as seen when a
    datalog is played back).  So a particle with no port time but an
    instrument clock in its record is timed by the instrument, never by
    1900-01-01, and one with neither is timed by the driver.

    :cvar stream_name: the stream this particle belongs to; must match the
        downstream stream definition.
    :cvar format_id: the ``pkt_format_id``; ``"JSON_Data"``.
    :cvar format_version: the ``pkt_version``; ``1``.
    :cvar fields: value id to its :class:`ParticleField` (units, CF
        standard name), for every value the particle can carry.
    :ivar raw: the record the particle was built from.
    :ivar port_timestamp: NTP time the port agent read the record's first
        byte, or ``None``.
    :ivar internal_timestamp: NTP time from inside the record, or ``None``.
    :ivar driver_timestamp: NTP time the particle was made.
    :ivar quality_flag: a :class:`QualityFlag`.
    :ivar values: ``[{"value_id": ..., "value": ...}, ...]``, in order
        (a :class:`RegexDataParticle` read the framework's way makes these
        dicts on first use; :meth:`value_items` gives the pairs without
        them).
    """

    stream_name: ClassVar[str]
    format_id: ClassVar[str] = "JSON_Data"
    format_version: ClassVar[int] = 1
    fields: ClassVar[Mapping[str, ParticleField]] = {}
    # The values as dicts, or None while they are kept as ids and values
    # only (made into dicts on first use of ``values``).
    _values: list[dict[str, object]] | None
    _value_ids: tuple[str, ...]
    _value_list: list[object]

    @classmethod
    def field_metadata(cls) -> dict[str, dict[str, object]]:
        """
        The stream's value descriptions, for the driver's metadata.

        :returns: value id to :meth:`ParticleField.metadata`, in declaration
            order (the caller's own copy).
        """
        return cast(
            "dict[str, dict[str, object]]", copy_jsonable(cls.shared_field_metadata())
        )

    @classmethod
    def shared_field_metadata(cls) -> dict[str, dict[str, object]]:
        """
        :meth:`field_metadata` made once per class (again if its
        :attr:`fields` is replaced) and shared: read it, never change it.

        :returns: value id to the field's metadata.
        """
        made = cls.__dict__.get("_field_metadata")
        fields = cls.fields
        if made is None or made[0] is not fields:
            made = (
                fields,
                {name: field.metadata() for name, field in fields.items()},
            )
            type.__setattr__(cls, "_field_metadata", made)
        return cast("dict[str, dict[str, object]]", made[1])

    @classmethod
    def value_ids(cls) -> tuple[str, ...] | None:
        """
        The ids of the values this kind of particle carries, when the class
        can tell without a record (a :class:`RegexDataParticle` can: its
        pattern's groups); ``None`` otherwise.  Tests use it to check that
        every value has a :attr:`fields` entry.

        :returns: the ids, or ``None``.
        """
        return None

    def __init__(
        self,
        raw: bytes,
        *,
        port_timestamp: float | None = None,
        internal_timestamp: float | None = None,
        driver_timestamp: float | None = None,
        preferred_timestamp: TimestampName | str = TimestampName.PORT,
        quality_flag: QualityFlag = QualityFlag.OK,
        clock: IReactorTime | _Clock | None = None,
    ) -> None:
        """
        Make a particle and build its values from ``raw``.

        :param raw: the record.
        :param port_timestamp: NTP time of the record's first byte, as the
            chunker gives it.
        :param internal_timestamp: NTP time the instrument reported, if
            known already; :meth:`_build_values` may set it instead.
        :param driver_timestamp: NTP time of making; ``None`` to read
            ``clock``.
        :param preferred_timestamp: the name of the timestamp to prefer.
        :param quality_flag: the quality of the values.
        :param clock: an object with ``seconds()`` (Unix time) for the
            driver timestamp; ``None`` for the global reactor.
        :raises TypeError: if the class declares no ``stream_name``.
        :raises ValueError: if ``preferred_timestamp`` is not a timestamp
            name.
        :raises InstrumentProtocolError: if the record cannot be read.
        """
        cls = type(self)
        if "_stream_name_checked" not in cls.__dict__:
            # Once per class (a flag in its own namespace: a dict lookup,
            # where a WeakSet's membership test is a Python call).
            if not isinstance(getattr(cls, "stream_name", None), str):
                raise TypeError(f"{cls.__name__} declares no stream_name")
            type.__setattr__(cls, "_stream_name_checked", True)
        self.raw = raw
        self.port_timestamp = port_timestamp
        self.internal_timestamp = internal_timestamp
        if driver_timestamp is None:
            if clock is None:
                from twisted.internet import reactor

                clock = cast("IReactorTime", reactor)
            driver_timestamp = ntp_from_unix(clock.seconds())
        self.driver_timestamp: float = driver_timestamp
        self._preferred = (
            preferred_timestamp
            if type(preferred_timestamp) is TimestampName
            else TimestampName(preferred_timestamp)
        )
        self.quality_flag = quality_flag
        self._read_values(raw)

    def _read_values(self, raw: bytes) -> None:
        # Where the constructor reads the record: through _build_values
        # here; a RegexDataParticle that keeps the framework's reading
        # keeps its values as two sequences instead, and makes the
        # dicts only when someone asks for them (see ``values``).
        self._values = self._build_values(raw)

    @property
    def values(self) -> list[dict[str, object]]:
        """
        ``[{"value_id": ..., "value": ...}, ...]``, in order; made on first
        use for particles that keep their values as ids and values.
        """
        values = self._values
        if values is None:
            values = self._values = [
                {"value_id": name, "value": value}
                for name, value in zip(self._value_ids, self._value_list, strict=True)
            ]
        return values

    @values.setter
    def values(self, values: list[dict[str, object]]) -> None:
        self._values = values

    def value_items(self) -> list[tuple[str, object]]:
        """
        The values as ``(value_id, value)`` pairs, in order, without making
        the dicts of :attr:`values` when they have not been made.

        :returns: the pairs.
        """
        values = self._values
        if values is None:
            return list(zip(self._value_ids, self._value_list, strict=True))
        return [(str(entry["value_id"]), entry["value"]) for entry in values]

    @classmethod
    def matches(cls, raw: bytes) -> bool:
        """
        Whether ``raw`` is a record of this kind, for a protocol trying its
        particle classes in turn on each record.  Subclasses that are
        listed in a protocol's ``particles`` override it (a binary record
        by its sync bytes or block ID, a text one by its pattern).

        :param raw: a record from the chunker.
        :returns: ``False`` here.
        """
        return False

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        """
        Read the record's values.  Subclasses implement this; they may also
        call :meth:`set_internal_timestamp` and set :attr:`quality_flag`.

        :param raw: the record.
        :returns: ``[{"value_id": ..., "value": ...}, ...]``.
        :raises InstrumentProtocolError: if the record cannot be read.
        """
        raise NotImplementedError(f"{type(self).__name__} must build its values")

    def set_internal_timestamp(
        self, *, ntp: float | None = None, unix: float | None = None
    ) -> None:
        """
        Record the time the instrument wrote inside the record.

        :param ntp: NTP seconds since 1900.
        :param unix: or Unix seconds since 1970 (converted to NTP).
        :raises ValueError: unless exactly one of them is given.
        """
        if (ntp is None) == (unix is None):
            raise ValueError("give exactly one of ntp= or unix=")
        self.internal_timestamp = ntp if unix is None else ntp_from_unix(unix)

    @property
    def preferred_timestamp(self) -> TimestampName:
        """
        The name of the timestamp to trust, after the fallback rule in the
        class documentation.
        """
        for name in (self._preferred, TimestampName.INTERNAL, TimestampName.PORT):
            if _present(self._timestamp(name)):
                return name
        return TimestampName.DRIVER

    @property
    def preferred_time(self) -> float:
        """
        The value of :attr:`preferred_timestamp`, NTP seconds.
        """
        value = self._timestamp(self.preferred_timestamp)
        assert value is not None
        return value

    def _timestamp(self, name: TimestampName) -> float | None:
        if name is TimestampName.PORT:
            return self.port_timestamp
        if name is TimestampName.INTERNAL:
            return self.internal_timestamp
        return self.driver_timestamp

    def value(self, value_id: str) -> object:
        """
        One value by its id.

        :param value_id: the value's ``value_id``.
        :returns: its value.
        :raises KeyError: if the particle has no such value.
        """
        if self._values is None:
            try:
                return self._value_list[self._value_ids.index(value_id)]
            except ValueError:
                raise KeyError(value_id) from None
        return _find_value(self._values, value_id)

    def to_dict(self) -> dict[str, object]:
        """
        The particle in a JSON-ready form (see the module documentation).
        Absent port and internal timestamps are left out, as in OOI
        particles.  A value whose :attr:`fields` entry has units carries
        them (``{"value_id": "pressure", "value": 10.1, "units": "dbar"}``),
        so a record in a file says what its numbers are.

        :returns: a dict of JSON-ready values.
        """
        result: dict[str, object] = {
            "pkt_format_id": self.format_id,
            "pkt_version": self.format_version,
            "stream_name": self.stream_name,
        }
        if _present(self.port_timestamp):
            result["port_timestamp"] = self.port_timestamp
        if _present(self.internal_timestamp):
            result["internal_timestamp"] = self.internal_timestamp
        result["driver_timestamp"] = self.driver_timestamp
        result["preferred_timestamp"] = self.preferred_timestamp.value
        result["quality_flag"] = self.quality_flag.value
        fields = self.fields
        values: list[dict[str, object]] = []
        if self._values is None:
            # The dicts were never made: make the JSON ones directly.
            for name, item in zip(self._value_ids, self._value_list, strict=True):
                record = {"value_id": name, "value": to_jsonable(item)}
                field = fields.get(name)
                if field is not None and field.units:
                    record["units"] = field.units
                values.append(record)
            result["values"] = values
            return result
        for entry in self._values:
            record = {key: to_jsonable(item) for key, item in entry.items()}
            field = fields.get(str(entry["value_id"]))
            if field is not None and field.units:
                record["units"] = field.units
            values.append(record)
        result["values"] = values
        return result

    def to_json(self) -> str:
        """
        The particle as compact JSON text.

        :returns: :meth:`to_dict` encoded as JSON.
        """
        return dumps(self.to_dict())

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.stream_name} "
            f"at {self.preferred_timestamp.value}={self.preferred_time}>"
        )


def _find_value(values: list[dict[str, object]], value_id: str) -> object:
    for entry in values:
        if entry["value_id"] == value_id:
            return entry["value"]
    raise KeyError(value_id)


def _present(timestamp: float | None) -> bool:
    # 0 is how OOI port agents and datalog playback say "no time".
    return timestamp is not None and timestamp != 0


class RegexDataParticle(DataParticle):
    """
    A particle read by a regular expression with named groups.

    Subclasses declare :attr:`stream_name`, :attr:`pattern` and, where a
    group is not text, a converter for it in :attr:`converters`.  Each named
    group becomes a value, in the order of the groups in the pattern; a
    group that took no part in the match has the value ``None``.  If
    :attr:`internal_time_value` names a value, that value (a
    :class:`~datetime.datetime`, naive meaning UTC, or Unix seconds) becomes
    the internal timestamp.

    The pattern must match from the start of the record
    (:meth:`re.Pattern.match`); anchor its end as well (``\\r\\n``, ``$``) so
    that a record cut short cannot be read as a complete one.

    Example::

        class SampleParticle(RegexDataParticle):
            stream_name = "ctd_parsed"
            pattern = re.compile(rb"# *(?P<temperature>-?\\d+\\.\\d+), ...\\r\\n")
            converters = {"temperature": float}

    :cvar pattern: a compiled ``bytes`` or ``str`` pattern; a ``str``
        pattern is matched against the record decoded as Latin-1.
    :cvar converters: group name to a callable turning the group's text
        into the value; groups not listed stay text.
    :cvar internal_time_value: the value id holding the instrument's time,
        or ``None``.
    """

    pattern: ClassVar[re.Pattern[bytes] | re.Pattern[str]]
    converters: ClassVar[Mapping[str, Callable[[str], object]]] = {}
    internal_time_value: ClassVar[str | None] = None

    @classmethod
    def _match(cls, raw: bytes) -> re.Match[bytes] | re.Match[str] | None:
        pattern = cls.pattern
        last = _last_match
        if last[0] is raw and last[1] is pattern:
            # The record matches() just tried (a protocol asks before it
            # builds): the same bytes, the same pattern, the same answer.
            return cast("re.Match[bytes] | re.Match[str] | None", last[2])
        if isinstance(pattern.pattern, str):
            return pattern.match(raw.decode("latin-1"))
        return pattern.match(raw)

    @classmethod
    def value_ids(cls) -> tuple[str, ...]:
        """
        The pattern's named groups, in order: the values every particle of
        this kind has.

        :returns: the ids.
        """
        return tuple(name for name, _index, _convert in _plan(cls))

    @classmethod
    def matches(cls, raw: bytes) -> bool:
        """
        Whether ``raw`` is a record of this kind.

        :param raw: a record from the chunker.
        :returns: ``True`` if :attr:`pattern` matches it.
        """
        known = cls.__dict__.get("_text_reading")
        reading = (
            known[3]
            # What _reading() checks, inline: a record per call.
            if known is not None
            and known[0] is cls.pattern
            and known[1] is cls.converters
            and known[2] == cls.internal_time_value
            else _reading(cls)
        )
        if reading is not None:
            # The framework's own reading: the record is decoded once and
            # matched as text, so its groups need no decoding each.
            match: re.Match[bytes] | re.Match[str] | None = reading.text_pattern.match(
                raw.decode("latin-1")
            )
            _last_text_match[:] = (raw, cls, match, reading)
            return match is not None
        match = cls._match(raw)
        # Kept for the constructor that usually follows, so that the
        # record is not matched twice.
        _last_match[:] = (raw, cls.pattern, match)
        return match is not None

    def _read_values(self, raw: bytes) -> None:
        cls = type(self)
        last = _last_text_match
        match: re.Match[str] | None
        reading: _Reading
        if last[0] is raw and last[1] is cls:
            # The record matches() just tried, with the reading it used.
            match = last[2]
            reading = last[3]
            last[:] = _NO_TEXT_MATCH
        else:
            found = _reading(cls)
            if found is None:
                self._values = self._build_values(raw)
                return
            reading = found
            match = reading.text_pattern.match(raw.decode("latin-1"))
        if match is None:
            raise InstrumentProtocolError(
                f"{self.stream_name}: record {raw[:80]!r} does not match "
                f"{self.pattern.pattern!r}"
            )
        _fill_values(self, reading, match.groups())

    def _explain_failure(
        self, texts: Sequence[str | None], indexes: Sequence[int]
    ) -> None:
        # Find the value that failed, and say which (the fast paths do not
        # keep track).
        plan = _plan(type(self))
        for name, index, convert in plan:
            text = texts[index]
            if text is None or convert is None:
                continue
            try:
                convert(text)
            except (ValueError, TypeError, ArithmeticError) as error:
                raise InstrumentProtocolError(
                    f"{self.stream_name}: value {name} = {text!r} "
                    f"cannot be read: {error}"
                ) from error

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        """
        Read one value per named group of :attr:`pattern`.

        :param raw: the record.
        :returns: the values, in group order.
        :raises InstrumentProtocolError: if the pattern does not match or a
            converter fails.
        """
        match = self._match(raw)
        _last_match[:] = _NO_MATCH
        if match is None:
            raise InstrumentProtocolError(
                f"{self.stream_name}: record {raw[:80]!r} does not match "
                f"{self.pattern.pattern!r}"
            )
        plan = _plan(type(self))
        groups: tuple[str | bytes | None, ...] = match.groups()
        texts: Sequence[str | None] = (
            [None if t is None else t.decode("latin-1") for t in groups]  # type: ignore[union-attr]
            if isinstance(self.pattern.pattern, bytes)
            else groups  # type: ignore[assignment]
        )
        try:
            values: list[dict[str, object]] = [
                {
                    "value_id": name,
                    "value": (
                        text if text is None or convert is None else convert(text)
                    ),
                }
                for (name, index, convert) in plan
                for text in (texts[index],)
            ]
        except (ValueError, TypeError, ArithmeticError):
            self._explain_failure(texts, tuple(range(len(texts))))
            raise
        internal = self.internal_time_value
        if internal is not None:
            if internal not in self.pattern.groupindex:
                # As before: naming a value the pattern lacks is a KeyError.
                raise KeyError(internal)
            for entry in values:
                if entry["value_id"] == internal:
                    self._set_internal_from(entry["value"])
                    break
        return values

    def _set_internal_from(self, when: object) -> None:
        if type(when) is datetime and when.tzinfo is not None:
            # The usual case (a time reader's aware UTC time), first.
            self.internal_timestamp = when.timestamp() + NTP_UNIX_OFFSET
            return
        if isinstance(when, datetime):
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            self.internal_timestamp = ntp_from_unix(when.timestamp())
        elif isinstance(when, int | float) and not isinstance(when, bool):
            self.set_internal_timestamp(unix=float(when))
        elif when is not None:
            raise InstrumentProtocolError(
                f"{self.stream_name}: {self.internal_time_value} = {when!r} "
                f"is not a time"
            )


#: The last record :meth:`RegexDataParticle.matches` tried, the pattern and
#: the match: ``(raw, pattern, match)``; emptied once a particle is built.
_last_match: list[object] = [None, None, None]
_NO_MATCH: tuple[None, None, None] = (None, None, None)

#: The same for the framework's own reading (:func:`_reading`), by class:
#: ``(raw, class, match of the decoded record, reading)``.
_last_text_match: list[Any] = [None, None, None, None]
_NO_TEXT_MATCH: tuple[None, None, None, None] = (None, None, None, None)


def _reading(cls: type[RegexDataParticle]) -> _Reading | None:
    """
    The reading for ``cls`` if it reads its records the framework's way
    (it does not override :meth:`RegexDataParticle._build_values`), else
    ``None``.  Worked out once per class, and again if its pattern or
    converters are replaced.
    """
    pattern, converters = cls.pattern, cls.converters
    internal = cls.internal_time_value
    known = cls.__dict__.get("_text_reading")
    if (
        known is not None
        and known[0] is pattern
        and known[1] is converters
        and known[2] == internal
    ):
        return known[3]  # type: ignore[no-any-return]
    reading: _Reading | None = None
    if (
        cls._build_values is RegexDataParticle._build_values
        and (internal is None or internal in pattern.groupindex)
        and not pattern.flags & re.LOCALE
    ):
        plan = _plan(cls)
        source = pattern.pattern
        # Latin-1 maps each byte to the code point of the same number, and
        # with ASCII the classes (\d, \w, \s, \b, case folding) are the
        # same as a bytes pattern's: the text pattern matches the decoded
        # record exactly where the bytes pattern matches the record.
        text_pattern = (
            pattern
            if isinstance(source, str)
            else re.compile(source.decode("latin-1"), pattern.flags | re.ASCII)
        )
        by_group: list[Callable[[str], object] | None] = [None] * pattern.groups
        for _name, index, convert in plan:
            by_group[index] = convert
        indexes = tuple(index for _name, index, _convert in plan)
        names = tuple(name for name, _index, _convert in plan)
        reading = _Reading(
            text_pattern,  # type: ignore[arg-type]
            tuple(by_group),
            None if indexes == tuple(range(pattern.groups)) else indexes,
            names,
            None if internal is None else names.index(internal),
            _group_converter(by_group),
        )
    type.__setattr__(cls, "_text_reading", (pattern, converters, internal, reading))
    return reading


def _fill_values(
    particle: RegexDataParticle, reading: _Reading, texts: Sequence[str | None]
) -> None:
    # The values of a record read the framework's way, from its match's
    # groups, and the internal timestamp among them.
    try:
        values = reading.convert(texts)
    except (ValueError, TypeError, ArithmeticError):
        particle._explain_failure(texts, tuple(range(len(texts))))
        raise
    if reading.keep is not None:
        values = [values[index] for index in reading.keep]
    particle._value_ids = reading.names
    particle._value_list = values
    particle._values = None
    internal = reading.internal
    if internal is not None:
        when = values[internal]
        if type(when) is datetime and when.tzinfo is not None:
            # The usual case (a time reader's aware UTC time), inline.
            particle.internal_timestamp = when.timestamp() + NTP_UNIX_OFFSET
        else:
            particle._set_internal_from(when)


def particle_values(
    particle_class: type[RegexDataParticle], data: bytes
) -> dict[str, object]:
    """
    The values of the first record of a kind in some instrument output (a
    command's reply), as ``{value_id: value}``: what a command returns to
    its caller, while the chunker publishes the particle itself, with its
    port timestamp, from the same bytes.

    :param particle_class: the kind of record.
    :param data: the output.
    :returns: the values.
    :raises InstrumentProtocolError: if there is no such record.
    """
    pattern = particle_class.pattern
    found = (
        pattern.search(data.decode("latin-1"))
        if isinstance(pattern.pattern, str)
        else pattern.search(data)
    )
    if found is None:
        raise InstrumentProtocolError(
            f"no {particle_class.stream_name} record in {data[:200]!r}"
        )
    particle = particle_class(data[found.start() :], driver_timestamp=0.0)
    return {str(entry["value_id"]): entry["value"] for entry in particle.values}


class RawDataParticle(DataParticle):
    """
    The raw bytes of one port-agent packet, published when a consumer asks
    for raw data.

    Values: ``raw`` (the payload, base64-encoded so any bytes survive JSON;
    the entry has ``"binary": True`` as in OOI raw particles), ``length``
    (payload bytes), ``type`` (the packet type number) and ``checksum`` (the
    packet header's checksum).  The port timestamp is the packet's.
    """

    stream_name: ClassVar[str] = "raw"
    fields: ClassVar[Mapping[str, ParticleField]] = {
        "raw": ParticleField("", long_name="packet payload, base64"),
        "length": ParticleField("byte"),
        "type": ParticleField("", long_name="port-agent packet type"),
        "checksum": ParticleField("", long_name="packet header checksum"),
    }

    @classmethod
    def value_ids(cls) -> tuple[str, ...]:
        """
        :returns: ``("raw", "length", "type", "checksum")``.
        """
        return ("raw", "length", "type", "checksum")

    def __init__(
        self,
        packet: Packet,
        *,
        driver_timestamp: float | None = None,
        clock: IReactorTime | _Clock | None = None,
    ) -> None:
        """
        :param packet: the packet.
        :param driver_timestamp: NTP time of making; ``None`` to read
            ``clock``.
        :param clock: as for :class:`DataParticle`.
        """
        self.packet = packet
        super().__init__(
            packet.payload,
            port_timestamp=packet.ntp_time,
            driver_timestamp=driver_timestamp,
            clock=clock,
        )

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        """
        The payload and the packet's length, type and checksum.

        :param raw: the payload.
        :returns: the four values.
        """
        checksum = int.from_bytes(self.packet.encode()[6:8], "big")
        return [
            {
                "value_id": "raw",
                "value": base64.b64encode(raw).decode("ascii"),
                "binary": True,
            },
            {"value_id": "length", "value": len(raw)},
            {"value_id": "type", "value": int(self.packet.type)},
            {"value_id": "checksum", "value": checksum},
        ]
