"""The Snowflake warehouse: append-only tables and views in the database's HIGHTOUCH_AUDIT schema.

Unquoted (so upper-case) identifiers, TIMESTAMP_TZ times and VARIANT for ht_raw and nested API fields.
A snapshot is bulk-loaded, never row by row: the spool is written in bounded batches with
``write_pandas`` (PUT + COPY) into a temporary staging table, then one ``INSERT … SELECT`` with
``PARSE_JSON`` moves it into the table inside a transaction, so it lands whole or not at all. (DDL would
commit an open transaction in Snowflake, so all DDL and the staging load come first; the temporary table
is private to the session and dies with it.) Views are replaced ``COPY GRANTS``, so the grants people
gave on them survive every refresh.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from dagster_snowflake import SnowflakeResource
from snowflake.connector import pandas_tools

from audit_assets.columns import Column, ColumnType, checked_identifier
from audit_assets.secrets import SecretError, read_secrets
from audit_assets.snapshot import Snapshot
from audit_assets.warehouse import sql
from audit_assets.warehouse.base import SCHEMA, AuditWarehouse

_TYPES = {
    ColumnType.STRING: "VARCHAR",
    ColumnType.INTEGER: "BIGINT",
    ColumnType.FLOAT: "FLOAT",
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.JSON: "VARIANT",
    ColumnType.DATE: "DATE",
    ColumnType.TIMESTAMP_TZ: "TIMESTAMP_TZ",
}
SNOWFLAKE = sql.Dialect(
    _TYPES,
    param="%s",
    stores_upper_case=True,
    view_options="COPY GRANTS",
    raw_keys_from="(SELECT f.key AS k, t.ht_snapshot_date, t.ht_snapshot_id FROM {table} AS t, "
    "LATERAL FLATTEN(input => t.ht_raw) AS f)",
    json_key_text="GET({column}, '{key}')::VARCHAR",
)
# The staging table holds JSON as text; PARSE_JSON turns it into VARIANT on the way in.
_STAGING = sql.Dialect({**_TYPES, ColumnType.JSON: "VARCHAR"}, param="%s", stores_upper_case=True)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class SnowflakeAuditWarehouse(AuditWarehouse):
    """Append-only snapshots and combined views in one Snowflake database.

    ``settings`` holds plain connection settings (account, user, warehouse, role); ``secret_env`` maps the
    secret ones to the environment variables that hold them, read when a run connects.
    """

    name: str  # the warehouse's name in the configuration, for messages
    database: str
    settings: dict[str, str]
    secret_env: dict[str, str]

    @property
    def dialect(self) -> sql.Dialect:
        return SNOWFLAKE

    @contextmanager
    def connect(self) -> Iterator[Any]:
        if not _NAME.match(self.database):
            raise ValueError(f"warehouse {self.name}: {self.database!r} is not a Snowflake database name")
        secrets = read_secrets(self.secret_env, f"warehouse {self.name}")
        resource = SnowflakeResource(database=self.database, schema=SCHEMA, **self.settings, **secrets)
        with ExitStack() as stack:
            try:
                connection = stack.enter_context(resource.get_connection(raw_conn=False))
            except (ValueError, TypeError) as exc:  # how dagster-snowflake reports a key it cannot load
                if "private_key" not in secrets:
                    raise
                raise SecretError(self._unreadable_key(exc)) from None
            # A role without CREATE SCHEMA may still use a schema created for it, so look before creating.
            found = self.execute(
                connection, f"SHOW SCHEMAS LIKE '{SCHEMA.upper()}' IN DATABASE {self.database}"
            )
            if not found:
                self.execute(connection, f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            self.execute(connection, f"USE SCHEMA {SCHEMA}")
            yield connection

    def _unreadable_key(self, error: BaseException) -> str:
        """Why the key-pair secrets do not make a key, naming their variables, never their values."""
        while error.__context__ is not None:  # cryptography's own reason is the innermost
            error = error.__context__
        passphrase = self.secret_env.get("private_key_password")
        with_passphrase = f"with the passphrase in {passphrase}" if passphrase else "without a passphrase"
        return (
            f"warehouse {self.name}: the private key in {self.secret_env['private_key']} cannot be read "
            f"{with_passphrase} ({error}); give the PKCS#8 PEM file (or its base64) and its passphrase"
        )

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

    def stage(self, connection: Any, table: str, snapshot: Snapshot) -> str:
        # Unqualified: a temporary table lives in the session's current schema, private to this session
        # and gone when it ends.
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

    def insert(self, connection: Any, table: str, snapshot: Snapshot, staged: str) -> None:
        names = ", ".join(c.name for c in snapshot.columns)
        values = ", ".join(_from_staging(c) for c in snapshot.columns)
        insert = f"INSERT INTO {sql.qualified(SCHEMA, table)} ({names}) SELECT {values} FROM {staged}"  # noqa: S608
        self.execute(connection, insert)


def _from_staging(column: Column) -> str:
    name = checked_identifier(column.name)
    return f"PARSE_JSON({name})" if column.type is ColumnType.JSON else name
