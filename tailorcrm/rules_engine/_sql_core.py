"""Core of the SQL translation: node kinds, translated nodes and the walker.

Operators are translated by handlers that :func:`_handles` registers; the modules
holding them must be imported for their operators to be known.
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
from ._registry import OPERATORS, SPREAD, is_operation
from ._values import truthy

NUMBER, TEXT, BOOLEAN, DATE, DATETIME = "number", "text", "boolean", "date", "datetime"
NULL, LOGIC, LIST = "null", "logic", "list"
#: A multi-picklist field: a JSON list of texts, never empty (blank is NULL). A
#: filter may ask whether it holds a text (``in``, ``contains``), whether it is
#: blank, and its truthiness; nothing else reads it in SQL.
CHOICES = "choices"
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
    "multi_picklist": (CHOICES, ""),
}

_DATA_OPERATORS = frozenset({"val", "missing", "missing_some", "exists", "changed"})
_BIGGEST = 2**63 - 1
_FLOAT_BIGGEST = 1e15
_FLOAT_SMALLEST = 1e-12
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


class _HasChoice(FunctionElement[bool]):
    """Whether a multi-picklist (first argument) holds a text (second), exactly.

    Both databases read the stored JSON list as a list: the items are compared
    whole and by code point, never as parts of the JSON text, so case, quotes
    and commas in a choice cannot make a false match. Where either argument is
    NULL the result is false or NULL, by database; callers read NULL as false.
    """

    name = "has_choice"
    inherit_cache = True
    type = sa.Boolean()


@compiles(_HasChoice)
def _has_choice_default(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's json_each gives each item's text; "=" compares it by code point.
    choices, needle = (compiler.process(c, **kw) for c in element.clauses.clauses)
    return (
        f"EXISTS (SELECT 1 FROM json_each({choices}) AS choice "
        f"WHERE choice.value = {needle})"
    )


@compiles(_HasChoice, "postgresql")
def _has_choice_postgresql(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    # jsonb's "?" asks whether a text is an item of the top-level list.
    choices, needle = (compiler.process(c, **kw) for c in element.clauses.clauses)
    return f"(CAST({choices} AS JSONB) ? {needle})"


class _WholeNumber(FunctionElement[int]):
    """Whole-number arithmetic that stops the query where it leaves 64 bits.

    Python computes such numbers exactly. PostgreSQL refuses a ``bigint`` out of
    range by itself; SQLite would go on in floating point and compare rounded
    numbers, so there the ``whole_number`` function that
    :func:`tailorcrm.platform.db.create_engine` registers refuses them alike.
    """

    name = "whole_number"
    inherit_cache = True
    type = sa.BigInteger()


@compiles(_WholeNumber)
def _whole_number_default(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    # In parentheses, as a function's argument is: a sum stays one operand.
    return f"({compiler.process(element.clauses, **kw)})"


@compiles(_WholeNumber, "sqlite")
def _whole_number_sqlite(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    return f"whole_number({compiler.process(element.clauses, **kw)})"


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
    ``nulled`` is the path of an operation on constants that gives null here (a
    ``date_add`` beyond the year 9999, a ``$user`` field that is not set), so
    that a refusal of that null names the place that gave it.
    """

    sql: ColumnElement[Any]
    kind: str
    num: str = ""
    fails: ColumnElement[bool] | None = None
    nullable: bool = True
    constant: Any = _NO_CONSTANT
    nulled: str | None = None

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
            raise _unsupported("The number is too large for a filter.", path)
        return _Node(
            sa.literal(value, sa.BigInteger),
            NUMBER,
            INT,
            nullable=False,
            constant=value,
        )
    if isinstance(value, float):
        # Within these bounds products and quotients of field values stay finite
        # and non-zero in SQL's doubles, as they do in Python's.
        if (
            not math.isfinite(value)
            or abs(value) > _FLOAT_BIGGEST
            or (value and abs(value) < _FLOAT_SMALLEST)
        ):
            raise _unsupported(
                "Fractions in a filter must lie between 1e-12 and 1e15.", path
            )
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
            if value is None and isinstance(expression, dict):
                return _Node(sa.null(), NULL, constant=None, nulled=path)
            if isinstance(value, dict):
                raise _unsupported(
                    "An object cannot be used in a filter.",
                    _object_path(expression, path) or path,
                )
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
        if not isinstance(operand, list) and is_operation(operand):
            computed = self._computed_operands(name, operand, prefix, path)
            if computed is not None:
                return computed
        return handler(self, name, operands, prefix, path)

    def _computed_operands(
        self, name: str, operand: Any, prefix: str, path: str
    ) -> _Node | None:
        """What an operation whose operands one expression computes gives, when
        it is not what that expression alone as its one operand gives.

        Python takes such an expression's value as the list of operands when it
        is a list (``{"in": {"var": "tags"}}`` asks whether the first choice is
        in the second), and as the one operand otherwise, which fails an
        operation that needs more.
        """
        operator = OPERATORS[name]
        if operator.form != SPREAD:
            return None
        node = self.node(operand, f"{prefix}[0]")
        if node.kind in (CHOICES, LOGIC, LIST):
            raise _unsupported(
                f"{name} reads its operands from a value that may be a list; "
                "write them as a list in a filter.",
                path,
            )
        if operator.min_args > 1:
            return _failed()
        return None

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

        prefix = f"{path}.var" if path else "var"
        default = self.node(operands[1], f"{prefix}[1]")
        if not default.is_constant or not _same_kind(node, default):
            raise _unsupported(
                "A var default must be a value of the field's type.", path
            )
        value = sa.func.coalesce(column, _aligned_number(default, num).sql)
        return _Node(value, kind, num, nullable=False)


def _object_path(expression: Any, path: str) -> str | None:
    """Where ``expression`` writes an object (JSON that is no operation); ``None``
    when it writes none."""
    if isinstance(expression, dict) and len(expression) != 1:
        return path
    if isinstance(expression, list):
        items = [(item, f"{path}[{i}]") for i, item in enumerate(expression)]
    elif isinstance(expression, dict):
        ((name, operand),) = expression.items()
        prefix = f"{path}.{name}" if path else name
        if name == "preserve":
            # Its operand is taken as written, an object of one key included.
            return prefix if isinstance(operand, dict) else None
        operands = operand if isinstance(operand, list) else [operand]
        items = [(item, f"{prefix}[{i}]") for i, item in enumerate(operands)]
    else:
        return None
    for item, where in items:
        found = _object_path(item, where)
        if found is not None:
            return found
    return None


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


def _zero_if_null(node: _Node) -> _Node:
    if node.constant is None:
        # A failed constant is None too: keep its failure with the zero.
        return replace(_literal(0, ""), fails=node.fails)
    if not node.nullable:
        return node
    return replace(node, sql=sa.func.coalesce(node.sql, 0), nullable=False)


Handler = Callable[[_Translator, str, list[Any], str, str], _Node]
_HANDLERS: dict[str, Handler] = {}


def _handles(*names: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for name in names:
            _HANDLERS[name] = handler
        return handler

    return register
