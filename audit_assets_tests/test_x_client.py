"""What only the X Ads client does, end to end through real httpx against the X emulator.

OAuth 1.0a signatures (X's published example, the query signed, a fresh nonce per request), accounts
that are rejected or deleted, cursors that end only at null, and the user-level rate limit of discovery.
What every client does (paging, throttles, retries, refusals, the v1 view) is tested once for every
platform in test_client_contract.py. Only the platform is replaced (by the sandbox emulator) and the clocks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from oauthlib.oauth1.rfc5849.utils import parse_authorization_header

from audit_assets.platforms import x
from audit_assets.platforms.base import AdAccount, AuthError, BadResponse
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount
from audit_assets.sandbox.x import XAdsSandbox
from audit_assets_tests.client_contracts import contract_of
from audit_assets_tests.conftest import RETAIL, TRAVEL
from audit_assets_tests.platform_harness import Connect, PlatformClients, active_accounts, listed, spooled

X = contract_of("x")
KEYS = X.credentials
SECRETS = (KEYS["consumer_secret"], KEYS["access_token_secret"])
sandbox = X.emulator  # RETAIL, TRAVEL and CLOSED on a fixed day and X's fixed clock; ``cls`` for a changed X


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """An X client over real httpx against an emulator, signing with the demo keys."""
    return X.connector(platform_clients)


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
    auth = x.OAuth1Auth(
        KEYS["consumer_key"], KEYS["consumer_secret"], KEYS["access_token"], KEYS["access_token_secret"]
    )
    signed = next(auth.sync_auth_flow(httpx.Request("GET", f"{X.base_url}/12/accounts", params={"count": 5})))
    assert emulator.handle(signed).status_code == 200

    tampered = httpx.Request("GET", f"{X.base_url}/12/accounts", params={"count": 6}, headers=signed.headers)

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


@pytest.mark.parametrize(("count", "requests"), [(4, 3), (3, 2)])
def test_discovery_follows_next_cursor_to_null(connect: Connect, count: int, requests: int) -> None:
    """Two per page: 4 accounts end on an empty page after a full one, 3 on a short page."""
    accounts = tuple(SandboxAccount(f"20000000{i:02d}", f"Account {i}") for i in range(count))
    emulator = sandbox(accounts)
    harness = connect(emulator, page_size=2)

    found = active_accounts(harness.client)

    assert [a.id for a in found] == [a.id for a in accounts]
    assert len(emulator.requests) == requests
    assert all(r.url.params["count"] == "2" for r in emulator.requests)


# --- audience paging --------------------------------------------------------------------------------------


def test_audience_paging_sends_each_next_cursor(connect: Connect) -> None:
    """23 audiences at 5 per page: the first request has no cursor, each later one a new one."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = sandbox((big,))
    harness = connect(emulator, page_size=5)

    list(harness.client.audience_pages(AdAccount(big.id)))

    sent = X.listings(emulator)
    assert "cursor" not in sent[0].url.params
    assert len({r.url.params["cursor"] for r in sent[1:]}) == 4


def test_a_full_last_page_is_followed_to_the_empty_page(connect: Connect) -> None:
    """20 audiences at 5 per page: page four is full, so X still sends a cursor; only null ends it."""
    even = SandboxAccount("3000000002", "Even", audiences=20)
    emulator = sandbox((even,))
    harness = connect(emulator, page_size=5)

    pages = list(harness.client.audience_pages(AdAccount(even.id)))

    assert [len(p) for p in pages] == [5, 5, 5, 5, 0]
    assert [a["id"] for page in pages for a in page] == X.ids(even)


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


@pytest.mark.parametrize(
    ("rewrite", "complaint"),
    [
        (lambda body: {k: v for k, v in body.items() if k != "next_cursor"}, "no 'next_cursor'"),
        (lambda body: body | {"next_cursor": 17}, "not a string"),
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


# --- throttling ------------------------------------------------------------------------------------------------


def test_throttled_discovery_waits_for_the_user_limit(connect: Connect) -> None:
    """GET accounts has no account-level limit: x-rate-limit-reset decides."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=5, path_contains="/12/accounts")
    harness = connect(sandbox(faults=faults))

    assert [a.id for a in active_accounts(harness.client)] == [RETAIL.id, TRAVEL.id]
    assert harness.sleeps == [300.0]


# --- snapshots and refusals -----------------------------------------------------------------------------------


def test_snapshot_rows_hold_the_audience_as_returned(connect: Connect, spool_root: Path) -> None:
    """Typed columns come from the API fields; lists are JSON; ht_raw is the object verbatim."""
    snapshot = X.snapshots().take(connect(sandbox((RETAIL,))))
    try:
        rows = spooled(snapshot).to_pylist()
        assert snapshot.drift_fields == frozenset()
        assert [r["id"] for r in rows] == X.ids(RETAIL)
        for row in rows:
            raw = json.loads(row["ht_raw"])
            assert row["ht_ad_account_id"] == RETAIL.id == row["owner_account_id"]
            assert row["audience_size"] == raw["audience_size"]
            assert json.loads(row["targetable_types"]) == raw["targetable_types"]
            assert row["targetable"] is raw["targetable"]
            assert row["created_at"] == raw["created_at"]
    finally:
        snapshot.discard()


def test_an_app_without_ads_api_access_is_told_so(connect: Connect) -> None:
    class NotAllowlisted(XAdsSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            return self.error(
                request,
                403,
                "UNAUTHORIZED_CLIENT_APPLICATION",
                "The client application making this request does not have access to this API",
            )

    with pytest.raises(AuthError, match="not approved for the Ads API"):
        active_accounts(connect(sandbox(cls=NotAllowlisted)).client)
