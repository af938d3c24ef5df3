"""The Meta client and snapshotting, end to end through real httpx against the Graph emulator.

Only the platform is replaced (by the sandbox emulator, in-process or as a real HTTP server) and the
clock (a recording ``sleep``); the client, the retry policy and the spooling are the real code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from audit_assets.platforms import meta
from audit_assets.platforms.base import (
    AdAccount,
    AuthError,
    BadResponse,
    PageTooLarge,
    ThrottleCapExceeded,
    TransientExhausted,
)
from audit_assets.platforms.http import RetrySettings
from audit_assets.sandbox.meta import MetaGraphSandbox, graph_error
from audit_assets.sandbox.server import serve
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount
from audit_assets.snapshot import SnapshotIdentity
from audit_assets_tests.conftest import CLOSED, RETAIL, TRAVEL
from audit_assets_tests.platform_harness import (
    Connect,
    PlatformClients,
    SnapshotRig,
    active_accounts,
    ids_in_order,
    listed,
)

TOKEN = "test-meta-token-7f3c9a"
BASE_URL = "https://meta.sandbox.invalid"
TODAY = dt.date(2026, 3, 14)
FETCHED_AT = dt.datetime(2026, 3, 14, 6, 0, 5, tzinfo=dt.UTC)
LOG = logging.getLogger("audit_assets_tests.meta_client")


def sandbox(
    accounts: tuple[SandboxAccount, ...] = (RETAIL, TRAVEL, CLOSED),
    *,
    faults: Faults | None = None,
    empty_pages: int = 0,
    heaviest_page: int | None = None,
    cls: type[MetaGraphSandbox] = MetaGraphSandbox,
) -> MetaGraphSandbox:
    """A Graph emulator with a fixed day, so sizes are the same within a test."""
    return cls(
        accounts,
        faults=faults,
        token=TOKEN,
        today=lambda: TODAY,
        empty_pages=empty_pages,
        heaviest_page=heaviest_page,
    )


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A Meta client over real httpx: in-process against an emulator, or over the network without one."""
    return platform_clients.binding(
        meta.PLATFORM, log=LOG, base_url=BASE_URL, credentials={"access_token": TOKEN}
    )


def audience_requests(emulator: MetaGraphSandbox) -> list[httpx.Request]:
    return [r for r in emulator.requests if r.url.path.endswith("/customaudiences")]


def expected_ids(account: SandboxAccount) -> list[str]:
    """The emulator's audience ids, in listing order."""
    return ids_in_order(account, lambda account_id, i: f"2385{account_id[-4:]}{i:09d}")


# --- discovery ------------------------------------------------------------------------------------------


def test_discovery_skips_inactive_accounts(connect: Connect) -> None:
    """A closed account has no audiences worth snapshotting; only ACTIVE (status 1) accounts count."""
    harness = connect(sandbox())

    accounts = active_accounts(harness.client)

    assert [(a.id, a.name) for a in accounts] == [(RETAIL.id, "Retail"), (TRAVEL.id, "Travel")]


def test_discovery_follows_every_page(connect: Connect) -> None:
    """Five accounts at two per page need three requests; none may be lost at a page boundary."""
    accounts = tuple(SandboxAccount(f"20000000{i:02d}", f"Account {i}") for i in range(5))
    emulator = sandbox(accounts)
    harness = connect(emulator, page_size=2)

    found = active_accounts(harness.client)

    assert [a.id for a in found] == [a.id for a in accounts]
    assert len(emulator.requests) == 3
    assert all(r.url.params["limit"] == "2" for r in emulator.requests)


# --- audience paging ------------------------------------------------------------------------------------


def test_audience_paging_collects_every_page_in_order(connect: Connect) -> None:
    """23 audiences at 5 per page: 5 requests, every id once, in the platform's order."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = sandbox((big,))
    harness = connect(emulator, page_size=5)

    pages = list(harness.client.audience_pages(AdAccount(big.id)))

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    ids = [a["id"] for page in pages for a in page]
    assert ids == expected_ids(big)
    assert len(set(ids)) == 23
    assert len(audience_requests(emulator)) == 5


def test_empty_page_with_next_is_not_the_end(connect: Connect) -> None:
    """Graph may return an empty page that still has paging.next; stopping there would lose audiences."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = sandbox((big,), empty_pages=2)
    harness = connect(emulator, page_size=5)

    pages = list(harness.client.audience_pages(AdAccount(big.id)))

    assert [len(p) for p in pages] == [5, 0, 0, 5, 5, 5, 3]
    assert [a["id"] for page in pages for a in page] == expected_ids(big)


