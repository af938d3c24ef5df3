"""The production deployment's instance and workspace files, parsed and validated by Dagster itself.

Every class deploy/dagster.yaml names is imported and its configuration checked against that class's
own schema, with the environment variables the containers are given; nothing connects to Postgres.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import ConcurrencyConfig, dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.workspace.config_schema import ensure_workspace_config
from dagster._serdes.config_class import ConfigurableClassData

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
INSTANCE_ENV = {
    "DAGSTER_POSTGRES_HOST": "postgres",
    "DAGSTER_POSTGRES_DB": "dagster",
    "DAGSTER_POSTGRES_USER": "dagster",
    "DAGSTER_POSTGRES_PASSWORD": "not-a-real-password",
}


@pytest.fixture
def instance_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in INSTANCE_ENV.items():
        monkeypatch.setenv(name, value)


def validated(data: ConfigurableClassData) -> tuple[type, dict]:
    """The class a piece of instance configuration names, and its configuration as that class reads it."""
    module = __import__(data.module_name, fromlist=[data.class_name])
    klass = getattr(module, data.class_name)
    result = process_config(resolve_to_config_type(klass.config_type()), data.config_dict)
    assert result.success, [e.message for e in result.errors]
    return klass, result.value


def test_the_instance_stores_everything_in_postgres_and_queues_runs(instance_env: None) -> None:
    dagster_instance_config(str(DEPLOY))  # the instance schema: raises on any unknown or ill-typed key
    ref = InstanceRef.from_dir(str(DEPLOY))

    storage, storage_config = validated(ref.storage_data)
    assert f"{storage.__module__}.{storage.__name__}" == "dagster_postgres.storage.DagsterPostgresStorage"
    assert storage_config["postgres_db"]["hostname"] == "postgres"
    assert storage_config["postgres_db"]["password"] == INSTANCE_ENV["DAGSTER_POSTGRES_PASSWORD"]

    coordinator, _ = validated(ref.run_coordinator_data)
    assert coordinator.__name__ == "QueuedRunCoordinator"
    queue = ref.run_coordinator_data.rehydrate().get_run_queue_config()  # the coordinator connects nowhere
    launcher, _ = validated(ref.run_launcher_data)
    assert launcher.__name__ == "DefaultRunLauncher"
    compute_logs, _ = validated(ref.compute_logs_data)
    assert compute_logs.__name__ == "LocalComputeLogManager"

    concurrency = ConcurrencyConfig.from_concurrency_settings(ref.settings["concurrency"], queue)
    assert concurrency.pool_config.default_pool_limit == 2
    assert concurrency.run_queue_config is not None
    assert concurrency.run_queue_config.max_concurrent_runs == 4
    assert [(t["key"], t["limit"]) for t in concurrency.run_queue_config.tag_concurrency_limits] == [
        ("dagster/backfill", 2)
    ]


def test_the_workspace_reaches_the_code_location_over_grpc() -> None:
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    ensure_workspace_config(workspace, str(DEPLOY / "workspace.yaml"))
    (location,) = workspace["load_from"]
    assert location["grpc_server"] == {"host": "code", "port": 4000, "location_name": "audit_assets"}


def test_the_image_serves_that_location_on_that_port() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert (
        'CMD ["dagster", "api", "grpc", "-m", "audit_assets.definitions", "-h", "0.0.0.0", "-p", "4000"]'
        in dockerfile
    )
    assert "pip install --no-cache-dir '.[deploy]'" in dockerfile
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"postgres", "code", "webserver", "daemon"}
