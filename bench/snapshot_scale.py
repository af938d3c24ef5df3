"""Benchmark: one large Meta snapshot, streamed through the Parquet spool vs held in memory.

Runs the Meta emulator as a real HTTP server in its own process, then takes the same snapshot twice,
each in a fresh process so peak memory is its own:
- ``streamed``: what the asset does (take_snapshot -> Parquet spool -> append-only DuckDB warehouse);
- ``in_memory``: the naive way (every page kept in a list -> one pandas DataFrame -> DuckDB insert).

    .venv/bin/python -m bench.snapshot_scale --audiences 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from audit_assets.platforms.meta import MetaClient

ACCOUNTS = 4


def _client(url: str, page_size: int) -> tuple[httpx.Client, MetaClient]:

    from audit_assets.platforms import meta
    from audit_assets.platforms.base import AuthContext, ClientSettings
    from audit_assets.platforms.http import ApiSession, Redactor, RetrySettings
    from audit_assets.sandbox.meta import DEMO_CREDENTIALS

    http = httpx.Client(
        auth=meta.auth(AuthContext(DEMO_CREDENTIALS, None, lambda _: None)), trust_env=False, timeout=60
    )
    session = ApiSession(
        client=http, platform_title="Meta", classify=meta.classify, settings=RetrySettings(),
        redact=Redactor([]), log=logging.getLogger("bench"),
    )  # fmt: skip
    return http, meta.connect(ClientSettings(url, None, DEMO_CREDENTIALS, page_size), session)


def run_streamed(url: str, db: Path, page_size: int) -> int:
    from audit_assets.platforms import meta
    from audit_assets.snapshot import SnapshotIdentity, take_snapshot
    from audit_assets.warehouse.duckdb import DuckDbAuditWarehouse

    http, client = _client(url, page_size)
    with http:
        snapshot = take_snapshot(
            client=client, platform=meta.PLATFORM,
            identity=SnapshotIdentity("bench", dt.date.today(), "bench-run", "meta", "bench"),
            sync_ids={}, ad_account_ids=None, log=logging.getLogger("bench"),
        )  # fmt: skip
    rows = snapshot.row_count
    with DuckDbAuditWarehouse(database=str(db)).session() as session:
        session.append("meta_bench_audiences", snapshot)
    return rows


def run_in_memory(url: str, db: Path, page_size: int) -> int:
    import duckdb
    import pandas as pd

    http, client = _client(url, page_size)
    with http:
        audiences = [
            a
            for account in client.discover_accounts()
            if account.active
            for page in client.audience_pages(account)
            for a in page
        ]
    frame = pd.DataFrame(audiences)
    frame["ht_raw"] = [json.dumps(a) for a in audiences]
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE TABLE audiences AS SELECT * FROM frame")
    return len(frame)


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def child(mode: str, url: str, page_size: int) -> None:
    # Both modes import the same libraries first, so the memory they add is compared fairly.
    import dagster  # noqa: F401
    import duckdb  # noqa: F401
    import pandas  # noqa: F401

    import audit_assets.snapshot
    import audit_assets.warehouse.duckdb  # noqa: F401

    baseline = _rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        rows = (run_streamed if mode == "streamed" else run_in_memory)(
            url, Path(tmp) / "bench.duckdb", page_size
        )
        seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "rows": rows, "seconds": seconds, "added_mib": peak_mib - baseline}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--audiences", type=int, default=200_000, help="total audiences (over 4 accounts)")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--child", choices=["streamed", "in_memory"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.page_size)
        return
    server = subprocess.Popen(
        [sys.executable, "-m", "audit_assets.sandbox.server", "--accounts", str(ACCOUNTS),
         "--audiences", str(args.audiences // ACCOUNTS)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = server.stdout.readline().strip()
        results = {}
        for mode in ("streamed", "in_memory"):
            out = subprocess.run(
                [sys.executable, "-m", "bench.snapshot_scale", "--child", mode, "--url", url,
                 "--page-size", str(args.page_size)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"{'mode':<10} {'rows':>9} {'seconds':>8} {'rows/s':>8} {'peak MiB over imports':>22}")
    for r in results.values():
        rate = r["rows"] / r["seconds"]
        print(f"{r['mode']:<10} {r['rows']:>9} {r['seconds']:>8.1f} {rate:>8.0f} {r['added_mib']:>22.0f}")
    s, m = results["streamed"], results["in_memory"]
    print(f"peak memory, in_memory / streamed: {m['added_mib'] / s['added_mib']:.2f}x; "
          f"time, streamed / in_memory: {s['seconds'] / m['seconds']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
