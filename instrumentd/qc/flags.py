"""
QARTOD flag values and how several tests' flags combine into one.

The values are the QARTOD manuals' primary flags, which ioos_qc also uses:
1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing.  The aggregate of
several tests is the worst of them, in this order of precedence (lowest
first): missing, not evaluated, pass, suspect, fail.  So one failing test
fails the sample, and a sample that no test could evaluate stays "not
evaluated" rather than "pass".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import IntEnum
from typing import Final

__all__ = ["QartodFlag", "aggregate", "as_number", "finite"]


class QartodFlag(IntEnum):
    """
    A QARTOD primary flag.
    """

    PASS = 1
    NOT_EVALUATED = 2
    SUSPECT = 3
    FAIL = 4
    MISSING = 9


#: Rank of each flag when several are combined: the highest wins.
_PRECEDENCE: Final = {
    QartodFlag.MISSING: 0,
    QartodFlag.NOT_EVALUATED: 1,
    QartodFlag.PASS: 2,
    QartodFlag.SUSPECT: 3,
    QartodFlag.FAIL: 4,
}


def aggregate(flags: Iterable[QartodFlag]) -> QartodFlag:
    """
    Combine one sample's flags from several tests.

    :param flags: each test's flag for the sample.
    :returns: the flag of highest precedence (fail over suspect over pass
        over not evaluated over missing); missing when there are none, as
        ioos_qc's ``qartod_compare`` starts from missing.
    """
    return max(flags, key=_PRECEDENCE.__getitem__, default=QartodFlag.MISSING)


def as_number(value: object) -> float | None:
    """
    A sample value as the tests read it.

    :param value: the value as the particle holds it.
    :returns: the value as a float, or ``None`` when it is missing:
        ``None``, NaN, or not a number at all (a string in a field
        configured for QC is reported missing rather than stopping the
        stream).  Infinities stay: ioos_qc masks them as missing, yet its
        range tests still fail them, and the tests here do the same (see
        :func:`finite`).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def finite(value: float | None) -> float | None:
    """
    :returns: ``value`` if it is a finite number, else ``None`` (missing),
        for the tests that treat an infinity as missing.
    """
    return value if value is not None and math.isfinite(value) else None
