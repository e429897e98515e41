# -*- test-case-name: tests.test_station_config -*-
"""
Reading one TOML table, key by key, into the list of problems.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

from instrumentd.station.config._errors import _Problems

T = TypeVar("T")


def _kind(value: object) -> str:
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


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_ABSENT: Final = object()


class _Table:
    """
    One TOML table being read: each read names the key path, and
    :meth:`done` reports the keys nobody read, with the valid ones.
    """

    def __init__(self, data: Mapping[str, Any], path: str, problems: _Problems) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self._known: list[str] = []

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str) -> Any:
        if name not in self._known:
            self._known.append(name)
        return self.data.get(name, _ABSENT)

    def bad(self, name: str, problem: str) -> None:
        self.problems.add(self.key(name), problem)

    def string(
        self,
        name: str,
        default: T,
        *,
        choices: Sequence[str] | None = None,
        required: str | None = None,
    ) -> str | T:
        value = self._get(name)
        if value is _ABSENT:
            if required is not None:
                self.bad(name, f"missing: {required}")
            return default
        if not isinstance(value, str):
            self.bad(name, f"must be a string, not {_kind(value)} ({_show(value)})")
            return default
        if choices is not None and value not in choices:
            self.bad(
                name, f"{value!r} is not valid; valid choices: {', '.join(choices)}"
            )
            return default
        if not value.strip():
            self.bad(name, "must not be empty")
            return default
        return value

    def integer(
        self,
        name: str,
        default: T,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        required: str | None = None,
    ) -> int | T:
        value = self._get(name)
        if value is _ABSENT:
            if required is not None:
                self.bad(name, f"missing: {required}")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(name, f"must be an integer, not {_kind(value)} ({_show(value)})")
            return default
        if (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum
        ):
            self.bad(
                name, f"{value} is out of range; valid: {_range(minimum, maximum)}"
            )
            return default
        return value

    def number(
        self,
        name: str,
        default: T,
        *,
        minimum: float | None = None,
        above: float | None = None,
    ) -> float | T:
        value = self._get(name)
        if value is _ABSENT:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.bad(name, f"must be a number, not {_kind(value)} ({_show(value)})")
            return default
        number = float(value)
        if not math.isfinite(number):
            self.bad(name, f"{value} is not a finite number")
            return default
        if minimum is not None and number < minimum:
            self.bad(name, f"{value} is too small; valid: at least {minimum:g}")
            return default
        if above is not None and number <= above:
            self.bad(name, f"{value} is too small; valid: more than {above:g}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is _ABSENT:
            return default
        if not isinstance(value, bool):
            self.bad(
                name,
                f"must be true or false, not {_kind(value)} ({_show(value)})",
            )
            return default
        return value

    def size(self, name: str, default: int, *, minimum: int = 0) -> int:
        from instrumentd.portagent.options import parse_size

        value = self._get(name)
        if value is _ABSENT:
            return default
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.bad(
                name,
                f'must be a size: bytes or text like "4MiB", not {_kind(value)}',
            )
            return default
        try:
            size = value if isinstance(value, int) else parse_size(value)
        except ValueError as e:
            self.bad(name, str(e))
            return default
        if size < minimum:
            self.bad(
                name, f"{_show(value)} is too small; valid: at least {minimum} bytes"
            )
            return default
        return size

    def table(self, name: str, *, required: str | None = None) -> _Table | None:
        value = self._get(name)
        if value is _ABSENT:
            if required is not None:
                self.bad(name, f"missing: {required}")
            return None
        if not isinstance(value, dict):
            self.bad(name, f"must be a table, not {_kind(value)} ({_show(value)})")
            return None
        return _Table(value, self.key(name), self.problems)

    def raw_table(self, name: str) -> dict[str, Any] | None:
        value = self._get(name)
        if value is _ABSENT:
            return {}
        if not isinstance(value, dict):
            self.bad(name, f"must be a table, not {_kind(value)} ({_show(value)})")
            return None
        return value

    def raw(self, name: str) -> Any:
        return self._get(name)

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self._known]
        for name in unknown:
            close = _closest(name, self._known)
            hint = f" (did you mean {close!r}?)" if close else ""
            self.bad(
                name,
                f"unknown key{hint}; valid keys here: {', '.join(self._known)}",
            )


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{minimum} to {maximum}"
    if minimum is not None:
        return f"at least {minimum}"
    return f"at most {maximum}"


def _closest(name: str, known: Sequence[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    return found[0] if found else None


def _check_server(table: _Table, name: str, description: str) -> bool:
    from instrumentd.portagent.options import check_server_endpoint

    try:
        check_server_endpoint(description)
    except ValueError as e:
        table.bad(name, f"not a server endpoint string: {e}")
        return False
    return True


def _check_client(table: _Table, name: str, description: str) -> bool:
    from instrumentd.portagent.options import check_client_endpoint

    try:
        check_client_endpoint(description)
    except ValueError as e:
        table.bad(name, f"not a client endpoint string: {e}")
        return False
    return True


def _name_problem(name: str) -> str:
    return (
        f"{name!r} is not a valid name: 1-128 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit (names are used in file names and URLs)"
    )
