"""What every platform client promises, and one binding per platform that lets the contract suite test it.

``test_client_contract.py`` runs the same tests over every ``ClientContract`` here. A binding says only
what the platform's sandbox does in the platform's own words: which emulator serves it, where it lists
audiences, how its throttles, 5xx and refusals read, how its credentials travel, and which shared
behaviours it has (refresh tokens, empty pages that still carry a cursor). Expected ids and sizes come
from the sandbox modules' own functions, never from the client under test. What a platform does that no
other does stays in its own ``test_<platform>_client.py``; a new platform gets every shared behaviour
tested by adding one binding.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import httpx

from audit_assets.platforms import PLATFORMS
from audit_assets.platforms.base import Platform
from audit_assets.sandbox import google_ads, linkedin, meta, pinterest, snapchat, tiktok, x
from audit_assets.sandbox.world import Emulator, Fault, SandboxAccount
from audit_assets.snapshot import SnapshotIdentity
from audit_assets_tests.conftest import CLOSED, RETAIL, TRAVEL, packaged_destination
from audit_assets_tests.platform_harness import Connect, Harness, PlatformClients, SnapshotRig

TODAY = dt.date(2026, 3, 14)
NOW = dt.datetime(2026, 3, 14, 6, 0, 0, tzinfo=dt.UTC)  # the platform's clock, where it keeps one
FETCHED_AT = dt.datetime(2026, 3, 14, 6, 0, 5, tzinfo=dt.UTC)
LOG = logging.getLogger("audit_assets_tests.client_contract")
SYNC_ID = "90210"  # the Hightouch sync of RETAIL's second audience in contract snapshots


@functools.cache
def _packaged(slug: str) -> Mapping[str, Any]:
    """The packaged sandbox destination of one platform, read once (every test connects with it)."""
    return packaged_destination(slug)


@dataclass(frozen=True)
class Refusal:
    """How one platform is made to refuse a credential, and what our error must then say."""

    says: tuple[str, ...]  # the platform's code and the fix, each in the message
    credentials: Mapping[str, str] | None = None  # None: the demo credentials
    emulator: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 1  # API requests before giving up; 2: one refresh and one replay, never a loop


@dataclass(frozen=True)
class OAuth:
    """A platform whose sandbox issues access tokens from a refresh token (RFC 6749 §6)."""

    client_auth: Literal["form", "basic"]  # how the token endpoint wants the app's id and secret
    issued: str  # the sandbox's access tokens are ``<issued>-1``, ``<issued>-2``, ...
    refused_refresh: str  # how a refused refresh token reads in our message


@dataclass(frozen=True)
class ClientContract:
    """One platform's binding: its sandbox, its wire words, and which contract items apply."""

    slug: str
    id_of: Callable[[str, int], Any]  # the sandbox's id of an account's index-th audience
    size_of: Callable[[SandboxAccount, int, dt.date], int | None]  # the size the v1 view must show
    id_field: str  # the API field of an audience's id
    size_field: str  # the API field of an audience's size
    listing_path: str  # a part of the path of every audience listing request, and no other
    discovery_path: str  # a part of the path of the (first) discovery request
    listing_call: str  # how our messages name an account's listing, before its id
    items_at: tuple[str, ...]  # where a listing page holds its audiences
    stuck: str  # our complaint when the platform answers page 2 with page 1 again
    throttle_estimate: bool  # the platform's throttle says how long to wait
    throttle_signal: str  # how our throttle message names the platform's throttle
    server_error: str  # how our message names the platform's 5xx
    refusal: Refusal
    account_refusal: tuple[str, ...]  # our message when the credentials may not read an account: code, fix
    header_credentials: frozenset[str] = frozenset()  # credentials API requests carry in a header
    url_credentials: Mapping[str, frozenset[str]] = field(default_factory=dict)  # path part -> in its query
    oauth: OAuth | None = None
    discovery_paging: tuple[str, str] | None = None  # (page size, cursor) parameters of paged discovery
    page_size: int = 5  # the smallest page the client may ask for in a paging test
    empty_pages: bool = False  # the platform may send an empty page that still carries a cursor
    huge_sizes: bool = True  # the sandbox serves sizes beyond 2**31
    emulator_defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def platform(self) -> Platform:
        return PLATFORMS[self.slug]

    @property
    def sandbox(self) -> ModuleType:
        return importlib.import_module(f"audit_assets.sandbox.{self.slug}")

    @property
    def credentials(self) -> Mapping[str, str]:
        """The public demo credentials the packaged sandbox accepts."""
        return self.sandbox.DEMO_CREDENTIALS

    @property
    def base_url(self) -> str:
        return _packaged(self.slug)["base_url"]

    @property
    def token_path(self) -> str | None:
        token_url = _packaged(self.slug).get("token_url")
        return None if token_url is None else httpx.URL(token_url).path

    def emulator(
        self,
        accounts: Sequence[SandboxAccount] = (RETAIL, TRAVEL, CLOSED),
        *,
        cls: type[Emulator] | None = None,
        **options: Any,
    ) -> Any:
        """The platform's emulator (or ``cls``, a variant of it) of ``accounts`` on a fixed day.

        It accepts the demo credentials. Typed Any: a platform's own tests read its emulator's own state.
        """
        factory = cls or self.sandbox.EMULATOR
        return factory(accounts, **{"today": lambda: TODAY, **self.emulator_defaults, **options})

    def connect(
        self, clients: PlatformClients, emulator: Emulator | None = None, **overrides: Any
    ) -> Harness:
        """A client over real httpx with the demo credentials; a server's ``base_url`` moves the token URL too."""
        base_url = overrides.pop("base_url", self.base_url)
        token_url = None if self.token_path is None else base_url + self.token_path
        settings = {"log": LOG, "base_url": base_url, "token_url": token_url, "credentials": self.credentials}
        return clients.connect(self.platform, emulator, **(settings | overrides))

    def connector(self, clients: PlatformClients) -> Connect:
        """``connect`` bound to a test's clients: what a platform file's ``connect`` fixture gives."""
        return functools.partial(self.connect, clients)

    def ids(self, account: SandboxAccount) -> list[Any]:
        """The sandbox's audience ids of one account, in listing order."""
        return [self.id_of(account.id, i) for i in range(account.audiences)]

    def listings(self, emulator: Emulator) -> list[httpx.Request]:
        return [r for r in emulator.requests if self.listing_path in r.url.path]

    def is_token_request(self, request: httpx.Request) -> bool:
        return self.token_path is not None and request.url.path == self.token_path

    def snapshots(self, **defaults: Any) -> SnapshotRig:
        identity = SnapshotIdentity(
            f"snap-{self.slug}", TODAY, "run-contract", self.slug, f"sandbox_{self.slug}"
        )
        return SnapshotRig(
            self.platform, identity, LOG, FETCHED_AT, f"{self.slug}_contract_audiences", **defaults
        )


