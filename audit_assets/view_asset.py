"""The view asset factory: one combined v1 view per warehouse, over every destination stored there."""

import dagster as dg

from audit_assets.catalog import (
    GROUP,
    SCHEMA,
    destination_key,
    io_manager_key,
    table_name,
    table_schema,
    view_key,
)
from audit_assets.config import AuditConfig
from audit_assets.platforms import PLATFORMS
from audit_assets.views import V1_COLUMNS, V1_NAME, ViewDefinition, ViewSource


def build_view_asset(config: AuditConfig, warehouse: str) -> dg.AssetsDefinition:
    """The combined v1 view of one warehouse, over every configured destination stored there."""
    dests = [d for d in config.destinations if config.warehouse_name_for(d) == warehouse]
    sources = tuple(ViewSource(d.table, PLATFORMS[d.type].v1, PLATFORMS[d.type].columns) for d in dests)

    @dg.asset(
        key=view_key(config, warehouse),
        group_name=GROUP,
        io_manager_key=io_manager_key(warehouse),
        deps=[dg.AssetDep(destination_key(d), partition_mapping=dg.AllPartitionMapping()) for d in dests],
        kinds={config.warehouses[warehouse].type, "view"},
        code_version="v1",
        description=(
            f"{SCHEMA}.{V1_NAME}: every snapshot of every destination in warehouse '{warehouse}', in one "
            "standard shape (frozen: later versions get a new name). It unions every configured "
            "destination's table (creating empty ones not written yet) and reads them live, so new "
            "snapshots appear in it at once."
        ),
        metadata={
            "schema": SCHEMA,
            "dagster/table_name": table_name(config, warehouse, V1_NAME),
            "dagster/column_schema": table_schema(V1_COLUMNS),
        },
    )
    def v1_view() -> ViewDefinition:
        return ViewDefinition(sources=sources)

    return v1_view
