"""
Tests for L{instrumentd.gcfreeze}: the objects frozen out of the garbage
collector's reach are counted as they are frozen; full collections can be
held off while a process starts.  The freezing is done in
child Pythons (it would change the test runner's own collector).
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.gcfreeze import HELD_THRESHOLD
from tests.test_portagent_tuning import python_in_child


def _in_child(code: str) -> object:
    """
    Run ``code`` in a child Python; it prints one JSON document, returned.
    """
    return json.loads(python_in_child(code))


class FrozenCountTests(SynchronousTestCase):
    """
    L{frozen_objects} counts the objects frozen as they are frozen.
    """

    def test_counted(self) -> None:
        """
        L{frozen_objects} is what the freezes counted, without a walk of
        the frozen objects: as many as L{gc.get_freeze_count} finds while
        none has been freed, and the same afterwards.
        """
        found = _in_child(
            "import gc, json\n"
            "from instrumentd.gcfreeze import "
            "freeze_startup_objects, frozen_objects\n"
            "kept = [[n] for n in range(5000)]\n"
            "freeze_startup_objects()\n"
            "first = (frozen_objects(), gc.get_freeze_count())\n"
            "more = [[n] for n in range(3000)]\n"
            "total = freeze_startup_objects()\n"
            "second = (total, frozen_objects(), gc.get_freeze_count())\n"
            "gc.get_freeze_count = None\n"
            "print(json.dumps([first, second, frozen_objects()]))\n"
        )
        assert isinstance(found, list)
        (counted, walked), (total, counted_after, walked_after), last = found
        self.assertEqual(counted, walked)
        self.assertGreater(counted, 5000)
        self.assertEqual(total, counted_after)
        self.assertEqual(counted_after, walked_after)
        self.assertGreater(counted_after, counted + 3000)
        self.assertEqual(last, counted_after)


class HoldTests(SynchronousTestCase):
    """
    L{hold_full_collections} keeps generation 2's collections off until
    released.
    """

    def test_held(self) -> None:
        """
        While held, objects that live long pile up without a full
        collection (they would trigger several); released, the threshold
        is as before and full collections run again.  The younger
        generations are collected all along.
        """
        found = _in_child(
            "import gc, json\n"
            "from instrumentd.gcfreeze import hold_full_collections\n"
            "def stats():\n"
            "    return [g['collections'] for g in gc.get_stats()]\n"
            "threshold = gc.get_threshold()\n"
            "release = hold_full_collections()\n"
            "held = gc.get_threshold()\n"
            "before = stats()\n"
            "kept = [[n] for n in range(300000)]\n"
            "during = [a - b for a, b in zip(stats(), before)]\n"
            "release()\n"
            "released = gc.get_threshold()\n"
            "before = stats()\n"
            "more = [[n] for n in range(300000)]\n"
            "after = [a - b for a, b in zip(stats(), before)]\n"
            "print(json.dumps([threshold, held, during, released, after]))\n"
        )
        assert isinstance(found, list)
        threshold, held, during, released, after = found
        self.assertEqual(held, [*threshold[:2], HELD_THRESHOLD])
        young, middle, full = during
        self.assertEqual(full, 0)
        self.assertGreater(young, 100)
        self.assertGreater(middle, 10)
        self.assertEqual(released, threshold)
        self.assertGreater(after[2], 0)

    def test_nested(self) -> None:
        """
        Holds nest: the threshold comes back with the last release; a
        release called twice counts once; a threshold someone set
        meanwhile is left alone.
        """
        found = _in_child(
            "import gc, json\n"
            "from instrumentd.gcfreeze import hold_full_collections\n"
            "seen = [gc.get_threshold()[2]]\n"
            "first = hold_full_collections()\n"
            "second = hold_full_collections()\n"
            "first(); first()\n"
            "seen.append(gc.get_threshold()[2])\n"
            "second()\n"
            "seen.append(gc.get_threshold()[2])\n"
            "third = hold_full_collections()\n"
            "gc.set_threshold(700, 10, 20)\n"
            "third()\n"
            "seen.append(gc.get_threshold()[2])\n"
            "print(json.dumps(seen))\n"
        )
        self.assertEqual(found, [10, HELD_THRESHOLD, 10, 20])
