"""Backfills tell the truth: a range records the days a snapshot taken now can stand for, and no more.

Runs are real Dagster runs over a range of days, tagged exactly as a single-run backfill (or
``dagster asset materialize --partition-range``) tags them.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from audit_assets_tests.conftest import TODAY, Workspace, failure_messages, sandbox_meta

KEY = dg.AssetKey(["hightouch_audit", "meta_sandbox_meta_audiences"])
TABLE = "hightouch_audit.meta_sandbox_meta_audiences"
VIEW = "hightouch_audit.external_audiences_metadata_v1"


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def test_a_ten_day_range_records_today_and_yesterday_and_leaves_the_rest_missing(
    workspace: Workspace,
) -> None:
    config = workspace.config([sandbox_meta()])
    result = workspace.run_range(config, day(-9), day(0))
    assert result.success, failure_messages(result)

    materialized, failed = workspace.partition_statuses(KEY, config)
    assert materialized == {day(-1), day(0)}
    assert failed == set()
    # One whole snapshot per recorded day, each fetched now: 13 audiences in the sandbox's 2 active accounts.
    rows = workspace.query(
        f"SELECT ht_snapshot_date, count(DISTINCT ht_snapshot_id), count(*) FROM {TABLE} GROUP BY 1 ORDER BY 1"
    )
    assert [(d.isoformat(), ids, n) for d, ids, n in rows] == [(day(-1), 1, 13), (day(0), 1, 13)]
    # Each recorded day has its own materialization and metadata.
    events = result.asset_materializations_for_node("hightouch_audit__meta_sandbox_meta_audiences")
    assert sorted(e.partition for e in events) == [day(-1), day(0)]
    assert all(e.metadata["audiences"].value == 13 for e in events)
    # The reason is said once, in the step's log, naming the days and the setting.
    warnings = [
        e.message
        for e in workspace.instance.all_logs(result.run_id)
        if e.level == 30 and "stay missing" in e.message
    ]
    assert len(warnings) == 1
    assert f"8 partitions ({day(-9)} … {day(-2)})" in warnings[0]
    assert "allow_past_partitions" in warnings[0] and "test config" in warnings[0]


def test_a_range_of_only_old_days_writes_nothing_and_fails_nothing(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta()])
    result = workspace.run_range(config, day(-9), day(-5))
    assert result.success, failure_messages(result)
    assert workspace.partition_statuses(KEY, config) == (set(), set())
    assert not workspace.table_exists("meta_sandbox_meta_audiences") or workspace.query(
        f"SELECT count(*) FROM {TABLE}"
    ) == [(0,)]


def test_one_explicitly_chosen_old_day_fails_loudly_naming_the_config(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta()])
    result = workspace.run(config, partition=day(-5))
    assert not result.success
    message = failure_messages(result)
    assert f"partition {day(-5)} is older than yesterday" in message
    assert "allow_past_partitions: true in test config" in message
    assert workspace.partition_statuses(KEY, config)[1] == {day(-5)}


def test_a_range_allowed_into_the_past_records_every_day_with_the_true_fetch_time(
    workspace: Workspace,
) -> None:
    config = workspace.config([sandbox_meta()], snapshots={"allow_past_partitions": True, "step_retries": 0})
    before = dt.datetime.now(dt.UTC)
    assert workspace.run_range(config, day(-3), day(0)).success
    assert workspace.partition_statuses(KEY, config) == ({day(-3), day(-2), day(-1), day(0)}, set())
    fetched = workspace.query(f"SELECT min(ht_fetched_at) FROM {TABLE}")[0][0]
    assert fetched >= before, "each old day is recorded with when it was really fetched"


def test_the_view_holds_every_destination_written_even_when_another_fails_in_the_run(
    workspace: Workspace, meta_server, monkeypatch
) -> None:
    """A failing destination skips the view step; the snapshot that did land refreshed the view itself."""
    assert workspace.run(workspace.config([sandbox_meta("first")])).success
    _, failing = meta_server("broken")
    monkeypatch.setenv("AUDIT_ASSETS_TEST_META_TOKEN", "revoked-token-2b7d")
    config = workspace.config([sandbox_meta("first"), sandbox_meta("added"), failing])
    result = workspace.run(config)
    assert not result.success
    assert "re-authorise" in failure_messages(result)
    assert not result.asset_materializations_for_node("hightouch_audit__external_audiences_metadata_v1")

    counts = workspace.query(f"SELECT ht_destination_id, count(*) FROM {VIEW} GROUP BY 1 ORDER BY 1")
    assert counts == [("added", 13), ("first", 26)]


def test_a_range_run_keeps_the_view_current_although_its_view_step_is_skipped(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta()])
    result = workspace.run_range(config, day(-4), day(0))
    assert result.success
    assert workspace.query(f"SELECT count(*) FROM {VIEW}") == [(26,)]
