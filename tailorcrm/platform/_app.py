"""The Flask app factory and the per-process platform object."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from ..errors import Forbidden
from ..metadata import Caller, Catalog
from .access import CatalogViews, load_caller
from .auth import ALL_SCOPES, User, authenticate, load_web_session
from .config import Settings, ensure_sqlite_directory
from .db import READ_ONLY, create_engine, create_system_tables, utcnow
from .logins import LoginPolicy, SignedIn, sign_in, sign_out
from .metastore import CatalogCache, MetadataStore, hold_metadata
from .records import Actor, RecordService
from .sessions import Client, SessionPolicy, touch_session
from .strictjson import read_json

log = logging.getLogger(__name__)

#: How many users' roles, teams and attributes a process keeps at most.
CALLERS_KEPT = 10_000


class Platform:
    """Everything one process shares between requests: engine, catalog cache, store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ensure_sqlite_directory(settings.database_url)
        self.engine = create_engine(settings.database_url)
        create_system_tables(self.engine)
        self.catalogs = CatalogCache()
        self.views = CatalogViews()
        self._callers: dict[tuple[int, str, bool, int], Caller] = {}
        self.store = MetadataStore(self.engine)
        self.store.ensure_search_indexes()
        #: The time every session and sign-in check reads (naive UTC); tests
        #: replace it to move time on.
        self.clock: Callable[[], dt.datetime] = utcnow
        self.session_policy = SessionPolicy(
            idle=dt.timedelta(minutes=settings.session_idle_minutes),
            lifetime=dt.timedelta(hours=settings.session_max_hours),
        )
        self.login_policy = LoginPolicy(
            account_limit=settings.login_account_limit,
            address_limit=settings.login_address_limit,
            window=dt.timedelta(minutes=settings.login_window_minutes),
        )

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
    def session(
        self, token: str, *, write: bool, scope: str | tuple[str, ...] | None = None
    ) -> Iterator[Session]:
        """One request's transaction: the token's user and the current catalog.

        The token, the revision and the work share one connection and one
        transaction, so a request costs a single round of locking.

        :param scope: the token scope the request needs, or scopes of which it
            needs one (the caller then checks which); by default ``write`` for a
            write transaction and ``read`` otherwise.
        :raises Unauthorized: the token is unknown, revoked or expired.
        :raises Forbidden: the token lacks the scope.
        """
        needed = scope or ("write" if write else "read")
        with self.engine.connect() as connection:
            if not write:
                connection.execution_options(**READ_ONLY)
            with connection.begin():
                hold_metadata(connection)
                caller = authenticate(connection, token, now=self.clock())
                require_scope(
                    caller.scopes, *((needed,) if isinstance(needed, str) else needed)
                )
                catalog = self.catalogs.get(connection, revision=caller.revision)
                view, user = self._view(
                    connection, catalog, caller.user, caller.access_version
                )
                yield Session(
                    connection,
                    view,
                    user,
                    scopes=caller.scopes,
                    token_id=caller.token_id,
                )

    @contextmanager
    def user_session(self, session_token: str, *, write: bool) -> Iterator[Session]:
        """Like :meth:`session`, for a browser signed in to the web pages.

        The session row is checked in the statement that loads the user and the
        revision. Its idle timeout starts again after the request, in a short
        write of its own, at most every few minutes.

        :raises Unauthorized: the session ended or expired, or its user was
            deactivated.
        """
        now = self.clock()
        policy = self.session_policy
        with self.engine.connect() as connection:
            if not write:
                connection.execution_options(**READ_ONLY)
            with connection.begin():
                hold_metadata(connection)
                caller = load_web_session(
                    connection,
                    session_token,
                    now=now,
                    idle_since=policy.idle_since(now),
                )
                catalog = self.catalogs.get(connection, revision=caller.revision)
                view, user = self._view(
                    connection, catalog, caller.user, caller.access_version
                )
                yield Session(connection, view, user, via="web")
        # After the transaction: a second writer inside a write transaction would
        # wait for the first one's lock on SQLite.
        if policy.needs_touch(caller.last_seen_at, now):
            with self.engine.begin() as connection:
                touch_session(connection, caller.session_id, now=now)

    def _view(
        self,
        connection: sa.Connection,
        catalog: Catalog,
        user: User,
        access_version: int,
    ) -> tuple[Catalog, User]:
        """The catalog as ``user`` may see it, and the user with their roles.

        A user's roles, teams and attributes are kept by this process until
        ``access_version`` (read with the user, on every request) moves: a change
        to them counts from the next request on.
        """
        key = (user.id, user.username, user.is_admin, access_version)
        caller = self._callers.get(key)
        if caller is None:
            caller = load_caller(connection, user.id, user.username, user.is_admin)
            if len(self._callers) >= CALLERS_KEPT:
                self._callers.clear()
            self._callers[key] = caller
        view = self.views.get(catalog, caller)
        assert view.permissions is not None
        return view, replace(user, is_admin=view.permissions.admin, caller=caller)

    def sign_in(self, username: str, password: str, client: Client) -> SignedIn:
        """Sign a browser in: see :func:`~tailorcrm.platform.logins.sign_in`."""
        return sign_in(
            self.engine,
            username,
            password,
            client=client,
            logins=self.login_policy,
            sessions=self.session_policy,
            now=self.clock(),
        )

    def sign_out(self, session_token: str, client: Client) -> None:
        """End a browser's session and record it."""
        sign_out(self.engine, session_token, client=client, now=self.clock())


