"""How values behave: truthiness, numbers, text, equality and order.

These follow JavaScript, as JSON Logic does, with three deliberate differences
that the module documentation of the package lists: a value without a number
(``"abc"``, a list, an object, a division by zero) makes the operation fail
instead of giving ``NaN``; text in ISO 8601 form and date objects compare as
moments; and :class:`decimal.Decimal` is a number like any other.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
import sys
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from . import _dates
from ._errors import invalid_arguments, nan

Number = int | float | Decimal

_NUMERIC_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Longer numerals are refused before Python's own limit on integer digits refuses
# them less politely.
_MAX_NUMERAL = 400
#: The largest whole number the language takes: JavaScript's largest number.
#: Python's whole numbers have no limit, but one past this cannot meet a float
#: (``int + 0.5`` overflows) and would not be a number in a browser.
INT_LIMIT = int(sys.float_info.max)
# Every whole number below this is a float exactly, and written with all its digits.
_EXACT_FLOAT = 2**53


def truthy(value: Any) -> bool:
    """JSON Logic truthiness: JavaScript's, except that an empty list is false."""
    if value is None or value is False:
        return False
    if value is True:
        return True

    kind = type(value)
    if kind is str or kind is list:
        return len(value) > 0
    if kind is int:
        return value != 0
    if kind is float:
        # NaN is false in JavaScript, and NaN != NaN.
        return value == value and value != 0
    if isinstance(value, Decimal):
        return not (value.is_zero() or value.is_nan())
    if isinstance(value, (str, list, tuple)):
        return len(value) > 0
    return True


def is_blank(value: Any) -> bool:
    """The one meaning of "no value": null, empty text or an empty list."""
    if value is None:
        return True
    if isinstance(value, (str, list, tuple)):
        return len(value) == 0
    return False


def to_number(value: Any) -> Number:
    """JavaScript's ``Number(value)``, failing where JavaScript gives ``NaN``.

    Booleans are 1 and 0, null and empty text are 0, text must be a decimal
    numeral (surrounding whitespace allowed). Lists, objects and dates have no
    number.

    :raises EvaluationError: of type ``NaN``.
    """
    kind = type(value)
    if kind is int:
        if -INT_LIMIT <= value <= INT_LIMIT:
            return value
        raise nan("The number is too large.")
    if kind is float:
        if math.isfinite(value):
            return value
        raise nan("The number is not finite.")
    if isinstance(value, Decimal):
        if _finite_decimal(value):
            return value
        raise nan("The number is not finite or too large.")
    if value is None:
        return 0
    if kind is bool:
        return int(value)
    if kind is str:
        return _parse_number(value)
    if isinstance(value, (int, float)):
        return to_number(int(value) if isinstance(value, int) else float(value))
    raise nan(f"{type_name(value)} has no numeric value.")


def _parse_number(text: str) -> Number:
    text = text.strip()
    if not text:
        return 0
    if len(text) > _MAX_NUMERAL or not _NUMERIC_TEXT.fullmatch(text):
        raise nan(f"{text[:40]!r} is not a number.")
    if "." in text or "e" in text or "E" in text:
        number = float(text)
        if not math.isfinite(number):
            raise nan(f"{text[:40]!r} is too large.")
        return number
    return int(text)


def looks_numeric(text: str) -> bool:
    """Whether ``to_number`` reads ``text`` as a number (rather than failing)."""
    text = text.strip()
    return not text or bool(_NUMERIC_TEXT.fullmatch(text))


def same_scale(left: Number, right: Number) -> tuple[Number, Number]:
    """Make a float and a Decimal meet as Decimals (through the float's shortest text).

    Python refuses to add a float to a Decimal, and compares them exactly, so that
    ``Decimal("0.1") != 0.1``; reading the float as its shortest text makes the two
    agree the way a person reading them would.
    """
    if type(left) is float and isinstance(right, Decimal):
        return Decimal(repr(left)), right
    if type(right) is float and isinstance(left, Decimal):
        return left, Decimal(repr(right))
    return left, right


_DECIMAL_LIMIT = Decimal(INT_LIMIT)


def _finite_decimal(value: Decimal) -> bool:
    """Finite, and within JavaScript's numbers like every number of the language."""
    if not value.is_finite():
        return False
    # adjusted() is the power of ten of the leading digit: cheap, and exact enough
    # to leave the exact comparison to the rare numbers near the limit.
    return value.adjusted() < 308 or value.copy_abs() <= _DECIMAL_LIMIT


def check_finite(value: Number) -> Number:
    kind = type(value)
    if kind is float and not math.isfinite(value):
        raise nan("The result is too large.")
    if kind is int and not -INT_LIMIT <= value <= INT_LIMIT:
        raise nan("The result is too large.")
    if isinstance(value, Decimal) and not _finite_decimal(value):
        raise nan("The result is not finite or too large.")
    return value


