"""Roll-ups kept by increments: after every kind of change of a child, the stored
sums and counts equal a full recomputation over the children.

Sums and counts are kept by adding each change's increment to the parent; minimum
and maximum, and parents whose own rules read the roll-up first, by reading the
parent. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.db import meta_documents
from tailorcrm.platform.importer import ImportFailed
from tailorcrm.platform.records import SYSTEM_ACTOR
from tests.conftest import Api
from tests.rules_support import (
    ACCOUNT,
    OPPORTUNITY,
    WON_TOTAL,
    create,
    define,
    load_csv,
    problems,
    rule,
)
from tests.web_helpers import sign_in

#: The Account of the other rule tests, with more fields to roll up into.
TALLIED_ACCOUNT = {
    **ACCOUNT,
    "fields": [
        *ACCOUNT["fields"],
        {"name": "deal_count", "type": "integer", "label": "Deals"},
        {"name": "touch_total", "type": "integer", "label": "Touches"},
        {"name": "fine_total", "type": "decimal", "label": "Fine total"},
        {"name": "rough_total", "type": "integer", "label": "Rough total"},
        {"name": "won_share", "type": "percent", "label": "Won share"},
    ],
}
#: The Opportunity of the other rule tests; its account is cleared when the
#: account is deleted, and it has an amount with four decimals.
TALLIED_OPPORTUNITY = {
    **OPPORTUNITY,
    "fields": [
        *(
            {**spec, "on_delete": "set_null"} if spec["name"] == "account" else spec
            for spec in OPPORTUNITY["fields"]
        ),
        {"name": "fine_amount", "type": "decimal", "label": "Fine amount"},
    ],
}


def _rollup(name: str, function: str, **parts: Any) -> dict[str, Any]:
    return rule(
        name,
        "account",
        "rollup",
        field=name,
        relation={"entity": "opportunity", "lookup": "account"},
        function=function,
        **parts,
    )


WON_COUNT = _rollup("won_count", "count", condition={"==": [{"var": "stage"}, "won"]})
DEAL_COUNT = _rollup("deal_count", "count")
TOUCH_TOTAL = _rollup("touch_total", "sum", of="touches")
#: Four decimals into a field that keeps four: kept by increments.
FINE_TOTAL = _rollup("fine_total", "sum", of="fine_amount")
#: Four decimals into a whole number: each increment would be rounded, so this
#: one is recomputed.
ROUGH_TOTAL = _rollup("rough_total", "sum", of="fine_amount")
LAST_CLOSE = _rollup("last_close", "max", of="close_date")
KEPT = (WON_TOTAL, WON_COUNT, DEAL_COUNT, TOUCH_TOTAL, FINE_TOTAL, ROUGH_TOTAL)
FIELDS = ("won_total", "won_count", "deal_count", "touch_total", "fine_total")


@pytest.fixture
def crm(api: Api) -> Api:
    define(api, TALLIED_ACCOUNT, TALLIED_OPPORTUNITY, *KEPT)
    return api


def change(api: Api, deal: dict[str, Any], **values: Any) -> None:
    response = api.patch(f"/opportunity/{deal['id']}", json=values)
    assert response.status_code == 200, response.json


def stored(platform: Platform, account: dict[str, Any]) -> dict[str, Any]:
    """The account's roll-up fields as stored."""
    with platform.reading() as (connection, catalog):
        table = catalog.entity("account").table
        row = connection.execute(
            sa.select(table).where(table.c.id == account["id"])
        ).mappings()
        found = dict(row.one())
    return {name: found[name] for name in (*FIELDS, "rough_total", "last_close")}


