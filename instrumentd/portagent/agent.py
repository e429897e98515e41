# -*- test-case-name: tests.test_portagent_agent -*-
"""
The port agent service: one instrument link, a datalog, and listeners.

Data flows one way only, and nothing downstream can stop it::

    instrument link --read--> timestamp --> Router --> datalog (always)
                                                   +-> data / sniff / raw clients

A read is stamped with the NTP time at the moment it arrives; every packet
is recorded before any client sees it; each client has a bounded buffer.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any, Final

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    clientFromString,
    serverFromString,
)
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from instrumentd import __version__
from instrumentd.gcfreeze import frozen_objects
from instrumentd.interfaces import IDataLog
from instrumentd.packet import PacketType, ntp_clock
from instrumentd.portagent.access import (
    TokenGateFactory,
    listener_reach,
    read_token_file,
)
from instrumentd.portagent.command import CommandPortFactory
from instrumentd.portagent.datalog import DataLog
from instrumentd.portagent.lifecycle import (
    ParentWatch,
    remove_status_file,
    write_status_file,
)
from instrumentd.portagent.link import InstrumentLink, LinkDown
from instrumentd.portagent.listeners import (
    DataClient,
    ListenerFactory,
    RawClient,
    SniffClient,
)
from instrumentd.portagent.ooiconfig import ooi_fields
from instrumentd.portagent.options import (
    ALL_LISTENER_KINDS,
    LISTENER_KINDS,
    PortAgentConfig,
    demo_recording,
)
from instrumentd.portagent.rfc2217.session import RFC2217Factory
from instrumentd.portagent.router import Router
from instrumentd.portagent.tuning import current_slice_us
from instrumentd.portagent.writers import LineWriters

__all__ = ["CONNECTED", "DISCONNECTED", "PortAgent"]

CONNECTED: Final = "CONNECTED"
DISCONNECTED: Final = "DISCONNECTED"


def instrument_endpoint_description(description: str) -> str:
    """
    Resolve the ``demo`` shorthand to the built-in recording, repeated for
    ever.
    """
    if description == "demo":
        path = str(demo_recording()).replace(":", "\\:")
        return f"datalog:{path}:speed=1:loop=true"
    return description


#: A TCP instrument as a station writes it: a plain host name or IPv4
#: address and a port, nothing else.
_PLAIN_TCP: Final = re.compile(r"tcp:host=([A-Za-z0-9.-]+):port=([0-9]{1,5})")


def instrument_endpoint(reactor: Any, description: str) -> IStreamClientEndpoint:
    """
    The client endpoint of an instrument's description: what
    ``clientFromString`` makes of it, without parsing the plain TCP ones
    (``tcp:host=H:port=P``: a ``TCP4ClientEndpoint``, 30 s timeout, as
    ``clientFromString`` makes them): its tokenizer took 30 us an agent,
    a thousandth of a CPU-bound start-up of thousands.

    :param reactor: the reactor.
    :param description: the endpoint description.
    :returns: the endpoint.
    """
    plain = _PLAIN_TCP.fullmatch(description)
    if plain is not None:
        return TCP4ClientEndpoint(reactor, plain[1], int(plain[2]))
    endpoint: IStreamClientEndpoint = clientFromString(reactor, description)
    return endpoint


class PortAgent(Service):
    """
    A port agent for one instrument.

    :ivar config: what it was told.
    :ivar router: fans packets out to the datalog and clients.
    :ivar datalog: the binary record of every packet.
    :ivar ports: the bound listeners, by kind.
    :ivar writers: raw clients and RFC 2217 sessions queued for the line;
        the first writes.
    :ivar version: the agent's version text.
    """

    log = Logger()

    def __init__(
        self,
        config: PortAgentConfig,
        reactor: Any = None,
        datalog: IDataLog | None = None,
    ) -> None:
        """
        :param config: the agent's configuration.
        :param reactor: the reactor; the global one if ``None``.
        :param datalog: the datalog to write; a :class:`DataLog` under
            ``config.datalog_dir`` if ``None``.
        """
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.config = config
        self.version = __version__
        self._reactor = reactor
        self.name = f"port-agent {config.name}"
        self.datalog: IDataLog = datalog or DataLog(
            config.datalog_dir,
            config.name,
            rotate=config.rotate,
            rotate_size=config.rotate_size,
            reactor=reactor,
            on_trouble=self._datalog_trouble,
        )
        self.router = Router(
            self.datalog,
            # The reactor's clock as NTP: one C call where it was built.
            ntp_clock(reactor),
            config.client_buffer,
            client_memory=config.client_memory,
            stall_timeout=config.client_stall_timeout,
            clock=reactor,
        )
        self._announced: str | None = None
        self._told_problem: str | None = None
        self.ports: dict[str, list[IListeningPort]] = {}
        self.writers = LineWriters()
        self.command_clients = 0
        self.heartbeat_interval = config.heartbeat
        self._heartbeat: LoopingCall | None = None
        self._grace_call: IDelayedCall | None = None
        self._parent_watch: ParentWatch | None = None
        self._started_at = 0.0
        self._stopping = False
        self._instrument = instrument_endpoint_description(config.instrument)
        self._token = read_token_file(config.token_file) if config.token_file else None
        self.link = InstrumentLink(
            instrument_endpoint(reactor, self._instrument),
            config.instrument,
            # Each read straight to the router, which counts it.
            on_data=self.router.relay_read,
            on_up=self._link_up,
            on_down=self._link_down,
            on_attempt_failed=self._attempt_failed,
            on_ended=self._link_ended,
            max_delay=config.max_reconnect_delay,
            clock=reactor,
        )

    @property
    def state(self) -> str:
        """
        The link state announced to clients: ``CONNECTED`` or
        ``DISCONNECTED``.  A link that drops comes back within the
        disconnect grace period without ever being announced as down.
        """
        return self._announced or DISCONNECTED

    def _announce(self, state: str) -> None:
        if self._announced != state:
            first = self._announced is None
            self._announced = state
            if not (self.quiet_start and first and state == CONNECTED):
                self.log.info("instrument link {state}", state=state)
            self.router.publish(PacketType.PORT_AGENT_STATUS, state.encode())
            if state == DISCONNECTED:
                self._tell_problem()

    def _tell_problem(self) -> None:
        # The status packet says only DISCONNECTED (OOI's format); a fault
        # after it says why and since when, so a driver (and its operator)
        # need not dig in this agent's log.  Sent again only when the
        # reason changes, so a week-long outage is one packet, not one per
        # attempt.
        problem = self.link.problem()
        if problem is not None and problem != self._told_problem:
            self._told_problem = problem
            self.router.publish(PacketType.PORT_AGENT_FAULT, problem.encode())

    def _datalog_trouble(self, message: str) -> None:
        # Drivers never read the agent's log: tell them as a fault too.
        self.router.publish(PacketType.PORT_AGENT_FAULT, message.encode())

    # -- lifecycle ---------------------------------------------------------

    def startService(self) -> None:
        """
        Bind every listener, then open the datalog (recording the
        configuration first), connect to the instrument, start heartbeats
        and the parent watch; once the reactor runs, log "ready" and write
        the status file.

        :raises OSError: (or the endpoint's error) if a listener cannot be
            bound; nothing is left running and no datalog file is made.
        """
        super().startService()  # type: ignore[no-untyped-call]
        self._started_at = self._reactor.seconds()
        self._stopping = False
        # Made only for the kinds that listen: a station's direct agents
        # listen on none.
        factories: dict[str, Callable[[], Factory]] = {
            "data": lambda: ListenerFactory(self, DataClient),
            "command": lambda: CommandPortFactory(self),
            "sniff": lambda: ListenerFactory(self, SniffClient),
            "raw": lambda: ListenerFactory(self, RawClient),
            "rfc2217": lambda: RFC2217Factory(
                self,
                self._token if self.config.gated("rfc2217") else None,
                self._reactor,
            ),
        }
        pending: list[Deferred[IListeningPort]] = []
        for kind, descriptions in self.config.listeners.items():
            self.ports[kind] = []
            if not descriptions:
                continue
            factory = self._guarded(kind, factories[kind]())
            for description in descriptions:
                self._warn_if_insecure(kind, description)
                d = serverFromString(self._reactor, description).listen(factory)
                d.addCallback(self.ports[kind].append)
                d.addErrback(self._listen_failed, kind, description)
                pending.append(d)
        bound = DeferredList(pending, fireOnOneErrback=True, consumeErrors=True)
        failure: list[Any] = []
        bound.addErrback(failure.append)
        if failure:
            # Listening on TCP and UNIX sockets completes at once: report the
            # problem to twistd now, so it exits non-zero with the reason.
            self.stopService()
            failure[0].value.subFailure.raiseException()
        # Only now, so an agent that cannot bind leaves no empty datalog
        # behind (under Restart=always that would be a file every restart).
        self.datalog.open()
        bound.addCallback(lambda _: self._listening())
        self.link.start()
        self._set_heartbeat(self.heartbeat_interval)
        # Until the link has come up once, it is down: announce that after
        # the grace period like any other outage.
        self._start_grace()
        if self.config.parent_pid is not None:
            self._parent_watch = ParentWatch(
                self.config.parent_pid, self._parent_exited, self._reactor
            )
            self._parent_watch.start()

    def _guarded(self, kind: str, factory: Factory) -> Factory:
        # An RFC 2217 session reads the token inside its telnet stream.
        if self._token is None or not self.config.gated(kind) or kind == "rfc2217":
            return factory
        return TokenGateFactory(factory, self._token, kind, self._reactor)

    def _warn_if_insecure(self, kind: str, description: str) -> None:
        try:
            reach = listener_reach(description)
        except ValueError:
            return  # listening will fail and say why
        if reach.local or reach.encrypted or self.config.gated(kind):
            return
        self.log.warn(
            "{kind} port {endpoint} is reachable beyond loopback ({where}) with "
            "neither TLS nor a token (--allow-insecure)",
            kind=kind,
            endpoint=description,
            where=reach.where,
        )

    def _listen_failed(self, reason: Any, kind: str, description: str) -> Any:
        self.log.critical(
            "cannot listen for {kind} clients on {endpoint} (--{kind}-port): {reason}",
            kind=kind,
            endpoint=description,
            reason=reason.getErrorMessage(),
        )
        return reason

    def _listening(self) -> None:
        # The datalog starts with the configuration, bound ports included,
        # so every recording says where it came from.
        self.router.publish(
            PacketType.PORT_AGENT_CONFIG,
            json.dumps(self.public_config(), sort_keys=True).encode(),
        )
        # twistd starts services before reactor.run() installs its signal
        # handlers.  Whoever learns we are ready (from the status file or the
        # "ready" log line) may send SIGTERM at once, so say so only when the
        # reactor runs and a SIGTERM gets an orderly shutdown.
        self._reactor.callWhenRunning(self._ready)

    def _ready(self) -> None:
        if not self.running:
            return
        if not self.quiet_start:
            self.log.info(
                "port agent {name} ready: ports {ports}; instrument {instrument}; "
                "datalog {datalog}",
                name=self.config.name,
                ports=self.port_numbers(),
                instrument=self.config.instrument,
                datalog=self.datalog.path,
            )
        if self.config.status_file:
            write_status_file(
                self.config.status_file,
                {
                    "pid": os.getpid(),
                    "name": self.config.name,
                    "version": self.version,
                    "ports": self.port_numbers(),
                    "listeners": self.listener_addresses(),
                },
            )

    #: Whether stopping fsyncs the datalog; a station that stops many
    #: in-process agents syncs the file system once instead.
    sync_datalog = True

    @property
    def quiet_start(self) -> bool:
        """
        Whether the agent leaves its start to its owner's log: no "ready"
        line, and the instrument link's first coming up is no line (a
        station logs its in-process agent ready and its instrument
        running; the agent's own lines, which do not name the instrument,
        were two more an instrument of thousands).  Every later change of
        the link is logged as ever.  Set before :meth:`startService`.
        """
        return self.link.quiet_first_up

    @quiet_start.setter
    def quiet_start(self, quiet: bool) -> None:
        self.link.quiet_first_up = quiet

    def stopService(self) -> Deferred[None]:
        """
        Stop listening, disconnect clients and the instrument, flush and
        close the datalog (fsynced unless :attr:`sync_datalog` is off), and
        remove the status file.
        """
        self._stopping = True
        super().stopService()  # type: ignore[no-untyped-call]
        if self.config.status_file:
            remove_status_file(self.config.status_file)
        if self._parent_watch is not None:
            self._parent_watch.stop()
            self._parent_watch = None
        self._set_heartbeat(0)
        self._cancel_grace()
        waits: list[Deferred[Any]] = [self.link.stop()]
        for ports in self.ports.values():
            for port in ports:
                waits.append(Deferred.fromCoroutine(_stop_listening(port)))
        self.ports = {}
        self.router.close_all()

        def close_datalog(_: object) -> None:
            datalog = self.datalog
            if not self.sync_datalog and isinstance(datalog, DataLog):
                datalog.close(sync=False)
            else:
                datalog.close()

        return DeferredList(waits, consumeErrors=True).addCallback(close_datalog)

    def _parent_exited(self) -> None:
        self.log.info("launcher has exited; port agent shutting down")
        if self._reactor.running:
            self._reactor.stop()
        else:
            # The parent was gone before we started: stop once running.
            self._reactor.callWhenRunning(self._reactor.stop)

    # -- the instrument ----------------------------------------------------

    def _link_up(self) -> None:
        self.router.counters.connects += 1
        self._told_problem = None
        self._cancel_grace()
        self._announce(CONNECTED)

    def _link_down(self, reason: str) -> None:
        if self._stopping:
            return
        self._start_grace()

    def _link_ended(self, reason: str) -> None:
        # It will not come back, so there is no grace to give: say so now,
        # and why (the fault _tell_problem sends), to data clients.
        if self._stopping:
            return
        self._cancel_grace()
        self._announce(DISCONNECTED)
        self._tell_problem()

    def _attempt_failed(self, reason: str) -> None:
        self.router.counters.connect_failures += 1
        if self._announced == DISCONNECTED:
            self._tell_problem()

    def _start_grace(self) -> None:
        self._cancel_grace()
        if self._announced == DISCONNECTED:
            return
        self._grace_call = self._reactor.callLater(
            self.config.disconnect_grace, self._grace_expired
        )

    def _cancel_grace(self) -> None:
        if self._grace_call is not None and self._grace_call.active():
            self._grace_call.cancel()
        self._grace_call = None

    def _grace_expired(self) -> None:
        self._grace_call = None
        if not self.link.connected:
            self._announce(DISCONNECTED)

    def to_instrument(self, data: bytes, source: str, client: object = None) -> bool:
        """
        Send a client's bytes to the instrument and record them as
        DATA_FROM_DRIVER; if the link is down, or an RFC 2217 session other
        than ``client`` holds the line, drop them, count them and tell data
        clients with a fault.

        :param data: the bytes.
        :param source: who sent them, for the fault text.
        :param client: the line writer sending them, if it is one.
        :returns: whether they were sent.
        """
        counters = self.router.counters
        holder = self.writers.exclusive_holder
        if holder is not None and holder is not client:
            counters.bytes_not_sent_to_instrument += len(data)
            self.router.publish(
                PacketType.PORT_AGENT_FAULT,
                (
                    f"the instrument line is held by RFC 2217 client {holder.label}: "
                    f"{len(data)} bytes from {source} not sent"
                ).encode(),
            )
            return False
        try:
            self.link.write(data)
        except LinkDown as e:
            counters.bytes_not_sent_to_instrument += len(data)
            self.router.publish(
                PacketType.PORT_AGENT_FAULT,
                f"{e}: {len(data)} bytes from {source} not sent".encode(),
            )
            return False
        counters.bytes_to_instrument += len(data)
        counters.writes_to_instrument += 1
        self.router.publish(PacketType.DATA_FROM_DRIVER, data)
        return True

    def send_break(self, duration_ms: int) -> Deferred[None]:
        """
        Send a serial break on the instrument link.
        """
        try:
            return self.link.send_break(duration_ms)
        except Exception:
            return fail()

    # -- heartbeats --------------------------------------------------------

    def set_heartbeat_interval(self, seconds: float) -> None:
        """
        Change the heartbeat period; 0 turns heartbeats off.
        """
        self.heartbeat_interval = seconds
        if self.running:
            self._set_heartbeat(seconds)

    def _set_heartbeat(self, seconds: float) -> None:
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        self._heartbeat = None
        if seconds > 0:
            self._heartbeat = LoopingCall(
                self.router.publish, PacketType.PORT_AGENT_HEARTBEAT, b"HB"
            )
            self._heartbeat.clock = self._reactor
            self._heartbeat.start(seconds, now=False)

    # -- reporting ---------------------------------------------------------

    def port_numbers(self) -> dict[str, int | str | None]:
        """
        The first bound address of each listener kind: a TCP port number,
        a UNIX socket path, or ``None`` when that listener is off (``rfc2217``
        only when it is configured).
        """
        numbers: dict[str, int | str | None] = {}
        # The RFC 2217 listener is reported only when it is configured, so
        # that agents without one report what they always did.
        kinds = [
            k
            for k in ALL_LISTENER_KINDS
            if k in LISTENER_KINDS or self.config.listeners.get(k)
        ]
        for kind in kinds:
            ports = self.ports.get(kind) or []
            numbers[kind] = _address(ports[0]) if ports else None
        return numbers

    def listener_addresses(self) -> dict[str, list[int | str]]:
        """
        Every bound address, by listener kind.
        """
        return {
            kind: [_address(p) for p in ports] for kind, ports in self.ports.items()
        }

    def public_config(self) -> dict[str, object]:
        """
        The configuration as reported by ``get_config`` (no secrets), with
        the bound ports and the version, and beside them the keys OOI's port
        agent sent (:func:`~instrumentd.portagent.ooiconfig.ooi_fields`:
        ``refdes``, ``type``, ``instaddr``, ``instport``, ``host``, and
        ``ports["da"]``), so that OOI drivers find what they look for; and
        ``link_can_break``, whether the instrument link (a serial line) can
        carry a break.
        """
        config = self.config.public()
        config["heartbeat"] = self.heartbeat_interval
        config["version"] = self.version
        # Only a serial line carries a break; a driver that knows this does
        # not ask for one it will be refused (and the refusal's FAULT).
        config["link_can_break"] = self._instrument.startswith("serial:")
        config.update(
            ooi_fields(
                self.config.name, self._instrument, self.port_numbers(), self.ports
            )
        )
        return config

    def stats(self) -> dict[str, object]:
        """
        Counters for ``get_stats``.
        """
        c = self.router.counters
        return {
            "name": self.config.name,
            "state": self.state,
            "link_up": self.link.connected,
            "link": self.link.report(),
            "uptime": self._reactor.seconds() - self._started_at,
            "instrument": {
                "bytes_in": c.bytes_from_instrument,
                "reads_in": c.reads_from_instrument,
                "bytes_out": c.bytes_to_instrument,
                "writes_out": c.writes_to_instrument,
                "bytes_not_sent": c.bytes_not_sent_to_instrument,
                "connects": c.connects,
                "reconnects": max(0, c.connects - 1),
                "connect_failures": c.connect_failures,
            },
            "packets": c.packets,
            "packets_by_type": dict(c.packets_by_type),
            "clients": {
                **{kind: len(outlets) for kind, outlets in self.router.clients.items()},
                "command": self.command_clients,
                # Drivers in this process, joined without a socket.
                "direct": len(self.router.direct),
            },
            "clients_served": dict(c.clients_served),
            "bytes_dropped": c.bytes_dropped,
            "slow_clients_cut_off": c.slow_clients_cut_off,
            "clients_cut_off": dict(c.clients_cut_off),
            "client_queues": {
                "queued": self.router.queues.queued,
                "peak": self.router.queues.peak,
                "budget": self.config.client_memory,
            },
            "process": {
                "pid": os.getpid(),
                "gc_frozen_objects": frozen_objects(),
                "sched_slice_us": current_slice_us(),
            },
            "datalog": {
                "file": self.datalog.path,
                "size": self.datalog.size,
                "write_errors": self.datalog.write_errors,
                "bytes_dropped": self.datalog.bytes_dropped,
                "bytes_written": getattr(self.datalog, "bytes_written", None),
                "failing": getattr(self.datalog, "failing", False),
            },
        }


def _address(port: IListeningPort) -> int | str:
    host = port.getHost()
    number = getattr(host, "port", None)
    if isinstance(number, int):
        return number
    name = getattr(host, "name", None)
    return name.decode() if isinstance(name, bytes) else str(name)


async def _stop_listening(port: IListeningPort) -> None:
    await port.stopListening()  # type: ignore[misc]
