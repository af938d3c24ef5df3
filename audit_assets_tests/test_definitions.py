"""The shape of the code location: keys, groups, partitions, lineage, job and schedule.

These are the names other code and people depend on, so a change here should be deliberate.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from audit_assets.config import load_config
from audit_assets.definitions import build_definitions
from audit_assets.platforms import PLATFORMS
from audit_assets.schedules import JOB_NAME
from audit_assets_tests.conftest import Workspace, sandbox_meta

VIEW_KEY = dg.AssetKey(["hightouch_audit", "external_audiences_metadata_v1"])
V2_KEY = dg.AssetKey(["hightouch_audit", "external_audiences_metadata_v2"])
CHANGES_KEY = dg.AssetKey(["hightouch_audit", "audience_size_changes"])
META_KEY = dg.AssetKey(["hightouch_audit", "meta_sandbox_meta_audiences"])


def test_packaged_default_definitions_load_and_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDIT_ASSETS_CONFIG", raising=False)
    defs = build_definitions(load_config())

    dg.Definitions.validate_loadable(defs)
    expected = {dg.AssetKey(["hightouch_audit", f"{slug}_sandbox_{slug}_audiences"]) for slug in PLATFORMS}
    assert set(defs.resolve_all_asset_keys()) == {*expected, VIEW_KEY, V2_KEY, CHANGES_KEY}


def test_the_cyclic_collector_does_not_run_while_the_definitions_are_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUDIT_ASSETS_CONFIG", raising=False)
    config = load_config()
    collections: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(count)
    try:
        build_definitions(config)
    finally:
        gc.callbacks.remove(count)
    assert len(collections) <= 1, collections  # at most the young generation, as the pause ends


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("builds", [True, False])
def test_building_the_definitions_leaves_the_cyclic_collector_as_it_found_it(
    monkeypatch: pytest.MonkeyPatch, enabled: bool, builds: bool
) -> None:
    """Built or failed: a code server left without the collector would keep every cycle it frees."""
    monkeypatch.delenv("AUDIT_ASSETS_CONFIG", raising=False)
    config = load_config()
    if not builds:  # a destination of a type no platform has: only possible past config validation
        broken = config.destinations[0].model_copy(update={"type": "no_such_platform"})
        config = config.model_copy(update={"destinations": [broken]})
    was_enabled = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        if builds:
            build_definitions(config)
        else:
            with pytest.raises(KeyError):
                build_definitions(config)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was_enabled else gc.disable)()


def test_loading_the_definitions_loads_neither_pyarrow_nor_a_warehouse_driver(tmp_path: Path) -> None:
    """A code server only loads the definitions: the snapshot's Parquet machinery and DuckDB (~0.15 s
    and ~50 MB together) are loaded by the run that takes a snapshot."""
    heavy = ("pyarrow", "numpy", "pandas", "duckdb", "snowflake.connector")
    code = f"import sys, audit_assets.definitions; print([m for m in {heavy!r} if m in sys.modules])"
    env = {k: v for k, v in os.environ.items() if k != "AUDIT_ASSETS_CONFIG"}  # the packaged default
    loaded = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


def test_destination_asset_spec(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta(owners=["team:growth"], tags={"tier": "gold"})])
    defs = build_definitions(config)
    spec = defs.resolve_assets_def(META_KEY).specs_by_key[META_KEY]
    assert spec.group_name == "hightouch_audit"
    assert spec.kinds == {"meta", "duckdb"}
    assert spec.owners == ["team:growth"]
    assert spec.tags["tier"] == "gold"
    assert spec.metadata["dagster/table_name"] == "hightouch_audit.meta_sandbox_meta_audiences"
    partitions = spec.partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.timezone == "UTC"
    assert partitions.start.date() == dt.date(2026, 1, 1)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert partitions.get_last_partition_key() == today


def test_view_depends_on_every_destination_enabled_or_not(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta(), sandbox_meta("old", enabled=False)])
    defs = build_definitions(config)
    view = defs.resolve_assets_def(VIEW_KEY)
    old_key = dg.AssetKey(["hightouch_audit", "meta_old_audiences"])
    assert view.asset_deps[VIEW_KEY] == {META_KEY, old_key}
    assert view.specs_by_key[VIEW_KEY].partitions_def is None
    old = defs.resolve_assets_def(old_key)
    assert not old.is_executable
    assert old.partitions_def is not None, "a disabled destination keeps its partition history in the UI"


def test_job_and_schedule_request_todays_partition(workspace: Workspace) -> None:
    defs = build_definitions(workspace.config([sandbox_meta()], schedule={"time_utc": "05:30"}))
    job = defs.resolve_job_def(JOB_NAME)
    assert {n.name for n in job.graph.node_defs} == {
        "hightouch_audit__meta_sandbox_meta_audiences",
        "hightouch_audit__external_audiences_metadata_v1",
        "hightouch_audit__external_audiences_metadata_v2",
        "hightouch_audit__audience_size_changes",
    }
    schedule = defs.resolve_schedule_def(f"{JOB_NAME}_daily")
    assert schedule.cron_schedule == "30 5 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    tick = dt.datetime(2026, 11, 24, 5, 30, tzinfo=dt.UTC)
    with dg.build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as ctx:
        requests = schedule.evaluate_tick(ctx).run_requests
    assert [r.partition_key for r in requests] == ["2026-11-24"]


def test_adding_a_warehouse_adds_a_view_and_renames_nothing(workspace: Workspace) -> None:
    document = workspace.document(
        [sandbox_meta(warehouse="local"), sandbox_meta("other", warehouse="archive")],
    )
    document["warehouses"]["archive"] = {"type": "duckdb", "path": str(workspace.root / "archive.duckdb")}
    from audit_assets.config import parse_config

    defs = build_definitions(parse_config(document, "two warehouses"))
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert keys == {
        "hightouch_audit/meta_sandbox_meta_audiences",
        "hightouch_audit/meta_other_audiences",
        "hightouch_audit/external_audiences_metadata_v1",
        "hightouch_audit/archive/external_audiences_metadata_v1",
        "hightouch_audit/external_audiences_metadata_v2",
        "hightouch_audit/archive/external_audiences_metadata_v2",
        "hightouch_audit/audience_size_changes",
        "hightouch_audit/archive/audience_size_changes",
    }
