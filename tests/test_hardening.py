"""Bad input found by trying to break the engine: 4xx answers, nothing changed."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.config import Settings
from tests.conftest import ACCOUNT, OPPORTUNITY, Api


def document(api: Api, name: str = "opportunity") -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/meta/entities/{name}").json
    return body


def revision(api: Api) -> int:
    value: int = api.get("/meta/entities").json["revision"]
    return value


# -- metadata ------------------------------------------------------------------------


def test_two_fields_with_one_id_are_refused(crm: Api) -> None:
    changed = document(crm)
    copied = dict(changed["fields"][0], name="title_copy")
    changed["fields"].append(copied)

    response = crm.put("/meta/entities/opportunity", json=changed)

    assert response.status_code == 422
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("fields[6].id", "duplicate_id")
    ]
    assert crm.get("/opportunity").status_code == 200


def test_two_fields_can_swap_names(crm: Api) -> None:
    crm.post("/opportunity", json={"title": "Deal", "erp_code": "E-1"})
    changed = document(crm)
    changed["fields"][0]["name"] = "erp_code"
    changed["fields"][5]["name"] = "title"
    changed["display_field"] = "erp_code"

    response = crm.put("/meta/entities/opportunity", json=changed)

    assert response.status_code == 200, response.json
    record = crm.get("/opportunity/1").json
    assert (record["title"], record["erp_code"]) == ("E-1", "Deal")
    assert (
        crm.post("/opportunity", json={"erp_code": "x", "title": "E-1"}).status_code
        == 409
    )


def test_rename_with_unique_changes(crm: Api) -> None:
    for title in ("Same", "Same"):
        crm.post("/opportunity", json={"title": title})
    renamed_unique = document(crm)
    renamed_unique["fields"][0].update(name="headline", unique=True)
    renamed_unique["display_field"] = "headline"
    renamed_plain = document(crm)
    renamed_plain["fields"][5].update(name="code")
    renamed_plain["fields"][5].pop("unique")
    renamed_plain["fields"][5].pop("external_id")

    refused = crm.put("/meta/entities/opportunity", json=renamed_unique)
    dropped = crm.put("/meta/entities/opportunity", json=renamed_plain)

    assert refused.status_code == 409
    assert "'Same'" in refused.json["errors"][0]["message"]
    assert dropped.status_code == 200, dropped.json
    assert crm.patch("/opportunity/1", json={"code": "C"}).status_code == 200
    assert crm.patch("/opportunity/2", json={"code": "C"}).status_code == 200


def test_a_name_held_by_a_removed_field_cannot_be_taken(crm: Api) -> None:
    changed = document(crm)
    changed["fields"] = [f for f in changed["fields"] if f["name"] != "erp_code"]
    crm.put("/meta/entities/opportunity", json=changed)
    changed = document(crm)
    changed["fields"][4]["name"] = "erp_code"

    response = crm.put("/meta/entities/opportunity", json=changed)

    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "fields[4].name"
    assert "purge" in response.json["errors"][0]["message"]


def test_index_names_do_not_clash_between_entities(api: Api) -> None:
    first = {
        "name": "proj_x",
        "label": "P",
        "fields": [{"name": "b", "type": "text", "label": "B", "unique": True}],
    }
    second = {
        "name": "proj",
        "label": "Q",
        "fields": [
            {"name": "x_b", "type": "text", "label": "B", "unique": True},
            {"name": "x_owner", "type": "lookup", "target": "proj_x", "label": "O"},
        ],
    }

    assert api.put("/meta/entities/proj_x", json=first).status_code == 201
    assert api.put("/meta/entities/proj", json=second).status_code == 201


@pytest.mark.parametrize("name", ["a__b", "trailing_", "sqlite_stat", "tc_thing"])
def test_names_the_platform_needs_are_refused(api: Api, name: str) -> None:
    response = api.put(
        f"/meta/entities/{name}", json={"name": name, "label": "X", "fields": []}
    )

    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "name"


def test_fractional_numbers_in_a_document_sent_over_the_api(api: Api) -> None:
    document = {
        "name": "score",
        "label": "Score",
        "fields": [
            {
                "name": "rate",
                "type": "percent",
                "label": "Rate",
                "min": 0.5,
                "default": 1.5,
            }
        ],
    }

    response = api.put("/meta/entities/score", json=document)

    assert response.status_code == 201, response.json
    assert api.post("/score", json={}).json["rate"] == 1.5
    assert api.post("/score", json={"rate": 0.25}).status_code == 422


def test_exported_documents_install_elsewhere_with_their_ids(
    crm: Api, platform: Platform, tmp_path: Any
) -> None:
    exported = [document(crm, "account"), document(crm, "opportunity")]
    other = create_app({"database_url": f"sqlite:///{tmp_path / 'other.db'}"})

    result = other.extensions["tailorcrm"].store.apply(
        [("account.json", exported[0]), ("opportunity.json", exported[1])], actor="t"
    )

    assert result.applied
    with other.extensions["tailorcrm"].reading() as (_, catalog):
        assert catalog.entity("opportunity").document == exported[1]


def test_an_entity_id_cannot_move_to_another_name(crm: Api) -> None:
    taken = document(crm, "account")
    taken["name"] = "client"

    response = crm.put("/meta/entities/client", json=taken)

    assert response.status_code == 422
    assert response.json["errors"][0]["code"] == "id_in_use"


def test_removed_fields_count_towards_the_column_limit(api: Api) -> None:
    fields = [{"name": f"f{i}", "type": "text", "label": "F"} for i in range(500)]
    api.put(
        "/meta/entities/wide", json={"name": "wide", "label": "W", "fields": fields}
    )
    renamed = [{"name": f"g{i}", "type": "text", "label": "G"} for i in range(500)]

    first = api.put(
        "/meta/entities/wide", json={"name": "wide", "label": "W", "fields": renamed}
    )
    more = [{"name": f"h{i}", "type": "text", "label": "H"} for i in range(500)]
    second = api.put(
        "/meta/entities/wide", json={"name": "wide", "label": "W", "fields": more}
    )

    assert first.status_code == 200
    assert second.status_code == 422
    assert second.json["errors"][0]["code"] == "too_many_columns"


# -- records ---------------------------------------------------------------------------


def test_set_null_clears_references_whatever_their_ids(api: Api) -> None:
    alpha = {"name": "alpha", "label": "A", "fields": []}
    beta = {
        "name": "beta",
        "label": "B",
        "fields": [
            {
                "name": "alpha",
                "type": "lookup",
                "target": "alpha",
                "label": "A",
                "on_delete": "set_null",
            }
        ],
    }
    api.put("/meta/entities/alpha", json=alpha)
    api.put("/meta/entities/beta", json=beta)
    for _ in range(3):
        api.post("/alpha", json={})
    for target in (3, 3, 3):
        api.post("/beta", json={"alpha": target})

    response = api.delete("/alpha/3")

    assert response.status_code == 204
    assert [r["alpha"] for r in api.get("/beta").json["data"]] == [None, None, None]


def test_paging_a_list_sorted_by_a_boolean(sales: Platform, api: Api) -> None:
    for index in range(5):
        api.post("/activity", json={"subject": f"Call {index}", "done": index % 2 == 0})

    seen = []
    response = api.get("/activity?sort=done,-subject&limit=2")
    while True:
        assert response.status_code == 200, response.json
        seen += [record["subject"] for record in response.json["data"]]
        if not response.json["next"]:
            break
        response = api.client.get(response.json["next"], headers=api.headers)

    assert seen == ["Call 3", "Call 1", "Call 4", "Call 2", "Call 0"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/opportunity", {"title": "x", "owner_id": 99999999999999999999}),
        ("/opportunity", {"title": "x", "amount": Exception}),
        ("/opportunity", {"title": "x", "close_date": "0001-01-01T00:00:00+01:00"}),
    ],
)
def test_out_of_range_values_are_422(crm: Api, path: str, body: dict[str, Any]) -> None:
    if body.get("amount") is Exception:
        raw = '{"title": "x", "amount": 1e9999999}'
    else:
        raw = json.dumps(body)

    response = crm.post(path, data=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 422


def test_tiny_decimals_are_not_rounded_away(crm: Api) -> None:
    response = crm.post(
        "/opportunity",
        data='{"title": "x", "amount": 1e-9999999}',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json["errors"][0]["code"] == "too_many_decimals"


@pytest.mark.parametrize(
    "query",
    [
        "id=99999999999999999999",
        "account=9223372036854775808",
        "created_at__gt=9999-12-31T23:59:00-01:00",
        "title=a%00b",
        "filter=%7B%7D",
        "sort=--title",
        "sort=%2B-title",
    ],
)
def test_out_of_range_filters_are_400(crm: Api, query: str) -> None:
    response = crm.get(f"/opportunity?{query}")

    assert response.status_code == 400


def test_a_cursor_with_a_huge_id_is_400(crm: Api) -> None:
    import base64

    raw = json.dumps({"s": "", "k": [], "id": 10**20}).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")

    assert crm.get(f"/opportunity?cursor={cursor}").status_code == 400


@pytest.mark.parametrize("key", ["\ud800", "Alpha\x00"])
def test_a_cursor_with_text_no_database_takes_is_400(crm: Api, key: str) -> None:
    import base64

    raw = json.dumps({"s": "title", "k": [key], "id": 1}).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")

    response = crm.get(f"/opportunity?sort=title&cursor={cursor}")

    assert response.status_code == 400
    assert response.json["detail"] == (
        "cursor: this cursor is not valid for this list; start over."
    )


def test_missing_with_no_operands_is_checked_not_a_500(crm: Api) -> None:
    rule = {
        "kind": "rule",
        "name": "nothing_missing",
        "entity": "opportunity",
        "type": "validation",
        "label": "Nothing is missing",
        "condition": {"missing": []},
        "message": "Never fires.",
    }

    listed = crm.get("/opportunity", query_string={"filter": '{"missing": []}'})
    checked = crm.put("/meta/rules/nothing_missing?dry_run=1", json=rule)

    assert listed.status_code == 400
    assert listed.json["errors"][0]["code"] == "unsupported_in_sql"
    assert checked.status_code == 200


def test_a_huge_record_id_is_404(crm: Api) -> None:
    assert crm.get("/opportunity/99999999999999999999").status_code == 404


def test_deeply_nested_json_is_400(crm: Api) -> None:
    body = "[" * 100_000 + "]" * 100_000

    response = crm.post(
        "/opportunity", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400


def _put_unread(crm: Api, body: str) -> Any:
    """PUT ``body`` as the Opportunity's document; check that it is refused with
    400 and changes nothing, and return the answer."""
    before = revision(crm)

    response = crm.put(
        "/meta/entities/opportunity",
        data=body,
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert revision(crm) == before
    return response


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("NaN", "NaN is not a JSON number."),
        ("-Infinity", "-Infinity is not a JSON number."),
        ("1e999", "1e999 is too large a number."),
    ],
)
def test_a_metadata_number_json_cannot_hold_is_400_naming_where(
    crm: Api, literal: str, reason: str
) -> None:
    changed = document(crm)
    changed["fields"][3]["min"] = "<number>"
    body = json.dumps(changed).replace('"<number>"', literal)

    response = _put_unread(crm, body)

    assert response.json["detail"] == (
        f"The body is not valid JSON: fields[3].min: {reason}"
    )


def test_a_number_json_cannot_hold_is_listed_in_errors_at_its_path(crm: Api) -> None:
    body = '{"title": "x", "amount": NaN, "notes": [1, -Infinity]}'

    response = crm.post(
        "/opportunity", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("amount", "not_finite"),
        ("notes[1]", "not_finite"),
    ]


def test_a_whole_number_of_thousands_of_digits_is_refused_at_its_path(
    crm: Api,
) -> None:
    # Python's int refuses to read more than 4,300 digits; its own words, which
    # tell the caller to raise a limit of the interpreter, were the answer.
    body = '{"title": "x", "amount": -%s}' % ("7" * 5000)

    response = crm.post(
        "/opportunity", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json["errors"] == [
        {
            "field": "amount",
            "code": "not_finite",
            "message": "A whole number of 5,000 digits is too large.",
        }
    ]


def test_a_name_given_twice_in_a_body_is_refused_at_its_path(crm: Api) -> None:
    body = '{"title": "Kiln", "amount": 5, "title": "Kettle", "x": {"a": 1, "a": 2}}'

    response = crm.post(
        "/opportunity", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("title", "duplicate_key"),
        ("x.a", "duplicate_key"),
    ]
    assert crm.get("/opportunity").json["data"] == []


def test_a_name_given_twice_in_a_filter_is_400(crm: Api) -> None:
    condition = '{"==": [{"var": "title"}, "Kiln"], "==": [1, 1]}'

    response = crm.get("/opportunity", query_string={"filter": condition})

    assert response.status_code == 400
    assert "more than once" in response.json["detail"]


def test_a_metadata_document_nested_deep_but_within_the_stack_is_400(
    crm: Api,
) -> None:
    # Deep enough to exhaust the stack of the validator's messages, not the parser's.
    nested = "[" * 300 + "]" * 300
    body = json.dumps(document(crm))[:-1] + f', "notes": {nested}}}'

    response = _put_unread(crm, body)

    assert response.json["detail"] == "The body is nested too deeply."


def test_nul_characters_are_refused(crm: Api) -> None:
    response = crm.post("/opportunity", json={"title": "a\u0000b"})

    assert response.status_code == 422
    assert response.json["errors"][0]["code"] == "invalid_text"


def test_blank_text_is_null_for_unique_fields(crm: Api) -> None:
    first = crm.post("/opportunity", json={"title": "A", "erp_code": ""})
    second = crm.post("/opportunity", json={"title": "B", "erp_code": ""})

    assert first.status_code == second.status_code == 201
    assert second.json["erp_code"] is None
    assert crm.get("/opportunity?erp_code__isnull=true&count=1").json["count"] == 2


def test_weak_or_several_if_match_tags(crm: Api) -> None:
    record = crm.post("/account", json={"name": "Orbit"}).json
    path = f"/account/{record['id']}"

    weak = crm.patch(path, json={"name": "x"}, headers={"If-Match": 'W/"1"'})
    several = crm.patch(path, json={"name": "x"}, headers={"If-Match": '"1", "2"'})
    strong = crm.patch(path, json={"name": "x"}, headers={"If-Match": '"1"'})

    assert weak.status_code == 412
    assert several.status_code == 400
    assert strong.status_code == 200


def test_if_match_on_a_write_that_keeps_no_versions_is_refused(crm: Api) -> None:
    # Saved views have no version to compare with, so the condition cannot be
    # kept; going on regardless would overwrite what another client saved.
    view = crm.post("/meta/views?entity=account", json={"label": "Mine"}).json
    path = f"/meta/views/{view['id']}"
    stale = {"If-Match": '"7"'}

    replaced = crm.put(
        path, json={"entity": "account", "label": "Theirs"}, headers=stale
    )
    deleted = crm.delete(path, headers=stale)

    for response in (replaced, deleted):
        assert response.status_code == 400
        assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
            ("If-Match", "not_supported")
        ]
    assert crm.get(path).json["label"] == "Mine"


def test_a_bad_if_match_says_what_it_should_hold(crm: Api) -> None:
    # A record's tag is its version; a metadata document's is its revision.
    record = crm.post("/account", json={"name": "Orbit"}).json
    document = crm.get("/meta/entities/account").json

    on_record = crm.patch(
        f"/account/{record['id']}", json={"name": "x"}, headers={"If-Match": '"x"'}
    )
    on_document = crm.put(
        "/meta/entities/account", json=document, headers={"If-Match": '"x"'}
    )

    assert on_record.status_code == 400
    assert "the record's version" in on_record.json["detail"]
    assert on_document.status_code == 400
    assert "the document's revision" in on_document.json["detail"]
    for response in (on_record, on_document):
        assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
            ("If-Match", "invalid_header")
        ]


def test_contains_ignores_case_of_accented_letters(crm: Api) -> None:
    crm.post("/account", json={"name": "HÉLÈNE Électrique"})

    found = crm.get("/account?name__contains=élec").json["data"]
    started = crm.get("/account?name__startswith=hélène").json["data"]

    assert [r["name"] for r in found] == ["HÉLÈNE Électrique"]
    assert [r["name"] for r in started] == ["HÉLÈNE Électrique"]


@pytest.mark.parametrize(
    "query",
    [
        "name__contains=İ",
        "name__contains=İSTANBUL",
        "name__startswith=İst",
    ],
)
def test_a_value_is_found_by_its_own_letters_whatever_their_case(
    crm: Api, query: str
) -> None:
    # The capital I with a dot above folds to different text in Python and in
    # PostgreSQL: the filter's text is folded by the database, as the column.
    crm.post("/account", json={"name": "İstanbul Ferries"})
    crm.post("/account", json={"name": "Harbour Tugs"})

    found = crm.get(f"/account?{query}").json["data"]

    assert [r["name"] for r in found] == ["İstanbul Ferries"]


def test_multi_picklist_contains_on_every_database(api: Api) -> None:
    doc = {
        "name": "thing",
        "label": "Thing",
        "fields": [
            {
                "name": "tags",
                "type": "multi_picklist",
                "label": "Tags",
                "options": [
                    {"value": "red", "label": "Red"},
                    {"value": "reddish", "label": "Reddish"},
                ],
            }
        ],
    }
    api.put("/meta/entities/thing", json=doc)
    api.post("/thing", json={"tags": ["red"]})
    api.post("/thing", json={"tags": ["reddish"]})

    found = api.get("/thing?tags__contains=red").json["data"]

    assert [r["tags"] for r in found] == [["red"]]


def test_concurrent_writers_wait_for_each_other(
    app: Flask, crm: Api, database_url: str, admin_token: str
) -> None:
    second = create_app({"database_url": database_url})
    apis = [crm, Api(second.test_client(), admin_token)]
    statuses: list[int] = []

    def write(api: Api, worker: int) -> None:
        for number in range(15):
            response = api.post("/account", json={"name": f"Firm {worker}-{number}"})
            statuses.append(response.status_code)

    threads = [threading.Thread(target=write, args=(apis[i % 2], i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [201] * 60
    assert crm.get("/account?count=1").json["count"] == 60
    second.extensions["tailorcrm"].engine.dispose()


def test_the_documents_given_are_not_changed(platform: Platform) -> None:
    account = copy.deepcopy(ACCOUNT)
    opportunity = copy.deepcopy(OPPORTUNITY)

    platform.store.apply([("a", account), ("o", opportunity)], actor="t")

    assert account == ACCOUNT
    assert opportunity == OPPORTUNITY
    with platform.engine.connect() as connection:
        assert "opportunity" in sa.inspect(connection).get_table_names()


# -- second round --------------------------------------------------------------------


def test_paging_by_a_decimal_that_ends_on_zero(api: Api) -> None:
    doc = {
        "name": "measure",
        "label": "Measure",
        "fields": [
            {
                "name": "ratio",
                "type": "decimal",
                "label": "Ratio",
                "precision": 12,
                "scale": 8,
            }
        ],
    }
    api.put("/meta/entities/measure", json=doc)
    for value in ("0", "0.00000001", "0.5", "0"):
        api.post("/measure", json={"ratio": value})

    ids = []
    response = api.get("/measure?sort=ratio&limit=1")
    while True:
        assert response.status_code == 200, response.json
        ids += [record["id"] for record in response.json["data"]]
        if not response.json["next"]:
            break
        response = api.client.get(response.json["next"], headers=api.headers)

    assert ids == [1, 4, 2, 3]


def test_an_empty_multi_picklist_is_null(sales: Platform, api: Api) -> None:
    people = [
        {"full_name": "Ada Quill", "interests": None},
        {"full_name": "Bo Rune"},
        {"full_name": "Cy Vale", "interests": ["training"]},
    ]
    for person in people:
        response = api.post("/sales_lead", json={"company": "Quill Works", **person})
        assert response.status_code == 201, response.json

    blank = api.get("/sales_lead?interests__isnull=true&count=1").json["count"]
    filled = api.get("/sales_lead?interests__isnull=false&count=1").json["count"]

    assert (blank, filled) == (2, 1)


def test_renamed_lookup_frees_its_old_name(crm: Api) -> None:
    changed = document(crm)
    changed["fields"][1]["name"] = "customer"
    crm.put("/meta/entities/opportunity", json=changed)
    changed = document(crm)
    changed["fields"].append(
        {"name": "account", "type": "lookup", "target": "account", "label": "Account"}
    )

    response = crm.put("/meta/entities/opportunity", json=changed)

    assert response.status_code == 200, response.json


def test_lone_surrogates_are_refused(crm: Api) -> None:
    response = crm.post(
        "/account",
        data='{"name": "\\ud800x"}',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "name"


def test_an_infinite_number_in_a_document_is_refused(api: Api) -> None:
    raw = (
        '{"name": "score", "label": "S", "fields": [{"name": "n", "type": "integer",'
        ' "label": "N", "max": 1e309}]}'
    )

    response = api.put(
        "/meta/entities/score", data=raw, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert api.get("/meta/entities").json["data"] == []


def test_purging_a_removed_self_lookup_keeps_other_references(
    sales: Platform, api: Api
) -> None:
    parent = api.post("/account", json={"name": "Parent Co"}).json["id"]
    child = api.post("/account", json={"name": "Child Co", "parent_account": parent})
    deal = api.post("/opportunity", json={"title": "Deal", "account": parent}).json
    changed = document(api, "account")
    changed["fields"] = [f for f in changed["fields"] if f["name"] != "parent_account"]
    api.put("/meta/entities/account", json=changed)

    sales.store.purge("account", "parent_account", actor="test")

    assert child.status_code == 201
    assert api.get(f"/opportunity/{deal['id']}").json["account"] == parent
    assert "parent_account" not in api.get(f"/account/{parent}").json


def test_ids_of_deleted_records_are_never_reused(crm: Api) -> None:
    first = crm.post("/account", json={"name": "Temporary"}).json["id"]
    crm.delete(f"/account/{first}")

    second = crm.post("/account", json={"name": "Lasting"}).json["id"]

    assert second > first
    assert crm.get(f"/account/{first}").status_code == 404


def test_a_stale_metadata_write_is_412(crm: Api) -> None:
    read = crm.get("/meta/entities/opportunity")
    etag = read.headers["ETag"]
    first = copy.deepcopy(read.json)
    first["fields"].append({"name": "region", "type": "text", "label": "Region"})
    second = copy.deepcopy(read.json)
    second["fields"].append({"name": "channel", "type": "text", "label": "Channel"})

    applied = crm.put(
        "/meta/entities/opportunity", json=first, headers={"If-Match": etag}
    )
    stale = crm.put(
        "/meta/entities/opportunity", json=second, headers={"If-Match": etag}
    )

    assert applied.status_code == 200
    assert applied.headers["ETag"] != etag
    assert stale.status_code == 412
    names = [f["name"] for f in document(crm)["fields"]]
    assert "region" in names
    assert "channel" not in names


@pytest.mark.parametrize(
    "path",
    ["/meta/entities/{}", "/meta/rules/{}", "/meta/roles/{}", "/meta/layouts/{}"],
)
def test_if_match_any_changes_only_a_document_that_exists(crm: Api, path: str) -> None:
    # RFC 9110: If-Match: * holds only where a current document exists.
    missing = crm.put(
        path.format("nowhere"), json={"label": "Nowhere"}, headers={"If-Match": "*"}
    )
    removed = crm.delete(path.format("nowhere"), headers={"If-Match": "*"})
    field = {"name": "region", "type": "text", "label": "Region"}
    changed = document(crm)
    changed["fields"].append(field)
    existing = crm.put(
        "/meta/entities/opportunity", json=changed, headers={"If-Match": "*"}
    )

    assert missing.status_code == 412, missing.json
    assert "does not exist" in missing.json["detail"]
    assert removed.status_code in (404, 412), removed.json
    assert crm.get(path.format("nowhere")).status_code == 404
    assert existing.status_code == 200, existing.json
    assert "region" in [f["name"] for f in document(crm)["fields"]]


@pytest.mark.parametrize(
    ("name", "tag", "says"),
    [
        ("opportunity", '"0"', "Entity 'opportunity' already exists (revision "),
        ("opportunity", '"0"', 'If-Match: "0" expects none'),
        ("nowhere", '"3"', "does not exist (any more) though you read revision 3"),
    ],
)
def test_if_match_of_no_document_or_of_a_missing_one_says_so(
    crm: Api, name: str, tag: str, says: str
) -> None:
    changed = document(crm)
    changed["name"] = name
    changed["fields"].append({"name": "region", "type": "text", "label": "Region"})

    response = crm.put(
        f"/meta/entities/{name}", json=changed, headers={"If-Match": tag}
    )

    assert response.status_code == 412, response.json
    assert says in response.json["detail"]
    assert "region" not in [f["name"] for f in document(crm)["fields"]]


def test_removed_entities_hold_their_references(crm: Api) -> None:
    account = crm.post("/account", json={"name": "Held"}).json["id"]
    crm.post("/opportunity", json={"title": "Deal", "account": account})
    crm.delete("/meta/entities/opportunity")

    refused = crm.delete(f"/account/{account}")
    crm.put("/meta/entities/opportunity", json=OPPORTUNITY)

    assert refused.status_code == 409
    assert "removed" in refused.json["errors"][0]["message"]
    assert crm.get("/opportunity/1").json["account"] == account


def test_a_restored_autonumber_numbers_records_made_while_hidden(crm: Api) -> None:
    with_number = document(crm)
    with_number["fields"].append(
        {
            "name": "num",
            "type": "autonumber",
            "label": "No.",
            "prefix": "N-",
            "digits": 2,
        }
    )
    crm.put("/meta/entities/opportunity", json=with_number)
    crm.post("/opportunity", json={"title": "A"})
    without = document(crm)
    without["fields"] = [f for f in without["fields"] if f["name"] != "num"]
    crm.put("/meta/entities/opportunity", json=without)
    crm.post("/opportunity", json={"title": "B"})

    crm.put("/meta/entities/opportunity", json=with_number)

    numbers = [r["num"] for r in crm.get("/opportunity?sort=title").json["data"]]
    assert numbers == ["N-01", "N-02"]


# -- third round ---------------------------------------------------------------------


def test_first_autonumbers_taken_at_once_are_all_distinct(
    crm: Api, database_url: str, admin_token: str
) -> None:
    changed = document(crm)
    changed["fields"].append(
        {
            "name": "num",
            "type": "autonumber",
            "label": "No.",
            "prefix": "N-",
            "digits": 3,
        }
    )
    crm.put("/meta/entities/opportunity", json=changed)
    apps = [create_app({"database_url": database_url}) for _ in range(4)]
    statuses: list[int] = []

    def create(app: Flask, worker: int) -> None:
        api = Api(app.test_client(), admin_token)
        for number in range(4):
            response = api.post("/opportunity", json={"title": f"D{worker}-{number}"})
            statuses.append(response.status_code)

    threads = [threading.Thread(target=create, args=(a, i)) for i, a in enumerate(apps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    numbers = [r["num"] for r in crm.get("/opportunity?limit=100").json["data"]]
    assert statuses == [201] * 16
    assert sorted(numbers) == [f"N-{n:03d}" for n in range(1, 17)]
    for app in apps:
        app.extensions["tailorcrm"].engine.dispose()


def test_purging_a_lookup_keeps_ids_of_deleted_records_unused(
    sales: Platform, api: Api
) -> None:
    first = api.post("/account", json={"name": "Gone Co"}).json["id"]
    api.delete(f"/account/{first}")
    changed = document(api, "account")
    changed["fields"] = [f for f in changed["fields"] if f["name"] != "parent_account"]
    api.put("/meta/entities/account", json=changed)

    sales.store.purge("account", "parent_account", actor="test")
    second = api.post("/account", json={"name": "New Co"}).json["id"]
    third = api.post("/account", json={"name": "Newer Co"}).json["id"]
    api.delete(f"/account/{third}")
    fourth = api.post("/account", json={"name": "Newest Co"}).json["id"]

    assert second > first
    assert fourth > third


def test_a_malformed_url_is_422_and_not_a_default(crm: Api) -> None:
    doc = {
        "name": "site",
        "label": "Site",
        "fields": [{"name": "home", "type": "url", "label": "Home"}],
    }
    crm.put("/meta/entities/site", json=doc)
    bad_default = copy.deepcopy(doc)
    bad_default["fields"][0]["default"] = "http://[x"

    value = crm.post("/site", json={"home": "https://[::1"})
    default = crm.put("/meta/entities/site", json=bad_default)

    assert value.status_code == 422
    assert value.json["errors"][0]["code"] == "invalid_url"
    assert default.status_code == 422
    assert default.json["errors"][0]["field"] == "fields[0].default"


@pytest.mark.parametrize(
    "doc",
    [
        {"label": "M", "fields": [{"name": [], "type": "text", "label": "T"}]},
        {"label": "M", "id": {}, "fields": []},
        {"label": "M\ud800", "fields": []},
    ],
)
def test_malformed_documents_are_422(api: Api, doc: dict[str, Any]) -> None:
    response = api.put("/meta/entities/mf", json=doc)

    assert response.status_code == 422


def test_names_starting_with_pg_are_reserved(api: Api) -> None:
    response = api.put(
        "/meta/entities/pg_class", json={"name": "pg_class", "label": "X", "fields": []}
    )

    assert response.status_code == 422


def test_unique_text_is_short_enough_to_index(api: Api) -> None:
    doc = {
        "name": "coded",
        "label": "Coded",
        "fields": [
            {
                "name": "code",
                "type": "text",
                "label": "Code",
                "unique": True,
                "max_length": 20000,
            }
        ],
    }

    response = api.put("/meta/entities/coded", json=doc)

    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "fields[0].max_length"


def test_picklist_values_must_survive_a_file(api: Api) -> None:
    doc = {
        "name": "tagged",
        "label": "Tagged",
        "fields": [
            {
                "name": "tags",
                "type": "multi_picklist",
                "label": "Tags",
                "options": [
                    {"value": "b;c", "label": "B or C"},
                    {"value": " a ", "label": "A"},
                ],
            }
        ],
    }

    response = api.put("/meta/entities/tagged", json=doc)

    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == [
        "fields[0].options[0].value",
        "fields[0].options[1].value",
    ]


def test_an_empty_multi_picklist_list_is_stored_as_null(
    sales: Platform, api: Api
) -> None:
    created = api.post(
        "/sales_lead",
        json={"company": "Quill Works", "full_name": "Ada Quill", "interests": []},
    )

    assert created.json["interests"] is None
    assert api.get("/sales_lead?interests__isnull=true&count=1").json["count"] == 1


def test_removing_an_entity_honours_if_match(crm: Api) -> None:
    etag = crm.get("/meta/entities/opportunity").headers["ETag"]
    changed = document(crm)
    changed["label"] = "Deal"
    crm.put("/meta/entities/opportunity", json=changed)

    stale = crm.delete("/meta/entities/opportunity", headers={"If-Match": etag})

    assert stale.status_code == 412
    assert crm.get("/meta/entities/opportunity").status_code == 200


def test_rename_and_reuse_the_old_name_in_one_change(crm: Api) -> None:
    crm.post("/opportunity", json={"title": "Deal", "erp_code": "E-1"})
    changed = document(crm)
    changed["fields"][5]["name"] = "legacy_code"
    changed["fields"].append({"name": "erp_code", "type": "text", "label": "ERP code"})

    response = crm.put("/meta/entities/opportunity", json=changed)

    assert response.status_code == 200, response.json
    record = crm.get("/opportunity/1").json
    assert (record["legacy_code"], record["erp_code"]) == ("E-1", None)


def test_a_nul_character_in_a_query_parameter_is_a_clear_400(api: Api) -> None:
    api.put("/meta/entities/account", json=ACCOUNT)

    response = api.get("/account?name__contains=a%00b")

    assert response.status_code == 400
    assert "NUL" in response.get_json()["detail"]
    assert [(e["field"], e["code"]) for e in response.get_json()["errors"]] == [
        ("name__contains", "invalid_parameter")
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/users/dana%00vega",
        "/teams/north%00",
        "/meta/entities/account%00/history",
        "/meta/rules/rule%00/history",
    ],
)
def test_a_nul_character_in_the_address_is_a_clear_400(api: Api, path: str) -> None:
    response = api.get(path)

    assert response.status_code == 400
    assert "NUL" in response.get_json()["detail"]


@pytest.mark.parametrize("digit", ["%D9%A1", "%EF%BC%91"])
def test_a_record_address_takes_only_the_digits_0_to_9(crm: Api, digit: str) -> None:
    # An Arabic-Indic and a full-width one are digits to a regular expression
    # and 1 to int; read as such, each would be a second address of record 1.
    crm.post("/account", json={"name": "Orbit"})

    read = crm.get(f"/account/{digit}")
    deleted = crm.delete(f"/account/{digit}")

    assert (read.status_code, deleted.status_code) == (404, 404)
    assert crm.get("/account/1").status_code == 200


@pytest.mark.parametrize("path", ["/meta/revisions", "/audit/logins"])
@pytest.mark.parametrize(
    "query", ["limit=%C2%B2", "cursor=%E2%91%A0", "cursor=%EF%BC%91"]
)
def test_digits_other_than_0_to_9_in_a_page_parameter_are_400(
    api: Api, path: str, query: str
) -> None:
    # A superscript two and a circled one are digits to str.isdigit, and no
    # number to int; a full-width one is both, and no cursor we write.
    response = api.get(f"{path}?{query}")

    assert response.status_code == 400


@pytest.mark.parametrize("token_id", ["9223372036854775808", "99999999999999999999"])
def test_revoking_a_token_id_past_64_bits_is_404(api: Api, token_id: str) -> None:
    response = api.delete(f"/auth/tokens/{token_id}")

    assert response.status_code == 404
    assert response.get_json()["detail"] == f"There is no API token {token_id}."


def test_a_database_error_does_not_carry_the_values_of_its_statement(
    platform: Platform,
) -> None:
    # The error is logged whole when a request fails unexpectedly.
    statement = sa.text("INSERT INTO nowhere VALUES (:name)")
    with (
        pytest.raises(sa.exc.DBAPIError) as excinfo,
        platform.engine.begin() as connection,
    ):
        connection.execute(statement, {"name": "Orla Quill"})

    assert "Orla Quill" not in str(excinfo.value)


def test_metadata_text_cannot_hold_a_nul_character(api: Api) -> None:
    document = {**ACCOUNT, "label": "Acc\x00ount"}

    response = api.put("/meta/entities/account", json=document)

    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "label"


def test_production_refuses_a_short_secret_key() -> None:
    with pytest.raises(RuntimeError, match="at least 32 characters"):
        Settings.load({"production": True, "secret_key": "short"})


def test_text_of_spaces_only_is_blank_on_every_path(api: Api) -> None:
    api.put("/meta/entities/account", json=ACCOUNT)

    refused = api.post("/account", json={"name": "   "})

    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["code"] == "required"


def test_a_filter_through_a_lookup_says_what_lists_cannot_do(api: Api) -> None:
    api.put("/meta/entities/account", json=ACCOUNT)
    condition = json.dumps({"==": [{"var": "parent.name"}, "Acme"]})

    response = api.get("/account", query_string={"filter": condition})

    assert response.status_code == 400
    assert "compare 'parent' itself" in response.get_json()["detail"]


def test_bypass_automation_takes_yes_or_no_only(api: Api) -> None:
    api.put("/meta/entities/account", json=ACCOUNT)

    response = api.post("/account?bypass_automation=garbage", json={"name": "Acme"})

    assert response.status_code == 400
    assert api.get("/account?count=true").get_json()["count"] == 0
