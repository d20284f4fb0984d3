"""Users and API tokens.

Passwords are hashed with scrypt (through werkzeug). API tokens are random, shown once
and stored only as a SHA-256 digest, so a copy of the database reveals none of them.
A token carries scopes (``read``, ``write``, ``admin``), may expire and may be
revoked; it never gives more than its user may do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import Conflict, NotFound, Problem, Unauthorized, ValidationFailed
from ..metadata import ADMIN_ROLE, INTEGER_LIMIT, Caller, text_problems
from .db import (
    access_versions,
    api_token_scopes,
    api_tokens,
    meta_revisions,
    users,
    utcnow,
    web_sessions,
)
from .records import Actor

TOKEN_PREFIX = "tcrm_"
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,149}$")
MIN_PASSWORD_LENGTH = 10
MAX_TOKEN_NAME = 200

#: What a token may be used for: ``read`` any GET, ``write`` changes to records
#: and saved views, ``admin`` what only administrators may do (metadata, users,
#: the audit). A token gives its user's rights at most, whatever its scopes.
SCOPES = ("read", "write", "admin")
ALL_SCOPES = frozenset(SCOPES)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    is_admin: bool
    #: Roles, teams and attributes, once a request has read them.
    caller: Caller | None = field(default=None, compare=False)

    def actor(self) -> Actor:
        return Actor(user_id=self.id, username=self.username, is_admin=self.is_admin)

    def condition_data(self) -> dict[str, Any]:
        """What ``$user`` reads in a condition."""
        if self.caller is not None:
            data = self.caller.condition_data()
            if self.is_admin and ADMIN_ROLE not in data["roles"]:
                data["roles"].append(ADMIN_ROLE)
            return data
        roles = [ADMIN_ROLE] if self.is_admin else []
        return {"id": self.id, "username": self.username, "roles": roles, "teams": []}


@dataclass(frozen=True)
class TokenCaller:
    """What a valid bearer token proves: who calls, with which token and scopes."""

    user: User
    revision: int
    token_id: int
    scopes: frozenset[str]
    #: Counts changes to roles, teams and attributes (see ``tc_access_version``).
    access_version: int = 0


@dataclass(frozen=True)
class TokenInfo:
    """An API token as it may be shown: everything but the token itself."""

    id: int
    user_id: int
    username: str
    name: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    #: Whether the token's user is active; a deactivated user's tokens stop
    #: working with them.
    user_active: bool = True

    def state(self, now: dt.datetime) -> str:
        """``revoked``, ``expired``, ``inactive`` (its user is deactivated) or
        ``active``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if not self.user_active:
            return "inactive"
        return "active"

    def as_dict(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.username,
            "name": self.name,
            "scopes": list(self.scopes),
            "state": self.state(now),
            "created_at": _stamp(self.created_at),
            "expires_at": _stamp(self.expires_at),
            "revoked_at": _stamp(self.revoked_at),
        }


