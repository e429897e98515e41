"""
Tests for L{instrumentd.driver.parameters}: declarations, reading values out
of instrument text, staleness, set validation, real changes, startup and
direct-access values, and metadata.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import Enum

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.errors import InstrumentParameterError, ParameterRule
from instrumentd.driver.parameters import (
    Parameter,
    ParameterDictionary,
    ParameterType,
    Visibility,
)

STATUS = """\
SBE37-SMP V 2.6  SERIAL NO. 2165   05 Feb 2013  19:17:04
sample interval = 15 seconds
output format = converted
transmit real-time = yes
pressure sensor range = 1000.0 psia
"""


class Mode(Enum):
    """
    An instrument mode, to test parameters whose values are enum members.
    """

    POLLED = "polled"
    AUTONOMOUS = "autonomous"


def make_dictionary(clock: Clock) -> ParameterDictionary:
    """
    A dictionary with one parameter of each kind that matters.
    """
    parameters = ParameterDictionary(clock)
    parameters.add(
        Parameter(
            name="INTERVAL",
            type=ParameterType.INT,
            minimum=1,
            maximum=32767,
            units="s",
            startup=True,
            default_value=1,
            direct_access=True,
            pattern=r"sample interval = (\d+) seconds",
            format="INTERVAL={value}",
            expiration=60,
            description="Time between samples in autosample.",
        )
    )
    parameters.add(
        Parameter(
            name="TXREALTIME",
            type=ParameterType.BOOL,
            startup=True,
            default_value=True,
            direct_access=True,
            pattern=r"transmit real-time = (\w+)",
            format=lambda value: "TXREALTIME=" + ("Y" if value else "N"),
        )
    )
    parameters.add(
        Parameter(
            name="SERIAL",
            type=ParameterType.STRING,
            visibility=Visibility.READ_ONLY,
            pattern=re.compile(r"SERIAL NO\. (\d+)"),
        )
    )
    parameters.add(
        Parameter(
            name="BAUD",
            type=ParameterType.INT,
            visibility=Visibility.IMMUTABLE,
            allowed_values=[1200, 2400, 4800, 9600, 19200],
            startup=True,
        )
    )
    parameters.add(
        Parameter(
            name="FORMAT",
            type=ParameterType.ENUM,
            allowed_values=["raw", "converted"],
            pattern=r"output format = (\w+)",
        )
    )
    parameters.add(
        Parameter(
            name="PRANGE",
            type=ParameterType.FLOAT,
            visibility=Visibility.READ_ONLY,
            pattern=r"pressure sensor range = ([\d.]+) psia",
            units="psia",
        )
    )
    parameters.add(
        Parameter(name="MODE", type=ParameterType.ENUM, allowed_values=list(Mode))
    )
    parameters.add(Parameter(name="CLOCK", type=ParameterType.DATETIME, expiration=0))
    parameters.add(Parameter(name="CHANNELS", type=ParameterType.LIST))
    return parameters


class ParameterDeclarationTests(SynchronousTestCase):
    """
    Tests for L{Parameter} declarations.
    """

    def test_displayName(self) -> None:
        """
        The display name defaults to the name.
        """
        parameter = Parameter(name="INTERVAL", type=ParameterType.INT)
        self.assertEqual("INTERVAL", parameter.display_name)
        named = Parameter(name="NAVG", type=ParameterType.INT, display_name="Averages")
        self.assertEqual("Averages", named.display_name)

    def test_badDeclarations(self) -> None:
        """
        Declarations that cannot work are refused when made: a pattern with
        no group, an enum with no allowed values, a read-only startup
        parameter, a default breaking the parameter's own rules, a name
        declared twice.
        """
        self.assertRaises(
            ValueError, Parameter, name="A", type=ParameterType.INT, pattern=r"A=\d+"
        )
        self.assertRaises(ValueError, Parameter, name="B", type=ParameterType.ENUM)
        self.assertRaises(
            ValueError,
            Parameter,
            name="C",
            type=ParameterType.INT,
            visibility=Visibility.READ_ONLY,
            startup=True,
        )
        self.assertRaises(
            InstrumentParameterError,
            Parameter,
            name="D",
            type=ParameterType.INT,
            maximum=10,
            default_value=11,
        )
        parameters = ParameterDictionary(Clock())
        parameters.add(Parameter(name="E", type=ParameterType.INT))
        self.assertRaises(
            ValueError, parameters.add, Parameter(name="E", type=ParameterType.INT)
        )

    def test_addAll(self) -> None:
        """
        C{add_all} declares several parameters in order, each unread, as
        C{add} does one by one; a name declared twice is refused.
        """
        parameters = ParameterDictionary(Clock())
        first = Parameter(name="F", type=ParameterType.INT)
        second = Parameter(name="G", type=ParameterType.BOOL)
        parameters.add_all((first, second))
        self.assertEqual(parameters.names(), ["F", "G"])
        self.assertIs(parameters.parameter("G"), second)
        self.assertEqual(parameters.stale(), ["F", "G"])
        self.assertIsNone(parameters.get("F"))
        self.assertRaises(
            ValueError,
            parameters.add_all,
            [Parameter(name="H", type=ParameterType.INT), first],
        )

    def test_dictionaryContents(self) -> None:
        """
        The dictionary lists, counts and finds its parameters.
        """
        parameters = make_dictionary(Clock())
        self.assertEqual(9, len(parameters))
        self.assertIn("SERIAL", parameters)
        self.assertNotIn("NOPE", parameters)
        self.assertEqual(parameters.names(), [p.name for p in parameters])
        self.assertEqual(ParameterType.BOOL, parameters.parameter("TXREALTIME").type)


class UpdateTests(SynchronousTestCase):
    """
    Tests for reading values out of instrument text.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.parameters = make_dictionary(self.clock)

    def test_update(self) -> None:
        """
        Every parameter whose pattern is found takes its converted value,
        and the first reading counts as a change.
        """
        changes = self.parameters.update(STATUS)
        expected = {
            "INTERVAL": 15,
            "TXREALTIME": True,
            "SERIAL": "2165",
            "FORMAT": "converted",
            "PRANGE": 1000.0,
        }
        self.assertEqual(expected, changes)
        self.assertEqual(expected["INTERVAL"], self.parameters.get("INTERVAL"))
        self.assertIsNone(self.parameters.get("BAUD"))

    def test_readTime(self) -> None:
        """
        The time each value was read is recorded from the clock; values not
        found keep no time.
        """
        self.parameters.update(STATUS)
        self.assertEqual(1000, self.parameters.read_time("INTERVAL"))
        self.assertIsNone(self.parameters.read_time("BAUD"))

    def test_onlyRealChanges(self) -> None:
        """
        Reading the same values again is no change; a different value is.
        """
        self.parameters.update(STATUS)
        self.assertEqual({}, self.parameters.update(STATUS))
        self.assertEqual(
            {"INTERVAL": 30},
            self.parameters.update(STATUS.replace("= 15 seconds", "= 30 seconds")),
        )

    def test_someNames(self) -> None:
        """
        C{update} can be limited to some parameters.
        """
        self.assertEqual(
            {"SERIAL": "2165"}, self.parameters.update(STATUS, names=["SERIAL"])
        )
        self.assertIsNone(self.parameters.get("INTERVAL"))

    def test_unreadableValue(self) -> None:
        """
        A value that cannot be converted is logged as a warning naming the
        parameter; the old value stays and the rest of the text is read.
        """
        self.parameters.update(STATUS)
        with capturedLogs() as events:
            changes = self.parameters.update(
                STATUS.replace("real-time = yes", "real-time = maybe").replace(
                    "= 15 seconds", "= 20 seconds"
                )
            )
        self.assertEqual({"INTERVAL": 20}, changes)
        self.assertTrue(self.parameters.get("TXREALTIME"))
        self.assertEqual(["TXREALTIME"], [e["parameter"] for e in events])

    def test_unknownName(self) -> None:
        """
        Asking for an unknown parameter names it and lists the known ones.
        """
        error = self.assertRaises(InstrumentParameterError, self.parameters.get, "NOPE")
        self.assertEqual(ParameterRule.UNKNOWN, error.rule)
        self.assertIn("INTERVAL, TXREALTIME, SERIAL", str(error))