def test_token_travels_in_header_never_in_url(connect: Connect) -> None:
    """A token in a URL ends up in proxy and server logs; it must only be in the Authorization header."""
    emulator = sandbox()
    harness = connect(emulator, page_size=3)

    for account in active_accounts(harness.client):
        listed(harness.client, SandboxAccount(account.id, ""))

    assert len(emulator.requests) > 3
    for request in emulator.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert "access_token" not in str(request.url)
        assert TOKEN not in str(request.url)


def test_every_known_field_is_requested(connect: Connect) -> None:
    """Graph returns only ids unless fields are named, so every field we keep must be asked for."""
    emulator = sandbox((RETAIL,))
    harness = connect(emulator)

    audiences = listed(harness.client, RETAIL)

    (request,) = audience_requests(emulator)
    requested = request.url.params["fields"].split(",")
    assert set(requested) == {f.api_name for f in meta.FIELDS}
    assert len(requested) == len(meta.FIELDS)
    assert all("approximate_count_lower_bound" in a and "name" in a for a in audiences)


def test_paging_stays_on_configured_host(connect: Connect) -> None:
    """Paging uses the after cursor on our own URL, not the platform's ``next`` (which may point elsewhere)."""

    class ForeignNext(MetaGraphSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            response = super().respond(request)
            body = json.loads(response.content)
            if "next" in body.get("paging", {}):
                body["paging"]["next"] = body["paging"]["next"].replace(
                    "meta.sandbox.invalid", "elsewhere.sandbox.invalid"
                )
            return httpx.Response(response.status_code, json=body)

    emulator = sandbox((RETAIL,), cls=ForeignNext)
    harness = connect(emulator, page_size=3)

    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert {r.url.host for r in emulator.requests} == {"meta.sandbox.invalid"}


# --- throttling --------------------------------------------------------------------------------------------


def test_throttle_waits_what_meta_asks_then_succeeds(connect: Connect) -> None:
    """Meta's 80003 carries estimated_time_to_regain_access (minutes); we wait exactly that, then go on."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=2, path_contains="customaudiences")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    audiences = listed(harness.client, RETAIL)

    assert [a["id"] for a in audiences] == expected_ids(RETAIL)
    assert harness.sleeps == [120.0]
    assert harness.session.throttle_waited_seconds == 120.0
    assert len(audience_requests(emulator)) == 2


def test_throttle_beyond_cap_gives_up_without_waiting(connect: Connect) -> None:
    """Waiting 5 minutes with a 60 s cap would stall the run; fail at once, saying why."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=5, path_contains="customaudiences")
    harness = connect(sandbox((RETAIL,), faults=faults), retry=RetrySettings(max_throttle_wait_seconds=60))

    with pytest.raises(ThrottleCapExceeded) as info:
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert "80003" in message
    assert "cap of 60s" in message
    assert "300s" in message
    assert harness.sleeps == []


def test_throttles_without_an_estimate_back_off_further_each_time(connect: Connect) -> None:
    """ "0 minutes" (or no header) must not mean hammering: each throttle waits longer, so the cap ends it."""
    faults = Faults().add(FaultKind.THROTTLE, times=3, wait_minutes=0, path_contains="customaudiences")
    harness = connect(sandbox((RETAIL,), faults=faults))

    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0, 2.0]


def test_throttle_cap_counts_total_waiting(connect: Connect) -> None:
    """The cap bounds the whole snapshot's waiting, not each wait separately."""
    faults = Faults().add(FaultKind.THROTTLE, times=2, wait_minutes=1, path_contains="customaudiences")
    harness = connect(sandbox((RETAIL,), faults=faults), retry=RetrySettings(max_throttle_wait_seconds=90))

    with pytest.raises(ThrottleCapExceeded, match="60s already waited"):
        listed(harness.client, RETAIL)

    assert harness.sleeps == [60.0]


# --- transient failures -----------------------------------------------------------------------------------


def test_server_error_burst_is_retried_with_exponential_backoff(connect: Connect) -> None:
    """Three 5xx in a row are survivable; each wait doubles so a struggling platform gets room."""
    faults = Faults().add(FaultKind.SERVER_ERROR, times=3, path_contains="customaudiences")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator, retry=RetrySettings(max_retries=5, base_delay_seconds=1.0))

    audiences = listed(harness.client, RETAIL)

    assert [a["id"] for a in audiences] == expected_ids(RETAIL)
    assert len(harness.sleeps) == 3
    assert harness.sleeps == [0.5, 1.0, 2.0]  # equal jitter with jitter()=0: half the doubling ceiling
    assert all(
        later == 2 * earlier for earlier, later in zip(harness.sleeps, harness.sleeps[1:], strict=False)
    )
    assert len(audience_requests(emulator)) == 4


