"""Real Dagster runs of the snapshot assets into real DuckDB files, against the sandbox platforms."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import time

import dagster as dg

from audit_assets.checks import READABLE_ACCOUNTS_CHECK, SHARP_DROP_CHECK, UNKNOWN_FIELDS_CHECK
from audit_assets.platforms import meta
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount
from audit_assets_tests.conftest import Workspace, failure_messages, sandbox_meta, today_key

TABLE = "hightouch_audit.meta_sandbox_meta_audiences"
NODE = "hightouch_audit__meta_sandbox_meta_audiences"


def test_todays_partition_writes_one_complete_snapshot(workspace: Workspace) -> None:
    """13 audiences in the 2 active sandbox accounts; the closed account is skipped."""
    before = dt.datetime.now(dt.UTC)
    result = workspace.run(workspace.config([sandbox_meta(sync_ids={"23850001000000001": "90210"})]))
    after = dt.datetime.now(dt.UTC)
    assert result.success, failure_messages(result)

    rows = workspace.query(
        f"SELECT ht_snapshot_id, ht_snapshot_date, ht_fetched_at, ht_run_id, ht_destination, "
        f"ht_destination_id, ht_ad_account_id, count(*) FROM {TABLE} GROUP BY ALL ORDER BY ht_ad_account_id"
    )
    assert [(r[6], r[7]) for r in rows] == [("1000000001", 8), ("1000000002", 5)]
    assert len({r[0] for r in rows}) == 1, "one snapshot id for the whole snapshot"
    assert len({r[2] for r in rows}) == 1, "one fetched_at for the whole snapshot"
    assert {(r[1].isoformat(), r[3], r[4], r[5]) for r in rows} == {
        (today_key(), result.run_id, "meta", "sandbox_meta")
    }
    assert before <= rows[0][2] <= after

    synced = workspace.query(f"SELECT id, ht_sync_id FROM {TABLE} WHERE ht_sync_id IS NOT NULL")
    assert synced == [("23850001000000001", "90210")]

    # ht_raw is the audience exactly as the API returned it, and typed columns agree with it.
    for audience_id, name, lower, raw in workspace.query(
        f"SELECT id, name, approximate_count_lower_bound, ht_raw FROM {TABLE}"
    ):
        parsed = json.loads(raw)
        assert (parsed["id"], parsed["name"], parsed["approximate_count_lower_bound"]) == (
            audience_id,
            name,
            lower,
        )

    materialization = result.asset_materializations_for_node(NODE)[0]
    assert materialization.metadata["audiences"].value == 13
    checks = destination_checks(result)
    assert [(c.check_name, c.passed) for c in checks] == [
        (UNKNOWN_FIELDS_CHECK, True),
        (SHARP_DROP_CHECK, True),
        (READABLE_ACCOUNTS_CHECK, True),
    ]


def destination_checks(result: dg.ExecuteInProcessResult) -> list[dg.AssetCheckEvaluation]:
    """The checks of the destination assets (the run also judges the change report)."""
    return [c for c in result.get_asset_check_evaluations() if c.asset_key.path[-1].endswith("_audiences")]


def test_table_columns_are_typed_per_api_field(workspace: Workspace) -> None:
    assert workspace.run(workspace.config([sandbox_meta()])).success
    described = dict(
        workspace.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'hightouch_audit' AND table_name = 'meta_sandbox_meta_audiences'"
        )
    )
    assert described["ht_snapshot_date"] == "DATE"
    assert described["ht_fetched_at"] == "TIMESTAMP WITH TIME ZONE"
    assert described["ht_raw"] == "JSON"
    assert described["approximate_count_lower_bound"] == "BIGINT"
    assert described["delivery_status"] == "JSON"
    assert described["is_value_based"] == "BOOLEAN"
    assert set(described) == {c.name for c in meta.PLATFORM.columns}
    status = workspace.query(f"SELECT delivery_status->>'code' FROM {TABLE} LIMIT 1")[0][0]
    assert status in ("200", "300")


def test_rematerializing_appends_and_leaves_the_first_snapshot_unchanged(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta()])
    assert workspace.run(config).success
    first = workspace.query(f"SELECT * EXCLUDE (ht_raw), ht_raw::VARCHAR FROM {TABLE} ORDER BY id")
    assert workspace.run(config).success
    snapshots = workspace.query(f"SELECT ht_snapshot_id, count(*) FROM {TABLE} GROUP BY 1")
    assert len(snapshots) == 2 and all(n == 13 for _, n in snapshots)
    first_id = first[0][0]
    again = workspace.query(
        f"SELECT * EXCLUDE (ht_raw), ht_raw::VARCHAR FROM {TABLE} WHERE ht_snapshot_id = ? ORDER BY id",
        [first_id],
    )
    assert again == first


def test_yesterday_is_allowed_and_older_partitions_are_refused(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta()])
    today = dt.datetime.now(dt.UTC).date()
    assert workspace.run(config, partition=(today - dt.timedelta(days=1)).isoformat()).success

    old = (today - dt.timedelta(days=5)).isoformat()
    result = workspace.run(config, partition=old)
    assert not result.success
    assert "older than yesterday" in failure_messages(result)
    assert "allow_past_partitions" in failure_messages(result)
    assert workspace.query(f"SELECT count(*) FROM {TABLE} WHERE ht_snapshot_date = ?", [old]) == [(0,)]


def test_allowed_past_partition_keeps_the_true_fetch_time(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta()], snapshots={"allow_past_partitions": True})
    old = "2026-02-01"
    assert workspace.run(config, partition=old).success
    rows = workspace.query(f"SELECT DISTINCT ht_snapshot_date, ht_fetched_at FROM {TABLE}")
    assert len(rows) == 1
    assert rows[0][0].isoformat() == old
    assert rows[0][1].date() == dt.datetime.now(dt.UTC).date()


def test_malformed_response_fails_the_snapshot_with_zero_rows_written(
    workspace: Workspace, meta_server
) -> None:
    emulator, dest = meta_server()
    config = workspace.config([dest])
    assert workspace.run(config).success
    emulator.faults.add(FaultKind.MALFORMED, path_contains="act_1000000002")
    result = workspace.run(config)
    assert not result.success
    assert "not valid JSON" in failure_messages(result)
    assert "Nothing was written" in failure_messages(result)
    # Only the first, complete snapshot is there: none of the failed one's first-account rows.
    assert workspace.query(
        "SELECT count(DISTINCT ht_snapshot_id), count(*) FROM hightouch_audit.meta_served_meta_audiences"
    ) == [(1, 13)]


def test_invalid_token_fails_clearly_and_never_logs_the_token(
    workspace: Workspace, meta_server, monkeypatch
) -> None:
    _, dest = meta_server()
    monkeypatch.setenv("AUDIT_ASSETS_TEST_META_TOKEN", "wrong-token-value-7c1e")
    result = workspace.run(workspace.config([dest]))
    assert not result.success
    message = failure_messages(result)
    assert "re-authorise" in message and "190" in message
    assert not workspace.table_exists("meta_served_meta_audiences")
    logs = workspace.instance.all_logs(result.run_id)
    assert logs and not any("wrong-token-value-7c1e" in str(entry) for entry in logs)


def test_throttle_is_waited_out_within_one_run(workspace: Workspace, meta_server) -> None:
    _, dest = meta_server(faults=Faults().add(FaultKind.THROTTLE, times=2, path_contains="customaudiences"))
    result = workspace.run(workspace.config([dest]))
    assert result.success, failure_messages(result)
    metadata = result.asset_materializations_for_node("hightouch_audit__meta_served_meta_audiences")[
        0
    ].metadata
    assert metadata["throttle_wait_seconds"].value > 0
    assert metadata["api_requests"].value == 5  # discovery, 2 throttled, 2 accounts
    assert workspace.query("SELECT count(*) FROM hightouch_audit.meta_served_meta_audiences") == [(13,)]


def test_allow_list_narrows_accounts_and_reports_missing_ones(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta(ad_account_ids=["1000000002", "1000000003", "999"])])
    result = workspace.run(config)
    assert result.success
    assert workspace.query(f"SELECT DISTINCT ht_ad_account_id FROM {TABLE}") == [("1000000002",)]
    metadata = result.asset_materializations_for_node(NODE)[0].metadata
    assert metadata["ad_accounts_not_found"].value == ["1000000003", "999"]


def test_unknown_api_field_is_kept_in_raw_and_reported(workspace: Workspace, meta_server) -> None:
    _, dest = meta_server(
        accounts=[SandboxAccount("1000000001", "Only", audiences=3)], new_fields={"brand_new_field": {"x": 1}}
    )
    result = workspace.run(workspace.config([dest]))
    assert result.success
    checks = destination_checks(result)
    assert [(c.check_name, c.passed) for c in checks] == [
        (UNKNOWN_FIELDS_CHECK, False),
        (SHARP_DROP_CHECK, True),
        (READABLE_ACCOUNTS_CHECK, True),
    ]
    assert checks[0].metadata["unknown_api_fields"].value == ["brand_new_field"]
    raw = workspace.query(
        "SELECT ht_raw->>'$.brand_new_field.x' FROM hightouch_audit.meta_served_meta_audiences"
    )
    assert raw == [("1",)] * 3


def test_disabled_destination_keeps_its_table_and_history_in_the_view(workspace: Workspace) -> None:
    assert workspace.run(workspace.config([sandbox_meta()])).success
    disabled = workspace.config([sandbox_meta(enabled=False), sandbox_meta("second")])
    assert workspace.run(disabled).success
    counts = workspace.query(
        "SELECT ht_destination_id, count(*) FROM hightouch_audit.external_audiences_metadata_v1 GROUP BY 1 ORDER BY 1"
    )
    assert counts == [("sandbox_meta", 13), ("second", 13)]
    assert workspace.query(f"SELECT count(DISTINCT ht_snapshot_id) FROM {TABLE}") == [(1,)]


def test_allow_list_matching_no_active_account_fails_instead_of_writing_nothing(workspace: Workspace) -> None:
    result = workspace.run(workspace.config([sandbox_meta(ad_account_ids=["999"])]))
    assert not result.success
    assert "none of ad_account_ids" in failure_messages(result)


def test_throttle_beyond_the_cap_fails_the_run_with_nothing_written(
    workspace: Workspace, meta_server
) -> None:
    _, dest = meta_server(
        faults=Faults().add(FaultKind.THROTTLE, wait_minutes=90, path_contains="act_1000000002")
    )
    result = workspace.run(workspace.config([dest]))
    assert not result.success
    assert "max_throttle_wait_seconds" in failure_messages(result)
    assert not workspace.table_exists("meta_served_meta_audiences")  # the first account's rows neither


def test_a_secret_ending_in_a_newline_still_works(workspace: Workspace, meta_server, monkeypatch) -> None:
    """Secrets mounted from files often end in a newline; no HTTP header may carry one."""
    _, dest = meta_server()
    monkeypatch.setenv("AUDIT_ASSETS_TEST_META_TOKEN", "test-meta-token-4f9a\n")
    assert workspace.run(workspace.config([dest])).success


def test_a_malformed_secret_fails_without_quoting_it(workspace: Workspace, meta_server, monkeypatch) -> None:
    _, dest = meta_server()
    monkeypatch.setenv("AUDIT_ASSETS_TEST_META_TOKEN", "broken\ntoken-part-8d2c")
    result = workspace.run(workspace.config([dest]))
    assert not result.success
    assert "malformed" in failure_messages(result)
    assert not any("token-part-8d2c" in str(e) for e in workspace.instance.all_logs(result.run_id))


def test_a_wrong_answer_is_not_retried_as_a_step(workspace: Workspace, meta_server) -> None:
    """Step retries are for transient failures that outlasted the client's retries, not bad answers."""
    emulator, dest = meta_server()
    emulator.faults.add(FaultKind.MALFORMED, times=5, path_contains="customaudiences")
    config = workspace.config([dest], snapshots={"retry_base_delay_seconds": 0.01, "step_retries": 1})
    result = workspace.run(config)
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_a_value_that_cannot_be_typed_fails_as_a_bad_response_leaving_nothing(
    workspace: Workspace, meta_server, spool_root
) -> None:
    """1e19 in an int64 column: one clean failure, no step retry, no row, no spool left behind."""
    for value in (1e19, 10**19):
        _, dest = meta_server(new_fields={"approximate_count_lower_bound": value})
        config = workspace.config([dest], snapshots={"retry_base_delay_seconds": 0.01, "step_retries": 1})
        result = workspace.run(config)
        assert not result.success
        message = failure_messages(result)
        assert "field approximate_count_lower_bound" in message and "64-bit" in message
        assert "Nothing was written" in message
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert not workspace.table_exists("meta_served_meta_audiences")
        assert list(spool_root.iterdir()) == []


