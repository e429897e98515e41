"""
Simulated instruments, reachable over TCP, a pty serial device, or in memory.

An instrument is a :class:`SimulatedInstrument` (a model of its state and its
dialogue) behind a :class:`SerialLine` (baud-rate pacing and injected
:class:`Faults`).  Front ends connect hosts to it: :func:`listen` (TCP or
any server endpoint), :class:`PtySerialDevice` (a pty the host opens as a
serial port) and, for tests, :class:`InProcessLink` and
:func:`connect_pump`.  ``twistd instrumentd simulate MODEL`` runs one with
:class:`SimulatorService`; see ``doc/simulators.md``.
"""

from instrumentd.simulator.base import (
    SIMULATOR_MODELS,
    InstrumentClock,
    InstrumentFactory,
    InstrumentProtocol,
    SerialLine,
    SimulatedInstrument,
    SimulatorSettings,
    UnknownModelError,
    check_simulator,
    make_simulator,
    simulator_class,
)
from instrumentd.simulator.faults import (
    FaultControlFactory,
    FaultControlProtocol,
    Faults,
)
from instrumentd.simulator.frontends import (
    DEFAULT_LISTEN,
    InProcessLink,
    PtyAddress,
    PtySerialDevice,
    SimulatorService,
    connect_pump,
    listen,
    loopback_by_default,
)

__all__ = [
    "DEFAULT_LISTEN",
    "SIMULATOR_MODELS",
    "FaultControlFactory",
    "FaultControlProtocol",
    "Faults",
    "InProcessLink",
    "InstrumentClock",
    "InstrumentFactory",
    "InstrumentProtocol",
    "PtyAddress",
    "PtySerialDevice",
    "SerialLine",
    "SimulatedInstrument",
    "SimulatorService",
    "SimulatorSettings",
    "UnknownModelError",
    "check_simulator",
    "connect_pump",
    "listen",
    "loopback_by_default",
    "make_simulator",
    "simulator_class",
]