def test_server_errors_beyond_max_retries_fail_with_attempt_count(connect: Connect) -> None:
    """A platform that stays down fails the snapshot after max_retries, saying how hard we tried."""
    faults = Faults().add(FaultKind.SERVER_ERROR, times=10, path_contains="customaudiences")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator, retry=RetrySettings(max_retries=2))

    with pytest.raises(TransientExhausted) as info:  # the kind a later step attempt may heal
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert "after 3 attempts" in message
    assert "listing custom audiences of account 1000000001" in message
    assert "500" in message
    assert len(audience_requests(emulator)) == 3
    assert len(harness.sleeps) == 2


def test_disconnect_is_retried(connect: Connect) -> None:
    """A dropped connection is a transport error worth retrying, like a 5xx."""
    faults = Faults().add(FaultKind.DISCONNECT, times=2, path_contains="customaudiences")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    audiences = listed(harness.client, RETAIL)

    assert [a["id"] for a in audiences] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0]
    assert len(audience_requests(emulator)) == 3


# --- fatal failures ------------------------------------------------------------------------------------------


def test_invalid_token_is_an_auth_error_asking_to_reauthorise(connect: Connect) -> None:
    """Graph error 190 cannot be retried away: say so, once, without printing the token."""
    wrong = "wrong-token-5e1d2b"
    emulator = sandbox()
    harness = connect(emulator, credentials={"access_token": wrong})

    with pytest.raises(AuthError) as info:
        active_accounts(harness.client)

    message = str(info.value)
    assert "re-authorise" in message
    assert "Graph error 190" in message
    assert wrong not in message
    assert TOKEN not in message
    assert len(emulator.requests) == 1
    assert harness.sleeps == []


def test_token_echoed_by_the_platform_is_redacted(connect: Connect) -> None:
    """Some platforms quote the token they refused; our message must still not contain it."""

    class EchoingGraph(MetaGraphSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            supplied = request.headers.get("authorization", "").removeprefix("Bearer ")
            return graph_error(request, 400, 190, f"Invalid OAuth access token: {supplied}")

    harness = connect(sandbox(cls=EchoingGraph))

    with pytest.raises(AuthError) as info:
        active_accounts(harness.client)

    assert TOKEN not in str(info.value)
    assert "[redacted]" in str(info.value)


def test_malformed_json_is_a_bad_response_without_retries(connect: Connect) -> None:
    """A 200 with a broken body is not transient: retrying would only hide a platform change."""
    faults = Faults().add(FaultKind.MALFORMED, path_contains="customaudiences")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    with pytest.raises(BadResponse, match="not valid JSON"):
        listed(harness.client, RETAIL)

    assert len(audience_requests(emulator)) == 1
    assert harness.sleeps == []


# --- a real HTTP server ----------------------------------------------------------------------------------------


def test_listing_over_a_real_http_server(connect: Connect) -> None:
    """The same client works over sockets, with keep-alive and a path-less base_url, not just in-process."""
    emulator = sandbox()
    with serve(emulator) as url:
        harness = connect(base_url=url, page_size=3)

        accounts = active_accounts(harness.client)
        audiences = {a.id: listed(harness.client, SandboxAccount(a.id, "")) for a in accounts}

    assert [a.id for a in accounts] == [RETAIL.id, TRAVEL.id]
    assert [x["id"] for x in audiences[RETAIL.id]] == expected_ids(RETAIL)
    assert [x["id"] for x in audiences[TRAVEL.id]] == expected_ids(TRAVEL)
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in emulator.requests)


def test_disconnect_over_a_real_http_server_is_retried(connect: Connect) -> None:
    """A real socket closed without a response is retried like the in-process disconnect."""
    faults = Faults().add(FaultKind.DISCONNECT, path_contains="customaudiences")
    emulator = sandbox((RETAIL,), faults=faults)
    with serve(emulator) as url:
        harness = connect(base_url=url)
        audiences = listed(harness.client, RETAIL)

    assert [a["id"] for a in audiences] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5]


# --- take_snapshot ---------------------------------------------------------------------------------------------


