"""The append-only DuckDB IO manager on its own: idempotent writes and all-or-nothing snapshots."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from audit_assets.platforms import meta
from audit_assets.platforms.base import AuthContext, ClientSettings
from audit_assets.platforms.http import ApiSession, Redactor, RetrySettings
from audit_assets.sandbox.meta import DEMO_CREDENTIALS
from audit_assets.sandbox.transport import SandboxTransport
from audit_assets.snapshot import Snapshot, SnapshotIdentity, take_snapshot
from audit_assets.warehouse.duckdb import AuditDuckDBIOManager

KEY = dg.AssetKey(["hightouch_audit", "meta_io_audiences"])
LOG = logging.getLogger("test")


def spool(snapshot_id: str = "snap-1") -> Snapshot:
    """A real snapshot of the in-process Meta sandbox, spooled to Parquet."""
    with httpx.Client(
        transport=SandboxTransport(), auth=meta.auth(AuthContext(DEMO_CREDENTIALS, None, lambda _: None))
    ) as client:
        session = ApiSession(
            client=client,
            platform_title="Meta",
            classify=meta.classify,
            settings=RetrySettings(),
            redact=Redactor([]),
            log=LOG,
        )
        settings = ClientSettings("https://meta.sandbox.invalid", None, DEMO_CREDENTIALS, 3)
        return take_snapshot(
            client=meta.connect(settings, session),
            platform=meta.PLATFORM,
            identity=SnapshotIdentity(snapshot_id, dt.date(2026, 11, 24), "run-1", "meta", "io"),
            sync_ids={},
            ad_account_ids=None,
            log=LOG,
            chunk_rows=4,  # several row groups, as a large snapshot would have
        )


def write(db: Path, snapshot: Snapshot) -> None:
    io_manager = AuditDuckDBIOManager(database=str(db))
    context = dg.build_output_context(
        asset_key=KEY,
        partition_key="2026-11-24",
        definition_metadata={"partition_expr": "ht_snapshot_date"},
        resource_config={"database": str(db), "connection_config": {}, "schema": None},
        asset_partitions_def=dg.DailyPartitionsDefinition(start_date="2026-11-01"),
    )
    io_manager.create_io_manager(None).handle_output(context, snapshot)


def count(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(
            "SELECT ht_snapshot_id, count(*) FROM hightouch_audit.meta_io_audiences GROUP BY 1 ORDER BY 1"
        ).fetchall()


def test_a_retried_write_of_the_same_snapshot_adds_nothing(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    write(db, spool("snap-1"))
    write(db, spool("snap-1"))  # the step ran again with the same snapshot id
    write(db, spool("snap-2"))
    assert count(db) == [("snap-1", 13), ("snap-2", 13)]


def test_a_failure_during_the_load_leaves_no_row_of_that_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "b.duckdb"
    write(db, spool("snap-1"))
    broken = spool("snap-2")
    broken.path.write_bytes(broken.path.read_bytes()[:-40])  # the spool is cut short mid-load
    with pytest.raises(duckdb.Error):
        write(db, broken)
    assert count(db) == [("snap-1", 13)]


def test_spool_is_removed_after_the_write(tmp_path: Path) -> None:
    snapshot = spool()
    assert snapshot.path.exists()
    write(tmp_path / "c.duckdb", snapshot)
    assert not snapshot.path.exists()
