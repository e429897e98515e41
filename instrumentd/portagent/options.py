# -*- test-case-name: tests.test_portagent_options -*-
"""
Command-line options of ``twistd instrumentd port-agent`` and the validated
configuration they produce.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from instrumentd.portagent.access import listener_reach, read_token_file
from instrumentd.portagent.tuning import DEFAULT_SLICE_US

__all__ = [
    "CLIENT_BUFFER",
    "CLIENT_MEMORY",
    "CLIENT_STALL_TIMEOUT",
    "DEFAULT_CLIENT_BUFFER",
    "DEFAULT_CLIENT_MEMORY",
    "DEFAULT_CLIENT_STALL_TIMEOUT",
    "DEFAULT_LISTENER",
    "DISCONNECT_GRACE",
    "HEARTBEAT",
    "LISTENER_KINDS",
    "MAX_RECONNECT_DELAY",
    "MIN_CLIENT_BUFFER",
    "PARENT_PID",
    "ROTATE_SIZE",
    "SCHED_SLICE",
    "Bounds",
    "PortAgentConfig",
    "PortAgentOptions",
    "demo_recording",
    "parse_size",
]

#: The smallest --client-buffer.  The buffer counts what queues once the
#: operating system and Twisted have buffered what they can (about 64 KiB
#: more); below a few reads' worth, a client reading at full speed would
#: be cut off by the burst of a single large read.
MIN_CLIENT_BUFFER: Final = 256 << 10


@dataclass(frozen=True)
class Bounds:
    """
    The valid values of one number: ``minimum`` to ``maximum``, and also 0
    when ``zero_is_off``.  Every number a port agent takes, from its options
    or its command port, is checked against one of these, so that a typing
    slip (``heartbeat_interval 1e-9``: ten thousand heartbeats a second) is
    refused with the range rather than obeyed.

    :ivar minimum: the smallest value (other than an allowed 0).
    :ivar maximum: the largest value.
    :ivar unit: ``"seconds"`` or ``"bytes"``, for messages.
    :ivar zero_is_off: whether 0 is also valid and means "off".
    """

    minimum: float
    maximum: float
    unit: str
    zero_is_off: bool = False

    def describe(self) -> str:
        """
        The valid values in words, e.g. ``0 (off), or 0.1 to 86400 seconds``.
        """
        span = f"{_plain(self.minimum)} to {_plain(self.maximum)} {self.unit}".rstrip()
        return f"0 (off), or {span}" if self.zero_is_off else span

    def check(self, text: str, value: float) -> None:
        """
        :param text: the value as given, for the message.
        :param value: the value.
        :raises ValueError: naming the value and the valid range, if it is
            outside.
        """
        if self.zero_is_off and value == 0:
            return
        if not (self.minimum <= value <= self.maximum):
            raise ValueError(f"{text!r} is out of range; valid: {self.describe()}")

    def seconds(self, text: str) -> float:
        """
        Parse and check a number of seconds (a decimal, fractions allowed).

        :raises ValueError: naming the value and the valid range.
        """
        try:
            value = float(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a number; valid: {self.describe()}"
            ) from None
        if math.isnan(value) or math.isinf(value):
            raise ValueError(
                f"{text!r} is not a finite number; valid: {self.describe()}"
            )
        self.check(text, value)
        return value


def _plain(number: float) -> str:
    # Whole numbers in full (4194304, not 4.1943e+06); others as short as
    # they go.
    return str(int(number)) if number == int(number) else f"{number:g}"


#: Seconds between heartbeats (``--heartbeat``, ``heartbeat_interval``).
#: More than ten a second would only fill the datalog.
HEARTBEAT: Final = Bounds(0.1, 86_400, "seconds", zero_is_off=True)
#: ``--disconnect-grace``.
DISCONNECT_GRACE: Final = Bounds(0, 86_400, "seconds")
#: ``--max-reconnect-delay``: below 0.1 s a dead device server would be
#: hammered.
MAX_RECONNECT_DELAY: Final = Bounds(0.1, 86_400, "seconds")
#: ``--rotate-size``: below 1 MiB a busy instrument would make a pile of
#: tiny files.
ROTATE_SIZE: Final = Bounds(1 << 20, 1 << 40, "bytes", zero_is_off=True)
#: ``--parent-pid``: Linux's largest process id is 2**22.
PARENT_PID: Final = Bounds(1, 1 << 22, "")
#: ``--client-buffer``.
CLIENT_BUFFER: Final = Bounds(MIN_CLIENT_BUFFER, 1 << 30, "bytes")
#: ``--client-memory``.
CLIENT_MEMORY: Final = Bounds(MIN_CLIENT_BUFFER, 64 << 30, "bytes")
#: ``--client-stall-timeout``.
CLIENT_STALL_TIMEOUT: Final = Bounds(1, 3600, "seconds")
#: ``--sched-slice``: what Linux accepts (100 µs to 100 ms), or 0 to leave
#: the kernel's default.
SCHED_SLICE: Final = Bounds(100, 100_000, "microseconds", zero_is_off=True)

#: What one client may fall behind by: large, so that a client that keeps
#: up on average survives the agent outrunning it for a while (at the
#: hundreds of MB/s of a local flood, 4 MiB lasted about 10 ms).
DEFAULT_CLIENT_BUFFER: Final = 64 << 20
#: What all clients together may fall behind by: the bound on the agent's
#: memory for client queues.
DEFAULT_CLIENT_MEMORY: Final = 256 << 20
#: How long a client may take nothing while data waits before it is cut
#: off: a stalled client is found by this, not by filling its buffer.
DEFAULT_CLIENT_STALL_TIMEOUT: Final = 30.0

#: Listeners bind to loopback on an ephemeral port unless told otherwise.
DEFAULT_LISTENER: Final = "tcp:0:interface=127.0.0.1"
LISTENER_KINDS: Final = ("data", "command", "sniff", "raw")
#: Every listener kind: the four above, on by default, and the RFC 2217
#: serial port server, off unless asked for.
ALL_LISTENER_KINDS: Final = (*LISTENER_KINDS, "rfc2217")
ROTATIONS: Final = ("daily", "hourly", "none")
#: The listeners that may be left without the token (read-mostly, and the
#: data port is what unmodified OOI drivers use).
TOKENLESS_KINDS: Final = ("data", "sniff")

_SIZE = re.compile(r"^\s*(\d{1,20})\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """
    Parse a byte count such as ``4194304``, ``4MiB``, ``512k`` or ``1G``
    (binary units).

    :raises ValueError: if the text is not a size.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a size in bytes (e.g. 4194304, 512KiB, 4MiB)"
        )
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _UNITS[unit]


