"""A snapshot fetches several ad accounts at once, large ones too, spools their audiences as they come,
and holds every account back during a throttle. The Meta emulator stands in for the platform; the
accounts, their audiences and the request times are the emulator's own ground truth.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit_assets.fetching import DONE, fetch_concurrently
from audit_assets.platforms import meta
from audit_assets.platforms.base import AdAccount, BadResponse, Platform, PlatformError
from audit_assets.platforms.http import RetrySettings
from audit_assets.sandbox.meta import DEMO_CREDENTIALS, MetaGraphSandbox, audience_id_of
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount
from audit_assets.snapshot import Snapshot, SnapshotIdentity, take_snapshot
from audit_assets_tests.conftest import TODAY, packaged_destination
from audit_assets_tests.platform_harness import Harness, PlatformClients
from audit_assets_tests.worker_clocks import Clocks

LOG = logging.getLogger("audit_assets_tests.fetching")
ACCOUNTS = [SandboxAccount(f"{2000000001 + n}", f"Account {n}", audiences=10) for n in range(8)]


class ObservedGraph(MetaGraphSandbox):
    """The Meta emulator, answering each request ``latency`` seconds late and noting when each arrived."""

    def __init__(self, *args: Any, latency: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.latency = latency
        self.arrivals: list[tuple[float, str]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._counter = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._counter:
            self.arrivals.append((time.monotonic(), request.url.path))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.latency)
            return super().handle(request)
        finally:
            with self._counter:
                self.in_flight -= 1


def snapshot(
    clients: PlatformClients, emulator: MetaGraphSandbox, page_size: int = 3, **connect: Any
) -> Snapshot:
    harness = clients.connect(
        meta.PLATFORM,
        emulator,
        log=LOG,
        base_url="https://meta.sandbox.invalid",
        credentials=DEMO_CREDENTIALS,
        page_size=page_size,
        **connect,
    )
    return snapshot_through(harness, meta.PLATFORM)


def snapshot_through(harness: Harness, platform: Platform) -> Snapshot:
    return take_snapshot(
        client=harness.client,
        platform=platform,
        identity=SnapshotIdentity("fetching", TODAY, "run", platform.slug, "fetching"),
        sync_ids={},
        ad_account_ids=None,
        log=LOG,
        interrupt=harness.session.interrupt,
    )


def test_accounts_are_fetched_several_at_a_time_and_no_more(platform_clients: PlatformClients) -> None:
    emulator = ObservedGraph(ACCOUNTS, latency=0.02)
    result = snapshot(platform_clients, emulator)
    try:
        assert result.audiences_by_account == {a.id: a.audiences for a in ACCOUNTS}
        assert 1 < emulator.most_in_flight == meta.PLATFORM.concurrent_accounts < len(ACCOUNTS)
    finally:
        result.discard()


def test_every_audience_is_spooled_once_and_accounts_are_reported_in_discovery_order(
    platform_clients: PlatformClients,
) -> None:
    emulator = ObservedGraph(ACCOUNTS, latency=0.005)
    result = snapshot(platform_clients, emulator)
    try:
        spooled = [
            (account, audience)
            for batch in result.batches()
            for account, audience in zip(
                batch.column("ht_ad_account_id").to_pylist(), batch.column("id").to_pylist(), strict=True
            )
        ]
        expected = [(a.id, audience_id_of(a.id, i)) for a in ACCOUNTS for i in range(a.audiences)]
        assert sorted(spooled) == sorted(expected)
        assert list(result.audiences_by_account) == [a.id for a in ACCOUNTS]
    finally:
        result.discard()


def test_large_accounts_are_fetched_side_by_side_not_one_after_another(
    platform_clients: PlatformClients,
) -> None:
    """Accounts of many more audiences than the snapshot types at once are still paged concurrently: by
    the time the first account's last page is asked for, the others are nearly done too."""
    pages, page_size = 24, 250
    large = [SandboxAccount(f"{2000000101 + n}", f"Large {n}", audiences=pages * page_size) for n in range(4)]
    # The emulator answers in this process: its latency must outweigh its own CPU, as a platform's does.
    emulator = ObservedGraph(large, latency=0.06)
    result = snapshot(platform_clients, emulator, page_size=page_size)
    try:
        assert result.audiences_by_account == {a.id: a.audiences for a in large}
        requested = [path for _, path in emulator.arrivals if path.endswith("/customaudiences")]
        first_done = max(i for i, path in enumerate(requested) if f"act_{large[0].id}/" in path)
        for account in large[1:]:
            before = sum(1 for path in requested[:first_done] if f"act_{account.id}/" in path)
            assert before >= pages * 3 // 4, f"account {account.id}: {before} of {pages} pages"
    finally:
        result.discard()


