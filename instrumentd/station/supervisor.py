# -*- test-case-name: tests.test_station_service -*-
"""
One instrument of the station, brought up and kept up:
:class:`InstrumentSupervisor`.

::

    simulator (optional) ─► port agent (child process or in-process)
    ─► PortAgentConnection (TCP) or DirectAgentConnection (in-process)
    ─► driver ─► EventBus ─► sinks, API, SSE

A driver reaches a child-process agent (or one that already runs) through
its data and command ports; it is joined to an in-process agent directly
(:mod:`instrumentd.portagent.direct`), with no socket between them, so that
agent's listeners serve only clients outside the station.

The supervisor starts the simulator and the port agent, connects the
driver, discovers the instrument whenever its link comes (back) up, and
starts autosampling if the config asks.  A step that fails is retried with
a capped exponential backoff and the reason is shown in the API, so one
instrument that cannot be reached never holds up the others.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from instrumentd.connection import PortAgentConnection
from instrumentd.driver.errors import InstrumentConnectionError
from instrumentd.driver.events import (
    ConnectionEvent,
    DriverEvent,
    ErrorEvent,
    EventBus,
    EventType,
    StateChangeEvent,
)
from instrumentd.driver.protocol import ProtocolState
from instrumentd.portagent.direct import DIRECT_METHOD, DirectAgentConnection
from instrumentd.station.instrument import (
    CONNECTION_STATES,
    LinkReport,
    StationInstrument,
)
from instrumentd.station.sinks import ISink, connect_sink

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress, IListeningPort

    from instrumentd.interfaces import IInstrumentDriver
    from instrumentd.portagent.agent import PortAgent
    from instrumentd.portagent.launcher import PortAgentProcess
    from instrumentd.simulator import SimulatedInstrument
    from instrumentd.station.config import InstrumentSpec

__all__ = ["InstrumentSupervisor", "RetryPolicy", "default_retry_policy"]

_log = Logger()

#: The delay before each retry of a failed step: 1 s doubling to 60 s, plus
#: up to a second of jitter so that instruments failing together do not
#: retry in step.
RetryPolicy = Callable[[int], float]

#: How an instrument's port agent info names where the agent runs.
_EXISTING: Final = "existing"


def default_retry_policy() -> RetryPolicy:
    """
    The station's retry policy.

    :returns: ``policy(failures)`` → seconds: 1, 2, 4 ... at most 60, plus
        up to one second of jitter.
    """
    backoff = backoffPolicy(initialDelay=1.0, maxDelay=60.0, factor=2.0)
    return lambda failures: float(backoff(max(0, failures - 1)))


def _interface(description: str) -> str:
    """
    Where a listener bound with ``description`` is reached: its interface,
    or loopback for none and for the wildcard addresses.
    """
    match = re.search(r"(?:^|:)interface=((?:\\.|[^:])*)", description)
    if match:
        interface = re.sub(r"\\(.)", r"\1", match.group(1))
        if interface == "::":
            return "::1"
        if interface not in ("", "0.0.0.0"):
            return interface
    return "127.0.0.1"


def _client_endpoint_for(address: IAddress) -> str:
    """
    The client endpoint string that reaches a listening address.
    """
    from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

    if isinstance(address, IPv4Address | IPv6Address):
        host = address.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"tcp:host={host.replace(':', chr(92) + ':')}:port={address.port}"
    if isinstance(address, UNIXAddress) and address.name is not None:
        name = address.name
        path = name.decode() if isinstance(name, bytes) else name
        return f"unix:path={path.replace(':', chr(92) + ':')}"
    raise ValueError(f"cannot reach a simulator listening on {address}")


class InstrumentSupervisor:
    """
    Brings one instrument up and keeps it up: its simulator (if any), its
    port agent, its driver; discovery whenever the instrument link comes
    (back) up; autosample if configured.

    :param spec: the instrument's config.
    :param sinks: the sinks its samples go to.
    :param reactor: the reactor.
    :param retry_policy: the delay before each retry of a failed step.

    :ivar events: the driver's event bus.
    :ivar connection: the driver's connection to the port agent.
    :ivar driver: the driver.
    :ivar instrument: what the API sees.
    :ivar phase: what the supervisor is doing, in words.
    :ivar last_error: the last failure, in words, or ``None``.
    :ivar failures: consecutive failures of the current step.
    :ivar simulator: the simulated instrument, for a simulator connection.
    :ivar agent_service: the in-process port agent.
    :ivar agent_process: the child-process port agent.
    """

    def __init__(
        self,
        spec: InstrumentSpec,
        sinks: Sequence[ISink],
        *,
        reactor: Any,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.spec = spec
        self._reactor = reactor
        self._retry_policy = retry_policy or default_retry_policy()
        self.events = EventBus(reactor)
        self.connection: PortAgentConnection | DirectAgentConnection
        if spec.port_agent is not None and spec.port_agent.mode == "in-process":
            self.connection = DirectAgentConnection(reactor=reactor)
        else:
            self.connection = PortAgentConnection(reactor=reactor)
        self.driver: IInstrumentDriver = spec.make_driver(
            self.connection, self.events, reactor
        )
        self.driver.set_init_params(spec.init_params())
        self.instrument = StationInstrument(
            spec.name,
            self.driver,
            self.events,
            port_agent=self.port_agent_info,
            stats_source=self._agent_stats,
            clock=reactor,
            qc=spec.qc,
        )
        # Sinks take the instrument's presented events: each sample's
        # record is made once there, and shared with the API and streams.
        self._sink_subscriptions = [
            connect_sink(self.instrument, spec.name, sink) for sink in sinks
        ]
        self._unsubscribe_states = self.events.subscribe(
            self._state_changed, [EventType.STATE_CHANGE]
        )
        self._unsubscribe_link = self.events.subscribe(
            self._link_news, [EventType.CONNECTION, EventType.ERROR]
        )
        self._told_link: str | None = None
        self._warned: str | None = None
        self.phase = "not started"
        self.last_error: str | None = None
        self.failures = 0
        self.simulator: SimulatedInstrument | None = None
        self._simulator_port: IListeningPort | None = None
        self._instrument_endpoint = spec.connection.endpoint
        self.agent_service: PortAgent | None = None
        self.agent_process: PortAgentProcess | None = None
        self._agent_host = "127.0.0.1"
        self._agent_ports: dict[str, int | str | None] = {}
        self._bringing_up: Deferred[None] | None = None
        self._settle_call: Any = None
        self._settling = False
        self._want_autosample = False
        self._stopping = False
        self._stopped: Deferred[None] | None = None
        self._settle_waiters: list[Deferred[None]] = []

    def __repr__(self) -> str:
        return f"<InstrumentSupervisor {self.spec.name} {self.phase!r}>"

    @property
    def name(self) -> str:
        """
        The instrument's name.
        """
        return self.spec.name

    @property
    def stopping(self) -> bool:
        """
        Whether :meth:`stop` has been called.
        """
        return self._stopping

    def _set_phase(self, phase: str) -> None:
        # Not logged: the phase is in /api/health, and the steps an operator
        # needs to hear of (ready, running, failures) have lines of their
        # own.
        self.phase = phase

    def status(self) -> dict[str, object]:
        """
        What the supervisor is doing, for the API's health.

        :returns: ``phase``, ``last_error`` and ``failures``.
        """
        return {
            "phase": self.phase,
            "last_error": self.last_error,
            "failures": self.failures,
        }

    # -- what the API shows --------------------------------------------------------

    def port_agent_info(self) -> dict[str, object]:
        """
        What is known of the port agent now.

        :returns: ``mode`` (``child``, ``in-process`` or ``existing``),
            ``pid``, ``host``, ``ports`` (by listener kind, ``None`` for a
            listener that is off), ``driver_link`` (``tcp``: the driver
            uses the data and command ports; ``direct``: it is joined to
            the in-process agent, with no socket), ``datalog_dir`` and
            ``running``.
        """
        agent = self.spec.port_agent
        existing = self.spec.connection.existing_agent
        info: dict[str, object] = {
            "mode": agent.mode if agent is not None else _EXISTING,
            "host": self._agent_host,
            "ports": dict(self._agent_ports),
            "driver_link": (
                "direct"
                if isinstance(self.connection, DirectAgentConnection)
                else "tcp"
            ),
        }
        if agent is not None:
            info["datalog_dir"] = agent.datalog_dir
        if self.agent_process is not None:
            info["pid"] = self.agent_process.pid
            info["running"] = self.agent_process.exit_status is None
        elif self.agent_service is not None:
            info["pid"] = os.getpid()
            info["running"] = bool(self.agent_service.running)
        elif existing is not None:
            info["running"] = self.connection.state == "connected"
        else:
            info["running"] = False
        if self._instrument_endpoint is not None:
            info["instrument"] = self._instrument_endpoint
        return info

    def _agent_stats(self) -> Deferred[Mapping[str, Any]] | Mapping[str, Any]:
        if self.agent_service is not None:
            return self.agent_service.stats()
        assert isinstance(self.connection, PortAgentConnection)
        client = self.connection.client
        if client is None:
            raise ConnectionDone("the station is not connected to the port agent")
        return cast("Deferred[Mapping[str, Any]]", client.get_stats())

    # -- starting ---------------------------------------------------------------------

    def start(self) -> None:
        """
        Start bringing the instrument up; returns at once.
        """
        self._stopping = False
        self._bring_up()

    def start_settling(self) -> Deferred[None]:
        """
        Start bringing the instrument up (see :meth:`start`).

        :returns: a Deferred firing when it has first settled: it runs, a
            step has failed (and waits to retry), or it is stopped.
        """
        settled: Deferred[None] = Deferred()
        self._settle_waiters.append(settled)
        self.start()
        return settled

    def _settled(self) -> None:
        waiters, self._settle_waiters = self._settle_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _bring_up(self) -> None:
        running = Deferred.fromCoroutine(self._bring_up_until_done())
        self._bringing_up = running

        def done(result: object) -> None:
            if self._bringing_up is running:
                self._bringing_up = None
            if isinstance(result, Failure) and not result.check(CancelledError):
                _log.failure(
                    "{name}: bringing the instrument up failed unexpectedly",
                    result,
                    name=self.name,
                )

        running.addBoth(done)

    async def _bring_up_until_done(self) -> None:
        while not self._stopping:
            try:
                await self._bring_up_once()
            except CancelledError:
                raise
            except Exception as e:
                if self.stopping:
                    return
                self.failures += 1
                delay = self._retry_policy(self.failures)
                self._failed(f"{self.phase}: {_reason(e)}", delay)
                self._set_phase(f"waiting {delay:.1f} s to retry")
                await deferLater(self._reactor, delay, lambda: None)
                continue
            self.failures = 0
            self.instrument.trouble = self._warned = None
            return

    def _failed(self, error: str, delay: float) -> None:
        self._settled()
        self.last_error = self.instrument.trouble = error
        # A step that keeps failing the same way (a silent instrument, for
        # days) is logged once, not at every retry; the health shows the
        # count.
        if error != self._warned:
            self._warned = error
            _log.warn(
                "{name}: {error}; retrying in {delay:.1f} s, and with backoff "
                "while it fails the same way",
                name=self.name,
                error=error,
                delay=delay,
            )

    async def _bring_up_once(self) -> None:
        simulator = self.spec.connection.simulator
        if simulator is not None and self._simulator_port is None:
            self._set_phase("starting the simulator")
            await self._start_simulator()
        if self.spec.port_agent is not None and not self._agent_running():
            self._set_phase(f"starting the port agent ({self.spec.port_agent.mode})")
            await self._start_agent()
        if self.driver.get_resource_state() in ("UNCONFIGURED", "DISCONNECTED"):
            self.driver.configure(self._comms_config())
        self._set_phase("connecting the driver to the port agent")
        await self.driver.connect()
        if self._stopping:
            return
        self._set_phase("waiting for the instrument link")
        # From here on the driver's state events drive discovery; a protocol
        # that already exists (the link was up at once) is settled now.
        if self.driver.get_resource_state() not in CONNECTION_STATES:
            self._want_autosample = self.spec.autosample
            self._schedule_settle(0)

    async def _start_simulator(self) -> None:
        from instrumentd.simulator import listen, make_simulator

        spec = self.spec.connection.simulator
        assert spec is not None
        if self.simulator is None:
            self.simulator = make_simulator(
                spec.model, spec.settings, reactor=self._reactor
            )
        port = await listen(self.simulator, spec.listen, self._reactor)
        self._simulator_port = port
        self._instrument_endpoint = _client_endpoint_for(port.getHost())
        _log.info(
            "{name}: simulated {what} on {endpoint}",
            name=self.name,
            what=self.simulator.describe(),
            endpoint=self._instrument_endpoint,
        )

    def _agent_running(self) -> bool:
        if self.agent_process is not None:
            return self.agent_process.exit_status is None
        return self.agent_service is not None

    async def _start_agent(self) -> None:
        spec = self.spec.port_agent
        assert spec is not None and self._instrument_endpoint is not None
        data = spec.listeners["data"]
        self._agent_host = _interface(data[0]) if data else "127.0.0.1"
        if spec.mode == "in-process":
            from instrumentd.portagent.agent import PortAgent

            agent = PortAgent(
                spec.agent_config(self.name, self._instrument_endpoint),
                reactor=self._reactor,
            )
            # Its start is logged here (with its datalog file), and its
            # instrument running: not three lines more that name no
            # instrument.
            agent.quiet_start = True
            # Binding TCP listeners completes at once: a busy port raises
            # here, with nothing left running.
            agent.startService()
            self.agent_service = agent
            assert isinstance(self.connection, DirectAgentConnection)
            self.connection.bind(agent)
            self._agent_ports = agent.port_numbers()
            pid = os.getpid()
            datalog = agent.datalog.path or spec.datalog_dir
        else:
            from instrumentd.portagent.launcher import launch_port_agent

            if spec.log_file is not None:
                os.makedirs(os.path.dirname(spec.log_file) or ".", exist_ok=True)
            process = await launch_port_agent(
                name=self.name,
                instrument=self._instrument_endpoint,
                datalog_dir=spec.datalog_dir,
                heartbeat=spec.heartbeat,
                disconnect_grace=spec.disconnect_grace,
                max_reconnect_delay=spec.max_reconnect_delay,
                rotate=spec.rotate,
                rotate_size=spec.rotate_size,
                client_buffer=spec.client_buffer,
                client_memory=spec.client_memory,
                client_stall_timeout=spec.client_stall_timeout,
                data_port=list(spec.listeners["data"]),
                command_port=list(spec.listeners["command"]),
                sniff_port=list(spec.listeners["sniff"]),
                raw_port=list(spec.listeners["raw"]),
                rfc2217_port=list(spec.listeners.get("rfc2217") or ()) or None,
                reactor=self._reactor,
                timeout=spec.launch_timeout,
                log_file=spec.log_file,
                token_file=spec.token_file,
                tokenless=spec.tokenless,
                allow_insecure=spec.allow_insecure,
            )
            if self._stopping:
                await process.stop()
                raise CancelledError()
            self.agent_process = process
            self._agent_ports = dict(process.ports)
            pid = process.pid
            datalog = spec.datalog_dir
            process.ended.addCallback(self._agent_ended, process)
        _log.info(
            "{name}: port agent ({mode}, pid {pid}) ready: {ports}; datalog in "
            "{datalog}",
            name=self.name,
            mode=spec.mode,
            pid=pid,
            ports=", ".join(
                f"{kind} {port}"
                for kind, port in self._agent_ports.items()
                if port is not None
            )
            or "no listeners",
            datalog=datalog,
        )

    def _comms_config(self) -> dict[str, object]:
        existing = self.spec.connection.existing_agent
        if existing is not None:
            self._agent_host = existing.host
            self._agent_ports = {
                "data": existing.data_port,
                "command": existing.command_port,
            }
            existing_config: dict[str, object] = {
                "method": "port_agent",
                "name": self.name,
                "host": existing.host,
                "data_port": existing.data_port,
                "command_port": existing.command_port,
            }
            if existing.token_file is not None:
                existing_config["token_file"] = existing.token_file
                existing_config["tokenless_data"] = existing.tokenless_data
            return existing_config
        spec = self.spec.port_agent
        assert spec is not None
        if spec.mode == "in-process":
            return {"method": DIRECT_METHOD, "name": self.name}
        config: dict[str, object] = {
            "method": "port_agent",
            "name": self.name,
            "host": self._agent_host,
            "data_port": self._agent_ports["data"],
            "command_port": self._agent_ports["command"],
            "heartbeat": spec.heartbeat,
        }
        if spec.token_file is not None:
            config["token_file"] = spec.token_file
            config["tokenless_data"] = "data" in spec.tokenless
        return config

    def _agent_ended(self, status: int, process: PortAgentProcess) -> None:
        if self._stopping or process is not self.agent_process:
            return
        from instrumentd.portagent.launcher import describe_exit

        self.last_error = f"the port agent (pid {process.pid}) {describe_exit(status)}"
        self.instrument.trouble = self.last_error
        _log.error(
            "{name}: {error}; starting a new one", name=self.name, error=self.last_error
        )
        self.agent_process = None
        self._agent_ports = {}
        self._cancel_settle()
        # Its ports may change with the new agent: let go of the old ones
        # and configure the driver afresh.
        self.driver.disconnect().addBoth(lambda _: self._restart())

    def _restart(self) -> None:
        if self._stopping or self._bringing_up is not None:
            return
        self.failures += 1
        delay = self._retry_policy(self.failures)
        self._set_phase(f"waiting {delay:.1f} s to restart the port agent")
        self._settle_call = None
        waiting = deferLater(self._reactor, delay, lambda: None)
        self._bringing_up = waiting

        def go(_: object) -> None:
            if self._bringing_up is waiting:
                self._bringing_up = None
                self._bring_up()

        waiting.addCallbacks(go, lambda reason: reason.trap(CancelledError))

    # -- why the instrument link is down -------------------------------------------

    def _link_news(self, event: DriverEvent) -> None:
        """
        Follow the instrument link: when it goes down, or the port agent
        sends a fault while it is down, ask the agent why (its
        ``get_stats`` says since when and the reason, for a child process
        as for an agent in the station's process); when it comes up,
        forget.
        """
        if self._stopping:
            return
        if isinstance(event, ConnectionEvent):
            if event.state == "INSTRUMENT_DISCONNECTED":
                if self.instrument.link is None:
                    self.instrument.link = LinkReport(event.time)
                self._ask_why()
            elif event.state == "CONNECTED":
                self._link_up()
            elif event.state in ("CONNECTING", "DISCONNECTED"):
                # The agent itself is out of reach: its word on the link
                # is stale.
                self.instrument.link = None
        elif (
            isinstance(event, ErrorEvent)
            and event.error_code == InstrumentConnectionError.code
            and self.driver.get_resource_state() == "INSTRUMENT_DISCONNECTED"
        ):
            # A port agent fault while the link is down: the reason may
            # have changed.
            self._ask_why()

    def _link_up(self) -> None:
        self.instrument.link = None
        if self._told_link is not None:
            _log.info("{name}: the instrument link is up again", name=self.name)
            self._told_link = None

    def _ask_why(self) -> None:
        def learned(stats: Mapping[str, Any]) -> None:
            link = stats.get("link")
            if self.driver.get_resource_state() != "INSTRUMENT_DISCONNECTED":
                return
            if not isinstance(link, Mapping):
                # An agent that does not say why (OOI's, or an older one):
                # what is known is that the link is down, and since when.
                failed(None)
                return
            if link.get("up"):
                return
            since = link.get("down_since")
            reason = link.get("last_error")
            known = self.instrument.link
            report = LinkReport(
                float(since)
                if isinstance(since, int | float)
                else (known.down_since if known else self._reactor.seconds()),
                reason if isinstance(reason, str) else None,
            )
            self.instrument.link = report
            # Without a reason the agent knows of no failed attempt: its
            # first connection is still being made (every in-process agent
            # is, when its driver joins it).  The status says so; a
            # warning, and "up again" a moment later, would say nothing
            # (two lines an instrument coming up); a failed attempt brings
            # a fault, and this again, with the reason.
            self._tell(report.sentence(), log=report.reason is not None)

        def failed(reason: Failure | None) -> None:
            # An agent that cannot say (an older one, or one going away):
            # the link is still known to be down, without a reason.
            if self.instrument.link is not None:
                self._tell(self.instrument.link.sentence())

        maybeDeferred(self._agent_stats).addCallbacks(learned, failed).addErrback(
            lambda reason: _log.failure(
                "{name}: learning why the link is down failed", reason, name=self.name
            )
        )

    def _tell(self, sentence: str, log: bool = True) -> None:
        self.last_error = sentence
        # Once per change: an instrument away for a week is one line.
        if log and sentence != self._told_link:
            self._told_link = sentence
            _log.warn("{name}: {problem}", name=self.name, problem=sentence)

    # -- discovery and autosample ----------------------------------------------------

    def _state_changed(self, event: DriverEvent) -> None:
        assert isinstance(event, StateChangeEvent)
        if self._stopping or event.state != ProtocolState.UNKNOWN:
            return
        if event.previous is None:
            # A new protocol: the instrument link has just come (back) up.
            self.failures = 0
            self._want_autosample = self.spec.autosample
            self._schedule_settle(0)
        elif not self._settling:
            self._schedule_settle(0)

    def _schedule_settle(self, delay: float) -> None:
        self._cancel_settle()
        # Called from inside the driver's state machines: act on a fresh
        # reactor turn, when the machines are ready for new inputs.
        self._settle_call = self._reactor.callLater(delay, self._settle)

    def _cancel_settle(self) -> None:
        if self._settle_call is not None and self._settle_call.active():
            self._settle_call.cancel()
        self._settle_call = None

    def _settle(self) -> None:
        """
        Take the next step towards a known, working instrument: discover
        its state while UNKNOWN; start autosample in COMMAND when wanted.
        """
        self._settle_call = None
        if self._stopping:
            return
        state = self.driver.get_resource_state()
        if state == ProtocolState.UNKNOWN:
            self._set_phase("discovering the instrument's state")
            step: Deferred[object] = self.instrument.exclusive(
                self.driver.discover_state
            )
        elif state == ProtocolState.COMMAND and self._want_autosample:
            self._set_phase("starting autosample")
            step = self.instrument.exclusive(
                self.driver.execute_resource, "start_autosample"
            )
        else:
            if state not in CONNECTION_STATES:
                self._running(state)
            return
        self._settling = True
        step.addCallbacks(self._stepped, self._step_failed)

    def _running(self, state: str) -> None:
        if not self.phase.startswith("running"):
            _log.info("{name}: running, {state}", name=self.name, state=state)
        self.failures = 0
        self.instrument.trouble = self._warned = None
        self._set_phase("running")
        self._settled()

    def _stepped(self, result: object) -> None:
        self._settling = False
        if self.driver.get_resource_state() == ProtocolState.AUTOSAMPLE:
            # Sampling, by our hand or the operator's: nothing more to start.
            self._want_autosample = False
        self.failures = 0
        self._schedule_settle(0)

    def _step_failed(self, reason: Failure) -> None:
        self._settling = False
        if self._stopping:
            return
        state = self.driver.get_resource_state()
        if state in CONNECTION_STATES:
            # The link went down under us; its return starts over.
            self._set_phase("waiting for the instrument link")
            return
        self.failures += 1
        delay = self._retry_policy(self.failures)
        self._failed(f"{self.phase}: {_reason(reason.value or Exception())}", delay)
        self._set_phase(f"waiting {delay:.1f} s to retry")
        self._schedule_settle(delay)

    # -- stopping ----------------------------------------------------------------------

    def stop(self, *, sync_datalog: bool = True) -> Deferred[None]:
        """
        Disconnect the driver, stop the port agent (the one the station
        started) and the simulator, and stop feeding the sinks.

        :param sync_datalog: fsync an in-process agent's datalog as it
            closes; ``False`` when the caller syncs the file system once
            for all of them.
        :returns: a Deferred that fires when everything has stopped; the
            same one if called again.
        """
        if self._stopped is None:
            self._stopping = True
            self._cancel_settle()
            self._settled()
            self._stopped = Deferred.fromCoroutine(self._stop(sync_datalog))
        return self._stopped

    async def _stop(self, sync_datalog: bool) -> None:
        self._set_phase("stopping")
        bringing_up = self._bringing_up
        if bringing_up is not None:
            bringing_up.cancel()
            with contextlib.suppress(Exception):
                await bringing_up
        try:
            await self.driver.disconnect()
        except Exception:
            _log.failure("{name}: disconnecting the driver failed", name=self.name)
        if self.agent_process is not None:
            process, self.agent_process = self.agent_process, None
            await process.stop()
        if self.agent_service is not None:
            service, self.agent_service = self.agent_service, None
            service.sync_datalog = sync_datalog
            await maybeDeferred(service.stopService)
            if isinstance(self.connection, DirectAgentConnection):
                self.connection.bind(None)
        if self._simulator_port is not None:
            port, self._simulator_port = self._simulator_port, None
            await maybeDeferred(port.stopListening)
        if self.simulator is not None:
            self.simulator.stop()
        # A record QC still holds for the next sample goes to the sinks.
        self.instrument.flush()
        for unsubscribe in self._sink_subscriptions:
            unsubscribe()
        self._sink_subscriptions = []
        self._unsubscribe_states()
        self._unsubscribe_link()
        self.instrument.close()
        self._set_phase("stopped")


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0] if "\n" in text and len(text) > 300 else text
