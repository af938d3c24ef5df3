"""Warehouse engines: one append-only IO manager per engine, built from a configured warehouse."""

from __future__ import annotations

import dagster as dg

from audit_assets.config import DuckDbWarehouse, SecretRef, SnowflakeWarehouse


def _value(item: SecretRef | str | None) -> str | None:
    """An env reference becomes a Dagster EnvVar (resolved at run time); a plain setting stays as it is."""
    if isinstance(item, SecretRef):
        return dg.EnvVar(item.env)  # type: ignore[return-value]
    return item


def build_io_manager(warehouse: DuckDbWarehouse | SnowflakeWarehouse) -> dg.ConfigurableIOManagerFactory:
    # Each engine's driver is imported only when a warehouse uses it: every Dagster run process loads
    # the definitions, and the Snowflake connector alone adds about a second to that.
    if isinstance(warehouse, DuckDbWarehouse):
        from audit_assets.warehouse.duckdb import AuditDuckDBIOManager

        return AuditDuckDBIOManager(database=warehouse.path)
    from audit_assets.warehouse.snowflake import AuditSnowflakeIOManager

    optional = {
        "password": _value(warehouse.password),
        "private_key": _value(warehouse.private_key),
        "private_key_password": _value(warehouse.private_key_password),
        "warehouse": warehouse.warehouse,
        "role": warehouse.role,
    }
    return AuditSnowflakeIOManager(
        database=warehouse.database,
        account=_value(warehouse.account),
        user=_value(warehouse.user),
        **{k: v for k, v in optional.items() if v is not None},
    )
