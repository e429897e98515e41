# -*- test-case-name: tests.test_station_api -*-
"""
What the station's HTTP API needs of each instrument, and of the station.

The station service builds one :class:`StationInstrument` per configured
instrument (its driver, the driver's event bus, what is known of its port
agent) and hands them to the API in a :class:`Station`::

    instrument = StationInstrument(
        "ctd1",
        driver,
        port_agent={"pid": 4321, "ports": {"data": 4001, "command": 4002}},
        stats_source=port_agent_client.get_stats,
        clock=reactor,
    )
    station = Station([instrument], clock=reactor)
    site = Site(StationAPI(station, token=token, clock=reactor))

A :class:`StationInstrument` applies the requests that change its instrument
one at a time (:meth:`StationInstrument.exclusive`), counts what its driver
announces (samples, errors, state changes) for ``/metrics``, keeps the
latest sample, and lets the event stream and the sinks subscribe to its
events.

It is where each of the driver's events becomes what the station shows,
once, whoever follows: an error is said in the API's words, and a sample's
particle becomes its :class:`~instrumentd.station.record.SampleRecord`
(through :attr:`StationInstrument.recorder`, which holds the QC hook), so
files, sinks, event streams and the API share one record and its JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from twisted.internet.defer import Deferred, DeferredLock, fail, maybeDeferred, succeed
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from instrumentd import __version__
from instrumentd.driver.errors import InstrumentError
from instrumentd.driver.events import (
    ConfigChangeEvent,
    ConnectionEvent,
    DriverEvent,
    ErrorEvent,
    EventBus,
    EventListener,
    EventType,
    SampleEvent,
    StateChangeEvent,
)
from instrumentd.interfaces import IInstrumentDriver
from instrumentd.portagent.link import utc_text
from instrumentd.station.quality import InstrumentQC, QCFlags
from instrumentd.station.record import RecordEvent, SampleRecord, SampleRecorder
from instrumentd.station.refusals import CONNECTION_STATES, explain, explain_event

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from instrumentd.qc import StreamQCSpec

__all__ = [
    "CONNECTION_STATES",
    "InstrumentBusyError",
    "LinkReport",
    "PortAgentInfo",
    "PortAgentStatsSource",
    "Station",
    "StationInstrument",
]

T = TypeVar("T")


#: What is known of an instrument's port agent: a mapping such as
#: ``{"pid": 4321, "host": "127.0.0.1", "ports": {"data": 4001, ...}}``, or a
#: callable returning one (when it changes, e.g. after the agent restarts).
PortAgentInfo = Mapping[str, object] | Callable[[], Mapping[str, object]]

#: Where the port agent's counters come from: a callable returning its
#: ``get_stats`` mapping, or a Deferred of it (a remote agent's
#: :meth:`~instrumentd.portagent.client.PortAgentClient.get_stats`; an
#: in-process agent's ``stats``).
PortAgentStatsSource = Callable[
    [], "Deferred[Mapping[str, Any]] | Deferred[dict[str, Any]] | Mapping[str, Any]"
]


class InstrumentBusyError(InstrumentError):
    """
    Too many requests that change this instrument are already waiting their
    turn; this one was refused and nothing was done.

    :ivar instrument: the instrument's name.
    :ivar queued: how many requests were waiting.
    """

    code: ClassVar[str] = "INSTRUMENT_BUSY"

    def __init__(self, instrument: str, queued: int) -> None:
        """
        :param instrument: the instrument's name.
        :param queued: how many requests were already waiting.
        """
        self.instrument = instrument
        self.queued = queued
        super().__init__(
            f"instrument {instrument} is busy: {queued} requests are already "
            f"waiting to change it; try again when they have finished"
        )

    def details(self) -> dict[str, object]:
        """
        :returns: ``instrument`` and ``queued``.
        """
        return {"instrument": self.instrument, "queued": self.queued}


@dataclass(frozen=True)
class LinkReport:
    """
    What the station knows of an instrument's link while it is down.

    :ivar down_since: since when, Unix seconds.
    :ivar reason: why, in words (``connection refused``), or ``None`` when
        the port agent has not said.
    """

    down_since: float
    reason: str | None = None

    def sentence(self) -> str:
        """
        :returns: e.g. ``the instrument link is down since
            2026-12-07T05:56:52Z: connection refused``.
        """
        text = f"the instrument link is down since {utc_text(self.down_since)}"
        return text if self.reason is None else f"{text}: {self.reason}"

    def to_dict(self) -> dict[str, object]:
        """
        :returns: ``up`` (false), ``down_since`` (ISO 8601 UTC) and
            ``reason``, JSON-ready.
        """
        return {
            "up": False,
            "down_since": utc_text(self.down_since),
            "reason": self.reason,
        }


class StationInstrument:
    """
    One instrument as the station's API sees it.

    It subscribes to ``bus`` when made, to count events; call :meth:`close`
    when the instrument is taken out of service.

    :param name: the instrument's name, unique in the station (it is part of
        the API's URLs).
    :param driver: its driver.
    :param bus: the bus the driver publishes on; ``None`` for
        ``driver.events``.
    :param port_agent: what is known of its port agent (see
        :data:`PortAgentInfo`), or ``None`` if it has none.
    :param stats_source: where the port agent's counters come from (see
        :data:`PortAgentStatsSource`), or ``None``.
    :param clock: the reactor's clock, for timeouts; ``None`` for the global
        reactor.
    :param max_queued: how many changing requests may wait their turn
        before more are refused with :class:`InstrumentBusyError`; this
        bounds the memory a flood of requests can take.
    :param recorder: makes each sample's record; ``None`` for a
        :class:`~instrumentd.station.record.SampleRecorder` without QC.
    :param qc: stream → its real-time QC (an instrument spec's ``qc``):
        each sample's record then carries its flags (see
        :mod:`~instrumentd.station.quality`); ``None`` or empty for none.

    :ivar recorder: the instrument's
        :class:`~instrumentd.station.record.SampleRecorder` (set its ``qc``
        hook to attach QC flags).
    :ivar quality: the instrument's QC, which attaches each record's flags
        before anyone sees the record (and holds a record back one sample
        for a spike test); ``None`` without QC.

    :ivar samples: the samples announced since the station started.
    :ivar samples_by_stream: the same, by particle stream name.
    :ivar errors: the error events announced.
    :ivar errors_by_code: the same, by error code.
    :ivar state_changes: the state change events announced.
    :ivar config_changes: the configuration change events announced.
    :ivar latest_sample: the latest sample event's JSON form
        (``{"type": "SAMPLE", "time": ..., "record": {...}}``), or ``None``.
    :ivar latest_record: the latest sample's record, or ``None``.
    :ivar latest_error: the latest error event's JSON form, or ``None``.
    :ivar port_agent_stats: the port agent's counters as last fetched by
        :meth:`refresh_port_agent_stats`, or ``None``.
    :ivar streams: how many event streams are open now.
    :ivar streams_cut_off: event streams closed because their client
        could not keep up.
    :ivar link: what is known of the instrument link while it is down
        (set by the station), or ``None``.
    :ivar trouble: what the station last failed to do for this
        instrument and is retrying (e.g. discovering a silent
        instrument's state), in words, or ``None``.
    """

    def __init__(
        self,
        name: str,
        driver: IInstrumentDriver,
        bus: EventBus | None = None,
        *,
        port_agent: PortAgentInfo | None = None,
        stats_source: PortAgentStatsSource | None = None,
        clock: IReactorTime | None = None,
        max_queued: int = 32,
        recorder: SampleRecorder | None = None,
        qc: Mapping[str, StreamQCSpec] | None = None,
    ) -> None:
        self.name = name
        self.driver = driver
        self.bus: EventBus = bus if bus is not None else driver.events
        self._port_agent = port_agent
        self._stats_source = stats_source
        self._clock = clock
        self.max_queued = max_queued
        self._lock = DeferredLock()
        self._queued = 0
        self.samples = 0
        self.samples_by_stream: dict[str, int] = {}
        self.errors = 0
        self.errors_by_code: dict[str, int] = {}
        self.state_changes = 0
        self.config_changes = 0
        self.recorder = recorder if recorder is not None else SampleRecorder(name)
        self._latest_sample: RecordEvent | None = None
        self.latest_error: dict[str, object] | None = None
        self.port_agent_stats: Mapping[str, Any] | None = None
        self.streams = 0
        self.streams_cut_off = 0
        self.link: LinkReport | None = None
        self.trouble: str | None = None
        # What the driver publishes is presented once, here, and handed to
        # every follower (event streams, sinks) on this bus.
        self._presented = EventBus(clock)
        self.quality: InstrumentQC[RecordEvent] | None = (
            InstrumentQC(name, qc, clock=self._reactor_clock(), release=self._flagged)
            if qc
            else None
        )
        self._unsubscribe: Callable[[], None] | None = self.bus.subscribe(self._receive)

    def __repr__(self) -> str:
        return f"<StationInstrument {self.name}>"

    def close(self) -> None:
        """
        Stop counting this instrument's events (a sample record held back
        for QC goes on first: see :meth:`flush`).
        """
        self.flush()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def flush(self) -> None:
        """
        Let a sample record that QC holds back for the next sample go on
        now, with its spike flag not evaluated: the instrument is being
        taken out of service (the station calls it before it stops feeding
        the sinks).
        """
        if self.quality is not None:
            self.quality.flush()

    def _receive(self, event: DriverEvent) -> None:
        if not isinstance(event, SampleEvent):
            self._deliver(self.presentable(event))
            return
        # A sample (once a second per instrument): presentable()'s work,
        # written out.
        presented = self.recorder.present(event)
        quality = self.quality
        if quality is None:
            self._flagged(presented, None)
            return
        # Flagged before anyone sees it; it goes on from _flagged, now or
        # (for a spike test) once the stream's next sample has come.
        # RecordEvent.record without its property call and check (and
        # annotations rather than typing.cast, a call each, per sample).
        record: SampleRecord = presented.particle  # type: ignore[assignment]
        data = record.to_dict()
        when = record.unix_time
        stream: str = data["stream"]  # type: ignore[assignment]
        values: Mapping[str, object] = data["values"]  # type: ignore[assignment]
        quality.submit(
            stream, self.bus.now() if when is None else when, values, presented
        )

    def _flagged(self, event: RecordEvent, qc: QCFlags | None) -> None:
        record: SampleRecord = event.particle  # type: ignore[assignment]
        if qc is not None:
            record.attach_qc(qc, ready=True)
        # _count's work for a sample, written out.
        self.samples += 1
        stream: str = record.to_dict()["stream"]  # type: ignore[assignment]
        by_stream = self.samples_by_stream
        by_stream[stream] = by_stream.get(stream, 0) + 1
        self._latest_sample = event
        self._presented.publish(event)

    def _deliver(self, event: DriverEvent) -> None:
        self._count(event)
        self._presented.publish(event)

    def _count(self, event: DriverEvent) -> None:
        if isinstance(event, RecordEvent):
            self.samples += 1
            stream = event.record.stream
            self.samples_by_stream[stream] = self.samples_by_stream.get(stream, 0) + 1
            self._latest_sample = event
        elif isinstance(event, ErrorEvent):
            self.errors += 1
            self.errors_by_code[event.error_code] = (
                self.errors_by_code.get(event.error_code, 0) + 1
            )
            self.latest_error = event.to_dict()
        elif isinstance(event, StateChangeEvent):
            self.state_changes += 1
        elif isinstance(event, ConfigChangeEvent):
            self.config_changes += 1

    @property
    def listener_count(self) -> int:
        """
        How many listeners follow this instrument's presented events
        (event feeds, sinks).
        """
        return self._presented.listener_count

    # What the API reads.

    @property
    def latest_sample(self) -> dict[str, object] | None:
        """
        The latest sample event's JSON form, or ``None``.
        """
        latest = self._latest_sample
        return None if latest is None else latest.to_dict()

    @property
    def latest_record(self) -> dict[str, object] | None:
        """
        The latest sample's record, or ``None``.
        """
        latest = self._latest_sample
        return None if latest is None else latest.record.to_dict()

    @property
    def state(self) -> str:
        """
        The driver's resource state: the protocol state while connected,
        else the connection state.
        """
        return self.driver.get_resource_state()

    @property
    def connected(self) -> bool:
        """
        Whether the instrument can be worked now (its driver is past the
        connection states).
        """
        return self.state not in CONNECTION_STATES

    @property
    def port_agent(self) -> Mapping[str, object] | None:
        """
        What is known of the port agent now, or ``None`` if it has none.
        """
        if self._port_agent is None:
            return None
        if callable(self._port_agent):
            return self._port_agent()
        return self._port_agent

    @property
    def queued(self) -> int:
        """
        How many changing requests are running or waiting their turn.
        """
        return self._queued

    def problem(self) -> str | None:
        """
        What keeps this instrument from working now, for an operator.

        :returns: e.g. ``the instrument link is down since
            2026-12-07T05:56:52Z: connection refused``, or what the station
            is failing to do; ``None`` when nothing is known to be wrong.
        """
        state = self.state
        if state == "INSTRUMENT_DISCONNECTED":
            link = self.link
            return (
                link.sentence() if link is not None else "the instrument link is down"
            )
        return self.trouble

    def link_event(self) -> ConnectionEvent | None:
        """
        The instrument link's state as an event, for an event stream that
        opens while the link is down (the event that said so came before
        it).

        :returns: a ``CONNECTION`` event for INSTRUMENT_DISCONNECTED whose
            reason says since when and why, or ``None`` while the link is
            not known to be down.
        """
        if self.state != "INSTRUMENT_DISCONNECTED":
            return None
        link = self.link
        problem = self.problem() or "the instrument link is down"
        return ConnectionEvent(
            "INSTRUMENT_DISCONNECTED",
            problem,
            time=link.down_since if link is not None else self.bus.now(),
        )

    def explain(self, error: InstrumentError) -> InstrumentError:
        """
        A driver's error as the operator should read it: see
        :func:`~instrumentd.station.refusals.explain`.

        :param error: the driver's error.
        :returns: the error to answer with.
        """
        return explain(
            error, instrument=self.name, state=self.state, problem=self.problem()
        )

    def summary(self) -> dict[str, object]:
        """
        The instrument in brief, for the list of instruments.

        :returns: ``name``, ``state``, ``connected``, ``samples``,
            ``latest_sample_time`` (Unix seconds, or ``None``) and
            ``problem`` (see :meth:`problem`).
        """
        latest = self.latest_sample
        return {
            "name": self.name,
            "state": self.state,
            "connected": self.connected,
            "samples": self.samples,
            "latest_sample_time": None if latest is None else latest.get("time"),
            "problem": self.problem(),
        }

    def counters(self) -> dict[str, object]:
        """
        The event counters, JSON-ready.
        """
        return {
            "samples": self.samples,
            "samples_by_stream": dict(self.samples_by_stream),
            "errors": self.errors,
            "errors_by_code": dict(self.errors_by_code),
            "state_changes": self.state_changes,
            "config_changes": self.config_changes,
            "queued_requests": self.queued,
            "event_streams": self.streams,
            "event_streams_cut_off": self.streams_cut_off,
        }

    # Serialising changes.

    def exclusive(
        self, request: Callable[..., Deferred[T] | T], *args: object, **kwargs: object
    ) -> Deferred[T]:
        """
        Run ``request`` once every changing request before it has finished,
        so that changes to this instrument are applied one at a time and in
        the order they arrived.

        :param request: a callable returning a Deferred (or a value); it is
            called with ``args`` and ``kwargs``.
        :returns: a Deferred firing with its result, or failing with its
            error; failing at once with :class:`InstrumentBusyError` when
            :attr:`max_queued` requests are already waiting.
        """
        if self._queued >= self.max_queued:
            return fail(InstrumentBusyError(self.name, self._queued))
        self._queued += 1

        def done(result: T | Failure) -> T | Failure:
            self._queued -= 1
            return result

        contended = self._lock.locked

        def run() -> Deferred[T] | T:
            if contended:
                # This turn is handed over from the callbacks of the
                # previous request's result, which may still be inside the
                # driver's state machine; a request made from there would be
                # a reentrant input, which Automat refuses.  Start it on a
                # fresh reactor turn instead.
                # (A Deferred that ``request`` returns is chained.)
                later = cast("Callable[..., T]", request)
                return deferLater(self._reactor_clock(), 0, later, *args, **kwargs)
            return request(*args, **kwargs)

        ran = self._lock.run(run)
        return cast("Deferred[T]", ran.addBoth(done))

    # Events.

    def subscribe(
        self, listener: EventListener, types: Iterable[EventType] | None = None
    ) -> Callable[[], None]:
        """
        Deliver this instrument's events to ``listener`` (see
        :meth:`EventBus.subscribe`).

        Events are given as :meth:`presentable` made them, once for all
        listeners: a ``SAMPLE`` event is a
        :class:`~instrumentd.station.record.RecordEvent`, whose ``particle``
        is the sample's record.

        :param listener: called with each event.
        :param types: only these types; ``None`` for all.
        :returns: a callable that unsubscribes.
        """

        return self._presented.subscribe(listener, types)

    def presentable(self, event: DriverEvent) -> DriverEvent:
        """
        An event as an operator should read it (see
        :func:`~instrumentd.station.refusals.explain_event`): no state
        machine input in it; a sample as its record, made by
        :attr:`recorder` (with QC flags when it has a hook).  The station
        calls it once per event; each call on a sample makes a new record.

        :param event: the driver's event.
        :returns: the event to show.
        """
        if isinstance(event, SampleEvent):
            return self.recorder.present(event)
        return explain_event(event, instrument=self.name, problem=self.problem())

    # The port agent's counters.

    def refresh_port_agent_stats(
        self, timeout: float = 2.0
    ) -> Deferred[Mapping[str, Any] | None]:
        """
        Fetch the port agent's counters, keeping them in
        :attr:`port_agent_stats`.

        :param timeout: seconds to wait for a remote agent.
        :returns: a Deferred firing with the counters, or with ``None`` when
            there is no source or it failed or timed out (never failing, so
            one silent agent cannot spoil a metrics scrape).
        """
        if self._stats_source is None:
            return succeed(None)
        source: Callable[[], object] = self._stats_source
        fetched = cast("Deferred[Mapping[str, Any]]", maybeDeferred(source))
        fetched.addTimeout(timeout, self._reactor_clock())

        def keep(stats: Mapping[str, Any]) -> Mapping[str, Any]:
            self.port_agent_stats = stats
            return stats

        def lost(reason: Failure) -> None:
            # Stale counters would look like a stalled instrument; say
            # nothing instead (the metrics then report the agent as down).
            self.port_agent_stats = None

        return fetched.addCallbacks(keep, lost)

    def _reactor_clock(self) -> IReactorTime:
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = cast("IReactorTime", reactor)
        return self._clock


class Station:
    """
    The instruments the API serves, and the station's health.

    The station service makes one of these (or a subclass with a richer
    :meth:`health`) and hands it to
    :class:`~instrumentd.station.api.StationAPI`.

    :param instruments: the instruments; their names must be unique.
    :param clock: for the uptime; ``None`` for the global reactor.
    :param version: the version to report.
    :raises ValueError: for two instruments with the same name.

    :ivar instruments: name → instrument, in the order given.
    """

    def __init__(
        self,
        instruments: Iterable[StationInstrument] = (),
        *,
        clock: IReactorTime | None = None,
        version: str = __version__,
    ) -> None:
        self.instruments: dict[str, StationInstrument] = {}
        for instrument in instruments:
            if instrument.name in self.instruments:
                raise ValueError(f"two instruments are named {instrument.name!r}")
            self.instruments[instrument.name] = instrument
        if clock is None:
            from twisted.internet import reactor

            clock = cast("IReactorTime", reactor)
        self._clock = clock
        self.version = version
        self.started = clock.seconds()

    def health(self) -> dict[str, object]:
        """
        The station's health, for ``GET /api/health``.

        :returns: ``status`` (``"ok"`` when every instrument is connected,
            else ``"degraded"``), ``version``, ``uptime`` (seconds), and
            ``instruments``: name → ``{"state": ..., "connected": ...,
            "problem": ...}``, with ``link`` while the link is down.
        """
        instruments: dict[str, dict[str, object]] = {}
        for name, instrument in self.instruments.items():
            each: dict[str, object] = {
                "state": instrument.state,
                "connected": instrument.connected,
                "problem": instrument.problem(),
            }
            if instrument.link is not None:
                each["link"] = instrument.link.to_dict()
            instruments[name] = each
        healthy = all(each["connected"] for each in instruments.values())
        return {
            "status": "ok" if healthy else "degraded",
            "version": self.version,
            "uptime": round(self._clock.seconds() - self.started, 3),
            "instruments": instruments,
        }
