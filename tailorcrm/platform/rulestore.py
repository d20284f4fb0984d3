"""Rule documents in the metadata store.

Rules are stored like entities, in ``tc_meta_document`` with the kind ``rule``, and
change under the same metadata lock, in the same revision and with the same history.
The metadata store calls these functions inside its transaction: a change to
entities and rules is checked as a whole (rules against the entities as they will
be, entities against the rules that use them) and written as one revision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..errors import Conflict, InvalidMetadata, NotFound, Problem
from ..metadata import (
    RULE,
    Catalog,
    EntityDef,
    Plan,
    StoredRule,
    check_rule_document,
    compile_rules,
    fields_in_use,
    is_rule_document,
    rule_problem_path,
    same_document,
)
from ..rules_engine import FormulaRule, RollupRule, Rule
from .cascade import Cascade
from .db import meta_documents
from .records import SYSTEM_ACTOR, RecordService
from .revisions import check_expected, write_documents


@dataclass
class RuleChange:
    """The rule documents a change writes (``None``: deleted) and its plan steps."""

    after: dict[str, StoredRule | None] = field(default_factory=dict)
    plan: Plan = field(default_factory=Plan)


def split_documents(
    documents: Sequence[tuple[str, Any]],
) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Separate rule documents (``"kind": "rule"``) from entity documents."""
    entities = [(src, doc) for src, doc in documents if not is_rule_document(doc)]
    rules = [(src, doc) for src, doc in documents if is_rule_document(doc)]
    return entities, rules


def stored_rules(connection: sa.Connection) -> dict[str, StoredRule]:
    rows = connection.execute(
        sa.select(meta_documents).where(meta_documents.c.kind == RULE)
    )
    return {row.name: StoredRule(row.body, int(row.revision)) for row in rows}


def check_expected_rules(
    stored: Mapping[str, StoredRule], expected: Mapping[str, int]
) -> None:
    revisions = {name: rule.revision for name, rule in stored.items()}
    check_expected(revisions, expected, lambda name: f"Rule {name!r}")


def plan_rules(
    current: Catalog,
    target: Catalog,
    documents: Sequence[tuple[str, Any]],
    stored: Mapping[str, StoredRule],
    *,
    removing: Sequence[str] = (),
) -> RuleChange:
    """Check rule documents and the rules already stored against ``target``.

    ``target`` holds the entities as the change leaves them. New and changed rule
    documents must fit them; rules already stored must still fit them, so an
    entity change that would break a rule is refused with the rule's name.

    :raises InvalidMetadata: a rule document has problems; every one is listed,
        with the rule's name and the JSON path.
    :raises Conflict: the entity change removes or renames a field, or removes an
        entity, that stored rules use (or breaks them otherwise).
    """
    sources = _check_documents(documents, stored)
    incoming = {doc["name"]: doc for _, doc in documents}
    for name in removing:
        if name not in stored:
            raise NotFound(f"There is no rule named {name!r}.")

    changed_names = [*incoming, *removing]
    problems = fields_in_use(
        current.rules, current.entities, target.entities, keep=changed_names
    )
    if problems:
        raise Conflict(
            "Rules use what this change removes or renames; nothing was changed.",
            problems=problems,
        )

    every = {name: item.document for name, item in stored.items()}
    every.update(incoming)
    for name in removing:
        every.pop(name, None)
    found = _rule_problems(every, target.entities, new=list(incoming))
    _raise_for(_introduced(found, stored, incoming, current), sources)

    change = RuleChange()
    for name, document in incoming.items():
        old = stored.get(name)
        if old is not None and same_document(old.document, document):
            continue
        change.after[name] = StoredRule(document)
        kind = "add_rule" if old is None else "change_rule"
        change.plan.add(kind, str(document["entity"]), name)
    for name in removing:
        change.after[name] = None
        change.plan.add("remove_rule", str(stored[name].document["entity"]), name)
    return change


def _introduced(
    found: list[Problem],
    stored: Mapping[str, StoredRule],
    incoming: Mapping[str, Any],
    current: Catalog,
) -> list[Problem]:
    """The problems this change brings: all those of the rules it adds or changes,
    and of the rules already stored (sent again unchanged or not sent) those
    they did not have before it.

    A rule stored before a check that now refuses it (a branch its field cannot
    hold) stands in no other change's way, also when a pack or an export sends
    it again as it is; a change of its entity that breaks it further (drops a
    choice it writes) is still refused, and so is any change of the rule.
    """
    if not found:
        return found
    changed = {
        name
        for name, document in incoming.items()
        if name not in stored or not same_document(stored[name].document, document)
    }
    every = {name: item.document for name, item in stored.items()}
    before = _rule_problems(every, current.entities)
    earlier = {(problem.field, problem.code) for problem in before}
    return [
        problem
        for problem in found
        if _rule_of(problem) in changed or (problem.field, problem.code) not in earlier
    ]


