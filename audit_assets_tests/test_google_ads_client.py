"""The Google Ads client and snapshotting, end to end through real httpx against the Google Ads emulator.

Only the platform is replaced (by the sandbox emulator, in-process or as a real HTTP server) and the
clock (a recording ``sleep``); the client, the OAuth flow, the retry policy and the spooling are real.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit_assets.platforms import google_ads
from audit_assets.platforms.base import (
    AccessRefused,
    AdAccount,
    AuthError,
    BadResponse,
    PlatformError,
    ThrottleCapExceeded,
)
from audit_assets.sandbox import sandbox_host
from audit_assets.sandbox.google_ads import (
    DEFAULT_MANAGER,
    GoogleAdsSandbox,
    expected_size_for_display,
    user_list_id,
)
from audit_assets.sandbox.server import serve
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount, audience_name
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

PLATFORM = google_ads.PLATFORM
BASE_URL = "https://" + sandbox_host("google_ads")
TOKEN_URL = BASE_URL + "/token"
CREDENTIALS = {
    "developer_token": "test-dev-token-8c1f5a",
    "client_id": "test-client-3e7d.apps.googleusercontent.com",
    "client_secret": "test-client-secret-2b7e44",
    "refresh_token": "test-refresh-token-91d0c3",
}
TODAY = dt.date(2026, 11, 24)
FETCHED_AT = dt.datetime(2026, 11, 24, 6, 0, 5, tzinfo=dt.UTC)
LOG = logging.getLogger("audit_assets_tests.google_ads_client")
MANAGER = DEFAULT_MANAGER.id


def sandbox(
    accounts: tuple[SandboxAccount, ...] = (RETAIL, TRAVEL, CLOSED), **options: Any
) -> GoogleAdsSandbox:
    """An emulator with a fixed day and the test credentials; by default TRAVEL and CLOSED are also direct."""
    return GoogleAdsSandbox(accounts, credentials=CREDENTIALS, today=lambda: TODAY, **options)


class Rewriting(GoogleAdsSandbox):
    """Answers like Google, then lets a test change a successful API body (a platform change or bug)."""

    def __init__(self, rewrite: Callable[[httpx.Request, dict[str, Any]], Any], **options: Any) -> None:
        super().__init__((RETAIL, TRAVEL, CLOSED), credentials=CREDENTIALS, today=lambda: TODAY, **options)
        self.rewrite = rewrite

    def respond(self, request: httpx.Request) -> httpx.Response:
        response = super().respond(request)
        if response.status_code != 200 or request.url.path.endswith("/token"):
            return response
        return httpx.Response(200, json=self.rewrite(request, json.loads(response.content)))


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A Google Ads client over real httpx: in-process against an emulator, or over the network without one."""
    return platform_clients.binding(
        PLATFORM, log=LOG, base_url=BASE_URL, token_url=TOKEN_URL, credentials=CREDENTIALS
    )


def searches(emulator: GoogleAdsSandbox, customer_id: str | None = None) -> list[httpx.Request]:
    return [
        r
        for r in emulator.requests
        if r.url.path.endswith("googleAds:search")
        and (customer_id is None or f"/customers/{customer_id}/" in r.url.path)
    ]


def expected_ids(account: SandboxAccount) -> list[str]:
    return ids_in_order(account, user_list_id)


def direct(*accounts: SandboxAccount, **options: Any) -> GoogleAdsSandbox:
    """Accounts the user reaches directly, without a manager (each is its own login-customer-id)."""
    return sandbox(accounts, manager=None, **options)


# --- discovery ------------------------------------------------------------------------------------------


def test_discovery_keeps_enabled_non_manager_clients_once(connect: Connect) -> None:
    """The manager is no ad account, the cancelled client is skipped, TRAVEL (also direct) counts once."""
    emulator = sandbox()
    harness = connect(emulator)

    accounts = active_accounts(harness.client)

    assert [(a.id, a.name) for a in accounts] == [(RETAIL.id, "Retail"), (TRAVEL.id, "Travel")]
    (listing,) = [r for r in emulator.requests if r.url.path.endswith("customers:listAccessibleCustomers")]
    assert "login-customer-id" not in listing.headers
    (hierarchy,) = searches(emulator, MANAGER)
    assert hierarchy.headers["login-customer-id"] == MANAGER
    assert "FROM customer_client" in json.loads(hierarchy.content)["query"]
    # TRAVEL's subtree is already known from the manager; CLOSED refused (CUSTOMER_NOT_ENABLED) and is skipped.
    assert searches(emulator, TRAVEL.id) == []
    assert len(searches(emulator, CLOSED.id)) == 1
    assert harness.sleeps == []


