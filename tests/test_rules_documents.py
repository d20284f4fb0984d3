"""Rule documents: stored, versioned and checked like every metadata document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.auth import create_token, create_user
from tailorcrm.platform.cli import main
from tailorcrm.platform.db import meta_documents
from tests.conftest import Api
from tests.rules_support import (
    ACCOUNT,
    LOSS_REASON_REQUIRED,
    OPPORTUNITY,
    OPPORTUNITY_INDUSTRY,
    TASK,
    WON_TOTAL,
    create,
    define,
    problems,
    rule,
)


@pytest.fixture
def sales(api: Api) -> Api:
    define(api, ACCOUNT, OPPORTUNITY, TASK)
    return api


def test_a_rule_is_created_read_listed_and_deleted(sales: Api) -> None:
    created = sales.put("/meta/rules/loss_reason_required", json=LOSS_REASON_REQUIRED)
    again = sales.put("/meta/rules/loss_reason_required", json=LOSS_REASON_REQUIRED)
    read = sales.get("/meta/rules/loss_reason_required")
    listed = sales.get("/meta/rules?entity=opportunity")
    none = sales.get("/meta/rules?entity=account")
    deleted = sales.delete("/meta/rules/loss_reason_required")
    gone = sales.get("/meta/rules/loss_reason_required")

    assert created.status_code == 201, created.json
    assert created.json["steps"] == ["add_rule opportunity.loss_reason_required"]
    assert again.status_code == 200
    assert again.json["applied"] is False
    assert read.json == LOSS_REASON_REQUIRED
    assert read.headers["ETag"] == f'"{created.json["revision"]}"'
    assert listed.json["data"] == [LOSS_REASON_REQUIRED]
    assert none.json["data"] == []
    assert deleted.status_code == 200
    assert deleted.json["steps"] == ["remove_rule opportunity.loss_reason_required"]
    assert gone.status_code == 404


def test_a_rule_has_a_history_with_revisions(sales: Api) -> None:
    changed = {**LOSS_REASON_REQUIRED, "message": "Tell us why."}
    define(sales, LOSS_REASON_REQUIRED, changed)
    sales.delete("/meta/rules/loss_reason_required")

    history = sales.get("/meta/rules/loss_reason_required/history").json["data"]

    assert [entry["after"] for entry in history] == [
        None,
        {"document": changed},
        {"document": LOSS_REASON_REQUIRED},
    ]
    assert history[0]["before"] == {"document": changed}
    revisions = [entry["revision"] for entry in history]
    assert revisions == sorted(revisions, reverse=True)


def test_a_stale_if_match_is_refused(sales: Api) -> None:
    define(sales, LOSS_REASON_REQUIRED)
    etag = sales.get("/meta/rules/loss_reason_required").headers["ETag"]
    define(sales, {**LOSS_REASON_REQUIRED, "message": "Changed meanwhile."})

    stale = sales.put(
        "/meta/rules/loss_reason_required",
        json={**LOSS_REASON_REQUIRED, "order": 5},
        headers={"If-Match": etag},
    )
    stale_delete = sales.delete(
        "/meta/rules/loss_reason_required", headers={"If-Match": etag}
    )

    assert stale.status_code == 412
    assert stale_delete.status_code == 412


def test_a_rule_sent_to_the_entity_or_layout_endpoint_is_refused(
    sales: Api,
) -> None:
    as_entity = sales.put(
        "/meta/entities/loss_reason_required", json=LOSS_REASON_REQUIRED
    )
    as_layout = sales.put(
        "/meta/layouts/opportunity",
        json={**LOSS_REASON_REQUIRED, "name": "loss_reason_layout"},
    )
    role = {"kind": "role", "name": "clerk", "label": "Clerk", "entities": {}}
    role_as_entity = sales.put("/meta/entities/clerk", json=role)

    assert [as_entity.status_code, as_layout.status_code] == [400, 400]
    assert role_as_entity.status_code == 400
    assert sales.get("/meta/rules").json["data"] == []
    assert sales.get("/meta/roles/clerk").status_code == 404


def test_only_admins_change_rules(app: Flask, platform: Platform, sales: Api) -> None:
    with platform.engine.begin() as connection:
        seller = create_user(connection, "seller", "seller-password")
        token = create_token(connection, seller)
    client = Api(app.test_client(), token)

    refused = client.put("/meta/rules/loss_reason_required", json=LOSS_REASON_REQUIRED)
    schema = client.get("/meta/schemas/rule")

    assert refused.status_code == 403
    assert schema.status_code == 200
    assert schema.json["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema.json["additionalProperties"] is False


def test_a_dry_run_checks_and_saves_nothing(sales: Api) -> None:
    response = sales.put(
        "/meta/rules/loss_reason_required?dry_run=1", json=LOSS_REASON_REQUIRED
    )

    assert response.status_code == 200
    assert response.json["applied"] is False
    assert sales.get("/meta/rules/loss_reason_required").status_code == 404


def test_true_in_place_of_1_is_a_change_of_a_rule_a_layout_and_a_role(
    sales: Api,
) -> None:
    done_is_1 = {"===": [{"var": "done"}, 1]}
    done_is_true = {"===": [{"var": "done"}, True]}
    no_done_task = rule("no_done_task", "task", "validation", message="Not yet.")
    section = {"label": "Done", "items": [{"field": "about"}]}
    layout = {"form": {"tabs": [{"label": "Main", "sections": [section]}]}}
    sharing = {"name": "done_tasks", "entity": "task", "access": "read"}
    role = {"kind": "role", "name": "clerk", "label": "Clerk", "entities": {}}
    define(sales, {**no_done_task, "condition": done_is_1})
    section["visible_if"] = done_is_1
    assert sales.put("/meta/layouts/task", json=layout).status_code == 201
    sharing["condition"] = done_is_1
    role["sharing"] = [sharing]
    assert sales.put("/meta/roles/clerk", json=role).status_code == 201

    changed_rule = sales.put(
        "/meta/rules/no_done_task", json={**no_done_task, "condition": done_is_true}
    )
    section["visible_if"] = done_is_true
    changed_layout = sales.put("/meta/layouts/task", json=layout)
    sharing["condition"] = done_is_true
    changed_role = sales.put("/meta/roles/clerk", json=role)
    done_task = sales.post("/task", json={"subject": "Call back", "done": True})

    for changed in (changed_rule, changed_layout, changed_role):
        assert changed.status_code == 200, changed.json
        assert changed.json["applied"] is True
    assert sales.get("/meta/rules/no_done_task").json["condition"]["==="][1] is True
    stored_layout = sales.get("/meta/layouts/task").json
    assert (
        stored_layout["form"]["tabs"][0]["sections"][0]["visible_if"]["==="][1] is True
    )
    stored_role = sales.get("/meta/roles/clerk").json
    assert stored_role["sharing"][0]["condition"]["==="][1] is True
    assert done_task.status_code == 422
    assert problems(done_task) == [(None, "rule")]


def test_a_refused_list_or_name_is_named_not_repeated_back(sales: Api) -> None:
    action = {"type": "set_field", "field": "next_step", "value": "Call the buyer"}
    many = {
        "kind": "rule",
        "name": "many_steps",
        "entity": "opportunity",
        "type": "automation",
        "label": "Many steps",
        "trigger": "create",
        "actions": [action] * 5000,
    }
    long_name = {**LOSS_REASON_REQUIRED, "name": "n" * 5000}

    too_many = sales.put("/meta/rules/many_steps?dry_run=1", json=many)
    too_long = sales.put(f"/meta/rules/{'n' * 5000}?dry_run=1", json=long_name)

    assert too_many.status_code == 422
    [problem] = too_many.json["errors"]
    assert (problem["field"], problem["code"]) == ("many_steps.actions", "schema")
    assert problem["message"].endswith("… is too long")
    assert len(too_many.get_data()) < 2000
    assert too_long.status_code == 422
    # The name is the start of each problem's path; no message repeats it.
    body = too_long.get_data(as_text=True)
    assert body.count("n" * 5000) == len(too_long.json["errors"])
    assert any(p["message"].endswith("… is too long") for p in too_long.json["errors"])


@pytest.mark.parametrize(
    ("trigger", "field", "message"),
    [
        (
            "save",
            "ping.trigger",
            "'save' is not one of ['create', 'update', 'delete']",
        ),
        (
            ["create", "edit"],
            "ping.trigger[1]",
            "'edit' is not one of ['create', 'update', 'delete']",
        ),
        ([], "ping.trigger", "[] should be non-empty"),
    ],
)
def test_a_bad_trigger_is_named_with_the_triggers_there_are(
    sales: Api, trigger: Any, field: str, message: str
) -> None:
    """A trigger that was neither a known one nor a list of them was only 'not
    valid under any of the given schemas', which named no trigger."""
    action = {"type": "set_field", "field": "next_step", "value": "Call the buyer"}
    document = rule("ping", "opportunity", "automation", trigger=trigger)
    document["actions"] = [action]

    refused = sales.put("/meta/rules/ping?dry_run=1", json=document)

    assert refused.status_code == 422
    assert refused.json["errors"] == [
        {"field": field, "code": "schema", "message": message}
    ]


def test_an_update_of_the_related_record_that_sets_nothing_is_refused(
    sales: Api,
) -> None:
    # It was accepted, and did nothing on every save.
    action = {"type": "update_related", "lookup": "account", "values": {}}
    document = rule("touch_account", "opportunity", "automation", trigger="update")
    document["actions"] = [action]

    refused = sales.put("/meta/rules/touch_account", json=document)

    assert refused.status_code == 422
    assert refused.json["errors"] == [
        {
            "field": "touch_account.actions[0].values",
            "code": "schema",
            "message": "{} should be non-empty",
        }
    ]
    assert sales.get("/meta/rules/touch_account").status_code == 404