class StalenessTests(SynchronousTestCase):
    """
    Tests for L{ParameterDictionary.is_stale}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.parameters = make_dictionary(self.clock)

    def test_neverRead(self) -> None:
        """
        A value never read is stale.
        """
        self.assertTrue(self.parameters.is_stale("SERIAL"))

    def test_noExpiration(self) -> None:
        """
        Without an expiration, a value once read stays fresh.
        """
        self.parameters.update(STATUS)
        self.clock.advance(10**6)
        self.assertFalse(self.parameters.is_stale("SERIAL"))

    def test_expiration(self) -> None:
        """
        A value is stale once older than its expiration.
        """
        self.parameters.update(STATUS)
        self.clock.advance(59)
        self.assertFalse(self.parameters.is_stale("INTERVAL"))
        self.clock.advance(1)
        self.assertTrue(self.parameters.is_stale("INTERVAL"))
        self.assertEqual(["INTERVAL"], self.parameters.stale(["INTERVAL", "SERIAL"]))

    def test_zeroExpiration(self) -> None:
        """
        An expiration of 0 means a get always reads again.
        """
        self.parameters.apply({"CLOCK": datetime(2013, 2, 5)})
        self.assertTrue(self.parameters.is_stale("CLOCK"))


class ValidateSetTests(SynchronousTestCase):
    """
    Tests for L{ParameterDictionary.validate_set}.
    """

    def setUp(self) -> None:
        self.parameters = make_dictionary(Clock())

    def _refused(
        self, values: dict[str, object], startup: bool = False
    ) -> InstrumentParameterError:
        return self.assertRaises(
            InstrumentParameterError, self.parameters.validate_set, values, startup
        )

    def test_coerced(self) -> None:
        """
        Values come back in each parameter's type; unambiguous text and
        numbers are converted.
        """
        self.assertEqual(
            {
                "INTERVAL": 10,
                "TXREALTIME": False,
                "FORMAT": "raw",
                "CLOCK": datetime(2013, 2, 5, 19, 16, 59),
                "CHANNELS": ["T", "C"],
            },
            self.parameters.validate_set(
                {
                    "INTERVAL": "10",
                    "TXREALTIME": "no",
                    "FORMAT": "raw",
                    "CLOCK": "2013-02-05T19:16:59",
                    "CHANNELS": ("T", "C"),
                }
            ),
        )
        self.assertEqual(
            {"INTERVAL": 2}, self.parameters.validate_set({"INTERVAL": 2.0})
        )
        self.assertIsInstance(
            self.parameters.validate_set({"INTERVAL": 2.0})["INTERVAL"], int
        )

    def test_changesNothing(self) -> None:
        """
        Validation records no value.
        """
        self.parameters.validate_set({"INTERVAL": 10})
        self.assertIsNone(self.parameters.get("INTERVAL"))

    def test_readOnly(self) -> None:
        """
        A read-only parameter is refused, even at startup.
        """
        error = self._refused({"SERIAL": "1"}, startup=True)
        self.assertEqual(("SERIAL", "read_only"), (error.parameter, error.rule))
        self.assertEqual("parameter SERIAL: is read-only", str(error))

    def test_immutable(self) -> None:
        """
        An immutable parameter is refused except while applying the startup
        configuration.
        """
        error = self._refused({"BAUD": 9600})
        self.assertEqual(ParameterRule.IMMUTABLE, error.rule)
        self.assertIn("startup", str(error))
        self.assertEqual(
            {"BAUD": 9600}, self.parameters.validate_set({"BAUD": 9600}, startup=True)
        )

    def test_wrongType(self) -> None:
        """
        A value not of the parameter's type is refused with the C{type}
        rule; a bool is not taken for an int.
        """
        for values in (
            {"INTERVAL": "ten"},
            {"INTERVAL": True},
            {"CHANNELS": "T"},
            {"TXREALTIME": "maybe"},
        ):
            error = self._refused(values)
            self.assertEqual(ParameterRule.TYPE, error.rule, values)
        self.assertIn("expected type int", str(self._refused({"INTERVAL": "ten"})))

    def test_range(self) -> None:
        """
        A value outside the range is refused with the C{range} rule; the
        message gives the bound and the units.
        """
        below = self._refused({"INTERVAL": 0})
        above = self._refused({"INTERVAL": 32768})
        self.assertEqual(
            (ParameterRule.RANGE, ParameterRule.RANGE), (below.rule, above.rule)
        )
        self.assertEqual(
            "parameter INTERVAL: 32768 is above the maximum 32767 s", str(above)
        )
        self.assertIn("below the minimum 1 s", str(below))

    def test_notFinite(self) -> None:
        """
        NaN and infinities, as numbers or as text, are refused with the
        C{range} rule: NaN compares false with every bound, so a range
        check alone lets it through.
        """
        from instrumentd.driver._values import ParameterType, ValueRefused, check_value

        for value in (float("nan"), "nan", float("inf"), "-Infinity", "1e999"):
            refused = self.assertRaises(
                ValueRefused,
                check_value,
                ParameterType.FLOAT,
                value,
                minimum=0.0,
                maximum=10.0,
            )
            self.assertEqual(refused.rule, ParameterRule.RANGE)
            self.assertIn("not a finite number", refused.detail)
        self.assertEqual(check_value(ParameterType.FLOAT, "2.5", maximum=10.0), 2.5)

    def test_intBeyond64Bits(self) -> None:
        """
        An integer beyond 64 bits (1e300 given for an int with no declared
        bound) is refused with the C{range} rule.
        """
        from instrumentd.driver._values import ParameterType, ValueRefused, check_value

        for value in (1e300, 2**63, "-9223372036854775808"):
            refused = self.assertRaises(
                ValueRefused, check_value, ParameterType.INT, value
            )
            self.assertEqual(refused.rule, ParameterRule.RANGE)
            self.assertIn("beyond 64 bits", refused.detail)
        self.assertEqual(check_value(ParameterType.INT, 2**63 - 1), 2**63 - 1)

    def test_allowedValues(self) -> None:
        """
        A value that is not allowed is refused, listing those that are.
        """
        baud = self._refused({"BAUD": 1234}, startup=True)
        self.assertEqual(ParameterRule.ALLOWED_VALUES, baud.rule)
        self.assertIn("1200, 2400, 4800, 9600, 19200", str(baud))
        fmt = self._refused({"FORMAT": "hex"})
        self.assertEqual(ParameterRule.ALLOWED_VALUES, fmt.rule)
        self.assertIn("'raw', 'converted'", str(fmt))

    def test_enumMembers(self) -> None:
        """
        For enum members, a member, its value or its name is accepted.
        """
        for given in (Mode.POLLED, "polled", "POLLED"):
            self.assertEqual(
                {"MODE": Mode.POLLED}, self.parameters.validate_set({"MODE": given})
            )
        self.assertIn("'polled', 'autonomous'", str(self._refused({"MODE": "fast"})))

    def test_unknown(self) -> None:
        """
        An unknown parameter is refused, listing the known ones.
        """
        error = self._refused({"INTERVAL": 10, "INTERVALS": 10})
        self.assertEqual(("INTERVALS", "unknown"), (error.parameter, error.rule))
        self.assertIn("known: INTERVAL, TXREALTIME", str(error))

    def test_settable(self) -> None:
        """
        The settable parameters exclude read-only ones, and immutable ones
        except at startup.
        """
        self.assertEqual(
            ["INTERVAL", "TXREALTIME", "FORMAT", "MODE", "CLOCK", "CHANNELS"],
            self.parameters.settable(),
        )
        self.assertIn("BAUD", self.parameters.settable(startup=True))


class ApplyTests(SynchronousTestCase):
    """
    Tests for recording accepted values.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.parameters = make_dictionary(self.clock)

    def test_realChanges(self) -> None:
        """
        C{apply} records values and returns only those that changed.
        """
        self.assertEqual(
            {"INTERVAL": 10, "FORMAT": "raw"},
            self.parameters.apply({"INTERVAL": 10, "FORMAT": "raw"}),
        )
        self.clock.advance(5)
        self.assertEqual(
            {"FORMAT": "converted"},
            self.parameters.apply({"INTERVAL": 10, "FORMAT": "converted"}),
        )
        self.assertEqual(5, self.parameters.read_time("INTERVAL"))
        self.assertEqual(
            {"INTERVAL": 10, "FORMAT": "converted"},
            self.parameters.get_values(["INTERVAL", "FORMAT"]),
        )

    def test_unknownRecordsNothing(self) -> None:
        """
        An unknown name in C{apply} is refused before anything is recorded.
        """
        self.assertRaises(
            InstrumentParameterError,
            self.parameters.apply,
            {"INTERVAL": 10, "NOPE": 1},
        )
        self.assertIsNone(self.parameters.get("INTERVAL"))

    def test_getValuesAll(self) -> None:
        """
        C{get_values()} is the whole cached configuration.
        """
        self.parameters.apply({"INTERVAL": 10})
        values = self.parameters.get_values()
        self.assertEqual(self.parameters.names(), list(values))
        self.assertEqual(10, values["INTERVAL"])


