"""The append-only Snowflake IO manager, built on dagster-snowflake's ``DbIOManager`` machinery.

Tables live in schema HIGHTOUCH_AUDIT with unquoted (so upper-case) identifiers, TIMESTAMP_TZ times
and VARIANT for ht_raw and nested API fields. A snapshot is bulk-loaded, never row by row: the spool
is written in bounded batches with ``write_pandas`` (PUT + COPY) into a temporary staging table, then
one ``INSERT … SELECT`` with ``PARSE_JSON`` moves it into the table inside a transaction, so it lands
whole or not at all. (DDL would commit an open transaction in Snowflake, so all DDL and the staging
load come first; the temporary table is private to the session and dies with it.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_snowflake import SnowflakeIOManager
from dagster_snowflake.snowflake_io_manager import SnowflakeDbClient
from snowflake.connector import pandas_tools

from audit_assets.columns import Column, ColumnType, checked_identifier
from audit_assets.snapshot import Snapshot
from audit_assets.warehouse import sql
from audit_assets.warehouse.appender import Engine, SnapshotAppender, ViewBuilder

_TYPES = {
    ColumnType.STRING: "VARCHAR",
    ColumnType.INTEGER: "BIGINT",
    ColumnType.FLOAT: "FLOAT",
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.JSON: "VARIANT",
    ColumnType.DATE: "DATE",
    ColumnType.TIMESTAMP_TZ: "TIMESTAMP_TZ",
}
SNOWFLAKE = sql.Dialect(_TYPES, param="%s", stores_upper_case=True)
# The staging table holds JSON as text; PARSE_JSON turns it into VARIANT on the way in.
_STAGING = sql.Dialect({**_TYPES, ColumnType.JSON: "VARCHAR"}, param="%s", stores_upper_case=True)


class AppendOnlySnowflakeDbClient(SnowflakeDbClient):
    @staticmethod
    def delete_table_slice(context: dg.OutputContext, table_slice: TableSlice, connection: Any) -> None:
        """Never delete: re-materializing a partition appends another snapshot."""

    @staticmethod
    def get_table_name(table_slice: TableSlice) -> str:
        return f"{table_slice.database}.{table_slice.schema}.{table_slice.table}".upper()


class SnowflakeEngine(Engine):
    dialect = SNOWFLAKE

    def execute(self, connection: Any, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(statement, list(params) if params else None)
            return list(cursor.fetchall()) if cursor.description else []

    @contextmanager
    def transaction(self, connection: Any) -> Iterator[None]:
        self.execute(connection, "BEGIN")
        try:
            yield
        except BaseException:
            self.execute(connection, "ROLLBACK")
            raise
        self.execute(connection, "COMMIT")

    def stage(self, connection: Any, schema: str, table: str, snapshot: Snapshot) -> str:
        # Unqualified: a temporary table lives in the session's current schema (the IO manager connects
        # with it), private to this session and gone when it ends.
        staging = f"{table}_staging_{uuid.uuid4().hex[:12]}"
        self.execute(connection, sql.create_table(_STAGING, None, staging, snapshot.columns, temporary=True))
        for batch in snapshot.batches():
            frame = batch.to_pandas()
            frame.columns = [c.upper() for c in frame.columns]
            pandas_tools.write_pandas(
                connection,
                frame,
                table_name=staging.upper(),
                quote_identifiers=False,
                use_logical_type=True,
            )
        return sql.qualified(None, staging)

    def insert(self, connection: Any, schema: str, table: str, snapshot: Snapshot, staged: str) -> None:
        names = ", ".join(c.name for c in snapshot.columns)
        values = ", ".join(_from_staging(c) for c in snapshot.columns)
        insert = f"INSERT INTO {sql.qualified(schema, table)} ({names}) SELECT {values} FROM {staged}"  # noqa: S608
        self.execute(connection, insert)


def _from_staging(column: Column) -> str:
    name = checked_identifier(column.name)
    return f"PARSE_JSON({name})" if column.type is ColumnType.JSON else name


class AuditSnowflakeIOManager(SnowflakeIOManager):
    """Append-only snapshots and combined views in one Snowflake database."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [SnapshotAppender(SnowflakeEngine()), ViewBuilder(SnowflakeEngine())]

    def create_io_manager(self, context: dg.InitResourceContext) -> DbIOManager:
        return DbIOManager(
            db_client=AppendOnlySnowflakeDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            io_manager_name="AuditSnowflakeIOManager",
        )
