"""The CRM operations: dates, text, blanks, prior values, coalesce and round.

Their contract differs from the arithmetic of JSON Logic in one way: they never
fail. An operand they cannot use (a date that does not parse, text where a number
belongs, a missing relation) gives ``None``, and ``None`` in gives ``None`` out
unless the operation is about blanks. OPERATIONS.md documents each with examples.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from threading import Lock
from typing import Any

from . import _dates
from ._access import var_keys, walk
from ._core_ops import contained
from ._errors import EvaluationError, invalid_arguments
from ._regex import Pattern, PatternError
from ._registry import (
    LIST,
    SINGLE,
    Fn,
    Operands,
    eager,
    register,
    register_eager,
    root_of,
)
from ._values import (
    MAX_TEXT,
    Number,
    is_blank,
    same_value,
    to_number,
    to_text,
)

# -- the clock -----------------------------------------------------------------------


def _clock(data: Any, scope: Any) -> dt.datetime:
    """The current moment: ``$now`` in the record's data when the caller set it.

    The record service sets ``$now`` once per save, so every rule of one save sees
    the same instant; tests set it to fix the clock.
    """
    root = root_of(data, scope)
    if isinstance(root, Mapping):
        fixed = _dates.parse(root.get("$now"))
        if isinstance(fixed, dt.datetime):
            return fixed
        if fixed is not None:
            return dt.datetime(fixed.year, fixed.month, fixed.day, tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)


@register("today", form=LIST, max_args=0, result="date")
def _build_today(operands: Operands) -> Fn:
    return lambda data, scope: _clock(data, scope).date()


@register("now", form=LIST, max_args=0, result="datetime")
def _build_now(operands: Operands) -> Fn:
    return _clock


# -- dates ---------------------------------------------------------------------------


def _whole_number(value: Any) -> int | None:
    if type(value) is int:
        return value
    if value is None or isinstance(value, bool):
        return None
    try:
        number = to_number(value)
    except EvaluationError:
        return None
    if isinstance(number, int):
        return number
    if number != int(number):
        return None
    return int(number)


def _check_unit(operands: Operands, index: int) -> None:
    is_literal, unit = operands.literal(index)
    if is_literal and unit not in _dates.UNITS:
        raise operands.fail(
            f"The unit must be one of {', '.join(_dates.UNITS)}, not {unit!r}.",
            index=index,
            code="invalid_unit",
        )


def _date_add(values: list[Any]) -> dt.date | None:
    start = _dates.parse(values[0])
    amount = _whole_number(values[1])
    unit = values[2]
    if start is None or amount is None or unit not in _dates.UNITS:
        return None
    return _dates.add(start, amount, unit)


def _date_diff(values: list[Any]) -> int | None:
    unit = values[2] if len(values) > 2 else "days"
    return _difference(values[0], values[1], unit)


def _difference(start: Any, end: Any, unit: Any) -> int | None:
    first, last = _dates.parse(start), _dates.parse(end)
    if first is None or last is None or unit not in _dates.UNITS:
        return None
    return _dates.diff(first, last, unit)


@register("date_add", min_args=3, max_args=3, result="date")
def _build_date_add(operands: Operands) -> Fn:
    _check_unit(operands, 2)
    return eager(_date_add, operands, 3, 3)


@register("date_diff", min_args=2, max_args=3, result="number")
def _build_date_diff(operands: Operands) -> Fn:
    _check_unit(operands, 2)
    fns = operands.fns
    is_literal, unit = operands.literal(2) if len(fns) == 3 else (True, "days")
    if operands.dynamic is not None or not is_literal:
        return eager(_date_diff, operands, 2, 3)

    # The usual form, two dates and a unit written in the rule (checked above).
    start, end = fns[0], fns[1]
    return lambda data, scope: _difference(start(data, scope), end(data, scope), unit)


# -- text ----------------------------------------------------------------------------


def _lower(values: list[Any]) -> str | None:
    return _fitting(values[0].lower(), "lower") if isinstance(values[0], str) else None


def _upper(values: list[Any]) -> str | None:
    return _fitting(values[0].upper(), "upper") if isinstance(values[0], str) else None


def _fitting(text: str, name: str) -> str:
    # A character may change case into more than one ("ß" is "SS"), so a text
    # within the limit can come out past it.
    if len(text) > MAX_TEXT:
        raise invalid_arguments(
            f"{name} would make a text over {MAX_TEXT:,} characters."
        )
    return text


def _length(values: list[Any]) -> int | None:
    value = values[0]
    if value is None:
        return 0
    if isinstance(value, (str, list, tuple)):
        return len(value)
    return None


def _contains(values: list[Any]) -> bool:
    return contained(values[1], values[0])


def _starts_with(values: list[Any]) -> bool:
    text, prefix = values
    if not isinstance(text, str) or prefix is None or isinstance(prefix, (list, dict)):
        return False
    return text.startswith(to_text(prefix))


register_eager("lower", _lower, form=SINGLE, min_args=1, max_args=1, result="text")
register_eager("upper", _upper, form=SINGLE, min_args=1, max_args=1, result="text")
register_eager("length", _length, form=SINGLE, min_args=1, max_args=1, result="number")
register_eager("contains", _contains, min_args=2, max_args=2, result="boolean")
register_eager("starts_with", _starts_with, min_args=2, max_args=2, result="boolean")


_patterns: OrderedDict[str, Pattern] = OrderedDict()
_patterns_lock = Lock()


def compiled_pattern(source: str) -> Pattern:
    """A compiled pattern, kept for reuse when it came from data.

    :raises PatternError: the pattern is unsupported or too large.
    """
    with _patterns_lock:
        pattern = _patterns.get(source)
        if pattern is not None:
            _patterns.move_to_end(source)
            return pattern
    pattern = Pattern(source)
    with _patterns_lock:
        _patterns[source] = pattern
        if len(_patterns) > 128:
            _patterns.popitem(last=False)
    return pattern


def _match(text: Any, pattern: Pattern) -> bool | None:
    if text is None or isinstance(text, (bool, list, tuple, Mapping)):
        return False
    try:
        return pattern.search(text if isinstance(text, str) else to_text(text))
    except PatternError:
        return None


@register("matches", min_args=2, max_args=2, result="boolean")
def _build_matches(operands: Operands) -> Fn:
    is_literal, source = operands.literal(1)
    if is_literal:
        if not isinstance(source, str):
            raise operands.fail(
                "The pattern must be text.", index=1, code="invalid_pattern"
            )
        try:
            pattern = Pattern(source)
        except PatternError as error:
            raise operands.fail(str(error), index=1, code="invalid_pattern") from None
        text_fn = operands.fns[0]
        return lambda data, scope: _match(text_fn(data, scope), pattern)

    def matches(values: list[Any]) -> bool | None:
        if not isinstance(values[1], str):
            return None
        try:
            return _match(values[0], compiled_pattern(values[1]))
        except PatternError:
            return None

    return eager(matches, operands, 2, 2)


# -- blanks, prior values, coalesce --------------------------------------------------


@register("is_blank", form=SINGLE, min_args=1, max_args=1, result="boolean")
def _build_is_blank(operands: Operands) -> Fn:
    (value_fn,) = operands.fns
    return lambda data, scope: is_blank(value_fn(data, scope))


def _prior_and_current(data: Any, scope: Any, name: Any) -> tuple[bool, Any, Any]:
    root = root_of(data, scope)
    prior = root.get("$prior") if isinstance(root, Mapping) else None
    if not isinstance(prior, Mapping) or not isinstance(name, str):
        return False, None, None
    keys = var_keys(name)
    return True, walk(prior, keys), walk(root, keys)


@register("changed", form=SINGLE, min_args=1, max_args=1, result="boolean")
def _build_changed(operands: Operands) -> Fn:
    (name_fn,) = operands.fns

    def changed(data: Any, scope: Any) -> bool:
        known, before, after = _prior_and_current(data, scope, name_fn(data, scope))
        return known and not same_value(before, after)

    return changed


@register("prior", form=SINGLE, min_args=1, max_args=1)
def _build_prior(operands: Operands) -> Fn:
    (name_fn,) = operands.fns
    return lambda data, scope: _prior_and_current(data, scope, name_fn(data, scope))[1]


@register("coalesce", form=LIST)
def _build_coalesce(operands: Operands) -> Fn:
    fns = operands.fns

    def coalesce(data: Any, scope: Any) -> Any:
        for fn in fns:
            try:
                value = fn(data, scope)
            except EvaluationError:
                # A failed operand counts as no value: coalesce is how a formula
                # says what to use when a division has no divisor.
                continue
            if not is_blank(value):
                return value
        return None

    return coalesce


# -- numbers -------------------------------------------------------------------------

_MAX_DIGITS = 20
# The quantum each number of digits rounds to: 2 is 0.01, -2 is 1E+2.
_QUANTA = {
    digits: Decimal(1).scaleb(-digits)
    for digits in range(-_MAX_DIGITS, _MAX_DIGITS + 1)
}


def _round(values: list[Any]) -> Number | None:
    value = values[0]
    digits = _whole_number(values[1]) if len(values) > 1 else 0
    if digits is None or abs(digits) > _MAX_DIGITS:
        return None
    if type(value) is Decimal and value.is_finite():
        # What currency and percent fields hold, rounded as it is.
        return _quantize(value, digits)
    if value is None or isinstance(value, (list, tuple, Mapping)):
        return None
    try:
        number = to_number(value)
    except EvaluationError:
        return None

    exact = Decimal(repr(number)) if isinstance(number, float) else Decimal(number)
    rounded = _quantize(exact, digits)
    if rounded is None or isinstance(number, Decimal):
        return rounded
    if isinstance(number, float):
        return float(rounded)
    return int(rounded)


def _quantize(exact: Decimal, digits: int) -> Decimal | None:
    try:
        return exact.quantize(_QUANTA[digits], rounding=ROUND_HALF_UP)
    except ArithmeticError:
        return None


register_eager("round", _round, min_args=1, max_args=2, result="number")
