"""What the Dagster UI shows of a snapshot and of a view, read back from the warehouse.

Every figure comes from the committed rows (the table is the truth), so a materialization shows exactly
what SQL on the view shows. Counts are numeric metadata, which Dagster plots across materializations;
they are named for what they count, so nobody mistakes the table's growing row count for the day's
audiences.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from audit_assets.warehouse.base import SnapshotReport, ViewReport

LARGEST_SHOWN = 25  # audiences listed in a materialization's table, largest first

_AUDIENCE_TABLE = dg.TableSchema(
    columns=[
        dg.TableColumn("ad_account_id", "string"),
        dg.TableColumn("audience_id", "string"),
        dg.TableColumn("audience_name", "string"),
        dg.TableColumn("audience_size", "int", description="As in external_audiences_metadata_v1."),
    ]
)
_DESTINATION_TABLE = dg.TableSchema(
    columns=[
        dg.TableColumn("ht_destination", "string"),
        dg.TableColumn("ht_destination_id", "string"),
        dg.TableColumn("audiences", "int"),
        dg.TableColumn("audience_size_total", "int"),
        dg.TableColumn("audiences_with_size", "int"),
        dg.TableColumn("latest_ht_fetched_at", "string", description="UTC, to the minute"),
    ]
)


@dataclass(frozen=True)
class FetchStats:
    """How a snapshot taken in this step talked to the platform (absent when it was already committed)."""

    api_requests: int
    throttle_wait_seconds: float
    ad_accounts_not_found: tuple[str, ...]
    ad_accounts_left_out: dict[str, str]  # account id -> why its audiences could not be read
    sync_ids_from_hightouch: int | None


def snapshot_metadata(report: SnapshotReport, fetch: FetchStats | None) -> dict[str, dg.RawMetadataValue]:
    """The metadata of one snapshot's materialization."""
    totals = report.totals
    metadata: dict[str, dg.RawMetadataValue] = {
        "audiences": totals.audiences,
        "audiences_with_size": totals.audiences_with_size,
        "audience_size_total": _int(totals.audience_size_total),
        "audiences_new": _int(report.audiences_new),
        "audiences_vanished": _int(report.audiences_vanished),
        "ad_accounts_with_audiences": len(report.audiences_by_account),
        "ht_fetched_at": dg.MetadataValue.timestamp(totals.fetched_at),
        "snapshot_id": totals.snapshot_id,
        "snapshot": "taken in this step"
        if fetch
        else "already committed (re-execution): reported, not taken",
        "largest_audiences": dg.MetadataValue.table(
            records=[
                dg.TableRecord({"ad_account_id": a, "audience_id": i, "audience_name": n, "audience_size": s})
                for a, i, n, s in report.largest
            ],
            schema=_AUDIENCE_TABLE,
        ),
        "audiences_by_ad_account": dg.MetadataValue.json(report.audiences_by_account),
    }
    if report.previous is not None:
        metadata["previous_snapshot_id"] = report.previous.snapshot_id
        metadata["previous_ht_fetched_at"] = dg.MetadataValue.timestamp(report.previous.fetched_at)
    if fetch is not None:
        metadata |= {
            "api_requests": fetch.api_requests,
            "throttle_wait_seconds": round(fetch.throttle_wait_seconds, 3),
            "ad_accounts_not_found": dg.MetadataValue.json(list(fetch.ad_accounts_not_found)),
            "ad_accounts_left_out": dg.MetadataValue.json(fetch.ad_accounts_left_out),
            "sync_ids_from_hightouch": _int(fetch.sync_ids_from_hightouch),
        }
    return metadata


def view_metadata(report: ViewReport) -> Mapping[str, dg.RawMetadataValue]:
    """The view's row count, and each destination's latest snapshot as the view shows it."""
    return {
        "dagster/row_count": report.row_count,
        "destinations_with_snapshots": len(report.latest),
        "audience_size_total_latest": sum(t.audience_size_total or 0 for t in report.latest),
        "latest_by_destination": dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {
                        "ht_destination": t.destination,
                        "ht_destination_id": t.destination_id,
                        "audiences": t.audiences,
                        "audience_size_total": t.audience_size_total,
                        "audiences_with_size": t.audiences_with_size,
                        "latest_ht_fetched_at": t.fetched_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M"),
                    }
                )
                for t in report.latest
            ],
            schema=_DESTINATION_TABLE,
        ),
    }


def _int(value: int | None) -> dg.MetadataValue:
    return dg.MetadataValue.null() if value is None else dg.MetadataValue.int(value)