IDENTITY = SnapshotIdentity(
    snapshot_id="snap-0001",
    snapshot_date=TODAY,
    run_id="run-abc",
    destination="meta",
    destination_id="sandbox_meta",
)


SNAPSHOTS = SnapshotRig(meta.PLATFORM, IDENTITY, LOG, FETCHED_AT)
snapshot_of = SNAPSHOTS.take


def test_snapshot_counts_every_audience_of_every_active_account(connect: Connect, spool_root: Path) -> None:
    """row_count is what the warehouse is told to expect; it must match what the platform listed."""
    snapshot = snapshot_of(connect(sandbox(), page_size=3))
    try:
        assert snapshot.row_count == RETAIL.audiences + TRAVEL.audiences
        assert snapshot.audiences_by_account == {RETAIL.id: 8, TRAVEL.id: 5}
        assert snapshot.accounts_not_found == ()
        assert snapshot.drift_fields == frozenset()
        assert snapshot.fetched_at == FETCHED_AT
        assert pq.ParquetFile(snapshot.path).metadata.num_rows == 13
    finally:
        snapshot.discard()


def test_ad_account_ids_narrow_the_snapshot_and_report_missing(connect: Connect, spool_root: Path) -> None:
    """An allow-list keeps only those accounts; ids that are not active are reported, not silently dropped."""
    emulator = sandbox()
    snapshot = snapshot_of(connect(emulator), ad_account_ids=frozenset({TRAVEL.id, CLOSED.id, "9999999999"}))
    try:
        assert snapshot.audiences_by_account == {TRAVEL.id: 5}
        assert snapshot.row_count == 5
        assert snapshot.accounts_not_found == (CLOSED.id, "9999999999")
        assert all(RETAIL.id not in r.url.path for r in emulator.requests)
    finally:
        snapshot.discard()


class WrongTypeGraph(MetaGraphSandbox):
    """Meta starts sending the size as text for one audience: a platform change we must not guess at."""

    @staticmethod
    def _audience(account: SandboxAccount, index: int, day: dt.date) -> dict[str, Any]:
        audience = MetaGraphSandbox._audience(account, index, day)
        if index == 5:
            audience["approximate_count_lower_bound"] = "about 5,000"
        return audience


def test_wrong_field_type_names_audience_and_field(connect: Connect, spool_root: Path) -> None:
    """A value that does not fit its column fails the snapshot, naming exactly what was wrong."""
    harness = connect(sandbox((RETAIL,), cls=WrongTypeGraph))

    with pytest.raises(BadResponse) as info:
        snapshot_of(harness)

    message = str(info.value)
    assert expected_ids(RETAIL)[5] in message
    assert "approximate_count_lower_bound" in message


def test_spool_is_removed_when_the_snapshot_fails(connect: Connect, spool_root: Path) -> None:
    """A failed snapshot leaves nothing behind, even after some rows were already written to disk."""
    harness = connect(sandbox((RETAIL,), cls=WrongTypeGraph), page_size=2)

    with pytest.raises(BadResponse):
        snapshot_of(harness, chunk_rows=2)  # rows 0-3 are flushed to Parquet before index 5 fails

    assert list(spool_root.iterdir()) == []


def test_spool_is_removed_when_the_platform_fails_mid_listing(connect: Connect, spool_root: Path) -> None:
    """The same for a platform error on a later account's listing."""
    faults = Faults().add(FaultKind.MALFORMED, path_contains=f"act_{TRAVEL.id}")
    harness = connect(sandbox(faults=faults))

    with pytest.raises(BadResponse):
        snapshot_of(harness, chunk_rows=1)

    assert list(spool_root.iterdir()) == []


def test_spool_is_removed_by_discard(connect: Connect, spool_root: Path) -> None:
    """After the warehouse has appended it, discard() frees the disk; calling it twice is harmless."""
    snapshot = snapshot_of(connect(sandbox()))
    assert snapshot.path.exists()
    assert snapshot.path.is_relative_to(spool_root)

    snapshot.discard()
    snapshot.discard()

    assert not snapshot.path.exists()
    assert list(spool_root.iterdir()) == []


