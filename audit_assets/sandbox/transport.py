"""Routes requests for ``*.sandbox.invalid`` hosts to in-process platform emulators."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from audit_assets.sandbox import SANDBOX_DOMAIN
from audit_assets.sandbox.hightouch import DEMO_CREDENTIALS as HIGHTOUCH_DEMO_CREDENTIALS
from audit_assets.sandbox.hightouch import HightouchSandbox
from audit_assets.sandbox.meta import DEMO_CREDENTIALS as META_DEMO_CREDENTIALS
from audit_assets.sandbox.meta import MetaGraphSandbox
from audit_assets.sandbox.world import Emulator

# One line per platform: host label (sandbox_host) -> (emulator factory, demo credentials it accepts).
EMULATORS: dict[str, tuple[Callable[[], Emulator], Mapping[str, str]]] = {
    "meta": (MetaGraphSandbox, META_DEMO_CREDENTIALS),
    "hightouch": (HightouchSandbox, HIGHTOUCH_DEMO_CREDENTIALS),
}


class SandboxTransport(httpx.BaseTransport):
    """An httpx transport that answers like the platforms do, without a network."""

    def __init__(self, emulators: Mapping[str, Emulator] | None = None) -> None:
        self._emulators = dict(emulators) if emulators is not None else {}

    def emulator_for(self, host: str) -> Emulator:
        label = host.removesuffix(f".{SANDBOX_DOMAIN}").replace("-", "_")
        if label not in self._emulators:
            if label not in EMULATORS:
                raise httpx.ConnectError(f"no sandbox emulator for host {host!r}")
            self._emulators[label] = EMULATORS[label][0]()
        return self._emulators[label]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        response = self.emulator_for(request.url.host).handle(request)
        # Serialise and re-parse, so clients see exactly the bytes a server would have sent.
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content, request=request
        )


def demo_credentials(base_url: str) -> Mapping[str, str]:
    """The public, non-secret credentials the sandbox emulator behind ``base_url`` accepts."""
    label = httpx.URL(base_url).host.removesuffix(f".{SANDBOX_DOMAIN}").replace("-", "_")
    if label not in EMULATORS:
        raise ValueError(f"no sandbox emulator for {base_url!r}; known hosts: {sorted(EMULATORS)}")
    return EMULATORS[label][1]
