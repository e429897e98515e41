"""
The Workhorse driver and simulator on one C{Clock}: the framework's
L{DriverBench} with the simulated ADCP, its clock set to the spec's example
time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.internet.task import Clock

from instrumentd.instruments.teledyne.workhorse.driver import WorkhorseProtocol
from instrumentd.instruments.teledyne.workhorse.simulator import WorkhorseSimulator
from instrumentd.simulator import SimulatorSettings
from instrumentd.testing import DriverBench

#: The instrument's clock at start, and the host's (a quarter second past).
INSTRUMENT_START = datetime(2013, 3, 15, 21, 33, 2, tzinfo=UTC).timestamp()
HOST_START = 1_700_000_000.25


class Bench(DriverBench):
    """
    A driver and a simulated Workhorse on one clock, events collected.

    @ivar adcp: the simulator.
    """

    def __init__(
        self,
        *,
        awake: bool = False,
        init_config: dict[str, object] | None = None,
        **settings: Any,
    ) -> None:
        clock = Clock()
        clock.advance(HOST_START)
        options: dict[str, Any] = {"start_time": INSTRUMENT_START}
        options.update(settings)
        self.adcp = WorkhorseSimulator(
            SimulatorSettings(**options), reactor=clock, awake=awake
        )
        super().__init__(WorkhorseProtocol, self.adcp, clock, init_config=init_config)


def values(particle: Any) -> dict[str, object]:
    """
    A particle's values as a dict.
    """
    return {entry["value_id"]: entry["value"] for entry in particle.values}
