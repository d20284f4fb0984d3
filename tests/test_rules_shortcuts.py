"""The shortcuts the engine takes for common operands answer as the general path.

Comparisons of a Decimal with a whole number, ISO dates written in a rule,
arithmetic and ``round`` on Decimals, and ``date_diff`` with a written unit each
skip part of the general conversions. The tables here pin the edge of each
shortcut: non-finite Decimals, booleans, floats, text, null, dates against
datetimes, and naive against aware datetimes. Where a case can also be written
so that no shortcut applies (both operands read from the data), both forms must
agree.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from tailorcrm.rules_engine import compile_condition

UTC = dt.UTC
PLUS_TWO = dt.timezone(dt.timedelta(hours=2))
D = dt.date
DT = dt.datetime
DEC = Decimal

ORDERINGS = ["<", "<=", ">", ">=", "==", "!="]
_JSON_SCALARS = (str, int, float, bool, type(None))


def run(condition: Any, data: Any = None) -> Any:
    return compile_condition(condition)(data)


def exactly(actual: Any, expected: Any) -> bool:
    """Equal and of the same Python type, and for Decimals the same digits."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, Decimal):
        return str(actual) == str(expected)
    return bool(actual == expected)


def compared(left: Any, operator: str, right: Any) -> list[Any]:
    """The answer with both operands in the data, and with each JSON value written
    in the rule instead."""
    data = {"left": left, "right": right}
    answers = [run({operator: [{"var": "left"}, {"var": "right"}]}, data)]
    if isinstance(right, _JSON_SCALARS):
        answers.append(run({operator: [{"var": "left"}, right]}, data))
    if isinstance(left, _JSON_SCALARS):
        answers.append(run({operator: [left, {"var": "right"}]}, data))
    return answers


# -- Decimals against numbers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "operator", "right", "expected"),
    [
        (DEC("35"), ">", 30, True),
        (DEC("30.00"), ">", 30, False),
        (DEC("30.00"), ">=", 30, True),
        (DEC("30.0"), "==", 30, True),
        (DEC("30.01"), "!=", 30, True),
        (29, "<", DEC("29.5"), True),
        (DEC("-0"), "==", 0, True),
        (DEC("1E+2"), "==", 100, True),
        (DEC("2.50"), "==", DEC("2.5"), True),
        (DEC("2.50"), "<", DEC("2.51"), True),
        # Compared exactly, never through a float.
        (10**40 + 1, ">", DEC("1E+40"), True),
        (DEC("0.1000000000000000000000000001"), ">", DEC("0.1"), True),
        # A float meets a Decimal through its shortest text.
        (DEC("0.1"), "==", 0.1, True),
        (DEC("19.98"), "<", 19.98, False),
        (DEC("19.98"), "<=", 19.98, True),
        (DEC("0.3"), "==", 0.1 + 0.2, False),
        # Booleans are 1 and 0 here, as in JavaScript, not ints that compare.
        (DEC("1"), "==", True, True),
        (DEC("0.5"), "<", True, True),
        (False, "<", DEC("0.5"), True),
        # Text meets a Decimal as a number; null is 0 in an order, and equals
        # only null.
        (DEC("35"), "<", "40", True),
        (DEC("35"), "==", "35.0", True),
        (DEC("0"), ">=", None, True),
        (DEC("0"), "==", None, False),
        (DEC("0"), "!=", None, True),
        # A Decimal without a number is a failure, whatever it meets.
        (DEC("NaN"), "<", 1, None),
        (DEC("NaN"), "==", 1, None),
        (DEC("NaN"), "!=", DEC("NaN"), None),
        (1, ">", DEC("sNaN"), None),
        (DEC("Infinity"), ">", 1, None),
        (DEC("2"), "<", DEC("Infinity"), None),
        (DEC("-Infinity"), "<=", 0.5, None),
        (DEC("35"), "<", "abc", None),
        (DEC("35"), "<", [40], None),
    ],
)
def test_decimals_compare_with_numbers_as_numbers(
    left: Any, operator: str, right: Any, expected: Any
) -> None:
    answers = compared(left, operator, right)

    assert all(exactly(answer, expected) for answer in answers), answers


def test_a_decimal_is_not_strictly_a_boolean() -> None:
    assert run({"===": [{"var": "n"}, True]}, {"n": DEC("1")}) is False
    assert run({"===": [{"var": "n"}, 1]}, {"n": DEC("1.0")}) is True


