# -*- test-case-name: tests.test_collector_core -*-
"""
The collector's checkpoint: its ledger (sequence numbers seen, gaps) and
how far into each open archive file that ledger reaches, written now and
then to ``<data_dir>/.collector/<client_id>.json`` so that a restarted
collector still drops what it has archived.

The checkpoint may be behind the archive (a crash between two
checkpoints): on start, the files written since it are read from where it
left them (:func:`instrumentd.collector.archive.scan`), and what they hold
is added to the ledger.  With no checkpoint at all, the whole archive is
read.  So the archive stays the one source of truth and the checkpoint
only saves reading all of it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Final

from twisted.logger import Logger

from instrumentd.collector.archive import scan
from instrumentd.collector.ledger import Ledger

__all__ = ["CHECKPOINT_DIR", "Checkpoint", "load", "rebuild", "save"]

#: The folder of the data directory that holds checkpoints.
CHECKPOINT_DIR: Final = ".collector"

#: Files changed this long before a checkpoint are read again anyway:
#: file times are not exact.
_MARGIN: Final = 2.0

#: The checkpoint's format version.
_VERSION: Final = 1

_log = Logger()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """
    A saved ledger.

    :ivar time: when it was written, Unix seconds.
    :ivar ledger: :meth:`Ledger.snapshot`.
    :ivar positions: how far into each archive file it reaches.
    """

    time: float
    ledger: dict[str, Any]
    positions: dict[str, int]


def save(path: str, time: float, ledger: Ledger, positions: dict[str, int]) -> None:
    """
    Write a checkpoint atomically (a new file renamed over the old).

    :param path: the checkpoint file.
    :param time: now, Unix seconds.
    :param ledger: the ledger.
    :param positions: :meth:`Archive.positions`, after a write.
    :raises OSError: if it cannot be written.
    """
    data = {
        "version": _VERSION,
        "time": time,
        "positions": positions,
        "ledger": ledger.snapshot(),
    }
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    partial = path + ".new"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def load(path: str) -> Checkpoint | None:
    """
    Read a checkpoint.

    :param path: the checkpoint file.
    :returns: it, or ``None`` if there is none or it cannot be read (then
        logged: the whole archive is read instead).
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("version") != _VERSION:
            raise ValueError(f"version {data.get('version')!r}, not {_VERSION}")
        return Checkpoint(
            float(data["time"]),
            dict(data["ledger"]),
            {str(k): int(v) for k, v in data["positions"].items()},
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        _log.warn(
            "cannot use the checkpoint {path} ({error}); reading the whole archive",
            path=path,
            error=e,
        )
        return None


def rebuild(ledger: Ledger, directory: str, path: str) -> int:
    """
    Bring a fresh ledger up to what the archive holds: the checkpoint,
    then what was written after it.

    :param ledger: the ledger, empty.
    :param directory: the archive's top directory.
    :param path: the checkpoint file.
    :returns: how many archived messages the checkpoint did not have.
    """
    checkpoint = load(path)
    if checkpoint is not None:
        try:
            ledger.restore(checkpoint.ledger)
        except (KeyError, TypeError, ValueError) as e:
            _log.warn(
                "cannot use the checkpoint {path} ({error}); reading the whole archive",
                path=path,
                error=e,
            )
            checkpoint = None
    if checkpoint is None:
        return ledger.replay(
            (line.station, line.instrument, line.seq, line.time)
            for line in scan(directory)
        )
    return ledger.replay(
        (line.station, line.instrument, line.seq, line.time)
        for line in scan(
            directory,
            since=checkpoint.time - _MARGIN,
            offsets=checkpoint.positions,
        )
    )