def test_listing_after_discovery_sends_the_manager_as_login_customer_id(connect: Connect) -> None:
    """A client reached through a manager must be queried with that manager in login-customer-id."""
    emulator = sandbox()
    harness = connect(emulator)

    found = {
        a.id: [x["id"] for page in harness.client.audience_pages(a) for x in page]
        for a in active_accounts(harness.client)
    }

    assert found == {RETAIL.id: expected_ids(RETAIL), TRAVEL.id: expected_ids(TRAVEL)}
    for account in (RETAIL, TRAVEL):
        assert {r.headers["login-customer-id"] for r in searches(emulator, account.id)} == {MANAGER}


def test_without_a_manager_each_account_is_its_own_login(connect: Connect) -> None:
    """Directly accessible accounts: ENABLED ones are kept and listed with their own id as login."""
    emulator = direct(RETAIL, TRAVEL, CLOSED)
    harness = connect(emulator)

    accounts = active_accounts(harness.client)
    for account in accounts:
        assert [a["id"] for page in harness.client.audience_pages(account) for a in page] == expected_ids(
            RETAIL if account.id == RETAIL.id else TRAVEL
        )

    assert [a.id for a in accounts] == [RETAIL.id, TRAVEL.id]
    for account in (RETAIL, TRAVEL):
        assert {r.headers["login-customer-id"] for r in searches(emulator, account.id)} == {account.id}


def test_configured_login_customer_id_is_the_only_root(connect: Connect) -> None:
    """login_customer_id (dashes allowed) replaces listAccessibleCustomers and goes on every query."""
    emulator = sandbox()
    harness = connect(emulator, credentials=CREDENTIALS | {"login_customer_id": "900-000-0001"})

    accounts = active_accounts(harness.client)
    listed(harness.client, RETAIL)

    assert [a.id for a in accounts] == [RETAIL.id, TRAVEL.id]
    assert not any(r.url.path.endswith("listAccessibleCustomers") for r in emulator.requests)
    assert {r.headers["login-customer-id"] for r in searches(emulator)} == {MANAGER}


def test_configured_login_customer_id_that_is_cancelled_fails_clearly(connect: Connect) -> None:
    """A configured root that refuses is not silently skipped: the snapshot would be empty without saying why."""
    harness = connect(sandbox(), credentials=CREDENTIALS | {"login_customer_id": CLOSED.id})

    with pytest.raises(AccessRefused, match="CUSTOMER_NOT_ENABLED"):
        active_accounts(harness.client)


def test_malformed_login_customer_id_is_refused_without_echoing_it(connect: Connect) -> None:
    with pytest.raises(PlatformError, match="login_customer_id") as info:
        connect(sandbox(), credentials=CREDENTIALS | {"login_customer_id": "mcc-4471"})
    assert "mcc-4471" not in str(info.value)


def test_hierarchy_is_paged_to_its_end(connect: Connect) -> None:
    """A manager with many clients answers in several pages; clients on later pages are not lost."""
    clients = tuple(SandboxAccount(f"20000000{i:02d}", f"Client {i}", audiences=1) for i in range(7))
    emulator = sandbox(clients, directly_accessible=(), page_size=2)
    harness = connect(emulator)

    accounts = active_accounts(harness.client)

    assert [a.id for a in accounts] == [c.id for c in clients]
    assert len(searches(emulator, MANAGER)) == 4  # the manager's own row plus 7 clients, 2 per page


def test_an_access_refusal_names_login_customer_id(connect: Connect) -> None:
    """Listing a manager's client without the manager as login is USER_PERMISSION_DENIED: say how to fix it.

    A refusal of this customer, not of the credentials: in a snapshot the account would be left out.
    """
    harness = connect(sandbox())

    with pytest.raises(AccessRefused) as info:
        listed(harness.client, RETAIL)  # no discovery: the client falls back to RETAIL as its own login

    assert "USER_PERMISSION_DENIED" in str(info.value)
    assert "login_customer_id" in str(info.value)


