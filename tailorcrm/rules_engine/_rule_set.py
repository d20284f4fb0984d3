"""Rules taken together: checks across rules, and the compiled set per entity.

One rule can be fine alone and wrong next to others: two formulas for one field, a
default for a field a formula computes, an automation writing a roll-up, formulas
that need each other's result (also across lookups, and through roll-ups). This
module finds those, and arranges the active rules of each entity in the order they
run: formulas after the formulas they read, everything else by ``order``, then name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._checks import ConditionProblem, join_path
from ._kinds import (
    AutomationRule,
    DefaultRule,
    EntityShape,
    FieldStateRule,
    FormulaRule,
    RollupRule,
    Rule,
    ValidationRule,
)

#: The most rules one entity may have (DESIGN.md principle 10).
MAX_RULES_PER_ENTITY = 200

Node = tuple[str, str]


@dataclass(frozen=True)
class Dependent:
    """Formulas of ``child`` that read, through its ``lookup``, fields of a parent."""

    child: str
    lookup: str
    reads: frozenset[str]


@dataclass(frozen=True)
class EntityRules:
    """The active rules of one entity, compiled and in the order they run."""

    entity: str
    validations: tuple[ValidationRule, ...] = ()
    defaults: tuple[DefaultRule, ...] = ()
    formulas: tuple[FormulaRule, ...] = ()
    field_states: Mapping[str, FieldStateRule] = field(default_factory=dict)
    automations: tuple[AutomationRule, ...] = ()
    #: Roll-ups that fill fields of this entity.
    rollup_fields: tuple[RollupRule, ...] = ()
    #: Roll-ups over this entity's records, kept right when they change.
    rollups: tuple[RollupRule, ...] = ()
    #: Formulas elsewhere that read this entity's fields through a lookup.
    dependents: tuple[Dependent, ...] = ()
    #: Fields that a formula or roll-up computes, with the rule that does.
    computed: Mapping[str, Rule] = field(default_factory=dict)
    #: For each lookup, the related record's fields that the rules read.
    related_reads: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: The lookups through which validation and field-state rules read fields:
    #: they run on every save, where a formula runs when its inputs change.
    checked_through: frozenset[str] = frozenset()

    @property
    def on_records(self) -> bool:
        """Whether any rule reads or fills this entity's records as they are saved."""
        return bool(
            self.validations
            or self.defaults
            or self.formulas
            or self.field_states
            or self.automations
            or self.rollup_fields
        )

    @property
    def after_save(self) -> bool:
        """Whether a save of this entity has anything to do after it is written."""
        return bool(self.automations or self.rollups or self.dependents)


def expressions_of(rule: Rule) -> list[Any]:
    """Every compiled expression of ``rule`` evaluated on a record of its entity."""
    if isinstance(rule, ValidationRule):
        return [rule.condition]
    if isinstance(rule, (DefaultRule, FormulaRule)):
        return [rule.expression]
    if isinstance(rule, FieldStateRule):
        return [e for e in (rule.visible_if, rule.required_if, rule.readonly_if) if e]
    if isinstance(rule, AutomationRule):
        found = [rule.condition] if rule.condition else []
        for action in (*rule.actions, *rule.else_actions):
            found += [expression for _, expression in action.values]
        return found
    return []


def rule_uses(rule: Rule, shapes: Mapping[str, EntityShape]) -> frozenset[Node]:
    """Every ``(entity, field)`` the rule names: what it reads, fills or follows."""
    used: set[Node] = set()
    shape = shapes.get(rule.entity)
    targets = shape.targets if shape else {}
    for expression in expressions_of(rule):
        used |= _read_nodes(rule.entity, expression.reads, targets, shapes)
    for name in ("field",):
        value = getattr(rule, name, None)
        if isinstance(value, str):
            used.add((rule.entity, value))
    if isinstance(rule, RollupRule):
        used |= {(rule.child, name) for name in rule.reads}
    if isinstance(rule, AutomationRule):
        for action in (*rule.actions, *rule.else_actions):
            if action.type == "set_field":
                used |= {(rule.entity, name) for name, _ in action.values}
                continue
            used |= {(str(action.entity), name) for name, _ in action.values}
            lookup_owner = (
                action.entity if action.type == "create_record" else rule.entity
            )
            used.add((str(lookup_owner), str(action.lookup)))
    return frozenset(used)


