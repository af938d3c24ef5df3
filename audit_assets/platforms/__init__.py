"""The registry of ad platforms: one line per platform module."""

from audit_assets.platforms import meta
from audit_assets.platforms.base import Platform

PLATFORMS: dict[str, Platform] = {p.slug: p for p in (meta.PLATFORM,)}

__all__ = ["PLATFORMS", "Platform"]
