"""Server-side web sessions, sign-in throttling and audit, API token scopes.

Time moves through the platform's clock, never through sleeps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.auth import (
    create_token,
    create_user,
    deactivate_user,
    find_user,
    hash_token,
    list_tokens,
    set_password,
)
from tailorcrm.platform.cli import main
from tailorcrm.platform.config import Settings
from tailorcrm.platform.db import (
    create_engine,
    login_events,
    system_metadata,
    users,
    web_sessions,
)
from tests.conftest import ACCOUNT, Api
from tests.web_helpers import token_of

PASSWORD = "a-long-password-1"
COOKIE = "tailorcrm_session"
START = dt.datetime(2030, 5, 6, 9, 0, 0)
LOCKED = "Too many failed sign-ins; try again in 15 minutes."
WRONG = "The user name or password is not right."


class Clock:
    """A clock for the platform that moves only when told."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock(platform: Platform) -> Clock:
    found = Clock(START)
    platform.clock = found
    return found


@contextmanager
def _app(database_url: str, **settings: Any) -> Iterator[Flask]:
    """An app with its own settings and a clock at ``START``."""
    application = create_app(
        {"database_url": database_url, "secret_key": "test", **settings}
    )
    application.config["TESTING"] = True
    application.extensions["tailorcrm"].clock = Clock(START)
    try:
        yield application
    finally:
        application.extensions["tailorcrm"].engine.dispose()


@pytest.fixture
def strict_app(database_url: str) -> Iterator[Flask]:
    """An app whose per-address limit is low enough to reach quickly."""
    with _app(database_url, login_address_limit=4, login_account_limit=3) as app:
        yield app


def _user(platform: Platform, name: str = "dana.vega", **options: Any) -> int:
    with platform.engine.begin() as connection:
        return create_user(connection, name, PASSWORD, **options).id


def _sign_in(
    client: FlaskClient,
    username: str = "dana.vega",
    password: str = PASSWORD,
    *,
    address: str = "127.0.0.1",
) -> TestResponse:
    environ = {"REMOTE_ADDR": address}
    form = client.get("/login", environ_base=environ)
    if form.status_code == 302:  # signed in already: the form is on every page
        form = client.get("/", environ_base=environ)
    page = form.get_data(as_text=True)
    data = {"username": username, "password": password, "csrf_token": token_of(page)}
    return client.post("/login", data=data, environ_base=environ)


def _copy_cookie(source: FlaskClient, target: FlaskClient) -> None:
    cookie = source.get_cookie(COOKIE)
    assert cookie is not None
    target.set_cookie(COOKIE, cookie.value)


def _log_out(client: FlaskClient) -> TestResponse:
    token = token_of(client.get("/").get_data(as_text=True))
    return client.post("/logout", data={"csrf_token": token})


def _sessions(platform: Platform) -> list[Any]:
    with platform.engine.connect() as connection:
        return list(
            connection.execute(sa.select(web_sessions).order_by(web_sessions.c.id))
        )


def _signed_in(client: FlaskClient) -> bool:
    response = client.get("/")
    if response.status_code == 200:
        return True
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    return False


# -- server-side sessions ------------------------------------------------------------


def test_a_copied_cookie_stops_working_after_logout(
    app: Flask, platform: Platform, clock: Clock
) -> None:
    _user(platform)
    browser, thief = app.test_client(), app.test_client()
    _sign_in(browser)
    _copy_cookie(browser, thief)
    before = _signed_in(thief)

    _log_out(browser)

    assert before is True
    assert _signed_in(thief) is False
    assert _signed_in(browser) is False
    [row] = _sessions(platform)
    assert row.ended_at == START


