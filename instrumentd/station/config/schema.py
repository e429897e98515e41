# -*- test-case-name: tests.test_station_config -*-
"""
How a configuration key is declared: its type, bounds, choices, default,
documentation and the words of its messages, in one place.

A :class:`Key` both checks a value (:meth:`Key.check`) and describes
itself for the reference in ``doc/station.md``
(:mod:`instrumentd.station.config.reference`), so the two cannot drift
apart.  A :class:`Section` is the keys of one table; a key a table holds
that its section does not declare is an unknown key.

Why not attrs + cattrs: a validator of an attrs class stops at the first
bad field of that class and cattrs reports it as "invalid value" without
the value or the valid choices; cattrs also turns the string ``"4001"``
into the integer 4001 silently.  Here every key is checked on its own,
every problem names the key path, the value and what would be valid, and
the declarations double as the documentation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = ["REQUIRED", "Key", "Section", "Verdict"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a key that must be given.
REQUIRED: Final = _Required()

#: The types a key may have, as the reference and messages name them.
_KIND_NAMES: Final = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "size": 'a size: bytes, or text like "4MiB"',
    "server endpoint": "a server endpoint string",
    "client endpoint": "a client endpoint string",
    "server endpoints": "a server endpoint string, an array of them, or 'none'",
    "table": "a table",
    "array": "an array",
}

#: Size suffixes for showing bounds in bytes.
_BINARY: Final = (
    (1 << 40, "TiB"),
    (1 << 30, "GiB"),
    (1 << 20, "MiB"),
    (1 << 10, "KiB"),
)


def kind_of(value: object) -> str:
    """
    :param value: a value from a TOML document.
    :returns: its TOML type, with an article (``an integer``).
    """
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def show(value: object) -> str:
    """
    :param value: a value from a TOML document.
    :returns: its ``repr``, cut to 60 characters.
    """
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bytes(count: float) -> str:
    for size, suffix in _BINARY:
        if count >= size and count % size == 0:
            return f"{int(count // size)} {suffix}"
    return f"{int(count)} bytes"


@dataclass(frozen=True)
class Verdict:
    """
    What checking one value found.

    :ivar value: the value to use (converted: a size in bytes, a float for
        a number), or ``None`` if it was refused.
    :ivar problem: what is wrong, for a person, or ``None``.
    """

    value: object = None
    problem: str | None = None


@dataclass(frozen=True)
class Key:
    """
    One configuration key.

    :ivar name: the key's name in its table.
    :ivar kind: ``string``, ``integer``, ``number``, ``boolean``, ``size``
        (bytes, or text like ``"4MiB"``), ``server endpoint``, ``client
        endpoint``, ``server endpoints`` (one, an array, or ``"none"``),
        ``table`` or ``array``.  Tables and arrays are read by
        their section's builder; the others are checked here.
    :ivar doc: what it means, for the reference (Markdown).
    :ivar default: its value when absent, :data:`REQUIRED` when it must be
        given, ``None`` for none.
    :ivar default_doc: how the reference shows the default, when it is
        computed (``<data_dir>/samples``).
    :ivar minimum: the smallest number or size allowed.
    :ivar maximum: the largest number or size allowed.
    :ivar above: a number must be greater than this.
    :ivar off: a value allowed outside the bounds, which turns the thing
        off (``heartbeat = 0``).
    :ivar choices: the only values allowed.
    :ivar fold_case: compare string choices without regard to case.
    :ivar unit: the unit of a number, for messages (``seconds``).
    :ivar required: what to say when a required key is missing.
    :ivar type_doc: how the reference names the type, when the kind's own
        name says too little (``array of strings``).
    :ivar check: a further check of a value that passed the others: it
        returns what is wrong, or ``None``.
    """

    name: str
    kind: str
    doc: str
    default: object = None
    default_doc: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    off: float | None = None
    choices: tuple[object, ...] | None = None
    fold_case: bool = False
    unit: str = ""
    required: str | None = None
    type_doc: str | None = None
    check: Callable[[object], str | None] | None = field(
        default=None, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.kind not in _KIND_NAMES:
            raise ValueError(
                f"key {self.name!r}: kind {self.kind!r} is not one of "
                f"{', '.join(_KIND_NAMES)}"
            )

    @property
    def is_required(self) -> bool:
        """
        Whether the key must be given.
        """
        return self.default is REQUIRED

    def valid(self) -> str:
        """
        What a valid value is, for messages and the reference: the
        choices, or the bounds with their unit.
        """
        if self.choices is not None:
            return ", ".join(_choice(c) for c in self.choices)
        return self.bounds()

    def bounds(self) -> str:
        """
        The bounds of a number or size in words, or ``""``.
        """
        if self.minimum is None and self.maximum is None and self.above is None:
            return ""
        number = _bytes if self.kind == "size" else _number
        unit = f" {self.unit}" if self.unit and self.kind != "size" else ""
        if self.above is not None and self.maximum is not None:
            text = f"more than {number(self.above)}, at most {number(self.maximum)}"
        elif self.above is not None:
            text = f"more than {number(self.above)}"
        elif self.minimum is not None and self.maximum is not None:
            text = f"{number(self.minimum)} to {number(self.maximum)}"
        elif self.minimum is not None:
            text = f"at least {number(self.minimum)}"
        else:
            assert self.maximum is not None
            text = f"at most {number(self.maximum)}"
        if self.off is not None:
            text = f"{_number(self.off)} (off) or {text}"
        return text + unit

    def type_name(self) -> str:
        """
        The key's type for the reference (``integer``, ``array of
        strings``).
        """
        if self.type_doc is not None:
            return self.type_doc
        if self.kind == "size":
            return "integer or string"
        if self.kind in ("server endpoint", "client endpoint"):
            return "string"
        if self.kind == "server endpoints":
            return "string or array of strings"
        return self.kind

    def expected(self) -> str:
        """
        The expected type and range in words, for a message.
        """
        text = _KIND_NAMES[self.kind]
        if self.type_doc is not None:
            article = "an" if self.type_doc[0] in "aeiou" else "a"
            text = f"{article} {self.type_doc}"
        if self.choices is not None:
            return f"{text} (one of {self.valid()})"
        valid = self.bounds()
        return f"{text} ({valid})" if valid else text

    def missing(self) -> str:
        """
        The problem of a required key that is absent.
        """
        what = self.required or self.doc
        return f"missing: {what}"

    def check_value(self, value: object) -> Verdict:
        """
        Check a value given for this key.

        :param value: the value from the TOML document.
        :returns: the value to use, or the problem.
        """
        checker = _CHECKERS.get(self.kind)
        if checker is None:
            return Verdict(value)
        verdict = checker(self, value)
        if verdict.problem is None and self.check is not None:
            problem = self.check(verdict.value)
            if problem is not None:
                return Verdict(None, problem)
        return verdict


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def _choice(value: object) -> str:
    return value if isinstance(value, str) else _number(value)  # type: ignore[arg-type]


def _wrong_type(key: Key, value: object) -> Verdict:
    return Verdict(
        None, f"must be {key.expected()}, not {kind_of(value)} ({show(value)})"
    )


def _in_bounds(key: Key, value: float) -> bool:
    if key.off is not None and value == key.off:
        return True
    if key.minimum is not None and value < key.minimum:
        return False
    if key.above is not None and value <= key.above:
        return False
    return key.maximum is None or value <= key.maximum


def _out_of_bounds(key: Key, shown: str) -> Verdict:
    return Verdict(None, f"{shown} is out of range; valid: {key.bounds()}")


def _not_a_choice(key: Key, shown: str) -> Verdict:
    return Verdict(None, f"{shown} is not valid; valid choices: {key.valid()}")


def _check_choice(key: Key, value: object, shown: str) -> Verdict:
    if key.choices is None:
        return Verdict(value)
    if key.fold_case and isinstance(value, str):
        for choice in key.choices:
            if isinstance(choice, str) and choice.lower() == value.lower():
                return Verdict(choice)
    elif value in key.choices:
        return Verdict(value)
    return _not_a_choice(key, shown)


def _string(key: Key, value: object) -> Verdict:
    if not isinstance(value, str):
        return _wrong_type(key, value)
    if not value.strip():
        return Verdict(None, "must not be empty")
    return _check_choice(key, value, repr(value))


def _integer(key: Key, value: object) -> Verdict:
    if isinstance(value, bool) or not isinstance(value, int):
        return _wrong_type(key, value)
    if key.choices is not None:
        return _check_choice(key, value, str(value))
    if not _in_bounds(key, value):
        return _out_of_bounds(key, str(value))
    return Verdict(value)


def _float(key: Key, value: object) -> Verdict:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _wrong_type(key, value)
    if key.choices is not None:
        return _check_choice(key, value, _number(value))
    number = float(value)
    if not math.isfinite(number):
        return Verdict(None, f"{value} is not a finite number; valid: {key.bounds()}")
    if not _in_bounds(key, number):
        return _out_of_bounds(key, _number(value))
    return Verdict(number)


def _boolean(key: Key, value: object) -> Verdict:
    if not isinstance(value, bool):
        return _wrong_type(key, value)
    return Verdict(value)


def _size(key: Key, value: object) -> Verdict:
    from instrumentd.portagent.options import parse_size

    if isinstance(value, bool) or not isinstance(value, int | str):
        return _wrong_type(key, value)
    try:
        size = value if isinstance(value, int) else parse_size(value)
    except ValueError as e:
        return Verdict(None, f"{e}; valid: {key.bounds()}")
    if not _in_bounds(key, size):
        return _out_of_bounds(key, show(value))
    return Verdict(size)


def _endpoint(server: bool) -> Callable[[Key, object], Verdict]:
    def check(key: Key, value: object) -> Verdict:
        from instrumentd.portagent.options import (
            check_client_endpoint,
            check_server_endpoint,
        )

        verdict = _string(key, value)
        if verdict.problem is not None:
            return verdict
        try:
            (check_server_endpoint if server else check_client_endpoint)(str(value))
        except ValueError as e:
            side = "server" if server else "client"
            return Verdict(None, f"not a {side} endpoint string: {e}")
        return verdict

    return check


def _endpoints(key: Key, value: object) -> Verdict:
    from instrumentd.portagent.options import check_server_endpoint

    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return _wrong_type(key, value)
    kept = tuple(v for v in values if v != "none")
    problems = []
    for description in kept:
        try:
            check_server_endpoint(description)
        except ValueError as e:
            problems.append(f"{description!r} is not a server endpoint string: {e}")
    if problems:
        return Verdict(None, "; ".join(problems))
    return Verdict(kept)


def _table(key: Key, value: object) -> Verdict:
    if not isinstance(value, dict):
        return _wrong_type(key, value)
    return Verdict(value)


def _array(key: Key, value: object) -> Verdict:
    if not isinstance(value, list):
        return _wrong_type(key, value)
    return Verdict(value)


_CHECKERS: Final[dict[str, Callable[[Key, object], Verdict]]] = {
    "string": _string,
    "integer": _integer,
    "number": _float,
    "boolean": _boolean,
    "size": _size,
    "server endpoint": _endpoint(server=True),
    "client endpoint": _endpoint(server=False),
    "server endpoints": _endpoints,
    "table": _table,
    "array": _array,
}


@dataclass(frozen=True)
class Section:
    """
    The keys of one table.

    :ivar title: the table as the reference names it (``[station]``).
    :ivar keys: its keys, in the order the reference lists them.
    :ivar doc: what the table is, for the reference (Markdown), or ``""``.
    """

    title: str
    keys: tuple[Key, ...]
    doc: str = ""

    def __post_init__(self) -> None:
        names = [key.name for key in self.keys]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.title}: a key is declared twice: {names}")

    def __getitem__(self, name: str) -> Key:
        for key in self.keys:
            if key.name == name:
                return key
        raise KeyError(name)

    def names(self) -> Sequence[str]:
        """
        :returns: the names of its keys, in order.
        """
        return [key.name for key in self.keys]
