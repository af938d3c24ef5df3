"""The LinkedIn client and snapshotting, end to end through real httpx against the LinkedIn emulator.

Only the platform is replaced (by the sandbox emulator, in-process or as a real HTTP server) and the
clock (a recording ``sleep``); the client, the OAuth refresh, the retry policy and the spooling are
the real code.
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

from audit_assets.platforms import linkedin
from audit_assets.platforms.base import (
    AccessRefused,
    AccountsNotFound,
    AdAccount,
    AuthError,
    BadResponse,
    ThrottleCapExceeded,
)
from audit_assets.sandbox import sandbox_host
from audit_assets.sandbox.linkedin import (
    BIG_SIZE_INDEX,
    BUILDING_INDEX,
    TOKEN_PATH,
    LinkedInMarketingSandbox,
    segment_id_of,
)
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

BASE_URL = "https://" + sandbox_host("linkedin")
TOKEN_URL = BASE_URL + TOKEN_PATH
CLIENT_ID = "test-linkedin-client-1b7e"
CLIENT_SECRET = "test-linkedin-secret-9d2f4a"
REFRESH_TOKEN = "test-linkedin-refresh-5c8e0b"
REFRESH_CREDENTIALS = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}
TODAY = dt.date(2026, 11, 24)
NOW = dt.datetime(2026, 11, 24, 10, 0, 0, tzinfo=dt.UTC)
FETCHED_AT = dt.datetime(2026, 11, 24, 10, 0, 5, tzinfo=dt.UTC)
LOG = logging.getLogger("audit_assets_tests.linkedin_client")


def sandbox(
    accounts: tuple[SandboxAccount, ...] = (RETAIL, TRAVEL, CLOSED),
    *,
    cls: type[LinkedInMarketingSandbox] = LinkedInMarketingSandbox,
    now: dt.datetime = NOW,
    **kwargs: Any,
) -> LinkedInMarketingSandbox:
    """A LinkedIn emulator with fixed clocks and the test's OAuth client."""
    return cls(
        accounts,
        today=lambda: TODAY,
        now=lambda: now,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        **kwargs,
    )


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A LinkedIn client over real httpx: in-process against an emulator, or over the network without one."""
    return platform_clients.binding(
        linkedin.PLATFORM, log=LOG, base_url=BASE_URL, token_url=TOKEN_URL, credentials=REFRESH_CREDENTIALS
    )


def expected_ids(account: SandboxAccount) -> list[int]:
    return ids_in_order(account, segment_id_of)


def api_requests(emulator: LinkedInMarketingSandbox, resource: str) -> list[httpx.Request]:
    return [r for r in emulator.requests if r.url.path.endswith(f"/rest/{resource}")]


def raw_query(request: httpx.Request) -> dict[str, str]:
    return dict(pair.partition("=")[::2] for pair in request.url.query.decode().split("&"))


# --- discovery -------------------------------------------------------------------------------------------


def test_discovery_asks_for_active_accounts_in_restli_syntax(connect: Connect) -> None:
    """The search filter travels in Rest.li 2.0 syntax, unencoded; ids come back as plain digits."""
    emulator = sandbox()

    accounts = active_accounts(connect(emulator).client)

    assert [(a.id, a.name) for a in accounts] == [(RETAIL.id, "Retail"), (TRAVEL.id, "Travel")]
    (request,) = api_requests(emulator, "adAccounts")
    assert raw_query(request)["search"] == "(status:(values:List(ACTIVE)))"
    assert raw_query(request)["q"] == "search"


def test_discovery_skips_inactive_accounts_the_platform_returns_anyway(connect: Connect) -> None:
    """Should LinkedIn ignore the status filter, a CANCELED account must still not be snapshotted."""

    class UnfilteredSearch(LinkedInMarketingSandbox):
        def search_statuses(self, params: dict[str, str]) -> frozenset[str] | None:
            return None

    emulator = sandbox(cls=UnfilteredSearch, access_tokens={"probe-token-3f9c"})

    accounts = active_accounts(connect(emulator).client)

    assert [a.id for a in accounts] == [RETAIL.id, TRAVEL.id]
    (sent,) = api_requests(emulator, "adAccounts")
    probe = httpx.Request(
        "GET", sent.url, headers={**linkedin.API_HEADERS, "authorization": "Bearer probe-token-3f9c"}
    )
    answered = json.loads(emulator.respond(probe).content)
    assert {e["status"] for e in answered["elements"]} == {"ACTIVE", "CANCELED"}  # it really was returned


def test_discovery_follows_page_tokens_to_the_end(connect: Connect) -> None:
    """Five accounts at two per page: three requests, each later one with the previous nextPageToken."""
    accounts = tuple(SandboxAccount(f"20000000{i:02d}", f"Account {i}") for i in range(5))
    emulator = sandbox(accounts)

    found = active_accounts(connect(emulator, page_size=2).client)

    assert [a.id for a in found] == [a.id for a in accounts]
    requests = api_requests(emulator, "adAccounts")
    assert len(requests) == 3
    assert [raw_query(r)["pageSize"] for r in requests] == ["2", "2", "2"]
    assert "pageToken" not in raw_query(requests[0])
    assert all("pageToken" in raw_query(r) for r in requests[1:])


def test_a_repeated_page_token_is_a_bad_response(connect: Connect) -> None:
    """A platform that hands back the same cursor would otherwise be paged forever."""

    class StuckCursor(LinkedInMarketingSandbox):
        """Hands out its first nextPageToken again and again."""

        stuck: str | None = None

        def respond(self, request: httpx.Request) -> httpx.Response:
            response = super().respond(request)
            body = json.loads(response.content)
            if body.get("metadata", {}).get("nextPageToken"):
                self.stuck = self.stuck or body["metadata"]["nextPageToken"]
                body["metadata"]["nextPageToken"] = self.stuck
            return httpx.Response(response.status_code, json=body)

    emulator = sandbox(
        tuple(SandboxAccount(f"20000000{i:02d}", f"Account {i}") for i in range(4)), cls=StuckCursor
    )

    with pytest.raises(BadResponse, match="repeated a pageToken"):
        active_accounts(connect(emulator, page_size=1).client)

    assert len(api_requests(emulator, "adAccounts")) == 2


# --- audience paging ---------------------------------------------------------------------------------------


def test_paging_ends_on_a_page_shorter_than_count(connect: Connect) -> None:
    """23 segments at 5 per page: 5 requests, every id once, in order, with start advancing by 5."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = sandbox((big,))

    pages = list(connect(emulator, page_size=5).client.audience_pages(AdAccount(big.id)))

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [s["id"] for page in pages for s in page] == expected_ids(big)
    requests = api_requests(emulator, "adSegments")
    assert [raw_query(r)["start"] for r in requests] == ["0", "5", "10", "15", "20"]
    assert all(raw_query(r)["count"] == "5" for r in requests)


