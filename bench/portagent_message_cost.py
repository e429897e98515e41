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
import sys
import tempfile
import time
from typing import Any

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


def _env(against: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if against:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.path.abspath(against), env.get("PYTHONPATH", "")) if p
        )
    return env


def _child(count: int, warmup: int) -> list[str]:
    return [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        "--count",
        str(count),
        "--warmup",
        str(warmup),
    ]


def instructions(count: int, warmup: int, against: str | None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                *_child(count, warmup),
            ],
            env=_env(against),
            check=True,
            capture_output=True,
        )
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise SystemExit("no callgrind summary")


def syscalls(count: int, warmup: int, against: str | None) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "strace.out")
        subprocess.run(
            ["strace", "-f", "-c", "-o", out, *_child(count, warmup)],
            env=_env(against),
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
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--syscalls", action="store_true")
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", help="an older instrumentd's directory")
    args = parser.parse_args()
    if args.child:
        # The reactor an agent process runs on, wherever the tree keeps it
        # (an older tree may have none of its own: then Twisted's default,
        # as its agents had).
        for module in ("instrumentd.reactor", "instrumentd.portagent.reactor"):
            with contextlib.suppress(ImportError):
                __import__(module, fromlist=["_"]).install_if_unchosen()
                break
        cpu = relay(args.count, args.warmup)
        print(f"{cpu / args.count * 1e6:.1f}")
        return
    sides: list[tuple[str, str | None]] = [("this", None)]
    if args.against:
        sides.append((os.path.basename(args.against.rstrip("/")), args.against))
    if args.instructions:
        print("| version | instructions per message |")
        print("|---|---|")
        for name, path in sides:
            small = instructions(args.small, 50, path)
            large = instructions(args.large, 50, path)
            print(f"| {name} | {(large - small) / (args.large - args.small):,.0f} |")
        return
    if args.syscalls:
        for name, path in sides:
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
    print("| version | CPU µs per message, each repeat |")
    print("|---|---|")
    results: dict[str, list[str]] = {name: [] for name, _ in sides}
    for _ in range(args.repeats):
        for name, path in sides:
            done = subprocess.run(
                _child(args.count, args.warmup),
                env=_env(path),
                check=True,
                capture_output=True,
                text=True,
            )
            results[name].append(done.stdout.strip())
    for name, values in results.items():
        print(f"| {name} | {' '.join(values)} |")


if __name__ == "__main__":
    main()
