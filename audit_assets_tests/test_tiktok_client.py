"""What only the TikTok client does, end to end through real httpx against the TikTok emulator.

Advertiser discovery in batches, the app secret in discovery's query, page-number paging checked against
its totals, errors inside HTTP 200, and tokens that are revoked rather than refreshed. What every client
does (paging, throttles, retries, refusals, the v1 view) is tested once for every platform in
test_client_contract.py. Only the platform is replaced (by the sandbox emulator) and the clock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit_assets.platforms.base import AdAccount, AuthError, BadResponse, PlatformError
from audit_assets.platforms.http import RetrySettings
from audit_assets.sandbox.tiktok import TikTokBusinessSandbox, sandbox_audience
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount
from audit_assets_tests.client_contracts import TODAY, contract_of
from audit_assets_tests.conftest import CLOSED, RETAIL, TRAVEL
from audit_assets_tests.platform_harness import Connect, PlatformClients, active_accounts, listed

TIKTOK = contract_of("tiktok")
CREDENTIALS = TIKTOK.credentials
TOKEN, APP_ID, SECRET = CREDENTIALS["access_token"], CREDENTIALS["app_id"], CREDENTIALS["secret"]
sandbox = TIKTOK.emulator  # RETAIL, TRAVEL and CLOSED on a fixed day; ``cls`` for a changed TikTok


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A TikTok client over real httpx against an emulator, with the demo token and app."""
    return TIKTOK.connector(platform_clients)


def paths(emulator: TikTokBusinessSandbox, endswith: str) -> list[httpx.Request]:
    return [r for r in emulator.requests if r.url.path.endswith(endswith)]


def assert_no_secret(text: str) -> None:
    for value in (TOKEN, SECRET, APP_ID):
        assert value not in text


# --- discovery ------------------------------------------------------------------------------------------


def test_discovery_keeps_only_enabled_advertisers(connect: Connect) -> None:
    """advertiser/get lists every authorised advertiser; only STATUS_ENABLE in advertiser/info is active."""
    emulator = sandbox()

    accounts = active_accounts(connect(emulator).client)

    assert [(a.id, a.name) for a in accounts] == [(RETAIL.id, "Retail"), (TRAVEL.id, "Travel")]
    (info,) = paths(emulator, "/advertiser/info/")
    assert json.loads(info.url.params["advertiser_ids"]) == [RETAIL.id, TRAVEL.id, CLOSED.id]
    assert set(json.loads(info.url.params["fields"])) == {"advertiser_id", "name", "status"}


def test_discovery_reads_statuses_in_batches_of_100(connect: Connect) -> None:
    """advertiser/info takes at most 100 ids; 150 authorised advertisers need two calls, none lost."""
    accounts = tuple(
        SandboxAccount(f"20000{i:05d}", f"Advertiser {i}", active=i % 10 != 0, audiences=0)
        for i in range(150)
    )
    emulator = sandbox(accounts)

    found = active_accounts(connect(emulator).client)

    assert [a.id for a in found] == [a.id for a in accounts if a.active]
    batches = [json.loads(r.url.params["advertiser_ids"]) for r in paths(emulator, "/advertiser/info/")]
    assert [len(b) for b in batches] == [100, 50]


def test_advertiser_missing_from_info_is_not_active(connect: Connect) -> None:
    """An advertiser advertiser/info does not describe (deleted meanwhile) cannot be confirmed active."""

    class Forgetful(TikTokBusinessSandbox):
        def _advertiser_info(self, request: httpx.Request) -> httpx.Response:
            response = super()._advertiser_info(request)
            body = json.loads(response.content)
            body["data"]["list"] = [a for a in body["data"]["list"] if a["advertiser_id"] != TRAVEL.id]
            return httpx.Response(200, json=body)

    found = active_accounts(connect(sandbox(cls=Forgetful)).client)

    assert [(a.id, a.name) for a in found] == [(RETAIL.id, "Retail")]


def test_the_secret_goes_in_discoverys_query_and_the_token_in_its_own_header(connect: Connect) -> None:
    """TikTok wants app_id and secret in advertiser/get's query, and the token in Access-Token, not Authorization."""
    emulator = sandbox()
    harness = connect(emulator, page_size=3)

    for account in active_accounts(harness.client):
        listed(harness.client, SandboxAccount(account.id, ""))

    assert len(emulator.requests) == 2 + 3 + 2
    (discovery,) = paths(emulator, "/oauth2/advertiser/get/")
    assert (discovery.url.params["app_id"], discovery.url.params["secret"]) == (APP_ID, SECRET)
    for request in emulator.requests:
        assert request.headers["access-token"] == TOKEN
        assert "authorization" not in request.headers


