"""Shared fixtures: real config files, real DuckDB files, real Dagster runs, and a sandbox HTTP server."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import yaml

from audit_assets.config import AuditConfig, parse_config
from audit_assets.definitions import build_definitions
from audit_assets.sandbox.meta import MetaGraphSandbox
from audit_assets.sandbox.server import serve
from audit_assets.sandbox.world import SandboxAccount
from audit_assets.schedules import JOB_NAME
from audit_assets_tests.platform_harness import PlatformClients

TODAY = dt.datetime.now(dt.UTC).date()
META_TOKEN_ENV = "AUDIT_ASSETS_TEST_META_TOKEN"

# The accounts every platform's emulator serves in the client tests: two active, one closed.
RETAIL = SandboxAccount("1000000001", "Retail", audiences=8)
TRAVEL = SandboxAccount("1000000002", "Travel", audiences=5)
CLOSED = SandboxAccount("1000000003", "Closed", active=False, audiences=3)


def today_key() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


class Workspace:
    """A temporary project: a config document, its DuckDB file, and a Dagster instance."""

    def __init__(self, root: Path, instance: dg.DagsterInstance) -> None:
        self.root = root
        self.db_path = root / "warehouse" / "audit.duckdb"
        self.instance = instance

    def document(self, destinations: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
        return {
            "start_date": "2026-01-01",
            "warehouses": {"local": {"type": "duckdb", "path": str(self.db_path)}},
            "snapshots": {"retry_base_delay_seconds": 0.01, "step_retries": 0},
            "destinations": destinations,
            **top,
        }

    def config(self, destinations: list[dict[str, Any]], **top: Any) -> AuditConfig:
        return parse_config(self.document(destinations, **top), "test config")

    def write_config(self, destinations: list[dict[str, Any]], **top: Any) -> Path:
        self.config(destinations, **top)  # fail early on a bad test config
        path = self.root / "audit_assets.yaml"
        path.write_text(yaml.safe_dump(self.document(destinations, **top)))
        return path

    def run(
        self, config: AuditConfig, partition: str | None = None, selection: list[dg.AssetKey] | None = None
    ) -> dg.ExecuteInProcessResult:
        defs = build_definitions(config)
        job = defs.resolve_job_def(JOB_NAME)
        return job.execute_in_process(
            partition_key=partition or today_key(),
            instance=self.instance,
            raise_on_error=False,
            asset_selection=selection,
        )

    def run_range(
        self, config: AuditConfig, first: str, last: str, selection: list[dg.AssetKey] | None = None
    ) -> dg.ExecuteInProcessResult:
        """One run over a range of days, as a single-run backfill or ``--partition-range`` launches it."""
        job = build_definitions(config).resolve_job_def(JOB_NAME)
        return job.execute_in_process(
            instance=self.instance,
            raise_on_error=False,
            asset_selection=selection,
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        )

    def partition_statuses(self, key: dg.AssetKey, config: AuditConfig) -> tuple[set[str], set[str]]:
        """(materialized, failed) partitions of an asset, as the UI's partition bar computes them."""
        from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

        partitions = build_definitions(config).resolve_assets_def(key).partitions_def
        cached = get_and_update_asset_status_cache_value(self.instance, key, partitions)
        assert cached is not None
        return (
            set(cached.deserialize_materialized_partition_subsets(partitions).get_partition_keys()),
            set(cached.deserialize_failed_partition_subsets(partitions).get_partition_keys()),
        )

    def query(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.db_path), read_only=True) as conn:
            return conn.execute(statement, params or []).fetchall()

    def table_exists(self, table: str) -> bool:
        if not self.db_path.exists():
            return False
        rows = self.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'hightouch_audit' AND table_name = ?",
            [table],
        )
        return rows[0][0] == 1


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with dg.instance_for_test() as instance:
        yield Workspace(tmp_path, instance)


def packaged_destination(kind: str, **extra: Any) -> dict[str, Any]:
    """The packaged config's sandbox destination of one platform, with ``extra`` settings."""
    document = yaml.safe_load(resources.files("audit_assets").joinpath("default_config.yaml").read_text())
    (dest,) = [d for d in document["destinations"] if d["type"] == kind]
    return {**dest, **extra}


def sandbox_meta(dest_id: str = "sandbox_meta", **extra: Any) -> dict[str, Any]:
    return {"id": dest_id, "type": "meta", "base_url": "https://meta.sandbox.invalid", **extra}


@pytest.fixture
def meta_server(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., tuple[MetaGraphSandbox, dict[str, Any]]]]:
    """Start Meta emulators on 127.0.0.1; return (emulator, destination config using it)."""
    stack: list[Any] = []
    monkeypatch.setenv(META_TOKEN_ENV, "test-meta-token-4f9a")

    def start(dest_id: str = "served_meta", **emulator_args: Any) -> tuple[MetaGraphSandbox, dict[str, Any]]:
        emulator = MetaGraphSandbox(token="test-meta-token-4f9a", **emulator_args)
        context = serve(emulator)
        url = context.__enter__()
        stack.append(context)
        dest = {
            "id": dest_id,
            "type": "meta",
            "base_url": url,
            "credentials": {"access_token": {"env": META_TOKEN_ENV}},
        }
        return emulator, dest

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def run_command(
    argv: list[str], workspace: Workspace, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """A command of this venv run as a person runs it: its own process, in the workspace folder."""
    return subprocess.run(
        [str(Path(sys.executable).with_name(argv[0])), *argv[1:]],
        env=env,
        cwd=workspace.root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def failure_messages(result: dg.ExecuteInProcessResult) -> str:
    events = [e for e in result.all_events if e.is_step_failure]
    return "\n".join(str(e.step_failure_data.error) for e in events if e.step_failure_data.error)


@pytest.fixture
def platform_clients() -> Iterator[PlatformClients]:
    """Platform clients over real httpx (see platform_harness); every one is closed after the test."""
    with PlatformClients() as clients:
        yield clients


@pytest.fixture
def spool_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the stdlib's temp directory at a fresh folder, so the spool's lifetime can be observed."""
    root = tmp_path / "spool"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root
