"""Signing in and out, the protections every page gets, and brand-new entities."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tailorcrm.platform import Platform
from tailorcrm.platform.auth import create_user
from tailorcrm.platform.db import users

PASSWORD = "a-long-password-1"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _token(page: str) -> str:
    found = _TOKEN.search(page)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1)


def _sign_in(client: FlaskClient, username: str, password: str, **extra: Any) -> Any:
    token = _token(client.get("/login").get_data(as_text=True))
    data = {"username": username, "password": password, "csrf_token": token, **extra}
    return client.post("/login", data=data)


def _user(platform: Platform, name: str = "dana.vega", **options: Any) -> int:
    with platform.engine.begin() as connection:
        return create_user(connection, name, PASSWORD, **options).id


def test_pages_need_a_signed_in_user(app: Flask) -> None:
    client = app.test_client()

    response = client.get("/app/account")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fapp%2Faccount"


def test_signing_in_opens_the_page_asked_for(app: Flask, platform: Platform) -> None:
    _user(platform)
    client = app.test_client()

    response = _sign_in(client, "dana.vega", PASSWORD, next="/?from=mail")

    assert response.status_code == 302
    assert response.headers["Location"] == "/?from=mail"
    assert client.get("/").status_code == 200


def test_next_never_leads_to_another_site(app: Flask, platform: Platform) -> None:
    _user(platform)
    targets = ["https://evil.example/", "//evil.example/", "/\\evil.example", "x"]

    locations = []
    for target in targets:
        client = app.test_client()
        locations.append(
            _sign_in(client, "dana.vega", PASSWORD, next=target).headers["Location"]
        )

    assert locations == ["/"] * len(targets)


def test_a_wrong_password_says_so_without_naming_which_part(
    app: Flask, platform: Platform
) -> None:
    _user(platform)
    client = app.test_client()

    wrong_password = _sign_in(client, "dana.vega", "not-the-password")
    unknown_user = _sign_in(client, "nobody.here", PASSWORD)

    assert wrong_password.status_code == unknown_user.status_code == 401
    message = "The user name or password is not right."
    assert message in wrong_password.get_data(as_text=True)
    assert message in unknown_user.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_signing_in_starts_a_new_session(app: Flask, platform: Platform) -> None:
    _user(platform)
    client = app.test_client()
    before = _token(client.get("/login").get_data(as_text=True))

    _sign_in(client, "dana.vega", PASSWORD)
    after = _token(client.get("/").get_data(as_text=True))

    assert after != before


def test_logging_out_needs_the_token_and_ends_the_session(
    app: Flask, platform: Platform
) -> None:
    _user(platform)
    client = app.test_client()
    _sign_in(client, "dana.vega", PASSWORD)
    token = _token(client.get("/").get_data(as_text=True))

    forged = client.post("/logout")
    still_in = client.get("/").status_code
    done = client.post("/logout", data={"csrf_token": token})

    assert forged.status_code == 400
    assert still_in == 200
    assert done.status_code == 302
    assert client.get("/").status_code == 302


def test_a_deactivated_user_is_signed_out_at_once(
    app: Flask, platform: Platform
) -> None:
    user_id = _user(platform)
    client = app.test_client()
    _sign_in(client, "dana.vega", PASSWORD)

    with platform.engine.begin() as connection:
        connection.execute(
            sa.update(users).where(users.c.id == user_id).values(active=False)
        )
    response = client.get("/")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_every_page_is_sent_with_the_security_headers(
    app: Flask, platform: Platform
) -> None:
    _user(platform)
    client = app.test_client()

    login = client.get("/login")
    _sign_in(client, "dana.vega", PASSWORD)
    home = client.get("/")
    missing = client.get("/no/such/page")

    for response in (login, home, missing):
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "'unsafe-inline'" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
    assert missing.status_code == 404
    assert "<script>" not in home.get_data(as_text=True).replace(
        '<script src="/static/', ""
    )


def test_the_session_cookie_is_http_only_and_same_site(
    app: Flask, platform: Platform
) -> None:
    _user(platform)
    client = app.test_client()

    response = _sign_in(client, "dana.vega", PASSWORD)

    cookie = next(
        value
        for value in response.headers.getlist("Set-Cookie")
        if value.startswith("tailorcrm_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_an_entity_defined_a_minute_ago_gets_its_pages(
    app: Flask, platform: Platform
) -> None:
    _user(platform, is_admin=True)
    client = app.test_client()
    _sign_in(client, "dana.vega", PASSWORD)
    document = {
        "name": "project",
        "label": "Project",
        "label_plural": "Projects",
        "display_field": "title",
        "fields": [
            {"name": "title", "type": "text", "label": "Title", "required": True},
            {"name": "budget", "type": "currency", "label": "Budget", "min": 0},
        ],
    }
    platform.store.apply([("", document)], actor="test")
    token = _token(client.get("/").get_data(as_text=True))

    home = client.get("/").get_data(as_text=True)
    created = client.post(
        "/app/project/new",
        data={"title": "Harbour bridge", "budget": "1200.50", "csrf_token": token},
    )
    detail = client.get(created.headers["Location"]).get_data(as_text=True)
    listed = client.get("/app/project").get_data(as_text=True)

    assert 'href="/app/project"' in home
    assert created.status_code == 303
    assert "Harbour bridge" in detail
    assert "$1,200.50" in detail
    assert "Harbour bridge" in listed


def test_a_nul_character_is_refused_at_the_door(app: Flask, platform: Platform) -> None:
    _user(platform)
    client = app.test_client()
    token = _token(client.get("/login").get_data(as_text=True))

    login = client.post(
        "/login",
        data={"username": "dana\x00vega", "password": PASSWORD, "csrf_token": token},
    )
    _sign_in(client, "dana.vega", PASSWORD)
    search = client.get("/app/nothing?q=%00")

    assert login.status_code == 400
    assert "NUL character" in login.get_data(as_text=True)
    assert search.status_code == 400


def test_a_wrong_method_names_the_allowed_ones(app: Flask) -> None:
    client = app.test_client()

    page = client.put("/login")
    api = client.put("/api/v1/meta/schemas/entity")

    assert page.status_code == api.status_code == 405
    assert set(page.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert "GET" in api.headers["Allow"]
