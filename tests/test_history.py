"""Field history of records and the metadata revisions, through every write path.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture behind
``platform`` and ``api``). Names are invented.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tailorcrm.errors import ValidationFailed
from tailorcrm.platform import Platform, cascade, fieldhistory
from tailorcrm.platform.auth import create_token, create_user
from tailorcrm.platform.db import field_history
from tailorcrm.platform.fieldhistory import read_history
from tailorcrm.platform.importer import import_csv
from tailorcrm.platform.records import SYSTEM_ACTOR, Actor, RecordService
from tests.conftest import Api, grant_all
from tests.rules_support import (
    ACCOUNT,
    OPPORTUNITY,
    OPPORTUNITY_INDUSTRY,
    WON_TOTAL,
    create,
    define,
    rule,
)
from tests.web_helpers import PASSWORD, Browser, sign_in, text_of, token_of

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PROJECT = {
    "name": "project",
    "label": "Project",
    "display_field": "title",
    "fields": [
        {"name": "title", "type": "text", "label": "Title"},
        {"name": "budget", "type": "integer", "label": "Budget"},
    ],
}


@pytest.fixture
def crm(api: Api) -> Api:
    define(api, ACCOUNT, OPPORTUNITY)
    return api


def history(api: Api, entity: str, record_id: int, **args: Any) -> list[Any]:
    response = api.get(f"/{entity}/{record_id}/history", query_string=args)
    assert response.status_code == 200, response.json
    entries: list[Any] = response.json["data"]
    return entries


def brief(entries: list[Any]) -> list[tuple[Any, ...]]:
    """Each entry as (kind, field, old, new, via, username)."""
    return [
        (e["kind"], e["field"], e["old"], e["new"], e["via"], e["user"]["username"])
        for e in entries
    ]


def other_user(platform: Platform, app: Flask, *, admin: bool = False) -> Api:
    """The API as a second user, ``lena.moss``, with a token of every scope."""
    with platform.engine.begin() as connection:
        user = create_user(connection, "lena.moss", PASSWORD, is_admin=admin)
        token = create_token(connection, user)
    if not admin:
        grant_all(platform, "lena.moss")
    return Api(app.test_client(), token)


def sign_in_plain(app: Flask, platform: Platform) -> Browser:
    """Sign in a user who is not an administrator."""
    with platform.engine.begin() as connection:
        create_user(connection, "otto.brandt", PASSWORD)
    grant_all(platform, "otto.brandt")
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    client.post(
        "/login",
        data={"username": "otto.brandt", "password": PASSWORD, "csrf_token": token},
    )
    return Browser(client, platform)


# -- the write paths ----------------------------------------------------------------


def test_an_api_save_notes_each_changed_field_with_its_user(crm: Api) -> None:
    account = create(crm, "account", name="Harbour Mill", tier="standard")

    crm.patch(f"/account/{account['id']}", json={"name": "Harbour Mills"})
    crm.patch(
        f"/account/{account['id']}", json={"tier": "gold", "name": "Harbour Mills"}
    )
    crm.patch(f"/account/{account['id']}", json={"tier": "gold"})

    entries = history(crm, "account", account["id"])
    assert brief(entries) == [
        ("update", "tier", "standard", "gold", "api", "admin"),
        ("update", "name", "Harbour Mill", "Harbour Mills", "api", "admin"),
        ("create", None, None, None, "api", "admin"),
    ]
    assert {e["user"]["id"] for e in entries} == {account["created_by"]}
    assert all(e["at"].endswith("Z") for e in entries)


def test_values_are_kept_in_their_json_form(crm: Api) -> None:
    deal = create(crm, "opportunity", title="Quay", amount=10.5)

    crm.patch(
        f"/opportunity/{deal['id']}",
        json={"amount": 12, "close_date": "2031-04-05", "stage": "won"},
    )

    entries = history(crm, "opportunity", deal["id"])
    changes = {e["field"]: (e["old"], e["new"]) for e in entries[:3]}
    assert changes == {
        "amount": (10.5, 12),
        "close_date": (None, "2031-04-05"),
        "stage": ("prospecting", "won"),
    }


def test_a_form_save_is_noted_as_web(app: Flask, platform: Platform, api: Api) -> None:
    define(api, ACCOUNT)
    browser = sign_in(app, platform, "greta.holm")
    browser.get("/app/account/new")

    created = browser.post("/app/account/new", {"name": "Birch Yard"})
    record_id = int(created.headers["Location"].rsplit("/", 1)[1])
    browser.get(f"/app/account/{record_id}/edit")
    browser.post(
        f"/app/account/{record_id}/edit", {"name": "Birch Yards", "_version": "1"}
    )

    assert brief(history(api, "account", record_id)) == [
        ("update", "name", "Birch Yard", "Birch Yards", "web", "greta.holm"),
        ("create", None, None, None, "web", "greta.holm"),
    ]


def test_an_import_notes_one_row_per_new_record_and_each_changed_field(
    platform: Platform, crm: Api
) -> None:
    first = create(crm, "opportunity", title="Fjord", erp_code="F-1")
    actor = Actor(user_id=first["created_by"], username="admin", is_admin=True)
    text = "erp_code,title,stage\nF-1,Fjord,won\nF-2,Alder,\nF-3,Cobalt,\n"

    report = import_csv(
        platform, "opportunity", io.BytesIO(text.encode()), actor=actor, key="erp_code"
    )

    assert (report.created, report.updated) == (2, 1)
    assert brief(history(crm, "opportunity", first["id"])) == [
        ("update", "stage", "prospecting", "won", "import", "admin"),
        ("create", None, None, None, "api", "admin"),
    ]
    with platform.engine.connect() as connection:
        noted = connection.execute(
            sa.select(
                field_history.c.kind,
                field_history.c.field,
                field_history.c.user_id,
                field_history.c.username,
            )
            .where(field_history.c.via == "import")
            .order_by(field_history.c.id)
        ).all()
        times = connection.execute(sa.select(field_history.c.at)).scalars().all()
    user_id = first["created_by"]
    assert noted == [
        ("update", "stage", user_id, "admin"),
        ("create", None, user_id, "admin"),
        ("create", None, user_id, "admin"),
    ]
    assert all(isinstance(at, dt.datetime) for at in times)


def test_a_save_made_by_an_automation_is_noted_as_automation(crm: Api) -> None:
    touch = rule(
        "first_touch",
        "opportunity",
        "automation",
        trigger="create",
        actions=[{"type": "set_field", "field": "touches", "value": 1}],
    )
    define(crm, touch)

    deal = create(crm, "opportunity", title="Kestrel")

    assert brief(history(crm, "opportunity", deal["id"])) == [
        ("update", "touches", None, 1, "automation", "admin"),
        ("create", None, None, None, "api", "admin"),
    ]


def test_values_recomputed_by_roll_ups_and_formulas_are_noted_as_rule(
    crm: Api,
) -> None:
    define(crm, WON_TOTAL, OPPORTUNITY_INDUSTRY)
    account = create(crm, "account", name="Granite Bay", industry="retail")
    deal = create(crm, "opportunity", title="Slate", account=account["id"])

    crm.patch(f"/opportunity/{deal['id']}", json={"stage": "won", "amount": 300})
    crm.patch(f"/account/{account['id']}", json={"industry": "energy"})

    assert brief(history(crm, "account", account["id"])) == [
        ("update", "industry", "retail", "energy", "api", "admin"),
        ("update", "won_total", 0, 300, "rule", "admin"),
        ("create", None, None, None, "api", "admin"),
    ]
    assert brief(history(crm, "opportunity", deal["id"]))[:2] == [
        ("update", "industry", "retail", "energy", "rule", "admin"),
        ("update", "stage", "prospecting", "won", "api", "admin"),
    ]


def patch_noting_history(
    platform: Platform, api: Api, path: str, change: dict[str, Any]
) -> tuple[Any, list[Any]]:
    """PATCH ``change`` to the API's ``path``; return the response and the
    parameters of each statement that wrote field history."""
    inserts: list[Any] = []

    def seen(*arguments: Any) -> None:
        if str(arguments[2]).startswith("INSERT INTO tc_field_history"):
            inserts.append(arguments[3])

    sa.event.listen(platform.engine, "before_cursor_execute", seen)
    try:
        response = api.patch(path, json=change)
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", seen)
    return response, inserts


def numbered_fields(name: str, kind: str, field: str, count: int) -> dict[str, Any]:
    """An entity ``name`` with ``count`` fields of type ``kind``, called
    ``field_01`` onwards."""
    return {
        "name": name,
        "label": name.title(),
        "fields": [
            {"name": f"{field}_{n:02d}", "type": kind, "label": f"{field} {n}"}
            for n in range(1, count + 1)
        ],
    }


#: An entity with more fields than the history rows bound into one insert.
SURVEY = numbered_fields("survey", "text", "answer", 40)


@pytest.mark.parametrize("changed", [2, 8, 9, 40])
def test_a_save_of_many_fields_notes_each_in_one_statement_in_order(
    platform: Platform, api: Api, changed: int
) -> None:
    define(api, SURVEY)
    answers = {f"answer_{number:02d}": f"first {number}" for number in range(1, 41)}
    answers["answer_02"] = None
    survey = create(api, "survey", **answers)
    change = {
        f"answer_{number:02d}": f"second {number}" if number != 3 else None
        for number in range(1, changed + 1)
    }

    response, inserts = patch_noting_history(
        platform, api, f"/survey/{survey['id']}", change
    )

    assert response.status_code == 200, response.json
    assert len(inserts) == 1
    entries = history(api, "survey", survey["id"], limit=200)
    expected = [
        ("update", name, answers[name], value, "api", "admin")
        for name, value in change.items()
    ]
    # Newest first: the fields of one save in the order the entity lists them.
    assert brief(entries) == [*expected, ("create", None, None, None, "api", "admin")]


#: Values of every JSON kind, for the history to keep as they are.
LEDGER = {
    "name": "ledger",
    "label": "Ledger",
    "fields": [
        {"name": "memo", "type": "textarea", "label": "Memo"},
        {"name": "units", "type": "integer", "label": "Units"},
        {
            "name": "rate",
            "type": "decimal",
            "label": "Rate",
            "precision": 15,
            "scale": 4,
        },
        {"name": "settled", "type": "boolean", "label": "Settled"},
        {"name": "due_at", "type": "datetime", "label": "Due at"},
        {
            "name": "tags",
            "type": "multi_picklist",
            "label": "Tags",
            "options": [
                {"value": "north", "label": "North"},
                {"value": "south", "label": "South"},
            ],
        },
    ],
}


def test_values_of_every_kind_and_character_come_back_from_the_history(
    api: Api,
) -> None:
    define(api, LEDGER)
    entry = create(api, "ledger", memo="plain", units=1, rate="0.5", settled=False)
    change = {
        "memo": 'Zoë said "ok" \\ then left\nline two ✓ 𝄞',
        "units": 9_007_199_254_740_993,
        "rate": "12.3456",
        "settled": True,
        "due_at": "2031-02-03T04:05:06.789012Z",
        "tags": ["north", "south"],
    }

    response = api.patch(f"/ledger/{entry['id']}", json=change)

    assert response.status_code == 200, response.json
    noted = {
        e["field"]: (e["old"], e["new"])
        for e in history(api, "ledger", entry["id"])[:6]
    }
    assert noted == {
        "memo": ("plain", change["memo"]),
        "units": (1, 9_007_199_254_740_993),
        "rate": (Decimal("0.5"), Decimal("12.3456")),
        "settled": (False, True),
        "due_at": (None, "2031-02-03T04:05:06.789012Z"),
        "tags": (None, ["north", "south"]),
    }


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        -7,
        9_007_199_254_740_993,
        10**40,
        1234.5,
        -0.0,
        5e-324,
        1e300,
        float("nan"),
        float("inf"),
        True,
        False,
        "",
        'Zoë "quoted" \\ 𝄞',
        ["north", "south"],
        {"a": 1},
    ],
)
def test_history_values_are_bound_as_the_json_column_binds_them(value: Any) -> None:
    dialect = sa.create_engine("sqlite://").dialect
    json_type = field_history.c.old.type.dialect_impl(dialect)
    bind = json_type.bind_processor(dialect)
    assert bind is not None

    assert fieldhistory._json_text(value) == bind(value)


def test_rows_of_one_save_keep_their_order_across_documents(
    monkeypatch: pytest.MonkeyPatch, api: Api
) -> None:
    # PostgreSQL sends history rows in JSON documents of a bounded size.
    monkeypatch.setattr(fieldhistory, "_ROWS_PER_DOCUMENT", 3)
    define(api, SURVEY)
    survey = create(api, "survey", answer_01="first")
    change = {f"answer_{number:02d}": f"second {number}" for number in range(1, 11)}

    response = api.patch(f"/survey/{survey['id']}", json=change)

    assert response.status_code == 200, response.json
    entries = history(api, "survey", survey["id"])
    assert [(e["field"], e["new"]) for e in entries[:10]] == list(change.items())


#: An entity of long texts, for saves whose history rows are long.
NOTEBOOK = numbered_fields("notebook", "textarea", "page", 6)


def test_long_values_split_a_save_s_rows_into_documents_of_bounded_length(
    monkeypatch: pytest.MonkeyPatch, platform: Platform, api: Api
) -> None:
    # A statement's parameter holds at most 1 GB on PostgreSQL: a thousand rows
    # of long texts would outgrow it. Here the bound is made small.
    monkeypatch.setattr(fieldhistory, "_DOCUMENT_LENGTH", 30_000)
    define(api, NOTEBOOK)
    notebook = create(api, "notebook")
    change = {
        f"page_{number:02d}": f"{number} " + "é" * 9_000 for number in range(1, 7)
    }

    response, inserts = patch_noting_history(
        platform, api, f"/notebook/{notebook['id']}", change
    )

    assert response.status_code == 200, response.json
    documents = [
        value
        for parameters in inserts
        if isinstance(parameters, dict)
        for value in parameters.values()
        if isinstance(value, str)
    ]
    entries = history(api, "notebook", notebook["id"])
    assert [(e["field"], e["new"]) for e in entries[:6]] == list(change.items())
    if platform.engine.dialect.name == "postgresql":
        assert len(documents) > 1
        assert max(len(document) for document in documents) <= 30_000


#: The opportunity's total, from its quantity and unit price.
LINE_TOTAL = rule(
    "line_total",
    "opportunity",
    "formula",
    field="total",
    expression={"*": [{"var": "quantity"}, {"var": "unit_price"}]},
)


def test_a_formula_of_the_saved_record_is_noted_as_rule(crm: Api) -> None:
    define(crm, LINE_TOTAL)
    deal = create(crm, "opportunity", title="Anvil", quantity=2, unit_price=5)

    crm.patch(f"/opportunity/{deal['id']}", json={"quantity": 3})

    assert brief(history(crm, "opportunity", deal["id"]))[:2] == [
        ("update", "quantity", 2, 3, "api", "admin"),
        ("update", "total", 10, 15, "rule", "admin"),
    ]


def test_saves_of_the_system_and_metadata_refills_are_noted_as_system(
    platform: Platform, crm: Api
) -> None:
    with platform.engine.begin() as connection:
        catalog = platform.catalogs.get(connection)
        service = RecordService(connection, catalog, SYSTEM_ACTOR)
        ids, _ = service.create_many(
            "opportunity",
            [{"title": "Reed", "quantity": 2, "unit_price": 4}, {"title": "Rush"}],
        )

    define(crm, LINE_TOTAL)

    assert brief(history(crm, "opportunity", ids[0])) == [
        ("update", "total", None, 8, "system", "system"),
        ("create", None, None, None, "system", "system"),
    ]
    entries = history(crm, "opportunity", ids[1])
    assert {(e["via"], e["user"]["id"]) for e in entries} == {("system", None)}


def test_a_refill_over_many_chunks_writes_each_parent_once_with_its_total(
    monkeypatch: pytest.MonkeyPatch, crm: Api
) -> None:
    monkeypatch.setattr(cascade, "_REFILL_CHUNK", 2)
    lines_total = rule(
        "lines_total",
        "account",
        "rollup",
        field="won_total",
        relation={"entity": "opportunity", "lookup": "account"},
        function="sum",
        of="total",
    )
    define(crm, lines_total)
    account = create(crm, "account", name="Cedar Reach")
    for title in ("Plank", "Beam", "Joist", "Lath", "Post"):
        create(
            crm,
            "opportunity",
            title=title,
            account=account["id"],
            quantity=2,
            unit_price=5,
        )

    define(crm, LINE_TOTAL)

    assert brief(history(crm, "account", account["id"]))[:2] == [
        ("update", "won_total", 0, 50, "system", "system"),
        ("create", None, None, None, "api", "admin"),
    ]
    assert crm.get(f"/account/{account['id']}").json["version"] == 2


def test_a_refused_save_notes_nothing_and_the_next_one_only_itself(
    platform: Platform, crm: Api
) -> None:
    define(crm, WON_TOTAL)
    account = create(crm, "account", name="Basalt Point")
    big = {"account": account["id"], "stage": "won", "amount": "600000000000"}
    create(crm, "opportunity", title="Quarry", **big)

    with platform.engine.begin() as connection:
        catalog = platform.catalogs.get(connection)
        service = RecordService(connection, catalog, SYSTEM_ACTOR)
        savepoint = connection.begin_nested()
        # The account's total would outgrow its field.
        with pytest.raises(ValidationFailed):
            service.create("opportunity", {**big, "title": "Second quarry"})
        savepoint.rollback()
        kept = service.create("opportunity", {**big, "title": "Gravel", "amount": 5})

    account_entries = brief(history(crm, "account", account["id"]))
    assert [entry[1:] for entry in account_entries[:2]] == [
        ("won_total", 600000000000, 600000000005, "rule", "system"),
        ("won_total", 0, 600000000000, "rule", "admin"),
    ]
    assert brief(history(crm, "opportunity", kept["id"])) == [
        ("create", None, None, None, "system", "system")
    ]
    with platform.engine.connect() as connection:
        notes = connection.execute(
            sa.select(sa.func.count()).where(field_history.c.entity == "opportunity")
        ).scalar()
    assert notes == 2


# -- deleting -----------------------------------------------------------------------


def test_a_deleted_record_s_history_is_for_administrators_only(
    app: Flask, platform: Platform, crm: Api
) -> None:
    seller = other_user(platform, app)
    account = create(crm, "account", name="Pine Hollow", tier="gold")
    path = f"/account/{account['id']}/history"
    before = seller.get(path)

    crm.delete(f"/account/{account['id']}")

    assert before.status_code == 200
    assert seller.get(path).status_code == 404
    entries = history(crm, "account", account["id"])
    assert [(e["kind"], e["via"]) for e in entries] == [
        ("delete", "api"),
        ("create", "api"),
    ]
    assert entries[0]["old"]["name"] == "Pine Hollow"
    assert entries[0]["old"]["tier"] == "gold"


def test_a_lookup_cleared_by_a_deletion_is_noted(crm: Api) -> None:
    parent = create(crm, "account", name="Oak Group")
    child = create(crm, "account", name="Oak Retail", parent=parent["id"])

    crm.delete(f"/account/{parent['id']}")

    assert brief(history(crm, "account", child["id"]))[0] == (
        "update",
        "parent",
        parent["id"],
        None,
        "api",
        "admin",
    )


# -- reading ------------------------------------------------------------------------


def test_history_comes_in_pages_newest_first(crm: Api) -> None:
    account = create(crm, "account", name="Step 0")
    for step in range(1, 6):
        crm.patch(f"/account/{account['id']}", json={"name": f"Step {step}"})
    whole = history(crm, "account", account["id"])

    pages = []
    response = crm.get(f"/account/{account['id']}/history?limit=2")
    while True:
        pages.append(response.json["data"])
        following = response.json["next"]
        if following is None:
            break
        response = crm.get(following.split("/api/v1", 1)[1])

    assert [len(page) for page in pages] == [2, 2, 2]
    assert [entry for page in pages for entry in page] == whole
    assert [e["new"] for e in whole[:5]] == [f"Step {n}" for n in range(5, 0, -1)]


def test_unknown_records_and_bad_pages_are_refused(crm: Api) -> None:
    account = create(crm, "account", name="Elm Court")

    unknown = crm.get("/account/999/history")
    no_entity = crm.get("/planet/1/history")
    bad_limit = crm.get(f"/account/{account['id']}/history?limit=0")
    bad_cursor = crm.get(f"/account/{account['id']}/history?cursor=abc")

    assert (unknown.status_code, no_entity.status_code) == (404, 404)
    assert unknown.mimetype == "application/problem+json"
    assert (bad_limit.status_code, bad_cursor.status_code) == (400, 400)


def test_a_renamed_field_keeps_its_history_and_a_removed_one_is_for_admins(
    app: Flask, platform: Platform, crm: Api
) -> None:
    seller = other_user(platform, app)
    account = create(crm, "account", name="Ash Lane", notes="call back")
    crm.patch(f"/account/{account['id']}", json={"notes": "called", "tier": "gold"})
    document = crm.get("/meta/entities/account").json
    for spec in document["fields"]:
        if spec["name"] == "tier":
            spec["name"] = "level"
    document["fields"] = [s for s in document["fields"] if s["name"] != "notes"]

    changed = crm.put("/meta/entities/account", json=document)

    assert changed.status_code == 200, changed.json
    path = f"/account/{account['id']}/history"
    assert [e["field"] for e in seller.get(path).json["data"]] == ["level", None]
    assert [e["field"] for e in history(crm, "account", account["id"])] == [
        "level",
        "notes",
        None,
    ]


def test_the_reader_sees_only_the_fields_given(platform: Platform, crm: Api) -> None:
    account = create(crm, "account", name="Cedar Point", tier="standard")
    crm.patch(f"/account/{account['id']}", json={"name": "Cedar Pt", "tier": "gold"})

    with platform.engine.connect() as connection:
        entity = platform.catalogs.get(connection).entity("account")
        page = read_history(connection, entity, account["id"], fields={"tier"})

    assert [(e.kind, e.field) for e in page.entries] == [
        ("update", "tier"),
        ("create", None),
    ]


# -- the record page ------------------------------------------------------------------


def test_the_record_page_shows_its_history_escaped(
    app: Flask, platform: Platform, crm: Api
) -> None:
    browser = sign_in(app, platform, "ines.falk")
    account = create(crm, "account", name="<script>alert(1)</script>", tier="gold")
    crm.patch(f"/account/{account['id']}", json={"name": "Plain", "tier": "standard"})

    page = browser.get(f"/app/account/{account['id']}").get_data(as_text=True)
    full = browser.get(f"/app/account/{account['id']}/history")

    assert 'id="history-heading"' in page
    assert ESCAPED in page
    assert "<script>alert" not in page
    section = page.split('id="history-heading"', 1)[1]
    assert "Gold" in section and "Standard" in section
    assert full.status_code == 200
    assert ESCAPED in full.get_data(as_text=True)
    assert "<script>alert" not in full.get_data(as_text=True)


#: One past the largest id a database row can have.
PAST_RANGE = 2**63


def test_ids_past_the_databases_range_name_nothing(
    app: Flask, platform: Platform, crm: Api
) -> None:
    """Such ids answered 500 on SQLite (which cannot bind them) and 400 on
    PostgreSQL; like a record's, they name nothing."""
    browser = sign_in(app, platform, "ines.falk")
    create(crm, "account", name="Elm Court")

    answers = [
        crm.get(f"/account/{PAST_RANGE}/history").status_code,
        crm.get(f"/meta/revisions/{PAST_RANGE}").status_code,
        crm.get(f"/meta/views/{PAST_RANGE}").status_code,
        crm.put(f"/meta/views/{PAST_RANGE}", json={}).status_code,
        crm.delete(f"/meta/views/{PAST_RANGE}").status_code,
        browser.get(f"/app/account/{PAST_RANGE}/history").status_code,
        browser.get(f"/admin/revisions/{PAST_RANGE}").status_code,
        browser.get(f"/app/account/views/{PAST_RANGE}").status_code,
    ]

    assert answers == [404] * len(answers)


