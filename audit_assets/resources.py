"""How the code location reaches its APIs and warehouses: each destination's platform connection, and the
Dagster resources (one per warehouse, and Hightouch's)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields

import dagster as dg
import httpx

from audit_assets import hightouch
from audit_assets.catalog import HIGHTOUCH_RESOURCE_KEY, warehouse_key
from audit_assets.config import AuditConfig, DestinationConfig, HightouchConfig, SnapshotPolicy
from audit_assets.hightouch import HightouchClient
from audit_assets.platforms import PLATFORMS
from audit_assets.platforms.base import AudienceClient, AuthContext, ClientSettings
from audit_assets.platforms.http import ApiSession, BearerAuth, Classifier, Redactor, RetrySettings
from audit_assets.sandbox_hosts import is_sandbox_url
from audit_assets.secrets import read_secrets

USER_AGENT = "audit_assets/0.1"


@dataclass(frozen=True)
class HttpSettings:
    """HTTP settings shared by every API this code location calls."""

    http_timeout_seconds: float
    max_retries: int
    retry_base_delay_seconds: float
    max_throttle_wait_seconds: float

    @classmethod
    def of(cls, holder: SnapshotPolicy | HightouchResource) -> HttpSettings:
        """The settings as the configured policy, or a resource built from it, holds them."""
        return cls(**{f.name: getattr(holder, f.name) for f in fields(cls)})


@contextmanager
def http_session(
    settings: HttpSettings,
    *,
    title: str,
    make_auth: Callable[[Redactor], httpx.Auth],
    classify: Classifier,
    secrets: list[str],
    log: logging.Logger,
    transport: httpx.BaseTransport | None = None,
) -> Iterator[ApiSession]:
    """One keep-alive HTTP client with the retry and throttle policy, closed on exit.

    ``transport`` is the built-in sandbox for a sandbox base URL (``implementation_for``), else None:
    the network.
    """
    redact = Redactor(secrets)
    with httpx.Client(
        auth=make_auth(redact),
        timeout=httpx.Timeout(
            settings.http_timeout_seconds, connect=min(10.0, settings.http_timeout_seconds)
        ),
        headers={"user-agent": USER_AGENT},
        transport=transport,
        follow_redirects=False,
    ) as client:
        yield ApiSession(
            client=client,
            platform_title=title,
            classify=classify,
            settings=RetrySettings(
                max_retries=settings.max_retries,
                base_delay_seconds=settings.retry_base_delay_seconds,
                max_throttle_wait_seconds=settings.max_throttle_wait_seconds,
            ),
            redact=redact,
            log=log,
        )


@dataclass(frozen=True)
class PlatformConnection:
    """Connection settings of one destination, and where its credentials are.

    A plain value captured by the destination's asset, not a Dagster resource: a resource per
    destination made Dagster match every asset against every resource when loading (quadratic in the
    number of destinations). ``credential_env`` maps each credential to the environment variable
    holding it, read when a snapshot starts (secrets.py), so nothing but variable names is ever shown.
    ``public_credentials`` are the built-in sandbox's demo values, which are not secret.
    """

    destination: str  # "meta/48213", for messages
    platform: str
    base_url: str
    token_url: str | None
    page_size: int
    http: HttpSettings
    credential_env: Mapping[str, str] = field(default_factory=dict)
    public_credentials: Mapping[str, str] = field(default_factory=dict)

    def read_credentials(self) -> dict[str, str]:
        """The credentials' values; SecretError names any variable that is not set."""
        return {
            **self.public_credentials,
            **read_secrets(self.credential_env, f"destination {self.destination}"),
        }

    @contextmanager
    def open(self, log: logging.Logger) -> Iterator[tuple[AudienceClient, ApiSession]]:
        """A platform client for one snapshot, on its own keep-alive HTTP client."""
        platform = PLATFORMS[self.platform]
        given = self.read_credentials()
        # Secrets mounted from files often end in a newline, which no HTTP header may carry.
        credentials = {name: value.strip() for name, value in given.items()}
        token_url = self.token_url or platform.default_token_url
        with http_session(
            self.http,
            title=platform.title,
            make_auth=lambda redact: platform.auth(AuthContext(credentials, token_url, redact.add)),
            classify=platform.classify,
            secrets=[*credentials.values(), *given.values()],
            log=log,
            transport=sandbox_transport(self.base_url),
        ) as session:
            settings = ClientSettings(
                base_url=self.base_url, token_url=token_url, credentials=credentials, page_size=self.page_size
            )
            yield platform.connect(settings, session), session


