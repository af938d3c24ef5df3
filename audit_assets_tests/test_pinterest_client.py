"""The Pinterest client and snapshotting, end to end through real httpx against the Pinterest emulator.

Only the platform is replaced (by the sandbox emulator, in-process or as a real HTTP server) and the
clock (a recording ``sleep``); the client, the OAuth refresh, the retry policy, the spooling, the
DuckDB writer and the v1 view are the real code.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from audit_assets.platforms import pinterest
from audit_assets.platforms.base import (
    AccessRefused,
    AdAccount,
    AuthError,
    BadResponse,
    ThrottleCapExceeded,
)
from audit_assets.platforms.http import RetrySettings
from audit_assets.sandbox import sandbox_host
from audit_assets.sandbox.pinterest import (
    DEMO_CREDENTIALS,
    TOKEN_PATH,
    PinterestSandbox,
    audience_id_of,
    audience_size,
    pinterest_error,
)
from audit_assets.sandbox.server import serve
from audit_assets.sandbox.world import Fault, FaultKind, Faults, SandboxAccount, audience_name
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

BASE_URL = "https://" + sandbox_host("pinterest")
TOKEN_URL = BASE_URL + TOKEN_PATH
CLIENT_ID = "1500000042"
CLIENT_SECRET = "test-pinterest-secret-9c1e"
REFRESH_TOKEN = "pinr.test-refresh-4b7d"
ACCESS_TOKEN = "pina.test-access-2f8a"
REFRESH_CREDENTIALS = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}
SECRETS = (CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN)
TODAY = dt.date(2026, 3, 14)
FETCHED_AT = dt.datetime(2026, 3, 14, 6, 0, 5, tzinfo=dt.UTC)
LOG = logging.getLogger("audit_assets_tests.pinterest_client")


def sandbox(
    accounts: tuple[SandboxAccount, ...] = (RETAIL, TRAVEL, CLOSED),
    *,
    faults: Faults | None = None,
    cls: type[PinterestSandbox] = PinterestSandbox,
    **options: Any,
) -> PinterestSandbox:
    """A Pinterest emulator with a fixed day, this file's app credentials and a fixed access token."""
    return cls(
        accounts,
        faults=faults,
        today=lambda: TODAY,
        shared={TRAVEL.id},  # TRAVEL is shared through Business Access
        access_token=ACCESS_TOKEN,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        **options,
    )


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A Pinterest client over real httpx: in-process against an emulator, or over the network without one."""
    return platform_clients.binding(
        pinterest.PLATFORM,
        log=LOG,
        base_url=BASE_URL,
        token_url=TOKEN_URL,
        credentials=REFRESH_CREDENTIALS,
        page_size=100,
    )


def expected_ids(account: SandboxAccount) -> list[str]:
    return ids_in_order(account, audience_id_of)


def api_requests(emulator: PinterestSandbox, suffix: str) -> list[httpx.Request]:
    return [r for r in emulator.requests if r.url.path.endswith(suffix)]


def token_forms(emulator: PinterestSandbox) -> list[dict[str, str]]:
    return [dict(parse_qsl(r.content.decode())) for r in api_requests(emulator, TOKEN_PATH)]


# --- discovery ------------------------------------------------------------------------------------------


def test_discovery_lists_owned_and_shared_accounts_but_not_inactive(connect: Connect) -> None:
    """v5 has no account status: the listing is the active set. Shared accounts must be asked for."""
    emulator = sandbox()
    harness = connect(emulator)

    accounts = active_accounts(harness.client)

    assert [(a.id, a.name) for a in accounts] == [(RETAIL.id, "Retail"), (TRAVEL.id, "Travel")]
    (request,) = api_requests(emulator, "/v5/ad_accounts")
    assert request.url.params["include_shared_accounts"] == "true"


def test_discovery_follows_every_bookmark(connect: Connect) -> None:
    """Five accounts at two per page need three requests; none may be lost at a page boundary."""
    accounts = tuple(SandboxAccount(f"20000000{i:02d}", f"Account {i}") for i in range(5))
    emulator = sandbox(accounts)
    harness = connect(emulator, page_size=2)

    found = active_accounts(harness.client)

    assert [a.id for a in found] == [a.id for a in accounts]
    requests = api_requests(emulator, "/v5/ad_accounts")
    assert len(requests) == 3
    assert all(r.url.params["page_size"] == "2" for r in requests)
    assert "bookmark" not in requests[0].url.params
    assert all(r.url.params["bookmark"] for r in requests[1:])


def test_an_allow_listed_inactive_account_is_reported_not_found(connect: Connect, spool_root: Path) -> None:
    """An inactive account never reaches the listing; asking for it says so instead of failing later."""
    emulator = sandbox()
    snapshot = snapshot_of(connect(emulator), ad_account_ids=frozenset({TRAVEL.id, CLOSED.id}))
    try:
        assert snapshot.audiences_by_account == {TRAVEL.id: TRAVEL.audiences}
        assert snapshot.accounts_not_found == (CLOSED.id,)
        assert not any(CLOSED.id in r.url.path for r in emulator.requests)
    finally:
        snapshot.discard()


# --- audience paging ------------------------------------------------------------------------------------


def test_audience_paging_follows_bookmarks_to_null(connect: Connect) -> None:
    """23 audiences at 5 per page: 5 requests, every id once, in order; a null bookmark ends the list."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = sandbox((big,))
    harness = connect(emulator, page_size=5)

    pages = list(harness.client.audience_pages(AdAccount(big.id)))

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [a["id"] for page in pages for a in page] == expected_ids(big)
    requests = api_requests(emulator, "/audiences")
    assert len(requests) == 5
    assert all(r.url.params["page_size"] == "5" for r in requests)


