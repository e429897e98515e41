# -*- test-case-name: tests.test_driver_particles_reading -*-
"""
How a :class:`~instrumentd.driver.particles.RegexDataParticle` reads its
pattern's match, worked out once per class rather than per record: the
plan (each named group's name, index and converter), the reading the
framework's fast path keeps (:class:`_Reading`), and the function that
converts a match's groups in one list display.

Private to :mod:`instrumentd.driver`: driver writers declare a pattern
and converters, and these follow from them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from instrumentd.driver.particles import RegexDataParticle


def _plan(
    cls: type[RegexDataParticle],
) -> tuple[tuple[str, int, Callable[[str], object] | None], ...]:
    """
    How a class reads its pattern's match: for each named group, in the
    order of the groups, its name, its index in ``match.groups()`` and its
    converter (``None`` to keep the text).  Worked out once per class (and
    again if its pattern or converters are replaced), not per record.
    """
    pattern, converters = cls.pattern, cls.converters
    # Kept in the class's own namespace (a subclass with another pattern
    # works out its own), checked against the pattern and converters it
    # was worked out from.
    known = cls.__dict__.get("_regex_plan")
    if known is not None and known[0] is pattern and known[1] is converters:
        return known[2]  # type: ignore[no-any-return]
    groups = pattern.groupindex
    plan = tuple(
        (name, groups[name] - 1, converters.get(name))
        for name in sorted(groups, key=lambda group: groups[group])
    )
    type.__setattr__(cls, "_regex_plan", (pattern, converters, plan))
    return plan


class _Reading(NamedTuple):
    """
    How a :class:`RegexDataParticle` that keeps the framework's reading
    reads a record: its pattern as text (matched against the record
    decoded as Latin-1), one converter per group (``None`` keeps the
    text), which groups are values (``None``: all, in order), their ids,
    and where the internal time is among the values.
    """

    text_pattern: re.Pattern[str]
    converters_by_group: tuple[Callable[[str], object] | None, ...]
    keep: tuple[int, ...] | None
    names: tuple[str, ...]
    internal: int | None
    convert: Callable[[Sequence[str | None]], list[object]]


def _group_converter(
    converters: Sequence[Callable[[str], object] | None],
) -> Callable[[Sequence[str | None]], list[object]]:
    """
    A function from a match's groups to the values: each group's text
    through its converter, ``None`` (a group that took no part) and groups
    without one as they are.  Written out as one list display for the
    groups of this pattern (the way :mod:`dataclasses` writes its
    ``__init__``): a loop over the groups costs a sample line more than
    its conversions do.

    :param converters: one per group, ``None`` to keep the text.
    :returns: the function.
    """
    names: dict[str, object] = {}
    items = []
    for index, convert in enumerate(converters):
        if convert is None:
            items.append(f"texts[{index}]")
        else:
            names[f"convert_{index}"] = convert
            items.append(
                f"(None if (text := texts[{index}]) is None else convert_{index}(text))"
            )
    source = f"def convert(texts):\n    return [{', '.join(items)}]\n"
    # The source holds only indexes and names made here: no text from a
    # driver or a record.
    exec(source, names)
    return names["convert"]  # type: ignore[return-value]
