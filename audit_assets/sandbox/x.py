"""Emulates the X Ads API endpoints we use: ``GET 12/accounts`` and ``GET 12/accounts/{id}/custom_audiences``.

Wire format per docs.x.com (see audit_assets/platforms/x.py for the sources): every request must carry a
valid OAuth 1.0a HMAC-SHA1 signature (checked here with oauthlib's RFC 5849 base-string rules; a bad one,
or a replayed nonce, is HTTP 401 UNAUTHORIZED_ACCESS); ``count`` 1..1000 and an opaque ``cursor``;
``next_cursor`` null only when a page holds fewer than ``count`` items; errors as
``{"errors": [{"code", "message"}], "request": {"params"}}``; throttles as HTTP 429 with
``x-rate-limit-*`` and, on per-account endpoints, ``x-account-rate-limit-*`` headers (reset in epoch
seconds) and a Date header from the emulator's clock. The 429 and 500 error constants
(TOO_MANY_REQUESTS, INTERNAL_ERROR) follow the error-codes page; the 429 one is UNCONFIRMED.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Unpack

import httpx
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature

from audit_assets.sandbox import world

DEMO_CREDENTIALS = {
    "consumer_key": "sandbox-x-consumer-key",
    "consumer_secret": "sandbox-x-consumer-secret",
    "access_token": "1000000001-sandbox-x-access-token",
    "access_token_secret": "sandbox-x-access-token-secret",
}
DEFAULT_COUNT = 200
MAX_COUNT = 1000
RATE_LIMIT = 2000  # requests per 15-minute window, as the headers report it
HUGE_INDEX = 3  # this audience of every account is above 2**31, to exercise int64 end to end
PROCESSING_INDEX = 4  # this one is still processing: audience_size null, not targetable

_AUDIENCE_TYPES = {"website": "WEB", "cart": "WEB", "app": "MOBILE"}
_VERSIONED = re.compile(r"^(?P<prefix>.*?)/(?P<version>\d+)/(?P<rest>.+)$")
_AUDIENCES = re.compile(r"accounts/(?P<account>[^/]+)/custom_audiences")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _BASE36[digit] + digits
        if number == 0:
            return digits


def audience_id_of(account_id: str, index: int) -> str:
    """The base-36 id the sandbox gives the index-th custom audience of an account."""
    return base36(int(account_id) * 1000 + index)


class OAuth1Signature:
    """X's credential check: a valid OAuth 1.0a HMAC-SHA1 signature over method, URL, query and form
    body, each nonce good for one request only (RFC 5849 §3.3)."""

    refused = world.WireError(401, "UNAUTHORIZED_ACCESS", "This request is not properly authenticated")

    def __init__(self, credentials: Mapping[str, str]) -> None:
        self.credentials = dict(credentials)
        self._nonces: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def refusal(self, request: httpx.Request) -> world.WireError | None:
        return None if self._signed(request) else self.refused

    def _signed(self, request: httpx.Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("OAuth "):
            return False
        form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        body = request.content.decode() if form else None
        try:
            params = signature.collect_parameters(
                uri_query=request.url.query.decode(),
                body=body,
                headers={"Authorization": header},
                exclude_oauth_signature=False,
            )
        except ValueError:
            return False
        oauth = dict(p for p in params if p[0].startswith("oauth_"))
        creds = self.credentials
        if (
            oauth.get("oauth_consumer_key") != creds["consumer_key"]
            or oauth.get("oauth_token") != creds["access_token"]
            or oauth.get("oauth_signature_method") != "HMAC-SHA1"
            or oauth.get("oauth_version", "1.0") != "1.0"
            or not oauth.get("oauth_nonce")
            or not oauth.get("oauth_timestamp", "").isdigit()
        ):
            return False
        checked = OAuthRequest(str(request.url), request.method, body, {"Authorization": header})
        checked.params = [p for p in params if p[0] != "oauth_signature"]
        checked.signature = oauth.get("oauth_signature", "")
        if not signature.verify_hmac_sha1(checked, creds["consumer_secret"], creds["access_token_secret"]):
            return False
        with self._lock:
            key = (oauth["oauth_nonce"], oauth["oauth_timestamp"])
            if key in self._nonces:
                return False
            self._nonces.add(key)
        return True


class XAdsSandbox(world.PlatformEmulator):
    server_error = world.WireError(500, "INTERNAL_ERROR", "Internal error")

    def __init__(
        self,
        accounts: Sequence[world.SandboxAccount] = world.DEFAULT_ACCOUNTS,
        *,
        credentials: Mapping[str, str] = DEMO_CREDENTIALS,
        clock: Callable[[], float] = time.time,
        **options: Unpack[world.EmulatorOptions],
    ) -> None:
        super().__init__(accounts, **options)
        self.credentials = (OAuth1Signature(credentials),)
        self.clock = clock  # X's clock: the Date header and rate-limit resets

    def handle(self, request: httpx.Request) -> httpx.Response:
        response = super().handle(request)
        response.headers["date"] = email.utils.formatdate(self.clock(), usegmt=True)
        return response

    def envelope(self, request: httpx.Request, error: world.WireError) -> httpx.Response:
        """``{"errors": [{code, message}], "request": {"params"}}``; the Date header comes in ``handle``."""
        body = {
            "errors": [{"code": error.code, "message": error.message}],
            "request": {"params": dict(error.extra)},
        }
        return httpx.Response(error.status, json=body, headers=error.headers)

    def route(self, request: httpx.Request) -> httpx.Response:
        match = _VERSIONED.match(request.url.path)
        if request.method != "GET" or match is None:
            return self.error(request, 404, "ROUTE_NOT_FOUND", "The requested resource could not be found")
        if match["version"] != "12":
            return self.error(request, 400, "INVALID", f"Version {match['version']}.0 is not available.")
        rest = match["rest"]
        if rest == "accounts":
            return self._page(request, [self._account(a) for a in self.accounts.values()], {})
        edge = _AUDIENCES.fullmatch(rest)
        if edge is None:
            return self.error(request, 404, "ROUTE_NOT_FOUND", "The requested resource could not be found")
        account = self.accounts.get(edge["account"])
        params = {"account_id": edge["account"]}
        if account is None:
            return self.error(
                request, 403, "ACCOUNT_NOT_FOUND", f"Account {edge['account']} was not found", **params
            )
        if not account.readable:
            return self.error(
                request,
                403,
                "UNAUTHORIZED_ACCESS",
                "This request is not authorized to access this account",
                **params,
            )
        day = self.today()
        audiences = [self._audience(account, i, day) for i in range(account.audiences)]
        return self._page(request, audiences, params)

    def throttled(self, request: httpx.Request, fault: world.Fault) -> world.WireError:
        now = int(self.clock())
        reset = str(now + fault.wait_minutes * 60)
        # The user-token limit still has room; on per-account endpoints the account limit is spent.
        headers = {
            "x-rate-limit-limit": str(RATE_LIMIT),
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": reset,
        }
        if _AUDIENCES.search(request.url.path):
            headers |= {
                "x-rate-limit-remaining": str(RATE_LIMIT // 2),
                "x-rate-limit-reset": str(now + 60),
                "x-account-rate-limit-limit": str(RATE_LIMIT),
                "x-account-rate-limit-remaining": "0",
                "x-account-rate-limit-reset": reset,
            }
        return world.WireError(429, "TOO_MANY_REQUESTS", "Rate limit exceeded", headers=headers)

    def _page(
        self, request: httpx.Request, rows: list[dict[str, Any]], params: dict[str, str]
    ) -> httpx.Response:
        query = request.url.params
        try:
            count = int(query.get("count", DEFAULT_COUNT))
        except ValueError:
            count = 0
        if not 1 <= count <= MAX_COUNT:
            return self.error(
                request, 400, "INVALID_PARAMETER", f"Expected count to be between 1 and {MAX_COUNT}", **params
            )
        cursor = query.get("cursor")
        offset = _offset(cursor) if cursor is not None else 0
        if offset is None or offset > len(rows):
            return self.error(request, 400, "INVALID_PARAMETER", f"Invalid cursor: {cursor}", **params)
        served = self.served(count)
        items = rows[offset : offset + served]
        echoed = {**params, **{k: query[k] for k in ("count", "cursor") if k in query}}
        body = {
            "request": {"params": echoed},
            "data": items,
            # Only a short page is the end: a full last page still gets a cursor (to an empty page).
            "next_cursor": _cursor(offset + served) if len(items) == served else None,
        }
        return httpx.Response(200, json=body)

    @staticmethod
    def _account(account: world.SandboxAccount) -> dict[str, Any]:
        created = dt.datetime.fromtimestamp(1_500_000_000 + world.stable_int(account.id) % 10**8, dt.UTC)
        return {
            "name": account.name,
            "business_name": None,
            "timezone": "America/Los_Angeles",
            "timezone_switch_at": _iso(created),
            "id": account.id,
            "created_at": _iso(created),
            "updated_at": _iso(created + dt.timedelta(days=30)),
            "business_id": None,
            "approval_status": "ACCEPTED" if account.active else "REJECTED",
            "deleted": False,
        }

    @staticmethod
    def _audience(account: world.SandboxAccount, index: int, day: dt.date) -> dict[str, Any]:
        audience_id = audience_id_of(account.id, index)
        name = world.audience_name(account.id, index)
        kind = _AUDIENCE_TYPES.get(world.audience_kind(index), "CRM")
        size: int | None = world.daily_size(audience_id, day)
        if index == HUGE_INDEX:
            size = 2**31 + 1000 * world.daily_size(audience_id, day)
        if index == PROCESSING_INDEX:
            size = None
        created = dt.datetime.fromtimestamp(1_650_000_000 + world.stable_int(audience_id) % 10**8, dt.UTC)
        return {
            "id": audience_id,
            "name": name,
            "description": f"Sandbox audience {index} of {account.name}",
            "audience_size": size,
            "audience_type": kind,
            "targetable": size is not None,
            "targetable_types": [kind, f"EXCLUDED_{kind}"],
            "reasons_not_targetable": [] if size is not None else ["TOO_SMALL"],
            "partner_source": "OTHER",
            "permission_level": "READ_WRITE",
            "owner_account_id": account.id,
            "is_owner": True,
            "created_at": _iso(created),
            "updated_at": _iso(dt.datetime.combine(day, dt.time(4, 0), dt.UTC)),
            "deleted": False,
        }


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cursor(offset: int) -> str:
    return f"c-{base36(offset * 7919 + 36**4)}"


def _offset(cursor: str) -> int | None:
    raw = cursor.removeprefix("c-")
    if raw == cursor or not raw or any(ch not in _BASE36 for ch in raw):
        return None
    offset, rest = divmod(int(raw, 36) - 36**4, 7919)
    return offset if rest == 0 and offset >= 0 else None


EMULATOR = XAdsSandbox
