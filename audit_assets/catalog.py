"""What things are called in the Dagster catalog and the warehouse: keys, resource keys, tables, views."""

import functools

import dagster as dg

from audit_assets.columns import Column
from audit_assets.config import AuditConfig, DestinationConfig
from audit_assets.platforms import PLATFORMS
from audit_assets.views import SCHEMA, ViewDefinition, ViewSource

GROUP = "hightouch_audit"
HIGHTOUCH_RESOURCE_KEY = "hightouch"


def destination_key(dest: DestinationConfig) -> dg.AssetKey:
    return dg.AssetKey([SCHEMA, dest.table])


def view_key(config: AuditConfig, warehouse: str, name: str) -> dg.AssetKey:
    """The key of a view (or report) asset of one warehouse, ``name`` its last part.

    The first warehouse's assets keep the plain key, so adding a warehouse renames nothing; each other
    warehouse's are keyed under its name. Destination keys never depend on warehouses.
    """
    if warehouse == next(iter(config.warehouses)):
        return dg.AssetKey([SCHEMA, name])
    return dg.AssetKey([SCHEMA, warehouse, name])


def destinations_in(config: AuditConfig, warehouse: str) -> list[DestinationConfig]:
    """Every configured destination stored in one warehouse, enabled or not."""
    return [d for d in config.destinations if config.warehouse_name_for(d) == warehouse]


def view_source(dest: DestinationConfig) -> ViewSource:
    platform = PLATFORMS[dest.type]
    return ViewSource(dest.table, platform.v1, platform.columns, platform.v2)


def view_definition(config: AuditConfig, warehouse: str) -> ViewDefinition:
    """The v1 view of one warehouse: every configured destination's table there, enabled or not."""
    return ViewDefinition(sources=tuple(view_source(d) for d in destinations_in(config, warehouse)))


def table_name(config: AuditConfig, warehouse: str, table: str) -> str:
    """The name a person queries, as ``dagster/table_name`` shows it (Snowflake: fully qualified, upper)."""
    settings = config.warehouses[warehouse]
    if settings.type == "snowflake":
        return f"{settings.database}.{SCHEMA}.{table}".upper()
    return f"{SCHEMA}.{table}"


def warehouse_key(warehouse: str) -> str:
    return f"warehouse_{warehouse}"


@functools.cache
def table_schema(columns: tuple[Column, ...]) -> dg.TableSchema:
    """Built once per column set: every destination of a platform shares it (hundreds of destinations
    would otherwise build tens of thousands of identical column objects at load)."""
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, c.type.value, description=c.description or None) for c in columns]
    )