def test_a_spool_orphaned_by_a_killed_process_is_removed_by_a_later_snapshot(spool_root) -> None:
    import signal
    import subprocess
    import sys

    from audit_assets.spool import SPOOL_PREFIX, Spool, remove_orphaned_spools

    holder = subprocess.Popen(
        [sys.executable, "-c", "from audit_assets.spool import Spool; import sys, time; "
         "s = Spool(); print(s.path, flush=True); time.sleep(120)"],
        env={**os.environ, "TMPDIR": str(spool_root)},
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    orphan = holder.stdout.readline().strip()
    assert orphan.startswith(str(spool_root / SPOOL_PREFIX))
    assert remove_orphaned_spools(spool_root) == [], "a spool whose process runs is in use"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)

    mine = Spool()  # a later snapshot starting removes the orphan; its own spool stays
    assert [p.name for p in spool_root.iterdir()] == [mine.path.name]
    assert remove_orphaned_spools(spool_root) == []
    mine.remove()
    assert list(spool_root.iterdir()) == []


def test_a_spool_being_created_is_never_taken_for_an_orphan(spool_root) -> None:
    """Another snapshot's cleanup may run while a spool's folder exists but its lock file does not yet."""
    import time

    from audit_assets.spool import SPOOL_PREFIX, remove_orphaned_spools

    being_created = spool_root / f"{SPOOL_PREFIX}new"
    being_created.mkdir()  # mkdtemp has run, the lock is not in place yet
    assert remove_orphaned_spools(spool_root) == []
    assert being_created.exists()

    an_hour_ago = time.time() - 3601  # its process died in that instant, long ago
    os.utime(being_created, (an_hour_ago, an_hour_ago))
    assert remove_orphaned_spools(spool_root) == [being_created]


