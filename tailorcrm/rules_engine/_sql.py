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
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

# Importing the handler modules registers their operators with the translator.
from . import _sql_logic, _sql_ops  # noqa: F401
from ._compiler import compile_condition
from ._errors import ConditionError
from ._sql_core import (
    Columns,
    SqlTranslationError,
    _CodepointText,
    _Translator,
    _truth,
)

__all__ = ["SqlTranslationError", "by_code_point", "compile_sql", "reads_context"]

#: Operations whose value is the moment they run.
_CLOCK_OPERATORS = frozenset({"today", "now"})
#: Operations that read a value by a name given as their operand.
_NAMING_OPERATORS = frozenset(
    {"var", "val", "missing", "missing_some", "exists", "changed", "prior"}
)


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
    try:
        root = translator.node(condition, "")
    except ConditionError as error:
        error.path = _written_path(condition, error.path)
        raise
    selected = _truth(root)
    if root.fails is not None:
        selected = sa.and_(selected, sa.not_(root.fails))
    _check_size(selected)
    return selected


#: One step of a path: an operator's name, or an item's index.
_STEP = re.compile(r"\.?([^.\[\]]+)|\[([0-9]+)\]")


def _written_path(condition: Any, path: str) -> str:
    """``path`` as ``condition`` is written.

    The translator takes an operand written alone (``{"!": {"==": ...}}``) as a
    list of one, and names it as item 0 (``![0]``), which the JSON does not
    have; the static checks name it where it is written (``!``), and so does
    this. A path that does not fit the condition is returned as it is.
    """
    node = condition
    steps: list[str] = []
    end = 0
    for match in _STEP.finditer(path):
        if match.start() != end:
            return path
        end = match.end()
        name, index = match.groups()
        if name is not None and isinstance(node, dict) and name in node:
            node = node[name]
            steps.append(f".{name}" if steps else name)
        elif index is not None and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
            steps.append(f"[{index}]")
        elif index != "0" or isinstance(node, list):
            return path
    return "".join(steps) if end == len(path) else path


def reads_context(condition: Any) -> bool:
    """Whether the SQL form of ``condition`` depends on who asks, or when.

    :func:`compile_sql` binds what ``$user``, ``$now``, ``today`` and ``now`` stand
    for as values of the moment. A condition without them translates the same for
    everyone at any time, so a caller may keep its translation. The answer errs
    towards true: any text that starts with ``$`` counts, and so does a name that
    is computed while the condition runs.
    """
    if isinstance(condition, str):
        return condition.startswith("$")
    if isinstance(condition, list):
        return any(reads_context(item) for item in condition)
    if not isinstance(condition, dict):
        return False
    for name, operand in condition.items():
        if name in _CLOCK_OPERATORS or reads_context(operand):
            return True
        if name in _NAMING_OPERATORS and _computes_a_name(operand):
            return True
    return False


def _computes_a_name(operand: Any) -> bool:
    operands = operand if isinstance(operand, list) else [operand]
    return any(isinstance(item, (dict, list)) for item in operands)


#: Nodes of the generated SQL expression a filter may have. Some operators repeat
#: their operands in SQL (``coalesce`` tests each one twice), so a short condition
#: can grow without bound; this stops it before the database sees it.
MAX_SQL_NODES = 20_000


def _check_size(expression: ColumnElement[bool]) -> None:
    pending: list[Any] = [expression]
    seen = 0
    while pending:
        node = pending.pop()
        seen += 1
        if seen > MAX_SQL_NODES:
            raise SqlTranslationError(
                "The condition is too complex to run as a filter; simplify it.",
                path="",
                code="too_complex",
            )
        pending.extend(node.get_children())


def by_code_point(text: ColumnElement[Any]) -> ColumnElement[str]:
    """``text`` as compiled conditions order it: by code point, as Python does.

    A PostgreSQL database created with a language's locale orders ``a`` before
    ``B``; compared through this, ``B`` comes first on every database, as in the
    rules. Wrap both sides of a comparison.
    """
    return _CodepointText(text)
