"""Benchmark: the snapshot against the raw fetch ceiling and dlt, side by side on the same server and data.

Every measurement runs in a fresh process (so its peak memory is its own) against one Meta emulator
served over real HTTP on 127.0.0.1 (``bench.server``: answers replayed from memory, so the server is
not the limit), with the same page size:
- ``ceiling``: raw httpx keep-alive paging + JSON parse, nothing kept: the fastest a client can fetch;
- ``snapshot``: this project's snapshot as the asset takes it (client, retry policy, typing, Parquet
  spool, one-transaction DuckDB append), Dagster start-up excluded;
- ``dlt``: dlt's ``rest_api`` source into DuckDB with parquet files (dlt is a bench extra only);
then what 50 ms of latency adds to a snapshot of 20 small accounts and to one of 4 large ones, against
the ideal for its concurrency, the definitions of 500 destinations, and the README's latest-size query
on a long history.

    .venv/bin/python -m bench.throughput --audiences 200000          # --audiences 1000000 for memory
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PAGE_SIZE = 100
LATENCY = 0.05
# (accounts, audiences per account): many small accounts (4 pages each), and a few large ones (50 pages
# each, far more than the snapshot types and hands over at once).
LATENCY_SCENARIOS = ((20, 400), (4, 5_000))
DESTINATIONS = 500
TOKEN = "sandbox-meta-demo-token"


# --- measurements, each run in its own process ------------------------------------------------------------


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _account_ids(url: str) -> list[str]:
    import httpx

    answer = httpx.get(f"{url}/v25.0/me/adaccounts", params={"limit": 500}, headers=_auth(), timeout=60)
    return [a["id"].removeprefix("act_") for a in answer.json()["data"]]


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def measure_ceiling(url: str, tmp: Path) -> dict[str, float]:
    """Page every account with one keep-alive client and parse each page; keep only the count."""
    import httpx

    from audit_assets.platforms.meta import FIELD_LIST

    rows = 0
    with httpx.Client(headers=_auth(), timeout=60, trust_env=False) as http:
        for account in _account_ids(url):
            next_url: str | None = f"{url}/v25.0/act_{account}/customaudiences"
            params: dict[str, Any] | None = {"fields": FIELD_LIST, "limit": PAGE_SIZE}
            while next_url:
                body = json.loads(http.get(next_url, params=params).content)
                rows += len(body["data"])
                next_url, params = body.get("paging", {}).get("next"), None
    return {"rows": rows}


def measure_snapshot(url: str, tmp: Path) -> dict[str, float]:
    """The asset's own path, minus Dagster: the platform client, take_snapshot and the DuckDB append,
    each phase timed: taking (fetch, typing, spool) runs while the platform answers, loading after it."""
    import httpx

    from audit_assets.platforms import meta
    from audit_assets.platforms.base import AuthContext, ClientSettings
    from audit_assets.platforms.http import ApiSession, Redactor, RetrySettings
    from audit_assets.snapshot import SnapshotIdentity, take_snapshot
    from audit_assets.warehouse.duckdb import DuckDbAuditWarehouse

    log = logging.getLogger("bench")
    auth = meta.auth(AuthContext({"access_token": TOKEN}, None, lambda _: None))
    with httpx.Client(auth=auth, trust_env=False, timeout=60) as http:
        session = ApiSession(
            client=http, platform_title="Meta", classify=meta.classify, settings=RetrySettings(),
            redact=Redactor([TOKEN]), log=log,
        )  # fmt: skip
        client = meta.PLATFORM.connect(ClientSettings(url, None, {"access_token": TOKEN}, PAGE_SIZE), session)
        start = time.perf_counter()
        snapshot = take_snapshot(
            client=client, platform=meta.PLATFORM,
            identity=SnapshotIdentity("bench", dt.date.today(), "bench-run", "meta", "bench"),
            sync_ids={}, ad_account_ids=None, log=log, interrupt=session.interrupt,
        )  # fmt: skip
    taken = time.perf_counter()
    with DuckDbAuditWarehouse(database=str(tmp / "bench.duckdb")).session() as warehouse:
        warehouse.append("meta_bench_audiences", snapshot)
    return {"rows": snapshot.row_count, "taking": taken - start, "loading": time.perf_counter() - taken}


def measure_dlt(url: str, tmp: Path) -> dict[str, float]:
    """dlt rest_api -> DuckDB, loading parquet files, every account as one resource of one table."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    from audit_assets.platforms.meta import FIELD_LIST

    source = rest_api_source(
        {
            "client": {
                "base_url": f"{url}/v25.0/",
                "auth": {"type": "bearer", "token": TOKEN},
                "paginator": {"type": "json_link", "next_url_path": "paging.next"},
            },
            "resource_defaults": {
                "table_name": "audiences",
                "endpoint": {"data_selector": "data", "params": {"fields": FIELD_LIST, "limit": PAGE_SIZE}},
            },
            "resources": [
                {"name": f"account_{a}", "endpoint": {"path": f"act_{a}/customaudiences"}}
                for a in _account_ids(url)
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        destination=dlt.destinations.duckdb(str(tmp / "dlt.duckdb")),
        dataset_name="bench",
        pipelines_dir=str(tmp / "dlt"),
    )
    pipeline.run(source, loader_file_format="parquet")
    with pipeline.sql_client() as sql:
        return {"rows": int(sql.execute_sql("SELECT count(*) FROM audiences")[0][0])}


MEASUREMENTS: dict[str, Callable[[str, Path], dict[str, float]]] = {
    "ceiling": measure_ceiling,
    "snapshot": measure_snapshot,
    "dlt": measure_dlt,
}


def child(mode: str, url: str) -> None:
    # Every mode imports the same libraries first, so the memory each adds is its own.
    import dagster  # noqa: F401
    import duckdb  # noqa: F401
    import httpx  # noqa: F401
    import pyarrow  # noqa: F401

    import audit_assets.snapshot  # noqa: F401

    if mode == "dlt":
        import dlt  # noqa: F401
        from dlt.sources.rest_api import rest_api_source  # noqa: F401
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    baseline = _rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        measured = MEASUREMENTS[mode](url, Path(tmp))
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, **measured, "seconds": seconds, "added_mib": peak - baseline}))


