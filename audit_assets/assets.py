"""The snapshot asset factory: one daily-partitioned asset per destination, with its checks.

Each asset runs ranges in one run (a single-run backfill policy) and records, per day of its run, one
snapshot taken now — only for the days a snapshot taken now can stand for (partitions.py). A run that
records every day it was given reports an ordinary materialization; a backfill range that includes days
no platform can tell any more reports the days it recorded, one materialization each, and leaves the
others missing (never failed), saying why once. That per-day reporting is why snapshots are written by a
warehouse resource and not an IO manager: an IO manager's output materializes every day of its run.
"""

import datetime as dt
from collections.abc import Generator, Iterator

import dagster as dg
from dagster import AssetExecutionContext

from audit_assets.catalog import (
    GROUP,
    HIGHTOUCH_RESOURCE_KEY,
    destination_key,
    table_name,
    table_schema,
    view_definition,
    view_source,
    warehouse_key,
)
from audit_assets.checks import (
    READABLE_ACCOUNTS_CHECK,
    SHARP_DROP_CHECK,
    UNKNOWN_FIELDS_CHECK,
    accounts_readable,
    check_specs,
    freshness_policy,
    sharp_drop,
    unknown_fields,
)
from audit_assets.config import AuditConfig, DestinationConfig
from audit_assets.partitions import (
    PartitionRefused,
    daily_partitions,
    plan_partitions,
    snapshot_id_for,
    why_not_recorded,
)
from audit_assets.platforms import PLATFORMS
from audit_assets.platforms.base import PlatformError, TransientExhausted
from audit_assets.report import LARGEST_SHOWN, FetchStats, snapshot_metadata
from audit_assets.resources import HightouchResource, connection_for
from audit_assets.secrets import SecretError
from audit_assets.warehouse.base import AuditWarehouse, SnapshotReport


def _spec_arguments(config: AuditConfig, dest: DestinationConfig) -> dict:
    platform = PLATFORMS[dest.type]
    warehouse = config.warehouse_name_for(dest)
    description = (
        f"Daily snapshot of every audience in the active {platform.title} ad accounts of destination "
        f"{dest.id}, appended to {table_name(config, warehouse, dest.table)}."
    )
    if dest.description:
        description += f"\n\n{dest.description}"
    if not dest.enabled:
        description += "\n\nDisabled: no new snapshots are taken; the table and its history stay."
    return {
        "key": destination_key(dest),
        "group_name": GROUP,
        "description": description,
        "kinds": {platform.slug, config.warehouses[warehouse].type},
        "owners": dest.owners,
        "tags": dest.tags,
        "metadata": {
            "dagster/table_name": table_name(config, warehouse, dest.table),
            "dagster/column_schema": table_schema(platform.columns),
            "destination_id": dest.id,
            "destination_type": dest.type,
            "enabled": dest.enabled,
            "warehouse": warehouse,
        },
    }


