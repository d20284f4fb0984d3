"""The CRM operations, the value model and the compiled form of conditions.

Every example table in OPERATIONS.md runs here too, so the documentation cannot
drift from the engine. The tables below add what JSON cannot spell: date and
datetime objects, Decimals, and bad input of every kind.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import tailorcrm.rules_engine as rules_engine
from tailorcrm.rules_engine import (
    ConditionError,
    EvaluationError,
    _compiler,
    check_condition,
    compile_condition,
    evaluate,
)
from tailorcrm.rules_engine._regex import (
    _MAX_CACHED_STATES,
    MAX_SEARCH_STEPS,
    Pattern,
    PatternError,
    _Search,
)

UTC = dt.UTC
D = dt.date
DT = dt.datetime
NOW = {"$now": DT(2024, 5, 31, 12, 0, tzinfo=UTC)}
OPERATIONS_MD = Path(rules_engine.__file__).with_name("OPERATIONS.md")


def run(condition: Any, data: Any = None) -> Any:
    return compile_condition(condition)(data)


def exactly(actual: Any, expected: Any) -> bool:
    """Equal and of the same Python type (so 1 is not True, nor 1.0, nor a date)."""
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(exactly(a, b) for a, b in zip(actual, expected, strict=True))
        )
    return type(actual) is type(expected) and actual == expected


# -- the documented examples ----------------------------------------------------------


def _documented_examples() -> list[Any]:
    params = []
    for line in OPERATIONS_MD.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 3:
            continue
        condition, data, result = (
            cell.replace("\\|", "|").strip("`") for cell in cells
        )
        params.append(pytest.param(condition, data, result, id=condition[:70]))
    return params


def _as_json(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    return value


def _kinds(value: Any) -> Any:
    """The JSON kind of each value: the page tells 3 from 3.0 and 1 from true."""
    if isinstance(value, list):
        return [_kinds(item) for item in value]
    return type(value).__name__


@pytest.mark.parametrize(("condition", "data", "result"), _documented_examples())
def test_documented_example(condition: str, data: str, result: str) -> None:
    expected = json.loads(result)

    actual = _as_json(evaluate(json.loads(condition), json.loads(data)))

    assert actual == expected
    assert _kinds(actual) == _kinds(expected)


def test_every_crm_operation_is_documented_with_examples() -> None:
    text = OPERATIONS_MD.read_text(encoding="utf-8")
    operations = [
        "today", "now", "date_add", "date_diff", "lower", "upper", "contains",
        "starts_with", "length", "matches", "is_blank", "changed", "prior",
        "coalesce", "round",
    ]  # fmt: skip

    undocumented = [name for name in operations if f'| `{{"{name}": ' not in text]

    assert undocumented == []
    assert len(_documented_examples()) > 80


def _documented_check_examples() -> list[Any]:
    """The conditions the table of static checks gives as examples of each code."""
    text = OPERATIONS_MD.read_text(encoding="utf-8")
    table = text[text.index("## Static checks") : text.index("## In SQL")]
    params = []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        code = cells[0].strip("`")
        for example in re.findall(r"`(\{[^`]*\})`", cells[1]):
            params.append(pytest.param(json.loads(example), code, id=example))
    return params


@pytest.mark.parametrize(("condition", "code"), _documented_check_examples())
def test_documented_check_example(condition: Any, code: str) -> None:
    found = check_condition(condition, fields={})

    assert [problem.code for problem in found] == [code]


def test_the_documented_path_of_a_problem() -> None:
    condition = {
        "and": [{"==": [{"var": "stage"}, "won"]}, {">": [{"var": "amont"}, 1000]}]
    }
    text = OPERATIONS_MD.read_text(encoding="utf-8")

    found = check_condition(
        condition, fields={"stage": "picklist", "amount": "currency"}
    )

    assert json.dumps(condition) in text.replace("\n", " ")
    assert [(problem.path, problem.code) for problem in found] == [
        ("and[1].>[0]", "unknown_field")
    ]
    assert "the unknown field is at `and[1].>[0]`" in text


# -- dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "data", "expected"),
    [
        ({"today": []}, NOW, D(2024, 5, 31)),
        ({"today": []}, {"$now": D(2024, 2, 29)}, D(2024, 2, 29)),
        ({"now": []}, NOW, DT(2024, 5, 31, 12, 0, tzinfo=UTC)),
        ({"now": []}, {"$now": "2024-05-31"}, DT(2024, 5, 31, tzinfo=UTC)),
        # $now is read from the top, also inside map.
        ({"map": [[1, 2], {"today": []}]}, NOW, [D(2024, 5, 31), D(2024, 5, 31)]),
    ],
)
def test_the_clock_reads_now_from_the_data(
    condition: Any, data: Any, expected: Any
) -> None:
    assert exactly(run(condition, data), expected)


def test_the_clock_without_now_is_the_system_clock_in_utc() -> None:
    before = DT.now(UTC)

    moment, today = run({"now": []}, {}), run({"today": []}, None)

    assert before <= moment <= DT.now(UTC)
    assert moment.tzinfo is not None
    assert today in (before.date(), DT.now(UTC).date())


@pytest.mark.parametrize(
    ("start", "amount", "unit", "expected"),
    [
        (D(2024, 2, 28), 1, "days", D(2024, 2, 29)),
        (D(2024, 3, 1), -1, "days", D(2024, 2, 29)),
        (D(2024, 1, 31), 1, "months", D(2024, 2, 29)),
        (D(2023, 1, 31), 1, "months", D(2023, 2, 28)),
        (D(2024, 1, 31), 13, "months", D(2025, 2, 28)),
        (D(2024, 5, 15), -17, "months", D(2022, 12, 15)),
        (D(2024, 2, 29), 4, "years", D(2028, 2, 29)),
        (D(2024, 2, 29), -1, "years", D(2023, 2, 28)),
        (
            DT(2024, 1, 31, 9, 30, tzinfo=UTC),
            1,
            "months",
            DT(2024, 2, 29, 9, 30, tzinfo=UTC),
        ),
        (DT(2024, 3, 30, 23, 0), 1, "days", DT(2024, 3, 31, 23, 0)),
        (
            "2024-05-31T10:00:00+02:00",
            1,
            "days",
            DT.fromisoformat("2024-06-01T10:00+02:00"),
        ),
        (
            "2024-05-31T10:00:00+0200",
            1,
            "days",
            DT.fromisoformat("2024-06-01T10:00+02:00"),
        ),
        ("2024-05-31T10:00-05", 0, "days", DT.fromisoformat("2024-05-31T10:00-05:00")),
        ("2024-05-31", Decimal("3"), "days", D(2024, 6, 3)),
        ("2024-05-31", 2.0, "days", D(2024, 6, 2)),
        ("2024-05-31", "2", "days", D(2024, 6, 2)),
        ("2024-05-31", 0, "years", D(2024, 5, 31)),
        # Bad input gives null.
        ("2024-05-31", None, "days", None),
        ("2024-05-31", True, "days", None),
        ("2024-05-31", "two", "days", None),
        ("2024-05-31", Decimal("1.5"), "days", None),
        ("2024-05-31", 10**12, "days", None),
        ("2024-05-31", 10**9, "years", None),
        ("0001-01-01", -1, "days", None),
        ("2024-05-31", 1, "weeks", None),
        ("2024-05-31", 1, None, None),
        ("2024-02-30", 1, "days", None),
        ("2024-5-31", 1, "days", None),
        ("20240531", 1, "days", None),
        ("2024-05-31T25:00", 1, "days", None),
        ("2024-05-31T10:00+00:60", 1, "days", None),
        ("2024-05-31T10:00-01:75", 1, "days", None),
        ("2024-05-31T10:00+0060", 1, "days", None),
        ("2024-05-31T10:00+2400", 1, "days", None),
        ("2024-05-31T10:00+02:", 1, "days", None),
        ("2024-05-31T10:00+020", 1, "days", None),
        (None, 1, "days", None),
        ("", 1, "days", None),
        (20240531, 1, "days", None),
        (["2024-05-31"], 1, "days", None),
        ({"date": "2024-05-31"}, 1, "days", None),
    ],
)
def test_date_add(start: Any, amount: Any, unit: Any, expected: Any) -> None:
    data = {"start": start, "amount": amount, "unit": unit}
    condition = {"date_add": [{"var": "start"}, {"var": "amount"}, {"var": "unit"}]}

    assert exactly(run(condition, data), expected)


@pytest.mark.parametrize(
    ("start", "end", "unit", "expected"),
    [
        (D(2024, 5, 1), D(2024, 5, 31), "days", 30),
        (D(2024, 5, 31), D(2024, 5, 1), "days", -30),
        (D(2024, 2, 28), "2024-03-01", "days", 2),
        (DT(2024, 5, 31, 23, 59), DT(2024, 6, 1, 0, 1), "days", 1),
        (DT(2024, 5, 31, 0, 1), DT(2024, 5, 31, 23, 59), "days", 0),
        (D(2024, 5, 31), DT(2024, 6, 2, 8, 0, tzinfo=UTC), "days", 2),
        (D(2024, 1, 31), D(2024, 2, 29), "months", 1),
        (D(2024, 1, 31), D(2024, 2, 28), "months", 0),
        (D(2024, 1, 15), D(2024, 1, 14), "months", 0),
        (D(2024, 1, 15), D(2023, 12, 15), "months", -1),
        (D(2024, 1, 15), D(2023, 12, 16), "months", 0),
        (D(2020, 5, 31), D(2024, 5, 30), "months", 47),
        (D(2020, 5, 31), D(2024, 5, 31), "years", 4),
        (D(2024, 5, 31), D(2020, 6, 1), "years", -3),
        (D(2024, 5, 31), D(2024, 5, 31), "months", 0),
        # Each on its own calendar day, whichever way its offset is written.
        ("2024-05-31T23:00:00-0500", "2024-06-01T01:00:00Z", "days", 1),
        ("2024-05-31T23:00-05", "2024-06-01T01:00:00+0100", "days", 1),
        ("2024-05-01", "2024-05-31", None, None),
        ("2024-05-01", "2024-05-31", "hours", None),
        ("2024-05-01", None, "days", None),
        (None, "2024-05-31", "days", None),
        ("soon", "2024-05-31", "days", None),
        (1714521600, "2024-05-31", "days", None),
    ],
)
def test_date_diff(start: Any, end: Any, unit: Any, expected: Any) -> None:
    data = {"start": start, "end": end, "unit": unit}
    condition = {"date_diff": [{"var": "start"}, {"var": "end"}, {"var": "unit"}]}

    assert exactly(run(condition, data), expected)


@pytest.mark.parametrize(
    ("left", "operator", "right", "expected"),
    [
        (D(2024, 5, 31), "==", "2024-05-31", True),
        (D(2024, 5, 31), "!=", "2024-05-31", False),
        (D(2024, 5, 31), "<", "2024-06-01", True),
        (D(2024, 5, 31), ">", D(2024, 5, 30), True),
        (D(2024, 5, 31), "==", DT(2024, 5, 31, 0, 0), True),
        (D(2024, 5, 31), "<", DT(2024, 5, 31, 0, 1), True),
        (DT(2024, 5, 31, 12, 0), "==", DT(2024, 5, 31, 12, 0, tzinfo=UTC), True),
        (DT(2024, 5, 31, 12, 0), "==", "2024-05-31T14:00:00+02:00", True),
        ("2024-05-31T12:00:00Z", "==", "2024-05-31T14:00:00+02:00", True),
        ("2024-05-31T12:00:00Z", "<", "2024-05-31T13:00:00+02:00", False),
        (DT(2024, 5, 31, 9, 0), "<=", "2024-05-31T09:00", True),
        (D(2024, 5, 31), "===", "2024-05-31", False),
        (D(2024, 5, 31), "===", D(2024, 5, 31), True),
        (D(2024, 5, 31), "===", DT(2024, 5, 31), False),
        (D(2024, 5, 31), "==", None, False),
        # A date and something that is not a date have no order: null.
        (D(2024, 5, 31), "<", "tomorrow", None),
        (D(2024, 5, 31), "<", 20240601, None),
        (D(2024, 5, 31), ">", None, None),
        (D(2024, 5, 31), "==", True, None),
        # An offset of 60 minutes or more is no offset, so the text is no date.
        (D(2024, 5, 31), "<", "2024-05-31T10:00:00+00:60", None),
        (DT(2024, 5, 31, 9, 0), "==", "2024-05-31T10:00:00+00:60", None),
        (D(2024, 5, 31), "<", "2024-05-31T10:00:00+0060", None),
        # +0200 and +02 are +02:00, as the API, an import and Python's %z write it.
        (DT(2024, 5, 31, 12, 0), "==", "2024-05-31T14:00:00+0200", True),
        ("2024-05-31T12:00:00Z", "==", "2024-05-31T14:00+02", True),
        ("2024-05-31T12:00:00Z", "<", "2024-05-31T13:00:00+0200", False),
        (D(2024, 5, 31), ">", "2024-05-31T00:30:00+0100", True),
        ("2024-05-31T09:30-0530", "==", "2024-05-31T15:00:00Z", True),
    ],
)
def test_dates_compare_as_moments(
    left: Any, operator: str, right: Any, expected: Any
) -> None:
    condition = {operator: [{"var": "left"}, {"var": "right"}]}

    assert exactly(run(condition, {"left": left, "right": right}), expected)


# -- text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ({"lower": {"var": "v"}}, "ÄBC Straße", "äbc straße"),
        ({"upper": {"var": "v"}}, "straße", "STRASSE"),
        ({"lower": {"var": "v"}}, "", ""),
        ({"lower": {"var": "v"}}, None, None),
        ({"lower": {"var": "v"}}, 12, None),
        ({"upper": {"var": "v"}}, ["a"], None),
        ({"upper": {"var": "v"}}, D(2024, 5, 31), None),
        ({"length": {"var": "v"}}, "Straße", 6),
        ({"length": {"var": "v"}}, "", 0),
        ({"length": {"var": "v"}}, [], 0),
        ({"length": {"var": "v"}}, None, 0),
        ({"length": {"var": "v"}}, ["a", None], 2),
        ({"length": {"var": "v"}}, 123, None),
        ({"length": {"var": "v"}}, Decimal("1.5"), None),
        ({"length": {"var": "v"}}, {"a": 1}, None),
        ({"contains": [{"var": "v"}, "cme"]}, "Acme", True),
        ({"contains": [{"var": "v"}, "CME"]}, "Acme", False),
        ({"contains": [{"var": "v"}, ""]}, "Acme", True),
        ({"contains": [{"var": "v"}, 42]}, "Order 42", True),
        ({"contains": [{"var": "v"}, None]}, "Acme", False),
        ({"contains": [{"var": "v"}, "x"]}, None, False),
        ({"contains": [{"var": "v"}, "x"]}, 123, False),
        ({"contains": [{"var": "v"}, 1]}, [1, 2], True),
        ({"contains": [{"var": "v"}, 1]}, [True, "1"], False),
        ({"contains": [{"var": "v"}, 2]}, [Decimal("2.0")], True),
        ({"contains": [{"var": "v"}, "x"]}, {"x": 1}, False),
        ({"starts_with": [{"var": "v"}, "Ac"]}, "Acme", True),
        ({"starts_with": [{"var": "v"}, "ac"]}, "Acme", False),
        ({"starts_with": [{"var": "v"}, ""]}, "Acme", True),
        ({"starts_with": [{"var": "v"}, 49]}, "49 30", True),
        ({"starts_with": [{"var": "v"}, None]}, "Acme", False),
        ({"starts_with": [{"var": "v"}, "A"]}, None, False),
        ({"starts_with": [{"var": "v"}, "1"]}, 123, False),
        ({"starts_with": [{"var": "v"}, ["A"]]}, "Acme", False),
    ],
)
def test_text_operations(condition: Any, value: Any, expected: Any) -> None:
    assert exactly(run(condition, {"v": value}), expected)


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("10115", r"^\d{5}$", True),
        ("1011", r"^\d{5}$", False),
        ("١٢٣٤٥", r"^\d{5}$", False),  # \d is ASCII, as in JavaScript
        ("A-12", r"^[A-Z]-\d+$", True),
        ("a-12", r"^[A-Z]-\d+$", False),
        ("line\nbreak", r"^line.break$", False),  # . stops at a line end
        ("tab\there", r"tab\s", True),
        ("the cat sat", r"\bcat\b", True),
        ("concatenate", r"\bcat\b", False),
        ("color", r"colou?r", True),
        ("aaa", r"^(a|aa)+$", True),
        ("x", r"^$", False),
        ("", r"^$", True),
        ("US-12", r"(?:EU|US)-(?<number>\d+)", True),
        ("a{2}", r"a{,2}", False),  # JavaScript reads a{,2} as literal text
        ("a{,2}", r"a{,2}", True),
        ("]", r"[]a]", False),  # JavaScript reads [] as a class of nothing
        ("a]", r"[]a]", False),
        ("a\nb", r"^a[^]b$", True),  # and [^] as any character, a line end too
        ("]", r"[^]a]", False),
        ("price: $10.99", r"\$\d+\.\d{2}", True),
        (None, r"x", False),
        ("", r"x", False),
        (10115, r"^\d{5}$", True),
        (Decimal("10.50"), r"^10\.5$", True),
        (True, r"true", False),
        (["x"], r"x", False),
        ("x" * 32_001, r"x", None),
        ("y" * 2_000, r".{0,999}x", None),
    ],
)
def test_matches(text: Any, pattern: str, expected: Any) -> None:
    condition = {"matches": [{"var": "text"}, pattern]}

    assert exactly(run(condition, {"text": text}), expected)


@pytest.mark.parametrize(
    "pattern",
    [
        r"(a)\1",
        r"(?<n>a)\k<n>",
        r"(?=a)",
        r"(?!a)",
        r"(?<=a)b",
        r"(?<!a)b",
        r"(?i)abc",
        r"a**",
        r"+a",
        r"(a",
        r"a)",
        r"[a",
        "a\\",
        r"[z-a]",
        r"a{3,2}",
        r"a{1001}",
        r"(a{100}){100}",
        r"\p{L}",
        r"\01",
        "a" * 501,
    ],
)
def test_matches_refuses_patterns_outside_the_linear_subset(pattern: str) -> None:
    with pytest.raises(ConditionError) as excinfo:
        compile_condition({"matches": [{"var": "text"}, pattern]})

    assert excinfo.value.code == "invalid_pattern"
    assert excinfo.value.path == "matches[1]"
    assert run({"matches": ["abc", {"var": "p"}]}, {"p": pattern}) is None


@pytest.mark.parametrize(
    ("pattern", "unit", "tail"),
    [
        (r"(a+)+$", "a", "b"),
        (r"(x+x+)+y", "x", ""),
        (r"^(\w+\s?)*$", "word ", "!"),
        (r"(a|aa)*c", "a", ""),
    ],
)
def test_matches_takes_linear_time_on_patterns_that_backtrack(
    pattern: str, unit: str, tail: str
) -> None:
    # Work per character is one step between cached automaton states; linear time
    # means their number does not grow with the text. Counting them, rather than
    # timing the search, keeps the test independent of the machine's load.
    short, long = Pattern(pattern), Pattern(pattern)

    result = run({"matches": [{"var": "text"}, pattern]}, {"text": unit * 6_000 + tail})
    short.search(unit * 3_000 + tail)
    long.search(unit * 6_000 + tail)

    assert result is False
    assert len(long._states) == len(short._states) < 50


def test_the_matcher_agrees_with_python_on_random_patterns() -> None:
    chooser = random.Random(20240531)

    def pattern(depth: int = 0) -> str:
        roll = chooser.random()
        if depth > 3 or roll < 0.3:
            return chooser.choice(
                ["a", "b", ".", "[ab]", "[^a]", r"\w", r"\s", "^", "$"]
            )
        if roll < 0.5:
            return pattern(depth + 1) + pattern(depth + 1)
        if roll < 0.65:
            return f"(?:{pattern(depth + 1)}|{pattern(depth + 1)})"
        return (
            f"(?:{pattern(depth + 1)}){chooser.choice(['*', '+', '?', '{2}', '{1,2}'])}"
        )

    for _ in range(1_500):
        source = pattern()
        ours, python = Pattern(source), re.compile(source, re.ASCII)
        for _ in range(6):
            text = "".join(chooser.choice("ab ") for _ in range(chooser.randint(0, 7)))
            assert ours.search(text) == bool(python.search(text)), (source, text)


def test_a_long_text_is_refused_by_the_matcher_itself() -> None:
    with pytest.raises(PatternError):
        Pattern("x").search("x" * 32_001)


def test_the_matcher_agrees_with_python_on_long_counted_repeats() -> None:
    chooser = random.Random(20240601)

    def pattern(depth: int = 0) -> str:
        roll = chooser.random()
        if depth > 2 or roll < 0.4:
            atom = chooser.choice(["a", "b", ".", "[ab]", "[^a]", r"\w", r"\s"])
            low = chooser.randint(0, 20)
            high = chooser.choice(["", str(low + chooser.randint(0, 60))])
            return f"{atom}{{{low},{high}}}" if chooser.random() < 0.6 else atom
        if roll < 0.7:
            return pattern(depth + 1) + pattern(depth + 1)
        if roll < 0.85:
            return f"(?:{pattern(depth + 1)}|{pattern(depth + 1)})"
        return chooser.choice(["^", "$", r"\b"]) + pattern(depth + 1)

    for _ in range(300):
        source = pattern()
        ours, python = Pattern(source), re.compile(source, re.ASCII)
        for _ in range(5):
            size = chooser.randint(0, 150)
            text = "".join(chooser.choice("aab b") for _ in range(size))
            assert ours.search(text) == bool(python.search(text)), (source, text)


def _random_text(alphabet: str, size: int) -> str:
    chooser = random.Random(size)
    return "".join(chooser.choice(alphabet) for _ in range(size))


def test_matches_keeps_a_bounded_cache_when_states_never_repeat() -> None:
    # What follows an "a" is remembered for 999 characters, so nearly every
    # character of a random text leads to a state never built before. Each costs
    # little to build, so the search is answered, but the pattern keeps only a
    # bounded number of them once it is done.
    text = _random_text("ab", 31_000)
    pattern = Pattern("[ab]*a[ab]{999}$")
    search = _Search(pattern, text)

    found = search.run()

    assert found is (text[-1_000] == "a")
    assert len(search.visits) > 30_000
    assert search.spent < MAX_SEARCH_STEPS
    assert len(pattern._states) <= _MAX_CACHED_STATES
    assert run({"matches": [{"var": "text"}, pattern.source]}, {"text": text}) is found


@pytest.mark.parametrize(
    ("pattern", "refused", "answered"),
    [
        (r".{0,999}x", "y" * 2_000, "y" * 500 + "x"),
        (r"[ab]*a(?:[ab]|c){40}$", _random_text("ab", 16_000), "ab" * 500),
    ],
)
def test_a_search_that_would_follow_too_many_steps_is_refused(
    pattern: str, refused: str, answered: str
) -> None:
    # Both patterns keep many choices open at once, so building each new state
    # follows hundreds of steps; on a long enough text that adds up past the
    # budget of a search, which is refused rather than left to run.
    condition = {"matches": [{"var": "text"}, pattern]}

    with pytest.raises(PatternError) as excinfo:
        Pattern(pattern).search(refused)

    assert str(excinfo.value) == (
        f"The pattern would take more than {MAX_SEARCH_STEPS} steps "
        f"to search this text."
    )
    assert run(condition, {"text": refused}) is None
    assert run(condition, {"text": answered}) is bool(re.search(pattern, answered))


def test_whether_a_search_is_refused_does_not_depend_on_earlier_searches() -> None:
    # The refused text starts with the text searched first, whose 501 states the
    # cache still holds: they are charged all the same.
    warm = Pattern(r".{0,999}x")

    assert warm.search("y" * 500) is False
    assert len(warm._states) == 501
    with pytest.raises(PatternError):
        warm.search("y" * 2_000)
    assert warm.search("y" * 500 + "x") is True


def test_matches_builds_states_per_class_of_characters_not_per_character() -> None:
    # Thirty thousand different characters, all of which the pattern's steps
    # read alike: the states built are the pattern's, not one per character.
    text = "".join(chr(0x4E00 + offset) for offset in range(30_000))
    pattern = Pattern(r".{0,255}x")
    search = _Search(pattern, text + "x")

    found = search.run()

    assert found is True
    assert len(search.visits) == 257  # 0 to 255 characters into the repeat, then x
    assert pattern.search(text) is False


# -- blanks, prior values, coalesce, round ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, True),
        ("", True),
        ([], True),
        ((), True),
        (" ", False),
        (0, False),
        (0.0, False),
        (Decimal("0"), False),
        (False, False),
        ({}, False),
        ([None], False),
        (D(2024, 5, 31), False),
    ],
)
def test_is_blank_means_null_empty_text_or_empty_list(
    value: Any, expected: bool
) -> None:
    assert run({"is_blank": {"var": "v"}}, {"v": value}) is expected
    assert run({"is_blank": [{"var": "v"}]}, {"v": value}) is expected
    assert rules_engine.is_blank(value) is expected


def test_a_missing_field_is_blank() -> None:
    assert run({"is_blank": {"var": "account.industry"}}, {"account": None}) is True


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        ("proposal", "won", True),
        ("won", "won", False),
        (None, "won", True),
        ("won", None, True),
        (None, None, False),
        (None, "", False),
        ([], None, False),
        (D(2024, 5, 31), "2024-05-31", False),
        (D(2024, 5, 31), D(2024, 6, 1), True),
        (DT(2024, 5, 31, 12, 0), "2024-05-31T14:00:00+02:00", False),
        (Decimal("10.00"), 10, False),
        (Decimal("0.10"), 0.1, False),
        (Decimal("10.00"), 10.01, True),
        (1, True, True),
        (0, False, True),
        (["a", "b"], ["a", "b"], False),
        (["a", "b"], ["b", "a"], True),
        ("1", 1, True),
    ],
)
def test_changed_and_prior(before: Any, after: Any, changed: bool) -> None:
    data = {"field": after, "$prior": {"field": before}}

    assert run({"changed": "field"}, data) is changed
    assert exactly(run({"prior": "field"}, data), before)


@pytest.mark.parametrize(
    ("data", "changed", "prior"),
    [
        ({"stage": "won"}, False, None),
        ({"stage": "won", "$prior": None}, False, None),
        ({"stage": "won", "$prior": "proposal"}, False, None),
        ({"stage": "won", "$prior": {}}, True, None),
        ({"$prior": {"stage": "won"}}, True, "won"),
        (None, False, None),
        ([1, 2], False, None),
    ],
)
def test_changed_without_a_usable_prior_record(
    data: Any, changed: bool, prior: Any
) -> None:
    assert run({"changed": "stage"}, data) is changed
    assert run({"prior": "stage"}, data) == prior


def test_changed_and_prior_read_the_top_record_inside_iterations() -> None:
    data = {"lines": [1, 2], "stage": "won", "$prior": {"stage": "proposal"}}

    result = run(
        {
            "map": [
                {"var": "lines"},
                {"cat": [{"prior": "stage"}, {"changed": "stage"}]},
            ]
        },
        data,
    )

    assert result == ["proposaltrue", "proposaltrue"]


def test_changed_with_a_computed_field_name() -> None:
    data = {"which": "stage", "stage": "won", "$prior": {"stage": "proposal"}}

    assert run({"changed": {"var": "which"}}, data) is True
    assert run({"changed": {"var": "nothing"}}, data) is False


@pytest.mark.parametrize(
    ("operands", "expected"),
    [
        ([None, "", [], "x", "y"], "x"),
        ([0, 1], 0),
        ([False, True], False),
        ([None, Decimal("1.50")], Decimal("1.50")),
        ([None, None], None),
        ([], None),
        ([{"/": [1, 0]}, 5], 5),
        ([{"throw": "no"}, {"+": ["abc", 1]}, "fallback"], "fallback"),
        (["first", {"throw": "never evaluated"}], "first"),
    ],
)
def test_coalesce(operands: list[Any], expected: Any) -> None:
    condition = {
        "coalesce": [
            {"preserve": item} if isinstance(item, list) else item for item in operands
        ]
    }

    assert exactly(run(condition, {}), expected)


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (2.5, 0, 3.0),
        (3.5, 0, 4.0),
        (-2.5, 0, -3.0),
        (2.675, 2, 2.68),
        (1.005, 2, 1.01),
        (0.125, 2, 0.13),
        (Decimal("2.675"), 2, Decimal("2.68")),
        (Decimal("-0.005"), 2, Decimal("-0.01")),
        (Decimal("19.999"), 2, Decimal("20.00")),
        (1234, -2, 1200),
        (1250, -2, 1300),
        (7, 2, 7),
        (Decimal("1234.5"), -1, Decimal("1.23E+3")),
        ("2.5", 0, 3.0),
        (True, 0, 1),
        (None, 2, None),
        ("abc", 2, None),
        ([1.5], 0, None),
        (2.5, None, None),
        (2.5, 0.5, None),
        (2.5, 21, None),
        (Decimal("1E+30"), 20, None),
    ],
)
def test_round_half_away_from_zero(value: Any, digits: Any, expected: Any) -> None:
    result = run(
        {"round": [{"var": "value"}, {"var": "digits"}]},
        {"value": value, "digits": digits},
    )

    assert exactly(result, expected)


def test_round_defaults_to_whole_numbers() -> None:
    assert exactly(run({"round": {"var": "v"}}, {"v": Decimal("2.5")}), Decimal("3"))
    assert exactly(run({"round": [{"var": "v"}]}, {"v": 2.4}), 2.0)


# -- decimals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"+": [{"var": "price"}, 0.01]}, Decimal("19.99")),
        ({"+": [{"var": "price"}, 1]}, Decimal("20.98")),
        ({"-": [{"var": "price"}, "0.98"]}, Decimal("19.00")),
        ({"*": [{"var": "price"}, 2]}, Decimal("39.96")),
        ({"*": [{"var": "price"}, 0.5]}, Decimal("9.990")),
        ({"/": [{"var": "price"}, 2]}, Decimal("9.99")),
        ({"%": [{"var": "price"}, 5]}, Decimal("4.98")),
        ({"-": [{"var": "price"}]}, Decimal("-19.98")),
        ({"max": [{"var": "price"}, 20.5, 3]}, 20.5),
        ({"min": [{"var": "price"}, 20.5, 30]}, Decimal("19.98")),
        ({"==": [{"var": "price"}, 19.98]}, True),
        ({"===": [{"var": "price"}, 19.98]}, True),
        ({"==": [{"var": "price"}, "19.980"]}, True),
        ({">": [{"var": "price"}, 19.97]}, True),
        ({"<": [{"var": "price"}, 19.98]}, False),
        ({"<=": [{"var": "price"}, 19.98]}, True),
        ({"in": [19.98, [{"var": "price"}]]}, True),
        ({"cat": ["€", {"var": "price"}]}, "€19.98"),
        ({"cat": [{"var": "whole"}]}, "20"),
        ({"if": [{"var": "zero"}, "yes", "no"]}, "no"),
        ({"!!": {"var": "price"}}, True),
        ({"/": [{"var": "price"}, {"var": "zero"}]}, None),
        ({"%": [{"var": "price"}, {"var": "zero"}]}, None),
    ],
)
def test_decimals_mix_with_ints_and_floats(condition: Any, expected: Any) -> None:
    data = {
        "price": Decimal("19.98"),
        "whole": Decimal("20.00"),
        "zero": Decimal("0.00"),
    }

    assert exactly(run(condition, data), expected)


def test_int_and_float_arithmetic_follows_javascript() -> None:
    assert exactly(run({"/": [1, 3]}), 1 / 3)
    assert exactly(run({"+": [0.1, 0.2]}), 0.1 + 0.2)
    assert exactly(run({"%": [-7, 2]}), -1)
    assert exactly(run({"%": [7.5, -2]}), 1.5)
    assert exactly(run({"*": [10**20, 10**20]}), 10**40)
    assert exactly(
        run({"cat": [1e21, " ", 1e-7, " ", 0.000001, " ", 2.0]}),
        "1e+21 1e-7 0.000001 2",
    )


@pytest.mark.parametrize(
    "condition",
    [
        {"/": [1, 0]},
        {"/": [0, 0.0]},
        {"%": [1, 0]},
        {"*": [1e308, 10]},
        {"+": ["1e999", 1]},
        {"+": ["9" * 500, 1]},
        {"-": [[1], 1]},
        {"+": [{"var": "date"}, 1]},
        {"<": [{"var": "date"}, 1]},
        {"==": [[1], [1]]},
        {"all": [{"var": "nothing"}, True]},
        {"throw": "Stop"},
        {">": [{"var": "account.revenue"}, "lots"]},
        # Whole numbers no float can hold are no number, as in a browser.
        {"+": [10**309, 0.5]},
        {"+": [0.5, 10**309]},
        {"*": [{"var": "account.revenue"}, 10**309, 0.5]},
        {"%": [0.5, 10**309]},
        {"-": [10**309]},
        {"max": [10**309, 1]},
        {"*": [10**200, 10**200]},
        {"cat": [{"*": [10**1500, 10**1500, 10**1500]}]},
        # Also when the other operand is a decimal, as money fields are.
        {"*": [{"var": "price"}, 10**309]},
        {"+": [{"var": "price"}, 10**309]},
    ],
)
def test_a_failure_gives_null_or_raises_in_strict_mode(condition: Any) -> None:
    data = {
        "date": D(2024, 5, 31),
        "account": {"revenue": 10},
        "price": Decimal("5.50"),
    }

    assert run(condition, data) is None
    with pytest.raises(EvaluationError):
        compile_condition(condition, strict=True)(data)


def test_a_failure_makes_the_whole_condition_null() -> None:
    condition = {"or": [{">": [{"/": [1, {"var": "n"}]}, 1]}, True]}

    assert run(condition, {"n": 0}) is None
    assert run(condition, {"n": 2}) is True


def test_strict_errors_carry_the_community_error_type() -> None:
    with pytest.raises(EvaluationError) as excinfo:
        evaluate({"/": [1, 0]}, strict=True)
    with pytest.raises(EvaluationError) as thrown:
        evaluate({"throw": {"type": "TooLarge", "limit": 5}}, strict=True)

    assert excinfo.value.type == "NaN"
    assert thrown.value.type == "TooLarge"
    assert thrown.value.value == {"type": "TooLarge", "limit": 5}


# -- reading the record ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        ("account.industry", {"account": {"industry": "Retail"}}, "Retail"),
        ("account.industry", {"account": None}, None),
        ("account.industry", {"account": 17}, None),
        ("account.industry", {"account": "Acme"}, None),
        ("account.industry", {}, None),
        ("account.owner.name", {"account": {"owner": {"name": "Ann"}}}, "Ann"),
        ("tags.1", {"tags": ["a", "b"]}, "b"),
        ("tags.2", {"tags": ["a", "b"]}, None),
        ("tags.-1", {"tags": ["a", "b"]}, None),
        ("$user.roles", {"$user": {"roles": ["sales"]}}, ["sales"]),
        ("$user.id", {}, None),
        ("stage", None, None),
        ("stage", "text", None),
    ],
)
def test_var_reads_through_relations(path: str, data: Any, expected: Any) -> None:
    assert run({"var": path}, data) == expected
    assert run({"var": [path, "default"]}, data) == (
        "default" if expected is None else expected
    )


def test_var_reads_any_mapping() -> None:
    from types import MappingProxyType

    data = MappingProxyType({"account": MappingProxyType({"industry": "Retail"})})

    assert run({"var": "account.industry"}, data) == "Retail"
    assert run({"missing": ["account", "stage"]}, data) == ["stage"]


def test_exists_finds_the_entry_that_val_reads() -> None:
    from types import MappingProxyType

    for key, data in [
        (1.0, {"1": "a"}),
        (1e-7, {"1e-7": "a"}),
        (1.0, MappingProxyType({"1": "a"})),
    ]:
        assert run({"val": key}, data) == "a"
        assert run({"exists": key}, data) is True


def test_user_names_read_from_the_top_inside_iterations() -> None:
    data = {"$user": {"id": 7}, "lines": [{"owner": 7}, {"owner": 8}]}
    condition = {
        "filter": [{"var": "lines"}, {"==": [{"var": "owner"}, {"var": "$user.id"}]}]
    }

    assert run(condition, data) == [{"owner": 7}]


# -- compiled once --------------------------------------------------------------------


def test_a_condition_is_compiled_once_and_not_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    condition = {
        "and": [{"==": [{"var": "stage"}, "won"]}, {">": [{"var": "amount"}, 1000]}]
    }
    compiled = compile_condition(condition)
    calls = []
    monkeypatch.setattr(_compiler, "_compile", lambda *args: calls.append(args))

    condition["and"][0]["=="][1] = "lost"
    results = [compiled({"stage": "won", "amount": amount}) for amount in (500, 5000)]

    assert results == [False, True]
    assert calls == []


def test_results_are_fresh_values_the_caller_may_change() -> None:
    compiled = compile_condition(
        {"if": [{"var": "x"}, [1, 2], {"preserve": {"a": [1]}}]}
    )

    first = compiled({"x": True})
    first.append(3)
    second = compiled({"x": False})
    second["a"].append(2)

    assert compiled({"x": True}) == [1, 2]
    assert compiled({"x": False}) == {"a": [1]}


def test_evaluation_leaves_the_data_alone() -> None:
    data = {"items": [3, 1, 2], "$prior": {"items": [1]}}
    snapshot = json.dumps(data)

    run(
        {
            "merge": [
                {"var": "items"},
                {"map": [{"var": "items"}, {"+": [{"var": ""}, 1]}]},
            ]
        },
        data,
    )
    run({"changed": "items"}, data)

    assert json.dumps(data) == snapshot


def test_evaluate_keeps_recent_conditions_compiled() -> None:
    condition = {"+": [{"var": "n"}, 1]}

    assert evaluate(condition, {"n": 1}) == 2
    assert evaluate(condition, {"n": 2}) == 3
    assert evaluate({"+": [Decimal("1.5"), 1]}) == Decimal("2.5")


def test_the_public_surface() -> None:
    assert sorted(rules_engine.__all__) == sorted(
        [
            "MAX_DEPTH", "MAX_SIZE", "OPERATORS", "CompiledCondition", "ConditionError",
            "ConditionProblem", "EvaluationError", "RuleError", "SqlTranslationError",
            "by_code_point", "check_condition", "compile_condition", "compile_sql",
            "evaluate",
            "field_names", "is_blank", "join_path", "reads_as_date", "reads_context",
            "rename_fields", "truthy", "written_values",
            # Rule kinds.
            "ACTION_TYPES", "FIELD_STATES", "MAX_RULES_PER_ENTITY", "ROLLUP_FUNCTIONS",
            "RULE_TYPES", "TRIGGERS", "Action", "AutomationRule", "ConditionAnalysis",
            "DefaultRule", "Dependent", "EntityRules", "EntityShape", "Expression",
            "FieldState", "FieldStateRule", "FormulaRule", "RollupRule", "Rule",
            "ValidationRule",
            "analyze_condition", "build_rule_set", "check_rule_set", "compile_rule",
            "expressions_of", "rule_uses",
        ]
    )  # fmt: skip
    assert callable(compile_condition({"var": "x"}))
    assert "matches" in rules_engine.OPERATORS


# -- never an exception ---------------------------------------------------------------

_VALUES = [
    None, True, False, 0, 1, -1, 2.5, -0.0, 1e308, 10**30, Decimal("19.99"),
    Decimal("0"), Decimal("NaN"), Decimal("Infinity"), float("nan"), float("inf"),
    "", " ", "abc", "0", "12", "1e5", "2024-05-31", "2024-02-30",
    "2024-05-31T12:00:00Z", [], [1, "a"], [[]], {}, {"a": 1}, {"type": "x"},
    D(2024, 5, 31), DT(2024, 5, 31, 12, 0), ("a",),
]  # fmt: skip


def test_lenient_evaluation_never_raises_on_any_data() -> None:
    """Random operations over random values: a result or null, never an exception."""
    chooser = random.Random(7)
    names = sorted(set(rules_engine.OPERATORS) - {"throw", "preserve"})

    def operand(depth: int) -> Any:
        roll = chooser.random()
        if depth > 2 or roll < 0.4:
            return {"var": chooser.choice(["a", "b", "c", "a.x", "$prior.a", ""])}
        if roll < 0.6:
            value = chooser.choice(_VALUES)
            return (
                value
                if isinstance(value, (str, int, float, bool, type(None)))
                else None
            )
        name = chooser.choice(names)
        return {name: [operand(depth + 1) for _ in range(chooser.randint(0, 3))]}

    evaluated = 0
    for _ in range(4_000):
        try:
            compiled = compile_condition(operand(0))
        except ConditionError:
            continue
        for _ in range(3):
            data = {key: chooser.choice(_VALUES) for key in ("a", "b", "c")}
            data["$prior"] = {"a": chooser.choice(_VALUES)}
            compiled(data)
            evaluated += 1

    assert evaluated > 5_000


def test_repeat_counts_are_ascii_digits_only() -> None:
    # Superscript and other scripts' digits start no quantifier, as in JavaScript.
    assert evaluate({"matches": ["a{²}", "a{²}"]}) is True
    assert evaluate({"matches": ["aa", "a{٢}"]}) is False
    assert evaluate({"matches": ["aa", "a{2}"]}) is True


def test_decimal_arithmetic_out_of_range_is_a_failure_not_a_crash() -> None:
    huge = {"a": Decimal("9E+999999")}

    lenient = evaluate({"*": [{"var": "a"}, 10]}, huge)
    with pytest.raises(EvaluationError) as excinfo:
        compile_condition({"*": [{"var": "a"}, 10]}, strict=True)(huge)

    assert lenient is None
    assert "out of range" in str(excinfo.value)