def child_definitions() -> None:
    """Load the code location of 500 destinations as a code server does, timing our part of it."""
    start = time.perf_counter()
    import dagster  # noqa: F401

    imported = time.perf_counter()
    from audit_assets.definitions import defs

    defs.get_repository_def().get_all_jobs()  # as a code server does: the repository is resolved, jobs built
    done = time.perf_counter()
    print(json.dumps({"import_dagster": imported - start, "project": done - imported}))


def child_history(rows: int) -> None:
    """A history of ``rows`` audience rows in one DuckDB file, then the README's latest-size query."""
    import duckdb

    from audit_assets.platforms import meta
    from audit_assets.views import ViewDefinition, ViewSource
    from audit_assets.warehouse.duckdb import DuckDbAuditWarehouse

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "history.duckdb"
        url = os.environ["BENCH_URL"]
        measure_snapshot(url, Path(tmp))  # one real snapshot: the table, its columns, the view
        (Path(tmp) / "bench.duckdb").rename(db)
        with DuckDbAuditWarehouse(database=str(db)).session() as session:
            source = ViewSource(
                "meta_bench_audiences", meta.PLATFORM.v1, meta.PLATFORM.columns, meta.PLATFORM.v2
            )
            session.replace_views(ViewDefinition((source,)))
        with duckdb.connect(str(db)) as conn:
            conn.execute("SET preserve_insertion_order = false")
            table = "hightouch_audit.meta_bench_audiences"
            per_day = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            days = math.ceil(rows / per_day)
            conn.execute(
                f"INSERT INTO {table} SELECT t.* REPLACE ("  # noqa: S608
                "ht_snapshot_id || '-' || d AS ht_snapshot_id, ht_snapshot_date - d::INTEGER AS ht_snapshot_date, "
                "ht_fetched_at - to_days(d::INTEGER) AS ht_fetched_at, '{}'::JSON AS ht_raw) "
                f"FROM {table} AS t, range(1, {days}) AS r(d)"
            )
            total = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
        timings = []
        for _ in range(5):
            with duckdb.connect(str(db), read_only=True) as conn:
                start = time.perf_counter()
                conn.execute(LATEST_QUERY).fetchall()
                timings.append(time.perf_counter() - start)
        reports = []  # the change report asset's reads for the latest day, in the warehouse's own session
        for _ in range(5):
            with DuckDbAuditWarehouse(database=str(db)).session() as session:
                start = time.perf_counter()
                session.change_report(dt.date.today(), history_days=30, limit=20, shrink_percent=20)
                reports.append(time.perf_counter() - start)
    median = len(timings) // 2
    print(
        json.dumps(
            {"rows": total, "seconds": sorted(timings)[median], "report_seconds": sorted(reports)[median]}
        )
    )


# The README's "Latest size of every audience" query.
LATEST_QUERY = """
SELECT * FROM hightouch_audit.external_audiences_metadata_v1
QUALIFY row_number() OVER (PARTITION BY ht_destination_id, audience_id ORDER BY ht_fetched_at DESC) = 1
"""


# --- the driver --------------------------------------------------------------------------------------------


