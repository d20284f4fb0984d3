"""Settings from ``TAILORCRM_*`` environment variables, with safe demo defaults."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DATABASE = "instance/tailorcrm.db"
# Sessions are signed with the key: a short one could be guessed offline.
MIN_SECRET_KEY = 32


def default_database_url() -> str:
    path = Path.cwd() / DEFAULT_DATABASE
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class Settings:
    """What the platform needs to run."""

    database_url: str
    secret_key: str
    production: bool = False

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None) -> Settings:
        """Read the environment, then apply ``overrides`` (tests pass theirs here).

        :raises RuntimeError: production mode without a secret key.
        """
        values: dict[str, Any] = {
            "database_url": os.environ.get("TAILORCRM_DATABASE_URL")
            or default_database_url(),
            "secret_key": os.environ.get("TAILORCRM_SECRET_KEY", ""),
            "production": os.environ.get("TAILORCRM_ENV", "") == "production",
        }
        values.update(overrides or {})
        if values["production"] and len(values["secret_key"]) < MIN_SECRET_KEY:
            raise RuntimeError(
                "TAILORCRM_SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_KEY} characters when TAILORCRM_ENV=production, e.g. "
                "the output of: python -c 'import secrets; print(secrets.token_hex())'."
            )
        if not values["secret_key"]:
            # Fine for the demo: sessions simply do not survive a restart.
            values["secret_key"] = secrets.token_hex(32)
        return cls(**values)


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a file-based SQLite database if it is missing."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix and ":memory:" not in url:
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)
