"""
Tests for L{instrumentd.portagent.launcher}: real port agents started as
child processes, against a loopback instrument.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import sys
import tempfile
import uuid
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import capturedLogs, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from instrumentd.portagent import launcher
from instrumentd.portagent.launcher import (
    PortAgentLaunchError,
    PortAgentProcess,
    launch_port_agent,
)
from tests.agentsupport import (
    process_exit,
    reactor,
    read_datalog,
    run,
    start_instrument,
    within,
)


def inotify_descriptors() -> int:
    """
    How many inotify file descriptors this process has open (0 where
    ``/proc`` cannot tell).
    """
    if not os.path.isdir("/proc/self/fd"):
        return 0
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                count += 1
        except OSError:
            pass  # the directory's own descriptor, gone by now
    return count


def unique_name() -> str:
    """
    An agent name no other test run uses, so its private directory can be
    looked for even while other runs of these tests go on.
    """
    return f"LAUNCH-{uuid.uuid4().hex[:12]}"


def private_directories(name: str) -> list[str]:
    """
    The launcher's private directories for agents called ``name``.
    """
    return glob.glob(os.path.join(tempfile.gettempdir(), f"instrumentd-{name}-*"))


async def launch_error(d: Deferred[PortAgentProcess]) -> PortAgentLaunchError:
    """
    The L{PortAgentLaunchError} that ``d`` fails with.
    """
    try:
        agent = await d
    except PortAgentLaunchError as e:
        return e
    await agent.stop()
    raise AssertionError(f"the launch succeeded: {agent!r}")


class _RecordingProtocol(launcher._AgentProtocol):
    """
    The launcher's process protocol, remembering each instance and firing
    ``finished`` once the launcher has handled the child's exit.
    """

    instances: list[_RecordingProtocol] = []

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.finished: Deferred[None] = Deferred()
        self.instances.append(self)

    def processEnded(self, reason: Failure) -> None:
        super().processEnded(reason)
        self.finished.callback(None)


class LaunchTests(TestCase):
    """
    L{launch_port_agent} starts a real agent and reports it ready once every
    listener is bound.
    """

    def launch(self, **options: Any) -> Deferred[PortAgentProcess]:
        """
        Launch an agent with a datalog in a fresh directory.
        """
        options.setdefault("name", "LAUNCH01")
        options.setdefault("datalog_dir", os.path.abspath(self.mktemp()))
        options.setdefault("instrument", "tcp:host=127.0.0.1:port=1")
        options.setdefault("reactor", reactor)
        return launch_port_agent(**options)

    def test_readyWithPorts(self) -> Deferred[None]:
        """
        The Deferred fires with a handle whose ports are the agent's bound
        TCP ports, taken from the status file the agent wrote; the agent is
        running and connects to the instrument; the inotify descriptor used
        to learn of the status file is closed again.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            before = inotify_descriptors()
            agent = await self.launch(instrument=instrument.endpoint)
            self.addCleanup(agent.stop)
            self.assertEqual(inotify_descriptors(), before)
            self.assertEqual(sorted(agent.ports), ["command", "data", "raw", "sniff"])
            for kind, port in agent.ports.items():
                self.assertIsInstance(port, int, kind)
                self.assertEqual(agent.listeners[kind], [port])
            self.assertEqual(len(set(agent.ports.values())), 4)
            self.assertEqual(agent.status["pid"], agent.pid)
            self.assertEqual(agent.status["name"], "LAUNCH01")
            self.assertTrue(os.path.isfile(agent.status_file))
            self.assertIsNone(agent.exit_status)
            os.kill(agent.pid, 0)
            await instrument.wait_for_connection()
            self.assertIn("LAUNCH01", repr(agent))

        return run(go())

    def test_listenerOptions(self) -> Deferred[None]:
        """
        Listener arguments may be one endpoint, several, or none at all
        (that listener is then off and its port is C{None}).
        """

        async def go() -> None:
            agent = await self.launch(
                data_port=["tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1"],
                sniff_port=[],
                raw_port="none",
                command_port="tcp:0:interface=127.0.0.1",
            )
            self.addCleanup(agent.stop)
            self.assertEqual(len(agent.listeners["data"]), 2)
            self.assertIsNone(agent.ports["sniff"])
            self.assertIsNone(agent.ports["raw"])
            self.assertIsInstance(agent.ports["command"], int)

        return run(go())

    def test_stopExitsZeroAndCleansUp(self) -> Deferred[None]:
        """
        C{stop()} fires with exit status 0 once the agent has shut down in
        order (it removed its status file, as the launcher's log says); by
        then the private directory is gone and so is the process.  Stopping
        again, or asking for C{ended}, gives an already-fired Deferred.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

        async def go() -> None:
            name = unique_name()
            agent = await self.launch(name=name)
            directory = os.path.dirname(agent.status_file)
            ended = agent.ended
            status = await within(agent.stop(), "the agent to stop")
            self.assertEqual(status, 0)
            self.assertEqual(self.successResultOf(ended), 0)
            self.assertEqual(agent.exit_status, 0)
            [event] = [e for e in events if "status_file_left" in e]
            self.assertIs(event["status_file_left"], False)
            self.assertFalse(os.path.exists(directory))
            self.assertRaises(ProcessLookupError, os.kill, agent.pid, 0)
            self.assertEqual(self.successResultOf(agent.stop()), 0)
            self.assertEqual(self.successResultOf(agent.ended), 0)
            self.assertEqual(private_directories(name), [])

        return run(go())

    def test_killAfterStopTimeout(self) -> Deferred[None]:
        """
        An agent that does not exit within C{stop()}'s timeout after SIGTERM
        (here: it is stopped with SIGSTOP) is killed with SIGKILL; the
        launcher's log says it left its status file, and the private
        directory is removed all the same.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

        async def go() -> None:
            agent = await self.launch()
            directory = os.path.dirname(agent.status_file)
            os.kill(agent.pid, signal.SIGSTOP)
            status = await within(agent.stop(timeout=0.2), "the agent to be killed")
            self.assertEqual(status, -signal.SIGKILL)
            self.assertFalse(os.path.exists(directory))
            [event] = [e for e in events if "status_file_left" in e]
            self.assertIs(event["status_file_left"], True)

        return run(go())

    def test_endedWhenItDies(self) -> Deferred[None]:
        """
        C{ended} fires with minus the signal number when the agent is killed
        by someone else.
        """

        async def go() -> None:
            agent = await self.launch()
            ended = agent.ended
            os.kill(agent.pid, signal.SIGKILL)
            self.assertEqual(await within(ended, "the agent to die"), -9)

        return run(go())

    def test_badOption(self) -> Deferred[None]:
        """
        An option the agent rejects fails the launch as soon as twistd
        exits, with its exit code and the message naming the option, and
        leaves no private directory behind.
        """

        async def go() -> None:
            name = unique_name()
            d = self.launch(name=name, heartbeat=-1)
            error = await launch_error(within(d, "the launch to fail"))
            self.assertEqual(error.exit_code, 1)
            self.assertEqual(error.reason, "exited before it was ready")
            self.assertIn("--heartbeat: '-1' is out of range", error.stdout_tail)
            self.assertIn("--heartbeat: '-1' is out of range", str(error))
            self.assertIn("exit code 1", str(error))
            self.assertEqual(private_directories(name), [])

        return run(go())

    def test_notReadyInTime(self) -> Deferred[None]:
        """
        A child that is not ready within the timeout is stopped, and the
        launch fails saying so, with the way it ended.  (Here the child
        hangs at interpreter start-up, in a C{sitecustomize} module.)
        """

        async def go() -> None:
            hang = os.path.abspath(self.mktemp())
            os.makedirs(hang)
            with open(os.path.join(hang, "sitecustomize.py"), "w") as f:
                f.write("import signal\nsignal.pause()\n")
            env = dict(os.environ, PYTHONPATH=hang)
            started = reactor.seconds()
            name = unique_name()
            d = self.launch(name=name, env=env, timeout=1.0)
            error = await launch_error(within(d, "the launch to fail"))
            self.assertGreaterEqual(reactor.seconds() - started, 1.0)
            self.assertEqual(error.reason, "was not ready within 1 s and was stopped")
            self.assertEqual(error.exit_code, -signal.SIGTERM)
            self.assertIn("killed by SIGTERM", str(error))
            self.assertEqual(private_directories(name), [])

        return run(go())

    def test_withoutINotify(self) -> Deferred[None]:
        """
        Where inotify cannot be used, the launcher says so in its log and
        still learns that the agent is ready.
        """

        class NoINotify:
            def __init__(self, *args: object) -> None:
                raise OSError("inotify instance limit reached")

        self.patch(launcher, "_INotifyWatch", NoINotify)

        async def go() -> None:
            with capturedLogs() as events:
                agent = await self.launch()
            self.addCleanup(agent.stop)
            self.assertIsInstance(agent.ports["data"], int)
            texts = [e.get("log_format", "") for e in events]
            self.assertIn(
                "inotify is not available ({error}); looking for {path} on a timer",
                texts,
            )

        return run(go())

    def test_cancel(self) -> Deferred[None]:
        """
        Cancelling the launch fails it with C{CancelledError} and stops the
        child; its private directory is removed once it has exited.
        """
        self.patch(launcher, "_AgentProtocol", _RecordingProtocol)
        _RecordingProtocol.instances = []

        async def go() -> None:
            name = unique_name()
            d = self.launch(name=name)
            d.cancel()
            await self.assertFailure(d, CancelledError)
            [protocol] = _RecordingProtocol.instances
            await within(protocol.finished, "the cancelled agent to exit")
            self.assertEqual(private_directories(name), [])

        return run(go())

    def test_spawnFails(self) -> Deferred[None]:
        """
        If the child cannot be spawned at all, the launch fails with
        L{PortAgentLaunchError} whose exit code is C{None}.
        """

        class Unspawnable:
            def __getattr__(self, name: str) -> Any:
                return getattr(reactor, name)

            def spawnProcess(self, *args: object, **kwargs: object) -> None:
                raise OSError("no more processes")

        async def go() -> None:
            name = unique_name()
            d = self.launch(name=name, reactor=Unspawnable())
            error = await launch_error(d)
            self.assertIsNone(error.exit_code)
            self.assertIn("no more processes", str(error))
            self.assertEqual(private_directories(name), [])

        return run(go())

    def test_noPrivateDirectory(self) -> None:
        """
        If the private directory cannot be made, the launch fails at once
        with L{PortAgentLaunchError} saying why.
        """

        def mkdtemp(**kwargs: object) -> str:
            raise PermissionError("read-only file system")

        self.patch(launcher, "tempfile", SimpleNamespace(mkdtemp=mkdtemp))
        error = self.failureResultOf(self.launch(), PortAgentLaunchError).value
        self.assertIsInstance(error, PortAgentLaunchError)
        self.assertIn("read-only file system", str(error))


