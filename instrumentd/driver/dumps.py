# -*- test-case-name: tests.test_driver_dumps -*-
"""
Reading an instrument's dumps (status, configuration and calibration
listings) from a table of the lines they may hold, rather than a parser
written for each.

A dump is text, one item (or a few) a line, and which lines it holds
differs with firmware and with the options fitted: a line may be missing,
may come in another firmware's words, or may be one nobody has seen yet.
So a driver declares the kinds of line it knows (:class:`Line`, and
:class:`Keyed` for ``NAME = value`` lines) in a :class:`DumpReader`; the
reader matches each line of a dump against the kinds in turn, and the first
kind whose pattern matches the whole line gives the line's values.  A line
of no known kind is skipped; a value whose line is absent is absent from
the result.  One table may hold every firmware's lines (they seldom
collide), or a driver may keep one table per firmware and combine them
with ``+``.

:class:`DumpParticle` makes a particle of a dump: its ``pattern`` says
where the dump is (the chunker's sieve, as for any
:class:`~instrumentd.driver.particles.RegexDataParticle`), its ``reader``
what is in it, its ``fields`` which values it has and in what order.

Example::

    STATUS = DumpReader(
        Line(r"sample interval = (?P<interval>\\d+) seconds"),
        Line(r"(?P<logging>(?:not )?logging)\\b.*"),
        Keyed(r" +(?P<key>\\w+) = (?P<value>\\S+)", names={"G": "cg"}),
        read={"interval": int, "logging": lambda text: text == "logging"},
    )
    STATUS.read("sample interval = 15 seconds\\nnot logging: stop\\n")
    # {'interval': 15, 'logging': False}

Values read this way become parameter values through
:meth:`~instrumentd.driver.parameters.ParameterDictionary.update_from`
(each :class:`~instrumentd.driver.parameters.Parameter` names its
``source``), so a driver declares a dump's lines once for its particle and
its parameters alike.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, ClassVar, cast

from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.particles import RegexDataParticle

__all__ = ["DumpParticle", "DumpReader", "Keyed", "Line"]

#: Turns a value's text into the value.
Reader = Callable[[str], object]


@dataclass(frozen=True)
class Line:
    """
    One kind of dump line: a regular expression for the whole line (without
    its line end; trailing blanks are ignored), whose named groups are the
    values it carries.  A group that took no part in the match gives no
    value.

    :ivar pattern: the expression, as text.
    :ivar read: value id to a function turning its text into the value, for
        this line only (the reader's ``read`` serves the rest; text stays
        text otherwise).
    """

    pattern: str
    read: Mapping[str, Reader] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.pattern))

    @property
    def compiled(self) -> re.Pattern[str]:
        """
        The compiled :attr:`pattern`.
        """
        compiled: re.Pattern[str] = self.__dict__["_compiled"]
        return compiled

    def texts(self, line: str) -> dict[str, str] | None:
        """
        The values' texts, if ``line`` is of this kind.

        :param line: one line of a dump, without its line end.
        :returns: value id to text, or ``None`` if the line is not of this
            kind.
        """
        match = self.compiled.fullmatch(line)
        if match is None:
            return None
        return {
            name: text for name, text in match.groupdict().items() if text is not None
        }


@dataclass(frozen=True)
class Keyed(Line):
    """
    Lines that name their own value, ``NAME = value``: the pattern's group
    ``key`` is the name and ``value`` the text.  The value id is the name
    mapped through :attr:`names`, else the name in lower case.

    :ivar names: printed name to value id, where they differ.
    """

    names: Mapping[str, str] = field(default_factory=dict)

    def texts(self, line: str) -> dict[str, str] | None:
        """
        The value's text, under the id its name maps to.

        :param line: one line of a dump.
        :returns: ``{id: text}``, or ``None`` if the line is not of this
            kind.
        """
        match = self.compiled.fullmatch(line)
        if match is None:
            return None
        key, text = match.group("key"), match.group("value")
        return {self.names.get(key, key.lower()): text}


#: How DumpReader tries a kind of line: Line.texts or Keyed.texts inline,
#: or the kind's own texts().
_LINE, _KEYED, _OTHER = "line", "keyed", "other"
#: Value types a remembered reading may hold (shared by its readers).
_IMMUTABLE = frozenset({str, int, float, bool, type(None), datetime, date, time})
#: Readings a DumpReader remembers.
_RECENT = 64


def _first_chars(compiled: re.Pattern[str]) -> frozenset[str] | None:
    """
    The characters a line of this kind can begin with, worked out from the
    parsed pattern: a line beginning with any other cannot match it, so it
    is not tried on such a line.  ``None`` where that cannot be told (the
    pattern may match an empty line, begins with a class such as ``\\d``,
    ignores case, or the parser's form is not one known here): then the
    kind is tried on every line, as before.
    """
    if compiled.flags & (re.IGNORECASE | re.LOCALE):
        return None
    try:
        parser: Any = importlib.import_module("re._parser")
        constants: Any = importlib.import_module("re._constants")
        found = _firsts(list(parser.parse(compiled.pattern, compiled.flags)), constants)
    except Exception:
        # Another Python's parser: no dispatch, every kind tried.
        return None
    return None if found is None else frozenset(found)


def _firsts(items: list[Any], c: Any) -> set[str] | None:
    # What a match of this sequence of parsed items must begin with; None
    # if it may begin with anything (or be empty).  Zero-width assertions
    # are passed over: the first character consumed comes after them, and
    # leaving out a condition keeps the set a necessary one.
    for index, (op, av) in enumerate(items):
        if op is c.LITERAL:
            return {chr(av)}
        if op is c.IN:
            chars: set[str] = set()
            for item_op, item_av in av:
                if item_op is c.LITERAL:
                    chars.add(chr(item_av))
                elif item_op is c.RANGE and item_av[1] - item_av[0] < 256:
                    chars.update(map(chr, range(item_av[0], item_av[1] + 1)))
                else:
                    return None
            return chars
        if op is c.SUBPATTERN:
            if av[1] & (c.SRE_FLAG_IGNORECASE | c.SRE_FLAG_LOCALE):
                return None
            return _firsts(list(av[3]), c)
        if op is c.ATOMIC_GROUP:
            return _firsts(list(av), c)
        if op is c.BRANCH:
            union: set[str] = set()
            for alternative in av[1]:
                part = _firsts(list(alternative), c)
                if part is None:
                    return None
                union |= part
            return union
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            repeated = _firsts(list(av[2]), c)
            if repeated is None or av[0] >= 1:
                return repeated
            # Optional (``(?:do not )?``): it, or what follows it.
            after = _firsts(items[index + 1 :], c)
            return None if after is None else repeated | after
        if op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            continue
        return None
    return None


def _mode(kind: Line) -> str:
    cls = type(kind)
    if cls.compiled is not Line.compiled:
        return _OTHER
    if cls.texts is Line.texts:
        return _LINE
    if cls.texts is Keyed.texts:
        return _KEYED
    return _OTHER


class DumpReader:
    """
    A table of the kinds of line a dump may hold.

    :param lines: the kinds, tried in this order on each line.
    :param read: value id to a function turning its text into the value;
        values not listed stay text.
    :param ids: the only value ids kept (a :class:`Keyed` line may name
        values nobody asked for); ``None`` keeps every value.
    """

    def __init__(
        self,
        *lines: Line,
        read: Mapping[str, Reader] | None = None,
        ids: tuple[str, ...] | None = None,
    ) -> None:
        self.lines = lines
        self.converters: Mapping[str, Reader] = dict(read or {})
        self.ids = ids
        # Looked up for each value read: a set, not the tuple's scan.
        self._kept = None if ids is None else frozenset(ids)
        # Each kind with how to try it: Line's and Keyed's own texts()
        # inline (one fullmatch, no method calls for a line of another
        # kind), any other kind through its texts().
        self._plan = tuple(
            (kind, kind.compiled.fullmatch, _mode(kind)) for kind in lines
        )
        # Which kinds can begin with which character: a line is tried only
        # against the kinds that could match it (a status dump's line
        # against one or two kinds of eighteen, each try a regex call),
        # in the same order.  ``None`` where a kind could begin with
        # anything.
        self._firsts = tuple(_first_chars(kind.compiled) for kind in lines)
        # The plan for lines beginning with each character met so far.
        self._plans: dict[
            str, tuple[tuple[Line, Callable[[str], re.Match[str] | None], str], ...]
        ] = {}
        # Dumps read lately, by text: a dump is read twice as a rule (the
        # command's reply and the chunker's particle), and a reading is a
        # pure function of the text.  Only readings of immutable values
        # are kept.
        self._recent: dict[str, dict[str, object]] = {}

    def __add__(self, other: DumpReader) -> DumpReader:
        """
        Both tables' lines (this one's first) and converters.
        """
        ids = None if self.ids is None or other.ids is None else self.ids + other.ids
        return DumpReader(
            *self.lines,
            *other.lines,
            read={**self.converters, **other.converters},
            ids=ids,
        )

    def read(self, text: str) -> dict[str, object]:
        """
        Read a dump.

        :param text: the dump; CR LF, LF or CR line ends.
        :returns: value id to value, for every value found (a value found
            twice keeps the later).
        :raises InstrumentProtocolError: naming the line, if a value's text
            cannot be read.
        """
        recent = self._recent
        known = recent.get(text)
        if known is not None:
            return dict(known)
        found = self._read(text)
        if all(type(value) in _IMMUTABLE for value in found.values()):
            if len(recent) >= _RECENT:
                del recent[next(iter(recent))]
            recent[text] = dict(found)
        return found

    def _read(self, text: str) -> dict[str, object]:
        found: dict[str, object] = {}
        ids = self._kept
        plans = self._plans
        for raw in text.splitlines():
            line = raw.rstrip()
            first = line[:1]
            plan = plans.get(first)
            if plan is None:
                plan = self._plan_for(first)
            for kind, fullmatch, mode in plan:
                if mode is _OTHER:
                    texts = kind.texts(line)
                    if texts is None:
                        continue
                else:
                    match = fullmatch(line)
                    if match is None:
                        continue
                    if mode is _LINE:
                        texts = {
                            name: value
                            for name, value in match.groupdict().items()
                            if value is not None
                        }
                    else:
                        key = match.group("key")
                        names = cast("Keyed", kind).names
                        texts = {names.get(key, key.lower()): match.group("value")}
                for name, value in texts.items():
                    if ids is None or name in ids:
                        found[name] = self._convert(kind, name, value, line)
                break
        return found

    def _plan_for(
        self, first: str
    ) -> tuple[tuple[Line, Callable[[str], re.Match[str] | None], str], ...]:
        # The kinds a line beginning with ``first`` ("" for an empty line)
        # could be, in the table's order; kept for the next such line.
        plan = tuple(
            step
            for step, chars in zip(self._plan, self._firsts, strict=True)
            if chars is None or first in chars
        )
        if len(self._plans) < 512:
            self._plans[first] = plan
        return plan

    def _convert(self, kind: Line, name: str, text: str, line: str) -> object:
        reader = kind.read.get(name) or self.converters.get(name)
        if reader is None:
            return text
        try:
            return reader(text)
        except (ValueError, TypeError, ArithmeticError) as error:
            raise InstrumentProtocolError(
                f"{line!r} cannot be read: {name} = {text!r}: {error}"
            ) from error


class DumpParticle(RegexDataParticle):
    """
    A dump as a particle: :attr:`pattern` finds the record (and is the
    chunker's sieve), :attr:`reader` reads it, and the particle has one
    value per entry of :attr:`fields`, in that order; a value the dump does
    not hold is :attr:`defaults`' or ``None``.

    :cvar reader: the dump's line kinds.
    :cvar defaults: value id to the value when its line is absent (e.g.
        ``False`` for a warning line that only appears when it applies).
    """

    reader: ClassVar[DumpReader]
    defaults: ClassVar[Mapping[str, object]] = {}

    @classmethod
    def value_ids(cls) -> tuple[str, ...]:
        """
        :returns: every value the dump may hold: the keys of ``fields``.
        """
        return tuple(cls.fields)

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        """
        Read the dump's lines.

        :param raw: the record.
        :returns: one value per field.
        :raises InstrumentProtocolError: if :attr:`pattern` does not match
            or a line cannot be read.
        """
        match = self._match(raw)
        if match is None:
            raise InstrumentProtocolError(
                f"{self.stream_name}: not a dump of its kind: {raw[:80]!r}"
            )
        try:
            found = self.reader.read(raw[: match.end()].decode("latin-1"))
        except InstrumentProtocolError as error:
            raise InstrumentProtocolError(f"{self.stream_name}: {error}") from error
        found = {**self.defaults, **found}
        if self.internal_time_value is not None:
            self._set_internal_from(found.get(self.internal_time_value))
        return [
            {"value_id": name, "value": found.get(name)} for name in self.value_ids()
        ]
