"""The engine against the JSON Logic conformance suites in ``../shared``.

The official suite (jsonlogic.com's tests.json, the one json-logic-js runs) must
pass whole, in both modes. The community's compatibility suites run case by case;
the few cases the engine answers differently on purpose are listed in
``DELIBERATE_DIFFERENCES`` with the reason, and run as strict expected failures so
the list can never go stale.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tailorcrm.rules_engine import (
    ConditionError,
    EvaluationError,
    RuleError,
    compile_condition,
)

SUITES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "jsonlogic"
)
ABSENT = f"the JSON Logic conformance suites are not at {SUITES}"

#: (suite file, rule as compact JSON) -> why the engine answers differently.
DELIBERATE_DIFFERENCES = {
    ("comparison/softEquals.json", '{"==":[null,0]}'): (
        "null equals only null, as in JavaScript: with null == 0 a filter "
        "'amount == 0' would select every record without an amount"
    ),
    ("comparison/softNotEquals.json", '{"!=":[null,0]}'): (
        "null equals only null, as in JavaScript (the negation of the case above)"
    ),
}


def same(actual: Any, expected: Any) -> bool:
    """Equal as JSON values are: numbers by value, but ``true`` is not ``1``."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(actual, (int, float, Decimal)) and isinstance(
        expected, (int, float, Decimal)
    ):
        return _exact(actual) == _exact(expected)
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(
            same(left, right) for left, right in zip(actual, expected, strict=True)
        )
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            same(actual[key], expected[key]) for key in actual
        )
    return type(actual) is type(expected) and actual == expected


def _exact(number: int | float | Decimal) -> Decimal:
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


def _compact(rule: Any) -> str:
    return json.dumps(rule, separators=(",", ":"))


def _official_cases() -> list[Any]:
    if not SUITES.is_dir():
        return [pytest.param(None, None, None, marks=pytest.mark.skip(reason=ABSENT))]
    entries = json.loads((SUITES / "tests.json").read_text(encoding="utf-8"))
    cases = [entry for entry in entries if not isinstance(entry, str)]
    return [
        pytest.param(rule, data, expected, id=f"{number}:{_compact(rule)[:60]}")
        for number, (rule, data, expected) in enumerate(cases, start=1)
    ]


def _compat_cases() -> list[Any]:
    if not SUITES.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=ABSENT))]
    folder = SUITES / "compat-suites"
    params = []
    for name in json.loads((folder / "index.json").read_text(encoding="utf-8")):
        entries = json.loads((folder / name).read_text(encoding="utf-8"))
        cases = [entry for entry in entries if not isinstance(entry, str)]
        for number, case in enumerate(cases, start=1):
            reason = DELIBERATE_DIFFERENCES.get((name, _compact(case["rule"])))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(name, case, marks=marks, id=f"{name}:{number}"))
    return params


@pytest.mark.parametrize(("rule", "data", "expected"), _official_cases())
@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_official_suite(rule: Any, data: Any, expected: Any, strict: bool) -> None:
    condition = compile_condition(rule, strict=strict)

    result = condition(data)

    assert same(result, expected), f"{result!r} != {expected!r}"


@pytest.mark.parametrize(("suite", "case"), _compat_cases())
def test_community_suite_strict(suite: str, case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(RuleError) as excinfo:
            compile_condition(case["rule"], strict=True)(case.get("data"))

        assert excinfo.value.type == case["error"]["type"]
        return

    result = compile_condition(case["rule"], strict=True)(case.get("data"))

    assert same(result, case["result"]), f"{result!r} != {case['result']!r}"


@pytest.mark.parametrize(("suite", "case"), _compat_cases())
def test_community_suite_lenient(suite: str, case: dict[str, Any]) -> None:
    """By default a failure gives null; a malformed rule is still refused."""
    expected = case.get("result")
    try:
        result = compile_condition(case["rule"])(case.get("data"))
    except ConditionError as error:
        assert "error" in case
        assert error.type == case["error"]["type"]
        return
    except EvaluationError as error:  # pragma: no cover - the failure it guards against
        pytest.fail(f"lenient evaluation raised {error!r}")

    assert same(result, expected), f"{result!r} != {expected!r}"


@pytest.mark.skipif(not SUITES.is_dir(), reason=ABSENT)
def test_every_case_of_the_suites_is_collected() -> None:
    official = json.loads((SUITES / "tests.json").read_text(encoding="utf-8"))
    folder = SUITES / "compat-suites"
    compat = [
        entry
        for name in json.loads((folder / "index.json").read_text(encoding="utf-8"))
        for entry in json.loads((folder / name).read_text(encoding="utf-8"))
        if not isinstance(entry, str)
    ]

    assert len([entry for entry in official if not isinstance(entry, str)]) == 277
    assert len(compat) == 1138
    assert len(_compat_cases()) == 1138
