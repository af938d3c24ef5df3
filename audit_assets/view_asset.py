"""The assets of one warehouse's views: the combined views (v1, v2) and the daily change report over them.

Each unions every destination stored in the warehouse; the change report (re)creates
``audience_size_changes_v1`` over v2 and reports one day of it per partition, read back from the
warehouse, so its figures are exactly what SQL on the view shows.
"""

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

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
from audit_assets.checks import (
    NO_SHRINKAGE_CHECK,
    NO_VANISHED_CHECK,
    change_check_specs,
    no_sharp_shrinkage,
    no_vanished,
)
from audit_assets.config import AuditConfig, DestinationConfig
from audit_assets.partitions import daily_partitions
from audit_assets.platforms import PLATFORMS
from audit_assets.platforms.base import Platform
from audit_assets.report import HISTORY_DAYS, MOVERS_SHOWN, change_metadata, view_metadata
from audit_assets.secrets import SecretError
from audit_assets.views import (
    CHANGE_COLUMNS,
    CHANGES_NAME,
    COMBINED_VIEWS,
    SCHEMA,
    V1_NAME,
    V2_NAME,
    SizeRange,
)
from audit_assets.warehouse.base import AuditWarehouse, ChangeReport, WarehouseSession

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
    deps: dict[str, list[dg.TableColumnDep]] = {c.name: [] for c in COMBINED_VIEWS[name]}
    for dest in dests:
        key, sources = destination_key(dest), _source_columns(PLATFORMS[dest.type])
        for column, column_deps in deps.items():
            for source in sources.get(column, [column]):  # ht_* columns keep their names
                column_deps.append(dg.TableColumnDep(key, source))
    return dg.TableColumnLineage(deps_by_column=deps)


def _owners(dests: list[DestinationConfig]) -> list[str]:
    """A warehouse's views and report belong to the owners of the destinations they combine."""
    return sorted({owner for d in dests for owner in d.owners})


@contextmanager
def _warehouse_session(context: dg.AssetExecutionContext, store_key: str) -> Iterator[WarehouseSession]:
    """A session of the asset's warehouse; a warehouse secret that is not set fails the step for good."""
    store: AuditWarehouse = getattr(context.resources, store_key)
    try:
        with store.session() as session:
            yield session
    except SecretError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


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
        owners=_owners(dests),
        code_version=name.rsplit("_", 1)[-1],
        description=(
            f"{SCHEMA}.{name}: every snapshot of every destination in warehouse '{warehouse}', "
            f"{_ABOUT[name]}. It unions every configured destination's table (creating empty ones not "
            "written yet) and reads them live, so new snapshots appear in it at once; every snapshot "
            "written also refreshes it."
        ),
        metadata={
            "dagster/table_name": table_name(config, warehouse, name),
            "dagster/column_schema": table_schema(COMBINED_VIEWS[name]),
            "dagster/column_lineage": lineage,
        },
    )
    def combined_view(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with _warehouse_session(context, store_key) as session:
            session.replace_views(view, names=[name])
            report = session.view_report(name)
        return dg.MaterializeResult(
            metadata={
                **view_metadata(report),
                "dagster/column_lineage": lineage,
                "tables_in_view": sorted(s.table for s in view.sources),
            }
        )

    return combined_view


CHANGES_ASSET = "audience_size_changes"


def build_change_report_asset(config: AuditConfig, warehouse: str) -> dg.AssetsDefinition:
    """The daily change report of one warehouse, downstream of its destinations and its v2 view."""
    dests = destinations_in(config, warehouse)
    view = view_definition(config, warehouse)
    store_key = warehouse_key(warehouse)
    key = view_key(config, warehouse, CHANGES_ASSET)
    spec = dg.AssetSpec(
        key=key,
        group_name=GROUP,
        skippable=True,  # a day no destination has a snapshot of reports nothing (see below)
        # Each day reads that day's snapshots (the same partition) through the v2 view.
        deps=[*(destination_key(d) for d in dests), view_key(config, warehouse, V2_NAME)],
        kinds={config.warehouses[warehouse].type, "view"},
        owners=_owners(dests),
        description=(
            f"{SCHEMA}.{CHANGES_NAME}: for each destination and day, every audience of the day's last snapshot "
            "against the destination's previous snapshot date (new, vanished, grew, shrank, unchanged, "
            f"unknown). Each partition reports its day: counts per change kind, the biggest movers, vanished "
            f"audiences and each destination's total audience size over the last {HISTORY_DAYS} days."
        ),
        metadata={
            "dagster/table_name": table_name(config, warehouse, CHANGES_NAME),
            "dagster/column_schema": table_schema(CHANGE_COLUMNS),
        },
    )

    @dg.multi_asset(
        name="__".join(key.path),
        specs=[spec],
        partitions_def=daily_partitions(config.start_date),
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=True,  # the checks may run alone
        required_resource_keys={store_key},
        check_specs=change_check_specs(key, config.checks),
    )
    def change_report(
        context: dg.AssetExecutionContext,
    ) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckResult]:
        reports: list[ChangeReport] = []
        with _warehouse_session(context, store_key) as session:
            session.replace_views(view)  # the change view reads v2, which reads every table
            for partition in context.partition_keys:
                reports.append(
                    session.change_report(
                        dt.date.fromisoformat(partition),
                        history_days=HISTORY_DAYS,
                        limit=MOVERS_SHOWN,
                        shrink_percent=config.checks.audience_shrink_percent,
                    )
                )
        if key in context.selected_asset_keys:
            yield from _materializations(context, reports)
        selected = {k.name for k in context.selected_asset_check_keys}
        if NO_VANISHED_CHECK in selected:
            yield no_vanished(reports)
        if NO_SHRINKAGE_CHECK in selected:
            yield no_sharp_shrinkage(reports, config.checks)

    return change_report


def _materializations(
    context: dg.AssetExecutionContext, reports: list[ChangeReport]
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
    """One materialization per day that has a snapshot; a day without any (an old day of a backfill
    range, which no platform can tell any more) stays missing rather than reporting zeros."""
    reported = [r for r in reports if r.compared]
    if reported and len(reported) == len(reports):
        for report in reported:
            context.add_asset_metadata(
                change_metadata(report), partition_key=report.snapshot_date.isoformat()
            )
        yield dg.MaterializeResult()
        return
    missing = [r.snapshot_date.isoformat() for r in reports if not r.compared]
    context.log.info(
        f"No destination has a snapshot of {', '.join(missing)}: no change report for those days."
    )
    for report in reported:
        yield dg.AssetMaterialization(
            asset_key=context.asset_key,
            partition=report.snapshot_date.isoformat(),
            metadata=change_metadata(report),
        )
