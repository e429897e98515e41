# -*- test-case-name: tests.test_driver_events -*-
"""
What a driver tells the world: typed, immutable events and the bus that
delivers them.

A driver announces every state change, configuration change, sample,
error, command result, direct-access echo and connection change as an event
object (the OOI framework's ``announce_to_driver(type, error_code, msg)``
tuples, made typed).  Each event has a ``time`` (Unix seconds, taken from
the bus's injectable clock with :meth:`EventBus.now`) and a JSON form
(:meth:`DriverEvent.to_dict`, :meth:`DriverEvent.to_json`).

Listeners subscribe to an :class:`EventBus`.  Delivery is synchronous and in
publication order; a listener that raises is logged and skipped, and never
stops delivery to the others nor breaks the driver that published.
"""

from __future__ import annotations

import base64
import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from twisted.logger import Logger

from instrumentd.driver._json import dumps, to_jsonable
from instrumentd.interfaces import IDriverEventListener

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from instrumentd.driver.errors import InstrumentError

__all__ = [
    "ConfigChangeEvent",
    "ConnectionEvent",
    "DirectAccessEvent",
    "DriverEvent",
    "ErrorEvent",
    "EventBus",
    "EventListener",
    "EventType",
    "IDriverEventListener",
    "ResultEvent",
    "SampleEvent",
    "StateChangeEvent",
    "sample_event",
]

_log = Logger()


class EventType(StrEnum):
    """
    The kinds of driver event; the ``"type"`` of an event's JSON form.
    """

    STATE_CHANGE = "STATE_CHANGE"
    CONFIG_CHANGE = "CONFIG_CHANGE"
    SAMPLE = "SAMPLE"
    ERROR = "ERROR"
    RESULT = "RESULT"
    DIRECT_ACCESS = "DIRECT_ACCESS"
    CONNECTION = "CONNECTION"


@dataclass(frozen=True, slots=True)
class DriverEvent:
    """
    The base of all driver events.

    :ivar time: when it happened, Unix seconds (use :meth:`EventBus.now`).
    :cvar event_type: the kind of event.
    """

    event_type: ClassVar[EventType]
    time: float = field(kw_only=True)

    def to_dict(self) -> dict[str, object]:
        """
        The event in a JSON-ready form.

        :returns: ``{"type": ..., "time": ...}`` plus one key per field.
        """
        result: dict[str, object] = {
            "type": self.event_type.value,
            "time": self.time,
        }
        for each in dataclasses.fields(self):
            if each.name != "time":
                result[each.name] = to_jsonable(getattr(self, each.name))
        return result

    def to_json(self) -> str:
        """
        The event as compact JSON text.

        :returns: :meth:`to_dict` encoded as JSON.
        """
        return dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class StateChangeEvent(DriverEvent):
    """
    A state machine entered a new state.

    :ivar state: the new state's name.
    :ivar previous: the state it left, or ``None`` for the first state.
    """

    event_type: ClassVar[EventType] = EventType.STATE_CHANGE
    state: str
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigChangeEvent(DriverEvent):
    """
    Parameter values really changed (setting a value to what it already was
    is no change).

    :ivar changes: the changed parameters and their new values; a read-only
        view of a copy, so the event cannot change after publication.
    """

    event_type: ClassVar[EventType] = EventType.CONFIG_CHANGE
    changes: Mapping[str, object]

    def __post_init__(self) -> None:
        # Frozen dataclasses block attribute assignment, not the contents of a
        # dict; copy and wrap it so a listener cannot alter what others see.
        object.__setattr__(self, "changes", MappingProxyType(dict(self.changes)))


class _Particle(Protocol):
    """
    What a sample event needs of a particle.
    """

    def to_dict(self) -> dict[str, object]: ...


@dataclass(frozen=True, slots=True)
class SampleEvent(DriverEvent):
    """
    A data particle was produced.

    :ivar particle: the particle (a
        :class:`~instrumentd.driver.particles.DataParticle`); its
        ``to_dict()`` is the event's ``"particle"`` in JSON.
    """

    event_type: ClassVar[EventType] = EventType.SAMPLE
    particle: _Particle


_new_event = object.__new__
# The slots' descriptors: setting through them is what a frozen
# dataclass's __init__ does (object.__setattr__), without its checks.
_set_particle = cast("Any", SampleEvent).particle.__set__
_set_time = cast("Any", SampleEvent).time.__set__


def sample_event(particle: _Particle, time: float) -> SampleEvent:
    """
    ``SampleEvent(particle, time=time)``, made without the frozen
    dataclass's ``__init__`` (its fields set through their slots): a
    protocol makes one per sample.

    :param particle: the particle.
    :param time: when, Unix seconds.
    :returns: the event.
    """
    event: SampleEvent = _new_event(SampleEvent)
    _set_particle(event, particle)
    _set_time(event, time)
    return event


@dataclass(frozen=True, slots=True)
class ErrorEvent(DriverEvent):
    """
    Something went wrong that no caller is waiting to hear about (an
    unsolicited instrument error, a failed scheduled job, a lost link).

    :ivar error_code: a stable code, as :attr:`InstrumentError.code`.
    :ivar message: the human-readable explanation.
    :ivar details: structured facts, as :meth:`InstrumentError.details`.
    """

    event_type: ClassVar[EventType] = EventType.ERROR
    error_code: str
    message: str
    details: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    @classmethod
    def from_error(cls, error: InstrumentError, *, time: float) -> ErrorEvent:
        """
        The event reporting an :class:`InstrumentError`.

        :param error: the error.
        :param time: when it happened, Unix seconds.
        :returns: an event with the error's code, message and details.
        """
        return cls(error.code, error.message, error.details(), time=time)


