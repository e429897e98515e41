# -*- test-case-name: tests.test_station_service -*-
"""
The station service: port agents, drivers, sinks and the HTTP API, built
from a checked :class:`~instrumentd.station.config.StationConfig`.

::

    StationService
     ├ sinks (JSON-lines files, HTTP ingest), shared by the instruments
     ├ one InstrumentSupervisor per instrument:
     │    simulator (optional) ─► port agent (child process or in-process)
     │    ─► PortAgentConnection ─► driver ─► EventBus ─► sinks, API, SSE
     └ StationAPI on its endpoint (loopback by default)

Each :class:`~instrumentd.station.supervisor.InstrumentSupervisor` brings
its instrument up on its own and keeps it up (see
:mod:`instrumentd.station.supervisor`), so one instrument that cannot be
reached never holds up the others.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from twisted.application.service import Service
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    gatherResults,
    maybeDeferred,
)
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.failure import Failure

from instrumentd import __version__
from instrumentd.gcfreeze import freeze_startup_objects, hold_full_collections
from instrumentd.station.api import StationAPI
from instrumentd.station.apisite import APISite, is_local
from instrumentd.station.instrument import Station
from instrumentd.station.sinks import HttpSink, ISink, JsonLinesSink
from instrumentd.station.startup import StartupQueue
from instrumentd.station.supervisor import (
    InstrumentSupervisor,
    RetryPolicy,
    default_retry_policy,
)

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTime

    from instrumentd.station.archive_metadata import HeldWrites
    from instrumentd.station.config import InstrumentSpec, SinkSpec, StationConfig

__all__ = [
    "APIExposedError",
    "InstrumentSupervisor",
    "StationService",
    "SupervisedStation",
    "default_retry_policy",
    "describe_address",
    "describe_url",
    "is_local",
    "make_sink",
]

_log = Logger()

#: Seconds an event stream's messages may wait to be written together.
STREAM_COALESCE = 0.1


def make_sink(
    spec: SinkSpec,
    reactor: IReactorTime,
    instruments: int = 0,
    *,
    station: str | None = None,
    position: Mapping[str, float] | None = None,
) -> ISink:
    """
    Build a sink from its config.

    :param spec: the sink's config.
    :param reactor: its clock (and, for HTTP and MQTT, its network).
    :param instruments: how many instruments write to it (sizes a
        JSON-lines sink's open files, unless configured).
    :param station: the station's name (MQTT topics carry it).
    :param position: the station's position, for the MQTT registry.
    :returns: the sink.
    :raises OSError: if its directory cannot be made.
    :raises ValueError: for a spool that is not one, or in use.
    """
    if spec.type == "mqtt":
        from instrumentd.mqtt import BrokerSettings
        from instrumentd.station.sinks import MqttSink

        assert spec.broker is not None and spec.spool_dir is not None
        assert station is not None, "an MQTT sink needs the station's name"
        settings = BrokerSettings(
            address=spec.broker,
            client_id=spec.client_id or f"instrumentd-{station}-{spec.name}",
            username=spec.username,
            password_file=spec.password_file,
            ca_file=spec.ca_file,
            cert_file=spec.cert_file,
            key_file=spec.key_file,
            keepalive=spec.keepalive,
            clean_start=spec.session_expiry == 0,
            session_expiry=spec.session_expiry,
        )
        return MqttSink(
            settings,
            station=station,
            spool_dir=spec.spool_dir,
            max_bytes=spec.max_bytes,
            window=spec.window,
            registry=spec.registry,
            position=position,
            remote_commands=spec.remote_commands,
            reactor=reactor,
        )
    if spec.type == "jsonlines":
        assert spec.directory is not None
        return JsonLinesSink(
            spec.directory,
            reactor=reactor,
            flush_interval=spec.flush_interval,
            max_open_files=spec.open_files_for(instruments),
            idle_close=spec.idle_close,
        )
    assert spec.url is not None and spec.spool_dir is not None
    return HttpSink(
        spec.url,
        spool_dir=spec.spool_dir,
        batch_size=spec.batch_size,
        batch_interval=spec.batch_interval,
        timeout=spec.timeout,
        max_bytes=spec.max_bytes,
        headers=dict(spec.headers),
        reactor=reactor,
    )


class APIExposedError(SystemExit):
    """
    The API would listen beyond loopback with no token, and the
    configuration does not say it is meant to be open.

    The configuration check refuses this for every endpoint whose address
    is known beforehand; this is the guard for the rest, made once the
    API has bound.  It is a ``SystemExit`` so that twistd ends with status
    1 and the one line that says why, not a traceback.
    """


def describe_address(address: IAddress) -> str:
    """
    Where a port really listens, for people: ``0.0.0.0:8700 (every IPv4
    interface)``, ``127.0.0.1:8700``, ``[::]:8700 (every interface)``, a
    UNIX socket's path.

    :param address: a listening port's address.
    """
    from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

    if isinstance(address, IPv4Address):
        every = " (every IPv4 interface)" if address.host == "0.0.0.0" else ""
        return f"{address.host}:{address.port}{every}"
    if isinstance(address, IPv6Address):
        every = " (every interface)" if address.host == "::" else ""
        return f"[{address.host}]:{address.port}{every}"
    if isinstance(address, UNIXAddress):
        name = address.name
        return name.decode() if isinstance(name, bytes) else str(name)
    return str(address)


def describe_url(address: IAddress) -> str:
    """
    The base URL of the API listening on ``address``.

    :param address: the listening port's address.
    :returns: e.g. ``http://127.0.0.1:8700``.
    """
    from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

    if isinstance(address, IPv4Address):
        host = "127.0.0.1" if address.host == "0.0.0.0" else address.host
        return f"http://{host}:{address.port}"
    if isinstance(address, IPv6Address):
        host = "::1" if address.host == "::" else address.host
        return f"http://[{host}]:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        path = name.decode() if isinstance(name, bytes) else str(name)
        return f"http+unix://{path}"
    return str(address)


class SupervisedStation(Station):
    """
    The :class:`~instrumentd.station.instrument.Station` the API serves,
    with each instrument's bring-up phase and the sinks' counters in its
    health.

    :param supervisors: the instruments' supervisors.
    :param sinks: the sinks by name.
    :param clock: for the uptime.
    """

    def __init__(
        self,
        supervisors: Sequence[InstrumentSupervisor],
        sinks: Mapping[str, ISink],
        *,
        clock: IReactorTime,
    ) -> None:
        super().__init__([s.instrument for s in supervisors], clock=clock)
        self.supervisors = {s.name: s for s in supervisors}
        self.sinks = dict(sinks)

    def health(self) -> dict[str, object]:
        """
        :returns: :meth:`Station.health`, with ``station`` (the bring-up
            phase, the last error) for each instrument, ``sinks``: each
            sink's counters, and ``warnings``: ``"sink NAME: ..."`` for each
            way a sink is losing particles now (its spool at its bound or
            not writable).  A warning makes ``status`` ``"degraded"``.
        """
        health = super().health()
        instruments = cast("dict[str, dict[str, object]]", health["instruments"])
        for name, each in instruments.items():
            supervisor = self.supervisors.get(name)
            if supervisor is not None:
                each["station"] = supervisor.status()
        sinks = {name: sink.stats() for name, sink in self.sinks.items()}
        warnings = [
            f"sink {name}: {text}"
            for name, stats in sinks.items()
            for text in cast("list[str]", stats.get("warnings") or [])
        ]
        health["sinks"] = sinks
        health["warnings"] = warnings
        if warnings:
            health["status"] = "degraded"
        return health


class StationService(Service):
    """
    The station: sinks, an :class:`InstrumentSupervisor` per instrument,
    and the HTTP API.

    On start it makes the sinks and binds the API (a failure of either
    stops the start, with nothing left running), then starts every
    instrument's supervisor and, once the reactor runs, prints what it
    started and how to talk to it.  On stop it closes the event streams
    and the API, stops every instrument (child port agents included) and
    closes the sinks.

    :param config: the checked configuration.
    :param reactor: the reactor; the global one if ``None``.
    :param retry_policy: the delay before each retry of a failed step.
    :param demo: whether this is the built-in demo (changes what is
        printed).

    :ivar supervisors: by instrument name, once started.
    :ivar sinks: by name, once started.
    :ivar api: the API resource, once started.
    :ivar api_site: the HTTP server in front of it, once started.
    :ivar api_port: its listening port, once bound.
    :ivar url: the API's base URL, once bound.
    """

    def __init__(
        self,
        config: StationConfig,
        *,
        reactor: Any = None,
        retry_policy: RetryPolicy | None = None,
        demo: bool = False,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.config = config
        self.name = "instrumentd station"
        self._reactor = reactor
        self._retry_policy = retry_policy
        self.demo = demo
        self.supervisors: dict[str, InstrumentSupervisor] = {}
        self.sinks: dict[str, ISink] = {}
        self.api: StationAPI | None = None
        self.api_port: IListeningPort | None = None
        self.api_site: APISite | None = None
        self.bound_address: IAddress | None = None
        self.url: str | None = None
        self._stopping: Deferred[None] | None = None
        self.startup: StartupQueue | None = None
        self._release_collections: Callable[[], None] | None = None
        self._metadata_subscriptions: list[Callable[..., None]] = []
        self._metadata_hold: HeldWrites | None = None

    def startService(self) -> None:
        """
        Make the sinks, bind the API, start the instruments.

        :raises Exception: if a sink cannot be made or the API cannot be
            bound; nothing is left running.
        """
        super().startService()  # type: ignore[no-untyped-call]
        self._stopping = None
        # No full garbage collections while the station makes its
        # instruments and brings them up (each would walk the whole
        # growing heap: seconds of a large start-up); one when all are up,
        # before the freeze (instrumentd.gcfreeze).
        self._let_collections_run()
        self._release_collections = hold_full_collections()
        full_collections = gc.get_stats()[2]["collections"]
        try:
            for name, sink_spec in self.config.sinks.items():
                writers = sum(name in spec.sinks for spec in self.config.instruments)
                self.sinks[name] = make_sink(
                    sink_spec,
                    self._reactor,
                    writers,
                    station=self.config.name,
                    position=self.config.position,
                )
            for spec in self.config.instruments:
                self.supervisors[spec.name] = InstrumentSupervisor(
                    spec,
                    [self.sinks[name] for name in spec.sinks],
                    reactor=self._reactor,
                    retry_policy=self._retry_policy,
                )
                self._serve_remote(spec, self.supervisors[spec.name])
            station = SupervisedStation(
                list(self.supervisors.values()), self.sinks, clock=self._reactor
            )
            config = self.config
            self.api = StationAPI(
                station,
                token=config.token,
                clock=self._reactor,
                max_body=config.api_max_body,
                # Streams last; keep a quarter of the connections for
                # everything else.
                max_streams=max(1, config.api_max_connections * 3 // 4),
                # A watcher of thousands of instruments gets one write per
                # tenth of a second, not one per event.
                stream_coalesce=STREAM_COALESCE,
            )
            self.api_site = APISite(
                self.api,
                max_body=config.api_max_body,
                authorize=self.api.authorize,
                idle_timeout=config.api_idle_timeout,
                max_connections=config.api_max_connections,
                access_log=config.api_access_log,
                reactor=self._reactor,
            )
            self._bind_api(self.api_site)
        except BaseException:
            self.running = False
            self._release()
            self._let_collections_run()
            raise
        # The metadata files wait until every instrument has been brought
        # up: a millisecond of the reactor each, at thousands of instruments
        # coming up seconds of a start-up bound by its CPU.
        from instrumentd.station.archive_metadata import HeldWrites

        self._metadata_hold = HeldWrites(self._reactor)
        # A window at a time (see instrumentd.station.startup): the first
        # instruments sample within seconds however many there are.
        self.startup = StartupQueue(
            self._reactor,
            window=self.config.startup_window,
            timeout=self.config.startup_timeout,
        )
        self.startup.add(
            partial(self._bring_up, spec, self.supervisors[spec.name])
            for spec in self.config.instruments
        )
        started_at = self._reactor.seconds()
        self.startup.when_all_settled().addCallback(
            lambda _: self._all_started(started_at, full_collections)
        )
        self._reactor.callWhenRunning(self._announce)

    def _let_collections_run(self) -> None:
        release, self._release_collections = self._release_collections, None
        if release is not None:
            release()

    def _all_started(self, started_at: float, full_collections: int) -> None:
        if not self.running or self.startup is None:
            return
        full_collections = gc.get_stats()[2]["collections"] - full_collections
        startup = self.startup
        seconds = self._reactor.seconds() - started_at
        # What start-up made (drivers, agents, parameters, QC state, the
        # modules) lives as long as the station: out of the collector's
        # reach, its full collections walk only what is made since.  At
        # 3,000 instruments they walked about a million objects, half a
        # second each, 14 % of the station's CPU.
        frozen = freeze_startup_objects()
        self._let_collections_run()
        _log.info(
            "all {count} instruments brought up in {seconds:.1f} s ({late} took "
            "longer than startup_timeout; starts held back {held} times while "
            "the reactor ran late; {full} full garbage collections); {frozen} "
            "start-up objects frozen out of garbage collection",
            count=startup.started,
            seconds=seconds,
            late=startup.timed_out,
            held=startup.held_back,
            full=full_collections,
            frozen=frozen,
        )
        if self._metadata_hold is not None:
            self._metadata_hold.release()

    def _bind_api(self, site: APISite) -> None:
        listening = serverFromString(self._reactor, self.config.api).listen(site)
        bound: list[IListeningPort] = []
        failed: list[Failure] = []
        listening.addCallbacks(bound.append, failed.append)
        if failed:
            _log.critical(
                "cannot serve the API on {endpoint}: {reason}",
                endpoint=self.config.api,
                reason=failed[0].getErrorMessage(),
            )
            failed[0].raiseException()
        if not bound:
            # Endpoints that bind later (none of the usual ones): wait.
            listening.addCallbacks(self._api_bound, self._api_failed)
            return
        self._api_bound(bound[0])

    def _api_bound(self, port: IListeningPort) -> None:
        address = port.getHost()
        if (
            self.config.token is None
            and not self.config.api_open
            and not is_local(address)
        ):
            port.stopListening()
            where = describe_address(address)
            _log.critical(
                "refusing to serve the API on {where} without a token: anyone "
                "who can reach it could change the instruments. Set "
                "api.token_file, or listen on loopback (api.listen = "
                '"tcp:8700:interface=127.0.0.1"), or say it is meant to be '
                "open (api.open = true, or --api-open)",
                where=where,
            )
            raise APIExposedError(
                f"the API would listen on {where} with no token; set "
                "api.token_file, listen on loopback, or set api.open = true"
            )
        self.api_port = port
        self.bound_address = address
        self.url = describe_url(address)

    def _api_failed(self, reason: Failure) -> None:
        _log.critical(
            "cannot serve the API on {endpoint}: {reason}",
            endpoint=self.config.api,
            reason=reason.getErrorMessage(),
        )
        self._reactor.stop()

    def _bring_up(
        self, spec: InstrumentSpec, supervisor: InstrumentSupervisor
    ) -> Deferred[None]:
        # The metadata file is written when its instrument comes up, not
        # all at the station's start: for 5,000 instruments that was 25 s
        # before the first could start.
        self._describe(spec, supervisor)
        return supervisor.start_settling()

    def _describe(self, spec: InstrumentSpec, supervisor: InstrumentSupervisor) -> None:
        """
        Keep the instrument's ``metadata.json`` beside its sample files in
        each JSON-lines sink it writes to, for ``instrumentd-export``.
        """
        from instrumentd.station.archive_metadata import (
            STATION_UPDATE_DELAY,
            InstrumentMetadataFile,
        )

        for name in spec.sinks:
            sink = self.sinks[name]
            if isinstance(sink, JsonLinesSink):
                self._metadata_subscriptions.append(
                    InstrumentMetadataFile(
                        sink.directory,
                        spec.name,
                        supervisor.driver,
                        supervisor.events,
                        station=self.config.name,
                        position=self.config.position,
                        clock=self._reactor.seconds,
                    ).start(
                        later=self._reactor.callLater,
                        delay=STATION_UPDATE_DELAY,
                        hold=self._metadata_hold,
                    )
                )

    def _serve_remote(
        self, spec: InstrumentSpec, supervisor: InstrumentSupervisor
    ) -> None:
        """
        Put the instrument in the registry of each MQTT sink it writes to,
        and let that sink answer requests to it.
        """
        from instrumentd.station.sinks import MqttSink

        for name in spec.sinks:
            sink = self.sinks[name]
            if isinstance(sink, MqttSink):
                sink.serve(supervisor.instrument, spec.driver)

    def _unfollow_metadata(self, write_pending: bool = False) -> None:
        for unsubscribe in self._metadata_subscriptions:
            unsubscribe(write_pending)
        self._metadata_subscriptions = []
        if self._metadata_hold is not None:
            self._metadata_hold.stop()

    def _release(self) -> None:
        """
        Let go of what a failed start made (sinks, subscriptions).
        """
        self._unfollow_metadata()
        for supervisor in self.supervisors.values():
            supervisor.instrument.close()
        self.supervisors = {}
        for sink in self.sinks.values():
            sink.close()
        self.sinks = {}
        self.api = None
        self.api_site = None

    def _announce(self) -> None:
        if not self.running:
            return
        for line in self.banner():
            _log.info("{line}", line=line)

    def banner(self) -> list[str]:
        """
        What the station prints when it has started: what runs, where the
        data goes, and how to talk to it.

        :returns: the lines.
        """
        config = self.config
        count = len(config.instruments)
        where = "the built-in demo" if self.demo else config.source
        lines = [
            f"instrumentd {__version__} station: {count} instrument"
            f"{'s' if count != 1 else ''} from {where}"
        ]
        for spec in config.instruments:
            lines.append("  " + _describe_instrument(spec, config))
        url = self.url or "(not yet bound)"
        bound = self.bound_address
        where = f"{url}/api"
        if bound is not None and describe_address(bound) not in url:
            # Bound to every interface: say so, and where to reach it here.
            where = f"{describe_address(bound)}, here {url}/api"
        lines.append(f"API listening on {where}  (endpoint {config.api})")
        if bound is not None and not is_local(bound) and config.token is None:
            lines.append(
                "  open to anyone who can reach it: no token (api.open = true)"
            )
        if config.token is not None:
            lines.append(
                f"  changes need the token in {config.token_file}: "
                "Authorization: Bearer <token>"
            )
        first = config.instruments[0].name if config.instruments else "NAME"
        ctl = "instrumentctl"
        if self.url is not None and self.url != "http://127.0.0.1:8700":
            ctl += f" --url {self.url}"
        if config.token_file is not None:
            ctl += f" --token-file {config.token_file}"
        auth = ' -H "Authorization: Bearer $TOKEN"' if config.token else ""
        lines += [
            f"Web page: {url}/",
            "Talk to it:",
            f"  {ctl} list",
            f"  {ctl} status {first}",
            f"  {ctl} watch {first}",
            f"  curl {url}/api/instruments",
            f"  curl {url}/api/instruments/{first}/parameters",
            f"  curl -N {url}/api/instruments/{first}/events",
            f"  curl -N {url}/api/events",
            f"  curl -X POST{auth} {url}/api/instruments/{first}/commands/"
            "acquire_status",
            f"  curl {url}/metrics",
        ]
        return lines

    def stopService(self) -> Deferred[None]:
        """
        Close the event streams and the API, stop every instrument (and the
        port agents the station started), then close the sinks.

        :returns: a Deferred that fires when all of it has stopped.
        """
        if self._stopping is not None:
            return self._stopping
        super().stopService()  # type: ignore[no-untyped-call]
        if self.startup is not None:
            self.startup.stop()
        self._let_collections_run()
        self._stopping = Deferred.fromCoroutine(self._stop())
        return self._stopping

    async def _stop(self) -> None:
        if self.api is not None:
            self.api.close()
        # Let go of the instruments first: a child agent is also stopped by
        # its launcher when the reactor shuts down, and the drivers should
        # be disconnecting by then, not reconnecting to it.
        # In-process agents' datalogs are synced once for all of them, not
        # one fsync each (3 to 4 ms of the reactor each: most of a minute
        # for 5,000).
        in_process = any(
            supervisor.agent_service is not None
            for supervisor in self.supervisors.values()
        )
        stops = [
            supervisor.stop(sync_datalog=False)
            for supervisor in self.supervisors.values()
        ]
        self._unfollow_metadata(write_pending=True)
        if self.api_port is not None:
            port, self.api_port = self.api_port, None
            await maybeDeferred(port.stopListening)
        if self.api_site is not None:
            # Idle keep-alive connections would otherwise outlive the station.
            await self.api_site.close_connections()
        results = await DeferredList(stops, consumeErrors=True)
        for ok, result in results:
            if not ok:
                _log.failure("stopping an instrument failed", result)
        if in_process:
            os.sync()
        await gatherResults(
            [maybeDeferred(sink.close) for sink in self.sinks.values()],
            consumeErrors=True,
        ).addErrback(lambda reason: _log.failure("closing a sink failed", reason))
        _log.info("station stopped")


def _describe_instrument(spec: InstrumentSpec, config: StationConfig) -> str:
    connection = spec.connection
    if connection.simulator is not None:
        reached = (
            f"simulated {connection.simulator.model} (in the station, time scale "
            f"{connection.simulator.settings.time_scale:g})"
        )
    elif connection.existing_agent is not None:
        agent = connection.existing_agent
        reached = (
            f"port agent at {agent.host} data {agent.data_port} command "
            f"{agent.command_port}"
        )
    else:
        reached = str(connection.endpoint)
    agent_text = (
        f" -> port agent ({spec.port_agent.mode}, datalog {spec.port_agent.datalog_dir})"
        if spec.port_agent is not None
        else ""
    )
    driver = spec.driver.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    doing = ", autosample" if spec.autosample else ""
    sinks = []
    for name in spec.sinks:
        sink = config.sinks[name]
        if sink.type == "jsonlines":
            sinks.append(f"{sink.directory}/{spec.name}/")
        elif sink.type == "mqtt":
            sinks.append(f"MQTT {sink.broker}")
        else:
            sinks.append(str(sink.url))
    to = f"; samples to {', '.join(sinks)}" if sinks else "; no sinks"
    return f"{spec.name}: {reached}{agent_text} -> driver {driver}{doing}{to}"
