"""The X Ads client and snapshotting, end to end through real httpx against the X emulator.

Only the platform is replaced (by the sandbox emulator, in-process or as a real HTTP server) and the
clocks (a recording ``sleep``; the emulator's fixed "now"); OAuth 1.0a signing, the client, the retry
policy, the spooling and the DuckDB view are the real code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from oauthlib.oauth1.rfc5849.utils import parse_authorization_header

from audit_assets.platforms import x
from audit_assets.platforms.base import (
    AdAccount,
    AuthError,
    BadResponse,
    PlatformError,
    ThrottleCapExceeded,
)
from audit_assets.platforms.http import RetrySettings
from audit_assets.sandbox import sandbox_host
from audit_assets.sandbox.server import serve
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount
from audit_assets.sandbox.x import (
    DEMO_CREDENTIALS,
    HUGE_INDEX,
    PROCESSING_INDEX,
    XAdsSandbox,
    audience_id_of,
    x_error,
)
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

KEYS = {
    "consumer_key": "test-x-consumer-key-7Qd",
    "consumer_secret": "test-x-consumer-secret-9f2a",
    "access_token": "555-test-x-access-token-3b1c",
    "access_token_secret": "test-x-token-secret-c0de",
}
SECRETS = (KEYS["consumer_secret"], KEYS["access_token_secret"])
BASE_URL = "https://" + sandbox_host("x")
TODAY = dt.date(2026, 3, 14)
NOW = dt.datetime(2026, 3, 14, 6, 0, 5, tzinfo=dt.UTC).timestamp()  # X's clock in the emulator
FETCHED_AT = dt.datetime(2026, 3, 14, 6, 0, 5, tzinfo=dt.UTC)
LOG = logging.getLogger("audit_assets_tests.x_client")
TABLE = "x_sandbox_x_audiences"


def sandbox(
    accounts: tuple[SandboxAccount, ...] = (RETAIL, TRAVEL, CLOSED),
    *,
    faults: Faults | None = None,
    cls: type[XAdsSandbox] = XAdsSandbox,
) -> XAdsSandbox:
    """An X emulator with a fixed day and clock, so sizes and rate-limit resets are fixed in a test."""
    return cls(accounts, faults=faults, credentials=KEYS, today=lambda: TODAY, clock=lambda: NOW)


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """An X client over real httpx: in-process against an emulator, or over the network without one."""
    return platform_clients.binding(x.PLATFORM, log=LOG, base_url=BASE_URL, credentials=KEYS)


def expected_ids(account: SandboxAccount) -> list[str]:
    return ids_in_order(account, audience_id_of)


def audience_requests(emulator: XAdsSandbox) -> list[httpx.Request]:
    return [r for r in emulator.requests if r.url.path.endswith("/custom_audiences")]


def oauth_params(request: httpx.Request) -> dict[str, str]:
    """The Authorization header's oauth_* parameters, percent-decoded (RFC 5849 §3.5.1)."""
    return {k: unquote(v) for k, v in parse_authorization_header(request.headers["authorization"])}


# --- OAuth 1.0a signing ---------------------------------------------------------------------------------


def test_signature_matches_xs_published_example() -> None:
    """X's "Creating a signature" page: its POST, keys, nonce and timestamp give hCtSmYh+iHYCEqBWrE7C7hYmtUk=."""
    auth = x.OAuth1Auth(
        "xvz1evFS4wEEPTGEFPHBog",
        "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
        "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        nonce=lambda: "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
        clock=lambda: 1318622958.7,
    )
    request = httpx.Request(
        "POST",
        "https://api.twitter.com/1.1/statuses/update.json",
        params={"include_entities": "true"},
        data={"status": "Hello Ladies + Gentlemen, a signed OAuth request!"},
    )

    signed = next(auth.sync_auth_flow(request))

    params = oauth_params(signed)
    assert params["oauth_signature"] == "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
    assert params["oauth_timestamp"] == "1318622958"
    assert params["oauth_signature_method"] == "HMAC-SHA1"
    assert params["oauth_token"] == "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb"


