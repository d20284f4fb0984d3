"""Compiling a condition into a SQLAlchemy boolean expression, for list filters.

The expression selects exactly the records for which Python evaluation of the same
condition is truthy, on SQLite and on PostgreSQL. Two things make that hold:

- every sub-expression carries, besides its value, a "fails" expression that is
  true where Python evaluation would fail (a division by zero, a date compared with
  null). A failure anywhere makes Python's answer null, so the final filter is
  ``truthy(value) AND NOT fails``, respecting the short-circuits of ``and``, ``or``,
  ``if`` and chained comparisons, and the failures that ``coalesce`` catches;
- every operand has a static kind (number, text, boolean, date, datetime), taken
  from the field types, and an operation is translated only for the kinds where SQL
  gives Python's answer. Anything else raises :class:`SqlTranslationError`.

Sub-expressions that read no field are evaluated once, in Python, by the engine
itself, and bound as parameters: ``today``, ``$user.id``, ``date_add`` of a literal.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from . import _dates
from ._compiler import compile_condition
from ._errors import ConditionError, EvaluationError
from ._values import looks_numeric, truthy

NUMBER, TEXT, BOOLEAN, DATE, DATETIME = "number", "text", "boolean", "date", "datetime"
NULL, LOGIC, LIST = "null", "logic", "list"
INT, DEC, FLOAT = "int", "decimal", "float"

#: Field types a filter can read, and the kind (and number kind) each gives.
FIELD_KINDS: dict[str, tuple[str, str]] = {
    **{
        name: (TEXT, "")
        for name in (
            "text",
            "textarea",
            "email",
            "phone",
            "url",
            "picklist",
            "autonumber",
        )
    },
    "integer": (NUMBER, INT),
    "lookup": (NUMBER, INT),
    "decimal": (NUMBER, DEC),
    "currency": (NUMBER, DEC),
    "percent": (NUMBER, DEC),
    "boolean": (BOOLEAN, ""),
    "date": (DATE, ""),
    "datetime": (DATETIME, ""),
}

_DATA_OPERATORS = frozenset({"val", "missing", "missing_some", "exists", "changed"})
_ORDERINGS = {
    "<": sa.sql.operators.lt,
    "<=": sa.sql.operators.le,
    ">": sa.sql.operators.gt,
    ">=": sa.sql.operators.ge,
}
_COMPARISONS = frozenset({"==", "!=", "===", "!==", *_ORDERINGS})
_BIGGEST = 2**63 - 1
_NO_CONSTANT = object()

Columns = Mapping[str, tuple[ColumnElement[Any], str]]


class SqlTranslationError(ConditionError):
    """A condition, valid for Python evaluation, that has no SQL translation.

    ``code`` is ``unsupported_in_sql`` (or ``unknown_field``); ``path`` names the
    expression at fault, as :class:`ConditionError` does.
    """


# -- SQL pieces that differ between SQLite and PostgreSQL ---------------------------


class _CodepointText(FunctionElement[str]):
    """Text compared by code point: Python's order, whatever the database collation."""

    name = "codepoint_text"
    inherit_cache = True
    type = sa.Text()


