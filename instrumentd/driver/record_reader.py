# -*- test-case-name: tests.test_driver_particles_reading -*-
"""
Record readers: what a :class:`~instrumentd.driver.particles.RegexDataParticle`'s
``matches(raw)`` followed by its constructor does, in one call, for the
classes that keep the framework's ways.  A protocol's ``got_record`` makes
every sample through one (see :func:`record_reader`); a class that reads
its records its own way has none, and keeps the two calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

from instrumentd.driver.particles import (
    DataParticle,
    QualityFlag,
    RegexDataParticle,
    TimestampName,
    _Clock,
    _fill_values,
    _reading,
)
from instrumentd.driver.regex_plan import _Reading
from instrumentd.packet import NTP_UNIX_OFFSET

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = ["RecordReader", "record_reader"]


#: A record reader (see :func:`record_reader`): the record and its port
#: timestamp in, the particle out, or ``None`` if the record is not of the
#: kind.
RecordReader = Callable[
    [bytes, float, "IReactorTime | _Clock | None"], "DataParticle | None"
]
#: The framework's RegexDataParticle.matches, as a function.
_REGEX_MATCHES: Final = RegexDataParticle.matches.__func__  # type: ignore[attr-defined]


def record_reader(particle_class: type[DataParticle]) -> RecordReader | None:
    """
    What ``particle_class.matches(raw)`` followed by
    ``particle_class(raw, port_timestamp=..., clock=...)`` does, in one call
    and without the steps between them, for a :class:`RegexDataParticle`
    that keeps the framework's ways: its own constructor, ``matches`` and
    reading of values are not overridden (a protocol's ``got_record`` makes
    every sample this way).  Worked out once per class, and again if its
    pattern, converters or internal time value are replaced.

    :param particle_class: the kind of particle.
    :returns: the reader, raising what the constructor raises; ``None`` if
        the class does anything its own way (then call ``matches`` and the
        constructor).
    """
    cls = particle_class
    known = cls.__dict__.get("_record_reader")
    if (
        known is not None
        and known[0] is getattr(cls, "pattern", None)
        and known[1] is getattr(cls, "converters", None)
        and known[2] == getattr(cls, "internal_time_value", None)
    ):
        return known[3]  # type: ignore[no-any-return]
    reader: RecordReader | None = None
    if (
        issubclass(cls, RegexDataParticle)
        # Its stream name checked by a first particle made the usual way.
        and "_stream_name_checked" in cls.__dict__
        and type(cls) is type
        and cls.__new__ is object.__new__
        and cls.__init__ is DataParticle.__init__
        and cls._read_values is RegexDataParticle._read_values
        and getattr(cls.matches, "__func__", None) is _REGEX_MATCHES
        and (reading := _reading(cls)) is not None
    ):
        reader = _make_reader(cls, reading)
    if reader is not None or "_stream_name_checked" in cls.__dict__:
        # (A class not yet checked is looked at again next time.)
        type.__setattr__(
            cls,
            "_record_reader",
            (
                getattr(cls, "pattern", None),
                getattr(cls, "converters", None),
                getattr(cls, "internal_time_value", None),
                reader,
            ),
        )
    return reader


def _make_reader(cls: type[RegexDataParticle], reading: _Reading) -> RecordReader:
    match_text = reading.text_pattern.match
    new = object.__new__
    port = TimestampName.PORT
    ok = QualityFlag.OK

    def read(
        raw: bytes, port_timestamp: float, clock: IReactorTime | _Clock | None
    ) -> RegexDataParticle | None:
        match = match_text(raw.decode("latin-1"))
        if match is None:
            return None
        if clock is None:
            from twisted.internet import reactor

            clock = cast("IReactorTime", reactor)
        # What DataParticle.__init__ sets, in its order, with its defaults.
        particle: RegexDataParticle = new(cls)
        particle.raw = raw
        particle.port_timestamp = port_timestamp
        particle.internal_timestamp = None
        particle.driver_timestamp = clock.seconds() + NTP_UNIX_OFFSET
        particle._preferred = port
        particle.quality_flag = ok
        _fill_values(particle, reading, match.groups())
        return particle

    return read
