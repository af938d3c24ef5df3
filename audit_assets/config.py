"""Load and validate the one YAML document that configures the code location.

Every problem is reported at load time with the path of the offending field. Secrets are never
literal: a secret field takes ``{env: VAR_NAME}`` and is resolved at run time, so neither the
definitions nor an error message ever hold a secret's value.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import pydantic
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    field_validator,
    model_validator,
)

from audit_assets.platforms import PLATFORMS
from audit_assets.sandbox_hosts import is_sandbox_url, sandbox_host

CONFIG_ENV_VAR = "AUDIT_ASSETS_CONFIG"
WAREHOUSE_TYPES = ("duckdb", "snowflake")
DEFAULT_CONFIG_RESOURCE = "default_config.yaml"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names every offending field."""

    def without_traceback(self) -> ConfigError:
        """This error, to raise as the only thing a person needs to read.

        Its own frames are dropped (Dagster's error display then shows the message and the one line
        that raised it); and should the process die of it, which the ``dagster`` commands that do not
        format load errors let happen, Python prints the message alone instead of a traceback of
        Dagster's CLI internals.
        """
        previous = sys.excepthook

        def print_message_only(kind: type[BaseException], error: BaseException, tb: Any) -> None:
            if isinstance(error, ConfigError):
                print(f"{kind.__module__}.{kind.__name__}: {error}", file=sys.stderr)
            else:
                previous(kind, error, tb)

        sys.excepthook = print_message_only
        return self.with_traceback(None)


def _literal_secret_problem(name: str, value: Any) -> str | None:
    if isinstance(value, Mapping):
        return None
    return (
        f"{name} is a literal value; give every secret as {{env: VAR_NAME}} so it stays out of the "
        "configuration (the value is not shown here)"
    )


def _check_url(value: str | None) -> str | None:
    """Credentials travel with every request: plain http only to this machine (a local emulator)."""
    if value is not None and value.startswith("http://"):
        host = httpx.URL(value).host
        if not (host == "localhost" or host == "::1" or host.startswith("127.")):
            raise ValueError("must use https:// (plain http:// is only for 127.0.0.1 or localhost)")
    return value


HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s?#]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Strict):
    """``{env: NAME}``: the secret lives in the environment variable NAME."""

    env: Annotated[str, StringConstraints(pattern=_ENV_NAME.pattern)]


class DuckDbWarehouse(_Strict):
    type: Literal["duckdb"]
    path: str = Field(description="DuckDB file; a relative path is relative to the working directory.")


SnowflakeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$")]


class SnowflakeWarehouse(_Strict):
    """A Snowflake database; tables go to its HIGHTOUCH_AUDIT schema (created if the role may)."""

    type: Literal["snowflake"]
    account: SecretRef | str
    user: SecretRef | str
    password: SecretRef | None = None
    private_key: SecretRef | None = Field(default=None, description="PEM (or base64 of it), key-pair auth.")
    private_key_password: SecretRef | None = None
    database: SnowflakeName
    warehouse: SnowflakeName | None = None
    role: SnowflakeName | None = None

    @field_validator("password", "private_key", "private_key_password", mode="before")
    @classmethod
    def _no_literal_secret(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        problem = None if value is None else _literal_secret_problem(str(info.field_name), value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> SnowflakeWarehouse:
        if (self.password is None) == (self.private_key is None):
            raise ValueError("give exactly one of password or private_key (each as {env: VAR_NAME})")
        return self


Warehouse = Annotated[DuckDbWarehouse | SnowflakeWarehouse, Field(discriminator="type")]


class SnapshotPolicy(_Strict):
    allow_past_partitions: bool = Field(
        default=False,
        description="Record partitions older than yesterday (UTC). Platforms only expose current sizes, "
        "so such a snapshot holds today's sizes under an old date; ht_fetched_at still tells the truth.",
    )
    max_throttle_wait_seconds: float = Field(default=900.0, ge=0)
    http_timeout_seconds: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20, description="Retries of 5xx and connection errors.")
    retry_base_delay_seconds: float = Field(default=1.0, gt=0)
    step_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Dagster step retries after transient failures (step_retry_delay_seconds apart, growing).",
    )
    step_retry_delay_seconds: float = Field(default=60.0, gt=0, description="First wait before a step retry.")


