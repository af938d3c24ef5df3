"""What only the Pinterest client does, end to end through real httpx against the Pinterest emulator.

Shared accounts and the roles that may not read audiences, bookmarks that may be absent, rotating refresh
tokens, a bare access token and rate-limit resets sent as a Unix time. What every client does (paging,
throttles, retries, OAuth refresh and refusals, the v1 view) is tested once for every platform in
test_client_contract.py. Only the platform is replaced (by the sandbox emulator) and the clock.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from audit_assets.platforms.base import AdAccount, BadResponse
from audit_assets.sandbox.pinterest import TOKEN_PATH, PinterestSandbox
from audit_assets.sandbox.world import Fault, FaultKind, Faults, SandboxAccount
from audit_assets_tests.client_contracts import contract_of
from audit_assets_tests.conftest import CLOSED, RETAIL, TRAVEL
from audit_assets_tests.platform_harness import Connect, PlatformClients, active_accounts, listed

PINTEREST = contract_of("pinterest")
REFRESH_TOKEN = PINTEREST.credentials["refresh_token"]
ACCESS_TOKEN = "pina.test-access-2f8a"  # a long-lived token, the other credential set
SNAPSHOTS = PINTEREST.snapshots(chunk_rows=4)


def sandbox(
    accounts: tuple[SandboxAccount, ...] = (RETAIL, TRAVEL, CLOSED), **options: Any
) -> PinterestSandbox:
    """RETAIL, TRAVEL (shared through Business Access) and CLOSED on a fixed day; ACCESS_TOKEN works too."""
    return PINTEREST.emulator(accounts, access_token=ACCESS_TOKEN, **options)


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A Pinterest client over real httpx against an emulator, refreshing with the demo app."""
    return PINTEREST.connector(platform_clients)


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


def test_an_allow_listed_inactive_account_is_reported_not_found(connect: Connect, spool_root: Path) -> None:
    """An inactive account never reaches the listing; asking for it says so instead of failing later."""
    emulator = sandbox()
    snapshot = SNAPSHOTS.take(connect(emulator), ad_account_ids=frozenset({TRAVEL.id, CLOSED.id}))
    try:
        assert snapshot.audiences_by_account == {TRAVEL.id: TRAVEL.audiences}
        assert snapshot.accounts_not_found == (CLOSED.id,)
        assert not any(CLOSED.id in r.url.path for r in emulator.requests)
    finally:
        snapshot.discard()


# --- audience paging ------------------------------------------------------------------------------------


def test_audience_pages_are_asked_for_with_page_size(connect: Connect) -> None:
    """23 audiences at 5 per page: page_size on every request, a bookmark on every one but the first."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = sandbox((big,))

    list(connect(emulator, page_size=5).client.audience_pages(AdAccount(big.id)))

    requests = api_requests(emulator, "/audiences")
    assert len(requests) == 5
    assert all(r.url.params["page_size"] == "5" for r in requests)
    assert "bookmark" not in requests[0].url.params
    assert all(r.url.params["bookmark"] for r in requests[1:])


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

    assert [a["id"] for a in listed(harness.client, RETAIL)] == PINTEREST.ids(RETAIL)
    assert len(api_requests(emulator, "/audiences")) == 3


class FixedBody(PinterestSandbox):
    """Answers every API request (after the auth check) with one fixed JSON body."""

    body: Any = None

    def respond(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return self.error(request, 401, 2, "Authentication failed.")
        return httpx.Response(200, json=self.body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": [], "bookmark": None}, "page 1 has no 'items' list of objects"),
        ({"items": [], "bookmark": 7}, "bookmark of type int"),
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


# --- OAuth and credentials --------------------------------------------------------------------------------


def test_each_refresh_uses_the_refresh_token_the_last_one_returned(
    connect: Connect, spool_root: Path
) -> None:
    """Pinterest returns a new refresh token with every refresh; the next refresh must use it."""
    emulator = sandbox(expire_after_uses=3)
    snapshot = SNAPSHOTS.take(connect(emulator, page_size=2))
    snapshot.discard()

    forms = token_forms(emulator)
    assert snapshot.row_count == RETAIL.audiences + TRAVEL.audiences
    assert emulator.issuer.issued == len(forms) >= 3
    assert [f["refresh_token"] for f in forms] == [REFRESH_TOKEN] + [
        f"pina-refresh-{i}" for i in range(1, len(forms))
    ]


def test_an_access_token_alone_is_enough(connect: Connect) -> None:
    """The other credential set: a fixed bearer token, no token endpoint."""
    emulator = sandbox((RETAIL,))
    harness = connect(emulator, credentials={"access_token": ACCESS_TOKEN})

    assert [a.id for a in active_accounts(harness.client)] == [RETAIL.id]
    assert [a["id"] for a in listed(harness.client, RETAIL)] == PINTEREST.ids(RETAIL)
    assert api_requests(emulator, TOKEN_PATH) == []
    assert all(r.headers["authorization"] == f"Bearer {ACCESS_TOKEN}" for r in emulator.requests)


# --- throttling ---------------------------------------------------------------------------------------------


def test_a_reset_sent_as_a_unix_time_is_waited_until(connect: Connect) -> None:
    """Should X-RateLimit-Reset carry a Unix time rather than seconds, wait until then, not for decades."""

    class EpochReset(PinterestSandbox):
        def fault_response(self, request: httpx.Request, fault: Fault) -> httpx.Response:
            reset = str(int(time.time()) + 90)
            return self.error(request, 429, 8, "Rate limit exceeded.", headers={"x-ratelimit-reset": reset})

    faults = Faults().add(FaultKind.THROTTLE, path_contains="/audiences")
    harness = connect(sandbox((RETAIL,), faults=faults, cls=EpochReset))

    listed(harness.client, RETAIL)

    (slept,) = harness.sleeps
    assert 85 <= slept <= 91


# --- snapshots ------------------------------------------------------------------------------------------------


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