def test_the_cookie_holds_a_random_session_id_stored_only_as_a_digest(
    app: Flask, platform: Platform, clock: Clock
) -> None:
    user_id = _user(platform)
    client = app.test_client()

    _sign_in(client)

    with client.session_transaction() as cookie:
        session_id = cookie["_user_id"]
    [row] = _sessions(platform)
    assert session_id != str(user_id) and len(session_id) >= 40
    assert row.token_hash == hash_token(session_id)
    assert session_id not in {str(value) for value in row}
    assert (row.user_id, row.address, row.created_at) == (user_id, "127.0.0.1", START)
    assert row.expires_at == START + dt.timedelta(days=7)


def test_signing_in_again_rotates_the_session_id(
    app: Flask, platform: Platform, clock: Clock
) -> None:
    _user(platform)
    browser, copy = app.test_client(), app.test_client()
    _sign_in(browser)
    _copy_cookie(browser, copy)

    _sign_in(browser)

    first, second = _sessions(platform)
    assert first.ended_at is not None and second.ended_at is None
    assert first.token_hash != second.token_hash
    assert _signed_in(browser) is True
    assert _signed_in(copy) is False


def test_a_cookie_from_before_server_side_sessions_signs_nobody_in(
    app: Flask, platform: Platform
) -> None:
    user_id = _user(platform)
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["_user_id"] = str(user_id)
        cookie["_fresh"] = True

    assert _signed_in(client) is False


def test_a_session_ends_after_the_idle_timeout(
    app: Flask, platform: Platform, clock: Clock
) -> None:
    _user(platform)
    client = app.test_client()
    _sign_in(client)

    clock.advance(hours=11)
    kept_alive = _signed_in(client)
    clock.advance(hours=11)
    still_alive = _signed_in(client)
    clock.advance(hours=12, seconds=1)

    assert kept_alive is True
    assert still_alive is True
    assert _signed_in(client) is False


def test_a_session_ends_at_its_absolute_limit_however_busy(
    database_url: str,
) -> None:
    settings = {"session_idle_minutes": 60, "session_max_hours": 3}
    with _app(database_url, **settings) as app:
        platform: Platform = app.extensions["tailorcrm"]
        clock = platform.clock
        assert isinstance(clock, Clock)
        _user(platform)
        client = app.test_client()
        _sign_in(client)

        alive = []
        for _ in range(5):
            clock.advance(minutes=40)
            alive.append(_signed_in(client))

    assert alive == [True, True, True, True, False]


def test_a_page_checks_its_session_in_the_statement_that_loads_the_user(
    app: Flask, platform: Platform, clock: Clock
) -> None:
    _user(platform)
    client = app.test_client()
    _sign_in(client)
    client.get("/")
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    def statements() -> list[str]:
        seen.clear()
        sa.event.listen(platform.engine, "before_cursor_execute", count)
        try:
            assert client.get("/").status_code == 200
        finally:
            sa.event.remove(platform.engine, "before_cursor_execute", count)
        return [text for text in seen if "tc_web_session" in text]

    quiet = statements()
    clock.advance(minutes=6)
    touched = statements()

    assert len(quiet) == 1 and quiet[0].lstrip().upper().startswith("SELECT")
    assert "tc_user" in quiet[0] and "tc_meta_revision" in quiet[0]
    assert [text.split()[0].upper() for text in touched] == ["SELECT", "UPDATE"]
    assert _sessions(platform)[0].last_seen_at == START + dt.timedelta(minutes=6)


@pytest.mark.parametrize("change", ["deactivate", "password"])
def test_deactivation_and_a_new_password_end_every_session(
    app: Flask, platform: Platform, clock: Clock, change: str
) -> None:
    user_id = _user(platform)
    laptop, phone = app.test_client(), app.test_client()
    _sign_in(laptop)
    _sign_in(phone, address="10.0.0.8")

    with platform.engine.begin() as connection:
        if change == "deactivate":
            deactivate_user(connection, user_id)
            # Even switched on again, the old sessions stay over.
            connection.execute(
                users.update().where(users.c.id == user_id).values(active=True)
            )
        else:
            set_password(connection, user_id, "another-long-password")

    assert [_signed_in(laptop), _signed_in(phone)] == [False, False]
    assert all(row.ended_at is not None for row in _sessions(platform))


