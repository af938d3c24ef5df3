"""One harness for the platform client tests: a client over real httpx, its snapshot, the warehouse, the view.

Only the platform is replaced (by a sandbox emulator, in-process or behind a real HTTP server) and the
clock (a recording ``sleep``, no jitter); httpx, the platform's auth, the client, the retry policy, the
spooling, the DuckDB warehouse and the view SQL are the real code. Every platform goes through the same
``Platform`` object the code location uses; client_contracts.py binds each platform to its sandbox
(emulator, demo credentials, packaged URLs) on top of ``PlatformClients.connect`` and ``SnapshotRig``.
conftest.py holds the fixtures (``platform_clients``, which closes every client, and ``spool_root``) and
the sandbox accounts RETAIL, TRAVEL and CLOSED.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import httpx
import pyarrow as pa

from audit_assets.platforms import meta
from audit_assets.platforms.base import AdAccount, AudienceClient, AuthContext, ClientSettings, Platform
from audit_assets.platforms.http import ApiSession, Redactor, RetrySettings
from audit_assets.sandbox.meta import DEMO_CREDENTIALS as META_DEMO_CREDENTIALS
from audit_assets.sandbox.meta import MetaGraphSandbox
from audit_assets.sandbox.transport import SandboxTransport
from audit_assets.sandbox.world import Emulator, SandboxAccount
from audit_assets.snapshot import Snapshot, SnapshotIdentity, take_snapshot
from audit_assets.spool import LOAD_BATCH_BYTES
from audit_assets.views import ViewDefinition, ViewSource
from audit_assets.warehouse import sql
from audit_assets.warehouse.duckdb import DUCKDB, DuckDbAuditWarehouse

SCHEMA = "hightouch_audit"
V1_VIEW = "external_audiences_metadata_v1"


# --- clients ------------------------------------------------------------------------------------------------


@dataclass
class Harness:
    """One platform client and what a test may look at: its session, redactor and auth, and every wait."""

    client: Any  # the platform's own client class, with its extra methods
    session: ApiSession
    redact: Redactor
    auth: httpx.Auth
    sleeps: list[float] = field(default_factory=list)


Connect = Callable[..., Harness]


class PlatformClients:
    """Builds platform clients over real httpx and closes every httpx.Client it opened."""

    def __init__(self) -> None:
        self._opened: list[httpx.Client] = []

    def connect(
        self,
        platform: Platform,
        emulator: Emulator | None = None,
        *,
        log: logging.Logger,
        base_url: str,
        credentials: Mapping[str, str],
        token_url: str | None = None,
        token_path: str | None = None,
        page_size: int | None = None,
        retry: RetrySettings | None = None,
        sleep: Callable[[float], None] | None = None,
        real_waits: bool = False,
    ) -> Harness:
        """A client of ``platform``: in-process against ``emulator``, or over the network when it is None.

        Without ``token_url``, ``token_path`` (if given) is appended to ``base_url``. Every credential, and
        every token the auth obtains at run time, is redacted. Waits are recorded in ``Harness.sleeps``
        unless ``sleep`` says otherwise, or ``real_waits`` asks for the session's own (which ``interrupt``
        ends); jitter is 0.
        """
        if token_url is None and token_path is not None:
            token_url = base_url + token_path
        redact = Redactor(list(credentials.values()))
        auth = platform.auth(AuthContext(credentials, token_url, redact.add))
        transport = SandboxTransport({platform.slug: emulator}) if emulator is not None else None
        # trust_env=False: a proxy in the environment must not intercept the 127.0.0.1 server tests.
        http = httpx.Client(transport=transport, auth=auth, trust_env=False)
        self._opened.append(http)
        sleeps: list[float] = []
        session = ApiSession(
            client=http,
            platform_title=platform.title,
            classify=platform.classify,
            settings=retry or RetrySettings(),
            redact=redact,
            log=log,
            sleep=None if real_waits else sleep or sleeps.append,
            jitter=lambda: 0.0,
        )
        settings = ClientSettings(
            base_url=base_url,
            token_url=token_url,
            credentials=credentials,
            page_size=platform.default_page_size if page_size is None else page_size,
        )
        return Harness(platform.connect(settings, session), session, redact, auth, sleeps)

    def close(self) -> None:
        for http in self._opened:
            http.close()
        self._opened.clear()

    def __enter__(self) -> PlatformClients:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def active_accounts(client: AudienceClient) -> list[AdAccount]:
    """What a snapshot covers of a client's discovery (no allow-list): the accounts marked active."""
    return [a for a in client.discover_accounts() if a.active]


def listed(client: AudienceClient, account: SandboxAccount) -> list[dict[str, Any]]:
    """Every audience of one account, all pages, in the platform's order."""
    return [audience for page in client.audience_pages(AdAccount(account.id)) for audience in page]


