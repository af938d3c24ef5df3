"""The Snapchat client and snapshotting, end to end through real httpx against the Snap emulator.

Only the platform is replaced (by the sandbox emulator, in-process or as a real HTTP server) and the
clock (a recording ``sleep``); the client, the OAuth refresh, the retry policy, the spooling, the DuckDB
IO manager and the v1 view SQL are the real code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit_assets.platforms import snapchat
from audit_assets.platforms.base import (
    AccessRefused,
    AdAccount,
    AuthError,
    BadResponse,
    PlatformError,
    ThrottleCapExceeded,
)
from audit_assets.platforms.http import RetrySettings
from audit_assets.sandbox import sandbox_host
from audit_assets.sandbox.server import serve
from audit_assets.sandbox.snapchat import TOKEN_PATH, SnapchatSandbox, segment_id_of, snap_error
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

CREDENTIALS = {
    "client_id": "test-snap-client-7d1e",
    "client_secret": "test-snap-secret-93ab2f",
    "refresh_token": "test-snap-refresh-5c8e41",
}
BASE_URL = "https://" + sandbox_host("snapchat")
TOKEN_URL = BASE_URL + TOKEN_PATH
TODAY = dt.date(2026, 3, 14)
FETCHED_AT = dt.datetime(2026, 3, 14, 6, 0, 5, tzinfo=dt.UTC)
LOG = logging.getLogger("audit_assets_tests.snapchat_client")

BIG = SandboxAccount("3000000001", "Big", audiences=120)


def sandbox(
    accounts: tuple[SandboxAccount, ...] = (RETAIL, TRAVEL, CLOSED),
    *,
    cls: type[SnapchatSandbox] = SnapchatSandbox,
    **options: Any,
) -> SnapchatSandbox:
    """A Snap emulator with a fixed day, so sizes are the same within a test."""
    return cls(accounts, credentials=CREDENTIALS, today=lambda: TODAY, **options)


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A Snapchat client over real httpx: in-process against an emulator, or over the network without one.

    The token URL follows base_url, so a served emulator also answers the OAuth refresh.
    """
    return platform_clients.binding(
        snapchat.PLATFORM, log=LOG, base_url=BASE_URL, token_path=TOKEN_PATH, credentials=CREDENTIALS
    )


def expected_ids(account: SandboxAccount) -> list[str]:
    return ids_in_order(account, segment_id_of)


def segment_requests(emulator: SnapchatSandbox) -> list[httpx.Request]:
    return [r for r in emulator.requests if r.url.path.endswith("/segments")]


def token_requests(emulator: SnapchatSandbox) -> list[httpx.Request]:
    return [r for r in emulator.requests if r.url.path == TOKEN_PATH]


class Rewriting(SnapchatSandbox):
    """Lets a test change the JSON bodies the platform sends."""

    rewrite: Callable[[httpx.Request, dict[str, Any]], None] = staticmethod(lambda request, body: None)

    def respond(self, request: httpx.Request) -> httpx.Response:
        response = super().respond(request)
        if response.status_code != 200 or request.url.path == TOKEN_PATH:
            return response
        body = json.loads(response.content)
        type(self).rewrite(request, body)
        return httpx.Response(200, json=body)


def rewriting(rewrite: Callable[[httpx.Request, dict[str, Any]], None]) -> type[SnapchatSandbox]:
    return type("RewritingSnap", (Rewriting,), {"rewrite": staticmethod(rewrite)})


# --- discovery ------------------------------------------------------------------------------------------


def test_discovery_skips_inactive_accounts(connect: Connect) -> None:
    """Only ad accounts with status ACTIVE are snapshotted; a PAUSED one is skipped."""
    emulator = sandbox()
    harness = connect(emulator)

    accounts = active_accounts(harness.client)

    assert [(a.id, a.name) for a in accounts] == [(RETAIL.id, "Retail"), (TRAVEL.id, "Travel")]
    (request,) = emulator.requests[1:]  # after the token request
    assert request.url.path == "/v1/me/organizations"
    assert request.url.params["with_ad_accounts"] == "true"


