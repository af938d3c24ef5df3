"""How many fetch workers make items at once: all of them while a snapshot waits on the platform,
fewer when they would only contend for the CPU.

Typing pages is Python, so the workers share one interpreter lock. On a distant API they overlap their
waits, which is what they are for. On a fast one (a loopback emulator, a nearby proxy) they saturate
the lock, and each hand-over of it evicts the pages another worker was typing from the cache: four
workers then take longer than one. So the limit falls, one step per window, while the process's CPU
use nears one core, and rises again while one worker more would still leave room below that. The
process's use, not the workers' own: a worker waiting for the lock uses no CPU, so the workers' sum
stays under one core however hard they contend, while the process's also counts the spooling that
competes with them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WINDOW_SECONDS = 0.2  # the span over which the process's CPU use is judged
BUSY_CORES = 0.9  # the process's CPU use, in cores, above which one worker fewer is let in
ROOM_CORES = 0.75  # one worker more is let in while the use, scaled to it, stays below this
POLL_SECONDS = 0.1  # how soon a waiting worker looks again, at the limit or at a stop


class Stopped(Exception):
    """The snapshot is over: a worker waiting for its place makes no more items."""


class WorkerLimit:
    """Lets at most ``limit`` workers make an item at once, ``limit`` moving between 1 and ``most``."""

    def __init__(
        self,
        most: int,
        *,
        wall_clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.most = self.limit = max(1, most)
        self._wall_clock = wall_clock
        self._cpu_clock = cpu_clock
        self._changed = threading.Condition()
        self._making = 0
        self._stopped = False
        self._window_start = (wall_clock(), cpu_clock())

    def run(self, make: Callable[[], T]) -> T:
        """``make()`` once a place is free; Stopped once ``stop`` was called."""
        with self._changed:
            while self._making >= self.limit and not self._stopped:
                self._changed.wait(POLL_SECONDS)
                self._judge()  # the workers in place may be waiting long on the platform
            if self._stopped:
                raise Stopped
            self._making += 1
        try:
            return make()
        finally:
            with self._changed:
                self._making -= 1
                self._judge()
                self._changed.notify_all()

    def stop(self) -> None:
        """Turn every waiting and later worker away: the snapshot is over."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def _judge(self) -> None:
        (wall_then, cpu_then), (wall, cpu) = self._window_start, (self._wall_clock(), self._cpu_clock())
        if wall - wall_then < WINDOW_SECONDS:
            return
        cores = (cpu - cpu_then) / (wall - wall_then)
        if cores > BUSY_CORES and self.limit > 1:
            self.limit -= 1
        elif cores * (self.limit + 1) / self.limit < ROOM_CORES and self.limit < self.most:
            self.limit += 1
        self._window_start = (wall, cpu)
