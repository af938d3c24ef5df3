"""The DuckDB warehouse: one embedded file, append-only ``hightouch_audit`` tables and views.

DuckDB reads the Parquet spool itself and inserts ``BY NAME``; a connection is opened only for a short
read or write (DuckDB allows one writing process per file), retried while another process holds the lock,
and always closed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster._utils.backoff import backoff

from audit_assets.columns import HT_RAW, ColumnType
from audit_assets.warehouse import sql
from audit_assets.warehouse.base import SCHEMA, AuditWarehouse

if TYPE_CHECKING:
    import duckdb

    from audit_assets.snapshot import Snapshot

MEMORY_LIMIT = "96MB"
# DuckDB runs a statement on as many threads as the machine has cores, and each thread appending rows
# holds its own buffers (~40 MB for a Meta snapshot's 48 columns): 96 MB took two threads only just,
# and four or more ran out of memory on 200k Meta audiences. One thread needs ~48 MB whatever the
# machine, and loads 200k Meta audiences in ~1.1 s against ~1.0 s for two.
THREADS = 1
DUCKDB = sql.Dialect(
    {
        ColumnType.STRING: "VARCHAR",
        ColumnType.INTEGER: "BIGINT",
        ColumnType.FLOAT: "DOUBLE",
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.JSON: "JSON",
        ColumnType.DATE: "DATE",
        ColumnType.TIMESTAMP_TZ: "TIMESTAMPTZ",
    },
    # ht_raw, each audience's whole JSON, is most of a snapshot's bytes. zstd keeps it in less space
    # than DuckDB's default for text (DICT_FSST) and takes less time to write: for 200k Meta
    # audiences the file is 18 MB instead of 57 MB and the append ~0.3 s shorter. A table created
    # before this keeps the default (DuckDB cannot change a column's compression).
    column_options={HT_RAW.name: "USING COMPRESSION zstd"},
)


class DuckDbAuditWarehouse(AuditWarehouse):
    """Append-only snapshots and combined views in one DuckDB file."""

    database: str

    @property
    def dialect(self) -> sql.Dialect:
        return DUCKDB

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        import duckdb  # loaded when a connection is opened: the code server only loads the definitions

        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        # Another process may hold the file's write lock for a moment: back off and retry (~100 s), as
        # dagster-duckdb does.
        conn = backoff(
            fn=duckdb.connect,
            retry_on=(RuntimeError, duckdb.IOException),
            kwargs={
                "database": self.database,
                "read_only": False,
                "config": {
                    "custom_user_agent": "dagster",
                    # Bounded memory however large a snapshot: DuckDB writes (and if need be spills to
                    # <database>.tmp) instead of holding the new rows until the commit. Row order within a
                    # snapshot carries no meaning, and keeping it costs memory.
                    "memory_limit": MEMORY_LIMIT,
                    "threads": THREADS,
                    "preserve_insertion_order": False,
                },
            },
            max_retries=10,
        )
        try:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(f"USE {SCHEMA}")
            yield conn
        finally:
            conn.close()

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

    def stage(self, connection: Any, table: str, snapshot: Snapshot) -> str:
        return "read_parquet(?)"  # DuckDB scans the spool directly, in parallel, in bounded memory

    def insert(self, connection: Any, table: str, snapshot: Snapshot, staged: str) -> None:
        self.execute(
            connection,
            f"INSERT INTO {sql.qualified(SCHEMA, table)} BY NAME SELECT * FROM {staged}",  # noqa: S608
            [str(snapshot.path)],
        )