def test_the_record_page_links_to_older_changes(
    app: Flask, platform: Platform, crm: Api
) -> None:
    browser = sign_in(app, platform, "ines.falk")
    account = create(crm, "account", name="Turn 0")
    for turn in range(1, 21):
        crm.patch(f"/account/{account['id']}", json={"name": f"Turn {turn}"})

    page = browser.get(f"/app/account/{account['id']}").get_data(as_text=True)
    full = browser.get(f"/app/account/{account['id']}/history")
    missing = browser.get("/app/account/999/history")

    assert f'href="/app/account/{account["id"]}/history"' in page
    created = 'data-label="What">Created<'
    assert "Turn 20<" in page and created not in page
    assert created in full.get_data(as_text=True)
    assert missing.status_code == 404


# -- metadata revisions ----------------------------------------------------------------


def test_revisions_are_listed_newest_first_for_admins(crm: Api) -> None:
    listed = crm.get("/meta/revisions?limit=1")
    older = crm.get(listed.json["next"].split("/api/v1", 1)[1])
    detail = crm.get("/meta/revisions/1")

    assert [r["id"] for r in listed.json["data"]] == [2]
    assert [r["id"] for r in older.json["data"]] == [1]
    assert older.json["next"] is None
    assert set(listed.json["data"][0]) == {"id", "actor", "at", "summary"}
    assert listed.json["data"][0]["actor"] == "admin"
    assert detail.json["plan"][0]["op"] == "create_table"
    assert [(c["kind"], c["name"], c["before"]) for c in detail.json["changes"]] == [
        ("entity", "account", None)
    ]
    assert detail.json["changes"][0]["after"]["document"]["name"] == "account"
    assert crm.get("/meta/revisions/99").status_code == 404


