"""Ids as people copy them from each platform's UI work in every config field that takes one."""

from __future__ import annotations

import pytest

from audit_assets.sandbox.linkedin import segment_id_of
from audit_assets.sandbox.meta import audience_id_of
from audit_assets_tests.conftest import Workspace, failure_messages, packaged_destination


@pytest.mark.parametrize(
    ("kind", "written_as"),
    [
        ("google_ads", "100-000-0002"),  # the Google Ads UI's form
        ("google_ads", "customers/1000000002"),  # the API's resource name
        ("linkedin", "urn:li:sponsoredAccount:1000000002"),
        ("meta", "act_1000000002"),
    ],
)
def test_ad_account_ids_in_the_platforms_own_forms(workspace: Workspace, kind: str, written_as: str) -> None:
    dest = packaged_destination(kind, ad_account_ids=[written_as])
    result = workspace.run(workspace.config([dest]))
    assert result.success, failure_messages(result)
    assert workspace.query(
        f"SELECT DISTINCT ht_ad_account_id FROM hightouch_audit.{kind}_{dest['id']}_audiences"
    ) == [("1000000002",)]


@pytest.mark.parametrize(
    ("kind", "audience_id", "written_as"),
    [
        (
            "linkedin",
            str(segment_id_of("1000000001", 2)),
            f"urn:li:adSegment:{segment_id_of('1000000001', 2)}",
        ),
        ("meta", audience_id_of("1000000001", 2), f" {audience_id_of('1000000001', 2)} "),
    ],
)
def test_sync_ids_keyed_by_audience_ids_in_the_platforms_own_forms(
    workspace: Workspace, kind: str, audience_id: str, written_as: str
) -> None:
    dest = packaged_destination(kind, sync_ids={written_as: "90210"})
    assert workspace.run(workspace.config([dest])).success
    synced = workspace.query(
        "SELECT audience_id, ht_sync_id FROM hightouch_audit.external_audiences_metadata_v1 WHERE ht_sync_id IS NOT NULL"
    )
    assert synced == [(audience_id, "90210")]
