"""audit_assets: a daily, append-only history of every ad-platform audience, as a Dagster code location."""