# -- dates written in the rule --------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "operator", "right", "expected"),
    [
        (D(2026, 3, 4), "<=", "2035-12-31", True),
        (D(2035, 12, 31), "<", "2035-12-31", False),
        ("2020-01-01", "<=", D(2020, 1, 1), True),
        ("2020-01-01", "<", D(2020, 1, 1), False),
        ("2020-01-01", ">", D(2019, 12, 31), True),
        (D(2024, 5, 31), "==", "2024-05-31", True),
        (D(2024, 5, 31), "!=", "2024-05-31", False),
        ("2024-05-31", "!=", D(2024, 6, 1), True),
        # A date is its midnight in UTC; a datetime without an offset is in UTC.
        (DT(2024, 5, 31, 0, 0), "==", "2024-05-31", True),
        (DT(2024, 5, 31, 0, 1), ">", "2024-05-31", True),
        ("2024-05-31", "<", DT(2024, 5, 31, 0, 1), True),
        (DT(2024, 5, 31, 1, 0, tzinfo=PLUS_TWO), "<", "2024-05-31", True),
        (DT(2024, 5, 31, 2, 0, tzinfo=PLUS_TWO), "==", "2024-05-31", True),
        (D(2024, 5, 31), "==", "2024-05-31T02:00:00+02:00", True),
        (D(2024, 5, 31), "<", "2024-05-31T00:00:01Z", True),
        (DT(2024, 5, 31, 9, 0, tzinfo=UTC), "==", "2024-05-31T09:00", True),
        (DT(2024, 5, 31, 9, 0), ">=", "2024-05-31T11:00+02:00", True),
        ("2024-05-31 09:00", "<", DT(2024, 5, 31, 9, 0, 1, tzinfo=UTC), True),
        # Text still meets text as text unless both are dates.
        ("2024-05-31T12:00:00Z", "==", "2024-05-31T14:00:00+02:00", True),
        ("2024-05-31", ">", "2024-05", True),
        ("2024-05-31", "<", "tomorrow", True),
        # A written date has no order with what is not a date.
        (None, "<", "2024-05-31", None),
        (None, "==", "2024-05-31", False),
        ("2024-05-31", "!=", None, True),
        (20240531, "<", "2024-05-31", None),
        (True, "==", "2024-05-31", None),
        ([D(2024, 5, 31)], "==", "2024-05-31", None),
        # Text shaped like a date that the calendar refuses is not a date.
        (D(2024, 3, 1), ">", "2024-02-30", None),
        ("2024-02-30", "<", D(2024, 3, 1), None),
    ],
)
def test_dates_written_in_the_rule_compare_as_moments(
    left: Any, operator: str, right: Any, expected: Any
) -> None:
    answers = compared(left, operator, right)

    assert all(exactly(answer, expected) for answer in answers), answers


def test_a_date_written_in_the_rule_is_not_strictly_a_date() -> None:
    data = {"day": D(2024, 5, 31)}

    assert run({"===": [{"var": "day"}, "2024-05-31"]}, data) is False
    assert run({"!==": ["2024-05-31", {"var": "day"}]}, data) is True


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2026, 3, 4), True),
        (D(2020, 1, 1), True),
        (D(2019, 12, 31), False),
        (DT(2035, 12, 31, 0, 0), True),
        (DT(2035, 12, 31, 0, 0, 1), False),
        (DT(2020, 1, 1, 1, 0, tzinfo=PLUS_TWO), False),
        ("2026-03-04", True),
        ("2036-01-01", False),
        (None, None),
        (12, None),
    ],
)
def test_a_value_between_two_written_dates(day: Any, expected: Any) -> None:
    condition = {"<=": ["2020-01-01", {"var": "day"}, "2035-12-31"]}
    unwritten = {"<=": [{"var": "low"}, {"var": "day"}, {"var": "high"}]}
    data = {"day": day, "low": "2020-01-01", "high": "2035-12-31"}

    answers = [run(condition, data), run(unwritten, data)]

    assert all(exactly(answer, expected) for answer in answers), answers


def test_a_chain_with_a_written_date_stops_at_the_first_false_pair() -> None:
    condition = {"<": ["2020-01-01", {"var": "day"}, {"/": [1, 0]}]}

    assert run(condition, {"day": D(2019, 5, 1)}) is False
    assert run(condition, {"day": D(2024, 5, 1)}) is None


