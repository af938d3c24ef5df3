"""Emulates the Pinterest API v5 endpoints we use: ``ad_accounts``, ``ad_accounts/{id}/audiences``, ``oauth/token``.

Shapes follow pinterest/api-description ``v5/openapi.yaml`` (5.23.0): ``{items, bookmark}`` pages where
only a null bookmark ends a list, ``page_size`` 1..250 (default 25), ``include_shared_accounts``
(default true), ``AdAccount`` and ``Audience`` objects, ``{code, message}`` errors (401 code 2, 403
code 29, 429 code 8), and a token endpoint with HTTP Basic client authentication whose refresh
response carries a new refresh token. Accounts are listed only while active (v5 has no account
status). The ``x-ratelimit-*`` headers on a 429 follow Airbyte's Pinterest connector, which waits
``X-RateLimit-Reset`` seconds; Pinterest's docs do not describe them (UNCONFIRMED).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Collection, Sequence
from typing import Any, Unpack

import httpx

from audit_assets.sandbox import world
from audit_assets.sandbox.oauth import TokenIssuer

DEMO_CREDENTIALS = {
    "client_id": "1500000001",
    "client_secret": "sandbox-pinterest-demo-secret",
    "refresh_token": "pinr.sandbox-pinterest-demo-refresh",
}
TOKEN_PATH = "/v5/oauth/token"
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 250
ACCESS_TOKEN_SECONDS = 30 * 24 * 3600
REFRESH_TOKEN_SECONDS = 60 * 24 * 3600
RATE_LIMIT_PER_MINUTE = 1000  # ads_read, Standard access
SANDBOX_USER_ID = "7000000000000001"
DEFAULT_SHARED = frozenset({"1000000002"})  # reached through Business Access, not owned

_AUDIENCE_TYPES = {"lookalike": "ACTALIKE", "website": "VISITOR", "engagement": "ENGAGEMENT"}
_API = re.compile(r"^(?P<prefix>.*?)/v5/(?P<rest>.+)$")
_AUDIENCES = re.compile(r"ad_accounts/(?P<id>[0-9]+)/audiences")


def audience_id_of(account_id: str, index: int) -> str:
    """The id the sandbox gives the index-th audience of an account."""
    return f"2542{account_id[-4:]}{index:08d}"


def audience_size(account_id: str, index: int, day: dt.date) -> int | None:
    """Null while an audience initialises (every 4th, from the 3rd); actalikes exceed 2**31."""
    if index % 4 == 2:
        return None
    size = world.daily_size(audience_id_of(account_id, index), day)
    return 2**31 + size if world.audience_kind(index) == "lookalike" else size


class PinterestSandbox(world.PlatformEmulator):
    token_path = TOKEN_PATH
    server_error = world.WireError(500, 500, "Internal server error; please retry later.")

    def __init__(
        self,
        accounts: Sequence[world.SandboxAccount] = world.DEFAULT_ACCOUNTS,
        *,
        shared: Collection[str] = DEFAULT_SHARED,
        access_token: str | None = None,
        client_id: str = DEMO_CREDENTIALS["client_id"],
        client_secret: str = DEMO_CREDENTIALS["client_secret"],
        refresh_token: str = DEMO_CREDENTIALS["refresh_token"],
        expire_after_uses: int | None = None,
        rotate_refresh_token: bool = True,
        empty_pages: int = 0,
        **options: Unpack[world.EmulatorOptions],
    ) -> None:
        super().__init__(accounts, **options)
        self.shared = frozenset(shared)
        self.issuer = TokenIssuer(
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            client_auth="basic",
            expires_in=ACCESS_TOKEN_SECONDS,
            expire_after_uses=expire_after_uses,
            rotate_refresh_token=rotate_refresh_token,
            prefix="pina",
            long_lived=() if access_token is None else (access_token,),  # access_token-only credentials
        )
        self.credentials = (
            world.bearer(
                self.issuer.accepts,
                world.WireError(401, 2, "Authentication failed."),
            ),
        )
        self.empty_pages = empty_pages  # empty pages (with a bookmark) served after an audience list's first

    def envelope(self, request: httpx.Request, error: world.WireError) -> httpx.Response:
        """Pinterest's ``{code, message}``."""
        return httpx.Response(
            error.status, json={"code": error.code, "message": error.message}, headers=error.headers
        )

    def route(self, request: httpx.Request) -> httpx.Response:
        match = _API.match(request.url.path)
        if match is None:
            return self.error(request, 404, 404, "Not found.")
        rest = match["rest"]
        if request.method != "GET":
            return self.error(request, 405, 405, "Method not allowed.")
        if rest == "ad_accounts":
            return self._accounts_page(request)
        edge = _AUDIENCES.fullmatch(rest)
        if edge is None:
            return self.error(request, 404, 404, "Not found.")
        account = self.accounts.get(edge["id"])
        if account is None or not account.active or not account.readable:
            return self.error(request, 403, 29, "You are not permitted to access that resource.")
        day = self.today()
        rows = [self._audience(account, i, day) for i in range(account.audiences)]
        return self._paged(request, rows, self.empty_pages, "Invalid ad account audience parameters.")

    def throttled(self, request: httpx.Request, fault: world.Fault) -> world.WireError:
        return world.WireError(
            429,
            8,
            "Rate limit exceeded for this request; wait for the limit to reset.",
            headers={
                "x-ratelimit-limit": str(RATE_LIMIT_PER_MINUTE),
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(fault.wait_minutes * 60),
            },
        )

    def token_answer(self, request: httpx.Request, issuer: TokenIssuer) -> httpx.Response:
        """The issuer's answer in Pinterest's form: ``{code, message}`` errors, refresh-token fields."""
        response = issuer.token_response(request)
        body = json.loads(response.content)
        if response.status_code != 200:
            code = 2 if response.status_code == 401 else 1
            return self.error(
                request, response.status_code, code, body.get("error_description", body["error"])
            )
        body.setdefault("refresh_token", issuer.refresh_token)
        midnight = dt.datetime.combine(self.today(), dt.time(), dt.UTC)
        body |= {
            "response_type": "refresh_token",
            "scope": "ads:read",
            "refresh_token_expires_in": REFRESH_TOKEN_SECONDS,
            "refresh_token_expires_at": int(midnight.timestamp()) + REFRESH_TOKEN_SECONDS,
        }
        return httpx.Response(200, json=body)

    def _accounts_page(self, request: httpx.Request) -> httpx.Response:
        include_shared = request.url.params.get("include_shared_accounts", "true").lower() != "false"
        rows = [
            self._account(a)
            for a in self.accounts.values()
            if a.active and (include_shared or a.id not in self.shared)
        ]
        return self._paged(request, rows, 0, "Invalid parameters.")

    def _paged(
        self, request: httpx.Request, rows: list[dict[str, Any]], empty_pages: int, invalid: str
    ) -> httpx.Response:
        try:
            size, offset, empties = _position(request)
        except ValueError:
            return self.error(request, 400, 400, invalid)
        size = self.served(size)
        if offset == size and offset < len(rows) and empties < empty_pages:
            return httpx.Response(
                200, json={"items": [], "bookmark": world.opaque_cursor(offset, empties + 1)}
            )
        end = min(offset + size, len(rows))
        bookmark = world.opaque_cursor(end, empties) if end < len(rows) else None
        return httpx.Response(200, json={"items": rows[offset:end], "bookmark": bookmark})

    def _account(self, account: world.SandboxAccount) -> dict[str, Any]:
        shared = account.id in self.shared
        created = 1_600_000_000 + world.stable_int(account.id, "created") % 100_000_000
        owner_id = (
            f"70000000{world.stable_int(account.id, 'owner') % 10**8:08d}" if shared else SANDBOX_USER_ID
        )
        return {
            "id": account.id,
            "name": account.name,
            "owner": {"id": owner_id, "username": f"sandbox_{owner_id[-4:]}"},
            "country": "US",
            "currency": "USD",
            "permissions": (
                ["FINANCE_MANAGER"]  # billing only: the account is listed, its audiences refused
                if not account.readable
                else ["ANALYST", "AUDIENCE_MANAGER"]
                if shared
                else ["OWNER"]
            ),
            "created_time": created,
            "updated_time": created + world.stable_int(account.id, "updated") % 1_000_000,
        }

    @staticmethod
    def _audience(account: world.SandboxAccount, index: int, day: dt.date) -> dict[str, Any]:
        audience_id = audience_id_of(account.id, index)
        name = world.audience_name(account.id, index)
        kind = _audience_type(index)
        size = audience_size(account.id, index, day)
        created = 1_650_000_000 + world.stable_int(audience_id, "created") % 50_000_000
        return {
            "id": audience_id,
            "ad_account_id": account.id,
            "name": name,
            "description": None if index % 3 == 1 else f"Sandbox audience {index} of {account.name}",
            "audience_type": kind,
            "status": "INITIALIZING" if size is None else "READY",
            "size": size,
            "rule": _rule(account.id, index, kind),
            "type": "audience",
            "created_by_company_name": "Sandbox Co" if index % 2 == 0 else None,
            "created_timestamp": created,
            "updated_timestamp": created + world.stable_int(audience_id, "updated") % 1_000_000,
        }


