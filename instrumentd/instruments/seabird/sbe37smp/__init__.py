"""
The Sea-Bird SBE 37-SMP MicroCAT, a moored CTD.

:mod:`.simulator` is a faithful simulator of its serial dialogue
(``twistd instrumentd simulate sbe37``).

:mod:`.driver` is its driver protocol (:class:`SBE37Protocol`, for
:class:`~instrumentd.driver.InstrumentDriver`), with its parameters in
:mod:`.parameters` and its records and particles in :mod:`.particles`; see
``doc/instruments/sbe37smp.md``.
"""

from instrumentd.instruments.seabird.sbe37smp.driver import (
    SBE37Inputs,
    SBE37Machine,
    SBE37Protocol,
)
from instrumentd.instruments.seabird.sbe37smp.particles import (
    SBE37CalibrationParticle,
    SBE37SampleParticle,
    SBE37StatusParticle,
)

__all__ = [
    "SBE37CalibrationParticle",
    "SBE37Inputs",
    "SBE37Machine",
    "SBE37Protocol",
    "SBE37SampleParticle",
    "SBE37StatusParticle",
]
