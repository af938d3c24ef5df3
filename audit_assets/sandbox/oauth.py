"""An OAuth 2.0 authorization server for the emulators: the refresh-token grant (RFC 6749 §6).

Each emulator with OAuth owns one ``TokenIssuer``: it answers the platform's token endpoint and tells
whether an access token is valid. ``expire_after_uses`` makes tokens die mid-snapshot, as real ones do.
"""

from __future__ import annotations

import base64
import itertools
import threading
from collections.abc import Collection, Mapping
from urllib.parse import parse_qsl

import httpx


class TokenIssuer:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        client_auth: str = "form",  # "form" or "basic"
        expires_in: int = 3600,
        expire_after_uses: int | None = None,
        rotate_refresh_token: bool = False,
        prefix: str = "sbx",
        long_lived: Collection[str] = (),
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.client_auth = client_auth
        self.expires_in = expires_in
        self.expire_after_uses = expire_after_uses
        self.rotate_refresh_token = rotate_refresh_token
        self._prefix = prefix
        self.long_lived = frozenset(long_lived)  # tokens issued outside the sandbox, which never expire
        self._counter = itertools.count(1)
        self._uses: dict[str, int] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def token_response(self, request: httpx.Request) -> httpx.Response:
        """Answer a POST to the token endpoint with a new access token, or an RFC 6749 §5.2 error."""
        form = dict(parse_qsl(request.content.decode()))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if self.client_auth == "basic":
            client_id, client_secret = _basic_credentials(request.headers)
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return httpx.Response(
                401, json={"error": "invalid_client", "error_description": "Client authentication failed"}
            )
        if form.get("grant_type") != "refresh_token":
            return httpx.Response(400, json={"error": "unsupported_grant_type"})
        if form.get("refresh_token") != self.refresh_token:
            return httpx.Response(
                400, json={"error": "invalid_grant", "error_description": "Invalid refresh token"}
            )
        with self._lock:
            token = f"{self._prefix}-access-{next(self._counter)}"
            self._uses[token] = 0
            self.issued += 1
            body: dict[str, object] = {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.expires_in,
            }
            if self.rotate_refresh_token:
                self.refresh_token = f"{self._prefix}-refresh-{self.issued}"
                body["refresh_token"] = self.refresh_token
        return httpx.Response(200, json=body)

    def accepts(self, token: str) -> bool:
        """Whether an access token is valid now; each call counts as one use of an issued token."""
        if token in self.long_lived:
            return True
        with self._lock:
            if token not in self._uses:
                return False
            self._uses[token] += 1
            return self.expire_after_uses is None or self._uses[token] <= self.expire_after_uses


def _basic_credentials(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    value = headers.get("authorization", "")
    if not value.startswith("Basic "):
        return None, None
    try:
        client_id, _, secret = base64.b64decode(value[6:]).decode().partition(":")
    except ValueError:
        return None, None
    return client_id, secret
