"""The configuration contract (shared/design.md, Configuration): what loads, what is refused, and how.

A configuration problem must be caught when definitions load, name the offending field, and never
print a secret's value: the message ends up in the Dagster UI and in CI logs.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from audit_assets.config import (
    CONFIG_ENV_VAR,
    AuditConfig,
    ConfigError,
    SnapshotPolicy,
    load_config,
    parse_config,
)
from audit_assets.platforms import meta

SECRET = "EAAB-real-looking-secret"
SANDBOX_URL = "https://meta.sandbox.invalid"

MINIMAL: dict[str, Any] = {
    "start_date": "2026-01-01",
    "warehouses": {"local": {"type": "duckdb", "path": "data/audit.duckdb"}},
    "destinations": [
        {
            "id": "48213",
            "type": "meta",
            "base_url": "https://graph.facebook.com",
            "credentials": {"access_token": {"env": "META_ACCESS_TOKEN"}},
        }
    ],
}


def document(**top: Any) -> dict[str, Any]:
    """A deep copy of MINIMAL with top-level keys replaced, so tests never share mutable state."""
    doc = copy.deepcopy(MINIMAL)
    doc.update(copy.deepcopy(top))
    return doc


def with_destination(**fields: Any) -> dict[str, Any]:
    """MINIMAL with its one destination's fields overridden (a value of None removes the key)."""
    doc = document()
    dest = doc["destinations"][0]
    for key, value in fields.items():
        if value is None:
            dest.pop(key, None)
        else:
            dest[key] = value
    return doc


def rejection(doc: Any) -> str:
    """The ConfigError message for a document that must be refused."""
    with pytest.raises(ConfigError) as info:
        parse_config(doc, "test.yaml")
    return str(info.value)


# --- what loads -----------------------------------------------------------------------------------


def test_minimal_config_loads_with_documented_defaults() -> None:
    """Everything optional in the contract has the default the design promises."""
    config = parse_config(document(), "test.yaml")

    assert isinstance(config, AuditConfig)
    assert config.start_date == dt.date(2026, 1, 1)
    (dest,) = config.destinations
    assert dest.id == "48213"
    assert dest.type == "meta"
    assert dest.enabled is True
    assert dest.warehouse is None
    assert dest.ad_account_ids is None  # every active account discovered
    assert dest.sync_ids == {}
    assert dest.page_size is None
    assert dest.credentials["access_token"].env == "META_ACCESS_TOKEN"
    assert dest.table == "meta_48213_audiences"
    assert config.hightouch is None
    assert config.snapshots == SnapshotPolicy()
    assert config.snapshots.allow_past_partitions is False
    assert config.snapshots.max_throttle_wait_seconds == 900.0
    assert config.snapshots.max_retries == 5


def test_warehouse_may_be_omitted_when_there_is_only_one() -> None:
    """With one warehouse a destination need not name it; it lands in that one."""
    config = parse_config(document(), "test.yaml")

    assert config.warehouse_name_for(config.destinations[0]) == "local"


def test_named_warehouse_is_used_when_several_exist() -> None:
    """With two warehouses, the destination's explicit choice is the one it writes to."""
    doc = document(
        warehouses={
            "local": {"type": "duckdb", "path": "a.duckdb"},
            "other": {"type": "duckdb", "path": "b.duckdb"},
        }
    )
    doc["destinations"][0]["warehouse"] = "other"

    config = parse_config(doc, "test.yaml")

    assert config.warehouse_name_for(config.destinations[0]) == "other"


def test_enabled_false_is_kept() -> None:
    """A disabled destination is still configured (its table and history are kept)."""
    config = parse_config(with_destination(enabled=False), "test.yaml")

    assert config.destinations[0].enabled is False


def test_no_destinations_is_valid() -> None:
    """A code location with only a warehouse configured still loads."""
    config = parse_config(document(destinations=[]), "test.yaml")

    assert config.destinations == []


# --- secrets ------------------------------------------------------------------------------------------


def test_literal_secret_is_rejected_without_echoing_it() -> None:
    """A pasted token must be refused at load time, naming where it is but never what it is."""
    message = rejection(with_destination(credentials={"access_token": SECRET}))

    assert "destinations[0].credentials" in message
    assert "access_token" in message
    assert "{env: VAR_NAME}" in message
    assert SECRET not in message
    assert "real-looking" not in message