def test_log_out_everywhere_from_the_command_line(
    app: Flask, platform: Platform, database_url: str
) -> None:
    _user(platform)
    _user(platform, "eli.moss")
    laptop, phone, other = app.test_client(), app.test_client(), app.test_client()
    _sign_in(laptop)
    _sign_in(phone)
    _sign_in(other, "eli.moss")
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})

    result = runner.invoke(main, ["user", "logout-all", "dana.vega"])

    assert result.exit_code == 0, result.output
    assert "Ended 2 web sessions of dana.vega." in result.output
    assert [_signed_in(laptop), _signed_in(phone), _signed_in(other)] == [
        False,
        False,
        True,
    ]


def test_set_password_and_deactivate_from_the_command_line(
    app: Flask, platform: Platform, database_url: str
) -> None:
    _user(platform)
    client = app.test_client()
    _sign_in(client)
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})

    changed = runner.invoke(
        main, ["user", "set-password", "dana.vega", "--password", "fresh-password-22"]
    )
    after_change = _signed_in(client)
    old_password = _sign_in(client).status_code
    new_password = _sign_in(client, password="fresh-password-22").status_code
    deactivated = runner.invoke(main, ["user", "deactivate", "dana.vega"])

    assert changed.exit_code == 0, changed.output
    assert "fresh-password-22" not in changed.output
    assert after_change is False
    assert (old_password, new_password) == (401, 302)
    assert deactivated.exit_code == 0, deactivated.output
    assert _signed_in(client) is False
    assert _sign_in(client, password="fresh-password-22").status_code == 401


# -- throttling ----------------------------------------------------------------------


def test_five_failures_lock_the_account_even_for_the_right_password(
    app: Flask, platform: Platform, clock: Clock
) -> None:
    _user(platform)
    client = app.test_client()

    failures = [_sign_in(client, password="wrong-guess").status_code for _ in range(5)]
    locked = _sign_in(client)

    assert failures == [401] * 5
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "900"
    assert LOCKED in locked.get_data(as_text=True)
    assert _signed_in(client) is False
    assert _sessions(platform) == []


def test_the_lock_lifts_when_the_failures_leave_the_window(
    app: Flask, platform: Platform, clock: Clock
) -> None:
    _user(platform)
    client = app.test_client()
    for minute in range(5):
        clock.now = START + dt.timedelta(minutes=minute)
        _sign_in(client, password="wrong-guess")

    clock.now = START + dt.timedelta(minutes=10)
    waiting = _sign_in(client)
    clock.now = START + dt.timedelta(minutes=15)
    lifted = _sign_in(client)

    assert waiting.status_code == 429
    assert waiting.headers["Retry-After"] == "300"
    assert "try again in 5 minutes." in waiting.get_data(as_text=True)
    assert lifted.status_code == 302


def test_a_successful_sign_in_clears_the_accounts_count(
    app: Flask, platform: Platform, clock: Clock
) -> None:
    _user(platform)
    client = app.test_client()

    outcomes = []
    for _ in range(2):
        outcomes += [_sign_in(client, password="wrong").status_code for _ in range(4)]
        outcomes.append(_sign_in(client).status_code)

    assert outcomes == [401, 401, 401, 401, 302] * 2


def test_a_name_nobody_has_is_answered_like_a_real_one(
    app: Flask, platform: Platform, clock: Clock
) -> None:
    _user(platform)

    def attempts(username: str) -> list[tuple[int, str | None, bool, bool]]:
        client = app.test_client()
        answers = []
        for _ in range(7):
            response = _sign_in(client, username, "wrong-guess")
            page = response.get_data(as_text=True)
            answers.append(
                (
                    response.status_code,
                    response.headers.get("Retry-After"),
                    WRONG in page,
                    LOCKED in page,
                )
            )
        return answers

    real, unknown = attempts("dana.vega"), attempts("nobody.here")

    assert real == unknown
    assert [status for status, *_ in real] == [401] * 5 + [429] * 2