class HightouchResource(dg.ConfigurableResource):
    """Hightouch's API, to resolve which sync manages each audience."""

    api_key_env: str | None = None  # the variable holding the API key
    public_api_key: str | None = None  # the built-in sandbox's demo key, not secret
    base_url: str
    http_timeout_seconds: float
    max_retries: int
    retry_base_delay_seconds: float
    max_throttle_wait_seconds: float

    @contextmanager
    def open(self, log: logging.Logger) -> Iterator[HightouchClient]:
        api_key = self.public_api_key or ""
        if self.api_key_env:
            api_key = read_secrets({"api_key": self.api_key_env}, "hightouch")["api_key"]
        with http_session(
            HttpSettings.of(self),
            title="Hightouch",
            make_auth=lambda _: BearerAuth(api_key.strip()),
            classify=hightouch.classify,
            secrets=[api_key],
            log=log,
            transport=sandbox_transport(self.base_url),
        ) as session:
            yield HightouchClient(self.base_url, session)


def build_hightouch_resource(config: HightouchConfig, policy: SnapshotPolicy) -> HightouchResource:
    http = asdict(HttpSettings.of(policy))
    if config.api_key:
        return HightouchResource(api_key_env=config.api_key.env, base_url=config.base_url, **http)
    return HightouchResource(
        public_api_key=sandbox_credentials(config.base_url)["api_key"], base_url=config.base_url, **http
    )


# --- the one place that picks the built-in sandbox over the real API -----------------------------------


def sandbox_transport(base_url: str) -> httpx.BaseTransport | None:
    """The built-in emulators for a sandbox URL (config.py allows them only there), else None."""
    if not is_sandbox_url(base_url):
        return None
    from audit_assets.sandbox.transport import SandboxTransport

    return SandboxTransport()


def sandbox_credentials(base_url: str) -> dict[str, str]:
    """The sandbox's public demo credentials for a sandbox URL, else none."""
    if not is_sandbox_url(base_url):
        return {}
    from audit_assets.sandbox.transport import demo_credentials

    return dict(demo_credentials(base_url))


def connection_for(dest: DestinationConfig, policy: SnapshotPolicy) -> PlatformConnection:
    platform = PLATFORMS[dest.type]
    base_url = dest.base_url or platform.default_base_url
    return PlatformConnection(
        destination=f"{dest.type}/{dest.id}",
        platform=dest.type,
        base_url=base_url,
        token_url=dest.token_url,
        page_size=dest.page_size or platform.default_page_size,
        http=HttpSettings.of(policy),
        credential_env={name: ref.env for name, ref in dest.credentials.items()},
        # Without credentials only the built-in sandbox is allowed (config.py); its demo values are public.
        public_credentials={} if dest.credentials else sandbox_credentials(base_url),
    )


def build_resources(config: AuditConfig) -> dict[str, dg.ConfigurableResource]:
    """Every resource the code location's assets and jobs use, by resource key."""
    from audit_assets.warehouse import build_warehouse

    resources: dict[str, dg.ConfigurableResource] = {
        warehouse_key(name): build_warehouse(name, warehouse) for name, warehouse in config.warehouses.items()
    }
    if config.hightouch is not None:
        resources[HIGHTOUCH_RESOURCE_KEY] = build_hightouch_resource(config.hightouch, config.snapshots)
    return resources