def test_credentials_that_see_no_active_account_fail_naming_each_accounts_status(
    workspace: Workspace, meta_server
) -> None:
    _, dest = meta_server(accounts=[SandboxAccount("1000000003", "Closed", active=False, audiences=3)])
    result = workspace.run(workspace.config([dest]))
    assert not result.success
    message = failure_messages(result)
    assert "see 1 ad account(s), none of them active (1000000003 CLOSED)" in message
    assert not workspace.table_exists("meta_served_meta_audiences")


def test_credentials_that_see_no_account_at_all_fail_instead_of_an_empty_snapshot(
    workspace: Workspace, meta_server
) -> None:
    _, dest = meta_server(accounts=[])
    result = workspace.run(workspace.config([dest]))
    assert not result.success
    assert "these credentials see no ad account at all" in failure_messages(result)


def test_active_accounts_without_audiences_are_an_empty_snapshot_not_a_failure(
    workspace: Workspace, meta_server
) -> None:
    _, dest = meta_server(accounts=[SandboxAccount("1000000009", "New account", audiences=0)])
    result = workspace.run(workspace.config([dest]))
    assert result.success, failure_messages(result)
    metadata = result.asset_materializations_for_node("hightouch_audit__meta_served_meta_audiences")[
        0
    ].metadata
    assert (metadata["audiences"].value, metadata["ad_accounts_with_audiences"].value) == (0, 0)
    assert metadata["audiences_by_ad_account"].value == {}


