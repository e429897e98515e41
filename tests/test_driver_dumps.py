"""
The declarative dump reader (:mod:`instrumentd.driver.dumps`) and the
parameter dictionary's side of it (``update_from``, unsupported
parameters).
"""

from __future__ import annotations

import re
from typing import ClassVar

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.dumps import DumpParticle, DumpReader, Keyed, Line
from instrumentd.driver.errors import (
    InstrumentParameterError,
    InstrumentProtocolError,
    ParameterRule,
)
from instrumentd.driver.parameters import Parameter, ParameterDictionary, ParameterType
from instrumentd.driver.particles import ParticleField

_READER = DumpReader(
    Line(r"TOY V (?P<version>\S+) +SN (?P<serial>\d+)"),
    Line(r"interval = (?P<interval>\d+) s"),
    Line(r"interval: (?P<interval>\d+)"),
    Line(r"(?P<logging>(?:not )?logging)\b.*"),
    Keyed(r" +(?P<key>\w+) = (?P<value>\S+)", names={"G": "cg"}),
    read={"interval": int, "logging": lambda text: text == "logging", "cg": float},
)

_DUMP = "TOY V 1.2  SN 42\r\ninterval = 15 s\r\nnot logging: stopped\r\n    G = -1.5e+00\r\n"


class DumpReaderTests(SynchronousTestCase):
    """
    A dump is read line by line against the table of line kinds.
    """

    def test_values(self) -> None:
        """
        Each known line gives its values, converted; ``Keyed`` lines name
        theirs (through ``names``, else in lower case).
        """
        self.assertEqual(
            _READER.read(_DUMP),
            {
                "version": "1.2",
                "serial": "42",
                "interval": 15,
                "logging": False,
                "cg": -1.5,
            },
        )

    def test_otherWords(self) -> None:
        """
        Another firmware's words for the same value, unknown lines and
        missing lines: the value is read from whichever kind matches,
        unknown lines are skipped, absent values are absent.
        """
        got = _READER.read("interval: 30\nsomething new = 1\n")
        self.assertEqual(got, {"interval": 30})

    def test_wholeLine(self) -> None:
        """
        A kind matches whole lines only: a line that merely contains a
        known one is not of its kind.
        """
        self.assertEqual(_READER.read("the interval = 15 s, said he\n"), {})

    def test_badValue(self) -> None:
        """
        A value whose text cannot be read fails, naming the line and value.
        """
        bad = DumpReader(Line(r"n = (?P<n>\S+)"), read={"n": int})
        error = self.assertRaises(InstrumentProtocolError, bad.read, "n = x\n")
        self.assertIn("'n = x'", str(error))
        self.assertIn("n = 'x'", str(error))

    def test_ids(self) -> None:
        """
        ``ids`` keeps only the values asked for.
        """
        reader = DumpReader(Keyed(r"(?P<key>\w+) = (?P<value>\S+)"), ids=("a",))
        self.assertEqual(reader.read("A = 1\nB = 2\n"), {"a": "1"})

    def test_combine(self) -> None:
        """
        ``+`` joins two tables: both sets of lines and converters.
        """
        more = DumpReader(Line(r"volts = (?P<volts>\S+)"), read={"volts": float})
        got = (_READER + more).read("interval = 5 s\nvolts = 12.5\n")
        self.assertEqual(got, {"interval": 5, "volts": 12.5})


class _ToyDump(DumpParticle):
    stream_name: ClassVar[str] = "toy_status"
    pattern = re.compile(rb"TOY V [^\r\n]*\r\n(?:[^\r\n]+\r\n)*")
    reader = _READER
    defaults: ClassVar[dict[str, object]] = {"logging": None, "warning": False}
    fields = {
        "version": ParticleField(""),
        "interval": ParticleField("s"),
        "logging": ParticleField(""),
        "cg": ParticleField(""),
        "warning": ParticleField(""),
        "volts": ParticleField("V"),
    }


class DumpParticleTests(SynchronousTestCase):
    """
    A dump as a particle: one value per field, defaults where absent.
    """

    def test_values(self) -> None:
        """
        Values in ``fields`` order; a missing one is its default or
        ``None``.
        """
        particle = _ToyDump(_DUMP.encode("ascii"), driver_timestamp=0.0)
        self.assertEqual(
            [(v["value_id"], v["value"]) for v in particle.values],
            [
                ("version", "1.2"),
                ("interval", 15),
                ("logging", False),
                ("cg", -1.5),
                ("warning", False),
                ("volts", None),
            ],
        )

    def test_notADump(self) -> None:
        """
        A record its pattern does not match fails, naming the stream.
        """
        error = self.assertRaises(
            InstrumentProtocolError, _ToyDump, b"nothing\r\n", driver_timestamp=0.0
        )
        self.assertIn("toy_status", str(error))


