# -*- test-case-name: tests.test_workhorse_driver -*-
"""
The driver protocol of the Teledyne RDI Workhorse ADCP.

Use it with the framework's driver::

    driver = InstrumentDriver(PortAgentConnection(), WorkhorseProtocol)
    driver.configure({"method": "port_agent", "host": "127.0.0.1",
                      "data_port": 4001, "command_port": 4002})
    await driver.connect()

The instrument answers at a ``>`` prompt, marks refusals ``ERR nnn:``, is
woken (and stopped) by a serial break, and streams binary PD0 ensembles
while pinging; ``doc/instruments/workhorse.md`` describes what the driver
offers, ``doc/writing-a-driver.md`` how it is built.

Discovery does not break a deployment it can see: it sends a bare CR and
waits for the prompt (command mode) or an ensemble (pinging); only when
neither comes (asleep, or pinging with a long ensemble interval) does it
send a break, which leaves the instrument in command mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, ClassVar, Final, Protocol

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred

from instrumentd.driver.commands import CommandDictionary
from instrumentd.driver.engine import Command, InstrumentSession, Reply, Wakeup
from instrumentd.driver.errors import InstrumentTimeoutError
from instrumentd.driver.events import EventBus, SampleEvent
from instrumentd.driver.parameters import ParameterDictionary
from instrumentd.driver.particles import (
    DataParticle,
    RegexDataParticle,
    particle_values,
)
from instrumentd.driver.protocol import (
    InstrumentProtocol,
    ProtocolInputs,
    ProtocolState,
    loop_inputs,
    standard_states,
)
from instrumentd.driver.routines import next_utc_second, paused
from instrumentd.driver.textcommands import line_command
from instrumentd.instruments.teledyne.workhorse import pd0
from instrumentd.instruments.teledyne.workhorse.parameters import (
    CODES,
    declare_parameters,
)
from instrumentd.instruments.teledyne.workhorse.particles import (
    SIEVES,
    ConfigParticle,
    EngineeringParticle,
    SystemConfigurationParticle,
    TestResultsParticle,
    VelocityBeamParticle,
    VelocityEarthParticle,
    is_earth,
)

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = ["WAKEUP", "WorkhorseInputs", "WorkhorseMachine", "WorkhorseProtocol"]

PROMPT: Final = b"\r\n>"
#: A break of 300 ms (``===`` where the link cannot carry one) until the
#: wake-up banner.  In command mode the instrument self-deploys or sleeps
#: after about five idle minutes, so after four the driver breaks first.
WAKEUP: Final = Wakeup(
    break_ms=300,
    data=b"===",
    regex=re.compile(rb"\[(?:BREAK|ALARM) Wakeup[^>]*>"),
    timeout=3.0,
    tries=3,
    sleep_after=240.0,
)
#: The longest wait for the one ensemble of ``acquire_sample``.
ENSEMBLE_TIMEOUT: Final = 90.0
_AWAKE_OR_PINGING: Final = re.compile(rb"\A\r\n>|\x7f\x7f")


def _body(reply: Reply) -> str:
    return reply.text


PS0: Final = line_command("PS0", parse=_body, timeout=10.0)
PT200: Final = line_command("PT200", parse=_body, timeout=60.0)
CS: Final = line_command("CS", parse=_body, timeout=10.0, regex=re.compile(rb"CS\r\n"))
CK: Final = line_command("CK", parse=_body, timeout=10.0)
#: Every parameter's ``?`` in one write, the replies up to the last prompt.
QUERY_ALL: Final = Command(
    name="settings",
    build=lambda: "".join(f"{code}?\r\n" for code in CODES).encode("ascii"),
    parse=_body,
    regex=re.compile(rb"(?:[^>]*\r\n>){%d}" % len(CODES)),
    timeout=15.0,
)


#: The leader fields whose change publishes adcp_config / adcp_engineering.
_WATCHED: Final = {
    ConfigParticle.stream_name: tuple(
        name for name in pd0.FIXED_FIELDS if name not in ("id", "spare_1", "spare_2")
    ),
    EngineeringParticle.stream_name: (
        "bit_result",
        "error_status_word",
        "adc",
        "heading_stdev",
        "pitch_stdev",
        "roll_stdev",
    ),
}


def setter(text: str) -> Command[str]:
    """
    A set command (``WN30``), named by its text so that a refusal says
    which.
    """
    return line_command(text, parse=_body, timeout=10.0)


class WorkhorseInputs(ProtocolInputs, Protocol):
    """
    The Workhorse's own inputs, besides the standard ones.
    """

    def acquire_sample(self) -> Deferred[dict[str, object]]:
        """
        Ping one ensemble now (CS with ensemble cycling off); it is also
        published as a velocity particle.
        """

    def acquire_status(self) -> Deferred[dict[str, object]]:
        """
        Read the system configuration (PS0); also published as an
        adcp_system_configuration particle.
        """

    def run_test_200(self) -> Deferred[dict[str, object]]:
        """
        Run the built-in tests (PT200); also published as an
        adcp_test_results particle.
        """

    def start_autosample(self) -> Deferred[None]:
        """
        Start pinging (CS): an ensemble every TE.
        """

    def stop_autosample(self) -> Deferred[None]:
        """
        Stop pinging (a break).
        """

    def clock_sync(self) -> Deferred[str]:
        """
        Set the instrument's clock to UTC (TT); while pinging, break, set
        it and start again.
        """

    def save_setup(self) -> Deferred[None]:
        """
        Save the settings as the user defaults (CK).
        """


class WorkhorseProtocol(InstrumentProtocol[WorkhorseInputs]):
    """
    The Workhorse's protocol.

    :ivar bad_ensembles: ensembles dropped because their checksum did not
        verify or they were cut short.
    """

    inputs = WorkhorseInputs
    prompts = (PROMPT,)
    error = re.compile(rb"ERR \d{3}:")
    wakeup = WAKEUP
    sieves = SIEVES
    particles = (SystemConfigurationParticle, TestResultsParticle)
    published_particles = (
        VelocityEarthParticle,
        VelocityBeamParticle,
        ConfigParticle,
        EngineeringParticle,
    )
    scheduled_jobs = {
        "acquire_status": "acquire_status",
        "run_test_200": "run_test_200",
        "clock_sync": "clock_sync",
    }
    driver_name = "teledyne_workhorse"
    driver_version = "1.0"
    discover_on_start: ClassVar[bool] = True

    def __init__(
        self,
        send: Callable[[bytes], object],
        events: EventBus,
        *,
        clock: IReactorTime | None = None,
        init_config: Mapping[str, object] | None = None,
        send_break: Callable[[int], Deferred[None]] | None = None,
    ) -> None:
        """
        As :class:`InstrumentProtocol`.
        """
        self.bad_ensembles = 0
        self.ensembles = 0
        self._last: dict[str, tuple[object, ...]] = {}
        self._waiting: list[Deferred[dict[str, object]]] = []
        super().__init__(
            send, events, clock=clock, init_config=init_config, send_break=send_break
        )

    def declare_parameters(self, parameters: ParameterDictionary) -> None:
        """
        The deployment parameters; see :mod:`.parameters`.
        """
        declare_parameters(parameters)

    def declare_commands(self, commands: CommandDictionary) -> None:
        """
        Timeouts and results of the instrument's own commands.
        """
        for name, timeout, result in (
            ("acquire_sample", 120.0, "the ensemble's values"),
            ("acquire_status", 20.0, "the PS0 values"),
            ("run_test_200", 90.0, "the test results"),
            ("start_autosample", 30.0, ""),
            ("stop_autosample", 20.0, ""),
            ("clock_sync", 40.0, "the UTC time set, ISO 8601"),
            ("save_setup", 20.0, ""),
        ):
            display = name.replace("_", " ").capitalize()
            commands.describe(WorkhorseInputs, name, display, timeout, result)

    # Records.

    def got_record(self, record: bytes, timestamp: float) -> None:
        """
        An ensemble: its velocity particle, and the config and engineering
        particles when they changed.  Text records: the default.
        """
        if not record.startswith(pd0.SYNC):
            super().got_record(record, timestamp)
            return
        try:
            ensemble = pd0.decode(record)
        except pd0.PD0Error:
            self.bad_ensembles += 1
            return
        self.ensembles += 1
        if self.state == ProtocolState.COMMAND and not self.engine.busy:
            # Pinging on its own: it self-deployed after a break left it
            # idle in command mode (or was started by other means).
            self.machine._in_autosample()
        kind = (
            VelocityEarthParticle if is_earth(ensemble.fixed) else VelocityBeamParticle
        )
        made = kind(
            record, ensemble=ensemble, port_timestamp=timestamp, clock=self.clock
        )
        for extra, leader in (
            (ConfigParticle, ensemble.fixed),
            (EngineeringParticle, ensemble.variable),
        ):
            # Compared on the leader's fields, not a particle's values: most
            # ensembles change neither, and building particles costs.
            key = tuple(leader.get(name) for name in _WATCHED[extra.stream_name])
            if self._last.get(extra.stream_name) != key:
                self._last[extra.stream_name] = key
                self._publish(
                    extra(
                        record,
                        ensemble=ensemble,
                        port_timestamp=timestamp,
                        clock=self.clock,
                    )
                )
        self._publish(made)
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback({str(v["value_id"]): v["value"] for v in made.values})

    def _publish(self, particle: DataParticle) -> None:
        self.events.publish(SampleEvent(particle, time=self.events.now()))

    def noise_received(self, data: bytes) -> None:
        """
        Count the ensembles among the noise: cut short or with a bad
        checksum.
        """
        at = data.find(pd0.SYNC)
        while at >= 0:
            # A plausible header: an ensemble, damaged (a lone 7f 7f, or a
            # header cut before its offsets, cannot be told from noise).
            if pd0.check_header(data[at:]) is True:
                self.bad_ensembles += 1
            at = data.find(pd0.SYNC, at + 1)

    # Discovering.

    async def discover_state(self, session: InstrumentSession) -> str:
        """
        A bare CR: the prompt means command mode, an ensemble means
        pinging; neither within a few seconds, a break (command mode).
        """
        await session.write(b"\r")
        try:
            reply = await session.await_reply(
                "discover", regex=_AWAKE_OR_PINGING, timeout=3.0, probe=True
            )
        except InstrumentTimeoutError:
            await session.wake("discover")
            return ProtocolState.COMMAND
        if reply.data.endswith(pd0.SYNC):
            return ProtocolState.AUTOSAMPLE
        return ProtocolState.COMMAND

    # Parameters.

    async def update_parameters(
        self, session: InstrumentSession
    ) -> dict[str, object] | None:
        """
        Every parameter's ``?``, in one write.
        """
        return self.parameters.update(await session.run(QUERY_ALL))

    async def write_parameters(
        self, session: InstrumentSession, values: Mapping[str, object]
    ) -> None:
        """
        One ``XXvalue`` per value; the first ``ERR`` fails the set.
        """
        for name, value in values.items():
            await session.run(setter(self.parameters.format_value(name, value)))

    # The work behind the inputs.

    def acquire_sample(self) -> Deferred[dict[str, object]]:
        """
        ``CF0....`` and ``CS``: one ensemble and the prompt; then the flow
        control as it was.
        """

        async def work(session: InstrumentSession) -> dict[str, object]:
            flow = str(self.parameters.get("CF") or "11110")
            await session.run(setter("CF0" + flow[1:]))
            try:
                arrived: Deferred[dict[str, object]] = Deferred()
                arrived.addTimeout(ENSEMBLE_TIMEOUT, self.engine.clock)
                self._waiting.append(arrived)
                await session.run(CS)
                values = await arrived
                await session.await_reply(
                    "CS", regex=re.compile(rb"\r\n>\Z"), timeout=10.0
                )
                return values
            finally:
                await session.run(setter("CF" + flow))

        return self.hold("acquire_sample", work)

    def dump(
        self, input: str, command: Command[str], kind: type[RegexDataParticle]
    ) -> Deferred[dict[str, object]]:
        """
        A text dump: its values (the chunker publishes the particle).
        """

        async def work(session: InstrumentSession) -> dict[str, object]:
            return particle_values(kind, (await session.run(command)).encode("latin-1"))

        return self.hold(input, work)

    def acquire_status(self) -> Deferred[dict[str, object]]:
        """
        ``PS0``: the system configuration's values.
        """
        return self.dump("acquire_status", PS0, SystemConfigurationParticle)

    def run_test_200(self) -> Deferred[dict[str, object]]:
        """
        ``PT200``: the test results' values.
        """
        return self.dump("run_test_200", PT200, TestResultsParticle)

    def save_setup(self) -> Deferred[None]:
        """
        ``CK``.
        """
        return self.run("save_setup", CK).addCallback(lambda _: None)

    async def set_clock(self, session: InstrumentSession) -> str:
        """
        ``TT`` with the next whole UTC second, sent as it begins.
        """
        when = await next_utc_second(self.engine.clock)
        await session.run(setter(f"TT{when:%Y/%m/%d,%H:%M:%S}"))
        return when.isoformat()

    def clock_sync(self) -> Deferred[str]:
        """
        Set the clock; while pinging, break first and ``CS`` after,
        whatever happens between.
        """
        pinging = self.state == ProtocolState.AUTOSAMPLE

        async def work(session: InstrumentSession) -> str:
            async with paused(session, _break, CS, pinging):
                return await self.set_clock(session)

        return self.hold("clock_sync", work)


async def _break(session: InstrumentSession) -> None:
    # A break stops pinging (the wake-up is one).
    await session.wake("clock_sync")


# The machine.

_builder = TypeMachineBuilder(WorkhorseInputs, WorkhorseProtocol)
_states = standard_states(_builder)


loop_inputs(
    (_states.command,),
    WorkhorseInputs.acquire_sample,
    WorkhorseInputs.acquire_status,
    WorkhorseInputs.run_test_200,
    WorkhorseInputs.save_setup,
)
loop_inputs((_states.command, _states.autosample), WorkhorseInputs.clock_sync)


@_states.command.upon(WorkhorseInputs.start_autosample).loop()
def _start_autosample(
    machine: WorkhorseInputs, core: WorkhorseProtocol
) -> Deferred[None]:
    return core.run("start_autosample", CS).addCallback(
        lambda _: machine._in_autosample()
    )


@_states.autosample.upon(WorkhorseInputs.stop_autosample).loop()
def _stop_autosample(
    machine: WorkhorseInputs, core: WorkhorseProtocol
) -> Deferred[None]:
    async def work(session: InstrumentSession) -> None:
        await session.wake("stop_autosample")
        await core.settle_in_command(session)

    return core.hold("stop_autosample", work).addCallback(
        lambda _: machine._in_command()
    )


#: The protocol machine: the standard states and the inputs above.
WorkhorseMachine = _builder.build()
WorkhorseProtocol.machine_factory = WorkhorseMachine
