"""
Steps drivers share (:mod:`instrumentd.driver.routines`) and inputs whose
work is a protocol method (:func:`instrumentd.driver.states.loop_inputs`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.engine import CommandEngine, InstrumentSession
from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.protocol import ProtocolInputs, loop_inputs, standard_states
from instrumentd.driver.routines import next_utc_second, paused
from instrumentd.driver.textcommands import line_command
from tests.toyinstrument import ToyBench, ToyInputs, ToyProtocol

STOP = line_command("STOP")
START = line_command("START")


class NextSecondTests(SynchronousTestCase):
    """
    Waiting for the next whole UTC second, on the clock.
    """

    def test_waits(self) -> None:
        """
        It fires as the next second begins, with that second, and not
        before.
        """
        clock = Clock()
        clock.advance(1_700_000_000.25)
        done = ensureDeferred(next_utc_second(clock))
        clock.advance(0.74)
        self.assertNoResult(done)
        clock.advance(0.01)
        self.assertEqual(
            self.successResultOf(done),
            datetime.fromtimestamp(1_700_000_001, UTC),
        )

    def test_onTheSecond(self) -> None:
        """
        On a whole second, it waits for the next one (never fires at once
        with the second already under way).
        """
        clock = Clock()
        clock.advance(1_700_000_000.0)
        done = ensureDeferred(next_utc_second(clock))
        self.assertNoResult(done)
        clock.advance(1.0)
        self.assertEqual(
            self.successResultOf(done), datetime.fromtimestamp(1_700_000_001, UTC)
        )


class PausedTests(SynchronousTestCase):
    """
    Work with the instrument's sampling stopped, started again whatever
    happens.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.sent: list[bytes] = []
        self.engine = CommandEngine(
            self.sent.append,
            prompts=(b">",),
            clock=self.clock,
            error=re.compile(rb"ERR"),
        )

    def answer(self, *replies: bytes) -> None:
        for reply in replies:
            self.engine.data_received(reply)

    def work(self, sampling: bool, fail: bool = False) -> Deferred[str]:
        async def body(session: InstrumentSession) -> str:
            async with paused(session, STOP, START, sampling):
                await session.run(line_command("SET"))
                if fail:
                    raise InstrumentProtocolError("the work failed")
                return "done"

        return self.engine.exclusive(body)

    def test_stopsAndStarts(self) -> None:
        """
        Stop, the work, start, in that order.
        """
        done = self.work(sampling=True)
        self.answer(b">", b">", b">")
        self.assertEqual(self.successResultOf(done), "done")
        self.assertEqual(self.sent, [b"STOP\r\n", b"SET\r\n", b"START\r\n"])

    def test_notSampling(self) -> None:
        """
        Not sampling: the work alone.
        """
        done = self.work(sampling=False)
        self.answer(b">")
        self.assertEqual(self.successResultOf(done), "done")
        self.assertEqual(self.sent, [b"SET\r\n"])

    def test_startsAfterFailure(self) -> None:
        """
        Work that fails still starts sampling again; its error is the one
        raised.
        """
        done = self.work(sampling=True, fail=True)
        self.answer(b">", b">", b">")
        self.failureResultOf(done, InstrumentProtocolError)
        self.assertEqual(self.sent, [b"STOP\r\n", b"SET\r\n", b"START\r\n"])

    def test_functions(self) -> None:
        """
        A step may be a function of the session (a break, say).
        """
        steps: list[str] = []

        async def stop(session: InstrumentSession) -> None:
            steps.append("stop")

        async def body(session: InstrumentSession) -> str:
            async with paused(session, stop, START):
                steps.append("work")
                return "done"

        done = self.engine.exclusive(body)
        self.answer(b">")
        self.assertEqual(self.successResultOf(done), "done")
        self.assertEqual((steps, self.sent), (["stop", "work"], [b"START\r\n"]))

    def test_stopRefused(self) -> None:
        """
        A refused stop fails the work before it runs; nothing is started.
        """
        done = self.work(sampling=True)
        self.answer(b"ERR 010 >")
        self.failureResultOf(done, InstrumentProtocolError)
        self.assertEqual(self.sent, [b"STOP\r\n"])


class PokeInputs(ToyInputs):
    def poke(self, times: int) -> Deferred[str]:
        """
        Poke the toy.
        """


class PokeProtocol(ToyProtocol):
    inputs = PokeInputs

    def poke(self, times: int) -> Deferred[str]:
        return self.run("poke", line_command(f"poke {times}", parse=lambda r: "ok"))


def _poke_machine() -> Any:
    builder = TypeMachineBuilder(PokeInputs, PokeProtocol)
    states = standard_states(builder)
    loop_inputs((states.command, states.autosample), PokeInputs.poke)
    return builder.build()


PokeProtocol.machine_factory = _poke_machine()


class LoopInputsTests(SynchronousTestCase):
    """
    An input whose work is the protocol's method of the same name.
    """

    def test_runsTheMethod(self) -> None:
        """
        In the states given, the input runs the method with its arguments
        and stays in its state; elsewhere it is refused.
        """
        bench = ToyBench(protocol=PokeProtocol)
        self.assertNotIn("poke", bench.protocol.get_capabilities())
        bench.protocol.discover()
        bench.run(2.0)
        self.assertEqual(bench.protocol.state, "COMMAND")
        self.assertIn("poke", bench.protocol.get_capabilities())
        done = bench.protocol.execute("poke", times=2)
        bench.run(2.0)
        self.assertEqual(self.successResultOf(done), "ok")
        self.assertEqual(bench.protocol.state, "COMMAND")
        self.assertIn(b"poke 2\r\n", b"".join(bench.toy.received))

    def test_namedAsTheMethod(self) -> None:
        """
        The behaviour is named as the method (diagrams say what runs).
        """
        source = PokeProtocol.machine_factory.asDigraph().source
        self.assertIn('<font point-size="9">poke</font>', source)

    def test_report(self) -> None:
        """
        A report (a private input) cannot be given a method.
        """
        builder = TypeMachineBuilder(ProtocolInputs, ToyProtocol)
        states = standard_states(builder)
        with self.assertRaises(ValueError) as caught:
            loop_inputs((states.command,), ProtocolInputs._unknown)
        self.assertIn("_unknown is a report", str(caught.exception))
