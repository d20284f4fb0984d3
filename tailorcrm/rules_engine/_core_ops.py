"""The JSON Logic operators: the classic set and the community's additions.

Semantics follow json-logic-js where the official suite pins them, and the JSON
Logic community specification (https://github.com/json-logic) where it goes
further: chained comparisons, ``val`` with scopes, ``??``, ``exists``, ``try`` and
``throw``, and failures instead of ``NaN``.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ._access import has_key, scope_at, step, var_keys, walk
from ._errors import EvaluationError, invalid_arguments, nan
from ._registry import (
    LIST,
    SINGLE,
    Fn,
    Operands,
    child_scope,
    eager,
    is_operation,
    register,
    register_eager,
    root_of,
    scalar_operand,
)
from ._values import (
    MAX_TEXT,
    Number,
    check_finite,
    greater,
    greater_equal,
    is_blank,
    less,
    less_equal,
    loose_equal,
    same_scale,
    strict_equal,
    to_number,
    to_text,
    truthy,
    written_moment_test,
)

# -- data access -------------------------------------------------------------------


@register("var", form=SINGLE, max_args=2)
def _build_var(operands: Operands) -> Fn:
    is_literal, path = operands.literal(0)
    if operands.raw is not None and (is_literal or not operands.raw):
        default = operands.fns[1] if len(operands.fns) > 1 else None
        return _var_reader(var_keys(path), default)

    fns = operands.fns

    def computed(data: Any, scope: Any) -> Any:
        path = fns[0](data, scope) if fns else None
        value = _read_var(data, scope, var_keys(path))
        if value is None and len(fns) > 1:
            return fns[1](data, scope)
        return value

    return computed


def _read_var(data: Any, scope: Any, keys: list[str]) -> Any:
    # Names that start with "$" ($user, $prior, $now) belong to the record being
    # saved, so they read from the top even inside map, filter and the like.
    if keys and keys[0].startswith("$") and scope is not None:
        data = root_of(data, scope)
    return walk(data, keys)


def _var_reader(keys: list[str], default: Fn | None) -> Fn:
    if not keys:
        return lambda data, scope: data
    if len(keys) == 1 and not keys[0].startswith("$"):
        (key,) = keys

        def read_key(data: Any, scope: Any) -> Any:
            value = data.get(key) if type(data) is dict else step(data, key)
            if value is None and default is not None:
                return default(data, scope)
            return value

        return read_key

    def read_path(data: Any, scope: Any) -> Any:
        value = _read_var(data, scope, keys)
        if value is None and default is not None:
            return default(data, scope)
        return value

    return read_path


def _val_keys(path: Any) -> list[Any]:
    if path is None:
        return []
    if isinstance(path, (list, tuple)):
        return list(path)
    return [path]


def _read_val(data: Any, scope: Any, keys: list[Any]) -> Any:
    if keys and isinstance(keys[0], list):
        levels = keys[0][0] if keys[0] else 0
        if isinstance(levels, bool) or not isinstance(levels, (int, float)):
            raise invalid_arguments("A val scope must be a number of levels.")
        data = scope_at(data, scope, abs(int(levels)))
        keys = keys[1:]
    return walk(data, keys)


@register("val", form=SINGLE)
def _build_val(operands: Operands) -> Fn:
    raw = operands.raw
    if raw is not None and not any(is_operation(item) for item in raw):
        keys = list(raw)
        if len(keys) == 1 and not isinstance(keys[0], list):
            keys = _val_keys(keys[0])
        if keys and isinstance(keys[0], list):
            return lambda data, scope: _read_val(data, scope, keys)
        return lambda data, scope: walk(data, keys)

    fns = operands.fns

    def computed(data: Any, scope: Any) -> Any:
        values = [fn(data, scope) for fn in fns]
        keys = _val_keys(values[0]) if len(values) == 1 else values
        return _read_val(data, scope, keys)

    return computed


@register("exists", form=SINGLE, result="boolean")
def _build_exists(operands: Operands) -> Fn:
    fns = operands.fns

    def exists(data: Any, scope: Any) -> bool:
        values = [fn(data, scope) for fn in fns]
        keys = _val_keys(values[0]) if len(values) == 1 else values
        for key in keys:
            if not has_key(data, key):
                return False
            data = step(data, key)
        return True

    return exists


def _missing_keys(data: Any, keys: list[Any]) -> list[Any]:
    absent = []
    for key in keys:
        if type(data) is dict and type(key) is str and key and "." not in key:
            value = data.get(key)
        else:
            value = walk(data, var_keys(key))
        if is_blank(value):
            absent.append(key)
    return absent


@register("missing", result="list")
def _build_missing(operands: Operands) -> Fn:
    fns, dynamic = operands.fns, operands.dynamic
    raw = operands.raw
    if raw and all(scalar_operand(operands, index)[0] for index in range(len(raw))):
        # Names written in the rule, the usual case, are read once.
        names = list(raw)
        return lambda data, scope: _missing_keys(data, names)

    def missing(data: Any, scope: Any) -> list[Any]:
        if dynamic is not None:
            values = dynamic(data, scope)
        else:
            values = [fn(data, scope) for fn in fns]
        if isinstance(values, list) and values and isinstance(values[0], list):
            values = values[0]
        elif not isinstance(values, list):
            values = [values]
        return _missing_keys(data, values)

    return missing


@register("missing_some", min_args=2, max_args=2, result="list")
def _build_missing_some(operands: Operands) -> Fn:
    fns = operands.fns

    def missing_some(data: Any, scope: Any) -> list[Any]:
        if operands.dynamic is not None:
            values = operands.dynamic(data, scope)
            if not isinstance(values, list) or len(values) != 2:
                raise invalid_arguments("missing_some needs [count, keys].")
        else:
            values = [fn(data, scope) for fn in fns]
        need, keys = to_number(values[0]), values[1]
        keys = keys if isinstance(keys, list) else [keys]
        absent = _missing_keys(data, keys)
        return [] if len(keys) - len(absent) >= need else absent

    return missing_some


# -- logic ---------------------------------------------------------------------------


def _build_if(operands: Operands) -> Fn:
    fns = operands.fns
    if not fns:
        return lambda data, scope: None
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 3:
        condition, then, otherwise = fns
        return lambda data, scope: (
            then(data, scope)
            if truthy(condition(data, scope))
            else otherwise(data, scope)
        )

    pairs = [(fns[index], fns[index + 1]) for index in range(0, len(fns) - 1, 2)]
    otherwise_fn = fns[-1] if len(fns) % 2 else None

    def chain(data: Any, scope: Any) -> Any:
        for condition, then in pairs:
            if truthy(condition(data, scope)):
                return then(data, scope)
        return otherwise_fn(data, scope) if otherwise_fn is not None else None

    return chain


register("if", form=LIST)(_build_if)
register("?:", form=LIST)(_build_if)


@register("and", form=LIST)
def _build_and(operands: Operands) -> Fn:
    fns = operands.fns
    if not fns:
        # An empty group matches nothing, so a filter built without conditions never
        # selects every record by accident.
        return lambda data, scope: False

    def all_of(data: Any, scope: Any) -> Any:
        value = None
        for fn in fns:
            value = fn(data, scope)
            # Most operands are comparisons: their booleans need no call.
            if value is True:
                continue
            if value is False or value is None or not truthy(value):
                return value
        return value

    return all_of


@register("or", form=LIST)
def _build_or(operands: Operands) -> Fn:
    fns = operands.fns
    if not fns:
        return lambda data, scope: False

    def any_of(data: Any, scope: Any) -> Any:
        value = None
        for fn in fns:
            value = fn(data, scope)
            if value is True or (
                value is not False and value is not None and truthy(value)
            ):
                return value
        return value

    return any_of


@register("!", form=SINGLE, result="boolean")
def _build_not(operands: Operands) -> Fn:
    if not operands.fns:
        return lambda data, scope: True
    first = operands.fns[0]

    def negated(data: Any, scope: Any) -> bool:
        value = first(data, scope)
        return (
            value is False or value is None or (value is not True and not truthy(value))
        )

    return negated


@register("!!", form=SINGLE, result="boolean")
def _build_truthy(operands: Operands) -> Fn:
    if not operands.fns:
        return lambda data, scope: False
    first = operands.fns[0]
    return lambda data, scope: truthy(first(data, scope))


@register("??", form=LIST)
def _build_first_present(operands: Operands) -> Fn:
    fns = operands.fns

    def first_present(data: Any, scope: Any) -> Any:
        for fn in fns:
            value = fn(data, scope)
            if value is not None:
                return value
        return None

    return first_present


@register("throw", form=SINGLE, min_args=1, max_args=1)
def _build_throw(operands: Operands) -> Fn:
    (error_fn,) = operands.fns

    def throw(data: Any, scope: Any) -> Any:
        error = error_fn(data, scope)
        if isinstance(error, Mapping) and "type" in error:
            raise EvaluationError(to_text(error["type"]), value=dict(error))
        raise EvaluationError(to_text(error))

    return throw


@register("try", form=SINGLE)
def _build_try(operands: Operands) -> Fn:
    fns = operands.fns

    def attempt(data: Any, scope: Any) -> Any:
        error: EvaluationError | None = None
        for fn in fns:
            try:
                if error is None:
                    return fn(data, scope)
                # A fallback sees the error as its data, and the outer data two
                # levels up, as inside map.
                return fn(error.value, child_scope({}, data, scope))
            except EvaluationError as caught:
                error = caught
        if error is not None:
            raise error
        return None

    return attempt


@register("preserve", form=SINGLE, max_args=1)
def _build_preserve(operands: Operands) -> Fn:
    # The compiler hands preserve its operand as written, without compiling it.
    return literal_copy(operands.raw[0] if operands.raw else None)


# -- comparisons ---------------------------------------------------------------------


def _register_comparison(
    name: str,
    test: Callable[[Any, Any], bool],
    on_moments: Callable[[Any, Any], Any] | None = None,
) -> None:
    """Register a comparison, chained when it has more than two operands.

    ``on_moments`` is the same comparison between two dates or datetimes, for a
    comparison that treats ISO text and dates alike; the ISO dates written in a
    rule are then read once, when it is compiled.
    """

    def build(operands: Operands) -> Fn:
        fns = operands.fns
        tests = tuple(
            _pair_test(operands, index, test, on_moments)
            for index in range(len(fns) - 1)
        )
        if len(fns) == 2:
            left, right = fns
            (pair_test,) = tests
            # Most rules compare a field with a value written in the rule.
            is_value, value = scalar_operand(operands, 1)
            if is_value:
                return lambda data, scope: pair_test(left(data, scope), value)
            return lambda data, scope: pair_test(left(data, scope), right(data, scope))

        first, rest = fns[0], tuple(zip(fns[1:], tests, strict=True))

        def chained(data: Any, scope: Any) -> bool:
            previous = first(data, scope)
            for fn, pair_test in rest:
                current = fn(data, scope)
                if not pair_test(previous, current):
                    return False
                previous = current
            return True

        return chained

    register(name, form=LIST, min_args=2, result="boolean")(build)


def _pair_test(
    operands: Operands,
    index: int,
    test: Callable[[Any, Any], bool],
    on_moments: Callable[[Any, Any], Any] | None,
) -> Callable[[Any, Any], bool]:
    """The test between operands ``index`` and ``index + 1``."""
    if on_moments is None:
        return test

    first_written, first = scalar_operand(operands, index)
    second_written, second = scalar_operand(operands, index + 1)
    if first_written == second_written:
        # Nothing is written in the rule, or both are: no side to read ahead.
        return test
    moment_test = written_moment_test(
        test,
        on_moments,
        first if first_written else second,
        written_first=first_written,
    )
    return moment_test or test


_register_comparison("==", loose_equal, operator.eq)
_register_comparison(
    "!=", lambda left, right: not loose_equal(left, right), operator.ne
)
_register_comparison("===", strict_equal)
_register_comparison("!==", lambda left, right: not strict_equal(left, right))
_register_comparison("<", less, operator.lt)
_register_comparison("<=", less_equal, operator.le)
_register_comparison(">", greater, operator.gt)
_register_comparison(">=", greater_equal, operator.ge)


# -- arithmetic ----------------------------------------------------------------------


_INF = math.inf


def _joins_decimal(total: Number, value: Any) -> bool:
    """Whether ``value`` is a finite Decimal joining an int or Decimal, or an int
    joining a Decimal: :func:`to_number` and :func:`same_scale` would leave both
    as they are, so the step of arithmetic can take them directly."""
    kind = type(value)
    if kind is Decimal:
        return value.is_finite() and type(total) is not float
    return kind is int and type(total) is Decimal


def _plus(values: list[Any]) -> Number:
    try:
        return _sum(values)
    except OverflowError:
        # A whole number past the float range met a float.
        raise nan("The result is out of range.") from None


def _sum(values: list[Any]) -> Number:
    total: Number = 0
    for value in values:
        # Ints and finite floats are their own numbers: skip the general path.
        kind = type(value)
        if (kind is int or (kind is float and -_INF < value < _INF)) and type(
            total
        ) is not Decimal:
            total += value
            continue
        if _joins_decimal(total, value):
            left, right = total, value
        else:
            left, right = same_scale(total, to_number(value))
        total = _exact(operator.add, left, right)
    return check_finite(total)


def _times(values: list[Any]) -> Number:
    try:
        return _product(values)
    except OverflowError:
        raise nan("The result is out of range.") from None


def _product(values: list[Any]) -> Number:
    product: Number = 1
    for value in values:
        kind = type(value)
        if (kind is int or (kind is float and -_INF < value < _INF)) and type(
            product
        ) is not Decimal:
            product *= value
            continue
        if _joins_decimal(product, value):
            left, right = product, value
        else:
            left, right = same_scale(product, to_number(value))
        product = _exact(operator.mul, left, right)
    return check_finite(product)


def _minus(values: list[Any]) -> Number:
    if len(values) == 1:
        return -to_number(values[0])
    result = to_number(values[0])
    for value in values[1:]:
        if _joins_decimal(result, value):
            left, right = result, value
        else:
            left, right = same_scale(result, to_number(value))
        result = _exact(operator.sub, left, right)
    return check_finite(result)


def _exact(operation: Callable[[Any, Any], Any], left: Any, right: Any) -> Number:
    """Run one step of decimal arithmetic; a result out of range is a NaN failure.

    ``decimal`` raises ``Overflow`` for exponents past its context's limits, which
    only absurd inputs such as ``9E+999999`` reach.
    """
    try:
        result: Number = operation(left, right)
    except ArithmeticError:
        raise nan("The result is out of range.") from None
    return result


def _divide_pair(dividend: Number, divisor: Number) -> Number:
    dividend, divisor = same_scale(dividend, divisor)
    if divisor == 0:
        raise nan("Division by zero.")
    try:
        return check_finite(dividend / divisor)  # type: ignore[operator]
    except ArithmeticError:
        raise nan("The quotient is out of range.") from None


def _divide(values: list[Any]) -> Number:
    if len(values) == 1:
        return _divide_pair(1, to_number(values[0]))
    result = to_number(values[0])
    for value in values[1:]:
        result = _divide_pair(result, to_number(value))
    return result


def _remainder_pair(dividend: Number, divisor: Number) -> Number:
    # JavaScript's remainder takes the sign of the dividend; Python's % takes the
    # divisor's, so -1 % 2 would be 1 instead of -1.
    dividend, divisor = same_scale(dividend, divisor)
    if divisor == 0:
        raise nan("Remainder of a division by zero.")
    if isinstance(dividend, Decimal) or isinstance(divisor, Decimal):
        try:
            return Decimal(dividend) % Decimal(divisor)
        except ArithmeticError:
            raise nan("The remainder is out of range.") from None
    if isinstance(dividend, int) and isinstance(divisor, int):
        remainder = abs(dividend) % abs(divisor)
        return -remainder if dividend < 0 else remainder
    return math.fmod(dividend, divisor)


def _modulo(values: list[Any]) -> Number:
    result = to_number(values[0])
    for value in values[1:]:
        result = _remainder_pair(result, to_number(value))
    return result


def _extreme(pick_greater: bool) -> Callable[[list[Any]], Number | None]:
    def extreme(values: list[Any]) -> Number | None:
        best: Number | None = None
        for value in values:
            number = to_number(value)
            if best is None:
                best = number
                continue
            left, right = same_scale(number, best)
            if (left > right) if pick_greater else (left < right):  # type: ignore[operator]
                best = number
        return best

    return extreme


register_eager("+", _plus, result="number")
register_eager("*", _times, result="number")
register_eager("-", _minus, min_args=1, result="number")
register_eager("/", _divide, min_args=1, result="number")
register_eager("%", _modulo, min_args=2, result="number")
register_eager("max", _extreme(True), result="number")
register_eager("min", _extreme(False), result="number")


# -- text and lists ------------------------------------------------------------------


def membership(values: list[Any]) -> bool:
    """``in``: text within text, or an item (by ``===``) within a list."""
    if len(values) < 2:
        return False
    return contained(values[0], values[1])


def contained(needle: Any, haystack: Any) -> bool:
    """Whether ``needle`` is in ``haystack``, as ``in`` answers it."""
    if needle is None:
        return False
    if isinstance(haystack, str):
        return to_text(needle) in haystack
    if isinstance(haystack, (list, tuple)):
        if type(needle) is str:
            # Text is strictly equal to exactly the equal texts.
            return needle in haystack
        return any(strict_equal(needle, item) for item in haystack)
    return False


@register("in", result="boolean")
def _build_in(operands: Operands) -> Fn:
    is_literal, haystack = operands.literal(1)
    if is_literal and isinstance(haystack, list) and len(operands.fns) == 2:
        # A list written in the rule ("stage in [won, lost]") is read once.
        items, needle_fn = tuple(haystack), operands.fns[0]
        return lambda data, scope: contained(needle_fn(data, scope), items)
    return eager(membership, operands, 0, None)


#: The longest list an operation makes (the longest text is ``MAX_TEXT``).
#: ``cat`` and ``merge`` inside ``reduce`` can double their result with each
#: item; beyond these the result is a failure rather than memory the server
#: does not have (OPERATIONS.md).
MAX_ITEMS = 100_000


def _cat(values: list[Any]) -> str:
    texts = [to_text(value) for value in values]
    if sum(map(len, texts)) > MAX_TEXT:
        raise invalid_arguments(f"cat would make a text over {MAX_TEXT:,} characters.")
    return "".join(texts)


def _whole(value: Any) -> int:
    # JavaScript truncates toward zero, as int() does.
    return int(to_number(value))


def _substr(values: list[Any]) -> str:
    text = to_text(values[0]) if values else ""
    start = _whole(values[1]) if len(values) > 1 else 0
    if start < 0:
        start = max(len(text) + start, 0)
    rest = text[start:]
    if len(values) < 3 or values[2] is None:
        return rest
    length = _whole(values[2])
    if length < 0:
        return rest[: max(len(rest) + length, 0)]
    return rest[:length]


def _merge(values: list[Any]) -> list[Any]:
    merged: list[Any] = []
    for value in values:
        if isinstance(value, (list, tuple)):
            merged.extend(value)
        else:
            merged.append(value)
        if len(merged) > MAX_ITEMS:
            raise invalid_arguments(
                f"merge would make a list over {MAX_ITEMS:,} items."
            )
    return merged


register_eager("cat", _cat, result="text")
register_eager("substr", _substr, result="text")
register_eager("merge", _merge, result="list")


@register("log", form=SINGLE, max_args=1)
def _build_log(operands: Operands) -> Fn:
    # Rule values can hold personal data, which never goes to the server's log
    # (STYLE.md), so log only hands its operand through.
    if not operands.fns:
        return lambda data, scope: None
    return operands.fns[0]


# -- iteration -----------------------------------------------------------------------


def _iteration(
    name: str, *, min_args: int = 2, max_args: int = 2, null_expression: bool = False
) -> Callable[[Callable[[Operands], Fn]], Callable[[Operands], Fn]]:
    """Register an operator over a list, with the shape checks they share."""

    def decorate(build: Callable[[Operands], Fn]) -> Callable[[Operands], Fn]:
        def checked(operands: Operands) -> Fn:
            raw = operands.raw or []
            if raw and raw[0] is None:
                raise operands.fail(
                    f"{name} needs a list to work on, not null.",
                    index=0,
                    code="invalid_arguments",
                )
            if not null_expression and len(raw) > 1 and raw[1] is None:
                raise operands.fail(
                    f"{name} needs an expression, not null.",
                    index=1,
                    code="invalid_arguments",
                )
            return build(operands)

        result = {"map": "list", "filter": "list", "reduce": "any"}.get(name, "boolean")
        register(name, form=LIST, min_args=min_args, max_args=max_args, result=result)(
            checked
        )
        return build

    return decorate


def _items(value: Any) -> list[Any] | tuple[Any, ...]:
    return value if isinstance(value, (list, tuple)) else ()


def _items_or_fail(value: Any, name: str) -> list[Any] | tuple[Any, ...]:
    if isinstance(value, (list, tuple)):
        return value
    raise invalid_arguments(f"{name} needs a list, not {to_text(value)[:40]!r}.")


@_iteration("map")
def _build_map(operands: Operands) -> Fn:
    source, expression = operands.fns

    def map_items(data: Any, scope: Any) -> list[Any]:
        items = _items(source(data, scope))
        return [
            expression(item, ({"index": index}, data, scope))
            for index, item in enumerate(items)
        ]

    return map_items


@_iteration("filter")
def _build_filter(operands: Operands) -> Fn:
    source, predicate = operands.fns

    def filter_items(data: Any, scope: Any) -> list[Any]:
        items = _items(source(data, scope))
        return [
            item
            for index, item in enumerate(items)
            if truthy(predicate(item, ({"index": index}, data, scope)))
        ]

    return filter_items


@_iteration("reduce", max_args=3)
def _build_reduce(operands: Operands) -> Fn:
    source, expression = operands.fns[0], operands.fns[1]
    initial = operands.fns[2] if len(operands.fns) > 2 else None

    def reduce_items(data: Any, scope: Any) -> Any:
        accumulator = initial(data, scope) if initial is not None else None
        for index, item in enumerate(_items(source(data, scope))):
            context = {"current": item, "accumulator": accumulator}
            accumulator = expression(context, ({"index": index}, data, scope))
        return accumulator

    return reduce_items


def _register_quantifier(name: str, *, stop_on: bool, found: bool) -> None:
    """Register ``all``, ``some`` or ``none``.

    Each walks the items until one whose truthiness is ``stop_on`` and then answers
    ``found``; otherwise (an empty list included, except for ``none``) the opposite.
    """
    empty = name == "none"

    @_iteration(name, null_expression=True)
    def build(operands: Operands) -> Fn:
        source, predicate = operands.fns

        def quantify(data: Any, scope: Any) -> bool:
            items = _items_or_fail(source(data, scope), name)
            if not items:
                return empty
            for index, item in enumerate(items):
                if truthy(predicate(item, ({"index": index}, data, scope))) is stop_on:
                    return found
            return not found

        return quantify


# An empty list has no item that passes, so "all" is false for it, as in the
# official suite.
_register_quantifier("all", stop_on=False, found=False)
_register_quantifier("some", stop_on=True, found=True)
_register_quantifier("none", stop_on=True, found=False)


def literal_copy(value: Any) -> Fn:
    """A closure giving a fresh copy of a literal, so no caller can change the rule."""
    if isinstance(value, (dict, list)):
        return lambda data, scope: copy.deepcopy(value)
    return lambda data, scope: value
