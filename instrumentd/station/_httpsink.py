# -*- test-case-name: tests.test_httpsink -*-
"""
The HTTP sink: batches of particles POSTed to an ingest endpoint, through
a disk spool so that nothing is lost while the endpoint is down.

Import it from :mod:`instrumentd.station.sinks`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from instrumentd.driver._json import dumps
from instrumentd.station._httpclient import (
    ConnectionPool,
    HTTPPoster,
    WholeBody,
    never_reached_server,
)
from instrumentd.station._httpwire import (
    Answer,
    current_entry,
    default_retry_policy,
    is_permanent,
    retry_after,
)
from instrumentd.station._sink import (
    CATCH_UP_FACTOR,
    DEFAULT_BATCH_SIZE,
    ERROR_LOG_INTERVAL,
    ErrorReport,
    ISink,
    Particle,
    default_reactor,
    iso_time,
    utc_day,
)
from instrumentd.station.record import RecordError, SampleRecord, as_record
from instrumentd.station.spool import DEFAULT_MAX_BYTES, Spool, SpoolEntry

if TYPE_CHECKING:
    from twisted.internet.interfaces import (
        IDelayedCall,
        IReactorTime,
    )

__all__ = ["HTTPPoster", "HttpSink", "default_retry_policy"]

_log = Logger()

#: How much of an error response's body goes into logs and stats.
_RESPONSE_EXCERPT: Final = 500

#: The most bytes of particles the spool holds in memory before it writes
#: them; it also writes at the end of each turn of the reactor (about a
#: hundred SBE 37 records).
_SPOOL_BUFFER: Final = 64 << 10

#: The most bytes of particles spooled since the sink caught up that it
#: keeps in memory to send, rather than read back the file it has just
#: written: 16 MB, more than a catch-up batch of SBE 37 records.
_SPOOL_TAIL: Final = 16 << 20


@implementer(ISink)
class HttpSink:
    """
    Sends particles to an HTTP ingest endpoint in batches, without losing
    any while the endpoint is down, as long as the spool's bound and the
    disk hold them.

    **Spool first.**  :meth:`write` appends each particle to a disk
    :class:`~instrumentd.station.spool.Spool` in ``spool_dir`` and returns.
    Batches are read back from the spool and POSTed one at a time, so they
    arrive in the order written; a batch is marked delivered in the spool
    only after a 2xx answer.  Memory holds one batch, whatever the length
    of an outage; the disk holds the backlog, and segments are deleted as
    soon as everything in them is delivered.  A sink made on the same
    ``spool_dir`` after a restart carries on from the first undelivered
    particle.

    **Batches.**  A batch is sent when ``batch_size`` particles are waiting,
    or ``batch_interval`` seconds after the first of fewer arrived.  When
    more are waiting (a POST took longer than they took to come), the next
    POST takes up to ``max_batch_size`` of them, so a sink that fell behind
    catches up with one request in flight.  Its body (``Content-Type: application/json``)::

        {"source": "<spool id>", "batch": <seq of the first record>,
         "records": [{"seq": 1, "instrument": "ctd1",
                      "record": {...sample record, version 2...}}, ...]}

    ``seq`` numbers records 1, 2, 3, ... for the life of the spool;
    ``source`` is a random id of the spool.  Records of all instruments
    share one sequence and one order.  Each ``record`` is the sample's
    record (``doc/data.md``), its bytes as the station encoded them once.
    A spool written by an older version holds particles in the old
    layout: they are converted to version 2 as they are read for sending
    (one that cannot be converted is sent as stored, under
    ``"particle"``).  A mapping given to :meth:`write` that is no record
    is dropped, counted in ``invalid`` and logged.

    **Answers.**  2xx: delivered.  4xx other than 408 and 429: the batch
    is rejected for good; it is logged, counted and appended to
    ``<spool_dir>/rejected/<YYYY-MM-DD>.jsonl`` (one line per batch:
    ``{"time", "status", "response", "payload"}``) and the sink moves on.
    Anything else — 5xx, 408, 429, 3xx, a connection error, no answer
    within ``timeout`` — is retried, the same batch, after
    ``retry_policy(failures)`` seconds (or the server's ``Retry-After``
    seconds if longer).  One failure is retried at once instead: a request
    that died, unanswered, with a kept-alive connection the server had
    closed (HTTP/1.0-style servers close after every answer).  It never
    reached the server, so it goes again on a new connection, and is counted
    in ``reconnects``, not ``retries``.

    **Exactly once, mostly.**  On the happy path each particle is sent
    once.  If the endpoint took a batch but its answer was lost (the
    connection broke, the timeout fired, the station stopped before the
    cursor was saved), the batch is sent again: delivery is *at least
    once*.  Receivers that must not double-count drop particles whose
    ``(source, seq)`` they already have; the seqs of one source arrive in
    increasing order, so remembering the highest seen per source suffices.
    A batch re-sent after a restart may be cut at different places, so
    dedupe by particle, not by ``batch``.

    **Bounded, and never stuck.**  The spool takes at most ``max_bytes``;
    at the bound the *oldest* undelivered particles are deleted, a segment
    at a time, to make room (the seq gap tells the receiver), counted in
    ``dropped`` and ``evicted`` and warned about.  A particle the disk
    cannot take (it is full) is dropped and counted; delivered segments are
    deleted before the cursor is written, and the cursor is overwritten in
    place, so delivery frees the disk, spooling resumes by itself as soon
    as there is room, and nothing the endpoint acknowledged is sent again
    after a restart.  See :mod:`instrumentd.station.spool`.

    :param url: where to POST.
    :param spool_dir: the spool directory; created if missing.  One sink
        per directory.
    :param batch_size: how many particles waiting send a POST at once
        (fewer go after ``batch_interval``).
    :param max_batch_size: the most particles per POST, taken only when
        more than ``batch_size`` are waiting (the sink fell behind, or
        comes back from an outage); ``None`` for ten times
        ``batch_size``.  A receiver that answers 413 (too large) to such a
        batch is sent batches of ``batch_size`` from then on.
    :param batch_interval: the longest a particle waits for its batch to
        fill, seconds.
    :param timeout: the longest to wait for a whole answer, seconds.
    :param headers: extra request headers (an ``Authorization`` token, say).
    :param reactor: the reactor (for timers and, when ``treq_client`` is
        ``None``, connections); ``None`` for the global one.
    :param treq_client: the HTTP client; ``None`` for a
        :class:`treq.client.HTTPClient` with its own persistent connection
        pool, closed by :meth:`close`.  Tests pass
        :class:`treq.testing.StubTreq`.
    :param retry_policy: the delay before each retry, given the number of
        consecutive failures; ``None`` for :func:`default_retry_policy`
        (1 s, doubling, at most 60 s, plus up to 1 s of jitter).
    :param segment_bytes: the size at which the spool starts a new file.
    :param max_bytes: the most the spool's segments may take, bytes;
        ``None`` for no bound.
    :raises OSError: if the spool directory cannot be made or read.
    :raises ValueError: if its state file is not a spool state, or a
        parameter is out of range.
    :raises instrumentd.station.spool.SpoolInUseError: if another sink has
        ``spool_dir`` open.
    """

    def __init__(
        self,
        url: str,
        *,
        spool_dir: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_interval: float = 1.0,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        reactor: IReactorTime | None = None,
        treq_client: HTTPPoster | None = None,
        retry_policy: Callable[[int], float] | None = None,
        segment_bytes: int = 1 << 20,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_batch_size: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        if max_batch_size is None:
            max_batch_size = CATCH_UP_FACTOR * batch_size
        elif max_batch_size < batch_size:
            raise ValueError(
                f"max_batch_size must be at least batch_size ({batch_size}), "
                f"not {max_batch_size}"
            )
        self.url = url
        self._batch_size = batch_size
        self._max_batch_size = max_batch_size
        self._batch_interval = batch_interval
        self._timeout = timeout
        self._headers: dict[str, list[str]] = {
            key: [value] for key, value in (headers or {}).items()
        }
        self._headers["Content-Type"] = ["application/json"]
        self._reactor = default_reactor() if reactor is None else reactor
        self._pool: ConnectionPool | None = None
        if treq_client is None:
            treq_client = self._make_client()
        self._client = treq_client
        self._retry_policy = (
            default_retry_policy() if retry_policy is None else retry_policy
        )
        self._spool = Spool(
            spool_dir,
            segment_bytes=segment_bytes,
            max_bytes=max_bytes,
            buffer_bytes=_SPOOL_BUFFER,
            tail_bytes=_SPOOL_TAIL,
        )
        #: Writes the spool's buffer at the end of the reactor's turn.
        self._spool_call: IDelayedCall | None = None
        self._rejected_dir = os.path.join(spool_dir, "rejected")
        self._errors = ErrorReport(self._reactor, f"HTTP sink {url}")

        #: The batch being sent or waiting to be retried.
        self._batch: list[SpoolEntry] | None = None
        #: Read from the spool but not yet sent: the rest of a batch the
        #: receiver found too large (413), sent next.
        self._carried: list[SpoolEntry] = []
        self._in_flight: Deferred[None] | None = None
        self._batch_call: IDelayedCall | None = None
        self._retry_call: IDelayedCall | None = None
        self._failures = 0
        self._closing = False
        self._closed: Deferred[None] | None = None
        self._idle_waiters: list[Deferred[None]] = []
        self._pumping = False
        self._pump_again = False
        self._pump_now = False

        #: ``True`` after an answer, ``False`` after a failure, ``None``
        #: before the first attempt.
        self.endpoint_up: bool | None = None
        #: Particles the endpoint accepted (2xx).
        self.delivered = 0
        #: Batches the endpoint accepted.
        self.batches_delivered = 0
        #: Failed attempts (each one is retried).
        self.retries = 0
        #: Particles refused for good (kept under ``rejected/``).
        self.rejected = 0
        #: Particles lost: not spoolable, deleted unsent at the spool's
        #: bound, or written after close.
        self.dropped = 0
        #: Of those, the ones deleted unsent at the spool's bound.
        self.evicted = 0
        #: Of those, mappings written that were no sample record.
        self.invalid = 0
        #: Each instrument's ``"instrument":...,"record":`` in a spool line
        #: (the members before the record).
        self._entry_heads: dict[str, bytes] = {}
        #: POSTs sent again at once because the server had closed the
        #: kept-alive connection they went out on.
        self.reconnects = 0
        #: Since when the spool cannot be written (Unix time), and the
        #: particles dropped since.
        self._spool_failing_since: float | None = None
        self._spool_failing_drops = 0
        #: Since when the spool is at its bound (Unix time).
        self._at_bound_since: float | None = None
        #: When to say again, at the bound, how many have been dropped;
        #: and the count at the last report.
        self._bound_report_due = 0.0
        self._bound_reported = 0
        if self._spool.unread:
            # A backlog left by an earlier run goes out as soon as the
            # reactor runs (not from inside the constructor).
            self._batch_call = self._reactor.callLater(0, self._batch_due)

    def _make_client(self) -> HTTPPoster:
        from treq.client import HTTPClient
        from twisted.web.client import Agent

        self._pool = ConnectionPool(self._reactor)
        agent = Agent(self._reactor, pool=self._pool)
        return HTTPClient(agent, data_to_body_producer=WholeBody)

    # -- taking particles -------------------------------------------------

    def write(self, instrument: str, particle: Particle) -> None:
        """
        Spool one particle for sending.  See :meth:`ISink.write`.
        """
        if self._closing:
            self.dropped += 1
            return
        if particle.__class__ is SampleRecord:
            # What a station gives: as_record's answer, without its call.
            record = particle
        else:
            try:
                record = as_record(instrument, particle)
            except RecordError as error:
                self.dropped += 1
                self.invalid += 1
                self._errors.report(f"{instrument}: {error}; the sample is dropped")
                return
        head = self._entry_heads.get(instrument)
        if head is None:
            head = self._entry_heads[instrument] = (
                dumps({"instrument": instrument})[1:-1].encode("utf-8") + b',"record":'
            )
        spool = self._spool
        evicted, lost = spool.evicted, spool.lost
        try:
            # The record's bytes as every consumer has them, spliced in.
            spool.append_members(head, record.json)
        except OSError as error:
            self._spool_failed(error, 1 + spool.lost - lost)
            return
        finally:
            if spool.evicted != evicted or spool.at_bound != (
                self._at_bound_since is not None
            ):
                # News of the bound (what _note_bound looks for first).
                self._note_bound(spool.evicted - evicted)
        if spool.lost != lost:
            # Written with the records before it, whose write failed.
            self._spool_failed(None, spool.lost - lost)
        if self._spool_call is None:
            # One write(2) a turn for all of the turn's particles, rather
            # than one each.
            self._spool_call = self._reactor.callLater(0, self._write_spool)
        if (
            self._batch is None
            and self._retry_call is None
            and (
                self._batch_call is None
                or spool.unread + len(self._carried) >= self._batch_size
            )
        ):
            # Otherwise _pump would find a POST in flight, or waiting for
            # its retry (whose end pumps again), or a partial batch whose
            # timer is armed already, and do nothing.
            self._pump()

    def _write_spool(self) -> bool:
        """
        Write what waits in the spool's buffer.

        :returns: ``False`` if the write failed (the particles are counted
            dropped and the error reported).
        """
        if self._spool_call is not None:
            if self._spool_call.active():
                self._spool_call.cancel()
            self._spool_call = None
        spool = self._spool
        lost, waiting = spool.lost, spool.buffered_bytes
        try:
            spool.write_pending()
        except OSError as error:
            self._spool_failed(error, spool.lost - lost)
            return False
        if self._spool_failing_since is not None and waiting:
            self._spool_recovered()
        return True

    def _spool_failed(self, error: OSError | None, count: int) -> None:
        """
        Count ``count`` particles dropped because the spool could not take
        them, and report ``error`` (``None``: it was reported already).
        """
        self.dropped += count
        if self._spool_failing_since is None:
            self._spool_failing_since = self._reactor.seconds()
            self._spool_failing_drops = 0
        self._spool_failing_drops += count
        if error is not None:
            what = "the particle is" if count == 1 else f"{count} particles are"
            self._errors.report(
                f"spooling to {self._spool.directory}: {error}; {what} dropped"
            )

    def _spool_recovered(self) -> None:
        _log.info(
            "HTTP sink {url}: spooling again; {count} particles were dropped "
            "while the spool could not be written",
            url=self.url,
            count=self._spool_failing_drops,
        )
        self._spool_failing_since = None
        if self.endpoint_up is not False:
            self._errors.clear()

    def _note_bound(self, evicted: int) -> None:
        """
        Count particles the spool deleted to make room, and log reaching
        or leaving its bound.
        """
        at_bound = self._spool.at_bound
        if not evicted and at_bound == (self._at_bound_since is not None):
            # Nothing dropped and no news: what every write finds.
            return
        if evicted:
            self.dropped += evicted
            self.evicted += evicted
        now = self._reactor.seconds()
        if self._spool.at_bound and self._at_bound_since is None:
            self._at_bound_since = now
            self._bound_report_due = now + ERROR_LOG_INTERVAL
            self._bound_reported = self.evicted
            _log.warn(
                "HTTP sink {url}: the spool {directory} is at its bound of "
                "{max_bytes} bytes; the oldest undelivered particles are "
                "dropped to make room for new ones",
                url=self.url,
                directory=self._spool.directory,
                max_bytes=self._spool.max_bytes,
            )
        elif evicted and self._at_bound_since is not None:
            if now >= self._bound_report_due:
                # Still losing the oldest: say how many, at most once a
                # minute, so the log alone tells the size of the loss.
                _log.warn(
                    "HTTP sink {url}: the spool is still at its bound; "
                    "{count} more particles dropped ({evicted} in all)",
                    url=self.url,
                    count=self.evicted - self._bound_reported,
                    evicted=self.evicted,
                )
                self._bound_report_due = now + ERROR_LOG_INTERVAL
                self._bound_reported = self.evicted
        elif not self._spool.at_bound and self._at_bound_since is not None:
            self._at_bound_since = None
            _log.info(
                "HTTP sink {url}: the spool has drained to half its bound; "
                "{evicted} particles were dropped at the bound in all",
                url=self.url,
                evicted=self.evicted,
            )

    def _pump(self, *, now: bool = False) -> None:
        """
        Start the next POST if one is due, or arm the batch timer.

        :param now: send a partial batch without waiting for the timer.
        """
        # A client that answers synchronously (StubTreq) settles a POST
        # inside _post, which pumps again: loop here instead of recursing
        # once per batch through a long backlog.
        self._pump_again = True
        self._pump_now = self._pump_now or now
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._pump_again:
                self._pump_again = False
                now, self._pump_now = self._pump_now, False
                self._pump_once(now)
        finally:
            self._pumping = False

    def _pump_once(self, now: bool) -> None:
        if self._closing or self._batch is not None or self._retry_call is not None:
            # One request at a time, so batches arrive in order; a batch
            # waiting for its retry holds the line too.
            return
        unread = self._spool.unread + len(self._carried)
        if not unread:
            return
        if now or unread >= self._batch_size:
            self._send_next()
        elif self._batch_call is None:
            self._batch_call = self._reactor.callLater(
                self._batch_interval, self._batch_due
            )

    def _batch_due(self) -> None:
        self._batch_call = None
        self._pump(now=True)

    def _send_next(self) -> None:
        if self._batch_call is not None:
            self._batch_call.cancel()
            self._batch_call = None
        # Up to max_batch_size: when more than batch_size wait, the sink is
        # behind (a POST took longer than the records took to come, or the
        # reactor's turns are long), and a larger POST catches up where one
        # POST a turn of batch_size could not, while keeping one request in
        # flight and the batches in order.  What a 413 sent back goes first.
        limit = self._max_batch_size
        batch, self._carried = self._carried[:limit], self._carried[limit:]
        # What failed to be written is counted and gone; what is in the
        # files still goes.
        self._write_spool()
        try:
            if len(batch) < limit:
                batch += self._spool.read(limit - len(batch))
        except OSError as error:
            self._carried = batch + self._carried
            self._failed(f"reading the spool {self._spool.directory}: {error}")
            return
        if batch:
            self._batch = batch
            self._post()

    def _payload(self, batch: list[SpoolEntry]) -> bytes:
        # The spooled lines are already the records' JSON; splice them in
        # rather than decode and encode every record again.
        head = dumps({"source": self._spool.source, "batch": batch[0].seq})
        return b"".join(
            [
                head[:-1].encode(),
                b',"records":[',
                b",".join(current_entry(entry.line) for entry in batch),
                b"]}",
            ]
        )

    def _post(self) -> None:
        assert self._batch is not None
        body = self._payload(self._batch)
        if self._pool is not None:
            self._pool.last_reused = False
        try:
            request = self._client.post(self.url, data=body, headers=self._headers)
        except Exception:
            # A URL treq cannot even start with: counted and retried like
            # any failure, so the sink keeps its promise not to raise.
            request = fail()

        def read_body(response: Any) -> Deferred[Answer]:
            content: Deferred[bytes] = response.content()
            return content.addCallback(
                lambda data: Answer(response.code, response.headers, data)
            )

        answer = request.addCallback(read_body)
        # Our own timer rather than addTimeout: a cancelled agent request
        # fails with ResponseNeverReceived, and the log should say "timeout".
        timed_out = False

        def time_out() -> None:
            nonlocal timed_out
            timed_out = True
            answer.cancel()

        timer = self._reactor.callLater(self._timeout, time_out)

        def stop_timer(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        answer.addBoth(stop_timer)
        settled = answer.addCallbacks(
            self._answered,
            lambda failure: self._request_failed(failure, timed_out),
        )
        settled.addErrback(self._bug)
        self._in_flight = settled
        settled.addBoth(self._settled)

    def _answered(self, answer: Answer) -> None:
        batch = self._batch
        assert batch is not None
        if 200 <= answer.code < 300:
            self._delivered(batch)
        elif answer.code == 413 and len(batch) > self._batch_size:
            self._too_large(batch)
        elif is_permanent(answer.code):
            self._reject(batch, answer)
        else:
            excerpt = answer.body[:_RESPONSE_EXCERPT].decode("utf-8", "replace")
            self._failed(
                f"HTTP {answer.code} from {self.url}: {excerpt}",
                retry_after(answer.headers),
            )

    def _too_large(self, batch: list[SpoolEntry]) -> None:
        """
        The receiver refused a catch-up batch as too large: send it again
        as batches of ``batch_size``, and no larger ones from now on.
        """
        _log.warn(
            "HTTP sink {url}: a batch of {count} particles was too large for "
            "the receiver (413); sending at most {size} per POST from now on",
            url=self.url,
            count=len(batch),
            size=self._batch_size,
        )
        self._max_batch_size = self._batch_size
        self._batch = batch[: self._batch_size]
        self._carried = batch[self._batch_size :] + self._carried
        if not self._closing:
            self._retry_call = self._reactor.callLater(0, self._retry_due)

    def _request_failed(self, failure: Failure, timed_out: bool) -> None:
        if (
            not timed_out
            and self._pool is not None
            and self._pool.last_reused
            and never_reached_server(failure)
        ):
            # The server had closed the kept-alive connection (HTTP/1.0
            # servers do after every answer): the request never reached
            # it.  Send it again at once; the pool has dropped the dead
            # connection, so it goes on a new one.
            self.reconnects += 1
            if not self._closing:
                self._retry_call = self._reactor.callLater(0, self._retry_due)
            return
        if timed_out:
            self._failed(f"POST {self.url}: no answer within {self._timeout} s")
            return
        error = failure.value
        text = str(error) or "no details"
        self._failed(f"POST {self.url}: {type(error).__name__}: {text}")

    def _delivered(self, batch: list[SpoolEntry]) -> None:
        self._batch = None
        self.delivered += len(batch)
        self.batches_delivered += 1
        self._answered_ok()
        self._commit(batch)

    def _answered_ok(self) -> None:
        if self.endpoint_up is False:
            _log.info(
                "HTTP sink {url}: delivering again after {failures} failed "
                "attempts; {queued} particles to replay",
                url=self.url,
                failures=self._failures,
                queued=self._spool.pending,
            )
        self._failures = 0
        self.endpoint_up = True
        if self._spool_failing_since is None:
            self._errors.clear()

    def _reject(self, batch: list[SpoolEntry], answer: Answer) -> None:
        self._batch = None
        excerpt = answer.body[:_RESPONSE_EXCERPT].decode("utf-8", "replace")
        now = self._reactor.seconds()
        line = b"".join(
            [
                dumps(
                    {
                        "time": datetime.fromtimestamp(now, UTC).isoformat(),
                        "status": answer.code,
                        "response": excerpt,
                    }
                )[:-1].encode(),
                b',"payload":',
                self._payload(batch),
                b"}\n",
            ]
        )
        day = utc_day(now) or "unknown"
        path = os.path.join(self._rejected_dir, f"{day}.jsonl")
        try:
            os.makedirs(self._rejected_dir, exist_ok=True)
            with open(path, "ab") as f:
                f.write(line)
        except OSError as error:
            self.dropped += len(batch)
            self._errors.report(f"saving a rejected batch to {path}: {error}")
        self.rejected += len(batch)
        self._answered_ok()
        self._commit(batch)
        self._errors.report(
            f"HTTP {answer.code} rejected particles {batch[0].seq}-{batch[-1].seq} "
            f"for good: {excerpt}; kept in {path}"
        )

    def _commit(self, batch: list[SpoolEntry]) -> None:
        try:
            self._spool.commit(batch[-1].seq)
        except OSError as error:
            # Delivered all the same; only a restart would resend them.
            self._errors.report(f"saving the spool cursor: {error}")
        self._note_bound(0)

    def _failed(self, reason: str, retry_after: float | None = None) -> None:
        """
        Count a failed attempt and arm the retry timer.
        """
        self._failures += 1
        self.retries += 1
        if self.endpoint_up is not False:
            _log.warn(
                "HTTP sink {url}: {reason}; spooling and retrying",
                url=self.url,
                reason=reason,
            )
        self.endpoint_up = False
        self._errors.note(reason)
        delay = self._retry_policy(self._failures)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if not self._closing:
            self._retry_call = self._reactor.callLater(delay, self._retry_due)

    def _retry_due(self) -> None:
        self._retry_call = None
        if self._batch is None:
            self._pump(now=True)
        else:
            self._post()

    def _bug(self, failure: Failure) -> None:
        # A fault in this module, not in the endpoint.  Log it loudly and
        # keep the batch for a retry, so the sink does not stall for good.
        _log.failure("HTTP sink {url}: unexpected error", failure, url=self.url)
        self._failures += 1
        if not self._closing and self._retry_call is None:
            self._retry_call = self._reactor.callLater(
                self._retry_policy(self._failures), self._retry_due
            )

    def _settled(self, _: object) -> None:
        self._in_flight = None
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        self._pump()

    # -- lifecycle --------------------------------------------------------

    @property
    def queued(self) -> int:
        """
        Particles spooled and not yet delivered (including any in flight).
        """
        return self._spool.pending

    def flush(self) -> Deferred[None]:
        """
        Send what is waiting without waiting for the batch to fill.  The
        spool is written with every :meth:`write`, so nothing else needs
        doing.  See :meth:`ISink.flush`.
        """
        self._pump(now=True)
        return succeed(None)

    def close(self) -> Deferred[None]:
        """
        Stop sending: cancel timers, wait for a POST in flight to be
        answered (at most ``timeout``), save the spool and close the
        connection pool.  Undelivered particles stay in the spool for the
        next sink on the same directory.  See :meth:`ISink.close`.
        """
        if self._closed is None:
            self._closing = True
            self._write_spool()
            for call in (self._batch_call, self._retry_call):
                if call is not None and call.active():
                    call.cancel()
            self._batch_call = self._retry_call = None
            self._closed = Deferred.fromCoroutine(self._close())
        return self._closed

    async def _close(self) -> None:
        if self._in_flight is not None:
            idle: Deferred[None] = Deferred()
            self._idle_waiters.append(idle)
            await idle
        unsent = (self._batch or []) + self._carried
        if unsent:
            # Particles of an unsent batch whose segment was deleted at the
            # bound are in no file any more: the next run cannot send them.
            gone = sum(1 for entry in unsent if entry.seq <= self._spool.delivered)
            self.dropped += gone
            self.evicted += gone
        try:
            self._spool.close()
        except OSError as error:
            self._errors.report(f"closing the spool: {error}")
        if self._pool is not None:
            await self._pool.closeCachedConnections()  # type: ignore[no-untyped-call]

    def stats(self) -> dict[str, object]:
        """
        See :meth:`ISink.stats`.

        :returns: ``url``; ``endpoint_up`` (``None`` before the first
            attempt); ``queued`` (spooled, not delivered); ``in_flight``
            (particles in the batch being sent or retried);
            ``spooled_bytes`` and ``spool_max_bytes`` (``None`` for no
            bound); ``spool_at_bound``; ``delivered`` and
            ``batches_delivered``; ``retries`` (failed attempts);
            ``reconnects`` (POSTs sent again at once after the server
            closed a kept-alive connection); ``rejected``; ``dropped`` (all
            particles lost), ``evicted`` (those deleted at the bound) and
            ``invalid`` (those that were no record);
            ``corrupt`` (unreadable spool lines skipped); ``last_seq`` and
            ``delivered_seq``; ``last_error`` (while it is still the case,
            else ``None``); ``last_failure`` (``{"message", "time"}`` of the
            last error, kept after recovery); ``warnings`` (a sentence for
            each way particles are being lost now: the spool at its bound,
            the spool not writable).
        """
        return {
            "url": self.url,
            "endpoint_up": self.endpoint_up,
            "queued": self._spool.pending,
            "in_flight": len(self._batch or ()),
            "spooled_bytes": self._spool.disk_bytes,
            "spool_max_bytes": self._spool.max_bytes,
            "spool_at_bound": self._at_bound_since is not None,
            "delivered": self.delivered,
            "batches_delivered": self.batches_delivered,
            "retries": self.retries,
            "reconnects": self.reconnects,
            "rejected": self.rejected,
            "dropped": self.dropped,
            "evicted": self.evicted,
            "invalid": self.invalid,
            "corrupt": self._spool.corrupt,
            "last_seq": self._spool.last_seq,
            "delivered_seq": self._spool.delivered,
            "last_error": self._errors.last,
            "last_failure": self._errors.last_failure,
            "warnings": self.warnings(),
        }

    def warnings(self) -> list[str]:
        """
        What is losing particles now, for the station's health.

        :returns: a sentence for the spool at its bound and one for a spool
            that cannot be written; empty when neither is the case.
        """
        found = []
        if self._at_bound_since is not None:
            found.append(
                f"the spool {self._spool.directory} is at its bound of "
                f"{self._spool.max_bytes} bytes since "
                f"{iso_time(self._at_bound_since)}: the oldest undelivered "
                f"particles are dropped ({self.evicted} so far)"
            )
        if self._spool_failing_since is not None:
            found.append(
                f"the spool {self._spool.directory} cannot be written since "
                f"{iso_time(self._spool_failing_since)}: new particles are "
                f"dropped ({self._spool_failing_drops} so far); last error: "
                f"{self._errors.last}"
            )
        return found
