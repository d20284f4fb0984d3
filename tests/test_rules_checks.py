"""Static checks of conditions: every problem, with its code and JSON path."""

from __future__ import annotations

from typing import Any

import pytest

from tailorcrm.rules_engine import (
    MAX_DEPTH,
    ConditionError,
    ConditionProblem,
    check_condition,
    compile_condition,
    field_names,
    rename_fields,
)

FIELDS = {
    "name": "text",
    "email": "email",
    "stage": "picklist",
    "loss_reason": "textarea",
    "amount": "currency",
    "quantity": "integer",
    "close_date": "date",
    "signed_at": "datetime",
    "won": "boolean",
    "tags": "multi_picklist",
    "account": "lookup",
    "owner": "lookup",
    "number": "autonumber",
}
RELATIONS = {
    "account": {"name": "text", "industry": "picklist", "revenue": "currency",
                "founded": "date", "parent": "lookup"},
}  # fmt: skip


def problems(condition: Any, *, allow_prior: bool = False) -> list[tuple[str, str]]:
    found = check_condition(
        condition, fields=FIELDS, relations=RELATIONS, allow_prior=allow_prior
    )
    return [(problem.path, problem.code) for problem in found]


@pytest.mark.parametrize(
    "condition",
    [
        {"and": [{"==": [{"var": "stage"}, "won"]}, {">": [{"var": "amount"}, 1000]}]},
        {"==": [{"var": "account.industry"}, "Retail"]},
        {">": [{"var": "account.revenue"}, {"*": [{"var": "amount"}, 10]}]},
        {"in": ["manager", {"var": "$user.roles"}]},
        {"==": [{"var": "owner"}, {"var": "$user.id"}]},
        {"<": [{"var": "close_date"}, {"date_add": [{"today": []}, 30, "days"]}]},
        {"<": [{"var": "signed_at"}, {"now": []}]},
        {">": [{"date_diff": [{"var": "account.founded"}, {"today": []}, "years"]}, 5]},
        {"date_add": ["2024-05-31", {"var": "quantity"}, "months"]},
        {"<": [{"var": "close_date"}, "2024-06-01"]},
        {"matches": [{"lower": {"var": "email"}}, "^[^@]+@example\\.com$"]},
        {"starts_with": [{"var": "number"}, "INV-"]},
        {"contains": [{"var": "tags"}, "vip"]},
        {">": [{"length": {"var": "tags"}}, 3]},
        {
            "and": [
                {"==": [{"var": "stage"}, "lost"]},
                {"is_blank": {"var": "loss_reason"}},
            ]
        },
        {"round": [{"/": [{"var": "amount"}, {"var": "quantity"}]}, 2]},
        {"coalesce": [{"var": "account.name"}, {"var": "name"}, "unnamed"]},
        {"+": [{"var": "amount"}, "10.5", {"var": "won"}]},
        {"some": [{"var": "tags"}, {"==": [{"var": ""}, "vip"]}]},
        {"all": [{"var": "tags"}, {"lower": {"var": "whatever"}}]},
        {"missing": ["name", "account.industry"]},
        {"missing": []},
        {"missing_some": [1, ["email", "name"]]},
        {"if": [{"var": "won"}, {"var": "amount"}, 0]},
        {"==": [{"val": ["account", "industry"]}, "Retail"]},
        {"var": ""},
        True,
        None,
        "text",
        [1, {"var": "name"}],
    ],
)
def test_a_sound_condition_has_no_problems(condition: Any) -> None:
    assert problems(condition) == []


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # Unknown operators, fields and relations.
        ({"foo": [1]}, [("", "unknown_operator")]),
        ({"and": [True, {"equals": [1, 1]}]}, [("and[1]", "unknown_operator")]),
        ({"and": [{"==": [{"var": "stage"}, "won"]}, {">": [{"var": "amont"}, 1]}]},
         [("and[1].>[0]", "unknown_field")]),
        ({"var": "account.sector"}, [("", "unknown_field")]),
        ({"var": "stage.label"}, [("", "unknown_relation")]),
        ({"var": "owner.name"}, [("", "unknown_relation")]),
        ({"var": "account.parent.name"}, [("", "unknown_relation")]),
        ({"var": "$user.phone.mobile"}, [("", "unknown_field")]),
        ({"var": "$account"}, [("", "unknown_field")]),
        ({"val": "account.industry"}, [("", "unknown_field")]),
        ({"missing": ["name", "nmae"]}, [("missing[1]", "unknown_field")]),
        ({"missing": [["name", "nmae"]]}, [("missing[0][1]", "unknown_field")]),
        ({"missing_some": [1, ["email", "phone"]]},
         [("missing_some[1][1]", "unknown_field")]),
        ({"!": {"var": "nothing"}}, [("!", "unknown_field")]),
        # Operands of the wrong kind.
        ({"date_add": [{"var": "name"}, 1, "days"]}, [("date_add[0]", "wrong_type")]),
        ({"date_add": [{"var": "close_date"}, {"var": "name"}, "days"]},
         [("date_add[1]", "wrong_type")]),
        ({"date_add": ["soon", 1, "days"]}, [("date_add[0]", "wrong_type")]),
        ({"date_diff": [{"var": "close_date"}, {"var": "amount"}]},
         [("date_diff[1]", "wrong_type")]),
        ({"lower": {"var": "amount"}}, [("lower", "wrong_type")]),
        ({"upper": [{"var": "tags"}]}, [("upper[0]", "wrong_type")]),
        ({"lower": 5}, [("lower", "wrong_type")]),
        ({"matches": [{"var": "quantity"}, "^1"]}, [("matches[0]", "wrong_type")]),
        ({"starts_with": [{"var": "won"}, "t"]}, [("starts_with[0]", "wrong_type")]),
        ({"contains": [{"var": "amount"}, 5]}, [("contains[0]", "wrong_type")]),
        ({"length": {"var": "close_date"}}, [("length", "wrong_type")]),
        ({"round": [{"var": "name"}, 2]}, [("round[0]", "wrong_type")]),
        ({"+": [{"var": "close_date"}, 1]}, [("+[0]", "wrong_type")]),
        ({"*": [{"var": "amount"}, {"var": "stage"}]}, [("*[1]", "wrong_type")]),
        ({"-": [{"var": "amount"}, "ten"]}, [("-[1]", "wrong_type")]),
        ({"/": [{"var": "amount"}, {"today": []}]}, [("/[1]", "wrong_type")]),
        ({"<": [{"var": "close_date"}, 5]}, [("", "wrong_type")]),
        ({">=": [{"var": "amount"}, {"today": []}]}, [("", "wrong_type")]),
        ({"lower": {"date_add": [{"var": "close_date"}, 1, "days"]}},
         [("lower", "wrong_type")]),
        ({"date_add": [{"lower": {"var": "name"}}, 1, "days"]},
         [("date_add[0]", "wrong_type")]),
        ({"lower": {"if": [{"var": "won"}, {"var": "amount"}, 0]}},
         [("lower", "wrong_type")]),
        # Shapes the compiler refuses.
        ({"and": 5}, [("", "invalid_arguments")]),
        ({"%": [1]}, [("", "invalid_arguments")]),
        ({"==": [1]}, [("", "invalid_arguments")]),
        ({"date_add": ["2024-05-31", 1]}, [("", "invalid_arguments")]),
        ({"today": [1]}, [("", "invalid_arguments")]),
        ({"map": [None, {"var": ""}]}, [("map[0]", "invalid_arguments")]),
        ({"filter": [{"var": "tags"}, None]}, [("filter[1]", "invalid_arguments")]),
        ({"date_add": ["2024-05-31", 1, "weeks"]}, [("date_add[2]", "invalid_unit")]),
        ({"date_diff": ["2024-05-31", "2024-06-30", "hours"]},
         [("date_diff[2]", "invalid_unit")]),
        ({"matches": [{"var": "name"}, "(a)\\1"]}, [("matches[1]", "invalid_pattern")]),
        ({"matches": [{"var": "name"}, 5]}, [("matches[1]", "invalid_pattern")]),
        ({"or": [False, {"matches": [{"var": "name"}, "(?=x)"]}]},
         [("or[1].matches[1]", "invalid_pattern")]),
        # Prior values where there is none.
        ({"changed": "stage"}, [("", "prior_not_available")]),
        ({"==": [{"prior": "stage"}, "won"]}, [("==[0]", "prior_not_available")]),
        ({"==": [{"var": "$prior.stage"}, "won"]}, [("==[0]", "prior_not_available")]),
    ],
)  # fmt: skip
def test_problems_name_their_path_and_code(
    condition: Any, expected: list[tuple[str, str]]
) -> None:
    assert problems(condition) == expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"lower": ["a", "b"]}, "lower takes 1 operand, not 2."),
        ({"%": [1]}, "% takes at least 2 operands, not 1."),
        ({"date_add": ["2024-05-31", 1]}, "date_add takes 3 operands, not 2."),
    ],
)
def test_a_wrong_number_of_operands_reads_alike_when_checked_and_compiled(
    condition: Any, expected: str
) -> None:
    assert checked_and_compiled(condition) == ([expected], expected)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"not": {"var": "amount"}}, "There is no operator 'not'; write '!'."),
        ({"=": [{"var": "stage"}, "won"]}, "There is no operator '='; write '=='."),
        ({"<>": [{"var": "stage"}, "won"]}, "There is no operator '<>'; write '!='."),
        ({"equals": [1, 1]}, "There is no operator 'equals'."),
        ({"AND": [True, True]}, "There is no operator 'AND'; write 'and'."),
        ({"If": [True, 1, 2]}, "There is no operator 'If'; write 'if'."),
    ],
)
def test_an_operator_spelt_as_another_language_does_names_the_one_meant(
    condition: Any, expected: str
) -> None:
    # An admin writing "not" as in English (or SQL) is told to write "!", in a
    # rule document and in a list's filter alike.
    assert checked_and_compiled(condition) == ([expected], expected)