def test_the_revisions_page_says_roles_are_among_the_documents_it_lists(
    app: Flask, platform: Platform, crm: Api
) -> None:
    admin = sign_in(app, platform, "ines.falk")

    listed = text_of(admin.get("/admin/revisions").get_data(as_text=True))

    assert "Every change to entities, layouts, rules and roles, newest first." in (
        listed
    )


def test_revisions_are_refused_to_other_users(
    app: Flask, platform: Platform, crm: Api
) -> None:
    seller = other_user(platform, app)

    listed = seller.get("/meta/revisions")
    detail = seller.get("/meta/revisions/1")

    assert (listed.status_code, detail.status_code) == (403, 403)


def test_the_revision_pages_are_for_admins_and_linked_for_them_only(
    app: Flask, platform: Platform, crm: Api
) -> None:
    admin = sign_in(app, platform, "ines.falk")
    plain = sign_in_plain(app, platform)

    home = admin.get("/").get_data(as_text=True)
    listed = admin.get("/admin/revisions").get_data(as_text=True)
    detail = admin.get("/admin/revisions/2")
    plain_home = plain.get("/").get_data(as_text=True)

    assert 'href="/admin/revisions"' in home
    assert 'href="/admin/revisions/2"' in listed
    assert detail.status_code == 200
    assert "create_table opportunity" in detail.get_data(as_text=True)
    assert 'href="/admin/revisions"' not in plain_home
    assert plain.get("/admin/revisions").status_code == 403
    assert plain.get("/admin/revisions/1").status_code == 403


def test_an_entity_made_again_after_a_purge_has_none_of_the_old_history(
    app: Flask, platform: Platform, api: Api
) -> None:
    # The same document, ids included, as `meta export` writes it.
    first = api.put("/meta/entities/project", json=PROJECT)
    document = first.json["document"]
    old = create(api, "project", title="Vault plans", budget=900)
    api.patch(f"/project/{old['id']}", json={"budget": 950})
    api.delete(f"/project/{old['id']}")
    api.delete("/meta/entities/project")
    platform.store.purge("project", None, actor="test")

    again = api.put("/meta/entities/project", json=document)
    new = create(api, "project", title="Garden shed")
    reader = other_user(platform, app)

    assert again.status_code == 201, again.json
    assert new["id"] == old["id"]
    for caller in (api, reader):
        entries = history(caller, "project", new["id"])
        assert [(e["kind"], e["field"]) for e in entries] == [("create", None)]
    with platform.engine.connect() as connection:
        kept = connection.execute(
            sa.select(field_history.c.kind).where(field_history.c.entity == "project")
        ).scalars()
        assert list(kept) == ["create"]