def test_signature_covers_the_query() -> None:
    """A signed GET whose query is changed afterwards is refused: count and cursor are signed too."""
    emulator = sandbox()
    auth = x.OAuth1Auth(*KEYS.values())
    signed = next(auth.sync_auth_flow(httpx.Request("GET", f"{BASE_URL}/12/accounts", params={"count": 5})))
    assert emulator.handle(signed).status_code == 200

    tampered = httpx.Request("GET", f"{BASE_URL}/12/accounts", params={"count": 6}, headers=signed.headers)

    response = emulator.handle(tampered)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED_ACCESS"


def test_every_request_is_signed_afresh_and_secrets_never_travel(connect: Connect) -> None:
    """Secrets only feed the signature; each request (retries too) gets its own nonce, as X demands."""
    faults = Faults().add(FaultKind.SERVER_ERROR, path_contains="custom_audiences")
    emulator = sandbox(faults=faults)
    harness = connect(emulator, page_size=3)

    for account in active_accounts(harness.client):
        listed(harness.client, SandboxAccount(account.id, ""))

    assert len(emulator.requests) > 5
    nonces = [oauth_params(r)["oauth_nonce"] for r in emulator.requests]
    assert len(set(nonces)) == len(nonces)
    for request in emulator.requests:
        assert oauth_params(request)["oauth_consumer_key"] == KEYS["consumer_key"]
        for secret in SECRETS:
            assert secret not in str(request.url)
            assert all(secret not in value for value in request.headers.values())


# --- discovery --------------------------------------------------------------------------------------------


def test_discovery_keeps_only_accepted_accounts(connect: Connect) -> None:
    """A REJECTED account is listed by GET accounts but has nothing to snapshot."""
    emulator = sandbox()
    harness = connect(emulator)

    accounts = active_accounts(harness.client)

    assert [(a.id, a.name) for a in accounts] == [(RETAIL.id, "Retail"), (TRAVEL.id, "Travel")]
    assert [r.url.path for r in emulator.requests] == ["/12/accounts"]
    assert emulator.requests[0].url.params["count"] == "1000"


def test_discovery_skips_deleted_accounts(connect: Connect) -> None:
    """An account that is ACCEPTED but deleted (listed with with_deleted) is not active either."""

    class DeletedAccount(XAdsSandbox):
        @staticmethod
        def _account(account: SandboxAccount) -> dict[str, Any]:
            return XAdsSandbox._account(account) | {"deleted": account.id == TRAVEL.id}

    accounts = active_accounts(connect(sandbox(cls=DeletedAccount)).client)

    assert [a.id for a in accounts] == [RETAIL.id]


@pytest.mark.parametrize(("count", "requests"), [(5, 3), (4, 3), (3, 2)])
def test_discovery_follows_next_cursor_to_null(connect: Connect, count: int, requests: int) -> None:
    """Two per page: 5 accounts end on a short page; 4 end on an empty page after a full one."""
    accounts = tuple(SandboxAccount(f"20000000{i:02d}", f"Account {i}") for i in range(count))
    emulator = sandbox(accounts)
    harness = connect(emulator, page_size=2)

    found = active_accounts(harness.client)

    assert [a.id for a in found] == [a.id for a in accounts]
    assert len(emulator.requests) == requests
    assert all(r.url.params["count"] == "2" for r in emulator.requests)


# --- audience paging --------------------------------------------------------------------------------------