def test_a_full_last_page_is_followed_by_one_empty_page(connect: Connect) -> None:
    """With exactly 10 segments at 5 per page only an empty (short) page says the list has ended."""
    even = SandboxAccount("3000000002", "Even", audiences=10)
    emulator = sandbox((even,))

    pages = list(connect(emulator, page_size=5).client.audience_pages(AdAccount(even.id)))

    assert [len(p) for p in pages] == [5, 5, 0]
    assert [s["id"] for page in pages for s in page] == expected_ids(even)


def test_a_server_side_count_cap_is_not_mistaken_for_the_end(connect: Connect) -> None:
    """Asking for 10 when LinkedIn applies (and echoes) 4: short pages of 4 are not the end."""
    big = SandboxAccount("3000000001", "Big", audiences=11)
    emulator = sandbox((big,), page_cap=4)

    pages = list(connect(emulator, page_size=10).client.audience_pages(AdAccount(big.id)))

    assert [len(p) for p in pages] == [4, 4, 3]
    assert [s["id"] for page in pages for s in page] == expected_ids(big)


def test_account_urn_is_restli_encoded_and_headers_are_sent(connect: Connect) -> None:
    """The URN inside List() is percent-encoded, the List() itself is not; version headers every time."""
    emulator = sandbox((RETAIL,))

    listed(connect(emulator).client, RETAIL)

    assert emulator.issuer.issued == 1
    (request,) = api_requests(emulator, "adSegments")
    assert raw_query(request)["accounts"] == "List(urn%3Ali%3AsponsoredAccount%3A1000000001)"
    assert raw_query(request)["q"] == "accounts"
    for request in api_requests(emulator, "adSegments") + api_requests(emulator, "adAccounts"):
        assert request.headers["linkedin-version"] == linkedin.LINKEDIN_VERSION
        assert request.headers["x-restli-protocol-version"] == "2.0.0"
        assert request.headers["authorization"] == "Bearer sbx-linkedin-access-1"
        assert "sbx-linkedin-access" not in str(request.url)


