# -*- test-case-name: tests.test_driver_columns -*-
"""
Sample lines as columns: a delimited line of values (``T, C, P[, S][,
time]``) declared as a table of :class:`Column` rather than a regular
expression written by hand.

Many instruments print a sample as one line of values with a separator
between them, some columns present only when a setting or a sensor asks
for them.  A driver declares each column once: its value id, the pattern
of its text, how to read the text, and what the value is (its
:class:`~instrumentd.driver.particles.ParticleField`: units, standard name).
A :class:`ColumnParticle` builds from that table the record's pattern (also
fit for the chunker's sieve), its converters and its fields, so the three
never disagree.

Example::

    class Sample(ColumnParticle):
        stream_name = "ctd_sample"
        start = r"#? *"  # what comes before the first column
        separator = r", *"  # between columns (the default ``,``)
        columns = (
            Column("temperature", r"-?\\d+\\.\\d+", float,
                   ParticleField("degree_Celsius", "sea_water_temperature")),
            Column("salinity", r"-?\\d+\\.\\d{4}", float, ParticleField("1"),
                   optional=True),
        )


    class SampleWithoutSalinity(Sample):
        absent = frozenset({"salinity"})  # this fit never prints it

The pattern is ``start``, the first column, then for each further column
the separator and the column (an optional column and its separator may be
missing as a whole), then ``end`` (CR LF by default): a line cut short in
transit does not match.  A column's value is ``None`` when it is missing;
an :attr:`~ColumnParticle.absent` column is never read (its value is always
``None``) but keeps its place among the values, so every variant of a
sample has the same value ids in the same order.

Columns are told apart by position and by their patterns only: two
optional columns in a row need patterns that cannot both match the same
text (the SBE 37 prints salinity with four decimals and sound velocity
with three), or a line holding one of them is read as the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from instrumentd.driver.particles import ParticleField, RegexDataParticle

__all__ = ["Column", "ColumnParticle", "columns_pattern"]


@dataclass(frozen=True)
class Column:
    """
    One column of a sample line.

    :ivar name: the value id.
    :ivar pattern: a regular expression (text, ASCII) for the column's
        text; it must not contain capturing groups of its own (use
        ``(?:...)``).
    :ivar read: turns the text into the value; ``None`` keeps the text.
    :ivar field: what the value is (units, CF standard name, long name).
    :ivar optional: the column may be missing (with its separator).
    """

    name: str
    pattern: str
    read: Callable[[str], object] | None
    field: ParticleField
    optional: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(
                f"column {self.name!r}: a name must be a Python identifier "
                "(it is a regex group name)"
            )
        groups = re.compile(self.pattern).groups
        if groups:
            raise ValueError(
                f"column {self.name}: pattern {self.pattern!r} has {groups} "
                "capturing group(s); use (?:...)"
            )


def columns_pattern(
    columns: Sequence[Column],
    *,
    start: str = "",
    separator: str = ",",
    end: str = r"\r\n",
    absent: frozenset[str] = frozenset(),
) -> re.Pattern[bytes]:
    """
    The pattern of a line of ``columns``, one named group per column in
    their order.

    :param columns: the columns, in the order printed.
    :param start: what comes before the first column.
    :param separator: what comes between two columns.
    :param end: what ends the line.
    :param absent: names of columns never printed: their groups never
        match.
    :returns: a compiled ``bytes`` pattern.
    :raises ValueError: for no columns, a name given twice, an ``absent``
        name that is no column, or a first column that is optional or
        absent (the line would have nothing to start with).
    """
    if not columns:
        raise ValueError("a line needs at least one column")
    names = [column.name for column in columns]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"column(s) declared twice: {', '.join(twice)}")
    unknown = sorted(absent - set(names))
    if unknown:
        raise ValueError(
            f"absent column(s) {', '.join(unknown)} are not columns; "
            f"columns: {', '.join(names)}"
        )
    first = columns[0]
    if first.optional or first.name in absent:
        raise ValueError(
            f"the first column, {first.name}, cannot be optional or absent"
        )
    parts = [start, f"(?P<{first.name}>{first.pattern})"]
    for column in columns[1:]:
        if column.name in absent:
            # A group that never matches: the value id keeps its place.
            parts.append(f"(?:(?P<{column.name}>)(?!))?")
        elif column.optional:
            parts.append(f"(?:{separator}(?P<{column.name}>{column.pattern}))?")
        else:
            parts.append(f"{separator}(?P<{column.name}>{column.pattern})")
    parts.append(end)
    return re.compile("".join(parts).encode("ascii"))


class ColumnParticle(RegexDataParticle):
    """
    A particle read from a line of :attr:`columns`.  Subclasses declare
    :attr:`~instrumentd.driver.particles.DataParticle.stream_name`,
    :attr:`columns` and, where they differ from the defaults,
    :attr:`start`, :attr:`separator` and :attr:`end`; the class's
    ``pattern``, ``converters`` and ``fields`` are made from them when the
    class is defined (one that a class declares in its own body is kept).

    :cvar columns: the columns, in the order printed.
    :cvar start: a regex for what comes before the first column (a ``#``,
        a line start).
    :cvar separator: a regex for what comes between two columns.
    :cvar end: a regex for what ends the line.
    :cvar absent: columns this kind of instrument never prints (a sensor
        not fitted): always ``None``.
    """

    pattern: ClassVar[re.Pattern[bytes]]
    columns: ClassVar[Sequence[Column]] = ()
    start: ClassVar[str] = ""
    separator: ClassVar[str] = ","
    end: ClassVar[str] = r"\r\n"
    absent: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.columns or "pattern" in cls.__dict__:
            return
        cls.pattern = columns_pattern(
            cls.columns,
            start=cls.start,
            separator=cls.separator,
            end=cls.end,
            absent=cls.absent,
        )
        if "converters" not in cls.__dict__:
            converters: Mapping[str, Callable[[str], object]] = {
                column.name: column.read
                for column in cls.columns
                if column.read is not None
            }
            cls.converters = converters
        if "fields" not in cls.__dict__:
            cls.fields = {column.name: column.field for column in cls.columns}
