"""The code location: ``defs`` built from the configuration (``$AUDIT_ASSETS_CONFIG`` or the sandbox default)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from audit_assets.assets import build_destination_asset
from audit_assets.config import AuditConfig, ConfigError, load_config
from audit_assets.preflight import build_preflight_job
from audit_assets.resources import build_resources
from audit_assets.schedules import build_job, build_schedule
from audit_assets.view_asset import build_change_report_asset, build_view_asset
from audit_assets.views import COMBINED_VIEWS


def build_definitions(config: AuditConfig) -> dg.Definitions:
    with _cyclic_collector_paused():
        defs = _assemble_definitions(config)
        # Resolved now, while paused: every process that loads the code location (code server, run and
        # step workers) resolves it. Jobs are still built when one is asked for.
        defs.get_repository_def()
    return defs


@contextmanager
def _cyclic_collector_paused() -> Iterator[None]:
    """Hundreds of destinations make hundreds of thousands of objects that all live on (~250k for 500):
    the cyclic collector would scan the growing heap again and again while they are made, about a
    third of the load's time. Paused, it scans them once, later. Meant for the thread that loads the
    code location: it re-enables the collector whatever another thread did meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _assemble_definitions(config: AuditConfig) -> dg.Definitions:
    destination_assets = [build_destination_asset(config, d) for d in config.destinations]
    view_assets = [
        build_view_asset(config, warehouse, name)
        for warehouse in config.warehouses
        for name in COMBINED_VIEWS
    ]
    report_assets = [build_change_report_asset(config, warehouse) for warehouse in config.warehouses]
    job = build_job()
    schedules = [build_schedule(job, config.schedule)] if any(d.enabled for d in config.destinations) else []
    return dg.Definitions(
        assets=[*destination_assets, *view_assets, *report_assets],
        jobs=[job, build_preflight_job(config)],
        schedules=schedules,
        resources=build_resources(config),
    )


try:
    _config = load_config()
except ConfigError as error:  # the list of problems is the whole message; no traceback adds to it
    raise error.without_traceback() from None

defs = build_definitions(_config)
