"""
What an unauthenticated client with a large body costs the station's API,
with twisted.web's own ``Site`` (how the station served it before) and
with :class:`~instrumentd.station.apisite.APISite`.

A client on loopback sends ``POST .../commands/acquire_sample`` without
the token and with a body of each size, as fast as it can, without
waiting for ``100 Continue``; the table gives the time until the answer's
status line arrived, the bytes of the body the client had sent by then,
and the bytes the server wrote to temporary files::

    python bench/api_guard.py [SIZE_MIB ...]

The client is a blocking socket in a thread, so that it can send while the
server's reactor runs; this is a benchmark, not library code.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from typing import Any

from twisted.internet import reactor, threads
from twisted.internet.defer import inlineCallbacks
from twisted.web.server import Site

from instrumentd.station.api import StationAPI
from instrumentd.station.apisite import APISite
from instrumentd.station.instrument import Station, StationInstrument
from tests.apisupport import FakeDriver

_CHUNK = 1024 * 1024


def _client(port: int, size: int) -> tuple[float, int, bytes]:
    """
    Send the request; return the seconds to the status line, the body
    bytes sent by then, and the status line.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(True)
    head = (
        b"POST /api/instruments/fake/commands/acquire_sample HTTP/1.1\r\n"
        b"Host: x\r\nContent-Length: %d\r\n\r\n" % size
    )
    start = time.perf_counter()
    sock.sendall(head)
    sent = 0
    chunk = b"x" * _CHUNK
    sock.settimeout(0.0)
    answer = b""
    while b"\r\n" not in answer:
        try:
            answer += sock.recv(4096)
            if not answer:
                break
            continue
        except BlockingIOError:
            pass
        except OSError:
            break
        if sent < size:
            try:
                sent += sock.send(chunk[: min(_CHUNK, size - sent)])
            except BlockingIOError:
                time.sleep(0.0005)
            except OSError:
                break
        else:
            time.sleep(0.0005)
    elapsed = time.perf_counter() - start
    sock.close()
    return elapsed, sent, answer.split(b"\r\n", 1)[0]


@inlineCallbacks
def main() -> Any:
    sizes = [int(each) for each in sys.argv[1:]] or [16, 256]
    written: list[Any] = []
    made = tempfile.TemporaryFile

    def recording(*args: Any, **kwargs: Any) -> Any:
        file = made(*args, **kwargs)
        written.append(file)
        return file

    tempfile.TemporaryFile = recording  # type: ignore[assignment]
    print(
        f"{'server':<8} {'body MiB':>9} {'answer':<28} {'seconds':>8} "
        f"{'MiB sent':>9} {'MiB to temp files':>18}"
    )
    for name in ("Site", "APISite"):
        for size_mib in sizes:
            driver = FakeDriver(state="COMMAND")
            station = Station(
                [StationInstrument("fake", driver, clock=reactor)], clock=reactor
            )
            api = StationAPI(station, token="secret", clock=reactor)
            site = (
                Site(api)
                if name == "Site"
                else APISite(api, authorize=api.authorize, reactor=reactor)
            )
            port = reactor.listenTCP(0, site, interface="127.0.0.1")
            written.clear()
            elapsed, sent, status = yield threads.deferToThread(
                _client, port.getHost().port, size_mib * _CHUNK
            )
            to_disk = 0
            for file in written:
                try:
                    file.seek(0, 2)
                    to_disk += file.tell()
                except ValueError:
                    # Closed already: twisted.web closes it when the
                    # request is done; count what the client sent.
                    to_disk += sent
            yield port.stopListening()
            print(
                f"{name:<8} {size_mib:>9} {status.decode()[9:]:<28} "
                f"{elapsed:>8.3f} {sent / _CHUNK:>9.1f} {to_disk / _CHUNK:>18.1f}"
            )
    reactor.stop()


if __name__ == "__main__":
    reactor.callWhenRunning(main)
    reactor.run()
