# -*- test-case-name: tests.test_station_config -*-
"""
The error a station configuration that cannot be used raises, and the
list of problems it is built from.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(ValueError):
    """
    A station configuration that cannot be used; nothing was started.

    :ivar source: the file (or ``<demo>``, ``<string>``).
    :ivar problems: ``(key path, problem)`` pairs, in the order found.
    """

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        """
        :param source: the file the configuration came from.
        :param problems: ``(key path, problem)`` pairs; at least one.
        """
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {key}: {problem}" for key, problem in self.problems]
        count = len(lines)
        heading = (
            f"{source}: the station configuration has {count} problems; "
            "nothing was started:\n"
            if count > 1
            else ""
        )
        super().__init__(heading + "\n".join(lines))


class Problems:
    """
    Collects problems, so one run reports every one of them.

    :ivar found: ``(key path, problem)`` pairs, in the order found.
    """

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, key: str, problem: str) -> None:
        """
        Note a problem.

        :param key: its key path (``instruments[0].connection.port``).
        :param problem: what is wrong, and what would be valid.
        """
        self.found.append((key, problem))

    def __len__(self) -> int:
        return len(self.found)