@contextmanager
def server(accounts: int, audiences: int, latency: float = 0.0) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.server", "--accounts", str(accounts), "--audiences", str(audiences),
         "--latency", str(latency)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_child(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.throughput", *args],
        check=True, capture_output=True, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["seconds"])
    middle = ordered[len(ordered) // 2]
    return {**middle, "added_mib": max(r["added_mib"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--audiences", type=int, default=200_000, help="total audiences, over --accounts")
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each throughput measurement")
    parser.add_argument("--history-rows", type=int, default=18_000_000)
    parser.add_argument("--only", nargs="*", default=["throughput", "latency", "definitions", "history"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "definitions":
        child_definitions()
        return
    if args.child == "history":
        child_history(args.history_rows)
        return
    if args.child:
        child(args.child, args.url)
        return

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores")
    if "throughput" in args.only:
        throughput(args.audiences, args.accounts, args.repeat)
    if "latency" in args.only:
        latency()
    if "definitions" in args.only:
        definitions()
    if "history" in args.only:
        history(args.history_rows)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def throughput(audiences: int, accounts: int, repeat: int) -> None:
    with server(accounts, audiences // accounts) as url:
        run_child("--child", "ceiling", "--url", url)  # warm the server's replay cache
        results = {}
        for mode in MEASUREMENTS:  # interleaved, so drifting load hits every mode alike
            results[mode] = []
        for _ in range(repeat):
            for mode in MEASUREMENTS:
                results[mode].append(run_child("--child", mode, "--url", url))
    summary = {mode: median_of(runs) for mode, runs in results.items()}
    print(
        f"\n{audiences:,} audiences over {accounts} accounts, {PAGE_SIZE} per page; median of {repeat} runs"
    )
    print(f"{'':<10} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'peak MiB added':>15}")
    rate = {}
    for mode, r in summary.items():
        rate[mode] = r["rows"] / r["seconds"]
        print(f"{mode:<10} {r['rows']:>9} {r['seconds']:>8.2f} {rate[mode]:>9.0f} {r['added_mib']:>15.0f}")
    print(f"snapshot / ceiling: {rate['snapshot'] / rate['ceiling']:.2f}x (goal >= 0.6x)")
    print(f"snapshot / dlt:     {rate['snapshot'] / rate['dlt']:.2f}x (goal >= 2x)")
    print(f"snapshot peak memory added: {summary['snapshot']['added_mib']:.0f} MiB (goal <= 250 MiB at 1M)")
    snapshot, ceiling = summary["snapshot"], summary["ceiling"]
    print(
        f"snapshot in phases (its median run): taking it (fetch, typing, spool) {snapshot['taking']:.2f}s, "
        f"ceiling / taking {ceiling['seconds'] / snapshot['taking']:.2f}x; then loading it into DuckDB "
        f"(one transaction, once the fetch is over) {snapshot['loading']:.2f}s"
    )


def latency() -> None:
    """What 50 ms per request adds to a snapshot, against the least it could add, for many small accounts
    and for a few large ones."""
    for accounts, audiences in LATENCY_SCENARIOS:
        latency_of(accounts, audiences)


def latency_of(accounts: int, audiences: int) -> None:
    from audit_assets.platforms.meta import PLATFORM

    walls = {}
    for delay in (0.0, LATENCY):
        with server(accounts, audiences, delay) as url:
            run_child("--child", "snapshot", "--url", url)  # warm the replay cache
            walls[delay] = sorted(
                run_child("--child", "snapshot", "--url", url)["seconds"] for _ in range(3)
            )[1]
    added = walls[LATENCY] - walls[0.0]
    pages = math.ceil(audiences / PAGE_SIZE)
    requests = 1 + accounts * pages
    workers = PLATFORM.concurrent_accounts
    ideal = (1 + math.ceil(accounts / workers) * pages) * LATENCY  # discovery, then waves of accounts
    print(
        f"\n{accounts} accounts of {audiences:,} audiences, {requests} requests, {workers} accounts at a time: "
        f"{LATENCY * 1000:.0f} ms per request adds {added:.2f}s (wall {walls[LATENCY]:.2f}s vs "
        f"{walls[0.0]:.2f}s, medians of 3); the least it could add: {ideal:.2f}s at {workers} in flight "
        f"({requests * LATENCY:.2f}s one at a time); added / ideal {added / ideal:.2f}x (goal <= 1.3x)"
    )


def definitions() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "audit_assets.yaml"
        destinations = [
            {"id": f"bench_{n}", "type": "meta", "base_url": "https://meta.sandbox.invalid"}
            for n in range(DESTINATIONS)
        ]
        document = {"start_date": "2026-11-01", "warehouses": {"local": {"type": "duckdb", "path": f"{tmp}/a.duckdb"}},
                    "destinations": destinations}  # fmt: skip
        config.write_text(json.dumps(document))
        runs = [
            run_child("--child", "definitions", env={"AUDIT_ASSETS_CONFIG": str(config)}) for _ in range(3)
        ]
    project = sorted(r["project"] for r in runs)[1]
    dagster = sorted(r["import_dagster"] for r in runs)[1]
    print(f"\n{DESTINATIONS} destinations: definitions load in {project:.2f}s of our own time beyond "
          f"`import dagster` ({dagster:.2f}s); {project / DESTINATIONS * 1000:.1f} ms per destination (goal <= 1s)")  # fmt: skip


def history(rows: int) -> None:
    with server(4, 2500) as url:
        result = run_child("--child", "history", env={"BENCH_URL": url})
    print(
        f"\nlatest-size query over {result['rows']:,} rows: {result['seconds']:.2f}s (median of 5; goal <= 1s)"
    )
    print(f"change report of the latest day on that history: {result['report_seconds']:.2f}s (median of 5)")


if __name__ == "__main__":
    main()