def recomputed(platform: Platform, account: dict[str, Any]) -> dict[str, Any]:
    """The same fields computed afresh from the account's stored children."""
    with platform.reading() as (connection, catalog):
        table = catalog.entity("opportunity").table
        rows = connection.execute(
            sa.select(table).where(table.c.account == account["id"])
        ).mappings()
        deals = [dict(row) for row in rows]
    won = [deal for deal in deals if deal["stage"] == "won"]
    fine = sum((deal["fine_amount"] or 0 for deal in deals), Decimal(0))
    closes = [deal["close_date"] for deal in deals if deal["close_date"] is not None]
    return {
        "won_total": sum((deal["amount"] or 0 for deal in won), Decimal(0)),
        "won_count": len(won),
        "deal_count": len(deals),
        "touch_total": sum(deal["touches"] or 0 for deal in deals),
        "fine_total": fine,
        "rough_total": int(fine.quantize(Decimal(1), rounding="ROUND_HALF_UP")),
        "last_close": max(closes, default=None),
    }


def assert_kept(platform: Platform, *accounts: dict[str, Any]) -> None:
    for account in accounts:
        assert stored(platform, account) == recomputed(platform, account)


def test_a_create_adds_to_sums_and_counts(platform: Platform, crm: Api) -> None:
    north = create(crm, "account", name="North Yard")

    create(crm, "opportunity", title="A", account=north["id"], stage="won",
           amount="0.1", touches=3, fine_amount="0.0001")  # fmt: skip
    create(crm, "opportunity", title="B", account=north["id"], stage="won",
           amount="0.2", touches=None, fine_amount="1.2345")  # fmt: skip
    create(crm, "opportunity", title="C", account=north["id"], amount="7")
    create(crm, "opportunity", title="D")

    assert_kept(platform, north)
    assert stored(platform, north)["won_total"] == Decimal("0.3")
    assert stored(platform, north)["fine_total"] == Decimal("1.2346")
    # Stored as a sum is: a list filter finds the exact value.
    found = crm.get("/account?won_total=0.3&fine_total=1.2346").json["data"]
    assert [account["id"] for account in found] == [north["id"]]


def test_an_update_of_the_summed_field_moves_the_sum(
    platform: Platform, crm: Api
) -> None:
    north = create(crm, "account", name="North Yard")
    deal = create(crm, "opportunity", title="A", account=north["id"], stage="won",
                  amount="10.10", touches=2, fine_amount="0.5")  # fmt: skip

    change(crm, deal, amount="0.07", touches=5, fine_amount="-3.1415")
    after_change = stored(platform, north)
    change(crm, deal, title="Renamed")

    assert after_change == recomputed(platform, north)
    assert stored(platform, north) == after_change


@pytest.mark.parametrize(
    ("first", "then"), [("won", "lost"), ("lost", "won"), ("won", "won")]
)
def test_a_condition_that_flips_adds_or_takes_away_the_child(
    platform: Platform, crm: Api, first: str, then: str
) -> None:
    north = create(crm, "account", name="North Yard")
    create(crm, "opportunity", title="Stays", account=north["id"], stage="won",
           amount="100")  # fmt: skip
    deal = create(crm, "opportunity", title="A", account=north["id"], stage=first,
                  amount="2.5", loss_reason="Price")  # fmt: skip

    change(crm, deal, stage=then, amount="4.25")

    assert_kept(platform, north)


def test_a_child_moved_to_another_parent_leaves_one_and_joins_the_other(
    platform: Platform, crm: Api
) -> None:
    north = create(crm, "account", name="North Yard")
    south = create(crm, "account", name="South Yard")
    deal = create(crm, "opportunity", title="A", account=north["id"], stage="won",
                  amount="12.34", touches=4, fine_amount="0.0007")  # fmt: skip
    create(crm, "opportunity", title="B", account=north["id"], stage="won",
           amount="1")  # fmt: skip

    change(crm, deal, account=south["id"])
    after_move = [stored(platform, north), stored(platform, south)]
    assert_kept(platform, north, south)
    change(crm, deal, account=None, amount="99")
    assert_kept(platform, north, south)
    change(crm, deal, account=north["id"], stage="lost", loss_reason="Late")
    assert_kept(platform, north, south)

    assert after_move[1]["won_total"] == Decimal("12.34")


