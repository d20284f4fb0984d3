"""SQL translation of the logic operators and the comparisons."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from . import _dates
from ._sql_core import (
    CHOICES,
    DATE,
    DATETIME,
    DEC,
    FLOAT,
    LIST,
    LOGIC,
    NULL,
    NUMBER,
    TEXT,
    SqlTranslationError,
    _aligned_number,
    _CodepointText,
    _either,
    _handles,
    _is_null,
    _literal,
    _Node,
    _nonnull,
    _not_null,
    _Translator,
    _truth,
    _unsupported,
    _when,
    _zero_if_null,
)
from ._values import looks_numeric

_ORDERINGS = {
    "<": sa.sql.operators.lt,
    "<=": sa.sql.operators.le,
    ">": sa.sql.operators.gt,
    ">=": sa.sql.operators.ge,
}
_COMPARISONS = frozenset({"==", "!=", "===", "!==", *_ORDERINGS})


# -- logic ----------------------------------------------------------------------------


@_handles("and", "or")
def _logic(t: _Translator, name: str, raw: list[Any], prefix: str, path: str) -> _Node:
    nodes = t.operands(raw, prefix)
    truths = [_truth(node) for node in nodes]
    # A later operand's failure counts only where Python evaluates that operand.
    fails: ColumnElement[bool] | None = None
    for node, truth in reversed(list(zip(nodes, truths, strict=True))):
        go_on = truth if name == "and" else sa.not_(truth)
        fails = _either(node.fails, _when(go_on, fails))
    value = sa.and_(*truths) if name == "and" else sa.or_(*truths)
    return _Node(value, LOGIC, fails=fails, nullable=False)


@_handles("!", "!!")
def _negation(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> _Node:
    node = t.node(raw[0], f"{prefix}[0]")
    truth = _truth(node)
    value = sa.not_(truth) if name == "!" else truth
    return _Node(value, LOGIC, fails=node.fails, nullable=False)


@_handles("if", "?:")
def _if(t: _Translator, name: str, raw: list[Any], prefix: str, path: str) -> _Node:
    nodes = t.operands(raw, prefix)
    if len(nodes) == 1:
        return nodes[0]
    if len(nodes) % 2 == 0:
        nodes.append(_literal(None, path))

    kind, num = _common_kind(nodes[1::2] + [nodes[-1]])
    otherwise = nodes[-1]
    fails = otherwise.fails
    for index in range(len(nodes) - 3, -1, -2):
        condition, then = nodes[index], nodes[index + 1]
        truth = _truth(condition)
        fails = _either(
            condition.fails, _when(truth, then.fails), _when(sa.not_(truth), fails)
        )

    def value(node: _Node) -> ColumnElement[Any]:
        return _truth(node) if kind == LOGIC else node.sql

    whens = [
        (_truth(nodes[index]), value(nodes[index + 1]))
        for index in range(0, len(nodes) - 1, 2)
    ]
    case = sa.case(*whens, else_=value(otherwise))
    return _Node(case, kind, num, fails=fails, nullable=kind != LOGIC)


def _common_kind(branches: list[_Node]) -> tuple[str, str]:
    """The kind ``if`` gives: its branches' kind, or only a truth value when mixed."""
    present = [node for node in branches if node.constant is not None]
    kinds = {node.kind for node in present}
    nums = {node.num for node in present}
    if not kinds:
        return NULL, ""
    if len(kinds) > 1 or kinds & {LOGIC, LIST, CHOICES}:
        return LOGIC, ""
    if FLOAT in nums and len(nums) > 1:
        return LOGIC, ""
    if kinds == {NUMBER}:
        return NUMBER, DEC if DEC in nums else nums.pop()
    return kinds.pop(), ""


# -- comparisons ----------------------------------------------------------------------