def test_a_dry_run_delete_answers_the_plan_and_deletes_nothing(sales: Api) -> None:
    role = {"kind": "role", "name": "clerk", "label": "Clerk", "entities": {}}
    layout = {"kind": "layout", "entity": "task", "list": {"page_size": 10}}
    define(sales, LOSS_REASON_REQUIRED)
    assert sales.put("/meta/roles/clerk", json=role).status_code == 201
    assert sales.put("/meta/layouts/task", json=layout).status_code == 201
    revision = sales.get("/meta/rules").json["revision"]

    rule = sales.delete("/meta/rules/loss_reason_required?dry_run=1")
    role_plan = sales.delete("/meta/roles/clerk?dry_run=1")
    layout_plan = sales.delete("/meta/layouts/task?dry_run=1")
    entity_plan = sales.delete("/meta/entities/task?dry_run=1")

    assert rule.json["steps"] == ["remove_rule opportunity.loss_reason_required"]
    assert role_plan.json["steps"] == ["remove_role clerk"]
    assert layout_plan.json["steps"] == ["remove_layout task"]
    assert entity_plan.json["steps"][:2] == ["hide_entity task", "remove_layout task"]
    for plan in (rule, role_plan, layout_plan, entity_plan):
        assert plan.status_code == 200, plan.json
        assert (plan.json["applied"], plan.json["revision"]) == (False, revision)
    assert sales.get("/meta/rules").json["revision"] == revision
    assert sales.get("/meta/rules/loss_reason_required").status_code == 200
    assert sales.get("/meta/roles/clerk").status_code == 200
    assert sales.get("/meta/entities/task").status_code == 200
    kept = sales.get("/meta/layouts/task")
    assert kept.headers["X-Tailorcrm-Layout-Generated"] == "false"
    assert sales.delete("/meta/entities/task?dry_run=on").status_code == 400
    assert sales.get("/meta/entities/task").status_code == 200


def test_broken_text_in_a_document_is_named_by_its_path(sales: Api) -> None:
    # "\ud800" is half of a UTF-16 pair: JSON can escape it, UTF-8 cannot hold it.
    broken_rule = {
        **LOSS_REASON_REQUIRED,
        "label": "Lost\ud800",
        "condition": {"==": [{"var": "stage"}, "lo\udc00st"]},
    }
    broken_entity = {
        **TASK,
        "fields": [*TASK["fields"], {"name": "memo", "type": "text", "label": "M"}],
    }
    broken_entity["fields"][-1]["help_text"] = "Say\ud800 it"
    broken_role = {
        "kind": "role",
        "name": "clerk",
        "label": "Clerk",
        "entities": {"task": {"read": "all", "fields": {"subject\ud800": "hidden"}}},
    }
    revision = sales.get("/meta/rules").json["revision"]

    rule = sales.put("/meta/rules/loss_reason_required", json=broken_rule)
    entity = sales.put("/meta/entities/task", json=broken_entity)
    role = sales.put("/meta/roles/clerk", json=broken_role)

    assert rule.status_code == 422
    assert problems(rule) == [
        ("loss_reason_required.condition.==[1]", "invalid_text"),
        ("loss_reason_required.label", "invalid_text"),
    ]
    assert entity.status_code == 422
    assert (f"fields[{len(TASK['fields'])}].help_text", "invalid_text") in problems(
        entity
    )
    assert role.status_code == 422
    assert ("clerk.entities.task.fields.subject\\ud800", "invalid_text") in problems(
        role
    )
    assert sales.get("/meta/rules").json["revision"] == revision
    assert sales.get("/meta/rules/loss_reason_required").status_code == 404
    assert sales.get("/meta/roles/clerk").status_code == 404


@pytest.mark.parametrize("flag", ["dry_run=on", "dry_run=y", "dry_run=2", "dry_run"])
def test_a_dry_run_flag_that_is_not_yes_or_no_is_refused(sales: Api, flag: str) -> None:
    response = sales.put(
        f"/meta/rules/loss_reason_required?{flag}", json=LOSS_REASON_REQUIRED
    )

    assert response.status_code == 400
    assert response.json["detail"] == "dry_run: use true or false."
    assert sales.get("/meta/rules/loss_reason_required").status_code == 404


@pytest.mark.parametrize("flags", ["dry_run=0&dry_run=1", "dry_run=yes&dry_run=no"])
def test_a_dry_run_flag_given_twice_with_two_answers_is_refused(
    sales: Api, flags: str
) -> None:
    rule = sales.put(
        f"/meta/rules/loss_reason_required?{flags}", json=LOSS_REASON_REQUIRED
    )
    record = sales.post(f"/opportunity?{flags}", json={"title": "Cranes"})

    assert (rule.status_code, record.status_code) == (400, 400)
    assert record.json["detail"] == "dry_run: give it once, true or false."
    assert sales.get("/meta/rules/loss_reason_required").status_code == 404
    assert sales.get("/opportunity?count=1").json["count"] == 0


@pytest.mark.parametrize("misspelt", ["dryrun=1", "Dry_run=1", "dry-run=1"])
def test_a_misspelt_dry_run_changes_nothing(sales: Api, misspelt: str) -> None:
    created = sales.post(f"/opportunity?{misspelt}", json={"title": "Cranes"})
    rule = sales.put(
        f"/meta/rules/loss_reason_required?{misspelt}", json=LOSS_REASON_REQUIRED
    )
    deal = sales.post("/opportunity", json={"title": "Winches"}).json
    changed = sales.patch(f"/opportunity/{deal['id']}?{misspelt}", json={"amount": 5})
    deleted = sales.delete(f"/opportunity/{deal['id']}?{misspelt}")

    name = misspelt.split("=")[0]
    for response in (created, rule, changed, deleted):
        assert response.status_code == 400, response.json
        assert response.json["errors"][0]["field"] == name
        assert response.json["errors"][0]["code"] == "unknown_parameter"
        assert "Nothing was changed" in response.json["detail"]
    assert "dry_run" in created.json["detail"]
    assert "bypass_automation" in created.json["detail"]
    assert sales.get("/opportunity?count=1").json["count"] == 1
    assert sales.get(f"/opportunity/{deal['id']}").json["amount"] is None
    assert sales.get("/meta/rules/loss_reason_required").status_code == 404


def test_the_parameters_a_write_reads_are_taken(sales: Api) -> None:
    created = sales.post(
        "/opportunity?bypass_automation=1&dry_run=0", json={"title": "Cranes"}
    )
    view = sales.post(
        "/meta/views?entity=opportunity",
        json={"label": "Mine", "columns": ["title"]},
    )
    refused = sales.post(
        "/meta/views?entity=opportunity&sort=title",
        json={"label": "Theirs", "columns": ["title"]},
    )

    assert created.status_code == 201, created.json
    assert view.status_code == 201, view.json
    assert refused.status_code == 400
    assert refused.json["detail"].startswith("sort: POST /api/v1/meta/views has no")
    assert "it takes entity." in refused.json["detail"]


