"""Conditions compiled to SQL select exactly the records Python evaluation accepts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailorcrm.platform.db import create_engine
from tailorcrm.rules_engine import (
    SqlTranslationError,
    compile_condition,
    compile_sql,
    truthy,
)

NOW = dt.datetime(2024, 5, 31, 12, 0, tzinfo=dt.UTC)
USER = {"id": 3, "name": "ab", "email": "ab@example.com", "roles": ["sales"]}

METADATA = sa.MetaData()
DEAL = sa.Table(
    "deal",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("qty", sa.BigInteger),
    sa.Column("amount", sa.Numeric(14, 2, asdecimal=True)),
    sa.Column("active", sa.Boolean),
    sa.Column("due", sa.Date),
    sa.Column("stage", sa.Text),
    sa.Column("tags", sa.JSON(none_as_null=True)),
)
TYPES = {
    "id": "integer",
    "name": "text",
    "qty": "integer",
    "amount": "currency",
    "active": "boolean",
    "due": "date",
    "stage": "picklist",
    "tags": "multi_picklist",
}
COLUMNS = {name: (DEAL.c[name], kind) for name, kind in TYPES.items()}


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    METADATA.create_all(engine)
    yield engine
    engine.dispose()


def load(engine: sa.Engine, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace the table's rows; return them as the database gives them back."""
    with engine.begin() as connection:
        connection.execute(DEAL.delete())
        if records:
            rows = [{"id": index + 1, **record} for index, record in enumerate(records)]
            connection.execute(DEAL.insert(), rows)
        result = connection.execute(sa.select(DEAL).order_by(DEAL.c.id))
        return [dict(row) for row in result.mappings()]


def python_ids(condition: Any, rows: list[dict[str, Any]]) -> set[int]:
    rule = compile_condition(condition)
    return {
        row["id"] for row in rows if truthy(rule({**row, "$user": USER, "$now": NOW}))
    }


def sql_ids(engine: sa.Engine, condition: Any) -> set[int]:
    where = compile_sql(condition, COLUMNS, user=USER, now=NOW)
    with engine.connect() as connection:
        return set(connection.execute(sa.select(DEAL.c.id).where(where)).scalars())


# -- random records and conditions -------------------------------------------------

TEXTS = ["", "a", "ab", "Ab", "abc", "B", "ab c", "won", "5", "2024-05-31"]
STAGES = ["", "won", "lost", "prospecting"]
AMOUNTS = ["0", "0.10", "1.50", "-2.25", "3", "10.00"]
# Choices that a match on the JSON text of the list would get wrong: case, a
# part of another choice, quotes, a backslash, a comma, LIKE's wildcards, and
# text JSON writes escaped.
TAGS = ["a", "A", "ab", "a b", 'say "a"', "b\\c", ",", "%", "_", "é", "won"]

records = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.none() | st.sampled_from(TEXTS),
            "qty": st.none() | st.integers(-4, 6),
            "amount": st.none() | st.sampled_from(AMOUNTS).map(Decimal),
            "active": st.none() | st.booleans(),
            "due": st.none() | st.dates(dt.date(2024, 5, 26), dt.date(2024, 6, 5)),
            "stage": st.none() | st.sampled_from(STAGES),
            # A multi-picklist is never an empty list: blank is stored as null.
            "tags": st.none()
            | st.lists(st.sampled_from(TAGS), min_size=1, max_size=3, unique=True),
        }
    ),
    min_size=2,
    max_size=7,
)

# Text literals that read neither as a number nor as a date.
WORDS = st.sampled_from(["a", "ab", "Ab", "abc", "b", "won", "lost", "zz"])
INT_LITERALS = st.integers(-3, 6)


def var(name: str) -> dict[str, Any]:
    return {"var": name}


def integers() -> st.SearchStrategy[Any]:
    leaves = (
        st.sampled_from([var("qty"), var("$user.id"), {"var": ["qty", 1]}])
        | INT_LITERALS
        | st.builds(lambda t: {"length": t}, texts())
    )

    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return (
            st.builds(
                lambda op, args: {op: args},
                st.sampled_from(["+", "-", "*", "min", "max"]),
                st.lists(inner, min_size=1, max_size=3),
            )
            | st.builds(lambda a, b: {"%": [a, b]}, inner, inner)
            | st.builds(lambda a: {"round": [a, 0]}, inner)
            | st.builds(lambda a, b: {"coalesce": [a, b]}, inner, inner)
        )

    return st.recursive(leaves, extend, max_leaves=4)