def demo_recording() -> Path:
    """
    The datalog shipped with instrumentd: a recording of a Sea-Bird SBE 37-SMP
    in autosample mode, used by ``--instrument demo``.
    """
    return Path(__file__).resolve().parent.parent / "data" / "sbe37smp-demo.datalog"


@dataclass(frozen=True)
class PortAgentConfig:
    """
    Everything a port agent needs to run; built from options or from code.

    :ivar name: the instrument's reference designator.
    :ivar instrument: client endpoint string for the instrument link.
    :ivar listeners: for each listener kind (``data``, ``command``,
        ``sniff``, ``raw``, ``rfc2217``), its server endpoint strings (empty
        or absent: none).
    :ivar heartbeat: seconds between heartbeats to data clients; 0 is off.
    :ivar disconnect_grace: seconds the link must stay down before
        ``DISCONNECTED`` is announced.
    :ivar max_reconnect_delay: cap of the reconnect backoff, seconds.
    :ivar datalog_dir: where the datalog is written.
    :ivar rotate: ``daily``, ``hourly`` or ``none`` (UTC).
    :ivar rotate_size: rotate when the file passes this size; 0 is off.
    :ivar client_buffer: bytes of unsent data one client may have queued
        before it is cut off.
    :ivar client_memory: bytes of unsent data all clients together may have
        queued; past it the client furthest behind is cut off.
    :ivar client_stall_timeout: seconds a client may take nothing while data
        waits for it before it is cut off.
    :ivar status_file: where to write the status JSON once listening.
    :ivar parent_pid: exit when this process dies.
    :ivar token_file: the file holding the shared token; ``None`` for no
        token.
    :ivar tokenless: listener kinds (``data``, ``sniff``) that take no token
        even when there is one.
    :ivar allow_insecure: start listeners that are reachable beyond loopback
        with neither TLS nor a token.
    :ivar sched_slice: the scheduler slice, in microseconds, the agent's
        own process asks for (see :mod:`instrumentd.portagent.tuning`); 0
        leaves the kernel's default.
    """

    name: str
    instrument: str
    listeners: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict.fromkeys(LISTENER_KINDS, (DEFAULT_LISTENER,))
    )
    heartbeat: float = 10.0
    disconnect_grace: float = 10.0
    max_reconnect_delay: float = 60.0
    datalog_dir: str = "datalog"
    rotate: str = "daily"
    rotate_size: int = 0
    client_buffer: int = DEFAULT_CLIENT_BUFFER
    client_memory: int = DEFAULT_CLIENT_MEMORY
    client_stall_timeout: float = DEFAULT_CLIENT_STALL_TIMEOUT
    status_file: str | None = None
    parent_pid: int | None = None
    token_file: str | None = None
    tokenless: frozenset[str] = frozenset()
    allow_insecure: bool = False
    sched_slice: int = DEFAULT_SLICE_US

    def gated(self, kind: str) -> bool:
        """
        Whether clients of a listener kind must present the token first.
        """
        return self.token_file is not None and kind not in self.tokenless

    def public(self) -> dict[str, object]:
        """
        The configuration as JSON-ready data, without anything secret
        (endpoint options that look like credentials are masked).
        """
        return {
            "name": self.name,
            "instrument": _mask_secrets(self.instrument),
            "listeners": {
                k: [_mask_secrets(v) for v in vs] for k, vs in self.listeners.items()
            },
            "heartbeat": self.heartbeat,
            "disconnect_grace": self.disconnect_grace,
            "max_reconnect_delay": self.max_reconnect_delay,
            "datalog_dir": self.datalog_dir,
            "rotate": self.rotate,
            "rotate_size": self.rotate_size,
            "client_buffer": self.client_buffer,
            "client_memory": self.client_memory,
            "client_stall_timeout": self.client_stall_timeout,
            "token_file": self.token_file,
            "tokenless": sorted(self.tokenless),
            "allow_insecure": self.allow_insecure,
            "sched_slice": self.sched_slice,
        }