@dataclass(frozen=True)
class Session:
    """An authenticated request's connection, catalog and user."""

    connection: sa.Connection
    catalog: Catalog
    user: User
    #: What the request's API token may be used for (a web page may do anything
    #: its user may).
    scopes: frozenset[str] = ALL_SCOPES
    #: The API token that authenticated the request, if one did.
    token_id: int | None = None
    #: The path the request's saves come by in the field history.
    via: str = "api"

    @property
    def full_catalog(self) -> Catalog:
        """Every entity and field, whoever asks (for administrators' work)."""
        return self.catalog.unrestricted()

    def records(self, *, bypass_automation: bool = False) -> RecordService:
        """The record service for this request's user.

        :raises Forbidden: ``bypass_automation`` for a user who is not an admin,
            or through an API token without the ``admin`` scope.
        """
        if bypass_automation and self.user.is_admin and "admin" not in self.scopes:
            raise Forbidden(
                "Saving without automations needs an API token with the 'admin' scope."
            )
        return RecordService(
            self.connection,
            self.catalog,
            self.user.actor(),
            bypass_automation=bypass_automation,
            via=self.via,
        )


class JSONProvider(DefaultJSONProvider):
    """Reads JSON strictly, numbers with a fraction as ``Decimal`` so money stays exact.

    Bodies and test responses alike are read by :func:`.strictjson.read_json`.
    """

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        return DefaultJSONProvider.default(o)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError("JSON is read one way only; it takes no options.")
        return read_json(s, exact_numbers=True)


class _AsciiInteger(IntegerConverter):
    """``<int:...>`` of the digits 0 to 9 only.

    Werkzeug's pattern takes any Unicode digit, which ``int`` reads too, so an
    Arabic-Indic or full-width ``1`` would be a second address of id 1.
    """

    regex = r"[0-9]+"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create the Tailor CRM web application.

    :param config: overrides of the ``TAILORCRM_*`` settings, e.g.
        ``{"database_url": "sqlite:///crm.db"}``.
    """
    from . import (  # noqa: F401  (add their routes to the blueprint)
        api_access,
        api_auth,
        api_history,
        api_rules,
    )
    from .api import api
    from .web import init_web

    settings = Settings.load(config)
    # The web blueprint serves the renderer's assets at /static; an app-level
    # static route would shadow it.
    app = Flask(__name__, static_folder=None)
    app.json = JSONProvider(app)
    app.config["SECRET_KEY"] = settings.secret_key
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    app.url_map.converters["int"] = _AsciiInteger
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


def require_scope(scopes: frozenset[str], *wanted: str) -> None:
    """Refuse a request whose token has none of the ``wanted`` scopes.

    :raises Forbidden: naming the first scope wanted.
    """
    if scopes.isdisjoint(wanted):
        raise Forbidden(
            f"This API token does not have the {wanted[0]!r} scope; create one "
            "that has it."
        )
