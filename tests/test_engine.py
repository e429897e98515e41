"""
Tests for L{instrumentd.driver.engine}: commands and their replies,
timeouts and recovery, the queue and its guards, wake-up, paced writes.

The instrument here is a list of written bytes and calls to
C{data_received}; the toy instrument tests (L{tests.test_protocol}) drive
the same engine through a simulated instrument.
"""

from __future__ import annotations

import re

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.engine import (
    Command,
    CommandEngine,
    InstrumentSession,
    Reply,
    Wakeup,
    keep_reply,
    text_command,
)
from instrumentd.driver.errors import (
    InstrumentConnectionError,
    InstrumentStateError,
    InstrumentTimeoutError,
)

STATUS = Command(
    name="status", build=text_command("ds"), parse=lambda r: r.body, timeout=5
)
TAKE = Command(
    name="take_sample",
    build=text_command("ts"),
    parse=lambda r: r.match.group(1) if r.match else b"",
    regex=re.compile(rb"T=(\d+\.\d+)\r\n"),
    timeout=2,
)
START = Command(
    name="start",
    build=text_command("start"),
    parse=keep_reply,
    expects_reply=False,
)


class Wire:
    """
    The instrument's end: records what the engine writes.
    """

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.written.append(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.written)


def make_engine(**kwargs: object) -> tuple[CommandEngine, Wire, Clock]:
    clock = Clock()
    wire = Wire()
    options: dict[str, object] = {"prompts": [b"S>", b"AS>"], "clock": clock}
    options.update(kwargs)
    engine = CommandEngine(wire, **options)  # type: ignore[arg-type]
    return engine, wire, clock


class CommandTests(SynchronousTestCase):
    """
    Declaring commands and sending them.
    """

    def test_promptEndsReply(self) -> None:
        """
        A command's Deferred fires with the parsed reply once a prompt
        arrives, even when the reply comes in fragments.
        """
        engine, wire, _ = make_engine()
        result = engine.execute(STATUS)
        self.assertEqual(wire.data, b"ds\r\n")
        self.assertNoResult(result)
        engine.data_received(b"ds\r\nvbatt = 12")
        self.assertNoResult(result)
        engine.data_received(b".1\r\nS")
        self.assertNoResult(result)
        engine.data_received(b">")
        self.assertEqual(self.successResultOf(result), "ds\r\nvbatt = 12.1")

    def test_longestPromptFirst(self) -> None:
        """
        Prompts are looked for longest first, so C{AS>} is not taken for
        C{S>}.
        """
        engine, _, _ = make_engine()
        result = engine.execute(
            Command(name="x", build=text_command("x"), parse=keep_reply)
        )
        engine.data_received(b"x\r\nAS>")
        self.assertEqual(self.successResultOf(result).prompt, b"AS>")

    def test_regexEndsReply(self) -> None:
        """
        A command declared with a regex waits for a match, not a prompt;
        the match is given to the parser.
        """
        engine, _, _ = make_engine()
        result = engine.execute(TAKE)
        engine.data_received(b"ts\r\nS>")
        self.assertNoResult(result)
        engine.data_received(b"T=21.50\r\n")
        self.assertEqual(self.successResultOf(result), b"21.50")

    def test_holdsPassesOverStrayPrompt(self) -> None:
        """
        A command declared with C{holds} passes over a prompt that arrives
        before what its reply must hold (a late answer to an earlier
        wake-up) and ends at the first prompt after it; what follows stays
        for the next command.
        """
        engine, _, _ = make_engine()
        dump = Command(
            name="ds",
            build=text_command("ds"),
            parse=keep_reply,
            holds=re.compile(rb"vbatt = \S+\r\n"),
        )
        result = engine.execute(dump)
        engine.data_received(b"\r\n\r\nS>")
        self.assertNoResult(result)
        engine.data_received(b"ds\r\nvbatt = 12.1\r\n\r\nS>\r\nS>")
        reply = self.successResultOf(result)
        self.assertTrue(reply.data.endswith(b"vbatt = 12.1\r\n\r\nS>"))
        self.assertEqual(bytes(engine._reply_buffer), b"\r\nS>")

    def test_holdsRefusalEnds(self) -> None:
        """
        A refusal (the engine's C{error} mark) ends a C{holds} command's
        reply at its prompt, failing the command at once rather than at its
        timeout.
        """
        engine, _, _ = make_engine(error=re.compile(rb"\?cmd"))
        dump = Command(
            name="ds",
            build=text_command("ds"),
            parse=keep_reply,
            holds=re.compile(rb"vbatt"),
        )
        result = engine.execute(dump)
        engine.data_received(b"ds\r\n?cmd S>")
        self.assertIn("?cmd", str(self.failureResultOf(result).value))

    def test_holdsNotWithRegex(self) -> None:
        """
        C{holds} is for replies ended by a prompt; with a regex it is an
        error naming the command.
        """
        with self.assertRaises(ValueError) as raised:
            Command(
                name="x",
                build=text_command("x"),
                parse=keep_reply,
                regex=re.compile(b"x"),
                holds=re.compile(b"y"),
            )
        self.assertIn("command x", str(raised.exception))

    def test_arguments(self) -> None:
        """
        Keyword arguments are given to the command's builder.
        """
        engine, wire, _ = make_engine()
        setter = Command(
            name="set", build=text_command("{name}={value}"), parse=keep_reply
        )
        engine.execute(setter, name="interval", value=5)
        self.assertEqual(wire.data, b"interval=5\r\n")

    def test_oldPromptIgnored(self) -> None:
        """
        A prompt that arrived before the command was sent does not end its
        reply.
        """
        engine, _, _ = make_engine()
        engine.data_received(b"S>")
        result = engine.execute(STATUS)
        self.assertNoResult(result)

    def test_fireAndForget(self) -> None:
        """
        A command that expects no reply fires as soon as it is written, and
        leaves no timer behind.
        """
        engine, wire, clock = make_engine()
        result = engine.execute(START)
        self.assertEqual(self.successResultOf(result), Reply("start", b""))
        self.assertEqual(wire.data, b"start\r\n")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_promptAndRegexExclusive(self) -> None:
        """
        A command cannot end its reply with both a prompt and a regex.
        """
        with self.assertRaises(ValueError):
            Command(
                name="x",
                build=text_command("x"),
                parse=keep_reply,
                prompts=(b"S>",),
                regex=re.compile(b"x"),
            )

    def test_replyBody(self) -> None:
        """
        L{Reply.body} is the reply's text without its prompt.
        """
        self.assertEqual(Reply("x", b" a\r\nS>", prompt=b"S>").body, "a")
        self.assertEqual(Reply("x", b"\xb0C").text, "\xb0C")


