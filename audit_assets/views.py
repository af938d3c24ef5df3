"""The combined, versioned views and the change report: their frozen columns and each platform's mapping.

This module only describes the views; each warehouse engine renders the description in its own SQL.
A platform contributes a ``V1Mapping`` and a ``V2Mapping``; nothing here knows any platform.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from audit_assets.columns import HT_LEADING_COLUMNS, Column, ColumnType, checked_identifier

SCHEMA = "hightouch_audit"  # the schema of every table and view (Snowflake: HIGHTOUCH_AUDIT)
V1_NAME = "external_audiences_metadata_v1"
V2_NAME = "external_audiences_metadata_v2"
CHANGES_NAME = "audience_size_changes_v1"
SNAPSHOT_LOG = "snapshot_log"  # one row per snapshot written, also one without audiences

# Frozen once released: a later version gets a new name and these stay as they are.
V1_COLUMNS: tuple[Column, ...] = (
    Column("ad_account_id", ColumnType.STRING, "Ad account id without platform prefixes."),
    Column("audience_id", ColumnType.STRING, "The platform's audience id."),
    Column("audience_name", ColumnType.STRING, "The audience name."),
    Column("audience_size", ColumnType.INTEGER, "The platform's size estimate; null when it has none."),
    Column("ht_fetched_at", ColumnType.TIMESTAMP_TZ, "When the snapshot was taken (UTC)."),
    Column("ht_destination", ColumnType.STRING, "Destination type slug."),
    Column("ht_destination_id", ColumnType.STRING, "Hightouch destination id."),
    Column("ht_sync_id", ColumnType.STRING, "Hightouch sync that manages the audience, if any."),
)
_V1 = {c.name: c for c in V1_COLUMNS}
_HT = {c.name: c for c in HT_LEADING_COLUMNS}

# v1's rows with the platform's size range, type and status, and which snapshot each row belongs to.
V2_COLUMNS: tuple[Column, ...] = (
    _V1["ad_account_id"],
    _V1["audience_id"],
    _V1["audience_name"],
    _V1["audience_size"],
    Column("audience_size_lower_bound", ColumnType.INTEGER, "The platform's own lower bound, if any."),
    Column("audience_size_upper_bound", ColumnType.INTEGER, "The platform's own upper bound, if any."),
    Column("audience_type", ColumnType.STRING, "The platform's own word for the kind of audience."),
    Column("audience_status", ColumnType.STRING, "The platform's own delivery or processing status."),
    _HT["ht_snapshot_id"],
    _HT["ht_snapshot_date"],
    _V1["ht_fetched_at"],
    _V1["ht_destination"],
    _V1["ht_destination_id"],
    _V1["ht_sync_id"],
)

# The combined views (one asset each) and their columns.
COMBINED_VIEWS: dict[str, tuple[Column, ...]] = {V1_NAME: V1_COLUMNS, V2_NAME: V2_COLUMNS}
# Every view of a warehouse, each after the views it reads (the change report reads v2).
VIEW_NAMES = (*COMBINED_VIEWS, CHANGES_NAME)

# A snapshot of accounts without audiences writes no audience row; its log row still says it was taken,
# so the change report sees the audiences it no longer has.
SNAPSHOT_LOG_COLUMNS: tuple[Column, ...] = (
    *HT_LEADING_COLUMNS[:6],
    Column("table_name", ColumnType.STRING, "The destination table the snapshot was appended to."),
    Column("audiences", ColumnType.INTEGER, "Audience rows the snapshot wrote (0: its accounts had none)."),
)

CHANGE_KINDS = ("new", "vanished", "grew", "shrank", "unchanged", "unknown")
CHANGE_COLUMNS: tuple[Column, ...] = (
    Column(
        "snapshot_date", ColumnType.DATE, "The day compared with the destination's previous snapshot date."
    ),
    _V1["ht_destination"],
    _V1["ht_destination_id"],
    _V1["ad_account_id"],
    _V1["audience_id"],
    Column("audience_name", ColumnType.STRING, "The audience name (the previous one if it vanished)."),
    Column(
        "audience_size", ColumnType.INTEGER, "Size in the day's last snapshot; null if vanished or unsized."
    ),
    Column("previous_size", ColumnType.INTEGER, "Size in the previous date's last snapshot; null if new."),
    Column(
        "previous_snapshot_date", ColumnType.DATE, "The destination's previous snapshot date; null if new."
    ),
    Column("size_change", ColumnType.INTEGER, "audience_size - previous_size; null if either is null."),
    Column(
        "size_change_pct", ColumnType.FLOAT, "100 x size_change / previous_size; null if previous_size is 0."
    ),
    Column("change_kind", ColumnType.STRING, "One of " + ", ".join(CHANGE_KINDS) + "."),
)


@dataclass(frozen=True)
class V1Mapping:
    """Which columns of a platform's table feed the v1 view.

    ``size_null_values`` lists sentinel sizes the platform uses for "unknown" (Meta's -1); the view
    shows them as null.
    """

    audience_id: str
    audience_name: str
    audience_size: str
    size_null_values: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in (self.audience_id, self.audience_name, self.audience_size):
            checked_identifier(name)
        if not all(type(v) is int for v in self.size_null_values):
            raise TypeError("size_null_values must be integers")


_WORD = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _checked_word(word: str) -> str:
    """A platform's enum name or status word, written into view SQL as a literal: plain characters only."""
    if not _WORD.match(word):
        raise ValueError(f"{word!r} is not a plain word (letters, digits, underscore)")
    return word


@dataclass(frozen=True)
class Words:
    """Where a platform keeps its own word for an audience's type or status.

    A text column; or ``json_key`` of a JSON column (Meta's ``delivery_status.description``); or a
    boolean column whose two states the platform names (``if_true`` / ``if_false``).
    """

    column: str
    json_key: str | None = None
    if_true: str | None = None
    if_false: str | None = None

    def __post_init__(self) -> None:
        checked_identifier(self.column)
        if self.json_key is not None:
            checked_identifier(self.json_key)
        if (self.if_true is None) != (self.if_false is None):
            raise ValueError("a flag needs both if_true and if_false")
        for word in (self.if_true, self.if_false):
            if word is not None:
                _checked_word(word)


@dataclass(frozen=True)
class SizeRange:
    """A column naming a size range (Google's UserListSizeRange) and the bounds each name stands for."""

    column: str
    bounds: Mapping[str, tuple[int | None, int | None]]

    def __post_init__(self) -> None:
        checked_identifier(self.column)
        for name, pair in self.bounds.items():
            _checked_word(name)
            if len(pair) != 2 or not all(b is None or type(b) is int for b in pair):
                raise TypeError(f"the bounds of {name} must be two integers or None")


@dataclass(frozen=True)
class V2Mapping:
    """What v2 adds to a platform's v1 mapping; anything left out is null in the view.

    ``bounds`` is either the two columns of the platform's own range (its v1 ``size_null_values`` are
    null there too) or a ``SizeRange``.
    """

    bounds: tuple[str, str] | SizeRange | None = None
    audience_type: Words | None = None
    audience_status: Words | None = None

    def __post_init__(self) -> None:
        if isinstance(self.bounds, tuple):
            for name in self.bounds:
                checked_identifier(name)


@dataclass(frozen=True)
class ViewSource:
    """One destination table, its columns (to create it if not written yet) and its view mappings."""

    table: str
    mapping: V1Mapping
    columns: tuple[Column, ...]
    v2: V2Mapping = field(default_factory=V2Mapping)

    def __post_init__(self) -> None:
        checked_identifier(self.table)


@dataclass(frozen=True)
class ViewDefinition:
    """What a view asset hands to its warehouse: every destination table the views union.

    The warehouse creates a table not written yet (empty, with its explicit DDL), so a destination's
    first snapshot appears in the view at once; with no destinations the view is empty but typed.
    """

    sources: tuple[ViewSource, ...]
