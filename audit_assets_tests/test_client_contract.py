"""The contract every platform client keeps, tested once over every platform's binding (client_contracts).

Only the platform is replaced (its sandbox emulator, in-process or behind a real HTTP server on 127.0.0.1)
and the clock (a recording ``sleep``, no jitter); httpx, the platform's auth, the client, the retry policy,
the spooling, DuckDB and the v1 view SQL are the real code. Each test names one shared behaviour; what a
platform does differently (its paging parameters, hierarchies, quotas, signatures) is in its own file.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from audit_assets.platforms.base import (
    AccessRefused,
    AdAccount,
    AuthError,
    BadResponse,
    ThrottleCapExceeded,
    TransientExhausted,
)
from audit_assets.platforms.http import REDACTED, RetrySettings
from audit_assets.sandbox.server import serve
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount, audience_name
from audit_assets_tests.client_contracts import (
    CONTRACTS,
    FETCHED_AT,
    SYNC_ID,
    TODAY,
    ClientContract,
    Rewritten,
)
from audit_assets_tests.conftest import CLOSED, RETAIL, TRAVEL
from audit_assets_tests.platform_harness import Harness, PlatformClients, active_accounts, listed, spooled

ALL = pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.slug)
REFRESHING = pytest.mark.parametrize("contract", [c for c in CONTRACTS if c.oauth], ids=lambda c: c.slug)
PAGED_DISCOVERY = pytest.mark.parametrize(
    "contract", [c for c in CONTRACTS if c.discovery_paging], ids=lambda c: c.slug
)
EMPTY_PAGES = pytest.mark.parametrize(
    "contract", [c for c in CONTRACTS if c.empty_pages], ids=lambda c: c.slug
)


def big(contract: ClientContract) -> SandboxAccount:
    """An account of four full pages and a short fifth at the binding's page size."""
    return SandboxAccount("3000000001", "Big", audiences=4 * contract.page_size + 3)


def pages(harness: Harness, account: SandboxAccount) -> list[list[dict[str, Any]]]:
    return list(harness.client.audience_pages(AdAccount(account.id)))


def ids(contract: ClientContract, audiences: list[dict[str, Any]]) -> list[Any]:
    return [a[contract.id_field] for a in audiences]


def size(contract: ClientContract, audience: dict[str, Any]) -> int | None:
    """An audience's size as a number (Google sends int64 as a JSON string)."""
    value = audience.get(contract.size_field)
    return None if value is None else int(value)


def secrets_of(contract: ClientContract, *credentials: Mapping[str, str]) -> set[str]:
    """Every credential value a message must not show: the demo ones and any given."""
    return {v for c in (contract.credentials, *credentials) for v in c.values()}


def failing(contract: ClientContract, kind: FaultKind, times: int = 1, minutes: int = 0) -> Any:
    """RETAIL's platform, whose listing fails ``times`` times with ``kind`` before it answers."""
    faults = Faults().add(kind, times=times, wait_minutes=minutes, path_contains=contract.listing_path)
    return contract.emulator((RETAIL,), faults=faults)


# --- discovery ------------------------------------------------------------------------------------------


