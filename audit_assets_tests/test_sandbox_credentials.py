"""The emulators' shared credential check, on the wire cases no client of ours sends.

The clients always send a well-formed credential, so the contract suite never shows that the sandbox
refuses a token without its scheme, or answers an absent token with the platform's own "missing" error.
These are the platforms' documented answers (shared/reference/ad_platform_apis.md), kept true here.
"""

from __future__ import annotations

import httpx

from audit_assets.sandbox.meta import DEMO_CREDENTIALS as META
from audit_assets.sandbox.meta import MetaGraphSandbox
from audit_assets.sandbox.tiktok import DEMO_CREDENTIALS as TIKTOK
from audit_assets.sandbox.tiktok import TikTokBusinessSandbox

META_ACCOUNTS = "https://graph.facebook.com/v25.0/me/adaccounts"
TIKTOK_ADVERTISERS = "https://business-api.tiktok.com/open_api/v1.3/advertiser/info/?advertiser_ids=[]"


def meta_answer(authorization: str | None) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return MetaGraphSandbox().handle(httpx.Request("GET", META_ACCOUNTS, headers=headers))


def test_a_bearer_token_without_its_scheme_is_refused_like_a_wrong_one() -> None:
    assert meta_answer(f"Bearer {META['access_token']}").status_code == 200
    bare, wrong = meta_answer(META["access_token"]), meta_answer("Bearer not-the-token")
    assert bare.status_code == wrong.status_code == 400
    assert bare.json()["error"]["code"] == wrong.json()["error"]["code"] == 190  # Graph: invalid OAuth token


def test_tiktok_tells_an_absent_token_from_a_wrong_one() -> None:
    def answer(headers: dict[str, str]) -> dict:
        return (
            TikTokBusinessSandbox().handle(httpx.Request("GET", TIKTOK_ADVERTISERS, headers=headers)).json()
        )

    assert answer({})["code"] == 40104  # "Access token is null"
    assert answer({"Access-Token": "not-the-token"})["code"] == 40105  # "incorrect or has been revoked"
    assert answer({"Access-Token": TIKTOK["access_token"]})["code"] != 40105
