"""The Dagster UI's own API, driven as the UI drives it: ``dagster dev`` (webserver and daemons) in a
subprocess, a partition materialization and a multi-day backfill launched over GraphQL, then the
partition statuses, materialization metadata and column lineage read back the same way."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit_assets.assets import TERMINATED
from audit_assets.sandbox.meta import MetaGraphSandbox
from audit_assets.sandbox.world import DEFAULT_ACCOUNTS, FaultKind, Faults
from audit_assets_tests.conftest import RETAIL, TRAVEL, Workspace, sandbox_meta

LOCATION = "audit_assets.definitions"
META = ["hightouch_audit", "meta_sandbox_meta_audiences"]
VIEW = ["hightouch_audit", "external_audiences_metadata_v1"]
DAEMON_PACE = Path(__file__).with_name("daemon_pace")  # its sitecustomize paces the daemon at 1 s


class Ui:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, document: str, **variables: Any) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/graphql", json={"query": document, "variables": variables}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def wait_for(self, what: str, done: Callable[[], bool], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    def launch(self, partition: str) -> str:
        """Launch the job for one day, as the Materialize dialog does; return the run's id."""
        launched = self.query(
            """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
                 __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
            p={
                "selector": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": "__repository__",
                    "jobName": "audience_size_report",
                },
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
            },
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        return self.query("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id)[
            "runOrError"
        ]["status"]

    def partition_stats(self, path: list[str]) -> dict[str, int]:
        data = self.query(
            "query($k: [AssetKeyInput!]) { assetNodes(assetKeys: $k) { partitionStats "
            "{ numMaterialized numFailed numMaterializing numPartitions } } }",
            k=[{"path": path}],
        )
        return data["assetNodes"][0]["partitionStats"]

    def latest_metadata(self, path: list[str], partition: str | None = None) -> dict[str, Any]:
        data = self.query(
            """query($k: AssetKeyInput!, $p: [String!]) { assetOrError(assetKey: $k) { ... on Asset {
                 assetMaterializations(limit: 1, partitions: $p) { partition metadataEntries { label __typename
                   ... on IntMetadataEntry { intValue } ... on TimestampMetadataEntry { timestamp }
                   ... on TableMetadataEntry { table { records } }
                   ... on TableColumnLineageMetadataEntry { lineage { columnName
                       columnDeps { assetKey { path } columnName } } } } } } } }""",
            k={"path": path},
            p=[partition] if partition else None,
        )
        (materialization,) = data["assetOrError"]["assetMaterializations"]
        return {e["label"]: e for e in materialization["metadataEntries"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start_ui(workspace: Workspace) -> Iterator[Callable[..., Ui]]:
    """Start ``dagster dev`` on a config of the given destinations (and top-level settings); stop it
    after the test."""
    processes: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(destinations: list[dict[str, Any]], **top: Any) -> Ui:
        home = workspace.root / "dagster_home"
        home.mkdir()
        # The run queue is the daemon's: dequeue every second (Dagster's default is 5) so no run waits on it.
        (home / "dagster.yaml").write_text(
            "telemetry:\n  enabled: false\n"
            "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
            "  config:\n    dequeue_interval_seconds: 1\n"
        )
        config = workspace.write_config(destinations, **top)
        pythonpath = os.pathsep.join(filter(None, [str(DAEMON_PACE), os.environ.get("PYTHONPATH")]))
        port = free_port()
        log = (workspace.root / "dagster_dev.log").open("w")
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "dev", "-m", LOCATION, "-p", str(port)],
            env={
                **os.environ,
                "DAGSTER_HOME": str(home),
                "AUDIT_ASSETS_CONFIG": str(config),
                "PYTHONPATH": pythonpath,
            },
            cwd=workspace.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # dagster dev starts the webserver, daemon and code server beneath it
        )
        processes.append((process, log))
        ui = Ui(f"http://127.0.0.1:{port}")

        def location_loaded() -> bool:
            try:
                data = ui.query(
                    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
                )
            except httpx.HTTPError:
                return False
            entries = data["workspaceOrError"]["locationEntries"]
            return bool(entries) and entries[0]["loadStatus"] == "LOADED"

        ui.wait_for("dagster dev to serve the code location", location_loaded, timeout=120)
        return ui

    yield start
    for process, log in processes:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def ui(start_ui: Callable[..., Ui]) -> Ui:
    return start_ui([sandbox_meta()])


def test_the_ui_launches_a_partition_and_a_backfill_and_shows_the_report(
    ui: Ui, workspace: Workspace
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    run_id = ui.launch(today.isoformat())
    ui.wait_for("the partition run", lambda: ui.run_status(run_id) in ("SUCCESS", "FAILURE"))
    assert ui.run_status(run_id) == "SUCCESS"

    # What the sandbox served today, computed from its generator, not from our SQL.
    served = [
        MetaGraphSandbox._audience(a, i, today)["approximate_count_lower_bound"]
        for a in DEFAULT_ACCOUNTS
        if a.active
        for i in range(a.audiences)
    ]
    metadata = ui.latest_metadata(META, today.isoformat())
    assert metadata["audiences"]["intValue"] == len(served)
    assert metadata["audience_size_total"]["intValue"] == sum(s for s in served if s != -1)
    assert metadata["ht_fetched_at"]["__typename"] == "TimestampMetadataEntry"
    assert len(metadata["largest_audiences"]["table"]["records"]) == len(served)

    # A five-day backfill of both assets, as the Materialize dialog launches it.
    backfill = ui.query(
        """mutation($b: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $b) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        b={
            "partitionsByAssets": [
                {
                    "assetKey": {"path": META},
                    "partitions": {
                        "range": {
                            "start": (today - dt.timedelta(days=4)).isoformat(),
                            "end": today.isoformat(),
                        }
                    },
                },
                {"assetKey": {"path": VIEW}, "partitions": None},
            ]
        },
    )["launchPartitionBackfill"]
    assert backfill["__typename"] == "LaunchBackfillSuccess", backfill
    backfill_id = backfill["backfillId"]

    def backfill_runs() -> list[dict[str, Any]]:
        data = ui.query(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill "
            "{ runs(limit: 10) { runId status tags { key value } } } } }",
            id=backfill_id,
        )
        return data["partitionBackfillOrError"]["runs"]

    def finished() -> bool:
        runs = backfill_runs()
        return len(runs) == 2 and all(r["status"] in ("SUCCESS", "FAILURE") for r in runs)

    ui.wait_for("the backfill's range run and view run", finished, timeout=240)
    runs = backfill_runs()
    assert [r["status"] for r in runs] == ["SUCCESS", "SUCCESS"]
    ranged = [r for r in runs if any(t["key"] == "dagster/asset_partition_range_start" for t in r["tags"])]
    assert len(ranged) == 1, "five days, one run"

    stats = ui.partition_stats(META)
    assert (stats["numMaterialized"], stats["numFailed"], stats["numMaterializing"]) == (2, 0, 0)
    snapshots = workspace.query(
        "SELECT ht_snapshot_date, count(DISTINCT ht_snapshot_id) FROM hightouch_audit.meta_sandbox_meta_audiences "
        "GROUP BY 1 ORDER BY 1"
    )
    assert snapshots == [(today - dt.timedelta(days=1), 1), (today, 2)]

    view = ui.latest_metadata(VIEW)
    assert view["dagster/row_count"]["intValue"] == 3 * len(served)
    lineage = {e["columnName"]: e["columnDeps"] for e in view["dagster/column_lineage"]["lineage"]}
    assert lineage["audience_size"] == [
        {"assetKey": {"path": META}, "columnName": "approximate_count_lower_bound"}
    ]
    assert lineage["ad_account_id"] == [{"assetKey": {"path": META}, "columnName": "ht_ad_account_id"}]