_SECRET = re.compile(r"(?i)\b(password|passwd|secret|token|privatekey|key)=([^:]*)")


def _mask_secrets(description: str) -> str:
    return _SECRET.sub(r"\1=***", description)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _known_types(server: bool) -> list[str]:
    from twisted.internet.interfaces import (
        IStreamClientEndpointStringParserWithReactor,
        IStreamServerEndpointStringParser,
    )
    from twisted.plugin import getPlugins

    builtin = ["tcp", "unix", "ssl", "tls"]
    interface = (
        IStreamServerEndpointStringParser
        if server
        else IStreamClientEndpointStringParserWithReactor
    )
    extra = [getattr(p, "prefix", "") for p in getPlugins(interface)]
    return sorted({*builtin, *(e for e in extra if e)})


def check_client_endpoint(description: str) -> None:
    """
    Check that a client endpoint string parses, without connecting.

    :raises ValueError: naming what is wrong.
    """
    if description == "demo":
        if not demo_recording().is_file():
            raise ValueError(
                f"'demo': the built-in recording is missing ({demo_recording()}); "
                "reinstall instrumentd"
            )
        return
    try:
        clientFromString(MemoryReactorClock(), description)
    except Exception as e:
        raise ValueError(_endpoint_problem(description, e, server=False)) from None


def check_server_endpoint(description: str) -> None:
    """
    Check that a server endpoint string parses, without listening.

    :raises ValueError: naming what is wrong.
    """
    try:
        serverFromString(MemoryReactorClock(), description)
    except Exception as e:
        raise ValueError(_endpoint_problem(description, e, server=True)) from None


def _endpoint_problem(description: str, error: Exception, server: bool) -> str:
    text = str(error) or type(error).__name__
    if "Unknown endpoint type" in text or isinstance(error, KeyError):
        kind = description.split(":", 1)[0]
        known = ", ".join(_known_types(server))
        text = f"unknown endpoint type {kind!r}; known types: {known}"
    return f"{description!r}: {text}"


