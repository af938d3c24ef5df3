"""SQL text shared by the warehouse engines: DDL, view bodies and report queries, from validated identifiers.

Each engine supplies a ``Dialect`` (its type names and the few phrases that differ); the statements are
generated here once, so every engine's view and report come from the same definition of the per-platform
mappings. Values always travel as bound parameters; only checked identifiers and our own integers are
written into the text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from audit_assets.columns import Column, ColumnType, checked_identifier
from audit_assets.views import (
    CHANGE_COLUMNS,
    CHANGES_NAME,
    SNAPSHOT_LOG,
    SNAPSHOT_LOG_COLUMNS,
    V1_COLUMNS,
    V1_NAME,
    V2_COLUMNS,
    V2_NAME,
    SizeRange,
    V1Mapping,
    ViewDefinition,
    ViewSource,
    Words,
)


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
    # the text at one top-level key of a JSON column
    json_key_text: str = "json_extract_string({column}, '$.{key}')"
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


def _size(column: str, mapping: V1Mapping) -> str:
    """A size column, with the platform's "unknown" sentinels (Meta's -1) as null."""
    size = checked_identifier(column)
    if mapping.size_null_values:
        sentinels = ", ".join(str(int(v)) for v in mapping.size_null_values)
        size = f"CASE WHEN {size} IN ({sentinels}) THEN NULL ELSE {size} END"
    return size


def _v1_sources(mapping: V1Mapping) -> dict[str, str]:
    return {
        "ad_account_id": "ht_ad_account_id",
        "audience_id": checked_identifier(mapping.audience_id),
        "audience_name": checked_identifier(mapping.audience_name),
        "audience_size": _size(mapping.audience_size, mapping),
        "ht_fetched_at": "ht_fetched_at",
        "ht_destination": "ht_destination",
        "ht_destination_id": "ht_destination_id",
        "ht_sync_id": "ht_sync_id",
    }


def _cast(dialect: Dialect, expressions: Mapping[str, str], columns: tuple[Column, ...]) -> dict[str, str]:
    return {c.name: f"CAST({expressions[c.name]} AS {dialect.type_of(c.type)})" for c in columns}


def v1_expressions(dialect: Dialect, mapping: V1Mapping) -> dict[str, str]:
    """Each v1 column as an expression over one destination table's columns."""
    return _cast(dialect, _v1_sources(mapping), V1_COLUMNS)


def _words(dialect: Dialect, words: Words | None) -> str:
    if words is None:
        return "NULL"
    column = checked_identifier(words.column)
    if words.json_key is not None:
        return dialect.json_key_text.format(column=column, key=checked_identifier(words.json_key))
    if words.if_true is not None:
        return f"CASE WHEN {column} THEN '{words.if_true}' WHEN NOT {column} THEN '{words.if_false}' END"
    return column


def _bound(source: ViewSource, which: int) -> str:
    bounds = source.v2.bounds
    if bounds is None:
        return "NULL"
    if isinstance(bounds, SizeRange):
        cases = " ".join(
            f"WHEN '{name}' THEN {int(pair[which])}"
            for name, pair in bounds.bounds.items()
            if pair[which] is not None
        )
        return f"CASE {checked_identifier(bounds.column)} {cases} END" if cases else "NULL"
    return _size(bounds[which], source.mapping)


def v2_expressions(dialect: Dialect, source: ViewSource) -> dict[str, str]:
    """Each v2 column as an expression over one destination table's columns: v1's, and the v2 mapping's."""
    expressions = {
        **_v1_sources(source.mapping),
        "audience_size_lower_bound": _bound(source, 0),
        "audience_size_upper_bound": _bound(source, 1),
        "audience_type": _words(dialect, source.v2.audience_type),
        "audience_status": _words(dialect, source.v2.audience_status),
        "ht_snapshot_id": "ht_snapshot_id",
        "ht_snapshot_date": "ht_snapshot_date",
    }
    return _cast(dialect, expressions, V2_COLUMNS)


def _union(
    dialect: Dialect,
    schema: str,
    view: ViewDefinition,
    expressions: Callable[[Dialect, ViewSource], dict[str, str]],
    columns: tuple[Column, ...],
) -> str:
    selects = []
    for source in view.sources:
        by_column = expressions(dialect, source)
        items = ",\n       ".join(f"{by_column[c.name]} AS {c.name}" for c in columns)
        selects.append(f"SELECT {items}\nFROM {qualified(schema, source.table)}")
    return "\nUNION ALL\n".join(selects) if selects else _empty_select(dialect, columns)


