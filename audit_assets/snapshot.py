"""Taking one snapshot: platform pages -> typed rows -> a Parquet spool the warehouse appends whole.

Pages are converted and spooled in bounded chunks, so memory stays flat however many audiences a
destination has; the warehouse then appends the spool in one transaction, so the snapshot lands
whole or not at all. Nothing here knows a particular platform or warehouse.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import itertools
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from audit_assets.columns import HT_RAW, Column, ColumnType
from audit_assets.platforms.base import (
    AccessRefused,
    AccountsNotFound,
    AdAccount,
    Audience,
    AudienceClient,
    BadResponse,
    Platform,
)

ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.STRING: pa.string(),
    ColumnType.INTEGER: pa.int64(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.JSON: pa.string(),  # JSON text; the warehouse parses it into JSON / VARIANT
    ColumnType.DATE: pa.date32(),
    ColumnType.TIMESTAMP_TZ: pa.timestamp("us", tz="UTC"),
}
DEFAULT_CHUNK_ROWS = 5_000
_INTEGER_TEXT = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class SnapshotIdentity:
    """What is fixed before the platform is called: which snapshot of which destination this is."""

    snapshot_id: str
    snapshot_date: dt.date
    run_id: str
    destination: str
    destination_id: str


SPOOL_PREFIX = "audit_assets_spool_"
_LOCK_FILE = ".lock"


class Spool:
    """A snapshot's folder on local disk, locked for as long as its process holds it.

    The lock is an ``flock`` on a file inside the folder: the kernel drops it when the process ends,
    however it ends, so a later snapshot can tell a spool orphaned by a killed run from one in use,
    and removes the orphans.
    """

    def __init__(self) -> None:
        remove_orphaned_spools()
        self.path = Path(tempfile.mkdtemp(prefix=SPOOL_PREFIX))
        self._lock = (self.path / _LOCK_FILE).open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def remove(self) -> None:
        if not self._lock.closed:
            shutil.rmtree(self.path, ignore_errors=True)
            self._lock.close()


def remove_orphaned_spools(root: Path | None = None) -> list[Path]:
    """Remove every spool folder in ``root`` (the temp dir) whose lock no process holds; return them."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*"):
        try:
            with (folder / _LOCK_FILE).open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: the owner is alive
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:  # BlockingIOError while its owner runs; a folder being removed under us
            continue
    return removed


@dataclass
class Snapshot:
    """A finished snapshot spooled on local disk, ready to be appended by a warehouse IO manager."""

    identity: SnapshotIdentity
    fetched_at: dt.datetime
    columns: tuple[Column, ...]
    path: Path
    row_count: int
    audiences_by_account: dict[str, int]
    drift_fields: frozenset[str]
    accounts_not_found: tuple[str, ...] = ()
    accounts_left_out: dict[str, str] = field(default_factory=dict)  # account id -> why it is not in
    _spool: Spool | None = field(default=None, repr=False)

    def batches(self, batch_rows: int = DEFAULT_CHUNK_ROWS) -> pa.RecordBatchReader:
        """Stream the spooled rows back in bounded batches."""
        parquet = pq.ParquetFile(self.path)
        return pa.RecordBatchReader.from_batches(
            parquet.schema_arrow, parquet.iter_batches(batch_size=batch_rows)
        )

    def discard(self) -> None:
        if self._spool is not None:
            self._spool.remove()
            self._spool = None


def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in columns])


def _as_integer(value: Any) -> int | None:
    """The integer a JSON value spells, or None: ints, integral floats, and digit strings (Google's int64)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER_TEXT.match(value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _coerce(value: Any, kind: ColumnType) -> Any:
    """Convert one API value to its column's type, or raise ValueError: never guess."""
    if value is None:
        return None
    if kind is ColumnType.JSON:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if kind is ColumnType.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    elif kind is ColumnType.INTEGER:
        number = _as_integer(value)
        if number is not None:
            if -(2**63) <= number < 2**63:
                return number
            raise ValueError(f"{value!r} is outside the signed 64-bit integer range")
    elif kind is ColumnType.FLOAT:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ValueError("a number too large for a double") from None
    elif kind is ColumnType.BOOLEAN and isinstance(value, bool):
        return value
    raise ValueError(f"expected {kind.value}, got {type(value).__name__}")


class _Spooler:
    """Accumulates rows column-wise and writes a Parquet row group every ``chunk_rows`` rows."""

    def __init__(self, path: Path, columns: tuple[Column, ...], chunk_rows: int) -> None:
        self._columns = columns
        self._schema = arrow_schema(columns)
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")
        self._chunk_rows = chunk_rows
        self._buffer: dict[str, list[Any]] = {c.name: [] for c in columns}
        self._pending = 0
        self.rows = 0

    def add(self, row: Mapping[str, Any]) -> None:
        for name, values in self._buffer.items():
            values.append(row.get(name))
        self._pending += 1
        if self._pending >= self._chunk_rows:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.table(self._buffer, schema=self._schema))
            self.rows += self._pending
            self._buffer = {c.name: [] for c in self._columns}
            self._pending = 0

    def close(self) -> None:
        self.flush()
        self._writer.close()


def _statuses(accounts: list[AdAccount]) -> str:
    """``1000000003 CLOSED, 1000000004 (no status)``, at most five, then how many more."""
    shown = [f"{a.id} {a.status or '(no status)'}" for a in accounts[:5]]
    more = f" and {len(accounts) - 5} more" if len(accounts) > 5 else ""
    return ", ".join(shown) + more


