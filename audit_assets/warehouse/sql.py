"""SQL text shared by the warehouse engines: DDL, view bodies and report queries, from validated identifiers.

Each engine supplies a ``Dialect`` (its type names and the few phrases that differ); the statements are
generated here once, so every engine's view and report come from the same definition of the per-platform
mappings. Values always travel as bound parameters; only checked identifiers and our own integers are
written into the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from audit_assets.columns import Column, ColumnType, checked_identifier
from audit_assets.views import V1_COLUMNS, V1Mapping, ViewDefinition, ViewSource


@dataclass(frozen=True)
class Dialect:
    type_names: Mapping[ColumnType, str]
    param: str = "?"  # the driver's placeholder for a bound parameter
    stores_upper_case: bool = False  # unquoted identifiers are stored upper-cased (Snowflake)
    view_options: str = ""  # between the view's name and AS, e.g. Snowflake's COPY GRANTS
    # ``{table}``-formatted FROM clause listing every top-level key of ht_raw as ``k``
    raw_keys_from: str = (
        "(SELECT unnest(json_keys(ht_raw)) AS k, ht_snapshot_date, ht_snapshot_id FROM {table})"
    )
    # column name -> what follows its type in CREATE TABLE / ADD COLUMN, e.g. a storage choice
    column_options: Mapping[str, str] = field(default_factory=dict)

    def type_of(self, kind: ColumnType) -> str:
        return self.type_names[kind]

    def definition(self, column: Column) -> str:
        """``name TYPE [options]`` of one column, as CREATE TABLE and ADD COLUMN write it."""
        options = self.column_options.get(column.name)
        definition = f"{checked_identifier(column.name)} {self.type_of(column.type)}"
        return f"{definition} {options}" if options else definition

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
    body = ",\n  ".join(dialect.definition(c) for c in columns)
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


def add_column(dialect: Dialect, schema: str, table: str, column: Column) -> str:
    return f"ALTER TABLE {qualified(schema, table)} ADD COLUMN {dialect.definition(column)}"


def v1_expressions(dialect: Dialect, mapping: V1Mapping) -> dict[str, str]:
    """Each v1 column as an expression over one destination table's columns."""
    size = checked_identifier(mapping.audience_size)
    if mapping.size_null_values:
        sentinels = ", ".join(str(int(v)) for v in mapping.size_null_values)
        size = f"CASE WHEN {size} IN ({sentinels}) THEN NULL ELSE {size} END"
    expressions = {
        "ad_account_id": "ht_ad_account_id",
        "audience_id": checked_identifier(mapping.audience_id),
        "audience_name": checked_identifier(mapping.audience_name),
        "audience_size": size,
        "ht_fetched_at": "ht_fetched_at",
        "ht_destination": "ht_destination",
        "ht_destination_id": "ht_destination_id",
        "ht_sync_id": "ht_sync_id",
    }
    return {c.name: f"CAST({expressions[c.name]} AS {dialect.type_of(c.type)})" for c in V1_COLUMNS}


def _v1_select(dialect: Dialect, schema: str, source: ViewSource) -> str:
    expressions = v1_expressions(dialect, source.mapping)
    items = ",\n       ".join(f"{expressions[c.name]} AS {c.name}" for c in V1_COLUMNS)
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
    options = f" {dialect.view_options}" if dialect.view_options else ""
    return f"CREATE OR REPLACE VIEW {qualified(schema, name)}{options} AS\n{body}"


# --- reports: what a snapshot and a view hold, read back from the warehouse -------------------------------


def _snapshot_rows(dialect: Dialect, schema: str, source: ViewSource) -> str:
    """One snapshot's audiences in v1 terms; binds (snapshot_date, snapshot_id)."""
    e = v1_expressions(dialect, source.mapping)
    p = dialect.param
    return (
        f"SELECT {e['ad_account_id']} AS ad_account_id, {e['audience_id']} AS audience_id, "
        f"{e['audience_name']} AS audience_name, {e['audience_size']} AS audience_size, ht_fetched_at\n"
        f"FROM {qualified(schema, source.table)} WHERE ht_snapshot_date = {p} AND ht_snapshot_id = {p}"
    )


