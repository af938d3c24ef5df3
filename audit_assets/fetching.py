"""Fetching several ad accounts at once, each item handed to the snapshot as soon as it is made.

Pages of one account follow each other (each carries the next cursor), but accounts are independent,
and a platform's latency dominates a snapshot of many accounts or of large ones. Up to ``limit.most``
accounts are fetched at a time, each by its own thread, as many making items at once as the
``WorkerLimit`` lets in, and every item (a typed run of pages) goes into one queue that the snapshot
spools from, whatever account it belongs to: no account waits for another to be spooled, and memory
holds at most ``most * ahead`` items in the queue besides the one each worker holds. Throttling is
shared: the platform's API session holds every worker back while one waits out a throttle (http.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from audit_assets.platforms.base import AdAccount
from audit_assets.worker_limit import POLL_SECONDS, Stopped, WorkerLimit

Item = TypeVar("Item")


class AccountDone(Enum):
    """What follows an account's last item."""

    DONE = "done"


DONE = AccountDone.DONE


@dataclass(frozen=True)
class _Failed:
    """What a worker raised, carried to the snapshot's thread, which raises it."""

    error: BaseException


def fetch_concurrently(
    accounts: Sequence[AdAccount],
    items_of: Callable[[AdAccount], Iterator[Item]],
    *,
    limit: WorkerLimit,
    interrupt: Callable[[], None],
    ahead: int = 2,
) -> Iterator[tuple[AdAccount, Item | AccountDone]]:
    """Yield ``(account, item)`` as the workers make them, in each account's own order, and
    ``(account, DONE)`` once an account has no more; raise whatever fetching raised.

    Closing this generator early (the snapshot failed) stops every worker at its next item, calls
    ``interrupt`` to end the waits they may be in (a throttle, a retry's backoff), and waits for them.
    """
    stop = threading.Event()
    handed: queue.Queue[tuple[AdAccount, Item | AccountDone | _Failed]] = queue.Queue(
        maxsize=limit.most * ahead
    )

    def put(entry: tuple[AdAccount, Item | AccountDone | _Failed]) -> bool:
        while not stop.is_set():
            try:
                handed.put(entry, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce(account: AdAccount) -> None:
        try:
            items = items_of(account)
            while True:
                item = limit.run(lambda: next(items, DONE))
                if not put((account, item)) or item is DONE:
                    return
        except Stopped:
            return
        except BaseException as exc:  # handed to the snapshot's thread, which raises it
            put((account, _Failed(exc)))

    pool = ThreadPoolExecutor(max_workers=limit.most, thread_name_prefix="audit-assets-fetch")
    unfinished = len(accounts)
    try:
        for account in accounts:
            pool.submit(produce, account)
        while unfinished:
            account, item = handed.get()
            if isinstance(item, _Failed):
                raise item.error
            if item is DONE:
                unfinished -= 1
            yield account, item
    finally:
        stop.set()
        limit.stop()
        if unfinished:
            interrupt()
        pool.shutdown(wait=True, cancel_futures=True)
