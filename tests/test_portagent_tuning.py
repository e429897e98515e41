"""
Tests for L{instrumentd.portagent.tuning}: a port-agent process freezes its
start-up objects and asks for a short scheduler slice; ``--sched-slice 0``
leaves the kernel's.  The settings are made in real child processes (they
would change the test runner's own).
"""

from __future__ import annotations

import json
import subprocess
import sys

from twisted.trial.unittest import SkipTest, TestCase

from instrumentd.portagent.options import PortAgentOptions
from instrumentd.portagent.tuning import DEFAULT_SLICE_US, current_slice_us
from tests.agentsupport import (
    LineClient,
    connect,
    run,
    start_agent,
    start_instrument,
)


def _sched_slice_ns(pid: int) -> int:
    """
    A process's slice as ``/proc/PID/sched`` reports it (nanoseconds).
    """
    with open(f"/proc/{pid}/sched") as f:
        for line in f:
            if line.startswith("se.slice"):
                return int(line.split(":")[1])
    raise SkipTest("this kernel does not report se.slice")


def _needs_custom_slices() -> None:
    if not current_slice_us():
        raise SkipTest("the kernel has no per-task slices (Linux 6.12+)")


def python_in_child(code: str) -> str:
    """
    Run ``code`` in a child Python (process-wide settings made there leave
    the test runner's alone).

    :returns: what it printed.
    """
    return subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


class TuningFunctionTests(TestCase):
    """
    The two settings, each in a child Python.
    """

    def test_shortSlice(self) -> None:
        """
        The kernel takes the slice asked for, and reports it back.
        """
        _needs_custom_slices()
        out = python_in_child(
            "from instrumentd.portagent.tuning import request_short_slice, "
            "current_slice_us; print(request_short_slice(250), current_slice_us())"
        )
        self.assertEqual(out.split(), ["True", "250"])

    def test_freeze(self) -> None:
        """
        Every object alive is moved out of the collector's reach.
        """
        out = python_in_child(
            "import gc; from instrumentd.portagent.tuning import "
            "freeze_startup_objects; n = freeze_startup_objects(); "
            "print(n, gc.get_freeze_count(), len(gc.get_objects()))"
        )
        frozen, count, left = map(int, out.split())
        self.assertEqual(frozen, count)
        self.assertGreater(frozen, 1000)
        self.assertLess(left, frozen)


class SchedSliceOptionTests(TestCase):
    """
    ``--sched-slice``.
    """

    def _parse(self, *extra: str) -> PortAgentOptions:
        options = PortAgentOptions()
        options.parseOptions(["--name=X", "--instrument=tcp:host=h:port=1", *extra])
        return options

    def test_default(self) -> None:
        """
        100 µs unless told otherwise.
        """
        self.assertEqual(self._parse().config().sched_slice, DEFAULT_SLICE_US)
        self.assertEqual(DEFAULT_SLICE_US, 100)

    def test_zeroLeavesKernelDefault(self) -> None:
        """
        0 is allowed (off).
        """
        self.assertEqual(self._parse("--sched-slice=0").config().sched_slice, 0)

    def test_outOfRange(self) -> None:
        """
        Values Linux would clamp are refused, naming the valid range.
        """
        from twisted.python.usage import UsageError

        error = self.assertRaises(UsageError, self._parse, "--sched-slice=50")
        self.assertIn("'50'", str(error))
        self.assertIn("0 (off), or 100 to 100000 microseconds", str(error))


class AgentProcessTests(TestCase):
    """
    A real port-agent process.
    """

    def test_tunedOnceStarted(self) -> None:
        """
        Once ready, the agent's process runs with a 100 µs slice and its
        start-up objects frozen; ``get_stats`` says so.
        """
        _needs_custom_slices()

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(self, instrument)
            self.assertEqual(_sched_slice_ns(agent.pid), DEFAULT_SLICE_US * 1000)
            command = await connect(self, agent.ports["command"], LineClient())
            stats = json.loads(await command.ask("get_stats"))
            self.assertEqual(stats["process"]["pid"], agent.pid)
            self.assertEqual(stats["process"]["sched_slice_us"], DEFAULT_SLICE_US)
            self.assertGreater(stats["process"]["gc_frozen_objects"], 1000)

        return run(go())

    def test_sliceZero(self) -> None:
        """
        ``--sched-slice 0``: the kernel's own slice is left alone.
        """
        _needs_custom_slices()

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(self, instrument, sched_slice=0)
            command = await connect(self, agent.ports["command"], LineClient())
            stats = json.loads(await command.ask("get_stats"))
            self.assertNotEqual(stats["process"]["sched_slice_us"], DEFAULT_SLICE_US)
            self.assertGreater(stats["process"]["gc_frozen_objects"], 1000)

        return run(go())


class PolicyKeptTests(TestCase):
    """
    The slice is asked for under the fair policies only, and the process's
    policy is kept (``sched_setattr`` sets the policy with the slice).
    """

    def _policy_after_request(self, policy: str, priority: int) -> list[str]:
        code = (
            "import os\n"
            "from instrumentd.portagent.tuning import request_short_slice, "
            "current_slice_us\n"
            "try:\n"
            f"    os.sched_setscheduler(0, os.{policy}, os.sched_param({priority}))\n"
            "except PermissionError:\n"
            "    print('refused'); raise SystemExit\n"
            "took = request_short_slice(250)\n"
            "print(took, os.sched_getscheduler(0) == os." + policy + ", "
            "current_slice_us())\n"
        )
        out = python_in_child(code).split()
        if out == ["refused"]:
            raise SkipTest(f"this process may not use {policy}")
        return out

    def test_realTimeKept(self) -> None:
        """
        A process running under a real-time policy (an operator's ``chrt
        -f``) keeps it: no slice is asked for (asking would move it back to
        the normal policy).
        """
        _needs_custom_slices()
        took, kept, _ = self._policy_after_request("SCHED_FIFO", 1)
        self.assertEqual((took, kept), ("False", "True"))

    def test_batchKept(self) -> None:
        """
        Under the batch policy the slice is taken and the policy kept.
        """
        _needs_custom_slices()
        self.assertEqual(
            self._policy_after_request("SCHED_BATCH", 0), ["True", "True", "250"]
        )