def build_destination_asset(
    config: AuditConfig, dest: DestinationConfig
) -> dg.AssetsDefinition | dg.AssetSpec:
    """The snapshot asset of one destination; a disabled one keeps its key and lineage but cannot run."""
    spec = _spec_arguments(config, dest)
    partitions = daily_partitions(config.start_date)
    if not dest.enabled:
        return dg.AssetSpec(**spec, partitions_def=partitions)

    platform = PLATFORMS[dest.type]
    warehouse = config.warehouse_name_for(dest)
    store_key = warehouse_key(warehouse)
    connection = connection_for(dest, config.snapshots)
    policy = config.snapshots
    resolve_sync_ids = config.hightouch is not None
    source = view_source(dest)

    def record(
        context: AssetExecutionContext, partition_key: str
    ) -> tuple[SnapshotReport, dict, FetchStats | None]:
        """Take (or, on a re-execution, find) this run's snapshot for one day; report what is committed."""
        # Imported when a snapshot is taken: pyarrow is ~0.15 s and ~50 MB that a code server, which
        # only loads the definitions, never needs.
        from audit_assets.snapshot import SnapshotIdentity, take_snapshot

        run = context.run
        identity = SnapshotIdentity(
            snapshot_id=snapshot_id_for(run.root_run_id or run.run_id, dest.table, partition_key),
            snapshot_date=dt.date.fromisoformat(partition_key),
            run_id=run.run_id,
            destination=dest.type,
            destination_id=dest.id,
        )
        store: AuditWarehouse = getattr(context.resources, store_key)
        with store.session() as session:
            committed = session.is_committed(dest.table, identity)
        fetch = None
        if committed:
            again = f"a re-execution of run {run.root_run_id}" if run.root_run_id else "a retry of this step"
            context.log.info(
                f"{partition_key}: snapshot {identity.snapshot_id} is already committed ({again}); "
                f"reporting it as the table holds it, without calling {platform.title} again."
            )
        else:
            sync_ids, from_hightouch = (
                _sync_ids(context, dest) if resolve_sync_ids else (dest.sync_id_of_audience, None)
            )
            with connection.open(context.log) as (client, api):
                snapshot = take_snapshot(
                    client=client,
                    platform=platform,
                    identity=identity,
                    sync_ids=sync_ids,
                    ad_account_ids=dest.account_allow_list,
                    log=context.log,
                    interrupt=api.interrupt,
                )
            fetch = FetchStats(
                api.requests_sent,
                api.throttle_waited_seconds,
                snapshot.accounts_not_found,
                snapshot.accounts_left_out,
                from_hightouch,
            )
        try:
            with store.session() as session:
                if fetch is not None:
                    session.append(dest.table, snapshot)
                # Every write also refreshes the view, so it is current whatever else fails in the run.
                session.replace_views(view_definition(config, warehouse))
                report = session.snapshot_report(
                    source, identity.snapshot_date, identity.snapshot_id, LARGEST_SHOWN
                )
        finally:
            if fetch is not None:
                snapshot.discard()  # also when the warehouse could not be reached
        return report, snapshot_metadata(report, fetch), fetch

    def latest_reports(context: AssetExecutionContext) -> list[SnapshotReport]:
        """The last committed snapshot of each day of the run: what checks judge when run on their own."""
        store: AuditWarehouse = getattr(context.resources, store_key)
        reports = []
        with store.session() as session:
            for key in context.partition_keys:
                day = dt.date.fromisoformat(key)
                snapshot_id = session.latest_snapshot_of_day(dest.table, day)
                if snapshot_id is not None:
                    reports.append(session.snapshot_report(source, day, snapshot_id, LARGEST_SHOWN))
        return reports

    checks = check_specs(spec["key"], platform, config.checks)

    @dg.multi_asset(
        name=f"{spec['key'].path[0]}__{spec['key'].path[1]}",
        # skippable: a backfill range may record none of its days; can_subset: the checks may run alone.
        specs=[dg.AssetSpec(**spec, skippable=True, freshness_policy=freshness_policy(config.checks))],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=True,
        required_resource_keys={store_key, *([HIGHTOUCH_RESOURCE_KEY] if resolve_sync_ids else [])},
        pool=f"audit_assets_{dest.type}",
        # Exhausted 5xx/connection retries and warehouse lock timeouts may heal; bad answers do not.
        retry_policy=dg.RetryPolicy(
            max_retries=policy.step_retries,
            delay=policy.step_retry_delay_seconds,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
        check_specs=checks,
    )
    def snapshot_asset(
        context: AssetExecutionContext,
    ) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckResult]:
        selected_checks = {k.name for k in context.selected_asset_check_keys}
        fetches: list[FetchStats] = []
        if spec["key"] in context.selected_asset_keys:
            reports, fetches = yield from materialize(context)
        else:
            reports = latest_reports(context)
        results = {}
        if reports:
            results[UNKNOWN_FIELDS_CHECK] = unknown_fields(reports, platform)
            results[SHARP_DROP_CHECK] = sharp_drop(reports, config.checks)
        if fetches:  # which accounts refused is known to a fetch only, not to the table
            left_out = {a: why for f in fetches for a, why in f.ad_accounts_left_out.items()}
            results[READABLE_ACCOUNTS_CHECK] = accounts_readable(left_out, platform.title)
        yield from (result for name, result in results.items() if name in selected_checks)

    def materialize(
        context: AssetExecutionContext,
    ) -> Generator[
        dg.MaterializeResult | dg.AssetMaterialization, None, tuple[list[SnapshotReport], list[FetchStats]]
    ]:
        today = dt.datetime.now(dt.UTC).date()
        try:
            plan = plan_partitions(
                context.partition_keys,
                today,
                allow_past=policy.allow_past_partitions,
                config_source=config.source,
            )
        except PartitionRefused as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        if not plan.records_every_day:
            context.log.warning(
                f"This run records {len(plan.recordable)} of its {len(context.partition_keys)} partitions; the "
                f"others stay missing: {why_not_recorded(plan, today, config.source)}"
            )
        try:
            recorded = {key: record(context, key) for key in plan.recordable}
        except SecretError as exc:
            raise dg.Failure(description=f"{exc}. Nothing was written.", allow_retries=False) from None
        except PlatformError as exc:
            # Already redacted; nothing of this snapshot was written. Only transient failures that
            # outlasted the client's own retries may heal on a later step attempt.
            raise dg.Failure(
                description=f"{exc}\nNothing was written for this snapshot.",
                allow_retries=isinstance(exc, TransientExhausted),
            ) from None
        except dg.DagsterExecutionInterruptedError:
            if not _run_is_terminating(context):
                raise  # e.g. an evicted step process: Dagster's retry policy decides, as for any step
            # Dagster would report a retry that a terminated run never makes, and leave the step shown
            # as preparing; say what happened instead.
            raise dg.Failure(description=TERMINATED, allow_retries=False) from None
        if recorded and plan.records_every_day:  # one materialization per day, each with its own metadata
            for key, (_, metadata, _) in recorded.items():
                context.add_asset_metadata(metadata, partition_key=key)
            yield dg.MaterializeResult()
        else:  # only the days recorded; the run's other days stay missing
            for key, (_, metadata, _) in recorded.items():
                yield dg.AssetMaterialization(asset_key=context.asset_key, partition=key, metadata=metadata)
        return [r for r, _, _ in recorded.values()], [f for _, _, f in recorded.values() if f is not None]

    return snapshot_asset


