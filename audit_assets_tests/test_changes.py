"""The v2 view and the change report, against the sandbox's own sizes for two days.

Yesterday's partition is taken from an emulator whose clock says yesterday, today's from one whose clock
says today, so the two snapshots hold two different days of the sandbox's sizes. Every expected value
is computed here from the sandbox's generator (``MetaGraphSandbox._audience``), never read back from the
SQL under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import dagster as dg
import duckdb
import pytest

from audit_assets.checks import NO_SHRINKAGE_CHECK, NO_VANISHED_CHECK
from audit_assets.report import FIRST_SNAPSHOT
from audit_assets.sandbox.meta import MetaGraphSandbox, audience_id_of
from audit_assets.sandbox.world import SandboxAccount
from audit_assets_tests.conftest import Workspace, failure_messages
from audit_assets_tests.test_report import SERVED_NODE

V1 = "hightouch_audit.external_audiences_metadata_v1"
V2 = "hightouch_audit.external_audiences_metadata_v2"
CHANGES = "hightouch_audit.audience_size_changes_v1"
REPORT = dg.AssetKey(["hightouch_audit", "audience_size_changes"])
REPORT_NODE = "hightouch_audit__audience_size_changes"
TODAY = dt.datetime.now(dt.UTC).date()
YESTERDAY = TODAY - dt.timedelta(days=1)

# Yesterday Retail had 8 audiences and Travel 5; today Retail has 6 (two vanished), Travel 7 (two new).
DAY_ACCOUNTS = {
    YESTERDAY: [SandboxAccount("1000000001", "Retail", audiences=8), SandboxAccount("1000000002", "Travel", audiences=5)],
    TODAY: [SandboxAccount("1000000001", "Retail", audiences=6), SandboxAccount("1000000002", "Travel", audiences=7)],
}  # fmt: skip


def sandbox_sizes(day: dt.date) -> dict[tuple[str, str], tuple[str, int | None]]:
    """(account, audience id) -> (name, v1 size) as the sandbox serves them on ``day`` (-1 means unknown)."""
    sizes = {}
    for account in DAY_ACCOUNTS[day]:
        for index in range(account.audiences):
            audience = MetaGraphSandbox._audience(account, index, day)
            lower = audience["approximate_count_lower_bound"]
            sizes[(account.id, audience_id_of(account.id, index))] = (
                audience["name"],
                None if lower == -1 else lower,
            )
    return sizes


def expected_changes() -> dict[tuple[str, str], tuple[Any, ...]]:
    """(account, audience) -> (name, size, previous size, previous date, change, pct, kind) for today."""
    now, before = sandbox_sizes(TODAY), sandbox_sizes(YESTERDAY)
    expected = {}
    for key in now.keys() | before.keys():
        name, size = now.get(key, before.get(key))
        if key not in now:
            size = None
        previous = before[key][1] if key in before else None
        change = None if size is None or previous is None else size - previous
        pct = None if change is None or previous == 0 else 100 * change / previous
        if key not in before:
            kind = "new"
        elif key not in now:
            kind = "vanished"
        elif change is None:
            kind = "unknown"
        else:
            kind = "grew" if change > 0 else "shrank" if change < 0 else "unchanged"
        expected[key] = (name, size, previous, YESTERDAY if key in before else None, change, pct, kind)
    return expected


@pytest.fixture
def two_days(
    workspace: Workspace, meta_server: Callable[..., Any]
) -> Callable[..., dg.ExecuteInProcessResult]:
    """Take yesterday's partition, then today's, each from an emulator living on that day."""

    def run(**top: Any) -> dg.ExecuteInProcessResult:
        result = None
        for day in (YESTERDAY, TODAY):
            _, dest = meta_server("shop", accounts=DAY_ACCOUNTS[day], today=lambda day=day: day)
            result = workspace.run(workspace.config([dest], **top), partition=day.isoformat())
            assert result.success, failure_messages(result)
        assert result is not None
        return result

    return run


def test_v2_has_exactly_the_design_columns_and_the_rows_of_v1(
    workspace: Workspace, two_days: Callable
) -> None:
    two_days()
    assert [(r[0], r[1]) for r in workspace.query(f"DESCRIBE {V2}")] == [
        ("ad_account_id", "VARCHAR"),
        ("audience_id", "VARCHAR"),
        ("audience_name", "VARCHAR"),
        ("audience_size", "BIGINT"),
        ("audience_size_lower_bound", "BIGINT"),
        ("audience_size_upper_bound", "BIGINT"),
        ("audience_type", "VARCHAR"),
        ("audience_status", "VARCHAR"),
        ("ht_snapshot_id", "VARCHAR"),
        ("ht_snapshot_date", "DATE"),
        ("ht_fetched_at", "TIMESTAMP WITH TIME ZONE"),
        ("ht_destination", "VARCHAR"),
        ("ht_destination_id", "VARCHAR"),
        ("ht_sync_id", "VARCHAR"),
    ]
    v1_columns = "ad_account_id, audience_id, audience_name, audience_size, ht_fetched_at, ht_destination, ht_destination_id, ht_sync_id"
    v1 = sorted(workspace.query(f"SELECT {v1_columns} FROM {V1}"))
    assert len(v1) == 13 + 13
    assert sorted(workspace.query(f"SELECT {v1_columns} FROM {V2}")) == v1


def test_v2_meta_bounds_type_and_status_are_the_platforms_own(
    workspace: Workspace, two_days: Callable
) -> None:
    two_days()
    rows = workspace.query(
        f"SELECT ad_account_id, audience_id, audience_size_lower_bound, audience_size_upper_bound, audience_type, "
        f"audience_status, ht_snapshot_date FROM {V2}"
    )
    for account, audience_id, lower, upper, kind, status, day in rows:
        index = next(i for i in range(8) if audience_id_of(account, i) == audience_id)
        served = MetaGraphSandbox._audience(SandboxAccount(account, "x"), index, day)
        as_served = served["approximate_count_lower_bound"], served["approximate_count_upper_bound"]
        assert (lower, upper) == tuple(None if b == -1 else b for b in as_served)
        assert (kind, status) == (served["subtype"], served["delivery_status"]["description"])
    assert any(r[2] is None for r in rows) and any(r[2] is not None for r in rows)


def test_change_view_agrees_with_the_sandbox_sizes_of_both_days(
    workspace: Workspace, two_days: Callable
) -> None:
    two_days()
    rows = workspace.query(f"SELECT * FROM {CHANGES} WHERE snapshot_date = ?", [TODAY])
    got = {(r[3], r[4]): r for r in rows}
    expected = expected_changes()
    assert got.keys() == expected.keys()
    for key, (name, size, previous, previous_date, change, pct, kind) in expected.items():
        row = got[key]
        assert row[:3] == (TODAY, "meta", "shop")
        assert row[5:11] == (name, size, previous, previous_date, change, pytest.approx(pct) if pct else pct)
        assert row[11] == kind, key
    kinds = {e[6] for e in expected.values()}
    assert {"new", "vanished", "unknown"} <= kinds and kinds & {"grew", "shrank"}, (
        "the scenario covers the kinds"
    )
    first_day = workspace.query(
        f"SELECT DISTINCT change_kind, previous_size FROM {CHANGES} WHERE snapshot_date = ?", [YESTERDAY]
    )
    assert first_day == [("new", None)], "a destination's first date has nothing to compare with"
    columns = [r[0] for r in workspace.query(f"DESCRIBE {CHANGES}")]
    assert columns == [
        "snapshot_date", "ht_destination", "ht_destination_id", "ad_account_id", "audience_id", "audience_name",
        "audience_size", "previous_size", "previous_snapshot_date", "size_change", "size_change_pct", "change_kind",
    ]  # fmt: skip


def test_only_the_last_snapshot_of_a_day_is_compared(
    workspace: Workspace, two_days: Callable, meta_server: Callable[..., Any]
) -> None:
    """A second snapshot of yesterday, taken later with fewer audiences, is what today is compared with."""
    two_days()
    fewer = [SandboxAccount("1000000001", "Retail", audiences=3)]
    _, dest = meta_server("shop", accounts=fewer, today=lambda: YESTERDAY)
    assert workspace.run(workspace.config([dest]), partition=YESTERDAY.isoformat()).success
    kinds = dict(
        workspace.query(
            f"SELECT change_kind, count(*) FROM {CHANGES} WHERE snapshot_date = ? GROUP BY 1", [TODAY]
        )
    )
    # Today: Retail's 6 and Travel's 7 against yesterday's last snapshot, Retail's first 3 only.
    assert kinds.get("new") == 6 + 7 - 3
    assert "vanished" not in kinds


def test_report_metadata_counts_equal_the_view_and_the_sandbox(
    workspace: Workspace, two_days: Callable
) -> None:
    result = two_days()
    (materialization,) = result.asset_materializations_for_node(REPORT_NODE)
    assert materialization.partition == TODAY.isoformat()
    metadata = materialization.metadata
    expected = expected_changes()
    for kind in ("new", "vanished", "grew", "shrank", "unchanged", "unknown"):
        in_view = workspace.query(
            f"SELECT count(*) FROM {CHANGES} WHERE snapshot_date = ? AND change_kind = ?", [TODAY, kind]
        )
        assert (
            metadata[f"audiences_{kind}"].value
            == in_view[0][0]
            == sum(e[6] == kind for e in expected.values())
        )
    total_today = sum(size or 0 for _, size in sandbox_sizes(TODAY).values())
    assert metadata["audience_size_total"].value == total_today
    movers = metadata["biggest_movers"].value.records
    changes = sorted((abs(e[4]) for e in expected.values() if e[4]), reverse=True)
    assert [abs(r.data["size_change"]) for r in movers] == changes[:20]
    vanished = {r.data["audience_id"] for r in metadata["vanished_audiences"].value.records}
    assert vanished == {k[1] for k, e in expected.items() if e[6] == "vanished"}


def test_compared_with_names_each_destinations_previous_day_or_its_first(
    workspace: Workspace, meta_server: Callable[..., Any]
) -> None:
    compared = []
    for day in (YESTERDAY, TODAY):
        _, dest = meta_server("shop", accounts=DAY_ACCOUNTS[day], today=lambda day=day: day)
        result = workspace.run(workspace.config([dest]), partition=day.isoformat())
        (materialization,) = result.asset_materializations_for_node(REPORT_NODE)
        compared.append(materialization.metadata["compared_with"].value)
    assert compared == [{"meta shop": FIRST_SNAPSHOT}, {"meta shop": YESTERDAY.isoformat()}]


def test_totals_chart_is_an_svg_line_per_destination_over_the_days(
    workspace: Workspace, two_days: Callable
) -> None:
    result = two_days()
    markdown = result.asset_materializations_for_node(REPORT_NODE)[0].metadata["destination_totals_30d"].value
    encoded = re.search(r"\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert encoded, markdown
    svg = ET.fromstring(base64.b64decode(encoded.group(1)))
    ns = "{http://www.w3.org/2000/svg}"
    (line,) = svg.iter(f"{ns}polyline")
    assert len(line.get("points", "").split()) == 2, "one point per day: yesterday and today"
    labels = [t.text for t in svg.iter(f"{ns}text")]
    assert "meta shop" in labels


def test_checks_flag_vanished_audiences_and_shrinkage_beyond_the_threshold(two_days: Callable) -> None:
    shrank = [e for e in expected_changes().values() if e[6] == "shrank"]
    steepest = min(e[5] for e in shrank)
    result = two_days(checks={"audience_shrink_percent": -steepest * 0.99})
    checks = {c.check_name: c for c in result.get_asset_check_evaluations() if c.asset_key == REPORT}
    vanished = checks[NO_VANISHED_CHECK]
    assert not vanished.passed and vanished.severity == dg.AssetCheckSeverity.WARN
    assert vanished.metadata["audiences_vanished"].value == 2
    assert audience_id_of("1000000001", 7) in (vanished.description or "")
    shrink = checks[NO_SHRINKAGE_CHECK]
    assert not shrink.passed and shrink.metadata["audiences_shrunk_sharply"].value == 1


def test_shrinkage_within_the_threshold_passes(two_days: Callable) -> None:
    result = two_days()  # default 20%: the sandbox drifts by a few percent a day
    checks = {c.check_name: c for c in result.get_asset_check_evaluations() if c.asset_key == REPORT}
    assert checks[NO_SHRINKAGE_CHECK].passed


def test_sizes_equal_on_both_days_are_unchanged(
    workspace: Workspace, meta_server: Callable[..., Any]
) -> None:
    """Yesterday's partition taken today holds today's sizes (all a platform can tell): nothing moved."""
    accounts = DAY_ACCOUNTS[TODAY]
    for day in (YESTERDAY, TODAY):
        _, dest = meta_server("shop", accounts=accounts, today=lambda: TODAY)
        assert workspace.run(workspace.config([dest]), partition=day.isoformat()).success
    kinds = dict(
        workspace.query(
            f"SELECT change_kind, count(*) FROM {CHANGES} WHERE snapshot_date = ? GROUP BY 1", [TODAY]
        )
    )
    unsized = sum(size is None for _, size in sandbox_sizes(TODAY).values())
    assert kinds == {"unchanged": 13 - unsized, "unknown": unsized}


def test_a_backfill_range_reports_only_the_days_with_snapshots(
    workspace: Workspace, meta_server: Callable[..., Any]
) -> None:
    """Old days of a range get no snapshot (no platform can tell them), so no report either: missing, not zero.

    In the range's own run the report does not run (Dagster skips what is downstream of the days left
    missing); the backfill daemon, or a person, then runs it over the range.
    """
    _, dest = meta_server("shop", accounts=DAY_ACCOUNTS[TODAY])
    config = workspace.config([dest])
    first = (TODAY - dt.timedelta(days=4)).isoformat()
    assert workspace.run_range(config, first, TODAY.isoformat()).success
    result = workspace.run_range(config, first, TODAY.isoformat(), selection=[REPORT])
    assert result.success, failure_messages(result)
    reported = sorted(m.partition for m in result.asset_materializations_for_node(REPORT_NODE))
    assert reported == [YESTERDAY.isoformat(), TODAY.isoformat()]
    materialized, failed = workspace.partition_statuses(REPORT, config)
    assert materialized == set(reported) and not failed


def test_edge_rules_zero_unknown_and_the_last_snapshot_of_the_current_day(
    workspace: Workspace, meta_server: Callable[..., Any]
) -> None:
    """Rules the sandbox's drift rarely reaches, on rows written here: a previous size of 0 gives no
    percentage, one unknown side gives `unknown`, and of two snapshots of today the later one counts."""
    _, dest = meta_server("shop", accounts=[SandboxAccount("1000000001", "Retail", audiences=3)])
    config = workspace.config([dest])
    assert workspace.run(config, partition=YESTERDAY.isoformat()).success
    assert workspace.run(config).success  # today, first snapshot
    assert workspace.run(config).success  # today, second snapshot: the one compared
    table = "hightouch_audit.meta_shop_audiences"
    ids = sorted(r[0] for r in workspace.query(f"SELECT DISTINCT id FROM {table}"))
    # Rewrite the stored sizes (the test's ground truth): yesterday 0, -1 (unknown), 100; today's first
    # snapshot 999 for all; today's last 5, 7, 100.
    last_today = workspace.query(
        f"SELECT ht_snapshot_id FROM {table} WHERE ht_snapshot_date = ? ORDER BY ht_fetched_at DESC LIMIT 1",
        [TODAY],
    )[0][0]
    with duckdb.connect(str(workspace.db_path)) as conn:
        for audience_id, before, now in zip(ids, (0, -1, 100), (5, 7, 100), strict=True):
            conn.execute(f"UPDATE {table} SET approximate_count_lower_bound = ? WHERE id = ? AND ht_snapshot_date = ?",
                         [before, audience_id, YESTERDAY])  # fmt: skip
            conn.execute(f"UPDATE {table} SET approximate_count_lower_bound = CASE WHEN ht_snapshot_id = ? THEN ? ELSE 999 END "
                         "WHERE id = ? AND ht_snapshot_date = ?", [last_today, now, audience_id, TODAY])  # fmt: skip
    rows = workspace.query(
        f"SELECT audience_id, previous_size, audience_size, size_change, size_change_pct, change_kind FROM {CHANGES} "
        "WHERE snapshot_date = ? ORDER BY audience_id",
        [TODAY],
    )
    assert rows == [
        (ids[0], 0, 5, 5, None, "grew"),
        (ids[1], None, 7, None, None, "unknown"),
        (ids[2], 100, 100, 0, 0.0, "unchanged"),
    ]


def test_a_snapshot_without_audiences_shows_every_audience_vanished(
    workspace: Workspace, meta_server: Callable[..., Any]
) -> None:
    """Accounts that lost every audience write no audience row; the snapshot log still records the
    snapshot, so the change view compares it (all vanished) and the day's total is 0, not a gap."""
    for day, audiences in ((YESTERDAY, 8), (TODAY, 0)):
        _, dest = meta_server("shop", accounts=[SandboxAccount("1000000001", "Retail", audiences=audiences)],
                              today=lambda day=day: day)  # fmt: skip
        result = workspace.run(workspace.config([dest]), partition=day.isoformat())
        assert result.success, failure_messages(result)
    kinds = workspace.query(
        f"SELECT change_kind, count(*) FROM {CHANGES} WHERE snapshot_date = ? GROUP BY 1", [TODAY]
    )
    assert kinds == [("vanished", 8)]
    logged = workspace.query(
        "SELECT ht_snapshot_date, audiences, table_name FROM hightouch_audit.snapshot_log ORDER BY ht_snapshot_date"
    )
    assert logged == [(YESTERDAY, 8, "meta_shop_audiences"), (TODAY, 0, "meta_shop_audiences")]
    metadata = result.asset_materializations_for_node(REPORT_NODE)[0].metadata
    assert metadata["audiences_vanished"].value == 8 and metadata["audience_size_total"].value == 0
    checks = {c.check_name: c for c in result.get_asset_check_evaluations() if c.asset_key == REPORT}
    assert not checks[NO_VANISHED_CHECK].passed


def test_a_reexecuted_empty_snapshot_is_not_taken_again(
    workspace: Workspace, meta_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log is what tells a retried or re-executed step that a snapshot without rows was written."""
    emulator, dest = meta_server(accounts=[SandboxAccount("1000000001", "Retail", audiences=0)])
    monkeypatch.setenv("AUDIT_ASSETS_CONFIG", str(workspace.write_config([dest])))
    recon = dg.build_reconstructable_job(
        "audit_assets_tests.test_report", "served_job", reconstructor_working_directory=os.getcwd()
    )
    tags = {"dagster/partition": TODAY.isoformat()}
    first = dg.execute_job(recon, workspace.instance, tags=tags)
    assert first.success
    calls = len(emulator.requests)
    again = dg.execute_job(
        recon, workspace.instance, tags=tags,
        reexecution_options=dg.ReexecutionOptions(parent_run_id=first.run_id, step_selection=[SERVED_NODE]),
    )  # fmt: skip
    assert again.success
    assert len(emulator.requests) == calls, "the committed empty snapshot is reported, not taken again"
    assert workspace.query("SELECT count(*), sum(audiences) FROM hightouch_audit.snapshot_log") == [(1, 0)]
