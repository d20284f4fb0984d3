"""Every pack role × entity × operation, through the API and the web pages.

The expectations come from the role documents of the sales pack alone (see
:mod:`tests.permissions_support`): for each role, a user holding only that role
must see exactly the records and fields the documents give, in lists, counts,
searches, lookups, related lists and exports, and nothing else anywhere. One world
is built per database and shared by the module; tests that change records undo
what they did.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.permissions_support import (
    EDITABLE,
    ENTITIES,
    MATRIX,
    World,
    all_ids,
    csv_rows,
    leaked,
    linked_ids,
    may,
    open_world,
    outcome,
    pack_roles,
    refresh,
    sentinel,
)

SYSTEM_KEYS = {"id", "created_at", "updated_at", "created_by", "owner_id", "version"}
_RELATED = re.compile(r'<div class="related" id="related-([a-z_]+)-([a-z_]+)"')
_TOTAL = re.compile(r'(?:<span class="count">|<p class="related-count muted">)(\d+)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    yield from open_world(request, tmp_path_factory, "matrix")


def _where(role: str, entity: str, operation: str) -> str:
    return f"[{role} × {entity} × {operation}]"


def _no_leaks(world: World, username: str, where: str, *bodies: str) -> None:
    leaks = world.leaks_for(username)
    found = [text for body in bodies for text in leaked(body, leaks)]
    assert found == [], f"{where} shows {found}"


# -- API reads ---------------------------------------------------------------------


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_api_lists_counts_and_records_match_the_role(
    world: World, role: str, entity: str
) -> None:
    username = world.probes[role]
    api = world.api_for(username)
    expected = world.expected(username, entity)
    visible = world.visible(username, entity)
    every_id = [record["id"] for record in world.records[entity]]

    listing = api.get(f"/{entity}?count=true")
    singles = {record_id: api.get(f"/{entity}/{record_id}") for record_id in every_id}

    if not expected.readable:
        assert listing.status_code == 404, _where(role, entity, "list")
        assert {r.status_code for r in singles.values()} == {404}, _where(
            role, entity, "get"
        )
        return
    ids, bodies = all_ids(api, f"/{entity}?limit=4&sort=id")
    assert sorted(ids) == sorted(visible), _where(role, entity, "list")
    assert len(ids) == len(set(ids)), _where(role, entity, "list pages repeat")
    assert listing.json["count"] == len(visible), _where(role, entity, "count")
    statuses = {record_id: r.status_code for record_id, r in singles.items()}
    assert statuses == {
        record_id: 200 if record_id in visible else 404 for record_id in every_id
    }, _where(role, entity, "get")
    fields = set(world.entity_fields(entity))
    shown = fields - expected.hidden() | SYSTEM_KEYS
    for record_id in visible:
        assert set(singles[record_id].json) == shown, _where(role, entity, "fields")
    for record in listing.json["data"]:
        assert set(record) == shown, _where(role, entity, "list fields")
    _no_leaks(
        world,
        username,
        _where(role, entity, "read"),
        *bodies,
        listing.get_data(as_text=True),
        *(r.get_data(as_text=True) for r in singles.values()),
    )


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_hidden_fields_are_unknown_to_filters_sorts_and_field_lists(
    world: World, role: str, entity: str
) -> None:
    username = world.probes[role]
    api = world.api_for(username)
    expected = world.expected(username, entity)
    if not expected.readable or not expected.hidden():
        pytest.skip("the role hides no field of a readable entity here")

    unknown = [
        api.get(f"/{entity}?nosuchfield__eq=x").status_code,
        api.get(f"/{entity}?sort=nosuchfield").status_code,
        api.get(f"/{entity}?fields=nosuchfield").status_code,
    ]
    found = {
        name: [
            api.get(f"/{entity}?{name}__isnull=false").status_code,
            api.get(f"/{entity}?sort={name}").status_code,
            api.get(f"/{entity}?fields=id,{name}").status_code,
        ]
        for name in sorted(expected.hidden())
    }

    assert unknown == [400, 400, 400]
    assert found == dict.fromkeys(found, unknown), _where(role, entity, "hidden")


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_me_reports_the_scopes_and_field_levels_of_the_role(
    world: World, role: str, entity: str
) -> None:
    username = world.probes[role]
    expected = world.expected(username, entity)

    me = world.api_for(username).get("/me").json

    if not expected.readable:
        assert entity not in me["entities"], _where(role, entity, "me")
        return
    assert me["entities"][entity]["operations"] == expected.scopes, _where(
        role, entity, "me"
    )
    assert me["entities"][entity]["fields"] == expected.levels, _where(
        role, entity, "me fields"
    )


# -- web pages ---------------------------------------------------------------------


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_web_list_search_and_lookup_match_the_role(
    world: World, role: str, entity: str
) -> None:
    username = world.probes[role]
    browser = world.browsers[username]
    expected = world.expected(username, entity)
    visible = world.visible(username, entity)
    owners = {p.username: p.id for p in world.people.values()} | {
        "nobody": world.admin_id
    }

    listing = browser.get(f"/app/{entity}")
    searched = browser.get(f"/app/{entity}?q=Zephyr")
    by_owner = {
        name: (
            browser.get(f"/app/{entity}?q={name}"),
            browser.get(f"/app/{entity}/lookup?q=Zephyr+{name}"),
        )
        for name in owners
    }

    if not expected.readable:
        statuses = {listing.status_code, searched.status_code}
        statuses |= {r.status_code for pair in by_owner.values() for r in pair}
        assert statuses == {404}, _where(role, entity, "web list")
        return
    pages = [listing, searched] + [r for pair in by_owner.values() for r in pair]
    assert {r.status_code for r in pages} == {200}, _where(role, entity, "web list")
    texts = [r.get_data(as_text=True) for r in pages]
    assert linked_ids(texts[0], entity) == visible, _where(role, entity, "web list")
    assert linked_ids(texts[1], entity) == visible, _where(role, entity, "search")
    for name, (search, lookup) in by_owner.items():
        owned = {
            record["id"]
            for record in world.records[entity]
            if record["owner_id"] == owners[name] and record["id"] in visible
        }
        search_ids = linked_ids(search.get_data(as_text=True), entity)
        assert search_ids == owned, _where(role, entity, f"search ?q={name}")
        lookup_ids = {item["id"] for item in lookup.json}
        assert lookup_ids == owned, _where(role, entity, f"lookup ?q=Zephyr {name}")
    _no_leaks(world, username, _where(role, entity, "web list"), *texts)


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_quick_search_finds_nothing_by_a_hidden_value(
    world: World, role: str, entity: str
) -> None:
    username = world.probes[role]
    expected = world.expected(username, entity)
    values = sorted(
        value
        for (owner, name), found in world.sentinels.items()
        if owner == entity and name in expected.hidden()
        for value in found
    )
    if not expected.readable or not values:
        pytest.skip("the role hides no value of a readable entity here")

    found = {
        value: linked_ids(
            world.browsers[username]
            .get(f"/app/{entity}", query_string={"q": value})
            .get_data(as_text=True),
            entity,
        )
        for value in values[:3]
    }

    assert found == dict.fromkeys(found, set()), _where(role, entity, "search hidden")


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_detail_pages_and_related_lists_match_the_role(
    world: World, role: str, entity: str
) -> None:
    username = world.probes[role]
    browser = world.browsers[username]
    expected = world.expected(username, entity)
    visible = world.visible(username, entity)
    labels = {name: spec["label"] for name, spec in world.entity_fields(entity).items()}

    pages = {
        record["id"]: browser.get(f"/app/{entity}/{record['id']}")
        for record in world.records[entity]
    }

    statuses = {record_id: page.status_code for record_id, page in pages.items()}
    assert statuses == {
        record_id: 200 if record_id in visible else 404 for record_id in pages
    }, _where(role, entity, "detail")
    texts = {
        record_id: pages[record_id].get_data(as_text=True) for record_id in visible
    }
    for record_id, text in texts.items():
        for name in expected.hidden():
            assert f">{labels[name]}<" not in text, _where(role, entity, f"{name}")
        for child, lookup, ids, total in _related_lists(text):
            children = world.visible(username, child)
            wanted = {
                record["id"]
                for record in world.records[child]
                if record[lookup] == record_id and record["id"] in children
            }
            where = _where(role, entity, f"related {child}.{lookup} of {record_id}")
            assert ids <= wanted, where
            assert total == len(wanted), where
            assert len(ids) == min(len(wanted), 5), where
    _no_leaks(world, username, _where(role, entity, "detail"), *texts.values())


def _related_lists(page: str) -> Iterator[tuple[str, str, set[int], int]]:
    """Each related list of a record page: child entity, lookup, ids, total."""
    starts = list(_RELATED.finditer(page))
    for index, start in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(page)
        chunk = page[start.start() : end]
        child, lookup = start.group(1), start.group(2)
        total = _TOTAL.search(chunk)
        rows = re.findall(rf'class="row-link" href="/app/{child}/(\d+)"', chunk)
        yield (
            child,
            lookup,
            {int(r) for r in rows},
            int(total.group(1)) if total else -1,
        )


# -- export and import -----------------------------------------------------------------


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_export_matches_the_role(world: World, role: str, entity: str) -> None:
    username = world.probes[role]
    expected = world.expected(username, entity)
    person = world.people[username]

    response = world.browsers[username].get(f"/app/{entity}/export.csv")

    if not expected.readable:
        assert response.status_code == 404, _where(role, entity, "export")
        return
    if expected.scopes["export"] == "none":
        assert response.status_code == 403, _where(role, entity, "export")
        return
    assert response.status_code == 200, _where(role, entity, "export")
    header, rows = csv_rows(response.get_data(as_text=True))
    fields = [
        name for name in world.entity_fields(entity) if name not in expected.hidden()
    ]
    assert header == ["id", *fields, "created_at", "updated_at", "owner_id"]
    wanted = {
        record["id"]
        for record in world.records[entity]
        if may(expected, person, record, "export")
    }
    assert sorted(int(row["id"]) for row in rows) == sorted(wanted), _where(
        role, entity, "export rows"
    )
    _no_leaks(
        world, username, _where(role, entity, "export"), response.get_data(as_text=True)
    )


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_import_page_follows_the_import_scope(
    world: World, role: str, entity: str
) -> None:
    username = world.probes[role]
    expected = world.expected(username, entity)

    response = world.browsers[username].get(f"/app/{entity}/import")

    if not expected.readable:
        wanted = 404
    elif expected.scopes["import"] == "none":
        wanted = 403
    else:
        wanted = 200
    assert response.status_code == wanted, _where(role, entity, "import")


# -- writes ---------------------------------------------------------------------------


def _value(entity: str, name: str, kind: str, number: int) -> Any:
    """A valid value for a field, that differs from what the world stored."""
    if kind in ("currency", "integer", "percent", "decimal", "number"):
        return 30 + number % 50
    return sentinel(entity, name, kind, number)


def _new_data(world: World, entity: str, owner: str) -> dict[str, Any]:
    """Valid values for a new record, pointing at the first seeded parents."""
    _, data = world.sample(entity, owner)
    for name, spec in world.entity_fields(entity).items():
        if spec["type"] == "lookup" and name in ("account", "product"):
            data[name] = world.records[spec["target"]][0]["id"]
    return data


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_create_follows_the_create_scope_and_owner(
    world: World, role: str, entity: str
) -> None:
    username = world.probes[role]
    api = world.api_for(username)
    expected = world.expected(username, entity)
    person = world.people[username]
    others = {
        "self": None,
        "teammate": world.people["mate"].id,
        "stranger": world.people["stranger"].id,
    }
    created = []

    try:
        answers = {}
        for who, owner in others.items():
            data = _new_data(world, entity, username)
            if owner is not None:
                data["owner_id"] = owner
            response = api.post(f"/{entity}", json=data)
            answers[who] = response.status_code
            if response.status_code == 201:
                created.append(response.json["id"])

        scope = expected.scopes["create"]
        if not expected.readable:
            wanted = dict.fromkeys(others, 404)
        elif scope == "none":
            wanted = dict.fromkeys(others, 403)
        else:
            wanted = {
                who: 201 if person.owner_in(scope, owner or person.id) else 403
                for who, owner in others.items()
            }
        assert answers == wanted, _where(role, entity, "create")
    finally:
        for record_id in created:
            world.admin.delete(f"/{entity}/{record_id}")


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_create_refuses_hidden_and_read_only_fields_by_name(
    world: World, role: str, entity: str
) -> None:
    username = world.probes[role]
    expected = world.expected(username, entity)
    restricted = sorted(expected.levels)
    if expected.scopes["create"] == "none" or not restricted:
        pytest.skip("the role creates no record with restricted fields here")
    fields = world.entity_fields(entity)

    answers = {}
    for number, name in enumerate(restricted):
        data = _new_data(world, entity, username)
        data[name] = _value(entity, name, fields[name]["type"], 900 + number)
        response = world.api_for(username).post(f"/{entity}", json=data)
        answers[name] = (
            response.status_code,
            [e["field"] for e in (response.json or {}).get("errors", [])],
        )
        if response.status_code == 201:
            world.admin.delete(f"/{entity}/{response.json['id']}")

    assert answers == {name: (403, [name]) for name in restricted}, _where(
        role, entity, "create restricted"
    )


@pytest.fixture
def disposable(world: World) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """A copy of every seeded record, owned and placed alike, removed afterwards."""
    made: dict[str, list[dict[str, Any]]] = {}

    def make(entity: str) -> list[dict[str, Any]]:
        copies = []
        for record in world.records[entity]:
            owner = next(
                (
                    p.username
                    for p in world.people.values()
                    if p.id == record["owner_id"]
                ),
                "nobody",
            )
            data = _new_data(world, entity, owner)
            data["owner_id"] = record["owner_id"]
            if entity == "account":
                data["country"] = record["country"]
            response = world.admin.post(f"/{entity}", json=data)
            assert response.status_code == 201, response.json
            copies.append(response.json)
        made[entity] = copies
        return copies

    yield make  # type: ignore[misc]
    for entity, copies in made.items():
        for record in copies:
            world.admin.delete(f"/{entity}/{record['id']}")
        refresh(world, entity)


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_edit_and_delete_follow_their_scopes(
    world: World, role: str, entity: str, disposable: Any
) -> None:
    username = world.probes[role]
    api = world.api_for(username)
    expected = world.expected(username, entity)
    person = world.people[username]
    copies = disposable(entity)
    name = EDITABLE[entity]

    edits = {
        r["id"]: api.patch(f"/{entity}/{r['id']}", json={name: "Changed"}).status_code
        for r in copies
    }
    deletes = {r["id"]: api.delete(f"/{entity}/{r['id']}").status_code for r in copies}

    assert edits == {r["id"]: outcome(expected, person, r, "edit") for r in copies}, (
        _where(role, entity, "edit")
    )
    assert deletes == {
        r["id"]: outcome(expected, person, r, "delete") for r in copies
    }, _where(role, entity, "delete")
    gone = {
        r["id"]
        for r in copies
        if world.admin.get(f"/{entity}/{r['id']}").status_code == 404
    }
    assert gone == {r for r, status in deletes.items() if status == 204}


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_edit_refuses_hidden_and_changed_read_only_fields_by_name(
    world: World, role: str, entity: str, disposable: Any
) -> None:
    username = world.probes[role]
    api = world.api_for(username)
    expected = world.expected(username, entity)
    person = world.people[username]
    editable = [r for r in disposable(entity) if may(expected, person, r, "edit")]
    restricted = sorted(expected.levels)
    if not expected.readable or not editable or not restricted:
        pytest.skip("the role edits no record with restricted fields here")
    record = editable[0]
    fields = world.entity_fields(entity)

    answers = {}
    for number, name in enumerate(restricted):
        value = _value(entity, name, fields[name]["type"], 800 + number)
        response = api.patch(f"/{entity}/{record['id']}", json={name: value})
        answers[name] = (
            response.status_code,
            [e["field"] for e in (response.json or {}).get("errors", [])],
        )
    unchanged = {
        name: api.patch(
            f"/{entity}/{record['id']}", json={name: record[name]}
        ).status_code
        for name in sorted(expected.read_only())
    }
    after = world.admin.get(f"/{entity}/{record['id']}").json

    assert answers == {name: (403, [name]) for name in restricted}, _where(
        role, entity, "edit restricted"
    )
    assert unchanged == dict.fromkeys(unchanged, 200), _where(
        role, entity, "unchanged read-only"
    )
    assert {name: after[name] for name in restricted} == {
        name: record[name] for name in restricted
    }


def test_the_matrix_covers_every_entity_the_roles_name() -> None:
    named = {
        entity
        for document in pack_roles().values()
        for entity in [
            *document["entities"],
            *(r["entity"] for r in document.get("sharing", [])),
        ]
    }

    assert named <= set(ENTITIES)
