# -*- test-case-name: tests.test_archive_metadata -*-
"""
An instrument's ``metadata.json`` beside its sample files, so the archive
says what its numbers are without the station that wrote them::

    <directory>/<instrument>/metadata.json
    <directory>/<instrument>/<stream>/<YYYY-MM-DD>.jsonl

The document (``"record": "instrumentd.instrument_metadata"``, version 1)
holds the station's name and position (``[station]`` ``name`` and
``position``), the instrument's name and model, the driver's name and
version, its parameter values (an SBE 37's calibration dates among them)
and each stream's fields with units and standard names.  It is rewritten,
whole and atomically (a temporary file renamed over it), when the driver
reports a change of configuration or state and the document differs from
the one written last.  A station holds the writes while its instruments
come up and writes them when start-up is over (:class:`HeldWrites`).
``instrumentd-export`` reads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from instrumentd.driver._json import to_jsonable
from instrumentd.driver.events import DriverEvent, EventBus, EventType
from instrumentd.station._jsonlines import _path_component

if TYPE_CHECKING:
    from instrumentd.interfaces import IInstrumentDriver

__all__ = [
    "METADATA_FILE",
    "HeldWrites",
    "InstrumentMetadataFile",
    "MetadataWriter",
    "build_document",
    "metadata_document",
    "model_of",
]

_log = Logger()

#: The file's name in the instrument's folder.
METADATA_FILE: Final = "metadata.json"

#: Makes and models of the drivers shipped, by driver name.
_MODELS: Final = {
    "seabird_sbe37smp": "Sea-Bird SBE 37-SMP MicroCAT",
    "teledyne_workhorse": "Teledyne RD Instruments Workhorse ADCP",
    "aanderaa_optode": "Aanderaa Oxygen Optode",
}


def model_of(driver_name: object) -> str | None:
    """
    The make and model of the instruments a shipped driver serves.

    :param driver_name: the driver's name (``seabird_sbe37smp``).
    :returns: the model, or ``None`` for a driver not known here.
    """
    return _MODELS.get(driver_name) if isinstance(driver_name, str) else None


def build_document(
    instrument: str,
    *,
    station: str | None,
    position: Mapping[str, float] | None,
    model: str | None,
    driver: Mapping[str, object],
    parameters: object,
    streams: object,
) -> dict[str, object]:
    """
    The version 1 document from its parts, whoever knows them: the station
    from its driver (:func:`metadata_document`), a collector from the
    station's retained ``meta`` message.

    :param instrument: the instrument's name.
    :param station: the station's name, or ``None``.
    :param position: ``{"latitude", "longitude"}``, or ``None``.
    :param model: the instrument's make and model, or ``None``.
    :param driver: the driver's ``name`` and ``version``.
    :param parameters: the parameters' values, JSON-ready.
    :param streams: each stream's fields with units and standard names.
    :returns: the JSON-ready document (without the time it was written).
    """
    station_part: dict[str, object] = {"name": station}
    if position is not None:
        station_part["position"] = dict(position)
    instrument_part: dict[str, object] = {"name": instrument}
    if model is not None:
        instrument_part["model"] = model
    return {
        "record": "instrumentd.instrument_metadata",
        "version": 1,
        "station": station_part,
        "instrument": instrument_part,
        "driver": (
            {key: driver.get(key) for key in ("name", "version")} if driver else {}
        ),
        "parameters": parameters,
        "streams": streams,
    }


def metadata_document(
    instrument: str,
    driver: IInstrumentDriver,
    *,
    station: str | None,
    position: Mapping[str, float] | None,
) -> dict[str, object]:
    """
    What ``metadata.json`` says of an instrument now.

    :param instrument: its name.
    :param driver: its driver.
    :param station: the station's name, or ``None``.
    :param position: ``{"latitude", "longitude"}``, or ``None``.
    :returns: the JSON-ready document (without the time it was written).
    """
    described = driver.get_config_metadata()
    about = described.get("driver")
    return build_document(
        instrument,
        station=station,
        position=position,
        model=model_of(about.get("name")) if isinstance(about, dict) else None,
        driver=about if isinstance(about, dict) else {},
        parameters=to_jsonable(driver.get_cached_config()),
        streams=described.get("streams", {}),
    )


#: Indented JSON of the values met before, by their compact JSON, for
#: :func:`_indented`.
_INDENTED: dict[str, str] = {}
#: How many values :data:`_INDENTED` keeps before it starts afresh.
_INDENTED_KEPT: Final = 256


def _indented(value: object, compact: str) -> str:
    """
    ``value`` as :func:`json.dumps` with ``indent=1`` writes it one level
    down (inside the document's top object).

    Indented JSON is written by the json module's Python encoder (its C one
    writes only compact text), about a millisecond for an SBE 37's streams;
    at thousands of instruments coming up, seconds of the station's core.
    Most of a document is the same for every instrument of a kind (its
    streams, its driver, the station), so each value's indented text is
    kept by its compact text, which the C encoder makes in microseconds.

    :param value: a JSON-ready value.
    :param compact: its ``json.dumps(value)``.
    :returns: its indented text, lines after the first shifted by one
        space (JSON text holds no raw newline but between its tokens).
    """
    text = _INDENTED.get(compact)
    if text is None:
        if len(_INDENTED) >= _INDENTED_KEPT:
            _INDENTED.clear()
        text = _INDENTED[compact] = json.dumps(value, indent=1).replace("\n", "\n ")
    return text


def _compact(
    document: Mapping[str, object], known: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    """
    Each top-level key of ``document`` with its value's compact JSON: what
    two versions are compared by, as they read back (tuples are lists).
    ``known`` gives the compact JSON of values that are known already.
    """
    if known:
        return tuple(
            (key, known.get(key) or json.dumps(value))
            for key, value in document.items()
        )
    return tuple((key, json.dumps(value)) for key, value in document.items())


#: By protocol class: the driver's name and version, its streams (shared by
#: every document of the class, never changed) and their compact JSON.
_DESCRIBED: dict[type[object], tuple[dict[str, object], object, str]] = {}


def _described(driver: object) -> tuple[dict[str, object], object, str] | None:
    """
    What every document of ``driver``'s kind says alike: its name and
    version and its streams, from its protocol class, made once a class.

    A station writes a document for each of thousands of instruments as
    they come up; the driver's whole metadata (its parameters' and
    commands' descriptions, deep-copied for each caller) was most of what
    each cost, to take two of its parts that are the same for every SBE 37.

    :returns: ``(driver, streams, streams' compact JSON)``; ``None`` for a
        driver that is no :class:`~instrumentd.driver.driver.InstrumentDriver`
        of a protocol describing itself the standard way (its
        ``get_config_metadata`` says then).
    """
    from instrumentd.driver.driver import InstrumentDriver
    from instrumentd.driver.protocol import InstrumentProtocol

    if not isinstance(driver, InstrumentDriver):
        return None
    cls = driver.protocol_class
    described = _DESCRIBED.get(cls)
    if described is None:
        if cls.metadata is not InstrumentProtocol.metadata:
            return None
        streams = cls.stream_metadata()
        described = _DESCRIBED[cls] = (
            {"name": cls.driver_name, "version": cls.driver_version},
            streams,
            json.dumps(streams),
        )
    return described


class MetadataWriter:
    """
    Writes one ``metadata.json``, whole and atomically (a temporary file
    renamed over it), and only when the document changed: the one written
    last, or on the first call the one already on disk, is compared,
    leaving out the time each was written.

    The file is the document as ``json.dump(document, f, indent=1)``
    writes it, then a newline.

    :param path: the file.
    :param clock: ``seconds()`` for the time each version is written.
    """

    def __init__(self, path: str, clock: Callable[[], float]) -> None:
        self.path = path
        self._clock = clock
        self._last: tuple[tuple[str, str], ...] | None = None
        self._read = False
        self._failed = False
        #: Versions written.
        self.writes = 0

    def _on_disk(self) -> tuple[tuple[str, str], ...] | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                found = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(found, dict):
            return None
        found.pop("updated", None)
        return _compact(found)

    def update(
        self, document: Mapping[str, object], known: Mapping[str, str] | None = None
    ) -> bool:
        """
        Write the document if it differs from the one written last.  An
        ``OSError`` is logged (once until a write succeeds), never raised:
        the samples matter more than their description.

        :param document: the JSON-ready document, without ``updated``.
        :param known: the compact JSON of some of its top-level values,
            by key, when the caller knows it already.
        :returns: whether a new version was written.
        """
        if not self._read:
            self._read = True
            self._last = self._on_disk()
        compact = _compact(document, known)
        if compact == self._last:
            return False
        updated = (
            datetime.fromtimestamp(self._clock(), UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z")
        )
        items = [
            f" {json.dumps(key)}: {_indented(value, text)}"
            for (key, text), value in zip(compact, document.values(), strict=True)
            if key != "updated"
        ]
        items.append(f' "updated": {json.dumps(updated)}')
        temporary = self.path + ".tmp"
        try:
            if not self.writes:
                # Once: a mkdir that finds the directory costs a system
                # call and a lookup each time.
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as f:
                f.write("{\n" + ",\n".join(items) + "\n}\n")
            os.replace(temporary, self.path)
        except OSError as error:
            if not self._failed:
                _log.error("cannot write {path}: {error}", path=self.path, error=error)
            self._failed = True
            return False
        self._failed = False
        self._last = compact
        self.writes += 1
        return True


#: Seconds a change waits to be written with those that follow it.
UPDATE_DELAY = 1.0
#: What the station waits: an instrument coming up changes its state and
#: parameters over several seconds (wake, status, calibration, startup
#: parameters, autosample), and each document costs the driver's whole
#: metadata and a file's write and rename, milliseconds of the reactor (a
#: profile of 800 instruments coming up spent half the station's time in
#: them, two or three an instrument with a second's wait).
STATION_UPDATE_DELAY = 10.0


#: Documents :class:`HeldWrites` writes in a turn of the reactor once
#: released (about a millisecond each).
HELD_PER_TURN: Final = 20


class HeldWrites:
    """
    Holds the station's ``metadata.json`` writes while its instruments come
    up, and writes them once start-up is over, :data:`HELD_PER_TURN` in a
    turn of the reactor, so that the samples keep flowing meanwhile.

    Start-up at scale is bound by the station's CPU, and each document
    costs about a millisecond of it (the driver's metadata, its JSON, a
    file written and renamed): 5 to 10 % of bringing thousands of
    instruments up.  Nothing is lost by waiting: a held document is made
    from its driver when it is written, so it says what the instrument is
    then, and one still held when the station stops is written as its
    file stops following the driver (``stop(True)``).

    :param clock: ``callLater`` and ``seconds``: the reactor.
    :param per_turn: documents written a turn once released.
    """

    def __init__(self, clock: IReactorTime, per_turn: int = HELD_PER_TURN) -> None:
        self._clock = clock
        self._per_turn = per_turn
        # An ordered set: written in the order they were held.
        self._held: dict[InstrumentMetadataFile, None] = {}
        self._call: IDelayedCall | None = None
        self._released_at = 0.0
        #: Whether :meth:`release` has been called: nothing is held since.
        self.released = False
        #: Documents written after being held.
        self.written = 0

    @property
    def held(self) -> int:
        """
        How many files wait to be written.
        """
        return len(self._held)

    def hold(self, file: InstrumentMetadataFile) -> bool:
        """
        Hold ``file``'s write until :meth:`release`, unless released.

        :returns: whether it is held (else the caller writes it now).
        """
        if self.released:
            return False
        self._held[file] = None
        return True

    def forget(self, file: InstrumentMetadataFile) -> bool:
        """
        Stop holding ``file`` (it stops following its driver).

        :returns: whether it was held, unwritten.
        """
        return self._held.pop(file, False) is None

    def release(self) -> None:
        """
        Start-up is over: write what is held, a turn at a time, and from
        now on hold nothing.
        """
        if self.released:
            return
        self.released = True
        self._released_at = self._clock.seconds()
        if self._held:
            self._write_some()

    def stop(self) -> None:
        """
        Write no more (the station stops; its files write what they hold
        themselves, see :meth:`forget`).
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _write_some(self) -> None:
        self._call = None
        for _ in range(min(self._per_turn, len(self._held))):
            file = next(iter(self._held))
            del self._held[file]
            file.update()
            self.written += 1
        if self._held:
            self._call = self._clock.callLater(0, self._write_some)
        else:
            _log.info(
                "metadata.json of {count} instruments written, held while they "
                "came up ({seconds:.1f} s after start-up)",
                count=self.written,
                seconds=self._clock.seconds() - self._released_at,
            )


class InstrumentMetadataFile:
    """
    Keeps one instrument's ``metadata.json`` current.

    :param directory: the JSON-lines sink's directory.
    :param instrument: the instrument's name.
    :param driver: its driver.
    :param bus: its event bus.
    :param station: the station's name, or ``None``.
    :param position: ``{"latitude", "longitude"}``, or ``None``.
    :param clock: ``seconds()`` for the time each version is written.
    """

    def __init__(
        self,
        directory: str,
        instrument: str,
        driver: IInstrumentDriver,
        bus: EventBus,
        *,
        station: str | None = None,
        position: Mapping[str, float] | None = None,
        clock: Callable[[], float],
    ) -> None:
        self._writer = MetadataWriter(
            os.path.join(directory, _path_component(instrument), METADATA_FILE),
            clock,
        )
        self.path = self._writer.path
        self._instrument = instrument
        self._driver = driver
        self._bus = bus
        self._station = station
        self._position = position

    def start(
        self,
        later: Callable[[float, Callable[[], object]], object] | None = None,
        delay: float = UPDATE_DELAY,
        hold: HeldWrites | None = None,
    ) -> Callable[..., None]:
        """
        Write the file now, and again whenever the driver's configuration or
        state changes it.

        :param later: ``callLater``: when given, the changes of a second
            (an instrument's discovery changes its state several times) are
            written as one, a second after the first of them, and the first
            document too waits that second, so that it already holds what
            discovery found (each document costs the driver's whole
            metadata, about a millisecond, and its file: at 5,000
            instruments coming up, seconds of the station's core).
        :param delay: the seconds ``later`` waits (not just one).
        :param hold: while it holds writes (the station's start-up), the
            first document and any change wait there instead of ``later``:
            it writes them when released.
        :returns: a callable that stops following the driver; called with
            ``True`` it first writes what was waiting to be (the station
            stopping), else that is dropped.
        """
        pending: list[object] = []

        def due() -> None:
            pending.clear()
            self.update()

        def changed(event: DriverEvent) -> None:
            if later is None:
                self.update()
            elif not pending and (hold is None or not hold.hold(self)):
                pending.append(later(delay, due))

        unsubscribe = self._bus.subscribe(
            changed, types=[EventType.CONFIG_CHANGE, EventType.STATE_CHANGE]
        )
        if later is None:
            self.update()
        elif hold is None or not hold.hold(self):
            pending.append(later(delay, due))

        def stop(write_pending: bool = False) -> None:
            unsubscribe()
            waiting = hold is not None and hold.forget(self)
            for call in pending:
                cancel = getattr(call, "cancel", None)
                if callable(cancel) and getattr(call, "active", lambda: False)():
                    cancel()
                    waiting = True
            pending.clear()
            if waiting and write_pending:
                self.update()

        return stop

    @property
    def writes(self) -> int:
        """
        Versions written.
        """
        return self._writer.writes

    def update(self) -> bool:
        """
        Write the document if it differs from the one written last (see
        :class:`MetadataWriter`).

        :returns: whether a new version was written.
        """
        described = _described(self._driver)
        if described is None:
            return self._writer.update(
                metadata_document(
                    self._instrument,
                    self._driver,
                    station=self._station,
                    position=self._position,
                )
            )
        about, streams, streams_json = described
        return self._writer.update(
            build_document(
                self._instrument,
                station=self._station,
                position=self._position,
                model=model_of(about["name"]),
                driver=about,
                parameters=to_jsonable(self._driver.get_cached_config()),
                streams=streams,
            ),
            {"streams": streams_json},
        )