def _dictionary() -> ParameterDictionary:
    parameters = ParameterDictionary(Clock())
    parameters.add(
        Parameter(
            name="INTERVAL",
            type=ParameterType.INT,
            startup=True,
            direct_access=True,
            default_value=15,
            source="interval",
        )
    )
    parameters.add(
        Parameter(
            name="NAVG",
            type=ParameterType.INT,
            startup=True,
            direct_access=True,
            default_value=1,
            source="navg",
        )
    )
    return parameters


class UpdateFromTests(SynchronousTestCase):
    """
    Parameters take their values from a dump's values by ``source``.
    """

    def test_takeValues(self) -> None:
        """
        Each parameter whose source is there takes it; absent or ``None``
        sources leave the parameter as it was.
        """
        parameters = _dictionary()
        changes = parameters.update_from({"interval": 30, "navg": None})
        self.assertEqual(changes, {"INTERVAL": 30})
        self.assertEqual(parameters.get_values(), {"INTERVAL": 30, "NAVG": None})
        self.assertEqual(parameters.update_from({"interval": 30}), {})

    def test_badValue(self) -> None:
        """
        A value of the wrong type is not taken (and logged), the rest are.
        """
        parameters = _dictionary()
        changes = parameters.update_from({"interval": "soon", "navg": 4})
        self.assertEqual(changes, {"NAVG": 4})
        self.flushLoggedErrors()


class UnsupportedTests(SynchronousTestCase):
    """
    A parameter the instrument lacks is refused and left out of startup
    and direct access.
    """

    def test_refused(self) -> None:
        """
        A set of an unsupported parameter fails with rule ``unsupported``
        and the reason.
        """
        parameters = _dictionary()
        parameters.set_unsupported({"NAVG": "firmware 3.0h has no such setting"})
        error = self.assertRaises(
            InstrumentParameterError, parameters.validate_set, {"NAVG": 2}
        )
        self.assertEqual(
            (error.parameter, error.rule), ("NAVG", ParameterRule.UNSUPPORTED)
        )
        self.assertIn("firmware 3.0h", str(error))
        self.assertEqual(parameters.validate_set({"INTERVAL": 20}), {"INTERVAL": 20})

    def test_startupAndDirectAccess(self) -> None:
        """
        Unsupported parameters are not startup values or snapshotted; said
        again, the list replaces the old one.
        """
        parameters = _dictionary()
        parameters.set_unsupported({"NAVG": "no"})
        self.assertEqual(parameters.startup_values(), {"INTERVAL": 15})
        self.assertEqual(parameters.snapshot_direct_access(), {"INTERVAL": None})
        parameters.set_unsupported({})
        self.assertEqual(parameters.startup_names(), ["INTERVAL", "NAVG"])
        self.assertEqual(parameters.unsupported(), {})

    def test_unknownName(self) -> None:
        """
        Naming a parameter that does not exist is an error.
        """
        parameters = _dictionary()
        error = self.assertRaises(
            InstrumentParameterError, parameters.set_unsupported, {"NOPE": "x"}
        )
        self.assertEqual(error.rule, ParameterRule.UNKNOWN)


class _Inputs:
    def acquire_status(self) -> None:
        """
        Read the status
        dump.
        """


class DescribeTests(SynchronousTestCase):
    """
    ``CommandDictionary.describe`` declares a command from its input.
    """

    def test_describe(self) -> None:
        """
        The description is the input's docstring, on one line.
        """
        from instrumentd.driver.commands import CommandDictionary

        commands = CommandDictionary()
        spec = commands.describe(_Inputs, "acquire_status", "Acquire status", 15.0, "x")
        self.assertEqual(spec.description, "Read the status dump.")
        self.assertEqual((spec.display_name, spec.timeout), ("Acquire status", 15.0))
        self.assertIs(commands.command("acquire_status"), spec)


def _read_kind_by_kind(reader: DumpReader, text: str) -> dict[str, object]:
    # The reading as each kind's own texts() gives it, line by line: what
    # DumpReader.read did before it tried Line's and Keyed's inline.
    found: dict[str, object] = {}
    for raw in text.splitlines():
        line = raw.rstrip()
        for kind in reader.lines:
            texts = kind.texts(line)
            if texts is None:
                continue
            for name, value in texts.items():
                if reader.ids is None or name in reader.ids:
                    found[name] = reader._convert(kind, name, value, line)
            break
    return found


class _Upper(Line):
    """
    A kind of line with its own C{texts}: the values upper-cased.
    """

    def texts(self, line: str) -> dict[str, str] | None:
        texts = super().texts(line)
        return None if texts is None else {k: v.upper() for k, v in texts.items()}