def test_an_account_the_token_may_not_read_is_left_out_and_flagged_while_the_rest_lands(
    workspace: Workspace, meta_server
) -> None:
    unreadable = SandboxAccount("1000000002", "Finance only", audiences=5, readable=False)
    _, dest = meta_server(accounts=[SandboxAccount("1000000001", "Retail", audiences=8), unreadable])
    result = workspace.run(workspace.config([dest]))
    assert result.success, failure_messages(result)
    assert workspace.query(
        "SELECT ht_ad_account_id, count(*) FROM hightouch_audit.meta_served_meta_audiences GROUP BY 1"
    ) == [("1000000001", 8)]
    metadata = result.asset_materializations_for_node("hightouch_audit__meta_served_meta_audiences")[
        0
    ].metadata
    (reason,) = metadata["ad_accounts_left_out"].value.values()
    assert list(metadata["ad_accounts_left_out"].value) == ["1000000002"] and "Graph error 200" in reason
    check = {c.check_name: c for c in result.get_asset_check_evaluations()}[READABLE_ACCOUNTS_CHECK]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "1000000002" in check.description


def test_when_no_account_can_be_read_the_snapshot_fails(workspace: Workspace, meta_server) -> None:
    _, dest = meta_server(
        accounts=[SandboxAccount("1000000002", "Finance only", audiences=5, readable=False)]
    )
    result = workspace.run(workspace.config([dest]))
    assert not result.success
    assert "the audiences of no ad account could be read: 1000000002" in failure_messages(result)
    assert not workspace.table_exists("meta_served_meta_audiences")