def _read_nodes(
    entity: str,
    reads: Iterable[str],
    targets: Mapping[str, str],
    shapes: Mapping[str, EntityShape],
) -> set[Node]:
    nodes: set[Node] = set()
    for name in reads:
        head, _, rest = name.partition(".")
        nodes.add((entity, head))
        if rest and head in targets and targets[head] in shapes:
            nodes.add((targets[head], rest))
    return nodes


def check_rule_set(
    rules: Sequence[Rule],
    shapes: Mapping[str, EntityShape],
    *,
    new: Collection[str] = (),
) -> list[tuple[str, ConditionProblem]]:
    """Problems that rules cause together, each with the name of a rule at fault.

    :param new: names of rules being added or changed; when one of them clashes
        with a rule already there, the problem is reported on the new one.
    """
    problems: list[tuple[str, ConditionProblem]] = []
    per_entity: dict[str, int] = defaultdict(int)
    for rule in rules:
        per_entity[rule.entity] += 1
        if per_entity[rule.entity] == MAX_RULES_PER_ENTITY + 1:
            message = (
                f"An entity has at most {MAX_RULES_PER_ENTITY} rules; "
                f"{rule.entity} would have more."
            )
            problems.append(
                (rule.name, ConditionProblem("entity", "too_many_rules", message))
            )
    active = sorted(
        (r for r in rules if r.active), key=lambda r: (r.name in new, r.sort_key)
    )
    computed = _computed(active, problems)
    for rule in active:
        problems += _writes_to_computed(rule, computed, new)
    problems += _creates_without_required(active, shapes, computed)
    problems += _one_per_field(
        [rule for rule in active if isinstance(rule, DefaultRule)], "default"
    )
    problems += _one_per_field(
        [rule for rule in active if isinstance(rule, FieldStateRule)], "field_state"
    )
    problems += _cycles(active, shapes, new)
    return problems


def _computed(
    active: Sequence[Rule], problems: list[tuple[str, ConditionProblem]]
) -> dict[Node, Rule]:
    computed: dict[Node, Rule] = {}
    for rule in active:
        if not isinstance(rule, (FormulaRule, RollupRule)):
            continue
        node = (rule.entity, rule.field)
        other = computed.setdefault(node, rule)
        if other is not rule:
            message = (
                f"The rule {other.name!r} already computes {rule.entity}.{rule.field}; "
                "a field has one formula or roll-up."
            )
            problems.append(
                (rule.name, ConditionProblem("field", "computed_twice", message))
            )
    return computed


