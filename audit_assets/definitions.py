"""The code location: ``defs`` built from the configuration (``$AUDIT_ASSETS_CONFIG`` or the sandbox default)."""

from __future__ import annotations

import dagster as dg

from audit_assets.assets import build_destination_asset
from audit_assets.catalog import HIGHTOUCH_RESOURCE_KEY, client_resource_key, warehouse_key
from audit_assets.config import AuditConfig, load_config
from audit_assets.resources import build_hightouch_resource, build_resource
from audit_assets.schedules import build_job, build_schedule
from audit_assets.view_asset import build_view_asset
from audit_assets.warehouse import build_warehouse


def build_definitions(config: AuditConfig) -> dg.Definitions:
    destination_assets = [build_destination_asset(config, d) for d in config.destinations]
    view_assets = [build_view_asset(config, name) for name in config.warehouses]
    resources: dict[str, object] = {
        warehouse_key(name): build_warehouse(name, warehouse) for name, warehouse in config.warehouses.items()
    }
    resources |= {
        client_resource_key(d): build_resource(d, config.snapshots) for d in config.destinations if d.enabled
    }
    if config.hightouch is not None:
        resources[HIGHTOUCH_RESOURCE_KEY] = build_hightouch_resource(config.hightouch, config.snapshots)
    job = build_job()
    schedules = [build_schedule(job, config.schedule)] if any(d.enabled for d in config.destinations) else []
    return dg.Definitions(
        assets=[*destination_assets, *view_assets],
        jobs=[job],
        schedules=schedules,
        resources=resources,
    )


defs = build_definitions(load_config())
