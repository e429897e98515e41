"""
What every streaming QC test provides.

A test sees one field's samples in order, one at a time, and keeps only the
history it needs.  Most tests flag a sample as it arrives (``lag`` 0).  A
test that needs the next sample too (the spike test looks at both
neighbours) has ``lag`` 1: the flag it returns on each step is for the
sample before, and :meth:`FieldTest.finish` gives the flag for the last
sample when the stream ends.
"""

from __future__ import annotations

from typing import Protocol

from instrumentd.qc.flags import QartodFlag

__all__ = ["FieldTest", "Span", "StreamTest"]

#: A closed interval ``(low, high)``, low <= high.
Span = tuple[float, float]


class FieldTest(Protocol):
    """
    One QARTOD test on one field of one stream.

    :ivar name: the test's name in the flags (``gross_range``, ``spike``...).
    :ivar lag: how many samples behind the newest the returned flag is.

    A test that keeps no history and passes every value within a closed
    interval may say so with a ``pass_span`` attribute ``(low, high)``: an
    evaluator then flags a value within it PASS without calling
    :meth:`step` (the gross range test does; most samples pass).
    """

    name: str
    lag: int

    def step(self, time: float, value: float | None) -> QartodFlag | None:
        """
        Take the next sample.

        :param time: the sample's time, seconds since 1970-01-01 UTC.
        :param value: its value, ``None`` when missing.
        :returns: the flag for the sample ``lag`` samples back, ``None``
            when there is no such sample yet.
        """

    def finish(self) -> QartodFlag | None:
        """
        End of the stream.

        :returns: the flag of the last sample still owed (``lag`` 1), or
            ``None`` when none is owed.
        """


class StreamTest(Protocol):
    """
    A test of a whole sample rather than of one field (its time, its
    position); its flag joins every field's flags.

    :ivar name: the test's name in the flags.
    """

    name: str

    def step(self, time: float, values: dict[str, object]) -> QartodFlag:
        """
        Flag a sample.

        :param time: the sample's time, seconds since 1970-01-01 UTC.
        :param values: the sample's values by field name.
        :returns: the flag for this sample.
        """
