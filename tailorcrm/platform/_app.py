"""The Flask app factory and the per-process platform object."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from ..metadata import Catalog
from .auth import User, authenticate, load_user
from .config import Settings, ensure_sqlite_directory
from .db import READ_ONLY, create_engine, create_system_tables
from .metastore import CatalogCache, MetadataStore, hold_metadata
from .records import Actor, RecordService

log = logging.getLogger(__name__)


class Platform:
    """Everything one process shares between requests: engine, catalog cache, store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ensure_sqlite_directory(settings.database_url)
        self.engine = create_engine(settings.database_url)
        create_system_tables(self.engine)
        self.catalogs = CatalogCache()
        self.store = MetadataStore(self.engine)
        self.store.ensure_search_indexes()

    @contextmanager
    def transaction(self) -> Iterator[tuple[sa.Connection, Catalog]]:
        """Open a write transaction with the catalog of the current revision."""
        with self.engine.begin() as connection:
            hold_metadata(connection)
            yield connection, self.catalogs.get(connection)

    @contextmanager
    def reading(self) -> Iterator[tuple[sa.Connection, Catalog]]:
        """Open a transaction that only reads (it takes no write lock on SQLite)."""
        with self.engine.connect() as connection:
            connection.execution_options(**READ_ONLY)
            with connection.begin():
                hold_metadata(connection)
                yield connection, self.catalogs.get(connection)

    @contextmanager
    def records(self, actor: Actor) -> Iterator[RecordService]:
        with self.transaction() as (connection, catalog):
            yield RecordService(connection, catalog, actor)

    @contextmanager
    def session(self, token: str, *, write: bool) -> Iterator[Session]:
        """One request's transaction: the token's user and the current catalog.

        The token, the revision and the work share one connection and one
        transaction, so a request costs a single round of locking.

        :raises Unauthorized: the token is unknown, revoked or expired.
        """
        with self.engine.connect() as connection:
            if not write:
                connection.execution_options(**READ_ONLY)
            with connection.begin():
                hold_metadata(connection)
                user, revision = authenticate(connection, token)
                catalog = self.catalogs.get(connection, revision=revision)
                yield Session(connection, catalog, user)

    @contextmanager
    def user_session(self, user_id: int, *, write: bool) -> Iterator[Session]:
        """Like :meth:`session`, for a user signed in to the web pages.

        :raises Unauthorized: the user was deactivated or removed.
        """
        with self.engine.connect() as connection:
            if not write:
                connection.execution_options(**READ_ONLY)
            with connection.begin():
                hold_metadata(connection)
                user, revision = load_user(connection, user_id)
                catalog = self.catalogs.get(connection, revision=revision)
                yield Session(connection, catalog, user)


@dataclass(frozen=True)
class Session:
    """An authenticated request's connection, catalog and user."""

    connection: sa.Connection
    catalog: Catalog
    user: User

    def records(self, *, bypass_automation: bool = False) -> RecordService:
        """The record service for this request's user.

        :raises Forbidden: ``bypass_automation`` for a user who is not an admin.
        """
        return RecordService(
            self.connection,
            self.catalog,
            self.user.actor(),
            bypass_automation=bypass_automation,
        )


class JSONProvider(DefaultJSONProvider):
    """Reads JSON numbers with a fraction as ``Decimal`` so money stays exact."""

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        return DefaultJSONProvider.default(o)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_float", Decimal)
        kwargs.setdefault("parse_constant", _refuse_constant)
        return json.loads(s, **kwargs)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create the Tailor CRM web application.

    :param config: overrides of the ``TAILORCRM_*`` settings, e.g.
        ``{"database_url": "sqlite:///crm.db"}``.
    """
    from . import api_rules  # noqa: F401  (adds the rule routes to the blueprint)
    from .api import api
    from .web import init_web

    settings = Settings.load(config)
    # The web blueprint serves the renderer's assets at /static; an app-level
    # static route would shadow it.
    app = Flask(__name__, static_folder=None)
    app.json = JSONProvider(app)
    app.config["SECRET_KEY"] = settings.secret_key
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    app.extensions["tailorcrm"] = Platform(settings)
    app.register_blueprint(api)
    init_web(app, production=settings.production)
    app.register_error_handler(HTTPException, _http_error)
    if not app.debug and not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
    return app


def _http_error(error: HTTPException) -> Any:
    """Answer API paths that match no route with a problem document too."""
    from flask import request

    from .api import http_problem

    if request.path.startswith("/api/"):
        return http_problem(error)
    from .web import error_page

    return error_page(error)


def platform() -> Platform:
    """Return the platform object of the current Flask app."""
    found: Platform = current_app.extensions["tailorcrm"]
    return found
