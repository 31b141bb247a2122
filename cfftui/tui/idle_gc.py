"""Full garbage collections moved to moments when no key is being answered."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

NEVER = 2**30
"""A generation-2 threshold that the collector never reaches on its own."""


class IdleCollector:
    """Decides when to run the full collection that the interpreter no longer runs by itself.

    Textual's rendering leaves its strips, their per-strip caches and segments in reference cycles
    (about 12,000 objects a second under a busy study), and CPython's automatic full collection (80–120 ms with
    the console's heap) is triggered by allocations, that is, mostly in the middle of a repaint.
    Collected from a timer instead, when no key is being answered (or when overdue), the same work
    lands between key presses and memory stays bounded.
    """

    def __init__(self, *, quiet_s: float = 0.1, every_s: float = 3.0, overdue_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_s = quiet_s
        """No key for this long (and none being answered): the user is reading the answer."""
        self.every_s = every_s
        self.overdue_s = overdue_s
        """However busy the keyboard, collect at least this often."""
        self.clock = clock
        self.last_key = -float("inf")
        self.last_collect = clock()
        self.collections = 0
        self._thresholds: tuple[int, int, int] | None = None

    def start(self) -> None:
        """Freeze what exists now (start-up objects are never garbage) and stop automatic full collections."""
        if self._thresholds is None:
            gc.freeze()
            self._thresholds = gc.get_threshold()
            young, middle, _ = self._thresholds
            gc.set_threshold(young, middle, NEVER)

    def stop(self) -> None:
        """Give the interpreter its own collector back."""
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            gc.unfreeze()
            self._thresholds = None

    def key_pressed(self) -> None:
        self.last_key = self.clock()

    def tick(self, *, answering_key: bool = False) -> bool:
        """Collect if it is time to; True when it did."""
        now = self.clock()
        since_collect = now - self.last_collect
        quiet = now - self.last_key >= self.quiet_s and not answering_key
        if (since_collect >= self.every_s and quiet) or since_collect >= self.overdue_s:
            gc.collect()
            self.last_collect = self.clock()
            self.collections += 1
            return True
        return False
