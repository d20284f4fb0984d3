"""SQL translation of the arithmetic, text, list, blank and date operators."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ._sql_core import (
    _BIGGEST,
    CHOICES,
    DATE,
    DEC,
    FLOAT,
    INT,
    LIST,
    LOGIC,
    NUMBER,
    TEXT,
    _AddDays,
    _aligned_number,
    _either,
    _handles,
    _HasChoice,
    _is_null,
    _literal,
    _Node,
    _nonnull,
    _Position,
    _Translator,
    _unsupported,
    _WholeNumber,
    _zero_if_null,
)

#: Significant digits of a rounded number; a longer one gives null (OPERATIONS.md).
_ROUND_PRECISION = 28
#: The dates ``date_add`` gives; past them it gives null (OPERATIONS.md).
_FIRST_DAY = sa.literal(dt.date.min, sa.Date)
_LAST_DAY = sa.literal(dt.date.max, sa.Date)

# -- arithmetic -----------------------------------------------------------------------


def _number_operands(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> list[_Node]:
    nodes = [_zero_if_null(node) for node in t.operands(raw, prefix)]
    for node in nodes:
        if node.kind != NUMBER:
            raise _unsupported(f"{name} works on number fields in a filter.", path)
    return nodes


def _as_float(node: _Node) -> ColumnElement[Any]:
    return node.sql if node.num == FLOAT else sa.cast(node.sql, sa.Float)


@_handles("+", "-", "*", "/", "%")
def _arithmetic(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> _Node:
    nodes = _number_operands(t, name, raw, prefix, path)
    nums = {node.num for node in nodes}
    if DEC in nums:
        # SQLite keeps decimals as binary floating point, so sums there would not
        # be the exact Decimal sums Python computes.
        raise _unsupported(f"{name} on decimal fields has no exact SQL form.", path)
    if name == "%" and FLOAT in nums:
        raise _unsupported("% of fractions has no SQL form.", path)

    fails = _either(*(node.fails for node in nodes))
    real = FLOAT in nums or name == "/"
    values = [_as_float(node) if real else node.sql for node in nodes]
    if len(values) == 1 and name in ("-", "/"):
        # JSON Logic's one-operand forms: the negation and the reciprocal.
        base = _literal(1.0 if name == "/" else 0.0 if real else 0, path)
        nodes.insert(0, base)
        values.insert(0, base.sql)

    result = values[0]
    for node, value in zip(nodes[1:], values[1:], strict=True):
        if name == "+":
            result = result + value
        elif name == "-":
            result = result - value
        elif name == "*":
            result = result * value
        else:
            fails = _either(fails, _divisor_zero(node))
            # Typed as the divisor itself: untyped, nullif's result is cast to
            # NUMERIC for PostgreSQL, which keeps only 15 digits of a double.
            divisor = sa.func.nullif(value, 0, type_=value.type)
            result = result / divisor if name == "/" else result % divisor
    if not real and name != "%":
        result = _WholeNumber(result)
    nullable = name in ("/", "%")
    return _Node(result, NUMBER, FLOAT if real else INT, fails, nullable=nullable)


def _divisor_zero(node: _Node) -> ColumnElement[bool]:
    if node.is_constant:
        return sa.true() if node.constant == 0 else sa.false()
    return _nonnull(node.sql == 0)


@_handles("min", "max")
def _extreme(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> _Node:
    nodes = _number_operands(t, name, raw, prefix, path)
    nums = {node.num for node in nodes}
    if DEC in nums:
        nodes = [_aligned_number(node, DEC) for node in nodes]
        nums = {node.num for node in nodes}
    if DEC in nums and FLOAT in nums:
        raise _unsupported(f"{name} cannot mix fractions and decimals here.", path)

    num = DEC if DEC in nums else FLOAT if FLOAT in nums else INT
    values = [_as_float(node) if num == FLOAT else node.sql for node in nodes]
    result = values[0]
    for value in values[1:]:
        better = value > result if name == "max" else value < result
        result = sa.case((better, value), else_=result)
    fails = _either(*(node.fails for node in nodes))
    return _Node(result, NUMBER, num, fails, nullable=False)


@_handles("round")
def _round(t: _Translator, name: str, raw: list[Any], prefix: str, path: str) -> _Node:
    nodes = t.operands(raw, prefix)
    digits = nodes[1].constant if len(nodes) > 1 else 0
    value = nodes[0]
    if value.kind != NUMBER or value.num != INT or not isinstance(digits, int):
        raise _unsupported("round works on whole-number fields in a filter.", path)
    if isinstance(digits, bool) or digits < 0 or digits > 20:
        raise _unsupported("round takes 0 to 20 digits in a filter.", path)
    # A whole number rounded to 0 or more digits is itself, unless it would take
    # more than the 28 significant digits Python's decimals keep: there round gives
    # null (10**9 to 20 digits has 30).
    limit = 10 ** (_ROUND_PRECISION - digits)
    if limit > _BIGGEST:
        return value
    too_long = sa.or_(value.sql >= limit, value.sql <= -limit)
    rounded = sa.case((too_long, sa.null()), else_=value.sql)
    return _Node(rounded, NUMBER, INT, fails=value.fails)


# -- text and lists -------------------------------------------------------------------


@_handles("lower", "upper")
def _case(t: _Translator, name: str, raw: list[Any], prefix: str, path: str) -> _Node:
    node = t.node(raw[0], f"{prefix}[0]")
    if node.kind == LOGIC:
        # and, or and an if of mixed branches give one of their operands, which
        # may be text: its case would change in Python and not here.
        raise _unsupported(
            f"{name} needs a text field or value, not a condition.", path
        )
    if node.kind != TEXT:
        return replace(_literal(None, path), fails=node.fails)
    function = sa.func.lower if name == "lower" else sa.func.upper
    return _Node(function(node.sql, type_=sa.Text), TEXT, fails=node.fails)


@_handles("length")
def _length(t: _Translator, name: str, raw: list[Any], prefix: str, path: str) -> _Node:
    node = t.node(raw[0], f"{prefix}[0]")
    if node.kind in (LOGIC, CHOICES):
        raise _unsupported("length needs text.", path)
    if node.constant is None:
        return replace(_literal(0, path), fails=node.fails)
    if node.kind != TEXT:
        # Only text and lists have a length; a blank value has length 0.
        zero = sa.case((_is_null(node), 0), else_=sa.null())
        return _Node(zero, NUMBER, INT, fails=node.fails)
    value = sa.func.coalesce(sa.func.length(node.sql), 0)
    return _Node(value, NUMBER, INT, fails=node.fails, nullable=False)


@_handles("is_blank")
def _is_blank(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> _Node:
    node = t.node(raw[0], f"{prefix}[0]")
    if node.kind == LOGIC:
        raise _unsupported("is_blank needs a value, not a condition.", path)
    blank = _is_null(node)
    if node.kind == TEXT:
        blank = sa.or_(blank, _nonnull(node.sql == ""))
    return _Node(blank, LOGIC, fails=node.fails, nullable=False)


@_handles("in", "contains")
def _membership(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> _Node:
    nodes = t.operands(raw, prefix)
    fails = _either(*(node.fails for node in nodes))
    if len(nodes) < 2:
        return _Node(sa.false(), LOGIC, fails=fails, nullable=False)
    needle, haystack = nodes[:2] if name == "in" else nodes[1::-1]
    if needle.kind in (LOGIC, LIST, CHOICES) or haystack.kind == LOGIC:
        raise _unsupported(f"{name} needs a value and a list or text.", path)

    if haystack.kind == LIST:
        where = f"{prefix}[1]" if name == "in" else f"{prefix}[0]"
        value = _in_list(needle, haystack.constant, where)
    elif haystack.kind == CHOICES:
        # Only a text is ever among the choices (a number is not equal to text).
        found = needle.kind == TEXT and needle.constant is not None
        value = _nonnull(_HasChoice(haystack.sql, needle.sql)) if found else sa.false()
    elif haystack.kind == TEXT or haystack.constant is None:
        if needle.constant is None or haystack.constant is None:
            value = sa.false()
        elif needle.kind != TEXT:
            raise _unsupported(f"{name} looks for text within text.", path)
        else:
            value = _nonnull(_Position(haystack.sql, needle.sql) > 0)
    else:
        value = sa.false()
    return _Node(value, LOGIC, fails=fails, nullable=False)


def _in_list(needle: _Node, items: list[Any], path: str) -> ColumnElement[bool]:
    """Whether ``needle`` is one of ``items``; ``path`` is where the list is."""
    if needle.constant is None:
        return sa.false()

    candidates = []
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        candidate = _literal(item, where) if _listable(item) else None
        if candidate is None or candidate.kind != needle.kind:
            continue
        if needle.num == DEC:
            candidate = _aligned_number(candidate, DEC)
        candidates.append(candidate.sql)
    if not candidates:
        return sa.false()

    # One IN rather than a chain of ORs: SQLite nests such a chain a level per
    # term and refuses past 1000 levels, a list that fits in a filter's size.
    return _nonnull(needle.sql.in_(candidates))


def _listable(item: Any) -> bool:
    if isinstance(item, float):
        return math.isfinite(item)
    if isinstance(item, int) and not isinstance(item, bool):
        return abs(item) <= _BIGGEST
    if isinstance(item, dt.date):
        # A date or moment the condition computed, as today or date_add give.
        return True
    return isinstance(item, (bool, str)) and "\x00" not in str(item)


@_handles("starts_with")
def _starts_with(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> _Node:
    text, start = t.operands(raw, prefix)
    fails = _either(text.fails, start.fails)
    if text.kind == LOGIC:
        # As for lower: and, or and a mixed if may give text.
        raise _unsupported("starts_with needs a text field, not a condition.", path)
    if text.kind != TEXT or start.constant is None:
        return _Node(sa.false(), LOGIC, fails=fails, nullable=False)
    if not start.is_constant or start.kind != TEXT:
        raise _unsupported(
            "starts_with needs a text prefix written in the filter.", path
        )
    head = sa.func.substr(text.sql, 1, len(start.constant))
    return _Node(_nonnull(head == start.sql), LOGIC, fails=fails, nullable=False)


# -- blanks and dates -----------------------------------------------------------------


@_handles("coalesce")
def _coalesce(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> _Node:
    nodes = [node for node in t.operands(raw, prefix) if node.constant is not None]
    if any(node.num == DEC for node in nodes):
        nodes = [_aligned_number(node, DEC) for node in nodes]
    kinds = {node.kind for node in nodes}
    nums = {node.num for node in nodes}
    if len(kinds) > 1 or kinds & {LOGIC, LIST, CHOICES} or {FLOAT, DEC} <= nums:
        raise _unsupported("coalesce needs values of one type in a filter.", path)
    if not nodes:
        return _literal(None, path)
    if FLOAT in nums:
        nodes = [replace(node, sql=_as_float(node), num=FLOAT) for node in nodes]
        nums = {FLOAT}

    whens = []
    for node in nodes:
        usable = sa.not_(_is_null(node))
        if node.kind == TEXT:
            usable = sa.and_(usable, _nonnull(node.sql != ""))
        if node.fails is not None:
            usable = sa.and_(sa.not_(node.fails), usable)
        whens.append((usable, node.sql))
    num = DEC if DEC in nums else nodes[0].num
    return _Node(sa.case(*whens, else_=sa.null()), nodes[0].kind, num)


@_handles("date_add")
def _date_add(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> _Node:
    date, amount, unit = t.operands(raw, prefix)
    if date.kind != DATE or unit.constant != "days":
        raise _unsupported(
            "date_add on a field works with a date field and days.", path
        )
    if not isinstance(amount.constant, int) or isinstance(amount.constant, bool):
        raise _unsupported("date_add needs a whole number of days.", path)
    if abs(amount.constant) > 100_000:
        raise _unsupported("date_add moves at most 100000 days in a filter.", path)
    moved = _AddDays(date.sql, sa.literal(amount.constant, sa.Integer))
    # Python gives null for a date before year 1 or past 9999, where both
    # databases go on counting.
    within = sa.and_(moved >= _FIRST_DAY, moved <= _LAST_DAY)
    return _Node(sa.case((within, moved)), DATE, fails=date.fails)
