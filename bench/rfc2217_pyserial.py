"""
RFC 2217 benchmark: how long pyserial's ``rfc2217://`` client waits on a
real port agent, and how fast binary data flows through the RFC 2217 port
compared with the raw port.

A real ``twistd instrumentd port-agent`` child opens the slave of a pty
whose master this process holds.  pyserial's client (synchronous) runs in a
reactor thread, as it would in an operator's script.  Measured: opening the
port (telnet and COM-PORT-OPTION negotiation, four settings, flow control,
DTR, RTS, two purges), one baud rate change, one DTR change, and 1 MiB of
bytes 0x00-0xFF (a quarter of them 0xFF, which telnet doubles) written to
the pty and read by the client, through the RFC 2217 port and through the
raw port (and through the RFC 2217 port to a plain socket, which shows the
agent's own cost apart from pyserial's).

Run by hand (it is not a test): ``python bench/rfc2217_pyserial.py``.
Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
import tty
from collections.abc import Callable
from typing import Any

import serial
from twisted.internet import defer, task
from twisted.internet.threads import deferToThread

from instrumentd.portagent.launcher import launch_port_agent

PAYLOAD = bytes(range(256)) * 64  # 16 KiB, 64 bytes of 0xFF
TOTAL = 1 << 20


def _timed(f: Callable[[], Any]) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def _pump_pty(reactor: Any, master: int, total: int) -> defer.Deferred[None]:
    """
    Write ``total`` bytes to the pty master, as fast as it takes them.
    """
    done: defer.Deferred[None] = defer.Deferred()
    state = {"left": total, "buffer": b""}

    def write() -> None:
        while state["left"] > 0 or state["buffer"]:
            if not state["buffer"]:
                n = min(len(PAYLOAD), state["left"])
                state["buffer"] = PAYLOAD[:n]
                state["left"] -= n
            try:
                written = os.write(master, state["buffer"])
            except BlockingIOError:
                reactor.callLater(0.001, write)
                return
            state["buffer"] = state["buffer"][written:]
        done.callback(None)

    write()
    return done


def _read_exactly(read: Callable[[int], bytes], total: int) -> int:
    got = 0
    while got < total:
        chunk = read(min(65536, total - got))
        if not chunk:
            break
        got += len(chunk)
    return got


async def run(reactor: Any, repeats: int) -> list[tuple[str, str]]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    # Drain what the agent writes to the line (nothing here) and keep the
    # slave's settings as the agent sets them.
    datalog = tempfile.mkdtemp(prefix="rfc2217-bench-")
    agent = await launch_port_agent(
        name="BENCH",
        instrument=f"serial:{os.ttyname(slave)}:baudrate=9600",
        datalog_dir=datalog,
        heartbeat=0,
        rfc2217_port="tcp:0:interface=127.0.0.1",
        reactor=reactor,
    )
    url = f"rfc2217://127.0.0.1:{agent.ports['rfc2217']}"
    rows: list[tuple[str, str]] = []
    try:
        opens: list[float] = []
        for _ in range(repeats):
            opened: list[serial.Serial] = []
            opens.append(
                await deferToThread(
                    _timed,
                    lambda opened=opened: opened.append(
                        serial.serial_for_url(url, timeout=5)
                    ),
                )
            )
            await deferToThread(opened[0].close)
        rows.append(("open (negotiation, settings, DTR, RTS, purges)", _ms(opens)))

        port_ = await deferToThread(serial.serial_for_url, url, timeout=5)
        bauds: list[float] = []
        dtrs: list[float] = []
        for i in range(repeats):
            rate = 19200 if i % 2 == 0 else 9600
            bauds.append(
                await deferToThread(
                    _timed, lambda r=rate: setattr(port_, "baudrate", r)
                )
            )
            dtrs.append(
                await deferToThread(
                    _timed, lambda i=i: setattr(port_, "dtr", i % 2 == 1)
                )
            )
        rows.append(("baud rate change (answer received)", _ms(bauds)))
        rows.append(("DTR change (answer received)", _ms(dtrs)))

        start = time.perf_counter()
        reading = deferToThread(_read_exactly, port_.read, TOTAL)
        await _pump_pty(reactor, master, TOTAL)
        got = await reading
        elapsed = time.perf_counter() - start
        rows.append(
            (
                "1 MiB binary, pty -> agent -> RFC 2217 -> pyserial",
                f"{got / elapsed / 1e6:.1f} MB/s ({got} bytes)",
            )
        )
        await deferToThread(port_.close)

        # The same through the RFC 2217 port to a plain socket, to separate
        # the agent's cost from pyserial's (its reader queues byte by byte).
        telnet = socket.create_connection(("127.0.0.1", agent.ports["rfc2217"]))
        telnet.settimeout(10)
        opening = 9  # WILL BINARY, DO BINARY, WILL SGA
        wire = opening + TOTAL + TOTAL // 256  # every 0xFF doubled
        start = time.perf_counter()
        reading = deferToThread(_read_exactly, telnet.recv, wire)
        await _pump_pty(reactor, master, TOTAL)
        got = await reading
        elapsed = time.perf_counter() - start
        telnet.close()
        rows.append(
            (
                "1 MiB binary, pty -> agent -> RFC 2217 -> socket",
                f"{(got - opening) / elapsed / 1e6:.1f} MB/s ({got} bytes on the wire)",
            )
        )

        raw = socket.create_connection(("127.0.0.1", agent.ports["raw"]))
        raw.settimeout(10)
        start = time.perf_counter()
        reading = deferToThread(_read_exactly, raw.recv, TOTAL)
        await _pump_pty(reactor, master, TOTAL)
        got = await reading
        elapsed = time.perf_counter() - start
        raw.close()
        rows.append(
            (
                "1 MiB binary, pty -> agent -> raw port -> socket",
                f"{got / elapsed / 1e6:.1f} MB/s ({got} bytes)",
            )
        )
    finally:
        await agent.stop()
        os.close(master)
        os.close(slave)
    return rows


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[int(0.9 * (len(values) - 1))]
    return (
        f"median {statistics.median(values) * 1000:.0f} ms, "
        f"p90 {p90 * 1000:.0f} ms (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    def go(reactor: Any) -> defer.Deferred[None]:
        async def body() -> None:
            rows = await run(reactor, args.repeats)
            width = max(len(name) for name, _ in rows)
            print(f"{'measure'.ljust(width)}  result")
            for name, value in rows:
                print(f"{name.ljust(width)}  {value}")

        return defer.Deferred.fromCoroutine(body())

    task.react(go)


if __name__ == "__main__":
    main()
