"""A shared world for the permission tests: users per role, teams, records, and
what each caller should see, computed from the role documents alone.

The expectations here are worked out independently of the product's own access
code: scopes add up to the widest, reading reaches what editing and deleting reach,
and sharing rules are evaluated record by record with the rules engine's Python
evaluator. The tests then compare every page and endpoint with them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.access import (
    create_team,
    set_team,
    set_user_attributes,
    set_user_roles,
)
from tailorcrm.platform.auth import create_token, create_user
from tailorcrm.rules_engine import evaluate
from tests.conftest import POSTGRES_URL, SALES_PACK, Api, load_pack, postgres_schema
from tests.web_helpers import PASSWORD, Browser, token_of

ROLES_DIR = SALES_PACK / "roles"
OPERATIONS = ("create", "read", "edit", "delete", "import", "export")
_RANK = {"none": 0, "own": 1, "team": 2, "all": 3}
_LEVEL_RANK = {"hidden": 0, "read_only": 1, "editable": 2}
#: The pseudo-role of a user who holds no role at all.
NO_ROLE = "no_role"


def full_pack() -> list[tuple[str, Any]]:
    """Every document of the sales pack: entities, layouts, rules and roles.

    (``load_pack`` in conftest reads only the pack's top folder.)
    """
    documents = load_pack()
    for folder in ("layouts", "rules", "roles"):
        for path in sorted((SALES_PACK / folder).glob("*.json")):
            documents.append((f"{folder}/{path.name}", json.loads(path.read_text())))
    return documents


def pack_roles() -> dict[str, dict[str, Any]]:
    """The role documents the sales pack ships, by name."""
    found = {}
    for path in sorted(ROLES_DIR.glob("*.json")):
        document = json.loads(path.read_text())
        found[document["name"]] = document
    return found


# -- databases -------------------------------------------------------------------


@contextmanager
def database(backend: str, directory: Path) -> Iterator[str]:
    """A fresh database URL on ``backend``; the caller skips PostgreSQL if unset."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'crm.db'}"
        return
    with postgres_schema() as url:
        yield url


def make_app(url: str) -> Flask:
    application = create_app({"database_url": url, "secret_key": "test"})
    application.config["TESTING"] = True
    return application


# -- expectations ------------------------------------------------------------------


@dataclass
class Expected:
    """What the roles held add up to for one entity."""

    scopes: dict[str, str]
    levels: dict[str, str]
    sharing: list[tuple[str, Any]]

    @property
    def readable(self) -> bool:
        """Whether the entity exists at all for the caller."""
        return self.scopes["read"] != "none" or any(
            access in ("read", "edit") for access, _ in self.sharing
        )

    def hidden(self) -> set[str]:
        return {name for name, level in self.levels.items() if level == "hidden"}

    def read_only(self) -> set[str]:
        return {name for name, level in self.levels.items() if level == "read_only"}


def _wider(one: str, other: str) -> str:
    return one if _RANK[one] >= _RANK[other] else other


def expected_access(documents: list[Mapping[str, Any]], entity: str) -> Expected:
    """Add up role documents for one entity, as the role schema describes it."""
    scopes = dict.fromkeys(OPERATIONS, "none")
    readers: list[Mapping[str, str]] = []
    sharing: list[tuple[str, Any]] = []
    for document in documents:
        grant = document.get("entities", {}).get(entity, {})
        for operation in OPERATIONS:
            scopes[operation] = _wider(scopes[operation], grant.get(operation, "none"))
        reach = "none"
        for operation in ("read", "edit", "delete"):
            reach = _wider(reach, grant.get(operation, "none"))
        if reach != "none":
            readers.append(grant.get("fields", {}))
        sharing += [
            (rule["access"], rule["condition"])
            for rule in document.get("sharing", [])
            if rule["entity"] == entity
        ]
    for operation in ("edit", "delete"):
        scopes["read"] = _wider(scopes["read"], scopes[operation])
    levels: dict[str, str] = {}
    for name in {name for fields in readers for name in fields}:
        level = max(
            (fields.get(name, "editable") for fields in readers),
            key=_LEVEL_RANK.__getitem__,
        )
        if level != "editable":
            levels[name] = level
    return Expected(scopes, levels, sharing)


@dataclass
class Person:
    username: str
    id: int
    roles: list[str]
    teams: list[str]
    attributes: dict[str, Any]
    #: Ids of the users sharing a team with this one, this one included.
    teammates: set[int] = field(default_factory=set)

    def user_data(self) -> dict[str, Any]:
        """What ``$user`` reads in a condition."""
        return {
            **self.attributes,
            "id": self.id,
            "username": self.username,
            "roles": list(self.roles),
            "teams": list(self.teams),
        }

    def owner_in(self, scope: str, owner: Any) -> bool:
        if scope == "all":
            return True
        if scope == "team":
            return owner in self.teammates
        if scope == "own":
            return owner == self.id
        return False


def shared(
    expected: Expected, person: Person, record: Mapping[str, Any], *access: str
) -> bool:
    data = {**record, "$user": person.user_data()}
    return any(
        wanted in access and bool(evaluate(condition, data))
        for wanted, condition in expected.sharing
    )


def may(
    expected: Expected, person: Person, record: Mapping[str, Any], operation: str
) -> bool:
    """Whether ``operation`` reaches ``record`` for ``person``."""
    owner = record.get("owner_id")
    if operation == "read":
        return person.owner_in(expected.scopes["read"], owner) or shared(
            expected, person, record, "read", "edit"
        )
    if operation == "edit":
        return person.owner_in(expected.scopes["edit"], owner) or shared(
            expected, person, record, "edit"
        )
    if operation == "export":
        return may(expected, person, record, "read") and person.owner_in(
            expected.scopes["export"], owner
        )
    return person.owner_in(expected.scopes[operation], owner)


def outcome(
    expected: Expected, person: Person, record: Mapping[str, Any], operation: str
) -> int:
    """The status a change of ``record`` should answer: done, 403 or 404."""
    if not expected.readable or not may(expected, person, record, "read"):
        return 404
    if may(expected, person, record, operation):
        return {"edit": 200, "delete": 204}[operation]
    return 403


# -- the world ---------------------------------------------------------------------

#: Sample values for the sales pack's entities; ``{t}`` is the record's token.
SAMPLES: dict[str, dict[str, Any]] = {
    "account": {"name": "Zephyr {o} {t}", "billing_street": "1 Quay"},
    "contact": {"full_name": "Zephyr {o} {t}", "title": "Buyer"},
    "sales_lead": {"full_name": "Zephyr {o} {t}", "company": "Quux"},
    "product": {"name": "Zephyr {o} {t}", "product_code": "P-{t}"},
    "opportunity": {"title": "Zephyr {o} {t}", "next_step": "Call"},
    "activity": {"subject": "Zephyr {o} {t}", "kind": "call"},
}
#: A plain text field of each entity that no role restricts and no condition reads.
EDITABLE = {
    "account": "billing_street",
    "contact": "title",
    "sales_lead": "company",
    "product": "name",
    "opportunity": "next_step",
    "activity": "notes",
}
COUNTRIES = ("Norway", "Spain", None)


def sentinel(entity: str, name: str, kind: str, number: int) -> str:
    """A value for a field some role hides, that no other text can contain."""
    if kind == "date":
        return f"1913-0{1 + number % 9}-1{number % 10}"
    if kind == "email":
        return f"hid{number}.{name}@sentinel.test"
    if kind == "phone":
        return f"+47 9{number:03d} 7{number:03d}"
    return f"SENT-{entity[:3]}-{name[:4]}-{number}".upper()


@dataclass
class World:
    app: Flask
    platform: Platform
    admin: Api
    roles: dict[str, dict[str, Any]]
    people: dict[str, Person]
    #: Role (or ``NO_ROLE``) -> the username of the user holding only that role.
    probes: dict[str, str]
    #: Entity -> every record, as the administrator reads it.
    records: dict[str, list[dict[str, Any]]]
    #: Entity -> record id -> the token its display name carries.
    tokens: dict[str, dict[int, str]]
    #: (entity, field) -> the sentinel values of fields some role hides.
    sentinels: dict[tuple[str, str], set[str]]
    api_tokens: dict[str, str] = field(default_factory=dict)
    #: The administrator, who owns the records labelled ``nobody``.
    admin_id: int = 0
    browsers: dict[str, Browser] = field(default_factory=dict)
    number: int = 0

    def next_token(self) -> str:
        self.number += 1
        return f"T{self.number:04d}Q"

    def expected(self, username: str, entity: str) -> Expected:
        person = self.people[username]
        documents = [self.roles[name] for name in person.roles]
        return expected_access(documents, entity)

    def api_for(self, username: str) -> Api:
        return Api(self.app.test_client(), self.api_tokens[username])

    def visible(self, username: str, entity: str, operation: str = "read") -> set[int]:
        expected = self.expected(username, entity)
        if not expected.readable:
            return set()
        person = self.people[username]
        return {
            record["id"]
            for record in self.records[entity]
            if may(expected, person, record, operation)
        }

    def entity_fields(self, entity: str) -> dict[str, dict[str, Any]]:
        with self.platform.reading() as (_, catalog):
            return dict(catalog.entity(entity).fields)

    def leaks_for(self, username: str) -> dict[str, str]:
        """Text that must appear nowhere the user looks: token or sentinel -> why."""
        found = {}
        for entity, tokens in self.tokens.items():
            seen = self.visible(username, entity)
            for record_id, token in tokens.items():
                if record_id not in seen:
                    found[token] = f"{entity} {record_id} is out of reach"
        for (entity, name), values in self.sentinels.items():
            if name in self.expected(username, entity).hidden():
                for value in values:
                    found[value] = f"{entity}.{name} is hidden"
        return found

    def sample(
        self, entity: str, owner: str, **extra: Any
    ) -> tuple[str, dict[str, Any]]:
        token = self.next_token()
        data = {
            key: value.format(o=owner, t=token) if isinstance(value, str) else value
            for key, value in SAMPLES[entity].items()
        }
        data.update(extra)
        return token, data


def sign_in_as(app: Flask, platform: Platform, username: str) -> Browser:
    """Sign an existing user in through the login form."""
    client: FlaskClient = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
    )
    if response.status_code != 302:
        raise AssertionError(f"signing in {username} answered {response.status_code}")
    return Browser(client, platform)


