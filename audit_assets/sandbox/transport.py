"""Routes requests for ``*.sandbox.invalid`` hosts to in-process platform emulators.

Emulators are found by convention, so adding a platform needs no line here: the host
``sandbox_host(name)`` is answered by module ``audit_assets.sandbox.<name>``, which exposes
``EMULATOR`` (a factory taking no arguments) and ``DEMO_CREDENTIALS`` (public, non-secret values).
``name`` is a registered platform slug, or ``hightouch``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType

import httpx

from audit_assets.platforms import PLATFORMS
from audit_assets.sandbox.world import Emulator
from audit_assets.sandbox_hosts import SANDBOX_DOMAIN

SERVICES = ("hightouch",)  # emulated APIs that are not ad platforms


def _name_of(host: str) -> str:
    return host.removesuffix(f".{SANDBOX_DOMAIN}").replace("-", "_")


def _module(name: str) -> ModuleType:
    if name not in PLATFORMS and name not in SERVICES:
        raise LookupError(f"no sandbox emulator named {name!r}; known: {sorted([*PLATFORMS, *SERVICES])}")
    return importlib.import_module(f"audit_assets.sandbox.{name}")


class SandboxTransport(httpx.BaseTransport):
    """An httpx transport that answers like the platforms do, without a network."""

    def __init__(self, emulators: Mapping[str, Emulator] | None = None) -> None:
        self._emulators = dict(emulators) if emulators is not None else {}

    def emulator_for(self, host: str) -> Emulator:
        name = _name_of(host)
        if name not in self._emulators:
            try:
                factory: Callable[[], Emulator] = _module(name).EMULATOR
            except LookupError as exc:
                raise httpx.ConnectError(str(exc)) from None
            self._emulators[name] = factory()
        return self._emulators[name]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        response = self.emulator_for(request.url.host).handle(request)
        # Serialise and re-parse, so clients see exactly the bytes a server would have sent.
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content, request=request
        )


def demo_credentials(base_url: str) -> Mapping[str, str]:
    """The public, non-secret credentials the sandbox emulator behind ``base_url`` accepts."""
    try:
        return _module(_name_of(httpx.URL(base_url).host)).DEMO_CREDENTIALS
    except LookupError as exc:
        raise ValueError(str(exc)) from None
