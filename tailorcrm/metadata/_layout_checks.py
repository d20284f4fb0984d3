"""Checks of layout documents and of the list settings that saved views share.

As with entity documents, the JSON Schema comes first, then the rules it cannot
say: every field a layout names exists on the right entity, a related list follows a
lookup that points back, nothing sits twice in the form, and a section's
``visible_if`` passes the rules engine's static checks against the entity's fields.
Every problem carries its JSON path; a document with any problem is refused whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator, ValidationError

from ..errors import Problem
from ..rules_engine import join_path
from ._fields import SORTABLE_TYPES
from ._rules import labels_compared
from ._sections import ShapeCache
from ._validate import json_path, load_schema, schema_message, text_problems

if TYPE_CHECKING:
    from ._catalog import Catalog, EntityDef

LAYOUT = "layout"
VIEW = "view"
MAX_TABS = 20
MAX_SECTIONS = 50
MAX_ITEMS = 500
#: System columns a list may be sorted by besides the entity's own fields.
SORTABLE_SYSTEM_COLUMNS = ("id", "created_at", "updated_at")


@cache
def layout_schema() -> dict[str, Any]:
    """Return the JSON Schema (Draft 2020-12) of layout documents."""
    return load_schema("layout")


@cache
def view_schema() -> dict[str, Any]:
    """Return the JSON Schema (Draft 2020-12) of saved views."""
    return load_schema("view")


@cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(layout_schema() if kind == LAYOUT else view_schema())


def schema_problems(kind: str, document: Any) -> list[Problem]:
    """Return the JSON Schema problems of a layout or view document."""
    problems = [
        Problem(json_path(error.absolute_path), "schema", _message(error))
        for error in sorted(_validator(kind).iter_errors(document), key=str)
    ]
    return problems + text_problems(document)


def _message(error: ValidationError) -> str:
    """The schema's message, or a plainer one for the mistakes people make most:
    a section collapsed without being collapsible, and a field named as a bare
    string among a section's items."""
    path = list(error.absolute_path)
    section = path[:-1] if path[-1:] == ["collapsible"] else path
    if "then" in error.schema_path and section[-2:-1] == ["sections"]:
        return (
            'A section that starts collapsed must be collapsible: add "collapsible": '
            'true, or leave "collapsed" out.'
        )
    if (
        error.validator == "type"
        and path[-2:-1] == ["items"]
        and "sections" in path
        and isinstance(error.instance, str)
    ):
        return (
            f"An item of a section is an object: write "
            f'{{"field": {json.dumps(error.instance)}}} for a field, or '
            '{"related": {"entity": …, "field": …}} for a related list.'
        )
    return schema_message(error)


def check_layout_document(
    document: Any, catalog: Catalog, *, labels: bool = True
) -> list[Problem]:
    """Return every problem of a layout document, each with its JSON path.

    :param catalog: the entities the layout must fit, as they will be once the
        change it belongs to is applied.
    :param labels: whether a choice's label compared with a picklist in a
        section's ``visible_if`` is a problem (``choice_label``); not for a
        layout sent again as it is stored, which was saved before that check.
    """
    problems = schema_problems(LAYOUT, document)
    if not isinstance(document, dict):
        return problems
    name = document.get("entity")
    entity = catalog.entities.get(name) if isinstance(name, str) else None
    if entity is None or entity.removed:
        if isinstance(name, str):
            message = f"There is no entity named {name!r}."
            problems.append(Problem("entity", "unknown_entity", message))
        return problems
    form = document.get("form")
    if isinstance(form, dict):
        checker = _FormChecker(entity, catalog, labels=labels)
        problems += checker.check(form.get("tabs"))
    listing = document.get("list")
    if isinstance(listing, dict):
        problems += check_list_settings(listing, entity, path="list")
    return problems


def check_list_settings(
    settings: dict[str, Any], entity: EntityDef, *, path: str = ""
) -> list[Problem]:
    """Return the problems of the ``columns`` and ``sort`` of a list or a view.

    :param path: the JSON path of ``settings`` in its document (``""`` at the top).
    """
    prefix = f"{path}." if path else ""
    problems = []
    seen: set[str] = set()
    for index, name in _strings(settings.get("columns")):
        where = f"{prefix}columns[{index}]"
        if name not in entity.fields:
            problems.append(_unknown_field(where, entity, name))
        elif name in seen:
            message = f"Column {name!r} appears more than once."
            problems.append(Problem(where, "duplicate_field", message))
        seen.add(name)
    seen.clear()
    for index, key in _strings(settings.get("sort")):
        where = f"{prefix}sort[{index}]"
        name = key.removeprefix("-")
        spec = entity.fields.get(name)
        if spec is None and name not in SORTABLE_SYSTEM_COLUMNS:
            problems.append(_unknown_field(where, entity, name))
        elif spec is not None and spec["type"] not in SORTABLE_TYPES:
            message = f"A list cannot be sorted by the {spec['type']} field {name!r}."
            problems.append(Problem(where, "not_sortable", message))
        elif name in seen:
            message = f"The list is already sorted by {name!r}."
            problems.append(Problem(where, "duplicate_field", message))
        seen.add(name)
    return problems


