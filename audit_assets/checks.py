"""The checks a snapshot is judged by, and the freshness a destination is held to.

All checks are WARN: they flag what a person should look at (a field the code does not type yet, a
sharp fall in audiences) without blocking the history, which is recorded either way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import dagster as dg

from audit_assets.config import ChecksConfig
from audit_assets.platforms.base import Platform
from audit_assets.warehouse.base import Change, ChangeReport, SnapshotReport

UNKNOWN_FIELDS_CHECK = "no_unknown_api_fields"
SHARP_DROP_CHECK = "no_sharp_drop"
READABLE_ACCOUNTS_CHECK = "all_ad_accounts_readable"
NO_VANISHED_CHECK = "no_vanished_audiences"
NO_SHRINKAGE_CHECK = "no_audience_shrank_sharply"


def check_specs(key: dg.AssetKey, platform: Platform, checks: ChecksConfig) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            UNKNOWN_FIELDS_CHECK,
            asset=key,
            description=f"Every field {platform.title} returned has a typed column. A new field is kept in "
            "ht_raw and reported here until the platform module declares it.",
        ),
        dg.AssetCheckSpec(
            READABLE_ACCOUNTS_CHECK,
            asset=key,
            description=f"Every active {platform.title} ad account the credentials can see could be read. An "
            "account they may not read is left out of the snapshot (the others still land) and named here.",
        ),
        dg.AssetCheckSpec(
            SHARP_DROP_CHECK,
            asset=key,
            description=f"The snapshot's audience count and total audience size did not fall by more than "
            f"{checks.sharp_drop_percent:g}% from the previous snapshot (checks.sharp_drop_percent).",
        ),
    ]


def freshness_policy(checks: ChecksConfig) -> dg.FreshnessPolicy:
    """A destination with no snapshot for longer than ``checks.freshness_hours`` fails freshness."""
    return dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=checks.freshness_hours))


def unknown_fields(reports: Sequence[SnapshotReport], platform: Platform) -> dg.AssetCheckResult:
    known = {f.api_name for f in platform.fields}
    unknown = sorted(set().union(*(r.raw_fields for r in reports)) - known)
    return dg.AssetCheckResult(
        check_name=UNKNOWN_FIELDS_CHECK,
        passed=not unknown,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"unknown_api_fields": dg.MetadataValue.json(unknown)},
        description=(
            f"{platform.title} returned fields without a typed column: {', '.join(unknown)}. They are kept "
            "in ht_raw."
            if unknown
            else None
        ),
    )


def accounts_readable(left_out: Mapping[str, str], title: str) -> dg.AssetCheckResult:
    """Judged on snapshots taken in the step: only a fetch knows which accounts refused."""
    return dg.AssetCheckResult(
        check_name=READABLE_ACCOUNTS_CHECK,
        passed=not left_out,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"ad_accounts_left_out": dg.MetadataValue.json(dict(left_out))},
        description=(
            f"{len(left_out)} {title} ad account(s) left out, their audiences unreadable: "
            + "; ".join(f"{account}: {why}" for account, why in left_out.items())
            if left_out
            else None
        ),
    )


def _fall_percent(now: int | None, before: int | None) -> float | None:
    if now is None or not before:
        return None
    return max(0.0, 100.0 * (before - now) / before)


def sharp_drop(reports: Sequence[SnapshotReport], checks: ChecksConfig) -> dg.AssetCheckResult:
    """Compare each snapshot of the step with the one fetched before it."""
    falls: dict[str, float] = {}
    problems = []
    for report in reports:
        previous, now = report.previous, report.totals
        if previous is None:
            continue
        for what, current, earlier in (
            ("audiences", now.audiences, previous.audiences),
            ("audience_size_total", now.audience_size_total, previous.audience_size_total),
        ):
            fall = _fall_percent(current, earlier)
            if fall is None:
                continue
            falls[f"{what}_fall_percent"] = max(falls.get(f"{what}_fall_percent", 0.0), round(fall, 2))
            if fall > checks.sharp_drop_percent:
                problems.append(
                    f"{what} fell {fall:.1f}% ({earlier} → {current}) in snapshot {now.snapshot_id} of "
                    f"{now.snapshot_date} against {previous.snapshot_id} of {previous.snapshot_date}"
                )
    return dg.AssetCheckResult(
        check_name=SHARP_DROP_CHECK,
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={**falls, "threshold_percent": checks.sharp_drop_percent},
        description="; ".join(problems) if problems else None,
    )


def change_check_specs(key: dg.AssetKey, checks: ChecksConfig) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            NO_VANISHED_CHECK,
            asset=key,
            description="No audience that was in a destination's previous snapshot date is missing from the "
            "day's last snapshot (deleted on the platform, or its ad account left out).",
        ),
        dg.AssetCheckSpec(
            NO_SHRINKAGE_CHECK,
            asset=key,
            description=f"No audience shrank by {checks.audience_shrink_percent:g}% or more since the "
            "destination's previous snapshot date (checks.audience_shrink_percent).",
        ),
    ]


def _named(changes: Sequence[Change], count: int) -> str:
    """The first ten changes, each as destination / account / audience (name) and its move."""
    shown = "; ".join(
        f"{c.destination} {c.destination_id} / {c.ad_account_id} / {c.audience_id} ({c.audience_name})"
        + (
            f" {c.previous_size} → {c.audience_size} ({c.size_change_pct:+.1f}%)"
            if c.size_change_pct is not None
            else ""
        )
        for c in changes[:10]
    )
    return shown + (f"; and {count - 10} more" if count > 10 else "")


def _listed(changes: Sequence[Change]) -> dg.MetadataValue:
    return dg.MetadataValue.json(
        [
            {"ht_destination_id": c.destination_id, "ad_account_id": c.ad_account_id, "audience_id": c.audience_id,
             "audience_name": c.audience_name, "previous_size": c.previous_size, "audience_size": c.audience_size}
            for c in changes
        ]
    )  # fmt: skip


def no_vanished(reports: Sequence[ChangeReport]) -> dg.AssetCheckResult:
    count = sum(r.vanished_count for r in reports)
    problems = [
        f"{r.snapshot_date}: {_named(r.vanished, r.vanished_count)}" for r in reports if r.vanished_count
    ]
    return dg.AssetCheckResult(
        check_name=NO_VANISHED_CHECK,
        passed=not count,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"audiences_vanished": count, "vanished": _listed([c for r in reports for c in r.vanished])},
        description=f"{count} audience(s) vanished. " + " | ".join(problems) if count else None,
    )


def no_sharp_shrinkage(reports: Sequence[ChangeReport], checks: ChecksConfig) -> dg.AssetCheckResult:
    count = sum(r.shrunk_count for r in reports)
    problems = [f"{r.snapshot_date}: {_named(r.shrunk, r.shrunk_count)}" for r in reports if r.shrunk_count]
    return dg.AssetCheckResult(
        check_name=NO_SHRINKAGE_CHECK,
        passed=not count,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "audiences_shrunk_sharply": count,
            "threshold_percent": checks.audience_shrink_percent,
            "shrunk": _listed([c for r in reports for c in r.shrunk]),
        },
        description=(
            f"{count} audience(s) shrank by {checks.audience_shrink_percent:g}% or more. "
            + " | ".join(problems)
            if count
            else None
        ),
    )
