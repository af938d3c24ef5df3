"""Emulates the Graph API endpoints we use: ``me/adaccounts`` and ``act_{id}/customaudiences``.

Shapes follow the Graph docs (Paginated Results, Handling Errors, rate-limiting headers): cursor
paging where only a missing ``paging.next`` ends a list, ``fields`` selection (ids only by default),
error bodies with code/subcode/fbtrace_id, and throttles as HTTP 400 with code 80003 and an
``X-Business-Use-Case-Usage`` header.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any, Unpack

import httpx

from audit_assets.sandbox import world

DEMO_CREDENTIALS = {"access_token": "sandbox-meta-demo-token"}
DEFAULT_LIMIT = 25
MAX_LIMIT = 500

_VERSIONED = re.compile(r"^(?P<prefix>.*?)/v\d+\.\d+/(?P<rest>.+)$")
_KNOWN_FIELDS = frozenset(
    (
        "id account_id name description approximate_count_lower_bound approximate_count_upper_bound subtype "
        "customer_file_source data_source data_source_types datafile_custom_audience_uploading_status "
        "delete_time delivery_status excluded_custom_audiences external_event_source household_audience "
        "included_custom_audiences is_eligible_for_sac_campaigns is_household is_snapshot is_value_based "
        "lookalike_audience_ids lookalike_spec operation_status opt_out_link owner_business "
        "page_deletion_marked_delete_time permission_for_actions pixel_id regulated_audience_spec "
        "retention_days rev_share_policy_id rule rule_aggregation rule_v2 seed_audience sharing_status "
        "time_content_updated time_created time_updated"
    ).split()
)
_ACCOUNT_FIELDS = frozenset({"id", "account_id", "account_status", "name"})


def _trace(request: httpx.Request) -> str:
    return f"Sbx{world.stable_int(str(request.url)) % 10**9:09d}"


class MetaGraphSandbox(world.PlatformEmulator):
    server_error = world.WireError(
        500, 2, "An unexpected error has occurred. Please retry your request later."
    )

    def __init__(
        self,
        accounts: Sequence[world.SandboxAccount] = world.DEFAULT_ACCOUNTS,
        *,
        token: str = DEMO_CREDENTIALS["access_token"],
        empty_pages: int = 0,
        new_fields: dict[str, Any] | None = None,
        heaviest_page: int | None = None,
        **options: Unpack[world.EmulatorOptions],
    ) -> None:
        super().__init__(accounts, **options)
        self.credentials = (
            world.bearer(
                world.one_of({token}),
                world.WireError(400, 190, "Invalid OAuth access token - Cannot parse access token"),
                query="access_token",
            ),
        )
        self.empty_pages = empty_pages  # empty pages (with paging.next) served after the first page
        self.new_fields = new_fields or {}  # fields the platform "added later": returned unasked
        self.heaviest_page = heaviest_page  # a larger audience page is refused as too much data

    def envelope(self, request: httpx.Request, error: world.WireError) -> httpx.Response:
        """Graph's ``{"error": {message, type, code, error_subcode, fbtrace_id}}``."""
        body: dict[str, Any] = {"message": error.message, "type": "OAuthException", "code": error.code}
        body |= error.extra
        body["fbtrace_id"] = _trace(request)
        return httpx.Response(error.status, json={"error": body}, headers=error.headers)

    def route(self, request: httpx.Request) -> httpx.Response:
        match = _VERSIONED.match(request.url.path)
        if request.method != "GET" or match is None:
            return self.error(request, 400, 100, "Unsupported request - method type or path not supported")
        rest = match["rest"]
        if rest == "me/adaccounts":
            return self._page(request, [self._account(a) for a in self.accounts.values()], _ACCOUNT_FIELDS)
        edge = re.fullmatch(r"act_(\d+)/customaudiences", rest)
        if edge and edge[1] in self.accounts:
            account = self.accounts[edge[1]]
            if not account.readable:
                return self.error(
                    request,
                    403,
                    200,
                    "(#200) Ad account owner has NOT grant ads_management or ads_read permission",
                )
            return self._audience_page(request, account)
        return self.error(
            request,
            400,
            100,
            f"Unsupported get request. Object with ID '{rest.split('/')[0]}' does not exist, "
            "cannot be loaded due to missing permissions, or does not support this operation",
            error_subcode=33,
        )

    def throttled(self, request: httpx.Request, fault: world.Fault) -> world.WireError:
        usage = {
            "1000000001": [
                {
                    "type": "custom_audience",
                    "call_count": 100,
                    "total_cputime": 34,
                    "total_time": 41,
                    "estimated_time_to_regain_access": fault.wait_minutes,
                }
            ]
        }
        return world.WireError(
            400,
            80003,
            "(#80003) There have been too many calls to this ad-account. Wait a bit "
            "and try again. For more info, please refer to "
            "https://developers.facebook.com/docs/graph-api/overview/rate-limiting#custom-audience",
            {"error_subcode": 2446079},
            {"x-business-use-case-usage": json.dumps(usage)},
        )

    @staticmethod
    def _account(account: world.SandboxAccount) -> dict[str, Any]:
        return {
            "id": f"act_{account.id}",
            "account_id": account.id,
            "account_status": 1 if account.active else 101,
            "name": account.name,
        }

    def _audience_page(self, request: httpx.Request, account: world.SandboxAccount) -> httpx.Response:
        fields = _requested_fields(request)
        unknown = sorted(fields - _KNOWN_FIELDS)
        if unknown:
            return self.error(request, 400, 100, f"(#100) Tried accessing nonexisting field ({unknown[0]})")
        try:
            limit, offset, empties = _position(request)
        except ValueError:
            return self.error(request, 400, 100, "(#100) The after cursor is invalid")
        if self.heaviest_page is not None and limit > self.heaviest_page:
            return self.error(
                request, 500, 1, "Please reduce the amount of data you're asking for, then retry your request"
            )
        limit = self.served(limit)
        if offset == limit and empties < self.empty_pages:
            return self._reply(request, [], offset, empties + 1, more=True)
        day = self.today()
        end = min(offset + limit, account.audiences)
        items = [
            _select(self._audience(account, i, day), fields) | self.new_fields for i in range(offset, end)
        ]
        return self._reply(request, items, end, empties, more=end < account.audiences)

    def _page(
        self, request: httpx.Request, rows: list[dict[str, Any]], known: frozenset[str]
    ) -> httpx.Response:
        fields = (_requested_fields(request) & known) | {"id"}  # Graph always returns id
        try:
            limit, offset, empties = _position(request)
        except ValueError:
            return self.error(request, 400, 100, "(#100) The after cursor is invalid")
        end = min(offset + self.served(limit), len(rows))
        return self._reply(
            request, [_select(r, fields) for r in rows[offset:end]], end, empties, more=end < len(rows)
        )

    @staticmethod
    def _reply(
        request: httpx.Request, items: list[Any], end: int, empties: int, *, more: bool
    ) -> httpx.Response:
        body: dict[str, Any] = {"data": items}
        if items or more:
            after = world.opaque_cursor(end, empties)
            paging: dict[str, Any] = {
                "cursors": {"before": world.opaque_cursor(max(0, end - len(items)), empties), "after": after}
            }
            if more:
                paging["next"] = str(request.url.copy_set_param("after", after))
            body["paging"] = paging
        return httpx.Response(200, json=body)

    @staticmethod
    def _audience(account: world.SandboxAccount, index: int, day: dt.date) -> dict[str, Any]:
        audience_id = audience_id_of(account.id, index)
        name = world.audience_name(account.id, index)
        lookalike = name.startswith("Lookalike")
        created = 1_700_000_000 + world.stable_int(audience_id, "created") % 40_000_000
        audience: dict[str, Any] = {
            "id": audience_id,
            "account_id": account.id,
            "name": name,
            "description": f"Sandbox audience {index} of {account.name}",
            "subtype": "LOOKALIKE" if lookalike else ("WEBSITE" if "visitors" in name else "CUSTOM"),
            "time_created": created,
            "time_updated": created + world.stable_int(audience_id, "updated") % 1_000_000,
            "retention_days": 180 if "180d" in name else 0,
            "is_value_based": False,
            "sharing_status": {"sharing_relationship_id": 0, "status": "NOT_SHARED"},
            "permission_for_actions": {"can_edit": True, "can_see_insight": "True", "can_share": "True"},
        }
        unavailable = lookalike and world.unit(audience_id, "lal") < 0.5
        if unavailable:
            audience |= {
                "approximate_count_lower_bound": -1,
                "approximate_count_upper_bound": -1,
                "delivery_status": {"code": 300, "description": "This audience is too small to be used."},
                "operation_status": {"code": 431, "description": "Lookalike audience is not ready."},
                "lookalike_spec": {"country": "US", "ratio": 0.01, "type": "similarity"},
            }
        else:
            size = world.daily_size(audience_id, day)
            audience |= {
                "approximate_count_lower_bound": size,
                "approximate_count_upper_bound": int(size * 1.176),
                "delivery_status": {"code": 200, "description": "This audience is ready for use."},
                "operation_status": {"code": 200, "description": "Normal"},
            }
            if not lookalike:
                audience["customer_file_source"] = "USER_PROVIDED_ONLY"
                audience["time_content_updated"] = audience["time_updated"]
        return audience


def audience_id_of(account_id: str, index: int) -> str:
    """The id the sandbox gives the index-th custom audience of an account."""
    return f"2385{account_id[-4:]}{index:09d}"


def _requested_fields(request: httpx.Request) -> set[str]:
    raw = request.url.params.get("fields", "")
    return {f.strip() for f in raw.split(",") if f.strip()} or {"id"}


def _select(item: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in fields}


def _position(request: httpx.Request) -> tuple[int, int, int]:
    try:
        limit = max(1, min(MAX_LIMIT, int(request.url.params.get("limit", DEFAULT_LIMIT))))
    except ValueError:
        limit = DEFAULT_LIMIT
    after = request.url.params.get("after")
    if not after:
        return limit, 0, 0
    offset, empties = world.read_cursor(after, int, int)
    return limit, offset, empties


EMULATOR = MetaGraphSandbox