def is_sortable(entity: EntityDef, key: str) -> bool:
    """Whether ``key`` (``name`` or ``-name``) sorts a list of ``entity``."""
    name = key.removeprefix("-")
    spec = entity.fields.get(name)
    if spec is None:
        return name in SORTABLE_SYSTEM_COLUMNS
    return spec["type"] in SORTABLE_TYPES


class _FormChecker:
    """Walks the tabs of a form, collecting problems and what is already placed."""

    def __init__(self, entity: EntityDef, catalog: Catalog, *, labels: bool) -> None:
        self.entity = entity
        self.catalog = catalog
        self.labels = labels
        self.problems: list[Problem] = []
        self.fields: dict[str, str] = {}
        self.related: dict[tuple[str, str], str] = {}
        self.sections = 0
        self.items = 0
        self._shapes: ShapeCache | None = None

    def check(self, tabs: Any) -> list[Problem]:
        for tab_index, tab in _dicts(tabs):
            tab_path = f"form.tabs[{tab_index}]"
            for index, section in _dicts(tab.get("sections")):
                self.sections += 1
                path = f"{tab_path}.sections[{index}]"
                if "visible_if" in section:
                    self.condition(section["visible_if"], f"{path}.visible_if")
                for item_index, item in _dicts(section.get("items")):
                    self.items += 1
                    self.item(item, f"{path}.items[{item_index}]")
        if self.sections > MAX_SECTIONS:
            message = (
                f"A form holds at most {MAX_SECTIONS} sections; this has "
                f"{self.sections}."
            )
            self.problems.append(Problem("form", "too_many_sections", message))
        if self.items > MAX_ITEMS:
            message = f"A form holds at most {MAX_ITEMS} items; this has {self.items}."
            self.problems.append(Problem("form", "too_many_items", message))
        return self.problems

    def condition(self, condition: Any, path: str) -> None:
        """A section's ``visible_if``: the static checks of rule conditions."""
        if self._shapes is None:
            self._shapes = ShapeCache(self.catalog.entities.values())
        found = self._shapes.problems(condition, self.entity.name)
        for problem in found:
            where = join_path(path, problem.path)
            self.problems.append(Problem(where, problem.code, problem.message))
        if self.labels and not found:
            self.problems += labels_compared(
                condition, self.entity, self.catalog.entities, path=path
            )

    def item(self, item: dict[str, Any], path: str) -> None:
        name = item.get("field")
        if isinstance(name, str):
            if name not in self.entity.fields:
                self.problems.append(_unknown_field(f"{path}.field", self.entity, name))
            elif name in self.fields:
                message = f"Field {name!r} is already placed at {self.fields[name]}."
                self.problems.append(
                    Problem(f"{path}.field", "duplicate_field", message)
                )
            self.fields.setdefault(name, path)
            return
        related = item.get("related")
        if isinstance(related, dict):
            self.related_list(item, related, path)

    def related_list(
        self, item: dict[str, Any], related: dict[str, Any], path: str
    ) -> None:
        name, field = related.get("entity"), related.get("field")
        if not isinstance(name, str) or not isinstance(field, str):
            return
        other = self.catalog.entities.get(name)
        if other is None or other.removed:
            message = f"There is no entity named {name!r}."
            self.problems.append(
                Problem(f"{path}.related.entity", "unknown_entity", message)
            )
            return
        spec = other.fields.get(field)
        if spec is None:
            self.problems.append(_unknown_field(f"{path}.related.field", other, field))
        elif spec["type"] != "lookup" or spec["target"] != self.entity.name:
            message = (
                f"{name}.{field} is not a lookup to {self.entity.name!r}, so it "
                "cannot list related records here."
            )
            self.problems.append(
                Problem(f"{path}.related.field", "not_a_lookup", message)
            )
        elif (name, field) in self.related:
            message = (
                f"The related list of {name}.{field} is already placed at "
                f"{self.related[(name, field)]}."
            )
            self.problems.append(Problem(f"{path}.related", "duplicate_field", message))
        self.related.setdefault((name, field), path)
        for index, column in _strings(item.get("columns")):
            if column not in other.fields:
                self.problems.append(
                    _unknown_field(f"{path}.columns[{index}]", other, column)
                )


def _unknown_field(path: str, entity: EntityDef, name: str) -> Problem:
    message = f"{entity.label} has no field {name!r}."
    return Problem(path, "unknown_field", message)


def _dicts(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


def _strings(value: Any) -> Iterator[tuple[int, str]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield index, item