class TimeoutTests(SynchronousTestCase):
    """
    Replies that do not come.
    """

    def test_timeout(self) -> None:
        """
        With no reply, the command fails after its timeout with an
        L{InstrumentTimeoutError} naming the command and what it awaited.
        """
        engine, _, clock = make_engine()
        result = engine.execute(STATUS)
        clock.advance(4.9)
        self.assertNoResult(result)
        clock.advance(0.1)
        error = self.failureResultOf(result, InstrumentTimeoutError).value
        self.assertEqual(error.command, "status")
        self.assertEqual(error.awaited, ("'AS>'", "'S>'"))
        self.assertEqual(error.timeout, 5)
        self.assertEqual(engine.timeouts, 1)

    def test_replyWaitingAtTimeout(self) -> None:
        """
        A reply read in the same reactor turn in which the timeout falls
        due, after the timers (a late reactor runs its due timers before it
        reads its sockets), still answers the command.
        """
        engine, _, clock = make_engine()
        result = engine.execute(STATUS)
        # Due at the same moment as the timeout, and run after it, as the
        # reactor's read comes after its timers.
        clock.callLater(5, engine.data_received, b"status ok\r\nS>")
        clock.advance(5)
        self.assertEqual(self.successResultOf(result), "status ok")
        self.assertEqual(engine.timeouts, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_regexTimeoutNamesRegex(self) -> None:
        """
        A regex command's timeout names the regex it awaited.
        """
        engine, _, clock = make_engine()
        result = engine.execute(TAKE)
        clock.advance(2)
        error = self.failureResultOf(result, InstrumentTimeoutError).value
        self.assertIn("regex", error.awaited[0])

    def test_readyAfterTimeout(self) -> None:
        """
        After a timeout the engine sends the next command, and a late reply
        to the old one does not end the new one's reply early.
        """
        engine, wire, clock = make_engine()
        first = engine.execute(STATUS)
        second = engine.execute(TAKE)
        self.assertEqual(wire.written, [b"ds\r\n"])
        clock.advance(5)
        self.failureResultOf(first, InstrumentTimeoutError)
        self.assertEqual(wire.written, [b"ds\r\n", b"ts\r\n"])
        engine.data_received(b"T=1.00\r\n")
        self.assertEqual(self.successResultOf(second), b"1.00")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_noTimerAfterReply(self) -> None:
        """
        A reply cancels the command's timer.
        """
        engine, _, clock = make_engine()
        engine.execute(STATUS)
        engine.data_received(b"S>")
        self.assertEqual(clock.getDelayedCalls(), [])


class QueueTests(SynchronousTestCase):
    """
    One command at a time, in order.
    """

    def test_serialised(self) -> None:
        """
        A second command is not sent until the first has its reply; then
        they complete in order.
        """
        engine, wire, _ = make_engine()
        first = engine.execute(STATUS)
        second = engine.execute(TAKE)
        third = engine.execute(START)
        self.assertEqual(wire.written, [b"ds\r\n"])
        self.assertEqual(engine.queued, 2)
        self.assertTrue(engine.busy)
        engine.data_received(b"S>")
        self.assertEqual(self.successResultOf(first), "")
        self.assertEqual(wire.written, [b"ds\r\n", b"ts\r\n"])
        engine.data_received(b"T=2.00\r\n")
        self.assertEqual(self.successResultOf(second), b"2.00")
        self.successResultOf(third)
        self.assertEqual(wire.written, [b"ds\r\n", b"ts\r\n", b"start\r\n"])
        self.assertFalse(engine.busy)

    def test_guardRefuses(self) -> None:
        """
        A guard that raises when the command's turn comes stops it before
        anything is sent; the queue goes on.
        """
        engine, wire, _ = make_engine()
        allowed = [True]

        def guard() -> None:
            if not allowed[0]:
                raise InstrumentStateError("AUTOSAMPLE", "status", ["stop"])

        first = engine.execute(STATUS)
        refused = engine.execute(STATUS, guard=guard)
        last = engine.execute(START)
        allowed[0] = False
        engine.data_received(b"S>")
        self.successResultOf(first)
        self.failureResultOf(refused, InstrumentStateError)
        self.successResultOf(last)
        self.assertEqual(wire.written, [b"ds\r\n", b"start\r\n"])

    def test_resultBeforeNextGuard(self) -> None:
        """
        Callbacks on a command's result run before the next command's guard
        is checked, so a state change they make is seen.
        """
        engine, wire, _ = make_engine()
        state = ["COMMAND"]

        def guard() -> None:
            if state[0] != "COMMAND":
                raise InstrumentStateError(state[0], "status", [])

        first = engine.execute(START)  # completes at once
        self.successResultOf(first)
        blocker = engine.execute(STATUS)
        blocker.addCallback(lambda _: state.__setitem__(0, "AUTOSAMPLE"))
        refused = engine.execute(STATUS, guard=guard)
        engine.data_received(b"S>")
        self.failureResultOf(refused, InstrumentStateError)
        self.assertEqual(wire.written, [b"start\r\n", b"ds\r\n"])

    def test_exclusive(self) -> None:
        """
        Work queued with C{exclusive} holds the instrument for all its
        commands: nothing queued later is sent in between.
        """
        engine, wire, _ = make_engine()

        async def body(session: InstrumentSession) -> list[str]:
            first = await session.run(STATUS)
            second = await session.run(STATUS)
            return [first, second]

        both = engine.exclusive(body)
        other = engine.execute(START)
        engine.data_received(b"one S>")
        self.assertEqual(wire.written, [b"ds\r\n", b"ds\r\n"])
        engine.data_received(b"two S>")
        self.assertEqual(self.successResultOf(both), ["one", "two"])
        self.successResultOf(other)
        self.assertEqual(wire.written[-1], b"start\r\n")

    def test_sessionEnds(self) -> None:
        """
        A session cannot be used after its work has finished.
        """
        engine, _, _ = make_engine()
        kept: list[InstrumentSession] = []

        def body(session: InstrumentSession) -> Deferred[None]:
            kept.append(session)
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d

        self.successResultOf(engine.exclusive(body))
        self.assertRaises(InstrumentConnectionError, kept[0].write, b"x")

    def test_bodyRaises(self) -> None:
        """
        Work whose body raises fails, and the engine goes on.
        """
        engine, wire, _ = make_engine()

        def body(session: InstrumentSession) -> Deferred[None]:
            raise ValueError("bad")

        self.failureResultOf(engine.exclusive(body), ValueError)
        self.successResultOf(engine.execute(START))
        self.assertEqual(wire.written, [b"start\r\n"])

    def test_cancelQueued(self) -> None:
        """
        Cancelling queued work takes it off the queue; it is never sent.
        """
        engine, wire, _ = make_engine()
        engine.execute(STATUS)
        queued = engine.execute(TAKE)
        queued.cancel()
        self.failureResultOf(queued)
        engine.data_received(b"S>")
        self.assertEqual(wire.written, [b"ds\r\n"])

    def test_stop(self) -> None:
        """
        Stopping the engine fails the active and queued work with the
        reason, leaves no timer, and fails later work at once.
        """
        engine, wire, clock = make_engine()
        active = engine.execute(STATUS)
        queued = engine.execute(TAKE)
        reason = InstrumentConnectionError("instrument link down")
        engine.stop(reason)
        self.assertIs(self.failureResultOf(active).value, reason)
        self.assertIs(self.failureResultOf(queued).value, reason)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.failureResultOf(engine.execute(STATUS), InstrumentConnectionError)
        self.assertEqual(wire.written, [b"ds\r\n"])

    def test_sendFails(self) -> None:
        """
        A command whose bytes cannot be sent (the connection is down) fails
        with the connection's error, and the engine goes on.
        """
        calls: list[bytes] = []

        def refuse(data: bytes) -> None:
            calls.append(data)
            if len(calls) == 1:
                raise InstrumentConnectionError("not connected")

        engine = CommandEngine(refuse, prompts=[b"S>"], clock=Clock())
        self.failureResultOf(engine.execute(STATUS), InstrumentConnectionError)
        self.successResultOf(engine.execute(START))


class WakeupTests(SynchronousTestCase):
    """
    Waking an instrument only when it may be asleep.
    """

    WAKE = Wakeup(data=b"\r\n", timeout=1.0, tries=3, sleep_after=60)

    def test_firstCommandWakes(self) -> None:
        """
        Before anything has been heard from it, the instrument is woken
        before the first command.
        """
        engine, wire, _ = make_engine(wakeup=self.WAKE)
        result = engine.execute(STATUS)
        self.assertEqual(wire.written, [b"\r\n"])
        engine.data_received(b"S>")
        self.assertEqual(wire.written, [b"\r\n", b"ds\r\n"])
        engine.data_received(b"ok S>")
        self.assertEqual(self.successResultOf(result), "ok")

    def test_noWakeWhileAwake(self) -> None:
        """
        While the instrument has had input within its sleep time, commands
        are sent with no wake-up.
        """
        engine, wire, clock = make_engine(wakeup=self.WAKE)
        engine.execute(STATUS)
        engine.data_received(b"S>")
        engine.data_received(b"S>")
        clock.advance(59)
        engine.execute(STATUS)
        self.assertEqual(wire.written, [b"\r\n", b"ds\r\n", b"ds\r\n"])
        self.assertEqual(engine.wake_attempts, 1)

    def test_wakeAfterIdle(self) -> None:
        """
        Once the instrument has been idle for its sleep time, the next
        command wakes it first.
        """
        engine, wire, clock = make_engine(wakeup=self.WAKE)
        engine.execute(STATUS)
        engine.data_received(b"S>")
        engine.data_received(b"S>")
        clock.advance(60)
        engine.execute(STATUS)
        self.assertEqual(wire.written[-1], b"\r\n")

    def test_wakeAfterTimeout(self) -> None:
        """
        After a command timed out, the next one wakes the instrument, even
        if it has no sleep time.
        """
        wake = Wakeup(data=b"\r\n", timeout=1.0, tries=1)
        engine, wire, clock = make_engine(wakeup=wake)
        engine.execute(START)
        engine.data_received(b"S>")
        self.assertEqual(wire.written, [b"\r\n", b"start\r\n"])
        clock.advance(3600)
        lost = engine.execute(STATUS)
        self.assertEqual(wire.written[-1], b"ds\r\n")
        clock.advance(5)
        self.failureResultOf(lost, InstrumentTimeoutError)
        engine.execute(STATUS)
        self.assertEqual(wire.written[-1], b"\r\n")

    def test_wakeRetries(self) -> None:
        """
        An unanswered wake-up is retried after its own timeout, up to its
        number of tries.
        """
        engine, wire, clock = make_engine(wakeup=self.WAKE)
        result = engine.execute(STATUS)
        clock.advance(1)
        clock.advance(1)
        self.assertEqual(wire.written, [b"\r\n"] * 3)
        engine.data_received(b"S>")
        self.assertEqual(wire.written[-1], b"ds\r\n")
        engine.data_received(b"S>")
        self.successResultOf(result)
        self.assertEqual(engine.wake_attempts, 3)

    def test_wakeGivesUp(self) -> None:
        """
        When no try is answered the command fails with a timeout naming the
        wake-up, is never sent, and the next command tries again.
        """
        engine, wire, clock = make_engine(wakeup=self.WAKE)
        result = engine.execute(STATUS)
        clock.advance(1)
        clock.advance(1)
        clock.advance(1)
        error = self.failureResultOf(result, InstrumentTimeoutError).value
        self.assertIn("wake-up for status", error.command)
        self.assertNotIn(b"ds\r\n", wire.written)
        self.assertEqual(clock.getDelayedCalls(), [])
        engine.execute(STATUS)
        self.assertEqual(wire.written[-1], b"\r\n")

    def test_commandWithoutWake(self) -> None:
        """
        A command declared with C{wake=False} is never preceded by a
        wake-up.
        """
        engine, wire, _ = make_engine(wakeup=self.WAKE)
        engine.execute(
            Command(name="break", build=lambda: b"\x03", parse=keep_reply, wake=False)
        )
        self.assertEqual(wire.written, [b"\x03"])


class WriteDelayTests(SynchronousTestCase):
    """
    Writing one character at a time.
    """

    def test_paced(self) -> None:
        """
        With a write delay, characters are written one at a time with that
        delay between them, and the reply is awaited after the last.
        """
        engine, wire, clock = make_engine(write_delay=0.1)
        result = engine.execute(STATUS)
        self.assertEqual(wire.written, [b"d"])
        clock.advance(0.1)
        self.assertEqual(wire.written, [b"d", b"s"])
        clock.pump([0.1, 0.1])
        self.assertEqual(wire.data, b"ds\r\n")
        engine.data_received(b"S>")
        self.successResultOf(result)

    def test_perCommandDelay(self) -> None:
        """
        A command's own write delay overrides the engine's.
        """
        engine, wire, _ = make_engine(write_delay=0.1)
        fast = Command(
            name="fast", build=text_command("ok"), parse=keep_reply, write_delay=0
        )
        engine.execute(fast)
        self.assertEqual(wire.written, [b"ok\r\n"])

    def test_stopWhilePacing(self) -> None:
        """
        Stopping the engine part way through a paced write ends it: no
        timer is left and the work fails.
        """
        engine, wire, clock = make_engine(write_delay=0.1)
        result = engine.execute(STATUS)
        engine.stop(InstrumentConnectionError("gone"))
        self.failureResultOf(result, InstrumentConnectionError)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(wire.written, [b"d"])

    def test_directWrite(self) -> None:
        """
        Direct writes bypass the queue.
        """
        engine, wire, _ = make_engine()
        engine.execute(STATUS)
        engine.execute(TAKE)
        self.successResultOf(engine.write_direct(b"raw"))
        self.assertEqual(wire.written, [b"ds\r\n", b"raw"])


class SilentWakeupTests(SynchronousTestCase):
    """
    An instrument that may wake without a word and loses what woke it
    (L{Wakeup.may_be_silent}).
    """

    WAKE = Wakeup(
        data=b"//\r\n", prompts=(b"!",), timeout=0.5, tries=3, may_be_silent=True
    )

    def test_indicatorEndsTheWait(self) -> None:
        """
        The wake-up indicator, when the instrument sends it, ends the wait
        at once.
        """
        engine, wire, _ = make_engine(wakeup=self.WAKE)
        result = engine.execute(STATUS)
        self.assertEqual(wire.written, [b"//\r\n"])
        engine.data_received(b"!")
        self.assertEqual(wire.written, [b"//\r\n", b"ds\r\n"])
        engine.data_received(b"ok S>")
        self.assertEqual(self.successResultOf(result), "ok")

    def test_silenceTakenAsAwake(self) -> None:
        """
        With no indicator, the command goes after the wake-up's timeout.
        """
        engine, wire, clock = make_engine(wakeup=self.WAKE)
        result = engine.execute(STATUS)
        clock.advance(0.5)
        self.assertEqual(wire.written, [b"//\r\n", b"ds\r\n"])
        engine.data_received(b"ok S>")
        self.assertEqual(self.successResultOf(result), "ok")
        self.assertEqual(engine.wake_attempts, 1)

    def test_lostCommandSentAgain(self) -> None:
        """
        A command sent after a silent wake-up that is not answered (it was
        lost waking the instrument) is sent again after a new wake-up, up to
        the wake-up's number of tries; then it fails.
        """
        engine, wire, clock = make_engine(wakeup=self.WAKE)
        result = engine.execute(STATUS)
        clock.advance(0.5)
        clock.advance(STATUS.timeout)
        self.assertEqual(wire.written, [b"//\r\n", b"ds\r\n", b"//\r\n"])
        clock.advance(0.5)
        self.assertEqual(wire.written[-1], b"ds\r\n")
        engine.data_received(b"ok S>")
        self.assertEqual(self.successResultOf(result), "ok")

    def test_givesUpAfterTries(self) -> None:
        """
        After as many wake-ups as the wake-up allows, an unanswered command
        fails with a timeout naming it.
        """
        engine, wire, clock = make_engine(wakeup=self.WAKE)
        result = engine.execute(STATUS)
        for _ in range(3):
            clock.advance(0.5)
            clock.advance(STATUS.timeout)
        self.assertEqual(wire.written.count(b"ds\r\n"), 3)
        failure = self.failureResultOf(result, InstrumentTimeoutError)
        self.assertIn("status", str(failure.value))

    def test_awakeInstrumentRetried(self) -> None:
        """
        A command sent with no wake-up (the instrument was heard from
        recently, but fell asleep sooner than thought) is sent again after
        a wake-up when it times out.
        """
        engine, wire, clock = make_engine(wakeup=self.WAKE)
        engine.execute(STATUS)
        engine.data_received(b"!")
        engine.data_received(b"ok S>")
        lost = engine.execute(STATUS)
        clock.advance(STATUS.timeout)
        self.assertEqual(wire.written, [b"//\r\n", b"ds\r\n", b"ds\r\n", b"//\r\n"])
        engine.data_received(b"!")
        engine.data_received(b"ok S>")
        self.assertEqual(self.successResultOf(lost), "ok")

    def test_sleepTimeLearned(self) -> None:
        """
        A protocol that learns the instrument's sleep time sets it on the
        engine; the next command after that long idle wakes it first.
        """
        engine, wire, clock = make_engine(wakeup=self.WAKE)
        self.assertIsNone(engine.sleep_after)
        engine.execute(STATUS)
        engine.data_received(b"!")
        engine.data_received(b"ok S>")
        engine.sleep_after = 10.0
        clock.advance(10)
        engine.execute(STATUS)
        self.assertEqual(wire.written[-1], b"//\r\n")


class QuietTimeoutTests(SynchronousTestCase):
    """
    Timeouts an operator's log should show, and those it should not: a
    probe's silence (C{await_reply(probe=True)}) and a silent wake-up are
    answers, not problems.
    """

    def test_commandTimeoutLogged(self) -> None:
        """
        A command that gets no reply is logged.
        """
        engine, _, clock = make_engine()
        with capturedLogs() as events:
            lost = engine.execute(STATUS)
            clock.advance(STATUS.timeout)
        self.failureResultOf(lost, InstrumentTimeoutError)
        self.assertEqual(
            [e["log_format"] for e in events],
            ["No reply to {command} within {timeout} s"],
        )

    def test_probeNotLogged(self) -> None:
        """
        A probe that hears nothing fails its Deferred and logs nothing.
        """
        engine, _, clock = make_engine()

        async def probe(session: InstrumentSession) -> str:
            try:
                await session.await_reply("probe", timeout=1.0, probe=True)
            except InstrumentTimeoutError:
                return "silent"
            return "answered"

        with capturedLogs() as events:
            result = engine.exclusive(probe, name="probe")
            clock.advance(1.0)
        self.assertEqual(self.successResultOf(result), "silent")
        self.assertEqual(events, [])

    def test_silentWakeNotLogged(self) -> None:
        """
        A wake-up that may get no answer logs nothing when it gets none.
        """
        wake = Wakeup(
            data=b"//\r\n", prompts=(b"!",), timeout=0.5, tries=3, may_be_silent=True
        )
        engine, _, clock = make_engine(wakeup=wake)
        with capturedLogs() as events:
            result = engine.execute(STATUS)
            clock.advance(0.5)
            engine.data_received(b"ok S>")
        self.assertEqual(self.successResultOf(result), "ok")
        self.assertEqual(events, [])