class IgnoresStart(LinkedInMarketingSandbox):
    """Serves the first page whatever start says, and claims that is what was asked for."""

    def respond(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/adSegments"):
            return super().respond(request)
        asked = raw_query(request)["start"]
        url = str(request.url).replace(f"start={asked}", "start=0")
        response = super().respond(httpx.Request(request.method, url, headers=request.headers))
        body = json.loads(response.content)
        body["paging"]["start"] = int(asked)
        return httpx.Response(response.status_code, json=body)


class EchoesStartZero(LinkedInMarketingSandbox):
    """Serves the requested page but echoes ``start: 0`` in paging every time."""

    def respond(self, request: httpx.Request) -> httpx.Response:
        response = super().respond(request)
        body = json.loads(response.content)
        if "paging" in body:
            body["paging"]["start"] = 0
        return httpx.Response(response.status_code, json=body)


@pytest.mark.parametrize(
    ("cls", "message"), [(IgnoresStart, "repeats the previous page"), (EchoesStartZero, "starts at 0")]
)
def test_paging_that_does_not_advance_is_a_bad_response(
    connect: Connect, cls: type[LinkedInMarketingSandbox], message: str
) -> None:
    """A platform that keeps serving the same page would be listed forever (or duplicated): stop."""
    harness = connect(sandbox((RETAIL,), cls=cls), page_size=3)

    with pytest.raises(BadResponse, match=message):
        listed(harness.client, RETAIL)


def test_a_base_url_with_a_path_prefix_is_kept(connect: Connect) -> None:
    """A base_url behind a gateway keeps its path prefix in front of /rest/."""
    emulator = sandbox((RETAIL,))

    segments = listed(connect(emulator, base_url=f"{BASE_URL}/gateway/li").client, RETAIL)

    assert [s["id"] for s in segments] == expected_ids(RETAIL)
    assert all(r.url.path.startswith("/gateway/li/rest/") for r in api_requests(emulator, "adSegments"))


# --- the snapshot, the warehouse and the v1 view -------------------------------------------------------------


IDENTITY = SnapshotIdentity("snap-li-1", TODAY, "run-li", "linkedin", "sandbox_linkedin")
TABLE = "linkedin_sandbox_linkedin_audiences"


SNAPSHOTS = SnapshotRig(linkedin.PLATFORM, IDENTITY, LOG, FETCHED_AT, TABLE, chunk_rows=4)
snapshot_of = SNAPSHOTS.take
write = SNAPSHOTS.write


def test_v1_view_shows_ids_names_and_sizes_including_null_and_above_2_31(
    connect: Connect, tmp_path: Path, spool_root: Path
) -> None:
    """approximateMemberCount maps to audience_size as a BIGINT, absent (building) to null."""
    emulator = sandbox()
    db = tmp_path / "audit.duckdb"

    write(db, snapshot_of(connect(emulator, page_size=3)))
    rows = SNAPSHOTS.view_rows(
        db,
        "ad_account_id, audience_id, audience_name, audience_size, ht_destination",
        "ad_account_id, audience_id",
    )

    expected = sorted(
        (account.id, str(s["id"]), s["name"], s.get("approximateMemberCount"), "linkedin")
        for account in (RETAIL, TRAVEL)
        for s in (LinkedInMarketingSandbox.segment(account, i, TODAY) for i in range(account.audiences))
    )
    assert rows == expected
    sizes = {audience_id: size for _, audience_id, _, size, _ in rows}
    for account in (RETAIL, TRAVEL):
        assert sizes[str(segment_id_of(account.id, BUILDING_INDEX))] is None
        assert sizes[str(segment_id_of(account.id, BIG_SIZE_INDEX))] > 2**31
    assert {r[0] for r in rows} == {RETAIL.id, TRAVEL.id}  # no urn:li:sponsoredAccount: prefix
    assert list(spool_root.iterdir()) == []  # the IO manager removed the spool after the append


def test_sizes_change_from_day_to_day(connect: Connect) -> None:
    """The sandbox's sizes drift daily, as real audiences do, so a history has something to show."""
    today = listed(connect(sandbox((RETAIL,))).client, RETAIL)
    tomorrow_emulator = LinkedInMarketingSandbox(
        (RETAIL,),
        today=lambda: TODAY + dt.timedelta(days=1),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
    )
    tomorrow = listed(connect(tomorrow_emulator).client, RETAIL)

    assert [s["id"] for s in today] == [s["id"] for s in tomorrow]
    assert [s.get("approximateMemberCount") for s in today] != [
        s.get("approximateMemberCount") for s in tomorrow
    ]


# --- OAuth ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rotate", [False, True])
def test_a_token_that_dies_mid_snapshot_is_refreshed_and_nothing_is_lost(
    connect: Connect, spool_root: Path, rotate: bool
) -> None:
    """Each token serves two calls, then 401s: the flow refreshes, replays, and every segment lands."""
    emulator = sandbox(expire_after_uses=2, rotate_refresh_token=rotate)
    harness = connect(emulator, page_size=3)

    snapshot = snapshot_of(harness)
    try:
        rows = snapshot.batches().read_all().to_pylist()
    finally:
        snapshot.discard()

    assert snapshot.audiences_by_account == {RETAIL.id: 8, TRAVEL.id: 5}
    assert sorted(r["id"] for r in rows) == sorted(expected_ids(RETAIL) + expected_ids(TRAVEL))
    assert emulator.issuer.issued == 3  # 6 calls, 2 per token: two refreshes after the first token
    assert harness.sleeps == []
    assert harness.redact("sbx-linkedin-access-3") == "[redacted]"  # tokens obtained at run time too


def test_a_refused_refresh_token_fails_clearly_and_writes_nothing(connect: Connect, spool_root: Path) -> None:
    """invalid_grant cannot be retried away: one clear AuthError, no secret in it, no spool left."""
    emulator = sandbox()
    harness = connect(emulator, credentials={**REFRESH_CREDENTIALS, "refresh_token": "stale-refresh-3e1a"})

    with pytest.raises(AuthError) as info:
        snapshot_of(harness)

    message = str(info.value)
    assert "invalid_grant" in message
    assert "authorise the app again" in message
    for secret in (CLIENT_SECRET, "stale-refresh-3e1a", REFRESH_TOKEN):
        assert secret not in message
    assert list(spool_root.iterdir()) == []
    assert api_requests(emulator, "adAccounts") == []


def test_an_invalid_access_token_names_the_fix(connect: Connect, spool_root: Path) -> None:
    """With a bare access token, LinkedIn's 401 INVALID_ACCESS_TOKEN says to refresh or re-authorise."""
    wrong = "wrong-linkedin-token-77ab"
    emulator = sandbox(access_tokens={"the-right-token-0001"})
    harness = connect(emulator, credentials={"access_token": wrong})

    with pytest.raises(AuthError) as info:
        snapshot_of(harness)

    message = str(info.value)
    assert "INVALID_ACCESS_TOKEN" in message
    assert "refresh_token" in message
    assert wrong not in message
    assert len(emulator.requests) == 1
    assert harness.sleeps == []
    assert list(spool_root.iterdir()) == []


def test_a_fixed_access_token_works_without_a_token_endpoint(connect: Connect) -> None:
    """access_token alone is a complete credential set: no refresh request is ever made."""
    emulator = sandbox((TRAVEL,), access_tokens={"long-lived-token-42c1"})

    segments = listed(connect(emulator, credentials={"access_token": "long-lived-token-42c1"}).client, TRAVEL)

    assert [s["id"] for s in segments] == expected_ids(TRAVEL)
    assert emulator.issuer.issued == 0


def test_access_denied_names_the_role_and_scope(connect: Connect) -> None:
    """403 ACCESS_DENIED (no role on the account, or no r_ads) is a refusal that says what to grant."""
    harness = connect(sandbox((RETAIL,)))

    with pytest.raises(AccessRefused) as info:
        list(harness.client.audience_pages(AdAccount("4000000009")))

    message = str(info.value)
    assert "ACCESS_DENIED" in message
    assert "r_ads" in message
    assert "VIEWER" in message
    assert harness.sleeps == []


# --- throttling and transient failures ----------------------------------------------------------------------


def test_a_short_throttle_backs_off_then_succeeds(connect: Connect) -> None:
    """LinkedIn's 429 carries no wait estimate: the shared backoff waits, then the listing completes."""
    faults = Faults().add(FaultKind.THROTTLE, times=2, path_contains="adSegments")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    segments = listed(harness.client, RETAIL)

    assert [s["id"] for s in segments] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0]
    assert len(api_requests(emulator, "adSegments")) == 3


