"""Layout documents: checks, generated layouts, storage, rewrites, API and CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tailorcrm.errors import InvalidMetadata
from tailorcrm.metadata import (
    build_catalog,
    generated_layout,
    plan_entity,
    rewrite_layout,
)
from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.cli import main
from tests.conftest import SALES_PACK, Api, grant_all, load_pack

LAYOUTS = SALES_PACK / "layouts"


def sample_layout(name: str) -> dict[str, Any]:
    layout: dict[str, Any] = json.loads((LAYOUTS / f"{name}.json").read_text())
    return layout


def sample_layouts() -> list[tuple[str, Any]]:
    return [(f"layouts/{p.name}", json.loads(p.read_text())) for p in LAYOUTS.iterdir()]


def entity_document(api: Api, name: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/meta/entities/{name}").json
    return body


def stored_layout(api: Api, name: str) -> dict[str, Any]:
    response = api.get(f"/meta/layouts/{name}")
    assert response.headers["X-Tailorcrm-Layout-Generated"] == "false"
    body: dict[str, Any] = response.json
    return body


def section_labels(layout: dict[str, Any]) -> list[str]:
    return [
        section["label"]
        for tab in layout["form"]["tabs"]
        for section in tab["sections"]
    ]


def revision(api: Api) -> int:
    value: int = api.get("/meta/entities").json["revision"]
    return value


@pytest.fixture
def pack(sales: Platform, api: Api) -> Api:
    """The API over the sales pack's entities; no layout is stored yet."""
    return api


@pytest.fixture
def laid_out(pack: Api, sales: Platform) -> Api:
    """The sales pack with its sample layouts stored."""
    sales.store.apply(sample_layouts(), actor="test")
    return pack


# -- checks ------------------------------------------------------------------------


def test_layout_schema_is_published(pack: Api) -> None:
    schema = pack.get("/meta/schemas/layout").json

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["kind"] == {"const": "layout"}