@ALL
def test_discovery_keeps_the_active_accounts_with_their_names(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """A closed, paused or rejected account has nothing to snapshot; every platform words that its own way."""
    harness = contract.connect(platform_clients, contract.emulator())

    accounts = active_accounts(harness.client)

    assert [(a.id, a.name) for a in accounts] == [(RETAIL.id, "Retail"), (TRAVEL.id, "Travel")]
    assert harness.sleeps == []


@ALL
def test_discovery_rides_out_server_errors(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """A 5xx while finding the accounts is retried like one while listing them."""
    faults = Faults().add(FaultKind.SERVER_ERROR, times=2, path_contains=contract.discovery_path)
    emulator = contract.emulator(faults=faults)
    harness = contract.connect(platform_clients, emulator)

    assert [a.id for a in active_accounts(harness.client)] == [RETAIL.id, TRAVEL.id]
    assert harness.sleeps == [0.5, 1.0]
    assert len([r for r in emulator.requests if contract.discovery_path in r.url.path]) == 3


@PAGED_DISCOVERY
def test_discovery_follows_every_page(platform_clients: PlatformClients, contract: ClientContract) -> None:
    """Five accounts at two per page: three requests, each later one with the cursor the last page gave."""
    assert contract.discovery_paging is not None
    size_param, cursor_param = contract.discovery_paging
    accounts = tuple(SandboxAccount(f"20000000{i:02d}", f"Account {i}") for i in range(5))
    emulator = contract.emulator(accounts)
    harness = contract.connect(platform_clients, emulator, page_size=2)

    found = active_accounts(harness.client)

    assert [a.id for a in found] == [a.id for a in accounts]
    requests = [r for r in emulator.requests if not contract.is_token_request(r)]
    assert [r.url.params[size_param] for r in requests] == ["2", "2", "2"]
    assert cursor_param not in requests[0].url.params
    assert len({r.url.params[cursor_param] for r in requests[1:]}) == 2


# --- paging -----------------------------------------------------------------------------------------------


@ALL
def test_paging_collects_every_audience_once_in_order(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """Four full pages and a short fifth: five requests, none lost or repeated at a page boundary."""
    account = big(contract)
    emulator = contract.emulator((account,))
    harness = contract.connect(platform_clients, emulator, page_size=contract.page_size)

    found = pages(harness, account)

    assert [len(p) for p in found] == [contract.page_size] * 4 + [3]
    assert ids(contract, [a for page in found for a in page]) == contract.ids(account)
    assert len(contract.listings(emulator)) == 5


@EMPTY_PAGES
def test_an_empty_page_that_still_carries_a_cursor_is_not_the_end(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """Only the platform's end signal ends a list; stopping at an empty page would lose audiences."""
    account = big(contract)
    emulator = contract.emulator((account,), empty_pages=2)
    harness = contract.connect(platform_clients, emulator, page_size=contract.page_size)

    found = pages(harness, account)

    full = contract.page_size
    assert [len(p) for p in found] == [full, 0, 0, full, full, full, 3]
    assert ids(contract, [a for page in found for a in page]) == contract.ids(account)


def first_page_again(times: int) -> Callable[[int, httpx.Response], httpx.Response]:
    """Answer pages 2 to ``times + 1`` with page 1 again; then page as before, so a client without a guard ends."""
    first: list[httpx.Response] = []

    def change(n: int, response: httpx.Response) -> httpx.Response:
        if n == 1:
            first.append(response)
        if 2 <= n <= times + 1:
            return httpx.Response(200, headers=first[0].headers, content=first[0].content)
        return response

    return change


@ALL
def test_a_platform_stuck_on_its_first_page_is_a_bad_response_not_an_endless_loop(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """A repeated cursor (or page) would page forever or repeat audiences: fail at page 2, saying so."""
    account = big(contract)
    emulator = Rewritten(contract.emulator((account,)), contract.listing_path, first_page_again(times=3))
    harness = contract.connect(platform_clients, emulator, page_size=contract.page_size)

    with pytest.raises(BadResponse, match=contract.stuck):
        listed(harness.client, account)

    assert len(contract.listings(emulator)) == 2
    assert harness.sleeps == []


def reshaped(contract: ClientContract, shape: str) -> Callable[[int, httpx.Response], httpx.Response]:
    """A listing body in a shape the platform does not document."""

    def change(n: int, response: httpx.Response) -> httpx.Response:
        body = json.loads(response.content)
        *parents, key = contract.items_at
        holder = body
        for parent in parents:
            holder = holder[parent]
        if shape == "array":
            body = [body]
        elif shape == "object":
            holder[key] = {"id": "1"}
        else:
            holder[key][0] = "1"
        return httpx.Response(200, json=body)

    return change


@ALL
@pytest.mark.parametrize("shape", ["array", "object", "item"])
def test_listing_pages_of_the_wrong_shape_are_bad_responses(
    platform_clients: PlatformClients, contract: ClientContract, shape: str
) -> None:
    """What the platform does not document fails loudly, naming the listing and the problem, unguessed."""
    emulator = Rewritten(contract.emulator((RETAIL,)), contract.listing_path, reshaped(contract, shape))
    harness = contract.connect(platform_clients, emulator)
    items = "|".join(re.escape(f"'{key}'") for key in {contract.items_at[-1], ".".join(contract.items_at)})
    complaint = {"array": "expected a JSON object, got list", "object": items, "item": "object"}[shape]

    with pytest.raises(BadResponse, match=complaint) as info:
        listed(harness.client, RETAIL)

    assert f"{contract.listing_call} {RETAIL.id}" in str(info.value)
    assert harness.sleeps == []


# --- throttling -------------------------------------------------------------------------------------------


def throttled(contract: ClientContract, minutes: int) -> Any:
    """RETAIL's platform throttling its listing once, asking ``minutes`` where the platform names a wait.

    A platform that names none gets a bare throttle (LinkedIn's with a wait is its daily quota).
    """
    return failing(contract, FaultKind.THROTTLE, minutes=minutes if contract.throttle_estimate else 0)


@ALL
def test_a_throttle_is_waited_out_then_the_listing_succeeds(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """The platform's own wait when it names one (exactly, not a guess); the shared backoff when it does not."""
    emulator = throttled(contract, minutes=2)
    harness = contract.connect(platform_clients, emulator)

    found = pages(harness, RETAIL)

    wait = 120.0 if contract.throttle_estimate else 0.5  # the two minutes asked, or the first backoff
    assert ids(contract, [a for page in found for a in page]) == contract.ids(RETAIL)
    assert harness.sleeps == [wait]
    assert harness.session.throttle_waited_seconds == wait
    assert len(contract.listings(emulator)) == len(found) + 1


@ALL
def test_a_throttle_beyond_the_cap_fails_at_once_without_waiting(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """A wait past the cap would stall the run: fail now, naming the throttle, the wait and the cap."""
    if contract.throttle_estimate:  # half an hour asked
        retry, asked, cap = RetrySettings(max_throttle_wait_seconds=900), "1800s", "cap of 900s"
    else:  # the first backoff: half of a 120 s base delay
        retry, asked, cap = (
            RetrySettings(base_delay_seconds=120, max_throttle_wait_seconds=30),
            "60s",
            "cap of 30s",
        )
    emulator = throttled(contract, minutes=30)
    harness = contract.connect(platform_clients, emulator, retry=retry)

    with pytest.raises(ThrottleCapExceeded) as info:
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert contract.throttle_signal in message
    assert asked in message
    assert cap in message
    assert not any(secret in message for secret in secrets_of(contract))  # TikTok's names the app id
    assert harness.sleeps == []


@ALL
def test_throttles_without_an_estimate_back_off_further_each_time(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """No estimate (or "0", or a reset already passed) must not mean hammering: the cap ends it eventually."""
    harness = contract.connect(platform_clients, failing(contract, FaultKind.THROTTLE, times=3))

    assert ids(contract, listed(harness.client, RETAIL)) == contract.ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0, 2.0]


# --- transient and malformed answers --------------------------------------------------------------------


@ALL
def test_a_server_error_burst_is_retried_with_exponential_backoff(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """Three 5xx in a row are survivable; each wait doubles (equal jitter at 0: half the ceiling)."""
    emulator = failing(contract, FaultKind.SERVER_ERROR, times=3)
    harness = contract.connect(platform_clients, emulator)

    found = pages(harness, RETAIL)

    assert ids(contract, [a for page in found for a in page]) == contract.ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0, 2.0]
    assert len(contract.listings(emulator)) == len(found) + 3


@ALL
def test_server_errors_beyond_max_retries_fail_with_the_attempt_count(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """A platform that stays down fails the snapshot as transient, saying what was tried and how hard."""
    emulator = failing(contract, FaultKind.SERVER_ERROR, times=10)
    harness = contract.connect(platform_clients, emulator, retry=RetrySettings(max_retries=2))

    with pytest.raises(
        TransientExhausted, match=re.escape(f"after 3 attempts: {contract.server_error}")
    ) as info:
        listed(harness.client, RETAIL)

    assert f"{contract.listing_call} {RETAIL.id}" in str(info.value)
    assert len(contract.listings(emulator)) == 3
    assert harness.sleeps == [0.5, 1.0]


@ALL
def test_a_dropped_connection_is_retried(platform_clients: PlatformClients, contract: ClientContract) -> None:
    emulator = failing(contract, FaultKind.DISCONNECT, times=2)
    harness = contract.connect(platform_clients, emulator)

    found = pages(harness, RETAIL)

    assert ids(contract, [a for page in found for a in page]) == contract.ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0]
    assert len(contract.listings(emulator)) == len(found) + 2


@ALL
def test_malformed_json_is_a_bad_response_without_retries(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """A 200 with a broken body is no transient failure: retrying would only hide a platform change."""
    emulator = failing(contract, FaultKind.MALFORMED)
    harness = contract.connect(platform_clients, emulator)

    with pytest.raises(BadResponse, match="not valid JSON"):
        listed(harness.client, RETAIL)

    assert len(contract.listings(emulator)) == 1
    assert harness.sleeps == []


# --- credentials ------------------------------------------------------------------------------------------


@ALL
def test_a_refused_credential_fails_naming_the_fix_without_echoing_it(
    platform_clients: PlatformClients, contract: ClientContract, spool_root: Path
) -> None:
    """Retrying cannot fix a refused credential: one clear AuthError (after one refresh at most), nothing written."""
    refusal = contract.refusal
    credentials = refusal.credentials or contract.credentials
    emulator = contract.emulator(**refusal.emulator)
    harness = contract.connect(platform_clients, emulator, credentials=credentials)

    with pytest.raises(AuthError) as info:
        contract.snapshots().take(harness)

    message = str(info.value)
    assert all(part in message for part in refusal.says), message
    assert not any(secret in message for secret in secrets_of(contract, credentials))
    if contract.oauth:
        assert contract.oauth.issued not in message
    attempt = [True, False] if "refresh_token" in credentials else [False]  # is it a token request?
    assert [contract.is_token_request(r) for r in emulator.requests] == attempt * refusal.attempts
    assert harness.sleeps == []
    assert list(spool_root.iterdir()) == []


@ALL
def test_an_account_the_credentials_may_not_read_is_refused_naming_what_to_grant(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """Working credentials without a role on one account: a refusal of that account, not of the credentials."""
    harness = contract.connect(platform_clients, contract.emulator((RETAIL, replace(TRAVEL, readable=False))))

    with pytest.raises(AccessRefused) as info:
        listed(harness.client, TRAVEL)

    message = str(info.value)
    assert f"{contract.listing_call} {TRAVEL.id}" in message
    assert all(part in message for part in contract.account_refusal), message
    assert harness.sleeps == []


@REFRESHING
def test_a_token_that_dies_mid_snapshot_is_refreshed_and_nothing_is_lost(
    platform_clients: PlatformClients, contract: ClientContract, spool_root: Path
) -> None:
    """Tokens die after two calls here, mid-listing: each 401 costs one refresh and one replay, no wait.

    One account of five pages, so its calls come one after another and the count below is exact (accounts
    fetched side by side may share one refresh between two 401s).
    """
    assert contract.oauth is not None
    account = big(contract)
    emulator = contract.emulator((account, CLOSED), expire_after_uses=2)
    harness = contract.connect(platform_clients, emulator, page_size=contract.page_size)

    snapshot = contract.snapshots().take(harness)
    try:
        rows = spooled(snapshot).to_pylist()
    finally:
        snapshot.discard()

    assert snapshot.audiences_by_account == {account.id: account.audiences}
    assert [json.loads(r["ht_raw"])[contract.id_field] for r in rows] == contract.ids(account)
    issued = emulator.issuer.issued
    replays = issued - 1
    answered = len([r for r in emulator.requests if not contract.is_token_request(r)]) - replays
    assert issued >= 3
    assert issued == -(-answered // 2), "every token served its two calls, and each death one replay"
    assert harness.sleeps == []
    assert all(harness.redact(f"{contract.oauth.issued}-{n}") == REDACTED for n in range(1, issued + 1))


@REFRESHING
def test_a_refused_refresh_token_fails_clearly_and_writes_nothing(
    platform_clients: PlatformClients, contract: ClientContract, spool_root: Path
) -> None:
    """The refresh grant is refused: no API call is made, and the message says to authorise again."""
    stale = {**contract.credentials, "refresh_token": "stale-refresh-token-0a9b"}
    emulator = contract.emulator()
    harness = contract.connect(platform_clients, emulator, credentials=stale)

    with pytest.raises(AuthError) as info:
        contract.snapshots().take(harness)

    message = str(info.value)
    assert contract.oauth is not None
    assert contract.oauth.refused_refresh in message
    assert "authorise the app again and update the secrets" in message
    assert not any(secret in message for secret in secrets_of(contract, stale))
    assert [r.url.path for r in emulator.requests] == [contract.token_path]
    assert list(spool_root.iterdir()) == []


def check_token_request(contract: ClientContract, request: httpx.Request) -> None:
    """The refresh grant: a POST with the refresh token, the app's id and secret as the platform wants them."""
    assert contract.oauth is not None
    credentials = contract.credentials
    form = dict(parse_qsl(request.content.decode()))
    assert request.method == "POST"
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == credentials["refresh_token"]
    if contract.oauth.client_auth == "basic":
        pair = f"{credentials['client_id']}:{credentials['client_secret']}".encode()
        assert request.headers["authorization"] == f"Basic {base64.b64encode(pair).decode()}"
        assert credentials["client_secret"] not in request.content.decode()
    else:
        assert (form["client_id"], form["client_secret"]) == (
            credentials["client_id"],
            credentials["client_secret"],
        )
    headers = " ".join(request.headers.values())
    assert not any(credentials[name] in headers for name in contract.header_credentials)


@ALL
def test_secrets_travel_only_in_headers_and_the_token_form(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """A secret in a URL ends up in proxy and server logs; API calls carry credentials in headers only."""
    emulator = contract.emulator()
    harness = contract.connect(platform_clients, emulator)

    for account in active_accounts(harness.client):
        listed(harness.client, SandboxAccount(account.id, ""))

    credentials = contract.credentials
    tokens = [r for r in emulator.requests if contract.is_token_request(r)]
    api = [r for r in emulator.requests if not contract.is_token_request(r)]
    assert len(tokens) == (1 if contract.oauth else 0)  # one access token serves the whole run
    assert len(api) >= 3
    for request in tokens:
        check_token_request(contract, request)
    for request in emulator.requests:
        in_query = next(
            (v for k, v in contract.url_credentials.items() if k in request.url.path), frozenset()
        )
        assert not any(v in str(request.url) for k, v in credentials.items() if k not in in_query)
    for request in api:
        headers = " ".join(request.headers.values())
        assert not any(v in request.content.decode() for v in credentials.values())
        assert all(credentials[name] in headers for name in contract.header_credentials)
        assert not any(v in headers for k, v in credentials.items() if k not in contract.header_credentials)
        if contract.oauth:
            assert request.headers["authorization"] == f"Bearer {contract.oauth.issued}-1"


# --- over the network, and the packaged sandbox -----------------------------------------------------------


@ALL
def test_listing_over_a_real_http_server(platform_clients: PlatformClients, contract: ClientContract) -> None:
    """Sockets, keep-alive, a path-less base_url with the token endpoint on it, a dropped connection retried."""
    faults = Faults().add(FaultKind.DISCONNECT, path_contains=contract.listing_path)
    expiry = {"expire_after_uses": 2} if contract.oauth else {}  # refreshes over the socket too
    emulator = contract.emulator(faults=faults, **expiry)
    with serve(emulator) as url:
        harness = contract.connect(platform_clients, None, base_url=url, page_size=3)
        accounts = active_accounts(harness.client)
        found = {a.id: ids(contract, listed(harness.client, SandboxAccount(a.id, ""))) for a in accounts}

    assert found == {RETAIL.id: contract.ids(RETAIL), TRAVEL.id: contract.ids(TRAVEL)}
    assert harness.sleeps == [0.5]
    if contract.oauth:
        assert emulator.issuer.issued >= 2


@ALL
def test_the_packaged_sandbox_opens_with_its_demo_credentials(
    platform_clients: PlatformClients, contract: ClientContract
) -> None:
    """The default destination works with the public demo credentials and serves every kind of size."""
    harness = contract.connect(platform_clients, contract.sandbox.EMULATOR())

    accounts = active_accounts(harness.client)
    listings = [listed(harness.client, SandboxAccount(a.id, "")) for a in accounts]

    assert len(accounts) >= 2
    assert all(listings)
    sizes = [size(contract, a) for audiences in listings for a in audiences]
    assert any(s is not None and 0 < s < 2**31 for s in sizes)
    if contract.huge_sizes:
        assert None in sizes
        assert any(s is not None and s > 2**31 for s in sizes)


# --- snapshots, the warehouse and the v1 view ---------------------------------------------------------------


@ALL
def test_the_v1_view_maps_ids_names_and_sizes(
    platform_clients: PlatformClients, contract: ClientContract, spool_root: Path, tmp_path: Path
) -> None:
    """Every audience once, its size a BIGINT: null where the platform has none, every digit beyond 2**31."""
    sync = {str(contract.id_of(RETAIL.id, 1)): SYNC_ID}
    rig = contract.snapshots(sync_ids=sync, chunk_rows=8)  # 13 rows: two row groups, as large snapshots have
    snapshot = rig.take(contract.connect(platform_clients, contract.emulator(), page_size=contract.page_size))
    assert snapshot.audiences_by_account == {RETAIL.id: RETAIL.audiences, TRAVEL.id: TRAVEL.audiences}
    assert snapshot.accounts_not_found == ()
    assert snapshot.drift_fields == frozenset()
    db = tmp_path / "audit.duckdb"

    rig.write(db, snapshot)

    rows = rig.view_rows(
        db,
        "ad_account_id, audience_id, audience_name, audience_size, ht_destination, ht_sync_id, ht_fetched_at",
        "audience_id",
    )
    expected = sorted(
        (
            account.id,
            str(contract.id_of(account.id, i)),
            audience_name(account.id, i),
            contract.size_of(account, i, TODAY),
            contract.slug,
            sync.get(str(contract.id_of(account.id, i))),
            FETCHED_AT,
        )
        for account in (RETAIL, TRAVEL)
        for i in range(account.audiences)
    )
    assert rows == expected
    sizes = [r[3] for r in rows]
    assert None in sizes
    assert any(s is not None and s > 2**31 for s in sizes) == contract.huge_sizes
    column = contract.platform.v1.audience_size
    (types,) = rig.query(
        db,
        "SELECT (SELECT data_type FROM information_schema.columns WHERE table_name = "
        "'external_audiences_metadata_v1' AND column_name = 'audience_size'), "
        f"(SELECT list(DISTINCT typeof({column})) FROM hightouch_audit.{rig.table} WHERE {column} IS NOT NULL)",
    )
    assert types == ("BIGINT", ["BIGINT"])  # the view, and the table itself, keep 64 bits
    assert list(spool_root.iterdir()) == []  # the warehouse removed the spool after appending


@ALL
def test_sizes_change_from_day_to_day(platform_clients: PlatformClients, contract: ClientContract) -> None:
    """The sandbox's sizes drift daily, as real audiences do, so a history has something to show."""
    today = listed(contract.connect(platform_clients, contract.emulator((RETAIL,))).client, RETAIL)
    tomorrow_emulator = contract.emulator((RETAIL,), today=lambda: TODAY + dt.timedelta(days=1))
    tomorrow = listed(contract.connect(platform_clients, tomorrow_emulator).client, RETAIL)

    assert ids(contract, today) == ids(contract, tomorrow)
    day_one = [a.get(contract.size_field) for a in today]
    day_two = [a.get(contract.size_field) for a in tomorrow]
    assert [s is None for s in day_one] == [s is None for s in day_two]
    assert day_one != day_two


def malformed_from(page: int) -> Callable[[int, httpx.Response], httpx.Response]:
    def change(n: int, response: httpx.Response) -> httpx.Response:
        return response if n < page else httpx.Response(200, content=b'{"data": [{"id": "12')

    return change


@ALL
def test_the_spool_is_removed_when_the_platform_fails_mid_snapshot(
    platform_clients: PlatformClients, contract: ClientContract, spool_root: Path
) -> None:
    """Rows of the first page are already on disk when the second fails; a failed snapshot leaves nothing."""
    emulator = Rewritten(contract.emulator(), contract.listing_path, malformed_from(page=2))
    harness = contract.connect(platform_clients, emulator, page_size=contract.page_size)

    with pytest.raises(BadResponse, match="not valid JSON"):
        contract.snapshots(chunk_rows=1).take(harness)

    assert list(spool_root.iterdir()) == []
