"""Schema changes are plans: applied atomically, seen by every process, never lossy."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask

from tailorcrm.errors import TailorError
from tailorcrm.platform import Platform, create_app, migrate
from tailorcrm.platform.cli import main
from tailorcrm.platform.records import SYSTEM_ACTOR
from tests.conftest import LONG_NAME, LONG_NAMED, OPPORTUNITY, Api, postgres_schema


def document(api: Api, name: str = "opportunity") -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/meta/entities/{name}").json
    return body


def columns(platform: Platform, table: str) -> list[str]:
    with platform.engine.connect() as connection:
        return [column["name"] for column in sa.inspect(connection).get_columns(table)]


def tables(platform: Platform) -> set[str]:
    with platform.engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names())


def revision(api: Api) -> int:
    value: int = api.get("/meta/entities").json["revision"]
    return value


def test_field_added_while_serving_is_seen_by_another_process(
    crm: Api, database_url: str, admin_token: str
) -> None:
    other_app = create_app({"database_url": database_url, "secret_key": "other"})
    other = Api(other_app.test_client(), admin_token)
    existing = crm.post("/opportunity", json={"title": "Before"}).json
    assert (
        other.post("/opportunity", json={"title": "x", "loss_reason": "y"}).status_code
        == 422
    )

    changed = document(crm)
    changed["fields"].append(
        {"name": "loss_reason", "type": "textarea", "label": "Loss reason"}
    )
    response = crm.put("/meta/entities/opportunity", json=changed)
    created = other.post(
        "/opportunity", json={"title": "After", "loss_reason": "Price"}
    )

    assert response.status_code == 200
    assert response.json["steps"] == [
        "add_column opportunity.loss_reason type=textarea"
    ]
    assert created.status_code == 201, created.json
    assert other.get(f"/opportunity/{existing['id']}").json["loss_reason"] is None
    assert crm.get(f"/opportunity/{created.json['id']}").json["loss_reason"] == "Price"
    other_app.extensions["tailorcrm"].engine.dispose()


def test_dry_run_returns_the_plan_and_changes_nothing(
    crm: Api, platform: Platform
) -> None:
    changed = document(crm)
    changed["fields"].append({"name": "region", "type": "text", "label": "Region"})

    response = crm.put("/meta/entities/opportunity?dry_run=1", json=changed)

    assert response.status_code == 200
    assert response.json["applied"] is False
    assert response.json["plan"] == [
        {"op": "add_column", "entity": "opportunity", "field": "region", "type": "text"}
    ]
    assert "region" not in columns(platform, "opportunity")
    assert revision(crm) == 2


def test_new_unique_with_duplicates_is_refused_with_the_values(
    crm: Api, platform: Platform
) -> None:
    changed = document(crm)
    changed["fields"].append({"name": "region", "type": "text", "label": "Region"})
    crm.put("/meta/entities/opportunity", json=changed)
    for title, region in [("A", "North"), ("B", "North"), ("C", "South"), ("D", None)]:
        crm.post("/opportunity", json={"title": title, "region": region})
    changed = document(crm)
    changed["fields"][-1]["unique"] = True

    refused = crm.put("/meta/entities/opportunity", json=changed)

    assert refused.status_code == 409
    assert [e["field"] for e in refused.json["errors"]] == ["opportunity.region"]
    assert "'North'" in refused.json["errors"][0]["message"]
    assert revision(crm) == 3
    assert (
        crm.post("/opportunity", json={"title": "E", "region": "North"}).status_code
        == 201
    )

    crm.patch("/opportunity/2", json={"region": "East"})
    crm.patch("/opportunity/5", json={"region": "West"})
    accepted = crm.put("/meta/entities/opportunity", json=changed)
    assert accepted.status_code == 200
    assert accepted.json["steps"] == ["add_unique opportunity.region"]
    assert (
        crm.post("/opportunity", json={"title": "F", "region": "North"}).status_code
        == 409
    )


@pytest.mark.parametrize(
    ("change", "step"),
    [
        pytest.param({"unique": True}, "add_unique", id="unique"),
        pytest.param({"name": "subject"}, "add_search_index", id="display-field"),
    ],
)
def test_an_index_over_values_too_long_for_it_is_refused_with_the_records(
    api: Api, change: dict[str, Any], step: str
) -> None:
    # Values saved under a longer max_length stay; PostgreSQL could not index
    # them, so the change that narrows the field and indexes it is refused.
    memo = LONG_NAMED
    api.put("/meta/entities/memo", json=memo)
    long_body = LONG_NAME
    api.post("/memo", json={"body": "Short"})
    api.post("/memo", json={"body": long_body})
    narrowed = document(api, "memo")
    narrowed["fields"][0].update(max_length=500, **change)
    if "name" in change:
        narrowed["display_field"] = change["name"]

    refused = api.put("/meta/entities/memo", json=narrowed)
    dry = api.put("/meta/entities/memo?dry_run=1", json=narrowed)

    assert refused.status_code == 409, refused.json
    assert [(e["field"], e["code"]) for e in refused.json["errors"]] == [
        (f"memo.{narrowed['fields'][0]['name']}", "too_long")
    ]
    assert "record 2" in refused.json["errors"][0]["message"]
    assert dry.status_code == 409
    assert revision(api) == 1
    assert document(api, "memo")["fields"][0]["max_length"] == 5000
    assert api.get("/memo/2").json["body"] == long_body

    api.patch("/memo/2", json={"body": "Shortened"})
    accepted = _applied_once_others_let_go(api, "/meta/entities/memo", narrowed)
    assert accepted.status_code == 200, accepted.json
    assert any(entry.startswith(step) for entry in accepted.json["steps"])


def _applied_once_others_let_go(api: Api, path: str, body: Any) -> Any:
    """PUT ``body``, again while PostgreSQL still keeps a record's earlier, longer
    value for transactions that began before it changed (other tests', running
    beside this one), for at most a minute."""
    for _ in range(600):
        response = api.put(path, json=body)
        codes = [e["code"] for e in response.json.get("errors", [])]
        if response.status_code != 409 or codes != ["too_long_earlier"]:
            return response
        time.sleep(0.1)
    return response


def test_an_index_over_a_value_kept_for_older_transactions_is_refused_for_now(
    api: Api, database_url: str
) -> None:
    # A transaction that began while record 2 held text too long for an index
    # may still read it, so PostgreSQL indexes that version too, and cannot.
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite keeps no earlier versions of rows")
    api.put("/meta/entities/memo", json=LONG_NAMED)
    api.post("/memo", json={"body": "Short"})
    api.post("/memo", json={"body": LONG_NAME})
    narrowed = document(api, "memo")
    narrowed["fields"][0].update(max_length=500, unique=True)
    # A change in a later second moves updated_at, which is indexed, so the
    # earlier version is no part of an update chain that an index build skips.
    time.sleep(1.1)
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as older:
            older = older.execution_options(isolation_level="REPEATABLE READ")
            with older.begin():
                older.execute(sa.text("SELECT 1"))
                api.patch("/memo/2", json={"body": "Shortened"})
                refused = api.put("/meta/entities/memo", json=narrowed)
            # Other tests' transactions, running beside this one, may still
            # keep the earlier version a while.
            accepted = _applied_once_others_let_go(api, "/meta/entities/memo", narrowed)
    finally:
        engine.dispose()

    assert refused.status_code == 409, refused.json
    assert [(e["field"], e["code"]) for e in refused.json["errors"]] == [
        ("memo.body", "too_long_earlier")
    ]
    assert "Try again in a moment" in refused.json["errors"][0]["message"]
    assert accepted.status_code == 200, accepted.json


def test_removing_a_field_hides_it_and_keeps_the_data(
    crm: Api, platform: Platform
) -> None:
    record = crm.post("/opportunity", json={"title": "Deal", "erp_code": "E-7"}).json
    changed = document(crm)
    changed["fields"] = [f for f in changed["fields"] if f["name"] != "erp_code"]

    response = crm.put("/meta/entities/opportunity", json=changed)

    assert response.json["steps"] == ["hide_field opportunity.erp_code"]
    assert "erp_code" not in crm.get(f"/opportunity/{record['id']}").json
    assert crm.get("/opportunity?erp_code=E-7").status_code == 400
    assert (
        crm.post("/opportunity", json={"title": "x", "erp_code": "y"}).status_code
        == 422
    )
    assert "erp_code" in columns(platform, "opportunity")

    restored = crm.put("/meta/entities/opportunity", json=OPPORTUNITY)
    assert restored.json["steps"] == ["restore_field opportunity.erp_code"]
    assert crm.get(f"/opportunity/{record['id']}").json["erp_code"] == "E-7"


def test_a_new_field_named_like_a_removed_one_of_another_type_is_told_why(
    crm: Api,
) -> None:
    """The answer was "Changing type from 'text' to 'integer' is not supported
    yet; add a new field and copy the data instead", to someone adding one."""
    changed = document(crm)
    changed["fields"] = [f for f in changed["fields"] if f["name"] != "erp_code"]
    crm.put("/meta/entities/opportunity", json=changed)
    changed["fields"].append({"name": "erp_code", "type": "integer", "label": "ERP"})

    response = crm.put("/meta/entities/opportunity", json=changed)

    assert response.status_code == 422
    assert response.json["errors"] == [
        {
            "field": f"fields[{len(changed['fields']) - 1}].name",
            "code": "name_in_use",
            "message": "The removed field 'erp_code' still holds data under this "
            "name; keep it, or purge it with "
            "'tailorcrm meta purge opportunity.erp_code'.",
        }
    ]