def test_a_deleted_child_is_taken_away(platform: Platform, crm: Api) -> None:
    north = create(crm, "account", name="North Yard")
    deals = [
        create(crm, "opportunity", title=f"D{n}", account=north["id"], stage="won",
               amount=f"{n}.5", touches=n, fine_amount=f"0.{n}")
        for n in range(1, 4)
    ]  # fmt: skip

    for deal in deals:
        assert crm.delete(f"/opportunity/{deal['id']}").status_code == 204
        assert_kept(platform, north)

    assert stored(platform, north)["won_total"] == 0


def test_blank_values_add_nothing_and_a_sum_of_blanks_is_zero(
    platform: Platform, crm: Api
) -> None:
    north = create(crm, "account", name="North Yard")
    deal = create(crm, "opportunity", title="A", account=north["id"], stage="won")
    only_blanks = stored(platform, north)

    change(crm, deal, amount="5.55", touches=1)
    assert_kept(platform, north)
    change(crm, deal, amount=None, touches=None, fine_amount="2")
    assert_kept(platform, north)
    change(crm, deal, fine_amount=None)

    assert_kept(platform, north)
    assert (only_blanks["won_total"], only_blanks["touch_total"]) == (0, 0)
    assert (only_blanks["won_count"], only_blanks["deal_count"]) == (1, 1)
    assert stored(platform, north) == only_blanks


def test_a_deleted_parent_leaves_its_children_to_count_elsewhere(
    platform: Platform, crm: Api
) -> None:
    north = create(crm, "account", name="North Yard")
    south = create(crm, "account", name="South Yard")
    deal = create(crm, "opportunity", title="A", account=north["id"], stage="won",
                  amount="8", touches=2)  # fmt: skip

    assert crm.delete(f"/account/{north['id']}").status_code == 204
    change(crm, deal, amount="9")
    change(crm, deal, account=south["id"])

    assert_kept(platform, south)
    assert stored(platform, south)["won_total"] == 9


def test_one_batch_adds_up_many_children_of_each_parent(
    platform: Platform, crm: Api
) -> None:
    north = create(crm, "account", name="North Yard")
    south = create(crm, "account", name="South Yard")
    rows = [
        {"title": f"D{n}", "account": (north, south)[n % 2]["id"],
         "stage": "won" if n % 3 else "lost", "loss_reason": "Price",
         "amount": Decimal(n) / 4, "touches": n if n % 4 else None}
        for n in range(30)
    ]  # fmt: skip

    with platform.records(SYSTEM_ACTOR) as service:
        service.create_many("opportunity", rows)

    assert_kept(platform, north, south)


def test_an_automation_that_changes_the_child_in_the_same_save_is_counted(
    platform: Platform, crm: Api
) -> None:
    doubled = rule(
        "double_won", "opportunity", "automation", trigger="create",
        condition={"==": [{"var": "stage"}, "won"]},
        actions=[{"type": "set_field", "field": "amount",
                  "expression": {"*": [{"var": "amount"}, 2]}}],
    )  # fmt: skip
    define(crm, doubled)
    north = create(crm, "account", name="North Yard")

    create(crm, "opportunity", title="A", account=north["id"], stage="won",
           amount="3.3")  # fmt: skip

    assert_kept(platform, north)
    assert stored(platform, north)["won_total"] == Decimal("6.6")


def test_parents_whose_rules_read_the_rollup_still_run_them(
    platform: Platform, crm: Api
) -> None:
    tier = rule(
        "account_tier", "account", "formula", field="tier",
        expression={"if": [{">": [{"var": "won_total"}, 100]}, "gold", "standard"]},
    )  # fmt: skip
    noted = rule(
        "note_big_accounts", "account", "automation", trigger="update",
        condition={"changed": "tier"},
        actions=[{"type": "set_field", "field": "notes",
                  "expression": {"cat": ["Now ", {"var": "tier"}]}}],
    )  # fmt: skip
    define(crm, tier, noted, LAST_CLOSE)
    north = create(crm, "account", name="North Yard")
    deal = create(crm, "opportunity", title="A", account=north["id"], stage="won",
                  amount="60", close_date="2026-02-01")  # fmt: skip

    create(crm, "opportunity", title="B", account=north["id"], stage="won",
           amount="50", close_date="2026-04-01")  # fmt: skip
    gold = crm.get(f"/account/{north['id']}").json
    change(crm, deal, stage="lost", loss_reason="Price")

    assert (gold["tier"], gold["notes"]) == ("gold", "Now gold")
    assert_kept(platform, north)
    after = crm.get(f"/account/{north['id']}").json
    assert (after["tier"], after["notes"]) == ("standard", "Now standard")


