"""What every warehouse does with snapshots and views, written once; each engine fills in its connection,
its SQL dialect and its bulk load.

A warehouse is a Dagster resource rather than an IO manager: a backfill range run records only the days a
platform can still tell, and an IO manager can only record every partition of its run (see assets.py).

A snapshot is appended in three steps: the table is made ready with explicit DDL (new columns added,
never removed); the engine stages the spool; then, in one transaction, the snapshot id is checked (a
retried step finds its rows already there and writes nothing) and the rows are inserted. Nothing is
ever updated or deleted.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from audit_assets.views import (
    CHANGE_KINDS,
    SCHEMA,
    SNAPSHOT_LOG,
    SNAPSHOT_LOG_COLUMNS,
    VIEW_NAMES,
    ViewDefinition,
    ViewSource,
)
from audit_assets.warehouse import sql

# A snapshot's Parquet machinery (pyarrow) is loaded when one is taken, not with the definitions.
if TYPE_CHECKING:
    from audit_assets.snapshot import Snapshot, SnapshotIdentity


@dataclass(frozen=True)
class SnapshotTotals:
    snapshot_date: dt.date
    snapshot_id: str
    fetched_at: dt.datetime
    audiences: int
    audiences_with_size: int
    audience_size_total: int | None


@dataclass(frozen=True)
class SnapshotReport:
    """One committed snapshot as the warehouse holds it, and how it differs from the one before."""

    totals: SnapshotTotals
    audiences_by_account: dict[str, int]
    largest: list[tuple[str, str, str | None, int | None]]  # (ad account, id, name, size), largest first
    raw_fields: frozenset[str]
    previous: SnapshotTotals | None
    audiences_new: int | None  # None when there is no previous snapshot
    audiences_vanished: int | None


@dataclass(frozen=True)
class DestinationTotals:
    destination: str
    destination_id: str
    fetched_at: dt.datetime
    audiences: int
    audiences_with_size: int
    audience_size_total: int | None


@dataclass(frozen=True)
class ViewReport:
    row_count: int
    latest: list[DestinationTotals]


@dataclass(frozen=True)
class Change:
    """One row of ``audience_size_changes_v1``, as a report lists it."""

    destination: str
    destination_id: str
    ad_account_id: str
    audience_id: str
    audience_name: str | None
    previous_size: int | None
    audience_size: int | None
    size_change: int | None
    size_change_pct: float | None
    change_kind: str


@dataclass(frozen=True)
class DailyTotal:
    """A destination's total audience size on one day (its last snapshot of the day), for the trend."""

    destination: str
    destination_id: str
    snapshot_date: dt.date
    audience_size_total: int | None


@dataclass(frozen=True)
class ChangeReport:
    """One day of ``audience_size_changes_v1``: counts per change kind, the notable changes, the trend.

    Each list holds its first ``limit`` changes; ``*_count`` says how many there are in all.
    """

    snapshot_date: dt.date
    counts: dict[str, int]  # every change kind, zero included
    compared: list[tuple[str, str, dt.date | None]]  # (destination, id, previous snapshot date)
    biggest: list[Change]
    vanished: list[Change]
    vanished_count: int
    shrunk: list[Change]  # shrank by at least the threshold, most first
    shrunk_count: int
    totals: list[DailyTotal]  # per destination and day, up to the report's day