LAUNCHER_SCRIPT = """
import sys
from twisted.internet import defer, task
from instrumentd.portagent.launcher import launch_port_agent

async def main(reactor):
    agent = await launch_port_agent(
        name="ORPHAN01",
        instrument=sys.argv[1],
        datalog_dir=sys.argv[2],
        reactor=reactor,
    )
    print(agent.pid, agent.status_file, flush=True)
    if sys.argv[3] == "wait":
        await defer.Deferred()

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""


class _Intermediate(ProcessProtocol):
    """
    A process that launches an agent and prints its pid and status file.
    """

    def __init__(self) -> None:
        self.output = bytearray()
        self.line: Deferred[str] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.status: int | None = None

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if b"\n" in self.output and not self.line.called:
            self.line.callback(self.output.split(b"\n", 1)[0].decode())

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        self.status = launcher._exit_status(reason)
        if not self.line.called:
            self.line.errback(AssertionError(f"launcher died: {self.output!r}"))
        self.ended.callback(None)


class LauncherExitTests(TestCase):
    """
    A launched agent does not outlive the process that launched it.
    """

    async def start_launcher(
        self, then: str
    ) -> tuple[_Intermediate, Any, int, str, str]:
        """
        Start a process that launches an agent and then waits (``then`` is
        ``"wait"``) or stops its reactor (``"return"``).

        :returns: its protocol and transport, and the agent's pid, status
            file and datalog directory.
        """
        instrument = await start_instrument(self)
        datalog = os.path.abspath(self.mktemp())
        intermediate = _Intermediate()
        transport = reactor.spawnProcess(
            intermediate,
            sys.executable,
            [sys.executable, "-c", LAUNCHER_SCRIPT, instrument.endpoint, datalog, then],
            env=None,
        )
        line = await within(intermediate.line, "the launcher to report the agent")
        pid_text, status_file = line.split(" ", 1)
        self.addCleanup(shutil.rmtree, os.path.dirname(status_file), True)
        return intermediate, transport, int(pid_text), status_file, datalog

    def test_agentExitsWhenLauncherIsKilled(self) -> Deferred[None]:
        """
        Kill (SIGKILL, so it cannot clean up) a process that launched an
        agent: the agent notices, shuts down in order (removing its status
        file and closing its datalog) and exits.
        """

        async def go() -> None:
            (
                intermediate,
                transport,
                pid,
                status_file,
                datalog,
            ) = await self.start_launcher("wait")
            self.assertTrue(os.path.exists(status_file))
            exited = process_exit(pid, "the orphaned agent to exit")
            transport.signalProcess("KILL")
            await within(intermediate.ended, "the launcher to die")
            await exited
            self.assertFalse(os.path.exists(status_file))
            read_datalog(datalog, "ORPHAN01")

        return run(go())

    def test_agentStoppedWhenReactorStops(self) -> Deferred[None]:
        """
        When the launcher's reactor stops, it stops the agent first, so by
        the time the launcher has exited the agent is gone and so is its
        private directory.
        """

        async def go() -> None:
            (
                intermediate,
                _transport,
                pid,
                status_file,
                datalog,
            ) = await self.start_launcher("return")
            await within(intermediate.ended, "the launcher to exit")
            self.assertEqual(intermediate.status, 0, intermediate.output)
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)
            self.assertFalse(os.path.exists(os.path.dirname(status_file)))
            read_datalog(datalog, "ORPHAN01")

        return run(go())


class ErrorTests(SynchronousTestCase):
    """
    L{PortAgentLaunchError} reads well.
    """

    def test_message(self) -> None:
        """
        The message gives the reason, how the child ended and the last
        lines of its stderr and stdout.
        """
        error = PortAgentLaunchError(
            2, "Traceback\nValueError: x\n", "exited before it was ready", "log\n"
        )
        self.assertEqual(
            str(error),
            "port agent exited before it was ready (exit code 2)\n"
            "--- end of its stderr ---\nTraceback\nValueError: x\n"
            "--- end of its stdout ---\nlog",
        )
        self.assertEqual(error.args, (2, "Traceback\nValueError: x\n"))

    def test_signal(self) -> None:
        """
        A child ended by a signal is described by the signal's name; one
        that never ran says so.
        """
        self.assertIn("(killed by SIGKILL)", str(PortAgentLaunchError(-9, "")))
        self.assertIn("(it did not run)", str(PortAgentLaunchError(None, "")))


class SignalTests(TestCase):
    """
    L{PortAgentProcess.signal} sends any signal by name.
    """

    def test_hangupShutsDownInOrder(self) -> None:
        """
        HUP, which Twisted does not map by name, reaches the agent, which
        shuts down in order: exit status 0 and its status file removed.  A
        name that is no signal is refused.
        """
        from tests.agentsupport import run, start_agent, start_instrument, within

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(self, instrument, name="SIGNAL01")
            self.assertRaises(ValueError, agent.signal, "BOGUS")
            agent.signal("hup")
            self.assertEqual(await within(agent.ended, "the agent to exit"), 0)
            self.assertFalse(os.path.exists(agent.status_file))

        return run(go())
