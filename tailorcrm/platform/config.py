"""Settings from ``TAILORCRM_*`` environment variables, with safe demo defaults."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..metadata import ascii_digits

DEFAULT_DATABASE = "instance/tailorcrm.db"
# Sessions are signed with the key: a short one could be guessed offline.
MIN_SECRET_KEY = 32
#: The databases the platform runs on, as a URL's backend names them.
BACKENDS = ("sqlite", "postgresql")


def default_database_url() -> str:
    path = Path.cwd() / DEFAULT_DATABASE
    return f"sqlite:///{path}"


#: Numeric settings: the field, its variable and its default.
_NUMBERS = {
    "session_idle_minutes": ("TAILORCRM_SESSION_IDLE_MINUTES", 12 * 60),
    "session_max_hours": ("TAILORCRM_SESSION_MAX_HOURS", 7 * 24),
    "login_account_limit": ("TAILORCRM_LOGIN_ACCOUNT_LIMIT", 5),
    "login_address_limit": ("TAILORCRM_LOGIN_ADDRESS_LIMIT", 20),
    "login_window_minutes": ("TAILORCRM_LOGIN_WINDOW_MINUTES", 15),
}


class SettingsError(RuntimeError):
    """A ``TAILORCRM_*`` setting that the platform cannot run with; the message
    names the variable and says what it needs."""


@dataclass(frozen=True)
class Settings:
    """What the platform needs to run."""

    database_url: str
    secret_key: str
    production: bool = False
    #: A web session ends after this long without a request...
    session_idle_minutes: int = 12 * 60
    #: ...and this long after sign-in, whatever happens.
    session_max_hours: int = 7 * 24
    #: Failed sign-ins allowed per user name, and per address, in the window.
    login_account_limit: int = 5
    login_address_limit: int = 20
    login_window_minutes: int = 15

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None) -> Settings:
        """Read the environment, then apply ``overrides`` (tests pass theirs here).

        :raises SettingsError: production mode without a secret key, a database
            URL that names no database the platform runs on, or a limit that is
            not a whole number above 0.
        """
        values: dict[str, Any] = {
            "database_url": os.environ.get("TAILORCRM_DATABASE_URL")
            or default_database_url(),
            "secret_key": os.environ.get("TAILORCRM_SECRET_KEY", ""),
            "production": os.environ.get("TAILORCRM_ENV", "") == "production",
        }
        for field, (variable, _) in _NUMBERS.items():
            values[field] = os.environ.get(variable)
        values.update(overrides or {})
        for field, (variable, default) in _NUMBERS.items():
            values[field] = _positive(variable, values[field], default)
        _check_database_url(values["database_url"])
        if values["production"] and len(values["secret_key"]) < MIN_SECRET_KEY:
            raise SettingsError(
                "TAILORCRM_SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_KEY} characters when TAILORCRM_ENV=production, e.g. "
                "the output of: python -c 'import secrets; print(secrets.token_hex())'."
            )
        if not values["secret_key"]:
            # Fine for the demo: sessions simply do not survive a restart.
            values["secret_key"] = secrets.token_hex(32)
        return cls(**values)


def _positive(variable: str, value: Any, default: int) -> int:
    """Read a whole number above zero; ``None`` or ``""`` gives ``default``.

    :raises SettingsError: anything else, naming the variable.
    """
    if value is None or value == "":
        return default
    if isinstance(value, str) and ascii_digits(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(
            f"{variable} must be a whole number above 0, not {value!r}."
        )
    return value


def _check_database_url(url: str) -> None:
    """Check that ``url`` is a SQLAlchemy URL of SQLite or PostgreSQL.

    :raises SettingsError: one that cannot be read, or another database; the
        message never repeats a password the URL holds.
    """
    example = "sqlite:///path.db or postgresql+psycopg://user@host/db"
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise SettingsError(
            f"TAILORCRM_DATABASE_URL is not a database URL; write {example}."
        ) from None
    if parsed.get_backend_name() not in BACKENDS:
        shown = parsed.render_as_string(hide_password=True)
        raise SettingsError(
            f"TAILORCRM_DATABASE_URL {shown!r} names a {parsed.get_backend_name()} "
            f"database; Tailor CRM runs on SQLite and PostgreSQL: write {example}."
        )


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a file-based SQLite database if it is missing."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix and ":memory:" not in url:
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)
