"""Rules engine: one JSON condition language, compiled once, evaluated per record.

Conditions are JSON Logic (https://jsonlogic.com) with the CRM operations that
OPERATIONS.md documents. :func:`compile_condition` turns a condition into a Python
callable; :func:`evaluate` is the one-off form; :func:`check_condition` reports
what is wrong with a condition before it is saved; :func:`compile_sql` turns it into
a SQLAlchemy expression that selects the records Python evaluation accepts;
:func:`field_names` and :func:`rename_fields` find and rename the fields a
condition reads.
"""

from __future__ import annotations

from types import MappingProxyType

from ._checks import ConditionProblem, check_condition
from ._compiler import (
    MAX_DEPTH,
    MAX_SIZE,
    CompiledCondition,
    compile_condition,
    evaluate,
)
from ._errors import ConditionError, EvaluationError, RuleError
from ._references import field_names, rename_fields
from ._registry import OPERATORS as _OPERATORS
from ._sql import SqlTranslationError, compile_sql
from ._values import is_blank, truthy

#: Every operator the language knows, by name (read-only).
OPERATORS = MappingProxyType(_OPERATORS)

__all__ = [
    "MAX_DEPTH",
    "MAX_SIZE",
    "OPERATORS",
    "CompiledCondition",
    "ConditionError",
    "ConditionProblem",
    "EvaluationError",
    "RuleError",
    "SqlTranslationError",
    "check_condition",
    "compile_condition",
    "compile_sql",
    "evaluate",
    "field_names",
    "is_blank",
    "rename_fields",
    "truthy",
]
