"""The hard sandbox scenario on every platform: short pages, and an account that may not be read.

Each platform's emulator speaks its own refusal (Graph code 200, Pinterest's roles and 403 code 29, TikTok
code 40001, Snap's 403, LinkedIn's 403 ACCESS_DENIED, X's 403 UNAUTHORIZED_ACCESS, Google's
USER_PERMISSION_DENIED) and, with ``page_cap``, serves fewer audiences per page than the client asks for,
reporting the size it served wherever its platform does. Expected counts are the sandbox accounts' own.
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from audit_assets.platforms import PLATFORMS
from audit_assets.platforms.base import AccessRefused
from audit_assets.sandbox.world import Emulator, SandboxAccount
from audit_assets.snapshot import Snapshot, SnapshotIdentity, take_snapshot
from audit_assets_tests.conftest import RETAIL, TODAY, TRAVEL, packaged_destination
from audit_assets_tests.platform_harness import PlatformClients

ISOLATING = ("meta", "pinterest", "tiktok", "snapchat", "linkedin", "x", "google_ads")
LOG = logging.getLogger("audit_assets_tests.account_isolation")
BIG = SandboxAccount("1000000004", "Big", audiences=23)


def snapshot_of(
    platform_clients: PlatformClients, kind: str, *accounts: SandboxAccount, **scenario: Any
) -> Snapshot:
    return snapshot_through(platform_clients, kind, emulator_of(kind, *accounts, **scenario))


def emulator_of(kind: str, *accounts: SandboxAccount, **scenario: Any) -> Emulator:
    return importlib.import_module(f"audit_assets.sandbox.{kind}").EMULATOR(accounts, **scenario)


def snapshot_through(platform_clients: PlatformClients, kind: str, emulator: Emulator) -> Snapshot:
    sandbox = importlib.import_module(f"audit_assets.sandbox.{kind}")
    dest = packaged_destination(kind)
    harness = platform_clients.connect(
        PLATFORMS[kind],
        emulator,
        log=LOG,
        base_url=dest["base_url"],
        token_url=dest.get("token_url"),
        credentials=sandbox.DEMO_CREDENTIALS,
    )
    return take_snapshot(
        client=harness.client,
        platform=PLATFORMS[kind],
        identity=SnapshotIdentity(f"isolation-{kind}", TODAY, "run", kind, "isolation"),
        sync_ids={},
        ad_account_ids=None,
        log=LOG,
        interrupt=harness.session.interrupt,
    )


def audience_ids(snapshot: Snapshot, kind: str) -> Counter[str]:
    column = next(f.column for f in PLATFORMS[kind].fields if f.api_name == PLATFORMS[kind].audience_id_field)
    return Counter(str(v) for batch in snapshot.batches() for v in batch.column(column).to_pylist())


@pytest.mark.parametrize("kind", ISOLATING)
def test_an_unreadable_account_is_left_out_with_its_reason(
    platform_clients: PlatformClients, kind: str
) -> None:
    snapshot = snapshot_of(platform_clients, kind, RETAIL, replace(TRAVEL, readable=False))
    try:
        assert snapshot.audiences_by_account == {RETAIL.id: RETAIL.audiences}
        assert list(snapshot.accounts_left_out) == [TRAVEL.id]
        assert snapshot.accounts_left_out[TRAVEL.id]
    finally:
        snapshot.discard()


@pytest.mark.parametrize("kind", ISOLATING)
def test_pages_shorter_than_asked_still_give_every_audience_once(
    platform_clients: PlatformClients, kind: str
) -> None:
    """A server that serves 2 per page whatever the client asks, with an unreadable account beside."""
    emulator = emulator_of(kind, RETAIL, BIG, replace(TRAVEL, readable=False), page_cap=2)
    snapshot = snapshot_through(platform_clients, kind, emulator)
    try:
        assert len(emulator.requests) > BIG.audiences // 2, "the server served short pages"
        assert snapshot.audiences_by_account == {RETAIL.id: RETAIL.audiences, BIG.id: BIG.audiences}
        ids = audience_ids(snapshot, kind)
        assert len(ids) == RETAIL.audiences + BIG.audiences
        assert set(ids.values()) == {1}, "no audience twice"
        assert list(snapshot.accounts_left_out) == [TRAVEL.id]
    finally:
        snapshot.discard()


@pytest.mark.parametrize("kind", ISOLATING)
def test_no_readable_account_at_all_fails_the_snapshot(platform_clients: PlatformClients, kind: str) -> None:
    with pytest.raises(AccessRefused, match="the audiences of no ad account could be read"):
        snapshot_of(platform_clients, kind, replace(TRAVEL, readable=False))
