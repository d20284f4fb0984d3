"""List actions: CSV export and actions on selected rows.

Exports stream: records are read through the query builder a page at a time and
written as they come, in the cell format of ``tailorcrm export`` (see
:mod:`..exporting`), so an export of any size holds one page in memory. Deleting
selected rows asks first, listing each record and what refers to it, then deletes
all of them through the record service or none.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from flask import flash, redirect, request, stream_with_context
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from ...errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    TailorError,
    ValidationFailed,
)
from ...metadata import EntityDef, ascii_digits
from .._app import Session
from ..exporting import (
    check_export,
    csv_lines,
    export_columns,
    export_limit,
    export_records,
)
from ..query import ListQuery, access_where, names_of, parse_list_args
from ._blueprint import web
from ._context import LINKS, reasons, render, web_session
from ._listing import (
    POSITION_PARAMS,
    active_view,
    build_query,
    list_args,
    list_href,
    plural,
    view_pairs,
)

#: The most rows one action on selected rows takes.
MAX_SELECTED = 500


@web.get("/app/<entity_name>/export.csv")
@login_required
def export_csv(entity_name: str) -> Response:
    """The list as filtered, searched and sorted, every page of it, as CSV."""

    def query_of(session: Session, entity: EntityDef) -> ListQuery:
        layout = session.catalog.layout(entity.name)
        params = request.args
        if set(params) == {"view"} and params["view"]:
            # A view's own address, as the list page opens it: its filters,
            # search and sort as saved.
            params = MultiDict(view_pairs(entity, _exported_view(session, entity)))
        args = list_args(entity, layout, params)
        args.pop("cursor", None)
        return build_query(session, entity, args, params.get("q", ""))

    return _csv_response(entity_name, f"{entity_name}.csv", query_of)


def _exported_view(session: Session, entity: EntityDef) -> Mapping[str, Any]:
    """The saved view an export's address names.

    :raises NotFound: this user sees no such view of ``entity``; nothing is
        exported rather than every record.
    """
    try:
        view = active_view(session, entity, request.args)
    except NotFound:
        view = None
    if view is None:
        raise NotFound(f"That view does not exist for {plural(entity)}.")
    return view


@web.post("/app/<entity_name>/bulk")
@login_required
def bulk_action(entity_name: str) -> Response:
    """Act on the rows ticked on a list page.

    ``export`` answers with their CSV; ``delete`` shows what deleting them would
    do; ``delete_confirmed`` deletes them all, or none when one cannot go.
    """
    ids = _selected()
    action = request.form.get("action", "")
    back = _back(entity_name)
    if not ids:
        flash("Select at least one row first.", "error")
        return redirect(back, code=303)
    if len(ids) > MAX_SELECTED:
        flash(f"Select at most {MAX_SELECTED} rows at a time.", "error")
        return redirect(back, code=303)
    if action == "export":
        refusal = _unexportable(entity_name, ids)
        if refusal:
            flash(refusal, "error")
            return redirect(back, code=303)
        state = MultiDict(_state())

        def selected(session: Session, entity: EntityDef) -> ListQuery:
            # The rows come in the order the list showed them.
            layout = session.catalog.layout(entity.name)
            args = {"id__in": [",".join(str(i) for i in ids)]}
            sort = list_args(entity, layout, state).get("sort")
            if sort:
                args["sort"] = sort
            return parse_list_args(entity, args)

        return _csv_response(entity_name, f"{entity_name}-selected.csv", selected)
    if action == "delete":
        return _confirm_delete(entity_name, ids, back)
    if action == "delete_confirmed":
        return _delete(entity_name, ids, back)
    flash("Choose what to do with the selected rows.", "error")
    return redirect(back, code=303)


def _unexportable(entity_name: str, ids: list[int]) -> str:
    """Why the selected rows are not exported, when the caller may read some of
    them but not export them; blank otherwise.

    A file cannot say that rows were left out of it, so none is written.
    """
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
        check_export(entity)
        found = list(names_of(session.connection, entity, ids))
        count = len(found) - len(_permitted(session, entity, found, "export"))
        if not count:
            return ""
        pronoun = "it" if count == 1 else "them"
        verb = "is one" if count == 1 else "are ones"
        return (
            f"Nothing was exported: {count} of the {len(found)} selected "
            f"{_noun(entity, len(found))} {verb} you may not export "
            f"({export_limit(entity)}). Untick {pronoun} and export again."
        )


def _selected() -> list[int]:
    found = request.form.getlist("ids")
    return sorted({int(v) for v in found if ascii_digits(v) and len(v) < 19})


def _back(entity_name: str) -> str:
    """The list the rows were selected on, from the form's ``state``."""
    return list_href(entity_name, _state())


