# -*- test-case-name: tests.test_rfc2217_session -*-
"""
Who may write to the instrument: one writer at a time among the raw-port
operators and RFC 2217 sessions, in order of arrival.

The first to join holds the line; the others wait, read-only.  When the
holder leaves, the one that has waited longest is told it holds the line
now.  A holder that is *exclusive* (an RFC 2217 session, which may change
the line's settings) also keeps data clients off the line while it holds it.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["LineWriter", "LineWriters"]


class LineWriter(Protocol):
    """
    A client that may hold the line.

    :ivar exclusive: whether, while it holds the line, nobody else may
        write to the instrument at all.
    :ivar label: names it in faults.
    """

    exclusive: bool
    label: str

    def became_writer(self) -> None:
        """
        Called when it holds the line after waiting.
        """


class LineWriters:
    """
    The queue for the line.
    """

    def __init__(self) -> None:
        self._queue: list[LineWriter] = []

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, member: object) -> bool:
        return member in self._queue

    @property
    def holder(self) -> LineWriter | None:
        """
        Who holds the line, if anyone.
        """
        return self._queue[0] if self._queue else None

    @property
    def exclusive_holder(self) -> LineWriter | None:
        """
        The holder, if it keeps everyone else off the line.
        """
        holder = self.holder
        return holder if holder is not None and holder.exclusive else None

    def join(self, member: LineWriter) -> bool:
        """
        Queue for the line.

        :returns: whether it holds the line now.
        """
        self._queue.append(member)
        return self._queue[0] is member

    def leave(self, member: LineWriter) -> None:
        """
        Leave the queue; if it held the line, the next one gets it.
        """
        if member not in self._queue:
            return
        held = self._queue[0] is member
        self._queue.remove(member)
        if held and self._queue:
            self._queue[0].became_writer()
