"""Fetching several ad accounts at once, each item handed to the snapshot as soon as it is made.

Pages of one account follow each other (each carries the next cursor), but accounts are independent,
and a platform's latency dominates a snapshot of many accounts or of large ones. Up to ``workers``
accounts are fetched at a time, each by its own thread, and every item (a typed run of pages) goes
into one queue that the snapshot spools from, whatever account it belongs to: no account waits for
another to be spooled, and memory holds at most ``workers * ahead`` items in the queue besides the one
each worker is making. How many workers make items at once follows the process's CPU use
(``WorkerLimit``). Throttling is shared: the platform's API session holds every worker back while one
waits out a throttle (http.py).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from audit_assets.platforms.base import AdAccount

Item = TypeVar("Item")

_POLL_SECONDS = 0.1  # how soon a waiting worker notices the snapshot stopped, or the limit changed
WINDOW_SECONDS = 0.2  # the span over which the process's CPU use is judged
# CPU use of the process, in cores, above which one worker fewer is let in, and below which one more.
BUSY_CORES = 0.9
WAITING_CORES = 0.6


class WorkerLimit:
    """How many workers may make an item at once: all of them while the process mostly waits on the
    platform, fewer as its CPU use nears one core.

    Typing pages is Python, so the workers share one interpreter lock. On a fast API (a loopback
    emulator, a nearby proxy) four workers only slow each other down: each hand-over of the lock evicts
    the pages another was typing from the cache (200k audiences took ~4.0 s with four at once against
    ~2.8 s with one). On a distant API they overlap their waits, which is what they are for. Judged
    over windows of ``WINDOW_SECONDS``, one step at a time, between ``BUSY_CORES`` and
    ``WAITING_CORES`` so it does not swing.
    """

    def __init__(
        self,
        most: int,
        stop: threading.Event,
        clocks: tuple[Callable[[], float], Callable[[], float]] = (time.monotonic, time.process_time),
    ) -> None:
        self.most = self.limit = max(1, most)
        self._busy = 0
        self._stop = stop
        self._clocks = clocks
        self._changed = threading.Condition()
        self._since = self._now()

    def __enter__(self) -> None:
        with self._changed:
            while self._busy >= self.limit and not self._stop.is_set():
                self._changed.wait(_POLL_SECONDS)
                self._judge()  # a worker may hold its place through a long wait on the platform
            self._busy += 1

    def __exit__(self, *_: object) -> None:
        with self._changed:
            self._busy -= 1
            self._judge()
            self._changed.notify_all()

    def _now(self) -> tuple[float, float]:
        wall, cpu = self._clocks
        return wall(), cpu()

    def _judge(self) -> None:
        (wall_then, cpu_then), (wall, cpu) = self._since, self._now()
        if wall - wall_then < WINDOW_SECONDS:
            return
        cores = (cpu - cpu_then) / (wall - wall_then)
        if cores > BUSY_CORES and self.limit > 1:
            self.limit -= 1
        elif cores < WAITING_CORES and self.limit < self.most:
            self.limit += 1
        self._since = (wall, cpu)


@dataclass(frozen=True)
class _Failed:
    """What a worker raised, carried to the snapshot's thread, which raises it."""

    error: BaseException


def fetch_concurrently(
    accounts: Sequence[AdAccount],
    items_of: Callable[[AdAccount], Iterator[Item]],
    *,
    workers: int,
    ahead: int = 2,
) -> Iterator[tuple[AdAccount, Item | None]]:
    """Yield ``(account, item)`` as the workers make them, in each account's own order, and
    ``(account, None)`` once an account has no more; raise whatever fetching raised.

    Closing this generator (the snapshot failed) stops every worker at its next item and waits for them.
    """
    stop = threading.Event()
    limit = WorkerLimit(workers, stop)
    handed: queue.Queue[tuple[AdAccount, Item | _Failed | None]] = queue.Queue(maxsize=limit.most * ahead)

    def put(entry: tuple[AdAccount, Item | _Failed | None]) -> bool:
        while not stop.is_set():
            try:
                handed.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce(account: AdAccount) -> None:
        try:
            items = items_of(account)
            while True:
                with limit:
                    if stop.is_set():  # the snapshot failed while this worker waited its turn
                        return
                    item = next(items, None)
                if item is None:
                    put((account, None))
                    return
                if not put((account, item)):
                    return
        except BaseException as exc:  # handed to the snapshot's thread, which raises it
            put((account, _Failed(exc)))

    pool = ThreadPoolExecutor(max_workers=limit.most, thread_name_prefix="audit-assets-fetch")
    try:
        for account in accounts:
            pool.submit(produce, account)
        unfinished = len(accounts)
        while unfinished:
            account, item = handed.get()
            if isinstance(item, _Failed):
                raise item.error
            if item is None:
                unfinished -= 1
            yield account, item
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