def test_discovery_spans_organizations_and_follows_their_next_link(connect: Connect) -> None:
    """Accounts live in several organizations, and the organization list itself may page."""
    accounts = tuple(
        SandboxAccount(f"20000000{i:02d}", f"Account {i}", active=i != 2, audiences=1) for i in range(5)
    )
    emulator = sandbox(accounts, organizations=3, organizations_per_page=1)
    harness = connect(emulator)

    found = active_accounts(harness.client)

    # Dealt in turn to three organizations: [0, 3], [1, 4], [2 (paused)].
    assert [a.id for a in found] == ["2000000000", "2000000003", "2000000001", "2000000004"]
    org_requests = [r for r in emulator.requests if r.url.path.endswith("/me/organizations")]
    assert len(org_requests) == 3
    assert "cursor" not in org_requests[0].url.params
    assert all(r.url.params["with_ad_accounts"] == "true" for r in org_requests)


def test_an_organization_without_ad_accounts_has_none(connect: Connect) -> None:
    """An organization may have no ad accounts at all; that is not an error."""

    def drop_accounts(request: httpx.Request, body: dict[str, Any]) -> None:
        for wrapper in body.get("organizations", []):
            if any(a["id"] == TRAVEL.id for a in wrapper["organization"]["ad_accounts"]):
                del wrapper["organization"]["ad_accounts"]

    harness = connect(sandbox(cls=rewriting(drop_accounts)))

    assert [(a.id, a.name) for a in active_accounts(harness.client)] == [(RETAIL.id, "Retail")]


# --- audience paging ------------------------------------------------------------------------------------


def test_segment_paging_follows_next_link_to_the_end(connect: Connect) -> None:
    """120 segments at Snap's smallest page (50): 3 requests, every id once, in the platform's order."""
    emulator = sandbox((BIG,))
    harness = connect(emulator, page_size=50)

    pages = list(harness.client.audience_pages(AdAccount(BIG.id)))

    assert [len(p) for p in pages] == [50, 50, 20]
    assert [s["id"] for page in pages for s in page] == expected_ids(BIG)
    requests = segment_requests(emulator)
    assert len(requests) == 3
    assert all(r.url.params["limit"] == "50" for r in requests)
    assert "cursor" not in requests[0].url.params
    assert len({r.url.params["cursor"] for r in requests[1:]}) == 2


def test_segments_are_unwrapped_from_their_envelope(connect: Connect) -> None:
    """Each item arrives as {sub_request_status, segment}; the audience is the inner segment, whole."""
    emulator = sandbox((RETAIL,))
    harness = connect(emulator)

    assert listed(harness.client, RETAIL) == emulator.segments(RETAIL)


def test_page_size_is_kept_within_snapchats_limits(connect: Connect) -> None:
    """Snap rejects a limit below 50, so a smaller configured page size is sent as 50."""
    emulator = sandbox((BIG,))
    harness = connect(emulator, page_size=10)

    assert [s["id"] for s in listed(harness.client, BIG)] == expected_ids(BIG)
    assert {r.url.params["limit"] for r in segment_requests(emulator)} == {"50"}


def test_empty_page_with_next_link_is_not_the_end(connect: Connect) -> None:
    """Only a missing next_link ends a list; an empty page that still links on must be followed."""
    emulator = sandbox((BIG,), empty_pages=2)
    harness = connect(emulator, page_size=50)

    pages = list(harness.client.audience_pages(AdAccount(BIG.id)))

    assert [len(p) for p in pages] == [50, 0, 0, 50, 20]
    assert [s["id"] for page in pages for s in page] == expected_ids(BIG)