# --- audience paging ------------------------------------------------------------------------------------


def test_paging_follows_next_page_token_to_its_absence(connect: Connect) -> None:
    """23 lists at 5 per page: 5 requests, every id once, the query unchanged, no pageSize ever sent."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = direct(big, page_size=5)
    harness = connect(emulator)

    pages = list(harness.client.audience_pages(AdAccount(big.id)))

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [a["id"] for page in pages for a in page] == expected_ids(big)
    bodies = [json.loads(r.content) for r in searches(emulator, big.id)]
    assert len(bodies) == 5
    assert "pageToken" not in bodies[0]
    assert all("pageToken" in b for b in bodies[1:])
    assert len({b["query"] for b in bodies}) == 1
    assert not any("pageSize" in b for b in bodies)


def test_an_exact_multiple_of_the_page_size_ends_without_an_empty_page(connect: Connect) -> None:
    even = SandboxAccount("3000000002", "Even", audiences=10)
    emulator = direct(even, page_size=5)
    harness = connect(emulator)

    assert [len(p) for p in harness.client.audience_pages(AdAccount(even.id))] == [5, 5]
    assert len(searches(emulator, even.id)) == 2


def test_an_account_without_user_lists_has_no_results_key(connect: Connect) -> None:
    """proto3 JSON leaves an empty ``results`` out: that is an empty account, not a broken response."""
    empty = SandboxAccount("3000000003", "Empty", audiences=0)
    emulator = direct(empty)
    harness = connect(emulator)

    assert list(harness.client.audience_pages(AdAccount(empty.id))) == [[]]


def test_a_repeated_page_token_is_a_bad_response_not_an_endless_loop(connect: Connect) -> None:
    """A platform bug that hands back the token it was asked with would otherwise page forever."""

    def stuck(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        asked = json.loads(request.content).get("pageToken") if request.method == "POST" else None
        return body | {"nextPageToken": asked} if asked else body

    harness = connect(Rewriting(stuck, manager=None))

    with pytest.raises(BadResponse, match="repeated a page token"):
        listed(harness.client, RETAIL)


def test_every_user_list_field_is_selected_and_nothing_unknown_comes_back(connect: Connect) -> None:
    """GAQL returns only what is selected: the query must name every field we keep, leaf by leaf."""
    emulator = direct(RETAIL, TRAVEL)
    harness = connect(emulator)

    audiences = listed(harness.client, RETAIL) + listed(harness.client, TRAVEL)

    query = json.loads(searches(emulator, RETAIL.id)[0].content)["query"]
    selected = query.removeprefix("SELECT ").removesuffix(" FROM user_list").split(", ")
    assert {s.split(".")[1] for s in selected} == {f.column for f in google_ads.FIELDS}
    known = {f.api_name for f in google_ads.FIELDS}
    assert set().union(*audiences) <= known
    assert all(isinstance(a["id"], str) for a in audiences)  # int64 travels as a JSON string
    assert any("ruleBasedUserList" in a for a in audiences)
    assert any("lookalikeUserList" in a for a in audiences)


# --- OAuth ------------------------------------------------------------------------------------------------


def test_token_endpoint_gets_form_client_auth_and_no_developer_token(connect: Connect) -> None:
    """The refresh grant goes to the configured token URL; API secrets travel only in headers."""
    emulator = direct(RETAIL)
    harness = connect(emulator)

    listed(harness.client, RETAIL)

    token_requests = [r for r in emulator.requests if r.url.path == "/token"]
    assert len(token_requests) == 1
    form = dict(httpx.QueryParams(token_requests[0].content.decode()))
    assert form["grant_type"] == "refresh_token"
    assert form["client_id"] == CREDENTIALS["client_id"]
    assert "developer-token" not in token_requests[0].headers
    for request in searches(emulator):
        assert request.headers["developer-token"] == CREDENTIALS["developer_token"]
        assert request.headers["authorization"].startswith("Bearer ya29.sbx-access-")
        text = str(request.url) + request.content.decode()
        assert not any(secret in text for secret in CREDENTIALS.values())


def test_access_token_refused_even_after_refresh_fails_with_the_oauth_fix(connect: Connect) -> None:
    """Every token dies at once: one refresh and replay, then a clear failure, not a loop."""
    emulator = direct(RETAIL, expire_after_uses=0)
    harness = connect(emulator)

    with pytest.raises(AuthError) as info:
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert "OAUTH_TOKEN_INVALID" in message
    assert "update client_id, client_secret and refresh_token" in message
    assert emulator.issuer.issued == 2
    assert len(searches(emulator)) == 2
    assert harness.sleeps == []


def test_invalid_developer_token_names_the_secret_to_fix(connect: Connect) -> None:
    wrong = "wrong-developer-token-77aa"
    harness = connect(sandbox(), credentials=CREDENTIALS | {"developer_token": wrong})

    with pytest.raises(AuthError) as info:
        active_accounts(harness.client)

    message = str(info.value)
    assert "DEVELOPER_TOKEN_INVALID" in message
    assert "developer_token secret" in message
    assert wrong not in message


def test_unapproved_developer_token_says_to_apply_for_access(connect: Connect) -> None:
    harness = connect(sandbox(developer_token_approved=False))

    with pytest.raises(AuthError, match="apply for Basic or Standard access"):
        active_accounts(harness.client)

    assert harness.sleeps == []


# --- throttling and transient failures ----------------------------------------------------------------


def test_throttle_waits_the_retry_delay_google_asks_then_succeeds(connect: Connect) -> None:
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=1, path_contains="googleAds:search")
    emulator = direct(RETAIL, faults=faults)
    harness = connect(emulator)

    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [60.0]
    assert harness.session.throttle_waited_seconds == 60.0


def test_daily_quota_exhaustion_fails_at_once_without_waiting(connect: Connect) -> None:
    """A retryDelay of hours (the developer token's daily quota) is beyond any cap: fail now, say why."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=678, path_contains="googleAds:search")
    harness = connect(direct(RETAIL, faults=faults))

    with pytest.raises(ThrottleCapExceeded) as info:
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert "quotaError=RESOURCE_EXHAUSTED" in message
    assert "40680s" in message
    assert harness.sleeps == []


def test_throttle_without_a_delay_backs_off(connect: Connect) -> None:
    faults = Faults().add(FaultKind.THROTTLE, times=2, path_contains="googleAds:search")
    harness = connect(direct(RETAIL, faults=faults))

    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0]


