"""The index behind lookup type-ahead: display names searched by prefix, any case.

Every entity whose display field holds text has one such index, ``sx_<entity>``. The
plan creates it with the entity and moves it when the display field changes (see
:func:`tailorcrm.metadata.search_field`); databases made before it existed get
theirs when the platform starts. :func:`name_condition` is the query side; the two
halves must change together.

PostgreSQL indexes ``lower(name) text_pattern_ops``, so ``lower(name) LIKE 'ab%'``
is an index range whatever the database's collation.

SQLite is indexed on ``name COLLATE NOCASE`` instead of ``lower(name)``, on purpose.
The engine replaces SQLite's ASCII-only ``lower`` with Python's ``str.lower`` on its
own connections (see :func:`.db.create_engine`), so an index on ``lower(name)``
would hold keys that only those connections compute. Any other client of the file
(the ``sqlite3`` shell, a BI tool, a repair script) uses the built-in ``lower``
when it writes a row; for a name with a non-ASCII capital its key differs, and the
index no longer matches the table: SQLite then reports a corrupt index, or a search
misses the row. A Python release with newer Unicode tables could do the same. A
NOCASE index is computed alike by every SQLite there is. NOCASE folds ASCII letters
only, so the query narrows with NOCASE ranges built from the ASCII start of the
prefix and keeps the exact test, the engine's Unicode ``lower``, as a filter on the
rows the ranges find.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from ..metadata import Catalog, search_field
from .db import is_sqlite

log = logging.getLogger(__name__)

#: Non-ASCII characters whose lower case starts with an ASCII letter. Python's
#: ``str.lower`` maps the Kelvin sign to "k", and the capital I with a dot above to
#: "i" followed by a combining dot; a test checks this table against Python.
ASCII_LOWERING = {"k": "\u212a", "i": "\u0130"}
COMBINING_DOT = "\u0307"
# Each Kelvin sign or dotted I a prefix may stand for doubles the ranges; past this
# many the rest of the prefix is left to the filter.
MAX_RANGES = 4


def index_name(entity: str) -> str:
    # Entity names are at most 48 characters, so this fits PostgreSQL's 63.
    return f"sx_{entity}"


def create_index(connection: sa.Connection, entity: str, field: str) -> None:
    """Create ``entity``'s search index on ``field`` (names are checked identifiers)."""
    name = index_name(entity)
    if is_sqlite(connection):
        expression = f'"{field}" COLLATE NOCASE'
    else:
        expression = f'lower("{field}") text_pattern_ops'
    connection.exec_driver_sql(f'CREATE INDEX "{name}" ON "{entity}" ({expression})')


def drop_index(connection: sa.Connection, entity: str) -> None:
    connection.exec_driver_sql(f'DROP INDEX IF EXISTS "{index_name(entity)}"')


def rebuild_index(connection: sa.Connection, entity: str, field: str | None) -> None:
    """Create the index again, e.g. after a SQLite table rebuild lost its collation."""
    drop_index(connection, entity)
    if field is not None:
        create_index(connection, entity, field)


def missing_indexes(
    connection: sa.Connection, catalog: Catalog
) -> dict[str, str | None]:
    """Return ``{entity: display field}`` for each entity that lacks its index, and
    ``{entity: None}`` for each whose index its display field no longer gets (one
    made before display fields too long for an index entry went without).

    Removed entities count: their tables stay, and a restore brings them back
    without a new plan for the index.
    """
    if is_sqlite(connection):
        query = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        query = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    existing = set(connection.exec_driver_sql(query).scalars())
    missing: dict[str, str | None] = {}
    for entity in catalog.entities.values():
        field = search_field(entity.document)
        if (index_name(entity.name) in existing) != (field is not None):
            missing[entity.name] = field
    return missing


def create_missing_indexes(connection: sa.Connection, catalog: Catalog) -> list[str]:
    """Create every missing search index, and drop every one whose display field
    no longer gets it; return the entities whose index changed."""
    missing = missing_indexes(connection, catalog)
    for entity, field in sorted(missing.items()):
        if field is None:
            drop_index(connection, entity)
            log.info("dropped search index %s", index_name(entity))
            continue
        create_index(connection, entity, field)
        log.info("created search index %s on %s.%s", index_name(entity), entity, field)
    return sorted(missing)


def prefix_ranges(folded: str) -> list[tuple[str, str]]:
    """Return NOCASE ranges that together hold every text whose lower case starts
    with ``folded`` (itself lower case).

    The ranges cover the ASCII start of the prefix; an empty list means no range
    applies (the prefix is blank or starts with another character).
    """
    stems = [""]
    for position, char in enumerate(folded):
        if not char.isascii():
            break
        spellings = [char]
        special = ASCII_LOWERING.get(char)
        rest = folded[position + 1 :]
        # The dotted I lowers to two characters: it can stand for an "i" only at
        # the end of the prefix or before the combining dot.
        if special == "\u0130" and rest[:1] not in ("", COMBINING_DOT):
            special = None
        if special is not None:
            spellings.append(special)
        if len(stems) * len(spellings) > MAX_RANGES:
            break
        stems = [stem + spelling for stem in stems for spelling in spellings]
    return [(stem, stem[:-1] + chr(ord(stem[-1]) + 1)) for stem in stems if stem]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def name_conditions(
    connection: sa.Connection,
    column: sa.ColumnElement[str],
    text: str,
    *,
    exact: bool = False,
) -> list[sa.ColumnElement[bool]]:
    """Return "``column`` starts with (or is) ``text``, any case", in parts.

    Each part is served by one range of the entity's search index, and the parts
    never overlap, so a caller may query them one by one and put the results
    together (SQLite scans the whole index for an ``OR`` of ranges when it must
    also sort). There is one part except on SQLite, for a prefix that may stand
    for a Kelvin sign or a dotted capital I.
    """
    folded = text.lower()
    lowered = sa.func.lower(column)
    if exact:
        test = lowered == folded
    elif is_sqlite(connection):
        test = lowered.like(_escape_like(folded) + "%", escape="\\")
    else:
        # PostgreSQL's LIKE escapes with a backslash already; a pattern that is a
        # plain value lets the planner turn its fixed start into an index range.
        test = lowered.like(_escape_like(folded) + "%")
    ranges = prefix_ranges(folded) if is_sqlite(connection) else []
    if not ranges:
        return [test]
    nocase = column.collate("NOCASE")
    return [sa.and_(nocase >= low, nocase < high, test) for low, high in ranges]


def name_order(
    connection: sa.Connection, column: sa.ColumnElement[str]
) -> sa.ColumnElement[str]:
    """Order by name, ignoring case (on SQLite, in the index's own order)."""
    if is_sqlite(connection):
        return column.collate("NOCASE")
    return sa.func.lower(column)
