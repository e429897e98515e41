# -*- test-case-name: tests.test_driver -*-
"""
The driver API: :class:`InstrumentDriver`, one per instrument.

A driver joins a connection (an
:class:`~instrumentd.interfaces.IInstrumentConnection`, usually a port
agent connection) to an instrument protocol (a subclass of
:class:`~instrumentd.driver.protocol.InstrumentProtocol`) through the
connection state machine of :mod:`instrumentd.driver.connection_machine`::

    driver = InstrumentDriver(connection, SBE37Protocol)
    driver.set_init_params({"parameters": {...}, "scheduler": {...}})
    driver.configure({"method": "port_agent", "host": "127.0.0.1", ...})
    await driver.connect()
    await driver.discover_state()
    await driver.execute_resource("acquire_status")

Whatever talks to the instrument returns a Deferred, and a request that is
not valid now gives a failed Deferred (never a raise): an
:class:`~instrumentd.driver.errors.InstrumentStateError` naming the
connection state (while not CONNECTED) or the protocol state, and the
inputs valid there.  The OOI driver API's names are kept, so agents written
for it map one to one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

from instrumentd.driver.connection_machine import (
    ConnectionCore,
    ConnectionMachine,
    ConnectionTable,
)
from instrumentd.driver.events import EventBus
from instrumentd.driver.machine import after_transition, in_transition
from instrumentd.driver.protocol import ALL, InstrumentProtocol
from instrumentd.interfaces import IInstrumentConnection, IInstrumentDriver

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = ["ALL", "InstrumentDriver"]

T = TypeVar("T")


#: Startup configurations each protocol class has accepted, by their JSON:
#: checking one builds a whole protocol (every parameter declared, about
#: 90 us for an SBE 37), and a station's thousands of instruments of a kind
#: share a few.
_ACCEPTED: dict[tuple[type[object], str], None] = {}
#: How many :data:`_ACCEPTED` keeps before it starts afresh.
_ACCEPTED_KEPT = 256


def _accepted_key(
    protocol_class: type[InstrumentProtocol[Any]], config: Mapping[str, object]
) -> tuple[type[object], str] | None:
    # Only where the check is the standard one, which depends on nothing
    # but the class's declarations and the configuration; None for a
    # configuration JSON cannot tell apart from another.
    if protocol_class.set_init_params is not InstrumentProtocol.set_init_params:
        return None
    try:
        return protocol_class, json.dumps(config, sort_keys=True)
    except (TypeError, ValueError):
        return None


def _ignore(data: bytes) -> None:
    raise AssertionError("a detached protocol never sends")


@implementer(IInstrumentDriver)
class InstrumentDriver:
    """
    One instrument's driver.

    :param connection: how to reach the instrument.
    :param protocol_class: the instrument's protocol; a new one is made
        each time the instrument link comes up.
    :param events: where the driver publishes its events; a new bus if
        ``None``.
    :param clock: the reactor's clock, or ``None`` for the global reactor.
    """

    def __init__(
        self,
        connection: IInstrumentConnection,
        protocol_class: type[InstrumentProtocol[Any]],
        *,
        events: EventBus | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self.events = events if events is not None else EventBus(clock)
        self._protocol_class = protocol_class
        self._clock = clock
        self._connection = connection
        self._init_config: dict[str, object] = {}
        # Startup values are applied once, when the instrument is first
        # found in command mode (after start, or after a new startup
        # configuration), not each time the link comes back: the
        # instrument kept its settings, and an operator's change since
        # then must stand.
        self._startup_applied = False
        self._latest: InstrumentProtocol[Any] | None = None
        self._detached_protocol: InstrumentProtocol[Any] | None = None
        self._core = ConnectionCore(connection, self._build_protocol, self.events)
        self._machine = ConnectionMachine(self._core)
        self._core.start(self._machine)

    def _build_protocol(self, send: Callable[[bytes], None]) -> InstrumentProtocol[Any]:
        previous = self._latest
        if previous is not None and not previous.startup_pending:
            self._startup_applied = True
        protocol = self._protocol_class(
            send,
            self.events,
            clock=self._clock,
            init_config=self._init_config or None,
            send_break=self._connection.send_break,
        )
        if self._startup_applied:
            protocol.startup_pending = False
        self._latest = protocol
        # The running protocol answers from now on: the detached one's
        # memory goes (a station holds thousands of drivers).
        self._detached_protocol = None
        return protocol

    def _detached(self) -> InstrumentProtocol[Any]:
        # A protocol that is never started: its declarations (parameters,
        # commands, jobs) answer metadata and check configurations while
        # the instrument is not connected.  It sends nothing.  One is made
        # and kept until a protocol runs: what a check leaves in it (startup
        # values, jobs) is replaced by the next check, and neither its
        # metadata nor its checks depend on it.
        detached = self._detached_protocol
        if detached is None:
            detached = self._detached_protocol = self._protocol_class(
                _ignore, EventBus(self._clock), clock=self._clock
            )
        return detached

    @property
    def protocol_class(self) -> type[InstrumentProtocol[Any]]:
        """
        The instrument's protocol class: what the driver is, whether or
        not the instrument is connected.
        """
        return self._protocol_class

    @property
    def protocol(self) -> InstrumentProtocol[Any] | None:
        """
        The running protocol, while CONNECTED.
        """
        return cast("InstrumentProtocol[Any] | None", self._core.protocol)

    @property
    def connection_state(self) -> str:
        """
        The connection machine's state.
        """
        return self._core.state

    @property
    def dropped(self) -> int:
        """
        Instrument bytes that arrived with nobody to take them.
        """
        return self._core.dropped

    def _call(self, request: Callable[[], Deferred[T]]) -> Deferred[T]:
        protocol = self.protocol
        busy = next(
            (
                machine
                for machine in (self._machine, protocol and protocol.machine)
                if machine is not None and in_transition(machine)
            ),
            None,
        )
        if busy is not None:
            # Called from inside a machine's input: typically by a listener
            # of an event the protocol published while the connection
            # machine delivered instrument data, or by code awaiting a
            # Deferred such a listener fired.  Automat refuses re-entry, so
            # the request waits until that input is over (and then checks
            # the other machine).
            later: Deferred[T] = Deferred()

            def run() -> None:
                self._call(request).chainDeferred(later)

            after_transition(busy, run)
            return later
        try:
            with ConnectionTable.refusals():
                result = request()
        except Exception:
            return fail()
        return self._settled(result)

    def _settled(self, result: Deferred[T]) -> Deferred[T]:
        # A result often arrives while a machine is still working through
        # the input that produced it.  A caller that reacts by calling the
        # driver again (the natural way to chain commands) would then
        # re-enter that machine, which Automat refuses for inputs that return
        # a value.  So results are handed over only once every machine's
        # current input is over.
        settled: Deferred[T] = Deferred()

        def hand_over(outcome: object) -> None:
            def deliver() -> None:
                settled.callback(outcome)  # type: ignore[arg-type]

            def after_protocol() -> None:
                protocol = self.protocol
                if protocol is None:
                    deliver()
                else:
                    after_transition(protocol.machine, deliver)

            after_transition(self._machine, after_protocol)

        result.addBoth(hand_over)
        return settled

    # Connection.

    def initialize(self) -> None:
        """
        Forget the connection configuration (back to UNCONFIGURED).

        :raises InstrumentStateError: unless UNCONFIGURED or DISCONNECTED.
        """
        with ConnectionTable.refusals():
            self._machine.initialize()

    def configure(self, comms_config: Mapping[str, object]) -> None:
        """
        Check and keep the connection configuration (to DISCONNECTED).

        :raises InstrumentConnectionError: for a bad configuration; nothing
            changes.
        :raises InstrumentStateError: unless UNCONFIGURED or DISCONNECTED.
        """
        with ConnectionTable.refusals():
            self._machine.configure(comms_config)

    def connect(self) -> Deferred[None]:
        """
        Reach the port agent; the protocol starts when the instrument link
        is up.

        :returns: a Deferred firing once the agent is reached.
        """
        return self._call(self._machine.connect)

    def disconnect(self) -> Deferred[None]:
        """
        Stop the protocol (pending commands fail) and disconnect.
        """
        return self._call(self._machine.disconnect)

    # The instrument.

    def discover_state(self) -> Deferred[str]:
        """
        Discover the instrument's state (from UNKNOWN).
        """
        return self._call(self._machine.discover_state)

    def get_resource_state(self) -> str:
        """
        :returns: the protocol state while CONNECTED, else the connection
            state.
        """
        protocol = self._core.protocol
        # Read from the cores, not the machines' status(), so a listener may
        # ask from inside a state-change event.
        return protocol.state if protocol is not None else self._core.state

    def get_resource_capabilities(self) -> dict[str, list[str]]:
        """
        :returns: ``commands``: the protocol commands valid now (none while
            not CONNECTED); ``parameters``: the parameters that can be read
            now; ``connection``: the connection inputs valid now.
        """
        state = self._core.state
        commands: list[str] = []
        parameters: list[str] = []
        protocol = self.protocol
        if protocol is not None:
            commands = protocol.get_capabilities()
            if "get" in commands:
                parameters = protocol.parameters.names()
        return {
            "commands": commands,
            "parameters": parameters,
            "connection": ConnectionTable.valid_inputs(state),
        }

    def get_resource(self, names: list[str] | str = ALL) -> Deferred[dict[str, object]]:
        """
        Read parameters.

        :param names: parameter names, one name, or ``"ALL"``.
        """
        wanted = [names] if isinstance(names, str) else list(names)
        return self._call(lambda: self._machine.get_resource(wanted))

    def set_resource(
        self, values: Mapping[str, object], startup: bool = False
    ) -> Deferred[dict[str, object]]:
        """
        Change parameters.

        :param values: name → value.
        :param startup: whether this applies the startup configuration.
        :returns: a Deferred firing with the parameters that changed.
        """
        return self._call(lambda: self._machine.set_resource(dict(values), startup))

    def execute_resource(self, command: str, **kwargs: object) -> Deferred[object]:
        """
        Run a protocol command (capability) by name.
        """
        return self._call(lambda: self._machine.execute_resource(command, kwargs))

    def start_direct(self) -> Deferred[None]:
        """
        Enter direct access.
        """
        return self._call(self._machine.start_direct)

    def execute_direct(self, data: bytes) -> Deferred[None]:
        """
        Send bytes straight to the instrument (in direct access).
        """
        return self._call(lambda: self._machine.execute_direct(data))

    def stop_direct(self) -> Deferred[str]:
        """
        Leave direct access, restoring changed parameters, rediscovering.
        """
        return self._call(self._machine.stop_direct)

    # Configuration.

    def set_init_params(self, config: Mapping[str, object]) -> None:
        """
        Keep the startup configuration (``parameters`` and ``scheduler``),
        for every protocol from now on and the running one.

        :raises InstrumentParameterError: naming the first bad entry;
            nothing is kept then.  A configuration the protocol class has
            accepted before is not checked again.
        """
        key = _accepted_key(self._protocol_class, config)
        if key is None or key not in _ACCEPTED:
            self._detached().set_init_params(config)
            if key is not None:
                if len(_ACCEPTED) >= _ACCEPTED_KEPT:
                    _ACCEPTED.clear()
                _ACCEPTED[key] = None
        self._init_config = dict(config)
        self._startup_applied = False
        protocol = self.protocol
        if protocol is not None:
            protocol.set_init_params(config)

    def apply_startup_params(self) -> Deferred[dict[str, object]]:
        """
        Set the startup parameter values now (in COMMAND).
        """
        return cast(
            "Deferred[dict[str, object]]", self.execute_resource("apply_startup")
        )

    def get_cached_config(self) -> dict[str, object]:
        """
        :returns: every parameter's last known value (from the running
            protocol, else the last one; empty if none ever ran).
        """
        protocol = self._core.protocol or self._core.last_protocol
        return protocol.get_cached_config() if protocol is not None else {}

    def get_config_metadata(self) -> dict[str, object]:
        """
        :returns: JSON-ready ``{"driver": ..., "commands": ...,
            "parameters": ...}``.
        """
        return (self.protocol or self._detached()).metadata()
