"""
The Teledyne RDI Workhorse ADCP (Sentinel, Monitor, Long Ranger), a current
profiler that streams binary PD0 ensembles.

:mod:`.pd0` reads and writes PD0 ensembles and frames them in a byte stream
(shared by the driver and the simulator).

:mod:`.driver` is the driver protocol (:class:`WorkhorseProtocol`, for
:class:`~instrumentd.driver.InstrumentDriver`), with its parameters in
:mod:`.parameters` and its records and particles in :mod:`.particles`; see
``doc/instruments/workhorse.md``.

:mod:`.simulator` is a faithful simulator (``twistd instrumentd simulate
workhorse``), with its settings table in :mod:`.settings`, its water in
:mod:`.physics` and its diagnostic texts in :mod:`.diagnostics`.
"""

from instrumentd.instruments.teledyne.workhorse.driver import (
    WorkhorseInputs,
    WorkhorseMachine,
    WorkhorseProtocol,
)
from instrumentd.instruments.teledyne.workhorse.particles import (
    ConfigParticle,
    EngineeringParticle,
    SystemConfigurationParticle,
    TestResultsParticle,
    VelocityBeamParticle,
    VelocityEarthParticle,
)

__all__ = [
    "ConfigParticle",
    "EngineeringParticle",
    "SystemConfigurationParticle",
    "TestResultsParticle",
    "VelocityBeamParticle",
    "VelocityEarthParticle",
    "WorkhorseInputs",
    "WorkhorseMachine",
    "WorkhorseProtocol",
]
