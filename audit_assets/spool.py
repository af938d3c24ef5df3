"""A snapshot's spool: the Parquet file on local disk where its typed rows wait for the warehouse.

Rows are written in row groups bounded in audiences and in bytes, and read back in runs of whole row
groups bounded in bytes, so memory stays flat however many and however wide the audiences are. The
spool's folder is locked while its process lives, so a later snapshot can remove the orphans of a
killed run. Nothing here knows a platform or a warehouse.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from audit_assets.columns import Column
from audit_assets.rows import arrow_schema

DEFAULT_CHUNK_ROWS = 10_000  # audiences per Parquet row group, at most
# Bytes per Parquet row group (uncompressed), at most. A warehouse reads a row group whole, DuckDB
# holding a few times its size per thread: 10,000 audiences of 10 KB made 100 MB row groups, past
# DuckDB's memory limit, where rows of a Meta snapshot (~1.2 KB each) make 12 MB.
ROW_GROUP_BYTES = 4 * 2**20
# Bytes (uncompressed) a warehouse reads back from the spool at once, at most (see read_batches).
LOAD_BATCH_BYTES = 16 * 2**20


SPOOL_PREFIX = "audit_assets_spool_"
_LOCK_FILE = ".lock"
_UNLOCKED_SPOOL_MAX_AGE_SECONDS = 3600


class Spool:
    """A snapshot's folder on local disk, locked for as long as its process holds it.

    The lock is an ``flock`` on a file inside the folder: the kernel drops it when the process ends,
    however it ends, so a later snapshot can tell a spool orphaned by a killed run from one in use,
    and removes the orphans. The lock file appears already locked (locked under another name, then
    renamed), so no other process can find a new spool unlocked and take it for an orphan.
    """

    def __init__(self) -> None:
        remove_orphaned_spools()
        self.path = Path(tempfile.mkdtemp(prefix=SPOOL_PREFIX))
        self._lock = (self.path / f"{_LOCK_FILE}.new").open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (self.path / f"{_LOCK_FILE}.new").rename(self.path / _LOCK_FILE)

    def remove(self) -> None:
        if not self._lock.closed:
            shutil.rmtree(self.path, ignore_errors=True)
            self._lock.close()


def remove_orphaned_spools(root: Path | None = None) -> list[Path]:
    """Remove every spool folder in ``root`` (the temp dir) whose lock no process holds; return them.

    A folder without its lock file is one being created, unless it is older than an hour (its process
    died in that instant).
    """
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*"):
        try:
            fd = os.open(folder / _LOCK_FILE, os.O_RDWR)  # never created here: see Spool
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                if time.time() - folder.stat().st_mtime > _UNLOCKED_SPOOL_MAX_AGE_SECONDS:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            continue
        except OSError:  # a folder being removed under us
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: the owner is alive
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except OSError:  # BlockingIOError while its owner runs
            continue
        finally:
            os.close(fd)
    return removed


class SpoolWriter:
    """Writes typed batches to Parquet, in row groups of ``chunk_rows`` audiences or ROW_GROUP_BYTES."""

    def __init__(self, path: Path, columns: tuple[Column, ...], chunk_rows: int) -> None:
        self.schema = arrow_schema(columns)
        # Read back once, whole, by the warehouse: no dictionaries (ht_raw's values never repeat, and
        # trying costs as much as the write) and no statistics (nothing filters on them).
        self._writer = pq.ParquetWriter(
            path, self.schema, compression="lz4", use_dictionary=False, write_statistics=False
        )
        self._chunk_rows = chunk_rows
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = self._pending_bytes = 0
        self.rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if self._pending and self._pending_bytes + batch.nbytes > ROW_GROUP_BYTES:
            self.flush()
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        if self._pending_rows >= self._chunk_rows:
            self.flush()

    def flush(self) -> None:
        if self._pending_rows:
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            # One batch alone may hold more than ROW_GROUP_BYTES (audiences of several KB each).
            by_bytes = self._pending_rows * ROW_GROUP_BYTES // max(self._pending_bytes, 1)
            self._writer.write_table(table, row_group_size=max(1, min(self._chunk_rows, by_bytes)))
            self.rows += self._pending_rows
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def close(self) -> None:
        self.flush()
        self._writer.close()


def read_batches(path: Path, max_bytes: int = LOAD_BATCH_BYTES) -> Iterator[pa.Table]:
    """The spooled rows in runs of whole row groups of at most ``max_bytes`` (uncompressed) each, or
    one row group: what a warehouse loading them holds at once, however wide the audiences."""
    parquet = pq.ParquetFile(path)
    run: list[int] = []
    run_bytes = 0
    for index in range(parquet.num_row_groups):
        group_bytes = parquet.metadata.row_group(index).total_byte_size
        if run and run_bytes + group_bytes > max_bytes:
            yield parquet.read_row_groups(run)
            run, run_bytes = [], 0
        run.append(index)
        run_bytes += group_bytes
    if run:
        yield parquet.read_row_groups(run)
