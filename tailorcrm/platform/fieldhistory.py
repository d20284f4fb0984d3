"""Field history: who changed which field of a record, when, and by which path.

The record service writes it in the transaction of every save (DESIGN.md principle
6), one statement per save whatever the number of fields or records (on
PostgreSQL, one per document of at most 1,000 rows; see :func:`_insert`): an update
adds a row per changed field, a creation one row (not one per field, so that an
import of many rows stays one bulk insert), a deletion one row holding the values
the record had. Values are kept in their API form (:func:`~tailorcrm.metadata.to_json`).
Inside :func:`batched`, the rows of one save and of what its roll-ups and formulas
recompute are kept back and written together by one statement.

Each row says which path the change came by (:data:`VIAS`): the service's
``via`` for what the caller asked, ``rule`` for what a formula or roll-up
recomputed.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from ..errors import BadRequest, NotFound
from ..metadata import INTEGER_LIMIT, EntityDef, ascii_digits, to_json
from . import direct
from .db import field_history, utcnow

if TYPE_CHECKING:
    from .records import RecordService

#: The paths a change can come by.
VIAS = ("api", "web", "import", "automation", "rule", "system")
#: The owner is a system column that saves may change; its history is kept
#: under this name.
OWNER = "owner_id"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


# -- writing -----------------------------------------------------------------------

#: Every column a history row is written with; rows kept back for one statement
#: are given all of them (a blank one is NULL, as when it is left out).
_COLUMNS = (
    "entity",
    "record_id",
    "at",
    "user_id",
    "username",
    "via",
    "kind",
    "field",
    "field_id",
    "old",
    "new",
)


@contextmanager
def batched(service: RecordService) -> Iterator[None]:
    """Keep back the history rows ``service`` writes, and write them together
    when the block ends without an error (:func:`flush` writes them earlier).

    A block inside another one leaves the rows to the outer block. When the block
    fails, the rows kept back are dropped: the save they describe did not happen.
    """
    if service.history_rows is not None:
        yield
        return
    service.history_rows = []
    try:
        yield
        flush(service)
    finally:
        service.history_rows = None


def flush(service: RecordService) -> None:
    """Write the history rows kept back so far, in the order they were noted."""
    rows = service.history_rows
    if not rows:
        return
    found = list(rows)
    rows.clear()
    _insert(service.connection, found)


#: On SQLite, up to this many history rows go in one multi-row ``INSERT`` run
#: straight on the driver; more go faster by ``executemany``.
_ROWS_AT_ONCE = 8
#: On PostgreSQL, history rows go as one JSON document of at most this many,
#: and of at most this many characters (more than one row's, if it is longer):
#: a statement's parameter holds at most 1 GB, and rows of long texts (a formula
#: copying a lookup's text into a thousand records) would outgrow it.
_ROWS_PER_DOCUMENT = 1000
_DOCUMENT_LENGTH = 8_000_000


def _insert(connection: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert history ``rows`` (a missing column is NULL), in their order.

    A save writes a few rows: one per changed field, and those its roll-ups and
    formulas recompute. SQLAlchemy's ``executemany`` costs more than so few rows
    themselves, most on PostgreSQL, where it runs a pipeline, and where a
    multi-row ``INSERT`` of more than 4 rows has more parameters than psycopg
    keeps parsed statements for. So on PostgreSQL the rows are sent as one JSON
    document (more, for many rows or long ones: see :func:`_documents`) that
    ``json_populate_recordset`` spreads into the table's columns (a JSON null is
    NULL there, as a blank is in the history); on SQLite a few rows
    are bound into one ``INSERT … VALUES (…), (…)``, and more go by
    ``executemany``. Statements run on the driver (see :mod:`.direct`).
    """
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        for document in _documents(rows):
            direct.run(connection, _insert_document(), {"rows": document})
        return
    if len(rows) > _ROWS_AT_ONCE:
        found = [{name: row.get(name) for name in _COLUMNS} for row in rows]
        connection.execute(_insert_history(), found)
        return
    # The values are bound as the column types would bind them, worked out here:
    # rows of one save share their time, written once, and numbers, the usual
    # old and new values, need no JSON encoder.
    time_text = _time_text(connection.dialect)
    times: dict[Any, Any] = {}
    values: list[Any] = []
    for row in rows:
        at = row.get("at")
        text = times.get(at)
        if text is None:
            text = times[at] = time_text(at)
        get = row.get
        values += (
            get("entity"),
            get("record_id"),
            text,
            get("user_id"),
            get("username"),
            get("via"),
            get("kind"),
            get("field"),
            get("field_id"),
            _json_text(get("old")),
            _json_text(get("new")),
        )
    parameters = dict(zip(_bind_names(len(rows)), values, strict=True))
    direct.run(connection, _insert_rows(len(rows)), parameters)


