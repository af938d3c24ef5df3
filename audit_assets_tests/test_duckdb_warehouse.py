"""The append-only DuckDB warehouse on its own: idempotent writes and all-or-nothing snapshots."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from audit_assets.snapshot import Snapshot
from audit_assets.warehouse.duckdb import DuckDbAuditWarehouse
from audit_assets_tests.platform_harness import (
    DEMO_TABLE,
    WIDE_NOTES,
    WIDE_TABLE,
    demo_meta_snapshot,
    query,
    wide_meta_snapshot,
    write_duckdb,
)


def write(db: Path, snapshot: Snapshot) -> None:
    write_duckdb(db, snapshot, DEMO_TABLE)


def count(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(
            "SELECT ht_snapshot_id, count(*) FROM hightouch_audit.meta_io_audiences GROUP BY 1 ORDER BY 1"
        ).fetchall()


def test_a_retried_write_of_the_same_snapshot_adds_nothing(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    write(db, demo_meta_snapshot("snap-1"))
    write(db, demo_meta_snapshot("snap-1"))  # the step ran again with the same snapshot id
    write(db, demo_meta_snapshot("snap-2"))
    assert count(db) == [("snap-1", 13), ("snap-2", 13)]


def test_a_failure_during_the_load_leaves_no_row_of_that_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "b.duckdb"
    write(db, demo_meta_snapshot("snap-1"))
    broken = demo_meta_snapshot("snap-2")
    broken.path.write_bytes(broken.path.read_bytes()[:-40])  # the spool is cut short mid-load
    with pytest.raises(duckdb.Error):
        write(db, broken)
    assert count(db) == [("snap-1", 13)]


def test_spool_is_removed_after_the_write(tmp_path: Path) -> None:
    snapshot = demo_meta_snapshot()
    assert snapshot.path.exists()
    write(tmp_path / "c.duckdb", snapshot)
    assert not snapshot.path.exists()


def test_a_failure_after_the_insert_rolls_the_whole_snapshot_back(tmp_path: Path) -> None:
    """The insert and its verification are one transaction: rows that fail the check are not kept."""
    db = tmp_path / "d.duckdb"
    write(db, demo_meta_snapshot("snap-1"))
    inconsistent = demo_meta_snapshot("snap-2")
    inconsistent.row_count += 1  # the spool holds one row fewer than the snapshot claims
    with pytest.raises(RuntimeError, match="wrote 13 rows for snapshot snap-2, expected 14"):
        write(db, inconsistent)
    assert count(db) == [("snap-1", 13)]


def test_ht_raw_is_stored_with_zstd_and_reads_back_whole(tmp_path: Path) -> None:
    """ht_raw, most of a snapshot's bytes, is kept with zstd (smaller and faster to append than the default)."""
    db = tmp_path / "z.duckdb"
    write(db, demo_meta_snapshot("snap-1"))
    with duckdb.connect(str(db), read_only=True) as conn:
        methods = conn.execute(
            "SELECT DISTINCT compression FROM pragma_storage_info('hightouch_audit.meta_io_audiences') "
            "WHERE column_name = 'ht_raw' AND segment_type = 'JSON'"
        ).fetchall()
        ids = conn.execute(
            "SELECT count(*), count(DISTINCT ht_raw->>'id') FROM hightouch_audit.meta_io_audiences"
        ).fetchone()
    assert methods == [("ZSTD",)]
    assert ids == (13, 13)


def test_a_column_a_later_release_types_is_added_and_older_rows_keep_null(tmp_path: Path) -> None:
    """A table written before ``time_updated`` was typed gets the column; nothing is removed or rewritten."""
    from audit_assets.platforms import meta
    from audit_assets.warehouse import sql
    from audit_assets.warehouse.duckdb import DUCKDB

    db = tmp_path / "e.duckdb"
    older = tuple(c for c in meta.PLATFORM.columns if c.name != "time_updated")
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE SCHEMA hightouch_audit")
        conn.execute(sql.create_table(DUCKDB, "hightouch_audit", DEMO_TABLE, older))
        conn.execute(f"INSERT INTO hightouch_audit.{DEMO_TABLE} (ht_snapshot_id, id) VALUES ('old', 'a1')")

    write(db, demo_meta_snapshot("snap-1"))

    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            f"SELECT ht_snapshot_id, time_updated, CAST(ht_raw->>'time_updated' AS BIGINT) "
            f"FROM hightouch_audit.{DEMO_TABLE} ORDER BY ht_snapshot_id, id"
        ).fetchall()
    assert rows[0] == ("old", None, None)  # "old" sorts first
    new = rows[1:]
    assert len(new) == 13 and all(typed == raw and typed is not None for _, typed, raw in new)


def test_audiences_of_40_kb_each_are_appended_within_the_memory_limit(tmp_path: Path) -> None:
    """A warehouse reads a spool's row group whole, and DuckDB holds a few times its size: in row groups
    of 10,000 audiences (or of one typed run, 1,000), 2,500 audiences of 40 KB ran out of DuckDB's 96 MB.
    Row groups bounded in bytes let them land."""
    db = tmp_path / "wide.duckdb"
    write_duckdb(db, wide_meta_snapshot(), WIDE_TABLE)

    rows = query(
        db,
        "SELECT count(*), count(DISTINCT id), min(ht_raw->>'targeting_notes'), max(ht_raw->>'targeting_notes') "
        f"FROM hightouch_audit.{WIDE_TABLE}",
    )
    assert rows == [(2500, 2500, WIDE_NOTES, WIDE_NOTES)]


def test_the_warehouse_works_on_one_thread_whatever_the_machine(tmp_path: Path) -> None:
    """Each DuckDB thread that appends holds its own buffers: on a machine of four cores or more, 200k
    Meta audiences ran out of the 96 MB limit. One thread keeps the memory a snapshot needs the same
    on every machine."""
    with DuckDbAuditWarehouse(database=str(tmp_path / "t.duckdb")).connect() as conn:
        assert conn.execute("SELECT current_setting('threads')").fetchall() == [(1,)]


WRITER = """
import sys
from audit_assets_tests.platform_harness import DEMO_TABLE, demo_meta_snapshot, write_duckdb
snapshots = [demo_meta_snapshot(f"{sys.argv[2]}-{n}") for n in range(2)]
print("ready", flush=True)
for snapshot in snapshots:
    write_duckdb(sys.argv[1], snapshot, DEMO_TABLE)
"""


def test_several_processes_writing_one_file_each_land_every_snapshot_once(tmp_path: Path) -> None:
    """Destinations run as separate step processes; DuckDB lets one process write at a time.

    This test holds the file's lock while four writer processes start, so every one of them meets it,
    then lets go: each must wait its turn and land both its snapshots whole.
    """
    db = tmp_path / "shared.duckdb"
    root = Path(__file__).resolve().parents[1]
    holder = duckdb.connect(str(db))
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), f"p{n}"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # every writer is now retrying against the held lock
    finally:
        holder.close()
    outcomes = [writer.communicate(timeout=120) for writer in writers]

    assert [writer.returncode for writer in writers] == [0] * 4, [err[-2000:] for _, err in outcomes]
    assert count(db) == [(f"p{n}-{k}", 13) for n in range(4) for k in range(2)]
