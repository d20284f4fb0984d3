"""Rule documents: their JSON Schema, their checks against the entities, their place
in the catalog.

A rule document is checked in three steps, and every problem names the rule and the
JSON path inside it (``loss_reason_required.condition.and[1].>[0]``): the JSON
Schema; the rule alone against the entities it touches (fields, relations, types of
conditions and formulas); the rule next to every other rule (one formula per field,
no formulas that need each other's result). Entity changes are checked the other way
round: a field that a rule uses cannot be removed or renamed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

from ..errors import Problem
from ..rules_engine import (
    FIELD_STATES,
    ConditionProblem,
    EntityRules,
    EntityShape,
    Rule,
    build_rule_set,
    check_rule_set,
    compile_rule,
    join_path,
    rule_uses,
    written_values,
)
from ._fields import FieldValueError, convert, date_text_as_moment, rounded_to_scale
from ._validate import json_path, load_schema, schema_message, text_problems

if TYPE_CHECKING:
    from ._catalog import EntityDef

log = logging.getLogger(__name__)

RULE = "rule"
#: The field types of the system columns, as conditions read them.
SYSTEM_TYPES = {
    "id": "integer",
    "created_at": "datetime",
    "updated_at": "datetime",
    "created_by": "integer",
    "owner_id": "integer",
    "version": "integer",
}


@dataclass(frozen=True)
class StoredRule:
    """A rule document as the metadata store keeps it."""

    document: dict[str, Any]
    #: The metadata revision that last changed this document (0 until stored).
    revision: int = 0

    @property
    def name(self) -> str:
        return str(self.document["name"])


@cache
def rule_schema() -> dict[str, Any]:
    """Return the JSON Schema (Draft 2020-12) of rule documents."""
    return load_schema("rule")


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(rule_schema())


def is_rule_document(document: Any) -> bool:
    """Whether a document read from a file or a pack is a rule (``"kind": "rule"``)."""
    return isinstance(document, dict) and document.get("kind") == RULE


def entity_shapes(entities: Iterable[EntityDef]) -> dict[str, EntityShape]:
    """What rules may know of each live entity."""
    shapes = {}
    for entity in entities:
        if entity.removed:
            continue
        fields = {name: spec["type"] for name, spec in entity.fields.items()}
        shapes[entity.name] = EntityShape(
            name=entity.name,
            fields={**SYSTEM_TYPES, **fields},
            targets={spec["name"]: spec["target"] for spec in entity.lookups()},
            # Rules fill fields; the owner and the other system columns are the
            # platform's.
            writable=frozenset(n for n in entity.writable if n in entity.fields),
            defaults=frozenset(name for name, _ in entity.defaults),
            required=frozenset(
                n for n, spec in entity.fields.items() if spec.get("required")
            ),
        )
    return shapes


def rule_problem_path(name: Any, path: str, *, kind: str = "rule") -> str:
    """``loss_reason_required.condition.and[1]``: the document's name, then the
    path (the kind stands for a name that is missing)."""
    label = name if isinstance(name, str) and name else kind
    return f"{label}.{path}" if path and path != "$" else label


def check_rule_document(document: Any) -> list[Problem]:
    """The problems of a rule document against its JSON Schema only."""
    return named_schema_problems(_validator(), document, kind="rule")


def named_schema_problems(
    validator: Draft202012Validator, document: Any, *, kind: str
) -> list[Problem]:
    """Schema and text problems of a named document (a rule, a role), each path
    starting with the document's name."""
    name = document.get("name") if isinstance(document, dict) else None
    problems = [
        Problem(
            rule_problem_path(name, json_path(error.absolute_path), kind=kind),
            "schema",
            schema_message(error),
        )
        for error in sorted(validator.iter_errors(document), key=str)
    ]
    problems += [
        Problem(
            rule_problem_path(name, found.field or "", kind=kind),
            found.code,
            found.message,
        )
        for found in text_problems(document)
    ]
    return problems


