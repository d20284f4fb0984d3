"""A record's field history (on its page and a page of its own) and, for
administrators, the metadata revisions.

The history is read through :func:`~tailorcrm.platform.fieldhistory.record_history`,
which reads the record first: whoever may not open the record may not read what
happened to it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from flask import request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

from ...errors import Forbidden
from ...metadata import EntityDef
from ...renderer import HistoryTable, format_value, history_rows, looked_up, title_of
from .._app import Session
from ..fieldhistory import HistoryPage, parse_page_args, read_history, record_history
from ..query import names_of
from ..revisionlog import get_revision, list_revisions
from ._blueprint import web
from ._context import LINKS, locale, render, web_session

#: Changes shown on a record's page; the rest are a link away.
SECTION_ROWS = 20
PAGE_ROWS = 50


def _table(
    session: Session, entity: EntityDef, page: HistoryPage, more_href: str | None
) -> HistoryTable:
    entries = [entry.as_dict() for entry in page.entries]
    names: dict[str, dict[int, str]] = {}
    for target_name, ids in looked_up(entity, entries).items():
        target = session.catalog.entities.get(target_name)
        if target is not None and not target.removed:
            names[target_name] = names_of(session.connection, target, ids)
    rows = history_rows(entity, entries, names, LINKS, locale=locale())
    return HistoryTable(rows, more_href if page.entries else None)


def history_section(
    session: Session,
    entity: EntityDef,
    record: Mapping[str, Any],
    *,
    fields: Collection[str] | None = None,
) -> HistoryTable:
    """The latest changes of a record the caller has just read, for its page.

    :param fields: the fields the caller may read (see
        :func:`~tailorcrm.platform.fieldhistory.read_history`).
    """
    record_id = int(record["id"])
    page = read_history(
        session.connection,
        entity,
        record_id,
        fields=fields,
        removed=session.user.is_admin,
        limit=SECTION_ROWS,
    )
    more = LINKS.history(entity.name, record_id) if page.next_cursor else None
    return _table(session, entity, page, more)


@web.get("/app/<entity_name>/<int:record_id>/history")
@login_required
def history_page(entity_name: str, record_id: int) -> Response:
    limit, before = parse_page_args(None, request.args.get("cursor"), default=PAGE_ROWS)
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
        page = record_history(
            session.records(),
            entity_name,
            record_id,
            admin=session.user.is_admin,
            limit=limit,
            before=before,
        )
        more = None
        if page.next_cursor:
            more = LINKS.history(entity_name, record_id, cursor=page.next_cursor)
        title = _title(session, entity, record_id)
        return render(
            "history.html",
            title=f"History of {title}",
            session=session,
            current=entity.name,
            history=_table(session, entity, page, more),
            history_title=title,
            record_href=LINKS.record(entity_name, record_id),
        )


def _title(session: Session, entity: EntityDef, record_id: int) -> str:
    found = names_of(session.connection, entity, [record_id]).get(record_id)
    return found or title_of(entity, {"id": record_id})


# -- metadata revisions (administrators) -------------------------------------------


def _admin_session(session: Session) -> None:
    if not session.user.is_admin:
        raise Forbidden("Only administrators may read the metadata revisions.")


def _when(text: str) -> str:
    spec = {"name": "at", "type": "datetime"}
    return format_value(spec, text, locale=locale()).text


@web.get("/admin/revisions")
@login_required
def revisions_page() -> Response:
    limit, before = parse_page_args(None, request.args.get("cursor"), default=PAGE_ROWS)
    with web_session() as session:
        _admin_session(session)
        page = list_revisions(session.connection, limit=limit, before=before)
        revisions = [
            {
                **item,
                "at": _when(item["at"]),
                "href": LINKS.revision(item["id"]),
            }
            for item in page.revisions
        ]
        more = None
        if page.next_cursor:
            more = url_for("web.revisions_page", cursor=page.next_cursor)
        return render(
            "revisions.html",
            title="Metadata revisions",
            session=session,
            revisions=revisions,
            more_href=more,
        )


@web.get("/admin/revisions/<int:revision>")
@login_required
def revision_page(revision: int) -> Response:
    with web_session() as session:
        _admin_session(session)
        found = get_revision(session.connection, revision)
        steps = [_step(step) for step in found["plan"]]
        changes = [
            {
                **change,
                "what": _what(change["before"], change["after"]),
                "before": _pretty(change["before"]),
                "after": _pretty(change["after"]),
            }
            for change in found["changes"]
        ]
        return render(
            "revision.html",
            title=f"Revision {revision}",
            session=session,
            revision={**found, "at": _when(found["at"])},
            steps=steps,
            changes=changes,
        )


def _step(step: Mapping[str, Any]) -> str:
    where = ".".join(str(n) for n in (step.get("entity"), step.get("field")) if n)
    return f"{step.get('op', '')} {where}".strip()


def _what(before: Any, after: Any) -> str:
    if before is None:
        return "created"
    if after is None:
        return "deleted"
    return "changed"


def _pretty(document: Any) -> str | None:
    if document is None:
        return None
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False)
