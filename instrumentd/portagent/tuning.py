# -*- test-case-name: tests.test_portagent_tuning -*-
"""
Settings of a port-agent process that shorten its tail latency.

A port agent in a process of its own (``twistd instrumentd port-agent``)
relays small messages as they come; what it costs a message is mostly not
its own work but waiting: for the garbage collector, and for a CPU when
the machine is busy.  Two settings, made once the agent is up:

- :func:`freeze_startup_objects`: collect once, then move every object
  that exists (modules, classes, the agent's own start-up) into the
  collector's permanent generation (:func:`gc.freeze`).  A full collection
  otherwise walks all of them, tens of milliseconds here, in the middle
  of a stream; afterwards it walks only what the agent made since.
- :func:`request_short_slice`: ask the kernel's scheduler (Linux 6.12 and
  later, EEVDF) for a short time slice, ``sched_setattr`` with
  ``sched_runtime`` under ``SCHED_OTHER``.  A task with a short slice gets
  an early deadline when it wakes, so on a busy machine it runs soon after
  a message arrives rather than after the running task's slice; its share
  of the CPU (its weight, ``nice``) does not change.  No privilege is
  needed.  On other kernels and systems nothing is done.  The process keeps
  its scheduling policy: a slice is asked for only under the normal and
  batch policies, and a process an operator started under a real-time or
  deadline policy (``chrt``) is left as it is, since ``sched_setattr``
  would otherwise move it back to the normal policy.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from typing import Final

from twisted.logger import Logger

from instrumentd.gcfreeze import freeze_startup_objects

__all__ = [
    "DEFAULT_SLICE_US",
    "current_slice_us",
    "freeze_startup_objects",
    "request_short_slice",
    "tune_agent_process",
]

log = Logger()

#: The slice asked for, microseconds: the shortest the kernel allows is
#: 100 µs; the default is about 3 ms (``base_slice`` times a factor for the
#: number of CPUs).  A port agent's work per message is tens of
#: microseconds, so a short slice costs it nothing but preemptions it would
#: not otherwise make.
DEFAULT_SLICE_US: Final = 100

#: ``sched_setattr``'s system call number, by machine; others are skipped.
_SYS_SCHED_SETATTR: Final = {"x86_64": 314, "aarch64": 274}
_SYS_SCHED_GETATTR: Final = {"x86_64": 315, "aarch64": 275}

#: The policies whose tasks have a slice (the fair class): a slice is asked
#: for under these only, keeping the one the process has.
_FAIR_POLICIES: Final = frozenset(
    getattr(os, name) for name in ("SCHED_OTHER", "SCHED_BATCH") if hasattr(os, name)
)

#: The bit ``sched_getscheduler`` adds to the policy of a process whose
#: children go back to the normal policy, and the ``sched_attr`` flag that
#: keeps it.
_RESET_ON_FORK: Final = getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
_FLAG_RESET_ON_FORK: Final = 0x01

#: Policies by number, for the log.
_POLICY_NAMES: Final = {
    0: "SCHED_OTHER",
    1: "SCHED_FIFO",
    2: "SCHED_RR",
    3: "SCHED_BATCH",
    5: "SCHED_IDLE",
    6: "SCHED_DEADLINE",
}


class _SchedAttr(ctypes.Structure):
    # struct sched_attr, as in the kernel's include/uapi/linux/sched/types.h
    # (the first version, 48 bytes, and the utilisation clamps, 56).
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


def request_short_slice(microseconds: int = DEFAULT_SLICE_US) -> bool:
    """
    Ask the scheduler for a time slice of ``microseconds`` for this process
    (its one thread), keeping its policy and its nice value.

    Only under the normal (``SCHED_OTHER``) or batch policy: a process
    started under a real-time or deadline policy keeps it, with no slice
    (``sched_setattr`` sets a policy with the slice, and would move it back
    to the normal one).

    :param microseconds: the slice; the kernel clamps it to 100 µs - 100 ms.
    :returns: whether the kernel took it; ``False`` where the call does not
        exist (not Linux, an unknown machine, a kernel before 6.12 that
        ignores or refuses it) and under a policy without slices.
    """
    number = _SYS_SCHED_SETATTR.get(platform.machine())
    if not sys.platform.startswith("linux") or number is None:
        return False
    try:
        current = os.sched_getscheduler(0)
    except OSError:
        return False
    policy = current & ~_RESET_ON_FORK
    if policy not in _FAIR_POLICIES:
        log.info(
            "short scheduler slice not asked for: the process runs under "
            "scheduling policy {policy}, which it keeps",
            policy=_POLICY_NAMES.get(policy, str(policy)),
        )
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    attr = _SchedAttr()
    attr.size = ctypes.sizeof(_SchedAttr)
    attr.sched_policy = policy
    if current & _RESET_ON_FORK:
        attr.sched_flags = _FLAG_RESET_ON_FORK
    attr.sched_nice = os.getpriority(os.PRIO_PROCESS, 0)
    attr.sched_runtime = microseconds * 1000
    if libc.syscall(number, 0, ctypes.byref(attr), 0) != 0:
        log.info(
            "short scheduler slice not available: {error}",
            error=os.strerror(ctypes.get_errno()),
        )
        return False
    return current_slice_us() == microseconds


def current_slice_us() -> int | None:
    """
    This thread's scheduler slice, as the kernel reports it.

    :returns: microseconds, or ``None`` where it cannot be read; kernels
        before 6.12 report 0.
    """
    number = _SYS_SCHED_GETATTR.get(platform.machine())
    if not sys.platform.startswith("linux") or number is None:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    attr = _SchedAttr()
    size = ctypes.sizeof(_SchedAttr)
    if libc.syscall(number, 0, ctypes.byref(attr), size, 0) != 0:
        return None
    return int(attr.sched_runtime) // 1000


def tune_agent_process(slice_us: int = DEFAULT_SLICE_US) -> None:
    """
    Both settings, for a port agent in a process of its own, once it has
    started (its listeners bound, its link started): freeze what exists,
    and ask for a slice of ``slice_us`` (0: leave the kernel's).  What was
    done is logged.

    :param slice_us: the slice, microseconds, or 0.
    """
    frozen = freeze_startup_objects()
    took = request_short_slice(slice_us) if slice_us else False
    log.info(
        "process tuned for latency: {frozen} start-up objects exempt from "
        "garbage collection; scheduler slice {slice}",
        frozen=frozen,
        slice=f"{slice_us} us" if took else "the kernel's default",
    )
