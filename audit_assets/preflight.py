"""Preflight: can each destination be snapshotted? One line per destination, nothing written.

For every destination it says whether the environment variables its credentials name are set, whether
the platform accepts the credentials, how many active ad accounts they see (after ``ad_account_ids``)
and whether each account's audiences can be read (the first page of each); for every warehouse, whether
it can be reached; and for Hightouch, whether its key works. Secrets are never printed: messages are
the redacted ones a snapshot would raise. Run it from the shell (``audit-assets-preflight``) or as the
``preflight`` job in the Dagster UI; both use the code location's own resources.
"""

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg
from dagster import OpExecutionContext

from audit_assets.accounts import choose_accounts
from audit_assets.catalog import HIGHTOUCH_RESOURCE_KEY, warehouse_key
from audit_assets.config import AuditConfig, ConfigError, DestinationConfig, load_config
from audit_assets.platforms.base import AuthError, PlatformError
from audit_assets.resources import HightouchResource, PlatformConnection, build_resources, connection_for
from audit_assets.secrets import SecretError
from audit_assets.warehouse.base import AuditWarehouse

JOB_NAME = "preflight"


@dataclass(frozen=True)
class Verdict:
    subject: str  # "meta/48213", "warehouse local", "hightouch"
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'}  {self.subject:<34} {self.detail}"


def check_destination(dest: DestinationConfig, client: PlatformConnection, log: logging.Logger) -> Verdict:
    subject = f"{dest.type}/{dest.id}"
    try:
        with client.open(log) as (platform_client, _):
            accounts, _ = choose_accounts(
                platform_client.discover_accounts(), dest.account_allow_list, subject
            )
            unreadable = []
            for account in accounts:
                try:
                    next(iter(platform_client.audience_pages(account)), None)
                except AuthError as exc:
                    unreadable.append(f"{account.id} ({exc})")
    except SecretError as exc:
        return Verdict(subject, False, str(exc).removeprefix(f"destination {subject}: "))
    except PlatformError as exc:  # AuthError included: its message says the credentials were refused
        return Verdict(subject, False, str(exc).removeprefix(f"{subject}: "))
    readable = len(accounts) - len(unreadable)
    given = "env set" if client.credential_env else "sandbox demo credentials"
    detail = (
        f"{given} · credentials accepted · {len(accounts)} active ad account{'s' if len(accounts) != 1 else ''}"
        f" · audiences readable in {readable}/{len(accounts)}"
    )
    if unreadable:
        detail += f" · not readable: {'; '.join(unreadable)}"
    return Verdict(subject, not unreadable, detail)


def check_warehouse(name: str, warehouse: AuditWarehouse) -> Verdict:
    try:
        with warehouse.session():
            pass
    except SecretError as exc:
        return Verdict(f"warehouse {name}", False, str(exc).removeprefix(f"warehouse {name}: "))
    except Exception as exc:  # a driver's own error: its type and message, which carry no secret we hold
        return Verdict(f"warehouse {name}", False, f"cannot connect: {type(exc).__name__}: {exc}")
    return Verdict(f"warehouse {name}", True, "reachable · schema hightouch_audit ready")


def check_hightouch(hightouch: HightouchResource, log: logging.Logger) -> Verdict:
    try:
        with hightouch.open(log) as client:
            client.sync_ids_for("")
    except (SecretError, PlatformError) as exc:
        return Verdict("hightouch", False, str(exc).removeprefix("hightouch: "))
    return Verdict("hightouch", True, "key accepted · syncs readable")


def run_preflight(config: AuditConfig, resources: Mapping[str, object], log: logging.Logger) -> list[Verdict]:
    """Every check, in config order: warehouses, Hightouch, then each enabled destination."""
    verdicts = [check_warehouse(name, resources[warehouse_key(name)]) for name in config.warehouses]  # type: ignore[arg-type]
    if config.hightouch is not None:
        verdicts.append(check_hightouch(resources[HIGHTOUCH_RESOURCE_KEY], log))  # type: ignore[arg-type]
    for dest in config.destinations:
        if dest.enabled:
            verdicts.append(check_destination(dest, connection_for(dest, config.snapshots), log))
    return verdicts


def build_preflight_job(config: AuditConfig) -> dg.JobDefinition:
    keys = {warehouse_key(name) for name in config.warehouses}
    if config.hightouch is not None:
        keys.add(HIGHTOUCH_RESOURCE_KEY)

    @dg.op(name="preflight_checks", required_resource_keys=keys)
    def preflight_checks(context: OpExecutionContext) -> None:
        resources = {key: getattr(context.resources, key) for key in keys}
        verdicts = run_preflight(config, resources, context.log)
        for verdict in verdicts:
            (context.log.info if verdict.ok else context.log.error)(verdict.line())
        failed = [v for v in verdicts if not v.ok]
        if failed:
            raise dg.Failure(
                description=f"{len(failed)} of {len(verdicts)} preflight checks failed:\n"
                + "\n".join(v.line() for v in failed),
                allow_retries=False,
            )

    @dg.job(
        name=JOB_NAME,
        description="Check every destination's credentials, accounts and audiences, every warehouse and "
        "Hightouch, one line each; nothing is written.",
        tags={"audit_assets/kind": "preflight"},
    )
    def preflight() -> None:
        preflight_checks()

    return preflight


def main() -> int:
    """``audit-assets-preflight``: print one line per check; exit 1 when any fails."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        config = load_config()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"preflight of {config.source}")
    resources = build_resources(config)
    verdicts = run_preflight(config, resources, logging.getLogger("audit_assets.preflight"))
    for verdict in verdicts:
        print(verdict.line())
    failed = sum(not v.ok for v in verdicts)
    print(f"{len(verdicts) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
