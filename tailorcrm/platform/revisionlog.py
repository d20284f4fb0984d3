"""The metadata revisions, as administrators browse them.

Every metadata change is one revision (``tc_meta_revision``): who made it, when,
the plan that was applied, and each document before and after it
(``tc_meta_history``). This module only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..errors import NotFound
from ..metadata import INTEGER_LIMIT
from .db import meta_history, meta_revisions


@dataclass(frozen=True)
class RevisionPage:
    revisions: list[dict[str, Any]]
    #: Where the next (older) page starts; ``None`` on the last page.
    next_cursor: str | None


def _summary(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "actor": row["actor"],
        "at": row["at"].isoformat() + "Z",
        "summary": row["summary"],
    }


def list_revisions(
    connection: sa.Connection, *, limit: int, before: int | None = None
) -> RevisionPage:
    """One page of revisions, newest first: id, actor, time and summary.

    :param before: the cursor of the previous page: revisions older than it.
    """
    table = meta_revisions
    query = (
        sa.select(table.c.id, table.c.actor, table.c.at, table.c.summary)
        .order_by(table.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(table.c.id < before)
    rows = connection.execute(query).mappings().all()
    following = str(rows[limit - 1]["id"]) if len(rows) > limit else None
    return RevisionPage([_summary(row) for row in rows[:limit]], following)


def get_revision(connection: sa.Connection, revision: int) -> dict[str, Any]:
    """One revision with its plan and every document it changed.

    Each change is ``{kind, name, before, after}``; ``before`` is ``None`` for a
    document the revision created, ``after`` for one it deleted.

    :raises NotFound: there is no such revision.
    """
    if not 0 < revision <= INTEGER_LIMIT:
        # Past the database's range: no revision has such a number.
        raise NotFound(f"There is no metadata revision {revision}.")
    row = (
        connection.execute(
            sa.select(meta_revisions).where(meta_revisions.c.id == revision)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"There is no metadata revision {revision}.")
    history = connection.execute(
        sa.select(meta_history)
        .where(meta_history.c.revision == revision)
        .order_by(meta_history.c.id)
    ).mappings()
    return {
        **_summary(row),
        "plan": row["plan"],
        "changes": [
            {
                "kind": entry["kind"],
                "name": entry["name"],
                "before": entry["before"],
                "after": entry["after"],
            }
            for entry in history
        ],
    }