def add_user(
    platform: Platform, username: str, *, admin: bool = False
) -> tuple[int, str]:
    """Create a user with the test password; return its id and an API token."""
    with platform.engine.begin() as connection:
        user = create_user(connection, username, PASSWORD, is_admin=admin)
        return int(user.id), create_token(connection, user)


def build_world(app: Flask) -> World:
    """Install the sales pack, one user per role, two teams and spread records.

    Every probe user (one per pack role, and one holding no role) is in team
    ``north`` with the country ``Norway``; ``mate`` is in ``north`` too and holds
    no role, ``stranger`` is alone in ``south`` with the country ``Spain``. Each of
    them, and nobody, owns records of every entity.
    """
    platform: Platform = app.extensions["tailorcrm"]
    platform.store.apply(full_pack(), actor="test")
    admin_id, admin_token = add_user(platform, "root_admin", admin=True)
    roles = pack_roles()
    probes = {name: f"probe_{name}" for name in roles}
    probes[NO_ROLE] = f"probe_{NO_ROLE}"
    layout = {
        **{username: ("north", "Norway") for username in probes.values()},
        "mate": ("north", "Norway"),
        "stranger": ("south", "Spain"),
    }
    people: dict[str, Person] = {}
    api_tokens = {}
    for username, (team, country) in layout.items():
        user_id, api_token = add_user(platform, username)
        api_tokens[username] = api_token
        held = [role for role, probe in probes.items() if probe == username]
        held = [role for role in held if role != NO_ROLE]
        people[username] = Person(username, user_id, held, [team], {"country": country})
    with platform.transaction() as (connection, catalog):
        for team in ("north", "south"):
            create_team(connection, team)
            members = [p.username for p in people.values() if team in p.teams]
            set_team(connection, catalog, team, members=members)
        for person in people.values():
            set_user_roles(connection, catalog, person.username, person.roles)
            set_user_attributes(connection, person.username, person.attributes)
    for person in people.values():
        person.teammates = {
            other.id
            for other in people.values()
            if set(other.teams) & set(person.teams)
        }
    world = World(
        app,
        platform,
        Api(app.test_client(), admin_token),
        roles,
        people,
        probes,
        {},
        {},
        {},
        api_tokens,
        admin_id=admin_id,
    )
    _seed(world, [*people, None])
    for username in probes.values():
        world.browsers[username] = sign_in_as(app, platform, username)
    return world


