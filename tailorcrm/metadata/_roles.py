"""Role documents: who may do what to which records and fields.

A role is a metadata document (``"kind": "role"``). Per entity it grants each
operation a scope — ``none``, ``own``, ``team`` or ``all`` — and may hide fields or
make them read-only; its sharing rules open records that match a condition to the
role's holders. Roles are held by users directly or through a team. They add up:
for each operation the widest scope of any role wins, and a field is as open as
the most open role that reads the entity leaves it.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from jsonschema import Draft202012Validator

from ..errors import Problem
from ..rules_engine import (
    ConditionError,
    SqlTranslationError,
    check_condition,
    compile_sql,
    join_path,
    rename_fields,
)
from ..rules_engine import field_names as condition_fields
from ._rules import (
    SYSTEM_TYPES,
    StoredRule,
    labels_compared,
    named_schema_problems,
    rule_problem_path,
)
from ._validate import load_schema

if TYPE_CHECKING:
    from ._catalog import EntityDef

ROLE = "role"
OPERATIONS = ("create", "read", "edit", "delete", "import", "export")
SCOPES = ("none", "own", "team", "all")
FIELD_LEVELS = ("hidden", "read_only", "editable")
#: The owner and the other columns every record has, as conditions see them.
SYSTEM_FIELD_TYPES = SYSTEM_TYPES

#: A role document as the metadata store keeps it, with the revision that stored
#: it: the same shape as a stored rule.
StoredRole = StoredRule


def role_schema() -> dict[str, Any]:
    """Return the JSON Schema (Draft 2020-12) of role documents."""
    return load_schema("role")


#: The name administrators carry in ``$user.roles``; no role may take it.
ADMIN_ROLE = "admin"


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(role_schema())


def is_role_document(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == ROLE


def _path(name: Any, path: str) -> str:
    return rule_problem_path(name, path, kind="role")


def check_role_document(
    document: Any, entities: Mapping[str, EntityDef], *, labels: bool = True
) -> list[Problem]:
    """Every problem of a role document: its schema, then what it names.

    Entities and fields must exist: live, or removed and not yet purged (a
    removed one keeps what roles give it, and gets it back if it is restored);
    a sharing rule's condition must pass the rules language's checks against
    its entity and translate to SQL.

    :param labels: whether a choice's label compared with a picklist in a
        sharing rule is a problem (``choice_label``); not for a role sent again
        as it is stored, which was saved before that check.
    """
    problems = named_schema_problems(_validator(), document, kind="role")
    if problems:
        return problems
    name = document["name"]
    if name == ADMIN_ROLE:
        message = (
            f"{ADMIN_ROLE!r} is how rules see administrators in $user.roles; give "
            "the role another name."
        )
        return [Problem(_path(name, "name"), "reserved", message)]
    for entity_name, grant in document.get("entities", {}).items():
        entity = entities.get(entity_name)
        at = f"entities.{entity_name}"
        if entity is None:
            problems.append(
                Problem(
                    _path(name, at),
                    "unknown_entity",
                    f"There is no entity named {entity_name!r}.",
                )
            )
            continue
        for field in grant.get("fields", {}):
            # A removed field keeps the levels roles give it: its data stays,
            # and comes back with it if it is restored.
            if field not in entity.fields and field not in entity.hidden_fields:
                problems.append(
                    Problem(
                        _path(name, f"{at}.fields.{field}"),
                        "unknown_field",
                        f"{entity.label} has no field {field!r}.",
                    )
                )
    seen: set[str] = set()
    for index, rule in enumerate(document.get("sharing", [])):
        at = f"sharing[{index}]"
        if rule["name"] in seen:
            problems.append(
                Problem(
                    _path(name, f"{at}.name"),
                    "duplicate_name",
                    f"Sharing rule {rule['name']!r} is defined more than once.",
                )
            )
        seen.add(rule["name"])
        entity = entities.get(rule["entity"])
        if entity is None:
            problems.append(
                Problem(
                    _path(name, f"{at}.entity"),
                    "unknown_entity",
                    f"There is no entity named {rule['entity']!r}.",
                )
            )
            continue
        problems += _condition_problems(
            name, f"{at}.condition", rule, entity, entities if labels else None
        )
    return problems


def _condition_problems(
    name: Any,
    at: str,
    rule: Mapping[str, Any],
    entity: EntityDef,
    entities: Mapping[str, EntityDef] | None,
) -> list[Problem]:
    types = {**SYSTEM_FIELD_TYPES, **field_types(entity)}
    found = check_condition(rule["condition"], fields=types, user_attributes=True)
    if found:
        return [
            Problem(
                _path(name, join_path(at, p.path)),
                p.code,
                p.message,
            )
            for p in found
        ]
    try:
        sharing_clause(entity, rule["condition"], {"id": 0})
    except (ConditionError, SqlTranslationError) as error:
        return [Problem(_path(name, at), "no_sql", str(error))]
    if entities is None:
        return []
    return [
        Problem(_path(name, str(p.field)), p.code, p.message)
        for p in labels_compared(rule["condition"], entity, entities, path=at)
    ]


def field_types(entity: EntityDef) -> dict[str, str]:
    return {name: spec["type"] for name, spec in entity.fields.items()}


def sharing_clause(
    entity: EntityDef,
    condition: Any,
    user: Mapping[str, Any],
    *,
    now: dt.datetime | None = None,
) -> sa.ColumnElement[bool]:
    """The SQL form of a sharing rule's condition for one caller.

    Conditions may read every field of the record, hidden ones included: the rule
    is the administrator's, not the caller's.
    """
    types = {**SYSTEM_FIELD_TYPES, **field_types(entity)}
    columns = {name: (entity.table.c[name], kind) for name, kind in types.items()}
    return compile_sql(condition, columns, user=user, now=now)


def rewrite_roles(
    roles: Mapping[str, StoredRole],
    changes: Mapping[str, Mapping[str, str | None]],
) -> dict[str, dict[str, Any]]:
    """Role documents with renamed fields renamed.

    ``changes`` maps entity -> old field name -> new name (``None``: removed). A
    removed field keeps its level: its column and values stay, and a field
    restored with the level dropped would show what the role hid (a purge drops
    it, see :func:`drop_field_levels`). A sharing rule that reads a removed field
    is dropped with it: it can only open fewer records then, never more.
    Returns only the documents that changed.
    """
    rewritten = {}
    for name, stored in roles.items():
        document = copy.deepcopy(stored.document)
        for entity_name, renames in changes.items():
            grant = document.get("entities", {}).get(entity_name)
            if grant and "fields" in grant:
                fields = {}
                for field, level in grant["fields"].items():
                    if field not in renames or renames[field] is None:
                        fields[field] = level
                    else:
                        fields[str(renames[field])] = level
                grant["fields"] = fields
            kept = []
            for rule in document.get("sharing", []):
                if rule["entity"] != entity_name:
                    kept.append(rule)
                    continue
                read = condition_fields(rule["condition"])
                if any(field in renames and renames[field] is None for field in read):
                    continue
                live = {k: v for k, v in renames.items() if v is not None}
                rule["condition"] = rename_fields(rule["condition"], live)
                kept.append(rule)
            if "sharing" in document:
                document["sharing"] = kept
        if document != stored.document:
            rewritten[name] = document
    return rewritten


def drop_field_levels(
    roles: Mapping[str, StoredRole], entity: str, field: str
) -> dict[str, dict[str, Any]]:
    """Role documents without the level of a field that is gone for good (a
    purged one). Returns only the documents that changed."""
    rewritten = {}
    for name, stored in roles.items():
        grant = stored.document.get("entities", {}).get(entity)
        if not grant or field not in grant.get("fields", {}):
            continue
        document = copy.deepcopy(stored.document)
        del document["entities"][entity]["fields"][field]
        rewritten[name] = document
    return rewritten


def drop_entity_grants(
    roles: Mapping[str, StoredRole], entity: str
) -> dict[str, dict[str, Any]]:
    """Role documents without the grants and sharing rules of an entity that is
    gone for good (a purged one), so that an entity made again under its name
    starts with none. Returns only the documents that changed."""
    rewritten = {}
    for name, stored in roles.items():
        document = copy.deepcopy(stored.document)
        document.get("entities", {}).pop(entity, None)
        if "sharing" in document:
            document["sharing"] = [
                rule for rule in document["sharing"] if rule["entity"] != entity
            ]
        if document != stored.document:
            rewritten[name] = document
    return rewritten


def live_grants(
    document: Mapping[str, Any], entities: Mapping[str, EntityDef]
) -> dict[str, Any]:
    """A role document without what it gives removed entities and fields.

    It is the role as an export writes it: the export holds live entities
    only, so it applies to a database that never had the removed ones.
    """
    result = copy.deepcopy(dict(document))
    grants = result.get("entities", {})
    for name in list(grants):
        entity = entities.get(name)
        if entity is None or entity.removed:
            del grants[name]
            continue
        levels = grants[name].get("fields", {})
        for field in [field for field in levels if field not in entity.fields]:
            del levels[field]
    if "sharing" in result:
        result["sharing"] = [
            rule for rule in result["sharing"] if _is_live(rule["entity"], entities)
        ]
    return result


def keep_removed_grants(
    document: Mapping[str, Any],
    stored: Mapping[str, Any],
    entities: Mapping[str, EntityDef],
) -> dict[str, Any]:
    """``document`` with what the ``stored`` role gives removed entities and
    fields where ``document`` says nothing of them.

    A role document that leaves them out, as :func:`live_grants` writes it,
    so keeps them until they are purged: a field restored without the level
    that hid it would show what the role hid.
    """
    result = copy.deepcopy(dict(document))
    for name, grant in stored.get("entities", {}).items():
        entity = entities.get(name)
        if entity is None:
            continue
        if entity.removed:
            result.setdefault("entities", {}).setdefault(name, copy.deepcopy(grant))
            continue
        given = result.get("entities", {}).get(name)
        if given is None:
            continue
        for field, level in grant.get("fields", {}).items():
            if field in entity.hidden_fields:
                given.setdefault("fields", {}).setdefault(field, level)
    named = {rule["name"] for rule in result.get("sharing", [])}
    for rule in stored.get("sharing", []):
        entity = entities.get(rule["entity"])
        if entity is not None and entity.removed and rule["name"] not in named:
            result.setdefault("sharing", []).append(copy.deepcopy(rule))
    return result


def _is_live(name: str, entities: Mapping[str, EntityDef]) -> bool:
    entity = entities.get(name)
    return entity is not None and not entity.removed


def roles_naming(roles: Iterable[StoredRole], entity: str) -> list[str]:
    """Names of the roles that grant anything on ``entity`` or share its records."""
    return [
        role.name
        for role in roles
        if entity in role.document.get("entities", {})
        or any(rule["entity"] == entity for rule in role.document.get("sharing", []))
    ]
