# -*- test-case-name: tests.test_portagent_router -*-
"""
Bounded, never-blocking senders for client connections.

The port agent must never be held back by a client.  Each client's transport
gets a :class:`ClientOutlet` registered as its streaming producer: while the
transport keeps up, data goes straight to it; when the transport's own buffer
fills (the kernel socket buffer is full because the client is not reading
right now), the transport pauses the outlet and data queues here instead.

A queue absorbs bursts: a client that keeps up on average may fall behind
by megabytes for a moment.  A client is cut off (its queue freed) only when

- it makes no progress: its transport has taken nothing for the stall
  timeout while data waited for it;
- its queue passes its own limit (the client buffer); or
- the queues of all clients together pass the agent's client memory budget:
  then the client furthest behind is cut off, until the rest fit.

So the agent's memory for clients stays bounded whatever they do.

**Sent in the same turn.**  Twisted's TCP ``write`` only buffers: the bytes
go out when the reactor next polls and finds the socket writable, a turn
later, with an ``epoll_ctl`` to watch the socket for writing and another
to stop (for a relay of small messages, a third of its system calls and a
wait between reading a message and sending it).  When a client's TCP
transport has nothing buffered, :meth:`ClientOutlet.send` sends the bytes
to its socket (:func:`instrumentd.sendatonce.send_at_once`) as the
transport's own sending step does (``writeSomeData``,
what its ``doWrite`` calls when the reactor finds the socket writable: one
``send``, a full socket taking nothing), and only what the socket does not
take goes to the transport's ``write``: so with
nothing buffered ahead of them the bytes' order is kept, and the
transport's buffer, pausing and resuming this outlet and closing a broken
connection stay Twisted's.  A send that finds the connection broken hands
the bytes to ``write`` too, and the reactor's next turn meets the same
error and closes the connection as it always does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.interfaces import (
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ITransport,
)
from zope.interface import implementer

from instrumentd.sendatonce import can_send_at_once, send_at_once

__all__ = ["ClientOutlet", "ClientQueues"]


class ClientQueues:
    """
    The queues of every client of one agent: their shared memory budget,
    and the watch for clients that make no progress.

    One timer serves every client: it is due when the client paused the
    longest ago reaches the stall timeout, so a busy agent does not arm and
    cancel a timer at each of the thousands of pauses a second that a fast
    stream causes.

    :ivar budget: the most bytes all queues may hold together.
    :ivar stall_timeout: seconds a client may take nothing while data waits
        for it; ``None`` never cuts a client off for that.
    :ivar queued: bytes queued now, all clients.
    :ivar peak: the most bytes ever queued at once, all clients.
    """

    def __init__(
        self,
        budget: float = float("inf"),
        stall_timeout: float | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        :param budget: the most bytes all queues may hold together.
        :param stall_timeout: seconds without progress before a client is
            cut off; ``None`` for never.
        :param clock: for the stall timeout; needed if it is given.
        :raises ValueError: for a stall timeout without a clock.
        """
        if stall_timeout is not None and clock is None:
            raise ValueError("a stall timeout needs a clock")
        self.budget = budget
        self.stall_timeout = stall_timeout
        self.queued = 0
        self.peak = 0
        self._clock = clock
        self._outlets: list[ClientOutlet] = []
        self._stall_call: IDelayedCall | None = None

    def now(self) -> float:
        """
        The time on the clock, or 0 without one.
        """
        return self._clock.seconds() if self._clock is not None else 0.0

    def add(self, outlet: ClientOutlet) -> None:
        """
        Start counting an outlet's queue.
        """
        self._outlets.append(outlet)

    def remove(self, outlet: ClientOutlet) -> None:
        """
        Stop counting an outlet (it is closed and its queue freed).
        """
        if outlet in self._outlets:
            self._outlets.remove(outlet)
        if not self._outlets:
            self.stop()

    def grew(self, size: int) -> None:
        """
        An outlet queued ``size`` more bytes.
        """
        self.queued += size
        self.peak = max(self.peak, self.queued)

    def over_budget(self) -> None:
        """
        Cut off the clients furthest behind until the rest fit the budget.
        """
        while self.queued > self.budget:
            victim = max(self._outlets, key=lambda o: o.queued, default=None)
            if victim is None or not victim.queued:
                return
            victim.cut_off(
                f"the queues of all clients passed the client memory of "
                f"{int(self.budget)} bytes, and it was the furthest behind",
                "memory",
            )

    def paused(self, outlet: ClientOutlet) -> None:
        """
        An outlet's transport stopped taking data: make sure the stall
        watch is due in time for it.
        """
        if self.stall_timeout is not None and self._stall_call is None:
            assert self._clock is not None
            self._stall_call = self._clock.callLater(
                self.stall_timeout, self._stall_due
            )

    def stop(self) -> None:
        """
        Cancel the stall watch's timer.
        """
        if self._stall_call is not None:
            if self._stall_call.active():
                self._stall_call.cancel()
            self._stall_call = None

    def _stall_due(self) -> None:
        self._stall_call = None
        timeout = self.stall_timeout
        assert timeout is not None and self._clock is not None
        now = self._clock.seconds()
        for outlet in list(self._outlets):
            since = outlet.paused_since
            if since is not None and now - since >= timeout:
                outlet.cut_off(
                    f"it took nothing for {timeout:g} s while data waited for it",
                    "stalled",
                )
        waiting = [o.paused_since for o in self._outlets if o.paused_since is not None]
        if waiting:
            self._stall_call = self._clock.callLater(
                max(0.0, min(waiting) + timeout - now), self._stall_due
            )


