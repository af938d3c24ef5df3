"""LinkedIn Marketing API: ad-account discovery and matched-audience ad segments.

Facts and sources (besides shared/reference/ad_platform_apis.md §3):
- Ad Segments: schema (``approximateMemberCount`` optional long, ``account`` SponsoredAccountUrn, ...),
  the ``q=accounts`` finder, and the r_ads/rw_ads scopes plus ad-account roles it needs:
  https://learn.microsoft.com/en-us/linkedin/marketing/integrations/matched-audiences/adsegments
  (a sample response: https://withone.ai/knowledge/linked-in, "List an Ad Account's Ad Segments").
- Index paging (``start``/``count``; "you have reached the end of the dataset when your response
  contains fewer elements ... than your count"): https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/pagination
- Cursor paging of the ad-account search since 202401 (``pageSize``/``pageToken``; the next token is
  ``metadata.nextPageToken`` and its absence ends the list):
  https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads/cursor-based-pagination ;
  the same paging and the ``search=(status:(values:List(...)))`` syntax on ``/rest/adAccounts`` in
  airbytehq/airbyte ``airbyte-integrations/connectors/source-linkedin-ads/manifest.yaml``.
- ``LinkedIn-Version: YYYYMM`` and ``X-Restli-Protocol-Version: 2.0.0`` on every call; versions are
  sunset about a year after release (deprecation notices on the pages above).
- Refresh grant at https://www.linkedin.com/oauth/v2/accessToken (client id and secret in the form):
  https://learn.microsoft.com/en-us/linkedin/shared/authentication/programmatic-refresh-tokens
- Error bodies ``{status, serviceErrorCode, code, message}``: 429 ``serviceErrorCode`` 101 in
  Automattic/wp-calypso#32007; the "DAY limit" 429 that only resets at 00:00 UTC in PostHog/posthog#64614;
  401 65600 INVALID_ACCESS_TOKEN in xcarpentier/react-native-linkedin#131; 401 65601
  REVOKED_ACCESS_TOKEN in decioferreira/omniauth-linkedin-oauth2#81. No rate-limit or Retry-After
  headers are documented, so a short-window 429 backs off by the shared policy.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from audit_assets.columns import ApiField
from audit_assets.columns import ColumnType as T
from audit_assets.platforms.base import (
    AdAccount,
    Audience,
    AuthContext,
    BadResponse,
    ClientSettings,
    IdForm,
    Platform,
    require_mapping,
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
    retry_after_seconds,
)
from audit_assets.platforms.oauth import RefreshGrant, RefreshingBearerAuth
from audit_assets.views import V1Mapping, V2Mapping, Words

LINKEDIN_VERSION = "202608"  # pinned; LinkedIn sunsets a version about a year after its release
API_HEADERS = {"LinkedIn-Version": LINKEDIN_VERSION, "X-Restli-Protocol-Version": "2.0.0"}
DEFAULT_TOKEN_URL = "https://www.linkedin.com/oauth/v2/accessToken"
ACCOUNT_URN_PREFIX = "urn:li:sponsoredAccount:"
ACTIVE = "ACTIVE"
REFRESH_CREDENTIALS = ("client_id", "client_secret", "refresh_token")

# Every field of the AdSegment schema. The finder returns whole objects (no projection needed); a field
# LinkedIn adds later lands in ht_raw and is reported as drift.
FIELDS: tuple[ApiField, ...] = (
    ApiField("id", T.INTEGER, "Ad segment id (long)."),
    ApiField("name", T.STRING),
    ApiField("description", T.STRING),
    ApiField("account", T.STRING, "urn:li:sponsoredAccount:{id} that owns the segment."),
    ApiField(
        "approximateMemberCount",
        T.INTEGER,
        "Approximate members (privacy-protected); absent while the segment is still building.",
    ),
    ApiField("status", T.STRING, "BUILDING, UPDATING, READY, ARCHIVED, EXPIRED, FAILED, ..."),
    ApiField("type", T.STRING, "BULK, RETARGETING, MARKET_AUTOMATION, LOOKALIKE, ..."),
    ApiField("created", T.JSON, "{actor, time}; time in epoch milliseconds."),
    ApiField("lastModified", T.JSON, "{actor, time}; time in epoch milliseconds."),
    ApiField("versionTag", T.STRING),
)

# Rest.li 2.0: the structure below stays literal; values inside it are percent-encoded.
ACTIVE_ACCOUNTS_SEARCH = f"(status:(values:List({ACTIVE})))"


def restli_value(value: str) -> str:
    """Percent-encode one value so its ``:`` ``(`` ``,`` cannot be read as Rest.li structure."""
    return quote(value, safe="")


def _query(params: Sequence[tuple[str, str]]) -> str:
    # Built by hand: httpx's params= would percent-encode the Rest.li parentheses, which LinkedIn rejects.
    return "&".join(f"{name}={value}" for name, value in params)


# --- errors -------------------------------------------------------------------------------------------------


def classify(response: httpx.Response, body: Any) -> Verdict | None:
    """Read LinkedIn's ``{status, serviceErrorCode, code, message}``; None for a success."""
    status = response.status_code
    if status < 400:
        return None
    error = body if isinstance(body, Mapping) else {}
    detail = _describe_error(status, error)
    if status == 429:
        if "DAY limit" in str(error.get("message", "")):
            return Throttled(
                f"{detail}; LinkedIn's daily limits reset at 00:00 UTC", _seconds_to_utc_midnight(response)
            )
        return Throttled(detail, retry_after_seconds(response))
    if status == 401:
        return AuthFailed(
            f"{detail}. The access token is invalid, expired (they last 60 days) or revoked: configure "
            "client_id, client_secret and refresh_token so it is refreshed, or authorise again and "
            "update the secrets"
        )
    if status == 403:
        return Refused(
            f"{detail}. The member who authorised the app needs a role on the ad account (ACCOUNT_BILLING_ADMIN, "
            "ACCOUNT_MANAGER, CAMPAIGN_MANAGER, CREATIVE_MANAGER or VIEWER) and the token needs the r_ads "
            "(or rw_ads) scope; grant them, authorise again and update the secrets"
        )
    if status >= 500:
        return Transient(detail)
    if error.get("code") in ("NONEXISTENT_VERSION", "VERSION_MISSING"):
        return Fatal(
            f"{detail}. LinkedIn-Version {LINKEDIN_VERSION} is no longer served: update LINKEDIN_VERSION"
        )
    return Fatal(detail)


def _describe_error(status: int, error: Mapping[str, Any]) -> str:
    parts = [f"HTTP {status}"]
    if error.get("code"):
        parts.append(str(error["code"]))
    if error.get("serviceErrorCode") is not None:
        parts.append(f"serviceErrorCode {error['serviceErrorCode']}")
    return f"{', '.join(parts)}: {error.get('message', 'no message')}"


def _seconds_to_utc_midnight(response: httpx.Response) -> float:
    """Time until the next 00:00 UTC, by the server's Date header (our clock if it has none)."""
    now = dt.datetime.now(dt.UTC)
    header = response.headers.get("date")
    if header:
        with contextlib.suppress(TypeError, ValueError):
            now = email.utils.parsedate_to_datetime(header).astimezone(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    return max(1.0, (midnight - now).total_seconds())


# --- client -------------------------------------------------------------------------------------------------


class LinkedInClient:
    def __init__(self, settings: ClientSettings, session: ApiSession) -> None:
        self._settings = settings
        self._session = session
        self._root = f"{settings.base_url.rstrip('/')}/rest"

    def discover_accounts(self) -> list[AdAccount]:
        """Search ACTIVE ad accounts, following ``metadata.nextPageToken`` until it is absent.

        LinkedIn filters by the search; a non-ACTIVE element is still skipped, since only active
        accounts have audiences worth snapshotting.
        """
        what = "discovering ad accounts"
        accounts: list[AdAccount] = []
        seen_tokens: set[str] = set()
        token: str | None = None
        page_number = 0
        while True:
            page_number += 1
            params = [
                ("q", "search"),
                ("search", ACTIVE_ACCOUNTS_SEARCH),
                ("pageSize", str(self._settings.page_size)),
            ]
            if token is not None:
                params.append(("pageToken", restli_value(token)))
            body = self._get("adAccounts", params, what)
            for element in _elements(body, what, page_number):
                account_id = _account_id(element.get("id"), what)
                name = element.get("name")
                status = element.get("status")
                accounts.append(
                    AdAccount(
                        account_id,
                        name if isinstance(name, str) else None,
                        status if isinstance(status, str) else None,
                        status == ACTIVE,
                    )
                )
            token = _next_page_token(body, what, page_number)
            if token is None:
                return accounts
            if token in seen_tokens:
                raise BadResponse(f"{what}: paging repeated a pageToken at page {page_number}")
            seen_tokens.add(token)

    def audience_pages(self, account: AdAccount) -> Iterator[list[Audience]]:
        """Page ``adSegments?q=accounts`` by start/count until a page is shorter than its count.

        A full last page therefore costs one more (empty) request, as the docs prescribe. The count
        LinkedIn echoes in ``paging.count`` wins over ours if it is smaller, so a server-side cap is not
        mistaken for the end.
        """
        what = f"listing ad segments of account {account.id}"
        accounts = f"List({restli_value(ACCOUNT_URN_PREFIX + account.id)})"
        count = self._settings.page_size
        start = 0
        previous_ids: list[Any] | None = None
        page_number = 0
        while True:
            page_number += 1
            params = [("q", "accounts"), ("accounts", accounts), ("start", str(start)), ("count", str(count))]
            body = self._get("adSegments", params, what)
            elements = _elements(body, what, page_number)
            page_count = _checked_paging(body, start, what, page_number) or count
            ids = [element.get("id") for element in elements]
            if elements and ids == previous_ids:
                raise BadResponse(
                    f"{what}: page {page_number} repeats the previous page; paging is not advancing"
                )
            yield elements
            if len(elements) < min(count, page_count):
                return
            previous_ids = ids
            start += len(elements)

    def _get(self, resource: str, params: Sequence[tuple[str, str]], what: str) -> Mapping[str, Any]:
        url = f"{self._root}/{resource}?{_query(params)}"
        return require_mapping(self._session.request_json("GET", url, what=what, headers=API_HEADERS), what)


def _elements(body: Mapping[str, Any], what: str, page_number: int) -> list[dict[str, Any]]:
    return require_object_list(body.get("elements"), "'elements'", f"{what}: page {page_number}")


def _account_id(value: Any, what: str) -> str:
    """An ad account id as digits, whether LinkedIn sends a number, a numeric string or the URN."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.removeprefix(ACCOUNT_URN_PREFIX).isdigit():
        return value.removeprefix(ACCOUNT_URN_PREFIX)
    raise BadResponse(f"{what}: an ad account has no numeric 'id' (got {type(value).__name__})")


def _next_page_token(body: Mapping[str, Any], what: str, page_number: int) -> str | None:
    metadata = body.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise BadResponse(f"{what}: page {page_number} has a 'metadata' that is not an object")
    token = metadata.get("nextPageToken")
    if token is None or token == "":
        return None
    if not isinstance(token, str):
        raise BadResponse(f"{what}: page {page_number} has a nextPageToken that is not a string")
    return token


def _checked_paging(body: Mapping[str, Any], start: int, what: str, page_number: int) -> int | None:
    """Validate ``paging`` against the page we asked for; return the count LinkedIn applied, if it says."""
    paging = body.get("paging")
    if paging is None:
        return None
    if not isinstance(paging, Mapping):
        raise BadResponse(f"{what}: page {page_number} has a 'paging' that is not an object")
    echoed_start, echoed_count = paging.get("start"), paging.get("count")
    for name, value in (("start", echoed_start), ("count", echoed_count)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise BadResponse(f"{what}: page {page_number} has a paging.{name} that is not a count")
    if echoed_start is not None and echoed_start != start:
        raise BadResponse(
            f"{what}: asked for start={start} but page {page_number} starts at {echoed_start}; "
            "paging is not advancing"
        )
    return echoed_count or None


def auth(context: AuthContext) -> httpx.Auth:
    """Refresh-token grant when client credentials are given (tokens then never lapse), else a fixed token."""
    credentials = context.credentials
    if all(credentials.get(name) for name in REFRESH_CREDENTIALS):
        grant = RefreshGrant(
            token_url=context.token_url or DEFAULT_TOKEN_URL,
            client_id=credentials["client_id"],
            client_secret=credentials["client_secret"],
            refresh_token=credentials["refresh_token"],
        )
        return RefreshingBearerAuth(grant, remember_secret=context.remember_secret)
    return BearerAuth(credentials["access_token"])


PLATFORM = Platform(
    slug="linkedin",
    title="LinkedIn",
    default_base_url="https://api.linkedin.com",
    credential_sets=(frozenset({"access_token"}), frozenset(REFRESH_CREDENTIALS)),
    optional_credentials=frozenset(),
    fields=FIELDS,
    audience_id_field="id",
    v1=V1Mapping(audience_id="id", audience_name="name", audience_size="approximate_member_count"),
    v2=V2Mapping(audience_type=Words("type"), audience_status=Words("status")),
    default_page_size=100,
    max_page_size=500,
    connect=LinkedInClient,
    auth=auth,
    classify=classify,
    default_token_url=DEFAULT_TOKEN_URL,
    account_id=IdForm(prefixes=(ACCOUNT_URN_PREFIX,)),
    audience_id=IdForm(prefixes=("urn:li:adSegment:",)),
)
