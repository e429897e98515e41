# -*- test-case-name: tests.test_gcfreeze,tests.test_portagent_tuning -*-
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

How many objects are frozen is counted as they are frozen
(:func:`frozen_objects`), never with :func:`gc.get_freeze_count`, which
walks every frozen object: a station's statistics asked it for each
in-process agent, and a start-up of 1,500 instruments spent two thirds of
its CPU there while the station was tried freezing a step of instruments
at a time.  (That was dropped: with the count fixed it brought 1,500
instruments up in 22.8 s against 15.6 s freezing once, in one pair of
runs; the garbage frozen with each step nearly doubled what was frozen.)
"""

from __future__ import annotations

import gc
from collections.abc import Callable

__all__ = [
    "HELD_THRESHOLD",
    "freeze_startup_objects",
    "frozen_objects",
    "hold_full_collections",
]

#: Generation 2's threshold while full collections are held: the count it
#: is compared with grows by one a collection of generation 1, so it is
#: never reached.
HELD_THRESHOLD = 1 << 30

#: Objects frozen by this module's functions in this process, counted as
#: they were frozen.
_frozen = [0]


#: How many holds are not released, and generation 2's threshold before
#: the first of them.
_holds = [0]
_saved_threshold = [0]


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


def hold_full_collections() -> Callable[[], None]:
    """
    Keep the collector's full (generation 2) collections off until the
    function returned is called (see the module's text); the younger
    generations are collected as before, and :func:`gc.collect` still
    collects everything.

    Holds nest (several stations in one process, as in tests): the
    threshold comes back when the last is released, unless someone set
    another meanwhile.

    :returns: the release, which may be called more than once.
    """
    if _holds[0] == 0:
        young, middle, old = gc.get_threshold()
        _saved_threshold[0] = old
        gc.set_threshold(young, middle, HELD_THRESHOLD)
    _holds[0] += 1
    released = [False]

    def release() -> None:
        if released[0]:
            return
        released[0] = True
        _holds[0] -= 1
        if _holds[0] == 0:
            young, middle, old = gc.get_threshold()
            if old == HELD_THRESHOLD:
                gc.set_threshold(young, middle, _saved_threshold[0])

    return release