def _first_section(layout: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = layout["form"]["tabs"][0]["sections"][0]
    return section


def _set(path: str, value: Any) -> Any:
    def change(layout: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = layout
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return change


SECTION = "form.tabs[0].sections[0]"


@pytest.mark.parametrize(
    ("change", "path", "code"),
    [
        (_set("form.tabs.0.sections.0.columns", 4), f"{SECTION}.columns", "schema"),
        (_set("form.tabs.0.sections.0.collapsed", True), SECTION, "schema"),
        (_set("list.page_size", 5), "list.page_size", "schema"),
        (_set("list.sort.0", "Close date"), "list.sort[0]", "schema"),
        (_set("colour", "blue"), "$", "schema"),
        (_set("form.tabs", []), "form.tabs", "schema"),
        (_set("form.tabs.0.sections", []), "form.tabs[0].sections", "schema"),
        (
            _set("form.tabs.0.sections.0.items.1", {"field": "budget"}),
            f"{SECTION}.items[1].field",
            "unknown_field",
        ),
        (
            _set("form.tabs.0.sections.0.items.1", {"field": "title"}),
            f"{SECTION}.items[1].field",
            "duplicate_field",
        ),
        (
            _set("form.tabs.0.sections.3.items.0.related.field", "contact"),
            "form.tabs[0].sections[3].items[0].related.field",
            "not_a_lookup",
        ),
        (
            _set("form.tabs.0.sections.3.items.0.related.entity", "task"),
            "form.tabs[0].sections[3].items[0].related.entity",
            "unknown_entity",
        ),
        (
            _set("form.tabs.0.sections.3.items.0.columns.1", "amount"),
            "form.tabs[0].sections[3].items[0].columns[1]",
            "unknown_field",
        ),
        (_set("list.columns.2", "phase"), "list.columns[2]", "unknown_field"),
        (_set("list.columns.2", "title"), "list.columns[2]", "duplicate_field"),
        (_set("list.sort.1", "-budget"), "list.sort[1]", "unknown_field"),
        (_set("list.sort.1", "-close_date"), "list.sort[1]", "duplicate_field"),
    ],
)
def test_bad_layout_is_refused_with_the_path_of_the_problem(
    pack: Api, change: Any, path: str, code: str
) -> None:
    layout = sample_layout("opportunity")
    change(layout)

    response = pack.put("/meta/layouts/opportunity", json=layout)

    assert response.status_code == 422, response.json
    assert (path, code) in [(e["field"], e["code"]) for e in response.json["errors"]]


@pytest.mark.parametrize(
    ("change", "path", "says"),
    [
        (
            _set("form.tabs.0.sections.0.collapsed", True),
            SECTION,
            'must be collapsible: add "collapsible": true',
        ),
        (
            lambda layout: _first_section(layout).update(
                collapsed=True, collapsible=False
            ),
            f"{SECTION}.collapsible",
            'must be collapsible: add "collapsible": true',
        ),
        (
            _set("form.tabs.0.sections.0.items.0", "title"),
            f"{SECTION}.items[0]",
            'write {"field": "title"} for a field',
        ),
    ],
)
def test_common_layout_mistakes_get_plain_messages(
    pack: Api, change: Any, path: str, says: str
) -> None:
    layout = sample_layout("opportunity")
    change(layout)

    response = pack.put("/meta/layouts/opportunity", json=layout)

    assert response.status_code == 422, response.json
    found = {e["field"]: e["message"] for e in response.json["errors"]}
    assert says in found[path], found


def test_a_related_list_missing_its_entity_keeps_the_schema_message(
    pack: Api,
) -> None:
    layout = sample_layout("opportunity")
    del layout["form"]["tabs"][0]["sections"][3]["items"][0]["related"]["entity"]

    response = pack.put("/meta/layouts/opportunity", json=layout)

    assert response.status_code == 422, response.json
    assert [(e["field"], e["message"]) for e in response.json["errors"]] == [
        (
            "form.tabs[0].sections[3].items[0].related",
            "'entity' is a required property",
        )
    ]


def test_layout_of_an_unknown_entity_is_refused(sales: Platform) -> None:
    layout = {"kind": "layout", "entity": "deal", "list": {"columns": ["title"]}}

    with pytest.raises(InvalidMetadata) as excinfo:
        sales.store.apply([("deal.json", layout)], actor="test")

    assert [(p.field, p.code) for p in excinfo.value.problems] == [
        ("deal.json: entity", "unknown_entity")
    ]


def test_sort_by_a_multi_picklist_is_refused(pack: Api) -> None:
    layout = {"kind": "layout", "entity": "sales_lead", "list": {"sort": ["interests"]}}

    response = pack.put("/meta/layouts/sales_lead", json=layout)

    assert response.status_code == 422
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("list.sort[0]", "not_sortable")
    ]


def test_system_columns_may_sort_a_list(pack: Api) -> None:
    layout = {"kind": "layout", "entity": "contact", "list": {"sort": ["-updated_at"]}}

    response = pack.put("/meta/layouts/contact", json=layout)

    assert response.status_code == 201, response.json


def test_a_form_holds_at_most_fifty_sections(pack: Api) -> None:
    sections = [{"items": [{"field": "title"}]} for _ in range(17)]
    tabs = [{"label": f"Tab {n}", "sections": copy.deepcopy(sections)} for n in "ABC"]
    layout = {"kind": "layout", "entity": "opportunity", "form": {"tabs": tabs}}

    response = pack.put("/meta/layouts/opportunity", json=layout)

    assert response.status_code == 422
    assert ("form", "too_many_sections") in [
        (e["field"], e["code"]) for e in response.json["errors"]
    ]


def test_unknown_field_is_refused_and_nothing_changes(pack: Api) -> None:
    before = revision(pack)
    layout = sample_layout("opportunity")
    layout["list"]["columns"].append("margin")

    response = pack.put("/meta/layouts/opportunity", json=layout)

    assert response.status_code == 422
    assert response.json["errors"] == [
        {
            "field": "list.columns[5]",
            "code": "unknown_field",
            "message": "Opportunity has no field 'margin'.",
        }
    ]
    assert revision(pack) == before
    after = pack.get("/meta/layouts/opportunity")
    assert after.headers["X-Tailorcrm-Layout-Generated"] == "true"


def test_a_bad_layout_refuses_the_entity_change_applied_with_it(
    pack: Api, sales: Platform
) -> None:
    account = entity_document(pack, "account")
    account["fields"].append({"name": "tier", "type": "text", "label": "Tier"})
    layout = {"kind": "layout", "entity": "account", "list": {"columns": ["tiers"]}}

    with pytest.raises(InvalidMetadata) as excinfo:
        sales.store.apply(
            [("account.json", account), ("layouts/account.json", layout)],
            actor="test",
        )

    assert [p.field for p in excinfo.value.problems] == [
        "layouts/account.json: list.columns[0]"
    ]
    names = [f["name"] for f in entity_document(pack, "account")["fields"]]
    assert "tier" not in names


def test_a_layout_may_name_a_field_added_in_the_same_change(
    pack: Api, sales: Platform
) -> None:
    before = revision(pack)
    account = entity_document(pack, "account")
    account["fields"].append({"name": "tier", "type": "text", "label": "Tier"})
    layout = {"kind": "layout", "entity": "account", "list": {"columns": ["tier"]}}

    result = sales.store.apply(
        [("layouts/account.json", layout), ("account.json", account)], actor="test"
    )

    assert result.revision == before + 1
    assert result.plan.describe() == [
        "add_column account.tier type=text",
        "set_layout account",
    ]
    assert stored_layout(pack, "account") == layout


# -- generated layouts -------------------------------------------------------------


def test_generated_layout_of_the_sample_opportunity(pack: Api) -> None:
    response = pack.get("/meta/layouts/opportunity")

    assert response.headers["X-Tailorcrm-Layout-Generated"] == "true"
    assert response.headers["ETag"] == '"0"'
    main_fields = [
        "title",
        "account",
        "stage",
        "amount",
        "close_date",
        "erp_code",
        "product",
        "probability",
        "next_step",
        "weighted_amount",
    ]
    assert response.json == {
        "kind": "layout",
        "entity": "opportunity",
        "form": {
            "tabs": [
                {
                    "label": "Details",
                    "sections": [
                        {
                            "label": "Opportunity",
                            "columns": 2,
                            "collapsible": False,
                            "collapsed": False,
                            "items": [{"field": name} for name in main_fields],
                        },
                        {
                            "label": "Loss reason",
                            "columns": 1,
                            "collapsible": False,
                            "collapsed": False,
                            "items": [{"field": "loss_reason"}],
                        },
                        {
                            "label": "Activities",
                            "columns": 1,
                            "collapsible": False,
                            "collapsed": False,
                            "items": [
                                {
                                    "related": {
                                        "entity": "activity",
                                        "field": "opportunity",
                                    },
                                    "label": "Activities",
                                    "columns": ["subject", "kind", "due_at", "done"],
                                }
                            ],
                        },
                    ],
                }
            ]
        },
        "list": {
            "columns": [
                "title",
                "account",
                "stage",
                "amount",
                "close_date",
                "erp_code",
            ],
            "sort": ["title"],
            "page_size": 25,
        },
    }


@pytest.mark.parametrize(
    ("entity", "sections", "columns"),
    [
        (
            "account",
            [
                "Account",
                "Notes",
                "Accounts (Parent account)",
                "Activities",
                "Contacts",
                "Opportunities",
            ],
            [
                "name",
                "account_number",
                "industry",
                "annual_revenue",
                "employees",
                "website",
            ],
        ),
        (
            "contact",
            ["Contact", "Activities"],
            ["full_name", "first_name", "last_name", "email", "phone", "title"],
        ),
        (
            "activity",
            ["Activity", "Notes"],
            ["subject", "kind", "due_at", "done", "account", "contact"],
        ),
        (
            "product",
            ["Product", "Opportunities"],
            ["name", "product_code", "family", "list_price", "active"],
        ),
        (
            "sales_lead",
            ["Lead"],
            ["full_name", "company", "email", "phone", "status", "source"],
        ),
    ],
)
def test_generated_layouts_of_the_other_sample_entities(
    pack: Api, entity: str, sections: list[str], columns: list[str]
) -> None:
    layout = pack.get(f"/meta/layouts/{entity}").json

    assert section_labels(layout) == sections
    assert layout["list"]["columns"] == columns


def test_an_entity_created_a_minute_ago_has_a_generated_layout(pack: Api) -> None:
    project = {
        "name": "project",
        "label": "Project",
        "label_plural": "Projects",
        "fields": [
            {"name": "name", "type": "text", "label": "Name"},
            {
                "name": "account",
                "type": "lookup",
                "target": "account",
                "label": "Client",
            },
            {"name": "budget", "type": "currency", "label": "Budget"},
            {"name": "summary", "type": "textarea", "label": "Summary"},
            {
                "name": "tags",
                "type": "multi_picklist",
                "label": "Tags",
                "options": [{"value": "internal", "label": "Internal"}],
            },
        ],
    }
    assert pack.put("/meta/entities/project", json=project).status_code == 201

    layout = pack.get("/meta/layouts/project").json
    account = pack.get("/meta/layouts/account").json

    assert section_labels(layout) == ["Project", "Summary"]
    assert _first_section(layout)["items"] == [
        {"field": name} for name in ("name", "account", "budget", "tags")
    ]
    assert layout["list"] == {
        "columns": ["name", "account", "budget", "tags"],
        "sort": ["-created_at"],
        "page_size": 25,
    }
    related = account["form"]["tabs"][0]["sections"][-1]
    assert related["items"] == [
        {
            "related": {"entity": "project", "field": "account"},
            "label": "Projects",
            "columns": ["name", "budget", "tags"],
        }
    ]


def test_a_partial_layout_is_completed_from_the_generated_one(pack: Api) -> None:
    layout = {"kind": "layout", "entity": "contact", "list": {"columns": ["email"]}}
    pack.put("/meta/layouts/contact", json=layout)

    stored = pack.get("/meta/layouts/contact")
    effective = pack.get("/meta/layouts/contact?effective=1").json

    assert stored.json == layout
    assert stored.headers["X-Tailorcrm-Layout-Generated"] == "false"
    assert section_labels(effective) == ["Contact", "Activities"]
    assert effective["list"] == {
        "columns": ["email"],
        "sort": ["full_name"],
        "page_size": 25,
    }


def test_catalog_layout_drops_what_is_no_longer_live() -> None:
    stored = [plan_entity(None, document)[0] for _, document in load_pack()]
    stale = sample_layout("opportunity")
    stale["form"]["tabs"][0]["sections"][0]["items"].insert(0, {"field": "margin"})
    stale["form"]["tabs"][0]["sections"][2]["items"] = [{"field": "gone"}]
    stale["form"]["tabs"][0]["sections"][3]["items"][0]["related"]["entity"] = "task"
    stale["list"] = {"columns": ["margin"], "sort": ["-margin"], "page_size": 50}
    catalog = build_catalog(1, stored, {"opportunity": stale})

    layout = catalog.layout("opportunity")

    assert section_labels(layout) == ["Deal", "Pipeline"]
    assert _first_section(layout)["items"][0] == {"field": "title"}
    assert layout["list"] == {
        "columns": ["title", "account", "stage", "amount", "close_date", "erp_code"],
        "sort": ["title"],
        "page_size": 50,
    }
    assert catalog.layout("account") == generated_layout(
        catalog.entity("account"), catalog
    )


def test_rewrite_swaps_two_renamed_fields() -> None:
    layout = sample_layout("opportunity")

    rewritten = rewrite_layout(
        layout, {"opportunity": {"title": "account", "account": "title"}}
    )

    assert _first_section(rewritten)["items"][:2] == [
        {"field": "account"},
        {"field": "title"},
    ]
    assert rewritten["list"]["sort"] == ["-close_date", "account"]
    assert layout == sample_layout("opportunity")


# -- storage and API ---------------------------------------------------------------


def test_put_get_delete_with_etags_and_history(pack: Api) -> None:
    layout = sample_layout("opportunity")

    created = pack.put("/meta/layouts/opportunity", json=layout)
    etag = created.headers["ETag"]
    stale = pack.put(
        "/meta/layouts/opportunity", json=layout, headers={"If-Match": '"0"'}
    )
    layout["list"]["page_size"] = 50
    changed = pack.put(
        "/meta/layouts/opportunity", json=layout, headers={"If-Match": etag}
    )
    read = pack.get("/meta/layouts/opportunity")
    refused_delete = pack.delete(
        "/meta/layouts/opportunity", headers={"If-Match": etag}
    )
    deleted = pack.delete(
        "/meta/layouts/opportunity", headers={"If-Match": read.headers["ETag"]}
    )
    after = pack.get("/meta/layouts/opportunity")
    history = pack.get("/meta/layouts/opportunity/history").json["data"]

    assert created.status_code == 201, created.json
    assert created.json["steps"] == ["set_layout opportunity"]
    assert created.json["document"] == sample_layout("opportunity")
    assert stale.status_code == 412
    assert changed.status_code == 200
    assert read.json["list"]["page_size"] == 50
    assert read.headers["ETag"] == f'"{changed.json["revision"]}"'
    assert read.headers["X-Tailorcrm-Layout-Generated"] == "false"
    assert refused_delete.status_code == 412
    assert deleted.status_code == 200
    assert deleted.json["steps"] == ["remove_layout opportunity"]
    assert after.headers["X-Tailorcrm-Layout-Generated"] == "true"
    assert after.headers["ETag"] == '"0"'
    assert pack.delete("/meta/layouts/opportunity").status_code == 404
    assert [entry["revision"] for entry in history] == [
        deleted.json["revision"],
        changed.json["revision"],
        created.json["revision"],
    ]
    assert history[0]["after"] is None
    assert history[2]["before"] is None


def test_put_fills_kind_and_entity_and_refuses_another_entity(pack: Api) -> None:
    body = {"list": {"page_size": 100}}

    created = pack.put("/meta/layouts/product", json=body)
    mismatch = pack.put("/meta/layouts/product", json={"entity": "account", "list": {}})
    not_object = pack.put("/meta/layouts/product", json=[1])

    assert created.status_code == 201
    assert created.json["document"] == {
        "list": {"page_size": 100},
        "kind": "layout",
        "entity": "product",
    }
    assert mismatch.status_code == 400
    assert not_object.status_code == 422


def test_dry_run_stores_nothing(pack: Api) -> None:
    response = pack.put(
        "/meta/layouts/opportunity?dry_run=1", json=sample_layout("opportunity")
    )

    assert response.status_code == 200
    assert response.json["applied"] is False
    assert response.json["steps"] == ["set_layout opportunity"]
    generated = pack.get("/meta/layouts/opportunity")
    assert generated.headers["X-Tailorcrm-Layout-Generated"] == "true"


def test_non_admins_read_layouts_but_cannot_change_them(
    pack: Api, app: Any, platform: Platform
) -> None:
    from tailorcrm.platform.auth import create_token, create_user

    with platform.engine.begin() as connection:
        seller = create_user(connection, "seller", "seller-password")
        token = create_token(connection, seller)
    other = Api(app.test_client(), token)
    grant_all(platform, "seller")

    assert other.get("/meta/layouts/account").status_code == 200
    assert other.put("/meta/layouts/account", json={"list": {}}).status_code == 403
    assert other.delete("/meta/layouts/account").status_code == 403
    assert other.get("/meta/layouts/account/history").status_code == 403


def test_a_stored_layout_is_seen_by_another_process(
    pack: Api, database_url: str, admin_token: str
) -> None:
    other_app = create_app({"database_url": database_url, "secret_key": "other"})
    other = Api(other_app.test_client(), admin_token)
    assert other.get("/meta/layouts/opportunity").json["list"]["page_size"] == 25

    layout = {"kind": "layout", "entity": "opportunity", "list": {"page_size": 100}}
    pack.put("/meta/layouts/opportunity", json=layout)

    seen = other.get("/meta/layouts/opportunity?effective=1").json
    assert seen["list"]["page_size"] == 100
    other_app.extensions["tailorcrm"].engine.dispose()


def test_unknown_entity_layout_is_404(pack: Api) -> None:
    assert pack.get("/meta/layouts/deal").status_code == 404


# -- rewrites after entity changes -------------------------------------------------


def test_field_rename_rewrites_the_layout_in_the_same_revision(laid_out: Api) -> None:
    document = entity_document(laid_out, "opportunity")
    for field in document["fields"]:
        if field["name"] == "close_date":
            field["name"] = "expected_close"

    response = laid_out.put("/meta/entities/opportunity", json=document)
    layout = stored_layout(laid_out, "opportunity")
    account = stored_layout(laid_out, "account")
    history = laid_out.get("/meta/layouts/opportunity/history").json["data"]

    assert response.json["steps"] == [
        "rename_field opportunity.expected_close old=close_date",
        "update_layout account",
        "update_layout opportunity",
    ]
    assert account["form"]["tabs"][1]["sections"][1]["items"][0]["columns"] == [
        "title",
        "stage",
        "amount",
        "expected_close",
    ]
    assert layout["form"]["tabs"][0]["sections"][1]["items"][2] == {
        "field": "expected_close"
    }
    assert layout["list"]["columns"][-1] == "expected_close"
    assert layout["list"]["sort"] == ["-expected_close", "title"]
    assert history[0]["revision"] == response.json["revision"]
    assert history[0]["before"] == sample_layout("opportunity")
    assert history[0]["after"] == layout


def test_field_removal_drops_it_and_the_sections_it_emptied(laid_out: Api) -> None:
    document = entity_document(laid_out, "opportunity")
    document["fields"] = [
        f for f in document["fields"] if f["name"] not in ("loss_reason", "close_date")
    ]

    laid_out.put("/meta/entities/opportunity", json=document)
    layout = stored_layout(laid_out, "opportunity")

    assert section_labels(layout) == ["Deal", "Pipeline", "Activities"]
    assert layout["list"] == {
        "columns": ["title", "account", "stage", "amount"],
        "sort": ["title"],
        "page_size": 25,
    }


def test_removing_a_referrer_lookup_drops_its_related_lists(laid_out: Api) -> None:
    document = entity_document(laid_out, "activity")
    document["fields"] = [f for f in document["fields"] if f["name"] != "opportunity"]

    response = laid_out.put("/meta/entities/activity", json=document)

    assert response.json["steps"] == [
        "hide_field activity.opportunity",
        "update_layout activity",
        "update_layout opportunity",
    ]
    assert section_labels(stored_layout(laid_out, "opportunity")) == [
        "Deal",
        "Pipeline",
        "Why we lost",
    ]
    assert section_labels(stored_layout(laid_out, "activity")) == [
        "Activity",
        "Related to",
        "Notes",
    ]


def test_removing_an_entity_removes_its_layout_and_related_lists(
    laid_out: Api,
) -> None:
    response = laid_out.delete("/meta/entities/activity")
    history = laid_out.get("/meta/layouts/activity/history").json["data"]
    account = stored_layout(laid_out, "account")
    contact = stored_layout(laid_out, "contact")

    assert response.json["steps"] == [
        "hide_entity activity",
        "remove_layout activity",
        "update_layout account",
        "update_layout contact",
        "update_layout opportunity",
    ]
    assert history[0]["after"] is None
    assert history[0]["revision"] == response.json["revision"]
    assert [tab["label"] for tab in account["form"]["tabs"]] == ["Details", "Related"]
    assert section_labels(account)[3:] == ["Contacts", "Opportunities", "Subsidiaries"]
    assert [tab["label"] for tab in contact["form"]["tabs"]] == ["Details"]


def test_a_layout_change_alone_does_not_touch_entities(laid_out: Api) -> None:
    entities = laid_out.get("/meta/entities").json["data"]
    layout = sample_layout("product")
    layout["list"]["page_size"] = 10

    laid_out.put("/meta/layouts/product", json=layout)

    assert laid_out.get("/meta/entities").json["data"] == entities


# -- command line ------------------------------------------------------------------


@pytest.fixture
def run(database_url: str) -> CliRunner:
    return CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})