# -- arithmetic and round on Decimals ------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"*": [{"var": "amount"}, 2]}, DEC("39.96")),
        ({"*": [2, {"var": "amount"}]}, DEC("39.96")),
        ({"*": [{"var": "amount"}, {"var": "rate"}]}, DEC("6.9930")),
        ({"+": [{"var": "amount"}, 1, {"var": "rate"}]}, DEC("21.33")),
        ({"-": [{"var": "amount"}, 1]}, DEC("18.98")),
        ({"-": [1, {"var": "amount"}]}, DEC("-18.98")),
        ({"/": [{"var": "rate"}, 100]}, DEC("0.0035")),
        ({"*": [{"var": "amount"}, 0.5]}, DEC("9.990")),
        ({"+": [{"var": "amount"}, True]}, DEC("20.98")),
        ({"+": [{"var": "amount"}, "1.5"]}, DEC("21.48")),
        ({"+": [0.5, {"var": "amount"}]}, DEC("20.48")),
        # Multiplying by 1 still rounds to the context's 28 digits, as before.
        ({"*": [{"var": "long"}]}, DEC("1.234567890123456789012345679E+39")),
        ({"+": [{"var": "long"}, 0]}, DEC("1.234567890123456789012345679E+39")),
        ({"*": [{"var": "amount"}, {"var": "nan"}]}, None),
        ({"+": [{"var": "amount"}, {"var": "infinite"}]}, None),
        ({"-": [{"var": "amount"}, {"var": "nan"}]}, None),
        ({"*": [{"var": "huge"}, 10]}, None),
        ({"+": [{"var": "huge"}, {"var": "huge"}]}, None),
    ],
)
def test_decimal_arithmetic(condition: Any, expected: Any) -> None:
    data = {
        "amount": DEC("19.98"),
        "rate": DEC("0.35"),
        "long": DEC("1234567890123456789012345678901234567890"),
        "nan": DEC("NaN"),
        "infinite": DEC("Infinity"),
        "huge": DEC("9E+999999"),
    }

    assert exactly(run(condition, data), expected)


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (DEC("4320.9845"), 2, DEC("4320.98")),
        (DEC("2.345"), 2, DEC("2.35")),
        (DEC("-2.345"), 2, DEC("-2.35")),
        (DEC("2.5"), 0, DEC("3")),
        (DEC("12345.67"), -2, DEC("1.23E+4")),
        (DEC("2"), 3, DEC("2.000")),
        (DEC("2.345"), DEC("2"), DEC("2.35")),
        (DEC("2.345"), 2.0, DEC("2.35")),
        (DEC("2.345"), "2", DEC("2.35")),
        (2.345, 2, 2.35),
        (7, -1, 10),
        (DEC("2.345"), True, None),
        (DEC("2.345"), 2.5, None),
        (DEC("2.345"), 21, None),
        (DEC("2.345"), None, None),
        (DEC("NaN"), 2, None),
        (DEC("Infinity"), 2, None),
        (DEC("9E+999999"), 2, None),
    ],
)
def test_round_on_decimals(value: Any, digits: Any, expected: Any) -> None:
    data = {"value": value, "digits": digits}

    assert exactly(
        run({"round": [{"var": "value"}, {"var": "digits"}]}, data), expected
    )
    if isinstance(digits, _JSON_SCALARS):
        assert exactly(run({"round": [{"var": "value"}, digits]}, data), expected)


# -- date_diff with the unit written in the rule -------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "unit", "expected"),
    [
        (D(2026, 1, 15), D(2026, 3, 4), "days", 48),
        (D(2026, 3, 4), D(2026, 1, 15), "days", -48),
        (D(2024, 1, 31), D(2024, 2, 29), "months", 1),
        (D(2024, 2, 29), D(2025, 2, 28), "years", 1),
        (D(2024, 2, 29), D(2025, 2, 27), "years", 0),
        (DT(2024, 5, 31, 23, 30, tzinfo=PLUS_TWO), D(2024, 6, 1), "days", 1),
        ("2024-05-31", DT(2024, 6, 2, 0, 0), "days", 2),
        (D(2024, 5, 31), None, "days", None),
        (D(2024, 5, 31), "soon", "days", None),
        (D(2024, 5, 31), 20240601, "days", None),
    ],
)
def test_date_diff_with_a_written_unit(
    start: Any, end: Any, unit: str, expected: Any
) -> None:
    data = {"start": start, "end": end, "unit": unit}
    written = {"date_diff": [{"var": "start"}, {"var": "end"}, unit]}
    read = {"date_diff": [{"var": "start"}, {"var": "end"}, {"var": "unit"}]}

    answers = [run(written, data), run(read, data)]
    if unit == "days":
        answers.append(run({"date_diff": [{"var": "start"}, {"var": "end"}]}, data))

    assert all(exactly(answer, expected) for answer in answers), answers


def test_date_diff_from_today_reads_the_clock_of_the_data() -> None:
    condition = {"date_diff": [{"today": []}, {"var": "close_date"}, "days"]}
    data = {
        "close_date": D(2026, 3, 4),
        "$now": DT(2026, 1, 15, 23, 30, tzinfo=PLUS_TWO),
    }

    assert run(condition, data) == 48