def number_text(value: Number) -> str:
    """JavaScript's text for a number: ``2``, ``0.5``, ``1e-7``, ``1e+21``."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if value.is_zero():
            return "0"
        return format(value.normalize(), "f")
    if value == 0:
        return "0"
    # Past 2**53 a whole float has more digits than JavaScript writes (1.1 * 1e17
    # is 110000000000000016, written 110000000000000020): the shortest digits below.
    if value.is_integer() and abs(value) < _EXACT_FLOAT:
        return str(int(value))

    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    if not isinstance(exponent, int):  # pragma: no cover - finite floats have one
        return repr(value)
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent += len(digit_tuple) - len(digits)
    point = exponent + len(digits)
    if len(digits) <= point <= 21:
        text = digits + "0" * (point - len(digits))
    elif 0 < point <= 21:
        text = f"{digits[:point]}.{digits[point:]}"
    elif -6 < point <= 0:
        text = "0." + "0" * -point + digits
    else:
        mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
        text = f"{mantissa}e{'+' if point - 1 >= 0 else '-'}{abs(point - 1)}"
    return ("-" if sign else "") + text


#: The longest text an operation makes (OPERATIONS.md).
MAX_TEXT = 1_000_000


def to_text(value: Any) -> str:
    """JavaScript's ``String(value)``, except that null is empty text."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float, Decimal)):
        return number_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return _list_text(value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def _list_text(items: list[Any] | tuple[Any, ...]) -> str:
    """A list's text, failing once it grows past :data:`MAX_TEXT`: a list of
    long texts would otherwise take the memory before any operation's own
    limit could refuse the result."""
    texts = []
    size = -1
    for item in items:
        text = to_text(item)
        size += len(text) + 1
        if size > MAX_TEXT:
            raise invalid_arguments(
                f"A list would make a text over {MAX_TEXT:,} characters."
            )
        texts.append(text)
    return ",".join(texts)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dt.date):
        return "a date"
    return "an object"


def _temporal_pair(left: Any, right: Any) -> tuple[Any, Any] | None:
    """Both values as moments when one is a date object or both are ISO text."""
    left_is_object = isinstance(left, dt.date)
    right_is_object = isinstance(right, dt.date)
    if not (left_is_object or right_is_object):
        if type(left) is str and type(right) is str:
            start = _dates.text_instant(left)
            end = _dates.text_instant(right) if start is not None else None
            if start is not None and end is not None:
                return start, end
        return None

    first, second = _dates.parse(left), _dates.parse(right)
    if first is None or second is None:
        raise nan(f"{type_name(left)} and {type_name(right)} do not compare as dates.")
    return _dates.instant(first), _dates.instant(second)


def loose_equal(left: Any, right: Any) -> bool:
    """JSON Logic ``==``: JavaScript's loose equality, without its traps.

    Null equals only null. Text meets a number as a number; ``1 == "abc"`` and
    any comparison of a list or object fail rather than answer ``false``.
    """
    if left is None or right is None:
        return left is None and right is None

    kind = type(left)
    if kind is type(right) and (kind is str or kind is int):
        if kind is str and len(left) >= 10 and _dates.looks_temporal(left):
            return _ordered(left, right, _EQ)
        return bool(left == right)
    if _plain_numbers(left, right) or _exact_numbers(left, right):
        return bool(left == right)
    return _ordered(left, right, _EQ)


def strict_equal(left: Any, right: Any) -> bool:
    """JSON Logic ``===``: same kind of value and same value, nothing converted.

    Numbers are one kind (``1 === 1.0``, ``Decimal("2.50") === 2.5``); lists and
    objects are equal when their items are.
    """
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float, Decimal)):
        if not isinstance(right, (int, float, Decimal)):
            return False
        first, second = same_scale(left, right)
        return bool(first == second)
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if isinstance(left, (list, tuple)):
        if not isinstance(right, (list, tuple)) or len(left) != len(right):
            return False
        return all(strict_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, Mapping):
        if not isinstance(right, Mapping) or left.keys() != right.keys():
            return False
        return all(strict_equal(left[key], right[key]) for key in left)
    if isinstance(left, dt.date) and isinstance(right, dt.date):
        if isinstance(left, dt.datetime) != isinstance(right, dt.datetime):
            return False
        return _dates.instant(left) == _dates.instant(right)
    return bool(left == right)


_EQ, _LT, _LE, _GT, _GE = range(5)


def _ordered(left: Any, right: Any, test: int) -> bool:
    first, second = comparable(left, right)
    if test == _EQ:
        return bool(first == second)
    if test == _LT:
        return bool(first < second)
    if test == _LE:
        return bool(first <= second)
    if test == _GT:
        return bool(first > second)
    return bool(first >= second)


def comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Turn two operands of ``<``, ``>``, ``<=``, ``>=`` into values Python orders.

    Null counts as 0 and booleans as 1 and 0, as in JavaScript; two texts compare
    by character unless both are ISO dates; text meets a number as a number.

    :raises EvaluationError: of type ``NaN`` when there is no common order.
    """
    temporal = _temporal_pair(left, right)
    if temporal is not None:
        return temporal

    if type(left) is str and type(right) is str:
        return left, right
    if isinstance(left, (list, tuple, Mapping)) or isinstance(
        right, (list, tuple, Mapping)
    ):
        raise nan(f"{type_name(left)} and {type_name(right)} do not compare.")
    return same_scale(to_number(left), to_number(right))


_INF = math.inf


def _plain_numbers(left: Any, right: Any) -> bool:
    """Two ints or finite floats (not booleans), which order as JavaScript's."""
    kind_left, kind_right = type(left), type(right)
    return (
        (kind_left is int or (kind_left is float and -_INF < left < _INF))
        and (kind_right is int or (kind_right is float and -_INF < right < _INF))
    )  # fmt: skip


def _exact_numbers(left: Any, right: Any) -> bool:
    """A finite Decimal with an int or another finite Decimal (not booleans).

    :func:`comparable` hands such a pair back unchanged (only a float meeting a
    Decimal is converted), and Python compares them exactly. A Decimal field
    against a whole number written in a rule (``amount > 50000``) is the usual case.
    """
    kind_left, kind_right = type(left), type(right)
    if kind_left is Decimal:
        return left.is_finite() and (
            kind_right is int or (kind_right is Decimal and right.is_finite())
        )
    return kind_left is int and kind_right is Decimal and right.is_finite()


def _order_test(test: int, compare: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    """An ordering test that skips :func:`comparable` for the common operands.

    Two ints or finite floats, a finite Decimal with an int or a finite Decimal,
    and two texts that are not both ISO dates are what :func:`comparable` hands
    back unchanged, so they are compared directly.
    """

    def ordered(left: Any, right: Any) -> bool:
        if type(left) is str:
            if type(right) is str and (
                len(left) < 10
                or len(right) < 10
                or not (_dates.looks_temporal(left) and _dates.looks_temporal(right))
            ):
                return compare(left, right)
        elif _plain_numbers(left, right) or _exact_numbers(left, right):
            return compare(left, right)
        return _ordered(left, right, test)

    return ordered


less = _order_test(_LT, operator.lt)
less_equal = _order_test(_LE, operator.le)
greater = _order_test(_GT, operator.gt)
greater_equal = _order_test(_GE, operator.ge)


# a < b is b > a: what a comparison becomes when its operands change places.
_SWAPPED: dict[Callable[[Any, Any], Any], Callable[[Any, Any], Any]] = {
    operator.lt: operator.gt,
    operator.le: operator.ge,
    operator.gt: operator.lt,
    operator.ge: operator.le,
    operator.eq: operator.eq,
    operator.ne: operator.ne,
}


def written_moment_test(
    test: Callable[[Any, Any], bool],
    compare: Callable[[Any, Any], Any],
    written: Any,
    *,
    written_first: bool,
) -> Callable[[Any, Any], bool] | None:
    """``test`` for two operands of which one, ``written``, is written in the rule.

    When ``written`` is ISO date text, what it stands for is read once, here, and a
    date or datetime object on the other side meets it as :func:`comparable` would
    have them meet: as moments, with ``compare`` (``operator.lt`` for ``<``). Any
    other value goes to ``test``.

    :param written_first: ``written`` is the left operand.
    :returns: ``None`` when ``written`` is not ISO date text.
    """
    day = _dates.parse(written) if type(written) is str else None
    if day is None:
        return None

    moment = _dates.instant(day)
    # Two dates without a time order as their midnights do.
    whole_day = type(day) is dt.date
    if written_first:
        # The value from the record goes first below.
        compare = _SWAPPED[compare]

    def against_moment(left: Any, right: Any) -> bool:
        value = right if written_first else left
        if whole_day and type(value) is dt.date:
            return bool(compare(value, day))
        if isinstance(value, dt.date):
            return bool(compare(_dates.instant(value), moment))
        return test(left, right)

    return against_moment


def same_value(left: Any, right: Any) -> bool:
    """Whether a field kept its value, for ``changed``.

    Two blanks are the same; otherwise values are strictly equal, except that a
    date and its ISO text, or a Decimal and an equal float, are the same value.
    """
    if is_blank(left) or is_blank(right):
        return is_blank(left) and is_blank(right)
    if isinstance(left, dt.date) or isinstance(right, dt.date):
        first, second = _dates.parse(left), _dates.parse(right)
        if first is not None and second is not None:
            return _dates.instant(first) == _dates.instant(second)
    return strict_equal(left, right)
