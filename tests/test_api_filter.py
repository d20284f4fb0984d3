"""``filter=<JSON condition>`` on lists: combined with filters, counts and cursors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from tailorcrm.platform import Platform
from tailorcrm.rules_engine import evaluate
from tests.conftest import Api, add_field, grant_all


def seed(crm: Api) -> None:
    rows = [
        ("Alpha", "won", "1500.00", "2024-05-01"),
        ("Beta", "won", "200.00", None),
        ("Gamma", "prospecting", "3000.00", "2024-07-01"),
        ("Delta", "won", None, "2024-06-15"),
        ("Epsilon", "won", "5000.50", "2024-06-20"),
    ]
    for title, stage, amount, close_date in rows:
        body = {"title": title, "stage": stage, "amount": amount}
        body["close_date"] = close_date
        assert crm.post("/opportunity", json=body).status_code == 201


def titles(response: Any) -> list[str]:
    return [record["title"] for record in response.json["data"]]


def query(condition: Any, **params: str) -> dict[str, str]:
    return {"filter": json.dumps(condition), **params}


def test_filter_selects_with_other_filters_and_count(crm: Api) -> None:
    seed(crm)
    condition = {">": [{"var": "amount"}, 1000]}

    response = crm.get(
        "/opportunity", query_string=query(condition, stage="won", count="true")
    )

    assert response.status_code == 200
    assert titles(response) == ["Alpha", "Epsilon"]
    assert response.json["count"] == 2


def test_filter_pages_with_cursor(crm: Api) -> None:
    seed(crm)
    condition = {"==": [{"var": "stage"}, "won"]}

    first = crm.get(
        "/opportunity", query_string=query(condition, sort="title", limit="2")
    )
    cursor = first.json["next"].split("cursor=")[1]
    second = crm.get(
        "/opportunity",
        query_string=query(condition, sort="title", limit="2", cursor=cursor),
    )

    assert titles(first) == ["Alpha", "Beta"]
    assert titles(second) == ["Delta", "Epsilon"]
    assert second.json["next"] is None


def test_null_field_and_empty_group_never_select_everything(crm: Api) -> None:
    seed(crm)

    empty = crm.get("/opportunity", query_string=query({"and": []}, count="1"))
    before = crm.get(
        "/opportunity",
        query_string=query({"<": [{"var": "close_date"}, "2024-06-16"]}),
    )

    assert titles(empty) == []
    assert empty.json["count"] == 0
    assert titles(before) == ["Alpha", "Delta"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('{"==": [{"var": "amount"}, NaN]}', "not valid JSON"),
        ('{"<": [{"var": "amount"}, 1e999]}', "1e999 is too large a number"),
        (
            '{"<": [{"var": "amount"}, %s]}' % ("9" * 5000),
            "<[1]: A whole number of 5,000 digits is too large.",
        ),
        ('{"==": [{"var": "amont"}, 1]}', "amont"),
        ('{"matches": [{"var": "title"}, "^A"]}', "no SQL translation"),
        ('{"frobnicate": [1]}', "frobnicate"),
        ('{"and": 5}', "and"),
        ('{"<": [{"var": "created_at"}, "2024-05-31T10:00+00:60"]}', "not a date"),
        ('{"<": [{"var": "created_at"}, "2024-05-31T10:00+0060"]}', "not a date"),
    ],
)
def test_bad_filter_is_400_naming_filter(crm: Api, text: str, reason: str) -> None:
    response = crm.get("/opportunity", query_string={"filter": text})

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["detail"].startswith("filter:")
    assert reason in response.json["detail"]


@pytest.mark.parametrize(
    "moment",
    ["2024-05-01T10:00:00+0200", "2024-05-01T10:00+02", "2024-05-01T08:00:00Z"],
)
def test_filter_reads_a_moment_as_a_list_filter_reads_it(api: Api, moment: str) -> None:
    """+0200 and +02 are offsets to the API; a condition reads them the same."""
    call = {
        "name": "phone_call",
        "label": "Call",
        "display_field": "subject",
        "fields": [
            {"name": "subject", "type": "text", "label": "Subject", "required": True},
            {"name": "due_at", "type": "datetime", "label": "Due at"},
        ],
    }
    assert api.put("/meta/entities/phone_call", json=call).status_code == 201
    for subject, due_at in [
        ("Early call", "2024-05-01T07:59:59Z"),
        ("On time call", "2024-05-01T08:00:00Z"),
        ("Late call", "2024-05-01T09:00:00Z"),
    ]:
        body = {"subject": subject, "due_at": due_at}
        assert api.post("/phone_call", json=body).status_code == 201
    condition = {">=": [{"var": "due_at"}, moment]}

    listed = api.get("/phone_call", query_string={"due_at__gte": moment, "sort": "id"})
    filtered = api.get("/phone_call", query_string=query(condition, sort="id"))

    assert filtered.status_code == 200, filtered.json
    assert [r["subject"] for r in listed.json["data"]] == ["On time call", "Late call"]
    assert [r["subject"] for r in filtered.json["data"]] == [
        "On time call",
        "Late call",
    ]


def test_filter_reads_the_caller_as_user(crm: Api, platform: Any, app: Any) -> None:
    from tailorcrm.platform.auth import create_token, create_user

    with platform.engine.begin() as connection:
        seller = create_user(connection, "seller", "seller-password")
        token = create_token(connection, seller)
    other = Api(app.test_client(), token)
    grant_all(platform, "seller")
    crm.post("/opportunity", json={"title": "Admin's"})
    other.post("/opportunity", json={"title": "Seller's"})
    mine = {"==": [{"var": "owner_id"}, {"var": "$user.id"}]}

    admin_view = crm.get("/opportunity", query_string=query(mine))
    seller_view = other.get("/opportunity", query_string=query(mine))

    assert titles(admin_view) == ["Admin's"]
    assert titles(seller_view) == ["Seller's"]


def nested_coalesce(depth: int) -> Any:
    condition: Any = {"var": "title"}
    for _ in range(depth):
        condition = {"coalesce": [condition, {"var": "title"}]}
    return {"==": [condition, "x"]}


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(nested_coalesce(12)),
        '{"<": [{"var": "close_date"}, "0001-01-01"]}'.replace(
            "0001-01-01", "0001-01-01T01:00:00+02:00"
        ),
        '{"==": [{"var": "title"}, "\\ud800"]}',
        "[" * 2000 + "]" * 2000,
        '{">": [{"*": [{"var": "id"}, 1e308]}, 1e308]}',
        '{">": [{"/": [{"var": "id"}, 1e-320]}, 1]}',
        '{"==": [{"+": [{"var": "id"}, 9223372036854775807]}, 1]}',
    ],
)
def test_filters_that_cannot_run_are_400(crm: Api, raw: str) -> None:
    seed(crm)

    response = crm.get("/opportunity", query_string={"filter": raw})

    assert response.status_code == 400
    assert response.json["detail"].startswith("filter:")
    assert [error["field"][:6] for error in response.json["errors"]] == ["filter"]


HUGE = 10**309


@pytest.mark.parametrize(
    "condition",
    [
        {">": [{"+": [HUGE, 0.5]}, 0]},
        {"!": {">": [{"+": [HUGE, 0.5]}, 0]}},
        {">": [{"*": [{"var": "id"}, HUGE, 0.5]}, 1]},
        {"==": [{"%": [0.5, HUGE]}, 0]},
        {"==": [{"cat": [{"*": [10**1500, 10**1500, 10**1500]}]}, "x"]},
        {"<": [{"var": "amount"}, HUGE]},
    ],
)
def test_whole_numbers_past_the_float_range_are_no_number(
    crm: Api, condition: Any
) -> None:
    """A number no float can hold fails like a division by zero: the filter is
    refused or selects what Python's evaluation selects, never a 500."""
    seed(crm)
    everything = crm.get("/opportunity", query_string={"limit": "100"}).json["data"]
    expected = sorted(r["title"] for r in everything if evaluate(condition, r))

    response = crm.get("/opportunity", query_string=query(condition, limit="100"))

    assert response.status_code in (200, 400), response.json
    if response.status_code == 200:
        assert sorted(titles(response)) == expected
    else:
        assert response.json["detail"].startswith("filter:")


