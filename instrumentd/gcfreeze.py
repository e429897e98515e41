# -*- test-case-name: tests.test_portagent_tuning -*-
"""
Objects made at start-up, out of the garbage collector's reach.

A long-running process of ours (a station, a port agent, a simulator
fleet) makes most of its objects once, at start-up, and keeps them: the
modules, the drivers and agents, their parameters and state.  CPython's
collector walks every tracked object on each full collection, and
triggers one whenever a quarter as many new long-lived objects have
piled up, so a station of 3,000 instruments spent about half a second on
each of some twenty full collections in a minute and a half, 14 % of its
CPU.  :func:`freeze_startup_objects` collects once and then moves every
object alive into the permanent generation (:func:`gc.freeze`): they are
freed by reference counting as before, and later collections walk only
what was made since.

A station of thousands of instruments makes most of those objects while
they come up, over a minute or more, and the collector's full walks of
them then cost as much as everything else start-up does (5.4 of 25 s of
CPU for 1,500 instruments).  :class:`GrowingFreeze` freezes as start-up
goes, a step of instruments at a time, so no full collection walks more
than a step's worth.

How many objects are frozen is counted as they are frozen
(:func:`frozen_objects`), never with :func:`gc.get_freeze_count`, which
walks every frozen object: a station's statistics asked it for each
in-process agent, and a start-up of 1,500 instruments spent two thirds of
its CPU there once the freezing was progressive.
"""

from __future__ import annotations

import gc

__all__ = [
    "GrowingFreeze",
    "freeze_startup_objects",
    "freeze_young_survivors",
    "frozen_objects",
]

#: Objects frozen by this module's functions in this process, counted as
#: they were frozen.
_frozen = [0]


def frozen_objects() -> int:
    """
    :returns: how many objects this process has frozen, counted when they
        were frozen (some may have been freed since); no walk of them.
    """
    return _frozen[0]


def _freeze() -> int:
    # Only the objects not yet frozen are listed (gc.get_objects leaves
    # the permanent generation out), so this costs what is new.
    _frozen[0] += len(gc.get_objects())
    gc.freeze()
    return _frozen[0]


def freeze_startup_objects() -> int:
    """
    Collect garbage once, then exempt every object alive now from later
    collections (see the module's text).

    :returns: the number of objects this process has frozen so far.
    """
    gc.collect()
    return _freeze()


def freeze_young_survivors() -> None:
    """
    Collect the young generations (cheap: at most a few thousand objects),
    then freeze everything alive.

    The garbage this leaves behind is only cycles that had already aged
    into the oldest generation; they stay frozen (a few bytes an instrument)
    rather than cost a full collection to find.
    """
    gc.collect(1)
    _freeze()


class GrowingFreeze:
    """
    Freezes a process's objects a step at a time while it grows.

    :ivar steps: how many times it has frozen.
    """

    def __init__(self, every: int) -> None:
        """
        :param every: how many :meth:`grown` calls make a step, at least 1.
        :raises ValueError: for ``every`` below 1.
        """
        if every < 1:
            raise ValueError(f"every must be at least 1, not {every}")
        self._every = every
        self._grown = 0
        self.steps = 0

    def grown(self) -> None:
        """
        One more unit (an instrument brought up) is made; freeze at each
        step.
        """
        self._grown += 1
        if self._grown % self._every == 0:
            freeze_young_survivors()
            self.steps += 1