def test_literal_secret_in_yaml_file_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    """The same through load_config, the path an operator actually takes."""
    path = tmp_path / "audit.yaml"
    path.write_text(
        "start_date: 2026-01-01\n"
        "warehouses:\n"
        "  local: {type: duckdb, path: data/audit.duckdb}\n"
        "destinations:\n"
        "  - id: prod_meta\n"
        "    type: meta\n"
        f'    credentials: {{access_token: "{SECRET}"}}\n',
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as info:
        load_config(path)

    message = str(info.value)
    assert str(path) in message
    assert "destinations[0].credentials" in message
    assert "access_token" in message
    assert SECRET not in message


def test_secret_pasted_into_env_reference_is_not_echoed() -> None:
    """``{env: <the token itself>}`` is not a variable name; the refusal must not print it."""
    message = rejection(with_destination(credentials={"access_token": {"env": SECRET}}))

    assert "destinations[0].credentials.access_token.env" in message
    assert SECRET not in message


# --- unknown and malformed keys ------------------------------------------------------------------


def test_unknown_top_level_key_is_named() -> None:
    """A typo at the top level is an error, not silently ignored."""
    message = rejection(document(colour="blue"))

    assert "colour: unknown key" in message


def test_unknown_destination_key_is_named_with_its_path() -> None:
    """A typo inside a destination names the destination's index and the key."""
    message = rejection(with_destination(colour="blue"))

    assert "destinations[0].colour: unknown key" in message


def test_unknown_key_in_second_destination_names_that_index() -> None:
    """The path points at the destination that is wrong, not just 'a destination'."""
    doc = document()
    doc["destinations"].append(
        {"id": "sandbox_two", "type": "meta", "base_url": SANDBOX_URL, "colour": "blue"}
    )

    message = rejection(doc)

    assert "destinations[1].colour" in message
    assert "destinations[0]" not in message


def test_missing_start_date_is_named() -> None:
    """A required top-level key that is absent is reported by name."""
    doc = document()
    del doc["start_date"]

    assert "start_date: required key is missing" in rejection(doc)


def test_non_mapping_document_is_rejected() -> None:
    """A YAML list (or scalar) at the top level is not a configuration."""
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        parse_config(["start_date", "2026-01-01"], "test.yaml")


# --- destinations --------------------------------------------------------------------------------------


def test_duplicate_destination_id_is_rejected() -> None:
    """Two destinations with one id would write into the same table."""
    doc = document()
    doc["destinations"].append(copy.deepcopy(doc["destinations"][0]))

    message = rejection(doc)

    assert "destinations[1].id" in message
    assert "duplicate destination id '48213'" in message
    assert "destinations[0]" in message


def test_destination_ids_differing_only_in_case_are_duplicates() -> None:
    """Table names are lower case, so 'Shop' and 'shop' would collide in the warehouse."""
    doc = document()
    doc["destinations"] = [
        {"id": "Shop", "type": "meta", "base_url": SANDBOX_URL},
        {"id": "shop", "type": "meta", "base_url": SANDBOX_URL},
    ]

    message = rejection(doc)

    assert "destinations[1].id" in message
    assert "duplicate destination id 'shop'" in message


def test_unknown_destination_type_names_field_and_lists_known_types() -> None:
    """An unsupported platform says which ones are supported."""
    message = rejection(with_destination(type="myspace"))

    assert "destinations[0].type" in message
    assert "'myspace'" in message
    assert "meta" in message


@pytest.mark.parametrize("bad_id", ["has-dash", "has space", "dot.ted", "", "a" * 101])
def test_destination_id_must_be_letters_digits_underscore(bad_id: str) -> None:
    """The id becomes part of a table name, so only identifier characters are allowed."""
    assert "destinations[0].id" in rejection(with_destination(id=bad_id))


def test_missing_required_credential_for_meta_is_named() -> None:
    """Meta needs access_token; a destination with some other secret name is refused."""
    message = rejection(with_destination(credentials={"api_key": {"env": "META_KEY"}}))

    assert "destinations[0]" in message
    assert "credentials" in message
    assert "api_key" in message
    assert "access_token" in message


def test_credentials_may_be_omitted_for_the_sandbox() -> None:
    """The built-in sandbox issues its own demo credentials, so none are needed there."""
    config = parse_config(with_destination(base_url=SANDBOX_URL, credentials=None), "test.yaml")

    dest = config.destinations[0]
    assert dest.credentials == {}
    assert dest.uses_sandbox is True


@pytest.mark.parametrize(
    "base_url", ["https://graph.facebook.com", "https://sandbox.invalid.example.com", None]
)
def test_credentials_are_required_for_a_real_base_url(base_url: str | None) -> None:
    """Outside the sandbox (including the default base_url) missing credentials are an error."""
    doc = with_destination(credentials=None, base_url=base_url)

    message = rejection(doc)

    assert "destinations[0]" in message
    assert "access_token" in message


def test_page_size_above_platform_maximum_is_rejected() -> None:
    """Meta serves at most 500 per page; a larger limit would be silently capped by the platform."""
    assert meta.PLATFORM.max_page_size == 500

    message = rejection(with_destination(page_size=501))

    assert "destinations[0]" in message
    assert "page_size: 501" in message
    assert "500" in message


def test_page_size_at_platform_maximum_is_accepted() -> None:
    """The boundary itself is allowed."""
    config = parse_config(with_destination(page_size=500), "test.yaml")

    assert config.destinations[0].page_size == 500


# --- warehouses -----------------------------------------------------------------------------------------


def test_unknown_warehouse_reference_is_rejected() -> None:
    """A destination pointing at a warehouse that is not configured is named."""
    message = rejection(with_destination(warehouse="lake"))

    assert "destinations[0].warehouse" in message
    assert "'lake'" in message


def test_warehouse_is_required_when_two_are_configured() -> None:
    """With two warehouses there is no obvious default, so the destination must choose."""
    doc = document(
        warehouses={
            "local": {"type": "duckdb", "path": "a.duckdb"},
            "other": {"type": "duckdb", "path": "b.duckdb"},
        }
    )

    message = rejection(doc)

    assert "destinations[0].warehouse" in message
    assert "required" in message


def test_unsupported_warehouse_type_is_rejected() -> None:
    message = rejection(document(warehouses={"prod": {"type": "bigquery"}}))
    assert "prod.type" in message and "'bigquery'" in message and "snowflake" in message


def test_snowflake_warehouse_needs_exactly_one_secret_way_in() -> None:
    base = {"type": "snowflake", "account": {"env": "SF_ACCOUNT"}, "user": "loader", "database": "ANALYTICS"}
    ok = parse_config(document(warehouses={"prod": {**base, "private_key": {"env": "SF_KEY"}}}), "t.yaml")
    assert ok.warehouses["prod"].type == "snowflake"
    assert "exactly one of password or private_key" in rejection(document(warehouses={"prod": base}))
    literal = rejection(document(warehouses={"prod": {**base, "password": "hunter2-literal"}}))
    assert "password is a literal value" in literal and "hunter2-literal" not in literal


def test_no_warehouse_is_rejected() -> None:
    """Snapshots must land somewhere."""
    assert "at least one warehouse" in rejection(document(warehouses={}))


def test_hightouch_block_of_the_design_loads() -> None:
    config = parse_config(document(hightouch={"api_key": {"env": "HIGHTOUCH_API_KEY"}}), "test.yaml")
    assert config.hightouch is not None
    assert config.hightouch.api_key.env == "HIGHTOUCH_API_KEY"
    assert config.hightouch.base_url == "https://api.hightouch.com/api/v1"
    assert "must use https://" in rejection(
        document(hightouch={"base_url": "http://api.hightouch.com/api/v1"})
    )


# --- load_config: files, YAML errors, the environment variable, the packaged default -------------------


def test_invalid_yaml_reports_position_but_not_the_line(tmp_path: Path) -> None:
    """YAML libraries quote the offending line; a config line may hold a secret, so only report where."""
    path = tmp_path / "broken.yaml"
    path.write_text(
        "start_date: 2026-01-01\n"
        "warehouses:\n"
        "  local: {type: duckdb, path: a.duckdb}\n"
        f"token: {SECRET}: trailing: colons\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as info:
        load_config(path)

    message = str(info.value)
    assert "not valid YAML" in message
    assert "line 4" in message
    assert "column" in message
    assert SECRET not in message
    assert "real-looking" not in message


@pytest.mark.parametrize("marker", ["*", "!"])
def test_invalid_yaml_never_echoes_a_token_from_the_line(tmp_path: Path, marker: str) -> None:
    """An unquoted secret starting with * or ! is parsed as an alias or tag; the error must not print it."""
    path = tmp_path / "broken.yaml"
    path.write_text(
        f"start_date: 2026-01-01\npassword: {marker}{SECRET}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert "line 2" in str(info.value)
    assert SECRET not in str(info.value)


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    """A missing file is reported as a configuration problem naming the path."""
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError, match="cannot read configuration") as info:
        load_config(missing)

    assert str(missing) in str(info.value)


def test_environment_variable_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AUDIT_ASSETS_CONFIG is how a deployment points at its own file."""
    path = tmp_path / "deployed.yaml"
    path.write_text(
        "start_date: 2025-06-01\n"
        "warehouses:\n"
        "  lake: {type: duckdb, path: lake.duckdb}\n"
        "destinations:\n"
        "  - id: from_env_var\n"
        "    type: meta\n"
        "    credentials: {access_token: {env: META_ACCESS_TOKEN}}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(CONFIG_ENV_VAR, str(path))

    config = load_config()

    assert config.start_date == dt.date(2025, 6, 1)
    assert [d.id for d in config.destinations] == ["from_env_var"]
    assert list(config.warehouses) == ["lake"]


def test_environment_variable_errors_name_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the env var's file is wrong, the message points at it rather than the packaged default."""
    path = tmp_path / "deployed.yaml"
    path.write_text("start_date: 2025-06-01\nwarehouses: {}\n", encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV_VAR, str(path))

    with pytest.raises(ConfigError) as info:
        load_config()

    assert str(path) in str(info.value)


def test_explicit_path_wins_over_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path passed in code is used even when the environment points elsewhere."""
    monkeypatch.setenv(CONFIG_ENV_VAR, str(tmp_path / "does_not_exist.yaml"))
    path = tmp_path / "explicit.yaml"
    path.write_text(
        "start_date: 2025-06-01\nwarehouses: {w: {type: duckdb, path: w.duckdb}}\n", encoding="utf-8"
    )

    assert list(load_config(path).warehouses) == ["w"]


def test_packaged_default_runs_against_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without AUDIT_ASSETS_CONFIG a newcomer gets an offline config with a Meta sandbox destination."""
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)

    config = load_config()

    sandbox_meta = [d for d in config.destinations if d.type == "meta" and d.uses_sandbox]
    assert sandbox_meta, "the packaged default should include a sandbox Meta destination"
    assert all(d.credentials == {} for d in sandbox_meta)
    assert all(d.id.startswith("sandbox") for d in config.destinations)
    assert len(config.warehouses) == 1


def test_allow_listed_account_ids_are_compared_without_platform_prefixes() -> None:
    config = parse_config(with_destination(ad_account_ids=["act_123", "456"]), "test.yaml")
    assert config.destinations[0].account_allow_list == frozenset({"123", "456"})


def test_sandbox_host_must_be_the_one_of_the_destination_type() -> None:
    message = rejection(with_destination(base_url="https://tiktok.sandbox.invalid", credentials=None))
    assert "destinations[0]" in message and "https://meta.sandbox.invalid" in message


def test_unquoted_numeric_id_gets_a_hint_to_quote_it() -> None:
    message = rejection(with_destination(id=48213))
    assert "destinations[0].id" in message and "quote it" in message


def test_plain_http_is_refused_except_to_this_machine() -> None:
    assert "must use https://" in rejection(with_destination(base_url="http://graph.facebook.com"))
    assert parse_config(with_destination(base_url="http://127.0.0.1:8080"), "test.yaml").destinations


def test_token_url_is_refused_for_a_platform_without_oauth() -> None:
    assert "token_url: Meta has no OAuth token endpoint" in rejection(
        with_destination(token_url="https://example.com/token")
    )


def test_a_sandbox_destination_of_an_oauth_platform_needs_the_sandbox_token_url() -> None:
    doc = with_destination(type="pinterest", base_url="https://pinterest.sandbox.invalid", credentials=None)
    assert "token_url: the built-in sandbox for pinterest" in rejection(doc)
    doc["destinations"][0]["token_url"] = "https://pinterest.sandbox.invalid/v5/oauth/token"
    assert parse_config(doc, "test.yaml").destinations[0].uses_sandbox
