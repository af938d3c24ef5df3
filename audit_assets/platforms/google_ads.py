"""Google Ads API (REST): customer discovery through manager hierarchies, and user lists with their sizes.

Facts and sources: shared/reference/ad_platform_apis.md §2 and §10, and
- googleapis/googleapis ``google/ads/googleads/v25/resources/user_list.proto`` (identical top-level
  fields in v23, v24, v25) and ``v25/common/user_lists.proto`` (the nested list types): the UserList
  fields, their REST JSON names and which are int64 (sent as JSON strings);
- googleapis/googleapis ``v25/resources/customer_client.proto``: a manager's ``customer_client`` rows
  hold "all direct and indirect client customers ... as well as the manager itself" (level 0);
- googleapis/googleapis ``v25/errors/authorization_error.proto``: USER_PERMISSION_DENIED (the manager
  belongs in ``login-customer-id``), CUSTOMER_NOT_ENABLED, DEVELOPER_TOKEN_NOT_APPROVED, ...;
- https://developers.google.com/google-ads/api/rest/common/search (fixed 10,000-row pages,
  ``nextPageToken`` absent on the last page, headers) and
  https://developers.google.com/google-ads/api/reference/rpc/v26/SearchGoogleAdsRequest (``pageSize``
  deprecated); https://developers.google.com/google-ads/api/docs/sunset-dates ("start with v26");
- the 429 body with ``quotaErrorDetails.retryDelay``: https://github.com/PipedreamHQ/pipedream/issues/21554;
- the selectable GAQL leaf fields of ``user_list``: https://developers.google.com/google-ads/api/fields/v24/user_list.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Mapping
from typing import Any

import httpx

from audit_assets.columns import ApiField
from audit_assets.columns import ColumnType as T
from audit_assets.platforms.base import (
    AccessRefused,
    AdAccount,
    Audience,
    AuthContext,
    BadResponse,
    ClientSettings,
    IdForm,
    Platform,
    PlatformError,
    require_mapping,
    require_object_list,
)
from audit_assets.platforms.http import ApiSession, AuthFailed, Fatal, Refused, Throttled, Transient, Verdict
from audit_assets.platforms.oauth import RefreshGrant, RefreshingBearerAuth
from audit_assets.views import SizeRange, V1Mapping, V2Mapping, Words

API_VERSION = "v26"
TOKEN_URL = "https://oauth2.googleapis.com/token"
PAGE_SIZE = 10_000  # fixed by the API since v17; a request may not choose it

# Every top-level field of UserList as REST JSON names it. The oneof list types are nested messages.
FIELDS: tuple[ApiField, ...] = (
    ApiField("resourceName", T.STRING, "customers/{customer_id}/userLists/{user_list_id}"),
    ApiField("id", T.INTEGER),
    ApiField("readOnly", T.BOOLEAN),
    ApiField("name", T.STRING),
    ApiField("description", T.STRING),
    ApiField("membershipStatus", T.STRING, "OPEN or CLOSED."),
    ApiField("integrationCode", T.STRING),
    ApiField("membershipLifeSpan", T.INTEGER, "Days; 10000 means no expiration."),
    ApiField("sizeForDisplay", T.INTEGER, "Estimated users on the Display Network; null until determined."),
    ApiField("sizeRangeForDisplay", T.STRING),
    ApiField("sizeForSearch", T.INTEGER, "Estimated users on google.com; null until determined."),
    ApiField("sizeRangeForSearch", T.STRING),
    ApiField("type", T.STRING),
    ApiField("closingReason", T.STRING),
    ApiField("accessReason", T.STRING),
    ApiField("accountUserListStatus", T.STRING),
    ApiField("eligibleForSearch", T.BOOLEAN),
    ApiField("eligibleForDisplay", T.BOOLEAN),
    ApiField("matchRatePercentage", T.INTEGER, "Customer Match lists only, 0-100."),
    ApiField("crmBasedUserList", T.JSON),
    ApiField("similarUserList", T.JSON),
    ApiField("ruleBasedUserList", T.JSON),
    ApiField("logicalUserList", T.JSON),
    ApiField("basicUserList", T.JSON),
    ApiField("lookalikeUserList", T.JSON),
)

# GAQL selects leaves: a nested singular message cannot be selected whole, a repeated one can.
USER_LIST_SELECT: tuple[str, ...] = (
    "resource_name",
    "id",
    "read_only",
    "name",
    "description",
    "membership_status",
    "integration_code",
    "membership_life_span",
    "size_for_display",
    "size_range_for_display",
    "size_for_search",
    "size_range_for_search",
    "type",
    "closing_reason",
    "access_reason",
    "account_user_list_status",
    "eligible_for_search",
    "eligible_for_display",
    "match_rate_percentage",
    "crm_based_user_list.app_id",
    "crm_based_user_list.upload_key_type",
    "crm_based_user_list.data_source_type",
    "similar_user_list.seed_user_list",
    "rule_based_user_list.prepopulation_status",
    "rule_based_user_list.flexible_rule_user_list.inclusive_rule_operator",
    "rule_based_user_list.flexible_rule_user_list.inclusive_operands",
    "rule_based_user_list.flexible_rule_user_list.exclusive_operands",
    "logical_user_list.rules",
    "basic_user_list.actions",
    "lookalike_user_list.seed_user_list_ids",
    "lookalike_user_list.expansion_level",
    "lookalike_user_list.country_codes",
)
# GAQL, not SQL, built from the constants above only.
# UserListSizeRange: the range Google gives beside a size (v2's bounds); UNKNOWN and UNSPECIFIED give
# none. LESS_THAN_ONE_THOUSAND is 500-1000, since LESS_THAN_FIVE_HUNDRED is its own range.
SIZE_RANGE_BOUNDS: dict[str, tuple[int | None, int | None]] = {
    "LESS_THAN_FIVE_HUNDRED": (0, 500),
    "LESS_THAN_ONE_THOUSAND": (500, 1_000),
    "ONE_THOUSAND_TO_TEN_THOUSAND": (1_000, 10_000),
    "TEN_THOUSAND_TO_FIFTY_THOUSAND": (10_000, 50_000),
    "FIFTY_THOUSAND_TO_ONE_HUNDRED_THOUSAND": (50_000, 100_000),
    "ONE_HUNDRED_THOUSAND_TO_THREE_HUNDRED_THOUSAND": (100_000, 300_000),
    "THREE_HUNDRED_THOUSAND_TO_FIVE_HUNDRED_THOUSAND": (300_000, 500_000),
    "FIVE_HUNDRED_THOUSAND_TO_ONE_MILLION": (500_000, 1_000_000),
    "ONE_MILLION_TO_TWO_MILLION": (1_000_000, 2_000_000),
    "TWO_MILLION_TO_THREE_MILLION": (2_000_000, 3_000_000),
    "THREE_MILLION_TO_FIVE_MILLION": (3_000_000, 5_000_000),
    "FIVE_MILLION_TO_TEN_MILLION": (5_000_000, 10_000_000),
    "TEN_MILLION_TO_TWENTY_MILLION": (10_000_000, 20_000_000),
    "TWENTY_MILLION_TO_THIRTY_MILLION": (20_000_000, 30_000_000),
    "THIRTY_MILLION_TO_FIFTY_MILLION": (30_000_000, 50_000_000),
    "OVER_FIFTY_MILLION": (50_000_000, None),
}
USER_LIST_QUERY = f"SELECT {', '.join(f'user_list.{f}' for f in USER_LIST_SELECT)} FROM user_list"  # noqa: S608
HIERARCHY_QUERY = (
    "SELECT customer_client.id, customer_client.manager, customer_client.status, "
    "customer_client.descriptive_name, customer_client.level FROM customer_client "
    "WHERE customer_client.status = 'ENABLED'"
)

_CUSTOMER_ID = re.compile(r"^\d+$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")  # protobuf Duration in JSON: "40591s", "1.5s"
NOT_ENABLED = "CUSTOMER_NOT_ENABLED"
CUSTOMER_REFUSALS = frozenset({"USER_PERMISSION_DENIED", NOT_ENABLED})  # one customer, not the credentials
THROTTLE_QUOTA_ERRORS = frozenset({"RESOURCE_EXHAUSTED", "RESOURCE_TEMPORARILY_EXHAUSTED"})
TRANSIENT_STATUSES = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"})
_AUTH_FIXES = {
    "DEVELOPER_TOKEN_INVALID": "the developer token is not valid; copy it again from the API Center of "
    "the manager account into the developer_token secret",
    "DEVELOPER_TOKEN_NOT_APPROVED": "the developer token is approved for test accounts only; apply for "
    "Basic or Standard access in the API Center",
    "CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION": "the Google Cloud project is approved for test accounts "
    "only; apply for Explorer, Basic or Standard access",
    "USER_PERMISSION_DENIED": "the authorised Google user cannot reach this customer; grant it access, "
    "or set login_customer_id to the manager account that links it",
    "INVALID_LOGIN_CUSTOMER_ID_SERVING_CUSTOMER_ID_COMBINATION": "login_customer_id is not a manager of "
    "this customer; correct login_customer_id or leave it unset to discover managers automatically",
    "CUSTOMER_NOT_ENABLED": "the customer account is cancelled, suspended or not yet set up",
}
_OAUTH_FIX = (
    "Google refused the OAuth access token even after a refresh: authorise the app again (scope "
    "https://www.googleapis.com/auth/adwords) and update client_id, client_secret and refresh_token"
)


def classify(response: httpx.Response, body: Any) -> Verdict | None:
    """Read a google.rpc.Status body and its GoogleAdsFailure; None leaves the decision to the shared policy."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if response.status_code < 400 or not isinstance(error, Mapping):
        return None
    status = str(error.get("status", ""))
    failures = _failure_errors(error)
    codes = [(category, name) for e in failures for category, name in _error_codes(e)]
    detail = _describe(response.status_code, status, error, failures, codes)
    names = {name for _, name in codes}
    quota = {name for category, name in codes if category == "quotaError"}
    if response.status_code == 429 or status == "RESOURCE_EXHAUSTED" or quota & THROTTLE_QUOTA_ERRORS:
        return Throttled(detail, _retry_delay(error, failures))
    if names & CUSTOMER_REFUSALS and not names - CUSTOMER_REFUSALS:
        # This customer, not the credentials: the user cannot reach it, or it was cancelled.
        fixes = [fix for name, fix in _AUTH_FIXES.items() if name in names]
        return Refused(f"{detail}. " + "; ".join(fixes), codes=frozenset(names))
    if response.status_code in (401, 403) or status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        fixes = [fix for name, fix in _AUTH_FIXES.items() if name in names]
        if not fixes and (response.status_code == 401 or status == "UNAUTHENTICATED"):
            fixes = [_OAUTH_FIX]  # the shared flow already refreshed the token once and replayed
        return AuthFailed(
            f"{detail}. "
            + ("; ".join(fixes) or "check the Google user's access to the account and the developer token"),
            codes=frozenset(names),
        )
    if response.status_code >= 500 or status in TRANSIENT_STATUSES:
        return Transient(detail)
    return Fatal(detail)