TERMINATED = (
    "The run was terminated while this step took its snapshot. No snapshot is ever written in part: "
    "a day whose snapshot had not committed has nothing in the table."
)


def _run_is_terminating(context: AssetExecutionContext) -> bool:
    run = context.instance.get_run_by_id(context.run_id)
    return run is not None and run.status in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)


def _sync_ids(context: AssetExecutionContext, dest: DestinationConfig) -> tuple[dict[str, str], int | None]:
    """Sync ids from Hightouch, overridden by the configured ``sync_ids``; how many Hightouch gave.

    ht_sync_id enriches a snapshot; it is not worth losing the day's sizes for. When Hightouch cannot
    answer, the snapshot goes on with the configured ids alone and says so (None) in its metadata.
    """
    hightouch: HightouchResource = getattr(context.resources, HIGHTOUCH_RESOURCE_KEY)
    try:
        with hightouch.open(context.log) as client:
            found = client.sync_ids_for(dest.id)
    except PlatformError as exc:
        context.log.warning(f"{exc}\nht_sync_id comes only from the configured sync_ids in this snapshot.")
        return dest.sync_id_of_audience, None
    audience_id = PLATFORMS[dest.type].audience_id
    return {**{audience_id.canonical(k): v for k, v in found.items()}, **dest.sync_id_of_audience}, len(found)