def test_internal_errors_are_retried_with_backoff(connect: Connect) -> None:
    faults = Faults().add(FaultKind.SERVER_ERROR, times=2, path_contains="googleAds:search")
    emulator = direct(RETAIL, faults=faults)
    harness = connect(emulator)

    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0]
    assert len(searches(emulator)) == 2 + 2  # two failures, then two pages


# --- wrong shapes ---------------------------------------------------------------------------------------


def test_malformed_json_is_a_bad_response_without_retries(connect: Connect) -> None:
    faults = Faults().add(FaultKind.MALFORMED, path_contains="googleAds:search")
    emulator = direct(RETAIL, faults=faults)
    harness = connect(emulator)

    with pytest.raises(BadResponse, match="not valid JSON"):
        listed(harness.client, RETAIL)
    assert harness.sleeps == []


@pytest.mark.parametrize(
    ("rewrite", "message"),
    [
        (lambda body: body | {"results": {"userList": {}}}, "no 'results' list"),
        (lambda body: body | {"results": [{"customer": {"id": "1"}}]}, "no 'userList' object"),
        (lambda body: body | {"nextPageToken": 7}, "not a string"),
    ],
)
def test_wrong_listing_shapes_are_bad_responses(
    connect: Connect, rewrite: Callable[[dict[str, Any]], Any], message: str
) -> None:
    harness = connect(Rewriting(lambda _, body: rewrite(body), manager=None))

    with pytest.raises(BadResponse, match=message):
        listed(harness.client, RETAIL)


@pytest.mark.parametrize(
    ("rewrite", "message"),
    [
        (lambda body: {"resourceNames": ["1000000001"]}, "not a customers/<id>"),
        (lambda body: {"resourceNames": "customers/1000000001"}, "not a list of strings"),
        (lambda body: body | {"results": [{"customerClient": {"id": "12-34"}}]}, "not a customer id"),
        (lambda body: body | {"results": [{"customer": {}}]}, "no 'customerClient' object"),
    ],
)
def test_wrong_discovery_shapes_are_bad_responses(
    connect: Connect, rewrite: Callable[[dict[str, Any]], Any], message: str
) -> None:
    harness = connect(Rewriting(lambda _, body: rewrite(body)))

    with pytest.raises(BadResponse, match=message):
        active_accounts(harness.client)


