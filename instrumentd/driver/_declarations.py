"""
What the command and parameter dictionaries share: named declarations,
kept in the order they were made.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class _Named(Protocol):
    @property
    def name(self) -> str: ...


NamedT = TypeVar("NamedT", bound=_Named)


class Declarations(Generic[NamedT]):
    """
    Named declarations of one kind, in declaration order.  Iterating yields
    the declarations; ``in`` tests a name.

    :cvar kind: what is declared (``"command"``, ``"parameter"``), for
        messages.
    """

    kind = "declaration"

    def __init__(self) -> None:
        self._declared: dict[str, NamedT] = {}

    def _declare(self, item: NamedT) -> NamedT:
        if item.name in self._declared:
            raise ValueError(f"{self.kind} {item.name} is declared twice")
        self._declared[item.name] = item
        return item

    def __contains__(self, name: object) -> bool:
        return name in self._declared

    def __iter__(self) -> Iterator[NamedT]:
        return iter(self._declared.values())

    def __len__(self) -> int:
        return len(self._declared)

    def names(self) -> list[str]:
        """
        :returns: the names, in declaration order.
        """
        return list(self._declared)
