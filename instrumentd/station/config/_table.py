# -*- test-case-name: tests.test_station_config -*-
"""
Reading one TOML table against its declared :class:`Section`: every key
is checked, and every problem goes to the one list, named by its key
path, so a single run reports them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Final

from instrumentd.station.config._errors import Problems
from instrumentd.station.config.schema import REQUIRED, Key, Section

__all__ = ["ABSENT", "Table"]

#: What :meth:`Table.raw` gives for a key the table does not hold.
ABSENT: Final = object()


class Table:
    """
    One TOML table being read.

    :param data: the table.
    :param path: its key path (``instruments[2].connection``), ``""`` at
        the top.
    :param problems: where problems go.
    :param section: its declared keys.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        path: str,
        problems: Problems,
        section: Section,
    ) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.section = section

    def key(self, name: str) -> str:
        """
        :returns: the key path of ``name`` in this table.
        """
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        """
        :returns: whether the table holds ``name``.
        """
        return name in self.data

    def raw(self, name: str) -> Any:
        """
        :returns: the value as written, or :data:`ABSENT`.
        """
        return self.data.get(name, ABSENT)

    def bad(self, name: str, problem: str) -> None:
        """
        Note a problem with key ``name``.
        """
        self.problems.add(self.key(name), problem)

    def read(self, name: str, *, require: bool = True) -> Any:
        """
        Check and read one declared key.

        :param name: the key.
        :param require: whether a required key that is absent is a
            problem (not when it is not known yet what is required).
        :returns: its value (converted as its kind says), its default when
            absent, or ``None`` when it is refused or missing.
        """
        return self.read_key(self.section[name], require=require)

    def read_key(self, key: Key, *, require: bool = True) -> Any:
        """
        Check and read ``key``, which need not belong to this table's
        section.

        :returns: as :meth:`read`.
        """
        value = self.data.get(key.name, ABSENT)
        if value is ABSENT:
            if key.default is REQUIRED:
                if require:
                    self.bad(key.name, key.missing())
                return None
            return key.default
        verdict = key.check_value(value)
        if verdict.problem is not None:
            self.bad(key.name, verdict.problem)
            return None
        return verdict.value

    def read_all(self, *, require: bool = True) -> dict[str, Any]:
        """
        Check every declared key, whatever becomes of the others.

        :returns: name → what :meth:`read` gives.
        """
        return {
            key.name: self.read_key(key, require=require) for key in self.section.keys
        }

    def table(self, name: str, section: Section, value: object = ABSENT) -> Table:
        """
        The table at key ``name``, checked as ``section``: empty if it is
        absent or refused (a refusal is a problem already).

        :param value: the value :meth:`read` gave, if it was read already
            (reading it again would report its problem twice).
        """
        if value is ABSENT:
            value = self.read(name)
        return Table(
            value if isinstance(value, dict) else {},
            self.key(name),
            self.problems,
            section,
        )

    def done(self, also: Sequence[str] = ()) -> None:
        """
        Report every key the table holds that its section does not declare,
        with the valid ones and a likely meant one.

        :param also: further keys that are valid here.
        """
        known = [*self.section.names(), *also]
        for name in self.data:
            if name in known:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.bad(name, f"unknown key{hint}; valid keys here: {', '.join(known)}")

    def read_untyped(self, sections: Sequence[Section], skip: str = "type") -> None:
        """
        Check a table whose type is unknown (missing or refused) as well as
        can be: each key against the first of ``sections`` that declares
        it, none of them required, and keys none declares as unknown.

        :param sections: the sections of every type.
        :param skip: the type key, already read.
        """
        declared: dict[str, Key] = {}
        for section in sections:
            for key in section.keys:
                declared.setdefault(key.name, key)
        for name in self.data:
            if name == skip:
                continue
            if name in declared:
                self.read_key(declared[name], require=False)
        Table(
            {name: value for name, value in self.data.items() if name not in declared},
            self.path,
            self.problems,
            Section(self.section.title, tuple(declared.values())),
        ).done()
