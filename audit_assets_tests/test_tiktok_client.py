"""The TikTok client and snapshotting, end to end through real httpx against the TikTok emulator.

Only the platform is replaced (by the sandbox emulator, in-process or as a real HTTP server) and the
clock (a recording ``sleep``); the client, the retry policy, the spooling and DuckDB are the real code.
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

from audit_assets.platforms import tiktok
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
from audit_assets.sandbox.tiktok import (
    TikTokBusinessSandbox,
    audience_id_of,
    sandbox_audience,
)
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

TOKEN = "test-tiktok-token-4b8e1f"
APP_ID = "7311122233344455566"
SECRET = "test-tiktok-app-secret-9c2d7a"
CREDENTIALS = {"access_token": TOKEN, "app_id": APP_ID, "secret": SECRET}
BASE_URL = "https://" + sandbox_host("tiktok")
TODAY = dt.date(2026, 3, 14)
FETCHED_AT = dt.datetime(2026, 3, 14, 6, 0, 5, tzinfo=dt.UTC)
LOG = logging.getLogger("audit_assets_tests.tiktok_client")


def sandbox(
    accounts: tuple[SandboxAccount, ...] = (RETAIL, TRAVEL, CLOSED),
    *,
    faults: Faults | None = None,
    revoke_after_uses: int | None = None,
    cls: type[TikTokBusinessSandbox] = TikTokBusinessSandbox,
) -> TikTokBusinessSandbox:
    """A TikTok emulator with a fixed day, so sizes are the same within a test."""
    return cls(
        accounts,
        faults=faults,
        access_token=TOKEN,
        app_id=APP_ID,
        secret=SECRET,
        today=lambda: TODAY,
        revoke_after_uses=revoke_after_uses,
    )


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A TikTok client over real httpx: in-process against an emulator, or over the network without one."""
    return platform_clients.binding(tiktok.PLATFORM, log=LOG, base_url=BASE_URL, credentials=CREDENTIALS)


def expected_ids(account: SandboxAccount) -> list[str]:
    return ids_in_order(account, audience_id_of)


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


def test_secret_travels_only_to_discovery_and_token_only_in_its_header(connect: Connect) -> None:
    """The app secret is allowed only in advertiser/get's query; the token only in Access-Token."""
    emulator = sandbox()
    harness = connect(emulator, page_size=3)

    for account in active_accounts(harness.client):
        listed(harness.client, SandboxAccount(account.id, ""))

    assert len(emulator.requests) == 2 + 3 + 2
    for request in emulator.requests:
        assert request.headers["access-token"] == TOKEN
        assert "authorization" not in request.headers
        assert TOKEN not in str(request.url)
        if request.url.path.endswith("/oauth2/advertiser/get/"):
            assert request.url.params["secret"] == SECRET
            assert request.url.params["app_id"] == APP_ID
        else:
            assert SECRET not in str(request.url)


