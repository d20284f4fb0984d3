"""Formulas and the values a record is given when it is stored.

A formula may read an autonumber, ``created_at``, ``created_by`` or the owner a new
record gets by default: those are given as the record is stored, and the formula is
computed again then. A record's own ``id``, and the ``version`` and ``updated_at``
of any record, move where no formula follows them; a formula that reads them is
refused when it is saved. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest

from tailorcrm.platform import Platform
from tailorcrm.platform.importer import ImportFailed
from tailorcrm.platform.records import SYSTEM_ACTOR, BatchFailed
from tests.conftest import Api
from tests.rules_support import (
    ACCOUNT,
    OPPORTUNITY,
    create,
    define,
    load_csv,
    problems,
    rule,
    with_unique,
)

#: The Account of the other rule tests, with a number and fields formulas fill.
NUMBERED_ACCOUNT = {
    **ACCOUNT,
    "fields": [
        *ACCOUNT["fields"],
        {
            "name": "number",
            "type": "autonumber",
            "label": "Number",
            "prefix": "AC-",
            "digits": 4,
        },
        {"name": "label", "type": "text", "label": "Label"},
        {"name": "made", "type": "text", "label": "Made"},
    ],
}


LABEL = rule(
    "label",
    "account",
    "formula",
    field="label",
    expression={"cat": [{"var": "number"}, " ", {"var": "name"}]},
)
MADE = rule(
    "made",
    "account",
    "formula",
    field="made",
    expression={
        "cat": [
            {"if": [{"is_blank": {"var": "created_at"}}, "no date", "dated"]},
            " by ",
            {"var": "created_by"},
            " for ",
            {"var": "owner_id"},
        ]
    },
)


@pytest.fixture
def crm(api: Api) -> Api:
    define(api, NUMBERED_ACCOUNT, OPPORTUNITY)
    return api


def test_a_formula_reads_the_autonumber_a_new_record_is_given(crm: Api) -> None:
    define(crm, LABEL)
    first = create(crm, "account", name="Corvid Tools")
    assert first["number"] == "AC-0001"
    assert first["label"] == "AC-0001 Corvid Tools"
    stored = crm.get(f"/account/{first['id']}").json
    assert stored["label"] == "AC-0001 Corvid Tools"
    assert stored["version"] == 1
    renamed = crm.patch(f"/account/{first['id']}", json={"name": "Corvid Works"})
    assert renamed.json["label"] == "AC-0001 Corvid Works"


def test_a_batch_gets_each_record_its_own_number(crm: Api, platform: Platform) -> None:
    define(crm, LABEL)
    with platform.records(SYSTEM_ACTOR) as service:
        ids, bad = service.create_many(
            "account", [{"name": "Pike Mills"}, {"name": "Wren Lane"}]
        )
    assert not bad
    labels = [crm.get(f"/account/{record_id}").json["label"] for record_id in ids]
    assert labels == ["AC-0001 Pike Mills", "AC-0002 Wren Lane"]


def test_a_formula_reads_when_and_by_whom_a_record_was_made(crm: Api) -> None:
    define(crm, MADE)
    made = create(crm, "account", name="Corvid Tools")
    user = made["created_by"]
    assert made["owner_id"] == user
    assert made["made"] == f"dated by {user} for {user}"


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("id", "quantity"),
        ("version", "quantity"),
        ("updated_at", "industry"),
        ("account.version", "quantity"),
        ("account.updated_at", "industry"),
    ],
)
def test_a_formula_that_reads_a_value_no_formula_follows_is_refused(
    crm: Api, name: str, field: str
) -> None:
    document = rule(
        "unfollowed", "opportunity", "formula", field=field, expression={"var": name}
    )
    response = crm.put("/meta/rules/unfollowed", json=document)
    assert response.status_code == 422, response.json
    assert ("unfollowed.expression", "unfollowed_field") in problems(response)
    assert repr(name) in str(response.json)


def test_each_unfollowed_read_is_named_where_it_is_read(crm: Api) -> None:
    expression = {
        "+": [{"var": "quantity"}, {"var": "version"}, {"var": "account.version"}]
    }
    document = rule(
        "unfollowed", "opportunity", "formula", field="touches", expression=expression
    )

    response = crm.put("/meta/rules/unfollowed", json=document)

    assert problems(response) == [
        ("unfollowed.expression.+[2]", "unfollowed_field"),
        ("unfollowed.expression.+[1]", "unfollowed_field"),
    ]
    assert "'account.version'" in response.json["errors"][0]["message"]


def test_a_formula_may_read_the_id_of_the_record_it_points_to(crm: Api) -> None:
    define(
        crm,
        rule(
            "account_seen",
            "opportunity",
            "formula",
            field="quantity",
            expression={"var": "account.id"},
        ),
    )
    account = create(crm, "account", name="Corvid Tools")
    deal = create(crm, "opportunity", title="Kiosks", account=account["id"])
    assert deal["quantity"] == account["id"]


@pytest.mark.parametrize(
    "expression",
    [
        {"missing_some": [1, "version"]},
        {"exists": "id"},
        {"exists": ["account", "version"]},
        {"map": [[1], {"val": [[2], "id"]}]},
        {"try": [{"throw": "x"}, {"val": [[2], "version"]}]},
        {"reduce": [[1], {"val": [[4], "updated_at"]}, None]},
    ],
    ids=["missing_some", "exists", "exists-through", "map-val", "try-val", "reduce"],
)
def test_no_way_of_writing_an_unfollowed_read_gets_past_the_check(
    crm: Api, expression: Any
) -> None:
    document = rule(
        "unfollowed", "opportunity", "formula", field="industry", expression=expression
    )
    response = crm.put("/meta/rules/unfollowed", json=document)
    assert response.status_code == 422, response.json
    codes = {code for _, code in problems(response)}
    assert codes & {"unfollowed_field", "dynamic_field"}, response.json


SHORT_LABEL_ACCOUNT = {
    **NUMBERED_ACCOUNT,
    "fields": [
        {**spec, "max_length": 12} if spec["name"] == "label" else spec
        for spec in NUMBERED_ACCOUNT["fields"]
    ],
}


def test_a_formula_that_only_fails_once_numbered_names_its_field(api: Api) -> None:
    define(api, SHORT_LABEL_ACCOUNT, OPPORTUNITY, LABEL)
    refused = api.post("/account", json={"name": "abcdefghij"})
    assert refused.status_code == 422, refused.json
    assert problems(refused) == [("label", "rule_value")]
    assert "'label'" in refused.json["errors"][0]["message"]


def test_an_import_skips_only_the_rows_whose_numbered_formula_fails(
    api: Api, platform: Platform
) -> None:
    define(api, SHORT_LABEL_ACCOUNT, OPPORTUNITY, LABEL)
    text = "name\nab\nabcdefghij\ncd\n"
    report = load_csv(platform, "account", text, skip_bad_rows=True)
    assert (report.created, report.failed_rows) == (2, 1)
    assert [(e.row, e.field, e.code) for e in report.errors] == [
        (3, "label", "rule_value")
    ]
    stored = sorted(
        (a["name"], a["label"], a["number"]) for a in api.get("/account").json["data"]
    )
    assert [name for name, _, _ in stored] == ["ab", "cd"]
    assert all(label == f"{number} {name}" for name, label, number in stored)


#: An account whose formula code is unique and made from its number.
CODED_ACCOUNT = {
    **NUMBERED_ACCOUNT,
    "fields": [
        *NUMBERED_ACCOUNT["fields"],
        {"name": "code", "type": "text", "label": "Code", "unique": True},
    ],
}


def _code(expression: Any) -> dict[str, Any]:
    return rule("code", "account", "formula", field="code", expression=expression)


def test_a_unique_formula_of_the_number_is_judged_on_the_numbers_given(
    api: Api, platform: Platform
) -> None:
    # Before they are stored, every row's code would read "X-": the batch is not
    # refused for that, only values as stored count.
    define(api, CODED_ACCOUNT, OPPORTUNITY, _code({"cat": ["X-", {"var": "number"}]}))
    with platform.records(SYSTEM_ACTOR) as service:
        ids, bad = service.create_many(
            "account", [{"name": "Pike Mills"}, {"name": "Wren Lane"}]
        )
    assert not bad
    codes = [api.get(f"/account/{record_id}").json["code"] for record_id in ids]
    assert codes == ["X-AC-0001", "X-AC-0002"]
    report = load_csv(platform, "account", "name\nHolt Forge\nMarsh Quay\n")
    assert (report.created, report.failed_rows) == (2, 0)


def test_a_unique_formula_of_the_number_that_clashes_names_its_field(
    api: Api, platform: Platform
) -> None:
    # "AC-000" for the first nine numbers: the second record clashes.
    define(
        api, CODED_ACCOUNT, OPPORTUNITY, _code({"substr": [{"var": "number"}, 0, 6]})
    )
    first = create(api, "account", name="Pike Mills")
    assert first["code"] == "AC-000"

    refused = api.post("/account", json={"name": "Wren Lane"})

    assert refused.status_code == 409, refused.json
    assert problems(refused) == [("code", "unique")]
    assert "'AC-000'" in refused.json["errors"][0]["message"]
    assert [a["name"] for a in api.get("/account").json["data"]] == ["Pike Mills"]

    report = load_csv(
        platform, "account", "name\nHolt Forge\nMarsh Quay\n", skip_bad_rows=True
    )
    assert (report.created, report.failed_rows) == (0, 2)
    assert [(e.row, e.field, e.code) for e in report.errors] == [
        (2, "code", "unique"),
        (3, "code", "unique"),
    ]
    with pytest.raises(ImportFailed, match=r"row 2\.code: Code 'AC-000'"):
        load_csv(platform, "account", "name\nHolt Forge\n")
    assert [a["name"] for a in api.get("/account").json["data"]] == ["Pike Mills"]


def test_a_new_unique_formula_whose_values_clash_is_refused_whole(api: Api) -> None:
    define(api, CODED_ACCOUNT, OPPORTUNITY)
    create(api, "account", name="Pike Mills")
    create(api, "account", name="Wren Lane")
    code = _code({"substr": [{"var": "number"}, 0, 6]})

    refused = api.put("/meta/rules/code", json=code)

    assert refused.status_code == 409, refused.json
    assert problems(refused) == [("account.code", "unique")]
    assert "'AC-000'" in refused.json["errors"][0]["message"]
    assert api.get("/meta/rules/code").status_code == 404
    assert [a["code"] for a in api.get("/account").json["data"]] == [None, None]


def test_a_unique_formula_recomputed_into_a_clash_refuses_the_save(api: Api) -> None:
    # The opportunity's unique industry copies its account's name.
    opportunity = with_unique(OPPORTUNITY, "industry")
    industry = rule(
        "industry",
        "opportunity",
        "formula",
        field="industry",
        expression={"var": "account.name"},
    )
    define(api, ACCOUNT, opportunity, industry)
    first = create(api, "account", name="Pike Mills")
    second = create(api, "account", name="Wren Lane")
    create(api, "opportunity", title="Ferry", account=first["id"])
    create(api, "opportunity", title="Barge", account=second["id"])

    refused = api.patch(f"/account/{second['id']}", json={"name": "Pike Mills"})

    assert refused.status_code == 409, refused.json
    assert problems(refused) == [("opportunity.industry", "unique")]
    assert api.get(f"/account/{second['id']}").json["name"] == "Wren Lane"
    assert sorted(o["industry"] for o in api.get("/opportunity").json["data"]) == [
        "Pike Mills",
        "Wren Lane",
    ]


def test_a_clash_between_rows_of_one_batch_is_a_value_given_twice(
    api: Api, platform: Platform
) -> None:
    define(
        api, CODED_ACCOUNT, OPPORTUNITY, _code({"substr": [{"var": "number"}, 0, 6]})
    )

    report = load_csv(
        platform, "account", "name\nHolt Forge\nMarsh Quay\n", skip_bad_rows=True
    )

    assert (report.created, report.failed_rows) == (1, 1)
    assert [(e.row, e.field, e.code) for e in report.errors] == [(3, "code", "unique")]
    assert "appears twice in this batch" in report.errors[0].message
    with platform.records(SYSTEM_ACTOR) as service, pytest.raises(BatchFailed) as bad:
        service.create_many("account", [{"name": "Pike Mills"}, {"name": "Wren"}])
    # Both clash with the record stored by the import, not with each other.
    assert {
        index: [(p.code, p.message) for p in found]
        for index, found in bad.value.rows.items()
    } == {
        index: [("unique", "Code 'AC-000' is already used by record 1.")]
        for index in (0, 1)
    }


def test_only_unique_formulas_fed_by_stored_values_wait_for_them(
    api: Api, platform: Platform
) -> None:
    # The code reads the name alone: a name given twice is caught before any
    # row is stored, though another formula reads the number.
    define(
        api, CODED_ACCOUNT, OPPORTUNITY, LABEL, _code({"cat": ["K-", {"var": "name"}]})
    )
    with pytest.raises(ImportFailed, match="appears twice in this batch"):
        load_csv(platform, "account", "name\nHolt Forge\nHolt Forge\n")


def test_a_batch_whose_formula_fails_once_numbered_names_the_row(
    api: Api, platform: Platform
) -> None:
    define(api, SHORT_LABEL_ACCOUNT, OPPORTUNITY, LABEL)
    with platform.records(SYSTEM_ACTOR) as service, pytest.raises(BatchFailed) as bad:
        service.create_many("account", [{"name": "ab"}, {"name": "abcdefghij"}])
    assert {
        index: [(p.field, p.code) for p in found]
        for index, found in bad.value.rows.items()
    } == {1: [("label", "rule_value")]}
    assert api.get("/account").json["data"] == []