def _json_text(value: Any) -> str | None:
    """A history value as the JSON column binds it (SQL NULL for None), the
    encoder spared for whole numbers and finite floats, which it writes as
    Python does."""
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value)


@functools.cache
def _time_text(dialect: Dialect) -> Callable[[Any], Any]:
    """How the dialect binds a history row's time (as it binds any date-time)."""
    column = field_history.c.at
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else _unchanged


def _unchanged(value: Any) -> Any:
    return value


@functools.lru_cache(maxsize=_ROWS_AT_ONCE)
def _bind_names(count: int) -> tuple[str, ...]:
    """The names :func:`_insert_rows` binds ``count`` rows' values as, row after
    row, each in the order of :data:`_COLUMNS`."""
    return tuple(f"{name}_{index}" for index in range(count) for name in _COLUMNS)


def _documents(rows: list[dict[str, Any]]) -> Iterator[str]:
    """``rows`` as JSON arrays, in their order, each within the bounds of
    :data:`_ROWS_PER_DOCUMENT` rows and :data:`_DOCUMENT_LENGTH` characters."""
    found: list[str] = []
    length = 0
    encode = _encoder().encode
    for row in rows:
        text = encode({name: row.get(name) for name in _COLUMNS})
        if found and (
            len(found) == _ROWS_PER_DOCUMENT or length + len(text) > _DOCUMENT_LENGTH
        ):
            yield f"[{', '.join(found)}]"
            found, length = [], 0
        found.append(text)
        length += len(text) + 2
    if found:
        yield f"[{', '.join(found)}]"


@functools.cache
def _encoder() -> json.JSONEncoder:
    return json.JSONEncoder(default=_json_time, ensure_ascii=False)