def _empty_select(dialect: Dialect, columns: tuple[Column, ...]) -> str:
    items = ", ".join(
        f"CAST(NULL AS {dialect.type_of(c.type)}) AS {checked_identifier(c.name)}" for c in columns
    )
    return f"SELECT {items}\nWHERE FALSE"


def _last_snapshots(schema: str, where: str = "") -> str:
    """CTEs ending in ``last_of_day``: each destination's last snapshot of each date (the last fetched;
    the id breaks a tie), of the dates ``where`` keeps. Snapshots come from the audience rows and from
    the snapshot log, which alone knows a snapshot without audiences (and the rows alone know snapshots
    taken before the log existed)."""
    v2, log = qualified(schema, V2_NAME), qualified(schema, SNAPSHOT_LOG)
    return f"""snapshots AS (
  SELECT ht_destination, ht_destination_id, ht_snapshot_date, ht_snapshot_id, max(ht_fetched_at) AS fetched_at
  FROM (SELECT ht_destination, ht_destination_id, ht_snapshot_date, ht_snapshot_id, ht_fetched_at FROM {v2} {where}
        UNION ALL
        SELECT ht_destination, ht_destination_id, ht_snapshot_date, ht_snapshot_id, ht_fetched_at FROM {log} {where}
       ) AS taken
  GROUP BY ht_destination, ht_destination_id, ht_snapshot_date, ht_snapshot_id
), last_of_day AS (
  SELECT ht_destination, ht_destination_id, ht_snapshot_date, ht_snapshot_id FROM (
    SELECT ht_destination, ht_destination_id, ht_snapshot_date, ht_snapshot_id,
           row_number() OVER (PARTITION BY ht_destination, ht_destination_id, ht_snapshot_date
                              ORDER BY fetched_at DESC, ht_snapshot_id DESC) AS nth
    FROM snapshots) AS ranked
  WHERE nth = 1
)"""  # noqa: S608


def _changes(dialect: Dialect, schema: str, days_kept: str = "") -> str:
    """The change view's SELECT; ``days_kept`` (a WHERE on ``ht_snapshot_date``) limits it to some days.

    LAG pairs each destination's last snapshot of a date with its last snapshot of the date before.
    The audiences of both are keyed by the day and grouped by (ad account, audience id): one only in
    the earlier snapshot has vanished. (No alias repeats an input name at the same level: Snowflake and
    DuckDB let a SELECT list use its earlier aliases, and how they settle a clash is not documented;
    see CALCITE-6939.) The report's filter sits after LAG and before the table scans
    (a filter on the view is not pushed that far), so a report on a day of a long history reads that
    day and the one before it, in bounded memory.
    """
    v2 = qualified(schema, V2_NAME)
    double = dialect.type_of(ColumnType.FLOAT)  # in floating point: Snowflake's decimal division rounds
    computed = {
        "audience_size": "size_now",
        "previous_size": "size_before",
        "size_change": "size_now - size_before",
        "size_change_pct": f"CASE WHEN size_before <> 0 THEN CAST(size_now - size_before AS {double}) * 100 / size_before END",
        "change_kind": "CASE WHEN NOT was_before THEN 'new' WHEN NOT is_now THEN 'vanished' "
        "WHEN size_now IS NULL OR size_before IS NULL THEN 'unknown' "
        "WHEN size_now > size_before THEN 'grew' WHEN size_now < size_before THEN 'shrank' "
        "ELSE 'unchanged' END",
    }
    typed = _cast(dialect, {c.name: computed.get(c.name, c.name) for c in CHANGE_COLUMNS}, CHANGE_COLUMNS)
    items = ",\n       ".join(f"{expression} AS {name}" for name, expression in typed.items())
    pair = """  SELECT d.ht_destination, d.ht_destination_id, d.ht_snapshot_date AS snapshot_date, d.previous_date,
         v.ad_account_id, v.audience_id, v.audience_name AS listed_name, v.audience_size AS listed_size,
         {in_day} AS in_day
  FROM days AS d JOIN {v2} AS v
    ON v.ht_destination = d.ht_destination AND v.ht_destination_id = d.ht_destination_id
   AND v.ht_snapshot_date = d.{date} AND v.ht_snapshot_id = d.{snapshot}"""
    return f"""WITH {_last_snapshots(schema)}, days AS (
  SELECT * FROM (
    SELECT ht_destination, ht_destination_id, ht_snapshot_date, ht_snapshot_id,
           LAG(ht_snapshot_date) OVER (PARTITION BY ht_destination, ht_destination_id ORDER BY ht_snapshot_date)
             AS previous_date,
           LAG(ht_snapshot_id) OVER (PARTITION BY ht_destination, ht_destination_id ORDER BY ht_snapshot_date)
             AS previous_id
    FROM last_of_day) AS paired_days
  {days_kept}
), paired AS (
{pair.format(in_day=1, v2=v2, date="ht_snapshot_date", snapshot="ht_snapshot_id")}
  UNION ALL
{pair.format(in_day=0, v2=v2, date="previous_date", snapshot="previous_id")}
), compared AS (
  SELECT snapshot_date, ht_destination, ht_destination_id, ad_account_id, audience_id,
         COALESCE(max(CASE WHEN in_day = 1 THEN listed_name END), max(listed_name)) AS audience_name,
         max(CASE WHEN in_day = 1 THEN listed_size END) AS size_now,
         max(CASE WHEN in_day = 0 THEN listed_size END) AS size_before,
         max(CASE WHEN in_day = 0 THEN previous_date END) AS previous_snapshot_date,
         max(in_day) = 1 AS is_now, min(in_day) = 0 AS was_before
  FROM paired GROUP BY snapshot_date, ht_destination, ht_destination_id, ad_account_id, audience_id
)
SELECT {items}
FROM compared"""  # noqa: S608


