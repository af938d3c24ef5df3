"""Meta (Facebook) Marketing API: ad-account discovery and custom audiences.

Facts and sources: shared/reference/ad_platform_apis.md §1 — Graph API "Ad Account Customaudiences",
"Custom Audience" reference, "Paginated Results", "Handling Errors", and the rate-limiting pages;
field names and types from facebook/facebook-python-business-sdk ``adobjects/customaudience.py``.
"""

from __future__ import annotations

import json
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
    IdForm,
    Platform,
    require_object_list,
)
from audit_assets.platforms.http import (
    ApiSession,
    AuthFailed,
    BearerAuth,
    Fatal,
    Refused,
    Shrink,
    Throttled,
    Transient,
    Verdict,
)
from audit_assets.platforms.paging import follow_cursor
from audit_assets.views import V1Mapping, V2Mapping, Words

GRAPH_API_VERSION = "v25.0"
ACTIVE_ACCOUNT_STATUS = 1
# Ad Account reference, account_status.
ACCOUNT_STATUS_NAMES = {
    1: "ACTIVE", 2: "DISABLED", 3: "UNSETTLED", 7: "PENDING_RISK_REVIEW", 8: "PENDING_SETTLEMENT",
    9: "IN_GRACE_PERIOD", 100: "PENDING_CLOSURE", 101: "CLOSED", 201: "ANY_ACTIVE", 202: "ANY_CLOSED",
}  # fmt: skip

# Every readable field of a Custom Audience (the SDK's _field_types, readable part). Graph returns
# only the ids unless fields are named, so the list is the contract of what we keep.
FIELDS: tuple[ApiField, ...] = (
    ApiField("id", T.STRING),
    ApiField("account_id", T.STRING),
    ApiField("name", T.STRING),
    ApiField("description", T.STRING),
    ApiField("approximate_count_lower_bound", T.INTEGER, "Lower bound of the size; -1 when unavailable."),
    ApiField("approximate_count_upper_bound", T.INTEGER, "Upper bound of the size; -1 when unavailable."),
    ApiField("subtype", T.STRING),
    ApiField("customer_file_source", T.STRING),
    ApiField("data_source", T.JSON),
    ApiField("data_source_types", T.STRING),
    ApiField("datafile_custom_audience_uploading_status", T.STRING),
    ApiField("delete_time", T.INTEGER, "Unix seconds."),
    ApiField("delivery_status", T.JSON, "{code, description}; 200 = ready for use."),
    ApiField("excluded_custom_audiences", T.JSON),
    ApiField("external_event_source", T.JSON),
    ApiField("household_audience", T.INTEGER),
    ApiField("included_custom_audiences", T.JSON),
    ApiField("is_eligible_for_sac_campaigns", T.BOOLEAN),
    ApiField("is_household", T.BOOLEAN),
    ApiField("is_snapshot", T.BOOLEAN),
    ApiField("is_value_based", T.BOOLEAN),
    ApiField("lookalike_audience_ids", T.JSON),
    ApiField("lookalike_spec", T.JSON),
    ApiField("operation_status", T.JSON, "{code, description}; 200 = normal."),
    ApiField("opt_out_link", T.STRING),
    ApiField("owner_business", T.JSON),
    ApiField("page_deletion_marked_delete_time", T.INTEGER, "Unix seconds."),
    ApiField("permission_for_actions", T.JSON),
    ApiField("pixel_id", T.STRING),
    ApiField("regulated_audience_spec", T.JSON),
    ApiField("retention_days", T.INTEGER),
    ApiField("rev_share_policy_id", T.INTEGER),
    ApiField("rule", T.STRING),
    ApiField("rule_aggregation", T.STRING),
    ApiField("rule_v2", T.STRING),
    ApiField("seed_audience", T.INTEGER),
    ApiField("sharing_status", T.JSON),
    ApiField("time_content_updated", T.INTEGER, "Unix seconds; customer-list audiences only."),
    ApiField("time_created", T.INTEGER, "Unix seconds."),
    ApiField("time_updated", T.INTEGER, "Unix seconds."),
)
FIELD_LIST = ",".join(f.api_name for f in FIELDS)
ACCOUNT_FIELDS = "account_id,account_status,name"

# Graph error codes (Handling Errors; Marketing API rate limiting).
INVALID_TOKEN = 190
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
TRANSIENT_CODES = frozenset({1, 2})  # "API Unknown" / "API Service": documented as temporary
PERMISSION_CODES = frozenset({10, *range(200, 300)})  # "permission denied" / "permissions error"
# Graph's answer to a page too heavy to build (HTTP 500, code 1); singer-io/tap-facebook#65 and
# airbytehq/airbyte#38025 ask again with a smaller limit, as we do (paging.follow_cursor).
TOO_MUCH_DATA = "reduce the amount of data"
MISSING_OBJECT_SUBCODE = 33  # code 100: "does not exist, cannot be loaded due to missing permissions"