def test_a_dry_run_flag_given_twice_alike_is_taken(sales: Api) -> None:
    checked = sales.post(
        "/opportunity?dry_run=1&dry_run=true", json={"title": "Cranes"}
    )

    assert checked.status_code == 200
    assert checked.json["applied"] is False


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {**LOSS_REASON_REQUIRED, "colour": "red"},
            [("loss_reason_required", "schema")],
        ),
        (
            {**LOSS_REASON_REQUIRED, "expression": 1},
            [("loss_reason_required.expression", "not_applicable")],
        ),
        (
            {key: v for key, v in LOSS_REASON_REQUIRED.items() if key != "message"},
            [("loss_reason_required", "schema")],
        ),
        (
            {**LOSS_REASON_REQUIRED, "entity": "nothing"},
            [("loss_reason_required.entity", "unknown_entity")],
        ),
        (
            {
                **LOSS_REASON_REQUIRED,
                "condition": {
                    "and": [
                        {"==": [{"var": "stag"}, "lost"]},
                        {"is_blank": {"var": "account.nme"}},
                    ]
                },
            },
            [
                ("loss_reason_required.condition.and[0].==[0]", "unknown_field"),
                ("loss_reason_required.condition.and[1].is_blank", "unknown_field"),
            ],
        ),
        (
            {**LOSS_REASON_REQUIRED, "condition": {"lower": {"var": "amount"}}},
            [("loss_reason_required.condition.lower", "wrong_type")],
        ),
        (
            {**LOSS_REASON_REQUIRED, "field": "reason"},
            [("loss_reason_required.field", "unknown_field")],
        ),
    ],
)
def test_a_bad_rule_names_the_rule_and_the_path_of_each_problem(
    sales: Api, document: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    response = sales.put("/meta/rules/loss_reason_required", json=document)

    assert response.status_code == 422, response.json
    assert problems(response) == expected


def test_a_problem_in_a_list_is_named_by_its_index(sales: Api) -> None:
    # condition[0], as a JSON path reads, not condition.[0].
    listed = rule(
        "listed_condition",
        "opportunity",
        "validation",
        condition=[{"var": "amont"}],
        message="Never.",
    )

    refused = sales.put("/meta/rules/listed_condition", json=listed)

    assert problems(refused) == [("listed_condition.condition[0]", "unknown_field")]


def test_a_key_of_another_rule_type_is_refused_in_plain_english(sales: Api) -> None:
    document = {
        "kind": "rule",
        "name": "stamp_next_step",
        "entity": "opportunity",
        "type": "automation",
        "label": "Stamp the next step",
        "trigger": "update",
        "field": "title",
        "actions": [{"type": "set_field", "field": "next_step", "value": "Call"}],
    }

    refused = sales.put("/meta/rules/stamp_next_step", json=document)

    assert refused.status_code == 422
    assert refused.json["errors"] == [
        {
            "field": "stamp_next_step.field",
            "code": "not_applicable",
            "message": "An automation rule takes no 'field'.",
        }
    ]


def test_a_latest_or_earliest_into_a_required_field_is_refused(sales: Api) -> None:
    # Over no opportunities the latest close date is blank: no account could be
    # created, so neither the rule nor making its field required is taken.
    latest = rule(
        "latest_close",
        "account",
        "rollup",
        field="last_close",
        relation={"entity": "opportunity", "lookup": "account"},
        function="max",
        of="close_date",
    )
    strict = {
        **ACCOUNT,
        "fields": [
            {**spec, "required": True} if spec["name"] == "last_close" else spec
            for spec in ACCOUNT["fields"]
        ],
    }
    define(sales, strict)

    refused = sales.put("/meta/rules/latest_close", json=latest)
    define(sales, ACCOUNT, latest)
    unrequired = sales.put("/meta/entities/account", json=strict)

    assert refused.status_code == 422, refused.json
    assert problems(refused) == [("latest_close.field", "wrong_type")]
    assert unrequired.status_code == 409, unrequired.json
    assert sales.post("/account", json={"name": "North Yard"}).status_code == 201


def test_a_record_an_automation_creates_gets_every_required_field(
    sales: Api,
) -> None:
    # A task needs a subject: an action that gives none could never save one,
    # unless a default rule fills it.
    kick_off = rule(
        "kick_off",
        "opportunity",
        "automation",
        trigger="create",
        actions=[{"type": "create_record", "entity": "task", "values": {"about": "x"}}],
    )
    subject = rule(
        "task_subject", "task", "default", field="subject", expression="Follow up"
    )

    refused = sales.put("/meta/rules/kick_off", json=kick_off)
    define(sales, subject, kick_off)
    dropped = sales.delete("/meta/rules/task_subject")

    assert refused.status_code == 422, refused.json
    assert problems(refused) == [("kick_off.actions[0].values", "required")]
    assert "task.subject is required" in refused.json["errors"][0]["message"]
    assert dropped.status_code == 409, dropped.json
    created = sales.post("/opportunity", json={"title": "Cranes"})
    assert created.status_code == 201, created.json
    assert [t["subject"] for t in sales.get("/task").json["data"]] == ["Follow up"]


def _nested(depth: int) -> Any:
    condition: Any = {"var": "amount"}
    for _ in range(depth):
        condition = {"+": [condition, 1]}
    return condition


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            rule(
                "deep", "opportunity", "formula", field="total", expression=_nested(40)
            ),
            ("deep.expression", "too_deep"),
        ),
        (
            rule(
                "large",
                "opportunity",
                "validation",
                condition={"in": [{"var": "title"}, ["x" * 100] * 120]},
                message="Too large.",
            ),
            ("large.condition", "too_large"),
        ),
        (
            rule(
                "on_create",
                "opportunity",
                "automation",
                trigger="create",
                condition={"changed": "stage"},
                actions=[{"type": "set_field", "field": "next_step", "value": "Call"}],
            ),
            ("on_create.condition", "prior_not_available"),
        ),
        (
            rule(
                "prior_default",
                "opportunity",
                "default",
                field="next_step",
                expression={"prior": "next_step"},
            ),
            ("prior_default.expression", "prior_not_available"),
        ),
        (
            rule(
                "text_total",
                "opportunity",
                "formula",
                field="total",
                expression={"cat": ["a", {"var": "title"}]},
            ),
            ("text_total.expression", "wrong_type"),
        ),
        (
            rule(
                "no_field",
                "opportunity",
                "formula",
                field="grand_total",
                expression={"var": "amount"},
            ),
            ("no_field.field", "unknown_field"),
        ),
        (
            rule(
                "lookup_formula",
                "opportunity",
                "formula",
                field="account",
                expression=1,
            ),
            ("lookup_formula.field", "wrong_type"),
        ),
        (
            rule(
                "bad_value",
                "opportunity",
                "automation",
                trigger="update",
                actions=[{"type": "set_field", "field": "stage", "value": "closed"}],
            ),
            ("bad_value.actions[0].value", "invalid_value"),
        ),
        (
            rule(
                "sum_of_text",
                "account",
                "rollup",
                field="won_total",
                relation={"entity": "opportunity", "lookup": "account"},
                function="sum",
                of="title",
            ),
            ("sum_of_text.of", "wrong_type"),
        ),
        (
            rule(
                "wrong_lookup",
                "account",
                "rollup",
                field="won_count",
                relation={"entity": "task", "lookup": "opportunity"},
                function="count",
            ),
            ("wrong_lookup.relation.lookup", "unknown_relation"),
        ),
        (
            rule(
                "owner_formula",
                "opportunity",
                "formula",
                field="owner_id",
                expression=1,
            ),
            ("owner_formula.field", "read_only"),
        ),
        (
            rule(
                "owner_action",
                "opportunity",
                "automation",
                trigger="create",
                actions=[{"type": "set_field", "field": "owner_id", "value": 1}],
            ),
            ("owner_action.actions[0].field", "read_only"),
        ),
        (
            rule(
                "stage_default",
                "opportunity",
                "default",
                field="stage",
                expression="won",
            ),
            ("stage_default.field", "has_default"),
        ),
        (
            rule(
                "task_elsewhere",
                "opportunity",
                "automation",
                trigger="create",
                actions=[
                    {
                        "type": "create_record",
                        "entity": "task",
                        "values": {"subject": "Call", "opportunity": 7},
                    }
                ],
            ),
            ("task_elsewhere.actions[0].values.opportunity", "not_applicable"),
        ),
    ],
)
def test_static_checks_refuse_rules_that_cannot_work(
    sales: Api, document: dict[str, Any], expected: tuple[str, str]
) -> None:
    response = sales.put(f"/meta/rules/{document['name']}", json=document)

    assert response.status_code == 422, response.json
    path, code = expected
    assert any(
        str(field).startswith(path) and found == code
        for field, found in problems(response)
    ), problems(response)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("2031-02-30", "'2031-02-30' is not a date (write YYYY-MM-DD)."),
        ("end of June", "'end of June' is not a date (write YYYY-MM-DD)."),
        (
            "2031-06-30T17:00:00Z",
            "'2031-06-30T17:00:00Z' has a time of day, which a date field leaves out.",
        ),
        (
            " 2031-06-30T17:00 ",
            "' 2031-06-30T17:00 ' has a time of day, which a date field leaves out.",
        ),
    ],
)
def test_text_that_cannot_fill_a_date_field_is_told_why(
    sales: Api, value: str, why: str
) -> None:
    # ISO text fills a date field; other text was told only that "the
    # expression gives text", which the person had meant as a date.
    document = rule(
        "close_at_june_end",
        "opportunity",
        "default",
        field="close_date",
        expression=value,
    )

    response = sales.put("/meta/rules/close_at_june_end", json=document)

    assert response.status_code == 422, response.json
    assert [(e["field"], e["code"], e["message"]) for e in response.json["errors"]] == [
        (
            "close_at_june_end.expression",
            "wrong_type",
            "The expression gives text, which the date field 'close_date' cannot "
            f"hold; {why}",
        )
    ]