def test_upper_and_lower_fold_every_letter(crm: Api) -> None:
    crm.post("/opportunity", json={"title": "émile"})

    upper = crm.get(
        "/opportunity",
        query_string=query({"==": [{"upper": {"var": "title"}}, "ÉMILE"]}),
    )

    assert titles(upper) == ["émile"]


def test_user_name_is_known_to_filters(crm: Api) -> None:
    seed(crm)
    condition = {"==": [{"var": "$user.username"}, "admin"]}

    response = crm.get("/opportunity", query_string=query(condition, count="1"))

    assert response.status_code == 200, response.json
    assert response.json["count"] == 5


def test_a_filter_that_is_not_json_says_so_in_its_errors(crm: Api) -> None:
    for text in (
        "{not json",
        '{"==": [{"var": "amount"}, NaN]}',
        '{"==": [1e999, 1e999]}',
    ):
        response = crm.get("/opportunity", query_string={"filter": text})
        assert response.status_code == 400
        assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
            ("filter", "invalid_json")
        ]


@pytest.mark.parametrize(
    ("condition", "field", "code"),
    [
        ({"==": [{"var": "amont"}, 1]}, "filter.==[0]", "unknown_field"),
        ({"var": ["title", "\x00"]}, "filter.var[1]", "unsupported_in_sql"),
        (
            {"or": [False, {"in": [{"var": "amount"}, [5, 1e-13]]}]},
            "filter.or[1].in[1][1]",
            "unsupported_in_sql",
        ),
        (
            {"contains": [[1e16], {"var": "amount"}]},
            "filter.contains[0][0]",
            "unsupported_in_sql",
        ),
        ({"matches": [{"var": "title"}, "^A"]}, "filter", "unsupported_in_sql"),
        ({"and": [{"==": [1, 1]}, {"frobnicate": [1]}]}, "filter.and[1]", None),
        ([{"frobnicate": [1]}], "filter[0]", None),
        (
            {
                "or": [
                    {"==": [{"var": "title"}, "x"]},
                    {"<": [{"var": "close_date"}, "0001-01-01T00:00:00+14:00"]},
                ]
            },
            "filter.or[1]",
            "out_of_range",
        ),
        # A date moved beyond the year 9999 gives null, which a date is not
        # ordered against: named where it is, not at the whole filter.
        (
            {
                "<": [
                    {"var": "close_date"},
                    {"date_add": [{"today": []}, 99999999, "days"]},
                ]
            },
            "filter.<[1]",
            "unsupported_in_sql",
        ),
        (
            {"and": [{">": [{"var": "$user.nickname"}, {"var": "title"}]}]},
            "filter.and[0].>[0]",
            "unsupported_in_sql",
        ),
        # An object, which and gives as its last operand: named where it is
        # written, not at the whole filter.
        (
            {"and": [True, {"label": "Won", "value": "won"}]},
            "filter.and[1]",
            "unsupported_in_sql",
        ),
        (
            {"==": [{"var": "title"}, {"if": [True, {"x": 1, "y": 2}, "z"]}]},
            "filter.==[1].if[1]",
            "unsupported_in_sql",
        ),
        # A choice's label (or its value in other letters) where the value
        # belongs: it would select nothing, and a rule so written is refused.
        ({"==": [{"var": "stage"}, "Won"]}, "filter.==[1]", "choice_label"),
        (
            {"or": [{"in": [{"var": "stage"}, ["prospecting", "WON"]]}]},
            "filter.or[0].in[1][1]",
            "choice_label",
        ),
    ],
)
def test_a_bad_filter_names_the_place_in_its_errors(
    crm: Api, condition: Any, field: str, code: str | None
) -> None:
    response = crm.get("/opportunity", query_string=query(condition))

    assert response.status_code == 400
    errors = response.json["errors"]
    assert errors, response.json
    assert errors[0]["field"] == field, errors
    if code is not None:
        assert errors[0]["code"] == code
    assert errors[0]["message"] in response.json["detail"]


