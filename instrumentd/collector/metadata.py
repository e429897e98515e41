# -*- test-case-name: tests.test_collector_metadata -*-
"""
The archive's ``metadata.json`` of each instrument, kept from the
stations' retained ``instrumentd/{station}/{instrument}/meta`` messages::

    <data_dir>/<station>/<instrument>/metadata.json

The same document as a station writes beside its own files
(:mod:`instrumentd.station.archive_metadata`, version 1), built from the
meta message's ``station``, ``position``, ``model``, ``driver``,
``parameter_values`` and ``streams``, and written by the same
:class:`~instrumentd.station.archive_metadata.MetadataWriter`: whole and
atomically, and only when it changed.  A meta message from a station older
than those keys gives a document without them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Final

from instrumentd.collector.message import TOPIC_PREFIX, MessageError
from instrumentd.station._jsonlines import _path_component
from instrumentd.station.archive_metadata import (
    METADATA_FILE,
    MetadataWriter,
    build_document,
    model_of,
)

__all__ = ["MetadataKeeper", "document_from_meta", "is_meta_topic"]

#: The last level of a meta topic.
META: Final = "meta"


def is_meta_topic(topic: str) -> bool:
    """
    :param topic: a topic a message arrived on.
    :returns: whether it is an instrument's ``meta``.
    """
    return topic.startswith(TOPIC_PREFIX + "/") and topic.endswith("/" + META)


def _position(given: object) -> dict[str, float] | None:
    if not isinstance(given, Mapping):
        return None
    position = {}
    for key in ("latitude", "longitude"):
        value = given.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        position[key] = float(value)
    return position


def document_from_meta(
    station: str, instrument: str, meta: Mapping[str, object]
) -> dict[str, object]:
    """
    The ``metadata.json`` document a meta message describes.

    :param station: the station's name.
    :param instrument: the instrument's name.
    :param meta: the message's payload.
    :returns: the JSON-ready document (without the time it was written).
    """
    driver = meta.get("driver")
    about: Mapping[str, object] = driver if isinstance(driver, Mapping) else {}
    model = meta.get("model")
    values = meta.get("parameter_values")
    streams = meta.get("streams")
    return build_document(
        instrument,
        station=station,
        position=_position(meta.get("position")),
        model=model
        if isinstance(model, str) and model
        else model_of(about.get("name")),
        driver=about,
        parameters=dict(values) if isinstance(values, Mapping) else {},
        streams=dict(streams) if isinstance(streams, Mapping) else {},
    )


class MetadataKeeper:
    """
    Keeps each instrument's ``metadata.json`` in a collector's archive
    current.

    :param directory: the archive's top directory.
    :param clock: ``seconds()`` for the time each version is written.
    """

    def __init__(self, directory: str, clock: Callable[[], float]) -> None:
        self.directory = directory
        self._clock = clock
        self._writers: dict[tuple[str, str], MetadataWriter] = {}
        #: Versions written, over all instruments.
        self.written = 0

    def path(self, station: str, instrument: str) -> str:
        """
        :returns: where an instrument's ``metadata.json`` is.
        """
        return os.path.join(
            self.directory,
            _path_component(station),
            _path_component(instrument),
            METADATA_FILE,
        )

    def receive(self, topic: str, payload: bytes) -> bool:
        """
        Take one meta message.  An empty payload (a retained message being
        cleared) changes nothing: the archive keeps what it knew.

        :param topic: ``instrumentd/{station}/{instrument}/meta``.
        :param payload: the station's description of the instrument.
        :returns: whether a new version of the file was written (a write
            that failed is logged by the writer, once).
        :raises MessageError: naming what is wrong with the topic or
            payload.
        """
        levels = topic.split("/")
        if len(levels) != 4 or levels[0] != TOPIC_PREFIX or levels[3] != META:
            raise MessageError(
                f"topic {topic!r} is not {TOPIC_PREFIX}/STATION/INSTRUMENT/{META}"
            )
        _, station, instrument, _ = levels
        if not payload:
            return False
        try:
            meta = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as e:
            raise MessageError(f"{topic}: the payload is not JSON: {e}") from None
        if not isinstance(meta, dict):
            raise MessageError(f"{topic}: the payload is not a JSON object")
        for key, expected in (("station", station), ("instrument", instrument)):
            if meta.get(key) != expected:
                raise MessageError(
                    f"{topic}: the payload's {key!r} is {meta.get(key)!r}, "
                    f"not {expected!r} as in the topic"
                )
        writer = self._writers.get((station, instrument))
        if writer is None:
            writer = MetadataWriter(self.path(station, instrument), self._clock)
            self._writers[station, instrument] = writer
        written = writer.update(document_from_meta(station, instrument, meta))
        if written:
            self.written += 1
        return written
