"""Cursor paging, written once: fetch a page, read it, follow its cursor, refuse to loop.

Each platform supplies only ``read``: it validates one page body and returns the page's audiences and
the cursor of the next page (None at the platform's real end signal). A cursor seen before would
page forever, so it fails the snapshot instead. When the platform refuses a page as too heavy
(PageTooLarge) and says how many items a page holds (``size_param``), the same page is asked for again
with half as many, and later pages keep the smaller size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from audit_assets.platforms.base import Audience, BadResponse, PageTooLarge, require_mapping
from audit_assets.platforms.http import ApiSession

# (page body, "<what>: page <n>") -> (the page's items, the next cursor or None)
ReadPage = Callable[[Mapping[str, Any], str], tuple[list[Audience], str | None]]


def follow_cursor(
    session: ApiSession,
    url: str,
    params: Mapping[str, Any],
    *,
    cursor_param: str,
    read: ReadPage,
    what: str,
    cursor_name: str = "cursor",
    size_param: str | None = None,
) -> Iterator[list[Audience]]:
    """Yield every page of ``url``, sending each next cursor as ``cursor_param`` to the same URL."""
    seen: set[str] = set()
    page_number = 0
    while True:
        page_number += 1
        try:
            answer = session.get_json(url, params=params, what=what)
        except PageTooLarge:
            size = int(params[size_param]) if size_param and size_param in params else 1
            if size <= 1:
                raise
            params = {**params, size_param: size // 2}
            session.log.warning(
                f"{what}: page {page_number} was too heavy for {size}; asking for {size // 2}"
            )
            page_number -= 1
            continue
        body = require_mapping(answer, what)
        items, cursor = read(body, f"{what}: page {page_number}")
        yield items
        if cursor is None:
            return
        if cursor in seen:
            raise BadResponse(f"{what}: paging repeated a {cursor_name} at page {page_number}")
        seen.add(cursor)
        params = {**params, cursor_param: cursor}