def compile_rules(
    documents: Mapping[str, dict[str, Any]],
    entities: Mapping[str, EntityDef],
    *,
    new: Sequence[str] = (),
    lenient: bool = False,
) -> tuple[dict[str, Rule], list[Problem]]:
    """Check rule documents (already valid for the schema) together, and compile them.

    :param documents: every rule there will be, by name.
    :param entities: the entities as they will be.
    :param new: the rules being added or changed, blamed first for a clash.
    :param lenient: read them as rules already stored are (see
        :func:`compile_rule`), without judging the values written in them.
    :returns: the compiled rules by name, and every problem; a problem's field
        starts with the name of the rule at fault.
    """
    shapes = entity_shapes(entities.values())
    compiled: dict[str, Rule] = {}
    problems: list[Problem] = []
    for name, document in documents.items():
        rule, found = compile_rule(document, shapes, lenient=lenient)
        problems += [_problem(name, problem) for problem in found]
        if rule is not None:
            if not lenient:
                problems += _literal_values(document, entities)
                problems += _labels_compared(document, entities)
            compiled[name] = rule
    for name, problem in check_rule_set(list(compiled.values()), shapes, new=new):
        problems.append(_problem(name, problem))
    return compiled, problems


def _problem(name: str, problem: ConditionProblem) -> Problem:
    return Problem(rule_problem_path(name, problem.path), problem.code, problem.message)


def _literal_values(
    document: Mapping[str, Any], entities: Mapping[str, EntityDef]
) -> list[Problem]:
    """Values written into a rule that it gives as they are must fit their field
    now: a ``set_field`` value, the literal values of ``create_record`` and
    ``update_related`` (a value that is no operation), and text or a list that a
    default, a formula or an action's expression gives, alone or as one of the
    operands it may give (``{"if": [..., "won", "done"]}`` into a picklist whose
    choices lack ``done``)."""
    entity = entities.get(str(document.get("entity")))
    if entity is None:
        return []
    written = []
    if document.get("type") in ("default", "formula"):
        spec = entity.fields.get(str(document.get("field")))
        if spec is not None:
            written = [
                (spec, value, path)
                for value, path in _given(document.get("expression"), "expression")
            ]
    elif document.get("type") == "automation":
        for key in ("actions", "else_actions"):
            for index, action in enumerate(document.get(key, [])):
                written += [
                    (spec, value, f"{key}[{index}].{path}")
                    for spec, value, path in _written_literals(entity, entities, action)
                ]
    problems = []
    for spec, value, path in written:
        try:
            # Judged as the save will take it: a number rounded to the field's
            # scale, ISO date text for a datetime field at midnight UTC.
            convert(spec, date_text_as_moment(spec, rounded_to_scale(spec, value)))
        except FieldValueError as error:
            message = f"{value!r} does not fit {spec['name']}: {error.message}"
            found = rule_problem_path(document["name"], path)
            problems.append(Problem(found, "invalid_value", message))
    problems += _rollup_start(document, entity)
    return problems + _blanks_for_required(document, entity, entities)


def _rollup_start(document: Mapping[str, Any], entity: EntityDef) -> list[Problem]:
    """A count or sum roll-up into a field whose limits refuse 0: a new record
    has no children yet and starts there, so no record could be created."""
    if document.get("type") != "rollup" or document.get("function") not in (
        "count",
        "sum",
    ):
        return []
    spec = entity.fields.get(str(document.get("field")))
    if spec is None:
        return []
    try:
        convert(spec, 0)
    except FieldValueError as error:
        relation = document.get("relation")
        child = relation.get("entity") if isinstance(relation, dict) else None
        message = (
            f"Over no {child} records the {document['function']} is 0, where a new "
            f"{entity.name} starts, and {spec['name']!r} refuses it: "
            f"{error.message} Let the field hold 0."
        )
        found = rule_problem_path(document["name"], "field")
        return [Problem(found, "invalid_value", message)]
    return []