def test_a_path_prefix_in_base_url_is_kept(connect: Connect) -> None:
    """base_url may carry a gateway path prefix; every API path goes below it."""
    emulator = sandbox((RETAIL,))
    harness = connect(emulator, base_url=BASE_URL + "/gateway")

    assert [a.id for a in active_accounts(harness.client)] == [RETAIL.id]
    assert [a["audience_id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert all(r.url.path.startswith("/gateway/open_api/v1.3/") for r in emulator.requests)


# --- audience paging ------------------------------------------------------------------------------------


def test_paging_follows_page_numbers_to_total_page(connect: Connect) -> None:
    """23 audiences at 5 per page: pages 1..5, every id once and in order, no request past total_page."""
    big = SandboxAccount("3000000001", "Big", audiences=23)
    emulator = sandbox((big,))

    pages = list(connect(emulator, page_size=5).client.audience_pages(AdAccount(big.id)))

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [a["audience_id"] for page in pages for a in page] == expected_ids(big)
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
        pytest.param(_set_page_info(page=1), "answered page 1 instead", id="page-parameter-ignored"),
        pytest.param(_always_page_one, "repeated the previous page", id="same-content-every-page"),
        pytest.param(
            _set_page_info(total_page=0, total_number=0), "beyond total_page", id="zero-pages-with-items"
        ),
        pytest.param(_set_page_info(total_page="5"), "page_info.total_page", id="total-page-not-an-integer"),
        pytest.param(lambda body: body["data"].pop("page_info"), "'data.page_info'", id="no-page-info"),
        pytest.param(
            lambda body: body["data"].update(list={"a": 1}), "not a list of objects", id="list-not-list"
        ),
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


def test_malformed_json_is_a_bad_response_without_retries(connect: Connect) -> None:
    """A 200 with a broken body is not transient: retrying would only hide a platform change."""
    faults = Faults().add(FaultKind.MALFORMED, path_contains="custom_audience")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    with pytest.raises(BadResponse, match="not valid JSON"):
        listed(harness.client, RETAIL)

    assert len(paths(emulator, "/dmp/custom_audience/list/")) == 1
    assert harness.sleeps == []


def test_discovery_without_a_list_is_a_bad_response(connect: Connect) -> None:
    class NoList(TikTokBusinessSandbox):
        def _advertisers(self, request: httpx.Request) -> httpx.Response:
            return self._envelope(request, {"advertisers": []})

    with pytest.raises(BadResponse, match=r"discovering the advertisers.*data\.list"):
        active_accounts(connect(sandbox(cls=NoList)).client)


# --- throttling and transient failures ------------------------------------------------------------------------


def test_qps_limit_backs_off_then_succeeds(connect: Connect) -> None:
    """40100 arrives in HTTP 200 without a wait estimate: back off (0.5 s first), then carry on."""
    faults = Faults().add(FaultKind.THROTTLE, path_contains="custom_audience")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    assert [a["audience_id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5]
    assert harness.session.throttle_waited_seconds == 0.5
    assert len(paths(emulator, "/dmp/custom_audience/list/")) == 2


def test_repeated_qps_limits_back_off_further_each_time(connect: Connect) -> None:
    """With no estimate, every further throttle waits longer, so the cap eventually ends the run."""
    faults = Faults().add(FaultKind.THROTTLE, times=3, path_contains="custom_audience")
    harness = connect(sandbox((RETAIL,), faults=faults))

    assert [a["audience_id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0, 2.0]


def test_throttle_wait_beyond_the_cap_fails_at_once(connect: Connect) -> None:
    """A wait that would exceed the cap is not started: fail without sleeping, naming the code."""
    faults = Faults().add(FaultKind.THROTTLE, path_contains="custom_audience")
    harness = connect(sandbox((RETAIL,), faults=faults), retry=RetrySettings(max_throttle_wait_seconds=0.25))

    with pytest.raises(ThrottleCapExceeded) as info:
        listed(harness.client, RETAIL)

    message = str(info.value)
    assert "TikTok code 40100" in message
    assert "cap of 0s" in message
    assert_no_secret(message)  # TikTok's QPS message names the app id; it is redacted
    assert harness.sleeps == []


def test_server_errors_are_retried_with_backoff(connect: Connect) -> None:
    """HTTP 500 with code 50000 is transient: retried with doubling waits, then the listing completes."""
    faults = Faults().add(FaultKind.SERVER_ERROR, times=2, path_contains="custom_audience")
    emulator = sandbox((RETAIL,), faults=faults)
    harness = connect(emulator)

    assert [a["audience_id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
    assert harness.sleeps == [0.5, 1.0]
    assert len(paths(emulator, "/dmp/custom_audience/list/")) == 3


def test_system_error_in_http_200_is_retried(connect: Connect) -> None:
    """TikTok also reports 50000 "System error" inside HTTP 200; that is transient too."""

    class Flaky(TikTokBusinessSandbox):
        failures = 1

        def _audience_page(self, request: httpx.Request) -> httpx.Response:
            if self.failures:
                self.failures -= 1
                return self._error(request, 50000, "System error.")
            return super()._audience_page(request)

    harness = connect(sandbox((RETAIL,), cls=Flaky))

    assert [a["audience_id"] for a in listed(harness.client, RETAIL)] == expected_ids(RETAIL)
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


def test_wrong_token_is_an_auth_error_asking_to_reauthorise(connect: Connect) -> None:
    """40105 cannot be retried away: say how to fix it, once, without printing any credential."""
    wrong = {**CREDENTIALS, "access_token": "wrong-token-5e1d2b"}
    emulator = sandbox()
    harness = connect(emulator, credentials=wrong)

    with pytest.raises(AuthError) as info:
        active_accounts(harness.client)

    message = str(info.value)
    assert "TikTok code 40105" in message
    assert "re-authorise" in message
    assert "wrong-token-5e1d2b" not in message
    assert_no_secret(message)
    assert len(emulator.requests) == 1
    assert harness.sleeps == []


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


# --- take_snapshot and the v1 view ------------------------------------------------------------------------


IDENTITY = SnapshotIdentity(
    snapshot_id="snap-tt-0001",
    snapshot_date=TODAY,
    run_id="run-abc",
    destination="tiktok",
    destination_id="sandbox_tiktok",
)
TABLE = "tiktok_sandbox_tiktok_audiences"


SNAPSHOTS = SnapshotRig(
    tiktok.PLATFORM, IDENTITY, LOG, FETCHED_AT, TABLE, sync_ids={audience_id_of(RETAIL.id, 1): "90210"}
)
snapshot_of = SNAPSHOTS.take
write = SNAPSHOTS.write


def test_v1_view_maps_cover_num_with_nulls_and_sizes_above_int32(
    connect: Connect, spool_root: Path, tmp_path: Path
) -> None:
    """audience_size is cover_num: null stays null and sizes above 2**31 keep every digit."""
    db = tmp_path / "audit.duckdb"
    write(db, snapshot_of(connect(sandbox(), page_size=3), chunk_rows=4))

    rows = SNAPSHOTS.view_rows(
        db,
        "ad_account_id, audience_id, audience_name, audience_size, ht_destination, ht_sync_id, ht_fetched_at",
        "audience_id",
    )

    expected = sorted(
        (
            (account.id, sandbox_audience(account.id, i, TODAY))
            for account in (RETAIL, TRAVEL)
            for i in range(account.audiences)
        ),
        key=lambda pair: pair[1]["audience_id"],
    )
    assert [r[:4] for r in rows] == [
        (account_id, a["audience_id"], a["name"], a["cover_num"]) for account_id, a in expected
    ]
    sizes = [r[3] for r in rows]
    assert None in sizes
    assert any(s is not None and s > 2**31 for s in sizes)
    assert {r[4] for r in rows} == {"tiktok"}
    assert [r[5] for r in rows if r[5]] == ["90210"]
    assert {r[6] for r in rows} == {FETCHED_AT}
    assert list(spool_root.iterdir()) == []  # the IO manager removed the spool after the write


def test_sizes_change_from_day_to_day(connect: Connect, spool_root: Path) -> None:
    """The sandbox answers today's sizes; the next day's snapshot sees different ones."""
    emulator = sandbox((RETAIL,))
    day_one = [a["cover_num"] for a in listed(connect(emulator).client, RETAIL)]
    emulator.today = lambda: TODAY + dt.timedelta(days=1)
    day_two = [a["cover_num"] for a in listed(connect(emulator).client, RETAIL)]

    assert [s is None for s in day_one] == [s is None for s in day_two]
    assert day_one != day_two


def test_token_revoked_mid_snapshot_fails_with_nothing_written(connect: Connect, spool_root: Path) -> None:
    """TikTok tokens do not refresh: a revoked one fails the snapshot clearly, and its spool is removed."""
    emulator = sandbox(revoke_after_uses=4)  # discovery (2) + the first Retail pages (2), then 40105
    harness = connect(emulator, page_size=3)

    with pytest.raises(AuthError) as info:
        snapshot_of(harness, chunk_rows=1)  # rows of the first pages are already flushed to Parquet

    assert "re-authorise" in str(info.value)
    assert_no_secret(str(info.value))
    assert list(spool_root.iterdir()) == []
    assert len(emulator.requests) == 5


# --- a real HTTP server ----------------------------------------------------------------------------------------


def test_listing_over_a_real_http_server(connect: Connect) -> None:
    """The same client works over sockets with keep-alive, not just in-process."""
    emulator = sandbox()
    with serve(emulator) as url:
        harness = connect(base_url=url, page_size=3)
        accounts = active_accounts(harness.client)
        audiences = {a.id: listed(harness.client, SandboxAccount(a.id, "")) for a in accounts}

    assert [a.id for a in accounts] == [RETAIL.id, TRAVEL.id]
    assert [x["audience_id"] for x in audiences[RETAIL.id]] == expected_ids(RETAIL)
    assert [x["audience_id"] for x in audiences[TRAVEL.id]] == expected_ids(TRAVEL)
    assert audiences[RETAIL.id][0] == sandbox_audience(RETAIL.id, 0, TODAY)
    assert all(r.headers["access-token"] == TOKEN for r in emulator.requests)
