"""The fetch workers' limit follows their CPU use: all of them while they wait on the platform, one at a
time while they would only contend for the CPU, without swinging between the two. The clocks are the
test's, moved as the workers would use time."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from audit_assets.worker_limit import BUSY_CORES, ROOM_CORES, WINDOW_SECONDS, Stopped, WorkerLimit
from audit_assets_tests.worker_clocks import Clocks


def items_at(clocks: Clocks, limit: WorkerLimit, cores: float, count: int) -> list[int]:
    """The limit after each of ``count`` items, each a window long, using ``cores`` of CPU."""
    after = []
    for _ in range(count):
        limit.run(lambda: clocks.spend(WINDOW_SECONDS * 1.25, cores))
        after.append(limit.limit)
    return after


def test_busy_workers_are_let_in_one_at_a_time_and_waiting_ones_all_again() -> None:
    clocks = Clocks()
    limit = clocks.limit(4)
    assert items_at(clocks, limit, BUSY_CORES + 0.05, 5) == [3, 2, 1, 1, 1]
    assert items_at(clocks, limit, ROOM_CORES / 2 - 0.05, 5) == [2, 3, 4, 4, 4]


def test_the_limit_holds_where_one_worker_more_would_be_busy_and_one_fewer_idle() -> None:
    """One worker at 0.5 cores is not busy, but two would be: it stays at one instead of swinging."""
    clocks = Clocks()
    limit = clocks.limit(4)
    assert items_at(clocks, limit, BUSY_CORES + 0.05, 3) == [3, 2, 1]
    assert items_at(clocks, limit, 0.5, 6) == [1] * 6
    assert items_at(clocks, limit, ROOM_CORES / 2 - 0.05, 1) == [2]
    assert items_at(clocks, limit, 0.6, 6) == [2] * 6


def hold_place(limit: WorkerLimit) -> tuple[threading.Event, threading.Thread]:
    """A worker that takes a place and keeps it until the returned event is set."""
    release, taken = threading.Event(), threading.Event()

    def worker() -> None:
        limit.run(lambda: (taken.set(), release.wait(10)))

    thread = threading.Thread(target=worker)
    thread.start()
    assert taken.wait(5)
    return release, thread


def second_worker(limit: WorkerLimit, make: Callable[[], object]) -> tuple[threading.Event, list]:
    outcome: list = []
    finished = threading.Event()

    def worker() -> None:
        try:
            outcome.append(limit.run(make))
        except Stopped as exc:
            outcome.append(exc)
        finished.set()

    threading.Thread(target=worker, daemon=True).start()
    return finished, outcome


def test_a_worker_waiting_long_on_the_platform_lets_another_in() -> None:
    """One worker keeps the only place through a slow answer: the next is let in once the workers are
    seen idle, not only when that answer comes."""
    clocks = Clocks()
    limit = clocks.limit(2)
    assert items_at(clocks, limit, BUSY_CORES + 0.05, 1) == [1]
    release, holder = hold_place(limit)
    finished, outcome = second_worker(limit, lambda: "made")
    assert not finished.wait(0.3)
    clocks.spend(1.0, cores=0.0)
    assert finished.wait(5) and outcome == ["made"] and limit.limit == 2
    release.set()
    holder.join()


def test_stopping_turns_waiting_and_later_workers_away() -> None:
    clocks = Clocks()
    limit = clocks.limit(2)
    assert items_at(clocks, limit, BUSY_CORES + 0.05, 1) == [1]
    release, holder = hold_place(limit)
    made: list[str] = []
    finished, outcome = second_worker(limit, lambda: made.append("made"))
    assert not finished.wait(0.3)
    limit.stop()
    assert finished.wait(5) and isinstance(outcome[0], Stopped) and made == []
    with pytest.raises(Stopped):
        limit.run(lambda: made.append("made"))
    release.set()
    holder.join()
