"""
A real Mosquitto broker for the tests: Debian's ``mosquitto``, started as a
child process of the reactor on a loopback port, with a configuration the
test writes (users, ACLs, TLS, persistence), stopped, killed and restarted
on the same port.

Readiness is an event: the broker's own log line saying it is running (its
log goes to stderr, which is read as it comes).  Nothing waits on a timer.

Without ``/usr/sbin/mosquitto`` the tests that need it are skipped on a
developer's machine and fail in CI (``CI`` set), which must run them:
``.ci/run`` installs the package.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import weakref
from collections.abc import Mapping
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest

from tests.tlssupport import TestCertificates

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"

#: The broker has bound its listeners and takes connections.
_RUNNING = re.compile(r"mosquitto version \S+ running")

#: A listener the broker could not open (the port was taken meanwhile).
_BIND_ERROR = re.compile(r"Error: Address already in use|Error binding")

#: Generous: the machine is shared and may be loaded.
START_TIMEOUT = 30.0

#: A first start that finds its port taken meanwhile tries new ports this
#: many times in all.
START_ATTEMPTS = 5

#: The most of a broker's log a failure's message carries: a test's
#: failure and its log events go to trial's parent process as AMP values,
#: at most 64 KiB each.
LOG_TAIL = 4000


def tail(lines: list[str], limit: int = LOG_TAIL) -> str:
    """
    The end of a log, at most ``limit`` characters of it.
    """
    text = "\n".join(lines)
    return text if len(text) <= limit else "...\n" + text[-limit:]


class PortTaken(OSError):
    """
    The broker could not listen: its port was taken after it was chosen.
    """


def require_broker() -> None:
    """
    Make sure Mosquitto is installed: without it the broker tests are
    skipped on a developer's machine and fail in CI (``CI`` set).

    :raises SkipTest: outside CI.
    :raises AssertionError: in CI.
    """
    missing = [
        path for path in (MOSQUITTO, MOSQUITTO_PASSWD) if not os.path.exists(path)
    ]
    if not missing:
        return
    message = f"the broker tests need {', '.join(missing)} (apt-get install mosquitto)"
    if os.environ.get("CI"):
        raise AssertionError(message)
    raise SkipTest(message)


def free_port(avoid: int | None = None) -> int:
    """
    A loopback TCP port nothing listens on now (the kernel's ephemeral
    choice), free for anyone to take a moment later: not for a port that
    must refuse connections (:func:`tests.portsupport.refusing_port`) nor
    for a broker's (:class:`Broker` holds its own).

    :param avoid: a port chosen already, not to be chosen again (the
        kernel may hand out a port it has just been given back).
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port != avoid:
            return port


def _reserve_port() -> socket.socket:
    """
    A loopback port held for a broker by a socket bound with
    ``SO_REUSEADDR`` that never listens.

    Linux lets a second socket bind a port held so (both ask for
    ``SO_REUSEADDR`` and neither listens yet), which Mosquitto's listener
    does; nothing else can take the port meanwhile: a bind without
    ``SO_REUSEADDR`` fails, and the kernel never hands it out for a bind
    to port 0 or as a connection's local port.  So a broker stopped for a
    while (to test a client's reconnection) comes back on its port, and
    its clients are refused, not answered by whatever another test under
    ``trial -j2`` started there meanwhile.

    :returns: the bound socket; its port is the broker's.
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    return holder


def _release(holders: list[socket.socket]) -> None:
    for holder in holders:
        holder.close()


class _BrokerProcess(ProcessProtocol):
    """
    One run of the broker: its log lines, its start and its end.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = b""
        self.running: Deferred[None] = Deferred()
        self.ended: Deferred[int] = Deferred()
        self.pid: int | None = None
        #: Whether it ran (listening on its ports).
        self.ran = False

    def connectionMade(self) -> None:
        self.pid = self.transport.pid  # type: ignore[union-attr]

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self._partial += data
        *whole, self._partial = self._partial.split(b"\n")
        for raw in whole:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            if not self.running.called:
                if _RUNNING.search(line):
                    self.ran = True
                    self.running.callback(None)
                elif _BIND_ERROR.search(line):
                    self.running.errback(
                        PortTaken(f"mosquitto could not listen: {line}")
                    )

    def processEnded(self, reason: Failure) -> None:
        code = (
            0
            if reason.check(ProcessDone)
            else (
                -(reason.value.signal or 0)
                if reason.check(ProcessTerminated) and reason.value.signal
                else getattr(reason.value, "exitCode", 1)
            )
        )
        if not self.running.called:
            self.running.errback(
                RuntimeError(
                    f"mosquitto ended ({code}) before it ran:\n" + tail(self.lines)
                )
            )
        self.ended.callback(code)


