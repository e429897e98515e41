"""
Port agent benchmark: throughput, latency and memory of a real agent process.

A loopback TCP "instrument" in this process writes as fast as it can; a real
``twistd instrumentd port-agent`` child process (datalog on, the product's
default client buffer) relays it to 1 and to 4 data clients in this process.
In the same run, socat relays the same amount to 1 and to 4 clients as the
baseline of a plain relay (no framing, no checksum, no datalog): socat
cannot fan one stream out, so with 4 clients it forks one relay per client,
each with a source connection of its own.  Agent and socat runs alternate,
repeated ``--repeats`` times, and the table gives each figure's
min/median/max and the agent/socat ratio of each repeat.  Then the source is
paced at a fixed message rate and the latency from the source's write to a
client's receipt is measured, through the agent and through socat.

socat is required (``apt-get install socat``) unless ``--no-socat`` is
given.  Run by hand (it is not a test): ``python bench/portagent_throughput.py``.
Prints tables; nothing is asserted.  On a shared machine the figures move
with the others' load: compare ratios from one run, not runs on different
days.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from instrumentd.portagent.launcher import launch_port_agent
from instrumentd.portagent.options import DEFAULT_CLIENT_BUFFER
from instrumentd.portagent.sendnow import sender_for
from instrumentd.portagent.tuning import request_short_slice

BLOCK = bytes(range(256)) * 256  # 64 KiB
#: A latency message: 64 bytes, as issue 18's latency target says, with the
#: send time (monotonic ns) in bytes 1-19.
MESSAGE = b"L%019d" + b" " * 43 + b"\n"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Seconds a throughput run may take before the benchmark gives up on it.
RUN_TIMEOUT = 300


def agent_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def agent_peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@implementer(IPullProducer)
class _Firehose:
    def __init__(self, transport: Any, total: int) -> None:
        self.transport = transport
        self.left = total

    def resumeProducing(self) -> None:
        if self.left <= 0:
            self.transport.unregisterProducer()
            return
        chunk = BLOCK if self.left >= len(BLOCK) else BLOCK[: self.left]
        self.left -= len(chunk)
        self.transport.write(chunk)

    def stopProducing(self) -> None:
        self.left = 0


class Source(Protocol):
    """
    The instrument: waits for ``go``, then floods or paces.
    """

    def connectionMade(self) -> None:
        self.factory.connected.put(self)  # type: ignore[attr-defined]

    def flood(self, total: int) -> None:
        self.transport.registerProducer(_Firehose(self.transport, total), False)  # type: ignore[union-attr]

    def pace(self, rate: int, seconds: float, reactor: Any) -> defer.Deferred[None]:
        count = int(rate * seconds)
        sent = [0]

        def one() -> None:
            stamp = time.monotonic_ns()
            self.transport.write(MESSAGE % stamp)  # type: ignore[union-attr]
            sent[0] += 1
            if sent[0] >= count:
                loop.stop()

        loop = task.LoopingCall(one)
        loop.clock = reactor
        return loop.start(1.0 / rate).addCallback(lambda _: None)


class PacketCounter(Protocol):
    """
    A data client that walks packet headers (no checksum: the agent's own
    tests verify those) and counts instrument payload bytes.

    Without ``on_line`` it only reads the headers and skips the payloads
    in place, so the client costs about what socat's plain byte counter
    costs and the figures measure the agent, not this process (copying
    every byte into a buffer here took CPU from the agent on a 2-core
    machine).
    """

    def __init__(
        self, target: int, on_line: Callable[[bytes, int], None] | None = None
    ) -> None:
        self.target = target
        self.payload = 0
        self.buffer = bytearray()
        self.done: defer.Deferred[float] = defer.Deferred()
        self.on_line = on_line
        self.lost = False
        # The fast walk: bytes of the packet under way still to come, the
        # payload it will add, and a header split between two reads.
        self._skip = 0
        self._pending = 0
        self._head = b""

    def connectionLost(self, reason: Any = None) -> None:
        # Cut off by the agent (or it died): say so now, not at the timeout.
        self.lost = True
        if not self.done.called:
            self.done.errback(RuntimeError(f"connection lost after {self.payload}"))

    def dataReceived(self, data: bytes) -> None:
        if self.on_line is None:
            self._walk(data)
        else:
            self._copying(data, time.monotonic_ns())
        if self.payload >= self.target and not self.done.called:
            self.done.callback(time.perf_counter())

    def _walk(self, data: bytes) -> None:
        if self._head:
            data = self._head + data
            self._head = b""
        n = len(data)
        pos = self._skip
        if pos > n:
            self._skip = pos - n
            return
        self.payload += self._pending
        self._pending = 0
        while pos + 16 <= n:
            length = (data[pos + 4] << 8) | data[pos + 5]
            payload = length - 16 if data[pos + 3] == 1 else 0
            if pos + length > n:
                self._pending = payload
                break
            self.payload += payload
            pos += length
        else:
            self._skip = 0
            self._head = data[pos:]
            return
        self._skip = pos + length - n

    def _copying(self, data: bytes, received: int) -> None:
        buf = self.buffer
        buf += data
        pos = 0
        while len(buf) - pos >= 16:
            ptype = buf[pos + 3]
            (length,) = struct.unpack_from(">H", buf, pos + 4)
            if len(buf) - pos < length:
                break
            if ptype == 1:
                self.payload += length - 16
                if self.on_line is not None:
                    self.on_line(bytes(buf[pos + 16 : pos + length]), received)
            pos += length
        del buf[:pos]


class RawCounter(Protocol):
    """
    A plain byte counter (the socat baseline has no framing).
    """

    def __init__(
        self, target: int, on_line: Callable[[bytes, int], None] | None = None
    ) -> None:
        self.target = target
        self.payload = 0
        self.done: defer.Deferred[float] = defer.Deferred()
        self.on_line = on_line
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        if self.on_line is not None:
            self.on_line(data, time.monotonic_ns())
        self.payload += len(data)
        if self.payload >= self.target and not self.done.called:
            self.done.callback(time.perf_counter())


async def _all_done(reactor: Any, counters: list[Any]) -> list[float]:
    """
    When each client had all its bytes; a run that stalls for
    :data:`RUN_TIMEOUT` seconds ends the benchmark with what each client
    got, rather than hanging.
    """
    waiting = defer.gatherResults([c.done for c in counters], consumeErrors=True)
    waiting.addTimeout(RUN_TIMEOUT, reactor)
    try:
        return await waiting
    except (defer.TimeoutError, defer.FirstError, defer.CancelledError):
        got = ", ".join(
            f"{c.payload}/{c.target}{' (connection lost)' if c.lost else ''}"
            for c in counters
        )
        raise SystemExit(f"a run stalled: bytes per client {got}") from None


async def start_source(reactor: Any) -> tuple[Any, Factory, int]:
    factory = Factory.forProtocol(Source)
    # One Source per connection: socat with 4 clients makes 4.
    factory.connected = defer.DeferredQueue()  # type: ignore[attr-defined]
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    return port, factory, port.getHost().port


async def connect(reactor: Any, port: int, protocol: Protocol) -> Protocol:
    factory = Factory.forProtocol(lambda: protocol)
    return await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)


class _StatsAsker(LineReceiver):
    delimiter = b"\n"

    def connectionMade(self) -> None:
        self.replies: defer.DeferredQueue[bytes] = defer.DeferredQueue()

    def lineReceived(self, line: bytes) -> None:
        self.replies.put(line)


async def wait_for_data_clients(reactor: Any, agent: Any, count: int) -> None:
    """
    Wait until the agent itself counts ``count`` data clients.

    A client's connect completes when the agent's kernel accepts it, before
    the agent's reactor has accepted it and begun sending to it; data that
    the agent reads in between never reaches that client.  A flood started
    at once could leave the last clients one read (one 65,519-byte packet)
    short, waiting forever.
    """
    asker = _StatsAsker()
    await connect(reactor, agent.ports["command"], asker)
    try:
        deadline = time.monotonic() + 30
        while True:
            asker.sendLine(b"get_stats")
            stats = json.loads(await asker.replies.get())
            if stats["clients"]["data"] >= count:
                return
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the agent counted {stats['clients']['data']} of {count} "
                    "data clients after 30 s"
                )
            await task.deferLater(reactor, 0.01, lambda: None)
    finally:
        asker.transport.loseConnection()  # type: ignore[union-attr]


async def throughput_run(
    reactor: Any,
    clients: int,
    total: int,
    workdir: str,
    client_buffer: str | None,
    *,
    against: str | None = None,
) -> dict[str, Any]:
    listening, factory, source_port = await start_source(reactor)
    agent = await launch_port_agent(
        name=f"BENCH{clients}",
        instrument=f"tcp:host=127.0.0.1:port={source_port}",
        datalog_dir=os.path.join(workdir, f"datalog{clients}"),
        heartbeat=0,
        client_buffer=client_buffer,
        reactor=reactor,
        env=agent_env(against),
    )
    try:
        source = await factory.connected.get()  # type: ignore[attr-defined]
        counters = [PacketCounter(total) for _ in range(clients)]
        for counter in counters:
            await connect(reactor, agent.ports["data"], counter)
        await wait_for_data_clients(reactor, agent, clients)
        cpu0 = agent_cpu_seconds(agent.pid)
        t0 = time.perf_counter()
        source.flood(total)
        try:
            ends = await _all_done(reactor, counters)
        except SystemExit as e:
            raise SystemExit(
                f"agent {against or 'this'}, {clients} clients: {e}"
            ) from None
        cpu = agent_cpu_seconds(agent.pid) - cpu0
        rss = agent_peak_rss_mib(agent.pid)
        for counter in counters:
            counter.transport.loseConnection()  # type: ignore[union-attr]
        rates = [total / (end - t0) / 1e6 for end in ends]
        return {
            "clients": clients,
            "min_rate": min(rates),
            "mean_rate": statistics.mean(rates),
            "cpu": cpu,
            "rss": rss,
        }
    finally:
        await agent.stop()
        await listening.stopListening()


def agent_env(against: str | None) -> dict[str, str] | None:
    """
    The agent's environment: this process's, or with ``against``'s
    ``instrumentd`` first on ``PYTHONPATH`` (an older version to compare).
    """
    if against is None:
        return None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.abspath(against), env.get("PYTHONPATH", "")) if p
    )
    return env


async def latency_run(
    reactor: Any,
    rate: int,
    seconds: float,
    workdir: str,
    against: str | None = None,
) -> list[float]:
    listening, factory, source_port = await start_source(reactor)
    agent = await launch_port_agent(
        name="BENCHLAT",
        instrument=f"tcp:host=127.0.0.1:port={source_port}",
        datalog_dir=os.path.join(workdir, "datalog-latency"),
        heartbeat=0,
        reactor=reactor,
        env=agent_env(against),
    )
    try:
        source = await factory.connected.get()  # type: ignore[attr-defined]
        latencies: list[float] = []
        counter = PacketCounter(1 << 62, on_line=_line_latency(latencies))
        await connect(reactor, agent.ports["data"], counter)
        await wait_for_data_clients(reactor, agent, 1)
        await source.pace(rate, seconds, reactor)
        await task.deferLater(reactor, 0.2, lambda: None)
        counter.transport.loseConnection()  # type: ignore[union-attr]
        return latencies
    finally:
        await agent.stop()
        await listening.stopListening()


def _line_latency(latencies: list[float]) -> Callable[[bytes, int], None]:
    """
    A client's ``on_line``: the latency of each stamped message, from the
    source's write to the client's receipt (the time its ``dataReceived``
    was called, before this process walks packet headers or splits lines,
    so the agent's framed stream and socat's plain one are timed alike).
    """
    partial = bytearray()

    def on_payload(payload: bytes, received: int) -> None:
        partial.extend(payload)
        *lines, rest = bytes(partial).split(b"\n")
        partial[:] = rest
        for line in lines:
            if line.startswith(b"L"):
                latencies.append((received - int(line[1:20])) / 1e6)

    return on_payload


class _SocatProcess(ProcessProtocol):
    def __init__(self, ended: defer.Deferred[None]) -> None:
        self.ended = ended

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start_socat(
    reactor: Any, source_port: int
) -> tuple[Any, int, defer.Deferred[None]]:
    socat = shutil.which("socat")
    if socat is None:
        raise SystemExit(
            "socat is not installed (apt-get install socat), or use --no-socat"
        )
    relay_port = free_port()
    ended: defer.Deferred[None] = defer.Deferred()
    process = reactor.spawnProcess(
        _SocatProcess(ended),
        socat,
        [
            socat,
            f"TCP-LISTEN:{relay_port},bind=127.0.0.1,reuseaddr,fork",
            f"TCP:127.0.0.1:{source_port}",
        ],
        env=os.environ,
    )
    return process, relay_port, ended


async def _connect_retrying(reactor: Any, port: int, protocol: Protocol) -> None:
    # socat takes a moment to bind; retry the connection on refusal.
    for _attempt in range(250):
        try:
            await connect(reactor, port, protocol)
            return
        except Exception:
            await task.deferLater(reactor, 0.02, lambda: None)
    raise SystemExit("socat never listened")


async def socat_throughput_run(
    reactor: Any, clients: int, total: int
) -> dict[str, Any]:
    listening, factory, source_port = await start_source(reactor)
    process, relay_port, ended = await _start_socat(reactor, source_port)
    try:
        counters = [RawCounter(total) for _ in range(clients)]
        sources = []
        for counter in counters:
            await _connect_retrying(reactor, relay_port, counter)
            sources.append(await factory.connected.get())  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        for source in sources:
            source.flood(total)
        ends = await _all_done(reactor, counters)
        rates = [total / (end - t0) / 1e6 for end in ends]
        for counter in counters:
            counter.transport.loseConnection()  # type: ignore[union-attr]
        for source in sources:
            source.transport.loseConnection()
        return {
            "clients": clients,
            "min_rate": min(rates),
            "mean_rate": statistics.mean(rates),
        }
    finally:
        process.signalProcess("TERM")
        await ended
        await listening.stopListening()


async def socat_latency_run(reactor: Any, rate: int, seconds: float) -> list[float]:
    listening, factory, source_port = await start_source(reactor)
    process, relay_port, ended = await _start_socat(reactor, source_port)
    try:
        latencies: list[float] = []
        counter = RawCounter(1 << 62, on_line=_line_latency(latencies))
        await _connect_retrying(reactor, relay_port, counter)
        source = await factory.connected.get()  # type: ignore[attr-defined]
        await source.pace(rate, seconds, reactor)
        await task.deferLater(reactor, 0.2, lambda: None)
        counter.transport.loseConnection()  # type: ignore[union-attr]
        source.transport.loseConnection()
        return latencies
    finally:
        process.signalProcess("TERM")
        await ended
        await listening.stopListening()


def pace_together(
    sources: list[Source], rate: int, seconds: float, reactor: Any
) -> defer.Deferred[None]:
    """
    Send ``rate`` stamped messages a second to each source, over the same
    seconds, the sources taking turns: with N sources a message goes out
    every 1/(N * rate) s, to each source in turn.  So every path meets the
    same load from the rest of the machine, but no two relays are woken at
    the same instant to compete for a CPU with each other.  Messages go
    straight to the sockets (not on the reactor's next turn).
    """
    writers = [sender_for(source.transport) for source in sources]
    count = int(rate * seconds) * len(writers)
    sent = [0]

    def one() -> None:
        writers[sent[0] % len(writers)](MESSAGE % time.monotonic_ns())
        sent[0] += 1
        if sent[0] >= count:
            loop.stop()

    loop = task.LoopingCall(one)
    loop.clock = reactor
    return loop.start(1.0 / (rate * len(writers))).addCallback(lambda _: None)


async def latency_together(
    reactor: Any,
    rate: int,
    seconds: float,
    workdir: str,
    *,
    against: str | None,
    with_socat: bool,
) -> dict[str, list[float]]:
    """
    One latency repeat with every path relaying over the same seconds, in
    turns (see :func:`pace_together`): the agent, optionally the agent of
    ``against``, and socat.  Whatever else the machine does then weighs on
    all of them alike.

    :returns: latencies in ms, by path.
    """
    async with contextlib.AsyncExitStack() as stack:
        sources: list[Source] = []
        results: dict[str, list[float]] = {}
        agents = [("agent", None)] + ([("against", against)] if against else [])
        for label, tree in agents:
            listening, factory, source_port = await start_source(reactor)
            stack.push_async_callback(listening.stopListening)
            agent = await launch_port_agent(
                name=f"BENCHLAT-{label}",
                instrument=f"tcp:host=127.0.0.1:port={source_port}",
                datalog_dir=os.path.join(workdir, f"datalog-latency-{label}"),
                heartbeat=0,
                reactor=reactor,
                env=agent_env(tree),
            )
            stack.push_async_callback(agent.stop)
            sources.append(await factory.connected.get())  # type: ignore[attr-defined]
            results[label] = []
            counter = PacketCounter(1 << 62, on_line=_line_latency(results[label]))
            await connect(reactor, agent.ports["data"], counter)
            stack.callback(counter.transport.loseConnection)  # type: ignore[union-attr]
        if with_socat:
            listening, factory, source_port = await start_source(reactor)
            stack.push_async_callback(listening.stopListening)
            process, relay_port, ended = await _start_socat(reactor, source_port)

            async def stop_socat(process: Any = process, ended: Any = ended) -> None:
                process.signalProcess("TERM")
                await ended

            stack.push_async_callback(stop_socat)
            results["socat"] = []
            raw = RawCounter(1 << 62, on_line=_line_latency(results["socat"]))
            await _connect_retrying(reactor, relay_port, raw)
            stack.callback(raw.transport.loseConnection)  # type: ignore[union-attr]
            socat_source = await factory.connected.get()  # type: ignore[attr-defined]
            stack.callback(socat_source.transport.loseConnection)
            sources.append(socat_source)
        # Let every process settle after its start-up before timing.
        await task.deferLater(reactor, 0.5, lambda: None)
        await pace_together(sources, rate, seconds, reactor)
        await task.deferLater(reactor, 0.2, lambda: None)
        return results


def spread(values: list[float], digits: int = 0) -> str:
    """
    ``min / median / max`` of repeated measurements.
    """
    return (
        f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f} / "
        f"{max(values):.{digits}f}"
    )


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main(reactor: Any, args: argparse.Namespace) -> None:
    total = args.mib << 20
    workdir = tempfile.mkdtemp(prefix="instrumentd-bench-")
    agent: dict[int, list[dict[str, Any]]] = {n: [] for n in args.clients}
    socat: dict[int, list[dict[str, Any]]] = {n: [] for n in args.clients}
    against: dict[int, list[dict[str, Any]]] = {n: [] for n in args.clients}
    try:
        for _repeat in range(args.repeats if args.only != "latency" else 0):
            for n in args.clients:
                agent[n].append(
                    await throughput_run(reactor, n, total, workdir, args.client_buffer)
                )
                if args.against:
                    against[n].append(
                        await throughput_run(
                            reactor,
                            n,
                            total,
                            workdir,
                            args.client_buffer,
                            against=args.against,
                        )
                    )
                if not args.no_socat:
                    socat[n].append(await socat_throughput_run(reactor, n, total))
        agent_latencies: list[list[float]] = []
        against_latencies: list[list[float]] = []
        socat_latencies: list[list[float]] = []
        for _repeat in range(args.repeats if args.only != "throughput" else 0):
            if args.together:
                together = await latency_together(
                    reactor,
                    args.rate,
                    args.seconds,
                    workdir,
                    against=args.against,
                    with_socat=not args.no_socat,
                )
                agent_latencies.append(together["agent"])
                if args.against:
                    against_latencies.append(together["against"])
                if not args.no_socat:
                    socat_latencies.append(together["socat"])
                continue
            agent_latencies.append(
                await latency_run(reactor, args.rate, args.seconds, workdir)
            )
            if args.against:
                against_latencies.append(
                    await latency_run(
                        reactor, args.rate, args.seconds, workdir, args.against
                    )
                )
            if not args.no_socat:
                socat_latencies.append(
                    await socat_latency_run(reactor, args.rate, args.seconds)
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    if args.only != "latency":
        print_throughput(args, agent, socat)
        if args.against:
            print(f"against: {args.against}")
            print_throughput(args, against, socat)
    if args.only != "throughput":
        paths = [("agent", agent_latencies)]
        if against_latencies:
            paths.append(("against", against_latencies))
        if socat_latencies:
            paths.append(("socat", socat_latencies))
        print_latency(args, paths)


def print_throughput(
    args: argparse.Namespace,
    agent: dict[int, list[dict[str, Any]]],
    socat: dict[int, list[dict[str, Any]]],
) -> None:
    buffer = args.client_buffer or f"{DEFAULT_CLIENT_BUFFER >> 20} MiB (default)"
    print(
        f"\nPort agent throughput: {args.mib} MiB to each client from a loopback "
        f"TCP source, datalog on, client buffer {buffer}; {args.repeats} repeats, "
        "min / median / max"
    )
    print(
        f"{'clients':>7} {'agent MB/s per client':>24} {'socat MB/s per client':>24} "
        f"{'agent/socat':>18} {'agent CPU s':>12} {'peak RSS MiB':>13}"
    )
    for n in args.clients:
        runs = agent[n]
        rates = [r["mean_rate"] for r in runs]
        if socat[n]:
            base = [r["mean_rate"] for r in socat[n]]
            ratios = [a / b for a, b in zip(rates, base, strict=True)]
            base_text, ratio_text = spread(base), spread(ratios, 2)
        else:
            base_text = ratio_text = "-"
        print(
            f"{n:>7} {spread(rates):>24} {base_text:>24} {ratio_text:>18} "
            f"{statistics.median(r['cpu'] for r in runs):>12.2f} "
            f"{max(r['rss'] for r in runs):>13.1f}"
        )
    print("(per client: the mean over clients of each client's rate)")


def print_latency(
    args: argparse.Namespace, paths: list[tuple[str, list[list[float]]]]
) -> None:
    """
    The latency table: each path's p50, p99 and max (min / median / max
    over repeats), then each repeat's p99 and its ratio to socat's.
    """
    how = (
        "one after the other"
        if not args.together
        else "all paths over the same seconds, their messages in turns"
    )
    print(
        f"\nLatency, source write to client receipt, {args.rate} messages/s of "
        f"{len(MESSAGE % 0)} bytes for {args.seconds:g} s, {how}; {args.repeats} "
        "repeats, min / median / max of each repeat's figure"
        + (f"; against: {args.against}" if args.against else "")
        + ("; this process with a short slice" if args.short_slice else "")
    )
    print(f"{'path':>7} {'messages':>9} {'p50 ms':>22} {'p99 ms':>22} {'max ms':>22}")
    for label, runs_ in paths:
        print(
            f"{label:>7} {min(len(lat) for lat in runs_):>9} "
            f"{spread([pct(lat, 50) for lat in runs_], 3):>22} "
            f"{spread([pct(lat, 99) for lat in runs_], 3):>22} "
            f"{spread([max(lat or [float('nan')]) for lat in runs_], 3):>22}"
        )
    print("p50 / p99 ms of each repeat, in the order run:")
    for label, runs_ in paths:
        cells = "  ".join(f"{pct(lat, 50):.3f}/{pct(lat, 99):.3f}" for lat in runs_)
        print(f"{label:>7}  {cells}")
    by_label = dict(paths)
    socat_runs = by_label.get("socat")
    if socat_runs:
        for label, runs_ in paths:
            if label == "socat":
                continue
            ratios = [
                pct(a, 99) / pct(b, 99) for a, b in zip(runs_, socat_runs, strict=True)
            ]
            each = " ".join(f"{r:.2f}" for r in ratios)
            print(
                f"{label}/socat p99, min / median / max: {spread(ratios, 2)} "
                f"(each: {each})"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mib", type=int, default=400, help="MiB to send per throughput run"
    )
    parser.add_argument(
        "--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4]
    )
    parser.add_argument(
        "--rate", type=int, default=1000, help="messages/s for the latency run"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="length of the latency run"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="throughput runs of each kind"
    )
    parser.add_argument(
        "--no-socat", action="store_true", help="skip the socat baseline"
    )
    parser.add_argument(
        "--client-buffer",
        default=None,
        help="--client-buffer of the agent (default: the agent's own default)",
    )
    parser.add_argument(
        "--only",
        choices=("throughput", "latency"),
        default=None,
        help="run only the throughput or only the latency part",
    )
    parser.add_argument(
        "--against",
        default=None,
        help="a directory with an older instrumentd/ whose agent is also "
        "measured, in the same run, alternating",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="latency: time every path over the same seconds, their messages "
        "in turns (the default times each on its own, one after the other)",
    )
    parser.add_argument(
        "--short-slice",
        action="store_true",
        help="ask the scheduler for a short slice for this measuring process "
        "(Linux 6.12+), so that its own waits for a CPU weigh less on every "
        "path's figures",
    )
    arguments = parser.parse_args()
    if arguments.short_slice and not request_short_slice():
        raise SystemExit("--short-slice: the kernel did not take it")
    sys.setrecursionlimit(10000)
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