def snapshot_totals(dialect: Dialect, schema: str, source: ViewSource) -> str:
    """(audiences, audiences with a size, total size, fetched_at) of one snapshot; binds (date, id)."""
    return (
        "SELECT count(*), count(audience_size), sum(audience_size), min(ht_fetched_at)\n"
        f"FROM ({_snapshot_rows(dialect, schema, source)}) AS s"
    )


def snapshot_accounts(dialect: Dialect, schema: str, source: ViewSource) -> str:
    """(ad account, audiences) of one snapshot; binds (date, id)."""
    return (
        "SELECT ad_account_id, count(*) FROM "  # noqa: S608
        f"({_snapshot_rows(dialect, schema, source)}) AS s GROUP BY ad_account_id ORDER BY ad_account_id"
    )


def largest_audiences(dialect: Dialect, schema: str, source: ViewSource, limit: int) -> str:
    """The ``limit`` largest audiences of one snapshot (unsized last); binds (date, id)."""
    return (
        "SELECT ad_account_id, audience_id, audience_name, audience_size FROM "  # noqa: S608
        f"({_snapshot_rows(dialect, schema, source)}) AS s\n"
        f"ORDER BY audience_size DESC NULLS LAST, audience_id LIMIT {int(limit)}"
    )


def latest_snapshot_of_day(dialect: Dialect, schema: str, table: str) -> str:
    """The id of the last snapshot taken for one day; binds (snapshot_date)."""
    return (
        f"SELECT ht_snapshot_id FROM {qualified(schema, table)} WHERE ht_snapshot_date = {dialect.param} "  # noqa: S608
        "ORDER BY ht_fetched_at DESC LIMIT 1"
    )


def previous_snapshot(dialect: Dialect, schema: str, table: str) -> str:
    """(snapshot_date, snapshot_id) of the latest snapshot fetched before a time; binds (fetched_at)."""
    return (
        f"SELECT ht_snapshot_date, ht_snapshot_id FROM {qualified(schema, table)} "  # noqa: S608
        f"WHERE ht_fetched_at < {dialect.param} ORDER BY ht_fetched_at DESC LIMIT 1"
    )


def audiences_not_in(dialect: Dialect, schema: str, source: ViewSource) -> str:
    """How many audiences of one snapshot are absent from another; binds (date, id, other date, other id)."""
    rows = _snapshot_rows(dialect, schema, source)
    return (
        f"SELECT count(*) FROM (SELECT ad_account_id, audience_id FROM ({rows}) AS a\n"  # noqa: S608
        f"EXCEPT SELECT ad_account_id, audience_id FROM ({rows}) AS b) AS d"
    )


def raw_field_names(dialect: Dialect, schema: str, table: str) -> str:
    """Every top-level field name in one snapshot's ht_raw; binds (date, id)."""
    p = dialect.param
    source = dialect.raw_keys_from.format(table=qualified(schema, table))
    return f"SELECT DISTINCT k FROM {source} AS r WHERE ht_snapshot_date = {p} AND ht_snapshot_id = {p}"  # noqa: S608


def view_row_count(schema: str, name: str) -> str:
    return f"SELECT count(*) FROM {qualified(schema, name)}"  # noqa: S608


def view_latest_totals(schema: str, name: str) -> str:
    """Per destination, its latest snapshot in the view: when, audiences, with a size, total size."""
    view = qualified(schema, name)
    return (
        "WITH latest AS (SELECT ht_destination, ht_destination_id, max(ht_fetched_at) AS fetched_at "  # noqa: S608
        f"FROM {view} GROUP BY ht_destination, ht_destination_id)\n"
        "SELECT v.ht_destination, v.ht_destination_id, l.fetched_at, count(*), count(v.audience_size), "
        f"sum(v.audience_size)\nFROM {view} AS v JOIN latest AS l ON v.ht_destination = l.ht_destination "
        "AND v.ht_destination_id = l.ht_destination_id AND v.ht_fetched_at = l.fetched_at\n"
        "GROUP BY v.ht_destination, v.ht_destination_id, l.fetched_at "
        "ORDER BY v.ht_destination, v.ht_destination_id"
    )