class ChecksConfig(_Strict):
    """Thresholds of the asset checks a snapshot is judged by (all WARN: they flag, never block)."""

    sharp_drop_percent: float = Field(
        default=50.0,
        gt=0,
        le=100,
        description="Flag a snapshot whose audience count or total audience size fell by more than this "
        "percentage from the previous snapshot.",
    )
    audience_shrink_percent: float = Field(
        default=20.0,
        gt=0,
        le=100,
        description="Flag, in the day's audience size change report, an audience whose size fell by at "
        "least this percentage from the destination's previous snapshot date.",
    )
    freshness_hours: float = Field(
        default=25.0,
        gt=0,
        description="An enabled destination with no snapshot for longer than this is stale (Dagster "
        "freshness fails).",
    )


class ScheduleConfig(_Strict):
    time_utc: Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "06:00"
    running: bool = Field(default=False, description="Start the schedule running when first deployed.")

    @property
    def hour(self) -> int:
        return int(self.time_utc[:2])

    @property
    def minute(self) -> int:
        return int(self.time_utc[3:])


class DestinationConfig(_Strict):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+$", max_length=100)]
    type: str
    enabled: bool = True
    warehouse: str | None = None
    ad_account_ids: list[Annotated[str, StringConstraints(min_length=1)]] | None = None
    sync_ids: dict[str, str] = Field(default_factory=dict)
    base_url: HttpUrl | None = None
    token_url: HttpUrl | None = None
    page_size: int | None = Field(default=None, ge=1)
    description: str | None = None
    owners: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    credentials: dict[str, SecretRef] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in PLATFORMS:
            raise ValueError(f"unknown destination type {value!r}; expected one of {sorted(PLATFORMS)}")
        return value

    @field_validator("base_url", "token_url")
    @classmethod
    def _encrypted_unless_local(cls, value: str | None) -> str | None:
        return _check_url(value)

    @field_validator("credentials", mode="before")
    @classmethod
    def _no_literal_secrets(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        for key, item in value.items():
            problem = _literal_secret_problem(key, item)
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _credentials_fit_platform(self) -> DestinationConfig:
        platform = PLATFORMS[self.type]
        if self.page_size is not None and self.page_size > platform.max_page_size:
            raise ValueError(
                f"page_size: {self.page_size} exceeds {platform.title}'s maximum {platform.max_page_size}"
            )
        if self.token_url is not None and platform.default_token_url is None:
            raise ValueError(f"token_url: {platform.title} has no OAuth token endpoint")
        if self.uses_sandbox:
            expected = sandbox_host(self.type)
            if httpx.URL(self.base_url or "").host != expected:
                raise ValueError(f"base_url: the built-in sandbox for {self.type} is https://{expected}")
            if platform.default_token_url and httpx.URL(self.token_url or "").host != expected:
                # else the demo credentials would be posted to the platform's real token endpoint
                raise ValueError(
                    f"token_url: the built-in sandbox for {self.type} serves its token endpoint on {expected}"
                )
            if not self.credentials:
                return self  # the built-in sandbox issues its own demo credentials
        problem = platform.credential_problem(set(self.credentials))
        if problem:
            raise ValueError(f"credentials: {problem}")
        return self

    @property
    def uses_sandbox(self) -> bool:
        return self.base_url is not None and is_sandbox_url(self.base_url)

    @property
    def account_allow_list(self) -> frozenset[str] | None:
        """``ad_account_ids`` in the platform's one form (``act_123`` -> ``123``, ``123-456-7890`` ->
        ``1234567890``), as discovered accounts are compared."""
        if self.ad_account_ids is None:
            return None
        return frozenset(PLATFORMS[self.type].account_id.canonical(i) for i in self.ad_account_ids)

    @property
    def sync_id_of_audience(self) -> dict[str, str]:
        """``sync_ids`` keyed by audience id in the platform's one form (a LinkedIn URN -> its number)."""
        return {PLATFORMS[self.type].audience_id.canonical(k): v for k, v in self.sync_ids.items()}

    @property
    def table(self) -> str:
        return f"{self.type}_{self.id}_audiences".lower()


class HightouchConfig(_Strict):
    """Where to look up which Hightouch sync manages each audience (ht_sync_id)."""

    api_key: SecretRef | None = None
    base_url: HttpUrl = "https://api.hightouch.com/api/v1"

    @field_validator("api_key", mode="before")
    @classmethod
    def _no_literal_key(cls, value: Any) -> Any:
        problem = None if value is None else _literal_secret_problem("api_key", value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("base_url")
    @classmethod
    def _encrypted_unless_local(cls, value: str) -> str | None:
        return _check_url(value)

    @model_validator(mode="after")
    def _key_unless_sandbox(self) -> HightouchConfig:
        if self.uses_sandbox:
            if httpx.URL(self.base_url).host != sandbox_host("hightouch"):
                raise ValueError(
                    f"base_url: the built-in Hightouch sandbox is https://{sandbox_host('hightouch')}/api/v1"
                )
        elif self.api_key is None:
            raise ValueError("api_key: required, as {env: VAR_NAME}")
        return self

    @property
    def uses_sandbox(self) -> bool:
        return is_sandbox_url(self.base_url)


class AuditConfig(_Strict):
    start_date: dt.date
    warehouses: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Warehouse]
    hightouch: HightouchConfig | None = None
    snapshots: SnapshotPolicy = Field(default_factory=SnapshotPolicy)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    destinations: list[DestinationConfig] = Field(default_factory=list)
    _source: str = PrivateAttr(default="the configuration")

    @property
    def source(self) -> str:
        """Where this configuration was read from, for messages that send a person to change it."""
        return self._source

    @field_validator("warehouses", mode="before")
    @classmethod
    def _known_warehouse_types(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for name, item in value.items():
                kind = item.get("type") if isinstance(item, Mapping) else None
                if kind not in WAREHOUSE_TYPES:
                    raise ValueError(
                        f"{name}.type: unsupported warehouse type {kind!r}; expected one of {list(WAREHOUSE_TYPES)}"
                    )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AuditConfig:
        if not self.warehouses:
            raise ValueError("warehouses: at least one warehouse is required")
        seen: dict[str, str] = {}
        for index, dest in enumerate(self.destinations):
            where = f"destinations[{index}]"
            key = dest.id.lower()
            if key in seen:
                raise ValueError(f"{where}.id: duplicate destination id {dest.id!r} (also {seen[key]})")
            seen[key] = where
            if dest.warehouse is None and len(self.warehouses) > 1:
                raise ValueError(f"{where}.warehouse: required when more than one warehouse is configured")
            if dest.warehouse is not None and dest.warehouse not in self.warehouses:
                raise ValueError(f"{where}.warehouse: unknown warehouse {dest.warehouse!r}")
        return self

    def warehouse_name_for(self, dest: DestinationConfig) -> str:
        return dest.warehouse or next(iter(self.warehouses))


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after", "function-before"):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _describe(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_type":
        return "must be a string: quote it (write '48213', not 48213)"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse_config(document: Any, source: str) -> AuditConfig:
    """Validate a parsed YAML document; raise ConfigError naming each offending field."""
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: the configuration must be a YAML mapping")
    try:
        config = AuditConfig.model_validate(document)
    except pydantic.ValidationError as exc:
        # include_input=False: an offending value may be a secret, so it is never echoed.
        problems = [f"  - {_field_path(e['loc'])}: {_describe(e)}" for e in exc.errors(include_input=False)]
        raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(problems)) from None
    config._source = source
    return config


def load_config(path: str | os.PathLike[str] | None = None) -> AuditConfig:
    """Read the config from ``path``, else ``$AUDIT_ASSETS_CONFIG``, else the packaged sandbox default."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV_VAR)
    if chosen:
        source = str(Path(chosen))
        try:
            text = Path(chosen).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read configuration {source}: {exc.strerror}") from None
    else:
        source = f"the packaged {DEFAULT_CONFIG_RESOURCE} (set {CONFIG_ENV_VAR} to use your own)"
        text = resources.files("audit_assets").joinpath(DEFAULT_CONFIG_RESOURCE).read_text(encoding="utf-8")
    try:
        # libyaml's loader where the wheel has it: the same safe subset, parsed in C.
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        # The YAML library quotes the offending line, which may hold a secret: report position only.
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # The problem text itself may quote a token from the line (an alias or tag name): blank quotes.
        problem = re.sub(r"'[^']*'", "'…'", exc.problem or "syntax error")
        raise ConfigError(f"{source} is not valid YAML{where}: {problem}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{source} is not valid YAML") from None
    return parse_config(document, source)
