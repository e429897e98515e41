# -*- test-case-name: tests.test_launcher -*-
"""
Start a port agent as a child process and learn when it is ready.

:func:`launch_port_agent` runs ``twistd -n instrumentd port-agent ...`` with
the same Python interpreter as the caller, tells the agent to write a status
file into a private temporary directory and to exit when the caller dies
(``--parent-pid``), and returns a Deferred that fires with a
:class:`PortAgentProcess` once every listener is bound.

Readiness is an event, not a guess: the agent writes its status file
atomically (a temporary file renamed into place) once every listener is bound
and its reactor runs, and on Linux the launcher is told by inotify the moment
the rename happens.  Where inotify cannot be used (other systems, a reactor
without file descriptors, or the per-user limit of inotify instances is
reached) there is no portable file-system notification, and the agent has no
other channel to say it is ready (its stdout is twistd's log, whose wording
is not a contract).  The launcher then looks for the file on a short timer
(every :data:`POLL_INTERVAL` seconds, a stat call) and also whenever the
child writes output; the timer runs only while a launch is pending, and the
log says when this fallback is used.

If the child exits before it is ready, or is not ready within the timeout,
the Deferred fails with :class:`PortAgentLaunchError`, which carries the exit
status and the tails of the child's stderr and stdout (twistd prints usage
errors and, with ``-n``, its log to stdout).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall, IProcessTransport, IReactorFDSet
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = [
    "PortAgentLaunchError",
    "PortAgentProcess",
    "describe_exit",
    "launch_port_agent",
    "port_agent_command",
]

#: How much of the child's stderr and of its stdout is kept for error reports.
TAIL_BYTES: Final = 8 * 1024

#: Seconds :meth:`PortAgentProcess.stop` waits after SIGTERM before SIGKILL.
STOP_TIMEOUT: Final = 10.0

#: Seconds between looks for the status file where inotify is missing.
POLL_INTERVAL: Final = 0.05

STATUS_FILE_NAME: Final = "status.json"

# twistd has no ``__main__``, and ``python -m twisted`` is ``twist``, which
# has no ``-n``/``--pidfile``; the console script next to sys.executable may
# not exist (user installs, zipapps).  Running its entry point with the
# caller's own interpreter always works.  ``argv[0]`` names it in messages.
_TWISTD: Final = (
    "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"
)

#: Listener kinds, in the order the agent reports them.
_KINDS: Final = ("data", "command", "sniff", "raw")

log = Logger()


class PortAgentLaunchError(Exception):
    """
    A port agent could not be started: it exited before it was ready, or it
    was not ready in time (and was stopped).

    :ivar exit_code: the child's exit status as in :mod:`subprocess`: the
        exit code, or minus the signal number that ended it; ``None`` if it
        never ran.
    :ivar stderr_tail: the last few KiB of its stderr, decoded.
    :ivar stdout_tail: the last few KiB of its stdout (twistd's log and
        usage errors), decoded.
    :ivar reason: what went wrong, in words.
    """

    def __init__(
        self,
        exit_code: int | None,
        stderr_tail: str,
        reason: str = "exited before it was ready",
        stdout_tail: str = "",
    ) -> None:
        """
        The parameters become the attributes of the same names.
        """
        super().__init__(exit_code, stderr_tail)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.stdout_tail = stdout_tail
        self.reason = reason

    def __str__(self) -> str:
        lines = [f"port agent {self.reason} ({describe_exit(self.exit_code)})"]
        for label, tail in (("stderr", self.stderr_tail), ("stdout", self.stdout_tail)):
            text = _last_lines(tail, 20)
            if text:
                lines.append(f"--- end of its {label} ---")
                lines.append(text)
        return "\n".join(lines)


def describe_exit(status: int | None) -> str:
    """
    Say how a process ended, e.g. ``exit code 1`` or ``killed by SIGKILL``.

    :param status: exit code, or minus a signal number, or ``None``.
    """
    if status is None:
        return "it did not run"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    return f"exit code {status}"


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-count:])


def _exit_status(reason: Failure) -> int:
    value = reason.value
    if isinstance(value, ProcessTerminated):
        if value.signal is not None:
            return -int(value.signal)
        if value.exitCode is not None:
            return int(value.exitCode)
    if isinstance(value, ProcessDone):
        return 0
    return -1


class _Tail:
    """
    The last ``limit`` bytes of a stream.
    """

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self._limit = limit
        self._buffer = bytearray()

    def add(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > self._limit:
            del self._buffer[: -self._limit]

    def text(self) -> str:
        return self._buffer.decode("utf-8", "replace")


class _AgentProtocol(ProcessProtocol):
    """
    Keeps the tails of the child's output and reports its output and exit.
    """

    def __init__(
        self, on_output: Callable[[], None], on_exit: Callable[[int], None]
    ) -> None:
        self.stdout = _Tail()
        self.stderr = _Tail()
        self._on_output = on_output
        self._on_exit = on_exit

    def connectionMade(self) -> None:
        # The agent reads nothing; don't leave it a pipe that never closes.
        self.transport.closeStdin()  # type: ignore[union-attr]

    def outReceived(self, data: bytes) -> None:
        self.stdout.add(data)
        self._on_output()

    def errReceived(self, data: bytes) -> None:
        self.stderr.add(data)
        self._on_output()

    def processEnded(self, reason: Failure) -> None:
        self._on_exit(_exit_status(reason))


class PortAgentProcess:
    """
    A running port agent started by :func:`launch_port_agent`.

    :ivar pid: its process id.
    :ivar name: its name (the instrument's reference designator).
    :ivar ports: the first bound address of each listener kind (``data``,
        ``command``, ``sniff``, ``raw``, and ``rfc2217`` if it has one): a TCP port number, a UNIX socket
        path, or ``None`` when that listener is off.
    :ivar listeners: every bound address, by listener kind.
    :ivar status: the whole status file the agent wrote, as parsed JSON.
    :ivar status_file: where the agent wrote it, in a private directory
        that is removed once the agent has exited (before :attr:`ended`
        fires).
    :ivar exit_status: ``None`` while it runs; then its exit code, or minus
        the signal number that ended it.
    """

    def __init__(
        self,
        reactor: Any,
        transport: IProcessTransport,
        protocol: _AgentProtocol,
        name: str,
        status_file: str,
    ) -> None:
        self.pid: int = transport.pid
        self.name = name
        self.status_file = status_file
        self.ports: dict[str, int | str | None] = dict.fromkeys(_KINDS)
        self.listeners: dict[str, list[int | str]] = {}
        self.status: dict[str, Any] = {}
        self.exit_status: int | None = None
        self._reactor = reactor
        self._transport = transport
        self._protocol = protocol
        self._waiters: list[Deferred[int]] = []
        self._kill_call: IDelayedCall | None = None

    def __repr__(self) -> str:
        state = (
            "running" if self.exit_status is None else describe_exit(self.exit_status)
        )
        return (
            f"<PortAgentProcess {self.name} pid={self.pid} {state} ports={self.ports}>"
        )

    @property
    def ended(self) -> Deferred[int]:
        """
        A Deferred that fires with the exit status (see :attr:`exit_status`)
        when the agent exits, whatever the reason; never fails.  Each access
        gives a new Deferred, so one reader's callbacks cannot change what
        another gets.
        """
        if self.exit_status is not None:
            return succeed(self.exit_status)
        d: Deferred[int] = Deferred()
        self._waiters.append(d)
        return d

    @property
    def stdout_tail(self) -> str:
        """
        The last few KiB the agent wrote to stdout (its log, unless
        ``log_file`` was given).
        """
        return self._protocol.stdout.text()

    @property
    def stderr_tail(self) -> str:
        """
        The last few KiB the agent wrote to stderr.
        """
        return self._protocol.stderr.text()

    def signal(self, name: str) -> None:
        """
        Send a signal to the agent, if it is still running.

        :param name: the signal's name without ``SIG``, e.g. ``"TERM"``,
            ``"STOP"`` or ``"HUP"``.
        :raises ValueError: for a name that is not a signal.
        """
        try:
            number = signal.Signals["SIG" + name.upper()]
        except KeyError:
            raise ValueError(
                f"{name!r} is not a signal name (e.g. TERM, KILL, STOP)"
            ) from None
        if self.exit_status is None:
            with contextlib.suppress(ProcessExitedAlready):
                # Twisted maps only TERM, KILL and INT by name; a number works for all.
                self._transport.signalProcess(int(number))

    def stop(self, timeout: float = STOP_TIMEOUT) -> Deferred[int]:
        """
        Ask the agent to shut down (SIGTERM), and kill it (SIGKILL) if it has
        not exited within ``timeout`` seconds.

        :param timeout: seconds to wait before SIGKILL.
        :returns: a Deferred that fires with the exit status once it has
            exited; already fired if it had.
        """
        done = self.ended
        if self.exit_status is None and self._kill_call is None:
            self.signal("TERM")
            self._kill_call = self._reactor.callLater(timeout, self._kill)
        return done

    def _kill(self) -> None:
        self._kill_call = None
        log.warn(
            "port agent {name} (pid {pid}) ignored SIGTERM; killing it",
            name=self.name,
            pid=self.pid,
        )
        self.signal("KILL")

    def _exited(self, status: int, status_file_left: bool) -> None:
        self.exit_status = status
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        self._kill_call = None
        log.info(
            "port agent {name} (pid {pid}) ended: {how}{left}",
            name=self.name,
            pid=self.pid,
            how=describe_exit(status),
            status_file_left=status_file_left,
            left="; it left its status file behind (no orderly shutdown)"
            if status_file_left
            else "",
        )
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(status)


# -- watching for the status file -------------------------------------------


class _StatusWatch(Protocol):
    def stop(self) -> None: ...

    def check(self) -> None: ...


def _read_status(path: str) -> dict[str, Any] | None:
    """
    The status file's contents, or ``None`` if it is not there (yet).
    """
    try:
        with open(path, encoding="utf-8") as f:
            status = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(status, dict) or not isinstance(status.get("ports"), dict):
        return None
    return status


class _INotifyWatch:
    """
    Told by inotify when a file is renamed into, or written in, the status
    file's directory.
    """

    def __init__(
        self, reactor: Any, path: str, found: Callable[[dict[str, Any]], None]
    ) -> None:
        from twisted.internet import inotify
        from twisted.python.filepath import FilePath

        if not IReactorFDSet.providedBy(reactor):
            raise OSError("the reactor cannot watch file descriptors")
        self._path = path
        self._name = os.path.basename(path).encode(sys.getfilesystemencoding())
        self._found = found
        self._notifier: Any = inotify.INotify(reactor)
        try:
            self._notifier.watch(
                FilePath(os.path.dirname(path)),
                mask=inotify.IN_MOVED_TO | inotify.IN_CLOSE_WRITE,
                callbacks=[self._event],
            )
        except BaseException:
            self._notifier.loseConnection()
            raise
        self._notifier.startReading()

    def _event(self, _watch: object, path: Any, mask: int) -> None:
        if path.basename() == self._name:
            self.check()

    def check(self) -> None:
        status = _read_status(self._path)
        if status is not None:
            self._found(status)

    def stop(self) -> None:
        # Closes the inotify file descriptor at once.
        self._notifier.loseConnection()


class _PollingWatch:
    """
    Looks for the status file when the child writes output, and on a short
    timer (for systems without inotify).
    """

    def __init__(
        self, reactor: Any, path: str, found: Callable[[dict[str, Any]], None]
    ) -> None:
        self._path = path
        self._found = found
        self._loop = LoopingCall(self.check)
        self._loop.clock = reactor
        self._loop.start(POLL_INTERVAL, now=False)

    def check(self) -> None:
        status = _read_status(self._path)
        if status is not None:
            self._found(status)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()


def _watch_status_file(
    reactor: Any, path: str, found: Callable[[dict[str, Any]], None]
) -> _StatusWatch:
    try:
        return _INotifyWatch(reactor, path, found)
    except Exception as e:  # ImportError off Linux, OSError, INotifyError
        log.info(
            "inotify is not available ({error}); looking for {path} on a timer",
            error=str(e) or type(e).__name__,
            path=path,
        )
        return _PollingWatch(reactor, path, found)


# -- launching ---------------------------------------------------------------


class _Launch:
    """
    One launch: the child, the watch for its status file, the timeout, and
    the Deferred the caller waits on.
    """

    def __init__(self, reactor: Any, name: str, timeout: float) -> None:
        self._reactor = reactor
        self._name = name
        self._timeout = timeout
        prefix = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64]
        self.directory = tempfile.mkdtemp(prefix=f"instrumentd-{prefix}-")
        self.status_file = os.path.join(self.directory, STATUS_FILE_NAME)
        self.result: Deferred[PortAgentProcess] = Deferred(self._cancel)
        self._process: PortAgentProcess | None = None
        self._watch: _StatusWatch | None = None
        self._timeout_call: IDelayedCall | None = None
        self._shutdown_trigger: object = None
        self._failure: str | None = None
        self._pending = True

    def start(self, argv: list[str], env: dict[str, str] | None) -> None:
        try:
            self._watch = _watch_status_file(
                self._reactor, self.status_file, self._ready
            )
            protocol = _AgentProtocol(self._output, self._exited)
            transport = self._reactor.spawnProcess(protocol, argv[0], argv, env=env)
        except Exception as e:
            self._finish()
            self._remove_directory()
            error = PortAgentLaunchError(None, "", f"could not be started: {e}")
            error.__cause__ = e
            self.result.errback(error)
            return
        self._process = PortAgentProcess(
            self._reactor, transport, protocol, self._name, self.status_file
        )
        log.info(
            "started port agent {name} as pid {pid}",
            name=self._name,
            pid=self._process.pid,
        )
        self._timeout_call = self._reactor.callLater(self._timeout, self._timed_out)
        # Stop the agent in order when this reactor stops, rather than leave
        # it to notice our death (and leave our private directory behind).
        self._shutdown_trigger = self._reactor.addSystemEventTrigger(
            "before", "shutdown", self._reactor_stopping
        )

    def _reactor_stopping(self) -> Deferred[int] | None:
        self._shutdown_trigger = None
        if self._process is None:
            return None
        return self._process.stop()

    def _output(self) -> None:
        if self._pending and isinstance(self._watch, _PollingWatch):
            self._watch.check()

    def _ready(self, status: dict[str, Any]) -> None:
        if not self._pending or self._process is None:
            return
        self._finish()
        process = self._process
        process.status = status
        ports = status.get("ports", {})
        process.ports = {kind: ports.get(kind) for kind in _KINDS}
        if "rfc2217" in ports:
            process.ports["rfc2217"] = ports["rfc2217"]
        process.listeners = dict(status.get("listeners", {}))
        self.result.callback(process)

    def _timed_out(self) -> None:
        self._timeout_call = None
        self._give_up(f"was not ready within {self._timeout:g} s and was stopped")

    def _cancel(self, _: Deferred[PortAgentProcess]) -> None:
        # Deferred fails with CancelledError on our return; the child is
        # stopped and the directory removed once it has exited.
        self._give_up(None)

    def _give_up(self, reason: str | None) -> None:
        if not self._pending:
            return
        self._finish()
        self._failure = reason
        if self._process is not None:
            self._process.stop()

    def _finish(self) -> None:
        self._pending = False
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.cancel()
        self._timeout_call = None

    def _exited(self, status: int) -> None:
        process = self._process
        if process is None:  # spawnProcess itself failed: already reported
            return
        failed = self._pending or self._failure is not None
        was_pending = self._pending
        self._finish()
        if self._shutdown_trigger is not None:
            self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        # An agent removes its status file when it shuts down in order.
        left = os.path.exists(self.status_file)
        self._remove_directory()
        process._exited(status, left)
        if failed and not self.result.called:
            reason = "exited before it was ready" if was_pending else str(self._failure)
            self.result.errback(
                PortAgentLaunchError(
                    status,
                    process.stderr_tail,
                    reason,
                    process.stdout_tail,
                )
            )

    def _remove_directory(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _listener_arguments(kind: str, value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    if not values:
        values = ["none"]
    return [f"--{kind}-port={v}" for v in values]


def _option(name: str, value: object) -> list[str]:
    return [] if value is None else [f"--{name}={value}"]


def port_agent_command(
    *,
    name: str,
    instrument: str,
    status_file: str | None = None,
    parent_pid: int | None = None,
    datalog_dir: str | None = None,
    heartbeat: float | None = None,
    disconnect_grace: float | None = None,
    max_reconnect_delay: float | None = None,
    rotate: str | None = None,
    rotate_size: int | str | None = None,
    client_buffer: int | str | None = None,
    client_memory: int | str | None = None,
    client_stall_timeout: float | None = None,
    data_port: str | Sequence[str] | None = None,
    command_port: str | Sequence[str] | None = None,
    sniff_port: str | Sequence[str] | None = None,
    raw_port: str | Sequence[str] | None = None,
    log_file: str | None = None,
    rfc2217_port: str | Sequence[str] | None = None,
    token_file: str | None = None,
    tokenless: Sequence[str] = (),
    allow_insecure: bool = False,
    sched_slice: int | None = None,
) -> list[str]:
    """
    The command line that runs a port agent in the foreground with this
    Python interpreter.  Arguments are as for :func:`launch_port_agent`.

    :returns: the argument vector, interpreter first.
    """
    argv = [sys.executable, "-u", "-P", "-c", _TWISTD, "-n", "--pidfile="]
    argv += _option("logfile", log_file)
    argv += [
        "instrumentd",
        "port-agent",
        f"--name={name}",
        f"--instrument={instrument}",
    ]
    argv += _option("datalog-dir", datalog_dir)
    argv += _option("heartbeat", heartbeat)
    argv += _option("disconnect-grace", disconnect_grace)
    argv += _option("max-reconnect-delay", max_reconnect_delay)
    argv += _option("rotate", rotate)
    argv += _option("rotate-size", rotate_size)
    argv += _option("client-buffer", client_buffer)
    argv += _option("client-memory", client_memory)
    argv += _option("client-stall-timeout", client_stall_timeout)
    for kind, value in (
        ("data", data_port),
        ("command", command_port),
        ("sniff", sniff_port),
        ("raw", raw_port),
        ("rfc2217", rfc2217_port),
    ):
        argv += _listener_arguments(kind, value)
    argv += _option("token-file", token_file)
    argv += [f"--tokenless={kind}" for kind in tokenless]
    if allow_insecure:
        argv.append("--allow-insecure")
    argv += _option("sched-slice", sched_slice)
    argv += _option("status-file", status_file)
    argv += _option("parent-pid", parent_pid)
    return argv


def launch_port_agent(
    *,
    name: str,
    instrument: str,
    datalog_dir: str | None = None,
    heartbeat: float | None = None,
    disconnect_grace: float | None = None,
    max_reconnect_delay: float | None = None,
    rotate: str | None = None,
    rotate_size: int | str | None = None,
    client_buffer: int | str | None = None,
    client_memory: int | str | None = None,
    client_stall_timeout: float | None = None,
    data_port: str | Sequence[str] | None = None,
    command_port: str | Sequence[str] | None = None,
    sniff_port: str | Sequence[str] | None = None,
    raw_port: str | Sequence[str] | None = None,
    reactor: Any = None,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    log_file: str | None = None,
    rfc2217_port: str | Sequence[str] | None = None,
    token_file: str | None = None,
    tokenless: Sequence[str] = (),
    allow_insecure: bool = False,
    sched_slice: int | None = None,
) -> Deferred[PortAgentProcess]:
    """
    Start a port agent as a child process (``twistd -n instrumentd
    port-agent``, run by this Python interpreter) and wait until every one of
    its listeners is bound.

    The agent is given ``--parent-pid`` with this process's id, so it shuts
    down by itself if this process dies, and a ``--status-file`` in a private
    temporary directory, which is removed after it exits.  When the reactor
    stops, the agent is stopped first (as by :meth:`PortAgentProcess.stop`).
    The child runs in this process's current directory with ``python -P``:
    like the ``twistd`` script, it does not import from that directory.  Options left as
    ``None`` take the agent's defaults (listeners on ephemeral loopback TCP
    ports; the datalog under ``datalog`` in the current directory).

    :param name: the instrument's reference designator (``--name``).
    :param instrument: client endpoint string of the instrument link.
    :param datalog_dir: ``--datalog-dir``.
    :param heartbeat: ``--heartbeat``, seconds; 0 turns heartbeats off.
    :param disconnect_grace: ``--disconnect-grace``, seconds.
    :param max_reconnect_delay: ``--max-reconnect-delay``, seconds.
    :param rotate: ``--rotate``: ``daily``, ``hourly`` or ``none``.
    :param rotate_size: ``--rotate-size``: bytes, or a size like ``"100MiB"``.
    :param client_buffer: ``--client-buffer``: bytes, or a size like
        ``"256KiB"``.
    :param client_memory: ``--client-memory``: bytes, or a size like
        ``"256MiB"``.
    :param client_stall_timeout: ``--client-stall-timeout``, seconds.
    :param data_port: server endpoint string(s) for data clients; an empty
        list (or ``"none"``) turns the listener off.
    :param command_port: the same for the command port.
    :param sniff_port: the same for sniff clients.
    :param raw_port: the same for raw clients.
    :param reactor: provides ``IReactorProcess`` and ``IReactorTime`` (and
        ``IReactorFDSet`` for inotify); the global reactor if ``None``.
    :param timeout: seconds to wait for the agent to be ready; after that it
        is stopped and the launch fails.
    :param env: the child's whole environment; this process's if ``None``.
    :param log_file: where the agent logs (``twistd --logfile``); its stdout
        (kept only as a tail for error reports) if ``None``.
    :param rfc2217_port: server endpoint string(s) for RFC 2217 clients;
        none if ``None``.
    :param token_file: ``--token-file``: clients must send its first line
        first.
    :param tokenless: ``--tokenless`` kinds (``data``, ``sniff``).
    :param allow_insecure: ``--allow-insecure``.
    :param sched_slice: ``--sched-slice``, microseconds; 0 leaves the
        kernel's default.
    :returns: a Deferred that fires with the :class:`PortAgentProcess` once
        it is ready, or fails with :class:`PortAgentLaunchError`.  Cancelling
        it stops the child.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    try:
        launch = _Launch(reactor, name, timeout)
    except OSError as e:
        return fail(PortAgentLaunchError(None, "", f"could not be started: {e}"))
    argv = port_agent_command(
        name=name,
        instrument=instrument,
        status_file=launch.status_file,
        parent_pid=os.getpid(),
        datalog_dir=datalog_dir,
        heartbeat=heartbeat,
        disconnect_grace=disconnect_grace,
        max_reconnect_delay=max_reconnect_delay,
        rotate=rotate,
        rotate_size=rotate_size,
        client_buffer=client_buffer,
        client_memory=client_memory,
        client_stall_timeout=client_stall_timeout,
        data_port=data_port,
        command_port=command_port,
        sniff_port=sniff_port,
        raw_port=raw_port,
        log_file=log_file,
        rfc2217_port=rfc2217_port,
        token_file=token_file,
        tokenless=tokenless,
        allow_insecure=allow_insecure,
        sched_slice=sched_slice,
    )
    launch.start(argv, env)
    return launch.result