def create_view(dialect: Dialect, schema: str, name: str, view: ViewDefinition) -> str:
    """``CREATE OR REPLACE VIEW`` of one of the combined views; empty but typed when there is no table."""
    if name == V1_NAME:
        body = _union(dialect, schema, view, lambda d, s: v1_expressions(d, s.mapping), V1_COLUMNS)
    elif name == V2_NAME:
        body = _union(dialect, schema, view, v2_expressions, V2_COLUMNS)
    elif name == CHANGES_NAME:
        body = _changes(dialect, schema)
    else:
        raise ValueError(f"{name!r} is not one of the combined views")
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


def _table_snapshots(dialect: Dialect, schema: str, table: str, logged: bool) -> str:
    """(ht_snapshot_date, ht_snapshot_id, ht_fetched_at) of one table's snapshots: from its rows and,
    when ``logged``, from the snapshot log, which alone knows a snapshot without audiences (and the rows
    alone know snapshots taken before the log existed); binds (table) when logged."""
    fields = "ht_snapshot_date, ht_snapshot_id, ht_fetched_at"
    rows = f"SELECT {fields} FROM {qualified(schema, table)}"  # noqa: S608
    if not logged:
        return rows
    log = f"SELECT {fields} FROM {qualified(schema, SNAPSHOT_LOG)} WHERE table_name = {dialect.param}"  # noqa: S608
    return f"{rows}\nUNION ALL\n{log}"


def latest_snapshot_of_day(dialect: Dialect, schema: str, table: str, logged: bool) -> str:
    """The id of the last snapshot taken for one day; binds ([table,] snapshot_date)."""
    return (
        f"SELECT ht_snapshot_id FROM ({_table_snapshots(dialect, schema, table, logged)}) AS s\n"  # noqa: S608
        f"WHERE ht_snapshot_date = {dialect.param} ORDER BY ht_fetched_at DESC LIMIT 1"
    )