def read_folder(folder: Path) -> dict[str, Any]:
    return {
        path.relative_to(folder).as_posix(): json.loads(path.read_text())
        for path in folder.rglob("*.json")
    }


def test_meta_apply_takes_entities_and_layouts_in_one_revision(run: CliRunner) -> None:
    result = run.invoke(main, ["meta", "apply", str(SALES_PACK)])

    assert result.exit_code == 0, result.output
    assert "  set_layout opportunity" in result.output
    assert "Revision 1." in result.output


def test_export_then_apply_round_trips_layouts(run: CliRunner, tmp_path: Path) -> None:
    run.invoke(main, ["meta", "apply", str(SALES_PACK)])

    exported = run.invoke(main, ["meta", "export", str(tmp_path / "first")])
    again = run.invoke(main, ["meta", "apply", str(tmp_path / "first")])
    fresh = {"TAILORCRM_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    applied = run.invoke(main, ["meta", "apply", str(tmp_path / "first")], env=fresh)
    run.invoke(main, ["meta", "export", str(tmp_path / "second")], env=fresh)

    assert exported.exit_code == 0, exported.output
    files = read_folder(tmp_path / "first")
    assert {name: files[name] for name in files if name.startswith("layouts/")} == {
        f"layouts/{path.name}": json.loads(path.read_text())
        for path in LAYOUTS.iterdir()
    }
    assert again.output == "Nothing to change.\n"
    assert applied.exit_code == 0, applied.output
    assert read_folder(tmp_path / "second") == files


def test_meta_apply_reports_layout_problems_by_file(
    run: CliRunner, tmp_path: Path
) -> None:
    run.invoke(main, ["meta", "apply", str(SALES_PACK)])
    layout = sample_layout("product")
    layout["list"]["columns"] = ["price"]
    (tmp_path / "layouts").mkdir()
    (tmp_path / "layouts" / "product.json").write_text(json.dumps(layout))

    result = run.invoke(main, ["meta", "apply", str(tmp_path)])

    assert result.exit_code == 1
    assert "layouts/product.json: list.columns[0]: Product has no field 'price'." in (
        result.output
    )


def test_meta_apply_reports_the_problems_of_every_kind_at_once(
    run: CliRunner, tmp_path: Path
) -> None:
    run.invoke(main, ["meta", "apply", str(SALES_PACK)])
    layout = sample_layout("product")
    layout["list"]["columns"] = ["price"]
    role = {
        "kind": "role",
        "name": "buyer",
        "label": "Buyer",
        "entities": {"product": {"read": "everywhere"}},
    }
    rule = {
        "kind": "rule",
        "name": "cheap",
        "type": "validation",
        "entity": "product",
        "condition": {"<": [{"var": "cost"}, 0]},
        "message": "No.",
    }
    for folder, name, document in (
        ("layouts", "product", layout),
        ("roles", "buyer", role),
        ("rules", "cheap", rule),
    ):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{name}.json").write_text(json.dumps(document))
    before = run.invoke(main, ["meta", "export", str(tmp_path / "before")])

    result = run.invoke(main, ["meta", "apply", str(tmp_path)])

    assert before.exit_code == 0, before.output
    assert result.exit_code == 1
    for place in ("layouts/product.json:", "roles/buyer.json:", "rules/cheap.json:"):
        assert place in result.output, result.output
    run.invoke(main, ["meta", "export", str(tmp_path / "after")])
    assert read_folder(tmp_path / "after") == read_folder(tmp_path / "before")


def _token(output: str) -> str:
    return output.split("API token: ")[1].split()[0]


def test_init_demo_installs_missing_layouts_only(
    run: CliRunner, database_url: str
) -> None:
    first = run.invoke(main, ["init", "--demo"])
    api = Api(
        create_app({"database_url": database_url}).test_client(), _token(first.output)
    )
    api.delete("/meta/layouts/account")

    again = run.invoke(main, ["init", "--demo"])

    assert "Installed sales pack layouts: account, activity, contact" in first.output
    assert again.exit_code == 0, again.output
    assert "Installed sales pack layouts" not in again.output
    assert "Kept the generated layouts" not in again.output
    generated = api.get("/meta/layouts/account")
    assert generated.headers["X-Tailorcrm-Layout-Generated"] == "true"
    assert stored_layout(api, "opportunity") == sample_layout("opportunity")


def test_init_demo_keeps_generated_layouts_that_do_not_fit(
    run: CliRunner, platform: Platform
) -> None:
    # A database made before Account had its notes field.
    documents = load_pack()
    for _, document in documents:
        if document["name"] == "account":
            document["fields"] = [f for f in document["fields"] if f["name"] != "notes"]
    platform.store.apply(documents, actor="test")

    result = run.invoke(main, ["init", "--demo"])

    assert result.exit_code == 0, result.output
    assert "Kept the generated layouts of account" in result.output
    assert "Installed sales pack layouts: activity, contact, opportunity" in (
        result.output
    )


def test_a_required_field_the_layout_leaves_out_shows_in_other_fields(
    laid_out: Api,
) -> None:
    document = laid_out.get("/meta/entities/opportunity").json
    document["fields"] += [
        {"name": "region", "type": "text", "label": "Region", "required": True},
        {"name": "source", "type": "text", "label": "Source"},
        {"name": "team", "type": "text", "label": "Team", "required": True,
         "default": "inside"},
    ]  # fmt: skip
    laid_out.put("/meta/entities/opportunity", json=document)

    layout = laid_out.get("/meta/layouts/opportunity?effective=1").json

    last = layout["form"]["tabs"][-1]["sections"][-1]
    assert last["label"] == "Other fields"
    assert last["items"] == [{"field": "region"}]


def test_a_field_a_validation_rule_refuses_shows_in_other_fields_when_left_out(
    laid_out: Api,
) -> None:
    # An admin adds a field and a validation rule on it, as RULES.md shows, and
    # leaves the stored layout as it was: the form must still offer the field,
    # or no lost deal could be saved from it.
    document = laid_out.get("/meta/entities/opportunity").json
    document["fields"] += [
        {"name": "rival", "type": "text", "label": "Rival"},
        {"name": "source", "type": "text", "label": "Source"},
    ]
    laid_out.put("/meta/entities/opportunity", json=document)
    lost_without_rival = {
        "and": [
            {"==": [{"var": "stage"}, "lost"]},
            {"is_blank": {"var": "rival"}},
        ]
    }
    response = laid_out.put(
        "/meta/rules/rival_required",
        json={"kind": "rule", "name": "rival_required", "entity": "opportunity",
              "type": "validation", "label": "Rival when lost",
              "condition": lost_without_rival, "message": "Name the rival.",
              "field": "rival"},
    )  # fmt: skip
    assert response.status_code == 201, response.json

    layout = laid_out.get("/meta/layouts/opportunity?effective=1").json

    last = layout["form"]["tabs"][-1]["sections"][-1]
    assert last["label"] == "Other fields"
    assert last["items"] == [{"field": "rival"}]


def test_a_field_a_rule_can_require_shows_in_other_fields_when_left_out(
    laid_out: Api,
) -> None:
    document = laid_out.get("/meta/entities/opportunity").json
    document["fields"] += [
        {"name": "region", "type": "text", "label": "Region", "required": True},
        {"name": "rival", "type": "text", "label": "Rival"},
        {"name": "source", "type": "text", "label": "Source"},
    ]
    laid_out.put("/meta/entities/opportunity", json=document)
    lost = {"==": [{"var": "stage"}, "lost"]}
    rules = {
        "rival_when_lost": {"field": "rival", "required_if": lost},
        "source_when_lost": {"field": "source", "visible_if": lost},
    }
    for name, parts in rules.items():
        response = laid_out.put(
            f"/meta/rules/{name}",
            json={"kind": "rule", "name": name, "entity": "opportunity",
                  "type": "field_state", "label": name, **parts},
        )  # fmt: skip
        assert response.status_code == 201, response.json

    layout = laid_out.get("/meta/layouts/opportunity?effective=1").json

    last = layout["form"]["tabs"][-1]["sections"][-1]
    assert last["label"] == "Other fields"
    assert last["items"] == [{"field": "region"}, {"field": "rival"}]
