"""Rule kinds: validation, default, formula, roll-up, field state and automation.

A rule document says *when* conditions and formulas of the language apply. Its
compiled form is a :class:`Rule` (one subclass per type) whose conditions are
compiled once into closures; :mod:`._rule_build` checks a document against the
entities it touches, which the engine sees only as :class:`EntityShape` values (it
knows nothing of tables, records or the platform), and builds the rule. Checks
across rules are in :mod:`._rule_set`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._compiler import CompiledCondition

RULE_TYPES = ("validation", "default", "formula", "rollup", "field_state", "automation")
TRIGGERS = ("create", "update", "delete")
ROLLUP_FUNCTIONS = ("count", "sum", "min", "max")
ACTION_TYPES = ("set_field", "create_record", "update_related")
FIELD_STATES = ("visible_if", "required_if", "readonly_if")

#: The keys every rule has.
COMMON_KEYS = frozenset(
    {"kind", "name", "entity", "type", "label", "description", "active", "order"}
)
#: The keys each rule type takes besides the common ones.
TYPE_KEYS: dict[str, frozenset[str]] = {
    "validation": frozenset({"condition", "message", "field"}),
    "default": frozenset({"field", "expression"}),
    "formula": frozenset({"field", "expression"}),
    "rollup": frozenset({"field", "relation", "function", "of", "condition"}),
    "field_state": frozenset({"field", *FIELD_STATES}),
    "automation": frozenset({"trigger", "condition", "actions", "else_actions"}),
}
#: The keys of each action type.
ACTION_KEYS: dict[str, frozenset[str]] = {
    "set_field": frozenset({"type", "field", "value", "expression"}),
    "create_record": frozenset({"type", "entity", "lookup", "values"}),
    "update_related": frozenset({"type", "lookup", "values"}),
}

# The kinds of value (as the static checks name them) each field type can hold.
_FILLS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        ("text", "textarea", "email", "phone", "url", "picklist"), frozenset({"text"})
    ),
    **dict.fromkeys(
        ("integer", "decimal", "currency", "percent"), frozenset({"number"})
    ),
    "boolean": frozenset({"boolean"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime", "date"}),
    "multi_picklist": frozenset({"list"}),
    "lookup": frozenset({"number", "record"}),
}
_UNKNOWN_KINDS = frozenset({"any", "null"})
#: The field types each roll-up function can be taken of.
ROLLUP_OF = {
    "sum": frozenset({"integer", "decimal", "currency", "percent"}),
    "min": frozenset({"integer", "decimal", "currency", "percent", "date", "datetime"}),
}
ROLLUP_OF["max"] = ROLLUP_OF["min"]


@dataclass(frozen=True)
class EntityShape:
    """What the rules may know about one entity.

    ``fields`` maps every readable name (fields and system columns) to its field
    type; ``targets`` maps each lookup field to the entity it points at;
    ``writable`` names the fields a record may be written with; ``defaults`` the
    fields that have a default in the entity document, ``required`` those it
    requires.
    """

    name: str
    fields: Mapping[str, str]
    targets: Mapping[str, str]
    writable: frozenset[str]
    defaults: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()

    def relations(self, shapes: Mapping[str, EntityShape]) -> dict[str, Any]:
        """For each lookup, the fields of the entity it points at."""
        return {
            lookup: shapes[target].fields
            for lookup, target in self.targets.items()
            if target in shapes
        }


class Expression(CompiledCondition):
    """A compiled condition or formula with what the checks learnt about it.

    It is called as the condition it was compiled from (one call, not a call
    that makes another: rules run on every save).
    """

    __slots__ = ("reads", "dynamic", "read_at")

    def __init__(
        self,
        source: Any,
        fn: CompiledCondition,
        reads: frozenset[str],
        dynamic: bool,
        read_at: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(source, fn.function, strict=fn.strict)
        self.reads = reads
        self.dynamic = dynamic
        #: For each name in ``reads``, the JSON path where the expression first
        #: reads it (``*[0]``), so that a problem with it can be pointed at.
        self.read_at: Mapping[str, str] = read_at or {}

    @property
    def source(self) -> Any:
        return self.condition

    @property
    def fn(self) -> CompiledCondition:
        return self


@dataclass(frozen=True, kw_only=True, eq=False)
class Rule:
    """What every compiled rule has; the subclasses add their type's parts.

    Rules compare and hash by identity: each is compiled once per catalog.
    """

    name: str
    entity: str
    type: str
    order: int
    active: bool
    document: Mapping[str, Any] = dataclasses.field(repr=False)

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.order, self.name)


@dataclass(frozen=True, kw_only=True, eq=False)
class ValidationRule(Rule):
    condition: Expression
    message: str
    field: str | None


@dataclass(frozen=True, kw_only=True, eq=False)
class DefaultRule(Rule):
    field: str
    expression: Expression


@dataclass(frozen=True, kw_only=True, eq=False)
class FormulaRule(Rule):
    field: str
    expression: Expression

    @functools.cached_property
    def inputs(self) -> frozenset[str]:
        """The names whose change makes the formula run again: what it reads,
        and the lookups it reads through."""
        reads = self.expression.reads
        return reads | {name.split(".", 1)[0] for name in reads}


@dataclass(frozen=True, kw_only=True, eq=False)
class RollupRule(Rule):
    field: str
    child: str
    lookup: str
    function: str
    of: str | None
    condition: Expression | None

    @property
    def reads(self) -> frozenset[str]:
        """The child's fields whose change can change the roll-up."""
        names = {self.lookup, *([self.of] if self.of else [])}
        return frozenset(names | (self.condition.reads if self.condition else set()))


@dataclass(frozen=True, kw_only=True, eq=False)
class FieldStateRule(Rule):
    field: str
    visible_if: Expression | None
    required_if: Expression | None
    readonly_if: Expression | None


@dataclass(frozen=True)
class FieldState:
    """What field state decides for one field of one record.

    ``visible`` is false only when a ``visible_if`` (the field's, or its layout
    section's) is false; ``required`` is true when ``required_if`` is true and the
    field is visible; ``readonly`` when ``readonly_if`` is true for the record as
    stored (never on a create).
    """

    visible: bool = True
    required: bool = False
    readonly: bool = False


@dataclass(frozen=True, eq=False)
class Action:
    """One step of an automation.

    ``set_field`` fills ``values`` of the record itself; ``create_record`` creates
    a record of ``entity`` whose ``lookup`` points at the record; ``update_related``
    changes the record that the record's ``lookup`` points at. Every value is an
    expression evaluated on the triggering record.
    """

    type: str
    values: tuple[tuple[str, Expression], ...]
    entity: str | None = None
    lookup: str | None = None


@dataclass(frozen=True, kw_only=True, eq=False)
class AutomationRule(Rule):
    triggers: frozenset[str]
    condition: Expression | None
    actions: tuple[Action, ...]
    else_actions: tuple[Action, ...]


def fills(field_type: str, kind: str, *, formula: bool = False) -> bool:
    """Whether an expression giving ``kind`` can fill a field of ``field_type``."""
    if formula and field_type == "lookup":
        return False
    if kind == "blank":
        # Blank text or an empty list: no value, except to a boolean field.
        return field_type in _FILLS and field_type != "boolean"
    allowed = _FILLS.get(field_type)
    return allowed is not None and (kind in allowed or kind in _UNKNOWN_KINDS)
