"""The append-only DuckDB IO manager, built on dagster-duckdb's ``DbIOManager`` machinery.

Differences from the stock DuckDB IO manager, each on purpose:
- ``delete_table_slice`` does nothing: snapshots are history, never replaced;
- tables are created with explicit DDL and rows inserted ``BY NAME`` (the stock pandas handler
  inserts by position and infers types);
- one transaction per snapshot, skipped when that snapshot id is already present, so a retried step
  never writes the same snapshot twice;
- the write connection is opened only to write (the platform was read beforehand) and always closed;
- ``dagster/table_name`` is ``hightouch_audit.<table>``, not prefixed by the file path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster._utils.backoff import backoff
from dagster_duckdb.io_manager import DuckDbClient, DuckDBIOManager

from audit_assets.columns import ColumnType
from audit_assets.snapshot import Snapshot
from audit_assets.views import ViewDefinition
from audit_assets.warehouse import sql

DUCKDB = sql.Dialect(
    {
        ColumnType.STRING: "VARCHAR",
        ColumnType.INTEGER: "BIGINT",
        ColumnType.FLOAT: "DOUBLE",
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.JSON: "JSON",
        ColumnType.DATE: "DATE",
        ColumnType.TIMESTAMP_TZ: "TIMESTAMPTZ",
    }
)


class AppendOnlyDuckDbClient(DuckDbClient):
    @staticmethod
    def delete_table_slice(context: dg.OutputContext, table_slice: TableSlice, connection: Any) -> None:
        """Never delete: re-materializing a partition appends another snapshot."""

    @staticmethod
    def get_table_name(table_slice: TableSlice) -> str:
        return sql.qualified(table_slice.schema, table_slice.table)

    @staticmethod
    @contextmanager
    def connect(
        context: dg.OutputContext | dg.InputContext, _: TableSlice
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        database = context.resource_config["database"]
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        config = {"custom_user_agent": "dagster", **context.resource_config["connection_config"]}
        # Another process may hold the file's write lock for a moment: back off and retry (~100 s).
        conn = backoff(
            fn=duckdb.connect,
            retry_on=(RuntimeError, duckdb.IOException),
            kwargs={"database": database, "read_only": False, "config": config},
            max_retries=10,
        )
        try:
            yield conn
        finally:
            conn.close()


def _existing_columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return {r[0] for r in rows}


def _count(conn: duckdb.DuckDBPyConnection, statement: str, params: Sequence[Any]) -> int:
    row = conn.execute(statement, params).fetchone()
    return int(row[0]) if row else 0


class DuckDbSnapshotAppender(DbTypeHandler[Snapshot]):
    """Appends a spooled snapshot to its destination table in one transaction."""

    @property
    def supported_types(self) -> Sequence[type[object]]:
        return [Snapshot]

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: Snapshot, connection: Any
    ) -> Mapping[str, Any]:
        schema, table = table_slice.schema, table_slice.table
        target = sql.qualified(schema, table)
        snapshot_id = obj.identity.snapshot_id
        in_transaction = False
        try:
            connection.begin()
            in_transaction = True
            connection.execute(sql.create_table(DUCKDB, schema, table, obj.columns))
            present = _existing_columns(connection, schema, table)
            for column in obj.columns:
                if column.name not in present:  # a field added in a later release of this code
                    connection.execute(sql.add_column(DUCKDB, schema, table, column))
            # The date narrows the scan to one partition's row groups as history grows.
            count_snapshot = (
                f"SELECT count(*) FROM {target} WHERE ht_snapshot_date = ? AND ht_snapshot_id = ?"  # noqa: S608
            )
            snapshot_key = [obj.identity.snapshot_date, snapshot_id]
            already = _count(connection, count_snapshot, snapshot_key)
            if already:
                context.log.warning(
                    f"snapshot {snapshot_id} is already in {target} ({already} rows): this is a retry of a "
                    "step whose write had committed, so nothing more is written"
                )
            else:
                connection.execute(
                    f"INSERT INTO {target} BY NAME SELECT * FROM read_parquet(?)",  # noqa: S608
                    [str(obj.path)],
                )
                written = _count(connection, count_snapshot, snapshot_key)
                if written != obj.row_count:
                    raise RuntimeError(
                        f"wrote {written} rows for snapshot {snapshot_id}, expected {obj.row_count}"
                    )
            connection.commit()
            in_transaction = False
        except BaseException:
            if in_transaction:
                connection.rollback()
            raise
        finally:
            obj.discard()
        partition_rows = _count(
            connection,
            f"SELECT count(*) FROM {target} WHERE ht_snapshot_date = ?",  # noqa: S608
            [obj.identity.snapshot_date],
        )
        return {
            "dagster/row_count": _count(connection, f"SELECT count(*) FROM {target}", []),  # noqa: S608
            "dagster/partition_row_count": partition_rows,
            "snapshot_rows_written": 0 if already else obj.row_count,
        }

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection: Any) -> Snapshot:
        raise TypeError(
            f"{sql.qualified(table_slice.schema, table_slice.table)} is an append-only history; read it with "
            "SQL (or the external_audiences_metadata_v1 view) rather than as an asset input"
        )


class DuckDbViewBuilder(DbTypeHandler[ViewDefinition]):
    """Creates or replaces a combined view over the destination tables that exist."""

    @property
    def supported_types(self) -> Sequence[type[object]]:
        return [ViewDefinition]

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: ViewDefinition, connection: Any
    ) -> Mapping[str, Any]:
        schema = table_slice.schema
        connection.begin()
        try:
            for source in obj.sources:
                connection.execute(sql.create_table(DUCKDB, schema, source.table, source.columns))
            connection.execute(sql.create_view(DUCKDB, schema, table_slice.table, obj))
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        return {"tables_in_view": sorted(s.table for s in obj.sources)}

    def load_input(
        self, context: dg.InputContext, table_slice: TableSlice, connection: Any
    ) -> ViewDefinition:
        raise TypeError(
            f"{sql.qualified(table_slice.schema, table_slice.table)} is a view; query it with SQL"
        )


class AuditDuckDBIOManager(DuckDBIOManager):
    """Append-only snapshots and combined views in one DuckDB file."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [DuckDbSnapshotAppender(), DuckDbViewBuilder()]

    def create_io_manager(self, context: dg.InitResourceContext) -> DbIOManager:
        return DbIOManager(
            db_client=AppendOnlyDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            io_manager_name="AuditDuckDBIOManager",
        )
