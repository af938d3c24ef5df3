"""What every emulator shares: generated data (accounts, audiences, daily sizes), faults, and the one
mechanism for credentials, token endpoints and error envelopes, so each emulator declares only its wire
format."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Protocol, TypedDict, Unpack

import httpx

from audit_assets.sandbox.oauth import TokenIssuer


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def stable_int(*parts: object) -> int:
    """A 64-bit integer that depends only on ``parts``: the same world on every machine and run."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def unit(*parts: object) -> float:
    return stable_int(*parts) / 2**64


@dataclass(frozen=True)
class SandboxAccount:
    id: str
    name: str
    active: bool = True
    audiences: int = 8
    readable: bool = True  # False: the credentials see the account but may not read its audiences


DEFAULT_ACCOUNTS: tuple[SandboxAccount, ...] = (
    SandboxAccount("1000000001", "Sandbox Retail", audiences=8),
    SandboxAccount("1000000002", "Sandbox Travel", audiences=5),
    SandboxAccount("1000000003", "Sandbox Archive (closed)", active=False, audiences=3),
)

AUDIENCE_NAMES = (
    "Purchasers 180d",
    "Newsletter subscribers",
    "Cart abandoners 30d",
    "Lookalike 1% - Purchasers",
    "Website visitors 90d",
    "App installers",
    "Engaged video viewers",
    "High LTV customers",
    "Churn risk",
    "Loyalty members",
)


# What each of AUDIENCE_NAMES is, in the same order: each platform names these kinds its own way.
AUDIENCE_KINDS = (
    "customer_list",
    "customer_list",
    "cart",
    "lookalike",
    "website",
    "app",
    "engagement",
    "customer_list",
    "customer_list",
    "customer_list",
)


def audience_kind(index: int) -> str:
    """The kind of the index-th audience of any account (its name says the same)."""
    return AUDIENCE_KINDS[index % len(AUDIENCE_KINDS)]


def audience_name(account_id: str, index: int) -> str:
    base = AUDIENCE_NAMES[index % len(AUDIENCE_NAMES)]
    cycle = index // len(AUDIENCE_NAMES)
    return base if cycle == 0 else f"{base} #{cycle + 1}"


def daily_size(key: str, day: dt.date) -> int:
    """An audience size that drifts from day to day around a stable, log-uniform base."""
    base = 10 ** (3 + 3.7 * unit(key, "base"))  # 1,000 .. ~5,000,000
    trend = 1 + 0.004 * (day.toordinal() % 365) * (unit(key, "trend") - 0.3)
    wave = 1 + 0.03 * math.sin(day.toordinal() / 7 + 6.28 * unit(key, "phase"))
    noise = 1 + 0.01 * (unit(key, day.isoformat()) - 0.5)
    return max(0, int(base * trend * wave * noise))


def opaque_cursor(*state: int | str) -> str:
    """A paging cursor as platforms hand them out: opaque text carrying where the next page starts."""
    return base64.urlsafe_b64encode(json.dumps(list(state)).encode()).decode()


def read_cursor(raw: str, *kinds: type) -> tuple[Any, ...]:
    """The state in a cursor this sandbox gave out, of ``kinds``; ValueError for anything else, which
    each emulator answers with its platform's own refusal of a bad cursor."""
    try:
        state = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (ValueError, binascii.Error) as exc:
        raise ValueError("not a cursor of this sandbox") from exc
    if not isinstance(state, list) or [type(v) for v in state] != list(kinds):
        raise ValueError("not a cursor of this sandbox")
    return tuple(state)


class FaultKind(Enum):
    THROTTLE = "throttle"  # the platform's own throttle signal
    SERVER_ERROR = "server_error"  # a 5xx
    MALFORMED = "malformed"  # HTTP 200 with a body that is not JSON
    DISCONNECT = "disconnect"  # the connection drops before a response


@dataclass
class Fault:
    kind: FaultKind
    times: int = 1
    path_contains: str = ""  # only requests whose path contains this
    wait_minutes: int = 0  # for THROTTLE: what the platform says to wait


@dataclass
class Faults:
    """Faults to inject, consumed in order by matching requests; safe across server threads."""

    planned: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self, kind: FaultKind, *, times: int = 1, path_contains: str = "", wait_minutes: int = 0
    ) -> Faults:
        self.planned.append(Fault(kind, times, path_contains, wait_minutes))
        return self

    def take(self, request: httpx.Request) -> Fault | None:
        with self._lock:
            for fault in self.planned:
                if fault.times > 0 and fault.path_contains in request.url.path:
                    fault.times -= 1
                    return fault
        return None


class Emulator(ABC):
    """Base of every platform emulator: counts requests, injects planned faults, caps page sizes.

    ``page_cap`` plays a server that serves fewer items per page than a client asks for (a lowered
    maximum, a server under load); each emulator reports the size it served wherever its platform does.
    """

    def __init__(
        self, faults: Faults | None, today: Callable[[], dt.date], page_cap: int | None = None
    ) -> None:
        self.faults = faults or Faults()
        self.today = today
        self.page_cap = page_cap
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        fault = self.faults.take(request)
        if fault is None:
            return self.respond(request)
        if fault.kind is FaultKind.DISCONNECT:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if fault.kind is FaultKind.MALFORMED:
            return httpx.Response(
                200, headers={"content-type": "application/json"}, content=b'{"data": [{"id": "12'
            )
        return self.fault_response(request, fault)

    def served(self, asked: int) -> int:
        """How many items this server puts on a page when ``asked`` for that many."""
        return asked if self.page_cap is None else min(asked, self.page_cap)

    @abstractmethod
    def respond(self, request: httpx.Request) -> httpx.Response:
        """Answer a request the way the platform does."""

    @abstractmethod
    def fault_response(self, request: httpx.Request, fault: Fault) -> httpx.Response:
        """Answer with the platform's own form of a throttle or server error."""