#: The parts of a rule document that read a record, and the comparisons in them
#: whose text may stand for a picklist's choice.
_READERS = ("condition", "expression", "visible_if", "required_if", "readonly_if")
_EQUALITIES = frozenset({"==", "!=", "===", "!=="})
#: Operations whose later operands are evaluated for each item of a list.
_ITEM_SCOPES = frozenset({"map", "filter", "all", "some", "none", "reduce"})


def _labels_compared(
    document: Mapping[str, Any], entities: Mapping[str, EntityDef]
) -> list[Problem]:
    """:func:`labels_compared` in the parts of a rule document that read a
    record, each problem at its path in the rule."""
    name = document.get("entity")
    if document.get("type") == "rollup":
        # Its condition reads the children.
        relation = document.get("relation")
        name = relation.get("entity") if isinstance(relation, dict) else None
    entity = entities.get(str(name))
    if entity is None:
        return []
    read = [(document.get(key), key) for key in _READERS]
    if document.get("type") == "automation":
        read += _action_expressions(document)
    return [
        Problem(
            rule_problem_path(document["name"], problem.field or ""),
            problem.code,
            problem.message,
        )
        for node, at in read
        for problem in labels_compared(node, entity, entities, path=at)
    ]


def labels_compared(
    condition: Any,
    entity: EntityDef,
    entities: Mapping[str, EntityDef],
    *,
    path: str = "",
) -> list[Problem]:
    """Text that ``condition`` compares with a picklist of ``entity`` (or of a
    record it reaches through lookups) that is no value of its choices but a
    choice's label, or a value in other letter case (``"Closed won"`` or
    ``"Won"`` for the choice ``won``): a condition compares values, so such a
    comparison never holds, and the value was meant. Other text (a value no
    longer offered, which old records may hold) is left alone.

    :param path: where ``condition`` stands; each problem's field is the JSON
        path of the text within it.
    """
    problems = []
    for text, found, spec in _compared_texts(condition, path, entity, entities):
        meant = _meant_choice(spec, text)
        if meant is None:
            continue
        message = (
            f"{text!r} is not a value of {spec['name']!r} but stands for its "
            f"choice {meant!r}: a condition compares a picklist's values, "
            f"never its labels, so write {meant!r}."
        )
        problems.append(Problem(found, "choice_label", message))
    return problems


def _action_expressions(document: Mapping[str, Any]) -> list[tuple[Any, str]]:
    """The expressions an automation's actions compute their values with, each
    with its path: they read the record the automation runs on, as its
    condition does."""
    found: list[tuple[Any, str]] = []
    for key in ("actions", "else_actions"):
        actions = document.get(key)
        for index, action in enumerate(actions if isinstance(actions, list) else []):
            if not isinstance(action, dict):
                continue
            at = f"{key}[{index}]"
            if "expression" in action:
                found.append((action["expression"], f"{at}.expression"))
            values = action.get("values")
            if isinstance(values, dict):
                found += [
                    (value, f"{at}.values.{name}") for name, value in values.items()
                ]
    return found


