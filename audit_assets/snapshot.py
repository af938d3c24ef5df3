"""Taking one snapshot: every active account's pages -> typed runs -> a spool the warehouse appends whole.

Pages are typed and spooled in bounded runs (spool.py), so memory stays flat however many audiences a
destination has; the warehouse then appends the spool in one transaction, so the snapshot lands
whole or not at all. Nothing here knows a particular platform or warehouse.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import gc
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from audit_assets.accounts import choose_accounts
from audit_assets.columns import HT_RAW, ApiField, Column
from audit_assets.fetching import fetch_concurrently
from audit_assets.platforms.base import (
    AccessRefused,
    AdAccount,
    Audience,
    AudienceClient,
    BadResponse,
    Platform,
    PlatformError,
)
from audit_assets.rows import coerce, json_column, typed_column
from audit_assets.spool import DEFAULT_CHUNK_ROWS, LOAD_BATCH_BYTES, Spool, SpoolWriter, read_batches
from audit_assets.worker_limit import WorkerLimit

TYPE_EVERY_ROWS = 1_000  # audiences typed at once (see _Typer)
PROGRESS_EVERY_SECONDS = 5.0  # an account's progress is logged at most this often


@dataclass(frozen=True)
class SnapshotIdentity:
    """What is fixed before the platform is called: which snapshot of which destination this is."""

    snapshot_id: str
    snapshot_date: dt.date
    run_id: str
    destination: str
    destination_id: str


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

    def batches(self, max_bytes: int = LOAD_BATCH_BYTES) -> Iterator[pa.Table]:
        """The spooled rows in runs of whole row groups (see ``read_batches``)."""
        return read_batches(self.path, max_bytes)

    def discard(self) -> None:
        if self._spool is not None:
            self._spool.remove()
            self._spool = None


@dataclass(frozen=True)
class Typed:
    """A run of one account's pages, typed: its rows, and the API fields in it that no column holds."""

    batch: pa.RecordBatch
    unknown_fields: frozenset[str]


@dataclass(frozen=True)
class LeftOut:
    """Why an account's audiences cannot be read: its first page was refused, so it is not in the snapshot."""

    why: str


@dataclass(frozen=True)
class _Typer:
    """Turns an account's pages into record batches of the destination table's columns.

    Pages are typed in runs of about ``TYPE_EVERY_ROWS`` audiences, on the thread that fetched them
    while they are still in the CPU's cache: Arrow's per-column cost is paid once per run, not per
    page, and a run is small enough not to be read back from main memory for every column.
    """

    platform: Platform
    identity: SnapshotIdentity
    fetched_at: dt.datetime
    sync_ids: Mapping[str, str]
    schema: pa.Schema

    def runs(self, account: AdAccount, pages: Iterator[list[Audience]]) -> Iterator[Typed | LeftOut]:
        """Typed runs of ``pages``. A refusal of the first page leaves the account out; a refusal after it
        fails the snapshot (never part of an account)."""
        run: list[Audience] = []
        page_number = 0
        try:
            for page_number, page in enumerate(pages, start=1):
                self._check_ids(account, page, page_number)
                run += page
                if len(run) >= TYPE_EVERY_ROWS:
                    yield self._typed(account.id, run)
                    run = []
        except AccessRefused as exc:
            if page_number == 0:
                yield LeftOut(str(exc))
                return
            raise PlatformError(f"{exc} (after {page_number} pages of account {account.id})") from None
        if run:
            yield self._typed(account.id, run)

    def _check_ids(self, account: AdAccount, page: list[Audience], page_number: int) -> None:
        field_name = self.platform.audience_id_field
        if any(audience.get(field_name) is None for audience in page):
            raise BadResponse(
                f"{self.platform.title} account {account.id}, page {page_number}: an audience has no "
                f"{field_name!r}"
            )

    def _typed(self, account_id: str, audiences: list[Audience]) -> Typed:
        platform, identity, n = self.platform, self.identity, len(audiences)
        # Every field some audience of the run has; a platform omits most fields most of the time
        # (Graph leaves out every field without a value), and a field no audience has is all null.
        present: set[str] = set().union(*map(dict.keys, audiences))
        unknown = frozenset(present - platform.field_names)
        ids = [str(audience[platform.audience_id_field]) for audience in audiences]
        constants = {
            "ht_snapshot_id": identity.snapshot_id,
            "ht_snapshot_date": identity.snapshot_date,
            "ht_fetched_at": self.fetched_at,
            "ht_run_id": identity.run_id,
            "ht_destination": identity.destination,
            "ht_destination_id": identity.destination_id,
            "ht_ad_account_id": account_id,
        }
        columns: dict[str, pa.Array] = {
            name: pa.repeat(pa.scalar(value, self.schema.field(name).type), n)
            for name, value in constants.items()
        }
        columns["ht_sync_id"] = (
            pa.array([self.sync_ids.get(i) for i in ids], type=pa.string())
            if self.sync_ids
            else pa.nulls(n, pa.string())
        )
        for api_field in platform.fields:
            if api_field.api_name not in present:
                columns[api_field.column] = pa.nulls(n, self.schema.field(api_field.column).type)
                continue
            values = [audience.get(api_field.api_name) for audience in audiences]
            try:
                columns[api_field.column] = typed_column(values, api_field.type)
            except ValueError:
                self._name_the_bad_value(ids, values, api_field)
                raise
        try:
            columns[HT_RAW.name] = json_column(audiences)
        except ValueError as exc:
            raise BadResponse(f"{platform.title}: an audience cannot be kept as JSON: {exc}") from None
        batch = pa.RecordBatch.from_arrays([columns[name] for name in self.schema.names], schema=self.schema)
        return Typed(batch, unknown)

    def _name_the_bad_value(self, ids: list[str], values: list[Any], api_field: ApiField) -> None:
        for audience_id, value in zip(ids, values, strict=True):
            try:
                coerce(value, api_field.type)
            except ValueError as exc:
                raise BadResponse(
                    f"{self.platform.title} audience {audience_id}, field {api_field.api_name}: {exc}"
                ) from None


