"""
Helpers for the QC tests: run our streaming tests over a whole series, and
ioos_qc (the reference, a test dependency) over the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from instrumentd.qc.base import FieldTest
from instrumentd.qc.flags import as_number

#: 2023-11-14T22:13:20Z: a time in the past, away from any year boundary.
BASE = 1_700_000_000


def stream_flags(
    test: FieldTest, times: Sequence[float], values: Sequence[object]
) -> list[int]:
    """
    Feed ``values`` to ``test`` one at a time and collect each sample's
    final flag, lagging tests' late flags put back in their place.
    """
    flags: list[int] = []
    for time, value in zip(times, values, strict=True):
        flag = test.step(time, as_number(value))
        if flag is not None:
            flags.append(int(flag))
    last = test.finish()
    if last is not None:
        flags.append(int(last))
    return flags


def as_datetimes(times: Sequence[float]) -> object:
    """
    :returns: ``times`` (seconds since 1970) as numpy datetime64, which every
        ioos_qc function reads the same way.
    """
    import numpy as np

    return np.array([int(t * 1e9) for t in times], dtype="datetime64[ns]")


def as_floats(values: Sequence[object]) -> object:
    """
    :returns: ``values`` as ioos_qc reads them: ``None`` as NaN.
    """
    import numpy as np

    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
