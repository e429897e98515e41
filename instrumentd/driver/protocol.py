# -*- test-case-name: tests.test_protocol -*-
"""
Instrument protocols: the base class and the pattern for a protocol state
machine.

An instrument protocol speaks one instrument's command language.  It is
two things:

- a **core**, :class:`InstrumentProtocol`: the instrument's declarations
  (prompts, wake-up, parameters, record sieves, particles, scheduled jobs)
  and the machinery shared by every instrument (the command/response
  engine, the chunker, the parameter dictionary, the scheduler, events);
- a **state machine**, built with Automat's ``TypeMachineBuilder`` from an
  inputs ``Protocol`` that extends :class:`ProtocolInputs`.  Its states are
  UNKNOWN (the first), COMMAND, AUTOSAMPLE and DIRECT_ACCESS, plus any of
  the instrument's own.  :func:`standard_states` declares those four and
  their shared transitions (discover, get, set, startup parameters, direct
  access); the instrument adds its own inputs, such as ``acquire_status``
  or ``start_autosample``.

The pattern, for an instrument (the toy instrument in
``tests/toyinstrument.py`` is a complete example)::

    class ToyInputs(ProtocolInputs, Protocol):
        def acquire_status(self) -> Deferred[dict[str, object]]: ...
        def start_autosample(self) -> Deferred[None]: ...

    builder = TypeMachineBuilder(ToyInputs, ToyProtocol)
    states = standard_states(builder)

    @states.command.upon(ToyInputs.acquire_status).loop()
    def acquire_status(machine: ToyInputs, core: ToyProtocol) -> Deferred[...]:
        return core.run("acquire_status", STATUS_COMMAND)

    @states.command.upon(ToyInputs.start_autosample).loop()
    def start_autosample(machine: ToyInputs, core: ToyProtocol) -> Deferred[None]:
        started = core.run("start_autosample", START_COMMAND)
        return started.addCallback(lambda _: machine._in_autosample())

    ToyMachine = builder.build()

Talking to the instrument takes time, but an Automat transition happens at
once.  So an input that changes the instrument's mode *loops* in its state,
queues its commands with the engine, and when the instrument has answered
gives the machine a **report** (``_in_command``, ``_in_autosample``,
``_unknown``) that makes the transition.  Meanwhile other inputs valid in
the state queue behind it; each carries a guard, so one that is no longer
valid when its turn comes (the instrument went into autosample) is refused
before anything is sent.

The standard states and inputs live in :mod:`instrumentd.driver.states`
and are re-exported here.

Capabilities are the inputs the current state accepts (reports and
``status`` left out).  Every state change is announced as a
:class:`~instrumentd.driver.events.StateChangeEvent`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from automat import TypeMachine, TypeMachineBuilder
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.driver._json import copy_jsonable
from instrumentd.driver._metadata import DocumentCopies, signature, undeclared_command
from instrumentd.driver.chunker import Chunker, Sieve
from instrumentd.driver.commands import CommandDictionary
from instrumentd.driver.engine import (
    Command,
    CommandEngine,
    InstrumentSession,
    Wakeup,
)
from instrumentd.driver.errors import (
    InstrumentCommandError,
    InstrumentError,
    InstrumentProtocolError,
)
from instrumentd.driver.events import (
    ConfigChangeEvent,
    DirectAccessEvent,
    ErrorEvent,
    EventBus,
    SampleEvent,
    StateChangeEvent,
    sample_event,
)
from instrumentd.driver.machine import MachineTable, after_transition, follow_states
from instrumentd.driver.parameters import ParameterDictionary
from instrumentd.driver.particles import DataParticle
from instrumentd.driver.record_reader import record_reader
from instrumentd.driver.scheduler import Scheduler, parse_jobs
from instrumentd.driver.states import (
    InputsT,
    ProtocolInputs,
    ProtocolState,
    StandardStates,
    autosample_inputs,
    every_state,
    loop_inputs,
    standard_states,
)
from instrumentd.interfaces import IInstrumentProtocol

if TYPE_CHECKING:
    # Automat does not export the type of its states; only annotations
    # name it.
    from twisted.internet.interfaces import IReactorTime

__all__ = [
    "ALL",
    "InstrumentProtocol",
    "ProtocolInputs",
    "ProtocolState",
    "StandardStates",
    "autosample_inputs",
    "every_state",
    "loop_inputs",
    "standard_states",
]

_log = Logger()

#: Copies of each protocol class's metadata document.
_COPIES = DocumentCopies()

T = TypeVar("T")

#: Stands for every parameter in a get.
ALL = "ALL"


#: What an engine body may return.
SessionWork = Callable[[InstrumentSession], Coroutine[Any, Any, T]]


#: Read once: an enum member read from its class is a Python-level lookup
#: in 3.11 (about 1,000 instructions), and got_data compares with it on
#: every read.
_DIRECT_ACCESS = ProtocolState.DIRECT_ACCESS

#: The inputs that are not commands: never listed as capabilities.
_NOT_CAPABILITIES = frozenset({"status"})


@implementer(IInstrumentProtocol)
class InstrumentProtocol(Generic[InputsT]):
    """
    The core of an instrument protocol: subclass it for an instrument.

    A subclass declares its instrument in class attributes and overrides
    the hooks it needs:

    - :attr:`machine_factory`, :attr:`inputs`, :attr:`prompts`, :attr:`wakeup`,
      :attr:`write_delay`, :attr:`sieves`, :attr:`particles`,
      :attr:`scheduled_jobs`, :attr:`driver_name`, :attr:`driver_version`;
    - :meth:`declare_parameters` (fill the parameter dictionary);
    - :meth:`declare_commands` (describe commands and their arguments;
      a command not declared is described from its input's docstring and
      takes the input's keyword arguments unchecked);
    - :meth:`discover_state` (ask the instrument what it is doing);
    - :meth:`update_parameters` (read parameter values from the instrument);
    - :meth:`write_parameters` (send set commands);
    - :meth:`got_record` (turn a record into particles; the default tries
      each of :attr:`particles`).

    :param send: writes bytes to the instrument (the connection's
        ``send``).
    :param events: where the protocol announces what happens.
    :param clock: the reactor's clock, or ``None`` for the global reactor.
    :param init_config: the driver's startup configuration, if any (see
        :meth:`set_init_params`).
    :param send_break: sends a serial break (the connection's
        ``send_break``), for a :class:`Wakeup` with ``break_ms`` and for
        :meth:`InstrumentSession.send_break`; ``None`` if there is none.

    :ivar engine: the command/response engine.
    :ivar parameters: the parameter dictionary.
    :ivar commands: the command dictionary.
    :ivar chunker: splits the byte stream into records, or ``None`` if the
        instrument declares no sieves.
    :ivar scheduler: runs the scheduled jobs.
    :ivar machine: the protocol state machine.
    """

    #: The built protocol machine (``TypeMachineBuilder(...).build()``).
    machine_factory: ClassVar[TypeMachine[Any, Any]]
    #: The machine's inputs ``Protocol``: where commands' arguments and
    #: descriptions (docstrings) are read from.
    inputs: ClassVar[type[object]] = ProtocolInputs
    #: The instrument's prompts; a reply ends with one unless its command
    #: says otherwise.
    prompts: ClassVar[Sequence[bytes]] = ()
    #: The instrument's mark of a refused command (``ERR \\d{3}:``); a reply
    #: containing it fails its command, quoting the line.
    error: ClassVar[re.Pattern[bytes] | None] = None
    #: How to wake the instrument, or ``None`` if it never sleeps.
    wakeup: ClassVar[Wakeup | None] = None
    #: Seconds between characters for instruments that drop fast input.
    write_delay: ClassVar[float] = 0.0
    #: Sieves that find records in the byte stream (see
    #: :mod:`instrumentd.driver.chunker`).
    sieves: ClassVar[Sequence[Sieve]] = ()
    #: Particle classes tried in turn on each record (their ``matches``).
    particles: ClassVar[Sequence[type[DataParticle]]] = ()
    #: Particle classes the protocol publishes by other means (its own
    #: :meth:`got_record`, a binary record reader): listed so that the
    #: metadata describes their streams too.
    published_particles: ClassVar[Sequence[type[DataParticle]]] = ()
    #: Jobs the startup config may schedule: job name → input name.
    scheduled_jobs: ClassVar[Mapping[str, str]] = {}
    #: The driver's name and version, for metadata.
    driver_name: ClassVar[str] = "instrument"
    driver_version: ClassVar[str] = "0"
    #: Discover the instrument's state as soon as the protocol starts (each
    #: time the instrument link comes up), so that after a dropped link the
    #: driver is back in the right state without an operator.  A
    #: ``discover`` asked for meanwhile shares that discovery's result; one
    #: that fails with nobody waiting is published as an ``ERROR`` event.
    discover_on_start: ClassVar[bool] = False

    def __init__(
        self,
        send: Callable[[bytes], object],
        events: EventBus,
        *,
        clock: IReactorTime | None = None,
        init_config: Mapping[str, object] | None = None,
        send_break: Callable[[int], Deferred[None]] | None = None,
    ) -> None:
        self.events = events
        self.clock = clock
        self.table = MachineTable.of(self.machine_factory)
        self.engine = CommandEngine(
            send,
            prompts=self.prompts,
            wakeup=self.wakeup,
            write_delay=self.write_delay,
            clock=clock,
            send_break=send_break,
            error=self.error,
        )
        self.parameters = ParameterDictionary(clock)
        self.declare_parameters(self.parameters)
        self.commands = CommandDictionary()
        self.declare_commands(self.commands)
        self.chunker: Chunker | None = (
            Chunker(self.sieves, on_noise=self.noise_received) if self.sieves else None
        )
        self.scheduler = Scheduler(self.execute, events, clock=clock)
        self.state = self.table.initial
        self._changes: list[tuple[str, str]] = []
        self._direct_access_snapshot: dict[str, object] | None = None
        self._restore_pending = False
        #: The session that last read every parameter from the instrument
        #: (see :meth:`parameters_read`).
        self._read_in: InstrumentSession | None = None
        #: Whether the startup values wait for command mode (see
        #: :meth:`settle_in_command`); the driver clears it on a protocol
        #: built after a lost link when an earlier one applied them.
        self.startup_pending = bool(self.parameters.startup_names())
        self._discovery_waiters: list[Deferred[str]] | None = None
        self._stopped = False
        self.machine: InputsT = cast("InputsT", self.machine_factory(self))
        follow_states(self.machine, self._state_changed)
        if init_config is not None:
            self.set_init_params(init_config)

    # Hooks for the instrument.

    def declare_parameters(self, parameters: ParameterDictionary) -> None:
        """
        Declare the instrument's parameters (called once, at construction).

        :param parameters: the dictionary to fill.
        """

    def declare_commands(self, commands: CommandDictionary) -> None:
        """
        Declare the instrument's commands: display names, timeouts, typed
        arguments (checked before anything is sent), results.

        :param commands: the dictionary to fill.
        """

    async def discover_state(self, session: InstrumentSession) -> str:
        """
        Ask the instrument what it is doing.

        :param session: the instrument, held for discovery.
        :returns: ``"COMMAND"`` or ``"AUTOSAMPLE"``.
        :raises InstrumentTimeoutError: if it does not answer.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot discover its state")

    async def update_parameters(
        self, session: InstrumentSession
    ) -> dict[str, object] | None:
        """
        Read parameter values from the instrument (a status dump) into
        :attr:`parameters` with ``parameters.update(text)``.

        :param session: the instrument, held.
        :returns: the changes ``update`` returned; ``None`` if this
            instrument cannot report its parameters (then the values a set
            writes are taken as set).
        """
        return None

    async def write_parameters(
        self, session: InstrumentSession, values: Mapping[str, object]
    ) -> None:
        """
        Send the commands that set ``values`` (checked and converted
        already; format each with ``parameters.format_value``).

        :param session: the instrument, held.
        :param values: name → value.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot set parameters")

    def got_record(self, record: bytes, timestamp: float) -> None:
        """
        A complete record came out of the chunker: make particles from it.
        The default tries each of :meth:`record_particles` and publishes the
        first that matches as a :class:`SampleEvent`.

        :param record: the record's bytes.
        :param timestamp: the port time of its first byte (NTP).
        """
        for particle_class in self.record_particles():
            read = record_reader(particle_class)
            if read is not None:
                # matches() and the constructor in one step (the same
                # outcome, without the steps between).
                try:
                    particle = read(record, timestamp, self.clock)
                except InstrumentProtocolError as error:
                    self.publish_error(error)
                    return
                if particle is None:
                    continue
                self.events.publish(sample_event(particle, self.events.now()))
                return
            if particle_class.matches(record):
                try:
                    particle = particle_class(
                        record, port_timestamp=timestamp, clock=self.clock
                    )
                except InstrumentProtocolError as error:
                    self.publish_error(error)
                    return
                self.events.publish(SampleEvent(particle, time=self.events.now()))
                return

    def record_particles(self) -> Sequence[type[DataParticle]]:
        """
        The kinds of particle a record may be, in the order
        :meth:`got_record` tries them: :attr:`particles`.  Override it when
        what the instrument is decides how a record reads (an SBE 37 without
        a pressure sensor prints a sample's columns differently).

        :returns: the particle classes.
        """
        return self.particles

    def noise_received(self, data: bytes) -> None:
        """
        The chunker dropped ``data`` as noise (in no record).  Override it
        to count damaged records: a binary record with a bad checksum, or
        cut short, always ends up here, once.

        :param data: the bytes dropped.
        """

    # IInstrumentProtocol.

    def start(self) -> None:
        """
        Announce the initial state and start the scheduled jobs; discover
        the instrument's state if :attr:`discover_on_start`.
        """
        if self.discover_on_start:
            # Before the initial state is announced, so that a listener
            # asking to discover from that announcement shares this one.
            self._discovery_waiters = []
        self.events.publish(StateChangeEvent(self.state, time=self.events.now()))
        self.scheduler.start()
        if self.discover_on_start:
            self.execute("discover").addCallbacks(
                self._discovered, self._discovery_failed
            )

    def _discovered(self, state: object) -> None:
        waiters, self._discovery_waiters = self._discovery_waiters or [], None
        for waiter in waiters:
            waiter.callback(str(state))

    def _discovery_failed(self, reason: Failure) -> None:
        waiters, self._discovery_waiters = self._discovery_waiters or [], None
        for waiter in waiters:
            waiter.errback(reason)
        if waiters or self._stopped:
            # Told to whoever asked, or the protocol is gone with its link.
            return
        error = reason.value
        if not isinstance(error, InstrumentError):
            error = InstrumentProtocolError(f"discovery failed: {error}")
        self.publish_error(error)

    def stop(self, reason: Exception) -> None:
        """
        Stop for good: fail pending commands with ``reason`` (made an
        :class:`InstrumentError` if it is not one), stop scheduled jobs.
        """
        self._stopped = True
        error = (
            reason
            if isinstance(reason, InstrumentError)
            else InstrumentError(str(reason))
        )
        self.scheduler.stop()
        self.engine.stop(error)

    def got_data(self, data: bytes, timestamp: float) -> None:
        """
        Bytes from the instrument: to the operator in direct access, to the
        engine (replies), and through the chunker to :meth:`got_record`.
        """
        if self.state == _DIRECT_ACCESS:
            self.events.publish(DirectAccessEvent(data, time=self.events.now()))
        self.engine.data_received(data)
        chunker = self.chunker
        if chunker is not None:
            # A line a read, the usual case: its one record comes back at
            # once, not queued as a Record to be taken.
            record = chunker.add_record_chunk(data, timestamp)
            if record is not None:
                self.got_record(record, timestamp)
                return
            for each in chunker.take_records():
                self.got_record(each.data, each.timestamp)

    def capability_names(self) -> list[str]:
        """
        :returns: every command this protocol has, in any state, sorted.
        """
        return [
            name
            for name in self.table.every_valid_input()
            if name not in _NOT_CAPABILITIES
        ]

    def get_capabilities(self) -> list[str]:
        """
        :returns: the commands valid in the current state, sorted.
        """
        return [
            name
            for name in self.table.valid_inputs(self.state)
            if name not in _NOT_CAPABILITIES
        ]

    def execute(self, command: str, **arguments: object) -> Deferred[object]:
        """
        Give the machine one input by name.

        :param command: the input (a capability).
        :param arguments: its keyword arguments.
        :returns: a Deferred firing with its result; failed at once (nothing
            sent) with :class:`InstrumentCommandError` for an unknown
            command or bad arguments, or
            :class:`~instrumentd.driver.errors.InstrumentStateError` if it is
            not valid in the current state.
        """
        known = self.capability_names()
        if command not in known:
            return fail(InstrumentCommandError.unknown(command, known))
        if not self.table.accepts(self.state, command):
            return fail(self.table.refusal(self.state, command))
        declared = getattr(self.inputs, command)
        try:
            if command in self.commands:
                arguments = self.commands.validate(command, arguments)
            signature(declared).bind(self.machine, **arguments)
        except InstrumentCommandError:
            return fail()
        except TypeError as error:
            return fail(InstrumentCommandError(command, f"bad arguments: {error}"))
        try:
            with self.table.refusals():
                result = getattr(self.machine, command)(**arguments)
        except Exception:
            return fail()
        if isinstance(result, Deferred):
            return cast("Deferred[object]", result)
        return succeed(result)

    def discover(self) -> Deferred[str]:
        """
        Discover the instrument's state; while the discovery begun at start
        runs, share its result.
        """
        if self._discovery_waiters is not None:
            waiter: Deferred[str] = Deferred()
            self._discovery_waiters.append(waiter)
            return waiter
        return cast("Deferred[str]", self.execute("discover"))

    def get(self, names: list[str]) -> Deferred[dict[str, object]]:
        """
        Read parameters.
        """
        return cast("Deferred[dict[str, object]]", self.execute("get", names=names))

    def set(
        self, values: Mapping[str, object], startup: bool = False
    ) -> Deferred[dict[str, object]]:
        """
        Change parameters.
        """
        return cast(
            "Deferred[dict[str, object]]",
            self.execute("set", values=values, startup=startup),
        )

    def start_direct(self) -> Deferred[None]:
        """
        Enter direct access.
        """
        return cast("Deferred[None]", self.execute("start_direct"))

    def execute_direct(self, data: bytes) -> Deferred[None]:
        """
        Write bytes straight to the instrument.
        """
        return cast("Deferred[None]", self.execute("execute_direct", data=data))

    def stop_direct(self) -> Deferred[str]:
        """
        Leave direct access.
        """
        return cast("Deferred[str]", self.execute("stop_direct"))

    def get_cached_config(self) -> dict[str, object]:
        """
        :returns: every parameter's last known value.
        """
        return self.parameters.get_values()

    def metadata(self) -> dict[str, object]:
        """
        :returns: ``{"driver": ..., "commands": ..., "parameters": ...,
            "streams": ...}``, JSON-ready; ``streams`` maps each stream the
            driver publishes to its values' units and standard names.  What
            a declaration says is described once and shared; each call
            returns its own copy.
        """
        commands: dict[str, object] = {}
        for name in self.capability_names():
            if name in self.commands:
                commands[name] = self.commands.command(name).shared_metadata()
            else:
                # Not declared: described from its input.
                commands[name] = undeclared_command(self.inputs, name)
        return _COPIES.copy(
            type(self),
            {
                "driver": {
                    "name": self.driver_name,
                    "version": self.driver_version,
                    "states": self.table.states,
                },
                "commands": commands,
                "parameters": self.parameters.shared_metadata(),
                "streams": self._shared_streams(),
            },
        )

    @classmethod
    def stream_metadata(cls) -> dict[str, dict[str, dict[str, object]]]:
        """
        What each stream's values are, from the particle classes'
        :attr:`~instrumentd.driver.particles.DataParticle.fields`.

        :returns: stream name to value id to units and standard name.
        """
        return cast(
            "dict[str, dict[str, dict[str, object]]]",
            copy_jsonable(cls._shared_streams()),
        )

    @classmethod
    def _shared_streams(cls) -> dict[str, dict[str, dict[str, object]]]:
        # New dicts per stream; the fields' descriptions are shared.
        streams: dict[str, dict[str, dict[str, object]]] = {}
        for particle_class in (*cls.particles, *cls.published_particles):
            streams.setdefault(particle_class.stream_name, {}).update(
                particle_class.shared_field_metadata()
            )
        return streams

    # The startup configuration.

    def set_init_params(self, config: Mapping[str, object]) -> None:
        """
        Take the driver's startup configuration: ``parameters`` (startup
        values, applied the next time the instrument is found in command
        mode) and ``scheduler`` (jobs; see
        :mod:`instrumentd.driver.scheduler`).

        :raises InstrumentParameterError: naming the first bad entry.
        """
        parameters = config.get("parameters", {})
        jobs = config.get("scheduler", {})
        if not isinstance(parameters, Mapping) or not isinstance(jobs, Mapping):
            raise InstrumentCommandError(
                "set_init_params", "parameters and scheduler must be mappings"
            )
        scheduled = parse_jobs(jobs, self.scheduled_jobs)
        self.parameters.set_init_values(parameters)
        self.scheduler.configure(scheduled)
        self.startup_pending = bool(self.parameters.startup_names())

    # Helpers for behaviours.

    def guard(self, input: str) -> Callable[[], None]:
        """
        A guard for queued work: refuses it if ``input`` is no longer valid
        in the state the protocol is in when its turn comes.
        """

        def check() -> None:
            self.table.require(self.state, input)

        return check

    def run(self, input: str, command: Command[T], **arguments: object) -> Deferred[T]:
        """
        Queue one command on behalf of ``input``, guarded.

        :param input: the machine input doing this.
        :param command: the command.
        :param arguments: for the command's builder.
        """
        return self.engine.execute(command, guard=self.guard(input), **arguments)

    def hold(self, input: str, work: SessionWork[T]) -> Deferred[T]:
        """
        Queue work that holds the instrument for several commands, on
        behalf of ``input``, guarded.
        """
        return self.engine.exclusive(work, guard=self.guard(input), name=input)

    def publish_error(self, error: InstrumentError) -> None:
        """
        Publish an :class:`ErrorEvent` for something nobody waits on.
        """
        self.events.publish(ErrorEvent.from_error(error, time=self.events.now()))

    def parameters_read(self, session: InstrumentSession) -> None:
        """
        Say that ``session`` has just read from the instrument every value
        :meth:`update_parameters` reads (a discovery that reads the same
        status dump, say): a set later in the same session compares with
        those values instead of reading them again, so the startup values
        applied after discovery cost no second dump.  A later session reads
        again (the instrument may have changed between them).

        :param session: the instrument, held by the work that read them.
        """
        self._read_in = session

    def record_changes(self, changes: Mapping[str, object] | None) -> None:
        """
        Publish a :class:`ConfigChangeEvent` if ``changes`` is not empty.
        """
        if changes:
            self.events.publish(ConfigChangeEvent(changes, time=self.events.now()))

    def rediscover(self, machine: ProtocolInputs, input: str) -> Deferred[str]:
        """
        Discover the instrument's state and move the machine there; if it
        is in command mode, apply pending startup and direct-access values
        first.  If discovery fails, the machine goes to UNKNOWN.

        :param machine: the protocol machine.
        :param input: the input doing this (``discover``, ``stop_direct``).
        :returns: a Deferred firing with the state found.
        """

        async def work(session: InstrumentSession) -> str:
            state = await self.discover_state(session)
            if state == ProtocolState.COMMAND:
                await self.settle_in_command(session)
            return state

        def found(state: str) -> str:
            if state == ProtocolState.COMMAND:
                machine._in_command()
            elif state == ProtocolState.AUTOSAMPLE:
                machine._in_autosample()
            else:
                raise InstrumentProtocolError(
                    f"discovery found an unexpected state {state!r}"
                )
            return state

        def lost(reason: Failure) -> Failure:
            if self.state != ProtocolState.UNKNOWN:
                machine._unknown()
            return reason

        return self.hold(input, work).addCallbacks(found, lost)

    async def settle_in_command(self, session: InstrumentSession) -> None:
        """
        Apply what waits for command mode: the startup values (once, after
        start or new startup configuration) and the values saved when
        direct access started (after it ended).  Only values that differ
        from the instrument's are sent.  Call it from any work that ends
        with the instrument in command mode (the standard ones do).

        :param session: the instrument, held.
        """
        desired: dict[str, object] = {}
        if self.startup_pending:
            desired.update(
                self.parameters.validate_set(
                    self.parameters.startup_values(), startup=True
                )
            )
        if self._restore_pending and self._direct_access_snapshot is not None:
            desired.update(
                (name, value)
                for name, value in self._direct_access_snapshot.items()
                if value is not None
            )
        if desired:
            await self._set_on_instrument(session, desired, refresh_first=True)
        self.startup_pending = False
        self._restore_pending = False
        self._direct_access_snapshot = None

    async def _set_on_instrument(
        self,
        session: InstrumentSession,
        values: Mapping[str, object],
        refresh_first: bool,
    ) -> dict[str, object]:
        changes: dict[str, object] = {}
        todo = dict(values)
        if refresh_first and self._read_in is session:
            # Read in this session already (discovery's dump): nothing has
            # reached the instrument since.
            todo = self.parameters.differences(values)
        elif refresh_first:
            refreshed = await self.update_parameters(session)
            if refreshed is not None:
                self.record_changes(refreshed)
                todo = self.parameters.differences(values)
        if not todo:
            return changes
        await self.write_parameters(session, todo)
        self._read_in = None
        refreshed = await self.update_parameters(session)
        if refreshed is None:
            refreshed = self.parameters.apply(todo)
        self.record_changes(refreshed)
        changes.update(refreshed)
        return changes

    def read_parameters(
        self, names: Sequence[str], refresh: bool
    ) -> Deferred[dict[str, object]]:
        """
        The standard ``get``: cached values, after reading stale ones from
        the instrument if ``refresh``.
        """
        if isinstance(names, str):
            # One name (from a command's JSON arguments, say), not letters.
            names = [names]
        try:
            wanted = None if list(names) == [ALL] else list(names)
            stale = self.parameters.stale(wanted)
        except InstrumentError:
            return fail()
        if not refresh or not stale:
            return succeed(self.parameters.get_values(wanted))

        async def work(session: InstrumentSession) -> dict[str, object]:
            self.record_changes(await self.update_parameters(session))
            return self.parameters.get_values(wanted)

        return self.hold("get", work)

    def change_parameters(
        self, values: Mapping[str, object], startup: bool, input: str = "set"
    ) -> Deferred[dict[str, object]]:
        """
        The standard ``set``: check, send, read back, announce the changes.
        """
        try:
            checked = self.parameters.validate_set(values, startup)
        except InstrumentError:
            return fail()

        async def work(session: InstrumentSession) -> dict[str, object]:
            return await self._set_on_instrument(session, checked, refresh_first=False)

        return self.hold(input, work)

    def save_direct_access(self) -> None:
        """
        Keep the direct-access parameters' values, to restore when direct
        access ends.
        """
        self._direct_access_snapshot = self.parameters.snapshot_direct_access()
        self._restore_pending = True

    # State changes.

    def _state_changed(self, previous: str, input: str, state: str) -> None:
        self.state = state
        self._changes.append((previous, state))
        # Published once the transition is over, so listeners may call the
        # protocol back.
        after_transition(self.machine, self.announce)

    def announce(self) -> None:
        """
        Publish a :class:`StateChangeEvent` for each state change not yet
        published.
        """
        changes, self._changes = self._changes, []
        for previous, state in changes:
            self.events.publish(
                StateChangeEvent(state, previous, time=self.events.now())
            )


def _standard_machine() -> TypeMachine[ProtocolInputs, InstrumentProtocol[Any]]:
    builder = TypeMachineBuilder(ProtocolInputs, InstrumentProtocol[Any])
    standard_states(builder)
    return builder.build()


#: The standard states and transitions alone, as every instrument's machine
#: starts: for diagrams and documentation (an instrument builds its own).
StandardProtocolMachine = _standard_machine()
