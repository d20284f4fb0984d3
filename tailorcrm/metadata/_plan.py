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

# Options whose change would need the column converted; refused until safe
# conversions exist.
_STORAGE_OPTIONS = ("type", "precision", "scale", "target")


@dataclass(frozen=True)
class Operation:
    """One step of a plan, e.g. ``add_column opportunity.loss_reason``."""

    kind: str
    entity: str
    field: str | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        where = f"{self.entity}.{self.field}" if self.field else self.entity
        extra = "".join(f" {key}={value}" for key, value in self.detail.items())
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


def plan_entity(
    old: StoredEntity | None, document: dict[str, Any]
) -> tuple[StoredEntity, Plan]:
    """Return the entity to store and the plan that takes the database there.

    ``document`` must already have passed :func:`check_entity_document`.

    :raises UnsupportedChange: the change needs a conversion not supported yet,
        such as a new field type or a renamed entity.
    """
    document = _copy(document)
    name = document["name"]
    plan = Plan()
    if old is None:
        document["id"] = _check_new_id(document.get("id"), "id", "ent")
        for index, spec in enumerate(document["fields"]):
            spec["id"] = _check_new_id(spec.get("id"), f"fields[{index}].id", "fld")
        plan.add("create_table", name)
        for spec in document["fields"]:
            _plan_new_column(plan, name, spec, new_table=True)
        return StoredEntity(document), plan

    old_doc = old.document
    if document.get("id", old_doc["id"]) != old_doc["id"]:
        raise UnsupportedChange(
            "An entity's id cannot change.",
            problems=[Problem("id", "immutable", "Ids are assigned by the platform.")],
        )
    document["id"] = old_doc["id"]
    if old.removed:
        plan.add("restore_entity", name)
    hidden, field_plan = _plan_fields(name, old, document["fields"])
    plan.extend(field_plan)
    if document != old_doc and not plan.operations:
        plan.add("update_metadata", name)
    return StoredEntity(document, hidden), plan


def _plan_fields(
    entity: str, old: StoredEntity, specs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], Plan]:
    plan = Plan()
    problems: list[Problem] = []
    visible = {spec["id"]: spec for spec in old.document["fields"]}
    hidden = {spec["id"]: spec for spec in old.hidden_fields}
    by_name = {spec["name"]: spec for spec in [*hidden.values(), *visible.values()]}
    kept: set[str] = set()
    for index, spec in enumerate(specs):
        path = f"fields[{index}]"
        previous = _match_field(spec, path, visible, hidden, by_name, problems)
        if previous is None:
            spec["id"] = new_id("fld")
            _plan_new_column(plan, entity, spec, new_table=False)
            continue
        spec["id"] = previous["id"]
        kept.add(previous["id"])
        problems += _storage_changes(previous, spec, path)
        if previous["id"] in hidden:
            plan.add("restore_field", entity, spec["name"])
        if previous["name"] != spec["name"]:
            plan.add("rename_field", entity, spec["name"], old=previous["name"])
        if is_unique(spec) and not is_unique(previous):
            plan.add("add_unique", entity, spec["name"])
        elif is_unique(previous) and not is_unique(spec):
            plan.add("drop_unique", entity, spec["name"])
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


def _match_field(
    spec: dict[str, Any],
    path: str,
    visible: dict[str, dict[str, Any]],
    hidden: dict[str, dict[str, Any]],
    by_name: dict[str, dict[str, Any]],
    problems: list[Problem],
) -> dict[str, Any] | None:
    if "id" in spec:
        previous = visible.get(spec["id"]) or hidden.get(spec["id"])
        if previous is None:
            message = f"{spec['id']!r} is not the id of one of this entity's fields."
            problems.append(Problem(f"{path}.id", "unknown_id", message))
        return previous
    previous = by_name.get(spec["name"])
    if previous is not None and previous["id"] in hidden:
        return previous
    return visible.get(previous["id"]) if previous else None


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


def _check_new_id(value: Any, path: str, prefix: str) -> str:
    if value is None:
        return new_id(prefix)
    raise UnsupportedChange(
        "Ids are assigned by the platform when a document is first saved.",
        problems=[Problem(path, "unknown_id", f"{value!r} is not a known id.")],
    )


def _copy(document: dict[str, Any]) -> dict[str, Any]:
    copied = dict(document)
    copied["fields"] = [dict(spec) for spec in document["fields"]]
    return copied
