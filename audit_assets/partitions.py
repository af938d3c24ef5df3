"""Daily partitions and which of a run's days can be recorded truthfully.

A platform only tells its audiences as they are now, so a snapshot taken now can stand for today or
yesterday (UTC) — a schedule that ran late, a failed day taken again after midnight — but never for an
older day. A run asked for one older day refuses loudly; a backfill range records the days it can and
leaves the others missing, saying why once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

_SNAPSHOT_NAMESPACE = uuid.UUID("6f1c2a8e-3d4b-4f55-9a7e-2b0c9d1e5a11")


def daily_partitions(start_date: dt.date) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today's partition exists, so the schedule snapshots today, the day it runs.
    return dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC", end_offset=1)


def snapshot_id_for(root_run_id: str, table: str, partition_key: str) -> str:
    """Deterministic per (root run, table, partition).

    A retried step, and a re-execution of the run (which shares its root run id), find the same id, so a
    snapshot is written at most once and a re-execution reports the one already committed. A new run
    takes a new snapshot.
    """
    return str(uuid.uuid5(_SNAPSHOT_NAMESPACE, f"{root_run_id}/{table}/{partition_key}"))


class PartitionRefused(ValueError):
    """No partition of the run can be snapshotted truthfully now."""


@dataclass(frozen=True)
class PartitionPlan:
    """The days of one run: those a snapshot taken now records, and those it cannot."""

    recordable: tuple[str, ...]
    too_old: tuple[str, ...]
    in_future: tuple[str, ...]

    @property
    def records_every_day(self) -> bool:
        return not self.too_old and not self.in_future


def plan_partitions(
    keys: Sequence[str], today: dt.date, *, allow_past: bool, config_source: str
) -> PartitionPlan:
    """Split a run's partition keys; raise PartitionRefused when the run asked for one day it cannot record."""
    yesterday = today - dt.timedelta(days=1)
    days = [(key, dt.date.fromisoformat(key)) for key in keys]
    plan = PartitionPlan(
        recordable=tuple(k for k, d in days if d <= today and (d >= yesterday or allow_past)),
        too_old=tuple(k for k, d in days if d < yesterday and not allow_past),
        in_future=tuple(k for k, d in days if d > today),
    )
    if len(keys) == 1 and not plan.recordable:
        raise PartitionRefused(why_not_recorded(plan, today, config_source))
    return plan


def why_not_recorded(plan: PartitionPlan, today: dt.date, config_source: str) -> str:
    """One explanation for every day of the plan that gets no snapshot."""
    parts = []
    if plan.too_old:
        parts.append(
            f"{_days(plan.too_old)} {'is' if len(plan.too_old) == 1 else 'are'} older than yesterday "
            f"({today - dt.timedelta(days=1)} UTC). Ad platforms only report audiences as they are now, so a "
            "snapshot taken today cannot tell what they were then; materialize today's or yesterday's "
            "partition instead, or set snapshots.allow_past_partitions: true in "
            f"{config_source} to record today's sizes under such a date (ht_fetched_at still says when they "
            "were really fetched)."
        )
    if plan.in_future:
        parts.append(f"{_days(plan.in_future)} is in the future (today is {today} UTC).")
    return " ".join(parts)


def _days(keys: Sequence[str]) -> str:
    if len(keys) == 1:
        return f"partition {keys[0]}"
    return f"{len(keys)} partitions ({keys[0]} … {keys[-1]})"