def test_a_kept_rollup_bumps_the_parents_version_once_per_save(
    platform: Platform, crm: Api
) -> None:
    north = create(crm, "account", name="North Yard")
    deal = create(crm, "opportunity", title="A", account=north["id"], stage="won",
                  amount="1")  # fmt: skip
    version = crm.get(f"/account/{north['id']}").json["version"]

    change(crm, deal, amount="2", touches=1)
    change(crm, deal, title="Same amount")

    assert crm.get(f"/account/{north['id']}").json["version"] == version + 1


@pytest.fixture
def blind(api: Api) -> Api:
    """Only roll-ups kept by increments, and nothing that reads the parent first:
    each save of a child adds to its account without reading it."""
    define(api, TALLIED_ACCOUNT, TALLIED_OPPORTUNITY, DEAL_COUNT, TOUCH_TOTAL)
    return api


def test_a_kept_rollup_moves_the_parents_last_change(
    platform: Platform, blind: Api
) -> None:
    crm = blind
    north = create(crm, "account", name="North Yard")
    long_ago = "2020-01-01T00:00:00Z"

    def backdated() -> None:
        with platform.engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE account SET updated_at = :at WHERE id = :id"),
                {"at": "2020-01-01 00:00:00", "id": north["id"]},
            )
        assert crm.get(f"/account/{north['id']}").json["updated_at"] == long_ago

    backdated()
    deal = create(crm, "opportunity", title="A", account=north["id"], touches=2)
    moved_by_create = crm.get(f"/account/{north['id']}").json["updated_at"]
    backdated()
    change(crm, deal, touches=5)
    moved_by_update = crm.get(f"/account/{north['id']}").json["updated_at"]

    assert moved_by_create > long_ago and moved_by_update > long_ago
    assert crm.get(f"/account/{north['id']}").json["touch_total"] == 5


def test_sums_and_counts_are_kept_without_reading_the_children(
    platform: Platform, crm: Api
) -> None:
    north = create(crm, "account", name="North Yard")
    deal = create(crm, "opportunity", title="A", account=north["id"], amount="1")
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(platform.engine, "before_cursor_execute", seen)
    try:
        change(crm, deal, stage="won", amount="2", touches=3)
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", seen)

    assert not [s for s in statements if "FROM opportunity" in s and "sum(" in s]
    assert_kept(platform, north)


def test_a_sum_that_outgrows_its_field_refuses_the_save(
    platform: Platform, crm: Api
) -> None:
    define(crm, _rollup("won_share", "sum", of="amount"))
    north = create(crm, "account", name="North Yard")
    deal = create(crm, "opportunity", title="A", account=north["id"], amount="600")
    before = stored(platform, north)

    grown = crm.patch(f"/opportunity/{deal['id']}", json={"amount": "1000"})
    added = crm.post(
        "/opportunity", json={"title": "B", "account": north["id"], "amount": "400"}
    )

    assert (grown.status_code, added.status_code) == (422, 422)
    assert problems(grown) == problems(added) == [("account.won_share", "rule_value")]
    assert stored(platform, north) == before
    assert crm.get(f"/account/{north['id']}").json["won_share"] == 600


