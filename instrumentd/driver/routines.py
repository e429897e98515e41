# -*- test-case-name: tests.test_driver_routines -*-
"""
Steps that many drivers take in their handlers, written once:

- :func:`next_utc_second`: wait for the next whole UTC second, to set an
  instrument's clock (instruments keep whole seconds and take the time
  when the line ends, so a time sent as its second begins is right to
  within the line's delay rather than up to a second slow);
- :func:`paused`: stop the instrument's sampling around some work and start
  it again afterwards, whatever happens in between (a deployed instrument
  must not be left stopped).

Example, a clock sync valid while sampling::

    async def work(session: InstrumentSession) -> str:
        async with paused(session, STOP, START, sampling):
            when = await next_utc_second(self.engine.clock)
            await session.run(line_command(f"DateTime={when:%m%d%Y%H%M%S}"))
            return when.isoformat()
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.internet.task import deferLater

from instrumentd.driver.dialogue import Command

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from instrumentd.driver.engine import InstrumentSession

__all__ = ["Step", "next_utc_second", "paused"]


async def next_utc_second(clock: IReactorTime) -> datetime:
    """
    Wait (on ``clock``, never sleeping) until the next whole second begins.

    :param clock: the reactor's clock (the engine's).
    :returns: that second, an aware UTC datetime.
    """
    now = clock.seconds()
    second = math.floor(now) + 1
    await deferLater(clock, second - now, lambda: None)
    return datetime.fromtimestamp(second, UTC)


#: A step of :func:`paused`: a command, or a function of the session (to
#: stop an instrument with a break, say).
Step = Command[Any] | Callable[["InstrumentSession"], Awaitable[object]]


async def _take(session: InstrumentSession, step: Step) -> None:
    if isinstance(step, Command):
        await session.run(step)
    else:
        await step(session)


@asynccontextmanager
async def paused(
    session: InstrumentSession, stop: Step, start: Step, sampling: bool = True
) -> AsyncIterator[None]:
    """
    While the block runs, the instrument is stopped: ``stop`` is taken
    before it and ``start`` after it, even if the block fails (its error is
    then the one raised).  With ``sampling`` false the instrument was not
    sampling, and neither is taken.

    :param session: the instrument, held.
    :param stop: what stops sampling: a command, or an async function of
        the session (``lambda session: session.wake("stop")`` for an
        instrument stopped by a break).
    :param start: what starts it again, the same way.
    :param sampling: whether the instrument is sampling now.
    """
    if not sampling:
        yield
        return
    await _take(session, stop)
    try:
        yield
    finally:
        await _take(session, start)
