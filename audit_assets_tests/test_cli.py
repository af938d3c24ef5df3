"""The documented CLI, run as a user runs it: a subprocess with its own DAGSTER_HOME and DuckDB file."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import yaml

from audit_assets_tests.conftest import Workspace, run_command, sandbox_meta, today_key

TABLE = "hightouch_audit.meta_sandbox_meta_audiences"


def run_cli(args: list[str], workspace: Workspace, config: Path) -> subprocess.CompletedProcess[str]:
    home = workspace.root / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "AUDIT_ASSETS_CONFIG": str(config)}
    return run_command(["dagster", *args], workspace, env)


def test_materialize_group_twice_keeps_both_snapshots(workspace: Workspace) -> None:
    config = workspace.write_config([sandbox_meta()])
    command = [
        "asset", "materialize", "-m", "audit_assets.definitions",
        "--select", "group:hightouch_audit", "--partition", today_key(),
    ]  # fmt: skip
    first_run = run_cli(command, workspace, config)
    assert first_run.returncode == 0, first_run.stderr[-3000:]
    with duckdb.connect(str(workspace.db_path), read_only=True) as conn:
        first = conn.execute(
            f"SELECT * EXCLUDE (ht_raw), ht_raw::VARCHAR FROM {TABLE} ORDER BY id"
        ).fetchall()
    assert len(first) == 13

    second_run = run_cli(command, workspace, config)
    assert second_run.returncode == 0, second_run.stderr[-3000:]
    with duckdb.connect(str(workspace.db_path), read_only=True) as conn:
        snapshots = conn.execute(f"SELECT ht_snapshot_id, count(*) FROM {TABLE} GROUP BY 1").fetchall()
        kept = conn.execute(
            f"SELECT * EXCLUDE (ht_raw), ht_raw::VARCHAR FROM {TABLE} WHERE ht_snapshot_id = ? ORDER BY id",
            [first[0][0]],
        ).fetchall()
        in_view = conn.execute(
            "SELECT count(*) FROM hightouch_audit.external_audiences_metadata_v1"
        ).fetchone()
    assert sorted(n for _, n in snapshots) == [13, 13]
    assert kept == first
    assert in_view == (26,)


def test_definitions_validate(workspace: Workspace) -> None:
    config = workspace.write_config([sandbox_meta()])
    result = run_cli(["definitions", "validate", "-m", "audit_assets.definitions"], workspace, config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Validation successful" in result.stdout + result.stderr


def test_a_bad_config_fails_at_load_naming_the_field(workspace: Workspace) -> None:
    config = workspace.root / "bad.yaml"
    config.write_text(
        "start_date: '2026-01-01'\nwarehouses: {w: {type: duckdb, path: x.duckdb}}\n"
        "destinations:\n  - {id: a, type: meta, credentials: {access_token: EAAB-literal-secret-9}}\n"
    )
    for command in (
        ["definitions", "validate", "-m", "audit_assets.definitions"],
        [
            "asset",
            "materialize",
            "-m",
            "audit_assets.definitions",
            "--select",
            "*",
            "--partition",
            today_key(),
        ],
    ):
        result = run_cli(command, workspace, config)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "destinations[0].credentials" in output
        assert "EAAB-literal-secret-9" not in output
        assert "Traceback (most recent call last)" not in output, "the message list, not a Python traceback"
        assert "audit_assets/config.py" not in output, "none of our frames but the line that raised"


def test_a_partition_range_is_one_run_that_records_only_truthful_days(workspace: Workspace) -> None:
    config = workspace.write_config([sandbox_meta()])
    first = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=9)).isoformat()
    command = [
        "asset", "materialize", "-m", "audit_assets.definitions",
        "--select", "group:hightouch_audit", "--partition-range", f"{first}...{today_key()}",
    ]  # fmt: skip
    result = run_cli(command, workspace, config)
    assert result.returncode == 0, result.stderr[-3000:]
    with duckdb.connect(str(workspace.db_path), read_only=True) as conn:
        days = conn.execute(f"SELECT DISTINCT ht_snapshot_date FROM {TABLE} ORDER BY 1").fetchall()
    today = dt.datetime.now(dt.UTC).date()
    assert [d for (d,) in days] == [today - dt.timedelta(days=1), today]
    assert "8 partitions" in result.stderr and "stay missing" in result.stderr


def test_the_instance_pool_limit_runs_one_platforms_destinations_one_at_a_time(workspace: Workspace) -> None:
    """The committed dagster.yaml's pool limit, lowered to 1: three Meta destinations never overlap."""
    settings = yaml.safe_load((Path(__file__).parents[1] / "dagster_home" / "dagster.yaml").read_text())
    settings["concurrency"]["pools"]["default_limit"] = 1
    home = workspace.root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    config = workspace.write_config([sandbox_meta(f"meta_{n}") for n in "abc"])
    env = {**os.environ, "DAGSTER_HOME": str(home), "AUDIT_ASSETS_CONFIG": str(config)}
    command = [
        "dagster", "asset", "materialize", "-m", "audit_assets.definitions",
        "--select", "group:hightouch_audit", "--partition", today_key(),
    ]  # fmt: skip

    result = run_command(command, workspace, env)

    assert result.returncode == 0, result.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        spans: dict[str, list[float]] = {}
        for event in instance.all_logs(run.run_id):
            kind = event.dagster_event.event_type_value if event.dagster_event else None
            if event.step_key and "__meta_meta_" in event.step_key and kind in ("STEP_START", "STEP_SUCCESS"):
                spans.setdefault(event.step_key, []).append(event.timestamp)
    assert len(spans) == 3 and all(len(span) == 2 for span in spans.values()), spans
    ordered = sorted(spans.values())
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(ordered)), ordered


def test_dg_checks_and_lists_the_code_location_from_the_project_folder(workspace: Workspace) -> None:
    """``dg`` (Dagster's newer CLI) finds the same code location through pyproject's [tool.dg]."""
    config = workspace.write_config([sandbox_meta(), sandbox_meta("second", enabled=False)])
    home = workspace.root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "AUDIT_ASSETS_CONFIG": str(config)}
    dg_cli = str(Path(sys.executable).with_name("dg"))
    project = Path(__file__).resolve().parents[1]

    def dg_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [dg_cli, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    checked = dg_run("check", "defs")
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    listed = dg_run("list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    defs = json.loads(listed.stdout)
    assert {a["asset_key"] for a in defs["assets"]} == {
        "hightouch_audit/meta_sandbox_meta_audiences",
        "hightouch_audit/meta_second_audiences",
        "hightouch_audit/external_audiences_metadata_v1",
        "hightouch_audit/external_audiences_metadata_v2",
        "hightouch_audit/audience_size_changes",
    }
    assert {j["name"] for j in defs["jobs"]} >= {"audience_size_report", "preflight"}
