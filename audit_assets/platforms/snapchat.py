"""Snapchat Marketing API: ad-account discovery through organizations, and audience segments.

Facts and sources (shared/reference/ad_platform_apis.md §5 and §10):
- Snap docs https://developers.snap.com/api/marketing-api/Ads-API/organizations — ``GET
  /v1/me/organizations?with_ad_accounts=true`` nests each organization's ``ad_accounts`` (with ``status``);
- .../Ads-API/api-patterns — ``?limit=`` between 50 and 1000, ``paging.next_link`` (an absolute URL with a
  ``cursor`` query parameter) on every page but the last; items wrapped as ``{sub_request_status, <entity>}``;
- .../Ads-API/customer-lists (segment attribute table), .../customer-lists-lookalike (``creation_spec``),
  .../Ads-API/rate-limits (HTTP 429, no rate-limit or Retry-After headers documented);
- airbytehq/airbyte ``airbyte-integrations/connectors/source-snapchat-marketing/``:
  ``source_snapchat_marketing/schemas/segments.json`` (field types), ``unit_tests/resource/http/response/``
  ``segments.json``, ``error_401.json``, ``error_429.json`` and ``unit_tests/integration/response_builder.py``
  (envelopes, ``next_link``, token response with ``expires_in: 1800``);
- singer-io/tap-snapchat-ads ``tap_snapchat_ads/client.py`` — token endpoint
  https://accounts.snapchat.com/login/oauth2/access_token (form client credentials) and the error body
  ``{request_status: ERROR, request_id, debug_message, display_message, error_code}``.
"""

from __future__ import annotations

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
from audit_assets.platforms.http import ApiSession, AuthFailed, Fatal, Refused, Transient, Verdict
from audit_assets.platforms.oauth import RefreshGrant, RefreshingBearerAuth
from audit_assets.platforms.paging import follow_cursor
from audit_assets.views import V1Mapping, V2Mapping, Words

API_VERSION = "v1"
TOKEN_URL = "https://accounts.snapchat.com/login/oauth2/access_token"
MIN_LIMIT, MAX_LIMIT = 50, 1000  # api-patterns: "limit={value between 50 - 1000}"
SUCCESS = "SUCCESS"  # the docs show both "SUCCESS" and "success"; compared case-insensitively
ACTIVE = "ACTIVE"

# Every top-level attribute of an audience segment: the Customer Lists attribute table, the Lookalikes
# page (creation_spec) and the Airbyte schema/fixture (organization_id, visible_to, timestamps).
FIELDS: tuple[ApiField, ...] = (
    ApiField("id", T.STRING),
    ApiField("name", T.STRING),
    ApiField("ad_account_id", T.STRING),
    ApiField("organization_id", T.STRING),
    ApiField("description", T.STRING),
    ApiField("status", T.STRING, "ACTIVE or PENDING."),
    ApiField("source_type", T.STRING, "FIRST_PARTY, ENGAGEMENT, PIXEL, MOBILE, LOOKALIKE, ..."),
    ApiField("retention_in_days", T.INTEGER, "9999 means lifetime."),
    ApiField("approximate_number_users", T.INTEGER, "Read-only size estimate; absent while not computed."),
    ApiField("upload_status", T.STRING, "NO_UPLOAD, PROCESSING or COMPLETE."),
    ApiField("targetable_status", T.STRING, "NOT_READY, TOO_FEW_USERS or READY."),
    ApiField("visible_to", T.JSON),
    ApiField("creation_spec", T.JSON, "Lookalikes only: {seed_segment_id, countries, type}."),
    ApiField("created_at", T.STRING, "ISO-8601 with milliseconds."),
    ApiField("updated_at", T.STRING, "ISO-8601 with milliseconds."),
)

_REAUTHORISE = (
    "authorise the Snapchat app again (with a user that has a role on the organization and its ad "
    "accounts) and update the refresh_token secret"
)


def classify(response: httpx.Response, body: Any) -> Verdict | None:
    """Read Snap's error envelope; None leaves 429 and anything unrecognised to the shared policy.

    The OAuth flow already refreshed and replayed once on a 401, so a 401 here means even a fresh
    token was refused. A 429 carries no wait estimate (none is documented), so the shared backoff,
    which also honours a Retry-After should Snap ever send one, decides how long to wait.
    """
    status = response.status_code
    envelope = isinstance(body, Mapping) and "request_status" in body
    detail = _describe_error(status, body) if envelope else f"HTTP {status}"
    if status == 401:
        return AuthFailed(f"{detail}. Snapchat refused a freshly refreshed access token: {_REAUTHORISE}")
    if status == 403:
        return Refused(
            f"{detail}. The Snapchat user who authorised the app has no access to this organization or "
            f"ad account: give it a role there (audience, reports or admin), or {_REAUTHORISE}"
        )
    if not envelope or status == 429:
        return None
    if status >= 500:
        return Transient(detail)
    if status >= 400 or str(body.get("request_status")).upper() != SUCCESS:
        return Fatal(detail)
    return None


def _describe_error(status: int, body: Mapping[str, Any]) -> str:
    parts = [f"HTTP {status}, request_status {body.get('request_status')}"]
    if body.get("error_code"):
        parts.append(f"error_code {body['error_code']}")
    message = body.get("debug_message") or body.get("msg") or body.get("display_message") or "no message"
    text = f"{', '.join(parts)}: {message}"
    if body.get("request_id"):
        text += f" (request_id {body['request_id']})"
    return text


