# -*- test-case-name: tests.test_export_cli -*-
"""
A one-line progress bar on a terminal, and silence anywhere else.

Written here rather than taken from tqdm: CSV export must work with the
core dependencies alone, and one redrawn line of text is all it needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Final

__all__ = ["Progress"]

#: The least time between two redraws, seconds: often enough to look
#: alive, rarely enough to cost nothing.
REDRAW_INTERVAL: Final = 0.2

_WIDTH: Final = 30


class Progress:
    """
    Counts work done out of a known total and, when ``enabled``, redraws
    ``label [=====     ]  42%  1,234,567 records`` on ``stream`` (with a
    carriage return, so it stays one line).

    :param stream: where to draw (the terminal's stderr).
    :param total: the work to do, in the caller's units (bytes read).
    :param enabled: whether to draw at all.
    :param clock: monotonic seconds, for the redraw interval.
    """

    def __init__(
        self,
        stream: IO[str],
        total: int,
        *,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.enabled = enabled
        self.done = 0
        self.records = 0
        self.label = ""
        self._clock = clock
        self._drawn_at = float("-inf")
        self._drawn = False

    @classmethod
    def for_stream(
        cls, stream: IO[str], total: int, *, force: bool | None = None
    ) -> Progress:
        """
        A progress bar that draws only if ``stream`` is a terminal (or if
        ``force`` says so).

        :param stream: where to draw.
        :param total: the work to do.
        :param force: ``True`` to draw anyway, ``False`` never to.
        """
        if force is None:
            try:
                force = stream.isatty()
            except (AttributeError, ValueError):
                force = False
        return cls(stream, total, enabled=force)

    def advance(self, amount: int) -> None:
        """
        Count ``amount`` more done; redraw if it is time.
        """
        self.done += amount
        if self.enabled:
            now = self._clock()
            if now - self._drawn_at >= REDRAW_INTERVAL:
                self._drawn_at = now
                self.draw()

    def count(self, records: int) -> None:
        """
        Count records written, for the text after the bar.
        """
        self.records += records

    def draw(self) -> None:
        """
        Redraw the line now.
        """
        if not self.enabled:
            return
        fraction = min(self.done / self.total, 1.0)
        filled = int(fraction * _WIDTH)
        bar = "=" * filled + " " * (_WIDTH - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {fraction:4.0%}  {self.records:,} records"
        )
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """
        Draw the last state and end the line, if anything was drawn.
        """
        if self.enabled:
            self.draw()
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