def test_a_throttle_holds_back_every_account_until_it_is_waited_out(
    platform_clients: PlatformClients,
) -> None:
    """One account is throttled; no other account's request may reach the platform while it waits."""
    throttled = f"act_{ACCOUNTS[0].id}/customaudiences"
    faults = Faults().add(FaultKind.THROTTLE, path_contains=throttled)  # no estimate: our backoff
    emulator = ObservedGraph(ACCOUNTS[:4], faults=faults, latency=0.05)  # others are still paging
    wait = 0.4  # base_delay 0.8 s, no jitter: the first backoff is half of it
    result = snapshot(
        platform_clients, emulator, retry=RetrySettings(base_delay_seconds=0.8), sleep=time.sleep
    )
    try:
        assert result.audiences_by_account == {a.id: a.audiences for a in ACCOUNTS[:4]}
        throttled_at = next(at for at, path in emulator.arrivals if path.endswith(throttled))
        # Requests already on their way when the throttle answered may land just after it.
        during = [
            path for at, path in emulator.arrivals if throttled_at + 0.1 < at < throttled_at + wait - 0.05
        ]
        assert during == []
    finally:
        result.discard()


def test_progress_is_logged_per_account_not_per_page(
    platform_clients: PlatformClients, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = ObservedGraph(ACCOUNTS[:3])
    with caplog.at_level(logging.INFO, logger=LOG.name):
        snapshot(platform_clients, emulator).discard()
    pages = sum(1 for _, path in emulator.arrivals if path.endswith("/customaudiences"))
    lines = [r.getMessage() for r in caplog.records if r.name == LOG.name]
    assert pages >= 12
    assert sorted(line for line in lines if "audiences" in line and "account" in line.lower()) == [
        f"Meta account {a.id} ({a.name}): {a.audiences} audiences" for a in ACCOUNTS[:3]
    ]


def test_a_token_expiring_under_several_accounts_is_refreshed_once(platform_clients: PlatformClients) -> None:
    """Pinterest rotates refresh tokens: a second, concurrent refresh with the old one would be refused."""
    from audit_assets.platforms import pinterest
    from audit_assets.sandbox.pinterest import DEMO_CREDENTIALS as PINTEREST_CREDENTIALS
    from audit_assets.sandbox.pinterest import PinterestSandbox

    class SlowPinterest(PinterestSandbox):
        accepted = 0  # API requests answered with the token they carried

        def respond(self, request: httpx.Request) -> httpx.Response:
            time.sleep(0.01)  # every account's request is in flight when the token dies
            response = super().respond(request)
            if not request.url.path.endswith("/oauth/token") and response.status_code != 401:
                with self._lock:
                    self.accepted += 1
            return response

    accounts = ACCOUNTS[:4]
    emulator = SlowPinterest(accounts, expire_after_uses=6, page_cap=2)
    dest = packaged_destination("pinterest")
    harness = platform_clients.connect(
        pinterest.PLATFORM,
        emulator,
        log=LOG,
        base_url=dest["base_url"],
        token_url=dest["token_url"],
        credentials=PINTEREST_CREDENTIALS,
    )
    result = snapshot_through(harness, pinterest.PLATFORM)
    try:
        assert result.audiences_by_account == {a.id: a.audiences for a in accounts}
        token_requests = sum(1 for r in emulator.requests if r.url.path.endswith("/oauth/token"))
        # Each token serves 6 requests: one refresh per 6 answered requests, none more.
        assert token_requests == harness.auth.refreshes == -(-emulator.accepted // 6)
    finally:
        result.discard()


def test_a_bad_page_in_one_account_stops_every_fetcher_and_leaves_no_spool(
    platform_clients: PlatformClients, spool_root: Path
) -> None:
    """The snapshot fails as a whole: the other accounts' fetchers stop and nothing stays on disk."""
    faults = Faults().add(FaultKind.MALFORMED, path_contains=f"act_{ACCOUNTS[2].id}/customaudiences")
    emulator = ObservedGraph(ACCOUNTS, faults=faults, latency=0.01)
    threads_before = threading.active_count()

    with pytest.raises(BadResponse, match="not valid JSON"):
        snapshot(platform_clients, emulator)

    assert threading.active_count() == threads_before, "every fetcher thread has ended"
    assert list(spool_root.iterdir()) == []


def test_no_more_accounts_make_items_at_once_than_the_limit_lets_in() -> None:
    """Three accounts, their items made side by side up to the limit: three at once while the workers
    wait, one at a time once they are busy."""
    accounts = [AdAccount(f"{n}") for n in range(3)]
    making, most_at_once = 0, 0
    counter = threading.Lock()

    def items_of(account: AdAccount, together: threading.Barrier | None) -> Iterator[tuple[str, int]]:
        nonlocal making, most_at_once
        for n in range(4):
            with counter:
                making += 1
                most_at_once = max(most_at_once, making)
            if together is not None and n == 0:
                together.wait(5)  # every account's first item is being made at the same moment
            time.sleep(0.01)
            with counter:
                making -= 1
            yield account.id, n

    clocks = Clocks()
    together = threading.Barrier(3)
    fetched = list(
        fetch_concurrently(
            accounts, lambda a: items_of(a, together), limit=clocks.limit(3), interrupt=lambda: None
        )
    )
    assert most_at_once == 3 and not together.broken
    assert [item for account, item in fetched if account.id == "1"] == [("1", n) for n in range(4)] + [DONE]

    busy = clocks.limit(3)
    while busy.limit > 1:
        busy.run(lambda: clocks.spend(1.0, cores=1.0))
    making, most_at_once = 0, 0
    fetched = list(
        fetch_concurrently(accounts, lambda a: items_of(a, None), limit=busy, interrupt=lambda: None)
    )
    assert most_at_once == 1
    assert sorted(item for _, item in fetched if item is not DONE) == sorted(
        (a.id, n) for a in accounts for n in range(4)
    )


class RevokingGraph(ObservedGraph):
    """The Meta emulator, where the token loses an account after serving its first page."""

    def __init__(self, *args: Any, revoked: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.revoked = revoked

    def handle(self, request: httpx.Request) -> httpx.Response:
        response = super().handle(request)
        if request.url.path.endswith(f"act_{self.revoked}/customaudiences"):
            self.accounts[self.revoked] = replace(self.accounts[self.revoked], readable=False)
        return response


def test_an_account_refused_after_its_first_page_fails_the_whole_snapshot(
    platform_clients: PlatformClients, spool_root: Path
) -> None:
    """Part of an account is never kept: the refusal fails the snapshot, where a refusal of the first page
    would have left the account out."""
    emulator = RevokingGraph(ACCOUNTS[:3], revoked=ACCOUNTS[1].id)
    with pytest.raises(PlatformError, match=f"after 1 pages of account {ACCOUNTS[1].id}"):
        snapshot(platform_clients, emulator)
    assert list(spool_root.iterdir()) == []


class SlowerFor(ObservedGraph):
    """The Meta emulator, answering some accounts later than the others (seconds more, by account)."""

    def __init__(self, *args: Any, delays: dict[str, float], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delays = delays

    def handle(self, request: httpx.Request) -> httpx.Response:
        for account_id, delay in self.delays.items():
            if f"act_{account_id}/" in request.url.path:
                time.sleep(delay)
        return super().handle(request)


def test_accounts_refused_on_their_first_page_are_left_out_uncounted_in_discovery_order(
    platform_clients: PlatformClients, caplog: pytest.LogCaptureFixture
) -> None:
    readable, first, second = ACCOUNTS[0], ACCOUNTS[1], ACCOUNTS[2]
    refused = [replace(first, readable=False), replace(second, readable=False)]
    emulator = SlowerFor([readable, *refused], delays={first.id: 0.3})  # the second refusal comes first
    with caplog.at_level(logging.INFO, logger=LOG.name):
        result = snapshot(platform_clients, emulator)
    try:
        assert result.audiences_by_account == {readable.id: readable.audiences}
        assert list(result.accounts_left_out) == [first.id, second.id]
        counted = [r.getMessage() for r in caplog.records if r.getMessage().endswith(" audiences")]
        assert counted == [f"Meta account {readable.id} ({readable.name}): {readable.audiences} audiences"]
    finally:
        result.discard()


class FreezeWatchingGraph(ObservedGraph):
    """The Meta emulator, noting how many objects the collector had set aside at each request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frozen: list[int] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.frozen.append(gc.get_freeze_count())
        return super().handle(request)


def test_the_processs_earlier_objects_are_frozen_during_the_fetch_and_put_back(
    platform_clients: PlatformClients,
) -> None:
    """The collector skips what the process held before the fetch, and holds nothing aside after it,
    whether the snapshot lands or fails."""
    frozen_before = gc.get_freeze_count()
    landing = FreezeWatchingGraph(ACCOUNTS[:2])
    snapshot(platform_clients, landing).discard()
    assert gc.get_freeze_count() == frozen_before
    faults = Faults().add(FaultKind.MALFORMED, path_contains=f"act_{ACCOUNTS[1].id}/customaudiences")
    failing = FreezeWatchingGraph(ACCOUNTS[:2], faults=faults)
    with pytest.raises(BadResponse):
        snapshot(platform_clients, failing)
    assert gc.get_freeze_count() == frozen_before
    for emulator in (landing, failing):
        paths = [path for _, path in emulator.arrivals]
        during_fetch = [
            n for n, path in zip(emulator.frozen, paths, strict=True) if "customaudiences" in path
        ]
        assert during_fetch and min(during_fetch) > frozen_before


def test_objects_the_process_froze_itself_stay_frozen(platform_clients: PlatformClients) -> None:
    """A process that froze objects (before forking, say) finds them frozen after a snapshot."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        snapshot(platform_clients, ObservedGraph(ACCOUNTS[:2])).discard()
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_failed_snapshot_does_not_wait_out_another_accounts_throttle(
    platform_clients: PlatformClients, spool_root: Path
) -> None:
    """One account is told to wait a minute, which holds every account back; another's answer, already on
    its way, is malformed. The snapshot fails at once, not a minute later: the wait ends, the account
    held back sends nothing more, and no thread or spool outlives the snapshot."""
    waiting, failing, held = ACCOUNTS[0], ACCOUNTS[1], ACCOUNTS[2]
    faults = (
        Faults()
        .add(FaultKind.THROTTLE, path_contains=f"act_{waiting.id}/customaudiences", wait_minutes=1)
        .add(FaultKind.MALFORMED, path_contains=f"act_{failing.id}/customaudiences")
    )
    # Answers take 0.1 s: the throttle comes at 0.1 s, the held account's first page at 0.25 s (its
    # second request then waits for the throttle), the malformed page at 0.4 s.
    emulator = SlowerFor(
        [waiting, failing, held], delays={held.id: 0.15, failing.id: 0.3}, faults=faults, latency=0.1
    )
    threads_before = threading.active_count()
    started = time.monotonic()
    with pytest.raises(BadResponse):
        snapshot(platform_clients, emulator, real_waits=True)
    assert time.monotonic() - started < 10
    assert [path for _, path in emulator.arrivals].count(f"/v25.0/act_{held.id}/customaudiences") == 1
    assert threading.active_count() == threads_before
    assert list(spool_root.iterdir()) == []