#: A task with a day and a moment it is due.
DUE_TASK = {
    **TASK,
    "fields": [
        *TASK["fields"],
        {"name": "due_on", "type": "date", "label": "Due on"},
        {"name": "due_at", "type": "datetime", "label": "Due at"},
    ],
}


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("due_on", " 2031-06-30 ", "2031-06-30"),
        ("due_at", " 2031-06-30T17:00:00Z ", "2031-06-30T17:00:00Z"),
        ("due_at", "2031-06-30 ", "2031-06-30T00:00:00Z"),
    ],
)
def test_date_text_with_spaces_around_it_fills_a_date_field_as_the_save_reads_it(
    sales: Api, field: str, value: str, stored: str
) -> None:
    # The save reads " 2031-06-30 " as 30 June; the check refused it as "not a
    # date (write YYYY-MM-DD)", and a datetime field took no such date at all.
    define(sales, DUE_TASK)
    document = rule("due_by_june_end", "task", "default", field=field, expression=value)

    response = sales.put("/meta/rules/due_by_june_end", json=document)
    created = sales.post("/task", json={"subject": "Paint the gantry"})

    assert response.status_code == 201, response.json
    assert created.status_code == 201, created.json
    assert created.json[field] == stored


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            rule(
                "step_or_zero",
                "opportunity",
                "formula",
                field="next_step",
                expression={"coalesce": [{"var": "loss_reason"}, 0]},
            ),
            [("step_or_zero.expression.coalesce[1]", "wrong_type")],
        ),
        (
            rule(
                "total_or_label",
                "opportunity",
                "formula",
                field="total",
                expression={
                    "if": [
                        {"==": [{"var": "stage"}, "won"]},
                        {"var": "amount"},
                        {"if": [{"var": "quantity"}, "pending", None]},
                    ]
                },
            ),
            [("total_or_label.expression.if[2].if[1]", "wrong_type")],
        ),
        (
            rule(
                "touches_default",
                "opportunity",
                "default",
                field="touches",
                expression={"var": ["quantity", "none"]},
            ),
            [("touches_default.expression.var[1]", "wrong_type")],
        ),
        (
            rule(
                "step_on_win",
                "opportunity",
                "automation",
                trigger="update",
                actions=[
                    {
                        "type": "set_field",
                        "field": "next_step",
                        "expression": {
                            "or": [{"var": "loss_reason"}, {"var": "amount"}]
                        },
                    }
                ],
            ),
            [("step_on_win.actions[0].expression.or[1]", "wrong_type")],
        ),
        (
            rule(
                "touches_or_fallback",
                "opportunity",
                "formula",
                field="touches",
                expression={"try": [{"var": "quantity"}, "unknown"]},
            ),
            [("touches_or_fallback.expression.try[1]", "wrong_type")],
        ),
        (
            rule(
                "touches_tried",
                "opportunity",
                "formula",
                field="touches",
                expression={"try": {"var": "next_step"}},
            ),
            [("touches_tried.expression.try", "wrong_type")],
        ),
        (
            rule(
                "touches_logged",
                "opportunity",
                "default",
                field="touches",
                expression={"log": {"coalesce": [{"var": "quantity"}, "none"]}},
            ),
            [("touches_logged.expression.log.coalesce[1]", "wrong_type")],
        ),
        (
            rule(
                "close_next_week",
                "opportunity",
                "default",
                field="close_date",
                expression={
                    "date_add": [
                        {"coalesce": [{"var": "account.last_close"}, {"var": "$now"}]},
                        7,
                        "days",
                    ]
                },
            ),
            [("close_next_week.expression.date_add[0].coalesce[1]", "wrong_type")],
        ),
        (
            rule(
                "close_at_nine",
                "opportunity",
                "default",
                field="close_date",
                expression={"date_add": ["2027-01-31T09:00:00Z", 7, "days"]},
            ),
            [("close_at_nine.expression", "wrong_type")],
        ),
    ],
)
def test_a_formula_is_refused_when_one_of_its_branches_does_not_fit(
    sales: Api, document: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    # coalesce, if, or and a var's default give one of their operands: a branch
    # the field cannot hold would fail every save that takes it.
    response = sales.put(f"/meta/rules/{document['name']}", json=document)

    assert response.status_code == 422, response.json
    assert problems(response) == expected
    assert "cannot hold" in response.json["errors"][0]["message"]
    assert sales.get(f"/meta/rules/{document['name']}").status_code == 404


def test_a_formula_whose_branches_all_fit_is_accepted(sales: Api) -> None:
    documents = [
        rule(
            "total_or_zero",
            "opportunity",
            "formula",
            field="total",
            expression={"coalesce": [{"var": "amount"}, {"var": ["quantity", 0]}]},
        ),
        rule(
            "step_when_won",
            "opportunity",
            "formula",
            field="next_step",
            expression={"if": [{"==": [{"var": "stage"}, "won"]}, "Invoice", None]},
        ),
        rule(
            "close_default",
            "opportunity",
            "default",
            field="close_date",
            expression={"if": [{"var": "amount"}, "2027-01-31", {"today": []}]},
        ),
    ]
    for document in documents:
        response = sales.put(f"/meta/rules/{document['name']}", json=document)
        assert response.status_code in (200, 201), response.json

    created = sales.post("/opportunity", json={"title": "Dock", "amount": "5"})

    assert created.status_code == 201, created.json
    assert created.json["total"] == 5
    assert created.json["next_step"] is None
    assert created.json["close_date"] == "2027-01-31"


def test_and_gives_an_earlier_operand_only_when_it_is_false(sales: Api) -> None:
    # Text is false only when blank, which fills a number field as no value;
    # an amount of 0 is false too, which a text field cannot hold.
    touches = rule(
        "touches_with_step",
        "opportunity",
        "default",
        field="touches",
        expression={"and": [{"var": "next_step"}, {"var": "quantity"}]},
    )
    step = rule(
        "quote_when_priced",
        "opportunity",
        "default",
        field="next_step",
        expression={"and": [{"var": "amount"}, "Send a quote"]},
    )

    accepted = sales.put("/meta/rules/touches_with_step", json=touches)
    refused = sales.put("/meta/rules/quote_when_priced", json=step)
    stepped = sales.post(
        "/opportunity", json={"title": "Dock", "next_step": "Call", "quantity": 4}
    )
    bare = sales.post("/opportunity", json={"title": "Pier", "quantity": 4})

    assert accepted.status_code == 201, accepted.json
    assert problems(refused) == [("quote_when_priced.expression.and[0]", "wrong_type")]
    assert stepped.json["touches"] == 4
    assert bare.json["touches"] is None


def test_an_if_whose_every_branch_is_date_text_fills_a_date_field(
    sales: Api,
) -> None:
    # Each branch fills the field as the text written alone does.
    document = rule(
        "close_by_amount",
        "opportunity",
        "default",
        field="close_date",
        expression={"if": [{"var": "amount"}, "2027-01-31", "2027-06-30"]},
    )

    response = sales.put("/meta/rules/close_by_amount", json=document)
    large = sales.post("/opportunity", json={"title": "Pier", "amount": "5"})
    small = sales.post("/opportunity", json={"title": "Quay"})

    assert response.status_code == 201, response.json
    assert large.json["close_date"] == "2027-01-31"
    assert small.json["close_date"] == "2027-06-30"


#: A formula that fits its field, and the same as a database from before branches
#: were judged may hold it: its second branch gives a number to a text field.
STEP_OR_REASON = rule(
    "step_or_reason",
    "opportunity",
    "formula",
    field="next_step",
    expression={"coalesce": [{"var": "loss_reason"}, "none"]},
)
STEP_OR_REASON_EARLIER = {
    **STEP_OR_REASON,
    "expression": {"coalesce": [{"var": "loss_reason"}, 0]},
}


@contextmanager
def _stored_unchecked(
    platform: Platform, database_url: str, admin_token: str, document: dict[str, Any]
) -> Iterator[Api]:
    """The platform started anew on its database, where the rule ``document``
    was stored as it is, without today's checks: as a rule saved before them."""
    with platform.engine.begin() as connection:
        connection.execute(
            meta_documents.update()
            .where(meta_documents.c.kind == "rule")
            .where(meta_documents.c.name == document["name"])
            .values(body=document)
        )
    later = create_app({"database_url": database_url})
    try:
        yield Api(later.test_client(), admin_token)
    finally:
        later.extensions["tailorcrm"].engine.dispose()


def test_a_stored_rule_with_a_branch_that_does_not_fit_keeps_working(
    sales: Api, platform: Platform, database_url: str, admin_token: str
) -> None:
    # A database whose formula was saved before branches were judged: it keeps
    # computing where it can, stands in no other change's way (also sent again
    # as it is, as a pack or an export does), and is judged in full when it is
    # changed.
    define(sales, STEP_OR_REASON)
    earlier = STEP_OR_REASON_EARLIER

    with _stored_unchecked(platform, database_url, admin_token, earlier) as reopened:
        created = reopened.post(
            "/opportunity", json={"title": "Mast", "loss_reason": "Price"}
        )
        blank = reopened.post("/opportunity", json={"title": "Keel"})
        entity = reopened.get("/meta/entities/opportunity").json
        entity["fields"].append({"name": "region", "type": "text", "label": "Region"})
        extended = reopened.put("/meta/entities/opportunity", json=entity)
        sent_again = reopened.put("/meta/rules/step_or_reason", json=earlier)
        changed = {**earlier, "label": "Next step from the loss reason"}
        saved_again = reopened.put("/meta/rules/step_or_reason", json=changed)

    assert created.status_code == 201, created.json
    assert created.json["next_step"] == "Price"
    assert blank.status_code == 422
    assert problems(blank) == [("next_step", "rule_value")]
    assert extended.status_code == 200, extended.json
    assert sent_again.status_code == 200, sent_again.json
    assert saved_again.status_code == 422
    assert problems(saved_again) == [
        ("step_or_reason.expression.coalesce[1]", "wrong_type")
    ]


def test_a_stored_update_of_the_related_record_that_sets_nothing_is_sent_again(
    sales: Api, platform: Platform, database_url: str, admin_token: str
) -> None:
    # Saved before such an action was refused: an export applied back, or a
    # pack sent again, holds it as it is stored, and is taken; a change of it
    # is judged in full.
    touch = rule("touch_account", "opportunity", "automation", trigger="update")
    values = {"name": {"var": "account.name"}}
    touch["actions"] = [
        {"type": "update_related", "lookup": "account", "values": values}
    ]
    define(sales, touch)
    earlier = json.loads(json.dumps(touch))
    earlier["actions"][0]["values"] = {}

    with _stored_unchecked(platform, database_url, admin_token, earlier) as reopened:
        sent_again = reopened.put("/meta/rules/touch_account", json=earlier)
        changed = {**earlier, "label": "Touch the account"}
        saved_again = reopened.put("/meta/rules/touch_account", json=changed)

    assert sent_again.status_code == 200, sent_again.json
    assert saved_again.status_code == 422
    assert problems(saved_again) == [("touch_account.actions[0].values", "schema")]


def test_a_stored_rule_that_no_longer_fits_still_computes_its_field_alone(
    sales: Api, platform: Platform, database_url: str, admin_token: str
) -> None:
    # The stored formula goes on computing next_step, so a second formula for
    # that field is refused as it would be beside a formula that fits.
    define(sales, STEP_OR_REASON)
    second = rule(
        "step_from_title",
        "opportunity",
        "formula",
        field="next_step",
        expression={"var": "title"},
    )
    stored = STEP_OR_REASON_EARLIER

    with _stored_unchecked(platform, database_url, admin_token, stored) as reopened:
        response = reopened.put("/meta/rules/step_from_title", json=second)
        created = reopened.post(
            "/opportunity", json={"title": "Mast", "loss_reason": "Price"}
        )

    assert response.status_code == 422
    assert problems(response) == [("step_from_title.field", "computed_twice")]
    assert created.json["next_step"] == "Price"


#: Points at an opportunity and at an account: two lookups to two entities.
VISIT = {
    "name": "visit",
    "label": "Visit",
    "display_field": "subject",
    "fields": [
        {"name": "subject", "type": "text", "label": "Subject"},
        {
            "name": "opportunity",
            "type": "lookup",
            "target": "opportunity",
            "label": "Opportunity",
        },
        {"name": "account", "type": "lookup", "target": "account", "label": "Account"},
    ],
}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            rule(
                "visit_account",
                "visit",
                "default",
                field="account",
                expression={"var": "opportunity"},
            ),
            "visit_account.expression",
        ),
        (
            rule(
                "visit_account",
                "visit",
                "default",
                field="account",
                expression={"var": ["account", {"var": "opportunity"}]},
            ),
            "visit_account.expression.var[1]",
        ),
        (
            rule(
                "visit_account",
                "visit",
                "automation",
                trigger="update",
                actions=[
                    {
                        "type": "set_field",
                        "field": "account",
                        "expression": {"coalesce": [{"var": "account"}, {"var": ""}]},
                    }
                ],
            ),
            "visit_account.actions[0].expression.coalesce[1]",
        ),
        (
            rule(
                "visit_account",
                "visit",
                "automation",
                trigger="update",
                actions=[
                    {
                        "type": "set_field",
                        "field": "account",
                        "expression": {"prior": "opportunity"},
                    }
                ],
            ),
            "visit_account.actions[0].expression",
        ),
        (
            rule(
                "visit_account",
                "visit",
                "automation",
                trigger="create",
                actions=[
                    {
                        "type": "update_related",
                        "lookup": "opportunity",
                        "values": {"account": {"var": "opportunity"}},
                    }
                ],
            ),
            "visit_account.actions[0].values.account",
        ),
        (
            rule(
                "visit_account",
                "opportunity",
                "automation",
                trigger="create",
                actions=[
                    {
                        "type": "create_record",
                        "entity": "visit",
                        "values": {"account": {"if": [True, {"var": ""}, None]}},
                    }
                ],
            ),
            "visit_account.actions[0].values.account.if[1]",
        ),
    ],
)
def test_a_record_fills_only_a_lookup_to_its_own_entity(
    sales: Api, document: dict[str, Any], expected: str
) -> None:
    # A lookup holds an id: an opportunity's would point it at whichever
    # account has that id.
    define(sales, VISIT)

    response = sales.put("/meta/rules/visit_account", json=document)

    assert response.status_code == 422, response.json
    assert problems(response) == [(expected, "wrong_type")]
    assert "cannot hold" in response.json["errors"][0]["message"]
    assert sales.get("/meta/rules/visit_account").status_code == 404