def _json_time(value: Any) -> str:
    """A date-time of a history row (its ``at``) in a JSON document, as
    PostgreSQL reads a timestamp; any other value that JSON cannot hold is
    refused."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a history value")


@functools.cache
def _insert_history() -> sa.Insert:
    return field_history.insert()


class _AsBound(sa.types.UserDefinedType[Any]):
    """A bind of a value already in the form the driver takes."""

    cache_ok = True


_AS_BOUND = _AsBound()


@functools.lru_cache(maxsize=_ROWS_AT_ONCE)
def _insert_rows(count: int) -> sa.Insert:
    """The insert of ``count`` history rows, column ``name`` of row ``i`` bound
    as ``name_i``, with its value as the column type binds it (see
    :func:`_insert`): the binds themselves process nothing."""
    return field_history.insert().values(
        [
            {
                name: sa.bindparam(f"{name}_{index}", type_=_AS_BOUND)
                for name in _COLUMNS
            }
            for index in range(count)
        ]
    )


@functools.cache
def _insert_document() -> sa.Insert:
    """The insert of the history rows of the JSON array bound as ``rows``, in
    their order (PostgreSQL)."""
    spread = sa.func.json_populate_recordset(
        sa.literal_column(f"NULL::{field_history.name}"),
        sa.cast(sa.bindparam("rows", type_=sa.Text()), postgresql.JSON),
    ).table_valued(*_COLUMNS, with_ordinality="ordinality")
    rows = sa.select(*(spread.c[name] for name in _COLUMNS)).order_by(
        spread.c.ordinality
    )
    return field_history.insert().from_select(list(_COLUMNS), rows)


def _write(service: RecordService, rows: list[dict[str, Any]]) -> None:
    if service.history_rows is not None:
        service.history_rows += rows
    else:
        _insert(service.connection, rows)


def _base(service: RecordService, entity: EntityDef, kind: str) -> dict[str, Any]:
    return {
        "entity": entity.name,
        "at": utcnow(),
        "user_id": service.actor.user_id,
        "username": service.actor.username,
        "via": service.via,
        "kind": kind,
    }


def record_created(
    service: RecordService, entity: EntityDef, rows: Iterable[Mapping[str, Any]]
) -> None:
    """Note the creation of ``rows`` (stored, with their ids): one history row each.

    Many rows are copied from the records themselves by one ``INSERT ... SELECT``:
    binding every history row from Python would cost an import of many rows about
    a third of its speed.
    """
    ids = [int(row["id"]) for row in rows]
    if not ids:
        return
    connection = service.connection
    base = _base(service, entity, "create")
    dialect = connection.dialect.name
    if len(ids) == 1 or dialect not in ("sqlite", "postgresql"):
        _write(service, [{**base, "record_id": record_id} for record_id in ids])
        return
    # The rows kept back so far go first, so that the history keeps its order.
    flush(service)
    if dialect == "postgresql":
        statement = _created_from(entity.table, by_range=False)
        connection.execute(statement, {**base, "ids": ids})
    elif ids == list(range(ids[0], ids[0] + len(ids))):
        # On SQLite the ids of a batch are one run (see records._execute_insert).
        statement = _created_from(entity.table, by_range=True)
        connection.execute(statement, {**base, "first": ids[0], "last": ids[-1]})
    else:
        _insert(connection, [{**base, "record_id": record_id} for record_id in ids])


@functools.lru_cache(maxsize=1024)
def _created_from(table: sa.Table, *, by_range: bool) -> sa.Insert:
    """Creation rows for the records of ``table`` whose ids are bound as ``first``
    to ``last``, or (PostgreSQL) as the array ``ids``."""
    where: sa.ColumnElement[bool]
    if by_range:
        where = table.c.id.between(sa.bindparam("first"), sa.bindparam("last"))
    else:
        ids = sa.bindparam("ids", type_=postgresql.ARRAY(sa.BigInteger()))
        where = table.c.id == sa.any_(ids)
    history = field_history.c
    copied = [
        history.entity,
        history.at,
        history.user_id,
        history.username,
        history.via,
        history.kind,
    ]
    values: list[sa.ColumnElement[Any]] = [
        sa.bindparam(c.name, type_=c.type) for c in copied
    ]
    if not by_range:
        # PostgreSQL cannot tell the type of a parameter in a select list.
        values = [sa.cast(value, value.type) for value in values]
    rows = sa.select(table.c.id, *values).where(where)
    return field_history.insert().from_select([history.record_id, *copied], rows)


def record_changed(
    service: RecordService,
    entity: EntityDef,
    before: Mapping[str, Any],
    changed: Mapping[str, Any],
    *,
    computed: Collection[str] = (),
) -> None:
    """Note each field of ``changed`` (name -> new stored value) that differs from
    ``before``, the stored row.

    :param computed: fields a formula or roll-up computes; their rows say ``rule``.
    """
    base = {**_base(service, entity, "update"), "record_id": before["id"]}
    found = []
    for name, value in changed.items():
        spec = entity.fields.get(name)
        if spec is None and name != OWNER:
            continue
        old, new = before.get(name), value
        if spec is not None:
            old, new = to_json(spec, old), to_json(spec, new)
        if old == new:
            continue
        via = "rule" if name in computed else base["via"]
        found.append(
            {
                **base,
                "via": via,
                "field": name,
                "field_id": spec.get("id") if spec is not None else None,
                "old": old,
                "new": new,
            }
        )
    if found:
        # Read newest first, the fields of one save then come in the order the
        # entity lists them.
        found.reverse()
        _write(service, found)


def records_recomputed(
    service: RecordService,
    entity: EntityDef,
    changes: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    via: str = "rule",
) -> None:
    """Note what formulas and roll-ups wrote: ``changes`` holds, per record, its
    row before and the fields written."""
    base = {**_base(service, entity, "update"), "via": via}
    found = []
    for before, written in changes:
        for name, value in written.items():
            spec = entity.fields.get(name)
            if spec is None:
                continue
            old, new = to_json(spec, before.get(name)), to_json(spec, value)
            if old == new:
                continue
            found.append(
                {
                    **base,
                    "record_id": before["id"],
                    "field": name,
                    "field_id": spec.get("id"),
                    "old": old,
                    "new": new,
                }
            )
    if found:
        _write(service, found)


def record_deleted(
    service: RecordService, entity: EntityDef, row: Mapping[str, Any]
) -> None:
    """Note a deletion, with the values the record had (by field id)."""
    values = {
        spec.get("id") or name: to_json(spec, row.get(name))
        for name, spec in entity.fields.items()
    }
    values[OWNER] = row.get(OWNER)
    _write(
        service,
        [{**_base(service, entity, "delete"), "record_id": row["id"], "old": values}],
    )


def lookups_cleared(
    service: RecordService,
    entity: EntityDef,
    field: str,
    where: sa.ColumnElement[bool],
) -> None:
    """Note the records whose lookup ``field`` a deletion is about to clear."""
    table = entity.table
    spec = entity.fields[field]
    rows = service.connection.execute(
        sa.select(table.c.id, table.c[field]).where(where)
    ).all()
    base = {**_base(service, entity, "update"), "field": field, "new": None}
    found = [
        {**base, "record_id": record_id, "field_id": spec.get("id"), "old": old}
        for record_id, old in rows
    ]
    if found:
        _write(service, found)


# -- reading -----------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One change of one record, as a reader may see it."""

    id: int
    at: dt.datetime
    user_id: int | None
    username: str
    via: str
    kind: str
    #: The field's current name (the name it had then, if it was removed);
    #: ``None`` for a creation or deletion.
    field: str | None
    old: Any
    new: Any
    #: Whether the field was removed from the entity since.
    removed: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The API form of the entry."""
        return {
            "at": self.at.isoformat() + "Z",
            "user": {"id": self.user_id, "username": self.username},
            "via": self.via,
            "kind": self.kind,
            "field": self.field,
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    #: Where the next (older) page starts; ``None`` on the last page.
    next_cursor: str | None


def parse_page_args(
    limit: str | None, cursor: str | None, *, default: int = DEFAULT_LIMIT
) -> tuple[int, int | None]:
    """Read ``limit`` and ``cursor`` as a request gives them.

    :raises BadRequest: either is not a positive whole number, or the limit is
        above :data:`MAX_LIMIT`.
    """
    size = default
    if limit not in (None, ""):
        if not ascii_digits(limit) or not 0 < int(limit[:6]) <= MAX_LIMIT:
            raise BadRequest.parameter(
                "limit", f"give a whole number from 1 to {MAX_LIMIT}."
            )
        size = int(limit)
    after = None
    if cursor not in (None, ""):
        if not ascii_digits(cursor) or len(cursor) > 18 or int(cursor) == 0:
            raise BadRequest.parameter(
                "cursor", "give the cursor of the previous page."
            )
        after = int(cursor)
    return size, after


def read_history(
    connection: sa.Connection,
    entity: EntityDef,
    record_id: int,
    *,
    fields: Collection[str] | None = None,
    removed: bool = False,
    limit: int = DEFAULT_LIMIT,
    before: int | None = None,
) -> HistoryPage:
    """One page of a record's history, newest first.

    It checks no access: see :func:`record_history`.

    :param fields: names of the fields the reader may see (``owner_id`` for the
        owner); entries of other fields are left out. Default: every live field
        and the owner.
    :param removed: keep entries of fields removed from the entity since (for
        administrators).
    :param before: the cursor of the previous page: entries older than it.
    """
    allowed = set(entity.fields) | {OWNER} if fields is None else set(fields)
    ids = {
        str(spec["id"]): name for name, spec in entity.fields.items() if "id" in spec
    }
    table = field_history
    kept: list[sa.ColumnElement[bool]] = [table.c.field.is_(None)]
    if OWNER in allowed:
        kept.append(sa.and_(table.c.field == OWNER, table.c.field_id.is_(None)))
    shown = [key for key, name in ids.items() if name in allowed]
    if shown:
        kept.append(table.c.field_id.in_(shown))
    if removed:
        kept.append(
            table.c.field_id.not_in(list(ids)) if ids else table.c.field_id.isnot(None)
        )
    query = (
        sa.select(table)
        .where(
            table.c.entity == entity.name,
            table.c.record_id == record_id,
            sa.or_(*kept),
        )
        .order_by(table.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(table.c.id < before)
    rows = connection.execute(query).mappings().all()
    entries = [_entry(row, entity, ids, allowed, removed) for row in rows[:limit]]
    following = str(rows[limit - 1]["id"]) if len(rows) > limit else None
    return HistoryPage(entries, following)


def _entry(
    row: Mapping[Any, Any],
    entity: EntityDef,
    ids: Mapping[str, str],
    allowed: Collection[str],
    removed: bool,
) -> HistoryEntry:
    field = row["field"]
    gone = False
    if row["field_id"] is not None:
        field = ids.get(row["field_id"], field)
        gone = row["field_id"] not in ids
    old = row["old"]
    if row["kind"] == "delete" and isinstance(old, dict):
        old = _snapshot(old, entity, ids, allowed, removed)
    return HistoryEntry(
        id=int(row["id"]),
        at=row["at"],
        user_id=row["user_id"],
        username=row["username"],
        via=row["via"],
        kind=row["kind"],
        field=field,
        old=old,
        new=row["new"],
        removed=gone,
    )


def _snapshot(
    values: Mapping[str, Any],
    entity: EntityDef,
    ids: Mapping[str, str],
    allowed: Collection[str],
    removed: bool,
) -> dict[str, Any]:
    """A deleted record's values by current field name, those the reader may see."""
    shown: dict[str, Any] = {}
    hidden = {spec.get("id"): name for name, spec in entity.hidden_fields.items()}
    for key, value in values.items():
        name = OWNER if key == OWNER else ids.get(key)
        if name is None and removed:
            shown[hidden.get(key, key)] = value
        elif name is not None and name in allowed:
            shown[name] = value
    return shown


