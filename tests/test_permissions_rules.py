"""How grants change: sharing rules, teams, roles taken away or added up, ownership
transfers, role documents refused or rewritten, and who may administer roles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL
from tests.permissions_support import (
    World,
    build_world,
    csv_rows,
    database,
    linked_ids,
    make_app,
)

REP = "probe_sales_rep"
MANAGER = "probe_sales_manager"


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "postgresql" and not POSTGRES_URL:
        pytest.skip("TAILORCRM_TEST_POSTGRES_URL is not set")
    with database(request.param, tmp_path) as url:
        app = make_app(url)
        try:
            yield build_world(app)
        finally:
            app.extensions["tailorcrm"].engine.dispose()


def _ids(world: World, username: str, entity: str) -> set[int]:
    body = world.api_for(username).get(f"/{entity}?limit=200").json
    return {record["id"] for record in body["data"]}


def _owned_by(world: World, entity: str, username: str, **match: Any) -> set[int]:
    owner = world.people[username].id
    return {
        r["id"]
        for r in world.records[entity]
        if r["owner_id"] == owner and all(r[k] == v for k, v in match.items())
    }


def test_the_country_sharing_rule_follows_the_user_attribute(world: World) -> None:
    norway = _owned_by(world, "account", "stranger", country="Norway")
    spain = _owned_by(world, "account", "stranger", country="Spain")
    before = _ids(world, REP, "account")

    response = world.admin.patch(
        f"/users/{REP}", json={"attributes": {"country": "Spain"}}
    )
    after = _ids(world, REP, "account")
    world.admin.patch(f"/users/{REP}", json={"attributes": {}})
    without = _ids(world, REP, "account")

    assert response.status_code == 200, response.json
    assert norway <= before and not spain & before
    assert spain <= after and not norway & after
    assert not (norway | spain) & without


def test_team_scope_follows_membership_from_the_next_request(world: World) -> None:
    mates = _owned_by(world, "opportunity", "mate")
    strangers = _owned_by(world, "opportunity", "stranger")
    before = _ids(world, REP, "opportunity")
    page_before = world.browsers[REP].get("/app/opportunity").get_data(as_text=True)

    north = [u for u in world.people if "north" in world.people[u].teams and u != REP]
    moved = [
        world.admin.patch("/teams/north", json={"members": north}).status_code,
        world.admin.patch(
            "/teams/south", json={"members": ["stranger", REP]}
        ).status_code,
    ]
    after = _ids(world, REP, "opportunity")
    page_after = world.browsers[REP].get("/app/opportunity").get_data(as_text=True)

    assert moved == [200, 200]
    assert mates <= before and not strangers & before
    assert mates <= linked_ids(page_before, "opportunity")
    assert strangers <= after and not mates & after
    assert strangers <= linked_ids(page_after, "opportunity")
    assert not mates & linked_ids(page_after, "opportunity")


def test_a_role_taken_away_counts_from_the_next_request(world: World) -> None:
    api = world.api_for(REP)
    browser = world.browsers[REP]
    mine = sorted(_owned_by(world, "opportunity", REP))[0]
    before = [
        api.get(f"/opportunity/{mine}").status_code,
        browser.get(f"/app/opportunity/{mine}").status_code,
        browser.get("/app/opportunity").status_code,
    ]

    taken = world.admin.patch(f"/users/{REP}", json={"roles": []})
    after = [
        api.get(f"/opportunity/{mine}").status_code,
        browser.get(f"/app/opportunity/{mine}").status_code,
        browser.get("/app/opportunity").status_code,
        api.get("/opportunity").status_code,
        api.patch(f"/opportunity/{mine}", json={"next_step": "x"}).status_code,
    ]

    assert before == [200, 200, 200]
    assert taken.status_code == 200, taken.json
    assert after == [404, 404, 404, 404, 404]


def test_an_export_right_revoked_refuses_the_next_export(world: World) -> None:
    browser = world.browsers[MANAGER]
    before = browser.get("/app/account/export.csv")
    role = world.admin.get("/meta/roles/sales_manager").json
    document = role.get("document", role)
    document["entities"]["account"]["export"] = "none"

    changed = world.admin.put("/meta/roles/sales_manager", json=document)
    after = browser.get("/app/account/export.csv")
    still = browser.get("/app/contact/export.csv")
    me = world.api_for(MANAGER).get("/me").json

    assert before.status_code == 200
    assert len(csv_rows(before.get_data(as_text=True))[1]) == len(
        world.records["account"]
    )
    assert changed.status_code == 200, changed.json
    assert after.status_code == 403
    assert still.status_code == 200
    assert me["entities"]["account"]["operations"]["export"] == "none"


def test_roles_add_up_to_the_widest_scope_and_the_most_open_field(
    world: World,
) -> None:
    world.admin.patch(f"/users/{REP}", json={"roles": ["sales_rep", "auditor"]})
    api = world.api_for(REP)
    contact = api.get(f"/contact/{world.records['contact'][0]['id']}")
    opportunity = api.get(f"/opportunity/{world.records['opportunity'][-1]['id']}")
    me = api.get("/me").json

    # The auditor reads every account and contact; the rep edits only their own.
    assert _ids(world, REP, "account") == {r["id"] for r in world.records["account"]}
    assert me["entities"]["account"]["operations"] == {
        "create": "all",
        "read": "all",
        "edit": "own",
        "delete": "none",
        "import": "none",
        "export": "all",
    }
    # Email and phone are hidden by the auditor but open to the rep; both hide
    # the birthdate; the auditor leaves the opportunity's ERP code and
    # probability open, which the rep hides and makes read-only.
    assert contact.status_code == 200
    assert {"email", "phone"} <= set(contact.json)
    assert "birthdate" not in contact.json
    assert opportunity.status_code == 200
    assert "erp_code" in opportunity.json
    assert me["entities"]["contact"]["fields"] == {"birthdate": "hidden"}
    assert me["entities"]["opportunity"]["fields"] == {}


def test_a_team_role_adds_to_the_members_roles(world: World) -> None:
    before = world.api_for("mate").get("/sales_lead").status_code

    given = world.admin.patch("/teams/north", json={"roles": ["sales_rep"]})
    leads = _ids(world, "mate", "sales_lead")
    lost = world.admin.patch("/teams/north", json={"roles": []})
    after = world.api_for("mate").get("/sales_lead").status_code

    north = {p.id for p in world.people.values() if "north" in p.teams}
    assert before == 404
    assert given.status_code == 200, given.json
    assert leads == {
        r["id"] for r in world.records["sales_lead"] if r["owner_id"] in north
    }
    assert lost.status_code == 200
    assert after == 404


def test_ownership_moves_within_the_edit_scope_only(world: World) -> None:
    role = {
        "kind": "role",
        "name": "team_lead",
        "label": "Team lead",
        "entities": {"opportunity": {"read": "team", "edit": "team"}},
    }
    assert world.admin.put("/meta/roles/team_lead", json=role).status_code == 201
    world.admin.patch(f"/users/{REP}", json={"roles": ["team_lead"]})
    api = world.api_for(REP)
    mine = sorted(_owned_by(world, "opportunity", REP))
    mate, stranger = world.people["mate"].id, world.people["stranger"].id

    within = api.patch(f"/opportunity/{mine[0]}", json={"owner_id": mate})
    outside = api.patch(f"/opportunity/{mine[1]}", json={"owner_id": stranger})
    kept = world.admin.get(f"/opportunity/{mine[1]}").json

    assert within.status_code == 200, within.json
    assert within.json["owner_id"] == mate
    assert outside.status_code == 403, outside.json
    assert [e["field"] for e in outside.json["errors"]] == ["owner_id"]
    assert kept["owner_id"] == world.people[REP].id


def test_a_record_edited_through_a_sharing_rule_cannot_be_taken_over(
    world: World,
) -> None:
    # The rep may edit their own opportunities, and those of their country
    # through a sharing rule: those they may change, but not make their own.
    role = {
        "kind": "role",
        "name": "country_editor",
        "label": "Country editor",
        "entities": {"account": {"read": "own", "edit": "own", "delete": "own"}},
        "sharing": [
            {
                "name": "edit_my_country",
                "entity": "account",
                "access": "edit",
                "condition": {"==": [{"var": "country"}, {"var": "$user.country"}]},
            }
        ],
    }
    assert world.admin.put("/meta/roles/country_editor", json=role).status_code == 201
    world.admin.patch(
        f"/users/{REP}", json={"roles": ["country_editor"], "attributes": {}}
    )
    shared = _owned_by(world, "account", "stranger")
    account = min(shared)
    country = world.admin.get(f"/account/{account}").json["country"]
    world.admin.patch(f"/users/{REP}", json={"attributes": {"country": country}})
    api = world.api_for(REP)
    me = world.people[REP].id
    owner = world.people["stranger"].id
    path = f"/account/{account}"

    edited = api.patch(path, json={"notes": "Checked"})
    taken = api.patch(path, json={"owner_id": me})
    tried = api.patch(f"{path}?dry_run=1", json={"owner_id": me, "notes": "Mine"})
    deleted = api.delete(path)
    stored = world.admin.get(path).json

    assert edited.status_code == 200, edited.json
    assert taken.status_code == 403, taken.json
    assert [e["field"] for e in taken.json["errors"]] == ["owner_id"]
    assert tried.status_code == 403
    assert deleted.status_code == 403
    assert (stored["owner_id"], stored["notes"]) == (owner, "Checked")


@pytest.mark.parametrize(
    ("change", "path", "code"),
    [
        pytest.param(
            {"entities": {"nosuch": {"read": "all"}}},
            "probe.entities.nosuch",
            "unknown_entity",
            id="unknown-entity",
        ),
        pytest.param(
            {"entities": {"account": {"read": "all", "fields": {"nofield": "hidden"}}}},
            "probe.entities.account.fields.nofield",
            "unknown_field",
            id="unknown-field",
        ),
        pytest.param(
            {
                "sharing": [
                    {
                        "name": "broken",
                        "entity": "account",
                        "access": "read",
                        "condition": {"no_such_operator": [1, 2]},
                    }
                ]
            },
            "probe.sharing[0].condition",
            None,
            id="bad-condition",
        ),
    ],
)
def test_role_documents_are_refused_with_paths_and_nothing_changes(
    world: World, change: dict[str, Any], path: str, code: str | None
) -> None:
    document = {"kind": "role", "name": "probe", "label": "Probe", "entities": {}}
    document.update(change)
    roles_before = world.admin.get("/meta/roles").json

    response = world.admin.put("/meta/roles/probe", json=document)

    assert response.status_code == 422, response.json
    fields = [e["field"] for e in response.json["errors"]]
    assert any(f == path or f.startswith(path) for f in fields), fields
    if code is not None:
        assert [e["code"] for e in response.json["errors"]] == [code]
    assert world.admin.get("/meta/roles/probe").status_code == 404
    assert world.admin.get("/meta/roles").json == roles_before


def test_no_role_may_be_named_as_the_administrators_in_rules(world: World) -> None:
    document = {"kind": "role", "name": "admin", "label": "Admin", "entities": {}}

    response = world.admin.put("/meta/roles/admin", json=document)

    assert response.status_code == 422, response.json
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("admin.name", "reserved")
    ]
    assert world.admin.get("/meta/roles/admin").status_code == 404


def test_renaming_a_field_rewrites_the_roles_that_name_it(world: World) -> None:
    entity = world.admin.get("/meta/entities/account").json
    document = entity.get("document", entity)
    for spec in document["fields"]:
        if spec["name"] == "country":
            spec["name"] = "nation"
        if spec["name"] == "erp_code":
            spec["name"] = "erp_number"

    applied = world.admin.put("/meta/entities/account", json=document)
    role = world.admin.get("/meta/roles/sales_rep").json
    rewritten = role.get("document", role)
    shared = _ids(world, REP, "account")

    assert applied.status_code == 200, applied.json
    assert rewritten["entities"]["account"]["fields"] == {
        "erp_number": "read_only",
        "annual_revenue": "read_only",
    }
    assert rewritten["sharing"][0]["condition"] == {
        "==": [{"var": "nation"}, {"var": "$user.country"}]
    }
    assert _owned_by(world, "account", "stranger", country="Norway") <= shared


def _opportunity_document(world: World) -> dict[str, Any]:
    entity = world.admin.get("/meta/entities/opportunity").json
    document: dict[str, Any] = entity.get("document", entity)
    document.pop("revision", None)
    return document


def _rep_levels(world: World) -> dict[str, str]:
    role = world.admin.get("/meta/roles/sales_rep").json
    levels: dict[str, str] = role["entities"]["opportunity"]["fields"]
    return levels


def test_a_field_removed_and_restored_stays_hidden_from_the_roles_that_hid_it(
    world: World,
) -> None:
    # The rep's role hides the opportunity's ERP code, whose values stay in
    # their column while the field is removed.
    whole = _opportunity_document(world)
    deal = world.records["opportunity"][0]["id"]
    world.admin.patch(f"/opportunity/{deal}", json={"erp_code": "ERP-HUSH-1"})
    removed = dict(
        whole, fields=[f for f in whole["fields"] if f["name"] != "erp_code"]
    )
    assert (
        world.admin.put("/meta/entities/opportunity", json=removed).status_code == 200
    )
    while_removed = _rep_levels(world)

    restored = world.admin.put("/meta/entities/opportunity", json=whole)
    api = world.api_for(REP)
    listed = api.get("/opportunity?limit=200").get_data(as_text=True)
    probe = api.get("/opportunity?erp_code=ERP-HUSH-1")

    assert restored.status_code == 200, restored.json
    assert "erp_code" not in listed and "ERP-HUSH-1" not in listed
    assert probe.status_code == 400
    assert while_removed["erp_code"] == "hidden"
    assert _rep_levels(world)["erp_code"] == "hidden"
    assert api.get("/me").json["entities"]["opportunity"]["fields"]["erp_code"] == (
        "hidden"
    )


def test_a_purged_field_leaves_the_roles_that_named_it(world: World) -> None:
    whole = _opportunity_document(world)
    removed = dict(
        whole, fields=[f for f in whole["fields"] if f["name"] != "erp_code"]
    )
    world.admin.put("/meta/entities/opportunity", json=removed)
    while_removed = world.api_for(REP).get("/me").json["entities"]["opportunity"]
    platform = world.app.extensions["tailorcrm"]

    result = platform.store.purge("opportunity", "erp_code", actor="test")
    role = world.admin.get("/meta/roles/sales_rep").json
    changed = world.admin.put("/meta/roles/sales_rep", json=role)

    assert "erp_code" not in while_removed["fields"]
    assert "rewrite_role sales_rep" in result.plan.describe()
    assert "erp_code" not in _rep_levels(world)
    assert changed.status_code == 200, changed.json


def test_a_purged_entity_leaves_the_roles_that_named_it(world: World) -> None:
    # An entity made again under the name is another entity: the grants of the
    # purged one must not open it.
    platform = world.app.extensions["tailorcrm"]
    world.admin.delete("/meta/entities/activity")

    result = platform.store.purge("activity", None, actor="test")
    again = world.admin.put(
        "/meta/entities/activity",
        json={
            "name": "activity",
            "label": "Activity",
            "fields": [{"name": "subject", "type": "text", "label": "Subject"}],
        },
    )
    role = world.admin.get("/meta/roles/sales_rep").json
    created = world.api_for(REP).post("/activity", json={"subject": "Quiet note"})

    assert again.status_code == 201, again.json
    assert "rewrite_role sales_rep" in result.plan.describe()
    assert "activity" not in role["entities"]
    assert created.status_code == 404


def test_a_role_naming_a_removed_entity_can_be_saved_as_it_reads(
    world: World,
) -> None:
    world.admin.delete("/meta/entities/activity")
    role = world.admin.get("/meta/roles/sales_rep").json

    changed = world.admin.put(
        "/meta/roles/sales_rep", json={**role, "label": "Field representative"}
    )
    restored = world.admin.get("/meta/roles/sales_rep").json

    assert changed.status_code == 200, changed.json
    assert restored["entities"]["activity"] == role["entities"]["activity"]


def test_a_role_held_by_a_user_cannot_be_deleted(world: World) -> None:
    response = world.admin.delete("/meta/roles/sales_rep")

    assert response.status_code == 409
    assert world.admin.get("/meta/roles/sales_rep").status_code == 200
    assert world.api_for(REP).get("/me").json["roles"] == ["sales_rep"]


@pytest.mark.parametrize("username", [REP, MANAGER, "probe_auditor"])
def test_only_administrators_change_roles_and_read_users(
    world: World, username: str
) -> None:
    api = world.api_for(username)
    document = {"kind": "role", "name": "sneaky", "label": "S", "entities": {}}

    answers = [
        api.put("/meta/roles/sneaky", json=document).status_code,
        api.put(
            "/meta/roles/sales_rep",
            json={**world.roles["sales_rep"], "entities": {}},
        ).status_code,
        api.delete("/meta/roles/auditor").status_code,
        api.get("/users").status_code,
        api.get(f"/users/{REP}").status_code,
        api.patch(f"/users/{username}", json={"roles": ["sales_manager"]}).status_code,
        api.post("/teams", json={"name": "rogue"}).status_code,
    ]

    assert answers == [403] * 7
    assert world.admin.get("/meta/roles/sneaky").status_code == 404
    assert world.admin.get("/meta/roles/sales_rep").json is not None
    assert (
        world.api_for(username).get("/me").json["roles"] == world.people[username].roles
    )
