"""X (Twitter) Ads API: ad-account discovery and custom audiences, over OAuth 1.0a signed requests.

Facts and sources (shared/reference/ad_platform_apis.md §7, checked against the docs):
- Host and version: ``https://ads-api.x.com/12/...`` (docs.x.com/x-ads-api/fundamentals/versioning lists
  12.0 as the newest version; the accounts and custom-audience references give ``ads-api.x.com/12``).
- ``GET accounts`` (docs.x.com/x-ads-api/campaign-management/reference): ``data[]`` of accounts with
  ``id``, ``name``, ``approval_status`` ("ACCEPTED", ...) and ``deleted``; deleted accounts are hidden
  unless ``with_deleted=true``. We take an account as active when it is not deleted and its
  approval_status is ACCEPTED (fixture: xdevplatform/twitter-python-ads-sdk tests/fixtures/accounts_all.json).
- ``GET accounts/{id}/custom_audiences`` (developer.x.com .../audiences/api-reference/custom-audiences):
  ``count`` 1..1000, ``cursor``; fields from the FlycatcherAds C# client's CustomAudience model, the
  singer-io/tap-twitter-ads tailored_audiences schema and the SDK fixture
  tests/fixtures/custom_audiences_all.json, where ``audience_size`` is null (processing or too small).
- Paging (docs.x.com/x-ads-api/fundamentals/pagination): ``next_cursor`` is an opaque string, null when
  a page holds fewer than ``count`` entities; so a full last page is followed by one empty page.
- Errors (docs.x.com/x-ads-api/fundamentals/error-codes-and-responses): non-2xx with
  ``{"errors": [{"code": "CAPS_CASE", "message": ...}], "request": {...}}``; a bad signature is HTTP 401
  UNAUTHORIZED_ACCESS "This request is not properly authenticated" (xdevplatform/twitter-python-ads-sdk
  issue #111, sprinklr-inc/twitter4j-ads issue #81); an app without Ads API access gets 403
  UNAUTHORIZED_CLIENT_APPLICATION (twitter/twurl issue #66).
- Rate limits (docs.x.com/x-ads-api/fundamentals/rate-limiting): HTTP 429; ``x-rate-limit-*`` per user
  token and ``x-account-rate-limit-*`` per ad account, ``*-reset`` in Unix epoch seconds; the account
  level wins where present.
- Auth: OAuth 1.0a HMAC-SHA1 (RFC 5849) with the oauthlib signer; X's "Creating a signature" page
  (docs.x.com/fundamentals/authentication/oauth-1-0a/creating-a-signature) is the test vector.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from oauthlib.common import generate_nonce
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_AUTH_HEADER, Client

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
    Fatal,
    Refused,
    Throttled,
    Transient,
    Verdict,
    header_number,
)
from audit_assets.platforms.paging import follow_cursor
from audit_assets.views import V1Mapping, V2Mapping, Words

API_VERSION = "12"
ACTIVE_APPROVAL_STATUS = "ACCEPTED"  # others seen: UNDER_REVIEW, REJECTED; deleted accounts never count
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

# Every top-level field of a custom audience object. Timestamps are ISO-8601 text, kept as sent.
FIELDS: tuple[ApiField, ...] = (
    ApiField("id", T.STRING, "Base-36 custom audience id."),
    ApiField("name", T.STRING),
    ApiField("description", T.STRING),
    ApiField("audience_size", T.INTEGER, "Matched users; null while processing or when too small."),
    ApiField("audience_type", T.STRING, "WEB, CRM, MOBILE, FLEXIBLE, ..."),
    ApiField("targetable", T.BOOLEAN),
    ApiField("targetable_types", T.JSON, "List, e.g. [CRM, EXCLUDED_CRM]."),
    ApiField("reasons_not_targetable", T.JSON, "List, e.g. [TOO_SMALL]."),
    ApiField("partner_source", T.STRING),
    ApiField("permission_level", T.STRING),
    ApiField("owner_account_id", T.STRING),
    ApiField("is_owner", T.BOOLEAN),
    ApiField("created_at", T.STRING, "ISO-8601 UTC."),
    ApiField("updated_at", T.STRING, "ISO-8601 UTC."),
    ApiField("deleted", T.BOOLEAN),
)

REAUTHORISE = (
    "X rejected the OAuth 1.0a signature. Check consumer_key and consumer_secret (the app's API key and "
    "secret) and access_token and access_token_secret (the user's tokens, regenerated whenever the app's "
    "keys or permissions change), update the secrets, and make sure this machine's clock is right"
)
NO_ADS_API_ACCESS = (
    "the X app behind consumer_key is not approved for the Ads API; apply for Ads API access for that app "
    "(developer portal) or use the keys of an app that has it"
)
NO_ACCOUNT_ACCESS = (
    "the user behind access_token cannot read this ad account; grant that user access in X Ads (or use "
    "its tokens) and update the secrets"
)


def classify(response: httpx.Response, body: Any) -> Verdict | None:
    """Read X's status and ``errors`` body; None leaves a success to the shared HTTP policy."""
    status = response.status_code
    if status < 400:
        return None
    detail = _describe_errors(status, body)
    if status == 429:
        return Throttled(detail, _wait_until_reset(response.headers))
    if status == 401:
        return AuthFailed(f"{detail}. {REAUTHORISE}")
    if status == 403:
        if "UNAUTHORIZED_CLIENT_APPLICATION" in _codes(body):  # the app itself: every call would fail
            return AuthFailed(f"{detail}; {NO_ADS_API_ACCESS}")
        return Refused(f"{detail}; {NO_ACCOUNT_ACCESS}")  # one account this user may not read
    if status >= 500:
        return Transient(detail)
    return Fatal(detail)