def test_a_path_prefix_in_base_url_is_kept(connect: Connect) -> None:
    """base_url may carry a gateway path prefix; every API path goes below it."""
    emulator = sandbox((RETAIL,))
    harness = connect(emulator, base_url=TIKTOK.base_url + "/gateway")

    assert [a.id for a in active_accounts(harness.client)] == [RETAIL.id]
    assert [a["audience_id"] for a in listed(harness.client, RETAIL)] == TIKTOK.ids(RETAIL)
    assert all(r.url.path.startswith("/gateway/open_api/v1.3/") for r in emulator.requests)


# --- audience paging ------------------------------------------------------------------------------------


def test_paging_asks_for_page_numbers_up_to_total_page(connect: Connect) -> None:
    """23 audiences at 5 per page: pages 1..5 of the one advertiser, no request past total_page."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = sandbox((big,))

    pages = list(connect(emulator, page_size=5).client.audience_pages(AdAccount(big.id)))

    assert pages[0][0] == sandbox_audience(big.id, 0, TODAY)  # the audience whole, as TikTok sent it
    requests = paths(emulator, "/dmp/custom_audience/list/")
    assert [r.url.params["page"] for r in requests] == ["1", "2", "3", "4", "5"]
    assert {r.url.params["page_size"] for r in requests} == {"5"}
    assert {r.url.params["advertiser_id"] for r in requests} == {big.id}


def test_exact_multiple_of_the_page_size_needs_no_extra_request(connect: Connect) -> None:
    """10 audiences at 5 per page: total_page is 2, so a third (empty) page is never asked for."""
    even = SandboxAccount("3000000002", "Even", audiences=10)
    emulator = sandbox((even,))

    pages = list(connect(emulator, page_size=5).client.audience_pages(AdAccount(even.id)))

    assert [len(p) for p in pages] == [5, 5]
    assert len(paths(emulator, "/dmp/custom_audience/list/")) == 2


def test_advertiser_without_audiences_is_one_empty_page(connect: Connect) -> None:
    """total_page 0 ends the listing after the first request."""
    empty = SandboxAccount("3000000003", "Empty", audiences=0)
    emulator = sandbox((empty,))

    assert list(connect(emulator).client.audience_pages(AdAccount(empty.id))) == [[]]
    assert len(paths(emulator, "/dmp/custom_audience/list/")) == 1


class RewritePages(TikTokBusinessSandbox):
    """Applies ``rewrite`` to each audience page's JSON body: a platform that pages wrongly."""

    rewrite: Callable[[dict[str, Any]], None] = staticmethod(lambda body: None)

    def _audience_page(self, request: httpx.Request) -> httpx.Response:
        response = super()._audience_page(request)
        body = json.loads(response.content)
        if body.get("code") == 0:
            type(self).rewrite(body)
        return httpx.Response(200, json=body)