class Rewritten(Emulator):
    """A platform whose successful listing answers are changed: ``change(n, answer)`` for the n-th one.

    It wraps the emulator rather than copying it, so auth, faults and paging stay the platform's own.
    """

    def __init__(
        self,
        platform: Emulator,
        listing_path: str,
        change: Callable[[int, httpx.Response], httpx.Response],
    ) -> None:
        super().__init__(None, platform.today)
        self.platform = platform
        self.listing_path = listing_path
        self.change = change
        self.answered = 0

    def respond(self, request: httpx.Request) -> httpx.Response:
        response = self.platform.handle(request)
        if response.status_code != 200 or self.listing_path not in request.url.path:
            return response
        self.answered += 1
        return self.change(self.answered, response)

    def fault_response(self, request: httpx.Request, fault: Fault) -> httpx.Response:
        """The platform's own form; faults are planned on the wrapped emulator, which answers them itself."""
        return self.platform.fault_response(request, fault)


def _meta_size(account: SandboxAccount, index: int, day: dt.date) -> int | None:
    size = meta.MetaGraphSandbox._audience(account, index, day)["approximate_count_lower_bound"]
    return None if size == -1 else size  # Graph's -1 is "no estimate yet"


def _snapchat_size(account: SandboxAccount, index: int, day: dt.date) -> int | None:
    segments = snapchat.SnapchatSandbox((account,), today=lambda: day).segments(account)
    return segments[index]["approximate_number_users"]


