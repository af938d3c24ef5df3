"""HTTP behaviour shared by every platform: retries, backoff with jitter, throttle waits, redaction.

A platform module only *classifies* a response (throttled? auth failure? transient?); this module
decides what to do about it, the same way for every platform.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from audit_assets.platforms.base import (
    AccessRefused,
    AuthError,
    BadResponse,
    Interrupted,
    PageTooLarge,
    PlatformError,
    ThrottleCapExceeded,
    TokenEndpointUnavailable,
    TransientExhausted,
)

REDACTED = "[redacted]"

# httpx logs every request's full URL at INFO. Some platforms require a credential in the query
# (TikTok's app secret for advertiser discovery), so that log stays off; ApiSession names each call.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Throttled:
    """The platform asked us to slow down; ``wait_seconds`` is its own estimate, if it gave one."""

    detail: str
    wait_seconds: float | None = None


@dataclass(frozen=True)
class Transient:
    """A failure worth retrying with backoff (5xx, a platform's "temporary" error)."""

    detail: str


@dataclass(frozen=True)
class AuthFailed:
    detail: str
    codes: frozenset[str] = frozenset()  # the platform's own error codes, for callers that branch on them


@dataclass(frozen=True)
class Refused:
    """The credentials are valid but may not read this resource (an account's audiences)."""

    detail: str
    codes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Shrink:
    """The page asked for is too heavy for the platform; the same page with fewer items may pass."""

    detail: str


@dataclass(frozen=True)
class Fatal:
    detail: str


Verdict = Throttled | Transient | AuthFailed | Refused | Shrink | Fatal
# (response, parsed JSON body or None) -> a verdict, or None for "no platform-specific opinion".
Classifier = Callable[[httpx.Response, Any], Verdict | None]


@dataclass(frozen=True)
class RetrySettings:
    max_retries: int = 5
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 120.0
    max_throttle_wait_seconds: float = 900.0


class Redactor:
    """Replaces every known secret value in a text; applied to every message we raise or log."""

    def __init__(self, secrets: Sequence[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        """Also redact a secret obtained at run time (a refreshed access token)."""
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets = sorted({*self._secrets, secret}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            # Also the escaped form (repr), in which messages quote a secret holding a newline or tab.
            for form in {secret, repr(secret)[1:-1]}:
                text = text.replace(form, REDACTED)
        return text


class BearerAuth(httpx.Auth):
    """Sends a token in the Authorization header, so it never appears in a URL."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = self._header
        yield request


class ApiSession:
    """One keep-alive HTTP client for one snapshot, with the retry and throttle policy applied."""

    def __init__(
        self,
        *,
        client: httpx.Client,
        platform_title: str,
        classify: Classifier,
        settings: RetrySettings,
        redact: Redactor,
        log: logging.Logger,
        sleep: Callable[[float], None] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._title = platform_title
        self._classify = classify
        self._settings = settings
        self._redact = redact
        self._log = log
        self._interrupted = threading.Event()
        self._sleep = sleep or self._wait
        self._jitter = jitter
        self.throttle_waited_seconds = 0.0
        self._throttles = 0
        self.requests_sent = 0
        self._counting = threading.Lock()
        # Held while a throttle is waited out: every other thread of this session waits at its next
        # request, since a platform's throttle applies to the app or account, not to one request.
        self._throttle_gate = threading.Lock()

    @property
    def log(self) -> logging.Logger:
        return self._log

    def interrupt(self) -> None:
        """End every wait (a throttle, a retry's backoff) and refuse every further request: the snapshot
        is over, and its other threads should not outlive it by minutes of waiting."""
        self._interrupted.set()

    def _wait(self, seconds: float) -> None:
        if self._interrupted.wait(seconds):
            raise Interrupted(f"{self._title}: the snapshot ended while this request waited")

    def get_json(self, url: str, *, params: Mapping[str, Any] | None = None, what: str) -> Any:
        return self.request_json("GET", url, params=params, what=what)

    def request_json(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send a request until it succeeds or the policy gives up; return the parsed JSON body.

        ``what`` names the call in every message ("listing audiences of account 123"), because a URL
        alone tells an operator little and may carry identifiers they would rather not log.
        """
        failures = 0
        while True:
            with self._throttle_gate:  # wait while another thread waits out a throttle
                pass
            if self._interrupted.is_set():
                raise Interrupted(f"{self._title}: the snapshot ended before {what}")
            with self._counting:
                self.requests_sent += 1
            try:
                response = self._client.request(method, url, params=params, json=json_body, headers=headers)
            except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as exc:
                # Our own request is malformed, e.g. a secret with a trailing newline in a header. The
                # exception text quotes that header, so only its type is reported; retrying cannot help.
                raise PlatformError(
                    f"{self._title} could not send a request while {what} ({type(exc).__name__}): a "
                    "credential or URL is malformed, for example a secret with a trailing newline"
                ) from None
            except AuthError as exc:  # raised inside an auth flow (an OAuth refresh was refused)
                raise AuthError(
                    self._redact(f"{self._title}, while {what}: {exc}"), codes=exc.codes
                ) from None
            except (httpx.TransportError, TokenEndpointUnavailable) as exc:
                failures = self._retry_or_raise(failures, f"{type(exc).__name__}: {exc}", what)
                continue
            body, parse_error = _parse_json(response)
            verdict = self._classify(response, body)
            if verdict is None:
                verdict = _default_verdict(response, body, parse_error)
            if verdict is None:
                return body
            if isinstance(verdict, Throttled):
                self._wait_out_throttle(verdict, what)
            elif isinstance(verdict, Transient):
                failures = self._retry_or_raise(failures, verdict.detail, what)
            elif isinstance(verdict, AuthFailed):
                raise AuthError(
                    self._redact(f"{self._title} refused the credentials while {what}: {verdict.detail}"),
                    codes=verdict.codes,
                )
            elif isinstance(verdict, Shrink):
                raise PageTooLarge(
                    self._redact(f"{self._title} refused a page as too heavy while {what}: {verdict.detail}")
                )
            elif isinstance(verdict, Refused):
                raise AccessRefused(
                    self._redact(f"{self._title} refused access while {what}: {verdict.detail}"),
                    codes=verdict.codes,
                )
            else:
                raise (BadResponse if parse_error else PlatformError)(
                    self._redact(f"{self._title} failed while {what}: {verdict.detail}")
                )

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._settings.max_delay_seconds, self._settings.base_delay_seconds * 2**attempt)
        return ceiling / 2 + self._jitter() * ceiling / 2  # "equal jitter": never zero, never in lockstep

    def _retry_or_raise(self, failures: int, detail: str, what: str) -> int:
        if failures >= self._settings.max_retries:
            raise TransientExhausted(
                self._redact(f"{self._title} failed while {what} after {failures + 1} attempts: {detail}")
            )
        delay = self._backoff(failures)
        self._log.warning(self._redact(f"{self._title}: {detail} while {what}; retrying in {delay:.1f}s"))
        self._sleep(delay)
        return failures + 1

    def _wait_out_throttle(self, verdict: Throttled, what: str) -> None:
        with self._throttle_gate:
            self._wait_out_throttle_holding_the_gate(verdict, what)

    def _wait_out_throttle_holding_the_gate(self, verdict: Throttled, what: str) -> None:
        # No estimate (or "0 minutes"): back off further with every throttle, so the cap is reached.
        wait = verdict.wait_seconds
        if wait is None or wait <= 0:
            wait = self._backoff(self._throttles)
        self._throttles += 1
        cap = self._settings.max_throttle_wait_seconds
        if self.throttle_waited_seconds + wait > cap:
            raise ThrottleCapExceeded(
                self._redact(
                    f"{self._title} is throttling us while {what} ({verdict.detail}) and asks us to wait "
                    f"{wait:.0f}s; with {self.throttle_waited_seconds:.0f}s already waited that exceeds the "
                    f"cap of {cap:.0f}s (snapshots.max_throttle_wait_seconds). Nothing was written; "
                    "materialize the partition again later."
                )
            )
        self._log.warning(
            self._redact(f"{self._title} throttled us while {what} ({verdict.detail}); waiting {wait:.0f}s")
        )
        self._sleep(wait)
        self.throttle_waited_seconds += wait


def _parse_json(response: httpx.Response) -> tuple[Any, str | None]:
    # orjson: the same JSON, parsed several times faster than json.loads (an integer beyond 64 bits
    # becomes a float, so an int64 column refuses it all the same).
    try:
        return orjson.loads(response.content), None
    except orjson.JSONDecodeError as exc:
        return None, f"the response body is not valid JSON ({type(exc).__name__} at {_position(exc)})"


def _position(exc: Exception) -> str:
    pos = getattr(exc, "pos", None)
    return f"byte {pos}" if pos is not None else "decoding"


def _default_verdict(response: httpx.Response, body: Any, parse_error: str | None) -> Verdict | None:
    status = response.status_code
    if status == 429:
        return Throttled(f"HTTP {status}", retry_after_seconds(response))
    if status >= 500:
        return Transient(f"HTTP {status}")
    if status in (401, 403):
        return AuthFailed(f"HTTP {status}")
    if status >= 400:
        return Fatal(f"HTTP {status}")
    if parse_error:
        return Fatal(f"HTTP {status}, but {parse_error}")
    return None


def header_number(headers: httpx.Headers, name: str) -> float | None:
    """A numeric header (rate-limit resets and the like), or None when absent or not a number."""
    value = headers.get(name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds, when it is a number."""
    return header_number(response.headers, "retry-after")
