"""Saved views from the list page: save as a view, save changes, rename, delete.

The views service checks every view and decides who may change it; these routes
turn a list's address into a view document and show the service's problems next
to the form that caused them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from flask import flash, redirect, request, url_for
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from ...errors import BadRequest, Forbidden, NotFound, TailorError
from ...metadata import VIEW, EntityDef, ascii_digits
from ...renderer import PAGE_SIZES
from .._app import Session
from ..views import delete_view, get_view, save_view
from ._blueprint import web
from ._context import LINKS, render, web_session
from ._filters import (
    check_single,
    condition_of,
    field_filters,
    param_label,
    parse_custom,
)
from ._listing import (
    active_view,
    column_choices,
    list_href,
    plural,
    render_list,
    view_pairs,
)

_PATHS = {
    "label": "Name",
    "columns": "Columns",
    "sort": "Sort",
    "page_size": "Rows per page",
    "filter": "Filters",
    "shared": "Shared",
}
# What to do about a value the view's schema refuses, by the part of the form;
# the schema's own wording ("... is not of type 'integer'") is not for people.
_SCHEMA_MESSAGES = {
    "label": "enter a name of at most 100 characters.",
    "columns": "choose from 1 to 50 columns.",
    "sort": "sort by at most 5 columns, each a field of the list.",
    "page_size": "enter a whole number from 10 to 200.",
    "filter": "the filters cannot be kept as a condition.",
    "shared": "tick the box to share the view, or leave it empty.",
}


@web.get("/app/<entity_name>/views")
@login_required
def views_address(entity_name: str) -> Response:
    """The list, for the address a refused "Save as view" leaves in the browser:
    reloading it, or opening it again, does not end on an error page."""
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
    return redirect(list_href(entity.name, []), code=303)


@web.post("/app/<entity_name>/views")
@login_required
def save_view_route(entity_name: str) -> Response:
    """Save the list as it is shown (the form's ``state``) as a new view."""
    with web_session(write=True) as session:
        entity = session.catalog.entity(entity_name)
        state = _state()
        sent = _settings()
        try:
            document = {
                "kind": VIEW,
                "entity": entity.name,
                **sent,
                **_list_settings(session, entity, state),
            }
            saved = _save(session, document)
        except TailorError as error:
            view = _current(session, entity, state)
            save = {**sent, "errors": view_errors(error, entity)}
            return render_list(
                session, entity, state, view=view, save=save, status=error.status
            )
        flash(f"The view “{saved['label']}” was saved.", "success")
        return redirect(list_href(entity.name, view_pairs(entity, saved)), code=303)


@web.get("/app/<entity_name>/views/<int:view_id>")
@login_required
def view_page(entity_name: str, view_id: int) -> Response:
    """The page that renames, re-columns or deletes a view."""
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
        view = _editable(session, entity, view_id)
        return _render_view(session, entity, view, view)


@web.post("/app/<entity_name>/views/<int:view_id>")
@login_required
def update_view(entity_name: str, view_id: int) -> Response:
    """Change a view: ``action=state`` takes the list's filters and sort,
    ``action=edit`` the name, sharing, columns and page size of the view page."""
    with web_session(write=True) as session:
        entity = session.catalog.entity(entity_name)
        view = _editable(session, entity, view_id)
        from_list = request.form.get("action") == "state"
        document = dict(view)
        try:
            if from_list:
                state = _state()
                document.update(_list_settings(session, entity, state))
            else:
                document.update(_settings())
            saved = _save(session, document, view_id=view_id)
        except TailorError as error:
            errors = view_errors(error, entity)
            if not from_list:
                sent = {**document, "errors": errors}
                return _render_view(session, entity, view, sent, status=error.status)
            save = {"errors": errors}
            return render_list(
                session, entity, state, view=view, save=save, status=error.status
            )
        flash(f"The view “{saved['label']}” was saved.", "success")
        return redirect(list_href(entity.name, view_pairs(entity, saved)), code=303)


@web.post("/app/<entity_name>/views/<int:view_id>/delete")
@login_required
def delete_view_route(entity_name: str, view_id: int) -> Response:
    with web_session(write=True) as session:
        entity = session.catalog.entity(entity_name)
        view = _editable(session, entity, view_id)
        delete_view(session.connection, session.catalog, session.user, view_id)
        flash(f"The view “{view['label']}” was deleted.", "success")
    return redirect(LINKS.list(entity_name), code=303)


def view_errors(error: TailorError, entity: EntityDef) -> list[str]:
    """The problems of a refused view, each led by the part of the form it
    names, or by the label of the field whose list filter it is about."""
    if isinstance(error, _FormProblems):
        return error.messages
    if not error.problems:
        # A list filter that does not parse is named as the API names it.
        return [re.sub(r"^filter: ", "Filters: ", error.message)]
    found = []
    for problem in error.problems:
        path = (problem.field or "").split(".")[0].split("[")[0]
        where = _PATHS.get(path) or param_label(entity, path)
        message = problem.message
        if problem.code == "schema":
            message = _SCHEMA_MESSAGES.get(path, "this value is not allowed.")
        text = f"{where}: {message}" if where else message
        if text not in found:
            found.append(text)
    return found


# -- helpers -----------------------------------------------------------------------


def _state() -> MultiDict[str, str]:
    """The list's parameters as the form carried them (never trusted further)."""
    text = request.form.get("state", "")[:16_000]
    return MultiDict(parse_qsl(text, keep_blank_values=True))


def _current(
    session: Session, entity: EntityDef, state: MultiDict[str, str]
) -> Mapping[str, Any] | None:
    try:
        return active_view(session, entity, state)
    except TailorError:
        return None


def _settings() -> dict[str, Any]:
    """Name, sharing, columns and page size as the form sent them."""
    form = request.form
    label = form.get("label", "").strip()
    columns = [name for name in form.getlist("columns") if name]
    size = form.get("page_size", "")
    # Only administrators see the box. The views service refuses anyone else
    # who sends it ticked, rather than have the page drop it silently.
    shared = form.get("shared") == "on"
    settings: dict[str, Any] = {"label": label, "shared": shared, "columns": columns}
    settings["page_size"] = int(size) if ascii_digits(size) and len(size) < 6 else size
    return settings


def _list_settings(
    session: Session, entity: EntityDef, state: MultiDict[str, str]
) -> dict[str, Any]:
    """The sort and filter of a view that shows the list as ``state`` has it.

    The filter keeps the list's filters, its ``filter=`` condition and its
    quick search, all in one condition (see :func:`._filters.condition_of`).

    :raises BadRequest: a filter of the list does not parse, or the list gives
        its sort or its ``filter=`` condition more than once.
    """
    check_single(state)
    layout = session.catalog.layout(entity.name)
    if "sort" in state:
        sort = [key for key in state.get("sort", "").split(",") if key]
    else:
        sort = list(layout["list"]["sort"])
    custom = parse_custom(state.get("filter"))
    search = state.get("q", "")
    condition = condition_of(entity, field_filters(state), custom, search)
    return {"sort": sort, "filter": condition}


def _save(
    session: Session, document: dict[str, Any], *, view_id: int | None = None
) -> dict[str, Any]:
    """Check the form's own rules, then save through the views service."""
    problems = []
    if not str(document.get("label", "")).strip():
        problems.append("Name: enter a name for the view.")
    if not document.get("columns"):
        problems.append("Columns: choose at least one column.")
    if problems:
        raise _FormProblems(problems)
    with session.connection.begin_nested():
        return save_view(
            session.connection,
            session.catalog,
            session.user,
            document,
            view_id=view_id,
        )


class _FormProblems(BadRequest):
    """What the form itself refuses before the service is asked."""

    status = 422

    def __init__(self, messages: list[str]) -> None:
        super().__init__(" ".join(messages))
        self.messages = messages


def _editable(session: Session, entity: EntityDef, view_id: int) -> dict[str, Any]:
    view = get_view(session.connection, session.catalog, session.user, view_id)
    if view["entity"] != entity.name:
        raise NotFound(f"That view does not exist for {plural(entity)}.")
    if not view["editable"]:
        raise Forbidden("Only administrators may change shared views.")
    return view


def _render_view(
    session: Session,
    entity: EntityDef,
    view: Mapping[str, Any],
    sent: Mapping[str, Any],
    *,
    status: int = 200,
) -> Response:
    columns = sent.get("columns") or view["columns"]
    return render(
        "views.html",
        title=f"View “{view['label']}”",
        session=session,
        current=entity.name,
        status=status,
        entity=entity.name,
        entity_plural=plural(entity),
        view=view,
        label=str(sent.get("label", view["label"])),
        shared=bool(sent.get("shared", view["shared"])),
        columns=column_choices(entity, columns),
        page_size=sent.get("page_size", view["page_size"]),
        page_sizes=PAGE_SIZES,
        errors=list(sent.get("errors") or []),
        may_share=session.user.is_admin,
        open_href=list_href(entity.name, view_pairs(entity, view)),
        action=url_for("web.update_view", entity_name=entity.name, view_id=view["id"]),
        delete_action=url_for(
            "web.delete_view_route", entity_name=entity.name, view_id=view["id"]
        ),
    )
