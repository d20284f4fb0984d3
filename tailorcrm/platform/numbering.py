"""Autonumber fields: a per-field counter kept in the database."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..metadata import EntityDef
from .db import sequences

BACKFILL_BATCH = 5000


def format_number(spec: dict[str, Any], number: int) -> str:
    return f"{spec.get('prefix', '')}{number:0{int(spec.get('digits', 6))}d}"


def allocate(connection: sa.Connection, entity: str, field: str, count: int) -> int:
    """Reserve ``count`` numbers and return the first one.

    The counter row stays locked until the transaction ends, so two transactions never
    get the same numbers.
    """
    where = (sequences.c.entity == entity, sequences.c.field == field)
    step = (
        sequences.update()
        .where(*where)
        .values(value=sequences.c.value + count)
        .returning(sequences.c.value)
    )
    last = connection.execute(step).scalar()
    if last is None:
        # The first number of this field: create the counter at zero, letting a
        # transaction that raced us to it win, then take numbers as usual.
        insert = (
            postgresql.insert(sequences)
            if connection.dialect.name == "postgresql"
            else sqlite.insert(sequences)
        )
        connection.execute(
            insert.values(entity=entity, field=field, value=0).on_conflict_do_nothing()
        )
        last = connection.execute(step).scalar_one()
    return int(last) - count + 1


def backfill(connection: sa.Connection, entity: EntityDef, field: str) -> None:
    """Number the existing records of ``entity`` in the order they were created."""
    table = entity.table
    spec = entity.fields[field]
    column = table.c[field]
    ids = connection.execute(
        sa.select(table.c.id).where(column.is_(None)).order_by(table.c.id)
    ).scalars()
    pending = list(ids)
    if not pending:
        return
    first = allocate(connection, entity.name, field, len(pending))
    statement = (
        table.update()
        .where(table.c.id == sa.bindparam("record_id"))
        .values({field: sa.bindparam("number")})
    )
    for start in range(0, len(pending), BACKFILL_BATCH):
        batch = pending[start : start + BACKFILL_BATCH]
        params = [
            {"record_id": record_id, "number": format_number(spec, first + start + i)}
            for i, record_id in enumerate(batch)
        ]
        connection.execute(statement, params)
