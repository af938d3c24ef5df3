"""The snapshot asset factory: one daily-partitioned asset per destination, with its API-fields check."""

import datetime as dt
import uuid
from collections.abc import Iterator

import dagster as dg
from dagster import AssetExecutionContext

from audit_assets.catalog import (
    GROUP,
    HIGHTOUCH_RESOURCE_KEY,
    client_resource_key,
    destination_key,
    io_manager_key,
    table_name,
    table_schema,
)
from audit_assets.config import AuditConfig, DestinationConfig
from audit_assets.platforms import PLATFORMS
from audit_assets.platforms.base import PlatformError, TransientExhausted
from audit_assets.platforms.http import ApiSession
from audit_assets.resources import AdPlatformResource, HightouchResource
from audit_assets.snapshot import (
    PartitionRefused,
    Snapshot,
    SnapshotIdentity,
    check_snapshot_date,
    take_snapshot,
)

API_FIELDS_CHECK = "no_unknown_api_fields"
_SNAPSHOT_NAMESPACE = uuid.UUID("6f1c2a8e-3d4b-4f55-9a7e-2b0c9d1e5a11")


def daily_partitions(start_date: dt.date) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today's partition exists, so the schedule snapshots today, the day it runs.
    return dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC", end_offset=1)


def snapshot_id_for(root_run_id: str, table: str, partition_key: str) -> str:
    """Deterministic per (root run, table, partition).

    A retried step, and a re-execution of the run (which shares its root run id), reuse the id, so the
    IO manager writes that snapshot at most once. A new run takes a new snapshot.
    """
    return str(uuid.uuid5(_SNAPSHOT_NAMESPACE, f"{root_run_id}/{table}/{partition_key}"))


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
            "partition_expr": "ht_snapshot_date",
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
    key = spec["key"]
    resource_key = client_resource_key(dest)
    policy = config.snapshots
    allow_list = dest.account_allow_list
    resolve_sync_ids = config.hightouch is not None

    @dg.asset(
        **spec,
        partitions_def=partitions,
        io_manager_key=io_manager_key(config.warehouse_name_for(dest)),
        required_resource_keys={resource_key, *([HIGHTOUCH_RESOURCE_KEY] if resolve_sync_ids else [])},
        pool=f"audit_assets_{dest.type}",
        # Exhausted 5xx/connection retries and warehouse lock timeouts may heal; bad answers do not.
        retry_policy=dg.RetryPolicy(
            max_retries=policy.step_retries,
            delay=60,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
        check_specs=[
            dg.AssetCheckSpec(
                API_FIELDS_CHECK,
                asset=key,
                description=f"Every field {platform.title} returned has a typed column. A new field is kept in "
                "ht_raw and reported here until the platform module declares it.",
            )
        ],
    )
    def snapshot_asset(context: AssetExecutionContext) -> Iterator[dg.Output | dg.AssetCheckResult]:
        partition_key = context.partition_key
        try:
            check_snapshot_date(
                dt.date.fromisoformat(partition_key),
                dt.datetime.now(dt.UTC).date(),
                policy.allow_past_partitions,
            )
        except PartitionRefused as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        identity = SnapshotIdentity(
            snapshot_id=snapshot_id_for(
                context.run.root_run_id or context.run.run_id, dest.table, partition_key
            ),
            snapshot_date=dt.date.fromisoformat(partition_key),
            run_id=context.run.run_id,
            destination=dest.type,
            destination_id=dest.id,
        )
        sync_ids, from_hightouch = (
            _sync_ids(context, dest) if resolve_sync_ids else (dict(dest.sync_ids), None)
        )
        resource: AdPlatformResource = getattr(context.resources, resource_key)
        try:
            with resource.open(context.log) as (client, session):
                snapshot = take_snapshot(
                    client=client,
                    platform=platform,
                    identity=identity,
                    sync_ids=sync_ids,
                    ad_account_ids=allow_list,
                    log=context.log,
                )
        except PlatformError as exc:
            # Already redacted; nothing was written. Only transient failures that outlasted the
            # client's own retries may heal on a later step attempt; wrong answers and refusals do not.
            raise dg.Failure(
                description=f"{exc}\nNothing was written for this snapshot.",
                allow_retries=isinstance(exc, TransientExhausted),
            ) from None
        try:
            yield from _report(snapshot, session, platform.title, from_hightouch)
        finally:
            snapshot.discard()  # the IO manager discards after writing; this covers a failed connect

    return snapshot_asset


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
        return dict(dest.sync_ids), None
    return {**found, **dest.sync_ids}, len(found)


def _report(
    snapshot: Snapshot, session: ApiSession, title: str, from_hightouch: int | None
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The snapshot as the asset's output (written by the IO manager), then the API-fields check."""
    unknown = sorted(snapshot.drift_fields)
    yield dg.Output(
        snapshot,
        metadata={
            "snapshot_id": snapshot.identity.snapshot_id,
            "ht_fetched_at": snapshot.fetched_at.isoformat(),
            "audiences": snapshot.row_count,
            "ad_accounts": dg.MetadataValue.json(snapshot.audiences_by_account),
            "ad_accounts_not_found": dg.MetadataValue.json(list(snapshot.accounts_not_found)),
            "unknown_api_fields": dg.MetadataValue.json(unknown),
            "api_requests": session.requests_sent,
            "sync_ids_from_hightouch": from_hightouch,
            "throttle_wait_seconds": round(session.throttle_waited_seconds, 3),
        },
    )
    yield dg.AssetCheckResult(
        check_name=API_FIELDS_CHECK,
        passed=not unknown,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"unknown_api_fields": dg.MetadataValue.json(unknown)},
        description=(
            f"{title} returned fields without a typed column: {', '.join(unknown)}. They are kept in ht_raw."
            if unknown
            else None
        ),
    )
