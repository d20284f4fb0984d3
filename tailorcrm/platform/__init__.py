"""The running system: app factory, database, record service, API and CLI."""

from __future__ import annotations

from ._app import Platform, create_app

__all__ = ["Platform", "create_app"]
