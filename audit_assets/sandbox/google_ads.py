"""Emulates the Google Ads REST endpoints we use, and Google's OAuth token endpoint on the same host.

- ``POST {prefix}/token``: the refresh-token grant with form client authentication (oauth2.googleapis.com).
- ``GET {prefix}/vNN/customers:listAccessibleCustomers`` -> ``{"resourceNames": ["customers/1", ...]}``.
- ``POST {prefix}/vNN/customers/{cid}/googleAds:search`` with ``{"query", "pageToken"}``: a small GAQL
  subset (``SELECT`` of known fields, ``FROM customer_client | user_list``, ``WHERE f = 'V' [AND ...]``),
  fixed-size pages (10,000 on the real API; smaller here to exercise paging), ``nextPageToken`` absent
  on the last page, ``results`` left out when empty (proto3 JSON), int64 values as JSON strings, only
  the selected fields returned (plus ``resourceName``), ``pageSize`` refused (PAGE_SIZE_NOT_SUPPORTED).
- Access: the bearer token, the ``developer-token`` header, ``login-customer-id`` (a manager reaches its
  clients; without it only the customer itself), cancelled customers refuse queries (CUSTOMER_NOT_ENABLED).
- Errors are google.rpc.Status bodies carrying a GoogleAdsFailure; throttles are HTTP 429
  RESOURCE_EXHAUSTED with ``quotaErrorDetails.retryDelay``.

Sources: see audit_assets/platforms/google_ads.py. The emulator's data is generated, never copied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

import httpx

from audit_assets.sandbox import world
from audit_assets.sandbox.oauth import TokenIssuer

DEMO_CREDENTIALS = {
    "developer_token": "sandbox-google-ads-developer-token",
    "client_id": "sandbox-google-ads.apps.googleusercontent.com",
    "client_secret": "sandbox-google-ads-client-secret",
    "refresh_token": "sandbox-google-ads-refresh-token",
}
DEFAULT_MANAGER = world.SandboxAccount("9000000001", "Sandbox Agency (manager)", audiences=0)
SUPPORTED_VERSIONS = frozenset({"v23", "v24", "v25", "v26"})
DEFAULT_PAGE_SIZE = 5
TOKEN_PATH = "/token"

_VERSIONED = re.compile(r"^(?P<prefix>.*?)/(?P<version>v\d+)/(?P<rest>.+)$")
_SEARCH = re.compile(r"customers/(?P<cid>\d+)/googleAds:search")
_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<resource>\w+)(?:\s+WHERE\s+(?P<where>.+?))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(
    r"^\s*(?P<field>[a-z_.]+)\s*(?P<op>!?=)\s*(?:'(?P<quoted>[^']*)'|(?P<bare>[\w.-]+))\s*$"
)
_FIELDS: dict[str, frozenset[str]] = {
    "customer_client": frozenset(
        "resource_name client_customer hidden level time_zone test_account manager descriptive_name "
        "currency_code id applied_labels status".split()
    ),
    "user_list": frozenset(
        (
            "resource_name id read_only name description membership_status integration_code "
            "membership_life_span size_for_display size_range_for_display size_for_search "
            "size_range_for_search type closing_reason access_reason account_user_list_status "
            "eligible_for_search eligible_for_display match_rate_percentage crm_based_user_list.app_id "
            "crm_based_user_list.upload_key_type crm_based_user_list.data_source_type "
            "similar_user_list.seed_user_list rule_based_user_list.prepopulation_status "
            "rule_based_user_list.flexible_rule_user_list.inclusive_rule_operator "
            "rule_based_user_list.flexible_rule_user_list.inclusive_operands "
            "rule_based_user_list.flexible_rule_user_list.exclusive_operands logical_user_list.rules "
            "basic_user_list.actions lookalike_user_list.seed_user_list_ids "
            "lookalike_user_list.expansion_level lookalike_user_list.country_codes"
        ).split()
    ),
}
_ROW_KEY = {"customer_client": "customerClient", "user_list": "userList"}
# (upper bound exclusive, UserListSizeRange) in ascending order.
_SIZE_RANGES = (
    (500, "LESS_THAN_FIVE_HUNDRED"),
    (1_000, "LESS_THAN_ONE_THOUSAND"),
    (10_000, "ONE_THOUSAND_TO_TEN_THOUSAND"),
    (50_000, "TEN_THOUSAND_TO_FIFTY_THOUSAND"),
    (100_000, "FIFTY_THOUSAND_TO_ONE_HUNDRED_THOUSAND"),
    (300_000, "ONE_HUNDRED_THOUSAND_TO_THREE_HUNDRED_THOUSAND"),
    (500_000, "THREE_HUNDRED_THOUSAND_TO_FIVE_HUNDRED_THOUSAND"),
    (1_000_000, "FIVE_HUNDRED_THOUSAND_TO_ONE_MILLION"),
    (2_000_000, "ONE_MILLION_TO_TWO_MILLION"),
    (3_000_000, "TWO_MILLION_TO_THREE_MILLION"),
    (5_000_000, "THREE_MILLION_TO_FIVE_MILLION"),
    (10_000_000, "FIVE_MILLION_TO_TEN_MILLION"),
    (20_000_000, "TEN_MILLION_TO_TWENTY_MILLION"),
    (30_000_000, "TWENTY_MILLION_TO_THIRTY_MILLION"),
    (50_000_000, "THIRTY_MILLION_TO_FIFTY_MILLION"),
)
# One kind per entry of world.AUDIENCE_NAMES, in the same order.
_KINDS = ("crm", "crm", "rule", "lookalike", "huge", "app", "basic", "crm", "logical", "crm")
HUGE_SIZE_OFFSET = 2_500_000_000  # "Website visitors" lists exceed 2**31, to exercise int64 end to end
# The google.rpc.Status code and message Google sends with each HTTP status; None: the message is the error's.
_RPC_STATUS: dict[int, tuple[str, str | None]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", None),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "Internal error encountered."),
}


def user_list_id(account_id: str, index: int) -> str:
    """The id the sandbox gives the index-th user list of a customer."""
    return str(8_000_000_000 + int(account_id[-4:]) * 10_000 + index)


class GoogleAdsSandbox(world.PlatformEmulator):
    """A manager with client customers, some also directly accessible; each client has user lists."""

    token_path = TOKEN_PATH
    server_error = world.WireError(
        500, ("internalError", "INTERNAL_ERROR"), "An internal error has occurred."
    )

    def __init__(
        self,
        accounts: Sequence[world.SandboxAccount] = world.DEFAULT_ACCOUNTS,
        *,
        manager: world.SandboxAccount | None = DEFAULT_MANAGER,
        directly_accessible: Sequence[str] = ("1000000002", "1000000003"),
        credentials: Mapping[str, str] = DEMO_CREDENTIALS,
        developer_token_approved: bool = True,
        page_size: int = DEFAULT_PAGE_SIZE,
        expire_after_uses: int | None = None,
        **options: Unpack[world.EmulatorOptions],
    ) -> None:
        super().__init__(accounts, **options)
        self.manager = manager
        # Without a manager, every account is reached directly (each its own login-customer-id).
        self.accessible = (
            [manager.id, *directly_accessible] if manager is not None else [a.id for a in accounts]
        )
        self.developer_token_approved = developer_token_approved
        self.page_size = page_size
        self.issuer = TokenIssuer(
            client_id=credentials["client_id"],
            client_secret=credentials["client_secret"],
            refresh_token=credentials["refresh_token"],
            expires_in=3599,
            expire_after_uses=expire_after_uses,
            prefix="ya29.sbx",
        )
        self.credentials = (
            world.bearer(
                self.issuer.accepts,
                world.WireError(
                    401,
                    ("authenticationError", "OAUTH_TOKEN_INVALID"),
                    "The OAuth access token is invalid or expired.",
                ),
            ),
            world.HeaderCredential(
                "developer-token",
                world.one_of({credentials["developer_token"]}),
                world.WireError(
                    401,
                    ("authenticationError", "DEVELOPER_TOKEN_INVALID"),
                    "The developer token is not valid.",
                    {"summary": "Request is missing required authentication credential."},
                ),
            ),
            world.HeaderCredential(
                "developer-token",
                lambda _: self.developer_token_approved,
                world.WireError(
                    403,
                    ("authorizationError", "DEVELOPER_TOKEN_NOT_APPROVED"),
                    "The developer token is only approved for use with test accounts. To access "
                    "non-test accounts, apply for Basic or Standard access.",
                ),
            ),
        )

    def envelope(self, request: httpx.Request, error: world.WireError) -> httpx.Response:
        """A google.rpc.Status body; with a ``code``, a GoogleAdsFailure detail as the Ads API sends it."""
        status, summary = _RPC_STATUS[error.status]
        body: dict[str, Any] = {
            "code": error.status,
            "message": error.extra.get("summary", summary) or error.message,
            "status": status,
        }
        if error.code is not None:
            match = _VERSIONED.match(request.url.path)
            version = match["version"] if match else "v26"
            category, name = error.code
            failure: dict[str, Any] = {"errorCode": {category: name}, "message": error.message}
            if "details" in error.extra:
                failure["details"] = error.extra["details"]
            body["details"] = [
                {
                    "@type": f"type.googleapis.com/google.ads.googleads.{version}.errors.GoogleAdsFailure",
                    "errors": [failure],
                    "requestId": f"sbx{world.stable_int(str(request.url), request.content) % 10**12:012d}",
                }
            ]
        return httpx.Response(error.status, json={"error": body}, headers=error.headers)

    def route(self, request: httpx.Request) -> httpx.Response:
        match = _VERSIONED.match(request.url.path)
        if match is None:
            return self.error(request, 404, None, f"The requested URL {request.url.path} was not found.")
        if match["version"] not in SUPPORTED_VERSIONS:
            return self.error(request, 404, None, f"Version {match['version']} is not available.")
        rest = match["rest"]
        if rest == "customers:listAccessibleCustomers" and request.method == "GET":
            names = [f"customers/{cid}" for cid in self.accessible]
            return httpx.Response(200, json={"resourceNames": names} if names else {})
        search = _SEARCH.fullmatch(rest)
        if search and request.method == "POST":
            return self._search(request, search["cid"])
        return self.error(request, 404, None, f"The requested URL {request.url.path} was not found.")

    def throttled(self, request: httpx.Request, fault: world.Fault) -> world.WireError:
        seconds = fault.wait_minutes * 60
        details: dict[str, Any] = {}
        if seconds >= 3600:  # the daily operations quota of the developer token (the documented body)
            code = "RESOURCE_EXHAUSTED"
            details = {
                "rateScope": "DEVELOPER",
                "rateName": "Number of operations for basic access",
                "retryDelay": f"{seconds}s",
            }
        else:  # a short-term rate limit
            code = "RESOURCE_TEMPORARILY_EXHAUSTED"
            if seconds:
                details = {"retryDelay": f"{seconds}s"}
        return world.WireError(
            429,
            ("quotaError", code),
            f"Too many requests. Retry in {seconds} seconds.",
            {"details": {"quotaErrorDetails": details}} if details else {},
        )

    # --- googleAds:search ------------------------------------------------------------------------------

    def _search(self, request: httpx.Request, cid: str) -> httpx.Response:
        try:
            body = json.loads(request.content)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return self.error(
                request, 400, ("requestError", "REQUIRED_FIELD_MISSING"), "The query is missing."
            )
        if "pageSize" in body:
            return self.error(
                request,
                400,
                ("requestError", "PAGE_SIZE_NOT_SUPPORTED"),
                "Setting the page size is not supported. Search Responses will have fixed page size of "
                "10000 rows.",
            )
        login = request.headers.get("login-customer-id")
        if login is not None and not login.isdigit():
            return self.error(
                request,
                400,
                ("headerError", "INVALID_LOGIN_CUSTOMER_ID"),
                "The login customer ID could not be validated.",
            )
        denied = self._deny_access(request, login or cid, cid)
        if denied is not None:
            return denied
        try:
            resource, fields, conditions = _parse_query(body["query"])
        except ValueError as exc:
            return self.error(request, 400, ("queryError", "UNRECOGNIZED_FIELD"), str(exc))
        rows = self._customer_clients(cid) if resource == "customer_client" else self._user_lists(cid)
        rows = [r for r in rows if all(_matches(r, f, op, v) for f, op, v in conditions)]
        digest = hashlib.sha256(f"{cid}\x1f{body['query']}".encode()).hexdigest()[:16]
        try:
            offset = _offset(body.get("pageToken"), digest)
        except ValueError:
            return self.error(request, 400, ("requestError", "INVALID_PAGE_TOKEN"), "Page token is invalid.")
        end = min(offset + self.served(self.page_size), len(rows))
        key = _ROW_KEY[resource]
        response: dict[str, Any] = {}
        if end > offset:
            response["results"] = [{key: _select(r, fields)} for r in rows[offset:end]]
        if end < len(rows):
            response["nextPageToken"] = world.opaque_cursor(end, digest)
        response["fieldMask"] = ",".join(f"{key}.{_camel_path(f)}" for f in fields)
        response["queryResourceConsumption"] = str(10 + end - offset)
        return httpx.Response(200, json=response)

    def _deny_access(self, request: httpx.Request, login: str, cid: str) -> httpx.Response | None:
        reachable = login == cid or (
            self.manager is not None and login == self.manager.id and cid in self.accounts
        )
        unreadable = cid in self.accounts and not self.accounts[cid].readable
        if login not in self.accessible or not reachable or unreadable:
            return self.error(
                request,
                403,
                ("authorizationError", "USER_PERMISSION_DENIED"),
                "User doesn't have permission to access customer. Note: If you're accessing a client "
                "customer, the manager's customer ID must be set in the 'login-customer-id' header.",
            )
        customer = self._customer(cid)
        if customer is None or not customer.active:
            return self.error(
                request,
                403,
                ("authorizationError", "CUSTOMER_NOT_ENABLED"),
                "The customer account can't be accessed because it is not yet enabled or has been "
                "deactivated.",
            )
        return None

    def _customer(self, cid: str) -> world.SandboxAccount | None:
        if self.manager is not None and cid == self.manager.id:
            return self.manager
        return self.accounts.get(cid)

    def _customer_clients(self, cid: str) -> list[dict[str, Any]]:
        """The customer itself at level 0 and, for the manager, every client at level 1."""
        is_manager = self.manager is not None and cid == self.manager.id
        links = [(self._customer(cid), 0)]
        if is_manager:
            links += [(account, 1) for account in self.accounts.values()]
        return [
            {
                "resourceName": f"customers/{cid}/customerClients/{c.id}",
                "clientCustomer": f"customers/{c.id}",
                "hidden": False,
                "level": str(level),
                "timeZone": "America/New_York",
                "testAccount": False,
                "manager": is_manager and level == 0,
                "descriptiveName": c.name,
                "currencyCode": "USD",
                "id": c.id,
                "status": "ENABLED" if c.active else "CANCELED",
            }
            for c, level in links
            if c is not None
        ]

    def _user_lists(self, cid: str) -> list[dict[str, Any]]:
        account = self.accounts.get(cid)
        if account is None:
            return []
        day = self.today()
        return [self._user_list(account, i, day) for i in range(account.audiences)]

    @staticmethod
    def _user_list(account: world.SandboxAccount, index: int, day: dt.date) -> dict[str, Any]:
        list_id = user_list_id(account.id, index)
        name = world.audience_name(account.id, index)
        kind = _KINDS[index % len(_KINDS)]
        item: dict[str, Any] = {
            "resourceName": f"customers/{account.id}/userLists/{list_id}",
            "id": list_id,
            "readOnly": kind == "lookalike",
            "name": name,
            "description": f"Sandbox user list {index} of {account.name}",
            "membershipStatus": "OPEN",
            "membershipLifeSpan": str(_life_span(name, kind)),
            "accessReason": "OWNED",
            "accountUserListStatus": "ENABLED",
            "eligibleForSearch": kind in ("crm", "app"),
            "eligibleForDisplay": True,
        }
        seed = f"customers/{account.id}/userLists/{user_list_id(account.id, 0)}"
        if kind in ("crm", "app"):
            item["type"] = "CRM_BASED"
            item["matchRatePercentage"] = 30 + world.stable_int(list_id, "match") % 50
            item["crmBasedUserList"] = (
                {"appId": "com.example.sandbox", "uploadKeyType": "MOBILE_ADVERTISING_ID"}
                if kind == "app"
                else {"uploadKeyType": "CONTACT_INFO"}
            ) | {"dataSourceType": "FIRST_PARTY"}
        elif kind in ("rule", "huge"):
            item["type"] = "RULE_BASED"
            item["ruleBasedUserList"] = _rule_based("/cart" if kind == "rule" else "/", 30)
        elif kind == "lookalike":
            item["type"] = "LOOKALIKE"
            item["lookalikeUserList"] = {
                "seedUserListIds": [user_list_id(account.id, 0)],
                "expansionLevel": "NARROW",
                "countryCodes": ["US"],
            }
        elif kind == "basic":
            item["type"] = "REMARKETING"
            action = f"customers/{account.id}/remarketingActions/{world.stable_int(list_id) % 10**9}"
            item["basicUserList"] = {"actions": [{"remarketingAction": action}]}
        else:
            item["type"] = "LOGICAL"
            item["logicalUserList"] = {"rules": [{"operator": "ALL", "ruleOperands": [{"userList": seed}]}]}
        if kind == "lookalike":  # not yet determined: Google leaves the sizes out
            item["sizeRangeForDisplay"] = item["sizeRangeForSearch"] = "UNKNOWN"
            return item
        display = world.daily_size(list_id, day) + (HUGE_SIZE_OFFSET if kind == "huge" else 0)
        item["sizeForDisplay"] = str(display)
        item["sizeRangeForDisplay"] = _size_range(display)
        if item["eligibleForSearch"]:
            search = display * 6 // 10
            item["sizeForSearch"] = str(search)
            item["sizeRangeForSearch"] = _size_range(search)
        return item


def expected_size_for_display(account_id: str, index: int, day: dt.date) -> int | None:
    """What the sandbox reports as ``sizeForDisplay`` (None when left out), for tests and benchmarks."""
    size = GoogleAdsSandbox._user_list(world.SandboxAccount(account_id, ""), index, day).get("sizeForDisplay")
    return int(size) if size is not None else None


def _life_span(name: str, kind: str) -> int:
    days = re.search(r"(\d+)d\b", name)
    if days:
        return int(days[1])
    return 10_000 if kind in ("crm", "app") else 540  # 10000: CRM members never expire


def _rule_based(url_fragment: str, lookback_days: int) -> dict[str, Any]:
    rule_item = {"name": "url__", "stringRuleItem": {"operator": "CONTAINS", "value": url_fragment}}
    operand = {
        "rule": {"ruleType": "OR_OF_ANDS", "ruleItemGroups": [{"ruleItems": [rule_item]}]},
        "lookbackWindowDays": str(lookback_days),
    }
    return {
        "prepopulationStatus": "FINISHED",
        "flexibleRuleUserList": {"inclusiveRuleOperator": "AND", "inclusiveOperands": [operand]},
    }


def _size_range(size: int) -> str:
    return next((label for bound, label in _SIZE_RANGES if size < bound), "OVER_FIFTY_MILLION")


def _parse_query(query: str) -> tuple[str, list[str], list[tuple[str, str, str]]]:
    """``SELECT r.a, r.b.c FROM r WHERE r.a = 'X'`` -> (``r``, [``a``, ``b.c``], [(``a``, ``=``, ``X``)])."""
    match = _QUERY.match(query)
    if match is None:
        raise ValueError("Error in query: unexpected input.")
    resource = match["resource"].lower()
    if resource not in _FIELDS:
        raise ValueError(f"Error in query: resource {resource!r} is not served by the sandbox.")
    fields = [_field(resource, f.strip()) for f in match["fields"].split(",")]
    conditions = []
    clauses = re.split(r"\s+AND\s+", match["where"], flags=re.IGNORECASE) if match["where"] else []
    for clause in clauses:
        condition = _CONDITION.match(clause)
        if condition is None:
            raise ValueError(f"Error in query: unsupported condition {clause.strip()!r}.")
        value = condition["quoted"] if condition["quoted"] is not None else condition["bare"]
        conditions.append((_field(resource, condition["field"]), condition["op"], value))
    return resource, fields, conditions


def _field(resource: str, name: str) -> str:
    short = name.removeprefix(f"{resource}.")
    if short == name or short not in _FIELDS[resource]:
        raise ValueError(f"Error in query: unrecognized field {name!r}.")
    return short


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _camel_path(path: str) -> str:
    return ".".join(_camel(part) for part in path.split("."))


def _lookup(row: Mapping[str, Any], path: str) -> Any:
    value: Any = row
    for key in _camel_path(path).split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _matches(row: Mapping[str, Any], field: str, op: str, literal: str) -> bool:
    value = _lookup(row, field)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return (text == literal) == (op == "=")


def _select(row: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
    """Only the selected leaves (set ones), nested as in the resource; resourceName always."""
    out: dict[str, Any] = {"resourceName": row["resourceName"]}
    for field in fields:
        value = _lookup(row, field)
        if value is None:
            continue
        *parents, leaf = _camel_path(field).split(".")
        target = out
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return out


def _offset(token: Any, digest: str) -> int:
    """Where a page starts; a token from another query (or customer) is refused, as Google does."""
    if token is None:
        return 0
    offset, token_digest = world.read_cursor(str(token), int, str)
    if token_digest != digest:
        raise ValueError("page token of another query")
    return offset


EMULATOR = GoogleAdsSandbox