def test_a_record_or_an_id_fills_a_lookup_to_its_entity(sales: Api) -> None:
    define(sales, VISIT)
    documents = [
        rule(
            "visit_account",
            "visit",
            "default",
            field="account",
            expression={"var": "opportunity.account"},
        ),
        rule(
            "visit_opportunity",
            "visit",
            "automation",
            trigger="update",
            actions=[
                {
                    "type": "set_field",
                    "field": "opportunity",
                    "expression": {"coalesce": [{"prior": "opportunity"}, 1]},
                }
            ],
        ),
        rule(
            "parent_of_itself",
            "account",
            "automation",
            trigger="update",
            actions=[
                {"type": "set_field", "field": "parent", "expression": {"var": ""}}
            ],
        ),
    ]
    for document in documents:
        response = sales.put(f"/meta/rules/{document['name']}", json=document)
        assert response.status_code == 201, response.json
    first = create(sales, "account", name="Alder")
    second = create(sales, "account", name="Birch")
    deal = create(sales, "opportunity", title="Dock", account=second["id"])

    visit = sales.post("/visit", json={"subject": "Tour", "opportunity": deal["id"]})
    renamed = sales.patch(f"/account/{first['id']}", json={"name": "Alder Ltd"})

    assert visit.status_code == 201, visit.json
    assert visit.json["account"] == second["id"]
    assert renamed.json["parent"] == first["id"]


def test_a_stored_rule_filling_a_lookup_with_another_entity_keeps_working(
    sales: Api, platform: Platform, database_url: str, admin_token: str
) -> None:
    # A database whose default was saved before the entity of a record was
    # judged: it goes on as it did, stands in no other change's way, and is
    # refused when it is changed.
    define(sales, VISIT)
    fitting = rule(
        "visit_account",
        "visit",
        "default",
        field="account",
        expression={"var": "opportunity.account"},
    )
    define(sales, fitting)
    earlier = {**fitting, "expression": {"var": "opportunity"}}
    account = create(sales, "account", name="Alder")
    deal = create(sales, "opportunity", title="Dock")

    with _stored_unchecked(platform, database_url, admin_token, earlier) as reopened:
        visit = reopened.post(
            "/visit", json={"subject": "Tour", "opportunity": deal["id"]}
        )
        entity = reopened.get("/meta/entities/visit").json
        entity["fields"].append({"name": "notes", "type": "text", "label": "Notes"})
        extended = reopened.put("/meta/entities/visit", json=entity)
        changed = {**earlier, "label": "Account of the visit's deal"}
        saved_again = reopened.put("/meta/rules/visit_account", json=changed)

    assert visit.status_code == 201, visit.json
    assert visit.json["account"] == deal["id"] == account["id"]
    assert extended.status_code == 200, extended.json
    assert saved_again.status_code == 422
    assert problems(saved_again) == [("visit_account.expression", "wrong_type")]


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("2030-01-01", True),
        ("2030-01-01T10:00:00Z", False),
        ("2030-02-30", False),
        ("soon", False),
    ],
)
def test_iso_date_text_fills_a_date_field(
    sales: Api, text: str, accepted: bool
) -> None:
    documents = [
        rule(
            "close_default",
            "opportunity",
            "default",
            field="close_date",
            expression=text,
        ),
        rule(
            "close_set",
            "opportunity",
            "automation",
            trigger="create",
            actions=[{"type": "set_field", "field": "close_date", "value": text}],
        ),
    ]
    for document in documents:
        path = f"/meta/rules/{document['name']}"
        response = sales.put(path, json=document, query_string={"dry_run": "1"})
        if accepted:
            assert response.status_code == 200, response.json["errors"]
        else:
            assert response.status_code == 422, response.json
            assert problems(response)[0][1] in ("wrong_type", "invalid_value")
    if accepted:
        sales.put("/meta/rules/close_default", json=documents[0])
        created = sales.post("/opportunity", json={"title": "Dated"})
        assert created.json["close_date"] == text


def test_iso_date_text_fills_a_datetime_field_at_midnight_utc(sales: Api) -> None:
    moment = {"name": "meeting_at", "type": "datetime", "label": "Meeting at"}
    define(sales, {**OPPORTUNITY, "fields": [*OPPORTUNITY["fields"], moment]})
    documents = [
        rule(
            "meeting_default", "opportunity", "default",
            field="meeting_at", expression="2030-01-01",
        ),
        rule(
            "meeting_set", "opportunity", "automation", trigger="update",
            condition={"==": [{"var": "stage"}, "won"]},
            actions=[
                {"type": "set_field", "field": "meeting_at", "value": "2030-02-01"}
            ],
        ),
    ]  # fmt: skip
    define(sales, *documents)

    created = sales.post("/opportunity", json={"title": "Dated"})
    won = sales.patch(f"/opportunity/{created.json['id']}", json={"stage": "won"})

    assert created.status_code == 201, created.json
    assert created.json["meeting_at"] == "2030-01-01T00:00:00Z"
    assert won.status_code == 200, won.json
    assert won.json["meeting_at"] == "2030-02-01T00:00:00Z"


def test_formulas_that_need_each_other_are_refused_across_lookups(sales: Api) -> None:
    # account.won_total sums opportunity.total, which would read the account's total.
    total = rule(
        "total_from_account",
        "opportunity",
        "formula",
        field="total",
        expression={"*": [{"var": "account.won_total"}, 2]},
    )
    define(sales, total)

    response = sales.put(
        "/meta/rules/won_total", json={**WON_TOTAL, "of": "total", "condition": None}
    )

    assert response.status_code == 422
    ((field, code),) = problems(response)
    assert (field, code) == ("won_total.of", "dependency_cycle")
    message = response.json["errors"][0]["message"]
    assert "total_from_account" in message and "won_total" in message


def test_a_circle_is_named_where_the_rule_saved_reads_the_next_field(
    sales: Api,
) -> None:
    # The roll-up is stored first: the formula saved then closes the circle where
    # it reads account.won_total, and a count closes it in its condition.
    define(sales, {**WON_TOTAL, "of": "total", "condition": None})
    total = rule(
        "total_from_account",
        "opportunity",
        "formula",
        field="total",
        expression={"*": [{"var": "quantity"}, {"var": "account.won_total"}]},
    )
    count = rule(
        "won_count",
        "account",
        "rollup",
        field="won_count",
        relation={"entity": "opportunity", "lookup": "account"},
        function="count",
        condition={"and": [{"var": "stage"}, {">": [{"var": "touches"}, 1]}]},
    )
    touches = rule(
        "touches_from_account",
        "opportunity",
        "formula",
        field="touches",
        expression={"var": "account.won_count"},
    )
    define(sales, touches)

    formula = sales.put("/meta/rules/total_from_account", json=total)
    rollup = sales.put("/meta/rules/won_count", json=count)

    assert problems(formula) == [
        ("total_from_account.expression.*[1]", "dependency_cycle")
    ]
    assert problems(rollup) == [("won_count.condition.and[1].>[0]", "dependency_cycle")]
    # Each is told the circle from the field its rule computes.
    assert formula.json["errors"][0]["message"] == (
        "These fields would each need the other's value first: opportunity.total "
        "-> account.won_total -> opportunity.total (rules total_from_account, "
        "won_total)."
    )
    assert rollup.json["errors"][0]["message"].startswith(
        "These fields would each need the other's value first: account.won_count "
        "-> opportunity.touches -> account.won_count "
    )