def _writes_to_computed(
    rule: Rule, computed: Mapping[Node, Rule], new: Collection[str]
) -> list[tuple[str, ConditionProblem]]:
    """Rules that write (or require) a field a formula or roll-up computes.

    The problem is the writer's, unless the writer is already there and the
    formula or roll-up is the rule being added or changed: then it is the new
    rule's, so that the document sent is the one refused.
    """
    found = []
    if isinstance(rule, DefaultRule) and (rule.entity, rule.field) in computed:
        other = computed[(rule.entity, rule.field)]
        found.append(
            _clash(
                other,
                rule,
                new,
                blamed=(
                    f"The default rule {rule.name!r} fills {rule.entity}."
                    f"{rule.field}, which a computed field cannot take; change or "
                    "delete it first."
                ),
                at="field",
                told=(
                    f"The field {rule.field!r} is computed by the rule {other.name!r}."
                ),
            )
        )
    if (
        isinstance(rule, FieldStateRule)
        and rule.required_if is not None
        and (rule.entity, rule.field) in computed
    ):
        # No one can fill it: a save it is required in could only be refused.
        other = computed[(rule.entity, rule.field)]
        found.append(
            _clash(
                other,
                rule,
                new,
                blamed=(
                    f"The field_state rule {rule.name!r} can make "
                    f"{rule.entity}.{rule.field} required, which no one could fill "
                    "once it is computed; change or delete that rule first."
                ),
                at="required_if",
                told=(
                    f"The field {rule.field!r} is computed by the rule "
                    f"{other.name!r}, so no one can fill it; require the fields it "
                    "is computed from instead."
                ),
            )
        )
    if not isinstance(rule, AutomationRule):
        return found
    for key, actions in (
        ("actions", rule.actions),
        ("else_actions", rule.else_actions),
    ):
        for index, action in enumerate(actions):
            entity = rule.entity if action.type == "set_field" else str(action.entity)
            for name, _ in action.values:
                writer = computed.get((entity, name))
                if writer is None:
                    continue
                path = f"{key}[{index}]." + (
                    "field" if action.type == "set_field" else f"values.{name}"
                )
                found.append(
                    _clash(
                        writer,
                        rule,
                        new,
                        blamed=(
                            f"The automation {rule.name!r} writes {entity}.{name} "
                            f"(at {path}), which automations cannot do to a "
                            "computed field; change or delete that automation first."
                        ),
                        at=path,
                        told=(
                            f"{entity}.{name} is computed by the rule "
                            f"{writer.name!r}; automations cannot write it."
                        ),
                    )
                )
    return found


def _clash(
    computing: Rule,
    writer: Rule,
    new: Collection[str],
    *,
    blamed: str,
    at: str,
    told: str,
) -> tuple[str, ConditionProblem]:
    """The problem of a rule that writes (or requires) a field that another
    computes: the computing rule's at its ``field``, saying ``blamed``, when it
    is the one sent (see :func:`_blames`); else the writer's at ``at``, saying
    ``told``."""
    if _blames(computing, writer, new):
        return computing.name, ConditionProblem("field", "computed", blamed)
    return writer.name, ConditionProblem(at, "computed", told)


def _blames(computing: Rule, writer: Rule, new: Collection[str]) -> bool:
    """Whether a clash between a formula or roll-up and a rule writing its field
    is the computing rule's: it is new, and the writer was there before."""
    return computing.name in new and writer.name not in new


def _creates_without_required(
    active: Sequence[Rule],
    shapes: Mapping[str, EntityShape],
    computed: Mapping[Node, Rule],
) -> list[tuple[str, ConditionProblem]]:
    """``create_record`` actions that give no value for a field their entity
    requires and nothing fills (a default, a default rule, a formula or roll-up):
    every save that triggers them would be refused."""
    filled = {
        (rule.entity, rule.field) for rule in active if isinstance(rule, DefaultRule)
    }
    found = []
    for rule in active:
        if not isinstance(rule, AutomationRule):
            continue
        for key, actions in (
            ("actions", rule.actions),
            ("else_actions", rule.else_actions),
        ):
            for index, action in enumerate(actions):
                shape = shapes.get(str(action.entity))
                if action.type != "create_record" or shape is None:
                    continue
                given = {name for name, _ in action.values} | {str(action.lookup)}
                for name in sorted(shape.required - shape.defaults - given):
                    node = (shape.name, name)
                    if node in filled or node in computed:
                        continue
                    if shape.fields.get(name) == "autonumber":
                        # The platform numbers each new record.
                        continue
                    message = (
                        f"{shape.name}.{name} is required and nothing fills it; "
                        "give it in values."
                    )
                    path = f"{key}[{index}].values"
                    found.append(
                        (rule.name, ConditionProblem(path, "required", message))
                    )
    return found


