"""Pinterest API v5: ad-account discovery and audiences.

Facts and sources (shared/reference/ad_platform_apis.md §6 and §10):
- Repo pinterest/api-description ``v5/openapi.yaml`` (release 5.23.0): paths ``/ad_accounts``
  (``include_shared_accounts``, default true; ``bookmark``; ``page_size`` 1..250, default 25) and
  ``/ad_accounts/{ad_account_id}/audiences`` (``bookmark``, ``page_size``; ``ownership_type`` default OWNED);
  schemas ``AdAccount`` (no status field: v5 lists the accounts the user owns or was granted Business
  Access to), ``Audience``, ``AudienceRule``, ``Paginated`` (``{items, bookmark}``, bookmark nullable),
  ``Error`` (``{code, message}``); the 401/403/429 examples (code 2 "Authentication failed", code 3
  missing scopes, code 29 not permitted, code 8 rate limit); ``/oauth/token`` (security ``basic``,
  form-encoded ``grant_type=refresh_token``; the refresh response carries a new ``refresh_token``).
- https://developers.pinterest.com/docs/reference/rate-limits/ (per-category limits, HTTP 429).
- airbytehq/airbyte ``airbyte-integrations/connectors/source-pinterest/source_pinterest/manifest.yaml``
  and ``streams.py``: the wait after a 429 is read from ``X-RateLimit-Reset`` (seconds), the end of a
  list is an empty bookmark, the token request uses HTTP Basic client authentication.
- fivetran/dbt_pinterest_source release v0.9.0: the v4 account ``status`` is gone in v5.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from audit_assets.columns import ApiField
from audit_assets.columns import ColumnType as T
from audit_assets.platforms.base import (
    AdAccount,
    Audience,
    AuthContext,
    BadResponse,
    ClientSettings,
    Platform,
    require_object_list,
)
from audit_assets.platforms.http import (
    ApiSession,
    AuthFailed,
    BearerAuth,
    Fatal,
    Refused,
    Throttled,
    Transient,
    Verdict,
    header_number,
)
from audit_assets.platforms.oauth import RefreshGrant, RefreshingBearerAuth
from audit_assets.platforms.paging import follow_cursor
from audit_assets.views import V1Mapping, V2Mapping, Words

API_VERSION = "v5"
TOKEN_URL = "https://api.pinterest.com/v5/oauth/token"
MAX_PAGE_SIZE = 250
REFRESH_CREDENTIALS = frozenset({"client_id", "client_secret", "refresh_token"})

# Every property of the v5 ``Audience`` schema.
FIELDS: tuple[ApiField, ...] = (
    ApiField("id", T.STRING),
    ApiField("ad_account_id", T.STRING),
    ApiField("name", T.STRING),
    ApiField("description", T.STRING),
    ApiField("audience_type", T.STRING, "ACTALIKE, ENGAGEMENT, CUSTOMER_LIST or VISITOR."),
    ApiField("status", T.STRING, "READY, INITIALIZING or TOO_SMALL (fewer than 100 Pinterest users)."),
    ApiField("size", T.INTEGER, "Audience size; null while Pinterest has none."),
    ApiField("rule", T.JSON, "AudienceRule: how the audience is built, per audience_type."),
    ApiField("type", T.STRING, 'Always "audience".'),
    ApiField("created_by_company_name", T.STRING),
    ApiField("created_timestamp", T.INTEGER, "Unix seconds."),
    ApiField("updated_timestamp", T.INTEGER, "Unix seconds."),
)

RATE_LIMIT_CODE = 8  # {"code": 8, ...}: "This request exceeded a rate limit"
# X-RateLimit-Reset is read as seconds to wait; a value this large can only be a Unix time.
EPOCH_THRESHOLD = 1_000_000_000
_ACCOUNT_ID = re.compile(r"[0-9]{1,18}")  # AdAccount.id: pattern ^\d+$, maxLength 18


# Business Access roles that may read an account's audiences (Pinterest's "Business Access" roles; a
# FINANCE_MANAGER or CATALOGS_MANAGER sees the account but gets 403 on its audiences).
AUDIENCE_ROLES = frozenset({"OWNER", "ADMIN", "ANALYST", "AUDIENCE_MANAGER", "CAMPAIGN_MANAGER"})


def _unreadable(permissions: Any) -> str | None:
    """Why the account's listed permissions cannot read audiences, or None (unknown counts as readable)."""
    if not isinstance(permissions, list) or not permissions:
        return None
    if AUDIENCE_ROLES & {str(p) for p in permissions}:
        return None
    return f"the token's user has only {', '.join(map(str, permissions))} on it, no role that reads audiences"


