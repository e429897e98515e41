# -*- test-case-name: tests.test_instrumentctl -*-
"""
``instrumentctl watch``: an instrument's event stream, shown as it comes;
or several instruments', or every one's, on the station's one stream
(``GET /api/events``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import urlencode

from twisted.internet.defer import Deferred, race
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from instrumentd.cli._client import StationClient, instrument_path
from instrumentd.cli._exit import ExitCode
from instrumentd.cli._format import (
    Output,
    cell,
    format_time,
    sample_record,
    sample_time,
    sample_values,
)
from instrumentd.station.quality import sample_flag
from instrumentd.station.sse import EventStreamParser, ServerSentEvent

__all__ = ["WATCHED_TYPES", "SampleTable", "StreamReader", "watch"]


class StreamReader(Protocol):
    """
    Feeds an event stream's body to a parser; :meth:`stop` hangs up.
    """

    def __init__(self, parser: EventStreamParser) -> None:
        self.parser = parser
        self.ended: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.parser.feed(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.ended.called:
            self.ended.callback(None)

    def stop(self) -> None:
        transport = self.transport
        if transport is not None:
            # The response body's transport: stopProducing closes the
            # connection.
            transport.stopProducing()  # type: ignore[attr-defined]


#: The event types ``watch`` shows.
WATCHED_TYPES: Final = "SAMPLE,STATE_CHANGE,CONFIG_CHANGE,ERROR,CONNECTION"
_TYPES: Final = WATCHED_TYPES

#: How the station's port agents word a link that is down, in their faults.
_LINK_FAULT: Final = "port agent fault: instrument link down "
_LINK_PROBLEM: Final = "the instrument link is down "


#: How ``watch`` shows a sample's worst QC flag.
_QC_WORDS: Final = {1: "pass", 2: "-", 3: "SUSPECT", 4: "FAIL", 9: "missing"}


def qc_cell(data: Mapping[str, object]) -> str | None:
    """
    A sample's QC flags in brief, for the ``QC`` column: the worst
    aggregate flag of its fields in words, and the fields that fail or are
    suspect (``FAIL temperature SUSPECT salinity``).

    :param data: a ``SAMPLE`` event's data.
    :returns: the text, or ``None`` when the sample carries no flags.
    """
    record = data.get("record")
    qc = record.get("qc") if isinstance(record, Mapping) else None
    if not isinstance(qc, Mapping):
        return None
    worst, bad = sample_flag(qc)
    fails = [name for name, flag in bad if flag == 4]
    suspects = [name for name, flag in bad if flag == 3]
    parts = [_QC_WORDS.get(worst, str(worst))] if not bad else []
    if fails:
        parts.append("FAIL " + ",".join(fails))
    if suspects:
        parts.append("SUSPECT " + ",".join(suspects))
    return " ".join(parts)


class _StreamTable:
    """
    The table of one particle stream: its columns (the first sample's
    values, and ``QC`` when it carried flags) and their widths.
    """

    def __init__(
        self,
        stream: str,
        when: str,
        values: Mapping[str, object],
        qc: str | None = None,
    ) -> None:
        self.stream = stream
        self.columns = list(values)
        self.has_qc = qc is not None
        self.headers = [
            "TIME",
            *(name.upper() for name in self.columns),
            *(["QC"] if self.has_qc else []),
        ]
        first = self.cells(when, values, qc)
        # Room for values a little wider than the first ones, so the
        # columns stay aligned as numbers change.
        self.widths = [
            max(len(h), len(c) + 2) for h, c in zip(self.headers, first, strict=True)
        ]
        self.widths[0] = len(first[0])

    def cells(
        self, when: str, values: Mapping[str, object], qc: str | None = None
    ) -> list[str]:
        row = [when, *(cell(values.get(name)) for name in self.columns)]
        if self.has_qc:
            row.append(qc or "-")
        return row

    def row(self, cells: Sequence[str]) -> str:
        return (
            "  ".join(
                each.ljust(width)
                for each, width in zip(cells, self.widths, strict=True)
            ).rstrip()
            + "\n"
        )


class SampleTable:
    """
    Prints a stream's events: samples as rows of one table per particle
    stream (a status dump does not make every later sample a near-empty
    row of its table), each table's title and header printed again when
    its rows follow another's; other events as lines between them, the
    instrument link going down and up among them.

    :param out: where to print.
    :param several: whether the events are of several instruments: then
        each instrument's particle streams have tables of their own, titled
        with the instrument's name, and each line names its instrument.
    """

    def __init__(self, out: Output, *, several: bool = False) -> None:
        self.out = out
        self.several = several
        self.tables: dict[str, _StreamTable] = {}
        self.current: str | None = None

    def event(self, message: ServerSentEvent) -> None:
        try:
            data = json.loads(message.data)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        if self.out.as_json:
            # The station's own compact JSON, one event a line.
            self.out.write(message.data + "\n")
            return
        when = format_time(data.get("time"))
        line = self.describe(message.event, data)
        who = f"{cell(data.get('instrument'))} " if self.several else ""
        if message.event == "SAMPLE":
            record = sample_record(data)
            stream = None if record is None else record.get("stream")
            title = who + str(stream or "samples")
            # The row says when the sample was taken, not when it was sent.
            taken = format_time(sample_time(data))
            self.sample(title, taken, dict(sample_values(data)), qc_cell(data))
        elif line is not None:
            self.out.write(f"-- {when} {who}{line}\n")

    def describe(self, kind: str, data: Mapping[str, object]) -> str | None:
        """
        An event other than a sample, as one line (without its time).
        """
        if kind == "STATE_CHANGE":
            previous = data.get("previous")
            state = cell(data.get("state"))
            return (
                f"state {cell(previous)} -> {state}" if previous else f"state {state}"
            )
        if kind == "CONFIG_CHANGE":
            changes = data.get("changes")
            pairs = changes.items() if isinstance(changes, Mapping) else []
            return "parameters changed: " + ", ".join(
                f"{k}={cell(v)}" for k, v in pairs
            )
        if kind == "ERROR":
            message = str(data.get("message") or "")
            if message.startswith(_LINK_FAULT):
                return "link down " + message[len(_LINK_FAULT) :]
            code = cell(data.get("error_code"))
            return f"error {code}: {message}" if message else f"error {code}"
        if kind == "CONNECTION":
            return _connection_line(data)
        return None

    def sample(
        self,
        stream: str,
        when: str,
        values: Mapping[str, object],
        qc: str | None = None,
    ) -> None:
        table = self.tables.get(stream)
        if table is None:
            table = self.tables[stream] = _StreamTable(stream, when, values, qc)
        if self.current != stream:
            self.current = stream
            self.out.write(f"{stream}:\n" + table.row(table.headers))
        self.out.write(table.row(table.cells(when, values, qc)))


def _connection_line(data: Mapping[str, object]) -> str:
    state = data.get("state")
    reason = str(data.get("reason") or "")
    if state == "CONNECTED":
        return "link up"
    if state == "INSTRUMENT_DISCONNECTED":
        if reason.startswith(_LINK_PROBLEM):
            return "link down " + reason[len(_LINK_PROBLEM) :]
        return "link down"
    if state == "CONNECTING":
        return f"port agent out of reach{': ' + reason if reason else ''}"
    return f"{cell(state).lower()}{': ' + reason if reason else ''}"


async def watch(
    station: StationClient,
    options: argparse.Namespace,
    out: Output,
    interrupted: Deferred[None],
) -> int:
    """
    Show the events of the instruments named in ``options.names`` (every
    instrument when none is) until interrupted or the stream ends.

    :returns: the exit status.
    """
    names: list[str] = list(dict.fromkeys(options.names))
    if len(names) == 1:
        path = instrument_path(names[0]) + "/events?" + urlencode({"types": _TYPES})
        what = names[0]
    else:
        # One connection for all of them.
        query = [("instrument", name) for name in names] + [("type", _TYPES)]
        path = "/api/events?" + urlencode(query)
        what = ", ".join(names) if names else "every instrument"
    response = await station.stream(path)
    table = SampleTable(out, several=len(names) != 1)
    reader = StreamReader(EventStreamParser(table.event))
    response.deliverBody(reader)
    # Said once the stream is open, so that what follows is not missed.
    out.note(f"watching {what}; Ctrl-C to stop")
    which, _ = await race([reader.ended, interrupted, out.closed])
    if which != 0:
        # Ctrl-C, or the reader of our output has gone (``| head``): both
        # are a normal end.
        reader.stop()
        return ExitCode.OK
    out.note(f"the station at {station.url} closed the event stream")
    return ExitCode.UNREACHABLE