def _codes(body: Any) -> list[str]:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, list):
        return []
    return [str(e.get("code")) for e in errors if isinstance(e, Mapping)]


def _describe_errors(status: int, body: Any) -> str:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, list) or not errors:
        return f"HTTP {status}"
    parts = [
        f"{e.get('code')}: {e.get('message', 'no message')}" if isinstance(e, Mapping) else str(e)
        for e in errors
    ]
    return f"HTTP {status}, {'; '.join(parts)}"


def _wait_until_reset(headers: httpx.Headers) -> float | None:
    """Seconds until the exhausted rate limit resets, measured on X's own clock (its Date header).

    Both levels may be present; the one with nothing remaining is the one we hit, and the account
    level is preferred otherwise, as the rate-limiting page says.
    """
    levels = []
    for prefix in ("x-account-rate-limit", "x-rate-limit"):
        reset = header_number(headers, f"{prefix}-reset")
        if reset is not None:
            levels.append((reset, header_number(headers, f"{prefix}-remaining")))
    if not levels:
        return None
    exhausted = [reset for reset, remaining in levels if remaining == 0]
    reset = max(exhausted) if exhausted else levels[0][0]
    return max(0.0, reset - _server_now(headers))


def _server_now(headers: httpx.Headers) -> float:
    """X's clock from its Date header, so our clock's skew does not change the wait; ours without one."""
    for value in headers.get_list("date"):
        try:
            return email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            continue
    return time.time()