def _one_per_field(
    rules: Sequence[DefaultRule | FieldStateRule], what: str
) -> list[tuple[str, ConditionProblem]]:
    seen: dict[Node, str] = {}
    found = []
    for rule in rules:
        node = (rule.entity, rule.field)
        if node in seen:
            message = (
                f"The {what} rule {seen[node]!r} is already active for "
                f"{node[0]}.{node[1]}; a field has one."
            )
            found.append(
                (rule.name, ConditionProblem("field", "duplicate_rule", message))
            )
        seen.setdefault(node, rule.name)
    return found


def dependency_graph(
    active: Sequence[Rule], shapes: Mapping[str, EntityShape]
) -> dict[Node, tuple[Rule, set[Node]]]:
    """Each computed field, with its rule and the fields its value is made of."""
    graph: dict[Node, tuple[Rule, set[Node]]] = {}
    for rule in active:
        if isinstance(rule, FormulaRule):
            shape = shapes.get(rule.entity)
            targets = shape.targets if shape else {}
            inputs = _read_nodes(rule.entity, rule.expression.reads, targets, shapes)
        elif isinstance(rule, RollupRule):
            inputs = {(rule.child, name) for name in rule.reads}
        else:
            continue
        graph.setdefault((rule.entity, rule.field), (rule, inputs))
    return graph


def _cycles(
    active: Sequence[Rule], shapes: Mapping[str, EntityShape], new: Collection[str]
) -> list[tuple[str, ConditionProblem]]:
    graph = dependency_graph(active, shapes)
    state: dict[Node, int] = {}
    stack: list[Node] = []
    found: list[tuple[str, ConditionProblem]] = []
    reported: set[frozenset[Node]] = set()

    def visit(node: Node) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node][1]):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                loop = stack[stack.index(nxt) :]
                if frozenset(loop) not in reported:
                    reported.add(frozenset(loop))
                    found.append(_cycle_problem(loop, graph, shapes, new))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def _cycle_problem(
    loop: list[Node],
    graph: Mapping[Node, tuple[Rule, set[Node]]],
    shapes: Mapping[str, EntityShape],
    new: Collection[str],
) -> tuple[str, ConditionProblem]:
    involved = [graph[node][0] for node in loop]
    at = next((i for i, r in enumerate(involved) if r.name in new), 0)
    # The circle is told from the field of the rule it is the problem of.
    loop, involved = loop[at:] + loop[:at], involved[at:] + involved[:at]
    names = " -> ".join(f"{entity}.{name}" for entity, name in [*loop, loop[0]])
    rules = ", ".join(sorted({rule.name for rule in involved}))
    rule = involved[0]
    path = _input_path(rule, loop[1 % len(loop)], shapes)
    if len(loop) == 1:
        ((entity, name),) = loop
        message = (
            f"The rule computes {entity}.{name} from {entity}.{name} itself (here, "
            f"or on another {entity} it looks up to), so it would need its own "
            "value first."
        )
    else:
        message = (
            f"These fields would each need the other's value first: {names} "
            f"(rules {rules})."
        )
    return rule.name, ConditionProblem(path, "dependency_cycle", message)


def _input_path(rule: Rule, node: Node, shapes: Mapping[str, EntityShape]) -> str:
    """The JSON path in ``rule`` of what reads ``node``, the next field of a
    circle: where in a formula's expression it is read, or which part of a
    roll-up (its ``of``, its lookup, or where its condition reads it)."""
    if isinstance(rule, FormulaRule):
        shape = shapes.get(rule.entity)
        targets = shape.targets if shape else {}
        for name in sorted(rule.expression.reads):
            if node in _read_nodes(rule.entity, [name], targets, shapes):
                return join_path("expression", rule.expression.read_at.get(name, ""))
        return "expression"
    if isinstance(rule, RollupRule):
        name = node[1]
        if name == rule.of:
            return "of"
        if name == rule.lookup:
            return "relation.lookup"
        if rule.condition is not None and name in rule.condition.reads:
            return join_path("condition", rule.condition.read_at.get(name, ""))
    return "field"


