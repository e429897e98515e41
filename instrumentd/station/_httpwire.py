# -*- test-case-name: tests.test_httpsink -*-
"""
The HTTP sink's side of the exchange: what an answer means (delivered,
refused for good, or to be retried, and after how long), and each spooled
entry as it goes into a batch.

Used by :mod:`instrumentd.station._httpsink`; import
:func:`default_retry_policy` from :mod:`instrumentd.station.sinks`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from twisted.application.internet import backoffPolicy

from instrumentd.driver._json import dumps
from instrumentd.station.record import read_record

__all__ = [
    "Answer",
    "current_entry",
    "default_retry_policy",
    "is_permanent",
    "retry_after",
]

#: A server's Retry-After is honoured up to this many seconds.
_MAX_RETRY_AFTER: Final = 600.0


def default_retry_policy(
    *,
    initial: float = 1.0,
    factor: float = 2.0,
    maximum: float = 60.0,
    jitter: Callable[[], float] | None = None,
) -> Callable[[int], float]:
    """
    Exponential backoff with jitter, for
    :class:`~instrumentd.station.sinks.HttpSink`'s
    ``retry_policy``: ``min(initial * factor ** (failures - 1), maximum)``
    plus ``jitter()`` seconds.  Built on Twisted's
    :func:`~twisted.application.internet.backoffPolicy`.

    :param initial: the delay after the first failure, seconds.
    :param factor: how much each further failure multiplies it by.
    :param maximum: the longest delay before jitter, seconds.
    :param jitter: a callable giving extra seconds, so that many stations
        do not retry in step; ``None`` for uniform in [0, 1).
    :returns: a policy taking the number of consecutive failures (1 for
        the first) and giving the delay in seconds.
    """
    kwargs: dict[str, Any] = {} if jitter is None else {"jitter": jitter}
    policy = backoffPolicy(
        initialDelay=initial, maxDelay=maximum, factor=factor, **kwargs
    )

    def delay(failures: int) -> float:
        # backoffPolicy(0) is the initial delay; ours counts from 1.
        return float(policy(max(0, failures - 1)))

    return delay


@dataclass(frozen=True, slots=True)
class Answer:
    """
    A whole answer: its status, headers and body.
    """

    code: int
    headers: Any
    body: bytes


def is_permanent(code: int) -> bool:
    """
    Whether an answer of status ``code`` refuses the batch for good.
    """
    # 408 (request timeout) and 429 (too many requests) say "later", and so
    # does every 5xx; other 4xx say the request itself is wrong and will stay
    # wrong however often it is sent.
    return 400 <= code < 500 and code not in (408, 429)


def retry_after(headers: Any) -> float | None:
    """
    The seconds a ``Retry-After`` header asks for (at most
    :data:`_MAX_RETRY_AFTER`), or ``None``.
    """
    try:
        values = headers.getRawHeaders(b"retry-after") or []
        return min(float(values[0]), _MAX_RETRY_AFTER) if values else None
    except (ValueError, AttributeError):
        # An HTTP date, or junk: fall back to our own backoff.
        return None


#: How every entry this version spools begins its record: anything else in
#: the spool was written by an older version.  (A JSON string cannot hold
#: these quotes unescaped, so only the structure matches.)
_RECORD_MARK: Final = b'"record":{"record":"instrumentd.sample","version":2,'


def current_entry(line: bytes) -> bytes:
    """
    A spooled entry as it is sent: as stored when this version wrote it; a
    particle an older version spooled (``{"seq", "instrument",
    "particle": {...}}``) converted to its record, version 2.  An old entry
    that is no particle is sent as stored.
    """
    if _RECORD_MARK in line:
        return line
    try:
        entry = json.loads(line)
        instrument = entry["instrument"]
        record = read_record(entry["particle"], instrument=instrument)
        record.setdefault("instrument", instrument)
        return dumps(
            {"seq": entry["seq"], "instrument": instrument, "record": record}
        ).encode("utf-8")
    except (ValueError, TypeError, KeyError):
        # RecordError is a ValueError.  Sending it as it is loses nothing
        # and keeps the seqs whole; the receiver sees "particle".
        return line
