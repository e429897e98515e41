# -*- test-case-name: tests.test_driver_columns -*-
"""
Readers of values as instruments print them, for particles' converters
(:class:`~instrumentd.driver.columns.Column`'s ``read``,
:class:`~instrumentd.driver.dumps.DumpReader`'s ``read``): times with
English month names, and numbers whose decimals say their unit.

Each returns a function taking the text and returning the value, raising
:class:`ValueError` (which the particles turn into an
:class:`~instrumentd.driver.errors.InstrumentProtocolError` naming the
value) for text it cannot read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

__all__ = ["MONTHS", "scaled_by_decimals", "time_reader", "yes_unless"]

#: English month names (their first three letters) to numbers.  Instruments
#: print them in English whatever the host's locale, so they are read from
#: this table rather than with ``strptime``'s locale-dependent ``%b``.
MONTHS: Mapping[str, int] = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun",
         "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}  # fmt: skip

_PARTS = ("year", "month", "day", "hour", "minute", "second")

#: A number as instruments print it: digits, a point, digits, perhaps a
#: sign.  :func:`scaled_by_decimals` reads these without :mod:`decimal`.
_PLAIN_DECIMAL = re.compile(r"[-+]?[0-9]+\.[0-9]+")


def time_reader(pattern: str, example: str = "") -> Callable[[str], datetime]:
    """
    A reader of times printed in one layout, as UTC.

    :param pattern: a regular expression that must match the whole text,
        with the groups ``year``, ``month`` (a number or an English month
        name, any case, at least its first three letters), ``day``,
        ``hour``, ``minute`` and ``second``, and optionally ``fraction``
        (the digits after a decimal point of the second).  Two-digit years
        are 2000 to 2099.
    :param example: a time in that layout, for error messages.
    :returns: a function from the text to an aware UTC
        :class:`~datetime.datetime`.
    :raises ValueError: (at once) if the pattern lacks one of the groups.
    """
    compiled = re.compile(pattern)
    missing = [part for part in _PARTS if part not in compiled.groupindex]
    if missing:
        raise ValueError(
            f"time pattern {pattern!r} lacks the group(s) {', '.join(missing)}"
        )
    layout = f"like {example!r}" if example else f"matching {pattern!r}"
    # Where each part is in match.groups(), worked out once: a sample line
    # is read many times a second.
    index = compiled.groupindex
    year_at, month_at, day_at, hour_at, minute_at, second_at = (
        index[part] - 1 for part in _PARTS
    )
    fraction_at = index["fraction"] - 1 if "fraction" in index else None
    fullmatch = compiled.fullmatch
    # Dates read before, as printed (year, month, day) to numbers: an
    # instrument prints the same date all day.  Bounded, whatever text
    # arrives: emptied when full.
    dates_read: dict[tuple[str, str, str], tuple[int, int, int]] = {}

    def read(text: str) -> datetime:
        match = fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not a time {layout}")
        parts = match.groups()
        printed = (parts[year_at], parts[month_at], parts[day_at])
        date = dates_read.get(printed)
        if date is None:
            year_text, month_text, day_text = printed
            month = _month(month_text)
            year = int(year_text)
            if len(year_text) == 2:
                year += 2000
            date = (year, month, int(day_text))
            if len(dates_read) >= _DATES_KEPT:
                dates_read.clear()
            dates_read[printed] = date
        year, month, day = date
        try:
            when = datetime(
                year,
                month,
                day,
                int(parts[hour_at]),
                int(parts[minute_at]),
                int(parts[second_at]),
                0,
                UTC,
            )
        except ValueError as error:
            raise ValueError(f"{text!r} is not a time: {error}") from None
        if fraction_at is not None and (fraction := parts[fraction_at]):
            when += timedelta(seconds=float("0." + fraction))
        return when

    return read


#: How many dates a time reader remembers.
_DATES_KEPT = 64


def _month(text: str) -> int:
    # A month as a number or an English name (its first three letters at
    # least, any case).
    if text.isdigit():
        return int(text)
    found = MONTHS.get(text[:3].lower())
    if found is None or len(text) < 3:
        raise ValueError(f"{text!r} is not a month")
    return found


def scaled_by_decimals(scales: Mapping[int, int]) -> Callable[[str], float]:
    """
    A reader of numbers whose count of decimals says their unit (an
    instrument printing conductivity as S/m ``3.51234``, mS/cm ``35.1234``
    or µS/cm ``35123.4``), in one unit.

    :param scales: count of decimals to the power of ten that turns a
        number printed with them into the unit wanted (``{5: 0, 4: -1,
        1: -4}`` for S/m).
    :returns: a function from the text to the number, scaled.
    """
    valid = ", ".join(str(count) for count in sorted(scales))
    plain = _PLAIN_DECIMAL.fullmatch
    shift_for = scales.get

    def read(text: str) -> float:
        point = text.find(".")
        # The characters after the first point (none without one).
        decimals = len(text) - point - 1 if point >= 0 else 0
        shift = shift_for(decimals)
        if shift is None:
            raise ValueError(
                f"{text!r} has {decimals} decimal(s); valid counts: {valid}"
            )
        if plain(text):
            # The same correctly rounded float as through Decimal, without
            # it: float() reads the exact decimal number the exponent
            # makes.
            return float(f"{text}e{shift}") if shift else float(text)
        try:
            return float(Decimal(text).scaleb(shift))
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a number") from None

    return read


def yes_unless(
    prefixes: tuple[str, ...] = (), suffixes: tuple[str, ...] = ()
) -> Callable[[str], bool]:
    """
    A reader of settings printed as sentences, yes unless words say no
    (``do not output salinity with each sample``, ``transmit real-time =
    no``, ``serial sync mode disabled``).

    :param prefixes: words that, beginning the text, say no.
    :param suffixes: words that, ending it, say no.
    :returns: a function from the text to ``False`` if it begins with one of
        ``prefixes`` or ends with one of ``suffixes``, else ``True``.
    :raises ValueError: (at once) if neither is given.
    """
    if not prefixes and not suffixes:
        raise ValueError("yes_unless needs prefixes or suffixes that say no")

    def read(text: str) -> bool:
        return not text.startswith(prefixes) and not text.endswith(suffixes)

    return read