def fractions() -> st.SearchStrategy[Any]:
    return st.builds(
        lambda op, a, b: {op: [a, b]},
        st.sampled_from(["/", "*", "+"]),
        integers(),
        st.sampled_from([0, 2, 0.5, 1.5, -0.25]) | integers(),
    )


def decimals() -> st.SearchStrategy[Any]:
    leaf = st.sampled_from([var("amount"), {"var": ["amount", 0]}]) | st.sampled_from(
        [0.1, 1.5, -2.25, 3, 0, 10]
    )
    return leaf | st.builds(
        lambda op, a, b: {op: [a, b]},
        st.sampled_from(["min", "max", "coalesce"]),
        leaf,
        leaf,
    )


def texts() -> st.SearchStrategy[Any]:
    fields = st.sampled_from([var("name"), var("stage")])
    return fields | st.builds(
        lambda op, a: {op: a}, st.sampled_from(["lower", "upper"]), fields
    )


def dates() -> st.SearchStrategy[Any]:
    return st.sampled_from([var("due"), {"date_add": [var("due"), 3, "days"]}])


DATE_LITERALS = st.sampled_from(
    [
        "2024-05-31",
        "2024-06-01",
        {"today": []},
        {"date_add": [{"today": []}, -2, "days"]},
    ]
)
ORDER = st.sampled_from(["<", "<=", ">", ">="])
EQUALITY = st.sampled_from(["==", "!=", "===", "!=="])


def pair(op: str, a: Any, b: Any, flip: bool) -> dict[str, Any]:
    return {op: [b, a] if flip else [a, b]}


def comparisons() -> st.SearchStrategy[Any]:
    numbers = integers() | fractions()
    return st.one_of(
        st.builds(pair, ORDER | EQUALITY, numbers, numbers, st.booleans()),
        st.builds(
            pair, ORDER | EQUALITY, decimals(), decimals() | integers(), st.booleans()
        ),
        st.builds(pair, ORDER | EQUALITY, texts(), WORDS, st.booleans()),
        st.builds(pair, EQUALITY, texts(), texts(), st.booleans()).filter(
            lambda c: next(iter(c)) in ("===", "!==")
        ),
        st.builds(
            pair, ORDER | EQUALITY, dates(), DATE_LITERALS | dates(), st.booleans()
        ),
        st.builds(
            pair,
            EQUALITY,
            st.just(var("active")),
            st.booleans() | st.none(),
            st.booleans(),
        ),
        st.builds(
            pair, EQUALITY, numbers | texts() | dates(), st.none(), st.booleans()
        ),
        st.builds(
            lambda a, b, c: {"<": [a, b, c]}, INT_LITERALS, integers(), INT_LITERALS
        ),
        st.builds(
            lambda a, b: {"<=": [a, var("due"), b]}, DATE_LITERALS, DATE_LITERALS
        ),
        st.builds(lambda t, w: {"in": [w, t]}, texts(), WORDS | st.just("")),
        st.builds(lambda t, w: {"contains": [t, w]}, texts(), WORDS),
        st.builds(
            lambda w: {"in": [w, var("tags")]},
            st.sampled_from(TAGS) | WORDS | texts() | st.sampled_from([1, None, ""]),
        ),
        st.builds(lambda w: {"contains": [var("tags"), w]}, st.sampled_from(TAGS)),
        st.builds(lambda t, w: {"starts_with": [t, w]}, texts(), WORDS | st.just("")),
        st.builds(
            lambda f, items: {"in": [f, items]},
            st.sampled_from([var("stage"), var("qty"), var("amount"), var("active")]),
            st.lists(st.sampled_from(["won", "", 1, 1.5, 0.1, True, 3]), max_size=3),
        ),
        st.builds(
            lambda f: {"is_blank": f},
            st.sampled_from([var(name) for name in TYPES]) | texts() | dates(),
        ),
    )


def values() -> st.SearchStrategy[Any]:
    """Values used directly as conditions, for their truthiness."""
    return st.sampled_from([var(name) for name in TYPES]) | integers() | fractions()


conditions = st.recursive(
    st.one_of(
        comparisons(),
        values(),
        st.builds(pair, ORDER, dates(), dates(), st.booleans()),
        st.builds(pair, ORDER | EQUALITY, texts(), WORDS, st.booleans()),
    ),
    lambda inner: st.one_of(
        st.builds(
            lambda op, args: {op: args},
            st.sampled_from(["and", "or"]),
            st.lists(inner, max_size=3),
        ),
        st.builds(lambda op, a: {op: [a]}, st.sampled_from(["!", "!!"]), inner),
        st.builds(lambda c, a, b: {"if": [c, a, b]}, inner, inner, inner),
    ),
    max_leaves=5,
)


