"""Building a compiled rule from its document, checking it on the way.

Every problem found carries the JSON path of the part of the document at fault,
down into its conditions (``condition.and[1].>[0]``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from . import _dates
from ._checks import (
    ConditionAnalysis,
    ConditionProblem,
    analyze_condition,
    join_path,
)
from ._compiler import compile_condition
from ._errors import ConditionError
from ._kinds import (
    ACTION_KEYS,
    COMMON_KEYS,
    FIELD_STATES,
    ROLLUP_OF,
    TYPE_KEYS,
    Action,
    AutomationRule,
    DefaultRule,
    EntityShape,
    Expression,
    FieldStateRule,
    FormulaRule,
    RollupRule,
    Rule,
    ValidationRule,
    fills,
)


def compile_rule(
    document: Mapping[str, Any],
    shapes: Mapping[str, EntityShape],
    *,
    lenient: bool = False,
) -> tuple[Rule | None, list[ConditionProblem]]:
    """Check one rule document against the entities and compile it.

    The document must already have passed the rule JSON Schema. Every problem
    carries the JSON path of the part at fault, conditions included
    (``condition.and[1].>[0]``).

    :param lenient: refuse an expression for the field it fills only when none of
        the values it may give fits, rather than when one of them does not: how
        rules already stored are read, so that one stored before its branches
        were judged goes on working where it can.
    :returns: the compiled rule, or ``None`` with every problem found.
    """
    builder = _Builder(document, shapes, lenient=lenient)
    rule = builder.build()
    if builder.problems:
        return None, builder.problems
    return rule, []


class _Builder:
    def __init__(
        self,
        document: Mapping[str, Any],
        shapes: Mapping[str, EntityShape],
        *,
        lenient: bool,
    ) -> None:
        self.document = document
        self.shapes = shapes
        self.lenient = lenient
        self.problems: list[ConditionProblem] = []
        self.type = str(document.get("type"))

    def report(self, path: str, code: str, message: str) -> None:
        self.problems.append(ConditionProblem(path, code, message))

    def build(self) -> Rule | None:
        document = self.document
        for key in document:
            if key not in COMMON_KEYS and key not in TYPE_KEYS.get(self.type, ()):
                # Only "automation" among the rule types starts with a vowel.
                article = "An" if self.type == "automation" else "A"
                message = f"{article} {self.type} rule takes no {key!r}."
                self.report(str(key), "not_applicable", message)
        shape = self.shapes.get(str(document.get("entity")))
        if shape is None:
            message = f"There is no entity named {document.get('entity')!r}."
            self.report("entity", "unknown_entity", message)
            return None
        common = {
            "name": str(document["name"]),
            "entity": shape.name,
            "type": self.type,
            "order": int(document.get("order", 0)),
            "active": bool(document.get("active", True)),
            "document": document,
        }
        build = getattr(self, f"_{self.type}")
        rule: Rule | None = build(shape, common)
        return rule

    # -- the parts ---------------------------------------------------------------

    def expression(
        self,
        path: str,
        source: Any,
        shape: EntityShape,
        *,
        allow_prior: bool,
        fill: tuple[str, EntityShape] | None = None,
        formula: bool = False,
        lookup_ids: bool = False,
    ) -> Expression | None:
        """Check and compile one expression on records of ``shape``; ``fill`` is
        the field it fills and that field's entity; ``lookup_ids`` says that its
        lookups read as their ids (a roll-up's condition, which runs on the
        child's row)."""
        analysis = analyze_condition(
            source,
            fields=shape.fields,
            relations=shape.relations(self.shapes),
            allow_prior=allow_prior,
            lookup_ids=lookup_ids,
        )
        for problem in analysis.problems:
            self.report(join_path(path, problem.path), problem.code, problem.message)
        if fill is not None:
            self.check_fill(path, analysis, shape, fill, formula=formula)
        if analysis.problems:
            return None
        try:
            compiled = compile_condition(source)
        except ConditionError as error:
            self.report(join_path(path, error.path), error.code, error.message)
            return None
        return Expression(
            source, compiled, analysis.reads, analysis.dynamic, analysis.read_at
        )

    def check_fill(
        self,
        path: str,
        analysis: ConditionAnalysis,
        shape: EntityShape,
        fill: tuple[str, EntityShape],
        *,
        formula: bool,
    ) -> None:
        field, owner = fill
        field_type = owner.fields[field]
        target = owner.targets.get(field)
        if analysis.problems:
            return
        # An expression that gives one of its operands (if, coalesce, or…) is
        # judged by each, and by each alone: a branch the field cannot hold fails
        # the saves that take it, and ISO date text in every branch of an if
        # fills a date field as it does written alone.
        unfit = [
            (_KIND_WORDS.get(kind, kind), where, _unfit_reason(field_type, value))
            for kind, value, where in analysis.outcomes
            if not fills(field_type, kind, formula=formula)
            and not _date_text_fills(field_type, value)
        ]
        if self.lenient:
            # A stored rule is refused only when none of its values fits, and
            # goes on filling a lookup with another entity's record as it did.
            if len(unfit) < len(analysis.outcomes):
                return
        elif target is not None:
            unfit += self.foreign_records(analysis, shape, target)
        for words, where, reason in unfit:
            if where:
                message = f"This can give {words}, which the "
            else:
                message = f"The expression gives {words}, which the "
            message += f"{field_type} field {field!r} cannot hold{reason}"
            self.report(join_path(path, where), "wrong_type", message)

    def foreign_records(
        self, analysis: ConditionAnalysis, shape: EntityShape, target: str
    ) -> list[tuple[str, str, str]]:
        """The values of ``analysis`` that are records of another entity than
        ``target``, which the lookup they fill points at: a lookup holds an id,
        and another entity's would point it at the record of ``target`` that
        happens to have that id."""
        found = []
        for kind, _, where in analysis.outcomes:
            if kind != "record":
                continue
            entity = self.record_entity(shape, analysis.records.get(where))
            if entity is not None and entity != target:
                reason = f"; it holds records of {target}."
                found.append((f"a record of {entity}", where, reason))
        return found

    def record_entity(self, shape: EntityShape, name: str | None) -> str | None:
        """The entity of the record that ``name`` reads on records of ``shape``
        (see :attr:`ConditionAnalysis.records`), when it is known."""
        if name is None:
            return None
        if not name:
            return shape.name
        head, _, rest = name.partition(".")
        target = shape.targets.get(head)
        if not rest:
            return target
        related = self.shapes.get(target or "")
        return related.targets.get(rest) if related is not None else None

    def target_field(
        self,
        path: str,
        shape: EntityShape,
        field: Any,
        *,
        computed: bool = False,
        writable: bool = True,
    ) -> str | None:
        """A field the rule fills: it must exist and hold what rules can give."""
        if not isinstance(field, str) or field not in shape.fields:
            message = f"{shape.name} has no field {field!r}."
            self.report(path, "unknown_field", message)
            return None
        field_type = shape.fields[field]
        if writable and field not in shape.writable:
            message = f"The field {field!r} is set by the system; rules cannot set it."
            self.report(path, "read_only", message)
            return None
        if computed and field_type in ("lookup", "autonumber"):
            message = f"A formula cannot fill the {field_type} field {field!r}."
            self.report(path, "wrong_type", message)
            return None
        if (computed or self.type == "default") and field in shape.defaults:
            message = (
                f"The field {field!r} has a default in its entity document; remove "
                "that default or this rule."
            )
            self.report(path, "has_default", message)
            return None
        return field

    # -- one builder per rule type -------------------------------------------------

    def _validation(self, shape: EntityShape, common: dict[str, Any]) -> Rule | None:
        field = self.document.get("field")
        if field is not None and field not in shape.fields:
            self.report(
                "field", "unknown_field", f"{shape.name} has no field {field!r}."
            )
        condition = self.expression(
            "condition", self.document["condition"], shape, allow_prior=True
        )
        if condition is None or self.problems:
            return None
        return ValidationRule(
            **common,
            condition=condition,
            message=str(self.document["message"]),
            field=field,
        )

    def _default(self, shape: EntityShape, common: dict[str, Any]) -> Rule | None:
        field = self.target_field("field", shape, self.document["field"])
        if field is None:
            return None
        expression = self.expression(
            "expression",
            self.document["expression"],
            shape,
            allow_prior=False,
            fill=(field, shape),
        )
        if expression is None:
            return None
        return DefaultRule(**common, field=field, expression=expression)

    def _formula(self, shape: EntityShape, common: dict[str, Any]) -> Rule | None:
        field = self.target_field("field", shape, self.document["field"], computed=True)
        if field is None:
            return None
        expression = self.expression(
            "expression",
            self.document["expression"],
            shape,
            allow_prior=False,
            fill=(field, shape),
            formula=True,
        )
        if expression is None:
            return None
        if expression.dynamic:
            message = (
                "A formula must name the fields it reads; a name computed while it "
                "runs (or the whole record) cannot be followed when inputs change."
            )
            self.report("expression", "dynamic_field", message)
            return None
        unfollowed = sorted(name for name in expression.reads if _moves_unseen(name))
        for name in unfollowed:
            message = (
                f"A formula cannot read {name!r}: a record's id is given when it is "
                "stored, and its version and updated_at move with every save, so "
                "the formula's value would not be kept up to date."
            )
            where = join_path("expression", expression.read_at.get(name, ""))
            self.report(where, "unfollowed_field", message)
        if unfollowed:
            return None
        return FormulaRule(**common, field=field, expression=expression)

    def _rollup(self, shape: EntityShape, common: dict[str, Any]) -> Rule | None:
        document = self.document
        field = self.target_field("field", shape, document["field"], computed=True)
        relation = document["relation"]
        child = self.shapes.get(relation["entity"])
        if child is None:
            message = f"There is no entity named {relation['entity']!r}."
            self.report("relation.entity", "unknown_entity", message)
            return None
        lookup = relation["lookup"]
        if child.targets.get(lookup) != shape.name:
            message = (
                f"{child.name} has no lookup field {lookup!r} that points at "
                f"{shape.name}."
            )
            self.report("relation.lookup", "unknown_relation", message)
        function = document["function"]
        of = self.rollup_of(child, function, document.get("of"))
        condition = None
        if document.get("condition") is not None:
            condition = self.expression(
                "condition",
                document["condition"],
                child,
                allow_prior=False,
                lookup_ids=True,
            )
            if condition is not None and condition.dynamic:
                message = "A roll-up condition must name the fields it reads."
                self.report("condition", "dynamic_field", message)
            if condition is not None and any("." in name for name in condition.reads):
                message = (
                    f"A roll-up condition reads the fields of {child.name} itself, "
                    "not those of records it looks up to."
                )
                self.report("condition", "unknown_relation", message)
        if field is not None:
            self.rollup_target(shape, field, function, child, of)
        if self.problems or field is None:
            return None
        return RollupRule(
            **common,
            field=field,
            child=child.name,
            lookup=lookup,
            function=function,
            of=of,
            condition=condition,
        )

    def rollup_of(self, child: EntityShape, function: str, of: Any) -> str | None:
        if function == "count":
            if of is not None:
                self.report(
                    "of", "not_applicable", "count counts records; it takes no 'of'."
                )
            return None
        if not isinstance(of, str):
            self.report(
                "of", "required", f"{function} needs 'of', a field of {child.name}."
            )
            return None
        if of not in child.fields:
            self.report("of", "unknown_field", f"{child.name} has no field {of!r}.")
            return None
        if child.fields[of] not in ROLLUP_OF[function]:
            message = (
                f"{function} cannot be taken of the {child.fields[of]} field {of!r}."
            )
            self.report("of", "wrong_type", message)
            return None
        return of

    def rollup_target(
        self,
        shape: EntityShape,
        field: str,
        function: str,
        child: EntityShape,
        of: str | None,
    ) -> None:
        field_type = shape.fields[field]
        if function == "count" or of is None:
            allowed = ROLLUP_OF["sum"]
        elif child.fields[of] in ("date", "datetime"):
            allowed = frozenset({child.fields[of]})
        else:
            allowed = ROLLUP_OF["sum"]
        if field_type not in allowed:
            message = (
                f"The {field_type} field {field!r} cannot hold the {function} of "
                f"{child.name}" + (f".{of}" if of else "") + "."
            )
            self.report("field", "wrong_type", message)
        elif function in ("min", "max") and field in shape.required:
            # Over no children the value is null, which a required field refuses:
            # no record could be created, nor saved while it has no children.
            message = (
                f"The field {field!r} is required, but the {function} of no "
                f"{child.name} records is blank; make the field optional."
            )
            self.report("field", "wrong_type", message)

    def _field_state(self, shape: EntityShape, common: dict[str, Any]) -> Rule | None:
        field = self.document["field"]
        if field not in shape.fields or field not in shape.writable:
            message = (
                f"{shape.name} has no field {field!r} that records are written with."
            )
            self.report("field", "unknown_field", message)
        states: dict[str, Expression | None] = {}
        for key in FIELD_STATES:
            if key in self.document:
                states[key] = self.expression(
                    key, self.document[key], shape, allow_prior=False
                )
        if not states:
            message = "Give at least one of visible_if, required_if and readonly_if."
            self.report("", "required", message)
        if self.problems:
            return None
        return FieldStateRule(
            **common,
            field=field,
            visible_if=states.get("visible_if"),
            required_if=states.get("required_if"),
            readonly_if=states.get("readonly_if"),
        )

    def _automation(self, shape: EntityShape, common: dict[str, Any]) -> Rule | None:
        document = self.document
        trigger = document["trigger"]
        triggers = frozenset([trigger] if isinstance(trigger, str) else trigger)
        updates = "update" in triggers
        condition = None
        if document.get("condition") is not None:
            condition = self.expression(
                "condition", document["condition"], shape, allow_prior=updates
            )
        branches = []
        for key in ("actions", "else_actions"):
            actions = document.get(key, [])
            branches.append(
                tuple(
                    self.action(f"{key}[{index}]", action, shape, triggers)
                    for index, action in enumerate(actions)
                )
            )
        if not document.get("actions") and not document.get("else_actions"):
            self.report("actions", "required", "Give at least one action.")
        if self.problems:
            return None
        actions, else_actions = branches
        return AutomationRule(
            **common,
            triggers=triggers,
            condition=condition,
            actions=tuple(a for a in actions if a is not None),
            else_actions=tuple(a for a in else_actions if a is not None),
        )

    def action(
        self,
        path: str,
        action: Mapping[str, Any],
        shape: EntityShape,
        triggers: frozenset[str],
    ) -> Action | None:
        kind = action["type"]
        for key in action:
            if key not in ACTION_KEYS[kind]:
                self.report(
                    f"{path}.{key}", "not_applicable", f"{kind} takes no {key!r}."
                )
        if "delete" in triggers and kind != "update_related":
            message = (
                f"{kind} needs the record, which a delete has removed; use "
                "update_related, or trigger on create or update."
            )
            self.report(f"{path}.type", "not_applicable", message)
            return None
        allow_prior = "update" in triggers
        if kind == "set_field":
            return self.set_field(path, action, shape, allow_prior)
        if kind == "create_record":
            return self.create_record(path, action, shape, allow_prior)
        return self.update_related(path, action, shape, allow_prior)

    def set_field(
        self, path: str, action: Mapping[str, Any], shape: EntityShape, prior: bool
    ) -> Action | None:
        has_value, has_expression = "value" in action, "expression" in action
        if has_value == has_expression:
            message = "set_field takes either 'value' or 'expression'."
            self.report(path, "invalid_arguments", message)
            return None
        field = self.target_field(f"{path}.field", shape, action["field"])
        if field is None:
            return None
        key = "value" if has_value else "expression"
        # A value is taken as it is written; an expression is evaluated.
        source = {"preserve": action["value"]} if has_value else action["expression"]
        expression = self.expression(
            f"{path}.{key}",
            source,
            shape,
            allow_prior=prior,
            fill=(field, shape),
        )
        if expression is None:
            return None
        return Action("set_field", ((field, expression),))

    def create_record(
        self, path: str, action: Mapping[str, Any], shape: EntityShape, prior: bool
    ) -> Action | None:
        target = self.shapes.get(action["entity"])
        if target is None:
            message = f"There is no entity named {action['entity']!r}."
            self.report(f"{path}.entity", "unknown_entity", message)
            return None
        lookup = action.get("lookup")
        pointing = [name for name, to in target.targets.items() if to == shape.name]
        if lookup is None and len(pointing) == 1:
            lookup = pointing[0]
        if lookup not in pointing:
            message = (
                f"Name the lookup field of {target.name} that points at {shape.name}"
                + (
                    f": one of {', '.join(sorted(pointing))}."
                    if pointing
                    else "; it has none."
                )
            )
            self.report(f"{path}.lookup", "unknown_relation", message)
            return None
        if lookup in action["values"]:
            # The action points the new record at the triggering one; a value
            # written for that lookup would be dropped without a word.
            message = (
                f"create_record points {lookup!r} at the triggering {shape.name}; "
                "leave it out of values."
            )
            self.report(f"{path}.values.{lookup}", "not_applicable", message)
            return None
        values = self.values(f"{path}.values", action["values"], shape, target, prior)
        if values is None:
            return None
        return Action("create_record", values, entity=target.name, lookup=lookup)

    def update_related(
        self, path: str, action: Mapping[str, Any], shape: EntityShape, prior: bool
    ) -> Action | None:
        lookup = action["lookup"]
        target = self.shapes.get(shape.targets.get(lookup, ""))
        if target is None:
            message = f"{shape.name} has no lookup field {lookup!r}."
            self.report(f"{path}.lookup", "unknown_relation", message)
            return None
        values = self.values(f"{path}.values", action["values"], shape, target, prior)
        if values is None:
            return None
        return Action("update_related", values, entity=target.name, lookup=lookup)

    def values(
        self,
        path: str,
        values: Mapping[str, Any],
        source: EntityShape,
        target: EntityShape,
        prior: bool,
    ) -> tuple[tuple[str, Expression], ...] | None:
        """Expressions on the triggering record that fill fields of ``target``."""
        compiled = []
        before = len(self.problems)
        for field, expression in values.items():
            name = self.target_field(f"{path}.{field}", target, field)
            if name is None:
                continue
            found = self.expression(
                f"{path}.{field}",
                expression,
                source,
                allow_prior=prior,
                fill=(name, target),
            )
            if found is not None:
                compiled.append((name, found))
        if len(self.problems) > before:
            return None
        return tuple(compiled)


_KIND_WORDS = {
    "text": "text",
    "number": "a number",
    "boolean": "a boolean",
    "date": "a date",
    "datetime": "a datetime",
    "list": "a list",
    "record": "a related record",
    "object": "an object",
    "blank": "blank text",
}


#: System values that a formula cannot follow: the record's own id (given when it
#: is stored), and the version and updated_at of any record (they move with every
#: save, which no formula is recomputed for).
_OWN_UNFOLLOWED = frozenset({"id", "version", "updated_at"})
_RELATED_UNFOLLOWED = frozenset({"version", "updated_at"})


def _moves_unseen(name: str) -> bool:
    head, _, rest = name.partition(".")
    return rest in _RELATED_UNFOLLOWED if rest else head in _OWN_UNFOLLOWED


def _unfit_reason(field_type: str, source: Any) -> str:
    """What follows "cannot hold" in the problem of a value that does not fit:
    for text written into a date or datetime field, which ISO text would fill,
    why that text is not such a date."""
    if isinstance(source, dict) and source.keys() == {"preserve"}:
        source = source["preserve"]
    if field_type not in ("date", "datetime") or not isinstance(source, str):
        return "."
    if _dates.parse(source.strip()) is not None:
        return f"; {source!r} has a time of day, which a date field leaves out."
    written = "YYYY-MM-DD" + (" or YYYY-MM-DDTHH:MM:SSZ" * (field_type == "datetime"))
    return f"; {source!r} is not a date (write {written})."


def _date_text_fills(field_type: str, source: Any) -> bool:
    """Whether ``source`` is ISO text that a date or datetime field takes: a date
    for either, a date and time for a datetime field."""
    if isinstance(source, dict) and source.keys() == {"preserve"}:
        # A set_field value, taken as written.
        source = source["preserve"]
    if field_type not in ("date", "datetime") or not isinstance(source, str):
        return False
    # Spaces around a date are no part of it, as the save reads it.
    moment = _dates.parse(source.strip())
    if moment is None:
        return False
    return field_type == "datetime" or not isinstance(moment, dt.datetime)