def test_a_formula_that_reads_its_own_field_is_told_so(sales: Api) -> None:
    inherited = rule(
        "inherited_tier",
        "account",
        "formula",
        field="tier",
        expression={"var": "parent.tier"},
    )
    counted = rule(
        "counted_touches",
        "opportunity",
        "formula",
        field="touches",
        expression={"+": [{"var": "touches"}, 1]},
    )

    parent = sales.put("/meta/rules/inherited_tier", json=inherited)
    itself = sales.put("/meta/rules/counted_touches", json=counted)

    assert problems(parent) == [("inherited_tier.expression", "dependency_cycle")]
    assert parent.json["errors"][0]["message"] == (
        "The rule computes account.tier from account.tier itself (here, or on "
        "another account it looks up to), so it would need its own value first."
    )
    assert problems(itself) == [("counted_touches.expression.+[0]", "dependency_cycle")]


def test_a_field_is_computed_by_one_rule_and_written_by_none(sales: Api) -> None:
    define(sales, OPPORTUNITY_INDUSTRY)
    second = {**OPPORTUNITY_INDUSTRY, "name": "industry_again"}
    writer = rule(
        "set_industry",
        "opportunity",
        "automation",
        trigger="update",
        actions=[{"type": "set_field", "field": "industry", "value": "x"}],
    )

    twice = sales.put("/meta/rules/industry_again", json=second)
    written = sales.put("/meta/rules/set_industry", json=writer)

    assert problems(twice) == [("industry_again.field", "computed_twice")]
    assert problems(written) == [("set_industry.actions[0].field", "computed")]


def test_a_formula_over_a_field_stored_rules_write_is_the_one_refused(
    sales: Api,
) -> None:
    # The document sent is refused (422, at its own field), naming the rule
    # already stored that writes the field; that rule is not blamed.
    fill = rule(
        "next_step_default",
        "opportunity",
        "default",
        field="next_step",
        expression="Call",
    )
    writer = rule(
        "touch_once",
        "opportunity",
        "automation",
        trigger="update",
        actions=[{"type": "set_field", "field": "touches", "value": 1}],
    )
    required = rule(
        "total_needed",
        "opportunity",
        "field_state",
        field="total",
        required_if={"==": [{"var": "stage"}, "won"]},
    )
    define(sales, fill, writer, required)

    def formula(name: str, field: str, source: str) -> dict[str, Any]:
        expression = {"var": source}
        return rule(name, "opportunity", "formula", field=field, expression=expression)

    over_default = sales.put(
        "/meta/rules/step", json=formula("step", "next_step", "title")
    )
    over_writer = sales.put(
        "/meta/rules/count", json=formula("count", "touches", "quantity")
    )
    over_state = sales.put("/meta/rules/sum", json=formula("sum", "total", "amount"))

    assert problems(over_default) == [("step.field", "computed")]
    assert over_default.status_code == 422
    assert over_default.json["errors"][0]["message"] == (
        "The default rule 'next_step_default' fills opportunity.next_step, which a "
        "computed field cannot take; change or delete it first."
    )
    assert problems(over_writer) == [("count.field", "computed")]
    assert (
        "'touch_once' writes opportunity.touches (at actions[0].field)"
        in (over_writer.json["errors"][0]["message"])
    )
    assert problems(over_state) == [("sum.field", "computed")]
    assert "'total_needed'" in over_state.json["errors"][0]["message"]


def test_values_written_in_related_record_actions_must_fit_their_fields(
    sales: Api,
) -> None:
    # As a set_field value is: found when the rule is saved, not at each save
    # that runs it.
    def automation(name: str, *actions: dict[str, Any]) -> dict[str, Any]:
        return rule(
            name, "opportunity", "automation", trigger="create", actions=list(actions)
        )

    follow_up = {
        "type": "create_record",
        "entity": "task",
        "values": {"subject": "x" * 300, "done": True},
    }
    mark_account = {
        "type": "update_related",
        "lookup": "account",
        "values": {"industry": "nope", "tier": "platinum"},
    }
    fine = [
        {**follow_up, "values": {"subject": {"var": "title"}, "done": False}},
        {**mark_account, "values": {"industry": "energy", "tier": "gold"}},
    ]

    refused = sales.put(
        "/meta/rules/follow_up", json=automation("follow_up", follow_up)
    )
    related = sales.put(
        "/meta/rules/mark_account", json=automation("mark_account", mark_account)
    )
    accepted = sales.put("/meta/rules/fine", json=automation("fine", *fine))

    assert problems(refused) == [
        ("follow_up.actions[0].values.subject", "invalid_value")
    ]
    assert "does not fit subject" in refused.json["errors"][0]["message"]
    assert problems(related) == [
        ("mark_account.actions[0].values.industry", "invalid_value"),
        ("mark_account.actions[0].values.tier", "invalid_value"),
    ]
    assert accepted.status_code == 201, accepted.json


def test_a_blank_value_written_for_a_required_field_is_refused(sales: Api) -> None:
    # The save refuses a required field left blank, so such a rule could only
    # fail every save that runs it; a branch that gives null is left alone.
    clears = rule(
        "clear_title",
        "opportunity",
        "automation",
        trigger="update",
        actions=[
            {"type": "set_field", "field": "title", "value": None},
            {"type": "set_field", "field": "title", "value": "  "},
            {"type": "set_field", "field": "next_step", "value": None},
        ],
        else_actions=[
            {"type": "create_record", "entity": "task", "values": {"subject": None}},
            {"type": "update_related", "lookup": "account", "values": {"name": ""}},
        ],
    )
    blank_default = rule(
        "no_subject", "task", "default", field="subject", expression=""
    )
    branch = rule(
        "title_when_lost",
        "opportunity",
        "automation",
        trigger="update",
        actions=[
            {
                "type": "set_field",
                "field": "title",
                "expression": {"if": [{"var": "next_step"}, None, "Lost"]},
            }
        ],
    )

    refused = sales.put("/meta/rules/clear_title", json=clears)
    defaulted = sales.put("/meta/rules/no_subject", json=blank_default)
    accepted = sales.put("/meta/rules/title_when_lost", json=branch)

    assert problems(refused) == [
        ("clear_title.actions[0].value", "invalid_value"),
        ("clear_title.actions[1].value", "invalid_value"),
        ("clear_title.else_actions[0].values.subject", "invalid_value"),
        ("clear_title.else_actions[1].values.name", "invalid_value"),
    ]
    assert refused.json["errors"][0]["message"] == (
        "null leaves the required field 'title' blank, which every save that runs "
        "this rule would refuse; give it a value."
    )
    assert problems(defaulted) == [("no_subject.expression", "invalid_value")]
    assert accepted.status_code == 201, accepted.json
    assert sales.get("/meta/rules/clear_title").status_code == 404