# Derandomized: CI replays the same examples every run, so a red build always
# means a change broke parity; to hunt for new counterexamples, run it locally
# with derandomize=False.
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=records, condition=conditions)
def test_sql_selects_the_records_python_accepts(
    engine: sa.Engine, rows: list[dict[str, Any]], condition: Any
) -> None:
    stored = load(engine, rows)

    expected = python_ids(condition, stored)

    assert sql_ids(engine, condition) == expected


# -- the cases that must hold ------------------------------------------------------

CASE_ROWS: list[dict[str, Any]] = [
    {"name": "Acme", "qty": 0, "amount": Decimal("0.10"), "due": dt.date(2024, 5, 1)},
    {"name": None, "qty": None, "amount": None, "due": None},
    {"name": "", "qty": 4, "amount": Decimal("2.50"), "due": dt.date(2024, 6, 9)},
]


@pytest.mark.parametrize(
    ("condition", "ids"),
    [
        ({"and": []}, set()),
        ({"or": []}, set()),
        ({"!": {"and": []}}, {1, 2, 3}),
        ({"and": [{"or": []}, {"var": "qty"}]}, set()),
        ({"==": [{"var": "qty"}, 0]}, {1}),
        ({"==": [{"var": "qty"}, None]}, {2}),
        ({"!=": [{"var": "qty"}, 0]}, {2, 3}),
        ({"<": [{"var": "qty"}, 1]}, {1, 2}),
        ({"<": [{"var": "due"}, {"today": []}]}, {1}),
        ({">=": [{"var": "due"}, "2024-05-01"]}, {1, 3}),
        ({"!": {"<": [{"var": "due"}, {"today": []}]}}, {3}),
        ({"is_blank": {"var": "name"}}, {2, 3}),
        ({"==": [{"var": "amount"}, 0.1]}, {1}),
        ({">": [{"var": "amount"}, 2.4]}, {3}),
        ({">": [{"/": [10, {"var": "qty"}]}, 1]}, {3}),
        ({"!": {">": [{"/": [10, {"var": "qty"}]}, 100]}}, {3}),
        ({"==": [{"coalesce": [{"/": [10, {"var": "qty"}]}, -1]}, -1]}, {1, 2}),
        ({"or": [{"==": [{"var": "qty"}, 0]}, {"/": [1, {"var": "qty"}]}]}, {1, 3}),
        ({"contains": [{"var": "name"}, "cm"]}, {1}),
        ({"contains": [{"var": "name"}, "CM"]}, set()),
        ({"in": [{"var": "qty"}, [4, 5]]}, {3}),
        ({"==": [{"*": [{"+": [{"var": "qty"}, 1]}, 3]}, 15]}, {3}),
        ({"==": [{"-": [10, {"-": [{"var": "qty"}, 1]}]}, 7]}, {3}),
        ({"var": "name"}, {1}),
        ({"<=": [{"var": "due"}, {"var": "due"}]}, {1, 2, 3}),
        ({"<": [{"var": "due"}, {"var": "due"}]}, set()),
        (
            {"!": {"<": [{"var": "due"}, {"date_add": [{"var": "due"}, 1, "days"]}]}},
            {2},
        ),
    ],
)
def test_cases_that_must_hold(engine: sa.Engine, condition: Any, ids: set[int]) -> None:
    stored = load(engine, CASE_ROWS)

    selected = sql_ids(engine, condition)

    assert selected == ids
    assert python_ids(condition, stored) == ids


@pytest.mark.parametrize(
    "condition",
    [
        {"==": [{"/": [{"var": "qty"}, {"/": [{"var": "qty"}, 3]}]}, 3]},
        {"==": [{"/": [1, {"/": [1, {"var": "qty"}]}]}, {"var": "qty"}]},
        {"==": [{"/": [{"var": "qty"}, {"var": "qty"}]}, 1]},
    ],
)
def test_dividing_by_a_fraction_keeps_every_digit_of_the_divisor(
    engine: sa.Engine, condition: Any
) -> None:
    """A divisor is a double on both sides, not a number cut to 15 digits."""
    quantities = [3, 4, 7, 10, 11, 33, 49, 10**15 + 1, None, 0]
    stored = load(engine, [{"qty": qty} for qty in quantities])

    assert sql_ids(engine, condition) == python_ids(condition, stored)


