"""Saved views: per user or shared, checked like metadata, kept in step with fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tailorcrm.platform import Platform
from tailorcrm.platform.access import set_user_attributes
from tailorcrm.platform.auth import User, create_token, create_user
from tailorcrm.platform.db import saved_views
from tailorcrm.platform.query import run_list
from tailorcrm.platform.views import get_view, save_view, view_query
from tailorcrm.rules_engine import field_names, rename_fields
from tests.conftest import Api, grant_all

OPEN_DEALS = {
    "entity": "opportunity",
    "label": "My open deals",
    "columns": ["title", "stage", "amount", "close_date"],
    "sort": ["-amount", "title"],
    "page_size": 50,
    "filter": {
        "and": [
            {"!=": [{"var": "stage"}, "won"]},
            {"==": [{"var": "owner_id"}, {"var": "$user.id"}]},
        ]
    },
}


class People:
    """The admin and two sellers, each with an API client and a user."""

    def __init__(self, app: Flask, platform: Platform, admin: Api) -> None:
        self.admin = admin
        self.users: dict[str, User] = {}
        clients = {}
        with platform.engine.begin() as connection:
            for name in ("seller", "buyer"):
                user = create_user(connection, name, f"{name}-password-1")
                self.users[name] = user
                clients[name] = Api(app.test_client(), create_token(connection, user))
        self.seller = clients["seller"]
        grant_all(platform, "seller", "buyer")
        self.buyer = clients["buyer"]


@pytest.fixture
def people(app: Flask, sales: Platform, api: Api) -> People:
    return People(app, sales, api)


def labels(client: Api, entity: str = "opportunity") -> list[str]:
    return [
        view["label"]
        for view in client.get(f"/meta/views?entity={entity}").json["data"]
    ]


def entity_document(api: Api, name: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/meta/entities/{name}").json
    return body


# -- who sees and changes what -----------------------------------------------------


def test_a_dry_run_where_there_is_none_is_refused_and_saves_nothing(
    people: People,
) -> None:
    """A dry run an endpoint does not know would save what it meant to check."""
    refused = people.admin.post("/meta/views?dry_run=1", json=OPEN_DEALS)
    saved = people.admin.post("/meta/views", json=OPEN_DEALS).json
    put = people.admin.put(
        f"/meta/views/{saved['id']}?dry_run=1", json={**OPEN_DEALS, "label": "New"}
    )
    deleted = people.admin.delete(f"/meta/views/{saved['id']}?dry_run=0")

    assert refused.status_code == 400
    assert refused.json["detail"].startswith("dry_run: POST /api/v1/meta/views")
    assert put.status_code == 400
    assert deleted.status_code == 400
    assert labels(people.admin) == [OPEN_DEALS["label"]]


def test_a_user_sees_shared_views_and_their_own(people: People) -> None:
    people.admin.post(
        "/meta/views", json={**OPEN_DEALS, "label": "Pipeline", "shared": True}
    )
    people.admin.post("/meta/views", json={**OPEN_DEALS, "label": "Admin's own"})
    mine = people.seller.post("/meta/views", json=OPEN_DEALS)

    assert mine.status_code == 201, mine.json
    assert mine.headers["Location"].endswith(f"/api/v1/meta/views/{mine.json['id']}")
    assert labels(people.seller) == ["My open deals", "Pipeline"]
    assert labels(people.buyer) == ["Pipeline"]
    assert labels(people.admin) == ["Admin's own", "Pipeline"]
    assert people.buyer.get(f"/meta/views/{mine.json['id']}").status_code == 404
    assert labels(people.seller, "account") == []


def test_only_administrators_share_views(people: People) -> None:
    refused = people.seller.post("/meta/views", json={**OPEN_DEALS, "shared": True})
    shared = people.admin.post("/meta/views", json={**OPEN_DEALS, "shared": True})

    assert refused.status_code == 403
    assert shared.status_code == 201
    assert shared.json["shared"] is True


def test_users_change_and_delete_only_their_own_views(people: People) -> None:
    shared = people.admin.post("/meta/views", json={**OPEN_DEALS, "shared": True}).json
    own = people.seller.post("/meta/views", json=OPEN_DEALS).json
    renamed = {**OPEN_DEALS, "label": "Renamed"}

    seen_shared = people.seller.get(f"/meta/views/{shared['id']}").json
    change_shared = people.seller.put(f"/meta/views/{shared['id']}", json=renamed)
    delete_shared = people.seller.delete(f"/meta/views/{shared['id']}")
    share_own = people.seller.put(
        f"/meta/views/{own['id']}", json={**OPEN_DEALS, "shared": True}
    )
    others = people.buyer.put(f"/meta/views/{own['id']}", json=renamed)
    admin_on_private = people.admin.put(f"/meta/views/{own['id']}", json=renamed)
    change_own = people.seller.put(f"/meta/views/{own['id']}", json={**own, **renamed})
    admin_change = people.admin.put(f"/meta/views/{shared['id']}", json=renamed)

    assert seen_shared["editable"] is False
    assert change_shared.status_code == 403
    assert delete_shared.status_code == 403
    assert share_own.status_code == 403
    assert others.status_code == 404
    assert admin_on_private.status_code == 404
    assert change_own.status_code == 200, change_own.json
    assert change_own.json["label"] == "Renamed"
    assert change_own.json["editable"] is True
    assert admin_change.status_code == 200
    assert people.seller.delete(f"/meta/views/{own['id']}").status_code == 204
    assert people.seller.get(f"/meta/views/{own['id']}").status_code == 404
    assert people.admin.delete(f"/meta/views/{shared['id']}").status_code == 204


# -- checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path", "code"),
    [
        ({"columns": ["title", "margin"]}, "columns[1]", "unknown_field"),
        ({"sort": ["-margin"]}, "sort[0]", "unknown_field"),
        ({"page_size": 500}, "page_size", "schema"),
        ({"kind": "layout"}, "kind", "schema"),
        ({"colour": "red"}, "$", "schema"),
        ({"entity": "deal"}, "entity", "unknown_entity"),
        ({"filter": {"==": [{"var": "margin"}, 1]}}, "filter.==[0]", "unknown_field"),
        (
            {"filter": {"==": [{"var": "$user.Email"}, 1]}},
            "filter.==[0]",
            "unknown_field",
        ),
        (
            {"filter": {"matches": [{"var": "title"}, "^A"]}},
            "filter",
            "unsupported_in_sql",
        ),
        # A choice's label where its value belongs would show nothing, as a
        # rule so written would never hold.
        (
            {"filter": {"and": [{"!=": [{"var": "stage"}, "Closed won"]}]}},
            "filter.and[0].!=[1]",
            "choice_label",
        ),
        (
            {"filter": {"in": [{"var": "stage"}, ["won", "Proposal"]]}},
            "filter.in[1][1]",
            "choice_label",
        ),
        (
            {"filter": {"==": [{"var": "title"}, "\ud800"]}},
            "filter",
            "invalid_text",
        ),
    ],
)
def test_bad_view_is_refused_with_the_path_of_the_problem(
    people: People, change: dict[str, Any], path: str, code: str
) -> None:
    response = people.seller.post("/meta/views", json={**OPEN_DEALS, **change})

    assert response.status_code == 422, response.json
    assert (path, code) in [(e["field"], e["code"]) for e in response.json["errors"]]
    assert labels(people.seller) == []


@pytest.mark.parametrize("label", [" ", "\u200b", "\ufeff \u200d"])
def test_a_view_named_with_nothing_that_shows_is_refused(
    people: People, label: str
) -> None:
    response = people.seller.post("/meta/views", json={**OPEN_DEALS, "label": label})

    assert response.status_code == 422, response.json
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("label", "blank")
    ]
    assert labels(people.seller) == []


def test_two_views_of_one_group_in_the_picker_cannot_share_a_name(
    people: People,
) -> None:
    own = people.seller.post("/meta/views", json=OPEN_DEALS).json
    again = people.seller.post(
        "/meta/views", json={**OPEN_DEALS, "label": " MY OPEN\u200b DEALS"}
    )
    others = people.buyer.post("/meta/views", json=OPEN_DEALS)
    shared = people.admin.post("/meta/views", json={**OPEN_DEALS, "shared": True})
    shared_again = people.admin.post(
        "/meta/views", json={**OPEN_DEALS, "label": "my open deals", "shared": True}
    )
    renamed = people.seller.put(
        f"/meta/views/{own['id']}", json={**OPEN_DEALS, "label": "My Open Deals"}
    )
    second = people.seller.post("/meta/views", json={**OPEN_DEALS, "label": "Won"})
    clash = people.seller.put(
        f"/meta/views/{second.json['id']}",
        json={**OPEN_DEALS, "label": "my open deals"},
    )

    for refused in (again, shared_again, clash):
        assert refused.status_code == 422, refused.json
        assert [(e["field"], e["code"]) for e in refused.json["errors"]] == [
            ("label", "duplicate_label")
        ]
    # Other users' own views, and shared views, are in other groups.
    assert others.status_code == 201, others.json
    assert shared.status_code == 201, shared.json
    assert renamed.status_code == 200, renamed.json
    assert labels(people.seller) == ["My Open Deals", "My open deals", "Won"]


def test_views_named_alike_before_names_were_told_apart_can_still_change(
    people: People, sales: Platform
) -> None:
    first = people.seller.post("/meta/views", json=OPEN_DEALS).json
    second = people.seller.post("/meta/views", json={**OPEN_DEALS, "label": "Won"})
    with sales.engine.begin() as connection:
        connection.execute(
            sa.update(saved_views)
            .where(saved_views.c.id == second.json["id"])
            .values(label=OPEN_DEALS["label"])
        )

    changed = people.seller.put(
        f"/meta/views/{first['id']}", json={**OPEN_DEALS, "page_size": 25}
    )

    assert changed.status_code == 200, changed.json
    assert changed.json["page_size"] == 25


def test_a_broken_character_in_a_filter_is_refused_as_list_filters_refuse_it(
    people: People,
) -> None:
    broken = {"==": [{"var": "title"}, "\ud800"]}

    saved = people.seller.post("/meta/views", json={**OPEN_DEALS, "filter": broken})
    listed = people.seller.get(
        "/opportunity", query_string={"filter": json.dumps(broken)}
    )

    assert saved.status_code == 422
    assert listed.status_code == 400
    assert (
        saved.json["errors"]
        == listed.json["errors"]
        == [
            {
                "field": "filter",
                "code": "invalid_text",
                "message": "The condition holds a broken character.",
            }
        ]
    )
    assert labels(people.seller) == []


def test_a_multi_picklist_cannot_sort_a_view(people: People) -> None:
    view = {"entity": "sales_lead", "label": "Leads", "sort": ["interests"]}

    response = people.seller.post("/meta/views", json=view)

    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("sort[0]", "not_sortable")
    ]


def test_the_entity_of_a_view_cannot_change(people: People) -> None:
    own = people.seller.post("/meta/views", json=OPEN_DEALS).json

    response = people.seller.put(
        f"/meta/views/{own['id']}", json={"entity": "account", "label": "Accounts"}
    )

    assert response.status_code == 422
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("entity", "immutable")
    ]


def test_a_view_for_another_entity_than_the_address_names_is_refused(
    people: People,
) -> None:
    response = people.seller.post("/meta/views?entity=account", json=OPEN_DEALS)

    assert response.status_code == 400
    assert "'opportunity'" in response.json["detail"]
    assert "'account'" in response.json["detail"]
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("entity", "wrong_address")
    ]
    assert labels(people.seller, "opportunity") == []


def test_a_view_sent_with_two_entities_in_its_address_is_refused(
    people: People,
) -> None:
    """Rather than saved for the first, as if only that had been named."""
    response = people.seller.post(
        "/meta/views?entity=account&entity=opportunity", json={"label": "Which one"}
    )

    assert response.status_code == 400, response.json
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("entity", "invalid_parameter")
    ]
    assert labels(people.seller, "account") == []
    assert labels(people.seller, "opportunity") == []


def test_left_out_list_settings_come_from_the_list_layout(people: People) -> None:
    response = people.seller.post(
        "/meta/views?entity=opportunity", json={"label": "Everything"}
    )

    assert response.status_code == 201, response.json
    view = response.json
    assert (view["columns"], view["sort"], view["page_size"], view["filter"]) == (
        ["title", "account", "stage", "amount", "close_date", "erp_code"],
        ["title"],
        25,
        None,
    )
    assert view["kind"] == "view"
    assert view["owner"] == "seller"
    assert view["notice"] is None


def test_saving_a_view_leaves_the_metadata_revision_alone(people: People) -> None:
    before = people.admin.get("/meta/entities").json["revision"]

    people.seller.post("/meta/views", json=OPEN_DEALS)
    people.admin.post("/meta/views", json={**OPEN_DEALS, "shared": True})

    assert people.admin.get("/meta/entities").json["revision"] == before


def test_view_query_lists_what_the_view_shows(people: People, sales: Platform) -> None:
    for client, title, stage in [
        (people.seller, "Small", "proposal"),
        (people.seller, "Large", "negotiation"),
        (people.seller, "Done", "won"),
        (people.buyer, "Not mine", "proposal"),
    ]:
        amount = 500 if title == "Small" else 9000
        client.post(
            "/opportunity", json={"title": title, "stage": stage, "amount": amount}
        )
    seller = people.users["seller"]
    with sales.transaction() as (connection, catalog):
        saved = save_view(connection, catalog, seller, dict(OPEN_DEALS))

    with sales.transaction() as (connection, catalog):
        view = get_view(connection, catalog, seller, saved["id"])
        query = view_query(catalog, view, user=seller)
        page = run_list(connection, catalog.entity("opportunity"), query)

    assert query.limit == 50
    assert [record["title"] for record in page.records] == ["Large", "Small"]


@pytest.mark.parametrize(
    ("condition", "param"),
    [
        ({"contains": [{"var": "interests"}, "Software"]}, "interests__contains"),
        ({"in": ["Software", {"var": "interests"}]}, "interests__contains"),
        ({"is_blank": {"var": "interests"}}, "interests__isnull"),
    ],
)
def test_a_view_filters_a_multi_picklist_as_the_list_filter_does(
    people: People, sales: Platform, condition: Any, param: str
) -> None:
    document = entity_document(people.admin, "sales_lead")
    for spec in document["fields"]:
        if spec["name"] == "interests":
            # A choice that differs from another by case only.
            spec["options"].append({"value": "Software", "label": "Software (old)"})
    people.admin.put("/meta/entities/sales_lead", json=document)
    for name, interests in [
        ("Ines Kovac", ["Software"]),
        ("Rufus Ambler", ["software", "training"]),
        ("Yara Feld", None),
    ]:
        created = people.seller.post(
            "/sales_lead",
            json={"company": "Kovac Kilns", "full_name": name, "interests": interests},
        )
        assert created.status_code == 201, created.json
    value = "true" if param.endswith("isnull") else "Software"
    listed = people.seller.get(f"/sales_lead?{param}={value}&sort=full_name").json

    response = people.seller.post(
        "/meta/views",
        json={"entity": "sales_lead", "label": "Leads", "sort": ["full_name"],
              "filter": condition},
    )  # fmt: skip
    seller = people.users["seller"]
    with sales.transaction() as (connection, catalog):
        view = get_view(connection, catalog, seller, response.json["id"])
        query = view_query(catalog, view, user=seller)
        page = run_list(connection, catalog.entity("sales_lead"), query)

    assert response.status_code == 201, response.json
    names = [record["full_name"] for record in page.records]
    assert names == [record["full_name"] for record in listed["data"]]
    assert names == (["Yara Feld"] if param.endswith("isnull") else ["Ines Kovac"])


#: Deals that close from the start of the person's own fiscal year on.
THIS_FISCAL_YEAR = {
    "entity": "opportunity",
    "label": "This fiscal year",
    "sort": ["title"],
    "filter": {">=": [{"var": "close_date"}, {"var": "$user.fiscal_start"}]},
}


def _closing_deals(client: Api) -> None:
    for title, close_date in [("Early", "2024-03-31"), ("Late", "2024-04-01")]:
        created = client.post(
            "/opportunity", json={"title": title, "close_date": close_date}
        )
        assert created.status_code == 201, created.json


def _selected(client: Api, view: dict[str, Any]) -> list[str]:
    listed = client.get(
        "/opportunity", query_string={"filter": json.dumps(view["filter"])}
    )
    assert listed.status_code == 200, listed.json
    return [record["title"] for record in listed.json["data"]]


def test_a_view_orders_by_an_attribute_of_the_user_as_the_list_does(
    people: People, sales: Platform
) -> None:
    """The filter is checked with the details of the person who saves it: a
    date in their attribute orders a date field, as in their list filter."""
    with sales.transaction() as (connection, _):
        set_user_attributes(connection, "seller", {"fiscal_start": "2024-04-01"})
    _closing_deals(people.seller)

    saved = people.seller.post("/meta/views", json=THIS_FISCAL_YEAR)
    read = people.seller.get(f"/meta/views/{saved.json['id']}").json

    assert saved.status_code == 201, saved.json
    assert (read["filter"], read["notice"]) == (THIS_FISCAL_YEAR["filter"], None)
    assert _selected(people.seller, read) == ["Late"]


def test_a_shared_view_on_an_attribute_a_user_lacks_shows_them_nothing(
    people: People, sales: Platform
) -> None:
    with sales.transaction() as (connection, _):
        set_user_attributes(connection, "admin", {"fiscal_start": "2024-04-01"})
    _closing_deals(people.admin)
    shared = people.admin.post(
        "/meta/views", json={**THIS_FISCAL_YEAR, "shared": True}
    ).json

    read = people.buyer.get(f"/meta/views/{shared['id']}").json

    assert read["filter"] == {"or": []}
    assert read["notice"] == (
        "This view filters on details of yours that are missing or do not fit, "
        "so it shows no records for you."
    )
    assert _selected(people.buyer, read) == []
    assert _selected(people.admin, shared) == ["Late"]


def _view_the_seller_stops_fitting(
    people: People, sales: Platform, *, deals: bool
) -> dict[str, Any]:
    """The seller's view of this fiscal year, saved while they have a fiscal
    start (with the closing deals, if ``deals``), which they then lose."""
    with sales.transaction() as (connection, _):
        set_user_attributes(connection, "seller", {"fiscal_start": "2024-04-01"})
    if deals:
        _closing_deals(people.seller)
    saved: dict[str, Any] = people.seller.post(
        "/meta/views", json=THIS_FISCAL_YEAR
    ).json
    with sales.transaction() as (connection, _):
        set_user_attributes(connection, "seller", {})
    return saved


def test_a_view_stored_with_a_label_in_its_filter_may_still_be_renamed(
    people: People, sales: Platform
) -> None:
    """A view saved before a choice's label was refused in filters keeps its
    filter when sent back as it reads; a filter sent otherwise is judged."""
    saved = people.seller.post("/meta/views", json=OPEN_DEALS).json
    by_label = {"!=": [{"var": "stage"}, "Closed won"]}
    with sales.engine.begin() as connection:
        stored = saved_views.c.id == saved["id"]
        body = connection.execute(sa.select(saved_views.c.body).where(stored)).one()[0]
        body = {**body, "filter": by_label}
        connection.execute(saved_views.update().where(stored).values(body=body))
    read = people.seller.get(f"/meta/views/{saved['id']}").json

    renamed = people.seller.put(
        f"/meta/views/{saved['id']}", json={**read, "label": "Still open"}
    )
    changed = people.seller.put(
        f"/meta/views/{saved['id']}",
        json={**read, "filter": {"!=": [{"var": "stage"}, "Closed lost"]}},
    )

    assert read["filter"] == by_label
    assert renamed.status_code == 200, renamed.json
    assert (renamed.json["label"], renamed.json["filter"]) == ("Still open", by_label)
    assert changed.status_code == 422
    assert [(e["field"], e["code"]) for e in changed.json["errors"]] == [
        ("filter.!=[1]", "choice_label")
    ]


def _hide_from_sellers(sales: Platform, field: str | None) -> None:
    """Give the sellers' role every right again, with ``field`` of opportunities
    hidden (none: nothing hidden)."""
    with sales.reading() as (_, catalog):
        grants: dict[str, Any] = {
            entity.name: {"read": "all", "create": "all", "edit": "all"}
            for entity in catalog.live()
        }
    if field is not None:
        grants["opportunity"] = {**grants["opportunity"], "fields": {field: "hidden"}}
    role = {"kind": "role", "name": "member", "label": "Member", "entities": grants}
    sales.store.apply([("", role)], actor="test")


def test_a_view_sent_back_keeps_the_columns_and_sort_its_owner_cannot_see(
    people: People, sales: Platform
) -> None:
    """The owner's role came to hide a field their view shows and sorts by:
    sent back as read (renamed), the view keeps that column and sort key for
    when the field shows again; sent with columns and sort of their choosing,
    those replace them, as a filter sent does."""
    document = {**OPEN_DEALS, "columns": ["title", "amount", "stage"]}
    kept = people.seller.post("/meta/views", json=document).json
    chosen = people.seller.post("/meta/views", json={**document, "label": "Mine"}).json
    _hide_from_sellers(sales, "amount")
    read = people.seller.get(f"/meta/views/{kept['id']}").json

    renamed = people.seller.put(
        f"/meta/views/{kept['id']}", json={**read, "label": "Open deals"}
    )
    changed = people.seller.put(
        f"/meta/views/{chosen['id']}",
        json={
            **read,
            "label": "Mine",
            "columns": ["stage", "title"],
            "sort": ["stage"],
        },
    )
    _hide_from_sellers(sales, None)
    again = people.seller.get(f"/meta/views/{kept['id']}").json
    other = people.seller.get(f"/meta/views/{chosen['id']}").json

    assert (read["columns"], read["sort"]) == (["title", "stage"], ["title"])
    assert (renamed.status_code, changed.status_code) == (200, 200)
    assert renamed.json["columns"] == ["title", "stage"]
    assert (again["label"], again["columns"], again["sort"]) == (
        "Open deals",
        ["title", "amount", "stage"],
        ["-amount", "title"],
    )
    assert (other["columns"], other["sort"]) == (["stage", "title"], ["stage"])


def test_a_view_sent_back_while_it_shows_its_owner_nothing_keeps_its_filter(
    people: People, sales: Platform
) -> None:
    """The owner lost the attribute their view's filter reads, so it reads to
    them as selecting nothing: renaming it, or saving it with one more filter,
    keeps the filter they cannot be shown, which works again once the
    attribute is back."""
    saved = _view_the_seller_stops_fitting(people, sales, deals=True)
    read = people.seller.get(f"/meta/views/{saved['id']}").json
    late = {"==": [{"var": "title"}, "Late"]}

    renamed = people.seller.put(
        f"/meta/views/{saved['id']}", json={**read, "label": "Fiscal year"}
    )
    narrowed = people.seller.put(
        f"/meta/views/{saved['id']}",
        json={**read, "filter": {"and": [{"or": []}, late]}},
    )
    with sales.transaction() as (connection, _):
        set_user_attributes(connection, "seller", {"fiscal_start": "2024-04-01"})
    again = people.seller.get(f"/meta/views/{saved['id']}").json

    assert read["filter"] == {"or": []}
    assert renamed.status_code == 200, renamed.json
    assert renamed.json["filter"] == {"or": []}
    assert renamed.json["label"] == "Fiscal year"
    assert narrowed.status_code == 200, narrowed.json
    assert again["filter"] == {"and": [THIS_FISCAL_YEAR["filter"], late]}
    assert again["notice"] is None
    assert _selected(people.seller, again) == ["Late"]


@pytest.mark.parametrize(
    ("sent", "kept", "selected"),
    [
        (
            {"or": [{"or": []}, {"==": [{"var": "title"}, "Early"]}]},
            {
                "or": [
                    THIS_FISCAL_YEAR["filter"],
                    {"==": [{"var": "title"}, "Early"]},
                ]
            },
            ["Early", "Late"],
        ),
        ({"!": {"or": []}}, {"!": THIS_FISCAL_YEAR["filter"]}, ["Early"]),
    ],
)
def test_a_view_sent_back_holding_its_unseen_filter_deeper_keeps_it_there(
    people: People, sales: Platform, sent: Any, kept: Any, selected: list[str]
) -> None:
    """The filter the owner cannot be shown reads to them as {"or": []}; sent
    back within an or, or negated, it stands for the stored filter there, as
    beside the filters of an and, rather than be lost for good."""
    saved = _view_the_seller_stops_fitting(people, sales, deals=True)
    read = people.seller.get(f"/meta/views/{saved['id']}").json

    changed = people.seller.put(
        f"/meta/views/{saved['id']}", json={**read, "filter": sent}
    )
    with sales.transaction() as (connection, _):
        set_user_attributes(connection, "seller", {"fiscal_start": "2024-04-01"})
    again = people.seller.get(f"/meta/views/{saved['id']}").json

    assert changed.status_code == 200, changed.json
    assert changed.json["filter"] == {"or": []}
    assert again["filter"] == kept
    assert _selected(people.seller, again) == selected


def test_a_view_sent_back_with_a_filter_of_its_own_replaces_the_unseen_one(
    people: People, sales: Platform
) -> None:
    saved = _view_the_seller_stops_fitting(people, sales, deals=False)
    won = {"==": [{"var": "stage"}, "won"]}

    changed = people.seller.put(
        f"/meta/views/{saved['id']}", json={**THIS_FISCAL_YEAR, "filter": won}
    )

    assert changed.status_code == 200, changed.json
    assert changed.json["filter"] == won


def test_a_view_narrowed_again_and_again_while_unseen_keeps_within_the_limits(
    people: People, sales: Platform
) -> None:
    """Each filter saved beside the one the owner cannot see is kept beside it,
    not around it: the kept filter does not nest deeper with every save, and
    one that would grow past the size a filter may have is refused, with
    nothing saved."""
    saved = _view_the_seller_stops_fitting(people, sales, deals=True)
    read = people.seller.get(f"/meta/views/{saved['id']}").json
    late = {"==": [{"var": "title"}, "Late"]}
    path = f"/meta/views/{saved['id']}"

    narrowed = [
        people.seller.put(path, json={**read, "filter": {"and": [{"or": []}, late]}})
        for _ in range(40)
    ]
    kept = {"and": [THIS_FISCAL_YEAR["filter"], *[late] * 40]}
    wide = {"in": [{"var": "title"}, [f"Deal {n:05}" for n in range(700)]]}
    too_large = people.seller.put(
        path, json={**read, "filter": {"and": [{"or": []}, wide]}}
    )
    with sales.transaction() as (connection, _):
        set_user_attributes(connection, "seller", {"fiscal_start": "2024-04-01"})
    again = people.seller.get(path).json

    assert [response.status_code for response in narrowed] == [200] * 40
    assert too_large.status_code == 422, too_large.json
    assert [(e["field"], e["code"]) for e in too_large.json["errors"]] == [
        ("filter", "too_large")
    ]
    assert again["filter"] == kept
    assert again["notice"] is None
    assert _selected(people.seller, again) == ["Late"]


# -- following the entity's changes ------------------------------------------------


def test_field_rename_rewrites_stored_views(people: People) -> None:
    own = people.seller.post("/meta/views", json=OPEN_DEALS).json
    document = entity_document(people.admin, "opportunity")
    for field in document["fields"]:
        if field["name"] == "stage":
            field["name"] = "phase"

    response = people.admin.put("/meta/entities/opportunity", json=document)
    view = people.seller.get(f"/meta/views/{own['id']}").json

    assert "update_views opportunity" in response.json["steps"]
    assert view["columns"] == ["title", "phase", "amount", "close_date"]
    assert view["filter"]["and"][0] == {"!=": [{"var": "phase"}, "won"]}
    assert view["notice"] is None


def test_field_removal_clears_the_filter_with_a_notice(people: People) -> None:
    own = people.seller.post("/meta/views", json=OPEN_DEALS).json
    unfiltered = people.seller.post(
        "/meta/views", json={**OPEN_DEALS, "label": "All", "filter": None}
    ).json
    document = entity_document(people.admin, "opportunity")
    document["fields"] = [
        f for f in document["fields"] if f["name"] not in ("stage", "amount")
    ]

    people.admin.put("/meta/entities/opportunity", json=document)
    view = people.seller.get(f"/meta/views/{own['id']}").json
    other = people.seller.get(f"/meta/views/{unfiltered['id']}").json
    saved = people.seller.put(f"/meta/views/{own['id']}", json=view).json

    assert view["columns"] == ["title", "close_date"]
    assert view["sort"] == ["title"]
    assert view["filter"] is None
    assert view["notice"] == (
        'The filter was cleared because the field "Stage" was removed.'
    )
    assert other["notice"] is None
    assert other["columns"] == ["title", "close_date"]
    assert saved["notice"] is None


def test_the_notice_names_every_removed_field(people: People, sales: Platform) -> None:
    condition = {
        "or": [{">": [{"var": "amount"}, 5]}, {"==": [{"var": "stage"}, "won"]}]
    }
    own = people.seller.post("/meta/views", json={**OPEN_DEALS, "filter": condition})
    document = entity_document(people.admin, "opportunity")
    document["fields"] = [
        f for f in document["fields"] if f["name"] not in ("stage", "amount")
    ]

    people.admin.put("/meta/entities/opportunity", json=document)

    with sales.engine.connect() as connection:
        stored = connection.execute(
            sa.select(saved_views.c.body, saved_views.c.notice).where(
                saved_views.c.id == own.json["id"]
            )
        ).one()
    assert stored.notice == (
        'The filter was cleared because the fields "Amount" and "Stage" were removed.'
    )
    assert stored.body["filter"] is None
    assert stored.body["sort"] == ["title"]


def test_a_stale_view_is_cleaned_when_read(people: People, sales: Platform) -> None:
    own = people.seller.post("/meta/views", json=OPEN_DEALS).json
    body = {
        **OPEN_DEALS,
        "kind": "view",
        "shared": False,
        "columns": ["margin", "title"],
        "sort": ["-margin"],
        "filter": {">": [{"var": "margin"}, 3]},
    }
    with sales.engine.begin() as connection:
        connection.execute(
            saved_views.update().where(saved_views.c.id == own["id"]).values(body=body)
        )

    view = people.seller.get(f"/meta/views/{own['id']}").json

    assert view["columns"] == ["title"]
    assert view["sort"] == ["title"]
    assert view["filter"] is None
    assert view["notice"] == (
        'The filter was cleared because the field "margin" was removed.'
    )


def test_views_of_a_removed_entity_are_hidden_until_it_returns(
    people: People,
) -> None:
    view = {"entity": "activity", "label": "Open tasks"}
    own = people.seller.post("/meta/views", json=view).json
    document = entity_document(people.admin, "activity")

    people.admin.delete("/meta/entities/activity")
    hidden_list = people.seller.get("/meta/views?entity=activity")
    hidden = people.seller.get(f"/meta/views/{own['id']}")
    everything = people.seller.get("/meta/views").json["data"]
    people.admin.put("/meta/entities/activity", json=document)
    back = people.seller.get(f"/meta/views/{own['id']}")

    assert hidden_list.status_code == 404
    assert hidden.status_code == 404
    assert everything == []
    assert back.status_code == 200
    assert back.json["label"] == "Open tasks"


def test_purging_an_entity_deletes_its_views(people: People, sales: Platform) -> None:
    people.seller.post("/meta/views", json={"entity": "activity", "label": "Tasks"})
    people.admin.delete("/meta/entities/activity")

    result = sales.store.purge("activity", None, actor="test")

    assert "drop_views activity" in result.plan.describe()
    with sales.engine.connect() as connection:
        count = connection.execute(
            sa.select(sa.func.count()).select_from(saved_views)
        ).scalar_one()
    assert count == 0


def test_view_schema_is_published(people: People) -> None:
    schema = people.seller.get("/meta/schemas/view").json

    assert schema["additionalProperties"] is False
    assert schema["properties"]["kind"] == {"const": "view"}


def test_renaming_fields_in_a_condition_leaves_items_and_user_alone() -> None:
    condition = {
        "and": [
            {"==": [{"var": "stage"}, "won"]},
            {"some": [{"var": "tags"}, {"==": [{"var": ""}, {"var": "stage"}]}]},
            {"==": [{"var": ["owner_id", 0]}, {"var": "$user.id"}]},
            {"missing": ["stage", "account.name"]},
        ]
    }

    renamed = rename_fields(condition, {"stage": "phase", "account": "client"})

    assert field_names(condition) == {"stage", "tags", "owner_id", "account"}
    assert renamed == {
        "and": [
            {"==": [{"var": "phase"}, "won"]},
            {"some": [{"var": "tags"}, {"==": [{"var": ""}, {"var": "stage"}]}]},
            {"==": [{"var": ["owner_id", 0]}, {"var": "$user.id"}]},
            {"missing": ["phase", "client.name"]},
        ]
    }


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("entty=account", "entty", "unknown_parameter"),
        ("Entity=account", "Entity", "unknown_parameter"),
        ("entity=account&entity=opportunity", "entity", "invalid_parameter"),
    ],
)
def test_a_misspelt_or_repeated_entity_lists_no_views(
    people: People, query: str, field: str, code: str
) -> None:
    """Rather than every view, or one entity's only, as if that were asked for."""
    people.admin.post("/meta/views", json={**OPEN_DEALS, "shared": True})

    response = people.seller.get(f"/meta/views?{query}")

    assert response.status_code == 400, response.json
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [(field, code)]


def test_a_blank_entity_lists_no_views(people: People) -> None:
    """``?entity=`` names no entity, as on the rule reads; not every view."""
    people.admin.post("/meta/views", json={**OPEN_DEALS, "shared": True})

    response = people.seller.get("/meta/views?entity=")

    assert response.status_code == 404, response.json
    assert "data" not in response.json
