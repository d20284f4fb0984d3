"""Guessing ids: a record out of the caller's reach answers as one that never was.

For every pack role and every entity it may read, each endpoint that takes a record
id answers 404 for the ids of records the role may not read, and answers exactly
as it does for an id no record has: same status, same body shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.permissions_support import (
    MATRIX,
    NO_ROLE,
    ROLES,
    World,
    open_world,
)

MISSING = 987654
_NUMBERS = re.compile(r"\d+")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    yield from open_world(request, tmp_path_factory, "idor")


def _shape(response: Any) -> tuple[int, Any]:
    """A response's status and body with every number blanked out."""
    if response.is_json:
        body = json.dumps(response.json, sort_keys=True)
        return response.status_code, _NUMBERS.sub("N", body)
    text = response.get_data(as_text=True)
    # The CSRF token of a page changes with every page.
    text = re.sub(r'name="csrf_token" value="[^"]+"', "", text)
    return response.status_code, _NUMBERS.sub("N", text)


def _answers(
    world: World, username: str, entity: str, record_id: int
) -> dict[str, Any]:
    """Every endpoint that takes a record id, asked about ``record_id``."""
    api = world.api_for(username)
    browser = world.browsers[username]
    path = f"/app/{entity}/{record_id}"
    return {
        "api get": _shape(api.get(f"/{entity}/{record_id}")),
        "api patch": _shape(api.patch(f"/{entity}/{record_id}", json={})),
        "api delete": _shape(api.delete(f"/{entity}/{record_id}")),
        "web detail": _shape(browser.get(path)),
        "web edit": _shape(browser.get(f"{path}/edit")),
        "web delete page": _shape(browser.get(f"{path}/delete")),
        "web delete": _shape(browser.post(f"{path}/delete", {})),
        "web save": _shape(browser.post(f"{path}/edit", {})),
    }


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_ids_out_of_reach_answer_404_like_missing_ids(
    world: World, role: str, entity: str
) -> None:
    username = world.probes[role]
    visible = world.visible(username, entity)
    hidden = [r["id"] for r in world.records[entity] if r["id"] not in visible]
    if not hidden:
        pytest.skip(f"{role} reads every {entity}")

    missing = _answers(world, username, entity, MISSING)
    guessed = {
        record_id: _answers(world, username, entity, record_id) for record_id in hidden
    }

    statuses = {name: status for name, (status, _) in missing.items()}
    assert statuses == dict.fromkeys(missing, 404), f"[{role} × {entity}] missing id"
    for record_id, answers in guessed.items():
        assert answers == missing, f"[{role} × {entity}] id {record_id}"
    after = {r["id"] for r in world.admin.get(f"/{entity}?limit=200").json["data"]}
    assert set(hidden) <= after, f"[{role} × {entity}] a guessed id was deleted"


@pytest.mark.parametrize(("role", "entity"), MATRIX)
def test_lookup_values_out_of_reach_answer_like_missing_ids(
    world: World, role: str, entity: str
) -> None:
    """A lookup given (or filtered on) an unreadable record's id is a missing id."""
    username = world.probes[role]
    api = world.api_for(username)
    expected = world.expected(username, entity)
    lookups = {
        name: spec["target"]
        for name, spec in world.entity_fields(entity).items()
        if spec["type"] == "lookup" and name not in expected.hidden()
    }
    cases = []
    for name, target in lookups.items():
        seen = world.visible(username, target)
        cases += [
            (name, r["id"]) for r in world.records[target] if r["id"] not in seen
        ][:2]
    if not expected.readable or not cases:
        pytest.skip(f"{role} reaches every record {entity} can point to")

    answers = {}
    for name, record_id in cases:
        answers[(name, record_id)] = (
            api.get(f"/{entity}?{name}__eq={record_id}"),
            api.get(f"/{entity}?{name}__eq={MISSING}"),
        )

    for (name, record_id), (guessed, missing) in answers.items():
        where = f"[{role} × {entity}] filter {name}={record_id}"
        assert _shape(guessed) == _shape(missing), where
        assert guessed.json["data"] == [], where


@pytest.mark.parametrize("role", ROLES)
def test_saving_a_lookup_to_an_unreadable_record_answers_like_a_missing_one(
    world: World, role: str
) -> None:
    username = world.probes[role]
    api = world.api_for(username)
    expected = world.expected(username, "contact")
    seen = world.visible(username, "account")
    out_of_reach = [r["id"] for r in world.records["account"] if r["id"] not in seen]
    if expected.scopes["create"] == "none" or not out_of_reach:
        pytest.skip(f"{role} creates no contact or reads every account")

    guessed = api.post(
        "/contact", json={"full_name": "Probe", "account": out_of_reach[0]}
    )
    missing = api.post("/contact", json={"full_name": "Probe", "account": MISSING})
    for response in (guessed, missing):
        if response.status_code == 201:
            world.admin.delete(f"/contact/{response.json['id']}")

    assert guessed.status_code != 201, f"[{role}] linked an unreadable account"
    assert _shape(guessed) == _shape(missing), f"[{role}]"


def test_record_history_answers_like_a_missing_record_where_it_exists(
    world: World,
) -> None:
    record_id = world.records["account"][0]["id"]
    if world.admin.get(f"/account/{record_id}/history").status_code == 404:
        pytest.skip("records have no history endpoint")
    username = world.probes[NO_ROLE]

    guessed = world.api_for(username).get(f"/account/{record_id}/history")
    missing = world.api_for(username).get(f"/account/{MISSING}/history")

    assert guessed.status_code == 404
    assert _shape(guessed) == _shape(missing)