def assert_retried_once_and_landed_whole(workspace: Workspace, result: dg.ExecuteInProcessResult) -> None:
    """One step retry, then one whole snapshot of the served emulator's 13 audiences."""
    assert result.success, failure_messages(result)
    assert len([e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]) == 1
    assert workspace.query(
        "SELECT count(DISTINCT ht_snapshot_id), count(*) FROM hightouch_audit.meta_served_meta_audiences"
    ) == [(1, 13)]


def test_a_transient_failure_that_outlasts_the_clients_retries_is_retried_as_a_step(
    workspace: Workspace, meta_server
) -> None:
    """Six 5xx in a row exhaust the client's five retries; Dagster's step retry then takes it whole."""
    emulator, dest = meta_server()
    # One account: accounts are fetched at once, and faults on both would be shared between them.
    emulator.faults.add(FaultKind.SERVER_ERROR, times=6, path_contains="act_1000000001/customaudiences")
    config = workspace.config(
        [dest],
        snapshots={
            "retry_base_delay_seconds": 0.01,
            "max_retries": 5,
            "step_retries": 1,
            "step_retry_delay_seconds": 0.1,
        },
    )
    assert_retried_once_and_landed_whole(workspace, workspace.run(config))


def test_an_interrupted_step_of_a_run_that_goes_on_is_retried_as_dagster_decides(
    workspace: Workspace, meta_server
) -> None:
    """An interrupt that is not the run's termination (an evicted step process, say) leaves the step to
    Dagster's retry policy: the retry takes the whole snapshot. Only a terminated run's step says it was
    terminated (test_ui_graphql)."""
    emulator, dest = meta_server()
    emulator.faults.add(FaultKind.THROTTLE, path_contains="act_1000000002/", wait_minutes=10)
    config = workspace.config(
        [{**dest, "page_size": 2}],
        snapshots={"step_retries": 1, "step_retry_delay_seconds": 0.1},
    )

    def interrupt_the_throttled_step() -> None:
        while emulator.faults.planned[0].times:  # the throttle is answered: the step waits 600 s
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)  # what Dagster's interrupt of a step process is

    threading.Thread(target=interrupt_the_throttled_step, daemon=True).start()
    assert_retried_once_and_landed_whole(workspace, workspace.run(config))
