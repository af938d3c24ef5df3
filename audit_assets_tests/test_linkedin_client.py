"""What only the LinkedIn client does, end to end through real httpx against the LinkedIn emulator.

Rest.li 2.0 encoding and version headers, start/count paging and its server-side cap, the daily quota
that resets at 00:00 UTC, rotated refresh tokens and a bare access token. What every client does
(paging, throttles, retries, OAuth refresh and refusals, the v1 view) is tested once for every platform
in test_client_contract.py. Only the platform is replaced (by the sandbox emulator) and the clocks.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit_assets.platforms import linkedin
from audit_assets.platforms.base import (
    AccountsNotFound,
    AdAccount,
    BadResponse,
    ThrottleCapExceeded,
)
from audit_assets.sandbox.linkedin import LinkedInMarketingSandbox, segment_id_of
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount
from audit_assets_tests.client_contracts import contract_of
from audit_assets_tests.conftest import CLOSED, RETAIL, TRAVEL
from audit_assets_tests.platform_harness import Connect, PlatformClients, active_accounts, listed, spooled

LINKEDIN = contract_of("linkedin")
sandbox = LINKEDIN.emulator  # RETAIL, TRAVEL and CLOSED with fixed clocks; ``cls`` for a changed LinkedIn
SNAPSHOTS = LINKEDIN.snapshots()


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A LinkedIn client over real httpx against an emulator, refreshing with the demo OAuth client."""
    return LINKEDIN.connector(platform_clients)


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


def test_segments_are_paged_by_start_and_count(connect: Connect) -> None:
    """23 segments at 5 per page: start advances by what each page held, count stays what we asked."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = sandbox((big,))

    list(connect(emulator, page_size=5).client.audience_pages(AdAccount(big.id)))

    requests = api_requests(emulator, "adSegments")
    assert [raw_query(r)["start"] for r in requests] == ["0", "5", "10", "15", "20"]
    assert all(raw_query(r)["count"] == "5" for r in requests)


def test_a_full_last_page_is_followed_by_one_empty_page(connect: Connect) -> None:
    """With exactly 10 segments at 5 per page only an empty (short) page says the list has ended."""
    even = SandboxAccount("3000000002", "Even", audiences=10)
    emulator = sandbox((even,))

    pages = list(connect(emulator, page_size=5).client.audience_pages(AdAccount(even.id)))

    assert [len(p) for p in pages] == [5, 5, 0]
    assert [s["id"] for page in pages for s in page] == LINKEDIN.ids(even)


def test_a_server_side_count_cap_is_not_mistaken_for_the_end(connect: Connect) -> None:
    """Asking for 10 when LinkedIn applies (and echoes) 4: short pages of 4 are not the end."""
    big = SandboxAccount("3000000001", "Big", audiences=11)
    emulator = sandbox((big,), page_cap=4)

    pages = list(connect(emulator, page_size=10).client.audience_pages(AdAccount(big.id)))

    assert [len(p) for p in pages] == [4, 4, 3]
    assert [s["id"] for page in pages for s in page] == LINKEDIN.ids(big)


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

    segments = listed(connect(emulator, base_url=f"{LINKEDIN.base_url}/gateway/li").client, RETAIL)

    assert [s["id"] for s in segments] == LINKEDIN.ids(RETAIL)
    assert all(r.url.path.startswith("/gateway/li/rest/") for r in api_requests(emulator, "adSegments"))


# --- OAuth ---------------------------------------------------------------------------------------------------


def test_a_rotated_refresh_token_is_the_one_used_next(connect: Connect, spool_root: Path) -> None:
    """Should LinkedIn rotate refresh tokens, each refresh must use the newest one, or the next is refused."""
    emulator = sandbox((RETAIL, CLOSED), expire_after_uses=2, rotate_refresh_token=True)
    harness = connect(emulator, page_size=2)

    snapshot = SNAPSHOTS.take(harness)
    try:
        rows = spooled(snapshot).to_pylist()
    finally:
        snapshot.discard()

    assert [r["id"] for r in rows] == LINKEDIN.ids(RETAIL)
    assert emulator.issuer.issued == 3  # 5 calls (discovery, 4 pages), 2 per token: two rotated refreshes
    assert harness.sleeps == []
    assert harness.redact("sbx-linkedin-access-3") == "[redacted]"  # tokens obtained at run time too


def test_a_fixed_access_token_works_without_a_token_endpoint(connect: Connect) -> None:
    """access_token alone is a complete credential set: no refresh request is ever made."""
    emulator = sandbox((TRAVEL,), access_tokens={"long-lived-token-42c1"})

    segments = listed(connect(emulator, credentials={"access_token": "long-lived-token-42c1"}).client, TRAVEL)

    assert [s["id"] for s in segments] == LINKEDIN.ids(TRAVEL)
    assert emulator.issuer.issued == 0


# --- the daily quota -----------------------------------------------------------------------------------------


def test_the_daily_quota_near_midnight_is_waited_out_until_the_reset(connect: Connect) -> None:
    """A DAY-limit 429 two minutes before 00:00 UTC (by LinkedIn's Date header) waits exactly 120 s."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=1, path_contains="adSegments")
    emulator = sandbox((RETAIL,), faults=faults, now=lambda: dt.datetime(2026, 11, 24, 23, 58, tzinfo=dt.UTC))
    harness = connect(emulator)

    segments = listed(harness.client, RETAIL)

    assert [s["id"] for s in segments] == LINKEDIN.ids(RETAIL)
    assert harness.sleeps == [120.0]


def test_the_daily_quota_hours_before_the_reset_fails_at_once(connect: Connect) -> None:
    """At 10:00 UTC the DAY quota resets in 14 h: beyond the cap, so fail now, without sleeping."""
    faults = Faults().add(FaultKind.THROTTLE, wait_minutes=1, path_contains="adSegments")
    harness = connect(
        sandbox((RETAIL,), faults=faults, now=lambda: dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC))
    )

    with pytest.raises(ThrottleCapExceeded) as info:
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert "DAY limit" in message
    assert "00:00 UTC" in message
    assert "50400s" in message
    assert harness.sleeps == []


# --- malformed responses -----------------------------------------------------------------------------------


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
        ("adSegments", lambda b: b.update(paging="0-10"), "'paging' that is not an object"),
        ("adSegments", lambda b: b["paging"].update(count="ten"), "paging.count that is not a count"),
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
        SNAPSHOTS.take(harness)

    assert str(segment_id_of(RETAIL.id, 0)) in str(info.value)
    assert "approximateMemberCount" in str(info.value)
    assert list(spool_root.iterdir()) == []


# --- a discovery that keeps nothing -------------------------------------------------------------------------


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