@_handles(*_COMPARISONS)
def _comparison(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> _Node:
    nodes = t.operands(raw, prefix)
    for index, node in enumerate(nodes):
        where = f"{prefix}[{index}]"
        if node.kind == CHOICES:
            raise _unsupported(
                f"{name} cannot compare a multi-select field; test for one of "
                'its choices with in: {"in": ["a choice", {"var": "field"}]}.',
                where,
            )
        if node.kind in (LOGIC, LIST):
            raise _unsupported(f"{name} cannot compare a condition or a list.", where)

    tests = [
        _compare(name, left, right, path)
        for left, right in zip(nodes, nodes[1:], strict=False)
    ]
    # Python evaluates the first two operands, then each further one only while
    # the chain holds.
    fails = _either(nodes[0].fails, nodes[1].fails, tests[0][1])
    tail: ColumnElement[bool] | None = None
    for index in range(len(tests) - 1, 0, -1):
        step = _either(nodes[index + 1].fails, tests[index][1])
        tail = _when(tests[index - 1][0], _either(step, tail))
    fails = _either(fails, tail)
    value = tests[0][0] if len(tests) == 1 else sa.and_(*(test for test, _ in tests))
    return _Node(value, LOGIC, fails=fails, nullable=False)


Test = tuple[ColumnElement[bool], ColumnElement[bool] | None]


def _compare(name: str, left: _Node, right: _Node, path: str) -> Test:
    if name in ("===", "!=="):
        equal = _strict_equal(left, right, path)
        return (equal if name == "===" else sa.not_(equal)), None

    left, right = _align(left, right, path)
    if name in ("==", "!="):
        equal = _loose_equal(left, right, path)
        return (equal if name == "==" else sa.not_(equal)), None
    return _order(_ORDERINGS[name], left, right, path)


def _null_safe(
    left: _Node, right: _Node, equal: ColumnElement[bool]
) -> ColumnElement[bool]:
    if left.constant is None or right.constant is None:
        return sa.and_(_is_null(left), _is_null(right))
    if not left.nullable and not right.nullable:
        return equal
    return sa.or_(
        sa.and_(_is_null(left), _is_null(right)),
        sa.and_(_not_null(left), _not_null(right), equal),
    )


def _numbers(left: _Node, right: _Node, path: str) -> tuple[_Node, _Node]:
    """Both numbers in a form where SQL compares (or computes) as Python does."""
    nums = {left.num, right.num}
    if DEC in nums and FLOAT in nums:
        left, right = _aligned_number(left, DEC), _aligned_number(right, DEC)
        if FLOAT in {left.num, right.num}:
            raise _unsupported(
                "A computed fraction cannot meet a decimal field in a filter.", path
            )
    return left, right


def _strict_equal(left: _Node, right: _Node, path: str) -> ColumnElement[bool]:
    if left.constant is None or right.constant is None or left.kind != right.kind:
        return sa.and_(_is_null(left), _is_null(right))
    if left.kind == NUMBER:
        left, right = _numbers(left, right, path)
    return _null_safe(left, right, left.sql == right.sql)


def _align(left: _Node, right: _Node, path: str) -> tuple[_Node, _Node]:
    """Give a date, datetime or text constant the kind of what it is compared with."""
    if right.is_constant and not left.is_constant:
        first, second = _align(right, left, path)
        return second, first
    if not left.is_constant or left.constant is None:
        if {left.kind, right.kind} == {DATE, DATETIME}:
            raise _unsupported("A date field cannot meet a datetime field.", path)
        return left, right
    if right.kind not in (DATE, DATETIME):
        return left, right

    value = left.constant
    if left.kind == TEXT:
        parsed = _dates.parse(value)
        if parsed is None:
            raise _unsupported(
                f"{value!r} is not a date (write it as 2024-05-31).", path
            )
        value = parsed
    elif left.kind not in (DATE, DATETIME):
        raise _unsupported(f"A {right.kind} cannot be compared with {value!r}.", path)

    try:
        moment = _dates.instant(value).astimezone(dt.UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):
        # 0001-01-01T00:00:00+14:00 is a moment before year 1 in UTC.
        raise SqlTranslationError(
            f"{value!s} is out of the range of dates once taken to UTC.",
            path=path,
            code="out_of_range",
        ) from None
    if right.kind == DATETIME:
        return _literal(moment, path), right
    if moment.time() != dt.time(0):
        raise _unsupported("Compare a date field with a date, not a moment.", path)
    return _literal(moment.date(), path), right


def _text_pair(left: _Node, right: _Node, path: str, *, ordered: bool) -> None:
    constant = left if left.is_constant else right if right.is_constant else None
    if constant is None:
        raise _unsupported("Compare a text field with a value, not a field.", path)
    if _dates.parse(constant.constant) is not None:
        raise _unsupported("Text that reads as a date is not compared in SQL.", path)
    if ordered and looks_numeric(constant.constant):
        raise _unsupported("Text that reads as a number is not ordered in SQL.", path)


def _loose_equal(left: _Node, right: _Node, path: str) -> ColumnElement[bool]:
    if left.constant is None or right.constant is None:
        return sa.and_(_is_null(left), _is_null(right))
    if left.kind != right.kind:
        raise _unsupported(f"== cannot compare {left.kind} with {right.kind}.", path)
    if left.kind == TEXT:
        _text_pair(left, right, path, ordered=False)
    if left.kind == NUMBER:
        left, right = _numbers(left, right, path)
    return _null_safe(left, right, left.sql == right.sql)


def _order(op: Any, left: _Node, right: _Node, path: str) -> Test:
    if left.kind == NUMBER or right.kind == NUMBER:
        if {left.kind, right.kind} - {NUMBER, NULL}:
            raise _unsupported("A number is ordered only against numbers.", path)
        left, right = _zero_if_null(left), _zero_if_null(right)
        left, right = _numbers(left, right, path)
        return op(left.sql, right.sql), None

    if left.kind != right.kind or left.kind not in (TEXT, DATE, DATETIME):
        for node, other in ((left, right), (right, left)):
            if node.nulled is not None and other.kind in (TEXT, DATE, DATETIME):
                raise _unsupported(
                    f"This gives null here, and a {other.kind} is not "
                    "ordered against null.",
                    node.nulled,
                )
        raise _unsupported(f"{left.kind} and {right.kind} are not ordered.", path)
    if left.kind == TEXT:
        _text_pair(left, right, path, ordered=True)
        value = _nonnull(op(_CodepointText(left.sql), _CodepointText(right.sql)))
        return value, sa.or_(_is_null(left), _is_null(right))

    # A date against null fails; two nulls count as 0 and 0.
    both = sa.and_(_not_null(left), _not_null(right), op(left.sql, right.sql))
    nulls = sa.and_(_is_null(left), _is_null(right))
    value = sa.or_(both, nulls) if op(0, 0) else both
    fails = sa.or_(
        sa.and_(_is_null(left), _not_null(right)),
        sa.and_(_not_null(left), _is_null(right)),
    )
    return value, fails
