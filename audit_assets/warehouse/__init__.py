"""Warehouse engines: one append-only warehouse resource per engine, built from a configured warehouse."""

from __future__ import annotations

from audit_assets.config import DuckDbWarehouse, SecretRef, SnowflakeWarehouse
from audit_assets.warehouse.base import AuditWarehouse


def build_warehouse(name: str, warehouse: DuckDbWarehouse | SnowflakeWarehouse) -> AuditWarehouse:
    # Each engine's driver is imported only when a warehouse uses it: every Dagster run process loads
    # the definitions, and the Snowflake connector alone adds about a second to that.
    if isinstance(warehouse, DuckDbWarehouse):
        from audit_assets.warehouse.duckdb import DuckDbAuditWarehouse

        return DuckDbAuditWarehouse(database=warehouse.path)
    from audit_assets.warehouse.snowflake import SnowflakeAuditWarehouse

    fields = {
        "account": warehouse.account,
        "user": warehouse.user,
        "password": warehouse.password,
        "private_key": warehouse.private_key,
        "private_key_password": warehouse.private_key_password,
        "warehouse": warehouse.warehouse,
        "role": warehouse.role,
    }
    return SnowflakeAuditWarehouse(
        name=name,
        database=warehouse.database,
        settings={k: v for k, v in fields.items() if isinstance(v, str)},
        secret_env={k: v.env for k, v in fields.items() if isinstance(v, SecretRef)},
    )
