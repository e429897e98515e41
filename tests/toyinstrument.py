"""
A toy line-oriented instrument and its driver, for testing the driver
framework (test-only).

- :class:`ToyInstrument`: a Twisted protocol that plays the instrument.  It
  prompts ``T>``, echoes what it is sent, answers ``ds`` (a status dump
  with its parameters), ``ts`` (one sample line), ``id``, ``set
  name=value``, ``start`` and ``stop`` (autosample lines every
  ``interval`` seconds), falls asleep after ``sleep_after`` idle seconds
  and then needs ``wakes_needed`` empty lines before it answers again.  It
  can be told to hang (answer nothing) and to drop characters that arrive
  faster than one per read.
- :class:`ToyProtocol` and :data:`ToyMachine`: its driver protocol, built
  the way ``doc/writing-a-driver.md`` describes.
- :class:`ToyConnection`: an ``IInstrumentConnection`` for the driver that
  reaches the toy through ``twisted.test.iosim`` (no sockets), with link
  states and faults under the test's control.
- :class:`ToyBench`: a toy and a protocol wired together on a ``Clock``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.task import Clock
from twisted.test import iosim
from zope.interface import implementer

from instrumentd.driver.commands import CommandArgument, CommandDictionary, CommandSpec
from instrumentd.driver.engine import (
    Command,
    InstrumentSession,
    Reply,
    Wakeup,
    keep_reply,
    text_command,
)
from instrumentd.driver.errors import InstrumentConnectionError, InstrumentProtocolError
from instrumentd.driver.events import DriverEvent, EventBus
from instrumentd.driver.parameters import (
    Parameter,
    ParameterDictionary,
    ParameterType,
    Visibility,
)
from instrumentd.driver.particles import ParticleField, RegexDataParticle
from instrumentd.driver.protocol import (
    InstrumentProtocol,
    ProtocolInputs,
    standard_states,
)
from instrumentd.interfaces import IInstrumentConnection, LinkState
from instrumentd.packet import Packet, PacketType, unix_to_ntp

PROMPT = b"T>"
NEWLINE = b"\r\n"
SAMPLE = re.compile(rb"#?T=(\d+\.\d+) P=(\d+\.\d+)\r\n")


class ToyInstrument(TwistedProtocol):
    """
    The instrument.

    :param clock: for its sleep timer and autosample lines.
    :param sleep_after: idle seconds before it falls asleep; ``None``:
        never.
    :param wakes_needed: empty lines it needs to wake up.
    """

    def __init__(
        self, clock: Clock, sleep_after: float | None = 30.0, wakes_needed: int = 1
    ) -> None:
        self.clock = clock
        self.sleep_after = sleep_after
        self.wakes_needed = wakes_needed
        self.settings: dict[str, str] = {"interval": "5", "units": "C", "echo": "yes"}
        self.serial = "1234"
        self.asleep = False
        self.hanging = False
        self.drops_fast_input = False
        self.received: list[bytes] = []
        self.commands: list[bytes] = []
        self.temperature = 21.5
        self._wakes = 0
        self._buffer = b""
        self._sleep_call: Any = None
        self._sample_call: Any = None

    @property
    def logging(self) -> bool:
        """
        Whether it is sampling on its own.
        """
        return self._sample_call is not None

    def connectionMade(self) -> None:
        self._idle()

    def connectionLost(self, reason: object = None) -> None:
        for call in (self._sleep_call, self._sample_call):
            if call is not None and call.active():
                call.cancel()

    def _idle(self) -> None:
        if self._sleep_call is not None and self._sleep_call.active():
            self._sleep_call.cancel()
        self._sleep_call = None
        if self.sleep_after is not None and not self.logging:
            self._sleep_call = self.clock.callLater(self.sleep_after, self.fall_asleep)

    def fall_asleep(self) -> None:
        """
        Sleep now.
        """
        self.asleep = True
        self._wakes = 0

    def emit(self, data: bytes) -> None:
        """
        Send bytes as the instrument (noise, a fragment, anything).
        """
        assert self.transport is not None
        self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        if self.hanging:
            return
        if self.drops_fast_input and len(data) > 1:
            # A UART overrun: only the first character of a burst survives.
            data = data[:1]
        self._buffer += data
        while NEWLINE in self._buffer:
            line, self._buffer = self._buffer.split(NEWLINE, 1)
            self._line(line)

    def _line(self, line: bytes) -> None:
        if self.asleep:
            if line == b"":
                self._wakes += 1
                if self._wakes >= self.wakes_needed:
                    self.asleep = False
                    self._idle()
                    self.emit(PROMPT)
            return
        self._idle()
        if line == b"":
            self.emit(PROMPT)
            return
        self.commands.append(line)
        if self.settings["echo"] == "yes":
            self.emit(line + NEWLINE)
        self._command(line.decode("ascii", "replace").strip())

    def _command(self, text: str) -> None:
        if text == "ds":
            self.emit(self.status_dump() + PROMPT)
        elif text == "ts":
            self.emit(self.sample_line() + PROMPT)
        elif text == "id":
            self.emit(f"TOY-1 SN {self.serial}\r\n".encode() + PROMPT)
        elif text == "start" and not self.logging:
            self._sample_call = self.clock.callLater(self._interval(), self._autosample)
            if self._sleep_call is not None and self._sleep_call.active():
                self._sleep_call.cancel()
        elif text == "stop":
            if self._sample_call is not None and self._sample_call.active():
                self._sample_call.cancel()
            self._sample_call = None
            self._idle()
            self.emit(PROMPT)
        elif text.startswith("set ") and "=" in text:
            name, value = text[4:].split("=", 1)
            if self._valid(name, value):
                self.settings[name] = value
                self.emit(PROMPT)
            else:
                self.emit(b"?CMD\r\n" + PROMPT)
        else:
            self.emit(b"?CMD\r\n" + PROMPT)

    def _valid(self, name: str, value: str) -> bool:
        if name == "interval":
            return value.isdigit() and 1 <= int(value) <= 3600
        if name == "units":
            return value in ("C", "F")
        if name == "echo":
            return value in ("yes", "no")
        return False

    def _interval(self) -> float:
        return float(self.settings["interval"])

    def _autosample(self) -> None:
        self.emit(b"#" + self.sample_line())
        self._sample_call = self.clock.callLater(self._interval(), self._autosample)

    def sample_line(self) -> bytes:
        """
        One sample, as the instrument writes it.
        """
        return f"T={self.temperature:.4f} P=10.1200\r\n".encode()

    def status_dump(self) -> bytes:
        """
        The status dump, as ``ds`` writes it.
        """
        lines = [
            f"TOY-1 SN {self.serial} status",
            f"interval = {self.settings['interval']}",
            f"units = {self.settings['units']}",
            f"echo = {self.settings['echo']}",
            f"logging = {'yes' if self.logging else 'no'}",
        ]
        return "".join(line + "\r\n" for line in lines).encode()


class ToySample(RegexDataParticle):
    """
    One sample line.
    """

    stream_name = "toy_sample"
    pattern = re.compile(rb"#?T=(?P<temperature>\d+\.\d+) P=(?P<pressure>\d+\.\d+)\r\n")
    converters = {"temperature": float, "pressure": float}
    fields = {
        "temperature": ParticleField("degree_Celsius", "sea_water_temperature"),
        "pressure": ParticleField("dbar", "sea_water_pressure"),
    }


def _status(reply: Reply) -> dict[str, str]:
    if b"logging = " not in reply.data:
        raise InstrumentProtocolError(f"not a status dump: {reply.text!r}")
    found = re.findall(r"^(\w+) = (\S+)\r?$", reply.text, re.MULTILINE)
    return dict(found)


def _sample(reply: Reply) -> dict[str, float]:
    assert reply.match is not None
    return {
        "temperature": float(reply.match.group(1)),
        "pressure": float(reply.match.group(2)),
    }


def _identity(reply: Reply) -> str:
    assert reply.match is not None
    return reply.match.group(0).decode("ascii").strip()


def _accepted(reply: Reply) -> None:
    if b"?CMD" in reply.data:
        raise InstrumentProtocolError(f"the instrument refused: {reply.body!r}")


DS = Command(name="ds", build=text_command("ds"), parse=_status, timeout=5)
DS_TEXT = Command(
    name="ds", build=text_command("ds"), parse=lambda reply: reply.text, timeout=5
)
TS = Command(
    name="ts",
    build=text_command("ts"),
    parse=_sample,
    regex=SAMPLE,
    timeout=5,
)
ID = Command(
    name="id",
    build=text_command("id"),
    parse=_identity,
    regex=re.compile(rb"TOY-\d SN \d+\r\n"),
    timeout=5,
)
SET = Command(
    name="set", build=text_command("set {setting}"), parse=_accepted, timeout=5
)
START = Command(
    name="start", build=text_command("start"), parse=keep_reply, expects_reply=False
)
STOP = Command(name="stop", build=text_command("stop"), parse=keep_reply, timeout=5)


class ToyInputs(ProtocolInputs, Protocol):
    """
    The toy's own inputs, besides the standard ones.
    """

    def acquire_status(self) -> Deferred[dict[str, str]]:
        """
        Read the status dump.
        """

    def acquire_sample(self) -> Deferred[dict[str, float]]:
        """
        Take one sample.
        """

    def identify(self) -> Deferred[str]:
        """
        Read the model and serial number.
        """

    def start_autosample(self) -> Deferred[None]:
        """
        Start sampling every INTERVAL seconds.
        """

    def take_samples(self, count: int) -> Deferred[list[dict[str, float]]]:
        """
        Take ``count`` samples, one after the other.
        """

    def stop_autosample(self) -> Deferred[None]:
        """
        Stop sampling.
        """


class ToyProtocol(InstrumentProtocol[ToyInputs]):
    """
    The toy's driver protocol.
    """

    inputs = ToyInputs
    prompts = (PROMPT,)
    wakeup = Wakeup(data=NEWLINE, timeout=1.0, tries=3, sleep_after=25.0)
    sieves = (SAMPLE,)
    particles = (ToySample,)
    scheduled_jobs = {"acquire_status": "acquire_status"}
    driver_name = "toy"
    driver_version = "1.0"

    def declare_parameters(self, parameters: ParameterDictionary) -> None:
        parameters.add(
            Parameter(
                name="INTERVAL",
                type=ParameterType.INT,
                startup=True,
                direct_access=True,
                default_value=5,
                minimum=1,
                maximum=3600,
                units="s",
                pattern=r"interval = (\d+)",
                format="interval={value}",
                description="Seconds between autosamples.",
            )
        )
        parameters.add(
            Parameter(
                name="UNITS",
                type=ParameterType.ENUM,
                direct_access=True,
                allowed_values=("C", "F"),
                pattern=r"units = ([CF])",
                format="units={value}",
            )
        )
        parameters.add(
            Parameter(
                name="ECHO",
                type=ParameterType.BOOL,
                visibility=Visibility.IMMUTABLE,
                startup=True,
                default_value=True,
                pattern=r"echo = (yes|no)",
                format=lambda value: "echo=yes" if value else "echo=no",
            )
        )
        parameters.add(
            Parameter(
                name="SERIAL",
                type=ParameterType.STRING,
                visibility=Visibility.READ_ONLY,
                pattern=r"SN (\d+)",
            )
        )

    def declare_commands(self, commands: CommandDictionary) -> None:
        commands.add(
            CommandSpec(
                name="take_samples",
                display_name="Take samples",
                description="Take several samples in a row.",
                timeout=60,
                arguments=[
                    CommandArgument(
                        name="count", type=ParameterType.INT, minimum=1, maximum=10
                    )
                ],
                return_description="the samples",
            )
        )

    async def discover_state(self, session: InstrumentSession) -> str:
        status = await session.run(DS)
        return "AUTOSAMPLE" if status.get("logging") == "yes" else "COMMAND"

    async def update_parameters(
        self, session: InstrumentSession
    ) -> dict[str, object] | None:
        return self.parameters.update(await session.run(DS_TEXT))

    async def write_parameters(
        self, session: InstrumentSession, values: Mapping[str, object]
    ) -> None:
        for name, value in values.items():
            await session.run(SET, setting=self.parameters.format_value(name, value))


builder = TypeMachineBuilder(ToyInputs, ToyProtocol)
states = standard_states(builder)


@states.command.upon(ToyInputs.acquire_status).loop()
def acquire_status(machine: ToyInputs, core: ToyProtocol) -> Deferred[dict[str, str]]:
    return core.run("acquire_status", DS)


@states.autosample.upon(ToyInputs.acquire_status).loop()
def acquire_status_sampling(
    machine: ToyInputs, core: ToyProtocol
) -> Deferred[dict[str, str]]:
    return core.run("acquire_status", DS)


@states.command.upon(ToyInputs.acquire_sample).loop()
def acquire_sample(machine: ToyInputs, core: ToyProtocol) -> Deferred[dict[str, float]]:
    return core.run("acquire_sample", TS)


@states.command.upon(ToyInputs.take_samples).loop()
def take_samples(
    machine: ToyInputs, core: ToyProtocol, count: int
) -> Deferred[list[dict[str, float]]]:
    async def work(session: InstrumentSession) -> list[dict[str, float]]:
        return [await session.run(TS) for _ in range(count)]

    return core.hold("take_samples", work)


@states.command.upon(ToyInputs.identify).loop()
def identify(machine: ToyInputs, core: ToyProtocol) -> Deferred[str]:
    return core.run("identify", ID)


@states.command.upon(ToyInputs.start_autosample).loop()
def start_autosample(machine: ToyInputs, core: ToyProtocol) -> Deferred[None]:
    def started(_: object) -> None:
        machine._in_autosample()

    return core.run("start_autosample", START).addCallback(started)


@states.autosample.upon(ToyInputs.stop_autosample).loop()
def stop_autosample(machine: ToyInputs, core: ToyProtocol) -> Deferred[None]:
    async def work(session: InstrumentSession) -> None:
        await session.run(STOP)
        await core.settle_in_command(session)

    def stopped(_: object) -> None:
        machine._in_command()

    return core.hold("stop_autosample", work).addCallback(stopped)


ToyMachine = builder.build()
ToyProtocol.machine_factory = ToyMachine


class _Link(TwistedProtocol):
    """
    The driver's end of the line to the toy: what arrives is handed on,
    stamped with the clock's time as a port agent would.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.deliver: Callable[[bytes, Packet], object] | None = None
        #: Hand data on in pieces of at most this many bytes, if set.
        self.fragment: int | None = None

    def dataReceived(self, data: bytes) -> None:
        size = self.fragment or len(data)
        for start in range(0, len(data), size):
            piece = data[start : start + size]
            packet = Packet(
                PacketType.DATA_FROM_INSTRUMENT,
                piece,
                *unix_to_ntp(self.clock.seconds()),
            )
            if self.deliver is not None:
                self.deliver(piece, packet)