class FormatTests(SynchronousTestCase):
    """
    Tests for writing values in set commands.
    """

    def setUp(self) -> None:
        self.parameters = make_dictionary(Clock())

    def test_formatString(self) -> None:
        """
        A format string is filled with the value.
        """
        self.assertEqual("INTERVAL=10", self.parameters.format_value("INTERVAL", 10))

    def test_formatCallable(self) -> None:
        """
        A format callable is given the value.
        """
        self.assertEqual(
            "TXREALTIME=N", self.parameters.format_value("TXREALTIME", False)
        )

    def test_defaultFormat(self) -> None:
        """
        Without a format, the value is written as C{NAME=value}, an enum
        member as its value.
        """
        self.assertEqual("FORMAT=raw", self.parameters.format_value("FORMAT", "raw"))
        self.assertEqual(
            "MODE=polled", self.parameters.format_value("MODE", Mode.POLLED)
        )


class StartupTests(SynchronousTestCase):
    """
    Tests for init values and the startup configuration.
    """

    def setUp(self) -> None:
        self.parameters = make_dictionary(Clock())

    def test_startupValues(self) -> None:
        """
        Each startup parameter takes its init value, else its default.
        """
        self.parameters.set_init_values({"INTERVAL": "30", "BAUD": 9600})
        self.assertEqual({"INTERVAL": 30, "BAUD": 9600}, self.parameters.init_values())
        self.assertEqual(
            {"INTERVAL": 30, "TXREALTIME": True, "BAUD": 9600},
            self.parameters.startup_values(),
        )

    def test_required(self) -> None:
        """
        A startup parameter with neither init nor default value is an error
        naming it.
        """
        error = self.assertRaises(
            InstrumentParameterError, self.parameters.startup_values
        )
        self.assertEqual(("BAUD", "required"), (error.parameter, error.rule))

    def test_notStartup(self) -> None:
        """
        An init value for a parameter that is not applied at startup is
        refused rather than silently ignored, listing the startup ones.
        """
        error = self.assertRaises(
            InstrumentParameterError, self.parameters.set_init_values, {"FORMAT": "raw"}
        )
        self.assertEqual(ParameterRule.NOT_STARTUP, error.rule)
        self.assertIn("INTERVAL, TXREALTIME, BAUD", str(error))

    def test_badInitKeepsPrevious(self) -> None:
        """
        A bad init value is refused and the previous init values are kept.
        """
        self.parameters.set_init_values({"BAUD": 9600})
        self.assertRaises(
            InstrumentParameterError,
            self.parameters.set_init_values,
            {"INTERVAL": 5, "BAUD": 1234},
        )
        self.assertEqual({"BAUD": 9600}, self.parameters.init_values())


