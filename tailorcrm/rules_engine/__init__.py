"""Rules engine: one JSON condition language, compiled once, evaluated per record.

Conditions are JSON Logic (https://jsonlogic.com) with the CRM operations that
OPERATIONS.md documents. :func:`compile_condition` turns a condition into a Python
callable; :func:`evaluate` is the one-off form; :func:`check_condition` reports
what is wrong with a condition before it is saved; :func:`compile_sql` turns it into
a SQLAlchemy expression that selects the records Python evaluation accepts;
:func:`field_names` and :func:`rename_fields` find and rename the fields a
condition reads.

Rule kinds (validation, default, formula, roll-up, field state, automation) are
compiled from their documents by :func:`compile_rule` and arranged per entity by
:func:`build_rule_set`; RULES.md says when each runs.
"""

from __future__ import annotations

from types import MappingProxyType

from ._checks import (
    ConditionAnalysis,
    ConditionProblem,
    analyze_condition,
    check_condition,
    join_path,
    written_values,
)
from ._compiler import (
    MAX_DEPTH,
    MAX_SIZE,
    CompiledCondition,
    compile_condition,
    evaluate,
)
from ._dates import reads_as_date
from ._errors import ConditionError, EvaluationError, RuleError
from ._kinds import (
    ACTION_TYPES,
    FIELD_STATES,
    ROLLUP_FUNCTIONS,
    RULE_TYPES,
    TRIGGERS,
    Action,
    AutomationRule,
    DefaultRule,
    EntityShape,
    Expression,
    FieldState,
    FieldStateRule,
    FormulaRule,
    RollupRule,
    Rule,
    ValidationRule,
)
from ._references import field_names, rename_fields
from ._registry import OPERATORS as _OPERATORS
from ._rule_build import compile_rule
from ._rule_set import (
    MAX_RULES_PER_ENTITY,
    Dependent,
    EntityRules,
    build_rule_set,
    check_rule_set,
    expressions_of,
    rule_uses,
)
from ._sql import SqlTranslationError, by_code_point, compile_sql, reads_context
from ._values import is_blank, truthy

#: Every operator the language knows, by name (read-only).
OPERATORS = MappingProxyType(_OPERATORS)

__all__ = [
    "ACTION_TYPES",
    "FIELD_STATES",
    "MAX_DEPTH",
    "MAX_RULES_PER_ENTITY",
    "MAX_SIZE",
    "OPERATORS",
    "ROLLUP_FUNCTIONS",
    "RULE_TYPES",
    "TRIGGERS",
    "Action",
    "AutomationRule",
    "CompiledCondition",
    "ConditionAnalysis",
    "ConditionError",
    "ConditionProblem",
    "DefaultRule",
    "Dependent",
    "EntityRules",
    "EntityShape",
    "EvaluationError",
    "Expression",
    "FieldState",
    "FieldStateRule",
    "FormulaRule",
    "RollupRule",
    "Rule",
    "RuleError",
    "SqlTranslationError",
    "ValidationRule",
    "analyze_condition",
    "build_rule_set",
    "by_code_point",
    "check_condition",
    "check_rule_set",
    "compile_condition",
    "compile_rule",
    "compile_sql",
    "evaluate",
    "expressions_of",
    "field_names",
    "is_blank",
    "join_path",
    "reads_as_date",
    "reads_context",
    "rename_fields",
    "rule_uses",
    "truthy",
    "written_values",
]