def choose_accounts(
    discovered: list[AdAccount], allow_list: frozenset[str] | None, who: str
) -> tuple[list[AdAccount], tuple[str, ...]]:
    """The accounts a snapshot covers (active, and allow-listed if there is a list), and the allow-listed
    ids not among them. Raise AccountsNotFound, saying which filter removed every account, when none is
    left: an empty discovery is a misconfiguration to fix, never an empty snapshot to record.
    """
    if not discovered:
        raise AccountsNotFound(
            f"{who}: these credentials see no ad account at all; give the user or app behind them access "
            "to the ad accounts to snapshot"
        )
    active = [a for a in discovered if a.active]
    if not active:
        raise AccountsNotFound(
            f"{who}: these credentials see {len(discovered)} ad account(s), none of them active "
            f"({_statuses(discovered)}); only active accounts are snapshotted"
        )
    if allow_list is None:
        return active, ()
    chosen = [a for a in active if a.id in allow_list]
    not_found = tuple(sorted(allow_list - {a.id for a in chosen}))
    if not chosen:
        inactive = [a for a in discovered if a.id in allow_list and not a.active]
        why = f"; inactive: {_statuses(inactive)}" if inactive else ""
        raise AccountsNotFound(
            f"{who}: none of ad_account_ids {sorted(allow_list)} is an active account these credentials can "
            f"see ({len(active)} active account(s) are visible{why}); check the ids and the token's access"
        )
    return chosen, not_found


def _pages_unless_refused(
    client: AudienceClient, account: AdAccount, left_out: dict[str, str]
) -> Iterator[list[Audience]] | None:
    """The account's pages, or None (its reason recorded in ``left_out``) when its audiences cannot be
    read: known at discovery, or refused on the first page. A refusal after rows of the account were
    taken fails the snapshot instead, since a snapshot never holds part of an account.
    """
    if account.unreadable:
        left_out[account.id] = account.unreadable
        return None
    pages = client.audience_pages(account)
    try:
        first = next(pages)
    except StopIteration:
        return iter(())
    except AccessRefused as exc:
        left_out[account.id] = str(exc)
        return None
    return itertools.chain([first], pages)


def take_snapshot(
    *,
    client: AudienceClient,
    platform: Platform,
    identity: SnapshotIdentity,
    sync_ids: Mapping[str, str],
    ad_account_ids: frozenset[str] | None,
    log: logging.Logger,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Snapshot:
    """List every audience of every active account into a spool; raise (leaving nothing) on any error."""
    columns = platform.columns
    known_fields = {f.api_name for f in platform.fields}
    typed_fields = [(f.api_name, f.column, f.type) for f in platform.fields]
    spool = Spool()
    path = spool.path / "snapshot.parquet"
    spooler = _Spooler(path, columns, chunk_rows)
    drift: set[str] = set()
    by_account: dict[str, int] = {}
    try:
        accounts, not_found = choose_accounts(
            client.discover_accounts(), ad_account_ids, f"{platform.title} {identity.destination_id}"
        )
        if not_found:
            log.warning(
                f"{platform.title} {identity.destination_id}: ad_account_ids {list(not_found)} are not among "
                "the active accounts these credentials can see; they are not in this snapshot"
            )
        # The moment the listing starts: the sizes we record are the platform's answers from here on.
        fetched_at = clock()
        log.info(
            f"{platform.title} {identity.destination_id}: {len(accounts)} active ad account(s) to snapshot"
        )
        left_out: dict[str, str] = {}
        for account in accounts:
            label = f"{account.id} ({account.name})" if account.name else account.id
            pages = _pages_unless_refused(client, account, left_out)
            if pages is None:
                log.warning(
                    f"{platform.title} account {label} is left out of this snapshot: {left_out[account.id]}"
                )
                continue
            count = 0
            for page_number, page in enumerate(pages, start=1):
                for audience in page:
                    audience_id = audience.get(platform.audience_id_field)
                    if audience_id is None:
                        raise BadResponse(
                            f"{platform.title} account {account.id}, page {page_number}: an audience has no "
                            f"{platform.audience_id_field!r}"
                        )
                    audience_id = str(audience_id)
                    drift.update(k for k in audience if k not in known_fields)
                    row: dict[str, Any] = {
                        "ht_snapshot_id": identity.snapshot_id,
                        "ht_snapshot_date": identity.snapshot_date,
                        "ht_fetched_at": fetched_at,
                        "ht_run_id": identity.run_id,
                        "ht_destination": identity.destination,
                        "ht_destination_id": identity.destination_id,
                        "ht_ad_account_id": account.id,
                        "ht_sync_id": sync_ids.get(audience_id),
                        HT_RAW.name: json.dumps(audience, ensure_ascii=False, separators=(",", ":")),
                    }
                    for api_name, column, kind in typed_fields:
                        try:
                            row[column] = _coerce(audience.get(api_name), kind)
                        except ValueError as exc:
                            raise BadResponse(
                                f"{platform.title} audience {audience_id}, field {api_name}: {exc}"
                            ) from None
                    spooler.add(row)
                count += len(page)
                log.info(
                    f"{platform.title} account {label}: page {page_number}, {len(page)} audiences "
                    f"({count} so far)"
                )
            by_account[account.id] = count
        if not by_account:
            raise AccessRefused(
                f"{platform.title} {identity.destination_id}: the audiences of no ad account could be read: "
                + "; ".join(f"{a}: {why}" for a, why in left_out.items())
            )
        spooler.close()
    except BaseException:
        with contextlib.suppress(Exception):  # the writer may be what failed
            spooler.close()
        spool.remove()
        raise
    return Snapshot(
        identity=identity,
        fetched_at=fetched_at,
        columns=columns,
        path=path,
        row_count=spooler.rows,
        audiences_by_account=by_account,
        drift_fields=frozenset(drift),
        accounts_not_found=not_found,
        accounts_left_out=left_out,
        _spool=spool,
    )