def test_audience_paging_collects_every_page_in_order(connect: Connect) -> None:
    """23 audiences at 5 per page: the short fifth page has next_cursor null and ends the list."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = sandbox((big,))
    harness = connect(emulator, page_size=5)

    pages = list(harness.client.audience_pages(AdAccount(big.id)))

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [a["id"] for page in pages for a in page] == expected_ids(big)
    sent = audience_requests(emulator)
    assert "cursor" not in sent[0].url.params
    assert len({r.url.params["cursor"] for r in sent[1:]}) == 4


def test_a_full_last_page_is_followed_to_the_empty_page(connect: Connect) -> None:
    """20 audiences at 5 per page: page four is full, so X still sends a cursor; only null ends it."""
    even = SandboxAccount("3000000002", "Even", audiences=20)
    emulator = sandbox((even,))
    harness = connect(emulator, page_size=5)

    pages = list(harness.client.audience_pages(AdAccount(even.id)))

    assert [len(p) for p in pages] == [5, 5, 5, 5, 0]
    assert [a["id"] for page in pages for a in page] == expected_ids(even)


class Rewriting(XAdsSandbox):
    """Lets a test rewrite X's successful custom-audience bodies, as a changed platform would."""

    rewrite: Callable[[dict[str, Any]], Any] = staticmethod(lambda body: body)

    def respond(self, request: httpx.Request) -> httpx.Response:
        response = super().respond(request)
        if response.status_code != 200 or not request.url.path.endswith("/custom_audiences"):
            return response
        return httpx.Response(200, json=self.rewrite(json.loads(response.content)))


def rewriting(rewrite: Callable[[dict[str, Any]], Any]) -> type[XAdsSandbox]:
    return type("Rewritten", (Rewriting,), {"rewrite": staticmethod(rewrite)})


def first_cursor_forever() -> Callable[[dict[str, Any]], Any]:
    """X answering every page with the first page's cursor: a loop that must not run forever."""
    first: list[str] = []

    def rewrite(body: dict[str, Any]) -> Any:
        if not first:
            first.append(body["next_cursor"])
        return body | {"next_cursor": first[0]}

    return rewrite


@pytest.mark.parametrize(
    ("rewrite", "complaint"),
    [
        (first_cursor_forever(), "repeated a cursor"),
        (lambda body: {k: v for k, v in body.items() if k != "next_cursor"}, "no 'next_cursor'"),
        (lambda body: body | {"next_cursor": 17}, "not a string"),
        (lambda body: body | {"data": {"id": "x"}}, "no 'data' list"),
        (lambda body: body | {"data": ["abc"]}, "no 'data' list"),
        (lambda body: [body], "expected a JSON object"),
    ],
)
def test_wrong_shapes_are_bad_responses(
    connect: Connect, rewrite: Callable[[dict[str, Any]], Any], complaint: str
) -> None:
    """A body that is not what X documents fails, saying what is wrong, instead of looping or guessing."""
    harness = connect(sandbox((RETAIL,), cls=rewriting(rewrite)), page_size=3)

    with pytest.raises(BadResponse, match=complaint):
        listed(harness.client, RETAIL)


def test_account_without_approval_status_is_a_bad_response(connect: Connect) -> None:
    class Bare(XAdsSandbox):
        @staticmethod
        def _account(account: SandboxAccount) -> dict[str, Any]:
            return {"id": account.id, "name": account.name}

    with pytest.raises(BadResponse, match=f"account {RETAIL.id} lacks a string 'approval_status'"):
        active_accounts(connect(sandbox(cls=Bare)).client)


def test_malformed_json_is_a_bad_response_without_retries(connect: Connect) -> None:
    faults = Faults().add(FaultKind.MALFORMED, path_contains="custom_audiences")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    with pytest.raises(BadResponse, match="not valid JSON"):
        listed(harness.client, RETAIL)

    assert len(audience_requests(emulator)) == 1
    assert harness.sleeps == []


# --- throttling and transient failures ----------------------------------------------------------------------


def test_throttle_waits_until_the_account_limit_resets_then_succeeds(connect: Connect) -> None:
    """429 on custom_audiences: the spent account-level limit resets in 120 s (by X's clock); we wait that.

    The user-level limit, not spent, would reset in 60 s: waiting that would only hit the 429 again.
    """
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=2, path_contains="custom_audiences")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    audiences = listed(harness.client, RETAIL)

    assert [a["id"] for a in audiences] == expected_ids(RETAIL)
    assert harness.sleeps == [120.0]
    assert len(audience_requests(emulator)) == 2


