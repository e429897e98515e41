"""
Stage stamps of every relayed message in a port-agent process, for
``portagent_latency_stages.py``: put this directory first on the agent's
``PYTHONPATH`` and name a file in ``INSTRUMENTD_LATENCY_PROBE``.

Each message read from the instrument is stamped (``time.monotonic_ns``,
the clock the benchmark's source stamps it with) when the reactor's poll
went to sleep and returned, when the read reached the agent, and when the
send to the data client began and ended, with the CPU it ran on and the
collector's generation-0 count.  Beside them: every turn of the reactor,
every collection (``gc.callbacks``), every run of the reactor's timers that
took over 3 µs, every datalog write-out.  The file is written as JSON when
the process exits.  Stamps go into ``array`` buffers, so the probe itself
allocates nothing the collector tracks.  Nothing is done for other
processes (the variable is taken out of the environment).
"""

from __future__ import annotations

import os
import sys

_path = os.environ.pop("INSTRUMENTD_LATENCY_PROBE", None)
if _path and "port-agent" in " ".join(sys.argv):
    import atexit
    import ctypes
    import gc
    import json
    import time
    from array import array
    from typing import Any

    _mono = time.monotonic_ns
    _cpu = ctypes.CDLL(None).sched_getcpu
    _count = gc.get_count
    _turns = array("q")  # poll entered, poll returned, events, cpu
    _messages = array("q")  # stamp, poll in, poll out, read, cpu, gen0, send, sent
    _collections = array("q")  # time, 1 start / 0 stop, generation
    _timers = array("q")  # start, end
    _writes = array("q")  # start, end, bytes
    _now: dict[str, int] = {"in": 0, "out": 0, "cpu": -1, "stamp": -1}

    def _collected(phase: str, info: dict[str, Any]) -> None:
        _collections.extend((_mono(), phase == "start", info["generation"]))

    gc.callbacks.append(_collected)

    class _Poller:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def poll(self, *args: Any) -> Any:
            _now["in"] = began = _mono()
            events = self.inner.poll(*args)
            _now["out"] = ended = _mono()
            _now["cpu"] = cpu = _cpu()
            _turns.extend((began, ended, len(events), cpu))
            return events

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    from twisted.internet import base

    from instrumentd.portagent import agent, datalog, outlet, router

    try:
        from instrumentd.reactor import InstrumentdReactor as _Reactor
    except ImportError:  # older trees: the agent's own reactor
        from instrumentd.portagent.reactor import (  # type: ignore[no-redef]
            AgentReactor as _Reactor,
        )

    _do_poll = _Reactor.doPoll

    def _probed_poll(self: Any, timeout: float | None) -> None:
        if not isinstance(self._poller, _Poller):
            self._poller = _Poller(self._poller)
        _do_poll(self, timeout)

    _Reactor.doPoll = _probed_poll  # type: ignore[method-assign]
    _Reactor.doIteration = _probed_poll  # type: ignore[method-assign]

    _run_timers = base.ReactorBase.runUntilCurrent

    def _probed_timers(self: Any) -> None:
        began = _mono()
        _run_timers(self)
        ended = _mono()
        if ended - began > 3000:
            _timers.extend((began, ended))

    base.ReactorBase.runUntilCurrent = _probed_timers  # type: ignore[method-assign]

    _write_out = datalog.DataLog._write_out

    def _probed_write_out(self: Any) -> None:
        size = len(self._buffer)
        began = _mono()
        _write_out(self)
        _writes.extend((began, _mono(), size))

    datalog.DataLog._write_out = _probed_write_out  # type: ignore[method-assign]

    # Where the read reaches the agent: the router's relay_read (older
    # trees: the agent's _instrument_data).
    _reader: Any = getattr(router.Router, "relay_read", None)
    _reader_owner: Any = router.Router
    _reader_name = "relay_read"
    if _reader is None:  # older trees
        _reader = agent.PortAgent._instrument_data  # type: ignore[attr-defined]
        _reader_owner, _reader_name = agent.PortAgent, "_instrument_data"

    def _probed_read(self: Any, data: bytes) -> None:
        at = _mono()
        start = data.find(b"L")
        _now["stamp"] = int(data[start + 1 : start + 20]) if start >= 0 else -1
        _now["read"] = at
        _now["gen0"] = _count()[0]
        _reader(self, data)

    setattr(_reader_owner, _reader_name, _probed_read)

    def _stamped(send: Any) -> Any:
        def _probed_send(*args: Any) -> None:
            began = _mono()
            send(*args)
            _messages.extend(
                (
                    _now["stamp"],
                    _now["in"],
                    _now["out"],
                    _now["read"],
                    _now["cpu"],
                    _now["gen0"],
                    began,
                    _mono(),
                )
            )

        return _probed_send

    # The send to an idle client: send_at_once as the outlet calls it
    # (older trees: the outlet's _send_now).
    if hasattr(outlet, "send_at_once"):
        outlet.send_at_once = _stamped(outlet.send_at_once)
    else:  # older trees
        outlet.ClientOutlet._send_now = _stamped(  # type: ignore[attr-defined]
            outlet.ClientOutlet._send_now  # type: ignore[attr-defined]
        )

    def _dump() -> None:
        def rows(values: array[int], width: int) -> list[list[int]]:
            return [list(values[i : i + width]) for i in range(0, len(values), width)]

        with open(_path, "w") as out:
            json.dump(
                {
                    "turns": rows(_turns, 4),
                    "messages": rows(_messages, 8),
                    "collections": rows(_collections, 3),
                    "timers": rows(_timers, 2),
                    "writes": rows(_writes, 3),
                },
                out,
            )

    atexit.register(_dump)
