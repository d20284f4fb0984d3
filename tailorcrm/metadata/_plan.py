"""Diffs of entity documents into plans of schema operations (DESIGN.md principle 4).

The planner is pure: it compares the stored entity with the new document and returns
the entity to store plus the operations the database needs. Checking a plan against
the data and applying it are the platform's job.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from typing import Any

from ..errors import Problem, UnsupportedChange
from ._catalog import StoredEntity
from ._fields import MAX_INDEXED_LENGTH, TEXT_TYPES, max_length

# Options whose change would need the column converted; refused until safe
# conversions exist.
_STORAGE_OPTIONS = ("type", "precision", "scale", "target")
# Live fields plus removed fields that still keep their columns; well below the
# column limits of PostgreSQL (1,600) and SQLite (2,000).
MAX_COLUMNS = 1000
# Types whose column holds text: a display field of one of them gets the search index
# that lookups' type-ahead uses.
_TEXT_STORED = TEXT_TYPES | {"picklist", "autonumber"}
# Details worth a reader's eye in a plan's one-line steps; the rest are for the
# code that applies the plan.
_DESCRIBED = ("old", "type", "target")


@dataclass(frozen=True)
class Operation:
    """One step of a plan, e.g. ``add_column opportunity.loss_reason``."""

    kind: str
    entity: str
    field: str | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        where = f"{self.entity}.{self.field}" if self.field else self.entity
        extra = "".join(
            f" {key}={value}" for key, value in self.detail.items() if key in _DESCRIBED
        )
        return f"{self.kind} {where}{extra}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "op": self.kind,
            "entity": self.entity,
            "field": self.field,
            **self.detail,
        }


@dataclass
class Plan:
    """The operations one metadata change needs, in the order they run."""

    operations: list[Operation] = dataclasses.field(default_factory=list)

    def add(
        self, kind: str, entity: str, name: str | None = None, **detail: Any
    ) -> None:
        self.operations.append(Operation(kind, entity, name, detail))

    def extend(self, other: Plan) -> None:
        self.operations.extend(other.operations)

    def describe(self) -> list[str]:
        return [operation.describe() for operation in self.operations]

    def as_list(self) -> list[dict[str, Any]]:
        return [operation.as_dict() for operation in self.operations]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def is_unique(spec: dict[str, Any]) -> bool:
    return bool(spec.get("unique") or spec.get("external_id"))


def search_field(document: dict[str, Any]) -> str | None:
    """Return the field whose prefix lookups search through an index, if any.

    It is the display field when its column holds text short enough for an index
    entry; other entities have no search index, and their lookups scan.
    """
    name = document.get("display_field")
    for spec in document.get("fields", ()):
        if spec["name"] != name or spec["type"] not in _TEXT_STORED:
            continue
        if (max_length(spec) or 0) > MAX_INDEXED_LENGTH:
            return None
        return str(name)
    return None


def _search_field_id(document: dict[str, Any]) -> str | None:
    name = search_field(document)
    found = [spec for spec in document["fields"] if spec["name"] == name]
    return str(found[0].get("id")) if found else None


def _plan_search_index(
    plan: Plan, old: dict[str, Any] | None, document: dict[str, Any]
) -> None:
    """Add or move the display field's search index (one per entity).

    A renamed display field keeps its index: the index follows the column.
    """
    if old is not None and _search_field_id(old) == _search_field_id(document):
        return
    name = document["name"]
    if old is not None and search_field(old) is not None:
        plan.add("drop_search_index", name, search_field(old))
    field = search_field(document)
    if field is not None:
        plan.add("add_search_index", name, field)


def plan_entity(
    old: StoredEntity | None, document: dict[str, Any]
) -> tuple[StoredEntity, Plan]:
    """Return the entity to store and the plan that takes the database there.

    ``document`` must already have passed :func:`check_entity_document`. Ids in the
    document are kept when they are new here (a document exported from another
    installation keeps its identity) and matched when they are known.

    :raises UnsupportedChange: the change needs a conversion not supported yet,
        such as a new field type or a renamed entity, or the ids do not fit.
    """
    document = _copy(document)
    name = document["name"]
    plan = Plan()
    if old is None:
        document.setdefault("id", new_id("ent"))
        _check_ids(document["fields"])
        for spec in document["fields"]:
            spec.setdefault("id", new_id("fld"))
        plan.add("create_table", name)
        for spec in document["fields"]:
            _plan_new_column(plan, name, spec, new_table=True)
        _plan_search_index(plan, None, document)
        return StoredEntity(document), plan

    old_doc = old.document
    if document.get("id", old_doc["id"]) != old_doc["id"]:
        message = f"This entity's id is {old_doc['id']!r}; an id never changes."
        raise UnsupportedChange(
            "An entity's id cannot change.",
            problems=[Problem("id", "immutable", message)],
        )
    document["id"] = old_doc["id"]
    if old.removed:
        plan.add("restore_entity", name)
    hidden, field_plan = _plan_fields(name, old, document["fields"])
    plan.extend(field_plan)
    _plan_search_index(plan, old_doc, document)
    if len(document["fields"]) + len(hidden) > MAX_COLUMNS:
        message = (
            f"The entity would keep {len(document['fields']) + len(hidden)} columns "
            f"(removed fields keep theirs); at most {MAX_COLUMNS} are allowed. Purge "
            "removed fields first."
        )
        raise UnsupportedChange(
            "Too many columns.",
            problems=[Problem("fields", "too_many_columns", message)],
        )
    if document != old_doc and not plan.operations:
        plan.add("update_metadata", name)
    return StoredEntity(document, hidden), plan


def _check_ids(specs: list[dict[str, Any]]) -> None:
    problems = []
    seen: dict[str, int] = {}
    for index, spec in enumerate(specs):
        if "id" not in spec:
            continue
        if spec["id"] in seen:
            message = f"fields[{seen[spec['id']]}] already has the id {spec['id']!r}."
            problems.append(Problem(f"fields[{index}].id", "duplicate_id", message))
        seen.setdefault(spec["id"], index)
    if problems:
        raise UnsupportedChange("Field ids must be unique.", problems=problems)


def _plan_fields(
    entity: str, old: StoredEntity, specs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], Plan]:
    _check_ids(specs)
    plan = Plan()
    problems: list[Problem] = []
    visible = {spec["id"]: spec for spec in old.document["fields"]}
    hidden = {spec["id"]: spec for spec in old.hidden_fields}
    known = {**hidden, **visible}
    by_name = {spec["name"]: spec for spec in known.values()}
    kept: dict[str, int] = {}
    # A field sent with its id is that field, whatever its name; a field sent
    # without one only takes over a name that no such field claims.
    claimed = {spec["id"] for spec in specs if "id" in spec}
    unclaimed = {
        name: spec for name, spec in by_name.items() if spec["id"] not in claimed
    }
    for index, spec in enumerate(specs):
        path = f"fields[{index}]"
        previous = _match_field(spec, path, known, unclaimed, problems)
        if previous is None:
            spec.setdefault("id", new_id("fld"))
            _plan_new_column(plan, entity, spec, new_table=False)
            continue
        if previous["id"] in kept:
            message = f"fields[{kept[previous['id']]}] already stands for this field."
            problems.append(Problem(f"{path}.id", "duplicate_id", message))
            continue
        changes = _storage_changes(previous, spec, path)
        if changes and "id" not in spec and previous["id"] in hidden:
            # A new field named like a removed one that stores its data
            # otherwise: the removed field's column holds the name, as
            # _column_clashes says, rather than "add a new field", which is
            # what was asked.
            continue
        spec["id"] = previous["id"]
        kept[previous["id"]] = index
        problems += changes
        _plan_kept_field(
            plan, entity, previous, spec, restored=previous["id"] in hidden
        )
    problems += _column_clashes(entity, known, specs, kept)
    if problems:
        raise UnsupportedChange(
            f"Entity {entity!r} asks for changes that are not supported yet.",
            problems=problems,
        )
    still_hidden = [spec for key, spec in hidden.items() if key not in kept]
    for key, spec in visible.items():
        if key not in kept:
            plan.add("hide_field", entity, spec["name"])
            still_hidden.append(spec)
    return still_hidden, plan


def _plan_kept_field(
    plan: Plan,
    entity: str,
    previous: dict[str, Any],
    spec: dict[str, Any],
    *,
    restored: bool,
) -> None:
    name = spec["name"]
    if restored:
        plan.add("restore_field", entity, name)
        if spec["type"] == "autonumber":
            # Records made while the field was hidden get their numbers now.
            plan.add("backfill_autonumber", entity, name)
    if previous["name"] != name:
        plan.add(
            "rename_field",
            entity,
            name,
            old=previous["name"],
            unique=is_unique(previous),
            lookup=previous["type"] == "lookup",
        )
    if is_unique(spec) and not is_unique(previous):
        renamed = {"column": previous["name"]} if previous["name"] != name else {}
        plan.add("add_unique", entity, name, **renamed)
    elif is_unique(previous) and not is_unique(spec):
        plan.add("drop_unique", entity, name)


def _column_clashes(
    entity: str,
    known: dict[str, dict[str, Any]],
    specs: list[dict[str, Any]],
    kept: dict[str, int],
) -> list[Problem]:
    """Refuse a name still used by the column of another field that keeps its data."""
    problems = []
    staying = {spec["name"]: spec for key, spec in known.items() if key not in kept}
    for index, spec in enumerate(specs):
        other = staying.get(spec["name"])
        if other is None or other["id"] == spec.get("id"):
            continue
        message = (
            f"The removed field {other['name']!r} still holds data under this name; "
            "keep it, or purge it with "
            f"'tailorcrm meta purge {entity}.{other['name']}'."
        )
        problems.append(Problem(f"fields[{index}].name", "name_in_use", message))
    return problems


def _match_field(
    spec: dict[str, Any],
    path: str,
    known: dict[str, dict[str, Any]],
    by_name: dict[str, dict[str, Any]],
    problems: list[Problem],
) -> dict[str, Any] | None:
    if "id" not in spec:
        return by_name.get(spec["name"])
    if spec["id"] in known:
        return known[spec["id"]]
    same_name = by_name.get(spec["name"])
    if same_name is not None:
        message = (
            f"The field {spec['name']!r} has the id {same_name['id']!r} here, not "
            f"{spec['id']!r}."
        )
        problems.append(Problem(f"{path}.id", "id_mismatch", message))
    return None


def _storage_changes(
    previous: dict[str, Any], spec: dict[str, Any], path: str
) -> list[Problem]:
    problems = []
    for option in _STORAGE_OPTIONS:
        if previous.get(option) != spec.get(option):
            message = (
                f"Changing {option} from {previous.get(option)!r} to "
                f"{spec.get(option)!r} is not supported yet; add a new field and "
                "copy the data instead."
            )
            problems.append(Problem(f"{path}.{option}", "unsupported_change", message))
    return problems


def _plan_new_column(
    plan: Plan, entity: str, spec: dict[str, Any], *, new_table: bool
) -> None:
    if not new_table:
        plan.add("add_column", entity, spec["name"], type=spec["type"])
    if spec["type"] == "lookup":
        plan.add("add_foreign_key", entity, spec["name"], target=spec["target"])
    if is_unique(spec):
        plan.add("add_unique", entity, spec["name"])
    if spec["type"] == "autonumber" and not new_table:
        plan.add("backfill_autonumber", entity, spec["name"])


def _copy(document: dict[str, Any]) -> dict[str, Any]:
    copied = dict(document)
    copied["fields"] = [dict(spec) for spec in document["fields"]]
    return copied