def _compared_texts(
    node: Any, path: str, entity: EntityDef, entities: Mapping[str, EntityDef]
) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """The texts that ``node`` compares with a picklist field it reads (by
    ``==`` and the like, or ``in`` a list written out), with their paths and
    the field's spec."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _compared_texts(item, f"{path}[{index}]", entity, entities)
        return
    if not isinstance(node, dict) or len(node) != 1:
        return
    ((op, operand),) = node.items()
    at = join_path(path, str(op))
    items = operand if isinstance(operand, list) else [operand]
    if op in _EQUALITIES and len(items) == 2:
        for one, other in ((0, 1), (1, 0)):
            spec = _picklist_read(items[one], entity, entities)
            if spec is not None and isinstance(items[other], str):
                yield items[other], f"{at}[{other}]", spec
    if op == "in" and len(items) == 2 and isinstance(items[1], list):
        spec = _picklist_read(items[0], entity, entities)
        if spec is not None:
            for index, item in enumerate(items[1]):
                if isinstance(item, str):
                    yield item, f"{at}[1][{index}]", spec
    if not isinstance(operand, list):
        # An operand written alone (``{"!": {"==": ...}}``) is named where it
        # is written, as the static checks name it, not as item 0 of a list.
        yield from _compared_texts(operand, at, entity, entities)
        return
    if op in _ITEM_SCOPES:
        # The expressions after the first read each item of the list, not the
        # record: a ``var`` there names a key of the item.
        items = items[:1]
    for index, item in enumerate(items):
        yield from _compared_texts(item, f"{at}[{index}]", entity, entities)


def _picklist_read(
    node: Any, entity: EntityDef, entities: Mapping[str, EntityDef]
) -> dict[str, Any] | None:
    """The spec of the picklist field that ``node`` reads with ``var`` (of the
    record, before a change, or through lookups), or with ``prior`` or ``val``
    (a field of the record by its name), if it reads one."""
    if not isinstance(node, dict) or len(node) != 1:
        return None
    ((operator, name),) = node.items()
    if operator not in ("var", "prior", "val"):
        return None
    if operator != "prior" and isinstance(name, list) and name:
        if operator == "val" and len(name) != 1:
            # A path of several steps, or one out of an item of a list.
            return None
        name = name[0]
    if not isinstance(name, str):
        return None
    if operator != "var":
        spec = entity.fields.get(name)
        return spec if spec is not None and spec["type"] == "picklist" else None
    parts = name.removeprefix("$prior.").split(".")
    current: EntityDef | None = entity
    for part in parts[:-1]:
        spec = current.fields.get(part) if current is not None else None
        if spec is None or spec["type"] != "lookup":
            return None
        current = entities.get(str(spec["target"]))
    spec = current.fields.get(parts[-1]) if current is not None else None
    return spec if spec is not None and spec["type"] == "picklist" else None


def _meant_choice(spec: Mapping[str, Any], text: str) -> str | None:
    """The value of the choice that ``text`` names by its label or in other
    letter case, when ``text`` is no value of ``spec``'s choices."""
    options = [o for o in spec.get("options", []) if isinstance(o, dict)]
    values = [str(option.get("value")) for option in options]
    if text in values:
        return None
    folded = text.strip().casefold()
    for option, value in zip(options, values, strict=True):
        label = str(option.get("label", ""))
        if folded in (value.casefold(), label.casefold()):
            return value
    return None


def _blanks_for_required(
    document: Mapping[str, Any], entity: EntityDef, entities: Mapping[str, EntityDef]
) -> list[Problem]:
    """Blank values (null, text of spaces, an empty list) that a rule writes, as
    the whole of what it gives, into a required field: the save refuses such a
    field left blank, so the rule could only fail every save that runs it. One
    operand of several (a branch of ``if``) may give null on purpose."""
    whole: list[tuple[dict[str, Any] | None, Any, str]] = []
    if document.get("type") in ("default", "formula"):
        field = entity.fields.get(str(document.get("field")))
        whole.append((field, document.get("expression"), "expression"))
    elif document.get("type") == "automation":
        for key in ("actions", "else_actions"):
            for index, action in enumerate(document.get(key, [])):
                whole += [
                    (spec, value, f"{key}[{index}].{path}")
                    for spec, value, path in _whole_values(entity, entities, action)
                ]
    problems = []
    for spec, value, path in whole:
        if spec is None or not spec.get("required") or not _blank(spec, value):
            continue
        written = "null" if value is None else json.dumps(value)
        message = (
            f"{written} leaves the required field {spec['name']!r} blank, which "
            "every save that runs this rule would refuse; give it a value."
        )
        found = rule_problem_path(document["name"], path)
        problems.append(Problem(found, "invalid_value", message))
    return problems


