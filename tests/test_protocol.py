"""
Tests for L{instrumentd.driver.protocol}, driven through the toy
instrument of L{tests.toyinstrument}: discovery, prompts and regex replies,
timeouts and recovery, queued commands, wake-up, fragments and noise,
autosample, parameters, direct access with restore, scheduled jobs.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from instrumentd.driver.errors import (
    InstrumentCommandError,
    InstrumentConnectionError,
    InstrumentParameterError,
    InstrumentProtocolError,
    InstrumentStateError,
    InstrumentTimeoutError,
)
from instrumentd.driver.events import (
    ConfigChangeEvent,
    DirectAccessEvent,
    ErrorEvent,
    ResultEvent,
    SampleEvent,
    StateChangeEvent,
)
from instrumentd.driver.protocol import ProtocolState
from instrumentd.interfaces import IInstrumentProtocol
from tests.toyinstrument import ToyBench, ToyProtocol

COMMAND_CAPABILITIES = [
    "acquire_sample",
    "acquire_status",
    "apply_startup",
    "get",
    "identify",
    "set",
    "start_autosample",
    "start_direct",
    "take_samples",
]


def in_command(bench: ToyBench) -> None:
    """
    Discover the toy (in command mode) and settle.
    """
    result = bench.protocol.discover()
    bench.flush()
    assert bench.protocol.state == "COMMAND", result


def states(bench: ToyBench) -> list[tuple[str | None, str]]:
    return [(e.previous, e.state) for e in bench.of_type(StateChangeEvent)]


class DiscoveryTests(SynchronousTestCase):
    """
    Finding out what the instrument is doing.
    """

    def test_interface(self) -> None:
        """
        The protocol provides L{IInstrumentProtocol}.
        """
        verifyObject(IInstrumentProtocol, ToyBench().protocol)

    def test_startsUnknown(self) -> None:
        """
        A new protocol is UNKNOWN, announces it, and can only discover.
        """
        bench = ToyBench()
        self.assertEqual(bench.protocol.state, "UNKNOWN")
        self.assertEqual(states(bench), [(None, "UNKNOWN")])
        self.assertEqual(bench.protocol.get_capabilities(), ["discover"])
        self.assertEqual(bench.protocol.machine.status(), "UNKNOWN")

    def test_discoverCommand(self) -> None:
        """
        Discovery wakes the instrument (nothing heard from it yet), reads
        its status, and moves to COMMAND, announcing it.
        """
        bench = ToyBench()
        result = bench.protocol.discover()
        bench.flush()
        self.assertEqual(self.successResultOf(result), "COMMAND")
        self.assertEqual(bench.toy.received[0], b"\r\n")
        self.assertEqual(states(bench)[-1], ("UNKNOWN", "COMMAND"))
        self.assertEqual(bench.protocol.get_capabilities(), COMMAND_CAPABILITIES)
        [config] = bench.of_type(ConfigChangeEvent)
        self.assertEqual(config.changes["SERIAL"], "1234")

    def test_discoverAutosample(self) -> None:
        """
        An instrument found sampling puts the protocol in AUTOSAMPLE.
        """
        bench = ToyBench()
        bench.toy.dataReceived(b"start\r\n")
        bench.flush()
        result = bench.protocol.discover()
        bench.flush()
        self.assertEqual(self.successResultOf(result), "AUTOSAMPLE")
        self.assertEqual(
            bench.protocol.get_capabilities(),
            ["acquire_status", "get", "stop_autosample"],
        )

    def test_discoverFails(self) -> None:
        """
        An instrument that never answers: discovery fails with a timeout,
        the protocol stays UNKNOWN and can try again.
        """
        bench = ToyBench()
        bench.toy.hanging = True
        result = bench.protocol.discover()
        bench.run(3.5)
        self.failureResultOf(result, InstrumentTimeoutError)
        self.assertEqual(bench.protocol.get_capabilities(), ["discover"])
        bench.toy.hanging = False
        retry = bench.protocol.discover()
        bench.flush()
        self.assertEqual(self.successResultOf(retry), "COMMAND")


class CommandTests(SynchronousTestCase):
    """
    Commands: prompts, regex replies, refusals.
    """

    def test_promptReply(self) -> None:
        """
        A prompt-ended reply is parsed into the command's result.
        """
        bench = ToyBench()
        in_command(bench)
        result = bench.protocol.execute("acquire_status")
        bench.flush()
        status = self.successResultOf(result)
        self.assertEqual(status["interval"], "5")
        self.assertEqual(status["logging"], "no")

    def test_regexReply(self) -> None:
        """
        A regex-ended reply gives its match to the parser; the sample line
        also becomes a sample particle.
        """
        bench = ToyBench()
        in_command(bench)
        bench.toy.temperature = 12.25
        result = bench.protocol.execute("acquire_sample")
        bench.flush()
        self.assertEqual(
            self.successResultOf(result), {"temperature": 12.25, "pressure": 10.12}
        )
        [sample] = bench.of_type(SampleEvent)
        self.assertEqual(sample.particle.value("temperature"), 12.25)
        identity = bench.protocol.execute("identify")
        bench.flush()
        self.assertEqual(self.successResultOf(identity), "TOY-1 SN 1234")

    def test_refusedNothingSent(self) -> None:
        """
        A command not valid in the current state fails at once with an
        L{InstrumentStateError} naming the state and the valid inputs;
        nothing is sent.
        """
        bench = ToyBench()
        result = bench.protocol.execute("acquire_status")
        error = self.failureResultOf(result, InstrumentStateError).value
        self.assertEqual(error.state, "UNKNOWN")
        self.assertEqual(error.input, "acquire_status")
        self.assertEqual(list(error.valid), ["discover"])
        bench.flush()
        self.assertEqual(bench.toy.received, [])

    def test_unknownCommand(self) -> None:
        """
        An unknown command is refused listing the known ones; bad arguments
        are refused naming the command.
        """
        bench = ToyBench()
        in_command(bench)
        error = self.failureResultOf(
            bench.protocol.execute("dance"), InstrumentCommandError
        ).value
        self.assertIn("acquire_status", error.valid)
        self.failureResultOf(
            bench.protocol.execute("acquire_status", loudly=True),
            InstrumentCommandError,
        )

    def test_declaredArguments(self) -> None:
        """
        A declared command's arguments are checked and converted before
        anything is sent; one session holds the instrument for all its
        commands.
        """
        bench = ToyBench()
        in_command(bench)
        bench.toy.commands.clear()
        error = self.failureResultOf(
            bench.protocol.execute("take_samples", count=11), InstrumentCommandError
        ).value
        self.assertEqual(error.argument, "count")
        self.failureResultOf(
            bench.protocol.execute("take_samples"), InstrumentCommandError
        )
        bench.flush()
        self.assertEqual(bench.toy.commands, [])
        result = bench.protocol.execute("take_samples", count="2")
        bench.flush()
        self.assertEqual(len(self.successResultOf(result)), 2)
        self.assertEqual(bench.toy.commands, [b"ts", b"ts"])

    def test_protocolError(self) -> None:
        """
        A reply the parser refuses fails the command with the parser's
        error, and the next command is sent.
        """
        bench = ToyBench()
        in_command(bench)
        original = bench.toy.status_dump
        self.patch(bench.toy, "status_dump", lambda: b"garbled\r\n")
        result = bench.protocol.execute("acquire_status")
        bench.flush()
        self.failureResultOf(result, InstrumentProtocolError)
        self.patch(bench.toy, "status_dump", original)
        again = bench.protocol.execute("acquire_status")
        bench.flush()
        self.successResultOf(again)


class TimeoutTests(SynchronousTestCase):
    """
    Commands that get no reply, and what follows.
    """

    def test_timeoutAndRecovery(self) -> None:
        """
        A command the instrument does not answer fails after its timeout,
        naming the command and the prompt awaited; the next command wakes
        the instrument first and works.
        """
        bench = ToyBench()
        in_command(bench)
        bench.toy.hanging = True
        result = bench.protocol.execute("acquire_status")
        bench.run(4.9)
        self.assertNoResult(result)
        bench.run(0.2)
        error = self.failureResultOf(result, InstrumentTimeoutError).value
        self.assertEqual(error.command, "ds")
        self.assertEqual(error.awaited, ("'T>'",))
        bench.toy.hanging = False
        bench.toy.received.clear()
        again = bench.protocol.execute("acquire_status")
        bench.flush()
        self.successResultOf(again)
        self.assertEqual(bench.toy.received, [b"\r\n", b"ds\r\n"])

    def test_regexTimeout(self) -> None:
        """
        A regex command times out naming its regex.
        """
        bench = ToyBench()
        in_command(bench)
        bench.toy.hanging = True
        result = bench.protocol.execute("acquire_sample")
        bench.run(5.1)
        error = self.failureResultOf(result, InstrumentTimeoutError).value
        self.assertIn("regex", error.awaited[0])


class QueueTests(SynchronousTestCase):
    """
    Commands wait their turn.
    """

    def test_inOrder(self) -> None:
        """
        Commands given together are sent one at a time, in order, and each
        gets its own reply.
        """
        bench = ToyBench()
        in_command(bench)
        bench.toy.commands.clear()
        first = bench.protocol.execute("identify")
        second = bench.protocol.execute("acquire_sample")
        third = bench.protocol.execute("acquire_status")
        bench.flush()
        self.assertEqual(self.successResultOf(first), "TOY-1 SN 1234")
        self.assertEqual(self.successResultOf(second)["pressure"], 10.12)
        self.assertEqual(self.successResultOf(third)["units"], "C")
        self.assertEqual(bench.toy.commands, [b"id", b"ts", b"ds"])

    def test_queuedThenInvalid(self) -> None:
        """
        A command queued behind one that changes the state is refused when
        its turn comes, before anything is sent.
        """
        bench = ToyBench()
        in_command(bench)
        bench.toy.commands.clear()
        started = bench.protocol.execute("start_autosample")
        sample = bench.protocol.execute("acquire_sample")
        bench.flush()
        self.successResultOf(started)
        error = self.failureResultOf(sample, InstrumentStateError).value
        self.assertEqual(error.state, "AUTOSAMPLE")
        self.assertEqual(bench.toy.commands, [b"start"])


class WakeupTests(SynchronousTestCase):
    """
    Waking a sleeping instrument, only when it may be asleep.
    """

    def test_noWakeWhileAwake(self) -> None:
        """
        Commands within the sleep time are sent without a wake-up.
        """
        bench = ToyBench()
        in_command(bench)
        bench.run(10)
        bench.toy.received.clear()
        result = bench.protocol.execute("identify")
        bench.flush()
        self.successResultOf(result)
        self.assertEqual(bench.toy.received, [b"id\r\n"])

    def test_wakeAfterSleep(self) -> None:
        """
        After the sleep time the instrument is woken before the command,
        which is then answered.
        """
        bench = ToyBench()
        in_command(bench)
        bench.run(31)
        self.assertTrue(bench.toy.asleep)
        bench.toy.received.clear()
        result = bench.protocol.execute("identify")
        bench.flush()
        self.successResultOf(result)
        self.assertEqual(bench.toy.received, [b"\r\n", b"id\r\n"])

    def test_wakeRetries(self) -> None:
        """
        An instrument that needs three wake-ups gets them, one per wake-up
        timeout, and then the command.
        """
        bench = ToyBench(wakes_needed=3)
        bench.toy.fall_asleep()
        result = bench.protocol.discover()
        bench.run(2.5)
        self.assertEqual(self.successResultOf(result), "COMMAND")
        self.assertEqual(bench.toy.received[:3], [b"\r\n"] * 3)
        self.assertEqual(bench.protocol.engine.wake_attempts, 3)

    def test_wakeGivesUp(self) -> None:
        """
        An instrument that needs more wake-ups than declared: the command
        fails with a timeout naming the wake-up and is never sent.
        """
        bench = ToyBench(wakes_needed=4)
        bench.toy.fall_asleep()
        result = bench.protocol.discover()
        bench.run(3.5)
        error = self.failureResultOf(result, InstrumentTimeoutError).value
        self.assertIn("wake-up", error.command)
        self.assertEqual(bench.toy.commands, [])


class DataTests(SynchronousTestCase):
    """
    The byte stream: fragments, noise, autosample.
    """

    def test_fragmentsAndNoise(self) -> None:
        """
        Sample lines arriving a byte at a time among noise become exactly
        one particle each, stamped with their first byte's time.
        """
        bench = ToyBench()
        bench.line.link.fragment = 1
        bench.toy.emit(b"\x00\xffjunk#T=")
        bench.flush()
        bench.clock.advance(1)
        bench.toy.emit(b"1.5000 P=2.0000\r\nT>#T=3.0")
        bench.flush()
        bench.toy.emit(b"000 P=4.0000\r\nnoise")
        bench.flush()
        samples = bench.of_type(SampleEvent)
        self.assertEqual([s.particle.value("temperature") for s in samples], [1.5, 3.0])
        self.assertEqual(samples[0].particle.port_timestamp, 2208988800.0)
        self.assertEqual(samples[1].particle.port_timestamp, 2208988801.0)

    def test_autosample(self) -> None:
        """
        In autosample, samples arrive every INTERVAL seconds as particles;
        get serves cached values, set is refused; stopping returns to
        COMMAND.
        """
        bench = ToyBench()
        in_command(bench)
        self.successResultOf(bench.protocol.execute("start_autosample"))
        bench.flush()
        self.assertEqual(bench.protocol.state, "AUTOSAMPLE")
        bench.run(10.5)
        self.assertEqual(len(bench.of_type(SampleEvent)), 2)
        bench.toy.received.clear()
        cached = bench.protocol.get(["INTERVAL"])
        self.assertEqual(self.successResultOf(cached), {"INTERVAL": 5})
        self.assertEqual(bench.toy.received, [])
        refused = bench.protocol.set({"INTERVAL": 6})
        self.assertEqual(
            self.failureResultOf(refused, InstrumentStateError).value.state,
            "AUTOSAMPLE",
        )
        stopped = bench.protocol.execute("stop_autosample")
        bench.flush()
        self.successResultOf(stopped)
        self.assertEqual(bench.protocol.state, "COMMAND")
        self.assertFalse(bench.toy.logging)
        self.assertEqual(
            states(bench)[-2:],
            [("COMMAND", "AUTOSAMPLE"), ("AUTOSAMPLE", "COMMAND")],
        )


class ParameterTests(SynchronousTestCase):
    """
    Reading and changing parameters.
    """

    def test_getReadsStale(self) -> None:
        """
        A get of values never read asks the instrument; then the cache
        answers.
        """
        bench = ToyBench()
        in_command(bench)
        bench.toy.commands.clear()
        values = bench.protocol.get(["ALL"])
        bench.flush()
        self.assertEqual(
            self.successResultOf(values),
            {"INTERVAL": 5, "UNITS": "C", "ECHO": True, "SERIAL": "1234"},
        )
        self.assertEqual(bench.toy.commands, [])

    def test_getOneNameAsText(self) -> None:
        """
        A get given one name as a string (from a command's JSON arguments)
        reads that parameter, rather than one parameter per letter.
        """
        bench = ToyBench()
        values = self.successResultOf(bench.protocol.read_parameters("INTERVAL", False))
        self.assertEqual(list(values), ["INTERVAL"])

    def test_set(self) -> None:
        """
        A set sends the instrument's set command, reads the value back, and
        announces the change; setting the same value again is no change.
        """
        bench = ToyBench()
        in_command(bench)
        changed = bench.protocol.set({"INTERVAL": 7, "UNITS": "F"})
        bench.flush()
        self.assertEqual(self.successResultOf(changed), {"INTERVAL": 7, "UNITS": "F"})
        self.assertEqual(bench.toy.settings["interval"], "7")
        self.assertEqual(
            dict(bench.of_type(ConfigChangeEvent)[-1].changes),
            {"INTERVAL": 7, "UNITS": "F"},
        )
        events = len(bench.seen)
        same = bench.protocol.set({"INTERVAL": 7})
        bench.flush()
        self.assertEqual(self.successResultOf(same), {})
        self.assertEqual(len(bench.seen), events)

    def test_setRefused(self) -> None:
        """
        Read-only and immutable parameters, and values out of range, are
        refused before anything is sent, naming the parameter and rule.
        """
        bench = ToyBench()
        in_command(bench)
        bench.toy.commands.clear()
        for values, rule in [
            ({"SERIAL": "9"}, "read_only"),
            ({"ECHO": False}, "immutable"),
            ({"INTERVAL": 0}, "range"),
            ({"NOPE": 1}, "unknown"),
        ]:
            error = self.failureResultOf(
                bench.protocol.set(values), InstrumentParameterError
            ).value
            self.assertEqual(error.rule, rule)
        bench.flush()
        self.assertEqual(bench.toy.commands, [])

    def test_startupParameters(self) -> None:
        """
        Startup values from the init config are applied when the
        instrument is first found in command mode, and again on request.
        """
        bench = ToyBench(init_config={"parameters": {"INTERVAL": 12}})
        in_command(bench)
        self.assertEqual(bench.toy.settings["interval"], "12")
        bench.toy.settings["interval"] = "30"
        bench.toy.commands.clear()
        result = bench.protocol.execute("apply_startup")
        bench.flush()
        self.successResultOf(result)
        self.assertEqual(bench.toy.settings["interval"], "12")
        self.assertIn(b"set interval=12", bench.toy.commands)

    def test_badInitConfig(self) -> None:
        """
        A bad init config is refused naming the parameter.
        """
        bench = ToyBench()
        error = self.assertRaises(
            InstrumentParameterError,
            bench.protocol.set_init_params,
            {"parameters": {"INTERVAL": "soon"}},
        )
        self.assertEqual(error.parameter, "INTERVAL")


class DirectAccessTests(SynchronousTestCase):
    """
    Direct access: passthrough, and restoring parameters afterwards.
    """

    def test_directAccess(self) -> None:
        """
        Bytes pass straight through, the instrument's output goes out as
        direct-access events, and stopping restores the direct-access
        parameters the operator changed, then rediscovers.
        """
        bench = ToyBench()
        in_command(bench)
        self.successResultOf(bench.protocol.start_direct())
        self.assertEqual(bench.protocol.state, "DIRECT_ACCESS")
        self.assertEqual(
            bench.protocol.get_capabilities(), ["execute_direct", "stop_direct"]
        )
        self.successResultOf(bench.protocol.execute_direct(b"set interval=60\r\n"))
        self.successResultOf(bench.protocol.execute_direct(b"set units=F\r\n"))
        bench.flush()
        self.assertEqual(bench.toy.settings["interval"], "60")
        echoed = b"".join(e.data for e in bench.of_type(DirectAccessEvent))
        self.assertIn(b"set interval=60\r\nT>", echoed)
        bench.toy.commands.clear()
        result = bench.protocol.stop_direct()
        bench.flush()
        self.assertEqual(self.successResultOf(result), "COMMAND")
        self.assertEqual(bench.toy.settings["interval"], "5")
        self.assertEqual(bench.toy.settings["units"], "C")
        self.assertIn(b"set interval=5", bench.toy.commands)
        self.assertEqual(
            states(bench)[-2:],
            [("COMMAND", "DIRECT_ACCESS"), ("DIRECT_ACCESS", "COMMAND")],
        )

    def test_unchangedNotSent(self) -> None:
        """
        Parameters the operator did not change are not set again.
        """
        bench = ToyBench()
        in_command(bench)
        bench.protocol.start_direct()
        bench.toy.commands.clear()
        bench.protocol.stop_direct()
        bench.flush()
        self.assertEqual(bench.toy.commands, [b"ds", b"ds"])

    def test_leftInAutosample(self) -> None:
        """
        An operator who leaves the instrument sampling: stopping direct
        access finds AUTOSAMPLE, and the restore waits for command mode.
        """
        bench = ToyBench()
        in_command(bench)
        bench.protocol.start_direct()
        bench.protocol.execute_direct(b"set interval=9\r\n")
        bench.protocol.execute_direct(b"start\r\n")
        bench.flush()
        result = bench.protocol.stop_direct()
        bench.flush()
        self.assertEqual(self.successResultOf(result), "AUTOSAMPLE")
        self.assertEqual(bench.toy.settings["interval"], "9")
        stopped = bench.protocol.execute("stop_autosample")
        bench.flush()
        self.successResultOf(stopped)
        self.assertEqual(bench.toy.settings["interval"], "5")

    def test_rediscoveryFails(self) -> None:
        """
        If the instrument does not answer when direct access ends, the
        protocol goes to UNKNOWN.
        """
        bench = ToyBench()
        in_command(bench)
        bench.protocol.start_direct()
        bench.toy.hanging = True
        result = bench.protocol.stop_direct()
        bench.run(6)
        self.failureResultOf(result, InstrumentTimeoutError)
        self.assertEqual(bench.protocol.state, "UNKNOWN")


class SchedulerTests(SynchronousTestCase):
    """
    Scheduled jobs from the startup config.
    """

    def test_jobRunsAndSkips(self) -> None:
        """
        A scheduled status job runs in COMMAND (its result published), and
        is skipped with an event in direct access.
        """
        bench = ToyBench(
            init_config={"scheduler": {"acquire_status": {"interval": 20}}}
        )
        in_command(bench)
        bench.run(20.5)
        [result] = bench.of_type(ResultEvent)
        self.assertEqual(result.command, "acquire_status")
        bench.protocol.start_direct()
        bench.run(20)
        [skipped] = bench.of_type(ErrorEvent)
        self.assertTrue(skipped.details["skipped"])
        self.assertEqual(skipped.details["state"], "DIRECT_ACCESS")
        self.assertEqual(bench.protocol.scheduler.skipped, {"acquire_status": 1})

    def test_stopLeavesNoTimers(self) -> None:
        """
        Stopping the protocol fails pending commands and stops its jobs.
        """
        bench = ToyBench(
            init_config={"scheduler": {"acquire_status": {"interval": 20}}}
        )
        result = bench.protocol.discover()
        bench.protocol.stop(InstrumentConnectionError("link down"))
        self.failureResultOf(result, InstrumentConnectionError)
        owners = {
            getattr(call.func, "__self__", None)
            for call in bench.clock.getDelayedCalls()
        }
        self.assertEqual(owners - {bench.toy}, set())


class WriteDelayTests(SynchronousTestCase):
    """
    Instruments that drop fast input.
    """

    def test_pacedWrites(self) -> None:
        """
        An instrument that keeps only one character per read garbles
        commands written at once, and understands them written one
        character at a time.
        """

        class SlowToy(ToyProtocol):
            write_delay = 0.01

        bench = ToyBench(sleep_after=None)
        bench.toy.drops_fast_input = True
        fast = bench.protocol.discover()
        bench.run(3.5)
        self.failureResultOf(fast, InstrumentTimeoutError)

        slow = ToyBench(sleep_after=None)
        slow.toy.drops_fast_input = True
        slow.protocol = SlowToy(slow.line.send, slow.events, clock=slow.clock)
        slow.line.link.deliver = lambda data, packet: slow.protocol.got_data(
            data, packet.ntp_time
        )
        result = slow.protocol.discover()
        slow.run(1, step=0.01)
        self.assertEqual(self.successResultOf(result), "COMMAND")


class AnnouncementTests(SynchronousTestCase):
    """
    Every state change is announced, and listeners may call back.
    """

    def test_listenerCallsBack(self) -> None:
        """
        A listener may run a command from a state-change event.
        """
        bench = ToyBench()
        results: list[Any] = []

        def listener(event: object) -> None:
            if isinstance(event, StateChangeEvent) and event.state == "COMMAND":
                results.append(bench.protocol.execute("identify"))
                results.append(bench.protocol.get_capabilities())

        bench.events.subscribe(listener)
        in_command(bench)
        bench.flush()
        self.assertEqual(self.successResultOf(results[0]), "TOY-1 SN 1234")
        self.assertEqual(results[1], COMMAND_CAPABILITIES)

    def test_everyChangeAnnounced(self) -> None:
        """
        The announced states follow every transition, in order.
        """
        bench = ToyBench()
        in_command(bench)
        bench.protocol.execute("start_autosample")
        bench.flush()
        bench.protocol.execute("stop_autosample")
        bench.flush()
        bench.protocol.start_direct()
        bench.protocol.stop_direct()
        bench.flush()
        self.assertEqual(
            [state for _, state in states(bench)],
            [
                "UNKNOWN",
                "COMMAND",
                "AUTOSAMPLE",
                "COMMAND",
                "DIRECT_ACCESS",
                "COMMAND",
            ],
        )
        self.assertEqual(
            {s.value for s in ProtocolState}, set(bench.protocol.table.states)
        )

    def test_metadata(self) -> None:
        """
        The metadata names the driver, every command with its description,
        and every parameter.
        """
        metadata = ToyBench().protocol.metadata()
        driver: Any = metadata["driver"]
        self.assertEqual(driver["name"], "toy")
        commands: Any = metadata["commands"]
        self.assertEqual(
            commands["acquire_status"]["description"], "Read the status dump."
        )
        self.assertEqual(sorted(commands["set"]["arguments"]), ["startup", "values"])
        self.assertEqual(commands["take_samples"]["timeout"], 60)
        self.assertEqual(
            commands["take_samples"]["arguments"]["count"]["value"]["type"], "int"
        )
        parameters: Any = metadata["parameters"]
        self.assertEqual(sorted(parameters), ["ECHO", "INTERVAL", "SERIAL", "UNITS"])


class DiscoverOnStartTests(SynchronousTestCase):
    """
    L{InstrumentProtocol.discover_on_start}: a protocol that finds its
    state by itself whenever its link comes up.
    """

    class Discovering(ToyProtocol):
        discover_on_start = True

    def test_discoversAtStart(self) -> None:
        """
        Started, the protocol discovers the instrument's state without being
        asked.
        """
        bench = ToyBench(protocol=self.Discovering)
        bench.run(2)
        self.assertEqual(bench.protocol.state, "COMMAND")

    def test_askingSharesTheDiscovery(self) -> None:
        """
        A discover asked for while the start's discovery runs shares its
        result: the instrument is asked once.
        """
        alone = ToyBench(protocol=self.Discovering)
        alone.run(2)
        bench = ToyBench(protocol=self.Discovering)
        shared = bench.protocol.discover()
        bench.run(2)
        self.assertEqual(self.successResultOf(shared), "COMMAND")
        self.assertEqual(bench.toy.commands, alone.toy.commands)

    def test_failurePublished(self) -> None:
        """
        A discovery that fails with nobody waiting is published as an error
        event, never lost.
        """
        bench = ToyBench(protocol=self.Discovering)
        bench.toy.hanging = True
        bench.run(120)
        self.assertTrue(bench.of_type(ErrorEvent))

    def test_offByDefault(self) -> None:
        """
        By default a protocol waits to be asked.
        """
        bench = ToyBench()
        bench.run(2)
        self.assertEqual(bench.protocol.state, "UNKNOWN")