@dataclass(frozen=True)
class WireError:
    """One error as a platform words it, before its envelope: the envelope adds what every error of that
    platform carries (request ids, nesting, a Date header), so each refusal is declared once as data."""

    status: int
    code: Any  # the platform's own error code, of its own type; None where it has none
    message: str
    extra: Mapping[str, Any] = field(default_factory=dict)  # further fields, by the platform's own names
    headers: Mapping[str, str] = field(default_factory=dict)


class Credential(Protocol):
    """One check every API request must pass: None when it does, else the platform's refusal."""

    def refusal(self, request: httpx.Request) -> WireError | None: ...


@dataclass(frozen=True)
class HeaderCredential:
    """A credential carried in one header: which header, which values are good now, how a bad one is
    refused. ``accepted`` may count a use (tokens that die mid-snapshot), so it sees each request once."""

    header: str
    accepted: Callable[[str], bool]
    refused: WireError
    scheme: str = ""  # e.g. "Bearer ": a value without it is refused
    missing: WireError | None = None  # the platform's own refusal of an absent value; None: ``refused``
    query: str | None = None  # a query parameter the platform also takes it from, before the header

    def refusal(self, request: httpx.Request) -> WireError | None:
        value = request.url.params.get(self.query) if self.query else None
        if not value:
            raw = request.headers.get(self.header, "")
            value = raw.removeprefix(self.scheme) if raw.startswith(self.scheme) else ""
        if not value:
            return self.missing or self.refused
        return None if self.accepted(value) else self.refused


def bearer(accepted: Callable[[str], bool], refused: WireError, **options: Any) -> HeaderCredential:
    """The usual case: an ``Authorization: Bearer <token>`` header."""
    return HeaderCredential("authorization", accepted, refused, scheme="Bearer ", **options)


def one_of(tokens: Collection[str]) -> Callable[[str], bool]:
    """``accepted`` for fixed tokens."""
    return frozenset(tokens).__contains__


class ApiEmulator(Emulator):
    """An emulated API built from declarations: its credentials, its OAuth token endpoint, its error
    envelope and its throttle and 5xx. A subclass adds routing and bodies; whatever it refuses goes
    through ``envelope``, the one place its error shape is built."""

    credentials: Sequence[Credential] = ()  # checked in order on every API request
    issuer: TokenIssuer | None = None  # answers POSTs to ``token_path``
    token_path: ClassVar[str] = ""
    server_error: ClassVar[WireError]  # the platform's own 5xx

    def respond(self, request: httpx.Request) -> httpx.Response:
        if (
            self.issuer is not None
            and request.method == "POST"
            and request.url.path.endswith(self.token_path)
        ):
            return self.token_answer(request, self.issuer)
        for credential in self.credentials:
            refused = credential.refusal(request)
            if refused is not None:
                return self.envelope(request, refused)
        return self.route(request)

    def fault_response(self, request: httpx.Request, fault: Fault) -> httpx.Response:
        if fault.kind is FaultKind.THROTTLE:
            return self.envelope(request, self.throttled(request, fault))
        return self.envelope(request, self.server_error)

    def error(
        self,
        request: httpx.Request,
        status: int,
        code: Any,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> httpx.Response:
        """An error met while routing, in the platform's envelope."""
        return self.envelope(request, WireError(status, code, message, extra, dict(headers or {})))

    def token_answer(self, request: httpx.Request, issuer: TokenIssuer) -> httpx.Response:
        """The token endpoint's answer; a platform that words it its own way overrides this."""
        return issuer.token_response(request)

    @abstractmethod
    def envelope(self, request: httpx.Request, error: WireError) -> httpx.Response:
        """``error`` in the platform's own error envelope."""

    @abstractmethod
    def throttled(self, request: httpx.Request, fault: Fault) -> WireError:
        """The platform's throttle signal for a planned throttle (``fault.wait_minutes``)."""

    @abstractmethod
    def route(self, request: httpx.Request) -> httpx.Response:
        """Answer an authorised request the way the platform does."""


class EmulatorOptions(TypedDict, total=False):
    """What every platform emulator takes besides its accounts and its own settings."""

    faults: Faults | None  # faults to inject, in order
    today: Callable[[], dt.date]  # the emulator's day, for sizes that change daily
    page_cap: int | None  # serve at most this many items per page, whatever was asked


class PlatformEmulator(ApiEmulator):
    """An ad platform's emulator: the ad accounts it serves, on top of what every emulator does."""

    def __init__(
        self, accounts: Sequence[SandboxAccount] = DEFAULT_ACCOUNTS, **options: Unpack[EmulatorOptions]
    ) -> None:
        super().__init__(options.get("faults"), options.get("today", utc_today), options.get("page_cap"))
        self.accounts = {a.id: a for a in accounts}