def _whole_values(
    entity: EntityDef, entities: Mapping[str, EntityDef], action: Mapping[str, Any]
) -> list[tuple[dict[str, Any] | None, Any, str]]:
    """What an action writes into each field, as a whole, with its path."""
    kind = action.get("type")
    if kind == "set_field":
        spec = entity.fields.get(str(action.get("field")))
        key = "value" if "value" in action else "expression"
        return [(spec, action.get(key), key)]
    target, values = _action_values(entity, entities, action)
    if target is None:
        return []
    return [
        (target.fields.get(name), value, f"values.{name}")
        for name, value in values.items()
    ]


def _action_values(
    entity: EntityDef, entities: Mapping[str, EntityDef], action: Mapping[str, Any]
) -> tuple[EntityDef | None, dict[str, Any]]:
    """The entity that a ``create_record`` or ``update_related`` action writes
    into and its ``values``; ``None`` for another action, or one whose entity or
    values are not there to be read."""
    kind = action.get("type")
    if kind == "create_record":
        target = entities.get(str(action.get("entity")))
    elif kind == "update_related":
        lookup = entity.fields.get(str(action.get("lookup")), {})
        target = entities.get(str(lookup.get("target")))
    else:
        return None, {}
    values = action.get("values")
    if target is None or not isinstance(values, dict):
        return None, {}
    return target, values


def _blank(spec: dict[str, Any], value: Any) -> bool:
    """Whether a value written in a rule is no operation and the save reads it
    as blank."""
    if value is None:
        return True
    if not _literal(value):
        return False
    try:
        return convert(spec, value) is None
    except FieldValueError:
        # Refused as it is (see _literal_values).
        return False


def _written_literals(
    entity: EntityDef, entities: Mapping[str, EntityDef], action: Mapping[str, Any]
) -> list[tuple[dict[str, Any], Any, str]]:
    """The values an action writes as they are written, each with the field it
    fills and its path within the action."""
    kind = action.get("type")
    if kind == "set_field":
        spec = entity.fields.get(action.get("field", ""))
        if spec is None:
            return []
        if "value" not in action:
            given = _given(action.get("expression"), "expression")
            return [(spec, value, path) for value, path in given]
        return [(spec, action["value"], "value")]
    target, values = _action_values(entity, entities, action)
    if target is None:
        return []
    written = []
    for name, value in values.items():
        if name not in target.fields:
            continue
        path = f"values.{name}"
        if _literal(value):
            written.append((target.fields[name], value, path))
            continue
        written += [(target.fields[name], *found) for found in _given(value, path)]
    return written


def _given(expression: Any, path: str) -> list[tuple[Any, str]]:
    """Text, numbers, true or false and lists written in an expression that it
    gives as they are (a number is judged as the save takes it, rounded to its
    field's scale)."""
    return [
        (value, where)
        for value, where in written_values(expression, path)
        if _literal(value)
    ]


def _literal(value: Any) -> bool:
    """Whether an expression is a value as written: no operation anywhere in it,
    and not null (which clears the field)."""
    if isinstance(value, list):
        return all(_literal(item) for item in value)
    return value is not None and not isinstance(value, dict)