class Broker:
    """
    A Mosquitto broker on ``127.0.0.1``: its configuration file (written
    by :meth:`start` from the arguments), its process, and its address.

    :param directory: where its configuration, password and ACL files and
        persistence database go.
    :param persistence: keep sessions and queued messages across a stop or
        a kill (Mosquitto saves its database when it stops, and every
        ``autosave_interval`` seconds).
    :param users: ``{user: password}``; when given, anonymous clients are
        refused.
    :param acl: the text of an ACL file (Mosquitto's syntax).
    :param certificates: also listen with TLS on :attr:`tls_port`,
        with the server certificate these give; clients are not asked for
        one.
    :param extra: more configuration lines, for the whole broker.
    :ivar port: the plain listener's port.
    :ivar tls_port: the TLS listener's, or ``None``.
    :ivar runs: each run's process, oldest first.
    """

    def __init__(
        self,
        directory: str,
        *,
        persistence: bool = False,
        users: Mapping[str, str] | None = None,
        acl: str | None = None,
        certificates: TestCertificates | None = None,
        extra: str = "",
    ) -> None:
        require_broker()
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.persistence = persistence
        self.users = dict(users or {})
        self.acl = acl
        self.certificates = certificates
        self.extra = extra
        self._holders: list[socket.socket] = []
        self._hold_ports()
        self.runs: list[_BrokerProcess] = []

    def _hold_ports(self) -> None:
        """
        Hold new ports for the broker (see :func:`_reserve_port`) for as
        long as this object lives, letting go of any held before.  A port
        merely found free, then given to the broker, could be taken by
        another test before the broker binds it or while it is stopped.
        """
        _release(self._holders)
        holders = [_reserve_port()]
        if self.certificates is not None:
            holders.append(_reserve_port())
        self._holders = holders
        weakref.finalize(self, _release, holders)
        self.port: int = holders[0].getsockname()[1]
        self.tls_port: int | None = (
            holders[1].getsockname()[1] if self.certificates is not None else None
        )

    @property
    def url(self) -> str:
        """
        ``mqtt://127.0.0.1:PORT``.
        """
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        """
        ``mqtts://localhost:TLS_PORT`` (the test certificate's name).
        """
        assert self.tls_port is not None
        return f"mqtts://localhost:{self.tls_port}"

    @property
    def process(self) -> _BrokerProcess | None:
        """
        The current run, if the broker was ever started.
        """
        return self.runs[-1] if self.runs else None

    @property
    def alive(self) -> bool:
        """
        Whether the broker is running now.
        """
        return self.process is not None and not self.process.ended.called

    def log(self) -> str:
        """
        Every run's log, for a failing test's message.
        """
        return "\n".join(line for run in self.runs for line in run.lines)

    def _config(self) -> str:
        lines = [
            "log_dest stderr",
            "log_type all",
            "log_timestamp false",
            "connection_messages true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.directory}/",
            # Only on an orderly stop (and the autosave); a kill loses what
            # came after the last save, as in the field.
            "autosave_interval 1800",
            "per_listener_settings false",
        ]
        if os.getuid() == 0:
            # As root, Mosquitto would switch to the "mosquitto" user, who
            # cannot write the test's directory.
            lines.append("user root")
        if self.users:
            password_file = os.path.join(self.directory, "passwords")
            open(password_file, "w").close()
            for user, password in self.users.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD, "-b", password_file, user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl_file = os.path.join(self.directory, "acl")
            with open(acl_file, "w") as f:
                f.write(self.acl)
            lines.append(f"acl_file {acl_file}")
        lines.append(f"listener {self.port} 127.0.0.1")
        if self.certificates is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {os.path.abspath(self.certificates.ca)}",
                f"certfile {os.path.abspath(self.certificates.server_cert)}",
                f"keyfile {os.path.abspath(self.certificates.server_key)}",
            ]
        if self.extra:
            lines.append(self.extra)
        return "\n".join(lines) + "\n"

    def start(self) -> Deferred[None]:
        """
        Write the configuration and start the broker.

        The ports are held for the broker (:meth:`_hold_ports`), so no
        other test takes them; should one be taken all the same (a socket
        binding that very port with ``SO_REUSEADDR``), a first start tries
        new ports (:data:`START_ATTEMPTS` in all).  A restart keeps its
        ports: its clients reconnect to them.

        :returns: a Deferred that fires once the broker logs that it is
            running; it fails with the end of the broker's log if it ends
            first (or cannot listen), or after :data:`START_TIMEOUT`
            seconds.
        """
        first = not any(run.ran for run in self.runs)
        attempts = START_ATTEMPTS if first else 1

        def again(reason: Failure, left: int) -> Any:
            if left <= 1 or not reason.check(PortTaken):
                return reason
            self._hold_ports()
            gone: Deferred[None] = Deferred()
            failed = self.process
            assert failed is not None
            # It is on its way out; the next run starts once it has gone.
            failed.ended.addBoth(lambda result: gone.callback(None) or result)
            return gone.addCallback(lambda _: self._start()).addErrback(again, left - 1)

        return self._start().addErrback(again, attempts)

    def _start(self) -> Deferred[None]:
        assert not self.alive, "the broker is running already"
        config = os.path.join(self.directory, "mosquitto.conf")
        with open(config, "w") as f:
            f.write(self._config())
        run = _BrokerProcess()
        self.runs.append(run)
        reactor.spawnProcess(  # type: ignore[attr-defined]
            run,
            MOSQUITTO,
            [MOSQUITTO, "-c", config],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            path=self.directory,
            childFDs={0: "w", 1: "r", 2: "r"},
        )
        timeout = reactor.callLater(  # type: ignore[attr-defined]
            START_TIMEOUT,
            lambda: (
                run.running.called
                or run.running.errback(
                    TimeoutError("mosquitto did not start:\n" + tail(run.lines))
                )
            ),
        )

        def done(result: Any) -> Any:
            if timeout.active():
                timeout.cancel()
            return result

        return run.running.addBoth(done)

    def _signal(self, signum: int) -> Deferred[int]:
        run = self.process
        if run is None or run.ended.called:
            return succeed(0)
        ended: Deferred[int] = Deferred()
        run.ended.addBoth(lambda result: ended.callback(result) or result)
        assert run.pid is not None
        # It may have just ended, not reaped by the reactor yet.
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.pid, signum)
        return ended

    def stop(self) -> Deferred[int]:
        """
        Stop the broker in order (SIGTERM: it saves its database).

        :returns: a Deferred firing with its exit status once it has ended.
        """
        return self._signal(signal.SIGTERM)

    def kill(self) -> Deferred[int]:
        """
        Kill the broker (SIGKILL: nothing saved since the last autosave).

        :returns: a Deferred firing once it has ended.
        """
        return self._signal(signal.SIGKILL)

    def restart(self) -> Deferred[None]:
        """
        Stop (if running) and start again on the same ports.

        :returns: a Deferred firing once the new run is running.
        """
        return self.stop().addCallback(lambda _: self.start())
