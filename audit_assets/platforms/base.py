"""The small interface every platform module implements, and the errors a snapshot can fail with."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from audit_assets.columns import ApiField, Column, table_columns
from audit_assets.views import V1Mapping, V2Mapping

if TYPE_CHECKING:
    import httpx

    from audit_assets.platforms.http import ApiSession, Classifier

Audience = dict[str, Any]


class PlatformError(Exception):
    """A platform call failed; the snapshot is abandoned and nothing of it is written."""


class AuthError(PlatformError):
    """The credentials were refused; retrying will not help until they are fixed."""

    def __init__(self, message: str, *, codes: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.codes = codes  # the platform's error codes, e.g. Google's CUSTOMER_NOT_ENABLED


class AccessRefused(PlatformError):
    """The credentials work, but may not read this resource (one ad account's audiences, say)."""

    def __init__(self, message: str, *, codes: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.codes = codes  # the platform's own error codes, e.g. Google's CUSTOMER_NOT_ENABLED


class PageTooLarge(PlatformError):
    """The platform refused a page as too heavy; the same page may be asked for with a smaller size."""


class TransientExhausted(PlatformError):
    """Transient failures (5xx, dropped connections) outlasted every retry; a later attempt may work."""


class ThrottleCapExceeded(PlatformError):
    """The platform asked us to wait longer than the configured cap allows."""


class AccountsNotFound(PlatformError):
    """None of the allow-listed ad accounts is active for these credentials."""


class TokenEndpointUnavailable(PlatformError):
    """An OAuth token endpoint failed transiently (5xx, 429); the shared HTTP policy retries."""


class BadResponse(PlatformError):
    """The platform answered with something that is not what its API documents."""


class Interrupted(PlatformError):
    """The snapshot this session serves is over (it failed elsewhere, or its run was stopped)."""


@dataclass(frozen=True)
class AdAccount:
    """An ad account as discovery found it, active or not (the snapshot keeps the active ones)."""

    id: str  # without platform prefixes such as act_
    name: str | None = None
    status: str | None = None  # the platform's own word for the account's state, as it answered
    active: bool = True  # whether that state means the account's audiences are snapshotted
    unreadable: str | None = None  # why discovery already knows its audiences cannot be read


@dataclass(frozen=True)
class IdForm:
    """The ways people write one kind of platform id (as copied from its UI or API), and its one form.

    ``canonical`` strips a known prefix (``act_``, ``customers/``, a URN) and the separators people
    type for readability (Google's ``123-456-7890``), giving the id as the snapshot records it.
    """

    prefixes: tuple[str, ...] = ()
    separators: str = ""

    def canonical(self, value: str) -> str:
        value = value.strip()
        for prefix in self.prefixes:
            value = value.removeprefix(prefix)
        return value.translate({ord(c): None for c in self.separators})


@dataclass(frozen=True)
class ClientSettings:
    """What a platform client needs from the destination's configuration, secrets already resolved."""

    base_url: str
    token_url: str | None
    credentials: Mapping[str, str]
    page_size: int


@dataclass(frozen=True)
class AuthContext:
    """What a platform needs to build its httpx auth: secrets resolved, and where to report new ones."""

    credentials: Mapping[str, str]
    token_url: str | None
    remember_secret: Callable[[str], None]  # every token obtained at run time must be redacted too


class AudienceClient(Protocol):
    """Discovery and listing for one destination; one instance lives for one snapshot."""

    def discover_accounts(self) -> list[AdAccount]:
        """Every ad account the credentials can see, each marked active or not by its own status."""
        ...

    def audience_pages(self, account: AdAccount) -> Iterator[list[Audience]]: ...


@dataclass(frozen=True)
class Platform:
    """Everything the rest of the code location knows about one ad platform."""

    slug: str
    title: str
    default_base_url: str
    credential_sets: tuple[frozenset[str], ...]  # any one complete set is enough
    optional_credentials: frozenset[str]
    fields: tuple[ApiField, ...]
    audience_id_field: str  # API name of the field holding the audience id
    v1: V1Mapping
    v2: V2Mapping  # v2 adds the platform's size range, audience type and status
    default_page_size: int
    max_page_size: int
    connect: Callable[[ClientSettings, ApiSession], AudienceClient]
    auth: Callable[[AuthContext], httpx.Auth]  # how credentials travel (headers, signing, refresh)
    classify: Classifier  # the platform's own throttle, auth and error signals
    default_token_url: str | None = None
    account_id: IdForm = IdForm()  # how people write an ad account id (ad_account_ids, login ids)
    audience_id: IdForm = IdForm()  # how people write an audience id (the keys of sync_ids)
    # Ad accounts fetched at once in a snapshot (fetching.py). Bounded, since every platform limits
    # calls per app or user; a throttle holds back every one of them (http.py).
    concurrent_accounts: int = 4

    @functools.cached_property
    def columns(self) -> tuple[Column, ...]:
        return table_columns(self.fields)

    @functools.cached_property
    def field_names(self) -> frozenset[str]:
        """The API fields a column holds; any other field of an audience is drift."""
        return frozenset(f.api_name for f in self.fields)

    @property
    def secret_names(self) -> frozenset[str]:
        return frozenset().union(*self.credential_sets) | self.optional_credentials

    def credential_problem(self, given: set[str]) -> str | None:
        """Say what is wrong with a set of credential names, or None when they fit."""
        unknown = sorted(given - self.secret_names)
        if unknown:
            return (
                f"unknown credential field(s) {unknown} for {self.slug}; expected {sorted(self.secret_names)}"
            )
        if any(required <= given for required in self.credential_sets):
            return None
        options = " or ".join(str(sorted(s)) for s in self.credential_sets)
        return f"{self.slug} needs {options}"


def require_mapping(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise BadResponse(f"{what}: expected a JSON object, got {type(body).__name__}")
    return body


def require_object_list(value: Any, name: str, where: str) -> list[dict[str, Any]]:
    """``value`` as a list of JSON objects (audiences, accounts, rows), or BadResponse naming ``name``."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BadResponse(f"{where} has no {name} list of objects")
    return value
