"""Settings from the environment or Prefect blocks, so that no secret travels as a parameter.

A database setting may be given as a plain URL without a password, as ``env:NAME`` (the URL is
in environment variable NAME) or as ``block:NAME`` (a Prefect ``Secret`` block holds it). Defaults:
``$MIGCHECK_TARGET_URL`` and ``$MIGCHECK_HISTORY_URL``. Resolved values are never logged; only
``safe_url`` forms with the password masked are.
"""

from __future__ import annotations

import os
from pathlib import Path

from checks.errors import MigcheckError


def default_mappings_root() -> Path:
    """``mappings/`` of this checkout, or ``$MIGCHECK_MAPPINGS``."""
    env = os.environ.get("MIGCHECK_MAPPINGS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "mappings"


def resolve_url(value: str | None, setting: str, default_env: str | None = None) -> str | None:
    """The URL a setting stands for; ``None`` when neither it nor its default is set."""
    if not value:
        if default_env and os.environ.get(default_env):
            return os.environ[default_env]
        return None
    if value.startswith("env:"):
        name = value[4:]
        url = os.environ.get(name)
        if not url:
            raise MigcheckError(f"{setting}: environment variable {name} is not set")
        return url
    if value.startswith("block:"):
        name = value[6:]
        try:
            from prefect.blocks.system import Secret

            secret = Secret.load(name)
            if not isinstance(secret, Secret):  # Prefect hands back a coroutine inside an async flow or task
                raise MigcheckError(f"{setting}: Prefect Secret block {name!r} cannot be read from async code")
            return secret.get()
        except ValueError as e:
            raise MigcheckError(f"{setting}: no Prefect Secret block named {name!r}") from e
    return value
