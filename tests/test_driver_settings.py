"""
The shorthands for common parameter shapes
(:mod:`instrumentd.driver.settings`).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.errors import InstrumentParameterError, ParameterRule
from instrumentd.driver.parameters import (
    Parameter,
    ParameterDictionary,
    ParameterType,
    Visibility,
)
from instrumentd.driver.settings import reading, setting

INT = ParameterType.INT


class SettingTests(SynchronousTestCase):
    """
    An operator's setting: startup when it has a default, restored after
    direct access.
    """

    def test_withDefault(self) -> None:
        """
        A default makes a startup parameter; the range is its minimum and
        maximum; it is restored after direct access.
        """
        self.assertEqual(
            setting(
                "INTERVAL", INT, "Seconds.", default=15, range=(5, 60), units="s",
                source="sample_interval", display_name="Interval",
            ),
            Parameter(
                name="INTERVAL", type=INT, description="Seconds.", default_value=15,
                minimum=5, maximum=60, units="s", source="sample_interval",
                startup=True, direct_access=True, display_name="Interval",
            ),
        )  # fmt: skip

    def test_withoutDefault(self) -> None:
        """
        Without a default it is not a startup parameter; ``restore=False``
        leaves it out of direct-access restores; other fields pass through.
        """
        declared = setting(
            "SAMPLENUM", INT, "Samples.", minimum=0, expiration=0, restore=False
        )
        self.assertEqual(
            (declared.startup, declared.direct_access, declared.minimum),
            (False, False, 0),
        )
        self.assertEqual(declared.expiration, 0)
        self.assertEqual(declared.visibility, Visibility.READ_WRITE)

    def test_startupOverridden(self) -> None:
        """
        ``startup=False`` keeps a default that is not set at startup.
        """
        self.assertFalse(setting("X", INT, "x", default=1, startup=False).startup)

    def test_badRange(self) -> None:
        """
        A range that is not two numbers, low first, is refused, named.
        """
        for bad in ((1,), (5, 1), ("a", "b"), [1, 2]):
            with self.assertRaises(ValueError) as caught:
                setting("X", INT, "x", range=bad)  # type: ignore[arg-type]
            self.assertIn("parameter X: range", str(caught.exception))

    def test_checkedAsParameter(self) -> None:
        """
        A default outside the range is refused as a :class:`Parameter`
        refuses it.
        """
        with self.assertRaises(InstrumentParameterError) as caught:
            setting("X", INT, "x", default=100, range=(0, 10))
        self.assertEqual(caught.exception.rule, ParameterRule.RANGE)

    def test_inDictionary(self) -> None:
        """
        A setting and a reading in a dictionary: startup values from the
        default, a set of the reading refused.
        """
        parameters = ParameterDictionary(clock=None)
        parameters.add(setting("A", INT, "a", default=3))
        parameters.add(reading("B", INT, "b"))
        self.assertEqual(parameters.startup_values(), {"A": 3})
        with self.assertRaises(InstrumentParameterError) as caught:
            parameters.validate_set({"B": 1})
        self.assertEqual(caught.exception.rule, ParameterRule.READ_ONLY)


class ReadingTests(SynchronousTestCase):
    """
    A value read from the instrument, read-only.
    """

    def test_readOnly(self) -> None:
        """
        Read-only, with its source, units and other fields.
        """
        declared = reading(
            "TA0", ParameterType.FLOAT, "Coefficient.", source="ta0", units="1",
            display_name="Temperature coefficient TA0",
        )  # fmt: skip
        self.assertEqual(
            declared,
            Parameter(
                name="TA0", type=ParameterType.FLOAT, description="Coefficient.",
                visibility=Visibility.READ_ONLY, source="ta0", units="1",
                display_name="Temperature coefficient TA0",
            ),
        )  # fmt: skip

    def test_notStartup(self) -> None:
        """
        A reading cannot be a startup parameter (a :class:`Parameter`
        rule).
        """
        self.assertRaises(ValueError, reading, "X", INT, "x", startup=True)