def checked_and_compiled(condition: Any) -> tuple[list[str], str]:
    """What checking ``condition`` finds, and why compiling it fails."""
    found = check_condition(condition, fields=FIELDS, relations=RELATIONS)
    with pytest.raises(ConditionError) as compiled:
        compile_condition(condition)
    return [problem.message for problem in found], str(compiled.value)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"changed": "stage"}, []),
        ({"and": [{"changed": "stage"}, {"==": [{"prior": "stage"}, "won"]}]}, []),
        ({"==": [{"var": "$prior.amount"}, {"var": "amount"}]}, []),
        ({"changed": "stge"}, [("", "unknown_field")]),
        ({"prior": "account.industry"}, [("", "unknown_field")]),
        ({"var": "$prior.nothing"}, [("", "unknown_field")]),
        ({"lower": {"prior": "amount"}}, [("lower", "wrong_type")]),
    ],
)
def test_prior_values_on_updates(
    condition: Any, expected: list[tuple[str, str]]
) -> None:
    assert problems(condition, allow_prior=True) == expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # A lookup reads as the related record in a rule, which equals no value:
        # these would never hold. Its id is account.id.
        ({"==": [{"var": "account"}, 5]}, [("==[0]", "wrong_type")]),
        ({"!=": [7, {"var": "account"}]}, [("!=[1]", "wrong_type")]),
        ({"===": [{"var": ["account", 0]}, 5]}, [("===[0]", "wrong_type")]),
        ({"<": [{"var": "account"}, 5]}, [("<[0]", "wrong_type")]),
        ({"in": [{"var": "account"}, [1, 2]]}, [("in[0]", "wrong_type")]),
        ({"==": [{"var": "account"}, {"var": "$user.id"}]}, [("==[0]", "wrong_type")]),
        ({"==": [{"var": "$prior.account"}, 5]}, [("==[0]", "wrong_type")]),
        ({"==": [{"prior": "account"}, 5]}, [("==[0]", "wrong_type")]),
        ({"==": [{"val": "account"}, 5]}, [("==[0]", "wrong_type")]),
        ({"==": [{"val": ["account", "id"]}, 5]}, []),
        ({"==": [{"var": "account.id"}, 5]}, []),
        ({"in": [{"var": "account.id"}, [1, 2]]}, []),
        ({"==": [{"var": "$prior.account.id"}, {"var": "account.id"}]}, []),
        ({"==": [{"var": "$prior.account.industry"}, "energy"]}, []),
        # Whether it is blank works, and so does its truthiness.
        ({"==": [{"var": "account"}, None]}, []),
        ({"!==": [None, {"var": "account"}]}, []),
        ({"is_blank": {"var": "account"}}, []),
        ({"!": {"var": "account"}}, []),
        # A lookup without a related entity to read is compared as its id.
        ({"==": [{"var": "owner"}, 5]}, []),
    ],
)
def test_a_lookup_that_reads_as_a_record_is_not_compared_with_a_value(
    condition: Any, expected: list[tuple[str, str]]
) -> None:
    # An entity's shape names its system columns too, the id among them.
    relations = {"account": {**RELATIONS["account"], "id": "integer"}}
    found = check_condition(
        condition, fields=FIELDS, relations=relations, allow_prior=True
    )

    assert [(problem.path, problem.code) for problem in found] == expected