def has_history(connection: sa.Connection, entity: EntityDef, record_id: int) -> bool:
    table = field_history
    found = connection.execute(
        sa.select(table.c.id)
        .where(table.c.entity == entity.name, table.c.record_id == record_id)
        .limit(1)
    ).first()
    return found is not None


def record_history(
    service: RecordService,
    entity_name: str,
    record_id: int,
    *,
    admin: bool,
    fields: Collection[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    before: int | None = None,
) -> HistoryPage:
    """One page of a record's history, for a reader who may read the record.

    The record is read through ``service.get``, the check every read of one
    record goes through; a deleted record's history is left to administrators.

    :param admin: the reader is an administrator: entries of removed fields
        are kept, and a deleted record's history can be read.
    :param fields: see :func:`read_history`.
    :raises NotFound: no such entity or record (or a deleted one, for others
        than administrators).
    """
    entity = service.catalog.entity(entity_name)
    view = service.view.entities.get(entity_name)
    if fields is None and view is not None and view.access is not None:
        # Fields the caller's roles hide are left out of the history too.
        fields = [*view.fields, OWNER]
    try:
        service.get(entity_name, record_id)
    except NotFound:
        # An id past the database's range names no record, deleted or not.
        if (
            not admin
            or not 0 < record_id <= INTEGER_LIMIT
            or not has_history(service.connection, entity, record_id)
        ):
            raise
    return read_history(
        service.connection,
        entity,
        record_id,
        fields=fields,
        removed=admin,
        limit=limit,
        before=before,
    )