def test_a_number_written_in_an_action_is_judged_rounded_to_its_field(
    sales: Api,
) -> None:
    # The save rounds a rule's number to its field's scale, as it does the same
    # number given by an expression; only one too large even so is refused.
    fitting = rule(
        "rounded_values",
        "opportunity",
        "automation",
        trigger="create",
        actions=[
            {"type": "set_field", "field": "amount", "value": 2.555},
            {"type": "set_field", "field": "quantity", "value": 2.5},
            {
                "type": "update_related",
                "lookup": "account",
                "values": {"won_total": 10.005, "won_count": 1.5},
            },
        ],
    )
    follow_up = rule(
        "follow_up_deal",
        "account",
        "automation",
        trigger="create",
        actions=[
            {
                "type": "create_record",
                "entity": "opportunity",
                "values": {"title": "Follow-up", "unit_price": 0.125, "touches": 0.5},
            }
        ],
    )
    too_large = rule(
        "too_large",
        "opportunity",
        "automation",
        trigger="create",
        actions=[
            {"type": "set_field", "field": "amount", "value": 999999999999.995},
            {"type": "set_field", "field": "quantity", "value": 1e19},
            {
                "type": "update_related",
                "lookup": "account",
                "values": {"won_total": 1e13},
            },
        ],
    )

    accepted = sales.put("/meta/rules/rounded_values", json=fitting)
    followed = sales.put("/meta/rules/follow_up_deal", json=follow_up)
    refused = sales.put("/meta/rules/too_large", json=too_large)
    account = create(sales, "account", name="Alder")
    deal = sales.post("/opportunity", json={"title": "Dock", "account": account["id"]})
    pointed = sales.get(f"/opportunity?account={account['id']}&sort=id").json["data"]
    marked = sales.get(f"/account/{account['id']}").json

    assert accepted.status_code == 201, accepted.json
    assert followed.status_code == 201, followed.json
    assert problems(refused) == [
        ("too_large.actions[0].value", "invalid_value"),
        ("too_large.actions[1].value", "invalid_value"),
        ("too_large.actions[2].values.won_total", "invalid_value"),
    ]
    assert deal.status_code == 201, deal.json
    assert (deal.json["amount"], deal.json["quantity"]) == (Decimal("2.56"), 3)
    assert (pointed[0]["unit_price"], pointed[0]["touches"]) == (Decimal("0.13"), 1)
    assert (marked["won_total"], marked["won_count"]) == (Decimal("10.01"), 2)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            rule(
                "guess_industry",
                "account",
                "default",
                field="industry",
                expression={"if": [{"var": "notes"}, "retail", "mining"]},
            ),
            [("guess_industry.expression.if[2]", "invalid_value")],
        ),
        (
            rule(
                "tier_by_total",
                "account",
                "formula",
                field="tier",
                expression={"coalesce": [{"var": "notes"}, "silver"]},
            ),
            [("tier_by_total.expression.coalesce[1]", "invalid_value")],
        ),
        (
            rule(
                "guess_quantity",
                "opportunity",
                "default",
                field="quantity",
                expression={"if": [{"var": "title"}, 1e19, 2.5]},
            ),
            [("guess_quantity.expression.if[1]", "invalid_value")],
        ),
        (
            rule(
                "fixed_amount",
                "opportunity",
                "formula",
                field="amount",
                expression=999999999999.995,
            ),
            [("fixed_amount.expression", "invalid_value")],
        ),
        (
            rule(
                "mark_account",
                "opportunity",
                "automation",
                trigger="create",
                actions=[
                    {
                        "type": "update_related",
                        "lookup": "account",
                        "values": {"industry": {"var": ["loss_reason", "mining"]}},
                    },
                    {"type": "set_field", "field": "title", "expression": "x" * 300},
                ],
            ),
            [
                ("mark_account.actions[0].values.industry.var[1]", "invalid_value"),
                ("mark_account.actions[1].expression", "invalid_value"),
            ],
        ),
    ],
)
def test_a_value_an_expression_gives_as_written_must_fit_its_field(
    sales: Api, document: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    # A choice the picklist does not have, or a number too large even once
    # rounded to its field's scale, would refuse every save that gives it, as a
    # set_field value would.
    response = sales.put(f"/meta/rules/{document['name']}", json=document)

    assert response.status_code == 422, response.json
    assert problems(response) == expected
    assert "does not fit" in response.json["errors"][0]["message"]
    assert sales.get(f"/meta/rules/{document['name']}").status_code == 404


def test_a_choice_an_expression_gives_is_kept_in_its_picklist(sales: Api) -> None:
    document = rule(
        "guess_industry",
        "account",
        "default",
        field="industry",
        expression={"if": [{"var": "notes"}, "retail", None]},
    )
    define(sales, document)
    fewer = json.loads(json.dumps(ACCOUNT))
    fewer["fields"][1]["options"] = [{"value": "energy", "label": "Energy"}]

    response = sales.put("/meta/entities/account", json=fewer)
    created = sales.post("/account", json={"name": "Kiln", "notes": "Bricks"})

    assert response.status_code == 409, response.json
    assert problems(response) == [("guess_industry.expression.if[1]", "invalid_value")]
    assert created.json["industry"] == "retail"


def test_a_computed_field_cannot_be_required_if(sales: Api) -> None:
    # No one can fill it, so a save it is required in could only be refused;
    # visible_if and readonly_if are harmless.
    define(sales, OPPORTUNITY_INDUSTRY)
    required = rule(
        "industry_needed",
        "opportunity",
        "field_state",
        field="industry",
        required_if={"==": [{"var": "stage"}, "won"]},
    )
    shown = {
        **required,
        "name": "industry_shown",
        "visible_if": required["required_if"],
        "readonly_if": required["required_if"],
    }
    del shown["required_if"]

    refused = sales.put("/meta/rules/industry_needed", json=required)
    accepted = sales.put("/meta/rules/industry_shown", json=shown)

    assert problems(refused) == [("industry_needed.required_if", "computed")]
    assert "computed by the rule" in refused.json["errors"][0]["message"]
    assert accepted.status_code == 201, accepted.json


def test_removing_or_renaming_a_used_field_is_refused_with_the_rules(
    sales: Api,
) -> None:
    define(sales, LOSS_REASON_REQUIRED, OPPORTUNITY_INDUSTRY, WON_TOTAL)
    document = sales.get("/meta/entities/opportunity").json
    without = {
        **document,
        "fields": [f for f in document["fields"] if f["name"] != "loss_reason"],
    }
    renamed = {
        **document,
        "fields": [
            {**f, "name": "deal_value"} if f["name"] == "amount" else f
            for f in document["fields"]
        ],
    }
    account = sales.get("/meta/entities/account").json
    no_industry = {
        **account,
        "fields": [f for f in account["fields"] if f["name"] != "industry"],
    }

    removed = sales.put("/meta/entities/opportunity", json=without)
    moved = sales.put("/meta/entities/opportunity", json=renamed)
    related = sales.put("/meta/entities/account", json=no_industry)
    entity = sales.delete("/meta/entities/opportunity")

    assert removed.status_code == 409
    assert problems(removed) == [("opportunity.loss_reason", "used_by_rules")]
    assert "loss_reason_required" in removed.json["errors"][0]["message"]
    assert problems(moved) == [("opportunity.amount", "used_by_rules")]
    assert "won_total" in moved.json["errors"][0]["message"]
    assert problems(related) == [("account.industry", "used_by_rules")]
    assert "opportunity_industry" in related.json["errors"][0]["message"]
    assert entity.status_code == 409
    message = entity.json["errors"][0]["message"]
    assert all(
        name in message
        for name in ("loss_reason_required", "opportunity_industry", "won_total")
    )
    assert sales.get("/meta/entities/opportunity").json == document


def test_a_field_and_the_rule_using_it_can_go_in_one_change(
    platform: Platform, sales: Api
) -> None:
    define(sales, LOSS_REASON_REQUIRED)
    document = sales.get("/meta/entities/opportunity").json
    without = {
        **document,
        "fields": [f for f in document["fields"] if f["name"] != "loss_reason"],
    }
    no_field = {
        **LOSS_REASON_REQUIRED,
        "condition": {"==": [{"var": "stage"}, "lost"]},
        "field": "stage",
    }

    result = platform.store.apply(
        [("opportunity.json", without), ("rule.json", no_field)], actor="test"
    )

    assert result.plan.describe() == [
        "hide_field opportunity.loss_reason",
        "change_rule opportunity.loss_reason_required",
    ]
    assert sales.get("/meta/rules/loss_reason_required").json == no_field


def test_the_catalog_holds_compiled_rules_per_entity(
    platform: Platform, sales: Api
) -> None:
    state = rule(
        "loss_reason_state",
        "opportunity",
        "field_state",
        field="loss_reason",
        visible_if={"==": [{"var": "stage"}, "lost"]},
        required_if={"==": [{"var": "stage"}, "lost"]},
    )
    define(sales, LOSS_REASON_REQUIRED, WON_TOTAL, OPPORTUNITY_INDUSTRY, state)

    with platform.reading() as (_, catalog):
        opportunity = catalog.rules.for_entity("opportunity")
        account = catalog.rules.for_entity("account")
        task = catalog.rules.for_entity("task")

    assert [r.name for r in opportunity.validations] == ["loss_reason_required"]
    assert opportunity.validations[0].condition({"stage": "lost"}) is True
    assert set(opportunity.computed) == {"industry"}
    assert opportunity.related_reads == {"account": frozenset({"industry"})}
    assert [r.name for r in opportunity.rollups] == ["won_total"]
    assert opportunity.field_states["loss_reason"].visible_if is not None
    assert set(account.computed) == {"won_total"}
    assert [(d.child, d.lookup, d.reads) for d in account.dependents] == [
        ("opportunity", "account", frozenset({"industry"}))
    ]
    assert not task.on_records and not task.after_save


def test_meta_apply_takes_rules_with_entities_and_export_writes_them(
    database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "pack"
    source.mkdir()
    for document in (ACCOUNT, OPPORTUNITY, LOSS_REASON_REQUIRED, WON_TOTAL):
        name = document["name"] + (".rule" if "kind" in document else "")
        (source / f"{name}.json").write_text(json.dumps(document))
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})

    applied = runner.invoke(main, ["meta", "apply", str(source)])
    exported = runner.invoke(main, ["meta", "export", str(tmp_path / "out")])

    assert applied.exit_code == 0, applied.output
    assert "add_rule opportunity.loss_reason_required" in applied.output
    assert "add_rule account.won_total" in applied.output
    assert applied.output.count("Revision") == 1
    assert exported.exit_code == 0, exported.output
    written = json.loads((tmp_path / "out" / "rules" / "won_total.json").read_text())
    assert written == WON_TOTAL
    again = runner.invoke(main, ["meta", "apply", str(tmp_path / "out")])
    assert "Nothing to change." in again.output


def test_meta_apply_reports_bad_rules_with_file_and_path(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "account.json").write_text(json.dumps(ACCOUNT))
    (tmp_path / "opportunity.json").write_text(json.dumps(OPPORTUNITY))
    broken = {**WON_TOTAL, "of": "amont"}
    (tmp_path / "won.json").write_text(json.dumps(broken))
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})

    result = runner.invoke(main, ["meta", "apply", str(tmp_path)])

    assert result.exit_code == 1
    assert "won.json: won_total.of: opportunity has no field 'amont'." in result.output
    listed = runner.invoke(main, ["meta", "export", str(tmp_path / "out")])
    assert "There are no entities to export." in listed.output


