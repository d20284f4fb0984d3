"""Runtime schema migration: checks a plan against the data, then applies it.

Both steps run on the caller's connection, inside the transaction that also writes
the metadata revision, so a failure anywhere leaves tables and metadata as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from ..errors import Conflict, Problem
from ..metadata import (
    MAX_INDEXED_LENGTH,
    USER_TABLE,
    Catalog,
    EntityDef,
    Operation,
    Plan,
    field_column,
    index_name,
    search_field,
    system_columns,
)
from . import search_index
from .db import is_sqlite, sequences

log = logging.getLogger(__name__)

DUPLICATES_SHOWN = 20
# Operations that index a column, whose values must fit an index entry.
_INDEXING = ("add_unique", "add_search_index")


def check_plan(connection: sa.Connection, plan: Plan, current: Catalog) -> None:
    """Refuse a plan that existing data would break, listing the records.

    :raises Conflict: a new unique constraint meets duplicate values, or a new
        index meets text too long for an index entry.
    """
    problems = []
    checked: set[tuple[str, str]] = set()
    renamed = {
        (op.entity, op.field): str(op.detail["old"])
        for op in plan.operations
        if op.kind == "rename_field"
    }
    for operation in plan.operations:
        if operation.kind not in _INDEXING or operation.entity not in current.entities:
            continue
        entity = current.entities[operation.entity]
        where = (operation.entity, operation.field)
        column_name = str(operation.detail.get("column", renamed.get(where, where[1])))
        if column_name not in entity.table.c:
            continue
        if operation.kind == "add_unique":
            problems += _duplicates(connection, entity, column_name, operation)
        if (operation.entity, column_name) not in checked:
            checked.add((operation.entity, column_name))
            problems += _too_long(connection, entity, column_name, operation)
    if problems:
        raise Conflict(
            "Existing records hold values that the new unique fields or indexes "
            "cannot take. Fix the records, then try again.",
            problems=problems,
        )


def _duplicates(
    connection: sa.Connection, entity: EntityDef, column_name: str, op: Operation
) -> list[Problem]:
    column = entity.table.c[column_name]
    query = (
        sa.select(column, sa.func.count(), sa.func.min(entity.table.c.id))
        .where(column.is_not(None))
        .group_by(column)
        .having(sa.func.count() > 1)
        .order_by(sa.func.count().desc())
        .limit(DUPLICATES_SHOWN)
    )
    problems = []
    for value, count, first_id in connection.execute(query):
        message = (
            f"{count} records share the value {value!r} (the first is record "
            f"{first_id})."
        )
        problems.append(Problem(f"{op.entity}.{op.field}", "duplicate_value", message))
    return problems


def _too_long(
    connection: sa.Connection, entity: EntityDef, column_name: str, op: Operation
) -> list[Problem]:
    """Values an index entry cannot hold: saved while the field took longer text."""
    column = entity.table.c[column_name]
    if not isinstance(column.type, sa.String):
        return []
    length = sa.func.length(column)
    query = (
        sa.select(entity.table.c.id, length)
        .where(length > MAX_INDEXED_LENGTH)
        .order_by(entity.table.c.id)
        .limit(DUPLICATES_SHOWN)
    )
    problems = []
    for record_id, count in connection.execute(query):
        message = (
            f"The value of record {record_id} has {count} characters; an indexed "
            f"field holds at most {MAX_INDEXED_LENGTH}. Shorten it first."
        )
        problems.append(Problem(f"{op.entity}.{op.field}", "too_long", message))
    return problems


def apply_plan(connection: sa.Connection, plan: Plan, target: Catalog) -> None:
    """Run every operation of ``plan`` on ``connection``.

    :param target: the catalog as it will be once the plan is applied; it gives the
        column definitions.
    """
    operations = Operations(MigrationContext.configure(connection))
    sqlite = is_sqlite(connection)
    created = {op.entity for op in plan.operations if op.kind == "create_table"}
    # Tables first, so that a foreign key never names a table the plan has not
    # created yet (two entities may look up to each other); then renames, so that
    # later steps find the columns under their new names.
    phases = {"create_table": 0, "rename_field": 1}
    ordered = sorted(plan.operations, key=lambda op: phases.get(op.kind, 2))
    renames = [op for op in ordered if op.kind == "rename_field"]
    for operation in ordered:
        if operation.kind == "rename_field":
            if operation is renames[0]:
                _rename_fields(operations, renames)
        else:
            handler = _HANDLERS.get(operation.kind)
            if handler is not None:
                try:
                    handler(operations, operation, target, sqlite, created)
                except sa.exc.OperationalError as error:
                    if getattr(error.orig, "sqlstate", None) != _INDEX_ROW_TOO_BIG:
                        raise
                    raise _kept_for_others(operation) from None
        log.info("applied %s", operation.describe())


#: PostgreSQL's "program limit exceeded": here, an index entry too long for a page.
_INDEX_ROW_TOO_BIG = "54000"


def _kept_for_others(op: Operation) -> Conflict:
    """An index over values checked to fit (see :func:`check_plan`) that
    PostgreSQL still cannot build: it also indexes the earlier version of a row
    that transactions begun before its change may read, and that version held
    text too long for it. Once they end, the same change goes through."""
    message = (
        "A record of this field held text too long for an index until recently, "
        "and the database keeps that value a while for transactions that began "
        "before it changed. Try again in a moment; nothing was changed."
    )
    return Conflict(
        "The database cannot build the index yet.",
        problems=[Problem(f"{op.entity}.{op.field}", "too_long_earlier", message)],
    )


def _create_table(
    ops: Operations, op: Operation, target: Catalog, sqlite: bool, _new: set[str]
) -> None:
    entity = target.entities[op.entity]
    columns: list[Any] = system_columns()
    for column in columns:
        if column.name in ("created_by", "owner_id"):
            column.append_foreign_key(sa.ForeignKey(f"{USER_TABLE}.id"))
    for spec in entity.fields.values():
        column = field_column(spec)
        # SQLite checks references only when rows change, so lookups can be declared
        # with the table even when the target table is created later in the plan.
        if sqlite and spec["type"] == "lookup":
            column.append_foreign_key(sa.ForeignKey(f"{spec['target']}.id"))
        columns.append(column)
    # AUTOINCREMENT keeps SQLite from giving a deleted record's id to a new one, as
    # PostgreSQL's identity columns never do.
    ops.create_table(op.entity, *columns, sqlite_autoincrement=True)
    ops.create_index(index_name("ix", op.entity, "owner_id"), op.entity, ["owner_id"])
    ops.create_index(
        index_name("ix", op.entity, "updated_at"), op.entity, ["updated_at"]
    )


def _add_column(
    ops: Operations, op: Operation, target: Catalog, sqlite: bool, _new: set[str]
) -> None:
    spec = target.entities[op.entity].fields[str(op.field)]
    column = field_column(spec)
    if sqlite and spec["type"] == "lookup":
        # alembic refuses constraints on SQLite outside batch mode, but SQLite itself
        # accepts a REFERENCES clause on a nullable added column without a rebuild.
        column_sql = sa.schema.CreateColumn(column).compile(
            dialect=ops.get_bind().dialect
        )
        ops.execute(
            f'ALTER TABLE "{op.entity}" ADD COLUMN {column_sql} '
            f'REFERENCES "{spec["target"]}" (id)'
        )
        return
    ops.add_column(op.entity, column)


def _add_foreign_key(
    ops: Operations, op: Operation, target: Catalog, sqlite: bool, _new: set[str]
) -> None:
    field = str(op.field)
    ops.create_index(index_name("ix", op.entity, field), op.entity, [field])
    if sqlite:
        return
    ops.create_foreign_key(
        index_name("fk", op.entity, field),
        op.entity,
        str(op.detail["target"]),
        [field],
        ["id"],
    )


def _add_unique(
    ops: Operations, op: Operation, target: Catalog, sqlite: bool, _new: set[str]
) -> None:
    field = str(op.field)
    ops.create_index(
        index_name("uq", op.entity, field), op.entity, [field], unique=True
    )


def _drop_unique(
    ops: Operations, op: Operation, target: Catalog, sqlite: bool, _new: set[str]
) -> None:
    ops.drop_index(index_name("uq", op.entity, str(op.field)), table_name=op.entity)


def _rename_fields(ops: Operations, renames: list[Operation]) -> None:
    """Rename columns in two steps, so that names may be swapped or passed on."""
    sqlite = is_sqlite(ops.get_bind())
    for number, op in enumerate(renames):
        old = str(op.detail["old"])
        for prefix in _index_prefixes(op):
            ops.drop_index(index_name(prefix, op.entity, old), table_name=op.entity)
        if op.detail.get("lookup") and not sqlite:
            _rename_constraint(
                ops,
                op.entity,
                index_name("fk", op.entity, old),
                f"tc_rename_fk_{number}",
            )
        ops.execute(
            f'ALTER TABLE "{op.entity}" RENAME COLUMN "{old}" TO "tc_rename_{number}"'
        )
        _rename_sequence(ops, op.entity, old, f"tc_rename_{number}")
    for number, op in enumerate(renames):
        new = str(op.field)
        ops.execute(
            f'ALTER TABLE "{op.entity}" RENAME COLUMN "tc_rename_{number}" TO "{new}"'
        )
        if op.detail.get("lookup") and not sqlite:
            _rename_constraint(
                ops,
                op.entity,
                f"tc_rename_fk_{number}",
                index_name("fk", op.entity, new),
            )
        for prefix in _index_prefixes(op):
            ops.create_index(
                index_name(prefix, op.entity, new),
                op.entity,
                [new],
                unique=prefix == "uq",
            )
        _rename_sequence(ops, op.entity, f"tc_rename_{number}", new)


def _rename_constraint(ops: Operations, table: str, old: str, new: str) -> None:
    ops.execute(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{old}" TO "{new}"')


def _rename_sequence(ops: Operations, entity: str, old: str, new: str) -> None:
    ops.execute(
        sequences.update()
        .where(sequences.c.entity == entity, sequences.c.field == old)
        .values(field=new)
    )


def _index_prefixes(op: Operation) -> list[str]:
    prefixes = []
    if op.detail.get("lookup"):
        prefixes.append("ix")
    if op.detail.get("unique"):
        prefixes.append("uq")
    return prefixes


def _backfill_autonumber(
    ops: Operations, op: Operation, target: Catalog, sqlite: bool, _new: set[str]
) -> None:
    from .numbering import backfill

    backfill(ops.get_bind(), target.entities[op.entity], str(op.field))


def _add_search_index(
    ops: Operations, op: Operation, target: Catalog, sqlite: bool, _new: set[str]
) -> None:
    search_index.create_index(ops.get_bind(), op.entity, str(op.field))


def _drop_search_index(
    ops: Operations, op: Operation, target: Catalog, sqlite: bool, _new: set[str]
) -> None:
    search_index.drop_index(ops.get_bind(), op.entity)


_Handler = Callable[[Operations, Operation, Catalog, bool, set[str]], None]
_HANDLERS: dict[str, _Handler] = {
    "create_table": _create_table,
    "add_column": _add_column,
    "add_foreign_key": _add_foreign_key,
    "add_unique": _add_unique,
    "drop_unique": _drop_unique,
    "backfill_autonumber": _backfill_autonumber,
    "add_search_index": _add_search_index,
    "drop_search_index": _drop_search_index,
}


def purge_column(connection: sa.Connection, entity: EntityDef, field: str) -> None:
    """Drop a hidden field's column, with its indexes and constraints."""
    spec = entity.hidden_fields[field]
    ops = Operations(MigrationContext.configure(connection))
    inspector = sa.inspect(connection)
    for index in inspector.get_indexes(entity.name):
        if field in index["column_names"] and index["name"]:
            ops.drop_index(index["name"], table_name=entity.name)
    if is_sqlite(connection) and spec["type"] == "lookup":
        # SQLite cannot drop a column that a foreign key names: rebuild the table
        # (the caller has turned foreign keys off for it, see metastore).
        last = connection.execute(
            sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"),
            {"t": entity.name},
        ).scalar()
        with ops.batch_alter_table(
            entity.name,
            recreate="always",
            table_kwargs={"sqlite_autoincrement": True},
        ) as batch:
            batch.drop_column(field)
        # The copy starts a new counter at the highest id left; keep the old one so
        # that the ids of deleted records stay unused.
        connection.execute(
            sa.text("UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = :t"),
            {"seq": int(last or 0), "t": entity.name},
        )
        # The copy's indexes are reflected ones, and reflection drops the NOCASE
        # collation of the search index.
        search_index.rebuild_index(
            connection, entity.name, search_field(entity.document)
        )
        return
    for foreign_key in inspector.get_foreign_keys(entity.name):
        if field in foreign_key["constrained_columns"] and foreign_key["name"]:
            ops.drop_constraint(foreign_key["name"], entity.name, type_="foreignkey")
    ops.execute(f'ALTER TABLE "{entity.name}" DROP COLUMN "{field}"')
    ops.execute(
        sequences.delete().where(
            sequences.c.entity == entity.name, sequences.c.field == field
        )
    )


def drop_table(connection: sa.Connection, entity: EntityDef) -> None:
    """Drop a removed entity's table and its sequences."""
    ops = Operations(MigrationContext.configure(connection))
    ops.drop_table(entity.name)
    ops.execute(sequences.delete().where(sequences.c.entity == entity.name))
