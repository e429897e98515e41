# -*- test-case-name: tests.test_collector_message -*-
"""
One MQTT message from a station, read for the archive: its topic and JSON
payload (``doc/multi-host.md``, "Topics and payloads") checked, and the
line the archive will hold built once.

Data: ``instrumentd/{station}/{instrument}/data/{stream}`` carrying
``{"station", "instrument", "seq", "record": <record v2>}``; the archive's
line is the record with ``"station"`` and ``"seq"`` added.  Events:
``instrumentd/{station}/{instrument}/events/{type}`` carrying
``{"station", "instrument", "seq", "event": {...}}``; the line is the event
with the same two keys, in the instrument's :data:`EVENTS_STREAM`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

from instrumentd.station._sink import iso_time, sample_time, utc_day
from instrumentd.station.record import RECORD_VERSION, RecordError, read_record

__all__ = [
    "EVENTS_STREAM",
    "TOPIC_PREFIX",
    "Message",
    "MessageError",
    "parse_message",
]

#: The first level of every topic.
TOPIC_PREFIX: Final = "instrumentd"

#: The archive folder of an instrument's events (a leading ``_`` keeps it
#: apart from the streams drivers name).
EVENTS_STREAM: Final = "_events"

_ISO_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})T")


class MessageError(ValueError):
    """
    A message that is not one a station sends; the text says what is wrong.
    """


@dataclass(frozen=True, slots=True)
class Message:
    """
    A station's message, ready for the archive.

    :ivar station: the station's name.
    :ivar instrument: the instrument's name.
    :ivar seq: its sequence number.
    :ivar kind: ``data`` or ``events``.
    :ivar stream: the archive folder: the data's stream, or
        :data:`EVENTS_STREAM`.
    :ivar day: the file's UTC day, ``YYYY-MM-DD``, from the sample's time
        (or the event's), or ``None`` when it has none.
    :ivar time: that time, ISO 8601, or ``None``.
    :ivar line: the archive's line, newline included.
    """

    station: str
    instrument: str
    seq: int
    kind: str
    stream: str
    day: str | None
    time: str | None
    line: bytes


def _record_time(record: dict[str, object]) -> tuple[str | None, str | None]:
    time = record.get("time")
    if isinstance(time, str):
        match = _ISO_DAY.match(time)
        if match:
            return time, match.group(1)
    # A record in the layout before version 2 (NTP timestamps).
    when = sample_time(record)
    if when is None:
        return None, None
    return iso_time(when), utc_day(when)


def _event_time(event: dict[str, object]) -> tuple[str | None, str | None]:
    when = event.get("time")
    if isinstance(when, int | float) and not isinstance(when, bool):
        return iso_time(float(when)), utc_day(float(when))
    return None, None


def parse_message(topic: str, payload: bytes, received: float | None = None) -> Message:
    """
    Read one message.

    A data message's record is read with
    :func:`~instrumentd.station.record.read_record`: a version 2 record is
    archived as it came, a record in the layout before version 2 is
    converted to version 2 first.

    :param topic: the topic it was published to.
    :param payload: its payload.
    :param received: when it was received, Unix seconds: the time of an
        old record that has no timestamp of its own.
    :returns: the message.
    :raises MessageError: naming what is wrong with the topic or payload.
    """
    levels = topic.split("/")
    if (
        len(levels) != 5
        or levels[0] != TOPIC_PREFIX
        or levels[3]
        not in (
            "data",
            "events",
        )
    ):
        raise MessageError(
            f"topic {topic!r} is not {TOPIC_PREFIX}/STATION/INSTRUMENT/data/STREAM "
            f"or {TOPIC_PREFIX}/STATION/INSTRUMENT/events/TYPE"
        )
    _, station, instrument, kind, name = levels
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as e:
        raise MessageError(f"{topic}: the payload is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise MessageError(f"{topic}: the payload is not a JSON object")
    for key, expected in (("station", station), ("instrument", instrument)):
        if body.get(key) != expected:
            raise MessageError(
                f"{topic}: the payload's {key!r} is {body.get(key)!r}, "
                f"not {expected!r} as in the topic"
            )
    seq = body.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise MessageError(
            f"{topic}: the payload's 'seq' is {seq!r}, not a positive integer"
        )
    content_key = "record" if kind == "data" else "event"
    content = body.get(content_key)
    if not isinstance(content, dict):
        raise MessageError(
            f"{topic}: the payload's {content_key!r} is {type(content).__name__}, "
            "not a JSON object"
        )
    if kind == "data":
        try:
            checked = read_record(content, instrument=instrument, received=received)
        except RecordError as e:
            raise MessageError(f"{topic}: {e}") from None
        if content.get("version") != RECORD_VERSION:
            # A station from before version 2: the archive holds version 2.
            content = checked
        time, day = _record_time(content)
        stream = name
    else:
        time, day = _event_time(content)
        stream = EVENTS_STREAM
    content["station"] = station
    if kind != "data":
        # A record names its instrument; an event does not, and its line
        # must say whose it is without its path.
        content.setdefault("instrument", instrument)
    content["seq"] = seq
    # Parsed from JSON, so already JSON-ready: no conversion pass needed.
    line = (json.dumps(content, separators=(",", ":")) + "\n").encode("utf-8")
    return Message(station, instrument, seq, kind, stream, day, time, line)
