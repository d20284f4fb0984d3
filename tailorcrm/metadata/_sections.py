"""Section visibility: the ``visible_if`` of a layout section, checked and compiled.

A section of a form layout may carry ``visible_if``, a condition of the rules
language over the entity's fields (one lookup deep, like every rule). While it is
false, the section and its fields are hidden, and its fields count as invisible
wherever visibility matters: the form, the record page, and the record service,
which applies ``required_if`` only to visible fields. As for field state, a
condition that gives null shows the section.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..rules_engine import (
    ConditionError,
    ConditionProblem,
    EntityShape,
    Expression,
    analyze_condition,
    compile_condition,
    field_names,
    rename_fields,
)
from ._rules import entity_shapes

if TYPE_CHECKING:
    from ._catalog import Catalog, EntityDef

#: A section's place in a layout: (tab index, section index).
SectionKey = tuple[int, int]


@dataclass(frozen=True)
class SectionConditions:
    """The compiled ``visible_if`` of an entity's form sections."""

    #: Each section that has a condition, by its place in the effective layout.
    conditions: Mapping[SectionKey, Expression]
    #: Each field placed in such a section, with that section's place.
    placed: Mapping[str, SectionKey]

    def of_field(self, name: str) -> Expression | None:
        """The condition of the section that holds field ``name``, if it has one."""
        key = self.placed.get(name)
        return None if key is None else self.conditions[key]

    @property
    def reads(self) -> frozenset[str]:
        """Every name the conditions read (``account.industry`` for a related one)."""
        found: set[str] = set()
        for expression in self.conditions.values():
            found |= expression.reads
        return frozenset(found)


NO_SECTION_CONDITIONS = SectionConditions({}, {})


class ShapeCache:
    """The entities as conditions see them, worked out once for several checks."""

    def __init__(self, entities: Iterable[EntityDef]) -> None:
        self.shapes: dict[str, EntityShape] = entity_shapes(entities)

    def analyze(self, condition: Any, entity: str) -> Any:
        shape = self.shapes.get(entity)
        if shape is None:
            return None
        return analyze_condition(
            condition,
            fields=shape.fields,
            relations=shape.relations(self.shapes),
            allow_prior=False,
        )

    def problems(self, condition: Any, entity: str) -> list[ConditionProblem]:
        analysis = self.analyze(condition, entity)
        if analysis is None:
            message = f"There is no entity named {entity!r}."
            return [ConditionProblem("", "unknown_entity", message)]
        found: list[ConditionProblem] = analysis.problems
        return found


def compile_sections(
    layout: Mapping[str, Any], entity: EntityDef, catalog: Catalog
) -> SectionConditions:
    """Compile the ``visible_if`` of each section of an effective layout.

    The effective layout keeps only conditions that fit the live entities, so
    each compiles; one that does not is left out, and its section shows.
    """
    cache = ShapeCache(catalog.entities.values())
    conditions: dict[SectionKey, Expression] = {}
    placed: dict[str, SectionKey] = {}
    for tab_index, tab in enumerate(layout["form"]["tabs"]):
        for index, section in enumerate(tab["sections"]):
            if "visible_if" not in section:
                continue
            source = section["visible_if"]
            analysis = cache.analyze(source, entity.name)
            if analysis is None or analysis.problems:
                continue
            try:
                compiled = compile_condition(source)
            except ConditionError:
                continue
            key = (tab_index, index)
            conditions[key] = Expression(
                source, compiled, analysis.reads, analysis.dynamic
            )
            for item in section["items"]:
                if "field" in item:
                    placed[item["field"]] = key
    if not conditions:
        return NO_SECTION_CONDITIONS
    return SectionConditions(conditions, placed)


def rewrite_section_condition(
    section: dict[str, Any], renames: Mapping[str, str | None]
) -> None:
    """Follow renamed and removed fields of the entity in a section's condition.

    Renamed fields are renamed; a condition that reads a removed field is dropped,
    so the section shows (and its fields' ``required_if`` applies again) rather
    than hiding on a condition that can no longer be told.
    """
    condition = section.get("visible_if")
    if condition is None or not renames:
        return
    if any(renames.get(name, name) is None for name in field_names(condition)):
        del section["visible_if"]
        return
    kept = {old: new for old, new in renames.items() if new is not None}
    section["visible_if"] = rename_fields(condition, kept)
