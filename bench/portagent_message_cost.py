"""
Port agent benchmark: the agent's own work per relayed message, in
instructions and system calls, which do not move with the machine's load.

One process holds a real :class:`~instrumentd.portagent.agent.PortAgent`
(datalog on, heartbeats off, its data listener on loopback TCP) and, outside
Twisted, a plain blocking socket as the instrument and another as a data
client.  Each round writes one 64-byte message to the instrument socket,
turns the reactor until the agent has relayed it, and reads the framed
packet from the client socket: the agent's whole path per message (the
poll, the read, framing and checksum, the datalog, the send) and the
harness's one ``send`` and ``recv``.

Run plainly it prints CPU µs per message.  ``--instructions`` runs itself
twice under ``valgrind --tool=callgrind`` (``--small`` and ``--large``
messages) and prints the difference in instructions divided by the
difference in messages, so start-up cancels out; ``--syscalls`` does the
same under ``strace -f -c`` and prints system calls per message, by name.
Both compare with ``--against DIR`` (an older ``instrumentd`` first on
``PYTHONPATH``) in the same run.  Prints tables; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

from _costrun import (
    add_instruction_options,
    callgrind,
    child_argv,
    cpu_table,
    install_tree_reactor,
    instructions_table,
    side_env,
    sides,
)

MESSAGE = b"L" + b"0" * 19 + b" " * 43 + b"\n"
HEADER = 16


def relay(count: int, warmup: int) -> float:
    """
    Relay ``warmup`` then ``count`` messages; CPU seconds of the latter.
    """
    from twisted.internet import reactor

    from instrumentd.portagent.agent import PortAgent
    from instrumentd.portagent.options import PortAgentConfig

    instrument = socket.socket()
    instrument.bind(("127.0.0.1", 0))
    instrument.listen(1)
    workdir = tempfile.mkdtemp(prefix="pa-cost-")
    config = PortAgentConfig(
        name="COST",
        instrument=f"tcp:host=127.0.0.1:port={instrument.getsockname()[1]}",
        listeners={"data": ("tcp:0:interface=127.0.0.1",)},
        heartbeat=0,
        datalog_dir=workdir,
    )
    agent = PortAgent(config, reactor)
    agent.startService()
    iterate: Any = reactor.iterate
    instrument.setblocking(False)
    while True:
        iterate(0.01)
        try:
            link, _ = instrument.accept()
            break
        except BlockingIOError:
            continue
    link.setblocking(True)
    while not agent.link.connected:
        iterate(0.01)
    client = socket.create_connection(("127.0.0.1", agent.port_numbers()["data"]))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while not agent.router.clients["data"]:
        iterate(0.01)
    client.setblocking(False)
    want = HEADER + len(MESSAGE)

    def one() -> None:
        link.sendall(MESSAGE)
        got = 0
        while got < want:
            # The reactor turns until the agent has sent the packet.
            iterate(0.1)
            with contextlib.suppress(BlockingIOError):
                got += len(client.recv(1 << 16))

    for _ in range(warmup):
        one()
    t0 = time.process_time()
    for _ in range(count):
        one()
    cpu = time.process_time() - t0
    client.close()
    link.close()
    agent.stopService()
    for _ in range(20):
        iterate(0.01)
    shutil.rmtree(workdir, ignore_errors=True)
    return cpu


def _child(count: int, warmup: int) -> list[str]:
    return child_argv(__file__, count=count, warmup=warmup)


def instructions(count: int, warmup: int, against: str | None) -> int:
    return callgrind(_child(count, warmup), side_env(against))


def syscalls(count: int, warmup: int, against: str | None) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "strace.out")
        subprocess.run(
            ["strace", "-f", "-c", "-o", out, *_child(count, warmup)],
            env=side_env(against),
            check=True,
            capture_output=True,
        )
        calls: dict[str, int] = {}
        with open(out) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 5 and re.fullmatch(r"[\d.]+", fields[0]):
                    name = fields[-1]
                    if name != "total":
                        calls[name] = int(fields[3])
        return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--syscalls", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    add_instruction_options(parser, 200, 1200)
    args = parser.parse_args()
    if args.child:
        # The reactor an agent process runs on.
        install_tree_reactor()
        cpu = relay(args.count, args.warmup)
        print(f"{cpu / args.count * 1e6:.1f}")
        return
    versions = sides([args.against] if args.against else [])
    if args.instructions:
        instructions_table(
            "message",
            versions,
            lambda n, tree: instructions(n, 50, tree),
            args.small,
            args.large,
        )
        return
    if args.syscalls:
        for name, path in versions:
            few = syscalls(args.small, 50, path)
            many = syscalls(args.large, 50, path)
            n = args.large - args.small
            per = {
                k: (many.get(k, 0) - few.get(k, 0)) / n for k in set(few) | set(many)
            }
            shown = {k: v for k, v in per.items() if abs(v) >= 0.05}
            total = sum(shown.values())
            text = ", ".join(f"{k} {v:.2f}" for k, v in sorted(shown.items()))
            print(
                f"{name}: {total:.2f} system calls per message ({text}); the "
                "harness's own are one sendto and one recvfrom"
            )
        return
    cpu_table("message", versions, _child(args.count, args.warmup), args.repeats)


if __name__ == "__main__":
    main()
