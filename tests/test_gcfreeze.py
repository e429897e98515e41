"""
Tests for L{instrumentd.gcfreeze}: objects frozen out of the garbage
collector's reach, at once or a step at a time as a process grows.  The
freezing is done in child Pythons (it would change the test runner's own
collector).
"""

from __future__ import annotations

import json
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.gcfreeze import GrowingFreeze


def _in_child(code: str) -> object:
    """
    Run ``code`` in a child Python; it prints one JSON document, returned.
    """
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return json.loads(out)


class GrowingFreezeTests(SynchronousTestCase):
    """
    L{GrowingFreeze} freezes at each step of growth, not between.
    """

    def test_steps(self) -> None:
        """
        With a step of two, nothing is frozen after the first unit, all
        that is alive after the second, and what the third made stays within
        the collector's reach until the fourth.
        """
        counts = _in_child(
            "import gc, json\n"
            "from instrumentd.gcfreeze import GrowingFreeze\n"
            "freezing = GrowingFreeze(2)\n"
            "kept, counts = [], []\n"
            "for unit in range(4):\n"
            "    kept.append([[unit] for _ in range(1000)])\n"
            "    freezing.grown()\n"
            "    counts.append(gc.get_freeze_count())\n"
            "print(json.dumps({'counts': counts, 'steps': freezing.steps}))\n"
        )
        assert isinstance(counts, dict)
        first, second, third, fourth = counts["counts"]
        self.assertEqual(first, 0)
        self.assertGreater(second, 2000)
        self.assertEqual(third, second)
        self.assertGreater(fourth, third + 1000)
        self.assertEqual(counts["steps"], 2)

    def test_youngGarbageCollected(self) -> None:
        """
        Cycles that died young are collected before a step freezes, not
        frozen with the living.
        """
        found = _in_child(
            "import gc, json, weakref\n"
            "from instrumentd.gcfreeze import GrowingFreeze\n"
            "class Node: pass\n"
            "a, b = Node(), Node()\n"
            "a.other, b.other = b, a\n"
            "gone = weakref.ref(a)\n"
            "del a, b\n"
            "GrowingFreeze(1).grown()\n"
            "print(json.dumps(gone() is None))\n"
        )
        self.assertIs(found, True)

    def test_counted(self) -> None:
        """
        L{frozen_objects} is what the freezes counted, without a walk of
        the frozen objects: as many as L{gc.get_freeze_count} finds while
        none has been freed, and the same afterwards.
        """
        found = _in_child(
            "import gc, json\n"
            "from instrumentd.gcfreeze import GrowingFreeze, "
            "freeze_startup_objects, frozen_objects\n"
            "freezing = GrowingFreeze(1)\n"
            "kept = [[n] for n in range(5000)]\n"
            "freezing.grown()\n"
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

    def test_badStep(self) -> None:
        """
        A step below one is refused, naming the value.
        """
        with self.assertRaises(ValueError) as caught:
            GrowingFreeze(0)
        self.assertIn("not 0", str(caught.exception))
