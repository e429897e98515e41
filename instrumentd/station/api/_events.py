# -*- test-case-name: tests.test_station_eventstream -*-
"""
Event streams: ``/api/events``, the whole station's (or some instruments'),
and what it shares with ``/api/instruments/{name}/events`` — reading the
filters, the cap on streams, opening the stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from twisted.web.server import NOT_DONE_YET, Request

from instrumentd.driver.events import EventType
from instrumentd.station import sse
from instrumentd.station.api._errors import Refusal
from instrumentd.station.api._resource import JSONResource
from instrumentd.station.sse import EventStream

if TYPE_CHECKING:
    from instrumentd.station.api._root import StationAPI
    from instrumentd.station.instrument import StationInstrument

__all__ = ["StationEvents", "event_types", "open_stream"]

#: The query parameters of ``/api/events``: each may be repeated, or hold
#: several values separated by commas.
STATION_FILTERS = ("instrument", "instruments", "type", "types")

#: Names listed in an error message before it says how many more there are
#: (all of them are in the error's ``known``).
_LISTED = 20


def _values(request: Request, *keys: str) -> list[str]:
    """
    The values of the query parameters ``keys``, repeated or separated by
    commas, stripped, in order, each once.
    """
    args = request.args or {}
    found: dict[str, None] = {}
    for key in keys:
        for value in args.get(key.encode("ascii"), []):
            for part in value.decode("utf-8", "replace").split(","):
                name = part.strip()
                if name:
                    found[name] = None
    return list(found)


def _choices(names: Sequence[str]) -> str:
    if len(names) <= _LISTED:
        return ", ".join(names)
    return f"{', '.join(names[:_LISTED])} and {len(names) - _LISTED} more"


def event_types(request: Request) -> list[EventType] | None:
    """
    The event types a stream's client asked for, in ``?type=`` or
    ``?types=`` (any case).

    :param request: the request.
    :returns: the types, or ``None`` for all.
    :raises Refusal: 400 naming each unknown type and the known ones.
    """
    wanted = list(dict.fromkeys(n.upper() for n in _values(request, "type", "types")))
    if not wanted:
        return None
    known = [each.value for each in EventType]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise Refusal(
            400,
            "BAD_REQUEST",
            f"unknown event type {', '.join(unknown)}; known: {', '.join(known)}",
            known=known,
            unknown=unknown,
        )
    return [EventType(name) for name in wanted]


def open_stream(
    api: StationAPI,
    request: Request,
    instruments: Sequence[StationInstrument],
    types: Sequence[EventType] | None,
    title: str | None = None,
) -> bytes | int:
    """
    Open an event stream of ``instruments``, unless the station already
    serves as many streams as it allows.

    :param api: the API's root (its feeds, clock and limits).
    :param request: the client's request.
    :param instruments: whose events.
    :param types: only these types; ``None`` for all.
    :param title: what the stream carries, for its opening comment.
    :returns: what a ``render`` method returns.
    :raises Refusal: 503 ``TOO_MANY_STREAMS`` with ``Retry-After``.
    """
    if len(api.streams) >= api.max_streams:
        raise Refusal(
            503,
            "TOO_MANY_STREAMS",
            f"this station already serves {api.max_streams} event "
            "streams, the most it allows; try again later",
            {b"retry-after": b"10"},
            limit=api.max_streams,
        )
    if request.method == b"HEAD":
        request.setHeader(b"content-type", sse.CONTENT_TYPE)
        return b""
    stream = EventStream(
        request,
        [api.feeds[each] for each in instruments],
        api.clock,
        types=types,
        keepalive=api.keepalive,
        max_backlog=api.max_backlog,
        on_end=api.streams.discard,
        title=title,
        coalesce=api.stream_coalesce,
    )
    api.streams.add(stream)
    stream.start()
    return NOT_DONE_YET


class StationEvents(JSONResource):
    """
    ``/api/events``: Server-Sent Events of every instrument, or of those in
    ``?instrument=``, of the types in ``?type=`` (all when not given).
    """

    methods = ("GET",)

    def render_GET(self, request: Request) -> bytes | int:
        unexpected = sorted(
            key.decode("utf-8", "replace")
            for key in (request.args or {})
            if key.decode("utf-8", "replace") not in STATION_FILTERS
        )
        if unexpected:
            raise Refusal(
                400,
                "BAD_REQUEST",
                f"unknown query parameter {', '.join(unexpected)}; "
                f"known: {', '.join(STATION_FILTERS)}",
                known=list(STATION_FILTERS),
                unknown=unexpected,
            )
        types = event_types(request)
        everything = self.api.station.instruments
        wanted = _values(request, "instrument", "instruments")
        unknown = [name for name in wanted if name not in everything]
        if unknown:
            known = list(everything)
            raise Refusal(
                400,
                "BAD_REQUEST",
                f"unknown instrument {', '.join(unknown)}; known: {_choices(known)}",
                known=known,
                unknown=unknown,
            )
        if wanted:
            instruments = [everything[name] for name in wanted]
            title = (
                f"instrument {wanted[0]}"
                if len(wanted) == 1
                else f"instruments {_choices(wanted)}"
            )
        else:
            instruments = list(everything.values())
            title = f"all {len(instruments)} instruments"
        return open_stream(self.api, request, instruments, types, title)
