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

from audit_assets.charts import markdown_image, sparkline_rows_svg
from audit_assets.views import CHANGE_KINDS
from audit_assets.warehouse.base import Change, ChangeReport, SnapshotReport, ViewReport

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
    }
    if report.previous is not None:  # a destination's first snapshot has nothing to compare with
        metadata |= {
            "audiences_new": _int(report.audiences_new),
            "audiences_vanished": _int(report.audiences_vanished),
            "previous_snapshot_id": report.previous.snapshot_id,
            "previous_ht_fetched_at": dg.MetadataValue.timestamp(report.previous.fetched_at),
        }
    metadata |= {
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


MOVERS_SHOWN = 20  # changes listed in a change report's tables
HISTORY_DAYS = 30  # days of destination totals charted in a change report

# The figures first, so they are in view without scrolling sideways; the ids last.
_CHANGE_TABLE = dg.TableSchema(
    columns=[
        dg.TableColumn("destination", "string", description="ht_destination and ht_destination_id"),
        dg.TableColumn("audience_name", "string"),
        dg.TableColumn("previous_size", "int"),
        dg.TableColumn("audience_size", "int"),
        dg.TableColumn("size_change", "int"),
        dg.TableColumn("size_change_pct", "float"),
        dg.TableColumn("ad_account_id", "string"),
        dg.TableColumn("audience_id", "string"),
    ]
)


def change_table(changes: list[Change]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "destination": f"{c.destination} {c.destination_id}",
                    "audience_name": c.audience_name,
                    "previous_size": c.previous_size,
                    "audience_size": c.audience_size,
                    "size_change": c.size_change,
                    "size_change_pct": None if c.size_change_pct is None else round(c.size_change_pct, 2),
                    "ad_account_id": c.ad_account_id,
                    "audience_id": c.audience_id,
                }
            )
            for c in changes
        ],
        schema=_CHANGE_TABLE,
    )


def totals_chart(report: ChangeReport) -> str:
    """Markdown: each destination's total audience size per day, over the report's history."""
    first = report.snapshot_date - dt.timedelta(days=HISTORY_DAYS - 1)
    series: dict[str, dict[dt.date, int]] = {}
    for t in report.totals:
        if t.audience_size_total is not None:
            series.setdefault(f"{t.destination} {t.destination_id}", {})[t.snapshot_date] = (
                t.audience_size_total
            )
    svg = sparkline_rows_svg(series, first, report.snapshot_date, "Total audience size per destination")
    caption = f"Last snapshot of each day, {first} to {report.snapshot_date}; each row on its own scale."
    return f"{markdown_image(svg, f'Total audience size per destination, last {HISTORY_DAYS} days')}\n\n{caption}"


# What ``compared_with`` says of a destination on its first snapshot date: everything it has is new.
FIRST_SNAPSHOT = "nothing earlier: its first snapshot"


def change_metadata(report: ChangeReport) -> dict[str, dg.RawMetadataValue]:
    """A day's change report: a count per change kind (plotted across days), the movers, the trend."""
    today = [t for t in report.totals if t.snapshot_date == report.snapshot_date]
    return {
        **{f"audiences_{kind}": report.counts[kind] for kind in CHANGE_KINDS},
        "audiences_compared": sum(report.counts.values()),
        "destinations_compared": len(report.compared),
        "audience_size_total": sum(t.audience_size_total or 0 for t in today),
        "biggest_movers": change_table(report.biggest),
        "vanished_audiences": change_table(report.vanished),
        "destination_totals_30d": dg.MetadataValue.md(totals_chart(report)),
        "compared_with": dg.MetadataValue.json(
            {
                f"{t} {i}": FIRST_SNAPSHOT if before is None else before.isoformat()
                for t, i, before in report.compared
            }
        ),
    }


def _int(value: int | None) -> dg.MetadataValue:
    return dg.MetadataValue.null() if value is None else dg.MetadataValue.int(value)
