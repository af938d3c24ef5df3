"""Fetching several ad accounts at once, handed to the snapshot one account after another, in order.

Pages of one account follow each other (each carries the next cursor), but accounts are independent,
and a platform's latency dominates a snapshot of many small accounts. Up to ``workers`` accounts are
fetched at a time, each by its own thread, a few items (the snapshot's typed runs of pages) ahead of
the snapshot that spools them; this also overlaps a large account's next request with the work on its
current pages. The snapshot still sees one whole account after another, so nothing downstream depends
on the threads. Memory holds at most ``workers * ahead`` items. Throttling is shared: the platform's API session
holds every worker back while one waits out a throttle (http.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from audit_assets.platforms.base import AdAccount

Item = TypeVar("Item")

_ITEM, _END, _ERROR = "item", "end", "error"
_POLL_SECONDS = 0.1  # how soon a worker blocked on a full queue notices the snapshot stopped


def fetch_in_order(
    accounts: Sequence[AdAccount],
    items_of: Callable[[AdAccount], Iterator[Item]],
    *,
    workers: int,
    ahead: int = 2,
) -> Iterator[tuple[AdAccount, Iterator[Item]]]:
    """Yield each account with an iterator over its items, which raises whatever fetching it raised.

    Each account's iterator must be consumed before the next account is taken. Closing this generator
    (the snapshot failed) stops every worker at its next item and waits for them.
    """
    stop = threading.Event()
    feeds: list[queue.Queue[tuple[str, Any]]] = [queue.Queue(maxsize=ahead) for _ in accounts]

    def put(feed: queue.Queue[tuple[str, Any]], item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                feed.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce(account: AdAccount, feed: queue.Queue[tuple[str, Any]]) -> None:
        if stop.is_set():
            return
        try:
            for item in items_of(account):
                if not put(feed, (_ITEM, item)):
                    return
            put(feed, (_END, None))
        except BaseException as exc:  # handed to the snapshot's thread, which raises it
            put(feed, (_ERROR, exc))

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="audit-assets-fetch")
    try:
        for account, feed in zip(accounts, feeds, strict=True):
            pool.submit(produce, account, feed)
        for account, feed in zip(accounts, feeds, strict=True):
            yield account, _drain(feed)
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _drain(feed: queue.Queue[tuple[str, Any]]) -> Iterator[Any]:
    while True:
        kind, value = feed.get()
        if kind == _ITEM:
            yield value
        elif kind == _END:
            return
        else:
            raise value