def test_a_total_that_does_not_fit_names_its_parent_among_the_two_a_move_changes(
    platform: Platform, api: Api
) -> None:
    # A deal moved from one account to another changes both totals; the one
    # that falls below its field's minimum is named, so that the person knows
    # which account refused, on every path.
    floored = {
        **TALLIED_ACCOUNT,
        "fields": [
            {**spec, "min": 0} if spec["name"] == "touch_total" else spec
            for spec in TALLIED_ACCOUNT["fields"]
        ],
    }
    define(api, floored, TALLIED_OPPORTUNITY, TOUCH_TOTAL)
    north = create(api, "account", name="North Yard")
    south = create(api, "account", name="South Yard")
    deal = create(
        api, "opportunity", title="B", account=north["id"], touches=9, erp_code="B"
    )
    create(api, "opportunity", title="A", account=north["id"], touches=-5)

    moved = api.patch(f"/opportunity/{deal['id']}", json={"account": south["id"]})
    with pytest.raises(ImportFailed) as imported:
        load_csv(
            platform, "opportunity", "erp_code,account\nB,South Yard\n", key="erp_code"
        )

    expected = (
        f"Account {north['id']}: The roll-up rule 'touch_total' gave a value that "
        "does not fit: Enter a value of at least 0."
    )
    assert moved.status_code == 422
    assert moved.json["errors"] == [
        {"field": "account.touch_total", "code": "rule_value", "message": expected}
    ]
    assert [error.message for error in imported.value.report.errors] == [expected]
    assert crm_total(api, north) == 4


def crm_total(api: Api, account: dict[str, Any]) -> Any:
    return api.get(f"/account/{account['id']}").json["touch_total"]


def test_the_total_that_outgrows_its_field_is_named_among_several(
    platform: Platform, blind: Api
) -> None:
    crm = blind
    # Each deal moves the count and the touches of its account in one statement;
    # the second one's touches take the total past what a whole number holds.
    north = create(crm, "account", name="North Yard")
    create(crm, "opportunity", title="A", account=north["id"], touches=2**62)
    before = stored(platform, north)

    added = crm.post(
        "/opportunity",
        json={"title": "B", "account": north["id"], "touches": 2**62},
    )

    assert added.status_code == 422
    assert problems(added) == [("account.touch_total", "rule_value")]
    # The same words on both databases, whichever way the total leaves the range.
    words = (
        "The roll-up rule 'touch_total' gave a value that does not fit: Enter a "
        "whole number between -9,223,372,036,854,775,807 and "
        "9,223,372,036,854,775,807."
    )
    assert added.json["errors"][0]["message"] == f"Account {north['id']}: {words}"
    assert stored(platform, north) == before
    below = create(crm, "account", name="South Yard")
    create(crm, "opportunity", title="C", account=below["id"], touches=-(2**62))
    sunk = crm.post(
        "/opportunity",
        json={"title": "D", "account": below["id"], "touches": -(2**62)},
    )
    assert sunk.status_code == 422
    assert problems(sunk) == problems(added)
    assert sunk.json["errors"][0]["message"] == f"Account {below['id']}: {words}"


def test_every_total_that_outgrows_its_field_is_named_with_its_reason(
    platform: Platform, api: Api
) -> None:
    # A sum past the digits of its decimal field (which PostgreSQL refuses in the
    # statement) and a count past the maximum of its field (which the service
    # checks), moved by one save.
    small = {"name": "small_sum", "type": "decimal", "label": "Small sum"}
    capped = {"name": "capped_count", "type": "integer", "label": "Capped", "max": 3}
    account = {
        **TALLIED_ACCOUNT,
        "fields": [
            *TALLIED_ACCOUNT["fields"],
            {**small, "precision": 5, "scale": 2},
            capped,
        ],
    }
    won = {"==": [{"var": "stage"}, "won"]}
    define(
        api,
        account,
        TALLIED_OPPORTUNITY,
        _rollup("small_sum", "sum", of="amount", condition=won),
        _rollup("capped_count", "count", condition=won),
    )
    north = create(api, "account", name="North Yard")
    for title in "ABC":
        create(
            api,
            "opportunity",
            title=title,
            account=north["id"],
            amount="333",
            stage="won",
        )
    last = create(api, "opportunity", title="D", account=north["id"], amount="1")
    before = stored_fields(platform, north, "small_sum", "capped_count")

    response = api.patch(f"/opportunity/{last['id']}", json={"stage": "won"})

    assert response.status_code == 422, response.json
    assert sorted(problems(response)) == [
        ("account.capped_count", "rule_value"),
        ("account.small_sum", "rule_value"),
    ]
    messages = {e["field"]: e["message"] for e in response.json["errors"]}
    assert messages["account.small_sum"].endswith("at most 3 digits before the point.")
    assert messages["account.capped_count"].endswith("a value of at most 3.")
    assert stored_fields(platform, north, "small_sum", "capped_count") == before
    assert before == {"small_sum": Decimal("999.00"), "capped_count": 3}


