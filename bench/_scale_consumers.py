"""
The consumers ``station_scale.py`` runs in processes of their own, so that
counting what a station delivers costs the station nothing:

- ``watchers URL COUNT PATH...``: COUNT event-stream watchers, each
  following every PATH (one ``/api/events`` for all instruments, or one
  ``/api/instruments/NAME/events`` per instrument) and counting the SAMPLE
  events it gets;
- ``receiver``: an HTTP ingest endpoint for the station's HTTP sink that
  answers 200 and counts the particles of each batch.

Each prints one line of JSON when ready (``{"port": N}`` for the
receiver), then answers every line read on standard input with one line of
JSON: its counts so far.  It exits when standard input closes.

Not a benchmark by itself (see ``station_scale.py``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import protocol, reactor, stdio
from twisted.protocols.basic import LineReceiver
from twisted.web import resource, server

_MARKER = b"event: SAMPLE"


class Counts:
    """
    What this process has received.
    """

    def __init__(self, watchers: int = 0) -> None:
        self.samples = [0] * watchers
        self.particles = 0
        self.requests = 0
        self.first: float | None = None
        self.connected = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "particles": self.particles,
            "requests": self.requests,
            "first": self.first,
            "connected": self.connected,
        }


class Watcher(protocol.Protocol):
    """
    One event-stream connection: counts SAMPLE events, cheaply (the
    marker in the stream, across reads).
    """

    def __init__(self, counts: Counts, index: int, host: str, path: str) -> None:
        self.counts = counts
        self.index = index
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        self.tail = b""

    def connectionMade(self) -> None:
        self.counts.connected += 1
        self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        text = self.tail + data
        found = text.count(_MARKER)
        if found:
            self.counts.samples[self.index] += found
            if self.counts.first is None:
                self.counts.first = time.time()
        self.tail = text[-(len(_MARKER) - 1) :]

    def connectionLost(self, reason: object = None) -> None:
        self.counts.connected -= 1


class Ingest(resource.Resource):
    """
    The HTTP sink's endpoint: counts particles, answers 200.
    """

    isLeaf = True

    def __init__(self, counts: Counts) -> None:
        super().__init__()
        self.counts = counts

    def render_POST(self, request: server.Request) -> bytes:
        body = request.content.read() if request.content is not None else b""
        self.counts.requests += 1
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        # "records" since the sample record (version 2); "particles" before.
        batch = (
            document.get("records", document.get("particles"))
            if isinstance(document, dict)
            else None
        )
        if isinstance(batch, list):
            found = len(batch)
        elif isinstance(document, list):
            found = len(document)
        else:
            found = body.count(b"\n") + (not body.endswith(b"\n") and bool(body))
        self.counts.particles += found
        if found and self.counts.first is None:
            self.counts.first = time.time()
        request.setHeader(b"content-type", b"application/json")
        return b'{"ok": true}'


class Control(LineReceiver):
    """
    Standard input: each line asks for the counts; its end ends us.
    """

    delimiter = b"\n"

    def __init__(self, counts: Counts) -> None:
        self.counts = counts

    def lineReceived(self, line: bytes) -> None:
        self.transport.write(json.dumps(self.counts.as_dict()).encode() + b"\n")  # type: ignore[union-attr]

    def connectionLost(self, reason: object = None) -> None:
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined]


def watchers(url: str, count: int, paths: list[str]) -> None:
    counts = Counts(count)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    for index in range(count):
        for path in paths:
            factory = protocol.ClientFactory()
            factory.protocol = lambda i=index, p=path: Watcher(  # type: ignore[misc]
                counts, i, f"{host}:{port}", p
            )
            reactor.connectTCP(host, port, factory)  # type: ignore[attr-defined]
    stdio.StandardIO(Control(counts))
    print(json.dumps({"ready": True}), flush=True)


def receiver() -> None:
    counts = Counts()
    site = server.Site(Ingest(counts))
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    stdio.StandardIO(Control(counts))
    print(json.dumps({"port": port.getHost().port}), flush=True)


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "watchers":
        watchers(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    else:
        receiver()
    reactor.run()  # type: ignore[attr-defined]