@compiles(_CodepointText)
def _codepoint_default(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's default BINARY collation compares UTF-8 bytes: code point order.
    return str(compiler.process(element.clauses, **kw))


@compiles(_CodepointText, "postgresql")
def _codepoint_postgresql(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


class _Position(FunctionElement[int]):
    """Where the second text starts in the first (1-based), 0 when absent."""

    name = "text_position"
    inherit_cache = True
    type = sa.Integer()


@compiles(_Position)
def _position_default(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    # instr and strpos are case-sensitive; LIKE is not on SQLite.
    return str(compiler.process(sa.func.instr(*element.clauses.clauses), **kw))


@compiles(_Position, "postgresql")
def _position_postgresql(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(sa.func.strpos(*element.clauses.clauses), **kw))


class _AddDays(FunctionElement[dt.date]):
    """A date moved by a whole number of days (the second argument)."""

    name = "add_days"
    inherit_cache = True
    type = sa.Date()


@compiles(_AddDays)
def _add_days_default(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's date() takes a modifier such as "-3 days".
    date, days = element.clauses.clauses
    modifier = sa.cast(days, sa.Text) + sa.literal(" days", sa.Text)
    return str(compiler.process(sa.func.date(date, modifier), **kw))


@compiles(_AddDays, "postgresql")
def _add_days_postgresql(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    date, days = element.clauses.clauses
    return f"({compiler.process(date, **kw)} + {compiler.process(days, **kw)})"


# -- compiled nodes -----------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """One translated sub-expression.

    ``sql`` gives the value (SQL NULL for Python's ``None``); for ``LOGIC`` nodes it
    is the truthiness itself, never NULL. ``fails`` is true where Python evaluation
    fails (``None``: never). ``constant`` holds the Python value of a constant.
    """

    sql: ColumnElement[Any]
    kind: str
    num: str = ""
    fails: ColumnElement[bool] | None = None
    nullable: bool = True
    constant: Any = _NO_CONSTANT

    @property
    def is_constant(self) -> bool:
        return self.constant is not _NO_CONSTANT


def _either(*fails: ColumnElement[bool] | None) -> ColumnElement[bool] | None:
    present = [fail for fail in fails if fail is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else sa.or_(*present)


def _when(
    condition: ColumnElement[bool], fails: ColumnElement[bool] | None
) -> ColumnElement[bool] | None:
    return None if fails is None else sa.and_(condition, fails)


def _is_null(node: _Node) -> ColumnElement[bool]:
    if node.is_constant:
        return sa.true() if node.constant is None else sa.false()
    return node.sql.is_(None) if node.nullable else sa.false()


def _not_null(node: _Node) -> ColumnElement[bool]:
    if node.is_constant:
        return sa.false() if node.constant is None else sa.true()
    return node.sql.is_not(None) if node.nullable else sa.true()


def _nonnull(expression: ColumnElement[Any]) -> ColumnElement[bool]:
    result: ColumnElement[bool] = sa.func.coalesce(
        expression, sa.false(), type_=sa.Boolean
    )
    return result


def _truth(node: _Node) -> ColumnElement[bool]:
    """The node's JSON Logic truthiness as a SQL boolean that is never NULL."""
    if node.is_constant:
        return sa.true() if truthy(node.constant) else sa.false()
    if node.kind == LOGIC:
        return node.sql
    if node.kind == BOOLEAN:
        return _nonnull(node.sql) if node.nullable else node.sql
    if node.kind == NUMBER:
        return _nonnull(node.sql != 0) if node.nullable else node.sql != 0
    if node.kind == TEXT:
        return _nonnull(node.sql != "")
    return _not_null(node)


def _literal(value: Any, path: str) -> _Node:
    if value is None:
        return _Node(sa.null(), NULL, constant=None)
    if isinstance(value, bool):
        return _Node(
            sa.literal(value, sa.Boolean), BOOLEAN, nullable=False, constant=value
        )
    if isinstance(value, int):
        if abs(value) > _BIGGEST:
            raise _unsupported(f"{value} is too large for a filter.", path)
        return _Node(
            sa.literal(value, sa.BigInteger),
            NUMBER,
            INT,
            nullable=False,
            constant=value,
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _unsupported("The number is not finite.", path)
        return _Node(
            sa.literal(value, sa.Float), NUMBER, FLOAT, nullable=False, constant=value
        )
    if isinstance(value, Decimal):
        return _Node(
            sa.literal(value, sa.Numeric), NUMBER, DEC, nullable=False, constant=value
        )
    if isinstance(value, str):
        if "\x00" in value:
            raise _unsupported("Text in a filter cannot hold the NUL character.", path)
        return _Node(sa.literal(value, sa.Text), TEXT, nullable=False, constant=value)
    if isinstance(value, dt.datetime):
        moment = _dates.instant(value).astimezone(dt.UTC).replace(tzinfo=None)
        return _Node(
            sa.literal(moment, sa.DateTime), DATETIME, nullable=False, constant=moment
        )
    if isinstance(value, dt.date):
        return _Node(sa.literal(value, sa.Date), DATE, nullable=False, constant=value)
    if isinstance(value, (list, tuple)):
        return _Node(sa.null(), LIST, nullable=False, constant=list(value))
    raise _unsupported("An object cannot be used in a filter.", path)


def _failed() -> _Node:
    return _Node(sa.null(), NULL, fails=sa.true(), constant=None)


def _unsupported(message: str, path: str) -> SqlTranslationError:
    return SqlTranslationError(message, path=path, code="unsupported_in_sql")


# -- the translator -------------------------------------------------------------------


def compile_sql(
    condition: Any,
    columns: Columns,
    *,
    user: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> ColumnElement[bool]:
    """Translate ``condition`` into a boolean SQLAlchemy expression for a WHERE.

    A row is selected exactly when Python evaluation of the condition on the row's
    values is truthy; a condition that is null for a row (a failure, a comparison
    with a missing date) does not select it, and an empty ``and``/``or`` selects
    nothing.

    :param columns: every field the condition may read: its name, mapped to the
        SQLAlchemy column and the field type (``"currency"``, ``"date"``...).
    :param user: the caller, read by ``$user.*``; its values are bound parameters.
    :param now: the moment ``today`` and ``now`` stand for; the system clock (UTC)
        when omitted.
    :raises ConditionError: the condition is malformed (as :func:`compile_condition`
        says).
    :raises SqlTranslationError: it reads an unknown field or uses an operation, or
        a combination of types, that has no exact SQL translation.
    """
    compile_condition(condition)
    translator = _Translator(columns, user, now or dt.datetime.now(dt.UTC))
    root = translator.node(condition, "")
    selected = _truth(root)
    if root.fails is None:
        return selected
    return sa.and_(selected, sa.not_(root.fails))


class _Translator:
    def __init__(
        self, columns: Columns, user: Mapping[str, Any] | None, now: dt.datetime
    ) -> None:
        self.columns = columns
        self.user = user
        self.data: dict[str, Any] = {"$user": dict(user or {}), "$now": now}

    # -- walking ---------------------------------------------------------------------

    def node(self, expression: Any, path: str) -> _Node:
        if self._is_constant(expression, path):
            try:
                value = compile_condition(expression, strict=True)(self.data)
            except EvaluationError:
                return _failed()
            return _literal(value, path)

        if isinstance(expression, list):
            raise _unsupported("A list that reads fields has no SQL form.", path)

        ((name, operand),) = expression.items()
        prefix = f"{path}.{name}" if path else name
        operands = operand if isinstance(operand, list) else [operand]
        if name == "var":
            return self._field(operands, path)

        handler = _HANDLERS.get(name)
        if handler is None:
            raise _unsupported(f"{name} has no SQL translation.", path)
        return handler(self, name, operands, prefix, path)

    def operands(self, operands: list[Any], prefix: str) -> list[_Node]:
        return [self.node(item, f"{prefix}[{i}]") for i, item in enumerate(operands)]

    def _is_constant(self, expression: Any, path: str) -> bool:
        if isinstance(expression, list):
            return all(self._is_constant(item, path) for item in expression)
        if not isinstance(expression, dict) or len(expression) != 1:
            return True

        ((name, operand),) = expression.items()
        if name in _DATA_OPERATORS or name == "prior":
            return False
        if name == "var":
            operands = operand if isinstance(operand, list) else [operand]
            key = operands[0] if operands else ""
            if not (isinstance(key, str) and key.startswith("$")):
                return False
            if key.startswith("$user") and self.user is None:
                raise _unsupported("$user is not known where this filter runs.", path)
            if key.startswith("$prior"):
                raise _unsupported("$prior has no meaning in a filter.", path)
        return self._is_constant(operand, path)

    def _field(self, operands: list[Any], path: str) -> _Node:
        name = operands[0] if operands else None
        if not isinstance(name, str) or not name:
            raise _unsupported("var needs a field name in a filter.", path)
        if name not in self.columns:
            raise SqlTranslationError(
                f"There is no field {name!r}.", path=path, code="unknown_field"
            )

        column, field_type = self.columns[name]
        if field_type not in FIELD_KINDS:
            raise _unsupported(f"A {field_type} field cannot be filtered on.", path)
        kind, num = FIELD_KINDS[field_type]
        node = _Node(column, kind, num)
        if len(operands) < 2 or operands[1] is None:
            return node

        default = self.node(operands[1], f"{path}.var[1]")
        if not default.is_constant or not _same_kind(node, default):
            raise _unsupported(
                "A var default must be a value of the field's type.", path
            )
        value = sa.func.coalesce(column, _aligned_number(default, num).sql)
        return _Node(value, kind, num, nullable=False)


def _same_kind(first: _Node, second: _Node) -> bool:
    if first.kind != second.kind:
        return False
    if first.kind != NUMBER:
        return True
    return FLOAT not in {first.num, second.num} or first.num == second.num


def _aligned_number(node: _Node, num: str) -> _Node:
    """A float constant met by a decimal is read through its shortest text."""
    if num == DEC and node.is_constant and isinstance(node.constant, float):
        return _literal(Decimal(repr(node.constant)), "")
    return node


Handler = Callable[[_Translator, str, list[Any], str, str], _Node]
_HANDLERS: dict[str, Handler] = {}


def _handles(*names: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for name in names:
            _HANDLERS[name] = handler
        return handler

    return register


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
    if len(kinds) > 1 or kinds & {LOGIC, LIST} or (FLOAT in nums and len(nums) > 1):
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
    for node in nodes:
        if node.kind in (LOGIC, LIST):
            raise _unsupported(f"{name} cannot compare a condition or a list.", path)

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

    moment = _dates.instant(value).astimezone(dt.UTC).replace(tzinfo=None)
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


def _zero_if_null(node: _Node) -> _Node:
    if node.constant is None:
        # A failed constant is None too: keep its failure with the zero.
        return replace(_literal(0, ""), fails=node.fails)
    if not node.nullable:
        return node
    return replace(node, sql=sa.func.coalesce(node.sql, 0), nullable=False)


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
            divisor = sa.func.nullif(value, 0)
            result = result / divisor if name == "/" else result % divisor
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
    # A whole number rounded to 0 or more digits is itself.
    return value


# -- text and lists -------------------------------------------------------------------


@_handles("lower", "upper")
def _case(t: _Translator, name: str, raw: list[Any], prefix: str, path: str) -> _Node:
    node = t.node(raw[0], f"{prefix}[0]")
    if node.kind != TEXT:
        return replace(_literal(None, path), fails=node.fails)
    function = sa.func.lower if name == "lower" else sa.func.upper
    return _Node(function(node.sql, type_=sa.Text), TEXT, fails=node.fails)


@_handles("length")
def _length(t: _Translator, name: str, raw: list[Any], prefix: str, path: str) -> _Node:
    node = t.node(raw[0], f"{prefix}[0]")
    if node.kind == LOGIC:
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
    if needle.kind in (LOGIC, LIST) or haystack.kind == LOGIC:
        raise _unsupported(f"{name} needs a value and a list or text.", path)

    if haystack.kind == LIST:
        value = _in_list(needle, haystack.constant)
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


def _in_list(needle: _Node, items: list[Any]) -> ColumnElement[bool]:
    if needle.constant is None:
        return sa.false()

    tests = []
    for item in items:
        candidate = _literal(item, "") if _listable(item) else None
        if candidate is None or candidate.kind != needle.kind:
            continue
        if needle.num == DEC:
            candidate = _aligned_number(candidate, DEC)
        tests.append(needle.sql == candidate.sql)
    if not tests:
        return sa.false()
    return _nonnull(sa.or_(*tests))


def _listable(item: Any) -> bool:
    if isinstance(item, float):
        return math.isfinite(item)
    if isinstance(item, int) and not isinstance(item, bool):
        return abs(item) <= _BIGGEST
    return isinstance(item, (bool, str)) and "\x00" not in str(item)


@_handles("starts_with")
def _starts_with(
    t: _Translator, name: str, raw: list[Any], prefix: str, path: str
) -> _Node:
    text, start = t.operands(raw, prefix)
    fails = _either(text.fails, start.fails)
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
    if len(kinds) > 1 or kinds & {LOGIC, LIST} or {FLOAT, DEC} <= nums:
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
    return _Node(moved, DATE, fails=date.fails)
