"""
The Aanderaa 4831 oxygen optode (also 4330, 4835): its driver protocol,
particles and simulator.

- :class:`OptodeProtocol`: the driver protocol (``driver.py``);
- :class:`OptodeSample`, :class:`OptodeStatus`: its particles
  (``particles.py``);
- :class:`~instrumentd.instruments.aanderaa.optode.simulator.OptodeSimulator`:
  the simulator (``simulator.py``, imported only when used).
"""

from instrumentd.instruments.aanderaa.optode.driver import (
    OptodeInputs,
    OptodeMachine,
    OptodeProtocol,
)
from instrumentd.instruments.aanderaa.optode.particles import (
    OptodeSample,
    OptodeStatus,
)

__all__ = [
    "OptodeInputs",
    "OptodeMachine",
    "OptodeProtocol",
    "OptodeSample",
    "OptodeStatus",
]
