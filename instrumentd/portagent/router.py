# -*- test-case-name: tests.test_portagent_router -*-
"""
The router: every packet goes to the datalog first, then to the clients
that want it.

- data clients get full packets of the types a driver needs;
- sniff clients get every packet of every type as one text line;
- raw clients get the bare bytes read from the instrument;
- RFC 2217 sessions get them with telnet's IAC (0xFF) doubled;
- direct clients (a driver in the agent's own process, see
  :mod:`instrumentd.portagent.direct`) get what data clients get, as the
  message itself rather than encoded packets: no socket, no framing to
  undo.

Nothing here waits for a client: each client sends through a bounded
:class:`~instrumentd.portagent.outlet.ClientOutlet`, and a client that makes
no progress, or falls too far behind, is cut off, counted, logged and
announced as a fault.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from twisted.internet.interfaces import IReactorTime, ITransport
from twisted.logger import Logger

from instrumentd.interfaces import IDataLog
from instrumentd.packet import (
    MAX_PAYLOAD_SIZE,
    PacketType,
    encode_packet,
    encode_packet_c,
    frame_read,
)
from instrumentd.portagent.outlet import ClientOutlet, ClientQueues
from instrumentd.sniff import sniff_line

__all__ = ["DATA_CLIENT_TYPES", "AgentCounters", "Router"]

#: The packet types data clients receive.  DATA_FROM_DRIVER and commands are
#: recorded and sniffed but not echoed to drivers (the OOI convention).
DATA_CLIENT_TYPES: Final = frozenset(
    {
        PacketType.DATA_FROM_INSTRUMENT,
        PacketType.PORT_AGENT_STATUS,
        PacketType.PORT_AGENT_FAULT,
        PacketType.PORT_AGENT_CONFIG,
        PacketType.PORT_AGENT_HEARTBEAT,
    }
)

CLIENT_KINDS: Final = ("data", "sniff", "raw", "rfc2217")

#: Each type's name, looked up once: ``PacketType.name`` is a Python-level
#: property, and every packet is counted by name.
_TYPE_NAMES: Final = {t: t.name for t in PacketType}

#: An instrument's data, looked up once: an enum's member read from its
#: class goes through ``EnumType.__getattr__`` (Python 3.11), a few hundred
#: nanoseconds each time.
_FROM_INSTRUMENT: Final = PacketType.DATA_FROM_INSTRUMENT
_FROM_INSTRUMENT_NAME: Final = _FROM_INSTRUMENT.name
_FAULT: Final = PacketType.PORT_AGENT_FAULT

#: Encodes a read in :meth:`Router.relay_read`: the C encoder where it was
#: built (``None`` for what it leaves to Python), else the Python one.
_encode: Callable[[int, bytes, int, int], bytes | None] = (
    encode_packet_c if encode_packet_c is not None else encode_packet
)


class DirectClient(Protocol):
    """
    A data client in the agent's own process, handed each message as it is
    published (see :mod:`instrumentd.portagent.direct`).
    """

    def message(
        self, packet_type: PacketType, payload: bytes, seconds: int, fraction: int
    ) -> None:
        """
        One message of a type data clients get, recorded already.
        """

    def agent_stopped(self) -> None:
        """
        The agent has stopped: nothing more comes until it starts again.
        """


@dataclass
class AgentCounters:
    """
    What a port agent has moved, for ``get_stats``.

    :ivar bytes_from_instrument: bytes read from the instrument.
    :ivar reads_from_instrument: reads from the instrument.
    :ivar bytes_to_instrument: bytes written to the instrument.
    :ivar writes_to_instrument: writes to the instrument.
    :ivar bytes_not_sent_to_instrument: client bytes dropped while the link
        was down.
    :ivar packets: packets handled (every type), each recorded.
    :ivar packets_by_type: packets handled, by type name.
    :ivar bytes_dropped: bytes thrown away for slow clients.
    :ivar slow_clients_cut_off: clients cut off, for whatever reason.
    :ivar clients_cut_off: clients cut off, by reason: ``stalled`` (no
        progress for the stall timeout), ``buffer`` (past the client
        buffer), ``memory`` (furthest behind when all queues together
        passed the client memory).
    :ivar clients_served: client connections accepted, by kind.
    :ivar connects: times the instrument link came up.
    :ivar connect_failures: failed attempts to bring the link up.
    """

    bytes_from_instrument: int = 0
    reads_from_instrument: int = 0
    bytes_to_instrument: int = 0
    writes_to_instrument: int = 0
    bytes_not_sent_to_instrument: int = 0
    packets: int = 0
    packets_by_type: dict[str, int] = field(default_factory=dict)
    bytes_dropped: int = 0
    slow_clients_cut_off: int = 0
    clients_cut_off: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("stalled", "buffer", "memory"), 0)
    )
    clients_served: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CLIENT_KINDS, 0)
    )
    connects: int = 0
    connect_failures: int = 0


class Router:
    """
    Fan packets out to the datalog and to clients.

    :ivar counters: running totals.
    :ivar clients: the outlets of the connected clients, by kind.
    :ivar direct: the direct clients (in the agent's process).
    """

    log = Logger()

    def __init__(
        self,
        datalog: IDataLog,
        clock_ntp: Callable[[], tuple[int, int]],
        client_buffer: int,
        *,
        client_memory: float = float("inf"),
        stall_timeout: float | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        :param datalog: where every packet is recorded.
        :param clock_ntp: returns the current NTP ``(seconds, fraction)``.
        :param client_buffer: bytes one client may have queued before it is
            cut off.
        :param client_memory: bytes all clients together may have queued;
            past it, the client furthest behind is cut off.
        :param stall_timeout: seconds a client may take nothing while data
            waits for it; ``None`` for no limit.
        :param clock: the clock for the stall timeout.
        """
        self.datalog = datalog
        self.counters = AgentCounters()
        self.clients: dict[str, list[ClientOutlet]] = {k: [] for k in CLIENT_KINDS}
        self.direct: list[DirectClient] = []
        self.queues = ClientQueues(client_memory, stall_timeout, clock)
        self._now = clock_ntp
        self._client_buffer = client_buffer
        self._publishing = False
        self._faults: list[bytes] = []
        # The lists relay_read looks at for every read (never replaced).
        self._data = self.clients["data"]
        self._others = (self.clients["sniff"], self.clients["raw"])
        self._rfc2217 = self.clients["rfc2217"]

    def relay_read(self, data: bytes) -> None:
        """
        Count one read of the instrument, and publish it as
        ``DATA_FROM_INSTRUMENT``.

        Every read of a port agent comes here, so the usual case is done
        on a short path: only data clients and direct clients connected
        (or none), a read of one packet, no publish under way.  It records
        and sends exactly what :meth:`publish` would, in the same order;
        anything else goes through :meth:`publish`.

        :param data: the bytes read.
        """
        counters = self.counters
        counters.bytes_from_instrument += len(data)
        counters.reads_from_instrument += 1
        sniff, raw = self._others
        if (
            self._publishing
            or sniff
            or raw
            or self._rfc2217
            or len(data) > MAX_PAYLOAD_SIZE
        ):
            self.publish(_FROM_INSTRUMENT, data)
            return
        seconds, fraction = self._now()
        packet = _encode(_FROM_INSTRUMENT, data, seconds, fraction)
        if packet is None:
            # Not a plain bytes payload: the C encoder leaves it to Python.
            packet = encode_packet(_FROM_INSTRUMENT, data, seconds, fraction)
        self.datalog.write(packet)
        counters.packets += 1
        by_type = counters.packets_by_type
        by_type[_FROM_INSTRUMENT_NAME] = by_type.get(_FROM_INSTRUMENT_NAME, 0) + 1
        clients = self._data
        direct = self.direct
        if clients or direct:
            # As in publish: snapshots, data clients before direct ones,
            # and faults of clients cut off meanwhile sent after this
            # message.
            self._publishing = True
            try:
                for outlet in tuple(clients):
                    outlet.send(packet)
                for receiver in tuple(direct):
                    receiver.message(_FROM_INSTRUMENT, data, seconds, fraction)
            finally:
                self._publishing = False
            while self._faults:
                self.publish(_FAULT, self._faults.pop(0))

    def publish(
        self,
        packet_type: PacketType,
        payload: bytes,
        when: tuple[int, int] | None = None,
    ) -> None:
        """
        Record one message and send it to every client that wants it.

        A payload longer than one packet holds is split into several packets
        with the same time.

        :param packet_type: the packet type.
        :param payload: the bytes.
        :param when: NTP ``(seconds, fraction)``; now if ``None``.
        """
        seconds, fraction = self._now() if when is None else when
        counters = self.counters
        clients = self.clients
        name = _TYPE_NAMES[packet_type]
        # Snapshots: a client cut off during the fan-out leaves its list,
        # and the others must still get every packet.  Its fault goes out
        # after this message, so every client sees the same order.
        wanted = packet_type in DATA_CLIENT_TYPES
        data = tuple(clients["data"]) if wanted else ()
        sniffers = tuple(clients["sniff"])
        outermost = not self._publishing
        self._publishing = True
        try:
            # One packet, as a read of up to a packet's payload always is,
            # without a generator's frames.
            packets = (
                (encode_packet(packet_type, payload, seconds, fraction),)
                if len(payload) <= MAX_PAYLOAD_SIZE
                else frame_read(packet_type, payload, seconds, fraction)
            )
            write = self.datalog.write
            by_type = counters.packets_by_type
            for packet in packets:
                write(packet)
                counters.packets += 1
                by_type[name] = by_type.get(name, 0) + 1
                for outlet in data:
                    outlet.send(packet)
                if sniffers:
                    line = sniff_line(packet_type, packet[16:], seconds, fraction)
                    for outlet in sniffers:
                        outlet.send(line)
            if wanted and self.direct:
                # Recorded above, whole: a direct client needs no split.
                for direct in tuple(self.direct):
                    direct.message(packet_type, payload, seconds, fraction)
            if packet_type is _FROM_INSTRUMENT:
                for outlet in tuple(clients["raw"]):
                    outlet.send(payload)
                if clients["rfc2217"]:
                    # Telnet data: every 0xFF doubled, once for all sessions.
                    escaped = payload.replace(b"\xff", b"\xff\xff")
                    for outlet in tuple(clients["rfc2217"]):
                        outlet.send(escaped)
        finally:
            if outermost:
                self._publishing = False
        if outermost:
            while self._faults:
                self.publish(_FAULT, self._faults.pop(0))

    def send_to(
        self, outlet: ClientOutlet, packet_type: PacketType, payload: bytes
    ) -> None:
        """
        Send one packet to one data client only (not recorded: use it for
        replies that concern that client alone).
        """
        seconds, fraction = self._now()
        for packet in frame_read(packet_type, payload, seconds, fraction):
            outlet.send(packet)

    def add_client(self, kind: str, transport: ITransport, label: str) -> ClientOutlet:
        """
        Start sending to a newly connected client.

        :param kind: ``data``, ``sniff`` or ``raw``.
        :param transport: its transport.
        :param label: names it in logs and faults.
        :returns: the client's outlet.
        """
        outlet = ClientOutlet(
            transport,
            self._client_buffer,
            label,
            self._cut_off,
            kind=kind,
            queues=self.queues,
        )
        self.clients[kind].append(outlet)
        self.counters.clients_served[kind] += 1
        self.log.info("{kind} client {client} connected", kind=kind, client=label)
        return outlet

    def remove_client(self, kind: str, outlet: ClientOutlet) -> None:
        """
        Stop sending to a client whose connection is gone.
        """
        outlet.close()
        if outlet in self.clients[kind]:
            self.clients[kind].remove(outlet)
            self.log.info("{kind} client {client} left", kind=kind, client=outlet.label)

    def close_all(self) -> None:
        """
        Disconnect every client (shutdown).
        """
        for outlets in self.clients.values():
            for outlet in list(outlets):
                outlet.close()
                outlet.transport.loseConnection()
        self.queues.stop()
        # Direct clients stay registered: they are told, and hear again
        # from an agent that starts again, as a TCP client would reconnect.
        for direct in tuple(self.direct):
            direct.agent_stopped()

    def _cut_off(self, outlet: ClientOutlet, why: str, dropped: int) -> None:
        kind = outlet.kind
        if outlet in self.clients[kind]:
            self.clients[kind].remove(outlet)
        counters = self.counters
        counters.slow_clients_cut_off += 1
        reason = outlet.cut_off_reason or "buffer"
        counters.clients_cut_off[reason] = counters.clients_cut_off.get(reason, 0) + 1
        counters.bytes_dropped += dropped
        message = (
            f"{kind} client {outlet.label} cut off: {why} ({dropped} bytes dropped)"
        )
        self.log.warn("{message}", message=message)
        if self._publishing:
            self._faults.append(message.encode())
        else:
            self.publish(PacketType.PORT_AGENT_FAULT, message.encode())