def _state() -> list[tuple[str, str]]:
    """The parameters of the list the rows were selected on (the form's
    ``state``), without its position."""
    text = request.form.get("state", "")[:16_000]
    return [
        (key, value)
        for key, value in parse_qsl(text, keep_blank_values=True)
        if key not in POSITION_PARAMS
    ]


def _csv_response(
    entity_name: str,
    filename: str,
    query_of: Callable[[Session, EntityDef], ListQuery],
) -> Response:
    def generate() -> Iterator[str]:
        with web_session() as session:
            entity = session.catalog.entity(entity_name)
            check_export(entity)
            query = query_of(session, entity)
            records = export_records(session.connection, entity, query)
            # The first page is read before the header, so that a filter the
            # database refuses is answered with an error page, not a cut CSV.
            first = list(itertools.islice(records, 1))
            rows = itertools.chain(first, records)
            yield from csv_lines(export_columns(entity), rows)

    chunks = stream_with_context(generate())
    # The first chunk is taken here, so a wrong filter or an unknown entity is
    # answered with an error page before any CSV is sent.
    first = next(chunks)
    response = Response(itertools.chain([first], chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# -- deleting selected rows --------------------------------------------------------


def _refusal(
    session: Session, entity: EntityDef, record_id: int, error: TailorError
) -> str:
    """Why nothing was deleted, naming the record that could not go."""
    # A record with no name the caller may see is named by its label and id
    # already, which quoted after the label would read "Account “Account #3”".
    unnamed = f"{entity.label} #{record_id}"
    name = names_of(session.connection, entity, [record_id]).get(record_id, unnamed)
    shown = unnamed if name == unnamed else f"{entity.label} “{name}”"
    # A conflict is also a value recomputed by the delete that another record
    # holds (a unique roll-up or formula), which its own problems explain.
    if isinstance(error, Conflict) and any(
        problem.code == "referenced" for problem in error.problems
    ):
        return (
            f"Nothing was deleted: other records refer to {shown}, which keeps it "
            "from being deleted. Leave it out, or change the records that refer "
            "to it first."
        )
    return f"Nothing was deleted: {shown} could not be deleted. {reasons(error)}"


def _confirm_delete(entity_name: str, ids: list[int], back: str) -> Response:
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
        if not entity.allows("delete"):
            raise Forbidden(f"You may not delete {entity.label} records.")
        names = names_of(session.connection, entity, ids)
        found = [i for i in ids if i in names]
        if not found:
            flash("The selected records no longer exist.", "error")
            return redirect(back, code=303)
        deletable = _permitted(session, entity, found, "delete")
        if not deletable:
            flash("You may not delete the selected records.", "error")
            return redirect(back, code=303)
        left_out = _left_out(entity, len(found) - len(deletable), len(found))
        found = deletable
        going, _ = _deletion_order(session, entity, found)
        dependents, blocking = _dependents(session, entity, found, going)
        records = [
            {
                "id": record_id,
                "title": names[record_id],
                "href": LINKS.record(entity_name, record_id),
                "dependents": dependents.get(record_id, []),
            }
            for record_id in found
        ]
        return render(
            "bulk_delete.html",
            title=f"Delete {len(found)} {_noun(entity, len(found))}",
            session=session,
            current=entity.name,
            entity=entity.name,
            noun=_noun(entity, len(found)),
            records=records,
            blocked=[names[record_id] for record_id in found if record_id in blocking],
            left_out=left_out,
            state=request.form.get("state", ""),
            action=LINKS.bulk(entity_name),
            cancel_href=back,
        )


def _left_out(entity: EntityDef, count: int, selected: int) -> str:
    """Why the confirmation lists fewer records than were selected, if it does."""
    if not count:
        return ""
    verb, pronoun = ("is", "it") if count == 1 else ("are", "them")
    return (
        f"{count} of the {selected} selected {_noun(entity, selected)} {verb} left "
        f"out: you may not delete {pronoun}."
    )


def _noun(entity: EntityDef, count: int) -> str:
    return (entity.label if count == 1 else plural(entity)).lower()


def _permitted(
    session: Session, entity: EntityDef, ids: list[int], operation: str
) -> list[int]:
    """The records among ``ids`` that the caller may ``operation``, in order."""
    access = entity.access
    clause = None if access is None else access.where(operation, entity.table)
    if clause is None:
        return ids
    table = entity.table
    allowed = set(
        session.connection.execute(
            sa.select(table.c.id).where(table.c.id.in_(ids), clause)
        ).scalars()
    )
    return [record_id for record_id in ids if record_id in allowed]


def _dependents(
    session: Session, entity: EntityDef, ids: list[int], going: Collection[int] = ()
) -> tuple[dict[int, list[dict[str, Any]]], set[int]]:
    """What refers to each record, and the records that this keeps from going.

    One statement per lookup that points at ``entity``, whatever the number of
    records. The records of ``going`` are deleted before those they refer to, so
    they keep none of them.
    """
    found: dict[int, list[dict[str, Any]]] = {}
    blocking: set[int] = set()
    for other, spec in session.catalog.referrers(entity.name):
        column = other.table.c[spec["name"]]
        where = column.in_(ids)
        if other.name == entity.name:
            # A record that refers to itself does not keep itself alive, nor do
            # the selected records that go before it (see _deletion_order).
            where = sa.and_(where, other.table.c.id != column)
            if going:
                where = sa.and_(where, other.table.c.id.not_in(going))
        # Only what the caller may read is counted; what they cannot see still
        # keeps a record, and the record service says so when it is deleted.
        rows = session.connection.execute(
            sa.select(column, sa.func.count())
            .select_from(other.table)
            .where(where, *access_where(other))
            .group_by(column)
        ).all()
        restrict = spec.get("on_delete", "restrict") == "restrict"
        for record_id, count in rows:
            if restrict:
                blocking.add(int(record_id))
            found.setdefault(int(record_id), []).append(
                {
                    "count": int(count),
                    "label": plural(other) if count != 1 else other.label,
                    "effect": _effect(spec["label"], int(count), restrict=restrict),
                }
            )
    return found, blocking


def _deletion_order(
    session: Session, entity: EntityDef, ids: list[int]
) -> tuple[list[int], list[int]]:
    """The order to delete ``ids`` in: a selected record that refers to another
    selected one (a restricting lookup of the entity to itself) comes before it,
    so that the lookup does not keep a record that goes with it.

    :returns: the records so ordered, and those left over, in their order: the
        records that refer to each other in a circle, and those they refer to,
        which no order lets go.
    """
    table = entity.table
    waiting: dict[int, int] = dict.fromkeys(ids, 0)
    referred: dict[int, list[int]] = defaultdict(list)
    for other, spec in session.catalog.referrers(entity.name):
        # A lookup that is cleared keeps nothing, in whatever order the records
        # go: counted, it would make a circle of records that an order lets go.
        if other.name != entity.name or spec.get("on_delete") == "set_null":
            continue
        column = table.c[spec["name"]]
        pairs = session.connection.execute(
            sa.select(table.c.id, column).where(
                table.c.id.in_(ids), column.in_(ids), table.c.id != column
            )
        ).all()
        for referrer, target in pairs:
            waiting[int(target)] += 1
            referred[int(referrer)].append(int(target))
    ready = deque(record_id for record_id in ids if not waiting[record_id])
    ordered: list[int] = []
    while ready:
        record_id = ready.popleft()
        ordered.append(record_id)
        for target in referred[record_id]:
            waiting[target] -= 1
            if not waiting[target]:
                ready.append(target)
    placed = set(ordered)
    return ordered, [record_id for record_id in ids if record_id not in placed]


def _effect(lookup: str, count: int, *, restrict: bool) -> str:
    """What deleting a record does to ``count`` records that refer to it."""
    one = count == 1
    if restrict:
        subject = "it keeps" if one else "they keep"
        return f"{subject} this record from being deleted (through {lookup})"
    return f"{'its' if one else 'their'} {lookup} will be cleared"


def _delete(entity_name: str, ids: list[int], back: str) -> Response:
    with web_session(write=True) as session:
        entity = session.catalog.entity(entity_name)
        service = session.records()
        ordered, left_over = _deletion_order(session, entity, ids)
        ordered += left_over
        record_id = ordered[0]
        try:
            # One savepoint for all: the first record that cannot go undoes the
            # others, so the list is never left half deleted.
            with session.connection.begin_nested():
                for record_id in ordered:
                    service.delete(entity_name, record_id)
        except (Conflict, PreconditionFailed, ValidationFailed) as error:
            flash(_refusal(session, entity, record_id, error), "error")
            return redirect(back, code=303)
        except NotFound:
            flash(
                "Nothing was deleted: one of the selected records no longer "
                "exists. Select the rows again.",
                "error",
            )
            return redirect(back, code=303)
        flash(f"{len(ids)} {_noun(entity, len(ids))} deleted.", "success")
    return redirect(back, code=303)
