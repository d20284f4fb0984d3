"""A delete that clears ``set_null`` lookups changes those records like any save.

Roll-ups that count a cleared record move, its formulas that read the lookup
(directly or through it) are recomputed, formulas elsewhere that read the lookup
through a lookup follow, and automations on update run for it. Every test runs on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tailorcrm.platform import Platform
from tests.conftest import Api
from tests.rules_support import create, define, rule, with_unique

REGION = {
    "name": "region",
    "label": "Region",
    "display_field": "name",
    "fields": [{"name": "name", "type": "text", "label": "Name", "required": True}],
}
COMPANY = {
    "name": "company",
    "label": "Company",
    "display_field": "name",
    "fields": [
        {"name": "name", "type": "text", "label": "Name", "required": True},
        {
            "name": "region",
            "type": "lookup",
            "target": "region",
            "label": "Region",
            "on_delete": "set_null",
        },
        {
            "name": "billing_region",
            "type": "lookup",
            "target": "region",
            "label": "Billing region",
            "on_delete": "set_null",
        },
        {
            "name": "parent",
            "type": "lookup",
            "target": "company",
            "label": "Parent company",
            "on_delete": "set_null",
        },
        {"name": "placed_children", "type": "integer", "label": "Placed children"},
        {"name": "region_flag", "type": "text", "label": "Region flag"},
        {"name": "cleared_note", "type": "text", "label": "Cleared note"},
        {"name": "revenue", "type": "integer", "label": "Revenue"},
        {"name": "unplaced", "type": "integer", "label": "Unplaced children"},
        {"name": "unplaced_revenue", "type": "integer", "label": "Unplaced revenue"},
        {"name": "region_name", "type": "text", "label": "Region name"},
    ],
}
CONTACT = {
    "name": "contact",
    "label": "Contact",
    "display_field": "name",
    "fields": [
        {"name": "name", "type": "text", "label": "Name", "required": True},
        {"name": "company", "type": "lookup", "target": "company", "label": "Company"},
        {"name": "company_placed", "type": "text", "label": "Company placed"},
    ],
}

PLACED_CHILDREN = rule(
    "placed_children",
    "company",
    "rollup",
    field="placed_children",
    relation={"entity": "company", "lookup": "parent"},
    function="count",
    condition={"!": {"is_blank": {"var": "region"}}},
)
REGION_FLAG = rule(
    "region_flag",
    "company",
    "formula",
    field="region_flag",
    expression={"if": [{"is_blank": {"var": "region"}}, "none", "set"]},
)
REGION_NAME = rule(
    "region_name",
    "company",
    "formula",
    field="region_name",
    expression={"var": "region.name"},
)
COMPANY_PLACED = rule(
    "company_placed",
    "contact",
    "formula",
    field="company_placed",
    expression={"if": [{"is_blank": {"var": "company.region"}}, "no", "yes"]},
)
NOTE_CLEARED = rule(
    "note_cleared",
    "company",
    "automation",
    trigger=["update"],
    condition={"and": [{"changed": "region"}, {"is_blank": {"var": "region"}}]},
    actions=[{"type": "set_field", "field": "cleared_note", "value": "region gone"}],
)


@pytest.fixture
def regions(api: Api) -> Api:
    define(api, REGION, COMPANY, CONTACT)
    return api


def read(api: Api, entity: str, record_id: int) -> dict[str, Any]:
    record: dict[str, Any] = api.get(f"/{entity}/{record_id}").json
    return record


def placed_in_sql(platform: Platform, parent: int) -> int:
    with platform.reading() as (connection, catalog):
        table = catalog.entity("company").table
        return int(
            connection.execute(
                sa.select(sa.func.count()).where(
                    table.c.parent == parent, table.c.region.is_not(None)
                )
            ).scalar_one()
        )


def test_a_roll_up_that_counts_by_a_cleared_lookup_moves(
    regions: Api, platform: Platform
) -> None:
    define(regions, PLACED_CHILDREN)
    west = create(regions, "region", name="Westmarch")
    east = create(regions, "region", name="Eastvale")
    holding = create(regions, "company", name="Harrow Holdings")
    for name, region in (("North", west), ("South", west), ("Quay", east)):
        create(
            regions,
            "company",
            name=f"Harrow {name}",
            parent=holding["id"],
            region=region["id"],
        )
    assert read(regions, "company", holding["id"])["placed_children"] == 3

    assert regions.delete(f"/region/{west['id']}").status_code == 204
    after = read(regions, "company", holding["id"])
    assert after["placed_children"] == 1 == placed_in_sql(platform, holding["id"])
    assert after["version"] == holding["version"] + 4
    history = regions.get(f"/company/{holding['id']}/history").json
    moved = [
        (entry["old"], entry["new"])
        for entry in history["data"]
        if entry.get("field") == "placed_children"
    ]
    # Newest first: both cleared children leave the count in one step.
    assert moved == [(3, 1), (2, 3), (1, 2), (0, 1)]


def test_formulas_that_read_a_cleared_lookup_are_recomputed(regions: Api) -> None:
    define(regions, REGION_FLAG, COMPANY_PLACED)
    west = create(regions, "region", name="Westmarch")
    company = create(regions, "company", name="Corvid Tools", region=west["id"])
    contact = create(regions, "contact", name="Ada Quill", company=company["id"])
    assert company["region_flag"] == "set"
    assert contact["company_placed"] == "yes"

    assert regions.delete(f"/region/{west['id']}").status_code == 204
    cleared = read(regions, "company", company["id"])
    assert cleared["region"] is None
    assert cleared["region_flag"] == "none"
    # A formula elsewhere reads the cleared lookup through a lookup of its own.
    assert read(regions, "contact", contact["id"])["company_placed"] == "no"


def test_automations_on_update_run_for_a_cleared_record(regions: Api) -> None:
    define(regions, NOTE_CLEARED)
    west = create(regions, "region", name="Westmarch")
    company = create(regions, "company", name="Corvid Tools", region=west["id"])
    untouched = create(regions, "company", name="Pike Mills")
    assert regions.delete(f"/region/{west['id']}").status_code == 204
    assert read(regions, "company", company["id"])["cleared_note"] == "region gone"
    assert read(regions, "company", untouched["id"])["cleared_note"] is None


def test_an_automation_that_cannot_save_a_cleared_record_names_it(
    regions: Api,
) -> None:
    # The caller deletes a region; the company it clears is another record, so
    # the problem is named with the company's entity and the automation.
    blank_name = rule(
        "blank_name",
        "company",
        "automation",
        trigger=["update"],
        condition={"changed": "region"},
        actions=[
            {"type": "set_field", "field": "name", "expression": {"var": "region.name"}}
        ],
    )
    define(regions, blank_name)
    west = create(regions, "region", name="Westmarch")
    company = create(regions, "company", name="Corvid Tools", region=west["id"])

    refused = regions.delete(f"/region/{west['id']}")

    assert refused.status_code == 422
    assert [(e["field"], e["code"]) for e in refused.json["errors"]] == [
        ("company.name", "required")
    ]
    assert "blank_name" in refused.json["errors"][0]["message"]
    assert read(regions, "region", west["id"])["name"] == "Westmarch"
    assert read(regions, "company", company["id"])["region"] == west["id"]


def test_a_record_that_points_at_itself_is_deleted_without_a_trace(
    regions: Api, platform: Platform
) -> None:
    define(regions, PLACED_CHILDREN)
    west = create(regions, "region", name="Westmarch")
    top = create(regions, "company", name="Harrow Holdings")
    middle = create(
        regions, "company", name="Harrow Mid", parent=top["id"], region=west["id"]
    )
    create(
        regions, "company", name="Harrow Low", parent=middle["id"], region=west["id"]
    )
    pointed = regions.patch(f"/company/{middle['id']}", json={"parent": middle["id"]})
    assert pointed.status_code == 200, pointed.json
    assert regions.delete(f"/company/{middle['id']}").status_code == 204
    for parent in (top["id"],):
        stored = read(regions, "company", parent)["placed_children"]
        assert stored == placed_in_sql(platform, parent)


UNPLACED = rule(
    "unplaced",
    "company",
    "rollup",
    field="unplaced",
    relation={"entity": "company", "lookup": "parent"},
    function="count",
    condition={
        "and": [
            {"is_blank": {"var": "region"}},
            {"is_blank": {"var": "billing_region"}},
        ]
    },
)
UNPLACED_REVENUE = rule(
    "unplaced_revenue",
    "company",
    "rollup",
    field="unplaced_revenue",
    relation={"entity": "company", "lookup": "parent"},
    function="sum",
    of="revenue",
    condition={"is_blank": {"var": "region"}},
)
LOG_UPDATE = rule(
    "log_update",
    "company",
    "automation",
    trigger=["update"],
    actions=[
        {
            "type": "create_record",
            "entity": "contact",
            "lookup": "company",
            "values": {"name": "update seen"},
        }
    ],
)


def logged(api: Api, company: int) -> int:
    contacts = api.get("/contact").json["data"]
    return sum(
        1 for c in contacts if c["company"] == company and c["name"] == "update seen"
    )


def test_a_record_cleared_through_two_lookups_is_one_change(
    regions: Api, platform: Platform
) -> None:
    define(regions, UNPLACED, UNPLACED_REVENUE, LOG_UPDATE)
    west = create(regions, "region", name="Westmarch")
    holding = create(regions, "company", name="Harrow Holdings")
    child = create(
        regions,
        "company",
        name="Harrow North",
        parent=holding["id"],
        region=west["id"],
        billing_region=west["id"],
        revenue=7,
    )
    assert read(regions, "company", holding["id"])["unplaced"] == 0
    before = logged(regions, child["id"])

    assert regions.delete(f"/region/{west['id']}").status_code == 204

    after = read(regions, "company", holding["id"])
    assert (after["unplaced"], after["unplaced_revenue"]) == (1, 7)
    # The update automation ran once for the one change of the record.
    assert logged(regions, child["id"]) == before + 1


def test_a_cleared_record_whose_formula_reads_the_lookup_is_one_change(
    regions: Api,
) -> None:
    define(
        regions,
        REGION_FLAG,
        REGION_NAME,
        LOG_UPDATE,
    )
    west = create(regions, "region", name="Westmarch")
    company = create(regions, "company", name="Corvid Tools", region=west["id"])
    before = logged(regions, company["id"])

    assert regions.delete(f"/region/{west['id']}").status_code == 204

    cleared = read(regions, "company", company["id"])
    assert (cleared["region_flag"], cleared["region_name"]) == ("none", None)
    assert logged(regions, company["id"]) == before + 1


@pytest.mark.parametrize(
    "condition",
    [
        {"and": [{"changed": "region"}, {"is_blank": {"var": "region"}}]},
        {"!": {"is_blank": {"prior": "region"}}},
    ],
    ids=["changed", "prior"],
)
def test_the_record_before_the_delete_still_points_at_the_deleted_record(
    regions: Api, condition: Any
) -> None:
    # A rule reads through the lookup, so the region is loaded as a record.
    define(
        regions,
        REGION_NAME,
        rule(
            "note_cleared",
            "company",
            "automation",
            trigger=["update"],
            condition=condition,
            actions=[
                {"type": "set_field", "field": "cleared_note", "value": "region gone"}
            ],
        ),
    )
    west = create(regions, "region", name="Westmarch")
    company = create(regions, "company", name="Corvid Tools", region=west["id"])
    assert regions.delete(f"/region/{west['id']}").status_code == 204
    assert read(regions, "company", company["id"])["cleared_note"] == "region gone"


def test_a_cleared_lookup_that_makes_a_unique_formula_clash_refuses_the_delete(
    api: Api,
) -> None:
    # A company's unique flag is its region's name, or "none": only one company
    # may be without a region, and deleting the other's region would make two.
    company = with_unique(COMPANY, "region_flag")
    flag = rule(
        "region_flag",
        "company",
        "formula",
        field="region_flag",
        expression={
            "if": [{"is_blank": {"var": "region"}}, "none", {"var": "region.name"}]
        },
    )
    define(api, REGION, company, CONTACT, flag)
    west = create(api, "region", name="Westmarch")
    placed = create(api, "company", name="Corvid Tools", region=west["id"])
    create(api, "company", name="Pike Mills")

    refused = api.delete(f"/region/{west['id']}")

    assert refused.status_code == 409, refused.json
    assert [(e["field"], e["code"]) for e in refused.json["errors"]] == [
        ("company.region_flag", "unique")
    ]
    assert read(api, "region", west["id"])["name"] == "Westmarch"
    kept = read(api, "company", placed["id"])
    assert (kept["region"], kept["region_flag"]) == (west["id"], "Westmarch")


@pytest.mark.parametrize("formulas", [[], [REGION_FLAG]], ids=["plain", "formula"])
def test_a_delete_that_clears_a_record_moves_its_version_once(
    regions: Api, formulas: list[dict[str, Any]]
) -> None:
    # However many of its lookups the delete clears, and whether formulas then
    # change it again, the record changed once: a client holding the version
    # before the delete is one version behind.
    define(regions, *formulas)
    west = create(regions, "region", name="Westmarch")
    company = create(
        regions,
        "company",
        name="Corvid Tools",
        region=west["id"],
        billing_region=west["id"],
    )
    assert regions.delete(f"/region/{west['id']}").status_code == 204
    cleared = read(regions, "company", company["id"])
    assert (cleared["region"], cleared["billing_region"]) == (None, None)
    assert cleared["version"] == company["version"] + 1