def test_a_picklist_compared_with_a_choice_s_label_is_refused(sales: Api) -> None:
    # Stages are stored as their values (won), industries as retail: text that
    # names a choice by its label, or a value in other letter case, would never
    # be equal to what a record holds.
    labels = rule(
        "won_needs_reason",
        "opportunity",
        "validation",
        condition={
            "and": [
                {"==": [{"var": "stage"}, "Won"]},
                {"in": [{"var": "account.industry"}, ["energy", "Retail"]]},
                {"!=": ["Negotiation", {"var": "$prior.stage"}]},
            ]
        },
        message="Say why.",
    )
    rollup = rule(
        "won_total",
        "account",
        "rollup",
        field="won_total",
        relation={"entity": "opportunity", "lookup": "account"},
        function="sum",
        of="amount",
        condition={"==": [{"var": "stage"}, "WON"]},
    )
    legacy = rule(
        "legacy_stage",
        "opportunity",
        "validation",
        # A value no longer offered (old records may hold it) is no label.
        condition={"or": [{"==": [{"var": "stage"}, "archived"]},
                          {"==": [{"var": "title"}, "Won"]}]},
        message="Archived deals are read-only.",
    )  # fmt: skip

    refused = sales.put("/meta/rules/won_needs_reason", json=labels)
    refused_rollup = sales.put("/meta/rules/won_total", json=rollup)
    accepted = sales.put("/meta/rules/legacy_stage", json=legacy)

    assert refused.status_code == 422
    assert problems(refused) == [
        ("won_needs_reason.condition.and[0].==[1]", "choice_label"),
        ("won_needs_reason.condition.and[1].in[1][1]", "choice_label"),
        ("won_needs_reason.condition.and[2].!=[0]", "choice_label"),
    ]
    assert refused.json["errors"][0]["message"] == (
        "'Won' is not a value of 'stage' but stands for its choice 'won': a "
        "condition compares a picklist's values, never its labels, so write 'won'."
    )
    assert problems(refused_rollup) == [("won_total.condition.==[1]", "choice_label")]
    assert accepted.status_code in (200, 201), accepted.json


def test_a_choice_s_label_within_an_operand_written_alone_is_named_there(
    sales: Api,
) -> None:
    negated = rule(
        "reason_unless_won",
        "opportunity",
        "validation",
        condition={"!": {"==": [{"var": "stage"}, "Won"]}},
        message="Say why.",
    )

    refused = sales.put("/meta/rules/reason_unless_won", json=negated)

    assert refused.status_code == 422
    assert problems(refused) == [
        ("reason_unless_won.condition.!.==[1]", "choice_label")
    ]


def test_a_key_of_a_list_item_named_like_a_picklist_is_no_choice_label(
    sales: Api,
) -> None:
    # Within some, map and the like a var reads a key of each item: "stage"
    # there is no field of the record, and "Won" is compared with no picklist.
    items = rule(
        "items_won",
        "opportunity",
        "validation",
        condition={"some": [[{"preserve": {"stage": "Won"}}],
                            {"==": [{"var": "stage"}, "Won"]}]},
        message="Won items.",
    )  # fmt: skip

    response = sales.put("/meta/rules/items_won", json=items)

    assert response.status_code in (200, 201), response.json


@pytest.mark.parametrize(
    ("address", "name", "takes"),
    [
        ("/meta/rules?entty=account", "entty", "entity"),
        ("/meta/rules?entity=account&Entity=opportunity", "Entity", "entity"),
        ("/meta/rules/loss_reason_required?dry_run=1", "dry_run", "none"),
        ("/meta/rules/loss_reason_required/history?limit=5", "limit", "none"),
        ("/meta/schemas/rule?kind=rule", "kind", "none"),
    ],
)
def test_a_rule_read_refuses_a_parameter_it_does_not_read(
    sales: Api, address: str, name: str, takes: str
) -> None:
    sales.put("/meta/rules/loss_reason_required", json=LOSS_REASON_REQUIRED)

    response = sales.get(address)

    path = "/api/v1" + address.partition("?")[0]
    message = f"GET {path} has no such parameter; it takes {takes}."
    assert response.status_code == 400, response.json
    assert response.json["detail"] == f"{name}: {message}"
    assert response.json["errors"] == [
        {"field": name, "code": "unknown_parameter", "message": message}
    ]


def test_a_rule_list_refuses_entity_given_twice(sales: Api) -> None:
    sales.put("/meta/rules/loss_reason_required", json=LOSS_REASON_REQUIRED)

    response = sales.get("/meta/rules?entity=account&entity=opportunity")

    assert response.status_code == 400, response.json
    assert response.json["errors"] == [
        {
            "field": "entity",
            "code": "invalid_parameter",
            "message": "give this parameter only once.",
        }
    ]


def test_a_choice_s_label_in_an_automation_s_action_is_refused(sales: Api) -> None:
    # An action's expression compares as a condition does: the stage of a deal
    # is stored as won, so "Won" there would never hold either.
    stamp = rule(
        "stamp_on_win",
        "opportunity",
        "automation",
        trigger="update",
        actions=[
            {
                "type": "set_field",
                "field": "next_step",
                "expression": {
                    "if": [{"==": [{"var": "stage"}, "Won"]}, "Thank", "Call"]
                },
            }
        ],
        else_actions=[
            {
                "type": "create_record",
                "entity": "task",
                "lookup": "opportunity",
                "values": {
                    "subject": "Follow up",
                    "done": {"in": [{"var": "stage"}, ["lost", "Negotiation"]]},
                },
            }
        ],
        condition={"==": [{"var": "touches"}, 1]},
    )

    refused = sales.put("/meta/rules/stamp_on_win", json=stamp)

    assert refused.status_code == 422, refused.json
    assert problems(refused) == [
        ("stamp_on_win.actions[0].expression.if[0].==[1]", "choice_label"),
        ("stamp_on_win.else_actions[0].values.done.in[1][1]", "choice_label"),
    ]
    assert refused.json["errors"][1]["message"] == (
        "'Negotiation' is not a value of 'stage' but stands for its choice "
        "'negotiation': a condition compares a picklist's values, never its "
        "labels, so write 'negotiation'."
    )


def test_a_choice_s_label_in_a_section_or_a_sharing_rule_is_refused(
    sales: Api,
) -> None:
    # A section's visible_if and a sharing rule's condition compare as a rule's
    # condition does: "Won" would never show the section nor share a deal.
    section = {
        "label": "Hand-over",
        "visible_if": {"==": [{"var": "stage"}, "Won"]},
        "items": [{"field": "next_step"}],
    }
    layout = {"form": {"tabs": [{"label": "Main", "sections": [section]}]}}
    sharing = {
        "name": "open_deals",
        "entity": "opportunity",
        "access": "read",
        "condition": {"in": [{"var": "stage"}, ["Prospecting", "negotiation"]]},
    }
    role = {"kind": "role", "name": "scout", "label": "Scout", "entities": {}}

    refused_layout = sales.put("/meta/layouts/opportunity", json=layout)
    refused_role = sales.put("/meta/roles/scout", json={**role, "sharing": [sharing]})

    assert refused_layout.status_code == 422, refused_layout.json
    assert problems(refused_layout) == [
        ("form.tabs[0].sections[0].visible_if.==[1]", "choice_label")
    ]
    assert refused_role.status_code == 422, refused_role.json
    assert problems(refused_role) == [
        ("scout.sharing[0].condition.in[1][0]", "choice_label")
    ]
    assert refused_role.json["errors"][0]["message"] == (
        "'Prospecting' is not a value of 'stage' but stands for its choice "
        "'prospecting': a condition compares a picklist's values, never its "
        "labels, so write 'prospecting'."
    )
    assert sales.get("/meta/roles/scout").status_code == 404


def test_a_layout_saved_with_a_choice_s_label_is_taken_back_as_it_is(
    sales: Api, platform: Platform, database_url: str, admin_token: str
) -> None:
    # A layout stored before labels were refused comes back in every export.
    section = {"label": "Hand-over", "items": [{"field": "next_step"}]}
    layout = {
        "kind": "layout",
        "entity": "opportunity",
        "form": {"tabs": [{"label": "Main", "sections": [section]}]},
    }
    assert sales.put("/meta/layouts/opportunity", json=layout).status_code == 201
    section["visible_if"] = {"==": [{"var": "stage"}, "Won"]}
    with platform.engine.begin() as connection:
        connection.execute(
            meta_documents.update()
            .where(meta_documents.c.kind == "layout")
            .where(meta_documents.c.name == "opportunity")
            .values(body=layout)
        )
    later = create_app({"database_url": database_url})
    try:
        reopened = Api(later.test_client(), admin_token)

        sent_again = reopened.put("/meta/layouts/opportunity", json=layout)
        section["label"] = "Hand over"
        changed = reopened.put("/meta/layouts/opportunity", json=layout)
    finally:
        later.extensions["tailorcrm"].engine.dispose()

    assert sent_again.status_code == 200, sent_again.json
    assert sent_again.json["applied"] is False
    assert changed.status_code == 422, changed.json
    assert problems(changed) == [
        ("form.tabs[0].sections[0].visible_if.==[1]", "choice_label")
    ]


def test_a_choice_s_label_compared_with_prior_or_val_is_refused(sales: Api) -> None:
    # {"prior": "stage"} and {"val": "stage"} read the stage as {"var": ...}
    # does: its value, never its label.
    labels = rule(
        "reopened_needs_reason",
        "opportunity",
        "validation",
        condition={
            "and": [
                {"==": [{"prior": "stage"}, "Won"]},
                {"in": [{"val": ["stage"]}, ["Negotiation", "lost"]]},
                {"!=": [{"val": "stage"}, "won"]},
            ]
        },
        message="Say why.",
    )

    refused = sales.put("/meta/rules/reopened_needs_reason", json=labels)

    assert refused.status_code == 422, refused.json
    assert problems(refused) == [
        ("reopened_needs_reason.condition.and[0].==[1]", "choice_label"),
        ("reopened_needs_reason.condition.and[1].in[1][0]", "choice_label"),
    ]