def test_terminating_a_run_ends_a_platform_throttle_wait_at_once(
    start_ui: Callable[..., Ui],
    workspace: Workspace,
    meta_server: Callable[..., tuple[MetaGraphSandbox, dict[str, Any]]],
) -> None:
    """A run held by a platform's throttle (Meta says: come back in 10 minutes) is terminated from the UI:
    it ends in seconds, not minutes, asks the platform nothing more, writes nothing, and says so."""
    throttle = Faults().add(FaultKind.THROTTLE, path_contains=f"act_{TRAVEL.id}/", wait_minutes=10)
    emulator, dest = meta_server(accounts=[RETAIL, TRAVEL], faults=throttle)
    # Dagster's own step retries as shipped: an interrupted step asks for a retry, which a terminated
    # run never makes (dagster-io/dagster#15026).
    ui = start_ui([{**dest, "page_size": 2}], snapshots={})
    run_id = ui.launch(dt.datetime.now(dt.UTC).date().isoformat())

    def waiting_on_the_throttle() -> bool:
        logs = ui.query(
            "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { "
            "... on MessageEvent { message } } } } }",
            id=run_id,
        )["logsForRun"]["events"]
        return any("waiting 600s" in (e.get("message") or "") for e in logs)

    ui.wait_for("the snapshot to wait out the throttle", waiting_on_the_throttle)
    asked = len(emulator.requests)
    terminated = ui.query(
        "mutation($id: String!) { terminateRun(runId: $id) { __typename "
        "... on TerminateRunFailure { message } ... on PythonError { message } } }",
        id=run_id,
    )["terminateRun"]
    assert terminated["__typename"] == "TerminateRunSuccess", terminated
    asked_to_stop = time.monotonic()
    ui.wait_for("the run to be canceled", lambda: ui.run_status(run_id) == "CANCELED", timeout=60)
    # Far below the 600 s the platform asked for, which the step would otherwise sit out.
    assert time.monotonic() - asked_to_stop < 30
    assert len(emulator.requests) == asked, "nothing more is asked of the platform"
    assert not workspace.table_exists("meta_served_meta_audiences")
    # The step says it was terminated, instead of Dagster's "requested a retry" that never comes.
    events = ui.query(
        "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename "
        "... on ExecutionStepFailureEvent { error { message } } } } } }",
        id=run_id,
    )["logsForRun"]["events"]
    failures = [e["error"]["message"] for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
    assert len(failures) == 1 and TERMINATED in failures[0]
    assert not [e for e in events if e["__typename"] == "ExecutionStepUpForRetryEvent"]