def build_rule_set(
    rules: Sequence[Rule], shapes: Mapping[str, EntityShape]
) -> dict[str, EntityRules]:
    """Arrange the active rules by entity, in the order they run.

    The rules should have passed :func:`check_rule_set`; formulas caught in a
    circle are then left out rather than run in an arbitrary order.
    """
    active = sorted((r for r in rules if r.active), key=lambda r: r.sort_key)
    graph = dependency_graph(active, shapes)
    parts: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for rule in active:
        parts[rule.entity][rule.type].append(rule)
        if isinstance(rule, RollupRule):
            parts[rule.child]["child_rollups"].append(rule)
        if isinstance(rule, FormulaRule):
            shape = shapes.get(rule.entity)
            for lookup, reads in _related(rule.expression.reads).items():
                target = shape.targets.get(lookup) if shape else None
                if target is not None:
                    parts[target]["dependents"].append(
                        Dependent(rule.entity, lookup, frozenset(reads))
                    )
    return {
        entity: _entity_rules(entity, kinds, graph) for entity, kinds in parts.items()
    }


def _entity_rules(
    entity: str,
    kinds: Mapping[str, list[Any]],
    graph: Mapping[Node, tuple[Rule, set[Node]]],
) -> EntityRules:
    formulas = _formula_order(entity, kinds.get("formula", []), graph)
    rollups = kinds.get("rollup", [])
    computed: dict[str, Rule] = {r.field: r for r in [*formulas, *rollups]}
    related: dict[str, set[str]] = defaultdict(set)
    own = [
        rule
        for key in ("validation", "default", "formula", "field_state", "automation")
        for rule in kinds.get(key, [])
    ]
    checked: set[str] = set()
    for rule in own:
        for expression in expressions_of(rule):
            for lookup, reads in _related(expression.reads).items():
                related[lookup] |= reads
                if isinstance(rule, (ValidationRule, FieldStateRule)):
                    checked.add(lookup)
    return EntityRules(
        entity=entity,
        validations=tuple(kinds.get("validation", [])),
        defaults=tuple(kinds.get("default", [])),
        formulas=tuple(formulas),
        field_states={rule.field: rule for rule in kinds.get("field_state", [])},
        automations=tuple(kinds.get("automation", [])),
        rollup_fields=tuple(rollups),
        rollups=tuple(kinds.get("child_rollups", [])),
        dependents=_merge_dependents(kinds.get("dependents", [])),
        computed=computed,
        related_reads={lookup: frozenset(reads) for lookup, reads in related.items()},
        checked_through=frozenset(checked),
    )


def _related(reads: Iterable[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for name in reads:
        head, _, rest = name.partition(".")
        if rest:
            found[head].add(rest)
    return found


def _merge_dependents(dependents: list[Dependent]) -> tuple[Dependent, ...]:
    merged: dict[tuple[str, str], set[str]] = defaultdict(set)
    for dependent in dependents:
        merged[(dependent.child, dependent.lookup)] |= dependent.reads
    return tuple(
        Dependent(child, lookup, frozenset(reads))
        for (child, lookup), reads in sorted(merged.items())
    )


def _formula_order(
    entity: str,
    formulas: list[FormulaRule],
    graph: Mapping[Node, tuple[Rule, set[Node]]],
) -> list[FormulaRule]:
    """Formulas after the formulas of the same record whose fields they read."""
    by_field = {rule.field: rule for rule in formulas}
    ordered: list[FormulaRule] = []
    state: dict[str, int] = {}

    def visit(rule: FormulaRule) -> bool:
        if state.get(rule.field) == 2:
            return True
        if state.get(rule.field) == 1:
            return False
        state[rule.field] = 1
        inputs = graph.get((entity, rule.field), (rule, set()))[1]
        for other_entity, name in sorted(inputs):
            same = other_entity == entity and name != rule.field
            if same and name in by_field and not visit(by_field[name]):
                return False
        state[rule.field] = 2
        ordered.append(rule)
        return True

    for rule in formulas:
        visit(rule)
    return ordered
