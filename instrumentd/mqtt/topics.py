# -*- test-case-name: tests.test_mqtt_topics -*-
"""
The MQTT topic layout of instrumentd (``doc/multi-host.md``)::

    instrumentd/{station}/{instrument}/data/{stream}   samples, QoS 1
    instrumentd/{station}/{instrument}/events/{type}   driver events, QoS 1
    instrumentd/{station}/{instrument}/meta            retained description
    instrumentd/{station}/status                       retained online/offline
    instrumentd/{station}/{instrument}/cmd             MQTT 5 requests
    instrumentd/{station}/cmd                          requests to the station (list)

Station, instrument and stream names are checked names (letters, digits,
``.``, ``_``, ``-``), so they never hold ``/``, ``+`` or ``#``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ROOT",
    "TopicParts",
    "command_topic",
    "data_topic",
    "events_topic",
    "meta_topic",
    "parse_topic",
    "station_command_topic",
    "status_topic",
]

#: The first level of every instrumentd topic.
ROOT: Final = "instrumentd"


def data_topic(station: str, instrument: str, stream: str) -> str:
    """
    Where an instrument's samples of one stream are published.
    """
    return f"{ROOT}/{station}/{instrument}/data/{stream}"


def events_topic(station: str, instrument: str, event_type: str) -> str:
    """
    Where an instrument's events of one type are published.
    """
    return f"{ROOT}/{station}/{instrument}/events/{event_type}"


def meta_topic(station: str, instrument: str) -> str:
    """
    Where an instrument's retained description is.
    """
    return f"{ROOT}/{station}/{instrument}/meta"


def status_topic(station: str) -> str:
    """
    Where a station's retained online/offline status is.
    """
    return f"{ROOT}/{station}/status"


def command_topic(station: str, instrument: str) -> str:
    """
    Where requests to an instrument are published.
    """
    return f"{ROOT}/{station}/{instrument}/cmd"


def station_command_topic(station: str) -> str:
    """
    Where requests to the station as a whole (``list``) are published.
    """
    return f"{ROOT}/{station}/cmd"


@dataclass(frozen=True, slots=True)
class TopicParts:
    """
    What a topic of the layout names.

    :ivar kind: ``data``, ``events``, ``meta``, ``status`` or ``cmd``.
    :ivar station: the station.
    :ivar instrument: the instrument (``None`` for ``status`` and a
        station's ``cmd``).
    :ivar name: the stream (``data``) or event type (``events``), else
        ``None``.
    """

    kind: str
    station: str
    instrument: str | None = None
    name: str | None = None


def parse_topic(topic: str) -> TopicParts | None:
    """
    What a topic names, or ``None`` if it is not one of the layout.

    :param topic: a topic a message arrived on.
    """
    levels = topic.split("/")
    if len(levels) < 3 or levels[0] != ROOT or not all(levels):
        return None
    station = levels[1]
    if len(levels) == 3:
        kind = levels[2]
        return TopicParts(kind, station) if kind in ("status", "cmd") else None
    instrument, kind = levels[2], levels[3]
    if len(levels) == 4 and kind in ("meta", "cmd"):
        return TopicParts(kind, station, instrument)
    if len(levels) == 5 and kind in ("data", "events"):
        return TopicParts(kind, station, instrument, levels[4])
    return None
