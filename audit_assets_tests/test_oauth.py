"""The shared OAuth refresh flow over real httpx, against an RFC 6749 token endpoint and a 401-ing API."""

from __future__ import annotations

import logging

import httpx
import pytest

from audit_assets.platforms.base import AuthError
from audit_assets.platforms.http import ApiSession, Redactor, RetrySettings
from audit_assets.platforms.oauth import RefreshGrant, RefreshingBearerAuth
from audit_assets.sandbox.oauth import TokenIssuer

TOKEN_URL = "https://auth.example.test/oauth/token"


class Api:
    """A minimal platform: a token endpoint and one resource that wants a valid bearer token."""

    def __init__(self, issuer: TokenIssuer, token_errors: int = 0) -> None:
        self.issuer = issuer
        self.token_errors = token_errors
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        if request.url.path == "/oauth/token":
            if self.token_errors:
                self.token_errors -= 1
                return httpx.Response(503, text="unavailable")
            return self.issuer.token_response(request)
        if not self.issuer.accepts(request.headers.get("authorization", "").removeprefix("Bearer ")):
            return httpx.Response(401, json={"message": "token expired"})
        return httpx.Response(200, json={"ok": True})


def session_for(
    api: Api, grant: RefreshGrant, secrets: list[str]
) -> tuple[ApiSession, RefreshingBearerAuth, Redactor]:
    redact = Redactor(secrets)
    auth = RefreshingBearerAuth(grant, remember_secret=redact.add)
    client = httpx.Client(transport=httpx.MockTransport(api), auth=auth)
    session = ApiSession(
        client=client, platform_title="Test", classify=lambda r, b: None, settings=RetrySettings(),
        redact=redact, log=logging.getLogger("test"), sleep=lambda _: None,
    )  # fmt: skip
    return session, auth, redact


@pytest.mark.parametrize("client_auth", ["form", "basic"])
def test_token_is_fetched_once_and_refreshed_when_it_dies_mid_run(client_auth: str) -> None:
    issuer = TokenIssuer(client_id="cid", client_secret="csecret", refresh_token="rt-1", client_auth=client_auth,
                         expire_after_uses=2)  # fmt: skip
    api = Api(issuer)
    grant = RefreshGrant(TOKEN_URL, "cid", "csecret", "rt-1", client_auth=client_auth)  # type: ignore[arg-type]
    session, auth, _ = session_for(api, grant, ["csecret", "rt-1"])
    for _ in range(5):
        assert session.get_json("https://api.example.test/items", what="listing") == {"ok": True}
    # token 1 serves 2 calls, the 3rd gets 401 -> refresh -> replay; token 2 serves 2 more, then again.
    assert auth.refreshes == 3
    assert api.calls.count("/items") == 7


def test_rotated_refresh_tokens_are_used_and_every_token_is_redacted() -> None:
    issuer = TokenIssuer(client_id="cid", client_secret="csecret", refresh_token="rt-1", expire_after_uses=1,
                         rotate_refresh_token=True, prefix="tok")  # fmt: skip
    session, auth, redact = session_for(
        Api(issuer), RefreshGrant(TOKEN_URL, "cid", "csecret", "rt-1"), ["rt-1"]
    )
    for _ in range(3):
        session.get_json("https://api.example.test/items", what="listing")
    assert auth.refreshes == 3
    assert redact("tok-access-3 tok-refresh-2") == "[redacted] [redacted]"


def test_a_refused_refresh_token_is_an_auth_error_without_secrets() -> None:
    issuer = TokenIssuer(client_id="cid", client_secret="csecret", refresh_token="the-real-one")
    session, _, _ = session_for(Api(issuer), RefreshGrant(TOKEN_URL, "cid", "csecret", "stale-token"), [])
    with pytest.raises(AuthError, match="invalid_grant") as info:
        session.get_json("https://api.example.test/items", what="listing")
    assert "stale-token" not in str(info.value) and "csecret" not in str(info.value)
    assert "while listing" in str(info.value), "the refusal says which call needed the token"


def test_a_token_endpoint_outage_is_retried_by_the_shared_policy() -> None:
    issuer = TokenIssuer(client_id="cid", client_secret="csecret", refresh_token="rt")
    api = Api(issuer, token_errors=2)
    session, auth, _ = session_for(api, RefreshGrant(TOKEN_URL, "cid", "csecret", "rt"), [])
    assert session.get_json("https://api.example.test/items", what="listing") == {"ok": True}
    assert api.calls.count("/oauth/token") == 3 and auth.refreshes == 1