def test_a_lookup_reads_as_its_id_where_the_caller_says_so() -> None:
    # A roll-up's condition runs on the child's row, where a lookup is its id.
    found = check_condition(
        {"==": [{"var": "account"}, 5]},
        fields=FIELDS,
        relations=RELATIONS,
        lookup_ids=True,
    )

    assert found == []


def test_every_problem_is_reported_at_once() -> None:
    condition = {
        "and": [
            {"==": [{"var": "stge"}, "won"]},
            {"lower": {"var": "amount"}},
            {"bogus": []},
            {"changed": "stage"},
            {"date_add": [{"var": "close_date"}, 1, "fortnights"]},
        ]
    }

    assert problems(condition) == [
        ("and[0].==[0]", "unknown_field"),
        ("and[1].lower", "wrong_type"),
        ("and[2]", "unknown_operator"),
        ("and[3]", "prior_not_available"),
        ("and[4].date_add[2]", "invalid_unit"),
    ]


def test_depth_above_32_is_refused() -> None:
    deep: Any = {"var": "won"}  # an operation: one level
    for _ in range(MAX_DEPTH - 1):
        deep = {"!": [deep]}
    deeper = {"!": [deep]}

    assert problems(deep) == []
    assert problems(deeper) == [(".".join(["![0]"] * MAX_DEPTH), "too_deep")]
    assert problems(
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
    ) == [("[0]" * MAX_DEPTH, "too_deep")]


