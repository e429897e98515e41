# -*- test-case-name: tests.test_engine -*-
"""
The command/response engine: sending commands to an instrument and waiting
for its replies, one command at a time, without sleeping or polling.

A command is declared once, as a :class:`Command`: how to build its bytes,
what ends its reply (one of the instrument's prompts, longest first, or a
regular expression), how long to wait, and how to parse the reply (the
declarations, with :class:`Wakeup` and :class:`Reply`, are in
:mod:`instrumentd.driver.dialogue` and re-exported here).  The
:class:`CommandEngine` sends it and returns a Deferred that fires when the
reply has arrived (the engine sees every byte the instrument sends through
:meth:`CommandEngine.data_received`) or fails with an
:class:`~instrumentd.driver.errors.InstrumentTimeoutError` from a
``callLater`` timeout, after which the engine is ready for the next command.
A timeout is final one reactor turn after it falls due, once the reactor
has read what waits in its sockets (its timers run first in each turn).

Work is serialised: :meth:`CommandEngine.execute` and
:meth:`CommandEngine.exclusive` queue in order, and only the work at the head
of the queue talks to the instrument.  ``exclusive`` holds the instrument for
a whole exchange of several commands (set some parameters, then read them
back) through an :class:`InstrumentSession`, so nothing else interleaves.
Each queued piece of work can carry a *guard*, checked when it reaches the
head of the queue and before anything is sent: the protocol machines use it
to refuse a command that was valid when it was queued but is not any more
(the instrument went into autosample meanwhile).

Instruments that sleep are woken with a declared :class:`Wakeup` sequence,
sent only when the instrument may be asleep: it has been idle longer than
its sleep time, a command has timed out, or nothing has been heard from it
yet.  The OOI framework woke the instrument (with a one-second sleep)
before *every* command; this engine does not.

Instruments woken by a serial break (an RDI ADCP) declare ``break_ms`` in
their :class:`Wakeup`: the engine asks the connection for a break (the port
agent's ``break`` command) and, where the link cannot carry one (a TCP
device server), sends the wake-up's ``data`` instead (a soft break such as
``===``).

An instrument that marks a refused command with a line of its own (``ERR
045: PARAMETER OUT OF BOUNDS``, ``?cmd``) declares it once as the engine's
``error`` pattern: a reply containing it fails its command with an
:class:`~instrumentd.driver.errors.InstrumentProtocolError` quoting the
line, so no parser has to look for it.

Instruments that drop characters typed too fast get a per-character write
delay, paced with ``callLater``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    ensureDeferred,
    fail,
    succeed,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from instrumentd.driver.dialogue import (
    DEFAULT_TIMEOUT,
    Command,
    Reply,
    Wakeup,
    keep_reply,
    text_command,
)
from instrumentd.driver.errors import (
    InstrumentConnectionError,
    InstrumentError,
    InstrumentProtocolError,
    InstrumentTimeoutError,
)

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = [
    "DEFAULT_TIMEOUT",
    "Command",
    "CommandEngine",
    "InstrumentSession",
    "Reply",
    "Wakeup",
    "keep_reply",
    "text_command",
]

_log = Logger()

T = TypeVar("T")

#: Bytes of instrument output kept while waiting for a reply; the oldest are
#: dropped past this, so a chatty instrument cannot grow memory without end.
REPLY_BUFFER_LIMIT = 65536


def _longest_first(prompts: Sequence[bytes]) -> tuple[bytes, ...]:
    return tuple(sorted(prompts, key=len, reverse=True))


@dataclass(eq=False)
class _Wait:
    """
    The one reply the engine is waiting for.
    """

    name: str
    prompts: tuple[bytes, ...]
    regex: re.Pattern[bytes] | None
    timeout: float
    done: Deferred[Reply]
    timer: IDelayedCall | None = None
    #: Silence is an answer here (a probe, a wake-up that may get none):
    #: its timeout is not logged.
    quiet: bool = False
    #: What the reply must hold before its prompt (:attr:`Command.holds`).
    holds: re.Pattern[bytes] | None = None
    #: The timeout came and waits one reactor turn (see ``_timed_out``).
    last_look: bool = False

    def awaited(self) -> re.Pattern[bytes] | tuple[bytes, ...]:
        return self.regex if self.regex is not None else self.prompts


@dataclass(eq=False)
class _Job:
    """
    Queued work: a body that talks to the instrument through a session.
    """

    name: str
    body: Callable[[InstrumentSession], Coroutine[Any, Any, object] | Deferred[object]]
    guard: Callable[[], None] | None
    done: Deferred[object]
    session: InstrumentSession | None = field(default=None, repr=False)


class InstrumentSession:
    """
    The instrument, held by one piece of work: what the body given to
    :meth:`CommandEngine.exclusive` uses to talk to it.  Nothing else is
    sent to the instrument (except direct-access bytes) until the body
    finishes.
    """

    def __init__(self, engine: CommandEngine, name: str) -> None:
        self._engine = engine
        self._open = True
        self.name = name

    def _check(self) -> None:
        if not self._open:
            raise InstrumentConnectionError(
                f"the session for {self.name} has ended; queue new work with the engine"
            )

    def close(self) -> None:
        """
        End the session: later calls raise, and a wait the body left
        behind without awaiting it is cancelled.
        """
        self._open = False
        self._engine._cancel_wait(quietly=True)

    async def run(self, command: Command[T], **arguments: object) -> T:
        """
        Send one command and wait for its reply, waking the instrument
        first if it may be asleep.

        :param command: the command.
        :param arguments: passed to ``command.build``.
        :returns: ``command.parse`` of the reply.
        :raises InstrumentTimeoutError: if the wake-up or the reply did not
            come in time.
        """
        self._check()
        wakeup = self._engine.wakeup
        if command.wake and self._engine.may_be_asleep():
            await self.wake(command.name)
        data = command.build(**arguments)
        # An instrument that may wake silently gets an unanswered command
        # again, after a new wake-up: the command may have been what woke it.
        retries = (
            wakeup.tries - 1
            if command.wake and wakeup is not None and wakeup.may_be_silent
            else 0
        )
        while True:
            await self.write(data, command.write_delay)
            if not command.expects_reply:
                return command.parse(Reply(command.name, b""))
            try:
                reply = await self.await_reply(
                    command.name,
                    prompts=command.prompts,
                    regex=command.regex,
                    holds=command.holds,
                    timeout=command.timeout,
                )
            except InstrumentTimeoutError:
                if not retries:
                    raise
                retries -= 1
                await self.wake(command.name, tries=1)
                continue
            self._engine.check_refusal(reply)
            return command.parse(reply)

    async def send_break(self, duration_ms: int) -> None:
        """
        Send a serial break, forgetting what the instrument sent before (it
        answers a break at once, often before the break has ended).

        :param duration_ms: how long to hold it.
        :raises InstrumentConnectionError: if the engine has no way to send
            a break.
        :raises Exception: whatever the connection fails with (a port agent
            whose link cannot break refuses).
        """
        self._check()
        engine = self._engine
        if engine.break_sender is None:
            raise InstrumentConnectionError("this connection cannot send a break")
        engine._reply_buffer.clear()
        engine._last_write = engine.clock.seconds()
        engine.breaks_sent += 1
        await engine.break_sender(duration_ms)

    def write(self, data: bytes, delay: float | None = None) -> Deferred[None]:
        """
        Write bytes to the instrument, forgetting what it sent before (so an
        old prompt cannot end the next reply).

        :param data: the bytes.
        :param delay: seconds between characters; ``None`` for the engine's.
        :returns: a Deferred that fires once the last byte is written.
        """
        self._check()
        self._engine._reply_buffer.clear()
        return self._engine._write(data, delay)

    def await_reply(
        self,
        name: str,
        *,
        prompts: Sequence[bytes] = (),
        regex: re.Pattern[bytes] | None = None,
        holds: re.Pattern[bytes] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        probe: bool = False,
    ) -> Deferred[Reply]:
        """
        Wait for a prompt (or a regex match) in what the instrument has sent
        since the last write.

        :param name: what is waiting, for the timeout error.
        :param prompts: any of these ends the reply; empty for the engine's.
        :param regex: a pattern to match instead of prompts.
        :param holds: a pattern the reply must hold before its prompt;
            prompts before a match are passed over (see
            :attr:`~instrumentd.driver.dialogue.Command.holds`).
        :param timeout: seconds to wait.
        :param probe: silence is an answer (discovery waiting to see whether
            an instrument samples on its own): a timeout still fails the
            Deferred but is not logged, so operators' logs show only what
            went wrong.
        :returns: a Deferred firing with the :class:`Reply`, or failing
            with :class:`InstrumentTimeoutError`.
        """
        self._check()
        return self._engine._await(
            name, prompts, regex, timeout, quiet=probe, holds=holds
        )

    async def wake(self, name: str = "wake-up", *, tries: int | None = None) -> None:
        """
        Send the wake-up sequence until the instrument answers with a prompt,
        up to its number of tries.  Does nothing if the engine has no
        :class:`Wakeup`.  For an instrument that may wake silently
        (:attr:`Wakeup.may_be_silent`), one unanswered try is taken as
        having woken it.

        :param name: the command the wake-up is for, for errors.
        :param tries: at most this many tries; the wake-up's own number if
            ``None``.
        :raises InstrumentTimeoutError: if no try was answered.
        """
        self._check()
        engine = self._engine
        wakeup = engine.wakeup
        if wakeup is None:
            return
        tries = wakeup.tries if tries is None else tries
        prompts = _longest_first(wakeup.prompts or engine.prompts)
        for attempt in range(1, tries + 1):
            engine.wake_attempts += 1
            await self._send_wakeup(wakeup)
            try:
                await self.await_reply(
                    f"wake-up for {name}",
                    prompts=prompts,
                    regex=wakeup.regex,
                    timeout=wakeup.timeout,
                    probe=wakeup.may_be_silent,
                )
            except InstrumentTimeoutError:
                if wakeup.may_be_silent:
                    return
                _log.info(
                    "No prompt after wake-up {attempt} of {tries} for {command}",
                    attempt=attempt,
                    tries=tries,
                    command=name,
                )
                continue
            return
        raise InstrumentTimeoutError(
            f"wake-up for {name} ({tries} tries)",
            wakeup.regex if wakeup.regex is not None else prompts,
            wakeup.timeout,
        )

    async def _send_wakeup(self, wakeup: Wakeup) -> None:
        engine = self._engine
        if (
            wakeup.break_ms is not None
            and engine.break_sender is not None
            and not engine.break_refused
        ):
            try:
                await self.send_break(wakeup.break_ms)
            except InstrumentConnectionError:
                # The link went down: no fallback can help.
                raise
            except Exception as error:
                if not wakeup.data:
                    raise
                # A link that cannot carry a break (TCP to a device server)
                # refuses every time: fall back for this link's life.
                engine.break_refused = True
                _log.info(
                    "No break on this link ({error}); sending {data!r} instead",
                    error=str(error),
                    data=wakeup.data,
                )
            else:
                return
        if not wakeup.data:
            raise InstrumentConnectionError(
                "the wake-up needs a break and this connection cannot send one"
            )
        await self.write(wakeup.data)


class CommandEngine:
    """
    Sends commands to one instrument and matches its replies.

    :param write: writes bytes to the instrument now (the connection's
        ``send``).
    :param prompts: the instrument's prompts; a reply ends with one of them
        unless its command says otherwise.
    :param wakeup: how to wake the instrument, or ``None`` if it never
        sleeps.
    :param write_delay: seconds between characters written (0 writes
        everything at once).
    :param clock: the reactor's clock (``callLater``, ``seconds``), or
        ``None`` for the global reactor, imported when first needed.
    :param send_break: sends a serial break of so many milliseconds and
        returns a Deferred firing when it has ended (the connection's
        ``send_break``), or ``None`` if breaks cannot be sent.
    :param error: a pattern whose presence in a reply means the instrument
        refused the command; ``None`` if it has no such mark.

    :ivar break_refused: the connection refused a break (its link cannot
        carry one); wake-ups send their ``data`` instead from then on.
    """

    def __init__(
        self,
        write: Callable[[bytes], object],
        *,
        prompts: Sequence[bytes] = (),
        wakeup: Wakeup | None = None,
        write_delay: float = 0.0,
        clock: IReactorTime | None = None,
        send_break: Callable[[int], Deferred[None]] | None = None,
        error: re.Pattern[bytes] | None = None,
    ) -> None:
        self._send = write
        self.break_sender = send_break
        self.break_refused = False
        self.error = error
        #: How many breaks have been sent.
        self.breaks_sent = 0
        self.prompts = _longest_first(prompts)
        self.wakeup = wakeup
        self.write_delay = write_delay
        self._clock = clock
        self._queue: deque[_Job] = deque()
        self._active: _Job | None = None
        self._wait: _Wait | None = None
        self._reply_buffer = bytearray()
        # Paced writes still going: each one's Deferred and its next call.
        self._pacing: dict[Deferred[None], IDelayedCall] = {}
        self._stopped: InstrumentError | None = None
        # Nothing is known of a sleepy instrument until it has answered.
        self._suspect_asleep = wakeup is not None
        self._last_write: float | None = None
        #: How many wake-up sequences have been sent.
        #: Seconds without input after which the instrument may be asleep:
        #: the wake-up's ``sleep_after`` until the protocol learns the
        #: instrument's own setting and sets it here.
        self.sleep_after = None if wakeup is None else wakeup.sleep_after
        self.wake_attempts = 0
        #: How many replies did not come in time.
        self.timeouts = 0

    @property
    def clock(self) -> IReactorTime:
        """
        The clock in use.
        """
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = cast("IReactorTime", reactor)
        return self._clock

    @property
    def busy(self) -> bool:
        """
        Whether some work holds the instrument now.
        """
        return self._active is not None

    @property
    def queued(self) -> int:
        """
        How many pieces of work wait for their turn (the active one not
        counted).
        """
        return len(self._queue)

    def may_be_asleep(self) -> bool:
        """
        Whether a command should wake the instrument first: it has a wake-up
        sequence, and a command timed out, nothing has been heard from it
        yet, or it has been idle longer than its sleep time.
        """
        wakeup = self.wakeup
        if wakeup is None:
            return False
        if self._suspect_asleep:
            return True
        if self.sleep_after is None or self._last_write is None:
            return False
        return self.clock.seconds() - self._last_write >= self.sleep_after

    def check_refusal(self, reply: Reply) -> None:
        """
        Fail a command whose reply carries the instrument's error mark.

        :param reply: the reply.
        :raises InstrumentProtocolError: quoting the line with the mark.
        """
        if self.error is None:
            return
        found = self.error.search(reply.data)
        if found is None:
            return
        start = reply.data.rfind(b"\n", 0, found.start()) + 1
        end = reply.data.find(b"\r", found.end())
        line = reply.data[start : end if end >= 0 else len(reply.data)]
        raise InstrumentProtocolError(
            f"the instrument refused {reply.command}: {line.decode('latin-1').strip()}"
        )

    def data_received(self, data: bytes) -> None:
        """
        Take bytes the instrument sent; they may end the reply being waited
        for.

        :param data: the bytes, as read.
        """
        buffer = self._reply_buffer
        buffer += data
        if len(buffer) > REPLY_BUFFER_LIMIT:
            del buffer[: len(buffer) - REPLY_BUFFER_LIMIT]
        if self._wait is not None:
            self._check_reply()

    def execute(
        self,
        command: Command[T],
        *,
        guard: Callable[[], None] | None = None,
        **arguments: object,
    ) -> Deferred[T]:
        """
        Queue one command.

        :param command: the command.
        :param guard: called when the command's turn comes, before anything
            is sent; if it raises, the command is not sent and the Deferred
            fails with that exception.
        :param arguments: passed to ``command.build``.
        :returns: a Deferred firing with the parsed reply.
        """

        async def body(session: InstrumentSession) -> T:
            return await session.run(command, **arguments)

        return self.exclusive(body, guard=guard, name=command.name)

    def exclusive(
        self,
        body: Callable[[InstrumentSession], Coroutine[Any, Any, T] | Deferred[T]],
        *,
        guard: Callable[[], None] | None = None,
        name: str = "exchange",
    ) -> Deferred[T]:
        """
        Queue work that holds the instrument for several commands.

        :param body: called with an :class:`InstrumentSession` when the
            work's turn comes; returns a coroutine or a Deferred.  The
            instrument is held until it finishes.
        :param guard: as for :meth:`execute`.
        :param name: what the work is, for logs.
        :returns: a Deferred firing with the body's result.  Cancelling it
            while it is still queued takes it off the queue.
        """
        if self._stopped is not None:
            return fail(self._stopped)

        def cancel(done: Deferred[object]) -> None:
            if job in self._queue:
                self._queue.remove(job)

        done: Deferred[object] = Deferred(cancel)
        job = _Job(
            name,
            cast(
                "Callable[[InstrumentSession], Coroutine[Any, Any, object] | Deferred[object]]",
                body,
            ),
            guard,
            done,
        )
        self._queue.append(job)
        self._next()
        return cast("Deferred[T]", done)

    def write_direct(self, data: bytes) -> Deferred[None]:
        """
        Write bytes straight through, outside the queue (direct access).

        :param data: the bytes.
        :returns: a Deferred firing once they are written, or failing if
            they could not be (the connection is down).
        """
        return self._write(data, None)

    def suspect_asleep(self) -> None:
        """
        Note that the instrument may be asleep (or in an unknown state), so
        the next command wakes it first.
        """
        if self.wakeup is not None:
            self._suspect_asleep = True

    def stop(self, reason: InstrumentError) -> None:
        """
        Give up on all work, for good: the instrument is gone.  The active
        work and everything queued fail with ``reason``, later work fails at
        once, and no timer is left behind.

        :param reason: why.
        """
        self._stopped = reason
        queued, self._queue = list(self._queue), deque()
        pacing, self._pacing = dict(self._pacing), {}
        for written, call in pacing.items():
            call.cancel()
            written.errback(Failure(reason))
        wait, self._wait = self._wait, None
        if wait is not None:
            if wait.timer is not None and wait.timer.active():
                wait.timer.cancel()
            wait.done.errback(Failure(reason))
        for job in queued:
            job.done.errback(Failure(reason))

    # The queue.

    def _next(self) -> None:
        while self._active is None and self._queue:
            job = self._queue.popleft()
            if job.guard is not None:
                try:
                    job.guard()
                except Exception:
                    job.done.errback()
                    continue
            self._start(job)

    def _start(self, job: _Job) -> None:
        self._active = job
        session = job.session = InstrumentSession(self, job.name)

        def finished(result: object) -> None:
            session.close()
            self._active = None
            # Fire first, then start the next work: whatever the result
            # changes (a state machine's state) is in place when the next
            # guard is checked.
            if not job.done.called:
                job.done.callback(result)
            self._next()

        def failed(reason: Failure) -> None:
            session.close()
            self._active = None
            if not job.done.called:
                job.done.errback(reason)
            self._next()

        try:
            outcome = job.body(session)
        except Exception:
            failed(Failure())
            return
        running = outcome if isinstance(outcome, Deferred) else ensureDeferred(outcome)
        running.addCallbacks(finished, failed)

    # Writing and waiting.

    def _write(self, data: bytes, delay: float | None) -> Deferred[None]:
        pace = self.write_delay if delay is None else delay
        if pace <= 0 or len(data) <= 1:
            try:
                self._send_now(data)
            except Exception:
                return fail()
            return succeed(None)
        written: Deferred[None] = Deferred()

        def one(index: int) -> None:
            self._pacing.pop(written, None)
            try:
                self._send_now(data[index : index + 1])
            except Exception:
                written.errback()
                return
            if index + 1 == len(data):
                written.callback(None)
            else:
                self._pacing[written] = self.clock.callLater(pace, one, index + 1)

        one(0)
        return written

    def _send_now(self, data: bytes) -> None:
        if self._stopped is not None:
            raise self._stopped
        self._send(data)
        self._last_write = self.clock.seconds()

    def _await(
        self,
        name: str,
        prompts: Sequence[bytes],
        regex: re.Pattern[bytes] | None,
        timeout: float,
        *,
        quiet: bool = False,
        holds: re.Pattern[bytes] | None = None,
    ) -> Deferred[Reply]:
        if self._wait is not None:
            raise RuntimeError(f"{name}: already waiting for {self._wait.name}")
        if self._stopped is not None:
            return fail(self._stopped)
        wait = _Wait(
            name,
            () if regex is not None else _longest_first(prompts or self.prompts),
            regex,
            timeout,
            Deferred(lambda _: self._cancel_wait()),
            quiet=quiet,
            holds=None if regex is not None else holds,
        )
        self._wait = wait
        self._check_reply()
        if self._wait is wait:
            wait.timer = self.clock.callLater(timeout, self._timed_out, wait)
        return wait.done

    def _check_reply(self) -> None:
        wait = self._wait
        assert wait is not None
        buffer = bytes(self._reply_buffer)
        reply: Reply | None = None
        if wait.regex is not None:
            found = wait.regex.search(buffer)
            if found is not None:
                reply = Reply(wait.name, buffer[: found.end()], match=found)
        else:
            start = self._reply_start(wait, buffer)
            if start < 0:
                return
            for prompt in wait.prompts:
                at = buffer.find(prompt, start)
                if at >= 0:
                    end = at + len(prompt)
                    reply = Reply(wait.name, buffer[:end], prompt=prompt)
                    break
        if reply is None:
            return
        self._wait = None
        if wait.timer is not None and wait.timer.active():
            wait.timer.cancel()
        # What came after the reply may start the next one (a prompt after a
        # sample line); keep it.
        del self._reply_buffer[: len(reply.data)]
        self._suspect_asleep = False
        wait.done.callback(reply)

    def _reply_start(self, wait: _Wait, buffer: bytes) -> int:
        # Where the prompt ending the reply may begin: anywhere, or after
        # what the reply must hold (a refusal ends it too); -1 while
        # neither has come, so that a stray prompt does not end it.
        if wait.holds is None:
            return 0
        found = wait.holds.search(buffer)
        if found is None and self.error is not None:
            found = self.error.search(buffer)
        return -1 if found is None else found.end()

    def _timed_out(self, wait: _Wait) -> None:
        if self._wait is not wait:
            return
        if not wait.last_look:
            # A reactor runs the timers that are due before it reads its
            # sockets: one running late (a station whose core is full
            # while thousands of instruments come up) would fail a command
            # whose reply is already there, unread.  So the timeout is
            # final only after the reactor's next read: called again at
            # once, on its next turn, unless the reply ends the wait first.
            wait.last_look = True
            wait.timer = self.clock.callLater(0, self._timed_out, wait)
            return
        self._wait = None
        self.timeouts += 1
        # A command that got no answer may have met a sleeping instrument.
        self.suspect_asleep()
        if not wait.quiet:
            _log.info(
                "No reply to {command} within {timeout} s",
                command=wait.name,
                timeout=wait.timeout,
            )
        wait.done.errback(
            Failure(InstrumentTimeoutError(wait.name, wait.awaited(), wait.timeout))
        )

    def _cancel_wait(self, quietly: bool = False) -> None:
        wait, self._wait = self._wait, None
        if wait is None:
            return
        if wait.timer is not None and wait.timer.active():
            wait.timer.cancel()
        if not wait.done.called:
            wait.done.errback(Failure(CancelledError(f"{wait.name} cancelled")))
            if quietly:
                # Nobody awaits a wait its session left behind.
                wait.done.addErrback(lambda _: None)