def previous_snapshot(dialect: Dialect, schema: str, table: str, logged: bool) -> str:
    """(snapshot_date, snapshot_id) of the latest snapshot fetched before a time; binds ([table,] fetched_at)."""
    return (
        f"SELECT ht_snapshot_date, ht_snapshot_id FROM ({_table_snapshots(dialect, schema, table, logged)}) AS s\n"  # noqa: S608
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


# --- the change report: one day of the change view kept in a temporary table, then small queries ----------

CHANGE_WINDOW = "ht_audience_size_changes_window"  # a temporary table: private to the session, dies with it
_CHANGE_FIELDS = (
    "ht_destination, ht_destination_id, ad_account_id, audience_id, audience_name, previous_size, "
    "audience_size, size_change, size_change_pct, change_kind"
)


def change_window(dialect: Dialect, schema: str) -> str:
    """Keep one day of the change view for the queries below, which read only that day; binds (day)."""
    return (
        f"CREATE OR REPLACE TEMPORARY TABLE {CHANGE_WINDOW} AS\n"
        f"{_changes(dialect, schema, f'WHERE ht_snapshot_date = {dialect.param}')}"
    )


def change_counts() -> str:
    """(change_kind, audiences) of the window's day."""
    return f"SELECT change_kind, count(*) FROM {CHANGE_WINDOW} GROUP BY change_kind"  # noqa: S608


def compared_destinations() -> str:
    """(destination, destination id, previous snapshot date) compared on the window's day."""
    return (
        "SELECT ht_destination, ht_destination_id, max(previous_snapshot_date) "  # noqa: S608
        f"FROM {CHANGE_WINDOW} "
        "GROUP BY ht_destination, ht_destination_id ORDER BY ht_destination, ht_destination_id"
    )


# Which changes each list of a report holds, and in what order: our own fixed SQL, never from input.
CHANGE_LISTS = {
    "biggest": ("size_change <> 0", "abs(size_change) DESC"),
    "vanished": ("change_kind = 'vanished'", "previous_size DESC NULLS LAST"),
    "shrunk": ("change_kind = 'shrank' AND size_change_pct <= {p}", "size_change_pct"),
}


def change_list(dialect: Dialect, which: str, limit: int) -> str:
    """The first ``limit`` changes of one list on the window's day, each with the list's length; binds
    ([-pct])."""
    condition, order = CHANGE_LISTS[which]
    return (
        f"SELECT {_CHANGE_FIELDS}, count(*) OVER () FROM {CHANGE_WINDOW} "  # noqa: S608
        f"WHERE {condition.format(p=dialect.param)}\n"
        f"ORDER BY {order}, ht_destination, ht_destination_id, ad_account_id, audience_id LIMIT {int(limit)}"
    )


def daily_totals(dialect: Dialect, schema: str) -> str:
    """(destination, id, day, total size) of each destination's last snapshot of each day in a range (a
    snapshot without audiences counts 0); binds (first, last) twice."""
    v2, p = qualified(schema, V2_NAME), dialect.param
    return (
        f"WITH {_last_snapshots(schema, f'WHERE ht_snapshot_date BETWEEN {p} AND {p}')}\n"
        "SELECT l.ht_destination, l.ht_destination_id, l.ht_snapshot_date, "
        "CASE WHEN count(v.audience_id) = 0 THEN 0 ELSE sum(v.audience_size) END\n"
        f"FROM last_of_day AS l LEFT JOIN {v2} AS v ON v.ht_destination = l.ht_destination "
        "AND v.ht_destination_id = l.ht_destination_id AND v.ht_snapshot_date = l.ht_snapshot_date "
        "AND v.ht_snapshot_id = l.ht_snapshot_id\n"
        "GROUP BY l.ht_destination, l.ht_destination_id, l.ht_snapshot_date "
        "ORDER BY l.ht_destination, l.ht_destination_id, l.ht_snapshot_date"
    )


def log_snapshot(dialect: Dialect, schema: str) -> str:
    """The snapshot log's row of one snapshot; binds SNAPSHOT_LOG_COLUMNS in order."""
    names = ", ".join(checked_identifier(c.name) for c in SNAPSHOT_LOG_COLUMNS)
    params = ", ".join(dialect.param for _ in SNAPSHOT_LOG_COLUMNS)
    return f"INSERT INTO {qualified(schema, SNAPSHOT_LOG)} ({names}) VALUES ({params})"  # noqa: S608


def logged_snapshot(dialect: Dialect, schema: str) -> str:
    """When one snapshot was fetched, as the log says; binds (date, id)."""
    p = dialect.param
    return (
        f"SELECT ht_fetched_at FROM {qualified(schema, SNAPSHOT_LOG)} "  # noqa: S608
        f"WHERE ht_snapshot_date = {p} AND ht_snapshot_id = {p}"
    )
