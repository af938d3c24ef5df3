"""Snowflake warehouses through fakesnow (patch mode): real connector calls, answered by DuckDB.

fakesnow stands in for Snowflake only; its gaps are in shared/reference/dagster.md §2. Every
statement our code sends is collected and must parse as Snowflake SQL with sqlglot.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import fakesnow
import fakesnow.cursor
import pytest
import snowflake.connector
import sqlglot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from audit_assets_tests.conftest import Workspace, failure_messages, sandbox_meta
from audit_assets_tests.platform_harness import (
    DEMO_TABLE,
    WIDE_NOTES,
    WIDE_TABLE,
    demo_meta_snapshot,
    wide_meta_snapshot,
)

SF_ENV = {"SF_ACCOUNT": "acme-xy12345", "SF_USER": "AUDIT_LOADER", "SF_PASSWORD": "sf-password-value-19"}


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Patch Snowflake with fakesnow and record every statement sent through a cursor."""
    for name, value in SF_ENV.items():
        monkeypatch.setenv(name, value)
    sent: list[str] = []
    original = fakesnow.cursor.FakeSnowflakeCursor.execute

    def recording(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(fakesnow.cursor.FakeSnowflakeCursor, "execute", recording)
    with fakesnow.patch():
        yield sent


def query(statement: str) -> list[tuple[Any, ...]]:
    with snowflake.connector.connect(account="x", user="u", password="p", database="ANALYTICS") as conn:
        return conn.cursor().execute(statement).fetchall()


def two_warehouses(workspace: Workspace) -> dict[str, Any]:
    document = workspace.document(
        [sandbox_meta("local_meta", warehouse="local"), sandbox_meta("sf", warehouse="prod")]
    )
    document["warehouses"]["prod"] = {
        "type": "snowflake",
        "account": {"env": "SF_ACCOUNT"},
        "user": {"env": "SF_USER"},
        "password": {"env": "SF_PASSWORD"},
        "database": "ANALYTICS",
        "warehouse": "LOADING",
        "role": "AUDIT_WRITER",
    }
    return document


def test_duckdb_and_snowflake_warehouses_each_get_their_snapshots_and_view(
    workspace: Workspace, statements: list[str]
) -> None:
    from audit_assets.config import parse_config

    config = parse_config(two_warehouses(workspace), "two warehouses")
    for _ in range(2):
        result = workspace.run(config)
        assert result.success, failure_messages(result)

    # Snowflake: first write created the table, the second appended a second snapshot.
    per_snapshot = query("SELECT ht_snapshot_id, count(*) FROM HIGHTOUCH_AUDIT.META_SF_AUDIENCES GROUP BY 1")
    assert sorted(n for _, n in per_snapshot) == [13, 13]
    view = query(
        "SELECT ad_account_id, audience_id, audience_name, audience_size, ht_destination, ht_destination_id "
        "FROM HIGHTOUCH_AUDIT.EXTERNAL_AUDIENCES_METADATA_V1"
    )
    assert len(view) == 26 and {r[5] for r in view} == {"sf"}
    raw_sizes = dict(query("SELECT id, approximate_count_lower_bound FROM HIGHTOUCH_AUDIT.META_SF_AUDIENCES"))
    assert all(size == (None if raw_sizes[aid] == -1 else raw_sizes[aid]) for _, aid, _, size, _, _ in view)
    assert any(size is None for *_, size, _, _ in view)

    # DuckDB: its own destination and view, untouched by the Snowflake one.
    assert workspace.query(
        "SELECT ht_destination_id, count(*) FROM hightouch_audit.external_audiences_metadata_v1 GROUP BY 1"
    ) == [("local_meta", 26)]

    # Every statement we sent is Snowflake SQL.
    ours = [s for s in statements if s.strip()]
    assert any(s.startswith("INSERT INTO hightouch_audit.meta_sf_audiences") for s in ours)
    for statement in ours:  # pyformat parameters are bound client-side, as literals
        sqlglot.parse_one(statement.replace("%s", "'bound'"), read="snowflake")


def test_variant_columns_are_queryable_with_path_syntax(workspace: Workspace, statements: list[str]) -> None:
    from audit_assets.config import parse_config

    assert workspace.run(parse_config(two_warehouses(workspace), "t")).success
    rows = query(
        "SELECT ht_raw:name::string, name, delivery_status:code::int, typeof(ht_raw) "
        "FROM HIGHTOUCH_AUDIT.META_SF_AUDIENCES ORDER BY id LIMIT 3"
    )
    assert rows and all(r[0] == r[1] for r in rows)
    assert {r[2] for r in rows} <= {200, 300}


def test_the_secret_never_reaches_the_event_log(workspace: Workspace, statements: list[str]) -> None:
    from audit_assets.config import parse_config

    result = workspace.run(parse_config(two_warehouses(workspace), "t"))
    assert result.success
    assert not any("sf-password-value-19" in str(e) for e in workspace.instance.all_logs(result.run_id))


def test_a_failure_during_the_load_leaves_no_row_of_that_snapshot(statements: list[str]) -> None:
    from audit_assets.warehouse.snowflake import SnowflakeAuditWarehouse

    def write(snapshot: Any) -> None:
        warehouse = SnowflakeAuditWarehouse(
            name="prod",
            database="ANALYTICS",
            settings={"account": "x", "user": "u"},
            secret_env={"password": "SF_PASSWORD"},
        )
        with warehouse.session() as session:
            session.append(DEMO_TABLE, snapshot)

    write(demo_meta_snapshot("snap-1"))
    broken = demo_meta_snapshot("snap-2")  # several row groups: some reach the staging table before the cut
    broken.path.write_bytes(broken.path.read_bytes()[:-40])
    with pytest.raises(Exception):  # noqa: B017 - whatever the reader raises, nothing may be written
        write(broken)
    write(demo_meta_snapshot("snap-1"))  # a retry of the first: already there, nothing added
    inconsistent = demo_meta_snapshot("snap-3")
    inconsistent.row_count += 1  # fails the check after the insert, inside the transaction
    with pytest.raises(RuntimeError, match="wrote 13 rows for snapshot snap-3, expected 14"):
        write(inconsistent)
    assert query("SELECT ht_snapshot_id, count(*) FROM HIGHTOUCH_AUDIT.META_IO_AUDIENCES GROUP BY 1") == [
        ("snap-1", 13)
    ]


def test_wide_audiences_reach_snowflake_in_batches_of_at_most_16_mib(
    statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staging load holds one batch at a time: 2,500 audiences of 40 KB (~100 MB) were one
    batch of every row (10,000 audiences at a time), now batches of whole row groups up to 16 MiB."""
    from snowflake.connector import pandas_tools

    from audit_assets.warehouse.snowflake import SnowflakeAuditWarehouse

    batch_rows: list[int] = []
    fake_write_pandas = pandas_tools.write_pandas

    def recording(connection: Any, frame: Any, *args: Any, **kwargs: Any) -> Any:
        batch_rows.append(len(frame))
        return fake_write_pandas(connection, frame, *args, **kwargs)

    monkeypatch.setattr(pandas_tools, "write_pandas", recording)
    warehouse = SnowflakeAuditWarehouse(
        name="prod", database="ANALYTICS", settings={"account": "x", "user": "u"},
        secret_env={"password": "SF_PASSWORD"},
    )  # fmt: skip
    with warehouse.session() as session:
        session.append(WIDE_TABLE, wide_meta_snapshot())

    audience_bytes = len(WIDE_NOTES)  # each audience's JSON is a little more than its notes
    assert sum(batch_rows) == 2500 and max(batch_rows) * audience_bytes <= 16 * 2**20, batch_rows
    rows = query(
        "SELECT count(*), count(DISTINCT id), min(ht_raw:targeting_notes::VARCHAR), "
        f"max(ht_raw:targeting_notes::VARCHAR) FROM HIGHTOUCH_AUDIT.{WIDE_TABLE.upper()}"
    )
    assert rows == [(2500, 2500, WIDE_NOTES, WIDE_NOTES)]


# --- key-pair authentication ----------------------------------------------------------------------------

KEY_PASSWORD = "key-passphrase-77"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def encrypted_pem(key: rsa.RSAPrivateKey, password: str) -> str:
    """The PKCS#8 file ``openssl genrsa … | openssl pkcs8 -topk8 -v2 aes256`` gives, as Snowflake documents."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    ).decode()


@pytest.fixture
def connect_arguments(statements: list[str]) -> Iterator[list[dict[str, Any]]]:
    """What our code hands the Snowflake connector, recorded on the way to fakesnow (undone before it)."""
    seen: list[dict[str, Any]] = []
    fake_connect = snowflake.connector.connect

    def recording(**kwargs: Any) -> Any:
        seen.append(kwargs)
        return fake_connect(**kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(snowflake.connector, "connect", recording)
        yield seen


def key_pair_warehouse() -> Any:
    from audit_assets.warehouse.snowflake import SnowflakeAuditWarehouse

    return SnowflakeAuditWarehouse(
        name="prod",
        database="ANALYTICS",
        settings={"account": "x", "user": "u"},
        secret_env={"private_key": "SF_PRIVATE_KEY", "private_key_password": "SF_KEY_PASSWORD"},
    )


@pytest.mark.parametrize("form", ["pem", "base64"])
def test_an_encrypted_private_key_in_pem_or_base64_signs_in_and_the_snapshot_lands(
    connect_arguments: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    rsa_key: rsa.RSAPrivateKey,
    form: str,
) -> None:
    pem = encrypted_pem(rsa_key, KEY_PASSWORD)
    monkeypatch.setenv("SF_PRIVATE_KEY", pem if form == "pem" else base64.b64encode(pem.encode()).decode())
    monkeypatch.setenv("SF_KEY_PASSWORD", KEY_PASSWORD)

    with key_pair_warehouse().session() as session:
        assert session.append(DEMO_TABLE, demo_meta_snapshot("snap-key"))

    expected = rsa_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert [args.get("private_key") for args in connect_arguments] == [expected]
    assert not any("password" in args for args in connect_arguments)
    assert query("SELECT count(*) FROM HIGHTOUCH_AUDIT.META_IO_AUDIENCES") == [(13,)]


@pytest.mark.parametrize(
    ("key", "password"),
    [
        pytest.param("pem", "not-the-passphrase", id="wrong-passphrase"),
        pytest.param("garbage", KEY_PASSWORD, id="not-a-key"),
    ],
)
def test_a_private_key_that_cannot_be_read_fails_naming_the_variables_not_the_secrets(
    workspace: Workspace,
    connect_arguments: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    rsa_key: rsa.RSAPrivateKey,
    key: str,
    password: str,
) -> None:
    from audit_assets.config import parse_config

    pem = encrypted_pem(rsa_key, KEY_PASSWORD)
    monkeypatch.setenv("SF_PRIVATE_KEY", pem if key == "pem" else "-----BEGIN PRIVATE KEY-----\nnope\n")
    monkeypatch.setenv("SF_KEY_PASSWORD", password)
    document = workspace.document([sandbox_meta("sf", warehouse="prod")])
    document["warehouses"] = {
        "prod": {
            "type": "snowflake",
            "account": "acme-xy12345",
            "user": "AUDIT_LOADER",
            "private_key": {"env": "SF_PRIVATE_KEY"},
            "private_key_password": {"env": "SF_KEY_PASSWORD"},
            "database": "ANALYTICS",
        }
    }

    result = workspace.run(parse_config(document, "key pair"))

    assert not result.success
    message = failure_messages(result)
    assert "warehouse prod" in message and "SF_PRIVATE_KEY" in message and "SF_KEY_PASSWORD" in message
    logged = "\n".join(str(e) for e in workspace.instance.all_logs(result.run_id))
    for secret in (password, pem.splitlines()[1]):
        assert secret not in message and secret not in logged
    assert connect_arguments == [], "nothing reached Snowflake"


def test_v2_and_the_change_view_in_snowflake_agree_with_the_sandbox(
    workspace: Workspace, statements: list[str], meta_server: Any
) -> None:
    """The two-day scenario of test_changes, in a Snowflake warehouse: same rows, same kinds."""
    from audit_assets.config import parse_config
    from audit_assets_tests.test_changes import DAY_ACCOUNTS, TODAY, YESTERDAY, expected_changes

    for day in (YESTERDAY, TODAY):
        _, dest = meta_server("shop", accounts=DAY_ACCOUNTS[day], today=lambda day=day: day)
        document = two_warehouses(workspace)
        document["warehouses"].pop("local")
        document["destinations"] = [{**dest, "warehouse": "prod"}]
        result = workspace.run(parse_config(document, "snowflake only"), partition=day.isoformat())
        assert result.success, failure_messages(result)
    rows = query(
        "SELECT ad_account_id, audience_id, audience_name, audience_size, previous_size, previous_snapshot_date, "
        "size_change, size_change_pct, change_kind "
        f"FROM HIGHTOUCH_AUDIT.AUDIENCE_SIZE_CHANGES_V1 WHERE snapshot_date = '{TODAY.isoformat()}'"
    )
    expected = {
        k: (*e[:5], None if e[5] is None else pytest.approx(e[5]), e[6])
        for k, e in expected_changes().items()
    }
    assert {(r[0], r[1]): tuple(r[2:]) for r in rows} == expected
    logged = query("SELECT ht_snapshot_date, audiences FROM HIGHTOUCH_AUDIT.SNAPSHOT_LOG ORDER BY 1")
    assert logged == [(YESTERDAY, 13), (TODAY, 13)]
    v2 = query(
        "SELECT audience_type, audience_status, count(*) FROM HIGHTOUCH_AUDIT.EXTERNAL_AUDIENCES_METADATA_V2 "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert sum(n for _, _, n in v2) == 13 + 13
    assert all(kind and status for kind, status, _ in v2), "Meta's subtype and delivery_status.description"
    for statement in statements:
        sqlglot.parse_one(statement.replace("%s", "'bound'"), read="snowflake")


def test_a_warehouse_password_not_set_fails_its_views_and_report_naming_the_variable(
    workspace: Workspace, statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit_assets.catalog import view_key
    from audit_assets.config import parse_config
    from audit_assets.view_asset import CHANGES_ASSET
    from audit_assets.views import V1_NAME, V2_NAME

    monkeypatch.delenv("SF_PASSWORD")
    config = parse_config(two_warehouses(workspace), "two warehouses")
    # The report reads v2, so it runs on its own: in one run with v2 it would be skipped, not failed.
    for names in ((V1_NAME, V2_NAME), (CHANGES_ASSET,)):
        keys = [view_key(config, "prod", name) for name in names]
        result = workspace.run(config, selection=keys)
        assert not result.success
        failures = [e for e in result.all_events if e.is_step_failure]
        assert {e.step_key for e in failures} == {"__".join(k.path) for k in keys}
        for failure in failures:
            data = failure.step_failure_data
            # A Failure the step raised on purpose, not a crash with the connector's traceback.
            assert data.user_failure_data is not None, failure_messages(result)
            assert "SF_PASSWORD" in str(data.user_failure_data.description), failure_messages(result)
    assert statements == [], "nothing was sent to Snowflake"