def test_size_above_10_kb_is_refused() -> None:
    names = ["x" * 20] * 480
    small = {"in": [{"var": "name"}, names[:400]]}
    large = {"in": [{"var": "name"}, names]}

    assert problems(small) == []
    assert problems(large) == [("", "too_large")]


def test_a_broken_character_is_a_problem_not_a_crash() -> None:
    # "\ud800" is half of a UTF-16 pair: JSON can escape it, UTF-8 cannot hold it.
    broken = {"==": [{"var": "name"}, "\ud800"]}

    assert problems(broken) == [("", "invalid_text")]
    with pytest.raises(ConditionError) as excinfo:
        compile_condition(broken)
    assert excinfo.value.code == "invalid_text"


def test_problems_read_well() -> None:
    (problem,) = check_condition(
        {"and": [True, {">": [{"var": "amont"}, 1]}]}, fields=FIELDS
    )

    assert problem == ConditionProblem(
        "and[1].>[0]", "unknown_field", "There is no field 'amont'."
    )
    assert str(problem) == "and[1].>[0]: There is no field 'amont'."
    assert problem.as_dict() == {
        "path": "and[1].>[0]",
        "code": "unknown_field",
        "message": "There is no field 'amont'.",
    }


def test_wrong_type_messages_name_the_field() -> None:
    (problem,) = check_condition(
        {"date_add": [{"var": "name"}, 1, "days"]}, fields=FIELDS
    )

    assert problem.message == (
        "date_add needs a date or datetime here, but field 'name' is text."
    )