def test_paging_stays_on_the_configured_host(connect: Connect) -> None:
    """Only the cursor of next_link is used: a link to another host never receives our token."""

    def elsewhere(request: httpx.Request, body: dict[str, Any]) -> None:
        if "paging" in body:
            body["paging"]["next_link"] = body["paging"]["next_link"].replace(
                request.url.host, "adsapisc.appspot.com"
            )

    emulator = sandbox((BIG,), cls=rewriting(elsewhere))
    harness = connect(emulator, page_size=50)

    assert [s["id"] for s in listed(harness.client, BIG)] == expected_ids(BIG)
    assert {r.url.host for r in emulator.requests} == {sandbox_host("snapchat")}
    assert len(segment_requests(emulator)) == 3


def test_a_repeated_cursor_is_a_bad_response_not_an_endless_loop(connect: Connect) -> None:
    """A platform bug that links back to a page already read must fail, not page forever."""
    first_links: list[str] = []

    def same_link(request: httpx.Request, body: dict[str, Any]) -> None:
        if "paging" in body and len(first_links) < 5:  # bounded, so a client without the guard ends
            first_links.append(body["paging"]["next_link"])
            body["paging"]["next_link"] = first_links[0]

    emulator = sandbox((BIG,), cls=rewriting(same_link))
    harness = connect(emulator, page_size=50)

    with pytest.raises(BadResponse, match="repeated a cursor at page 2"):
        listed(harness.client, BIG)

    assert len(segment_requests(emulator)) == 2


# --- wrong shapes ------------------------------------------------------------------------------------------


def _segments_only(
    mutate: Callable[[dict[str, Any]], None],
) -> Callable[[httpx.Request, dict[str, Any]], None]:
    def rewrite(request: httpx.Request, body: dict[str, Any]) -> None:
        if request.url.path.endswith("/segments"):
            mutate(body)

    return rewrite


def _organizations_only(
    mutate: Callable[[dict[str, Any]], None],
) -> Callable[[httpx.Request, dict[str, Any]], None]:
    def rewrite(request: httpx.Request, body: dict[str, Any]) -> None:
        if request.url.path.endswith("/me/organizations"):
            mutate(body)

    return rewrite


def _set_sub_request_error(body: dict[str, Any]) -> None:
    body["segments"][2] = {"sub_request_status": "ERROR", "sub_request_error_reason": "Segment unavailable"}