class OAuth1Auth(httpx.Auth):
    """Signs every request (method, URL, query and form body) with OAuth 1.0a HMAC-SHA1, RFC 5849.

    The secrets only ever feed the signature; the Authorization header carries the two public keys,
    a fresh nonce and timestamp, and the signature. Each send is signed anew, so a retried request
    never reuses a nonce.
    """

    requires_request_body = True

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        access_token: str,
        access_token_secret: str,
        *,
        nonce: Callable[[], str] = generate_nonce,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = (consumer_key, consumer_secret, access_token, access_token_secret)
        self._nonce = nonce
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        consumer_key, consumer_secret, access_token, access_token_secret = self._keys
        signer = Client(
            consumer_key,
            client_secret=consumer_secret,
            resource_owner_key=access_token,
            resource_owner_secret=access_token_secret,
            signature_method=SIGNATURE_HMAC_SHA1,
            signature_type=SIGNATURE_TYPE_AUTH_HEADER,
            nonce=self._nonce(),
            timestamp=str(int(self._clock())),
        )
        content_type = request.headers.get("content-type", "")
        form = content_type.split(";")[0].strip() == FORM_CONTENT_TYPE and bool(request.content)
        _, headers, _ = signer.sign(
            str(request.url),
            http_method=request.method,
            body=request.content.decode() if form else None,
            headers={"Content-Type": FORM_CONTENT_TYPE} if form else {},
        )
        request.headers["Authorization"] = headers["Authorization"]
        yield request


class XAdsClient:
    def __init__(self, settings: ClientSettings, session: ApiSession) -> None:
        self._settings = settings
        self._session = session
        self._root = f"{settings.base_url.rstrip('/')}/{API_VERSION}"

    def discover_accounts(self) -> list[AdAccount]:
        accounts = []
        what = "discovering ad accounts"
        for page in self._pages(f"{self._root}/accounts", what):
            for item in page:
                account_id, status, deleted = item.get("id"), item.get("approval_status"), item.get("deleted")
                if not isinstance(account_id, str) or not account_id:
                    raise BadResponse(f"{what}: an account has no string 'id'")
                if not isinstance(status, str) or not isinstance(deleted, bool):
                    raise BadResponse(
                        f"{what}: account {account_id} lacks a string 'approval_status' or a boolean 'deleted'"
                    )
                name = item.get("name")
                accounts.append(
                    AdAccount(
                        account_id,
                        name if isinstance(name, str) else None,
                        f"{status}, deleted" if deleted else status,
                        status == ACTIVE_APPROVAL_STATUS and not deleted,
                    )
                )
        return accounts

    def audience_pages(self, account: AdAccount) -> Iterator[list[Audience]]:
        url = f"{self._root}/accounts/{quote(account.id, safe='')}/custom_audiences"
        yield from self._pages(url, f"listing custom audiences of account {account.id}")

    def _pages(self, url: str, what: str) -> Iterator[list[Audience]]:
        """Follow ``cursor`` / ``next_cursor`` until ``next_cursor`` is null.

        A page may be empty and still not be the last (a full page always carries a cursor), and
        only null ends a list.
        """
        params = {"count": self._settings.page_size}
        return follow_cursor(self._session, url, params, cursor_param="cursor", read=_read_page, what=what)


def _read_page(body: Mapping[str, Any], where: str) -> tuple[list[Audience], str | None]:
    data = require_object_list(body.get("data"), "'data'", where)
    if "next_cursor" not in body:
        raise BadResponse(f"{where} has no 'next_cursor'")
    cursor = body["next_cursor"]
    if cursor is not None and (not isinstance(cursor, str) or not cursor):
        raise BadResponse(f"{where} has a 'next_cursor' that is not a string")
    return data, cursor


def auth(context: AuthContext) -> httpx.Auth:
    c = context.credentials
    return OAuth1Auth(c["consumer_key"], c["consumer_secret"], c["access_token"], c["access_token_secret"])


PLATFORM = Platform(
    slug="x",
    title="X",
    default_base_url="https://ads-api.x.com",
    credential_sets=(frozenset({"consumer_key", "consumer_secret", "access_token", "access_token_secret"}),),
    optional_credentials=frozenset(),
    fields=FIELDS,
    audience_id_field="id",
    v1=V1Mapping(audience_id="id", audience_name="name", audience_size="audience_size"),
    v2=V2Mapping(
        audience_type=Words("audience_type"),
        audience_status=Words("targetable", if_true="TARGETABLE", if_false="NOT_TARGETABLE"),
    ),
    default_page_size=1000,
    max_page_size=1000,
    connect=XAdsClient,
    auth=auth,
    classify=classify,
)