def _set_page_info(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: body["data"]["page_info"].update(values)


def _always_page_one(body: dict[str, Any]) -> None:
    body["data"]["list"] = [sandbox_audience("3000000001", i, TODAY) for i in range(5)]


@pytest.mark.parametrize(
    ("rewrite", "message"),
    [
        pytest.param(
            _set_page_info(total_page=2), "inconsistent totals", id="too-few-pages-would-lose-audiences"
        ),
        pytest.param(_set_page_info(total_page=9), "inconsistent totals", id="more-pages-than-audiences"),
        pytest.param(_always_page_one, "repeated the previous page", id="same-content-every-page"),
        pytest.param(
            _set_page_info(total_page=0, total_number=0), "beyond total_page", id="zero-pages-with-items"
        ),
        pytest.param(_set_page_info(total_page="5"), "page_info.total_page", id="total-page-not-an-integer"),
        pytest.param(lambda body: body["data"].pop("page_info"), "'data.page_info'", id="no-page-info"),
        pytest.param(lambda body: body.update(data=None), "'data'", id="no-data"),
        pytest.param(lambda body: body.pop("code"), "numeric 'code' 0", id="no-code"),
    ],
)
def test_wrong_paging_or_shapes_are_bad_responses(
    connect: Connect, rewrite: Callable[[dict[str, Any]], None], message: str
) -> None:
    """A platform that pages inconsistently would repeat or lose audiences: fail, saying what is wrong."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    cls = type("Rewritten", (RewritePages,), {"rewrite": staticmethod(rewrite)})
    harness = connect(sandbox((big,), cls=cls), page_size=5)

    with pytest.raises(BadResponse, match=message):
        listed(harness.client, big)

    assert harness.sleeps == []


def test_discovery_without_a_list_is_a_bad_response(connect: Connect) -> None:
    class NoList(TikTokBusinessSandbox):
        def _advertisers(self, request: httpx.Request) -> httpx.Response:
            return self._ok(request, {"advertisers": []})

    with pytest.raises(BadResponse, match=r"discovering the advertisers.*data\.list"):
        active_accounts(connect(sandbox(cls=NoList)).client)


# --- errors ----------------------------------------------------------------------------------------------------


def test_system_error_in_http_200_is_retried(connect: Connect) -> None:
    """TikTok also reports 50000 "System error" inside HTTP 200; that is transient too."""

    class Flaky(TikTokBusinessSandbox):
        failures = 1

        def _audience_page(self, request: httpx.Request) -> httpx.Response:
            if self.failures:
                self.failures -= 1
                return self.error(request, 200, 50000, "System error.")
            return super()._audience_page(request)

    harness = connect(sandbox((RETAIL,), cls=Flaky))

    assert [a["audience_id"] for a in listed(harness.client, RETAIL)] == TIKTOK.ids(RETAIL)
    assert harness.sleeps == [0.5]


def test_other_error_codes_fail_with_code_message_and_request_id(connect: Connect) -> None:
    """A parameter error (40002) cannot be retried away: fail once with what TikTok said."""
    emulator = sandbox((RETAIL,))
    harness = connect(emulator, page_size=101)  # beyond TikTok's maximum of 100

    with pytest.raises(PlatformError) as info:
        listed(harness.client, RETAIL)

    assert type(info.value) is PlatformError
    message = str(info.value)
    assert "listing custom audiences of advertiser 1000000001 (page 1)" in message
    assert "TikTok code 40002" in message
    assert "page_size" in message
    assert "request_id 2026" in message
    assert len(emulator.requests) == 1
    assert harness.sleeps == []


def test_transport_failures_in_discovery_never_show_the_secret(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """The secret is in advertiser/get's URL; retries and failures are logged and raised without it."""
    faults = Faults().add(FaultKind.DISCONNECT, times=5, path_contains="oauth2")
    harness = connect(sandbox(faults=faults), retry=RetrySettings(max_retries=2))

    with caplog.at_level(logging.DEBUG), pytest.raises(PlatformError) as info:
        active_accounts(harness.client)

    assert "discovering the advertisers that authorised the app after 3 attempts" in str(info.value)
    assert len(caplog.records) >= 2
    assert_no_secret(str(info.value))
    assert_no_secret(caplog.text)


# --- authentication ---------------------------------------------------------------------------------------------


def test_wrong_app_secret_is_an_auth_error_without_the_secret(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """40101 (secret and app_id do not match) names the fix; the secret it was sent is nowhere."""
    wrong_secret = "wrong-secret-0a9b8c7d"
    harness = connect(sandbox(), credentials={**CREDENTIALS, "secret": wrong_secret})

    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as info:
        active_accounts(harness.client)

    message = str(info.value)
    assert "TikTok code 40101" in message
    assert "check app_id and secret" in message
    assert wrong_secret not in message
    assert wrong_secret not in caplog.text


# --- a token revoked mid-snapshot -------------------------------------------------------------------------


def test_token_revoked_mid_snapshot_fails_with_nothing_written(connect: Connect, spool_root: Path) -> None:
    """TikTok tokens do not refresh: a revoked one fails the snapshot clearly, and its spool is removed."""
    # Discovery (2) and Retail's first pages (2), then 40105; Retail alone, so its calls are in order.
    emulator = sandbox((RETAIL, CLOSED), revoke_after_uses=4)
    harness = connect(emulator, page_size=3)

    with pytest.raises(AuthError) as info:
        TIKTOK.snapshots().take(
            harness, chunk_rows=1
        )  # rows of the first pages are already flushed to Parquet

    assert "re-authorise" in str(info.value)
    assert_no_secret(str(info.value))
    assert list(spool_root.iterdir()) == []
    assert len(emulator.requests) == 5