@implementer(IPushProducer)
class ClientOutlet:
    """
    Send bytes to one client without ever blocking the sender.

    Unsent data held for the client is at most ``limit`` bytes here plus what
    the transport buffers before it pauses us (about 64 KiB plus one write).

    :ivar label: who the client is, for logs and faults.
    :ivar kind: the listener kind (``data``, ``sniff``, ``raw``).
    :ivar limit: bytes that may queue before the client is cut off.
    :ivar queued: bytes queued now.
    :ivar bytes_sent: bytes handed to the transport.
    :ivar cut_off_reason: why the client was cut off (``None`` if it was
        not): ``"buffer"``, ``"memory"`` or ``"stalled"``.
    :ivar paused_since: when the transport last stopped taking data, or
        ``None`` while it takes it.
    """

    def __init__(
        self,
        transport: ITransport,
        limit: int,
        label: str,
        on_cut_off: Callable[[ClientOutlet, str, int], None],
        *,
        kind: str = "data",
        queues: ClientQueues | None = None,
    ) -> None:
        """
        :param transport: the client's transport; it must accept producers
            (every TCP and UNIX transport does).
        :param limit: the most bytes to queue while the transport is paused.
        :param label: names the client in logs and faults.
        :param on_cut_off: called with this outlet, why it was cut off (a
            sentence) and the bytes dropped, once it has been.
        :param kind: the listener kind the client came in on.
        :param queues: the shared budget and stall watch; a private one
            with no budget and no stall timeout if ``None``.
        """
        self.kind = kind
        self.transport = transport
        self.limit = limit
        self.label = label
        self.queued = 0
        self.bytes_sent = 0
        self.cut_off_reason: str | None = None
        self.paused_since: float | None = None
        self._on_cut_off = on_cut_off
        self._queues = queues if queues is not None else ClientQueues()
        self._queue: deque[bytes] = deque()
        self._paused = False
        self._held = False
        self._closed = False
        # Only a plain (posix) TCP connection is sent to at once: its
        # socket is sent to as the reactor's own sending step would (see
        # the module).
        self._flushable = can_send_at_once(transport)
        self._queues.add(self)
        transport.registerProducer(self, True)  # type: ignore[attr-defined]

    @property
    def is_cut_off(self) -> bool:
        """
        Whether the client was cut off.
        """
        return self.cut_off_reason is not None

    def send(self, data: bytes) -> None:
        """
        Send ``data`` now, or queue it if the client is not keeping up.
        """
        if self._closed:
            return
        if not self._paused and not self._held and not self._queue:
            self.bytes_sent += len(data)
            if self._flushable:
                send_at_once(self.transport, data)  # type: ignore[arg-type]
            else:
                self.transport.write(data)
            return
        size = len(data)
        self._queue.append(data)
        self.queued += size
        queues = self._queues
        queues.grew(size)
        if self.queued > self.limit:
            self.cut_off(
                f"it fell behind by more than the client buffer of {self.limit} bytes",
                "buffer",
            )
        elif queues.queued > queues.budget:
            queues.over_budget()

    def purge(self) -> int:
        """
        Throw away what is queued for the client and not yet sent (its own
        view only: nobody else's data is touched).

        :returns: the bytes thrown away.
        """
        dropped = self.queued
        self._queue.clear()
        self._queues.queued -= dropped
        self.queued = 0
        return dropped

    def hold(self) -> None:
        """
        Queue everything from now on, as if the transport were full, until
        :meth:`release` (the client asked us to stop sending).  The limit
        still applies: a client that holds too long is cut off.
        """
        self._held = True

    def release(self) -> None:
        """
        End a :meth:`hold` and send what queued meanwhile.
        """
        if self._held:
            self._held = False
            if not self._paused:
                self.resumeProducing()

    def close(self) -> None:
        """
        Forget the client (its connection is gone): drop the queue and
        unregister from the transport.
        """
        if self._closed:
            return
        self._forget()
        self.transport.unregisterProducer()  # type: ignore[attr-defined]

    def cut_off(self, why: str, reason: str) -> None:
        """
        Cut the client off: close its connection at once (a reset), free
        its queue, and report it.

        :param why: a sentence for logs and faults.
        :param reason: ``"buffer"``, ``"memory"`` or ``"stalled"``.
        """
        if self._closed:
            return
        dropped = self.queued
        self.cut_off_reason = reason
        self.close()
        self.transport.abortConnection()  # type: ignore[attr-defined]
        self._on_cut_off(self, why, dropped)

    def _forget(self) -> None:
        self._closed = True
        self._queue.clear()
        self._queues.queued -= self.queued
        self.queued = 0
        self.paused_since = None
        self._queues.remove(self)

    # IPushProducer: the transport drives these.

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: queue from now on.
        """
        self._paused = True
        if self.paused_since is None and not self._closed:
            self.paused_since = self._queues.now()
            self._queues.paused(self)

    def resumeProducing(self) -> None:
        """
        The transport drained: hand it queued data until it pauses us again.
        """
        self._paused = False
        self.paused_since = None
        queue = self._queue
        queues = self._queues
        while queue and not self._paused and not self._held and not self._closed:
            data = queue.popleft()
            size = len(data)
            self.queued -= size
            queues.queued -= size
            self.bytes_sent += size
            self.transport.write(data)

    def stopProducing(self) -> None:
        """
        The connection is closing.
        """
        if not self._closed:
            self._forget()
