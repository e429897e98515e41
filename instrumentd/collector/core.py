# -*- test-case-name: tests.test_collector_core -*-
"""
The collector's work on each message, apart from MQTT: check it, drop it
if it was archived already, write it, and only then acknowledge it.

:meth:`Collector.receive` takes a message's topic, payload and a function
that acknowledges it to the broker.  Messages that arrive together (one
read from the broker's socket) are written in one batch at the end of the
reactor's turn (or ``flush_delay`` later), each file with one write, and
acknowledged after the write returns: a message the broker has forgotten
is in the archive.  A write that fails acknowledges nothing and calls
``on_write_failure`` (the service drops its connection so the broker sends
them again).

An instrument's retained ``meta`` keeps its ``metadata.json`` current
(:mod:`~instrumentd.collector.metadata`).  Duplicates (by station,
instrument and sequence number) are acknowledged and dropped; gaps are logged as they open and close; the
:class:`~instrumentd.collector.ledger.Ledger` is checkpointed every
``checkpoint_interval`` seconds while it changes, and on stop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.logger import Logger

from instrumentd.collector.archive import DEFAULT_MAX_OPEN_FILES, Archive
from instrumentd.collector.checkpoint import CHECKPOINT_DIR, rebuild, save
from instrumentd.collector.ledger import (
    DEFAULT_MAX_CLOSED,
    DEFAULT_MAX_OPEN_GAPS,
    Gap,
    Ledger,
)
from instrumentd.collector.message import Message, MessageError, parse_message
from instrumentd.collector.metadata import MetadataKeeper, is_meta_topic
from instrumentd.station._sink import ErrorReport, utc_day

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["Collector"]

#: Seconds between checkpoints while messages arrive.
DEFAULT_CHECKPOINT_INTERVAL = 5.0


class Collector:
    """
    Archives stations' messages exactly once and reports the gaps.

    :param directory: the archive's top directory.
    :param clock: the reactor (timers, times of gaps).
    :param name: this collector's name (its checkpoint's file name).
    :param flush_delay: how long after a message its batch is written,
        seconds (0: at the end of the reactor's turn).
    :param fsync: force each batch to the disk before acknowledging it.
    :param checkpoint_interval: seconds between checkpoints.
    :param max_open_files: archive files open at once.
    :param max_open_gaps: open gaps per instrument before the oldest is
        abandoned.
    :param max_closed: closed gaps remembered for the report.
    :param on_write_failure: called when a batch could not be written (its
        messages are not acknowledged).
    """

    log = Logger()

    def __init__(
        self,
        directory: str,
        clock: IReactorTime,
        *,
        name: str = "collector",
        flush_delay: float = 0.0,
        fsync: bool = False,
        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
        max_open_files: int = DEFAULT_MAX_OPEN_FILES,
        max_open_gaps: int = DEFAULT_MAX_OPEN_GAPS,
        max_closed: int = DEFAULT_MAX_CLOSED,
        on_write_failure: Callable[[OSError], None] | None = None,
    ) -> None:
        self.directory = directory
        self._clock = clock
        self._flush_delay = flush_delay
        self._checkpoint_interval = checkpoint_interval
        self.archive = Archive(directory, max_open_files=max_open_files, fsync=fsync)
        self.ledger = Ledger(
            clock,
            max_open_gaps=max_open_gaps,
            max_closed=max_closed,
            on_gap=self._log_gap,
        )
        self.checkpoint_path = os.path.join(directory, CHECKPOINT_DIR, f"{name}.json")
        self._on_write_failure = on_write_failure
        #: Each instrument's ``metadata.json``, from the stations' meta.
        self.metadata = MetadataKeeper(directory, clock.seconds)
        self._pending: list[tuple[Message, Callable[[], None]]] = []
        self._pending_keys: set[tuple[str, str, int]] = set()
        self._flush_call: IDelayedCall | None = None
        self._checkpoint_call: IDelayedCall | None = None
        self._errors = ErrorReport(clock, f"collector {directory}")
        self._rejections = ErrorReport(clock, "collector")
        self._stopped = False
        #: Messages archived, dropped as duplicates, refused as malformed.
        self.archived = 0
        self.duplicates = 0
        self.rejected = 0
        #: Batches that could not be written.
        self.write_errors = 0
        #: Messages the checkpoint did not have, found in the archive on start.
        self.recovered = 0

    def start(self) -> None:
        """
        Rebuild the ledger from the checkpoint and the archive.  Call it
        before the first :meth:`receive`.
        """
        self.recovered = rebuild(self.ledger, self.directory, self.checkpoint_path)
        open_gaps = len(self.ledger.open_gaps())
        self.log.info(
            "collector archive {directory}: {streams} instruments known, "
            "{recovered} messages found past the checkpoint, {gaps} gaps open",
            directory=self.directory,
            streams=sum(1 for _ in self.ledger.streams()),
            recovered=self.recovered,
            gaps=open_gaps,
        )

    def receive(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        """
        Take one message.

        :param topic: its topic.
        :param payload: its payload.
        :param ack: acknowledges it to the broker; called once it is
            archived, or at once for a duplicate or a malformed message
            (which no redelivery would mend), or an instrument's meta
            (kept in its ``metadata.json``).
        """
        if is_meta_topic(topic):
            try:
                self.metadata.receive(topic, payload)
            except MessageError as e:
                self.rejected += 1
                self._rejections.report(f"meta refused: {e}")
            ack()
            return
        try:
            message = parse_message(topic, payload, self._clock.seconds())
        except MessageError as e:
            self.rejected += 1
            self._rejections.report(f"message refused: {e}")
            ack()
            return
        key = (message.station, message.instrument, message.seq)
        if key in self._pending_keys or self.ledger.is_duplicate(*key):
            self.duplicates += 1
            self.ledger.count_duplicate(message.station, message.instrument)
            ack()
            return
        day = message.day
        if day is None:
            day = utc_day(self._clock.seconds()) or "0000-00-00"
        try:
            self.archive.append(message, day)
        except OSError as e:
            # Not acknowledged: the broker keeps it for the next session.
            self._write_failed(e)
            return
        self._pending.append((message, ack))
        self._pending_keys.add(key)
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(self._flush_delay, self.flush)

    def flush(self) -> None:
        """
        Write the messages taken so far and acknowledge them.
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        pending, self._pending = self._pending, []
        self._pending_keys.clear()
        if not pending:
            return
        try:
            self.archive.write()
        except OSError as e:
            self._write_failed(e)
            return
        self._errors.clear()
        for message, ack in pending:
            self.ledger.observe(
                message.station, message.instrument, message.seq, message.time
            )
            ack()
        self.archived += len(pending)
        if self._checkpoint_call is None and not self._stopped:
            self._checkpoint_call = self._clock.callLater(
                self._checkpoint_interval, self._checkpoint_due
            )

    def _write_failed(self, error: OSError) -> None:
        self.write_errors += 1
        self._pending.clear()
        self._pending_keys.clear()
        self._errors.report(
            f"cannot write the archive: {error}; the messages are not "
            "acknowledged and will be delivered again"
        )
        if self._on_write_failure is not None:
            self._on_write_failure(error)

    def _checkpoint_due(self) -> None:
        self._checkpoint_call = None
        self.checkpoint()

    def checkpoint(self) -> None:
        """
        Save the ledger now (after writing what is pending).
        """
        if self._pending:
            self.flush()
        try:
            save(
                self.checkpoint_path,
                self._clock.seconds(),
                self.ledger,
                self.archive.positions(),
            )
        except OSError as e:
            self._errors.report(f"cannot write the checkpoint: {e}")

    def stop(self) -> None:
        """
        Write what is pending, checkpoint, and close the files.
        """
        self._stopped = True
        if self._checkpoint_call is not None and self._checkpoint_call.active():
            self._checkpoint_call.cancel()
        self._checkpoint_call = None
        self.checkpoint()
        self.archive.close()

    def last_error(self) -> str | None:
        """
        :returns: the archive's error while it is still the case.
        """
        return self._errors.last

    def _log_gap(self, gap: Gap) -> None:
        where = f"{gap.station}/{gap.instrument}"
        span = f"seq {gap.first}..{gap.last} ({gap.last - gap.first + 1} messages)"
        if gap.abandoned:
            self.log.warn(
                "gap abandoned: {where} {span}, {missing} still missing "
                "(too many gaps open)",
                where=where,
                span=span,
                missing=gap.missing,
            )
        elif gap.closed is not None:
            self.log.info(
                "gap closed: {where} {span}, between {after} and {before}",
                where=where,
                span=span,
                after=gap.after,
                before=gap.before,
            )
        else:
            self.log.warn(
                "gap opened: {where} {span} missing, between {after} and {before}",
                where=where,
                span=span,
                after=gap.after,
                before=gap.before,
            )