def hidden_anywhere(world: World) -> dict[str, set[str]]:
    """Entity -> the fields some pack role hides."""
    found: dict[str, set[str]] = {}
    for document in world.roles.values():
        for entity, grant in document.get("entities", {}).items():
            for name, level in grant.get("fields", {}).items():
                if level == "hidden":
                    found.setdefault(entity, set()).add(name)
    return found


def _seed(world: World, owners: list[str | None]) -> None:
    hidden = hidden_anywhere(world)
    ids: dict[str, list[int]] = {}
    order = ("account", "product", "sales_lead", "contact", "opportunity", "activity")
    number = 0
    for entity in order:
        fields = world.entity_fields(entity)
        world.records[entity] = []
        world.tokens[entity] = {}
        ids[entity] = []
        for index, owner in enumerate(owners):
            countries = COUNTRIES if entity == "account" else (None, None)
            for round_, country in enumerate(countries):
                number += 1
                label = owner or "nobody"
                token, data = world.sample(entity, label)
                if owner is not None:
                    data["owner_id"] = world.people[owner].id
                if entity == "account":
                    data["country"] = country
                    if ids["account"]:
                        data["parent_account"] = ids["account"][
                            number % len(ids["account"])
                        ]
                for name, spec in fields.items():
                    if name in hidden.get(entity, ()):
                        value = sentinel(entity, name, spec["type"], number)
                        data[name] = value
                        world.sentinels.setdefault((entity, name), set()).add(value)
                _link(data, entity, ids, index + round_)
                response = world.admin.post(f"/{entity}", json=data)
                if response.status_code != 201:
                    raise AssertionError(f"seeding {entity}: {response.json}")
                record = response.json
                ids[entity].append(record["id"])
                world.records[entity].append(record)
                world.tokens[entity][record["id"]] = token


