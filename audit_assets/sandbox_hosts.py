"""Where the built-in sandbox answers: hosts under ``sandbox.invalid``, a reserved name that never resolves.

Only the naming convention lives here, so configuration can tell a sandbox destination from a real one
without importing the emulators (audit_assets.sandbox); resources.py alone picks them.
"""

import functools

import httpx

SANDBOX_DOMAIN = "sandbox.invalid"


def sandbox_host(name: str) -> str:
    """The in-process host of one emulator: ``google_ads`` -> ``google-ads.sandbox.invalid``."""
    return f"{name.replace('_', '-')}.{SANDBOX_DOMAIN}"


@functools.cache  # hundreds of destinations share a few URLs, and each is checked at load
def is_sandbox_url(url: str) -> bool:
    host = httpx.URL(url).host
    return host == SANDBOX_DOMAIN or host.endswith(f".{SANDBOX_DOMAIN}")