def test_relations_default_to_none() -> None:
    found = check_condition({"var": "account.industry"}, fields=FIELDS)

    assert [(problem.path, problem.code) for problem in found] == [
        ("", "unknown_relation")
    ]


@pytest.mark.parametrize(
    "condition",
    [
        {"and": 5},
        {"map": [None, 1]},
        {"date_add": ["2024-05-31", 1, "weeks"]},
        {"matches": ["x", "(?i)x"]},
        {"!": [{"nope": 1}]},
        {"if": {"preserve": [1]}},
    ],
)
def test_a_condition_with_problems_does_not_compile(condition: Any) -> None:
    codes = problems(condition)

    assert codes
    with pytest.raises(ConditionError) as excinfo:
        compile_condition(condition)
    assert (excinfo.value.path, excinfo.value.code) == codes[0]


@pytest.mark.parametrize(
    ("condition", "plain", "sharing"),
    [
        ({"==": [{"var": "name"}, {"var": "$user.region"}]}, ["unknown_field"], []),
        ({"in": ["east", {"var": "$user.teams"}]}, ["unknown_field"], []),
        ({"var": "$user.admin"}, ["unknown_field"], ["unknown_field"]),
        ({"var": "$user.region.code"}, ["unknown_field"], ["unknown_field"]),
        ({"var": "$user.Region"}, ["unknown_field"], ["unknown_field"]),
    ],
)
def test_user_attributes_and_teams_are_known_only_where_the_caller_offers_them(
    condition: Any, plain: list[str], sharing: list[str]
) -> None:
    def codes(**options: bool) -> list[str]:
        found = check_condition(condition, fields=FIELDS, **options)
        return [problem.code for problem in found]

    assert codes() == plain
    assert codes(user_attributes=True) == sharing


@pytest.mark.parametrize(
    ("condition", "found"),
    [
        # From inside one item, two levels up is the record.
        (
            {"some": [{"var": "tags"}, {"==": [{"val": [[2], "stagee"]}, "won"]}]},
            [("some[1].==[0]", "unknown_field")],
        ),
        # Climbing past the top stops there.
        ({"==": [{"val": [[5], "stagee"]}, "won"]}, [("==[0]", "unknown_field")]),
        # One level up is the iteration's own index, not the record.
        ({"some": [{"var": "tags"}, {"==": [{"val": [[1], "index"]}, 0]}]}, []),
        (
            {"some": [{"var": "tags"}, {"==": [{"val": [[2], "stage"]}, "won"]}]},
            [],
        ),
    ],
)
def test_a_scoped_val_that_climbs_to_the_record_reads_its_fields(
    condition: Any, found: list[tuple[str, str]]
) -> None:
    assert problems(condition) == found


@pytest.mark.parametrize(
    ("condition", "renamed"),
    [
        ({"exists": "stage"}, {"exists": "phase"}),
        ({"exists": ["stage"]}, {"exists": ["phase"]}),
        ({"exists": ["$prior", "stage"]}, {"exists": ["$prior", "phase"]}),
    ],
)
def test_a_rename_reaches_the_field_exists_reads(condition: Any, renamed: Any) -> None:
    assert field_names(condition) == {"stage"}
    assert rename_fields(condition, {"stage": "phase"}) == renamed


def test_a_rename_reaches_a_key_of_missing_some_written_without_its_list() -> None:
    condition = {"missing_some": [1, "stage"]}

    assert field_names(condition) == {"stage"}
    assert rename_fields(condition, {"stage": "phase"}) == {
        "missing_some": [1, "phase"]
    }


def test_a_rename_reaches_a_scoped_val_that_reads_the_record() -> None:
    condition = {
        "some": [
            {"var": "tags"},
            {"and": [{"val": [[2], "stage"]}, {"val": [[1], "stage"]}]},
        ]
    }

    assert field_names(condition) == {"tags", "stage"}
    assert rename_fields(condition, {"stage": "phase"}) == {
        "some": [
            {"var": "tags"},
            {"and": [{"val": [[2], "phase"]}, {"val": [[1], "stage"]}]},
        ]
    }