def _failure_errors(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    details = error.get("details")
    found: list[Mapping[str, Any]] = []
    for item in details if isinstance(details, list) else ():
        if isinstance(item, Mapping) and str(item.get("@type", "")).endswith(".GoogleAdsFailure"):
            errors = item.get("errors")
            found.extend(e for e in (errors if isinstance(errors, list) else ()) if isinstance(e, Mapping))
    return found


def _error_codes(failure: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``{"errorCode": {"quotaError": "RESOURCE_EXHAUSTED"}}`` -> ``[("quotaError", "RESOURCE_EXHAUSTED")]``."""
    code = failure.get("errorCode")
    return [(str(k), str(v)) for k, v in code.items()] if isinstance(code, Mapping) else []


def _describe(
    http_status: int,
    status: str,
    error: Mapping[str, Any],
    failures: list[Mapping[str, Any]],
    codes: list[tuple[str, str]],
) -> str:
    text = f"HTTP {http_status} {status or 'error'}"
    if codes:
        text += " (" + ", ".join(f"{category}={name}" for category, name in codes) + ")"
    messages = [str(f["message"]) for f in failures if f.get("message")]
    text += f": {'; '.join(messages) or error.get('message') or 'no message'}"
    request_ids = [
        str(d["requestId"])
        for d in error.get("details") or ()
        if isinstance(d, Mapping) and d.get("requestId")
    ]
    if request_ids:
        text += f" (request-id {request_ids[0]})"
    return text


def _retry_delay(error: Mapping[str, Any], failures: list[Mapping[str, Any]]) -> float | None:
    """The longest ``retryDelay`` Google gave: in quotaErrorDetails, or a google.rpc.RetryInfo detail."""
    delays: list[Any] = []
    for failure in failures:
        details = failure.get("details")
        quota = details.get("quotaErrorDetails") if isinstance(details, Mapping) else None
        if isinstance(quota, Mapping):
            delays.append(quota.get("retryDelay"))
    for item in error.get("details") or ():
        if isinstance(item, Mapping) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delays.append(item.get("retryDelay"))
    seconds = [float(m[1]) for d in delays if isinstance(d, str) and (m := _DURATION.match(d))]
    return max(seconds) if seconds else None


class GoogleAdsAuth(httpx.Auth):
    """OAuth bearer token (refreshed by the shared flow) plus the ``developer-token`` header."""

    requires_response_body = True

    def __init__(self, developer_token: str, bearer: RefreshingBearerAuth) -> None:
        self._developer_token = developer_token
        self._bearer = bearer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["developer-token"] = self._developer_token
        yield from self._bearer.auth_flow(request)


def auth(context: AuthContext) -> httpx.Auth:
    credentials = context.credentials
    grant = RefreshGrant(
        token_url=context.token_url or TOKEN_URL,
        client_id=credentials["client_id"],
        client_secret=credentials["client_secret"],
        refresh_token=credentials["refresh_token"],
    )
    bearer = RefreshingBearerAuth(grant, remember_secret=context.remember_secret)
    return GoogleAdsAuth(credentials["developer_token"], bearer)


class GoogleAdsClient:
    """Discovers ENABLED non-manager customers and lists their user lists with GAQL over REST."""

    def __init__(self, settings: ClientSettings, session: ApiSession) -> None:
        self._session = session
        self._root = f"{settings.base_url.rstrip('/')}/{API_VERSION}"
        self._login_override = _login_customer_id(settings.credentials.get("login_customer_id"))
        self._login_for: dict[str, str] = {}  # account id -> the login-customer-id that reaches it

    def discover_accounts(self) -> list[AdAccount]:
        """Walk the hierarchy under each accessible customer (or the configured manager only).

        An account reachable through several managers is kept once, with the first manager that
        reached it; that manager goes into ``login-customer-id`` when the account is listed.
        """
        roots = [self._login_override] if self._login_override else self._accessible_customers()
        accounts: dict[str, AdAccount] = {}
        covered: set[str] = set()  # customers already seen in a hierarchy: their subtree is known
        for root in roots:
            if root in covered:
                continue
            what = f"discovering the accounts under customer {root}"
            try:
                pages = list(self._search(root, HIERARCHY_QUERY, login=root, what=what))
            except AccessRefused as exc:
                # listAccessibleCustomers also names cancelled accounts, which refuse every query.
                if self._login_override or NOT_ENABLED not in exc.codes:
                    raise
                accounts.setdefault(root, AdAccount(root, None, NOT_ENABLED, active=False))
                continue
            for row in (row for page in pages for row in page):
                client = row.get("customerClient")
                if not isinstance(client, Mapping):
                    raise BadResponse(f"{what}: a result has no 'customerClient' object")
                account_id = str(client.get("id", ""))
                if not _CUSTOMER_ID.match(account_id):
                    raise BadResponse(f"{what}: customerClient.id {account_id!r} is not a customer id")
                covered.add(account_id)
                if client.get("manager") is True:  # a manager holds accounts, not audiences to snapshot
                    continue
                if account_id not in accounts or not accounts[account_id].active:
                    name, status = client.get("descriptiveName"), client.get("status")
                    accounts[account_id] = AdAccount(
                        account_id,
                        name if isinstance(name, str) else None,
                        status if isinstance(status, str) else None,
                        status == "ENABLED",
                    )
                    self._login_for[account_id] = root
        return list(accounts.values())

    def audience_pages(self, account: AdAccount) -> Iterator[list[Audience]]:
        login = self._login_for.get(account.id) or self._login_override or account.id
        what = f"listing user lists of customer {account.id}"
        for page in self._search(account.id, USER_LIST_QUERY, login=login, what=what):
            audiences = [row.get("userList") for row in page]
            if not all(isinstance(a, dict) for a in audiences):
                raise BadResponse(f"{what}: a result has no 'userList' object")
            yield audiences

    def _accessible_customers(self) -> list[str]:
        what = "listing the accessible customers"
        body = require_mapping(
            self._session.get_json(f"{self._root}/customers:listAccessibleCustomers", what=what), what
        )
        names = body.get("resourceNames", [])  # proto3 JSON leaves an empty list out
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadResponse(f"{what}: 'resourceNames' is not a list of strings")
        ids = [n.removeprefix("customers/") for n in names]
        bad = [
            n
            for n, i in zip(names, ids, strict=True)
            if not n.startswith("customers/") or not _CUSTOMER_ID.match(i)
        ]
        if bad:
            raise BadResponse(f"{what}: {bad[0]!r} is not a customers/<id> resource name")
        return list(dict.fromkeys(ids))

    def _search(
        self, customer_id: str, query: str, *, login: str, what: str
    ) -> Iterator[list[dict[str, Any]]]:
        """``googleAds:search`` page by page until ``nextPageToken`` is absent; the query never changes."""
        url = f"{self._root}/customers/{customer_id}/googleAds:search"
        headers = {"login-customer-id": login}
        request: dict[str, Any] = {"query": query}
        seen_tokens: set[str] = set()
        page_number = 0
        while True:
            page_number += 1
            body = require_mapping(
                self._session.request_json("POST", url, what=what, json_body=request, headers=headers), what
            )
            # proto3 JSON leaves an empty list out
            yield require_object_list(body.get("results", []), "'results'", f"{what}: page {page_number}")
            token = body.get("nextPageToken")
            if token is None or token == "":
                return
            if not isinstance(token, str):
                raise BadResponse(f"{what}: page {page_number} has a nextPageToken that is not a string")
            if token in seen_tokens:
                raise BadResponse(f"{what}: paging repeated a page token at page {page_number}")
            seen_tokens.add(token)
            request = {"query": query, "pageToken": token}


# The UI shows customer ids as 123-456-7890; the API names them customers/1234567890.
CUSTOMER_ID_FORM = IdForm(prefixes=("customers/",), separators="-")


def _login_customer_id(value: str | None) -> str | None:
    """``123-456-7890`` -> ``1234567890``; the header takes digits only."""
    if value is None or not value.strip():
        return None
    digits = CUSTOMER_ID_FORM.canonical(value)
    if not _CUSTOMER_ID.match(digits):
        raise PlatformError(
            "Google Ads credential login_customer_id must be a manager's customer id (digits, dashes allowed)"
        )
    return digits


PLATFORM = Platform(
    slug="google_ads",
    title="Google Ads",
    default_base_url="https://googleads.googleapis.com",
    credential_sets=(frozenset({"developer_token", "client_id", "client_secret", "refresh_token"}),),
    optional_credentials=frozenset({"login_customer_id"}),
    fields=FIELDS,
    audience_id_field="id",
    v1=V1Mapping(audience_id="id", audience_name="name", audience_size="size_for_display"),
    v2=V2Mapping(
        bounds=SizeRange("size_range_for_display", SIZE_RANGE_BOUNDS),
        audience_type=Words("type"),
        audience_status=Words("membership_status"),
    ),
    default_page_size=PAGE_SIZE,
    max_page_size=PAGE_SIZE,
    connect=GoogleAdsClient,
    auth=auth,
    classify=classify,
    default_token_url=TOKEN_URL,
    account_id=CUSTOMER_ID_FORM,
)