def test_purge_drops_a_removed_column_after_confirmation(
    crm: Api, platform: Platform, database_url: str
) -> None:
    crm.post("/opportunity", json={"title": "Deal", "erp_code": "E-7"})
    changed = document(crm)
    changed["fields"] = [
        f for f in changed["fields"] if f["name"] not in ("erp_code", "account")
    ]
    crm.put("/meta/entities/opportunity", json=changed)
    runner = CliRunner()
    env = {"TAILORCRM_DATABASE_URL": database_url}

    declined = runner.invoke(
        main, ["meta", "purge", "opportunity.erp_code"], input="n\n", env=env
    )
    live = runner.invoke(main, ["meta", "purge", "opportunity.title", "--yes"], env=env)
    purged = runner.invoke(
        main, ["meta", "purge", "opportunity.erp_code"], input="y\n", env=env
    )
    lookup = runner.invoke(
        main, ["meta", "purge", "opportunity.account", "--yes"], env=env
    )

    assert declined.exit_code != 0
    assert live.exit_code == 1
    assert "is a live field" in live.output
    assert purged.exit_code == 0, purged.output
    assert lookup.exit_code == 0, lookup.output
    assert "erp_code" not in columns(platform, "opportunity")
    assert "account" not in columns(platform, "opportunity")
    assert crm.get("/opportunity/1").json["title"] == "Deal"
    readded = crm.put("/meta/entities/opportunity", json=OPPORTUNITY)
    assert readded.json["steps"] == [
        "add_column opportunity.account type=lookup",
        "add_foreign_key opportunity.account target=account",
        "add_column opportunity.erp_code type=text",
        "add_unique opportunity.erp_code",
    ]
    assert crm.get("/opportunity/1").json["erp_code"] is None


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("opportunity.nowhere", "has no removed field 'nowhere'"),
        ("opportunity.title", "is a live field"),
        ("nowhere", "There is no entity named 'nowhere'"),
        ("opportunity", "is live; delete it before purging it"),
    ],
)
def test_purge_says_what_cannot_be_purged_before_asking(
    crm: Api, database_url: str, target: str, says: str
) -> None:
    env = {"TAILORCRM_DATABASE_URL": database_url}

    # No answer is given: a purge that cannot be made asks nothing.
    result = CliRunner().invoke(main, ["meta", "purge", target], input="", env=env)

    assert result.exit_code == 1
    assert says in result.output
    assert "Continue?" not in result.output