def test_throttled_discovery_waits_for_the_user_limit(connect: Connect) -> None:
    """GET accounts has no account-level limit: x-rate-limit-reset decides."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=5, path_contains="/12/accounts")
    harness = connect(sandbox(faults=faults))

    assert [a.id for a in active_accounts(harness.client)] == [RETAIL.id, TRAVEL.id]
    assert harness.sleeps == [300.0]


def test_throttle_beyond_the_cap_fails_at_once(connect: Connect) -> None:
    """An hour until the reset, with a 15-minute cap: fail now, saying why, rather than stall the run."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=60, path_contains="custom_audiences")
    harness = connect(sandbox((RETAIL,), faults=faults), retry=RetrySettings(max_throttle_wait_seconds=900))

    with pytest.raises(ThrottleCapExceeded) as info:
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert "TOO_MANY_REQUESTS" in message
    assert "3600s" in message
    assert "cap of 900s" in message
    assert harness.sleeps == []


def test_throttle_whose_reset_has_passed_backs_off(connect: Connect) -> None:
    """A reset at (or before) X's now gives no useful wait: back off instead of hammering."""
    faults = Faults().add(FaultKind.THROTTLE, times=2, wait_minutes=0, path_contains="custom_audiences")
    harness = connect(sandbox((RETAIL,), faults=faults))

    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0]


