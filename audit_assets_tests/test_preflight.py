"""Preflight, as a person runs it: the command in a subprocess, and the ``preflight`` job in Dagster."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from audit_assets.definitions import build_definitions
from audit_assets.preflight import JOB_NAME
from audit_assets_tests.conftest import Workspace, failure_messages, run_command, sandbox_meta


def run_preflight(workspace: Workspace, config: Path | None) -> subprocess.CompletedProcess[str]:
    """The command as a person runs it; ``config`` None: the packaged sandbox default."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AUDIT_ASSETS_CONFIG", "AUDIT_ASSETS_TEST_UNSET_TOKEN")
    }
    if config is not None:
        env["AUDIT_ASSETS_CONFIG"] = str(config)
    return run_command(["audit-assets-preflight"], workspace, env)


def test_preflight_says_per_destination_what_works_in_one_line_each(
    workspace: Workspace, meta_server, monkeypatch
) -> None:
    _, served = meta_server("served")
    _, refused = meta_server("refused")
    refused["credentials"] = {"access_token": {"env": "AUDIT_ASSETS_TEST_WRONG_TOKEN"}}
    monkeypatch.setenv("AUDIT_ASSETS_TEST_WRONG_TOKEN", "wrong-token-value-3e8f")
    unset = {
        **served,
        "id": "unset",
        "credentials": {"access_token": {"env": "AUDIT_ASSETS_TEST_UNSET_TOKEN"}},
    }
    config = workspace.write_config([sandbox_meta(), served, refused, unset])

    result = run_preflight(workspace, config)
    assert result.returncode == 1, result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith(("OK", "FAIL"))}
    assert lines["meta/sandbox_meta"].startswith("OK")
    assert "2 active ad accounts · audiences readable in 2/2" in lines["meta/served"]
    assert lines["meta/served"].startswith("OK")
    assert lines["meta/refused"].startswith("FAIL") and "190" in lines["meta/refused"]
    assert lines["meta/unset"] == (
        "FAIL  meta/unset                         environment variable AUDIT_ASSETS_TEST_UNSET_TOKEN "
        "(access_token) is not set where the run executes"
    )
    assert "3 passed, 2 failed" in result.stdout  # the warehouse is the third that passes
    assert "wrong-token-value-3e8f" not in result.stdout + result.stderr
    assert not workspace.table_exists("meta_served_audiences"), "a preflight writes no snapshot"


def test_preflight_passes_on_the_packaged_sandbox(workspace: Workspace) -> None:
    result = run_preflight(workspace, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 passed, 0 failed" in result.stdout


def test_the_preflight_job_logs_each_line_and_fails_naming_what_failed(workspace: Workspace) -> None:
    unset = sandbox_meta("unset", credentials={"access_token": {"env": "AUDIT_ASSETS_TEST_UNSET_TOKEN"}})
    config = workspace.config([sandbox_meta(), unset])
    result = (
        build_definitions(config)
        .resolve_job_def(JOB_NAME)
        .execute_in_process(instance=workspace.instance, raise_on_error=False)
    )
    assert not result.success
    assert "1 of 3 preflight checks failed" in failure_messages(result)
    assert "AUDIT_ASSETS_TEST_UNSET_TOKEN" in failure_messages(result)
    logged = [e.message for e in workspace.instance.all_logs(result.run_id)]
    assert any(m.startswith("OK    meta/sandbox_meta") for m in logged)
    assert not workspace.table_exists("meta_sandbox_meta_audiences")
