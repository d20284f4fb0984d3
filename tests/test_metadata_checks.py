"""Entity documents: the JSON Schema and the semantic checks, with exact paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tailorcrm.metadata import check_entity_document
from tests.conftest import OPPORTUNITY


def problems(document: Any, known: tuple[str, ...] = ("account",)) -> set[tuple]:
    found = check_entity_document(document, known_entities=known)
    return {(problem.field, problem.code) for problem in found}


def with_field(**spec: Any) -> dict[str, Any]:
    document = copy.deepcopy(OPPORTUNITY)
    document["fields"].append({"name": "extra", "label": "Extra", **spec})
    return document


def test_issue_example_is_accepted() -> None:
    assert problems(OPPORTUNITY) == set()


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Title", "invalid_name"),
        ("1st", "invalid_name"),
        ("with-dash", "invalid_name"),
        ("a" * 49, "name_too_long"),
        ("select", "reserved_name"),
        ("order", "reserved_name"),
        ("user", "reserved_name"),
        ("vacuum", "reserved_name"),
        ("limit", "reserved_name"),
        ("created_at", "reserved_name"),
        ("owner_id", "reserved_name"),
        ("version", "reserved_name"),
    ],
)
def test_field_names_are_checked(name: str, code: str) -> None:
    document = copy.deepcopy(OPPORTUNITY)
    document["fields"][3]["name"] = name

    assert ("fields[3].name", code) in problems(document)


def test_a_48_character_name_is_accepted() -> None:
    document = copy.deepcopy(OPPORTUNITY)
    document["fields"][3]["name"] = "a" * 48

    assert problems(document) == set()


@pytest.mark.parametrize("name", ["Opportunity", "select", "meta", "tc_user"])
def test_entity_names_are_checked(name: str) -> None:
    document = copy.deepcopy(OPPORTUNITY)
    document["name"] = name

    assert {field for field, _ in problems(document)} == {"name"}


def test_every_problem_is_reported_at_once() -> None:
    document = copy.deepcopy(OPPORTUNITY)
    document["fields"][0]["name"] = "Title"
    document["fields"][1]["target"] = "nowhere"
    document["fields"][2]["options"].append({"value": "won", "label": "Won again"})
    document["fields"][2]["default"] = "lost"
    document["fields"][4]["name"] = "amount"

    assert problems(document) == {
        ("fields[0].name", "invalid_name"),
        ("fields[1].target", "unknown_entity"),
        ("fields[2].options[2].value", "duplicate_value"),
        ("fields[2].default", "invalid_default"),
        ("fields[4].name", "duplicate_name"),
        ("display_field", "unknown_field"),
    }


def test_lookup_target_must_exist() -> None:
    assert ("fields[1].target", "unknown_entity") in problems(OPPORTUNITY, known=())


def test_a_lookup_may_target_its_own_entity() -> None:
    document = with_field(type="lookup", target="opportunity")

    assert problems(document) == set()


@pytest.mark.parametrize(
    ("spec", "path", "code"),
    [
        ({"type": "integer", "default": "5"}, "fields[6].default", "invalid_default"),
        ({"type": "integer", "default": 2.5}, "fields[6].default", "invalid_default"),
        ({"type": "boolean", "default": "no"}, "fields[6].default", "invalid_default"),
        (
            {"type": "date", "default": "2026-02-30"},
            "fields[6].default",
            "invalid_default",
        ),
        (
            {"type": "text", "max_length": 3, "default": "long"},
            "fields[6].default",
            "invalid_default",
        ),
        (
            {"type": "currency", "scale": 2, "default": 1.234},
            "fields[6].default",
            "invalid_default",
        ),
        (
            {"type": "integer", "min": 5, "default": 1},
            "fields[6].default",
            "invalid_default",
        ),
        (
            {"type": "email", "default": "nobody"},
            "fields[6].default",
            "invalid_default",
        ),
        (
            {"type": "lookup", "target": "account", "default": 1},
            "fields[6].default",
            "not_applicable",
        ),
        (
            {"type": "text", "options": [{"value": "a", "label": "A"}]},
            "fields[6].options",
            "not_applicable",
        ),
        ({"type": "text", "precision": 5}, "fields[6].precision", "not_applicable"),
        (
            {"type": "integer", "max_length": 5},
            "fields[6].max_length",
            "not_applicable",
        ),
        ({"type": "text", "target": "account"}, "fields[6].target", "not_applicable"),
        ({"type": "boolean", "unique": True}, "fields[6].unique", "not_applicable"),
        (
            {
                "type": "lookup",
                "target": "account",
                "required": True,
                "on_delete": "set_null",
            },
            "fields[6].on_delete",
            "not_applicable",
        ),
        (
            {"type": "date", "external_id": True},
            "fields[6].external_id",
            "not_applicable",
        ),
        ({"type": "integer", "min": 5, "max": 1}, "fields[6].min", "invalid_range"),
        (
            {"type": "decimal", "precision": 4, "scale": 6},
            "fields[6].scale",
            "invalid_range",
        ),
        ({"type": "picklist"}, "fields[6]", "schema"),
        ({"type": "lookup"}, "fields[6]", "schema"),
        ({"type": "money"}, "fields[6].type", "schema"),
        ({"type": "text", "requried": True}, "fields[6]", "schema"),
        ({"type": "currency", "precision": 30}, "fields[6].precision", "schema"),
    ],
)
def test_field_options_are_checked(spec: dict[str, Any], path: str, code: str) -> None:
    assert (path, code) in problems(with_field(**spec))


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "integer", "default": 5, "min": 0, "max": 10},
        {"type": "boolean", "default": False},
        {"type": "date", "default": "2026-02-28"},
        {"type": "datetime", "default": "2026-02-28T10:00:00Z"},
        {"type": "currency", "default": 12.5},
        {"type": "percent", "default": "12.50"},
        {
            "type": "multi_picklist",
            "default": ["a"],
            "options": [{"value": "a", "label": "A"}],
        },
        {"type": "url", "default": "https://example.com/x"},
        {"type": "autonumber", "prefix": "OPP-", "digits": 5},
    ],
)
def test_valid_defaults_and_options_are_accepted(spec: dict[str, Any]) -> None:
    assert problems(with_field(**spec)) == set()


def test_at_most_500_fields() -> None:
    document = {
        "name": "wide",
        "label": "Wide",
        "fields": [
            {"name": f"f{i}", "type": "text", "label": f"F{i}"} for i in range(501)
        ],
    }

    assert problems(document) == {("fields", "too_many_fields")}
    document["fields"].pop()
    assert problems(document) == set()


def test_a_misspelt_type_is_told_once_not_with_what_such_a_field_takes() -> None:
    # "A multipicklist field takes no 'options'" came beside the real problem.
    document = with_field(
        type="multipicklist", options=[{"value": "a", "label": "A"}], unique=True
    )
    index = len(document["fields"]) - 1

    assert problems(document) == {(f"fields[{index}].type", "schema")}


def test_not_an_object_is_refused() -> None:
    assert problems([1, 2]) == {("$", "schema")}
    assert ("$", "schema") in problems({"name": "x"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"type": "integer", "max_length": 5},
            "An integer field takes no 'max_length'.",
        ),
        (
            {"type": "autonumber", "default": "x"},
            "An autonumber field takes no default.",
        ),
        (
            {"type": "email", "unique": True, "precision": 3},
            "An email field takes no 'precision'.",
        ),
        ({"type": "text", "precision": 5}, "A text field takes no 'precision'."),
    ],
)
def test_a_field_option_refusal_reads_as_english(
    spec: dict[str, Any], message: str
) -> None:
    found = check_entity_document(with_field(**spec), known_entities=("account",))

    assert message in [problem.message for problem in found]