# --- snapshots, the warehouse and the v1 view ---------------------------------------------------------------


def spooled(snapshot: Snapshot, max_bytes: int = LOAD_BATCH_BYTES) -> pa.Table:
    """Every row of a snapshot's spool, read back in the batches a warehouse loads."""
    return pa.concat_tables(snapshot.batches(max_bytes))


def write_duckdb(db: Path, snapshot: Snapshot, table: str) -> bool:
    """Append a snapshot with the real DuckDB warehouse, as the snapshot asset does."""
    with DuckDbAuditWarehouse(database=str(db)).session() as session:
        return session.append(table, snapshot)


def query(db: Path, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(statement, params or []).fetchall()


@dataclass(frozen=True)
class SnapshotRig:
    """A test file's snapshot settings: platform, identity, fixed clock, warehouse table and defaults."""

    platform: Platform
    identity: SnapshotIdentity
    log: logging.Logger
    fetched_at: dt.datetime | None = None  # None: the real clock
    table: str = ""
    sync_ids: Mapping[str, str] = field(default_factory=dict)
    ad_account_ids: frozenset[str] | None = None
    chunk_rows: int = 20_000

    def take(self, harness: Harness, **overrides: Any) -> Snapshot:
        """``take_snapshot`` through the harness's client; keyword overrides replace this rig's defaults."""
        rig = replace(self, **overrides)
        clock = {} if rig.fetched_at is None else {"clock": lambda: rig.fetched_at}
        return take_snapshot(
            client=harness.client,
            platform=rig.platform,
            identity=rig.identity,
            sync_ids=rig.sync_ids,
            ad_account_ids=rig.ad_account_ids,
            log=rig.log,
            interrupt=harness.session.interrupt,
            chunk_rows=rig.chunk_rows,
            **clock,
        )

    def write(self, db: Path, snapshot: Snapshot) -> None:
        write_duckdb(db, snapshot, self.table)

    def query(self, db: Path, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Read the warehouse back (the raw table, the catalogue) after ``write``."""
        return query(db, statement, params)

    def view_rows(self, db: Path, columns: str, order_by: str) -> list[tuple[Any, ...]]:
        """Create the v1 view over this rig's table with the real view SQL, then read ``columns`` back."""
        view = ViewDefinition((ViewSource(self.table, self.platform.v1, self.platform.columns),))
        with duckdb.connect(str(db)) as conn:
            conn.execute(sql.create_view(DUCKDB, SCHEMA, V1_VIEW, view))
            return conn.execute(f"SELECT {columns} FROM {SCHEMA}.{V1_VIEW} ORDER BY {order_by}").fetchall()


# --- the demo Meta snapshot of the warehouse tests ----------------------------------------------------------

DEMO_LOG = logging.getLogger("test")
DEMO_TABLE = "meta_io_audiences"
DEMO_DAY = dt.date(2026, 11, 24)


def demo_meta_snapshot(snapshot_id: str = "snap-1") -> Snapshot:
    """A real snapshot of the Meta demo sandbox, spooled to Parquet in several row groups."""
    rig = SnapshotRig(
        meta.PLATFORM,
        SnapshotIdentity(snapshot_id, DEMO_DAY, "run-1", "meta", "io"),
        DEMO_LOG,
        table=DEMO_TABLE,
        chunk_rows=4,  # several row groups, as a large snapshot would have
    )
    with PlatformClients() as clients:
        harness = clients.connect(
            meta.PLATFORM,
            MetaGraphSandbox(),
            log=DEMO_LOG,
            base_url="https://meta.sandbox.invalid",
            credentials=META_DEMO_CREDENTIALS,
            page_size=3,
        )
        return rig.take(harness)


WIDE_NOTES = "targeting rule; " * 2560  # 40,960 characters: a platform field we do not type, kept in ht_raw
WIDE_TABLE = "meta_wide_audiences"


def wide_meta_snapshot(audiences: int = 2500) -> Snapshot:
    """A real Meta snapshot of audiences of 40 KB each (one long field the platform added): ~100 MB."""
    rig = SnapshotRig(
        meta.PLATFORM, SnapshotIdentity("wide", DEMO_DAY, "run-1", "meta", "wide"), DEMO_LOG, table=WIDE_TABLE
    )
    with PlatformClients() as clients:
        harness = clients.connect(
            meta.PLATFORM,
            MetaGraphSandbox(
                [SandboxAccount("1000000001", "Sandbox Wide", audiences=audiences)],
                new_fields={"targeting_notes": WIDE_NOTES},
            ),
            log=DEMO_LOG,
            base_url="https://meta.sandbox.invalid",
            credentials=META_DEMO_CREDENTIALS,
            page_size=500,
        )
        return rig.take(harness)
