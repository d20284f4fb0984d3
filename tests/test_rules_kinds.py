"""Rule kinds on the write path: every save, from any path, runs the same rules.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture behind
``api``).
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask

from tailorcrm.errors import Forbidden
from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.access import set_user_roles
from tailorcrm.platform.auth import create_token, create_user, find_user
from tailorcrm.platform.cli import main
from tailorcrm.platform.importer import ImportFailed
from tailorcrm.platform.records import SYSTEM_ACTOR, RecordService
from tests.conftest import Api, grant_all
from tests.rules_support import (
    ACCOUNT,
    LOSS_REASON_REQUIRED,
    OPPORTUNITY,
    OPPORTUNITY_INDUSTRY,
    TASK,
    WON_TOTAL,
    create,
    creates_on_create,
    define,
    load_csv,
    problems,
    rule,
    saved_behind,
)


@pytest.fixture
def crm(api: Api) -> Api:
    define(api, ACCOUNT, OPPORTUNITY, TASK)
    return api


def read(api: Api, entity: str, record_id: int) -> dict[str, Any]:
    record: dict[str, Any] = api.get(f"/{entity}/{record_id}").json
    return record


@pytest.mark.parametrize("trigger", ["create", "update"])
def test_a_value_an_automation_sets_that_another_record_holds_is_a_conflict(
    crm: Api, trigger: str
) -> None:
    """Answered as any clash with stored data is: 409, code unique."""
    copy = rule(
        "copy_code",
        "opportunity",
        "automation",
        trigger=trigger,
        condition={"==": [{"var": "next_step"}, "copy"]},
        actions=[{"type": "set_field", "field": "erp_code", "value": "E1"}],
    )
    define(crm, copy)
    holder = create(crm, "opportunity", title="Holder", erp_code="E1")
    other = create(crm, "opportunity", title="Other", erp_code="E2")

    if trigger == "create":
        response = crm.post("/opportunity", json={"title": "Twin", "next_step": "copy"})
    else:
        response = crm.patch(f"/opportunity/{other['id']}", json={"next_step": "copy"})

    assert response.status_code == 409, response.json
    assert problems(response) == [("erp_code", "unique")]
    assert "copy_code" in response.json["detail"]
    kept = crm.get("/opportunity?count=1").json
    assert kept["count"] == 2
    assert read(crm, "opportunity", other["id"])["next_step"] is None
    assert read(crm, "opportunity", holder["id"])["erp_code"] == "E1"


def test_a_dry_run_of_a_record_save_runs_every_rule_and_keeps_nothing(
    crm: Api,
) -> None:
    define(crm, LOSS_REASON_REQUIRED, WON_TOTAL)
    account = create(crm, "account", name="Dockside")
    deal = create(crm, "opportunity", title="Crane", account=account["id"])
    won = {"title": "Barge", "account": account["id"], "stage": "won", "amount": 700}
    history = crm.get(f"/opportunity/{deal['id']}/history").json["data"]

    created = crm.post("/opportunity?dry_run=1", json=won)
    refused = crm.post("/opportunity?dry_run=1", json={"title": "X", "stage": "lost"})
    changed = crm.patch(
        f"/opportunity/{deal['id']}?dry_run=true",
        json={"stage": "won", "amount": 300},
    )
    deleted = crm.delete(f"/opportunity/{deal['id']}?dry_run=yes")
    held = crm.delete(f"/account/{account['id']}?dry_run=1")

    assert created.status_code == 200, created.json
    assert created.json["applied"] is False
    assert created.json["record"]["title"] == "Barge"
    assert refused.status_code == 422
    assert problems(refused) == [("loss_reason", "rule")]
    assert changed.status_code == 200, changed.json
    assert changed.json["record"]["stage"] == "won"
    assert changed.json["record"]["version"] == 2
    assert (deleted.status_code, deleted.json) == (
        200,
        {"applied": False, "record": None},
    )
    assert held.status_code == 409
    # Nothing of them is kept: records, roll-ups, versions or history.
    assert crm.get("/opportunity?count=1").json["count"] == 1
    assert read(crm, "opportunity", deal["id"])["version"] == 1
    assert read(crm, "opportunity", deal["id"])["stage"] != "won"
    assert read(crm, "account", account["id"])["won_total"] in (0, None)
    assert crm.get(f"/opportunity/{deal['id']}/history").json["data"] == history
    assert crm.post("/opportunity?dry_run=on", json=won).status_code == 400


# -- validation rules: every path --------------------------------------------------


def test_a_validation_rule_refuses_api_saves(crm: Api) -> None:
    define(crm, LOSS_REASON_REQUIRED)
    kept = create(crm, "opportunity", title="Depot", stage="negotiation")

    created = crm.post("/opportunity", json={"title": "Pier", "stage": "lost"})
    changed = crm.patch(f"/opportunity/{kept['id']}", json={"stage": "lost"})
    explained = crm.patch(
        f"/opportunity/{kept['id']}", json={"stage": "lost", "loss_reason": "Price"}
    )

    assert created.status_code == 422
    assert created.json["errors"] == [
        {
            "field": "loss_reason",
            "code": "rule",
            "message": "Say why the opportunity was lost.",
        }
    ]
    assert problems(changed) == [("loss_reason", "rule")]
    assert explained.status_code == 200
    assert explained.json["stage"] == "lost"


def test_a_validation_rule_fails_csv_rows_like_any_field_problem(
    platform: Platform, crm: Api
) -> None:
    define(crm, LOSS_REASON_REQUIRED)
    text = "title,stage,loss_reason\nKeel,lost,\nMast,lost,Timing\nHull,won,\n"

    with pytest.raises(ImportFailed) as excinfo:
        load_csv(platform, "opportunity", text)
    skipped = load_csv(platform, "opportunity", text, skip_bad_rows=True)

    assert [(e.row, e.field, e.code) for e in excinfo.value.report.errors] == [
        (2, "loss_reason", "rule")
    ]
    assert excinfo.value.report.errors[0].message == "Say why the opportunity was lost."
    assert (skipped.created, skipped.failed_rows) == (2, 1)
    titles = [r["title"] for r in crm.get("/opportunity").json["data"]]
    assert titles == ["Mast", "Hull"]


def test_rules_do_not_judge_csv_cells_that_could_not_be_read(
    platform: Platform, crm: Api
) -> None:
    priced = rule(
        "priced",
        "opportunity",
        "validation",
        condition={"is_blank": {"var": "amount"}},
        message="Give the amount.",
    )
    define(crm, priced)

    with pytest.raises(ImportFailed) as excinfo:
        load_csv(
            platform,
            "opportunity",
            "erp_code,title,amount\nE1,Kelp,lots\nE2,Reef,\n",
            key="erp_code",
        )

    assert [(e.row, e.field) for e in excinfo.value.report.errors] == [
        (2, "amount"),
        (3, None),
    ]
    assert excinfo.value.report.errors[1].message == "Give the amount."


def test_rules_that_read_only_readable_cells_judge_a_csv_row_with_a_bad_cell(
    platform: Platform, crm: Api
) -> None:
    define(crm, LOSS_REASON_REQUIRED)

    with pytest.raises(ImportFailed) as excinfo:
        load_csv(
            platform,
            "opportunity",
            "title,stage,close_date\nKelp,lost,2030-1-5\n",
        )

    assert [(e.row, e.field, e.code) for e in excinfo.value.report.errors] == [
        (2, "close_date", "invalid_date"),
        (2, "loss_reason", "rule"),
    ]


def test_rules_that_read_a_bad_cell_do_not_judge_its_stored_value_on_an_update(
    platform: Platform, crm: Api
) -> None:
    no_wait = rule(
        "no_wait",
        "opportunity",
        "validation",
        condition={
            "and": [
                {">": [{"var": "amount"}, 1000]},
                {"==": [{"var": "next_step"}, "wait"]},
            ]
        },
        message="Big deals do not wait.",
        field="next_step",
    )
    define(crm, LOSS_REASON_REQUIRED, no_wait)
    load_csv(platform, "opportunity", "erp_code,title,amount\nE1,Kelp,5000\n")

    with pytest.raises(ImportFailed) as excinfo:
        load_csv(
            platform,
            "opportunity",
            "erp_code,amount,next_step,stage\nE1,lots,wait,lost\n",
            key="erp_code",
        )

    assert [(e.row, e.field, e.code) for e in excinfo.value.report.errors] == [
        (2, "amount", "invalid_decimal"),
        (2, "loss_reason", "rule"),
    ]


def test_an_update_row_with_a_bad_cell_runs_no_automation_on_its_stored_value(
    platform: Platform, crm: Api
) -> None:
    hold = rule(
        "hold_big_deals",
        "opportunity",
        "automation",
        trigger="update",
        condition={">": [{"var": "amount"}, 1000]},
        actions=[{"type": "set_field", "field": "next_step", "value": "wait"}],
    )
    no_wait = rule(
        "no_wait",
        "opportunity",
        "validation",
        condition={"==": [{"var": "next_step"}, "wait"]},
        message="Deals do not wait.",
        field="next_step",
    )
    define(crm, hold, no_wait)
    deal = create(crm, "opportunity", title="Kelp", erp_code="E1", amount=5000)

    with pytest.raises(ImportFailed) as excinfo:
        load_csv(
            platform,
            "opportunity",
            "erp_code,amount,touches\nE1,lots,3\n",
            key="erp_code",
        )
    response = crm.patch(
        f"/opportunity/{deal['id']}", json={"amount": "lots", "touches": 3}
    )

    assert [(e.row, e.field, e.code) for e in excinfo.value.report.errors] == [
        (2, "amount", "invalid_decimal"),
    ]
    assert problems(response) == [("amount", "invalid_decimal")]


def test_a_validation_rule_refuses_what_an_automation_saves(crm: Api) -> None:
    give_up = rule(
        "give_up",
        "opportunity",
        "automation",
        trigger="update",
        condition={"==": [{"var": "next_step"}, "give up"]},
        actions=[{"type": "set_field", "field": "stage", "value": "lost"}],
    )
    define(crm, LOSS_REASON_REQUIRED, give_up)
    record = create(crm, "opportunity", title="Anchor")

    response = crm.patch(f"/opportunity/{record['id']}", json={"next_step": "give up"})

    assert response.status_code == 422
    assert problems(response) == [("loss_reason", "rule")]
    assert "give_up" in response.json["detail"]
    # The save that triggered the automation is undone with it.
    assert read(crm, "opportunity", record["id"])["next_step"] is None


# -- defaults, formulas and failures that give null ----------------------------------


def test_a_default_rule_fills_a_field_only_when_it_is_not_given(
    platform: Platform, crm: Api
) -> None:
    call = rule(
        "first_step",
        "opportunity",
        "default",
        field="next_step",
        expression={"cat": ["Call about ", {"var": "title"}]},
    )
    define(crm, call)

    defaulted = create(crm, "opportunity", title="Quay")
    given = create(crm, "opportunity", title="Dock", next_step="Wait")
    cleared = create(crm, "opportunity", title="Jetty", next_step=None)
    load_csv(platform, "opportunity", "title,next_step\nSlip,\n")

    assert defaulted["next_step"] == "Call about Quay"
    assert given["next_step"] == "Wait"
    assert cleared["next_step"] is None
    imported = crm.get("/opportunity?title=Slip").json["data"][0]
    assert imported["next_step"] == "Call about Slip"


def test_a_formula_is_stored_recomputed_and_never_written_by_callers(
    platform: Platform, crm: Api
) -> None:
    total = rule(
        "line_total",
        "opportunity",
        "formula",
        field="total",
        expression={"*": [{"var": "quantity"}, {"var": "unit_price"}]},
    )
    define(crm, total)

    record = create(crm, "opportunity", title="Crane", quantity=3, unit_price=19.99)
    changed = crm.patch(f"/opportunity/{record['id']}", json={"quantity": 4})
    written = crm.patch(f"/opportunity/{record['id']}", json={"total": 1})
    posted = crm.post("/opportunity", json={"title": "Hoist", "total": 5})
    report = load_csv(
        platform, "opportunity", "title,quantity,unit_price,total\nWinch,2,5,99\n"
    )

    assert record["total"] == Decimal("59.97")
    assert changed.json["total"] == Decimal("79.96")
    assert written.status_code == 422
    assert problems(written) == [("total", "computed")]
    assert "line_total" in written.json["errors"][0]["message"]
    assert problems(posted) == [("total", "computed")]
    assert report.ignored_columns == ["total"]
    assert crm.get("/opportunity?title=Winch").json["data"][0]["total"] == 10


def test_a_new_formula_keeps_the_values_other_formulas_computed_on_create(
    crm: Api,
) -> None:
    saved_by = rule(
        "saved_by",
        "opportunity",
        "formula",
        field="next_step",
        expression={"var": "$user.username"},
    )
    total_text = rule(
        "total_text",
        "opportunity",
        "formula",
        field="industry",
        expression={"cat": ["Total ", {"var": "total"}]},
    )
    define(crm, saved_by, total_text)
    record = create(crm, "opportunity", title="Kiln", quantity=3, unit_price=2)

    define(
        crm,
        rule(
            "line_total",
            "opportunity",
            "formula",
            field="total",
            expression={"*": [{"var": "quantity"}, {"var": "unit_price"}]},
        ),
    )

    assert record["next_step"] == "admin"
    after = read(crm, "opportunity", record["id"])
    assert (after["next_step"], after["total"], after["industry"]) == (
        "admin",
        6,
        "Total 6",
    )


@pytest.mark.parametrize(
    ("expression", "values"),
    [
        # A division by zero.
        (
            {"/": [{"var": "amount"}, {"var": "quantity"}]},
            {"amount": 10, "quantity": 0},
        ),
        # A date that does not parse: next_step holds text.
        (
            {"date_diff": [{"if": [True, {"var": "next_step"}, None]}, "2026-01-01"]},
            {"next_step": "someday"},
        ),
        # A missing relation.
        ({"var": "account.won_count"}, {"account": None}),
    ],
)
def test_failures_in_formulas_give_null_never_an_error(
    crm: Api, expression: Any, values: dict[str, Any]
) -> None:
    define(
        crm,
        rule(
            "touch_count",
            "opportunity",
            "formula",
            field="touches",
            expression=expression,
        ),
    )

    response = crm.post("/opportunity", json={"title": "Buoy", **values})

    assert response.status_code == 201, response.json
    assert response.json["touches"] is None


def test_failures_in_conditions_do_not_fire_a_validation_rule(crm: Api) -> None:
    early = rule(
        "not_in_the_past",
        "opportunity",
        "validation",
        condition={
            "or": [
                {"<": [{"if": [True, {"var": "next_step"}, None]}, {"today": []}]},
                {">": [{"/": [{"var": "amount"}, {"var": "quantity"}]}, 100]},
                {"==": [{"var": "account.industry"}, "energy"]},
            ]
        },
        message="Not allowed.",
    )
    define(crm, early)

    response = crm.post(
        "/opportunity",
        json={"title": "Raft", "next_step": "soon", "amount": 5, "quantity": 0},
    )

    assert response.status_code == 201, response.json


def test_a_formula_value_that_does_not_fit_its_field_is_a_rule_error(crm: Api) -> None:
    define(
        crm,
        rule(
            "stage_text",
            "opportunity",
            "formula",
            field="industry",
            expression={"cat": [{"var": "title"}, {"var": "title"}]},
        ),
    )

    response = crm.post("/opportunity", json={"title": "x" * 200})

    assert response.status_code == 422
    assert problems(response) == [("industry", "rule_value")]
    assert "stage_text" in response.json["errors"][0]["message"]


@pytest.mark.parametrize("kind", ["formula", "default"])
def test_a_required_field_whose_rule_value_does_not_fit_gets_one_problem(
    crm: Api, kind: str
) -> None:
    # The rule's value was refused, so the field stays blank; "This field is
    # required" on top would ask the caller for a value of a field a formula
    # computes and they cannot write.
    define(
        crm,
        rule(
            "doubled_subject",
            "task",
            kind,
            field="subject",
            expression={"cat": [{"var": "about"}, {"var": "about"}]},
        ),
    )

    response = crm.post("/task", json={"about": "x" * 200})

    assert response.status_code == 422
    assert problems(response) == [("subject", "rule_value")]


def test_a_required_field_a_formula_leaves_blank_is_refused_on_update_too(
    platform: Platform, crm: Api
) -> None:
    # A new deal without an account is refused, its industry being required;
    # taking the account away from a stored deal, or moving it to an account
    # without an industry, blanked the same field and was saved.
    needs_industry = {
        **OPPORTUNITY,
        "fields": [
            {**spec, "required": True} if spec["name"] == "industry" else spec
            for spec in OPPORTUNITY["fields"]
        ],
    }
    define(crm, needs_industry, OPPORTUNITY_INDUSTRY)
    harbour = create(crm, "account", name="Harbour", industry="energy")
    deal = create(crm, "opportunity", title="Cranes", account=harbour["id"])
    create(crm, "opportunity", title="Hoists", account=harbour["id"], erp_code="H1")
    create(crm, "account", name="Dry dock")

    created = crm.post("/opportunity", json={"title": "Winches"})
    changed = crm.patch(f"/opportunity/{deal['id']}", json={"account": None})
    with pytest.raises(ImportFailed) as imported:
        load_csv(
            platform, "opportunity", "erp_code,account\nH1,Dry dock\n", key="erp_code"
        )
    renamed = crm.patch(f"/opportunity/{deal['id']}", json={"title": "Big cranes"})

    assert problems(created) == [("industry", "required")]
    assert problems(changed) == [("industry", "required")]
    assert read(crm, "opportunity", deal["id"])["account"] == harbour["id"]
    assert [(e.row, e.field) for e in imported.value.report.errors] == [(2, "industry")]
    assert renamed.status_code == 200, renamed.json


def test_a_change_of_a_related_record_leaving_a_required_formula_blank_is_refused(
    crm: Api,
) -> None:
    # The deals' industry is required and read from their account: clearing the
    # account's industry, or deleting the account (the lookup is cleared),
    # would leave it blank in every deal of the account.
    needs_industry = {
        **OPPORTUNITY,
        "fields": [
            {**spec, "required": True} if spec["name"] == "industry" else spec
            for spec in OPPORTUNITY["fields"]
        ],
    }
    cleared = {
        **needs_industry,
        "fields": [
            {**spec, "on_delete": "set_null"} if spec["name"] == "account" else spec
            for spec in needs_industry["fields"]
        ],
    }
    define(crm, cleared, OPPORTUNITY_INDUSTRY)
    harbour = create(crm, "account", name="Harbour", industry="energy")
    deal = create(crm, "opportunity", title="Cranes", account=harbour["id"])

    blanked = crm.patch(f"/account/{harbour['id']}", json={"industry": None})
    deleted = crm.delete(f"/account/{harbour['id']}")
    moved = crm.patch(f"/account/{harbour['id']}", json={"industry": "retail"})

    for refused in (blanked, deleted):
        assert refused.status_code == 422, refused.json
        [error] = refused.json["errors"]
        assert (error["field"], error["code"]) == ("opportunity.industry", "required")
        assert error["message"].startswith(f"Opportunity {deal['id']}: ")
    assert read(crm, "account", harbour["id"])["industry"] == "retail"
    assert moved.status_code == 200, moved.json
    assert read(crm, "opportunity", deal["id"])["industry"] == "retail"


@pytest.mark.parametrize(
    "target", ["total", "touches", "close_date", "industry", "title"]
)
def test_any_value_a_formula_gives_is_stored_or_refused_never_a_500(
    crm: Api, target: str
) -> None:
    # The formula's kind is unknown when it is saved (a reduce gives what its
    # steps give, here its start: nothing to go through), so only the save can
    # tell.
    copied = {"reduce": [[], {"var": "accumulator"}, {"var": "loss_reason"}]}
    define(crm, rule("copy", "opportunity", "formula", field=target, expression=copied))
    texts = ["abc", "2026-02-30", "2026-02-28", "12.345", "12.5", "", "won", "x" * 300]

    statuses = {
        text: crm.post(
            "/opportunity", json={"title": "Tern", "loss_reason": text}
        ).status_code
        for text in texts
    }

    assert set(statuses.values()) <= {201, 422}, statuses
    assert statuses[""] == (422 if target == "title" else 201)


# -- formulas through lookups --------------------------------------------------------


def test_a_formula_through_a_lookup_follows_the_parent(crm: Api) -> None:
    define(crm, OPPORTUNITY_INDUSTRY)
    shop = create(crm, "account", name="Corner Shop", industry="retail")
    other = create(crm, "account", name="Grid Works", industry="energy")
    first = create(crm, "opportunity", title="Shelves", account=shop["id"])
    second = create(crm, "opportunity", title="Tills", account=shop["id"])
    alone = create(crm, "opportunity", title="Cables")

    crm.patch(f"/account/{shop['id']}", json={"industry": "finance"})
    moved = crm.patch(f"/opportunity/{alone['id']}", json={"account": other["id"]})
    crm.patch(f"/account/{shop['id']}", json={"name": "Corner Bank"})

    assert first["industry"] == "retail"
    assert read(crm, "opportunity", first["id"])["industry"] == "finance"
    assert read(crm, "opportunity", second["id"])["industry"] == "finance"
    assert read(crm, "opportunity", first["id"])["version"] == 2
    assert alone["industry"] is None
    assert moved.json["industry"] == "energy"


def test_two_lookups_to_one_entity_each_read_their_fields(crm: Api) -> None:
    transfer = {
        "name": "transfer",
        "label": "Transfer",
        "fields": [
            {"name": "source", "type": "lookup", "target": "account", "label": "From"},
            {"name": "sink", "type": "lookup", "target": "account", "label": "To"},
            {"name": "summary", "type": "text", "label": "Summary"},
        ],
    }
    summary = rule(
        "transfer_summary",
        "transfer",
        "formula",
        field="summary",
        expression={"cat": [{"var": "source.name"}, " to ", {"var": "sink.industry"}]},
    )
    define(crm, transfer, summary)
    first = create(crm, "account", name="Tide Mill", industry="energy")
    second = create(crm, "account", name="Salt Barn", industry="retail")

    made = create(crm, "transfer", source=first["id"], sink=second["id"])
    inside = create(crm, "transfer", source=first["id"], sink=first["id"])
    crm.patch(f"/account/{second['id']}", json={"industry": "finance"})

    assert made["summary"] == "Tide Mill to retail"
    assert inside["summary"] == "Tide Mill to energy"
    assert read(crm, "transfer", made["id"])["summary"] == "Tide Mill to finance"


def test_clearing_a_lookup_on_delete_recomputes_the_formulas_reading_it(
    crm: Api,
) -> None:
    define(
        crm,
        rule(
            "about_title",
            "task",
            "formula",
            field="about",
            expression={"var": "opportunity.title"},
        ),
    )
    deal = create(crm, "opportunity", title="Harbour lights")
    task = create(crm, "task", subject="Send offer", opportunity=deal["id"])

    crm.delete(f"/opportunity/{deal['id']}")

    assert task["about"] == "Harbour lights"
    after = read(crm, "task", task["id"])
    assert (after["opportunity"], after["about"]) == (None, None)


# -- roll-ups ------------------------------------------------------------------------

WON_COUNT = rule(
    "won_count",
    "account",
    "rollup",
    field="won_count",
    relation={"entity": "opportunity", "lookup": "account"},
    function="count",
    condition={"==": [{"var": "stage"}, "won"]},
)
LAST_CLOSE = rule(
    "last_close",
    "account",
    "rollup",
    field="last_close",
    relation={"entity": "opportunity", "lookup": "account"},
    function="max",
    of="close_date",
)


def totals(api: Api, *accounts: dict[str, Any]) -> list[tuple[Any, Any, Any]]:
    found = [read(api, "account", account["id"]) for account in accounts]
    return [(a["won_total"], a["won_count"], a["last_close"]) for a in found]


def test_a_rollup_is_right_after_create_update_delete_and_reparenting(
    crm: Api,
) -> None:
    define(crm, WON_TOTAL, WON_COUNT, LAST_CLOSE)
    north = create(crm, "account", name="North Yard")
    south = create(crm, "account", name="South Yard")

    won = create(
        crm, "opportunity", title="A", account=north["id"], stage="won",
        amount=0.1, close_date="2026-03-01",
    )  # fmt: skip
    open_deal = create(
        crm, "opportunity", title="B", account=north["id"], amount=0.2,
        close_date="2026-05-01",
    )  # fmt: skip
    after_create = totals(crm, north, south)
    crm.patch(f"/opportunity/{open_deal['id']}", json={"stage": "won"})
    after_update = totals(crm, north, south)
    crm.patch(f"/opportunity/{won['id']}", json={"account": south["id"]})
    after_move = totals(crm, north, south)
    crm.delete(f"/opportunity/{open_deal['id']}")
    after_delete = totals(crm, north, south)

    assert after_create == [(Decimal("0.1"), 1, "2026-05-01"), (0, 0, None)]
    assert after_update == [(Decimal("0.3"), 2, "2026-05-01"), (0, 0, None)]
    assert after_move == [
        (Decimal("0.2"), 1, "2026-05-01"),
        (Decimal("0.1"), 1, "2026-03-01"),
    ]
    assert after_delete == [(0, 0, None), (Decimal("0.1"), 1, "2026-03-01")]


def test_a_rollup_is_kept_by_a_bulk_import(platform: Platform, crm: Api) -> None:
    define(crm, WON_TOTAL, WON_COUNT)
    create(crm, "account", name="Mill")
    create(crm, "account", name="Forge")
    rows = ["title,account,stage,amount"]
    rows += [
        f"Deal {n},{'Mill' if n % 3 else 'Forge'},won,{n}.25" for n in range(1, 31)
    ]
    rows += ["Lost one,Mill,lost,1000"]

    report = load_csv(platform, "opportunity", "\n".join(rows) + "\n")

    assert report.created == 31
    accounts = {a["name"]: a for a in crm.get("/account").json["data"]}
    mill = [n for n in range(1, 31) if n % 3]
    forge = [n for n in range(1, 31) if not n % 3]
    assert accounts["Mill"]["won_total"] == sum(mill) + Decimal("0.25") * len(mill)
    assert accounts["Mill"]["won_count"] == len(mill)
    assert accounts["Forge"]["won_total"] == sum(forge) + Decimal("0.25") * len(forge)


def test_an_import_with_rules_reads_related_records_per_batch_not_per_row(
    platform: Platform, crm: Api
) -> None:
    define(crm, LOSS_REASON_REQUIRED, OPPORTUNITY_INDUSTRY, WON_TOTAL)
    create(crm, "account", name="Mill", industry="retail")
    create(crm, "account", name="Forge", industry="energy")

    def reads(rows: int) -> int:
        selects: list[str] = []

        def seen(*args: Any) -> None:
            if args[2].lstrip().upper().startswith("SELECT"):
                selects.append(args[2])

        lines = [f"D{n},{'Mill' if n % 2 else 'Forge'},won,{n}" for n in range(rows)]
        text = "title,account,stage,amount\n" + "\n".join(lines) + "\n"
        sa.event.listen(platform.engine, "before_cursor_execute", seen)
        try:
            load_csv(platform, "opportunity", text)
        finally:
            sa.event.remove(platform.engine, "before_cursor_execute", seen)
        return len(selects)

    assert reads(300) == reads(20)
    industries = {
        r["industry"] for r in crm.get("/opportunity?limit=1000").json["data"]
    }
    assert industries == {"retail", "energy"}


#: At most two won opportunities per account, judged on the account's roll-up.
TWO_WON_AT_MOST = rule(
    "two_won_at_most",
    "opportunity",
    "validation",
    field="account",
    condition={
        "and": [
            {"==": [{"var": "stage"}, "won"]},
            {">=": [{"var": "account.won_count"}, 2]},
        ]
    },
    message="An account has two won opportunities at most.",
)
#: One won opportunity per account.
ONE_WON_AT_MOST = {
    **TWO_WON_AT_MOST,
    "name": "one_won_at_most",
    "condition": {
        "and": [
            {"==": [{"var": "stage"}, "won"]},
            {">=": [{"var": "account.won_count"}, 1]},
        ]
    },
    "message": "An account has one won opportunity at most.",
}
#: A task for every new opportunity: its rows are saved one by one.
KICKOFF = creates_on_create(
    "kickoff", "opportunity", "task", {"subject": {"var": "title"}}
)


@pytest.mark.parametrize("automated", [False, True])
def test_an_import_judges_each_row_on_the_totals_the_rows_before_it_left(
    platform: Platform, crm: Api, automated: bool
) -> None:
    # Saved one by one, the third won opportunity of Mill is refused: the
    # roll-up counts the two before it. An import refuses that row alike,
    # whether its rows are saved together or (with an automation) one by one.
    define(crm, WON_COUNT, TWO_WON_AT_MOST)
    if automated:
        define(crm, KICKOFF)
    create(crm, "account", name="Mill")
    text = "title,account,stage\nA,Mill,won\nB,Mill,won\nC,Mill,won\nD,Mill,\n"

    with pytest.raises(ImportFailed) as refused:
        load_csv(platform, "opportunity", text)
    report = load_csv(platform, "opportunity", text, skip_bad_rows=True)

    assert [(e.row, e.field, e.code) for e in refused.value.report.errors] == [
        (4, "account", "rule")
    ]
    assert (report.created, report.failed_rows) == (3, 1)
    assert crm.get("/account").json["data"][0]["won_count"] == 2


def test_an_imported_formula_reads_the_totals_the_rows_before_it_left(
    platform: Platform, crm: Api
) -> None:
    # The automation saves the rows one by one; a row that moves no total
    # still reads the total that the rows before it made.
    account_total = rule(
        "account_total", "opportunity", "formula", field="total",
        expression={"var": "account.won_total"},
    )  # fmt: skip
    define(crm, WON_TOTAL, account_total, KICKOFF)
    create(crm, "account", name="Mill")
    text = "title,account,stage,amount\nA,Mill,won,100\nB,Mill,,50\n"

    load_csv(platform, "opportunity", text)

    deals = crm.get("/opportunity?sort=title").json["data"]
    assert [(deal["title"], deal["total"]) for deal in deals] == [
        ("A", 100),
        ("B", 100),
    ]


def test_a_bad_row_is_judged_on_the_totals_the_rows_around_it_leave(
    platform: Platform, crm: Api
) -> None:
    # "Boom" is bad for its quantity, and also because Mill has a won deal by
    # then: the stored "Spar", which only the row below it makes lost, and then
    # the won "Mast" above it. Each attempt tells both problems at once.
    define(crm, WON_COUNT, ONE_WON_AT_MOST)
    mill = create(crm, "account", name="Mill")
    spar = create(
        crm, "opportunity", title="Spar", account=mill["id"], erp_code="E-9",
        stage="won",
    )  # fmt: skip
    below = (
        "erp_code,title,account,stage,quantity\n"
        "E-2,Boom,Mill,won,many\nE-9,Spar,Mill,lost,\n"
    )
    above = "title,account,stage,quantity\nMast,Mill,won,\nBoom,Mill,won,many\n"

    with pytest.raises(ImportFailed) as first:
        load_csv(platform, "opportunity", below, key="erp_code")
    crm.patch(f"/opportunity/{spar['id']}", json={"stage": "lost"})
    with pytest.raises(ImportFailed) as second:
        load_csv(platform, "opportunity", above)

    assert [(e.row, e.field, e.code) for e in first.value.report.errors] == [
        (2, "quantity", "invalid_integer"),
        (2, "account", "rule"),
    ]
    assert [(e.row, e.field, e.code) for e in second.value.report.errors] == [
        (3, "quantity", "invalid_integer"),
        (3, "account", "rule"),
    ]


def test_an_import_accepts_a_row_that_the_rows_before_it_made_valid(
    platform: Platform, crm: Api
) -> None:
    # Saved one by one, the renewal is accepted: the won deal above it is
    # counted by then. An import accepts it alike.
    renewal_needs_a_win = rule(
        "renewal_needs_a_win",
        "opportunity",
        "validation",
        field="next_step",
        condition={
            "and": [
                {"==": [{"var": "next_step"}, "renewal"]},
                {"<": [{"var": "account.won_count"}, 1]},
            ]
        },
        message="A renewal follows a won opportunity.",
    )
    define(crm, WON_COUNT, renewal_needs_a_win)
    create(crm, "account", name="Mill")
    text = "title,account,stage,next_step\nA,Mill,won,\nB,Mill,,renewal\n"

    report = load_csv(platform, "opportunity", text)

    assert (report.created, report.failed_rows) == (2, 0)
    assert crm.get("/account").json["data"][0]["won_count"] == 1


def test_a_rollup_condition_without_sql_form_runs_in_python(crm: Api) -> None:
    matched = {
        **WON_COUNT,
        "name": "pier_count",
        "condition": {"matches": [{"var": "title"}, "^Pier"]},
    }
    define(crm, matched)
    account = create(crm, "account", name="Coast")

    for title in ("Pier 1", "Pier 2", "Beach"):
        create(crm, "opportunity", title=title, account=account["id"])

    assert read(crm, "account", account["id"])["won_count"] == 2


def test_a_new_formula_or_rollup_fills_the_records_already_there(crm: Api) -> None:
    account = create(crm, "account", name="Old Mill", industry="energy")
    deals = [
        create(crm, "opportunity", title=f"D{n}", account=account["id"],
               stage="won", amount=n)
        for n in (5, 7)
    ]  # fmt: skip
    create(crm, "opportunity", title="Open", account=account["id"], amount=100)

    define(crm, WON_TOTAL, OPPORTUNITY_INDUSTRY)

    assert read(crm, "account", account["id"])["won_total"] == 12
    assert {read(crm, "opportunity", d["id"])["industry"] for d in deals} == {"energy"}
    assert read(crm, "opportunity", deals[0]["id"])["version"] == 2


def test_a_recomputed_formula_that_does_not_fit_names_its_field(crm: Api) -> None:
    short = {"name": "short_name", "type": "text", "label": "Short", "max_length": 5}
    define(crm, {**OPPORTUNITY, "fields": [*OPPORTUNITY["fields"], short]})
    account = create(crm, "account", name="Ashby Long Holdings")
    create(crm, "opportunity", title="Pumps", account=account["id"])
    formula = rule(
        "short_name", "opportunity", "formula",
        field="short_name", expression={"var": "account.name"},
    )  # fmt: skip

    # The stored records are filled when the formula is added...
    added = crm.put("/meta/rules/short_name", json=formula)
    assert added.status_code == 422, added.json
    assert problems(added) == [("opportunity.short_name", "rule_value")]
    assert crm.get("/meta/rules/short_name").status_code == 404

    # ...and recomputed when the account they read is renamed.
    renamed = crm.patch(f"/account/{account['id']}", json={"name": "Ash"})
    assert renamed.status_code == 200, renamed.json
    define(crm, formula)
    grown = crm.patch(f"/account/{account['id']}", json={"name": "Ashby Long"})
    assert grown.status_code == 422, grown.json
    assert problems(grown) == [("opportunity.short_name", "rule_value")]
    assert "Opportunity" in grown.json["errors"][0]["message"]
    assert read(crm, "account", account["id"])["name"] == "Ash"


# -- field state -------------------------------------------------------------------


def test_field_state_requires_and_locks_fields_on_every_path(
    platform: Platform, crm: Api
) -> None:
    state = rule(
        "loss_reason_state",
        "opportunity",
        "field_state",
        field="loss_reason",
        visible_if={"in": [{"var": "stage"}, ["lost", "negotiation"]]},
        required_if={"==": [{"var": "stage"}, "lost"]},
    )
    locked = rule(
        "amount_locked",
        "opportunity",
        "field_state",
        field="amount",
        readonly_if={"==": [{"var": "stage"}, "won"]},
    )
    define(crm, state, locked)
    deal = create(crm, "opportunity", title="Bollard", amount=10)

    missing = crm.post("/opportunity", json={"title": "Cleat", "stage": "lost"})
    born_won = crm.post(
        "/opportunity", json={"title": "Cleat", "stage": "won", "amount": 3}
    )
    won_now = crm.patch(
        f"/opportunity/{deal['id']}", json={"stage": "won", "amount": 12}
    )
    locked_now = crm.patch(f"/opportunity/{deal['id']}", json={"amount": 15})
    reopened = crm.patch(
        f"/opportunity/{deal['id']}", json={"stage": "negotiation", "amount": 15}
    )
    with pytest.raises(ImportFailed) as excinfo:
        load_csv(platform, "opportunity", "title,stage\nWharf,lost\n")

    assert problems(missing) == [("loss_reason", "required")]
    assert born_won.status_code == 201
    assert won_now.status_code == 200
    assert problems(locked_now) == [("amount", "read_only")]
    assert problems(reopened) == [("amount", "read_only")]
    assert [(e.field, e.code) for e in excinfo.value.report.errors] == [
        ("loss_reason", "required")
    ]
    with platform.reading() as (_, catalog):
        states = catalog.rules.for_entity("opportunity").field_states
        forms = catalog.rules.form_states("opportunity")
    assert states["loss_reason"].visible_if is not None
    assert states["loss_reason"].visible_if({"stage": "won"}) is False
    assert forms == {
        "loss_reason": {
            "visible_if": state["visible_if"],
            "required_if": state["required_if"],
        },
        "amount": {"readonly_if": locked["readonly_if"]},
    }


def test_a_locked_field_left_blank_is_not_asked_for_by_a_change_of_others(
    crm: Api,
) -> None:
    # Rules added once the deal was won without an amount: the amount is locked
    # and required, and every change of the deal used to be refused for it.
    deal = create(crm, "opportunity", title="Bollard", stage="won")
    state = rule(
        "amount_state",
        "opportunity",
        "field_state",
        field="amount",
        readonly_if={"==": [{"var": "stage"}, "won"]},
        required_if={"==": [{"var": "stage"}, "won"]},
    )
    define(crm, state)

    renamed = crm.patch(f"/opportunity/{deal['id']}", json={"title": "Capstan"})
    filled = crm.patch(f"/opportunity/{deal['id']}", json={"amount": 5})
    born_won = crm.post("/opportunity", json={"title": "Cleat", "stage": "won"})

    assert renamed.status_code == 200, renamed.json
    assert read(crm, "opportunity", deal["id"])["title"] == "Capstan"
    assert problems(filled) == [("amount", "read_only")]
    assert problems(born_won) == [("amount", "required")]


def test_the_same_choices_in_another_order_change_no_locked_field(
    platform: Platform, crm: Api
) -> None:
    """A multi-picklist holds a set of choices: naming them in another order is no
    change, so readonly_if does not refuse it. The edit form already sends the
    choices as a set; the API, a keyed import and an automation must agree."""
    crate = {
        "name": "crate",
        "label": "Crate",
        "display_field": "label",
        "fields": [
            {"name": "label", "type": "text", "label": "Label", "external_id": True},
            {"name": "sealed", "type": "boolean", "label": "Sealed"},
            {
                "name": "marks",
                "type": "multi_picklist",
                "label": "Marks",
                "options": [
                    {"value": "fragile", "label": "Fragile"},
                    {"value": "heavy", "label": "Heavy"},
                    {"value": "upright", "label": "Upright"},
                ],
            },
        ],
    }
    locked = rule(
        "marks_sealed",
        "crate",
        "field_state",
        field="marks",
        readonly_if={"==": [{"var": "sealed"}, True]},
    )
    define(crm, crate, locked)
    box = create(crm, "crate", label="B-1", sealed=True, marks=["heavy", "fragile"])

    patched = crm.patch(f"/crate/{box['id']}", json={"marks": ["fragile", "heavy"]})
    report = load_csv(
        platform, "crate", "label,marks\nB-1,fragile;heavy\n", key="label"
    )
    moved = crm.patch(f"/crate/{box['id']}", json={"marks": ["fragile", "upright"]})

    assert patched.status_code == 200, patched.json
    assert report.updated == 1
    assert problems(moved) == [("marks", "read_only")]
    stored = read(crm, "crate", box["id"])
    assert (stored["marks"], stored["version"]) == (["heavy", "fragile"], 1)


def test_a_value_stored_with_spaces_around_it_is_no_change_given_without(
    app: Flask, platform: Platform, crm: Api
) -> None:
    """One-line text stored with spaces around it (before such text was trimmed
    on every path) reads as the value without them: sent back, by a PATCH of the
    record as read, a keyed import or a caller whose role may only read the
    field, it is no change, as the edit form already finds it."""
    locked = rule(
        "next_step_locked",
        "opportunity",
        "field_state",
        field="next_step",
        readonly_if={"==": [{"var": "stage"}, "won"]},
    )
    define(crm, locked)
    deal = create(crm, "opportunity", title="Quay", stage="won", erp_code="E-7")
    with platform.transaction() as (connection, catalog):
        table = catalog.entity("opportunity").table
        connection.execute(
            table.update()
            .where(table.c.id == deal["id"])
            .values(next_step=" Call back ")
        )
    reader = {
        "kind": "role",
        "name": "step_reader",
        "label": "Step reader",
        "entities": {
            "opportunity": {
                **dict.fromkeys(("create", "read", "edit"), "all"),
                "fields": {"next_step": "read_only"},
            }
        },
    }
    platform.store.apply([("", reader)], actor="test")
    with platform.engine.begin() as connection:
        clerk = create_user(connection, "clerk", "clerk-password-1")
        token = create_token(connection, clerk)
    with platform.transaction() as (connection, catalog):
        set_user_roles(connection, catalog, "clerk", ["step_reader"])
    as_clerk = Api(app.test_client(), token)

    sent_back = crm.patch(
        f"/opportunity/{deal['id']}", json={"title": "Quay", "next_step": " Call back "}
    )
    trimmed = crm.patch(f"/opportunity/{deal['id']}", json={"next_step": "Call back"})
    report = load_csv(
        platform, "opportunity", "erp_code,next_step\nE-7,Call back\n", key="erp_code"
    )
    by_clerk = as_clerk.patch(
        f"/opportunity/{deal['id']}", json={"next_step": "Call back"}
    )
    moved = crm.patch(f"/opportunity/{deal['id']}", json={"next_step": "Call later"})

    assert sent_back.status_code == 200, sent_back.json
    assert trimmed.status_code == 200, trimmed.json
    assert report.updated == 1
    assert by_clerk.status_code == 200, by_clerk.json
    assert problems(moved) == [("next_step", "read_only")]
    stored = read(crm, "opportunity", deal["id"])
    assert (stored["next_step"], stored["version"]) == (" Call back ", 1)


# -- automation --------------------------------------------------------------------


def test_automations_create_and_update_related_records(crm: Api) -> None:
    welcome = rule(
        "welcome",
        "opportunity",
        "automation",
        trigger="create",
        condition={"==": [{"var": "stage"}, "won"]},
        actions=[
            {
                "type": "create_record",
                "entity": "task",
                "values": {"subject": {"cat": ["Kick-off: ", {"var": "title"}]}},
            },
            {
                "type": "update_related",
                "lookup": "account",
                "values": {"tier": "gold"},
            },
        ],
        else_actions=[{"type": "set_field", "field": "touches", "value": 1}],
    )
    define(crm, welcome)
    account = create(crm, "account", name="Lighthouse", tier="standard")

    open_deal = create(crm, "opportunity", title="Wick", account=account["id"])
    won = create(crm, "opportunity", title="Lamp", account=account["id"], stage="won")

    assert (open_deal["touches"], open_deal["version"]) == (1, 2)
    assert won["touches"] is None
    tasks = crm.get("/task").json["data"]
    assert [(t["subject"], t["opportunity"]) for t in tasks] == [
        ("Kick-off: Lamp", won["id"])
    ]
    assert read(crm, "account", account["id"])["tier"] == "gold"


def test_an_update_of_a_related_record_reads_it_as_committed(
    platform: Platform, crm: Api, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time")
    tally = rule(
        "tally",
        "opportunity",
        "automation",
        trigger="update",
        actions=[{"type": "update_related", "lookup": "account",
                  "values": {"notes": {"cat": [{"var": "account.notes"}, "+"]}}}],
    )  # fmt: skip
    define(crm, tally)
    account = create(crm, "account", name="Lighthouse")
    first, second = (
        create(crm, "opportunity", title=title, account=account["id"])
        for title in ("Wick", "Lamp")
    )

    # The second save's automation runs while the first one's, which added its
    # mark to the account, is not yet committed.
    failed = saved_behind(
        platform,
        lambda records: records.update("opportunity", first["id"], {"touches": 1}),
        lambda records: records.update("opportunity", second["id"], {"touches": 1}),
    )

    assert failed == []
    assert read(crm, "account", account["id"])["notes"] == "++"


def test_an_automation_sets_a_field_that_its_save_makes_read_only(crm: Api) -> None:
    # Touches are read-only once the deal is won, and set when it is won: the
    # automation's change is part of the save that wins the deal, and is judged
    # on the record as that save found it (nothing stored on a create).
    locked = rule(
        "touches_locked",
        "opportunity",
        "field_state",
        field="touches",
        readonly_if={"==": [{"var": "stage"}, "won"]},
    )
    stamp = rule(
        "stamp_won",
        "opportunity",
        "automation",
        trigger=["create", "update"],
        condition={"and": [{"==": [{"var": "stage"}, "won"]},
                           {"is_blank": {"var": "touches"}}]},
        actions=[{"type": "set_field", "field": "touches", "value": 9}],
    )  # fmt: skip
    # A second automation on the same record, one level deeper, belongs to the
    # same save.
    note = rule(
        "note_touches",
        "opportunity",
        "automation",
        trigger="update",
        condition={"==": [{"var": "touches"}, 9]},
        actions=[{"type": "set_field", "field": "touches", "value": 10}],
    )  # fmt: skip
    define(crm, locked, stamp, note)
    open_deal = create(crm, "opportunity", title="Quay")

    created = crm.post("/opportunity", json={"title": "Pier", "stage": "won"})
    won = crm.patch(f"/opportunity/{open_deal['id']}", json={"stage": "won"})
    by_hand = crm.patch(f"/opportunity/{open_deal['id']}", json={"touches": 3})

    assert created.status_code == 201, created.json
    assert read(crm, "opportunity", created.json["id"])["touches"] == 10
    assert won.status_code == 200, won.json
    assert read(crm, "opportunity", open_deal["id"])["touches"] == 10
    # The person still may not change it once the deal is won.
    assert problems(by_hand) == [("touches", "read_only")]


#: The tier set to gold as an account's first deal is won: by the account's own
#: automation, or by the deal's through its lookup.
PROMOTIONS = {
    "set_field": rule(
        "promote", "account", "automation", trigger="update",
        condition={"and": [{"changed": "won_count"},
                           {"==": [{"var": "won_count"}, 1]}]},
        actions=[{"type": "set_field", "field": "tier", "value": "gold"}],
    ),
    "update_related": rule(
        "promote", "opportunity", "automation", trigger="update",
        condition={"and": [{"changed": "stage"}, {"==": [{"var": "stage"}, "won"]}]},
        actions=[{"type": "update_related", "lookup": "account",
                  "values": {"tier": "gold"}}],
    ),
}  # fmt: skip


@pytest.mark.parametrize("promote", PROMOTIONS.values(), ids=PROMOTIONS.keys())
def test_an_automation_sets_a_field_of_a_parent_that_the_save_makes_read_only(
    crm: Api, promote: dict[str, Any]
) -> None:
    # An account's tier is read-only once it has a won deal, and set to gold
    # when its first deal is won: winning the deal moves the account's count,
    # and the automation sets the tier in that same save, judged on the account
    # as the save found it (the account is a record the save is writing).
    locked = rule(
        "tier_locked", "account", "field_state", field="tier",
        readonly_if={">=": [{"var": "won_count"}, 1]},
    )  # fmt: skip
    define(crm, WON_COUNT, locked, promote)
    account = create(crm, "account", name="Jetty", tier="standard")
    deal = create(crm, "opportunity", title="Cleat", account=account["id"])

    won = crm.patch(f"/opportunity/{deal['id']}", json={"stage": "won"})
    by_hand = crm.patch(f"/account/{account['id']}", json={"tier": "standard"})

    assert won.status_code == 200, won.json
    stored = read(crm, "account", account["id"])
    assert (stored["won_count"], stored["tier"]) == (1, "gold")
    # The person still may not change it once the account has a won deal.
    assert problems(by_hand) == [("tier", "read_only")]


def _tasks_noted_on_the_deal(crm: Api, guard: dict[str, Any]) -> dict[str, Any]:
    """A deal whose win creates a hand-over task, which moves the deal's count of
    tasks; the deal's automation then notes the count in its next step, two
    levels down but in the save that wins the deal. ``guard`` is the rule that
    the note meets."""
    counted = rule(
        "task_count", "opportunity", "rollup", field="touches",
        relation={"entity": "task", "lookup": "opportunity"}, function="count",
    )  # fmt: skip
    hand_over = rule(
        "hand_over", "opportunity", "automation", trigger="update",
        condition={"and": [{"changed": "stage"}, {"==": [{"var": "stage"}, "won"]}]},
        actions=[{"type": "create_record", "entity": "task",
                  "values": {"subject": "Hand-over"}}],
    )  # fmt: skip
    noted = rule(
        "tasks_noted", "opportunity", "automation", trigger="update",
        condition={"changed": "touches"},
        actions=[{"type": "set_field", "field": "next_step",
                  "expression": {"cat": ["Tasks: ", {"var": "touches"}]}}],
    )  # fmt: skip
    define(crm, counted, guard, hand_over, noted)
    return create(crm, "opportunity", title="Cleat")


def test_an_automation_further_down_sets_a_field_that_the_save_makes_read_only(
    crm: Api,
) -> None:
    # The next step is read-only once the deal is won; the note is judged on the
    # deal as the save that wins it found it.
    locked = rule(
        "next_step_locked", "opportunity", "field_state", field="next_step",
        readonly_if={"==": [{"var": "stage"}, "won"]},
    )  # fmt: skip
    deal = _tasks_noted_on_the_deal(crm, locked)

    won = crm.patch(f"/opportunity/{deal['id']}", json={"stage": "won"})
    later = crm.post("/task", json={"subject": "Invoice", "opportunity": deal["id"]})

    assert won.status_code == 200, won.json
    stored = read(crm, "opportunity", deal["id"])
    assert (stored["touches"], stored["next_step"]) == (1, "Tasks: 1")
    # A task added by a later save finds the deal won.
    assert problems(later) == [("opportunity.next_step", "read_only")]


def test_a_set_field_further_down_on_the_saved_record_is_refused_as_its_own(
    crm: Api,
) -> None:
    # A validation rule refuses the note. It is the deal the caller saved: the
    # problem is the one any save of the deal gets, next to its field, and the
    # detail names the automation, as one level down.
    no_counts = rule(
        "no_counts", "opportunity", "validation", field="next_step",
        condition={"starts_with": [{"var": "next_step"}, "Tasks"]},
        message="Say what comes next, not how many tasks there are.",
    )  # fmt: skip
    deal = _tasks_noted_on_the_deal(crm, no_counts)

    refused = crm.patch(f"/opportunity/{deal['id']}", json={"stage": "won"})

    assert refused.status_code == 422
    assert [(e["field"], e["code"], e["message"]) for e in refused.json["errors"]] == [
        ("next_step", "rule", "Say what comes next, not how many tasks there are.")
    ]
    assert refused.json["detail"].startswith(
        "The automation 'tasks_noted' could not save Opportunity"
    )
    assert read(crm, "opportunity", deal["id"])["stage"] == "prospecting"
    assert crm.get("/task").json["data"] == []


#: An account's tier is read-only while it is in energy.
TIER_LOCKED_IN_ENERGY = rule(
    "tier_locked", "account", "field_state", field="tier",
    readonly_if={"==": [{"var": "industry"}, "energy"]},
)  # fmt: skip


@pytest.mark.parametrize(
    "rollup", [WON_COUNT, WON_TOTAL, None], ids=["count", "sum", "untouched"]
)
def test_a_related_update_of_an_account_locked_by_its_other_fields_is_refused(
    crm: Api, rollup: dict[str, Any] | None
) -> None:
    # The account is locked for a reason the save does not touch: judged on it
    # as the save found it, whole (a roll-up's move writes only some of its
    # fields), or as stored when the save leaves it alone, the tier stays
    # read-only.
    promote = rule(
        "promote_account", "opportunity", "automation", trigger="update",
        condition={"==": [{"var": "stage"}, "won"]},
        actions=[{"type": "update_related", "lookup": "account",
                  "values": {"tier": "gold"}}],
    )  # fmt: skip
    define(crm, *([rollup] if rollup else []), TIER_LOCKED_IN_ENERGY, promote)
    account = create(crm, "account", name="Slip", tier="standard", industry="energy")
    deal = create(crm, "opportunity", title="Warp", account=account["id"], amount="40")

    won = crm.patch(f"/opportunity/{deal['id']}", json={"stage": "won"})

    assert won.status_code == 422, won.json
    assert problems(won) == [("account.tier", "read_only")]
    assert read(crm, "account", account["id"])["tier"] == "standard"


@pytest.mark.parametrize("read_first", [False, True], ids=["added_to", "read"])
def test_a_parents_lock_holds_after_an_earlier_action_changed_what_it_reads(
    crm: Api, read_first: bool
) -> None:
    # The deal's automation first moves the account out of energy, then sets
    # its tier. Both belong to the save that moved the account's count, so the
    # tier is judged on the account as that save found it (energy): refused,
    # whether the count was added to without reading the account or read
    # first (the account has an update automation of its own).
    promote = rule(
        "promote_account", "opportunity", "automation", trigger="update",
        condition={"==": [{"var": "stage"}, "won"]},
        actions=[{"type": "update_related", "lookup": "account",
                  "values": {"industry": "retail"}},
                 {"type": "update_related", "lookup": "account",
                  "values": {"tier": "gold"}}],
    )  # fmt: skip
    idle = rule(
        "idle", "account", "automation", trigger="update",
        condition={"==": [{"var": "name"}, "Nobody"]},
        actions=[{"type": "set_field", "field": "notes", "value": "Seen"}],
    )  # fmt: skip
    define(
        crm, WON_COUNT, TIER_LOCKED_IN_ENERGY, promote, *([idle] if read_first else [])
    )
    account = create(crm, "account", name="Berth", tier="standard", industry="energy")
    deal = create(crm, "opportunity", title="Hawser", account=account["id"])

    won = crm.patch(f"/opportunity/{deal['id']}", json={"stage": "won"})

    assert won.status_code == 422, won.json
    assert problems(won) == [("account.tier", "read_only")]
    stored = read(crm, "account", account["id"])
    assert (stored["industry"], stored["tier"]) == ("energy", "standard")


def test_an_update_back_onto_the_record_saved_is_judged_as_the_save_found_it(
    crm: Api,
) -> None:
    # Winning a deal makes its amount read-only and creates a task, whose own
    # automation writes the agreed amount back onto the deal: a save of the
    # deal the caller is saving, judged on it as stored before, as its own
    # set_field would be.
    locked = rule(
        "amount_locked", "opportunity", "field_state", field="amount",
        readonly_if={"==": [{"var": "stage"}, "won"]},
    )  # fmt: skip
    hand_over = rule(
        "hand_over", "opportunity", "automation", trigger="update",
        condition={"and": [{"changed": "stage"}, {"==": [{"var": "stage"}, "won"]}]},
        actions=[{"type": "create_record", "entity": "task", "lookup": "opportunity",
                  "values": {"subject": "Hand over"}}],
    )  # fmt: skip
    agreed = rule(
        "agreed", "task", "automation", trigger="create",
        actions=[{"type": "update_related", "lookup": "opportunity",
                  "values": {"amount": 1250}}],
    )  # fmt: skip
    define(crm, locked, hand_over, agreed)
    deal = create(crm, "opportunity", title="Cleat", amount=900)

    won = crm.patch(f"/opportunity/{deal['id']}", json={"stage": "won"})
    by_hand = crm.patch(f"/opportunity/{deal['id']}", json={"amount": 10})

    assert won.status_code == 200, won.json
    assert read(crm, "opportunity", deal["id"])["amount"] == 1250
    assert problems(by_hand) == [("amount", "read_only")]


@pytest.mark.parametrize("rollup", [WON_COUNT, WON_TOTAL], ids=["count", "sum"])
def test_a_parents_field_read_only_by_its_other_fields_stays_so_for_automations(
    crm: Api, rollup: dict[str, Any]
) -> None:
    # The same automation on an account whose tier is read-only for a reason the
    # save does not touch (its industry): judged on the account as the save
    # found it, whole, the tier stays read-only, and winning the deal is
    # refused. A sum is kept by adding to the stored total, which returns only
    # some of the account's fields.
    promote = rule(
        "promote", "account", "automation", trigger="update",
        condition={"changed": rollup["field"]},
        actions=[{"type": "set_field", "field": "tier", "value": "gold"}],
    )  # fmt: skip
    define(crm, rollup, TIER_LOCKED_IN_ENERGY, promote)
    account = create(crm, "account", name="Quay", tier="standard", industry="energy")
    deal = create(
        crm, "opportunity", title="Bollard", account=account["id"], amount="40"
    )

    won = crm.patch(f"/opportunity/{deal['id']}", json={"stage": "won"})

    assert won.status_code == 422, won.json
    assert [(p["field"], p["code"]) for p in won.json["errors"]] == [
        ("account.tier", "read_only")
    ]
    stored = read(crm, "account", account["id"])
    assert stored["tier"] == "standard"
    assert read(crm, "opportunity", deal["id"])["stage"] == "prospecting"


def test_automations_that_trigger_each_other_stop_at_the_depth_limit(
    crm: Api,
) -> None:
    ping = rule(
        "ping",
        "opportunity",
        "automation",
        trigger="update",
        condition={"changed": "touches"},
        actions=[{"type": "set_field", "field": "next_step",
                  "expression": {"cat": [{"var": "next_step"}, "+"]}}],
    )  # fmt: skip
    pong = rule(
        "pong",
        "opportunity",
        "automation",
        trigger="update",
        condition={"changed": "next_step"},
        actions=[{"type": "set_field", "field": "touches",
                  "expression": {"+": [{"var": "touches"}, 1]}}],
    )  # fmt: skip
    define(crm, ping, pong)
    deal = create(crm, "opportunity", title="Echo", touches=0, next_step="go")

    response = crm.patch(f"/opportunity/{deal['id']}", json={"touches": 1})

    assert response.status_code == 422
    assert problems(response) == [(None, "automation_loop")]
    message = response.json["errors"][0]["message"]
    assert "'ping'" not in message and "ping" in message and "pong" in message
    assert "ping -> pong -> ping -> pong -> ping -> pong" in message
    assert read(crm, "opportunity", deal["id"])["touches"] == 0


def test_an_automation_that_triggers_itself_is_named_alone(crm: Api) -> None:
    echo = rule(
        "echo",
        "opportunity",
        "automation",
        trigger="update",
        condition={"changed": "touches"},
        actions=[{"type": "set_field", "field": "touches",
                  "expression": {"+": [{"var": "touches"}, 1]}}],
    )  # fmt: skip
    define(crm, echo)
    deal = create(crm, "opportunity", title="Echo", touches=0)

    response = crm.patch(f"/opportunity/{deal['id']}", json={"touches": 1})

    assert response.status_code == 422
    message = response.json["errors"][0]["message"]
    assert "echo -> echo -> echo" in message
    assert (
        "Check that the automation echo does not keep setting its own trigger "
        "fields." in message
    )
    assert read(crm, "opportunity", deal["id"])["touches"] == 0


def test_a_parents_automation_sees_what_an_earlier_action_saved_of_it(
    crm: Api,
) -> None:
    # A new deal moves its account's total, and the deal's own automation then
    # doubles its amount, which moves the total again. The account's automation
    # runs after, once, on the account as it is now: it neither writes back a
    # note of the total as it was nor adds a note for each move.
    won_total = rule(
        "won_total", "account", "rollup", field="won_total",
        relation={"entity": "opportunity", "lookup": "account"},
        function="sum", of="amount",
    )  # fmt: skip
    noted = rule(
        "noted", "account", "automation", trigger="update",
        condition={"changed": "won_total"},
        actions=[{"type": "set_field", "field": "notes", "expression": {"cat": [
            {"coalesce": [{"var": "notes"}, ""]}, "|", {"var": "$prior.won_total"},
            ">", {"var": "won_total"}]}}],
    )  # fmt: skip
    doubled = rule(
        "doubled", "opportunity", "automation", trigger="create",
        actions=[{"type": "set_field", "field": "amount",
                  "expression": {"*": [{"var": "amount"}, 2]}}],
    )  # fmt: skip
    define(crm, won_total, noted, doubled)
    account = create(crm, "account", name="Wharf")

    create(crm, "opportunity", title="Bollard", account=account["id"], amount=100)

    stored = read(crm, "account", account["id"])
    assert (stored["won_total"], stored["notes"]) == (200, "|0>200")


def test_automations_run_in_order_inside_the_transaction(
    platform: Platform, crm: Api
) -> None:
    second = creates_on_create(
        "b_second", "opportunity", "task", {"subject": "second"}, order=2
    )
    first = creates_on_create(
        "z_first", "opportunity", "task", {"subject": "first"}, order=1
    )
    failing = creates_on_create(
        "a_failing",
        "opportunity",
        "task",
        {"subject": {"var": "next_step"}},
        order=3,
        condition={"==": [{"var": "title"}, "Doomed"]},
    )
    define(crm, second, first, failing)

    create(crm, "opportunity", title="Fine")
    refused = crm.post("/opportunity", json={"title": "Doomed"})

    assert [t["subject"] for t in crm.get("/task").json["data"]] == ["first", "second"]
    assert refused.status_code == 422
    # The field is the task's, named with its entity, and the automation is named.
    assert problems(refused) == [("task.subject", "required")]
    assert "a_failing" in refused.json["errors"][0]["message"]
    assert [r["title"] for r in crm.get("/opportunity").json["data"]] == ["Fine"]


def test_a_failure_further_down_names_the_record_it_could_not_save(
    crm: Api,
) -> None:
    # The deal's automation creates a task, whose own automation then cannot
    # save it: the caller saved a deal, so the field is named with the task's
    # entity, and the message names the automation that failed.
    kick_off = creates_on_create(
        "kick_off", "opportunity", "task", {"subject": "Kick-off"}
    )
    blank_subject = rule(
        "blank_subject", "task", "automation", trigger="create",
        actions=[{"type": "set_field", "field": "subject",
                  "expression": {"var": "about"}}],
    )  # fmt: skip
    define(crm, kick_off, blank_subject)

    refused = crm.post("/opportunity", json={"title": "Anchor"})

    assert refused.status_code == 422
    assert problems(refused) == [("task.subject", "required")]
    assert "blank_subject" in refused.json["errors"][0]["message"]
    assert crm.get("/opportunity").json["data"] == []
    assert crm.get("/task").json["data"] == []


def test_a_record_the_save_writes_twice_runs_its_automations_once(crm: Api) -> None:
    # Each deal shows how many won deals its account has: a deal won moves the
    # account's roll-up, which then recomputes that very deal's formula. The
    # save writes the deal twice, but is one change of it.
    shown_wins = rule(
        "shown_wins", "opportunity", "formula", field="touches",
        expression={"var": "account.won_count"},
    )  # fmt: skip
    log = rule(
        "log", "opportunity", "automation", trigger=["create", "update"],
        actions=[{"type": "create_record", "entity": "task", "values": {"subject": {
            "cat": [{"var": "title"}, " ", {"var": "$prior.touches"}, ">",
                    {"var": "touches"}]}}}],
    )  # fmt: skip
    define(crm, WON_COUNT, shown_wins, log)
    account = create(crm, "account", name="Harbour")
    create(crm, "opportunity", title="Buoy", account=account["id"], stage="won")
    deal = create(crm, "opportunity", title="Keel", account=account["id"])

    won = crm.patch(f"/opportunity/{deal['id']}", json={"stage": "won"})

    assert won.status_code == 200, won.json
    assert won.json["touches"] == 2
    subjects = sorted(task["subject"] for task in crm.get("/task").json["data"])
    # The new deals once each, as created (a create has no $prior), the deal
    # won once, from as stored before to as the save left it, and its sibling,
    # which the save changed too.
    assert subjects == ["Buoy 1>2", "Buoy >1", "Keel 1>2", "Keel >1"]


def test_an_automation_on_a_roll_ups_parent_names_the_parent(crm: Api) -> None:
    # Winning a deal moves the account's roll-up; the account's own update
    # automation then cannot save it. The caller saved a deal: the problem is
    # named as the account's.
    renamed = rule(
        "renamed", "account", "automation", trigger="update",
        condition={"changed": "won_count"},
        actions=[{"type": "set_field", "field": "name",
                  "expression": {"var": "notes"}}],
    )  # fmt: skip
    define(crm, WON_COUNT, renamed)
    account = create(crm, "account", name="Quay")
    deal = create(crm, "opportunity", title="Mooring", account=account["id"])

    refused = crm.patch(f"/opportunity/{deal['id']}", json={"stage": "won"})

    assert refused.status_code == 422
    assert problems(refused) == [("account.name", "required")]
    assert "renamed" in refused.json["errors"][0]["message"]
    assert read(crm, "account", account["id"])["won_count"] == 0
    assert read(crm, "opportunity", deal["id"])["stage"] != "won"


def test_a_delete_triggers_automations_on_related_records(crm: Api) -> None:
    demote = rule(
        "demote",
        "opportunity",
        "automation",
        trigger="delete",
        actions=[{"type": "update_related", "lookup": "account",
                  "values": {"notes": {"cat": ["Lost deal ", {"var": "title"}]}}}],
    )  # fmt: skip
    define(crm, demote)
    account = create(crm, "account", name="Pebble")
    deal = create(crm, "opportunity", title="Sand", account=account["id"])

    crm.delete(f"/opportunity/{deal['id']}")

    assert read(crm, "account", account["id"])["notes"] == "Lost deal Sand"


@pytest.mark.parametrize(
    "note",
    [
        {"cat": ["Last deal ", {"var": "title"}]},
        # Read from the account first, which locks it before it is changed.
        {"cat": [{"var": "account.notes"}, "Last deal ", {"var": "title"}]},
    ],
    ids=["writes", "reads and writes"],
)
def test_an_automation_updates_a_parent_while_a_sibling_is_being_saved(
    platform: Platform, crm: Api, database_url: str, note: Any
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time")
    touched = rule(
        "touched", "opportunity", "automation", trigger="create",
        actions=[{"type": "update_related", "lookup": "account",
                  "values": {"notes": note}}],
    )  # fmt: skip
    define(crm, touched)
    account = create(crm, "account", name="Pebble")
    saved: list[int] = []
    sibling = platform.engine.connect()
    held = sibling.begin()
    # A sibling's save in progress holds the key-share lock its foreign key takes
    # on the account; it goes on to change the account (a roll-up, its own
    # automation) and so waits for this save. Were this save to wait for the
    # sibling's key-share lock, each would wait for the other.
    sibling.execute(
        sa.text("SELECT id FROM account WHERE id = :id FOR KEY SHARE"),
        {"id": account["id"]},
    )
    saving = threading.Thread(
        target=lambda: saved.append(
            crm.post(
                "/opportunity", json={"title": "Rock", "account": account["id"]}
            ).status_code
        )
    )

    saving.start()
    saving.join(timeout=5)
    waited = saving.is_alive()
    held.rollback()
    sibling.close()
    saving.join()

    assert not waited, "the automation waited for the sibling's save"
    assert saved == [201]
    assert read(crm, "account", account["id"])["notes"] == "Last deal Rock"


def test_a_delete_changes_no_related_record_that_is_the_deleted_one(
    crm: Api,
) -> None:
    # An account that is its own parent may be deleted (it does not hold itself
    # back); the automation that notes the delete on the parent has no parent
    # left to change, as when the lookup is empty.
    noted = rule(
        "noted", "account", "automation", trigger="delete",
        actions=[{"type": "update_related", "lookup": "parent",
                  "values": {"notes": {"cat": ["Gone: ", {"var": "name"}]}}}],
    )  # fmt: skip
    define(crm, noted)
    top = create(crm, "account", name="Harbour")
    own = create(crm, "account", name="Ring", parent=top["id"])
    crm.patch(f"/account/{own['id']}", json={"parent": own["id"]})

    response = crm.delete(f"/account/{own['id']}")

    assert response.status_code == 204, response.json
    assert [a["name"] for a in crm.get("/account").json["data"]] == ["Harbour"]
    assert read(crm, "account", top["id"])["notes"] is None


def test_an_import_fails_only_the_rows_whose_automation_fails(
    platform: Platform, crm: Api
) -> None:
    follow_up = creates_on_create(
        "follow_up", "opportunity", "task", {"subject": {"var": "next_step"}}
    )
    define(crm, follow_up)
    text = "title,next_step\nRope,Call\nChain,\nBuoy,Write\n"

    report = load_csv(platform, "opportunity", text, skip_bad_rows=True)

    assert (report.created, report.failed_rows) == (2, 1)
    assert [(e.row, e.field, e.code) for e in report.errors] == [
        (3, "task.subject", "required")
    ]
    assert "follow_up" in report.errors[0].message
    assert sorted(t["subject"] for t in crm.get("/task").json["data"]) == [
        "Call",
        "Write",
    ]


def test_an_import_runs_a_parents_automations_for_each_row_as_the_api_does(
    platform: Platform, crm: Api
) -> None:
    # Each won deal moves its account's count; the account's automation notes
    # every move. Three rows of a file are three creates, as three POSTs are.
    noted = rule(
        "count_noted", "account", "automation", trigger="update",
        condition={"changed": "won_count"},
        actions=[{"type": "set_field", "field": "notes",
                  "expression": {"cat": [{"var": "notes"}, "|", {"prior": "won_count"},
                                         ">", {"var": "won_count"}]}}],
    )  # fmt: skip
    define(crm, WON_COUNT, noted)
    quay = create(crm, "account", name="Quay", notes="")
    mill = create(crm, "account", name="Mill", notes="")

    for title in ("Dock", "Wharf", "Slip"):
        create(crm, "opportunity", title=title, account=quay["id"], stage="won")
    text = "title,account,stage\nKeel,Mill,won\nHull,Mill,won\nMast,Mill,won\n"
    report = load_csv(platform, "opportunity", text)

    assert report.created == 3
    assert read(crm, "account", quay["id"])["notes"] == "|0>1|1>2|2>3"
    assert read(crm, "account", mill["id"])["notes"] == "|0>1|1>2|2>3"


def test_an_import_row_refused_for_what_an_automation_set_names_it(
    platform: Platform, crm: Api
) -> None:
    # The file has no stage column: the rows are refused because the automation
    # set the stage, and the report says so (the API's detail and the form do).
    dropped = rule(
        "dropped", "opportunity", "automation", trigger=["create", "update"],
        condition={"==": [{"var": "next_step"}, "drop"]},
        actions=[{"type": "set_field", "field": "stage", "value": "lost"}],
    )  # fmt: skip
    define(crm, LOSS_REASON_REQUIRED, dropped)
    text = "erp_code,title,next_step\nE1,Keel,call\nE2,Hull,drop\n"

    created = load_csv(platform, "opportunity", text, skip_bad_rows=True)
    updated = load_csv(
        platform,
        "opportunity",
        "erp_code,next_step\nE1,drop\n",
        key="erp_code",
        skip_bad_rows=True,
    )
    refused = crm.post("/opportunity", json={"title": "Mast", "next_step": "drop"})

    for report, row in ((created, 3), (updated, 2)):
        [error] = report.errors
        assert (error.row, error.field, error.code) == (row, "loss_reason", "rule")
        assert "'dropped'" in error.message
        assert "Say why the opportunity was lost." in error.message
    assert [o["next_step"] for o in crm.get("/opportunity").json["data"]] == ["call"]
    # The API keeps the record's own problem, and names the automation above it.
    assert problems(refused) == [("loss_reason", "rule")]
    assert "'dropped'" in refused.json["detail"]


def _blank_child_on_new_parent() -> dict[str, Any]:
    """An automation that blanks the name of the account "Child" when its parent
    is set, so that the save setting the parent is refused."""
    return rule(
        "parent_blank", "account", "automation", trigger=["update"],
        condition={"and": [{"changed": "parent"},
                           {"==": [{"var": "name"}, "Child"]}]},
        actions=[{"type": "set_field", "field": "name",
                  "expression": {"var": "notes"}}],
    )  # fmt: skip


def test_an_import_undoes_a_row_whose_reference_to_another_row_is_refused(
    platform: Platform, crm: Api
) -> None:
    # "Child" refers to "Top", a later row of the same file: the reference is set
    # once every row exists, and an automation then refuses it. "Grandchild"
    # refers to "Child" and fails with it; neither is left half imported.
    parent_blank = _blank_child_on_new_parent()
    define(crm, parent_blank)
    text = "name,parent\nChild,Top\nTop,\nOther,Top\nGrandchild,Child\n"

    report = load_csv(platform, "account", text, skip_bad_rows=True)

    assert (report.created, report.failed_rows) == (2, 2)
    assert [(e.row, e.field, e.code) for e in report.errors] == [
        (2, "name", "required"),
        (5, "parent", "not_imported"),
    ]
    stored = {a["name"]: a["parent"] for a in crm.get("/account").json["data"]}
    assert set(stored) == {"Top", "Other"}
    assert stored["Other"] is not None


#: The Account with a code to import by (``--key code``).
CODED_ACCOUNT = {
    **ACCOUNT,
    "fields": [
        *ACCOUNT["fields"],
        {"name": "code", "type": "text", "label": "Code", "external_id": True},
    ],
}
#: A gold account has a parent.
PARENT_REQUIRED = rule(
    "parent_required", "account", "field_state", field="parent",
    required_if={"==": [{"var": "tier"}, "gold"]},
)  # fmt: skip


def test_an_import_saves_a_row_with_the_earlier_row_it_refers_to(
    platform: Platform, crm: Api
) -> None:
    # Rules judge each new account with the parent its row names, also when
    # that parent is a row above it in the same file.
    parent_required = rule(
        "parent_required", "account", "field_state", field="parent",
        required_if={"==": [{"var": "tier"}, "gold"]},
        readonly_if={"==": [{"var": "tier"}, "gold"]},
    )  # fmt: skip
    retail_parent = rule(
        "retail_parent", "account", "validation", field="parent",
        condition={"and": [{"==": [{"var": "tier"}, "standard"]},
                           {"!=": [{"var": "parent.industry"}, "retail"]}]},
        message="A standard account needs a retail parent.",
    )  # fmt: skip
    define(crm, parent_required, retail_parent)
    text = (
        "name,tier,industry,parent\nTop,,retail,\nGold,gold,,Top\nPlain,standard,,Top\n"
    )

    report = load_csv(platform, "account", text)

    assert (report.created, report.failed_rows) == (3, 0)
    stored = {a["name"]: a["parent"] for a in crm.get("/account").json["data"]}
    assert (
        stored["Gold"]
        == stored["Plain"]
        == crm.get("/account?name=Top").json["data"][0]["id"]
    )


def test_a_bad_row_is_not_told_to_give_the_reference_to_a_row_it_gives(
    platform: Platform, crm: Api
) -> None:
    # "Gold" names the earlier "Top" as its parent, and its count is not a
    # number: that is its one problem, not a parent that it does give.
    define(crm, PARENT_REQUIRED)
    text = "name,tier,parent,won_count\nTop,,,\nGold,gold,Top,many\n"

    with pytest.raises(ImportFailed) as excinfo:
        load_csv(platform, "account", text)

    errors = excinfo.value.report.errors
    assert [(e.row, e.field, e.code) for e in errors] == [
        (3, "won_count", "invalid_integer")
    ]


def test_a_bad_update_is_not_judged_on_the_reference_it_replaces(
    platform: Platform, crm: Api
) -> None:
    # The row moves "Plain" to the retail "Shop", a row of the file; its stored
    # parent is not retail, but the row does not keep it.
    retail_parent = rule(
        "retail_parent", "account", "validation", field="parent",
        condition={"and": [{"==": [{"var": "tier"}, "standard"]},
                           {"!=": [{"var": "parent.industry"}, "retail"]}]},
        message="A standard account needs a retail parent.",
    )  # fmt: skip
    define(crm, CODED_ACCOUNT, retail_parent)
    load_csv(platform, "account", "code,name,industry\nM1,Mine,energy\n")
    load_csv(platform, "account", "code,name,parent\nP1,Plain,M1\n")
    text = (
        "code,name,industry,tier,parent,won_count\n"
        "S1,Shop,retail,,,\nP1,,,standard,S1,many\n"
    )

    with pytest.raises(ImportFailed) as excinfo:
        load_csv(platform, "account", text, key="code")

    errors = excinfo.value.report.errors
    assert [(e.row, e.field, e.code) for e in errors] == [
        (3, "won_count", "invalid_integer")
    ]


def test_an_import_updates_a_row_with_the_stored_record_it_refers_to(
    platform: Platform, crm: Api
) -> None:
    # As a PATCH giving both would be, the update that makes "Gold" gold is
    # judged with the parent its row names, a stored account.
    define(crm, CODED_ACCOUNT, PARENT_REQUIRED)
    load_csv(platform, "account", "code,name\nT1,Top\nG1,Gold\n")
    text = "code,tier,parent\nG1,gold,Top\n"

    report = load_csv(platform, "account", text, key="code")

    assert (report.updated, report.failed_rows) == (1, 0)
    stored = {a["name"]: a for a in crm.get("/account").json["data"]}
    assert (stored["Gold"]["tier"], stored["Gold"]["parent"]) == (
        "gold",
        stored["Top"]["id"],
    )


def test_an_import_updates_a_row_with_the_earlier_new_row_it_refers_to(
    platform: Platform, crm: Api
) -> None:
    # As a POST of "Top" and then a PATCH of "Gold" giving its tier and parent
    # would be, the update is judged with the new row above it as its parent.
    define(crm, CODED_ACCOUNT, PARENT_REQUIRED)
    load_csv(platform, "account", "code,name\nG1,Gold\n")
    text = "code,name,tier,parent\nT1,Top,standard,\nG1,Gold,gold,T1\n"
    # A bad row between them changes nothing of it.
    between = (
        "code,name,tier,parent,won_count\n"
        "T2,Tip,standard,,\nB1,Bad,,,many\nG1,Gold,gold,T2,\n"
    )

    report = load_csv(platform, "account", text, key="code", dry_run=True)
    skipping = load_csv(platform, "account", between, key="code", skip_bad_rows=True)

    assert (report.created, report.updated, report.failed_rows) == (1, 1, 0)
    assert (skipping.created, skipping.updated, skipping.failed_rows) == (1, 1, 1)
    stored = {a["name"]: a for a in crm.get("/account").json["data"]}
    assert (stored["Gold"]["tier"], stored["Gold"]["parent"]) == (
        "gold",
        stored["Tip"]["id"],
    )


PARENT_LOCKED_FOR_GOLD = rule(
    "parent_locked", "account", "field_state", field="parent",
    readonly_if={"==": [{"var": "tier"}, "gold"]},
)  # fmt: skip


def test_a_new_row_naming_a_later_row_is_not_locked_by_its_own_values(
    platform: Platform, crm: Api
) -> None:
    # Nothing is read-only on a create: a gold account is created with its
    # parent by the API, and so by an import whose row names a later row as
    # the parent, which is set once every row is saved.
    define(crm, PARENT_LOCKED_FOR_GOLD)
    text = "name,tier,parent\nGold,gold,Top\nTop,standard,\n"

    report = load_csv(platform, "account", text)

    assert (report.created, report.failed_rows) == (2, 0), report.errors
    stored = {a["name"]: a for a in crm.get("/account").json["data"]}
    assert stored["Gold"]["parent"] == stored["Top"]["id"]


def test_an_updated_row_naming_a_later_row_is_judged_as_stored_before_it(
    platform: Platform, crm: Api
) -> None:
    # A PATCH that makes an account gold and gives its parent is judged on the
    # account as stored, where the parent is not locked yet; so is a row that
    # does the same naming a later row, whose parent is set afterwards.
    define(crm, CODED_ACCOUNT, PARENT_LOCKED_FOR_GOLD)
    load_csv(platform, "account", "code,name\nG1,Gold\nS1,Still\n")
    text = "code,name,tier,parent\nG1,Gold,gold,T1\nT1,Top,standard,\n"

    report = load_csv(platform, "account", text, key="code")
    # Once gold, the parent stays locked for the changes that follow.
    moved = load_csv(
        platform, "account", "code,parent\nG1,S1\n", key="code", skip_bad_rows=True
    )

    assert (report.created, report.updated, report.failed_rows) == (1, 1, 0)
    stored = {a["name"]: a for a in crm.get("/account").json["data"]}
    assert (stored["Gold"]["tier"], stored["Gold"]["parent"]) == (
        "gold",
        stored["Top"]["id"],
    )
    assert [(e.field, e.code) for e in moved.errors] == [("parent", "read_only")]


def test_an_upsert_saves_its_rows_in_the_order_of_the_file(
    platform: Platform, crm: Api
) -> None:
    # Saved one by one, the new "Crane" takes Mill's only place for a won
    # deal and the update of "Barge" below it is refused; so in an import.
    define(crm, WON_COUNT, ONE_WON_AT_MOST)
    mill = create(crm, "account", name="Mill")
    create(crm, "opportunity", title="Barge", account=mill["id"], erp_code="E-1")
    text = "erp_code,title,account,stage\nE-2,Crane,Mill,won\nE-1,Barge,Mill,won\n"

    report = load_csv(platform, "opportunity", text, key="erp_code", skip_bad_rows=True)

    assert [(e.row, e.field, e.code) for e in report.errors] == [(3, "account", "rule")]
    deals = crm.get("/opportunity?sort=title").json["data"]
    assert [(d["title"], d["stage"]) for d in deals] == [
        ("Barge", "prospecting"),
        ("Crane", "won"),
    ]


def test_a_skipped_row_referred_to_by_a_later_row_is_deleted_after_it(
    platform: Platform, crm: Api
) -> None:
    # "Child" fails once its reference to the later "Top" is set; "Grandchild"
    # was created pointing at it through a restricting lookup, and goes first.
    restricting = {
        **ACCOUNT,
        "fields": [
            {**spec, "on_delete": "restrict"} if spec["name"] == "parent" else spec
            for spec in ACCOUNT["fields"]
        ],
    }
    parent_blank = _blank_child_on_new_parent()
    define(crm, restricting, parent_blank)
    text = "name,parent\nChild,Top\nTop,\nGrandchild,Child\n"

    report = load_csv(platform, "account", text, skip_bad_rows=True)

    assert (report.created, report.failed_rows) == (1, 2)
    assert [a["name"] for a in crm.get("/account").json["data"]] == ["Top"]


def test_a_skipped_row_keeps_nothing_its_automations_saved(
    platform: Platform, crm: Api
) -> None:
    # "Kid" is created, and its automation creates an opportunity that refers
    # to it, before its reference to an unknown account fails the row.
    opening_deal = creates_on_create(
        "opening_deal", "account", "opportunity", {"title": {"var": "name"}}
    )
    define(crm, opening_deal)
    text = "name,parent\nTop,\nKid,Nowhere\n"

    report = load_csv(platform, "account", text, skip_bad_rows=True)

    assert (report.created, report.failed_rows) == (1, 1)
    assert [(e.row, e.field, e.code) for e in report.errors] == [
        (3, "parent", "not_found")
    ]
    assert [a["name"] for a in crm.get("/account").json["data"]] == ["Top"]
    assert [o["title"] for o in crm.get("/opportunity").json["data"]] == ["Top"]


def test_a_skipped_update_whose_reference_fails_changes_nothing(
    platform: Platform, crm: Api
) -> None:
    define(crm, CODED_ACCOUNT)
    load_csv(platform, "account", "code,name,notes\nA1,Alpha,first\n")
    text = "code,name,notes,parent\nA1,Alpha,changed,Nowhere\n"

    report = load_csv(platform, "account", text, key="code", skip_bad_rows=True)

    assert (report.created, report.updated, report.failed_rows) == (0, 0, 1)
    assert [(e.row, e.field, e.code) for e in report.errors] == [
        (2, "parent", "not_found")
    ]
    stored = crm.get("/account").json["data"]
    assert [(a["notes"], a["version"]) for a in stored] == [("first", 1)]


def test_rows_naming_a_skipped_update_by_its_new_name_are_left_out_with_it(
    platform: Platform, crm: Api
) -> None:
    # "Alpha" is renamed "Alpha Two" and fails; a row naming it by the new name
    # fails with it at once (not one import again per link of the chain); a row
    # naming it by its code keeps it.
    define(crm, CODED_ACCOUNT)
    load_csv(platform, "account", "code,name\nA1,Alpha\nB1,Beta\nC1,Gamma\n")
    text = (
        "code,name,parent\n"
        "B1,Beta Two,Alpha Two\n"
        "A1,Alpha Two,Nowhere\n"
        "C1,Gamma,Beta Two\n"
        "D1,Delta,A1\n"
    )

    report = load_csv(platform, "account", text, key="code", skip_bad_rows=True)

    assert [(e.row, e.field, e.code) for e in report.errors] == [
        (2, "parent", "not_imported"),
        (3, "parent", "not_found"),
        (4, "parent", "not_imported"),
    ]
    assert (report.created, report.updated, report.failed_rows) == (1, 0, 3)
    stored = {a["name"]: a["parent"] for a in crm.get("/account").json["data"]}
    alpha = crm.get("/account?name=Alpha").json["data"][0]["id"]
    assert stored == {
        "Alpha": None,
        "Beta": None,
        "Gamma": None,
        "Delta": alpha,
    }


# -- bypassing automation ------------------------------------------------------------

TOUCH = rule(
    "touch",
    "opportunity",
    "automation",
    trigger=["create", "update"],
    actions=[{"type": "create_record", "entity": "task", "values": {"subject": "x"}}],
)


def test_admins_may_bypass_automation_and_nobody_else(
    app: Flask, platform: Platform, crm: Api
) -> None:
    define(crm, TOUCH, LOSS_REASON_REQUIRED)
    with platform.engine.begin() as connection:
        seller = create_user(connection, "seller", "seller-password")
        seller_api = Api(app.test_client(), create_token(connection, seller))
    grant_all(platform, "seller")

    bypassed = crm.post("/opportunity?bypass_automation=true", json={"title": "Oar"})
    still_checked = crm.post(
        "/opportunity?bypass_automation=true", json={"title": "Oar", "stage": "lost"}
    )
    refused = seller_api.post("/opportunity?bypass_automation=1", json={"title": "Oar"})
    patched = seller_api.patch(
        f"/opportunity/{bypassed.json['id']}?bypass_automation=1", json={"title": "x"}
    )
    deleted = seller_api.delete(
        f"/opportunity/{bypassed.json['id']}?bypass_automation=1"
    )
    normal = seller_api.post("/opportunity", json={"title": "Sail"})

    assert bypassed.status_code == 201
    assert problems(still_checked) == [("loss_reason", "rule")]
    assert (refused.status_code, patched.status_code, deleted.status_code) == (
        403,
        403,
        403,
    )
    assert normal.status_code == 201
    assert len(crm.get("/task").json["data"]) == 1


def test_an_import_may_bypass_automation_for_admins_only(
    platform: Platform, crm: Api
) -> None:
    define(crm, TOUCH)
    with platform.engine.begin() as connection:
        create_user(connection, "loader", "loader-password")
        loader = find_user(connection, "loader").actor()

    report = load_csv(
        platform, "opportunity", "title\nKeel\nRudder\n", bypass_automation=True
    )
    with pytest.raises(Forbidden):
        load_csv(
            platform,
            "opportunity",
            "title\nMast\n",
            actor=loader,
            bypass_automation=True,
        )

    assert report.created == 2
    assert crm.get("/task").json["data"] == []


def test_the_import_command_bypasses_automation_for_admins_only(
    platform: Platform, crm: Api, database_url: str, tmp_path: Path
) -> None:
    define(crm, TOUCH)
    with platform.engine.begin() as connection:
        create_user(connection, "loader", "loader-password")
    file = tmp_path / "deals.csv"
    file.write_text("title\nKeel\n")
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})

    admin = runner.invoke(
        main, ["import", "opportunity", str(file), "--bypass-automation"]
    )
    loader = runner.invoke(
        main,
        ["import", "opportunity", str(file), "--bypass-automation", "--user", "loader"],
    )

    assert admin.exit_code == 0, admin.output
    assert "1 row read, 1 created" in admin.output
    assert loader.exit_code == 1
    assert "Only administrators may bypass automation." in loader.output
    assert crm.get("/task").json["data"] == []


def test_the_import_command_lets_an_administrator_by_role_bypass_automation(
    app: Flask, platform: Platform, crm: Api, database_url: str, tmp_path: Path
) -> None:
    # A role with "admin": true makes its holders administrators: the API lets
    # them save without automations, and so does the command line.
    define(crm, TOUCH)
    operator = {"kind": "role", "name": "operator", "label": "Operator", "admin": True}
    platform.store.apply([("", operator)], actor="test")
    with platform.transaction() as (connection, catalog):
        loader = create_user(connection, "loader", "loader-password")
        set_user_roles(connection, catalog, "loader", ["operator"])
        loader_api = Api(app.test_client(), create_token(connection, loader))
    file = tmp_path / "deals.csv"
    file.write_text("title\nKeel\n")
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})

    through_api = loader_api.post(
        "/opportunity?bypass_automation=1", json={"title": "Oar"}
    )
    imported = runner.invoke(
        main,
        ["import", "opportunity", str(file), "--bypass-automation", "--user", "loader"],
    )

    assert through_api.status_code == 201, through_api.json
    assert imported.exit_code == 0, imported.output
    assert "1 row read, 1 created" in imported.output
    assert crm.get("/task").json["data"] == []


def test_the_record_service_refuses_bypass_for_non_admins(platform: Platform) -> None:
    with platform.transaction() as (connection, catalog):
        seller = create_user(connection, "seller", "seller-password").actor()

        with pytest.raises(Forbidden):
            RecordService(connection, catalog, seller, bypass_automation=True)
        assert RecordService(connection, catalog, SYSTEM_ACTOR, bypass_automation=True)


def test_rollups_recomputed_by_the_database_match_a_fresh_sum(
    platform: Platform, crm: Api
) -> None:
    define(crm, WON_TOTAL)
    account = create(crm, "account", name="Tally")
    amounts = ["0.10", "0.20", "0.70", "1234567.89", "0.01"]
    for index, amount in enumerate(amounts):
        create(crm, "opportunity", title=f"T{index}", account=account["id"],
               stage="won", amount=Decimal(amount))  # fmt: skip

    with platform.reading() as (connection, catalog):
        table = catalog.entity("account").table
        stored = connection.execute(
            sa.select(table.c.won_total).where(table.c.id == account["id"])
        ).scalar()

    assert stored == sum(Decimal(amount) for amount in amounts)


def test_concurrent_saves_add_up_in_a_rollup(
    crm: Api, database_url: str, admin_token: str
) -> None:
    define(crm, WON_TOTAL, WON_COUNT)
    account = create(crm, "account", name="Busy Quay")
    apps = [create_app({"database_url": database_url}) for _ in range(4)]
    statuses: list[int] = []

    def sell(app: Flask, worker: int) -> None:
        client = Api(app.test_client(), admin_token)
        for number in range(5):
            response = client.post(
                "/opportunity",
                json={"title": f"W{worker}-{number}", "account": account["id"],
                      "stage": "won", "amount": worker + 1},
            )  # fmt: skip
            statuses.append(response.status_code)

    threads = [threading.Thread(target=sell, args=(a, i)) for i, a in enumerate(apps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [201] * 20
    stored = read(crm, "account", account["id"])
    assert (stored["won_total"], stored["won_count"]) == (5 * (1 + 2 + 3 + 4), 20)
    for app in apps:
        app.extensions["tailorcrm"].engine.dispose()


def test_an_automation_that_cannot_save_another_record_of_the_entity_names_it(
    crm: Api,
) -> None:
    define(
        crm,
        rule(
            "no_bad_notes",
            "account",
            "validation",
            condition={"==": [{"var": "notes"}, "bad"]},
            message="Notes cannot be bad.",
            field="notes",
        ),
        rule(
            "mark_parent",
            "account",
            "automation",
            trigger="update",
            actions=[
                {
                    "type": "update_related",
                    "lookup": "parent",
                    "values": {"notes": "bad"},
                }
            ],
        ),
    )
    parent = create(crm, "account", name="Harrow Holdings")
    child = create(crm, "account", name="Harrow North", parent=parent["id"])

    refused = crm.patch(f"/account/{child['id']}", json={"name": "Harrow South"})

    assert refused.status_code == 422
    assert problems(refused) == [("account.notes", "rule")]
    assert "mark_parent" in refused.json["errors"][0]["message"]
