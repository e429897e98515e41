"""
How much one non-blocking ``send()`` on loopback TCP takes, once a "turn",
when the reader (another process) reads 64 KiB at a time as Twisted does:
what a station can send an event-stream client in one reactor turn, with
the kernel's own send buffer sizing and with ``SO_SNDBUF`` set as
``instrumentd.station.sendbuffer.SEND_BUFFER`` sets it.

Run by hand on Linux (not a test)::

    python bench/send_per_turn.py [--turns 8] [--pause 0.5]

Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

from instrumentd.station.sendbuffer import SEND_BUFFER


def _reader(port: int) -> None:
    connection = socket.create_connection(("127.0.0.1", port))
    while connection.recv(65536):
        pass
    os._exit(0)


def measure(send_buffer: int, turns: int, pause: float) -> list[int]:
    """
    :param send_buffer: ``SO_SNDBUF`` to ask for; 0 for the kernel's own.
    :returns: bytes each turn's send took.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    child = os.fork()
    if child == 0:
        _reader(port)
    connection, _ = server.accept()
    connection.setblocking(False)
    if send_buffer:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    data = b"x" * (32 << 20)
    taken = []
    for _ in range(turns):
        try:
            taken.append(connection.send(data))
        except BlockingIOError:
            taken.append(0)
        time.sleep(pause)
    connection.close()
    server.close()
    os.waitpid(child, 0)
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--pause", type=float, default=0.5)
    args = parser.parse_args()
    print("| SO_SNDBUF asked | KiB a send: min / median / max (after the first) |")
    print("|---|---|")
    for asked in (0, SEND_BUFFER):
        taken = measure(asked, args.turns, args.pause)[1:]
        kib = [n / 1024 for n in taken]
        label = "kernel's own" if not asked else f"{asked >> 20} MiB"
        print(
            f"| {label} | {min(kib):,.0f} / {statistics.median(kib):,.0f} / "
            f"{max(kib):,.0f} |"
        )


if __name__ == "__main__":
    main()