def test_empty_page_with_a_bookmark_is_not_the_end(connect: Connect) -> None:
    """Only a null bookmark ends a list; stopping at an empty page would lose audiences."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    harness = connect(sandbox((big,), empty_pages=2), page_size=5)

    pages = list(harness.client.audience_pages(AdAccount(big.id)))

    assert [len(p) for p in pages] == [5, 0, 0, 5, 5, 5, 3]
    assert [a["id"] for page in pages for a in page] == expected_ids(big)


def test_an_absent_bookmark_also_ends_the_list(connect: Connect) -> None:
    """``bookmark`` is optional in the Paginated schema: a last page without it is the end, not an error."""

    class NoBookmarkKey(PinterestSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            response = super().respond(request)
            body = response.json()
            if body.get("bookmark", "") is None:
                del body["bookmark"]
            return httpx.Response(response.status_code, json=body)

    emulator = sandbox((RETAIL,), cls=NoBookmarkKey)
    harness = connect(emulator, page_size=3)

    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert len(api_requests(emulator, "/audiences")) == 3


def test_a_repeated_bookmark_is_a_bad_response(connect: Connect) -> None:
    """A platform that hands back the same bookmark would page forever; stop and say so."""

    class StuckBookmark(PinterestSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={"items": [{"id": "1"}], "bookmark": "c2FtZQ=="})

    emulator = sandbox((RETAIL,), cls=StuckBookmark)
    harness = connect(emulator, credentials={"access_token": ACCESS_TOKEN})

    with pytest.raises(BadResponse, match="repeated a bookmark at page 2"):
        listed(harness.client, RETAIL)

    assert len(emulator.requests) == 2


class FixedBody(PinterestSandbox):
    """Answers every API request (after the auth check) with one fixed JSON body."""

    body: Any = None

    def respond(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return pinterest_error(401, 2, "Authentication failed.")
        return httpx.Response(200, json=self.body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": [], "bookmark": None}, "page 1 has no 'items' list of objects"),
        ({"items": ["2542"], "bookmark": None}, "page 1 has no 'items' list of objects"),
        ({"items": [], "bookmark": 7}, "bookmark of type int"),
        ([{"id": "1"}], "expected a JSON object, got list"),
    ],
)
def test_wrong_shaped_audience_pages_are_bad_responses(connect: Connect, body: Any, message: str) -> None:
    emulator = sandbox((RETAIL,), cls=type("Broken", (FixedBody,), {"body": body}))
    harness = connect(emulator, credentials={"access_token": ACCESS_TOKEN})

    with pytest.raises(BadResponse, match=message):
        listed(harness.client, RETAIL)


@pytest.mark.parametrize("account_id", [1000000001, "../1000000001", "", None])
def test_account_ids_that_are_not_digit_strings_are_bad_responses(connect: Connect, account_id: Any) -> None:
    """An account id goes into a URL path: anything but the documented digits is refused."""
    body = {"items": [{"id": account_id, "name": "x"}], "bookmark": None}
    emulator = sandbox(cls=type("Broken", (FixedBody,), {"body": body}))
    harness = connect(emulator, credentials={"access_token": ACCESS_TOKEN})

    with pytest.raises(BadResponse, match="discovering ad accounts: an account id is not a string of digits"):
        active_accounts(harness.client)


def test_malformed_json_is_a_bad_response_without_retries(connect: Connect) -> None:
    faults = Faults().add(FaultKind.MALFORMED, path_contains="/audiences")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    with pytest.raises(BadResponse, match="not valid JSON"):
        listed(harness.client, RETAIL)

    assert len(api_requests(emulator, "/audiences")) == 1
    assert harness.sleeps == []


# --- OAuth and credentials --------------------------------------------------------------------------------


def test_a_token_that_dies_mid_snapshot_is_refreshed_and_every_audience_is_kept(
    connect: Connect, spool_root: Path
) -> None:
    """Tokens die after 3 calls here; each 401 is refreshed (rotating refresh tokens) and replayed."""
    emulator = sandbox(expire_after_uses=3)
    snapshot = snapshot_of(connect(emulator, page_size=2))
    try:
        assert snapshot.row_count == RETAIL.audiences + TRAVEL.audiences
        ids = [row["id"] for row in snapshot.batches().read_all().to_pylist()]
        assert ids == expected_ids(RETAIL) + expected_ids(TRAVEL)
    finally:
        snapshot.discard()
    forms = token_forms(emulator)
    assert emulator.issuer.issued == len(forms) >= 3
    # Pinterest returns a new refresh token with every refresh; the next refresh must use it.
    assert [f["refresh_token"] for f in forms] == [REFRESH_TOKEN] + [
        f"pina-refresh-{i}" for i in range(1, len(forms))
    ]


def test_the_token_endpoint_gets_http_basic_client_auth(connect: Connect) -> None:
    """Pinterest's /v5/oauth/token wants the app's id and secret as HTTP Basic, not in the form."""
    emulator = sandbox((RETAIL,))
    harness = connect(emulator)

    listed(harness.client, RETAIL)

    (request,) = api_requests(emulator, TOKEN_PATH)
    assert request.method == "POST"
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert dict(parse_qsl(request.content.decode())) == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
    }


def test_secrets_travel_only_in_headers_and_the_token_form(connect: Connect) -> None:
    emulator = sandbox()
    harness = connect(emulator, page_size=3)

    for account in active_accounts(harness.client):
        listed(harness.client, SandboxAccount(account.id, ""))

    api = [r for r in emulator.requests if not r.url.path.endswith(TOKEN_PATH)]
    assert len(api) > 3
    assert all(r.headers["authorization"] == "Bearer pina-access-1" for r in api)
    for request in emulator.requests:
        assert not any(secret in str(request.url) for secret in (*SECRETS, "pina-access-1"))
        assert CLIENT_SECRET not in request.content.decode()


def test_an_access_token_alone_is_enough(connect: Connect) -> None:
    """The other credential set: a fixed bearer token, no token endpoint."""
    emulator = sandbox((RETAIL,))
    harness = connect(emulator, credentials={"access_token": ACCESS_TOKEN})

    assert [a.id for a in active_accounts(harness.client)] == [RETAIL.id]
    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert api_requests(emulator, TOKEN_PATH) == []
    assert all(r.headers["authorization"] == f"Bearer {ACCESS_TOKEN}" for r in emulator.requests)


def test_a_refused_access_token_fails_clearly_and_writes_nothing(connect: Connect, spool_root: Path) -> None:
    """A 401 {code: 2} cannot be retried away: say how to fix it, once, without printing the token."""
    wrong = "pina.wrong-token-5e1d2b"
    emulator = sandbox()
    harness = connect(emulator, credentials={"access_token": wrong})

    with pytest.raises(AuthError) as info:
        snapshot_of(harness)

    message = str(info.value)
    assert "Pinterest error 2: Authentication failed." in message
    assert "authorise the app again" in message
    assert "refresh_token" in message
    assert wrong not in message
    assert len(emulator.requests) == 1
    assert harness.sleeps == []
    assert list(spool_root.iterdir()) == []


def test_a_refused_refresh_token_fails_clearly_and_writes_nothing(connect: Connect, spool_root: Path) -> None:
    stale = "pinr.stale-refresh-77aa"
    emulator = sandbox()
    harness = connect(emulator, credentials={**REFRESH_CREDENTIALS, "refresh_token": stale})

    with pytest.raises(AuthError) as info:
        snapshot_of(harness)

    message = str(info.value)
    assert "HTTP 400" in message
    assert "authorise the app again and update the secrets" in message
    assert stale not in message
    assert CLIENT_SECRET not in message
    assert [r.url.path for r in emulator.requests] == [TOKEN_PATH]
    assert list(spool_root.iterdir()) == []


def test_an_account_the_user_may_not_read_is_refused_naming_the_scope(connect: Connect) -> None:
    """403 {code: 29}: the token works but lacks a role or ads:read for this account (not its credentials)."""
    emulator = sandbox()
    harness = connect(emulator)

    with pytest.raises(AccessRefused) as info:
        listed(harness.client, CLOSED)

    message = str(info.value)
    assert "HTTP 403, Pinterest error 29" in message
    assert "ads:read" in message
    assert "listing audiences of ad account 1000000003" in message
    assert harness.sleeps == []


# --- throttling and transient failures --------------------------------------------------------------------


def test_throttle_waits_what_x_ratelimit_reset_says_then_succeeds(connect: Connect) -> None:
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=2, path_contains="/audiences")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [120.0]
    assert harness.session.throttle_waited_seconds == 120.0
    assert len(api_requests(emulator, "/audiences")) == 2


def test_a_throttle_beyond_the_cap_fails_at_once(connect: Connect) -> None:
    """A 30-minute reset with a 15-minute cap would stall the run: fail now, saying why."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=30, path_contains="/audiences")
    harness = connect(sandbox((RETAIL,), faults=faults), retry=RetrySettings(max_throttle_wait_seconds=900))

    with pytest.raises(ThrottleCapExceeded) as info:
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert "HTTP 429, Pinterest error 8" in message
    assert "1800s" in message
    assert "cap of 900s" in message
    assert harness.sleeps == []


