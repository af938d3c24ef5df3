"""Emulates Hightouch's ``GET /api/v1/syncs``: offset/limit paging with ``hasMore``, Bearer API keys.

Shapes follow Hightouch's OpenAPI (``Sync`` with ``destinationId`` and ``externalSegment.id``).
Sandbox destinations have non-numeric ids (``sandbox_meta``), so their syncs carry those as
``destinationId``; real Hightouch ids are numbers, which the client compares as text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from audit_assets.sandbox.meta import audience_id_of
from audit_assets.sandbox.world import (
    ApiEmulator,
    Fault,
    Faults,
    WireError,
    bearer,
    one_of,
    utc_today,
)

DEMO_CREDENTIALS = {"api_key": "sandbox-hightouch-demo-key"}
MAX_LIMIT = 100


def sync(sync_id: int, destination_id: str | int, external_id: str | None) -> dict[str, Any]:
    return {
        "id": sync_id,
        "slug": f"sandbox-sync-{sync_id}",
        "workspaceId": 1,
        "createdAt": "2026-01-02T10:00:00.000Z",
        "updatedAt": "2026-01-02T10:00:00.000Z",
        "destinationId": destination_id,
        "modelId": 7,
        "configuration": {},
        "schedule": None,
        "status": "success",
        "disabled": False,
        "lastRunAt": "2026-01-02T10:05:00.000Z",
        "referencedColumns": [],
        "primaryKey": "email",
        "externalSegment": {"id": external_id} if external_id else {},
        "tags": {},
    }


def default_syncs() -> list[dict[str, Any]]:
    """Four syncs feed sandbox_meta audiences; many more belong to other destinations (so paging shows)."""
    ours = [
        sync(90210, "sandbox_meta", audience_id_of("1000000001", 0)),
        sync(90211, "sandbox_meta", audience_id_of("1000000001", 1)),
        sync(90212, "sandbox_meta", audience_id_of("1000000001", 7)),
        sync(90213, "sandbox_meta", audience_id_of("1000000002", 2)),
        sync(90214, "sandbox_meta", None),  # a sync that has created no audience yet
    ]
    others = [sync(80000 + i, 48213, f"other-{i}") for i in range(150)]
    return sorted([*ours, *others], key=lambda s: s["id"])


class HightouchSandbox(ApiEmulator):
    server_error = WireError(500, None, "Internal server error")

    def __init__(
        self,
        syncs: Sequence[dict[str, Any]] | None = None,
        *,
        faults: Faults | None = None,
        api_key: str = DEMO_CREDENTIALS["api_key"],
        today: Callable[[], dt.date] = utc_today,
    ) -> None:
        super().__init__(faults, today)
        self.syncs = list(syncs) if syncs is not None else default_syncs()
        self.credentials = (bearer(one_of({api_key}), WireError(401, None, "Invalid API key")),)

    def envelope(self, request: httpx.Request, error: WireError) -> httpx.Response:
        """``{message}``."""
        return httpx.Response(error.status, json={"message": error.message}, headers=error.headers)

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET" or not request.url.path.endswith("/api/v1/syncs"):
            return self.error(request, 404, None, "Not found")
        try:
            limit = min(MAX_LIMIT, max(1, int(request.url.params.get("limit", MAX_LIMIT))))
            offset = max(0, int(request.url.params.get("offset", 0)))
        except ValueError:
            return self.error(request, 400, None, "limit and offset must be integers")
        page = self.syncs[offset : offset + limit]
        return httpx.Response(200, json={"data": page, "hasMore": offset + limit < len(self.syncs)})

    def throttled(self, request: httpx.Request, fault: Fault) -> WireError:
        return WireError(429, None, "Too many requests", headers={"retry-after": "1"})


EMULATOR = HightouchSandbox