@pytest.mark.parametrize(
    ("condition", "ids"),
    [
        (
            {
                "in": [
                    {"var": "due"},
                    [{"today": []}, {"date_add": [{"today": []}, 1, "days"]}],
                ]
            },
            {1, 2},
        ),
        ({"!": {"in": [{"var": "due"}, [{"today": []}]]}}, {2, 3, 4}),
        ({"contains": [[{"today": []}], {"var": "due"}]}, {1}),
        # Text is never the same value as a date, nor a moment as a day.
        ({"in": [{"var": "due"}, ["2024-05-31", {"now": []}]]}, set()),
    ],
)
def test_a_list_of_computed_dates_holds_those_dates(
    engine: sa.Engine, condition: Any, ids: set[int]
) -> None:
    today = NOW.date()
    days = [today, today + dt.timedelta(days=1), today - dt.timedelta(days=1), None]
    stored = load(engine, [{"due": day} for day in days])

    selected = sql_ids(engine, condition)

    assert selected == ids
    assert python_ids(condition, stored) == ids


@pytest.mark.parametrize(
    "condition",
    [
        {">": [{"date_add": [{"var": "due"}, 1, "days"]}, "2024-05-31"]},
        {"<": [{"date_add": [{"var": "due"}, -1, "days"]}, "2024-05-31"]},
        {"!": {">": [{"date_add": [{"var": "due"}, 1, "days"]}, "2024-05-31"]}},
        {"is_blank": {"date_add": [{"var": "due"}, -1, "days"]}},
        {"==": [{"date_add": [{"var": "due"}, 1, "days"]}, None]},
    ],
)
def test_date_add_past_the_calendar_is_null_as_in_python(
    engine: sa.Engine, condition: Any
) -> None:
    stored = load(engine, [{"due": dt.date(9999, 12, 31)}, {"due": dt.date(1, 1, 1)}])

    assert sql_ids(engine, condition) == python_ids(condition, stored)


@pytest.mark.parametrize(
    "condition",
    [
        {">": [{"round": [{"var": "qty"}, 20]}, 0]},
        {"!": {"round": [{"var": "qty"}, 19]}},
        {"==": [{"round": [{"var": "qty"}, 10]}, {"var": "qty"}]},
        {"is_blank": {"round": [{"var": "qty"}, 18]}},
        {"<": [{"round": [{"var": "qty"}, 9]}, 0]},
    ],
)
def test_round_to_many_digits_is_null_where_python_runs_out_of_digits(
    engine: sa.Engine, condition: Any
) -> None:
    """Python rounds with 28 significant digits: 10**9 to 20 digits is null."""
    quantities = [10**9, -(10**9), 10**9 - 1, 10**10, -(10**18), 2**63 - 1, 5, None]
    stored = load(engine, [{"qty": qty} for qty in quantities])

    assert sql_ids(engine, condition) == python_ids(condition, stored)


TAG_ROWS: list[dict[str, Any]] = [
    {"name": "a", "tags": ["a", "b\\c"]},
    {"name": "A", "tags": ["A"]},
    {"name": "a", "tags": None},
    {"name": "ab", "tags": ['say "a"', "ab"]},
]


@pytest.mark.parametrize(
    ("condition", "ids"),
    [
        ({"in": ["a", {"var": "tags"}]}, {1}),
        ({"contains": [{"var": "tags"}, "A"]}, {2}),
        ({"in": ["b\\c", {"var": "tags"}]}, {1}),
        ({"in": ['say "a"', {"var": "tags"}]}, {4}),
        ({"in": ["b", {"var": "tags"}]}, set()),
        ({"in": [{"var": "name"}, {"var": "tags"}]}, {1, 2, 4}),
        ({"in": [1, {"var": "tags"}]}, set()),
        ({"is_blank": {"var": "tags"}}, {3}),
        ({"!": {"is_blank": {"var": "tags"}}}, {1, 2, 4}),
        ({"var": "tags"}, {1, 2, 4}),
    ],
)
def test_a_multi_picklist_holds_exactly_its_choices(
    engine: sa.Engine, condition: Any, ids: set[int]
) -> None:
    stored = load(engine, TAG_ROWS)

    selected = sql_ids(engine, condition)

    assert selected == ids
    assert python_ids(condition, stored) == ids