@pytest.mark.parametrize(
    ("index", "option", "value"),
    [(3, "type", "integer"), (3, "precision", 16), (1, "target", "opportunity")],
)
def test_storage_changes_are_refused_with_a_clear_error(
    crm: Api, index: int, option: str, value: Any
) -> None:
    changed = document(crm)
    changed["fields"][index][option] = value
    if option == "type":
        changed["fields"][index].pop("precision")
        changed["fields"][index].pop("scale")

    response = crm.put("/meta/entities/opportunity", json=changed)

    assert response.status_code == 422, response.json
    if option == "precision":
        assert response.json["errors"][0]["code"] == "schema"
        return
    assert response.json["type"].endswith("unsupported_change")
    assert response.json["errors"][0]["field"] == f"fields[{index}].{option}"
    assert "not supported yet" in response.json["errors"][0]["message"]


def test_renaming_a_field_by_id_keeps_its_data(crm: Api, platform: Platform) -> None:
    crm.post("/opportunity", json={"title": "Deal", "erp_code": "E-1"})
    changed = document(crm)
    changed["fields"][5]["name"] = "external_code"

    response = crm.put("/meta/entities/opportunity", json=changed)

    assert response.json["steps"] == [
        "rename_field opportunity.external_code old=erp_code"
    ]
    assert crm.get("/opportunity/1").json["external_code"] == "E-1"
    assert (
        crm.post(
            "/opportunity", json={"title": "x", "external_code": "E-1"}
        ).status_code
        == 409
    )


