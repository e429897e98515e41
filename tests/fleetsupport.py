"""
Helpers for tests that run a station against simulators in a process of
their own (:mod:`instrumentd.simulator.fleet`): start a fleet, wait for its
ports, count a process's file descriptors, and wait for samples on
``/api/events``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from instrumentd.station.sse import EventStreamParser, ServerSentEvent
from tests.agentsupport import within


class FleetProcess(ProcessProtocol):
    """
    A simulator fleet as a child process.

    :ivar ports: fires with the simulators' TCP ports once they listen.
    :ivar ended: fires when the process has ended.
    """

    def __init__(self) -> None:
        self.ports: Deferred[list[int]] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self._out = b""
        self._err = b""

    def outReceived(self, data: bytes) -> None:
        self._out += data
        if b"\n" in self._out and not self.ports.called:
            line = self._out.split(b"\n", 1)[0]
            self.ports.callback(list(json.loads(line)["ports"]))

    def errReceived(self, data: bytes) -> None:
        self._err += data

    def processEnded(self, reason: Failure) -> None:
        if not self.ports.called:
            self.ports.errback(
                RuntimeError(
                    f"the fleet ended before listening: {self._err.decode()[-2000:]}"
                )
            )
        self.ended.callback(None)


async def start_fleet(test: TestCase, count: int, time_scale: float = 5) -> list[int]:
    """
    Run ``count`` simulated SBE 37s in a process of their own, stopped
    (by closing its standard input) when the test ends.

    :returns: their ports.
    """
    fleet = FleetProcess()
    argv = [
        sys.executable,
        "-m",
        "instrumentd.simulator.fleet",
        "--count",
        str(count),
        "--time-scale",
        str(time_scale),
    ]
    reactor.spawnProcess(  # type: ignore[attr-defined]
        fleet, sys.executable, argv, env=dict(os.environ)
    )

    async def stop() -> None:
        if not fleet.ended.called:
            fleet.transport.closeStdin()  # type: ignore[union-attr]
            try:
                await within(fleet.ended, "the fleet to end", 30)
            except AssertionError:
                fleet.transport.signalProcess("KILL")  # type: ignore[union-attr]
                await fleet.ended

    test.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return await within(fleet.ports, "the fleet's ports", 60)


def open_descriptors(pid: int) -> int:
    """
    How many file descriptors process ``pid`` has open (Linux /proc).
    """
    return len(os.listdir(f"/proc/{pid}/fd"))


def descriptor_kinds(pid: int) -> dict[str, int]:
    """
    What process ``pid`` has open, counted by kind: ``socket``, ``pipe``,
    ``anon_inode`` and the like, and files by their name's suffix
    (``.jsonl``, ``.datalog``, ``.json``), for a failing count's message.
    """
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("/"):
            kind = os.path.splitext(target)[1] or target
        else:
            kind = target.split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def open_files(pid: int, suffix: str) -> int:
    """
    How many files whose names end in ``suffix`` process ``pid`` has open.
    """
    found = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            found += os.readlink(f"/proc/{pid}/fd/{fd}").endswith(suffix)
    return found


async def samples_from_all(
    http: Any,
    url: str,
    names: set[str],
    until: Callable[[str], bool] | None = None,
    seconds: float = 90,
) -> None:
    """
    Read ``/api/events?type=SAMPLE`` until every instrument named has
    delivered a sample and, checked at each sample after that,
    ``until(instrument)`` (the sample's instrument) is true; then hang up.
    """
    pending = set(names)
    done: Deferred[None] = Deferred()

    def event(each: ServerSentEvent) -> None:
        if each.event != "SAMPLE" or done.called:
            return
        instrument = json.loads(each.data).get("instrument")
        pending.discard(instrument)
        if not pending and (until is None or until(instrument)):
            done.callback(None)

    response = await http.get(f"{url}/api/events?type=SAMPLE", unbuffered=True)
    streaming = response.collect(EventStreamParser(event).feed)
    await within(
        done, f"a sample from each of {sorted(pending)} (and the condition)", seconds
    )
    response.original._transport.loseConnection()
    await streaming.addErrback(lambda reason: reason.trap(Exception))


__all__ = [
    "FleetProcess",
    "descriptor_kinds",
    "open_descriptors",
    "open_files",
    "samples_from_all",
    "start_fleet",
]