def test_a_reset_sent_as_a_unix_time_is_waited_until(connect: Connect) -> None:
    """Should X-RateLimit-Reset carry a Unix time rather than seconds, wait until then, not for decades."""

    class EpochReset(PinterestSandbox):
        def fault_response(self, request: httpx.Request, fault: Fault) -> httpx.Response:
            reset = str(int(time.time()) + 90)
            return pinterest_error(429, 8, "Rate limit exceeded.", headers={"x-ratelimit-reset": reset})

    faults = Faults().add(FaultKind.THROTTLE, path_contains="/audiences")
    harness = connect(sandbox((RETAIL,), faults=faults, cls=EpochReset))

    listed(harness.client, RETAIL)

    (slept,) = harness.sleeps
    assert 85 <= slept <= 91


def test_throttles_without_a_reset_back_off_further_each_time(connect: Connect) -> None:
    faults = Faults().add(FaultKind.THROTTLE, times=3, wait_minutes=0, path_contains="/audiences")
    harness = connect(sandbox((RETAIL,), faults=faults))

    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0, 2.0]


def test_server_errors_are_retried_with_backoff(connect: Connect) -> None:
    faults = Faults().add(FaultKind.SERVER_ERROR, times=2, path_contains="/ad_accounts")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    assert [a.id for a in active_accounts(harness.client)] == [RETAIL.id]
    assert harness.sleeps == [0.5, 1.0]
    assert len(api_requests(emulator, "/v5/ad_accounts")) == 3