class ReadingTests(SynchronousTestCase):
    """
    How C{read} goes about it: Line's and Keyed's matching inline, a kind
    with its own C{texts} through it, and dumps read lately remembered.
    """

    def test_sameAsKindByKind(self) -> None:
        """
        Every SBE 37 firmware's dumps read as each kind's own C{texts} reads
        them, line by line.
        """
        from instrumentd.instruments.seabird.sbe37smp.particles import (
            SBE37CalibrationParticle,
            SBE37StatusParticle,
        )
        from tests import test_sbe37_variants as variants

        dumps = [
            (SBE37StatusParticle.reader, variants.DS_30H),
            (SBE37StatusParticle.reader, variants.DS_26B),
            (SBE37StatusParticle.reader, variants.DS_23),
            (SBE37StatusParticle.reader, variants.DS_5_HEAD),
            (SBE37CalibrationParticle.reader, variants.DC_30H),
            (SBE37CalibrationParticle.reader, variants.DC_26B),
            (_READER, _DUMP),
        ]
        for reader, text in dumps:
            expected = _read_kind_by_kind(reader, text)
            self.assertTrue(expected)
            self.assertEqual(reader._read(text), expected)
            self.assertEqual(reader.read(text), expected)

    def test_ownTexts(self) -> None:
        """
        A kind that overrides C{texts} is read through it.
        """
        reader = DumpReader(_Upper(r"name = (?P<name>\w+)"))
        self.assertEqual(reader.read("name = toy\r\n"), {"name": "TOY"})

    def test_remembered(self) -> None:
        """
        A dump read again is not read again, and each reader of it gets its
        own dict.
        """
        reader = DumpReader(*_READER.lines, read=_READER.converters)
        calls: list[str] = []
        read = reader._read

        def counted(text: str) -> dict[str, object]:
            calls.append(text)
            return read(text)

        reader._read = counted  # type: ignore[method-assign]
        first = reader.read(_DUMP)
        first["interval"] = 99
        second = reader.read(_DUMP)
        self.assertEqual(len(calls), 1)
        self.assertEqual(second["interval"], 15)
        self.assertEqual(second, _read_kind_by_kind(reader, _DUMP))
        self.assertIsNot(first, second)

    def test_mutableNotRemembered(self) -> None:
        """
        A reading holding a value that could be changed (a list) is read
        afresh each time: nobody shares it.
        """
        reader = DumpReader(
            Line(r"list = (?P<items>.*)"), read={"items": lambda t: t.split(",")}
        )
        first = reader.read("list = a,b\r\n")
        first["items"].append("c")  # type: ignore[attr-defined]
        self.assertEqual(reader.read("list = a,b\r\n"), {"items": ["a", "b"]})

    def test_badValueNotRemembered(self) -> None:
        """
        A dump that cannot be read fails each time it is read.
        """
        for _ in range(2):
            self.assertRaises(
                InstrumentProtocolError,
                _READER.read,
                "interval = 15 s\r\n    G = x\r\n",
            )

    def test_forgets(self) -> None:
        """
        Only the latest readings are kept.
        """
        reader = DumpReader(*_READER.lines, read=_READER.converters)
        for interval in range(200):
            reader.read(f"interval = {interval} s\r\n")
        self.assertLessEqual(len(reader._recent), 64)
        self.assertEqual(reader.read("interval = 3 s\r\n"), {"interval": 3})


class FirstCharacterTests(SynchronousTestCase):
    """
    A line is tried only against the kinds that could begin with its first
    character (worked out from each kind's parsed pattern); a kind whose
    first character cannot be told is tried on every line.
    """

    def test_firstCharacters(self) -> None:
        """
        Literals, classes of literals and ranges, alternatives, optional
        and repeated parts, groups and zero-width assertions give the
        characters a match begins with; anything else gives C{None}.
        """
        from instrumentd.driver.dumps import _first_chars

        cases = {
            r"SBE ?37": {"S"},
            r"[A-C]x": {"A", "B", "C"},
            r"(?P<k>temperature|rtc): +": {"t", "r"},
            r"(?P<s>(?:do not )?store time)": {"d", "s"},
            r" +(?P<key>\w+) = ": {" "},
            r"(?<=x)ab|(?=c)cd": {"a", "c"},
            r"(?>ab)c": {"a"},
            r"\d+ apples": None,
            r"(?i)abc": None,
            r"a?": None,
            r"(?:x)?\w": None,
            r".*": None,
            r"": None,
        }
        for source, chars in cases.items():
            expected = None if chars is None else frozenset(chars)
            self.assertEqual(_first_chars(re.compile(source)), expected, source)

    def test_triedInOrder(self) -> None:
        """
        Kinds that can begin with anything are still tried on every line,
        in the table's order with the rest: the first kind that matches the
        whole line reads it, as without the dispatch.
        """
        reader = DumpReader(
            Line(r"\d+ apples, (?P<apples>\d+) ripe"),
            Line(r"(?P<count>\d+) apples.*"),
            Line(r"apples: (?P<named>\w+)"),
            Line(r"(?i)APPLES: (?P<shouted>\w+)"),
        )
        self.assertEqual(
            reader.read("7 apples, 3 ripe\r\n9 apples here\r\nApples: some\r\n"),
            {"apples": "3", "count": "9", "shouted": "some"},
        )
        self.assertEqual(reader.read("apples: red\r\n"), {"named": "red"})