class ToyLine:
    """
    A toy instrument and the driver's end of the line to it, joined by
    ``iosim``; :meth:`flush` moves the bytes.
    """

    def __init__(self, clock: Clock | None = None, **toy_options: Any) -> None:
        self.clock = clock if clock is not None else Clock()
        self.link, self.toy, self.pump = iosim.connectedServerAndClient(
            lambda: ToyInstrument(self.clock, **toy_options),
            lambda: _Link(self.clock),
            clock=self.clock,
        )

    def send(self, data: bytes) -> None:
        """
        Write to the toy (delivered at the next flush).
        """
        assert self.link.transport is not None
        self.link.transport.write(data)

    def flush(self) -> None:
        """
        Move every byte both ways until nothing is left to move.
        """
        self.pump.flush()

    def run(self, seconds: float, step: float = 0.05) -> None:
        """
        Let time pass in small steps, moving bytes after each.
        """
        self.flush()
        steps = round(seconds / step)
        for _ in range(steps):
            self.clock.advance(step)
            self.flush()


class ToyBench:
    """
    A toy instrument and a :class:`ToyProtocol` talking to it, on a clock,
    with the events the protocol publishes collected.
    """

    def __init__(
        self,
        init_config: Mapping[str, object] | None = None,
        *,
        protocol: type[ToyProtocol] | None = None,
        **toy_options: Any,
    ) -> None:
        self.line = ToyLine(**toy_options)
        self.clock = self.line.clock
        self.toy = self.line.toy
        self.events = EventBus(self.clock)
        self.seen: list[DriverEvent] = []
        self.events.subscribe(self.seen.append)
        self.protocol = (protocol or ToyProtocol)(
            self.line.send, self.events, clock=self.clock, init_config=init_config
        )
        self.line.link.deliver = lambda data, packet: self.protocol.got_data(
            data, packet.ntp_time
        )
        self.protocol.start()

    def flush(self) -> None:
        """
        Move the bytes.
        """
        self.line.flush()

    def run(self, seconds: float, step: float = 0.05) -> None:
        """
        Let time pass, moving bytes.
        """
        self.line.run(seconds, step)

    def of_type(self, kind: type[Any]) -> list[Any]:
        """
        The events seen of one type.
        """
        return [event for event in self.seen if isinstance(event, kind)]