def classify(response: httpx.Response, body: Any) -> Verdict | None:
    """Read a Pinterest ``{code, message}`` error; None leaves the decision to the shared HTTP policy."""
    status = response.status_code
    if status < 400:
        return None
    error = body if isinstance(body, Mapping) and "code" in body else None
    detail = _describe(status, error)
    if status == 429 or (error is not None and error.get("code") == RATE_LIMIT_CODE):
        return Throttled(detail, _wait_seconds(response.headers))
    if status == 401:
        return AuthFailed(
            f"{detail}. The access token is invalid, expired or revoked, or lacks the ads:read scope: "
            "authorise the app again (scope ads:read) and update the secrets; with client_id, "
            "client_secret and refresh_token configured the token is refreshed automatically"
        )
    if status == 403:
        return Refused(
            f"{detail}. The token's user may not read this: grant the ads:read scope and an owner or "
            "Business Access role that includes audiences on the ad account"
        )
    if error is None:
        return None
    if status >= 500:
        return Transient(detail)
    return Fatal(detail)


def _describe(status: int, error: Mapping[str, Any] | None) -> str:
    if error is None:
        return f"HTTP {status}"
    return f"HTTP {status}, Pinterest error {error.get('code')}: {error.get('message', 'no message')}"


def _wait_seconds(headers: httpx.Headers) -> float | None:
    """Seconds Pinterest asks us to wait: Retry-After if sent, else X-RateLimit-Reset."""
    for name in ("retry-after", "x-ratelimit-reset"):
        value = header_number(headers, name)
        if value is not None:
            return value - time.time() if value >= EPOCH_THRESHOLD else value
    return None


class PinterestClient:
    def __init__(self, settings: ClientSettings, session: ApiSession) -> None:
        self._settings = settings
        self._session = session
        self._root = f"{settings.base_url.rstrip('/')}/{API_VERSION}"

    def discover_accounts(self) -> list[AdAccount]:
        """Every account the user owns or was given Business Access to.

        v5 accounts carry no status: the list holds only accounts the token's user can work in, so
        each one listed counts as active. Shared accounts are asked for explicitly, since audiences
        are often kept in an account an agency or Hightouch's user was granted access to.
        """
        what = "discovering ad accounts"
        accounts = []
        for page in self._pages(f"{self._root}/ad_accounts", {"include_shared_accounts": "true"}, what):
            for item in page:
                account_id = item.get("id")
                if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
                    raise BadResponse(f"{what}: an account id is not a string of digits: {account_id!r}")
                name, permissions = item.get("name"), item.get("permissions")
                accounts.append(
                    AdAccount(
                        account_id,
                        name if isinstance(name, str) else None,
                        unreadable=_unreadable(permissions),
                    )
                )
        return accounts

    def audience_pages(self, account: AdAccount) -> Iterator[list[Audience]]:
        url = f"{self._root}/ad_accounts/{account.id}/audiences"
        yield from self._pages(url, {}, f"listing audiences of ad account {account.id}")

    def _pages(self, url: str, params: dict[str, Any], what: str) -> Iterator[list[Audience]]:
        """Follow ``bookmark`` until it is null or absent; an empty page with a bookmark is not the end."""
        params = {**params, "page_size": self._settings.page_size}
        return follow_cursor(
            self._session,
            url,
            params,
            cursor_param="bookmark",
            read=_read_page,
            what=what,
            cursor_name="bookmark",
        )


def _read_page(body: Mapping[str, Any], where: str) -> tuple[list[Audience], str | None]:
    items = require_object_list(body.get("items"), "'items'", where)
    bookmark = body.get("bookmark")
    if bookmark is None or bookmark == "":
        return items, None
    if not isinstance(bookmark, str):
        raise BadResponse(f"{where} has a bookmark of type {type(bookmark).__name__}")
    return items, bookmark


def auth(context: AuthContext) -> httpx.Auth:
    """Refresh with HTTP Basic client auth when the app's credentials are given, else a fixed token.

    Refreshing is preferred: an access token may expire between runs or in the middle of a snapshot.
    """
    credentials = context.credentials
    if credentials.keys() >= REFRESH_CREDENTIALS:
        grant = RefreshGrant(
            token_url=context.token_url or TOKEN_URL,
            client_id=credentials["client_id"],
            client_secret=credentials["client_secret"],
            refresh_token=credentials["refresh_token"],
            client_auth="basic",
        )
        return RefreshingBearerAuth(grant, remember_secret=context.remember_secret)
    return BearerAuth(credentials["access_token"])


PLATFORM = Platform(
    slug="pinterest",
    title="Pinterest",
    default_base_url="https://api.pinterest.com",
    credential_sets=(frozenset({"access_token"}), REFRESH_CREDENTIALS),
    optional_credentials=frozenset(),
    fields=FIELDS,
    audience_id_field="id",
    v1=V1Mapping(audience_id="id", audience_name="name", audience_size="size"),
    v2=V2Mapping(audience_type=Words("audience_type"), audience_status=Words("status")),
    default_page_size=MAX_PAGE_SIZE,
    max_page_size=MAX_PAGE_SIZE,
    connect=PinterestClient,
    auth=auth,
    classify=classify,
    default_token_url=TOKEN_URL,
)
