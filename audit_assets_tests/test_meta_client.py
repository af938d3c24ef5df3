"""What only the Meta client does, end to end through real httpx against the Graph emulator.

Field selection, paging on our own host, a page too heavy for Graph, the throttle cap over several
waits, and what a snapshot keeps of an audience. What every client does (paging, throttles, retries,
refusals, the v1 view) is tested once for every platform in test_client_contract.py.
Only the platform is replaced (by the sandbox emulator) and the clock (a recording ``sleep``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from audit_assets.platforms import meta
from audit_assets.platforms.base import AuthError, BadResponse, PageTooLarge, ThrottleCapExceeded
from audit_assets.platforms.http import RetrySettings
from audit_assets.sandbox.meta import MetaGraphSandbox
from audit_assets.sandbox.world import FaultKind, Faults, SandboxAccount
from audit_assets_tests.client_contracts import FETCHED_AT, contract_of
from audit_assets_tests.conftest import CLOSED, RETAIL, TRAVEL
from audit_assets_tests.platform_harness import Connect, PlatformClients, active_accounts, listed, spooled

META = contract_of("meta")
TOKEN = META.credentials["access_token"]
sandbox = META.emulator  # RETAIL, TRAVEL and CLOSED on a fixed day; ``cls`` for a changed Graph
SNAPSHOTS = META.snapshots()


@pytest.fixture
def connect(platform_clients: PlatformClients) -> Connect:
    """A Meta client over real httpx against an emulator, with the demo token."""
    return META.connector(platform_clients)


# --- audience listing -----------------------------------------------------------------------------------


def test_every_known_field_is_requested(connect: Connect) -> None:
    """Graph returns only ids unless fields are named, so every field we keep must be asked for."""
    emulator = sandbox((RETAIL,))
    harness = connect(emulator)

    audiences = listed(harness.client, RETAIL)

    (request,) = META.listings(emulator)
    requested = request.url.params["fields"].split(",")
    assert set(requested) == {f.api_name for f in meta.FIELDS}
    assert len(requested) == len(meta.FIELDS)
    assert all("approximate_count_lower_bound" in a and "name" in a for a in audiences)


def test_paging_stays_on_configured_host(connect: Connect) -> None:
    """Paging uses the after cursor on our own URL, not the platform's ``next`` (which may point elsewhere)."""

    class ForeignNext(MetaGraphSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            response = super().respond(request)
            body = json.loads(response.content)
            if "next" in body.get("paging", {}):
                body["paging"]["next"] = body["paging"]["next"].replace(
                    "meta.sandbox.invalid", "elsewhere.sandbox.invalid"
                )
            return httpx.Response(response.status_code, json=body)

    emulator = sandbox((RETAIL,), cls=ForeignNext)
    harness = connect(emulator, page_size=3)

    assert [a["id"] for a in listed(harness.client, RETAIL)] == META.ids(RETAIL)
    assert {r.url.host for r in emulator.requests} == {"meta.sandbox.invalid"}


# --- throttling --------------------------------------------------------------------------------------------


def test_throttle_cap_counts_total_waiting(connect: Connect) -> None:
    """The cap bounds the whole snapshot's waiting, not each wait separately."""
    faults = Faults().add(FaultKind.THROTTLE, times=2, wait_minutes=1, path_contains="customaudiences")
    harness = connect(sandbox((RETAIL,), faults=faults), retry=RetrySettings(max_throttle_wait_seconds=90))

    with pytest.raises(ThrottleCapExceeded, match="60s already waited"):
        listed(harness.client, RETAIL)

    assert harness.sleeps == [60.0]


# --- failures -----------------------------------------------------------------------------------------------


def test_token_echoed_by_the_platform_is_redacted(connect: Connect) -> None:
    """Some platforms quote the token they refused; our message must still not contain it."""

    class EchoingGraph(MetaGraphSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            supplied = request.headers.get("authorization", "").removeprefix("Bearer ")
            return self.error(request, 400, 190, f"Invalid OAuth access token: {supplied}")

    harness = connect(sandbox(cls=EchoingGraph))

    with pytest.raises(AuthError) as info:
        active_accounts(harness.client)

    assert TOKEN not in str(info.value)
    assert "[redacted]" in str(info.value)


# --- snapshots ------------------------------------------------------------------------------------------------


def test_snapshot_counts_every_audience_of_every_active_account(connect: Connect, spool_root: Path) -> None:
    """row_count is what the warehouse is told to expect; it must match what the platform listed."""
    snapshot = SNAPSHOTS.take(connect(sandbox(), page_size=3))
    try:
        assert snapshot.row_count == RETAIL.audiences + TRAVEL.audiences
        assert snapshot.audiences_by_account == {RETAIL.id: 8, TRAVEL.id: 5}
        assert snapshot.accounts_not_found == ()
        assert snapshot.drift_fields == frozenset()
        assert snapshot.fetched_at == FETCHED_AT
        assert pq.ParquetFile(snapshot.path).metadata.num_rows == 13
    finally:
        snapshot.discard()


def test_ad_account_ids_narrow_the_snapshot_and_report_missing(connect: Connect, spool_root: Path) -> None:
    """An allow-list keeps only those accounts; ids that are not active are reported, not silently dropped."""
    emulator = sandbox()
    snapshot = SNAPSHOTS.take(
        connect(emulator), ad_account_ids=frozenset({TRAVEL.id, CLOSED.id, "9999999999"})
    )
    try:
        assert snapshot.audiences_by_account == {TRAVEL.id: 5}
        assert snapshot.row_count == 5
        assert snapshot.accounts_not_found == (CLOSED.id, "9999999999")
        assert all(RETAIL.id not in r.url.path for r in emulator.requests)
    finally:
        snapshot.discard()


class WrongTypeGraph(MetaGraphSandbox):
    """Meta starts sending the size as text for one audience: a platform change we must not guess at."""

    @staticmethod
    def _audience(account: SandboxAccount, index: int, day: dt.date) -> dict[str, Any]:
        audience = MetaGraphSandbox._audience(account, index, day)
        if index == 5:
            audience["approximate_count_lower_bound"] = "about 5,000"
        return audience


def test_wrong_field_type_names_audience_and_field(connect: Connect, spool_root: Path) -> None:
    """A value that does not fit its column fails the snapshot, naming exactly what was wrong."""
    harness = connect(sandbox((RETAIL,), cls=WrongTypeGraph))

    with pytest.raises(BadResponse) as info:
        SNAPSHOTS.take(harness)

    message = str(info.value)
    assert META.ids(RETAIL)[5] in message
    assert "approximate_count_lower_bound" in message


def test_spool_is_removed_when_the_snapshot_fails(connect: Connect, spool_root: Path) -> None:
    """A failed snapshot leaves nothing behind, even after some rows were already written to disk."""
    harness = connect(sandbox((RETAIL,), cls=WrongTypeGraph), page_size=2)

    with pytest.raises(BadResponse):
        SNAPSHOTS.take(harness, chunk_rows=2)  # rows 0-3 are flushed to Parquet before index 5 fails

    assert list(spool_root.iterdir()) == []


def test_spool_is_removed_by_discard(connect: Connect, spool_root: Path) -> None:
    """After the warehouse has appended it, discard() frees the disk; calling it twice is harmless."""
    snapshot = SNAPSHOTS.take(connect(sandbox()))
    assert snapshot.path.exists()
    assert snapshot.path.is_relative_to(spool_root)

    snapshot.discard()
    snapshot.discard()

    assert not snapshot.path.exists()
    assert list(spool_root.iterdir()) == []


def test_unknown_field_is_kept_and_reported_as_drift(connect: Connect, spool_root: Path) -> None:
    """A field Meta adds later is not lost: it is in ht_raw at once and reported for a schema update."""

    class NewFieldGraph(MetaGraphSandbox):
        def respond(self, request: httpx.Request) -> httpx.Response:
            response = super().respond(request)
            if not request.url.path.endswith("/customaudiences"):
                return response
            body = json.loads(response.content)
            for audience in body["data"]:
                audience["audience_quality_score"] = {"score": 7}
            return httpx.Response(response.status_code, json=body)

    snapshot = SNAPSHOTS.take(connect(sandbox((RETAIL,), cls=NewFieldGraph)))
    try:
        assert snapshot.drift_fields == frozenset({"audience_quality_score"})
        rows = spooled(snapshot).to_pylist()
        assert len(rows) == RETAIL.audiences
        assert all(json.loads(r["ht_raw"])["audience_quality_score"] == {"score": 7} for r in rows)
        assert "audience_quality_score" not in rows[0]
    finally:
        snapshot.discard()


def test_spooled_rows_hold_the_audience_as_returned(connect: Connect, spool_root: Path) -> None:
    """ht_raw is the platform's object verbatim; typed columns and ht_* columns are filled from it."""
    emulator = sandbox((RETAIL, TRAVEL))
    reference = connect(emulator)
    as_listed = {a["id"]: a for acct in (RETAIL, TRAVEL) for a in listed(reference.client, acct)}
    sync_audience = META.ids(RETAIL)[1]

    snapshot = SNAPSHOTS.take(connect(emulator), sync_ids={sync_audience: "90210"}, chunk_rows=3)
    try:
        table = spooled(snapshot, max_bytes=1)  # each row group a batch of its own
        assert table.column_names == [c.name for c in snapshot.columns]
        rows = table.to_pylist()
        assert len(rows) == snapshot.row_count == len(as_listed)
        for row in rows:
            audience = as_listed[row["id"]]
            assert json.loads(row["ht_raw"]) == audience
            assert row["ht_snapshot_id"] == SNAPSHOTS.identity.snapshot_id
            assert row["ht_snapshot_date"] == SNAPSHOTS.identity.snapshot_date
            assert row["ht_fetched_at"] == FETCHED_AT
            assert row["ht_run_id"] == SNAPSHOTS.identity.run_id
            assert row["ht_destination"] == "meta"
            assert row["ht_destination_id"] == "sandbox_meta"
            assert row["ht_ad_account_id"] == audience["account_id"]
            assert row["ht_sync_id"] == ("90210" if row["id"] == sync_audience else None)
            assert row["name"] == audience["name"]
            assert row["approximate_count_lower_bound"] == audience["approximate_count_lower_bound"]
            assert json.loads(row["delivery_status"]) == audience["delivery_status"]
            assert row["is_value_based"] is False
            assert row["pixel_id"] is None  # absent from the API object -> null, never invented
            # A JSON field some audiences of a run have and others lack: SQL null where absent, not 'null'.
            spec = audience.get("lookalike_spec")
            assert row["lookalike_spec"] == (
                None if spec is None else json.dumps(spec, separators=(",", ":"))
            )
        assert {"lookalike_spec" in a for a in as_listed.values()} == {True, False}
    finally:
        snapshot.discard()


def test_raw_keeps_nulls_and_non_ascii_exactly(connect: Connect, spool_root: Path) -> None:
    """ht_raw is what the API returned: an explicit null stays a key and names keep their characters."""

    class NullsGraph(MetaGraphSandbox):
        @staticmethod
        def _audience(account: SandboxAccount, index: int, day: dt.date) -> dict[str, Any]:
            audience = MetaGraphSandbox._audience(account, index, day)
            return audience | {"description": None, "name": f"Käufer 🛒 {index}"}

    snapshot = SNAPSHOTS.take(connect(sandbox((TRAVEL,), cls=NullsGraph)))
    try:
        rows = spooled(snapshot).to_pylist()
        assert len(rows) == TRAVEL.audiences
        for row in rows:
            raw = json.loads(row["ht_raw"])
            assert "description" in raw
            assert raw["description"] is None
            assert row["description"] is None
            assert raw["name"] == row["name"]
            assert row["name"].startswith("Käufer 🛒 ")
    finally:
        snapshot.discard()


def test_a_page_graph_finds_too_heavy_is_asked_again_smaller_from_the_same_cursor(connect: Connect) -> None:
    """HTTP 500, code 1, "reduce the amount of data": halve the limit, not retry the same request."""
    emulator = sandbox((RETAIL,), heaviest_page=3)
    harness = connect(emulator, page_size=100)

    audiences = listed(harness.client, RETAIL)

    assert [a["id"] for a in audiences] == META.ids(RETAIL)
    limits = [int(r.url.params["limit"]) for r in META.listings(emulator)]
    assert limits == [100, 50, 25, 12, 6, 3, 3, 3]  # shrunk on page 1, then 3 + 3 + 2 audiences
    assert harness.sleeps == [], "a page too heavy is not a transient failure to wait out"


def test_a_page_too_heavy_even_for_one_audience_fails_the_listing(connect: Connect) -> None:
    harness = connect(sandbox((RETAIL,), heaviest_page=0))
    with pytest.raises(PageTooLarge, match="reduce the amount of data"):
        listed(harness.client, RETAIL)
