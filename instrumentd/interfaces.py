"""
The contracts between the parts of instrumentd.

Each box of the architecture talks to the next only through one of these
``zope.interface`` interfaces, so a part can be replaced (a simulator for an
instrument, an in-process agent for a child process) without the others
noticing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from instrumentd.endpoints.serial import SerialSettings
    from instrumentd.packet import Packet

__all__ = [
    "IBreakableTransport",
    "IDataLog",
    "IInstrumentConnection",
    "ISerialLineControl",
    "LinkState",
]


class IBreakableTransport(Interface):
    """
    A transport to an instrument that can send a serial break.

    Serial-line transports provide it; TCP links to device servers do not,
    and a port agent answers a ``break`` command on them with an error.
    """

    def send_break(duration_ms: int) -> Deferred[None]:
        """
        Hold the line in the break condition for ``duration_ms``
        milliseconds, without blocking the reactor.

        :param duration_ms: how long to hold the break, > 0.
        :returns: a Deferred that fires when the break has ended.
        """


class ISerialLineControl(Interface):
    """
    A serial-line transport whose settings and control lines can be changed
    while it is open (what an RFC 2217 session asks of the line).

    Settings are :class:`~instrumentd.endpoints.serial.SerialSettings`.
    """

    configured = Attribute(
        "The settings the line was opened with (its endpoint string's)."
    )

    def line_settings() -> SerialSettings:
        """
        :returns: the settings in effect now.
        """

    def apply_line_settings(settings: SerialSettings) -> SerialSettings:
        """
        Change the line's settings.

        :param settings: the new settings.
        :returns: the settings in effect afterwards.
        :raises OSError: if the driver refuses; the previous settings are
            put back first.
        """

    def set_control_line(name: str, on: bool) -> None:
        """
        Raise or drop ``"dtr"`` or ``"rts"``, or start or end a ``"break"``.

        :raises OSError: if the device has no such line (a pty has neither
            DTR nor RTS).
        """

    def modem_lines() -> int | None:
        """
        :returns: the modem input lines as RFC 2217 MODEMSTATE bits (CD 0x80,
            RI 0x40, DSR 0x20, CTS 0x10), or ``None`` if the device has none.
        """


class IDataLog(Interface):
    """
    The always-on binary record of every packet a port agent handles.
    """

    path = Attribute("The file currently written, as a str path.")
    size = Attribute("Bytes in the current file, including buffered bytes.")
    write_errors = Attribute("Operating-system errors met while recording.")
    bytes_dropped = Attribute("Bytes of packets that could not be recorded.")

    def open() -> None:
        """
        Open the first file; called when the agent starts, so the datalog
        exists whether or not any packet has arrived yet.
        """

    def write(packet: bytes) -> None:
        """
        Append one encoded packet.  Never blocks on clients; rotates first
        if the rotation policy says the packet belongs in a new file.
        """

    def rotate() -> str:
        """
        Close the current file into the archive now and start a new one.

        :returns: the path the closed file was archived as.
        """

    def flush() -> None:
        """
        Push buffered bytes to the operating system.
        """

    def close() -> None:
        """
        Flush and close; later writes are an error.
        """


@dataclass(frozen=True)
class LinkState:
    """
    What a driver knows about its way to the instrument.

    A driver reaches its instrument through two hops: a port agent, then the
    agent's link to the instrument.  Either can be down on its own.

    :ivar agent: the agent's data port is connected and the agent is alive
        (packets or heartbeats keep arriving).
    :ivar commands: the agent's command port is connected.
    :ivar instrument: the agent's last word on its instrument link: ``True``
        for ``CONNECTED``, ``False`` for ``DISCONNECTED``, ``None`` while
        unknown (not told yet, or the agent is not reachable).
    """

    agent: bool = False
    commands: bool = False
    instrument: bool | None = None

    @property
    def ready(self) -> bool:
        """
        Both ports are connected and the agent says the instrument link is
        up: bytes sent now should reach the instrument.
        """
        return self.agent and self.commands and self.instrument is True


class IInstrumentConnection(Interface):
    """
    How an instrument protocol reaches its instrument.

    The life of a connection::

        unconfigured --configure--> disconnected --connect--> connecting
            --> connected --disconnect--> disconnecting --> disconnected

    ``initialize`` and ``reset`` go back to ``unconfigured``.  A method
    called in a state where it makes no sense raises an error naming the
    state and the methods valid there; nothing is changed.

    The attached protocol is told about instrument bytes, link state changes
    and faults through the callbacks given to :meth:`attach`.
    """

    state = Attribute(
        "The lifecycle state as a str: 'unconfigured', 'disconnected', "
        "'connecting', 'connected' or 'disconnecting'."
    )

    def initialize() -> None:
        """
        Forget the configuration and return to ``unconfigured``.

        Valid while ``unconfigured`` or ``disconnected``.
        """

    def configure(config: Mapping[str, object]) -> None:
        """
        Check and keep a connection configuration (a dict with a ``method``
        key; see ``doc/connections.md``).  Nothing is started.

        Valid while ``unconfigured`` or ``disconnected``; afterwards the
        state is ``disconnected``.

        :param config: the configuration.
        :raises instrumentd.connection.InstrumentConnectionError: naming the
            first bad, missing or unknown key and what was expected; the
            previous configuration (if any) is kept.
        """

    def connect() -> Deferred[LinkState]:
        """
        Reach the instrument as configured: launch a port agent for it and
        attach, or attach to an agent that already runs.

        Valid while ``disconnected``.

        :returns: a Deferred firing with the :class:`LinkState` once both of
            the agent's ports are connected, or failing (and leaving nothing
            running) if the agent cannot be launched or reached.
        """

    def disconnect() -> Deferred[None]:
        """
        Close the connections to the agent, and stop the agent if (and only
        if) this connection launched it.  Doing so while already
        ``disconnected`` or ``unconfigured`` does nothing.

        :returns: a Deferred firing once everything has stopped.
        """

    def attach(
        callback: Callable[[bytes, Packet], object],
        on_state: Callable[[LinkState], object] | None = None,
        on_fault: Callable[[str], object] | None = None,
    ) -> None:
        """
        Attach a protocol.  Valid in any state; one protocol at a time.

        :param callback: called with each chunk of bytes read from the
            instrument and the packet that carried it (its NTP timestamp is
            the moment the agent read the bytes).
        :param on_state: called with the new :class:`LinkState` whenever it
            changes (agent lost or back, instrument link up or down).
        :param on_fault: called with the text of each fault the agent
            reports (e.g. bytes it could not send to the instrument).
        :raises instrumentd.connection.InstrumentConnectionError: if a
            protocol is attached already.
        """

    def detach() -> None:
        """
        Detach the attached protocol, if any; later bytes and notifications
        are dropped (the agent's datalog still records them).
        """

    def reset() -> Deferred[None]:
        """
        Disconnect if needed, then forget the configuration: back to
        ``unconfigured`` from any state.  The attached protocol stays
        attached.

        :returns: a Deferred firing once everything has stopped.
        """

    def send(data: bytes) -> None:
        """
        Send bytes to the instrument through the agent, now.

        :param data: the bytes.
        :raises instrumentd.connection.InstrumentConnectionError: at once,
            if not ``connected``, if the agent is not reachable, or if the
            agent reports the instrument link down; nothing is queued.
        """

    def send_break(duration_ms: int) -> Deferred[None]:
        """
        Ask the agent to send a serial break.

        :param duration_ms: how long to hold the break, 1 to 60000 ms.
        :returns: a Deferred firing when the break has ended, or failing
            with the agent's ``ERROR`` text (for example on a TCP link,
            which cannot send a break).
        """

    def link_state() -> LinkState:
        """
        :returns: the current :class:`LinkState` (all down while not
            ``connected``).
        """


class IInstrumentProtocol(Interface):
    """
    One instrument's command language, as a driver uses it: the protocol
    state machine (UNKNOWN, COMMAND, AUTOSAMPLE, DIRECT_ACCESS and the
    instrument's own states), its parameters and commands.

    Whatever talks to the instrument returns a Deferred, and never raises:
    a request that is not valid in the current state gives a Deferred that
    has already failed with
    :class:`~instrumentd.driver.errors.InstrumentStateError` naming the
    state and the inputs valid there, before anything is sent.  See
    :mod:`instrumentd.driver.protocol`.
    """

    state = Attribute("The protocol machine's current state name, e.g. 'COMMAND'.")
    events = Attribute(
        "The EventBus on which the protocol announces state changes, "
        "samples, configuration changes and errors (the event callback)."
    )

    def start() -> None:
        """
        Begin talking to the instrument: announce the initial state and
        start the scheduled jobs.
        """

    def stop(reason: Exception) -> None:
        """
        Stop for good (the instrument link went down): fail the command in
        progress and every queued one with ``reason``, stop scheduled jobs,
        leave no timer behind.
        """

    def got_data(data: bytes, timestamp: float) -> None:
        """
        The data callback: bytes read from the instrument.

        :param data: the bytes.
        :param timestamp: when the port agent read them, NTP seconds.
        """

    def get_capabilities() -> list[str]:
        """
        :returns: the inputs (commands) valid in the current state, sorted.
        """

    def discover() -> Deferred[str]:
        """
        Find out what the instrument is doing (from UNKNOWN).

        :returns: a Deferred firing with the state found.
        """

    def get(names: list[str]) -> Deferred[dict[str, object]]:
        """
        Read parameter values, refreshing expired ones from the instrument
        where the state allows.

        :param names: parameter names; ``["ALL"]`` for all of them.
        :returns: a Deferred firing with name → value.
        """

    def set(
        values: Mapping[str, object], startup: bool = False
    ) -> Deferred[dict[str, object]]:
        """
        Change parameters on the instrument.

        :param values: name → new value; checked before anything is sent.
        :param startup: whether this applies the startup configuration
            (which may set IMMUTABLE parameters).
        :returns: a Deferred firing with the parameters that really changed.
        """

    def execute(command: str, **arguments: object) -> Deferred[object]:
        """
        Run one capability (a protocol input) by name.

        :param command: e.g. ``"acquire_status"``.
        :param arguments: the input's keyword arguments.
        :returns: a Deferred firing with the input's result.
        """

    def start_direct() -> Deferred[None]:
        """
        Enter direct access, saving the direct-access parameters.
        """

    def execute_direct(data: bytes) -> Deferred[None]:
        """
        Pass bytes straight to the instrument (in direct access).
        """

    def stop_direct() -> Deferred[str]:
        """
        Leave direct access: restore the direct-access parameters that
        changed, then rediscover.

        :returns: a Deferred firing with the state found.
        """

    def get_cached_config() -> dict[str, object]:
        """
        :returns: every parameter's last known value, without asking the
            instrument.
        """

    def metadata() -> dict[str, object]:
        """
        :returns: the JSON-ready description of the driver, its commands and
            its parameters.
        """


class IInstrumentDriver(Interface):
    """
    The driver API: what a station, an HTTP API or an operator uses to work
    one instrument.  It combines the connection state machine
    (UNCONFIGURED, DISCONNECTED, CONNECTING, INSTRUMENT_DISCONNECTED,
    CONNECTED) with the instrument's protocol machine.

    Whatever talks to the instrument returns a Deferred.  A request not
    valid in the current state fails with
    :class:`~instrumentd.driver.errors.InstrumentStateError` naming the
    state and the valid inputs.  See :mod:`instrumentd.driver.driver`.
    """

    events = Attribute("The EventBus on which the driver publishes its events.")

    def initialize() -> None:
        """
        Forget the connection configuration (back to UNCONFIGURED).
        """

    def configure(comms_config: Mapping[str, object]) -> None:
        """
        Check and keep the connection configuration (to DISCONNECTED).
        """

    def connect() -> Deferred[None]:
        """
        Reach the port agent; the protocol starts once the instrument link
        is up.

        :returns: a Deferred firing once the agent is reachable.
        """

    def disconnect() -> Deferred[None]:
        """
        Stop the protocol and close the connection.
        """

    def discover_state() -> Deferred[str]:
        """
        Discover the instrument's state.

        :returns: a Deferred firing with the protocol state found.
        """

    def get_resource_state() -> str:
        """
        :returns: the protocol state while connected, else the connection
            state.
        """

    def get_resource_capabilities() -> dict[str, list[str]]:
        """
        :returns: ``{"commands": [...], "parameters": [...]}``: the commands
            valid now and the parameters that can be read now.
        """

    def get_resource(names: list[str] | str) -> Deferred[dict[str, object]]:
        """
        Read parameters (a list of names, or ``"ALL"``).
        """

    def set_resource(
        values: Mapping[str, object], startup: bool = False
    ) -> Deferred[dict[str, object]]:
        """
        Change parameters.
        """

    def execute_resource(command: str, **kwargs: object) -> Deferred[object]:
        """
        Run a command (a protocol capability) by name.
        """

    def start_direct() -> Deferred[None]:
        """
        Enter direct access.
        """

    def execute_direct(data: bytes) -> Deferred[None]:
        """
        Send bytes straight to the instrument.
        """

    def stop_direct() -> Deferred[str]:
        """
        Leave direct access, restoring parameters and rediscovering.
        """

    def set_init_params(config: Mapping[str, object]) -> None:
        """
        Keep the startup configuration: ``{"parameters": {...},
        "scheduler": {...}}``.
        """

    def apply_startup_params() -> Deferred[dict[str, object]]:
        """
        Set the startup parameter values on the instrument now.
        """

    def get_cached_config() -> dict[str, object]:
        """
        :returns: every parameter's last known value.
        """

    def get_config_metadata() -> dict[str, object]:
        """
        :returns: JSON-ready ``{"driver": ..., "commands": ...,
            "parameters": ...}``.
        """


__all__ += ["IInstrumentDriver", "IInstrumentProtocol"]


class IDriverEventListener(Interface):
    """
    Something that receives a driver's events (state and configuration
    changes, samples, errors, results, direct-access output) from its
    :class:`instrumentd.driver.events.EventBus`.
    """

    def event_received(event: object) -> None:
        """
        Receive one event (an :class:`instrumentd.driver.events.DriverEvent`).
        Called synchronously in the reactor thread: do little, and hand slow
        work (disk, network) to something asynchronous.  An exception is
        logged and otherwise ignored: one listener cannot break the driver or
        starve the others.

        :param event: the event.
        """


__all__ += ["IDriverEventListener"]
