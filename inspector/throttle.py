"""Lines of one kind told one by one only up to a few per window, the rest counted and told as one line.

Wire data is untrusted: a rogue or broken publisher sending thousands of malformed messages a second made a
subscriber print one line for each (a terminal scrolled past everything else, a journal or log file filled the
disk). The count of them all stays in the subscriber's summary; the lines are for a person to read.
"""

from __future__ import annotations

import time
from typing import Callable

BURST = 10  # lines told one by one in each window
WINDOW_S = 10.0  # seconds


class Throttle:
    """One kind of line (``what``: ``"malformed message(s) skipped"``), told one by one up to ``burst`` per
    ``window_s`` seconds (``clock``: ``time.monotonic``); the lines beyond are counted and told as one line once
    the window has ended (:meth:`due`, asked whenever notices are read) or at the end (``final``). Not
    thread-safe: its owner's lock guards it."""

    def __init__(self, what: str, burst: int = BURST, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.burst, self.window_s, self.clock = what, burst, window_s, clock
        self._started: float | None = None  # the window's start (None: no line in this window yet)
        self._told = 0
        self._held = 0

    def take(self, line: str) -> list[str]:
        """The lines to tell now for one more ``line``: it, unless the window's burst is spent (then none), after
        the count held from a window that has ended."""
        out = self.due()
        if self._started is None:
            self._started = self.clock()
        if self._told < self.burst:
            self._told += 1
            return out + [line]
        self._held += 1
        return out

    def due(self, final: bool = False) -> list[str]:
        """The line counting what was held back, once its window has ended (``final``: now); [] when none."""
        if self._started is None:
            return []
        elapsed = self.clock() - self._started
        if not final and elapsed < self.window_s:
            return []
        out = ([f"{self._held} more {self.what} in {elapsed:.0f} s, not told one by one (at most {self.burst} "
                f"lines every {self.window_s:g} s; the summary counts them all)"] if self._held else [])
        self._started, self._told, self._held = None, 0, 0
        return out