def test_failures_from_one_address_lock_that_address_only(
    strict_app: Flask,
) -> None:
    platform: Platform = strict_app.extensions["tailorcrm"]
    _user(platform)
    client = strict_app.test_client()
    for name in ("ana", "ben", "cy", "dee"):
        _sign_in(client, name, "wrong-guess", address="10.9.8.7")

    here = _sign_in(client, address="10.9.8.7")
    elsewhere = _sign_in(strict_app.test_client(), address="10.1.1.1")

    assert here.status_code == 429
    assert here.headers["Retry-After"] == "900"
    assert elsewhere.status_code == 302


def test_a_success_does_not_clear_the_address_count(strict_app: Flask) -> None:
    platform: Platform = strict_app.extensions["tailorcrm"]
    _user(platform)
    client = strict_app.test_client()
    for name in ("ana", "ben", "cy"):
        _sign_in(client, name, "wrong-guess", address="10.9.8.7")

    own = _sign_in(strict_app.test_client(), address="10.9.8.7")
    guess = _sign_in(client, "eve", "wrong-guess", address="10.9.8.7")
    then = _sign_in(client, "fay", "wrong-guess", address="10.9.8.7")

    assert (own.status_code, guess.status_code, then.status_code) == (302, 401, 429)


# -- the sign-in audit ---------------------------------------------------------------


def test_every_attempt_and_logout_is_recorded_without_passwords(
    strict_app: Flask,
) -> None:
    platform: Platform = strict_app.extensions["tailorcrm"]
    user_id = _user(platform)
    client = strict_app.test_client()
    _sign_in(client, password="secret-guess-1")
    _sign_in(client)
    _log_out(client)
    for _ in range(3):
        _sign_in(client, password="secret-guess-2")
    _sign_in(client)

    with platform.engine.connect() as connection:
        rows = list(connection.execute(sa.select(login_events).order_by("id")))
    assert [(row.outcome, row.username, row.user_id) for row in rows] == [
        ("failure", "dana.vega", None),
        ("success", "dana.vega", user_id),
        ("logout", "dana.vega", user_id),
        ("failure", "dana.vega", None),
        ("failure", "dana.vega", None),
        ("failure", "dana.vega", None),
        ("locked", "dana.vega", None),
    ]
    assert {row.address for row in rows} == {"127.0.0.1"}
    assert {row.at for row in rows} == {START}
    every_value = " ".join(str(value) for row in rows for value in row)
    for secret in ("secret-guess", PASSWORD):
        assert secret not in every_value


def test_admins_read_the_sign_in_audit_newest_first_in_pages(
    app: Flask, platform: Platform, api: Api, clock: Clock
) -> None:
    _user(platform)
    client = app.test_client()
    _sign_in(client, password="wrong-guess")
    _sign_in(client, "nobody.here", "wrong-guess")
    _sign_in(client)

    everything = api.get("/audit/logins")
    first = api.get("/audit/logins?limit=2")
    second = api.get(first.json["next"].split("/api/v1", 1)[1])
    dana = api.get("/audit/logins?user=dana.vega")

    assert everything.status_code == 200
    outcomes = [(e["username"], e["outcome"]) for e in everything.json["data"]]
    assert outcomes == [
        ("dana.vega", "success"),
        ("nobody.here", "failure"),
        ("dana.vega", "failure"),
    ]
    assert everything.json["next"] is None
    assert everything.json["data"][0]["at"] == "2030-05-06T09:00:00Z"
    assert set(everything.json["data"][0]) == {
        "id",
        "at",
        "username",
        "user_id",
        "outcome",
        "address",
        "user_agent",
    }
    assert [e["outcome"] for e in first.json["data"]] == ["success", "failure"]
    assert [e["username"] for e in second.json["data"]] == ["dana.vega"]
    assert [e["outcome"] for e in dana.json["data"]] == ["success", "failure"]
    assert api.get("/audit/logins?limit=0").status_code == 400


