# -*- test-case-name: tests.test_optode_driver -*-
"""
The driver protocol of the Aanderaa 4831 oxygen optode (Smart Sensor
Terminal, firmware framework 3), written on the framework as any driver
writer would: declarations, and a handler per command.

Use it with the framework's driver::

    driver = InstrumentDriver(PortAgentConnection(), OptodeProtocol)

The sensor has no prompt: it says ``#`` to what it accepts and a line
starting with ``*`` to what it refuses (the protocol's :attr:`error` mark),
and its serial receiver sleeps, losing the characters that wake it and
saying ``!`` when awake (unless told not to).  So the wake-up is a harmless
comment line (``//``) that may get no answer
(:attr:`~instrumentd.driver.engine.Wakeup.may_be_silent`).  Settings need a
passkey; the driver sends the lowest one that allows the values being set,
then ``Save``.

It is in COMMAND when stopped or in polled mode (samples with ``Do
Sample``), in AUTOSAMPLE while it samples every ``Interval`` seconds
(``Start``/``Stop``).  Nothing in the sensor says which: discovery reads
``Get All`` and, out of polled mode, waits up to an interval for a sample.
``doc/instruments/optode.md`` is the operator's description.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Protocol

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred

from instrumentd.driver.engine import Command, InstrumentSession, Reply, Wakeup
from instrumentd.driver.errors import InstrumentTimeoutError
from instrumentd.driver.parameters import (
    Parameter,
    ParameterDictionary,
    ParameterType,
    Visibility,
)
from instrumentd.driver.particles import particle_values
from instrumentd.driver.protocol import (
    InstrumentProtocol,
    ProtocolInputs,
    ProtocolState,
    autosample_inputs,
    loop_inputs,
    standard_states,
)
from instrumentd.driver.textcommands import line_command
from instrumentd.instruments.aanderaa.optode.particles import (
    SAMPLE,
    SIEVES,
    STATUS,
    OptodeSample,
    OptodeStatus,
)

__all__ = ["OptodeInputs", "OptodeMachine", "OptodeProtocol"]

_ANSWER: Final = re.compile(rb"#\r\n|\*[^\r\n]*\r\n")
#: Comm TimeOut choices (passkey 1000 to change), and their seconds.
_SECONDS: Final = {"10 s": 10, "20 s": 20, "30 s": 30, "1 min": 60, "2 min": 120,
                   "5 min": 300, "10 min": 600}  # fmt: skip
COMM_TIMEOUTS: Final = ("Always On", *_SECONDS)


def _command(
    text: str, ends: re.Pattern[bytes], timeout: float = 5.0
) -> Command[bytes]:
    # Its reply ends with what it was waiting for, or a refusal.
    ending = re.compile(ends.pattern + rb"|\*[^\r\n]*\r\n")
    return line_command(text, parse=_data, regex=ending, timeout=timeout)


def _data(reply: Reply) -> bytes:
    return reply.data


GET_ALL: Final = _command("Get All", STATUS)
DO_SAMPLE: Final = _command("Do Sample", SAMPLE, timeout=10.0)
START: Final = _command("Start", _ANSWER)
STOP: Final = _command("Stop", _ANSWER)


def _setting(name: str, printed: str, kind: ParameterType, **more: Any) -> Parameter:
    def write(value: object) -> str:
        shown = ("Yes" if value else "No") if isinstance(value, bool) else value
        return f"Set {printed}({shown})"

    return Parameter(
        name=name,
        type=kind,
        direct_access=more.pop("direct_access", True),
        display_name=printed,
        pattern=re.compile(rf"^{printed}\t[^\t]*\t[^\t]*\t([^\t\r\n]*)", re.M),
        format=write,
        **more,
    )


_B = ParameterType.BOOL
#: Settings needing passkey 1000; the rest need 1.
HIGH: Final = frozenset({"SALINITY", "COMM_TIMEOUT"})
PARAMETERS: Final = (
    _setting("INTERVAL", "Interval", ParameterType.FLOAT, minimum=1.0,
             maximum=86_400.0, units="s", description="Seconds between samples."),
    _setting("ENABLE_POLLED_MODE", "Enable Polled Mode", _B,
             description="Sample only when asked (Do Sample)."),
    _setting("ENABLE_SLEEP", "Enable Sleep", _B, description="Sleep between samples."),
    _setting("ENABLE_TEXT", "Enable Text", _B,
             description="Print each value with its name and unit."),
    _setting("ENABLE_DECIMALFORMAT", "Enable Decimalformat", _B,
             description="Decimal (yes) or exponential (no) output."),
    _setting("ENABLE_TEMPERATURE", "Enable Temperature", _B),
    _setting("ENABLE_AIRSATURATION", "Enable AirSaturation", _B),
    _setting("ENABLE_RAWDATA", "Enable Rawdata", _B,
             description="Output phases, amplitudes and the thermistor voltage."),
    _setting("SALINITY", "Salinity", ParameterType.FLOAT, minimum=0.0, maximum=45.0,
             description="Salinity the O2 concentration is computed for."),
    _setting("COMM_TIMEOUT", "Comm TimeOut", ParameterType.ENUM,
             allowed_values=COMM_TIMEOUTS,
             description="Idle time before the serial receiver sleeps."),
    *(
        _setting(name, printed, ParameterType.STRING, visibility=Visibility.READ_ONLY,
                 direct_access=False)
        for name, printed in (("PRODUCT_NUMBER", "Product Number"),
                              ("SERIAL_NUMBER", "Serial Number"),
                              ("MODE", "Mode"), ("FOIL_ID", "FoilID"))
    ),
)  # fmt: skip


class OptodeInputs(ProtocolInputs, Protocol):
    """
    The optode's own inputs, besides the standard ones.
    """

    def acquire_sample(self) -> Deferred[dict[str, object]]:
        """
        Take one sample now (Do Sample); it is also published as a
        dosta_sample particle.
        """

    def acquire_status(self) -> Deferred[dict[str, object]]:
        """
        Read every property (Get All); also published as a dosta_status
        particle, and the settings in it are recorded.
        """

    def start_autosample(self) -> Deferred[None]:
        """
        Sample every Interval seconds (Start); refused in polled mode.
        """

    def stop_autosample(self) -> Deferred[None]:
        """
        Stop sampling (Stop).
        """


class OptodeProtocol(InstrumentProtocol[OptodeInputs]):
    """
    The optode's protocol: its declarations, and the work behind its inputs.
    """

    inputs = OptodeInputs
    error = re.compile(rb"(?m)^\*")
    wakeup = Wakeup(
        data=b"//\r\n", prompts=(b"!",), timeout=1.0, sleep_after=50.0,
        may_be_silent=True,
    )  # fmt: skip
    sieves = SIEVES
    particles = (OptodeSample, OptodeStatus)
    scheduled_jobs = {
        "acquire_sample": "acquire_sample",
        "acquire_status": "acquire_status",
    }
    driver_name = "aanderaa_optode"
    driver_version = "1.0"
    discover_on_start: ClassVar[bool] = True

    def declare_parameters(self, parameters: ParameterDictionary) -> None:
        """
        The settings and identity read from ``Get All``.
        """
        for parameter in PARAMETERS:
            parameters.add(parameter)

    async def read_all(self, session: InstrumentSession) -> bytes:
        """
        ``Get All``, and record the settings in it.
        """
        dump = await session.run(GET_ALL)
        self.record_changes(await self.update_parameters(session, dump))
        return dump

    async def discover_state(self, session: InstrumentSession) -> str:
        """
        Wake the sensor, read its settings; in polled mode it is in COMMAND,
        else a sample within an interval (and a bit) means AUTOSAMPLE.
        """
        await session.wake("discover")
        await self.read_all(session)
        if self.parameters.get("ENABLE_POLLED_MODE"):
            return ProtocolState.COMMAND
        interval = float(self.parameters.get("INTERVAL") or 0)  # type: ignore[arg-type]
        try:
            await session.await_reply(
                "discover", regex=SAMPLE, timeout=interval + 2.5, probe=True
            )
        except InstrumentTimeoutError:
            return ProtocolState.COMMAND
        return ProtocolState.AUTOSAMPLE

    async def update_parameters(
        self, session: InstrumentSession, dump: bytes | None = None
    ) -> dict[str, object] | None:
        """
        Read the settings from ``Get All`` (or a dump just read), and wake
        the sensor before its own Comm TimeOut puts it to sleep.
        """
        dump = dump if dump is not None else await session.run(GET_ALL)
        changes = self.parameters.update(dump.decode("latin-1"))
        seconds = _SECONDS.get(str(self.parameters.get("COMM_TIMEOUT")))
        self.engine.sleep_after = None if seconds is None else 0.8 * seconds
        return changes

    async def write_parameters(
        self, session: InstrumentSession, values: Mapping[str, object]
    ) -> None:
        """
        The passkey the values need, one ``Set`` each, then ``Save``.
        """
        passkey = 1000 if HIGH & set(values) else 1
        await session.run(_command(f"Set Passkey({passkey})", _ANSWER))
        for name, value in values.items():
            await session.run(
                _command(self.parameters.format_value(name, value), _ANSWER)
            )
        await session.run(_command("Save", _ANSWER))

    def acquire_sample(self) -> Deferred[dict[str, object]]:
        """
        ``Do Sample``: the sample's values.
        """
        done = self.run("acquire_sample", DO_SAMPLE)
        return done.addCallback(lambda data: particle_values(OptodeSample, data))

    def acquire_status(self) -> Deferred[dict[str, object]]:
        """
        ``Get All``: record the settings, return the status values.
        """

        async def work(session: InstrumentSession) -> dict[str, object]:
            return particle_values(OptodeStatus, await self.read_all(session))

        return self.hold("acquire_status", work)


_builder = TypeMachineBuilder(OptodeInputs, OptodeProtocol)
_states = standard_states(_builder)
loop_inputs(
    (_states.command, _states.autosample),
    OptodeInputs.acquire_sample,
    OptodeInputs.acquire_status,
)

autosample_inputs(
    _states, OptodeInputs.start_autosample, OptodeInputs.stop_autosample, START, STOP
)

#: The protocol machine: the standard states and the inputs above.
OptodeMachine = _builder.build()
OptodeProtocol.machine_factory = OptodeMachine