@dataclass(frozen=True, slots=True)
class ResultEvent(DriverEvent):
    """
    A command finished and this is its result.

    :ivar command: the command's name.
    :ivar result: what it returned; shown in JSON as by
        :func:`instrumentd.driver._json.to_jsonable`.
    """

    event_type: ClassVar[EventType] = EventType.RESULT
    command: str
    result: object = None


@dataclass(frozen=True, slots=True)
class DirectAccessEvent(DriverEvent):
    """
    Bytes from the instrument during direct access, for the operator's
    console.

    :ivar data: the bytes exactly as read.
    """

    event_type: ClassVar[EventType] = EventType.DIRECT_ACCESS
    data: bytes

    def to_dict(self) -> dict[str, object]:
        """
        The event in a JSON-ready form.

        :returns: the common keys, ``"data"``: the bytes in base64 (exact),
            and ``"text"``: the bytes as UTF-8 with undecodable bytes shown
            as ``\\xNN`` escapes (for showing to a person).
        """
        return {
            "type": self.event_type.value,
            "time": self.time,
            "data": base64.b64encode(self.data).decode("ascii"),
            "text": self.data.decode("utf-8", "backslashreplace"),
        }


@dataclass(frozen=True, slots=True)
class ConnectionEvent(DriverEvent):
    """
    The driver's connection to its instrument changed.

    :ivar state: the connection state's name, e.g. ``"CONNECTED"``.
    :ivar reason: why, in words, or ``""``.
    """

    event_type: ClassVar[EventType] = EventType.CONNECTION
    state: str
    reason: str = ""


#: A plain callable listener.
EventListener = Callable[[DriverEvent], object]


class _Clock(Protocol):
    def seconds(self) -> float: ...


@dataclass(eq=False, slots=True)
class _Subscription:
    """
    One subscribed listener and the event types it wants.
    """

    deliver: EventListener
    listener: object
    types: frozenset[EventType] | None
    active: bool = True


class EventBus:
    """
    Delivers driver events to subscribed listeners.

    Delivery is synchronous.  Events published by a listener while another
    event is being delivered are queued and delivered afterwards, so every
    listener sees all events in publication order.

    :param clock: where event times come from: an object with
        ``seconds()`` such as a reactor or
        :class:`twisted.internet.task.Clock`; ``None`` for the global
        reactor (imported only when first needed).
    """

    def __init__(self, clock: IReactorTime | _Clock | None = None) -> None:
        self._clock = clock
        self._subscriptions: list[_Subscription] = []
        # Per event type, the subscriptions that want it, in subscription
        # order: made on an event type's first delivery after a change, so
        # that each event (a sample, mostly) skips the others without
        # looking at them, and without copying the list.  A new tuple is
        # made after each change; a delivery under way keeps its own.
        self._wanted: dict[EventType, tuple[_Subscription, ...]] = {}
        self._pending: deque[DriverEvent] = deque()
        self._delivering = False

    def now(self) -> float:
        """
        The current time for a new event.

        :returns: Unix seconds from the bus's clock.
        """
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = cast("IReactorTime", reactor)
        return self._clock.seconds()

    @property
    def listener_count(self) -> int:
        """
        How many subscriptions are active.
        """
        return len(self._subscriptions)

    def subscribe(
        self,
        listener: EventListener | IDriverEventListener,
        types: Iterable[EventType] | None = None,
    ) -> Callable[[], None]:
        """
        Start delivering events to ``listener``.

        :param listener: a callable taking one event, or an object providing
            :class:`IDriverEventListener`.
        :param types: deliver only events of these types; ``None`` for all.
        :returns: a callable that unsubscribes this listener; calling it
            again does nothing.  Events still queued are not delivered to it
            once it has been called.
        :raises TypeError: if ``listener`` is neither.
        """
        deliver: EventListener
        if IDriverEventListener.providedBy(listener):
            deliver = listener.event_received
        elif callable(listener):
            deliver = listener
        else:
            raise TypeError(
                f"an event listener must be callable or provide "
                f"IDriverEventListener, not {listener!r}"
            )
        subscription = _Subscription(
            deliver, listener, None if types is None else frozenset(types)
        )
        self._subscriptions.append(subscription)
        self._wanted = {}

        def unsubscribe() -> None:
            if subscription.active:
                subscription.active = False
                self._subscriptions.remove(subscription)
                self._wanted = {}

        return unsubscribe

    def publish(self, event: DriverEvent) -> None:
        """
        Deliver ``event`` to every listener that wants it, in subscription
        order.  A listener that raises is logged (``log.failure``) and the
        others still receive the event; nothing is raised to the caller.

        :param event: the event.
        """
        self._pending.append(event)
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._pending:
                self._deliver(self._pending.popleft())
        finally:
            self._delivering = False

    def _deliver(self, event: DriverEvent) -> None:
        # A snapshot, so listeners may subscribe or unsubscribe while an
        # event is being delivered; ``active`` stops delivery to one that
        # was removed part way through.
        event_type = event.event_type
        wanted = self._wanted.get(event_type)
        if wanted is None:
            wanted = self._wanted[event_type] = tuple(
                subscription
                for subscription in self._subscriptions
                if subscription.types is None or event_type in subscription.types
            )
        for subscription in wanted:
            if not subscription.active:
                continue
            try:
                subscription.deliver(event)
            except Exception:
                _log.failure(
                    "Event listener {listener!r} raised on a {event_type} event",
                    listener=subscription.listener,
                    event_type=event.event_type.value,
                )
