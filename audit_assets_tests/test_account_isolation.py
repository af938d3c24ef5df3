"""An account the credentials can list but may not read is left out; the readable accounts still land.

One test over every platform that tells such an account apart, each against its own emulator speaking
its own refusal (Graph code 200, Pinterest's roles and 403 code 29, TikTok code 40001, Snap's 403,
LinkedIn's 403 ACCESS_DENIED, X's 403 UNAUTHORIZED_ACCESS, Google's USER_PERMISSION_DENIED).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace

import pytest

from audit_assets.platforms import PLATFORMS
from audit_assets.platforms.base import AccessRefused
from audit_assets.snapshot import SnapshotIdentity, take_snapshot
from audit_assets_tests.conftest import RETAIL, TODAY, TRAVEL, packaged_destination
from audit_assets_tests.platform_harness import PlatformClients

ISOLATING = ("meta", "pinterest", "tiktok", "snapchat", "linkedin", "x", "google_ads")
LOG = logging.getLogger("audit_assets_tests.account_isolation")


def snapshot_of(platform_clients: PlatformClients, kind: str, *accounts):
    sandbox = importlib.import_module(f"audit_assets.sandbox.{kind}")
    dest = packaged_destination(kind)
    harness = platform_clients.connect(
        PLATFORMS[kind],
        sandbox.EMULATOR(accounts),
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
    )


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
def test_no_readable_account_at_all_fails_the_snapshot(platform_clients: PlatformClients, kind: str) -> None:
    with pytest.raises(AccessRefused, match="the audiences of no ad account could be read"):
        snapshot_of(platform_clients, kind, replace(TRAVEL, readable=False))
