"""The ``audience_size_report`` job and its daily schedule."""

from __future__ import annotations

import dagster as dg

from audit_assets.catalog import GROUP
from audit_assets.config import ScheduleConfig

JOB_NAME = "audience_size_report"


def build_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.groups(GROUP),
        description="Snapshot every enabled destination for one day, then recreate the combined views.",
    )


def build_schedule(job: dg.UnresolvedAssetJobDefinition, schedule: ScheduleConfig) -> dg.ScheduleDefinition:
    """Each tick requests that day's partition (UTC), the only day a platform can still tell."""
    return dg.build_schedule_from_partitioned_job(
        job,
        name=f"{JOB_NAME}_daily",
        hour_of_day=schedule.hour,
        minute_of_hour=schedule.minute,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if schedule.running
        else dg.DefaultScheduleStatus.STOPPED,
    )
