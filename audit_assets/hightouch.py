"""Hightouch's REST API: which sync manages each audience of a destination (``ht_sync_id``).

Facts: shared/reference/hightouch.md §3 — ``GET /syncs`` pages with offset/limit and ``hasMore``
and has no destination filter, so syncs are filtered here; ``Sync.externalSegment.id`` is "the user
facing ID for any created lists or audiences in the sync destination" and may be missing or empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from audit_assets.platforms.base import BadResponse, require_mapping, require_object_list
from audit_assets.platforms.http import ApiSession, Verdict

PAGE_SIZE = 100  # the API's default and largest page


def classify(response: httpx.Response, body: Any) -> Verdict | None:
    """Hightouch signals everything with the HTTP status (429, 401, 5xx): the shared policy decides."""
    return None


class HightouchClient:
    def __init__(self, base_url: str, session: ApiSession) -> None:
        self._syncs_url = f"{base_url.rstrip('/')}/syncs"
        self._session = session

    def sync_ids_for(self, destination_id: str) -> dict[str, str]:
        """audience id (externalSegment.id) -> sync id, for every sync into ``destination_id``."""
        found: dict[str, str] = {}
        offset = 0
        while True:
            what = f"listing Hightouch syncs from offset {offset}"
            body = require_mapping(
                self._session.get_json(
                    self._syncs_url, params={"limit": PAGE_SIZE, "offset": offset, "orderBy": "id"}, what=what
                ),
                what,
            )
            data = require_object_list(body.get("data"), "'data'", what)
            for sync in data:
                segment = sync.get("externalSegment")
                ours = str(sync.get("destinationId")) == destination_id and sync.get("id") is not None
                if ours and isinstance(segment, Mapping) and segment.get("id"):
                    found[str(segment["id"])] = str(sync["id"])
            if not body.get("hasMore"):
                return found
            if not data:
                raise BadResponse(f"{what}: hasMore is true but the page is empty")
            offset += len(data)
