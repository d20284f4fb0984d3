"""Validation asks field state only what can make a problem, and gives the problems
that each field's whole state gives.

:meth:`RecordRules.validate` does not work out each field's state (visible,
required, read-only) on every save: it evaluates a ``required_if`` only for a blank
field no validation rule refused, visibility only when that is true, and a
``readonly_if`` only for a field the caller changes on an update. These tests hold
it to :meth:`RecordRules.field_state`, record after record.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailorcrm.errors import Problem
from tailorcrm.platform import Platform
from tailorcrm.platform.rules import RecordRules, user_data
from tailorcrm.rules_engine import is_blank, truthy
from tests.rules_support import rule

GAUGE = {
    "name": "gauge",
    "label": "Gauge",
    "display_field": "note",
    "fields": [
        {
            "name": "stage",
            "type": "picklist",
            "label": "Stage",
            "options": [{"value": v, "label": v.upper()} for v in ("a", "b", "c")],
        },
        {"name": "note", "type": "text", "label": "Note"},
        {"name": "level", "type": "integer", "label": "Level"},
        {"name": "memo", "type": "text", "label": "Memo"},
        {"name": "flag", "type": "boolean", "label": "Flag"},
        {"name": "tag", "type": "text", "label": "Tag"},
    ],
}


def _var(name: str) -> dict[str, Any]:
    return {"var": name}


RULES = [
    rule(
        "note_state",
        "gauge",
        "field_state",
        field="note",
        visible_if={"==": [_var("stage"), "a"]},
        required_if={">": [_var("level"), 2]},
    ),
    rule(
        "level_state",
        "gauge",
        "field_state",
        field="level",
        readonly_if={"==": [_var("stage"), "c"]},
    ),
    # Division by zero gives null, which neither requires nor hides the field;
    # a blank tag makes visible_if null, which shows it.
    rule(
        "memo_state",
        "gauge",
        "field_state",
        field="memo",
        visible_if=_var("tag"),
        required_if={"/": [1, _var("level")]},
    ),
    rule(
        "flag_state",
        "gauge",
        "field_state",
        field="flag",
        visible_if={"!": {"is_blank": _var("tag")}},
        required_if={"in": [_var("stage"), ["b", "c"]]},
        readonly_if={">=": [_var("level"), 5]},
    ),
    rule(
        "tag_state",
        "gauge",
        "field_state",
        field="tag",
        required_if={"==": [_var("stage"), "b"]},
        readonly_if={"==": [_var("flag"), True]},
    ),
    rule(
        "note_for_b",
        "gauge",
        "validation",
        field="note",
        condition={"and": [{"==": [_var("stage"), "b"]}, {"is_blank": _var("note")}]},
        message="A gauge at stage B needs a note.",
    ),
]

VALUES = {
    "stage": st.sampled_from([None, "a", "b", "c"]),
    "note": st.sampled_from([None, "", "checked"]),
    "level": st.sampled_from([None, 0, 1, 3, 5, 8]),
    "memo": st.sampled_from([None, "", "kept"]),
    "flag": st.sampled_from([None, True, False]),
    "tag": st.sampled_from([None, "", "north"]),
}
RECORDS = st.fixed_dictionaries(VALUES)


def expected_problems(
    runner: RecordRules,
    data: dict[str, Any],
    *,
    prior: dict[str, Any] | None,
    written: set[str],
) -> list[Problem]:
    """The problems each field's whole state gives, as validation used to find
    them."""
    problems = [
        Problem(validation.field, "rule", validation.message)
        for validation in runner.rules.validations
        if truthy(validation.condition(data))
    ]
    refused = {problem.field for problem in problems}
    for name in runner.rules.field_states:
        # A field locked on the stored record is not required (no one can fill
        # it), and read-only only refuses a change of it.
        state = runner.field_state(name, data, prior=prior)
        label = runner.entity.fields[name]["label"]
        if state.required and name not in refused and is_blank(data.get(name)):
            problems.append(Problem(name, "required", f"{label} is required here."))
        if state.readonly and name in written:
            problems.append(
                Problem(name, "read_only", f"{label} cannot be changed now.")
            )
    return problems


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    values=RECORDS,
    stored=st.none() | RECORDS,
    written=st.sets(st.sampled_from(sorted(VALUES))),
)
def test_validation_gives_the_problems_of_each_field_s_whole_state(
    platform: Platform,
    values: dict[str, Any],
    stored: dict[str, Any] | None,
    written: set[str],
) -> None:
    with platform.reading() as (_, catalog):
        defined = "gauge" in catalog.entities
    if not defined:
        platform.store.apply([("", GAUGE), *(("", r) for r in RULES)], actor="test")
    with platform.reading() as (connection, catalog):
        runner = RecordRules(
            connection,
            catalog,
            catalog.entity("gauge"),
            user=user_data(1, "tester", False),
            now=dt.datetime(2026, 12, 5, tzinfo=dt.UTC),
        )
        data = runner.data(values)
        prior = None if stored is None else runner.data(stored)

        found = runner.validate(data, prior=prior, written=written)

        assert found == expected_problems(runner, data, prior=prior, written=written)