class PortAgentOptions(usage.Options):
    """
    Options of ``twistd instrumentd port-agent``.
    """

    synopsis = "--name NAME --instrument ENDPOINT [options]"
    longdesc = (
        "Hold one instrument's link, timestamp and frame every byte read as "
        "port-agent packets, record them all in a rotating datalog, and share "
        "the instrument with data, command, sniff and raw clients. Listener "
        "options may be repeated; 'none' turns a listener off. Instrument "
        "endpoints: tcp:host=H:port=P, serial:DEVICE[:baudrate=9600...], "
        "datalog:FILE[,FILE...][:speed=X], or 'demo' (a built-in SBE 37-SMP "
        "recording, replayed in a loop)."
    )
    optParameters = [
        ["name", None, None, "Reference designator of the instrument (required)."],
        [
            "instrument",
            None,
            None,
            "Client endpoint string of the instrument link (required).",
        ],
        [
            "heartbeat",
            None,
            "10",
            "Seconds between heartbeats to data clients; 0 turns them off.",
        ],
        [
            "disconnect-grace",
            None,
            "10",
            "Seconds the link must stay down before DISCONNECTED is announced.",
        ],
        [
            "max-reconnect-delay",
            None,
            "60",
            "Cap of the reconnect backoff, in seconds.",
        ],
        ["datalog-dir", None, "datalog", "Directory of the binary datalog."],
        ["rotate", None, "daily", "Datalog rotation in UTC: daily, hourly or none."],
        [
            "rotate-size",
            None,
            "0",
            "Also rotate when the datalog passes this size (e.g. 100MiB); 0 is off.",
        ],
        [
            "client-buffer",
            None,
            "64MiB",
            "Unsent bytes one client may have queued before it is cut off.",
        ],
        [
            "client-memory",
            None,
            "256MiB",
            "Unsent bytes all clients together may have queued; past it the "
            "client furthest behind is cut off.",
        ],
        [
            "client-stall-timeout",
            None,
            "30",
            "Seconds a client may take nothing while data waits before it is cut off.",
        ],
        [
            "sched-slice",
            None,
            str(DEFAULT_SLICE_US),
            "Microseconds of CPU the agent's process asks the scheduler for at a "
            "time (Linux 6.12+): short, so a message is relayed soon after it "
            "arrives on a busy machine; 0 leaves the kernel's default.",
        ],
        [
            "status-file",
            None,
            None,
            "Write a JSON status file here once every listener is bound.",
        ],
        ["parent-pid", None, None, "Exit cleanly soon after this process dies."],
        [
            "token-file",
            None,
            None,
            "Clients must send the first line of this file as their first line "
            "(see --tokenless).",
        ],
    ]
    optFlags = [
        [
            "allow-insecure",
            None,
            "Start listeners reachable beyond loopback with neither TLS nor a token.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._listeners: dict[str, list[str]] = {
            kind: [] for kind in ALL_LISTENER_KINDS
        }
        self._tokenless: set[str] = set()

    def _listener(self, kind: str, description: str) -> None:
        if description != "none":
            try:
                check_server_endpoint(description)
            except ValueError as e:
                raise usage.UsageError(f"--{kind}-port: {e}") from None
        self._listeners[kind].append(description)

    def opt_data_port(self, description: str) -> None:
        """
        Server endpoint for data clients (packets out, instrument bytes in); default tcp:0:interface=127.0.0.1; may be repeated; 'none' turns it off.
        """
        self._listener("data", description)

    def opt_command_port(self, description: str) -> None:
        """
        Server endpoint for the command port (one line in, one line out); default tcp:0:interface=127.0.0.1; may be repeated; 'none' turns it off.
        """
        self._listener("command", description)

    def opt_sniff_port(self, description: str) -> None:
        """
        Server endpoint for read-only monitors (every packet as a text line); default tcp:0:interface=127.0.0.1; may be repeated; 'none' turns it off.
        """
        self._listener("sniff", description)

    def opt_raw_port(self, description: str) -> None:
        """
        Server endpoint for an operator's terminal (raw bytes both ways); default tcp:0:interface=127.0.0.1; may be repeated; 'none' turns it off.
        """
        self._listener("raw", description)

    def opt_tokenless(self, kind: str) -> None:
        """
        With --token-file, let clients of this listener (data or sniff) in without the token; may be repeated.
        """
        if kind not in TOKENLESS_KINDS:
            raise usage.UsageError(
                f"--tokenless: {kind!r} is not one of {', '.join(TOKENLESS_KINDS)} "
                "(the command, raw and RFC 2217 ports always take the token)"
            )
        self._tokenless.add(kind)

    def opt_rfc2217_port(self, description: str) -> None:
        """
        Server endpoint for RFC 2217 clients (a serial port over telnet, for instrument makers' software); off unless given; may be repeated.
        """
        self._listener("rfc2217", description)

    def opt_version(self) -> None:
        """
        Print the instrumentd version and exit.
        """
        from instrumentd import __version__

        print(f"instrumentd {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        name = self["name"]
        if not name:
            raise usage.UsageError(
                "--name is required: the instrument's reference designator"
            )
        if not _NAME.match(name):
            raise usage.UsageError(
                f"--name: {name!r} must be 1-128 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (it is used in file names)"
            )
        instrument = self["instrument"]
        if not instrument:
            raise usage.UsageError(
                "--instrument is required: e.g. tcp:host=10.0.0.5:port=4001, "
                "serial:/dev/ttyUSB0:baudrate=9600, datalog:FILE, or demo"
            )
        try:
            check_client_endpoint(instrument)
        except ValueError as e:
            raise usage.UsageError(f"--instrument: {e}") from None
        for option, bounds in (
            ("heartbeat", HEARTBEAT),
            ("disconnect-grace", DISCONNECT_GRACE),
            ("max-reconnect-delay", MAX_RECONNECT_DELAY),
            ("client-stall-timeout", CLIENT_STALL_TIMEOUT),
        ):
            try:
                self[option] = bounds.seconds(str(self[option]))
            except ValueError as e:
                raise usage.UsageError(f"--{option}: {e}") from None
        try:
            self["sched-slice"] = int(SCHED_SLICE.seconds(str(self["sched-slice"])))
        except ValueError as e:
            raise usage.UsageError(f"--sched-slice: {e}") from None
        if self["rotate"] not in ROTATIONS:
            raise usage.UsageError(
                f"--rotate: {self['rotate']!r} is not one of {', '.join(ROTATIONS)}"
            )
        memory_text = self["client-memory"]
        for option, bounds in (
            ("rotate-size", ROTATE_SIZE),
            ("client-buffer", CLIENT_BUFFER),
            ("client-memory", CLIENT_MEMORY),
        ):
            try:
                size = parse_size(self[option])
                bounds.check(self[option], size)
            except ValueError as e:
                raise usage.UsageError(f"--{option}: {e}") from None
            self[option] = size
        if self["client-memory"] < self["client-buffer"]:
            raise usage.UsageError(
                f"--client-memory: {memory_text!r} is less than --client-buffer "
                f"({self['client-buffer']} bytes); valid: at least the client "
                "buffer"
            )
        status_file = self["status-file"]
        if status_file:
            directory = os.path.dirname(os.path.abspath(status_file))
            if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
                raise usage.UsageError(
                    f"--status-file: {status_file!r}: directory {directory!r} "
                    "does not exist or is not writable"
                )
        if self["parent-pid"] is not None:
            text = self["parent-pid"]
            try:
                self["parent-pid"] = int(text)
                PARENT_PID.check(text, self["parent-pid"])
            except ValueError:
                raise usage.UsageError(
                    f"--parent-pid: {text!r} is not a process id; valid: "
                    f"{PARENT_PID.describe()}"
                ) from None
        self._check_access()

    def _check_access(self) -> None:
        token_file = self["token-file"]
        if token_file:
            try:
                read_token_file(token_file)
            except ValueError as e:
                raise usage.UsageError(f"--token-file: {e}") from None
        elif self._tokenless:
            raise usage.UsageError("--tokenless: only meaningful with --token-file")
        if self["allow-insecure"]:
            return
        for kind, given in self._listeners.items():
            for description in given or [DEFAULT_LISTENER] * (kind in LISTENER_KINDS):
                if description == "none":
                    continue
                reach = listener_reach(description)
                if reach.local or reach.encrypted:
                    continue
                if token_file and kind not in self._tokenless:
                    continue
                raise usage.UsageError(
                    f"--{kind}-port: {description!r} listens beyond loopback "
                    f"({reach.where}) with neither TLS nor a token; use an ssl: or "
                    "mtls: endpoint, --token-file, a loopback interface, or say "
                    "--allow-insecure"
                )

    def config(self) -> PortAgentConfig:
        """
        The validated configuration.
        """
        listeners = {
            kind: tuple(d for d in given if d != "none")
            if given
            else (DEFAULT_LISTENER,) * (kind in LISTENER_KINDS)
            for kind, given in self._listeners.items()
        }
        return PortAgentConfig(
            name=self["name"],
            instrument=self["instrument"],
            listeners=listeners,
            heartbeat=self["heartbeat"],
            disconnect_grace=self["disconnect-grace"],
            max_reconnect_delay=self["max-reconnect-delay"],
            datalog_dir=self["datalog-dir"],
            rotate=self["rotate"],
            rotate_size=self["rotate-size"],
            client_buffer=self["client-buffer"],
            client_memory=self["client-memory"],
            client_stall_timeout=self["client-stall-timeout"],
            status_file=self["status-file"],
            parent_pid=self["parent-pid"],
            token_file=self["token-file"],
            tokenless=frozenset(self._tokenless),
            allow_insecure=bool(self["allow-insecure"]),
            sched_slice=self["sched-slice"],
        )