class DirectAccessTests(SynchronousTestCase):
    """
    Tests for the direct-access snapshot.
    """

    def test_snapshotAndRestore(self) -> None:
        """
        The snapshot holds the direct-access parameters only; after the
        operator changes one, C{differences} gives what to set back.
        """
        parameters = make_dictionary(Clock())
        parameters.update(STATUS)
        snapshot = parameters.snapshot_direct_access()
        self.assertEqual({"INTERVAL": 15, "TXREALTIME": True}, snapshot)
        parameters.update(STATUS.replace("= 15 seconds", "= 2 seconds"))
        self.assertEqual({"INTERVAL": 15}, parameters.differences(snapshot))


class MetadataTests(SynchronousTestCase):
    """
    Tests for the metadata export.
    """

    def test_metadata(self) -> None:
        """
        Each parameter's declaration is exported JSON-ready with the OOI
        metadata keys.
        """
        metadata = make_dictionary(Clock()).metadata()
        self.assertEqual(
            {
                "display_name": "INTERVAL",
                "description": "Time between samples in autosample.",
                "visibility": "READ_WRITE",
                "startup": True,
                "direct_access": True,
                "get_timeout": 10.0,
                "set_timeout": 10.0,
                "expiration": 60,
                "range": [1, 32767],
                "value": {
                    "type": "int",
                    "default": 1,
                    "units": "s",
                    "description": "",
                },
            },
            metadata["INTERVAL"],
        )
        self.assertEqual([1200, 2400, 4800, 9600, 19200], metadata["BAUD"]["range"])
        self.assertEqual(["polled", "autonomous"], metadata["MODE"]["range"])
        self.assertIsNone(metadata["SERIAL"]["range"])
        json.dumps(metadata)
