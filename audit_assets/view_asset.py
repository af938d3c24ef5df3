"""The view asset factory: each combined view (v1, v2) of one warehouse, over every destination stored there."""

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
from audit_assets.platforms.base import Platform
from audit_assets.report import view_metadata
from audit_assets.secrets import SecretError
from audit_assets.views import SCHEMA, V1_COLUMNS, V1_NAME, V2_COLUMNS, V2_NAME, SizeRange
from audit_assets.warehouse.base import AuditWarehouse

_COLUMNS = {V1_NAME: V1_COLUMNS, V2_NAME: V2_COLUMNS}
_ABOUT = {
    V1_NAME: "in one standard shape (frozen: later versions get a new name)",
    V2_NAME: "as v1 with the platform's own size range, audience type and status, and the snapshot id and "
    "date (frozen, like v1)",
}


def _source_columns(platform: Platform) -> dict[str, list[str]]:
    """Each mapped view column <- the columns of a platform's table it is read from (none: always null)."""
    v1, v2 = platform.v1, platform.v2
    bounds: tuple[list[str], list[str]] = ([], [])
    if isinstance(v2.bounds, SizeRange):
        bounds = ([v2.bounds.column], [v2.bounds.column])
    elif v2.bounds is not None:
        bounds = ([v2.bounds[0]], [v2.bounds[1]])
    return {
        "ad_account_id": ["ht_ad_account_id"],
        "audience_id": [v1.audience_id],
        "audience_name": [v1.audience_name],
        "audience_size": [v1.audience_size],
        "audience_size_lower_bound": bounds[0],
        "audience_size_upper_bound": bounds[1],
        "audience_type": [v2.audience_type.column] if v2.audience_type else [],
        "audience_status": [v2.audience_status.column] if v2.audience_status else [],
    }


def column_lineage(dests: list[DestinationConfig], name: str) -> dg.TableColumnLineage:
    """Each view column <- the column of each destination table it is read from (the platform's mapping)."""
    deps: dict[str, list[dg.TableColumnDep]] = {c.name: [] for c in _COLUMNS[name]}
    for dest in dests:
        sources = _source_columns(PLATFORMS[dest.type])
        for column, column_deps in deps.items():
            for source in sources.get(column, [column]):  # ht_* columns keep their names
                column_deps.append(dg.TableColumnDep(destination_key(dest), source))
    return dg.TableColumnLineage(deps_by_column=deps)


def build_view_asset(config: AuditConfig, warehouse: str, name: str) -> dg.AssetsDefinition:
    """One combined view of one warehouse, over every configured destination stored there."""
    dests = destinations_in(config, warehouse)
    view = view_definition(config, warehouse)
    store_key = warehouse_key(warehouse)
    lineage = column_lineage(dests, name)

    @dg.asset(
        key=view_key(config, warehouse, name),
        group_name=GROUP,
        # The view reads every snapshot live; it is current once the latest day's table exists, so it
        # depends on the latest partition (and a backfill of old days never holds it back).
        deps=[dg.AssetDep(destination_key(d), partition_mapping=dg.LastPartitionMapping()) for d in dests],
        required_resource_keys={store_key},
        # Like the destinations, so `dagster asset materialize --partition-range` runs the group in one run.
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={config.warehouses[warehouse].type, "view"},
        owners=sorted({owner for d in dests for owner in d.owners}),
        code_version=name.rsplit("_", 1)[-1],
        description=(
            f"{SCHEMA}.{name}: every snapshot of every destination in warehouse '{warehouse}', "
            f"{_ABOUT[name]}. It unions every configured destination's table (creating empty ones not "
            "written yet) and reads them live, so new snapshots appear in it at once; every snapshot "
            "written also refreshes it."
        ),
        metadata={
            "dagster/table_name": table_name(config, warehouse, name),
            "dagster/column_schema": table_schema(_COLUMNS[name]),
            "dagster/column_lineage": lineage,
        },
    )
    def combined_view(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        store: AuditWarehouse = getattr(context.resources, store_key)
        try:
            with store.session() as session:
                session.replace_views(view, names=[name])
                report = session.view_report(name)
        except SecretError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        return dg.MaterializeResult(
            metadata={
                **view_metadata(report),
                "dagster/column_lineage": lineage,
                "tables_in_view": sorted(s.table for s in view.sources),
            }
        )

    return combined_view
