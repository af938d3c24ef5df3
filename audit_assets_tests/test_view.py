"""The combined v1 view: exact columns, order, types and the per-platform mapping."""

from __future__ import annotations

import dagster as dg
import duckdb

from audit_assets.columns import Column, ColumnType
from audit_assets.platforms import PLATFORMS
from audit_assets.views import V1_NAME, V1Mapping, ViewDefinition, ViewSource
from audit_assets.warehouse import sql
from audit_assets.warehouse.duckdb import DUCKDB
from audit_assets_tests.conftest import Workspace, failure_messages, sandbox_meta

VIEW = f"hightouch_audit.{V1_NAME}"
EXPECTED_COLUMNS = [
    ("ad_account_id", "VARCHAR"),
    ("audience_id", "VARCHAR"),
    ("audience_name", "VARCHAR"),
    ("audience_size", "BIGINT"),
    ("ht_fetched_at", "TIMESTAMP WITH TIME ZONE"),
    ("ht_destination", "VARCHAR"),
    ("ht_destination_id", "VARCHAR"),
    ("ht_sync_id", "VARCHAR"),
]


def view_columns(workspace: Workspace) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in workspace.query(f"DESCRIBE {VIEW}")]


def test_view_has_exactly_the_v1_columns_in_order(workspace: Workspace) -> None:
    assert workspace.run(workspace.config([sandbox_meta()])).success
    assert view_columns(workspace) == EXPECTED_COLUMNS


def test_view_maps_meta_lower_bound_and_minus_one_to_null(workspace: Workspace) -> None:
    result = workspace.run(workspace.config([sandbox_meta(sync_ids={"23850001000000000": "777"})]))
    assert result.success, failure_messages(result)
    joined = workspace.query(
        f"""SELECT t.approximate_count_lower_bound, v.audience_size, v.audience_name = t.name,
                   v.ad_account_id = t.ht_ad_account_id, v.ht_fetched_at = t.ht_fetched_at, v.ht_sync_id
            FROM {VIEW} v JOIN hightouch_audit.meta_sandbox_meta_audiences t ON v.audience_id = t.id"""
    )
    assert len(joined) == 13
    unavailable = [r for r in joined if r[0] == -1]
    assert unavailable, "the sandbox serves lookalikes whose size is unavailable (-1)"
    assert all(r[1] is None for r in unavailable)
    assert all(r[1] == r[0] for r in joined if r[0] != -1)
    assert all(r[2] and r[3] and r[4] for r in joined)
    assert sorted(r[5] for r in joined if r[5]) == ["777"]


def test_view_is_created_empty_with_the_right_shape_before_any_snapshot(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta()])
    result = workspace.run(config, selection=[dg.AssetKey(["hightouch_audit", V1_NAME])])
    assert result.success, failure_messages(result)
    assert view_columns(workspace) == EXPECTED_COLUMNS
    assert workspace.query(f"SELECT count(*) FROM {VIEW}") == [(0,)]
    metadata = result.asset_materializations_for_node(f"hightouch_audit__{V1_NAME}")[0].metadata
    assert metadata["tables_in_view"].value == ["meta_sandbox_meta_audiences"]


def test_a_destination_materialized_alone_appears_in_the_view_at_once(workspace: Workspace) -> None:
    """The view unions every configured table, creating empty ones, so it never needs a rebuild."""
    config = workspace.config([sandbox_meta("a"), sandbox_meta("b")])
    view_only = [dg.AssetKey(["hightouch_audit", V1_NAME])]
    assert workspace.run(config, selection=view_only).success
    assert workspace.run(config, selection=[dg.AssetKey(["hightouch_audit", "meta_b_audiences"])]).success
    assert workspace.query(f"SELECT ht_destination_id, count(*) FROM {VIEW} GROUP BY 1") == [("b", 13)]


def test_view_unions_every_destination_and_counts_each_snapshot(workspace: Workspace) -> None:
    config = workspace.config([sandbox_meta("a"), sandbox_meta("b")])
    assert workspace.run(config).success
    assert workspace.run(config).success
    rows = workspace.query(
        f"SELECT ht_destination, ht_destination_id, count(DISTINCT ht_fetched_at), count(*) FROM {VIEW} GROUP BY ALL ORDER BY 2"
    )
    assert rows == [("meta", "a", 2, 26), ("meta", "b", 2, 26)]


def test_a_new_platform_contributes_only_a_mapping() -> None:
    """The view SQL comes from mappings alone: any table and column names, no platform branches."""
    mapping = V1Mapping(
        audience_id="segment_id", audience_name="title", audience_size="members", size_null_values=(-1, -2)
    )
    statement = sql.create_view(
        DUCKDB,
        "hightouch_audit",
        V1_NAME,
        ViewDefinition(
            (
                ViewSource("other_x1_audiences", mapping, ()),
                ViewSource("meta_y_audiences", PLATFORMS["meta"].v1, PLATFORMS["meta"].columns),
            )
        ),
    )
    assert "CASE WHEN members IN (-1, -2) THEN NULL ELSE members END" in statement
    with duckdb.connect() as conn:  # and the statement really runs, unioning both shapes
        conn.execute("CREATE SCHEMA hightouch_audit")
        other = (*PLATFORMS["meta"].columns[:8], *(Column(n, ColumnType.STRING) for n in ("segment_id", "title")),
                 Column("members", ColumnType.INTEGER))  # fmt: skip
        conn.execute(sql.create_table(DUCKDB, "hightouch_audit", "other_x1_audiences", other))
        conn.execute(
            sql.create_table(DUCKDB, "hightouch_audit", "meta_y_audiences", PLATFORMS["meta"].columns)
        )
        conn.execute(
            "INSERT INTO hightouch_audit.other_x1_audiences (ht_ad_account_id, segment_id, title, members) "
            "VALUES ('9', 's1', 'One', -2), ('9', 's2', 'Two', 42)"
        )
        conn.execute(statement)
        rows = conn.execute(
            f"SELECT audience_id, audience_name, audience_size FROM {VIEW} ORDER BY 1"
        ).fetchall()
    assert rows == [("s1", "One", None), ("s2", "Two", 42)]