def test_totals_added_by_one_statement_are_all_named_when_they_do_not_fit(
    platform: Platform, api: Api
) -> None:
    # Both sums are kept by adding to the stored totals in one statement, which
    # PostgreSQL refuses as a whole; SQLite stores them and the service checks.
    narrow = [
        {"name": name, "type": "decimal", "label": name, "precision": 5, "scale": 2}
        for name in ("won_sum", "open_sum")
    ]
    account = {**TALLIED_ACCOUNT, "fields": [*TALLIED_ACCOUNT["fields"], *narrow]}
    define(
        api,
        account,
        TALLIED_OPPORTUNITY,
        _rollup("won_sum", "sum", of="amount"),
        _rollup("open_sum", "sum", of="amount"),
    )
    north = create(api, "account", name="North Yard")
    for title in "ABC":
        create(api, "opportunity", title=title, account=north["id"], amount="333")
    before = stored_fields(platform, north, "won_sum", "open_sum")

    response = api.post(
        "/opportunity", json={"title": "D", "account": north["id"], "amount": "1"}
    )

    assert response.status_code == 422, response.json
    assert sorted(problems(response)) == [
        ("account.open_sum", "rule_value"),
        ("account.won_sum", "rule_value"),
    ]
    for error in response.json["errors"]:
        assert error["message"].endswith("at most 3 digits before the point.")
    assert stored_fields(platform, north, "won_sum", "open_sum") == before
    assert before == {"won_sum": Decimal("999.00"), "open_sum": Decimal("999.00")}


def stored_fields(
    platform: Platform, account: dict[str, Any], *names: str
) -> dict[str, Any]:
    with platform.reading() as (connection, catalog):
        table = catalog.entity("account").table
        row = connection.execute(
            sa.select(*(table.c[name] for name in names)).where(
                table.c.id == account["id"]
            )
        ).mappings()
        return dict(row.one())


def test_an_import_reports_the_row_whose_total_does_not_fit(
    platform: Platform, blind: Api
) -> None:
    north = create(blind, "account", name="North Yard")
    text = (
        "title,account,touches\n"
        f"Crane,North Yard,{2**62}\n"
        f"Barge,North Yard,{2**62}\n"
        "Tug,North Yard,3\n"
    )

    with pytest.raises(ImportFailed) as refused:
        load_csv(platform, "opportunity", text)
    unchanged = stored(platform, north)
    report = load_csv(platform, "opportunity", text, skip_bad_rows=True)

    assert [(e.row, e.field, e.code) for e in refused.value.report.errors] == [
        (3, "account.touch_total", "rule_value")
    ]
    assert (unchanged["deal_count"], unchanged["touch_total"]) == (0, 0)
    assert (report.created, report.failed_rows) == (2, 1)
    assert [(e.row, e.field) for e in report.errors] == [(3, "account.touch_total")]
    titles = blind.get("/opportunity?sort=title").json["data"]
    assert [deal["title"] for deal in titles] == ["Crane", "Tug"]
    totals = stored(platform, north)
    assert (totals["deal_count"], totals["touch_total"]) == (2, 2**62 + 3)


