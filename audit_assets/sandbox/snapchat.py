"""Emulates the Snapchat Marketing API endpoints we use, and Snap's OAuth token endpoint.

Shapes follow the Snap docs (Organizations, API Patterns, Customer Lists, Lookalikes, Rate Limits) and
the Airbyte fixtures (airbytehq/airbyte ``source-snapchat-marketing/unit_tests/resource/http/response/``):
``GET /v1/me/organizations?with_ad_accounts=true`` with ad accounts nested in each organization,
``GET /v1/adaccounts/{id}/segments?limit=50..1000`` with every entity wrapped as
``{sub_request_status, segment}``, ``paging.next_link`` (absolute, carrying ``cursor`` and ``limit``) on
every page but the last, error bodies ``{request_status: ERROR, request_id, ...}`` and throttles as a
bare HTTP 429 without headers. The token endpoint lives at ``/login/oauth2/access_token`` on the same host,
so a sandbox destination sets ``token_url`` to ``https://<sandbox host>/login/oauth2/access_token``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

import httpx

from audit_assets.sandbox import world
from audit_assets.sandbox.oauth import TokenIssuer

TOKEN_PATH = "/login/oauth2/access_token"
DEMO_CREDENTIALS = {
    "client_id": "sandbox-snapchat-client-id",
    "client_secret": "sandbox-snapchat-client-secret",
    "refresh_token": "sandbox-snapchat-refresh-token",
}
MIN_LIMIT, MAX_LIMIT = 50, 1000
DEFAULT_LIMIT = MAX_LIMIT  # UNCONFIRMED: the docs do not say what Snap uses when limit is omitted
TOKEN_LIFETIME_SECONDS = 1800  # Airbyte oauth_token fixture: "expires_in": 1800

_SOURCE_TYPES = {
    "lookalike": "LOOKALIKE",
    "website": "PIXEL",
    "cart": "PIXEL",
    "app": "MOBILE",
    "engagement": "ENGAGEMENT",
}
_API = re.compile(r"^(?P<prefix>.*?)/v1/(?P<rest>.+)$")
_SEGMENTS = re.compile(r"adaccounts/(?P<account>[^/]+)/segments")


def _uuid(*parts: object) -> str:
    """A stable UUID, the form Snap gives organizations."""
    return str(uuid.UUID(int=world.stable_int(*parts, "hi") << 64 | world.stable_int(*parts, "lo")))


def _timestamp(seconds: int) -> str:
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def segment_id_of(account_id: str, index: int) -> str:
    """The 16-digit id the sandbox gives the index-th segment of an ad account."""
    return f"56{account_id[-4:]}{index:010d}"


def _request_id(request: httpx.Request) -> str:
    return f"{world.stable_int(str(request.url)):016x}00ff0sbx"


class SnapchatSandbox(world.PlatformEmulator):
    token_path = TOKEN_PATH
    server_error = world.WireError(500, None, "Internal server error", {"terse": True})

    def __init__(
        self,
        accounts: Sequence[world.SandboxAccount] = world.DEFAULT_ACCOUNTS,
        *,
        credentials: Mapping[str, str] = DEMO_CREDENTIALS,
        expire_after_uses: int | None = None,
        organizations: int = 2,
        organizations_per_page: int | None = None,
        empty_pages: int = 0,
        **options: Unpack[world.EmulatorOptions],
    ) -> None:
        super().__init__(accounts, **options)
        self.issuer = TokenIssuer(
            client_id=credentials["client_id"],
            client_secret=credentials["client_secret"],
            refresh_token=credentials["refresh_token"],
            expires_in=TOKEN_LIFETIME_SECONDS,
            expire_after_uses=expire_after_uses,
            prefix="snap-sbx",
        )
        self.credentials = (
            world.bearer(
                self.issuer.accepts,
                # UNCONFIRMED code; the status and envelope are documented
                world.WireError(401, "E3002", "Unauthorized: the access token is invalid or expired"),
            ),
        )
        # Accounts are dealt to organizations in turn, so one user sees several organizations.
        self.organizations = [
            (_uuid("snapchat-organization", n), list(accounts[n :: max(1, organizations)]))
            for n in range(max(1, organizations))
        ]
        self.organizations_per_page = organizations_per_page  # None: every organization on one page
        self.empty_pages = empty_pages  # empty segment pages (with a next_link) served after the first

    def envelope(self, request: httpx.Request, error: world.WireError) -> httpx.Response:
        """Snap's error envelope (singer-io/tap-snapchat-ads ``client.py`` documents its fields); a
        ``terse`` one is Airbyte's error_429.json form, ``msg`` alone, as throttles and 5xx come."""
        body: dict[str, Any] = {"request_status": "ERROR", "request_id": _request_id(request)}
        if error.extra.get("terse"):
            body["msg"] = error.message
        else:
            body["debug_message"] = error.message
            body["display_message"] = error.extra.get(
                "display_message", "We're sorry, but something went wrong."
            )
            if error.code is not None:
                body["error_code"] = error.code
        return httpx.Response(error.status, json=body, headers=error.headers)

    def route(self, request: httpx.Request) -> httpx.Response:
        match = _API.match(request.url.path)
        if request.method != "GET" or match is None:
            return self.error(request, 405, None, "Method or path not supported")
        rest = match["rest"]
        if rest == "me/organizations":
            return self._organizations(request)
        segments = _SEGMENTS.fullmatch(rest)
        if segments and segments["account"] in self.accounts:
            account = self.accounts[segments["account"]]
            if not account.readable:
                return self.error(request, 403, None, "User does not have permission to access this resource")
            return self._segment_page(request, account)
        return self.error(
            request,
            404,
            "E3003",
            "Resource can not be found",
            display_message="We're sorry, but the requested resource is not available at this time",
        )

    def throttled(self, request: httpx.Request, fault: world.Fault) -> world.WireError:
        """Airbyte's error_429.json / error_response(): a bare 429 with no rate-limit headers."""
        return world.WireError(429, None, "Rate limit exceeded", {"terse": True})

    def segments(self, account: world.SandboxAccount) -> list[dict[str, Any]]:
        """Every segment of an account as the API shows it today, in listing order."""
        day = self.today()
        organization = next(org for org, members in self.organizations if account in members)
        return [_segment(account, organization, i, day) for i in range(account.audiences)]

    def _organizations(self, request: httpx.Request) -> httpx.Response:
        with_accounts = request.url.params.get("with_ad_accounts") == "true"
        items = []
        for organization_id, members in self.organizations:
            organization: dict[str, Any] = {
                "id": organization_id,
                "updated_at": _timestamp(1_690_000_000),
                "created_at": _timestamp(1_680_000_000),
                "name": f"Sandbox Organization {organization_id[:4]}",
                "country": "US",
                "type": "ENTERPRISE",
                "state": "ACTIVE",
            }
            if with_accounts:
                organization["ad_accounts"] = [_ad_account(a, organization_id) for a in members]
            items.append({"sub_request_status": "SUCCESS", "organization": organization})
        per_page = self.organizations_per_page or len(items)
        try:
            offset, _ = _cursor_position(request)
        except ValueError:
            return self.error(request, 400, None, "Invalid cursor")
        end = min(offset + per_page, len(items))
        return self._reply(request, "organizations", items[offset:end], end, 0, more=end < len(items))

    def _segment_page(self, request: httpx.Request, account: world.SandboxAccount) -> httpx.Response:
        try:
            limit = int(request.url.params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            limit = -1
        if not MIN_LIMIT <= limit <= MAX_LIMIT:
            return self.error(request, 400, None, f"limit must be between {MIN_LIMIT} and {MAX_LIMIT}")
        try:
            offset, empties = _cursor_position(request)
        except ValueError:
            return self.error(request, 400, None, "Invalid cursor")
        limit = self.served(limit)
        if offset == limit and empties < self.empty_pages:
            return self._reply(request, "segments", [], offset, empties + 1, more=True)
        everything = self.segments(account)
        end = min(offset + limit, len(everything))
        items = [{"sub_request_status": "SUCCESS", "segment": s} for s in everything[offset:end]]
        return self._reply(request, "segments", items, end, empties, more=end < len(everything))

    @staticmethod
    def _reply(
        request: httpx.Request, key: str, items: list[Any], end: int, empties: int, *, more: bool
    ) -> httpx.Response:
        body: dict[str, Any] = {"request_status": "SUCCESS", "request_id": _request_id(request)}
        if more:
            body["paging"] = {
                "next_link": str(request.url.copy_set_param("cursor", world.opaque_cursor(end, empties)))
            }
        body[key] = items
        return httpx.Response(200, json=body)


def _ad_account(account: world.SandboxAccount, organization_id: str) -> dict[str, Any]:
    return {
        "id": account.id,
        "updated_at": _timestamp(1_700_000_000 + world.stable_int(account.id) % 1_000_000),
        "created_at": _timestamp(1_650_000_000 + world.stable_int(account.id) % 1_000_000),
        "name": account.name,
        "type": "PARTNER",
        "status": "ACTIVE" if account.active else "PAUSED",
        "organization_id": organization_id,
        "currency": "USD",
        "timezone": "America/Los_Angeles",
        "advertiser": account.name,
        "billing_type": "IO",
    }


def _segment(account: world.SandboxAccount, organization_id: str, index: int, day: dt.date) -> dict[str, Any]:
    segment_id = segment_id_of(account.id, index)
    name = world.audience_name(account.id, index)
    source_type = _SOURCE_TYPES.get(world.audience_kind(index), "FIRST_PARTY")
    created = 1_700_000_000 + world.stable_int(segment_id, "created") % 40_000_000
    retention = next((days for days in (30, 90, 180) if f"{days}d" in name), 9999)
    segment: dict[str, Any] = {
        "id": segment_id,
        "updated_at": _timestamp(created + world.stable_int(segment_id, "updated") % 1_000_000),
        "created_at": _timestamp(created),
        "name": name,
        "ad_account_id": account.id,
        "description": f"Sandbox segment {index} of {account.name}",
        "status": "ACTIVE",
        "source_type": source_type,
        "retention_in_days": min(retention, 180) if source_type == "LOOKALIKE" else retention,
        "upload_status": "COMPLETE" if source_type == "FIRST_PARTY" else "NO_UPLOAD",
        "targetable_status": "READY",
        "organization_id": organization_id,
        "visible_to": ["ALL_ACCOUNTS"],
    }
    if source_type == "LOOKALIKE":
        # A lookalike still being computed: Snap has no size for it yet.
        segment["creation_spec"] = {
            "seed_segment_id": segment_id_of(account.id, 0),
            "countries": ["US"],
            "type": "BALANCE",
        }
        segment["targetable_status"] = "NOT_READY"
        segment["approximate_number_users"] = None
    elif source_type == "ENGAGEMENT":
        # Deliberately beyond 32 bits, so every layer must carry sizes as 64-bit integers.
        segment["approximate_number_users"] = 2**31 + world.daily_size(segment_id, day)
    else:
        segment["approximate_number_users"] = world.daily_size(segment_id, day)
    return segment


def _cursor_position(request: httpx.Request) -> tuple[int, int]:
    cursor = request.url.params.get("cursor")
    if not cursor:
        return 0, 0
    offset, empties = world.read_cursor(cursor, int, int)
    return offset, empties


EMULATOR = SnapchatSandbox
