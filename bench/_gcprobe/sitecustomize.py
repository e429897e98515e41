"""
The garbage collector's work in one process, for ``station_scale.py
--gc-probe``: put this directory first on the station's ``PYTHONPATH`` and
name a file in ``INSTRUMENTD_GC_PROBE``; every collection is timed by
generation (``gc.callbacks``).  The file gets a line ``F seconds duration
collected`` for each full (generation 2) collection and a line ``T seconds
n0 s0 n1 s1 n2 s2`` (collections and seconds so far, by generation) at
most every second; seconds count from the process's start.

It never asks :func:`gc.get_freeze_count` (it walks every frozen object).
The variable is taken out of the environment so that the processes the
station starts are not probed.
"""

from __future__ import annotations

import os

_path = os.environ.pop("INSTRUMENTD_GC_PROBE", None)
if _path:
    import gc
    import time
    from typing import Any

    _out = open(_path, "a", buffering=1)  # noqa: SIM115 - open while the process runs
    _start = time.monotonic()
    _counts = [0, 0, 0]
    _seconds = [0.0, 0.0, 0.0]
    _began = [0.0, 0.0]

    def _totals(now: float) -> str:
        by = " ".join(f"{n} {s:.3f}" for n, s in zip(_counts, _seconds, strict=True))
        return f"T {now - _start:.2f} {by}\n"

    def _collected(phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            _began[0] = now
            return
        generation = info["generation"]
        took = now - _began[0]
        _counts[generation] += 1
        _seconds[generation] += took
        at = time.monotonic()
        if generation == 2:
            _out.write(f"F {at - _start:.2f} {took:.3f} {info['collected']}\n")
        if generation == 2 or at - _began[1] >= 1.0:
            _began[1] = at
            _out.write(_totals(at))

    gc.callbacks.append(_collected)
