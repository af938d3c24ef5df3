"""OAuth 2.0 refresh-token grant (RFC 6749 §6) as an httpx auth flow, shared by every platform that has one.

The flow fetches an access token before the first request, refreshes it shortly before it expires,
and refreshes once more when an API answers 401 mid-snapshot (a token revoked or expired early), then
replays that request. Every token it obtains is handed to the redactor before it is used.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx

from audit_assets.platforms.base import AuthError, TokenEndpointUnavailable

EXPIRY_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class RefreshGrant:
    """Everything needed to exchange a refresh token for an access token at one endpoint."""

    token_url: str
    client_id: str
    client_secret: str
    refresh_token: str
    client_auth: Literal["form", "basic"] = "form"  # Pinterest wants HTTP Basic (RFC 6749 §2.3.1)
    extra_form: Mapping[str, str] = field(default_factory=dict)


class RefreshingBearerAuth(httpx.Auth):
    requires_response_body = True

    def __init__(
        self,
        grant: RefreshGrant,
        *,
        remember_secret: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._grant = grant
        self._refresh_token = grant.refresh_token
        self._remember = remember_secret
        self._clock = clock
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.refreshes = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # Accounts are fetched by several threads at once: one refreshes, the others use its token.
        with self._lock:
            if self._access_token is None or self._clock() >= self._expires_at - EXPIRY_MARGIN_SECONDS:
                yield from self._refresh()
            token = self._access_token
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            with self._lock:
                if self._access_token == token:  # not refreshed by another thread meanwhile
                    yield from self._refresh()
                token = self._access_token
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def _refresh(self) -> Generator[httpx.Request, httpx.Response, None]:
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token, **self._grant.extra_form}
        headers = {"accept": "application/json"}
        if self._grant.client_auth == "basic":
            pair = f"{self._grant.client_id}:{self._grant.client_secret}".encode()
            headers["authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        else:
            form |= {"client_id": self._grant.client_id, "client_secret": self._grant.client_secret}
        response = yield httpx.Request("POST", self._grant.token_url, data=form, headers=headers)
        host = httpx.URL(self._grant.token_url).host
        if response.status_code == 429 or response.status_code >= 500:
            raise TokenEndpointUnavailable(
                f"the token endpoint at {host} answered HTTP {response.status_code}"
            )
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            raise AuthError(
                f"refreshing the access token at {host} failed (HTTP {response.status_code}"
                f"{_oauth_error(body)}). The refresh token or client credentials were refused: authorise "
                "the app again and update the secrets"
            )
        self._access_token = str(body["access_token"])
        self._remember(self._access_token)
        if body.get("refresh_token"):  # some platforms rotate refresh tokens
            self._refresh_token = str(body["refresh_token"])
            self._remember(self._refresh_token)
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._expires_at = self._clock() + lifetime
        self.refreshes += 1


def _oauth_error(body: object) -> str:
    """The RFC 6749 §5.2 error code and description, which never carry a credential."""
    if not isinstance(body, dict) or "error" not in body:
        return ""
    text = f", {body['error']}"
    if body.get("error_description"):
        text += f": {body['error_description']}"
    return text