def test_unknown_field_id_is_refused(crm: Api) -> None:
    changed = document(crm)
    changed["fields"][0]["id"] = "fld_0000000000000000"

    response = crm.put("/meta/entities/opportunity", json=changed)

    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "fields[0].id"


def test_autonumber_added_later_numbers_existing_records(crm: Api) -> None:
    for title in ("A", "B", "C"):
        crm.post("/opportunity", json={"title": title})
    changed = document(crm)
    changed["fields"].append(
        {
            "name": "deal_number",
            "type": "autonumber",
            "label": "No.",
            "prefix": "D-",
            "digits": 3,
        }
    )

    crm.put("/meta/entities/opportunity", json=changed)
    new = crm.post("/opportunity", json={"title": "D"}).json

    numbers = [
        r["deal_number"] for r in crm.get("/opportunity?sort=title").json["data"]
    ]
    assert numbers == ["D-001", "D-002", "D-003", "D-004"]
    assert new["deal_number"] == "D-004"


def test_metadata_history_records_who_when_before_after(crm: Api) -> None:
    changed = document(crm)
    changed["label"] = "Deal"
    crm.put("/meta/entities/opportunity", json=changed)

    history = crm.get("/meta/entities/opportunity/history").json["data"]

    assert [entry["revision"] for entry in history] == [3, 2]
    assert history[0]["actor"] == "admin"
    assert history[0]["before"]["document"]["label"] == "Opportunity"
    assert history[0]["after"]["document"]["label"] == "Deal"
    assert history[1]["before"] is None


def test_an_unchanged_document_makes_no_revision(crm: Api) -> None:
    response = crm.put("/meta/entities/opportunity", json=document(crm))

    assert response.json["applied"] is False
    assert response.json["plan"] == []
    assert revision(crm) == 2


class InjectedFailure(Exception):
    pass


