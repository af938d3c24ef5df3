"""The column vocabulary shared by platforms, snapshots and warehouses.

Platforms declare their API fields in these terms; each warehouse engine maps them to its own DDL
types, so no platform module ever names a warehouse type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class ColumnType(Enum):
    STRING = "string"
    INTEGER = "integer"  # 64-bit signed
    FLOAT = "float"
    BOOLEAN = "boolean"
    JSON = "json"  # nested objects and arrays, stored as JSON (Snowflake: VARIANT)
    DATE = "date"
    TIMESTAMP_TZ = "timestamp_tz"  # always UTC


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    description: str = ""


@dataclass(frozen=True)
class ApiField:
    """One top-level field of a platform's audience object, and the typed column that holds it."""

    api_name: str
    type: ColumnType
    description: str = ""

    @property
    def column(self) -> str:
        return snake_case(self.api_name)


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,254}$")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``approximateMemberCount`` -> ``approximate_member_count``; snake_case names pass unchanged."""
    return _CAMEL_BOUNDARY.sub("_", name).replace("-", "_").lower()


def checked_identifier(name: str) -> str:
    """Return ``name`` if it is a plain lower-case SQL identifier; raise otherwise.

    Every table, column and view name that reaches SQL text passes through here, so nothing from
    configuration or an API response can change the shape of a statement.
    """
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid identifier (lower-case letters, digits, underscore)")
    return name


HT_LEADING_COLUMNS: tuple[Column, ...] = (
    Column("ht_snapshot_id", ColumnType.STRING, "One value per snapshot, unique across snapshots."),
    Column("ht_snapshot_date", ColumnType.DATE, "The daily partition this snapshot was taken for (UTC)."),
    Column(
        "ht_fetched_at",
        ColumnType.TIMESTAMP_TZ,
        "When this snapshot was taken (UTC); one value per snapshot.",
    ),
    Column("ht_run_id", ColumnType.STRING, "The Dagster run that took the snapshot."),
    Column("ht_destination", ColumnType.STRING, "Destination type slug, e.g. meta."),
    Column("ht_destination_id", ColumnType.STRING, "Hightouch destination id."),
    Column("ht_ad_account_id", ColumnType.STRING, "Ad account id without platform prefixes."),
    Column("ht_sync_id", ColumnType.STRING, "Hightouch sync that manages the audience, if any."),
)
HT_RAW = Column("ht_raw", ColumnType.JSON, "The audience object exactly as the API returned it.")


def table_columns(fields: tuple[ApiField, ...]) -> tuple[Column, ...]:
    """All columns of a destination table, in table order: ht_* first, API fields, then ht_raw."""
    api_columns = tuple(Column(checked_identifier(f.column), f.type, f.description) for f in fields)
    columns = (*HT_LEADING_COLUMNS, *api_columns, HT_RAW)
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate column names: {duplicates}")
    return columns