@dataclass
class _Tally:
    """What a snapshot has spooled of each account so far, and the account progress it logs."""

    platform: Platform
    log: logging.Logger
    audiences: dict[str, int] = field(default_factory=dict)
    reported_at: dict[str, float] = field(default_factory=dict)
    drift: set[str] = field(default_factory=set)

    def add(self, account: AdAccount, typed: Typed) -> None:
        self.drift |= typed.unknown_fields
        count = self.audiences[account.id] = self.audiences.get(account.id, 0) + typed.batch.num_rows
        now = time.monotonic()
        if now - self.reported_at.setdefault(account.id, now) >= PROGRESS_EVERY_SECONDS:
            self.log.info(f"{self.platform.title} account {_label(account)}: {count} audiences so far")
            self.reported_at[account.id] = now

    def finish(self, account: AdAccount) -> None:
        count = self.audiences.setdefault(account.id, 0)
        self.log.info(f"{self.platform.title} account {_label(account)}: {count} audiences")


def _label(account: AdAccount) -> str:
    return f"{account.id} ({account.name})" if account.name else account.id


@contextlib.contextmanager
def _earlier_objects_frozen() -> Iterator[None]:
    """Pages come and go by the hundred thousand while a snapshot is fetched, and each full pass of the
    cyclic collector would rescan every object the process had before (Dagster, pandas: ~175k in a
    step, ~0.05 s a pass, several passes per 200k audiences). Frozen for the fetch (gc.freeze), they
    are skipped, then put back. The young generations are collected first, so no fresh garbage is
    pinned. A process that froze objects of its own is left as it is; meant for one snapshot at a time
    per process, as Dagster runs them."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect(1)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _return_freed_memory() -> None:
    """Hand the pages freed by fetching and typing back to the OS before the warehouse load (glibc only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def take_snapshot(
    *,
    client: AudienceClient,
    platform: Platform,
    identity: SnapshotIdentity,
    sync_ids: Mapping[str, str],
    ad_account_ids: frozenset[str] | None,
    log: logging.Logger,
    interrupt: Callable[[], None],
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Snapshot:
    """List every audience of every active account into a spool; raise (leaving nothing) on any error.

    ``interrupt`` ends the client's waits (its API session's ``interrupt``) when the fetch ends early,
    so a failed snapshot does not wait while another of its accounts waits out a throttle.
    """
    columns = platform.columns
    spool = Spool()
    path = spool.path / "snapshot.parquet"
    spooler = SpoolWriter(path, columns, chunk_rows)
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
        left_out = {a.id: a.unreadable for a in accounts if a.unreadable}
        readable = [a for a in accounts if not a.unreadable]
        typer = _Typer(platform, identity, fetched_at, sync_ids, spooler.schema)
        tally = _Tally(platform, log)
        fetched = fetch_concurrently(
            readable, lambda account: typer.runs(account, client.audience_pages(account)),
            limit=WorkerLimit(platform.concurrent_accounts), interrupt=interrupt,
        )  # fmt: skip
        with _earlier_objects_frozen():
            try:
                for account, item in fetched:  # the accounts' runs interleave, as they are fetched
                    if isinstance(item, LeftOut):
                        left_out[account.id] = item.why
                    elif isinstance(item, Typed):
                        spooler.add(item.batch)
                        tally.add(account, item)
                    elif account.id not in left_out:  # DONE
                        tally.finish(account)
            finally:
                fetched.close()
        # Reported in discovery order, however the fetches interleaved.
        by_account = {a.id: tally.audiences[a.id] for a in readable if a.id not in left_out}
        left_out = {a.id: left_out[a.id] for a in accounts if a.id in left_out}
        for account_id, why in left_out.items():
            log.warning(f"{platform.title} account {account_id} is left out of this snapshot: {why}")
        if not by_account:
            raise AccessRefused(
                f"{platform.title} {identity.destination_id}: the audiences of no ad account could be read: "
                + "; ".join(f"{a}: {why}" for a, why in left_out.items())
            )
        spooler.close()
        _return_freed_memory()
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
        drift_fields=frozenset(tally.drift),
        accounts_not_found=not_found,
        accounts_left_out=left_out,
        _spool=spool,
    )