@pytest.mark.parametrize(
    ("path", "field", "code"),
    [
        ("/audit/logins?usr=dana.vega", "usr", "unknown_parameter"),
        ("/audit/logins?user=admin&user=dana.vega", "user", "invalid_parameter"),
        ("/audit/logins?limit=1&limit=5", "limit", "invalid_parameter"),
        ("/auth/tokens?usr=dana.vega", "usr", "unknown_parameter"),
        ("/auth/tokens?user=admin&user=dana.vega", "user", "invalid_parameter"),
    ],
)
def test_a_misspelt_or_repeated_parameter_of_the_audit_or_tokens_is_refused(
    platform: Platform, api: Api, path: str, field: str, code: str
) -> None:
    """Rather than answered for everyone, or for the first user named, as if
    that were what was asked for."""
    _user(platform)

    response = api.get(path)

    assert response.status_code == 400, response.json
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [(field, code)]


def test_only_admins_with_the_admin_scope_read_the_sign_in_audit(
    app: Flask, platform: Platform, api: Api
) -> None:
    with platform.engine.begin() as connection:
        seller = create_user(connection, "seller", PASSWORD)
        seller_token = create_token(connection, seller)
        admin = find_user(connection, "admin")
        reader_token = create_token(connection, admin, scopes=["read"])
    client = app.test_client()

    seller_answer = Api(client, seller_token).get("/audit/logins")
    reader_answer = Api(client, reader_token).get("/audit/logins")
    anonymous = client.get("/api/v1/audit/logins")

    assert seller_answer.status_code == 403
    assert reader_answer.status_code == 403
    assert "'admin' scope" in reader_answer.json["detail"]
    assert anonymous.status_code == 401


# -- API token scopes, expiry and revocation -----------------------------------------

SCOPE_CASES = [
    # (scopes, method, path, body, expected status)
    (["read"], "GET", "/account", None, 200),
    (["read"], "GET", "/meta/entities", None, 200),
    (["read"], "POST", "/account", {"name": "Acme"}, 403),
    (["read"], "PATCH", "/account/1", {"name": "Acme"}, 403),
    (["read"], "DELETE", "/account/1", None, 403),
    (["read"], "POST", "/meta/views?entity=account", {"label": "Mine"}, 403),
    (["read"], "PUT", "/meta/entities/account", ACCOUNT, 403),
    (["read"], "GET", "/meta/entities/account/history", None, 403),
    (["write"], "GET", "/account", None, 403),
    (["write"], "POST", "/account", {"name": "Acme"}, 201),
    (["write"], "PATCH", "/account/1", {"name": "Acme"}, 200),
    (["write"], "POST", "/meta/views?entity=account", {"label": "Mine"}, 201),
    (["write"], "PUT", "/meta/entities/account", ACCOUNT, 403),
    (["write"], "POST", "/account?bypass_automation=1", {"name": "Acme"}, 403),
    (["admin"], "PUT", "/meta/entities/account", ACCOUNT, 200),
    (["admin"], "GET", "/meta/entities/account/history", None, 200),
    (["admin"], "GET", "/account", None, 403),
    (["write", "admin"], "POST", "/account?bypass_automation=1", {"name": "A"}, 201),
    (["read", "write"], "DELETE", "/account/1", None, 204),
]