def test_the_daily_quota_near_midnight_is_waited_out_until_the_reset(connect: Connect) -> None:
    """A DAY-limit 429 two minutes before 00:00 UTC (by LinkedIn's Date header) waits exactly 120 s."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=1, path_contains="adSegments")
    emulator = sandbox((RETAIL,), faults=faults, now=dt.datetime(2026, 11, 24, 23, 58, tzinfo=dt.UTC))
    harness = connect(emulator)

    segments = listed(harness.client, RETAIL)

    assert [s["id"] for s in segments] == expected_ids(RETAIL)
    assert harness.sleeps == [120.0]


def test_the_daily_quota_hours_before_the_reset_fails_at_once(connect: Connect) -> None:
    """At 10:00 UTC the DAY quota resets in 14 h: beyond the cap, so fail now, without sleeping."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=1, path_contains="adSegments")
    harness = connect(sandbox((RETAIL,), faults=faults))

    with pytest.raises(ThrottleCapExceeded) as info:
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert "DAY limit" in message
    assert "00:00 UTC" in message
    assert "50400s" in message
    assert harness.sleeps == []


def test_server_errors_are_retried_with_backoff(connect: Connect) -> None:
    faults = Faults().add(FaultKind.SERVER_ERROR, times=2, path_contains="adAccounts")
    harness = connect(sandbox(faults=faults))

    assert [a.id for a in active_accounts(harness.client)] == [RETAIL.id, TRAVEL.id]
    assert harness.sleeps == [0.5, 1.0]


