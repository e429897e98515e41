# -*- test-case-name: tests.test_sbe37_simulator -*-
"""
The simulated SBE 37's sample memory.
"""

from __future__ import annotations

from array import array

__all__ = ["SampleMemory"]


class SampleMemory:
    """
    Stored samples: only when each was taken, how many readings were
    averaged and whether its time was stored.  The water is a function of
    time, so the readings can be made again whenever ``DD`` asks.
    """

    def __init__(self) -> None:
        self.times = array("d")
        self.navg = array("l")
        self.with_time = bytearray()

    def __len__(self) -> int:
        return len(self.times)

    def append(self, when: float, navg: int, with_time: bool) -> None:
        self.times.append(when)
        self.navg.append(navg)
        self.with_time.append(with_time)

    def resize(self, count: int, now: float, interval: int, navg: int) -> None:
        # SAMPLENUM=n below the count forgets the rest; above it, the
        # memory holds what an earlier deployment logged there: samples
        # INTERVAL apart, ending now.
        del self.times[count:], self.navg[count:], self.with_time[count:]
        missing = count - len(self.times)
        for k in range(missing, 0, -1):
            self.append(now - k * interval, navg, True)