@implementer(IInstrumentConnection)
class ToyConnection:
    """
    An :class:`IInstrumentConnection` to a toy instrument, for driver
    tests: ``configure`` wants ``{"method": "toy"}``, ``connect`` succeeds
    at once (or fails, or waits, as the test says), and the test sets the
    link state.
    """

    def __init__(self, line: ToyLine) -> None:
        self.line = line
        self.state = "unconfigured"
        self.config: Mapping[str, object] | None = None
        self.link = LinkState()
        #: The link state ``connect`` reports; set ``connect_result`` to a
        #: Deferred to decide later.
        self.link_on_connect = LinkState(agent=True, commands=True, instrument=True)
        self.connect_result: Deferred[LinkState] | None = None
        self._data: Callable[[bytes, Packet], object] | None = None
        self._on_state: Callable[[LinkState], object] | None = None
        self._on_fault: Callable[[str], object] | None = None
        self.sent: list[bytes] = []

    def initialize(self) -> None:
        self.config = None
        self.state = "unconfigured"

    def configure(self, config: Mapping[str, object]) -> None:
        if config.get("method") != "toy":
            raise InstrumentConnectionError(
                f"method: expected 'toy', not {config.get('method')!r}"
            )
        self.config = dict(config)
        self.state = "disconnected"

    def connect(self) -> Deferred[LinkState]:
        self.state = "connected"
        self.line.link.deliver = self._deliver
        if self.connect_result is not None:
            return self.connect_result
        self.link = self.link_on_connect
        return succeed(self.link)

    def disconnect(self) -> Deferred[None]:
        if self.state == "connected":
            self.state = "disconnected"
        self.link = LinkState()
        return succeed(None)

    def attach(
        self,
        callback: Callable[[bytes, Packet], object],
        on_state: Callable[[LinkState], object] | None = None,
        on_fault: Callable[[str], object] | None = None,
    ) -> None:
        self._data, self._on_state, self._on_fault = callback, on_state, on_fault

    def detach(self) -> None:
        self._data = self._on_state = self._on_fault = None

    def reset(self) -> Deferred[None]:
        self.initialize()
        return succeed(None)

    def send(self, data: bytes) -> None:
        if not self.link.ready:
            raise InstrumentConnectionError("the instrument link is down")
        self.sent.append(data)
        self.line.send(data)

    def send_break(self, duration_ms: int) -> Deferred[None]:
        return succeed(None)

    def link_state(self) -> LinkState:
        return self.link

    def _deliver(self, data: bytes, packet: Packet) -> None:
        if self._data is not None:
            self._data(data, packet)

    def set_link(self, link: LinkState) -> None:
        """
        Change the link state, telling the attached protocol.
        """
        self.link = link
        if self._on_state is not None:
            self._on_state(link)

    def fault(self, text: str) -> None:
        """
        Report a fault as the agent would.
        """
        if self._on_fault is not None:
            self._on_fault(text)
