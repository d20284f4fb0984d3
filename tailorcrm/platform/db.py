"""Database engines and the platform's own tables (users, sign-ins, metadata)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..metadata import ID_TYPE, USER_TABLE

system_metadata = sa.MetaData()

users = sa.Table(
    USER_TABLE,
    system_metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(150), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text(), nullable=True),
    sa.Column("is_admin", sa.Boolean(), nullable=False, default=False),
    sa.Column("active", sa.Boolean(), nullable=False, default=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
)

api_tokens = sa.Table(
    "tc_api_token",
    system_metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("user_id", ID_TYPE, sa.ForeignKey(f"{USER_TABLE}.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=True),
    sa.Column("revoked_at", sa.DateTime(), nullable=True),
)

# Tables added after the first release are separate tables, never new columns on
# old ones: ``create_all`` adds a missing table to an existing database but not a
# missing column. A token without scope rows predates scopes and keeps them all.
api_token_scopes = sa.Table(
    "tc_api_token_scope",
    system_metadata,
    sa.Column(
        "token_id",
        ID_TYPE,
        sa.ForeignKey("tc_api_token.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("scope", sa.String(20), primary_key=True),
)

# A signed-in browser. The cookie carries a random id; only its SHA-256 digest is
# kept here, so a copy of the table signs nobody in.
web_sessions = sa.Table(
    "tc_web_session",
    system_metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "user_id",
        ID_TYPE,
        sa.ForeignKey(f"{USER_TABLE}.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False),
    sa.Column("address", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(200), nullable=True),
    sa.Column("ended_at", sa.DateTime(), nullable=True),
)

# Every sign-in attempt and sign-out, kept for the audit; failed sign-ins are
# also what throttling counts. ``username`` is the name as typed, so attempts on
# names that do not exist are counted (and locked) like any other.
login_events = sa.Table(
    "tc_login_event",
    system_metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("username", sa.String(150), nullable=False),
    sa.Column("user_id", ID_TYPE, nullable=True),
    sa.Column("address", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(200), nullable=True),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Index("ix_tc_login_event_username", "username", "at"),
    sa.Index("ix_tc_login_event_address", "address", "at"),
)

# Teams group users; record access with the ``team`` scope reaches the records
# owned by anyone in one of the caller's teams. Roles are held by users and by
# teams (every member holds a team's roles).
teams = sa.Table(
    "tc_team",
    system_metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
)

team_members = sa.Table(
    "tc_team_member",
    system_metadata,
    sa.Column(
        "team_id",
        ID_TYPE,
        sa.ForeignKey("tc_team.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "user_id",
        ID_TYPE,
        sa.ForeignKey(f"{USER_TABLE}.id"),
        primary_key=True,
        index=True,
    ),
)

user_roles = sa.Table(
    "tc_user_role",
    system_metadata,
    sa.Column("user_id", ID_TYPE, sa.ForeignKey(f"{USER_TABLE}.id"), primary_key=True),
    sa.Column("role", sa.String(100), primary_key=True),
)

team_roles = sa.Table(
    "tc_team_role",
    system_metadata,
    sa.Column(
        "team_id",
        ID_TYPE,
        sa.ForeignKey("tc_team.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("role", sa.String(100), primary_key=True),
)

# What ``$user.<name>`` reads in sharing rules and other conditions (a region, a
# cost centre...). Values are JSON.
user_attributes = sa.Table(
    "tc_user_attribute",
    system_metadata,
    sa.Column("user_id", ID_TYPE, sa.ForeignKey(f"{USER_TABLE}.id"), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.JSON(), nullable=True),
)

# One row, counting changes to who holds which roles, teams and attributes. Every
# request reads it with the user (one statement), so the caller a process keeps
# for a user is read again as soon as anything of theirs may have changed.
access_versions = sa.Table(
    "tc_access_version",
    system_metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
)

meta_documents = sa.Table(
    "tc_meta_document",
    system_metadata,
    sa.Column("kind", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("body", sa.JSON(), nullable=False),
    sa.Column("hidden_fields", sa.JSON(), nullable=False),
    sa.Column("removed", sa.Boolean(), nullable=False, default=False),
    sa.Column("revision", sa.Integer(), nullable=False),
)

meta_revisions = sa.Table(
    "tc_meta_revision",
    system_metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("actor", sa.String(150), nullable=False),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("plan", sa.JSON(), nullable=False),
)

meta_history = sa.Table(
    "tc_meta_history",
    system_metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column(
        "revision", sa.Integer(), sa.ForeignKey("tc_meta_revision.id"), nullable=False
    ),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("before", sa.JSON(), nullable=True),
    sa.Column("after", sa.JSON(), nullable=True),
)

# Saved views are user data, not revisioned metadata: saving one must not make
# every process rebuild its catalog. ``body`` holds the view document.
saved_views = sa.Table(
    "tc_view",
    system_metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("entity", sa.String(100), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("owner_id", ID_TYPE, sa.ForeignKey(f"{USER_TABLE}.id"), nullable=False),
    sa.Column("shared", sa.Boolean(), nullable=False, default=False),
    sa.Column("body", sa.JSON(), nullable=False),
    sa.Column("notice", sa.Text(), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)

sequences = sa.Table(
    "tc_sequence",
    system_metadata,
    sa.Column("entity", sa.String(100), primary_key=True),
    sa.Column("field", sa.String(100), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)

recent_records = sa.Table(
    "tc_recent",
    system_metadata,
    sa.Column("user_id", ID_TYPE, sa.ForeignKey(f"{USER_TABLE}.id"), primary_key=True),
    sa.Column("entity", sa.String(100), primary_key=True),
    sa.Column("record_id", ID_TYPE, primary_key=True),
    sa.Column("viewed_at", sa.DateTime(), nullable=False),
)

# What changed in each record, field by field: written by the record service in
# the save's transaction (see fieldhistory.py). ``field_id`` is the field's
# immutable id, so a renamed field keeps its history; ``field`` is the name it
# had then. A creation or deletion is one row with no field, whatever the
# number of fields. Values are in their JSON form, SQL NULL for "no value".
field_history = sa.Table(
    "tc_field_history",
    system_metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("entity", sa.String(100), nullable=False),
    sa.Column("record_id", ID_TYPE, nullable=False),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("user_id", ID_TYPE, nullable=True),
    sa.Column("username", sa.String(150), nullable=False),
    sa.Column("via", sa.String(20), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("field", sa.String(100), nullable=True),
    sa.Column("field_id", sa.String(100), nullable=True),
    sa.Column("old", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("new", sa.JSON(none_as_null=True), nullable=True),
    sa.Index("ix_tc_field_history_record", "entity", "record_id", "id"),
)


SQLITE_BEGIN = "tailorcrm_sqlite_begin"
READ_ONLY = {SQLITE_BEGIN: "DEFERRED"}


def utcnow() -> dt.datetime:
    """Return the current time as naive UTC, the form every timestamp is kept in."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def create_engine(url: str, **kwargs: Any) -> Engine:
    """Return an engine for ``url`` on which DDL is transactional.

    Python's ``sqlite3`` driver commits implicitly before DDL, so a rolled-back plan
    would leave tables behind. The driver is put in autocommit mode and SQLAlchemy
    emits ``BEGIN`` itself, as SQLAlchemy's pysqlite notes describe.

    A statement's values are left out of the errors it raises: an unexpected one
    is logged, and the values are records' data, password hashes and token
    digests.
    """
    kwargs.setdefault("hide_parameters", True)
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, **kwargs)
    engine = sa.create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)
        dbapi_connection.create_function("upper", 1, _upper, deterministic=True)
        dbapi_connection.create_function(
            "whole_number", 1, _whole_number, deterministic=True
        )
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A write transaction takes SQLite's write lock at once, so concurrent
        # writers wait for each other (up to the busy timeout) instead of failing
        # with "database is locked" when a deferred read lock cannot be upgraded.
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _whole_number(value: Any) -> Any:
    # SQLite goes on in floating point when whole-number arithmetic leaves 64 bits;
    # a filter must not answer from a rounded number. Python's sqlite3 reports an
    # OverflowError as SQLITE_TOOBIG, a DataError, as PostgreSQL reports its own.
    if isinstance(value, float):
        raise OverflowError("the whole number is out of the database's range")
    return value


#: SQLite's answers when another connection holds the database.
_SQLITE_BUSY = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
#: PostgreSQL's answers when two transactions met and one was undone: a deadlock,
#: a serialization failure, a lock that could not be had.
_POSTGRES_MET = frozenset({"40P01", "40001", "55P03"})
#: How many seconds to wait before sending a held-back change again, by reason.
RETRY_AFTER = {"busy": 5, "retry": 1}


def held_back(error: sa.exc.OperationalError) -> str | None:
    """Why the database refused a change that may simply be made again.

    :returns: ``"busy"`` when SQLite's one writer was taken the whole time,
        ``"retry"`` when on PostgreSQL the change met another made at the same
        moment and was undone, or None for any other error. Either way the
        transaction is lost: nothing of it is kept.
    """
    cause = error.orig
    if getattr(cause, "sqlite_errorname", None) in _SQLITE_BUSY:
        return "busy"
    if getattr(cause, "sqlstate", None) in _POSTGRES_MET:
        return "retry"
    return None


def create_system_tables(engine: Engine) -> None:
    """Create the platform's own tables if they do not exist yet."""
    system_metadata.create_all(engine)


def is_sqlite(connection: sa.Connection | Engine) -> bool:
    return connection.dialect.name == "sqlite"
