"""Users and API tokens.

Passwords are hashed with scrypt (through werkzeug). API tokens are random, shown once
and stored only as a SHA-256 digest, so a copy of the database reveals none of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import Conflict, NotFound, Problem, Unauthorized, ValidationFailed
from .db import api_tokens, meta_revisions, users, utcnow
from .records import Actor

TOKEN_PREFIX = "tcrm_"
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,149}$")
MIN_PASSWORD_LENGTH = 10


@dataclass(frozen=True)
class User:
    id: int
    username: str
    is_admin: bool

    def actor(self) -> Actor:
        return Actor(user_id=self.id, username=self.username, is_admin=self.is_admin)

    def condition_data(self) -> dict[str, Any]:
        """What ``$user`` reads in a condition (roles arrive with permissions)."""
        roles = ["admin"] if self.is_admin else []
        return {"id": self.id, "username": self.username, "roles": roles}


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
    if len(password) < MIN_PASSWORD_LENGTH:
        message = f"Use at least {MIN_PASSWORD_LENGTH} characters."
        problems.append(Problem("password", "password_too_short", message))
    if problems:
        raise ValidationFailed("The user cannot be created.", problems=problems)
    taken = connection.execute(
        sa.select(users.c.id).where(users.c.username == username)
    ).first()
    if taken is not None:
        raise Conflict(f"There is already a user named {username!r}.")
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
    expires_in: dt.timedelta | None = None,
) -> str:
    """Create an API token for ``user`` and return it; only its digest is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    connection.execute(
        api_tokens.insert().values(
            user_id=user.id,
            token_hash=hash_token(token),
            name=name,
            created_at=now,
            expires_at=now + expires_in if expires_in else None,
        )
    )
    return token


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

_USER_QUERY = sa.select(
    users.c.id,
    users.c.username,
    users.c.is_admin,
    sa.select(sa.func.max(meta_revisions.c.id)).scalar_subquery().label("revision"),
).where(users.c.id == sa.bindparam("user_id"), users.c.active)


def load_user(connection: sa.Connection, user_id: int) -> tuple[User, int]:
    """Return a signed-in user and the metadata revision, in one statement.

    :raises Unauthorized: the user no longer exists or was deactivated.
    """
    row = connection.execute(_USER_QUERY, {"user_id": user_id}).first()
    if row is None:
        raise Unauthorized("Your account is not active; sign in again.")
    user = User(int(row.id), row.username, bool(row.is_admin))
    return user, int(row.revision or 0)


# Built once: constructing a statement costs more than running it on every request.
_TOKEN_QUERY = (
    sa.select(
        users.c.id,
        users.c.username,
        users.c.is_admin,
        api_tokens.c.expires_at,
        sa.select(sa.func.max(meta_revisions.c.id)).scalar_subquery().label("revision"),
    )
    .join(api_tokens, api_tokens.c.user_id == users.c.id)
    .where(
        api_tokens.c.token_hash == sa.bindparam("token_hash"),
        api_tokens.c.revoked_at.is_(None),
        users.c.active,
    )
)


def authenticate(connection: sa.Connection, token: str) -> tuple[User, int]:
    """Return the user a bearer token belongs to and the metadata revision.

    Both come from one statement: every API request needs the two.

    :raises Unauthorized: unknown, revoked or expired token, or inactive user.
    """
    row = connection.execute(_TOKEN_QUERY, {"token_hash": hash_token(token)}).first()
    if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
        raise Unauthorized("The API token is not valid.")
    user = User(int(row.id), row.username, bool(row.is_admin))
    return user, int(row.revision or 0)
