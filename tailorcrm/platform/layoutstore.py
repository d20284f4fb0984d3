"""Layout documents in the metadata store: reading, checking, rewriting, writing.

The metadata store keeps layouts (kind ``layout``, one per entity, named after it)
in the same table, revisions and history as entity documents. These helpers are
the layout half of its changes: they run inside the store's transaction, under
its lock, and add their steps to its plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..errors import InvalidMetadata, Problem
from ..metadata import (
    LAYOUT,
    Catalog,
    FieldChanges,
    Plan,
    StoredEntity,
    check_layout_document,
    field_changes,
    rewrite_layout,
    same_document,
)
from .db import meta_documents
from .revisions import check_expected, write_documents


@dataclass(frozen=True)
class StoredLayout:
    """A layout document as the metadata store keeps it."""

    document: dict[str, Any]
    #: The metadata revision that last changed it: its ETag.
    revision: int


def stored_layouts(connection: sa.Connection) -> dict[str, StoredLayout]:
    """Return every stored layout by entity name."""
    rows = connection.execute(
        sa.select(meta_documents).where(meta_documents.c.kind == LAYOUT)
    )
    return {row.name: StoredLayout(row.body, int(row.revision)) for row in rows}


def check_expected_layouts(
    stored: Mapping[str, StoredLayout], expected: Mapping[str, int]
) -> None:
    revisions = {name: layout.revision for name, layout in stored.items()}
    check_expected(revisions, expected, lambda name: f"The layout of {name!r}")


def bodies(layouts: Mapping[str, StoredLayout]) -> dict[str, dict[str, Any]]:
    return {name: layout.document for name, layout in layouts.items()}


def split_kinds(
    documents: Sequence[tuple[str, Any]],
) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Sort documents into entities (no ``kind``) and layouts.

    :raises InvalidMetadata: a document has a kind that cannot be applied here.
    """
    entities, layouts, problems = [], [], []
    for source, document in documents:
        kind = document.get("kind") if isinstance(document, dict) else None
        if kind is None:
            entities.append((source, document))
        elif kind == LAYOUT:
            layouts.append((source, document))
        else:
            prefix = f"{source}: " if source else ""
            message = (
                f"Documents of kind {kind!r} cannot be applied as metadata; entity "
                "documents have no kind, layouts have the kind 'layout', rules "
                "the kind 'rule' and roles the kind 'role'."
            )
            problems.append(Problem(f"{prefix}kind", "unknown_kind", message))
    if problems:
        raise InvalidMetadata(
            "The metadata document was refused; nothing was changed.",
            problems=problems,
        )
    return entities, layouts


def check_layouts(
    documents: Sequence[tuple[str, Any]],
    target: Catalog,
    stored: Mapping[str, StoredLayout],
) -> None:
    problems: list[Problem] = []
    seen: set[str] = set()
    for source, document in documents:
        prefix = f"{source}: " if source else ""
        name = document.get("entity") if isinstance(document, dict) else None
        old = stored.get(name) if isinstance(name, str) else None
        unchanged = old is not None and same_document(old.document, document)
        found = check_layout_document(document, target, labels=not unchanged)
        for problem in found:
            problems.append(
                Problem(f"{prefix}{problem.field}", problem.code, problem.message)
            )
        name = document.get("entity")
        if isinstance(name, str) and name in seen:
            message = f"The layout of {name!r} is given more than once."
            problems.append(Problem(f"{prefix}entity", "duplicate_name", message))
        if isinstance(name, str):
            seen.add(name)
    if problems:
        raise InvalidMetadata(
            "The metadata document was refused; nothing was changed.",
            problems=problems,
        )


def entity_field_changes(
    current: Catalog, after: Mapping[str, StoredEntity]
) -> dict[str, dict[str, str | None]]:
    changes = {}
    for name, stored in after.items():
        before = current.entities.get(name)
        found = field_changes(before, stored.document) if before else {}
        if found:
            changes[name] = found
    return changes


def given_layouts(
    documents: Sequence[tuple[str, Any]],
    stored: Mapping[str, StoredLayout],
    plan: Plan,
) -> dict[str, dict[str, Any] | None]:
    result: dict[str, dict[str, Any] | None] = {}
    for _, document in documents:
        name = document["entity"]
        old = stored.get(name)
        if old is None or not same_document(old.document, document):
            plan.add("set_layout", name)
            result[name] = document
    return result


def rewritten_layouts(
    stored: Mapping[str, StoredLayout],
    changes: FieldChanges,
    plan: Plan,
    *,
    skip: Mapping[str, Any],
    removed_entities: set[str] | None = None,
) -> dict[str, dict[str, Any] | None]:
    """Rewrite the stored layouts that name renamed or removed fields or entities."""
    result: dict[str, dict[str, Any] | None] = {}
    if not changes and not removed_entities:
        return result
    for name in sorted(stored):
        if name in skip:
            continue
        document = stored[name].document
        rewritten = rewrite_layout(
            document, changes, removed_entities=removed_entities or ()
        )
        if rewritten != document:
            plan.add("update_layout", name)
            result[name] = rewritten
    return result


def write_layouts(
    connection: sa.Connection,
    before: Mapping[str, StoredLayout],
    after: Mapping[str, dict[str, Any] | None],
    revision: int,
) -> None:
    write_documents(
        connection,
        LAYOUT,
        {name: layout.document for name, layout in before.items()},
        after,
        revision,
        wrapped=False,
    )