def test_server_errors_are_retried_then_fail_with_the_attempt_count(connect: Connect) -> None:
    faults = Faults().add(FaultKind.SERVER_ERROR, times=2, path_contains="custom_audiences")
    harness = connect(sandbox((RETAIL,), faults=faults))
    assert [a["id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0]

    faults = Faults().add(FaultKind.SERVER_ERROR, times=10, path_contains="custom_audiences")
    harness = connect(sandbox((RETAIL,), faults=faults), retry=RetrySettings(max_retries=2))
    with pytest.raises(PlatformError, match="after 3 attempts: HTTP 500, INTERNAL_ERROR"):
        listed(harness.client, RETAIL)


# --- snapshots, the v1 view, and failing clearly -------------------------------------------------------------


IDENTITY = SnapshotIdentity(
    snapshot_id="snap-x-0001",
    snapshot_date=TODAY,
    run_id="run-x",
    destination="x",
    destination_id="sandbox_x",
)


SNAPSHOTS = SnapshotRig(
    x.PLATFORM, IDENTITY, LOG, FETCHED_AT, TABLE, sync_ids={audience_id_of(RETAIL.id, 1): "90210"}
)
snapshot_of = SNAPSHOTS.take
write = SNAPSHOTS.write


def test_v1_view_maps_audience_size_with_nulls_and_sizes_above_int32(
    connect: Connect, spool_root: Path, tmp_path: Path
) -> None:
    """audience_size goes to the view as it is: null stays null, sizes above 2**31 keep every digit."""
    emulator = sandbox()
    as_listed = {
        a["id"]: (account.id, a)
        for account in (RETAIL, TRAVEL)
        for a in listed(connect(emulator).client, account)
    }
    db = tmp_path / "audit.duckdb"
    write(db, snapshot_of(connect(emulator, page_size=3), chunk_rows=4))

    rows = SNAPSHOTS.view_rows(
        db,
        "ad_account_id, audience_id, audience_name, audience_size, ht_destination, ht_sync_id, ht_fetched_at",
        "audience_id",
    )

    assert [r[:4] for r in rows] == [
        (account_id, audience_id, a["name"], a["audience_size"])
        for audience_id, (account_id, a) in sorted(as_listed.items())
    ]
    assert len(rows) == RETAIL.audiences + TRAVEL.audiences
    by_id = {r[1]: r for r in rows}
    for account in (RETAIL, TRAVEL):
        assert by_id[audience_id_of(account.id, PROCESSING_INDEX)][3] is None
        assert by_id[audience_id_of(account.id, HUGE_INDEX)][3] > 2**31
    assert {r[4] for r in rows} == {"x"}
    assert [r[5] for r in rows if r[5]] == ["90210"]
    assert {r[6] for r in rows} == {FETCHED_AT}
    assert list(spool_root.iterdir()) == []  # the IO manager removed the spool after the write


def test_snapshot_rows_hold_the_audience_as_returned(connect: Connect, spool_root: Path) -> None:
    """Typed columns come from the API fields; lists are JSON; ht_raw is the object verbatim."""
    snapshot = snapshot_of(connect(sandbox((RETAIL,))))
    try:
        rows = snapshot.batches().read_all().to_pylist()
        assert snapshot.drift_fields == frozenset()
        assert [r["id"] for r in rows] == expected_ids(RETAIL)
        for row in rows:
            raw = json.loads(row["ht_raw"])
            assert row["ht_ad_account_id"] == RETAIL.id == row["owner_account_id"]
            assert row["audience_size"] == raw["audience_size"]
            assert json.loads(row["targetable_types"]) == raw["targetable_types"]
            assert row["targetable"] is raw["targetable"]
            assert row["created_at"] == raw["created_at"]
    finally:
        snapshot.discard()


def test_sizes_change_from_day_to_day(connect: Connect) -> None:
    emulator = sandbox((RETAIL,))
    day_one = [a["audience_size"] for a in listed(connect(emulator).client, RETAIL)]
    emulator.today = lambda: TODAY + dt.timedelta(days=1)
    day_two = [a["audience_size"] for a in listed(connect(emulator).client, RETAIL)]

    assert [s is None for s in day_one] == [s is None for s in day_two]
    assert day_one != day_two


def test_a_wrong_secret_fails_clearly_and_writes_nothing(connect: Connect, spool_root: Path) -> None:
    """A bad signature is X's 401 UNAUTHORIZED_ACCESS: one request, a message naming the fix, no secret."""
    wrong = KEYS | {"access_token_secret": "wrong-x-token-secret-5e1d"}
    emulator = sandbox()
    harness = connect(emulator, credentials=wrong)

    with pytest.raises(AuthError) as info:
        snapshot_of(harness)

    message = str(info.value)
    assert "UNAUTHORIZED_ACCESS" in message
    assert "access_token_secret" in message
    assert "update the secrets" in message
    for secret in (*wrong.values(), *SECRETS):
        assert secret not in message
    assert len(emulator.requests) == 1
    assert harness.sleeps == []
    assert list(spool_root.iterdir()) == []


def test_an_app_without_ads_api_access_is_told_so(connect: Connect) -> None:
    class NotAllowlisted(XAdsSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            return x_error(
                403,
                "UNAUTHORIZED_CLIENT_APPLICATION",
                "The client application making this request does not have access to this API",
            )

    with pytest.raises(AuthError, match="not approved for the Ads API"):
        active_accounts(connect(sandbox(cls=NotAllowlisted)).client)


def test_the_demo_credentials_open_the_default_sandbox(connect: Connect) -> None:
    """The packaged sandbox destination works with the public demo keys and nothing else configured."""
    harness = connect(XAdsSandbox(), credentials=DEMO_CREDENTIALS)

    accounts = active_accounts(harness.client)

    assert len(accounts) >= 2
    assert all(listed(harness.client, SandboxAccount(a.id, "")) for a in accounts)


# --- a real HTTP server ----------------------------------------------------------------------------------------


def test_snapshot_over_a_real_http_server(connect: Connect, spool_root: Path) -> None:
    """Signatures hold over sockets too: the signed URL is the one the server sees (host, port, query)."""
    emulator = sandbox()
    with serve(emulator) as url:
        snapshot = snapshot_of(connect(base_url=url, page_size=3, sleep=lambda _: None))

    try:
        assert snapshot.audiences_by_account == {RETAIL.id: 8, TRAVEL.id: 5}
        assert all(r.headers["authorization"].startswith("OAuth ") for r in emulator.requests)
    finally:
        snapshot.discard()