WRONG_SHAPES: dict[str, tuple[Callable[[httpx.Request, dict[str, Any]], None], str]] = {
    "no segments list": (_segments_only(lambda b: b.pop("segments")), "no 'segments' list"),
    "segments not a list": (_segments_only(lambda b: b.update(segments={"a": 1})), "no 'segments' list"),
    "failed sub-request": (
        _segments_only(_set_sub_request_error),
        "sub_request_status 'ERROR' (Segment unavailable)",
    ),
    "wrapper without segment": (
        _segments_only(lambda b: b["segments"].__setitem__(0, {"sub_request_status": "SUCCESS"})),
        "no 'segment' object",
    ),
    "item not an object": (_segments_only(lambda b: b["segments"].__setitem__(1, "x")), "is a str"),
    "no request_status": (_segments_only(lambda b: b.pop("request_status")), "request_status None"),
    "next_link without cursor": (
        _segments_only(lambda b: b.update(paging={"next_link": f"{BASE_URL}/v1/adaccounts/x/segments"})),
        "next_link without a cursor",
    ),
    "ad_accounts not a list": (
        _organizations_only(lambda b: b["organizations"][0]["organization"].update(ad_accounts="all")),
        "no 'ad_accounts' list",
    ),
    "ad account without id": (
        _organizations_only(lambda b: b["organizations"][0]["organization"]["ad_accounts"][0].pop("id")),
        "has no id",
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_wrong_shapes_are_bad_responses_naming_the_problem(connect: Connect, case: str) -> None:
    rewrite, message = WRONG_SHAPES[case]
    harness = connect(sandbox((RETAIL, CLOSED), cls=rewriting(rewrite)))

    with pytest.raises(BadResponse, match=re.escape(message)):
        for account in active_accounts(harness.client):
            listed(harness.client, SandboxAccount(account.id, ""))

    assert harness.sleeps == []


def test_malformed_json_is_a_bad_response_without_retries(connect: Connect) -> None:
    faults = Faults().add(FaultKind.MALFORMED, path_contains="/segments")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    with pytest.raises(BadResponse, match="not valid JSON"):
        listed(harness.client, RETAIL)

    assert len(segment_requests(emulator)) == 1
    assert harness.sleeps == []


def test_a_json_array_instead_of_the_envelope_is_a_bad_response(connect: Connect) -> None:
    class ArraySnap(SnapchatSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/segments"):
                return httpx.Response(200, json=[{"id": "1"}])
            return super().respond(request)

    harness = connect(sandbox((RETAIL,), cls=ArraySnap))

    with pytest.raises(BadResponse, match="expected a JSON object, got list"):
        listed(harness.client, RETAIL)


def test_an_error_envelope_names_snaps_code_and_is_not_retried(connect: Connect) -> None:
    """A 404 (an ad account that is gone) fails at once with Snap's error_code and debug_message."""
    emulator = sandbox((RETAIL,))
    harness = connect(emulator)

    with pytest.raises(PlatformError) as info:
        listed(harness.client, SandboxAccount("9999999999", "Gone"))

    message = str(info.value)
    assert type(info.value) is PlatformError
    assert "HTTP 404" in message and "E3003" in message and "Resource can not be found" in message
    assert "request_id" in message
    assert "listing segments of ad account 9999999999" in message
    assert len(segment_requests(emulator)) == 1
    assert harness.sleeps == []


# --- throttling and transient failures ----------------------------------------------------------------------


def test_throttle_then_success_backs_off_as_snap_gives_no_estimate(connect: Connect) -> None:
    """Snap's 429 carries no wait estimate: the shared backoff decides, and the listing completes."""
    faults = Faults().add(FaultKind.THROTTLE, path_contains="/segments")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    assert [s["id"] for s in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5]
    assert harness.session.throttle_waited_seconds == 0.5
    assert len(segment_requests(emulator)) == 2


def test_repeated_throttles_wait_longer_each_time(connect: Connect) -> None:
    faults = Faults().add(FaultKind.THROTTLE, times=3, path_contains="/segments")
    harness = connect(sandbox((RETAIL,), faults=faults))

    assert [s["id"] for s in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0, 2.0]


def test_throttle_beyond_the_cap_fails_at_once_without_waiting(connect: Connect) -> None:
    faults = Faults().add(FaultKind.THROTTLE, path_contains="/segments")
    retry = RetrySettings(base_delay_seconds=120.0, max_throttle_wait_seconds=30.0)
    harness = connect(sandbox((RETAIL,), faults=faults), retry=retry)

    with pytest.raises(ThrottleCapExceeded) as info:
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert "HTTP 429" in message and "60s" in message and "cap of 30s" in message
    assert harness.sleeps == []


def test_server_errors_are_retried_with_backoff(connect: Connect) -> None:
    faults = Faults().add(FaultKind.SERVER_ERROR, times=2, path_contains="/segments")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    assert [s["id"] for s in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0]
    assert len(segment_requests(emulator)) == 3


def test_server_errors_beyond_max_retries_fail_with_snaps_message(connect: Connect) -> None:
    faults = Faults().add(FaultKind.SERVER_ERROR, times=10, path_contains="/segments")
    harness = connect(sandbox((RETAIL,), faults=faults), retry=RetrySettings(max_retries=1))

    with pytest.raises(PlatformError, match=r"after 2 attempts: HTTP 500.*Internal server error"):
        listed(harness.client, RETAIL)


# --- auth ------------------------------------------------------------------------------------------------------


def test_secrets_travel_only_to_the_token_endpoint_and_tokens_only_in_headers(connect: Connect) -> None:
    emulator = sandbox()
    harness = connect(emulator, page_size=50)

    for account in active_accounts(harness.client):
        listed(harness.client, SandboxAccount(account.id, ""))

    (token_request,) = token_requests(emulator)
    assert token_request.method == "POST"
    assert f"client_secret={CREDENTIALS['client_secret']}" in token_request.content.decode()
    api_requests = [r for r in emulator.requests if r is not token_request]
    assert len(api_requests) == 3
    for request in emulator.requests:
        assert not any(secret in str(request.url) for secret in CREDENTIALS.values())
    for request in api_requests:
        assert request.headers["authorization"] == "Bearer snap-sbx-access-1"
        assert CREDENTIALS["client_secret"] not in str(request.headers)


def test_a_refused_refresh_token_fails_clearly_and_writes_nothing(connect: Connect, spool_root: Path) -> None:
    stale = {**CREDENTIALS, "refresh_token": "stale-refresh-token-0a9b"}
    emulator = sandbox()
    harness = connect(emulator, credentials=stale)

    with pytest.raises(AuthError) as info:
        snapshot_of(harness)

    message = str(info.value)
    assert "invalid_grant" in message
    assert "authorise the app again and update the secrets" in message
    assert not any(secret in message for secret in (*stale.values(), CREDENTIALS["refresh_token"]))
    assert [r.url.path for r in emulator.requests] == [TOKEN_PATH]
    assert list(spool_root.iterdir()) == []


def test_an_api_that_refuses_even_a_fresh_token_fails_clearly_and_writes_nothing(
    connect: Connect, spool_root: Path
) -> None:
    """A 401 is answered by one refresh and a replay; a second 401 is an auth failure naming the fix."""
    emulator = sandbox(expire_after_uses=0)
    harness = connect(emulator)

    with pytest.raises(AuthError) as info:
        snapshot_of(harness)

    message = str(info.value)
    assert "HTTP 401" in message and "E3002" in message
    assert "authorise the Snapchat app again" in message and "refresh_token secret" in message
    assert not any(secret in message for secret in CREDENTIALS.values())
    assert "snap-sbx-access" not in message
    assert [r.url.path for r in emulator.requests] == [TOKEN_PATH, "/v1/me/organizations"] * 2
    assert harness.sleeps == []
    assert list(spool_root.iterdir()) == []


def test_a_forbidden_ad_account_is_refused_naming_the_missing_role(connect: Connect) -> None:
    """403 on one account's segments: the user lacks a role there; its credentials are fine."""

    class ForbiddingSnap(SnapchatSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/segments") and self.issuer.accepts(request.headers):
                return snap_error(request, 403, "Forbidden")
            return super().respond(request)

    harness = connect(sandbox((RETAIL,), cls=ForbiddingSnap))

    with pytest.raises(AccessRefused, match=r"HTTP 403.*Forbidden.*give it a role there"):
        listed(harness.client, RETAIL)


def test_a_token_that_dies_mid_snapshot_is_refreshed_and_the_snapshot_completes(
    connect: Connect, spool_root: Path
) -> None:
    """Snap tokens last 30 minutes, less than a large snapshot: a 401 mid-listing refreshes and replays."""
    emulator = sandbox((BIG, RETAIL, CLOSED), expire_after_uses=2)
    harness = connect(emulator, page_size=50)

    snapshot = snapshot_of(harness)
    try:
        ids = snapshot.batches().read_all().column("id").to_pylist()
        assert ids == expected_ids(BIG) + expected_ids(RETAIL)
        assert snapshot.audiences_by_account == {BIG.id: 120, RETAIL.id: 8}
    finally:
        snapshot.discard()
    # 5 API calls (organizations, 3 pages, 1 page), 2 per token: two tokens die, each costs one replay.
    assert harness.auth.refreshes == 3
    assert len(token_requests(emulator)) == 3
    assert len(emulator.requests) == 3 + 5 + 2
    assert harness.sleeps == []


# --- a real HTTP server ----------------------------------------------------------------------------------------


def test_snapshot_over_a_real_http_server(connect: Connect) -> None:
    """The same client works over sockets, with the token endpoint on the same server."""
    emulator = sandbox((BIG, TRAVEL, CLOSED))
    with serve(emulator) as url:
        harness = connect(base_url=url, page_size=50)

        accounts = active_accounts(harness.client)
        segments = {a.id: listed(harness.client, SandboxAccount(a.id, "")) for a in accounts}

    assert [a.id for a in accounts] == [BIG.id, TRAVEL.id]
    assert [s["id"] for s in segments[BIG.id]] == expected_ids(BIG)
    assert segments[TRAVEL.id] == emulator.segments(TRAVEL)
    assert len(token_requests(emulator)) == 1


# --- snapshot, warehouse and the v1 view ----------------------------------------------------------------------


IDENTITY = SnapshotIdentity(
    snapshot_id="snap-0001",
    snapshot_date=TODAY,
    run_id="run-abc",
    destination="snapchat",
    destination_id="sandbox",
)
TABLE = "snapchat_sandbox_audiences"


SNAPSHOTS = SnapshotRig(
    snapchat.PLATFORM,
    IDENTITY,
    LOG,
    FETCHED_AT,
    TABLE,
    sync_ids={segment_id_of(RETAIL.id, 1): "90210"},
    chunk_rows=4,
)
snapshot_of = SNAPSHOTS.take
write = SNAPSHOTS.write


def test_spooled_rows_hold_the_segment_as_returned(connect: Connect, spool_root: Path) -> None:
    emulator = sandbox()
    snapshot = snapshot_of(connect(emulator))
    try:
        rows = snapshot.batches().read_all().to_pylist()
        by_id = {s["id"]: (a.id, s) for a in (RETAIL, TRAVEL) for s in emulator.segments(a)}
        assert len(rows) == snapshot.row_count == len(by_id) == 13
        for row in rows:
            account_id, segment = by_id[row["id"]]
            assert json.loads(row["ht_raw"]) == segment
            assert row["ht_ad_account_id"] == account_id == row["ad_account_id"]
            assert row["ht_sync_id"] == ("90210" if row["id"] == segment_id_of(RETAIL.id, 1) else None)
            assert json.loads(row["visible_to"]) == ["ALL_ACCOUNTS"]
            assert row["retention_in_days"] == segment["retention_in_days"]
            assert row["updated_at"] == segment["updated_at"]
            spec = segment.get("creation_spec")
            assert (json.loads(row["creation_spec"]) if row["creation_spec"] else None) == spec
        assert snapshot.drift_fields == frozenset()
    finally:
        snapshot.discard()


def test_v1_view_maps_ids_names_and_sizes_including_nulls_and_64_bit(
    connect: Connect, spool_root: Path, tmp_path: Path
) -> None:
    emulator = sandbox()
    db = tmp_path / "audit.duckdb"
    write(db, snapshot_of(connect(emulator)))

    rows = SNAPSHOTS.view_rows(
        db,
        "ad_account_id, audience_id, audience_name, audience_size, ht_destination, ht_sync_id",
        "audience_id",
    )
    (size_type,) = SNAPSHOTS.query(
        db,
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'external_audiences_metadata_v1' AND column_name = 'audience_size'",
    )[0]

    expected = sorted(
        (
            account.id,
            s["id"],
            s["name"],
            s["approximate_number_users"],
            "snapchat",
            "90210" if s["id"] == segment_id_of(RETAIL.id, 1) else None,
        )
        for account in (RETAIL, TRAVEL)
        for s in emulator.segments(account)
    )
    assert rows == expected
    sizes = [r[3] for r in rows]
    assert sizes.count(None) == 2  # the lookalike of each account is still being computed
    assert [s for s in sizes if s is not None and s > 2**31] == [
        emulator.segments(RETAIL)[6]["approximate_number_users"]
    ]
    assert size_type == "BIGINT"
    assert all(not r[0].startswith(("act_", "customers/")) for r in rows)