@pytest.mark.parametrize(("scopes", "method", "path", "body", "status"), SCOPE_CASES)
def test_a_token_does_only_what_its_scopes_allow(
    app: Flask,
    platform: Platform,
    api: Api,
    scopes: list[str],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    api.put("/meta/entities/account", json=ACCOUNT)
    api.post("/account", json={"name": "First"})
    with platform.engine.begin() as connection:
        admin = find_user(connection, "admin")
        scoped = Api(app.test_client(), create_token(connection, admin, scopes=scopes))

    response = scoped.request(method, path, json=body)

    assert response.status_code == status, response.get_json()


def test_an_expired_token_is_refused_at_once(
    app: Flask, platform: Platform, clock: Clock
) -> None:
    with platform.engine.begin() as connection:
        user = create_user(connection, "seller", PASSWORD)
        token = create_token(
            connection, user, expires_in=dt.timedelta(days=2), now=clock()
        )
    seller = Api(app.test_client(), token)

    clock.advance(days=1)
    before = seller.get("/meta/entities").status_code
    clock.advance(days=1)
    after = seller.get("/meta/entities")

    assert before == 200
    assert after.status_code == 401
    assert after.json["detail"] == "The API token is not valid."


def test_users_list_and_revoke_their_own_tokens(
    app: Flask, platform: Platform, api: Api
) -> None:
    with platform.engine.begin() as connection:
        seller = create_user(connection, "seller", PASSWORD)
        laptop = create_token(connection, seller, name="laptop")
        create_token(connection, seller, name="phone", scopes=["read"])
    client = app.test_client()
    seller_api = Api(client, laptop)
    admin_tokens = api.get("/auth/tokens").json["data"]

    listed = seller_api.get("/auth/tokens").json["data"]
    phone_id = listed[1]["id"]
    others = seller_api.delete(f"/auth/tokens/{admin_tokens[0]['id']}")
    revoked = seller_api.delete(f"/auth/tokens/{phone_id}")
    again = seller_api.delete(f"/auth/tokens/{phone_id}")
    after = seller_api.get("/auth/tokens").json["data"]

    assert [(t["name"], t["scopes"], t["current"]) for t in listed] == [
        ("laptop", ["read", "write", "admin"], True),
        ("phone", ["read"], False),
    ]
    assert set(listed[0]) == {
        "id",
        "user",
        "name",
        "scopes",
        "state",
        "created_at",
        "expires_at",
        "revoked_at",
        "current",
    }
    assert laptop not in str(listed)
    assert others.status_code == 404
    assert (revoked.status_code, again.status_code) == (204, 204)
    assert [t["state"] for t in after] == ["active", "revoked"]
    assert api.get("/auth/tokens").status_code == 200


def test_a_revoked_token_stops_working_at_once(app: Flask, api: Api) -> None:
    own = api.get("/auth/tokens").json["data"]

    revoked = api.delete(f"/auth/tokens/{own[0]['id']}")
    after = api.get("/meta/entities")

    assert revoked.status_code == 204
    assert after.status_code == 401


def test_admins_revoke_other_users_tokens_with_the_admin_scope(
    app: Flask, platform: Platform, api: Api
) -> None:
    with platform.engine.begin() as connection:
        seller = create_user(connection, "seller", PASSWORD)
        seller_api = Api(app.test_client(), create_token(connection, seller))
        admin = find_user(connection, "admin")
        writer = Api(
            app.test_client(), create_token(connection, admin, scopes=["write"])
        )
    [token] = api.get("/auth/tokens?user=seller").json["data"]

    without_scope = writer.delete(f"/auth/tokens/{token['id']}")
    with_scope = api.delete(f"/auth/tokens/{token['id']}")

    assert without_scope.status_code == 403
    assert with_scope.status_code == 204
    assert seller_api.get("/meta/entities").status_code == 401
    assert seller_api.get("/auth/tokens?user=admin").status_code == 401


@pytest.mark.usefixtures("api")
@pytest.mark.parametrize(
    ("scopes", "reads", "revokes", "own"),
    [
        (["admin"], 200, 204, 403),
        (["read", "write"], 403, 403, 200),
    ],
    ids=["admin", "read-write"],
)
def test_other_users_tokens_need_the_admin_scope_as_other_admin_work(
    app: Flask,
    platform: Platform,
    scopes: list[str],
    reads: int,
    revokes: int,
    own: int,
) -> None:
    # Like metadata changes and the audit, other users' tokens are for the admin
    # scope alone; one's own tokens take read and write.
    with platform.engine.begin() as connection:
        seller = create_user(connection, "seller", PASSWORD)
        create_token(connection, seller, name="laptop")
        admin = find_user(connection, "admin")
        scoped = Api(app.test_client(), create_token(connection, admin, scopes=scopes))
    listed = scoped.get("/auth/tokens?user=seller")
    with platform.engine.begin() as connection:
        [token] = list_tokens(connection, user_id=seller.id)

    revoked = scoped.delete(f"/auth/tokens/{token.id}")

    assert (listed.status_code, revoked.status_code) == (reads, revokes)
    if reads == 200:
        assert [t["name"] for t in listed.json["data"]] == ["laptop"]
    assert scoped.get("/auth/tokens").status_code == own
    assert scoped.get("/auth/tokens?user=admin").status_code == own


def test_a_token_needs_a_known_scope(platform: Platform) -> None:
    from tailorcrm.errors import ValidationFailed

    with platform.engine.begin() as connection:
        user = create_user(connection, "seller", PASSWORD)
        with pytest.raises(ValidationFailed) as unknown:
            create_token(connection, user, scopes=["everything"])
        with pytest.raises(ValidationFailed) as empty:
            create_token(connection, user, scopes=[])

    assert [p.code for p in unknown.value.problems] == ["invalid_scope"]
    assert [p.code for p in empty.value.problems] == ["required"]


def test_tokens_from_the_command_line(database_url: str) -> None:
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})
    runner.invoke(main, ["init"])

    created = runner.invoke(
        main,
        [
            "token",
            "create",
            "admin",
            "--name",
            "reports",
            "--scope",
            "read",
            "--expires-in",
            "30",
        ],
    )
    secret = created.output.strip().splitlines()[-1]
    listed = runner.invoke(main, ["token", "list", "admin"])
    reader = Api(create_app({"database_url": database_url}).test_client(), secret)
    reading = reader.get("/meta/entities").status_code
    writing = reader.put("/meta/entities/account", json=ACCOUNT).status_code
    token_id = [
        line.split()[0] for line in listed.output.splitlines() if "reports" in line
    ][0]
    revoked = runner.invoke(main, ["token", "revoke", token_id])
    missing = runner.invoke(main, ["token", "revoke", "999"])

    assert created.exit_code == 0, created.output
    assert listed.exit_code == 0, listed.output
    assert "tcrm_" not in listed.output
    [line] = [line for line in listed.output.splitlines() if "reports" in line]
    assert line.split()[2:4] == ["reports", "read"]
    assert line.split()[-1] == "active"
    assert (reading, writing) == (200, 403)
    assert revoked.exit_code == 0, revoked.output
    assert reader.get("/meta/entities").status_code == 401
    assert missing.exit_code == 1
    assert "There is no API token 999." in missing.output
    assert "revoked" in runner.invoke(main, ["token", "list"]).output


