"""A field's fitter gives what :func:`fit` gives, value for value.

Formulas, defaults and roll-up totals are fitted to their fields by a function
worked out once per field (:func:`tailorcrm.platform.rules.fitter`), which takes a
shortcut for finite numbers in decimal fields without limits of their own. These
tests hold it to the general :func:`fit`: the same value of the same type with the
same digits, or the same refusal with the same message.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailorcrm.platform.rules import RuleValueError, fit, fitter

SPECS: list[dict[str, Any]] = [
    {"name": "amount", "type": "currency"},
    {"name": "share", "type": "percent"},
    {"name": "ratio", "type": "decimal", "precision": 6, "scale": 4},
    {"name": "whole", "type": "decimal", "precision": 5, "scale": 0},
    {"name": "capped", "type": "decimal", "precision": 10, "scale": 2, "max": 500},
    {"name": "floored", "type": "currency", "min": -10},
    {"name": "count", "type": "integer"},
    {"name": "label", "type": "text"},
    {"name": "when", "type": "date"},
]


def outcome(fitting: Any, value: Any) -> tuple[str, Any]:
    try:
        result = fitting(value)
    except RuleValueError as error:
        return "refused", str(error)
    if isinstance(result, Decimal):
        # Equal Decimals can differ in their digits ("1.0" and "1.00").
        return "value", ("Decimal", str(result))
    return "value", (type(result).__name__, result)


def same(spec: dict[str, Any], value: Any) -> None:
    expected = outcome(lambda v: fit(spec, v), value)
    assert outcome(fitter(spec), value) == expected, (spec, value)


EDGES = [
    None,
    0,
    -0,
    Decimal("0"),
    Decimal("-0.000"),
    Decimal("0.005"),
    Decimal("-0.005"),
    Decimal("0.015"),
    Decimal("2.675"),
    Decimal("123.456789"),
    Decimal("9999999999999.99"),
    Decimal("9999999999999.995"),
    Decimal("10000000000000"),
    Decimal("-9999999999999.994"),
    Decimal("1E+40"),
    Decimal("1E-40"),
    Decimal("9E+999999"),
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    12,
    -7,
    10**20,
    True,
    False,
    1.005,
    float("nan"),
    float("inf"),
    "12.5",
    "",
    "twelve",
    [],
    {"id": 3},
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec["name"])
@pytest.mark.parametrize("value", EDGES, ids=repr)
def test_edges_fit_as_fit_does(spec: dict[str, Any], value: Any) -> None:
    same(spec, value)


NUMBERS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-(10**16), max_value=10**16, places=4),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=400, deadline=None)
@given(spec=st.sampled_from(SPECS), value=NUMBERS)
def test_random_numbers_fit_as_fit_does(spec: dict[str, Any], value: Any) -> None:
    same(spec, value)


def test_the_shortcut_rounds_half_away_from_zero() -> None:
    fits = fitter({"name": "amount", "type": "currency"})
    assert str(fits(Decimal("2.675"))) == "2.68"
    assert str(fits(Decimal("-2.675"))) == "-2.68"
    assert str(fits(7)) == "7.00"