def _locale_collation(platform: Platform, table: str, column: str) -> None:
    """Give ``column`` a language's collation, as a database created with a locale
    gives every text column: there ``a`` sorts before ``B``, by code point after."""
    if platform.engine.dialect.name != "postgresql":
        return
    with platform.engine.begin() as connection:
        found = connection.execute(
            sa.text("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'")
        ).first()
        if found is None:
            pytest.skip("this PostgreSQL has no ICU collations")
        connection.execute(
            sa.text(
                f'ALTER TABLE "{table}" ALTER COLUMN "{column}" '
                'TYPE varchar(200) COLLATE "und-x-icu"'
            )
        )


@pytest.mark.parametrize("op", ["lt", "lte", "gt", "gte"])
def test_a_text_filter_orders_as_the_same_condition_does(
    crm: Api, platform: Platform, op: str
) -> None:
    for title in ("apple", "Banana", "b", "cherry", "Zebra"):
        assert crm.post("/opportunity", json={"title": title}).status_code == 201
    _locale_collation(platform, "opportunity", "title")
    operator = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
    condition = {operator: [{"var": "title"}, "b"]}

    by_parameter = crm.get(f"/opportunity?title__{op}=b&sort=title")
    by_condition = crm.get("/opportunity", query_string=query(condition))

    assert by_parameter.status_code == 200, by_parameter.json
    assert by_condition.status_code == 200, by_condition.json
    expected = sorted(
        title
        for title in ("apple", "Banana", "b", "cherry", "Zebra")
        if evaluate(condition, {"title": title})
    )
    assert sorted(titles(by_parameter)) == expected
    assert sorted(titles(by_condition)) == expected


