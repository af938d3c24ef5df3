"""The packaged quickstart: every platform's sandbox destination, one run, one view with the right sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from audit_assets.config import load_config
from audit_assets.definitions import build_definitions
from audit_assets.platforms import PLATFORMS
from audit_assets.schedules import JOB_NAME
from audit_assets_tests.conftest import failure_messages, today_key

VIEW = "hightouch_audit.external_audiences_metadata_v1"


# The v1 mapping as the design states it (shared/design.md, "The combined view, version 1"), in the
# platforms' own API field names: written here from the contract, never read from the code under test.
# (id field, name field, size field, size values that mean "no size")
DESIGN_V1: dict[str, tuple[str, str, str, tuple[int, ...]]] = {
    "meta": ("id", "name", "approximate_count_lower_bound", (-1,)),
    "google_ads": ("id", "name", "sizeForDisplay", ()),
    "linkedin": ("id", "name", "approximateMemberCount", ()),
    "tiktok": ("audience_id", "name", "cover_num", ()),
    "snapchat": ("id", "name", "approximate_number_users", ()),
    "pinterest": ("id", "name", "size", ()),
    "x": ("id", "name", "audience_size", ()),
}


def expected_view_row(kind: str, raw: dict[str, Any]) -> tuple[str, str | None, int | None]:
    """What the view must show for one raw audience, computed from the API object, not from SQL."""
    id_field, name_field, size_field, no_size = DESIGN_V1[kind]
    size = raw.get(size_field)
    size = None if size is None else int(size)  # int64 may arrive as a string
    return (str(raw[id_field]), raw.get(name_field), None if size in no_size else size)


def _flag(true: str, false: str) -> Any:
    return lambda value: None if value is None else (true if value else false)


# What v2 adds, as the README's table states it, in the API's own field names:
# (lower bound field, upper bound field, type field, status field or how the status is worded)
V2_WORDS: dict[str, tuple[Any, Any]] = {
    "meta": ("subtype", lambda raw: (raw.get("delivery_status") or {}).get("description")),
    "google_ads": ("type", "membershipStatus"),
    "linkedin": ("type", "status"),
    "tiktok": ("audience_type", lambda raw: _flag("VALID", "INVALID")(raw.get("is_valid"))),
    "snapchat": ("source_type", "targetable_status"),
    "pinterest": ("audience_type", "status"),
    "x": ("audience_type", lambda raw: _flag("TARGETABLE", "NOT_TARGETABLE")(raw.get("targetable"))),
}


def check_v2_row(kind: str, raw: dict[str, Any], row: tuple[Any, ...]) -> None:
    """One v2 row against its raw audience: the platform's own range, type and status words."""
    lower, upper, audience_type, status = row
    type_field, status_from = V2_WORDS[kind]
    assert audience_type == raw.get(type_field), (kind, raw)
    assert status == (status_from(raw) if callable(status_from) else raw.get(status_from)), (kind, raw)
    if kind == "meta":
        as_served = raw.get("approximate_count_lower_bound"), raw.get("approximate_count_upper_bound")
        assert (lower, upper) == tuple(None if b == -1 else b for b in as_served)
    elif kind == "google_ads" and raw.get("sizeRangeForDisplay") not in (None, "UNKNOWN", "UNSPECIFIED"):
        size = int(raw["sizeForDisplay"])  # the range Google names holds the size it gives
        assert lower is not None and lower <= size and (upper is None or size < upper), (raw, lower, upper)
    else:
        assert (lower, upper) == (None, None), (kind, raw)


def test_quickstart_covers_every_platform_and_the_view_maps_each_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the packaged config writes data/audit.duckdb under the working directory
    monkeypatch.delenv("AUDIT_ASSETS_CONFIG", raising=False)
    config = load_config()
    assert {d.type for d in config.destinations} == set(PLATFORMS)

    with dg.instance_for_test() as instance:
        job = build_definitions(config).resolve_job_def(JOB_NAME)
        result = job.execute_in_process(partition_key=today_key(), instance=instance, raise_on_error=False)
    assert result.success, failure_messages(result)

    all_sizes: list[int | None] = []
    with duckdb.connect("data/audit.duckdb", read_only=True) as conn:
        for dest in config.destinations:
            raws = [
                json.loads(r[0])
                for r in conn.execute(f"SELECT ht_raw FROM hightouch_audit.{dest.table}").fetchall()
            ]
            expected = sorted((expected_view_row(dest.type, raw) for raw in raws), key=str)
            actual = sorted(
                conn.execute(
                    f"SELECT audience_id, audience_name, audience_size FROM {VIEW} WHERE ht_destination_id = ?",
                    [dest.id],
                ).fetchall(),
                key=str,
            )
            assert expected, f"{dest.type}: the sandbox serves audiences"
            assert actual == expected, dest.type
            all_sizes += [size for _, _, size in actual]
            v2 = conn.execute(
                "SELECT audience_id, audience_size_lower_bound, audience_size_upper_bound, audience_type, "
                "audience_status FROM hightouch_audit.external_audiences_metadata_v2 WHERE ht_destination_id = ?",
                [dest.id],
            ).fetchall()
            by_id = {str(raw[DESIGN_V1[dest.type][0]]): raw for raw in raws}
            assert sorted(r[0] for r in v2) == sorted(by_id), dest.type
            for audience_id, *row in v2:
                check_v2_row(dest.type, by_id[audience_id], tuple(row))
    assert None in all_sizes, "some sandbox audiences have no size yet"
    assert any(size is not None and size > 2**31 for size in all_sizes), "sizes above 2^31 survive"