# --- malformed responses -----------------------------------------------------------------------------------


def test_malformed_json_is_a_bad_response_without_retries(connect: Connect) -> None:
    faults = Faults().add(FaultKind.MALFORMED, path_contains="adSegments")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    with pytest.raises(BadResponse, match="not valid JSON"):
        listed(harness.client, RETAIL)

    assert len(api_requests(emulator, "adSegments")) == 1
    assert harness.sleeps == []


def reshaped(resource: str, change: Callable[[dict[str, Any]], None]) -> type[LinkedInMarketingSandbox]:
    """An emulator whose successful answers for one resource are altered by ``change``."""

    class Reshaped(LinkedInMarketingSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            response = super().respond(request)
            if response.status_code != 200 or not request.url.path.endswith(resource):
                return response
            body = json.loads(response.content)
            change(body)
            return httpx.Response(200, json=body)

    return Reshaped


@pytest.mark.parametrize(
    ("resource", "change", "message"),
    [
        ("adAccounts", lambda b: b.pop("elements"), "no 'elements' list"),
        ("adAccounts", lambda b: b["elements"][0].pop("id"), "no numeric 'id'"),
        ("adAccounts", lambda b: b["elements"][0].update(id=True), "no numeric 'id'"),
        (
            "adAccounts",
            lambda b: b.update(metadata={"nextPageToken": 7}),
            "nextPageToken that is not a string",
        ),
        ("adAccounts", lambda b: b.update(metadata=[]), "'metadata' that is not an object"),
        ("adSegments", lambda b: b.update(elements={"0": {}}), "no 'elements' list"),
        ("adSegments", lambda b: b["elements"].append("segment"), "no 'elements' list"),
        ("adSegments", lambda b: b.update(paging="0-10"), "'paging' that is not an object"),
        ("adSegments", lambda b: b["paging"].update(count="ten"), "paging.count that is not a count"),
        ("adSegments", lambda b: b.update(elements=7), "no 'elements' list"),
    ],
)
def test_wrong_shapes_are_bad_responses(
    connect: Connect, resource: str, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    """Whatever LinkedIn sends that its API does not document fails loudly, naming what is wrong."""
    harness = connect(sandbox((RETAIL,), cls=reshaped(resource, change)))

    with pytest.raises(BadResponse, match=message):
        active_accounts(harness.client)
        listed(harness.client, RETAIL)


def test_a_size_of_the_wrong_type_names_the_segment_and_field(connect: Connect, spool_root: Path) -> None:
    def text_size(body: dict[str, Any]) -> None:
        body["elements"][0]["approximateMemberCount"] = "about 300k"

    harness = connect(sandbox((RETAIL,), cls=reshaped("adSegments", text_size)))

    with pytest.raises(BadResponse) as info:
        snapshot_of(harness)

    assert str(segment_id_of(RETAIL.id, 0)) in str(info.value)
    assert "approximateMemberCount" in str(info.value)
    assert list(spool_root.iterdir()) == []


# --- a real HTTP server --------------------------------------------------------------------------------------


def test_snapshot_over_a_real_http_server(connect: Connect) -> None:
    """The same client, OAuth refresh included, over sockets with keep-alive, not just in-process."""
    emulator = sandbox(expire_after_uses=3)
    with serve(emulator) as url:
        client = connect(
            base_url=url,
            token_url=url + TOKEN_PATH,
            page_size=3,
            sleep=lambda _: pytest.fail("nothing should be waited for"),
        ).client
        accounts = active_accounts(client)
        segments = {a.id: listed(client, SandboxAccount(a.id, "")) for a in accounts}

    assert [a.id for a in accounts] == [RETAIL.id, TRAVEL.id]
    assert [s["id"] for s in segments[RETAIL.id]] == expected_ids(RETAIL)
    assert [s["id"] for s in segments[TRAVEL.id]] == expected_ids(TRAVEL)
    assert emulator.issuer.issued >= 2
    first = api_requests(emulator, "adSegments")[0]
    assert raw_query(first)["accounts"] == "List(urn%3Ali%3AsponsoredAccount%3A1000000001)"


def test_a_discovery_that_keeps_no_account_fails_saying_which_filter_removed_them(connect: Connect) -> None:
    """An answer without ``status`` (seen from real LinkedIn tenants) keeps nothing: loud, not empty."""

    class NoStatus(LinkedInMarketingSandbox):
        def _account(self, account: SandboxAccount) -> dict[str, Any]:
            return {k: v for k, v in super()._account(account).items() if k != "status"}

    harness = connect(sandbox(cls=NoStatus))
    with pytest.raises(AccountsNotFound) as refused:
        SNAPSHOTS.take(harness)
    message = str(refused.value)
    assert "see 2 ad account(s), none of them active" in message
    assert f"{RETAIL.id} (no status), {TRAVEL.id} (no status)" in message
