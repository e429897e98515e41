"""
Sample lines declared as columns (:mod:`instrumentd.driver.columns`) and
the readers of instrument text (:mod:`instrumentd.driver.readers`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.columns import Column, ColumnParticle, columns_pattern
from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.particles import ParticleField
from instrumentd.driver.readers import scaled_by_decimals, time_reader, yes_unless

_TIME = time_reader(
    r"(?P<day>\d{1,2}) (?P<month>[A-Za-z]{3}) (?P<year>\d{4}), "
    r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)",
    example="05 Feb 2013, 19:16:59",
)


class Sample(ColumnParticle):
    stream_name: ClassVar[str] = "toy_sample"
    start = r"#? *"
    separator = r", *"
    columns = (
        Column("temperature", r"-?\d+\.\d+", float, ParticleField("degree_Celsius")),
        Column("pressure", r"-?\d+\.\d{3}", float, ParticleField("dbar")),
        Column("salinity", r"-?\d+\.\d{4}", float, ParticleField("1"), optional=True),
        Column("time", r"\d\d [A-Z][a-z]{2} \d{4}, [\d:]{8}", _TIME,
               ParticleField(""), optional=True),
    )  # fmt: skip
    internal_time_value: ClassVar[str | None] = "time"


class DrySample(Sample):
    absent = frozenset({"pressure"})


def values(particle: ColumnParticle) -> dict[str, object]:
    return {str(entry["value_id"]): entry["value"] for entry in particle.values}


class ColumnParticleTests(SynchronousTestCase):
    """
    A particle declared as columns reads its lines.
    """

    def test_allColumns(self) -> None:
        """
        Every column is read, converted, in declaration order; the time
        column is the internal timestamp.
        """
        particle = Sample(
            b"# 12.5,  10.125, 35.1234, 05 Feb 2013, 19:16:59\r\n",
            driver_timestamp=1.0,
        )
        self.assertEqual(
            values(particle),
            {
                "temperature": 12.5,
                "pressure": 10.125,
                "salinity": 35.1234,
                "time": datetime(2013, 2, 5, 19, 16, 59, tzinfo=UTC),
            },
        )
        self.assertEqual(
            Sample.value_ids(), ("temperature", "pressure", "salinity", "time")
        )
        self.assertEqual(
            particle.internal_timestamp,
            datetime(2013, 2, 5, 19, 16, 59, tzinfo=UTC).timestamp() + 2208988800,
        )

    def test_optionalMissing(self) -> None:
        """
        An optional column may be missing as a whole, separator and all:
        its value is ``None``.
        """
        particle = Sample(b"12.5, 10.125\r\n", driver_timestamp=1.0)
        self.assertEqual(
            values(particle),
            {"temperature": 12.5, "pressure": 10.125, "salinity": None, "time": None},
        )

    def test_requiredMissing(self) -> None:
        """
        A line without a required column is not a record of the kind.
        """
        self.assertFalse(Sample.matches(b"12.5\r\n"))
        self.assertFalse(Sample.matches(b"12.5, 35.1234\r\n"))

    def test_cutShort(self) -> None:
        """
        A line without its end is not a record: the end is part of the
        pattern.
        """
        self.assertFalse(Sample.matches(b"12.5, 10.125, 35.12"))
        self.assertTrue(Sample.matches(b"12.5, 10.125, 35.1234\r\n"))

    def test_absent(self) -> None:
        """
        An absent column is never read but keeps its place: the same value
        ids in the same order, the value ``None``.
        """
        particle = DrySample(b"12.5, 35.1234\r\n", driver_timestamp=1.0)
        self.assertEqual(DrySample.value_ids(), Sample.value_ids())
        self.assertEqual(
            values(particle),
            {"temperature": 12.5, "pressure": None, "salinity": 35.1234, "time": None},
        )
        self.assertFalse(DrySample.matches(b"12.5, 10.125, 35.1234\r\n"))

    def test_fieldsAndConverters(self) -> None:
        """
        The fields (units) come from the columns, in their order; a column
        without a reader keeps its text.
        """
        self.assertEqual(
            {name: field.units for name, field in Sample.fields.items()},
            {"temperature": "degree_Celsius", "pressure": "dbar", "salinity": "1",
             "time": ""},
        )  # fmt: skip

        class Text(ColumnParticle):
            stream_name: ClassVar[str] = "text"
            columns = (
                Column("name", r"[a-z]+", None, ParticleField("")),
                Column("count", r"\d+", int, ParticleField("1")),
            )

        self.assertEqual(
            values(Text(b"abc,12\r\n", driver_timestamp=1.0)),
            {"name": "abc", "count": 12},
        )

    def test_ownDeclarationsKept(self) -> None:
        """
        A class that declares its own ``fields`` keeps them.
        """

        class Own(Sample):
            fields: ClassVar = {"temperature": ParticleField("K")}

        self.assertEqual(list(Own.fields), ["temperature"])
        self.assertEqual(Own.pattern.pattern, Sample.pattern.pattern)

    def test_badText(self) -> None:
        """
        A column whose text its reader refuses fails the particle, naming
        the value.
        """
        with self.assertRaises(InstrumentProtocolError) as caught:
            Sample(b"12.5, 10.125, 05 Fxx 2013, 19:16:59\r\n", driver_timestamp=1.0)
        self.assertIn("time", str(caught.exception))
        self.assertIn("'Fxx' is not a month", str(caught.exception))


class ColumnDeclarationTests(SynchronousTestCase):
    """
    A bad table of columns is refused when it is declared, naming what is
    wrong.
    """

    def column(self, name: str, **more: object) -> Column:
        return Column(name, r"\d+", int, ParticleField("1"), **more)  # type: ignore[arg-type]

    def test_groupInPattern(self) -> None:
        """
        A column pattern with a capturing group of its own is refused.
        """
        with self.assertRaises(ValueError) as caught:
            Column("x", r"(\d+)", int, ParticleField("1"))
        self.assertIn("use (?:...)", str(caught.exception))

    def test_badName(self) -> None:
        """
        A name that cannot be a group name is refused.
        """
        with self.assertRaises(ValueError) as caught:
            self.column("sound velocity")
        self.assertIn("'sound velocity'", str(caught.exception))

    def test_noColumns(self) -> None:
        """
        A line needs a column.
        """
        self.assertRaises(ValueError, columns_pattern, ())

    def test_twice(self) -> None:
        """
        A name given twice is refused, named.
        """
        with self.assertRaises(ValueError) as caught:
            columns_pattern((self.column("a"), self.column("a")))
        self.assertIn("declared twice: a", str(caught.exception))

    def test_unknownAbsent(self) -> None:
        """
        An absent name that is no column is refused, listing the columns.
        """
        with self.assertRaises(ValueError) as caught:
            columns_pattern((self.column("a"), self.column("b")), absent=frozenset("c"))
        self.assertIn("c are not columns; columns: a, b", str(caught.exception))

    def test_firstOptional(self) -> None:
        """
        The first column is neither optional nor absent.
        """
        self.assertRaises(
            ValueError, columns_pattern, (self.column("a", optional=True),)
        )
        self.assertRaises(
            ValueError,
            columns_pattern,
            (self.column("a"), self.column("b")),
            absent=frozenset("a"),
        )


class TimeReaderTests(SynchronousTestCase):
    """
    Times in one layout, English month names whatever the locale.
    """

    def test_read(self) -> None:
        """
        Month names in any case, or numbers; a fraction of a second; a
        two-digit year.
        """
        self.assertEqual(
            _TIME("05 FEB 2013, 19:16:59"),
            datetime(2013, 2, 5, 19, 16, 59, tzinfo=UTC),
        )
        numeric = time_reader(
            r"(?P<month>\d\d)(?P<day>\d\d)(?P<year>\d\d) "
            r"(?P<hour>\d\d)(?P<minute>\d\d)(?P<second>\d\d)(?:\.(?P<fraction>\d+))?"
        )
        self.assertEqual(
            numeric("120726 080000.25"),
            datetime(2026, 12, 7, 8, 0, 0, 250000, tzinfo=UTC),
        )

    def test_notATime(self) -> None:
        """
        Text of another layout, a month that is none, a day that does not
        exist: a ValueError saying so.
        """
        with self.assertRaises(ValueError) as caught:
            _TIME("2013-02-05 19:16:59")
        self.assertIn("like '05 Feb 2013, 19:16:59'", str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            _TIME("05 Fex 2013, 19:16:59")
        self.assertIn("'Fex' is not a month", str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            _TIME("31 Feb 2013, 19:16:59")
        self.assertIn("is not a time", str(caught.exception))

    def test_monthsRemembered(self) -> None:
        """
        A date read before (the reader keeps a bounded table of them) reads
        the same again, past the table's bound, and a month that is none is
        refused every time.
        """
        reader = time_reader(
            r"(?P<day>\d+) (?P<month>\w+) (?P<year>\d+) "
            r"(?P<hour>\d+):(?P<minute>\d+):(?P<second>\d+)"
        )
        names = ["Feb", "FEB", "february", "02", "2"] + [
            f"mar{'c' * k}" for k in range(80)
        ]
        for _ in range(2):
            for name in names:
                self.assertEqual(
                    reader(f"05 {name} 2013 19:16:59").month,
                    3 if name.startswith("mar") else 2,
                )
            for bad in ("Fex", "Fe", "13"):
                self.assertRaises(ValueError, reader, f"05 {bad} 2013 19:16:59")

    def test_missingGroup(self) -> None:
        """
        A pattern without one of the parts is refused at once.
        """
        with self.assertRaises(ValueError) as caught:
            time_reader(r"(?P<day>\d+) (?P<month>\w+) (?P<year>\d+)")
        self.assertIn("hour, minute, second", str(caught.exception))


class ScaledByDecimalsTests(SynchronousTestCase):
    """
    Numbers whose decimals say their unit.
    """

    read = staticmethod(scaled_by_decimals({5: 0, 4: -1, 1: -4}))

    def test_scaled(self) -> None:
        """
        Each count of decimals gets its power of ten, exactly.
        """
        self.assertEqual(
            [self.read(text) for text in ("3.51234", "35.1234", "35123.4")],
            [3.51234, 3.51234, 3.51234],
        )

    def test_otherDecimals(self) -> None:
        """
        Another count of decimals is refused, listing the valid ones.
        """
        with self.assertRaises(ValueError) as caught:
            self.read("3.512")
        self.assertIn("3 decimal(s); valid counts: 1, 4, 5", str(caught.exception))

    def test_notANumber(self) -> None:
        """
        Text that is no number is refused.
        """
        self.assertRaises(ValueError, self.read, "3.5x234")


def _scaled_before(scales: dict[int, int], text: str) -> float:
    # scaled_by_decimals' reading as it was first written: decimals counted
    # by partition, every number through Decimal.
    decimals = len(text.partition(".")[2])
    shift = scales.get(decimals)
    if shift is None:
        raise ValueError(f"{decimals} decimal(s)")
    try:
        return float(Decimal(text).scaleb(shift))
    except InvalidOperation:
        raise ValueError("not a number") from None


class ScaledAsBeforeTests(SynchronousTestCase):
    """
    The reader counts decimals and reads numbers as it always did, on any
    text.
    """

    @given(
        st.text(alphabet="0123456789.-+e x", max_size=12)
        | st.sampled_from(["3.51234", "35.1234", "35123.4", "3", ".5", "1.2.3", ""])
    )
    def test_any(self, text: str) -> None:
        """
        The same value, or a ValueError where it raised one.
        """
        scales = {5: 0, 4: -1, 1: -4, 0: 2}
        read = scaled_by_decimals(scales)
        try:
            expected: object = _scaled_before(scales, text)
        except ValueError:
            expected = ValueError
        try:
            got: object = read(text)
        except ValueError:
            got = ValueError
        self.assertEqual(got, expected, text)


class ReaderExactnessTests(SynchronousTestCase):
    """
    The readers' quick paths give exactly what the plain way gives.
    """

    @given(
        sign=st.sampled_from(["", "-", "+"]),
        whole=st.integers(0, 10**12),
        decimals=st.integers(1, 9),
        digits=st.integers(0, 10**9 - 1),
        shift=st.integers(-9, 9),
    )
    def test_scaledSameAsDecimal(
        self, sign: str, whole: int, decimals: int, digits: int, shift: int
    ) -> None:
        """
        Any plain decimal, scaled by any power of ten, is the float that
        C{Decimal} gives, bit for bit.
        """
        text = f"{sign}{whole}.{digits % 10**decimals:0{decimals}d}"
        read = scaled_by_decimals({decimals: shift})
        self.assertEqual(read(text), float(Decimal(text).scaleb(shift)))

    @given(
        when=st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)
        ),
        fraction=st.sampled_from(["", ".0", ".5", ".25", ".000001", ".999"]),
    )
    def test_timeWithAndWithoutFraction(self, when: datetime, fraction: str) -> None:
        """
        A time with no fraction, or any fraction, reads as the time plus
        that fraction of a second.
        """
        read = time_reader(
            r"(?P<year>\d{4})-(?P<month>\d\d)-(?P<day>\d\d) "
            r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)(?:\.(?P<fraction>\d+))?"
        )
        text = when.strftime("%Y-%m-%d %H:%M:%S") + fraction
        expected = when.replace(microsecond=0, tzinfo=UTC)
        if fraction:
            expected += timedelta(seconds=float("0" + fraction))
        self.assertEqual(read(text), expected)


class YesUnlessTests(SynchronousTestCase):
    """
    Settings printed as sentences: yes unless words say no.
    """

    said_yes = staticmethod(yes_unless(("do not ",), ("= no", "disabled")))

    def test_words(self) -> None:
        """
        A prefix or a suffix that says no; anything else is yes.
        """
        self.assertEqual(
            [
                self.said_yes(text)
                for text in (
                    "do not transmit real-time data",
                    "transmit real-time data",
                    "transmit real-time = no",
                    "transmit real-time = yes",
                    "serial sync mode disabled",
                )
            ],
            [False, True, False, True, False],
        )

    def test_nothingSaysNo(self) -> None:
        """
        A reader without words that say no is refused.
        """
        self.assertRaises(ValueError, yes_unless)