CONTRACTS: tuple[ClientContract, ...] = (
    ClientContract(
        slug="meta",
        id_of=meta.audience_id_of,
        size_of=_meta_size,
        id_field="id",
        size_field="approximate_count_lower_bound",
        listing_path="/customaudiences",
        discovery_path="/me/adaccounts",
        listing_call="listing custom audiences of account",
        items_at=("data",),
        stuck="repeated a cursor at page 2",
        throttle_estimate=True,  # estimated_time_to_regain_access, in minutes
        throttle_signal="80003",
        server_error="HTTP 500, Graph error 2",
        account_refusal=("Graph error 200", "ads_read"),
        refusal=Refusal(("Graph error 190", "re-authorise"), {"access_token": "wrong-meta-token-5e1d2b"}),
        header_credentials=frozenset({"access_token"}),
        empty_pages=True,
        huge_sizes=False,
        discovery_paging=("limit", "after"),
    ),
    ClientContract(
        slug="google_ads",
        id_of=google_ads.user_list_id,
        size_of=lambda account, index, day: google_ads.expected_size_for_display(account.id, index, day),
        id_field="id",
        size_field="sizeForDisplay",
        listing_path="googleAds:search",
        discovery_path="customers:listAccessibleCustomers",
        listing_call="listing user lists of customer",
        items_at=("results",),
        stuck="repeated a page token at page 2",
        throttle_estimate=True,  # quotaErrorDetails.retryDelay
        throttle_signal="RESOURCE_TEMPORARILY_EXHAUSTED",
        server_error="HTTP 500 INTERNAL (internalError=INTERNAL_ERROR)",
        account_refusal=("USER_PERMISSION_DENIED", "login_customer_id"),
        refusal=Refusal(
            ("OAUTH_TOKEN_INVALID", "update client_id, client_secret and refresh_token"),
            emulator={"expire_after_uses": 0},  # every access token is refused, fresh ones too
            attempts=2,
        ),
        header_credentials=frozenset({"developer_token"}),
        oauth=OAuth("form", "ya29.sbx-access", "invalid_grant"),
        # Every account reached directly, each its own login-customer-id; managers are Google's own tests.
        emulator_defaults={"manager": None},
    ),
    ClientContract(
        slug="linkedin",
        id_of=linkedin.segment_id_of,
        size_of=lambda account, index, day: linkedin.LinkedInMarketingSandbox.segment(
            account, index, day
        ).get("approximateMemberCount"),
        id_field="id",
        size_field="approximateMemberCount",
        listing_path="/rest/adSegments",
        discovery_path="/rest/adAccounts",
        listing_call="listing ad segments of account",
        items_at=("elements",),
        stuck="asked for start=5 but page 2 starts at 0",  # start/count paging: page 1 comes back
        throttle_estimate=False,  # a bare 429; with an estimate it is the DAY quota, LinkedIn's own tests
        throttle_signal="TOO_MANY_REQUESTS",
        server_error="HTTP 500, INTERNAL_SERVER_ERROR",
        account_refusal=("ACCESS_DENIED", "r_ads", "VIEWER"),
        refusal=Refusal(
            ("INVALID_ACCESS_TOKEN", "refresh_token"),
            {"access_token": "wrong-linkedin-token-77ab"},
            emulator={"access_tokens": {"the-right-token-0001"}},
        ),
        discovery_paging=("pageSize", "pageToken"),
        oauth=OAuth("form", "sbx-linkedin-access", "invalid_grant"),
        emulator_defaults={"now": lambda: NOW},
    ),
    ClientContract(
        slug="tiktok",
        id_of=tiktok.audience_id_of,
        size_of=lambda account, index, day: tiktok.audience_size(account.id, index, day),
        id_field="audience_id",
        size_field="cover_num",
        listing_path="/dmp/custom_audience/list/",
        discovery_path="/oauth2/advertiser/get/",
        listing_call="listing custom audiences of advertiser",
        items_at=("data", "list"),
        stuck="answered page 1 instead",  # page-number paging: page 1 comes back
        throttle_estimate=False,  # code 40100 in HTTP 200, no wait
        throttle_signal="TikTok code 40100",
        server_error="HTTP 500, TikTok code 50000",
        account_refusal=("TikTok code 40001", "authorise the app for this advertiser again"),
        refusal=Refusal(
            ("TikTok code 40105", "re-authorise"),
            {**tiktok.DEMO_CREDENTIALS, "access_token": "wrong-tiktok-token-5e1d2b"},
        ),
        header_credentials=frozenset({"access_token"}),
        url_credentials={"/oauth2/advertiser/get/": frozenset({"app_id", "secret"})},  # as TikTok demands
    ),
    ClientContract(
        slug="snapchat",
        id_of=snapchat.segment_id_of,
        size_of=_snapchat_size,
        id_field="id",
        size_field="approximate_number_users",
        listing_path="/segments",
        discovery_path="/me/organizations",
        listing_call="listing segments of ad account",
        items_at=("segments",),
        stuck="repeated a cursor at page 2",
        throttle_estimate=False,  # a bare 429
        throttle_signal="HTTP 429",
        server_error="HTTP 500, request_status ERROR: Internal server error",
        account_refusal=("HTTP 403", "give it a role there"),
        refusal=Refusal(
            ("HTTP 401", "E3002", "authorise the Snapchat app again", "refresh_token secret"),
            emulator={"expire_after_uses": 0},
            attempts=2,
        ),
        oauth=OAuth("form", "snap-sbx-access", "invalid_grant"),
        page_size=50,  # Snap's smallest limit
        empty_pages=True,
    ),
    ClientContract(
        slug="pinterest",
        id_of=pinterest.audience_id_of,
        size_of=lambda account, index, day: pinterest.audience_size(account.id, index, day),
        id_field="id",
        size_field="size",
        listing_path="/audiences",
        discovery_path="/v5/ad_accounts",
        listing_call="listing audiences of ad account",
        items_at=("items",),
        stuck="repeated a bookmark at page 2",
        throttle_estimate=True,  # X-RateLimit-Reset, in seconds
        throttle_signal="HTTP 429, Pinterest error 8",
        server_error="HTTP 500, Pinterest error 500",
        account_refusal=("HTTP 403, Pinterest error 29", "ads:read"),
        refusal=Refusal(
            ("Pinterest error 2: Authentication failed.", "authorise the app again", "refresh_token"),
            {"access_token": "pina.wrong-token-5e1d2b"},
        ),
        discovery_paging=("page_size", "bookmark"),
        oauth=OAuth("basic", "pina-access", "HTTP 400"),
        empty_pages=True,
    ),
    ClientContract(
        slug="x",
        id_of=x.audience_id_of,
        size_of=lambda account, index, day: x.XAdsSandbox._audience(account, index, day)["audience_size"],
        id_field="id",
        size_field="audience_size",
        listing_path="/custom_audiences",
        discovery_path="/12/accounts",
        listing_call="listing custom audiences of account",
        items_at=("data",),
        stuck="repeated a cursor at page 2",
        # The spent account-level limit's reset, by X's clock; the user-level one (not spent) resets sooner.
        throttle_estimate=True,
        throttle_signal="TOO_MANY_REQUESTS",
        server_error="HTTP 500, INTERNAL_ERROR",
        account_refusal=("UNAUTHORIZED_ACCESS", "grant that user access"),
        refusal=Refusal(
            ("UNAUTHORIZED_ACCESS", "access_token_secret", "update the secrets"),
            {**x.DEMO_CREDENTIALS, "access_token_secret": "wrong-x-token-secret-5e1d"},
        ),
        discovery_paging=("count", "cursor"),
        header_credentials=frozenset({"consumer_key", "access_token"}),  # in the signed OAuth header
        emulator_defaults={"clock": NOW.timestamp},
    ),
)


def contract_of(slug: str) -> ClientContract:
    """The binding of one platform, which that platform's own test file uses too."""
    (contract,) = [c for c in CONTRACTS if c.slug == slug]
    return contract
