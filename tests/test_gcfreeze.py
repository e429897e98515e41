"""
Tests for L{instrumentd.gcfreeze}: the objects frozen out of the garbage
collector's reach are counted as they are frozen.  The freezing is done in
child Pythons (it would change the test runner's own collector).
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

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