def test_a_deactivated_users_tokens_are_listed_as_inactive(
    app: Flask, platform: Platform, api: Api, database_url: str
) -> None:
    """They stop working with the user, so they are not shown as active; and the
    operator may still list them by the user's name, through the API and the
    command line, as 'token list' with no name already showed them."""
    with platform.engine.begin() as connection:
        seller = create_user(connection, "seller", PASSWORD)
        seller_api = Api(app.test_client(), create_token(connection, seller))
        create_token(connection, seller, name="old", expires_in=dt.timedelta(days=1))
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})
    deactivated = runner.invoke(main, ["user", "deactivate", "seller"])
    platform.clock = lambda: (
        dt.datetime.now(dt.UTC).replace(tzinfo=None) + (dt.timedelta(days=2))
    )

    listed = api.get("/auth/tokens?user=seller")
    named = runner.invoke(main, ["token", "list", "seller"])
    everyone = runner.invoke(main, ["token", "list"])

    assert deactivated.exit_code == 0, deactivated.output
    assert seller_api.get("/meta/entities").status_code == 401
    assert listed.status_code == 200
    assert [t["state"] for t in listed.json["data"]] == ["inactive", "expired"]
    assert named.exit_code == 0, named.output
    seller_lines = [line for line in everyone.output.splitlines() if "seller" in line]
    assert [line.split()[-1] for line in seller_lines] == ["inactive", "inactive"]
    assert named.output.splitlines()[1].split()[-1] == "inactive"