def _rule_problems(
    every: Mapping[str, Any],
    entities: Mapping[str, EntityDef],
    *,
    new: Sequence[str] = (),
) -> list[Problem]:
    """Every problem of the rules ``every``, each judged in full, and those they
    cause together as the catalog will run them.

    A stored rule that no longer passes every check leaves the strict reading
    but stays in the catalog, read leniently: a formula for its field, a default
    or a circle through it must still be refused.
    """
    _, found = compile_rules(every, entities, new=new)
    if not any(_rule_of(problem) not in new for problem in found):
        return found
    _, together = compile_rules(every, entities, new=new, lenient=True)
    return found + [problem for problem in together if problem not in found]


def _rule_of(problem: Problem) -> str:
    return str(problem.field).split(".")[0]


def _check_documents(
    documents: Sequence[tuple[str, Any]], stored: Mapping[str, StoredRule]
) -> dict[str, str]:
    """Schema problems and names given twice; returns each rule's source.

    A document sent again as it is stored is not judged anew (see
    :func:`_introduced`): one saved before the schema refused what it holds (an
    update_related that sets nothing) comes back in every export.
    """
    problems: list[Problem] = []
    sources: dict[str, str] = {}
    for source, document in documents:
        prefix = f"{source}: " if source else ""
        name = document.get("name")
        old = stored.get(name) if isinstance(name, str) else None
        if old is None or not same_document(old.document, document):
            problems += [
                Problem(f"{prefix}{problem.field}", problem.code, problem.message)
                for problem in check_rule_document(document)
            ]
        if not isinstance(name, str):
            continue
        if name in sources:
            where = f" (also in {sources[name]})" if sources[name] else ""
            message = f"Rule {name!r} is defined more than once{where}."
            path = rule_problem_path(name, "name")
            problems.append(Problem(f"{prefix}{path}", "duplicate_name", message))
        sources.setdefault(name, source)
    if problems:
        raise InvalidMetadata(
            "The rule document was refused; nothing was changed.", problems=problems
        )
    return sources


def _raise_for(found: list[Problem], sources: Mapping[str, str]) -> None:
    """Problems of the documents sent are invalid metadata; of stored rules, a clash."""
    mine, theirs = [], []
    for problem in found:
        name = str(problem.field).split(".")[0]
        if name in sources:
            prefix = f"{sources[name]}: " if sources[name] else ""
            mine.append(
                Problem(f"{prefix}{problem.field}", problem.code, problem.message)
            )
        else:
            theirs.append(problem)
    if mine:
        raise InvalidMetadata(
            "The rule document was refused; nothing was changed.", problems=mine
        )
    if theirs:
        raise Conflict(
            "The change would break rules that are already stored; change or delete "
            "them first. Nothing was changed.",
            problems=theirs,
        )


def write_rules(
    connection: sa.Connection,
    before: Mapping[str, StoredRule],
    change: RuleChange,
    revision: int,
) -> None:
    """Write the rule documents of a change and their history, at ``revision``."""
    write_documents(
        connection,
        RULE,
        {name: rule.document for name, rule in before.items()},
        {
            name: None if rule is None else rule.document
            for name, rule in change.after.items()
        },
        revision,
    )


def refill_computed(
    connection: sa.Connection, catalog: Catalog, change: RuleChange
) -> None:
    """Give stored records the values of the formulas and roll-ups a change adds.

    :param catalog: the catalog as the change leaves it.
    """
    by_entity: dict[str, list[Rule]] = {}
    for name, stored in change.after.items():
        rule = catalog.rules.compiled.get(name) if stored is not None else None
        if isinstance(rule, (FormulaRule, RollupRule)) and rule.active:
            by_entity.setdefault(rule.entity, []).append(rule)
    if not by_entity:
        return
    service = RecordService(connection, catalog, SYSTEM_ACTOR, bypass_automation=True)
    cascade = Cascade(service)
    for entity, rules in by_entity.items():
        cascade.refill(catalog.entity(entity), rules)


def rules_using_entity(catalog: Catalog, name: str) -> list[Problem]:
    """Problems for removing entity ``name`` while rules use it."""
    after = {key: value for key, value in catalog.entities.items() if key != name}
    return fields_in_use(catalog.rules, catalog.entities, after)
