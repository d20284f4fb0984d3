"""Layouts: the generated one, the effective one, and rewrites after entity changes.

An entity without a stored layout gets :func:`generated_layout`. A stored layout
may leave its ``form`` or ``list`` out; :func:`effective_layout` fills what is
missing from the generated layout and drops anything that no longer names a live
field or entity, so a page never fails on a stale layout. :func:`rewrite_layout`
is what keeps stored layouts free of such names in the first place: the metadata
store runs it in the revision that renames or removes the fields.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ._layout_checks import LAYOUT, is_sortable
from ._sections import ShapeCache, rewrite_section_condition

if TYPE_CHECKING:
    from ._catalog import Catalog, EntityDef

DEFAULT_PAGE_SIZE = 25
#: Columns a generated list shows after its first one.
LIST_EXTRA_COLUMNS = 5
#: Columns a generated related list shows after its first one.
RELATED_EXTRA_COLUMNS = 3
GENERATED_TAB = "Details"

#: For each entity, old field name -> new name, or ``None`` when it was removed.
FieldChanges = Mapping[str, Mapping[str, str | None]]


def generated_layout(entity: EntityDef, catalog: Catalog) -> dict[str, Any]:
    """Return the layout an entity gets when it has none stored.

    One tab, ``Details``: a two-column section with every field but the long
    texts, in document order; a one-column section with the long texts; and a
    section per live lookup that points at ``entity``, holding its related list.
    The list shows the display field (or the first field) and up to five more
    fields, sorted by the display field when it can be, else newest first.
    """
    fields = list(entity.fields.values())
    short = [spec["name"] for spec in fields if spec["type"] != "textarea"]
    long = [spec for spec in fields if spec["type"] == "textarea"]
    sections = []
    if short:
        sections.append(_section(entity.label, 2, [{"field": n} for n in short]))
    if long:
        label = long[0]["label"] if len(long) == 1 else "Notes"
        sections.append(_section(label, 1, [{"field": s["name"]} for s in long]))
    for other, spec in _referrers(entity, catalog):
        item = generated_related_item(other, spec, entity)
        sections.append(_section(item["label"], 1, [item]))
    return {
        "kind": LAYOUT,
        "entity": entity.name,
        "form": {"tabs": [{"label": GENERATED_TAB, "sections": sections}]},
        "list": generated_list(entity),
    }


def generated_list(entity: EntityDef) -> dict[str, Any]:
    """Return the list part of :func:`generated_layout`."""
    first = _first_column(entity, exclude=None)
    columns = _columns(entity, first, exclude=None, extra=LIST_EXTRA_COLUMNS)
    display = entity.display_field
    sortable = display in entity.fields and is_sortable(entity, str(display))
    return {
        "columns": columns,
        "sort": [display] if sortable else ["-created_at"],
        "page_size": DEFAULT_PAGE_SIZE,
    }


def generated_related_item(
    other: EntityDef, spec: dict[str, Any], entity: EntityDef
) -> dict[str, Any]:
    """Return the generated related list along ``other``'s lookup ``spec``.

    It is labelled with ``other``'s plural label, followed by the lookup's label
    when that alone would be ambiguous (a lookup of an entity to itself, or one
    of several to ``entity``), and shows the display field (or the first field)
    and up to three more, never the lookup back to ``entity``.
    """
    back = spec["name"]
    first = _first_column(other, exclude=back)
    columns = _columns(other, first, exclude=back, extra=RELATED_EXTRA_COLUMNS)
    label = str(other.document.get("label_plural") or other.label)
    lookups = [s for s in other.lookups() if s["target"] == entity.name]
    if other.name == entity.name or len(lookups) > 1:
        label = f"{label} ({spec['label']})"
    return {
        "related": {"entity": other.name, "field": back},
        "label": label,
        "columns": columns or [back],
    }


def _section(label: str, columns: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "label": label,
        "columns": columns,
        "collapsible": False,
        "collapsed": False,
        "items": items,
    }


def _referrers(
    entity: EntityDef, catalog: Catalog
) -> list[tuple[EntityDef, dict[str, Any]]]:
    # The store hands entities over in no set order; sorting keeps the generated
    # layout the same on every backend and in every process.
    def position(pair: tuple[EntityDef, dict[str, Any]]) -> tuple[str, int]:
        other, spec = pair
        return other.name, list(other.fields).index(spec["name"])

    return sorted(catalog.referrers(entity.name), key=position)


def _first_column(entity: EntityDef, *, exclude: str | None) -> str | None:
    display = entity.display_field
    if display in entity.fields and display != exclude:
        return display
    names = [name for name in entity.fields if name != exclude]
    return names[0] if names else None


def _columns(
    entity: EntityDef, first: str | None, *, exclude: str | None, extra: int
) -> list[str]:
    if first is None:
        return []
    rest = [
        name
        for name, spec in entity.fields.items()
        if name not in (first, exclude) and spec["type"] != "textarea"
    ]
    return [first, *rest[:extra]]


# -- the effective layout ----------------------------------------------------------


OTHER_FIELDS = "Other fields"


def effective_layout(
    stored: Mapping[str, Any] | None, entity: EntityDef, catalog: Catalog
) -> dict[str, Any]:
    """Return the layout pages use: ``stored`` completed and cleaned.

    The result always has ``form`` (tabs, sections with ``label``, ``columns``,
    ``collapsible``, ``collapsed`` and ``items``, and ``visible_if`` where the
    stored section has one; related lists with ``label`` and ``columns``) and
    ``list`` (``columns``, ``sort``, ``page_size``). Names of fields or entities
    that are not live are dropped, a section left empty goes, a ``visible_if``
    that no longer fits the entities is dropped (the section shows), and a part
    left empty is generated. Required fields without a default, fields that
    a field_state rule's ``required_if`` governs and fields a validation rule
    names, that the stored form does not place, are shown in a last section,
    "Other fields".
    """
    generated = generated_layout(entity, catalog)
    if stored is None:
        return generated
    form = _live_form(stored.get("form"), entity, catalog)
    listing = _live_list(stored.get("list"), entity, generated["list"])
    return {
        "kind": LAYOUT,
        "entity": entity.name,
        "form": form if form is not None else generated["form"],
        "list": listing,
    }


def _live_form(form: Any, entity: EntityDef, catalog: Catalog) -> dict[str, Any] | None:
    if not isinstance(form, dict):
        return None
    placed: set[Any] = set()
    shapes: ShapeCache | None = None
    tabs = []
    for tab in form.get("tabs", ()):
        sections = []
        for section in tab["sections"]:
            items = [
                live
                for item in section["items"]
                if (live := _live_item(item, entity, catalog, placed)) is not None
            ]
            if not items:
                continue
            collapsible = bool(section.get("collapsible", False))
            live_section = {
                "label": section.get("label", ""),
                "columns": section.get("columns", 1),
                "collapsible": collapsible,
                "collapsed": collapsible and bool(section.get("collapsed")),
                "items": items,
            }
            if "visible_if" in section:
                shapes = shapes or ShapeCache(catalog.entities.values())
                if not shapes.problems(section["visible_if"], entity.name):
                    live_section["visible_if"] = section["visible_if"]
            sections.append(live_section)
        if sections:
            tabs.append({"label": tab["label"], "sections": sections})
    if not tabs:
        return None
    # A layout may leave fields out on purpose, but not a required field without
    # a default (one added after the layout was written, say), nor one that a
    # field_state rule can make required or a validation rule can refuse: nobody
    # could fill it in, and no form could be saved while the rule holds. Such
    # fields show in a last section until an admin places them, each with its
    # own visible_if and required_if.
    rules = catalog.rules.for_entity(entity.name)
    governed = {
        name
        for name, rule in rules.field_states.items()
        if rule.required_if is not None and name not in rules.computed
    } | {
        rule.field
        for rule in rules.validations
        if rule.field is not None and rule.field not in rules.computed
    }
    unplaced = [
        name
        for name, spec in entity.fields.items()
        if name not in placed
        and spec["type"] != "autonumber"
        and ((spec.get("required") and "default" not in spec) or name in governed)
    ]
    if unplaced:
        tabs[-1]["sections"].append(
            {
                "label": OTHER_FIELDS,
                "columns": 2,
                "collapsible": False,
                "collapsed": False,
                "items": [{"field": name} for name in unplaced],
            }
        )
    return {"tabs": tabs}


def _live_item(
    item: dict[str, Any], entity: EntityDef, catalog: Catalog, placed: set[Any]
) -> dict[str, Any] | None:
    if "field" in item:
        name = item["field"]
        if name not in entity.fields or name in placed:
            return None
        placed.add(name)
        return {"field": name}
    name, back = item["related"]["entity"], item["related"]["field"]
    other = catalog.entities.get(name)
    spec = other.fields.get(back) if other is not None and not other.removed else None
    if other is None or spec is None or (name, back) in placed:
        return None
    if spec["type"] != "lookup" or spec["target"] != entity.name:
        return None
    placed.add((name, back))
    generated = generated_related_item(other, spec, entity)
    columns = [column for column in item.get("columns", ()) if column in other.fields]
    return {
        "related": {"entity": name, "field": back},
        "label": item.get("label", generated["label"]),
        "columns": columns or generated["columns"],
    }


def _live_list(
    listing: Any, entity: EntityDef, generated: dict[str, Any]
) -> dict[str, Any]:
    if not isinstance(listing, dict):
        return generated
    columns = list(
        dict.fromkeys(c for c in listing.get("columns", ()) if c in entity.fields)
    )
    sort = generated["sort"]
    if "sort" in listing:
        kept = [key for key in listing["sort"] if is_sortable(entity, key)]
        # An empty sort was chosen (record order); one emptied by removals was not.
        if kept or not listing["sort"]:
            sort = kept
    return {
        "columns": columns or generated["columns"],
        "sort": sort,
        "page_size": listing.get("page_size", generated["page_size"]),
    }


# -- rewrites after entity changes -------------------------------------------------


def field_changes(before: EntityDef, after: Mapping[str, Any]) -> dict[str, str | None]:
    """Return what an entity change does to the names of its live fields.

    :param after: the entity document as it will be stored.
    :returns: old name -> new name for a renamed field, old name -> ``None`` for a
        removed one; fields that keep their name are left out.
    """
    names = {spec["id"]: spec["name"] for spec in after["fields"]}
    changes: dict[str, str | None] = {}
    for name, spec in before.fields.items():
        new = names.get(spec["id"])
        if new != name:
            changes[name] = new
    return changes


def rewrite_layout(
    document: Mapping[str, Any],
    changes: FieldChanges,
    *,
    removed_entities: Collection[str] = (),
) -> dict[str, Any]:
    """Return ``document`` with renamed fields renamed and removed ones dropped.

    Related lists of a removed entity, or along a removed lookup, are dropped. A
    section left with no items is dropped, then a tab left with no sections; a
    form or list column set left empty is dropped too, so that part is generated
    again. A section's ``visible_if`` follows renamed fields, and is dropped when
    it reads a removed one. The result still passes the layout checks.
    """
    result = copy.deepcopy(dict(document))
    own = changes.get(result["entity"], {})
    form = result.get("form")
    if form is not None:
        tabs = []
        for tab in form["tabs"]:
            tab["sections"] = [
                section
                for section in tab["sections"]
                if _rewrite_items(section, own, changes, removed_entities)
            ]
            for section in tab["sections"]:
                rewrite_section_condition(section, own)
            if tab["sections"]:
                tabs.append(tab)
        if tabs:
            form["tabs"] = tabs
        else:
            del result["form"]
    listing = result.get("list")
    if listing is not None:
        _rewrite_list(listing, own)
        if not listing:
            del result["list"]
    return result


def _rewrite_items(
    section: dict[str, Any],
    own: Mapping[str, str | None],
    changes: FieldChanges,
    removed_entities: Collection[str],
) -> bool:
    items = []
    for item in section["items"]:
        if "field" in item:
            name = own.get(item["field"], item["field"])
            if name is not None:
                items.append({**item, "field": name})
            continue
        related = item["related"]
        if related["entity"] in removed_entities:
            continue
        theirs = changes.get(related["entity"], {})
        back = theirs.get(related["field"], related["field"])
        if back is None:
            continue
        item["related"] = {**related, "field": back}
        if "columns" in item:
            item["columns"] = _renamed(item["columns"], theirs)
            if not item["columns"]:
                del item["columns"]
        items.append(item)
    section["items"] = items
    return bool(items)


def _rewrite_list(listing: dict[str, Any], own: Mapping[str, str | None]) -> None:
    if "columns" in listing:
        listing["columns"] = _renamed(listing["columns"], own)
        if not listing["columns"]:
            del listing["columns"]
    if listing.get("sort"):
        sort = []
        for key in listing["sort"]:
            descending = key.startswith("-")
            name = own.get(key.removeprefix("-"), key.removeprefix("-"))
            if name is not None:
                sort.append(f"-{name}" if descending else name)
        if sort:
            listing["sort"] = sort
        else:
            del listing["sort"]


def _renamed(names: list[str], changes: Mapping[str, str | None]) -> list[str]:
    result = []
    for name in names:
        new = changes.get(name, name)
        if new is not None:
            result.append(new)
    return result
