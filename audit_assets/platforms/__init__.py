"""The registry of ad platforms: a platform is its module here, named once in ``_MODULES``.

Each module exposes ``PLATFORM`` (base.Platform); its sandbox emulator is ``audit_assets.sandbox.<slug>``.
"""

import importlib

from audit_assets.platforms.base import Platform

_MODULES = ("meta", "google_ads", "linkedin", "tiktok", "snapchat", "pinterest", "x")

PLATFORMS: dict[str, Platform] = {
    platform.slug: platform
    for platform in (importlib.import_module(f"audit_assets.platforms.{name}").PLATFORM for name in _MODULES)
}

__all__ = ["PLATFORMS", "Platform"]