class SnapchatClient:
    def __init__(self, settings: ClientSettings, session: ApiSession) -> None:
        self._session = session
        self._root = f"{settings.base_url.rstrip('/')}/{API_VERSION}"
        # Snap rejects a limit outside 50..1000, so a smaller configured page size is raised to 50.
        self._limit = min(max(settings.page_size, MIN_LIMIT), MAX_LIMIT)

    def discover_accounts(self) -> list[AdAccount]:
        """Every ACTIVE ad account of every organization the authorising user belongs to."""
        what = "discovering ad accounts"
        accounts = []
        url = f"{self._root}/me/organizations"
        for page in self._pages(url, {"with_ad_accounts": "true"}, "organizations", "organization", what):
            for organization in page:
                ad_accounts = require_object_list(
                    organization.get("ad_accounts", []),
                    "'ad_accounts'",
                    f"{what}: organization {organization.get('id')!r}",
                )
                for account in ad_accounts:
                    account_id = account.get("id")
                    if not isinstance(account_id, str) or not account_id:
                        raise BadResponse(
                            f"{what}: an ad account of organization {organization.get('id')!r} has no id"
                        )
                    name, status = account.get("name"), account.get("status")
                    accounts.append(
                        AdAccount(
                            account_id,
                            name if isinstance(name, str) else None,
                            status if isinstance(status, str) else None,
                            str(status or "").upper() == ACTIVE,
                        )
                    )
        return accounts

    def audience_pages(self, account: AdAccount) -> Iterator[list[Audience]]:
        url = f"{self._root}/adaccounts/{account.id}/segments"
        yield from self._pages(
            url, {"limit": self._limit}, "segments", "segment", f"listing segments of ad account {account.id}"
        )

    def _pages(
        self, url: str, params: dict[str, Any], list_key: str, item_key: str, what: str
    ) -> Iterator[list[dict[str, Any]]]:
        """Follow ``paging.next_link`` until it is absent, yielding each page's unwrapped entities.

        Only the link's ``cursor`` is taken, sent to our own URL: every request stays on the configured
        base_url (Snap's own docs once showed next_links on another host) and carries nothing else the
        platform put into a URL. An empty page that still has a next_link is not the end.
        """

        def read(body: Mapping[str, Any], where: str) -> tuple[list[dict[str, Any]], str | None]:
            if str(body.get("request_status")).upper() != SUCCESS:
                raise BadResponse(f"{where} has request_status {body.get('request_status')!r}")
            wrappers = body.get(list_key)
            if not isinstance(wrappers, list):
                raise BadResponse(f"{where} has no '{list_key}' list")
            items = [_unwrap(w, item_key, where) for w in wrappers]
            paging = body.get("paging")
            next_link = paging.get("next_link") if isinstance(paging, Mapping) else None
            if not next_link:
                return items, None
            cursor = httpx.URL(str(next_link)).params.get("cursor")
            if not cursor:
                raise BadResponse(f"{where} has a paging.next_link without a cursor")
            return items, cursor

        return follow_cursor(self._session, url, params, cursor_param="cursor", read=read, what=what)


def _unwrap(wrapper: Any, item_key: str, where: str) -> dict[str, Any]:
    """``{"sub_request_status": "SUCCESS", "segment": {...}}`` -> the segment; anything else fails."""
    if not isinstance(wrapper, Mapping):
        raise BadResponse(f"{where}: an item is a {type(wrapper).__name__}, not an object")
    status = wrapper.get("sub_request_status")
    if str(status).upper() != SUCCESS:
        reason = wrapper.get("sub_request_error_reason")
        raise BadResponse(
            f"{where}: an item has sub_request_status {status!r}" + (f" ({reason})" if reason else "")
        )
    item = wrapper.get(item_key)
    if not isinstance(item, dict):
        raise BadResponse(f"{where}: an item has no '{item_key}' object")
    return item


def auth(context: AuthContext) -> httpx.Auth:
    """Snap access tokens last 30 minutes: refresh before expiry, and again on a 401 mid-snapshot."""
    credentials = context.credentials
    grant = RefreshGrant(
        token_url=context.token_url or TOKEN_URL,
        client_id=credentials["client_id"],
        client_secret=credentials["client_secret"],
        refresh_token=credentials["refresh_token"],
    )
    return RefreshingBearerAuth(grant, remember_secret=context.remember_secret)


PLATFORM = Platform(
    slug="snapchat",
    title="Snapchat",
    default_base_url="https://adsapi.snapchat.com",
    credential_sets=(frozenset({"client_id", "client_secret", "refresh_token"}),),
    optional_credentials=frozenset(),
    fields=FIELDS,
    audience_id_field="id",
    v1=V1Mapping(audience_id="id", audience_name="name", audience_size="approximate_number_users"),
    v2=V2Mapping(audience_type=Words("source_type"), audience_status=Words("targetable_status")),
    default_page_size=MAX_LIMIT,
    max_page_size=MAX_LIMIT,
    connect=SnapchatClient,
    auth=auth,
    classify=classify,
    default_token_url=TOKEN_URL,
)
