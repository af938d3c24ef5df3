"""TikTok API for Business (Marketing API v1.3): advertiser discovery and custom audiences.

Facts and sources (shared/reference/ad_platform_apis.md §4 and §10, checked against):
- tiktok/tiktok-business-api-sdk, the official SDK: ``python_sdk/docs/AuthenticationApi.md`` and
  ``authentication_api.py`` (``GET /open_api/v1.3/oauth2/advertiser/get/`` takes ``app_id`` and ``secret``
  as query parameters and the token in the ``Access-Token`` header; doc
  https://business-api.tiktok.com/portal/docs?id=1738455508553729), ``python_sdk/docs/AccountManagementApi.md``
  (``GET /open_api/v1.3/advertiser/info/``, doc id=1739593083610113; list parameters travel as JSON arrays,
  ``api_client.py`` ``parameters_to_tuples``), ``yml_files/dmp_custom_audience_list.yml``
  (``GET /open_api/v1.3/dmp/custom_audience/list/``, ``page`` >= 1, ``page_size`` 1-100 default 10,
  ``data.list`` + ``data.page_info``; doc id=1739940506015746) and the ``{code, message, request_id, data}``
  envelope whose ``code`` is the error (Appendix - Return Codes, doc id=1737172488964097);
- return codes as listed from that appendix in api-evangelist/tiktok-ads ``errors/tiktok-ads-error-codes.yml``
  (40100/40016/40133 rate limits, 4010x/40113 authentication, 5xxxx/60001 service errors);
- audience fields: airbytehq/airbyte
  ``airbyte-integrations/connectors/source-tiktok-marketing/source_tiktok_marketing/schemas/audiences.json``,
  and Airbyte's ``manifest.yaml`` (40100 is a rate limit; any other non-zero code fails) and
  ``unit_tests/integration/test_service_error_retry.py`` (a 50000 in HTTP 200 is retried).

Active advertisers: ``oauth2/advertiser/get`` lists every advertiser that authorised the app, whatever
its state, so their ``status`` is read from ``advertiser/info`` (at most 100 ids per call) and only
``STATUS_ENABLE`` counts as active; an advertiser that ``advertiser/info`` does not return is not active.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator, Mapping
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
    require_mapping,
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
)
from audit_assets.views import V1Mapping, V2Mapping, Words

API_PREFIX = "open_api/v1.3"
ACTIVE_STATUS = "STATUS_ENABLE"
INFO_BATCH = 100  # advertiser/info answers 40011 "too many IDs" beyond this
INFO_FIELDS = json.dumps(["advertiser_id", "name", "status"])

# Every field of an audience in dmp/custom_audience/list (Airbyte's audiences schema).
FIELDS: tuple[ApiField, ...] = (
    ApiField("audience_id", T.STRING),
    ApiField("name", T.STRING),
    ApiField("audience_type", T.STRING, "e.g. Customer File, Website Traffic, Lookalike Audience."),
    ApiField("cover_num", T.INTEGER, "Estimated audience size; null while TikTok is still calculating it."),
    ApiField("is_valid", T.BOOLEAN, "Whether the audience can be used for targeting."),
    ApiField("is_expiring", T.BOOLEAN),
    ApiField("expired_time", T.STRING, "'YYYY-MM-DD HH:MM:SS' as TikTok sends it."),
    ApiField("create_time", T.STRING, "'YYYY-MM-DD HH:MM:SS' as TikTok sends it."),
    ApiField("shared", T.BOOLEAN, "Shared with this advertiser by another one."),
    ApiField("is_creator", T.BOOLEAN, "Whether this advertiser owns the audience."),
    ApiField("calculate_type", T.STRING, "Encryption type of customer-file audiences."),
)

# Return codes (HTTP 200 with a non-zero ``code``).
THROTTLE_CODES = frozenset({40016, 40100, 40133})  # app-level, app-level, advertiser-level QPS limits
NO_PERMISSION = 40001  # no permission to operate this advertiser: one advertiser, not the credentials
AUTH_CODES = frozenset(
    {
        40101,  # app_id and secret do not match
        40102,  # access token expired
        40104,  # access token missing
        40105,  # access token invalid or revoked
        40106,  # the user behind the token is no longer valid
        40113,  # app blocked, or app_id does not belong to the token
    }
)
TRANSIENT_CODES = frozenset({50000, 50002, 51305, 60001})  # system errors and maintenance


def classify(response: httpx.Response, body: Any) -> Verdict | None:
    """Read TikTok's ``code``; None leaves the decision to the shared HTTP policy."""
    code = body.get("code") if isinstance(body, Mapping) else None
    if not isinstance(code, int) or isinstance(code, bool) or code == 0:
        return None
    detail = _describe_error(response.status_code, body)
    if code in THROTTLE_CODES:
        return Throttled(detail)  # TikTok gives no estimate of when the limit resets
    if code == NO_PERMISSION:
        return Refused(
            f"{detail}. The advertiser withdrew the app's authorisation, or never gave it: authorise the "
            "app for this advertiser again (TikTok API for Business authorisation link)"
        )
    if code in AUTH_CODES:
        return AuthFailed(
            f"{detail}. TikTok refused the app or its access token: re-authorise the app for the "
            "advertiser(s) (TikTok API for Business authorisation link) to get a new long-term access "
            "token, check app_id and secret, and update the secrets"
        )
    if code in TRANSIENT_CODES or response.status_code >= 500:
        return Transient(detail)
    return Fatal(detail)