def test_unknown_field_is_kept_and_reported_as_drift(connect: Connect, spool_root: Path) -> None:
    """A field Meta adds later is not lost: it is in ht_raw at once and reported for a schema update."""

    class NewFieldGraph(MetaGraphSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            response = super().respond(request)
            if not request.url.path.endswith("/customaudiences"):
                return response
            body = json.loads(response.content)
            for audience in body["data"]:
                audience["audience_quality_score"] = {"score": 7}
            return httpx.Response(response.status_code, json=body)

    snapshot = snapshot_of(connect(sandbox((RETAIL,), cls=NewFieldGraph)))
    try:
        assert snapshot.drift_fields == frozenset({"audience_quality_score"})
        rows = snapshot.batches().read_all().to_pylist()
        assert len(rows) == RETAIL.audiences
        assert all(json.loads(r["ht_raw"])["audience_quality_score"] == {"score": 7} for r in rows)
        assert "audience_quality_score" not in rows[0]
    finally:
        snapshot.discard()


def test_spooled_rows_hold_the_audience_as_returned(connect: Connect, spool_root: Path) -> None:
    """ht_raw is the platform's object verbatim; typed columns and ht_* columns are filled from it."""
    emulator = sandbox((RETAIL, TRAVEL))
    reference = connect(emulator)
    as_listed = {a["id"]: a for acct in (RETAIL, TRAVEL) for a in listed(reference.client, acct)}
    sync_audience = expected_ids(RETAIL)[1]

    snapshot = snapshot_of(connect(emulator), sync_ids={sync_audience: "90210"}, chunk_rows=3)
    try:
        table = snapshot.batches(batch_rows=4).read_all()
        assert table.column_names == [c.name for c in snapshot.columns]
        rows = table.to_pylist()
        assert len(rows) == snapshot.row_count == len(as_listed)
        for row in rows:
            audience = as_listed[row["id"]]
            assert json.loads(row["ht_raw"]) == audience
            assert row["ht_snapshot_id"] == IDENTITY.snapshot_id
            assert row["ht_snapshot_date"] == IDENTITY.snapshot_date
            assert row["ht_fetched_at"] == FETCHED_AT
            assert row["ht_run_id"] == IDENTITY.run_id
            assert row["ht_destination"] == "meta"
            assert row["ht_destination_id"] == "sandbox_meta"
            assert row["ht_ad_account_id"] == audience["account_id"]
            assert row["ht_sync_id"] == ("90210" if row["id"] == sync_audience else None)
            assert row["name"] == audience["name"]
            assert row["approximate_count_lower_bound"] == audience["approximate_count_lower_bound"]
            assert json.loads(row["delivery_status"]) == audience["delivery_status"]
            assert row["is_value_based"] is False
            assert row["pixel_id"] is None  # absent from the API object -> null, never invented
    finally:
        snapshot.discard()


def test_raw_keeps_nulls_and_non_ascii_exactly(connect: Connect, spool_root: Path) -> None:
    """ht_raw is what the API returned: an explicit null stays a key and names keep their characters."""

    class NullsGraph(MetaGraphSandbox):
        @staticmethod
        def _audience(account: SandboxAccount, index: int, day: dt.date) -> dict[str, Any]:
            audience = MetaGraphSandbox._audience(account, index, day)
            return audience | {"description": None, "name": f"Käufer 🛒 {index}"}

    snapshot = snapshot_of(connect(sandbox((TRAVEL,), cls=NullsGraph)))
    try:
        rows = snapshot.batches().read_all().to_pylist()
        assert len(rows) == TRAVEL.audiences
        for row in rows:
            raw = json.loads(row["ht_raw"])
            assert "description" in raw
            assert raw["description"] is None
            assert row["description"] is None
            assert raw["name"] == row["name"]
            assert row["name"].startswith("Käufer 🛒 ")
    finally:
        snapshot.discard()


def test_a_page_graph_finds_too_heavy_is_asked_again_smaller_from_the_same_cursor(connect: Connect) -> None:
    """HTTP 500, code 1, "reduce the amount of data": halve the limit, not retry the same request."""
    emulator = sandbox((RETAIL,), heaviest_page=3)
    harness = connect(emulator, page_size=100)

    audiences = listed(harness.client, RETAIL)

    assert [a["id"] for a in audiences] == expected_ids(RETAIL)
    limits = [int(r.url.params["limit"]) for r in audience_requests(emulator)]
    assert limits == [100, 50, 25, 12, 6, 3, 3, 3]  # shrunk on page 1, then 3 + 3 + 2 audiences
    assert harness.sleeps == [], "a page too heavy is not a transient failure to wait out"


def test_a_page_too_heavy_even_for_one_audience_fails_the_listing(connect: Connect) -> None:
    harness = connect(sandbox((RETAIL,), heaviest_page=0))
    with pytest.raises(PageTooLarge, match="reduce the amount of data"):
        listed(harness.client, RETAIL)
