"""Emulates the LinkedIn Marketing API calls we use: ad-account search, ad segments, the token endpoint.

Wire format (sources in audit_assets/platforms/linkedin.py): versioned ``/rest/`` resources that want
``LinkedIn-Version`` and ``X-Restli-Protocol-Version: 2.0.0``; Rest.li 2.0 query syntax read from the
raw query string (so ``List(urn%3Ali%3AsponsoredAccount%3A1)`` works and a percent-encoded parenthesis
does not); ``/rest/adAccounts?q=search`` paged by ``pageSize``/``pageToken`` with
``metadata.nextPageToken``; ``/rest/adSegments?q=accounts`` paged by ``start``/``count`` with
``paging {start, count, total, links}``; errors as ``{status, serviceErrorCode, code, message}``;
throttles as HTTP 429 without rate-limit headers; the refresh grant at ``/oauth/v2/accessToken``.

Emulator choices where LinkedIn's docs say nothing (UNCONFIRMED): the bodies for a missing
``LinkedIn-Version`` (400 VERSION_MISSING), a malformed one (426 NONEXISTENT_VERSION) and a malformed
Rest.li parameter (400); a 403 ACCESS_DENIED for an ad account the member has no role on; the server's
cap on ``count`` (``page_cap``, echoed in ``paging.count``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any, Unpack
from urllib.parse import unquote

import httpx

from audit_assets.sandbox import world
from audit_assets.sandbox.oauth import TokenIssuer

DEMO_CREDENTIALS = {
    "client_id": "sandbox-linkedin-client",
    "client_secret": "sandbox-linkedin-client-secret",
    "refresh_token": "sandbox-linkedin-refresh-token",
}
TOKEN_PATH = "/oauth/v2/accessToken"
DEFAULT_COUNT = 10  # LinkedIn's default page size for start/count finders
DEFAULT_PAGE_SIZE = 100  # and for the cursor-paged searches
MAX_PAGE_SIZE = 1000
ACCOUNT_URN = "urn:li:sponsoredAccount:"
BIG_SIZE_INDEX = 1  # this audience of every account is larger than 2**31, to exercise 64-bit columns
BUILDING_INDEX = 4  # this one is still building: LinkedIn sends no approximateMemberCount yet

_RESOURCE = re.compile(r"^(?P<prefix>.*?)/rest/(?P<resource>[A-Za-z]+)$")
_VERSION = re.compile(r"^\d{6}(\.\d{2})?$")
_STATUS_SEARCH = re.compile(r"^\(status:\(values:List\((?P<values>[A-Z_]+(?:,[A-Z_]+)*)\)\)\)$")
_LIST = re.compile(r"^List\((?P<items>[^()]*)\)$")


def segment_id_of(account_id: str, index: int) -> int:
    """The id the sandbox gives the index-th ad segment of an account."""
    return int(f"1{account_id[-4:]}{index:05d}")


class LinkedInMarketingSandbox(world.PlatformEmulator):
    token_path = TOKEN_PATH
    server_error = world.WireError(500, "INTERNAL_SERVER_ERROR", "Internal Server Error")

    def __init__(
        self,
        accounts: Sequence[world.SandboxAccount] = world.DEFAULT_ACCOUNTS,
        *,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        client_id: str = DEMO_CREDENTIALS["client_id"],
        client_secret: str = DEMO_CREDENTIALS["client_secret"],
        refresh_token: str = DEMO_CREDENTIALS["refresh_token"],
        access_tokens: Collection[str] = (),
        expire_after_uses: int | None = None,
        rotate_refresh_token: bool = False,
        **options: Unpack[world.EmulatorOptions],
    ) -> None:
        super().__init__(accounts, **options)
        self.now = now
        self.issuer = TokenIssuer(
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            expires_in=60 * 24 * 3600,  # LinkedIn access tokens live 60 days
            expire_after_uses=expire_after_uses,
            rotate_refresh_token=rotate_refresh_token,
            prefix="sbx-linkedin",
            long_lived=access_tokens,
        )
        self.credentials = (
            world.bearer(
                self.issuer.accepts,
                world.WireError(
                    401, "INVALID_ACCESS_TOKEN", "Invalid access token", {"serviceErrorCode": 65600}
                ),
            ),
        )

    # --- routing ------------------------------------------------------------------------------------------

    def envelope(self, request: httpx.Request, error: world.WireError) -> httpx.Response:
        """``{status, code, message, serviceErrorCode}``, dated like every LinkedIn answer."""
        body = {"status": error.status, "code": error.code, "message": error.message, **error.extra}
        return self._reply(body, error.status)

    def route(self, request: httpx.Request) -> httpx.Response:
        version = request.headers.get("linkedin-version")
        if version is None:
            return self.error(
                request,
                400,
                "VERSION_MISSING",
                "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
            )
        if not _VERSION.match(version):
            return self.error(
                request, 426, "NONEXISTENT_VERSION", f"Requested version {version} is not active"
            )
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            return self.error(
                request, 400, "ILLEGAL_ARGUMENT", "This API requires X-Restli-Protocol-Version 2.0.0"
            )
        match = _RESOURCE.match(request.url.path)
        if request.method != "GET" or match is None:
            return self.error(request, 404, "NOT_FOUND", "No virtual resource found")
        params = _raw_params(request)
        if match["resource"] == "adAccounts" and params.get("q") == "search":
            return self._account_search(request, params)
        if match["resource"] == "adSegments" and params.get("q") == "accounts":
            return self._segments(request, params)
        return self.error(request, 404, "NOT_FOUND", "No virtual resource found")

    def throttled(self, request: httpx.Request, fault: world.Fault) -> world.WireError:
        """A 429 has no wait estimate; ``wait_minutes`` > 0 makes it the DAY quota (reset at 00:00 UTC)."""
        window = "APPLICATION_AND_MEMBER DAY limit" if fault.wait_minutes > 0 else "limit"
        return world.WireError(
            429,
            "TOO_MANY_REQUESTS",
            f"Resource level throttle {window} for calls to this resource is reached.",
            {"serviceErrorCode": 101},
        )

    # --- resources ----------------------------------------------------------------------------------------

    def search_statuses(self, params: dict[str, str]) -> frozenset[str] | None:
        """The statuses of ``search=(status:(values:List(...)))``; None when not filtered by status."""
        search = params.get("search")
        if search is None:
            return None
        match = _STATUS_SEARCH.match(search)
        if match is None:
            raise ValueError("search")
        return frozenset(match["values"].split(","))

    def _account_search(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        try:
            statuses = self.search_statuses(params)
            size = self.served(_int_param(params, "pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE))
            offset = _decode_token(params.get("pageToken"))
        except ValueError as exc:
            return self.error(request, 400, "ILLEGAL_ARGUMENT", f"Invalid query parameter: {exc}")
        rows = [
            self._account(a)
            for a in self.accounts.values()
            if statuses is None or self._status(a) in statuses
        ]
        end = min(offset + size, len(rows))
        metadata = {"nextPageToken": world.opaque_cursor(end)} if end < len(rows) else {}
        return self._reply({"elements": rows[offset:end], "metadata": metadata})

    def _segments(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        try:
            account_ids = _account_list(params.get("accounts"))
            start = _int_param(params, "start", 0, 0, 10**9)
            count = _int_param(params, "count", DEFAULT_COUNT, 0, 10**9)
        except ValueError as exc:
            return self.error(request, 400, "ILLEGAL_ARGUMENT", f"Invalid query parameter: {exc}")
        unknown = [a for a in account_ids if a not in self.accounts or not self.accounts[a].readable]
        if unknown:
            return self.error(
                request,
                403,
                "ACCESS_DENIED",
                f"Not enough permissions to access: adSegments.FINDER-accounts for {unknown[0]}",
                serviceErrorCode=100,
            )
        day = self.today()
        rows = [
            self.segment(self.accounts[a], i, day)
            for a in account_ids
            for i in range(self.accounts[a].audiences)
        ]
        count = self.served(min(count, MAX_PAGE_SIZE))  # paging.count echoes what was applied
        paging = {"start": start, "count": count, "total": len(rows), "links": []}
        return self._reply({"elements": rows[start : start + count], "paging": paging})

    def _status(self, account: world.SandboxAccount) -> str:
        return "ACTIVE" if account.active else "CANCELED"

    def _account(self, account: world.SandboxAccount) -> dict[str, Any]:
        return {
            "id": int(account.id),
            "name": account.name,
            "status": self._status(account),
            "type": "BUSINESS",
            "currency": "USD",
            "reference": f"urn:li:organization:{world.stable_int(account.id, 'org') % 10**8}",
            "test": False,
            "notifiedOnCampaignOptimization": False,
            "servingStatuses": ["RUNNABLE"] if account.active else ["ACCOUNT_TOTAL_BUDGET_HOLD"],
            "version": {"versionTag": str(world.stable_int(account.id, "version") % 100)},
        }

    @staticmethod
    def segment(account: world.SandboxAccount, index: int, day: dt.date) -> dict[str, Any]:
        """One ad segment as LinkedIn returns it; sizes drift day by day."""
        segment_id = segment_id_of(account.id, index)
        name = world.audience_name(account.id, index)
        created = 1_700_000_000_000 + world.stable_int(segment_id, "created") % 40_000_000_000
        segment: dict[str, Any] = {
            "account": f"{ACCOUNT_URN}{account.id}",
            "created": {"actor": "urn:li:unknown:0", "time": created},
            "id": segment_id,
            "lastModified": {
                "actor": "urn:li:unknown:0",
                "time": created + world.stable_int(segment_id, "mod") % 10**9,
            },
            "name": name,
            "type": "RETARGETING" if "visitors" in name else ("LOOKALIKE" if "Lookalike" in name else "BULK"),
            "versionTag": str(world.stable_int(segment_id, "version") % 10**11),
        }
        if index % 3 == 0:
            segment["description"] = f"Sandbox segment {index} of {account.name}"
        if index == BUILDING_INDEX:
            segment["status"] = "BUILDING"
        else:
            size = world.daily_size(str(segment_id), day)
            segment["status"] = "READY"
            segment["approximateMemberCount"] = 3_000_000_000 + size if index == BIG_SIZE_INDEX else size
        return dict(sorted(segment.items()))

    # --- replies ------------------------------------------------------------------------------------------

    def _reply(self, body: dict[str, Any], status: int = 200) -> httpx.Response:
        headers = {"date": email.utils.format_datetime(self.now().astimezone(dt.UTC), usegmt=True)}
        return httpx.Response(status, json=body, headers=headers)


def _raw_params(request: httpx.Request) -> dict[str, str]:
    """Query parameters as sent, NOT percent-decoded: Rest.li 2.0 structure is only read undecoded."""
    params: dict[str, str] = {}
    for pair in request.url.query.decode("ascii").split("&"):
        if pair:
            name, _, value = pair.partition("=")
            params[name] = value
    return params


def _account_list(raw: str | None) -> list[str]:
    """``List(urn%3Ali%3AsponsoredAccount%3A1,...)`` -> ``["1", ...]``."""
    match = _LIST.match(raw or "")
    if match is None:
        raise ValueError("accounts must be List(<encoded sponsoredAccount URNs>)")
    ids = []
    for item in match["items"].split(","):
        if ":" in item:
            raise ValueError("accounts: a URN inside List() must be percent-encoded")
        urn = unquote(item)
        if not urn.startswith(ACCOUNT_URN) or not urn.removeprefix(ACCOUNT_URN).isdigit():
            raise ValueError(f"accounts: {urn!r} is not a sponsoredAccount URN")
        ids.append(urn.removeprefix(ACCOUNT_URN))
    return ids


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer between {low} and {high}")
    return int(raw)


def _decode_token(raw: str | None) -> int:
    if raw is None:
        return 0
    (offset,) = world.read_cursor(unquote(raw), int)
    return offset


EMULATOR = LinkedInMarketingSandbox