def _link(
    data: dict[str, Any], entity: str, ids: Mapping[str, list[int]], n: int
) -> None:
    """Point a record's lookups at earlier records, spread over their owners."""
    targets = {
        "contact": {"account": "account"},
        "opportunity": {"account": "account", "product": "product"},
        "activity": {
            "account": "account",
            "contact": "contact",
            "opportunity": "opportunity",
        },
    }
    for name, target in targets.get(entity, {}).items():
        pool = ids[target]
        data[name] = pool[(n * 3 + len(name)) % min(len(pool), 6)]


def refresh(world: World, entity: str) -> None:
    """Read an entity's records again, as the administrator."""
    body = world.admin.get(f"/{entity}?limit=200").json
    world.records[entity] = body["data"]


# -- reading pages -------------------------------------------------------------------


def all_ids(api: Api, path: str) -> tuple[list[int], list[str]]:
    """Every id of a list, following ``next``; also each page's body text."""
    found: list[int] = []
    bodies: list[str] = []
    url = path
    for _ in range(100):
        response = api.get(url)
        if response.status_code != 200:
            raise AssertionError(f"GET {url} answered {response.status_code}")
        bodies.append(response.get_data(as_text=True))
        body = response.json
        found += [record["id"] for record in body["data"]]
        if not body.get("next"):
            return found, bodies
        url = body["next"].split("/api/v1", 1)[1]
    raise AssertionError(f"{path} never ends")


def linked_ids(page: str, entity: str) -> set[int]:
    """Ids of the record pages of ``entity`` that a page links to."""
    pattern = re.compile(rf'href="/app/{re.escape(entity)}/(\d+)"')
    return {int(found) for found in pattern.findall(page)}


def csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def leaked(body: str, leaks: Mapping[str, str]) -> list[str]:
    return [f"{text!r} ({why})" for text, why in leaks.items() if text in body]


#: Every role of the pack, and a user with none.
ROLES = [*pack_roles(), NO_ROLE]
#: Every entity of the sales pack.
ENTITIES = sorted(
    path.stem for path in SALES_PACK.glob("*.json") if path.name != "pack.json"
)
#: Each role with each entity, named ``role-entity``.
MATRIX = [
    pytest.param(role, entity, id=f"{role}-{entity}")
    for role in ROLES
    for entity in ENTITIES
]


def open_world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
) -> Iterator[World]:
    """The shared test data on the database ``request.param`` names."""
    if request.param == "postgresql" and not POSTGRES_URL:
        pytest.skip("TAILORCRM_TEST_POSTGRES_URL is not set")
    with database(request.param, tmp_path_factory.mktemp(name)) as url:
        app = make_app(url)
        try:
            yield build_world(app)
        finally:
            app.extensions["tailorcrm"].engine.dispose()
