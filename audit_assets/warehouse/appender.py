"""What every warehouse engine does with a snapshot and a view, written once; engines fill in the load.

A snapshot is appended in three steps: the table is made ready with explicit DDL (and new columns
added, never removed); the engine stages the spool; then, in one transaction, the snapshot id is
checked (a retried step finds its rows already there and writes nothing) and the rows are inserted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster._core.storage.db_io_manager import DbTypeHandler, TableSlice

from audit_assets.snapshot import Snapshot
from audit_assets.views import ViewDefinition
from audit_assets.warehouse import sql


class Engine(ABC):
    """The few things that differ between warehouse engines."""

    dialect: sql.Dialect

    @abstractmethod
    def execute(self, connection: Any, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with bound parameters; return its rows (empty for DDL and DML)."""

    @abstractmethod
    @contextmanager
    def transaction(self, connection: Any) -> Iterator[None]:
        """Commit on success, roll back on any error."""

    @abstractmethod
    def stage(self, connection: Any, schema: str, table: str, snapshot: Snapshot) -> str:
        """Make the spooled rows readable by SQL; return a FROM-able source for the insert."""

    @abstractmethod
    def insert(self, connection: Any, schema: str, table: str, snapshot: Snapshot, staged: str) -> None:
        """Insert every staged row into the table (inside the caller's transaction)."""

    def scalar(self, connection: Any, statement: str, params: Sequence[Any] = ()) -> int:
        rows = self.execute(connection, statement, params)
        return int(rows[0][0]) if rows else 0


class SnapshotAppender(DbTypeHandler[Snapshot]):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def supported_types(self) -> Sequence[type[object]]:
        return [Snapshot]

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: Snapshot, connection: Any
    ) -> Mapping[str, Any]:
        engine, dialect = self._engine, self._engine.dialect
        schema, table = table_slice.schema, table_slice.table
        snapshot_key = [obj.identity.snapshot_date, obj.identity.snapshot_id]
        try:
            engine.execute(connection, sql.create_table(dialect, schema, table, obj.columns))
            present = {
                r[0].lower() for r in engine.execute(connection, *sql.column_names(dialect, schema, table))
            }
            for column in obj.columns:
                if column.name not in present:  # a field added in a later release of this code
                    engine.execute(connection, sql.add_column(dialect, schema, table, column))
            staged = engine.stage(connection, schema, table, obj)
            with engine.transaction(connection):
                already = engine.scalar(connection, sql.count_snapshot(dialect, schema, table), snapshot_key)
                if already:
                    context.log.warning(
                        f"snapshot {obj.identity.snapshot_id} is already in {schema}.{table} ({already} rows): "
                        "this is a retry of a step whose write had committed, so nothing more is written"
                    )
                else:
                    engine.insert(connection, schema, table, obj, staged)
                    written = engine.scalar(
                        connection, sql.count_snapshot(dialect, schema, table), snapshot_key
                    )
                    if written != obj.row_count:
                        raise RuntimeError(
                            f"wrote {written} rows for snapshot {obj.identity.snapshot_id}, expected {obj.row_count}"
                        )
        finally:
            obj.discard()
        return {
            "dagster/row_count": engine.scalar(connection, sql.count_rows(dialect, schema, table)),
            "dagster/partition_row_count": engine.scalar(
                connection, sql.count_partition(dialect, schema, table), [obj.identity.snapshot_date]
            ),
            "snapshot_rows_written": 0 if already else obj.row_count,
        }

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection: Any) -> Snapshot:
        raise TypeError(
            f"{table_slice.schema}.{table_slice.table} is an append-only history; read it with SQL (or the "
            "external_audiences_metadata_v1 view) rather than as an asset input"
        )


class ViewBuilder(DbTypeHandler[ViewDefinition]):
    """Creates every source table not written yet (empty, explicit DDL), then (re)creates the view."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def supported_types(self) -> Sequence[type[object]]:
        return [ViewDefinition]

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: ViewDefinition, connection: Any
    ) -> Mapping[str, Any]:
        engine, schema = self._engine, table_slice.schema
        for source in obj.sources:
            engine.execute(connection, sql.create_table(engine.dialect, schema, source.table, source.columns))
        engine.execute(connection, sql.create_view(engine.dialect, schema, table_slice.table, obj))
        return {"tables_in_view": sorted(s.table for s in obj.sources)}

    def load_input(
        self, context: dg.InputContext, table_slice: TableSlice, connection: Any
    ) -> ViewDefinition:
        raise TypeError(f"{table_slice.schema}.{table_slice.table} is a view; query it with SQL")