def test_a_new_roll_up_whose_total_does_not_fit_names_the_record(api: Api) -> None:
    define(api, TALLIED_ACCOUNT, TALLIED_OPPORTUNITY)
    north = create(api, "account", name="North Yard")
    for title in ("A", "B"):
        create(api, "opportunity", title=title, account=north["id"], touches=2**62)

    refused = api.put("/meta/rules/touch_total", json=TOUCH_TOTAL)

    assert refused.status_code == 422, refused.json
    assert f"Account {north['id']}" in str(refused.json)
    assert "touch_total" in str(refused.json)


def _with_deal_count_of_at_least_one(api: Api) -> dict[str, Any]:
    """The account document whose deal count is at least 1."""
    account: dict[str, Any] = api.get("/meta/entities/account").json
    for spec in account["fields"]:
        if spec["name"] == "deal_count":
            spec["min"] = 1
    return account


def test_a_count_or_sum_whose_field_refuses_0_is_refused(api: Api) -> None:
    # A new account counts no deals: 0, where every account starts.
    define(api, TALLIED_ACCOUNT, TALLIED_OPPORTUNITY, DEAL_COUNT)
    at_least_one = _with_deal_count_of_at_least_one(api)

    limited = api.put("/meta/entities/account", json=at_least_one)
    api.delete("/meta/rules/deal_count")
    define(api, at_least_one)
    counted = api.put("/meta/rules/deal_count", json=DEAL_COUNT)

    assert limited.status_code == 409, limited.json
    assert problems(limited) == [("deal_count.field", "invalid_value")]
    assert "at least 1" in limited.json["errors"][0]["message"]
    assert counted.status_code == 422, counted.json
    assert problems(counted) == [("deal_count.field", "invalid_value")]


def test_a_stored_roll_up_whose_start_does_not_fit_refuses_the_create(
    platform: Platform, api: Api, database_url: str, admin_token: str
) -> None:
    # A database whose limit was set before such roll-ups were refused.
    define(api, TALLIED_ACCOUNT, TALLIED_OPPORTUNITY, DEAL_COUNT)
    with platform.engine.begin() as connection:
        connection.execute(
            meta_documents.update()
            .where(meta_documents.c.kind == "entity")
            .where(meta_documents.c.name == "account")
            .values(body=_with_deal_count_of_at_least_one(api))
        )
    later = create_app({"database_url": database_url})
    try:
        reopened = Api(later.test_client(), admin_token)
        browser = sign_in(later, later.extensions["tailorcrm"])

        created = reopened.post("/account", json={"name": "North Yard"})
        form = browser.get("/app/account/new")
        listed = reopened.get("/account").json["data"]
    finally:
        later.extensions["tailorcrm"].engine.dispose()

    assert created.status_code == 422, created.json
    assert problems(created) == [("deal_count", "rule_value")]
    assert "roll-up rule 'deal_count'" in created.json["errors"][0]["message"]
    assert form.status_code == 200
    assert listed == []


def test_a_recomputed_whole_number_total_says_its_range_either_way(
    platform: Platform, api: Api
) -> None:
    # A condition that reads the caller is recomputed, not kept by increments.
    by_anyone = _rollup(
        "touch_total",
        "sum",
        of="touches",
        condition={"!=": [{"var": "$user.id"}, 0]},
    )
    define(api, TALLIED_ACCOUNT, TALLIED_OPPORTUNITY, by_anyone)
    words = (
        "The roll-up rule 'touch_total' gave a value that does not fit: Enter a "
        "whole number between -9,223,372,036,854,775,807 and "
        "9,223,372,036,854,775,807."
    )
    for sign in (1, -1):
        account = create(api, "account", name=f"Yard {sign}")
        create(
            api, "opportunity", title="A", account=account["id"], touches=sign * 2**62
        )
        refused = api.post(
            "/opportunity",
            json={"title": "B", "account": account["id"], "touches": sign * 2**62},
        )
        assert refused.status_code == 422, refused.json
        assert refused.json["errors"][0]["message"] == (
            f"Account {account['id']}: {words}"
        )


