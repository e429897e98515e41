# -*- test-case-name: tests.test_instrumentctl -*-
"""
``instrumentctl watch``: an instrument's event stream, shown as it comes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence

from twisted.internet.defer import Deferred, race
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from instrumentd.cli._client import StationClient, instrument_path
from instrumentd.cli._exit import ExitCode
from instrumentd.cli._format import Output, cell, format_time, sample_values
from instrumentd.station.sse import EventStreamParser, ServerSentEvent

__all__ = ["SampleTable", "StreamReader", "watch"]


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


class SampleTable:
    """
    Prints a stream's events: samples as rows of a table whose columns are
    the first sample's values, other events as lines between them.
    """

    def __init__(self, out: Output) -> None:
        self.out = out
        self.columns: list[str] | None = None
        self.widths: list[int] = []

    def event(self, message: ServerSentEvent) -> None:
        try:
            data = json.loads(message.data)
        except ValueError:
            return
        if self.out.as_json:
            # The station's own compact JSON, one event a line.
            self.out.write(message.data + "\n")
            return
        when = format_time(data.get("time"))
        if message.event == "SAMPLE":
            self.sample(when, dict(sample_values(data)))
        elif message.event == "STATE_CHANGE":
            self.out.write(
                f"-- {when} state {data.get('previous')} -> {data.get('state')}\n"
            )
        elif message.event == "CONFIG_CHANGE":
            changes = ", ".join(
                f"{k}={cell(v)}" for k, v in (data.get("changes") or {}).items()
            )
            self.out.write(f"-- {when} parameters changed: {changes}\n")
        elif message.event == "ERROR":
            self.out.write(
                f"-- {when} error {data.get('error_code')}: {data.get('message')}\n"
            )

    def sample(self, when: str, values: Mapping[str, object]) -> None:
        if self.columns is None:
            self.columns = list(values)
            headers = ["TIME", *(name.upper() for name in self.columns)]
            first = [when, *(cell(values.get(name, "")) for name in self.columns)]
            # Room for values a little wider than the first ones, so the
            # columns stay aligned as numbers change.
            self.widths = [
                max(len(h), len(c) + 2) for h, c in zip(headers, first, strict=True)
            ]
            self.widths[0] = len(first[0])
            self.row(headers)
        cells = [when, *(cell(values.get(name, "")) for name in self.columns)]
        self.row(cells)

    def row(self, cells: Sequence[str]) -> None:
        self.out.write(
            "  ".join(
                cell.ljust(width)
                for cell, width in zip(cells, self.widths, strict=True)
            ).rstrip()
            + "\n"
        )


async def watch(
    station: StationClient,
    options: argparse.Namespace,
    out: Output,
    interrupted: Deferred[None],
) -> int:
    path = instrument_path(options.name)
    response = await station.stream(
        path + "/events?types=SAMPLE,STATE_CHANGE,CONFIG_CHANGE,ERROR"
    )
    table = SampleTable(out)
    reader = StreamReader(EventStreamParser(table.event))
    response.deliverBody(reader)
    # Said once the stream is open, so that what follows is not missed.
    out.note(f"watching {options.name}; Ctrl-C to stop")
    which, _ = await race([reader.ended, interrupted])
    if which == 1:
        reader.stop()
        return ExitCode.OK
    out.note(f"the station at {station.url} closed the event stream")
    return ExitCode.UNREACHABLE
