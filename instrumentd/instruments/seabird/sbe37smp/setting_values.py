# -*- test-case-name: tests.test_sbe37_simulator -*-
"""
How the simulated SBE 37-SMP reads the values of its setting commands
(``INTERVAL=``, ``MMDDYY=``, ``DateTime=``, ``TCALDATE=``…), and the error
line it prints for a value it refuses.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

from instrumentd.instruments.seabird.sbe37smp.firmware import MONTHS

__all__ = [
    "BadValue",
    "parse_cal_date",
    "parse_date",
    "parse_date_time",
    "parse_integer",
    "parse_time",
]

_INTEGER = re.compile(r"^[+-]?\d+$")
_SIX_DIGITS = re.compile(r"^(\d\d)(\d\d)(\d\d)$")
_CAL_DATE = re.compile(r"^(\d\d)-([a-z]{3})-(\d\d)$", re.IGNORECASE)


class BadValue(Exception):
    """
    A setter's value was refused; the message is the instrument's error line.
    """


def parse_integer(value: str, name: str, low: int, high: int) -> int:
    """
    A whole number within bounds.

    :raises BadValue: naming the setting and its bounds.
    """
    if not _INTEGER.match(value) or not low <= int(value) <= high:
        raise BadValue(f"***ERROR: {name} must be {low}..{high}***")
    return int(value)


def parse_date(value: str, name: str, month_first: bool) -> date:
    """
    A date as six digits, ``mmddyy`` or ``ddmmyy``.

    :raises BadValue: naming the setting and the form.
    """
    match = _SIX_DIGITS.match(value)
    try:
        if match is None:
            raise ValueError(value)
        a, b, year = (int(part) for part in match.groups())
        month, day = (a, b) if month_first else (b, a)
        return date(2000 + year, month, day)
    except ValueError:
        form = "mmddyy" if month_first else "ddmmyy"
        raise BadValue(f"***ERROR: {name} must be {form}, a valid date***") from None


def parse_time(value: str, name: str) -> time:
    """
    A time of day as six digits, ``hhmmss``.

    :raises BadValue: naming the setting and the form.
    """
    match = _SIX_DIGITS.match(value)
    try:
        if match is None:
            raise ValueError(value)
        hour, minute, second = (int(part) for part in match.groups())
        return time(hour, minute, second)
    except ValueError:
        raise BadValue(f"***ERROR: {name} must be hhmmss, a valid time***") from None


def parse_date_time(value: str, name: str) -> datetime:
    """
    A date and time as firmware 3.0 and later write them, ``mmddyyyyhhmmss``
    (UTC).

    :raises BadValue: naming the setting and the form.
    """
    try:
        if not re.fullmatch(r"\d{14}", value):
            raise ValueError(value)
        return datetime.strptime(value, "%m%d%Y%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise BadValue(
            f"***ERROR: {name} must be mmddyyyyhhmmss, a valid time***"
        ) from None


def parse_cal_date(value: str, name: str) -> str:
    """
    A calibration date, ``dd-mon-yy``, kept in lower case as the instrument
    prints it.

    :raises BadValue: naming the setting and the form.
    """
    match = _CAL_DATE.match(value)
    if (
        match is None
        or match.group(2).capitalize() not in MONTHS
        or not 1 <= int(match.group(1)) <= 31
    ):
        raise BadValue(f"***ERROR: {name} must be dd-mon-yy, e.g. 08-nov-05***")
    return value.lower()
