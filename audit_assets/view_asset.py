"""The view asset factory: one combined v1 view per warehouse, over every destination stored there."""

import dagster as dg

from audit_assets.catalog import (
    GROUP,
    destination_key,
    destinations_in,
    table_name,
    table_schema,
    view_definition,
    view_key,
    warehouse_key,
)
from audit_assets.config import AuditConfig, DestinationConfig
from audit_assets.platforms import PLATFORMS
from audit_assets.report import view_metadata
from audit_assets.secrets import SecretError
from audit_assets.views import SCHEMA, V1_COLUMNS, V1_NAME
from audit_assets.warehouse.base import AuditWarehouse

# v1 columns that come from the ht_* column of the same meaning in every destination table.
_FROM_HT_COLUMN = {"ad_account_id": "ht_ad_account_id"}


def column_lineage(dests: list[DestinationConfig]) -> dg.TableColumnLineage:
    """Each v1 column <- the column of each destination table it is read from (the platform's mapping)."""

    def source_column(dest: DestinationConfig, column: str) -> str:
        mapping = PLATFORMS[dest.type].v1
        by_mapping = {
            "audience_id": mapping.audience_id,
            "audience_name": mapping.audience_name,
            "audience_size": mapping.audience_size,
        }
        return by_mapping.get(column) or _FROM_HT_COLUMN.get(column, column)

    return dg.TableColumnLineage(
        deps_by_column={
            c.name: [dg.TableColumnDep(destination_key(d), source_column(d, c.name)) for d in dests]
            for c in V1_COLUMNS
        }
    )


def build_view_asset(config: AuditConfig, warehouse: str) -> dg.AssetsDefinition:
    """The combined v1 view of one warehouse, over every configured destination stored there."""
    dests = destinations_in(config, warehouse)
    view = view_definition(config, warehouse)
    store_key = warehouse_key(warehouse)
    lineage = column_lineage(dests)

    @dg.asset(
        key=view_key(config, warehouse),
        group_name=GROUP,
        # The view reads every snapshot live; it is current once the latest day's table exists, so it
        # depends on the latest partition (and a backfill of old days never holds it back).
        deps=[dg.AssetDep(destination_key(d), partition_mapping=dg.LastPartitionMapping()) for d in dests],
        required_resource_keys={store_key},
        # Like the destinations, so `dagster asset materialize --partition-range` runs the group in one run.
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={config.warehouses[warehouse].type, "view"},
        owners=sorted({owner for d in dests for owner in d.owners}),
        code_version="v1",
        description=(
            f"{SCHEMA}.{V1_NAME}: every snapshot of every destination in warehouse '{warehouse}', in one "
            "standard shape (frozen: later versions get a new name). It unions every configured "
            "destination's table (creating empty ones not written yet) and reads them live, so new "
            "snapshots appear in it at once; every snapshot written also refreshes it."
        ),
        metadata={
            "dagster/table_name": table_name(config, warehouse, V1_NAME),
            "dagster/column_schema": table_schema(V1_COLUMNS),
            "dagster/column_lineage": lineage,
        },
    )
    def v1_view(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        store: AuditWarehouse = getattr(context.resources, store_key)
        try:
            with store.session() as session:
                session.replace_view(V1_NAME, view)
                report = session.view_report(V1_NAME)
        except SecretError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        return dg.MaterializeResult(
            metadata={
                **view_metadata(report),
                "dagster/column_lineage": lineage,
                "tables_in_view": sorted(s.table for s in view.sources),
            }
        )

    return v1_view
