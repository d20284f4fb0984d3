"""A signed-in browser for the web page tests, and a small reader of their HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tailorcrm.platform import Platform
from tailorcrm.platform.access import set_user_roles
from tailorcrm.platform.auth import create_user
from tailorcrm.platform.records import SYSTEM_ACTOR, RecordService

PASSWORD = "a-long-password-1"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(page: str) -> str:
    found = _TOKEN.search(page)
    if found is None:
        raise AssertionError("the page carries no CSRF token")
    return found.group(1)


class Browser:
    """A test client signed in as one user, that sends the CSRF token with forms."""

    def __init__(self, client: FlaskClient, platform: Platform) -> None:
        self.client = client
        self.platform = platform
        self.token = ""

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        response = self.client.get(path, **kwargs)
        found = _TOKEN.search(response.get_data(as_text=True))
        if found is not None:
            self.token = found.group(1)
        return response

    def post(
        self, path: str, data: dict[str, Any], *, csrf: bool = True
    ) -> TestResponse:
        """Post a form as a browser would, with the session's token unless told."""
        if csrf:
            data = {"csrf_token": self.token or self._fresh_token(), **data}
        return self.client.post(path, data=data)

    def _fresh_token(self) -> str:
        self.get("/")
        return self.token


def sign_in(app: Flask, platform: Platform, username: str = "dana.vega") -> Browser:
    """Create an admin user and sign them in through the login form."""
    with platform.engine.begin() as connection:
        create_user(connection, username, PASSWORD, is_admin=True)
    return _signed_in(app, platform, username)


def sign_in_with_roles(
    app: Flask, platform: Platform, username: str, roles: list[str]
) -> Browser:
    """Create a user who holds ``roles`` (no administrator) and sign them in
    through the login form."""
    with platform.transaction() as (connection, catalog):
        create_user(connection, username, PASSWORD)
        set_user_roles(connection, catalog, username, roles)
    return _signed_in(app, platform, username)


def _signed_in(app: Flask, platform: Platform, username: str) -> Browser:
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
    )
    if response.status_code != 302:
        raise AssertionError(f"signing in answered {response.status_code}")
    return Browser(client, platform)


def create(platform: Platform, entity: str, **data: Any) -> dict[str, Any]:
    """Create a record through the record service, as the system."""
    with platform.engine.begin() as connection:
        catalog = platform.catalogs.get(connection)
        return RecordService(connection, catalog, SYSTEM_ACTOR).create(entity, data)


def fetch(platform: Platform, entity: str, record_id: int) -> dict[str, Any]:
    with platform.engine.begin() as connection:
        catalog = platform.catalogs.get(connection)
        return RecordService(connection, catalog, SYSTEM_ACTOR).get(entity, record_id)


class Element:
    """One start tag: its name, attributes and the text that follows it."""

    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag = tag
        self.attrs = attrs
        #: The text up to the next tag; ``raw_text`` goes on past end tags, up to
        #: the next start tag.
        self.own_text = ""
        self.raw_text = ""
        self.closed = False

    @property
    def text(self) -> str:
        return self.own_text.strip()

    def __getitem__(self, name: str) -> str:
        value = self.attrs[name]
        return "" if value is None else value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default) if name in self.attrs else default

    def __repr__(self) -> str:
        return f"<{self.tag} {self.attrs}>"


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if self.elements:
            self.elements[-1].closed = True

    def handle_data(self, data: str) -> None:
        if not self.elements:
            return
        last = self.elements[-1]
        last.raw_text += data
        if not last.closed:
            last.own_text += data


def elements(page: str) -> list[Element]:
    """Every start tag of a page, in document order."""
    reader = _Reader()
    reader.feed(page)
    return reader.elements


def by_id(page: str, element_id: str) -> Element:
    found = [e for e in elements(page) if e.get("id") == element_id]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} elements have the id {element_id!r}")
    return found[0]


def label_for(page: str, element_id: str) -> str:
    """The text of the label tied to a control (``<label for=...>``)."""
    found = [
        e for e in elements(page) if e.tag == "label" and e.get("for") == element_id
    ]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} labels are for {element_id!r}")
    return found[0].text.strip()


def text_of(page: str) -> str:
    """The page's text without its tags, spaces squeezed."""
    return " ".join("".join(e.raw_text for e in elements(page)).split())
