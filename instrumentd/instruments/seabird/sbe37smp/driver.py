# -*- test-case-name: tests.test_sbe37_driver -*-
"""
The driver protocol of the Sea-Bird SBE 37-SMP MicroCAT.

Use it with the framework's driver::

    driver = InstrumentDriver(PortAgentConnection(), SBE37Protocol)
    driver.set_init_params({"parameters": {"INTERVAL": 30}})
    driver.configure({"method": "port_agent", "host": "127.0.0.1",
                      "data_port": 4001, "command_port": 4002})
    await driver.connect()

Each time the instrument link comes up the protocol asks the instrument
what it is doing (``DS``'s second line) and goes to COMMAND or AUTOSAMPLE
by itself, so after a dropped link the driver is back in the right state
without an operator.  In COMMAND it offers ``acquire_sample`` (``TS``),
``acquire_status`` (``DS``), ``acquire_calibration`` (``DC``),
``start_autosample`` (``STARTNOW``), ``clock_sync`` (``MMDDYY=`` and
``HHMMSS=`` from UTC), ``get``, ``set`` and direct access; while logging, the
commands the instrument allows then (``TS``, ``DS``, ``DC``, ``STOP``) and
a clock sync that stops, sets the clock and starts again.

It reads the dumps and samples of every firmware generation and sensor
fit found (2.3, 2.6, 3.0h and what is known of 5; with and without a
pressure sensor or pump: see :mod:`.particles`).  Whether a pressure sensor
is fitted is learnt from the calibration dump, read at the first
discovery: without one, a sample has no pressure column.

The instrument sleeps after about two idle minutes and ignores the bytes
that wake it, so the protocol declares a wake-up (a bare CR LF until
``S>``, three tries) that the engine sends only when the instrument may be
asleep: before the first command, after a timeout, after a long idle
spell, and at every discovery (an operator may have sent ``QS`` in direct
access).

``doc/instruments/sbe37smp.md`` is the operator's description;
``doc/writing-a-driver.md`` section 10 walks through this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import ClassVar, Final, Protocol

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred

from instrumentd.driver.commands import CommandDictionary
from instrumentd.driver.engine import Command, InstrumentSession, Reply, Wakeup
from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.parameters import ParameterDictionary
from instrumentd.driver.particles import DataParticle, particle_values
from instrumentd.driver.protocol import (
    InstrumentProtocol,
    ProtocolInputs,
    ProtocolState,
    autosample_inputs,
    loop_inputs,
    standard_states,
)
from instrumentd.driver.routines import next_utc_second, paused
from instrumentd.driver.textcommands import line_command, record_command
from instrumentd.instruments.seabird.sbe37smp.parameters import (
    GENERATIONS,
    SETTERS,
    declare_parameters,
)
from instrumentd.instruments.seabird.sbe37smp.particles import (
    SIEVES,
    SBE37CalibrationParticle,
    SBE37DrySampleParticle,
    SBE37SampleParticle,
    SBE37StatusParticle,
)

__all__ = [
    "DC",
    "DS",
    "PROMPT",
    "STARTNOW",
    "STOP",
    "TS",
    "TS_DRY",
    "WAKEUP",
    "SBE37Inputs",
    "SBE37Machine",
    "SBE37Protocol",
    "setter",
]

#: What ends every reply: CR LF and this prompt (``?cmd S>`` for an unknown
#: command ends with it too).
PROMPT: Final = b"S>"

#: A bare CR LF until the prompt, three tries.  The spec allows up to about
#: a second before a woken instrument answers, so each try waits two; the
#: instrument sleeps after about two idle minutes, so after 100 s without
#: input the driver assumes it may be asleep.
WAKEUP: Final = Wakeup(data=b"\r\n", timeout=2.0, tries=3, sleep_after=100.0)

#: The instrument's refusals: ``?cmd`` (2.x) or an ``<ERROR .../>`` line
#: (3.0 on) for a command it does not know, an ``***ERROR...***`` line for a
#: bad value, ``cmd not allowed while logging``.
REFUSAL: Final = re.compile(
    rb"\?cmd|<ERROR[^\r\n]*|\*\*\*ERROR[^\r\n]*|cmd not allowed while logging"
)


def _ts(particle: type[SBE37SampleParticle]) -> Command[dict[str, object]]:
    def sample(reply: Reply) -> dict[str, object]:
        # While logging, a '#' line may arrive with TS's own line (which
        # has no '#'); the result is TS's.
        found = list(particle.pattern.finditer(reply.data))
        if not found:
            raise InstrumentProtocolError(
                f"TS: no sample in the reply (is FORMAT=1?): {reply.body[:200]!r}"
            )
        polled = [m for m in found if not m.group(0).startswith(b"#")]
        return particle_values(particle, reply.data[(polled or found)[-1].start() :])

    # A measurement takes about a second, longer with NAVG above 1.
    return line_command("TS", parse=sample, timeout=20.0)


#: Status dump: its values.
DS: Final = record_command("DS", SBE37StatusParticle, timeout=10.0)
#: Calibration dump: its values.
DC: Final = record_command("DC", SBE37CalibrationParticle, timeout=10.0)
#: Take a sample now.
TS: Final = _ts(SBE37SampleParticle)
#: Take a sample now, without a pressure sensor.
TS_DRY: Final = _ts(SBE37DrySampleParticle)
#: Start logging at once.
STARTNOW: Final = line_command("STARTNOW", expect=b"start now", timeout=10.0)
#: Stop logging.
STOP: Final = line_command("STOP", timeout=10.0)


def setter(text: str) -> Command[None]:
    """
    A ``NAME=value`` command, named by its text so that a refusal says
    which.

    :param text: e.g. ``"INTERVAL=30"``.
    :returns: the command.
    """
    return line_command(text, timeout=10.0)


class SBE37Inputs(ProtocolInputs, Protocol):
    """
    The SBE 37-SMP's own inputs, besides the standard ones.
    """

    def acquire_sample(self) -> Deferred[dict[str, object]]:
        """
        Take one sample now (TS); it is also published as a ctdpf_sample
        particle.
        """

    def acquire_status(self) -> Deferred[dict[str, object]]:
        """
        Read the status dump (DS); it is also published as a ctdpf_status
        particle, and the settings in it are recorded.
        """

    def acquire_calibration(self) -> Deferred[dict[str, object]]:
        """
        Read the calibration coefficients (DC); they are also published as
        a ctdpf_calibration particle and recorded as parameters.
        """

    def start_autosample(self) -> Deferred[None]:
        """
        Start logging: a sample every INTERVAL seconds (STARTNOW).
        """

    def stop_autosample(self) -> Deferred[None]:
        """
        Stop logging (STOP).
        """

    def clock_sync(self) -> Deferred[str]:
        """
        Set the instrument's clock to UTC (MMDDYY= and HHMMSS=); while
        logging, stop, set it and start again.
        """


class SBE37Protocol(InstrumentProtocol[SBE37Inputs]):
    """
    The SBE 37-SMP's protocol: its declarations, and the work behind its
    inputs.  It discovers the instrument's state each time the link comes
    up (:attr:`~InstrumentProtocol.discover_on_start`).
    """

    inputs = SBE37Inputs
    prompts = (PROMPT,)
    wakeup = WAKEUP
    sieves = SIEVES
    particles = (
        SBE37SampleParticle,
        SBE37DrySampleParticle,
        SBE37StatusParticle,
        SBE37CalibrationParticle,
    )
    scheduled_jobs = {
        "acquire_sample": "acquire_sample",
        "acquire_status": "acquire_status",
        "acquire_calibration": "acquire_calibration",
        "clock_sync": "clock_sync",
    }
    driver_name = "seabird_sbe37smp"
    driver_version = "1.0"
    error = REFUSAL
    discover_on_start: ClassVar[bool] = True
    #: Whether the instrument has a pressure sensor: its calibration dump
    #: has a pressure section.  Assumed until one has been read.
    pressure_sensor = True
    #: The firmware version its status dump gave (``"2.6"``, ``"3.0h"``),
    #: or ``None`` before one has been read.
    firmware: str | None = None
    #: The firmware's generation in :data:`.parameters.GENERATIONS`: 3.0 and
    #: later name their commands ``SampleInterval=``, ``DateTime=``...; 2.x
    #: until a status dump has said otherwise.
    generation: str = GENERATIONS[0]

    def record_particles(self) -> tuple[type[DataParticle], ...]:
        """
        Without a pressure sensor, samples are read without a pressure
        column first: ``T, C, x.xxx`` is then sound velocity.
        """
        if self.pressure_sensor:
            return self.particles
        return (SBE37DrySampleParticle, *self.particles)

    # Declarations.

    def declare_parameters(self, parameters: ParameterDictionary) -> None:
        """
        The settings from ``DS`` and the calibration from ``DC``; see
        :mod:`.parameters`.
        """
        declare_parameters(parameters)

    def declare_commands(self, commands: CommandDictionary) -> None:
        """
        Names, timeouts and results of the instrument's own commands.
        """
        for name, display, timeout, result in (
            ("acquire_sample", "Acquire sample", 25.0, "the sample's values"),
            ("acquire_status", "Acquire status", 15.0, "the status values"),
            ("acquire_calibration", "Acquire calibration", 15.0, "the coefficients"),
            ("start_autosample", "Start autosample", 15.0, ""),
            ("stop_autosample", "Stop autosample", 15.0, ""),
            ("clock_sync", "Synchronize clock", 30.0, "the UTC time set, ISO 8601"),
        ):
            commands.describe(SBE37Inputs, name, display, timeout, result)

    # Discovering.

    async def discover_state(self, session: InstrumentSession) -> str:
        """
        Wake the instrument (it may be asleep whatever the engine thinks:
        an operator may have sent ``QS``), read ``DS`` (the settings, the
        firmware, and from its second line whether it is logging) and, the
        first time, ``DC``: every parameter, so the startup values are
        compared with these (:meth:`parameters_read`), not read again.
        """
        await session.wake("discover")
        status, changes = await self._read(session, DS)
        self.record_changes(changes)
        if self._uncalibrated():
            self.record_changes((await self._read(session, DC))[1])
        # What update_parameters reads: the startup values set next compare
        # with these rather than read DS again.
        self.parameters_read(session)
        # Each firmware's words: "logging data", "not logging: ..." (2.x),
        # "not logging, ..." (3.0h and later).
        if status["logging"] is None:
            raise InstrumentProtocolError(f"DS: no logging line: {status!r}")
        return ProtocolState.AUTOSAMPLE if status["logging"] else ProtocolState.COMMAND

    async def _read(
        self, session: InstrumentSession, dump: Command[dict[str, object]]
    ) -> tuple[dict[str, object], dict[str, object]]:
        # DS or DC: its values and the parameters' changes.  DS tells the
        # firmware (and with it the settings it lacks), DC whether a
        # pressure sensor is fitted (a pressure section: its "pressure S/N"
        # line).
        values = await session.run(dump)
        if dump is DC:
            self.pressure_sensor = values["pressure_serial_number"] is not None
        elif values["firmware_version"] != self.firmware:
            self.firmware = str(values["firmware_version"])
            self.generation = GENERATIONS[self.firmware[:1] not in ("1", "2")]
            self.parameters.set_unsupported(
                SETTERS.lacking(self.generation, self.firmware)
            )
        return values, self.parameters.update_from(values)

    def _uncalibrated(self) -> bool:
        # Never read: a dump always has the temperature section (not every
        # one has the rest).
        return bool(self.parameters.stale(("TCALDATE",)))

    # Parameters.

    async def update_parameters(
        self, session: InstrumentSession
    ) -> dict[str, object] | None:
        """
        Read the settings from ``DS`` (and the calibration from ``DC`` if
        it has never been read).
        """
        changes = (await self._read(session, DS))[1]
        if self._uncalibrated():
            changes.update((await self._read(session, DC))[1])
        return changes

    async def write_parameters(
        self, session: InstrumentSession, values: Mapping[str, object]
    ) -> None:
        """
        One ``NAME=value`` command per value, named as the firmware names
        it; the first the instrument refuses fails the set with its error
        line.
        """
        for name, value in values.items():
            command = SETTERS.command(name, value, self.generation, self.firmware)
            await session.run(setter(command))

    # The work behind the instrument's own inputs.

    def acquire_sample(self) -> Deferred[dict[str, object]]:
        """
        ``TS``, read as a sample with or without a pressure column.
        """
        return self.run("acquire_sample", TS if self.pressure_sensor else TS_DRY)

    def acquire_status(self) -> Deferred[dict[str, object]]:
        """
        ``DS``: record the settings, return the status values.
        """
        return self._acquire("acquire_status", DS)

    def acquire_calibration(self) -> Deferred[dict[str, object]]:
        """
        ``DC``: record the calibration, return its values.
        """
        return self._acquire("acquire_calibration", DC)

    def _acquire(
        self, input: str, dump: Command[dict[str, object]]
    ) -> Deferred[dict[str, object]]:
        async def work(session: InstrumentSession) -> dict[str, object]:
            values, changes = await self._read(session, dump)
            self.record_changes(changes)
            return values

        return self.hold(input, work)

    def clock_sync(self) -> Deferred[str]:
        """
        Set the instrument's clock to UTC; if it is logging, stop first and
        start again after, whatever happens in between.
        """
        logging = self.state == ProtocolState.AUTOSAMPLE

        async def work(session: InstrumentSession) -> str:
            async with paused(session, STOP, STARTNOW, logging):
                return (await self.set_clock(session)).isoformat()

        return self.hold("clock_sync", work)

    async def set_clock(self, session: InstrumentSession) -> datetime:
        """
        Set the clock as the next UTC second begins: the instrument keeps
        whole seconds and takes the time when the line ends, so this sets
        it to within the line's delay rather than up to a second slow.
        Firmware 3.0 on takes ``DateTime=mmddyyyyhhmmss``; 2.x takes
        ``MMDDYY=`` first and then ``HHMMSS=`` (and the date again if
        midnight passed in between).

        :param session: the instrument, held.
        :returns: the time set.
        """
        clock = self.engine.clock
        day = datetime.fromtimestamp(clock.seconds(), UTC).date()
        modern = self.generation != GENERATIONS[0]
        if not modern:
            await session.run(setter(f"MMDDYY={day:%m%d%y}"))
        when = await next_utc_second(clock)
        if modern:
            await session.run(setter(f"DateTime={when:%m%d%Y%H%M%S}"))
            return when
        await session.run(setter(f"HHMMSS={when:%H%M%S}"))
        if when.date() != day:
            await session.run(setter(f"MMDDYY={when:%m%d%y}"))
        return when


# The machine.

_builder = TypeMachineBuilder(SBE37Inputs, SBE37Protocol)
_states = standard_states(_builder)
autosample_inputs(
    _states, SBE37Inputs.start_autosample, SBE37Inputs.stop_autosample, STARTNOW, STOP
)
# The instrument allows TS, DS and DC while logging; a clock sync while
# logging stops and starts again.
loop_inputs(
    (_states.command, _states.autosample),
    SBE37Inputs.acquire_sample,
    SBE37Inputs.acquire_status,
    SBE37Inputs.acquire_calibration,
    SBE37Inputs.clock_sync,
)

#: The protocol machine: the standard states and the inputs above.
SBE37Machine = _builder.build()
SBE37Protocol.machine_factory = SBE37Machine