def _describe_error(status: int, body: Mapping[str, Any]) -> str:
    text = f"HTTP {status}, TikTok code {body.get('code')}: {body.get('message') or 'no message'}"
    if body.get("request_id"):
        text += f" (request_id {body['request_id']})"
    return text


class AccessTokenAuth(httpx.Auth):
    """TikTok wants the token in its own ``Access-Token`` header, not ``Authorization: Bearer``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Access-Token"] = self._token
        yield request


def _data(body: Any, what: str) -> Mapping[str, Any]:
    """The ``data`` of a successful envelope; errors were already classified by ``classify``."""
    envelope = require_mapping(body, what)
    code = envelope.get("code")
    if type(code) is not int or code != 0:
        raise BadResponse(f"{what}: the response has no numeric 'code' 0 (got {code!r})")
    return require_mapping(envelope.get("data"), f"{what}: 'data'")


def _object_list(data: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    return require_object_list(data.get("list"), "'data.list'", what)


def _count(page_info: Mapping[str, Any], key: str, what: str, minimum: int) -> int:
    value = page_info.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BadResponse(f"{what}: page_info.{key} is {value!r}, not an integer >= {minimum}")
    return value


class TikTokClient:
    def __init__(self, settings: ClientSettings, session: ApiSession) -> None:
        self._settings = settings
        self._session = session
        self._root = f"{settings.base_url.rstrip('/')}/{API_PREFIX}"

    def discover_accounts(self) -> list[AdAccount]:
        authorised = self._authorised_advertisers()
        ids = list(authorised)
        statuses: dict[str, tuple[str | None, Any]] = {}
        for start in range(0, len(ids), INFO_BATCH):
            batch = ids[start : start + INFO_BATCH]
            what = f"reading the status of {len(batch)} advertiser(s)"
            body = self._session.get_json(
                f"{self._root}/advertiser/info/",
                params={"advertiser_ids": json.dumps(batch), "fields": INFO_FIELDS},
                what=what,
            )
            for item in _object_list(_data(body, what), what):
                advertiser_id = item.get("advertiser_id")
                if advertiser_id is None or str(advertiser_id) == "":
                    raise BadResponse(f"{what}: an advertiser has no advertiser_id")
                statuses[str(advertiser_id)] = (item.get("name"), item.get("status"))
        accounts = []
        for advertiser_id, name in authorised.items():
            info_name, status = statuses.get(advertiser_id, (None, None))
            accounts.append(
                AdAccount(
                    advertiser_id,
                    info_name or name,
                    status if isinstance(status, str) else None,
                    status == ACTIVE_STATUS,
                )
            )
        return accounts

    def _authorised_advertisers(self) -> dict[str, str | None]:
        """Every advertiser that authorised the app, in TikTok's order: id -> name.

        The platform allows the app secret only as a query parameter here; ``what`` never names the URL
        and the redactor knows the secret, so it reaches no message or log line.
        """
        what = "discovering the advertisers that authorised the app"
        credentials = self._settings.credentials
        body = self._session.get_json(
            f"{self._root}/oauth2/advertiser/get/",
            params={"app_id": credentials["app_id"], "secret": credentials["secret"]},
            what=what,
        )
        advertisers: dict[str, str | None] = {}
        for item in _object_list(_data(body, what), what):
            advertiser_id = item.get("advertiser_id")
            if advertiser_id is None or str(advertiser_id) == "":
                raise BadResponse(f"{what}: an advertiser has no advertiser_id")
            advertisers[str(advertiser_id)] = item.get("advertiser_name")
        return advertisers

    def audience_pages(self, account: AdAccount) -> Iterator[list[Audience]]:
        """Page 1, 2, ... until ``page_info.total_page`` is reached, checking the totals on every page.

        Page-number paging cannot loop by itself, but a platform that ignores ``page`` or reports totals
        that do not fit its pages would repeat or lose audiences silently, so each of those fails.
        """
        asked = self._settings.page_size
        url = f"{self._root}/dmp/custom_audience/list/"
        previous_ids: list[Any] | None = None
        page = 1
        while True:
            what = f"listing custom audiences of advertiser {account.id} (page {page})"
            body = self._session.get_json(
                url, params={"advertiser_id": account.id, "page": page, "page_size": asked}, what=what
            )
            data = _data(body, what)
            items = _object_list(data, what)
            info = require_mapping(data.get("page_info"), f"{what}: 'data.page_info'")
            echoed_page = _count(info, "page", what, 1)
            total_number = _count(info, "total_number", what, 0)
            total_page = _count(info, "total_page", what, 0)
            # The server's own page size, which may be smaller than asked: every check counts in it.
            page_size = _count(info, "page_size", what, 1) if "page_size" in info else asked
            if echoed_page != page:
                raise BadResponse(f"{what}: the platform answered page {echoed_page} instead")
            if len(items) > page_size:
                raise BadResponse(f"{what}: {len(items)} audiences on a page of {page_size}")
            if items and page > total_page:
                raise BadResponse(f"{what}: audiences on a page beyond total_page {total_page}")
            if total_page * page_size < total_number or (total_page - 1) * page_size >= max(total_number, 1):
                raise BadResponse(
                    f"{what}: inconsistent totals ({total_number} audiences in {total_page} pages of "
                    f"{page_size})"
                )
            ids = [item.get("audience_id") for item in items]
            if ids and ids == previous_ids:
                raise BadResponse(f"{what}: the platform repeated the previous page")
            previous_ids = ids
            yield items
            if page >= total_page:
                return
            page += 1


def auth(context: AuthContext) -> httpx.Auth:
    return AccessTokenAuth(context.credentials["access_token"])


PLATFORM = Platform(
    slug="tiktok",
    title="TikTok",
    default_base_url="https://business-api.tiktok.com",
    credential_sets=(frozenset({"access_token", "app_id", "secret"}),),
    optional_credentials=frozenset(),
    fields=FIELDS,
    audience_id_field="audience_id",
    v1=V1Mapping(audience_id="audience_id", audience_name="name", audience_size="cover_num"),
    v2=V2Mapping(
        audience_type=Words("audience_type"),
        audience_status=Words("is_valid", if_true="VALID", if_false="INVALID"),
    ),
    default_page_size=100,
    max_page_size=100,
    connect=TikTokClient,
    auth=auth,
    classify=classify,
)