@pytest.mark.parametrize(
    "condition",
    [
        {"var": "missing_field"},
        {"var": "account.industry"},
        {"matches": [{"var": "name"}, "^a"]},
        {"some": [{"var": "tags"}, {"==": [{"var": ""}, 1]}]},
        {"==": [{"var": "name"}, 5]},
        {"==": [{"var": "name"}, {"var": "stage"}]},
        {"<": [{"var": "name"}, "2024-01-01"]},
        {"<": [{"var": "active"}, True]},
        {"+": [{"var": "amount"}, 1]},
        {"date_add": [{"var": "due"}, 1, "months"]},
        {"changed": "qty"},
        {"==": [{"var": "tags"}, "a"]},
        {"length": {"var": "tags"}},
        {"in": [{"var": "tags"}, ["a"]]},
        {"coalesce": [{"var": "tags"}, {"var": "tags"}]},
    ],
)
def test_conditions_without_sql_form_are_refused(condition: Any) -> None:
    with pytest.raises(SqlTranslationError) as excinfo:
        compile_sql(condition, COLUMNS, user=USER, now=NOW)

    assert excinfo.value.code in ("unsupported_in_sql", "unknown_field")


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        (
            {"==": [{"lower": {"or": [{"var": "name"}, {"var": "stage"}]}}, "a"]},
            "==[0]",
        ),
        ({"upper": {"and": [True, {"var": "name"}]}}, ""),
        (
            {"==": [{"upper": {"if": [{"var": "qty"}, {"var": "name"}, 0]}}, "A"]},
            "==[0]",
        ),
        ({"!": {"starts_with": [{"or": [{"var": "name"}, "b"]}, "a"]}}, "!"),
    ],
)
def test_text_operations_on_what_and_or_give_are_refused(
    condition: Any, path: str
) -> None:
    """and, or and an if of mixed branches give one of their operands, text
    included, which Python lower-cases or reads the start of; SQL knew them
    only as truth values and selected nothing."""
    with pytest.raises(SqlTranslationError) as excinfo:
        compile_sql(condition, COLUMNS, user=USER, now=NOW)

    assert (excinfo.value.code, excinfo.value.path) == ("unsupported_in_sql", path)
    assert "not a condition" in str(excinfo.value)


@pytest.mark.parametrize(
    ("condition", "ids"),
    [
        ({"%": {"var": "qty"}}, set()),
        ({"!": {"%": {"var": "qty"}}}, set()),
        ({"!": {"starts_with": {"var": "name"}}}, set()),
        ({"!": {"date_add": {"var": "due"}}}, set()),
        ({"-": {"var": "qty"}}, {3}),
        ({"!": {"in": {"var": "qty"}}}, {1, 2, 3}),
    ],
)
def test_operands_that_one_expression_computes_fail_as_in_python(
    engine: sa.Engine, condition: Any, ids: set[int]
) -> None:
    """A value that is no list is the one operand, too few for %, starts_with
    and date_add: Python fails there, so no record is selected."""
    stored = load(engine, CASE_ROWS)

    selected = sql_ids(engine, condition)

    assert selected == python_ids(condition, stored)
    assert selected == ids


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"in": {"var": "tags"}}, ""),
        ({"!": {"contains": {"or": [{"var": "tags"}, {"var": "name"}]}}}, "!"),
    ],
)
def test_operands_that_may_come_from_a_list_are_refused(
    condition: Any, path: str
) -> None:
    """Python takes a multi-picklist's choices as the operands ({"in": {"var":
    "tags"}} asks whether the first choice is in the second)."""
    with pytest.raises(SqlTranslationError) as excinfo:
        compile_sql(condition, COLUMNS, user=USER, now=NOW)

    assert (excinfo.value.code, excinfo.value.path) == ("unsupported_in_sql", path)
    assert "write them as a list" in str(excinfo.value)


def test_comparing_a_multi_picklist_is_refused_at_its_operand() -> None:
    with pytest.raises(SqlTranslationError) as excinfo:
        compile_sql({"or": [False, {"==": ["a", {"var": "tags"}]}]}, COLUMNS)

    assert excinfo.value.path == "or[1].==[1]"
    assert "multi-select" in str(excinfo.value)
    assert '{"in": ["a choice", {"var": "field"}]}' in str(excinfo.value)


@pytest.mark.parametrize(
    "condition",
    [
        {"==": [{"-": [{"+": [{"var": "qty"}, 2**63 - 1]}, 2**63 - 1]}, 1]},
        {">": [{"*": [{"var": "qty"}, 2**62, 4]}, 2**63 - 2]},
        {"<": [{"-": [{"-": [{"var": "qty"}]}, 2**63 - 1]}, 0]},
    ],
)
def test_whole_numbers_past_64_bits_stop_the_query(
    engine: sa.Engine, condition: Any
) -> None:
    """Python computes them exactly; SQL must not answer from a rounded number."""
    load(engine, [{"qty": 1}, {"qty": 0}, {"qty": 2}])

    with pytest.raises(sa.exc.DataError):
        sql_ids(engine, condition)


def test_user_without_caller_is_refused() -> None:
    with pytest.raises(SqlTranslationError) as excinfo:
        compile_sql({"==": [{"var": "qty"}, {"var": "$user.id"}]}, COLUMNS)

    assert "$user" in str(excinfo.value)
