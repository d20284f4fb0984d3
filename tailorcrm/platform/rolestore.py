"""Role documents in the metadata store.

Roles are stored like rules, in ``tc_meta_document`` with the kind ``role``, and
change under the same metadata lock and revision as entities: a role is checked
against the entities as the change leaves them, and a field renamed or removed
by an entity change is renamed or dropped in every role in the same revision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..errors import Conflict, InvalidMetadata, NotFound, Problem
from ..metadata import (
    ROLE,
    Catalog,
    Plan,
    StoredRole,
    check_role_document,
    drop_entity_grants,
    drop_field_levels,
    is_role_document,
    keep_removed_grants,
    rewrite_roles,
    same_document,
)
from .db import meta_documents, team_roles, user_roles
from .revisions import check_expected, write_documents


@dataclass
class RoleChange:
    """The role documents a change writes (``None``: deleted) and its plan steps."""

    after: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    plan: Plan = field(default_factory=Plan)


def split_roles(
    documents: Sequence[tuple[str, Any]],
) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Separate role documents (``"kind": "role"``) from the others."""
    others = [(src, doc) for src, doc in documents if not is_role_document(doc)]
    roles = [(src, doc) for src, doc in documents if is_role_document(doc)]
    return others, roles


def stored_roles(connection: sa.Connection) -> dict[str, StoredRole]:
    rows = connection.execute(
        sa.select(meta_documents).where(meta_documents.c.kind == ROLE)
    )
    return {row.name: StoredRole(row.body, int(row.revision)) for row in rows}


def check_expected_roles(
    stored: Mapping[str, StoredRole], expected: Mapping[str, int]
) -> None:
    revisions = {name: role.revision for name, role in stored.items()}
    check_expected(revisions, expected, lambda name: f"Role {name!r}")


def plan_roles(
    target: Catalog,
    documents: Sequence[tuple[str, Any]],
    stored: Mapping[str, StoredRole],
    field_changes: Mapping[str, Mapping[str, str | None]],
) -> RoleChange:
    """Check role documents against ``target`` and rewrite stored roles.

    :param target: the catalog as the change leaves the entities.
    :param field_changes: entity -> old field name -> new name (``None``:
        removed), for the stored roles to follow.
    :raises InvalidMetadata: a role document has problems, each named with the
        role's name and the JSON path (after the document's source, if any).
    """
    problems: list[Problem] = []
    incoming: dict[str, dict[str, Any]] = {}
    for source, document in documents:
        prefix = f"{source}: " if source else ""
        name = document.get("name") if isinstance(document, dict) else None
        old = stored.get(name) if isinstance(name, str) else None
        unchanged = old is not None and same_document(old.document, document)
        found = check_role_document(document, target.entities, labels=not unchanged)
        for problem in found:
            problems.append(
                Problem(f"{prefix}{problem.field}", problem.code, problem.message)
            )
        if isinstance(name, str):
            if name in incoming:
                problems.append(
                    Problem(
                        f"{prefix}{name}.name",
                        "duplicate_name",
                        f"Role {name!r} is defined more than once.",
                    )
                )
            incoming[name] = document
    if problems:
        raise InvalidMetadata(
            "The role document was refused; nothing was changed.", problems=problems
        )
    change = RoleChange()
    for name, given in incoming.items():
        old = stored.get(name)
        document = given
        if old is not None:
            document = keep_removed_grants(given, old.document, target.entities)
            if same_document(old.document, document):
                continue
        change.after[name] = document
        change.plan.add("set_role" if old is not None else "add_role", name)
    others = {name: role for name, role in stored.items() if name not in incoming}
    for name, document in rewrite_roles(others, field_changes).items():
        change.after[name] = document
        change.plan.add("rewrite_role", name)
    return change


def plan_field_purge(
    stored: Mapping[str, StoredRole], entity: str, field: str
) -> RoleChange:
    """The stored roles without the level of a field purged for good."""
    change = RoleChange()
    for name, document in drop_field_levels(stored, entity, field).items():
        change.after[name] = document
        change.plan.add("rewrite_role", name)
    return change


def plan_entity_purge(stored: Mapping[str, StoredRole], entity: str) -> RoleChange:
    """The stored roles without the grants of an entity purged for good."""
    change = RoleChange()
    for name, document in drop_entity_grants(stored, entity).items():
        change.after[name] = document
        change.plan.add("rewrite_role", name)
    return change


def plan_role_removal(
    connection: sa.Connection, stored: Mapping[str, StoredRole], name: str
) -> RoleChange:
    """Plan deleting a role that nobody holds any more.

    :raises NotFound: no such role.
    :raises Conflict: users or teams still hold it, with their number.
    """
    if name not in stored:
        raise NotFound(f"There is no role named {name!r}.")
    users_holding = connection.execute(
        sa.select(sa.func.count()).where(user_roles.c.role == name)
    ).scalar_one()
    teams_holding = connection.execute(
        sa.select(sa.func.count()).where(team_roles.c.role == name)
    ).scalar_one()
    if users_holding or teams_holding:
        raise Conflict(
            f"Role {name!r} is held by {users_holding} users and {teams_holding} "
            "teams; take it from them first. Nothing was changed."
        )
    change = RoleChange()
    change.after[name] = None
    change.plan.add("remove_role", name)
    return change


def write_roles(
    connection: sa.Connection,
    before: Mapping[str, StoredRole],
    change: RoleChange,
    revision: int,
) -> None:
    """Write the role documents of a change and their history, at ``revision``."""
    write_documents(
        connection,
        ROLE,
        {name: role.document for name, role in before.items()},
        change.after,
        revision,
    )
