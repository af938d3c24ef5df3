"""The built-in sandbox stays off the production path: chosen in one place, never mounted for a real API."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from audit_assets.config import parse_config
from audit_assets.resources import connection_for, sandbox_transport
from audit_assets.sandbox.transport import SandboxTransport
from audit_assets_tests.conftest import Workspace, sandbox_meta

PACKAGE = Path(__file__).resolve().parents[1] / "audit_assets"
CHOOSER = PACKAGE / "resources.py"


def sandbox_imports(module: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("audit_assets.sandbox"):
            names.append(node.module or "")
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.startswith("audit_assets.sandbox")]
    return [n for n in names if n != "audit_assets.sandbox_hosts"]


def test_no_production_module_but_the_chooser_imports_the_sandbox() -> None:
    production = [p for p in PACKAGE.rglob("*.py") if PACKAGE / "sandbox" not in p.parents]
    importing = {p.relative_to(PACKAGE).as_posix() for p in production if sandbox_imports(p)}
    assert importing == {CHOOSER.relative_to(PACKAGE).as_posix()}


def test_only_a_sandbox_url_gets_the_emulators_and_their_demo_credentials(workspace: Workspace) -> None:
    real = {"id": "real", "type": "meta", "credentials": {"access_token": {"env": "UNSET_TOKEN_VAR"}}}
    config = parse_config(workspace.document([sandbox_meta(), real]), "layering")
    sandbox, production = (connection_for(d, config.snapshots) for d in config.destinations)

    assert production.base_url == "https://graph.facebook.com"
    assert sandbox_transport(production.base_url) is None  # httpx's own network transport
    assert production.public_credentials == {} and production.credential_env == {
        "access_token": "UNSET_TOKEN_VAR"
    }
    assert isinstance(sandbox_transport(sandbox.base_url), SandboxTransport)
    with sandbox.open(logging.getLogger("test")) as (client, _):
        assert [a.id for a in client.discover_accounts() if a.active] == ["1000000001", "1000000002"]
