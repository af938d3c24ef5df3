"""Secrets named by environment variable and read only when a run needs them.

Configuration and Dagster's resource config hold variable *names*; the values are read here, at run
time, so definitions load without them and no value ever enters config, metadata or the event log. A
missing (or unusable) variable is one clear line naming it and what needs it, not a configuration traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


class SecretError(Exception):
    """A secret is not set where the run executes, or its value cannot be used: fix it, do not retry."""


def missing_variables(env: Mapping[str, str]) -> list[str]:
    """The variables of ``env`` (field -> variable name) that are unset or empty, in field order."""
    return [variable for variable in env.values() if not os.environ.get(variable)]


def read_secrets(env: Mapping[str, str], owner: str) -> dict[str, str]:
    """``{field: value}`` for ``env`` (field -> variable name); raise SecretError naming what is missing."""
    missing = [f"{variable} ({field})" for field, variable in env.items() if not os.environ.get(variable)]
    if missing:
        raise SecretError(
            f"{owner}: environment variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not set where the run executes"
        )
    return {field: os.environ[variable] for field, variable in env.items()}
