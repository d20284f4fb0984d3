"""What the API answers when the database undoes or holds back a change.

SQLite lets one writer in at a time: a write that waited in vain is "busy". On
PostgreSQL two transactions can meet (a deadlock, a serialization failure) and one
is undone: the client is told nothing was saved and to try again. Other database
errors stay server errors, whatever their text says.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from tailorcrm.platform.records import RecordService
from tests.conftest import Api


def _sqlite_error(name: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorname = name  # type: ignore[attr-defined]
    return error


CASES: list[tuple[str, Any, int, str | None]] = [
    ("sqlite busy", _sqlite_error("SQLITE_BUSY"), 503, "5"),
    ("sqlite locked table", _sqlite_error("SQLITE_LOCKED"), 503, "5"),
    (
        "deadlock",
        psycopg.errors.DeadlockDetected(
            "deadlock detected: process 1 is blocked by process 2"
        ),
        503,
        "1",
    ),
    (
        "serialization",
        psycopg.errors.SerializationFailure("could not serialize"),
        503,
        "1",
    ),
    (
        "lock not available",
        psycopg.errors.LockNotAvailable("could not obtain lock"),
        503,
        "1",
    ),
    # A text that says "locked" is not enough to be called busy.
    (
        "other",
        psycopg.errors.AdminShutdown("the row was locked by an admin"),
        500,
        None,
    ),
]


@pytest.mark.parametrize(
    ("cause", "status", "retry"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_database_holding_back_a_change_is_answered_by_its_cause(
    crm: Api,
    monkeypatch: pytest.MonkeyPatch,
    cause: Exception,
    status: int,
    retry: str | None,
) -> None:
    def fail(*_: Any, **__: Any) -> Any:
        raise sa.exc.OperationalError("UPDATE account", {}, cause)

    monkeypatch.setattr(RecordService, "get", fail)
    answered = crm.get("/account/1")
    assert answered.status_code == status, answered.json
    assert answered.headers.get("Retry-After") == retry
    if status == 503:
        assert "try again" in answered.json["detail"].lower()