def _stamp(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def create_user(
    connection: sa.Connection,
    username: str,
    password: str,
    *,
    is_admin: bool = False,
) -> User:
    """Create a user.

    :raises ValidationFailed: the name or password is not acceptable.
    :raises Conflict: the name is taken.
    """
    problems = []
    if not USERNAME.match(username):
        message = "Use letters, digits and . _ @ - (at most 150 characters)."
        problems.append(Problem("username", "invalid_username", message))
    problems += _password_problems(password)
    if problems:
        raise ValidationFailed("The user cannot be created.", problems=problems)
    taken = connection.execute(
        sa.select(users.c.id).where(users.c.username == username)
    ).first()
    if taken is not None:
        message = f"There is already a user named {username!r}."
        raise Conflict(message, problems=[Problem("username", "unique", message)])
    new_id = connection.execute(
        users.insert()
        .values(
            username=username,
            password_hash=generate_password_hash(password),
            is_admin=is_admin,
            active=True,
            created_at=utcnow(),
        )
        .returning(users.c.id)
    ).scalar_one()
    return User(int(new_id), username, is_admin)


def find_user(connection: sa.Connection, username: str) -> User:
    row = connection.execute(
        sa.select(users).where(users.c.username == username, users.c.active)
    ).first()
    if row is None:
        raise NotFound(f"There is no active user named {username!r}.")
    return User(int(row.id), row.username, bool(row.is_admin))


def create_token(
    connection: sa.Connection,
    user: User,
    *,
    name: str = "",
    scopes: Iterable[str] | None = None,
    expires_in: dt.timedelta | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Create an API token for ``user`` and return it; only its digest is stored.

    :param scopes: what the token may be used for (:data:`SCOPES`); all of them
        when left out.
    :raises ValidationFailed: an unknown scope, no scope at all, or a name that
        is too long.
    """
    chosen = _check_token(name, scopes)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = now or utcnow()
    token_id = connection.execute(
        api_tokens.insert()
        .values(
            user_id=user.id,
            token_hash=hash_token(token),
            name=name,
            created_at=now,
            expires_at=now + expires_in if expires_in else None,
        )
        .returning(api_tokens.c.id)
    ).scalar_one()
    connection.execute(
        api_token_scopes.insert(),
        [{"token_id": token_id, "scope": scope} for scope in chosen],
    )
    return token


def _check_token(name: str, scopes: Iterable[str] | None) -> list[str]:
    chosen = list(SCOPES) if scopes is None else list(dict.fromkeys(scopes))
    problems = []
    unknown = [scope for scope in chosen if scope not in ALL_SCOPES]
    if unknown:
        message = f"Unknown scope {unknown[0]!r}; use {', '.join(SCOPES)}."
        problems.append(Problem("scopes", "invalid_scope", message))
    elif not chosen:
        message = f"Give the token at least one scope: {', '.join(SCOPES)}."
        problems.append(Problem("scopes", "required", message))
    if len(name) > MAX_TOKEN_NAME:
        message = f"Use at most {MAX_TOKEN_NAME} characters."
        problems.append(Problem("name", "too_long", message))
    if problems:
        raise ValidationFailed("The token cannot be created.", problems=problems)
    return [scope for scope in SCOPES if scope in chosen]


def list_tokens(
    connection: sa.Connection,
    *,
    user_id: int | None = None,
    token_id: int | None = None,
) -> list[TokenInfo]:
    """Every API token (of one user), oldest first; never the tokens themselves."""
    if token_id is not None and not 0 < token_id <= INTEGER_LIMIT:
        # No id is past 64 bits, and no database could be asked for one.
        return []
    query = (
        sa.select(api_tokens, users.c.username, users.c.active.label("user_active"))
        .join(users, users.c.id == api_tokens.c.user_id)
        .order_by(api_tokens.c.id)
    )
    if user_id is not None:
        query = query.where(api_tokens.c.user_id == user_id)
    if token_id is not None:
        query = query.where(api_tokens.c.id == token_id)
    rows = connection.execute(query).all()
    scopes = _scopes_of(connection, [int(row.id) for row in rows])
    return [_token_info(row, scopes.get(int(row.id))) for row in rows]


def _scopes_of(connection: sa.Connection, ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if not ids:
        return found
    query = sa.select(api_token_scopes).where(api_token_scopes.c.token_id.in_(ids))
    for row in connection.execute(query):
        found.setdefault(int(row.token_id), []).append(row.scope)
    return found


def _token_info(row: Any, scopes: list[str] | None) -> TokenInfo:
    return TokenInfo(
        id=int(row.id),
        user_id=int(row.user_id),
        username=row.username,
        name=row.name,
        scopes=_ordered(scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        user_active=bool(row.user_active),
    )


def _ordered(scopes: Iterable[str | None] | None) -> tuple[str, ...]:
    # A token with no scope rows was made before scopes existed: it keeps all.
    given = {scope for scope in scopes or () if scope}
    return tuple(scope for scope in SCOPES if scope in given) if given else SCOPES


def revoke_token(
    connection: sa.Connection,
    token_id: int,
    *,
    by: User | None = None,
    now: dt.datetime | None = None,
) -> TokenInfo:
    """Revoke a token for good; revoking a revoked token changes nothing.

    :param by: the user asking, who may revoke their own tokens, or any token
        when an admin; ``None`` for the operator at the command line.
    :raises NotFound: no such token, or one ``by`` may not see.
    """
    found = list_tokens(connection, token_id=token_id)
    if not found or (by is not None and not by.is_admin and found[0].user_id != by.id):
        raise NotFound(f"There is no API token {token_id}.")
    if found[0].revoked_at is not None:
        return found[0]
    when = now or utcnow()
    connection.execute(
        api_tokens.update().where(api_tokens.c.id == token_id).values(revoked_at=when)
    )
    return replace(found[0], revoked_at=when)


def check_password(connection: sa.Connection, username: str, password: str) -> User:
    """Return the active user with this name and password.

    :raises Unauthorized: unknown name, wrong password or inactive user; the
        message does not say which, so it tells an attacker nothing.
    """
    row = connection.execute(
        sa.select(users).where(users.c.username == username, users.c.active)
    ).first()
    # Hash even for an unknown name, so the answer takes as long either way.
    stored = row.password_hash if row is not None else _DUMMY_HASH
    valid = check_password_hash(stored or _DUMMY_HASH, password)
    if row is None or not row.password_hash or not valid:
        raise Unauthorized("The user name or password is not right.")
    return User(int(row.id), row.username, bool(row.is_admin))


_DUMMY_HASH = generate_password_hash("not-a-password-anyone-has")


def _password_problems(password: str) -> list[Problem]:
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        message = f"Use at least {MIN_PASSWORD_LENGTH} characters."
        problems.append(Problem("password", "password_too_short", message))
    # The sign-in form refuses a NUL at the door, and half a UTF-16 pair cannot
    # be hashed: no one could sign in with such a password.
    problems += text_problems({"password": password})
    return problems


def set_password(
    connection: sa.Connection,
    user_id: int,
    password: str,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Give a user a new password and end every web session they have.

    :raises ValidationFailed: the password is too short, or holds what no one
        could type in again.
    """
    problems = _password_problems(password)
    if problems:
        raise ValidationFailed("The password cannot be set.", problems=problems)
    connection.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(password_hash=generate_password_hash(password))
    )
    end_sessions(connection, user_id, now=now)


def deactivate_user(
    connection: sa.Connection, user_id: int, *, now: dt.datetime | None = None
) -> None:
    """Deactivate a user: their sessions end, their tokens stop working.

    :raises Conflict: the user is the last active administrator: nothing could
        make a user active again, so no one could manage the platform any more.
    """
    others = sa.select(users.c.id).where(
        users.c.is_admin, users.c.active, users.c.id != user_id
    )
    target = connection.execute(
        sa.select(users.c.username, users.c.is_admin, sa.exists(others)).where(
            users.c.id == user_id
        )
    ).first()
    if target is not None and target.is_admin and not target[2]:
        raise Conflict(
            f"{target.username} is the last active administrator and cannot be "
            "deactivated; make another administrator first (tailorcrm user "
            "create NAME --admin)."
        )

    connection.execute(users.update().where(users.c.id == user_id).values(active=False))
    end_sessions(connection, user_id, now=now)


def end_sessions(
    connection: sa.Connection, user_id: int, *, now: dt.datetime | None = None
) -> int:
    """End every live web session of a user ("log out everywhere").

    :returns: how many sessions were ended.
    """
    result = connection.execute(
        web_sessions.update()
        .where(web_sessions.c.user_id == user_id, web_sessions.c.ended_at.is_(None))
        .values(ended_at=now or utcnow())
    )
    return int(result.rowcount or 0)


_REVISION = sa.select(sa.func.max(meta_revisions.c.id)).scalar_subquery()
_ACCESS = sa.select(sa.func.max(access_versions.c.version)).scalar_subquery()

# Built once: constructing a statement costs more than running it on every request.
# The session's row, its user and the metadata revision come in one statement, so a
# page pays a single round trip for all three.
_SESSION_QUERY = (
    sa.select(
        users.c.id,
        users.c.username,
        users.c.is_admin,
        web_sessions.c.id.label("session_id"),
        web_sessions.c.last_seen_at,
        _REVISION.label("revision"),
        _ACCESS.label("access_version"),
    )
    .join(web_sessions, web_sessions.c.user_id == users.c.id)
    .where(
        web_sessions.c.token_hash == sa.bindparam("token_hash"),
        web_sessions.c.ended_at.is_(None),
        web_sessions.c.expires_at > sa.bindparam("now"),
        web_sessions.c.last_seen_at > sa.bindparam("idle_since"),
        users.c.active,
    )
)


@dataclass(frozen=True)
class WebCaller:
    """What a live web session proves: who it is and when it was last seen."""

    user: User
    revision: int
    session_id: int
    last_seen_at: dt.datetime
    #: Counts changes to roles, teams and attributes (see ``tc_access_version``).
    access_version: int = 0


def load_web_session(
    connection: sa.Connection,
    session_token: str,
    *,
    now: dt.datetime,
    idle_since: dt.datetime,
) -> WebCaller:
    """Return the user of a live web session and the metadata revision.

    :param idle_since: a session not seen since then has ended.
    :raises Unauthorized: no such session, or it ended (signed out, expired,
        idle too long), or its user was deactivated.
    """
    parameters = {
        "token_hash": hash_token(session_token),
        "now": now,
        "idle_since": idle_since,
    }
    row = connection.execute(_SESSION_QUERY, parameters).first()
    if row is None:
        raise Unauthorized("Your session has ended; sign in again.")
    user = User(int(row.id), row.username, bool(row.is_admin))
    return WebCaller(
        user,
        int(row.revision or 0),
        int(row.session_id),
        row.last_seen_at,
        int(row.access_version or 0),
    )


# One row per scope of the token (or one without a scope for a token made before
# scopes existed): still one statement.
_TOKEN_QUERY = (
    sa.select(
        users.c.id,
        users.c.username,
        users.c.is_admin,
        api_tokens.c.id.label("token_id"),
        api_token_scopes.c.scope,
        _REVISION.label("revision"),
        _ACCESS.label("access_version"),
    )
    .select_from(
        api_tokens.join(users, api_tokens.c.user_id == users.c.id).outerjoin(
            api_token_scopes, api_token_scopes.c.token_id == api_tokens.c.id
        )
    )
    .where(
        api_tokens.c.token_hash == sa.bindparam("token_hash"),
        api_tokens.c.revoked_at.is_(None),
        sa.or_(
            api_tokens.c.expires_at.is_(None),
            api_tokens.c.expires_at > sa.bindparam("now"),
        ),
        users.c.active,
    )
)


def authenticate(
    connection: sa.Connection, token: str, *, now: dt.datetime | None = None
) -> TokenCaller:
    """Return who a bearer token speaks for, its scopes and the metadata revision.

    All come from one statement: every API request needs them.

    :raises Unauthorized: unknown, revoked or expired token, or inactive user.
    """
    parameters = {"token_hash": hash_token(token), "now": now or utcnow()}
    rows = connection.execute(_TOKEN_QUERY, parameters).all()
    if not rows:
        raise Unauthorized("The API token is not valid.")
    first = rows[0]
    user = User(int(first.id), first.username, bool(first.is_admin))
    scopes = frozenset(_ordered(row.scope for row in rows))
    return TokenCaller(
        user,
        int(first.revision or 0),
        int(first.token_id),
        scopes,
        int(first.access_version or 0),
    )
