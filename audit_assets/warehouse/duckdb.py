"""The append-only DuckDB IO manager, built on dagster-duckdb's ``DbIOManager`` machinery.

Differences from the stock DuckDB IO manager, each on purpose:
- ``delete_table_slice`` does nothing: snapshots are history, never replaced;
- tables are created with explicit DDL and rows inserted ``BY NAME`` (the stock pandas handler
  inserts by position and infers types); DuckDB reads the Parquet spool itself;
- one transaction per snapshot, skipped when that snapshot id is already present (appender.py);
- the write connection is opened only to write (the platform was read beforehand) and always closed;
- ``dagster/table_name`` is ``hightouch_audit.<table>``, not prefixed by the file path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
from audit_assets.warehouse import sql
from audit_assets.warehouse.appender import Engine, SnapshotAppender, ViewBuilder

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
        # The stock connect neither creates the file's folder nor closes the connection on error.
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


class DuckDbEngine(Engine):
    dialect = DUCKDB

    def execute(self, connection: Any, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = connection.execute(statement, list(params))
        return cursor.fetchall() if cursor.description else []

    @contextmanager
    def transaction(self, connection: Any) -> Iterator[None]:
        connection.begin()
        try:
            yield
        except BaseException:
            connection.rollback()
            raise
        connection.commit()

    def stage(self, connection: Any, schema: str, table: str, snapshot: Snapshot) -> str:
        return "read_parquet(?)"  # DuckDB scans the spool directly, in parallel, in bounded memory

    def insert(self, connection: Any, schema: str, table: str, snapshot: Snapshot, staged: str) -> None:
        self.execute(
            connection,
            f"INSERT INTO {sql.qualified(schema, table)} BY NAME SELECT * FROM {staged}",  # noqa: S608
            [str(snapshot.path)],
        )


class AuditDuckDBIOManager(DuckDBIOManager):
    """Append-only snapshots and combined views in one DuckDB file."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [SnapshotAppender(DuckDbEngine()), ViewBuilder(DuckDbEngine())]

    def create_io_manager(self, context: dg.InitResourceContext) -> DbIOManager:
        return DbIOManager(
            db_client=AppendOnlyDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            io_manager_name="AuditDuckDBIOManager",
        )