def classify(response: httpx.Response, body: Any) -> Verdict | None:
    """Read a Graph error body; None leaves the decision to the shared HTTP policy."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None
    code = error.get("code")
    detail = _describe_error(response.status_code, error)
    if code == INVALID_TOKEN:
        return AuthFailed(
            f"{detail}. The access token is invalid or expired; Meta tokens cannot be refreshed, so "
            "re-authorise (issue a new system-user or long-lived token) and update the secret"
        )
    if code == 1 and TOO_MUCH_DATA in str(error.get("message", "")):
        return Shrink(detail)
    if code in THROTTLE_CODES or response.status_code == 429:
        return Throttled(detail, _regain_access_seconds(response.headers))
    if code in TRANSIENT_CODES or error.get("is_transient") is True or response.status_code >= 500:
        return Transient(detail)
    if code in PERMISSION_CODES or (code == 100 and error.get("error_subcode") == MISSING_OBJECT_SUBCODE):
        return Refused(
            f"{detail}. The token's user may not read this object (no ads_read role on the ad account, or it "
            "was closed or unshared since discovery)"
        )
    return Fatal(detail)


def _describe_error(status: int, error: Mapping[str, Any]) -> str:
    parts = [f"HTTP {status}, Graph error {error.get('code')}"]
    if error.get("error_subcode") is not None:
        parts.append(f"subcode {error.get('error_subcode')}")
    text = f"{', '.join(parts)}: {error.get('message', 'no message')}"
    if error.get("fbtrace_id"):
        text += f" (fbtrace_id {error['fbtrace_id']})"
    return text


def _regain_access_seconds(headers: httpx.Headers) -> float | None:
    """Longest ``estimated_time_to_regain_access`` (minutes) in X-Business-Use-Case-Usage, in seconds."""
    raw = headers.get("x-business-use-case-usage")
    if not raw:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in (usage.values() if isinstance(usage, Mapping) else ())
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, Mapping)
    ]
    known = [m for m in minutes if isinstance(m, int | float) and not isinstance(m, bool)]
    return max(known) * 60.0 if known else None


class MetaClient:
    def __init__(self, settings: ClientSettings, session: ApiSession) -> None:
        self._settings = settings
        self._session = session
        self._root = f"{settings.base_url.rstrip('/')}/{GRAPH_API_VERSION}"

    def discover_accounts(self) -> list[AdAccount]:
        accounts = []
        for page in self._pages(
            f"{self._root}/me/adaccounts", {"fields": ACCOUNT_FIELDS}, "discovering ad accounts"
        ):
            for item in page:
                account_id = str(item.get("account_id") or str(item.get("id", "")).removeprefix("act_"))
                if not account_id:
                    raise BadResponse("discovering ad accounts: an account has neither account_id nor id")
                code = item.get("account_status")
                status = None if code is None else ACCOUNT_STATUS_NAMES.get(code, f"account_status {code}")
                accounts.append(
                    AdAccount(account_id, item.get("name"), status, code == ACTIVE_ACCOUNT_STATUS)
                )
        return accounts

    def audience_pages(self, account: AdAccount) -> Iterator[list[Audience]]:
        url = f"{self._root}/act_{account.id}/customaudiences"
        yield from self._pages(
            url, {"fields": FIELD_LIST}, f"listing custom audiences of account {account.id}"
        )

    def _pages(self, url: str, params: dict[str, Any], what: str) -> Iterator[list[Audience]]:
        """Follow Graph cursor paging until ``paging.next`` is absent.

        An empty page that still has ``next`` is not the end. We page with ``paging.cursors.after``
        on our own URL rather than fetching ``next`` itself, so every request goes to the configured
        base_url and never carries anything the platform put into a URL.
        """
        params = {**params, "limit": self._settings.page_size}
        return follow_cursor(
            self._session, url, params, cursor_param="after", read=_read_page, what=what, size_param="limit"
        )


def _read_page(body: Mapping[str, Any], where: str) -> tuple[list[Audience], str | None]:
    data = require_object_list(body.get("data"), "'data'", where)
    paging = body.get("paging")
    if not isinstance(paging, Mapping) or not paging.get("next"):
        return data, None
    cursor = _after_cursor(paging)
    if cursor is None:
        raise BadResponse(f"{where} has paging.next but no after cursor")
    return data, cursor


def _after_cursor(paging: Mapping[str, Any]) -> str | None:
    cursors = paging.get("cursors")
    if isinstance(cursors, Mapping) and isinstance(cursors.get("after"), str) and cursors["after"]:
        return cursors["after"]
    after = httpx.URL(str(paging["next"])).params.get("after")
    return after or None


def auth(context: AuthContext) -> httpx.Auth:
    return BearerAuth(context.credentials["access_token"])


PLATFORM = Platform(
    slug="meta",
    title="Meta",
    default_base_url="https://graph.facebook.com",
    credential_sets=(frozenset({"access_token"}),),
    optional_credentials=frozenset(),
    fields=FIELDS,
    audience_id_field="id",
    v1=V1Mapping(
        audience_id="id",
        audience_name="name",
        audience_size="approximate_count_lower_bound",
        size_null_values=(-1,),
    ),
    v2=V2Mapping(
        bounds=("approximate_count_lower_bound", "approximate_count_upper_bound"),
        audience_type=Words("subtype"),
        audience_status=Words("delivery_status", json_key="description"),
    ),
    default_page_size=100,
    max_page_size=500,
    connect=MetaClient,
    auth=auth,
    classify=classify,
    account_id=IdForm(prefixes=("act_",)),
)