@dataclass(frozen=True)
class RuleCatalog:
    """Every rule at one revision: the documents, and the compiled active ones."""

    documents: Mapping[str, StoredRule]
    by_entity: Mapping[str, EntityRules]
    compiled: Mapping[str, Rule]

    def for_entity(self, entity: str) -> EntityRules:
        """The active rules of ``entity`` (empty when it has none)."""
        found = self.by_entity.get(entity)
        return found if found is not None else EntityRules(entity)

    def form_states(self, entity: str) -> dict[str, dict[str, Any]]:
        """For forms: each field's ``visible_if``, ``required_if`` and
        ``readonly_if`` conditions, as written in its active field_state rule."""
        states = {}
        for field, rule in self.for_entity(entity).field_states.items():
            states[field] = {
                key: rule.document[key] for key in FIELD_STATES if key in rule.document
            }
        return states

    def documents_of(self, entity: str | None = None) -> list[StoredRule]:
        """Rule documents by name, all of them or those of one entity."""
        return [
            stored
            for _, stored in sorted(self.documents.items())
            if entity is None or stored.document.get("entity") == entity
        ]

    def users_of(
        self, entities: Mapping[str, EntityDef]
    ) -> dict[tuple[str, str], list[str]]:
        """For each ``(entity, field)`` some rule names, the names of those rules."""
        shapes = entity_shapes(entities.values())
        users: dict[tuple[str, str], list[str]] = {}
        for name, rule in sorted(self.compiled.items()):
            for node in rule_uses(rule, shapes):
                users.setdefault(node, []).append(name)
        return users


EMPTY_RULES = RuleCatalog({}, {}, {})


def build_rule_catalog(
    stored: Iterable[StoredRule], entities: Mapping[str, EntityDef]
) -> RuleCatalog:
    """Compile the stored rules for a catalog.

    The store refuses rules that do not fit the entities, so every stored rule
    should compile; one that does not (a database edited by hand) is left out and
    logged, rather than keeping the whole system from starting.
    """
    documents = {item.name: item for item in stored}
    if not documents:
        return EMPTY_RULES
    # Stored rules are read leniently: one saved before a check that would now
    # refuse it goes on working where it can, as it did.
    compiled, problems = compile_rules(
        {name: item.document for name, item in documents.items()},
        entities,
        lenient=True,
    )
    for problem in problems:
        log.error("rule left out of the catalog: %s", problem)
    broken = {str(problem.field).split(".")[0] for problem in problems}
    usable = [rule for name, rule in compiled.items() if name not in broken]
    shapes = entity_shapes(entities.values())
    return RuleCatalog(
        documents=documents,
        by_entity=build_rule_set(usable, shapes),
        compiled={rule.name: rule for rule in usable},
    )


def fields_in_use(
    rules: RuleCatalog,
    before: Mapping[str, EntityDef],
    after: Mapping[str, EntityDef],
    *,
    keep: Sequence[str] = (),
) -> list[Problem]:
    """Refuse to remove or rename a field, or remove an entity, that rules use.

    :param keep: rules that are being replaced in the same change; their new
        version is checked on its own.
    """
    users = rules.users_of(before)
    problems = []
    for name, old in before.items():
        new = after.get(name)
        if old.removed:
            continue
        if new is None or new.removed:
            named = {
                rule
                for (entity, _), found in users.items()
                if entity == name
                for rule in found
            }
            named |= {r.name for r in rules.compiled.values() if r.entity == name}
            using = sorted(named - set(keep))
            if using:
                message = (
                    f"Rules use the entity {name!r}: {', '.join(using)}. Change or "
                    "delete those rules first."
                )
                problems.append(Problem(name, "used_by_rules", message))
            continue
        for field, what in _gone_fields(old, new).items():
            using = [r for r in users.get((name, field), []) if r not in keep]
            if using:
                message = (
                    f"The field is {what}, but rules use it: {', '.join(using)}. "
                    "Change or delete those rules first."
                )
                problems.append(Problem(f"{name}.{field}", "used_by_rules", message))
    return problems


def _gone_fields(old: EntityDef, new: EntityDef) -> dict[str, str]:
    new_names = {spec.get("id"): spec["name"] for spec in new.fields.values()}
    gone = {}
    for field, spec in old.fields.items():
        renamed = new_names.get(spec.get("id"))
        if renamed is None:
            gone[field] = "removed"
        elif renamed != field:
            gone[field] = f"renamed to {renamed!r}"
    return gone
