"""A built-in emulator of each platform's real wire format, serving generated audiences.

It is a test double of the *platforms*, never of our code: clients talk HTTP to it through httpx,
either in-process (hosts under ``sandbox.invalid``, a reserved name that can never resolve) or as
a real HTTP server on 127.0.0.1.
"""

import httpx

SANDBOX_DOMAIN = "sandbox.invalid"


def sandbox_host(name: str) -> str:
    """The in-process host of one emulator: ``google_ads`` -> ``google-ads.sandbox.invalid``."""
    return f"{name.replace('_', '-')}.{SANDBOX_DOMAIN}"


def is_sandbox_url(url: str) -> bool:
    host = httpx.URL(url).host
    return host == SANDBOX_DOMAIN or host.endswith(f".{SANDBOX_DOMAIN}")