def test_a_condition_that_changes_case_counts_as_the_rules_engine_reads_it(
    platform: Platform, api: Api
) -> None:
    # PostgreSQL's upper() leaves 'ß' as it is, where Python (and so each
    # increment) makes it 'SS': the aggregate that refills or recomputes the
    # roll-up must count the same children as the increments did.
    shouting = {"==": [{"upper": {"var": "title"}}, "STRASSE"]}
    street_count = _rollup("deal_count", "count", condition=shouting)
    street_max = _rollup("touch_total", "max", of="touches", condition=shouting)
    define(api, TALLIED_ACCOUNT, TALLIED_OPPORTUNITY, street_count, street_max)
    north = create(api, "account", name="North Yard")
    create(api, "opportunity", title="Straße", account=north["id"], touches=7)
    create(api, "opportunity", title="strasse", account=north["id"], touches=2)
    create(api, "opportunity", title="Gasse", account=north["id"], touches=9)
    kept = stored_fields(platform, north, "deal_count", "touch_total")

    define(api, {**street_count, "label": "Street deals"})
    define(api, {**street_max, "label": "Most street touches"})

    assert kept == {"deal_count": 2, "touch_total": 7}
    assert stored_fields(platform, north, "deal_count", "touch_total") == kept


def test_a_condition_past_64_bits_counts_as_the_rules_engine_reads_it(
    platform: Platform, api: Api
) -> None:
    # Python computes 2**62 * 4 exactly; SQL would stop on it, and the save of
    # the deal, or of the rule, was refused as holding a value out of range.
    busy = {">": [{"*": [{"var": "touches"}, 4]}, 0]}
    busy_count = _rollup("deal_count", "count", condition=busy)
    busy_max = _rollup("last_close", "max", of="close_date", condition=busy)
    define(api, TALLIED_ACCOUNT, TALLIED_OPPORTUNITY, busy_count, busy_max)
    north = create(api, "account", name="North Yard")

    saved = api.post(
        "/opportunity",
        json={
            "title": "Busy",
            "account": north["id"],
            "touches": 2**62,
            "close_date": "2031-04-17",
        },
    )
    again = api.put("/meta/rules/deal_count", json={**busy_count, "label": "Busy"})

    assert saved.status_code == 201, saved.json
    assert again.status_code == 200, again.json
    assert stored_fields(platform, north, "deal_count", "last_close") == {
        "deal_count": 1,
        "last_close": dt.date(2031, 4, 17),
    }


def test_a_unique_total_kept_by_increments_that_clashes_refuses_the_save(
    platform: Platform, api: Api
) -> None:
    # Each save of a deal adds to its account's touches without reading them; a
    # total that another account already has is refused as a formula's is.
    account = {
        **TALLIED_ACCOUNT,
        "fields": [
            {**spec, "unique": True} if spec["name"] == "touch_total" else spec
            for spec in TALLIED_ACCOUNT["fields"]
        ],
    }
    define(api, account, TALLIED_OPPORTUNITY, TOUCH_TOTAL)
    north = create(api, "account", name="North Yard")
    create(api, "opportunity", title="A", account=north["id"], touches=4)
    south = create(api, "account", name="South Yard")
    deal = create(api, "opportunity", title="B", account=south["id"], touches=2)
    create(api, "opportunity", title="C", account=south["id"], touches=4)

    added = api.post(
        "/opportunity", json={"title": "D", "account": south["id"], "touches": -2}
    )
    gone = api.delete(f"/opportunity/{deal['id']}")
    report = load_csv(
        platform,
        "opportunity",
        "title,account,touches\nE,South Yard,-2\n",
        skip_bad_rows=True,
    )

    assert (added.status_code, gone.status_code) == (409, 409), added.json
    assert problems(added) == problems(gone) == [("account.touch_total", "unique")]
    assert f"Account {south['id']} would be 4" in added.json["errors"][0]["message"]
    assert [(e.row, e.field, e.code) for e in report.errors] == [
        (2, "account.touch_total", "unique")
    ]
    assert stored_fields(platform, south, "touch_total") == {"touch_total": 6}
    titles = [d["title"] for d in api.get("/opportunity?sort=title").json["data"]]
    assert titles == ["A", "B", "C"]