# --- a real HTTP server ------------------------------------------------------------------------------------


def test_discovery_and_listing_over_a_real_http_server(connect: Connect) -> None:
    """Sockets, keep-alive, a path-less base_url, and the token endpoint on the same host."""
    emulator = sandbox(page_size=3)
    with serve(emulator) as url:
        harness = connect(base_url=url, token_url=url + "/token")
        accounts = active_accounts(harness.client)
        audiences = {
            a.id: [x["id"] for page in harness.client.audience_pages(a) for x in page] for a in accounts
        }

    assert audiences == {RETAIL.id: expected_ids(RETAIL), TRAVEL.id: expected_ids(TRAVEL)}
    assert emulator.issuer.issued == 1
    assert all(r.headers["developer-token"] == CREDENTIALS["developer_token"] for r in searches(emulator))


# --- snapshots and the v1 view ------------------------------------------------------------------------------

TABLE = "google_ads_sandbox_google_ads_audiences"
IDENTITY = SnapshotIdentity("snap-ga-1", TODAY, "run-ga", "google_ads", "sandbox_google_ads")


SNAPSHOTS = SnapshotRig(PLATFORM, IDENTITY, LOG, FETCHED_AT, TABLE, chunk_rows=4)
snapshot_of = SNAPSHOTS.take
write = SNAPSHOTS.write


def test_v1_view_maps_ids_names_and_sizes_including_nulls_and_int64(
    connect: Connect, spool_root: Path, tmp_path: Path
) -> None:
    emulator = sandbox(page_size=3)
    snapshot = snapshot_of(connect(emulator))
    assert snapshot.row_count == RETAIL.audiences + TRAVEL.audiences
    assert snapshot.drift_fields == frozenset()
    db = tmp_path / "audit.duckdb"

    write(db, snapshot)

    rows = SNAPSHOTS.view_rows(
        db, "ad_account_id, audience_id, audience_name, audience_size, ht_destination", "audience_id"
    )
    raw_size = SNAPSHOTS.query(
        db,
        f"SELECT ht_raw->>'sizeForDisplay' FROM hightouch_audit.{TABLE} WHERE id = ?",
        [int(user_list_id(RETAIL.id, 4))],
    )[0]
    expected = [
        (
            a.id,
            user_list_id(a.id, i),
            audience_name(a.id, i),
            expected_size_for_display(a.id, i, TODAY),
            "google_ads",
        )
        for a in (RETAIL, TRAVEL)
        for i in range(a.audiences)
    ]
    assert rows == sorted(expected)
    sizes = [r[3] for r in rows]
    assert None in sizes  # lookalike lists whose size Google has not determined yet
    assert any(s is not None and s > 2**31 for s in sizes)
    assert raw_size == (str(expected_size_for_display(RETAIL.id, 4, TODAY)),)  # ht_raw keeps the string
    assert list(spool_root.iterdir()) == []


def test_a_token_that_dies_mid_snapshot_is_refreshed_and_nothing_is_lost(
    connect: Connect, spool_root: Path
) -> None:
    emulator = sandbox(page_size=3, expire_after_uses=2)
    snapshot = snapshot_of(connect(emulator))
    try:
        rows = snapshot.batches().read_all().to_pylist()
        assert sorted(str(r["id"]) for r in rows) == sorted(expected_ids(RETAIL) + expected_ids(TRAVEL))
        assert {r["ht_ad_account_id"] for r in rows} == {RETAIL.id, TRAVEL.id}
        assert emulator.issuer.issued >= 3
    finally:
        snapshot.discard()


def test_refused_refresh_token_fails_the_snapshot_clearly_with_nothing_written(
    connect: Connect, spool_root: Path
) -> None:
    stale = CREDENTIALS | {"refresh_token": "revoked-refresh-token-5f2a"}
    emulator = sandbox()
    harness = connect(emulator, credentials=stale)

    with pytest.raises(AuthError) as info:
        snapshot_of(harness)

    message = str(info.value)
    assert "invalid_grant" in message
    assert "authorise the app again" in message
    assert not any(secret in message for secret in stale.values())
    assert list(spool_root.iterdir()) == []
    assert [r.url.path for r in emulator.requests] == ["/token"]