# --- a real HTTP server ----------------------------------------------------------------------------------------


def test_listing_over_a_real_http_server_with_its_token_endpoint(connect: Connect) -> None:
    """The same client over sockets: token endpoint and API on one host, a path-less base_url."""
    emulator = sandbox()
    with serve(emulator) as url:
        harness = connect(base_url=url, token_url=url + TOKEN_PATH, page_size=3)

        accounts = active_accounts(harness.client)
        audiences = {a.id: listed(harness.client, SandboxAccount(a.id, "")) for a in accounts}

    assert [a.id for a in accounts] == [RETAIL.id, TRAVEL.id]
    assert [x["id"] for x in audiences[RETAIL.id]] == expected_ids(RETAIL)
    assert [x["id"] for x in audiences[TRAVEL.id]] == expected_ids(TRAVEL)
    assert emulator.issuer.issued == 1


# --- the default sandbox, snapshots and the v1 view ---------------------------------------------------------


def test_the_default_sandbox_accepts_its_demo_credentials_and_has_every_kind_of_size(
    connect: Connect,
) -> None:
    """The packaged default: unknown sizes and sizes beyond 32 bits, from the demo credentials alone."""
    emulator = PinterestSandbox(today=lambda: TODAY)
    harness = connect(emulator, credentials=DEMO_CREDENTIALS)

    accounts = active_accounts(harness.client)
    sizes = [a["size"] for acct in accounts for a in listed(harness.client, SandboxAccount(acct.id, ""))]

    assert len(accounts) >= 2
    assert None in sizes
    assert any(s is not None and s > 2**31 for s in sizes)
    assert any(s is not None and s < 2**31 for s in sizes)


