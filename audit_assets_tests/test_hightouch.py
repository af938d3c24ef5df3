"""ht_sync_id from Hightouch's API: paging, filtering, overrides, and a snapshot that survives an outage."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from audit_assets import hightouch
from audit_assets.config import ConfigError, parse_config
from audit_assets.hightouch import HightouchClient
from audit_assets.platforms.base import AuthError, BadResponse
from audit_assets.platforms.http import ApiSession, BearerAuth, Redactor, RetrySettings
from audit_assets.sandbox.hightouch import DEMO_CREDENTIALS, HightouchSandbox, sync
from audit_assets.sandbox.server import serve
from audit_assets.sandbox.transport import SandboxTransport
from audit_assets.sandbox.world import FaultKind, Faults
from audit_assets_tests.client_contracts import Rewritten
from audit_assets_tests.conftest import Workspace, failure_messages, sandbox_meta

SANDBOX = "https://hightouch.sandbox.invalid/api/v1"
TABLE = "hightouch_audit.meta_sandbox_meta_audiences"
NODE = "hightouch_audit__meta_sandbox_meta_audiences"


@contextmanager
def client_for(
    emulator: HightouchSandbox | Rewritten, api_key: str = DEMO_CREDENTIALS["api_key"]
) -> Iterator[HightouchClient]:
    with httpx.Client(transport=SandboxTransport({"hightouch": emulator}), auth=BearerAuth(api_key)) as http:
        session = ApiSession(
            client=http,
            platform_title="Hightouch",
            classify=hightouch.classify,
            settings=RetrySettings(),
            redact=Redactor([api_key]),
            log=logging.getLogger("test"),
            sleep=lambda _: None,
        )
        yield HightouchClient(SANDBOX, session)


def test_syncs_of_the_destination_are_found_across_pages() -> None:
    emulator = HightouchSandbox()
    with client_for(emulator) as client:
        found = client.sync_ids_for("sandbox_meta")
    assert found == {
        "23850001000000000": "90210",
        "23850001000000001": "90211",
        "23850001000000007": "90212",
        "23850002000000002": "90213",
    }
    offsets = [r.url.params["offset"] for r in emulator.requests]
    assert offsets == ["0", "100"], "155 syncs come in two pages of at most 100"


def test_numeric_destination_ids_match_their_text_form_and_empty_segments_are_skipped() -> None:
    emulator = HightouchSandbox([sync(1, 48213, "aud-1"), sync(2, 48213, None), sync(3, 9, "aud-3")])
    with client_for(emulator) as client:
        assert client.sync_ids_for("48213") == {"aud-1": "1"}


def test_a_page_whose_syncs_are_not_a_list_of_objects_is_a_bad_response() -> None:
    def syncs_as_a_mapping(n: int, answer: httpx.Response) -> httpx.Response:
        body = answer.json()
        if n == 2:
            body["data"] = {str(s["id"]): s for s in body["data"]}
        return httpx.Response(200, json=body)

    rewritten = Rewritten(HightouchSandbox(), "/syncs", syncs_as_a_mapping)
    with client_for(rewritten) as client, pytest.raises(BadResponse, match=r"offset 100.*'data'"):
        client.sync_ids_for("sandbox_meta")


def test_a_bad_api_key_is_an_auth_error_without_the_key() -> None:
    with (
        client_for(HightouchSandbox(), api_key="wrong-key-123456") as client,
        pytest.raises(AuthError) as info,
    ):
        client.sync_ids_for("sandbox_meta")
    assert "wrong-key-123456" not in str(info.value)


def test_a_literal_api_key_and_a_missing_one_are_config_errors() -> None:
    base = {"start_date": "2026-01-01", "warehouses": {"w": {"type": "duckdb", "path": "x.duckdb"}}}
    with pytest.raises(ConfigError, match=r"hightouch.api_key") as info:
        parse_config({**base, "hightouch": {"api_key": "ht-secret-value"}}, "t")
    assert "ht-secret-value" not in str(info.value)
    with pytest.raises(ConfigError, match=r"api_key: required"):
        parse_config({**base, "hightouch": {}}, "t")


def test_snapshot_takes_sync_ids_from_hightouch_with_configured_overrides(workspace: Workspace) -> None:
    config = workspace.config(
        [sandbox_meta(sync_ids={"23850001000000001": "manual"})], hightouch={"base_url": SANDBOX}
    )
    result = workspace.run(config)
    assert result.success, failure_messages(result)
    rows = workspace.query(f"SELECT id, ht_sync_id FROM {TABLE} WHERE ht_sync_id IS NOT NULL ORDER BY id")
    assert rows == [
        ("23850001000000000", "90210"),
        ("23850001000000001", "manual"),
        ("23850001000000007", "90212"),
        ("23850002000000002", "90213"),
    ]
    assert result.asset_materializations_for_node(NODE)[0].metadata["sync_ids_from_hightouch"].value == 4


def test_a_hightouch_outage_does_not_cost_the_days_snapshot(workspace: Workspace, monkeypatch) -> None:
    emulator = HightouchSandbox(faults=Faults().add(FaultKind.SERVER_ERROR, times=100))
    monkeypatch.setenv("HT_KEY", DEMO_CREDENTIALS["api_key"])
    with serve(emulator) as url:
        config = workspace.config(
            [sandbox_meta(sync_ids={"23850001000000001": "manual"})],
            hightouch={"base_url": f"{url}/api/v1", "api_key": {"env": "HT_KEY"}},
            snapshots={"retry_base_delay_seconds": 0.01, "max_retries": 1},
        )
        result = workspace.run(config)
    assert result.success, failure_messages(result)
    assert workspace.query(f"SELECT count(*), count(ht_sync_id) FROM {TABLE}") == [(13, 1)]
    assert result.asset_materializations_for_node(NODE)[0].metadata["sync_ids_from_hightouch"].value is None
