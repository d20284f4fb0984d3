"""What the API, the pages and imports answer when the database undoes or holds
back a change.

SQLite lets one writer in at a time: a write that waited in vain is "busy". On
PostgreSQL two transactions can meet (a deadlock, a serialization failure) and one
is undone: the client is told nothing was saved and to try again. Other database
errors stay server errors, whatever their text says.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask

from tailorcrm.platform import Platform
from tailorcrm.platform.cli import main
from tailorcrm.platform.records import RecordService
from tests.conftest import Api
from tests.web_helpers import sign_in


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


#: The causes the database held back a change for (an unexpected error is a 500,
#: which a test client raises rather than answers).
HELD_BACK = [case for case in CASES if case[2] == 503]


@pytest.mark.parametrize(
    ("cause", "retry"),
    [(case[1], case[3]) for case in HELD_BACK],
    ids=[case[0] for case in HELD_BACK],
)
def test_a_page_says_when_the_database_held_back_its_change(
    app: Flask,
    crm: Api,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    cause: Exception,
    retry: str,
) -> None:
    browser = sign_in(app, platform)

    def fail(*_: Any, **__: Any) -> Any:
        raise sa.exc.OperationalError("UPDATE account", {}, cause)

    monkeypatch.setattr(RecordService, "get", fail)
    answered = browser.get("/app/account/1")

    assert answered.status_code == 503
    assert answered.headers.get("Retry-After") == retry
    page = answered.get_data(as_text=True)
    assert "nothing was saved" in page.lower()
    assert "try again" in page.lower()
    assert "UPDATE account" not in page


@pytest.mark.parametrize(
    "cause", [case[1] for case in HELD_BACK], ids=[case[0] for case in HELD_BACK]
)
def test_an_import_the_database_held_back_says_to_run_it_again(
    crm: Api,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cause: Exception,
) -> None:
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})
    assert runner.invoke(main, ["init"]).exit_code == 0
    file = tmp_path / "accounts.csv"
    file.write_text("name\nRidgeway Holdings\n")

    def fail(*_: Any, **__: Any) -> Any:
        raise sa.exc.OperationalError("INSERT INTO account", {}, cause)

    monkeypatch.setattr(RecordService, "create_many", fail)
    result = runner.invoke(main, ["import", "account", str(file)])

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.splitlines()[-1] == "Nothing was imported."
    assert "again" in result.stderr
    assert "INSERT INTO" not in result.stderr
