"""Shared fixtures: every integration test runs on SQLite and on PostgreSQL.

PostgreSQL tests run when ``TAILORCRM_TEST_POSTGRES_URL`` is set; each test gets a
schema of its own, dropped afterwards. With ``TAILORCRM_TEST_REQUIRE_POSTGRES=1`` (as
CI sets it) a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.auth import create_token, create_user

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SALES_PACK = ROOT / "sample_schemas" / "sales"
POSTGRES_URL = os.environ.get("TAILORCRM_TEST_POSTGRES_URL", "")
REQUIRE_POSTGRES = os.environ.get("TAILORCRM_TEST_REQUIRE_POSTGRES") == "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    if REQUIRE_POSTGRES and not POSTGRES_URL:
        raise pytest.UsageError(
            "TAILORCRM_TEST_REQUIRE_POSTGRES=1 but TAILORCRM_TEST_POSTGRES_URL "
            "is unset."
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crm.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("TAILORCRM_TEST_POSTGRES_URL is not set")
    with postgres_schema() as url:
        yield url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """The test PostgreSQL database's URL, its connections working in a new,
    empty schema of their own, which is dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    admin_engine = sa.create_engine(POSTGRES_URL)
    with admin_engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin_engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin_engine.dispose()


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    application = create_app({"database_url": database_url, "secret_key": "test"})
    application.config["TESTING"] = True
    yield application
    application.extensions["tailorcrm"].engine.dispose()


@pytest.fixture
def platform(app: Flask) -> Platform:
    found: Platform = app.extensions["tailorcrm"]
    return found


class Api:
    """A test client that sends the admin's bearer token with every request."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(
            f"/api/v1{path}", method=method, headers=headers, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def admin_token(platform: Platform) -> str:
    with platform.engine.begin() as connection:
        admin = create_user(connection, "admin", "admin-password-1", is_admin=True)
        return create_token(connection, admin)


@pytest.fixture
def api(app: Flask, admin_token: str) -> Api:
    return Api(app.test_client(), admin_token)


def add_field(api: Api, entity: str, spec: dict[str, Any]) -> None:
    """Add a field to ``entity`` through the metadata API."""
    document = api.get(f"/meta/entities/{entity}").json
    document["fields"].append(spec)
    changed = api.put(f"/meta/entities/{entity}", json=document)
    assert changed.status_code == 200, changed.json


#: A picklist whose labels spell each other's values: a (labelled "B") and b
#: (labelled "A").
CROSSED_TIERS = {
    "name": "tier",
    "type": "picklist",
    "label": "Tier",
    "options": [{"value": "a", "label": "B"}, {"value": "b", "label": "A"}],
}


def load_pack() -> list[tuple[str, Any]]:
    return [
        (path.name, json.loads(path.read_text()))
        for path in sorted(SALES_PACK.glob("*.json"))
        if path.name != "pack.json"
    ]


@pytest.fixture
def sales(platform: Platform) -> Platform:
    """The platform with the sales pack installed."""
    platform.store.apply(load_pack(), actor="test")
    return platform


OPPORTUNITY = {
    "name": "opportunity",
    "label": "Opportunity",
    "label_plural": "Opportunities",
    "display_field": "title",
    "fields": [
        {
            "name": "title",
            "type": "text",
            "label": "Title",
            "required": True,
            "max_length": 200,
        },
        {"name": "account", "type": "lookup", "target": "account", "label": "Account"},
        {
            "name": "stage",
            "type": "picklist",
            "label": "Stage",
            "default": "prospecting",
            "options": [
                {"value": "prospecting", "label": "Prospecting"},
                {"value": "won", "label": "Won"},
            ],
        },
        {
            "name": "amount",
            "type": "currency",
            "label": "Amount",
            "precision": 14,
            "scale": 2,
            "min": 0,
        },
        {"name": "close_date", "type": "date", "label": "Close date"},
        {
            "name": "erp_code",
            "type": "text",
            "label": "ERP code",
            "unique": True,
            "external_id": True,
        },
    ],
}

ACCOUNT = {
    "name": "account",
    "label": "Account",
    "display_field": "name",
    "fields": [
        {"name": "name", "type": "text", "label": "Name", "required": True},
        {
            "name": "parent",
            "type": "lookup",
            "target": "account",
            "label": "Parent",
            "on_delete": "set_null",
        },
    ],
}


#: An entity whose display field takes text longer than an index entry holds on
#: PostgreSQL, and a name of 4,000 characters for it.
LONG_NAMED = {
    "name": "memo",
    "label": "Memo",
    "display_field": "body",
    "fields": [{"name": "body", "type": "text", "label": "Body", "max_length": 5000}],
}
LONG_NAME = "".join(f"{n:04x}" for n in range(1000))


@pytest.fixture
def crm(api: Api) -> Api:
    """The API with the issue's Account and Opportunity entities defined."""
    for document in (ACCOUNT, OPPORTUNITY):
        response = api.put(f"/meta/entities/{document['name']}", json=document)
        assert response.status_code == 201, response.json
    return api


ALL_OPERATIONS = ("create", "read", "edit", "delete", "import", "export")


def grant_all(platform: Platform, *usernames: str, role: str = "member") -> None:
    """Give users a role that may do everything to the records of every live
    entity (but not change metadata)."""
    from tailorcrm.platform.access import set_user_roles

    with platform.reading() as (_, catalog):
        entities = {
            entity.name: dict.fromkeys(ALL_OPERATIONS, "all")
            for entity in catalog.live()
        }
    document = {"kind": "role", "name": role, "label": "Member", "entities": entities}
    platform.store.apply([("", document)], actor="test")
    with platform.transaction() as (connection, catalog):
        for name in usernames:
            set_user_roles(connection, catalog, name, [role])
