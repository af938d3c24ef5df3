"""Emulates the TikTok API for Business endpoints we use, in their wire format.

``GET /open_api/v1.3/oauth2/advertiser/get/`` (app_id and secret in the query), ``advertiser/info/``
(``advertiser_ids`` and ``fields`` as JSON arrays) and ``dmp/custom_audience/list/`` (``page`` /
``page_size`` <= 100, ``data.page_info``). Every answer is the ``{code, message, request_id, data}``
envelope, errors included: they come with HTTP 200 and a non-zero ``code`` (40104/40105 for a missing
or wrong ``Access-Token`` header, 40100 for the QPS limit, 40001 for an advertiser that did not
authorise the app). Paths without their trailing slash get the platform's plain-text 404.
Sources: see the module docstring of ``audit_assets.platforms.tiktok``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any, Unpack

import httpx

from audit_assets.sandbox import world

DEMO_CREDENTIALS = {
    "access_token": "sandbox-tiktok-demo-token",
    "app_id": "7000000000000000001",
    "secret": "sandbox-tiktok-demo-secret",
}
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
MAX_INFO_IDS = 100
BIG_AUDIENCE = 2**31  # added to one audience in five, so sizes above int32 are always served

_AUDIENCE_TYPES = {
    "lookalike": "Lookalike Audience",
    "website": "Website Traffic",
    "cart": "Website Traffic",
    "app": "App Activity",
    "engagement": "Engagement",
}
_API_PATH = re.compile(r"^(?P<prefix>.*?)/open_api/v1\.3/(?P<rest>.+)$")


def audience_id_of(account_id: str, index: int) -> str:
    """The 19-digit id the sandbox gives the index-th audience of an advertiser."""
    return f"71{account_id[-4:]}{index:013d}"


def audience_size(account_id: str, index: int, day: dt.date) -> int | None:
    """``cover_num`` on ``day``: null while "calculating" (one in five), above 2**31 for another one."""
    if index % 5 == 3:
        return None
    size = world.daily_size(audience_id_of(account_id, index), day)
    return BIG_AUDIENCE + size if index % 5 == 4 else size


def sandbox_audience(account_id: str, index: int, day: dt.date) -> dict[str, Any]:
    """One audience object as dmp/custom_audience/list returns it."""
    audience_id = audience_id_of(account_id, index)
    name = world.audience_name(account_id, index)
    kind = _AUDIENCE_TYPES.get(world.audience_kind(index), "Customer File")
    created = dt.datetime(2025, 1, 1) + dt.timedelta(
        seconds=world.stable_int(audience_id, "created") % 30_000_000
    )
    size = audience_size(account_id, index, day)
    shared = index % 7 == 6
    return {
        "audience_id": audience_id,
        "name": name,
        "audience_type": kind,
        "cover_num": size,
        "is_valid": size is not None,
        "is_expiring": world.unit(audience_id, "expiring") < 0.2,
        "expired_time": (created + dt.timedelta(days=365)).strftime("%Y-%m-%d %H:%M:%S"),
        "create_time": created.strftime("%Y-%m-%d %H:%M:%S"),
        "shared": shared,
        "is_creator": not shared,
        "calculate_type": "SHA256" if kind == "Customer File" else None,
    }


class TikTokBusinessSandbox(world.PlatformEmulator):
    server_error = world.WireError(500, 50000, "System error.")

    def __init__(
        self,
        accounts: Sequence[world.SandboxAccount] = world.DEFAULT_ACCOUNTS,
        *,
        access_token: str = DEMO_CREDENTIALS["access_token"],
        app_id: str = DEMO_CREDENTIALS["app_id"],
        secret: str = DEMO_CREDENTIALS["secret"],
        revoke_after_uses: int | None = None,
        **options: Unpack[world.EmulatorOptions],
    ) -> None:
        super().__init__(accounts, **options)
        self.access_token = access_token
        self.app_id = app_id
        self.secret = secret
        self.revoke_after_uses = revoke_after_uses  # the advertiser revokes the token after N calls
        self.token_uses = 0
        self.credentials = (
            world.HeaderCredential(
                "access-token",
                self._token_accepted,
                world.WireError(200, 40105, "Access token is incorrect or has been revoked."),
                missing=world.WireError(
                    200, 40104, "Access token is null, set it in the http header with key Access-Token."
                ),
            ),
        )

    def envelope(self, request: httpx.Request, error: world.WireError) -> httpx.Response:
        """``{code, message, request_id, data}``, as every TikTok answer is; errors mostly in HTTP 200."""
        body = {"code": error.code, "message": error.message, "request_id": _request_id(request), "data": {}}
        return httpx.Response(error.status, json=body, headers=error.headers)

    def route(self, request: httpx.Request) -> httpx.Response:
        match = _API_PATH.match(request.url.path)
        if request.method != "GET" or match is None or not match["rest"].endswith("/"):
            return httpx.Response(404, text="404 page not found")
        rest = match["rest"].rstrip("/")
        if rest == "oauth2/advertiser/get":
            return self._advertisers(request)
        if rest == "advertiser/info":
            return self._advertiser_info(request)
        if rest == "dmp/custom_audience/list":
            return self._audience_page(request)
        return httpx.Response(404, text="404 page not found")

    def throttled(self, request: httpx.Request, fault: world.Fault) -> world.WireError:
        return world.WireError(
            200, 40100, f"App {self.app_id} reached the QPS limit 10 (current QPS 14); retry later."
        )

    def _token_accepted(self, token: str) -> bool:
        with self._lock:
            self.token_uses += 1
            revoked = self.revoke_after_uses is not None and self.token_uses > self.revoke_after_uses
        return token == self.access_token and not revoked

    def _ok(self, request: httpx.Request, data: dict[str, Any]) -> httpx.Response:
        return httpx.Response(
            200, json={"code": 0, "message": "OK", "request_id": _request_id(request), "data": data}
        )

    def _advertisers(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if not params.get("app_id") or not params.get("secret"):
            return self.error(request, 200, 40002, "app_id and secret are required.")
        if params["app_id"] != self.app_id:
            return self.error(request, 200, 40113, "The app_id does not match the app of the access token.")
        if params["secret"] != self.secret:
            return self.error(request, 200, 40101, "The secret does not match the app_id.")
        items = [{"advertiser_id": a.id, "advertiser_name": a.name} for a in self.accounts.values()]
        return self._ok(request, {"list": items})

    def _advertiser_info(self, request: httpx.Request) -> httpx.Response:
        try:
            ids = _json_list(request.url.params.get("advertiser_ids"))
            fields = _json_list(request.url.params.get("fields", "[]"))
        except ValueError:
            return self.error(
                request, 200, 40002, "advertiser_ids and fields must be JSON arrays of strings."
            )
        if not 1 <= len(ids) <= MAX_INFO_IDS:
            return self.error(
                request, 200, 40002, f"advertiser_ids: length must be between 1 and {MAX_INFO_IDS}."
            )
        items = []
        for advertiser_id in ids:
            account = self.accounts.get(advertiser_id)
            if account is None:
                continue
            info = {
                "advertiser_id": account.id,
                "name": account.name,
                "status": "STATUS_ENABLE" if account.active else "STATUS_DISABLE",
                "currency": "USD",
                "timezone": "Etc/GMT",
                "role": "ROLE_ADVERTISER",
                "create_time": 1_700_000_000 + world.stable_int(account.id) % 30_000_000,
            }
            items.append({k: v for k, v in info.items() if not fields or k in fields})
        return self._ok(request, {"list": items})

    def _audience_page(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        advertiser_id = params.get("advertiser_id", "")
        try:
            page = int(params.get("page", 1))
            page_size = int(params.get("page_size", DEFAULT_PAGE_SIZE))
        except ValueError:
            return self.error(request, 200, 40002, "page and page_size must be integers.")
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            return self.error(
                request, 200, 40002, f"page must be >= 1 and page_size in [1, {MAX_PAGE_SIZE}]."
            )
        account = self.accounts.get(advertiser_id)
        if account is None or not account.readable:
            return self.error(request, 200, 40001, f"No permission to operate advertiser {advertiser_id}.")
        page_size = self.served(page_size)
        day = self.today()
        start = (page - 1) * page_size
        end = min(start + page_size, account.audiences)
        items = [sandbox_audience(account.id, i, day) for i in range(start, end)]
        page_info = {
            "page": page,
            "page_size": page_size,
            "total_number": account.audiences,
            "total_page": -(-account.audiences // page_size),
        }
        return self._ok(request, {"list": items, "page_info": page_info})


def _json_list(raw: str | None) -> list[str]:
    value = json.loads(raw or "")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("not a JSON array of strings")
    return value


def _request_id(request: httpx.Request) -> str:
    return f"20260101{world.stable_int(str(request.url), len(request.url.path)) % 10**18:018d}"


EMULATOR = TikTokBusinessSandbox
