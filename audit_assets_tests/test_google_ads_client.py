"""What only the Google Ads client does, end to end through real httpx against the Google Ads emulator.

Manager hierarchies and login-customer-id, GAQL paging at Google's fixed page size, the developer token,
the daily quota and int64 as JSON strings. What every client does (paging, throttles, retries, OAuth
refresh and refusals, the v1 view) is tested once for every platform in test_client_contract.py.
Only the platform is replaced (by the sandbox emulator) and the clock (a recording ``sleep``).
"""

from __future__ import annotations

import json
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
from audit_assets.sandbox.google_ads import (
    DEFAULT_MANAGER,
    GoogleAdsSandbox,
    expected_size_for_display,
    user_list_id,
)
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount
from audit_assets_tests.client_contracts import TODAY, contract_of
from audit_assets_tests.conftest import CLOSED, RETAIL, TRAVEL
from audit_assets_tests.platform_harness import Connect, PlatformClients, active_accounts, listed

GOOGLE = contract_of("google_ads")
CREDENTIALS = GOOGLE.credentials
MANAGER = DEFAULT_MANAGER.id


def sandbox(
    accounts: tuple[SandboxAccount, ...] = (RETAIL, TRAVEL, CLOSED), **options: Any
) -> GoogleAdsSandbox:
    """A manager over ``accounts`` on a fixed day; by default TRAVEL and CLOSED are also reached directly."""
    return GOOGLE.emulator(accounts, manager=DEFAULT_MANAGER, **options)


def direct(*accounts: SandboxAccount, **options: Any) -> GoogleAdsSandbox:
    """Accounts the user reaches directly, without a manager (each is its own login-customer-id)."""
    return GOOGLE.emulator(accounts, **options)


class Rewriting(GoogleAdsSandbox):
    """Answers like Google, then lets a test change a successful API body (a platform change or bug)."""

    def __init__(self, rewrite: Callable[[httpx.Request, dict[str, Any]], Any], **options: Any) -> None:
        super().__init__((RETAIL, TRAVEL, CLOSED), today=lambda: TODAY, **options)
        self.rewrite = rewrite

    def respond(self, request: httpx.Request) -> httpx.Response:
        response = super().respond(request)
        if response.status_code != 200 or request.url.path.endswith("/token"):
            return response
        return httpx.Response(200, json=self.rewrite(request, json.loads(response.content)))


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A Google Ads client over real httpx against an emulator, with the demo credentials."""
    return GOOGLE.connector(platform_clients)


def searches(emulator: GoogleAdsSandbox, customer_id: str | None = None) -> list[httpx.Request]:
    return [
        r
        for r in emulator.requests
        if r.url.path.endswith("googleAds:search")
        and (customer_id is None or f"/customers/{customer_id}/" in r.url.path)
    ]


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

    assert found == {RETAIL.id: GOOGLE.ids(RETAIL), TRAVEL.id: GOOGLE.ids(TRAVEL)}
    for account in (RETAIL, TRAVEL):
        assert {r.headers["login-customer-id"] for r in searches(emulator, account.id)} == {MANAGER}


def test_without_a_manager_each_account_is_its_own_login(connect: Connect) -> None:
    """Directly accessible accounts: ENABLED ones are kept and listed with their own id as login."""
    emulator = direct(RETAIL, TRAVEL, CLOSED)
    harness = connect(emulator)

    accounts = active_accounts(harness.client)
    for account in accounts:
        assert [a["id"] for page in harness.client.audience_pages(account) for a in page] == GOOGLE.ids(
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


def test_paging_sends_the_same_query_with_each_next_page_token_and_no_page_size(connect: Connect) -> None:
    """Google pages at its own fixed size: the query never changes, only pageToken; pageSize is refused."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = direct(big, page_size=5)
    harness = connect(emulator)

    list(harness.client.audience_pages(AdAccount(big.id)))

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


# --- the developer token ----------------------------------------------------------------------------------


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


# --- throttling ---------------------------------------------------------------------------------------------


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


# --- wrong shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rewrite", "message"),
    [
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


# --- snapshots ---------------------------------------------------------------------------------------------


def test_ht_raw_keeps_int64_sizes_as_the_strings_google_sends(
    connect: Connect, spool_root: Path, tmp_path: Path
) -> None:
    """proto3 JSON sends int64 as a string: the typed column holds the number, ht_raw the string as sent."""
    rig = GOOGLE.snapshots(chunk_rows=4)
    db = tmp_path / "audit.duckdb"
    rig.write(db, rig.take(connect(sandbox(page_size=3))))

    huge = user_list_id(RETAIL.id, 4)  # a "Website visitors" list, beyond 2**31
    rows = rig.query(
        db,
        f"SELECT size_for_display, ht_raw->>'sizeForDisplay' FROM hightouch_audit.{rig.table} WHERE id = ?",
        [int(huge)],
    )

    size = expected_size_for_display(RETAIL.id, 4, TODAY)
    assert size is not None and size > 2**31
    assert rows == [(size, str(size))]