def test_sizes_change_from_day_to_day() -> None:
    assert audience_size(RETAIL.id, 0, TODAY) != audience_size(RETAIL.id, 0, TODAY + dt.timedelta(days=1))


IDENTITY = SnapshotIdentity(
    snapshot_id="snap-0001",
    snapshot_date=TODAY,
    run_id="run-abc",
    destination="pinterest",
    destination_id="sandbox_pinterest",
)
TABLE = "pinterest_sandbox_pinterest_audiences"


SNAPSHOTS = SnapshotRig(
    pinterest.PLATFORM,
    IDENTITY,
    LOG,
    FETCHED_AT,
    TABLE,
    sync_ids={audience_id_of(RETAIL.id, 1): "90210"},
    chunk_rows=4,
)
snapshot_of = SNAPSHOTS.take
write = SNAPSHOTS.write


def test_the_v1_view_maps_pinterest_sizes_including_nulls_and_values_beyond_32_bits(
    connect: Connect, tmp_path: Path, spool_root: Path
) -> None:
    db = tmp_path / "audit.duckdb"
    write(db, snapshot_of(connect(sandbox(), page_size=3)))

    rows = SNAPSHOTS.view_rows(
        db,
        "ad_account_id, audience_id, audience_name, audience_size, ht_destination, ht_sync_id",
        "audience_id",
    )
    raw_types = SNAPSHOTS.query(
        db, f"SELECT DISTINCT typeof(size) FROM hightouch_audit.{TABLE} WHERE size IS NOT NULL"
    )

    expected = sorted(
        (
            account.id,
            audience_id_of(account.id, i),
            audience_name(account.id, i),
            audience_size(account.id, i, TODAY),
            "pinterest",
            "90210" if (account, i) == (RETAIL, 1) else None,
        )
        for account in (RETAIL, TRAVEL)
        for i in range(account.audiences)
    )
    assert rows == expected
    sizes = [row[3] for row in rows]
    assert sizes.count(None) == 3  # audiences 2 and 6 of Retail, 2 of Travel are still initialising
    assert sum(1 for s in sizes if s is not None and s > 2**31) == 2  # the actalikes
    assert raw_types == [("BIGINT",)]
    assert list(spool_root.iterdir()) == []  # the IO manager removed the spool after appending


def test_an_account_listed_with_a_role_that_cannot_read_audiences_is_left_out_unasked(
    connect: Connect,
) -> None:
    """The account's permissions tell: a billing-only role is left out without a refused call."""
    finance_only = replace(TRAVEL, readable=False)
    emulator = sandbox((RETAIL, finance_only))
    snapshot = SNAPSHOTS.take(connect(emulator))
    try:
        assert snapshot.audiences_by_account == {RETAIL.id: RETAIL.audiences}
        assert list(snapshot.accounts_left_out) == [TRAVEL.id]
        assert "FINANCE_MANAGER" in snapshot.accounts_left_out[TRAVEL.id]
        assert not [r for r in emulator.requests if f"ad_accounts/{TRAVEL.id}/audiences" in r.url.path]
    finally:
        snapshot.discard()


def test_an_account_refused_on_its_first_page_is_left_out(connect: Connect) -> None:
    """Without permissions to go by, the 403 on its audiences leaves the account out; the rest lands."""

    class NoPermissions(PinterestSandbox):
        def _account(self, account: SandboxAccount) -> dict[str, Any]:
            return {k: v for k, v in super()._account(account).items() if k != "permissions"}

    snapshot = SNAPSHOTS.take(connect(sandbox((RETAIL, replace(TRAVEL, readable=False)), cls=NoPermissions)))
    try:
        assert snapshot.audiences_by_account == {RETAIL.id: RETAIL.audiences}
        assert "HTTP 403, Pinterest error 29" in snapshot.accounts_left_out[TRAVEL.id]
    finally:
        snapshot.discard()