def test_a_long_in_list_selects_without_a_server_error(crm: Api) -> None:
    # SQLite parses a chain of ORs a level deeper per term and refuses more
    # than 1000 levels, while the list below fits in a filter's size.
    seed(crm)
    amounts = [*range(6000, 7500), 1500]
    condition = {"in": [{"var": "amount"}, amounts]}

    response = crm.get("/opportunity", query_string=query(condition))

    assert response.status_code == 200
    assert titles(response) == ["Alpha"]


def test_a_record_the_caller_cannot_read_never_stops_their_filter(
    crm: Api, platform: Platform, app: Any
) -> None:
    from tailorcrm.platform.access import set_user_roles
    from tailorcrm.platform.auth import create_token, create_user

    add_field(
        crm, "opportunity", {"name": "seats", "type": "integer", "label": "Seats"}
    )
    add_field(crm, "opportunity", {"name": "region", "type": "text", "label": "Region"})
    # A sharing rule costlier to test than the filter, which the database
    # would otherwise test first.
    opened = {
        "or": [
            {"contains": [{"lower": {"var": "region"}}, "nor"]},
            {"starts_with": [{"lower": {"var": "title"}}, "shared"]},
        ]
    }
    role = {
        "kind": "role",
        "name": "rep",
        "label": "Rep",
        "entities": {"opportunity": {"create": "own", "read": "own"}},
        "sharing": [
            {
                "name": "northern",
                "entity": "opportunity",
                "access": "read",
                "condition": opened,
            }
        ],
    }
    platform.store.apply([("", role)], actor="test")
    with platform.engine.begin() as connection:
        token = create_token(connection, create_user(connection, "rep", "rep-pass-1"))
    with platform.transaction() as (connection, catalog):
        set_user_roles(connection, catalog, "rep", ["rep"])
    rep = Api(app.test_client(), token)
    unseen = {"title": "Unseen", "seats": 9223372036854775000, "region": "south"}
    assert crm.post("/opportunity", json=unseen).status_code == 201
    assert (
        rep.post("/opportunity", json={"title": "Own", "seats": 1}).status_code == 201
    )
    condition = {">": [{"+": [{"var": "seats"}, 1000]}, 0]}

    response = rep.get("/opportunity", query_string=query(condition, count="1"))

    assert response.status_code == 200, response.json
    assert titles(response) == ["Own"]
    assert response.json["count"] == 1


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"!": {"==": [{"var": "title"}, {"var": "stage"}]}}, "!"),
        ({"and": [{"!": {"<": [{"var": "close_date"}, "soon"]}}]}, "and[0].!"),
        ({"!": [{"matches": [{"var": "title"}, "^A"]}]}, "![0]"),
    ],
)
def test_a_filter_refused_in_sql_names_its_place_as_it_is_written(
    crm: Api, condition: Any, path: str
) -> None:
    """An operand written alone, not in a list, is named where it is written,
    as the static checks name it, not as item 0 of a list the filter lacks."""
    response = crm.get("/opportunity", query_string=query(condition))

    assert response.status_code == 400
    assert [error["field"] for error in response.json["errors"]] == [f"filter.{path}"]
    assert response.json["detail"].startswith(f"filter: {path}: ")


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"!": {"==": [{"var": "stage"}, "Won"]}}, "!.==[1]"),
        (
            {"and": [{"!": {"in": [{"var": "stage"}, ["won", "Prospecting"]]}}]},
            "and[0].!.in[1][1]",
        ),
        ({"!": [{"!=": [{"var": "stage"}, "WON"]}]}, "![0].!=[1]"),
    ],
)
def test_a_choice_label_is_named_where_it_is_written(
    crm: Api, condition: Any, path: str
) -> None:
    """A label compared within an operand written alone is named there, as the
    other problems of a filter are, by the list and by a view being saved."""
    listed = crm.get("/opportunity", query_string=query(condition))
    view = {"entity": "opportunity", "label": "Not won", "filter": condition}
    saved = crm.post("/meta/views", json=view)

    assert listed.status_code == 400
    assert [error["field"] for error in listed.json["errors"]] == [f"filter.{path}"]
    assert listed.json["detail"].startswith(f"filter: {path}: ")
    assert saved.status_code == 422
    assert [error["field"] for error in saved.json["errors"]] == [f"filter.{path}"]
