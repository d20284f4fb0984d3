"""Signing in to the web pages: throttling, sessions and the sign-in audit.

Every attempt is written to ``tc_login_event`` with its outcome (``success``,
``failure``, ``locked``) and every sign-out as ``logout``. Failed attempts are
counted over a sliding window, per user name as typed and per address: past the
limit, further attempts are refused before the password is even checked, so the
right password is refused too until the window has moved on. A name that
belongs to nobody is counted and locked like any other, so the answers never
tell whether an account exists. A successful sign-in clears the name's count,
not the address's.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import BadRequest, TooManyRequests, Unauthorized
from .auth import User, check_password
from .db import READ_ONLY, login_events, users
from .sessions import Client, SessionPolicy, end_session, start_session

SUCCESS = "success"
FAILURE = "failure"
LOCKED = "locked"
LOGOUT = "logout"
OUTCOMES = (SUCCESS, FAILURE, LOCKED, LOGOUT)
MAX_USERNAME = 150
MAX_EVENTS_PAGE = 500


@dataclass(frozen=True)
class LoginPolicy:
    """How many failed sign-ins are allowed, per name and per address, and when."""

    account_limit: int
    address_limit: int
    window: dt.timedelta


@dataclass(frozen=True)
class SignedIn:
    """A successful sign-in: the user and the new session's id for the cookie."""

    user: User
    session_token: str


def sign_in(
    engine: Engine,
    username: str,
    password: str,
    *,
    client: Client,
    logins: LoginPolicy,
    sessions: SessionPolicy,
    now: dt.datetime,
) -> SignedIn:
    """Check a name and password and start a web session; record the attempt.

    The checks only read; the event and the session are written afterwards in a
    short transaction, so the slow password hash never holds a write lock. Two
    attempts at the same moment may therefore both pass the limit's last step.

    :raises TooManyRequests: too many failed sign-ins for the name or from the
        address lately; ``retry_after`` says for how many more seconds.
    :raises Unauthorized: unknown name, wrong password or inactive user, with
        one message for all three.
    """
    name = username[:MAX_USERNAME]
    client = client.clipped()
    user: User | None = None
    token = ""
    with engine.connect() as connection:
        connection.execution_options(**READ_ONLY)
        with connection.begin():
            wait = seconds_locked(
                connection, name, client.address, policy=logins, now=now
            )
            if wait is None:
                try:
                    user = check_password(connection, username, password)
                except Unauthorized:
                    user = None
    outcome = LOCKED if wait is not None else FAILURE if user is None else SUCCESS
    with engine.begin() as connection:
        record_event(
            connection,
            outcome,
            user.username if user else name,
            user_id=user.id if user else None,
            client=client,
            now=now,
        )
        if user is not None:
            token = start_session(
                connection, user.id, policy=sessions, client=client, now=now
            )
    if wait is not None:
        minutes = math.ceil(wait / 60)
        unit = "minute" if minutes == 1 else "minutes"
        raise TooManyRequests(
            f"Too many failed sign-ins; try again in {minutes} {unit}.",
            retry_after=wait,
        )
    if user is None:
        raise Unauthorized("The user name or password is not right.")
    return SignedIn(user, token)


def sign_out(
    engine: Engine, session_token: str, *, client: Client, now: dt.datetime
) -> None:
    """End a web session and record the sign-out; an ended one is left alone."""
    with engine.begin() as connection:
        user_id = end_session(connection, session_token, now=now)
        if user_id is None:
            return
        username = connection.execute(
            sa.select(users.c.username).where(users.c.id == user_id)
        ).scalar_one()
        record_event(
            connection, LOGOUT, username, user_id=user_id, client=client, now=now
        )


def record_event(
    connection: sa.Connection,
    outcome: str,
    username: str,
    *,
    user_id: int | None,
    client: Client,
    now: dt.datetime,
) -> None:
    """Write one sign-in event; never a password, whatever the outcome."""
    clipped = client.clipped()
    connection.execute(
        login_events.insert().values(
            at=now,
            username=username[:MAX_USERNAME],
            user_id=user_id,
            address=clipped.address,
            user_agent=clipped.user_agent,
            outcome=outcome,
        )
    )


def seconds_locked(
    connection: sa.Connection,
    username: str,
    address: str | None,
    *,
    policy: LoginPolicy,
    now: dt.datetime,
) -> int | None:
    """How many seconds sign-ins for ``username`` or from ``address`` stay refused.

    :returns: ``None`` when neither is locked.
    """
    failed = sa.and_(
        login_events.c.outcome == FAILURE,
        login_events.c.at > now - policy.window,
    )
    # Only failures after the name's last success count against the name.
    last_success = (
        sa.select(sa.func.coalesce(sa.func.max(login_events.c.id), 0))
        .where(login_events.c.username == username, login_events.c.outcome == SUCCESS)
        .scalar_subquery()
    )
    ends = [
        _lock_end(
            connection,
            sa.and_(
                failed,
                login_events.c.username == username,
                login_events.c.id > last_success,
            ),
            policy.account_limit,
            policy.window,
        )
    ]
    if address is not None:
        ends.append(
            _lock_end(
                connection,
                sa.and_(failed, login_events.c.address == address),
                policy.address_limit,
                policy.window,
            )
        )
    latest = max((end for end in ends if end is not None), default=None)
    if latest is None or latest <= now:
        return None
    return max(1, math.ceil((latest - now).total_seconds()))


def _lock_end(
    connection: sa.Connection,
    condition: sa.ColumnElement[bool],
    limit: int,
    window: dt.timedelta,
) -> dt.datetime | None:
    """When a lock ends: once the ``limit``-th latest failure leaves the window."""
    row = connection.execute(
        sa.select(login_events.c.at)
        .where(condition)
        .order_by(login_events.c.at.desc(), login_events.c.id.desc())
        .limit(1)
        .offset(limit - 1)
    ).first()
    return None if row is None else row.at + window


def list_events(
    connection: sa.Connection,
    *,
    username: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Sign-in events, newest first; ``before`` an event id, for the next page.

    :raises BadRequest: a limit outside 1 to :data:`MAX_EVENTS_PAGE`.
    """
    if not 1 <= limit <= MAX_EVENTS_PAGE:
        raise BadRequest.parameter(
            "limit", f"give a number from 1 to {MAX_EVENTS_PAGE}."
        )
    query = sa.select(login_events).order_by(login_events.c.id.desc()).limit(limit)
    if username is not None:
        query = query.where(login_events.c.username == username)
    if before is not None:
        query = query.where(login_events.c.id < before)
    return [
        {
            "id": int(row.id),
            "at": row.at.isoformat() + "Z",
            "username": row.username,
            "user_id": None if row.user_id is None else int(row.user_id),
            "outcome": row.outcome,
            "address": row.address,
            "user_agent": row.user_agent,
        }
        for row in connection.execute(query)
    ]
