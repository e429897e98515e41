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
    from instrumentd.packet import Packet

__all__ = ["IBreakableTransport", "IDataLog", "IInstrumentConnection", "LinkState"]


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