def _audience_type(index: int) -> str:
    return _AUDIENCE_TYPES.get(world.audience_kind(index), "CUSTOMER_LIST")


def _rule(account_id: str, index: int, kind: str) -> dict[str, Any]:
    """An ``AudienceRule`` of the shape the schema's description gives for each audience type."""
    if kind == "ACTALIKE":
        return {"seed_id": [audience_id_of(account_id, 0)], "country": "US", "percentage": 1}
    if kind == "VISITOR":
        return {
            "visitor_source_id": f"5497{account_id[-4:]}0001",
            "retention_days": 90,
            "event_source": {"=": ["web", "mobile"]},
            "ingestion_source": {"=": ["tag"]},
        }
    if kind == "ENGAGEMENT":
        return {"engagement_domain": ["www.example.com"], "engager_type": 1}
    return {"customer_list_id": f"2542{account_id[-4:]}9{index:07d}", "retention_days": 180}


def _position(request: httpx.Request) -> tuple[int, int, int]:
    """(page_size, offset, empty pages served so far); ValueError for what Pinterest rejects with 400."""
    params = request.url.params
    size = int(params.get("page_size", DEFAULT_PAGE_SIZE))
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError("page_size out of range")
    bookmark = params.get("bookmark")
    if not bookmark:
        return size, 0, 0
    offset, empties = world.read_cursor(bookmark, int, int)
    return size, offset, empties


EMULATOR = PinterestSandbox
