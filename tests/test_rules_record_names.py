"""On a save, a record is read for conditions with the names the rules can read.

Building the record with every field costs a save with rules more than the
conditions themselves, so the record service reads only what the entity's rules
and section conditions name. A rule that reads names computed while it runs, or
the record before the change as a whole (``{"var": "$prior"}``), gets every name;
forms always see every field. These tests pin both sides on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tailorcrm.platform import Platform
from tailorcrm.platform.rules import RecordRules
from tests.conftest import Api
from tests.rules_support import ACCOUNT, OPPORTUNITY, create, define, problems, rule


@pytest.fixture
def crm(api: Api) -> Api:
    define(api, ACCOUNT, OPPORTUNITY)
    return api


@contextmanager
def runner(platform: Platform) -> Iterator[RecordRules]:
    """The rules of Opportunity as a save applies them."""
    with platform.reading() as (connection, catalog):
        yield RecordRules(
            connection,
            catalog,
            catalog.entity("opportunity"),
            user={"id": None, "username": "system", "roles": []},
            now=dt.datetime.now(dt.UTC),
        )


STAGE_NEEDS_STEP = rule(
    "stage_needs_step",
    "opportunity",
    "validation",
    condition={
        "and": [
            {"==": [{"var": "stage"}, "won"]},
            {"is_blank": {"var": "next_step"}},
        ]
    },
    message="Give the next step of a won deal.",
    field="next_step",
)


def test_a_save_reads_only_the_names_its_rules_name(
    crm: Api, platform: Platform
) -> None:
    define(crm, STAGE_NEEDS_STEP)
    values = {"title": "Harbour kiosks", "stage": "won", "amount": 12, "touches": 3}
    with runner(platform) as rules:
        assert set(rules.record(values)) == {"stage", "next_step"}
        whole = rules.record(values, whole=True)
    assert {"title", "amount", "touches", "id", "created_at"} <= set(whole)
    assert whole["title"] == "Harbour kiosks"
    # The rule still judges every path as before.
    refused = crm.post("/opportunity", json={"title": "Pier lamps", "stage": "won"})
    assert refused.status_code == 422
    assert ("next_step", "rule") in problems(refused)


def test_field_state_fields_are_read_for_their_blankness(
    crm: Api, platform: Platform
) -> None:
    define(
        crm,
        rule(
            "step_when_negotiating",
            "opportunity",
            "field_state",
            field="next_step",
            required_if={"==": [{"var": "stage"}, "negotiation"]},
        ),
    )
    with runner(platform) as rules:
        assert set(rules.record({})) == {"stage", "next_step"}
    refused = crm.post(
        "/opportunity", json={"title": "Quay cranes", "stage": "negotiation"}
    )
    assert ("next_step", "required") in problems(refused)
    saved = create(
        crm, "opportunity", title="Quay cranes", stage="negotiation", next_step="Call"
    )
    assert saved["next_step"] == "Call"


def test_names_computed_while_a_rule_runs_read_every_field(
    crm: Api, platform: Platform
) -> None:
    # The field a rule reads is chosen by the record's stage: it cannot be known
    # before the rule runs.
    define(
        crm,
        rule(
            "chosen_field_blank",
            "opportunity",
            "validation",
            condition={
                "is_blank": {
                    "var": {
                        "if": [{"==": [{"var": "stage"}, "won"]}, "amount", "title"]
                    }
                }
            },
            message="The chosen field is blank.",
        ),
    )
    with runner(platform) as rules:
        assert {"title", "amount", "touches"} <= set(rules.record({}))
    refused = crm.post("/opportunity", json={"title": "Dock gates", "stage": "won"})
    assert refused.status_code == 422
    create(crm, "opportunity", title="Dock gates", stage="won", amount=5)


def test_the_whole_record_before_a_change_reads_every_field(
    crm: Api, platform: Platform
) -> None:
    define(
        crm,
        rule(
            "note_prior",
            "opportunity",
            "automation",
            trigger=["update"],
            condition={"!!": {"var": "$prior"}},
            actions=[{"type": "set_field", "field": "loss_reason", "value": "seen"}],
        ),
    )
    with runner(platform) as rules:
        assert {"title", "amount", "touches"} <= set(rules.record({}))
    saved = create(crm, "opportunity", title="Ferry seats")
    changed = crm.patch(f"/opportunity/{saved['id']}", json={"touches": 2})
    assert changed.status_code == 200, changed.json
    assert changed.json["loss_reason"] == "seen"


def test_forms_see_every_field(crm: Api, platform: Platform) -> None:
    define(crm, STAGE_NEEDS_STEP)
    with runner(platform) as rules:
        state = rules.form_state(
            {"title": "Harbour kiosks", "stage": "won", "touches": 4}, stored=None
        )
    assert state.record["title"] == "Harbour kiosks"
    assert state.record["touches"] == 4
    assert state.fields["next_step"].visible


@pytest.mark.parametrize(
    "condition",
    [
        {"exists": "stage"},
        {"exists": ["stage"]},
        {"!": {"missing_some": [1, "stage"]}},
        {"some": [[1], {"==": [{"val": [[2], "stage"]}, "lost"]}]},
        {"try": [{"throw": "boom"}, {"==": [{"val": [[2], "stage"]}, "lost"]}]},
        {"==": [{"var": "stage"}, "lost"]},
    ],
    ids=["exists", "exists-list", "missing_some", "val-scope", "try-val", "var"],
)
def test_a_condition_answers_the_same_whatever_other_rules_name(
    crm: Api, condition: Any
) -> None:
    # Only this rule reads the stage: the record it sees must still hold it.
    define(
        crm,
        rule(
            "refuse_lost",
            "opportunity",
            "validation",
            condition=condition,
            message="refused by the rule",
        ),
    )
    refused = crm.post("/opportunity", json={"title": "Tug", "stage": "lost"})
    assert refused.status_code == 422, refused.json
    assert refused.json["errors"][0]["message"] == "refused by the rule"
