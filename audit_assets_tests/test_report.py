"""What a materialization tells in the UI: figures read back from the warehouse, checked against what
the sandbox served (its own generated audiences), never against the SQL under test."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace

import dagster as dg

from audit_assets.checks import SHARP_DROP_CHECK, UNKNOWN_FIELDS_CHECK
from audit_assets.config import load_config
from audit_assets.definitions import build_definitions
from audit_assets.sandbox.meta import MetaGraphSandbox
from audit_assets.sandbox.world import DEFAULT_ACCOUNTS
from audit_assets.schedules import JOB_NAME
from audit_assets_tests.conftest import CLOSED, RETAIL, TRAVEL, Workspace, failure_messages, sandbox_meta

NODE = "hightouch_audit__meta_sandbox_meta_audiences"
SERVED_NODE = "hightouch_audit__meta_served_meta_audiences"
VIEW_NODE = "hightouch_audit__external_audiences_metadata_v1"
VIEW_KEY = dg.AssetKey(["hightouch_audit", "external_audiences_metadata_v1"])


def served_audiences(accounts, day: dt.date) -> list[tuple[str, str, str, int | None]]:
    """(account, id, name, v1 size) of every audience the Meta sandbox serves for its active accounts."""
    rows = []
    for account in accounts:
        if not account.active:
            continue
        for index in range(account.audiences):
            audience = MetaGraphSandbox._audience(account, index, day)
            size = audience["approximate_count_lower_bound"]
            rows.append((account.id, audience["id"], audience["name"], None if size == -1 else size))
    return rows


def fall_percent(before: list, after: list) -> float:
    """The larger fall, in percent, of audience count and total size between two served states."""

    def total(rows: list) -> int:
        return sum(r[3] for r in rows if r[3] is not None)

    return max(
        100 * (len(before) - len(after)) / len(before), 100 * (total(before) - total(after)) / total(before)
    )


def metadata_of(result: dg.ExecuteInProcessResult, node: str = NODE) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[-1].metadata.items()}


def test_each_materialization_shows_the_days_audiences_and_sizes(workspace: Workspace) -> None:
    result = workspace.run(workspace.config([sandbox_meta()]))
    assert result.success, failure_messages(result)
    served = served_audiences(DEFAULT_ACCOUNTS, dt.datetime.now(dt.UTC).date())
    sizes = [s for *_, s in served if s is not None]
    metadata = metadata_of(result)

    assert metadata["audiences"] == len(served) == 13
    assert metadata["audiences_with_size"] == len(sizes) < len(served)
    assert metadata["audience_size_total"] == sum(sizes)
    assert metadata["ad_accounts_with_audiences"] == 2
    assert metadata["audiences_by_ad_account"] == {"1000000001": 8, "1000000002": 5}
    # The first snapshot has nothing to compare with: no comparison figures, rather than nulls in the UI.
    assert not {"audiences_new", "audiences_vanished", "previous_snapshot_id"} & metadata.keys()
    largest = sorted(served, key=lambda r: (r[3] is None, -(r[3] or 0), r[1]))
    assert [tuple(r.data.values()) for r in metadata["largest_audiences"].records] == largest
    fetched = workspace.query(
        "SELECT DISTINCT ht_fetched_at FROM hightouch_audit.meta_sandbox_meta_audiences"
    )
    assert metadata["ht_fetched_at"] == fetched[0][0].timestamp()
    assert "dagster/row_count" not in metadata, "the table's growing row count is not the day's audiences"


def test_new_vanished_and_a_sharp_drop_are_reported_against_the_previous_snapshot(
    workspace: Workspace, meta_server
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    first, second = [RETAIL, TRAVEL, CLOSED], [replace(RETAIL, audiences=10), replace(TRAVEL, audiences=4)]
    third = [replace(RETAIL, audiences=2)]
    emulator, dest = meta_server(accounts=first)
    config = workspace.config([dest])
    first_result = workspace.run(config)
    assert first_result.success

    emulator.accounts = {a.id: a for a in second}
    result = workspace.run(config)
    metadata = metadata_of(result, SERVED_NODE)
    assert (metadata["audiences"], metadata["audiences_new"], metadata["audiences_vanished"]) == (14, 2, 1)
    assert metadata["previous_snapshot_id"] == metadata_of(first_result, SERVED_NODE)["snapshot_id"]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    expected_fall = fall_percent(served_audiences(first, today), served_audiences(second, today))
    assert checks[SHARP_DROP_CHECK].passed == (expected_fall <= 50)
    assert checks[UNKNOWN_FIELDS_CHECK].passed

    emulator.accounts = {a.id: a for a in third}
    result = workspace.run(config)
    metadata = metadata_of(result, SERVED_NODE)
    assert (metadata["audiences"], metadata["audiences_new"], metadata["audiences_vanished"]) == (2, 0, 12)
    drop = {c.check_name: c for c in result.get_asset_check_evaluations()}[SHARP_DROP_CHECK]
    assert fall_percent(served_audiences(second, today), served_audiences(third, today)) > 50
    assert not drop.passed and drop.severity == dg.AssetCheckSeverity.WARN
    assert drop.metadata["audiences_fall_percent"].value == round(100 * 12 / 14, 2)
    assert "audiences fell 85.7% (14 → 2)" in drop.description
    assert result.success, "a WARN check flags the snapshot; the history is still recorded"


def test_a_threshold_from_the_config_decides_what_is_sharp(workspace: Workspace, meta_server) -> None:
    today = dt.datetime.now(dt.UTC).date()
    before, after = [RETAIL, TRAVEL], [replace(RETAIL, audiences=6), TRAVEL]
    fall = fall_percent(served_audiences(before, today), served_audiences(after, today))
    emulator, dest = meta_server(accounts=before)
    for threshold, flagged in ((fall + 1, False), (fall - 1, True)):
        config = workspace.config([dest], checks={"sharp_drop_percent": threshold})
        emulator.accounts = {a.id: a for a in before}
        assert workspace.run(config).success
        emulator.accounts = {a.id: a for a in after}
        result = workspace.run(config)
        assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()}[
            SHARP_DROP_CHECK
        ] != flagged


def served_job() -> dg.JobDefinition:
    """The job as Dagster reconstructs it in another process: from $AUDIT_ASSETS_CONFIG."""
    return build_definitions(load_config()).resolve_job_def(JOB_NAME)


def test_a_reexecution_reports_the_committed_snapshot_without_calling_the_platform(
    workspace: Workspace, meta_server, monkeypatch
) -> None:
    emulator, dest = meta_server()
    monkeypatch.setenv("AUDIT_ASSETS_CONFIG", str(workspace.write_config([dest])))
    recon = dg.build_reconstructable_job(
        "audit_assets_tests.test_report", "served_job", reconstructor_working_directory=os.getcwd()
    )
    tags = {"dagster/partition": dt.datetime.now(dt.UTC).date().isoformat()}
    first = dg.execute_job(recon, workspace.instance, tags=tags)
    assert first.success
    calls = len(emulator.requests)
    assert calls > 0

    again = dg.execute_job(
        recon,
        workspace.instance,
        tags=tags,
        reexecution_options=dg.ReexecutionOptions(parent_run_id=first.run_id, step_selection=[SERVED_NODE]),
    )
    assert again.success
    assert len(emulator.requests) == calls, "a re-execution does not call the platform"
    before, after = (
        {k: v.value for k, v in r.asset_materializations_for_node(SERVED_NODE)[0].metadata.items()}
        for r in (first, again)
    )
    assert after["snapshot_id"] == before["snapshot_id"]
    assert after["ht_fetched_at"] == before["ht_fetched_at"]
    assert after["audiences"] == before["audiences"] == 13
    assert after["snapshot"].startswith("already committed") and "api_requests" not in after
    table = workspace.query(
        "SELECT count(DISTINCT ht_snapshot_id), count(*) FROM hightouch_audit.meta_served_meta_audiences"
    )
    assert table == [(1, 13)]
    logs = [e.message for e in workspace.instance.all_logs(again.run_id)]
    assert any(f"a re-execution of run {first.run_id}" in m for m in logs)


def test_an_unset_secret_fails_in_one_line_naming_it_before_any_call(
    workspace: Workspace, meta_server, monkeypatch
) -> None:
    emulator, dest = meta_server()
    dest["credentials"] = {"access_token": {"env": "AUDIT_ASSETS_TEST_UNSET_TOKEN"}}
    monkeypatch.delenv("AUDIT_ASSETS_TEST_UNSET_TOKEN", raising=False)
    result = workspace.run(workspace.config([dest]))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    first_line = failure.message.strip().splitlines()
    assert len(first_line) == 1
    assert (
        "destination meta/served_meta: environment variable AUDIT_ASSETS_TEST_UNSET_TOKEN (access_token)"
        in first_line[0]
    )
    assert failure.cause is None
    assert emulator.requests == []


def test_the_view_reports_rows_latest_totals_lineage_and_owners(workspace: Workspace) -> None:
    config = workspace.config(
        [sandbox_meta(owners=["team:growth"]), sandbox_meta("b", owners=["ads@example.com"])]
    )
    defs = build_definitions(config)
    spec = defs.resolve_assets_def(VIEW_KEY).specs_by_key[VIEW_KEY]
    assert spec.owners == ["ads@example.com", "team:growth"]
    lineage = spec.metadata["dagster/column_lineage"]
    meta_key = dg.AssetKey(["hightouch_audit", "meta_sandbox_meta_audiences"])
    assert (
        dg.TableColumnDep(meta_key, "approximate_count_lower_bound")
        in lineage.deps_by_column["audience_size"]
    )
    assert dg.TableColumnDep(meta_key, "ht_ad_account_id") in lineage.deps_by_column["ad_account_id"]
    assert len(lineage.deps_by_column["audience_name"]) == 2

    result = workspace.run(config)
    assert result.success
    metadata = metadata_of(result, VIEW_NODE)
    served = served_audiences(DEFAULT_ACCOUNTS, dt.datetime.now(dt.UTC).date())
    assert metadata["dagster/row_count"] == 2 * len(served)
    latest = [r.data for r in metadata["latest_by_destination"].records]
    assert [(r["ht_destination_id"], r["audiences"], r["audience_size_total"]) for r in latest] == [
        ("b", 13, sum(s for *_, s in served if s is not None)),
        ("sandbox_meta", 13, sum(s for *_, s in served if s is not None)),
    ]
    assert metadata["dagster/column_lineage"] == lineage


def test_enabled_destinations_are_held_to_a_freshness_window(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta()], checks={"freshness_hours": 30})
    defs = build_definitions(config)
    key = dg.AssetKey(["hightouch_audit", "meta_sandbox_meta_audiences"])
    policy = defs.resolve_assets_def(key).specs_by_key[key].freshness_policy
    assert policy.fail_window.to_timedelta() == dt.timedelta(hours=30)


def test_a_check_run_on_its_own_judges_the_days_last_snapshot_without_calling_the_platform(
    workspace: Workspace, meta_server
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    before, after = [RETAIL, TRAVEL], [replace(RETAIL, audiences=1)]
    fall = fall_percent(served_audiences(before, today), served_audiences(after, today))
    emulator, dest = meta_server(accounts=before)
    config = workspace.config([dest])
    assert workspace.run(config).success
    emulator.accounts = {a.id: a for a in after}
    result = workspace.run(config)
    assert not {c.check_name: c.passed for c in result.get_asset_check_evaluations()}[SHARP_DROP_CHECK]
    calls = len(emulator.requests)

    key = dg.AssetKey(["hightouch_audit", "meta_served_meta_audiences"])
    job = build_definitions(
        workspace.config([dest], checks={"sharp_drop_percent": min(100, fall + 1)})
    ).resolve_job_def(JOB_NAME)
    check_only = job.get_subset(
        asset_selection=set(), asset_check_selection={dg.AssetCheckKey(key, SHARP_DROP_CHECK)}
    )
    result = check_only.execute_in_process(
        partition_key=dt.datetime.now(dt.UTC).date().isoformat(), instance=workspace.instance
    )
    assert result.success
    assert not result.get_asset_materialization_events()
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == SHARP_DROP_CHECK and evaluation.passed  # judged by the new threshold
    assert evaluation.metadata["audiences_fall_percent"].value == round(100 * 12 / 13, 2)
    assert len(emulator.requests) == calls


def test_a_snapshot_without_audiences_is_compared_with_and_judged_like_any_other(
    workspace: Workspace, meta_server
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    emptied = [replace(RETAIL, audiences=0)]
    emulator, dest = meta_server(accounts=[RETAIL])
    config = workspace.config([dest])
    assert workspace.run(config).success
    emulator.accounts = {a.id: a for a in emptied}
    empty = workspace.run(config)
    assert empty.success, failure_messages(empty)
    empty_id = metadata_of(empty, SERVED_NODE)["snapshot_id"]

    # Judged on its own, the day's last snapshot is the empty one (it has no rows, only its log row).
    key = dg.AssetKey(["hightouch_audit", "meta_served_meta_audiences"])
    check_only = (
        build_definitions(config)
        .resolve_job_def(JOB_NAME)
        .get_subset(asset_selection=set(), asset_check_selection={dg.AssetCheckKey(key, SHARP_DROP_CHECK)})
    )
    result = check_only.execute_in_process(partition_key=today.isoformat(), instance=workspace.instance)
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["audiences_fall_percent"].value == 100.0

    # The next snapshot is compared with the empty one, not with the last snapshot that had audiences.
    emulator.accounts = {RETAIL.id: RETAIL}
    metadata = metadata_of(workspace.run(config), SERVED_NODE)
    assert metadata["previous_snapshot_id"] == empty_id
    served = served_audiences([RETAIL], today)
    assert (metadata["audiences_new"], metadata["audiences_vanished"]) == (len(served), 0)
