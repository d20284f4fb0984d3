"""CSV export, shared by ``tailorcrm export`` and the web pages' export links.

Records are read through the query builder a page at a time, so an export of any
size holds one page in memory and sees the same records a list shows. Each value is
written the way the importer reads it back: blank for null, ``true``/``false``,
multi-picklist values joined by ``;``, numbers in fixed-point notation. An exported
file therefore imports again unchanged.

Cells that start with ``=``, ``+``, ``-`` or ``@`` are written as they are. A
spreadsheet may read such a cell as a formula ("CSV injection"); prefixing it with
a quote, the usual guard, would change the value and break the round trip through
the importer (a phone number ``+49 30 1234`` would come back as ``'+49 30 1234``).
Whoever opens an export in a spreadsheet should import it as text there.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, TextIO

import sqlalchemy as sa

from ..errors import Forbidden
from ..metadata import EntityDef
from .query import ListQuery, count_list, run_list

#: Records read per statement while exporting.
EXPORT_PAGE = 1000
#: Characters of CSV text handed on at a time while streaming.
CHUNK_SIZE = 64 * 1024
#: System columns written after the entity's fields.
SYSTEM_COLUMNS = ("created_at", "updated_at", "owner_id")


def export_columns(entity: EntityDef) -> list[str]:
    """Return the columns of an export: ``id``, every field, then system columns."""
    return ["id", *entity.fields, *SYSTEM_COLUMNS]


def check_export(entity: EntityDef) -> None:
    """:raises Forbidden: the caller may not export records of ``entity``."""
    if entity.access is not None and entity.access.scope("export") == "none":
        raise Forbidden(f"You may not export {entity.label} records.")


def export_limit(entity: EntityDef) -> str:
    """Why an export may hold fewer of the records than the caller reads, or ``""``.

    An export reaches the records the caller may read within the export scope,
    so a scope of ``own`` or ``team`` leaves out the others a list shows.
    """
    scope = "all" if entity.access is None else entity.access.scope("export")
    if scope == "own":
        return "you may export only the ones you own"
    if scope == "team":
        return "you may export only the ones you or your teammates own"
    return ""


def left_out_of_export(
    connection: sa.Connection, entity: EntityDef, query: ListQuery, listed: int
) -> int:
    """How many of the ``listed`` records ``query`` selects an export leaves out;
    counted only where the export scope is narrower than what the caller reads."""
    access = entity.access
    if not listed or access is None or access.exports_what_it_reads():
        return 0
    exported = replace(query, operation="export", cursor=None)
    return listed - count_list(connection, entity, exported)


def export_records(
    connection: sa.Connection, entity: EntityDef, query: ListQuery | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records ``query`` selects (every record by default), page by page.

    The query's filters, condition and sort apply; its limit, cursor and count are
    replaced, so the whole selection is read from its start. Only the records the
    caller may export are read (see :func:`check_export`).
    """
    check_export(entity)
    query = query or ListQuery()
    query.operation = "export"
    query.limit = EXPORT_PAGE
    query.cursor = None
    query.count = False
    query.fields = None
    while True:
        page = run_list(connection, entity, query)
        yield from page.records
        if page.next_cursor is None:
            return
        query.cursor = page.next_cursor


def csv_cell(value: Any) -> str:
    """Return a value of a record (in its API form) as the text of one CSV cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    if isinstance(value, float):
        # Fixed-point, never '6.629e-05': the importer reads plain decimals only.
        return format(Decimal(repr(value)), "f")
    return str(value)


def csv_writer(stream: TextIO) -> Any:
    """A CSV writer whose every value the importer reads back as one value.

    Lines end in CRLF, as RFC 4180 has it: Python's writer quotes a value for
    the line breaks its line ending holds, and the importer takes a carriage
    return alone for the end of a line, so a value holding one must be quoted.
    """
    return csv.writer(stream, lineterminator="\r\n")


def csv_lines(
    columns: Sequence[str], records: Iterable[dict[str, Any]]
) -> Iterator[str]:
    """Yield CSV text: the header line first, then the records in chunks.

    Chunks of about :data:`CHUNK_SIZE` characters suit a streamed response.
    """
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow(columns)
    yield _take(buffer)
    for record in records:
        writer.writerow([csv_cell(record[column]) for column in columns])
        if buffer.tell() >= CHUNK_SIZE:
            yield _take(buffer)
    if buffer.tell():
        yield _take(buffer)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
