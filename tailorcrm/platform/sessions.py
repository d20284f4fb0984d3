"""Web sessions kept on the server.

The signed cookie of a signed-in browser carries only a random session id; the
session itself is a row of ``tc_web_session``, found by the id's SHA-256 digest.
Ending the row (sign-out, "log out everywhere", a new password, deactivation)
signs the browser out at once, and so does any copy of its cookie. A session
also ends after a while without requests (idle) and a while after sign-in
(absolute), whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from .auth import hash_token
from .db import web_sessions

#: How much of a browser's description is kept with its session.
MAX_USER_AGENT = 200
MAX_ADDRESS = 64
#: ``last_seen_at`` is written at most this often (and at most every tenth of the
#: idle timeout), so that pages only read; a session may thus end up to that much
#: before its idle timeout is fully over.
TOUCH_EVERY = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class SessionPolicy:
    """How long web sessions live."""

    idle: dt.timedelta
    lifetime: dt.timedelta

    @property
    def touch_every(self) -> dt.timedelta:
        return min(TOUCH_EVERY, self.idle / 10)

    def idle_since(self, now: dt.datetime) -> dt.datetime:
        """A session last seen before this moment has ended."""
        return now - self.idle

    def needs_touch(self, last_seen_at: dt.datetime, now: dt.datetime) -> bool:
        return now - last_seen_at >= self.touch_every


@dataclass(frozen=True)
class Client:
    """Where a request comes from, as far as the server can tell."""

    address: str | None = None
    user_agent: str | None = None

    def clipped(self) -> Client:
        """The same client with both parts cut to what the tables keep."""
        agent = (self.user_agent or "")[:MAX_USER_AGENT] or None
        address = (self.address or "")[:MAX_ADDRESS] or None
        return Client(address, agent)


def start_session(
    connection: sa.Connection,
    user_id: int,
    *,
    policy: SessionPolicy,
    client: Client,
    now: dt.datetime,
) -> str:
    """Start a web session for a user and return its id, for the cookie only.

    Sessions of the user that are over are deleted on the way: the sign-in
    events keep the history.
    """
    over = sa.or_(
        web_sessions.c.ended_at.is_not(None),
        web_sessions.c.expires_at <= now,
        web_sessions.c.last_seen_at <= policy.idle_since(now),
    )
    connection.execute(
        web_sessions.delete().where(web_sessions.c.user_id == user_id, over)
    )
    token = secrets.token_urlsafe(32)
    clipped = client.clipped()
    connection.execute(
        web_sessions.insert().values(
            token_hash=hash_token(token),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.lifetime,
            address=clipped.address,
            user_agent=clipped.user_agent,
        )
    )
    return token


def end_session(
    connection: sa.Connection, session_token: str, *, now: dt.datetime
) -> int | None:
    """End one web session; return its user's id, or ``None`` if it was not live."""
    row = connection.execute(
        sa.select(web_sessions.c.id, web_sessions.c.user_id).where(
            web_sessions.c.token_hash == hash_token(session_token),
            web_sessions.c.ended_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    connection.execute(
        web_sessions.update().where(web_sessions.c.id == row.id).values(ended_at=now)
    )
    return int(row.user_id)


def touch_session(
    connection: sa.Connection, session_id: int, *, now: dt.datetime
) -> None:
    """Note that a session was used now (its idle timeout starts again)."""
    connection.execute(
        web_sessions.update()
        .where(web_sessions.c.id == session_id, web_sessions.c.ended_at.is_(None))
        .values(last_seen_at=now)
    )
