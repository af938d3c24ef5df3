"""The combined, versioned views: their frozen columns and each platform's mapping onto them.

This module only describes a view; each warehouse engine renders the description in its own SQL.
A platform contributes one ``V1Mapping``; nothing here knows any platform.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit_assets.columns import Column, ColumnType, checked_identifier

SCHEMA = "hightouch_audit"  # the schema of every table and view (Snowflake: HIGHTOUCH_AUDIT)
V1_NAME = "external_audiences_metadata_v1"

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


@dataclass(frozen=True)
class ViewSource:
    """One destination table, its columns (to create it if not written yet) and its view mapping."""

    table: str
    mapping: V1Mapping
    columns: tuple[Column, ...]

    def __post_init__(self) -> None:
        checked_identifier(self.table)


@dataclass(frozen=True)
class ViewDefinition:
    """What the v1 view asset hands to its warehouse: every destination table the view unions.

    The warehouse creates a table not written yet (empty, with its explicit DDL), so a destination's
    first snapshot appears in the view at once; with no destinations the view is empty but typed.
    """

    sources: tuple[ViewSource, ...]
