"""SQL text shared by the warehouse engines: DDL and view bodies, from validated identifiers only.

Each engine supplies a ``Dialect`` (its type names); the statements are generated here once, so
every engine's view comes from the same definition of the per-platform mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from audit_assets.columns import Column, ColumnType, checked_identifier
from audit_assets.views import V1_COLUMNS, ViewDefinition, ViewSource


@dataclass(frozen=True)
class Dialect:
    type_names: Mapping[ColumnType, str]
    param: str = "?"  # the driver's placeholder for a bound parameter
    stores_upper_case: bool = False  # unquoted identifiers are stored upper-cased (Snowflake)

    def type_of(self, kind: ColumnType) -> str:
        return self.type_names[kind]

    def stored_name(self, name: str) -> str:
        """How the catalog (information_schema) spells an unquoted identifier."""
        return name.upper() if self.stores_upper_case else name


def qualified(schema: str | None, name: str) -> str:
    """``schema.name``; with no schema, the session's current one (where temporary tables live)."""
    if schema is None:
        return checked_identifier(name)
    return f"{checked_identifier(schema)}.{checked_identifier(name)}"


def create_table(
    dialect: Dialect, schema: str | None, table: str, columns: tuple[Column, ...], *, temporary: bool = False
) -> str:
    body = ",\n  ".join(f"{checked_identifier(c.name)} {dialect.type_of(c.type)}" for c in columns)
    create = "CREATE TEMPORARY TABLE" if temporary else "CREATE TABLE IF NOT EXISTS"
    return f"{create} {qualified(schema, table)} (\n  {body}\n)"


def column_names(dialect: Dialect, schema: str, table: str) -> tuple[str, list[str]]:
    """The statement and parameters listing a table's column names (empty if it does not exist)."""
    p = dialect.param
    statement = (
        f"SELECT column_name FROM information_schema.columns WHERE table_schema = {p} AND table_name = {p}"  # noqa: S608
    )
    return statement, [
        dialect.stored_name(checked_identifier(schema)),
        dialect.stored_name(checked_identifier(table)),
    ]


def count_snapshot(dialect: Dialect, schema: str, table: str) -> str:
    """Rows of one snapshot; the date first, so engines can skip other partitions' data."""
    p = dialect.param
    return f"SELECT count(*) FROM {qualified(schema, table)} WHERE ht_snapshot_date = {p} AND ht_snapshot_id = {p}"  # noqa: S608


def count_partition(dialect: Dialect, schema: str, table: str) -> str:
    return f"SELECT count(*) FROM {qualified(schema, table)} WHERE ht_snapshot_date = {dialect.param}"  # noqa: S608


def count_rows(dialect: Dialect, schema: str, table: str) -> str:
    return f"SELECT count(*) FROM {qualified(schema, table)}"  # noqa: S608


def add_column(dialect: Dialect, schema: str, table: str, column: Column) -> str:
    return (
        f"ALTER TABLE {qualified(schema, table)} ADD COLUMN {checked_identifier(column.name)} "
        f"{dialect.type_of(column.type)}"
    )


def _v1_select(dialect: Dialect, schema: str, source: ViewSource) -> str:
    m = source.mapping
    size = checked_identifier(m.audience_size)
    if m.size_null_values:
        sentinels = ", ".join(str(int(v)) for v in m.size_null_values)
        size = f"CASE WHEN {size} IN ({sentinels}) THEN NULL ELSE {size} END"
    expressions = {
        "ad_account_id": "ht_ad_account_id",
        "audience_id": checked_identifier(m.audience_id),
        "audience_name": checked_identifier(m.audience_name),
        "audience_size": size,
        "ht_fetched_at": "ht_fetched_at",
        "ht_destination": "ht_destination",
        "ht_destination_id": "ht_destination_id",
        "ht_sync_id": "ht_sync_id",
    }
    items = ",\n       ".join(
        f"CAST({expressions[c.name]} AS {dialect.type_of(c.type)}) AS {c.name}" for c in V1_COLUMNS
    )
    return f"SELECT {items}\nFROM {qualified(schema, source.table)}"


def _empty_select(dialect: Dialect, columns: tuple[Column, ...]) -> str:
    items = ", ".join(
        f"CAST(NULL AS {dialect.type_of(c.type)}) AS {checked_identifier(c.name)}" for c in columns
    )
    return f"SELECT {items}\nWHERE FALSE"


def create_view(dialect: Dialect, schema: str, name: str, view: ViewDefinition) -> str:
    """``CREATE OR REPLACE VIEW`` over every source table; empty but typed when there is none."""
    selects = [_v1_select(dialect, schema, s) for s in view.sources]
    body = "\nUNION ALL\n".join(selects) if selects else _empty_select(dialect, V1_COLUMNS)
    return f"CREATE OR REPLACE VIEW {qualified(schema, name)} AS\n{body}"