class AuditWarehouse(dg.ConfigurableResource, ABC):
    """The ``hightouch_audit`` schema of one configured warehouse: append-only tables and combined views."""

    @property
    @abstractmethod
    def dialect(self) -> sql.Dialect: ...

    @abstractmethod
    def connect(self) -> AbstractContextManager[Any]:
        """A connection whose current schema is ``hightouch_audit`` (created if missing)."""

    @abstractmethod
    def execute(self, connection: Any, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with bound parameters; return its rows (empty for DDL and DML)."""

    @abstractmethod
    def transaction(self, connection: Any) -> AbstractContextManager[None]:
        """Commit on success, roll back on any error."""

    @abstractmethod
    def stage(self, connection: Any, table: str, snapshot: Snapshot) -> str:
        """Make the spooled rows readable by SQL; return a FROM-able source for the insert."""

    @abstractmethod
    def insert(self, connection: Any, table: str, snapshot: Snapshot, staged: str) -> None:
        """Insert every staged row into the table (inside the caller's transaction)."""

    @contextmanager
    def session(self) -> Iterator[WarehouseSession]:
        with self.connect() as connection:
            yield WarehouseSession(self, connection)


class WarehouseSession:
    """The operations of the code location on one open connection."""

    def __init__(self, warehouse: AuditWarehouse, connection: Any) -> None:
        self._warehouse = warehouse
        self._connection = connection
        self._dialect = warehouse.dialect

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._warehouse.execute(self._connection, statement, params)

    def _scalar(self, statement: str, params: Sequence[Any] = ()) -> int:
        rows = self._rows(statement, params)
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def _table_exists(self, table: str) -> bool:
        return bool(self._rows(*sql.column_names(self._dialect, SCHEMA, table)))

    def is_committed(self, table: str, identity: SnapshotIdentity) -> bool:
        """Whether this snapshot is already written (a retried or re-executed step): in the snapshot log,
        or, for one written before the log existed, by its rows."""
        key = [identity.snapshot_date, identity.snapshot_id]
        if self._logged_fetched_at(identity.snapshot_date, identity.snapshot_id) is not None:
            return True
        return (
            self._table_exists(table)
            and self._scalar(sql.count_snapshot(self._dialect, SCHEMA, table), key) > 0
        )

    def _logged_fetched_at(self, snapshot_date: dt.date, snapshot_id: str) -> dt.datetime | None:
        """When a snapshot was fetched, as the snapshot log says; None if it is not logged."""
        if not self._table_exists(SNAPSHOT_LOG):
            return None
        rows = self._rows(sql.logged_snapshot(self._dialect, SCHEMA), [snapshot_date, snapshot_id])
        return rows[0][0] if rows else None

    def latest_snapshot_of_day(self, table: str, day: dt.date) -> str | None:
        if not self._table_exists(table):
            return None
        logged, binds = self._log_of(table)
        rows = self._rows(sql.latest_snapshot_of_day(self._dialect, SCHEMA, table, logged), [*binds, day])
        return str(rows[0][0]) if rows else None

    def _log_of(self, table: str) -> tuple[bool, list[str]]:
        """Whether the snapshot log exists, and what a query of ``table``'s snapshots then binds for it."""
        logged = self._table_exists(SNAPSHOT_LOG)
        return logged, [table] if logged else []

    def append(self, table: str, snapshot: Snapshot) -> bool:
        """Append the snapshot in one transaction; False (and nothing written) when it is already there."""
        warehouse, dialect = self._warehouse, self._dialect
        key = [snapshot.identity.snapshot_date, snapshot.identity.snapshot_id]
        try:
            self._rows(sql.create_table(dialect, SCHEMA, table, snapshot.columns))
            present = {r[0].lower() for r in self._rows(*sql.column_names(dialect, SCHEMA, table))}
            for column in snapshot.columns:
                if column.name not in present:  # a field added in a later release of this code
                    self._rows(sql.add_column(dialect, SCHEMA, table, column))
            self._rows(sql.create_table(dialect, SCHEMA, SNAPSHOT_LOG, SNAPSHOT_LOG_COLUMNS))
            staged = warehouse.stage(self._connection, table, snapshot)
            with warehouse.transaction(self._connection):
                if self.is_committed(table, snapshot.identity):  # inside the transaction: no race
                    return False
                warehouse.insert(self._connection, table, snapshot, staged)
                written = self._scalar(sql.count_snapshot(dialect, SCHEMA, table), key)
                if written != snapshot.row_count:
                    raise RuntimeError(
                        f"wrote {written} rows for snapshot {snapshot.identity.snapshot_id}, "
                        f"expected {snapshot.row_count}"
                    )
                identity = snapshot.identity
                self._rows(
                    sql.log_snapshot(dialect, SCHEMA),
                    [identity.snapshot_id, identity.snapshot_date, snapshot.fetched_at, identity.run_id,
                     identity.destination, identity.destination_id, table, written],
                )  # fmt: skip
            return True
        finally:
            snapshot.discard()

    def replace_views(self, view: ViewDefinition, names: Sequence[str] = VIEW_NAMES) -> None:
        """Create every source table not written yet (empty, explicit DDL), then (re)create the named
        views, each after the views it reads."""
        for source in view.sources:
            self._rows(sql.create_table(self._dialect, SCHEMA, source.table, source.columns))
        self._rows(sql.create_table(self._dialect, SCHEMA, SNAPSHOT_LOG, SNAPSHOT_LOG_COLUMNS))
        for name in (n for n in VIEW_NAMES if n in names):
            self._rows(sql.create_view(self._dialect, SCHEMA, name, view))

    def change_report(
        self, day: dt.date, *, history_days: int, limit: int, shrink_percent: float
    ) -> ChangeReport:
        """Day ``day`` of the change view, and each destination's totals over ``history_days`` days to it."""
        d = self._dialect
        self._rows(sql.change_window(d, SCHEMA), [day])
        counts = dict.fromkeys(CHANGE_KINDS, 0)
        counts.update({str(kind): int(n) for kind, n in self._rows(sql.change_counts())})

        def changes(which: str, *extra: Any) -> tuple[list[Change], int]:
            rows = self._rows(sql.change_list(d, which, limit), list(extra))
            return [Change(*row[:-1]) for row in rows], int(rows[0][-1]) if rows else 0

        vanished, vanished_count = changes("vanished")
        shrunk, shrunk_count = changes("shrunk", -float(shrink_percent))
        return ChangeReport(
            snapshot_date=day,
            counts=counts,
            compared=[(str(t), str(i), before) for t, i, before in self._rows(sql.compared_destinations())],
            biggest=changes("biggest")[0],
            vanished=vanished,
            vanished_count=vanished_count,
            shrunk=shrunk,
            shrunk_count=shrunk_count,
            totals=[
                DailyTotal(str(t), str(i), on, _int_or_none(total))
                for t, i, on, total in self._rows(
                    sql.daily_totals(d, SCHEMA), [day - dt.timedelta(days=history_days - 1), day] * 2
                )
            ],
        )

    def _totals(self, source: ViewSource, snapshot_date: dt.date, snapshot_id: str) -> SnapshotTotals:
        statement = sql.snapshot_totals(self._dialect, SCHEMA, source)
        audiences, sized, total, fetched_at = self._rows(statement, [snapshot_date, snapshot_id])[0]
        if not audiences:  # a snapshot of accounts with no audience leaves no row, only its log row
            fetched_at = self._logged_fetched_at(snapshot_date, snapshot_id)
            if fetched_at is None:
                raise LookupError(f"snapshot {snapshot_id} of {snapshot_date} is not in {source.table}")
        return SnapshotTotals(
            snapshot_date, snapshot_id, fetched_at, int(audiences), int(sized), _int_or_none(total)
        )

    def snapshot_report(
        self,
        source: ViewSource,
        snapshot_date: dt.date,
        snapshot_id: str,
        largest: int,
    ) -> SnapshotReport:
        """What the table holds for one committed snapshot, compared with the snapshot fetched before it.

        A snapshot without audiences writes no row; the snapshot log then says when it was fetched.
        """
        d, key = self._dialect, [snapshot_date, snapshot_id]
        totals = self._totals(source, snapshot_date, snapshot_id)
        logged, binds = self._log_of(source.table)
        before = self._rows(
            sql.previous_snapshot(d, SCHEMA, source.table, logged), [*binds, totals.fetched_at]
        )
        previous = self._totals(source, before[0][0], before[0][1]) if before else None
        new = vanished = None
        if previous is not None:
            other = [previous.snapshot_date, previous.snapshot_id]
            new = self._scalar(sql.audiences_not_in(d, SCHEMA, source), key + other)
            vanished = self._scalar(sql.audiences_not_in(d, SCHEMA, source), other + key)
        return SnapshotReport(
            totals=totals,
            audiences_by_account={
                str(a): int(n) for a, n in self._rows(sql.snapshot_accounts(d, SCHEMA, source), key)
            },
            largest=[
                (str(a), str(i), n, _int_or_none(s))
                for a, i, n, s in self._rows(sql.largest_audiences(d, SCHEMA, source, largest), key)
            ],
            raw_fields=frozenset(
                str(r[0]) for r in self._rows(sql.raw_field_names(d, SCHEMA, source.table), key)
            ),
            previous=previous,
            audiences_new=new,
            audiences_vanished=vanished,
        )

    def view_report(self, name: str) -> ViewReport:
        return ViewReport(
            row_count=self._scalar(sql.view_row_count(SCHEMA, name)),
            latest=[
                DestinationTotals(str(t), str(i), at, int(n), int(sized), _int_or_none(total))
                for t, i, at, n, sized, total in self._rows(sql.view_latest_totals(SCHEMA, name))
            ],
        )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