# -- databases made before this release ----------------------------------------------

NEW_TABLES = {"tc_api_token_scope", "tc_web_session", "tc_login_event"}


def test_a_database_made_before_sessions_and_scopes_keeps_working(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    old_tables = [t for t in system_metadata.sorted_tables if t.name not in NEW_TABLES]
    system_metadata.create_all(engine, tables=old_tables)
    old_token = "tcrm_made-by-the-previous-release"
    with engine.begin() as connection:
        admin_id = connection.execute(
            users.insert()
            .values(
                username="admin",
                password_hash=generate_password_hash(PASSWORD),
                is_admin=True,
                active=True,
                created_at=START,
            )
            .returning(users.c.id)
        ).scalar_one()
        connection.execute(
            sa.text(
                "INSERT INTO tc_api_token (user_id, token_hash, name, created_at) "
                "VALUES (:user_id, :token_hash, 'demo', :at)"
            ),
            {"user_id": admin_id, "token_hash": hash_token(old_token), "at": START},
        )
    engine.dispose()

    with _app(database_url) as app:
        api = Api(app.test_client(), old_token)
        created = api.put("/meta/entities/account", json=ACCOUNT)
        record = api.post("/account", json={"name": "Acme"})
        tokens = api.get("/auth/tokens").json["data"]
        client = app.test_client()
        signed_in = _sign_in(client, "admin")
        still_in = _signed_in(client)
        tables = set(sa.inspect(app.extensions["tailorcrm"].engine).get_table_names())

    assert created.status_code == 201, created.json
    assert record.status_code == 201
    assert [t["scopes"] for t in tokens] == [["read", "write", "admin"]]
    assert (signed_in.status_code, still_in) == (302, True)
    assert tables >= NEW_TABLES


def test_init_demo_again_ends_the_admins_sessions(
    app: Flask, platform: Platform, database_url: str
) -> None:
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})
    first = runner.invoke(main, ["init"], env={"TAILORCRM_ADMIN_PASSWORD": PASSWORD})
    client = app.test_client()
    _sign_in(client, "admin")

    again = runner.invoke(main, ["init", "--demo"])

    assert first.exit_code == 0 and again.exit_code == 0, again.output
    assert _signed_in(client) is False


# -- settings ------------------------------------------------------------------------


def test_session_and_sign_in_limits_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAILORCRM_SESSION_IDLE_MINUTES", "30")
    monkeypatch.setenv("TAILORCRM_LOGIN_ACCOUNT_LIMIT", "8")

    settings = Settings.load({"session_max_hours": 10})

    assert (settings.session_idle_minutes, settings.session_max_hours) == (30, 10)
    assert (settings.login_account_limit, settings.login_address_limit) == (8, 20)
    monkeypatch.setenv("TAILORCRM_SESSION_MAX_HOURS", "a week")
    with pytest.raises(RuntimeError) as excinfo:
        Settings.load()
    assert "TAILORCRM_SESSION_MAX_HOURS" in str(excinfo.value)


# -- headers -------------------------------------------------------------------------


def test_pages_served_over_https_ask_browsers_to_keep_to_it(app: Flask) -> None:
    client = app.test_client()

    secure = client.get("/login", base_url="https://localhost")
    plain = client.get("/login")

    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in plain.headers
