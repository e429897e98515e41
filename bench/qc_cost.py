"""
QC cost benchmark: microseconds of one core per sample for each real-time
QARTOD test, for all of them on one field, and for whole instrument
streams.

The series is a 1 Hz temperature-like random walk with a spike every 500
samples and a missing value every 700, so every branch of the tests runs.
Each row feeds ``--samples`` samples through a fresh evaluator
(:class:`instrumentd.qc.FieldQC` or :class:`instrumentd.qc.StreamQC`) and
divides the process CPU time (``time.process_time``: this process, one
thread, so one core) by the samples.

For scale: the station's own figures (doc/station.md) are about 1.1 ms of
CPU per SBE 37 sample (21.8 % of a core for 199 samples/s), so the 10 %
that issue 11 allows QC is about 110 µs a sample.

With ``ioos_qc`` installed (the test extra) a last column gives its cost
per sample over the same series as one whole array, for comparison: it is
not a real-time method.

Run by hand (it is not a test): ``python bench/qc_cost.py [--samples N]``.
Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable, Sequence

from instrumentd.qc import StreamQC, parse_qc
from instrumentd.qc.config import FIELD_TESTS
from instrumentd.qc.stream import CurrentSample, FieldQC

START = 1_790_000_000.0

#: One configuration per test, as a station would write it.
TESTS: dict[str, dict[str, object]] = {
    "gross_range": {"fail_span": [-5, 45], "suspect_span": [-2, 35]},
    "climatology": {
        "depth": 30,
        "spans": [
            {"tspan": [1, 3], "period": "month", "vspan": [6, 12]},
            {"tspan": [4, 6], "period": "month", "vspan": [8, 16]},
            {"tspan": [7, 9], "period": "month", "vspan": [10, 20], "zspan": [0, 50]},
            {"tspan": [10, 12], "period": "month", "vspan": [7, 14]},
        ],
    },
    "spike": {"suspect_threshold": 0.5, "fail_threshold": 2.0},
    "rate_of_change": {"threshold": 0.05, "fail_threshold": 0.5},
    "flat_line": {
        "suspect_threshold": 3600,
        "fail_threshold": 7200,
        "tolerance": 0.0005,
    },
}


def series(n: int) -> list[float | None]:
    """
    :returns: ``n`` samples of a random walk around 12 with spikes and gaps.
    """
    rng = random.Random(11)
    value, out = 12.0, []
    for i in range(n):
        value += rng.gauss(0, 0.01)
        sample: float | None = value + (3.0 if i % 500 == 250 else 0.0)
        if i % 700 == 350:
            sample = None
        out.append(sample)
    return out


def field_cost(names: Sequence[str], values: Sequence[float | None]) -> float:
    """
    :returns: µs per sample for a field with the tests ``names``.
    """
    qc = FieldQC(
        [
            FIELD_TESTS[name](f"qc.bench.x.{name}", TESTS[name], CurrentSample())
            for name in names
        ]
    )
    start = time.process_time()
    for i, value in enumerate(values):
        qc.push(START + i, value, {})
    qc.finish()
    return (time.process_time() - start) / len(values) * 1e6


def stream_cost(
    make: Callable[[], StreamQC], samples: Sequence[dict[str, object]]
) -> float:
    """
    :returns: µs per sample for a whole stream.
    """
    qc = make()
    start = time.process_time()
    for i, values in enumerate(samples):
        qc.push(START + i, values)
    qc.finish()
    return (time.process_time() - start) / len(samples) * 1e6


def ioos_cost(names: Sequence[str], values: Sequence[float | None]) -> float | None:
    """
    :returns: µs per sample for ioos_qc over the series as one array, or
        ``None`` without ioos_qc.
    """
    try:
        import numpy as np
        from ioos_qc import qartod
    except ImportError:
        return None
    inp = np.array([math.nan if v is None else v for v in values])
    tinp = (np.arange(len(values)) + int(START)).astype("datetime64[s]")
    calls = {
        "gross_range": lambda: qartod.gross_range_test(inp, **TESTS["gross_range"]),
        "climatology": lambda: qartod.climatology_test(
            TESTS["climatology"]["spans"], inp, tinp, np.full(len(inp), 30.0)
        ),
        "spike": lambda: qartod.spike_test(inp, **TESTS["spike"]),
        "rate_of_change": lambda: qartod.rate_of_change_test(
            inp, tinp, **TESTS["rate_of_change"]
        ),
        "flat_line": lambda: qartod.flat_line_test(inp, tinp, **TESTS["flat_line"]),
    }
    start = time.process_time()
    results = [calls[name]() for name in names]
    if len(results) > 1:
        qartod.qartod_compare(results)
    return (time.process_time() - start) / len(values) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    options = parser.parse_args()
    n = options.samples
    values = series(n)
    rows: list[tuple[str, float, float | None]] = []
    for name in TESTS:
        rows.append((name, field_cost([name], values), ioos_cost([name], values)))
    every = list(TESTS)
    rows.append(
        ("all five, one field", field_cost(every, values), ioos_cost(every, values))
    )

    ctd_table = {
        "ctdpf_sample": {
            field: {k: v for k, v in TESTS.items() if k != "gross_range"}
            for field in ("temperature", "conductivity", "salinity")
        }
    }
    # Conductivity and salinity move less; the thresholds matter little to
    # the cost, which is what is measured.
    ctd = parse_qc(ctd_table)["ctdpf_sample"]
    ctd_defaults = parse_qc({})["ctdpf_sample"]
    ctd_samples = [
        {
            "temperature": v,
            "conductivity": None if v is None else 3.5 + v / 100,
            "pressure": 30.0 + (i % 10) / 1000,
            "salinity": None if v is None else 34.0 + v / 1000,
        }
        for i, v in enumerate(values)
    ]
    rows.append(
        (
            "SBE 37 sample, defaults (4 fields)",
            stream_cost(ctd_defaults.evaluator, ctd_samples),
            None,
        )
    )
    rows.append(
        (
            "SBE 37 sample, all five on T, C, S + P range",
            stream_cost(ctd.evaluator, ctd_samples),
            None,
        )
    )

    adcp = parse_qc({})["adcp_velocity_earth"]
    cells = 30
    m = min(n, 10_000)
    adcp_samples = [
        {
            name: [None if v is None else int(v * 10) + c for c in range(cells)]
            for name in (
                "eastward_velocity",
                "northward_velocity",
                "upward_velocity",
                "error_velocity",
            )
        }
        for v in values[:m]
    ]
    rows.append(
        (
            f"Workhorse ensemble, defaults ({cells} cells x 4 velocities)",
            stream_cost(adcp.evaluator, adcp_samples),
            None,
        )
    )

    header = f"{'test':<56} {'µs/sample':>10} {'ioos_qc µs/sample (whole array)':>32}"
    print(f"{n} samples at 1 Hz, one core (process CPU time)")
    print(header)
    print("-" * len(header))
    for name, ours, theirs in rows:
        ref = "" if theirs is None else f"{theirs:.2f}"
        print(f"{name:<56} {ours:>10.2f} {ref:>32}")


if __name__ == "__main__":
    main()
