"""What only the Snapchat client does, end to end through real httpx against the Snap emulator.

Ad accounts nested in paged organizations, segments wrapped in sub-request envelopes, Snap's limits on
the page size, next_link cursors that never leave our host, and Snap's error envelope. What every client
does (paging, throttles, retries, OAuth refresh and refusals, the v1 view) is tested once for every
platform in test_client_contract.py. Only the platform is replaced (by the sandbox emulator) and the clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit_assets.platforms.base import AdAccount, BadResponse, PlatformError
from audit_assets.sandbox.snapchat import TOKEN_PATH, SnapchatSandbox, segment_id_of
from audit_assets.sandbox.world import SandboxAccount
from audit_assets.sandbox_hosts import sandbox_host
from audit_assets_tests.client_contracts import contract_of
from audit_assets_tests.conftest import CLOSED, RETAIL, TRAVEL
from audit_assets_tests.platform_harness import Connect, PlatformClients, active_accounts, listed, spooled

SNAPCHAT = contract_of("snapchat")
BIG = SandboxAccount("3000000001", "Big", audiences=120)
sandbox = SNAPCHAT.emulator  # RETAIL, TRAVEL and CLOSED on a fixed day; ``cls`` for a changed Snap


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A Snapchat client over real httpx against an emulator; the token URL follows base_url."""
    return SNAPCHAT.connector(platform_clients)


def segment_requests(emulator: SnapchatSandbox) -> list[httpx.Request]:
    return [r for r in emulator.requests if r.url.path.endswith("/segments")]


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


def test_segment_paging_sends_the_limit_and_each_next_links_cursor(connect: Connect) -> None:
    """120 segments at Snap's smallest page (50): the first request has no cursor, each later one its own."""
    emulator = sandbox((BIG,))
    harness = connect(emulator, page_size=50)

    list(harness.client.audience_pages(AdAccount(BIG.id)))

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

    assert [s["id"] for s in listed(harness.client, BIG)] == SNAPCHAT.ids(BIG)
    assert {r.url.params["limit"] for r in segment_requests(emulator)} == {"50"}


def test_paging_stays_on_the_configured_host(connect: Connect) -> None:
    """Only the cursor of next_link is used: a link to another host never receives our token."""

    def elsewhere(request: httpx.Request, body: dict[str, Any]) -> None:
        if "paging" in body:
            body["paging"]["next_link"] = body["paging"]["next_link"].replace(
                request.url.host, "adsapisc.appspot.com"
            )

    emulator = sandbox((BIG,), cls=rewriting(elsewhere))
    harness = connect(emulator, page_size=50)

    assert [s["id"] for s in listed(harness.client, BIG)] == SNAPCHAT.ids(BIG)
    assert {r.url.host for r in emulator.requests} == {sandbox_host("snapchat")}
    assert len(segment_requests(emulator)) == 3


# --- wrong shapes ------------------------------------------------------------------------------------------


def _on(
    path_end: str, mutate: Callable[[dict[str, Any]], None]
) -> Callable[[httpx.Request, dict[str, Any]], None]:
    """Change only the bodies of the requests whose path ends with ``path_end``."""

    def rewrite(request: httpx.Request, body: dict[str, Any]) -> None:
        if request.url.path.endswith(path_end):
            mutate(body)

    return rewrite


def _set_sub_request_error(body: dict[str, Any]) -> None:
    body["segments"][2] = {"sub_request_status": "ERROR", "sub_request_error_reason": "Segment unavailable"}


WRONG_SHAPES: dict[str, tuple[Callable[[httpx.Request, dict[str, Any]], None], str]] = {
    "no segments list": (_on("/segments", lambda b: b.pop("segments")), "no 'segments' list"),
    "failed sub-request": (
        _on("/segments", _set_sub_request_error),
        "sub_request_status 'ERROR' (Segment unavailable)",
    ),
    "wrapper without segment": (
        _on("/segments", lambda b: b["segments"].__setitem__(0, {"sub_request_status": "SUCCESS"})),
        "no 'segment' object",
    ),
    "no request_status": (_on("/segments", lambda b: b.pop("request_status")), "request_status None"),
    "next_link without cursor": (
        _on(
            "/segments",
            lambda b: b.update(paging={"next_link": f"{SNAPCHAT.base_url}/v1/adaccounts/x/segments"}),
        ),
        "next_link without a cursor",
    ),
    "ad_accounts not a list": (
        _on("/me/organizations", lambda b: b["organizations"][0]["organization"].update(ad_accounts="all")),
        "no 'ad_accounts' list",
    ),
    "ad account without id": (
        _on("/me/organizations", lambda b: b["organizations"][0]["organization"]["ad_accounts"][0].pop("id")),
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


# --- snapshots ---------------------------------------------------------------------------------------------------


def test_spooled_rows_hold_the_segment_as_returned(connect: Connect, spool_root: Path) -> None:
    emulator = sandbox()
    rig = SNAPCHAT.snapshots(sync_ids={segment_id_of(RETAIL.id, 1): "90210"}, chunk_rows=4)
    snapshot = rig.take(connect(emulator))
    try:
        rows = spooled(snapshot).to_pylist()
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