def test_failure_mid_plan_leaves_tables_and_metadata_as_before(
    crm: Api, platform: Platform, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm.post("/opportunity", json={"title": "Deal"})
    before_columns = columns(platform, "opportunity")
    before_tables = tables(platform)
    real_add_unique = migrate._HANDLERS["add_unique"]

    def add_unique_then_fail(*args: Any) -> None:
        real_add_unique(*args)
        raise InjectedFailure("disk full")

    monkeypatch.setitem(migrate._HANDLERS, "add_unique", add_unique_then_fail)
    changed = document(crm)
    changed["fields"].append({"name": "region", "type": "text", "label": "Region"})
    changed["fields"].append(
        {"name": "code", "type": "text", "label": "Code", "unique": True}
    )
    invoice = {
        "name": "invoice",
        "label": "Invoice",
        "fields": [
            {
                "name": "deal",
                "type": "lookup",
                "target": "opportunity",
                "label": "Deal",
            },
            {"name": "reference", "type": "text", "label": "Ref", "unique": True},
        ],
    }

    with pytest.raises(InjectedFailure):
        platform.store.apply(
            [("opportunity.json", changed), ("invoice.json", invoice)], actor="test"
        )

    assert columns(platform, "opportunity") == before_columns
    assert tables(platform) == before_tables
    assert revision(crm) == 2
    assert [f["name"] for f in document(crm)["fields"]] == [
        f["name"] for f in OPPORTUNITY["fields"]
    ]
    assert crm.get("/opportunity/1").json["title"] == "Deal"
    monkeypatch.undo()
    applied = platform.store.apply(
        [("opportunity.json", changed), ("invoice.json", invoice)], actor="test"
    )
    assert applied.applied
    assert "invoice" in tables(platform)


def test_batch_with_one_bad_document_applies_nothing(
    crm: Api, platform: Platform
) -> None:
    good = {"name": "region_office", "label": "Office", "fields": []}
    bad = copy.deepcopy(good)
    bad["name"] = "Bad"

    with pytest.raises(TailorError) as excinfo:
        platform.store.apply([("good.json", good), ("bad.json", bad)], actor="test")

    assert [p.field for p in excinfo.value.problems] == ["bad.json: name"]
    assert "region_office" not in tables(platform)


def test_unsupported_changes_in_a_batch_name_every_document(
    crm: Api, platform: Platform
) -> None:
    opportunity = document(crm)
    amount = next(s for s in opportunity["fields"] if s["name"] == "amount")
    amount["scale"] = 0
    account = document(crm, "account")
    parent = next(s for s in account["fields"] if s["name"] == "parent")
    parent["target"] = "opportunity"
    account["fields"].append({"name": "region", "type": "text", "label": "Region"})
    before = revision(crm)

    with pytest.raises(TailorError) as excinfo:
        platform.store.apply(
            [("account.json", account), ("opportunity.json", opportunity)],
            actor="test",
        )

    assert sorted(p.field for p in excinfo.value.problems) == [
        "account.json: fields[1].target",
        "opportunity.json: fields[3].scale",
    ]
    assert revision(crm) == before
    assert "region" not in columns(platform, "account")


def test_two_new_entities_with_one_id_are_refused(api: Api, platform: Platform) -> None:
    # A pack's file copied to make a second entity keeps the first one's id.
    first = {
        "name": "office",
        "label": "Office",
        "id": "ent_0123456789abcdef",
        "fields": [{"name": "city", "type": "text", "label": "City"}],
    }
    second = {**copy.deepcopy(first), "name": "depot", "label": "Depot"}

    with pytest.raises(TailorError) as excinfo:
        platform.store.apply(
            [("office.json", first), ("depot.json", second)], actor="test"
        )

    assert [(p.field, p.code) for p in excinfo.value.problems] == [
        ("depot.json: id", "duplicate_id")
    ]
    assert "'office' in office.json" in excinfo.value.problems[0].message
    assert not {"office", "depot"} & tables(platform)
    # Each entity made apart keeps being changeable with its own document.
    assert api.put("/meta/entities/office", json=first).status_code == 201
    office = document(api, "office")
    office["fields"].append({"name": "phone", "type": "phone", "label": "Phone"})
    assert api.put("/meta/entities/office", json=office).status_code == 200


def test_a_record_sent_back_as_read_keeps_values_from_before_narrower_limits(
    crm: Api,
) -> None:
    """The edit form leaves alone what was not touched; so does a PATCH of the
    record as read."""
    record = crm.post(
        "/opportunity",
        json={"title": "A long title", "stage": "won", "amount": 50, "erp_code": "K1"},
    ).json
    changed = document(crm)
    for spec in changed["fields"]:
        if spec["name"] == "title":
            spec["max_length"] = 5
        if spec["name"] == "stage":
            spec["options"] = [{"value": "prospecting", "label": "Prospecting"}]
        if spec["name"] == "amount":
            spec["max"] = 10
        if spec["name"] == "close_date":
            spec["required"] = True
    assert crm.put("/meta/entities/opportunity", json=changed).status_code == 200
    read = crm.get(f"/opportunity/{record['id']}").json
    sent = {key: read[key] for key in ("title", "stage", "amount", "close_date")}

    patched = crm.patch(f"/opportunity/{record['id']}", json={**sent, "erp_code": "K2"})
    refused = crm.patch(f"/opportunity/{record['id']}", json={"amount": 49})
    also_refused = crm.patch(f"/opportunity/{record['id']}", json={"amount": "50"})

    assert patched.status_code == 200, patched.json
    assert patched.json["erp_code"] == "K2"
    assert {key: patched.json[key] for key in sent} == sent
    assert patched.json["version"] == read["version"] + 1
    assert refused.status_code == 422
    assert [p["code"] for p in refused.json["errors"]] == ["too_large"]
    assert also_refused.status_code == 422


def test_platforms_in_schemas_of_one_database_change_metadata_apart(
    platform: Platform, database_url: str
) -> None:
    # A save under way holds this platform's metadata back; another platform in
    # a schema of its own in the same database changes its metadata meanwhile.
    if database_url.startswith("sqlite"):
        pytest.skip("a SQLite file holds one platform")
    note = {
        "name": "note",
        "label": "Note",
        "display_field": "title",
        "fields": [{"name": "title", "type": "text", "label": "Title"}],
    }
    applied: list[BaseException | None] = []

    def change(other: Platform) -> None:
        try:
            other.store.apply([("", note)], actor="test")
            applied.append(None)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            applied.append(error)

    with postgres_schema() as other_url:
        other = create_app({"database_url": other_url, "secret_key": "other"})
        try:
            with platform.records(SYSTEM_ACTOR):
                thread = threading.Thread(
                    target=change, args=(other.extensions["tailorcrm"],)
                )
                thread.start()
                thread.join(10)
                waited = thread.is_alive()
            thread.join()
        finally:
            other.extensions["tailorcrm"].engine.dispose()

    assert not waited, "the other platform's change waited for this one's save"
    assert applied == [None]
